//! Segment arrival at one connection: RFC 9293 §3.10.7.3 (SYN-SENT) and §3.10.7.4 (the
//! synchronized states), step by step in the RFC's order: sequence number (with PAWS,
//! RFC 7323 §5), RST (RFC 5961 §3), SYN (RFC 5961 §4), ACK (RFC 5961 §5; the sender's
//! side of it — SND.UNA, RTT, send window), URG, segment text and FIN. Loss detection
//! and congestion control on ACKs are in [`super::recovery`].
//!
//! Every step either lets the segment go on to the next one or ends its processing,
//! possibly with an immediate [`Reply`]. Invariant kept: text is written into `rx` only
//! in ESTABLISHED, FIN-WAIT-1 and FIN-WAIT-2, trimmed to the window.

use super::{in_window, rst_for, Reply, Socket, PAWS_IDLE};
use crate::socket::common::{IcmpError, IcmpErrorKind};
use crate::socket::tcp::config::{TcpConfig, TcpContext};
use crate::socket::tcp::types::{EventQueue, TcpError, TcpEvent, TcpState};
use crate::time::{Duration, Instant};
use crate::wire::{SeqNumber, TcpFlags, TcpRepr};
use core::ops::ControlFlow;

/// What is left of an acceptable segment after the sequence check: its text trimmed to
/// the receive window, and whether its SYN and FIN still count.
struct Text<'a> {
    seq: SeqNumber,
    syn: bool,
    fin: bool,
    payload: &'a [u8],
}

#[cfg(test)]
thread_local! {
    /// Test hook: sends every segment through the full path, to compare the two.
    pub(crate) static PREDICTION_OFF: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
    /// Test hook: segments that took the predicted path on this thread.
    pub(crate) static PREDICTED: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

fn prediction_enabled() -> bool {
    #[cfg(test)]
    return !PREDICTION_OFF.with(|c| c.get());
    #[cfg(not(test))]
    true
}

impl Socket {
    /// Processes a segment for this connection (RFC 9293 §3.10.7.3 and §3.10.7.4).
    /// (Inlined into its one caller, `process_conn`: this runs per segment received.)
    #[inline(always)]
    pub(crate) fn process(
        &mut self,
        cx: &TcpContext,
        cfg: &TcpConfig,
        ev: &mut EventQueue,
        seg: &TcpRepr<'_>,
    ) -> Option<Reply> {
        self.tlp_armed = None;
        match self.state {
            TcpState::Closed | TcpState::Listen => return None,
            TcpState::SynSent => return self.process_syn_sent(cx, ev, seg),
            _ => {}
        }
        self.stats.segs_in += 1;
        let now = cx.now;
        let was_time_wait = self.state == TcpState::TimeWait;
        if prediction_enabled() && self.predicted(now, cfg, ev, seg) {
            #[cfg(test)]
            PREDICTED.with(|c| c.set(c.get() + 1));
            return None;
        }
        // First: the sequence number, after PAWS.
        if self.paws_rejects(now, seg) {
            return self.dupack_reply(now, cfg, seg);
        }
        let text = match self.check_sequence(now, cfg, seg) {
            ControlFlow::Continue(text) => text,
            ControlFlow::Break(reply) => return reply,
        };
        // Second: the RST bit.
        if seg.flags.rst() {
            return self.on_rst(now, ev, seg);
        }
        self.last_rx_touch(now);
        // Third, security, does not apply. Fourth: the SYN bit.
        if text.syn {
            return self.on_syn(now, ev);
        }
        // Fifth: the ACK field.
        if !seg.flags.ack() {
            return None;
        }
        if let ControlFlow::Break(reply) = self.on_ack(now, cfg, ev, seg) {
            return reply;
        }
        // Sixth, the URG bit: urgent data is not supported; it is delivered in line.
        // Seventh: segment text.
        if !text.payload.is_empty() {
            self.rcv_rtt_measure(now, seg);
        }
        if let ControlFlow::Break(reply) = self.on_text(now, cfg, ev, &text) {
            return reply;
        }
        // Eighth: the FIN bit.
        self.on_fin(now, cfg, ev, &text);
        if core::mem::take(&mut self.tune.ack_in_reply) && self.ack_now {
            // Per RFC 5681 §4.2, out-of-order data and a hole fill are acknowledged at
            // once: as the segment's own reply, not at the next dispatch, after the
            // caller processed a whole batch of frames. One ACK per batch holds at most
            // 3 SACK blocks, so the blocks of the batch's other segments never reached
            // the sender, whose RACK then resent data we held (1,684 of a kernel
            // sender's 1,960 retransmissions of a 10 MB transfer at 3 % loss). Only
            // segments extending the newest block past the third duplicate ACK wait for
            // the SACK compression timer (`ooo_ack_at_once`).
            return Some(Reply::Segment(self.ack_reply(now)));
        }
        if self.state == TcpState::TimeWait && self.ack_now {
            let ack = self.ack_reply(now);
            // Entering TIME-WAIT, the ACK waits for the batch's other segments; a
            // retransmitted FIN is answered at once, as the compact entry answers it.
            return Some(if was_time_wait {
                Reply::Segment(ack)
            } else {
                Reply::TimeWaitAck(ack)
            });
        }
        None
    }

    /// Header prediction (Van Jacobson's, as in 4.4BSD's and Linux's fast paths): in
    /// ESTABLISHED, the next in-order segment with only ACK (and PSH) set, the window
    /// unchanged, no SACK blocks and a timestamp that passes PAWS is either in-order
    /// data while nothing of ours is in flight, or a pure ACK advancing SND.UNA outside
    /// loss recovery. For those, every step of RFC 9293 §3.10.7.4 has a known outcome:
    /// the segment is acceptable and needs no trimming, RST/SYN/FIN/URG do not apply,
    /// the ACK passes RFC 5961 §5.2, loss detection has nothing to do, and data goes
    /// straight to the receive buffer with no holes to track. This does exactly what the
    /// full path would, minus the checks; returns false (having changed nothing) for any
    /// other segment. `tests::loopback::test_loopback_header_prediction_changes_nothing`
    /// checks that transfers with and without it emit the same segments.
    fn predicted(
        &mut self,
        now: Instant,
        cfg: &TcpConfig,
        ev: &mut EventQueue,
        seg: &TcpRepr<'_>,
    ) -> bool {
        let seq = seg.seq_number;
        let ack = seg.ack_number;
        let seg_wnd = usize::from(seg.window_len) << self.snd_wscale;
        if self.state != TcpState::Established
            || seg.flags.0 & !TcpFlags::PSH.0 != TcpFlags::ACK.0
            || seq != self.rcv_nxt
            || seg_wnd != self.snd_wnd
            || seg_wnd == 0
            || seg.options.sack_ranges[0].is_some()
            || self.recovery.is_some()
            || self.tlp_end.is_some()
            || self.rack_at.is_some()
            || self.txlog.has_retrans()
            || self.txlog.lost_bytes() != 0
        {
            return false;
        }
        let tsval = match (self.ts_ok, seg.options.timestamp) {
            (false, _) => None,
            // PAWS (RFC 7323 §5.3 R1) passes.
            (true, Some((v, _))) if (v.wrapping_sub(self.ts_recent) as i32) >= 0 => Some(v),
            (true, _) => return false,
        };
        let data = !seg.payload.is_empty();
        if data {
            // In-order data that fits, with nothing in flight (so the ACK field has
            // nothing to say) and no out-of-order data waiting.
            if ack != self.snd_una
                || self.snd_max != self.snd_una
                || seg.payload.len() > self.rx.window()
                || self.out_of_order()
                || self.user_closed
            {
                return false;
            }
        } else if !(ack > self.snd_una && ack <= self.snd_max)
            || self.dupacks != 0
            || self.rto_recover.is_some()
            || (self.sack_ok && self.scoreboard.sacked_bytes() != 0)
        {
            // A pure ACK must advance SND.UNA with no SACK state to maintain.
            return false;
        }
        // RFC 7323 §4.3 (2), as in check_sequence.
        if let Some(v) = tsval {
            if seq <= self.last_ack_sent {
                self.ts_recent = v;
                self.ts_recent_age = now;
            }
        }
        self.last_rx_touch(now);
        // process_ack, with its outcomes known.
        self.persist_probes = 0;
        if !data {
            let mss = self.send_mss();
            self.on_new_ack(now, ev, seg, mss);
            self.on_ack_rate(now);
        }
        // update_send_window with an unchanged, non-zero window.
        if self.snd_wl1 < seq || (self.snd_wl1 == seq && self.snd_wl2 <= ack) {
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
            self.max_snd_wnd = self.max_snd_wnd.max(seg_wnd);
            self.timers_changed |= self.persist_at.is_some();
            self.persist_at = None;
            self.persist_backoff = 0;
        }
        self.arm_tlp(now);
        if data {
            self.rcv_rtt_measure(now, seg);
            self.receive_in_order(now, cfg, seg.payload);
        }
        true
    }

    /// Per RFC 7323 §5.3 R1: a segment whose TSval is older than TS.Recent is dropped
    /// (PAWS) and acknowledged, unless it is a RST.
    fn paws_rejects(&mut self, now: Instant, seg: &TcpRepr<'_>) -> bool {
        if let (true, false, Some((tsval, _))) =
            (self.ts_ok, seg.flags.rst(), seg.options.timestamp)
        {
            if (tsval.wrapping_sub(self.ts_recent) as i32) < 0
                && now - self.ts_recent_age < PAWS_IDLE
            {
                self.paws_rejected += 1;
                log::debug!(target: "ustack::tcp", "{:?}: PAWS rejects TSval {tsval}", self.handle);
                return true;
            }
        }
        false
    }

    /// The acceptability test of RFC 9293 §3.10.7.4 "first": an acceptable segment
    /// continues as its [`Text`] trimmed to the window, an unacceptable one is answered
    /// (rate-limited) with an ACK.
    fn check_sequence<'a>(
        &mut self,
        now: Instant,
        cfg: &TcpConfig,
        seg: &TcpRepr<'a>,
    ) -> ControlFlow<Option<Reply>, Text<'a>> {
        let mut seq = seg.seq_number;
        let mut syn = seg.flags.syn();
        let mut fin = seg.flags.fin();
        let mut payload = seg.payload;

        if self.state == TcpState::SynReceived && syn && seq == self.irs {
            if seg.flags.ack() {
                // The peer's SYN,ACK of a simultaneous open repeats its SYN: only the
                // ACK is new.
                syn = false;
                seq += 1;
            } else {
                // A retransmitted SYN: our SYN,ACK was lost; send it again.
                self.snd_nxt = self.iss;
                return ControlFlow::Break(None);
            }
        }

        // Per RFC 9293 §3.10.7.4 first: the acceptability test.
        let seg_len = payload.len() + usize::from(syn) + usize::from(fin);
        let rcv_wnd = self.rx.window();
        let mut acceptable = match (seg_len, rcv_wnd) {
            (0, 0) => seq == self.rcv_nxt,
            (0, _) => in_window(seq, self.rcv_nxt, rcv_wnd),
            (_, 0) => false,
            (_, _) => {
                in_window(seq, self.rcv_nxt, rcv_wnd)
                    || in_window(seq + (seg_len - 1), self.rcv_nxt, rcv_wnd)
            }
        };
        // "If the RCV.WND is zero, no segments will be acceptable, but special allowance
        // should be made to accept valid ACKs, URGs, and RSTs."
        let zero_window_allowance = !acceptable && rcv_wnd == 0 && seq == self.rcv_nxt;
        if zero_window_allowance {
            acceptable = true;
            payload = &[];
            fin = false;
            self.ack_now = true;
        }
        if !acceptable {
            if seg.flags.rst() {
                return ControlFlow::Break(None);
            }
            if self.state == TcpState::TimeWait && fin && seq + seg_len == self.rcv_nxt {
                // Per RFC 9293 §3.10.7.4 eighth: a retransmitted FIN in TIME-WAIT is
                // acknowledged and restarts the 2 MSL timeout.
                let at = Some(now + cfg.msl.saturating_mul(2));
                self.timers_changed |= self.close_at != at;
                self.close_at = at;
            }
            if !payload.is_empty() && seq + payload.len() <= self.rcv_nxt {
                // RFC 2883 §4 (1): report the duplicate as a D-SACK block.
                self.note_dsack(cfg, seq, seq + payload.len());
                // Data we already hold: the sender is retransmitting, so it is
                // recovering from a loss; acknowledge the next segments at once so its
                // window regrows without delayed-ACK waits (Linux tcp_data_queue: "A
                // retransmit ... Force an immediate ack", tcp_enter_quickack_mode).
                self.enter_quickack();
            }
            return ControlFlow::Break(self.dupack_reply(now, cfg, seg));
        }
        if !payload.is_empty() && seq < self.rcv_nxt && !syn {
            // Partly a duplicate: RFC 2883 §4 reports the part already received.
            let end = (seq + payload.len()).min(self.rcv_nxt);
            self.note_dsack(cfg, seq, end);
            self.ack_now = true;
        }

        // Per RFC 7323 §4.3 (2): remember TSval when the segment covers Last.ACK.sent.
        if let (true, Some((tsval, _))) = (self.ts_ok, seg.options.timestamp) {
            if seq <= self.last_ack_sent && (tsval.wrapping_sub(self.ts_recent) as i32) >= 0 {
                self.ts_recent = tsval;
                self.ts_recent_age = now;
            }
        }

        ControlFlow::Continue(self.trim_to_window(
            Text {
                seq,
                syn,
                fin,
                payload,
            },
            rcv_wnd,
        ))
    }

    /// Trims what was already received, and what does not fit the window `rcv_wnd`.
    fn trim_to_window<'a>(&self, text: Text<'a>, rcv_wnd: usize) -> Text<'a> {
        let Text {
            mut seq,
            mut syn,
            mut fin,
            mut payload,
        } = text;
        if seq < self.rcv_nxt {
            let mut skip = (self.rcv_nxt - seq) as usize;
            if syn {
                syn = false;
                skip -= 1;
                seq += 1;
            }
            let d = skip.min(payload.len());
            payload = &payload[d..];
            seq += d;
            if seq < self.rcv_nxt {
                fin = false;
            }
        }
        let offset = (seq - self.rcv_nxt).max(0) as usize;
        let room = rcv_wnd.saturating_sub(offset);
        if payload.len() > room {
            payload = &payload[..room];
            fin = false;
        }
        Text {
            seq,
            syn,
            fin,
            payload,
        }
    }

    /// RFC 9293 §3.10.7.4 second: an in-window RST.
    fn on_rst(&mut self, now: Instant, ev: &mut EventQueue, seg: &TcpRepr<'_>) -> Option<Reply> {
        // Per RFC 5961 §3.2: reset only when SEG.SEQ exactly matches RCV.NXT;
        // otherwise (in window) send a challenge ACK.
        if seg.seq_number != self.rcv_nxt {
            return Some(Reply::Challenge(self.ack_reply(now)));
        }
        let err = match self.state {
            // "If this connection was initiated with a passive OPEN, then return
            // this connection to the LISTEN state": the child simply goes away.
            TcpState::SynReceived if self.passive => None,
            TcpState::SynReceived => Some(TcpError::ConnectionRefused),
            TcpState::Established
            | TcpState::FinWait1
            | TcpState::FinWait2
            | TcpState::CloseWait => Some(TcpError::ConnectionReset),
            _ => None,
        };
        self.fail(ev, err);
        None
    }

    /// RFC 9293 §3.10.7.4 fourth: a SYN in the window.
    fn on_syn(&mut self, now: Instant, ev: &mut EventQueue) -> Option<Reply> {
        if self.state == TcpState::SynReceived && self.passive {
            // Per RFC 9293 §3.10.7.4 fourth: a passive SYN-RECEIVED returns to LISTEN.
            self.fail(ev, None);
            return None;
        }
        // Per RFC 5961 §4.2: a SYN in a synchronized state elicits a challenge ACK.
        Some(Reply::Challenge(self.ack_reply(now)))
    }

    /// RFC 9293 §3.10.7.4 fifth: completes the handshake in SYN-RECEIVED, checks the
    /// ACK against RFC 5961 §5.2, processes it, and makes the state transitions an ACK
    /// of our FIN causes.
    fn on_ack(
        &mut self,
        now: Instant,
        cfg: &TcpConfig,
        ev: &mut EventQueue,
        seg: &TcpRepr<'_>,
    ) -> ControlFlow<Option<Reply>> {
        let ack = seg.ack_number;
        if self.state == TcpState::SynReceived {
            // Per RFC 9293 §3.10.7.4 fifth: "If SND.UNA < SEG.ACK =< SND.NXT, then enter
            // ESTABLISHED state", else send <SEQ=SEG.ACK><CTL=RST>.
            if !(ack > self.snd_una && ack <= self.snd_max) {
                return ControlFlow::Break(Some(Reply::Segment(rst_for(seg))));
            }
            self.establish_passive(now, ev, seg);
        }
        // Per RFC 5961 §5.2: acceptable ACKs lie in
        // (SND.UNA - MAX.SND.WND) <= SEG.ACK <= SND.NXT; others are dropped with an ACK.
        let max_snd_wnd = self.max_snd_wnd.max(1);
        if ack > self.snd_max || ack < self.snd_una - max_snd_wnd {
            return ControlFlow::Break(Some(Reply::Challenge(self.ack_reply(now))));
        }
        self.process_ack(now, ev, seg);

        match self.state {
            TcpState::FinWait1 if self.fin_acked() => {
                self.set_state(ev, TcpState::FinWait2);
                if self.user_closed {
                    let at = Some(now + cfg.fin_wait2_timeout);
                    self.timers_changed |= self.close_at != at;
                    self.close_at = at;
                }
            }
            TcpState::Closing if self.fin_acked() => {
                self.enter_time_wait(now, cfg, ev);
            }
            TcpState::LastAck if self.fin_acked() => {
                self.fail(ev, None);
                return ControlFlow::Break(None);
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    /// SYN-RECEIVED → ESTABLISHED (or FIN-WAIT-1 if the application already shut down
    /// writing): our SYN is acknowledged.
    fn establish_passive(&mut self, now: Instant, ev: &mut EventQueue, seg: &TcpRepr<'_>) {
        self.snd_una = self.iss + 1;
        self.snd_nxt = self.snd_nxt.max(self.snd_una);
        self.take_syn_rtt_sample(now, seg);
        self.timers_changed |= self.rto_at.is_some();
        self.rto_at = None;
        self.retries = 0;
        self.rtt.reset_backoff();
        self.snd_wnd = usize::from(seg.window_len) << self.snd_wscale;
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = seg.seq_number;
        self.snd_wl2 = seg.ack_number;
        let mss = self.send_mss();
        self.renew_cc(mss, true);
        if self.fin_seq.is_some() {
            self.set_state(ev, TcpState::Established);
            self.set_state(ev, TcpState::FinWait1);
        } else {
            self.set_state(ev, TcpState::Established);
        }
    }

    /// RFC 9293 §3.10.7.4 seventh: text goes to the receive buffer in the states that
    /// still receive; a socket the application closed answers data with a reset.
    fn on_text(
        &mut self,
        now: Instant,
        cfg: &TcpConfig,
        ev: &mut EventQueue,
        text: &Text<'_>,
    ) -> ControlFlow<Option<Reply>> {
        if text.payload.is_empty() {
            return ControlFlow::Continue(());
        }
        match self.state {
            TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2 => {
                if self.user_closed {
                    // Linux (tcp_rcv_state_process): data for a socket the application
                    // closed is answered with a reset.
                    let rst = self.rst_segment();
                    self.fail(ev, None);
                    return ControlFlow::Break(Some(Reply::Segment(rst)));
                }
                self.receive_data(now, cfg, text.seq, text.payload);
            }
            // CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: "This should not occur since a
            // FIN has been received from the remote side. Ignore the segment text."
            _ => {}
        }
        ControlFlow::Continue(())
    }

    /// RFC 9293 §3.10.7.4 eighth: the FIN, processed once in order. One that arrives
    /// beyond a hole is held (with its text) until the hole fills, as Linux holds it
    /// in its out-of-order queue, and is SACKed meanwhile.
    fn on_fin(&mut self, now: Instant, cfg: &TcpConfig, ev: &mut EventQueue, text: &Text<'_>) {
        let fin_at = text.seq + text.payload.len();
        if (text.fin && fin_at == self.rcv_nxt) || self.rcv_fin_ooo == Some(self.rcv_nxt) {
            self.rcv_fin_ooo = None;
            // The FIN takes a sequence number but no buffer space: the window's right
            // edge moves along with it.
            self.rcv_nxt += 1;
            self.rcv_adv += 1;
            self.fin_received = true;
            self.ack_now = true;
            match self.state {
                TcpState::SynReceived | TcpState::Established => {
                    self.set_state(ev, TcpState::CloseWait)
                }
                TcpState::FinWait1 => self.set_state(ev, TcpState::Closing),
                TcpState::FinWait2 => self.enter_time_wait(now, cfg, ev),
                TcpState::TimeWait => {
                    let at = Some(now + cfg.msl.saturating_mul(2));
                    self.timers_changed |= self.close_at != at;
                    self.close_at = at;
                }
                _ => {}
            }
        } else if text.fin {
            self.ack_now = true;
            if self.rcv_fin_ooo.is_none() && self.holds_text_before(text, fin_at) {
                self.rcv_fin_ooo = Some(fin_at);
                if text.payload.is_empty() {
                    // A bare FIN is a block of its own: reported first, at once, as
                    // out-of-order data is (RFC 5681 §4.2).
                    self.note_sack_recent(fin_at);
                    self.tune.ack_in_reply = true;
                }
            }
        }
    }

    /// Whether an out-of-order FIN at `fin_at` can be held: the state still takes
    /// text, its segment's text was stored (not dropped for room or holes), and
    /// nothing held lies beyond it.
    fn holds_text_before(&self, text: &Text<'_>, fin_at: SeqNumber) -> bool {
        if !matches!(
            self.state,
            TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2
        ) || fin_at <= self.rcv_nxt
            || self.user_closed
        {
            return false;
        }
        let (start, end) = (
            (text.seq - self.rcv_nxt).max(0) as usize,
            (fin_at - self.rcv_nxt) as usize,
        );
        let stored =
            text.payload.is_empty() || self.assembler.ranges().any(|(s, e)| s <= start && end <= e);
        stored
            && self
                .assembler
                .ranges()
                .next_back()
                .is_none_or(|(_, e)| e <= end)
    }

    /// RFC 9293 §3.10.7.4 fifth, for an acceptable ACK: SND.UNA and the send buffer, the
    /// RTT, congestion control and loss detection (RFC 5681, 6582, 6675), then the send
    /// window.
    fn process_ack(&mut self, now: Instant, ev: &mut EventQueue, seg: &TcpRepr<'_>) {
        let ack = seg.ack_number;
        let mss = self.send_mss();
        let seg_wnd = usize::from(seg.window_len) << self.snd_wscale;
        let una_before = self.snd_una;
        let sacked_before = self.scoreboard.sacked_bytes();
        self.rack.start_ack();
        let dsack = self.sack_ok && self.on_dsack(now, ev, seg);
        let sack_new = self.sack_ok
            && self
                .scoreboard
                .update(self.snd_una, self.snd_max, &seg.options.sack_ranges);
        let mut orig = self.sack_ok && self.rack_on_sack(now, seg, dsack);
        // Any acceptable ACK shows the peer is alive: zero-window probing goes on as
        // long as it answers (Linux resets icsk_probes_out the same way).
        self.persist_probes = 0;
        if ack > self.snd_una {
            orig |= self.on_new_ack(now, ev, seg, mss);
        } else if ack == self.snd_una && self.snd_max > self.snd_una {
            self.on_duplicate_ack(seg, seg_wnd, sack_new, mss);
        }
        // RFC 6937 DeliveredData: the change in SND.UNA plus the change in SACKed
        // bytes (negative when the cumulative ACK covers SACKed data).
        let delivered = ((self.snd_una - una_before).max(0) as usize
            + self.scoreboard.sacked_bytes())
        .saturating_sub(sacked_before);
        self.detect_loss(now, ev, seg, una_before, delivered, dsack, orig);
        self.on_ack_rate(now);
        self.update_send_window(now, ev, seg, seg_wnd);
        self.arm_tlp(now);
    }

    /// An ACK that advances SND.UNA: frees acknowledged bytes, samples the RTT, resets
    /// the retransmission backoff and lets congestion control grow or leave recovery.
    /// Returns whether a never-retransmitted segment sent before the last timeout was
    /// among those acknowledged (F-RTO's test).
    fn on_new_ack(
        &mut self,
        now: Instant,
        ev: &mut EventQueue,
        seg: &TcpRepr<'_>,
        mss: usize,
    ) -> bool {
        let ack = seg.ack_number;
        let acked = (ack - self.snd_una) as usize;
        let mut data_acked = acked;
        if self.fin_seq.is_some_and(|f| ack > f && self.snd_una <= f) {
            data_acked -= 1;
        }
        let data_acked = data_acked.min(self.tx.len());
        self.tx.dequeue_allocated(data_acked);
        self.stats.bytes_acked += data_acked as u64;
        self.snd_una = ack;
        if self.snd_nxt < self.snd_una {
            self.snd_nxt = self.snd_una;
        }
        if self.high_rxt < self.snd_una {
            self.high_rxt = self.snd_una;
        }
        self.scoreboard.prune(self.snd_una);
        if self.tlp_pending {
            // A probe that was due but has not left yet is moot: the ACK came.
            self.tlp_pending = false;
            self.rtx_next = None;
        }
        let mut orig = false;
        if self.sack_ok {
            let tsecr = seg.options.timestamp.map(|t| t.1);
            let limit = self.rto_recover.unwrap_or(self.snd_una);
            let echo = self.echo_before(tsecr);
            orig = self
                .txlog
                .on_cum_ack(self.snd_una, &mut self.rack, now, limit, &echo)
                .orig;
        }
        let rtt = self.sample_rtt(now, seg);
        let round_start = self.round_starts();
        self.cc.on_rtt_sample(rtt, round_start);
        self.snd_buf_expand();
        self.retries = 0;
        self.rtt.reset_backoff();
        self.persist_probes = 0;
        if self.frto == 0 {
            // With F-RTO on, `detect_loss` decides first whether the timeout was
            // spurious, then ends RTO recovery.
            self.end_rto_recovery_if_done();
        }
        self.on_ack_cc(now, ev, acked, data_acked, mss);
        self.dupacks = 0;
        // Per RFC 6298 §5.2/5.3: stop the timer when all is acked, else restart it.
        let at = (self.snd_max > self.snd_una).then(|| now + self.rtt.rto());
        self.timers_changed |= self.rto_at != at;
        self.rto_at = at;
        orig
    }

    /// RTT measurement on an ACK that advanced SND.UNA to `seg.ack_number`; returns the
    /// sample taken, if any.
    fn sample_rtt(&mut self, now: Instant, seg: &TcpRepr<'_>) -> Option<Duration> {
        let ack = seg.ack_number;
        // RTT measurement: RFC 7323 §4 RTTM, else Karn's algorithm. Per Karn (RFC
        // 6298 §3), an echo of a TSval older than the last timeout is no sample: a
        // receiver answering a duplicate echoes TS.Recent, which may date from
        // before the timeout whose ACK was lost, and the sample would include the
        // whole RTO; RTO would feed on itself.
        let mut sampled = None;
        let stale = |tsecr: u32| {
            self.rto_tsval
                .is_some_and(|t| (tsecr.wrapping_sub(t) as i32) < 0)
        };
        if let (true, Some((_, tsecr))) = (self.ts_ok, seg.options.timestamp) {
            if tsecr != 0 && !stale(tsecr) {
                let ms = self.ts_now(now).wrapping_sub(tsecr);
                if ms < 1 << 30 {
                    let r = Duration::from_millis(u64::from(ms));
                    self.rtt.sample(r);
                    sampled = Some(r);
                }
            }
        }
        if let Some((end, sent)) = self.rtt_sample {
            if ack >= end {
                if sampled.is_none() {
                    let r = now - sent;
                    self.rtt.sample(r);
                    sampled = Some(r);
                }
                self.rtt_sample = None;
            }
        }
        sampled
    }

    /// Per RFC 9293 §3.10.7.4: update the send window when the segment is newer.
    fn update_send_window(
        &mut self,
        now: Instant,
        ev: &mut EventQueue,
        seg: &TcpRepr<'_>,
        seg_wnd: usize,
    ) {
        let ack = seg.ack_number;
        if self.snd_wl1 < seg.seq_number || (self.snd_wl1 == seg.seq_number && self.snd_wl2 <= ack)
        {
            let old = self.snd_wnd;
            self.snd_wnd = seg_wnd;
            self.snd_wl1 = seg.seq_number;
            self.snd_wl2 = ack;
            self.max_snd_wnd = self.max_snd_wnd.max(seg_wnd);
            if (old == 0) != (seg_wnd == 0) {
                ev.push(TcpEvent::WindowUpdate {
                    handle: self.handle,
                    window: seg_wnd,
                });
            }
            if seg_wnd > 0 {
                self.timers_changed |= self.persist_at.is_some();
                self.persist_at = None;
                self.persist_backoff = 0;
                self.persist_probes = 0;
                if old == 0 && self.snd_max > self.snd_una && self.recovery.is_none() {
                    // The window re-opened under data sent past it, which the peer
                    // cannot have kept: resend from SND.UNA now instead of waiting out
                    // a backed-off RTO.
                    self.snd_nxt = self.snd_una;
                    self.rtt.reset_backoff();
                    let at = Some(now + self.rtt.rto());
                    self.timers_changed |= self.rto_at != at;
                    self.rto_at = at;
                }
            }
        }
    }

    /// The ACK answering an unacceptable segment, rate-limited for bare ACKs like
    /// Linux's tcp_invalid_ratelimit: data segments are not part of ACK loops, but
    /// two stacks answering each other's bare out-of-window ACKs would be.
    fn dupack_reply(&mut self, now: Instant, cfg: &TcpConfig, seg: &TcpRepr<'_>) -> Option<Reply> {
        if seg.segment_len() == 0 {
            if self
                .last_oow_ack
                .is_some_and(|t| now - t < cfg.invalid_ack_ratelimit)
            {
                return None;
            }
            self.last_oow_ack = Some(now);
        }
        Some(Reply::Segment(self.ack_reply(now)))
    }

    fn take_syn_rtt_sample(&mut self, now: Instant, seg: &TcpRepr<'_>) {
        // To the microsecond whatever the timestamps say (their clock ticks in
        // milliseconds): RACK's min_RTT starts from it. `rtt_sample` is cleared when the
        // SYN or SYN,ACK is resent after a timeout (Karn).
        let handshake = self.rtt_sample.take().map(|(_, sent)| now - sent);
        if let Some(r) = handshake {
            self.rack.on_handshake_rtt(r);
        }
        if let (true, Some((_, tsecr))) = (self.ts_ok, seg.options.timestamp) {
            if tsecr != 0 {
                let ms = self.ts_now(now).wrapping_sub(tsecr);
                if ms < 1 << 30 {
                    self.rtt.sample(Duration::from_millis(u64::from(ms)));
                }
                return;
            }
        }
        if let Some(r) = handshake {
            self.rtt.sample(r);
        }
    }

    /// RFC 9293 §3.10.7.3: a segment arriving in SYN-SENT.
    fn process_syn_sent(
        &mut self,
        cx: &TcpContext,
        ev: &mut EventQueue,
        seg: &TcpRepr<'_>,
    ) -> Option<Reply> {
        let ack_ok = seg.flags.ack() && seg.ack_number > self.iss && seg.ack_number <= self.snd_max;
        // First: "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless the RST
        // bit is set, if so drop the segment and return)".
        if seg.flags.ack() && !ack_ok {
            return (!seg.flags.rst()).then(|| Reply::Segment(rst_for(seg)));
        }
        // Second: a RST is acceptable only if its ACK acknowledges our SYN (RFC 5961 §3).
        if seg.flags.rst() {
            if ack_ok {
                self.fail(ev, Some(TcpError::ConnectionRefused));
            }
            return None;
        }
        // Fourth: the SYN bit.
        if !seg.flags.syn() {
            return None;
        }
        self.stats.segs_in += 1;
        self.irs = seg.seq_number;
        self.rcv_nxt = seg.seq_number + 1;
        self.rcv_adv = self.rcv_nxt;
        self.last_ack_sent = self.rcv_nxt;
        self.negotiate(cx, seg);
        self.snd_wnd = usize::from(seg.window_len);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = seg.seq_number;
        self.snd_wl2 = seg.ack_number;
        self.last_rx_touch(cx.now);
        if ack_ok {
            // "If SND.UNA > ISS (our SYN has been ACKed), change the connection state to
            // ESTABLISHED, form an ACK segment <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>".
            self.snd_una = seg.ack_number;
            self.take_syn_rtt_sample(cx.now, seg);
            self.timers_changed |= self.rto_at.is_some();
            self.rto_at = None;
            self.retries = 0;
            self.rtt.reset_backoff();
            self.ack_now = true;
            self.set_state(ev, TcpState::Established);
        } else {
            // "Otherwise, enter SYN-RECEIVED, form a SYN,ACK segment
            // <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> and send it" (simultaneous open).
            self.snd_nxt = self.iss;
            self.timers_changed |= self.rto_at.is_some();
            self.rto_at = None;
            self.set_state(ev, TcpState::SynReceived);
        }
        None
    }

    /// Seventh step: places text in the receive buffer (RFC 9293 §3.10.7.4) and decides
    /// about the acknowledgment (RFC 1122 §4.2.3.2, RFC 5681 §4.2).
    fn receive_data(&mut self, now: Instant, cfg: &TcpConfig, seq: SeqNumber, payload: &[u8]) {
        let payload = match self.rcv_fin_ooo {
            // Text past a FIN held out of order is not part of the stream: the FIN
            // ends it (RFC 9293 §3.10.7.4 eighth), whatever a later segment claims.
            Some(fin) => &payload[..payload.len().min((fin - seq).max(0) as usize)],
            None => payload,
        };
        if payload.is_empty() {
            self.ack_now = true;
            return;
        }
        let offset = (seq - self.rcv_nxt).max(0) as usize;
        let had_holes = self.out_of_order();
        if had_holes
            && offset > 0
            && self
                .assembler
                .ranges()
                .any(|(s, e)| s <= offset && offset + payload.len() <= e)
        {
            // Out-of-order data held already: RFC 2883 §4 (2), a D-SACK.
            self.note_dsack(cfg, seq, seq + payload.len());
        }
        // Whether this segment continues the newest SACK block at its right edge.
        let extends_newest = offset > 0
            && self.sack_recent[0].is_some_and(|recent| {
                let r = (recent - self.rcv_nxt).max(0) as usize;
                self.assembler
                    .ranges()
                    .any(|(s, e)| s <= r && r < e && e == offset)
            });
        let n = self.rx.write_unallocated(offset, payload);
        let taken = match n {
            0 => None,
            n => self.assembler.add_and_take_front(offset, n),
        };
        let Some(contiguous) = taken else {
            // No room, or too many holes: drop the text and tell the peer where we are.
            self.ooo_dropped += 1;
            self.ack_now = true;
            return;
        };
        self.rx.enqueue_unallocated(contiguous);
        self.rcv_nxt += contiguous;
        self.stats.bytes_received += contiguous as u64;
        if contiguous > 0 {
            self.rcv_space_adjust(now);
        }
        self.rcv_mss = self.rcv_mss.max(payload.len().min(self.our_mss));
        if offset > 0 {
            // Out of order: a duplicate ACK with SACK blocks, at once or compressed.
            let at_once = self.ooo_ack_at_once(extends_newest && cfg.sack_compression);
            self.note_sack_recent(seq);
            if at_once || cfg.sack_compression_delay == Duration::ZERO {
                // A zero delay is the per-batch form: the ACK goes at the next
                // dispatch, once the frames that arrived together are processed.
                self.ack_now = true;
                self.tune.ack_in_reply = at_once;
            } else {
                // Compressed: the delayed-ACK timer, brought forward to the SACK
                // compression deadline, sends the ACK (Linux arms a separate timer
                // once and does not push it back; either sends the pending ACK).
                let at = self.sack_compression_deadline(now, cfg);
                if self.delack_at.is_none_or(|t| at < t) {
                    self.timers_changed = true;
                    self.delack_at = Some(at);
                }
            }
        } else if had_holes {
            // Fills (part of) a hole: acknowledge at once.
            self.ack_now = true;
            self.tune.ack_in_reply = true;
        } else {
            self.rcv_unacked += n;
            let quick = self.take_quickack(now);
            if self.rcv_unacked >= 2 * self.rcv_mss || cfg.delayed_ack == Duration::ZERO || quick {
                // "an ACK SHOULD be generated for at least every second full-sized
                // segment" (RFC 1122 §4.2.3.2), or every one in quick-ACK mode.
                self.ack_now = true;
            } else if self.delack_at.is_none() {
                let at = Some(now + cfg.delayed_ack);
                self.timers_changed |= self.delack_at != at;
                self.delack_at = at;
            }
        }
    }

    /// Puts the out-of-order segment at `seq` first in the list of recent SACK blocks
    /// (one entry per block: entries of the block it joined go), so the next ACKs
    /// repeat the most recently reported blocks (RFC 2018 §4), as Linux's
    /// `tcp_sack_new_ofo_skb` moves a block to the front. With one entry per segment,
    /// three segments extending the newest block pushed every other block out of the
    /// list: a block a retransmission had just completed was then reported by one ACK
    /// only, and when that ACK was lost the sender resent the segment (seed 3 at 5 %
    /// through `ustack wire`: 472 such duplicates in one run with SACK compression).
    fn note_sack_recent(&mut self, seq: SeqNumber) {
        let rcv_nxt = self.rcv_nxt;
        let block = self.ooo_ranges().find(|&(s, e)| s <= seq && seq < e);
        let mut list = [None; 3];
        list[0] = Some(seq);
        let mut n = 1;
        for &old in self.sack_recent.iter().flatten() {
            let same = block.is_some_and(|(s, e)| s <= old && old < e);
            if n < list.len() && !same && old >= rcv_nxt {
                list[n] = Some(old);
                n += 1;
            }
        }
        self.sack_recent = list;
    }

    /// `receive_data` for text at RCV.NXT that fits the window, with no holes: the
    /// assembler would take it and hand it straight back.
    #[inline(always)]
    fn receive_in_order(&mut self, now: Instant, cfg: &TcpConfig, payload: &[u8]) {
        let n = self.rx.enqueue_slice(payload);
        debug_assert_eq!(n, payload.len());
        self.rcv_nxt += n;
        self.stats.bytes_received += n as u64;
        self.rcv_mss = self.rcv_mss.max(payload.len().min(self.our_mss));
        self.rcv_space_adjust(now);
        self.rcv_unacked += n;
        let quick = self.take_quickack(now);
        if self.rcv_unacked >= 2 * self.rcv_mss || cfg.delayed_ack == Duration::ZERO || quick {
            self.ack_now = true;
        } else if self.delack_at.is_none() {
            let at = Some(now + cfg.delayed_ack);
            self.timers_changed |= self.delack_at != at;
            self.delack_at = at;
        }
    }

    /// Remembers a duplicate segment for the next ACK's first SACK block (RFC 2883).
    fn note_dsack(&mut self, cfg: &TcpConfig, start: SeqNumber, end: SeqNumber) {
        if cfg.dsack && self.sack_ok && end > start {
            self.dsack = Some((start, end));
        }
    }

    pub(super) fn last_rx_touch(&mut self, now: Instant) {
        self.keep_probes = 0;
        if self.opts.keepalive {
            let at = Some(now + self.opts.keep_idle);
            self.timers_changed |= self.keepalive_at != at;
            self.keepalive_at = at;
        }
    }

    /// An ICMP error quoting one of our segments (RFC 1122 §4.2.3.9, RFC 5927).
    /// Returns whether the error was believed (quoted a sequence number in flight).
    pub(crate) fn handle_icmp(&mut self, ev: &mut EventQueue, err: &IcmpError) -> bool {
        self.tlp_armed = None;
        let seq = SeqNumber(err.tcp_seq);
        // Per RFC 5927 §4.1: only believe errors quoting SND.UNA <= SEG.SEQ < SND.NXT.
        let plausible = match self.state {
            TcpState::SynSent => seq == self.iss,
            _ => seq >= self.snd_una && seq < self.snd_max,
        };
        if !plausible {
            log::debug!(target: "ustack::tcp", "{:?}: ICMP quoting seq {seq} ignored", self.handle);
            return false;
        }
        let (hard, error) = match err.kind {
            IcmpErrorKind::FragmentationNeeded(mtu) => {
                // RFC 1191 / RFC 8201: lower the path MTU and resend with smaller
                // segments; never below the family's minimum (RFC 8201 §4: an IPv6
                // PTB below 1280 is not believed to lower it further).
                let mtu = usize::from(mtu).max(super::min_mtu(self.remote.ip()));
                if mtu < self.pmtu {
                    self.pmtu = mtu;
                    self.snd_nxt = self.snd_una;
                }
                return true;
            }
            IcmpErrorKind::PortUnreachable | IcmpErrorKind::ProtocolUnreachable => {
                (true, TcpError::ConnectionRefused)
            }
            IcmpErrorKind::HostUnreachable | IcmpErrorKind::Prohibited => {
                (true, TcpError::HostUnreachable)
            }
            IcmpErrorKind::TimeExceeded | IcmpErrorKind::Other(..) => {
                (false, TcpError::HostUnreachable)
            }
        };
        if hard && self.state == TcpState::SynSent {
            self.fail(ev, Some(error));
        } else {
            // Per RFC 5927 §4.1 / Linux: soft in synchronized states; reported if the
            // connection later times out.
            self.soft_error = Some(error);
        }
        true
    }
}
