//! Options every subcommand understands (link, address, recording, tracing, faults).
//! Commands and the observer import this module; it imports no command, so the command
//! line (`crate::cli`, which lists the commands) is not part of a cycle.

use clap::Args;
use core::net::Ipv4Addr;
use std::path::PathBuf;
use ustack::wire::{EthernetAddress, Ipv4Cidr};

/// Options every subcommand understands.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Run the whole command inside the existing network namespace NAME
    /// (/run/netns/NAME, made by `ip netns add NAME`), as `ip netns exec NAME ustack ...`
    /// would: entered at startup, before any device is opened or thread started. Needs
    /// root (CAP_SYS_ADMIN). Example: `sudo ustack --netns lab --tap tap0 --ip
    /// 10.77.0.2/24 ping 10.77.0.1 -c 3`.
    #[arg(long, value_name = "NAME", global = true)]
    pub netns: Option<String>,
    /// Run on the TAP device NAME (created if it does not exist).
    #[arg(long, value_name = "NAME", global = true, conflicts_with = "raw")]
    pub tap: Option<String>,
    /// Run on the existing interface IFACE through an AF_PACKET socket. The kernel must
    /// not own the stack's address on it (e.g. a veth end without an address).
    #[arg(long, value_name = "IFACE", global = true)]
    pub raw: Option<String>,
    /// The stack's address and prefix, e.g. 10.77.0.2/24.
    #[arg(long, value_name = "ADDR/PREFIX", global = true)]
    pub ip: Option<Ipv4Cidr>,
    /// Default gateway for destinations outside the subnet.
    #[arg(long, value_name = "IP", global = true)]
    pub gateway: Option<Ipv4Addr>,
    /// The stack's MAC address [default: a locally administered address derived from --seed].
    #[arg(long, value_name = "MAC", global = true)]
    pub mac: Option<EthernetAddress>,
    /// IP MTU.
    #[arg(long, value_name = "N", global = true, default_value_t = 1500,
          value_parser = clap::value_parser!(u16).range(576..=9000))]
    pub mtu: u16,
    /// Record every frame in and out to FILE. FILE.pcapng records the stack's view with
    /// a comment on every frame the fault flags dropped, duplicated, corrupted, delayed
    /// or held back (dropped ones are still recorded) and on every frame the stack
    /// dropped, with the reason (Wireshark: frame.comment). Any other name writes
    /// classic pcap of what crossed the device, which cannot carry comments.
    #[arg(long, value_name = "FILE", global = true)]
    pub pcap: Option<PathBuf>,
    /// Seed for every random choice (MAC, ISNs, ports, IP ids, injected faults), so runs
    /// can be replayed.
    #[arg(long, value_name = "N", global = true, default_value_t = 1)]
    pub seed: u64,
    /// Print TCP events as they happen, one line each on stdout: seconds since start,
    /// local-remote, then the event (state change, retransmission, fast retransmit, RTO,
    /// cwnd/ssthresh change, window update, zero-window probe) and cwnd/ssthresh/srtt.
    /// Give it before the subcommand (`ustack --trace up`): `ustack plot --trace FILE`
    /// is the plot's own flag. The socket-API commands (http, nc, send, recv, ping,
    /// dns) print the lines on stderr, since their stdout may be data.
    #[arg(long)]
    pub trace: bool,
    /// Write the TCP events, plus cwnd/ssthresh/srtt samples while data flows, to FILE
    /// as JSON lines, the format `ustack plot --trace FILE -o cwnd.svg` draws.
    #[arg(long, value_name = "FILE", global = true)]
    pub trace_file: Option<PathBuf>,
    /// Sample each connection at most every MS milliseconds in --trace-file (0: events
    /// only).
    #[arg(long, value_name = "MS", global = true, default_value_t = 10)]
    pub trace_every: u64,
    /// When a stack exits, print every counter by layer and one `ss -ti`-like line per
    /// TCP socket (cwnd and ssthresh in bytes) on stdout (on stderr for the socket-API
    /// commands http, nc, send, recv, ping, dns);
    /// --stats=json prints one JSON object. `ustack stats` shows the same for a running
    /// process.
    #[arg(long, value_name = "FORMAT", global = true, num_args = 0..=1,
          require_equals = true, default_missing_value = "text", value_enum)]
    pub stats: Option<StatsFormat>,
    /// Checksum and TCP segmentation offloads on a TAP (`IFF_VNET_HDR`): the kernel and
    /// the stack exchange 64 KB TCP super-frames and leave checksums of frames that
    /// never cross a wire unfinished. `auto` (the default) turns them on where the kernel
    /// supports it and falls back to plain frames otherwise; `off` (or --no-offload)
    /// moves one wire frame per read/write. Fault flags imply `off`: faults are per
    /// wire frame. AF_PACKET (--raw) has no offloads.
    #[arg(long, value_name = "auto|off", global = true, default_value = "auto",
          value_parser = parse_offload)]
    pub offload: ustack_socket::link::Offload,
    /// Same as `--offload off`.
    #[arg(long, global = true)]
    pub no_offload: bool,
    /// Loss, duplication, reordering, corruption, delay and rate limits at the link.
    #[command(flatten)]
    pub faults: ustack_tools::faults::FaultArgs,
}

/// How `--stats` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatsFormat {
    /// Readable text.
    Text,
    /// One JSON object.
    Json,
}

impl GlobalArgs {
    /// Recording and fault injection from `--pcap`, the fault flags and `--seed`
    /// (composed by `ustack_socket::link::build_link`).
    pub fn link_options(&self) -> ustack_socket::link::LinkOptions {
        ustack_socket::link::LinkOptions {
            pcap: self.pcap.clone(),
            faults: self.faults.faults(),
            seed: self.seed,
            offload: if self.no_offload {
                ustack_socket::link::Offload::Off
            } else {
                self.offload
            },
        }
    }
}

/// `--offload` values: `auto`/`on` and `off`.
fn parse_offload(s: &str) -> Result<ustack_socket::link::Offload, String> {
    match s {
        "auto" | "on" => Ok(ustack_socket::link::Offload::Auto),
        "off" => Ok(ustack_socket::link::Offload::Off),
        _ => Err(format!("`{s}`: expected auto, on or off")),
    }
}
