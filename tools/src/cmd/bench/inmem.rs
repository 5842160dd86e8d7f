//! In-memory bulk transfer between two instances of one stack, with no device, no
//! threads and a virtual clock: the engine's own cost per byte. Natively it gives
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

/// Options of the hidden `bench-inmem` subcommand.
#[derive(Debug, Args)]
pub struct InmemArgs {
    /// Which stack: ustack or smoltcp.
    #[arg(long)]
    pub stack: String,
    /// Bytes to move.
    #[arg(long)]
    pub size: u64,
}

/// Runs the hidden `bench-inmem` subcommand: one transfer, one result line.
pub fn run(args: &InmemArgs) -> super::super::CmdResult {
    let r = match args.stack.as_str() {
        "ustack" => ustack_bulk(args.size),
        "smoltcp" => smoltcp_bulk(args.size),
        other => Err(format!("unknown stack `{other}`")),
    };
    match r {
        Ok(t) => {
            println!(
                "moved {} bytes in {:.6} s of CPU time",
                args.size,
                t.as_secs_f64()
            );
            Ok(0)
        }
        Err(e) => Err(e.into()),
    }
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

/// Moves `size` bytes from one ustack interface to another; returns the CPU time taken.
///
/// # Errors
/// The handshake or the transfer stalled, or the data arrived wrong.
pub fn ustack_bulk(size: u64) -> Result<Duration, String> {
    use ustack::iface::Interface;
    use ustack::time::{Duration as UDuration, Instant as UInstant};

    fn host(n: u8, peer: u8) -> Interface {
        let mut c = ustack::sim::lab_config(n, peer);
        // Fixed 128 KiB buffers, as smoltcp's side below: with autotuning (the
        // default) they grow to megabytes on this link and the row compares cache
        // footprints (0.93x and 0.98x smoltcp in two runs, against 1.17x and 1.10x
        // fixed, 2026-12-06).
        c.tcp.rx_buffer_max = c.tcp.rx_buffer_len;
        c.tcp.tx_buffer_max = c.tcp.tx_buffer_len;
        Interface::new(c, UInstant::ZERO)
    }
    /// Every frame `from` has to send goes into `to`.
    fn carry(from: &mut Interface, to: &mut Interface, now: UInstant, buf: &mut [u8]) {
        if from.poll_timeout().is_some_and(|t| t <= now) {
            from.handle_timeout(now);
        }
        while let Some(n) = from.poll_transmit(now, buf) {
            to.handle_frame(now, &buf[..n]);
        }
    }

    let (mut a, mut b) = (host(1, 2), host(2, 1));
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
        carry(&mut a, &mut b, now, &mut frame);
        carry(&mut b, &mut a, now, &mut frame);
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
        carry(&mut a, &mut b, now, &mut frame);
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
        carry(&mut b, &mut a, now, &mut frame);
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

/// Moves `size` bytes from one smoltcp interface to another; returns the CPU time taken.
///
/// # Errors
/// The handshake or the transfer stalled, or the data arrived wrong.
#[cfg(feature = "smoltcp-peer")]
pub fn smoltcp_bulk(size: u64) -> Result<Duration, String> {
    use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
    use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
    use smoltcp::socket::tcp;
    use smoltcp::time::Instant as SInstant;
    use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
    use std::collections::VecDeque;

    /// Frames waiting for the interface, frames it sent, buffers of frames it has
    /// read (handed back to the sender by `carry`), and buffers ready for sending.
    #[derive(Default)]
    struct Queues {
        rx: VecDeque<Vec<u8>>,
        tx: VecDeque<Vec<u8>>,
        used: Vec<Vec<u8>>,
        spare: Vec<Vec<u8>>,
    }
    struct Rx<'a>(Vec<u8>, &'a mut Vec<Vec<u8>>);
    struct Tx<'a>(&'a mut VecDeque<Vec<u8>>, &'a mut Vec<Vec<u8>>);
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
    struct End {
        iface: Interface,
        dev: Queues,
        sockets: SocketSet<'static>,
        h: SocketHandle,
    }
    impl End {
        fn new(n: u8) -> End {
            let mut dev = Queues::default();
            let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress([
                2, 0, 0, 0, 0, n,
            ])));
            config.random_seed = u64::from(n);
            let mut iface = Interface::new(config, &mut dev, SInstant::ZERO);
            iface.update_ip_addrs(|a| {
                let _ = a.push(IpCidr::new(IpAddress::v4(10, 0, 0, n), 24));
            });
            let cfg = ustack::socket::tcp::TcpConfig::default();
            let mut sockets = SocketSet::new(Vec::new());
            let h = sockets.add(tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; cfg.rx_buffer_len]),
                tcp::SocketBuffer::new(vec![0; cfg.tx_buffer_len]),
            ));
            End {
                iface,
                dev,
                sockets,
                h,
            }
        }
        fn poll(&mut self, now: i64) {
            self.iface
                .poll(SInstant::from_micros(now), &mut self.dev, &mut self.sockets);
        }
        fn sock(&mut self) -> &mut tcp::Socket<'static> {
            self.sockets.get_mut::<tcp::Socket>(self.h)
        }
    }
    /// Moves `from`'s sent frames into `to`'s input, and the buffers `to` has read
    /// back to `from` for its next frames.
    fn carry(from: &mut End, to: &mut End) {
        to.dev.rx.extend(from.dev.tx.drain(..));
        from.dev.spare.append(&mut to.dev.used);
    }

    let (mut a, mut b) = (End::new(1), End::new(2));
    b.sock().listen(5001).map_err(|e| format!("listen: {e}"))?;
    let cx = a.iface.context();
    a.sockets
        .get_mut::<tcp::Socket>(a.h)
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
    if b.sock().state() != tcp::State::Established {
        return Err("handshake did not complete".into());
    }
    let pat = Pattern::new();
    let mut sink = Sink { off: 0, ok: true };
    let (mut sent, mut idle) = (0u64, 0u32);
    let t0 = thread_cpu_time();
    while sink.off < size {
        now += 100;
        while sent < size && a.sock().can_send() {
            let n = a
                .sock()
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
        while b.sock().can_recv() {
            b.sock()
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

/// Without the `smoltcp-peer` feature there is no smoltcp to run.
///
/// # Errors
/// Always.
#[cfg(not(feature = "smoltcp-peer"))]
pub fn smoltcp_bulk(_size: u64) -> Result<Duration, String> {
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
