//! HyStart++ (RFC 9406): leaves the first slow start when the round trip time starts
//! to grow (a queue builds at the bottleneck), before the losses that classic slow
//! start ends with, through Conservative Slow Start (CSS): a quarter of slow start's
//! growth for up to `CSS_ROUNDS` rounds, which a falling RTT turns back into slow
//! start. Rounds are delimited by the connection (an ACK past the SND.NXT of the
//! round's start, §4.2 `windowEnd`); RTT samples come from every ACK that gives one.
//!
//! Only the initial slow start uses it (§4.2: "only for the initial slow start (when
//! the ssthresh is at its initial value of arbitrarily high)"); once a loss set
//! ssthresh, slow start is the standard one.

use crate::time::Duration;

/// RFC 9406 §4.3 constants (the RFC's recommended values).
const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
const MIN_RTT_DIVISOR: u64 = 8;
const N_RTT_SAMPLE: u32 = 8;
/// CSS grows cwnd by this fraction of slow start's growth.
pub(super) const CSS_GROWTH_DIVISOR: usize = 4;
const CSS_ROUNDS: u32 = 5;

/// Which phase of slow start HyStart++ is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Standard slow start, watching the RTT.
    SlowStart,
    /// Conservative slow start since the RTT rose to `baseline`; `rounds` done.
    Css { baseline: Duration, rounds: u32 },
    /// CSS ran its rounds: the caller sets ssthresh = cwnd (congestion avoidance).
    Done,
}

/// HyStart++ state of one connection.
#[derive(Clone, Debug)]
pub(super) struct HyStart {
    pub phase: Phase,
    last_round_min: Option<Duration>,
    current_round_min: Option<Duration>,
    samples: u32,
}

impl HyStart {
    pub(super) fn new() -> HyStart {
        HyStart {
            phase: Phase::SlowStart,
            last_round_min: None,
            current_round_min: None,
            samples: 0,
        }
    }

    /// An ACK in the initial slow start (RFC 9406 §4.3): rolls the round over when
    /// `round_start`, takes the RTT sample, and moves between the phases.
    pub(super) fn on_ack(&mut self, rtt: Option<Duration>, round_start: bool) {
        if self.phase == Phase::Done {
            return;
        }
        if round_start {
            self.last_round_min = self.current_round_min.take();
            self.samples = 0;
            if let Phase::Css { baseline, rounds } = self.phase {
                // "If CSS_ROUNDS rounds are complete, enter congestion avoidance".
                self.phase = if rounds + 1 >= CSS_ROUNDS {
                    Phase::Done
                } else {
                    Phase::Css {
                        baseline,
                        rounds: rounds + 1,
                    }
                };
                if self.phase == Phase::Done {
                    return;
                }
            }
        }
        let Some(rtt) = rtt else {
            return;
        };
        self.current_round_min = Some(self.current_round_min.map_or(rtt, |m| m.min(rtt)));
        self.samples += 1;
        if self.samples < N_RTT_SAMPLE {
            return;
        }
        let Some(current) = self.current_round_min else {
            return;
        };
        match self.phase {
            Phase::SlowStart => {
                let Some(last) = self.last_round_min else {
                    return;
                };
                // RttThresh = max(MIN_RTT_THRESH, min(lastRoundMinRTT / MIN_RTT_DIVISOR,
                // MAX_RTT_THRESH)).
                let thresh = Duration::from_micros(last.total_micros() / MIN_RTT_DIVISOR)
                    .min(MAX_RTT_THRESH)
                    .max(MIN_RTT_THRESH);
                if current >= last + thresh {
                    self.phase = Phase::Css {
                        baseline: current,
                        rounds: 0,
                    };
                }
            }
            Phase::Css { baseline, .. } => {
                // "the current round's minRTT drops below baseline indicating that
                // slow start exit was spurious": resume slow start.
                if current < baseline {
                    self.phase = Phase::SlowStart;
                }
            }
            Phase::Done => {}
        }
    }
}
