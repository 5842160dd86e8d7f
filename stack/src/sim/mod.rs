//! Deterministic network simulation: nodes joined by seeded, faulty links under a
//! virtual clock.
//!
//! A [`SimNet`] owns a virtual clock, a set of nodes (anything implementing [`SimNode`],
//! such as [`Interface`]) and segments joining them: point-to-point links
//! ([`SimNet::connect`]) or shared segments ([`SimNet::add_segment`]: a hub repeating to
//! every port, or a learning switch). Every node is attached through one port with two
//! [`FaultModel`]s, `up` (node → segment) and `down` (segment → node), the same model the
//! [`FaultInjector`](crate::link::FaultInjector) uses on real links, so propagation delay,
//! bandwidth, queues, loss, duplication, reordering and corruption are configured in one
//! vocabulary ([`FaultConfig`]).
//!
//! Invariants:
//! - Determinism: the only entropy is the seed given to [`SimNet::new`]; each port
//!   direction draws from its own stream derived from it and its port number. Nodes are
//!   polled and ports drained in creation order; nothing iterates a hash map. The same
//!   seed and the same test produce bit-identical traffic.
//! - The clock only moves forward, and only jumps: to the earliest frame due out of a
//!   fault model or the earliest node deadline ([`SimNode::poll_timeout`]). At each
//!   instant the net *settles*: due timers fire, due frames are delivered and every node
//!   is drained of output, until nothing is left to do at that instant.
//! - Livelock is the one documented panic: settling that never finishes at one instant,
//!   or a `run_*` call exceeding its step cap, panics with the seed and how to replay it
//!   (`USTACK_SIM_SEED=<seed>`, read by [`seed_from_env`]).
//! - The simulator never prints; it logs under the `ustack::sim` target. The one
//!   exception is [`SeedGuard`], a test helper that writes the seed to stderr when a
//!   test panics.

use crate::iface::Interface;
use crate::link::fault::{
    derive_seed, Direction, FaultConfig, FaultCounters, FaultEvent, FaultModel, FramePool,
};
use crate::link::PcapTimestamps;
use crate::link::PcapWriter;
use crate::time::{Duration, Instant};
use core::any::Any;
use core::fmt;
use std::io;

#[cfg(test)]
mod iface_tests;
#[cfg(test)]
mod smoltcp_tests;
pub mod tcp_app;
#[cfg(test)]
mod tcp_tests;
#[cfg(test)]
mod tests;

/// The configuration of host `n` of the two-host lab the in-memory pairs use (benches,
/// allocation and memory tests, the soak, `ustack bench`'s in-memory rows): address
/// 10.0.0.`n`/24, MAC 02:00:00:00:00:`n`, host `peer`'s MAC pinned so no ARP crosses
/// the wire, no gratuitous ARP, and `n` as the seed.
pub fn lab_config(n: u8, peer: u8) -> crate::iface::Config {
    use crate::wire::{EthernetAddress, Ipv4Cidr};
    use core::net::Ipv4Addr;
    let mut c = crate::iface::Config::new(
        EthernetAddress([2, 0, 0, 0, 0, n]),
        Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, n), 24),
    );
    c.arp.gratuitous_at_start = false;
    c.static_neighbors = vec![(
        Ipv4Addr::new(10, 0, 0, peer),
        EthernetAddress([2, 0, 0, 0, 0, peer]),
    )];
    c.seed = u64::from(n);
    c
}

/// Environment variable holding a seed to replay (decimal or `0x` hex).
pub const SEED_ENV: &str = "USTACK_SIM_SEED";

/// Default number of steps a `run_*` call may take before it is declared a livelock.
pub const DEFAULT_STEP_CAP: u64 = 1_000_000;

/// Default number of settle rounds (or frames from one node) at a single instant before
/// it is declared a livelock.
pub const DEFAULT_SETTLE_CAP: u64 = 100_000;

/// Size of the buffer handed to [`SimNode::poll_transmit`]: any IPv4 MTU plus Ethernet.
const TX_BUF_LEN: usize = 65_535 + 14;

/// Parses a seed written in decimal or `0x` hex.
pub fn parse_seed(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The seed in [`SEED_ENV`] if set and valid, else `default`.
pub fn seed_from_env(default: u64) -> u64 {
    let Ok(s) = std::env::var(SEED_ENV) else {
        return default;
    };
    parse_seed(&s).unwrap_or_else(|| {
        log::warn!(target: "ustack::sim", "ignoring invalid {SEED_ENV}={s:?}");
        default
    })
}

/// Test helper: while alive, a panicking thread reports the seed on stderr so the
/// failure can be replayed with `USTACK_SIM_SEED=<seed>`.
#[derive(Debug)]
pub struct SeedGuard {
    seed: u64,
}

impl SeedGuard {
    /// Guards a test using `seed`.
    pub fn new(seed: u64) -> SeedGuard {
        SeedGuard { seed }
    }
}

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The one place the crate writes to stderr: a failing test must name its seed.
            eprintln!(
                "ustack::sim: test failed with seed {seed}; replay with {SEED_ENV}={seed}",
                seed = self.seed
            );
        }
    }
}

/// Something that exchanges Ethernet frames in a [`SimNet`]: the sans-IO surface of an
/// interface.
pub trait SimNode {
    /// Takes one frame delivered at `now`.
    fn handle_frame(&mut self, now: Instant, frame: &[u8]);
    /// Runs timers due at `now`.
    fn handle_timeout(&mut self, now: Instant);
    /// Writes the next frame to send into `buf` and returns its length.
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize>;
    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    fn poll_timeout(&self) -> Option<Instant>;
}

impl SimNode for Interface {
    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        Interface::handle_frame(self, now, frame);
    }
    fn handle_timeout(&mut self, now: Instant) {
        Interface::handle_timeout(self, now);
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        Interface::poll_transmit(self, now, buf)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Interface::poll_timeout(self)
    }
}

/// A [`SimNode`] that can be downcast back to its concrete type.
trait AnyNode: SimNode {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: SimNode + Any> AnyNode for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Names a node of a [`SimNet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// Names a segment (point-to-point link, hub or switch) of a [`SimNet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentId(pub usize);

/// How a shared segment forwards frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentKind {
    /// Two ports; every frame goes to the other one.
    PointToPoint,
    /// Every frame is repeated to every other port (NICs filter by address).
    Hub,
    /// A learning switch: unicast goes to the port that last sent from the destination
    /// MAC; broadcast, multicast and unknown destinations are flooded.
    Switch,
}

/// Both directions of a point-to-point link.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkConfig {
    /// Faults, delay and rate from the first node to the second.
    pub a_to_b: FaultConfig,
    /// Faults, delay and rate from the second node to the first.
    pub b_to_a: FaultConfig,
}

impl LinkConfig {
    /// A perfect link: no faults, no delay, unlimited rate.
    pub fn ideal() -> LinkConfig {
        LinkConfig::default()
    }

    /// The same configuration both ways.
    pub fn symmetric(config: FaultConfig) -> LinkConfig {
        LinkConfig {
            a_to_b: config.clone(),
            b_to_a: config,
        }
    }
}

/// Why a topology change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimError {
    /// No such node.
    UnknownNode,
    /// No such segment.
    UnknownSegment,
    /// The node already has a port (nodes have one interface).
    AlreadyAttached,
    /// A point-to-point segment already has two ports.
    SegmentFull,
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SimError::UnknownNode => "no such node",
            SimError::UnknownSegment => "no such segment",
            SimError::AlreadyAttached => "node already attached to a segment",
            SimError::SegmentFull => "point-to-point segment already has two ports",
        })
    }
}

impl std::error::Error for SimError {}

/// One captured frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureRecord {
    /// When the frame left the node (`Tx`) or was delivered to it (`Rx`).
    pub at: Instant,
    /// `Tx`: sent by the node, before faults; `Rx`: delivered to it, after faults.
    pub direction: Direction,
    /// The frame.
    pub data: Vec<u8>,
}

/// Every frame a node sent and received, in order: what a pcap on its NIC would show.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capture {
    /// The frames, oldest first.
    pub records: Vec<CaptureRecord>,
}

impl Capture {
    /// Writes the capture as a classic pcap file; `epoch_unix_micros` is the wall-clock
    /// time shown for `Instant::ZERO`.
    ///
    /// # Errors
    /// The writer failed.
    pub fn write_pcap<W: io::Write>(&self, out: W, epoch_unix_micros: i64) -> io::Result<W> {
        let mut w = PcapWriter::new((), out, epoch_unix_micros, PcapTimestamps::Micros)?;
        for r in &self.records {
            w.record(r.at, &r.data)?;
        }
        w.flush()?;
        Ok(w.into_parts().1)
    }
}

struct NodeSlot {
    node: Box<dyn AnyNode>,
    port: Option<usize>,
    capture: Option<Capture>,
}

struct Port {
    node: usize,
    segment: usize,
    up: FaultModel,
    down: FaultModel,
}

struct Segment {
    kind: SegmentKind,
    ports: Vec<usize>,
    /// Switch forwarding table: MAC → port, in learning order.
    table: Vec<([u8; 6], usize)>,
}

/// A simulated network: nodes, segments and a virtual clock. See the module docs.
pub struct SimNet {
    seed: u64,
    now: Instant,
    nodes: Vec<NodeSlot>,
    ports: Vec<Port>,
    segments: Vec<Segment>,
    pool: FramePool,
    tx_buf: Vec<u8>,
    dests: Vec<usize>,
    step_cap: u64,
    settle_cap: u64,
    steps: u64,
    unattached_drops: u64,
}

impl fmt::Debug for SimNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimNet")
            .field("seed", &self.seed)
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .field("segments", &self.segments.len())
            .field("steps", &self.steps)
            .finish()
    }
}

impl SimNet {
    /// An empty network at time zero whose every fault derives from `seed`.
    pub fn new(seed: u64) -> SimNet {
        SimNet {
            seed,
            now: Instant::ZERO,
            nodes: Vec::new(),
            ports: Vec::new(),
            segments: Vec::new(),
            pool: FramePool::new(),
            tx_buf: vec![0; TX_BUF_LEN],
            dests: Vec::new(),
            step_cap: DEFAULT_STEP_CAP,
            settle_cap: DEFAULT_SETTLE_CAP,
            steps: 0,
            unattached_drops: 0,
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Steps taken so far (clock jumps).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Most steps one `run_*` call may take before panicking as a livelock.
    pub fn set_step_cap(&mut self, cap: u64) {
        self.step_cap = cap;
    }

    /// Most settle rounds (or frames sent by one node) at one instant before panicking.
    pub fn set_settle_cap(&mut self, cap: u64) {
        self.settle_cap = cap;
    }

    /// Adds a node, unattached.
    pub fn add_node<N: SimNode + 'static>(&mut self, node: N) -> NodeId {
        self.nodes.push(NodeSlot {
            node: Box::new(node),
            port: None,
            capture: None,
        });
        NodeId(self.nodes.len() - 1)
    }

    /// The node `id` as its concrete type, if it is a `T`.
    pub fn node<T: SimNode + 'static>(&self, id: NodeId) -> Option<&T> {
        self.nodes.get(id.0)?.node.as_any().downcast_ref()
    }

    /// The node `id` as its concrete type, mutably, if it is a `T`.
    pub fn node_mut<T: SimNode + 'static>(&mut self, id: NodeId) -> Option<&mut T> {
        self.nodes.get_mut(id.0)?.node.as_any_mut().downcast_mut()
    }

    /// Adds an empty shared segment.
    pub fn add_segment(&mut self, kind: SegmentKind) -> SegmentId {
        self.segments.push(Segment {
            kind,
            ports: Vec::new(),
            table: Vec::new(),
        });
        SegmentId(self.segments.len() - 1)
    }

    /// Attaches `node` to `segment`; `up` shapes what the node sends, `down` what it
    /// receives.
    ///
    /// # Errors
    /// Unknown node or segment, a node already attached, or a full point-to-point link.
    pub fn attach(
        &mut self,
        segment: SegmentId,
        node: NodeId,
        up: FaultConfig,
        down: FaultConfig,
    ) -> Result<(), SimError> {
        let slot = self.nodes.get(node.0).ok_or(SimError::UnknownNode)?;
        let seg = self
            .segments
            .get(segment.0)
            .ok_or(SimError::UnknownSegment)?;
        if slot.port.is_some() {
            return Err(SimError::AlreadyAttached);
        }
        if seg.kind == SegmentKind::PointToPoint && seg.ports.len() >= 2 {
            return Err(SimError::SegmentFull);
        }
        let index = self.ports.len() as u64;
        // Streams 0..=2 of the master seed are left for other uses; each port takes two.
        let up_seed = derive_seed(self.seed, 16 + 2 * index);
        let down_seed = derive_seed(self.seed, 17 + 2 * index);
        self.ports.push(Port {
            node: node.0,
            segment: segment.0,
            up: FaultModel::new(up, Direction::Tx, up_seed),
            down: FaultModel::new(down, Direction::Rx, down_seed),
        });
        let port = self.ports.len() - 1;
        self.segments[segment.0].ports.push(port);
        self.nodes[node.0].port = Some(port);
        Ok(())
    }

    /// Joins `a` and `b` with a point-to-point link.
    ///
    /// # Errors
    /// Unknown nodes, a node already attached, or `a == b`.
    pub fn connect(
        &mut self,
        a: NodeId,
        b: NodeId,
        link: LinkConfig,
    ) -> Result<SegmentId, SimError> {
        for n in [a, b] {
            let slot = self.nodes.get(n.0).ok_or(SimError::UnknownNode)?;
            if slot.port.is_some() {
                return Err(SimError::AlreadyAttached);
            }
        }
        if a == b {
            return Err(SimError::AlreadyAttached);
        }
        let seg = self.add_segment(SegmentKind::PointToPoint);
        self.attach(seg, a, link.a_to_b, FaultConfig::none())?;
        self.attach(seg, b, link.b_to_a, FaultConfig::none())?;
        Ok(seg)
    }

    /// Replaces the faults on `node`'s port: `up` for what it sends, `down` for what it
    /// receives (frames already in flight keep their schedule).
    ///
    /// # Errors
    /// Unknown or unattached node.
    pub fn set_faults(
        &mut self,
        node: NodeId,
        up: FaultConfig,
        down: FaultConfig,
    ) -> Result<(), SimError> {
        let port = self.port_of(node)?;
        self.ports[port].up.set_config(up);
        self.ports[port].down.set_config(down);
        Ok(())
    }

    fn port_of(&self, node: NodeId) -> Result<usize, SimError> {
        self.nodes
            .get(node.0)
            .ok_or(SimError::UnknownNode)?
            .port
            .ok_or(SimError::UnknownSegment)
    }

    /// Fault counters of `node`'s port: `(up, down)` = (frames it sent, frames for it).
    pub fn link_counters(&self, node: NodeId) -> Option<(FaultCounters, FaultCounters)> {
        let p = &self.ports[self.port_of(node).ok()?];
        Some((p.up.counters(), p.down.counters()))
    }

    /// Records a fate log of at most `capacity` events per port direction.
    pub fn enable_fault_log(&mut self, capacity: usize) {
        for p in &mut self.ports {
            p.up.enable_event_log(capacity);
            p.down.enable_event_log(capacity);
        }
    }

    /// The next fate-log event of any port, with the node it belongs to (`Tx`: on its
    /// way out of the node, `Rx`: on its way in). Events come port by port.
    pub fn poll_fault_event(&mut self) -> Option<(NodeId, FaultEvent)> {
        for p in &mut self.ports {
            if let Some(e) = p.up.poll_event().or_else(|| p.down.poll_event()) {
                return Some((NodeId(p.node), e));
            }
        }
        None
    }

    /// Frames sent by nodes without a port (discarded).
    pub fn unattached_drops(&self) -> u64 {
        self.unattached_drops
    }

    /// Starts capturing every frame `node` sends and receives.
    pub fn enable_capture(&mut self, node: NodeId) {
        if let Some(slot) = self.nodes.get_mut(node.0) {
            slot.capture.get_or_insert_with(Capture::default);
        }
    }

    /// What `node` has captured so far.
    pub fn capture(&self, node: NodeId) -> Option<&Capture> {
        self.nodes.get(node.0)?.capture.as_ref()
    }

    /// Takes `node`'s capture, leaving an empty one recording.
    pub fn take_capture(&mut self, node: NodeId) -> Option<Capture> {
        self.nodes
            .get_mut(node.0)?
            .capture
            .as_mut()
            .map(core::mem::take)
    }

    #[track_caller]
    fn livelock(&self, what: fmt::Arguments<'_>) -> ! {
        panic!(
            "ustack::sim: livelock: {what} at t={now} after {steps} steps (seed {seed}; replay with {SEED_ENV}={seed})",
            now = self.now,
            steps = self.steps,
            seed = self.seed,
        );
    }

    /// Does everything due at the current instant until nothing is left: fires due
    /// timers, delivers due frames and drains every node's output.
    fn settle(&mut self) {
        let now = self.now;
        let mut rounds = 0u64;
        loop {
            let mut progress = false;
            // Timers first: a node's deadline may have come due by the clock jump.
            for n in 0..self.nodes.len() {
                let slot = &mut self.nodes[n];
                if slot.node.poll_timeout().is_some_and(|t| t <= now) {
                    slot.node.handle_timeout(now);
                    progress = true;
                }
            }
            // Segment → node.
            for p in 0..self.ports.len() {
                while let Some(frame) = self.ports[p].down.pop(now) {
                    let slot = &mut self.nodes[self.ports[p].node];
                    if let Some(c) = slot.capture.as_mut() {
                        c.records.push(CaptureRecord {
                            at: now,
                            direction: Direction::Rx,
                            data: frame.clone(),
                        });
                    }
                    slot.node.handle_frame(now, &frame);
                    self.pool.put(frame);
                    progress = true;
                }
            }
            // Node → segment.
            for n in 0..self.nodes.len() {
                let mut sent = 0u64;
                loop {
                    let slot = &mut self.nodes[n];
                    let Some(len) = slot.node.poll_transmit(now, &mut self.tx_buf) else {
                        break;
                    };
                    let frame = &self.tx_buf[..len.min(self.tx_buf.len())];
                    if let Some(c) = slot.capture.as_mut() {
                        c.records.push(CaptureRecord {
                            at: now,
                            direction: Direction::Tx,
                            data: frame.to_vec(),
                        });
                    }
                    match slot.port {
                        Some(p) => self.ports[p].up.push_copy(now, frame, &mut self.pool),
                        None => self.unattached_drops += 1,
                    }
                    progress = true;
                    sent += 1;
                    if sent > self.settle_cap {
                        self.livelock(format_args!("node {n} never stops transmitting"));
                    }
                }
            }
            // Port → segment → ports.
            for p in 0..self.ports.len() {
                while let Some(frame) = self.ports[p].up.pop(now) {
                    self.forward(p, frame);
                    progress = true;
                }
            }
            if !progress {
                return;
            }
            rounds += 1;
            if rounds > self.settle_cap {
                self.livelock(format_args!(
                    "{rounds} rounds of work without the clock advancing"
                ));
            }
        }
    }

    /// Hands a frame that left port `from` to the ports its segment forwards it to.
    fn forward(&mut self, from: usize, frame: Vec<u8>) {
        let now = self.now;
        let seg = &mut self.segments[self.ports[from].segment];
        let mut dests = core::mem::take(&mut self.dests);
        dests.clear();
        let flood = |dests: &mut Vec<usize>, seg: &Segment| {
            dests.extend(seg.ports.iter().copied().filter(|&p| p != from));
        };
        match seg.kind {
            SegmentKind::PointToPoint | SegmentKind::Hub => flood(&mut dests, seg),
            SegmentKind::Switch if frame.len() >= 12 => {
                let mut dst = [0u8; 6];
                let mut src = [0u8; 6];
                dst.copy_from_slice(&frame[0..6]);
                src.copy_from_slice(&frame[6..12]);
                if src[0] & 1 == 0 {
                    match seg.table.iter_mut().find(|(mac, _)| *mac == src) {
                        Some(entry) => entry.1 = from,
                        None => seg.table.push((src, from)),
                    }
                }
                let known = (dst[0] & 1 == 0)
                    .then(|| seg.table.iter().find(|(mac, _)| *mac == dst).map(|e| e.1))
                    .flatten();
                match known {
                    Some(p) if p != from => dests.push(p),
                    Some(_) => {} // Destination is on the sender's own port: filtered.
                    None => flood(&mut dests, seg),
                }
            }
            SegmentKind::Switch => flood(&mut dests, seg),
        }
        let mut frame = Some(frame);
        for (i, &d) in dests.iter().enumerate() {
            let buf = if i + 1 == dests.len() {
                frame.take()
            } else {
                frame.as_deref().map(|f| self.pool.copy_of(f))
            };
            if let Some(buf) = buf {
                self.ports[d].down.push(now, buf, &mut self.pool);
            }
        }
        if let Some(f) = frame {
            self.pool.put(f);
        }
        self.dests = dests;
    }

    /// The earliest instant anything is scheduled: a frame due or a node deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let nodes = self.nodes.iter().filter_map(|s| s.node.poll_timeout());
        let ports = self
            .ports
            .iter()
            .flat_map(|p| [p.up.poll_timeout(), p.down.poll_timeout()])
            .flatten();
        nodes.chain(ports).min()
    }

    /// Settles the present, then jumps the clock to the next event and settles there.
    /// Returns false, without moving the clock, when nothing is scheduled.
    ///
    /// # Panics
    /// On livelock at one instant (see the module docs).
    pub fn step(&mut self) -> bool {
        self.settle();
        let Some(next) = self.poll_timeout() else {
            return false;
        };
        self.steps += 1;
        self.now = self.now.max(next);
        self.settle();
        true
    }

    /// Steps until nothing is scheduled.
    ///
    /// # Panics
    /// After more than the step cap (a node with periodic timers is never idle: use
    /// [`run_until`](Self::run_until) or [`run_for`](Self::run_for) for those).
    pub fn run_until_idle(&mut self) {
        let mut steps = 0u64;
        while self.step() {
            steps += 1;
            if steps > self.step_cap {
                self.livelock(format_args!(
                    "not idle after {steps} steps (step cap; raise it with set_step_cap)"
                ));
            }
        }
    }

    /// Steps until `done` holds (checked after every settle) or the clock would pass
    /// `deadline`; the clock ends at the instant `done` held, or at `deadline`. Returns
    /// whether `done` held.
    ///
    /// # Panics
    /// After more than the step cap.
    pub fn run_until<F: FnMut(&mut SimNet) -> bool>(
        &mut self,
        deadline: Instant,
        mut done: F,
    ) -> bool {
        let mut steps = 0u64;
        loop {
            self.settle();
            if done(self) {
                return true;
            }
            match self.poll_timeout() {
                Some(next) if next <= deadline => {
                    self.now = self.now.max(next);
                    self.steps += 1;
                }
                _ => {
                    self.now = self.now.max(deadline);
                    self.settle();
                    return done(self);
                }
            }
            steps += 1;
            if steps > self.step_cap {
                self.livelock(format_args!(
                    "condition not met after {steps} steps (step cap; raise it with set_step_cap)"
                ));
            }
        }
    }

    /// Runs everything scheduled in the next `duration` and leaves the clock at its end.
    ///
    /// # Panics
    /// After more than the step cap.
    pub fn run_for(&mut self, duration: Duration) {
        let deadline = self.now + duration;
        self.run_until(deadline, |_| false);
    }
}
