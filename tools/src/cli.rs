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
        RUST_LOG=debug sudo ustack --pcap demo.pcap demo"
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
    /// Record every frame in and out to FILE (classic pcap, readable by tshark/tcpdump).
    #[arg(long, value_name = "FILE", global = true)]
    pub pcap: Option<PathBuf>,
    /// Seed for every random choice (MAC, ISNs, ports, IP ids, injected faults), so runs
    /// can be replayed.
    #[arg(long, value_name = "N", global = true, default_value_t = 1)]
    pub seed: u64,
    /// Loss, duplication, reordering, corruption, delay and rate limits at the link.
    #[command(flatten)]
    pub faults: ustack_tools::faults::FaultArgs,
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
        sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 --loss 0.1 --delay tx:20:5 --seed 7 up")]
    Up,
    /// Show the stack working against the Linux kernel: creates a private network
    /// namespace with a TAP, runs HTTP and TCP/UDP echo on the stack, pings it from the
    /// kernel side (small and fragmented), fetches a page with curl and talks to echo
    /// with socat, writes a pcap, prints what crossed the wire, and removes everything.
    #[command(after_help = "Examples:\n  \
        sudo ustack demo\n  \
        sudo ustack --pcap /tmp/demo.pcap --seed 7 demo\n  \
        RUST_LOG=ustack=debug sudo ustack demo\n\n\
        Only --pcap, --mtu, --mac and --seed apply; the demo picks its own TAP and addresses\n\
        (kernel 10.77.0.1/24, stack 10.77.0.2/24) inside its own namespace.")]
    Demo,
    /// Decode a pcap/pcapng capture layer by layer (tcpdump-style lines, a -v tree,
    /// JSON, or per-connection summaries). Pure file processing.
    #[command(after_help = crate::cmd::dump::AFTER_HELP)]
    Dump(crate::cmd::dump::DumpArgs),
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
        sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 --pcap echo.pcap echo --port 7007")]
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
}
