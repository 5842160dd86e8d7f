//! Congestion control behind a trait: NewReno (RFC 5681, RFC 6582), CUBIC (RFC 9438)
//! with HyStart++ (RFC 9406) in its first slow start, and BBR v1
//! (draft-cardwell-iccrg-bbr-congestion-control-00, as Linux's `tcp_bbr.c`).
//!
//! NewReno and CUBIC are loss-based: the connection grows cwnd through
//! [`CongestionControl::on_ack`] and runs PRR (RFC 6937) during recovery. BBR is
//! model-based, as Linux's `cong_control` modules: it
//! [`controls_cwnd`](CongestionControl::controls_cwnd), so the connection skips PRR and
//! the end-of-recovery cwnd, and instead hands it a delivery-rate sample (`rate.rs`) on
//! every ACK; it also
//! returns a [`pacing_rate`](CongestionControl::pacing_rate), which the send path
//! enforces.
//!
//! The controller owns `cwnd` and `ssthresh` and decides their growth on ACKs and their
//! reduction on loss. Loss *recovery* (which segment to retransmit, fast-recovery window
//! inflation for NewReno, the RFC 6675 pipe for SACK) lives in the connection, which
//! adjusts `cwnd` through [`CongestionControl::set_cwnd`] while recovering.
//!
//! Invariant: `cwnd >= 1 MSS` and `ssthresh >= 2 MSS` after any loss.

mod bbr;
mod cubic;
mod hystart;
mod newreno;

pub use bbr::Bbr;
pub use cubic::Cubic;
pub use newreno::NewReno;

pub use super::rate::RateSample;

use crate::time::{Duration, Instant};
use core::fmt;

/// Which congestion control algorithm a socket uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CongestionAlgorithm {
    /// NewReno (RFC 5681 + RFC 6582).
    NewReno,
    /// CUBIC (RFC 9438), Linux's default.
    #[default]
    Cubic,
    /// BBR v1 (draft-cardwell-iccrg-bbr-congestion-control-00, Linux `tcp_bbr.c`).
    Bbr,
}

impl CongestionAlgorithm {
    /// Every algorithm, in the order `ustack --help` lists them.
    pub const ALL: [CongestionAlgorithm; 3] = [
        CongestionAlgorithm::NewReno,
        CongestionAlgorithm::Cubic,
        CongestionAlgorithm::Bbr,
    ];

    /// The algorithm Linux calls `name` (TCP_CONGESTION's names; `newreno` is taken for
    /// `reno`), if ustack has it.
    pub fn from_name(name: &str) -> Option<CongestionAlgorithm> {
        let name = if name == "newreno" { "reno" } else { name };
        Self::ALL.into_iter().find(|a| a.to_string() == name)
    }
}

/// Where the connection is in loss recovery, as Linux's `icsk_ca_state` tells a
/// `cong_control` module.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum CaState {
    /// No recovery under way.
    #[default]
    Open,
    /// Fast recovery (RFC 6675 / RACK).
    Recovery,
    /// Recovery after a retransmission timeout.
    Loss,
}

/// What the connection tells a rate-based controller on each ACK, besides the sample.
#[derive(Clone, Copy, Debug, Default)]
pub struct AckState {
    /// Bytes in flight after the ACK (RFC 6675 pipe: neither SACKed nor deemed lost).
    pub in_flight: usize,
    /// Recovery state after the ACK was processed.
    pub ca_state: CaState,
    /// Send MSS.
    pub mss: usize,
    /// Smoothed RTT, if measured.
    pub srtt: Option<Duration>,
}

impl fmt::Display for CongestionAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CongestionAlgorithm::NewReno => "reno",
            CongestionAlgorithm::Cubic => "cubic",
            CongestionAlgorithm::Bbr => "bbr",
        })
    }
}

/// A congestion controller of one connection.
pub trait CongestionControl: fmt::Debug + Send {
    /// Which algorithm this is.
    fn algorithm(&self) -> CongestionAlgorithm;
    /// Congestion window in bytes.
    fn cwnd(&self) -> usize;
    /// Slow-start threshold in bytes.
    fn ssthresh(&self) -> usize;
    /// Overrides cwnd (used by loss recovery).
    fn set_cwnd(&mut self, cwnd: usize);
    /// Overrides ssthresh (used to undo a spurious reduction, RFC 3708 / RFC 5682).
    fn set_ssthresh(&mut self, ssthresh: usize);
    /// `acked` new bytes were cumulatively acknowledged outside loss recovery.
    fn on_ack(&mut self, now: Instant, acked: usize, mss: usize, srtt: Option<Duration>);
    /// An ACK that advanced SND.UNA, outside loss recovery or in it, before
    /// [`on_ack`](Self::on_ack): the RTT sample it gave, if any, and whether it starts a
    /// new round (it acknowledged what was SND.NXT when the previous round started;
    /// RFC 9406 §4.2). Delay-based slow-start exit (HyStart++) uses it; the default
    /// ignores it.
    fn on_rtt_sample(&mut self, _rtt: Option<Duration>, _round_start: bool) {}
    /// A loss was detected by duplicate ACKs or SACK (entering fast recovery):
    /// reduce ssthresh and set cwnd to it.
    fn on_loss(&mut self, now: Instant, flight: usize, mss: usize);
    /// The retransmission timer expired: reduce ssthresh, cwnd to one segment
    /// (RFC 5681 §3.1 loss window).
    fn on_rto(&mut self, now: Instant, flight: usize, mss: usize);
    /// Starts over in place as a fresh controller for `mss`; false when this one
    /// cannot (the connection then makes a new one with [`new_controller`]).
    fn restart(&mut self, _mss: usize) -> bool {
        false
    }
    /// Whether this controller sets cwnd itself from rate samples (Linux's
    /// `cong_control`): then the connection runs no PRR and leaves cwnd alone when
    /// recovery ends. NewReno and CUBIC: no.
    fn controls_cwnd(&self) -> bool {
        false
    }
    /// A delivery-rate sample from an ACK (`rate.rs`), after loss detection ran;
    /// only called when [`controls_cwnd`](Self::controls_cwnd).
    fn on_rate_sample(&mut self, _now: Instant, _rs: &RateSample, _ack: &AckState) {}
    /// Bytes per second the sender should pace at, if this controller paces.
    fn pacing_rate(&self) -> Option<u64> {
        None
    }
    /// Whether the controller wants the rate samples of what is in flight now marked
    /// application-limited (BBR's PROBE_RTT, whose low rate says nothing of the path).
    fn wants_app_limited(&self) -> bool {
        false
    }
    /// Seeds the controller's randomness (BBR's gain-cycle phase) from the connection.
    fn seed(&mut self, _seed: u64) {}
}

/// The initial window of RFC 6928 §2: `min(10*MSS, max(2*MSS, 14600))`.
pub fn initial_window(mss: usize) -> usize {
    (10 * mss).min((2 * mss).max(14_600))
}

/// Slow start growth per ACK (RFC 5681 §3.1 with RFC 3465 L = 2 SMSS).
pub(crate) fn slow_start_increase(acked: usize, mss: usize) -> usize {
    acked.min(2 * mss)
}

/// A new controller for a connection with send MSS `mss`.
pub fn new_controller(alg: CongestionAlgorithm, mss: usize) -> Box<dyn CongestionControl> {
    match alg {
        CongestionAlgorithm::NewReno => Box::new(NewReno::new(mss)),
        CongestionAlgorithm::Cubic => Box::new(Cubic::new(mss)),
        CongestionAlgorithm::Bbr => Box::new(Bbr::new(mss)),
    }
}

/// Makes `cc` a fresh controller of `alg` for `mss`, in its own allocation when it is
/// of that algorithm already: a connection resets its controller up to three times
/// during set-up (socket, SYN, handshake), and the connection rate pays for each box.
pub(crate) fn renew_controller(
    cc: &mut Box<dyn CongestionControl>,
    alg: CongestionAlgorithm,
    mss: usize,
) {
    if cc.algorithm() != alg || !cc.restart(mss) {
        *cc = new_controller(alg, mss);
    }
}
