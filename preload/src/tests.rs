//! The calls over an in-memory stack (no TAP, no privileges): descriptor bookkeeping
//! (dup, dup2, close, fd reuse, O_NONBLOCK per description, FD_CLOEXEC per number),
//! poll over a ustack socket and a pipe, and epoll LT/ET/ONESHOT. The process's stack
//! is set directly instead of attached from the environment. One test function uses
//! the library's state (it is per process); the others (the EPOLLET check, the exit
//! handler's wait) build what they need by hand; all run one at a time.

use crate::ops;
use crate::table::{process, Slot};
use libc::{c_int, c_void, sockaddr, socklen_t};
use ustack_socket::NetStack;

fn sin(ip: [u8; 4], port: u16) -> libc::sockaddr_in {
    // SAFETY: plain data; all-zero is valid.
    let mut a: libc::sockaddr_in = unsafe { core::mem::zeroed() };
    a.sin_family = libc::AF_INET as libc::sa_family_t;
    a.sin_port = port.to_be();
    a.sin_addr.s_addr = u32::from_be_bytes(ip).to_be();
    a
}

fn sa(a: &libc::sockaddr_in) -> (*const sockaddr, socklen_t) {
    (
        (a as *const libc::sockaddr_in).cast(),
        core::mem::size_of::<libc::sockaddr_in>() as socklen_t,
    )
}

fn errno() -> c_int {
    crate::errno()
}

/// Held by every test here: they open kernel descriptors, and the first one checks
/// which number the kernel hands out next.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn descriptors_poll_and_epoll_over_a_memory_stack() {
    let _serial = serial();
    let (a, b) = NetStack::builder()
        .ip("10.0.0.1/24".parse().unwrap())
        .build_pair(NetStack::builder().ip("10.0.0.2/24".parse().unwrap()), 256)
        .unwrap();
    *process().stack.lock().unwrap() = Some(Ok(a));
    // SAFETY: every call below is given live buffers of the sizes passed.
    unsafe {
        // A UDP socket on our stack, bound to port 7.
        let u = ops::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        assert!(u >= 0, "socket: errno {}", errno());
        assert!(matches!(process().get(u), Slot::Sock(_)));
        let any = sin([0, 0, 0, 0], 7);
        let (p, l) = sa(&any);
        assert_eq!(ops::bind(u, p, l), 0);

        // dup shares the description: O_NONBLOCK set through one shows on the other;
        // FD_CLOEXEC is per number.
        let d = ops::dup(u);
        assert!(d >= 0 && d != u);
        assert_eq!(ops::fcntl(d, libc::F_SETFL, libc::O_NONBLOCK as _), 0);
        assert_ne!(ops::fcntl(u, libc::F_GETFL, 0) & libc::O_NONBLOCK, 0);
        assert_eq!(ops::fcntl(d, libc::F_SETFD, libc::FD_CLOEXEC as _), 0);
        assert_eq!(ops::fcntl(u, libc::F_GETFD, 0), 0);
        let mut buf = [0u8; 16];
        assert_eq!(ops::recv(u, buf.as_mut_ptr().cast(), 16, 0), -1);
        assert_eq!(errno(), libc::EAGAIN, "non-blocking through the dup");
        // FIONBIO turns it back off for both.
        let mut off: c_int = 0;
        assert_eq!(
            ops::ioctl(u, libc::FIONBIO, (&mut off as *mut c_int).cast()),
            0
        );
        assert_eq!(ops::fcntl(d, libc::F_GETFL, 0) & libc::O_NONBLOCK, 0);

        // Closing the original keeps the socket alive through the dup.
        assert_eq!(ops::close(u), 0);
        assert!(matches!(process().get(u), Slot::Kernel));
        let peer = b.socket(libc::AF_INET, libc::SOCK_DGRAM, 0).unwrap();
        b.sendto(peer, b"one", 0, "10.0.0.1:7".parse().unwrap())
            .unwrap();
        let n = ops::recv(d, buf.as_mut_ptr().cast(), 16, 0);
        assert_eq!(&buf[..n as usize], b"one", "blocking recv through the dup");

        // dup2 onto a pipe's number replaces the pipe there.
        let mut pipe = [0 as c_int; 2];
        assert_eq!(libc::pipe(pipe.as_mut_ptr()), 0);
        assert_eq!(ops::dup2(d, pipe[0]), pipe[0]);
        assert!(matches!(process().get(pipe[0]), Slot::Sock(_)));
        assert_eq!(ops::close(pipe[0]), 0);
        assert_eq!(libc::pipe(pipe.as_mut_ptr()), 0);

        // poll: nothing ready; then the socket, then the pipe.
        let mut fds = [
            libc::pollfd {
                fd: d,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pipe[0],
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        assert_eq!(ops::poll(fds.as_mut_ptr(), 2, 50), 0);
        b.sendto(peer, b"two", 0, "10.0.0.1:7".parse().unwrap())
            .unwrap();
        assert_eq!(ops::poll(fds.as_mut_ptr(), 2, 5000), 1);
        assert_eq!((fds[0].revents, fds[1].revents), (libc::POLLIN, 0));
        ops::recv(d, buf.as_mut_ptr().cast(), 16, 0);
        assert_eq!(libc::write(pipe[1], b"p".as_ptr().cast::<c_void>(), 1), 1);
        assert_eq!(ops::poll(fds.as_mut_ptr(), 2, 5000), 1);
        assert_eq!((fds[0].revents, fds[1].revents), (0, libc::POLLIN));
        libc::read(pipe[0], buf.as_mut_ptr().cast(), 16);

        // epoll, edge-triggered on the socket, level-triggered on the pipe.
        let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: 1,
        };
        assert_eq!(ops::epoll_ctl(ep, libc::EPOLL_CTL_ADD, d, &mut ev), 0);
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 2,
        };
        assert_eq!(ops::epoll_ctl(ep, libc::EPOLL_CTL_ADD, pipe[0], &mut ev), 0);
        let mut out = [libc::epoll_event { events: 0, u64: 0 }; 4];
        assert_eq!(ops::epoll_wait(ep, out.as_mut_ptr(), 4, 50), 0);
        b.sendto(peer, b"three", 0, "10.0.0.1:7".parse().unwrap())
            .unwrap();
        assert_eq!(ops::epoll_wait(ep, out.as_mut_ptr(), 4, 5000), 1);
        assert_eq!({ out[0].u64 }, 1);
        assert_eq!(
            ops::epoll_wait(ep, out.as_mut_ptr(), 4, 100),
            0,
            "ET: no new edge"
        );
        libc::write(pipe[1], b"p".as_ptr().cast::<c_void>(), 1);
        for _ in 0..2 {
            assert_eq!(ops::epoll_wait(ep, out.as_mut_ptr(), 4, 5000), 1);
            assert_eq!({ out[0].u64 }, 2, "LT pipe reported again");
        }
        // A closed number leaves the instance.
        assert_eq!(ops::close(d), 0);
        libc::read(pipe[0], buf.as_mut_ptr().cast(), 16);
        assert_eq!(ops::epoll_wait(ep, out.as_mut_ptr(), 4, 50), 0);
        assert_eq!(
            ops::epoll_ctl(ep, libc::EPOLL_CTL_DEL, d, core::ptr::null_mut()),
            -1
        );

        // The number goes back to the kernel: the next descriptor made reuses it.
        let reused = libc::dup(pipe[1]);
        assert_eq!(reused, d);
        assert!(matches!(process().get(reused), Slot::Kernel));
        for fd in [reused, pipe[0], pipe[1], ep] {
            libc::close(fd);
        }

        // Native AF_INET6: a dual-stack UDP socket on `[::]:8` hears the IPv4 peer and
        // reports it v4-mapped in a sockaddr_in6; IPPROTO_IPV6 options follow Linux.
        let u6 = ops::socket(libc::AF_INET6, libc::SOCK_DGRAM, 0);
        assert!(u6 >= 0, "socket(AF_INET6): errno {}", errno());
        let v6only = |fd: c_int, on: c_int| {
            ops::setsockopt(
                fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                (&on as *const c_int).cast(),
                4,
            )
        };
        let mut any6: libc::sockaddr_in6 = core::mem::zeroed();
        any6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        any6.sin6_port = 8u16.to_be();
        let (p6, l6) = (
            (&any6 as *const libc::sockaddr_in6).cast::<sockaddr>(),
            core::mem::size_of::<libc::sockaddr_in6>() as socklen_t,
        );
        // A sockaddr_in given to an AF_INET6 bind: EINVAL, as Linux.
        let (p4, l4) = sa(&any);
        assert_eq!(ops::bind(u6, p4, l4), -1);
        assert_eq!(errno(), libc::EINVAL);
        assert_eq!(ops::bind(u6, p6, l6), 0);
        assert_eq!(v6only(u6, 1), -1, "IPV6_V6ONLY after bind");
        assert_eq!(errno(), libc::EINVAL);
        b.sendto(peer, b"six", 0, "10.0.0.1:8".parse().unwrap())
            .unwrap();
        let mut from: libc::sockaddr_storage = core::mem::zeroed();
        let mut flen = core::mem::size_of::<libc::sockaddr_storage>() as socklen_t;
        let n = ops::recvfrom(
            u6,
            buf.as_mut_ptr().cast(),
            16,
            0,
            (&mut from as *mut libc::sockaddr_storage).cast(),
            &mut flen,
        );
        assert_eq!(&buf[..n as usize], b"six");
        assert_eq!(flen as usize, core::mem::size_of::<libc::sockaddr_in6>());
        let from6: libc::sockaddr_in6 =
            core::ptr::read_unaligned((&from as *const libc::sockaddr_storage).cast());
        assert_eq!(from6.sin6_family, libc::AF_INET6 as libc::sa_family_t);
        assert_eq!(
            std::net::Ipv6Addr::from(from6.sin6_addr.s6_addr),
            "::ffff:10.0.0.2".parse::<std::net::Ipv6Addr>().unwrap()
        );
        let mut name: libc::sockaddr_storage = core::mem::zeroed();
        let mut nlen = core::mem::size_of::<libc::sockaddr_storage>() as socklen_t;
        assert_eq!(
            ops::getsockname(
                u6,
                (&mut name as *mut libc::sockaddr_storage).cast(),
                &mut nlen
            ),
            0
        );
        assert_eq!(nlen as usize, core::mem::size_of::<libc::sockaddr_in6>());
        // IPV6_V6ONLY before bind on a fresh socket, read back; ENOPROTOOPT on AF_INET.
        let t6 = ops::socket(libc::AF_INET6, libc::SOCK_STREAM, 0);
        assert_eq!(v6only(t6, 1), 0);
        let mut got: c_int = 0;
        let mut glen = 4 as socklen_t;
        assert_eq!(
            ops::getsockopt(
                t6,
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                (&mut got as *mut c_int).cast(),
                &mut glen
            ),
            0
        );
        assert_eq!(got, 1);
        let t4 = ops::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert_eq!(v6only(t4, 1), -1);
        assert_eq!(errno(), libc::ENOPROTOOPT);
        for fd in [u6, t6, t4] {
            ops::close(fd);
        }
    }
}

/// EPOLLET on one socket of a real in-memory stack, without the process's table: a
/// datagram that lands while a scan checks the
/// socket is one edge and is reported once; drained and then new data is a new edge.
#[test]
fn an_edge_that_lands_during_the_readiness_check_is_reported_once() {
    let _serial = serial();
    use crate::ops::{poll_watch, ready_notifier, refresh_level};
    use crate::table::{Edges, Level, UFile, Watch};
    use crate::wake::Wakers;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    use ustack_socket::{PollEvents, PollFd};

    let (a, b) = NetStack::builder()
        .ip("10.0.0.1/24".parse().unwrap())
        .build_pair(NetStack::builder().ip("10.0.0.2/24".parse().unwrap()), 256)
        .unwrap();
    let s = a
        .socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0)
        .unwrap();
    a.bind(s, "0.0.0.0:9".parse().unwrap()).unwrap();
    let edges = Arc::new(Edges::default());
    // No eventfd to mirror readability on: not what this test looks at.
    let level = Arc::new(Level::new(-1));
    let f = Arc::new(UFile {
        stack: a.clone(),
        sfd: s,
        v6: false,
        ty: libc::SOCK_DGRAM,
        proto: 0,
        nonblocking: AtomicBool::new(true),
        listening: AtomicBool::new(false),
        edges: edges.clone(),
        timeouts: Mutex::new((None, None)),
        used: AtomicBool::new(true),
        options: Mutex::new(Vec::new()),
        level: level.clone(),
    });
    a.set_ready_notifier(
        s,
        Some(ready_notifier(level, edges, Arc::new(Wakers::default()))),
    )
    .unwrap();
    let mut w = Watch {
        file: f.clone(),
        events: (libc::EPOLLIN | libc::EPOLLET) as u32,
        data: 1,
        disarmed: false,
        seen: u64::MAX,
    };
    let check = |f: &UFile, asked: PollEvents| {
        let mut p = [PollFd::new(f.sfd, asked)];
        f.stack.poll(&mut p, Some(Duration::ZERO)).unwrap();
        p[0].revents
    };
    let input = |f: &UFile| f.edges.count(libc::EPOLLIN as u32);
    let peer = b.socket(libc::AF_INET, libc::SOCK_DGRAM, 0).unwrap();
    // Sends a datagram and waits until the notifier counted its edge, then checks.
    let arrives_then_check = |f: &UFile, asked: PollEvents| {
        let before = input(f);
        b.sendto(peer, b"x", 0, "10.0.0.1:9".parse().unwrap())
            .unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        while input(f) == before {
            assert!(Instant::now() < end, "the datagram never arrived");
            std::thread::sleep(Duration::from_millis(1));
        }
        check(f, asked)
    };

    assert_eq!(poll_watch(&mut w, check), None, "nothing to read yet");
    // The datagram lands during the check (as when the check waits for the stack lock
    // while the driver delivers it, or runs the round that takes it in).
    assert_eq!(
        poll_watch(&mut w, arrives_then_check),
        Some(PollEvents::POLLIN)
    );
    assert_eq!(
        poll_watch(&mut w, check),
        None,
        "one datagram, one edge: reported a second time with nothing new"
    );
    // Drained (recv until EAGAIN marks IN consumed), then new data: a new edge, once.
    let mut buf = [0u8; 8];
    assert_eq!(a.recv(s, &mut buf, 0).unwrap(), 1);
    assert!(a.recv(s, &mut buf, 0).is_err());
    refresh_level(&f, PollEvents::POLLIN);
    assert_eq!(poll_watch(&mut w, check), None, "drained");
    assert_eq!(
        poll_watch(&mut w, arrives_then_check),
        Some(PollEvents::POLLIN),
        "new data after draining is an edge"
    );
    assert_eq!(poll_watch(&mut w, check), None);
}

/// The exit handler's wait: a program that sends a megabyte, closes and exits at once
/// (the stack stops right after `close`) still gets all of it, and its FIN, to the
/// peer. Without the wait, stopping sends once and the tail never leaves.
#[test]
fn closed_connections_finish_sending_before_the_stack_stops() {
    let _serial = serial();
    use std::io::Read;
    use std::time::Duration;
    use ustack_socket::TcpListener;

    let (a, b) = NetStack::builder()
        .ip("10.0.0.1/24".parse().unwrap())
        .build_pair(NetStack::builder().ip("10.0.0.2/24".parse().unwrap()), 256)
        .unwrap();
    let listener = TcpListener::bind(&b, "0.0.0.0:80").unwrap();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        // An error (the read timeout) instead of end of file also ends it.
        let _ = s.read_to_end(&mut got);
        got
    });
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let c = a.socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
    // Room for all of it: `send` queues the megabyte at once, and at `close` nearly
    // all of it is still to go (a new connection's window is ten segments).
    a.setsockopt(c, ustack_socket::SockOpt::SndBuf(2 * data.len()))
        .unwrap();
    a.connect(c, "10.0.0.2:80".parse().unwrap()).unwrap();
    assert_eq!(a.send(c, &data, 0).unwrap(), data.len());
    a.close(c).unwrap();
    assert!(
        crate::ops::drain_closed(&a, Duration::from_secs(10)),
        "the connection did not finish"
    );
    drop(a);
    let got = reader.join().unwrap();
    assert_eq!(
        got.len(),
        data.len(),
        "bytes the peer got before end of file"
    );
    assert!(got == data);
}

/// `ustack run --stats`: the report the library prints at exit has the host loop's
/// line (after the TCP layer's, before the sockets) and `host_loop` in the JSON, with
/// this stack's counters, as every other command's `--stats`; a memory link has no
/// receive ring, so no `packet ring:` line and a null `packet_ring`.
#[test]
fn the_exit_report_has_the_host_loops_counters() {
    let _serial = serial();
    let (a, _b) = NetStack::builder()
        .ip("10.0.0.1/24".parse().unwrap())
        .build_pair(NetStack::builder().ip("10.0.0.2/24".parse().unwrap()), 256)
        .unwrap();
    // Three rounds run by this thread, so the report's figures are this stack's.
    for _ in 0..3 {
        a.with_interface(|_, _| ());
    }
    let text = crate::observe::report(&a, false);
    let at = |s: &str| {
        text.find(s)
            .unwrap_or_else(|| panic!("no {s:?} in\n{text}"))
    };
    assert!(
        at("tcp layer: ") < at("\nhost loop: ") && at("\nhost loop: ") < at("\ntcp sockets: "),
        "{text}"
    );
    assert!(text.contains(" driver rounds, "), "{text}");
    assert!(!text.contains("packet ring"), "{text}");

    let json = crate::observe::report(&a, true);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let h = &v["host_loop"];
    assert!(h["caller_rounds"].as_u64().unwrap() >= 3, "{h}");
    assert_eq!(h.as_object().unwrap().len(), 12, "{h}");
    assert!(v["packet_ring"].is_null(), "{v}");
}
