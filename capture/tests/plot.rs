//! `ustack plot`: time-sequence graphs from captures and cwnd plots from event logs.
//!
//! Besides the repository's kernel capture (a 6-byte exchange), the tests use a
//! synthetic bulk transfer built here from the stack's wire Reprs: 40 segments of 1000
//! bytes, the first copy of segment 12 lost, SACKed duplicate ACKs, and a fast
//! retransmission. It is also committed as `testdata/synthetic_bulk_sack_retransmit.pcapng`
//! (the docs show its plot); a test checks the file matches this generator.

use core::net::Ipv4Addr;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use ustack::link::{Direction, PcapNgWriter};
use ustack::time::Instant;
use ustack::wire::{
    EtherType, EthernetAddress, EthernetRepr, IpProtocol, Ipv4Repr, SeqNumber, TcpFlags,
    TcpOptions, TcpRepr,
};
use ustack_capture::analysis::SeqMode;
use ustack_capture::dump;
use ustack_capture::plot;
use ustack_capture::timeseq::{self, ConnSelect};
use ustack_capture::trace;

const CAPTURE: &[u8] = include_bytes!("../../testdata/kernel_veth_ping_udp_tcp.pcap");
const SYNTHETIC: &[u8] = include_bytes!("../../testdata/synthetic_bulk_sack_retransmit.pcapng");

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const ISN_C: u32 = 4_294_000_000; // wraps during the transfer
const ISN_S: u32 = 7_000_000;
const MSS: usize = 1000;
const SEGMENTS: u32 = 40;
const LOST: u32 = 12;
const ONE_WAY_US: i64 = 5_000;

#[allow(clippy::too_many_arguments)]
fn frame(
    from_client: bool,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    window: u16,
    options: TcpOptions,
    payload: &[u8],
    ident: u16,
) -> Vec<u8> {
    let (src, dst) = if from_client {
        (CLIENT, SERVER)
    } else {
        (SERVER, CLIENT)
    };
    let (smac, dmac) = if from_client {
        (
            EthernetAddress([2, 0, 0, 0, 0, 1]),
            EthernetAddress([2, 0, 0, 0, 0, 2]),
        )
    } else {
        (
            EthernetAddress([2, 0, 0, 0, 0, 2]),
            EthernetAddress([2, 0, 0, 0, 0, 1]),
        )
    };
    let tcp = TcpRepr {
        src_port: if from_client { 40000 } else { 5001 },
        dst_port: if from_client { 5001 } else { 40000 },
        seq_number: SeqNumber(seq),
        ack_number: SeqNumber(ack),
        flags,
        window_len: window,
        urgent_ptr: 0,
        options,
        payload,
    };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::TCP,
        ttl: 64,
        tos: 0,
        ident,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        payload_len: tcp.buffer_len(),
    };
    let eth = EthernetRepr {
        src_addr: smac,
        dst_addr: dmac,
        ethertype: EtherType::IPV4,
    };
    let mut buf = vec![0u8; 14 + 20 + tcp.buffer_len()];
    eth.emit(&mut buf);
    ip.emit(&mut buf[14..]);
    tcp.emit(&mut buf[34..], src, dst);
    buf
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// Segment index arrives at the server.
    Arrive(u32),
    /// ACK (cumulative segment count, SACKed segment ranges) arrives at the client.
    Ack(u32, Vec<(u32, u32)>),
}

struct Sim {
    w: PcapNgWriter<Vec<u8>>,
    events: BinaryHeap<Reverse<(i64, Ev)>>,
    ident: u16,
    lost_once: bool,
}

fn seq_of(i: u32) -> u32 {
    ISN_C.wrapping_add(1 + i * MSS as u32)
}

impl Sim {
    /// Records a frame at `t` µs.
    fn rec(&mut self, t: i64, from_client: bool, f: Vec<u8>, comment: Option<&str>) {
        let d = if from_client {
            Direction::Tx
        } else {
            Direction::Rx
        };
        self.w
            .record(Instant::from_micros(t), d, &f, comment)
            .unwrap();
    }

    fn id(&mut self) -> u16 {
        self.ident += 1;
        self.ident
    }

    #[allow(clippy::too_many_arguments)]
    fn control(
        &mut self,
        t: i64,
        from_client: bool,
        seq: u32,
        ack: u32,
        flags: TcpFlags,
        win: u16,
        opts: TcpOptions,
    ) {
        let id = self.id();
        let f = frame(from_client, seq, ack, flags, win, opts, &[], id);
        self.rec(t, from_client, f, None);
    }

    /// The client sends data segment `i`; its first copy of segment LOST never arrives.
    fn send(&mut self, t: i64, i: u32, comment: Option<&str>) {
        let id = self.id();
        let payload = [0x5au8; MSS];
        let f = frame(
            true,
            seq_of(i),
            ISN_S + 1,
            TcpFlags::ACK | TcpFlags::PSH,
            502,
            TcpOptions::default(),
            &payload,
            id,
        );
        self.rec(t, true, f, comment);
        if i == LOST && !self.lost_once {
            self.lost_once = true;
        } else {
            self.events.push(Reverse((t + ONE_WAY_US, Ev::Arrive(i))));
        }
    }
}

/// Builds the synthetic transfer as a pcapng seen from the client.
pub fn synthetic_transfer() -> Vec<u8> {
    let mut sim = Sim {
        w: PcapNgWriter::new(Vec::new(), 1_795_265_159_000_000).unwrap(),
        events: BinaryHeap::new(),
        ident: 0,
        lost_once: false,
    };
    let syn_opts = TcpOptions {
        mss: Some(MSS as u16),
        window_scale: Some(7),
        sack_permitted: true,
        ..TcpOptions::default()
    };
    let none = TcpOptions::default();
    sim.control(0, true, ISN_C, 0, TcpFlags::SYN, 64240, syn_opts);
    sim.control(
        2 * ONE_WAY_US,
        false,
        ISN_S,
        ISN_C.wrapping_add(1),
        TcpFlags::SYN | TcpFlags::ACK,
        65160,
        syn_opts,
    );
    let mut t = 2 * ONE_WAY_US + 50;
    sim.control(t, true, seq_of(0), ISN_S + 1, TcpFlags::ACK, 502, none);

    let window = 10;
    let mut next = 0u32;
    let mut acked = 0u32;
    let mut dupacks = 0;
    let mut received = vec![false; SEGMENTS as usize];
    while next < window {
        t += 100;
        sim.send(t, next, None);
        next += 1;
    }
    while let Some(Reverse((now, ev))) = sim.events.pop() {
        match ev {
            Ev::Arrive(i) => {
                received[i as usize] = true;
                let cum = received.iter().position(|r| !r).unwrap_or(received.len()) as u32;
                let mut sacks = Vec::new();
                let mut k = cum;
                while k < SEGMENTS {
                    if received[k as usize] {
                        let start = k;
                        while k < SEGMENTS && received[k as usize] {
                            k += 1;
                        }
                        sacks.push((start, k));
                    } else {
                        k += 1;
                    }
                }
                sim.events
                    .push(Reverse((now + ONE_WAY_US, Ev::Ack(cum, sacks))));
            }
            Ev::Ack(cum, sacks) => {
                let mut opts = TcpOptions::default();
                for (slot, &(l, r)) in opts.sack_ranges.iter_mut().zip(sacks.iter().take(3)) {
                    *slot = Some((SeqNumber(seq_of(l)), SeqNumber(seq_of(r))));
                }
                sim.control(now, false, ISN_S + 1, seq_of(cum), TcpFlags::ACK, 512, opts);
                if cum > acked {
                    acked = cum;
                    dupacks = 0;
                    let mut ts = now;
                    while next < SEGMENTS && next < acked + window {
                        ts += 100;
                        sim.send(ts, next, None);
                        next += 1;
                    }
                } else {
                    dupacks += 1;
                    if dupacks == 3 {
                        sim.send(
                            now + 100,
                            cum,
                            Some("fast retransmit after 3 duplicate ACKs"),
                        );
                    }
                }
                t = t.max(now);
            }
        }
    }
    let fin = seq_of(SEGMENTS);
    sim.control(
        t + 100,
        true,
        fin,
        ISN_S + 1,
        TcpFlags::FIN | TcpFlags::ACK,
        502,
        none,
    );
    sim.control(
        t + 100 + 2 * ONE_WAY_US,
        false,
        ISN_S + 1,
        fin.wrapping_add(1),
        TcpFlags::FIN | TcpFlags::ACK,
        512,
        none,
    );
    sim.control(
        t + 200 + 2 * ONE_WAY_US,
        true,
        fin.wrapping_add(1),
        ISN_S + 2,
        TcpFlags::ACK,
        502,
        none,
    );
    sim.w.get_mut().clone()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ustack-plot-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn committed_synthetic_capture_matches_the_generator() {
    let generated = synthetic_transfer();
    if std::env::var_os("USTACK_REGENERATE").is_some() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/synthetic_bulk_sack_retransmit.pcapng"
        );
        std::fs::write(path, &generated).unwrap();
    }
    assert!(
        generated == SYNTHETIC,
        "run with USTACK_REGENERATE=1 to rewrite the testdata file"
    );
}

#[test]
fn synthetic_transfer_analysis() {
    let cap = dump::load(SYNTHETIC, SeqMode::Relative).unwrap();
    assert!(cap.read_error.is_none());
    assert_eq!(cap.tracker.tcp.len(), 1);
    let c = &cap.tracker.tcp[0];
    assert_eq!(c.to_server.bytes, u64::from(SEGMENTS + 1) * MSS as u64);
    assert_eq!(c.to_server.retransmissions, 1);
    assert_eq!(c.to_client.retransmissions, 0);
    let ts = timeseq::time_sequence(&cap, c);
    // SYN + 40 data segments + 1 retransmission + FIN.
    assert_eq!(ts.segments.len(), 43);
    assert_eq!(ts.retransmissions(), 1);
    let r = ts.segments.iter().find(|s| s.retransmission).unwrap();
    assert_eq!(
        (r.seq, r.len),
        (1 + u64::from(LOST) * MSS as u64, MSS as u64)
    );
    // Sequence numbers wrap past 2^32 during the transfer but stay monotone here.
    let fresh: Vec<_> = ts
        .segments
        .iter()
        .filter(|s| !s.retransmission)
        .map(|s| s.seq)
        .collect();
    assert!(fresh.windows(2).all(|w| w[0] < w[1]), "{fresh:?}");
    assert_eq!(*fresh.last().unwrap(), 1 + u64::from(SEGMENTS) * MSS as u64);
    // Window 512 << 7 = 65536 on top of the ACK.
    assert!(ts
        .windows
        .iter()
        .zip(&ts.acks)
        .skip(1) // the SYN-ACK window is never scaled
        .all(|(w, a)| w.1 == a.1 + 65536));
    // SACK blocks are relative to the client's ISN and lie above the hole.
    assert!(!ts.sacks.is_empty());
    let hole = 1 + u64::from(LOST) * MSS as u64;
    assert!(ts
        .sacks
        .iter()
        .all(|&(_, l, r)| l >= hole + MSS as u64 && r > l));

    // The dump shows SACK blocks relative too, like tcpdump.
    let mut out = Vec::new();
    let o = dump::DumpOptions {
        seq: SeqMode::Relative,
        time: ustack_capture::dump_fmt::TimeStyle::Utc,
        ..Default::default()
    };
    dump::run(SYNTHETIC, &o, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(
            "Flags [.], ack 12001, win 512, options [nop,nop,sack 1 {13001:14001}], length 0"
        ),
        "{text}"
    );
    assert!(text.contains("    # fast retransmit after 3 duplicate ACKs"));
}

#[test]
fn svg_has_one_mark_per_segment() {
    let cap = dump::load(SYNTHETIC, SeqMode::Relative).unwrap();
    let c = timeseq::select(&cap, ConnSelect::Port(5001)).unwrap();
    let ts = timeseq::time_sequence(&cap, c);
    let path = tmp("tseq.svg");
    plot::draw_time_sequence(&ts, &path).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg"));
    let color = |c: plot::RGBColor| format!("stroke=\"#{:02X}{:02X}{:02X}\"", c.0, c.1, c.2);
    // One path per segment plus one legend sample per series.
    assert_eq!(svg.matches(&color(plot::SEGMENT_COLOR)).count(), 42 + 1);
    // Retransmission: bar + cross (two strokes) + legend.
    assert_eq!(
        svg.matches(&color(plot::RETRANSMIT_COLOR)).count(),
        1 + 2 + 1
    );
    assert_eq!(
        svg.matches(&color(plot::SACK_COLOR)).count(),
        ts.sacks.len() + 1
    );
    assert!(svg.contains("time (s)") || svg.contains("time (ms)"));
    assert!(
        svg.contains("10.0.0.1:40000 &gt; 10.0.0.2:5001")
            || svg.contains("10.0.0.1:40000 > 10.0.0.2:5001")
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn png_is_a_real_image() {
    let cap = dump::load(CAPTURE, SeqMode::Relative).unwrap();
    let c = timeseq::select(&cap, ConnSelect::Busiest).unwrap();
    assert_eq!(c.server.port(), 5001);
    let ts = timeseq::time_sequence(&cap, c);
    assert_eq!(ts.segments.len(), 3); // SYN, 6 bytes, FIN
    let path = tmp("tseq.png");
    plot::draw_time_sequence(&ts, &path).unwrap();
    let png = std::fs::read(&path).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&png[12..16], b"IHDR");
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((w, h), plot::SIZE);
    assert!(png.len() > 10_000, "{} bytes", png.len());
    let _ = std::fs::remove_file(&path);
}

#[test]
fn selecting_connections() {
    let cap = dump::load(CAPTURE, SeqMode::Relative).unwrap();
    assert!(timeseq::select(&cap, ConnSelect::Number(1)).is_ok());
    assert_eq!(
        timeseq::select(&cap, ConnSelect::Number(2)).unwrap_err(),
        "no TCP connection #2 (the capture has 1)"
    );
    assert!(timeseq::select(&cap, ConnSelect::Port(38394)).is_ok());
    assert!(timeseq::select(&cap, ConnSelect::Port(80)).is_err());
    assert!(plot::Format::from_path(std::path::Path::new("x.jpg")).is_err());
}

#[test]
fn cwnd_plot_from_an_event_log() {
    let mut log = String::from("# ustack TCP events\n");
    let conn = "10.0.0.1:40000-10.0.0.2:5001";
    let mut cwnd = 10_000u64;
    for i in 0..50 {
        let (event, ssthresh) = match i {
            20 => ("fast_retransmit", cwnd / 2),
            35 => ("rto", cwnd / 2),
            _ => ("ack", if i < 20 { u64::from(u32::MAX) } else { 30_000 }),
        };
        if event == "fast_retransmit" {
            cwnd /= 2;
        } else if event == "rto" {
            cwnd = 1000;
        } else {
            cwnd += 1000;
        }
        log.push_str(&format!(
            "{{\"t_us\":{},\"conn\":\"{conn}\",\"cwnd\":{cwnd},\"ssthresh\":{ssthresh},\"srtt_us\":{},\"event\":\"{event}\"}}\n",
            i * 10_000,
            10_000 + i * 100
        ));
    }
    log.push_str("{\"t_us\":1,\"conn\":\"other\",\"cwnd\":1}\n\n");
    let events = trace::parse_trace(&log).unwrap();
    assert_eq!(events.len(), 51);
    let path = tmp("cwnd.svg");
    assert_eq!(plot::draw_trace(&events, None, &path).unwrap(), conn);
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.contains("fast_retransmit") && svg.contains("rto"));
    assert!(svg.contains("srtt (ms)"));
    let png = tmp("cwnd.png");
    plot::draw_trace(&events, Some(conn), &png).unwrap();
    assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");
    assert!(plot::draw_trace(&events, Some("nope"), &path).is_err());
    assert!(trace::parse_trace("{\"cwnd\":1}")
        .unwrap_err()
        .starts_with("line 1:"));
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&png);
}
