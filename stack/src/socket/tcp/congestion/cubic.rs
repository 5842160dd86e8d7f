//! CUBIC (RFC 9438): after a loss the window follows `W(t) = C (t - K)^3 + W_max`,
//! with a Reno-friendly estimate as the floor (§4.3) and fast convergence (§4.7). The
//! first slow start ends on rising delay through HyStart++ (RFC 9406, `hystart.rs`), as
//! Linux's CUBIC ends it with its own HyStart.

use super::hystart::{HyStart, Phase, CSS_GROWTH_DIVISOR};
use super::{initial_window, slow_start_increase, CongestionAlgorithm, CongestionControl};
use crate::time::{Duration, Instant};

/// RFC 9438 §5.1: C = 0.4.
const C: f64 = 0.4;
/// RFC 9438 §4.6: beta_cubic = 0.7.
const BETA: f64 = 0.7;

/// CUBIC state; windows in segments are kept as floats, cwnd in bytes.
#[derive(Clone, Debug)]
pub struct Cubic {
    cwnd: usize,
    ssthresh: usize,
    /// W_max in segments.
    w_max: f64,
    /// K in seconds.
    k: f64,
    /// Start of the current congestion avoidance epoch.
    epoch_start: Option<Instant>,
    /// Reno-friendly estimate W_est in segments.
    w_est: f64,
    /// Fractional growth carried between ACKs, in bytes.
    carry: f64,
    /// HyStart++ in the initial slow start.
    hystart: HyStart,
}

impl Cubic {
    /// Initial window of RFC 6928, ssthresh unbounded.
    pub fn new(mss: usize) -> Cubic {
        Cubic {
            cwnd: initial_window(mss),
            ssthresh: usize::MAX,
            w_max: 0.0,
            k: 0.0,
            epoch_start: None,
            w_est: 0.0,
            carry: 0.0,
            hystart: HyStart::new(),
        }
    }

    fn w_cubic(&self, t: f64) -> f64 {
        C * (t - self.k).powi(3) + self.w_max
    }

    fn reduce(&mut self, mss: usize) {
        let cwnd_seg = self.cwnd as f64 / mss as f64;
        // RFC 9438 §4.7 fast convergence.
        self.w_max = if cwnd_seg < self.w_max {
            cwnd_seg * (1.0 + BETA) / 2.0
        } else {
            cwnd_seg
        };
        self.ssthresh = ((self.cwnd as f64 * BETA) as usize).max(2 * mss);
        self.epoch_start = None;
        self.carry = 0.0;
    }
}

impl CongestionControl for Cubic {
    fn restart(&mut self, mss: usize) -> bool {
        *self = Cubic::new(mss);
        true
    }

    fn algorithm(&self) -> CongestionAlgorithm {
        CongestionAlgorithm::Cubic
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

    fn on_rtt_sample(&mut self, rtt: Option<Duration>, round_start: bool) {
        // RFC 9406 §4.2: only the initial slow start (ssthresh still unset).
        if self.ssthresh != usize::MAX {
            return;
        }
        self.hystart.on_ack(rtt, round_start);
        if self.hystart.phase == Phase::Done {
            // RFC 9406 §4.3: "enter congestion avoidance by setting the ssthresh to
            // the current cwnd".
            self.ssthresh = self.cwnd;
        }
    }

    fn on_ack(&mut self, now: Instant, acked: usize, mss: usize, srtt: Option<Duration>) {
        if self.cwnd < self.ssthresh {
            let inc = slow_start_increase(acked, mss);
            self.cwnd += match self.hystart.phase {
                // RFC 9406 §4.3: CSS grows by a quarter of slow start's increase.
                Phase::Css { .. } if self.ssthresh == usize::MAX => {
                    (inc / CSS_GROWTH_DIVISOR).max(1)
                }
                _ => inc,
            };
            return;
        }
        let mssf = mss as f64;
        let cwnd_seg = self.cwnd as f64 / mssf;
        if self.epoch_start.is_none() {
            self.epoch_start = Some(now);
            // RFC 9438 §4.2: K = cbrt((W_max - cwnd_epoch) / C); W_est starts at cwnd.
            self.k = if self.w_max > cwnd_seg {
                ((self.w_max - cwnd_seg) / C).cbrt()
            } else {
                self.w_max = cwnd_seg;
                0.0
            };
            self.w_est = cwnd_seg;
        }
        let epoch = self.epoch_start.unwrap_or(now);
        let t = (now - epoch).as_secs_f64();
        let rtt = srtt.map_or(0.1, |d| d.as_secs_f64());
        let segs_acked = acked as f64 / mssf;
        // RFC 9438 §4.3: alpha_cubic = 3 (1 - beta) / (1 + beta), 1 once past W_max.
        let alpha = if self.w_est >= self.w_max {
            1.0
        } else {
            3.0 * (1.0 - BETA) / (1.0 + BETA)
        };
        self.w_est += alpha * segs_acked / cwnd_seg;
        let target = self.w_cubic(t + rtt).clamp(cwnd_seg, 1.5 * cwnd_seg);
        let next_seg = if self.w_cubic(t) < self.w_est {
            // Reno-friendly region.
            self.w_est.max(cwnd_seg)
        } else {
            cwnd_seg + (target - cwnd_seg) / cwnd_seg * segs_acked
        };
        self.carry += (next_seg - cwnd_seg) * mssf;
        if self.carry >= 1.0 {
            let inc = self.carry as usize;
            self.cwnd += inc;
            self.carry -= inc as f64;
        }
    }

    fn on_loss(&mut self, _now: Instant, _flight: usize, mss: usize) {
        self.reduce(mss);
        self.cwnd = self.ssthresh;
    }

    fn on_rto(&mut self, _now: Instant, _flight: usize, mss: usize) {
        self.reduce(mss);
        self.cwnd = mss;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_multiplies_by_beta() {
        let mss = 1000;
        let mut c = Cubic::new(mss);
        assert_eq!(c.cwnd(), 10_000);
        c.on_loss(Instant::ZERO, 10_000, mss);
        assert_eq!((c.cwnd(), c.ssthresh()), (7_000, 7_000));
        c.on_rto(Instant::ZERO, 7_000, mss);
        assert_eq!(c.cwnd(), 1000);
        // Fast convergence: 7 < 10 segments, so W_max = 7 * 1.7 / 2.
        assert!((c.w_max - 5.95).abs() < 1e-9);
    }

    /// One HyStart++ round: `n` ACKs of one segment each with RTT `rtt_ms`.
    fn round(c: &mut Cubic, n: usize, rtt_ms: u64, mss: usize) {
        for i in 0..n {
            c.on_rtt_sample(Some(Duration::from_millis(rtt_ms)), i == 0);
            c.on_ack(Instant::ZERO, mss, mss, None);
        }
    }

    #[test]
    fn hystart_enters_css_on_rising_rtt_then_congestion_avoidance() {
        let mss = 1000;
        let mut c = Cubic::new(mss);
        round(&mut c, 10, 20, mss);
        assert_eq!(c.cwnd(), 20_000, "slow start: one MSS per MSS acked");
        // RttThresh = max(4 ms, min(20 ms / 8, 16 ms)) = 4 ms: 23 ms is below it...
        round(&mut c, 10, 23, mss);
        assert_eq!(c.cwnd(), 30_000);
        assert_eq!(c.hystart.phase, Phase::SlowStart);
        // ...27 ms (>= 23 + 4) after N_RTT_SAMPLE = 8 samples is not: CSS from then on.
        round(&mut c, 10, 27, mss);
        assert_eq!(
            c.hystart.phase,
            Phase::Css {
                baseline: Duration::from_millis(27),
                rounds: 0
            }
        );
        // 7 ACKs at full growth; the 8th sample moved to CSS before its ACK grew cwnd,
        // so it and the last 2 grew by a quarter (RFC 9406 §4.3 CSS_GROWTH_DIVISOR).
        assert_eq!(c.cwnd(), 30_000 + 7 * 1000 + 3 * 250);
        assert_eq!(c.ssthresh(), usize::MAX, "CSS is still slow start");
        for _ in 0..4 {
            let before = c.cwnd();
            round(&mut c, 10, 27, mss);
            assert_eq!(c.cwnd() - before, 10 * 250);
        }
        // The fifth CSS round ends: ssthresh = cwnd, congestion avoidance.
        let cwnd = c.cwnd();
        round(&mut c, 1, 27, mss);
        assert_eq!(c.ssthresh(), cwnd);
        assert_eq!(c.hystart.phase, Phase::Done);
    }

    #[test]
    fn hystart_resumes_slow_start_when_css_was_spurious() {
        let mss = 1000;
        let mut c = Cubic::new(mss);
        round(&mut c, 10, 20, mss);
        round(&mut c, 10, 30, mss);
        assert!(matches!(c.hystart.phase, Phase::Css { .. }));
        // A round whose minimum drops below the CSS baseline (30 ms): back to slow start.
        round(&mut c, 10, 25, mss);
        assert_eq!(c.hystart.phase, Phase::SlowStart);
        let before = c.cwnd();
        round(&mut c, 10, 25, mss);
        assert_eq!(c.cwnd() - before, 10 * 1000);
    }

    #[test]
    fn hystart_only_runs_in_the_initial_slow_start() {
        let mss = 1000;
        let mut c = Cubic::new(mss);
        c.on_loss(Instant::ZERO, 10_000, mss);
        c.on_rto(Instant::ZERO, 7_000, mss);
        // Slow start again after the RTO, ssthresh now set: rising RTTs change nothing.
        round(&mut c, 10, 20, mss);
        round(&mut c, 10, 60, mss);
        assert_eq!(c.hystart.phase, Phase::SlowStart);
    }

    #[test]
    fn grows_back_towards_w_max() {
        let mss = 1000;
        let mut c = Cubic::new(mss);
        c.set_cwnd(100_000);
        c.on_loss(Instant::ZERO, 100_000, mss);
        assert_eq!(c.cwnd(), 70_000);
        // K = cbrt(W_max (1 - beta) / C) = cbrt(100 * 0.3 / 0.4) ~ 4.2 s: the window
        // plateaus near W_max around then, and grows convexly past it afterwards.
        let mut now = Instant::ZERO;
        for _ in 0..420 {
            now += Duration::from_millis(10);
            c.on_ack(now, 1000, mss, Some(Duration::from_millis(50)));
        }
        assert!((90_000..=110_000).contains(&c.cwnd()), "cwnd {}", c.cwnd());
        for _ in 0..400 {
            now += Duration::from_millis(10);
            c.on_ack(now, 1000, mss, Some(Duration::from_millis(50)));
        }
        assert!(c.cwnd() > 105_000, "cwnd {}", c.cwnd());
    }
}
