//! Loss detection and recovery for one connection, and the congestion-control hooks.
//!
//! With SACK, losses are found by RACK-TLP (RFC 8985): each segment's transmit time is
//! in the transmit log ([`crate::socket::tcp::rack`]); a segment is lost once one sent
//! after it was delivered and RACK.rtt plus a reordering window has passed since it
//! left; a tail loss probe (TLP, RFC 8985 §7) replaces waiting for the RTO at the end of
//! a flight, and, beyond the RFC, a recovery probe does so in fast recovery. Fast recovery sends at the rate of Proportional Rate Reduction (RFC 6937,
//! PRR-SSRB). Reductions are undone when they prove spurious: by D-SACKs covering every
//! retransmission (RFC 2883, RFC 3708), or after a timeout by F-RTO (RFC 5682 §3,
//! SACK-enhanced) or Eifel's timestamp test (RFC 3522). Without SACK, recovery is
//! RFC 5681 §3.2 with NewReno partial ACKs (RFC 6582) on duplicate ACKs.
//!
//! Invariants: `recovery` is set exactly while in fast recovery and holds RFC 6582's
//! "recover"; `high_rxt` never falls below SND.UNA; no fast recovery starts while
//! `rto_recover` is set (the ACK has not yet covered what was out at the last
//! timeout); `tlp_end` is set while a probe's episode is open, and no other probe is
//! scheduled then.

use super::{Prr, Socket, Undo, DUPTHRESH};
use crate::socket::tcp::types::{EventQueue, TcpEvent, TcpState};
use crate::time::{Duration, Instant};
use crate::wire::{SeqNumber, TcpRepr};

/// RFC 8985 §7.2 WCDelAckT: the worst-case delayed-ACK time added to the PTO when one
/// segment is in flight (Linux adds TCP_RTO_MIN, 200 ms, when one packet is out).
const WC_DEL_ACK: Duration = Duration::from_millis(200);
/// Added to 2·SRTT when more than one segment is in flight: Linux's TCP_TIMEOUT_MIN
/// (two jiffies, 2 ms at HZ=1000), so a probe does not race an ACK that is merely a
/// little late. A floor of 10 ms instead cost a sub-millisecond path several RTTs
/// per tail loss.
const PTO_SLACK: Duration = Duration::from_millis(2);
/// Least time between a probe and the RTO armed after it (Linux: one jiffy).
const MIN_RTO_AFTER_PROBE: Duration = Duration::from_millis(1);

impl Socket {
    /// Congestion control on an ACK that advanced SND.UNA by `acked` bytes
    /// (`data_acked` of them data): a full ACK ends fast recovery, a partial one
    /// retransmits (NewReno), otherwise the window grows.
    pub(super) fn on_ack_cc(
        &mut self,
        now: Instant,
        ev: &mut EventQueue,
        acked: usize,
        data_acked: usize,
        mss: usize,
    ) {
        let ack = self.snd_una;
        match self.recovery {
            Some(recover) if ack >= recover => {
                let cwnd = if self.sack_ok {
                    // Per RFC 6937 §3.1: "at the end of recovery ... cwnd = ssthresh"
                    // (PRR has brought the flight down to it).
                    self.cc.ssthresh()
                } else {
                    // Per RFC 6582 §3.2 (3): a full acknowledgment ends fast recovery;
                    // cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS), which guards
                    // against a burst when the inflated window deflates.
                    let flight = (self.snd_max - self.snd_una).max(0) as usize;
                    self.cc.ssthresh().min(flight.max(mss) + mss)
                };
                if !self.cc.controls_cwnd() {
                    self.cc.set_cwnd(cwnd);
                }
                self.recovery = None;
                self.rack.on_recovery_exit();
                self.emit_cc_event(ev);
            }
            Some(_) => {
                if !self.sack_ok {
                    // Per RFC 6582 §3.2 (5): a partial ACK retransmits the first
                    // unacknowledged segment and deflates cwnd by the amount acked.
                    self.rtx_next = Some(self.snd_una);
                    let cwnd = self.cc.cwnd().saturating_sub(acked) + mss;
                    self.cc.set_cwnd(cwnd.max(mss));
                }
            }
            None => {
                // RFC 7661 §4.3 / Linux tcp_cong_avoid: no growth while
                // application-limited.
                if self.is_cwnd_limited() {
                    self.cc.on_ack(now, data_acked, mss, self.rtt.srtt());
                }
            }
        }
    }

    /// An ACK that does not advance SND.UNA while data is outstanding: counts it when it
    /// is a duplicate ACK in the sense of RFC 6675 §2 (SACK) or RFC 5681 §2.
    pub(super) fn on_duplicate_ack(
        &mut self,
        seg: &TcpRepr<'_>,
        seg_wnd: usize,
        sack_new: bool,
        mss: usize,
    ) {
        let dupack = if self.sack_ok {
            // Per RFC 6675 §2: with SACK, a duplicate acknowledgment is one that
            // SACKs octets not SACKed before, whatever its payload or window (so
            // ACKs riding on the peer's data count too).
            sack_new
        } else {
            // Per RFC 5681 §2: no data, no SYN/FIN, same ACK and same window.
            seg.payload.is_empty() && !seg.flags.fin() && seg_wnd > 0 && seg_wnd == self.snd_wnd
        };
        if dupack {
            self.dupacks += 1;
            if self.recovery.is_some() && !self.sack_ok {
                // RFC 6582 §3.2 (4): inflate by one segment per further dupack.
                self.cc.set_cwnd(self.cc.cwnd() + mss);
            }
        }
    }

    /// A test for RACK (RFC 8985 §6.2 step 2): whether the ACK's echoed TSval
    /// `tsecr` is older than the TSval we sent at a given instant.
    pub(super) fn echo_before(&self, tsecr: Option<u32>) -> impl Fn(Instant) -> bool {
        let (ts_ok, offset) = (self.ts_ok, self.ts_offset);
        move |at: Instant| match (ts_ok, tsecr) {
            (true, Some(e)) if e != 0 => {
                let sent = (at.total_millis() as u32).wrapping_add(offset);
                (e.wrapping_sub(sent) as i32) < 0
            }
            _ => false,
        }
    }

    /// Feeds the SACK blocks of an ACK (the D-SACK block excepted) to the transmit log
    /// and RACK; returns whether a never-retransmitted segment sent before the last
    /// timeout was among the newly SACKed ones.
    pub(super) fn rack_on_sack(&mut self, now: Instant, seg: &TcpRepr<'_>, dsack: bool) -> bool {
        let limit = self.rto_recover.unwrap_or(self.snd_una);
        let mut orig = false;
        let skip = usize::from(dsack);
        for &(l, r) in seg.options.sack_ranges.iter().skip(skip).flatten() {
            if !(l < r && l >= self.snd_una && r <= self.snd_max) {
                continue;
            }
            let d = self.txlog.on_sack(l, r, &mut self.rack, now, limit);
            orig |= d.orig;
        }
        orig
    }

    /// RFC 2883 §4: the first SACK block is a D-SACK when it lies below the cumulative
    /// ACK or inside the second block. A D-SACK above the undo marker means one of our
    /// retransmissions was needless; when all of them were (RFC 3708 §3), the
    /// congestion-window reduction is undone.
    pub(super) fn on_dsack(
        &mut self,
        now: Instant,
        ev: &mut EventQueue,
        seg: &TcpRepr<'_>,
    ) -> bool {
        let blocks = &seg.options.sack_ranges;
        let Some((l, r)) = blocks[0] else {
            return false;
        };
        let inside_second = blocks[1].is_some_and(|(l2, r2)| l2 <= l && r <= r2);
        if !(l < r && (r <= seg.ack_number || inside_second)) {
            return false;
        }
        self.stats.dsacks_in += 1;
        let segs = ((r - l) as usize).div_ceil(self.send_mss().max(1)) as i64;
        if let Some(u) = self.undo.as_mut() {
            if r > u.marker && u.retrans > 0 {
                u.retrans -= segs;
                if u.retrans <= 0 {
                    self.undo_reduction(now, ev);
                }
            }
        }
        true
    }

    /// After every acceptable ACK, once SND.UNA and the scoreboard are updated: RACK
    /// (RFC 8985 §6.2 steps 4-5), the TLP episode (§7.4), F-RTO and PRR (RFC 6937); or,
    /// without SACK, the DupThresh test of RFC 5681 §3.2.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn detect_loss(
        &mut self,
        now: Instant,
        ev: &mut EventQueue,
        seg: &TcpRepr<'_>,
        una_before: SeqNumber,
        delivered: usize,
        dsack: bool,
        orig: bool,
    ) {
        if !self.sack_ok {
            // Per RFC 5681 §3.2 (2) and RFC 6582 §3.2 (1)/§4: DupThresh duplicate ACKs
            // start fast recovery, except before the ACK covers what was outstanding
            // when the retransmission timer fired.
            if self.recovery.is_none()
                && self.snd_max > self.snd_una
                && self.dupacks >= DUPTHRESH
                && self.rto_recover.is_none()
            {
                self.enter_recovery(now, ev);
            }
            return;
        }
        self.tlp_on_ack(now, ev, seg, una_before, dsack, delivered > 0);
        if self.frto != 0 && self.frto_on_ack(now, ev, seg, una_before, orig) {
            return;
        }
        self.end_rto_recovery_if_done();
        self.rack.on_ack_reo_wnd(self.snd_una, self.snd_max, dsack);
        self.rack_detect(now, ev);
        if self.recovery.is_some() {
            self.prr_on_ack(delivered);
        }
    }

    /// RFC 8985 §6.2 step 5: marks what RACK deems lost, arms the reordering timer for
    /// what is not overdue yet, and starts fast recovery on a first loss. Also runs when
    /// the reordering timer fires.
    pub(super) fn rack_detect(&mut self, now: Instant, ev: &mut EventQueue) {
        let mss = self.send_mss();
        let in_recovery = self.recovery.is_some() || self.rto_recover.is_some();
        let sacked_segs = self.scoreboard.sacked_bytes().div_ceil(mss.max(1));
        let reo_wnd = self.rack.reo_wnd(in_recovery, sacked_segs, self.rtt.srtt());
        let (marked, timeout) = self.txlog.detect_loss(&self.rack, reo_wnd, now, mss);
        self.stats.rack_lost += marked;
        let at = timeout.map(|t| now + t);
        self.timers_changed |= self.rack_at != at;
        self.rack_at = at;
        // RFC 8985 §6.2 step 5 and RFC 6675 §5: a loss starts fast recovery unless
        // recovery (fast or after a timeout) is already under way.
        if marked > 0 && !in_recovery {
            self.enter_recovery(now, ev);
        }
    }

    /// Fast retransmit and entry into fast recovery (RFC 5681 §3.2, RFC 6582, RFC 6675
    /// §5, with PRR's initialisation of RFC 6937 §3.1).
    fn enter_recovery(&mut self, now: Instant, ev: &mut EventQueue) {
        let mss = self.send_mss();
        let flight = (self.snd_max - self.snd_una).max(0) as usize;
        self.save_undo();
        self.recovery = Some(self.snd_max);
        self.cc.on_loss(now, flight, mss);
        if self.sack_ok {
            // RFC 6937 §3.1: prr_delivered = prr_out = 0, RecoverFS = FlightSize.
            self.prr = Prr {
                delivered: 0,
                out: 0,
                recover_fs: flight.max(1),
            };
        } else {
            // RFC 5681 §3.2 (3): cwnd = ssthresh + 3*SMSS.
            self.cc.set_cwnd(self.cc.ssthresh() + 3 * mss);
            self.rtx_next = Some(self.snd_una);
        }
        self.high_rxt = self.snd_una;
        ev.push(TcpEvent::FastRetransmit {
            handle: self.handle,
            seq: self.snd_una,
        });
        self.emit_cc_event(ev);
    }

    /// RFC 6937 §3.1, on every ACK during fast recovery with `delivered` bytes newly
    /// delivered (cumulatively or selectively): cwnd = pipe + sndcnt, with sndcnt the
    /// proportional share while pipe > ssthresh, else PRR-SSRB's slow-start bound.
    pub(super) fn prr_on_ack(&mut self, delivered: usize) {
        let mss = self.send_mss();
        self.prr.delivered += delivered;
        if self.cc.controls_cwnd() {
            // BBR sets cwnd itself (packet conservation), as Linux skips PRR for a
            // `cong_control` module.
            return;
        }
        let pipe = self.pipe();
        let ssthresh = self.cc.ssthresh();
        let sndcnt = if pipe > ssthresh {
            // "sndcnt = CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out"
            let share = (self.prr.delivered as u128 * ssthresh as u128)
                .div_ceil(self.prr.recover_fs as u128)
                .min(usize::MAX as u128) as usize;
            share.saturating_sub(self.prr.out)
        } else {
            // PRR-SSRB: "limit = MAX(prr_delivered - prr_out, DeliveredData) + MSS;
            // sndcnt = MIN(ssthresh - pipe, limit)"
            let limit = self
                .prr
                .delivered
                .saturating_sub(self.prr.out)
                .max(delivered)
                + mss;
            (ssthresh - pipe).min(limit)
        };
        // The fast retransmit itself always goes (Linux's tcp_cwnd_reduction: "Force a
        // fast retransmit upon entering fast recovery"), even when pipe <= ssthresh
        // leaves PRR-SSRB nothing to send.
        let sndcnt = if self.prr.out == 0 {
            sndcnt.max(mss)
        } else {
            sndcnt
        };
        self.cc.set_cwnd(pipe + sndcnt);
    }

    /// RFC 6937: "On any data transmission or retransmission: prr_out += (data sent)".
    pub(super) fn prr_on_send(&mut self, sent: usize) {
        if self.recovery.is_some() && self.sack_ok {
            self.prr.out += sent;
        }
    }

    /// Bytes in flight: with RACK's marks, unacknowledged bytes neither SACKed nor
    /// deemed lost, retransmissions in flight included (RFC 6675 §4 SetPipe as Linux
    /// counts it: packets_out - sacked_out - lost_out + retrans_out).
    pub(super) fn pipe(&self) -> usize {
        self.txlog.pipe()
    }

    /// RFC 6582 §4: recovery after a timeout ends once the cumulative ACK covers what
    /// was outstanding when the timer fired.
    pub(super) fn end_rto_recovery_if_done(&mut self) {
        if self.rto_recover.is_some_and(|r| self.snd_una >= r) {
            self.rto_recover = None;
            self.rto_tsval = None;
            self.frto = 0;
            self.rack.on_recovery_exit();
        }
    }

    // ------------------------------------------------------------------ undo

    /// Remembers cwnd and ssthresh before a reduction (RFC 3708 §3, RFC 5682 §3.1).
    pub(super) fn save_undo(&mut self) {
        if !self.sack_ok {
            return;
        }
        self.undo = Some(Undo {
            cwnd: self.cc.cwnd(),
            ssthresh: self.cc.ssthresh(),
            marker: self.snd_una,
            retrans: 0,
        });
    }

    /// A reduction proved spurious: cwnd and ssthresh go back to (at least) what they
    /// were, recovery ends; after a timeout, its loss marks are taken back too.
    fn undo_reduction(&mut self, _now: Instant, ev: &mut EventQueue) {
        let Some(u) = self.undo.take() else {
            return;
        };
        self.cc.set_ssthresh(self.cc.ssthresh().max(u.ssthresh));
        self.cc.set_cwnd(self.cc.cwnd().max(u.cwnd));
        if self.recovery.take().is_some() {
            self.rack.on_recovery_exit();
        }
        if self.rto_recover.take().is_some() {
            // RFC 5682 §3.1 / RFC 4015: the timeout was spurious; what it marked lost
            // is in flight after all.
            self.stats.spurious_rtos += 1;
            self.rto_tsval = None;
            self.frto = 0;
            self.txlog.unmark_lost();
            self.rtt.reset_backoff();
        }
        self.stats.undos += 1;
        ev.push(TcpEvent::CongestionUndone {
            handle: self.handle,
            cwnd: self.cc.cwnd(),
            ssthresh: self.cc.ssthresh(),
        });
    }

    /// F-RTO (RFC 5682 §3.1, SACK-enhanced, as Linux applies it) with Eifel's timestamp
    /// test (RFC 3522 §3.2) on the ACKs after a timeout. Returns true when the timeout
    /// was found spurious and undone.
    fn frto_on_ack(
        &mut self,
        now: Instant,
        ev: &mut EventQueue,
        seg: &TcpRepr<'_>,
        una_before: SeqNumber,
        orig: bool,
    ) -> bool {
        let Some(recover) = self.rto_recover else {
            self.frto = 0;
            return false;
        };
        let advanced = self.snd_una > una_before;
        // RFC 3522: an ACK that advances SND.UNA while echoing a TSval older than the
        // timeout acknowledges an original transmission: the timeout was spurious.
        let eifel = advanced
            && self.ts_ok
            && self.rto_tsval.is_some_and(|t| {
                seg.options
                    .timestamp
                    .is_some_and(|(_, e)| e != 0 && (e.wrapping_sub(t) as i32) < 0)
            });
        // RFC 5682 §3.1 step 3 (b): an ACK (or SACK) for a segment that was sent
        // before the timeout and never retransmitted.
        if eifel || (self.frto == 2 && orig) {
            self.undo_reduction(now, ev);
            return true;
        }
        if self.frto == 1 {
            // Step 2: the first ACK. A duplicate ACK, or one covering everything, says
            // nothing: conventional recovery (2a). One advancing SND.UNA lets up to two
            // new segments out instead of retransmissions (2b), if there are any.
            let new_data =
                self.snd_buf_end > self.snd_max && self.snd_una + self.snd_wnd > self.snd_max;
            self.frto = if advanced && self.snd_una < recover && new_data {
                2
            } else {
                0
            };
        } else {
            // Step 3 (a): the second ACK acknowledged nothing sent before the timeout
            // that was not retransmitted: the loss was real.
            self.frto = 0;
        }
        false
    }

    // ------------------------------------------------------------------ TLP

    /// Arms the tail loss probe (RFC 8985 §7.2) after new data went out or an ACK came:
    /// PTO = 2·SRTT plus WCDelAckT when one segment is in flight, else plus Linux's
    /// TCP_TIMEOUT_MIN; 1 s without an RTT sample; no later than the RTO. Only with
    /// SACK, outside recovery, with nothing SACKed or marked lost (Linux's "CA_Open"
    /// condition), and no probe episode open; in fast recovery, the recovery probe
    /// (`recovery_probe_pto`) instead.
    pub(super) fn arm_tlp(&mut self, now: Instant) {
        if self.tlp_at.is_none() && self.snd_max <= self.snd_una {
            // Nothing in flight and nothing armed: `tlp_deadline` would say `None`
            // (a receiver's every data segment comes here).
            return;
        }
        let at = self.tlp_deadline(now);
        self.timers_changed |= self.tlp_at != at;
        self.tlp_at = at;
    }

    /// `arm_tlp` after a new segment went out. RFC 8985 §7.2 restarts the probe timer
    /// at every transmission of new data (Linux's tcp_schedule_loss_probe runs once
    /// per burst, after tcp_write_xmit's loop); within one burst, sent at one `now`,
    /// the deadline cannot move: SRTT, the conditions and SND.UNA change only with
    /// input, timers and ICMP errors (which clear `tlp_armed`), `state` and `rto_at`
    /// are in the key, and with more than one MSS already in flight a larger flight
    /// keeps the same PTO term. So the deadline is recomputed only when the key
    /// differs: about 90 instructions per segment of a bulk transfer saved.
    pub(super) fn arm_tlp_after_send(&mut self, now: Instant) {
        if let Some((t, rto, state, at)) = self.tlp_armed {
            if t == now && rto == self.rto_at && state == self.state && Some(at) == self.tlp_at {
                return;
            }
        }
        self.arm_tlp(now);
        self.tlp_armed = match self.tlp_at {
            Some(at) if self.in_flight() > self.send_mss() => {
                Some((now, self.rto_at, self.state, at))
            }
            _ => None,
        };
    }

    /// Whether any probe may be armed: with SACK, not in recovery after a timeout, no
    /// probe episode open or probe pending, and something in flight.
    fn probe_allowed(&self) -> bool {
        self.sack_ok
            && self.rto_recover.is_none()
            && self.tlp_end.is_none()
            && !self.tlp_pending
            && self.snd_max > self.snd_una
    }

    /// When a tail loss probe (or, in fast recovery, a recovery probe) is due from
    /// `now`, if one should be armed.
    fn tlp_deadline(&self, now: Instant) -> Option<Instant> {
        let pto = if self.recovery.is_some() {
            self.recovery_probe_pto()?
        } else {
            if !self.probe_allowed()
                || self.scoreboard.sacked_bytes() != 0
                || self.txlog.lost_bytes() != 0
                || !matches!(
                    self.state,
                    TcpState::Established | TcpState::CloseWait | TcpState::FinWait1
                )
            {
                // FIN-WAIT-1 too (Linux's tcp_schedule_loss_probe does not look at the
                // state): without it, the tail of every transfer whose sender had
                // already shut down writing (up to a send buffer of data still to go)
                // went without a probe, and lost ACKs there cost an RTO. CLOSING and
                // LAST-ACK are left to the RTO as before.
                return None;
            }
            match self.rtt.srtt() {
                Some(srtt) => {
                    let pto = srtt.saturating_mul(2);
                    if ((self.snd_max - self.snd_una).max(0) as usize) <= self.send_mss() {
                        pto + WC_DEL_ACK
                    } else {
                        pto + PTO_SLACK
                    }
                }
                None => Duration::from_secs(1),
            }
        };
        let at = now + pto;
        // "If Now() + PTO > TCP_RTO_expire(): PTO = TCP_RTO_expire() - Now()"
        Some(self.rto_at.map_or(at, |rto| at.min(rto)))
    }

    /// The PTO of a probe in fast recovery, if one may be armed; RFC 8985 §7.2 and
    /// Linux send none there. When no ACK came for 2·SRTT + `PTO_SLACK` (no
    /// delayed-ACK allowance: a receiver with a hole ACKs every segment at once, RFC
    /// 5681 §4.2), SND.UNA's segment is resent, beyond cwnd, once per silence, and
    /// another only after an ACK delivered something (`tlp_on_ack`). In recovery RACK
    /// finds a lost retransmission only through segments sent after it, and an ACK
    /// clock only through ACKs: when the last retransmission was lost with nothing
    /// sent after it, or the ACKs of the rest of the flight were lost (packet
    /// conservation then leaves no room to send), the RTO was the only way out (`bench
    /// loss --echo` at 10 %: most of the echo server's remaining 200 ms stalls). The
    /// segment at SND.UNA is the one the receiver is missing if the retransmission was
    /// lost; if it arrived, the probe draws a D-SACK and an ACK with the SACK blocks
    /// that were lost.
    fn recovery_probe_pto(&self) -> Option<Duration> {
        if !self.probe_allowed() || !self.may_send_data() {
            return None;
        }
        Some(self.rtt.srtt()?.saturating_mul(2) + PTO_SLACK)
    }

    /// The probe timeout fired (RFC 8985 §7.3): send one new segment if the peer's
    /// window allows (beyond cwnd), else resend the last segment sent; then the RTO,
    /// not another PTO, is armed. In fast recovery: the recovery probe.
    pub(super) fn fire_tlp(&mut self, now: Instant, ev: &mut EventQueue) {
        if self.recovery.is_some() && self.recovery_probe_pto().is_some() {
            self.rtx_next = Some(self.snd_una);
            self.tlp_pending = true;
            self.tlp_in_recovery = true;
            self.stats.recovery_probes += 1;
            ev.push(TcpEvent::LossProbe {
                handle: self.handle,
                seq: self.snd_una,
                new_data: false,
            });
            self.arm_rto_after_probe(now);
            return;
        }
        if self.recovery.is_some()
            || self.rto_recover.is_some()
            || self.tlp_end.is_some()
            || self.snd_max <= self.snd_una
            || !self.may_send_data()
        {
            return;
        }
        let new_data =
            self.snd_buf_end > self.snd_max && self.snd_una + self.snd_wnd > self.snd_max;
        let seq = if new_data {
            self.snd_max
        } else {
            let data_end = self.snd_buf_end.min(self.snd_max);
            let data_flight = (data_end - self.snd_una).max(0) as usize;
            let seq = if data_flight > 0 {
                data_end - data_flight.min(self.send_mss())
            } else {
                // Only the FIN is outstanding.
                self.snd_max - 1
            };
            self.rtx_next = Some(seq);
            seq
        };
        self.tlp_pending = true;
        self.tlp_in_recovery = false;
        self.stats.tlp_probes += 1;
        ev.push(TcpEvent::LossProbe {
            handle: self.handle,
            seq,
            new_data,
        });
        self.arm_rto_after_probe(now);
    }

    /// The RTO armed after a probe.
    fn arm_rto_after_probe(&mut self, now: Instant) {
        // RFC 8985 §7.3: "the sender MUST arm the RTO timer, not the PTO timer". As
        // Linux's tcp_rearm_rto with a probe pending, it runs from the latest
        // transmission of SND.UNA's segment, not from the probe: the probe came PTO
        // after the last ACK, which may itself have come long after that segment left,
        // and the timeout is about that segment.
        let head_rto = self.txlog.head_sent().map(|t| t + self.rtt.rto());
        let at = Some(head_rto.map_or(now + self.rtt.rto(), |t| t.max(now + MIN_RTO_AFTER_PROBE)));
        self.timers_changed |= self.rto_at != at;
        self.rto_at = at;
    }

    /// The probe left: its episode starts (RFC 8985 §7.3 `TLP.end_seq = SND.NXT`).
    pub(super) fn tlp_sent(&mut self, rtx: bool) {
        if self.tlp_pending {
            self.tlp_pending = false;
            self.tlp_end = Some(self.snd_max);
            self.tlp_retrans = rtx;
        }
    }

    /// RFC 8985 §7.4 `TLP_process_ack`: closes the probe's episode; when a
    /// retransmitted probe repaired a loss (its ACK goes beyond the probe without a
    /// D-SACK for it), congestion control reacts once, as to any loss.
    fn tlp_on_ack(
        &mut self,
        now: Instant,
        ev: &mut EventQueue,
        seg: &TcpRepr<'_>,
        una_before: SeqNumber,
        dsack: bool,
        progress: bool,
    ) {
        let Some(end) = self.tlp_end else {
            return;
        };
        if self.tlp_in_recovery {
            // An ACK that delivers something (cumulatively or by SACK) answers a
            // recovery probe and lets the next silence have one; recovery itself
            // reacted to the loss. One that delivers nothing does not: a peer that
            // never moves (a full receive buffer dropping what it gets) must not earn
            // a probe per ACK, each pushing the RTO and its backoff further out.
            if progress {
                self.tlp_end = None;
            }
            return;
        }
        let ack = seg.ack_number;
        if ack < end {
            return;
        }
        let dsack_for_probe = dsack && seg.options.sack_ranges[0].is_some_and(|(_, r)| r == end);
        let dupack = ack == end
            && seg.options.sack_ranges[0].is_none()
            && seg.payload.is_empty()
            && una_before == end;
        if !self.tlp_retrans || dsack_for_probe {
            // New data delivered, or both the original and the probe arrived.
            self.tlp_end = None;
        } else if ack > end {
            // "Repaired the single loss": reduce cwnd once (Linux enters CWR and
            // leaves it at once, cwnd = ssthresh).
            self.tlp_end = None;
            if self.recovery.is_none() && self.rto_recover.is_none() {
                let flight = (self.snd_max - self.snd_una).max(0) as usize;
                self.save_undo();
                self.cc.on_loss(now, flight, self.send_mss());
                self.emit_cc_event(ev);
            }
        } else if dupack {
            self.tlp_end = None;
        }
    }

    pub(super) fn emit_cc_event(&self, ev: &mut EventQueue) {
        ev.push(TcpEvent::CongestionChanged {
            handle: self.handle,
            cwnd: self.cc.cwnd(),
            ssthresh: self.cc.ssthresh(),
        });
    }
}
