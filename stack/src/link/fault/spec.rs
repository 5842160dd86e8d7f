//! Text specs for fault knobs, for command-line flags (`FromStr` on each knob).
//!
//! | spec | type | example |
//! |------|------|---------|
//! | probability | [`Probability`] | `0.1`, `10%` |
//! | reorder `P[:DEPTH]` | [`ReorderSpec`] | `0.05:3` |
//! | delay `MS[:JITTER]` (ms unless suffixed `us`/`ms`/`s`) | [`DelaySpec`] | `20:5`, `500us` |
//! | burst loss `gilbert:P_GB:P_BG[:LOSS_IN_BAD[:LOSS_IN_GOOD]]` | [`GilbertElliott`] | `gilbert:0.01:0.3` |
//! | rate in bits/s with `k`/`M`/`G` (decimal) | [`Rate`] | `10M`, `500k`, `1.5Mbit` |
//! | everything, comma separated `key=value` | [`FaultConfig`] | `loss=0.1,delay=20:5,rate=10M` |
//!
//! Keys of a [`FaultConfig`] spec: `loss` (probability or a `gilbert:` spec), `burst`,
//! `dup`/`duplicate`, `reorder`, `corrupt` (probability, optionally `:MAX_BITS`),
//! `delay`, `rate`, `queue` (frames). Parsing never panics.

use super::{FaultConfig, GilbertElliott};
use crate::time::Duration;
use core::fmt;
use core::str::FromStr;

/// Why a fault spec did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultSpecError {
    spec: String,
    why: &'static str,
}

impl FaultSpecError {
    /// An error saying why `spec` is not acceptable.
    pub fn new(spec: &str, why: &'static str) -> FaultSpecError {
        FaultSpecError {
            spec: spec.to_owned(),
            why,
        }
    }
}

impl fmt::Display for FaultSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad fault spec {:?}: {}", self.spec, self.why)
    }
}

impl std::error::Error for FaultSpecError {}

/// A probability in `[0, 1]`, written `0.1` or `10%`.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Probability(pub f64);

impl FromStr for Probability {
    type Err = FaultSpecError;
    fn from_str(s: &str) -> Result<Self, FaultSpecError> {
        let t = s.trim();
        let (num, scale) = match t.strip_suffix('%') {
            Some(n) => (n, 100.0),
            None => (t, 1.0),
        };
        let p: f64 = num
            .trim()
            .parse()
            .map_err(|_| FaultSpecError::new(s, "not a number"))?;
        let p = p / scale;
        if !(0.0..=1.0).contains(&p) {
            return Err(FaultSpecError::new(s, "probability must be in [0, 1]"));
        }
        Ok(Probability(p))
    }
}

/// Reordering: `P[:DEPTH]`, hold a frame back with probability P behind up to DEPTH
/// (default 1) later frames.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReorderSpec {
    /// Probability a frame is held back.
    pub probability: f64,
    /// Most later frames that pass it.
    pub depth: u32,
}

impl FromStr for ReorderSpec {
    type Err = FaultSpecError;
    fn from_str(s: &str) -> Result<Self, FaultSpecError> {
        let (p, depth) = match s.split_once(':') {
            Some((p, d)) => (
                p,
                d.trim()
                    .parse::<u32>()
                    .map_err(|_| FaultSpecError::new(s, "depth must be a whole number"))?,
            ),
            None => (s, 1),
        };
        if depth == 0 {
            return Err(FaultSpecError::new(s, "depth must be at least 1"));
        }
        Ok(ReorderSpec {
            probability: p.parse::<Probability>()?.0,
            depth,
        })
    }
}

/// Delay: `MS[:JITTER]`; numbers are milliseconds (decimals allowed) unless suffixed
/// `us`, `ms` or `s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DelaySpec {
    /// Mean delay.
    pub delay: Duration,
    /// Each frame's delay is drawn from `delay ± jitter`.
    pub jitter: Duration,
}

fn parse_duration(s: &str, whole: &str) -> Result<Duration, FaultSpecError> {
    let t = s.trim();
    let (num, micros_per_unit) = if let Some(n) = t.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1000.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1e6)
    } else {
        (t, 1000.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| FaultSpecError::new(whole, "not a duration"))?;
    let micros = v * micros_per_unit;
    if !(0.0..=1e15).contains(&micros) {
        return Err(FaultSpecError::new(whole, "duration out of range"));
    }
    Ok(Duration::from_micros(micros.round() as u64))
}

impl FromStr for DelaySpec {
    type Err = FaultSpecError;
    fn from_str(s: &str) -> Result<Self, FaultSpecError> {
        let (d, j) = match s.split_once(':') {
            Some((d, j)) => (d, Some(j)),
            None => (s, None),
        };
        Ok(DelaySpec {
            delay: parse_duration(d, s)?,
            jitter: match j {
                Some(j) => parse_duration(j, s)?,
                None => Duration::ZERO,
            },
        })
    }
}

impl FromStr for GilbertElliott {
    type Err = FaultSpecError;
    /// Parses `gilbert:P_GB:P_BG[:LOSS_IN_BAD[:LOSS_IN_GOOD]]` (`ge:` also accepted).
    fn from_str(s: &str) -> Result<Self, FaultSpecError> {
        let mut parts = s.split(':');
        match parts.next().map(str::trim) {
            Some("gilbert" | "ge" | "gilbert-elliott") => {}
            _ => return Err(FaultSpecError::new(s, "expected gilbert:P_GB:P_BG")),
        }
        let mut next = |required: bool| -> Result<Option<f64>, FaultSpecError> {
            match parts.next() {
                Some(p) => Ok(Some(p.parse::<Probability>()?.0)),
                None if required => Err(FaultSpecError::new(s, "expected gilbert:P_GB:P_BG")),
                None => Ok(None),
            }
        };
        let p_gb = next(true)?.unwrap_or(0.0);
        let p_bg = next(true)?.unwrap_or(0.0);
        let mut ge = GilbertElliott::new(p_gb, p_bg);
        if let Some(l) = next(false)? {
            ge.loss_in_bad = l;
        }
        if let Some(l) = next(false)? {
            ge.loss_in_good = l;
        }
        if parts.next().is_some() {
            return Err(FaultSpecError::new(s, "too many fields"));
        }
        Ok(ge)
    }
}

/// A link rate in bits per second: `10M`, `500k`, `1G`, `1.5Mbit`, `64000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate(pub u64);

impl FromStr for Rate {
    type Err = FaultSpecError;
    fn from_str(s: &str) -> Result<Self, FaultSpecError> {
        let mut t = s.trim();
        for unit in ["bit/s", "bps", "bit"] {
            if let Some(n) = t.strip_suffix(unit) {
                t = n;
                break;
            }
        }
        let (num, mult) = match t.chars().last() {
            Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
            Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
            Some('g' | 'G') => (&t[..t.len() - 1], 1e9),
            _ => (t, 1.0),
        };
        let v: f64 = num
            .trim()
            .parse()
            .map_err(|_| FaultSpecError::new(s, "not a rate"))?;
        let bps = v * mult;
        if !(1.0..=1e15).contains(&bps) {
            return Err(FaultSpecError::new(
                s,
                "rate must be between 1 bit/s and 1 Pbit/s",
            ));
        }
        Ok(Rate(bps.round() as u64))
    }
}

impl FromStr for FaultConfig {
    type Err = FaultSpecError;
    /// Parses `key=value` pairs separated by commas, e.g.
    /// `loss=0.01,burst=gilbert:0.01:0.3,dup=0.01,reorder=0.05:3,corrupt=0.001,delay=20:5,rate=10M,queue=64`.
    fn from_str(s: &str) -> Result<Self, FaultSpecError> {
        let mut c = FaultConfig::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| FaultSpecError::new(item, "expected key=value"))?;
            match key.trim() {
                "loss" if value.contains(':') => c.burst = Some(value.parse()?),
                "loss" => c.loss = value.parse::<Probability>()?.0,
                "burst" => c.burst = Some(value.parse()?),
                "dup" | "duplicate" => c.duplicate = value.parse::<Probability>()?.0,
                "reorder" => {
                    let r: ReorderSpec = value.parse()?;
                    c.reorder = r.probability;
                    c.reorder_depth = r.depth;
                }
                "corrupt" => {
                    let (p, bits) = match value.split_once(':') {
                        Some((p, b)) => (
                            p,
                            b.trim().parse::<u8>().ok().filter(|b| (1..=8).contains(b)),
                        ),
                        None => (value, Some(1)),
                    };
                    c.corrupt = p.parse::<Probability>()?.0;
                    c.corrupt_max_bits =
                        bits.ok_or_else(|| FaultSpecError::new(item, "bits must be 1..=8"))?;
                }
                "delay" => {
                    let d: DelaySpec = value.parse()?;
                    c.delay = d.delay;
                    c.jitter = d.jitter;
                }
                "rate" => c.rate_bps = Some(value.parse::<Rate>()?.0),
                "queue" => {
                    c.queue_frames = value
                        .trim()
                        .parse()
                        .map_err(|_| FaultSpecError::new(item, "queue is a frame count"))?
                }
                _ => return Err(FaultSpecError::new(item, "unknown key")),
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knobs_parse() {
        assert_eq!("0.1".parse::<Probability>().unwrap(), Probability(0.1));
        assert_eq!("25%".parse::<Probability>().unwrap(), Probability(0.25));
        assert!("1.5".parse::<Probability>().is_err());
        assert!("nan".parse::<Probability>().is_err());
        assert_eq!(
            "0.05:3".parse::<ReorderSpec>().unwrap(),
            ReorderSpec {
                probability: 0.05,
                depth: 3
            }
        );
        assert_eq!("0.2".parse::<ReorderSpec>().unwrap().depth, 1);
        assert!("0.2:0".parse::<ReorderSpec>().is_err());
        let d: DelaySpec = "20:5".parse().unwrap();
        assert_eq!(d.delay, Duration::from_millis(20));
        assert_eq!(d.jitter, Duration::from_millis(5));
        assert_eq!(
            "500us".parse::<DelaySpec>().unwrap().delay,
            Duration::from_micros(500)
        );
        assert_eq!(
            "1.5".parse::<DelaySpec>().unwrap().delay,
            Duration::from_micros(1500)
        );
        assert!("-3".parse::<DelaySpec>().is_err());
        let ge: GilbertElliott = "gilbert:0.01:0.3".parse().unwrap();
        assert_eq!(ge, GilbertElliott::new(0.01, 0.3));
        let ge: GilbertElliott = "gilbert:0.01:0.3:0.8".parse().unwrap();
        assert_eq!(ge.loss_in_bad, 0.8);
        assert!("gilbert:0.01".parse::<GilbertElliott>().is_err());
        assert!("markov:0.1:0.1".parse::<GilbertElliott>().is_err());
        assert_eq!("10M".parse::<Rate>().unwrap(), Rate(10_000_000));
        assert_eq!("500k".parse::<Rate>().unwrap(), Rate(500_000));
        assert_eq!("1.5Mbit".parse::<Rate>().unwrap(), Rate(1_500_000));
        assert_eq!("64000".parse::<Rate>().unwrap(), Rate(64_000));
        assert!("0".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
    }

    #[test]
    fn full_config_parses_and_rejects_unknown_keys() {
        let c: FaultConfig =
            "loss=0.01, dup=0.02,reorder=0.05:3,corrupt=0.001:4,delay=20:5,rate=10M,queue=64,loss=gilbert:0.1:0.5"
                .parse()
                .unwrap();
        assert_eq!(c.loss, 0.01);
        assert_eq!(c.duplicate, 0.02);
        assert_eq!((c.reorder, c.reorder_depth), (0.05, 3));
        assert_eq!((c.corrupt, c.corrupt_max_bits), (0.001, 4));
        assert_eq!(c.delay, Duration::from_millis(20));
        assert_eq!(c.rate_bps, Some(10_000_000));
        assert_eq!(c.queue_frames, 64);
        assert_eq!(c.burst, Some(GilbertElliott::new(0.1, 0.5)));
        assert_eq!("".parse::<FaultConfig>().unwrap(), FaultConfig::default());
        assert!("speed=3".parse::<FaultConfig>().is_err());
        assert!("loss".parse::<FaultConfig>().is_err());
        assert!("corrupt=0.1:9".parse::<FaultConfig>().is_err());
    }
}
