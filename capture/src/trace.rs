//! Reading TCP event logs (`ustack --trace-file FILE`, written by the tools' tracer) for
//! `ustack plot --trace`.
//!
//! # Event log format
//!
//! JSON lines, one TCP event per line; unknown keys are ignored and every key but `t_us`
//! may be missing:
//!
//! ```text
//! {"t_us":1500,"conn":"10.0.0.1:40000-10.0.0.2:5001","cwnd":14600,"ssthresh":65535,"srtt_us":1200,"event":"ack"}
//! ```
//!
//! - `t_us`: microseconds since any fixed epoch (the stack's `Instant`).
//! - `conn`: `local_ip:port-remote_ip:port`.
//! - `cwnd`, `ssthresh`: bytes (`ssthresh` of 2^31 or more counts as "infinite" and is
//!   not drawn); `srtt_us`: smoothed RTT in microseconds.
//! - `event`: a short name (`ack`, `rto`, `fast_retransmit`, `state`, ...); lines whose
//!   event is not `ack`, `cwnd`, `window` or `window_update_sent` are marked on the
//!   cwnd curve.
//!
//! Blank lines and lines starting with `#` are skipped.

use serde::Deserialize;

/// One line of the event log.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct TraceEvent {
    /// Microseconds since the log's epoch.
    pub t_us: i64,
    /// `a:p-b:q`.
    #[serde(default)]
    pub conn: Option<String>,
    /// Congestion window, bytes.
    #[serde(default)]
    pub cwnd: Option<u64>,
    /// Slow-start threshold, bytes.
    #[serde(default)]
    pub ssthresh: Option<u64>,
    /// Smoothed RTT, microseconds.
    #[serde(default)]
    pub srtt_us: Option<u64>,
    /// Event name.
    #[serde(default)]
    pub event: Option<String>,
}

/// Parses an event log (see the module docs).
///
/// # Errors
/// A line that is not a JSON object with `t_us`, with its line number.
pub fn parse_trace(text: &str) -> Result<Vec<TraceEvent>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}
