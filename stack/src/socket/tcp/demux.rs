//! Segment arrival at the layer: validate addresses, find the socket by 4-tuple, then by
//! listening port, else answer as a closed port (RFC 9293 §3.10.7.1); create children of
//! listeners (§3.10.7.2); deliver ICMP errors to the connection they quote.
//!
//! Invariants: `conns` maps a 4-tuple (from our point of view) to the slot of the one
//! socket that has it and `Meta::in_conns`; `listeners` maps a port to its listener's
//! slot. Replies leave with the connection's addresses; the interface builds the IP
//! header. Challenge ACKs (RFC 5961 §7) are rate-limited per layer here.

use super::socket::{self, Reply, Socket};
use super::types::ConnKey;
use super::{isn, Listener, SegmentAddrs, TcpContext, TcpLayer, TcpState};
use crate::socket::common::IcmpError;
use crate::time::{Duration, Instant};
use crate::wire::{IpProtocol, SeqNumber, TcpFlags, TcpOptions, TcpRepr};
use core::net::SocketAddrV4;

impl TcpLayer {
    /// Handles a segment addressed to us; returns a segment to send at once (RST, ACK,
    /// challenge ACK), if any, with its addresses; the interface builds its IPv4 header.
    pub fn process(
        &mut self,
        cx: &TcpContext,
        addrs: SegmentAddrs,
        seg: &TcpRepr<'_>,
    ) -> Option<(SegmentAddrs, TcpRepr<'static>)> {
        self.counters.segments_in += 1;
        let reply = self.process_inner(cx, addrs, seg);
        self.tidy_timers();
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
        if seg.src_port == 0
            || seg.dst_port == 0
            || src.is_broadcast()
            || src.is_multicast()
            || src.is_unspecified()
            || addrs.dst.is_broadcast()
            || addrs.dst.is_multicast()
        {
            self.counters.bad_segments += 1;
            return None;
        }
        let key = ConnKey {
            local: SocketAddrV4::new(addrs.dst, seg.dst_port),
            remote: SocketAddrV4::new(src, seg.src_port),
        };
        let mut iss_hint = None;
        if let Some(idx) = self.find_conn(&key) {
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
                if let Some((it, _, ev)) = self.parts(idx) {
                    it.socket.fail(ev, None);
                }
                // An orphan is freed; a socket still held by its owner stays CLOSED.
                self.touch(idx);
                self.settle(idx, TcpState::TimeWait, false);
            } else {
                return self.process_conn(cx, key, idx, seg);
            }
        }
        if let Some(&lidx) = self.listeners.get(&seg.dst_port) {
            let l = self.slab.get_at(lidx)?;
            let laddr = *l.socket.local.ip();
            if laddr.is_unspecified() || laddr == addrs.dst {
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
        self.last_conn = idx;
        Some(idx)
    }

    /// A segment for a connection (RFC 9293 §3.10.7.3-4), then the bookkeeping it needs.
    fn process_conn(
        &mut self,
        cx: &TcpContext,
        key: ConnKey,
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
        let reply = s.process(cx, cfg, ev, seg);
        self.counters.paws_rejected += s.paws_rejected - paws_before;
        self.touch(idx);
        self.settle(idx, prev, true);
        match reply? {
            Reply::Segment(r) => Some((key.reply_addrs(), r)),
            Reply::Challenge(r) => self.allow_challenge(cx.now).then(|| (key.reply_addrs(), r)),
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
        if seg.flags.ack() {
            return Some((key.reply_addrs(), socket::rst_for(seg)));
        }
        if !seg.flags.syn() {
            return None;
        }
        let (opts, lhandle) = {
            let l = self.slab.get_at(lidx)?;
            let q: &Listener = l.meta.listener.as_ref()?;
            // A full SYN or accept queue drops the SYN, like Linux without syncookies.
            if q.syn_queue.len() >= q.backlog || q.accept_queue.len() >= q.backlog {
                self.counters.listen_overflows += 1;
                log::debug!(target: "ustack::tcp", "listen queue of port {} full: SYN dropped", key.local.port());
                return None;
            }
            (l.socket.opts.clone(), l.socket.handle)
        };
        let h = self.alloc(opts);
        let iss = iss_hint.unwrap_or_else(|| self.isn_for(key, cx.now));
        let ts_offset = self.ts_offset_for(key);
        let idx = h.index();
        {
            let (it, cfg, ev) = self.parts(idx)?;
            it.meta.parent = Some(lhandle);
            it.meta.port_claim = Some((key.local.port(), false));
            it.meta.in_conns = true;
            let c = &mut it.socket;
            c.local = key.local;
            c.remote = key.remote;
            c.ts_offset = ts_offset;
            c.accept_syn(cx, cfg, ev, seg, iss);
        }
        self.claim_port(key.local.port(), false);
        self.conns.insert(key, idx);
        if let Some(q) = self.at(lidx).and_then(|l| l.meta.listener.as_mut()) {
            q.syn_queue.push(h);
        }
        self.settle(idx, TcpState::Listen, true);
        None
    }

    /// Delivers an ICMP error quoting one of our segments (RFC 1122 §4.2.3.9).
    pub fn handle_icmp_error(&mut self, _cx: &TcpContext, err: &IcmpError) {
        if err.protocol() != IpProtocol::TCP {
            return;
        }
        let key = ConnKey {
            local: SocketAddrV4::new(err.quoted.src_addr, err.src_port),
            remote: SocketAddrV4::new(err.quoted.dst_addr, err.dst_port),
        };
        let Some(&idx) = self.conns.get(&key) else {
            self.counters.icmp_unmatched += 1;
            return;
        };
        let Some((it, _, ev)) = self.parts(idx) else {
            return;
        };
        let prev = it.socket.state;
        it.socket.handle_icmp(ev, err);
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
    fn allow_challenge(&mut self, now: Instant) -> bool {
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
