//! `ustack dump` on IPv6: crafted frames (`testdata/ipv6_edge_cases.pcap`: every
//! extension header, NDP and MLD messages, ICMPv6 errors, fragments, malformed chains),
//! built with etherparse in `ipv6_frames`, compared with tcpdump's lines.
//!
//! EDGE6_LINES is `TZ=UTC tcpdump -nn -r testdata/ipv6_edge_cases.pcap` (tcpdump
//! 4.99.3), pasted verbatim: every line is tcpdump's, no exemption. KERNEL6_LINES is
//! `TZ=UTC tcpdump -n -r testdata/kernel_ipv6_two_namespaces.pcap`, a capture of kernel IPv6
//! traffic written by `tools/tests/kernel_dump_ipv6.rs` (which also compares live).

mod ipv6_frames;

use ustack_capture::analysis::SeqMode;
use ustack_capture::decode::{self, LINKTYPE_ETHERNET};
use ustack_capture::decode6::{Icmpv6Body, Ipv6Ext, NdpOption};
use ustack_capture::dump::{self, DumpOptions, Filter, Output, Proto};
use ustack_capture::dump_fmt::TimeStyle;

const EDGE6: &[u8] = include_bytes!("../../testdata/ipv6_edge_cases.pcap");

const EDGE6_LINES: &str = "\
22:13:20.000000 IP6 2001:db8::1 > 2001:db8::2: ICMP6, echo request, id 4660, seq 1, length 64
22:13:20.001000 IP6 2001:db8::2 > 2001:db8::1: ICMP6, echo reply, id 4660, seq 1, length 64
22:13:20.002000 IP6 :: > ff02::1:ff00:1: ICMP6, neighbor solicitation, who has fe80::1, length 24
22:13:20.003000 IP6 fe80::2 > ff02::1:ff00:1: ICMP6, neighbor solicitation, who has fe80::1, length 32
22:13:20.004000 IP6 fe80::1 > fe80::2: ICMP6, neighbor advertisement, tgt is fe80::1, length 32
22:13:20.005000 IP6 fe80::2 > ff02::2: ICMP6, router solicitation, length 16
22:13:20.006000 IP6 fe80::1 > ff02::1: ICMP6, router advertisement, length 64
22:13:20.007000 IP6 fe80::1 > fe80::2: ICMP6, redirect, 2001:db8::99 to fe80::1, length 40
22:13:20.008000 IP6 fe80::2 > ff02::16: HBH ICMP6, multicast listener report v2, 2 group record(s), length 64
22:13:20.009000 IP6 fe80::2 > ff02::fb: HBH ICMP6, multicast listener reportmax resp delay: 0 addr: ff02::fb, length 24
22:13:20.010000 IP6 fe80::1 > ff02::1: HBH ICMP6, multicast listener querymax resp delay: 10000 addr: ::, length 24
22:13:20.011000 IP6 fe80::1 > ff02::1: HBH ICMP6, multicast listener query v2 [gaddr ::, 1 source(s)], length 44
22:13:20.012000 IP6 fe80::2 > ff02::2: HBH ICMP6, multicast listener donemax resp delay: 0 addr: ff02::fb, length 24
22:13:20.013000 IP6 2001:db8::2 > 2001:db8::1: ICMP6, destination unreachable, unreachable route 2001:db8::2, length 58
22:13:20.014000 IP6 2001:db8::2 > 2001:db8::1: ICMP6, destination unreachable,  unreachable prohibited 2001:db8::2, length 58
22:13:20.015000 IP6 2001:db8::2 > 2001:db8::1: ICMP6, destination unreachable, beyond scope 2001:db8::2, source address 2001:db8::1, length 58
22:13:20.016000 IP6 2001:db8::2 > 2001:db8::1: ICMP6, destination unreachable, unreachable address 2001:db8::2, length 58
22:13:20.017000 IP6 2001:db8::2 > 2001:db8::1: ICMP6, destination unreachable, unreachable port, 2001:db8::2 udp port 5009, length 58
22:13:20.018000 IP6 2001:db8::2 > 2001:db8::1: ICMP6, destination unreachable, unknown unreach code (5)
	0x0000:  0105 31e2 0000 0000 6000 0000 000a 1140
	0x0010:  2001 0db8 0000 0000 0000 0000 0000 0001
	0x0020:  2001 0db8 0000 0000 0000 0000 0000 0002
	0x0030:  9c40 1391 000a 8c2a 6869
22:13:20.019000 IP6 2001:db8::2 > 2001:db8::1: ICMP6, destination unreachable, unreachable port, 2001:db8::2 tcp port 5001, length 56
22:13:20.020000 IP6 2001:db8::2 > 2001:db8::1: ICMP6, packet too big, mtu 1280, length 88
22:13:20.021000 IP6 2001:db8::2 > 2001:db8::1: ICMP6, time exceeded in-transit for 2001:db8::2, length 58
22:13:20.022000 IP6 2001:db8::2 > 2001:db8::1: ICMP6, time exceeded in-transit (reassembly), length 58
22:13:20.023000 IP6 2001:db8::2 > 2001:db8::1: ICMP6, time exceeded in-transit, unknown code (2), length 58
22:13:20.024000 IP6 2001:db8::2 > 2001:db8::1: ICMP6, parameter problem, erroneous - octet 40, length 58
22:13:20.025000 IP6 2001:db8::2 > 2001:db8::1: ICMP6, parameter problem, next header - octet 40, length 58
22:13:20.026000 IP6 2001:db8::2 > 2001:db8::1: ICMP6, parameter problem, option - octet 40, length 58
22:13:20.027000 IP6 2001:db8::2 > 2001:db8::1: ICMP6, parameter problem, incomplete header chain - octet 40, length 58
22:13:20.028000 IP6 2001:db8::2 > 2001:db8::1: ICMP6, parameter problem, code-#4, length 58
22:13:20.029000 IP6 2001:db8::1 > 2001:db8::2: ICMP6, unknown icmp6 type (250), length 13
	0x0000:  fa00 912e 0102 0304 0506 0708 09
22:13:20.030000 IP6 2001:db8::1 > 2001:db8::2: ICMP6, ha discovery request, id 0xbeef, length 8
22:13:20.031000 IP6 2001:db8::1.40000 > 2001:db8::2.5002: UDP, length 5
22:13:20.032000 IP6 2001:db8::1.40000 > 2001:db8::2.5001: Flags [S], seq 1000, win 64800, options [mss 1440,sackOK,TS val 1 ecr 0,nop,wscale 7], length 0
22:13:20.033000 IP6 2001:db8::1.40000 > 2001:db8::2.5001: Flags [P.], seq 1000:1006, ack 7000, win 64800, options [mss 1440,sackOK,TS val 1 ecr 0,nop,wscale 7], length 6
22:13:20.034000 IP6 2001:db8::1 > 2001:db8::2: DSTOPT 40000 > 5002: UDP, length 1
22:13:20.035000 IP6 2001:db8::1 > 2001:db8::2: HBH DSTOPT RT6 (len=4, type=0 [Deprecated], segleft=1, [0]2001:db8::7, [1]2001:db8::2) 40000 > 5002: UDP, length 1
22:13:20.036000 IP6 2001:db8::1 > 2001:db8::2: RT6 (len=2, type=2, segleft=1, [0]2001:db8::8) ICMP6, echo request, id 4660, seq 1, length 12
22:13:20.037000 IP6 2001:db8::1 > 2001:db8::2: RT6 (len=4, type=4, segleft=2, last-entry=1, tag=12, [0]2001:db8::9, [1]2001:db8::2) no next header
22:13:20.038000 IP6 2001:db8::1 > 2001:db8::2: RT6 (len=0, type=3, segleft=0 (unknown type) (invalid)
22:13:20.039000 IP6 2001:db8::1 > 2001:db8::2: frag (0|64) ICMP6, echo request, id 4660, seq 2, length 64
22:13:20.040000 IP6 2001:db8::1 > 2001:db8::2: frag (64|44)
22:13:20.041000 IP6 2001:db8::1 > 2001:db8::2: frag (0|24) 40000 > 5003: UDP, length 40
22:13:20.042000 IP6 2001:db8::1 > 2001:db8::2: frag (0|41) 40000 > 5001: Flags [P.], seq 0:1, ack 1, win 64800, options [mss 1440,sackOK,TS val 1 ecr 0,nop,wscale 7], length 1
22:13:20.043000 IP6 2001:db8::1 > 2001:db8::2: DSTOPT [The Hop-by-Hop Options header don't follow the IPv6 header] (invalid)
22:13:20.044000 IP6 2001:db8::1 > 2001:db8::2: HBH (rtalert: invalid len 3) [|hbhopt]
22:13:20.045000 IP6 2001:db8::1 > 2001:db8::2: HBH [No valid Jumbo Payload Hop-by-Hop option found] (invalid)
22:13:20.046000 IP6 2001:db8::1 > 2001:db8::2: ICMP6, length 0 (invalid)
22:13:20.047000 IP6 2001:db8::1 > 2001:db8::2:  ip-proto-253 5
22:13:20.048000 IP6 2001:db8::1 > 2001:db8::2: no next header
22:13:20.049000 IP6 truncated-ip6 - 7 bytes missing!2001:db8::1.40000 > 2001:db8::2.5002: UDP, length 9
22:13:20.050000 IP6 2001:db8::1 > 2001:db8::2: ICMP6, echo request [|icmp6]
22:13:20.051000 IP6 2001:db8::1 > 2001:db8::2: ICMP6, router solicitation, length 4
22:13:20.052000 IP6 2001:db8::1 > 2001:db8::2: ICMP6, multicast listener report v2 [invalid len 6], length 6
22:13:20.053000 IP6 2001:db8::1 > 2001:db8::2: ICMP6, destination unreachable, unreachable port [|icmp6]
22:13:20.054000 IP6 2001:db8::1 > 2001:db8::2: ICMP6, destination unreachable, unknown unreach code (6)
	0x0000:  0106 3a96 12
22:13:20.055000 IP6 2001:db8::1 > 2001:db8::2: ICMP6, packet too big [|icmp6]
22:13:20.056000 IP6 2001:db8::1 > 2001:db8::2: ICMP6, time exceeded in-transit (reassembly), length 4
22:13:20.057000 IP6 2001:db8::1 > 2001:db8::2: ICMP6, multicast listener query unknown-version (len 4) , length 4
22:13:20.058000 IP6 2001:db8::1 > 2001:db8::2: ICMP6, multicast listener report, length 4
22:13:20.059000 IP6 2001:db8::1 > 2001:db8::2: ICMP6, ha discovery request, id 0x1234, length 6
22:13:20.060000 IP6 2001:db8::1 > 2001:db8::2: ICMP6, unknown icmp6 type (250), length 5
	0x0000:  fa00 419b 12
22:13:20.061000 IP6 2001:db8::1 > 2001:db8::2: ICMP6, echo request [|icmp6]
22:13:20.062000 IP6 truncated-ip6 - 64 bytes missing!2001:db8::1 > 2001:db8::2:  [|icmp6]
";

const KERNEL6: &[u8] = include_bytes!("../../testdata/kernel_ipv6_two_namespaces.pcap");

const KERNEL6_LINES: &str = "\
10:40:37.813619 IP6 :: > ff02::16: HBH ICMP6, multicast listener report v2, 2 group record(s), length 48
10:40:37.825654 IP6 :: > ff02::16: HBH ICMP6, multicast listener report v2, 2 group record(s), length 48
10:40:37.857661 IP6 :: > ff02::16: HBH ICMP6, multicast listener report v2, 2 group record(s), length 48
10:40:38.217654 IP6 :: > ff02::1:ffe3:3e97: ICMP6, neighbor solicitation, who has fe80::6c78:86ff:fee3:3e97, length 32
10:40:38.473688 IP6 :: > ff02::1:ffc5:5dcf: ICMP6, neighbor solicitation, who has fe80::c8ac:25ff:fec5:5dcf, length 32
10:40:38.665634 IP6 :: > ff02::16: HBH ICMP6, multicast listener report v2, 2 group record(s), length 48
10:40:39.245612 IP6 fe80::6c78:86ff:fee3:3e97 > ff02::16: HBH ICMP6, multicast listener report v2, 2 group record(s), length 48
10:40:39.245619 IP6 fe80::6c78:86ff:fee3:3e97 > ff02::2: ICMP6, router solicitation, length 16
10:40:39.497751 IP6 fe80::c8ac:25ff:fec5:5dcf > ff02::16: HBH ICMP6, multicast listener report v2, 2 group record(s), length 48
10:40:39.497759 IP6 fe80::c8ac:25ff:fec5:5dcf > ff02::2: ICMP6, router solicitation, length 16
10:40:40.109613 IP6 fe80::c8ac:25ff:fec5:5dcf > ff02::16: HBH ICMP6, multicast listener report v2, 2 group record(s), length 48
10:40:40.109621 IP6 fe80::6c78:86ff:fee3:3e97 > ff02::16: HBH ICMP6, multicast listener report v2, 2 group record(s), length 48
10:40:41.038025 IP6 2001:db8:77::1 > ff02::1:ff00:2: ICMP6, neighbor solicitation, who has 2001:db8:77::2, length 32
10:40:41.038041 IP6 2001:db8:77::2 > 2001:db8:77::1: ICMP6, neighbor advertisement, tgt is 2001:db8:77::2, length 32
10:40:41.038043 IP6 2001:db8:77::1 > 2001:db8:77::2: ICMP6, echo request, id 27905, seq 1, length 64
10:40:41.038053 IP6 2001:db8:77::2 > 2001:db8:77::1: ICMP6, echo reply, id 27905, seq 1, length 64
10:40:41.038111 IP6 fe80::6c78:86ff:fee3:3e97 > ff02::1:ffc5:5dcf: ICMP6, neighbor solicitation, who has fe80::c8ac:25ff:fec5:5dcf, length 32
10:40:41.038120 IP6 fe80::c8ac:25ff:fec5:5dcf > fe80::6c78:86ff:fee3:3e97: ICMP6, neighbor advertisement, tgt is fe80::c8ac:25ff:fec5:5dcf, length 32
10:40:41.038121 IP6 fe80::6c78:86ff:fee3:3e97 > fe80::c8ac:25ff:fec5:5dcf: ICMP6, echo request, id 27906, seq 2, length 64
10:40:41.038122 IP6 fe80::c8ac:25ff:fec5:5dcf > fe80::6c78:86ff:fee3:3e97: ICMP6, echo reply, id 27906, seq 2, length 64
10:40:41.038132 IP6 2001:db8:77::1 > 2001:db8:77::2: frag (0|1448) ICMP6, echo request, id 27907, seq 3, length 1448
10:40:41.038134 IP6 2001:db8:77::1 > 2001:db8:77::2: frag (1448|1448)
10:40:41.038135 IP6 2001:db8:77::1 > 2001:db8:77::2: frag (2896|112)
10:40:41.038149 IP6 2001:db8:77::2 > 2001:db8:77::1: frag (0|1448) ICMP6, echo reply, id 27907, seq 3, length 1448
10:40:41.038154 IP6 2001:db8:77::2 > 2001:db8:77::1: frag (1448|1448)
10:40:41.038155 IP6 2001:db8:77::2 > 2001:db8:77::1: frag (2896|112)
10:40:41.141603 IP6 2001:db8:77::1.55768 > 2001:db8:77::2.5002: UDP, length 6
10:40:41.141610 IP6 2001:db8:77::1 > 2001:db8:77::2: frag (0|1448) 55768 > 5002: UDP, length 3000
10:40:41.141616 IP6 2001:db8:77::1 > 2001:db8:77::2: frag (1448|1448)
10:40:41.141617 IP6 2001:db8:77::1 > 2001:db8:77::2: frag (2896|112)
10:40:41.141618 IP6 2001:db8:77::1.55768 > 2001:db8:77::2.5009: UDP, length 2
10:40:41.141620 IP6 2001:db8:77::2 > 2001:db8:77::1: ICMP6, destination unreachable, unreachable port, 2001:db8:77::2 udp port 5009, length 58
10:40:41.141621 IP6 2001:db8:77::1.33888 > 2001:db8:77::2.5001: Flags [S], seq 1075524290, win 64800, options [mss 1440,sackOK,TS val 4085198861 ecr 0,nop,wscale 10], length 0
10:40:41.141625 IP6 2001:db8:77::2.5001 > 2001:db8:77::1.33888: Flags [S.], seq 1179485387, ack 1075524291, win 64260, options [mss 1440,sackOK,TS val 2780805701 ecr 4085198861,nop,wscale 10], length 0
10:40:41.141626 IP6 2001:db8:77::1.33888 > 2001:db8:77::2.5001: Flags [.], ack 1, win 64, options [nop,nop,TS val 4085198861 ecr 2780805701], length 0
10:40:41.141639 IP6 2001:db8:77::1.33888 > 2001:db8:77::2.5001: Flags [P.], seq 1:7, ack 1, win 64, options [nop,nop,TS val 4085198861 ecr 2780805701], length 6
10:40:41.141640 IP6 2001:db8:77::2.5001 > 2001:db8:77::1.33888: Flags [.], ack 7, win 63, options [nop,nop,TS val 2780805701 ecr 4085198861], length 0
10:40:41.141641 IP6 2001:db8:77::1.33888 > 2001:db8:77::2.5001: Flags [F.], seq 7, ack 1, win 64, options [nop,nop,TS val 4085198861 ecr 2780805701], length 0
10:40:41.141642 IP6 2001:db8:77::2.5001 > 2001:db8:77::1.33888: Flags [P.], seq 1:5, ack 8, win 63, options [nop,nop,TS val 2780805701 ecr 4085198861], length 4
10:40:41.141643 IP6 2001:db8:77::1.33888 > 2001:db8:77::2.5001: Flags [.], ack 5, win 64, options [nop,nop,TS val 4085198861 ecr 2780805701], length 0
10:40:41.141644 IP6 2001:db8:77::2.5001 > 2001:db8:77::1.33888: Flags [F.], seq 5, ack 8, win 63, options [nop,nop,TS val 2780805701 ecr 4085198861], length 0
10:40:41.141645 IP6 2001:db8:77::1.33888 > 2001:db8:77::2.5001: Flags [.], ack 6, win 64, options [nop,nop,TS val 4085198861 ecr 2780805701], length 0
";

fn opts(output: Output) -> DumpOptions {
    DumpOptions {
        output,
        seq: SeqMode::Tcpdump,
        time: TimeStyle::Utc,
        ..DumpOptions::default()
    }
}

fn dump_with(input: &[u8], o: &DumpOptions) -> (String, dump::Totals) {
    let mut out = Vec::new();
    let totals = dump::run(input, o, &mut out).expect("dump runs");
    (String::from_utf8(out).expect("utf-8"), totals)
}

#[test]
fn committed_capture_is_what_the_builder_makes() {
    if std::env::var_os("USTACK_REGEN_TESTDATA").is_some() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/ipv6_edge_cases.pcap"
        );
        std::fs::write(path, ipv6_frames::pcap()).expect("rewrite the capture");
        return;
    }
    // `USTACK_REGEN_TESTDATA=1 cargo test -p ustack-capture --test dump_ipv6 committed`
    // rewrites the file; a change to the builder without it would leave the pasted
    // tcpdump lines describing other frames.
    assert!(
        ipv6_frames::pcap() == EDGE6,
        "rewrite testdata/ipv6_edge_cases.pcap"
    );
}

#[test]
fn crafted_ipv6_frames_match_tcpdump_line_for_line() {
    let (out, totals) = dump_with(EDGE6, &opts(Output::Lines));
    let (ours, theirs): (Vec<_>, Vec<_>) = (out.lines().collect(), EDGE6_LINES.lines().collect());
    assert_eq!(ours.len(), theirs.len());
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "line {}", i + 1);
    }
    assert_eq!(totals.frames, 63);
    // ICMPv6 messages (NDP, MLD and errors included; 12 shorter than their header).
    assert_eq!(totals.icmpv6, 45);
    assert_eq!(totals.ip_fragments, 1);
}

#[test]
fn ndp_mld_and_extension_headers_decode_field_by_field() {
    let frames = ipv6_frames::frames();
    let ra = decode::decode_frame(LINKTYPE_ETHERNET, &frames[6]);
    let m = ra.icmpv6.as_ref().expect("icmpv6");
    assert_eq!(m.checksum_ok, Some(true));
    let Icmpv6Body::RouterAdvert {
        hop_limit,
        lifetime,
        options,
        ..
    } = &m.body
    else {
        panic!("not an RA: {:?}", m.body);
    };
    assert_eq!((*hop_limit, *lifetime), (64, 1800));
    assert!(options.contains(&NdpOption::Mtu { mtu: 1500 }));
    assert!(options.iter().any(|o| matches!(
        o,
        NdpOption::Prefix {
            prefix_len: 64,
            on_link: true,
            autonomous: true,
            valid: 86400,
            ..
        }
    )));
    assert!(options.contains(&NdpOption::SourceLinkAddr {
        addr: vec![2, 0, 0, 0, 0, 1]
    }));

    let rep = decode::decode_frame(LINKTYPE_ETHERNET, &frames[8]);
    let ip = rep.ipv6.as_ref().expect("ipv6");
    assert!(matches!(
        ip.ext[..],
        [Ipv6Ext::HopByHop {
            next_header: 58,
            len: 8,
            ..
        }]
    ));
    let Icmpv6Body::Mldv2Report { count, records } = &rep.icmpv6.as_ref().unwrap().body else {
        panic!("not an MLDv2 report");
    };
    assert_eq!(*count, 2);
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[1].sources,
        vec!["2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap()]
    );

    // The echo in two fragments: the first carries the ICMPv6 header (checksum not
    // verifiable), the second none.
    let first = decode::decode_frame(LINKTYPE_ETHERNET, &frames[39]);
    let (ip1, m1) = (first.ipv6.as_ref().unwrap(), first.icmpv6.as_ref().unwrap());
    assert_eq!(
        ip1.fragment().map(|f| (f.offset, f.more, f.ident)),
        Some((0, true, 0x1234))
    );
    assert_eq!(m1.checksum_ok, None);
    let second = decode::decode_frame(LINKTYPE_ETHERNET, &frames[40]);
    assert!(second.ipv6.as_ref().unwrap().later_fragment());
    assert!(second.icmpv6.is_none());

    // A flipped payload byte is reported, not dropped.
    let mut bad = frames[0].clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let f = decode::decode_frame(LINKTYPE_ETHERNET, &bad);
    assert_eq!(f.icmpv6.as_ref().unwrap().checksum_ok, Some(false));
}

#[test]
fn tree_shows_extension_headers_and_ndp_options() {
    let (text, _) = dump_with(EDGE6, &opts(Output::Tree));
    for want in [
        "  IPv6\n",
        "  Hop-by-hop options (8 bytes, next header 58)",
        "  Routing header (type 0, segments left 1, 40 bytes, next header 17)",
        "  Fragment header (next header 58)",
        "    fragment: offset 0, id 0x00001234, more fragments",
        "    option: prefix info 2001:db8::/64, Flags [onlink, auto], valid time 86400s, pref. time 14400s",
        "    option: mtu 1500",
        "    option: target link-address 02:00:00:00:00:02",
        "    record: to_ex ff02::1:ff00:2",
        "    record: is_in ff05::fb { 2001:db8::1 }",
        "    quoted: UDP 2001:db8::1.40000 > 2001:db8::2.5009",
        "    checksum: 0x",
    ] {
        assert!(text.contains(want), "missing {want:?}");
    }
    assert!(!text.contains("(incorrect)"), "a crafted checksum is wrong");
}

#[test]
fn filters_take_ipv6_hosts_and_icmp6() {
    let count = |filter: Filter| {
        let o = DumpOptions {
            filter,
            ..opts(Output::Lines)
        };
        dump_with(EDGE6, &o).1.shown
    };
    let host = |s: &str| Some(s.parse().unwrap());
    assert_eq!(
        count(Filter {
            host: host("fe80::2"),
            ..Filter::default()
        }),
        7
    );
    assert_eq!(
        count(Filter {
            proto: Some(Proto::Icmp6),
            ..Filter::default()
        }),
        48
    );
    assert_eq!(
        count(Filter {
            proto: Some(Proto::Icmp),
            ..Filter::default()
        }),
        0
    );
    assert_eq!(
        count(Filter {
            port: Some(5001),
            ..Filter::default()
        }),
        3
    );
}

#[test]
fn every_prefix_of_every_crafted_frame_decodes_and_prints() {
    for f in ipv6_frames::frames() {
        for n in 0..=f.len() {
            let d = decode::decode_frame(LINKTYPE_ETHERNET, &f[..n]);
            let _ = ustack_capture::dump_fmt::one_line(&d, None, TimeStyle::Utc);
            let _ = ustack_capture::dump_fmt::tree(&d, None, TimeStyle::Utc);
            if n < f.len() && n >= 14 {
                assert!(d.ipv6.is_some() || d.malformed.is_some(), "{n}");
            }
        }
    }
}

/// tshark reads the crafted capture and flags exactly the frames built malformed: a
/// zero payload length without a jumbo option, an empty ICMPv6 message, and the ICMPv6
/// messages shorter than their header (frames 51 to 63) but for type 250 (frame 61),
/// whose length tshark cannot judge.
#[test]
fn tshark_flags_only_the_frames_built_malformed() {
    if !std::path::Path::new("/usr/bin/tshark").exists() {
        assert!(
            std::env::var("USTACK_REQUIRE_NETNS").map_or(true, |v| v != "1"),
            "tshark not installed (USTACK_REQUIRE_NETNS=1)"
        );
        eprintln!("## SKIPPED tshark_flags_only_the_frames_built_malformed: tshark not installed");
        return;
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/ipv6_edge_cases.pcap"
    );
    let out = std::process::Command::new("/usr/bin/tshark")
        .args(["-n", "-r", path])
        .output()
        .expect("tshark runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let bad: Vec<usize> = text
        .lines()
        .filter(|l| l.contains("Malformed"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    let mut want = vec![46, 47];
    want.extend((51..=63).filter(|&n| n != 61));
    assert_eq!(bad, want, "{text}");
}

#[test]
fn kernel_ipv6_capture_matches_tcpdump_line_for_line() {
    let (out, totals) = dump_with(KERNEL6, &opts(Output::Lines));
    let (ours, theirs): (Vec<_>, Vec<_>) = (out.lines().collect(), KERNEL6_LINES.lines().collect());
    assert_eq!(ours.len(), theirs.len());
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "line {}", i + 1);
    }
    assert_eq!((totals.frames, totals.malformed), (42, 0));
}

#[test]
fn tree_reassembles_ipv6_fragments_and_verifies_their_checksums() {
    let (text, _) = dump_with(KERNEL6, &opts(Output::Tree));
    let blocks: Vec<_> = text
        .split("  Reassembled IPv6 datagram: ")
        .skip(1)
        .collect();
    // The 3000-byte ping each way and the 3000-byte UDP datagram.
    assert_eq!(blocks.len(), 3, "{text}");
    for b in &blocks {
        assert!(b.contains("3008 payload bytes"), "{b}");
        let block = b.split("\n\n").next().unwrap_or("");
        assert!(
            block.contains("checksum: 0x") && block.contains("(correct)"),
            "{block}"
        );
    }
    assert!(blocks[2].contains("  UDP\n") && blocks[2].contains("payload: 3000 bytes"));
    assert!(!text.contains("(incorrect)"));
}

#[test]
fn ipv6_connections_are_tracked_for_summary_and_plots() {
    let cap = dump::load(KERNEL6, SeqMode::Relative).expect("capture");
    assert_eq!(cap.tracker.tcp.len(), 1);
    let c = &cap.tracker.tcp[0];
    assert!(c.client.is_ipv6() && c.server.to_string() == "[2001:db8:77::2]:5001");
    // The client sent 6 bytes, the server 4 ("done"); each side's SYN offered MSS 1440.
    assert_eq!((c.to_server.bytes, c.to_client.bytes), (6, 4));
    let mss = c.to_server.handshake.as_ref().and_then(|h| h.mss);
    assert_eq!(mss, Some(1440));
    let ts = ustack_capture::timeseq::time_sequence(&cap, c);
    assert_eq!(ts.from, Some(c.client));
    assert_eq!(ts.segments.len(), 3, "SYN, data, FIN");
    // The fragmented 3000-byte datagram counts once in its flow (the first fragment).
    assert_eq!(cap.tracker.udp.len(), 2);
    assert_eq!(cap.tracker.udp[0].bytes_ab, 3006);
}
