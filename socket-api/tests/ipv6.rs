//! AF_INET6 sockets through the BSD layer and the `std::net`-like types, between two
//! stacks in memory: dual stack with IPv4 peers (v4-mapped addresses in, IPv4 on the
//! wire, v4-mapped out), IPV6_V6ONLY, the IPPROTO_IPV6 options, and the errno of every
//! family mismatch, which are Linux's (measured with kernel sockets, see
//! `ustack_socket::family`).

mod common;

use common::{pair, sa, A, B, PATIENCE};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use ustack_socket::*;

fn v6(ip: Ipv6Addr, port: u16) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0))
}

fn mapped(ip: Ipv4Addr, port: u16) -> SocketAddr {
    v6(ip.to_ipv6_mapped(), port)
}

#[test]
fn dual_stack_tcp_listener_reports_ipv4_peers_as_mapped() {
    let (a, b) = pair();
    let l = b.socket(AF_INET6, SOCK_STREAM, 0).unwrap();
    assert_eq!(b.getsockname(l).unwrap(), v6(Ipv6Addr::UNSPECIFIED, 0));
    assert_eq!(
        b.getsockopt(l, SockOptName::Ipv6V6Only).unwrap(),
        SockOpt::Ipv6V6Only(false),
        "Linux's default (bindv6only = 0)"
    );
    b.bind(l, v6(Ipv6Addr::UNSPECIFIED, 8080)).unwrap();
    b.listen(l, 8).unwrap();
    assert_eq!(b.getsockname(l).unwrap(), v6(Ipv6Addr::UNSPECIFIED, 8080));
    // An IPv4 client (AF_INET) and a v4-mapped one (AF_INET6) both reach it over IPv4.
    let c4 = TcpStream::connect(&a, (B, 8080)).unwrap();
    let c6 = a.socket(AF_INET6, SOCK_STREAM, 0).unwrap();
    a.connect(c6, mapped(B, 8080)).unwrap();
    let c6_local = a.getsockname(c6).unwrap();
    assert_eq!(c6_local.ip(), mapped(A, 0).ip(), "{c6_local}");
    assert_eq!(a.getpeername(c6).unwrap(), mapped(B, 8080));
    b.setsockopt(l, SockOpt::RcvTimeo(Some(PATIENCE))).unwrap();
    let (s1, p1) = b.accept(l).unwrap();
    let (s2, p2) = b.accept(l).unwrap();
    let mut peers = [p1, p2];
    peers.sort();
    let mut want = [
        mapped(A, c4.local_addr().unwrap().port()),
        mapped(A, c6_local.port()),
    ];
    want.sort();
    assert_eq!(peers, want);
    for s in [s1, s2] {
        assert_eq!(b.getsockname(s).unwrap(), mapped(B, 8080));
        assert!(b.getpeername(s).unwrap().is_ipv6());
    }
    // Data flows on the mapped connection like on any other.
    assert_eq!(a.send(c6, b"over ipv4", 0).unwrap(), 9);
    let mut buf = [0u8; 16];
    let got = [s1, s2]
        .into_iter()
        .find_map(|s| {
            b.setsockopt(
                s,
                SockOpt::RcvTimeo(Some(std::time::Duration::from_millis(300))),
            )
            .unwrap();
            b.recv(s, &mut buf, 0).ok().filter(|&n| n > 0)
        })
        .expect("one of the accepted sockets got the data");
    assert_eq!(&buf[..got], b"over ipv4");
}

#[test]
fn v6only_listener_refuses_ipv4_and_options_follow_linux() {
    let (a, b) = pair();
    let l = b.socket(AF_INET6, SOCK_STREAM, 0).unwrap();
    b.setsockopt(l, SockOpt::Ipv6V6Only(true)).unwrap();
    b.bind(l, v6(Ipv6Addr::UNSPECIFIED, 8081)).unwrap();
    b.listen(l, 8).unwrap();
    // Once bound, IPV6_V6ONLY no longer changes (Linux: EINVAL).
    assert_eq!(
        b.setsockopt(l, SockOpt::Ipv6V6Only(false)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        b.getsockopt(l, SockOptName::Ipv6V6Only).unwrap(),
        SockOpt::Ipv6V6Only(true)
    );
    let err = TcpStream::connect(&a, (B, 8081)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    // A v4-mapped address on an IPV6_V6ONLY socket: EINVAL to bind, ENETUNREACH to
    // connect or send to.
    let s = a.socket(AF_INET6, SOCK_STREAM, 0).unwrap();
    a.setsockopt(s, SockOpt::Ipv6V6Only(true)).unwrap();
    assert_eq!(a.bind(s, mapped(A, 0)), Err(Errno::EINVAL));
    assert_eq!(a.connect(s, mapped(B, 8081)), Err(Errno::ENETUNREACH));
    let u = a.socket(AF_INET6, SOCK_DGRAM, 0).unwrap();
    a.setsockopt(u, SockOpt::Ipv6V6Only(true)).unwrap();
    assert_eq!(a.sendto(u, b"x", 0, mapped(B, 9)), Err(Errno::ENETUNREACH));
    assert_eq!(a.connect(u, mapped(B, 9)), Err(Errno::ENETUNREACH));
}

#[test]
fn ipv6_options_are_af_inet6_only() {
    let (a, _b) = pair();
    let s4 = a.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    assert_eq!(
        a.setsockopt(s4, SockOpt::Ipv6V6Only(true)),
        Err(Errno::ENOPROTOOPT)
    );
    assert_eq!(
        a.getsockopt(s4, SockOptName::Ipv6V6Only),
        Err(Errno::EOPNOTSUPP)
    );
    let s6 = a.socket(AF_INET6, SOCK_DGRAM, 0).unwrap();
    a.setsockopt(s6, SockOpt::Ipv6TClass(32)).unwrap();
    assert_eq!(
        a.getsockopt(s6, SockOptName::Ipv6TClass).unwrap(),
        SockOpt::Ipv6TClass(32)
    );
    assert_eq!(
        a.setsockopt(s6, SockOpt::Ipv6TClass(256)),
        Err(Errno::EINVAL)
    );
    a.setsockopt(s6, SockOpt::Ipv6UnicastHops(-1)).unwrap();
    assert_eq!(
        a.getsockopt(s6, SockOptName::Ipv6UnicastHops).unwrap(),
        SockOpt::Ipv6UnicastHops(64),
        "-1 reads back as the default hop limit"
    );
    assert_eq!(
        SockOptName::Ipv6V6Only.level_and_name(),
        (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY)
    );
}

#[test]
fn family_mismatches_give_linux_errnos() {
    let (a, _b) = pair();
    for ty in [SOCK_STREAM, SOCK_DGRAM] {
        // AF_INET given any IPv6 address: EAFNOSUPPORT everywhere.
        let s4 = a.socket(AF_INET, ty, 0).unwrap();
        assert_eq!(a.bind(s4, mapped(A, 0)), Err(Errno::EAFNOSUPPORT));
        assert_eq!(
            a.connect(s4, v6(Ipv6Addr::LOCALHOST, 80)),
            Err(Errno::EAFNOSUPPORT)
        );
        // AF_INET6 given a sockaddr_in to bind: EINVAL (too short a sockaddr_in6).
        let s6 = a.socket(AF_INET6, ty, 0).unwrap();
        assert_eq!(a.bind(s6, sa(A, 0)), Err(Errno::EINVAL));
        // A link-local address needs a scope id.
        let ll = "fe80::1".parse().unwrap();
        assert_eq!(a.bind(s6, v6(ll, 0)), Err(Errno::EINVAL));
        // An IPv6 address that is not ours.
        assert_eq!(
            a.bind(s6, v6("2001:db8::1".parse().unwrap(), 0)),
            Err(Errno::EADDRNOTAVAIL)
        );
    }
    let s4 = a.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    assert_eq!(
        a.sendto(s4, b"x", 0, mapped(B, 9)),
        Err(Errno::EAFNOSUPPORT)
    );
    // Stream connect with a sockaddr_in on AF_INET6: EINVAL; datagram sendto takes it.
    let t6 = a.socket(AF_INET6, SOCK_STREAM, 0).unwrap();
    assert_eq!(a.connect(t6, sa(B, 80)), Err(Errno::EINVAL));
    let u6 = a.socket(AF_INET6, SOCK_DGRAM, 0).unwrap();
    assert_eq!(a.sendto(u6, b"x", 0, sa(B, 9)), Ok(1));
    // Linux autobinds an AF_INET6 socket to `[::]` whatever it sends to.
    let local = a.getsockname(u6).unwrap();
    assert_eq!(local.ip(), v6(Ipv6Addr::UNSPECIFIED, 0).ip(), "{local}");
    // Raw sockets: the other family's address is EAFNOSUPPORT to connect, EINVAL
    // (AF_INET6) or EAFNOSUPPORT (AF_INET) to send to.
    let r6 = a.socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6).unwrap();
    assert_eq!(a.connect(r6, sa(B, 0)), Err(Errno::EAFNOSUPPORT));
    assert_eq!(a.sendto(r6, b"x", 0, sa(B, 0)), Err(Errno::EINVAL));
    let r4 = a.socket(AF_INET, SOCK_RAW, IPPROTO_ICMP).unwrap();
    assert_eq!(
        a.sendto(r4, b"x", 0, v6(Ipv6Addr::LOCALHOST, 0)),
        Err(Errno::EAFNOSUPPORT)
    );
    // No IPv6 address configured on this stack: IPv6 destinations have no route.
    assert_eq!(
        a.connect(t6, v6("fd00::2".parse().unwrap(), 80)),
        Err(Errno::ENETUNREACH)
    );
}

#[test]
fn dual_stack_udp_through_std_like_types() {
    let (a, b) = pair();
    let server = UdpSocket::bind(&b, "[::]:5300").unwrap();
    assert_eq!(
        server.local_addr().unwrap(),
        v6(Ipv6Addr::UNSPECIFIED, 5300)
    );
    let client = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    client.send_to(b"ping", (B, 5300)).unwrap();
    server.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    assert_eq!(from, mapped(A, client.local_addr().unwrap().port()));
    // Replying to the mapped address goes out as IPv4.
    server.send_to(b"pong", from).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let (n, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"pong"[..], sa(B, 5300)));
}

#[test]
fn mapped_tcp_stream_through_std_like_types() {
    let (a, b) = pair();
    let l = TcpListener::bind(&b, "[::]:8082").unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, peer) = l.accept().unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
        peer
    });
    let mut c = TcpStream::connect(&a, mapped(B, 8082)).unwrap();
    assert_eq!(c.peer_addr().unwrap(), mapped(B, 8082));
    c.write_all(b"hello").unwrap();
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    let peer = t.join().unwrap();
    assert_eq!(peer, mapped(A, c.local_addr().unwrap().port()));
}

/// nginx's `listen 80; listen [::]:80;`: an AF_INET and an IPV6_V6ONLY AF_INET6
/// listener on one port, as Linux allows; without IPV6_V6ONLY the second is EADDRINUSE.
#[test]
fn ipv4_and_v6only_listeners_bind_one_port() {
    let (a, b) = pair();
    let l4 = b.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    b.bind(l4, sa(Ipv4Addr::UNSPECIFIED, 8083)).unwrap();
    b.listen(l4, 8).unwrap();
    let dual = b.socket(AF_INET6, SOCK_STREAM, 0).unwrap();
    assert_eq!(
        b.bind(dual, v6(Ipv6Addr::UNSPECIFIED, 8083)),
        Err(Errno::EADDRINUSE)
    );
    let l6 = b.socket(AF_INET6, SOCK_STREAM, 0).unwrap();
    b.setsockopt(l6, SockOpt::Ipv6V6Only(true)).unwrap();
    b.bind(l6, v6(Ipv6Addr::UNSPECIFIED, 8083)).unwrap();
    b.listen(l6, 8).unwrap();
    // IPv4 clients reach the AF_INET listener.
    let _c = TcpStream::connect(&a, (B, 8083)).unwrap();
    b.setsockopt(l4, SockOpt::RcvTimeo(Some(PATIENCE))).unwrap();
    let (_s, peer) = b.accept(l4).unwrap();
    assert_eq!(peer.ip(), std::net::IpAddr::V4(A));
}

/// Two stacks with IPv6 addresses, used the moment they are built: the first connect
/// and sendto wait out duplicate address detection instead of failing with
/// ENETUNREACH, then TCP and UDP run over IPv6 with native IPv6 peers.
#[test]
fn ipv6_end_to_end_right_after_start_waits_for_dad() {
    let (a, b) = NetStack::builder()
        .ip("10.0.0.1/24".parse().unwrap())
        .ip6("fd00::1/64".parse().unwrap())
        .build_pair(
            NetStack::builder()
                .ip("10.0.0.2/24".parse().unwrap())
                .ip6("fd00::2/64".parse().unwrap()),
            4096,
        )
        .expect("stack pair");
    let (a6, b6): (Ipv6Addr, Ipv6Addr) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
    let server = UdpSocket::bind(&b, "[::]:5301").unwrap();
    let client = UdpSocket::bind(&a, "[::]:0").unwrap();
    client.send_to(b"over ipv6", v6(b6, 5301)).unwrap();
    server.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"over ipv6");
    assert_eq!(from, v6(a6, client.local_addr().unwrap().port()));
    let l = TcpListener::bind(&b, "[::]:8084").unwrap();
    let mut c = TcpStream::connect(&a, v6(b6, 8084)).unwrap();
    let (mut s, peer) = l.accept().unwrap();
    assert_eq!(peer.ip(), std::net::IpAddr::V6(a6));
    c.write_all(b"tcp6").unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = [0u8; 4];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"tcp6");
}
