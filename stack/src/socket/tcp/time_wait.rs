//! Compact TIME-WAIT (as Linux's `tcp_timewait_sock`): a connection the user closed
//! that reaches TIME-WAIT gives up its full socket (buffers, timers, congestion and
//! loss-recovery state) and keeps only what RFC 9293 §3.10.7.4, RFC 6191 and RFC 7323
//! need for the rest of the 2*MSL wait, in a small table.
//!
//! What an entry does, as the full socket did in TIME-WAIT:
//! - a retransmitted FIN is acknowledged and restarts the 2*MSL timeout (§3.10.7.4
//!   eighth); an unacceptable segment gets a (rate-limited) duplicate ACK, PAWS
//!   included (RFC 7323 §5.3);
//! - a RST at RCV.NXT ends it (§3.10.7.4 second); a RST elsewhere in the window, a SYN
//!   in the window and an ACK outside RFC 5961 §5.2's range get a challenge ACK;
//! - a SYN with a newer timestamp (or, without timestamps, a greater sequence number)
//!   may reuse the 4-tuple (RFC 6191 §2; `demux`), the new ISN past the old SND.NXT;
//! - it expires 2*MSL after the last FIN it saw.
//!
//! Invariants: an entry's 4-tuple is in the layer's `conns` map with [`TW_TAG`] set on
//! its value (so a segment costs one lookup, whatever the connection's state), and it
//! holds the port claim its socket held until it expires. Deadlines are `now + 2*MSL`,
//! so they are pushed in order onto a FIFO; a restarted entry leaves a stale queue
//! entry behind (its deadline no longer matches), skipped when it reaches the front.
//! A socket the user still holds keeps its full state in TIME-WAIT: its handle must go
//! on answering calls (`recv` returning EOF, `info`).

use super::types::ConnKey;
use super::{
    CongestionAlgorithm, SegmentAddrs, TcpContext, TcpEvent, TcpHandle, TcpInfo, TcpLayer,
    TcpSocketInfo, TcpState,
};
use crate::storage::Slab;
use crate::time::{Duration, Instant};
use crate::wire::{SeqNumber, TcpFlags, TcpOptions, TcpRepr};
use core::net::SocketAddr;
use std::collections::VecDeque;

/// Set on a `conns` value that names a TIME-WAIT entry rather than a socket slot.
pub(super) const TW_TAG: u32 = 1 << 31;

/// RFC 7323 §5.5: PAWS gives up on a timestamp idle this long.
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);

/// What a connection in TIME-WAIT keeps.
#[derive(Debug, Clone)]
pub(super) struct TimeWait {
    /// The handle the connection had, for events and listings.
    pub(super) handle: TcpHandle,
    pub(super) local: SocketAddr,
    pub(super) remote: SocketAddr,
    pub(super) snd_nxt: SeqNumber,
    pub(super) rcv_nxt: SeqNumber,
    /// Receive window in bytes (the acceptability test).
    pub(super) rcv_wnd: u32,
    /// The window field of our ACKs (already scaled).
    pub(super) window_field: u16,
    /// RFC 5961 §5.2's MAX.SND.WND.
    pub(super) max_snd_wnd: u32,
    /// Timestamps negotiated: TS.Recent, its age and our offset (RFC 7323).
    pub(super) ts_ok: bool,
    pub(super) ts_recent: u32,
    pub(super) ts_recent_age: Instant,
    pub(super) ts_offset: u32,
    /// When we last answered a bare out-of-window segment.
    pub(super) last_oow_ack: Option<Instant>,
    /// 2*MSL after the last FIN.
    pub(super) deadline: Instant,
    /// The port claim the socket held, released on expiry.
    pub(super) port_claim: Option<(u16, bool, u8)>,
    pub(super) congestion: CongestionAlgorithm,
}

impl TimeWait {
    /// `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>` with our window and timestamps.
    fn ack(&self, now: Instant) -> TcpRepr<'static> {
        let mut options = TcpOptions::default();
        if self.ts_ok {
            let ts_now = (now.total_millis() as u32).wrapping_add(self.ts_offset);
            options.timestamp = Some((ts_now, self.ts_recent));
        }
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq_number: self.snd_nxt,
            ack_number: self.rcv_nxt,
            flags: TcpFlags::ACK,
            window_len: self.window_field,
            urgent_ptr: 0,
            options,
            payload: &[],
        }
    }

    /// A duplicate ACK for an unacceptable segment, at most one per
    /// `invalid_ack_ratelimit` for bare ones (as the full socket's `dupack_reply`).
    fn dupack(&mut self, now: Instant, ratelimit: Duration, seg: &TcpRepr<'_>) -> Verdict {
        if seg.segment_len() == 0 {
            if self.last_oow_ack.is_some_and(|t| now - t < ratelimit) {
                return Verdict::Nothing;
            }
            self.last_oow_ack = Some(now);
        }
        Verdict::Ack(self.ack(now))
    }

    /// RFC 6191 §2: may a SYN reopen this connection?
    pub(super) fn accepts_syn(&self, seg: &TcpRepr<'_>) -> bool {
        match (self.ts_ok, seg.options.timestamp) {
            (true, Some((tsval, _))) => (tsval.wrapping_sub(self.ts_recent) as i32) > 0,
            (true, None) => false,
            (false, _) => seg.seq_number > self.rcv_nxt,
        }
    }

    /// RFC 9293 §3.10.7.4 for a segment arriving in TIME-WAIT (a reusing SYN was taken
    /// out before).
    fn on_segment(
        &mut self,
        now: Instant,
        msl2: Duration,
        rl: Duration,
        seg: &TcpRepr<'_>,
    ) -> Verdict {
        // RFC 7323 §5.3: PAWS before the sequence number.
        if let (true, false, Some((tsval, _))) =
            (self.ts_ok, seg.flags.rst(), seg.options.timestamp)
        {
            if (tsval.wrapping_sub(self.ts_recent) as i32) < 0
                && now - self.ts_recent_age < PAWS_IDLE
            {
                return match self.dupack(now, rl, seg) {
                    Verdict::Ack(r) => Verdict::PawsAck(r),
                    _ => Verdict::Paws,
                };
            }
        }
        // First: the acceptability test.
        let seq = seg.seq_number;
        let seg_len = seg.segment_len();
        let wnd = self.rcv_wnd as usize;
        let in_window = |s: SeqNumber| s >= self.rcv_nxt && s < self.rcv_nxt + wnd;
        let acceptable = match (seg_len, wnd) {
            (0, 0) => seq == self.rcv_nxt,
            (0, _) => in_window(seq),
            (_, 0) => false,
            (_, _) => in_window(seq) || in_window(seq + (seg_len - 1)),
        };
        if !acceptable {
            if seg.flags.rst() {
                return Verdict::Nothing;
            }
            if seg.flags.fin() && seq + seg_len == self.rcv_nxt {
                // Eighth: a retransmitted FIN is acknowledged and restarts 2*MSL.
                self.deadline = now + msl2;
            }
            return self.dupack(now, rl, seg);
        }
        // RFC 7323 §4.3 (2): TS.Recent from a segment covering Last.ACK.sent (RCV.NXT).
        if let (true, Some((tsval, _))) = (self.ts_ok, seg.options.timestamp) {
            if seq <= self.rcv_nxt && (tsval.wrapping_sub(self.ts_recent) as i32) >= 0 {
                self.ts_recent = tsval;
                self.ts_recent_age = now;
            }
        }
        // Second: RST. RFC 5961 §3.2: only at exactly RCV.NXT, else a challenge ACK.
        if seg.flags.rst() {
            if seq != self.rcv_nxt {
                return Verdict::Challenge(self.ack(now));
            }
            return Verdict::Close;
        }
        // Fourth: SYN in the window (RFC 5961 §4.2).
        if seg.flags.syn() {
            return Verdict::Challenge(self.ack(now));
        }
        // Fifth: ACK, within RFC 5961 §5.2's range; SND.UNA is SND.NXT here.
        if !seg.flags.ack() {
            return Verdict::Nothing;
        }
        let ack = seg.ack_number;
        if ack > self.snd_nxt || ack < self.snd_nxt - self.max_snd_wnd.max(1) as usize {
            return Verdict::Challenge(self.ack(now));
        }
        // Seventh: text is ignored. Eighth: a FIN (in order or not) is acknowledged; an
        // in-order one takes a sequence number and restarts 2*MSL.
        if seg.flags.fin() {
            if seq + seg.payload.len() == self.rcv_nxt {
                self.rcv_nxt += 1;
                self.deadline = now + msl2;
            }
            return Verdict::Ack(self.ack(now));
        }
        Verdict::Nothing
    }

    /// A TCP_INFO-like snapshot: what is left of the connection.
    fn info(&self) -> TcpInfo {
        TcpInfo {
            state: TcpState::TimeWait,
            congestion: self.congestion,
            cwnd: 0,
            ssthresh: 0,
            srtt: None,
            rttvar: Duration::ZERO,
            rto: Duration::ZERO,
            backoff: 0,
            retransmits: 0,
            snd_mss: 0,
            rcv_mss: 0,
            advmss: 0,
            pmtu: 0,
            snd_wnd: 0,
            rcv_wnd: self.rcv_wnd as usize,
            snd_wscale: 0,
            rcv_wscale: 0,
            window_scaling: false,
            timestamps: self.ts_ok,
            sack: false,
            unacked: 0,
            sacked: 0,
            in_recovery: false,
            rack_lost: 0,
            tlp_probes: 0,
            recovery_probes: 0,
            undos: 0,
            spurious_rtos: 0,
            dsacks_in: 0,
            dsacks_out: 0,
            bytes_sent: 0,
            bytes_acked: 0,
            bytes_received: 0,
            bytes_retrans: 0,
            total_retrans: 0,
            segs_out: 0,
            segs_in: 0,
            snd_una: self.snd_nxt,
            snd_nxt: self.snd_nxt,
            rcv_nxt: self.rcv_nxt,
            send_queue: 0,
            recv_queue: 0,
        }
    }
}

/// What to do with a segment that reached a TIME-WAIT entry.
enum Verdict {
    Nothing,
    Ack(TcpRepr<'static>),
    Challenge(TcpRepr<'static>),
    Paws,
    PawsAck(TcpRepr<'static>),
    Close,
}

/// The TIME-WAIT entries of one layer, with their expiry FIFO.
#[derive(Debug, Default)]
pub(super) struct TimeWaitTable {
    entries: Slab<TimeWait>,
    /// `(deadline, slot)` in deadline order; stale when the slot's deadline moved on.
    expiry: VecDeque<(Instant, u32)>,
}

impl TimeWaitTable {
    /// Entries held.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Pops stale entries (a restarted or removed entry's) so the front is live.
    fn tidy(&mut self) {
        while let Some(&(t, slot)) = self.expiry.front() {
            if self.entries.get_at(slot).is_some_and(|tw| tw.deadline == t) {
                break;
            }
            self.expiry.pop_front();
        }
    }

    /// Slots of the table, free ones included.
    pub(super) fn slots(&self) -> usize {
        self.entries.slots()
    }

    /// The earliest deadline of a live entry.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.expiry.front().map(|&(t, _)| t)
    }

    pub(super) fn get(&self, idx: u32) -> Option<&TimeWait> {
        self.entries.get_at(idx)
    }

    fn remove(&mut self, idx: u32) -> Option<TimeWait> {
        let key = self.entries.key_at(idx)?;
        self.entries.remove(key)
    }

    /// Every entry, for listings.
    pub(super) fn iter(&self) -> impl Iterator<Item = &TimeWait> + '_ {
        self.entries.iter().map(|(_, tw)| tw)
    }

    /// Gives back spare memory after a burst of connections.
    pub(super) fn shrink(&mut self) {
        self.entries.shrink();
        if self.expiry.capacity() > 2 * self.expiry.len() + 16 {
            self.expiry.shrink_to_fit();
        }
    }
}

impl TcpLayer {
    /// Moves the orphaned connection in slot `idx`, just settled in TIME-WAIT, into the
    /// TIME-WAIT table and frees its socket. Returns false (nothing done) if it does
    /// not qualify.
    pub(super) fn enter_compact_time_wait(&mut self, idx: u32) -> bool {
        let Some(it) = self.slab.get_at_mut(idx) else {
            return false;
        };
        if !it.socket.user_closed || it.meta.parent.is_some() || !it.meta.in_conns {
            return false;
        }
        let Some(deadline) = it.socket.close_deadline() else {
            return false;
        };
        let mut tw = it.socket.time_wait_entry(deadline);
        tw.port_claim = it.meta.port_claim.take();
        it.meta.in_conns = false;
        let key = ConnKey {
            local: tw.local,
            remote: tw.remote,
        };
        let slot = self.time_wait.entries.insert(tw).index();
        self.time_wait.expiry.push_back((deadline, slot));
        // Replaces the socket's slot in place: one hash, and the tuple stays taken.
        self.conns.insert(key, slot | TW_TAG);
        if self.last_conn == idx {
            self.last_conn = u32::MAX;
        }
        self.counters.time_wait_compacted += 1;
        self.free_slot(idx);
        true
    }

    /// A segment for the TIME-WAIT entry in `slot` (untagged).
    pub(super) fn process_time_wait(
        &mut self,
        cx: &TcpContext,
        key: ConnKey,
        slot: u32,
        seg: &TcpRepr<'_>,
    ) -> Option<(SegmentAddrs, TcpRepr<'static>)> {
        let msl2 = self.config.msl.saturating_mul(2);
        let rl = self.config.invalid_ack_ratelimit;
        let tw = self.time_wait.entries.get_at_mut(slot)?;
        let before = tw.deadline;
        let verdict = tw.on_segment(cx.now, msl2, rl, seg);
        if tw.deadline != before {
            let at = tw.deadline;
            self.time_wait.expiry.push_back((at, slot));
            self.time_wait.tidy();
        }
        match verdict {
            Verdict::Nothing => None,
            Verdict::Ack(r) => Some((key.reply_addrs(), r)),
            Verdict::Paws => {
                self.counters.paws_rejected += 1;
                None
            }
            Verdict::PawsAck(r) => {
                self.counters.paws_rejected += 1;
                Some((key.reply_addrs(), r))
            }
            Verdict::Challenge(r) => self.allow_challenge(cx.now).then(|| (key.reply_addrs(), r)),
            Verdict::Close => {
                self.drop_time_wait(slot);
                None
            }
        }
    }

    /// Drops a deferred ACK of the FIN that ended the connection `key` names
    /// (`last_acks`) when a SYN reopens that 4-tuple in the same batch: the peer has
    /// left LAST-ACK, and the old connection's ACK must not follow the new SYN,ACK.
    pub(super) fn forget_last_ack(&mut self, key: &ConnKey) {
        self.last_acks.retain(|(a, r)| {
            !(a.src == key.local.ip()
                && a.dst == key.remote.ip()
                && r.src_port == key.local.port()
                && r.dst_port == key.remote.port())
        });
    }

    /// Removes the entry in `slot` from the table, `conns` and the port table, and
    /// reports TIME-WAIT → CLOSED as the full socket would have.
    pub(super) fn drop_time_wait(&mut self, slot: u32) {
        let Some(tw) = self.time_wait.remove(slot) else {
            return;
        };
        let key = ConnKey {
            local: tw.local,
            remote: tw.remote,
        };
        // One hash: the entry is always its tuple's (a reusing SYN drops it before the
        // new connection takes the tuple); put back whatever else would be there.
        if let Some(v) = self.conns.remove(&key) {
            if v != slot | TW_TAG {
                self.conns.insert(key, v);
            }
        }
        if let Some((port, exclusive, halves)) = tw.port_claim {
            self.release_port(port, exclusive, halves);
        }
        self.events.push(TcpEvent::StateChanged {
            handle: tw.handle,
            local: tw.local,
            remote: tw.remote,
            from: TcpState::TimeWait,
            to: TcpState::Closed,
        });
        self.time_wait.tidy();
    }

    /// Expires the TIME-WAIT entries due at `now`.
    pub(super) fn expire_time_wait(&mut self, now: Instant) {
        while let Some(&(t, slot)) = self.time_wait.expiry.front() {
            if t > now {
                break;
            }
            self.time_wait.expiry.pop_front();
            if self.time_wait.get(slot).is_some_and(|tw| tw.deadline == t) {
                self.drop_time_wait(slot);
            }
        }
        self.time_wait.tidy();
        self.maybe_compact();
    }

    /// The TIME-WAIT entries as diagnostic snapshots ([`TcpLayer::sockets`]).
    pub(super) fn time_wait_infos(&self) -> impl Iterator<Item = TcpSocketInfo> + '_ {
        self.time_wait.iter().map(|tw| TcpSocketInfo {
            handle: tw.handle,
            local: tw.local,
            remote: tw.remote,
            orphaned: true,
            info: tw.info(),
        })
    }
}
