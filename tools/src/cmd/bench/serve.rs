//! The server half of one `ustack bench` run, in a child process (`ustack --netns NS
//! --tap T --ip A --mac M bench-serve --server S --test T ...`), so each run starts from a
//! fresh process whose RSS is its own and which the coordinator can kill on a timeout.
//!
//! Protocol on stdout, one line each: `ready` once listening; for the concurrency test
//! `accepted N RSS_BEFORE_KIB RSS_AFTER_KIB`; last `done JSON` ([`ServeReport`]). The
//! coordinator closes the child's stdin when its client is finished; the child then
//! stops, reports and exits. Everything a server reads is verified and counted.

use super::client::pin_to;
use super::pattern::{self, Pattern};
use crate::global::GlobalArgs;
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Which server runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Server {
    /// ustack through its socket API on the TAP.
    Ustack,
    /// smoltcp 0.14 on the TAP, polled in the serving thread.
    Smoltcp,
    /// Linux sockets (for the veth reference).
    Kernel,
}

/// What the server does with each connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Test {
    /// Read to EOF checking the pattern, then write the count and a verdict.
    BulkRx,
    /// Write `--size` pattern bytes, then close.
    BulkTx,
    /// Answer each byte `b` with `b, !b` until EOF.
    Rr,
    /// Write `hello\n` and close, for every connection, until stopped.
    Conn,
    /// Accept `--conns` connections, write `+` on each, hold them until stopped.
    Concurrent,
}

/// Options of the hidden `bench-serve` subcommand (the device and address come from the
/// global `--tap`, `--ip` and `--mac`).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Which server.
    #[arg(long, value_enum)]
    pub server: Server,
    /// What to do.
    #[arg(long, value_enum)]
    pub test: Test,
    /// TCP port to listen on.
    #[arg(long)]
    pub port: u16,
    /// Bytes of a bulk transfer.
    #[arg(long, default_value_t = 0)]
    pub size: u64,
    /// Connections of the concurrency test.
    #[arg(long, default_value_t = 0)]
    pub conns: usize,
    /// Pin the process (and the threads it starts) to this CPU.
    #[arg(long)]
    pub pin: Option<usize>,
    /// ustack only: keep the socket buffers at their initial sizes (no autotuning), as
    /// smoltcp's are.
    #[arg(long)]
    pub fixed_buffers: bool,
    /// Connection rate: send the greeting with MSG_MORE (ustack and kernel servers), so
    /// the FIN carries it.
    #[arg(long)]
    pub more: bool,
    /// ustack only: SO_BUSY_POLL on the listener (so on every accepted connection), in
    /// microseconds.
    #[arg(long, value_name = "USEC")]
    pub busy_poll: Option<u32>,
}

/// The child's last line.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ServeReport {
    /// Bytes, round trips or connections served.
    pub count: u64,
    /// Why the server failed, if it did.
    pub error: Option<String>,
    /// ustack only: GSO super-frames received and TSO super-segments sent, so a column
    /// meant to run with offloads can tell that it did.
    #[serde(default)]
    pub offload_frames: Option<[u64; 2]>,
    /// ustack only: the largest receive and send buffers its TCP layer may autotune
    /// to (the initial sizes with `--fixed-buffers`), so the coordinator can tell that
    /// the column ran with the buffers its note names.
    #[serde(default)]
    pub buffers_max: Option<[usize; 2]>,
}

/// What the ustack server's interface counted of offloads (read before it stops).
static OFFLOAD_FRAMES: std::sync::Mutex<Option<[u64; 2]>> = std::sync::Mutex::new(None);

/// The ustack server's buffer maxima (see [`ServeReport::buffers_max`]).
static BUFFERS_MAX: std::sync::Mutex<Option<[usize; 2]>> = std::sync::Mutex::new(None);

/// Set when the coordinator closes stdin.
static STOP: AtomicBool = AtomicBool::new(false);

/// Whether the coordinator asked the server to stop.
pub fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Accept queue of the ustack and kernel listeners. A loaded machine can leave the
/// accepting thread unscheduled while the client completes hundreds of handshakes; with
/// std's 128 the queue overflows and a SYN waits a second for its retransmission.
pub const BACKLOG: i32 = 1024;

/// How long a blocking call waits before looking at [`stopped`] again.
pub const TICK: Duration = Duration::from_millis(100);

/// Resident memory of this process in KiB (VmRSS of /proc/self/status).
pub fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Prints one protocol line and flushes it.
pub fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs the hidden `bench-serve` subcommand.
pub fn run(global: &GlobalArgs, args: &ServeArgs) -> super::super::CmdResult {
    std::thread::spawn(|| {
        // Any outcome (EOF, error) means the coordinator is done with us.
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
        STOP.store(true, Ordering::Relaxed);
    });
    if let Some(cpu) = args.pin {
        // Before any stack thread exists, so the driver thread inherits the mask.
        pin_to(cpu).map_err(|e| format!("pin to CPU {cpu}: {e}"))?;
    }
    let result = match args.server {
        Server::Ustack => serve_ustack(global, args),
        Server::Kernel => serve_kernel(args),
        Server::Smoltcp => serve_smoltcp(global, args),
    };
    let offload_frames = *OFFLOAD_FRAMES.lock().unwrap_or_else(|e| e.into_inner());
    let buffers_max = *BUFFERS_MAX.lock().unwrap_or_else(|e| e.into_inner());
    let report = match result {
        Ok(count) => ServeReport {
            count,
            error: None,
            offload_frames,
            buffers_max,
        },
        Err(e) => ServeReport {
            count: 0,
            error: Some(e),
            offload_frames,
            buffers_max,
        },
    };
    say(&format!("done {}", serde_json::to_string(&report)?));
    Ok(0)
}

#[cfg(feature = "smoltcp-peer")]
fn serve_smoltcp(global: &GlobalArgs, args: &ServeArgs) -> Result<u64, String> {
    let tap = global.tap.as_deref().ok_or("bench-serve needs --tap")?;
    let ip = global.ip().ok_or("bench-serve needs --ip")?;
    let mac = global.mac.ok_or("bench-serve needs --mac")?;
    super::smol::serve(tap, ip, mac, args)
}

#[cfg(not(feature = "smoltcp-peer"))]
fn serve_smoltcp(_: &GlobalArgs, _: &ServeArgs) -> Result<u64, String> {
    Err("this ustack was built without the `smoltcp-peer` feature".into())
}

/// What the blocking servers need from a socket API (ustack's and the kernel's).
trait Listener {
    type Stream: Read + Write;
    /// Accepts one connection, or fails with WouldBlock/TimedOut after [`TICK`].
    fn accept(&self) -> io::Result<Self::Stream>;
    /// TCP_NODELAY and [`TICK`] timeouts on an accepted stream.
    fn prepare(&self, s: &Self::Stream) -> io::Result<()>;
    /// One send(2) of `data` with MSG_MORE.
    fn send_more(&self, s: &Self::Stream, data: &[u8]) -> io::Result<usize>;
}

struct UsListener(ustack_socket::TcpListener, ustack_socket::NetStack);

impl Listener for UsListener {
    type Stream = ustack_socket::TcpStream;
    fn accept(&self) -> io::Result<Self::Stream> {
        self.0.accept().map(|(s, _)| s)
    }
    fn prepare(&self, s: &Self::Stream) -> io::Result<()> {
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(TICK))?;
        s.set_write_timeout(Some(TICK))
    }
    fn send_more(&self, s: &Self::Stream, data: &[u8]) -> io::Result<usize> {
        Ok(self.1.send(s.fd(), data, ustack_socket::MSG_MORE)?)
    }
}

struct KernelListener(std::net::TcpListener);

impl Listener for KernelListener {
    type Stream = std::net::TcpStream;
    fn accept(&self) -> io::Result<Self::Stream> {
        self.0.accept().map(|(s, _)| s)
    }
    fn prepare(&self, s: &Self::Stream) -> io::Result<()> {
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(TICK))?;
        s.set_write_timeout(Some(TICK))
    }
    fn send_more(&self, s: &Self::Stream, data: &[u8]) -> io::Result<usize> {
        // SAFETY: send on the stream's live fd from a live slice of the given length.
        let n = unsafe {
            libc::send(
                s.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_MORE,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

fn serve_ustack(global: &GlobalArgs, args: &ServeArgs) -> Result<u64, String> {
    let tap = global.tap.as_deref().ok_or("bench-serve needs --tap")?;
    let ip = global.ip().ok_or("bench-serve needs --ip")?;
    let mac = global.mac.ok_or("bench-serve needs --mac")?;
    // `--offload` (or `--no-offload`) from the coordinator picks the column.
    let stack = ustack_socket::NetStack::builder()
        .tap(tap)
        .ip(ip)
        .mac(mac)
        .link_options(global.link_options())
        .config({
            let fixed = args.fixed_buffers;
            move |c| {
                if fixed {
                    c.tcp.rx_buffer_max = c.tcp.rx_buffer_len;
                    c.tcp.tx_buffer_max = c.tcp.tx_buffer_len;
                }
            }
        })
        .build()
        .map_err(|e| format!("ustack on {tap}: {e}"))?;
    let max = stack.with_interface(|iface, _| {
        let c = iface.tcp().config();
        [c.rx_buffer_max, c.tx_buffer_max]
    });
    *BUFFERS_MAX.lock().unwrap_or_else(|e| e.into_inner()) = Some(max);
    let l = ustack_socket::TcpListener::bind(&stack, ("0.0.0.0", args.port))
        .map_err(|e| format!("bind port {}: {e}", args.port))?;
    // listen(2) again raises the backlog from TcpListener's 128, as for the kernel.
    stack
        .listen(l.fd(), BACKLOG)
        .map_err(|e| format!("listen: {e}"))?;
    // accept honours SO_RCVTIMEO; TcpListener has no setter for it, the BSD call does.
    stack
        .setsockopt(l.fd(), ustack_socket::SockOpt::RcvTimeo(Some(TICK)))
        .map_err(|e| format!("SO_RCVTIMEO: {e}"))?;
    if let Some(us) = args.busy_poll {
        let us = i32::try_from(us).map_err(|_| format!("--busy-poll {us}: too large"))?;
        stack
            .setsockopt(l.fd(), ustack_socket::SockOpt::BusyPoll(us))
            .map_err(|e| format!("SO_BUSY_POLL: {e}"))?;
    }
    let res = serve_blocking(&UsListener(l, stack.clone()), args);
    if args.busy_poll.is_some() {
        // On stderr, which the coordinator passes through: how the spins went.
        let d = stack.driver_stats();
        eprintln!(
            "bench-serve: busy-poll: {} spins, {} passes, {} cut short by a switch-out, {} sleeps in ppoll, {} caller rounds",
            d.busy_polls, d.busy_passes, d.busy_preempted, d.leads, d.caller_rounds
        );
    }
    let frames = stack.with_interface(|iface, _| {
        let c = iface.counters();
        [c.offload_rx_gso_frames, c.offload_tx_tso_frames]
    });
    *OFFLOAD_FRAMES.lock().unwrap_or_else(|e| e.into_inner()) = Some(frames);
    res
}

fn serve_kernel(args: &ServeArgs) -> Result<u64, String> {
    let l = std::net::TcpListener::bind(("0.0.0.0", args.port))
        .map_err(|e| format!("bind port {}: {e}", args.port))?;
    // accept(2) honours SO_RCVTIMEO, which std does not expose for listeners.
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: TICK.as_micros() as libc::suseconds_t,
    };
    // SAFETY: setsockopt on the listener's live fd with a timeval of the given size.
    let rc = unsafe {
        libc::setsockopt(
            l.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(format!("SO_RCVTIMEO: {}", io::Error::last_os_error()));
    }
    // listen(2) again raises the backlog from std's 128.
    // SAFETY: listen on the listener's live fd.
    if unsafe { libc::listen(l.as_raw_fd(), BACKLOG) } != 0 {
        return Err(format!("listen: {}", io::Error::last_os_error()));
    }
    serve_blocking(&KernelListener(l), args)
}

fn is_tick(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn accept_one<L: Listener>(l: &L) -> Result<Option<L::Stream>, String> {
    loop {
        match l.accept() {
            Ok(s) => {
                l.prepare(&s).map_err(|e| format!("socket options: {e}"))?;
                return Ok(Some(s));
            }
            Err(e) if is_tick(&e) => {
                if stopped() {
                    return Ok(None);
                }
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    }
}

fn read_some<S: Read>(s: &mut S, buf: &mut [u8]) -> Result<usize, String> {
    loop {
        match s.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if is_tick(&e) => {
                if stopped() {
                    return Err("stopped by the coordinator mid-read".into());
                }
            }
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

fn write_all<S: Write>(s: &mut S, mut data: &[u8]) -> Result<(), String> {
    while !data.is_empty() {
        match s.write(data) {
            Ok(0) => return Err("write returned 0".into()),
            Ok(n) => data = &data[n..],
            Err(e) if is_tick(&e) => {
                if stopped() {
                    return Err("stopped by the coordinator mid-write".into());
                }
            }
            Err(e) => return Err(format!("write: {e}")),
        }
    }
    Ok(())
}

fn wait_for_stop() {
    while !stopped() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn serve_blocking<L: Listener>(l: &L, args: &ServeArgs) -> Result<u64, String> {
    let rss0 = vm_rss_kib();
    say("ready");
    let none = || "stopped before a connection arrived".to_string();
    match args.test {
        Test::BulkRx => {
            let mut s = accept_one(l)?.ok_or_else(none)?;
            let mut buf = vec![0u8; 256 * 1024];
            let (mut off, mut ok) = (0u64, true);
            loop {
                let n = read_some(&mut s, &mut buf)?;
                if n == 0 {
                    break;
                }
                ok &= pattern::check(off, &buf[..n]);
                off += n as u64;
            }
            let mut verdict = [0u8; 9];
            verdict[..8].copy_from_slice(&off.to_le_bytes());
            verdict[8] = u8::from(ok);
            write_all(&mut s, &verdict)?;
            drop(s);
            wait_for_stop();
            if !ok {
                return Err("broken byte pattern".into());
            }
            Ok(off)
        }
        Test::BulkTx => {
            let mut s = accept_one(l)?.ok_or_else(none)?;
            let pat = Pattern::new();
            let mut off = 0u64;
            while off < args.size {
                let chunk = pat.slice(off, args.size - off);
                write_all(&mut s, chunk)?;
                off += chunk.len() as u64;
            }
            drop(s);
            wait_for_stop();
            Ok(off)
        }
        Test::Rr => {
            let mut s = accept_one(l)?.ok_or_else(none)?;
            let (mut buf, mut out) = ([0u8; 64], Vec::with_capacity(128));
            let mut n = 0u64;
            loop {
                let got = read_some(&mut s, &mut buf)?;
                if got == 0 {
                    break;
                }
                out.clear();
                for &b in &buf[..got] {
                    out.extend_from_slice(&[b, !b]);
                }
                write_all(&mut s, &out)?;
                n += got as u64;
            }
            drop(s);
            wait_for_stop();
            Ok(n)
        }
        Test::Conn => {
            let mut n = 0u64;
            while let Some(mut s) = accept_one(l)? {
                if args.more {
                    // One try: six bytes always fit an empty send buffer.
                    match l.send_more(&s, b"hello\n") {
                        Ok(6) => {}
                        Ok(k) => return Err(format!("MSG_MORE send took {k} of 6 bytes")),
                        Err(e) => return Err(format!("send: {e}")),
                    }
                } else {
                    write_all(&mut s, b"hello\n")?;
                }
                n += 1;
            }
            Ok(n)
        }
        Test::Concurrent => {
            let mut held = Vec::with_capacity(args.conns);
            while held.len() < args.conns {
                let Some(mut s) = accept_one(l)? else {
                    return Err(format!(
                        "stopped after {} of {} connections",
                        held.len(),
                        args.conns
                    ));
                };
                write_all(&mut s, b"+")?;
                held.push(s);
            }
            let rss1 = vm_rss_kib();
            say(&format!("accepted {} {rss0} {rss1}", held.len()));
            wait_for_stop();
            Ok(held.len() as u64)
        }
    }
}
