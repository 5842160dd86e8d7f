//! Output of one connection: what to send next and how it looks. `dispatch` emits at
//! most one segment per call: a SYN or SYN,ACK, a probe, a data/FIN segment chosen by
//! `plan_segment` (retransmission first, then new data within the windows, sender SWS
//! avoidance and Nagle), or a bare ACK / window update. Receive-window advertisement
//! (RFC 1122 §4.2.3.3 receiver SWS avoidance, RFC 7323 scaling) and SACK blocks
//! (RFC 2018 §4) are built here too.
//!
//! Invariants: every segment carries ACK except a SYN and a RST in SYN-SENT; the
//! advertised right edge `rcv_adv` never moves left; `snd_max` only grows.

use super::{Probe, Socket, CORK_CEILING, DUPTHRESH, TS_OPTION_LEN};
use crate::socket::tcp::config::TcpContext;
use crate::socket::tcp::types::{EventQueue, SegmentAddrs, TcpEvent, TcpState};
use crate::time::{Duration, Instant};
use crate::wire::{SeqNumber, TcpFlags, TcpOptions, TcpRepr};

/// One planned data/FIN segment.
#[derive(Clone, Copy, Debug)]
struct Plan {
    seq: SeqNumber,
    len: usize,
    fin: bool,
    rtx: bool,
    /// Selective retransmission (does not move SND.NXT).
    hole: bool,
    /// Payload bytes one wire segment carries with this segment's options; a plan
    /// longer than this is a super-segment for the link to cut (TSO).
    wire_len: usize,
}

impl Socket {
    /// Emits at most one segment; returns whether it did.
    pub(crate) fn dispatch(
        &mut self,
        cx: &TcpContext,
        ev: &mut EventQueue,
        emit: &mut dyn FnMut(SegmentAddrs, &TcpRepr<'_>),
    ) -> bool {
        let now = cx.now;
        match self.state {
            TcpState::Closed | TcpState::Listen => return false,
            TcpState::SynSent | TcpState::SynReceived => {
                if self.snd_nxt == self.iss {
                    self.send_syn(now, emit);
                    return true;
                }
                if !(self.state == TcpState::SynReceived && self.ack_now) {
                    return false;
                }
            }
            _ => {}
        }
        if let Some(probe) = self.probe.take() {
            if self.may_send_data() || probe == Probe::Keepalive {
                // Linux's probe: an old sequence number elicits an ACK with the window.
                let mut repr = self.bare(self.snd_una - 1, TcpFlags::ACK);
                repr.window_len = self.ack_fields(now, &mut repr.options);
                if probe == Probe::ZeroWindow {
                    ev.push(TcpEvent::ZeroWindowProbe {
                        handle: self.handle,
                        seq: repr.seq_number,
                    });
                }
                emit(self.addrs(), &repr);
                self.stats.segs_out += 1;
                return true;
            }
        }
        // Pacing (`pacing.rs`) holds data back, never ACKs.
        if !self.pacing_blocks(now) {
            if let Some(plan) = self.plan_segment() {
                self.send_segment(now, plan, ev, emit);
                return true;
            }
            // A probe that found nothing to send (the window closed meanwhile) is dropped.
            self.tlp_pending = false;
            self.maybe_arm_persist(now);
        }
        if self.ack_now || self.window_update {
            let update = self.window_update && !self.ack_now;
            let repr = self.ack_reply(now);
            if update {
                ev.push(TcpEvent::WindowUpdateSent {
                    handle: self.handle,
                    window: usize::from(repr.window_len) << self.rcv_wscale,
                });
            }
            emit(self.addrs(), &repr);
            return true;
        }
        false
    }

    fn send_syn(&mut self, now: Instant, emit: &mut dyn FnMut(SegmentAddrs, &TcpRepr<'_>)) {
        let synack = self.state == TcpState::SynReceived;
        let mut flags = TcpFlags::SYN;
        if synack {
            flags |= TcpFlags::ACK;
        }
        let mut repr = self.bare(self.iss, flags);
        let (ws, ts, sack) = if synack {
            (self.ws_ok, self.ts_ok, self.sack_ok)
        } else {
            (self.offer_ws, self.offer_ts, self.offer_sack)
        };
        repr.options.mss = Some(self.our_mss.min(65_535) as u16);
        if ws {
            repr.options.window_scale = Some(self.rcv_wscale);
        }
        repr.options.sack_permitted = sack;
        if ts {
            let ecr = if synack { self.ts_recent } else { 0 };
            repr.options.timestamp = Some((self.ts_now(now), ecr));
        }
        // Per RFC 7323 §2.2: the window field of a SYN is not scaled.
        repr.window_len = self.rx.window().min(65_535) as u16;
        if synack {
            self.rcv_adv = self.rcv_nxt + usize::from(repr.window_len);
            self.last_ack_sent = self.rcv_nxt;
            self.ack_now = false;
        }
        emit(self.addrs(), &repr);
        self.stats.segs_out += 1;
        self.snd_nxt = self.iss + 1;
        if self.snd_max < self.snd_nxt {
            self.snd_max = self.snd_nxt;
            self.rtt_sample = Some((self.snd_nxt, now));
        }
        if self.rto_at.is_none() {
            let at = Some(now + self.rtt.rto());
            self.timers_changed |= self.rto_at != at;
            self.rto_at = at;
        }
    }

    fn send_segment(
        &mut self,
        now: Instant,
        plan: Plan,
        ev: &mut EventQueue,
        emit: &mut dyn FnMut(SegmentAddrs, &TcpRepr<'_>),
    ) {
        let mut repr = TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq_number: plan.seq,
            ack_number: self.rcv_nxt,
            flags: TcpFlags::ACK,
            window_len: 0,
            urgent_ptr: 0,
            options: TcpOptions::default(),
            payload: &[],
        };
        // A data segment carries what an ACK does (timestamps, SACK blocks), and
        // ack_fields records the ACK as sent.
        repr.window_len = self.ack_fields(now, &mut repr.options);
        let offset = (plan.seq - self.snd_una).max(0) as usize;
        let len = plan.len;
        let mut payload = self.tx.get_allocated(offset, len);
        if payload.len() < len && payload.len() > plan.wire_len {
            // The ring wrapped inside a super-segment: send whole wire segments now and
            // the rest next time, never a runt in mid-stream (as `plan_segment` does).
            payload = &payload[..payload.len() - payload.len() % plan.wire_len];
        }
        let sent = payload.len();
        let fin = plan.fin && sent == len;
        if sent > 0 && plan.seq + sent == self.snd_buf_end {
            repr.flags |= TcpFlags::PSH;
        }
        if fin {
            repr.flags |= TcpFlags::FIN;
        }
        repr.payload = payload;
        emit(self.addrs(), &repr);

        if sent > plan.wire_len {
            self.gso_size = plan.wire_len.min(usize::from(u16::MAX)) as u16;
        }
        let end = plan.seq + sent + usize::from(fin);
        self.stats.segs_out += 1;
        self.pace_after_send(now, sent + usize::from(fin));
        if self.sack_ok {
            // RFC 8985 §6.1: every transmission's time, per segment.
            self.txlog.on_transmit(plan.seq, end, now);
            self.prr_on_send(sent + usize::from(fin));
            if plan.rtx {
                if let Some(u) = self.undo.as_mut() {
                    u.retrans += sent.div_ceil(plan.wire_len.max(1)).max(1) as i64;
                }
            }
        }
        if plan.hole {
            self.high_rxt = self.high_rxt.max(end);
        } else {
            self.snd_nxt = end;
        }
        if plan.rtx {
            self.stats.bytes_retrans += sent as u64;
            self.stats.total_retrans += 1;
            self.rtt_sample = None;
            ev.push(TcpEvent::Retransmit {
                handle: self.handle,
                seq: plan.seq,
                len: sent,
            });
        } else {
            self.stats.bytes_sent += sent as u64;
            if self.rtt_sample.is_none() {
                self.rtt_sample = Some((end, now));
            }
        }
        if end > self.snd_max {
            self.snd_max = end;
        }
        // A full wire segment (the bulk case) is told apart without the division.
        let short = sent != plan.wire_len && (sent == 0 || sent % plan.wire_len.max(1) != 0);
        if !plan.rtx && short {
            // Linux's tcp_minshall_update: a new-data segment shorter than its MSS
            // (or whose last wire segment is).
            self.snd_sml = end;
        }
        self.tlp_sent(plan.rtx);
        self.note_cwnd_use();
        if self.rto_at.is_none() && self.snd_max > self.snd_una {
            let at = Some(now + self.rtt.rto());
            self.timers_changed |= self.rto_at != at;
            self.rto_at = at;
        }
        if !plan.rtx {
            self.arm_tlp_after_send(now);
        }
    }

    fn plan_segment(&mut self) -> Option<Plan> {
        if !self.may_send_data() {
            return None;
        }
        let opts_len = self.data_options_len();
        let max_len = self.max_payload(opts_len);
        if let Some(seq) = self.rtx_next.take() {
            if seq >= self.snd_una && seq < self.snd_max {
                // Fast retransmit: one segment, not running into SACKed data.
                let end = self
                    .scoreboard
                    .next_lost_hole(seq, self.snd_una, self.send_mss())
                    .filter(|h| h.0 == seq)
                    .map_or(self.snd_max, |h| h.1);
                let plan = self.plan_at(seq, max_len, end, true);
                if plan.len > 0 || plan.fin {
                    return Some(plan);
                }
            }
        }
        let cwnd = self.cc.cwnd();
        let mut budget = usize::MAX;
        // With SACK, in fast recovery, after a timeout, or with segments RACK deems
        // lost, sending is bounded by pipe (RFC 6675 §5 (C); cwnd is PRR's during fast
        // recovery, RFC 6937).
        let pipe_mode = self.sack_ok
            && (self.recovery.is_some()
                || self.rto_recover.is_some()
                || self.txlog.lost_bytes() != 0);
        if pipe_mode {
            let pipe = self.pipe();
            if pipe >= cwnd {
                return None;
            }
            // Whole segments: a budget short of one still sends one (Linux counts
            // cwnd and pipe in packets).
            budget = (cwnd - pipe).div_ceil(max_len) * max_len;
            // RFC 5682 §3.1 step 2 (b): after the first ACK following a timeout,
            // F-RTO sends new data rather than retransmissions.
            let frto_new = self.frto == 2
                && self.snd_buf_end > self.snd_max
                && self.snd_una + self.snd_wnd > self.snd_max;
            if !frto_new {
                if let Some((s, e)) = self.txlog.first_lost() {
                    let plan = self.plan_at(s, max_len, e, true);
                    if plan.len > 0 || plan.fin {
                        return Some(plan);
                    }
                }
            }
        }
        let avail = (self.snd_buf_end - self.snd_nxt).max(0) as usize;
        // Per RFC 3042 (Limited Transmit): each of the first two duplicate ACKs lets one
        // more new segment out, beyond cwnd, so a small window still produces the
        // duplicate ACKs (or SACKs) that trigger fast retransmit instead of an RTO.
        // (The MSS is looked up only with duplicate ACKs counted: not per segment.)
        let limited =
            if self.recovery.is_none() && self.snd_nxt == self.snd_max && self.dupacks != 0 {
                self.dupacks.min(DUPTHRESH - 1) as usize * self.send_mss()
            } else {
                0
            };
        let win_end = if (pipe_mode && self.snd_nxt >= self.snd_max) || self.tlp_pending {
            // RFC 6675 §5 (C): during SACK recovery cwnd bounds pipe (`budget` above),
            // not SND.NXT - SND.UNA; new data is bounded only by the peer's window. With
            // SND.UNA + cwnd here, a halved cwnd under a full flight let nothing new out,
            // so no further SACKs came and every recovery with a second loss ended in
            // an RTO. While resending below SND.MAX (after a path MTU drop) pipe does
            // not see those bytes, so the cwnd bound stays.
            self.snd_una + self.snd_wnd
        } else {
            self.snd_una + self.snd_wnd.min(cwnd + limited)
        };
        let can = ((win_end - self.snd_nxt).max(0) as usize).min(budget);
        let mut len = avail.min(can).min(self.burst_len(max_len, opts_len));
        if self.tlp_pending {
            // RFC 8985 §7.3: the probe is one segment of new data, outside cwnd.
            len = len.min(max_len);
        }
        if len > max_len && len < avail {
            // A super-segment is cut into whole wire segments plus what remains queued
            // at the end; never leave a runt wire segment in mid-stream (the sender
            // SWS avoidance below would not have sent it alone).
            len -= len % max_len;
        }
        let rtx = self.snd_nxt < self.snd_max;
        let fin = self.fin_seq == Some(self.snd_nxt + len);
        if len == 0 && !fin {
            return None;
        }
        if !rtx && len < max_len && !fin && !self.force_send && !self.tlp_pending {
            // TCP_CORK, or MSG_MORE on the last send (Linux tcp_nagle_check with
            // TCP_NAGLE_CORK): a partial segment waits for more data, the FIN, an
            // uncork, or the cork ceiling (the persist timer, `maybe_arm_persist`).
            if self.opts.cork || self.more {
                return None;
            }
            // RFC 1122 §4.2.3.4 sender SWS avoidance: send a partial segment only when it
            // holds all queued data or at least half the largest window seen...
            if len < avail && len < self.max_snd_wnd / 2 {
                return None;
            }
            // ...and RFC 896 (Nagle) as Linux applies it, Minshall's variant
            // (tcp_minshall_check): not while a segment smaller than the MSS sent
            // earlier is unacknowledged. Full-size segments in flight do not hold a
            // small tail back, so the tail of a write, or of what recovery left, goes
            // out and its ACK (or SACK) keeps loss detection going.
            if !self.opts.nodelay
                && self.snd_max > self.snd_una
                && self.snd_sml > self.snd_una
                && self.snd_sml <= self.snd_nxt
            {
                return None;
            }
        }
        self.force_send = false;
        Some(Plan {
            seq: self.snd_nxt,
            len,
            fin,
            rtx,
            hole: false,
            wire_len: max_len,
        })
    }

    /// Most payload one segment may carry: one wire segment (`wire_len`), or with TSO
    /// as many whole wire segments as fit the link's super-segment bound.
    fn burst_len(&self, wire_len: usize, opts_len: usize) -> usize {
        let header = crate::wire::TCP_HEADER_LEN + opts_len;
        let room = self.tso_max_len.saturating_sub(header);
        if room <= wire_len {
            return wire_len;
        }
        room - room % wire_len
    }

    /// A segment of up to `max_len` bytes starting at `seq` (retransmission).
    fn plan_at(&self, seq: SeqNumber, max_len: usize, hole_end: SeqNumber, hole: bool) -> Plan {
        let data_end = self.snd_buf_end.min(self.snd_max).min(hole_end);
        let len = ((data_end - seq).max(0) as usize).min(max_len);
        let fin = self
            .fin_seq
            .is_some_and(|f| seq + len == f && self.snd_max > f && hole_end > f);
        Plan {
            seq,
            len,
            fin,
            rtx: true,
            hole,
            wire_len: max_len,
        }
    }

    pub(super) fn may_send_data(&self) -> bool {
        matches!(
            self.state,
            TcpState::Established
                | TcpState::CloseWait
                | TcpState::FinWait1
                | TcpState::Closing
                | TcpState::LastAck
        )
    }

    /// Most payload bytes a segment with `opts_len` option bytes may carry.
    fn max_payload(&self, opts_len: usize) -> usize {
        let base = self.peer_mss.min(
            self.pmtu
                .saturating_sub(super::header_overhead(self.remote.ip())),
        );
        base.saturating_sub(opts_len).max(1)
    }

    /// Option bytes of the next data segment: what [`ack_fields`](Self::ack_fields)
    /// will put in it, without building it.
    fn data_options_len(&self) -> usize {
        let ts = if self.ts_ok { TS_OPTION_LEN } else { 0 };
        if !self.sack_ok || (!self.out_of_order() && self.dsack.is_none()) {
            return ts;
        }
        let o = TcpOptions {
            timestamp: self.ts_ok.then_some((0, 0)),
            sack_ranges: self.sack_blocks(),
            ..TcpOptions::default()
        };
        o.buffer_len()
    }

    fn maybe_arm_persist(&mut self, now: Instant) {
        let unsent = self.snd_buf_end > self.snd_nxt;
        if self.may_send_data()
            && unsent
            && self.snd_max == self.snd_una
            && self.rto_at.is_none()
            && self.persist_at.is_none()
        {
            // RFC 9293 §3.8.6.1: probe with exponential backoff, capped like Linux's
            // TCP_RTO_MAX. Data held by TCP_CORK or MSG_MORE in an open window goes at
            // the cork ceiling instead (tcp(7): "a 200 millisecond ceiling").
            let t = if self.snd_wnd > 0 && (self.opts.cork || self.more) {
                CORK_CEILING
            } else {
                self.rtt
                    .rto()
                    .saturating_mul(1 << self.persist_backoff.min(16))
                    .min(Duration::from_secs(120))
            };
            let at = Some(now + t);
            self.timers_changed |= self.persist_at != at;
            self.persist_at = at;
        }
    }

    /// The receive window we may announce: free buffer space, with receiver-side SWS
    /// avoidance (RFC 1122 §4.2.3.3: move the right edge only by min(RCV.BUFF/2, MSS)).
    pub(super) fn window_to_advertise(&self) -> usize {
        let max = 65_535usize << self.rcv_wscale;
        let free = self.rx.window().min(max);
        let promised = self.rcv_adv - self.rcv_nxt;
        let promised = if promised > 0 { promised as usize } else { 0 };
        let threshold = (self.rx.capacity() / 2).min(self.our_mss);
        if free > promised && free - promised < threshold {
            promised
        } else {
            free
        }
    }

    /// Window field value for a non-SYN segment; records the advertised edge.
    fn take_window(&mut self) -> u16 {
        let wnd = self.window_to_advertise();
        let mut field = (wnd >> self.rcv_wscale).min(65_535);
        let promised = (self.rcv_adv - self.rcv_nxt).max(0) as usize;
        if field << self.rcv_wscale < promised {
            // The edge already offered is rarely a multiple of the scale: rounding down
            // would move it left (RFC 9293 §3.8.6 says not to shrink the window), so
            // round up, as Linux's tcp_select_window aligns the current window; but
            // only into free buffer space, since bytes sent into a window the buffer
            // cannot hold are dropped and must be resent (Linux can overcommit its
            // memory there, our ring cannot). Otherwise the edge moves left by less
            // than one scale unit.
            let up = promised.div_ceil(1 << self.rcv_wscale).min(65_535);
            if up << self.rcv_wscale <= self.rx.window() {
                field = up;
            }
        }
        let edge = self.rcv_nxt + (field << self.rcv_wscale);
        if edge > self.rcv_adv {
            self.rcv_adv = edge;
        }
        field as u16
    }

    /// Up to 3 (with timestamps) or 4 SACK blocks, the newest first (RFC 2018 §4),
    /// after a pending D-SACK block (RFC 2883 §4).
    #[inline]
    fn sack_blocks(&self) -> [Option<(SeqNumber, SeqNumber)>; 4] {
        if !self.sack_ok || (!self.out_of_order() && self.dsack.is_none()) {
            return [None; 4];
        }
        self.sack_blocks_out_of_order()
    }

    /// `sack_blocks` while out-of-order data waits.
    #[inline(never)]
    fn sack_blocks_out_of_order(&self) -> [Option<(SeqNumber, SeqNumber)>; 4] {
        let mut out = [None; 4];
        let max = if self.ts_ok { 3 } else { 4 };
        // Iterators only: this runs for every ACK while data is out of order, and must
        // not allocate.
        let mut n = 0;
        // RFC 2883 §4: a duplicate segment is reported once, as the first block.
        if let Some(d) = self.dsack {
            out[0] = Some(d);
            n = 1;
        }
        let first = n;
        let recent = self.sack_recent.iter().flatten();
        let by_recency =
            recent.filter_map(|&seq| self.ooo_ranges().find(|r| r.0 <= seq && seq < r.1));
        for r in by_recency.chain(self.ooo_ranges().rev()) {
            if n == max {
                break;
            }
            if !out[first..].contains(&Some(r)) {
                out[n] = Some(r);
                n += 1;
            }
        }
        out
    }

    /// Fills the timestamp and SACK options of a segment carrying ACK (its `options`
    /// start out empty) and returns its window field; marks the ACK as sent.
    #[inline(always)]
    fn ack_fields(&mut self, now: Instant, options: &mut TcpOptions) -> u16 {
        if self.ts_ok {
            options.timestamp = Some((self.ts_now(now), self.ts_recent));
        }
        // `options` starts out without SACK blocks: only out-of-order data or a
        // pending D-SACK adds any (`sack_blocks` without building an empty array).
        if self.sack_ok && (self.out_of_order() || self.dsack.is_some()) {
            options.sack_ranges = self.sack_blocks_out_of_order();
        }
        if self.dsack.take().is_some() && self.sack_ok {
            self.stats.dsacks_out += 1;
        }
        let window = self.take_window();
        self.last_ack_sent = self.rcv_nxt;
        self.ack_now = false;
        self.window_update = false;
        self.timers_changed |= self.delack_at.is_some();
        self.delack_at = None;
        self.rcv_unacked = 0;
        self.tune.compressed_acks = 0;
        window
    }

    fn bare(&self, seq: SeqNumber, flags: TcpFlags) -> TcpRepr<'static> {
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq_number: seq,
            ack_number: if flags.ack() {
                self.rcv_nxt
            } else {
                SeqNumber(0)
            },
            flags,
            window_len: 0,
            urgent_ptr: 0,
            options: TcpOptions::default(),
            payload: &[],
        }
    }

    /// `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>` with window, timestamps and SACK blocks.
    pub(crate) fn ack_reply(&mut self, now: Instant) -> TcpRepr<'static> {
        let mut repr = self.bare(self.snd_max, TcpFlags::ACK);
        repr.window_len = self.ack_fields(now, &mut repr.options);
        self.stats.segs_out += 1;
        repr
    }

    /// `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=RST,ACK>` for aborting a synchronized connection.
    pub(crate) fn rst_segment(&self) -> TcpRepr<'static> {
        let mut r = self.bare(self.snd_max, TcpFlags::RST | TcpFlags::ACK);
        if self.state == TcpState::SynSent {
            r.flags = TcpFlags::RST;
            r.ack_number = SeqNumber(0);
        }
        r
    }

    /// The addresses of a segment from this socket.
    pub(crate) fn addrs(&self) -> SegmentAddrs {
        SegmentAddrs {
            src: self.local.ip(),
            dst: self.remote.ip(),
            hop_limit: self.opts.hop_limit,
            tclass: self.opts.tclass,
        }
    }
}
