//! IPv6 against the Linux kernel over a TAP, inside a namespace each test creates: the
//! kernel pings the stack's link-local and global addresses (56 and 3000 bytes, the
//! latter fragmented both ways) and the stack pings the kernel's; both neighbour caches
//! learn each other; a router advertisement sent from the kernel side gives the stack a
//! prefix and a default route; the capture reads in tshark without a malformed packet;
//! the kernel reads a nonzero flow label (RFC 6437) of its own on each stack connection.
//!
//! The kernel's side is Rust: a raw ICMPv6 socket (`socket(AF_INET6, SOCK_RAW,
//! IPPROTO_ICMPV6)`) on a thread that entered the namespace. The kernel's address is
//! added with `nodad` (harness `Options::ipv6`); the stack's own DAD takes about 1 s.

use core::net::Ipv6Addr;
use std::time::{Duration, Instant};
use ustack::iface::{AddrOrigin, AddrState, NeighborState};
use ustack::wire::{link_local_address, EtherType, EthernetRepr, Ipv6Repr};
use ustack_tests::{pcap, require_netns, Fixture, Options};

const KERNEL_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1);
const STACK_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 2);

fn fixture(pcap: bool) -> Fixture {
    fixture_with(Options {
        ipv6: true,
        pcap,
        seed: 61,
        ..Options::default()
    })
}

/// A started fixture whose IPv6 addresses are all usable.
fn fixture_with(opts: Options) -> Fixture {
    let fx = Fixture::start(opts);
    // The stack's DAD (1 s by default): wait until every address is usable.
    let by = Instant::now() + Duration::from_secs(5);
    while !fx.call(|i, _| {
        let a = i.ipv6_addrs();
        a.len() >= 2 && a.iter().all(|a| a.state == AddrState::Preferred)
    }) {
        assert!(Instant::now() < by, "stack DAD did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    fx
}

/// A raw ICMPv6 socket of the kernel (inside the namespace when called there).
struct Icmp6(libc::c_int);

impl Drop for Icmp6 {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.0) };
    }
}

fn sockaddr6(addr: Ipv6Addr, scope: u32) -> libc::sockaddr_in6 {
    // SAFETY: all-zero is a valid sockaddr_in6.
    let mut sa: libc::sockaddr_in6 = unsafe { core::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_addr.s6_addr = addr.octets();
    sa.sin6_scope_id = scope;
    sa
}

impl Icmp6 {
    fn open() -> Icmp6 {
        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6) };
        assert!(
            fd >= 0,
            "raw ICMPv6 socket: {}",
            std::io::Error::last_os_error()
        );
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        // SAFETY: a valid timeval of the right size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                core::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        Icmp6(fd)
    }

    fn set_hops(&self, hops: libc::c_int) {
        for opt in [libc::IPV6_UNICAST_HOPS, libc::IPV6_MULTICAST_HOPS] {
            // SAFETY: an int option.
            let r = unsafe {
                libc::setsockopt(
                    self.0,
                    libc::IPPROTO_IPV6,
                    opt,
                    &hops as *const _ as *const libc::c_void,
                    4,
                )
            };
            assert_eq!(r, 0, "hop limit: {}", std::io::Error::last_os_error());
        }
    }

    fn send_to(&self, msg: &[u8], dst: Ipv6Addr, scope: u32) {
        let sa = sockaddr6(dst, scope);
        // SAFETY: buffer and address valid for the call; the kernel fills in the
        // ICMPv6 checksum on raw ICMPv6 sockets (RFC 3542 §3.1).
        let n = unsafe {
            libc::sendto(
                self.0,
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
                &sa as *const _ as *const libc::sockaddr,
                core::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        };
        assert_eq!(
            n,
            msg.len() as isize,
            "sendto: {}",
            std::io::Error::last_os_error()
        );
    }

    /// The next message and its source, or `None` on timeout.
    fn recv(&self, buf: &mut [u8]) -> Option<(usize, Ipv6Addr)> {
        let mut sa = sockaddr6(Ipv6Addr::UNSPECIFIED, 0);
        let mut len = core::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        // SAFETY: buffer and address valid for the call.
        let n = unsafe {
            libc::recvfrom(
                self.0,
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
                &mut sa as *mut _ as *mut libc::sockaddr,
                &mut len,
            )
        };
        (n >= 0).then(|| (n as usize, Ipv6Addr::from(sa.sin6_addr.s6_addr)))
    }
}

fn if_index(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: a NUL-terminated name.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

/// The kernel pings `dst` `count` times with `size` payload bytes; returns replies with
/// the right identifier, sequence and payload.
fn kernel_ping6(fx: &Fixture, dst: Ipv6Addr, count: u16, size: usize) -> u16 {
    let kernel_if = fx.kernel_if;
    fx.in_ns(move || {
        let scope = if dst.is_unicast_link_local() {
            if_index(kernel_if)
        } else {
            0
        };
        let s = Icmp6::open();
        let payload: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
        let ident: u16 = 0x6b6b;
        let mut answered = 0;
        let mut buf = vec![0u8; 70_000];
        for seq in 1..=count {
            let mut msg = vec![128u8, 0, 0, 0];
            msg.extend_from_slice(&ident.to_be_bytes());
            msg.extend_from_slice(&seq.to_be_bytes());
            msg.extend_from_slice(&payload);
            s.send_to(&msg, dst, scope);
            let by = Instant::now() + Duration::from_secs(2);
            while Instant::now() < by {
                let Some((n, from)) = s.recv(&mut buf) else {
                    continue;
                };
                let m = &buf[..n];
                if from == dst
                    && m.len() >= 8
                    && m[0] == 129
                    && m[4..6] == ident.to_be_bytes()
                    && m[6..8] == seq.to_be_bytes()
                {
                    assert_eq!(&m[8..], &payload[..], "echoed payload");
                    answered += 1;
                    break;
                }
            }
        }
        answered
    })
}

/// The stack pings `dst` `count` times; returns replies received.
fn stack_ping6(fx: &Fixture, dst: Ipv6Addr, count: u16, size: usize) -> u16 {
    let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut answered = 0;
    for seq in 1..=count {
        let p = payload.clone();
        fx.call(move |i, now| i.send_echo_request(now, dst, 0x77, seq, &p))
            .expect("send echo request");
        let by = Instant::now() + Duration::from_secs(2);
        'wait: while Instant::now() < by {
            let replies: Vec<_> =
                fx.call(|i, _| std::iter::from_fn(|| i.poll_echo_reply()).collect());
            for r in replies {
                if r.from == dst && r.seq_no == seq && r.ident == 0x77 {
                    assert_eq!(r.data, payload);
                    answered += 1;
                    break 'wait;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    answered
}

#[test]
fn kernel_pings_stack_link_local_and_global_56_and_3000_bytes() {
    require_netns!();
    let mut fx = fixture(true);
    let ll = link_local_address(fx.mac);
    for dst in [STACK_IP6, ll] {
        assert_eq!(kernel_ping6(&fx, dst, 5, 56), 5, "56-byte pings to {dst}");
        assert_eq!(
            kernel_ping6(&fx, dst, 3, 3000),
            3,
            "3000-byte pings to {dst}"
        );
    }
    let report = fx.stop();
    let c = report.iface.counters();
    assert!(c.ipv6_reassembled >= 6, "{c:?}");
    assert!(c.ipv6_fragmented >= 6, "{c:?}");
    assert_eq!(c.icmpv6_tx_echo_replies, 16);
    // On the wire: IPv6 fragments both ways.
    let (mut from_stack, mut to_stack) = (0, 0);
    for rec in pcap::read(fx.pcap.as_ref().expect("pcap on")) {
        let Ok((eth, payload)) = EthernetRepr::parse(&rec.data) else {
            continue;
        };
        if eth.ethertype != EtherType::IPV6 {
            continue;
        }
        if let Ok((ip, _)) = Ipv6Repr::parse(payload) {
            if ip.next_header.0 == 44 {
                if eth.src_addr == fx.mac {
                    from_stack += 1;
                } else {
                    to_stack += 1;
                }
            }
        }
    }
    assert!(to_stack >= 18, "fragments kernel -> stack: {to_stack}");
    assert!(from_stack >= 18, "fragments stack -> kernel: {from_stack}");
    tshark_reads_clean(&fx);
}

/// Every frame of the capture decodes in tshark with no malformed packet (skipped
/// without tshark; `scripts/test` installs it).
fn tshark_reads_clean(fx: &Fixture) {
    if !ustack_tests::tool_available("kernel_ipv6 tshark check", "tshark") {
        return;
    }
    let path = fx.pcap.clone().expect("pcap on");
    let path = path.to_str().expect("utf-8 path");
    let out = fx.exec(&["tshark", "-n", "-r", path, "-Y", "_ws.malformed"]);
    assert!(out.status.success(), "tshark failed: {out:?}");
    let flagged = String::from_utf8_lossy(&out.stdout);
    assert!(
        flagged.trim().is_empty(),
        "tshark flags malformed:\n{flagged}"
    );
    let all = fx.exec(&["tshark", "-n", "-r", path]);
    let text = String::from_utf8_lossy(&all.stdout);
    assert!(text.contains("Echo (ping) reply"), "{text}");
    assert!(text.contains("Neighbor Advertisement"), "{text}");
    assert!(
        text.contains("Multicast Listener Report Message v2"),
        "{text}"
    );
}

/// `tshark -Y _ws.malformed` prints nothing for the fixture's capture; false when
/// tshark is not installed (the check is skipped).
fn tshark_finds_nothing_malformed(fx: &Fixture) -> bool {
    if !ustack_tests::tool_available("kernel_ipv6 tshark check", "tshark") {
        return false;
    }
    let path = fx.pcap.clone().expect("pcap on");
    let path = path.to_str().expect("utf-8 path");
    let out = fx.exec(&["tshark", "-n", "-r", path, "-Y", "_ws.malformed"]);
    assert!(out.status.success(), "tshark failed: {out:?}");
    let flagged = String::from_utf8_lossy(&out.stdout);
    assert!(
        flagged.trim().is_empty(),
        "tshark flags malformed:\n{flagged}"
    );
    true
}

#[test]
fn stack_pings_kernel_global_and_link_local_and_neighbours_learn_each_other() {
    require_netns!();
    let mut fx = fixture(true);
    assert_eq!(stack_ping6(&fx, KERNEL_IP6, 3, 56), 3);
    assert_eq!(stack_ping6(&fx, KERNEL_IP6, 2, 3000), 2);
    // The kernel's link-local address (it is up once its own DAD has run).
    let kernel_mac = {
        let out = fx.exec(&["cat", &format!("/sys/class/net/{}/address", fx.kernel_if)]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let kernel_ll = link_local_address(kernel_mac.parse().expect("kernel MAC"));
    let by = Instant::now() + Duration::from_secs(5);
    loop {
        let out = fx.exec(&["ip", "-6", "addr", "show", "dev", fx.kernel_if, "tentative"]);
        if String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            break;
        }
        assert!(Instant::now() < by, "kernel DAD did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(stack_ping6(&fx, kernel_ll, 3, 56), 3);
    // The stack's NDP cache learned the kernel (confirmed by its solicited advert).
    let (mac, state) = fx.call(move |i, _| {
        (
            i.ndp_neighbors().get(KERNEL_IP6),
            i.ndp_neighbors().state(KERNEL_IP6),
        )
    });
    assert_eq!(mac.map(|m| m.to_string()), Some(kernel_mac.clone()));
    assert!(
        matches!(
            state,
            Some(NeighborState::Reachable | NeighborState::Stale | NeighborState::Delay)
        ),
        "{state:?}"
    );
    // The kernel pings the stack. Its entry for the stack, learned from our
    // solicitation (STALE), goes DELAY on use and, 5 s later, PROBE: our solicited
    // advertisement answers the probe and makes it REACHABLE (RFC 4861 §7.3.3).
    assert_eq!(kernel_ping6(&fx, STACK_IP6, 2, 56), 2);
    let mac = fx.mac.to_string();
    let by = Instant::now() + Duration::from_secs(12);
    loop {
        let out = fx.exec(&["ip", "-6", "neigh", "show", "dev", fx.kernel_if]);
        let table = String::from_utf8_lossy(&out.stdout).into_owned();
        if table.lines().any(|l| {
            l.starts_with(&format!("{STACK_IP6} ")) && l.contains(&mac) && l.contains("REACHABLE")
        }) {
            break;
        }
        assert!(
            Instant::now() < by,
            "kernel's table lacks {STACK_IP6} at {mac} REACHABLE:\n{table}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    fx.stop();
    tshark_finds_nothing_malformed(&fx);
}

/// A router advertisement (RFC 4861 §4.2) from the kernel's link-local address to
/// all-nodes, hop limit 255: router lifetime 600 s, MTU 1400, prefix fd00:99::/64 with
/// L and A set.
fn router_advert() -> Vec<u8> {
    let mut m = vec![134u8, 0, 0, 0, 64, 0];
    m.extend_from_slice(&600u16.to_be_bytes());
    m.extend_from_slice(&[0; 8]); // reachable time, retrans timer
    m.extend_from_slice(&[5, 1, 0, 0]); // MTU option
    m.extend_from_slice(&1400u32.to_be_bytes());
    m.extend_from_slice(&[3, 4, 64, 0xc0]); // prefix information, /64, L|A
    m.extend_from_slice(&3600u32.to_be_bytes());
    m.extend_from_slice(&1800u32.to_be_bytes());
    m.extend_from_slice(&[0; 4]);
    m.extend_from_slice(&Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 0).octets());
    m
}

#[test]
fn router_advertisement_from_the_kernel_side_gives_prefix_and_default_route() {
    require_netns!();
    let mut fx = fixture(true);
    // The RA goes out from the kernel's link-local address, which needs its DAD done.
    let by = Instant::now() + Duration::from_secs(5);
    loop {
        let out = fx.exec(&[
            "ip",
            "-6",
            "addr",
            "show",
            "dev",
            fx.kernel_if,
            "scope",
            "link",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("fe80") && !text.contains("tentative") {
            break;
        }
        assert!(
            Instant::now() < by,
            "kernel link-local address not ready:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let kernel_if = fx.kernel_if;
    fx.in_ns(move || {
        let s = Icmp6::open();
        s.set_hops(255);
        s.send_to(
            &router_advert(),
            "ff02::1".parse().unwrap(),
            if_index(kernel_if),
        );
    });
    let expect = ustack::wire::eui64_address("fd00:99::".parse().unwrap(), fx.mac);
    let by = Instant::now() + Duration::from_secs(5);
    loop {
        let (addrs, router, mtu) = fx.call(|i, _| {
            (
                i.ipv6_addrs(),
                i.ipv6_router(),
                i.ipv6_path_mtu("fd00:99::1".parse().unwrap()),
            )
        });
        let slaac = addrs.iter().find(|a| a.cidr.address() == expect);
        if slaac.is_some_and(|a| a.state == AddrState::Preferred) {
            assert_eq!(slaac.unwrap().origin, AddrOrigin::Slaac);
            let router = router.expect("default router");
            assert!(router.is_unicast_link_local(), "{router}");
            assert_eq!(mtu, 1400, "MTU option");
            break;
        }
        assert!(
            Instant::now() < by,
            "no SLAAC address {expect}: {addrs:?} router {router:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(fx.call(|i, _| i.counters().ndp_rx_router_adverts), 1);
    // A connection opened after the RA announces MSS 1400 - 60 in its SYN (read back
    // from the capture below; the kernel's own copy of the multicast RA lowers its MTU
    // too, so its send MSS could not tell).
    const PORT: u16 = 5602;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let peer = fx.peer("tcp6 acceptor", move || {
        let l = std::net::TcpListener::bind((KERNEL_IP6, PORT)).expect("bind [fd00:77::1]");
        ready_tx.send(()).unwrap();
        l.accept().map(|(_, from)| from).expect("accept")
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("listener up");
    let remote = std::net::SocketAddr::new(KERNEL_IP6.into(), PORT);
    fx.call(move |i, now| {
        let cx = i.tcp_context(now);
        let t = i.tcp();
        let h = t.socket();
        t.connect(h, &cx, remote).expect("connect");
    });
    let from = peer.join(Duration::from_secs(10));
    assert_eq!(
        from.ip(),
        core::net::IpAddr::V6(STACK_IP6),
        "the kernel accepted us"
    );
    fx.stop();
    let mut syn_mss = Vec::new();
    for rec in pcap::read(fx.pcap.as_deref().expect("pcap on")) {
        let Ok((eth, ip)) = EthernetRepr::parse(&rec.data) else {
            continue;
        };
        if eth.ethertype != EtherType::IPV6 {
            continue;
        }
        let Ok((ip, seg)) = Ipv6Repr::parse(ip) else {
            continue;
        };
        if ip.src_addr != STACK_IP6 || ip.next_header != ustack::wire::IpProtocol::TCP {
            continue;
        }
        if let Ok(tcp) = ustack::wire::TcpRepr::parse_unverified(seg) {
            if tcp.dst_port == PORT && tcp.flags.syn() {
                syn_mss.push(tcp.options.mss);
            }
        }
    }
    assert_eq!(syn_mss, [Some(1400 - 60)], "the stack's SYN");
    tshark_finds_nothing_malformed(&fx);
}

/// A Packet Too Big (RFC 4443 §3.2) from the kernel side, quoting the stack's segment
/// in flight, lowers the connection's path MTU to 1280 and its MSS with it (RFC 8201);
/// the transfer (over TCP/IPv6, the kernel receiving with an ordinary socket) still
/// arrives whole.
#[test]
fn packet_too_big_lowers_the_mss_and_the_transfer_completes() {
    require_netns!();
    use std::io::Read;
    use std::net::{Shutdown, SocketAddr};
    // The stack's segments leave 5 ms late (its injector's delay), so what it sent
    // stays in flight long enough for the Packet Too Big below to quote it: on this
    // path a segment is otherwise acknowledged within about 100 us, before the test
    // can look.
    let tx = ustack::link::FaultConfig {
        delay: ustack::time::Duration::from_millis(5),
        ..Default::default()
    };
    let mut fx = fixture_with(Options {
        ipv6: true,
        pcap: true,
        seed: 61,
        faults: Some(ustack::link::Faults {
            tx,
            ..Default::default()
        }),
        ..Options::default()
    });
    const LEN: usize = 2 << 20;
    const PORT: u16 = 5601;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let peer = fx.peer("tcp6 sink", move || {
        let l = std::net::TcpListener::bind((KERNEL_IP6, PORT)).expect("bind [fd00:77::1]");
        ready_tx.send(()).unwrap();
        let (mut s, _) = l.accept().expect("accept");
        let mut got = Vec::with_capacity(LEN);
        s.read_to_end(&mut got).expect("read");
        got
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("listener up");
    let remote = SocketAddr::new(KERNEL_IP6.into(), PORT);
    let h = fx.call(move |i, now| {
        let cx = i.tcp_context(now);
        let t = i.tcp();
        let h = t.socket();
        // A fixed 64 KiB send buffer (autotuning off, as SO_SNDBUF does): an autotuned
        // buffer can take the whole transfer before a third of it is sent, and the
        // Packet Too Big below must quote data still in flight.
        t.set_send_buffer_size(h, 64 << 10).expect("SO_SNDBUF");
        t.connect(h, &cx, remote).expect("connect");
        h
    });
    let data: Vec<u8> = (0..LEN).map(|i| (i * 31 % 251) as u8).collect();
    let mut off = 0;
    let mut ptb_sent = 0;
    let by = Instant::now() + Duration::from_secs(30);
    while off < LEN {
        assert!(Instant::now() < by, "sent only {off} of {LEN}");
        let chunk = data[off..].to_vec();
        match fx.call(move |i, _| i.tcp().send(h, &chunk)) {
            Ok(n) => off += n,
            Err(ustack::socket::tcp::SendError::NotConnected)
            | Err(ustack::socket::tcp::SendError::WouldBlock) => {}
            Err(e) => panic!("send: {e}"),
        }
        // A third of the way in, while data is unacknowledged, the "router" says the
        // path takes 1280 bytes (repeated until the stack takes it: the quoted
        // sequence number must be in flight, RFC 5927 §4.1).
        let info = fx.call(move |i, _| i.tcp().info(h)).expect("info");
        if off > LEN / 3 && info.pmtu > 1280 && info.unacked > 0 && ptb_sent < 50 {
            let local = fx.call(move |i, _| i.tcp().local_addr(h)).expect("bound");
            let mut quote = vec![0u8; 48];
            Ipv6Repr {
                src_addr: STACK_IP6,
                dst_addr: KERNEL_IP6,
                next_header: ustack::wire::IpProtocol::TCP,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
                payload_len: 1452,
            }
            .emit(&mut quote);
            quote[40..42].copy_from_slice(&local.port().to_be_bytes());
            quote[42..44].copy_from_slice(&PORT.to_be_bytes());
            // The newest segment sent: the one most likely still in flight when the
            // error arrives (the stack believes only errors quoting data in flight,
            // and on this fast path the oldest is often acknowledged by then).
            let newest = info.snd_nxt.0.wrapping_sub(1);
            quote[44..48].copy_from_slice(&newest.to_be_bytes());
            let mut msg = vec![2u8, 0, 0, 0];
            msg.extend_from_slice(&1280u32.to_be_bytes());
            msg.extend_from_slice(&quote);
            fx.in_ns(move || Icmp6::open().send_to(&msg, STACK_IP6, 0));
            ptb_sent += 1;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    fx.call(move |i, _| i.tcp().shutdown(h, Shutdown::Write))
        .expect("shutdown");
    let got = peer.join(Duration::from_secs(30));
    assert_eq!(got.len(), LEN, "bytes received by the kernel");
    assert!(got == data, "the kernel received other bytes");
    let info = fx.call(move |i, _| i.tcp().info(h)).expect("info");
    let c0 = fx.call(|i, _| i.counters().clone());
    assert_eq!(
        info.pmtu, 1280,
        "{ptb_sent} PTBs sent; {info:?}; icmpv6 errors in {}, pmtu updates {}",
        c0.icmpv6_rx_errors, c0.icmpv6_pmtu_updates
    );
    // 1280 - 40 (IPv6) - 20 (TCP) - 12 (timestamps).
    assert_eq!(info.snd_mss, 1208, "{info:?}");
    let c = fx.call(|i, _| i.counters().clone());
    assert!(
        c.icmpv6_rx_errors >= 1 && c.icmpv6_pmtu_updates >= 1,
        "{c:?}"
    );
    assert_eq!(fx.call(|i, _| i.ipv6_path_mtu(KERNEL_IP6)), 1280);
    fx.stop();
    tshark_finds_nothing_malformed(&fx);
}

/// TCP over IPv6 both ways across a TAP opened with checksum offload and TSO6: the
/// kernel sends segments with a partial checksum (`NEEDS_CSUM`) and TCPv6 super-frames,
/// which the interface checks against the IPv6 packet and trusts, and the stack sends
/// TSO6 super-frames; 1 MB each way arrives byte-exact, the kernel as client
/// connecting to a stack listener on `[::]`.
#[test]
fn tcp_both_ways_over_an_offloading_tap() {
    require_netns!();
    use std::io::{Read, Write};
    use std::net::{Shutdown, SocketAddr};
    let mut fx = Fixture::start(Options {
        ipv6: true,
        offload: true,
        seed: 62,
        ..Options::default()
    });
    let by = Instant::now() + Duration::from_secs(5);
    while !fx.call(|i, _| {
        i.ipv6_addrs()
            .iter()
            .all(|a| a.state == AddrState::Preferred)
    }) {
        assert!(Instant::now() < by, "stack DAD did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    const LEN: usize = 1 << 20;
    const PORT: u16 = 5602;
    let l = fx.call(|i, _| {
        let t = i.tcp();
        let l = t.socket();
        t.listen(l, SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), PORT), 4)
            .expect("listen [::]");
        l
    });
    let up: Vec<u8> = (0..LEN).map(|i| (i * 13 % 253) as u8).collect();
    let down: Vec<u8> = (0..LEN).map(|i| (i * 17 % 241) as u8).collect();
    let up2 = up.clone();
    let peer = fx.peer("tcp6 client", move || {
        let mut s = std::net::TcpStream::connect((STACK_IP6, PORT)).expect("connect");
        s.write_all(&up2).expect("write");
        s.shutdown(Shutdown::Write).expect("shutdown");
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("read");
        got
    });
    let by = Instant::now() + Duration::from_secs(30);
    let c = loop {
        assert!(Instant::now() < by, "no connection");
        if let Ok((c, from)) = fx.call(move |i, _| i.tcp().accept(l)) {
            assert_eq!(from.ip(), core::net::IpAddr::V6(KERNEL_IP6));
            break c;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let mut got = Vec::with_capacity(LEN);
    let mut sent = 0;
    let mut eof = false;
    while !eof || sent < LEN {
        assert!(Instant::now() < by, "received {} sent {sent}", got.len());
        let (r, chunk) = fx.call(move |i, _| {
            let mut b = vec![0u8; 65536];
            let r = i.tcp().recv(c, &mut b);
            (r, b)
        });
        match r {
            Ok(0) => eof = true,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(ustack::socket::tcp::RecvError::WouldBlock) => {}
            Err(e) => panic!("recv: {e}"),
        }
        if sent < LEN {
            let part = down[sent..].to_vec();
            sent += fx.call(move |i, _| i.tcp().send(c, &part)).expect("send");
            if sent == LEN {
                fx.call(move |i, _| i.tcp().shutdown(c, Shutdown::Write))
                    .expect("shutdown");
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    assert!(
        got == up,
        "the stack received other bytes ({} of {LEN})",
        got.len()
    );
    let back = peer.join(Duration::from_secs(30));
    assert!(
        back == down,
        "the kernel received other bytes ({} of {LEN})",
        back.len()
    );
    let report = fx.stop();
    let c = report.iface.counters();
    assert_eq!(
        c.dropped(ustack::iface::DropReason::TcpChecksum),
        0,
        "{c:?}"
    );
    assert_eq!(
        c.dropped(ustack::iface::DropReason::OffloadBadMeta),
        0,
        "{c:?}"
    );
    println!(
        "offload: {} frames with a trusted checksum, {} TCP segments in, {} GSO super-frames in, {} TSO6 super-frames out ({} wire segments)",
        c.offload_rx_csum_skipped,
        c.tcp_rx_segments,
        c.offload_rx_gso_frames,
        c.offload_tx_tso_frames,
        c.offload_tx_tso_segments
    );
    // TSO6 both ways: the kernel sent TCPv6 super-frames, and so did the stack.
    assert!(c.offload_rx_gso_frames > 0, "{c:?}");
    assert!(c.offload_tx_tso_frames > 0, "{c:?}");
    assert!(c.offload_tx_tso_segments > c.offload_tx_tso_frames, "{c:?}");
}

/// UDP over IPv6 both ways at 1, 1452 (the largest unfragmented at MTU 1500), 8000
/// and 65,507 bytes (45 fragments): the stack's socket on `[::]:7000` echoes what a
/// kernel socket sends, byte-exact.
#[test]
fn udp_both_ways_at_four_sizes() {
    require_netns!();
    use std::net::SocketAddr;
    let mut fx = fixture(true);
    const PORT: u16 = 7000;
    let h = fx.call(|i, _| {
        let ours = i.local_addrs();
        let u = i.udp();
        let h = u.socket_in(ustack::socket::IpFamily::V6);
        u.bind(
            h,
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), PORT),
            &ours,
        )
        .expect("bind [::]:7000");
        h
    });
    let sizes = [1usize, 1452, 8000, 65_507];
    let peer = fx.peer("udp6 client", move || {
        let s = std::net::UdpSocket::bind((KERNEL_IP6, 0)).expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut echoed = Vec::new();
        let mut buf = vec![0u8; 70_000];
        for (k, &n) in sizes.iter().enumerate() {
            let msg: Vec<u8> = (0..n).map(|i| (i + k) as u8).collect();
            s.send_to(&msg, (STACK_IP6, PORT)).expect("send");
            let (m, from) = s.recv_from(&mut buf).expect("echo");
            assert_eq!(from, SocketAddr::new(STACK_IP6.into(), PORT));
            echoed.push(buf[..m] == msg[..]);
        }
        echoed
    });
    // The stack side: echo every datagram back to its sender.
    let by = Instant::now() + Duration::from_secs(20);
    let mut echoed = 0;
    while echoed < sizes.len() {
        assert!(Instant::now() < by, "echoed {echoed} datagrams");
        let got = fx.call(move |i, _| {
            let mut buf = vec![0u8; 70_000];
            let r = i.udp().recv_from(h, &mut buf, false);
            r.ok().map(|(n, from)| {
                i.udp().send_to(h, &buf[..n], Some(from)).expect("echo");
                n
            })
        });
        match got {
            Some(n) => {
                assert_eq!(n, sizes[echoed]);
                echoed += 1;
            }
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    let results = peer.join(Duration::from_secs(20));
    assert_eq!(results, vec![true; sizes.len()], "byte-exact echoes");
    let report = fx.stop();
    let c = report.iface.counters();
    assert!(c.ipv6_reassembled >= 2 && c.ipv6_fragmented >= 2, "{c:?}");
    tshark_finds_nothing_malformed(&fx);
}

/// RFC 6437 seen from the kernel: with `net.ipv6.flowlabel_reflect=1` in the namespace
/// an accepted socket keeps the flow label of the stack's segments, and with
/// `IPV6_FLOWINFO_SEND` `accept(2)` returns it in `sin6_flowinfo`. Two connections from
/// the stack: each label nonzero and 20 bits, and different from the other's.
#[test]
fn kernel_sees_a_nonzero_flow_label_per_stack_connection() {
    require_netns!();
    use std::net::SocketAddr;
    use std::os::fd::AsRawFd;
    let fx = fixture(false);
    const PORT: u16 = 5603;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let peer = fx.peer("flow label listener", move || {
        std::fs::write("/proc/sys/net/ipv6/flowlabel_reflect", "1").expect("flowlabel_reflect");
        let l = std::net::TcpListener::bind((KERNEL_IP6, PORT)).expect("bind");
        let on: libc::c_int = 1;
        // SAFETY: an int option of the right size on our listener.
        let r = unsafe {
            libc::setsockopt(
                l.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_FLOWINFO_SEND,
                (&on as *const libc::c_int).cast(),
                4,
            )
        };
        assert_eq!(
            r,
            0,
            "IPV6_FLOWINFO_SEND: {}",
            std::io::Error::last_os_error()
        );
        ready_tx.send(()).unwrap();
        let mut labels = Vec::new();
        for _ in 0..2 {
            let mut sa = sockaddr6(Ipv6Addr::UNSPECIFIED, 0);
            let mut len = core::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            // SAFETY: the address buffer is valid for `len` bytes.
            let c = unsafe {
                libc::accept(
                    l.as_raw_fd(),
                    (&mut sa as *mut libc::sockaddr_in6).cast(),
                    &mut len,
                )
            };
            assert!(c >= 0, "accept: {}", std::io::Error::last_os_error());
            labels.push(u32::from_be(sa.sin6_flowinfo) & 0x000f_ffff);
            // SAFETY: the accepted descriptor is ours.
            unsafe { libc::close(c) };
        }
        labels
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("listener ready");
    for _ in 0..2 {
        fx.call(|i, now| {
            let cx = i.tcp_context(now);
            let t = i.tcp();
            let h = t.socket();
            t.connect(h, &cx, SocketAddr::new(KERNEL_IP6.into(), PORT))
                .expect("connect");
        });
    }
    let labels = peer.join(Duration::from_secs(20));
    assert_eq!(labels.len(), 2);
    assert!(labels.iter().all(|l| *l != 0), "{labels:?}");
    assert_ne!(
        labels[0], labels[1],
        "two connections, one label: {labels:?}"
    );
}
