//! BBR v1 congestion control (draft-cardwell-iccrg-bbr-congestion-control-00), following
//! Linux's `net/ipv4/tcp_bbr.c`: a model of the path (the bottleneck bandwidth as a
//! windowed maximum of delivery-rate samples over 10 round trips, the propagation delay
//! as the minimum RTT over 10 s) sets the pacing rate (`pacing_gain * bw`) and cwnd
//! (`cwnd_gain * bw * min_rtt` plus a quantization budget). Random loss does not shrink
//! the model: a loss only conserves packets for the first round of recovery, and cwnd
//! returns to its prior value when recovery ends.
//!
//! State machine (draft §4.3): STARTUP (gain 2/ln 2) until the bandwidth grew by less
//! than 25 % for 3 rounds; DRAIN (1/2.885) until the flight is down to one BDP;
//! PROBE_BW, cycling pacing gains [1.25, 0.75, 1, 1, 1, 1, 1, 1] one min_rtt each from a
//! random phase (never the 0.75 one); PROBE_RTT (cwnd 4 segments for 200 ms and a round)
//! when min_rtt was not refreshed for 10 s.
//!
//! Units are bytes, bytes per second and microseconds (Linux counts packets). Not done:
//! the long-term bandwidth (policer) estimate, the ACK-aggregation cwnd headroom and the
//! idle-restart pacing of Linux's BBR; they change nothing on a path without a policer,
//! ACK aggregation or idle periods.

use super::{initial_window, AckState, CaState, CongestionAlgorithm, CongestionControl};
use crate::socket::tcp::rate::RateSample;
use crate::time::{Duration, Instant};

/// draft §4.3.2.1 / Linux `bbr_high_gain`: 2/ln(2), the smallest gain that doubles the
/// sending rate each round.
const HIGH_GAIN: f64 = 2.885;
/// Linux `bbr_drain_gain`: the inverse of the STARTUP gain, draining its queue in a round.
const DRAIN_GAIN: f64 = 1.0 / HIGH_GAIN;
/// Linux `bbr_cwnd_gain` in PROBE_BW.
const CWND_GAIN: f64 = 2.0;
/// draft §4.3.4.3 / Linux `bbr_pacing_gain`: probe, drain, then cruise for 6 phases.
const PACING_GAIN: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// Linux `bbr_bw_rtts`: the bandwidth filter's window in round trips.
const BW_RTTS: u64 = PACING_GAIN.len() as u64 + 2;
/// Linux `bbr_min_rtt_win_sec`: the min_rtt filter's window.
const MIN_RTT_WIN: Duration = Duration::from_secs(10);
/// Linux `bbr_probe_rtt_mode_ms`: least time at the minimal cwnd in PROBE_RTT.
const PROBE_RTT_TIME: Duration = Duration::from_millis(200);
/// Linux `bbr_cwnd_min_target`: cwnd floor, in segments.
const CWND_MIN_SEGS: usize = 4;
/// Linux `bbr_full_bw_thresh` and `bbr_full_bw_cnt`: STARTUP ends after 3 rounds
/// without 25 % bandwidth growth.
const FULL_BW_THRESH: f64 = 1.25;
const FULL_BW_CNT: u32 = 3;
/// Linux `bbr_pacing_margin_percent`: pace 1 % below the estimate, so queues drain.
const PACING_MARGIN: f64 = 0.99;

/// BBR's modes (draft §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Ramping up to fill the pipe.
    Startup,
    /// Draining the queue STARTUP built.
    Drain,
    /// Cycling the pacing gain around the estimated bandwidth.
    ProbeBw,
    /// Cwnd at 4 segments to measure the propagation delay again.
    ProbeRtt,
}

/// Kathleen Nichols' windowed running maximum over three samples (Linux
/// `lib/win_minmax.c`): the best, second best and third best of the window.
#[derive(Clone, Copy, Debug, Default)]
struct MaxFilter {
    /// (round, value).
    s: [(u64, u64); 3],
}

impl MaxFilter {
    fn get(&self) -> u64 {
        self.s[0].1
    }

    fn reset(&mut self, t: u64, v: u64) -> u64 {
        self.s = [(t, v); 3];
        v
    }

    fn update(&mut self, win: u64, t: u64, v: u64) -> u64 {
        let val = (t, v);
        if v >= self.s[0].1 || t.wrapping_sub(self.s[2].0) > win {
            return self.reset(t, v);
        }
        if v >= self.s[1].1 {
            self.s[1] = val;
            self.s[2] = val;
        } else if v >= self.s[2].1 {
            self.s[2] = val;
        }
        // Sub-window bookkeeping: keep the three samples spread over the window.
        let dt = t.wrapping_sub(self.s[0].0);
        if dt > win {
            self.s = [self.s[1], self.s[2], val];
            if t.wrapping_sub(self.s[0].0) > win {
                self.s = [self.s[1], self.s[2], val];
            }
        } else if self.s[1].0 == self.s[0].0 && dt > win / 4 {
            self.s[1] = val;
            self.s[2] = val;
        } else if self.s[2].0 == self.s[1].0 && dt > win / 2 {
            self.s[2] = val;
        }
        self.s[0].1
    }
}

/// BBR state of one connection.
#[derive(Clone, Debug)]
pub struct Bbr {
    mss: usize,
    cwnd: usize,
    ssthresh: usize,
    mode: Mode,
    /// Max filter of delivery rates (bytes/s) over `BW_RTTS` rounds.
    bw: MaxFilter,
    /// Rounds counted (draft §4.1.1.3 round counting).
    round_count: u64,
    /// `delivered` at which the next round starts.
    next_round_delivered: u64,
    round_start: bool,
    min_rtt: Option<Duration>,
    min_rtt_stamp: Option<Instant>,
    /// End of the 200 ms at the minimal cwnd in PROBE_RTT.
    probe_rtt_done: Option<Instant>,
    probe_rtt_round_done: bool,
    packet_conservation: bool,
    prev_ca_state: CaState,
    /// cwnd before recovery or PROBE_RTT, restored after it.
    prior_cwnd: usize,
    full_bw: u64,
    full_bw_cnt: u32,
    full_bw_reached: bool,
    cycle_idx: usize,
    cycle_stamp: Instant,
    /// When data was last delivered (Linux `tp->delivered_mstamp`).
    delivered_time: Instant,
    pacing_gain: f64,
    cwnd_gain: f64,
    /// Bytes per second.
    pacing_rate: u64,
    has_seen_rtt: bool,
    /// xorshift64* state for the PROBE_BW start phase.
    rng: u64,
}

impl Bbr {
    /// A connection's BBR in STARTUP, with Linux's initial pacing rate (the initial
    /// window per millisecond, times the STARTUP gain).
    pub fn new(mss: usize) -> Bbr {
        let cwnd = initial_window(mss);
        Bbr {
            mss,
            cwnd,
            ssthresh: usize::MAX,
            mode: Mode::Startup,
            bw: MaxFilter::default(),
            round_count: 0,
            next_round_delivered: 0,
            round_start: false,
            min_rtt: None,
            min_rtt_stamp: None,
            probe_rtt_done: None,
            probe_rtt_round_done: false,
            packet_conservation: false,
            prev_ca_state: CaState::Open,
            prior_cwnd: 0,
            full_bw: 0,
            full_bw_cnt: 0,
            full_bw_reached: false,
            cycle_idx: 0,
            cycle_stamp: Instant::ZERO,
            delivered_time: Instant::ZERO,
            pacing_gain: HIGH_GAIN,
            cwnd_gain: HIGH_GAIN,
            pacing_rate: (cwnd as f64 * 1000.0 * HIGH_GAIN * PACING_MARGIN) as u64,
            has_seen_rtt: false,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The bandwidth estimate in bytes per second (the filter's maximum).
    pub fn max_bw(&self) -> u64 {
        self.bw.get()
    }

    /// The minimum RTT estimate.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// Whether STARTUP found the pipe full.
    pub fn full_bw_reached(&self) -> bool {
        self.full_bw_reached
    }

    /// The current pacing gain.
    pub fn pacing_gain(&self) -> f64 {
        self.pacing_gain
    }

    fn random_below(&mut self, n: u64) -> u64 {
        // xorshift64*: deterministic from the connection's seed.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }

    /// Bytes `gain` times the estimated BDP, rounded up (Linux `bbr_bdp`); the initial
    /// window before any RTT sample.
    fn bdp(&self, bw: u64, gain: f64) -> usize {
        let Some(rtt) = self.min_rtt else {
            return initial_window(self.mss);
        };
        let bdp = bw as f64 * rtt.total_micros() as f64 / 1e6;
        (bdp * gain).ceil() as usize
    }

    /// Linux `bbr_tso_segs_goal`: segments the sender emits in one burst at the pacing
    /// rate (about 1 ms of it, 2 to 127 segments, at most 64 KB).
    fn tso_segs_goal(&self) -> usize {
        let bytes = (self.pacing_rate >> 10).min(65_535 - 1 - 320) as usize;
        let min = if self.pacing_rate < 150_000 { 1 } else { 2 };
        (bytes / self.mss.max(1)).clamp(min, 127)
    }

    /// Linux `bbr_quantization_budget` added to `cwnd`: three bursts of headroom for
    /// delayed and stretched ACKs, an even number of segments, and two more in the
    /// probing phase of PROBE_BW.
    fn quantization_budget(&self, cwnd: usize) -> usize {
        let mss = self.mss.max(1);
        let mut segs = cwnd.div_ceil(mss) + 3 * self.tso_segs_goal();
        segs = (segs + 1) & !1;
        if self.mode == Mode::ProbeBw && self.cycle_idx == 0 {
            segs += 2;
        }
        segs * mss
    }

    /// Linux `bbr_inflight`: the flight `gain` times the BDP calls for.
    fn inflight(&self, bw: u64, gain: f64) -> usize {
        self.quantization_budget(self.bdp(bw, gain))
    }

    /// Linux `bbr_save_cwnd`: remember cwnd before recovery or PROBE_RTT.
    fn save_cwnd(&mut self) {
        if self.prev_ca_state < CaState::Recovery && self.mode != Mode::ProbeRtt {
            self.prior_cwnd = self.cwnd;
        } else {
            self.prior_cwnd = self.prior_cwnd.max(self.cwnd);
        }
    }

    fn reset_mode(&mut self, now: Instant) {
        if self.full_bw_reached {
            self.reset_probe_bw(now);
        } else {
            self.mode = Mode::Startup;
        }
    }

    /// Enters PROBE_BW at a random phase other than the draining one (Linux
    /// `bbr_reset_probe_bw_mode`: `cycle_idx = 7 - rand(7)`, then one advance).
    fn reset_probe_bw(&mut self, now: Instant) {
        self.mode = Mode::ProbeBw;
        let len = PACING_GAIN.len();
        self.cycle_idx = len - 1 - self.random_below(len as u64 - 1) as usize;
        self.advance_cycle(now);
    }

    fn advance_cycle(&mut self, now: Instant) {
        self.cycle_idx = (self.cycle_idx + 1) % PACING_GAIN.len();
        self.cycle_stamp = now;
    }

    /// draft §4.3.4.4 / Linux `bbr_is_next_cycle_phase`.
    fn is_next_cycle_phase(&self, rs: &RateSample, prior_in_flight: usize) -> bool {
        let full_length = self
            .min_rtt
            .is_none_or(|m| self.delivered_time - self.cycle_stamp > m);
        let gain = self.pacing_gain;
        if gain == 1.0 {
            return full_length;
        }
        let bw = self.max_bw();
        if gain > 1.0 {
            // Probe until the flight reached gain * BDP, or losses say the pipe is full.
            return full_length && (rs.losses > 0 || prior_in_flight >= self.inflight(bw, gain));
        }
        // Drain until the flight is down to the BDP, or a min_rtt passed.
        full_length || prior_in_flight <= self.inflight(bw, 1.0)
    }

    /// draft §4.1.1 / Linux `bbr_update_bw`: round counting and the bandwidth filter.
    fn update_bw(&mut self, rs: &RateSample) {
        self.round_start = false;
        let Some(bw) = rs.delivery_rate() else {
            return;
        };
        if rs.prior_delivered >= self.next_round_delivered {
            self.next_round_delivered = rs.total_delivered;
            self.round_count += 1;
            self.round_start = true;
            self.packet_conservation = false;
        }
        // An application-limited sample only counts if it raises the estimate.
        if !rs.is_app_limited || bw >= self.max_bw() {
            self.bw.update(BW_RTTS, self.round_count, bw);
        }
    }

    /// draft §4.3.2.2 / Linux `bbr_check_full_bw_reached`.
    fn check_full_bw_reached(&mut self, rs: &RateSample) {
        if self.full_bw_reached || !self.round_start || rs.is_app_limited {
            return;
        }
        if self.max_bw() as f64 >= self.full_bw as f64 * FULL_BW_THRESH {
            self.full_bw = self.max_bw();
            self.full_bw_cnt = 0;
            return;
        }
        self.full_bw_cnt += 1;
        self.full_bw_reached = self.full_bw_cnt >= FULL_BW_CNT;
    }

    /// draft §4.3.3 / Linux `bbr_check_drain`.
    fn check_drain(&mut self, now: Instant, in_flight: usize) {
        if self.mode == Mode::Startup && self.full_bw_reached {
            self.mode = Mode::Drain;
            self.ssthresh = self.inflight(self.max_bw(), 1.0);
        }
        if self.mode == Mode::Drain && in_flight <= self.inflight(self.max_bw(), 1.0) {
            self.reset_probe_bw(now);
        }
    }

    /// draft §4.1.2 and §4.3.5 / Linux `bbr_update_min_rtt`: the min_rtt filter and
    /// PROBE_RTT.
    fn update_min_rtt(&mut self, now: Instant, rs: &RateSample, ack: &AckState) {
        let stamp = *self.min_rtt_stamp.get_or_insert(now);
        let expired = now > stamp + MIN_RTT_WIN;
        if let Some(rtt) = rs.rtt {
            if self.min_rtt.is_none_or(|m| rtt < m) || expired {
                self.min_rtt = Some(rtt);
                self.min_rtt_stamp = Some(now);
            }
        }
        if expired && self.mode != Mode::ProbeRtt {
            self.mode = Mode::ProbeRtt;
            self.save_cwnd();
            self.probe_rtt_done = None;
        }
        if self.mode == Mode::ProbeRtt {
            let min_flight = CWND_MIN_SEGS * self.mss;
            match self.probe_rtt_done {
                None if ack.in_flight <= min_flight => {
                    self.probe_rtt_done = Some(now + PROBE_RTT_TIME);
                    self.probe_rtt_round_done = false;
                    self.next_round_delivered = rs.total_delivered;
                }
                Some(done) => {
                    self.probe_rtt_round_done |= self.round_start;
                    if self.probe_rtt_round_done && now > done {
                        // Linux `bbr_check_probe_rtt_done`.
                        self.min_rtt_stamp = Some(now);
                        self.cwnd = self.cwnd.max(self.prior_cwnd);
                        self.reset_mode(now);
                    }
                }
                None => {}
            }
        }
    }

    /// Linux `bbr_update_gains`.
    fn update_gains(&mut self) {
        (self.pacing_gain, self.cwnd_gain) = match self.mode {
            Mode::Startup => (HIGH_GAIN, HIGH_GAIN),
            Mode::Drain => (DRAIN_GAIN, HIGH_GAIN),
            Mode::ProbeBw => (PACING_GAIN[self.cycle_idx], CWND_GAIN),
            Mode::ProbeRtt => (1.0, 1.0),
        };
    }

    /// Linux `bbr_set_pacing_rate`: never lower while STARTUP still grows.
    fn set_pacing_rate(&mut self, bw: u64, rs: &RateSample, ack: &AckState) {
        if !self.has_seen_rtt {
            if let Some(rtt) = rs.rtt.or(ack.srtt).filter(|r| *r > Duration::ZERO) {
                // Linux `bbr_init_pacing_rate_from_rtt`: cwnd per RTT, times high_gain.
                self.has_seen_rtt = true;
                let rate = self.cwnd as f64 * 1e6 / rtt.total_micros() as f64;
                self.pacing_rate = (rate * HIGH_GAIN * PACING_MARGIN) as u64;
            }
        }
        let rate = (bw as f64 * self.pacing_gain * PACING_MARGIN) as u64;
        if rate > 0 && (self.full_bw_reached || rate > self.pacing_rate) {
            self.pacing_rate = rate;
        }
    }

    /// Linux `bbr_set_cwnd` with `bbr_set_cwnd_to_recover_or_restore`.
    fn set_cwnd(&mut self, rs: &RateSample, ack: &AckState, bw: u64) {
        let mss = self.mss.max(1);
        let acked = rs.acked_sacked as usize;
        let mut cwnd = self.cwnd;
        if acked > 0 {
            cwnd = self.recover_or_restore(rs, ack, cwnd, acked);
            if !self.packet_conservation {
                let target = self.quantization_budget(self.bdp(bw, self.cwnd_gain));
                if self.full_bw_reached {
                    cwnd = (cwnd + acked).min(target);
                } else if cwnd < target || rs.total_delivered < (initial_window(mss) as u64) {
                    cwnd += acked;
                }
                cwnd = cwnd.max(CWND_MIN_SEGS * mss);
            }
        }
        if self.mode == Mode::ProbeRtt {
            cwnd = cwnd.min(CWND_MIN_SEGS * mss);
        }
        self.cwnd = cwnd;
    }

    /// Packet conservation for the first round of fast recovery, cwnd restored when
    /// (fast or timeout) recovery ends; lost bytes come off cwnd first.
    fn recover_or_restore(
        &mut self,
        rs: &RateSample,
        ack: &AckState,
        mut cwnd: usize,
        acked: usize,
    ) -> usize {
        if rs.losses > 0 {
            cwnd = cwnd.saturating_sub(rs.losses as usize).max(self.mss);
        }
        let (prev, state) = (self.prev_ca_state, ack.ca_state);
        if state == CaState::Recovery && prev != CaState::Recovery {
            // The first round of recovery: send one segment per segment delivered.
            self.packet_conservation = true;
            self.next_round_delivered = rs.total_delivered;
            cwnd = ack.in_flight + acked;
        } else if prev >= CaState::Recovery && state < CaState::Recovery {
            cwnd = cwnd.max(self.prior_cwnd);
            self.packet_conservation = false;
        }
        self.prev_ca_state = state;
        if self.packet_conservation {
            // Linux skips BBR's 4-segment floor here. We keep it: when the flight was
            // down to a lost segment and one SACKed after it, conservation left a
            // 1-segment window, taken by the retransmission; if that was lost too,
            // nothing sent after it could be SACKed to show it (RACK), and only the
            // RTO resent it (`bench loss --echo` at 10 %: the echo server's
            // mid-stream stalls, stalls7.md 5.2). With the floor, new segments follow
            // the retransmission, as PRR-SSRB's extra segment lets CUBIC's follow.
            cwnd = cwnd
                .max(ack.in_flight + acked)
                .max(CWND_MIN_SEGS * self.mss);
        }
        cwnd
    }
}

impl CongestionControl for Bbr {
    fn algorithm(&self) -> CongestionAlgorithm {
        CongestionAlgorithm::Bbr
    }

    fn cwnd(&self) -> usize {
        self.cwnd
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    fn set_cwnd(&mut self, cwnd: usize) {
        self.cwnd = cwnd;
    }

    fn set_ssthresh(&mut self, ssthresh: usize) {
        self.ssthresh = ssthresh;
    }

    fn on_ack(&mut self, _now: Instant, _acked: usize, _mss: usize, _srtt: Option<Duration>) {
        // cwnd follows the model in `on_rate_sample`.
    }

    fn on_loss(&mut self, _now: Instant, _flight: usize, _mss: usize) {
        // Linux `bbr_ssthresh`: remember cwnd; the reduction is packet conservation,
        // applied on the next sample when the connection reports `CaState::Recovery`.
        self.save_cwnd();
    }

    fn on_rto(&mut self, _now: Instant, _flight: usize, mss: usize) {
        // Linux `tcp_enter_loss` with `bbr_ssthresh` and `bbr_set_state(TCP_CA_Loss)`:
        // one segment in flight, the prior cwnd restored once recovery ends; STARTUP's
        // plateau detection starts over.
        self.save_cwnd();
        self.prev_ca_state = CaState::Loss;
        self.full_bw = 0;
        self.round_start = true;
        self.cwnd = mss;
    }

    fn restart(&mut self, mss: usize) -> bool {
        let rng = self.rng;
        *self = Bbr::new(mss);
        self.rng = rng;
        true
    }

    fn controls_cwnd(&self) -> bool {
        true
    }

    fn on_rate_sample(&mut self, now: Instant, rs: &RateSample, ack: &AckState) {
        self.mss = ack.mss.max(1);
        if rs.acked_sacked > 0 {
            self.delivered_time = now;
        }
        let prior_in_flight = ack.in_flight + rs.acked_sacked as usize;
        self.update_bw(rs);
        if self.mode == Mode::ProbeBw && self.is_next_cycle_phase(rs, prior_in_flight) {
            self.advance_cycle(self.delivered_time);
        }
        self.check_full_bw_reached(rs);
        self.check_drain(now, ack.in_flight);
        self.update_min_rtt(now, rs, ack);
        self.update_gains();
        let bw = self.max_bw();
        self.set_pacing_rate(bw, rs, ack);
        self.set_cwnd(rs, ack, bw);
    }

    fn pacing_rate(&self) -> Option<u64> {
        Some(self.pacing_rate.max(1))
    }

    fn wants_app_limited(&self) -> bool {
        self.mode == Mode::ProbeRtt
    }

    fn seed(&mut self, seed: u64) {
        // xorshift must not start at zero.
        self.rng = seed | 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_filter_forgets_after_its_window() {
        let mut f = MaxFilter::default();
        f.update(10, 1, 100);
        f.update(10, 2, 50);
        assert_eq!(f.get(), 100);
        for t in 3..=11 {
            f.update(10, t, 60);
        }
        assert_eq!(f.get(), 100, "still inside 10 rounds");
        f.update(10, 12, 60);
        assert_eq!(f.get(), 60, "round 1's sample aged out");
    }

    const MSS: usize = 1000;

    /// A path of `bw` bytes/s and 10 ms RTT seen through one rate sample per round:
    /// the round's bytes delivered over 10 ms, starting a new round each time.
    struct Path {
        now: Instant,
        delivered: u64,
    }

    impl Path {
        fn new() -> Path {
            Path {
                now: Instant::ZERO,
                delivered: 0,
            }
        }

        /// One sample `step` after the previous one, of a path delivering `bw`, with
        /// `rtt`, `in_flight` bytes left in flight after it.
        fn sample(
            &mut self,
            b: &mut Bbr,
            step: Duration,
            bw: u64,
            rtt: Duration,
            in_flight: usize,
        ) {
            self.now += step;
            let delivered = bw * step.total_micros() / 1_000_000;
            let rs = RateSample {
                delivered,
                interval: Some(step),
                rtt: Some(rtt),
                is_app_limited: false,
                acked_sacked: delivered,
                losses: 0,
                prior_delivered: self.delivered,
                total_delivered: self.delivered + delivered,
            };
            self.delivered += delivered;
            let ack = AckState {
                in_flight,
                ca_state: CaState::Open,
                mss: MSS,
                srtt: Some(rtt),
            };
            b.on_rate_sample(self.now, &rs, &ack);
        }
    }

    const RTT: Duration = Duration::from_millis(10);

    /// STARTUP until the bandwidth stops growing by 25 % for three rounds (draft
    /// §4.3.2.2), then DRAIN while the flight is above one BDP, then PROBE_BW.
    #[test]
    fn startup_exits_to_drain_when_the_bandwidth_plateaus() {
        let mut b = Bbr::new(MSS);
        let mut p = Path::new();
        let cap = 10_000_000; // 10 MB/s: a BDP of 100 kB at 10 ms.
        let mut bw = 100_000;
        let mut rounds = 0;
        while b.mode() == Mode::Startup {
            p.sample(&mut b, RTT, bw.min(cap), RTT, 400_000);
            assert!(b.pacing_gain() > 2.8 || b.mode() != Mode::Startup);
            bw *= 2;
            rounds += 1;
            assert!(rounds < 20, "STARTUP never ended");
        }
        // 100 kB/s doubling: 8 rounds of growth by more than 25 % (the 8th, 12.8 MB/s
        // capped to 10, still by 56 %), then three without.
        assert_eq!(rounds, 8 + 3);
        assert!(b.full_bw_reached());
        assert_eq!(b.mode(), Mode::Drain);
        assert_eq!(b.max_bw(), cap);
        assert!((b.pacing_gain() - 1.0 / 2.885).abs() < 1e-9);
        // The queue drains: once in flight is at most a BDP (plus quantization), on to
        // PROBE_BW, where cwnd is 2 BDP plus the quantization budget.
        p.sample(&mut b, RTT, cap, RTT, 50_000);
        assert_eq!(b.mode(), Mode::ProbeBw);
        for _ in 0..40 {
            p.sample(&mut b, RTT, cap, RTT, 150_000);
        }
        let bdp = 100_000;
        assert!(
            b.cwnd() >= 2 * bdp && b.cwnd() <= 2 * bdp + 40 * MSS,
            "cwnd {}",
            b.cwnd()
        );
    }

    /// PROBE_BW cycles its pacing gain [1.25, 0.75, 1 x 6] one phase per min_rtt
    /// (draft §4.3.4.3), whatever phase it started in.
    #[test]
    fn probe_bw_cycles_its_gains() {
        let mut b = Bbr::new(MSS);
        b.seed(7);
        let mut p = Path::new();
        let cap = 10_000_000;
        while b.mode() != Mode::ProbeBw {
            p.sample(&mut b, RTT, cap, RTT, 50_000);
        }
        let mut gains = Vec::new();
        for _ in 0..24 {
            // A phase lasts more than min_rtt; the flight is large enough for the
            // probing phase to end on time.
            p.sample(&mut b, RTT + Duration::from_millis(1), cap, RTT, 400_000);
            gains.push(b.pacing_gain());
        }
        let start = gains
            .iter()
            .position(|&g| g == 1.25)
            .expect("a probing phase");
        let cycle: Vec<f64> = gains[start..start + 8].to_vec();
        assert_eq!(cycle, PACING_GAIN.to_vec(), "{gains:?}");
        assert_eq!(&gains[start + 8..start + 16], &cycle[..]);
        // The bandwidth model stays put while it cycles.
        assert_eq!(b.max_bw(), cap);
    }

    /// PROBE_RTT (draft §4.3.5): after 10 s without an RTT below the minimum, cwnd
    /// drops to 4 segments; 200 ms and a round at that flight later, BBR goes back to
    /// PROBE_BW with cwnd restored.
    #[test]
    fn probe_rtt_after_ten_seconds_without_a_lower_rtt() {
        let mut b = Bbr::new(MSS);
        let mut p = Path::new();
        let cap = 10_000_000;
        p.sample(&mut b, RTT, cap, RTT, 50_000);
        while b.mode() != Mode::ProbeBw {
            p.sample(&mut b, RTT, cap, Duration::from_millis(12), 50_000);
        }
        let mut entered = None;
        for _ in 0..1100 {
            p.sample(&mut b, RTT, cap, Duration::from_millis(12), 150_000);
            if b.mode() == Mode::ProbeRtt {
                entered = Some(p.now);
                break;
            }
        }
        let entered = entered.expect("PROBE_RTT within 11 s");
        assert!(entered > Instant::from_secs(10) && entered <= Instant::from_millis(10_030));
        assert_eq!(b.cwnd(), 4 * MSS);
        assert!(b.wants_app_limited());
        let prior = b.prior_cwnd;
        assert!(prior > 4 * MSS);
        // The flight drains to 4 segments; the RTT seen now (12 ms) becomes min_rtt.
        let mut left = None;
        for _ in 0..40 {
            p.sample(&mut b, RTT, cap, Duration::from_millis(12), 4 * MSS);
            if b.mode() != Mode::ProbeRtt {
                left = Some(p.now);
                break;
            }
        }
        let left = left.expect("PROBE_RTT ended");
        assert!(left - entered >= Duration::from_millis(200));
        assert!(left - entered <= Duration::from_millis(230));
        assert_eq!(b.mode(), Mode::ProbeBw);
        assert!(b.cwnd() >= prior);
        assert_eq!(b.min_rtt(), Some(Duration::from_millis(12)));
    }

    /// An RTO takes cwnd to one segment (Linux `tcp_enter_loss`); the ACKs of the
    /// recovery grow it, and when recovery ends cwnd is back to at least its old value.
    #[test]
    fn rto_then_restore_on_recovery_end() {
        let mut b = Bbr::new(MSS);
        let mut p = Path::new();
        for _ in 0..20 {
            p.sample(&mut b, RTT, 10_000_000, RTT, 150_000);
        }
        let before = b.cwnd();
        b.on_rto(p.now, 150_000, MSS);
        assert_eq!(b.cwnd(), MSS);
        let rs = RateSample {
            acked_sacked: 1000,
            total_delivered: p.delivered + 1000,
            ..RateSample::default()
        };
        let mut ack = AckState {
            in_flight: 0,
            ca_state: CaState::Loss,
            mss: MSS,
            srtt: Some(RTT),
        };
        b.on_rate_sample(p.now, &rs, &ack);
        assert!(b.cwnd() < before);
        ack.ca_state = CaState::Open;
        b.on_rate_sample(p.now, &rs, &ack);
        assert!(b.cwnd() >= before, "{} < {before}", b.cwnd());
    }

    #[test]
    fn probe_bw_never_starts_in_the_drain_phase() {
        let mut b = Bbr::new(1000);
        for seed in 0..200 {
            b.seed(seed);
            b.reset_probe_bw(Instant::ZERO);
            assert_ne!(b.cycle_idx, 1, "seed {seed}");
        }
    }
}
