//! The command line: the top-level parser and the subcommand list. It imports every
//! command's flags; the commands import only [`crate::global`], never this module, so the
//! dependency runs one way (cli -> cmd -> global).

use crate::global::GlobalArgs;
use clap::{Parser, Subcommand};

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
    /// kernel side (small and fragmented), fetches a page and talks to echo from
    /// threads inside the namespace on kernel sockets (no ping, curl or socat needed),
    /// writes a pcap, prints what crossed the wire, and removes everything.
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
    /// A seeded lossy wire: forward every Ethernet frame between two devices (TAP or
    /// AF_PACKET, optionally each in its own namespace) through the fault injector, per
    /// direction, so two TCP stacks can be compared under the same faults; counters at
    /// exit.
    #[command(after_help = crate::cmd::wire::AFTER_HELP)]
    Wire(crate::cmd::wire::WireArgs),
    /// Run an unmodified, dynamically linked program with its AF_INET/AF_INET6 sockets
    /// on ustack (LD_PRELOAD); its exit status is ours.
    #[command(after_help = crate::cmd::run::AFTER_HELP)]
    Run(crate::cmd::run::RunArgs),
    /// Benchmark ustack against smoltcp 0.14 on the same TAP and the same kernel-side
    /// client, with Linux over veth (offloads off and on) for reference: bulk each way,
    /// request/response, connection rate, 10,000 concurrent connections, in-memory
    /// Gbit/s and instructions per byte. Creates and removes its own namespaces.
    Bench(crate::cmd::bench::BenchArgs),
    /// One server of `ustack bench`, in a child process (internal).
    #[command(hide = true)]
    BenchServe(crate::cmd::bench::serve::ServeArgs),
    /// One in-memory transfer of `ustack bench`, for callgrind (internal).
    #[command(hide = true)]
    BenchInmem(crate::cmd::bench::inmem::InmemArgs),
}
