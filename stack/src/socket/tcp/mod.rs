//! TCP (RFC 9293) with window scaling and timestamps (RFC 7323), SACK (RFC 2018,
//! RFC 6675), NewReno and CUBIC congestion control (RFC 5681, 6582, 9438), RFC 6298
//! retransmission timers and RFC 5961 blind-attack mitigations.
//!
//! The [`TcpLayer`] owns every TCP socket of one interface:
//! - sockets live in a [`Slab`] addressed by generation-checked [`TcpHandle`]s; each slot
//!   holds an `Item`: the layer's own bookkeeping (`Meta`: queue flags, timer entry, map
//!   and port memberships, listen queues) beside the `socket::Socket`, which only ever
//!   looks at itself (smoltcp's `socket_set::Item { meta, socket }`);
//! - arriving segments are demultiplexed by a 4-tuple map of connections, then a port
//!   map of listeners, then answered as a closed port would (RFC 9293 §3.10.7.1):
//!   `demux`;
//! - sockets with output pending sit in a FIFO *dirty queue* (each at most once), so
//!   [`TcpLayer::dispatch`] never scans all sockets;
//! - each socket's earliest deadline sits in a binary heap tagged with a generation
//!   (`timers`); ports are counted in `ports`; the BSD-like calls are in `api`.
//!
//! This file holds the table itself: the slab, the per-slot metadata, and `settle`,
//! which after every change to a socket brings the metadata, maps, queues and timers in
//! line with it.
//!
//! Invariants: every socket in `conns` has `meta.in_conns`, a 4-tuple and is not CLOSED
//! or LISTEN; every listener is in `listeners`; a socket freed from the slab is in
//! neither map, the dirty queue entries naming its slot are ignored (`meta.queued` is
//! false, or belongs to the slot's new socket), and its heap entries are stale.
//!
//! Events ([`TcpEvent`]) describe changes only; they are also logged with target
//! `ustack::tcp`, and the queue is bounded (the oldest are dropped and counted).
//!
//! # Driving the layer
//!
//! - Every arriving segment goes to [`TcpLayer::process`]; its return value (RST, ACK to
//!   an unacceptable segment, rate-limited challenge ACK) is sent as is. The ACK of a
//!   FIN that takes a connection into TIME-WAIT is not returned: `dispatch` sends it
//!   after the other segments pending then, so a batch of frames is answered with what
//!   a peer waits for first (a SYN,ACK, data) and that ACK last.
//! - After any input, timer or API call (`send`, `recv` opening the window, `connect`,
//!   `shutdown`, `close`, `abort`), call [`TcpLayer::dispatch`] until it returns false;
//!   [`TcpLayer::has_pending_output`] says whether there is anything to do.
//! - Call [`TcpLayer::handle_timeout`] when [`TcpLayer::poll_at`] is reached.
//! - Every call that needs the time takes the caller's [`TcpContext`]; the layer keeps
//!   no clock.
//! - Sockets are user-owned until `close`/`abort`; then the layer keeps the connection
//!   (FIN-WAIT, TIME-WAIT...) and frees it on reaching CLOSED. Connections accepted from
//!   a listener belong to it until `accept`.

mod api;
mod config;
pub mod congestion;
mod demux;
pub(crate) mod isn;
mod ports;
mod rack;
pub mod rate;
mod reclaim;
mod rtt;
mod sack;
mod socket;
mod syncookie;
#[cfg(test)]
mod tests;
mod time_wait;
mod timers;
mod types;

/// Errors of [`TcpLayer::close`] and [`TcpLayer::abort`]: the convention shared by every
/// socket layer.
pub use crate::socket::common::CloseError;
pub use config::{TcpConfig, TcpContext};
pub use congestion::{CongestionAlgorithm, CongestionControl};
pub use demux::closed_port_reply;
pub use std::net::Shutdown;
pub use types::{
    AcceptError, BindError, ConnectError, ListenError, OptionError, RecvError, SegmentAddrs,
    SendError, ShutdownError, TcpCounters, TcpError, TcpEvent, TcpHandle, TcpInfo, TcpSocketInfo,
    TcpState,
};

use self::isn::SipKey;
use self::ports::PortMap;
use self::socket::{Socket, SocketOptions};
use self::time_wait::TimeWaitTable;
use self::types::{ConnKey, EventQueue, PortUse};
use crate::storage::Slab;
use crate::time::Instant;
use crate::wire::{SeqNumber, TcpRepr};
use core::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

/// Listening state: bounded SYN and accept queues (children by handle).
#[derive(Debug, Default)]
struct Listener {
    backlog: usize,
    /// Half-open children, oldest first (evicted from the front under pressure).
    syn_queue: VecDeque<TcpHandle>,
    /// When this listener last answered a SYN with a cookie: only then are bare ACKs
    /// checked for one (Linux tcp_synq_no_recent_overflow).
    last_cookie: Option<Instant>,
    accept_queue: VecDeque<TcpHandle>,
}

/// The layer's bookkeeping for one socket. The socket never reads or writes it.
#[derive(Debug, Default)]
struct Meta {
    /// In the dirty queue.
    queued: bool,
    /// In the ready queue (see [`TcpLayer::poll_ready`]).
    ready_queued: bool,
    /// Tag of this socket's live entry in the timer heap.
    timer_gen: u64,
    /// The deadline of that entry; `None` when the socket has no live entry.
    timer_at: Option<Instant>,
    /// In `conns` under the socket's 4-tuple.
    in_conns: bool,
    /// The port this socket holds in the port table, whether exclusively, and in
    /// which halves of the port space (`common::port_halves`).
    port_claim: Option<(u16, bool, u8)>,
    /// The listener this connection came from, until accepted.
    parent: Option<TcpHandle>,
    /// In its parent's accept queue (the handshake completed).
    in_accept_queue: bool,
    /// The SYN and accept queues of a socket in LISTEN (boxed: most sockets are not
    /// listeners, and every slot pays for `Meta`).
    listener: Option<Box<Listener>>,
    /// In the reclaim queue (see `reclaim`).
    reclaim_queued: bool,
}

/// One slot of the layer's slab: its bookkeeping beside the socket.
#[derive(Debug)]
struct Item {
    meta: Meta,
    socket: Box<Socket>,
}

/// All TCP sockets of one interface, with their demultiplexing maps and timers.
#[derive(Debug)]
pub struct TcpLayer {
    config: TcpConfig,
    slab: Slab<Item>,
    /// 4-tuple → socket slot, or TIME-WAIT entry with `time_wait::TW_TAG` set.
    conns: HashMap<ConnKey, u32>,
    /// Connections in TIME-WAIT whose socket was freed (`time_wait`).
    time_wait: TimeWaitTable,
    /// The slot `demux` found last in `conns` (a hint, checked before use).
    last_conn: u32,
    /// Listeners by `common::half_key(port, half)`: a dual-stack listener is under
    /// both halves of its port.
    listeners: PortMap<u32, u32>,
    ports: PortMap<u16, PortUse>,
    dirty: VecDeque<u32>,
    /// User-owned sockets whose readiness may have changed, each at most once.
    ready: VecDeque<TcpHandle>,
    timers: BinaryHeap<Reverse<(Instant, u32, u64)>>,
    /// Scratch list of sockets whose timer is due, kept to avoid allocating per expiry.
    due: Vec<u32>,
    timer_seq: u64,
    /// The top of `timers` may be a stale entry (set whenever an entry goes stale,
    /// cleared by `tidy_timers`), so tidying is free while nothing changed.
    timers_stale: bool,
    events: EventQueue,
    pending_rsts: VecDeque<(SegmentAddrs, TcpRepr<'static>)>,
    /// ACKs of FINs that took connections into TIME-WAIT, which [`dispatch`](Self::dispatch)
    /// sends after every other pending segment (`Reply::TimeWaitAck`).
    last_acks: VecDeque<(SegmentAddrs, TcpRepr<'static>)>,
    /// Connections with empty buffers still holding storage, with a snapshot of their
    /// segment counters (`reclaim`).
    reclaim: VecDeque<(TcpHandle, u64)>,
    /// When the reclaim queue is looked at next.
    reclaim_at: Option<Instant>,
    /// Compact the tables when the live sockets drop to this many (`reclaim`).
    compact_at: usize,
    /// Freed sockets, stripped of their buffers, that the next `alloc`s renew instead
    /// of allocating (at most [`SPARE_SOCKETS`]; dropped by `compact`). Boxed on
    /// purpose: the box itself is what an `Item` takes back.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Socket>>,
    isn_key: SipKey,
    ts_key: SipKey,
    port_key: SipKey,
    /// The last RFC 6056 offset `pick_ephemeral` hashed for a connection, with the
    /// local address and the destination it is for (it depends on nothing else).
    port_offset: Option<(core::net::IpAddr, core::net::SocketAddr, u32)>,
    cookie_key: SipKey,
    port_counter: u32,
    challenge_window: Instant,
    challenge_count: u32,
    counters: TcpCounters,
    /// Test hook: every new connection uses this ISN and a zero timestamp offset.
    fixed_isn: Option<SeqNumber>,
    /// Largest TCP segment the link cuts for us (TSO), 0 without ([`set_tso`](Self::set_tso)).
    tso_max_len: usize,
    /// [`tso_max_len`](Self::set_tso6) for connections over IPv6.
    tso6_max_len: usize,
    /// Wire payload size of the last segment [`dispatch`](Self::dispatch) emitted when it
    /// was a super-segment, else 0.
    last_gso_size: u16,
}

const MAX_PENDING_RSTS: usize = 256;

/// Deferred TIME-WAIT ACKs held at most (`TcpLayer::last_acks`); past it they go at once.
const MAX_LAST_ACKS: usize = 256;

/// Freed sockets kept for the next ones (`TcpLayer::spare`): enough for a client or
/// server that opens about as many connections as it closes; few, as each holds a
/// socket's fixed size.
const SPARE_SOCKETS: usize = 2;

impl TcpLayer {
    /// A layer with no sockets; `seed` keys initial sequence numbers and ports.
    pub fn new(config: TcpConfig, seed: u64) -> TcpLayer {
        TcpLayer {
            events: EventQueue::new(config.event_queue_len),
            config,
            slab: Slab::new(),
            conns: HashMap::new(),
            time_wait: TimeWaitTable::default(),
            last_conn: u32::MAX,
            listeners: PortMap::default(),
            ports: PortMap::default(),
            dirty: VecDeque::new(),
            ready: VecDeque::new(),
            timers: BinaryHeap::new(),
            due: Vec::new(),
            timer_seq: 0,
            timers_stale: false,
            pending_rsts: VecDeque::new(),
            last_acks: VecDeque::new(),
            reclaim: VecDeque::new(),
            reclaim_at: None,
            compact_at: 0,
            spare: Vec::new(),
            isn_key: SipKey::from_seed(seed, 1),
            ts_key: SipKey::from_seed(seed, 2),
            port_key: SipKey::from_seed(seed, 3),
            port_offset: None,
            cookie_key: SipKey::from_seed(seed, 4),
            port_counter: 0,
            challenge_window: Instant::ZERO,
            challenge_count: 0,
            counters: TcpCounters::default(),
            fixed_isn: None,
            tso_max_len: 0,
            tso6_max_len: 0,
            last_gso_size: 0,
        }
    }

    /// Lets [`dispatch`](Self::dispatch) build segments of up to `max_len` bytes (TCP
    /// header included) that the link cuts into wire segments (TSO); 0 turns it off.
    /// The MSS stays the size of each wire segment.
    pub fn set_tso(&mut self, max_len: usize) {
        self.tso_max_len = max_len;
    }

    /// [`set_tso`](Self::set_tso) for connections over IPv6 (TSO6).
    pub fn set_tso6(&mut self, max_len: usize) {
        self.tso6_max_len = max_len;
    }

    /// Payload bytes per wire segment of the segment the last
    /// [`dispatch`](Self::dispatch) emitted, when it was a super-segment (more payload
    /// than one wire segment carries); `None` for an ordinary segment.
    pub fn last_gso_size(&self) -> Option<u16> {
        (self.last_gso_size > 0).then_some(self.last_gso_size)
    }

    /// The configuration.
    pub fn config(&self) -> &TcpConfig {
        &self.config
    }

    /// Layer counters.
    pub fn counters(&self) -> TcpCounters {
        let mut c = self.counters;
        c.events_dropped = self.events.dropped;
        c
    }

    /// Number of sockets: user-owned, orphaned and TIME-WAIT (compact entries included).
    pub fn socket_count(&self) -> usize {
        self.slab.len() + self.time_wait.len()
    }

    // ------------------------------------------------------------ slab

    fn item(&self, h: TcpHandle) -> Option<&Item> {
        self.slab.get(h.0)
    }

    fn item_mut(&mut self, h: TcpHandle) -> Option<&mut Item> {
        self.slab.get_mut(h.0)
    }

    /// A user-visible socket (not orphaned by close).
    fn user_item(&self, h: TcpHandle) -> Option<&Item> {
        self.item(h).filter(|it| !it.socket.user_closed)
    }

    fn user_item_mut(&mut self, h: TcpHandle) -> Option<&mut Item> {
        self.item_mut(h).filter(|it| !it.socket.user_closed)
    }

    /// The slot's item with the configuration and the event queue, borrowed apart.
    fn parts(&mut self, idx: u32) -> Option<(&mut Item, &TcpConfig, &mut EventQueue)> {
        let it = self.slab.get_at_mut(idx)?;
        Some((it, &self.config, &mut self.events))
    }

    /// A user-visible item with the configuration and the event queue.
    fn user_parts(&mut self, h: TcpHandle) -> Option<(&mut Item, &TcpConfig, &mut EventQueue)> {
        let it = self.slab.get_mut(h.0).filter(|it| !it.socket.user_closed)?;
        Some((it, &self.config, &mut self.events))
    }

    fn at(&mut self, idx: u32) -> Option<&mut Item> {
        self.slab.get_at_mut(idx)
    }

    fn alloc(&mut self, opts: SocketOptions) -> TcpHandle {
        let config = &self.config;
        let spare = self.spare.pop();
        let key = self.slab.insert_with(|key| Item {
            meta: Meta::default(),
            socket: match spare {
                Some(mut s) => {
                    s.renew(TcpHandle(key), opts, config);
                    s
                }
                None => Box::new(Socket::new(TcpHandle(key), opts, config)),
            },
        });
        self.compact_at = self.compact_at.max(self.socket_count() / 4);
        TcpHandle(key)
    }

    /// Removes a socket from every map and the slab.
    fn free_slot(&mut self, idx: u32) {
        let Some(key) = self.slab.key_at(idx) else {
            return;
        };
        let Some(Item { meta, mut socket }) = self.slab.remove(key) else {
            return;
        };
        self.timers_stale = true;
        if meta.ready_queued {
            // As UDP and raw: keeps the ready queue bounded by the open sockets for
            // callers that never drain it (the slot's next socket may queue again).
            self.ready.retain(|&h| h != TcpHandle(key));
        }
        if meta.in_conns {
            self.conns.remove(&ConnKey {
                local: socket.local,
                remote: socket.remote,
            });
        }
        if let Some((port, exclusive, halves)) = meta.port_claim {
            self.release_port(port, exclusive, halves);
        }
        if let Some(listener) = meta.listener {
            for half in crate::socket::common::each_half(3) {
                let key = crate::socket::common::half_key(socket.local.port(), half);
                if self.listeners.get(&key) == Some(&idx) {
                    self.listeners.remove(&key);
                }
            }
            // Unaccepted connections die with their listener (Linux sends RSTs).
            for child in listener
                .syn_queue
                .iter()
                .chain(listener.accept_queue.iter())
            {
                if let Some(c) = self.item_mut(*child) {
                    c.meta.parent = None;
                    c.socket.user_closed = true;
                }
                self.abort_handle(*child);
            }
        }
        if let Some(parent) = meta.parent {
            if let Some(l) = self.item_mut(parent).and_then(|p| p.meta.listener.as_mut()) {
                l.syn_queue.retain(|&c| c != socket.handle);
                l.accept_queue.retain(|&c| c != socket.handle);
            }
        }
        if self.spare.len() < SPARE_SOCKETS {
            socket.strip();
            self.spare.push(socket);
        }
        self.maybe_compact();
    }

    // ------------------------------------------------------------ bookkeeping

    fn mark_dirty(&mut self, idx: u32) {
        if let Some(it) = self.slab.get_at_mut(idx) {
            if !it.meta.queued && it.socket.may_want_dispatch() {
                it.meta.queued = true;
                self.dirty.push_back(idx);
            }
        }
    }

    /// Queues a user-owned socket for [`poll_ready`](Self::poll_ready).
    fn touch(&mut self, idx: u32) {
        if let Some(it) = self.slab.get_at_mut(idx) {
            // Connections still in a listen queue are not the user's yet.
            if !it.meta.ready_queued && !it.socket.user_closed && it.meta.parent.is_none() {
                it.meta.ready_queued = true;
                self.ready.push_back(it.socket.handle);
            }
        }
    }

    /// After any change to a socket: queue handling for listener children, freeing
    /// at CLOSED, timers, the dirty queue and buffer give-back. The common case is
    /// inlined into the callers (twice per segment); transitions take `settle_slow`.
    #[inline(always)]
    fn settle(&mut self, idx: u32, prev: TcpState, dirty: bool) {
        let Some(it) = self.slab.get_at_mut(idx) else {
            return;
        };
        let state = it.socket.state;
        if !(prev == TcpState::SynReceived
            || state == TcpState::Closed
            || state == TcpState::TimeWait)
        {
            // The common case, a segment or call on a live connection: no listener
            // queues, no freeing, and one slot lookup for the rest unless a timer or
            // an idle buffer needs the slower paths (this runs twice per segment).
            if dirty && !it.meta.queued && it.socket.may_want_dispatch() {
                it.meta.queued = true;
                self.dirty.push_back(idx);
            }
            let (timers, idle) = (it.socket.timers_changed, it.socket.has_idle_buffers());
            // Debug builds always look, for `reschedule`'s check that the entry is current.
            if timers || cfg!(debug_assertions) {
                self.reschedule(idx);
            }
            if idle {
                self.note_idle_buffers(idx);
            }
            return;
        }
        self.settle_slow(idx, prev, state, dirty);
    }

    /// `settle` for a connection leaving SYN-RECEIVED, in TIME-WAIT or CLOSED.
    #[inline(never)]
    fn settle_slow(&mut self, idx: u32, prev: TcpState, state: TcpState, dirty: bool) {
        if !self.settle_transition(idx, prev, state) {
            return;
        }
        if dirty {
            self.mark_dirty(idx);
        }
        self.reschedule(idx);
        self.note_idle_buffers(idx);
    }

    /// `settle` for a connection leaving SYN-RECEIVED (into its listener's accept
    /// queue), in TIME-WAIT (an orphan becomes a compact entry, `time_wait`) or reaching
    /// CLOSED (out of the 4-tuple map, freed if nobody will ask for it). Returns false
    /// when the slot was freed.
    fn settle_transition(&mut self, idx: u32, prev: TcpState, state: TcpState) -> bool {
        let Some(it) = self.at(idx) else {
            return false;
        };
        let handle = it.socket.handle;
        let parent = it.meta.parent;
        if prev == TcpState::SynReceived
            && !matches!(state, TcpState::SynReceived | TcpState::Closed)
            && !it.meta.in_accept_queue
        {
            if let Some(p) = parent {
                it.meta.in_accept_queue = true;
                if let Some(l) = self.item_mut(p).and_then(|p| p.meta.listener.as_mut()) {
                    l.syn_queue.retain(|&c| c != handle);
                    l.accept_queue.push_back(handle);
                }
                // The listener became acceptable.
                self.touch(p.index());
            }
        }
        if state == TcpState::TimeWait {
            return !self.enter_compact_time_wait(idx);
        }
        if state == TcpState::Closed {
            let Some(it) = self.at(idx) else {
                return false;
            };
            if it.meta.in_conns {
                it.meta.in_conns = false;
                let key = ConnKey {
                    local: it.socket.local,
                    remote: it.socket.remote,
                };
                self.conns.remove(&key);
            }
            let Some(it) = self.at(idx) else {
                return false;
            };
            let orphan =
                it.socket.user_closed || (it.meta.parent.is_some() && !it.meta.in_accept_queue);
            if orphan {
                self.free_slot(idx);
                return false;
            }
        }
        true
    }

    fn queue_rst(&mut self, addrs: SegmentAddrs, repr: TcpRepr<'static>) {
        if self.pending_rsts.len() < MAX_PENDING_RSTS {
            self.pending_rsts.push_back((addrs, repr));
        }
    }

    fn abort_handle(&mut self, h: TcpHandle) {
        let Some(it) = self.slab.get_mut(h.0) else {
            return;
        };
        let s = &mut it.socket;
        let idx = h.index();
        let prev = s.state;
        let synchronized = !matches!(
            prev,
            TcpState::Closed | TcpState::Listen | TcpState::SynSent | TcpState::TimeWait
        );
        let rst = synchronized.then(|| (s.addrs(), s.rst_segment()));
        s.user_closed = true;
        s.fail(&mut self.events, None);
        if let Some((addrs, r)) = rst {
            self.counters.resets_sent += 1;
            self.queue_rst(addrs, r);
        }
        if prev == TcpState::Listen || prev == TcpState::Closed {
            self.free_slot(idx);
        } else {
            self.settle(idx, prev, false);
        }
    }

    // ------------------------------------------------------------ interface contract

    /// Emits at most one pending segment, with its addresses, through `emit`; returns
    /// whether it did. The interface builds the segment's IPv4 header.
    pub fn dispatch(
        &mut self,
        cx: &TcpContext,
        emit: &mut dyn FnMut(SegmentAddrs, &TcpRepr<'_>),
    ) -> bool {
        self.last_gso_size = 0;
        if let Some((addrs, r)) = self.pending_rsts.pop_front() {
            emit(addrs, &r);
            self.counters.segments_out += 1;
            return true;
        }
        while let Some(idx) = self.dirty.pop_front() {
            let Some(it) = self.slab.get_at_mut(idx) else {
                continue;
            };
            if !it.meta.queued {
                continue;
            }
            it.meta.queued = false;
            let prev = it.socket.state;
            // TSO is offered for IPv4 only (the link's GSO type is TCPv4).
            it.socket.tso_max_len = if it.socket.remote.is_ipv4() {
                self.tso_max_len
            } else {
                self.tso6_max_len
            };
            let sent = it.socket.dispatch(cx, &mut self.events, emit);
            self.last_gso_size = core::mem::take(&mut it.socket.gso_size);
            if sent {
                self.counters.segments_out += 1;
                // Round robin: the socket may have more to send after the others.
                self.settle(idx, prev, true);
                self.tidy_timers();
                return true;
            }
            self.settle(idx, prev, false);
        }
        if let Some((addrs, r)) = self.last_acks.pop_front() {
            emit(addrs, &r);
            self.counters.segments_out += 1;
            return true;
        }
        self.tidy_timers();
        self.arm_reclaim(cx.now);
        false
    }

    /// True when [`dispatch`](Self::dispatch) may have something to send.
    pub fn has_pending_output(&self) -> bool {
        !self.pending_rsts.is_empty() || !self.dirty.is_empty() || !self.last_acks.is_empty()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<TcpEvent> {
        self.events.queue.pop_front()
    }

    /// The next user-owned socket whose readiness may have changed since it was last
    /// returned: a segment or timer touched it (data, ACK freeing send space, FIN,
    /// state change, error), or, for a listener, a connection became acceptable.
    ///
    /// An event loop services only these sockets instead of scanning all of them. A
    /// socket is queued at most once; a handle closed since is simply invalid (calls on
    /// it fail with `BadHandle`). Spurious entries are possible; missed ones are not,
    /// except for what happened to a connection before `accept` returned it: service a
    /// newly accepted connection once right away.
    pub fn poll_ready(&mut self) -> Option<TcpHandle> {
        while let Some(h) = self.ready.pop_front() {
            if let Some(it) = self.item_mut(h) {
                it.meta.ready_queued = false;
                if !it.socket.user_closed {
                    return Some(h);
                }
            }
        }
        None
    }

    // ------------------------------------------------------------ test hooks

    /// Test hook: fixes the ISN of every new connection and zeroes timestamp offsets.
    #[cfg(test)]
    pub(crate) fn set_fixed_isn(&mut self, isn: Option<SeqNumber>) {
        self.fixed_isn = isn;
    }

    /// Test hook: the socket behind a handle, orphaned or not.
    #[cfg(test)]
    pub(crate) fn socket_ref(&self, h: TcpHandle) -> Option<&Socket> {
        self.item(h).map(|it| &*it.socket)
    }

    /// Test hook: the handle of the connection with this 4-tuple.
    #[cfg(test)]
    pub(crate) fn conn_handle(
        &self,
        local: core::net::SocketAddr,
        remote: core::net::SocketAddr,
    ) -> Option<TcpHandle> {
        let idx = *self.conns.get(&ConnKey { local, remote })?;
        self.slab.get_at(idx).map(|it| it.socket.handle)
    }
}
