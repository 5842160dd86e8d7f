//! `ustack bench loss`: the same bulk transfer kernel→kernel, kernel→ustack and
//! ustack→kernel through `ustack wire`, over the same seeds, at several loss rates;
//! per cell the median time and the sender's retransmissions and RTOs.
//!
//! Layout: the lab of [`ustack_tools::wirelab`] (namespaces A, W, B). The sender is
//! always on side A, the receiver on side B; a kernel endpoint is a thread inside the
//! side's namespace on kernel sockets, a ustack endpoint a `NetStack` in this process
//! on an AF_PACKET socket on the same veth end. Each run starts its own wire (a child
//! `ustack wire` with the run's seed and loss, both directions) and its own stacks, so
//! the n-th frame of each direction meets the same fate for every pair of stacks.
//! Runs are interleaved (seed by seed, the pair order rotating), so the machine's load
//! spreads over all cells alike. After each transfer the run's wire and ustack stacks
//! stay up until its kernel sockets can no longer send ([`settle_kernel_sockets`]), so
//! no frame of one run crosses the next run's wire.
//!
//! Figures: time from the sender's `connect` to the receiver's read of the last byte
//! (every endpoint is a thread of this process, so one monotonic clock serves both);
//! the closes still have to complete before the run's deadline, but a lost FIN at the
//! end (whose retransmission waits for a 200 ms timer, whatever the stacks) is not
//! timed. Echo: from the client's `connect` to its read of the last echoed byte. Then
//! the sender's retransmitted segments
//! and bytes and its RTO count: the kernel's from its namespace's `/proc/net/snmp`
//! `RetransSegs` and `/proc/net/netstat` `TCPTimeouts` (deltas over the run; the
//! namespace holds nothing else) and `TCP_INFO` `tcpi_bytes_retrans`; ustack's from
//! `TcpInfo` (`total_retrans`, `bytes_retrans`) and the `RtoFired` events.

use super::report::{self, human_bytes, markdown_table, median};
use super::CmdResult;
use clap::Args;
use serde::Serialize;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use ustack::socket::tcp::{CongestionAlgorithm, TcpEvent};
use ustack_socket::echo::EchoServer;
use ustack_socket::link::OsLink;
use ustack_socket::netns;
use ustack_socket::{NetStack, SockOpt, SockOptName};
use ustack_tools::wirelab::{self, KernelTcpCounters, Side, WireLab};

/// The loss models of the table: label, flag, value (both directions).
const MODELS: [(&str, &str, &str); 5] = [
    ("1%", "--loss", "0.01"),
    ("3%", "--loss", "0.03"),
    ("5%", "--loss", "0.05"),
    ("10%", "--loss", "0.1"),
    ("gilbert:0.01:0.3", "--loss-model", "gilbert:0.01:0.3"),
];

/// The receiver's port for the first run; each run uses the next one.
const PORT: u16 = 20_000;
/// Read/write chunk of every endpoint.
const CHUNK: usize = 64 * 1024;
/// Per-call socket timeout: how often a blocked endpoint looks at the run's deadline,
/// so an endpoint stops at most this long after it (it also looks before every call).
const TICK: Duration = Duration::from_millis(200);

/// Options of `ustack bench loss`.
#[derive(Debug, Args)]
#[command(
    after_help = "What it runs, inside three network namespaces it creates and deletes\n\
    (A and B for the endpoints, W for `ustack wire` between two veth pairs): one bulk\n\
    transfer from side A to side B per (loss model, seed, pair of stacks), with\n\
    kernel -> kernel, kernel -> ustack and ustack -> kernel, each through a fresh wire\n\
    with that seed and loss in both directions. Loss models: 1%, 3%, 5%, 10% random\n\
    and gilbert:0.01:0.3 (Gilbert-Elliott bursts, about 3.2% of frames in bursts of\n\
    about 3). Every transfer checks its byte count and pattern; a failed or timed-out\n\
    run is listed, not counted. --pair picks pairs (kernel-to-ustack-no-dsack and\n\
    kernel-to-ustack-no-compress: ustack's receiver with D-SACK or SACK compression\n\
    off; kernel-to-ustack-batch-compress: its compressed SACKs per batch of frames,\n\
    not on a timer; for an A/B in one run). --echo runs the echo test instead: a\n\
    kernel client on side A writes 1 MB (at 10% loss) or 10 MB (at 3%) and reads\n\
    it back through a kernel echo server and through ustack's echo server (the code\n\
    of `ustack echo`) on side B; retransmissions count both ends, and --kernel-cc is\n\
    set per socket (TCP_CONGESTION on the echo client and server).\n\n\
    Per cell: runs that succeeded, median time (min-max; from the sender's connect\n\
    to the receiver's read of the last byte, with --echo to the client's read of the\n\
    last echoed byte: the closes must still complete within --timeout but are not\n\
    timed), time / kernel->kernel's median for the same loss, and the sender's\n\
    median retransmitted segments, bytes and RTOs (kernel: /proc/net/snmp\n\
    RetransSegs, /proc/net/netstat TCPTimeouts and TCP_INFO bytes_retrans in the\n\
    sender's namespace; ustack: TcpInfo and its RTO events). Figures depend on the\n\
    machine's load; compare ratios from one run.\n\
    The kernels run their default congestion control unless --kernel-cc NAME sets\n\
    it on every kernel socket (TCP_CONGESTION; the table then adds a kernel -> kernel\n\
    row on the host's default, \"host cc\", except with --echo). ustack's sockets\n\
    run --ustack-cc NAME (reno, cubic or bbr), by default what the kernel sockets\n\
    read back (bbr on a host defaulting to BBR, cubic under --kernel-cc cubic; cubic\n\
    for an algorithm ustack lacks), so both sides run like for like; the notes say\n\
    what each side ran. --model keeps only some loss models; --pcap-dir DIR records\n\
    each run's wire (`ustack wire --pcap`) in DIR/MODEL-PAIR-seedN.pcapng, e.g.\n\
    10pct-kernel-to-ustack-seed3.pcapng. The global link flags (--tap, --raw, --ip,\n\
    --pcap, the fault flags) do not apply: it picks its own devices, addresses and\n\
    faults.\n\n\
    Examples:\n  \
    sudo ustack bench loss --quick             # 2 seeds of 500 KB, a minute or two\n  \
    sudo ustack bench loss                     # 15 seeds of 10 MB\n  \
    sudo ustack bench loss --seeds 20 --size 1M --json > loss.json\n  \
    sudo ustack bench loss --kernel-cc cubic   # kernels and ustack on CUBIC\n  \
    sudo ustack bench loss --ustack-cc cubic   # ustack on CUBIC, kernels on the host's\n  \
    sudo ustack bench loss --pair kernel-to-kernel,kernel-to-ustack,kernel-to-ustack-no-dsack\n  \
    sudo ustack bench loss --echo              # the echo rows: kernel vs ustack echo server\n  \
    sudo ustack bench loss --model 10% --pcap-dir caps   # 10% only, one pcapng per run"
)]
pub struct LossArgs {
    /// Two seeds of 500 KB transfers. Explicit flags still win.
    #[arg(long)]
    pub quick: bool,
    /// Seeds per cell (the same seeds for every pair) [default: 15; --quick: 2].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub seeds: Option<u64>,
    /// The first seed; the run uses FIRST..FIRST+N.
    #[arg(long, value_name = "SEED", default_value_t = 1)]
    pub first_seed: u64,
    /// Bytes per transfer, e.g. 10M, 500K [default: 10M; --quick: 500K].
    #[arg(long, value_name = "BYTES", value_parser = report::parse_size)]
    pub size: Option<u64>,
    /// Seconds a transfer may take before it counts as failed.
    #[arg(long, value_name = "SECS", default_value_t = 180)]
    pub timeout: u64,
    /// Congestion control of the kernel endpoints' sockets (TCP_CONGESTION, e.g.
    /// cubic); without --echo, adds a kernel -> kernel row on the host's default
    /// [default: the host's].
    #[arg(long, value_name = "NAME")]
    pub kernel_cc: Option<String>,
    /// Congestion control of ustack's sockets: reno, cubic or bbr [default: what the
    /// kernel sockets read back, cubic if ustack lacks it].
    #[arg(long, value_name = "NAME", value_parser = parse_ustack_cc)]
    pub ustack_cc: Option<CongestionAlgorithm>,
    /// Only these pairs of stacks, comma-separated, in this order [default:
    /// kernel-to-kernel,kernel-to-ustack,ustack-to-kernel]. Without kernel-to-kernel
    /// the "vs kernel" column stays empty.
    #[arg(long = "pair", value_enum, value_delimiter = ',', value_name = "PAIR")]
    pub pairs: Vec<Pair>,
    /// Echo instead of one-way transfers: a kernel client on side A writes the bytes
    /// and reads them back through a kernel echo server and through ustack's echo
    /// server (`ustack echo`) on side B, 1 MB at 10 % and 10 MB at 3 % loss each way
    /// (--size sets both sizes).
    #[arg(long, conflicts_with = "pairs")]
    pub echo: bool,
    /// Only these loss models, comma-separated: 1%, 3%, 5%, 10%, gilbert:0.01:0.3
    /// (with --echo: 10%, 3%) [default: all].
    #[arg(long = "model", value_delimiter = ',', value_name = "MODEL", value_parser = parse_model)]
    pub models: Vec<&'static str>,
    /// Record each run's wire in DIR/MODEL-PAIR-seedN.pcapng (the wire's `--pcap`:
    /// side A's view, both directions, the frames the seed dropped commented).
    #[arg(long, value_name = "DIR")]
    pub pcap_dir: Option<PathBuf>,
    /// Print every run and the cells as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Sets (with `Some`) a kernel TCP socket's congestion control with
/// `setsockopt(IPPROTO_TCP, TCP_CONGESTION)` and reads it back. Per socket, because a
/// namespace's `net.ipv4.tcp_congestion_control` may not be writable from inside it.
fn kernel_cc(fd: i32, want: Option<&str>) -> io::Result<String> {
    if let Some(w) = want {
        // SAFETY: setsockopt(2) on a socket we own, with a buffer of the given length.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_CONGESTION,
                w.as_ptr().cast(),
                w.len() as libc::socklen_t,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("TCP_CONGESTION {w}: {e}")));
        }
    }
    let mut buf = [0u8; 16]; // TCP_CA_NAME_MAX
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: getsockopt(2) into a buffer of `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let got = &buf[..(len as usize).min(buf.len())];
    let got = got.split(|&b| b == 0).next().unwrap_or_default();
    let got = String::from_utf8_lossy(got).into_owned();
    match want {
        Some(w) if w != got => Err(io::Error::other(format!(
            "TCP_CONGESTION reads back {got}, not {w}"
        ))),
        _ => Ok(got),
    }
}

/// The congestion control of every ustack socket of this process's runs, chosen once
/// by [`run`] before the first run ([`choose_ustack_cc`]) and applied by
/// [`LabStack::start_with`]; a process-wide setting, so the run plumbing needs no new
/// parameter.
static USTACK_CC: OnceLock<CongestionAlgorithm> = OnceLock::new();

/// `--model`'s parser: one of [`MODELS`]' labels.
fn parse_model(name: &str) -> Result<&'static str, String> {
    MODELS
        .iter()
        .map(|m| m.0)
        .find(|&m| m == name)
        .ok_or_else(|| {
            let names: Vec<&str> = MODELS.iter().map(|m| m.0).collect();
            format!("no loss model {name:?}; there are {}", names.join(", "))
        })
}

/// `--ustack-cc`'s parser.
fn parse_ustack_cc(name: &str) -> Result<CongestionAlgorithm, String> {
    CongestionAlgorithm::from_name(name).ok_or_else(|| {
        let names: Vec<String> = CongestionAlgorithm::ALL
            .iter()
            .map(|a| a.to_string())
            .collect();
        format!("ustack has no {name:?}; it has {}", names.join(", "))
    })
}

/// What the kernel's TCP sockets in `ns` run unless told otherwise: TCP_CONGESTION
/// read back from a fresh socket there (a new namespace inherits the host's default).
fn namespace_default_cc(ns: &netns::Netns) -> Result<String, String> {
    ns.run_in(|| -> io::Result<String> {
        // SAFETY: socket(2); the descriptor is owned (and closed) by `fd` at once.
        let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor we just opened and nothing else owns.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        kernel_cc(fd.as_raw_fd(), None)
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("TCP_CONGESTION of a new socket: {e}"))
}

/// ustack's algorithm for the run and how it was chosen: `--ustack-cc`, else the one
/// the kernel sockets run (`--kernel-cc`, else the namespace's default), else CUBIC
/// when ustack has no such algorithm.
fn choose_ustack_cc(
    args: &LossArgs,
    ns: &netns::Netns,
) -> Result<(CongestionAlgorithm, String), String> {
    if let Some(a) = args.ustack_cc {
        return Ok((a, "--ustack-cc".into()));
    }
    let (kernel, whence) = match &args.kernel_cc {
        Some(k) => (k.clone(), "--kernel-cc"),
        None => (namespace_default_cc(ns)?, "the kernels' default"),
    };
    Ok(match CongestionAlgorithm::from_name(&kernel) {
        Some(a) => (a, format!("as {whence}, {kernel}")),
        None => (
            CongestionAlgorithm::Cubic,
            format!("{whence} is {kernel}, which ustack lacks"),
        ),
    })
}

/// Which stacks move the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Pair {
    /// Kernel sender, kernel receiver.
    KernelToKernel,
    /// Kernel sender, ustack receiver.
    KernelToUstack,
    /// ustack sender, kernel receiver.
    UstackToKernel,
    /// Kernel sender, ustack receiver with D-SACK generation off (`TcpConfig::dsack`),
    /// for an A/B against `kernel-to-ustack` in one interleaved run.
    KernelToUstackNoDsack,
    /// Kernel sender, ustack receiver with SACK compression off
    /// (`TcpConfig::sack_compression`): one ACK per out-of-order segment.
    KernelToUstackNoCompress,
    /// Kernel sender, ustack receiver with SACK compression per batch of arriving
    /// frames instead of on a timer (`TcpConfig::sack_compression_delay` zero).
    KernelToUstackBatchCompress,
    /// `--echo`: a kernel client through a kernel echo server.
    #[value(skip)]
    EchoKernel,
    /// `--echo`: a kernel client through ustack's echo server (`ustack echo`'s code).
    #[value(skip)]
    EchoUstack,
    /// Kernel to kernel on the host's default congestion control, beside the
    /// `--kernel-cc` pairs (only with `--kernel-cc`).
    KernelToKernelHostCc,
}

impl Pair {
    const ALL: [Pair; 3] = [
        Pair::KernelToKernel,
        Pair::KernelToUstack,
        Pair::UstackToKernel,
    ];

    /// The pairs of `--echo`.
    const ECHO: [Pair; 2] = [Pair::EchoKernel, Pair::EchoUstack];

    fn label(self) -> &'static str {
        match self {
            Pair::KernelToKernel => "kernel → kernel",
            Pair::KernelToUstack => "kernel → ustack",
            Pair::UstackToKernel => "ustack → kernel",
            Pair::KernelToUstackNoDsack => "kernel → ustack, no D-SACK",
            Pair::KernelToUstackNoCompress => "kernel → ustack, no SACK compression",
            Pair::KernelToUstackBatchCompress => "kernel → ustack, SACK compression per batch",
            Pair::EchoKernel => "kernel ⇄ kernel echo server",
            Pair::EchoUstack => "kernel ⇄ ustack echo",
            Pair::KernelToKernelHostCc => "kernel → kernel, host cc",
        }
    }

    /// The pair's name in capture file names: `--pair`'s name, `echo-kernel` or
    /// `echo-ustack`.
    fn file_name(self) -> &'static str {
        match self {
            Pair::KernelToKernel => "kernel-to-kernel",
            Pair::KernelToUstack => "kernel-to-ustack",
            Pair::UstackToKernel => "ustack-to-kernel",
            Pair::KernelToUstackNoDsack => "kernel-to-ustack-no-dsack",
            Pair::KernelToUstackNoCompress => "kernel-to-ustack-no-compress",
            Pair::KernelToUstackBatchCompress => "kernel-to-ustack-batch-compress",
            Pair::EchoKernel => "echo-kernel",
            Pair::EchoUstack => "echo-ustack",
            Pair::KernelToKernelHostCc => "kernel-to-kernel-host-cc",
        }
    }

    /// The pairs of a run: with `--kernel-cc`, also kernel → kernel on the host's
    /// default congestion control.
    fn list(kernel_cc: bool) -> Vec<Pair> {
        let mut v = Pair::ALL.to_vec();
        if kernel_cc {
            v.push(Pair::KernelToKernelHostCc);
        }
        v
    }

    /// The congestion control this pair's kernel sockets are set to (`None`: the
    /// host's default).
    fn cc(self, kernel_cc: Option<&str>) -> Option<&str> {
        if self == Pair::KernelToKernelHostCc {
            None
        } else {
            kernel_cc
        }
    }

    /// The pair whose median the "vs kernel" column divides by.
    fn baseline(self) -> Pair {
        match self {
            Pair::EchoKernel | Pair::EchoUstack => Pair::EchoKernel,
            _ => Pair::KernelToKernel,
        }
    }

    /// Whether the receiver (side B) is a ustack.
    fn ustack_receiver(self) -> bool {
        matches!(
            self,
            Pair::KernelToUstack
                | Pair::KernelToUstackNoDsack
                | Pair::KernelToUstackNoCompress
                | Pair::KernelToUstackBatchCompress
                | Pair::EchoUstack
        )
    }
}

/// The echo tests of issue 13: loss label, flag, value (both directions) and the bytes
/// the client writes (and reads back).
const ECHO_CASES: [(&str, &str, &str, u64); 2] = [
    ("10%", "--loss", "0.1", 1_000_000),
    ("3%", "--loss", "0.03", 10_000_000),
];

/// One group of rows: a loss model and the bytes each of its runs moves.
#[derive(Clone, Copy, Debug)]
struct Case {
    /// The model's name for `--model` (`10%`, `gilbert:0.01:0.3`).
    loss: &'static str,
    label: &'static str,
    flag: &'static str,
    value: &'static str,
    size: u64,
}

/// What one successful run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Figures {
    /// Seconds from connect to the receiver's read of the last byte (echo: the
    /// client's read of the last echoed byte): the table's time.
    pub secs: f64,
    /// Seconds from connect to the sender's (echo: the client's) EOF, i.e. until the
    /// closes were through; listed per run, not in the table.
    pub close_secs: f64,
    /// Segments the sender retransmitted.
    pub retrans_segs: u64,
    /// Payload bytes the sender retransmitted.
    pub retrans_bytes: u64,
    /// Retransmission timeouts at the sender.
    pub rtos: u64,
    /// Frames the wire dropped A→B / B→A.
    pub wire_dropped: [u64; 2],
    /// Frames the kernel dropped at AF_PACKET sockets (wire and ustack ends), which no
    /// seed decided.
    pub socket_drops: u64,
    /// A kernel sender's congestion control, read back with `TCP_CONGESTION`.
    pub kernel_cc: Option<String>,
}

/// One run.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    /// Loss model label.
    pub model: &'static str,
    /// The stacks.
    pub pair: Pair,
    /// The wire's seed.
    pub seed: u64,
    /// Figures, or why the run failed.
    pub result: Result<Figures, String>,
}

/// One cell of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    /// Loss model label.
    pub model: &'static str,
    /// The stacks.
    pub pair: Pair,
    /// Runs tried.
    pub runs: usize,
    /// Runs that succeeded.
    pub ok: usize,
    /// Median, min and max seconds.
    pub secs: Option<[f64; 3]>,
    /// Median time / kernel→kernel's median time for the same model.
    pub vs_kernel: Option<f64>,
    /// Median retransmitted segments.
    pub retrans_segs: Option<f64>,
    /// Median retransmitted bytes.
    pub retrans_bytes: Option<f64>,
    /// Median RTO count.
    pub rtos: Option<f64>,
}

/// The whole report (`--json`).
#[derive(Debug, Serialize)]
pub struct LossReport {
    /// When it ran.
    pub date: String,
    /// CPUs, kernel, load.
    pub machine: String,
    /// The command line.
    pub command: String,
    /// Bytes per transfer.
    pub size: u64,
    /// Seeds used.
    pub seeds: Vec<u64>,
    /// Remarks.
    pub notes: Vec<String>,
    /// The table.
    pub cells: Vec<Cell>,
    /// Every run.
    pub runs: Vec<Run>,
}

/// The wire of one run, as a child process; its stderr goes to a file.
struct WireProc {
    child: Option<Child>,
    log: PathBuf,
}

impl WireProc {
    /// Starts the wire with `seed` and `model` (flag, value), recording to `pcap`.
    fn start(
        lab: &WireLab,
        exe: &Path,
        seed: u64,
        model: (&str, &str),
        pcap: Option<&Path>,
    ) -> Result<WireProc, String> {
        let log =
            std::env::temp_dir().join(format!("ustack-bench-loss-{}-wire.log", std::process::id()));
        let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = lab.wire_command(exe);
        if let Some(p) = pcap {
            cmd.arg("--pcap").arg(p);
        }
        let child = cmd
            .args(["--seed", &seed.to_string(), model.0, model.1])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .map_err(|e| format!("cannot start the wire: {e}"))?;
        let mut w = WireProc {
            child: Some(child),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if w.output().contains("forwarding") {
                return Ok(w);
            }
            if let Some(c) = w.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    return Err(format!("the wire exited ({st}): {}", w.output().trim()));
                }
            }
            if Instant::now() > deadline {
                return Err("the wire did not start within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM; returns (dropped a2b, dropped b2a, socket drops) from its exit counters.
    fn stop(mut self) -> Result<([u64; 2], u64), String> {
        let Some(mut child) = self.child.take() else {
            return Err("no wire".into());
        };
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let status = child.wait().map_err(|e| e.to_string())?;
        let out = self.output();
        if !status.success() {
            return Err(format!("the wire exited with {status}: {}", out.trim()));
        }
        parse_wire_counters(&out)
            .ok_or_else(|| format!("no counters from the wire: {}", out.trim()))
    }
}

impl Drop for WireProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Drops per direction and AF_PACKET socket drops from `ustack wire`'s exit lines.
fn parse_wire_counters(out: &str) -> Option<([u64; 2], u64)> {
    let dropped = |dir: &str| -> Option<u64> {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("{dir}: ")) && l.contains("frames in"))?;
        let after = line.split("dropped ").nth(1)?;
        // "R random / B burst / Q queue-full"
        let nums: Vec<u64> = after
            .split('/')
            .take(3)
            .filter_map(|p| p.split_whitespace().next()?.parse().ok())
            .collect();
        (nums.len() == 3).then(|| nums.iter().sum())
    };
    let sock = out.lines().find(|l| l.contains("socket drops"))?;
    let socket: u64 = sock
        .split("): ")
        .nth(1)?
        .split(',')
        .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
        .sum();
    Some(([dropped("a2b")?, dropped("b2a")?], socket))
}

/// Fills `buf` with the bench pattern from stream offset `off`.
fn fill(buf: &mut [u8], off: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = super::pattern::byte_at(off + i as u64);
    }
}

/// Whether an I/O error is a per-call timeout (`SO_RCVTIMEO`/`SO_SNDTIMEO`), after
/// which the caller checks the run's deadline and tries again.
fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// What an endpoint's error says when the run's deadline stopped it.
const DEADLINE_PASSED: &str = "the run's deadline passed";

/// A `TimedOut` error once `deadline` has passed.
fn past(deadline: Instant, what: &str) -> io::Result<()> {
    if Instant::now() >= deadline {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what}: {DEADLINE_PASSED}"),
        ))
    } else {
        Ok(())
    }
}

/// Takes one connection before `deadline` from a non-blocking listener.
fn accept_until<S>(accept: impl Fn() -> io::Result<S>, deadline: Instant) -> io::Result<S> {
    loop {
        match accept() {
            Ok(s) => return Ok(s),
            Err(e) if timed_out(&e) => {
                past(deadline, "accept")?;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
    }
}

/// What [`drain`] read: the byte count, and when the read that returned the last
/// byte did (`None` if there was no byte).
#[derive(Clone, Copy, Debug)]
struct Drained {
    bytes: u64,
    last_byte_at: Option<Instant>,
}

/// Reads `r` to EOF, checking the pattern. The socket has a short read timeout
/// ([`TICK`]), so the run's deadline is checked while it waits.
fn drain(mut r: impl Read, deadline: Instant) -> io::Result<Drained> {
    let mut buf = vec![0u8; CHUNK];
    let mut off = 0u64;
    let mut last_byte_at = None;
    loop {
        // Checked on every call, not only after a timed-out one: a transfer that
        // keeps trickling would otherwise run past the deadline.
        past(deadline, "receiving")?;
        let n = match r.read(&mut buf) {
            Ok(0) => {
                return Ok(Drained {
                    bytes: off,
                    last_byte_at,
                })
            }
            Ok(n) => {
                last_byte_at = Some(Instant::now());
                n
            }
            Err(e) if timed_out(&e) => continue,
            Err(e) => return Err(e),
        };
        for (i, &b) in buf[..n].iter().enumerate() {
            if b != super::pattern::byte_at(off + i as u64) {
                return Err(io::Error::other(format!(
                    "byte {} is {b}, not the pattern's",
                    off + i as u64
                )));
            }
        }
        off += n as u64;
    }
}

/// The table's time of a run: seconds from `t0` (before the `connect`) to the read
/// that returned the last of `size` bytes, which `got` must hold. The FIN exchange
/// after it is not timed: a lost FIN waits for a retransmission timer (200 ms or
/// more) in every stack, so timing up to the close adds that to any pair alike.
fn transfer_secs(t0: Instant, got: &Drained, size: u64, what: &str) -> Result<f64, String> {
    if got.bytes != size {
        return Err(format!("{} bytes {what} of {size}", got.bytes));
    }
    let at = got
        .last_byte_at
        .ok_or_else(|| format!("no byte {what} of {size}"))?;
    Ok(at.saturating_duration_since(t0).as_secs_f64())
}

/// Writes `size` pattern bytes, half-closes, and waits for the peer's close, giving up
/// at `deadline` (the socket has short timeouts, [`TICK`]). Partial writes are
/// tracked, so a timed-out call loses nothing.
fn send_all(
    mut w: impl Read + Write,
    size: u64,
    deadline: Instant,
    shutdown: impl FnOnce() -> io::Result<()>,
) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut off = 0u64;
    while off < size {
        let n = (size - off).min(CHUNK as u64) as usize;
        fill(&mut buf[..n], off);
        let mut done = 0;
        while done < n {
            past(deadline, "sending")?;
            match w.write(&buf[done..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => done += k,
                Err(e) if timed_out(&e) => {}
                Err(e) => return Err(e),
            }
        }
        off += n as u64;
    }
    shutdown()?;
    let mut sink = [0u8; 512];
    loop {
        past(deadline, "waiting for the receiver's close")?;
        match w.read(&mut sink) {
            Ok(0) => return Ok(()),
            Ok(_) => return Err(io::Error::other("the receiver sent data")),
            Err(e) if timed_out(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

/// A ustack on one side of the lab, with its RTO count and its socket's fd.
struct LabStack {
    stack: NetStack,
    rtos: Arc<AtomicU64>,
    /// Segments and payload bytes retransmitted, from its `Retransmit` events.
    retrans: Arc<[AtomicU64; 2]>,
    fd: i32,
}

impl LabStack {
    fn start(lab: &WireLab, side: Side, seed: u64) -> Result<LabStack, String> {
        Self::start_with(lab, side, seed, |_| {})
    }

    /// `start`, with `tune` applied to the stack's configuration last.
    fn start_with(
        lab: &WireLab,
        side: Side,
        seed: u64,
        tune: impl FnOnce(&mut ustack::iface::Config) + Send + 'static,
    ) -> Result<LabStack, String> {
        let link = lab
            .open_stack_link(side)
            .map_err(|e| format!("AF_PACKET on {}: {e}", side.dev()))?;
        let fd = link.as_raw_fd();
        let neighbors = lab.static_neighbors(side);
        let stack = NetStack::builder()
            .os_link(OsLink::Raw(link))
            .ip(side.stack_cidr())
            .mac(side.stack_mac())
            .config(move |c| {
                c.seed = seed;
                c.static_neighbors = neighbors;
                if let Some(&cc) = USTACK_CC.get() {
                    c.tcp.congestion = cc;
                }
                // No frame of its own before the connection's first, so its frames
                // line up by index with a kernel endpoint's under the same seed.
                c.arp.gratuitous_at_start = false;
            })
            .config(tune)
            // No IPv6: its start-up frames (DAD, MLD reports) would cross the wire
            // ahead of the connection's and shift its frame indices.
            .ipv6(false)
            .build()
            .map_err(|e| format!("cannot start ustack on {}: {e}", side.dev()))?;
        let rtos = Arc::new(AtomicU64::new(0));
        let retrans = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let (count, rx) = (rtos.clone(), retrans.clone());
        stack.add_hook(move |_, _| {
            Box::new(move |round| {
                while let Some(ev) = round.iface.tcp().poll_event() {
                    match ev {
                        TcpEvent::RtoFired { .. } => {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        TcpEvent::Retransmit { len, .. } => {
                            rx[0].fetch_add(1, Ordering::Relaxed);
                            rx[1].fetch_add(len as u64, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
            })
        });
        Ok(LabStack {
            stack,
            rtos,
            retrans,
            fd,
        })
    }

    fn socket_drops(&self) -> u64 {
        u64::from(ustack::link::sys::packet_drops(self.fd).unwrap_or(0))
    }
}

/// The receiver of one run, started before the sender.
enum Receiver {
    Kernel(netns::NsThread<io::Result<Drained>>),
    Ustack(std::thread::JoinHandle<io::Result<Drained>>, LabStack),
}

fn start_receiver(
    lab: &WireLab,
    pair: Pair,
    seed: u64,
    port: u16,
    deadline: Instant,
    cc: Option<String>,
) -> Result<Receiver, String> {
    if pair.ustack_receiver() {
        let dsack = pair != Pair::KernelToUstackNoDsack;
        let compress = pair != Pair::KernelToUstackNoCompress;
        let per_batch = pair == Pair::KernelToUstackBatchCompress;
        let st = LabStack::start_with(lab, Side::B, seed, move |c| {
            c.tcp.dsack = dsack;
            c.tcp.sack_compression = compress;
            if per_batch {
                c.tcp.sack_compression_delay = ustack::time::Duration::ZERO;
            }
        })?;
        let listener = ustack_socket::TcpListener::bind(&st.stack, (Ipv4Addr::UNSPECIFIED, port))
            .map_err(|e| format!("ustack listen: {e}"))?;
        let h = std::thread::spawn(move || -> io::Result<Drained> {
            listener.set_nonblocking(true)?;
            let (s, _) = accept_until(|| listener.accept(), deadline)?;
            drop(listener);
            s.set_nonblocking(false)?;
            s.set_read_timeout(Some(TICK))?;
            drain(&s, deadline)
        });
        return Ok(Receiver::Ustack(h, st));
    }
    let addr = SocketAddr::from((Side::B.kernel_ip(), port));
    let listener = lab
        .b
        .run_in(move || std::net::TcpListener::bind(addr))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("kernel listen: {e}"))?;
    let t = lab
        .b
        .spawn_in("loss receiver", move || -> io::Result<Drained> {
            listener.set_nonblocking(true)?;
            kernel_cc(listener.as_raw_fd(), cc.as_deref())?;
            let (s, _) = accept_until(|| listener.accept(), deadline)?;
            drop(listener);
            // Inherited from the listener; set again so a mismatch fails the run.
            kernel_cc(s.as_raw_fd(), cc.as_deref())?;
            s.set_nonblocking(false)?;
            s.set_read_timeout(Some(TICK))?;
            drain(&s, deadline)
        })
        .map_err(|e| e.to_string())?;
    Ok(Receiver::Kernel(t))
}

/// Writes all of `buf` before `deadline`; partial writes are tracked across the
/// socket's short per-call timeouts ([`TICK`]).
fn write_until(mut w: impl Write, buf: &[u8], deadline: Instant) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        past(deadline, "sending")?;
        match w.write(&buf[done..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(k) => done += k,
            Err(e) if timed_out(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The kernel echo server of one `--echo` run, inside namespace B: echoes one
/// connection to EOF, half-closes, then waits for `client_done` to read its
/// retransmissions (the namespace's counter deltas and `TCP_INFO`), so they cover the
/// same span as the client's.
fn kernel_echo_server(
    listener: std::net::TcpListener,
    deadline: Instant,
    client_done: std::sync::mpsc::Receiver<()>,
) -> io::Result<Figures> {
    let before = KernelTcpCounters::read()?;
    listener.set_nonblocking(true)?;
    let (s, _) = accept_until(|| listener.accept(), deadline)?;
    drop(listener);
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(TICK))?;
    s.set_write_timeout(Some(TICK))?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        past(deadline, "echoing")?;
        let n = match (&s).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if timed_out(&e) => continue,
            Err(e) => return Err(e),
        };
        write_until(&s, &buf[..n], deadline)?;
    }
    s.shutdown(Shutdown::Write)?;
    let _ = client_done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    kernel_sender_figures(&s, &before)
}

/// A kernel sender's retransmissions and RTOs since `before` (its namespace's
/// counters, so read from a thread inside it) and its socket's retransmitted bytes.
fn kernel_sender_figures(
    s: &std::net::TcpStream,
    before: &KernelTcpCounters,
) -> io::Result<Figures> {
    let info = wirelab::kernel_tcp_info(s.as_raw_fd())?;
    let delta = KernelTcpCounters::read()?.since(before);
    Ok(Figures {
        retrans_segs: delta.retrans_segs,
        retrans_bytes: info.bytes_retrans,
        rtos: delta.timeouts,
        ..Figures::default()
    })
}

/// The kernel client of one `--echo` run, inside namespace A: a writer thread sends
/// `size` pattern bytes and half-closes while this thread reads the echo to EOF,
/// checking the pattern. Time: connect to the read of the last echoed byte (and to
/// EOF, `close_secs`); retransmissions: the client's own.
fn kernel_echo_client(
    to: SocketAddr,
    cc: Option<String>,
    size: u64,
    deadline: Instant,
    timeout: Duration,
) -> io::Result<Figures> {
    let before = KernelTcpCounters::read()?;
    let t0 = Instant::now();
    let s = std::net::TcpStream::connect_timeout(&to, timeout)?;
    if let Some(cc) = cc {
        // Before any data: the kernel switches an established socket's algorithm.
        kernel_cc(s.as_raw_fd(), Some(&cc))?;
    }
    s.set_read_timeout(Some(TICK))?;
    s.set_write_timeout(Some(TICK))?;
    let w = s.try_clone()?;
    // A new thread starts in its creator's network namespace (A), as the rules want of
    // every thread that sends.
    let writer = std::thread::spawn(move || -> io::Result<()> {
        let mut buf = vec![0u8; CHUNK];
        let mut off = 0u64;
        while off < size {
            let n = (size - off).min(CHUNK as u64) as usize;
            fill(&mut buf[..n], off);
            write_until(&w, &buf[..n], deadline)?;
            off += n as u64;
        }
        w.shutdown(Shutdown::Write)
    });
    let got = drain(&s, deadline);
    let close_secs = t0.elapsed().as_secs_f64();
    writer
        .join()
        .map_err(|_| io::Error::other("the echo writer panicked"))??;
    let secs = transfer_secs(t0, &got?, size, "echoed").map_err(io::Error::other)?;
    Ok(Figures {
        secs,
        close_secs,
        ..kernel_sender_figures(&s, &before)?
    })
}

/// One `--echo` run (the wire is already running): the kernel client on side A through
/// the kernel echo server or ustack's echo server on side B. Retransmissions and RTOs
/// are the client's plus the server's: both ends send the same bytes.
fn echo_transfer(
    lab: &WireLab,
    cc: Option<&str>,
    pair: Pair,
    seed: u64,
    size: u64,
    port: u16,
    timeout: Duration,
) -> Result<Figures, String> {
    let deadline = Instant::now() + timeout;
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    enum Server {
        Kernel(netns::NsThread<io::Result<Figures>>),
        Ustack(LabStack, Arc<std::sync::Mutex<EchoServer>>),
    }
    let (server, dst) = if pair == Pair::EchoUstack {
        let st = LabStack::start(lab, Side::B, seed)?;
        // The server `ustack echo` runs: EchoServer as a hook of the host loop.
        let echo = st
            .stack
            .with_interface(|iface, _| EchoServer::new(iface, port, 16))
            .map_err(|e| format!("ustack echo: {e}"))?;
        let echo = Arc::new(std::sync::Mutex::new(echo));
        let hook = echo.clone();
        st.stack.add_hook(move |_, _| {
            Box::new(move |round| {
                hook.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .poll(round)
            })
        });
        drop(done_rx);
        (Server::Ustack(st, echo), Side::B.stack_ip())
    } else {
        let addr = SocketAddr::from((Side::B.kernel_ip(), port));
        let listener = lab
            .b
            .run_in(move || std::net::TcpListener::bind(addr))
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("kernel listen: {e}"))?;
        if let Some(cc) = cc {
            kernel_cc(listener.as_raw_fd(), Some(cc)).map_err(|e| e.to_string())?;
        }
        let t = lab
            .b
            .spawn_in("echo server", move || {
                kernel_echo_server(listener, deadline, done_rx)
            })
            .map_err(|e| e.to_string())?;
        (Server::Kernel(t), Side::B.kernel_ip())
    };
    let to = SocketAddr::from((dst, port));
    let cc = cc.map(str::to_owned);
    let client = lab
        .a
        .spawn_in("echo client", move || {
            kernel_echo_client(to, cc, size, deadline, timeout)
        })
        .map_err(|e| e.to_string())?
        .join_timeout(timeout + Duration::from_secs(15))
        .map_err(|_| "the echo client overstayed".to_owned())
        .and_then(|r| r.map_err(|e| format!("kernel echo client: {e}")));
    let _ = done_tx.send(());
    settle_kernel_sockets(lab, port);
    let (server, socket_drops) = match server {
        Server::Kernel(t) => (
            t.join_timeout(timeout + Duration::from_secs(15))
                .map_err(|_| "the kernel echo server did not finish".to_owned())
                .and_then(|r| r.map_err(|e| format!("kernel echo server: {e}"))),
            0,
        ),
        Server::Ustack(st, echo) => {
            let stats = echo
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .stats();
            let r = if stats.failed > 0 {
                Err(format!("ustack echo: {} connections failed", stats.failed))
            } else {
                Ok(Figures {
                    retrans_segs: st.retrans[0].load(Ordering::Relaxed),
                    retrans_bytes: st.retrans[1].load(Ordering::Relaxed),
                    rtos: st.rtos.load(Ordering::Relaxed),
                    ..Figures::default()
                })
            };
            (r, st.socket_drops())
        }
    };
    let (c, s) = outcome(client, server)?;
    within(c.close_secs, timeout)?;
    Ok(Figures {
        secs: c.secs,
        close_secs: c.close_secs,
        retrans_segs: c.retrans_segs + s.retrans_segs,
        retrans_bytes: c.retrans_bytes + s.retrans_bytes,
        rtos: c.rtos + s.rtos,
        socket_drops,
        ..Figures::default()
    })
}

/// Runs one transfer; the wire is already running.
fn transfer(
    lab: &WireLab,
    pair: Pair,
    seed: u64,
    size: u64,
    port: u16,
    timeout: Duration,
    cc: Option<&str>,
) -> Result<Figures, String> {
    // Every endpoint gives up at this instant, so no thread or connection outlives its
    // run (a leftover would hold the port or send into the next run's wire).
    let deadline = Instant::now() + timeout;
    let cc = cc.map(str::to_owned);
    let receiver = start_receiver(lab, pair, seed, port, deadline, cc.clone())?;
    let dst = if pair.ustack_receiver() {
        Side::B.stack_ip()
    } else {
        Side::B.kernel_ip()
    };
    let to = SocketAddr::from((dst, port));
    let mut socket_drops = 0;
    // ustack endpoints stay up until the kernel sockets settled (`settle_kernel_sockets`).
    let mut stacks = Vec::new();
    // The sender's figures and its `t0`, the instant before its connect.
    let sent: Result<(Figures, Instant), String> = if pair == Pair::UstackToKernel {
        let st = LabStack::start(lab, Side::A, seed)?;
        let h = {
            let stack = st.stack.clone();
            std::thread::spawn(move || -> io::Result<(Figures, Instant)> {
                let t0 = Instant::now();
                let s = ustack_socket::TcpStream::connect(&stack, to)?;
                s.set_read_timeout(Some(TICK))?;
                s.set_write_timeout(Some(TICK))?;
                send_all(&s, size, deadline, || s.shutdown(Shutdown::Write))?;
                let close_secs = t0.elapsed().as_secs_f64();
                let info = match stack.getsockopt(s.fd(), SockOptName::TcpInfo) {
                    Ok(SockOpt::TcpInfo(i)) => i,
                    _ => return Err(io::Error::other("no TcpInfo")),
                };
                let f = Figures {
                    close_secs,
                    retrans_segs: info.total_retrans,
                    retrans_bytes: info.bytes_retrans,
                    ..Figures::default()
                };
                Ok((f, t0))
            })
        };
        let r = h
            .join()
            .map_err(|_| "the ustack sender panicked".to_owned())
            .and_then(|r| r.map_err(|e| format!("ustack sender: {e}")));
        socket_drops += st.socket_drops();
        let rtos = st.rtos.load(Ordering::Relaxed);
        stacks.push(st);
        r.map(|(f, t0)| (Figures { rtos, ..f }, t0))
    } else {
        lab.a
            .spawn_in("loss sender", move || -> io::Result<(Figures, Instant)> {
                let before = KernelTcpCounters::read()?;
                let t0 = Instant::now();
                let s = std::net::TcpStream::connect_timeout(&to, timeout)?;
                // Before any data: the handshake does not involve congestion control.
                let kernel_cc = Some(kernel_cc(s.as_raw_fd(), cc.as_deref())?);
                s.set_read_timeout(Some(TICK))?;
                s.set_write_timeout(Some(TICK))?;
                send_all(&s, size, deadline, || s.shutdown(Shutdown::Write))?;
                let close_secs = t0.elapsed().as_secs_f64();
                let f = Figures {
                    close_secs,
                    kernel_cc,
                    ..kernel_sender_figures(&s, &before)?
                };
                Ok((f, t0))
            })
            .map_err(|e| e.to_string())?
            .join_timeout(timeout + Duration::from_secs(15))
            .map_err(|_| "the kernel sender overstayed".to_owned())
            .and_then(|r| r.map_err(|e| format!("kernel sender: {e}")))
    };
    let got = match receiver {
        Receiver::Kernel(t) => t
            .join_timeout(timeout + Duration::from_secs(15))
            .map_err(|_| "the kernel receiver did not finish".to_owned())
            .and_then(|r| r.map_err(|e| format!("kernel receiver: {e}"))),
        Receiver::Ustack(h, st) => {
            // Bounded by the run's deadline, like every endpoint.
            let r = h
                .join()
                .map_err(|_| "the ustack receiver panicked".to_owned())
                .and_then(|r| r.map_err(|e| format!("ustack receiver: {e}")));
            socket_drops += st.socket_drops();
            stacks.push(st);
            r
        }
    };
    settle_kernel_sockets(lab, port);
    drop(stacks);
    let ((mut f, t0), got) = outcome(sent, got)?;
    f.secs = transfer_secs(t0, &got, size, "received")?;
    within(f.close_secs, timeout)?;
    f.socket_drops = socket_drops;
    Ok(f)
}

/// Both endpoints' results, or the error that explains the run. When the receiver
/// stops at the deadline its kernel answers the sender's next segments with a reset, so
/// a sender's "Connection reset by peer" then is the deadline's doing: that error wins.
fn outcome<S, R>(sent: Result<S, String>, got: Result<R, String>) -> Result<(S, R), String> {
    match (sent, got) {
        (Ok(s), Ok(r)) => Ok((s, r)),
        (Err(s), Err(r)) if r.contains(DEADLINE_PASSED) && !s.contains(DEADLINE_PASSED) => {
            Err(format!("{r} (then {s})"))
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// A transfer that ended after `timeout` failed, even if its last bytes got through
/// (an endpoint may notice the deadline up to one [`TICK`] late).
fn within(secs: f64, timeout: Duration) -> Result<(), String> {
    if secs > timeout.as_secs_f64() {
        return Err(format!(
            "finished after {secs:.3} s, {DEADLINE_PASSED} ({} s)",
            timeout.as_secs()
        ));
    }
    Ok(())
}

/// Longest a run waits, after its transfer, for its kernel sockets to stop sending.
const SETTLE: Duration = Duration::from_secs(2);

/// Kernel TCP states (`include/net/tcp_states.h`) in which a socket may still send a
/// segment of its own: ESTABLISHED, SYN-SENT, SYN-RECV, FIN-WAIT-1, CLOSE-WAIT,
/// LAST-ACK, CLOSING. (TIME-WAIT and FIN-WAIT-2 only answer.)
const SENDING_STATES: [u8; 7] = [0x01, 0x02, 0x03, 0x04, 0x08, 0x09, 0x0b];

/// How many sockets of a `/proc/net/tcp` listing have `port` at either end and a
/// state in which they may still send.
fn sending_sockets(proc_net_tcp: &str, port: u16) -> usize {
    let port_of = |addr: &str| {
        addr.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    proc_net_tcp
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (Some(local), Some(remote), Some(st)) = (f.get(1), f.get(2), f.get(3)) else {
                return false;
            };
            let st = u8::from_str_radix(st, 16).unwrap_or(0);
            SENDING_STATES.contains(&st)
                && (port_of(local) == Some(port) || port_of(remote) == Some(port))
        })
        .count()
}

/// After a run: waits (at most [`SETTLE`]) until no kernel socket of the run (its
/// `port`) in namespace A or B may still send, while the run's wire and ustack stacks
/// are still up. A kernel receiver whose last ACK was lost resends its FIN from
/// LAST-ACK; once the run's ustack peer was gone nobody answered it, and the FIN
/// crossed the next runs' wires, taking their frame indices (seen in --pcap-dir
/// captures). Returns whether they settled.
fn settle_kernel_sockets(lab: &WireLab, port: u16) -> bool {
    let give_up = Instant::now() + SETTLE;
    let busy = |ns: &netns::Netns| {
        ns.run_in(move || {
            std::fs::read_to_string("/proc/thread-self/net/tcp")
                .map(|t| sending_sockets(&t, port))
                .unwrap_or(0)
        })
        .unwrap_or(0)
    };
    loop {
        if busy(&lab.a) + busy(&lab.b) == 0 {
            return true;
        }
        if Instant::now() >= give_up {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The loss cases and pairs of stacks a run covers: the table's models at `size`
/// with `--pair`'s pairs (default the three of the table), or with `--echo` the echo
/// cases (each at its own size unless --size or --quick set one) and the two echo
/// servers; `--model` keeps only the cases of the models it names.
fn plan(args: &LossArgs, size: u64) -> Result<(Vec<Case>, Vec<Pair>), String> {
    let wanted = |loss: &str| args.models.is_empty() || args.models.contains(&loss);
    if args.echo {
        let cases: Vec<Case> = ECHO_CASES
            .iter()
            .filter(|c| wanted(c.0))
            .map(|&(loss, flag, value, default)| {
                let size = if args.size.is_some() || args.quick {
                    size
                } else {
                    default
                };
                // Row labels live as long as the command.
                let label: &'static str =
                    Box::leak(format!("{} echo at {loss}", human_bytes(size)).into_boxed_str());
                Case {
                    loss,
                    label,
                    flag,
                    value,
                    size,
                }
            })
            .collect();
        if cases.is_empty() {
            let have: Vec<&str> = ECHO_CASES.iter().map(|c| c.0).collect();
            return Err(format!("--echo runs at {} loss only", have.join(" and ")));
        }
        return Ok((cases, Pair::ECHO.to_vec()));
    }
    let cases = MODELS
        .iter()
        .filter(|m| wanted(m.0))
        .map(|&(label, flag, value)| Case {
            loss: label,
            label,
            flag,
            value,
            size,
        })
        .collect();
    let mut pairs: Vec<Pair> = Vec::new();
    for &p in &args.pairs {
        if !pairs.contains(&p) {
            pairs.push(p);
        }
    }
    if pairs.is_empty() {
        pairs = Pair::list(args.kernel_cc.is_some());
    }
    Ok((cases, pairs))
}

/// Where `--pcap-dir` records a run's wire: `DIR/MODEL-PAIR-seedN.pcapng`, the model
/// with `%` spelt `pct` and `:` as `-` (`10pct-kernel-to-ustack-seed3.pcapng`).
fn pcap_path(dir: &Path, loss: &str, pair: Pair, seed: u64) -> PathBuf {
    let model = loss.replace('%', "pct").replace(':', "-");
    dir.join(format!("{model}-{}-seed{seed}.pcapng", pair.file_name()))
}

/// Runs `ustack bench loss`.
pub fn run(args: &LossArgs) -> CmdResult {
    ustack_tools::signals::handle_with(|sig| {
        netns::cleanup_all();
        std::process::exit(128 + sig);
    })?;
    if !netns::have_privileges() {
        return Err("ustack bench loss needs root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN) and iproute2: it creates its own namespaces and veth pairs".into());
    }
    let n_seeds = args.seeds.unwrap_or(if args.quick { 2 } else { 15 });
    let size = args
        .size
        .unwrap_or(if args.quick { 500_000 } else { 10_000_000 });
    let timeout = Duration::from_secs(args.timeout.max(1));
    let seeds: Vec<u64> = (args.first_seed..args.first_seed.saturating_add(n_seeds)).collect();
    let exe = std::env::current_exe()?;
    let machine = super::machine();
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (cases, pairs) = plan(args, size)?;
    if let Some(dir) = &args.pcap_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("--pcap-dir {}: {e}", dir.display()))?;
    }
    let lab = WireLab::new("uloss")?;
    lab.pin_neighbors()?;
    let (ustack_cc, ustack_cc_how) = choose_ustack_cc(args, &lab.a)?;
    // The first choice of the process stands (a process runs one bench).
    let ustack_cc = *USTACK_CC.get_or_init(|| ustack_cc);
    let offloads = lab.offloads;
    let t_start = Instant::now();
    let mut runs = Vec::new();
    let total = seeds.len() * cases.len() * pairs.len();
    for (si, &seed) in seeds.iter().enumerate() {
        for &Case {
            loss,
            label,
            flag,
            value,
            size,
        } in &cases
        {
            for k in 0..pairs.len() {
                let pair = pairs[(k + si) % pairs.len()];
                let pcap = args
                    .pcap_dir
                    .as_deref()
                    .map(|d| pcap_path(d, loss, pair, seed));
                let wire = WireProc::start(&lab, &exe, seed, (flag, value), pcap.as_deref());
                let result = wire.and_then(|wire| {
                    // A port per run: a connection of an earlier run can never be
                    // mistaken for this one's.
                    let port = PORT + (runs.len() % 10_000) as u16;
                    let r = if args.echo {
                        echo_transfer(
                            &lab,
                            args.kernel_cc.as_deref(),
                            pair,
                            seed,
                            size,
                            port,
                            timeout,
                        )
                    } else {
                        let cc = pair.cc(args.kernel_cc.as_deref());
                        transfer(&lab, pair, seed, size, port, timeout, cc)
                    };
                    let counters = wire.stop();
                    let mut f = r?;
                    let (dropped, socket) = counters?;
                    f.wire_dropped = dropped;
                    f.socket_drops += socket;
                    Ok(f)
                });
                let what = match &result {
                    Ok(f) => format!(
                        "{:.3} s (closed at {:.3} s), {} segments / {} retransmitted, {} RTOs",
                        f.secs,
                        f.close_secs,
                        f.retrans_segs,
                        human_bytes(f.retrans_bytes),
                        f.rtos
                    ),
                    Err(e) => format!("FAILED: {e}"),
                };
                eprintln!(
                    "ustack bench loss: {}/{total}: {label} seed {seed} {}: {what}",
                    runs.len() + 1,
                    pair.label()
                );
                runs.push(Run {
                    model: label,
                    pair,
                    seed,
                    result,
                });
            }
        }
    }
    drop(lab);

    let mut cells = Vec::new();
    for &Case { label, .. } in &cases {
        // The baseline's median first, whichever order --pair gave.
        let median_of = |pair: Pair| {
            let secs: Vec<f64> = runs
                .iter()
                .filter(|r| r.model == label && r.pair == pair)
                .filter_map(|r| r.result.as_ref().ok())
                .map(|f| f.secs)
                .collect();
            median(&secs)
        };
        for &pair in &pairs {
            let of: Vec<&Figures> = runs
                .iter()
                .filter(|r| r.model == label && r.pair == pair)
                .filter_map(|r| r.result.as_ref().ok())
                .collect();
            let tried = runs
                .iter()
                .filter(|r| r.model == label && r.pair == pair)
                .count();
            let secs: Vec<f64> = of.iter().map(|f| f.secs).collect();
            let med =
                |g: &dyn Fn(&Figures) -> f64| median(&of.iter().map(|f| g(f)).collect::<Vec<_>>());
            let m = median(&secs);
            let base = pairs
                .contains(&pair.baseline())
                .then(|| median_of(pair.baseline()))
                .flatten();
            cells.push(Cell {
                model: label,
                pair,
                runs: tried,
                ok: of.len(),
                secs: m.map(|m| {
                    [
                        m,
                        secs.iter().copied().fold(f64::INFINITY, f64::min),
                        secs.iter().copied().fold(0.0, f64::max),
                    ]
                }),
                vs_kernel: report::ratio(m, base),
                retrans_segs: med(&|f| f.retrans_segs as f64),
                retrans_bytes: med(&|f| f.retrans_bytes as f64),
                rtos: med(&|f| f.rtos as f64),
            });
        }
    }
    let socket_drops: u64 = runs
        .iter()
        .filter_map(|r| r.result.as_ref().ok())
        .map(|f| f.socket_drops)
        .sum();
    let failed = runs.iter().filter(|r| r.result.is_err()).count();
    let command = std::iter::once("ustack".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let tcp = ustack::socket::tcp::TcpConfig::default();
    // What the kernel senders' sockets said they ran, per pair (the receivers' were
    // set alike, and a run whose socket read back otherwise failed).
    let cc = pairs
        .iter()
        .filter_map(|&pair| {
            let mut got: Vec<&str> = runs
                .iter()
                .filter(|r| r.pair == pair)
                .filter_map(|r| r.result.as_ref().ok()?.kernel_cc.as_deref())
                .collect();
            got.sort_unstable();
            got.dedup();
            (!got.is_empty()).then(|| format!("{} {}", pair.label(), got.join("/")))
        })
        .collect::<Vec<_>>()
        .join(", ");
    // The echo runs set the echo sockets (and fail on a mismatch) but keep no reading.
    let cc = if cc.is_empty() {
        cc
    } else {
        format!(", as the senders' sockets read it back: {cc}")
    };
    let cc_how = match (&args.kernel_cc, args.echo) {
        (Some(w), true) => format!("TCP_CONGESTION {w} on both kernel echo sockets"),
        (Some(w), false) => {
            format!("TCP_CONGESTION {w} on every kernel socket except the host-cc row's")
        }
        (None, _) => "the host's default".to_owned(),
    };
    let mut notes = vec![
        format!(
            "{}; seeds {}..={}; loss in both directions, decided by the wire's seed per frame index",
            if args.echo {
                "echo: the kernel client on side A writes the row's bytes and reads them back through the server on side B".to_owned()
            } else {
                format!("{} per transfer, side A to side B", human_bytes(size))
            },
            seeds.first().copied().unwrap_or(0),
            seeds.last().copied().unwrap_or(0)
        ),
        "permanent neighbour entries on both kernels and static ones in ustack, and no gratuitous ARP from ustack: no ARP crosses the wire, so a dropped ARP request never delays a run and the n-th frame of a connection is the n-th frame the wire sees, whichever stack sends it".into(),
        if args.echo {
            "time: the client's connect to its read of the last echoed byte (the closes must still complete before the deadline, but are not timed: a lost FIN waits for a 200 ms timer in any stack; each run's line gives the time to the client's EOF too); retransmissions and RTOs: the client's plus the server's, until that EOF (kernel: nstat RetransSegs/TCPTimeouts deltas in its namespace and TCP_INFO bytes_retrans; ustack: its Retransmit and RtoFired events); vs kernel: time / the kernel echo server's median".into()
        } else {
            "time: the sender's connect to the receiver's read of the last byte, one clock (the closes must still complete before the deadline, but are not timed: a lost FIN waits for a 200 ms timer in any stack; each run's line gives the time to the sender's EOF too); retransmissions and RTOs: the sender's (kernel: nstat RetransSegs/TCPTimeouts deltas in its namespace and TCP_INFO bytes_retrans; ustack: TcpInfo and RtoFired events)".into()
        },
        format!(
            "ustack: socket API NetStack with its default TcpConfig but congestion control {ustack_cc} ({ustack_cc_how}; {} KiB receive / {} KiB send buffers, autotuned up to {} KiB / {} KiB) on AF_PACKET; kernel: congestion control {cc_how}{cc}; other sysctls as new namespaces get them; offloads of the endpoints' veth ends as read back: {}",
            tcp.rx_buffer_len / 1024,
            tcp.tx_buffer_len / 1024,
            tcp.rx_buffer_max / 1024,
            tcp.tx_buffer_max / 1024,
            offloads
        ),
        format!("frames dropped at AF_PACKET sockets (not by the seed) over all runs: {socket_drops}"),
        format!("{failed} of {} runs failed", runs.len()),
        format!("total run time {:.0} s", t_start.elapsed().as_secs_f64()),
    ];
    if let Some(dir) = &args.pcap_dir {
        notes.push(format!("captures: each run's wire (side A's view, dropped frames commented) in {}/MODEL-PAIR-seedN.pcapng", dir.display()));
    }
    if pairs.contains(&Pair::KernelToUstackNoCompress) {
        notes.push("kernel → ustack, no SACK compression: the same ustack receiver with TcpConfig::sack_compression off (one ACK per out-of-order segment), interleaved with the other pairs".into());
    }
    if pairs.contains(&Pair::KernelToUstackBatchCompress) {
        notes.push("kernel → ustack, SACK compression per batch: the same ustack receiver with TcpConfig::sack_compression_delay zero (the compressed ACK goes at the next dispatch, not on the timer), interleaved with the other pairs".into());
    }
    if pairs.contains(&Pair::KernelToUstackNoDsack) {
        notes.push("kernel → ustack, no D-SACK: the same ustack receiver with TcpConfig::dsack off (no D-SACK blocks sent), interleaved with the other pairs".into());
    }
    let report = LossReport {
        date: report::utc_date(start),
        machine,
        command,
        size,
        seeds,
        notes,
        cells,
        runs,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", to_text(&report));
    }
    Ok(if failed == 0 { 0 } else { 2 })
}

/// The table and notes as text.
pub fn to_text(r: &LossReport) -> String {
    let mut s = format!(
        "ustack bench loss — {}\n{}\n{}\n\n",
        r.date, r.machine, r.command
    );
    let rows: Vec<Vec<String>> = r
        .cells
        .iter()
        .map(|c| {
            let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_owned(), f);
            vec![
                c.model.to_owned(),
                c.pair.label().to_owned(),
                format!("{}/{}", c.ok, c.runs),
                c.secs.map_or("-".to_owned(), |[m, lo, hi]| {
                    format!("{m:.3} ({lo:.3}–{hi:.3})")
                }),
                opt(c.vs_kernel, &|v| format!("{v:.2}×")),
                opt(c.retrans_segs, &|v| format!("{v:.0}")),
                opt(c.retrans_bytes, &|v| human_bytes(v as u64)),
                opt(c.rtos, &|v| format!("{v:.1}")),
            ]
        })
        .collect();
    s.push_str(&markdown_table(
        &[
            "loss",
            "sender → receiver",
            "ok",
            "time s, median (min–max)",
            "vs kernel",
            "retrans segs",
            "retrans bytes",
            "RTOs",
        ],
        &rows,
    ));
    s.push('\n');
    for n in &r.notes {
        s.push_str(&format!("- {n}\n"));
    }
    for run in &r.runs {
        if let Err(e) = &run.result {
            s.push_str(&format!(
                "- FAILED {} seed {} {}: {e}\n",
                run.model,
                run.seed,
                run.pair.label()
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> LossArgs {
        use clap::{CommandFactory, FromArgMatches};
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            loss: LossArgs,
        }
        let m = Cli::command()
            .try_get_matches_from(std::iter::once("loss").chain(extra.iter().copied()))
            .expect("arguments parse");
        Cli::from_arg_matches(&m).expect("arguments").loss
    }

    #[test]
    fn ustack_cc_names_are_linux_names() {
        assert_eq!(
            args(&["--ustack-cc", "bbr"]).ustack_cc,
            Some(CongestionAlgorithm::Bbr)
        );
        assert_eq!(args(&[]).ustack_cc, None);
        assert_eq!(
            CongestionAlgorithm::from_name("cubic"),
            Some(CongestionAlgorithm::Cubic)
        );
        assert_eq!(
            CongestionAlgorithm::from_name("newreno"),
            Some(CongestionAlgorithm::NewReno)
        );
        assert_eq!(CongestionAlgorithm::from_name("vegas"), None);
        let err = parse_ustack_cc("vegas").unwrap_err();
        assert!(err.contains("reno, cubic, bbr"), "{err}");
    }

    #[test]
    fn plan_covers_the_table_the_echo_test_or_the_pairs_asked_for() {
        let (cases, pairs) = plan(&args(&[]), 1000).unwrap();
        assert_eq!(cases.len(), MODELS.len());
        assert!(cases.iter().all(|c| c.size == 1000));
        assert_eq!(pairs, Pair::ALL);

        let (cases, pairs) = plan(&args(&["--echo"]), 1000).unwrap();
        let sizes: Vec<u64> = cases.iter().map(|c| c.size).collect();
        assert_eq!(sizes, [1_000_000, 10_000_000]);
        assert_eq!(cases[0].value, "0.1");
        assert_eq!(cases[1].value, "0.03");
        assert_eq!(cases[0].label, "1 MB echo at 10%");
        assert_eq!(pairs, Pair::ECHO);
        for p in pairs {
            assert_eq!(p.baseline(), Pair::EchoKernel);
        }

        let (cases, _) = plan(&args(&["--echo", "--size", "200K"]), 200_000).unwrap();
        assert!(cases.iter().all(|c| c.size == 200_000));

        let a = args(&[
            "--pair",
            "kernel-to-ustack-no-dsack,kernel-to-kernel",
            "--pair",
            "kernel-to-kernel",
        ]);
        let (_, pairs) = plan(&a, 1000).unwrap();
        assert_eq!(pairs, [Pair::KernelToUstackNoDsack, Pair::KernelToKernel]);
        assert!(pairs[0].ustack_receiver());
        assert_eq!(pairs[0].baseline(), Pair::KernelToKernel);

        let (cases, _) = plan(&args(&["--model", "10%,gilbert:0.01:0.3"]), 1000).unwrap();
        let labels: Vec<&str> = cases.iter().map(|c| c.label).collect();
        assert_eq!(labels, ["10%", "gilbert:0.01:0.3"]);
        let (cases, _) = plan(&args(&["--echo", "--model", "10%"]), 1000).unwrap();
        assert_eq!(cases.len(), 1);
        assert_eq!((cases[0].loss, cases[0].size), ("10%", 1_000_000));
        let e = plan(&args(&["--echo", "--model", "5%"]), 1000).unwrap_err();
        assert!(e.contains("10% and 3%"), "{e}");
        assert!(parse_model("7%").is_err());
    }

    #[test]
    fn captures_are_named_by_model_pair_and_seed() {
        let a = args(&["--pcap-dir", "/tmp/caps"]);
        let dir = a.pcap_dir.as_deref().unwrap();
        assert_eq!(
            pcap_path(dir, "10%", Pair::KernelToUstack, 3),
            Path::new("/tmp/caps/10pct-kernel-to-ustack-seed3.pcapng")
        );
        assert_eq!(
            pcap_path(dir, "gilbert:0.01:0.3", Pair::EchoUstack, 12),
            Path::new("/tmp/caps/gilbert-0.01-0.3-echo-ustack-seed12.pcapng")
        );
        // Every pair has its own name, so no two runs of a seed share a file.
        let mut names: Vec<&str> = [
            Pair::KernelToKernel,
            Pair::KernelToUstack,
            Pair::UstackToKernel,
            Pair::KernelToUstackNoDsack,
            Pair::KernelToUstackNoCompress,
            Pair::KernelToUstackBatchCompress,
            Pair::EchoKernel,
            Pair::EchoUstack,
            Pair::KernelToKernelHostCc,
        ]
        .iter()
        .map(|p| p.file_name())
        .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 9);
    }

    #[test]
    fn echo_pairs_cannot_be_picked_and_echo_excludes_pair() {
        use clap::{CommandFactory, Parser};
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            loss: LossArgs,
        }
        let parse = |a: &[&str]| {
            Cli::command().try_get_matches_from(std::iter::once("loss").chain(a.iter().copied()))
        };
        assert!(parse(&["--pair", "echo-ustack"]).is_err());
        assert!(parse(&["--echo", "--pair", "kernel-to-kernel"]).is_err());
        assert!(parse(&["--pair", "kernel-to-ustack"]).is_ok());
    }

    /// A peer that always makes progress, slowly: each call moves at most `step`
    /// bytes after `delay`, so no call ever times out.
    struct Trickle {
        step: usize,
        delay: Duration,
        /// Stream offset of the next byte read, and where reading reaches EOF.
        off: u64,
        end: u64,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            std::thread::sleep(self.delay);
            Ok(buf.len().min(self.step))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(self.delay);
            let n = (self.end - self.off).min(buf.len().min(self.step) as u64) as usize;
            fill(&mut buf[..n], self.off);
            self.off += n as u64;
            Ok(n)
        }
    }

    /// A transfer that keeps making progress is still cut at the run's deadline
    /// (it was only checked when a call timed out, so a slow transfer overran it).
    #[test]
    fn endpoints_stop_at_the_deadline_while_data_still_moves() {
        let trickle = || Trickle {
            step: 1000,
            delay: Duration::from_millis(2),
            off: 0,
            end: 300_000,
        };
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_millis(40);
        let e = send_all(trickle(), 300_000, deadline, || Ok(())).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        let e = drain(trickle(), deadline).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        let e = write_until(trickle(), &[0; 300_000], deadline).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        // 300 calls of 2 ms each would take 0.6 s per endpoint.
        assert!(
            t0.elapsed() < Duration::from_millis(400),
            "{:?}",
            t0.elapsed()
        );
        // Before the deadline the same peer completes.
        let far = Instant::now() + Duration::from_secs(60);
        assert_eq!(drain(trickle(), far).unwrap().bytes, 300_000);
    }

    /// A receiver socket with a short read timeout whose bytes arrive at once but
    /// whose EOF (the peer's FIN) comes `fin_delay` after the last byte, as when the
    /// FIN is lost and resent on a timer.
    struct LateFin {
        data: u64,
        off: u64,
        fin_delay: Duration,
        fin_at: Option<Instant>,
    }

    impl LateFin {
        fn new(data: u64, fin_delay: Duration) -> LateFin {
            LateFin {
                data,
                off: 0,
                fin_delay,
                fin_at: None,
            }
        }
    }

    impl Read for LateFin {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.off == self.data {
                let fin_at = *self.fin_at.get_or_insert(Instant::now() + self.fin_delay);
                if Instant::now() >= fin_at {
                    return Ok(0);
                }
                // The socket's per-call timeout, shortened.
                std::thread::sleep(Duration::from_millis(10));
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = (self.data - self.off).min(buf.len() as u64) as usize;
            fill(&mut buf[..n], self.off);
            self.off += n as u64;
            Ok(n)
        }
    }

    /// The table's time stops at the read of the last byte, not at the EOF that
    /// follows it (a lost FIN's 200 ms retransmission timer); only a complete
    /// transfer has a time; and the EOF must still come before the deadline.
    #[test]
    fn the_time_is_taken_at_the_last_byte_not_at_the_close() {
        let far = Instant::now() + Duration::from_secs(60);
        let t0 = Instant::now();
        let got = drain(LateFin::new(200_000, Duration::from_millis(300)), far).unwrap();
        let close = t0.elapsed().as_secs_f64();
        assert_eq!(got.bytes, 200_000);
        let secs = transfer_secs(t0, &got, 200_000, "received").unwrap();
        assert!(close >= 0.3, "the EOF came after the FIN's delay: {close}");
        assert!(
            secs < 0.2,
            "timed at the last byte, not the close: {secs} of {close}"
        );
        assert!(secs > 0.0);
        // Short or empty transfers have no time.
        let e = transfer_secs(t0, &got, 300_000, "received").unwrap_err();
        assert_eq!(e, "200000 bytes received of 300000");
        let empty = Drained {
            bytes: 0,
            last_byte_at: None,
        };
        assert!(transfer_secs(t0, &empty, 0, "echoed").is_err());
        // All bytes in, but the close comes after the deadline: the run fails.
        let soon = Instant::now() + Duration::from_millis(100);
        let e = drain(LateFin::new(1000, Duration::from_millis(300)), soon).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(within(0.25, Duration::from_secs(1)).is_ok());
    }

    /// A run that ends past --timeout fails, and a reset that follows the receiver's
    /// deadline is reported as the deadline.
    #[test]
    fn late_runs_fail_and_the_deadline_explains_a_reset() {
        let t = Duration::from_secs(60);
        assert!(within(59.9, t).is_ok());
        let e = within(70.85, t).unwrap_err();
        assert!(e.contains(DEADLINE_PASSED), "{e}");
        let late = Err::<(), _>(format!("kernel receiver: receiving: {DEADLINE_PASSED}"));
        let reset = Err::<(), _>("ustack sender: Connection reset by peer".to_owned());
        let e = outcome(reset.clone(), late.clone()).unwrap_err();
        assert!(e.starts_with("kernel receiver"), "{e}");
        assert!(e.contains("reset"), "{e}");
        assert_eq!(
            outcome(reset, Ok::<_, String>(1)).unwrap_err(),
            "ustack sender: Connection reset by peer"
        );
        assert!(outcome(Ok::<_, String>(()), late).is_err());
        assert_eq!(outcome(Ok::<_, String>(1), Ok::<_, String>(2)), Ok((1, 2)));
    }

    /// Only sockets of the run's port that may still send keep a run waiting: a
    /// LAST-ACK receiver resending its FIN does, a listener, a TIME-WAIT entry and
    /// another run's socket do not.
    #[test]
    fn kernel_sockets_that_may_still_send_are_found() {
        // /proc/net/tcp layout; 0x4E20 = 20000, 0x4E21 = 20001.
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            \x20  0: 00000000:4E20 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
            \x20  1: 02004F0A:4E20 0B004F0A:E4B2 09 00000000:00000001 01:00000032 00000002     0        0 0 1 0 20 4 30 10 -1\n\
            \x20  2: 01004F0A:A0B4 02004F0A:4E20 06 00000000:00000000 03:00000F9E 00000000     0        0 0 3 0\n\
            \x20  3: 01004F0A:A0B6 02004F0A:4E21 01 00000000:00000000 00:00000000 00000000     0        0 7 1 0 20 4 30 10 -1\n";
        assert_eq!(sending_sockets(text, 20_000), 1);
        assert_eq!(sending_sockets(text, 20_001), 1);
        assert_eq!(sending_sockets(text, 20_002), 0);
        assert_eq!(sending_sockets("", 20_000), 0);
        assert_eq!(sending_sockets("header\ngarbage line\n", 20_000), 0);
    }

    #[test]
    fn wire_counters_parse() {
        let out = "ustack wire: forwarding raw:wwa <-> raw:wwb (seed 5); Ctrl-C to stop\n\
            ustack wire: a2b: 1455 frames in, 1385 passed, dropped 70 random / 2 burst / 1 queue-full, 0 duplicated\n\
            ustack wire: b2a: 951 frames in, 910 passed, dropped 41 random / 0 burst / 0 queue-full, 0 duplicated\n\
            ustack wire: socket drops (receive buffer full, not injected): raw:wwa 3, raw:wwb 4\n";
        assert_eq!(parse_wire_counters(out), Some(([73, 41], 7)));
        assert_eq!(parse_wire_counters("nothing"), None);
    }
}
