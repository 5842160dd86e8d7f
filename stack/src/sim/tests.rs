//! Simulator tests with toy nodes: a stop-and-wait pinger and an echo responder that
//! speak a tiny checksummed protocol over Ethernet (EtherType 0x88b5, local experimental).

use super::*;
use crate::link::fault::GilbertElliott;

const ETHERTYPE: [u8; 2] = [0x88, 0xb5];
const BROADCAST: [u8; 6] = [0xff; 6];

fn mac(n: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, n]
}

/// `dst src type kind(4) seq(4) checksum(1)`, padded to 60 bytes.
fn build(buf: &mut [u8], dst: [u8; 6], src: [u8; 6], kind: &[u8; 4], seq: u32) -> usize {
    buf[..60].fill(0);
    buf[0..6].copy_from_slice(&dst);
    buf[6..12].copy_from_slice(&src);
    buf[12..14].copy_from_slice(&ETHERTYPE);
    buf[14..18].copy_from_slice(kind);
    buf[18..22].copy_from_slice(&seq.to_be_bytes());
    buf[22] = checksum(&buf[14..22]);
    60
}

fn checksum(data: &[u8]) -> u8 {
    data.iter().fold(0x5au8, |a, &b| a.rotate_left(1) ^ b)
}

/// Parses a frame for `me`: `(src, kind, seq)`, or why it was dropped.
fn parse(frame: &[u8], me: [u8; 6]) -> Result<([u8; 6], [u8; 4], u32), &'static str> {
    if frame.len() < 23 || frame[12..14] != ETHERTYPE {
        return Err("malformed");
    }
    if frame[0..6] != me && frame[0..6] != BROADCAST {
        return Err("not for us");
    }
    if checksum(&frame[14..22]) != frame[22] {
        return Err("checksum");
    }
    let src = frame[6..12].try_into().unwrap();
    let kind = frame[14..18].try_into().unwrap();
    Ok((
        src,
        kind,
        u32::from_be_bytes(frame[18..22].try_into().unwrap()),
    ))
}

/// Answers every ping with a pong.
#[derive(Default)]
struct Echo {
    me: [u8; 6],
    out: std::collections::VecDeque<([u8; 6], u32)>,
    pings: u32,
    bad_checksum: u32,
    not_for_us: u32,
}

impl Echo {
    fn new(me: [u8; 6]) -> Echo {
        Echo {
            me,
            ..Echo::default()
        }
    }
}

impl SimNode for Echo {
    fn handle_frame(&mut self, _now: Instant, frame: &[u8]) {
        match parse(frame, self.me) {
            Ok((src, kind, seq)) if &kind == b"ping" => {
                self.pings += 1;
                self.out.push_back((src, seq));
            }
            Ok(_) => {}
            Err("checksum") => self.bad_checksum += 1,
            Err("not for us") => self.not_for_us += 1,
            Err(_) => {}
        }
    }
    fn handle_timeout(&mut self, _now: Instant) {}
    fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<usize> {
        let (dst, seq) = self.out.pop_front()?;
        Some(build(buf, dst, self.me, b"pong", seq))
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

/// Sends `total` pings one at a time to `peer`, retransmitting after `rto`.
struct Pinger {
    me: [u8; 6],
    peer: [u8; 6],
    total: u32,
    next: u32,
    rto: Duration,
    want_send: bool,
    deadline: Option<Instant>,
    sent: u32,
    rtts: Vec<Duration>,
    sent_at: Instant,
    done_at: Option<Instant>,
}

impl Pinger {
    fn new(me: [u8; 6], peer: [u8; 6], total: u32, rto: Duration) -> Pinger {
        Pinger {
            me,
            peer,
            total,
            next: 0,
            rto,
            want_send: total > 0,
            deadline: None,
            sent: 0,
            rtts: Vec::new(),
            sent_at: Instant::ZERO,
            done_at: None,
        }
    }
    fn done(&self) -> bool {
        self.next == self.total
    }
}

impl SimNode for Pinger {
    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        if let Ok((_, kind, seq)) = parse(frame, self.me) {
            if &kind == b"pong" && seq == self.next && !self.done() {
                self.rtts.push(now - self.sent_at);
                self.next += 1;
                self.deadline = None;
                self.want_send = !self.done();
                if self.done() {
                    self.done_at = Some(now);
                }
            }
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_some_and(|d| d <= now) {
            self.deadline = None;
            self.want_send = true;
        }
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if !self.want_send || self.done() {
            return None;
        }
        self.want_send = false;
        self.deadline = Some(now + self.rto);
        self.sent += 1;
        self.sent_at = now;
        Some(build(buf, self.peer, self.me, b"ping", self.next))
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }
}

fn pair(seed: u64, link: LinkConfig, pings: u32) -> (SimNet, NodeId, NodeId) {
    let mut net = SimNet::new(seed);
    let a = net.add_node(Pinger::new(
        mac(1),
        mac(2),
        pings,
        Duration::from_millis(50),
    ));
    let b = net.add_node(Echo::new(mac(2)));
    net.connect(a, b, link).unwrap();
    (net, a, b)
}

#[test]
fn ideal_link_delivers_at_once_and_goes_idle() {
    let (mut net, a, b) = pair(1, LinkConfig::ideal(), 3);
    net.run_until_idle();
    let p = net.node::<Pinger>(a).unwrap();
    assert!(p.done());
    assert_eq!(p.sent, 3);
    assert_eq!(p.done_at, Some(Instant::ZERO));
    assert_eq!(net.node::<Echo>(b).unwrap().pings, 3);
    assert_eq!(net.now(), Instant::ZERO);
    assert!(net.node::<Echo>(a).is_none(), "downcast to the wrong type");
}

#[test]
fn clock_jumps_by_propagation_delay_and_serialization_time() {
    let one_way = FaultConfig {
        delay: Duration::from_millis(10),
        rate_bps: Some(1_000_000), // 60-byte frame: 480 µs
        ..FaultConfig::none()
    };
    let (mut net, a, _) = pair(1, LinkConfig::symmetric(one_way), 2);
    net.run_until_idle();
    let p = net.node::<Pinger>(a).unwrap();
    assert_eq!(p.rtts, vec![Duration::from_micros(20_960); 2]);
    assert_eq!(net.now(), Instant::from_micros(2 * 20_960));
    // Two pings and two pongs: four jumps, one per delivery.
    assert_eq!(net.steps(), 4);
}

#[test]
fn exchange_completes_under_heavy_faults() {
    let seed = seed_from_env(0xfeed);
    let _guard = SeedGuard::new(seed);
    let faulty = FaultConfig {
        loss: 0.2,
        burst: Some(GilbertElliott::new(0.05, 0.5)),
        duplicate: 0.1,
        reorder: 0.1,
        reorder_depth: 2,
        corrupt: 0.1,
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(2),
        ..FaultConfig::none()
    };
    let (mut net, a, b) = pair(seed, LinkConfig::symmetric(faulty), 200);
    let ok = net.run_until(Instant::from_secs(600), |net| {
        net.node::<Pinger>(a).unwrap().done()
    });
    assert!(ok, "not done by the deadline");
    let p = net.node::<Pinger>(a).unwrap();
    assert!(p.sent > 200, "losses forced retransmissions");
    let (up, down) = net.link_counters(a).unwrap();
    assert!(up.dropped() > 0 && up.duplicated > 0 && up.corrupted > 0);
    assert_eq!(
        down.dropped(),
        0,
        "the down side of a p2p port is transparent"
    );
    let echo = net.node::<Echo>(b).unwrap();
    assert!(echo.bad_checksum > 0, "corrupted frames reached the node");
    assert_eq!(net.now(), p.done_at.unwrap());
}

fn traffic(seed: u64) -> (Capture, Capture, FaultCounters) {
    let faulty = FaultConfig {
        loss: 0.1,
        duplicate: 0.05,
        reorder: 0.1,
        corrupt: 0.05,
        delay: Duration::from_millis(3),
        jitter: Duration::from_millis(3),
        rate_bps: Some(10_000_000),
        ..FaultConfig::none()
    };
    let (mut net, a, b) = pair(seed, LinkConfig::symmetric(faulty), 100);
    net.enable_capture(a);
    net.enable_capture(b);
    net.run_until_idle();
    let counters = net.link_counters(a).unwrap().0;
    (
        net.take_capture(a).unwrap(),
        net.take_capture(b).unwrap(),
        counters,
    )
}

#[test]
fn same_seed_gives_bit_identical_frame_logs_and_different_seeds_differ() {
    let (a1, b1, c1) = traffic(7);
    let (a2, b2, c2) = traffic(7);
    assert_eq!(a1, a2);
    assert_eq!(b1, b2);
    assert_eq!(c1, c2);
    assert!(a1.records.len() > 200);
    let (a3, b3, _) = traffic(8);
    assert!(a1 != a3 || b1 != b3);
    // And the log round-trips through pcap bytes identically.
    let p1 = a1.write_pcap(Vec::new(), 0).unwrap();
    let p2 = a2.write_pcap(Vec::new(), 0).unwrap();
    assert_eq!(p1, p2);
    let frames: usize = a1.records.iter().map(|r| 16 + r.data.len()).sum();
    assert_eq!(p1.len(), 24 + frames);
}

#[test]
fn adding_a_link_does_not_change_faults_on_existing_ones() {
    // Port streams derive from (seed, port number), not from shared state.
    let (base, _, _) = traffic(11);
    let faulty = FaultConfig {
        loss: 0.1,
        duplicate: 0.05,
        reorder: 0.1,
        corrupt: 0.05,
        delay: Duration::from_millis(3),
        jitter: Duration::from_millis(3),
        rate_bps: Some(10_000_000),
        ..FaultConfig::none()
    };
    let (mut net, a, _) = pair(11, LinkConfig::symmetric(faulty.clone()), 100);
    let c = net.add_node(Pinger::new(mac(3), mac(4), 50, Duration::from_millis(7)));
    let d = net.add_node(Echo::new(mac(4)));
    net.connect(c, d, LinkConfig::symmetric(faulty)).unwrap();
    net.enable_capture(a);
    net.run_until_idle();
    assert_eq!(net.take_capture(a).unwrap(), base);
}

/// Sends a frame back for every frame it gets, at once: with zero delay two of them
/// never let the clock move.
struct Bouncer {
    pending: u32,
}

impl SimNode for Bouncer {
    fn handle_frame(&mut self, _now: Instant, _frame: &[u8]) {
        self.pending += 1;
    }
    fn handle_timeout(&mut self, _now: Instant) {}
    fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<usize> {
        if self.pending == 0 {
            return None;
        }
        self.pending -= 1;
        Some(build(buf, BROADCAST, mac(9), b"ping", 0))
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

#[test]
#[should_panic(expected = "replay with USTACK_SIM_SEED=42")]
fn zero_delay_ping_pong_panics_as_livelock_with_the_seed() {
    let mut net = SimNet::new(42);
    net.set_settle_cap(1000);
    let a = net.add_node(Bouncer { pending: 1 });
    let b = net.add_node(Bouncer { pending: 0 });
    net.connect(a, b, LinkConfig::ideal()).unwrap();
    net.run_until_idle();
}

/// Asks to be woken every millisecond forever.
struct Ticker {
    next: Instant,
    ticks: u32,
}

impl SimNode for Ticker {
    fn handle_frame(&mut self, _now: Instant, _frame: &[u8]) {}
    fn handle_timeout(&mut self, now: Instant) {
        self.ticks += 1;
        self.next = now + Duration::from_millis(1);
    }
    fn poll_transmit(&mut self, _now: Instant, _buf: &mut [u8]) -> Option<usize> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next)
    }
}

#[test]
#[should_panic(expected = "livelock: not idle after")]
fn never_idle_node_hits_the_step_cap() {
    let mut net = SimNet::new(3);
    net.set_step_cap(500);
    net.add_node(Ticker {
        next: Instant::ZERO,
        ticks: 0,
    });
    net.run_until_idle();
}

#[test]
fn run_for_and_run_until_stop_at_the_deadline() {
    let mut net = SimNet::new(3);
    let t = net.add_node(Ticker {
        next: Instant::ZERO,
        ticks: 0,
    });
    net.run_for(Duration::from_micros(10_500));
    assert_eq!(net.now(), Instant::from_micros(10_500));
    assert_eq!(net.node::<Ticker>(t).unwrap().ticks, 11); // 0, 1, ..., 10 ms
    let hit = net.run_until(Instant::from_secs(1), |net| {
        net.node::<Ticker>(t).unwrap().ticks == 20
    });
    assert!(hit);
    assert_eq!(net.now(), Instant::from_millis(19));
    let hit = net.run_until(Instant::from_millis(30), |_| false);
    assert!(!hit);
    assert_eq!(net.now(), Instant::from_millis(30));
}

#[test]
fn hub_repeats_to_all_and_switch_learns() {
    for kind in [SegmentKind::Hub, SegmentKind::Switch] {
        let mut net = SimNet::new(5);
        let seg = net.add_segment(kind);
        let a = net.add_node(Pinger::new(mac(1), mac(2), 5, Duration::from_millis(10)));
        let b = net.add_node(Echo::new(mac(2)));
        let c = net.add_node(Echo::new(mac(3)));
        for n in [a, b, c] {
            net.attach(seg, n, FaultConfig::none(), FaultConfig::none())
                .unwrap();
        }
        net.enable_capture(c);
        net.run_until_idle();
        assert!(net.node::<Pinger>(a).unwrap().done());
        assert_eq!(net.node::<Echo>(b).unwrap().pings, 5);
        let seen_by_c = net.capture(c).unwrap().records.len();
        match kind {
            // A hub shows C all ten frames; it drops them as not for it.
            SegmentKind::Hub => {
                assert_eq!(seen_by_c, 10);
                assert_eq!(net.node::<Echo>(c).unwrap().not_for_us, 10);
            }
            // The switch floods the first ping (b unknown) and then learns both MACs.
            _ => assert_eq!(seen_by_c, 1),
        }
    }
}

#[test]
fn broadcast_reaches_every_port_through_per_port_faults() {
    let mut net = SimNet::new(9);
    let seg = net.add_segment(SegmentKind::Switch);
    let a = net.add_node(Pinger::new(mac(1), BROADCAST, 1, Duration::from_millis(10)));
    net.attach(seg, a, FaultConfig::none(), FaultConfig::none())
        .unwrap();
    let mut echoes = Vec::new();
    for i in 0..4u8 {
        let e = net.add_node(Echo::new(mac(10 + i)));
        let down = FaultConfig {
            delay: Duration::from_millis(u64::from(i) + 1),
            ..FaultConfig::none()
        };
        net.attach(seg, e, FaultConfig::none(), down).unwrap();
        echoes.push(e);
    }
    net.enable_capture(a);
    net.run_until_idle();
    for &e in &echoes {
        assert_eq!(net.node::<Echo>(e).unwrap().pings, 1);
    }
    // Four pongs, arriving 1..4 ms after the broadcast (the pinger takes the first).
    let rx: Vec<_> = net
        .capture(a)
        .unwrap()
        .records
        .iter()
        .filter(|r| r.direction == Direction::Rx)
        .map(|r| r.at)
        .collect();
    assert_eq!(rx, (1..=4).map(Instant::from_millis).collect::<Vec<_>>());
}

#[test]
fn topology_errors_are_reported_not_panicked() {
    let mut net = SimNet::new(1);
    let a = net.add_node(Echo::new(mac(1)));
    let b = net.add_node(Echo::new(mac(2)));
    let c = net.add_node(Echo::new(mac(3)));
    assert_eq!(
        net.connect(a, NodeId(99), LinkConfig::ideal()),
        Err(SimError::UnknownNode)
    );
    assert_eq!(
        net.connect(a, a, LinkConfig::ideal()),
        Err(SimError::AlreadyAttached)
    );
    let seg = net.connect(a, b, LinkConfig::ideal()).unwrap();
    assert_eq!(
        net.connect(a, c, LinkConfig::ideal()),
        Err(SimError::AlreadyAttached)
    );
    assert_eq!(
        net.attach(seg, c, FaultConfig::none(), FaultConfig::none()),
        Err(SimError::SegmentFull)
    );
    assert_eq!(
        net.attach(SegmentId(7), c, FaultConfig::none(), FaultConfig::none()),
        Err(SimError::UnknownSegment)
    );
    assert!(net.link_counters(c).is_none());
    // An unattached node's frames are discarded and counted.
    let d = net.add_node(Pinger::new(mac(4), mac(5), 1, Duration::from_millis(1)));
    net.run_for(Duration::from_millis(5));
    assert!(net.unattached_drops() >= 5);
    assert!(!net.node::<Pinger>(d).unwrap().done());
}

#[test]
fn fault_log_names_node_and_direction() {
    let cfg = FaultConfig {
        loss: 1.0,
        ..FaultConfig::none()
    };
    let (mut net, a, _) = pair(2, LinkConfig::symmetric(cfg), 1);
    net.enable_fault_log(16);
    net.run_for(Duration::from_millis(120));
    let events: Vec<_> = std::iter::from_fn(|| net.poll_fault_event()).collect();
    // Sent at 0, 50 and 100 ms, all lost on the way out of the pinger.
    assert_eq!(events.len(), 3);
    for (node, e) in events {
        assert_eq!(node, a);
        assert_eq!(e.direction, Direction::Tx);
        assert_eq!(
            e.action,
            crate::link::fault::FaultAction::Dropped(crate::link::fault::DropReason::RandomLoss)
        );
    }
}

#[test]
fn seeds_parse_in_decimal_and_hex() {
    assert_eq!(parse_seed("42"), Some(42));
    assert_eq!(parse_seed(" 0xfeed "), Some(0xfeed));
    assert_eq!(parse_seed("0XFF"), Some(255));
    assert_eq!(parse_seed("seed"), None);
    assert_eq!(parse_seed("-1"), None);
    // The variable itself is left alone so tests stay parallel-safe.
    if std::env::var(SEED_ENV).is_err() {
        assert_eq!(seed_from_env(77), 77);
    }
}
