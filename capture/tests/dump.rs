//! `ustack dump` on the repository capture (`testdata/kernel_veth_ping_udp_tcp.pcap`,
//! taken with tcpdump on a veth pair) and on damaged and annotated files.
//!
//! The reference lines are `TZ=UTC tcpdump -nn -r testdata/kernel_veth_ping_udp_tcp.pcap`
//! (tcpdump 4.99), pasted verbatim.

use ustack::link::{Direction, PcapReader, PcapRecord, PcapTimestamps, PcapWriter};
use ustack::time::Instant;
use ustack_capture::analysis::SeqMode;
use ustack_capture::decode::{self, TcpOption};
use ustack_capture::dump::{self, DumpOptions, Filter, Output, Proto};
use ustack_capture::dump_fmt::TimeStyle;

const CAPTURE: &[u8] = include_bytes!("../../testdata/kernel_veth_ping_udp_tcp.pcap");

const TCPDUMP: &str = "\
12:45:59.334327 ARP, Request who-has 10.0.0.2 tell 10.0.0.1, length 28
12:45:59.334349 ARP, Reply 10.0.0.2 is-at 02:00:00:00:00:0b, length 28
12:45:59.334353 IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 5435, seq 1, length 32
12:45:59.334505 IP 10.0.0.2 > 10.0.0.1: ICMP echo reply, id 5435, seq 1, length 32
12:45:59.338383 IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 5436, seq 1, length 1480
12:45:59.338404 IP 10.0.0.1 > 10.0.0.2: ip-proto-1
12:45:59.338422 IP 10.0.0.2 > 10.0.0.1: ICMP echo reply, id 5436, seq 1, length 1480
12:45:59.338422 IP 10.0.0.2 > 10.0.0.1: ip-proto-1
12:45:59.850803 IP 10.0.0.1.42823 > 10.0.0.2.5002: UDP, length 6
12:45:59.856722 IP 10.0.0.1.38394 > 10.0.0.2.5001: Flags [S], seq 3460258186, win 64240, options [mss 1460,sackOK,TS val 3351729865 ecr 0,nop,wscale 10], length 0
12:45:59.856766 IP 10.0.0.2.5001 > 10.0.0.1.38394: Flags [S.], seq 1040880987, ack 3460258187, win 65160, options [mss 1460,sackOK,TS val 2173802462 ecr 3351729865,nop,wscale 10], length 0
12:45:59.856783 IP 10.0.0.1.38394 > 10.0.0.2.5001: Flags [.], ack 1, win 63, options [nop,nop,TS val 3351729865 ecr 2173802462], length 0
12:45:59.856968 IP 10.0.0.1.38394 > 10.0.0.2.5001: Flags [P.], seq 1:7, ack 1, win 63, options [nop,nop,TS val 3351729866 ecr 2173802462], length 6
12:45:59.856977 IP 10.0.0.2.5001 > 10.0.0.1.38394: Flags [.], ack 7, win 64, options [nop,nop,TS val 2173802463 ecr 3351729866], length 0
12:45:59.856990 IP 10.0.0.1.38394 > 10.0.0.2.5001: Flags [F.], seq 7, ack 1, win 63, options [nop,nop,TS val 3351729866 ecr 2173802463], length 0
12:45:59.857134 IP 10.0.0.2.5001 > 10.0.0.1.38394: Flags [F.], seq 1, ack 8, win 64, options [nop,nop,TS val 2173802463 ecr 3351729866], length 0
12:45:59.857154 IP 10.0.0.1.38394 > 10.0.0.2.5001: Flags [.], ack 2, win 63, options [nop,nop,TS val 3351729866 ecr 2173802463], length 0
12:45:59.862368 IP 10.0.0.1.39584 > 10.0.0.2.5009: UDP, length 2
12:45:59.862398 IP 10.0.0.2 > 10.0.0.1: ICMP 10.0.0.2 udp port 5009 unreachable, length 38
";

fn opts(output: Output, seq: SeqMode) -> DumpOptions {
    DumpOptions {
        output,
        seq,
        time: TimeStyle::Utc,
        ..DumpOptions::default()
    }
}

fn dump_with(input: &[u8], o: &DumpOptions) -> (String, dump::Totals) {
    let mut out = Vec::new();
    let totals = dump::run(input, o, &mut out).expect("dump runs");
    (String::from_utf8(out).expect("utf-8"), totals)
}

fn dump_lines(o: &DumpOptions) -> Vec<String> {
    dump_with(CAPTURE, o)
        .0
        .lines()
        .map(str::to_string)
        .collect()
}

fn records() -> Vec<PcapRecord> {
    PcapReader::new(CAPTURE)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn pcap_of(frames: &[&[u8]]) -> Vec<u8> {
    let (a, _b) = ustack::link::MemoryLink::pair(1);
    let mut w =
        PcapWriter::new(a, Vec::new(), 1_700_000_000_000_000, PcapTimestamps::Micros).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.record(Instant::from_micros(i as i64 * 1000), f).unwrap();
    }
    w.into_parts().1
}

#[test]
fn tcpdump_mode_reproduces_tcpdump_line_for_line() {
    let (out, totals) = dump_with(CAPTURE, &opts(Output::Lines, SeqMode::Tcpdump));
    assert_eq!(out, TCPDUMP);
    assert_eq!(totals.frames, 19);
}

#[test]
fn default_numbers_tcp_relative_to_each_isn() {
    let lines = dump_lines(&opts(Output::Lines, SeqMode::Relative));
    assert_eq!(
        lines[9],
        "12:45:59.856722 IP 10.0.0.1.38394 > 10.0.0.2.5001: Flags [S], seq 0, win 64240, \
         options [mss 1460,sackOK,TS val 3351729865 ecr 0,nop,wscale 10], length 0"
    );
    assert_eq!(
        lines[10],
        "12:45:59.856766 IP 10.0.0.2.5001 > 10.0.0.1.38394: Flags [S.], seq 0, ack 1, win 65160, \
         options [mss 1460,sackOK,TS val 2173802462 ecr 3351729865,nop,wscale 10], length 0"
    );
    // After the handshake, relative numbers are the same as tcpdump's.
    let reference: Vec<_> = TCPDUMP.lines().collect();
    for i in (0..19).filter(|i| !(9..=10).contains(i)) {
        assert_eq!(lines[i], reference[i], "line {i}");
    }
}

#[test]
fn dash_s_shows_absolute_numbers() {
    let lines = dump_lines(&opts(Output::Lines, SeqMode::Absolute));
    assert_eq!(
        lines[12],
        "12:45:59.856968 IP 10.0.0.1.38394 > 10.0.0.2.5001: Flags [P.], seq 3460258187:3460258193, \
         ack 1040880988, win 63, options [nop,nop,TS val 3351729866 ecr 2173802462], length 6"
    );
    assert!(lines[9].contains("seq 3460258186, win 64240"));
}

#[test]
fn decoded_structure_of_the_syn_and_the_data_segment() {
    let recs = records();
    let syn = decode::decode_record(10, &recs[9]);
    let ip = syn.ipv4.as_ref().unwrap();
    assert_eq!(
        (ip.ttl, ip.ident, ip.dont_frag, ip.checksum_ok),
        (64, 42938, true, true)
    );
    let tcp = syn.tcp.as_ref().unwrap();
    assert_eq!(
        (tcp.src_port, tcp.dst_port, tcp.seq),
        (38394, 5001, 3460258186)
    );
    assert_eq!(tcp.checksum_ok, Some(true));
    assert_eq!(
        tcp.options,
        vec![
            TcpOption::Mss { value: 1460 },
            TcpOption::SackPermitted,
            TcpOption::Timestamp {
                val: 3351729865,
                ecr: 0
            },
            TcpOption::Nop,
            TcpOption::WindowScale { shift: 10 },
        ]
    );
    let data = decode::decode_record(13, &recs[12]);
    assert_eq!(data.tcp.as_ref().unwrap().payload_len, 6);
    assert!(data.malformed.is_none());
    // The second fragment of the big ping: no transport header, but kept for reassembly.
    let frag = decode::decode_record(6, &recs[5]);
    let fip = frag.ipv4.as_ref().unwrap();
    assert_eq!(
        (fip.frag_offset, fip.more_frags, fip.payload_len),
        (1480, false, 528)
    );
    assert!(frag.icmp.is_none());
    assert_eq!(frag.ip_payload().map(<[u8]>::len), Some(528));
    // Port unreachable quotes the UDP datagram.
    let unreach = decode::decode_record(19, &recs[18]);
    let q = unreach.icmp.as_ref().unwrap().quoted.as_ref().unwrap();
    assert_eq!((q.protocol, q.dst_port), (17, Some(5009)));
}

#[test]
fn relative_numbers_and_window_scaling_from_the_tracker() {
    let cap = dump::load(CAPTURE, SeqMode::Relative).unwrap();
    let info: Vec<_> = cap.tcp_info.iter().flatten().collect();
    assert_eq!(info.len(), 8);
    let rel: Vec<_> = info
        .iter()
        .map(|i| (i.from_client, i.rel_seq, i.rel_ack))
        .collect();
    assert_eq!(
        rel,
        vec![
            (true, 0, 0),
            (false, 0, 1),
            (true, 1, 1),
            (true, 1, 1),
            (false, 1, 7),
            (true, 7, 1),
            (false, 1, 8),
            (true, 8, 2),
        ]
    );
    // wscale 10 both ways: "win 63" is 64512 bytes; SYN windows are never scaled.
    assert_eq!(info[2].window, 63 << 10);
    assert_eq!(info[0].window, 64240);
    assert!(info.iter().all(|i| !i.retransmission && i.conn == 1));
}

#[test]
fn filters_combine() {
    let count = |f: Filter| {
        let mut o = opts(Output::Lines, SeqMode::Relative);
        o.filter = f;
        dump_lines(&o).len()
    };
    let ip = |s: &str| Some(s.parse().unwrap());
    assert_eq!(count(Filter::default()), 19);
    assert_eq!(
        count(Filter {
            port: Some(5001),
            ..Filter::default()
        }),
        8
    );
    assert_eq!(
        count(Filter {
            proto: Some(Proto::Tcp),
            ..Filter::default()
        }),
        8
    );
    assert_eq!(
        count(Filter {
            proto: Some(Proto::Udp),
            ..Filter::default()
        }),
        2
    );
    assert_eq!(
        count(Filter {
            proto: Some(Proto::Arp),
            ..Filter::default()
        }),
        2
    );
    // Later fragments have no ICMP header but are ICMP by their IP protocol field.
    assert_eq!(
        count(Filter {
            proto: Some(Proto::Icmp),
            ..Filter::default()
        }),
        7
    );
    assert_eq!(
        count(Filter {
            host: ip("10.0.0.2"),
            ..Filter::default()
        }),
        19
    );
    assert_eq!(
        count(Filter {
            host: ip("10.0.0.9"),
            ..Filter::default()
        }),
        0
    );
    assert_eq!(
        count(Filter {
            host: ip("10.0.0.1"),
            port: Some(5009),
            proto: Some(Proto::Udp)
        }),
        1
    );
    assert_eq!(
        count(Filter {
            port: Some(5001),
            proto: Some(Proto::Udp),
            ..Filter::default()
        }),
        0
    );
}

#[test]
fn summary_of_the_tcp_connection() {
    let cap = dump::load(CAPTURE, SeqMode::Relative).unwrap();
    assert_eq!(cap.tracker.tcp.len(), 1);
    let c = &cap.tracker.tcp[0];
    assert_eq!(c.client.to_string(), "10.0.0.1:38394");
    assert_eq!(c.server.to_string(), "10.0.0.2:5001");
    assert_eq!(c.to_server.packets + c.to_client.packets, 8);
    assert_eq!((c.to_server.bytes, c.to_client.bytes), (6, 0));
    assert!(c.to_server.fin && c.to_client.fin);
    assert!(c.to_server.syn && c.to_client.syn);
    assert!(!c.to_server.rst && !c.to_client.rst);
    assert_eq!(c.to_server.retransmissions + c.to_client.retransmissions, 0);
    let h = c.to_server.handshake.as_ref().unwrap();
    assert_eq!(
        (h.mss, h.window_scale, h.sack_permitted, h.timestamps),
        (Some(1460), Some(10), true, true)
    );
    assert_eq!(c.last_ns - c.first_ns, 432_000);
    assert_eq!(cap.tracker.udp.len(), 2);

    let (text, _) = dump_with(CAPTURE, &opts(Output::Summary, SeqMode::Relative));
    assert!(
        text.starts_with(
            "TCP connections: 1\n  #1 10.0.0.1:38394 > 10.0.0.2:5001  duration 0.000432 s\n"
        ),
        "{text}"
    );
    assert!(text.contains(
        "     10.0.0.1:38394 > 10.0.0.2:5001: 5 packets, 6 bytes, flags SYN FIN, 0 retransmissions, SYN options [mss 1460,wscale 10,sackOK,TS]"
    ), "{text}");
    assert!(text.contains(
        "     10.0.0.2:5001 > 10.0.0.1:38394: 3 packets, 0 bytes, flags SYN FIN, 0 retransmissions,"
    ), "{text}");
    assert!(text.contains("UDP flows: 2\n"), "{text}");
    assert!(text.ends_with(
        "Frames: 19 read, 19 shown (ARP 2, ICMP 5, UDP 2, TCP 8, IP fragments 2, other 0), 0 malformed\n"
    ), "{text}");
}

#[test]
fn retransmitted_segment_is_detected() {
    let recs = records();
    let mut frames: Vec<&[u8]> = recs[9..17].iter().map(|r| &r.data[..]).collect();
    frames.insert(5, &recs[12].data); // the data segment again, after its ACK
    let file = pcap_of(&frames);
    let cap = dump::load(&file[..], SeqMode::Relative).unwrap();
    let c = &cap.tracker.tcp[0];
    assert_eq!(c.to_server.retransmissions, 1);
    assert_eq!(c.to_server.bytes, 12);
    let flagged: Vec<_> = cap
        .tcp_info
        .iter()
        .map(|i| i.as_ref().unwrap().retransmission)
        .collect();
    assert_eq!(
        flagged,
        vec![false, false, false, false, false, true, false, false, false]
    );
    let (text, _) = dump_with(&file, &opts(Output::Tree, SeqMode::Relative));
    assert_eq!(
        text.matches("connection: 1 (client to server), retransmission")
            .count(),
        1
    );
}

#[test]
fn json_lines_parse_back() {
    let (text, _) = dump_with(CAPTURE, &opts(Output::Json, SeqMode::Relative));
    let objs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid JSON"))
        .collect();
    assert_eq!(objs.len(), 19);
    assert_eq!(objs[0]["arp"]["operation"], 1);
    assert_eq!(objs[0]["arp"]["target_ip"], "10.0.0.2");
    let data = &objs[12];
    assert_eq!(data["time"], "2026-11-21T12:45:59.856968000Z");
    assert_eq!(data["tcp"]["payload_len"], 6);
    assert_eq!(data["tcp"]["checksum_ok"], true);
    assert_eq!(data["tcp_analysis"]["rel_seq"], 1);
    assert_eq!(data["tcp_analysis"]["window"], 64512);
    assert_eq!(data["ipv4"]["src"], "10.0.0.1");
    assert_eq!(data["ethernet"]["src"], "02:00:00:00:00:0a");
    assert_eq!(objs[9]["tcp"]["options"][0]["option"], "mss");
    assert_eq!(objs[5]["ipv4"]["frag_offset"], 1480);

    let (text, _) = dump_with(CAPTURE, &opts(Output::SummaryJson, SeqMode::Relative));
    let objs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid JSON"))
        .collect();
    assert_eq!(objs.len(), 4);
    assert_eq!(objs[0]["type"], "tcp");
    assert_eq!(objs[0]["to_server"]["bytes"], 6);
    assert_eq!(objs[0]["to_client"]["fin"], true);
    assert_eq!(objs[3]["type"], "totals");
    assert_eq!(objs[3]["tcp"], 8);
}

#[test]
fn tree_verifies_checksums_and_reassembles() {
    let (text, _) = dump_with(CAPTURE, &opts(Output::Tree, SeqMode::Relative));
    assert_eq!(text.matches("Frame ").count(), 19);
    assert!(!text.contains("(incorrect)"));
    assert_eq!(
        text.matches("checksum: 0x").count(),
        text.matches("(correct)").count() + text.matches("(not verified)").count()
    );
    assert!(text.contains("    checksum: 0x492b (correct)"));
    // Both fragmented pings come back whole: 1480 + 528 bytes.
    assert_eq!(text.matches("  Reassembled IPv4 datagram: id ").count(), 2);
    assert!(text.contains("  Reassembled IPv4 datagram: id 12809, 2008 payload bytes\n  ICMP\n    type: 8\n    code: 0\n    checksum: 0x8db3 (correct)"));
    assert!(text.contains("    window: 63 (scaled 64512)"));
    assert!(text.contains("    quoted: UDP 10.0.0.1.39584 > 10.0.0.2.5009"));
}

#[test]
fn bad_checksums_are_reported_not_dropped() {
    let recs = records();
    let mut data = recs[12].data.clone();
    let n = data.len();
    data[n - 1] ^= 0xff; // payload byte: TCP checksum now wrong
    data[22] ^= 0x01; // TTL: IP header checksum now wrong
    let file = pcap_of(&[&data]);
    let (line, _) = dump_with(&file, &opts(Output::Lines, SeqMode::Absolute));
    assert!(
        line.contains("Flags [P.], seq 3460258187:3460258193"),
        "{line}"
    );
    let (text, _) = dump_with(&file, &opts(Output::Tree, SeqMode::Absolute));
    assert_eq!(text.matches("(incorrect)").count(), 2, "{text}");
}

#[test]
fn pcapng_comments_and_direction_are_shown() {
    let recs = records();
    let mut w = ustack::link::PcapNgWriter::new(Vec::new(), 1_795_265_159_000_000).unwrap();
    w.record(
        Instant::ZERO,
        Direction::Rx,
        &recs[9].data,
        Some("dropped: tcp no_listener"),
    )
    .unwrap();
    w.record(Instant::from_micros(5), Direction::Tx, &recs[0].data, None)
        .unwrap();
    let file = w.get_mut().clone();
    let (text, _) = dump_with(&file, &opts(Output::Lines, SeqMode::Relative));
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0]
        .starts_with("12:45:59.000000 IP 10.0.0.1.38394 > 10.0.0.2.5001: Flags [S], seq 0,"));
    assert_eq!(lines[1], "    # dropped: tcp no_listener");
    assert!(lines[2].starts_with("12:45:59.000005 ARP, Request"));
    let (tree, _) = dump_with(&file, &opts(Output::Tree, SeqMode::Relative));
    assert!(tree.contains(", inbound\n"));
    assert!(tree.contains(", outbound\n"));
    assert!(tree.contains("  comment: dropped: tcp no_listener\n"));
    let (json, _) = dump_with(&file, &opts(Output::Json, SeqMode::Relative));
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["direction"], "in");
    assert_eq!(first["comments"][0], "dropped: tcp no_listener");
}

#[test]
fn damaged_files_give_errors_not_panics() {
    // Not a capture at all.
    let mut out = Vec::new();
    let err = dump::run(
        &b"this is not a pcap file"[..],
        &DumpOptions::default(),
        &mut out,
    );
    assert!(err.is_err());
    assert!(dump::run(&CAPTURE[..10], &DumpOptions::default(), &mut out).is_err());
    // Cut in the middle of a record: earlier frames shown, then a note.
    for cut in [24 + 16 + 20, 300, CAPTURE.len() - 7] {
        for output in [
            Output::Lines,
            Output::Tree,
            Output::Json,
            Output::Summary,
            Output::SummaryJson,
        ] {
            let (text, totals) = dump_with(&CAPTURE[..cut], &opts(output, SeqMode::Relative));
            assert!(totals.read_error.is_some(), "cut {cut}");
            assert!(
                text.contains("damaged capture")
                    || text.contains("malformed_file")
                    || text.contains("read_error"),
                "{output:?} {text}"
            );
        }
    }
}

#[test]
fn damaged_frames_are_marked_malformed() {
    let recs = records();
    // Truncated inside the TCP header, and an IP total length longer than the frame.
    let short_tcp = &recs[9].data[..14 + 20 + 10];
    let mut long_ip = recs[12].data.clone();
    long_ip[16] = 0x05; // total length 0x05xx
    let file = pcap_of(&[short_tcp, &long_ip, &recs[0].data[..20], &[0u8; 3]]);
    let (text, totals) = dump_with(&file, &opts(Output::Lines, SeqMode::Relative));
    assert_eq!(totals.malformed, 4, "{text}");
    let lines: Vec<_> = text.lines().collect();
    let expect = [
        "IP 10.0.0.1 > 10.0.0.2: [malformed ipv4: truncated: total length 60, 30 bytes present]",
        "length 1286 [malformed ipv4: truncated: total length 1338, 58 bytes present]",
        "ARP, [malformed arp: truncated: 6 bytes]",
        "[malformed ethernet: truncated: 3 bytes]",
    ];
    for (line, end) in lines.iter().zip(expect) {
        assert!(line.ends_with(end), "{line}");
    }
}

#[test]
fn random_corruption_never_panics() {
    // Deterministic xorshift so failures reproduce.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let recs = records();
    for round in 0..300 {
        let mut frames: Vec<Vec<u8>> = recs.iter().map(|r| r.data.clone()).collect();
        for f in frames.iter_mut() {
            for _ in 0..(next() % 4) {
                let i = (next() as usize) % f.len();
                f[i] = next() as u8;
            }
            if next() % 5 == 0 {
                let n = (next() as usize) % (f.len() + 1);
                f.truncate(n);
            }
        }
        let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
        let file = pcap_of(&refs);
        let output = [Output::Lines, Output::Tree, Output::Json, Output::Summary][round % 4];
        let (_, totals) = dump_with(&file, &opts(output, SeqMode::Tcpdump));
        assert_eq!(totals.frames, 19);
    }
    // Corrupt file bytes too (headers, lengths): error or output, never a panic.
    for _ in 0..300 {
        let mut file = CAPTURE.to_vec();
        for _ in 0..8 {
            let i = (next() as usize) % file.len();
            file[i] = next() as u8;
        }
        let mut out = Vec::new();
        let _ = dump::run(&file[..], &opts(Output::Tree, SeqMode::Relative), &mut out);
    }
}

/// `testdata/edge_cases.pcap`: crafted frames (RST, ECN flags, URG, TFO and unknown
/// options, EOL, every ICMP unreachable code we name, time exceeded, timestamp query,
/// unknown IP protocol, IPv6, LLDP, ARP with a target MAC, RARP, bad UDP length, bad
/// TCP header length). Lines from `TZ=UTC tcpdump -nn -r` (tcpdump 4.99.3), except the
/// three marked ours: protocols tcpdump decodes and we do not, and our malformed marker.
const EDGE: &[u8] = include_bytes!("../../testdata/edge_cases.pcap");
const EDGE_LINES: &str = "\
22:13:20.000000 IP 10.0.0.1.1 > 10.0.0.2.2: Flags [R], seq 100, win 0, length 0
22:13:20.000001 IP 10.0.0.1.1 > 10.0.0.2.2: Flags [R.], seq 100, ack 5, win 0, length 0
22:13:20.000002 IP 10.0.0.1.1 > 10.0.0.2.2: Flags [SEW], seq 100, win 100, length 0
22:13:20.000003 IP 10.0.0.1.1 > 10.0.0.2.2: Flags [S.E], seq 100, ack 5, win 100, length 0
22:13:20.000004 IP 10.0.0.1.1 > 10.0.0.2.2: Flags [FP.U], seq 0:3, ack 1, win 100, urg 2, length 3
22:13:20.000005 IP 10.0.0.1.1 > 10.0.0.2.2: Flags [.], ack 1, win 100, options [tfo  cookie 01020304,nop,nop], length 0
22:13:20.000006 IP 10.0.0.1.1 > 10.0.0.2.2: Flags [.], ack 1, win 100, options [opt-30:0000], length 0
22:13:20.000007 IP 10.0.0.1.1 > 10.0.0.2.2: Flags [none], win 100, length 0
22:13:20.000008 IP 10.0.0.1.1 > 10.0.0.2.2: Flags [.], ack 1, win 100, options [mss 1460,eol], length 0
22:13:20.000009 IP 10.0.0.1 > 10.0.0.2: ICMP net 10.0.0.1 unreachable, length 36
22:13:20.000010 IP 10.0.0.1 > 10.0.0.2: ICMP host 10.0.0.1 unreachable, length 36
22:13:20.000011 IP 10.0.0.1 > 10.0.0.2: ICMP 10.0.0.1 protocol 17 unreachable, length 36
22:13:20.000012 IP 10.0.0.1 > 10.0.0.2: ICMP 10.0.0.1 tcp port 80 unreachable, length 36
22:13:20.000013 IP 10.0.0.1 > 10.0.0.2: ICMP 10.0.0.1 unreachable - need to frag (mtu 1500), length 36
22:13:20.000014 IP 10.0.0.1 > 10.0.0.2: ICMP time exceeded in-transit, length 36
22:13:20.000015 IP 10.0.0.1 > 10.0.0.2: ICMP ip reassembly time exceeded, length 36
22:13:20.000016 IP 10.0.0.1 > 10.0.0.2: ICMP time stamp query id 0 seq 0, length 20
22:13:20.000017 IP 10.0.0.1 > 10.0.0.2:  ip-proto-253 5
22:13:20.000018 IP 10.0.0.1.5000 > 10.0.0.2.5001: UDP, length 4
22:13:20.000019 IP6 :: > :::  [|hbhopt]
22:13:20.000020 ethertype LLDP (0x88cc), length 46
22:13:20.000021 ARP, Request who-has 10.0.0.2 (02:00:00:00:00:02) tell 10.0.0.1, length 28
22:13:20.000022 ARP, Reverse Request who-is 02:00:00:00:00:02 tell 02:00:00:00:00:01, length 28
22:13:20.000023 IP 10.0.0.1.5000 > 10.0.0.2.5001: UDP, bad length 40 > 4
22:13:20.000024 IP 10.0.0.1 > 10.0.0.2: [malformed tcp: bad header length 8 (IP payload 20 bytes)]
";
/// Lines of EDGE_LINES that are ours, not tcpdump's (0-based).
const EDGE_OURS: [usize; 3] = [6, 20, 24];

#[test]
fn edge_cases_match_tcpdump_wording() {
    let (out, totals) = dump_with(EDGE, &opts(Output::Lines, SeqMode::Tcpdump));
    assert_eq!(out, EDGE_LINES);
    // bad UDP length, bad TCP header length, the IPv6 header with nothing after it
    assert_eq!(totals.malformed, 3);
}

/// Runs the installed tcpdump (skipped when absent) on every capture in testdata and
/// compares line by line with `--tcpdump --utc`; prints how many lines matched.
#[test]
fn differential_against_installed_tcpdump() {
    let Some(tcpdump) = ["/usr/bin/tcpdump", "/usr/sbin/tcpdump"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        // Like the kernel tests: loud (past the runner's capture), fatal in CI.
        assert!(
            std::env::var("USTACK_REQUIRE_NETNS").map_or(true, |v| v != "1"),
            "tcpdump not installed (USTACK_REQUIRE_NETNS=1)"
        );
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "## SKIPPED differential_against_installed_tcpdump: tcpdump not installed"
        );
        return;
    };
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/");
    // Every capture in testdata/, so one added later is compared too; the only
    // exemptions are the lines of edge_cases.pcap named in EDGE_OURS.
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("testdata/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .collect();
    names.sort();
    assert!(names.len() >= 5, "{names:?}");
    for name in &names {
        let ours_only = if name == "edge_cases.pcap" {
            &EDGE_OURS[..]
        } else {
            &[][..]
        };
        let path = format!("{dir}{name}");
        let theirs = std::process::Command::new(tcpdump)
            .args(["-nn", "-r", &path])
            .env("TZ", "UTC")
            .output()
            .unwrap();
        assert!(theirs.status.success(), "{name}: tcpdump failed");
        let theirs = String::from_utf8_lossy(&theirs.stdout).into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let (ours, _) = dump_with(&bytes, &opts(Output::Lines, SeqMode::Tcpdump));
        let ours: Vec<_> = ours.lines().filter(|l| !l.starts_with("    # ")).collect();
        let theirs: Vec<_> = theirs.lines().collect();
        assert_eq!(ours.len(), theirs.len(), "{name}");
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            if !ours_only.contains(&i) {
                assert_eq!(a, b, "{name} line {}", i + 1);
            }
        }
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "differential: {name}: {} of {} lines match tcpdump -nn ({} exempt)",
            ours.len() - ours_only.len(),
            theirs.len(),
            ours_only.len()
        );
    }
}
