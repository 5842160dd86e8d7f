//! Loss detection and recovery for one connection, and the congestion-control hooks:
//! duplicate ACKs and SACK-based loss (RFC 5681 §3.2, RFC 6675 §5), NewReno partial ACKs
//! (RFC 6582), the pipe estimate, the tail loss probe (RFC 8985 §7) and the events that
//! report congestion changes. The scoreboard itself is [`crate::socket::tcp::sack`]; the
//! algorithms behind [`CongestionControl`](crate::socket::tcp::CongestionControl) are in
//! `congestion/`.
//!
//! Invariants: `recovery` is set exactly while in fast recovery and holds RFC 6582's
//! "recover"; `high_rxt` never falls below SND.UNA; no fast retransmit starts while
//! `rto_recover` is set (the ACK has not yet covered what was out at the last timeout).

use super::{Socket, DUPTHRESH};
use crate::socket::tcp::types::{EventQueue, TcpEvent, TcpState};
use crate::time::{Duration, Instant};
use crate::wire::TcpRepr;

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
                    // Per RFC 6675 §5: recovery ran with cwnd = ssthresh and pipe kept
                    // the flight in check; leaving it keeps cwnd at ssthresh (as Linux
                    // does) rather than restarting from two segments.
                    self.cc.ssthresh()
                } else {
                    // Per RFC 6582 §3.2 (3): a full acknowledgment ends fast recovery;
                    // cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS), which guards
                    // against a burst when the inflated window deflates.
                    let flight = (self.snd_max - self.snd_una).max(0) as usize;
                    self.cc.ssthresh().min(flight.max(mss) + mss)
                };
                self.cc.set_cwnd(cwnd);
                self.recovery = None;
                self.rtx_una_mark = None;
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

    /// After every ACK: enters fast recovery on DupThresh duplicate ACKs or SACK-based
    /// loss, or, during SACK recovery, resends SND.UNA when its retransmission was lost.
    pub(super) fn detect_loss(&mut self, now: Instant, ev: &mut EventQueue, mss: usize) {
        if self.recovery.is_none() && self.snd_max > self.snd_una {
            // Per RFC 6675 §5 (1)-(2): DupThresh duplicate ACKs, or IsLost(HighACK + 1)
            // -- more than (DupThresh - 1) * SMSS SACKed above SND.UNA -- whether or not
            // this ACK also advanced SND.UNA, starts loss recovery.
            let sack_loss = self.sack_ok
                && self.scoreboard.sacked_above(self.snd_una) > (DUPTHRESH as usize - 1) * mss;
            // Per RFC 6582 §3.2 (1) and §4: no fast retransmit until the ACK covers
            // what was outstanding when the retransmission timer fired.
            if (self.dupacks >= DUPTHRESH || sack_loss) && self.rto_recover.is_none() {
                self.enter_recovery(now, ev);
            }
        } else if let (true, Some((seq, mark))) = (self.sack_ok, self.rtx_una_mark) {
            if self.snd_una != seq {
                self.rtx_una_mark = None;
            } else if self.scoreboard.sacked_above(mark) > (DUPTHRESH as usize - 1) * mss {
                // The retransmission of SND.UNA was lost too: more than DupThresh - 1
                // segments sent after it have been SACKed while it is still missing
                // (the IsLost rule applied to the retransmission, as RFC 8985 RACK
                // would conclude from send order). Resend it now rather than waiting
                // for the RTO; the recovery episode and cwnd stay as they are.
                self.rtx_una_mark = None;
                self.rtx_next = Some(self.snd_una);
            }
        }
    }

    /// Fast retransmit and entry into fast recovery (RFC 5681 §3.2, RFC 6582, RFC 6675 §5).
    fn enter_recovery(&mut self, now: Instant, ev: &mut EventQueue) {
        let mss = self.send_mss();
        let flight = (self.snd_max - self.snd_una).max(0) as usize;
        self.recovery = Some(self.snd_max);
        self.cc.on_loss(now, flight, mss);
        if !self.sack_ok {
            // RFC 5681 §3.2 (3): cwnd = ssthresh + 3*SMSS.
            self.cc.set_cwnd(self.cc.ssthresh() + 3 * mss);
        }
        self.high_rxt = self.snd_una;
        self.rtx_next = Some(self.snd_una);
        ev.push(TcpEvent::FastRetransmit {
            handle: self.handle,
            seq: self.snd_una,
        });
        self.emit_cc_event(ev);
    }

    pub(super) fn pipe(&self) -> usize {
        // RFC 6675 §4 SetPipe, simplified: bytes above the highest SACK are in flight;
        // holes below it are lost and count again once retransmitted.
        let highest = self.scoreboard.highest().unwrap_or(self.snd_una);
        let above = (self.snd_max - highest.max(self.snd_una)).max(0) as usize;
        let upto = self.high_rxt.min(highest);
        above + self.scoreboard.hole_bytes_below(self.snd_una, upto)
    }

    /// Arms the tail loss probe (RFC 8985 §7.2) after new data went out or an ACK
    /// advanced SND.UNA: PTO = 2 * SRTT (plus a worst-case delayed ACK when a single
    /// segment is in flight), at least 10 ms, and only if it comes before the RTO.
    /// Not during loss recovery, without SACK, or with a probe already out.
    pub(super) fn arm_tlp(&mut self, now: Instant) {
        let at = self.tlp_deadline(now);
        self.timers_changed |= self.tlp_at != at;
        self.tlp_at = at;
    }

    /// When a tail loss probe is due from `now`, if one should be armed.
    fn tlp_deadline(&self, now: Instant) -> Option<Instant> {
        if !self.sack_ok
            || self.recovery.is_some()
            || self.tlp_probed
            || self.snd_max <= self.snd_una
            || !matches!(self.state, TcpState::Established | TcpState::CloseWait)
        {
            return None;
        }
        let srtt = self.rtt.srtt()?;
        let mut pto = srtt.saturating_mul(2);
        if ((self.snd_max - self.snd_una).max(0) as usize) <= self.send_mss() {
            pto += Duration::from_millis(200);
        }
        let at = now + pto.max(Duration::from_millis(10));
        self.rto_at.is_none_or(|rto| at < rto).then_some(at)
    }

    /// The probe timeout fired: resend the last segment sent (RFC 8985 §7.3 when no new
    /// data can go). Its ACK -- or its SACK -- tells what the tail of the flight lost,
    /// typically after the peer's ACKs for it were lost, without waiting for the RTO.
    pub(super) fn fire_tlp(&mut self) {
        if self.recovery.is_some() || self.snd_max <= self.snd_una || !self.may_send_data() {
            return;
        }
        let flight = (self.snd_max - self.snd_una).max(0) as usize;
        let data_end = self.snd_buf_end.min(self.snd_max);
        let data_flight = (data_end - self.snd_una).max(0) as usize;
        let last = data_flight.min(self.send_mss());
        self.rtx_next = Some(if data_flight > 0 {
            data_end - last
        } else {
            // Only the FIN is outstanding.
            self.snd_max - flight.min(1)
        });
        self.tlp_probed = true;
    }

    pub(super) fn emit_cc_event(&self, ev: &mut EventQueue) {
        ev.push(TcpEvent::CongestionChanged {
            handle: self.handle,
            cwnd: self.cc.cwnd(),
            ssthresh: self.cc.ssthresh(),
        });
    }
}
