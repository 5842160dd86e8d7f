//! Who moves the frames (the driver module's host loop): a call transmits what it
//! queued on its own thread, a blocked caller leads the link and receives on its own
//! thread, several blocked callers hand over, timeouts hold while leading, and the
//! driver still serves frames nobody calls for.

mod common;

use common::{pair, sa, A, B, PATIENCE};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ustack::link::Link;
use ustack_socket::{
    DriverStats, Epoll, EpollEvent, EpollOp, Errno, NetStack, PollEvents, SockOpt, TcpListener,
    TcpStream, UdpSocket, CALLER_GRACE,
};

/// Frames a link moved, split by whether the driver thread or another moved them.
#[derive(Default)]
struct ByThread {
    driver_tx: AtomicU64,
    app_tx: AtomicU64,
    driver_rx: AtomicU64,
    app_rx: AtomicU64,
}

impl ByThread {
    fn get(&self) -> [u64; 4] {
        [
            self.driver_tx.load(Ordering::SeqCst),
            self.app_tx.load(Ordering::SeqCst),
            self.driver_rx.load(Ordering::SeqCst),
            self.app_rx.load(Ordering::SeqCst),
        ]
    }
}

fn on_driver() -> bool {
    std::thread::current()
        .name()
        .is_some_and(|n| n.starts_with("ustack-driver"))
}

/// Wraps a link and counts, per direction, the frames moved by the driver thread and
/// by application threads.
struct Watch {
    inner: Box<dyn Link + Send>,
    by: Arc<ByThread>,
}

impl Link for Watch {
    fn recv(
        &mut self,
        now: ustack::time::Instant,
        buf: &mut [u8],
    ) -> std::io::Result<Option<usize>> {
        let r = self.inner.recv(now, buf)?;
        if r.is_some() {
            let c = if on_driver() {
                &self.by.driver_rx
            } else {
                &self.by.app_rx
            };
            c.fetch_add(1, Ordering::SeqCst);
        }
        Ok(r)
    }
    fn send(&mut self, now: ustack::time::Instant, frame: &[u8]) -> std::io::Result<()> {
        let c = if on_driver() {
            &self.by.driver_tx
        } else {
            &self.by.app_tx
        };
        c.fetch_add(1, Ordering::SeqCst);
        self.inner.send(now, frame)
    }
}

/// Stacks A and B in memory, B's link watched.
fn watched_pair() -> (NetStack, NetStack, Arc<ByThread>) {
    let by = Arc::new(ByThread::default());
    let b_by = by.clone();
    let (a, b) = NetStack::builder()
        .ip("10.0.0.1/24".parse().unwrap())
        .build_pair(
            NetStack::builder()
                .ip("10.0.0.2/24".parse().unwrap())
                .wrap_link(move |inner| Box::new(Watch { inner, by: b_by })),
            4096,
        )
        .unwrap();
    (a, b, by)
}

fn delta(after: DriverStats, before: DriverStats) -> DriverStats {
    DriverStats {
        rounds: after.rounds - before.rounds,
        caller_rounds: after.caller_rounds - before.caller_rounds,
        caller_flushes: after.caller_flushes - before.caller_flushes,
        leads: after.leads - before.leads,
        follows: after.follows - before.follows,
        driver_wakeups: after.driver_wakeups - before.driver_wakeups,
        leader_wakeups: after.leader_wakeups - before.leader_wakeups,
        ready_sockets: after.ready_sockets - before.ready_sockets,
        ready_checks: after.ready_checks - before.ready_checks,
        busy_polls: after.busy_polls - before.busy_polls,
        busy_passes: after.busy_passes - before.busy_passes,
        busy_preempted: after.busy_preempted - before.busy_preempted,
    }
}

/// Request/response: the server's sends go out from its own thread, and its blocked
/// reads lead the link and take the requests in themselves; the driver thread neither
/// moves those frames nor is woken for each of them (before, every send wrote the
/// driver's eventfd and the driver moved every frame).
#[test]
fn a_request_response_server_moves_its_own_frames() {
    const N: usize = 300;
    let (a, b, by) = watched_pair();
    let l = TcpListener::bind(&b, "0.0.0.0:80").unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut one = [0u8; 1];
        for _ in 0..N {
            s.read_exact(&mut one).unwrap();
            s.write_all(&[one[0], !one[0]]).unwrap();
        }
        s
    });
    let mut c = TcpStream::connect(&a, (B, 80)).unwrap();
    c.set_nodelay(true).unwrap();
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    // Warm up once, so that the counting starts in the steady state.
    let mut two = [0u8; 2];
    c.write_all(&[7]).unwrap();
    c.read_exact(&mut two).unwrap();
    let (before, frames0) = (b.driver_stats(), by.get());
    for i in 1..N {
        c.write_all(&[i as u8]).unwrap();
        c.read_exact(&mut two).unwrap();
        assert_eq!(two, [i as u8, !(i as u8)]);
    }
    let (d, frames) = (delta(b.driver_stats(), before), by.get());
    let _s = server.join().unwrap();
    let [driver_tx, app_tx, driver_rx, app_rx] = [0, 1, 2, 3].map(|i| frames[i] - frames0[i]);
    let n = (N - 1) as u64;
    // Every reply left from the server thread; every request came in on it. A loaded
    // machine may leave the server unscheduled past the grace period now and then, so
    // the driver may take a few.
    assert!(
        app_tx >= n,
        "replies sent by the application thread: {app_tx} of {n} ({driver_tx} by the driver)"
    );
    assert!(
        app_rx * 10 >= n * 9,
        "requests taken in by the application thread: {app_rx} ({driver_rx} by the driver)"
    );
    assert!(d.leads * 10 >= n * 9, "blocked reads led the link: {d:?}");
    assert!(d.rounds * 10 <= n, "the driver ran few rounds: {d:?}");
    assert!(
        d.driver_wakeups * 10 <= n,
        "the driver was seldom woken: {d:?}"
    );
}

/// A sender whose peer's window keeps filling: its blocked send leads the link, takes
/// the acknowledgements in and transmits the rest itself.
#[test]
fn a_bulk_sender_transmits_and_takes_acks_in_on_its_own_thread() {
    let (a, b, by) = watched_pair();
    let l = TcpListener::bind(&b, "0.0.0.0:81").unwrap();
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let expect = data.clone();
    let reader = std::thread::spawn(move || {
        let mut c = TcpStream::connect(&a, (B, 81)).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        got
    });
    let (mut s, _) = l.accept().unwrap();
    let before = b.driver_stats();
    s.write_all(&data).unwrap();
    drop(s);
    assert!(reader.join().unwrap() == expect);
    let d = delta(b.driver_stats(), before);
    let [driver_tx, app_tx, _, _] = by.get();
    assert!(
        app_tx > 1000 && driver_tx * 10 < app_tx,
        "data left from the writer's thread: {app_tx} (driver {driver_tx})"
    );
    assert!(d.caller_flushes > 0 && d.leads > 0, "{d:?}");
}

/// One thread blocked in recv leads; another, blocked in accept, follows. The leader's
/// rounds complete the handshake the follower waits for, the leader hands over when
/// its data arrives, and both return.
#[test]
fn a_leader_and_a_follower_both_complete() {
    let (a, b) = pair();
    let l = TcpListener::bind(&b, "0.0.0.0:82").unwrap();
    let mut c1 = TcpStream::connect(&a, (B, 82)).unwrap();
    let (s1, _) = l.accept().unwrap();
    s1.set_read_timeout(Some(PATIENCE)).unwrap();
    let before = b.driver_stats();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4];
        let mut s1 = s1;
        s1.read_exact(&mut buf).unwrap();
        buf
    });
    let accepter = std::thread::spawn(move || l.accept().map(|(_, peer)| peer));
    // Both threads are blocked before anything arrives.
    std::thread::sleep(Duration::from_millis(50));
    let c2 = TcpStream::connect(&a, (B, 82)).unwrap();
    c1.write_all(b"data").unwrap();
    assert_eq!(&reader.join().unwrap(), b"data");
    let peer = accepter.join().unwrap().unwrap();
    assert_eq!(peer, c2.local_addr().unwrap());
    let d = delta(b.driver_stats(), before);
    assert!(
        d.leads >= 1 && d.follows >= 1,
        "one led, one followed: {d:?}"
    );
}

/// SO_RCVTIMEO holds while the caller leads: poll(2) on the link is bounded by it.
#[test]
fn a_leading_reader_times_out() {
    let (a, b) = pair();
    let l = TcpListener::bind(&b, "0.0.0.0:83").unwrap();
    let _c = TcpStream::connect(&a, (B, 83)).unwrap();
    let (s, _) = l.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_millis(60))).unwrap();
    let before = b.driver_stats();
    let t0 = Instant::now();
    let r = b.recv(s.fd(), &mut [0u8; 8], 0);
    let took = t0.elapsed();
    assert_eq!(r, Err(Errno::EAGAIN));
    assert!(took >= Duration::from_millis(60), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let d = delta(b.driver_stats(), before);
    assert!(d.leads >= 1, "the reader led while it waited: {d:?}");
    // A timeout on connect's wait too (SO_SNDTIMEO, EINPROGRESS), leading the link of
    // a stack whose peer never answers.
    let lonely = NetStack::builder()
        .ip("10.0.0.1/24".parse().unwrap())
        .build_pair(NetStack::builder().ip("10.0.0.9/24".parse().unwrap()), 16)
        .unwrap()
        .0;
    let fd = lonely
        .socket(ustack_socket::AF_INET, ustack_socket::SOCK_STREAM, 0)
        .unwrap();
    lonely
        .setsockopt(fd, SockOpt::SndTimeo(Some(Duration::from_millis(40))))
        .unwrap();
    let t0 = Instant::now();
    assert_eq!(lonely.connect(fd, sa(B, 9)), Err(Errno::EINPROGRESS));
    assert!(t0.elapsed() >= Duration::from_millis(40));
}

/// With no application thread calling, frames still come in: after a call parks the
/// driver, a datagram for an epoll set nobody waits on, and a TCP exchange with an
/// in-driver hook, are served by the driver within the grace period, without any
/// caller round.
#[test]
fn the_driver_serves_frames_nobody_calls_for() {
    let (a, b) = pair();
    let server = Arc::new(std::sync::Mutex::new(
        None::<ustack_socket::echo::EchoServer>,
    ));
    let hook_server = server.clone();
    b.add_hook(move |iface, _| {
        *hook_server.lock().unwrap() =
            Some(ustack_socket::echo::EchoServer::new(iface, 7, 16).unwrap());
        Box::new(move |round| {
            if let Some(s) = hook_server.lock().unwrap().as_mut() {
                s.poll(round);
            }
        })
    });
    let u = UdpSocket::bind(&b, "0.0.0.0:5000").unwrap();
    let ep = Epoll::new(&b);
    ep.ctl(EpollOp::Add, u.fd(), EpollEvent::new(PollEvents::POLLIN, 1))
        .unwrap();
    // A call on B: the driver parks for the grace period.
    u.send_to(b"park", (A, 9)).unwrap();
    let callers = b.driver_stats().caller_rounds;
    let peer = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    peer.send_to(b"hello", (B, 5000)).unwrap();
    let mut c = TcpStream::connect(&a, (B, 7)).unwrap();
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    c.write_all(b"echo me").unwrap();
    let mut back = [0u8; 7];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"echo me");
    let deadline = Instant::now() + PATIENCE;
    while b.counters().udp_rx_datagrams == 0 {
        assert!(Instant::now() < deadline, "the datagram was never taken in");
        std::thread::sleep(CALLER_GRACE);
    }
    assert_eq!(
        b.driver_stats().caller_rounds,
        callers,
        "nobody on B called: the driver took the frames in"
    );
    let mut ev = [EpollEvent::default(); 2];
    assert_eq!(ep.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 1);
}

/// A non-blocking read sees a datagram that arrived while nobody attended the link
/// (the driver parked by recent calls): it runs a round before saying EAGAIN.
#[test]
fn a_nonblocking_read_looks_at_an_unattended_link() {
    let (a, b) = pair();
    let u = UdpSocket::bind(&b, "0.0.0.0:5001").unwrap();
    u.set_nonblocking(true).unwrap();
    let peer = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    let mut buf = [0u8; 8];
    // Resolve ARP both ways first.
    peer.send_to(b"x", (B, 5001)).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        match u.recv_from(&mut buf) {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline);
                std::thread::yield_now();
            }
            Err(e) => panic!("{e}"),
        }
    }
    // Busy non-blocking reads keep the driver parked; each sees what arrived.
    for i in 0..50u8 {
        peer.send_to(&[i], (B, 5001)).unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            match u.recv_from(&mut buf) {
                Ok((1, _)) => {
                    assert_eq!(buf[0], i);
                    break;
                }
                Ok(r) => panic!("{r:?}"),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline);
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
}

/// A thread that stays blocked (an acceptor that gets nothing) while another serves
/// requests: leaders leave without waking the driver, so the driver is woken at most
/// about once per grace period (a takeover after it went back on the link for the
/// follower), not once or twice per request as a handoff per I/O would.
#[test]
fn a_blocked_follower_does_not_cost_a_wakeup_per_request() {
    const N: usize = 300;
    let (a, b) = pair();
    let idle = TcpListener::bind(&b, "0.0.0.0:90").unwrap();
    let l = TcpListener::bind(&b, "0.0.0.0:91").unwrap();
    let idle_fd = idle.fd();
    b.setsockopt(idle_fd, SockOpt::RcvTimeo(Some(PATIENCE)))
        .unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut one = [0u8; 1];
        for _ in 0..N {
            s.read_exact(&mut one).unwrap();
            s.write_all(&[one[0]]).unwrap();
        }
    });
    let mut c = TcpStream::connect(&a, (B, 91)).unwrap();
    c.set_nodelay(true).unwrap();
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut one = [0u8; 1];
    c.write_all(&[0]).unwrap();
    c.read_exact(&mut one).unwrap();
    // The server thread now leads, blocked in its read; the acceptor blocks behind it
    // and follows.
    std::thread::sleep(Duration::from_millis(20));
    let b2 = b.clone();
    let acceptor = std::thread::spawn(move || b2.accept(idle_fd).map(|_| ()));
    std::thread::sleep(Duration::from_millis(20));
    let (before, t0) = (b.driver_stats(), Instant::now());
    for i in 1..N {
        c.write_all(&[i as u8]).unwrap();
        c.read_exact(&mut one).unwrap();
        assert_eq!(one[0], i as u8);
    }
    let (d, ms) = (
        delta(b.driver_stats(), before),
        t0.elapsed().as_millis() as u64,
    );
    server.join().unwrap();
    let grace_ms = CALLER_GRACE.as_millis().max(1) as u64;
    assert!(d.leads as usize >= N / 2, "the server's reads led: {d:?}");
    assert!(
        d.driver_wakeups <= ms / grace_ms + 10,
        "{} driver wake-ups in {ms} ms for {} requests: {d:?}",
        d.driver_wakeups,
        N - 1
    );
    // The acceptor still works: a connection reaches it.
    let _c2 = TcpStream::connect(&a, (B, 90)).unwrap();
    acceptor.join().unwrap().unwrap();
}
