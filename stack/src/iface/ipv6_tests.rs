//! IPv6 through an [`Interface`]: whole frames in, whole frames out, several from the
//! veth capture in `wire::testdata6`.

use super::ipv6::{flow_label, FLOW_LABEL_DOMAIN};
use super::*;
use crate::socket::tcp::isn::SipKey;
use crate::wire::testdata6::{self, KERNEL_IP6, PEER_IP6};
use crate::wire::{
    link_local_address, multicast_mac, solicited_node, Icmpv6Repr, Ipv6Cidr, Ipv6FragRepr,
    Ipv6Repr, NdpRepr, PrefixInfo, ALL_ROUTERS, IPV6_HEADER_LEN,
};
use core::net::{IpAddr, Ipv6Addr, SocketAddrV6};

const KERNEL_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x0a]);
const PEER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x0b]);

/// The stack plays the capture's fd00::2 side; DAD off unless a test wants it.
fn config() -> Config {
    let mut c = Config::new(PEER_MAC, Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 2), 24));
    c.arp.gratuitous_at_start = false;
    c.ipv6.enabled = true;
    c.ipv6.addresses = vec![Ipv6Cidr::new(PEER_IP6, 64)];
    c.ipv6.dad_transmits = 0;
    c.ipv6.accept_ra = false;
    c
}

fn drain(iface: &mut Interface, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1514];
    while let Some(n) = iface.poll_transmit(now, &mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

/// An IPv6 frame's Ethernet header, IPv6 header, and the bytes after it.
fn parse6(frame: &[u8]) -> (EthernetRepr, Ipv6Repr, Vec<u8>) {
    let (eth, p) = EthernetRepr::parse(frame).unwrap();
    assert_eq!(eth.ethertype, EtherType::IPV6, "not IPv6: {frame:02x?}");
    let (ip, payload) = Ipv6Repr::parse(p).unwrap();
    (eth, ip, payload.to_vec())
}

/// The ICMPv6 message of an unfragmented frame, past any Hop-by-Hop header.
fn icmp6(frame: &[u8]) -> (Ipv6Repr, Icmpv6Repr<'static>) {
    let (_, ip, payload) = parse6(frame);
    let walked = crate::wire::walk_ext_headers(ip.next_header, &payload, 40, 6, true).unwrap();
    assert_eq!(walked.protocol, IpProtocol::ICMPV6);
    let msg: &'static [u8] = Box::leak(payload[walked.offset..].to_vec().into_boxed_slice());
    (
        ip,
        Icmpv6Repr::parse(ip.src_addr, ip.dst_addr, msg).unwrap(),
    )
}

fn frame6(dst_mac: EthernetAddress, ip: Ipv6Repr, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + payload.len()];
    EthernetRepr {
        src_addr: KERNEL_MAC,
        dst_addr: dst_mac,
        ethertype: EtherType::IPV6,
    }
    .emit(&mut f);
    Ipv6Repr {
        payload_len: payload.len(),
        ..ip
    }
    .emit(&mut f[14..]);
    f[54..].copy_from_slice(payload);
    f
}

fn ip6(src: Ipv6Addr, dst: Ipv6Addr, nh: IpProtocol, hop_limit: u8) -> Ipv6Repr {
    Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: nh,
        hop_limit,
        traffic_class: 0,
        flow_label: 0,
        payload_len: 0,
    }
}

fn icmp_frame(src: Ipv6Addr, dst: Ipv6Addr, hop: u8, msg: Icmpv6Repr<'_>) -> Vec<u8> {
    let mut b = vec![0u8; msg.buffer_len()];
    msg.emit(src, dst, &mut b);
    let mac = if dst.is_multicast() {
        multicast_mac(dst)
    } else {
        PEER_MAC
    };
    frame6(mac, ip6(src, dst, IpProtocol::ICMPV6, hop), &b)
}

/// An interface that already knows the kernel side's MAC (from its solicitation).
fn iface_knowing_kernel() -> Interface {
    let mut i = Interface::new(config(), Instant::ZERO);
    drain(&mut i, Instant::ZERO);
    assert_eq!(
        i.handle_frame(Instant::ZERO, testdata6::NEIGHBOR_SOLICIT),
        None
    );
    drain(&mut i, Instant::ZERO);
    i
}

#[test]
fn start_reports_groups_probes_then_solicits_routers() {
    let mut c = config();
    c.ipv6.addresses.clear();
    c.ipv6.dad_transmits = 1;
    c.ipv6.accept_ra = true;
    let mut i = Interface::new(c, Instant::ZERO);
    let ll = link_local_address(PEER_MAC);
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out.len(), 2, "MLD report and DAD probe");
    // RFC 3810 §5.2.13 / RFC 4862 §5.4.2: report from :: with hop limit 1.
    let (ip, mld) = icmp6(&out[0]);
    assert_eq!((ip.src_addr, ip.hop_limit), (Ipv6Addr::UNSPECIFIED, 1));
    assert_eq!(ip.next_header, IpProtocol::HOP_BY_HOP);
    let Icmpv6Repr::Mld2Report(r) = mld else {
        panic!("{mld:?}")
    };
    assert_eq!(
        r.groups().map(|(_, g)| g).collect::<Vec<_>>(),
        vec![solicited_node(ll)]
    );
    let (ip, ns) = icmp6(&out[1]);
    assert_eq!(ip.src_addr, Ipv6Addr::UNSPECIFIED);
    assert_eq!(ip.dst_addr, solicited_node(ll));
    assert_eq!(ip.hop_limit, 255);
    assert_eq!(
        ns,
        Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
            target: ll,
            lladdr: None
        })
    );
    assert_eq!(i.ipv6_addrs()[0].state, AddrState::Tentative);
    // Unicast to a tentative address is not accepted.
    let echo = icmp_frame(
        KERNEL_IP6,
        ll,
        64,
        Icmpv6Repr::EchoRequest {
            ident: 1,
            seq_no: 1,
            data: b"x",
        },
    );
    assert_eq!(
        i.handle_frame(Instant::ZERO, &echo),
        Some(DropReason::Ipv6Tentative)
    );
    // RetransTimer later, DAD is done: a report from the link-local address and a
    // router solicitation with our MAC.
    assert_eq!(i.poll_timeout(), Some(Instant::from_secs(1)));
    i.handle_timeout(Instant::from_secs(1));
    assert_eq!(i.ipv6_addrs()[0].state, AddrState::Preferred);
    let out = drain(&mut i, Instant::from_secs(1));
    assert_eq!(out.len(), 2);
    assert_eq!(icmp6(&out[0]).0.src_addr, ll);
    let (ip, rs) = icmp6(&out[1]);
    assert_eq!((ip.src_addr, ip.dst_addr), (ll, ALL_ROUTERS));
    assert_eq!(
        rs,
        Icmpv6Repr::Ndp(NdpRepr::RouterSolicit {
            lladdr: Some(PEER_MAC)
        })
    );
    // Three solicitations in all, 4 s apart (RFC 4861 §10), then no more.
    let mut rs_count = 1;
    for s in 2..20 {
        i.handle_timeout(Instant::from_secs(s));
        rs_count += drain(&mut i, Instant::from_secs(s)).len();
    }
    assert_eq!(rs_count, 3);
    assert_eq!(i.counters().ndp_tx_router_solicits, 3);
}

#[test]
fn dad_detects_duplicates_from_advert_and_from_probe() {
    for by_probe in [false, true] {
        let mut c = config();
        c.ipv6.dad_transmits = 2;
        let mut i = Interface::new(c, Instant::ZERO);
        drain(&mut i, Instant::ZERO);
        let msg = if by_probe {
            Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
                target: PEER_IP6,
                lladdr: None,
            })
        } else {
            Icmpv6Repr::Ndp(NdpRepr::NeighborAdvert {
                router: false,
                solicited: false,
                override_: true,
                target: PEER_IP6,
                lladdr: Some(KERNEL_MAC),
            })
        };
        let (src, dst) = if by_probe {
            (Ipv6Addr::UNSPECIFIED, solicited_node(PEER_IP6))
        } else {
            (KERNEL_IP6, crate::wire::ALL_NODES)
        };
        let f = icmp_frame(src, dst, 255, msg);
        assert_eq!(i.handle_frame(Instant::from_millis(500), &f), None);
        for s in 1..5 {
            i.handle_timeout(Instant::from_secs(s));
        }
        let a = i
            .ipv6_addrs()
            .into_iter()
            .find(|a| a.cidr.address() == PEER_IP6)
            .unwrap();
        assert_eq!(a.state, AddrState::Duplicate);
        assert_eq!(i.counters().ndp_dad_duplicates, 1);
        // The link-local address was not touched.
        assert_eq!(i.ipv6_addrs()[0].state, AddrState::Preferred);
    }
}

#[test]
fn solicitation_gets_the_advertisement_linux_sent() {
    let mut i = Interface::new(config(), Instant::ZERO);
    drain(&mut i, Instant::ZERO);
    assert_eq!(
        i.handle_frame(Instant::ZERO, testdata6::NEIGHBOR_SOLICIT),
        None
    );
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out.len(), 1);
    // Same addresses, flags, option and checksum as the kernel's answer; the kernel
    // set no flow label either.
    assert_eq!(out[0], testdata6::NEIGHBOR_ADVERT);
    // The solicitation taught us the sender (STALE, RFC 4861 §7.2.3).
    assert_eq!(i.ndp_neighbors().get(KERNEL_IP6), Some(KERNEL_MAC));
    assert_eq!(
        i.ndp_neighbors().state(KERNEL_IP6),
        Some(NeighborState::Stale)
    );
}

#[test]
fn echo_request_gets_the_reply_linux_sent() {
    let mut i = iface_knowing_kernel();
    assert_eq!(i.handle_frame(Instant::ZERO, testdata6::ECHO_REQUEST), None);
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out.len(), 1);
    let (_, ip, _) = parse6(&out[0]);
    let (_, want_ip, _) = parse6(testdata6::ECHO_REPLY);
    assert_eq!(
        (ip.src_addr, ip.dst_addr),
        (want_ip.src_addr, want_ip.dst_addr)
    );
    // Everything past the flow label (which Linux picks at random) is the kernel's.
    assert_eq!(&out[0][..15], &testdata6::ECHO_REPLY[..15]);
    assert_eq!(&out[0][18..], &testdata6::ECHO_REPLY[18..]);
    assert_eq!(i.counters().icmpv6_tx_echo_replies, 1);
}

#[test]
fn fragmented_echo_is_reassembled_and_the_reply_fragmented() {
    let mut i = iface_knowing_kernel();
    // Last fragment first: order does not matter.
    assert_eq!(i.handle_frame(Instant::ZERO, testdata6::FRAG_LAST), None);
    assert_eq!(i.handle_frame(Instant::ZERO, testdata6::FRAG_FIRST), None);
    assert_eq!(i.counters().ipv6_reassembled, 1);
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out.len(), 2, "2056-byte reply in two fragments at MTU 1500");
    let mut whole = Vec::new();
    let mut ident = None;
    for f in &out {
        let (_, ip, payload) = parse6(f);
        assert!(IPV6_HEADER_LEN + ip.payload_len <= 1500);
        assert_eq!(ip.next_header, IpProtocol::IPV6_FRAG);
        let fh = Ipv6FragRepr::parse(&payload).unwrap();
        assert_eq!(fh.offset as usize, whole.len());
        assert!(ident.is_none_or(|id| id == fh.ident));
        ident = Some(fh.ident);
        whole.extend_from_slice(&payload[8..]);
    }
    let Icmpv6Repr::EchoReply { seq_no, data, .. } =
        Icmpv6Repr::parse(PEER_IP6, KERNEL_IP6, &whole).unwrap()
    else {
        panic!("not an echo reply");
    };
    assert_eq!((seq_no, data.len()), (2, 2048));
    assert_eq!(i.counters().ipv6_tx_fragments, 2);
}

fn fragment(ident: u32, offset: u16, more: bool, data: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 8 + data.len()];
    Ipv6FragRepr {
        next_header: IpProtocol::ICMPV6,
        offset,
        more_frags: more,
        ident,
    }
    .emit(&mut p);
    p[8..].copy_from_slice(data);
    frame6(
        PEER_MAC,
        ip6(KERNEL_IP6, PEER_IP6, IpProtocol::IPV6_FRAG, 64),
        &p,
    )
}

#[test]
fn overlapping_fragments_drop_the_whole_datagram() {
    let mut i = iface_knowing_kernel();
    assert_eq!(
        i.handle_frame(Instant::ZERO, &fragment(7, 0, true, &[0; 16])),
        None
    );
    // RFC 5722: any overlap discards the datagram, held fragments included.
    assert_eq!(
        i.handle_frame(Instant::ZERO, &fragment(7, 8, false, &[0; 16])),
        Some(DropReason::Reassembly6Overlap)
    );
    assert_eq!(i.reassembler6().in_progress(), 0);
    // Exact duplicates are ignored; a non-last fragment not a multiple of 8 is refused
    // with a Parameter Problem pointing at the payload length (RFC 8200 §4.5).
    assert_eq!(
        i.handle_frame(Instant::ZERO, &fragment(8, 0, true, &[0; 16])),
        None
    );
    assert_eq!(
        i.handle_frame(Instant::ZERO, &fragment(8, 0, true, &[0; 16])),
        Some(DropReason::Reassembly6Duplicate)
    );
    assert_eq!(
        i.handle_frame(Instant::ZERO, &fragment(9, 0, true, &[0; 12])),
        Some(DropReason::Reassembly6Invalid)
    );
    let out = drain(&mut i, Instant::ZERO);
    let (_, pp) = icmp6(&out[0]);
    assert!(
        matches!(
            pp,
            Icmpv6Repr::ParamProblem {
                code: 0,
                pointer: 4,
                ..
            }
        ),
        "{pp:?}"
    );
    // A frame to a multicast MAC in between must not silence later errors (RFC 4443
    // §2.4 (e.3) is about the frame that caused the error).
    let q = icmp_frame(
        "fe80::1".parse().unwrap(),
        crate::wire::ALL_NODES,
        1,
        Icmpv6Repr::MldQuery {
            group: Ipv6Addr::UNSPECIFIED,
        },
    );
    assert_eq!(i.handle_frame(Instant::ZERO, &q), None);
    drain(&mut i, Instant::ZERO);
    // The incomplete datagram times out after 30 s with Time Exceeded code 1.
    i.handle_timeout(Instant::from_secs(31));
    assert_eq!(i.counters().dropped(DropReason::Reassembly6Timeout), 1);
    let out = drain(&mut i, Instant::from_secs(31));
    let (_, te) = icmp6(out.last().unwrap());
    assert!(
        matches!(te, Icmpv6Repr::TimeExceeded { code: 1, .. }),
        "{te:?} {out:02x?}"
    );
}

/// A packet to us with one extension header of type `nh` carrying `body`.
fn with_ext(nh: IpProtocol, body: &[u8]) -> Vec<u8> {
    let echo = Icmpv6Repr::EchoRequest {
        ident: 1,
        seq_no: 1,
        data: b"ext",
    };
    let mut p = vec![58u8, 0];
    p.extend_from_slice(body);
    while p.len() % 8 != 0 {
        p.push(0);
    }
    p[1] = (p.len() / 8 - 1) as u8;
    let at = p.len();
    p.resize(at + echo.buffer_len(), 0);
    echo.emit(KERNEL_IP6, PEER_IP6, &mut p[at..]);
    frame6(PEER_MAC, ip6(KERNEL_IP6, PEER_IP6, nh, 64), &p)
}

#[test]
fn extension_headers_follow_rfc_8200() {
    let mut i = iface_knowing_kernel();
    // Known padding: the echo inside is answered.
    let f = with_ext(IpProtocol::IPV6_OPTS, &[1, 2, 0, 0]);
    assert_eq!(i.handle_frame(Instant::ZERO, &f), None);
    assert!(matches!(
        icmp6(&drain(&mut i, Instant::ZERO)[0]).1,
        Icmpv6Repr::EchoReply { .. }
    ));
    // Unknown option, type bits 00: skipped.
    let f = with_ext(IpProtocol::HOP_BY_HOP, &[0x1e, 2, 0, 0]);
    assert_eq!(i.handle_frame(Instant::ZERO, &f), None);
    drain(&mut i, Instant::ZERO);
    // 01: silently discarded.
    let f = with_ext(IpProtocol::IPV6_OPTS, &[0x5e, 2, 0, 0]);
    assert_eq!(
        i.handle_frame(Instant::ZERO, &f),
        Some(DropReason::Ipv6OptionDiscard)
    );
    assert!(drain(&mut i, Instant::ZERO).is_empty());
    // 10: Parameter Problem code 2 pointing at the option type (40 + 2).
    let f = with_ext(IpProtocol::IPV6_OPTS, &[0x9e, 2, 0, 0]);
    assert_eq!(
        i.handle_frame(Instant::ZERO, &f),
        Some(DropReason::Ipv6ParamProblem)
    );
    let (ip, pp) = icmp6(&drain(&mut i, Instant::ZERO)[0]);
    assert_eq!(ip.dst_addr, KERNEL_IP6);
    let Icmpv6Repr::ParamProblem {
        code,
        pointer,
        data,
    } = pp
    else {
        panic!("{pp:?}")
    };
    assert_eq!((code, pointer), (2, 42));
    assert_eq!(data, &f[14..], "the whole offending packet is quoted");
    // Routing header type 0 with a segment left: code 0 at the routing type (RFC 5095).
    let mut rh = vec![0u8, 1, 0, 0, 0, 0];
    rh.extend_from_slice(&[0; 16]);
    let f = with_ext(IpProtocol::IPV6_ROUTE, &rh);
    assert_eq!(
        i.handle_frame(Instant::ZERO, &f),
        Some(DropReason::Ipv6ParamProblem)
    );
    let (_, pp) = icmp6(&drain(&mut i, Instant::ZERO)[0]);
    assert!(
        matches!(
            pp,
            Icmpv6Repr::ParamProblem {
                code: 0,
                pointer: 42,
                ..
            }
        ),
        "{pp:?}"
    );
    // An upper layer we do not speak: code 1 at the Next Header field (6).
    let f = frame6(
        PEER_MAC,
        ip6(KERNEL_IP6, PEER_IP6, IpProtocol(132), 64),
        &[0; 12],
    );
    assert_eq!(
        i.handle_frame(Instant::ZERO, &f),
        Some(DropReason::Ipv6UnknownProtocol)
    );
    let (_, pp) = icmp6(&drain(&mut i, Instant::ZERO)[0]);
    assert!(
        matches!(
            pp,
            Icmpv6Repr::ParamProblem {
                code: 1,
                pointer: 6,
                ..
            }
        ),
        "{pp:?}"
    );
    assert_eq!(i.counters().icmpv6_tx_errors, 3);
}

#[test]
fn icmpv6_errors_share_the_icmp_rate_limit() {
    let mut c = config();
    c.icmp.error_burst = 2;
    c.icmp.error_rate_per_sec = 1;
    let mut i = Interface::new(c, Instant::ZERO);
    i.handle_frame(Instant::ZERO, testdata6::NEIGHBOR_SOLICIT);
    drain(&mut i, Instant::ZERO);
    let f = frame6(
        PEER_MAC,
        ip6(KERNEL_IP6, PEER_IP6, IpProtocol(132), 64),
        &[0; 12],
    );
    for _ in 0..5 {
        i.handle_frame(Instant::ZERO, &f);
    }
    assert_eq!(drain(&mut i, Instant::ZERO).len(), 2);
    assert_eq!(i.counters().icmp_rate_limited, 3);
}

fn router_advert(mtu: Option<u32>, prefix: Option<PrefixInfo>, lifetime: u16) -> Vec<u8> {
    let mut prefixes = [None; 4];
    prefixes[0] = prefix;
    icmp_frame(
        "fe80::1".parse().unwrap(),
        crate::wire::ALL_NODES,
        255,
        Icmpv6Repr::Ndp(NdpRepr::RouterAdvert {
            hop_limit: 61,
            managed: false,
            other: false,
            router_lifetime: lifetime,
            reachable_time: 0,
            retrans_time: 0,
            lladdr: Some(KERNEL_MAC),
            mtu,
            prefixes,
        }),
    )
}

#[test]
fn router_advert_gives_prefix_address_router_and_mtu() {
    let mut c = config();
    c.ipv6.addresses.clear();
    c.ipv6.accept_ra = true;
    c.ipv6.dad_transmits = 1;
    let mut i = Interface::new(c, Instant::ZERO);
    i.handle_timeout(Instant::from_secs(1));
    drain(&mut i, Instant::from_secs(1));
    let prefix: Ipv6Addr = "2001:db8:1::".parse().unwrap();
    let ra = router_advert(
        Some(1400),
        Some(PrefixInfo {
            prefix,
            prefix_len: 64,
            on_link: true,
            autonomous: true,
            valid_lifetime: 3600,
            preferred_lifetime: 1800,
        }),
        1800,
    );
    let t = Instant::from_secs(2);
    assert_eq!(i.handle_frame(t, &ra), None);
    let router: Ipv6Addr = "fe80::1".parse().unwrap();
    assert_eq!(i.ipv6_router(), Some(router));
    assert_eq!(i.ndp_neighbors().get(router), Some(KERNEL_MAC));
    let global = crate::wire::eui64_address(prefix, PEER_MAC);
    let a = i.ipv6_addrs();
    let slaac = a.iter().find(|a| a.cidr.address() == global).unwrap();
    assert_eq!(
        (slaac.origin, slaac.state),
        (AddrOrigin::Slaac, AddrState::Tentative)
    );
    // A report for the new group and a DAD probe for the new address.
    let out = drain(&mut i, t);
    assert_eq!(out.len(), 2);
    assert!(
        matches!(icmp6(&out[1]).1, Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit { target, .. }) if target == global)
    );
    i.handle_timeout(t + Duration::from_secs(1));
    assert!(i
        .ipv6_addrs()
        .iter()
        .any(|a| a.cidr.address() == global && a.state == AddrState::Preferred));
    // The MTU option lowers the link MTU for IPv6: a 1400-byte limit.
    let dst: Ipv6Addr = "2001:db8:99::1".parse().unwrap();
    assert_eq!(i.ipv6_path_mtu(dst), 1400);
    // Off-link destinations go to the router's MAC, from the global address.
    let t = t + Duration::from_secs(1);
    i.send_echo_request(t, dst, 9, 1, &[0; 1500]).unwrap();
    let out = drain(&mut i, t);
    assert_eq!(out.len(), 2, "fragmented at 1400");
    for f in &out {
        let (eth, ip, _) = parse6(f);
        assert_eq!(eth.dst_addr, KERNEL_MAC);
        assert_eq!(ip.src_addr, global);
        assert_eq!(ip.hop_limit, 61, "Cur Hop Limit from the RA");
        assert!(f.len() - 14 <= 1400);
    }
    // The address expires with its valid lifetime; the router with its own.
    i.handle_timeout(Instant::from_secs(2 + 1800));
    assert_eq!(i.ipv6_router(), None);
    i.handle_timeout(Instant::from_secs(2 + 3600));
    assert!(i.ipv6_addrs().iter().all(|a| a.cidr.address() != global));
}

#[test]
fn router_advert_rules() {
    let mut i = Interface::new(config(), Instant::ZERO);
    // accept_ra off: ignored.
    let ra = router_advert(None, None, 600);
    assert_eq!(
        i.handle_frame(Instant::ZERO, &ra),
        Some(DropReason::NdpIgnored)
    );
    let mut c = config();
    c.ipv6.accept_ra = true;
    let mut i = Interface::new(c, Instant::ZERO);
    // Hop limit below 255: it came from off the link (RFC 4861 §6.1.2).
    let mut off_link = ra.clone();
    off_link[14 + 7] = 254;
    assert_eq!(
        i.handle_frame(Instant::ZERO, &off_link),
        Some(DropReason::NdpInvalid)
    );
    // A prefix length other than 64 forms no address, but is on-link.
    let p = PrefixInfo {
        prefix: "2001:db8:2::".parse().unwrap(),
        prefix_len: 48,
        on_link: true,
        autonomous: true,
        valid_lifetime: 100,
        preferred_lifetime: 100,
    };
    assert_eq!(
        i.handle_frame(Instant::ZERO, &router_advert(None, Some(p), 0)),
        None
    );
    assert_eq!(i.ipv6_addrs().len(), 2);
    assert_eq!(i.ipv6_router(), None, "lifetime 0: not a default router");
}

#[test]
fn resolution_queues_then_releases_and_ages_like_rfc_4861() {
    let mut i = Interface::new(config(), Instant::ZERO);
    drain(&mut i, Instant::ZERO);
    i.send_echo_request(Instant::ZERO, KERNEL_IP6, 1, 1, b"hi")
        .unwrap();
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out.len(), 1);
    let (ip, ns) = icmp6(&out[0]);
    assert_eq!(ip.dst_addr, solicited_node(KERNEL_IP6));
    assert_eq!(
        ns,
        Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
            target: KERNEL_IP6,
            lladdr: Some(PEER_MAC)
        })
    );
    assert_eq!(
        i.ndp_neighbors().state(KERNEL_IP6),
        Some(NeighborState::Incomplete)
    );
    let na = icmp_frame(
        KERNEL_IP6,
        PEER_IP6,
        255,
        Icmpv6Repr::Ndp(NdpRepr::NeighborAdvert {
            router: false,
            solicited: true,
            override_: true,
            target: KERNEL_IP6,
            lladdr: Some(KERNEL_MAC),
        }),
    );
    assert_eq!(i.handle_frame(Instant::from_millis(1), &na), None);
    let out = drain(&mut i, Instant::from_millis(1));
    assert_eq!(out.len(), 1);
    assert!(matches!(icmp6(&out[0]).1, Icmpv6Repr::EchoRequest { .. }));
    assert_eq!(parse6(&out[0]).0.dst_addr, KERNEL_MAC);
    assert_eq!(
        i.ndp_neighbors().state(KERNEL_IP6),
        Some(NeighborState::Reachable)
    );
    // REACHABLE → STALE after ReachableTime (30 s); use → DELAY; 5 s → PROBE (unicast).
    i.handle_timeout(Instant::from_secs(31));
    assert_eq!(
        i.ndp_neighbors().state(KERNEL_IP6),
        Some(NeighborState::Stale)
    );
    i.send_echo_request(Instant::from_secs(31), KERNEL_IP6, 1, 2, b"hi")
        .unwrap();
    assert_eq!(
        drain(&mut i, Instant::from_secs(31)).len(),
        1,
        "sent at once"
    );
    assert_eq!(
        i.ndp_neighbors().state(KERNEL_IP6),
        Some(NeighborState::Delay)
    );
    i.handle_timeout(Instant::from_secs(36));
    assert_eq!(
        i.ndp_neighbors().state(KERNEL_IP6),
        Some(NeighborState::Probe)
    );
    let out = drain(&mut i, Instant::from_secs(36));
    let (eth, ip, _) = parse6(&out[0]);
    assert_eq!((eth.dst_addr, ip.dst_addr), (KERNEL_MAC, KERNEL_IP6));
    // No answer: the entry goes after the probes.
    for s in 37..45 {
        i.handle_timeout(Instant::from_secs(s));
    }
    assert_eq!(i.ndp_neighbors().state(KERNEL_IP6), None);
}

#[test]
fn unanswered_resolution_drops_queued_packets() {
    let mut i = Interface::new(config(), Instant::ZERO);
    drain(&mut i, Instant::ZERO);
    i.send_echo_request(Instant::ZERO, KERNEL_IP6, 1, 1, b"hi")
        .unwrap();
    for s in 1..5 {
        i.handle_timeout(Instant::from_secs(s));
    }
    assert_eq!(i.counters().dropped(DropReason::NdpFailed), 1);
    assert_eq!(i.counters().ndp_tx_solicits, 3);
}

#[test]
fn packet_too_big_lowers_path_mtu_never_below_1280() {
    let mut i = iface_knowing_kernel();
    // The quoted packet: one of ours to the kernel.
    let mut quoted = vec![0u8; 48];
    ip6(PEER_IP6, KERNEL_IP6, IpProtocol::TCP, 64).emit(&mut quoted);
    let ptb = |mtu| {
        icmp_frame(
            KERNEL_IP6,
            PEER_IP6,
            64,
            Icmpv6Repr::PacketTooBig { mtu, data: &quoted },
        )
    };
    assert_eq!(i.handle_frame(Instant::ZERO, &ptb(1400)), None);
    assert_eq!(i.ipv6_path_mtu(KERNEL_IP6), 1400);
    assert_eq!(i.handle_frame(Instant::ZERO, &ptb(600)), None);
    assert_eq!(i.ipv6_path_mtu(KERNEL_IP6), 1280);
    assert_eq!(i.counters().icmpv6_pmtu_updates, 2);
    // A 1300-byte echo now goes in two fragments.
    i.send_echo_request(Instant::ZERO, KERNEL_IP6, 1, 1, &[7; 1300])
        .unwrap();
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|f| f.len() - 14 <= 1280));
    // RFC 8201 §4: the estimate expires (10 minutes) and the link MTU is tried again.
    i.handle_timeout(Instant::from_secs(601));
    assert_eq!(i.ipv6_path_mtu(KERNEL_IP6), 1500);
    // A PTB about somebody else's packet is ignored.
    let mut other = vec![0u8; 48];
    ip6("fd00::9".parse().unwrap(), KERNEL_IP6, IpProtocol::TCP, 64).emit(&mut other);
    let f = icmp_frame(
        KERNEL_IP6,
        PEER_IP6,
        64,
        Icmpv6Repr::PacketTooBig {
            mtu: 1300,
            data: &other,
        },
    );
    assert_eq!(
        i.handle_frame(Instant::from_secs(601), &f),
        Some(DropReason::Icmpv6Ignored)
    );
}

#[test]
fn ndp_validation_and_not_for_us() {
    let mut i = iface_knowing_kernel();
    let mut ns = testdata6::NEIGHBOR_SOLICIT.to_vec();
    ns[14 + 7] = 64; // hop limit
    assert_eq!(
        i.handle_frame(Instant::ZERO, &ns),
        Some(DropReason::NdpInvalid)
    );
    // A solicitation for an address that is not ours.
    let f = icmp_frame(
        KERNEL_IP6,
        solicited_node(PEER_IP6),
        255,
        Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
            target: "fd00::1:ff00:2".parse().unwrap(),
            lladdr: Some(KERNEL_MAC),
        }),
    );
    assert_eq!(
        i.handle_frame(Instant::ZERO, &f),
        Some(DropReason::NdpIgnored)
    );
    // Another node's address, other multicast groups, transport not yet wired.
    let echo = Icmpv6Repr::EchoRequest {
        ident: 1,
        seq_no: 1,
        data: b"",
    };
    let f = icmp_frame(KERNEL_IP6, "fd00::77".parse().unwrap(), 64, echo);
    assert_eq!(
        i.handle_frame(Instant::ZERO, &f),
        Some(DropReason::Ipv6NotForUs)
    );
    let f = icmp_frame(KERNEL_IP6, "ff02::1:2".parse().unwrap(), 64, echo);
    assert_eq!(
        i.handle_frame(Instant::ZERO, &f),
        Some(DropReason::Ipv6NotForUs)
    );
    // Transport over IPv6: a malformed TCP header is refused by TCP.
    let f = frame6(
        PEER_MAC,
        ip6(KERNEL_IP6, PEER_IP6, IpProtocol::TCP, 64),
        &[0; 20],
    );
    assert_eq!(
        i.handle_frame(Instant::ZERO, &f),
        Some(DropReason::TcpMalformed)
    );
}

#[test]
fn udp_to_a_closed_port_gets_port_unreachable_and_syn_a_reset() {
    let mut i = iface_knowing_kernel();
    let data = b"hello";
    let mut udp = vec![0u8; 8 + data.len()];
    udp[8..].copy_from_slice(data);
    crate::wire::UdpRepr {
        src_port: 4000,
        dst_port: 9,
    }
    .emit(&mut udp, KERNEL_IP6, PEER_IP6, data.len());
    let f = frame6(
        PEER_MAC,
        ip6(KERNEL_IP6, PEER_IP6, IpProtocol::UDP, 64),
        &udp,
    );
    assert_eq!(
        i.handle_frame(Instant::ZERO, &f),
        Some(DropReason::UdpNoSocket)
    );
    let out = drain(&mut i, Instant::ZERO);
    let (ip, du) = icmp6(&out[0]);
    assert_eq!(ip.dst_addr, KERNEL_IP6);
    assert!(
        matches!(du, Icmpv6Repr::DstUnreachable { code: 4, .. }),
        "{du:?}"
    );
    // A SYN to a closed port: RST over IPv6.
    let syn = crate::wire::TcpRepr {
        src_port: 4000,
        dst_port: 80,
        flags: crate::wire::TcpFlags::SYN,
        seq_number: crate::wire::SeqNumber(1000),
        ack_number: crate::wire::SeqNumber(0),
        window_len: 1000,
        urgent_ptr: 0,
        options: Default::default(),
        payload: &[],
    };
    let mut b = vec![0u8; syn.buffer_len()];
    syn.emit(&mut b, KERNEL_IP6, PEER_IP6);
    let f = frame6(PEER_MAC, ip6(KERNEL_IP6, PEER_IP6, IpProtocol::TCP, 64), &b);
    assert_eq!(i.handle_frame(Instant::ZERO, &f), None);
    let out = drain(&mut i, Instant::ZERO);
    let (_, ip, payload) = parse6(&out[0]);
    assert_eq!(ip.next_header, IpProtocol::TCP);
    let rst = crate::wire::TcpRepr::parse(ip.src_addr, ip.dst_addr, &payload).unwrap();
    assert!(rst.flags.contains(crate::wire::TcpFlags::RST));
}

#[test]
fn mld_query_is_answered_and_disabled_ipv6_counts_frames() {
    let mut i = iface_knowing_kernel();
    let q = icmp_frame(
        "fe80::1".parse().unwrap(),
        crate::wire::ALL_NODES,
        1,
        Icmpv6Repr::MldQuery {
            group: Ipv6Addr::UNSPECIFIED,
        },
    );
    assert_eq!(i.handle_frame(Instant::ZERO, &q), None);
    let out = drain(&mut i, Instant::ZERO);
    let Icmpv6Repr::Mld2Report(r) = icmp6(&out[0]).1 else {
        panic!("no report")
    };
    assert_eq!(r.count, 2, "link-local and fd00::2 groups");
    let mut c = config();
    c.ipv6.enabled = false;
    let mut i = Interface::new(c, Instant::ZERO);
    assert!(drain(&mut i, Instant::ZERO).is_empty());
    assert_eq!(
        i.handle_frame(Instant::ZERO, testdata6::ECHO_REQUEST),
        Some(DropReason::EthernetUnknownType)
    );
}

proptest::proptest! {
    /// Random IPv6 packets to us (and mutated real ones) never panic and are either
    /// accepted or dropped with a reason.
    #[test]
    fn hostile_ipv6_never_panics(
        nh in proptest::prelude::any::<u8>(),
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        idx in 0usize..9, pos in 0usize..2100, val in proptest::prelude::any::<u8>(),
    ) {
        let mut i = iface_knowing_kernel();
        let f = frame6(PEER_MAC, ip6(KERNEL_IP6, PEER_IP6, IpProtocol(nh), 64), &body);
        let _ = i.handle_frame(Instant::ZERO, &f);
        let mut f = testdata6::ALL[idx].to_vec();
        let n = f.len();
        f[14 + pos % (n - 14)] = val;
        let _ = i.handle_frame(Instant::ZERO, &f);
        i.handle_timeout(Instant::from_secs(40));
        drain(&mut i, Instant::from_secs(40));
        let c = i.counters();
        proptest::prop_assert!(c.total_dropped() <= c.rx_frames + c.tx_frames);
    }
}

#[test]
fn offload_metadata_on_ipv6_frames_is_checked_then_trusted() {
    use crate::link::{CsumPartial, FrameMeta, Gso};
    let mut i = iface_knowing_kernel();
    // A SYN whose checksum field holds garbage, as a partial checksum would.
    let syn = crate::wire::TcpRepr {
        src_port: 4000,
        dst_port: 80,
        flags: crate::wire::TcpFlags::SYN,
        seq_number: crate::wire::SeqNumber(1000),
        ack_number: crate::wire::SeqNumber(0),
        window_len: 1000,
        urgent_ptr: 0,
        options: Default::default(),
        payload: &[],
    };
    let mut b = vec![0u8; syn.buffer_len()];
    syn.emit(&mut b, KERNEL_IP6, PEER_IP6);
    b[16] ^= 0x5a;
    let f = frame6(PEER_MAC, ip6(KERNEL_IP6, PEER_IP6, IpProtocol::TCP, 64), &b);
    assert_eq!(
        i.handle_frame(Instant::ZERO, &f),
        Some(DropReason::TcpChecksum),
        "plain frame: verified"
    );
    let partial = |start, offset| FrameMeta {
        csum: Some(CsumPartial { start, offset }),
        ..FrameMeta::default()
    };
    // The link says the checksum is partial at the right place: trusted (a RST comes back).
    assert_eq!(
        i.handle_frame_meta(Instant::ZERO, &f, partial(54, 16)),
        None
    );
    assert_eq!(i.counters().offload_rx_csum_skipped, 1);
    assert_eq!(drain(&mut i, Instant::ZERO).len(), 1);
    // Wrong start or offset, or a GSO type: refused.
    for meta in [
        partial(34, 16),
        partial(54, 6),
        FrameMeta {
            gso: Gso::TcpV4 { size: 1000 },
            ..FrameMeta::default()
        },
    ] {
        assert_eq!(
            i.handle_frame_meta(Instant::ZERO, &f, meta),
            Some(DropReason::OffloadBadMeta)
        );
    }
    // ICMPv6 is always verified, even when the link says it validated it.
    let mut echo = testdata6::ECHO_REQUEST.to_vec();
    echo[14 + 40 + 2] ^= 1;
    let valid = FrameMeta {
        csum_valid: true,
        ..FrameMeta::default()
    };
    assert_eq!(
        i.handle_frame_meta(Instant::ZERO, &echo, valid),
        Some(DropReason::Icmpv6Checksum)
    );
}

#[test]
fn raw_icmpv6_socket_gets_messages_without_the_header_and_sends_with_a_checksum() {
    use crate::socket::IpFamily;
    let mut i = iface_knowing_kernel();
    let h = i.raw().socket_in(IpFamily::V6, IpProtocol::ICMPV6, 65536);
    // The kernel's echo request: the socket gets the ICMPv6 message alone (RFC 3542 §3),
    // and the stack still answers it.
    assert_eq!(i.handle_frame(Instant::ZERO, testdata6::ECHO_REQUEST), None);
    let mut buf = [0u8; 128];
    let (n, from) = i.raw().recv_from(h, &mut buf, false).unwrap();
    assert_eq!(from, IpAddr::V6(KERNEL_IP6));
    assert_eq!(&buf[..n], &testdata6::ECHO_REQUEST[14 + 40..]);
    assert_eq!(drain(&mut i, Instant::ZERO).len(), 1, "the echo reply");
    // Sending: a request with a zero checksum field goes out with the right one.
    let mut msg = vec![128u8, 0, 0, 0, 0, 7, 0, 1];
    msg.extend_from_slice(b"raw");
    i.raw()
        .send_to(h, &msg, Some(IpAddr::V6(KERNEL_IP6)))
        .unwrap();
    let out = drain(&mut i, Instant::ZERO);
    assert_eq!(out.len(), 1);
    let (ip, icmp) = icmp6(&out[0]);
    assert_eq!((ip.src_addr, ip.dst_addr), (PEER_IP6, KERNEL_IP6));
    assert_eq!(
        icmp,
        Icmpv6Repr::EchoRequest {
            ident: 7,
            seq_no: 1,
            data: b"raw"
        }
    );
}

/// The flow label of every IPv6 frame in `frames` that carries TCP, by source port.
fn tcp_flow_labels(frames: &[Vec<u8>]) -> Vec<(u16, u32)> {
    frames
        .iter()
        .filter(|f| f.len() >= 14 && f[12..14] == [0x86, 0xdd])
        .map(|f| parse6(f))
        .filter(|(_, ip, _)| ip.next_header == IpProtocol::TCP)
        .map(|(_, ip, payload)| {
            let seg = crate::wire::TcpRepr::parse(ip.src_addr, ip.dst_addr, &payload).unwrap();
            (seg.src_port, ip.flow_label)
        })
        .collect()
}

#[test]
fn tcp_segments_carry_one_nonzero_flow_label_per_connection() {
    let mut i = iface_knowing_kernel();
    let remote = |port| SocketAddr::V6(SocketAddrV6::new(KERNEL_IP6, port, 0, 0));
    let cx = i.tcp_context(Instant::ZERO);
    let (a, b) = (i.tcp().socket(), i.tcp().socket());
    i.tcp().connect(a, &cx, remote(80)).unwrap();
    i.tcp().connect(b, &cx, remote(80)).unwrap();
    let mut frames = drain(&mut i, Instant::ZERO);
    // The SYNs go unanswered: each retransmission must carry its connection's label.
    while frames.len() < 8 {
        let now = i.poll_timeout().expect("SYN retransmission pending");
        assert!(now < Instant::from_secs(30), "no retransmissions");
        i.handle_timeout(now);
        frames.extend(drain(&mut i, now));
    }
    let labels = tcp_flow_labels(&frames);
    let ports: Vec<u16> = {
        let mut p: Vec<u16> = labels.iter().map(|l| l.0).collect();
        p.sort_unstable();
        p.dedup();
        p
    };
    assert_eq!(ports.len(), 2, "two connections: {labels:?}");
    let label_of =
        |port: u16| -> Vec<u32> { labels.iter().filter(|l| l.0 == port).map(|l| l.1).collect() };
    let (la, lb) = (label_of(ports[0]), label_of(ports[1]));
    assert!(la.len() >= 2 && lb.len() >= 2, "{labels:?}");
    for l in la.iter().chain(&lb) {
        assert!(*l != 0 && *l <= 0x000f_ffff, "{l:#x}");
    }
    assert!(la.iter().all(|l| *l == la[0]), "{la:?}");
    assert!(lb.iter().all(|l| *l == lb[0]), "{lb:?}");
    assert_ne!(la[0], lb[0], "connections share a label");
    // The label is the keyed hash of the 4-tuple with the seed-derived secret.
    let local = |port| SocketAddr::V6(SocketAddrV6::new(PEER_IP6, port, 0, 0));
    let key = SipKey::from_seed(config().seed, FLOW_LABEL_DOMAIN);
    assert_eq!(la[0], flow_label(&key, local(ports[0]), remote(80)));
}

#[test]
fn flow_label_is_keyed_20_bits_and_never_zero() {
    let l = SocketAddr::V6(SocketAddrV6::new(PEER_IP6, 40000, 0, 0));
    let r = SocketAddr::V6(SocketAddrV6::new(KERNEL_IP6, 80, 0, 0));
    let k1 = SipKey::from_seed(1, FLOW_LABEL_DOMAIN);
    let k2 = SipKey::from_seed(2, FLOW_LABEL_DOMAIN);
    assert_eq!(flow_label(&k1, l, r), flow_label(&k1, l, r));
    assert_ne!(
        flow_label(&k1, l, r),
        flow_label(&k2, l, r),
        "the secret matters"
    );
    let mut seen = std::collections::HashSet::new();
    for port in 1..=2000u16 {
        let l = SocketAddr::V6(SocketAddrV6::new(PEER_IP6, port, 0, 0));
        let label = flow_label(&k1, l, r);
        assert!(label != 0 && label <= 0x000f_ffff);
        seen.insert(label);
    }
    // 2000 draws from 2^20 values: a handful of collisions at most.
    assert!(seen.len() > 1990, "{}", seen.len());
}

#[test]
fn udp_datagrams_carry_a_flow_label_per_destination() {
    let mut i = iface_knowing_kernel();
    let u = i.udp().socket_in(crate::socket::IpFamily::V6);
    let to = |port| Some(SocketAddr::V6(SocketAddrV6::new(KERNEL_IP6, port, 0, 0)));
    for port in [9, 9, 10] {
        i.udp().send_to(u, b"x", to(port)).unwrap();
    }
    let labels: Vec<(u16, u32)> = drain(&mut i, Instant::ZERO)
        .iter()
        .map(|f| parse6(f))
        .filter(|(_, ip, _)| ip.next_header == IpProtocol::UDP)
        .map(|(_, ip, p)| (u16::from_be_bytes([p[2], p[3]]), ip.flow_label))
        .collect();
    assert_eq!(labels.len(), 3, "{labels:?}");
    assert!(labels.iter().all(|l| l.1 != 0), "{labels:?}");
    assert_eq!(labels[0], labels[1], "one destination, one label");
    assert_ne!(
        labels[0].1, labels[2].1,
        "another destination, another label"
    );
}

#[test]
fn router_advert_mtu_lowers_the_mss_of_new_ipv6_connections() {
    let mut c = config();
    c.ipv6.accept_ra = true;
    let mut i = Interface::new(c, Instant::ZERO);
    drain(&mut i, Instant::ZERO);
    assert_eq!(
        i.handle_frame(Instant::ZERO, testdata6::NEIGHBOR_SOLICIT),
        None
    );
    drain(&mut i, Instant::ZERO);
    let t = Instant::from_secs(1);
    assert_eq!(
        i.handle_frame(t, &router_advert(Some(1400), None, 1800)),
        None
    );
    let cx = i.tcp_context(t);
    assert_eq!((cx.mtu, cx.mtu6), (1500, 1400));
    // IPv4 keeps the link's MTU; IPv6 takes the advertised one (Linux: mtu6).
    assert_eq!(cx.mtu_for(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))), 1500);
    let h = i.tcp().socket();
    let remote = SocketAddr::V6(SocketAddrV6::new(KERNEL_IP6, 80, 0, 0));
    i.tcp().connect(h, &cx, remote).unwrap();
    let syn = drain(&mut i, t)
        .into_iter()
        .map(|f| parse6(&f))
        .find(|(_, ip, _)| ip.next_header == IpProtocol::TCP)
        .expect("a SYN");
    let seg = crate::wire::TcpRepr::parse(syn.1.src_addr, syn.1.dst_addr, &syn.2).unwrap();
    assert_eq!(seg.options.mss, Some(1400 - 60));
}

#[test]
fn socket_hop_limit_and_traffic_class_reach_the_ipv6_header() {
    let mut i = iface_knowing_kernel();
    let kernel = SocketAddr::V6(SocketAddrV6::new(KERNEL_IP6, 80, 0, 0));
    let cx = i.tcp_context(Instant::ZERO);
    let t = i.tcp().socket();
    i.tcp().set_hop_limit(t, Some(2)).unwrap();
    i.tcp().set_tclass(t, 0x29).unwrap();
    i.tcp().connect(t, &cx, kernel).unwrap();
    let u = i.udp().socket_in(crate::socket::IpFamily::V6);
    i.udp()
        .set_ip_tx(
            u,
            crate::socket::IpTx {
                hop_limit: Some(200),
                tclass: 0x29,
            },
        )
        .unwrap();
    i.udp().send_to(u, b"x", Some(kernel)).unwrap();
    let mut seen: Vec<(u8, u8, u8)> = drain(&mut i, Instant::ZERO)
        .iter()
        .map(|f| parse6(f).1)
        .filter(|ip| matches!(ip.next_header, IpProtocol::TCP | IpProtocol::UDP))
        .map(|ip| (ip.next_header.0, ip.hop_limit, ip.traffic_class))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, [(6, 2, 0x28), (17, 200, 0x29)]);
}
