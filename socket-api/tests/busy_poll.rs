//! SO_BUSY_POLL: a blocked receive, accept or poll spins on the link (leading it) for
//! up to its budget before it sleeps; data that arrives during the spin completes the
//! call without a sleep in poll(2), the call still sleeps and wakes after the budget,
//! timeouts hold, and the option reads back (per socket, inherited by accepted
//! sockets, the stack's default for new ones).

mod common;

use common::{pair, A, B, PATIENCE};
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use ustack_socket::{
    DriverStats, Errno, NetStack, PollEvents, PollFd, SockOpt, SockOptName, TcpListener, TcpStream,
};

/// A connected pair of streams: `c` on stack A, `s` (accepted) on stack B, whose
/// listener had SO_BUSY_POLL set to `busy_us` before the connection arrived.
fn connected(port: u16, busy_us: i32) -> (NetStack, NetStack, TcpStream, TcpStream) {
    let (a, b) = pair();
    let l = TcpListener::bind(&b, ("0.0.0.0", port)).unwrap();
    b.setsockopt(l.fd(), SockOpt::BusyPoll(busy_us)).unwrap();
    let c = TcpStream::connect(&a, (B, port)).unwrap();
    let (s, peer) = l.accept().unwrap();
    assert_eq!(peer.ip(), A);
    c.set_nodelay(true).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    (a, b, c, s)
}

/// (spins, passes, sleeps in poll(2) as leader, spins cut short by a switch-out).
fn since(after: DriverStats, before: DriverStats) -> (u64, u64, u64, u64) {
    (
        after.busy_polls - before.busy_polls,
        after.busy_passes - before.busy_passes,
        after.leads - before.leads,
        after.busy_preempted - before.busy_preempted,
    )
}

#[test]
fn getsockopt_reads_back_the_budget_and_negative_is_einval() {
    let (_a, b) = pair();
    let l = TcpListener::bind(&b, "0.0.0.0:90").unwrap();
    let get = |fd| b.getsockopt(fd, SockOptName::BusyPoll).unwrap();
    assert_eq!(get(l.fd()), SockOpt::BusyPoll(0), "off by default");
    b.setsockopt(l.fd(), SockOpt::BusyPoll(50)).unwrap();
    assert_eq!(get(l.fd()), SockOpt::BusyPoll(50));
    assert_eq!(
        b.setsockopt(l.fd(), SockOpt::BusyPoll(-1)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        get(l.fd()),
        SockOpt::BusyPoll(50),
        "a refused value changes nothing"
    );
    b.setsockopt(l.fd(), SockOpt::BusyPoll(0)).unwrap();
    assert_eq!(get(l.fd()), SockOpt::BusyPoll(0));
    // UDP sockets carry it too (SOL_SOCKET).
    let u = b.socket(libc::AF_INET, libc::SOCK_DGRAM, 0).unwrap();
    b.setsockopt(u, SockOpt::BusyPoll(7)).unwrap();
    assert_eq!(get(u), SockOpt::BusyPoll(7));
    assert_eq!(
        SockOptName::BusyPoll.level_and_name(),
        (libc::SOL_SOCKET, libc::SO_BUSY_POLL)
    );
}

#[test]
fn the_stack_default_applies_to_new_sockets_and_accepted_ones_inherit() {
    let (a, b) = NetStack::builder()
        .ip("10.0.0.1/24".parse().unwrap())
        .build_pair(
            NetStack::builder()
                .ip("10.0.0.2/24".parse().unwrap())
                .busy_poll(Duration::from_micros(30)),
            4096,
        )
        .unwrap();
    let l = TcpListener::bind(&b, "0.0.0.0:91").unwrap();
    let get = |fd| b.getsockopt(fd, SockOptName::BusyPoll).unwrap();
    assert_eq!(get(l.fd()), SockOpt::BusyPoll(30));
    b.setsockopt(l.fd(), SockOpt::BusyPoll(40)).unwrap();
    let _c = TcpStream::connect(&a, (B, 91)).unwrap();
    let (s, _) = l.accept().unwrap();
    assert_eq!(
        get(s.fd()),
        SockOpt::BusyPoll(40),
        "inherited from the listener"
    );
    // Stack A has no default.
    let c2 = a.socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
    assert_eq!(
        a.getsockopt(c2, SockOptName::BusyPoll).unwrap(),
        SockOpt::BusyPoll(0)
    );
}

/// Data that arrives while the receive spins completes it: the spin took the frame in
/// itself, so the call never slept in poll(2).
#[test]
fn a_busy_polling_recv_returns_data_arriving_during_the_spin() {
    // A budget far longer than the delay, so a loaded machine still sends in time.
    let (_a, b, mut c, mut s) = connected(92, 3_000_000);
    let before = b.driver_stats();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        c.write_all(b"ping").unwrap();
        c
    });
    let mut got = [0u8; 4];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    let (spins, passes, leads, cut) = since(b.driver_stats(), before);
    let _c = sender.join().unwrap();
    assert!(spins >= 1, "the receive busy-polled: {spins} spins");
    assert!(passes > 1, "it spun more than one pass: {passes}");
    // On a loaded machine the spin may be switched out, and then stops and sleeps;
    // otherwise it never sleeps.
    assert!(
        leads == 0 || cut > 0,
        "it slept in poll(2) only after a switch-out: {leads} sleeps, {cut} cut short"
    );
}

/// A budget that runs out: the receive sleeps in poll(2) as leader, and data that
/// comes later still wakes it.
#[test]
fn after_the_budget_a_recv_sleeps_and_wakes_for_later_data() {
    let (_a, b, mut c, mut s) = connected(93, 2_000);
    let before = b.driver_stats();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        c.write_all(b"late").unwrap();
        c
    });
    let mut got = [0u8; 4];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"late");
    let (spins, _, leads, _) = since(b.driver_stats(), before);
    let _c = sender.join().unwrap();
    assert!(spins >= 1, "the receive busy-polled first: {spins}");
    assert!(leads >= 1, "then slept in poll(2): {leads}");
}

/// SO_RCVTIMEO shorter than the budget: the spin stops at the timeout.
#[test]
fn a_timeout_shorter_than_the_budget_holds() {
    let (_a, b, _c, mut s) = connected(94, 5_000_000);
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let t0 = Instant::now();
    let mut one = [0u8; 1];
    let e = s.read(&mut one).unwrap_err();
    let took = t0.elapsed();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
    assert!(
        took >= Duration::from_millis(50),
        "not before the timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(4),
        "long before the 5 s budget: {took:?}"
    );
    assert!(b.driver_stats().busy_polls >= 1);
}

/// A busy-polling stream keeps answering request after request, and the peer sees
/// every reply in order (the spin leads the link, then steps down each call).
#[test]
fn request_response_with_busy_poll_is_correct() {
    let (_a, b, mut c, mut s) = connected(95, 200);
    let server = std::thread::spawn(move || {
        let mut one = [0u8; 1];
        let mut n = 0u32;
        loop {
            match s.read(&mut one).unwrap() {
                0 => break n,
                _ => {
                    s.write_all(&[one[0], !one[0]]).unwrap();
                    n += 1;
                }
            }
        }
    });
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut two = [0u8; 2];
    for i in 0..500u32 {
        c.write_all(&[i as u8]).unwrap();
        c.read_exact(&mut two).unwrap();
        assert_eq!(two, [i as u8, !(i as u8)]);
    }
    drop(c);
    assert_eq!(server.join().unwrap(), 500);
    assert!(b.driver_stats().busy_polls >= 1);
}

/// accept and poll spin too: a connection that arrives while accept spins is accepted,
/// and poll on a busy-polling socket reports data that arrives while it spins.
#[test]
fn accept_and_poll_busy_poll() {
    let (a, b) = pair();
    let l = TcpListener::bind(&b, "0.0.0.0:96").unwrap();
    b.setsockopt(l.fd(), SockOpt::BusyPoll(3_000_000)).unwrap();
    b.setsockopt(l.fd(), SockOpt::RcvTimeo(Some(PATIENCE)))
        .unwrap();
    let before = b.driver_stats();
    let client = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        let c = TcpStream::connect(&a, (B, 96)).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        (&c).write_all(b"x").unwrap();
        c
    });
    let (s, _) = l.accept().unwrap();
    let mut fds = [PollFd::new(s.fd(), PollEvents::POLLIN)];
    let n = b.poll(&mut fds, Some(PATIENCE)).unwrap();
    assert_eq!(n, 1);
    assert!(fds[0].revents.contains(PollEvents::POLLIN));
    let (spins, _, leads, cut) = since(b.driver_stats(), before);
    let _c = client.join().unwrap();
    assert!(spins >= 2, "accept and poll both spun: {spins}");
    assert!(
        leads == 0 || cut > 0,
        "neither slept in poll(2) but after a switch-out: {leads} sleeps, {cut} cut short"
    );
}

/// `busy_poll_wait` (the preload library's spin before it sleeps in the kernel): true
/// when data arrives within the budget, false (after about the budget) when none does.
#[test]
fn busy_poll_wait_reports_readiness_within_the_budget() {
    let (_a, b, mut c, s) = connected(97, 0);
    let t0 = Instant::now();
    let quiet = b
        .busy_poll_wait(s.fd(), PollEvents::POLLIN, Duration::from_millis(20))
        .unwrap();
    assert!(!quiet, "nothing came");
    assert!(t0.elapsed() < PATIENCE);
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        c.write_all(b"z").unwrap();
        c
    });
    // Spins until the byte comes unless switched out (then it gives up early).
    let mut came = false;
    let t0 = Instant::now();
    while !came && t0.elapsed() < PATIENCE {
        came = b
            .busy_poll_wait(s.fd(), PollEvents::POLLIN, Duration::from_secs(5))
            .unwrap();
    }
    assert!(came, "the byte made the socket readable");
    let _c = sender.join().unwrap();
    assert_eq!(b.bytes_readable(s.fd()).unwrap(), 1);
}
