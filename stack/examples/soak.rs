//! Soak: many simulated connections opening, transferring and closing under random
//! faults for a given wall-clock time; every byte and every final state checked.
//!
//! Two interfaces on a [`SimNet`] link whose loss, duplication, reordering, corruption
//! and delay change at random every few simulated seconds. A client keeps `--conns`
//! connections open to an echo server on the other side; each sends a seeded stream of a
//! random length (up to `--max-len`), half-closes, reads the echo back byte-exact until
//! end of stream and closes; a finished connection is replaced at once. At the end the
//! client stops opening, the last transfers finish, timers run out, and every socket
//! must be freed: none on the client, only the listener on the server.
//!
//! ```text
//! cargo run --release -p ustack --example soak -- --secs 1800 --seed 7 --conns 64
//! ```
//!
//! Prints totals (connections, bytes verified, failures, simulated time, fault counters)
//! and the peak memory: the process's VmHWM and the peak of live heap bytes. Exit status
//! 1 on any lost or wrong byte, failed connection or socket left behind.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicIsize, Ordering};
use ustack::iface::Interface;
use ustack::link::FaultConfig;
use ustack::sim::tcp_app::{Pattern, Verifier};
use ustack::sim::{LinkConfig, SimNet, SimNode};
use ustack::socket::tcp::{RecvError, Shutdown, TcpHandle};
use ustack::time::{Duration, Instant};

/// Counts live heap bytes and their peak.
struct PeakAlloc;
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn note(delta: isize) {
    let now = LIVE.fetch_add(delta, Ordering::Relaxed) + delta;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: PeakAlloc = PeakAlloc;

const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 7);
const CHUNK: usize = 16 * 1024;

fn host(n: u8, peer: u8) -> Interface {
    Interface::new(ustack::sim::lab_config(n, peer), Instant::ZERO)
}

/// One client transfer.
struct Transfer {
    h: TcpHandle,
    pattern: Pattern,
    len: u64,
    sent: u64,
    shut: bool,
    verifier: Verifier,
}

#[derive(Default, Debug)]
struct Totals {
    opened: u64,
    completed: u64,
    failed: u64,
    bytes_verified: u64,
    failures: Vec<String>,
}

struct Client {
    iface: Interface,
    rng: ChaCha8Rng,
    transfers: Vec<Transfer>,
    target: usize,
    max_len: u64,
    opening: bool,
    totals: Totals,
    buf: Vec<u8>,
}

impl Client {
    fn drive(&mut self, now: Instant) {
        while self.opening && self.transfers.len() < self.target {
            let h = self.iface.tcp().socket();
            let cx = self.iface.tcp_context(now);
            if let Err(e) = self
                .iface
                .tcp()
                .connect(h, &cx, std::net::SocketAddr::V4(SERVER))
            {
                self.fail(format!("connect: {e:?}"));
                let _ = self.iface.tcp().abort(h);
                break;
            }
            let len = self.rng.gen_range(0..=self.max_len);
            let pattern = Pattern {
                seed: self.rng.gen(),
            };
            self.totals.opened += 1;
            self.transfers.push(Transfer {
                h,
                pattern,
                len,
                sent: 0,
                shut: false,
                verifier: Verifier::new(pattern, len),
            });
        }
        let mut i = 0;
        while i < self.transfers.len() {
            match self.service(i, now) {
                Ok(false) => i += 1,
                Ok(true) => {
                    let t = self.transfers.swap_remove(i);
                    self.totals.completed += 1;
                    self.totals.bytes_verified += t.verifier.received();
                }
                Err(e) => {
                    let t = self.transfers.swap_remove(i);
                    let _ = self.iface.tcp().abort(t.h);
                    self.fail(e);
                }
            }
        }
    }

    fn fail(&mut self, e: String) {
        self.totals.failed += 1;
        if self.totals.failures.len() < 10 {
            self.totals.failures.push(e);
        }
    }

    /// Moves one transfer forward; `Ok(true)` when it finished and was closed.
    fn service(&mut self, i: usize, now: Instant) -> Result<bool, String> {
        let t = &mut self.transfers[i];
        let tcp = self.iface.tcp();
        while t.sent < t.len {
            let n = ((t.len - t.sent) as usize).min(CHUNK);
            self.buf.resize(n, 0);
            t.pattern.fill(t.sent, &mut self.buf[..n]);
            match tcp.send(t.h, &self.buf[..n]) {
                Ok(k) if k > 0 => t.sent += k as u64,
                Ok(_) => break,
                Err(ustack::socket::tcp::SendError::WouldBlock) => break,
                Err(e) => return Err(format!("send: {e:?}")),
            }
        }
        if t.sent == t.len && !t.shut {
            match tcp.shutdown(t.h, Shutdown::Write) {
                Ok(()) => t.shut = true,
                Err(_) => return Ok(false),
            }
        }
        self.buf.resize(CHUNK, 0);
        loop {
            match tcp.recv(t.h, &mut self.buf) {
                Ok(0) => {
                    if !t.verifier.is_complete() {
                        return Err(format!(
                            "EOF after {} of {} bytes, first wrong byte {:?}",
                            t.verifier.received(),
                            t.len,
                            t.verifier.first_mismatch()
                        ));
                    }
                    let cx = self.iface.tcp_context(now);
                    let _ = self.iface.tcp().close(t.h, &cx);
                    return Ok(true);
                }
                Ok(n) => {
                    t.verifier.feed(&self.buf[..n]);
                    if let Some(at) = t.verifier.first_mismatch() {
                        return Err(format!("byte {at} of {} wrong", t.len));
                    }
                    if t.verifier.received() > t.len {
                        return Err(format!("{} bytes, {} sent", t.verifier.received(), t.len));
                    }
                }
                Err(RecvError::WouldBlock) => return Ok(false),
                Err(e) => return Err(format!("recv after {} bytes: {e:?}", t.verifier.received())),
            }
        }
    }
}

struct Server {
    iface: Interface,
    listener: TcpHandle,
    conns: Vec<TcpHandle>,
    buf: Vec<u8>,
    errors: u64,
}

impl Server {
    fn drive(&mut self, now: Instant) {
        while let Ok((h, _)) = self.iface.tcp().accept(self.listener) {
            self.conns.push(h);
        }
        let mut i = 0;
        while i < self.conns.len() {
            let h = self.conns[i];
            if self.echo(h, now) {
                self.conns.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Echoes what fits; closes at end of stream. Returns whether the connection is done.
    fn echo(&mut self, h: TcpHandle, now: Instant) -> bool {
        let tcp = self.iface.tcp();
        loop {
            let space = tcp.send_space(h).min(self.buf.len());
            if space == 0 {
                return false;
            }
            match tcp.recv(h, &mut self.buf[..space]) {
                Ok(0) => {
                    let cx = self.iface.tcp_context(now);
                    let _ = self.iface.tcp().close(h, &cx);
                    return true;
                }
                Ok(n) => {
                    if tcp.send(h, &self.buf[..n]) != Ok(n) {
                        self.errors += 1;
                    }
                }
                Err(RecvError::WouldBlock) => return false,
                Err(_) => {
                    // The client aborted (counted on its side): just let it go.
                    let cx = self.iface.tcp_context(now);
                    let _ = self.iface.tcp().close(h, &cx);
                    return true;
                }
            }
        }
    }
}

/// A node that runs its application after every frame and timer.
enum Node {
    Client(Box<Client>),
    Server(Box<Server>),
}

impl Node {
    fn iface(&mut self) -> &mut Interface {
        match self {
            Node::Client(c) => &mut c.iface,
            Node::Server(s) => &mut s.iface,
        }
    }
    fn drive(&mut self, now: Instant) {
        match self {
            Node::Client(c) => c.drive(now),
            Node::Server(s) => s.drive(now),
        }
        // Events are bounded; an application drains them.
        while self.iface().tcp().poll_event().is_some() {}
    }
}

impl SimNode for Node {
    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        self.iface().handle_frame(now, frame);
        self.drive(now);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.iface().handle_timeout(now);
        self.drive(now);
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.iface().poll_transmit(now, buf)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Node::Client(c) => c.iface.poll_timeout(),
            Node::Server(s) => s.iface.poll_timeout(),
        }
    }
}

fn random_faults(rng: &mut ChaCha8Rng) -> FaultConfig {
    FaultConfig {
        loss: rng.gen_range(0.0..0.03),
        duplicate: rng.gen_range(0.0..0.01),
        reorder: rng.gen_range(0.0..0.02),
        reorder_depth: rng.gen_range(1..4),
        corrupt: rng.gen_range(0.0..0.002),
        delay: Duration::from_micros(rng.gen_range(100..5000)),
        jitter: Duration::from_micros(rng.gen_range(0..1000)),
        ..FaultConfig::default()
    }
}

fn vm_hwm_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("usage: soak [--secs N (60)] [--seed N (1)] [--conns N (32)] [--max-len BYTES (262144)]");
        return;
    }
    let secs = arg(&args, "--secs", 60);
    let seed = arg(&args, "--seed", 1);
    let conns = arg(&args, "--conns", 32) as usize;
    let max_len = arg(&args, "--max-len", 256 * 1024);

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut net = SimNet::new(seed);
    let client = net.add_node(Node::Client(Box::new(Client {
        iface: host(1, 2),
        rng: ChaCha8Rng::seed_from_u64(seed ^ 0xc1),
        transfers: Vec::new(),
        target: conns,
        max_len,
        opening: true,
        totals: Totals::default(),
        buf: Vec::new(),
    })));
    let mut server_iface = host(2, 1);
    let listener = server_iface.tcp().socket();
    server_iface
        .tcp()
        .listen(listener, std::net::SocketAddr::V4(SERVER), 4096)
        .expect("listen");
    let server = net.add_node(Node::Server(Box::new(Server {
        iface: server_iface,
        listener,
        conns: Vec::new(),
        buf: vec![0; CHUNK],
        errors: 0,
    })));
    net.connect(client, server, LinkConfig::ideal())
        .expect("link");
    net.set_step_cap(u64::MAX);
    let start = std::time::Instant::now();
    let mut phases = 0u64;
    // Kick the client: it opens its first connections.
    if let Some(n) = net.node_mut::<Node>(client) {
        n.drive(Instant::ZERO);
    }
    while start.elapsed().as_secs() < secs {
        let faults = random_faults(&mut rng);
        net.set_faults(client, faults.clone(), FaultConfig::none())
            .expect("faults");
        net.set_faults(server, faults, FaultConfig::none())
            .expect("faults");
        phases += 1;
        net.run_for(Duration::from_secs(5));
    }
    // Wind down: no new connections, faults stay, the last transfers finish.
    if let Some(Node::Client(c)) = net.node_mut::<Node>(client) {
        c.opening = false;
    }
    let deadline = net.now() + Duration::from_secs(3600);
    let drained = net.run_until(
        deadline,
        |net| matches!(net.node::<Node>(client), Some(Node::Client(c)) if c.transfers.is_empty()),
    );
    // Every timer (TIME-WAIT, FIN-WAIT-2, retries) runs out.
    net.run_for(Duration::from_secs(600));
    let sim_secs = net.now().total_millis() as f64 / 1000.0;
    let (up, down) = net.link_counters(client).expect("counters");
    let (c_sockets, totals) = match net.node_mut::<Node>(client) {
        Some(Node::Client(c)) => (c.iface.tcp().socket_count(), std::mem::take(&mut c.totals)),
        _ => unreachable!("the client node"),
    };
    let (s_sockets, s_errors, s_counters) = match net.node_mut::<Node>(server) {
        Some(Node::Server(s)) => (
            s.iface.tcp().socket_count(),
            s.errors,
            s.iface.tcp().counters(),
        ),
        _ => unreachable!("the server node"),
    };
    println!(
        "soak: seed {seed}, {:.0} s wall, {sim_secs:.1} s simulated, {phases} fault phases, {} steps",
        start.elapsed().as_secs_f64(),
        net.steps()
    );
    println!(
        "connections: {} opened, {} completed, {} failed; {} bytes echoed and verified",
        totals.opened, totals.completed, totals.failed, totals.bytes_verified
    );
    println!("client link out: {up:?}");
    println!("client link in:  {down:?}");
    println!("server tcp counters: {s_counters:?}");
    println!(
        "sockets left: client {c_sockets} (want 0), server {s_sockets} (want 1: the listener); \
         transfers drained: {drained}"
    );
    println!(
        "peak memory: VmHWM {} KiB, live heap peak {} bytes, live heap now {} bytes",
        vm_hwm_kib().map_or("?".to_owned(), |k| k.to_string()),
        PEAK.load(Ordering::Relaxed),
        LIVE.load(Ordering::Relaxed)
    );
    for f in &totals.failures {
        println!("failure: {f}");
    }
    let ok = totals.failed == 0
        && s_errors == 0
        && drained
        && c_sockets == 0
        && s_sockets == 1
        && totals.completed == totals.opened;
    println!("{}", if ok { "PASS" } else { "FAIL" });
    if !ok {
        std::process::exit(1);
    }
}
