//! `ustack dump FILE`: decode a pcap/pcapng capture layer by layer.

use super::CmdResult;
use clap::Args;
use core::net::IpAddr;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::PathBuf;
use ustack_capture::analysis::SeqMode;
use ustack_capture::dump::{self, DumpOptions, Filter, Output, Proto};
use ustack_capture::dump_fmt::TimeStyle;

/// Flags of `ustack dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Capture to read: classic pcap (µs or ns) or pcapng, e.g. from tcpdump, tshark or
    /// `ustack --pcap`; `-` reads standard input.
    pub file: PathBuf,
    /// One block per layer with every field (IPv6 extension headers and NDP options
    /// included), checksums verified, IPv4 fragments reassembled.
    #[arg(short, long, conflicts_with_all = ["json", "summary"])]
    pub verbose: bool,
    /// Absolute TCP sequence numbers (default: relative to each side's ISN).
    #[arg(short = 'S', long = "absolute")]
    pub absolute: bool,
    /// Number TCP sequences exactly like tcpdump (absolute on the SYN and the first
    /// ACK, relative after), so the output diffs clean against `tcpdump -nn -r FILE`.
    #[arg(long, conflicts_with = "absolute")]
    pub tcpdump: bool,
    /// Only frames from or to this IPv4 or IPv6 address (ARP sender or target too).
    #[arg(long, value_name = "IP")]
    pub host: Option<IpAddr>,
    /// Only TCP/UDP frames from or to this port.
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// Only this protocol.
    #[arg(long, value_enum, value_name = "PROTO")]
    pub proto: Option<ProtoArg>,
    /// Per-connection summaries instead of frames: TCP 4-tuples with packets and bytes
    /// each way, duration, SYN/FIN/RST, retransmissions and handshake options; UDP flows.
    #[arg(long)]
    pub summary: bool,
    /// JSON lines: one object per frame (or per conversation with --summary).
    #[arg(long)]
    pub json: bool,
    /// Show times of day in UTC instead of local time.
    #[arg(long)]
    pub utc: bool,
    /// Stop after N frames shown.
    #[arg(short = 'c', long, value_name = "N")]
    pub count: Option<usize>,
}

/// `--proto` values (the capture library's [`Proto`], kept free of clap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtoArg {
    /// TCP segments.
    Tcp,
    /// UDP datagrams.
    Udp,
    /// ICMP messages.
    Icmp,
    /// ICMPv6 messages (NDP and MLD included).
    Icmp6,
    /// ARP packets.
    Arp,
}

impl From<ProtoArg> for Proto {
    fn from(p: ProtoArg) -> Proto {
        match p {
            ProtoArg::Tcp => Proto::Tcp,
            ProtoArg::Udp => Proto::Udp,
            ProtoArg::Icmp => Proto::Icmp,
            ProtoArg::Icmp6 => Proto::Icmp6,
            ProtoArg::Arp => Proto::Arp,
        }
    }
}

/// Help epilogue with examples.
pub const AFTER_HELP: &str = "Examples:\n  \
    ustack dump testdata/kernel_veth_ping_udp_tcp.pcap\n  \
    ustack dump -v --proto icmp capture.pcapng\n  \
    ustack dump -v --proto icmp6 --host 2001:db8:77::2 testdata/kernel_ipv6_two_namespaces.pcap\n  \
    ustack dump --host 10.0.0.2 --port 5001 -S capture.pcap\n  \
    ustack dump --summary capture.pcap\n  \
    ustack dump --json capture.pcap | jq .tcp\n  \
    diff <(ustack dump --tcpdump FILE) <(tcpdump -nn -r FILE 2>/dev/null)\n  \
    tcpdump -i eth0 -w - | ustack dump -\n\n\
pcapng comments are printed under their frame (`    # text`). A damaged record ends\n\
the dump with a note; a malformed layer is shown as [malformed LAYER: reason].";

/// Runs the dump; exit code 0, or 2 when the file was damaged part-way.
pub fn run(args: &DumpArgs) -> CmdResult {
    let input: Box<dyn io::Read> = if args.file.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?)
    };
    let output = match (args.verbose, args.summary, args.json) {
        (true, _, _) => Output::Tree,
        (_, true, true) => Output::SummaryJson,
        (_, true, false) => Output::Summary,
        (_, false, true) => Output::Json,
        _ => Output::Lines,
    };
    let opts = DumpOptions {
        output,
        seq: if args.absolute {
            SeqMode::Absolute
        } else if args.tcpdump {
            SeqMode::Tcpdump
        } else {
            SeqMode::Relative
        },
        time: if args.utc {
            TimeStyle::Utc
        } else {
            TimeStyle::Local
        },
        filter: Filter {
            host: args.host,
            port: args.port,
            proto: args.proto.map(Proto::from),
        },
        count: args.count,
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let totals = match dump::run(BufReader::new(input), &opts, &mut out) {
        Ok(t) => t,
        // A closed pipe (`| head`) is a normal way to stop reading.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(0),
        Err(e) => return Err(format!("{}: {e}", args.file.display()).into()),
    };
    match out.flush() {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(0),
        r => r?,
    }
    if let Some(e) = totals.read_error {
        eprintln!("ustack dump: {}: damaged capture: {e}", args.file.display());
        return Ok(2);
    }
    Ok(0)
}
