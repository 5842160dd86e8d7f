//! Whole frames through an [`Interface`], most of them real captures.

use super::*;
use crate::socket::tcp::TcpError;
use crate::socket::IpTx;
use crate::wire::testdata::{self, KERNEL_IP, KERNEL_MAC, PEER_IP, PEER_MAC};
use crate::wire::{ArpRepr, IcmpRepr, TcpFlags};
use rand::{Rng, SeedableRng};

/// The stack plays the capture's 10.0.0.2 side, so its answers can be compared to Linux's.
fn config() -> Config {
    let mut c = Config::new(PEER_MAC, Ipv4Cidr::new(PEER_IP, 24));
    c.arp.gratuitous_at_start = false;
    c
}

fn iface() -> Interface {
    Interface::new(config(), Instant::ZERO)
}

fn drain(iface: &mut Interface, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1514];
    while let Some(n) = iface.poll_transmit(now, &mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

fn ip_of(frame: &[u8]) -> (Ipv4Repr, Vec<u8>) {
    let (_, p) = EthernetRepr::parse(frame).unwrap();
    let (ip, payload) = Ipv4Repr::parse(p).unwrap();
    (ip, payload.to_vec())
}

/// An iface that already knows the kernel side's MAC (it asked for ours).
fn iface_knowing_kernel() -> Interface {
    let mut i = iface();
    assert_eq!(i.handle_frame(Instant::ZERO, testdata::ARP_REQUEST), None);
    drain(&mut i, Instant::ZERO);
    i
}

#[test]
fn arp_request_for_us_gets_the_reply_linux_sent() {
    let mut i = iface();
    assert_eq!(i.handle_frame(Instant::ZERO, testdata::ARP_REQUEST), None);
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out, vec![testdata::ARP_REPLY.to_vec()]);
    assert_eq!(i.neighbors().get(KERNEL_IP), Some(KERNEL_MAC));
    assert_eq!(i.counters().arp_rx_requests, 1);
    assert_eq!(i.counters().arp_tx_replies, 1);
}

#[test]
fn arp_request_for_someone_else_is_not_answered_and_creates_no_entry() {
    let mut c = config();
    c.ip = Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 3), 24);
    let mut i = Interface::new(c, Instant::ZERO);
    assert_eq!(
        i.handle_frame(Instant::ZERO, testdata::ARP_REQUEST),
        Some(DropReason::ArpNotForUs)
    );
    assert!(drain(&mut i, Instant::ZERO).is_empty());
    assert_eq!(i.neighbors().get(KERNEL_IP), None);
}

#[test]
fn gratuitous_arp_at_start() {
    let mut c = config();
    c.arp.gratuitous_at_start = true;
    let mut i = Interface::new(c, Instant::ZERO);
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out.len(), 1);
    let (eth, p) = EthernetRepr::parse(&out[0]).unwrap();
    assert!(eth.dst_addr.is_broadcast());
    let arp = ArpRepr::parse(p).unwrap();
    assert_eq!(arp.source_protocol_addr, PEER_IP);
    assert_eq!(arp.target_protocol_addr, PEER_IP);
}

#[test]
fn echo_request_gets_the_reply_linux_sent() {
    let mut i = iface_knowing_kernel();
    assert_eq!(i.handle_frame(Instant::ZERO, testdata::ECHO_REQUEST), None);
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out.len(), 1);
    let (ours, our_icmp) = ip_of(&out[0]);
    let (linux, linux_icmp) = ip_of(testdata::ECHO_REPLY);
    assert_eq!(our_icmp, linux_icmp, "ICMP message byte for byte");
    assert_eq!(
        (ours.src_addr, ours.dst_addr, ours.ttl),
        (linux.src_addr, linux.dst_addr, linux.ttl)
    );
    assert_eq!(
        &out[0][..12],
        &testdata::ECHO_REPLY[..12],
        "Ethernet addresses"
    );
}

#[test]
fn first_ping_from_unknown_peer_waits_for_arp_then_is_answered() {
    let mut i = iface();
    // Not learned from the IP packet itself: we must ask.
    assert_eq!(i.handle_frame(Instant::ZERO, testdata::ECHO_REQUEST), None);
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out.len(), 1);
    let (eth, p) = EthernetRepr::parse(&out[0]).unwrap();
    assert_eq!(eth.ethertype, EtherType::ARP);
    assert_eq!(ArpRepr::parse(p).unwrap().target_protocol_addr, KERNEL_IP);
    // The answer to our request releases the queued reply.
    let reply = {
        let mut f = vec![0u8; 42];
        EthernetRepr {
            src_addr: KERNEL_MAC,
            dst_addr: PEER_MAC,
            ethertype: EtherType::ARP,
        }
        .emit(&mut f);
        ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: KERNEL_MAC,
            source_protocol_addr: KERNEL_IP,
            target_hardware_addr: PEER_MAC,
            target_protocol_addr: PEER_IP,
        }
        .emit(&mut f[14..]);
        f
    };
    assert_eq!(i.handle_frame(Instant::from_millis(1), &reply), None);
    let out = drain(&mut i, Instant::from_millis(1));
    assert_eq!(out.len(), 1);
    assert_eq!(ip_of(&out[0]).1, ip_of(testdata::ECHO_REPLY).1);
    assert_eq!(&out[0][..6], &KERNEL_MAC.0);
}

#[test]
fn unanswered_arp_retries_then_drops_and_counts() {
    let mut i = iface();
    i.handle_frame(Instant::ZERO, testdata::ECHO_REQUEST);
    assert_eq!(drain(&mut i, Instant::ZERO).len(), 1);
    let mut requests = 1;
    let mut now = Instant::ZERO;
    while let Some(t) = i.poll_timeout() {
        now = t;
        i.handle_timeout(now);
        requests += drain(&mut i, now).len();
        assert!(now < Instant::from_secs(10), "resolution never gave up");
    }
    assert_eq!(requests, 3, "max_retries requests in all");
    assert_eq!(i.counters().dropped(DropReason::ArpFailed), 1);
    assert_eq!(now, Instant::from_secs(3));
}

#[test]
fn fragmented_echo_request_is_reassembled_and_the_reply_fragmented() {
    let mut i = iface_knowing_kernel();
    assert_eq!(i.handle_frame(Instant::ZERO, testdata::FRAG_LAST), None);
    assert_eq!(i.handle_frame(Instant::ZERO, testdata::FRAG_FIRST), None);
    assert_eq!(i.counters().ipv4_reassembled, 1);
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out.len(), 2, "2008-byte reply over a 1500 MTU");
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let (a, pa) = ip_of(&out[0]);
    let (b, pb) = ip_of(&out[1]);
    assert!(a.more_frags && !b.more_frags && a.ident == b.ident);
    assert_eq!(pa.len(), 1480);
    r.add(Instant::ZERO, &a, &pa).unwrap();
    let (_, whole) = r.add(Instant::ZERO, &b, &pb).unwrap().unwrap();
    // The echoed data is the request's, reassembled from Linux's two fragments.
    let mut request = Reassembler::new(ReassemblyConfig::default());
    let (q1, p1) = ip_of(testdata::FRAG_FIRST);
    let (q2, p2) = ip_of(testdata::FRAG_LAST);
    request.add(Instant::ZERO, &q1, &p1).unwrap();
    let (_, req) = request.add(Instant::ZERO, &q2, &p2).unwrap().unwrap();
    let IcmpRepr::EchoRequest { data, .. } = IcmpRepr::parse(&req).unwrap() else {
        panic!()
    };
    let IcmpRepr::EchoReply { data: echoed, .. } = IcmpRepr::parse(&whole).unwrap() else {
        panic!("not a reply")
    };
    assert_eq!(echoed, data);
}

#[test]
fn udp_to_closed_port_gets_the_port_unreachable_linux_sent() {
    let mut i = iface_knowing_kernel();
    assert_eq!(
        i.handle_frame(Instant::ZERO, testdata::UDP_TO_CLOSED_PORT),
        Some(DropReason::UdpNoSocket)
    );
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out.len(), 1);
    let (ours, our_icmp) = ip_of(&out[0]);
    let (linux, linux_icmp) = ip_of(testdata::ICMP_PORT_UNREACHABLE);
    assert_eq!(our_icmp, linux_icmp, "same quote, same checksum");
    assert_eq!(ours.tos, linux.tos);
    assert_eq!(i.counters().icmp_tx_errors, 1);
}

#[test]
fn udp_datagram_reaches_bound_socket_and_answer_goes_out() {
    let mut i = iface_knowing_kernel();
    let udp = i.udp();
    let h = udp.socket();
    udp.bind(
        h,
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5002)),
        &crate::socket::LocalAddrs::v4(PEER_IP),
    )
    .unwrap();
    assert_eq!(i.handle_frame(Instant::ZERO, testdata::UDP_DATAGRAM), None);
    let mut buf = [0u8; 64];
    let (n, from) = i.udp().recv_from(h, &mut buf, false).unwrap();
    assert_eq!(&buf[..n], b"hello\n");
    assert_eq!(from, SocketAddr::V4(SocketAddrV4::new(KERNEL_IP, 42823)));
    i.udp().send_to(h, b"world\n", Some(from)).unwrap();
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out.len(), 1);
    let (ip, seg) = ip_of(&out[0]);
    let (repr, payload) = UdpRepr::parse(ip.src_addr, ip.dst_addr, &seg).unwrap();
    assert_eq!((repr.src_port, repr.dst_port), (5002, 42823));
    assert_eq!(payload, b"world\n");
}

/// The kernel's answer to our ARP request for it.
fn kernel_arp_reply() -> Vec<u8> {
    let mut f = vec![0u8; 42];
    EthernetRepr {
        src_addr: KERNEL_MAC,
        dst_addr: PEER_MAC,
        ethertype: EtherType::ARP,
    }
    .emit(&mut f);
    ArpRepr {
        operation: ArpOperation::Reply,
        source_hardware_addr: KERNEL_MAC,
        source_protocol_addr: KERNEL_IP,
        target_hardware_addr: PEER_MAC,
        target_protocol_addr: PEER_IP,
    }
    .emit(&mut f[14..]);
    f
}

/// Found against the kernel (`ksock_udp_65507_bytes_both_ways_and_truncation`): a
/// maximal UDP datagram to a neighbour not yet resolved is 45 fragments; the pending
/// queue held 32 frames, so the kernel got 32 fragments and never the datagram. Linux
/// queues up to `unres_qlen` (101) packets per unresolved neighbour.
#[test]
fn maximal_udp_datagram_to_unresolved_neighbour_waits_whole_for_arp() {
    let mut i = iface();
    let h = i.udp().socket();
    let data: Vec<u8> = (0..65_507u32).map(|x| (x % 251) as u8).collect();
    i.udp()
        .send_to(
            h,
            &data,
            Some(SocketAddr::V4(SocketAddrV4::new(KERNEL_IP, 9))),
        )
        .unwrap();
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out.len(), 1, "only the ARP request leaves");
    assert_eq!(i.counters().drops[DropReason::ArpQueueFull as usize], 0);
    assert_eq!(
        i.handle_frame(Instant::from_millis(1), &kernel_arp_reply()),
        None
    );
    let out = drain(&mut i, Instant::from_millis(1));
    assert_eq!(out.len(), 45, "65,515 bytes in 1480-byte pieces");
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let mut whole = None;
    for f in &out {
        assert_eq!(&f[..6], &KERNEL_MAC.0);
        let (ip, p) = ip_of(f);
        whole = r.add(Instant::ZERO, &ip, &p).unwrap();
    }
    let (hdr, seg) = whole.expect("all fragments");
    let (_, payload) = UdpRepr::parse(hdr.src_addr, hdr.dst_addr, &seg).unwrap();
    assert_eq!(payload, &data[..]);
}

#[test]
fn large_udp_datagram_is_fragmented_and_reassembles() {
    let mut i = iface_knowing_kernel();
    let h = i.udp().socket();
    let data: Vec<u8> = (0..8000u32).map(|x| (x % 251) as u8).collect();
    i.udp()
        .send_to(
            h,
            &data,
            Some(SocketAddr::V4(SocketAddrV4::new(KERNEL_IP, 9))),
        )
        .unwrap();
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out.len(), 6, "8008 bytes in 1480-byte pieces");
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let mut whole = None;
    for f in &out {
        assert!(f.len() <= 1514);
        let (ip, p) = ip_of(f);
        whole = r.add(Instant::ZERO, &ip, &p).unwrap();
    }
    let (hdr, seg) = whole.unwrap();
    let (_, payload) = UdpRepr::parse(hdr.src_addr, hdr.dst_addr, &seg).unwrap();
    assert_eq!(payload, &data[..]);
}

#[test]
fn tcp_syn_to_closed_port_is_reset() {
    let mut i = iface_knowing_kernel();
    assert_eq!(i.handle_frame(Instant::ZERO, testdata::TCP_SYN), None);
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out.len(), 1);
    let (ip, seg) = ip_of(&out[0]);
    let rst = TcpRepr::parse(ip.src_addr, ip.dst_addr, &seg).unwrap();
    assert_eq!(rst.flags, TcpFlags::RST | TcpFlags::ACK);
    assert_eq!(rst.ack_number.0, 3460258187);
    assert_eq!((rst.src_port, rst.dst_port), (5001, 38394));
}

/// `Config::ttl` is the one default TTL: TCP's replies and its own segments, and ICMP
/// answers, all carry it (TCP hands over only addresses; the interface builds headers).
#[test]
fn configured_ttl_is_used_by_every_header_the_interface_builds() {
    let mut c = config();
    c.ttl = 99;
    let mut i = Interface::new(c, Instant::ZERO);
    assert_eq!(i.handle_frame(Instant::ZERO, testdata::ARP_REQUEST), None);
    drain(&mut i, Instant::ZERO);
    // A RST from a closed port, returned by TcpLayer::process.
    assert_eq!(i.handle_frame(Instant::ZERO, testdata::TCP_SYN), None);
    // A SYN, emitted by TcpLayer::dispatch.
    let cx = i.tcp_context(Instant::ZERO);
    let h = i.tcp().socket();
    i.tcp()
        .connect(h, &cx, SocketAddr::V4(SocketAddrV4::new(KERNEL_IP, 5001)))
        .unwrap();
    // An echo reply.
    assert_eq!(i.handle_frame(Instant::ZERO, testdata::ECHO_REQUEST), None);
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out.len(), 3);
    let mut flags = Vec::new();
    for frame in &out {
        let (ip, payload) = ip_of(frame);
        assert_eq!(ip.ttl, 99, "{ip:?}");
        assert_eq!((ip.src_addr, ip.dst_addr), (PEER_IP, KERNEL_IP));
        if ip.protocol == IpProtocol::TCP {
            assert!(ip.dont_frag);
            let seg = TcpRepr::parse(ip.src_addr, ip.dst_addr, &payload).unwrap();
            flags.push(seg.flags);
        }
    }
    assert_eq!(flags, [TcpFlags::RST | TcpFlags::ACK, TcpFlags::SYN]);
}

#[test]
fn unknown_protocol_gets_protocol_unreachable() {
    let mut i = iface_knowing_kernel();
    let mut f = testdata::UDP_DATAGRAM.to_vec();
    f[14 + 9] = 253; // experimental protocol number; fix the header checksum
    f[24] = 0;
    f[25] = 0;
    let sum = wire::checksum::of(&f[14..34]);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(
        i.handle_frame(Instant::ZERO, &f),
        Some(DropReason::Ipv4UnknownProtocol)
    );
    let out = drain(&mut i, Instant::ZERO);
    let (_, icmp) = ip_of(&out[0]);
    assert!(matches!(
        IcmpRepr::parse(&icmp).unwrap(),
        IcmpRepr::DstUnreachable { code: 2, .. }
    ));
}

#[test]
fn broadcast_echo_is_ignored_by_default() {
    let mut i = iface_knowing_kernel();
    let mut f = testdata::ECHO_REQUEST.to_vec();
    f[..6].copy_from_slice(&[0xff; 6]);
    f[30..34].copy_from_slice(&[10, 0, 0, 255]);
    f[24] = 0;
    f[25] = 0;
    let sum = wire::checksum::of(&f[14..34]);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(
        i.handle_frame(Instant::ZERO, &f),
        Some(DropReason::IcmpIgnored)
    );
    assert!(drain(&mut i, Instant::ZERO).is_empty());
}

#[test]
fn bad_checksums_are_dropped_by_layer() {
    let mut i = iface_knowing_kernel();
    let mut ip = testdata::ECHO_REQUEST.to_vec();
    ip[24] ^= 1;
    assert_eq!(
        i.handle_frame(Instant::ZERO, &ip),
        Some(DropReason::Ipv4Checksum)
    );
    let mut icmp = testdata::ECHO_REQUEST.to_vec();
    icmp[40] ^= 1;
    assert_eq!(
        i.handle_frame(Instant::ZERO, &icmp),
        Some(DropReason::IcmpChecksum)
    );
    let mut udp = testdata::UDP_DATAGRAM.to_vec();
    *udp.last_mut().unwrap() ^= 1;
    assert_eq!(
        i.handle_frame(Instant::ZERO, &udp),
        Some(DropReason::UdpChecksum)
    );
    let mut tcp = testdata::TCP_SYN.to_vec();
    tcp[40] ^= 1;
    assert_eq!(
        i.handle_frame(Instant::ZERO, &tcp),
        Some(DropReason::TcpChecksum)
    );
    assert!(drain(&mut i, Instant::ZERO).is_empty());
    assert_eq!(i.counters().total_dropped(), 4);
}

#[test]
fn frames_for_other_hosts_are_not_ours() {
    let mut i = iface_knowing_kernel();
    let mut f = testdata::ECHO_REQUEST.to_vec();
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x77]);
    assert_eq!(
        i.handle_frame(Instant::ZERO, &f),
        Some(DropReason::EthernetNotForUs)
    );
    let mut ipv6 = testdata::ECHO_REQUEST.to_vec();
    ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
    assert_eq!(
        i.handle_frame(Instant::ZERO, &ipv6),
        Some(DropReason::EthernetUnknownType)
    );
}

#[test]
fn reassembly_timeout_sends_time_exceeded() {
    let mut i = iface_knowing_kernel();
    i.handle_frame(Instant::ZERO, testdata::FRAG_FIRST);
    assert!(drain(&mut i, Instant::ZERO).is_empty());
    let t = i.poll_timeout().unwrap();
    assert_eq!(t, Instant::from_secs(30));
    i.handle_timeout(t);
    let out = drain(&mut i, t);
    assert_eq!(out.len(), 1);
    let (_, icmp) = ip_of(&out[0]);
    assert!(matches!(
        IcmpRepr::parse(&icmp).unwrap(),
        IcmpRepr::TimeExceeded { code: 1, .. }
    ));
    assert_eq!(i.counters().dropped(DropReason::ReassemblyTimeout), 1);
}

#[test]
fn icmp_errors_are_rate_limited() {
    let mut c = config();
    c.icmp.error_burst = 3;
    c.icmp.error_rate_per_sec = 10;
    let mut i = Interface::new(c, Instant::ZERO);
    i.handle_frame(Instant::ZERO, testdata::ARP_REQUEST);
    drain(&mut i, Instant::ZERO);
    for _ in 0..10 {
        i.handle_frame(Instant::ZERO, testdata::UDP_TO_CLOSED_PORT);
    }
    assert_eq!(drain(&mut i, Instant::ZERO).len(), 3);
    assert_eq!(i.counters().icmp_rate_limited, 7);
    // 100 ms later one more token.
    i.handle_frame(Instant::from_millis(100), testdata::UDP_TO_CLOSED_PORT);
    assert_eq!(drain(&mut i, Instant::from_millis(100)).len(), 1);
}

#[test]
fn off_subnet_traffic_goes_via_the_gateway() {
    let mut c = config();
    c.gateway = Some(KERNEL_IP);
    let mut i = Interface::new(c, Instant::ZERO);
    i.send_echo_request(Instant::ZERO, Ipv4Addr::new(192, 0, 2, 1), 1, 1, b"x")
        .unwrap();
    let out = drain(&mut i, Instant::ZERO);
    let arp = ArpRepr::parse(&out[0][14..]).unwrap();
    assert_eq!(
        arp.target_protocol_addr, KERNEL_IP,
        "resolves the gateway, not the destination"
    );
    let mut nogw = Interface::new(config(), Instant::ZERO);
    assert_eq!(
        nogw.send_echo_request(Instant::ZERO, Ipv4Addr::new(192, 0, 2, 1), 1, 1, b"x"),
        Err(DropReason::NoRoute)
    );
}

#[test]
fn echo_reply_is_delivered_to_the_pinger() {
    let mut c = config();
    c.mac = KERNEL_MAC;
    c.ip = Ipv4Cidr::new(KERNEL_IP, 24);
    c.static_neighbors = vec![(PEER_IP, PEER_MAC)];
    let mut i = Interface::new(c, Instant::ZERO);
    i.send_echo_request(Instant::ZERO, PEER_IP, 5435, 1, &[0x55; 24])
        .unwrap();
    assert_eq!(drain(&mut i, Instant::ZERO).len(), 1);
    assert_eq!(
        i.handle_frame(Instant::from_millis(3), testdata::ECHO_REPLY),
        None
    );
    let reply = i.poll_echo_reply().unwrap();
    assert_eq!(
        (reply.from, reply.ident, reply.seq_no, reply.data.len()),
        (IpAddr::V4(PEER_IP), 5435, 1, 24)
    );
}

#[test]
fn a_thousand_garbage_frames_leave_the_interface_working() {
    let mut i = iface_knowing_kernel();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed);
    for n in 0..1000 {
        let base = testdata::ALL[n % testdata::ALL.len()];
        let mut f = base.to_vec();
        match n % 4 {
            0 => {
                let len = rng.gen_range(0..1600);
                f = (0..len).map(|_| rng.gen()).collect();
            }
            1 => f.truncate(rng.gen_range(0..base.len())),
            2 => {
                // Lie in a length field: IPv4 total length or UDP length.
                let at = if rng.gen() { 16 } else { 38 };
                if f.len() > at + 1 {
                    f[at] = rng.gen();
                    f[at + 1] = rng.gen();
                }
            }
            _ => {
                for _ in 0..rng.gen_range(1..4) {
                    let at = rng.gen_range(0..f.len());
                    f[at] ^= 1 << rng.gen_range(0..8);
                }
            }
        }
        // Keep them addressed to us so they reach the deeper layers.
        if f.len() >= 6 && n % 4 != 0 {
            f[..6].copy_from_slice(&PEER_MAC.0);
        }
        i.handle_frame(Instant::from_millis(n as i64), &f);
        drain(&mut i, Instant::from_millis(n as i64));
    }
    let c = i.counters();
    assert_eq!(c.rx_frames, 1001);
    assert!(
        c.total_dropped() > 500,
        "most garbage is dropped: {}",
        c.total_dropped()
    );
    assert!(c.dropped(DropReason::Ipv4Checksum) + c.dropped(DropReason::Ipv4Truncated) > 0);
    i.handle_frame(Instant::from_secs(2), testdata::ECHO_REQUEST);
    let out = drain(&mut i, Instant::from_secs(2));
    assert!(
        out.iter()
            .any(|f| ip_of(f).1 == ip_of(testdata::ECHO_REPLY).1),
        "still answers ping"
    );
}

#[test]
fn raw_icmp_socket_sees_echo_replies_and_sends_requests() {
    let mut c = config();
    c.mac = KERNEL_MAC;
    c.ip = Ipv4Cidr::new(KERNEL_IP, 24);
    c.static_neighbors = vec![(PEER_IP, PEER_MAC)];
    let mut i = Interface::new(c, Instant::ZERO);
    let h = i.raw().socket(IpProtocol::ICMP, 65536);
    // The request as ping(8) builds it: a whole ICMP message, checksum included.
    let (_, req) = ip_of(testdata::ECHO_REQUEST);
    i.raw().send_to(h, &req, Some(IpAddr::V4(PEER_IP))).unwrap();
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out.len(), 1);
    assert_eq!(ip_of(&out[0]).1, req);
    assert_eq!(
        i.handle_frame(Instant::from_millis(1), testdata::ECHO_REPLY),
        None
    );
    let mut buf = [0u8; 128];
    let (n, from) = i.raw().recv_from(h, &mut buf, false).unwrap();
    assert_eq!(from, PEER_IP);
    assert_eq!(
        &buf[..n],
        &testdata::ECHO_REPLY[14..],
        "IP header included, as on Linux"
    );
}

#[test]
fn raw_socket_gets_reassembled_datagrams() {
    let mut i = iface_knowing_kernel();
    let h = i.raw().socket(IpProtocol::ICMP, 65536);
    i.handle_frame(Instant::ZERO, testdata::FRAG_FIRST);
    i.handle_frame(Instant::ZERO, testdata::FRAG_LAST);
    let mut buf = vec![0u8; 4096];
    let (n, _) = i.raw().recv_from(h, &mut buf, false).unwrap();
    assert_eq!(n, 20 + 2008);
    let (hdr, payload) = Ipv4Repr::parse(&buf[..n]).unwrap();
    assert!(!hdr.is_fragment());
    assert!(matches!(
        IcmpRepr::parse(payload).unwrap(),
        IcmpRepr::EchoRequest { .. }
    ));
}

// ------------------------------------------------------------ readiness (poll_ready)

fn drain_ready(i: &mut Interface) -> Vec<SocketHandle> {
    core::iter::from_fn(|| i.poll_ready()).collect()
}

/// The kernel's ICMP destination unreachable (`code`) about `ours`, a frame we sent:
/// its IP header and the first 8 bytes of its payload, as RFC 792 quotes them.
fn unreachable_about(ours: &[u8], code: u8) -> Vec<u8> {
    let (ip, payload) = ip_of(ours);
    let mut quote = vec![0u8; IPV4_HEADER_LEN + 8];
    ip.emit(&mut quote);
    quote[IPV4_HEADER_LEN..].copy_from_slice(&payload[..8]);
    let msg = IcmpRepr::DstUnreachable {
        code,
        next_hop_mtu: 0,
        data: &quote,
    };
    let hdr = Ipv4Repr {
        src_addr: KERNEL_IP,
        dst_addr: PEER_IP,
        protocol: IpProtocol::ICMP,
        ttl: 64,
        tos: 0,
        ident: 7,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        payload_len: msg.buffer_len(),
    };
    let mut f = vec![0u8; ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + msg.buffer_len()];
    EthernetRepr {
        src_addr: KERNEL_MAC,
        dst_addr: PEER_MAC,
        ethertype: EtherType::IPV4,
    }
    .emit(&mut f);
    hdr.emit(&mut f[ETHERNET_HEADER_LEN..]);
    msg.emit(&mut f[ETHERNET_HEADER_LEN + IPV4_HEADER_LEN..]);
    f
}

#[test]
fn poll_ready_names_only_the_udp_socket_a_datagram_reached() {
    let mut i = iface_knowing_kernel();
    let (h, other) = (i.udp().socket(), i.udp().socket());
    let any = Ipv4Addr::UNSPECIFIED;
    i.udp()
        .bind(
            h,
            SocketAddr::V4(SocketAddrV4::new(any, 5002)),
            &crate::socket::LocalAddrs::v4(PEER_IP),
        )
        .unwrap();
    i.udp()
        .bind(
            other,
            SocketAddr::V4(SocketAddrV4::new(any, 5003)),
            &crate::socket::LocalAddrs::v4(PEER_IP),
        )
        .unwrap();
    assert_eq!(drain_ready(&mut i), vec![]);
    assert_eq!(i.handle_frame(Instant::ZERO, testdata::UDP_DATAGRAM), None);
    assert_eq!(drain_ready(&mut i), vec![SocketHandle::Udp(h)]);
    // A datagram for nobody reaches no socket.
    let mut f = testdata::UDP_DATAGRAM.to_vec();
    f[36..38].copy_from_slice(&5004u16.to_be_bytes());
    f[40..42].copy_from_slice(&[0, 0]); // no UDP checksum, so the port can change
    assert_eq!(
        i.handle_frame(Instant::ZERO, &f),
        Some(DropReason::UdpNoSocket)
    );
    assert_eq!(drain_ready(&mut i), vec![]);
}

#[test]
fn poll_ready_names_the_udp_socket_an_icmp_error_reached() {
    let mut i = iface_knowing_kernel();
    let (conn, bystander) = (i.udp().socket(), i.udp().socket());
    i.udp()
        .connect(conn, SocketAddr::V4(SocketAddrV4::new(KERNEL_IP, 9)))
        .unwrap();
    i.udp()
        .connect(bystander, SocketAddr::V4(SocketAddrV4::new(KERNEL_IP, 10)))
        .unwrap();
    i.udp().send_to(conn, b"anyone?", None).unwrap();
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out.len(), 1);
    assert_eq!(drain_ready(&mut i), vec![SocketHandle::Udp(conn)], "sent");
    let port_unreachable = unreachable_about(&out[0], 3);
    assert_eq!(i.handle_frame(Instant::ZERO, &port_unreachable), None);
    assert_eq!(drain_ready(&mut i), vec![SocketHandle::Udp(conn)]);
    assert!(i.udp().can_recv(conn));
    // A soft error stores nothing on a UDP socket (Linux without IP_RECVERR).
    let host_unreachable = unreachable_about(&out[0], 1);
    assert_eq!(i.handle_frame(Instant::ZERO, &host_unreachable), None);
    assert_eq!(drain_ready(&mut i), vec![]);
}

/// A datagram held for ARP, or dropped for want of a route, leaves its socket's queue
/// without a frame of its own: the engine still names the socket.
#[test]
fn poll_ready_names_datagram_sockets_whose_output_left_without_a_frame() {
    let mut i = iface();
    let (held, unroutable) = (i.udp().socket(), i.udp().socket());
    let raw = i.raw().socket(IpProtocol::ICMP, 4096);
    i.udp()
        .send_to(
            held,
            b"x",
            Some(SocketAddr::V4(SocketAddrV4::new(KERNEL_IP, 9))),
        )
        .unwrap();
    i.udp()
        .send_to(
            unroutable,
            b"y",
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::new(192, 0, 2, 1),
                9,
            ))),
        )
        .unwrap();
    let (_, echo) = ip_of(testdata::ECHO_REQUEST);
    i.raw()
        .send_to(raw, &echo, Some(IpAddr::V4(KERNEL_IP)))
        .unwrap();
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out.len(), 1, "only the ARP request leaves");
    assert_eq!(i.counters().dropped(DropReason::NoRoute), 1);
    let mut ready = drain_ready(&mut i);
    ready.sort();
    assert_eq!(
        ready,
        vec![
            SocketHandle::Udp(held),
            SocketHandle::Udp(unroutable),
            SocketHandle::Raw(raw)
        ]
    );
}

/// ARP gives up: the TCP socket whose SYN waited hears "host unreachable" and is named;
/// the UDP socket whose datagram waited stores nothing (Linux) and is not.
#[test]
fn poll_ready_names_the_tcp_socket_an_arp_failure_reached() {
    let mut i = iface();
    let tcp = i.tcp().socket();
    let cx = i.tcp_context(Instant::ZERO);
    i.tcp()
        .connect(tcp, &cx, SocketAddr::V4(SocketAddrV4::new(KERNEL_IP, 80)))
        .unwrap();
    let udp = i.udp().socket();
    i.udp()
        .send_to(
            udp,
            b"x",
            Some(SocketAddr::V4(SocketAddrV4::new(KERNEL_IP, 9))),
        )
        .unwrap();
    drain(&mut i, Instant::ZERO);
    drain_ready(&mut i);
    let ready = loop {
        let now = i.poll_timeout().expect("ARP retries pending");
        assert!(now < Instant::from_secs(10), "ARP never gave up");
        i.handle_timeout(now);
        drain(&mut i, now);
        let ready = drain_ready(&mut i);
        if i.counters().dropped(DropReason::ArpFailed) > 0 {
            break ready;
        }
    };
    assert_eq!(ready, vec![SocketHandle::Tcp(tcp)]);
    assert_eq!(i.tcp().take_error(tcp), Some(TcpError::HostUnreachable));
    assert!(!i.udp().can_recv(udp));
}

#[test]
fn poll_ready_names_raw_sockets_that_got_a_copy() {
    let mut i = iface_knowing_kernel();
    let icmp = i.raw().socket(IpProtocol::ICMP, 65536);
    let udp = i.raw().socket(IpProtocol::UDP, 65536);
    assert_eq!(i.handle_frame(Instant::ZERO, testdata::ECHO_REQUEST), None);
    assert_eq!(drain_ready(&mut i), vec![SocketHandle::Raw(icmp)]);
    drain(&mut i, Instant::ZERO);
    // Reassembled datagrams reach raw sockets too.
    i.handle_frame(Instant::ZERO, testdata::FRAG_FIRST);
    assert_eq!(
        drain_ready(&mut i),
        vec![],
        "half a datagram reaches nobody"
    );
    i.handle_frame(Instant::ZERO, testdata::FRAG_LAST);
    assert_eq!(drain_ready(&mut i), vec![SocketHandle::Raw(icmp)]);
    assert!(!i.raw().can_recv(udp));
}

/// A link whose peer answers every frame the stack sends with the next echo request,
/// queued before `send` returns (as the kernel does behind a TAP: its input runs in
/// our `write(2)`), up to `left` requests; it counts reads and the empty ones.
struct EchoingLink {
    rx: std::collections::VecDeque<Vec<u8>>,
    left: usize,
    sent: usize,
    reads: usize,
    empty_reads: usize,
}

impl EchoingLink {
    /// A link with `queued` requests waiting and `left` more to answer with.
    fn new(queued: usize, left: usize) -> EchoingLink {
        EchoingLink {
            rx: (0..queued)
                .map(|_| testdata::ECHO_REQUEST.to_vec())
                .collect(),
            left,
            sent: 0,
            reads: 0,
            empty_reads: 0,
        }
    }
}

impl crate::link::Link for EchoingLink {
    fn recv(&mut self, _now: Instant, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        self.reads += 1;
        let Some(f) = self.rx.pop_front() else {
            self.empty_reads += 1;
            return Ok(None);
        };
        buf[..f.len()].copy_from_slice(&f);
        Ok(Some(f.len()))
    }
    fn send(&mut self, _now: Instant, _frame: &[u8]) -> std::io::Result<()> {
        self.sent += 1;
        if self.left > 0 {
            self.left -= 1;
            self.rx.push_back(testdata::ECHO_REQUEST.to_vec());
        }
        Ok(())
    }
}

#[test]
fn poll_link_reads_again_after_sending_so_a_synchronous_answer_needs_no_new_round() {
    let mut i = iface_knowing_kernel();
    let mut link = EchoingLink::new(1, 2);
    // Request 1 in, reply 1 out (request 2 queued by it), request 2 in, reply 2 out
    // (request 3 queued), request 3 in, reply 3 out: one call.
    let moved = i.poll_link(Instant::ZERO, &mut link).unwrap();
    assert_eq!((link.sent, moved), (3, 6));
    assert!(link.rx.is_empty());
    // One empty read per pass that ended a batch: three passes with output, and the
    // last one, after reply 3, found nothing.
    assert_eq!((link.reads, link.empty_reads), (7, 4));
    // Nothing went out in a pass that read nothing: the call is over.
    let mut quiet = EchoingLink::new(0, 0);
    assert_eq!(i.poll_link(Instant::ZERO, &mut quiet).unwrap(), 0);
    assert_eq!(quiet.reads, 1);
}

#[test]
fn poll_link_clocked_reads_the_clock_at_every_pass() {
    // Three passes with output and a last one that finds nothing: each reads the
    // clock, so what a pass receives is timed after what the pass before sent (one
    // time for all of them measured RTTs of 0 µs), and the call returns the last time.
    let mut i = iface_knowing_kernel();
    let mut link = EchoingLink::new(1, 2);
    let mut reads = 0;
    let mut clock = || {
        reads += 1;
        Instant::from_micros(10 * reads)
    };
    let (moved, last) = i.poll_link_clocked(&mut clock, &mut link).unwrap();
    assert_eq!(moved, 6);
    assert_eq!(reads, 4);
    assert_eq!(last, Instant::from_micros(40));
    // A clock that steps back is not followed.
    let mut quiet = EchoingLink::new(1, 1);
    let mut times = [Instant::from_micros(100), Instant::from_micros(50)].into_iter();
    let (_, last) = i
        .poll_link_clocked(&mut || times.next().unwrap_or(Instant::ZERO), &mut quiet)
        .unwrap();
    assert_eq!(last, Instant::from_micros(100));
}

#[test]
fn poll_link_follows_its_own_output_a_bounded_number_of_times() {
    let mut i = iface_knowing_kernel();
    let mut link = EchoingLink::new(1, 100);
    i.poll_link(Instant::ZERO, &mut link).unwrap();
    // The first pass and at most four that follow up on output.
    assert_eq!(link.sent, 5);
    assert_eq!(
        link.rx.len(),
        1,
        "the answer to the last reply waits for the next call"
    );
}

#[test]
fn socket_ttl_and_tos_reach_the_ipv4_header_and_accepted_connections_inherit_them() {
    let mut i = iface_knowing_kernel();
    let any = |port| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
    // A listener with IP_TTL 9 and IP_TOS 0xbb: the child's SYN,ACK carries TTL 9 and
    // TOS 0xb8 (TCP keeps the ECN bits its own).
    let l = i.tcp().socket();
    i.tcp().set_hop_limit(l, Some(9)).unwrap();
    i.tcp().set_tclass(l, 0xbb).unwrap();
    i.tcp().listen(l, any(5001), 4).unwrap();
    assert_eq!(i.handle_frame(Instant::ZERO, testdata::TCP_SYN), None);
    // A client connection with TTL 3 and TOS 0x10, and one left at the defaults.
    let cx = i.tcp_context(Instant::ZERO);
    let (c, d) = (i.tcp().socket(), i.tcp().socket());
    i.tcp().set_hop_limit(c, Some(3)).unwrap();
    i.tcp().set_tclass(c, 0x10).unwrap();
    let kernel = SocketAddr::V4(SocketAddrV4::new(KERNEL_IP, 80));
    i.tcp().connect(c, &cx, kernel).unwrap();
    i.tcp().connect(d, &cx, kernel).unwrap();
    // A UDP socket keeps all eight TOS bits.
    let u = i.udp().socket();
    i.udp()
        .set_ip_tx(
            u,
            IpTx {
                hop_limit: Some(5),
                tclass: 0x2d,
            },
        )
        .unwrap();
    i.udp().send_to(u, b"x", Some(kernel)).unwrap();
    let mut seen: Vec<(u8, u8, u8)> = drain(&mut i, Instant::ZERO)
        .iter()
        .map(|f| {
            let (ip, _) = ip_of(f);
            (ip.protocol.0, ip.ttl, ip.tos)
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        [(6, 3, 0x10), (6, 9, 0xb8), (6, 64, 0), (17, 5, 0x2d)]
    );
}
