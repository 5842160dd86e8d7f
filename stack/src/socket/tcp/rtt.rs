//! Round-trip time estimation and the retransmission timeout (RFC 6298).
//!
//! Invariants: `min_rto <= rto() <= max_rto`; the backoff exponent is reset by a new
//! RTT sample or by the acknowledgment of new data.

use crate::time::Duration;

/// Clock granularity G of RFC 6298 §2 (our clock counts microseconds; 1 ms is a
/// conservative floor for the variance term).
const GRANULARITY: Duration = Duration::from_millis(1);

/// SRTT/RTTVAR estimator with exponential backoff.
#[derive(Clone, Debug)]
pub(crate) struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    base_rto: Duration,
    backoff: u32,
    min_rto: Duration,
    max_rto: Duration,
}

impl RttEstimator {
    /// An estimator with no sample yet: RTO is `initial` (RFC 6298 §2.1: 1 s).
    pub(crate) fn new(initial: Duration, min_rto: Duration, max_rto: Duration) -> RttEstimator {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            base_rto: initial.max(min_rto).min(max_rto),
            backoff: 0,
            min_rto,
            max_rto,
        }
    }

    /// Feeds one RTT measurement (RFC 6298 §2.2 and §2.3).
    pub(crate) fn sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = Duration::from_micros(r.total_micros() / 2);
            }
            Some(srtt) => {
                let diff = if srtt > r { srtt - r } else { r - srtt };
                // RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'|; SRTT <- 7/8 SRTT + 1/8 R'
                self.rttvar = Duration::from_micros(
                    (3 * self.rttvar.total_micros() + diff.total_micros()) / 4,
                );
                self.srtt = Some(Duration::from_micros(
                    (7 * srtt.total_micros() + r.total_micros()) / 8,
                ));
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        // RFC 6298 (2.3): RTO = SRTT + max(G, 4·RTTVAR), at least the minimum. As
        // Linux (tcp_rtt_estimator keeps rttvar_us at least tcp_rto_min), the minimum
        // bounds the variance term, not the sum: RTO is at least SRTT + RTO_min, so a
        // path whose SRTT is inflated by delayed ACKs does not time out just as a
        // delayed ACK (up to 200 ms) is due.
        let var = Duration::from_micros(4 * self.rttvar.total_micros())
            .max(GRANULARITY)
            .max(self.min_rto);
        self.base_rto = (srtt + var).min(self.max_rto);
        self.backoff = 0;
    }

    /// The current RTO, backoff included (RFC 6298 §5.5), capped at the maximum.
    pub(crate) fn rto(&self) -> Duration {
        let factor = 1u32 << self.backoff.min(16);
        self.base_rto.saturating_mul(factor).min(self.max_rto)
    }

    /// Doubles the RTO after a timeout (RFC 6298 §5.5).
    pub(crate) fn backoff(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// Clears the backoff (new data was acknowledged).
    pub(crate) fn reset_backoff(&mut self) {
        self.backoff = 0;
    }

    /// Number of consecutive backoffs.
    pub(crate) fn backoff_count(&self) -> u32 {
        self.backoff
    }

    /// Smoothed RTT, if sampled.
    pub(crate) fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// RTT variance.
    pub(crate) fn rttvar(&self) -> Duration {
        self.rttvar
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est() -> RttEstimator {
        RttEstimator::new(
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(120),
        )
    }

    #[test]
    fn first_sample_sets_srtt_and_half_variance() {
        let mut e = est();
        assert_eq!(e.rto(), Duration::from_secs(1));
        e.sample(Duration::from_millis(100));
        assert_eq!(e.srtt(), Some(Duration::from_millis(100)));
        assert_eq!(e.rttvar(), Duration::from_millis(50));
        // 100 + 4 * 50 = 300 ms
        assert_eq!(e.rto(), Duration::from_millis(300));
    }

    #[test]
    fn later_samples_are_smoothed_and_min_bounds_the_variance_term() {
        let mut e = est();
        e.sample(Duration::from_millis(10));
        e.sample(Duration::from_millis(10));
        assert_eq!(e.srtt(), Some(Duration::from_millis(10)));
        // As Linux: SRTT + max(4·RTTVAR = 15 ms, 200 ms), not max(25 ms, 200 ms).
        assert_eq!(e.rto(), Duration::from_millis(210));
        // An SRTT inflated by delayed ACKs keeps the whole minimum above it.
        for _ in 0..50 {
            e.sample(Duration::from_millis(40));
        }
        assert_eq!(e.rto(), e.srtt().unwrap() + Duration::from_millis(200));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let mut e = est();
        e.backoff();
        assert_eq!(e.rto(), Duration::from_secs(2));
        for _ in 0..20 {
            e.backoff();
        }
        assert_eq!(e.rto(), Duration::from_secs(120));
        e.sample(Duration::from_millis(100));
        assert_eq!(e.backoff_count(), 0);
    }
}
