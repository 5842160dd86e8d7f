//! Congestion control behind a trait: NewReno (RFC 5681, RFC 6582) and CUBIC (RFC 9438)
//! with HyStart++ (RFC 9406) in its first slow start.
//!
//! The controller owns `cwnd` and `ssthresh` and decides their growth on ACKs and their
//! reduction on loss. Loss *recovery* (which segment to retransmit, fast-recovery window
//! inflation for NewReno, the RFC 6675 pipe for SACK) lives in the connection, which
//! adjusts `cwnd` through [`CongestionControl::set_cwnd`] while recovering.
//!
//! Invariant: `cwnd >= 1 MSS` and `ssthresh >= 2 MSS` after any loss.

mod cubic;
mod hystart;
mod newreno;

pub use cubic::Cubic;
pub use newreno::NewReno;

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
}

impl fmt::Display for CongestionAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CongestionAlgorithm::NewReno => "reno",
            CongestionAlgorithm::Cubic => "cubic",
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
