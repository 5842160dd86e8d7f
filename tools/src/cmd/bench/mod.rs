//! `ustack bench`: ustack, smoltcp and the Linux kernel side by side, on the same TAP
//! and the same kernel-side client, in alternating rounds, with medians and ratios.
//!
//! Layout of a run (everything inside namespaces this command creates and deletes):
//!
//! ```text
//!  namespace A (client)                          namespace B (kernel server)
//!  client threads (setns, kernel sockets)
//!    ├── TAP ubtap0 10.78.0.1 ── stack 10.78.0.2 (ustack or smoltcp, child process)
//!    └── veth ubva  10.78.1.1 ─────────────────── veth ubvb 10.78.1.2 (child process)
//! ```
//!
//! Each (figure, column, round) is one child process (`bench-serve`, see [`serve`]) plus
//! one client thread ([`client`]); the child is killed if it overstays, and a run that
//! moved the wrong bytes is a failed round, never a figure. In-memory figures run in
//! this process ([`inmem`]), and under callgrind in a child (`bench-inmem`).

pub mod client;
pub mod inmem;
pub mod loss;
pub mod pattern;
pub mod report;
pub mod serve;
#[cfg(feature = "smoltcp-peer")]
pub mod smol;

use super::CmdResult;
use clap::Args;
use report::{Absent, Column, Figure, Outcome, Report, Settings};
use serve::ServeReport;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use ustack_socket::ethtool::{self, Offloads};
use ustack_socket::netns::{self, Netns};

const TAP: &str = "ubtap0";
const TAP_KERNEL: &str = "10.78.0.1/24";
const STACK_IP: &str = "10.78.0.2";
const STACK_CIDR: &str = "10.78.0.2/24";
/// Both user-space stacks answer with this MAC, so the kernel's ARP entry stays right
/// from one run to the next.
const STACK_MAC: &str = "02:00:00:4e:00:02";
const VETH_A: &str = "ubva";
const VETH_A_CIDR: &str = "10.78.1.1/24";
const VETH_B: &str = "ubvb";
const VETH_B_IP: &str = "10.78.1.2";
const VETH_B_CIDR: &str = "10.78.1.2/24";
/// How long a child may take to start listening.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a child may take to report once its client is done.
const DONE_TIMEOUT: Duration = Duration::from_secs(20);

/// Options of `ustack bench`.
#[derive(Debug, Args)]
#[command(
    after_help = "What it runs, inside two network namespaces it creates and deletes:\n  \
    ustack (socket API) and smoltcp 0.14 (phy::TunTapInterface, polled in the serving\n  \
    thread) as servers on the same TAP, each against the same client: Linux sockets\n  \
    on threads inside the namespace. ustack runs with --offload off, and again with\n  \
    TAP offloads on (64 KB super-frames) for the two bulk figures. Without offloads\n  \
    ustack's socket buffers stay at smoltcp's sizes (128 KiB each way; --autotune\n  \
    lets them autotune, ustack's default). Linux-to-Linux\n  \
    over a veth pair, offloads off and on (set with the SIOCETHTOOL ioctl), as the\n  \
    reference. In-memory bulk and serial connections between two\n  \
    instances of each stack, natively and under valgrind's callgrind (if installed).\n  \
    smoltcp is compiled in by the default feature `smoltcp-peer`; without it its\n  \
    column says skipped.\n\n\
    Figures: bulk each way; 1-byte request / 2-byte response, pinned to one CPU and\n  \
    unpinned; connect, read `hello\\n`, close, serially; N concurrent connections\n  \
    (accept rate, memory per connection from the server's VmRSS); in-memory Gbit/s and\n  \
    instructions per byte; in-memory connections per CPU second and instructions per\n  \
    connection (both ends; connect, `hello\\n`, close, as over the TAP). Medians over\n  \
    the rounds, the ustack/smoltcp ratio of the medians and the lowest, median and\n  \
    highest of the per-round ratios (round i of\n  \
    each; how far the ratio moves between rounds), kernel figures for reference.\n  \
    Every transfer checks its byte count and a byte pattern; a\n  \
    failed round is listed as failed, not counted. Needs root (CAP_NET_ADMIN,\n  \
    CAP_SYS_ADMIN). Speed figures depend on the machine's load; see docs/performance.md.\n  \
    The global link flags (--tap, --raw, --ip, --mac, --pcap, --offload, the fault\n  \
    flags) do not apply: it picks its own devices and addresses.\n\n\
    Examples:\n  \
    sudo ustack bench --quick                # under a minute, small sizes\n  \
    sudo ustack bench                        # 5 rounds, 1 GB bulk, 10,000 connections\n  \
    sudo ustack bench --rounds 9 --size 2G --json > bench.json\n  \
    sudo ustack bench --rounds 1 --size 5M --secs 0.2 --conns 200 --no-kernel\n  \
    sudo ustack bench --only rr-pinned,conn-rate --rounds 9 --no-kernel\n  \
    sudo ustack bench --only callgrind-conn,inmem-conn --rounds 1 --no-kernel\n  \
    sudo ustack bench --only conn-rate,rr-pinned,rr-unpinned --no-kernel --busy-poll 50"
)]
pub struct BenchArgs {
    /// Small sizes and short rounds: the whole run takes under a minute (2 rounds, 20 MB
    /// bulk, 0.3 s per timed round, 1,000 connections). Explicit flags still win.
    #[arg(long)]
    pub quick: bool,
    /// Rounds per figure; the table shows medians [default: 5; --quick: 2].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rounds: Option<u32>,
    /// Bytes per bulk transfer, e.g. 1G, 200M [default: 1G; --quick: 20M].
    #[arg(long, value_name = "BYTES", value_parser = report::parse_size)]
    pub size: Option<u64>,
    /// Seconds each request/response and connection-rate round runs [default: 3;
    /// --quick: 0.3].
    #[arg(long, value_name = "SECS")]
    pub secs: Option<f64>,
    /// Connections held at once in the concurrency figure [default: 10000; --quick: 1000].
    #[arg(long, value_name = "N")]
    pub conns: Option<usize>,
    /// Bytes of the native in-memory transfer [default: 1G; --quick: 20M].
    #[arg(long, value_name = "BYTES", value_parser = report::parse_size)]
    pub inmem_size: Option<u64>,
    /// Bytes S of the callgrind runs (it runs S and 2S and divides the difference by S)
    /// [default: 4M; --quick: 1M].
    #[arg(long, value_name = "BYTES", value_parser = report::parse_size)]
    pub callgrind_size: Option<u64>,
    /// Serial connections of the native in-memory connection figure, at most 28,000
    /// (one client port each: the server keeps every 4-tuple in TIME-WAIT) [default:
    /// 20000; --quick: 2000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=inmem::MAX_CONNS))]
    pub inmem_conns: Option<u32>,
    /// Connections N of the callgrind connection runs (it runs N and 2N and divides the
    /// difference by N), at most 14,000 [default: 2000; --quick: 500].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=inmem::MAX_CONNS / 2))]
    pub callgrind_conns: Option<u32>,
    /// Skip the callgrind figures even if valgrind is installed.
    #[arg(long)]
    pub no_callgrind: bool,
    /// Skip the kernel-to-kernel veth columns.
    #[arg(long)]
    pub no_kernel: bool,
    /// Run only these figures (comma-separated); the table leaves the others out.
    #[arg(long, value_name = "FIGURES", value_delimiter = ',')]
    pub only: Vec<Only>,
    /// The CPU that pinned figures use.
    #[arg(long, value_name = "CPU", default_value_t = 0)]
    pub cpu: usize,
    /// Print the report as JSON (every round's figure or failure) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Let ustack's column without offloads autotune its socket buffers (its default),
    /// instead of keeping them at smoltcp's fixed sizes.
    #[arg(long)]
    pub autotune: bool,
    /// Connection rate: ustack's and the kernel's servers send the greeting with
    /// MSG_MORE, so it leaves with the FIN in one segment, as smoltcp's server sends
    /// it by writing and closing before its next poll; the same for ustack's server in
    /// the in-memory connection figures. Off by default: every server then writes with
    /// TCP_NODELAY and closes.
    #[arg(long)]
    pub conn_more: bool,
    /// ustack's servers busy-poll (SO_BUSY_POLL, USEC microseconds, on the listener
    /// and so on every accepted connection) in the latency figures: request/response
    /// pinned and unpinned, and the connection rate. Nothing changes for smoltcp or the
    /// kernel. Off by default, so the default run compares like with like.
    #[arg(long, value_name = "USEC", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub busy_poll: Option<u32>,
    /// A benchmark other than the speed table.
    #[command(subcommand)]
    pub mode: Option<BenchMode>,
}

/// A figure (or, for `concurrent`, a pair) that `--only` selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    /// Bulk, stack receiving.
    BulkRx,
    /// Bulk, stack sending.
    BulkTx,
    /// Request/response pinned to one CPU.
    RrPinned,
    /// Request/response unpinned.
    RrUnpinned,
    /// Serial connect, read, close.
    ConnRate,
    /// N concurrent connections: accept rate and memory.
    Concurrent,
    /// In-memory bulk, per CPU second.
    Inmem,
    /// In-memory instructions per byte (callgrind).
    Callgrind,
    /// In-memory serial connections, per CPU second.
    InmemConn,
    /// In-memory instructions per connection (callgrind).
    CallgrindConn,
}

impl Only {
    /// Whether this selection includes figure `f`.
    fn covers(self, f: Figure) -> bool {
        match self {
            Only::BulkRx => f == Figure::BulkRx,
            Only::BulkTx => f == Figure::BulkTx,
            Only::RrPinned => f == Figure::RrPinned,
            Only::RrUnpinned => f == Figure::RrUnpinned,
            Only::ConnRate => f == Figure::ConnRate,
            Only::Concurrent => matches!(f, Figure::ConcurrentAccept | Figure::ConcurrentMemory),
            Only::Inmem => f == Figure::InMemoryBulk,
            Only::Callgrind => f == Figure::InMemoryInstructions,
            Only::InmemConn => f == Figure::InMemoryConns,
            Only::CallgrindConn => f == Figure::InMemoryConnInstructions,
        }
    }
}

/// The benchmarks besides the default speed table.
#[derive(Debug, clap::Subcommand)]
pub enum BenchMode {
    /// TCP under seeded loss: kernel->kernel, kernel->ustack and ustack->kernel through
    /// `ustack wire`, the same seeds for each, at 1/3/5/10% random loss and a
    /// Gilbert burst model; median time, retransmissions and RTOs per cell.
    Loss(loss::LossArgs),
}

/// The namespaces, devices and the binary every run uses.
struct Lab {
    a: Netns,
    b: Netns,
    exe: PathBuf,
    port: u16,
    cpu: usize,
    /// ustack's column without offloads autotunes its buffers (`--autotune`).
    autotune: bool,
    /// The connection-rate greeting goes with MSG_MORE (`--conn-more`).
    conn_more: bool,
    /// ustack's latency servers busy-poll this many µs (`--busy-poll`).
    busy_poll: Option<u32>,
    offloads: Option<bool>,
    offload_state: BTreeMap<bool, Offloads>,
}

/// One child server, its stdout lines arriving on a channel.
struct ChildServer {
    child: Child,
    lines: Receiver<String>,
}

impl ChildServer {
    fn wait_line(&self, prefix: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return Ok(l[prefix.len()..].trim().into()),
                Ok(l) if l.starts_with("done ") => {
                    let r: ServeReport = serde_json::from_str(&l[5..]).unwrap_or_default();
                    return Err(r
                        .error
                        .unwrap_or_else(|| format!("server ended before `{prefix}`")));
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("no `{prefix}` from the server in {timeout:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("the server exited before `{prefix}`"))
                }
            }
        }
    }

    /// Closes stdin (the stop signal), reads the report, reaps the process.
    fn finish(mut self) -> Result<ServeReport, String> {
        drop(self.child.stdin.take());
        let r = self
            .wait_line("done ", DONE_TIMEOUT)
            .and_then(|j| serde_json::from_str::<ServeReport>(&j).map_err(|e| e.to_string()));
        self.reap();
        let r = r?;
        match r.error {
            Some(e) => Err(format!("server: {e}")),
            None => Ok(r),
        }
    }

    fn reap(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a client run hands back: a figure, or open connections to verify later.
enum ClientOut {
    Figure(f64, u64),
    Held(Vec<TcpStream>, Instant),
}

impl Lab {
    fn new(cpu: usize, autotune: bool, conn_more: bool) -> Result<Lab, Box<dyn std::error::Error>> {
        let a = Netns::new("ubench-a")?;
        let b = Netns::new("ubench-b")?;
        a.add_tap(TAP, TAP_KERNEL)?;
        a.ip(&[
            "link",
            "add",
            VETH_A,
            "type",
            "veth",
            "peer",
            "name",
            VETH_B,
            "netns",
            b.name(),
        ])?;
        a.ip(&["addr", "add", VETH_A_CIDR, "dev", VETH_A])?;
        a.ip(&["link", "set", VETH_A, "up"])?;
        b.ip(&["addr", "add", VETH_B_CIDR, "dev", VETH_B])?;
        b.ip(&["link", "set", VETH_B, "up"])?;
        Ok(Lab {
            a,
            b,
            exe: std::env::current_exe()?,
            port: 20_000,
            cpu,
            autotune,
            conn_more,
            busy_poll: None,
            offloads: None,
            offload_state: BTreeMap::new(),
        })
    }

    /// ustack's column without offloads ran with the buffers the note names: fixed at
    /// the initial sizes (smoltcp's), or autotuned with `--autotune`.
    fn check_buffers(&self, max: Option<[usize; 2]>) -> Result<(), String> {
        let cfg = ustack::socket::tcp::TcpConfig::default();
        let (want, what) = if self.autotune {
            ([cfg.rx_buffer_max, cfg.tx_buffer_max], "autotuned")
        } else {
            ([cfg.rx_buffer_len, cfg.tx_buffer_len], "fixed")
        };
        match max {
            Some(got) if got == want => Ok(()),
            got => Err(format!(
                "ustack's buffers were to be {what} (maxima {want:?} bytes), the server reported {got:?}"
            )),
        }
    }

    /// Sets the veth offloads on both ends (once per change).
    fn set_offloads(&mut self, on: bool) -> Result<(), String> {
        if self.offloads == Some(on) {
            return Ok(());
        }
        let mut got = None;
        for (ns, dev) in [(&self.a, VETH_A), (&self.b, VETH_B)] {
            let r = ns
                .run_in(move || ethtool::set(dev, Offloads::all(on)))
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("SIOCETHTOOL on {dev}: {e}"))?;
            got = Some(r);
        }
        if let Some(g) = got {
            self.offload_state.insert(on, g);
        }
        self.offloads = Some(on);
        Ok(())
    }

    /// Waits until the kernel reports the TAP up. Its carrier rises when the child
    /// attaches, but the kernel applies carrier changes from its linkwatch work, which
    /// it delays up to a second after the previous change; until then the TAP drops
    /// what the client sends, and the first SYN would wait a second to be retransmitted.
    fn wait_tap_up(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = self
                .a
                .ip(&["-o", "link", "show", TAP])
                .map_err(|e| e.to_string())?;
            let line = String::from_utf8_lossy(&out.stdout);
            if line.contains("state UP") && !line.contains("NO-CARRIER") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{TAP} not up 5 s after the server attached: {}",
                    line.trim()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn spawn(
        &mut self,
        col: Column,
        test: serve::Test,
        s: &Settings,
        pin: bool,
    ) -> Result<(ChildServer, SocketAddr), String> {
        self.port = if self.port >= 60_000 {
            20_000
        } else {
            self.port + 1
        };
        let port = self.port;
        let mut cmd = Command::new(&self.exe);
        let (server, addr) = match col {
            Column::Ustack | Column::Smoltcp | Column::UstackOffloadsOn => {
                cmd.args([
                    "--netns",
                    self.a.name(),
                    "--tap",
                    TAP,
                    "--ip",
                    STACK_CIDR,
                    "--mac",
                    STACK_MAC,
                    "--offload",
                    if col == Column::UstackOffloadsOn {
                        "auto"
                    } else {
                        "off"
                    },
                ]);
                let server = if col == Column::Smoltcp {
                    "smoltcp"
                } else {
                    "ustack"
                };
                (server, format!("{STACK_IP}:{port}"))
            }
            Column::KernelOffloadsOff | Column::KernelOffloadsOn => {
                cmd.args(["--netns", self.b.name()]);
                ("kernel", format!("{VETH_B_IP}:{port}"))
            }
        };
        let test_name = match test {
            serve::Test::BulkRx => "bulk-rx",
            serve::Test::BulkTx => "bulk-tx",
            serve::Test::Rr => "rr",
            serve::Test::Conn => "conn",
            serve::Test::Concurrent => "concurrent",
        };
        cmd.args(["bench-serve", "--server", server, "--test", test_name]);
        cmd.args(["--port", &port.to_string(), "--size", &s.size.to_string()]);
        cmd.args(["--conns", &s.conns.to_string()]);
        if pin {
            cmd.args(["--pin", &self.cpu.to_string()]);
        }
        if col == Column::Ustack && !self.autotune {
            cmd.arg("--fixed-buffers");
        }
        if test == serve::Test::Conn && self.conn_more {
            cmd.arg("--more");
        }
        if let Some(us) = self.busy_poll {
            // ustack's latency servers only (request/response, connection rate).
            if col == Column::Ustack && matches!(test, serve::Test::Rr | serve::Test::Conn) {
                cmd.args(["--busy-poll", &us.to_string()]);
            }
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.exe.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
        Ok((ChildServer { child, lines: rx }, addr))
    }

    /// Runs one figure of one column once. The concurrency test yields two figures
    /// (accept rate and memory), so every run returns a list.
    fn run(&mut self, fig: Figure, col: Column, s: &Settings) -> Vec<(Figure, Outcome)> {
        let concurrent = matches!(fig, Figure::ConcurrentAccept);
        let r = self.run_inner(fig, col, s);
        match (r, concurrent) {
            (Ok(v), _) => v,
            (Err(e), true) => vec![
                (Figure::ConcurrentAccept, Outcome::Failed(e.clone())),
                (Figure::ConcurrentMemory, Outcome::Failed(e)),
            ],
            (Err(e), false) => vec![(fig, Outcome::Failed(e))],
        }
    }

    fn run_inner(
        &mut self,
        fig: Figure,
        col: Column,
        s: &Settings,
    ) -> Result<Vec<(Figure, Outcome)>, String> {
        match col {
            Column::KernelOffloadsOff => self.set_offloads(false)?,
            Column::KernelOffloadsOn => self.set_offloads(true)?,
            _ => {}
        }
        let test = match fig {
            Figure::BulkRx => serve::Test::BulkRx,
            Figure::BulkTx => serve::Test::BulkTx,
            Figure::RrPinned | Figure::RrUnpinned => serve::Test::Rr,
            Figure::ConnRate => serve::Test::Conn,
            Figure::ConcurrentAccept => serve::Test::Concurrent,
            _ => return Err(format!("{fig:?} is not a network figure")),
        };
        let pin = fig == Figure::RrPinned;
        let (server, addr) = self.spawn(col, test, s, pin)?;
        server.wait_line("ready", READY_TIMEOUT)?;
        if is_tap(col) {
            self.wait_tap_up()?;
        }
        let (size, secs, conns, cpu) = (s.size, s.secs, s.conns, self.cpu);
        let job = move || -> Result<ClientOut, String> {
            Ok(match fig {
                Figure::BulkRx => ClientOut::Figure(client::bulk_to_server(addr, size)?, size),
                Figure::BulkTx => ClientOut::Figure(client::bulk_from_server(addr, size)?, size),
                Figure::RrPinned | Figure::RrUnpinned => {
                    let (rate, n) = client::request_response(addr, secs, pin.then_some(cpu))?;
                    ClientOut::Figure(rate, n)
                }
                Figure::ConnRate => {
                    let (rate, n, _refused) = client::connection_rate(addr, secs)?;
                    ClientOut::Figure(rate, n)
                }
                _ => {
                    let (held, t0) = client::open_many(addr, conns)?;
                    ClientOut::Held(held, t0)
                }
            })
        };
        let handle = self
            .a
            .spawn_in("bench client", job)
            .map_err(|e| format!("entering the client namespace: {e}"))?;
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle.join()))
            .map_err(|_| "the client thread panicked".to_owned())??;
        match out {
            ClientOut::Figure(value, count) => {
                let rep = server.finish()?;
                if rep.count != count {
                    return Err(format!(
                        "the server counted {} where the client counted {count}",
                        rep.count
                    ));
                }
                if col == Column::UstackOffloadsOn {
                    // A TAP that refused offloads falls back to plain frames: that must
                    // not pass for an offload figure.
                    let [rx, tx] = rep.offload_frames.unwrap_or_default();
                    if rx + tx == 0 {
                        return Err("ustack used no super-frame: the kernel refused TAP offloads (see the server's log)".into());
                    }
                }
                if col == Column::Ustack {
                    self.check_buffers(rep.buffers_max)?;
                }
                Ok(vec![(fig, Outcome::Value(value))])
            }
            ClientOut::Held(held, t0) => {
                let line = server.wait_line(
                    "accepted ",
                    DONE_TIMEOUT + Duration::from_secs(s.conns as u64 / 100),
                );
                let elapsed = t0.elapsed();
                let checked = client::check_and_reset(held);
                let line = line?;
                checked?;
                let rep = server.finish()?;
                if col == Column::Ustack {
                    self.check_buffers(rep.buffers_max)?;
                }
                let f: Vec<u64> = line
                    .split_whitespace()
                    .filter_map(|w| w.parse().ok())
                    .collect();
                let [n, rss0, rss1] = f[..] else {
                    return Err(format!("bad `accepted` line: {line}"));
                };
                if n != conns as u64 || rep.count != n {
                    return Err(format!("{n} of {conns} connections accepted"));
                }
                let rate = n as f64 / elapsed.as_secs_f64();
                let mut v = vec![(Figure::ConcurrentAccept, Outcome::Value(rate))];
                if is_tap(col) {
                    let per = rss1.saturating_sub(rss0) as f64 / n as f64;
                    v.push((Figure::ConcurrentMemory, Outcome::Value(per)));
                }
                Ok(v)
            }
        }
    }
}

/// Whether a column's server runs on the TAP (a user-space stack).
fn is_tap(col: Column) -> bool {
    matches!(
        col,
        Column::Ustack | Column::Smoltcp | Column::UstackOffloadsOn
    )
}

/// The in-memory figures: two instances of one stack, no device (no kernel column, no
/// offloads).
const INMEM_FIGS: [Figure; 4] = [
    Figure::InMemoryBulk,
    Figure::InMemoryInstructions,
    Figure::InMemoryConns,
    Figure::InMemoryConnInstructions,
];

/// Figures the offload column runs: offloads change how bulk data crosses the TAP.
const OFFLOAD_FIGS: [Figure; 2] = [Figure::BulkRx, Figure::BulkTx];

/// Resolved settings: explicit flags, else the --quick or default value.
fn settings(args: &BenchArgs) -> Settings {
    let q = args.quick;
    Settings {
        rounds: args.rounds.unwrap_or(if q { 2 } else { 5 }) as usize,
        size: args
            .size
            .unwrap_or(if q { 20_000_000 } else { 1_000_000_000 }),
        secs: args.secs.unwrap_or(if q { 0.3 } else { 3.0 }),
        conns: args.conns.unwrap_or(if q { 1_000 } else { 10_000 }),
        inmem_size: args
            .inmem_size
            .unwrap_or(if q { 20_000_000 } else { 1_000_000_000 }),
        inmem_conns: args.inmem_conns.unwrap_or(if q { 2_000 } else { 20_000 }),
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{cpus} CPUs (nproc), {model}, Linux {}, load average {} at start",
        kernel.trim(),
        load.join(" ")
    )
}

/// Raises the open-file soft limit to the hard limit (10,000 kernel client sockets
/// plus as many server sockets in the kernel columns); returns the limit.
fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 1024;
        }
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur
    }
}

fn valgrind_installed() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What a callgrind run of `bench-inmem` does: move bytes or serve connections.
#[derive(Clone, Copy, Debug)]
enum InmemRun {
    /// One transfer of this many bytes (`--size`).
    Bulk(u64),
    /// This many serial connections (`--conns`).
    Conns(u64),
}

impl InmemRun {
    /// This run with twice the work.
    fn doubled(self) -> InmemRun {
        match self {
            InmemRun::Bulk(n) => InmemRun::Bulk(2 * n),
            InmemRun::Conns(n) => InmemRun::Conns(2 * n),
        }
    }
}

/// Instructions callgrind counted for one in-memory run (`bench-inmem`).
/// `more`: ustack's connection server sends its greeting with MSG_MORE (`--conn-more`).
fn callgrind_instructions(
    exe: &PathBuf,
    stack: &str,
    run: InmemRun,
    more: bool,
) -> Result<u64, String> {
    let (flag, n, done) = match run {
        InmemRun::Bulk(n) => ("--size", n, "moved "),
        InmemRun::Conns(n) => ("--conns", n, "served "),
    };
    let out_file = std::env::temp_dir().join(format!(
        "ustack-bench-{}-{stack}{flag}-{n}.cg",
        std::process::id()
    ));
    let out = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(exe)
        .args(["bench-inmem", "--stack", stack, flag, &n.to_string()])
        .args((more && matches!(run, InmemRun::Conns(_))).then_some("--more"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("valgrind: {e}"))?;
    let _ = std::fs::remove_file(&out_file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "valgrind exited with {}: {}",
            out.status,
            stderr.lines().last().unwrap_or("")
        ));
    }
    if !String::from_utf8_lossy(&out.stdout).starts_with(done) {
        return Err("the in-memory run did not report".into());
    }
    stderr
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "no `Collected` line in callgrind's output".into())
}

/// Runs `ustack bench`.
pub fn run(args: &BenchArgs) -> CmdResult {
    if let Some(BenchMode::Loss(l)) = &args.mode {
        return loss::run(l);
    }
    ustack_tools::signals::handle_with(|sig| {
        netns::cleanup_all();
        std::process::exit(128 + sig);
    })?;
    if !netns::have_privileges() {
        return Err("ustack bench needs root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN), /dev/net/tun and iproute2: it creates its own namespaces, TAP and veth".into());
    }
    let selected = |f: Figure| args.only.is_empty() || args.only.iter().any(|o| o.covers(f));
    let mut s = settings(args);
    let nofile = raise_nofile();
    let mut notes = Vec::new();
    if (s.conns as u64) + 256 > nofile {
        let n = (nofile.saturating_sub(256)) as usize;
        notes.push(format!(
            "open-file limit {nofile}: concurrency reduced from {} to {n} connections",
            s.conns
        ));
        s.conns = n.max(1);
    }
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let command = std::iter::once("ustack".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let mut report = Report {
        date: report::utc_date(start),
        machine: machine(),
        command,
        settings: s.clone(),
        notes: Vec::new(),
        results: BTreeMap::new(),
        absent: BTreeMap::new(),
    };
    let cfg = ustack::socket::tcp::TcpConfig::default();
    notes.push(if args.autotune {
        format!(
            "socket buffers: {} KiB receive / {} KiB send for smoltcp; ustack over the TAP (--autotune) starts with the same and autotunes up to {} KiB / {} KiB (its defaults); ustack in memory keeps them fixed at {} KiB / {} KiB, as smoltcp",
            cfg.rx_buffer_len / 1024,
            cfg.tx_buffer_len / 1024,
            cfg.rx_buffer_max / 1024,
            cfg.tx_buffer_max / 1024,
            cfg.rx_buffer_len / 1024,
            cfg.tx_buffer_len / 1024
        )
    } else {
        format!(
            "socket buffers: {} KiB receive / {} KiB send for smoltcp, and for ustack without offloads and in memory, fixed (its initial sizes, autotuning off; --autotune lets it grow them up to {} KiB / {} KiB, its default); ustack with offloads autotunes (its default)",
            cfg.rx_buffer_len / 1024,
            cfg.tx_buffer_len / 1024,
            cfg.rx_buffer_max / 1024,
            cfg.tx_buffer_max / 1024
        )
    });
    notes.push("ustack: a server on the socket API (TcpListener/TcpStream; NetStack's driver thread plus the application thread); smoltcp: one thread polling the interface and waiting in phy::wait; kernel: std::net in the other namespace".into());
    notes.push(if args.conn_more {
        "connection rate (--conn-more): ustack's and the kernel's servers send `hello\\n` with MSG_MORE and close, so it leaves with the FIN in one segment; smoltcp's server sends it and closes before its next poll, which also puts both in one segment".into()
    } else {
        "connection rate: every server sets TCP_NODELAY, writes `hello\\n` and closes; ustack and the kernel send the greeting at the write and the FIN at the close (two segments, as Linux), smoltcp's server writes and closes before its next poll, so both usually leave in one segment (--conn-more makes ustack and the kernel use MSG_MORE for the same)".into()
    });
    if let Some(us) = args.busy_poll {
        notes.push(format!(
            "--busy-poll {us}: ustack's servers busy-poll (SO_BUSY_POLL {us} µs on the listener, inherited by each connection: a blocked accept or read spins on the TAP, yielding the CPU between passes, up to {us} µs before it sleeps, or until it finds it was switched out) in the request/response and connection-rate figures; smoltcp's and the kernel's servers run as without it (the kernel's own SO_BUSY_POLL is not set on them)"
        ));
    }
    notes.push(format!(
        "pinned: the server process (all its threads) and the client thread on CPU {}; unpinned: wherever the scheduler puts them",
        args.cpu
    ));
    notes.push(format!(
        "concurrent: {} connections opened serially and held; accept rate = connections / (first connect .. server has accepted all); memory = growth of the server process's VmRSS from listening to holding them all, per connection (kernel memory is not in any RSS: n/a)",
        s.conns
    ));
    notes.push("every timed figure includes the connection set-up; bulk receiving ends when the server's byte count arrives, bulk sending at EOF".into());
    notes.push("ustack: --offload off (one wire frame per read/write, as smoltcp); ustack, offloads on: --offload auto, the TAP opened with IFF_VNET_HDR and TUN_F_CSUM|TUN_F_TSO4|TUN_F_TSO6 (64 KB TCP super-frames both ways over the bench's IPv4 connections, partial checksums); bulk figures only".into());

    let smoltcp_built = cfg!(feature = "smoltcp-peer");
    let mut columns = vec![Column::Ustack];
    if smoltcp_built {
        columns.push(Column::Smoltcp);
    }
    let kernel_cols = [Column::KernelOffloadsOff, Column::KernelOffloadsOn];
    let net_figs = [
        Figure::BulkRx,
        Figure::BulkTx,
        Figure::RrPinned,
        Figure::RrUnpinned,
        Figure::ConnRate,
        Figure::ConcurrentAccept,
    ];
    for f in Figure::ALL {
        if !OFFLOAD_FIGS.contains(&f) {
            let why = if INMEM_FIGS.contains(&f) {
                Absent::NotApplicable
            } else {
                Absent::Skipped("bulk figures only".into())
            };
            report.absent.insert((f, Column::UstackOffloadsOn), why);
        }
    }
    if !smoltcp_built {
        for f in Figure::ALL {
            report.absent.insert(
                (f, Column::Smoltcp),
                Absent::Skipped("built without the smoltcp-peer feature".into()),
            );
        }
    }
    for f in INMEM_FIGS.into_iter().chain([Figure::ConcurrentMemory]) {
        for c in kernel_cols {
            report.absent.insert((f, c), Absent::NotApplicable);
        }
    }
    if args.no_kernel {
        for f in net_figs {
            for c in kernel_cols {
                report
                    .absent
                    .insert((f, c), Absent::Skipped("--no-kernel".into()));
            }
        }
    }

    let mut lab = Lab::new(args.cpu, args.autotune, args.conn_more)?;
    lab.busy_poll = args.busy_poll;
    let t_start = Instant::now();
    // Every (figure, column) gets exactly one outcome per round, pushed in round order
    // (`Lab::run` returns a failure rather than nothing), so index i of ustack's and
    // smoltcp's outcomes is the same round: the report pairs them by index for its
    // per-round ratios. Within a round the two run one after the other for the same
    // figure (for the bulk figures ustack's offload column runs between them).
    for round in 0..s.rounds {
        // Alternate which user-space stack goes first.
        let mut order = columns.clone();
        order.insert(1, Column::UstackOffloadsOn);
        if round % 2 == 1 {
            order.reverse();
        }
        if !args.no_kernel {
            order.extend(kernel_cols);
        }
        for fig in net_figs.into_iter().filter(|&f| selected(f)) {
            for &col in &order {
                if col == Column::UstackOffloadsOn && !OFFLOAD_FIGS.contains(&fig) {
                    continue;
                }
                for (f, o) in lab.run(fig, col, &s) {
                    progress(Some(round), &s, f, col, &o);
                    report.results.entry((f, col)).or_default().push(o);
                }
            }
        }
        // In memory: per CPU second of the calling thread, bytes (Gbit/s) or connections.
        // They alternate which stack goes first too: the first run of a round pays for
        // pages and caches the second finds warm.
        let mut mem_order = columns.clone();
        if round % 2 == 1 {
            mem_order.reverse();
        }
        let inmem_figs = [Figure::InMemoryBulk, Figure::InMemoryConns];
        for f in inmem_figs.into_iter().filter(|&f| selected(f)) {
            for &col in &mem_order {
                let ustack = col == Column::Ustack;
                let r = if f == Figure::InMemoryBulk {
                    let n = s.inmem_size;
                    let t = if ustack {
                        inmem::ustack_bulk(n)
                    } else {
                        inmem::smoltcp_bulk(n)
                    };
                    t.map(|t| n as f64 * 8.0 / t.as_secs_f64() / 1e9)
                } else {
                    let n = s.inmem_conns;
                    let r = if ustack {
                        inmem::ustack_conns(n, args.conn_more)
                    } else {
                        inmem::smoltcp_conns(n)
                    };
                    r.map(|r| f64::from(n) / r.cpu.as_secs_f64())
                };
                let o = r.map_or_else(Outcome::Failed, Outcome::Value);
                progress(Some(round), &s, f, col, &o);
                report.results.entry((f, col)).or_default().push(o);
            }
        }
    }
    for (on, o) in &lab.offload_state {
        notes.push(format!(
            "veth offloads {} as read back: {o}",
            if *on { "on" } else { "off" }
        ));
    }
    notes.push("in-memory: two instances of the same stack in one thread, no device, virtual clock; Gbit/s per second of that thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so the machine's load matters less; checksums computed and verified by both stacks; the stacks alternate which runs first, as over the TAP".into());

    if selected(Figure::InMemoryConns) {
        notes.push(format!(
            "in-memory connections: {} serial connections per round between two instances of the same stack, as the connection-rate row (the server sets TCP_NODELAY where it can, writes `hello\\n` and closes; the client reads to EOF, checks the greeting, closes; {}; ustack's server keeps each connection in TIME-WAIT, smoltcp's pool of 16 listening sockets re-listens from it, as its `server` example); connections per second of the thread's CPU time, both ends' work together",
            s.inmem_conns,
            if args.conn_more {
                "with --conn-more ustack's server sends the greeting with MSG_MORE, so it leaves with the FIN in one segment, as smoltcp's"
            } else {
                "ustack's server sends the greeting and the FIN in two segments, smoltcp's in one, as over the TAP (--conn-more: one for both)"
            }
        ));
    }
    let cg = args
        .callgrind_size
        .unwrap_or(if args.quick { 1_000_000 } else { 4_000_000 });
    let cg_conns = args
        .callgrind_conns
        .unwrap_or(if args.quick { 500 } else { 2_000 });
    let cg_figs = [
        (Figure::InMemoryInstructions, InmemRun::Bulk(cg)),
        (
            Figure::InMemoryConnInstructions,
            InmemRun::Conns(u64::from(cg_conns)),
        ),
    ];
    let cg_figs: Vec<_> = cg_figs.into_iter().filter(|&(f, _)| selected(f)).collect();
    if cg_figs.is_empty() {
        // Left out of the table below.
    } else if args.no_callgrind || !valgrind_installed() {
        let why = if args.no_callgrind {
            "--no-callgrind"
        } else {
            "valgrind is not installed"
        };
        notes.push(format!("instruction counts skipped: {why}"));
        for &(f, _) in &cg_figs {
            for &c in &columns {
                report.absent.insert((f, c), Absent::Skipped(why.into()));
            }
        }
    } else {
        for &(f, run) in &cg_figs {
            notes.push(match run {
                InmemRun::Bulk(n) => format!(
                    "instructions per byte: callgrind's instruction count for moving {} minus that for {}, divided by {} (set-up cancels out); one run per size, counts barely vary",
                    report::human_bytes(2 * n),
                    report::human_bytes(n),
                    report::human_bytes(n)
                ),
                InmemRun::Conns(n) => format!(
                    "instructions per connection: callgrind's instruction count for {} in-memory connections minus that for {n}, divided by {n} (set-up cancels out; both ends' work); one run per count",
                    2 * n
                ),
            });
            let per = match run {
                InmemRun::Bulk(n) | InmemRun::Conns(n) => n,
            };
            let more = args.conn_more;
            for &col in &columns {
                let stack = if col == Column::Ustack {
                    "ustack"
                } else {
                    "smoltcp"
                };
                let o = callgrind_instructions(&lab.exe, stack, run, more)
                    .and_then(|one| {
                        let two = callgrind_instructions(&lab.exe, stack, run.doubled(), more)?;
                        Ok((one, two))
                    })
                    .and_then(|(one, two)| {
                        if two <= one {
                            return Err(format!("{two} instructions for 2N, {one} for N"));
                        }
                        Ok((two - one) as f64 / per as f64)
                    });
                let o = match o {
                    Ok(v) => Outcome::Value(v),
                    Err(e) => Outcome::Failed(e),
                };
                progress(None, &s, f, col, &o);
                report.results.entry((f, col)).or_default().push(o);
            }
        }
    }
    notes.push(format!(
        "total run time {:.0} s",
        t_start.elapsed().as_secs_f64()
    ));
    if !args.only.is_empty() {
        report.absent.retain(|(f, _), _| selected(*f));
        notes.push("--only: the figures not selected were not run".into());
    }
    report.notes = notes;
    drop(lab);
    if args.json {
        println!("{}", report.to_json()?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(if report.failures().is_empty() { 0 } else { 2 })
}

fn progress(round: Option<usize>, s: &Settings, f: Figure, c: Column, o: &Outcome) {
    let v = match o {
        Outcome::Value(v) => format!("{} {}", report::fmt_value(*v), f.unit()),
        Outcome::Failed(e) => format!("FAILED: {e}"),
    };
    let when = match round {
        Some(r) => format!("round {}/{}", r + 1, s.rounds),
        None => "once".into(),
    };
    eprintln!(
        "ustack bench: {when}: {} / {}: {v}",
        f.label(s),
        c.heading()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn only_names_select_the_connection_figures() {
        let inmem = Only::from_str("inmem-conn", false).expect("inmem-conn parses");
        let cg = Only::from_str("callgrind-conn", false).expect("callgrind-conn parses");
        for f in Figure::ALL {
            assert_eq!(inmem.covers(f), f == Figure::InMemoryConns, "{f:?}");
            assert_eq!(cg.covers(f), f == Figure::InMemoryConnInstructions, "{f:?}");
        }
        // The bulk selections stay as they were.
        assert!(!Only::Inmem.covers(Figure::InMemoryConns));
        assert!(!Only::Callgrind.covers(Figure::InMemoryConnInstructions));
    }

    #[test]
    fn quick_runs_fewer_connections() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let quick = Cli::parse_from(["t", "--quick"]).bench;
        let full = Cli::parse_from(["t"]).bench;
        assert_eq!(settings(&quick).inmem_conns, 2_000);
        assert_eq!(settings(&full).inmem_conns, 20_000);
        let set = Cli::parse_from(["t", "--quick", "--inmem-conns", "300"]).bench;
        assert_eq!(settings(&set).inmem_conns, 300);
        assert!(Cli::try_parse_from(["t", "--inmem-conns", "28001"]).is_err());
        assert!(Cli::try_parse_from(["t", "--callgrind-conns", "14001"]).is_err());
    }
}
