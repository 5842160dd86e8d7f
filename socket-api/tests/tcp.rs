//! TCP through the BSD layer and `TcpListener`/`TcpStream`, between two stacks.

mod common;

use common::{pair, sa, A, B, PATIENCE};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ustack::socket::tcp::TcpState;
use ustack_socket::*;

/// Polls one descriptor for `events`, bounded by PATIENCE.
fn wait_for(stack: &NetStack, fd: Fd, events: PollEvents) -> PollEvents {
    let mut p = [PollFd::new(fd, events)];
    assert_eq!(
        stack.poll(&mut p, Some(PATIENCE)).unwrap(),
        1,
        "no {events:?}"
    );
    p[0].revents
}

#[test]
fn tcp_echo_with_bufreader_and_io_copy() {
    let (a, b) = pair();
    let listener = TcpListener::bind(&b, "0.0.0.0:7").unwrap();
    assert_eq!(listener.local_addr().unwrap(), sa(Ipv4Addr::UNSPECIFIED, 7));
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        assert_eq!(
            *match peer {
                std::net::SocketAddr::V4(p) => p,
                _ => unreachable!(),
            }
            .ip(),
            A
        );
        let mut r = s.try_clone().unwrap();
        std::io::copy(&mut r, &mut s).unwrap();
    });
    let mut c = TcpStream::connect(&a, (B, 7)).unwrap();
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    assert_eq!(c.peer_addr().unwrap(), sa(B, 7));
    assert_eq!(
        std::net::SocketAddr::V4(match c.local_addr().unwrap() {
            std::net::SocketAddr::V4(l) => l,
            _ => unreachable!(),
        })
        .ip(),
        std::net::IpAddr::V4(A)
    );
    let mut reader = BufReader::new(c.try_clone().unwrap());
    for i in 0..20 {
        writeln!(c, "line {i}").unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, format!("line {i}\n"));
    }
    // A megabyte both ways, written and read concurrently.
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut w = c.try_clone().unwrap();
    let d2 = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&d2).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    reader.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data);
    server.join().unwrap();
}

#[test]
fn blocking_accept_is_woken_by_a_connection_from_another_thread() {
    let (a, b) = pair();
    let l = TcpListener::bind(&b, "0.0.0.0:80").unwrap();
    let a2 = a.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let mut s = TcpStream::connect(&a2, (B, 80)).unwrap();
        s.write_all(b"hi").unwrap();
        s
    });
    let start = Instant::now();
    let (mut s, _) = l.accept().unwrap();
    assert!(start.elapsed() < PATIENCE);
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 2];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi");
    drop(t.join().unwrap());
}

#[test]
fn accept_honours_nonblocking_and_rcvtimeo() {
    let (_a, b) = pair();
    let l = TcpListener::bind(&b, "0.0.0.0:81").unwrap();
    l.set_nonblocking(true).unwrap();
    assert_eq!(l.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
    l.set_nonblocking(false).unwrap();
    b.setsockopt(l.fd(), SockOpt::RcvTimeo(Some(Duration::from_millis(80))))
        .unwrap();
    let start = Instant::now();
    assert_eq!(b.accept(l.fd()).unwrap_err(), Errno::EAGAIN);
    assert!(start.elapsed() >= Duration::from_millis(80));
    // Not listening: EINVAL.
    let s = b.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(b.accept(s).unwrap_err(), Errno::EINVAL);
}

#[test]
fn nonblocking_connect_gives_einprogress_then_pollout() {
    let (a, b) = pair();
    let l = TcpListener::bind(&b, "0.0.0.0:5000").unwrap();
    let fd = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    assert_eq!(a.connect(fd, sa(B, 5000)), Err(Errno::EINPROGRESS));
    let ev = wait_for(&a, fd, PollEvents::POLLOUT);
    assert!(ev.contains(PollEvents::POLLOUT), "{ev:?}");
    assert_eq!(
        a.getsockopt(fd, SockOptName::Error).unwrap(),
        SockOpt::Error(None)
    );
    assert_eq!(a.connect(fd, sa(B, 5000)), Err(Errno::EISCONN));
    assert_eq!(a.getpeername(fd).unwrap(), sa(B, 5000));
    let (s, _) = l.accept().unwrap();
    assert_eq!(s.peer_addr().unwrap(), a.getsockname(fd).unwrap());
    // Non-blocking recv with nothing there.
    assert_eq!(a.recv(fd, &mut [0u8; 4], 0), Err(Errno::EAGAIN));
    a.close(fd).unwrap();
}

#[test]
fn connect_in_progress_gives_ealready_and_sndtimeo_gives_einprogress() {
    let (a, _b) = pair();
    // Nobody has 10.0.0.77: the SYN waits for ARP that never comes.
    let nowhere = sa(Ipv4Addr::new(10, 0, 0, 77), 80);
    let fd = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    a.set_nonblocking(fd, true).unwrap();
    assert_eq!(a.connect(fd, nowhere), Err(Errno::EINPROGRESS));
    assert_eq!(a.connect(fd, nowhere), Err(Errno::EALREADY));
    let mut p = [PollFd::new(fd, PollEvents::POLLOUT)];
    assert_eq!(a.poll(&mut p, Some(Duration::from_millis(30))).unwrap(), 0);
    assert_eq!(a.getpeername(fd), Err(Errno::ENOTCONN));
    a.close(fd).unwrap();

    let fd = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    let t = Duration::from_millis(100);
    a.setsockopt(fd, SockOpt::SndTimeo(Some(t))).unwrap();
    let start = Instant::now();
    assert_eq!(a.connect(fd, nowhere), Err(Errno::EINPROGRESS));
    assert!(start.elapsed() >= t);
    // And no route at all: ENETUNREACH at once.
    let fd2 = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(
        a.connect(fd2, sa(Ipv4Addr::new(192, 0, 2, 1), 80)),
        Err(Errno::ENETUNREACH)
    );
    let err = TcpStream::connect_timeout(&a, &nowhere, Duration::from_millis(50)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
}

#[test]
fn econnrefused_blocking_and_nonblocking() {
    let (a, _b) = pair();
    let err = TcpStream::connect(&a, (B, 4321)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    let fd = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    assert_eq!(a.connect(fd, sa(B, 4321)), Err(Errno::EINPROGRESS));
    let ev = wait_for(&a, fd, PollEvents::POLLOUT);
    assert!(
        ev.contains(PollEvents::POLLERR | PollEvents::POLLHUP),
        "{ev:?}"
    );
    assert_eq!(
        a.getsockopt(fd, SockOptName::Error).unwrap(),
        SockOpt::Error(Some(Errno::ECONNREFUSED))
    );
    assert_eq!(
        a.getsockopt(fd, SockOptName::Error).unwrap(),
        SockOpt::Error(None)
    );
    let err = TcpStream::connect_timeout(&a, &sa(B, 4321), PATIENCE).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn send_after_peer_reset_gives_econnreset_then_epipe() {
    let (a, b) = pair();
    let l = TcpListener::bind(&b, "0.0.0.0:6000").unwrap();
    let c = TcpStream::connect(&a, (B, 6000)).unwrap();
    let (s, _) = l.accept().unwrap();
    // Zero linger: close sends RST.
    s.set_linger(Some(Duration::ZERO)).unwrap();
    drop(s);
    let ev = wait_for(&a, c.fd(), PollEvents::POLLIN);
    assert!(ev.contains(PollEvents::POLLERR), "{ev:?}");
    assert!(ev.contains(PollEvents::POLLHUP), "{ev:?}");
    let e1 = a.send(c.fd(), b"x", MSG_NOSIGNAL).unwrap_err();
    assert_eq!(e1, Errno::ECONNRESET);
    let e2 = a.send(c.fd(), b"x", MSG_NOSIGNAL).unwrap_err();
    assert_eq!(e2, Errno::EPIPE);
    assert_eq!((&c).write(b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
    // Reading after the reset: end of stream.
    assert_eq!((&c).read(&mut [0u8; 4]).unwrap(), 0);
}

#[test]
fn recv_after_peer_reset_gives_econnreset() {
    let (a, b) = pair();
    let l = TcpListener::bind(&b, "0.0.0.0:6001").unwrap();
    let c = TcpStream::connect(&a, (B, 6001)).unwrap();
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    let (s, _) = l.accept().unwrap();
    s.set_linger(Some(Duration::ZERO)).unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        drop(s);
    });
    let err = (&c).read(&mut [0u8; 4]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    t.join().unwrap();
}

#[test]
fn shutdown_write_gives_the_peer_eof_and_half_close_works() {
    let (a, b) = pair();
    let l = TcpListener::bind(&b, "0.0.0.0:6100").unwrap();
    let mut c = TcpStream::connect(&a, (B, 6100)).unwrap();
    let (mut s, _) = l.accept().unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    c.write_all(b"request").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(c.write(b"more").unwrap_err().kind(), ErrorKind::BrokenPipe);
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"request");
    // POLLRDHUP is reported only when asked for, as on Linux.
    let ev = wait_for(&b, s.fd(), PollEvents::POLLIN | PollEvents::POLLRDHUP);
    assert!(ev.contains(PollEvents::POLLRDHUP), "{ev:?}");
    // The other direction still works.
    s.write_all(b"response").unwrap();
    drop(s);
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"response");
    // Unconnected: ENOTCONN.
    let fd = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(a.shutdown(fd, SHUT_RDWR), Err(Errno::ENOTCONN));
}

#[test]
fn shutdown_read_wakes_a_blocked_tcp_reader_with_eof() {
    let (a, b) = pair();
    let l = TcpListener::bind(&b, "0.0.0.0:6110").unwrap();
    let _c = TcpStream::connect(&a, (B, 6110)).unwrap();
    let (s, _) = l.accept().unwrap();
    let fd = s.fd();
    let b2 = b.clone();
    let started = Instant::now();
    // No timeout: only the shutdown can end this read.
    let t = std::thread::spawn(move || b2.recv(fd, &mut [0u8; 4], 0));
    std::thread::sleep(Duration::from_millis(50));
    b.shutdown(fd, SHUT_RD).unwrap();
    assert_eq!(t.join().unwrap(), Ok(0));
    assert!(
        started.elapsed() < PATIENCE,
        "woken by the shutdown, not a timer"
    );
    let mut p = [PollFd::new(fd, PollEvents::POLLIN)];
    assert_eq!(b.poll(&mut p, Some(Duration::ZERO)).unwrap(), 1);
}

#[test]
fn msg_waitall_msg_peek_and_timeouts() {
    let (a, b) = pair();
    let l = TcpListener::bind(&b, "0.0.0.0:6200").unwrap();
    let c = TcpStream::connect(&a, (B, 6200)).unwrap();
    let (s, _) = l.accept().unwrap();
    // Read timeout on a stream: EAGAIN after the time.
    s.set_read_timeout(Some(Duration::from_millis(60))).unwrap();
    let start = Instant::now();
    assert_eq!(
        (&s).read(&mut [0u8; 4]).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    assert!(start.elapsed() >= Duration::from_millis(60));
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let writer = std::thread::spawn(move || {
        for chunk in [&b"abc"[..], b"defg", b"hij"] {
            (&c).write_all(chunk).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        c
    });
    let mut buf = [0u8; 10];
    assert_eq!(b.recv(s.fd(), &mut buf, MSG_WAITALL).unwrap(), 10);
    assert_eq!(&buf, b"abcdefghij");
    let c = writer.join().unwrap();
    (&c).write_all(b"peek").unwrap();
    let mut buf = [0u8; 4];
    wait_for(&b, s.fd(), PollEvents::POLLIN);
    assert_eq!(s.peek(&mut buf).unwrap(), 4);
    assert_eq!(b.bytes_readable(s.fd()).unwrap(), 4);
    assert_eq!(b.recv(s.fd(), &mut buf, 0).unwrap(), 4);
    assert_eq!(&buf, b"peek");
    assert_eq!(b.recv(s.fd(), &mut buf, MSG_DONTWAIT), Err(Errno::EAGAIN));
}

#[test]
fn tcp_options_and_tcp_info() {
    let (a, b) = pair();
    let l = TcpListener::bind(&b, "0.0.0.0:6300").unwrap();
    let c = TcpStream::connect(&a, (B, 6300)).unwrap();
    let _s = l.accept().unwrap();
    let fd = c.fd();
    assert!(!c.nodelay().unwrap());
    c.set_nodelay(true).unwrap();
    assert!(c.nodelay().unwrap());
    for o in [
        SockOpt::KeepAlive(true),
        SockOpt::TcpKeepIdle(Duration::from_secs(30)),
        SockOpt::TcpKeepIntvl(Duration::from_secs(5)),
        SockOpt::TcpKeepCnt(3),
        SockOpt::Linger(Some(Duration::from_secs(2))),
        SockOpt::ReuseAddr(true),
        SockOpt::SndTimeo(Some(Duration::from_secs(1))),
    ] {
        a.setsockopt(fd, o.clone()).unwrap();
        assert_eq!(a.getsockopt(fd, o.name()).unwrap(), o);
    }
    assert_eq!(
        a.setsockopt(fd, SockOpt::TcpKeepIdle(Duration::ZERO)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        a.getsockopt(fd, SockOptName::Type).unwrap(),
        SockOpt::Type(SOCK_STREAM)
    );
    let SockOpt::TcpInfo(info) = a.getsockopt(fd, SockOptName::TcpInfo).unwrap() else {
        panic!("TCP_INFO")
    };
    assert_eq!(info.state, TcpState::Established);
    assert!(info.snd_mss > 0);
    // The congestion algorithm is fixed once connected; before, it can be chosen.
    let fresh = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(
        a.getsockopt(fresh, SockOptName::TcpCongestion).unwrap(),
        SockOpt::TcpCongestion("cubic".into())
    );
    a.setsockopt(fresh, SockOpt::TcpCongestion("reno".into()))
        .unwrap();
    a.setsockopt(fresh, SockOpt::TcpCongestion("bbr".into()))
        .unwrap();
    assert_eq!(
        a.getsockopt(fresh, SockOptName::TcpCongestion).unwrap(),
        SockOpt::TcpCongestion("bbr".into())
    );
    assert_eq!(
        a.setsockopt(fresh, SockOpt::TcpCongestion("vegas".into())),
        Err(Errno::ENOENT)
    );
    a.setsockopt(fresh, SockOpt::RcvBuf(65536)).unwrap();
    assert_eq!(
        a.getsockopt(fresh, SockOptName::RcvBuf).unwrap(),
        SockOpt::RcvBuf(65536)
    );
    assert_eq!(a.getpeername(fresh), Err(Errno::ENOTCONN));
    assert_eq!(a.getsockname(fresh).unwrap(), sa(Ipv4Addr::UNSPECIFIED, 0));
    assert_eq!(
        a.setsockopt(fd, SockOpt::TcpCongestion("reno".into())),
        Err(Errno::EINVAL)
    );
}

#[test]
fn eaddrinuse_and_so_reuseaddr_for_tcp() {
    let (a, b) = pair();
    let l = TcpListener::bind(&b, "0.0.0.0:8080").unwrap();
    assert_eq!(
        TcpListener::bind(&b, "0.0.0.0:8080").unwrap_err().kind(),
        ErrorKind::AddrInUse
    );
    let c = TcpStream::connect(&a, (B, 8080)).unwrap();
    let (s, _) = l.accept().unwrap();
    drop(l);
    // The accepted connection still holds port 8080.
    let fd = b.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(b.bind(fd, sa(B, 8080)), Err(Errno::EADDRINUSE));
    b.setsockopt(fd, SockOpt::ReuseAddr(true)).unwrap();
    b.bind(fd, sa(B, 8080)).unwrap();
    b.listen(fd, 16).unwrap();
    assert_eq!(b.bind(fd, sa(B, 8081)), Err(Errno::EINVAL));
    drop((c, s));
    b.close(fd).unwrap();
}

#[test]
fn dropping_a_stream_gives_the_peer_eof() {
    let (a, b) = pair();
    let l = TcpListener::bind(&b, "0.0.0.0:6400").unwrap();
    let c = TcpStream::connect(&a, (B, 6400)).unwrap();
    let (mut s, _) = l.accept().unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    (&c).write_all(b"bye").unwrap();
    drop(c);
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    assert_eq!(got, "bye");
}

#[test]
fn epoll_drives_a_tcp_echo_server() {
    let (a, b) = pair();
    let l = TcpListener::bind(&b, "0.0.0.0:6500").unwrap();
    l.set_nonblocking(true).unwrap();
    let ep = Epoll::new(&b);
    ep.ctl(
        EpollOp::Add,
        l.fd(),
        EpollEvent::new(PollEvents::EPOLLIN, u64::MAX),
    )
    .unwrap();
    const N: usize = 20;
    let a2 = a.clone();
    let clients = std::thread::spawn(move || {
        let cs: Vec<TcpStream> = (0..N)
            .map(|_| TcpStream::connect(&a2, (B, 6500)).unwrap())
            .collect();
        for (i, c) in cs.iter().enumerate() {
            c.set_read_timeout(Some(PATIENCE)).unwrap();
            let msg = format!("client {i}");
            let mut c = c;
            c.write_all(msg.as_bytes()).unwrap();
            let mut buf = vec![0u8; msg.len()];
            c.read_exact(&mut buf).unwrap();
            assert_eq!(buf, msg.as_bytes());
        }
    });
    let mut conns: std::collections::HashMap<u64, TcpStream> = Default::default();
    let mut served = 0;
    let mut events = [EpollEvent::default(); 16];
    let deadline = Instant::now() + PATIENCE;
    while served < N {
        assert!(Instant::now() < deadline);
        let n = ep.wait(&mut events, Some(PATIENCE)).unwrap();
        for e in &events[..n] {
            if e.data == u64::MAX {
                while let Ok((s, _)) = l.accept() {
                    s.set_nonblocking(true).unwrap();
                    let id = s.fd() as u64;
                    ep.ctl(
                        EpollOp::Add,
                        s.fd(),
                        EpollEvent::new(PollEvents::EPOLLIN, id),
                    )
                    .unwrap();
                    conns.insert(id, s);
                }
            } else if let Some(s) = conns.get(&e.data) {
                let mut buf = [0u8; 64];
                match (&*s).read(&mut buf) {
                    Ok(0) => {
                        conns.remove(&e.data);
                    }
                    Ok(k) => {
                        (&*s).write_all(&buf[..k]).unwrap();
                        served += 1;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
    clients.join().unwrap();
}

/// 100 threads × 100 connections each against one listening stack: every exchange
/// completes, nothing deadlocks. Short MSL and small buffers keep 10,000 TIME-WAIT
/// sockets cheap.
#[test]
fn hammer_100_threads_by_100_connections() {
    let _ = common::env_logger_init();
    let small = |c: &mut ustack::iface::Config| {
        c.tcp.msl = ustack::time::Duration::from_millis(200);
        c.tcp.rx_buffer_len = 4096;
        c.tcp.tx_buffer_len = 4096;
    };
    let (a, b) = NetStack::builder()
        .ip("10.0.0.1/24".parse().unwrap())
        .config(small)
        .build_pair(
            NetStack::builder()
                .ip("10.0.0.2/24".parse().unwrap())
                .config(small),
            8192,
        )
        .unwrap();
    let threads: usize = std::env::var("HAMMER_THREADS").map_or(100, |v| v.parse().unwrap());
    let conns: usize = std::env::var("HAMMER_CONNS").map_or(100, |v| v.parse().unwrap());
    let listener = Arc::new(TcpListener::bind(&b, "0.0.0.0:9000").unwrap());
    b.listen(listener.fd(), 1024).unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Acceptors wake every 50 ms (SO_RCVTIMEO) to see whether the clients are done.
    b.setsockopt(
        listener.fd(),
        SockOpt::RcvTimeo(Some(Duration::from_millis(50))),
    )
    .unwrap();
    let mut servers = Vec::new();
    for _ in 0..8 {
        let (l, served, done) = (listener.clone(), served.clone(), done.clone());
        servers.push(std::thread::spawn(move || loop {
            let (mut s, _) = match l.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if done.load(Ordering::Relaxed) {
                        return;
                    }
                    continue;
                }
                Err(e) => panic!("accept: {e}"),
            };
            s.set_read_timeout(Some(PATIENCE)).unwrap();
            let mut buf = [0u8; 8];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
            served.fetch_add(1, Ordering::Relaxed);
        }));
    }
    let ok = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..threads)
        .map(|t| {
            let (a, ok) = (a.clone(), ok.clone());
            std::thread::spawn(move || {
                for i in 0..conns {
                    let mut c = TcpStream::connect(&a, (B, 9000))
                        .unwrap_or_else(|e| panic!("thread {t} conn {i}: {e}"));
                    c.set_read_timeout(Some(PATIENCE)).unwrap();
                    let msg = ((t * conns + i) as u64).to_be_bytes();
                    c.write_all(&msg).unwrap();
                    let mut back = [0u8; 8];
                    c.read_exact(&mut back).unwrap();
                    assert_eq!(back, msg);
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(ok.load(Ordering::Relaxed), threads * conns);
    done.store(true, Ordering::Relaxed);
    for s in servers {
        s.join().unwrap();
    }
    assert_eq!(served.load(Ordering::Relaxed), threads * conns);
}

#[test]
fn send_timeout_returns_the_partial_count_then_eagain() {
    let small = |c: &mut ustack::iface::Config| {
        c.tcp.rx_buffer_len = 8192;
        c.tcp.tx_buffer_len = 8192;
    };
    let (a, b) = NetStack::builder()
        .ip("10.0.0.1/24".parse().unwrap())
        .config(small)
        .build_pair(
            NetStack::builder()
                .ip("10.0.0.2/24".parse().unwrap())
                .config(small),
            1024,
        )
        .unwrap();
    let l = TcpListener::bind(&b, "0.0.0.0:6600").unwrap();
    let c = TcpStream::connect(&a, (B, 6600)).unwrap();
    let (_s, _) = l.accept().unwrap(); // never reads
    let t = Duration::from_millis(100);
    c.set_write_timeout(Some(t)).unwrap();
    let big = vec![7u8; 1 << 20];
    let start = Instant::now();
    let n = (&c).write(&big).unwrap();
    assert!(start.elapsed() >= t);
    assert!(n > 0 && n < big.len(), "queued {n}");
    // ACKs may still free some room; fill until the peer's window and our buffer stay
    // full (no POLLOUT for 200 ms).
    loop {
        while a.send(c.fd(), &[1u8; 512], MSG_DONTWAIT).is_ok() {}
        assert_eq!(a.send(c.fd(), b"x", MSG_DONTWAIT), Err(Errno::EAGAIN));
        let mut p = [PollFd::new(c.fd(), PollEvents::POLLOUT)];
        if a.poll(&mut p, Some(Duration::from_millis(200))).unwrap() == 0 {
            break;
        }
    }
    // Full: a timed send gives up with EAGAIN and nothing queued.
    assert_eq!((&c).write(b"x").unwrap_err().kind(), ErrorKind::WouldBlock);
}

/// A link wrapper that drops every `n`th frame it sends.
struct Lossy {
    inner: Box<dyn ustack::link::Link + Send>,
    n: u64,
    count: u64,
}

impl ustack::link::Link for Lossy {
    fn recv(
        &mut self,
        now: ustack::time::Instant,
        buf: &mut [u8],
    ) -> std::io::Result<Option<usize>> {
        self.inner.recv(now, buf)
    }
    fn send(&mut self, now: ustack::time::Instant, frame: &[u8]) -> std::io::Result<()> {
        self.count += 1;
        if self.count % self.n == 0 {
            return Ok(());
        }
        self.inner.send(now, frame)
    }
}

#[test]
fn wrap_link_hook_and_tcp_recovers_from_loss() {
    let lossy = |n| {
        move |inner| -> Box<dyn ustack::link::Link + Send> {
            Box::new(Lossy { inner, n, count: 0 })
        }
    };
    let (a, b) = NetStack::builder()
        .ip("10.0.0.1/24".parse().unwrap())
        .wrap_link(lossy(7))
        .config(|c| c.tcp.min_rto = ustack::time::Duration::from_millis(20))
        .build_pair(
            NetStack::builder()
                .ip("10.0.0.2/24".parse().unwrap())
                .wrap_link(lossy(11))
                .config(|c| c.tcp.min_rto = ustack::time::Duration::from_millis(20)),
            1024,
        )
        .unwrap();
    let l = TcpListener::bind(&b, "0.0.0.0:6700").unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let d2 = data.clone();
    let a2 = a.clone();
    let t = std::thread::spawn(move || {
        let mut c = TcpStream::connect(&a2, (B, 6700)).unwrap();
        c.write_all(&d2).unwrap();
    });
    let (mut s, _) = l.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    t.join().unwrap();
    assert!(got == data, "{} of {} bytes", got.len(), data.len());
    let SockOpt::TcpInfo(_) = b.getsockopt(s.fd(), SockOptName::TcpInfo).unwrap() else {
        unreachable!()
    };
}

#[test]
fn pcap_option_records_frames() {
    let path = std::env::temp_dir().join(format!("ustack-socket-{}.pcap", std::process::id()));
    let (a, b) = NetStack::builder()
        .ip("10.0.0.1/24".parse().unwrap())
        .pcap(&path)
        .build_pair(NetStack::builder().ip("10.0.0.2/24".parse().unwrap()), 64)
        .unwrap();
    let l = TcpListener::bind(&b, "0.0.0.0:6800").unwrap();
    let c = TcpStream::connect(&a, (B, 6800)).unwrap();
    drop((l.accept().unwrap(), c, l));
    drop((a, b)); // joins the drivers, which flushes the file
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(&bytes[..4], &0xa1b2_c3d4u32.to_le_bytes());
    assert!(bytes.len() > 24 + 3 * (16 + 54), "{} bytes", bytes.len());
}

/// Drops every TCP frame it is asked to send (ARP and the rest go through).
struct NoTcpOut {
    inner: Box<dyn ustack::link::Link + Send>,
}

impl ustack::link::Link for NoTcpOut {
    fn recv(
        &mut self,
        now: ustack::time::Instant,
        buf: &mut [u8],
    ) -> std::io::Result<Option<usize>> {
        self.inner.recv(now, buf)
    }
    fn send(&mut self, now: ustack::time::Instant, frame: &[u8]) -> std::io::Result<()> {
        if frame.len() > 23 && frame[12..14] == [8, 0] && frame[23] == 6 {
            return Ok(());
        }
        self.inner.send(now, frame)
    }
}

#[test]
fn connect_times_out_when_syns_go_unanswered() {
    // Only timers change this socket's state: the engine's poll_ready names it, and
    // the blocked connect wakes with ETIMEDOUT.
    let (a, _b) = NetStack::builder()
        .ip("10.0.0.1/24".parse().unwrap())
        .wrap_link(|inner| Box::new(NoTcpOut { inner }))
        .config(|c| {
            c.tcp.syn_retries = 2;
            c.tcp.initial_rto = ustack::time::Duration::from_millis(30);
        })
        .build_pair(NetStack::builder().ip("10.0.0.2/24".parse().unwrap()), 64)
        .unwrap();
    let start = Instant::now();
    let err = TcpStream::connect(&a, (B, 80)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(start.elapsed() < PATIENCE);
    // The engine's events stay available to the application.
    let mut saw_state_change = false;
    while let Some(e) = a.with_interface(|i, _| i.tcp().poll_event()) {
        saw_state_change |= matches!(e, ustack::socket::tcp::TcpEvent::StateChanged { .. });
    }
    assert!(saw_state_change);
}

#[test]
fn so_linger_makes_close_wait_for_the_peer_to_acknowledge() {
    let (a, b) = NetStack::builder()
        .ip("10.0.0.1/24".parse().unwrap())
        .build_pair(
            NetStack::builder()
                .ip("10.0.0.2/24".parse().unwrap())
                .config(|c| c.tcp.rx_buffer_len = 8192),
            1024,
        )
        .unwrap();
    let l = TcpListener::bind(&b, "0.0.0.0:6900").unwrap();
    let mut c = TcpStream::connect(&a, (B, 6900)).unwrap();
    let (s, _) = l.accept().unwrap();
    let data = vec![9u8; 60_000];
    c.write_all(&data).unwrap();
    c.set_linger(Some(PATIENCE)).unwrap();
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        let mut got = Vec::new();
        (&s).read_to_end(&mut got).unwrap();
        got.len()
    });
    let start = Instant::now();
    drop(c); // close(2) with SO_LINGER: waits until the reader has taken everything
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(100),
        "close returned after {waited:?}"
    );
    assert!(waited < PATIENCE);
    assert_eq!(reader.join().unwrap(), data.len());

    // Nobody reads: close gives up after the linger time.
    let c = TcpStream::connect(&a, (B, 6900)).unwrap();
    let (_s, _) = l.accept().unwrap();
    (&c).write_all(&data).unwrap();
    let t = Duration::from_millis(80);
    c.set_linger(Some(t)).unwrap();
    let start = Instant::now();
    drop(c);
    assert!(start.elapsed() >= t);
}

#[test]
fn accepted_sockets_inherit_options_but_not_o_nonblock() {
    let (a, b) = pair();
    let fd = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.setsockopt(fd, SockOpt::TcpNoDelay(true)).unwrap();
    b.setsockopt(fd, SockOpt::KeepAlive(true)).unwrap();
    b.bind(fd, sa(B, 7000)).unwrap();
    b.listen(fd, 4).unwrap();
    assert_eq!(b.getsockname(fd).unwrap(), sa(B, 7000));
    let _c = TcpStream::connect(&a, (B, 7000)).unwrap();
    wait_for(&b, fd, PollEvents::POLLIN);
    let (child, peer) = b.accept(fd).unwrap();
    assert_eq!(b.getpeername(child).unwrap(), peer);
    assert!(!b.is_nonblocking(child).unwrap());
    assert_eq!(
        b.getsockopt(child, SockOptName::TcpNoDelay).unwrap(),
        SockOpt::TcpNoDelay(true)
    );
    assert_eq!(
        b.getsockopt(child, SockOptName::KeepAlive).unwrap(),
        SockOpt::KeepAlive(true)
    );
    assert_eq!(b.accept(fd).unwrap_err(), Errno::EAGAIN);
}

#[test]
fn msg_more_and_tcp_cork_hold_partial_segments() {
    let (a, b) = pair();
    let l = TcpListener::bind(&b, "0.0.0.0:7100").unwrap();
    let mut c = TcpStream::connect(&a, (B, 7100)).unwrap();
    let (s, _) = l.accept().unwrap();
    s.set_nodelay(true).unwrap();
    let short = Duration::from_millis(50);
    let nothing_within = |c: &mut TcpStream| {
        c.set_read_timeout(Some(short)).unwrap();
        let mut buf = [0u8; 16];
        let e = c.read(&mut buf).expect_err("data arrived while held");
        assert!(
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{e}"
        );
        c.set_read_timeout(Some(PATIENCE)).unwrap();
    };
    let read_n = |c: &mut TcpStream, n: usize| {
        let mut buf = vec![0u8; n];
        c.read_exact(&mut buf).unwrap();
        buf
    };

    // MSG_MORE holds the write until a send without it.
    assert_eq!(b.send(s.fd(), b"hel", MSG_MORE).unwrap(), 3);
    nothing_within(&mut c);
    assert_eq!(b.send(s.fd(), b"lo", 0).unwrap(), 2);
    assert_eq!(read_n(&mut c, 5), b"hello");

    // TCP_CORK holds until uncorked.
    b.setsockopt(s.fd(), SockOpt::TcpCork(true)).unwrap();
    assert_eq!(
        b.getsockopt(s.fd(), SockOptName::TcpCork).unwrap(),
        SockOpt::TcpCork(true)
    );
    (&s).write_all(b"abc").unwrap();
    nothing_within(&mut c);
    b.setsockopt(s.fd(), SockOpt::TcpCork(false)).unwrap();
    assert_eq!(read_n(&mut c, 3), b"abc");

    // Still corked after 150 ms, sent by the 200 ms ceiling.
    b.setsockopt(s.fd(), SockOpt::TcpCork(true)).unwrap();
    let t0 = Instant::now();
    (&s).write_all(b"x").unwrap();
    assert_eq!(read_n(&mut c, 1), b"x");
    assert!(
        t0.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t0.elapsed()
    );
    b.setsockopt(s.fd(), SockOpt::TcpCork(false)).unwrap();

    // A MSG_MORE tail goes with the FIN.
    assert_eq!(b.send(s.fd(), b"bye", MSG_MORE).unwrap(), 3);
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"bye");
}
