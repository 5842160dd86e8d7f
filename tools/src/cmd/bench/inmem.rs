//! In-memory bulk transfer and serial connections between two instances of one stack,
//! with no device, no threads and a virtual clock: the engine's own cost per byte and
//! per connection. Natively the transfer gives
//! Gbit/s per second of the thread's CPU time (not wall time, which on a loaded machine
//! mostly measures the scheduler); under `valgrind --tool=callgrind` (the hidden `bench-inmem` subcommand) it
//! gives instructions, and the difference between two sizes divided by the extra bytes
//! is the cost per byte without set-up.
//!
//! Both pairs: 1500-byte MTU, the socket buffers ustack's sockets start with by
//! default, fixed (ustack's autotuning off, as smoltcp has none),
//! checksums computed on send and verified on receipt (ustack always; smoltcp's default
//! `ChecksumCapabilities`), the clock advanced 100 µs per round, and in each round the
//! sender fills its buffer, every frame crosses, the receiver reads everything, and
//! every ACK crosses back. The receiver checks the byte pattern and the count. Both
//! applications copy data in once (the sender's buffer) and read it in place
//! (ustack's `recv_with`, smoltcp's `recv` closure), so each engine's own copies are
//! what differ.
//!
//! The connection loop (`--conns N`) mirrors the TAP's connection-rate row: N serial
//! connections, the server greets each with `hello\n` and closes, the client reads to
//! EOF, checks the greeting and closes, and every frame crosses, the final ACK
//! included. Natively it gives connections per second of CPU time, under callgrind
//! instructions; both count both ends. [`ustack_conns`] and [`smoltcp_conns`] say how
//! each stack's server takes connections and what happens to TIME-WAIT.

use super::pattern::{self, Pattern};
use clap::Args;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

/// CPU time the calling thread has used (CLOCK_THREAD_CPUTIME_ID): on a loaded machine
/// wall time measures the scheduler, CPU time the engine.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Rounds without progress after which a transfer counts as stuck.
const STALL_ROUNDS: u32 = 100_000;

/// Most serial connections in one run: one client port each from the 28,232 of the
/// ephemeral range (32768-60999), since the server keeps every 4-tuple in TIME-WAIT.
pub const MAX_CONNS: i64 = 28_000;

/// Options of the hidden `bench-inmem` subcommand.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["size", "conns"])))]
pub struct InmemArgs {
    /// Which stack: ustack or smoltcp.
    #[arg(long)]
    pub stack: String,
    /// Bytes to move (bulk transfer).
    #[arg(long)]
    pub size: Option<u64>,
    /// Serial connections to serve (connect, `hello\n`, close).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_CONNS))]
    pub conns: Option<u32>,
    /// With `--conns`, ustack's server sends the greeting with MSG_MORE, so that it
    /// leaves with the FIN (`ustack bench --conn-more`).
    #[arg(long)]
    pub more: bool,
}

/// Runs the hidden `bench-inmem` subcommand: one transfer or one series of
/// connections, one result line.
pub fn run(args: &InmemArgs) -> super::super::CmdResult {
    match (args.stack.as_str(), args.size, args.conns) {
        (stack @ ("ustack" | "smoltcp"), Some(size), _) => {
            let t = if stack == "ustack" {
                ustack_bulk(size)
            } else {
                smoltcp_bulk(size)
            }?;
            println!("moved {size} bytes in {:.6} s of CPU time", t.as_secs_f64());
        }
        (stack @ ("ustack" | "smoltcp"), None, Some(n)) => {
            let r = if stack == "ustack" {
                ustack_conns(n, args.more)
            } else {
                smoltcp_conns(n)
            }?;
            println!(
                "served {n} connections ({} frames) in {:.6} s of CPU time",
                r.frames,
                r.cpu.as_secs_f64()
            );
        }
        ("ustack" | "smoltcp", None, None) => return Err("--size or --conns is needed".into()),
        (other, _, _) => return Err(format!("unknown stack `{other}`").into()),
    }
    Ok(0)
}

/// Counts and checks what the receiver read.
struct Sink {
    off: u64,
    ok: bool,
}

impl Sink {
    fn take(&mut self, data: &[u8]) {
        self.ok &= pattern::check(self.off, data);
        self.off += data.len() as u64;
    }

    fn verdict(&self, size: u64) -> Result<(), String> {
        if !self.ok {
            return Err("broken byte pattern".into());
        }
        if self.off != size {
            return Err(format!("received {} of {size} bytes", self.off));
        }
        Ok(())
    }
}

/// One ustack host of the in-memory pairs: the simulator's lab address `10.0.0.n`, its
/// peer's MAC known in advance, the TCP buffers fixed.
fn ustack_host(n: u8, peer: u8) -> ustack::iface::Interface {
    let mut c = ustack::sim::lab_config(n, peer);
    // Fixed 128 KiB buffers, as smoltcp's side: with autotuning (the default) they
    // grow to megabytes on this link and the bulk row compares cache footprints
    // (0.93x and 0.98x smoltcp in two runs, against 1.17x and 1.10x fixed,
    // 2026-12-06). The TAP rows keep them fixed too, unless --autotune.
    c.tcp.rx_buffer_max = c.tcp.rx_buffer_len;
    c.tcp.tx_buffer_max = c.tcp.tx_buffer_len;
    ustack::iface::Interface::new(c, ustack::time::Instant::ZERO)
}

/// Every frame `from` has to send (after its due timers) goes into `to`; returns how
/// many frames crossed.
fn ustack_carry(
    from: &mut ustack::iface::Interface,
    to: &mut ustack::iface::Interface,
    now: ustack::time::Instant,
    buf: &mut [u8],
) -> usize {
    if from.poll_timeout().is_some_and(|t| t <= now) {
        from.handle_timeout(now);
    }
    let mut frames = 0;
    while let Some(n) = from.poll_transmit(now, buf) {
        to.handle_frame(now, &buf[..n]);
        frames += 1;
    }
    frames
}

/// Moves `size` bytes from one ustack interface to another; returns the CPU time taken.
///
/// # Errors
/// The handshake or the transfer stalled, or the data arrived wrong.
pub fn ustack_bulk(size: u64) -> Result<Duration, String> {
    use ustack::time::{Duration as UDuration, Instant as UInstant};

    let (mut a, mut b) = (ustack_host(1, 2), ustack_host(2, 1));
    let server = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5001));
    let l = b.tcp().socket();
    b.tcp()
        .listen(l, server, 4)
        .map_err(|e| format!("listen: {e:?}"))?;
    let c = a.tcp().socket();
    let cx = a.tcp_context(UInstant::ZERO);
    a.tcp()
        .connect(c, &cx, server)
        .map_err(|e| format!("connect: {e:?}"))?;
    let mut now = UInstant::ZERO;
    let mut frame = vec![0u8; 1514];
    let mut accepted = None;
    for _ in 0..8 {
        now += UDuration::from_millis(1);
        ustack_carry(&mut a, &mut b, now, &mut frame);
        ustack_carry(&mut b, &mut a, now, &mut frame);
        if let Ok((h, _)) = b.tcp().accept(l) {
            accepted = Some(h);
            break;
        }
    }
    let s = accepted.ok_or("handshake did not complete")?;
    let pat = Pattern::new();
    let mut sink = Sink { off: 0, ok: true };
    let (mut sent, mut idle) = (0u64, 0u32);
    let t0 = thread_cpu_time();
    while sink.off < size {
        now += UDuration::from_micros(100);
        while sent < size {
            match a.tcp().send(c, pat.slice(sent, size - sent)) {
                Ok(n) if n > 0 => sent += n as u64,
                _ => break,
            }
        }
        ustack_carry(&mut a, &mut b, now, &mut frame);
        let before = sink.off;
        // In place, as smoltcp's side below reads: neither engine copies data out.
        while let Ok(n) = b.tcp().recv_with(s, |data| {
            sink.take(data);
            data.len()
        }) {
            if n == 0 {
                break;
            }
        }
        ustack_carry(&mut b, &mut a, now, &mut frame);
        while a.tcp().poll_event().is_some() {}
        while b.tcp().poll_event().is_some() {}
        idle = if sink.off == before { idle + 1 } else { 0 };
        if idle > STALL_ROUNDS {
            return Err(format!("stalled at {} of {size} bytes", sink.off));
        }
    }
    let t = thread_cpu_time().saturating_sub(t0);
    sink.verdict(size)?;
    Ok(t)
}

/// smoltcp's side of the in-memory pairs: a device of frame queues that the harness
/// carries across by hand, and one interface with its sockets.
#[cfg(feature = "smoltcp-peer")]
mod smol_link {
    use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
    use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
    use smoltcp::socket::tcp;
    use smoltcp::time::Instant as SInstant;
    use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
    use std::collections::VecDeque;

    /// Frames waiting for the interface, frames it sent, buffers of frames it has
    /// read (handed back to the sender by `carry`), and buffers ready for sending.
    #[derive(Default)]
    pub struct Queues {
        rx: VecDeque<Vec<u8>>,
        tx: VecDeque<Vec<u8>>,
        used: Vec<Vec<u8>>,
        spare: Vec<Vec<u8>>,
    }
    pub struct Rx<'a>(Vec<u8>, &'a mut Vec<Vec<u8>>);
    pub struct Tx<'a>(&'a mut VecDeque<Vec<u8>>, &'a mut Vec<Vec<u8>>);
    impl phy::RxToken for Rx<'_> {
        fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
            let r = f(&self.0);
            // Recycled like ustack's side, so neither engine pays an allocation per frame.
            self.1.push(self.0);
            r
        }
    }
    impl phy::TxToken for Tx<'_> {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
            let mut buf = self.1.pop().unwrap_or_default();
            buf.clear();
            buf.resize(len, 0);
            let r = f(&mut buf);
            self.0.push_back(buf);
            r
        }
    }
    impl Device for Queues {
        type RxToken<'a> = Rx<'a>;
        type TxToken<'a> = Tx<'a>;
        fn receive(&mut self, _t: SInstant) -> Option<(Rx<'_>, Tx<'_>)> {
            let f = self.rx.pop_front()?;
            Some((Rx(f, &mut self.used), Tx(&mut self.tx, &mut self.spare)))
        }
        fn transmit(&mut self, _t: SInstant) -> Option<Tx<'_>> {
            Some(Tx(&mut self.tx, &mut self.spare))
        }
        fn capabilities(&self) -> DeviceCapabilities {
            let mut caps = DeviceCapabilities::default();
            caps.medium = Medium::Ethernet;
            caps.max_transmission_unit = 1514;
            caps
        }
    }

    /// One smoltcp host, `10.0.0.n`.
    pub struct End {
        pub iface: Interface,
        pub dev: Queues,
        pub sockets: SocketSet<'static>,
    }

    impl End {
        pub fn new(n: u8) -> End {
            let mut dev = Queues::default();
            let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress([
                2, 0, 0, 0, 0, n,
            ])));
            config.random_seed = u64::from(n);
            let mut iface = Interface::new(config, &mut dev, SInstant::ZERO);
            iface.update_ip_addrs(|a| {
                let _ = a.push(IpCidr::new(IpAddress::v4(10, 0, 0, n), 24));
            });
            End {
                iface,
                dev,
                sockets: SocketSet::new(Vec::new()),
            }
        }

        /// A TCP socket with the buffers ustack's sockets start with.
        pub fn add_socket(&mut self) -> SocketHandle {
            let cfg = ustack::socket::tcp::TcpConfig::default();
            self.sockets.add(tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; cfg.rx_buffer_len]),
                tcp::SocketBuffer::new(vec![0; cfg.tx_buffer_len]),
            ))
        }

        pub fn poll(&mut self, now: i64) {
            self.iface
                .poll(SInstant::from_micros(now), &mut self.dev, &mut self.sockets);
        }

        /// When the interface next needs a poll, in µs of the virtual clock.
        pub fn poll_at(&mut self, now: i64) -> Option<i64> {
            self.iface
                .poll_at(SInstant::from_micros(now), &self.sockets)
                .map(|t| t.total_micros())
        }

        pub fn sock(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
            self.sockets.get_mut::<tcp::Socket>(h)
        }
    }

    /// Moves `from`'s sent frames into `to`'s input, and the buffers `to` has read
    /// back to `from` for its next frames; returns how many frames crossed.
    pub fn carry(from: &mut End, to: &mut End) -> usize {
        let n = from.dev.tx.len();
        to.dev.rx.extend(from.dev.tx.drain(..));
        from.dev.spare.append(&mut to.dev.used);
        n
    }
}

/// Moves `size` bytes from one smoltcp interface to another; returns the CPU time taken.
///
/// # Errors
/// The handshake or the transfer stalled, or the data arrived wrong.
#[cfg(feature = "smoltcp-peer")]
pub fn smoltcp_bulk(size: u64) -> Result<Duration, String> {
    use smol_link::{carry, End};
    use smoltcp::socket::tcp;
    use smoltcp::wire::IpAddress;

    let (mut a, mut b) = (End::new(1), End::new(2));
    let (ha, hb) = (a.add_socket(), b.add_socket());
    b.sock(hb)
        .listen(5001)
        .map_err(|e| format!("listen: {e}"))?;
    let cx = a.iface.context();
    a.sockets
        .get_mut::<tcp::Socket>(ha)
        .connect(cx, (IpAddress::v4(10, 0, 0, 2), 5001), 49152)
        .map_err(|e| format!("connect: {e}"))?;
    let mut now = 0i64;
    for _ in 0..16 {
        now += 1000;
        a.poll(now);
        carry(&mut a, &mut b);
        b.poll(now);
        carry(&mut b, &mut a);
    }
    if b.sock(hb).state() != tcp::State::Established {
        return Err("handshake did not complete".into());
    }
    let pat = Pattern::new();
    let mut sink = Sink { off: 0, ok: true };
    let (mut sent, mut idle) = (0u64, 0u32);
    let t0 = thread_cpu_time();
    while sink.off < size {
        now += 100;
        while sent < size && a.sock(ha).can_send() {
            let n = a
                .sock(ha)
                .send(|buf| {
                    let src = pat.slice(sent, (size - sent).min(buf.len() as u64));
                    buf[..src.len()].copy_from_slice(src);
                    (src.len(), src.len())
                })
                .map_err(|e| format!("send: {e}"))?;
            sent += n as u64;
        }
        a.poll(now);
        carry(&mut a, &mut b);
        b.poll(now);
        let before = sink.off;
        while b.sock(hb).can_recv() {
            b.sock(hb)
                .recv(|buf| {
                    sink.take(buf);
                    (buf.len(), ())
                })
                .map_err(|e| format!("recv: {e}"))?;
        }
        b.poll(now);
        carry(&mut b, &mut a);
        a.poll(now);
        idle = if sink.off == before { idle + 1 } else { 0 };
        if idle > STALL_ROUNDS {
            return Err(format!("stalled at {} of {size} bytes", sink.off));
        }
    }
    let t = thread_cpu_time().saturating_sub(t0);
    sink.verdict(size)?;
    Ok(t)
}

/// The greeting the server of every connection sends, as the TAP row's servers do.
const GREETING: &[u8] = b"hello\n";

/// Virtual time per round of the connection loops (a connection takes a few rounds,
/// so tens of thousands of connections per virtual second).
const CONN_STEP_US: i64 = 10;

/// Rounds one connection may take before it counts as stuck.
const CONN_ROUNDS: u32 = 10_000;

/// Counts one more round of connection `i`; fails past [`CONN_ROUNDS`] (a stall).
fn next_round(rounds: &mut u32, i: u32) -> Result<(), String> {
    *rounds += 1;
    if *rounds > CONN_ROUNDS {
        return Err(format!(
            "connection {i}: not done after {CONN_ROUNDS} rounds"
        ));
    }
    Ok(())
}

/// Longest wait, in virtual µs, for a timer when a round moved nothing and the
/// connection is not done; a connection waiting longer counts as stuck (the next
/// deadline is then a TIME-WAIT expiry, not something this connection waits for).
const CONN_WAIT_US: i64 = 1_000_000;

/// What a series of in-memory connections took.
#[derive(Clone, Copy, Debug)]
pub struct ConnRun {
    /// CPU time of the calling thread.
    pub cpu: Duration,
    /// Frames that crossed, both ways.
    pub frames: u64,
}

/// What one client connection has read, checked against [`GREETING`] at EOF.
#[derive(Default)]
struct Greeting {
    buf: [u8; 16],
    len: usize,
}

impl Greeting {
    /// Room for the next read; an error once 16 bytes came without EOF.
    fn space(&mut self, conn: u32) -> Result<&mut [u8], String> {
        if self.len == self.buf.len() {
            return Err(format!(
                "connection {conn}: more than {} bytes without EOF",
                self.buf.len()
            ));
        }
        Ok(&mut self.buf[self.len..])
    }

    /// Whether EOF came after exactly the greeting.
    fn verdict(&self, conn: u32) -> Result<(), String> {
        let got = &self.buf[..self.len];
        if got == GREETING {
            Ok(())
        } else {
            Err(format!(
                "connection {conn}: read {:?} before EOF instead of \"hello\\n\"",
                String::from_utf8_lossy(got)
            ))
        }
    }
}

/// Serves `n` serial connections between two ustack interfaces; returns the CPU time
/// taken.
///
/// The client connects from a new socket each time (ustack picks the RFC 6056
/// ephemeral port, a different one per connection), the server accepts, sets
/// TCP_NODELAY, writes `hello\n` and closes; the client reads to EOF, checks the
/// greeting and closes. The server closes first, so it holds TIME-WAIT: 60 s of it
/// against tens of µs of virtual time per connection, so the entries pile up as on a
/// real server. A connection is over when the client's socket is gone (the server's
/// ACK of its FIN crossed); after the last, a round must move nothing.
///
/// With `more`, the server sends the greeting with MSG_MORE: it waits for the FIN and
/// leaves with it, one segment as smoltcp's server sends them (`--conn-more`).
///
/// # Errors
/// A call failed, a connection stalled, or a client read anything but `hello\n`.
pub fn ustack_conns(n: u32, more: bool) -> Result<ConnRun, String> {
    ustack_conns_with(n, GREETING, more)
}

fn ustack_conns_with(n: u32, greeting: &[u8], more: bool) -> Result<ConnRun, String> {
    use ustack::socket::tcp::RecvError;
    use ustack::time::{Duration as UDuration, Instant as UInstant};

    let (mut a, mut b) = (ustack_host(1, 2), ustack_host(2, 1));
    let any = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5001));
    let server = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5001));
    // As the TAP row's server: TcpListener::bind on 0.0.0.0 (SO_REUSEADDR), then
    // listen(2) with its backlog.
    let l = b.tcp().socket();
    b.tcp()
        .set_reuse_addr(l, true)
        .map_err(|e| format!("SO_REUSEADDR: {e:?}"))?;
    b.tcp()
        .listen(l, any, super::serve::BACKLOG as usize)
        .map_err(|e| format!("listen: {e:?}"))?;
    let mut now = UInstant::ZERO;
    let mut frame = vec![0u8; 1514];
    let (mut served, mut frames) = (0u32, 0u64);
    let t0 = thread_cpu_time();
    for i in 0..n {
        let c = a.tcp().socket();
        let cx = a.tcp_context(now);
        a.tcp()
            .connect(c, &cx, server)
            .map_err(|e| format!("connection {i}: connect: {e:?}"))?;
        let mut got = Greeting::default();
        let mut closed = false;
        let mut rounds = 0;
        loop {
            next_round(&mut rounds, i)?;
            now += UDuration::from_micros(CONN_STEP_US as u64);
            let moved_before = frames;
            frames += ustack_carry(&mut a, &mut b, now, &mut frame) as u64;
            // The server, as on the TAP: accept, TCP_NODELAY, write, close. The socket
            // API transmits the greeting from the writing thread before `write`
            // returns, so it leaves before the close: two segments, as Linux sends them.
            while let Ok((s, _)) = b.tcp().accept(l) {
                b.tcp()
                    .set_nodelay(s, true)
                    .map_err(|e| format!("connection {i}: TCP_NODELAY: {e:?}"))?;
                match b.tcp().send_more(s, greeting, more) {
                    Ok(k) if k == greeting.len() => {}
                    r => return Err(format!("connection {i}: server send: {r:?}")),
                }
                frames += ustack_carry(&mut b, &mut a, now, &mut frame) as u64;
                let cx = b.tcp_context(now);
                b.tcp()
                    .close(s, &cx)
                    .map_err(|e| format!("connection {i}: server close: {e:?}"))?;
                served += 1;
            }
            frames += ustack_carry(&mut b, &mut a, now, &mut frame) as u64;
            // The client, as the kernel's: read to EOF, then close.
            let mut just_closed = false;
            while !closed {
                match a.tcp().recv(c, got.space(i)?) {
                    Ok(0) => {
                        got.verdict(i)?;
                        let cx = a.tcp_context(now);
                        a.tcp()
                            .close(c, &cx)
                            .map_err(|e| format!("connection {i}: client close: {e:?}"))?;
                        (closed, just_closed) = (true, true);
                    }
                    Ok(k) => got.len += k,
                    Err(RecvError::WouldBlock) => break,
                    Err(e) => return Err(format!("connection {i}: client recv: {e:?}")),
                }
            }
            // What a host-loop round does with events and readiness: take them.
            for x in [&mut a, &mut b] {
                while x.tcp().poll_event().is_some() {}
                while x.tcp().poll_ready().is_some() {}
            }
            if closed && a.tcp().socket_count() == 0 {
                break;
            }
            if frames == moved_before && !just_closed {
                // Waiting for a timer (a delayed ACK, a retransmission): go to it.
                let next = [a.poll_timeout(), b.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min()
                    .filter(|&t| t <= now + UDuration::from_micros(CONN_WAIT_US as u64));
                match next {
                    Some(t) if t > now => now = t - UDuration::from_micros(CONN_STEP_US as u64),
                    Some(_) => {}
                    None => {
                        return Err(format!(
                            "connection {i}: stuck (client {:?}, greeting {} bytes)",
                            a.tcp().state(c),
                            got.len
                        ))
                    }
                }
            }
        }
    }
    let t = thread_cpu_time().saturating_sub(t0);
    now += UDuration::from_micros(CONN_STEP_US as u64);
    let left = ustack_carry(&mut a, &mut b, now, &mut frame)
        + ustack_carry(&mut b, &mut a, now, &mut frame);
    if left != 0 {
        return Err(format!(
            "{left} frames still moving after the last connection"
        ));
    }
    if served != n {
        return Err(format!("the server accepted {served} of {n} connections"));
    }
    Ok(ConnRun { cpu: t, frames })
}

/// Serves `n` serial connections between two smoltcp interfaces; returns the CPU time
/// taken.
///
/// As the TAP row's smoltcp server (`smol`): smoltcp has no accept, so the server keeps
/// a pool of [`smol::POOL`](super::smol::POOL) listening sockets and re-arms each one
/// that is not open, which includes TIME-WAIT, as smoltcp's `server` example does; a
/// greeted socket writes `hello\n` and closes before the next poll, so both usually
/// leave in one segment. The client reuses one socket (smoltcp connects from CLOSED),
/// from a new port each time, cycling through Linux's ephemeral range. A connection
/// is over when the client's socket is CLOSED (the server's ACK of its FIN crossed);
/// after the last, a round must move nothing.
///
/// # Errors
/// A call failed, a connection stalled, or a client read anything but `hello\n`.
#[cfg(feature = "smoltcp-peer")]
pub fn smoltcp_conns(n: u32) -> Result<ConnRun, String> {
    smoltcp_conns_with(n, GREETING)
}

#[cfg(feature = "smoltcp-peer")]
fn smoltcp_conns_with(n: u32, greeting: &[u8]) -> Result<ConnRun, String> {
    use smol_link::{carry, End};
    use smoltcp::socket::tcp::State;
    use smoltcp::wire::IpAddress;

    const PORT: u16 = 5001;
    /// Linux's default ephemeral ports (ip_local_port_range), as ustack's.
    const EPHEMERAL: (u16, u16) = (32768, 60999);
    let (mut a, mut b) = (End::new(1), End::new(2));
    let c = a.add_socket();
    let mut pool = Vec::with_capacity(super::smol::POOL);
    for _ in 0..super::smol::POOL {
        let h = b.add_socket();
        b.sock(h).listen(PORT).map_err(|e| format!("listen: {e}"))?;
        pool.push((h, false));
    }
    let span = u32::from(EPHEMERAL.1 - EPHEMERAL.0) + 1;
    let mut now = 0i64;
    let (mut served, mut frames) = (0u32, 0u64);
    let t0 = thread_cpu_time();
    for i in 0..n {
        let port = EPHEMERAL.0 + (i % span) as u16;
        let cx = a.iface.context();
        a.sockets
            .get_mut::<smoltcp::socket::tcp::Socket>(c)
            .connect(cx, (IpAddress::v4(10, 0, 0, 2), PORT), port)
            .map_err(|e| format!("connection {i}: connect: {e}"))?;
        let mut got = Greeting::default();
        let mut closed = false;
        let mut rounds = 0;
        loop {
            next_round(&mut rounds, i)?;
            now += CONN_STEP_US;
            let moved_before = frames;
            a.poll(now);
            frames += carry(&mut a, &mut b) as u64;
            b.poll(now);
            // The server, as `smol`'s: after a poll, re-arm and greet; poll again at
            // once if it queued anything.
            let mut busy = false;
            for (h, greeted) in pool.iter_mut() {
                let s = b.sock(*h);
                if !s.is_open() {
                    s.listen(PORT).map_err(|e| format!("listen: {e}"))?;
                    *greeted = false;
                }
                if !*greeted && s.may_send() {
                    match s.send_slice(greeting) {
                        Ok(k) if k == greeting.len() => {}
                        r => return Err(format!("connection {i}: server send: {r:?}")),
                    }
                    s.close();
                    *greeted = true;
                    served += 1;
                    busy = true;
                }
            }
            if busy {
                b.poll(now);
            }
            frames += carry(&mut b, &mut a) as u64;
            a.poll(now);
            // The client: read to EOF, then close.
            let s = a.sock(c);
            while !closed && s.can_recv() {
                let k = s
                    .recv_slice(got.space(i)?)
                    .map_err(|e| format!("connection {i}: client recv: {e}"))?;
                got.len += k;
            }
            let just_closed = !closed && !s.may_recv() && s.state() == State::CloseWait;
            if just_closed {
                got.verdict(i)?;
                s.close();
                closed = true;
            }
            if closed && s.state() == State::Closed {
                break;
            }
            if frames == moved_before && !just_closed {
                let next = [a.poll_at(now), b.poll_at(now)]
                    .into_iter()
                    .flatten()
                    .min()
                    .filter(|&t| t <= now + CONN_WAIT_US);
                match next {
                    Some(t) if t > now => now = t - CONN_STEP_US,
                    Some(_) => {}
                    None => {
                        return Err(format!(
                            "connection {i}: stuck (client {}, greeting {} bytes)",
                            a.sock(c).state(),
                            got.len
                        ))
                    }
                }
            }
        }
    }
    let t = thread_cpu_time().saturating_sub(t0);
    now += CONN_STEP_US;
    a.poll(now);
    let mut left = carry(&mut a, &mut b);
    b.poll(now);
    left += carry(&mut b, &mut a);
    if left != 0 {
        return Err(format!(
            "{left} frames still moving after the last connection"
        ));
    }
    if served != n {
        return Err(format!("the server greeted {served} of {n} connections"));
    }
    Ok(ConnRun { cpu: t, frames })
}

/// Without the `smoltcp-peer` feature there is no smoltcp to run.
///
/// # Errors
/// Always.
#[cfg(not(feature = "smoltcp-peer"))]
pub fn smoltcp_bulk(_size: u64) -> Result<Duration, String> {
    Err("built without the `smoltcp-peer` feature".into())
}

/// Without the `smoltcp-peer` feature there is no smoltcp to run.
///
/// # Errors
/// Always.
#[cfg(not(feature = "smoltcp-peer"))]
pub fn smoltcp_conns(_n: u32) -> Result<ConnRun, String> {
    Err("built without the `smoltcp-peer` feature".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ustack_moves_and_verifies_a_megabyte() {
        ustack_bulk(1_000_000).expect("ustack moves and verifies 1 MB");
    }

    #[cfg(feature = "smoltcp-peer")]
    #[test]
    fn smoltcp_moves_and_verifies_a_megabyte() {
        smoltcp_bulk(1_000_000).expect("smoltcp moves and verifies 1 MB");
    }

    #[test]
    fn ustack_serves_and_verifies_fifty_connections() {
        let r = ustack_conns(50, false).expect("ustack serves 50 connections, each reading hello");
        // SYN, SYN-ACK, ACK, the greeting, our FIN, the client's FIN, our ACK.
        assert_eq!(r.frames, 7 * 50);
        let r = ustack_conns(50, true).expect("the same with the greeting sent with MSG_MORE");
        // The greeting leaves with the FIN.
        assert_eq!(r.frames, 6 * 50);
    }

    #[cfg(feature = "smoltcp-peer")]
    #[test]
    fn smoltcp_serves_and_verifies_fifty_connections() {
        smoltcp_conns(50).expect("smoltcp serves 50 connections, each reading hello");
    }

    #[test]
    fn ustack_conns_fail_on_a_wrong_greeting() {
        let e = ustack_conns_with(3, b"hallo\n", false).expect_err("a wrong greeting fails");
        assert!(e.starts_with("connection 0: read \"hallo\\n\""), "{e}");
        let e = ustack_conns_with(3, b"hello", true).expect_err("a short greeting fails");
        assert!(e.starts_with("connection 0: read \"hello\""), "{e}");
    }

    #[cfg(feature = "smoltcp-peer")]
    #[test]
    fn smoltcp_conns_fail_on_a_wrong_greeting() {
        let e = smoltcp_conns_with(3, b"hallo\n").expect_err("a wrong greeting fails");
        assert!(e.starts_with("connection 0: read \"hallo\\n\""), "{e}");
        let e = smoltcp_conns_with(3, b"hello\n and more than sixteen bytes")
            .expect_err("a long greeting fails");
        assert!(e.starts_with("connection 0: more than 16 bytes"), "{e}");
    }

    #[test]
    fn the_greeting_check_wants_exactly_hello() {
        let mut g = Greeting::default();
        assert!(g.verdict(0).is_err(), "nothing read");
        g.space(0).expect("room")[..6].copy_from_slice(b"hello\n");
        g.len = 6;
        assert!(g.verdict(0).is_ok());
        g.len = 16;
        assert!(g.verdict(0).is_err(), "trailing bytes");
        assert!(g.space(7).expect_err("full").starts_with("connection 7:"));
    }

    #[test]
    fn the_sink_rejects_short_and_broken_streams() {
        let p = Pattern::new();
        let mut s = Sink { off: 0, ok: true };
        s.take(p.slice(0, 1000));
        assert!(s.verdict(1000).is_ok());
        assert!(s.verdict(2000).is_err());
        s.take(p.slice(5, 100));
        assert!(s.verdict(1100).is_err());
    }
}
