//! Delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation-02, as Linux's
//! `tcp_rate.c`): on every ACK, how fast data reached the receiver over the interval
//! the newest delivered segment spanned, for a rate-based congestion controller (BBR).
//!
//! The connection keeps `delivered` (bytes delivered so far, cumulatively or by SACK),
//! `delivered_time` (when it last grew), `first_sent_time` (send time of the newest
//! delivered segment, the start of the current send interval) and an application-limited
//! mark. Each transmission takes a `TxRate` snapshot of them, stored in the transmit
//! log's record of the segment (`rack::TxLog`), so no allocation happens per segment.
//! When segments are delivered, the newest of them (by send time) gives the sample:
//! `delivered - its snapshot's delivered` bytes over `max(send interval, ACK interval)`.
//!
//! Units: bytes and microseconds. Snapshots keep the low 32 bits of `delivered` and ages
//! in µs relative to the segment's own send time, so a record grows by 12 bytes.
//!
//! Invariants: `delivered` only grows; `app_limited` is 0 or a `delivered` value after
//! which samples are no longer application-limited.

use crate::time::{Duration, Instant};
use crate::wire::SeqNumber;

/// What a segment's transmission recorded of the connection's delivery state
/// (draft-cheng §3.2 "Transmitting a data packet").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TxRate {
    /// Low 32 bits of `C.delivered` when the segment left.
    delivered: u32,
    /// Microseconds from `C.delivered_time` to the segment's send time.
    delivered_age: u32,
    /// Microseconds from `C.first_sent_time` to the segment's send time.
    first_sent_age: u32,
}

/// One rate sample (draft-cheng §3.3 `RateSample`), produced per ACK.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateSample {
    /// Bytes delivered over `interval` (0 when there is no valid sample).
    pub delivered: u64,
    /// The sample's interval: the longer of the send and the ACK interval; `None` when
    /// the ACK delivered nothing with a snapshot or the interval was shorter than the
    /// minimum RTT (a compressed-ACK artefact, Linux discards those too).
    pub interval: Option<Duration>,
    /// RTT of the newest delivered segment never retransmitted, if any.
    pub rtt: Option<Duration>,
    /// Whether the newest delivered segment was sent while application-limited.
    pub is_app_limited: bool,
    /// Bytes newly delivered (ACKed or SACKed) by this ACK.
    pub acked_sacked: u64,
    /// Bytes newly marked lost since the previous sample.
    pub losses: u64,
    /// `delivered` of the snapshot the sample started from (BBR's round counting).
    pub prior_delivered: u64,
    /// Total bytes delivered on the connection after this ACK.
    pub total_delivered: u64,
}

impl RateSample {
    /// Delivery rate in bytes per second, when the sample is valid.
    pub fn delivery_rate(&self) -> Option<u64> {
        let us = self.interval?.total_micros();
        (us > 0).then(|| (self.delivered as u128 * 1_000_000 / us as u128) as u64)
    }
}

/// The connection's delivery-rate state and the sample the current ACK is building.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RateState {
    /// `C.delivered`: bytes delivered so far.
    delivered: u64,
    /// `C.delivered_time`.
    delivered_time: Instant,
    /// `C.first_sent_time`.
    first_sent_time: Instant,
    /// `C.app_limited`: 0, or the `delivered` count ending the app-limited phase.
    app_limited: u64,
    /// Smallest sample RTT seen: intervals shorter than it are no sample.
    min_rtt: Option<Duration>,
    /// Bytes newly marked lost since the last sample.
    lost: u64,
    // The sample under construction (draft-cheng §3.3 `UpdateRateSample`).
    acked_sacked: u64,
    /// (send time, transmission order, end) of the newest delivered segment.
    newest: Option<(Instant, u32, SeqNumber)>,
    prior_delivered: u32,
    prior_time: Instant,
    send_interval: u32,
    sample_app_limited: bool,
    rtt: Option<Duration>,
}

fn micros_between(later: Instant, earlier: Instant) -> u32 {
    (later.total_micros() - earlier.total_micros()).clamp(0, i64::from(u32::MAX)) as u32
}

impl RateState {
    /// Whether the connection is in an application-limited phase.
    #[cfg(test)]
    pub(crate) fn is_app_limited(&self) -> bool {
        self.app_limited != 0
    }

    /// The snapshot a transmission at `now` records; `idle` when nothing was in flight
    /// (draft-cheng §3.2: the send and delivery clocks restart then).
    pub(crate) fn on_send(&mut self, now: Instant, idle: bool) -> (TxRate, bool) {
        if idle {
            self.first_sent_time = now;
            self.delivered_time = now;
        }
        let snap = TxRate {
            delivered: self.delivered as u32,
            delivered_age: micros_between(now, self.delivered_time),
            first_sent_age: micros_between(now, self.first_sent_time),
        };
        (snap, self.app_limited != 0)
    }

    /// draft-cheng §3.4: the sender ran out of data with room in cwnd: samples until
    /// what is in flight now is delivered are application-limited.
    pub(crate) fn mark_app_limited(&mut self, in_flight: usize) {
        self.app_limited = (self.delivered + in_flight as u64).max(1);
    }

    /// `len` bytes were newly marked lost.
    pub(crate) fn on_lost(&mut self, len: usize) {
        self.lost += len as u64;
    }

    /// `len` bytes of a segment sent at `xmit_ts` (order `order`, ending at `end`) with
    /// snapshot `snap` were delivered at `now` (draft-cheng §3.3 `UpdateRateSample`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_delivered(
        &mut self,
        snap: TxRate,
        app_limited: bool,
        retrans: bool,
        xmit_ts: Instant,
        order: u32,
        end: SeqNumber,
        len: usize,
        now: Instant,
    ) {
        self.delivered += len as u64;
        self.acked_sacked += len as u64;
        let key = (xmit_ts, order, end);
        let newer = self.newest.is_none_or(|n| {
            let o = order.wrapping_sub(n.1) as i32;
            xmit_ts > n.0 || (xmit_ts == n.0 && (o > 0 || (o == 0 && end > n.2)))
        });
        if newer {
            self.newest = Some(key);
            self.prior_delivered = snap.delivered;
            self.prior_time = xmit_ts - Duration::from_micros(u64::from(snap.delivered_age));
            self.send_interval = snap.first_sent_age;
            self.sample_app_limited = app_limited;
            // The send interval of later samples starts at this segment's send time.
            self.first_sent_time = xmit_ts;
            self.rtt = (!retrans).then(|| now - xmit_ts);
        }
    }

    /// draft-cheng §3.3 `GenerateRateSample`, once per ACK after every delivered
    /// segment was reported through [`on_delivered`](Self::on_delivered).
    pub(crate) fn generate(&mut self, now: Instant) -> RateSample {
        if self.app_limited != 0 && self.delivered > self.app_limited {
            self.app_limited = 0;
        }
        if self.acked_sacked > 0 {
            self.delivered_time = now;
        }
        if let Some(r) = self.rtt {
            self.min_rtt = Some(self.min_rtt.map_or(r, |m| m.min(r)));
        }
        let mut rs = RateSample {
            acked_sacked: self.acked_sacked,
            losses: self.lost,
            total_delivered: self.delivered,
            rtt: self.rtt,
            ..RateSample::default()
        };
        if self.newest.is_some() {
            let delivered = u64::from((self.delivered as u32).wrapping_sub(self.prior_delivered));
            let ack_us = micros_between(now, self.prior_time);
            let interval = Duration::from_micros(u64::from(self.send_interval.max(ack_us)));
            rs.delivered = delivered;
            rs.prior_delivered = self.delivered - delivered;
            rs.is_app_limited = self.sample_app_limited;
            // A sample over less than the minimum RTT comes from ACK compression or a
            // stretch ACK: it overestimates the rate (draft-cheng §3.3).
            if self.min_rtt.is_none_or(|m| interval >= m) && interval > Duration::ZERO {
                rs.interval = Some(interval);
            }
        }
        self.acked_sacked = 0;
        self.lost = 0;
        self.newest = None;
        self.rtt = None;
        rs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(us: i64) -> Instant {
        Instant::from_micros(us)
    }

    /// Sends `n` segments of 1000 bytes at `at`, `gap` µs apart, starting at `seq`.
    fn send(
        r: &mut RateState,
        seq: u32,
        n: u32,
        at: i64,
        gap: i64,
    ) -> Vec<(TxRate, bool, i64, u32)> {
        (0..n)
            .map(|k| {
                let when = at + i64::from(k) * gap;
                let (s, app) = r.on_send(t(when), seq == 0 && k == 0);
                (s, app, when, seq + (k + 1) * 1000)
            })
            .collect()
    }

    #[test]
    fn steady_flow_gives_the_bottleneck_rate() {
        let mut r = RateState::default();
        // 10 segments paced 1 ms apart; each is acknowledged 10 ms after it left.
        let sent = send(&mut r, 0, 10, 0, 1000);
        let mut last = RateSample::default();
        for (k, (s, app, when, end)) in sent.into_iter().enumerate() {
            let now = t(when + 10_000);
            r.on_delivered(s, app, false, t(when), k as u32, SeqNumber(end), 1000, now);
            last = r.generate(now);
        }
        // Every snapshot saw nothing delivered yet (all left before the first ACK):
        // the last sample is 10,000 bytes over the 19 ms since the flow began (longer
        // than its 9 ms send interval).
        assert_eq!(last.delivered, 10_000);
        assert_eq!(last.interval, Some(Duration::from_millis(19)));
        assert_eq!(last.rtt, Some(Duration::from_millis(10)));
        assert_eq!(last.total_delivered, 10_000);
    }

    #[test]
    fn full_pipe_measures_the_sending_rate() {
        // One segment per ms, each ACKed 10 ms after it left: 1 MB/s once the first
        // round trip is over, whatever the RTT.
        let mut r = RateState::default();
        let mut sent = Vec::new();
        let mut rates = Vec::new();
        for ms in 0..40i64 {
            if (10..40).contains(&ms) {
                let k = (ms - 10) as usize;
                let (s, app, when, end) = sent[k];
                r.on_delivered(
                    s,
                    app,
                    false,
                    t(when),
                    k as u32,
                    SeqNumber(end),
                    1000,
                    t(ms * 1000),
                );
                rates.push(r.generate(t(ms * 1000)).delivery_rate());
            }
            if ms < 30 {
                let (s, app) = r.on_send(t(ms * 1000), ms == 0);
                sent.push((s, app, ms * 1000, (ms as u32 + 1) * 1000));
            }
        }
        assert!(
            rates[10..].iter().all(|&x| x == Some(1_000_000)),
            "{rates:?}"
        );
        assert!(
            rates[0].is_some_and(|x| x < 1_000_000),
            "the first sample is lower"
        );
    }

    #[test]
    fn newest_segment_of_an_ack_decides_and_sacked_bytes_count() {
        let mut r = RateState::default();
        let sent = send(&mut r, 0, 4, 0, 100);
        // One ACK delivers segments 2 and 0 (SACK then cumulative), in that order.
        let (s2, a2, w2, e2) = sent[2];
        let (s0, a0, w0, e0) = sent[0];
        r.on_delivered(s2, a2, false, t(w2), 2, SeqNumber(e2), 1000, t(5000));
        r.on_delivered(s0, a0, false, t(w0), 0, SeqNumber(e0), 1000, t(5000));
        let rs = r.generate(t(5000));
        assert_eq!(rs.acked_sacked, 2000);
        assert_eq!(rs.rtt, Some(Duration::from_micros(4800)), "segment 2's RTT");
        assert_eq!(rs.interval, Some(Duration::from_micros(5000)));
    }

    #[test]
    fn app_limited_marks_samples_until_the_flight_is_delivered() {
        let mut r = RateState::default();
        r.mark_app_limited(2000);
        assert!(r.is_app_limited());
        let sent = send(&mut r, 0, 2, 0, 0);
        for (k, (s, app, when, end)) in sent.into_iter().enumerate() {
            assert!(app);
            r.on_delivered(
                s,
                app,
                false,
                t(when),
                k as u32,
                SeqNumber(end),
                1000,
                t(1000),
            );
        }
        let rs = r.generate(t(1000));
        assert!(rs.is_app_limited);
        // Delivered (2000) has not passed the mark (2000) yet...
        assert!(r.is_app_limited());
        let (s, app) = r.on_send(t(1000), false);
        r.on_delivered(s, app, false, t(1000), 2, SeqNumber(3000), 1000, t(2000));
        r.generate(t(2000));
        // ...and now it has.
        assert!(!r.is_app_limited());
    }

    #[test]
    fn short_intervals_and_retransmissions_give_no_rate_or_rtt() {
        let mut r = RateState::default();
        let (s, app) = r.on_send(t(0), true);
        r.on_delivered(s, app, false, t(0), 0, SeqNumber(1000), 1000, t(10_000));
        r.generate(t(10_000));
        // Sent after an idle period (the clocks restart) and ACKed 5 ms later: an
        // interval of 5 ms is below the 10 ms minimum RTT, so no rate.
        let (s, app) = r.on_send(t(10_000), true);
        r.on_delivered(s, app, true, t(10_000), 1, SeqNumber(2000), 1000, t(15_000));
        let rs = r.generate(t(15_000));
        assert_eq!(rs.interval, None, "5 ms < min RTT 10 ms");
        assert_eq!(rs.rtt, None, "retransmitted");
        assert_eq!(rs.delivery_rate(), None);
        r.on_lost(1448);
        assert_eq!(r.generate(t(16_000)).losses, 1448);
    }
}
