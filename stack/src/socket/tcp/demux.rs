//! Segment arrival at the layer: validate addresses, find the socket by 4-tuple, then by
//! listening port, else answer as a closed port (RFC 9293 §3.10.7.1); create children of
//! listeners (§3.10.7.2); deliver ICMP errors to the connection they quote.
//!
//! Invariants: `conns` maps a 4-tuple (from our point of view) to the slot of the one
//! socket that has it and `Meta::in_conns`; `listeners` maps a port to its listener's
//! slot. Replies leave with the connection's addresses; the interface builds the IP
//! header. Challenge ACKs (RFC 5961 §7) are rate-limited per layer here.

use super::socket::{self, Reply, Socket};
use super::time_wait::TW_TAG;
use super::types::ConnKey;
use super::{
    isn, syncookie, Listener, SegmentAddrs, TcpContext, TcpLayer, TcpState, MAX_LAST_ACKS,
};
use crate::socket::common::{half_key, half_of, is_bad_unicast, socket_addr, IcmpError};
use crate::time::{Duration, Instant};
use crate::wire::{IpProtocol, SeqNumber, TcpFlags, TcpOptions, TcpRepr};
use core::net::{IpAddr, SocketAddr};

impl TcpLayer {
    /// Handles a segment addressed to us; returns a segment to send at once (RST, ACK,
    /// challenge ACK), if any, with its addresses; the interface builds its IP header.
    /// The ACK of a FIN entering TIME-WAIT is left to [`dispatch`](Self::dispatch).
    /// `addrs` are of one family and never IPv4-mapped.
    pub fn process(
        &mut self,
        cx: &TcpContext,
        addrs: SegmentAddrs,
        seg: &TcpRepr<'_>,
    ) -> Option<(SegmentAddrs, TcpRepr<'static>)> {
        self.counters.segments_in += 1;
        let reply = self.process_inner(cx, addrs, seg);
        self.tidy_timers();
        self.arm_reclaim(cx.now);
        if let Some((_, r)) = &reply {
            self.counters.segments_out += 1;
            if r.flags.rst() {
                self.counters.resets_sent += 1;
            }
        }
        reply
    }

    fn process_inner(
        &mut self,
        cx: &TcpContext,
        addrs: SegmentAddrs,
        seg: &TcpRepr<'_>,
    ) -> Option<(SegmentAddrs, TcpRepr<'static>)> {
        let src = addrs.src;
        let dst_bad = match addrs.dst {
            IpAddr::V4(d) => d.is_broadcast() || d.is_multicast(),
            IpAddr::V6(d) => d.is_multicast(),
        };
        if seg.src_port == 0
            || seg.dst_port == 0
            || is_bad_unicast(src)
            || dst_bad
            || src.is_ipv4() != addrs.dst.is_ipv4()
        {
            self.counters.bad_segments += 1;
            return None;
        }
        // The connection found last, compared field by field before any 4-tuple is
        // built (a bulk transfer's segments are all its); IPv4 only, where this is
        // exactly `find_conn`'s comparison. TIME-WAIT takes the path below.
        let last = self.last_conn;
        let hit = self.slab.get_at(last).is_some_and(|it| {
            let s = &it.socket;
            let (SocketAddr::V4(l), SocketAddr::V4(r), IpAddr::V4(dst), IpAddr::V4(src)) =
                (s.local, s.remote, addrs.dst, src)
            else {
                return false;
            };
            it.meta.in_conns
                && s.state != TcpState::TimeWait
                && l.port() == seg.dst_port
                && r.port() == seg.src_port
                && *l.ip() == dst
                && *r.ip() == src
        });
        if hit {
            return self.process_conn(cx, last, seg);
        }
        let key = ConnKey {
            local: socket_addr(addrs.dst, seg.dst_port),
            remote: socket_addr(src, seg.src_port),
        };
        let mut iss_hint = None;
        if let Some(idx) = self.find_conn(&key) {
            if idx & TW_TAG != 0 {
                let slot = idx & !TW_TAG;
                let tw = self.time_wait.get(slot)?;
                let reopens = seg.flags.syn() && !seg.flags.ack() && !seg.flags.rst();
                if !(reopens && tw.accepts_syn(seg)) {
                    return self.process_time_wait(cx, key, slot, seg);
                }
                // Per RFC 6191 §2, as below for a full socket.
                iss_hint = Some(tw.snd_nxt + 65_537);
                self.counters.time_wait_reused += 1;
                self.drop_time_wait(slot);
                self.forget_last_ack(&key);
                return self.reopen_on_listener(cx, key, addrs, seg, iss_hint);
            }
            let it = self.slab.get_at(idx)?;
            let s = &it.socket;
            if s.state == TcpState::TimeWait
                && seg.flags.syn()
                && !seg.flags.ack()
                && !seg.flags.rst()
                && time_wait_accepts_syn(s, seg)
            {
                // Per RFC 6191 §2: a SYN with a newer timestamp (or, without
                // timestamps, a greater sequence number) may reopen a TIME-WAIT
                // connection. Linux starts the new ISN past the old SND.NXT.
                iss_hint = Some(s.snd_max + 65_537);
                self.counters.time_wait_reused += 1;
                self.forget_last_ack(&key);
                if let Some((it, _, ev)) = self.parts(idx) {
                    it.socket.fail(ev, None);
                }
                // An orphan is freed; a socket still held by its owner stays CLOSED.
                self.touch(idx);
                self.settle(idx, TcpState::TimeWait, false);
            } else {
                return self.process_conn(cx, idx, seg);
            }
        }
        self.reopen_on_listener(cx, key, addrs, seg, iss_hint)
    }

    /// A segment no connection took: to the listener of its port, else answered as a
    /// closed port would.
    fn reopen_on_listener(
        &mut self,
        cx: &TcpContext,
        key: ConnKey,
        addrs: SegmentAddrs,
        seg: &TcpRepr<'_>,
        iss_hint: Option<SeqNumber>,
    ) -> Option<(SegmentAddrs, TcpRepr<'static>)> {
        if let Some(&lidx) = self
            .listeners
            .get(&half_key(seg.dst_port, half_of(addrs.dst)))
        {
            let l = self.slab.get_at(lidx)?;
            if l.socket.accepts_local(addrs.dst) {
                return self.process_listen(cx, key, seg, lidx, iss_hint);
            }
        }
        self.counters.no_socket += 1;
        closed_port_reply(addrs, seg)
    }

    /// The slot of the connection with this 4-tuple. The slot found last is tried
    /// first, which spares hashing the 4-tuple for a run of segments of one
    /// connection (a bulk transfer); it is checked against the slot's own 4-tuple and
    /// `in_conns`, which only the socket holding that 4-tuple in `conns` can pass.
    fn find_conn(&mut self, key: &ConnKey) -> Option<u32> {
        let last = self.last_conn;
        let hit = self.slab.get_at(last).is_some_and(|it| {
            it.meta.in_conns && it.socket.local == key.local && it.socket.remote == key.remote
        });
        if hit {
            return Some(last);
        }
        let idx = *self.conns.get(key)?;
        if idx & TW_TAG == 0 {
            self.last_conn = idx;
        }
        Some(idx)
    }

    /// A segment for a connection (RFC 9293 §3.10.7.3-4), then the bookkeeping it needs.
    fn process_conn(
        &mut self,
        cx: &TcpContext,
        idx: u32,
        seg: &TcpRepr<'_>,
    ) -> Option<(SegmentAddrs, TcpRepr<'static>)> {
        let it = self.slab.get_at(idx)?;
        if it.socket.state == TcpState::SynReceived && seg.flags.ack() && !seg.flags.rst() {
            if let Some(p) = it.meta.parent {
                let full = self
                    .item(p)
                    .and_then(|p| p.meta.listener.as_ref())
                    .is_some_and(|l| l.accept_queue.len() >= l.backlog);
                if full {
                    // Linux drops the handshake's final ACK when the accept queue is
                    // full; the SYN,ACK is retransmitted later.
                    self.counters.accept_queue_full += 1;
                    return None;
                }
            }
        }
        let (it, cfg, ev) = self.parts(idx)?;
        let s = &mut it.socket;
        let prev = s.state;
        let paws_before = s.paws_rejected;
        let ooo_before = s.ooo_dropped;
        let reply = s.process(cx, cfg, ev, seg);
        // The socket's own TTL and TOS: a reply is one of its segments (Linux sends
        // the ACKs of a connection with the socket's IP_TTL and IP_TOS). Taken now, as
        // `settle` may free the socket, and only for a reply (most segments have none).
        let reply = reply.map(|r| (r, s.addrs()));
        let (paws, ooo) = (s.paws_rejected - paws_before, s.ooo_dropped - ooo_before);
        self.counters.paws_rejected += paws;
        self.counters.ooo_dropped += ooo;
        self.touch(idx);
        self.settle(idx, prev, true);
        let (reply, addrs) = reply?;
        match reply {
            Reply::Segment(r) => Some((addrs, r)),
            Reply::Challenge(r) => self.allow_challenge(cx.now).then_some((addrs, r)),
            Reply::TimeWaitAck(r) if self.last_acks.len() < MAX_LAST_ACKS => {
                self.last_acks.push_back((addrs, r));
                None
            }
            // With the queue full it goes at once rather than be lost.
            Reply::TimeWaitAck(r) => Some((addrs, r)),
        }
    }

    /// RFC 9293 §3.10.7.2: a segment for a LISTEN socket.
    fn process_listen(
        &mut self,
        cx: &TcpContext,
        key: ConnKey,
        seg: &TcpRepr<'_>,
        lidx: u32,
        iss_hint: Option<SeqNumber>,
    ) -> Option<(SegmentAddrs, TcpRepr<'static>)> {
        // "First, check for a RST: an incoming RST should be ignored."
        if seg.flags.rst() {
            return None;
        }
        // "Second, check for an ACK: any acknowledgment is bad ... <SEQ=SEG.ACK><CTL=RST>"
        // unless it returns a SYN cookie (RFC 4987 §3.6).
        if seg.flags.ack() {
            if !seg.flags.syn() {
                if let Some(reply) = self.cookie_ack(cx, key, seg, lidx) {
                    return reply;
                }
            }
            return Some((key.reply_addrs(), socket::rst_for(seg)));
        }
        if !seg.flags.syn() {
            return None;
        }
        let (opts, lhandle) = {
            let l = self.slab.get_at(lidx)?;
            let q: &Listener = l.meta.listener.as_ref()?;
            if q.accept_queue.len() >= q.backlog {
                // Nobody accepts: a cookie would only make a connection to drop.
                self.counters.listen_overflows += 1;
                log::debug!(target: "ustack::tcp", "accept queue of port {} full: SYN dropped", key.local.port());
                return None;
            }
            if q.syn_queue.len() >= q.backlog && !self.evict_stale_syn_recv(lidx) {
                if self.config.syncookies {
                    return self.cookie_synack(cx, key, seg, lidx);
                }
                self.counters.listen_overflows += 1;
                log::debug!(target: "ustack::tcp", "SYN queue of port {} full: SYN dropped", key.local.port());
                return None;
            }
            let l = self.slab.get_at(lidx)?;
            (l.socket.opts.clone(), l.socket.handle)
        };
        let h = self.alloc(opts);
        let iss = iss_hint.unwrap_or_else(|| self.isn_for(key, cx.now));
        let idx = self.new_child(cx, key, lhandle, h, seg, iss)?;
        if let Some(q) = self.at(lidx).and_then(|l| l.meta.listener.as_mut()) {
            q.syn_queue.push_back(h);
        }
        self.settle(idx, TcpState::Listen, true);
        None
    }

    /// Sets up `h` as a child of `lhandle` in SYN-RECEIVED for the SYN `syn`, and enters
    /// it in the connection map; returns its slot.
    fn new_child(
        &mut self,
        cx: &TcpContext,
        key: ConnKey,
        lhandle: super::TcpHandle,
        h: super::TcpHandle,
        syn: &TcpRepr<'_>,
        iss: SeqNumber,
    ) -> Option<u32> {
        let ts_offset = self.ts_offset_for(key);
        let idx = h.index();
        {
            let (it, cfg, ev) = self.parts(idx)?;
            it.meta.parent = Some(lhandle);
            it.meta.port_claim = Some((key.local.port(), false, half_of(key.local.ip())));
            it.meta.in_conns = true;
            let c = &mut it.socket;
            c.local = key.local;
            c.remote = key.remote;
            c.ts_offset = ts_offset;
            c.accept_syn(cx, cfg, ev, syn, iss);
        }
        self.claim_port(key.local.port(), false, half_of(key.local.ip()));
        self.conns.insert(key, idx);
        Some(idx)
    }

    /// Under pressure, fewer SYN,ACK retries: evicts the oldest SYN-RECEIVED child of a
    /// full SYN queue once it has retransmitted `synack_retries_under_pressure` times.
    /// Returns whether a slot was freed.
    fn evict_stale_syn_recv(&mut self, lidx: u32) -> bool {
        let Some(oldest) = self
            .slab
            .get_at(lidx)
            .and_then(|l| l.meta.listener.as_ref())
            .and_then(|q| q.syn_queue.front().copied())
        else {
            return false;
        };
        let stale = self.item(oldest).is_none_or(|c| {
            c.socket.state != TcpState::SynReceived
                || c.socket.info().retransmits >= self.config.synack_retries_under_pressure
        });
        if !stale {
            return false;
        }
        if let Some(q) = self.at(lidx).and_then(|l| l.meta.listener.as_mut()) {
            q.syn_queue.pop_front();
        }
        if let Some(c) = self.slab.get_mut(oldest.0) {
            // Silently: a RST to a spoofed address would only add to the flood.
            c.meta.parent = None;
            c.socket.user_closed = true;
            let prev = c.socket.state;
            c.socket.fail(&mut self.events, None);
            self.counters.syn_recv_evicted += 1;
            log::debug!(target: "ustack::tcp", "SYN queue full: evicted the oldest half-open connection");
            self.settle(oldest.index(), prev, false);
        }
        true
    }

    /// RFC 4987 §3.6: answers a SYN to a listener with a full SYN queue by a SYN,ACK
    /// whose ISN is a cookie, keeping no state.
    fn cookie_synack(
        &mut self,
        cx: &TcpContext,
        key: ConnKey,
        seg: &TcpRepr<'_>,
        lidx: u32,
    ) -> Option<(SegmentAddrs, TcpRepr<'static>)> {
        let l = self.slab.get_at(lidx)?;
        let rx_len = l.socket.opts.rx_buffer_len;
        // The listener's TTL and TOS, as a SYN,ACK from its SYN queue has them (Linux
        // sends both kinds from the listening socket).
        let addrs = SegmentAddrs {
            hop_limit: l.socket.opts.hop_limit,
            tclass: l.socket.opts.tclass,
            ..key.reply_addrs()
        };
        let cfg = &self.config;
        let peer_mss = seg
            .options
            .mss
            .unwrap_or(socket::default_mss(key.remote.ip()) as u16);
        let mss_index = syncookie::mss_index(syncookie::mss_table(key.local), peer_mss);
        let count = syncookie::count(cx.now);
        let iss = syncookie::encode(
            &self.cookie_key,
            key.local,
            key.remote,
            seg.seq_number.0,
            count,
            mss_index,
        );
        let mut options = TcpOptions {
            mss: Some(
                socket::our_mss(cx.mtu_for(key.remote.ip()), key.remote.ip()).min(65_535) as u16,
            ),
            ..TcpOptions::default()
        };
        // Options beyond the MSS need the timestamp to come back (module docs).
        if let (true, Some((tsval, _))) = (cfg.timestamps, seg.options.timestamp) {
            let ws = (cfg.window_scaling && seg.options.window_scale.is_some())
                .then(|| seg.options.window_scale.unwrap_or(0));
            let sack = cfg.sack && seg.options.sack_permitted;
            let ts_now = (cx.now.total_millis() as u32).wrapping_add(self.ts_offset_for(key));
            let ours = syncookie::ts_encode(
                ts_now,
                syncookie::CookieOptions {
                    window_scale: ws,
                    sack_permitted: sack,
                },
            );
            options.timestamp = Some((ours, tsval));
            options.sack_permitted = sack;
            if ws.is_some() {
                options.window_scale = Some(socket::wscale_for(l.socket.opts.rx_scale_len()));
            }
        }
        let reply = TcpRepr {
            src_port: seg.dst_port,
            dst_port: seg.src_port,
            seq_number: SeqNumber(iss),
            ack_number: seg.seq_number + 1,
            flags: TcpFlags::SYN | TcpFlags::ACK,
            // Per RFC 7323 §2.2: the window field of a SYN is not scaled.
            window_len: rx_len.min(65_535) as u16,
            urgent_ptr: 0,
            options,
            payload: &[],
        };
        if let Some(q) = self.at(lidx).and_then(|l| l.meta.listener.as_mut()) {
            q.last_cookie = Some(cx.now);
        }
        self.counters.syncookies_sent += 1;
        log::trace!(target: "ustack::tcp", "SYN queue of port {} full: SYN cookie to {}", key.local.port(), key.remote);
        Some((addrs, reply))
    }

    /// A bare ACK to a listener: if it returns a valid SYN cookie, makes the connection
    /// (into the accept queue) and processes the ACK on it. `None` when cookies are not
    /// in play and the caller answers as RFC 9293 says; `Some(reply)` otherwise.
    fn cookie_ack(
        &mut self,
        cx: &TcpContext,
        key: ConnKey,
        seg: &TcpRepr<'_>,
        lidx: u32,
    ) -> Option<Option<(SegmentAddrs, TcpRepr<'static>)>> {
        let l = self.slab.get_at(lidx)?;
        let q = l.meta.listener.as_ref()?;
        let recent = q.last_cookie.is_some_and(|t| {
            cx.now - t < Duration::from_secs(2 * syncookie::COOKIE_PERIOD_SECS as u64)
        });
        if !self.config.syncookies || !recent {
            return None;
        }
        let peer_seq = seg.seq_number - 1;
        let cookie = seg.ack_number - 1;
        let Some(mss_index) = syncookie::decode(
            &self.cookie_key,
            key.local,
            key.remote,
            peer_seq.0,
            cookie.0,
            syncookie::count(cx.now),
        ) else {
            self.counters.syncookies_invalid += 1;
            log::debug!(target: "ustack::tcp", "invalid SYN cookie from {}", key.remote);
            return None;
        };
        if q.accept_queue.len() >= q.backlog {
            self.counters.accept_queue_full += 1;
            return Some(None);
        }
        let (opts, lhandle) = (l.socket.opts.clone(), l.socket.handle);
        // The SYN as the cookie remembers it: what the SYN,ACK agreed to.
        let mut syn_opts = TcpOptions {
            mss: Some(syncookie::mss_table(key.local)[mss_index as usize]),
            ..TcpOptions::default()
        };
        if let (true, Some((tsval, tsecr))) = (self.config.timestamps, seg.options.timestamp) {
            let o = syncookie::ts_decode(tsecr);
            syn_opts.timestamp = Some((tsval, 0));
            syn_opts.window_scale = o.window_scale;
            syn_opts.sack_permitted = o.sack_permitted;
        }
        let syn = TcpRepr {
            seq_number: peer_seq,
            ack_number: SeqNumber(0),
            flags: TcpFlags::SYN,
            options: syn_opts,
            payload: &[],
            ..*seg
        };
        self.counters.syncookies_valid += 1;
        let h = self.alloc(opts);
        let idx = self.new_child(cx, key, lhandle, h, &syn, cookie)?;
        if let Some((it, _, _)) = self.parts(idx) {
            it.socket.synack_sent_as_cookie();
        }
        if let Some(q) = self.at(lidx).and_then(|l| l.meta.listener.as_mut()) {
            q.syn_queue.push_back(h);
        }
        let reply = self.process_conn(cx, idx, seg);
        if self
            .item(h)
            .is_some_and(|c| c.socket.state == TcpState::SynReceived)
        {
            // The ACK did not complete the handshake (it cannot, short of a bug): no
            // half-open state may outlive a cookie.
            self.abort_handle(h);
        }
        Some(reply)
    }

    /// Delivers an ICMP error quoting one of our segments (RFC 1122 §4.2.3.9).
    pub fn handle_icmp_error(&mut self, _cx: &TcpContext, err: &IcmpError) {
        if err.protocol() != IpProtocol::TCP {
            return;
        }
        let key = ConnKey {
            local: err.local(),
            remote: err.remote(),
        };
        let Some(&idx) = self.conns.get(&key) else {
            self.counters.icmp_unmatched += 1;
            return;
        };
        if idx & TW_TAG != 0 {
            // Per RFC 5927 §4.1, as the TIME-WAIT socket did: nothing is in flight.
            self.counters.icmp_rejected += 1;
            return;
        }
        let Some((it, _, ev)) = self.parts(idx) else {
            return;
        };
        let prev = it.socket.state;
        if !it.socket.handle_icmp(ev, err) {
            // Per RFC 5927 §4.1: an error quoting nothing in flight is forged or stale.
            self.counters.icmp_rejected += 1;
        }
        self.touch(idx);
        self.settle(idx, prev, true);
        self.tidy_timers();
    }

    /// The ISN of a new connection (RFC 6528), unless a test fixed it.
    pub(super) fn isn_for(&self, key: ConnKey, now: Instant) -> SeqNumber {
        self.fixed_isn
            .unwrap_or_else(|| SeqNumber(isn::isn(&self.isn_key, key.local, key.remote, now)))
    }

    /// The per-connection timestamp offset (RFC 7323 §5.4), zero when a test fixed ISNs.
    pub(super) fn ts_offset_for(&self, key: ConnKey) -> u32 {
        if self.fixed_isn.is_some() {
            0
        } else {
            self.ts_key.tuple(key.local, key.remote) as u32
        }
    }

    /// RFC 5961 §7: at most `challenge_ack_limit` challenge ACKs per second.
    pub(super) fn allow_challenge(&mut self, now: Instant) -> bool {
        if now - self.challenge_window >= Duration::from_secs(1) {
            self.challenge_window = now;
            self.challenge_count = 0;
        }
        if self.challenge_count < self.config.challenge_ack_limit {
            self.challenge_count += 1;
            self.counters.challenge_acks += 1;
            true
        } else {
            self.counters.challenge_acks_limited += 1;
            false
        }
    }
}

/// RFC 6191 §2: may a SYN reopen this TIME-WAIT connection?
fn time_wait_accepts_syn(s: &Socket, seg: &TcpRepr<'_>) -> bool {
    match (s.ts_ok_pub(), seg.options.timestamp) {
        (true, Some((tsval, _))) => (tsval.wrapping_sub(s.ts_recent_pub()) as i32) > 0,
        (true, None) => false,
        (false, _) => seg.seq_number > s.rcv_nxt,
    }
}

/// The reply of a CLOSED port (RFC 9293 §3.10.7.1): nothing to a RST; to a segment with
/// ACK, `<SEQ=SEG.ACK><CTL=RST>`; otherwise `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`.
/// `addrs` are the arriving segment's; the reply's are returned with it.
pub fn closed_port_reply(
    addrs: SegmentAddrs,
    seg: &TcpRepr<'_>,
) -> Option<(SegmentAddrs, TcpRepr<'static>)> {
    if seg.flags.rst() {
        return None;
    }
    let (seq_number, ack_number, flags) = if seg.flags.ack() {
        (seg.ack_number, SeqNumber(0), TcpFlags::RST)
    } else {
        (
            SeqNumber(0),
            seg.seq_number + seg.segment_len(),
            TcpFlags::RST | TcpFlags::ACK,
        )
    };
    let reply = TcpRepr {
        src_port: seg.dst_port,
        dst_port: seg.src_port,
        seq_number,
        ack_number,
        flags,
        window_len: 0,
        urgent_ptr: 0,
        options: TcpOptions::default(),
        payload: &[],
    };
    Some((addrs.reversed(), reply))
}
