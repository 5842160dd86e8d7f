//! The connection's side of rate-based congestion control (BBR): a delivery-rate sample
//! per ACK handed to the controller, the application-limited mark, and pacing.
//!
//! Pacing follows Linux's internal TCP pacing (`tcp_wstamp_ns`, used when no `fq`
//! qdisc paces for it): after a segment of `len` bytes the next data segment may leave
//! `len / pacing_rate` later. As in Linux, the gate holds back every data segment,
//! retransmissions included (`tcp_xmit_retransmit_queue` stops on `tcp_pacing_check`
//! too); bare ACKs, window updates and probes are never held. The host loop sleeps with
//! millisecond granularity, so the gate lets a sender that fell behind catch up by at
//! most `PACING_SLACK` of its rate in one burst, much as Linux sizes TSO bursts to about
//! 1 ms of the pacing rate (`tcp_tso_autosize`).
//!
//! Only controllers that return a [`pacing_rate`](crate::socket::tcp::CongestionControl::pacing_rate)
//! are paced; for NewReno and CUBIC `pace_next` stays `None` and the gate is open.
//!
//! Invariant: `pace_at` is set only while the gate is closed at the last look, and every
//! write to it sets `timers_changed` (the layer's deadline heap stays current).

use super::Socket;
use crate::socket::tcp::congestion::{self, AckState, CaState, CongestionAlgorithm};
use crate::time::{Duration, Instant};

/// How far behind its schedule a paced sender may fall and still send what it owes at
/// once (about Linux's 1 ms TSO autosizing burst).
const PACING_SLACK: Duration = Duration::from_millis(1);

impl Socket {
    /// Makes the congestion controller fresh for `mss` (connection set-up and SYN
    /// negotiation) and seeds its randomness from the ISN, which the layer draws from its
    /// seeded key, so a simulation replays exactly. BBR needs the SACK-based transmit log
    /// for its rate samples: once the SYN options are `negotiated`, a connection without
    /// SACK runs CUBIC instead.
    pub(super) fn renew_cc(&mut self, mss: usize, negotiated: bool) {
        let mut alg = self.opts.congestion;
        if alg == CongestionAlgorithm::Bbr && negotiated && !self.sack_ok {
            alg = CongestionAlgorithm::Cubic;
        }
        congestion::renew_controller(&mut self.cc, alg, mss);
        self.cc
            .seed(u64::from(self.iss.0).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995);
        self.pace_next = None;
    }

    /// After an ACK was processed and losses detected: one delivery-rate sample to a
    /// controller that sets cwnd from them (Linux `tcp_rate_gen` + `cong_control`).
    pub(super) fn on_ack_rate(&mut self, now: Instant) {
        if !self.sack_ok || !self.cc.controls_cwnd() {
            return;
        }
        let rs = self.txlog.rate.generate(now);
        let ca_state = if self.rto_recover.is_some() {
            CaState::Loss
        } else if self.recovery.is_some() {
            CaState::Recovery
        } else {
            CaState::Open
        };
        let in_flight = self.flight_for_rate();
        let ack = AckState {
            in_flight,
            ca_state,
            mss: self.send_mss(),
            srtt: self.rtt.srtt(),
        };
        self.cc.on_rate_sample(now, &rs, &ack);
        if self.cc.wants_app_limited() {
            self.txlog.rate.mark_app_limited(in_flight);
        }
    }

    /// Bytes in flight as Linux's `tcp_packets_in_flight` counts them: the transmit
    /// log's pipe when anything is marked lost or recovery is under way, else what is
    /// unacknowledged and not SACKed (cheaper, and the same then).
    fn flight_for_rate(&self) -> usize {
        if self.recovery.is_some() || self.rto_recover.is_some() || self.txlog.lost_bytes() != 0 {
            self.pipe()
        } else {
            self.in_flight()
                .saturating_sub(self.scoreboard.sacked_bytes())
        }
    }

    /// draft-cheng-iccrg-delivery-rate-estimation §3.4 (Linux
    /// `tcp_rate_check_app_limited`), when the application writes: with less than a
    /// segment unsent, room in cwnd and no loss waiting for retransmission, the sender
    /// was limited by the application, and so are the samples of what is in flight.
    pub(super) fn check_app_limited(&mut self) {
        if !self.sack_ok {
            return;
        }
        let unsent = (self.snd_buf_end - self.snd_nxt).max(0) as usize;
        let in_flight = self.flight_for_rate();
        if unsent < self.send_mss() && in_flight < self.cc.cwnd() && self.txlog.lost_bytes() == 0 {
            self.txlog.rate.mark_app_limited(in_flight);
        }
    }

    /// Whether pacing holds data segments back at `now`; if so, the pacing timer is
    /// armed for when it opens.
    pub(super) fn pacing_blocks(&mut self, now: Instant) -> bool {
        match self.pace_next {
            Some(next) if next > now => {
                let at = Some(next);
                self.timers_changed |= self.pace_at != at;
                self.pace_at = at;
                true
            }
            _ => false,
        }
    }

    /// A data segment of `len` bytes left at `now`: the next may leave `len /
    /// pacing_rate` after this one's slot.
    pub(super) fn pace_after_send(&mut self, now: Instant, len: usize) {
        let Some(rate) = self.cc.pacing_rate() else {
            self.pace_next = None;
            return;
        };
        let slot = self.pace_next.map_or(now, |t| t.max(now - PACING_SLACK));
        let us = (len as u128 * 1_000_000).div_ceil(u128::from(rate.max(1)));
        self.pace_next = Some(slot + Duration::from_micros(us.min(u128::from(u32::MAX)) as u64));
    }

    /// The pacing timer fired: the gate is open again (dispatch follows).
    pub(super) fn pacing_timer_fired(&mut self) {
        self.timers_changed |= self.pace_at.is_some();
        self.pace_at = None;
    }
}
