//! The `ustack dump` pipeline: read records, decode, track conversations, filter, and
//! write one of the output forms (one-liners, `-v` tree, JSON lines, summaries) to a
//! caller-supplied writer, so tests can run it on a buffer.

use crate::analysis::{SeqMode, TcpConn, TcpInfo, Tracker, UdpFlow};
use crate::decode::{self, Frame};
use crate::dump_fmt::{self, TimeStyle};
use core::fmt::Write as _;
use core::net::IpAddr;
use serde::Serialize;
use std::io::{self, Read, Write};
use ustack::iface::{Reassembler, ReassemblyConfig};
use ustack::link::PcapReader;
use ustack::time::Instant;
use ustack::wire::{IpProtocol, Ipv4Repr};

/// A protocol to keep with `--proto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// TCP segments.
    Tcp,
    /// UDP datagrams.
    Udp,
    /// ICMP messages.
    Icmp,
    /// ICMPv6 messages (NDP and MLD included).
    Icmp6,
    /// ARP packets.
    Arp,
}

/// Which frames to show; every condition given must hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Source or destination address, IPv4 or IPv6 (ARP sender or target).
    pub host: Option<IpAddr>,
    /// TCP or UDP source or destination port.
    pub port: Option<u16>,
    /// Protocol.
    pub proto: Option<Proto>,
}

impl Filter {
    /// True when `f` passes every condition.
    pub fn matches(&self, f: &Frame) -> bool {
        if let Some(h) = self.host {
            let hit = match (f.ip_addrs(), &f.arp) {
                (Some((src, dst)), _) => src == h || dst == h,
                (_, Some(a)) => IpAddr::V4(a.sender_ip) == h || IpAddr::V4(a.target_ip) == h,
                _ => false,
            };
            if !hit {
                return false;
            }
        }
        if let Some(p) = self.port {
            let hit = match (&f.tcp, &f.udp) {
                (Some(t), _) => t.src_port == p || t.dst_port == p,
                (_, Some(u)) => u.src_port == p || u.dst_port == p,
                _ => false,
            };
            if !hit {
                return false;
            }
        }
        match self.proto {
            None => true,
            Some(Proto::Arp) => f.arp.is_some(),
            // Later fragments carry no transport header; the IP protocol field decides.
            Some(Proto::Tcp) => f.tcp.is_some() || f.ip_protocol() == Some(6),
            Some(Proto::Udp) => f.udp.is_some() || f.ip_protocol() == Some(17),
            Some(Proto::Icmp) => {
                f.icmp.is_some() || (f.ipv4.is_some() && f.ip_protocol() == Some(1))
            }
            Some(Proto::Icmp6) => {
                f.icmpv6.is_some() || (f.ipv6.is_some() && f.ip_protocol() == Some(58))
            }
        }
    }

    fn matches_conn(&self, ips: [IpAddr; 2], ports: [u16; 2], proto: Proto) -> bool {
        self.host.is_none_or(|h| ips.contains(&h))
            && self.port.is_none_or(|p| ports.contains(&p))
            && self.proto.is_none_or(|p| p == proto)
    }
}

/// What to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Output {
    /// One tcpdump-style line per frame.
    #[default]
    Lines,
    /// The layer tree (`-v`), with IPv4 reassembly.
    Tree,
    /// One JSON object per frame.
    Json,
    /// Per-conversation summaries, as text.
    Summary,
    /// Per-conversation summaries, one JSON object each.
    SummaryJson,
}

/// Options of one dump run.
#[derive(Clone, Copy, Debug, Default)]
pub struct DumpOptions {
    /// Output form.
    pub output: Output,
    /// Sequence number display.
    pub seq: SeqMode,
    /// Time of day display.
    pub time: TimeStyle,
    /// Frames to keep.
    pub filter: Filter,
    /// Stop after this many shown frames.
    pub count: Option<usize>,
}

/// Totals of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Records read.
    pub frames: u64,
    /// Records that passed the filter.
    pub shown: u64,
    /// Shown ARP packets.
    pub arp: u64,
    /// Shown ICMP messages.
    pub icmp: u64,
    /// Shown ICMPv6 messages.
    pub icmpv6: u64,
    /// Shown UDP datagrams.
    pub udp: u64,
    /// Shown TCP segments.
    pub tcp: u64,
    /// Shown IPv4 and IPv6 fragments with a non-zero offset.
    pub ip_fragments: u64,
    /// Shown frames of other kinds.
    pub other: u64,
    /// Shown frames with a malformed layer.
    pub malformed: u64,
    /// The file ended with a damaged record: what the reader said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_error: Option<String>,
}

/// Every decoded frame of a capture plus the conversation tracker that saw them.
pub struct Capture {
    /// Frames in file order.
    pub frames: Vec<Frame>,
    /// TCP information per frame (same index).
    pub tcp_info: Vec<Option<TcpInfo>>,
    /// Conversations.
    pub tracker: Tracker,
    /// The error that ended reading early, if the file is damaged.
    pub read_error: Option<String>,
}

/// Reads and decodes a whole capture. A damaged record ends the capture there: the
/// frames before it are kept and the error is returned in `read_error`.
///
/// # Errors
/// The file header is not pcap or pcapng.
pub fn load<R: Read>(input: R, seq: SeqMode) -> io::Result<Capture> {
    let reader = open(input)?;
    let mut cap = Capture {
        frames: Vec::new(),
        tcp_info: Vec::new(),
        tracker: Tracker::new(seq),
        read_error: None,
    };
    for (i, rec) in reader.enumerate() {
        match rec {
            Ok(rec) => {
                let f = decode::decode_record(i + 1, &rec);
                cap.tcp_info.push(cap.tracker.observe(&f));
                cap.frames.push(f);
            }
            Err(e) => {
                cap.read_error = Some(damage(i + 1, &e));
                break;
            }
        }
    }
    Ok(cap)
}

fn open<R: Read>(input: R) -> io::Result<PcapReader<R>> {
    PcapReader::new(input).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::new(
                e.kind(),
                "not a pcap or pcapng file (too short for a header)",
            )
        } else {
            e
        }
    })
}

fn damage(record: usize, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        format!("record {record}: file ends inside the record (truncated)")
    } else {
        format!("record {record}: {e}")
    }
}

#[derive(Serialize)]
struct JsonFrame<'a> {
    time: String,
    #[serde(flatten)]
    frame: &'a Frame,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp_analysis: Option<&'a TcpInfo>,
}

/// `2026-11-21T12:45:59.856722000Z` for a timestamp in ns since the epoch.
pub fn rfc3339(ts_ns: i128) -> String {
    let secs = ts_ns.div_euclid(1_000_000_000) as i64;
    let ns = ts_ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ns:09}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Runs a dump over `input`, writing to `out`; returns the totals.
///
/// # Errors
/// The input is not a capture, or writing failed. A damaged record after a valid
/// header is not an error: the frames before it are shown, then a note.
pub fn run<R: Read, W: Write>(input: R, opts: &DumpOptions, out: &mut W) -> io::Result<Totals> {
    // Streams: memory grows with the number of conversations, not of frames.
    let reader = open(input)?;
    let mut tracker = Tracker::new(opts.seq);
    let mut totals = Totals::default();
    let mut reassembler = Reassembler::new(ReassemblyConfig::default());
    let mut reassembler6 = Reassembler6::default();
    for (i, rec) in reader.enumerate() {
        let rec = match rec {
            Ok(rec) => rec,
            Err(e) => {
                totals.read_error = Some(damage(i + 1, &e));
                break;
            }
        };
        totals.frames += 1;
        let f = decode::decode_record(i + 1, &rec);
        let info = tracker.observe(&f);
        if !opts.filter.matches(&f) {
            continue;
        }
        if opts.count.is_some_and(|c| totals.shown as usize >= c) {
            break;
        }
        count(&mut totals, &f);
        match opts.output {
            Output::Lines => {
                writeln!(out, "{}", dump_fmt::one_line(&f, info.as_ref(), opts.time))?;
                for c in &f.comments {
                    writeln!(out, "    # {c}")?;
                }
            }
            Output::Tree => {
                let mut s = dump_fmt::tree(&f, info.as_ref(), opts.time);
                reassemble(&mut s, &mut reassembler, &f);
                reassembler6.add(&mut s, &f);
                for c in &f.comments {
                    let _ = writeln!(s, "  comment: {c}");
                }
                writeln!(out, "{s}")?;
            }
            Output::Json => {
                let j = JsonFrame {
                    time: rfc3339(f.timestamp_ns),
                    frame: &f,
                    tcp_analysis: info.as_ref(),
                };
                serde_json::to_writer(&mut *out, &j)?;
                writeln!(out)?;
            }
            Output::Summary | Output::SummaryJson => {}
        }
    }
    match opts.output {
        Output::Summary => write_summary(out, &tracker, &opts.filter, &totals)?,
        Output::SummaryJson => write_summary_json(out, &tracker, &opts.filter, &totals)?,
        _ => {
            if let Some(e) = &totals.read_error {
                if opts.output == Output::Json {
                    let note = serde_json::json!({ "malformed_file": e });
                    writeln!(out, "{note}")?;
                } else {
                    writeln!(out, "[damaged capture: {e}; stopped reading]")?;
                }
            }
        }
    }
    Ok(totals)
}

fn count(t: &mut Totals, f: &Frame) {
    t.shown += 1;
    if f.malformed.is_some() {
        t.malformed += 1;
    }
    if f.arp.is_some() {
        t.arp += 1;
    } else if f.tcp.is_some() {
        t.tcp += 1;
    } else if f.udp.is_some() {
        t.udp += 1;
    } else if f.icmp.is_some() {
        t.icmp += 1;
    } else if f.icmpv6.is_some() {
        t.icmpv6 += 1;
    } else if f.ipv4.as_ref().is_some_and(|i| i.frag_offset != 0)
        || f.ipv6.as_ref().is_some_and(|i| i.later_fragment())
    {
        t.ip_fragments += 1;
    } else {
        t.other += 1;
    }
}

/// Feeds a fragment to the reassembler; when it completes a datagram, appends the
/// reassembled transport layer to the tree.
fn reassemble(s: &mut String, r: &mut Reassembler, f: &Frame) {
    let Some(ip) = f.ipv4.as_ref().filter(|ip| ip.is_fragment()) else {
        return;
    };
    let Some(payload) = f.ip_payload() else {
        return;
    };
    let repr = Ipv4Repr {
        src_addr: ip.src,
        dst_addr: ip.dst,
        protocol: IpProtocol(ip.protocol),
        ttl: ip.ttl,
        tos: ip.tos,
        ident: ip.ident,
        dont_frag: ip.dont_frag,
        more_frags: ip.more_frags,
        frag_offset: ip.frag_offset,
        payload_len: payload.len(),
    };
    let now = Instant::from_micros((f.timestamp_ns / 1000).clamp(0, i128::from(i64::MAX)) as i64);
    match r.add(now, &repr, payload) {
        Ok(Some((_, data))) => {
            let mut whole = ip.clone();
            whole.more_frags = false;
            whole.frag_offset = 0;
            whole.payload_len = data.len();
            whole.total_len = (whole.header_len + data.len()).min(65535) as u16;
            let mut g = f.clone();
            g.icmp = None;
            g.udp = None;
            g.tcp = None;
            g.malformed = None;
            decode::decode_transport(&mut g, &whole, &data, false);
            let _ = writeln!(
                s,
                "  Reassembled IPv4 datagram: id {}, {} payload bytes",
                ip.ident,
                data.len()
            );
            dump_fmt::transport_tree(s, &g, None);
            if let Some(m) = &g.malformed {
                let _ = writeln!(s, "  [malformed {}: {}]", m.layer, m.reason);
            }
            r.recycle(data);
        }
        Ok(None) => {}
        Err(reason) => {
            let _ = writeln!(s, "  reassembly: fragment dropped ({reason})");
        }
    }
}

/// IPv6 fragments of the `-v` tree, by (source, destination, identification): the
/// stack's reassembler is IPv4's, so the dump keeps its own, bounded like it (at most
/// 64 datagrams of at most 64 KiB in progress; the oldest goes first). Overlapping
/// bytes are taken from the fragment that came first.
#[derive(Default)]
struct Reassembler6 {
    pending: Vec<Pending6>,
}

struct Pending6 {
    key: (core::net::Ipv6Addr, core::net::Ipv6Addr, u32),
    parts: Vec<(usize, Vec<u8>)>,
    end: Option<usize>,
    next_header: Option<u8>,
    bytes: usize,
}

impl Reassembler6 {
    const MAX_DATAGRAMS: usize = 64;
    const MAX_BYTES: usize = 65_535;

    fn add(&mut self, s: &mut String, f: &Frame) {
        let Some(ip) = &f.ipv6 else { return };
        let (Some(fr), Some(data)) = (ip.fragment(), f.ip_payload()) else {
            return;
        };
        let key = (ip.src, ip.dst, fr.ident);
        let i = match self.pending.iter().position(|p| p.key == key) {
            Some(i) => i,
            None => {
                if self.pending.len() >= Self::MAX_DATAGRAMS {
                    self.pending.remove(0);
                }
                self.pending.push(Pending6 {
                    key,
                    parts: Vec::new(),
                    end: None,
                    next_header: None,
                    bytes: 0,
                });
                self.pending.len() - 1
            }
        };
        let p = &mut self.pending[i];
        let off = usize::from(fr.offset);
        if off + data.len() > Self::MAX_BYTES || p.bytes + data.len() > Self::MAX_BYTES {
            let _ = writeln!(
                s,
                "  reassembly: fragment dropped (datagram over 65535 bytes)"
            );
            self.pending.remove(i);
            return;
        }
        if off == 0 {
            p.next_header = Some(fr.next_header);
        }
        if !fr.more {
            p.end = Some(off + data.len());
        }
        p.bytes += data.len();
        p.parts.push((off, data.to_vec()));
        let (Some(end), Some(nh)) = (p.end, p.next_header) else {
            return;
        };
        let mut parts = p.parts.clone();
        parts.sort_by_key(|(o, _)| *o);
        let mut whole = vec![0u8; end];
        let mut covered = 0;
        for (o, d) in &parts {
            if *o > covered {
                return; // a hole
            }
            let stop = (o + d.len()).min(end);
            if stop > covered {
                whole[covered..stop].copy_from_slice(&d[covered - o..stop - o]);
                covered = stop;
            }
        }
        if covered < end {
            return;
        }
        self.pending.remove(i);
        let mut g = f.clone();
        g.icmpv6 = None;
        g.udp = None;
        g.tcp = None;
        g.malformed = None;
        crate::decode6::decode_reassembled6(&mut g, key.0, key.1, nh, &whole);
        let _ = writeln!(
            s,
            "  Reassembled IPv6 datagram: id 0x{:08x}, {} payload bytes",
            key.2,
            whole.len()
        );
        dump_fmt::transport_tree(s, &g, None);
        if let Some(m) = &g.malformed {
            let _ = writeln!(s, "  [malformed {}: {}]", m.layer, m.reason);
        }
    }
}

fn handshake_text(h: &Option<crate::analysis::HandshakeOptions>) -> String {
    let Some(h) = h else {
        return "no SYN seen".into();
    };
    let mut parts = Vec::new();
    if let Some(m) = h.mss {
        parts.push(format!("mss {m}"));
    }
    if let Some(w) = h.window_scale {
        parts.push(format!("wscale {w}"));
    }
    if h.sack_permitted {
        parts.push("sackOK".into());
    }
    if h.timestamps {
        parts.push("TS".into());
    }
    format!("SYN options [{}]", parts.join(","))
}

fn flags_seen(d: &crate::analysis::DirStats) -> String {
    let mut v = Vec::new();
    if d.syn {
        v.push("SYN");
    }
    if d.fin {
        v.push("FIN");
    }
    if d.rst {
        v.push("RST");
    }
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" ")
    }
}

fn tcp_conns<'a>(tracker: &'a Tracker, filter: &'a Filter) -> impl Iterator<Item = &'a TcpConn> {
    tracker.tcp.iter().filter(|c| {
        filter.matches_conn(
            [c.client.ip(), c.server.ip()],
            [c.client.port(), c.server.port()],
            Proto::Tcp,
        )
    })
}

fn udp_flows<'a>(tracker: &'a Tracker, filter: &'a Filter) -> impl Iterator<Item = &'a UdpFlow> {
    tracker
        .udp
        .iter()
        .filter(|u| filter.matches_conn([u.a.ip(), u.b.ip()], [u.a.port(), u.b.port()], Proto::Udp))
}

fn write_summary<W: Write>(
    out: &mut W,
    tracker: &Tracker,
    filter: &Filter,
    t: &Totals,
) -> io::Result<()> {
    let conns: Vec<_> = tcp_conns(tracker, filter).collect();
    writeln!(out, "TCP connections: {}", conns.len())?;
    for c in conns {
        writeln!(
            out,
            "  #{} {} > {}  duration {:.6} s",
            c.id,
            c.client,
            c.server,
            c.duration_secs()
        )?;
        for (d, from, to) in [
            (&c.to_server, c.client, c.server),
            (&c.to_client, c.server, c.client),
        ] {
            writeln!(
                out,
                "     {from} > {to}: {} packets, {} bytes, flags {}, {} retransmissions, {}",
                d.packets,
                d.bytes,
                flags_seen(d),
                d.retransmissions,
                handshake_text(&d.handshake)
            )?;
        }
    }
    let flows: Vec<_> = udp_flows(tracker, filter).collect();
    writeln!(out, "UDP flows: {}", flows.len())?;
    for u in flows {
        writeln!(
            out,
            "  #{} {} > {}: {} packets, {} bytes; back: {} packets, {} bytes; duration {:.6} s",
            u.id,
            u.a,
            u.b,
            u.packets_ab,
            u.bytes_ab,
            u.packets_ba,
            u.bytes_ba,
            (u.last_ns - u.first_ns) as f64 / 1e9
        )?;
    }
    // ICMPv6 is named only when present, so IPv4-only summaries read as before.
    let icmpv6 = if t.icmpv6 > 0 {
        format!(", ICMPv6 {}", t.icmpv6)
    } else {
        String::new()
    };
    writeln!(
        out,
        "Frames: {} read, {} shown (ARP {}, ICMP {}{icmpv6}, UDP {}, TCP {}, IP fragments {}, other {}), {} malformed",
        t.frames, t.shown, t.arp, t.icmp, t.udp, t.tcp, t.ip_fragments, t.other, t.malformed
    )?;
    if let Some(e) = &t.read_error {
        writeln!(out, "[damaged capture: {e}; stopped reading]")?;
    }
    Ok(())
}

fn tagged<T: Serialize>(kind: &str, v: &T) -> io::Result<String> {
    let mut j = serde_json::to_value(v)?;
    if let Some(m) = j.as_object_mut() {
        m.insert("type".into(), kind.into());
    }
    Ok(j.to_string())
}

fn write_summary_json<W: Write>(
    out: &mut W,
    tracker: &Tracker,
    filter: &Filter,
    t: &Totals,
) -> io::Result<()> {
    for c in tcp_conns(tracker, filter) {
        let mut j = serde_json::to_value(c)?;
        if let Some(m) = j.as_object_mut() {
            m.insert("type".into(), "tcp".into());
            m.insert("duration_s".into(), c.duration_secs().into());
        }
        writeln!(out, "{j}")?;
    }
    for u in udp_flows(tracker, filter) {
        writeln!(out, "{}", tagged("udp", u)?)?;
    }
    writeln!(out, "{}", tagged("totals", t)?)
}
