//! What `ustack bench` measured: per-round outcomes by figure and column, their medians
//! and ratios, and the table (Markdown) or JSON that prints them.
//!
//! A failed round is kept as a failure with its reason, never as a number: the median
//! is taken over the rounds that succeeded and the cell says how many failed.
//!
//! Each column's outcomes are stored in round order (index i is round i), so ustack's
//! and smoltcp's round i, measured in the same round one after the other, pair by index:
//! their ratios show how far the ratio moves from round to round.

use serde::Serialize;
use std::collections::BTreeMap;

/// The table's rows, in print order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Figure {
    /// The stack receives a bulk transfer from the kernel.
    BulkRx,
    /// The stack sends a bulk transfer to the kernel.
    BulkTx,
    /// 1-byte request / 2-byte response, stack and client pinned to one CPU.
    RrPinned,
    /// The same, unpinned.
    RrUnpinned,
    /// Serial connect, read `hello\n`, close.
    ConnRate,
    /// Accept rate while N connections are opened and held.
    ConcurrentAccept,
    /// Resident memory per held connection.
    ConcurrentMemory,
    /// In-memory bulk transfer between two instances of the stack (no device).
    InMemoryBulk,
    /// Instructions per byte of the in-memory transfer (callgrind).
    InMemoryInstructions,
    /// Serial in-memory connections between two instances of the stack (no device).
    InMemoryConns,
    /// Instructions per in-memory connection, both ends together (callgrind).
    InMemoryConnInstructions,
}

impl Figure {
    /// Every figure, in print order.
    pub const ALL: [Figure; 11] = [
        Figure::BulkRx,
        Figure::BulkTx,
        Figure::RrPinned,
        Figure::RrUnpinned,
        Figure::ConnRate,
        Figure::ConcurrentAccept,
        Figure::ConcurrentMemory,
        Figure::InMemoryBulk,
        Figure::InMemoryInstructions,
        Figure::InMemoryConns,
        Figure::InMemoryConnInstructions,
    ];

    /// The row's label, with the bulk size or connection count from `settings` where it
    /// matters.
    pub fn label(self, settings: &Settings) -> String {
        match self {
            Figure::BulkRx => format!("bulk, stack receiving {}", human_bytes(settings.size)),
            Figure::BulkTx => format!("bulk, stack sending {}", human_bytes(settings.size)),
            Figure::RrPinned => "1-byte request / 2-byte response, pinned to one CPU".into(),
            Figure::RrUnpinned => "1-byte request / 2-byte response, unpinned".into(),
            Figure::ConnRate => "connect, read `hello\\n`, close, serial".into(),
            Figure::ConcurrentAccept => {
                format!("{} concurrent connections: accept rate", settings.conns)
            }
            Figure::ConcurrentMemory => format!(
                "{} concurrent connections: memory per connection",
                settings.conns
            ),
            Figure::InMemoryBulk => format!(
                "in-memory bulk {} (no device), per CPU second",
                human_bytes(settings.inmem_size)
            ),
            Figure::InMemoryInstructions => {
                "in-memory bulk: instructions per byte (callgrind)".into()
            }
            Figure::InMemoryConns => "in-memory connections (no device), per CPU second".into(),
            Figure::InMemoryConnInstructions => {
                "in-memory: instructions per connection (callgrind)".into()
            }
        }
    }

    /// The unit of the row's figures.
    pub fn unit(self) -> &'static str {
        match self {
            Figure::BulkRx | Figure::BulkTx | Figure::InMemoryBulk => "Gbit/s",
            Figure::RrPinned | Figure::RrUnpinned => "round trips/s",
            Figure::ConnRate | Figure::ConcurrentAccept | Figure::InMemoryConns => "connections/s",
            Figure::ConcurrentMemory => "KiB",
            Figure::InMemoryInstructions => "instr/byte",
            Figure::InMemoryConnInstructions => "instr/connection",
        }
    }

    /// Whether a larger figure is better (memory and instructions: smaller is).
    pub fn higher_is_better(self) -> bool {
        !matches!(
            self,
            Figure::ConcurrentMemory
                | Figure::InMemoryInstructions
                | Figure::InMemoryConnInstructions
        )
    }
}

/// The table's value columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Column {
    /// ustack on the TAP (the socket API).
    Ustack,
    /// smoltcp 0.14 on the same TAP.
    Smoltcp,
    /// Linux to Linux over a veth pair, offloads off.
    KernelOffloadsOff,
    /// Linux to Linux over a veth pair, offloads on.
    KernelOffloadsOn,
    /// ustack on the TAP with checksum and segmentation offloads (`--offload`).
    UstackOffloadsOn,
}

impl Column {
    /// Every column, in print order.
    pub const ALL: [Column; 5] = [
        Column::Ustack,
        Column::Smoltcp,
        Column::KernelOffloadsOff,
        Column::KernelOffloadsOn,
        Column::UstackOffloadsOn,
    ];

    /// The column heading.
    pub fn heading(self) -> &'static str {
        match self {
            Column::Ustack => "ustack",
            Column::Smoltcp => "smoltcp",
            Column::KernelOffloadsOff => "kernel veth, offloads off",
            Column::KernelOffloadsOn => "kernel veth, offloads on",
            Column::UstackOffloadsOn => "ustack, offloads on",
        }
    }
}

/// How one round of one figure went.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The figure of a verified run.
    Value(f64),
    /// The run failed (the reason), so it gives no figure.
    Failed(String),
}

/// What one cell holds when it holds no figure at all.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Absent {
    /// The figure does not apply to this column (e.g. RSS of the kernel).
    NotApplicable,
    /// Not run, and why (e.g. valgrind is not installed, smoltcp not compiled in).
    Skipped(String),
}

/// The run's settings, printed above the table.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// Rounds per figure.
    pub rounds: usize,
    /// Bytes per bulk transfer.
    pub size: u64,
    /// Seconds per request/response and connection-rate round.
    pub secs: f64,
    /// Connections of the concurrency figure.
    pub conns: usize,
    /// Bytes of the in-memory transfer (natively; callgrind uses a smaller size).
    pub inmem_size: u64,
    /// Serial in-memory connections per round (natively; callgrind uses fewer).
    pub inmem_conns: u32,
}

/// Everything measured, plus what the header prints.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// UTC date and time of the start.
    pub date: String,
    /// nproc, CPU model, kernel, load average at the start.
    pub machine: String,
    /// The command line.
    pub command: String,
    /// Sizes and counts.
    pub settings: Settings,
    /// Notes printed under the table (buffer sizes, offload states, skipped parts).
    pub notes: Vec<String>,
    /// Per-round outcomes.
    #[serde(serialize_with = "ser_results")]
    pub results: BTreeMap<(Figure, Column), Vec<Outcome>>,
    /// Cells that hold no figure on purpose.
    #[serde(serialize_with = "ser_absent")]
    pub absent: BTreeMap<(Figure, Column), Absent>,
}

fn ser_results<S: serde::Serializer>(
    m: &BTreeMap<(Figure, Column), Vec<Outcome>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(m.len()))?;
    for ((f, c), v) in m {
        seq.serialize_element(&serde_json::json!({
            "figure": f, "column": c, "unit": f.unit(),
            "median": median(&values(v)), "rounds": v,
        }))?;
    }
    seq.end()
}

/// ustack/smoltcp within each round where both columns succeeded, for one figure.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PairedRatios {
    /// The figure both columns measured.
    pub figure: Figure,
    /// `(round index from 0, ustack_i / smoltcp_i)`, in round order.
    #[serde(serialize_with = "ser_pairs")]
    pub pairs: Vec<(usize, f64)>,
    /// The lowest ratio; `None` without pairs.
    pub min: Option<f64>,
    /// The median ratio (mean of the two middle ones for an even count).
    pub median: Option<f64>,
    /// The highest ratio.
    pub max: Option<f64>,
}

impl PairedRatios {
    /// Pairs `ustack` and `smoltcp` outcomes by round index.
    pub fn new(figure: Figure, ustack: &[Outcome], smoltcp: &[Outcome]) -> PairedRatios {
        let pairs = paired_ratios(ustack, smoltcp);
        let mut r: Vec<f64> = pairs.iter().map(|&(_, r)| r).collect();
        r.sort_by(f64::total_cmp);
        PairedRatios {
            figure,
            min: r.first().copied(),
            median: median(&r),
            max: r.last().copied(),
            pairs,
        }
    }

    /// The table cell: `min–median–max`, or `—` with fewer than 2 pairs (one pair says
    /// nothing about how the ratio moves). The lowest is rounded down and the highest
    /// up, to two decimals, so a round at 0.996 does not print as 1.00 and hide that
    /// the rounds disagree on which stack is ahead.
    pub fn cell(&self) -> String {
        match (self.min, self.median, self.max) {
            (Some(lo), Some(m), Some(hi)) if self.pairs.len() >= 2 => {
                // The nudge keeps a ratio that is exactly two decimals (0.29, stored as
                // 0.28999…) from dropping a hundredth.
                let lo = ((lo * 100.0) + 1e-9).floor() / 100.0;
                let hi = ((hi * 100.0) - 1e-9).ceil() / 100.0;
                format!("{lo:.2}–{m:.2}–{hi:.2}")
            }
            _ => "—".into(),
        }
    }
}

fn ser_pairs<S: serde::Serializer>(p: &[(usize, f64)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(p.len()))?;
    for (round, ratio) in p {
        seq.serialize_element(&serde_json::json!({ "round": round, "ratio": ratio }))?;
    }
    seq.end()
}

/// `(i, a_i / b_i)` for every round index i where both `a` and `b` hold a figure and
/// `b_i` is positive; a round that failed on either side gives no pair.
pub fn paired_ratios(a: &[Outcome], b: &[Outcome]) -> Vec<(usize, f64)> {
    a.iter()
        .zip(b)
        .enumerate()
        .filter_map(|(i, pair)| match pair {
            (Outcome::Value(x), Outcome::Value(y)) => ratio(Some(*x), Some(*y)).map(|r| (i, r)),
            _ => None,
        })
        .collect()
}

/// The JSON form: the report's fields, then the paired ratios.
#[derive(Serialize)]
struct ReportJson<'a> {
    #[serde(flatten)]
    report: &'a Report,
    paired_ratios: Vec<PairedRatios>,
}

fn ser_absent<S: serde::Serializer>(
    m: &BTreeMap<(Figure, Column), Absent>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(m.len()))?;
    for ((f, c), a) in m {
        seq.serialize_element(&serde_json::json!({ "figure": f, "column": c, "absent": a }))?;
    }
    seq.end()
}

/// The successful figures among `outcomes`.
pub fn values(outcomes: &[Outcome]) -> Vec<f64> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Value(v) => Some(*v),
            Outcome::Failed(_) => None,
        })
        .collect()
}

/// The median (mean of the two middle values for an even count); `None` when empty.
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    })
}

/// `a / b`, when both exist and `b` is positive.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// A figure with three significant digits and k/M suffixes (`58.1k`, `4.36`, `132k`).
pub fn fmt_value(x: f64) -> String {
    let a = x.abs();
    if a >= 1e7 {
        format!("{:.0}M", x / 1e6)
    } else if a >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if a >= 1e5 {
        format!("{:.0}k", x / 1e3)
    } else if a >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else if a >= 1e3 {
        format!("{:.2}k", x / 1e3)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// Bytes as `1 GB`, `50 MB`, `4 KB` (decimal units, as the bulk sizes are given).
pub fn human_bytes(n: u64) -> String {
    for (unit, div) in [("GB", 1_000_000_000u64), ("MB", 1_000_000), ("KB", 1_000)] {
        if n >= div {
            return if n % div == 0 {
                format!("{} {unit}", n / div)
            } else {
                format!("{:.1} {unit}", n as f64 / div as f64)
            };
        }
    }
    format!("{n} B")
}

/// Parses `1G`, `100M`, `64K`, `1500` (decimal multiples) into bytes.
///
/// # Errors
/// Not a number with an optional K/M/G suffix.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1_000,
                'M' => 1_000_000,
                'G' => 1_000_000_000,
                _ => return Err(format!("`{s}`: unknown suffix `{c}` (K, M or G)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}`: expected a byte count such as 1G, 100M or 65536"))?;
    n.checked_mul(mult)
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("`{s}`: must be positive and fit in 64 bits"))
}

/// One cell: the median, and how many rounds failed if any did.
fn cell(outcomes: Option<&Vec<Outcome>>, absent: Option<&Absent>) -> String {
    if let Some(a) = absent {
        return match a {
            Absent::NotApplicable => "n/a".into(),
            Absent::Skipped(_) => "skipped".into(),
        };
    }
    let Some(o) = outcomes else {
        return "—".into();
    };
    let v = values(o);
    let failed = o.len() - v.len();
    match median(&v) {
        Some(m) if failed == 0 => fmt_value(m),
        Some(m) => format!("{} ({failed} of {} failed)", fmt_value(m), o.len()),
        None => format!("failed ({failed} of {})", o.len()),
    }
}

impl Report {
    /// The median of one cell, over its successful rounds.
    pub fn median_of(&self, f: Figure, c: Column) -> Option<f64> {
        self.results.get(&(f, c)).and_then(|o| median(&values(o)))
    }

    /// ustack/smoltcp paired by round for figure `f`; `None` unless both columns ran it.
    pub fn paired(&self, f: Figure) -> Option<PairedRatios> {
        let u = self.results.get(&(f, Column::Ustack))?;
        let s = self.results.get(&(f, Column::Smoltcp))?;
        Some(PairedRatios::new(f, u, s))
    }

    /// The report as pretty JSON: every field (`results` keeps every round), plus
    /// `paired_ratios`, one entry per figure both ustack and smoltcp ran.
    ///
    /// # Errors
    /// Serialization failed (serde_json's error).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(&ReportJson {
            report: self,
            paired_ratios: Figure::ALL.iter().filter_map(|&f| self.paired(f)).collect(),
        })
    }

    /// Every failed round, as `figure / column: reason` lines.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for ((f, c), o) in &self.results {
            for (i, r) in o.iter().enumerate() {
                if let Outcome::Failed(why) = r {
                    out.push(format!(
                        "{} / {} round {}: {why}",
                        f.label(&self.settings),
                        c.heading(),
                        i + 1
                    ));
                }
            }
        }
        out
    }

    /// The header, the Markdown table of medians and ratios, and the notes.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!("date:    {}\n", self.date));
        s.push_str(&format!("machine: {}\n", self.machine));
        s.push_str(&format!("command: {}\n", self.command));
        s.push_str(&format!(
            "rounds:  {} (medians; ustack and smoltcp alternate which goes first)\n\n",
            self.settings.rounds
        ));
        let mut head = vec!["figure", "unit"];
        head.extend([Column::Ustack.heading(), Column::Smoltcp.heading()]);
        head.extend(["ustack/smoltcp", PAIRED_HEADING]);
        head.extend([
            Column::KernelOffloadsOff.heading(),
            Column::KernelOffloadsOn.heading(),
            Column::UstackOffloadsOn.heading(),
            "offloads/smoltcp",
            "offloads/kernel veth on",
        ]);
        let mut rows: Vec<Vec<String>> = Vec::new();
        for f in Figure::ALL {
            let present = Column::ALL
                .iter()
                .any(|c| self.results.contains_key(&(f, *c)) || self.absent.contains_key(&(f, *c)));
            if !present {
                continue;
            }
            let c = |col| cell(self.results.get(&(f, col)), self.absent.get(&(f, col)));
            let r = ratio(
                self.median_of(f, Column::Ustack),
                self.median_of(f, Column::Smoltcp),
            )
            .map(|r| format!("{r:.2}"))
            .unwrap_or_else(|| "—".into());
            let unit = if f.higher_is_better() {
                f.unit().to_string()
            } else {
                format!("{} (less is better)", f.unit())
            };
            let r_of = |other| {
                ratio(
                    self.median_of(f, Column::UstackOffloadsOn),
                    self.median_of(f, other),
                )
                .map(|r| format!("{r:.2}"))
                .unwrap_or_else(|| "—".into())
            };
            let paired = self.paired(f).map_or_else(|| "—".into(), |p| p.cell());
            rows.push(vec![
                f.label(&self.settings),
                unit,
                c(Column::Ustack),
                c(Column::Smoltcp),
                r,
                paired,
                c(Column::KernelOffloadsOff),
                c(Column::KernelOffloadsOn),
                c(Column::UstackOffloadsOn),
                r_of(Column::Smoltcp),
                r_of(Column::KernelOffloadsOn),
            ]);
        }
        s.push_str(&markdown_table(&head, &rows));
        s.push('\n');
        s.push_str(&format!(
            "- {PAIRED_HEADING}: ustack/smoltcp within each round where both succeeded (both measured in that round), lowest (rounded down), median and highest (rounded up); a range that spans 1.00 means the rounds disagree on which stack is ahead; — with fewer than 2 pairs\n"
        ));
        for n in &self.notes {
            s.push_str(&format!("- {n}\n"));
        }
        let failures = self.failures();
        if !failures.is_empty() {
            s.push_str("\nfailed rounds:\n");
            for f in failures {
                s.push_str(&format!("- {f}\n"));
            }
        }
        s
    }
}

/// The heading of the paired-ratio column.
const PAIRED_HEADING: &str = "paired ratios min–median–max";

/// A Markdown table with columns padded to equal width (readable as plain text too).
pub fn markdown_table(head: &[&str], rows: &[Vec<String>]) -> String {
    let n = head.len();
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::from("|");
        for (i, c) in cells.iter().enumerate() {
            let pad = width[i] - c.chars().count();
            // Figures right-aligned, labels left-aligned.
            if i == 0 {
                l.push_str(&format!(" {c}{} |", " ".repeat(pad)));
            } else {
                l.push_str(&format!(" {}{c} |", " ".repeat(pad)));
            }
        }
        l.push('\n');
        l
    };
    let mut s = line(head.to_vec());
    let mut sep = String::from("|");
    for (i, w) in width.iter().enumerate() {
        if i == 0 {
            sep.push_str(&format!(":{}|", "-".repeat(w + 1)));
        } else {
            sep.push_str(&format!("{}:|", "-".repeat(w + 1)));
        }
    }
    s.push_str(&sep);
    s.push('\n');
    for r in rows {
        s.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    s
}

/// `YYYY-MM-DD HH:MM UTC` for seconds since the Unix epoch: the date and minutes of the
/// capture crate's RFC 3339 timestamp (one civil-calendar conversion in the workspace).
pub fn utc_date(epoch_secs: u64) -> String {
    let t = ustack_capture::dump::rfc3339(i128::from(epoch_secs) * 1_000_000_000);
    format!("{} {} UTC", &t[..10], &t[11..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            rounds: 3,
            size: 1_000_000_000,
            secs: 3.0,
            conns: 10_000,
            inmem_size: 100_000_000,
            inmem_conns: 20_000,
        }
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.5]), Some(7.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn ratio_needs_both_and_a_positive_divisor() {
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(Some(3.0), None), None);
        assert_eq!(ratio(None, Some(2.0)), None);
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
    }

    #[test]
    fn values_skip_failures() {
        let o = vec![
            Outcome::Value(1.0),
            Outcome::Failed("x".into()),
            Outcome::Value(3.0),
        ];
        assert_eq!(values(&o), vec![1.0, 3.0]);
        assert_eq!(median(&values(&o)), Some(2.0));
    }

    #[test]
    fn value_formatting_keeps_three_digits() {
        assert_eq!(fmt_value(4.3612), "4.36");
        assert_eq!(fmt_value(12.345), "12.3");
        assert_eq!(fmt_value(512.4), "512");
        assert_eq!(fmt_value(6_912.0), "6.91k");
        assert_eq!(fmt_value(58_123.0), "58.1k");
        assert_eq!(fmt_value(132_456.0), "132k");
        assert_eq!(fmt_value(2_500_000.0), "2.50M");
    }

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("1G"), Ok(1_000_000_000));
        assert_eq!(parse_size("50m"), Ok(50_000_000));
        assert_eq!(parse_size("65536"), Ok(65_536));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("G").is_err());
        assert_eq!(human_bytes(1_000_000_000), "1 GB");
        assert_eq!(human_bytes(50_000_000), "50 MB");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
        assert_eq!(human_bytes(100_000), "100 KB");
        assert_eq!(human_bytes(999), "999 B");
    }

    #[test]
    fn dates_are_utc_civil() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        // 2000-02-29 12:34:56 UTC, a leap day.
        assert_eq!(utc_date(951_827_696), "2000-02-29 12:34 UTC");
        assert_eq!(utc_date(1_796_530_000), "2026-12-06 04:06 UTC");
    }

    #[test]
    fn table_has_every_row_medians_ratios_and_failures() {
        let mut results = BTreeMap::new();
        results.insert(
            (Figure::BulkRx, Column::Ustack),
            vec![
                Outcome::Value(2.0),
                Outcome::Value(3.0),
                Outcome::Value(4.0),
            ],
        );
        results.insert(
            (Figure::BulkRx, Column::Smoltcp),
            vec![
                Outcome::Value(4.0),
                Outcome::Failed("short".into()),
                Outcome::Value(4.0),
            ],
        );
        results.insert(
            (Figure::BulkRx, Column::KernelOffloadsOff),
            vec![Outcome::Failed("timeout".into())],
        );
        let mut absent = BTreeMap::new();
        absent.insert(
            (Figure::ConcurrentMemory, Column::KernelOffloadsOn),
            Absent::NotApplicable,
        );
        let r = Report {
            date: "d".into(),
            machine: "m".into(),
            command: "ustack bench".into(),
            settings: settings(),
            notes: vec!["a note".into()],
            results,
            absent,
        };
        let t = r.to_text();
        let row = t
            .lines()
            .find(|l| l.contains("bulk, stack receiving 1 GB"))
            .expect("bulk row");
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[2], "Gbit/s");
        assert_eq!(cells[3], "3.00");
        assert_eq!(cells[4], "4.00 (1 of 3 failed)");
        assert_eq!(cells[5], "0.75");
        // Rounds 1 and 3 pair: 2/4 and 4/4.
        assert_eq!(cells[6], "0.50–0.75–1.00");
        assert_eq!(cells[7], "failed (1 of 1)");
        assert_eq!(cells[8], "—");
        let mem = t
            .lines()
            .find(|l| l.contains("memory per"))
            .expect("mem row");
        assert!(mem.contains("n/a"), "{mem}");
        assert!(t.contains("- a note"));
        assert!(t.contains("round 2: short"), "{t}");
        // Rows not measured at all are left out.
        assert!(!t.contains("pinned"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["results"][0]["median"], 3.0);
    }

    fn v(x: &[Option<f64>]) -> Vec<Outcome> {
        x.iter()
            .map(|o| match o {
                Some(v) => Outcome::Value(*v),
                None => Outcome::Failed("x".into()),
            })
            .collect()
    }

    fn report(results: BTreeMap<(Figure, Column), Vec<Outcome>>) -> Report {
        Report {
            date: "d".into(),
            machine: "m".into(),
            command: "ustack bench".into(),
            settings: settings(),
            notes: Vec::new(),
            results,
            absent: BTreeMap::new(),
        }
    }

    /// The paired-ratio cell of the row whose label contains `label`.
    fn paired_cell(t: &str, label: &str) -> String {
        let head: Vec<&str> = t
            .lines()
            .find(|l| l.starts_with("| figure"))
            .expect("heading")
            .split('|')
            .map(str::trim)
            .collect();
        let i = head
            .iter()
            .position(|h| *h == PAIRED_HEADING)
            .expect("column");
        assert_eq!(
            head[i - 1],
            "ustack/smoltcp",
            "right after the ratio column"
        );
        let row = t.lines().find(|l| l.contains(label)).expect("row");
        row.split('|').map(str::trim).nth(i).expect("cell").into()
    }

    #[test]
    fn pairs_by_round_index_skipping_a_failure_on_either_side() {
        let u = v(&[Some(2.0), None, Some(6.0), Some(4.0)]);
        let s = v(&[Some(4.0), Some(4.0), None, Some(4.0)]);
        assert_eq!(paired_ratios(&u, &s), vec![(0, 0.5), (3, 1.0)]);
        // Round 2's 6.0 has no partner and counts nowhere.
        let p = PairedRatios::new(Figure::BulkRx, &u, &s);
        assert_eq!((p.min, p.median, p.max), (Some(0.5), Some(0.75), Some(1.0)));
        assert_eq!(p.cell(), "0.50–0.75–1.00");
        // A zero divisor gives no ratio (as the ratio of medians).
        assert_eq!(
            paired_ratios(&v(&[Some(1.0), Some(2.0)]), &v(&[Some(0.0), Some(4.0)])),
            vec![(1, 0.5)]
        );
        // Rounds beyond the shorter column are not paired.
        assert_eq!(
            paired_ratios(&v(&[Some(1.0), Some(2.0)]), &v(&[Some(4.0)])),
            vec![(0, 0.25)]
        );
    }

    #[test]
    fn paired_odd_and_even_counts() {
        // Ratios by round: 1.25, 0.75, 1.00; median 1.00; pairs stay in round order.
        let u = v(&[Some(5.0), Some(3.0), Some(4.0)]);
        let s = v(&[Some(4.0), Some(4.0), Some(4.0)]);
        let p = PairedRatios::new(Figure::RrPinned, &u, &s);
        assert_eq!(p.pairs, vec![(0, 1.25), (1, 0.75), (2, 1.0)]);
        assert_eq!(p.cell(), "0.75–1.00–1.25");
        // Even count: the mean of the two middle ratios (0.5, 1.0 | 1.5, 2.0 -> 1.25).
        let u = v(&[Some(8.0), Some(2.0), Some(6.0), Some(4.0)]);
        let p = PairedRatios::new(Figure::RrPinned, &u, &v(&[Some(4.0); 4]));
        assert_eq!((p.min, p.median, p.max), (Some(0.5), Some(1.25), Some(2.0)));
        assert_eq!(p.cell(), "0.50–1.25–2.00");
    }

    #[test]
    fn paired_cell_rounds_the_lowest_down_and_the_highest_up() {
        // Ratios 0.996, 1.0, 1.001: printed as 0.99 and 1.01, not 1.00 and 1.00.
        let u = v(&[Some(0.996), Some(1.0), Some(1.001)]);
        let p = PairedRatios::new(Figure::RrPinned, &u, &v(&[Some(1.0); 3]));
        assert_eq!(p.cell(), "0.99–1.00–1.01");
        // Exact two-decimal ratios print as they are.
        let u = v(&[Some(0.29), Some(0.5), Some(1.07)]);
        let p = PairedRatios::new(Figure::RrPinned, &u, &v(&[Some(1.0); 3]));
        assert_eq!(p.cell(), "0.29–0.50–1.07");
    }

    #[test]
    fn paired_cell_is_a_dash_below_two_pairs() {
        let mut results = BTreeMap::new();
        // One pair (round 2 failed for ustack).
        results.insert((Figure::BulkRx, Column::Ustack), v(&[Some(2.0), None]));
        results.insert(
            (Figure::BulkRx, Column::Smoltcp),
            v(&[Some(4.0), Some(4.0)]),
        );
        // No smoltcp column at all.
        results.insert((Figure::BulkTx, Column::Ustack), v(&[Some(2.0), Some(3.0)]));
        // Two pairs, memory: less is better, but the orientation stays ustack/smoltcp.
        results.insert(
            (Figure::ConcurrentMemory, Column::Ustack),
            v(&[Some(2.0), Some(4.0)]),
        );
        results.insert(
            (Figure::ConcurrentMemory, Column::Smoltcp),
            v(&[Some(4.0), Some(4.0)]),
        );
        let r = report(results);
        let t = r.to_text();
        assert_eq!(paired_cell(&t, "stack receiving"), "—");
        assert_eq!(paired_cell(&t, "stack sending"), "—");
        assert_eq!(paired_cell(&t, "memory per"), "0.50–0.75–1.00");
        assert!(t.contains(&format!(
            "- {PAIRED_HEADING}: ustack/smoltcp within each round"
        )));
        let one = r.paired(Figure::BulkRx).expect("both columns");
        assert_eq!(one.pairs, vec![(0, 0.5)]);
        assert_eq!(one.cell(), "—");
        assert_eq!(r.paired(Figure::BulkTx), None);
    }

    #[test]
    fn json_keeps_old_keys_and_carries_paired_ratios() {
        let mut results = BTreeMap::new();
        results.insert(
            (Figure::RrPinned, Column::Ustack),
            v(&[Some(3.0), None, Some(5.0)]),
        );
        results.insert(
            (Figure::RrPinned, Column::Smoltcp),
            v(&[Some(4.0), Some(4.0), Some(4.0)]),
        );
        results.insert((Figure::BulkRx, Column::Ustack), v(&[Some(1.0)]));
        let r = report(results);
        let json: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        for key in [
            "date", "machine", "command", "settings", "notes", "results", "absent",
        ] {
            assert!(json.get(key).is_some(), "{key} missing");
        }
        assert_eq!(json["results"][1]["figure"], "rr-pinned");
        assert_eq!(json["results"][1]["median"], 4.0);
        // Only the figure with both columns.
        let p = json["paired_ratios"].as_array().expect("array");
        assert_eq!(p.len(), 1);
        assert_eq!(
            p[0],
            serde_json::json!({
                "figure": "rr-pinned",
                "pairs": [{ "round": 0, "ratio": 0.75 }, { "round": 2, "ratio": 1.25 }],
                "min": 0.75, "median": 1.0, "max": 1.25,
            })
        );
    }

    #[test]
    fn connection_figures_have_labels_units_and_direction() {
        let s = settings();
        assert_eq!(
            Figure::InMemoryConns.label(&s),
            "in-memory connections (no device), per CPU second"
        );
        assert_eq!(Figure::InMemoryConns.unit(), "connections/s");
        assert!(Figure::InMemoryConns.higher_is_better());
        assert_eq!(
            Figure::InMemoryConnInstructions.label(&s),
            "in-memory: instructions per connection (callgrind)"
        );
        assert_eq!(Figure::InMemoryConnInstructions.unit(), "instr/connection");
        assert!(!Figure::InMemoryConnInstructions.higher_is_better());
        // Last in print order, after the bulk callgrind row.
        assert_eq!(
            Figure::ALL[Figure::ALL.len() - 2..],
            [Figure::InMemoryConns, Figure::InMemoryConnInstructions]
        );
        let json = serde_json::to_value(Figure::InMemoryConnInstructions).unwrap();
        assert_eq!(json, "in-memory-conn-instructions");
    }

    #[test]
    fn markdown_table_pads_columns() {
        let t = markdown_table(&["a", "bb"], &[vec!["long label".into(), "1".into()]]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "| a          | bb |");
        assert_eq!(lines[1], "|:-----------|---:|");
        assert_eq!(lines[2], "| long label |  1 |");
    }
}
