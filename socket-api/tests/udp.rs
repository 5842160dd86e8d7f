//! UDP through the BSD layer and `UdpSocket`, between two stacks in memory.

mod common;

use common::{pair, sa, A, B, PATIENCE};
use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use ustack_socket::*;

#[test]
fn udp_echo_between_two_stacks() {
    let (a, b) = pair();
    let server = UdpSocket::bind(&b, "0.0.0.0:7").unwrap();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        for _ in 0..50 {
            let (n, from) = server.recv_from(&mut buf).unwrap();
            server.send_to(&buf[..n], from).unwrap();
        }
    });
    let client = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    client.connect((B, 7)).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 2048];
    for i in 0..50u32 {
        let msg = format!("hello {i}").repeat(i as usize % 7 + 1);
        assert_eq!(client.send(msg.as_bytes()).unwrap(), msg.len());
        let n = client
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("echo {i}: {e}"));
        assert_eq!(&buf[..n], msg.as_bytes());
    }
    t.join().unwrap();
    assert_eq!(client.peer_addr().unwrap(), sa(B, 7));
    let local = client.local_addr().unwrap();
    assert!(local.port() >= 32768, "{local}");
}

#[test]
fn bsd_calls_send_and_receive_datagrams() {
    let (a, b) = pair();
    let s = b.socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP).unwrap();
    b.bind(s, sa(Ipv4Addr::UNSPECIFIED, 5000)).unwrap();
    assert_eq!(b.getsockname(s).unwrap(), sa(Ipv4Addr::UNSPECIFIED, 5000));
    let c = a.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    assert_eq!(a.getsockname(c).unwrap(), sa(Ipv4Addr::UNSPECIFIED, 0));
    assert_eq!(a.sendto(c, b"one", 0, sa(B, 5000)).unwrap(), 3);
    assert_eq!(a.sendto(c, b"two!", 0, sa(B, 5000)).unwrap(), 4);
    let mut buf = [0u8; 64];
    let (n, from) = b.recvfrom(s, &mut buf, 0).unwrap();
    assert_eq!(&buf[..n], b"one");
    assert_eq!(from, sa(A, a.getsockname(c).unwrap().port()));
    // MSG_PEEK leaves it; the next recv takes it.
    assert_eq!(b.recv(s, &mut buf, MSG_PEEK).unwrap(), 4);
    assert_eq!(b.bytes_readable(s).unwrap(), 4);
    assert_eq!(b.recv(s, &mut buf, 0).unwrap(), 4);
    assert_eq!(&buf[..4], b"two!");
    // Nothing left: non-blocking flavours say EAGAIN at once.
    assert_eq!(b.recv(s, &mut buf, MSG_DONTWAIT), Err(Errno::EAGAIN));
    b.set_nonblocking(s, true).unwrap();
    assert!(b.is_nonblocking(s).unwrap());
    assert_eq!(b.recv(s, &mut buf, 0), Err(Errno::EWOULDBLOCK));
    b.close(s).unwrap();
    a.close(c).unwrap();
}

#[test]
fn truncation_and_msg_trunc() {
    let (a, b) = pair();
    let s = UdpSocket::bind(&b, "0.0.0.0:6000").unwrap();
    let c = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    c.send_to(&[7u8; 100], (B, 6000)).unwrap();
    c.send_to(&[8u8; 100], (B, 6000)).unwrap();
    let mut small = [0u8; 10];
    assert_eq!(b.recv(s.fd(), &mut small, MSG_TRUNC).unwrap(), 100);
    assert_eq!(small, [7u8; 10]);
    // Without MSG_TRUNC: the copied length; the rest of the datagram is gone.
    assert_eq!(s.recv(&mut small).unwrap(), 10);
    assert_eq!(small, [8u8; 10]);
    assert_eq!(b.recv(s.fd(), &mut small, MSG_DONTWAIT), Err(Errno::EAGAIN));
}

#[test]
fn recv_timeout_gives_eagain_after_the_timeout() {
    let (_a, b) = pair();
    let s = UdpSocket::bind(&b, "0.0.0.0:9").unwrap();
    let t = Duration::from_millis(150);
    s.set_read_timeout(Some(t)).unwrap();
    assert_eq!(s.read_timeout().unwrap(), Some(t));
    let start = Instant::now();
    let err = s.recv_from(&mut [0u8; 8]).unwrap_err();
    let elapsed = start.elapsed();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert_eq!(err.raw_os_error(), Some(libc::EAGAIN));
    assert!(elapsed >= t, "returned after {elapsed:?}");
    assert!(elapsed < PATIENCE, "returned after {elapsed:?}");
    // Through the BSD layer, with SO_RCVTIMEO.
    let fd = s.fd();
    b.setsockopt(fd, SockOpt::RcvTimeo(Some(Duration::from_millis(50))))
        .unwrap();
    let start = Instant::now();
    assert_eq!(b.recv(fd, &mut [0u8; 8], 0), Err(Errno::EAGAIN));
    assert!(start.elapsed() >= Duration::from_millis(50));
    // std refuses a zero timeout; the BSD layer treats zero as "no timeout".
    assert_eq!(
        s.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    b.setsockopt(fd, SockOpt::RcvTimeo(Some(Duration::ZERO)))
        .unwrap();
    assert_eq!(
        b.getsockopt(fd, SockOptName::RcvTimeo).unwrap(),
        SockOpt::RcvTimeo(None)
    );
}

#[test]
fn blocking_recv_is_woken_by_a_datagram_from_another_thread() {
    let (a, b) = pair();
    let s = UdpSocket::bind(&b, "0.0.0.0:4444").unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let c = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
        c.send_to(b"late", (B, 4444)).unwrap();
        c
    });
    let mut buf = [0u8; 8];
    let (n, _) = s.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"late");
    drop(sender.join().unwrap());
}

#[test]
fn eaddrinuse_and_so_reuseaddr() {
    let (_a, b) = pair();
    let s1 = b.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    let s2 = b.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    b.bind(s1, sa(B, 53)).unwrap();
    assert_eq!(b.bind(s2, sa(B, 53)), Err(Errno::EADDRINUSE));
    assert_eq!(
        UdpSocket::bind(&b, (B, 53)).unwrap_err().kind(),
        ErrorKind::AddrInUse
    );
    // SO_REUSEADDR is stored and reported, but the engine keeps one UDP socket per port
    // (Linux would let both bind when both set it): still EADDRINUSE.
    b.setsockopt(s1, SockOpt::ReuseAddr(true)).unwrap();
    b.setsockopt(s2, SockOpt::ReuseAddr(true)).unwrap();
    assert_eq!(
        b.getsockopt(s2, SockOptName::ReuseAddr).unwrap(),
        SockOpt::ReuseAddr(true)
    );
    assert_eq!(b.bind(s2, sa(B, 53)), Err(Errno::EADDRINUSE));
    // Closing frees the port at once (UDP has no TIME-WAIT).
    b.close(s1).unwrap();
    b.bind(s2, sa(B, 53)).unwrap();
    // Bound twice: EINVAL; a foreign address: EADDRNOTAVAIL; IPv6: EAFNOSUPPORT.
    assert_eq!(b.bind(s2, sa(B, 54)), Err(Errno::EINVAL));
    let s3 = b.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    assert_eq!(
        b.bind(s3, sa(Ipv4Addr::new(192, 0, 2, 1), 1)),
        Err(Errno::EADDRNOTAVAIL)
    );
    assert_eq!(
        b.bind(s3, "[::1]:5".parse().unwrap()),
        Err(Errno::EAFNOSUPPORT)
    );
}

#[test]
fn ebadf_after_close() {
    let (_a, b) = pair();
    let fd = b.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    b.close(fd).unwrap();
    let mut buf = [0u8; 4];
    let addr = sa(A, 1);
    assert_eq!(b.close(fd), Err(Errno::EBADF));
    assert_eq!(b.bind(fd, addr), Err(Errno::EBADF));
    assert_eq!(b.connect(fd, addr), Err(Errno::EBADF));
    assert_eq!(b.listen(fd, 1), Err(Errno::EBADF));
    assert_eq!(b.accept(fd).unwrap_err(), Errno::EBADF);
    assert_eq!(b.send(fd, b"x", 0), Err(Errno::EBADF));
    assert_eq!(b.sendto(fd, b"x", 0, addr), Err(Errno::EBADF));
    assert_eq!(b.recv(fd, &mut buf, 0), Err(Errno::EBADF));
    assert_eq!(b.recvfrom(fd, &mut buf, 0).unwrap_err(), Errno::EBADF);
    assert_eq!(b.shutdown(fd, SHUT_RDWR), Err(Errno::EBADF));
    assert_eq!(b.getsockname(fd), Err(Errno::EBADF));
    assert_eq!(b.getpeername(fd), Err(Errno::EBADF));
    assert_eq!(
        b.setsockopt(fd, SockOpt::KeepAlive(true)),
        Err(Errno::EBADF)
    );
    assert_eq!(
        b.getsockopt(fd, SockOptName::Error).unwrap_err(),
        Errno::EBADF
    );
    assert_eq!(b.set_nonblocking(fd, true), Err(Errno::EBADF));
    assert_eq!(b.dup(fd), Err(Errno::EBADF));
    assert_eq!(b.bytes_readable(fd), Err(Errno::EBADF));
    assert_eq!(b.close(-1), Err(Errno::EBADF));
    assert_eq!(b.open_fds(), 0);
}

#[test]
fn close_wakes_a_thread_blocked_on_the_socket_with_ebadf() {
    let (_a, b) = pair();
    let fd = b.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    b.bind(fd, sa(B, 700)).unwrap();
    let b2 = b.clone();
    let t = std::thread::spawn(move || b2.recv(fd, &mut [0u8; 4], 0));
    std::thread::sleep(Duration::from_millis(50));
    b.close(fd).unwrap();
    assert_eq!(t.join().unwrap(), Err(Errno::EBADF));
}

#[test]
fn socket_argument_errors() {
    let (_a, b) = pair();
    assert_eq!(b.socket(AF_INET6, SOCK_DGRAM, 0), Err(Errno::EAFNOSUPPORT));
    assert_eq!(b.socket(AF_INET, 42, 0), Err(Errno::ESOCKTNOSUPPORT));
    assert_eq!(
        b.socket(AF_INET, SOCK_DGRAM, IPPROTO_TCP),
        Err(Errno::EPROTONOSUPPORT)
    );
    assert_eq!(
        b.socket(AF_INET, SOCK_STREAM, IPPROTO_UDP),
        Err(Errno::EPROTONOSUPPORT)
    );
    assert_eq!(b.socket(AF_INET, SOCK_RAW, 0), Err(Errno::EPROTONOSUPPORT));
    let fd = b
        .socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
        .unwrap();
    assert!(b.is_nonblocking(fd).unwrap());
    assert_eq!(b.listen(fd, 5), Err(Errno::EOPNOTSUPP));
    assert_eq!(b.accept(fd).unwrap_err(), Errno::EOPNOTSUPP);
    // Not connected: send needs an address; getpeername says ENOTCONN.
    assert_eq!(b.send(fd, b"x", 0), Err(Errno::EDESTADDRREQ));
    assert_eq!(b.getpeername(fd), Err(Errno::ENOTCONN));
    assert_eq!(b.sendto(fd, b"x", 0, sa(A, 0)), Err(Errno::EINVAL));
    assert_eq!(
        b.sendto(fd, b"x", 0, "[::1]:9".parse().unwrap()),
        Err(Errno::EAFNOSUPPORT)
    );
    assert_eq!(
        b.sendto(fd, &vec![0u8; 70_000], 0, sa(A, 9)),
        Err(Errno::EMSGSIZE)
    );
    assert_eq!(b.shutdown(fd, 7), Err(Errno::EINVAL));
}

#[test]
fn connected_socket_filters_peers_and_reports_port_unreachable() {
    let (a, b) = pair();
    let s = UdpSocket::bind(&b, "0.0.0.0:8000").unwrap();
    let other = UdpSocket::bind(&a, "0.0.0.0:8001").unwrap();
    let peer = UdpSocket::bind(&a, "0.0.0.0:8002").unwrap();
    s.connect((A, 8002)).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    other.send_to(b"stranger", (B, 8000)).unwrap();
    peer.send_to(b"friend", (B, 8000)).unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = s.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"friend"[..], sa(A, 8002)));

    // Nobody listens on A:9999: A answers with port unreachable, and the connected
    // socket reports ECONNREFUSED once (on recv, as Linux), then works again.
    let c = UdpSocket::bind(&b, "0.0.0.0:0").unwrap();
    c.connect((A, 9999)).unwrap();
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    c.send(b"anyone?").unwrap();
    let err = c.recv(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    assert_eq!(c.recv(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
}

#[test]
fn so_error_reports_and_clears_the_pending_error() {
    let (a, b) = pair();
    let _keep = &a;
    let c = UdpSocket::bind(&b, "0.0.0.0:0").unwrap();
    c.connect((A, 9998)).unwrap();
    c.send(b"x").unwrap();
    // Wait for the ICMP error to arrive: POLLERR.
    let mut p = [PollFd::new(c.fd(), PollEvents::POLLIN)];
    assert_eq!(b.poll(&mut p, Some(PATIENCE)).unwrap(), 1);
    assert!(
        p[0].revents.contains(PollEvents::POLLERR),
        "{:?}",
        p[0].revents
    );
    let e = c.take_error().unwrap().expect("pending error");
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    assert!(c.take_error().unwrap().is_none());
    assert_eq!(
        b.getsockopt(c.fd(), SockOptName::Error).unwrap(),
        SockOpt::Error(None)
    );
}

#[test]
fn shutdown_semantics() {
    let (a, b) = pair();
    let s = UdpSocket::bind(&b, "0.0.0.0:7100").unwrap();
    // Unconnected: ENOTCONN, but the shutdown applies (Linux).
    assert_eq!(b.shutdown(s.fd(), SHUT_WR), Err(Errno::ENOTCONN));
    assert_eq!(
        s.send_to(b"x", (A, 1)).unwrap_err().kind(),
        ErrorKind::BrokenPipe
    );
    s.connect((A, 7101)).unwrap();
    // A receiver blocked in recv wakes with end of file on SHUT_RD.
    let b2 = b.clone();
    let fd = s.fd();
    let t = std::thread::spawn(move || b2.recv(fd, &mut [0u8; 4], 0));
    std::thread::sleep(Duration::from_millis(30));
    b.shutdown(fd, SHUT_RD).unwrap();
    assert_eq!(t.join().unwrap(), Ok(0));
    let mut p = [PollFd::new(fd, PollEvents::POLLIN | PollEvents::POLLRDHUP)];
    assert_eq!(b.poll(&mut p, Some(Duration::ZERO)).unwrap(), 1);
    assert!(p[0]
        .revents
        .contains(PollEvents::POLLHUP | PollEvents::POLLRDHUP));
    let _ = a;
}

#[test]
fn socket_options_round_trip() {
    let (_a, b) = pair();
    let fd = b.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    let opts = [
        SockOpt::ReuseAddr(true),
        SockOpt::KeepAlive(true),
        SockOpt::Linger(Some(Duration::from_secs(3))),
        SockOpt::RcvBuf(4096),
        SockOpt::SndBuf(8192),
        SockOpt::RcvTimeo(Some(Duration::from_millis(1500))),
        SockOpt::SndTimeo(Some(Duration::from_millis(2500))),
    ];
    for o in opts {
        b.setsockopt(fd, o.clone()).unwrap();
        assert_eq!(b.getsockopt(fd, o.name()).unwrap(), o);
    }
    assert_eq!(
        b.getsockopt(fd, SockOptName::Type).unwrap(),
        SockOpt::Type(SOCK_DGRAM)
    );
    assert_eq!(b.setsockopt(fd, SockOpt::Type(1)), Err(Errno::ENOPROTOOPT));
    assert_eq!(
        b.setsockopt(fd, SockOpt::Error(None)),
        Err(Errno::ENOPROTOOPT)
    );
    assert_eq!(b.setsockopt(fd, SockOpt::RcvBuf(0)), Err(Errno::EINVAL));
    // TCP-level options on a UDP socket: ENOPROTOOPT, as Linux.
    for name in [
        SockOptName::TcpNoDelay,
        SockOptName::TcpKeepIdle,
        SockOptName::TcpKeepIntvl,
        SockOptName::TcpKeepCnt,
        SockOptName::TcpInfo,
        SockOptName::TcpCongestion,
    ] {
        assert_eq!(b.getsockopt(fd, name).unwrap_err(), Errno::ENOPROTOOPT);
        assert!(name.is_tcp());
    }
    assert_eq!(
        b.setsockopt(fd, SockOpt::TcpNoDelay(true)),
        Err(Errno::ENOPROTOOPT)
    );
    assert_eq!(
        SockOptName::RcvBuf.level_and_name(),
        (libc::SOL_SOCKET, libc::SO_RCVBUF)
    );
}

#[test]
fn so_rcvbuf_bounds_the_receive_queue() {
    let (a, b) = pair();
    let s = UdpSocket::bind(&b, "0.0.0.0:7200").unwrap();
    b.setsockopt(s.fd(), SockOpt::RcvBuf(250)).unwrap();
    let c = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    for _ in 0..5 {
        c.send_to(&[1u8; 100], (B, 7200)).unwrap();
    }
    // A sixth datagram after the others shows when all five have been processed.
    let marker = UdpSocket::bind(&b, "0.0.0.0:7201").unwrap();
    marker.set_read_timeout(Some(PATIENCE)).unwrap();
    c.send_to(b"m", (B, 7201)).unwrap();
    marker.recv(&mut [0u8; 1]).unwrap();
    let mut got = 0;
    while b.recv(s.fd(), &mut [0u8; 200], MSG_DONTWAIT).is_ok() {
        got += 1;
    }
    assert_eq!(got, 2, "250 bytes hold two 100-byte datagrams");
}

#[test]
fn try_clone_and_dup_share_the_socket() {
    let (a, b) = pair();
    let s = UdpSocket::bind(&b, "0.0.0.0:7300").unwrap();
    let s2 = s.try_clone().unwrap();
    assert_ne!(s.fd(), s2.fd());
    s2.set_nonblocking(true).unwrap();
    assert!(b.is_nonblocking(s.fd()).unwrap(), "O_NONBLOCK is shared");
    s2.set_nonblocking(false).unwrap();
    drop(s);
    s2.set_read_timeout(Some(PATIENCE)).unwrap();
    let c = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    c.send_to(b"still here", (B, 7300)).unwrap();
    let mut buf = [0u8; 16];
    let n = s2.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"still here");
    assert_eq!(b.open_fds(), 1);
}

#[test]
fn emfile_when_the_table_is_full() {
    let (_a, b) = ustack_socket::NetStack::builder()
        .ip("10.0.0.1/24".parse().unwrap())
        .build_pair(
            NetStack::builder()
                .ip("10.0.0.2/24".parse().unwrap())
                .max_fds(2),
            16,
        )
        .unwrap();
    let x = b.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    let _y = b.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    assert_eq!(b.socket(AF_INET, SOCK_DGRAM, 0), Err(Errno::EMFILE));
    assert_eq!(b.dup(x), Err(Errno::EMFILE));
    b.close(x).unwrap();
    assert_eq!(b.socket(AF_INET, SOCK_DGRAM, 0), Ok(x), "lowest free first");
}

#[test]
fn many_threads_send_and_receive_concurrently() {
    let (a, b) = pair();
    const THREADS: usize = 16;
    const MSGS: usize = 200;
    let barrier = Arc::new(Barrier::new(THREADS));
    let mut ts = Vec::new();
    for i in 0..THREADS {
        let (a, b, barrier) = (a.clone(), b.clone(), barrier.clone());
        ts.push(std::thread::spawn(move || {
            let port = 20000 + i as u16;
            let server = UdpSocket::bind(&b, ("0.0.0.0", port)).unwrap();
            let client = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
            client.connect((B, port)).unwrap();
            server.set_read_timeout(Some(PATIENCE)).unwrap();
            barrier.wait();
            let mut buf = [0u8; 8];
            // Stop-and-wait so no datagram is lost to a full queue.
            for m in 0..MSGS as u32 {
                client.send(&m.to_be_bytes()).unwrap();
                let n = server.recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], &m.to_be_bytes());
            }
        }));
    }
    for t in ts {
        t.join().unwrap();
    }
}

#[test]
fn dropping_the_last_handle_stops_the_driver_and_closes_sockets() {
    let (a, b) = pair();
    let s = UdpSocket::bind(&b, "0.0.0.0:7400").unwrap();
    let raw = b.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    assert_eq!(b.open_fds(), 2);
    drop(b);
    // The socket keeps the stack alive.
    assert_eq!(s.local_addr().unwrap().port(), 7400);
    assert_eq!(s.stack().open_fds(), 2);
    let _ = raw;
    drop(s);
    drop(a);
}

#[test]
fn plain_memory_links_work_on_the_poll_tick_and_builder_checks_its_input() {
    let (la, lb) = ustack::link::MemoryLink::pair(64);
    let a = NetStack::builder()
        .memory(la)
        .ip("10.0.0.1/24".parse().unwrap())
        .build()
        .unwrap();
    let b = NetStack::builder()
        .memory(lb)
        .ip("10.0.0.2/24".parse().unwrap())
        .mtu(1400)
        .build()
        .unwrap();
    assert_eq!(b.ip(), B);
    assert_eq!(b.cidr().prefix_len(), 24);
    assert_eq!(b.mac().0, [2, 0, 10, 0, 0, 2]);
    let s = UdpSocket::bind(&b, "0.0.0.0:7500").unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let c = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    c.send_to(b"tick", (B, 7500)).unwrap();
    let mut buf = [0u8; 8];
    let (n, from) = s.recv_from(&mut buf).unwrap();
    assert_eq!(
        (&buf[..n], from.ip()),
        (&b"tick"[..], std::net::IpAddr::V4(A))
    );
    assert!(b.counters().rx_frames > 0);
    assert!(b.link_error().is_none());
    // Missing pieces are refused.
    let no_ip = NetStack::builder()
        .memory(ustack::link::MemoryLink::pair(1).0)
        .build();
    assert_eq!(no_ip.unwrap_err().kind(), ErrorKind::InvalidInput);
    let no_link = NetStack::builder()
        .ip("10.0.0.3/24".parse().unwrap())
        .build();
    assert_eq!(no_link.unwrap_err().kind(), ErrorKind::InvalidInput);
}

/// A link that panics on receive once told to, standing for a bug in the engine.
struct Boom {
    inner: Box<dyn ustack::link::Link + Send>,
    armed: Arc<std::sync::atomic::AtomicBool>,
}

impl ustack::link::Link for Boom {
    fn recv(
        &mut self,
        now: ustack::time::Instant,
        buf: &mut [u8],
    ) -> std::io::Result<Option<usize>> {
        let r = self.inner.recv(now, buf)?;
        if r.is_some() && self.armed.load(std::sync::atomic::Ordering::SeqCst) {
            panic!("injected driver panic");
        }
        Ok(r)
    }
    fn send(&mut self, now: ustack::time::Instant, frame: &[u8]) -> std::io::Result<()> {
        self.inner.send(now, frame)
    }
}

#[test]
fn a_dead_driver_fails_blocked_calls_with_eio_instead_of_hanging() {
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let arm = armed.clone();
    let (a, b) = NetStack::builder()
        .ip("10.0.0.1/24".parse().unwrap())
        .wrap_link(move |inner| Box::new(Boom { inner, armed: arm }))
        .build_pair(NetStack::builder().ip("10.0.0.2/24".parse().unwrap()), 64)
        .unwrap();
    let s = UdpSocket::bind(&a, "0.0.0.0:7600").unwrap();
    let fd = s.fd();
    let a2 = a.clone();
    let blocked = std::thread::spawn(move || a2.recv(fd, &mut [0u8; 4], 0));
    std::thread::sleep(Duration::from_millis(30));
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let c = UdpSocket::bind(&b, "0.0.0.0:0").unwrap();
    c.send_to(b"boom", (A, 7600)).unwrap();
    assert_eq!(blocked.join().unwrap(), Err(Errno::EIO));
    assert_eq!(a.recv(fd, &mut [0u8; 4], 0), Err(Errno::EIO));
    let mut p = [PollFd::new(fd, PollEvents::POLLIN)];
    assert_eq!(a.poll(&mut p, None), Err(Errno::EIO));
    assert!(a.link_error().is_some());
}

/// An engine handle kept after close (here one a tool opened through `with_interface`)
/// is stale: it never reaches the socket of the descriptor that reuses its slot, and
/// that socket keeps its datagram.
#[test]
fn udp_handle_kept_after_close_cannot_reach_the_socket_reusing_its_slot() {
    use std::net::SocketAddrV4;
    use ustack::socket::udp::{OptionError, RecvError, SendError};
    use ustack::socket::CloseError;
    let (a, b) = pair();
    let old = b.with_interface(|i, _| {
        let h = i.udp().socket();
        i.udp()
            .bind(
                h,
                SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7100).into(),
                &ustack::socket::LocalAddrs::v4(B),
            )
            .unwrap();
        i.udp().close(h).unwrap();
        h
    });
    let new = UdpSocket::bind(&b, "0.0.0.0:7100").unwrap();
    // B's layer never held more than one socket, so the new one is in the old slot.
    assert_eq!(b.with_interface(|i, _| i.udp().len()), 1);
    assert_eq!(old.to_string(), "udp#0.0");
    let client = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    client.send_to(b"for new", (B, 7100)).unwrap();
    let mut p = [PollFd::new(new.fd(), PollEvents::POLLIN)];
    assert_eq!(b.poll(&mut p, Some(PATIENCE)).unwrap(), 1);
    b.with_interface(|i, _| {
        let mut buf = [0u8; 16];
        let udp = i.udp();
        assert_eq!(udp.peek_len(old), Err(OptionError::BadHandle));
        assert_eq!(udp.local_addr(old), Err(OptionError::BadHandle));
        assert_eq!(
            udp.recv_from(old, &mut buf, false),
            Err(RecvError::BadHandle)
        );
        assert_eq!(
            udp.send_to(old, b"x", Some(SocketAddrV4::new(A, 9).into())),
            Err(SendError::BadHandle)
        );
        assert_eq!(udp.close(old), Err(CloseError::BadHandle));
    });
    let mut buf = [0u8; 16];
    let (n, from) = new.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"for new");
    assert_eq!(from, sa(A, client.local_addr().unwrap().port()));
    assert_eq!(new.local_addr().unwrap(), sa(Ipv4Addr::UNSPECIFIED, 7100));
}
