//! Fault-injection flags shared by every subcommand that runs the stack on a link.
//!
//! Each flag applies to both directions, or to one when its value starts with `rx:`
//! (device → stack) or `tx:` (stack → device); flags may repeat, e.g.
//! `--loss 0.02 --loss tx:0.1`. Faults are drawn from `--seed`, so the same seed and
//! the same traffic inject the same faults.
//!
//! `ustack wire` forwards between two ends A and B and names its directions `a2b:` and
//! `b2a:`. It runs the same injector with A in the stack's place, so `a2b:` is parsed as
//! `tx:` and `b2a:` as `rx:` (both spellings are accepted everywhere).

use clap::Args;
use core::fmt;
use core::str::FromStr;
use ustack::link::fault::{DelaySpec, FaultSpecError, Probability, Rate, ReorderSpec};
use ustack::link::fault::{FaultCounters, GilbertElliott};
use ustack::link::{Direction, FaultConfig, Faults};

/// A flag value for one direction (`rx:` or `tx:` prefix) or both.
#[derive(Clone, Debug, PartialEq)]
pub struct Directed<T> {
    /// `None` for both directions.
    pub direction: Option<Direction>,
    /// The value.
    pub value: T,
}

impl<T: FromStr<Err = FaultSpecError>> FromStr for Directed<T> {
    type Err = FaultSpecError;
    fn from_str(s: &str) -> Result<Self, FaultSpecError> {
        // `ustack wire` puts end A where a stack would be: what A sends is the
        // injector's tx, what reaches A its rx.
        let (direction, rest) = if let Some(r) = s.strip_prefix("rx:").or(s.strip_prefix("b2a:")) {
            (Some(Direction::Rx), r)
        } else if let Some(r) = s.strip_prefix("tx:").or(s.strip_prefix("a2b:")) {
            (Some(Direction::Tx), r)
        } else {
            (None, s)
        };
        Ok(Directed {
            direction,
            value: rest.parse()?,
        })
    }
}

/// Corruption: `P[:BITS]`, flip 1..=BITS bits (default 1) in one byte of a frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CorruptSpec {
    /// Probability a frame is corrupted.
    pub probability: f64,
    /// Most bits flipped.
    pub max_bits: u8,
}

impl FromStr for CorruptSpec {
    type Err = FaultSpecError;
    fn from_str(s: &str) -> Result<Self, FaultSpecError> {
        let (p, bits) = match s.split_once(':') {
            Some((p, b)) => (
                p,
                b.trim().parse::<u8>().ok().filter(|b| (1..=8).contains(b)),
            ),
            None => (s, Some(1)),
        };
        let max_bits = bits.ok_or_else(|| FaultSpecError::new(s, "BITS must be 1..=8"))?;
        Ok(CorruptSpec {
            probability: p.parse::<Probability>()?.0,
            max_bits,
        })
    }
}

/// Queue length of the rate limiter, in frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLen(pub usize);

impl FromStr for QueueLen {
    type Err = FaultSpecError;
    fn from_str(s: &str) -> Result<Self, FaultSpecError> {
        match s.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(QueueLen(n)),
            _ => Err(FaultSpecError::new(
                s,
                "queue length must be a whole number > 0",
            )),
        }
    }
}

/// The burst-loss model flag: `gilbert:P_GOOD_TO_BAD:P_BAD_TO_GOOD[:LOSS_IN_BAD]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossModel(pub GilbertElliott);

impl FromStr for LossModel {
    type Err = FaultSpecError;
    fn from_str(s: &str) -> Result<Self, FaultSpecError> {
        s.parse().map(LossModel)
    }
}

/// Fault injection at the link, in either or both directions.
#[derive(Clone, Debug, Default, Args)]
#[command(
    next_help_heading = "Fault injection (prefix a value with rx: or tx: for one direction; a2b: or b2a: in `ustack wire`)"
)]
pub struct FaultArgs {
    /// Drop frames with probability P (0.1 or 10%).
    #[arg(long, value_name = "[DIR:]P", global = true)]
    pub loss: Vec<Directed<Probability>>,
    /// Burst loss with a Gilbert-Elliott model:
    /// gilbert:P_GOOD_TO_BAD:P_BAD_TO_GOOD[:LOSS_IN_BAD].
    #[arg(long, value_name = "[DIR:]MODEL", global = true)]
    pub loss_model: Vec<Directed<LossModel>>,
    /// Deliver frames twice with probability P.
    #[arg(long = "dup", value_name = "[DIR:]P", global = true)]
    pub duplicate: Vec<Directed<Probability>>,
    /// Hold a frame back with probability P behind up to DEPTH later frames (default 1).
    #[arg(long, value_name = "[DIR:]P[:DEPTH]", global = true)]
    pub reorder: Vec<Directed<ReorderSpec>>,
    /// Flip 1..=BITS bits (default 1) of a frame past its Ethernet header with probability P.
    #[arg(long, value_name = "[DIR:]P[:BITS]", global = true)]
    pub corrupt: Vec<Directed<CorruptSpec>>,
    /// Delay every frame by MS milliseconds, +/- JITTER (suffixes us, ms, s).
    #[arg(long, value_name = "[DIR:]MS[:JITTER]", global = true)]
    pub delay: Vec<Directed<DelaySpec>>,
    /// Limit the link to BITS/S (suffixes k, M, G) behind a bounded queue.
    #[arg(long, value_name = "[DIR:]BITS/S", global = true)]
    pub rate: Vec<Directed<Rate>>,
    /// Frames the rate limiter queues before tail-dropping (default 1000).
    #[arg(long, value_name = "[DIR:]N", global = true)]
    pub queue: Vec<Directed<QueueLen>>,
}

impl FaultArgs {
    /// The configured faults, or `None` when no flag was given.
    pub fn faults(&self) -> Option<Faults> {
        let mut f = Faults::default();
        let mut any = false;
        let mut apply = |dir: Option<Direction>, set: &dyn Fn(&mut FaultConfig)| {
            any = true;
            if dir != Some(Direction::Tx) {
                set(&mut f.rx);
            }
            if dir != Some(Direction::Rx) {
                set(&mut f.tx);
            }
        };
        for d in &self.loss {
            apply(d.direction, &|c| c.loss = d.value.0);
        }
        for d in &self.loss_model {
            apply(d.direction, &|c| c.burst = Some(d.value.0));
        }
        for d in &self.duplicate {
            apply(d.direction, &|c| c.duplicate = d.value.0);
        }
        for d in &self.reorder {
            apply(d.direction, &|c| {
                c.reorder = d.value.probability;
                c.reorder_depth = d.value.depth;
            });
        }
        for d in &self.corrupt {
            apply(d.direction, &|c| {
                c.corrupt = d.value.probability;
                c.corrupt_max_bits = d.value.max_bits;
            });
        }
        for d in &self.delay {
            apply(d.direction, &|c| {
                c.delay = d.value.delay;
                c.jitter = d.value.jitter;
            });
        }
        for d in &self.rate {
            apply(d.direction, &|c| c.rate_bps = Some(d.value.0));
        }
        for d in &self.queue {
            apply(d.direction, &|c| c.queue_frames = d.value.0);
        }
        any.then_some(f)
    }
}

/// Prints one direction's fault counters on one line.
pub struct CountersLine<'a>(pub &'a str, pub &'a FaultCounters);

impl fmt::Display for CountersLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.1;
        write!(
            f,
            "{}: {} frames in, {} passed, dropped {} random / {} burst / {} queue-full, \
             {} duplicated, {} reordered, {} corrupted, {} delayed",
            self.0,
            c.received,
            c.passed,
            c.dropped_random,
            c.dropped_burst,
            c.dropped_queue_full,
            c.duplicated,
            c.reordered,
            c.corrupted,
            c.delayed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        f: FaultArgs,
    }

    fn parse(args: &[&str]) -> Option<Faults> {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        T::try_parse_from(v).unwrap().f.faults()
    }

    #[test]
    fn no_flags_no_faults() {
        assert_eq!(parse(&[]), None);
    }

    #[test]
    fn both_directions_then_one_overrides() {
        let f = parse(&["--loss", "0.1", "--loss", "tx:5%", "--dup", "rx:0.01"]).unwrap();
        assert_eq!(f.rx.loss, 0.1);
        assert_eq!(f.tx.loss, 0.05);
        assert_eq!(f.rx.duplicate, 0.01);
        assert_eq!(f.tx.duplicate, 0.0);
    }

    #[test]
    fn wire_directions_are_tx_and_rx() {
        let f = parse(&["--loss", "a2b:0.1", "--loss", "b2a:0.2", "--dup", "a2b:0.3"]).unwrap();
        assert_eq!((f.tx.loss, f.rx.loss), (0.1, 0.2));
        assert_eq!((f.tx.duplicate, f.rx.duplicate), (0.3, 0.0));
    }

    #[test]
    fn compound_values() {
        let f = parse(&[
            "--reorder",
            "0.05:3",
            "--corrupt",
            "0.001:2",
            "--delay",
            "tx:20:5",
            "--rate",
            "10M",
            "--queue",
            "64",
            "--loss-model",
            "gilbert:0.01:0.3:0.5",
        ])
        .unwrap();
        assert_eq!((f.rx.reorder, f.rx.reorder_depth), (0.05, 3));
        assert_eq!((f.tx.corrupt, f.tx.corrupt_max_bits), (0.001, 2));
        assert_eq!(f.tx.delay, ustack::time::Duration::from_millis(20));
        assert_eq!(f.tx.jitter, ustack::time::Duration::from_millis(5));
        assert_eq!(f.rx.delay, ustack::time::Duration::ZERO);
        assert_eq!(f.rx.rate_bps, Some(10_000_000));
        assert_eq!(f.tx.queue_frames, 64);
        assert!(f.rx.burst.is_some());
    }

    #[test]
    fn bad_values_are_rejected() {
        for bad in [
            ["--loss", "1.5"],
            ["--loss", "up:0.1"],
            ["--corrupt", "0.1:9"],
            ["--queue", "0"],
        ] {
            let mut v = vec!["t"];
            v.extend_from_slice(&bad);
            assert!(T::try_parse_from(v).is_err(), "{bad:?} accepted");
        }
    }
}
