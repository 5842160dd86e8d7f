//! `ustack plot`: a time-sequence graph of one TCP connection from a capture, or
//! cwnd/ssthresh/srtt from a TCP event log.

use super::CmdResult;
use clap::Args;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use ustack_capture::analysis::SeqMode;
use ustack_capture::timeseq::{self, ConnSelect};
use ustack_capture::{dump, plot, trace};

/// Flags of `ustack plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Capture to read (pcap or pcapng).
    #[arg(required_unless_present = "trace", conflicts_with = "trace")]
    pub file: Option<PathBuf>,
    /// Output image: .svg, or .png.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Connection number, as `ustack dump --summary` lists them [default: the one with
    /// the most payload].
    #[arg(long, value_name = "N", conflicts_with = "port")]
    pub conn: Option<usize>,
    /// The first connection with this port at either end.
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// Plot cwnd, ssthresh and srtt from a TCP event log (JSON lines:
    /// {"t_us":..,"conn":"a:p-b:q","cwnd":..,"ssthresh":..,"srtt_us":..,"event":".."}).
    #[arg(long, value_name = "EVENTS.jsonl")]
    pub trace: Option<PathBuf>,
    /// With --trace: the connection to draw ("a:p-b:q") [default: the first in the log].
    #[arg(long, value_name = "CONN", requires = "trace")]
    pub trace_conn: Option<String>,
}

/// Help epilogue with examples.
pub const AFTER_HELP: &str = "Examples:\n  \
    ustack plot testdata/kernel_veth_ping_udp_tcp.pcap -o tseq.svg\n  \
    ustack plot capture.pcapng --port 5001 -o tseq.png\n  \
    ustack plot capture.pcap --conn 2 -o conn2.svg\n  \
    ustack plot --trace events.jsonl -o cwnd.svg\n\n\
Time-sequence graph (tcptrace/Stevens style) of the direction that carried more data:\n\
x = time since the connection's first packet, y = sequence number relative to the ISN.\n\
Blue bars: segments (seq..seq+len); red bars with a cross: retransmissions; green:\n\
ACK; orange: receive window (ack + scaled window); purple: SACK blocks.";

/// Draws the plot.
pub fn run(args: &PlotArgs) -> CmdResult {
    if let Some(trace) = &args.trace {
        let text =
            std::fs::read_to_string(trace).map_err(|e| format!("{}: {e}", trace.display()))?;
        let events = trace::parse_trace(&text).map_err(|e| format!("{}: {e}", trace.display()))?;
        let conn = plot::draw_trace(&events, args.trace_conn.as_deref(), &args.output)?;
        println!(
            "{}: cwnd/ssthresh/srtt of {} ({} events)",
            args.output.display(),
            if conn.is_empty() { "the log" } else { &conn },
            events.len()
        );
        return Ok(0);
    }
    let path = args
        .file
        .as_ref()
        .ok_or("a capture file or --trace is needed")?;
    // Check the extension before reading a large capture.
    plot::Format::from_path(&args.output)?;
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cap = dump::load(BufReader::new(file), SeqMode::Relative)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(e) = &cap.read_error {
        eprintln!(
            "ustack plot: {}: damaged capture: {e}; plotting what came before",
            path.display()
        );
    }
    let sel = match (args.conn, args.port) {
        (Some(n), _) => ConnSelect::Number(n),
        (_, Some(p)) => ConnSelect::Port(p),
        _ => ConnSelect::Busiest,
    };
    let conn = timeseq::select(&cap, sel)?;
    let ts = timeseq::time_sequence(&cap, conn);
    plot::draw_time_sequence(&ts, &args.output)?;
    println!(
        "{}: connection #{} {} > {}: {} segments, {} retransmissions, {} ACKs, {} SACK blocks",
        args.output.display(),
        conn.id,
        ts.from.map_or_else(String::new, |a| a.to_string()),
        ts.to.map_or_else(String::new, |a| a.to_string()),
        ts.segments.len(),
        ts.retransmissions(),
        ts.acks.len(),
        ts.sacks.len()
    );
    Ok(0)
}
