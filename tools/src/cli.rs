//! Command-line flags: global link/address options and the subcommands.

use clap::{Args, Parser, Subcommand};
use core::net::Ipv4Addr;
use std::path::PathBuf;
use ustack::wire::{EthernetAddress, Ipv4Cidr};

/// ustack: a userspace TCP/IP stack on a TAP device or a raw AF_PACKET socket.
#[derive(Debug, Parser)]
#[command(
    name = "ustack",
    version,
    after_help = "Examples:\n  \
        sudo ustack demo\n  \
        sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 up\n  \
        # the same, entering the namespace itself (no `ip netns exec`):\n  \
        sudo ustack --netns NS --tap tap0 --ip 10.77.0.2/24 ping 10.77.0.1 -c 3\n  \
        RUST_LOG=debug sudo ustack --pcap demo.pcap demo\n  \
        # annotated capture: what the injector and the stack did to each frame\n  \
        sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 --loss 0.1 --pcap up.pcapng up\n  \
        tshark -r up.pcapng -Y frame.comment -T fields -e frame.number -e frame.comment"
)]
pub struct Cli {
    /// Link, address and recording options.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

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

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring the stack up on a link and answer ARP and ping until Ctrl-C/SIGTERM;
    /// print counters at exit.
    #[command(after_help = "Examples:\n  \
        # inside a namespace you created, with the kernel side at 10.77.0.1/24 on tap0:\n  \
        sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 up\n  \
        # on a veth end without an address, recording a pcap:\n  \
        sudo ip netns exec NS ustack --raw veth1 --ip 10.77.1.2/24 --pcap up.pcap up\n  \
        # 10% loss both ways, 20 ms +/- 5 ms delay on what the stack sends, replayable:\n  \
        sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 --loss 0.1 --delay tx:20:5 --seed 7 up\n  \
        # annotated pcapng, TCP events on stdout and in a log for `ustack plot --trace`, stats at exit:\n  \
        sudo ip netns exec NS ustack --trace --tap tap0 --ip 10.77.0.2/24 --loss 0.05 \\\n      \
        --pcap up.pcapng --trace-file tcp.jsonl --stats up\n  \
        # from another terminal, while it runs:\n  \
        sudo ustack stats")]
    Up,
    /// Show the stack working against the Linux kernel: creates a private network
    /// namespace with a TAP, runs HTTP and TCP/UDP echo on the stack, pings it from the
    /// kernel side (small and fragmented), fetches a page with curl and talks to echo
    /// with socat, writes a pcap, prints what crossed the wire, and removes everything.
    #[command(after_help = "Examples:\n  \
        sudo ustack demo\n  \
        sudo ustack --pcap /tmp/demo.pcap --seed 7 demo\n  \
        RUST_LOG=ustack=debug sudo ustack demo\n\n\
        Only --pcap (.pcapng for an annotated capture), --mtu, --mac, --seed and the fault\n\
        flags apply; the demo picks its own TAP and addresses\n\
        (kernel 10.77.0.1/24, stack 10.77.0.2/24) inside its own namespace.")]
    Demo,
    /// Decode a pcap/pcapng capture layer by layer (tcpdump-style lines, a -v tree,
    /// JSON, or per-connection summaries). Pure file processing.
    #[command(after_help = crate::cmd::dump::AFTER_HELP)]
    Dump(crate::cmd::dump::DumpArgs),
    /// Print the counters and TCP sockets of a running ustack (`up`, `echo`, ...), asked
    /// through its control socket.
    #[command(after_help = crate::cmd::stats::AFTER_HELP)]
    Stats(crate::cmd::stats::StatsArgs),
    /// Draw a TCP time-sequence graph from a capture, or cwnd/ssthresh/srtt from a
    /// TCP event log, to SVG or PNG.
    #[command(after_help = crate::cmd::plot::AFTER_HELP)]
    Plot(crate::cmd::plot::PlotArgs),
    /// Serve TCP and UDP echo (RFC 862) until Ctrl-C/SIGTERM; print counters at exit.
    #[command(after_help = "Examples:\n  \
        # inside a namespace you created, with the kernel side at 10.77.0.1/24 on tap0:\n  \
        sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 echo\n  \
        sudo ip netns exec NS socat - TCP:10.77.0.2:7\n  \
        sudo ip netns exec NS socat - UDP:10.77.0.2:7\n  \
        # another port, recording a pcap:\n  \
        sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 --pcap echo.pcap echo --port 7007\n  \
        # 2% loss, TCP events as they happen, a cwnd log and an annotated pcapng:\n  \
        sudo ip netns exec NS ustack --trace --tap tap0 --ip 10.77.0.2/24 --loss 0.02 \\\n      \
        --trace-file tcp.jsonl --pcap echo.pcapng echo\n  \
        ustack plot --trace tcp.jsonl -o cwnd.svg")]
    Echo(crate::cmd::echo::EchoArgs),
    /// HTTP/1.1: serve a directory, or fetch a URL (throughput and SHA-256).
    #[command(after_help = crate::cmd::http::AFTER_HELP)]
    Http(crate::cmd::http::HttpArgs),
    /// netcat: stdin to a TCP/UDP socket, the socket to stdout; -l to listen.
    #[command(after_help = crate::cmd::nc::AFTER_HELP)]
    Nc(crate::cmd::nc::NcArgs),
    /// Send a file over one TCP connection; print throughput and SHA-256.
    Send(crate::cmd::xfer::SendArgs),
    /// Receive one TCP connection into a file; print throughput and SHA-256.
    Recv(crate::cmd::xfer::RecvArgs),
    /// ICMP echo from the stack, with ping's per-reply lines and statistics.
    Ping(crate::cmd::ping::PingArgs),
    /// One DNS query over the stack's UDP (two retries on timeout); prints the answer
    /// records (`NAME. TTL IN A a.b.c.d`, CNAME chains in order). Exit 1 on NXDOMAIN,
    /// SERVFAIL, no such record or no answer.
    #[command(after_help = crate::cmd::dns::AFTER_HELP)]
    Dns(crate::cmd::dns::DnsArgs),
}
