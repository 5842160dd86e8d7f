//! NewReno congestion avoidance (RFC 5681 §3.1): slow start below ssthresh, then one
//! segment per window of acknowledged bytes (appropriate byte counting, RFC 3465).

use super::{initial_window, slow_start_increase, CongestionAlgorithm, CongestionControl};
use crate::time::{Duration, Instant};

/// NewReno state.
#[derive(Clone, Debug)]
pub struct NewReno {
    cwnd: usize,
    ssthresh: usize,
    /// Bytes acknowledged in congestion avoidance since cwnd last grew.
    bytes_acked: usize,
}

impl NewReno {
    /// Initial window of RFC 6928; ssthresh starts "arbitrarily high" (RFC 5681 §3.1).
    pub fn new(mss: usize) -> NewReno {
        NewReno {
            cwnd: initial_window(mss),
            ssthresh: usize::MAX,
            bytes_acked: 0,
        }
    }
}

impl CongestionControl for NewReno {
    fn restart(&mut self, mss: usize) -> bool {
        *self = NewReno::new(mss);
        true
    }

    fn algorithm(&self) -> CongestionAlgorithm {
        CongestionAlgorithm::NewReno
    }

    fn cwnd(&self) -> usize {
        self.cwnd
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    fn set_ssthresh(&mut self, ssthresh: usize) {
        self.ssthresh = ssthresh;
    }

    fn set_cwnd(&mut self, cwnd: usize) {
        self.cwnd = cwnd;
    }

    fn on_ack(&mut self, _now: Instant, acked: usize, mss: usize, _srtt: Option<Duration>) {
        if self.cwnd < self.ssthresh {
            self.cwnd += slow_start_increase(acked, mss);
        } else {
            // Per RFC 5681 §3.1: cwnd += SMSS once per cwnd bytes acknowledged.
            self.bytes_acked += acked;
            if self.bytes_acked >= self.cwnd {
                self.bytes_acked -= self.cwnd;
                self.cwnd += mss;
            }
        }
    }

    fn on_loss(&mut self, _now: Instant, flight: usize, mss: usize) {
        // Per RFC 5681 §3.1 (4): ssthresh = max(FlightSize / 2, 2*SMSS).
        self.ssthresh = (flight / 2).max(2 * mss);
        self.cwnd = self.ssthresh;
        self.bytes_acked = 0;
    }

    fn on_rto(&mut self, _now: Instant, flight: usize, mss: usize) {
        self.ssthresh = (flight / 2).max(2 * mss);
        self.cwnd = mss;
        self.bytes_acked = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_then_linear_growth() {
        let mss = 1000;
        let mut c = NewReno::new(mss);
        assert_eq!(c.cwnd(), 10_000);
        c.on_ack(Instant::ZERO, 1000, mss, None);
        assert_eq!(c.cwnd(), 11_000);
        c.on_loss(Instant::ZERO, 20_000, mss);
        assert_eq!((c.cwnd(), c.ssthresh()), (10_000, 10_000));
        for _ in 0..9 {
            c.on_ack(Instant::ZERO, 1000, mss, None);
        }
        assert_eq!(c.cwnd(), 10_000);
        c.on_ack(Instant::ZERO, 1000, mss, None);
        assert_eq!(c.cwnd(), 11_000);
        c.on_rto(Instant::ZERO, 3000, mss);
        assert_eq!((c.cwnd(), c.ssthresh()), (1000, 2000));
    }
}
