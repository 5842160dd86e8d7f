//! poll(2) and the epoll registry over many sockets.

mod common;

use common::{pair, B, PATIENCE};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use ustack_socket::*;

const IN: PollEvents = PollEvents::POLLIN;
const OUT: PollEvents = PollEvents::POLLOUT;

#[test]
fn poll_over_1000_udp_sockets_reports_exactly_the_ready_ones() {
    let (a, b) = pair();
    let socks: Vec<UdpSocket> = (0..1000u16)
        .map(|i| UdpSocket::bind(&b, ("0.0.0.0", 10_000 + i)).unwrap())
        .collect();
    let client = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    let mut fds: Vec<PollFd> = socks.iter().map(|s| PollFd::new(s.fd(), IN)).collect();
    // Nothing yet: a zero timeout returns 0 at once.
    assert_eq!(b.poll(&mut fds, Some(Duration::ZERO)).unwrap(), 0);
    let chosen: BTreeSet<usize> = [3usize, 17, 256, 511, 998, 999].into();
    for &i in &chosen {
        client.send_to(b"x", (B, 10_000 + i as u16)).unwrap();
    }
    let deadline = Instant::now() + PATIENCE;
    let mut seen = BTreeSet::new();
    while seen.len() < chosen.len() {
        assert!(Instant::now() < deadline, "only {seen:?} became ready");
        let n = b.poll(&mut fds, Some(PATIENCE)).unwrap();
        assert!(n > 0);
        for (i, p) in fds.iter().enumerate() {
            if p.revents.contains(IN) {
                assert!(chosen.contains(&i), "socket {i} is not ready");
                seen.insert(i);
                socks[i].recv(&mut [0u8; 4]).unwrap();
            } else {
                assert!(p.revents.is_empty());
            }
        }
    }
    assert_eq!(b.poll(&mut fds, Some(Duration::ZERO)).unwrap(), 0);
    // Every socket can send.
    for p in &mut fds {
        p.events = OUT;
    }
    assert_eq!(b.poll(&mut fds, None).unwrap(), 1000);
}

#[test]
fn poll_blocks_until_data_or_timeout() {
    let (a, b) = pair();
    let s = UdpSocket::bind(&b, "0.0.0.0:5555").unwrap();
    let mut p = [PollFd::new(s.fd(), IN)];
    let t = Duration::from_millis(100);
    let start = Instant::now();
    assert_eq!(b.poll(&mut p, Some(t)).unwrap(), 0);
    assert!(start.elapsed() >= t);
    // The thread gets a clone: dropping the last handle of A would stop A.
    let a2 = a.clone();
    let sender = std::thread::spawn(move || {
        let a = a2;
        std::thread::sleep(Duration::from_millis(30));
        let c = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
        c.send_to(b"wake", (B, 5555)).unwrap();
    });
    assert_eq!(b.poll(&mut p, Some(PATIENCE)).unwrap(), 1);
    assert_eq!(p[0].revents, IN);
    sender.join().unwrap();
}

#[test]
fn poll_reports_pollnval_and_ignores_negative_fds() {
    let (_a, b) = pair();
    let s = UdpSocket::bind(&b, "0.0.0.0:0").unwrap();
    let closed = b.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    b.close(closed).unwrap();
    let mut p = [
        PollFd::new(-1, IN),
        PollFd::new(closed, IN),
        PollFd::new(s.fd(), IN),
    ];
    assert_eq!(b.poll(&mut p, Some(Duration::ZERO)).unwrap(), 1);
    assert!(p[0].revents.is_empty());
    assert_eq!(p[1].revents, PollEvents::POLLNVAL);
    assert!(p[2].revents.is_empty());
}

#[test]
fn epoll_scales_to_thousands_of_sockets() {
    let (a, b) = pair();
    let ep = Epoll::new(&b);
    let socks: Vec<UdpSocket> = (0..3000u16)
        .map(|i| UdpSocket::bind(&b, ("0.0.0.0", 30_000 + i)).unwrap())
        .collect();
    for (i, s) in socks.iter().enumerate() {
        ep.ctl(EpollOp::Add, s.fd(), EpollEvent::new(IN, i as u64))
            .unwrap();
    }
    assert_eq!(ep.len(), 3000);
    let mut events = [EpollEvent::default(); 64];
    assert_eq!(ep.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
    let client = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    let chosen: BTreeSet<u64> = (0..3000).step_by(97).collect();
    for &i in &chosen {
        client.send_to(b"x", (B, 30_000 + i as u16)).unwrap();
    }
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + PATIENCE;
    while seen.len() < chosen.len() {
        assert!(
            Instant::now() < deadline,
            "saw {} of {}",
            seen.len(),
            chosen.len()
        );
        let n = ep.wait(&mut events, Some(PATIENCE)).unwrap();
        for e in &events[..n] {
            assert!(chosen.contains(&e.data), "{} is not ready", e.data);
            assert!(e.events.contains(IN));
            socks[e.data as usize].recv(&mut [0u8; 4]).unwrap();
            seen.insert(e.data);
        }
    }
    // Level-triggered: after reading, nothing is left.
    assert_eq!(ep.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);

    // Datagrams to a few ports re-check only those sockets, not the 3,000 watched ones.
    let before = b.driver_stats();
    for &i in &chosen {
        client.send_to(b"y", (B, 30_000 + i as u16)).unwrap();
    }
    let mut seen = 0;
    while seen < chosen.len() {
        let n = ep.wait(&mut events, Some(PATIENCE)).unwrap();
        for e in &events[..n] {
            socks[e.data as usize].recv(&mut [0u8; 4]).unwrap();
            seen += 1;
        }
    }
    let after = b.driver_stats();
    let checks = after.ready_checks - before.ready_checks;
    assert!(checks >= chosen.len() as u64, "{after:?}");
    assert!(
        checks <= 2 * chosen.len() as u64,
        "{checks} checks for {} datagrams",
        chosen.len()
    );
}

#[test]
fn epoll_is_level_triggered_and_supports_oneshot() {
    let (a, b) = pair();
    let ep = Epoll::new(&b);
    let s = UdpSocket::bind(&b, "0.0.0.0:6001").unwrap();
    let t = UdpSocket::bind(&b, "0.0.0.0:6002").unwrap();
    ep.ctl(EpollOp::Add, s.fd(), EpollEvent::new(IN, 1))
        .unwrap();
    ep.ctl(
        EpollOp::Add,
        t.fd(),
        EpollEvent::new(IN | PollEvents::EPOLLONESHOT, 2),
    )
    .unwrap();
    let c = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    c.send_to(b"1", (B, 6001)).unwrap();
    c.send_to(b"2", (B, 6002)).unwrap();
    let mut ev = [EpollEvent::default(); 4];
    let mut got = BTreeSet::new();
    while got.len() < 2 {
        let n = ep.wait(&mut ev, Some(PATIENCE)).unwrap();
        got.extend(ev[..n].iter().map(|e| e.data));
    }
    // Not read yet: the level-triggered one is reported again, the oneshot is not.
    let n = ep.wait(&mut ev, Some(Duration::ZERO)).unwrap();
    assert_eq!(ev[..n].iter().map(|e| e.data).collect::<Vec<_>>(), vec![1]);
    // Re-arming the oneshot reports it again.
    ep.ctl(
        EpollOp::Mod,
        t.fd(),
        EpollEvent::new(IN | PollEvents::EPOLLONESHOT, 2),
    )
    .unwrap();
    let n = ep.wait(&mut ev, Some(Duration::ZERO)).unwrap();
    let mut d: Vec<u64> = ev[..n].iter().map(|e| e.data).collect();
    d.sort();
    assert_eq!(d, vec![1, 2]);
    // Del stops reports; errors for double add, unknown fd, ET, empty buffer.
    ep.ctl(EpollOp::Del, s.fd(), EpollEvent::default()).unwrap();
    assert_eq!(
        ep.ctl(EpollOp::Del, s.fd(), EpollEvent::default()),
        Err(Errno::ENOENT)
    );
    assert_eq!(
        ep.ctl(EpollOp::Add, t.fd(), EpollEvent::new(IN, 2)),
        Err(Errno::EEXIST)
    );
    assert_eq!(
        ep.ctl(
            EpollOp::Add,
            s.fd(),
            EpollEvent::new(IN | PollEvents::EPOLLET, 1)
        ),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        ep.ctl(EpollOp::Add, 999, EpollEvent::new(IN, 1)),
        Err(Errno::EBADF)
    );
    assert_eq!(ep.wait(&mut [], None), Err(Errno::EINVAL));
}

#[test]
fn epoll_wait_blocks_until_ready_and_forgets_closed_descriptors() {
    let (a, b) = pair();
    let ep = Epoll::new(&b);
    let s = UdpSocket::bind(&b, "0.0.0.0:6100").unwrap();
    ep.ctl(EpollOp::Add, s.fd(), EpollEvent::new(IN, 7))
        .unwrap();
    let mut ev = [EpollEvent::default(); 2];
    let start = Instant::now();
    assert_eq!(
        ep.wait(&mut ev, Some(Duration::from_millis(60))).unwrap(),
        0
    );
    assert!(start.elapsed() >= Duration::from_millis(60));
    let a2 = a.clone();
    let t = std::thread::spawn(move || {
        let a = a2;
        std::thread::sleep(Duration::from_millis(30));
        let c = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
        c.send_to(b"x", (B, 6100)).unwrap();
    });
    assert_eq!(ep.wait(&mut ev, Some(PATIENCE)).unwrap(), 1);
    assert_eq!(ev[0].data, 7);
    t.join().unwrap();
    drop(s);
    assert!(ep.is_empty());
    assert_eq!(ep.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 0);
}

#[test]
fn pollout_and_pollerr_are_reported_through_epoll() {
    let (_a, b) = pair();
    let ep = Epoll::new(&b);
    let s = UdpSocket::bind(&b, "0.0.0.0:0").unwrap();
    ep.ctl(EpollOp::Add, s.fd(), EpollEvent::new(OUT, 1))
        .unwrap();
    let mut ev = [EpollEvent::default(); 2];
    assert_eq!(ep.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 1);
    assert_eq!(ev[0].events, OUT);
    // Nobody at 10.0.0.1:9: ICMP port unreachable → POLLERR, even though not asked.
    s.connect((common::A, 9)).unwrap();
    s.send(b"x").unwrap();
    ep.ctl(
        EpollOp::Mod,
        s.fd(),
        EpollEvent::new(PollEvents::empty(), 1),
    )
    .unwrap();
    let n = ep.wait(&mut ev, Some(PATIENCE)).unwrap();
    assert_eq!(n, 1);
    assert!(
        ev[0].events.contains(PollEvents::POLLERR),
        "{:?}",
        ev[0].events
    );
}

/// Frames that are dropped on arrival (IPv6 multicast, as Linux sends on any TAP, and
/// garbage) reach no socket, so they must not re-check any watched socket.
#[test]
fn dropped_arrivals_do_not_recheck_every_watched_socket() {
    use ustack::link::{Link, MemoryLink};
    use ustack::wire::{EthernetAddress, Ipv4Cidr};
    let (ours, mut wire) = MemoryLink::pair(1024);
    let stack = NetStack::builder()
        .memory(ours)
        .ip("10.9.0.2/24".parse::<Ipv4Cidr>().unwrap())
        .mac(EthernetAddress([2, 0, 0, 0, 9, 2]))
        .build()
        .unwrap();
    let ep = Epoll::new(&stack);
    let socks: Vec<UdpSocket> = (0..200)
        .map(|i| UdpSocket::bind(&stack, ("0.0.0.0", 40_000 + i)).unwrap())
        .collect();
    for (i, s) in socks.iter().enumerate() {
        ep.ctl(EpollOp::Add, s.fd(), EpollEvent::new(IN, i as u64))
            .unwrap();
    }
    let before = stack.driver_stats();
    let rx_before = stack.counters().rx_frames;
    let mut ipv6_mld = vec![0u8; 90];
    ipv6_mld[..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 0x16]);
    ipv6_mld[6..12].copy_from_slice(&[2, 0, 0, 0, 9, 1]);
    ipv6_mld[12..14].copy_from_slice(&[0x86, 0xdd]);
    let mut bad_ipv4 = vec![0u8; 60];
    bad_ipv4[..6].copy_from_slice(&[2, 0, 0, 0, 9, 2]);
    bad_ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
    bad_ipv4[14] = 0x45; // a header whose checksum is wrong
    let now = ustack::time::Instant::ZERO;
    for _ in 0..50 {
        wire.send(now, &ipv6_mld).unwrap();
        wire.send(now, &bad_ipv4).unwrap();
    }
    let deadline = Instant::now() + PATIENCE;
    while stack.counters().rx_frames < rx_before + 100 {
        assert!(Instant::now() < deadline, "frames not received");
        std::thread::sleep(Duration::from_millis(5));
    }
    let c = stack.counters();
    assert!(c.total_dropped() >= 100, "the frames were dropped: {c:?}");
    let after = stack.driver_stats();
    assert!(after.rounds > before.rounds, "the driver ran: {after:?}");
    assert_eq!(
        (after.ready_sockets, after.ready_checks),
        (before.ready_sockets, before.ready_checks),
        "stray frames re-checked watched sockets: {after:?}"
    );
    let mut events = [EpollEvent::default(); 8];
    assert_eq!(ep.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
}

/// A datagram wakes only the waiter of the socket it reached: the engine names that one
/// socket, and neither the ARP exchange before it (which made the old frame sniffer
/// re-check everything) nor the 100 other watched sockets cost a check.
#[test]
fn udp_datagram_wakes_only_its_own_sockets_waiter() {
    let (a, b) = pair();
    let ep = Epoll::new(&b);
    let others: Vec<UdpSocket> = (0..100u16)
        .map(|i| UdpSocket::bind(&b, ("0.0.0.0", 20_000 + i)).unwrap())
        .collect();
    for (i, s) in others.iter().enumerate() {
        ep.ctl(EpollOp::Add, s.fd(), EpollEvent::new(IN, i as u64))
            .unwrap();
    }
    let target = UdpSocket::bind(&b, "0.0.0.0:21000").unwrap();
    target.set_read_timeout(Some(PATIENCE)).unwrap();
    // Watched through epoll too, so it is watched whether or not the thread below has
    // blocked yet.
    ep.ctl(EpollOp::Add, target.fd(), EpollEvent::new(IN, 999))
        .unwrap();
    let before = b.driver_stats();
    let t = target.try_clone().unwrap();
    let waiter = std::thread::spawn(move || {
        let mut buf = [0u8; 8];
        let (n, _) = t.recv_from(&mut buf).expect("woken with the datagram");
        buf[..n].to_vec()
    });
    std::thread::sleep(Duration::from_millis(20));
    // A does not know B's MAC yet: B answers an ARP request first.
    let client = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    client.send_to(b"hi", (B, 21000)).unwrap();
    assert_eq!(waiter.join().unwrap(), b"hi");
    let after = b.driver_stats();
    assert_eq!(
        (
            after.ready_sockets - before.ready_sockets,
            after.ready_checks - before.ready_checks
        ),
        (1, 1),
        "one socket reached, one description re-checked: {after:?}"
    );
    let mut events = [EpollEvent::default(); 8];
    assert_eq!(ep.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
}
