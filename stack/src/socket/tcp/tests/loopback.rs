//! Two layers joined by an in-memory wire with seeded loss, delay and jitter
//! (reordering); the clock jumps to the next delivery or deadline.

use super::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const A_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const SERVER: SocketAddrV4 = SocketAddrV4::new(B_IP, 5001);

/// The IPv6 address of the node whose IPv4 address is `ip` (10.0.0.x → fd00::x).
fn v6_of(ip: Ipv4Addr) -> core::net::Ipv6Addr {
    core::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(ip.octets()[3]))
}

/// Each node has an IPv4 and an IPv6 address.
fn cx(now: Instant, ip: Ipv4Addr) -> TcpContext {
    TcpContext {
        now,
        local: crate::socket::LocalAddrs {
            v4: ip,
            v6: v6_of(ip),
            v6_link_local: core::net::Ipv6Addr::UNSPECIFIED,
        },
        mtu: 1500,
        mtu6: 1500,
    }
}

struct Sim {
    a: TcpLayer,
    b: TcpLayer,
    now: Instant,
    rng: ChaCha8Rng,
    drop_rate: f64,
    delay: Duration,
    jitter_ms: u64,
    /// (deliver at, to B?, ip, segment with owned payload)
    wire: Vec<(Instant, bool, SegmentAddrs, TcpRepr<'static>)>,
    steps: u32,
    seed: u64,
    /// Every segment sent, with its time and direction, when recording.
    trace: Option<Vec<(Instant, bool, TcpRepr<'static>)>>,
}

impl Sim {
    fn new(seed: u64, config: TcpConfig, drop_rate: f64, jitter_ms: u64) -> Sim {
        Sim {
            a: TcpLayer::new(config.clone(), seed),
            b: TcpLayer::new(config, seed ^ 0xabcdef),
            now: Instant::ZERO,
            rng: ChaCha8Rng::seed_from_u64(seed),
            drop_rate,
            delay: Duration::from_millis(5),
            jitter_ms,
            wire: Vec::new(),
            steps: 0,
            seed,
            trace: None,
        }
    }

    fn put(&mut self, to_b: bool, ip: SegmentAddrs, seg: TcpRepr<'static>) {
        if let Some(t) = &mut self.trace {
            t.push((self.now, to_b, seg));
        }
        if self.rng.gen_bool(self.drop_rate) {
            return;
        }
        let jitter = if self.jitter_ms > 0 {
            Duration::from_micros(self.rng.gen_range(0..self.jitter_ms * 1000))
        } else {
            Duration::ZERO
        };
        self.wire
            .push((self.now + self.delay + jitter, to_b, ip, seg));
    }

    /// Drains output, advances the clock, delivers and runs timers. Returns false
    /// when nothing at all is left to happen.
    fn step(&mut self) -> bool {
        self.steps += 1;
        assert!(self.steps < 2_000_000, "livelock (seed {})", self.seed);
        for to_b in [true, false] {
            let (layer, ip) = if to_b {
                (&mut self.a, A_IP)
            } else {
                (&mut self.b, B_IP)
            };
            let c = cx(self.now, ip);
            let mut out = Vec::new();
            while layer.dispatch(&c, &mut |ip, r| out.push((ip, leak(r)))) {}
            for (ip, r) in out {
                self.put(to_b, ip, r);
            }
        }
        let next_delivery = self.wire.iter().map(|e| e.0).min();
        let Some(next) = [next_delivery, self.a.poll_at(), self.b.poll_at()]
            .into_iter()
            .flatten()
            .min()
        else {
            return false;
        };
        self.now = self.now.max(next);
        let now = self.now;
        let (due, rest): (Vec<_>, Vec<_>) = self.wire.drain(..).partition(|e| e.0 <= now);
        self.wire = rest;
        for (_, to_b, ip, seg) in due {
            let (layer, local) = if to_b {
                (&mut self.b, B_IP)
            } else {
                (&mut self.a, A_IP)
            };
            if let Some((rip, reply)) = layer.process(&cx(now, local), ip, &seg) {
                self.put(!to_b, rip, reply);
            }
        }
        self.a.handle_timeout(&cx(now, A_IP));
        self.b.handle_timeout(&cx(now, B_IP));
        true
    }
}

/// Sends `len` bytes from A to B, checks them byte-exact and returns the sender's
/// TCP_INFO at the receiver's EOF.
fn transfer(seed: u64, drop_rate: f64, alg: CongestionAlgorithm, len: usize) -> TcpInfo {
    transfer_with(seed, drop_rate, 0, alg, len)
}

fn transfer_with(
    seed: u64,
    drop_rate: f64,
    jitter_ms: u64,
    alg: CongestionAlgorithm,
    len: usize,
) -> TcpInfo {
    transfer_traced(seed, drop_rate, jitter_ms, alg, len, false).0
}

/// As `transfer_with`; also returns every segment sent when `trace` is set.
fn transfer_traced(
    seed: u64,
    drop_rate: f64,
    jitter_ms: u64,
    alg: CongestionAlgorithm,
    len: usize,
    trace: bool,
) -> (TcpInfo, Vec<(Instant, bool, TcpRepr<'static>)>) {
    let server = SocketAddr::V4(SERVER);
    transfer_between(seed, drop_rate, jitter_ms, alg, len, trace, server, server)
}

/// As `transfer_traced`, B listening on `listen` and A connecting to `server`.
#[allow(clippy::too_many_arguments)]
fn transfer_between(
    seed: u64,
    drop_rate: f64,
    jitter_ms: u64,
    alg: CongestionAlgorithm,
    len: usize,
    trace: bool,
    listen: SocketAddr,
    server_addr: SocketAddr,
) -> (TcpInfo, Vec<(Instant, bool, TcpRepr<'static>)>) {
    let config = TcpConfig {
        congestion: alg,
        ..TcpConfig::default()
    };
    let mut sim = Sim::new(seed, config, drop_rate, jitter_ms);
    sim.trace = trace.then(Vec::new);
    let server = sim.b.socket();
    sim.b.listen(server, listen, 4).unwrap();
    let client = sim.a.socket();
    sim.a
        .connect(client, &cx(sim.now, A_IP), server_addr)
        .unwrap();

    let data: Vec<u8> = (0..len).map(|_| sim.rng.gen()).collect();
    let mut sent = 0;
    let mut received = Vec::with_capacity(len);
    let mut accepted = None;
    let mut buf = vec![0u8; 65536];
    let mut closed = false;
    'run: loop {
        if sent < len {
            if let Ok(n) = sim.a.send(client, &data[sent..]) {
                sent += n;
            }
        } else if !closed {
            sim.a.shutdown(client, Shutdown::Write).unwrap();
            closed = true;
        }
        if accepted.is_none() {
            if let Ok((h, _)) = sim.b.accept(server) {
                accepted = Some(h);
            }
        }
        if let Some(h) = accepted {
            loop {
                match sim.b.recv(h, &mut buf) {
                    Ok(0) => break 'run,
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                    Err(RecvError::WouldBlock) => break,
                    Err(e) => panic!("recv: {e} (seed {seed})"),
                }
            }
        }
        assert!(sim.step(), "stuck (seed {seed})");
    }
    assert_eq!(received.len(), data.len(), "seed {seed}");
    assert!(received == data, "corrupted stream (seed {seed})");
    let info = sim.a.info(client).expect("client");
    (info, sim.trace.unwrap_or_default())
}

/// Header prediction is only a shortcut: with it and without it, the same transfers
/// (lossless, lossy, reordered) emit exactly the same segments at the same times.
#[test]
fn test_loopback_header_prediction_changes_nothing() {
    use crate::socket::tcp::socket::{PREDICTED, PREDICTION_OFF};
    for (seed, drop_rate, jitter_ms) in [(31, 0.0, 0), (32, 0.02, 0), (33, 0.02, 20)] {
        let alg = CongestionAlgorithm::Cubic;
        PREDICTED.with(|c| c.set(0));
        let (info, fast) = transfer_traced(seed, drop_rate, jitter_ms, alg, 300_000, true);
        let predicted = PREDICTED.with(|c| c.get());
        PREDICTION_OFF.with(|c| c.set(true));
        let (info_full, full) = transfer_traced(seed, drop_rate, jitter_ms, alg, 300_000, true);
        PREDICTION_OFF.with(|c| c.set(false));
        // Loss and reordering leave holes, which take the full path.
        let expected = if drop_rate == 0.0 {
            fast.len() as u64 / 4
        } else {
            10
        };
        assert!(
            predicted > expected,
            "seed {seed}: only {predicted} of {} segments predicted",
            fast.len()
        );
        assert_eq!(fast.len(), full.len(), "seed {seed}");
        for (i, (f, s)) in fast.iter().zip(&full).enumerate() {
            assert_eq!(f, s, "seed {seed}: segment {i} differs");
        }
        assert_eq!(format!("{info:?}"), format!("{info_full:?}"), "seed {seed}");
    }
}

#[test]
fn test_loopback_1mb_lossless_cubic() {
    let info = transfer(1, 0.0, CongestionAlgorithm::Cubic, 1 << 20);
    assert_eq!(info.total_retrans, 0);
    assert_eq!(info.bytes_sent, 1 << 20);
}

#[test]
fn test_loopback_1mb_with_drops_cubic() {
    let info = transfer(7, 0.02, CongestionAlgorithm::Cubic, 1 << 20);
    assert!(info.total_retrans > 0, "no loss recovery exercised");
}

#[test]
fn test_loopback_1mb_with_drops_newreno() {
    let info = transfer(11, 0.03, CongestionAlgorithm::NewReno, 1 << 20);
    assert!(info.total_retrans > 0, "no loss recovery exercised");
}

#[test]
fn test_loopback_1mb_with_drops_and_reordering() {
    let info = transfer_with(13, 0.02, 20, CongestionAlgorithm::Cubic, 1 << 20);
    assert!(info.total_retrans > 0, "no loss recovery exercised");
}

#[test]
fn test_loopback_small_transfers_many_seeds() {
    let mut retrans = 0;
    for seed in 100..120 {
        let alg = if seed % 2 == 0 {
            CongestionAlgorithm::Cubic
        } else {
            CongestionAlgorithm::NewReno
        };
        retrans += transfer_with(seed, 0.1, seed % 7, alg, 20_000).total_retrans;
    }
    assert!(retrans > 0);
}

/// Both sides close; every socket but the listener is freed, the active closer
/// after TIME-WAIT.
#[test]
fn test_loopback_full_lifecycle_frees_everything() {
    for seed in 200..210 {
        let mut sim = Sim::new(seed, TcpConfig::default(), 0.1, 3);
        let server = sim.b.socket();
        sim.b.listen(server, SocketAddr::V4(SERVER), 4).unwrap();
        let client = sim.a.socket();
        sim.a
            .connect(client, &cx(sim.now, A_IP), SocketAddr::V4(SERVER))
            .unwrap();
        while sim.a.state(client) != Some(TcpState::Established) {
            assert!(sim.step(), "seed {seed}");
        }
        sim.a.send(client, b"request").unwrap();
        sim.a.close(client, &cx(sim.now, A_IP)).unwrap();
        let mut conn = None;
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while sim.step() {
            if conn.is_none() {
                conn = sim.b.accept(server).ok().map(|c| c.0);
            }
            if let Some(c) = conn {
                match sim.b.recv(c, &mut buf) {
                    Ok(0) => {
                        // `c` goes stale: later calls fail with BadHandle.
                        sim.b.close(c, &cx(sim.now, B_IP)).unwrap();
                    }
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(_) => {}
                }
            }
        }
        assert_eq!(got, b"request", "seed {seed}");
        assert_eq!(sim.a.socket_count(), 0, "seed {seed}");
        assert_eq!(sim.b.socket_count(), 1, "seed {seed}");
        let mut saw_time_wait = false;
        while let Some(e) = sim.a.poll_event() {
            if let TcpEvent::StateChanged {
                to: TcpState::TimeWait,
                ..
            } = e
            {
                saw_time_wait = true;
            }
        }
        assert!(saw_time_wait, "seed {seed}");
        assert!(sim.now >= Instant::from_secs(60), "seed {seed}");
    }
}

/// Both sides connect to each other at once (RFC 9293 §3.5 figure 7).
#[test]
fn test_loopback_simultaneous_open() {
    let mut sim = Sim::new(300, TcpConfig::default(), 0.0, 0);
    let a = sim.a.socket();
    let b = sim.b.socket();
    sim.a
        .bind(a, SocketAddr::V4(SocketAddrV4::new(A_IP, 7000)))
        .unwrap();
    sim.b
        .bind(b, SocketAddr::V4(SocketAddrV4::new(B_IP, 7001)))
        .unwrap();
    sim.a
        .connect(
            a,
            &cx(sim.now, A_IP),
            SocketAddr::V4(SocketAddrV4::new(B_IP, 7001)),
        )
        .unwrap();
    sim.b
        .connect(
            b,
            &cx(sim.now, B_IP),
            SocketAddr::V4(SocketAddrV4::new(A_IP, 7000)),
        )
        .unwrap();
    for _ in 0..10 {
        sim.step();
    }
    assert_eq!(sim.a.state(a), Some(TcpState::Established));
    assert_eq!(sim.b.state(b), Some(TcpState::Established));
    sim.a.send(a, b"ping").unwrap();
    for _ in 0..10 {
        sim.step();
    }
    let mut buf = [0u8; 8];
    assert_eq!(sim.b.recv(b, &mut buf), Ok(4));
    assert_eq!(&buf[..4], b"ping");
}

// ------------------------------------------------------------ IPv6

const SERVER6: SocketAddr = SocketAddr::V6(core::net::SocketAddrV6::new(
    core::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
    5001,
    0,
    0,
));
const ANY6: SocketAddr = SocketAddr::V6(core::net::SocketAddrV6::new(
    core::net::Ipv6Addr::UNSPECIFIED,
    5001,
    0,
    0,
));

/// Every TCP mechanism works the same over IPv6: a lossy, reordered transfer arrives
/// byte-exact, and the MSS is the IPv6 one (1500 − 60, less 12 for timestamps).
#[test]
fn test_loopback_ipv6_transfer_with_drops_and_reordering() {
    let (info, trace) = transfer_between(
        41,
        0.02,
        20,
        CongestionAlgorithm::Cubic,
        1 << 20,
        true,
        ANY6,
        SERVER6,
    );
    assert_eq!(info.advmss, 1440);
    assert_eq!(info.snd_mss, 1440 - 12);
    assert!(
        info.sack && info.timestamps && info.window_scaling,
        "{info:?}"
    );
    assert!(info.total_retrans > 0, "2% loss retransmits something");
    let syn = trace
        .iter()
        .find(|(_, to_b, s)| *to_b && s.flags.syn())
        .expect("SYN");
    assert_eq!(syn.2.options.mss, Some(1440));
    let most = trace
        .iter()
        .map(|(_, _, s)| s.payload.len())
        .max()
        .unwrap_or(0);
    assert_eq!(most, 1428, "no segment larger than the IPv6 MSS");
}

/// Connects a new socket of A to `to`; returns its handle.
fn connect_a(sim: &mut Sim, to: SocketAddr) -> TcpHandle {
    let h = sim.a.socket();
    sim.a.connect(h, &cx(sim.now, A_IP), to).unwrap();
    h
}

/// Runs the simulation until nothing is left to do (or 10 s of virtual time).
fn settle_sim(sim: &mut Sim) {
    while sim.now < Instant::from_millis(10_000) && sim.step() {}
}

/// A listener on `[::]` takes IPv4 and IPv6 connections (dual stack), each child in
/// its own family with its family's MSS.
#[test]
fn test_loopback_dual_stack_listener_accepts_both_families() {
    let mut sim = Sim::new(5, TcpConfig::default(), 0.0, 0);
    let l = sim.b.socket();
    sim.b.listen(l, ANY6, 4).unwrap();
    let c4 = connect_a(&mut sim, SocketAddr::V4(SERVER));
    let c6 = connect_a(&mut sim, SERVER6);
    for _ in 0..50 {
        sim.step();
    }
    assert_eq!(sim.a.state(c4), Some(TcpState::Established));
    assert_eq!(sim.a.state(c6), Some(TcpState::Established));
    let (h1, p1) = sim.b.accept(l).unwrap();
    let (h2, p2) = sim.b.accept(l).unwrap();
    let mut peers = [(p1, h1), (p2, h2)];
    peers.sort_by_key(|(p, _)| p.is_ipv6());
    assert_eq!(peers[0].0.ip(), core::net::IpAddr::V4(A_IP));
    assert_eq!(peers[1].0.ip(), core::net::IpAddr::V6(v6_of(A_IP)));
    assert_eq!(sim.b.local_addr(peers[0].1), Some(SocketAddr::V4(SERVER)));
    assert_eq!(sim.b.local_addr(peers[1].1), Some(SERVER6));
    assert_eq!(sim.b.info(peers[0].1).unwrap().advmss, 1460);
    assert_eq!(sim.b.info(peers[1].1).unwrap().advmss, 1440);
    assert_eq!(
        sim.a.local_addr(c6).unwrap().ip(),
        core::net::IpAddr::V6(v6_of(A_IP))
    );
}

/// With IPV6_V6ONLY a listener on `[::]` refuses IPv4 (a RST, as a closed port does)
/// and still takes IPv6.
#[test]
fn test_loopback_v6only_listener_refuses_ipv4() {
    let mut sim = Sim::new(6, TcpConfig::default(), 0.0, 0);
    let l = sim.b.socket();
    sim.b.set_v6only(l, true).unwrap();
    sim.b.listen(l, ANY6, 4).unwrap();
    assert_eq!(sim.b.v6only(l), Some(true));
    assert_eq!(sim.b.set_v6only(l, false), Err(OptionError::InvalidState));
    let c4 = connect_a(&mut sim, SocketAddr::V4(SERVER));
    let c6 = connect_a(&mut sim, SERVER6);
    settle_sim(&mut sim);
    assert_eq!(sim.a.state(c6), Some(TcpState::Established));
    assert_eq!(sim.a.state(c4), Some(TcpState::Closed));
    assert_eq!(sim.a.take_error(c4), Some(TcpError::ConnectionRefused));
    assert!(sim.b.accept(l).is_ok());
    assert_eq!(sim.b.accept(l), Err(AcceptError::WouldBlock));
}

/// An IPv4 listener hears nothing of IPv6; a socket bound to an IPv4 address cannot
/// connect to IPv6, nor a `[::]` IPV6_V6ONLY one to IPv4.
#[test]
fn test_families_do_not_cross() {
    let mut sim = Sim::new(7, TcpConfig::default(), 0.0, 0);
    let l = sim.b.socket();
    sim.b.listen(l, SocketAddr::V4(SERVER), 4).unwrap();
    let c6 = connect_a(&mut sim, SERVER6);
    settle_sim(&mut sim);
    assert_eq!(sim.a.take_error(c6), Some(TcpError::ConnectionRefused));
    let cx_a = cx(sim.now, A_IP);
    let bound4 = sim.a.socket();
    sim.a
        .bind(bound4, SocketAddr::V4(SocketAddrV4::new(A_IP, 0)))
        .unwrap();
    assert_eq!(
        sim.a.connect(bound4, &cx_a, SERVER6),
        Err(ConnectError::Unaddressable)
    );
    let only6 = sim.a.socket();
    sim.a.set_v6only(only6, true).unwrap();
    sim.a.bind(only6, ANY6).unwrap();
    assert_eq!(
        sim.a.connect(only6, &cx_a, SocketAddr::V4(SERVER)),
        Err(ConnectError::Unaddressable)
    );
    // Without an IPv6 address of our own there is no source for an IPv6 connection.
    let mut no6 = cx_a;
    no6.local.v6 = core::net::Ipv6Addr::UNSPECIFIED;
    let fresh = sim.a.socket();
    assert_eq!(
        sim.a.connect(fresh, &no6, SERVER6),
        Err(ConnectError::Unaddressable)
    );
}

/// B listens on `[::]` with a backlog of 1 and SYN cookies on, so a second
/// simultaneous handshake gets a cookie.
fn cookie_listener6() -> (Sim, TcpHandle) {
    let config = TcpConfig {
        syncookies: true,
        max_backlog: 1,
        ..TcpConfig::default()
    };
    let mut sim = Sim::new(8, config, 0.0, 0);
    let l = sim.b.socket();
    sim.b.listen(l, ANY6, 1).unwrap();
    (sim, l)
}

/// A SYN cookie over IPv6 carries the IPv6 MSS and completes the connection.
#[test]
fn test_loopback_ipv6_syn_cookie() {
    let (mut sim, _listener) = cookie_listener6();
    let first = connect_a(&mut sim, SERVER6);
    let second = connect_a(&mut sim, SERVER6);
    settle_sim(&mut sim);
    assert!(
        sim.b.counters().syncookies_sent >= 1,
        "{:?}",
        sim.b.counters()
    );
    assert_eq!(
        sim.b.counters().syncookies_valid,
        sim.b.counters().syncookies_sent
    );
    for c in [first, second] {
        assert_eq!(sim.a.state(c), Some(TcpState::Established));
    }
}

/// A cookie for an IPv6 peer on a 1280-byte path keeps its MSS of 1220 (Linux's
/// IPv6 table), where the IPv4 table would have fallen back to 536.
#[test]
fn test_loopback_ipv6_syn_cookie_keeps_minimum_mtu_mss() {
    let (mut sim, l) = cookie_listener6();
    let mut small = cx(sim.now, A_IP);
    small.mtu6 = 1280;
    let mut clients = Vec::new();
    for _ in 0..2 {
        let h = sim.a.socket();
        sim.a.connect(h, &small, SERVER6).unwrap();
        clients.push(h);
    }
    // Accept as children appear. With a backlog of 1 one handshake's last ACK finds
    // the accept queue full and is dropped, as on Linux; the client's data (or the
    // SYN,ACK's retransmission) completes it once the first child is accepted.
    let mut mss = Vec::new();
    let mut sent = false;
    while mss.len() < 2 && sim.now < Instant::from_millis(10_000) && sim.step() {
        while let Ok((h, _)) = sim.b.accept(l) {
            mss.push(sim.b.info(h).unwrap().snd_mss);
        }
        if !sent
            && clients
                .iter()
                .all(|&c| sim.a.state(c) == Some(TcpState::Established))
        {
            for &c in &clients {
                sim.a.send(c, b"hello").unwrap();
            }
            sent = true;
        }
    }
    let counters = sim.b.counters();
    assert!(counters.syncookies_sent >= 1, "{counters:?}");
    assert!(counters.syncookies_valid >= 1, "{counters:?}");
    assert_eq!(mss.len(), 2, "both connections accepted: {counters:?}");
    // 1220 less the 12 bytes of timestamps, for the normal and the cookie child.
    assert_eq!(mss, [1208, 1208]);
}

/// As on Linux: `0.0.0.0:P` and an IPV6_V6ONLY `[::]:P` listen side by side, each
/// taking its family; a dual-stack `[::]:P` conflicts with either.
#[test]
fn test_ipv4_and_v6only_listeners_share_a_port() {
    let mut sim = Sim::new(9, TcpConfig::default(), 0.0, 0);
    let l4 = sim.b.socket();
    sim.b
        .listen(
            l4,
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5001)),
            4,
        )
        .unwrap();
    let dual = sim.b.socket();
    assert_eq!(sim.b.bind(dual, ANY6), Err(BindError::AddrInUse));
    let l6 = sim.b.socket();
    sim.b.set_v6only(l6, true).unwrap();
    sim.b.listen(l6, ANY6, 4).unwrap();
    let c4 = connect_a(&mut sim, SocketAddr::V4(SERVER));
    let c6 = connect_a(&mut sim, SERVER6);
    settle_sim(&mut sim);
    assert_eq!(sim.a.state(c4), Some(TcpState::Established));
    assert_eq!(sim.a.state(c6), Some(TcpState::Established));
    assert!(sim.b.accept(l4).unwrap().1.is_ipv4());
    assert!(sim.b.accept(l6).unwrap().1.is_ipv6());
    assert_eq!(sim.b.accept(l4), Err(AcceptError::WouldBlock));
    // Closing the IPv4 listener frees only its half: a new one may take it (with
    // SO_REUSEADDR, for the accepted connection still holds the port), and the IPv6
    // listener still answers.
    sim.b.close(l4, &cx(sim.now, B_IP)).unwrap();
    let again = sim.b.socket();
    sim.b.set_reuse_addr(again, true).unwrap();
    sim.b.listen(again, SocketAddr::V4(SERVER), 4).unwrap();
    let c6b = connect_a(&mut sim, SERVER6);
    settle_sim(&mut sim);
    assert_eq!(sim.a.state(c6b), Some(TcpState::Established));
}
