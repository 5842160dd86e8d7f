//! TCP bulk-transfer throughput over an in-memory pair (no loss, no delay), ustack ↔
//! ustack side by side with smoltcp ↔ smoltcp, and the receive cost of one in-order
//! data segment (frame in, data read, ACK out) on each.
//!
//! Both pairs use 256 KiB socket buffers, 1500-byte MTU, a virtual clock advanced
//! 100 µs per round, and an application that fills the sender's buffer and drains the
//! receiver's every round. Frames are copied once into recycled buffers on the "wire".
//!
//! Run: `cargo bench -p ustack --bench tcp` (criterion prints MiB/s and time per
//! segment; medians are what `docs/tcp.md` quotes).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::collections::VecDeque;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Bytes moved per measured iteration of the throughput benchmark.
const BULK: u64 = 4 << 20;
/// Data segments per measured batch of the receive-cost benchmark.
const SEGMENTS: usize = 64;
const BUFFER: usize = 256 * 1024;

/// What the benchmark needs from a connected pair of stacks (end 0 sends to end 1).
trait Pair {
    /// Advances the clock, lets the sender queue data and emit frames into `wire`.
    fn send_side(&mut self, wire: &mut Wire);
    /// Feeds `wire`'s frames to the receiver, reads the data, emits its ACKs into
    /// `acks`; returns bytes read.
    fn recv_side(&mut self, wire: &mut Wire, acks: &mut Wire) -> usize;
    /// Feeds the ACKs to the sender.
    fn ack_side(&mut self, acks: &mut Wire);
}

/// Frames in flight one way, with recycled buffers.
#[derive(Default)]
struct Wire {
    frames: VecDeque<Vec<u8>>,
    spare: Vec<Vec<u8>>,
}

impl Wire {
    fn push(&mut self, data: &[u8]) {
        let mut f = self.spare.pop().unwrap_or_default();
        f.clear();
        f.extend_from_slice(data);
        self.frames.push_back(f);
    }
    fn len(&self) -> usize {
        self.frames.len()
    }
}

/// One round trip of the bulk loop: send, receive, acknowledge. Returns bytes read.
fn round<P: Pair>(p: &mut P, wire: &mut Wire, acks: &mut Wire) -> usize {
    p.send_side(wire);
    let n = p.recv_side(wire, acks);
    p.ack_side(acks);
    n
}

mod us {
    use super::*;
    use ustack::iface::Interface;
    use ustack::socket::tcp::TcpHandle;
    use ustack::time::{Duration, Instant};

    pub struct UsPair {
        ends: [Interface; 2],
        conn: [TcpHandle; 2],
        now: Instant,
        buf: Vec<u8>,
        chunk: Vec<u8>,
        sink: Vec<u8>,
    }

    fn host(n: u8, peer: u8) -> Interface {
        let mut c = ustack::sim::lab_config(n, peer);
        c.tcp.rx_buffer_len = BUFFER;
        c.tcp.tx_buffer_len = BUFFER;
        Interface::new(c, Instant::ZERO)
    }

    impl UsPair {
        pub fn new() -> UsPair {
            let mut ends = [host(1, 2), host(2, 1)];
            let server =
                std::net::SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5001));
            let l = ends[1].tcp().socket();
            ends[1].tcp().listen(l, server, 4).unwrap();
            let c = ends[0].tcp().socket();
            let cx = ends[0].tcp_context(Instant::ZERO);
            ends[0].tcp().connect(c, &cx, server).unwrap();
            let mut p = UsPair {
                ends,
                conn: [c, c],
                now: Instant::ZERO,
                buf: vec![0; 1514],
                chunk: vec![0xa5; 64 * 1024],
                sink: vec![0; 64 * 1024],
            };
            let (mut a, mut b) = (Wire::default(), Wire::default());
            for _ in 0..4 {
                p.flush(0, &mut a);
                p.deliver(1, &mut a);
                p.flush(1, &mut b);
                p.deliver(0, &mut b);
            }
            p.conn[1] = p.ends[1].tcp().accept(l).expect("handshake done").0;
            p
        }

        fn flush(&mut self, i: usize, wire: &mut Wire) {
            let e = &mut self.ends[i];
            if e.poll_timeout().is_some_and(|t| t <= self.now) {
                e.handle_timeout(self.now);
            }
            while let Some(n) = e.poll_transmit(self.now, &mut self.buf) {
                wire.push(&self.buf[..n]);
            }
        }

        fn deliver(&mut self, i: usize, wire: &mut Wire) {
            while let Some(f) = wire.frames.pop_front() {
                self.ends[i].handle_frame(self.now, &f);
                wire.spare.push(f);
            }
        }
    }

    impl Pair for UsPair {
        fn send_side(&mut self, wire: &mut Wire) {
            self.now += Duration::from_micros(100);
            let c = self.conn[0];
            while self.ends[0].tcp().send(c, &self.chunk).is_ok() {}
            self.flush(0, wire);
        }

        fn recv_side(&mut self, wire: &mut Wire, acks: &mut Wire) -> usize {
            let s = self.conn[1];
            let mut read = 0;
            // Like smoltcp below (one poll takes the whole device queue): every frame
            // in, then one read of everything.
            while let Some(f) = wire.frames.pop_front() {
                self.ends[1].handle_frame(self.now, &f);
                wire.spare.push(f);
            }
            while let Ok(n) = self.ends[1].tcp().recv(s, &mut self.sink) {
                if n == 0 {
                    break;
                }
                read += n;
            }
            self.flush(1, acks);
            read
        }

        fn ack_side(&mut self, acks: &mut Wire) {
            self.deliver(0, acks);
            while self.ends[0].tcp().poll_event().is_some() {}
            while self.ends[1].tcp().poll_event().is_some() {}
        }
    }
}

mod smol {
    use super::*;
    use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
    use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
    use smoltcp::socket::tcp;
    use smoltcp::time::Instant;
    use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

    /// A device reading from and writing to [`Wire`]s.
    #[derive(Default)]
    pub struct WireDevice {
        pub rx: Wire,
        pub tx: Wire,
    }

    pub struct Rx(Vec<u8>);
    pub struct Tx<'a>(&'a mut Wire);

    impl phy::RxToken for Rx {
        fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
            f(&self.0)
        }
    }

    impl phy::TxToken for Tx<'_> {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
            let mut buf = self.0.spare.pop().unwrap_or_default();
            buf.clear();
            buf.resize(len, 0);
            let r = f(&mut buf);
            self.0.frames.push_back(buf);
            r
        }
    }

    impl Device for WireDevice {
        type RxToken<'a> = Rx;
        type TxToken<'a> = Tx<'a>;

        fn receive(&mut self, _t: Instant) -> Option<(Rx, Tx<'_>)> {
            let frame = self.rx.frames.pop_front()?;
            Some((Rx(frame), Tx(&mut self.tx)))
        }

        fn transmit(&mut self, _t: Instant) -> Option<Tx<'_>> {
            Some(Tx(&mut self.tx))
        }

        fn capabilities(&self) -> DeviceCapabilities {
            let mut caps = DeviceCapabilities::default();
            caps.medium = Medium::Ethernet;
            caps.max_transmission_unit = 1514;
            caps
        }
    }

    pub struct End {
        iface: Interface,
        dev: WireDevice,
        sockets: SocketSet<'static>,
        h: SocketHandle,
    }

    pub struct SmolPair {
        ends: [End; 2],
        now: i64,
        chunk: Vec<u8>,
        sink: Vec<u8>,
    }

    fn end(n: u8) -> End {
        let mut dev = WireDevice::default();
        let config = Config::new(HardwareAddress::Ethernet(EthernetAddress([
            2, 0, 0, 0, 0, n,
        ])));
        let mut iface = Interface::new(config, &mut dev, Instant::ZERO);
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::v4(10, 0, 0, n), 24)).unwrap();
        });
        let mut sockets = SocketSet::new(Vec::new());
        let s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; BUFFER]),
            tcp::SocketBuffer::new(vec![0; BUFFER]),
        );
        let h = sockets.add(s);
        End {
            iface,
            dev,
            sockets,
            h,
        }
    }

    impl End {
        fn poll(&mut self, now: i64) {
            self.iface
                .poll(Instant::from_micros(now), &mut self.dev, &mut self.sockets);
        }
        fn sock(&mut self) -> &mut tcp::Socket<'static> {
            self.sockets.get_mut::<tcp::Socket>(self.h)
        }
    }

    /// Moves `from`'s output into `to`'s input.
    fn carry(ends: &mut [End; 2], from: usize) {
        let (a, b) = ends.split_at_mut(1);
        let (src, dst) = if from == 0 {
            (&mut a[0], &mut b[0])
        } else {
            (&mut b[0], &mut a[0])
        };
        while let Some(f) = src.dev.tx.frames.pop_front() {
            dst.dev.rx.frames.push_back(f);
        }
        // Return buffers to the sender's spare list (they were its allocations).
        while src.dev.tx.spare.len() < 64 {
            match dst.dev.rx.spare.pop() {
                Some(b) => src.dev.tx.spare.push(b),
                None => break,
            }
        }
    }

    impl SmolPair {
        pub fn new() -> SmolPair {
            let mut ends = [end(1), end(2)];
            ends[1].sock().listen(5001).unwrap();
            let cx = ends[0].iface.context();
            let s = ends[0].sockets.get_mut::<tcp::Socket>(ends[0].h);
            s.connect(cx, (IpAddress::v4(10, 0, 0, 2), 5001), 49152)
                .unwrap();
            let mut p = SmolPair {
                ends,
                now: 0,
                chunk: vec![0xa5; 64 * 1024],
                sink: vec![0; 64 * 1024],
            };
            for _ in 0..10 {
                p.now += 100;
                p.ends[0].poll(p.now);
                carry(&mut p.ends, 0);
                p.ends[1].poll(p.now);
                carry(&mut p.ends, 1);
            }
            assert_eq!(p.ends[1].sock().state(), tcp::State::Established);
            p
        }
    }

    impl Pair for SmolPair {
        fn send_side(&mut self, wire: &mut Wire) {
            self.now += 100;
            let e = &mut self.ends[0];
            while e.sock().can_send() {
                if e.sock().send_slice(&self.chunk).unwrap_or(0) == 0 {
                    break;
                }
            }
            e.poll(self.now);
            while let Some(f) = e.dev.tx.frames.pop_front() {
                wire.frames.push_back(f);
            }
            while e.dev.tx.spare.len() < 64 {
                match wire.spare.pop() {
                    Some(b) => e.dev.tx.spare.push(b),
                    None => break,
                }
            }
        }

        fn recv_side(&mut self, wire: &mut Wire, acks: &mut Wire) -> usize {
            let e = &mut self.ends[1];
            let mut read = 0;
            // smoltcp consumes its device queue in one poll: hand it the whole batch.
            while let Some(f) = wire.frames.pop_front() {
                e.dev.rx.frames.push_back(f);
            }
            e.poll(self.now);
            while let Ok(n) = e.sock().recv_slice(&mut self.sink) {
                if n == 0 {
                    break;
                }
                read += n;
            }
            e.poll(self.now);
            while let Some(f) = e.dev.tx.frames.pop_front() {
                acks.frames.push_back(f);
            }
            while let Some(f) = e.dev.rx.frames.pop_front() {
                wire.spare.push(f);
            }
            read
        }

        fn ack_side(&mut self, acks: &mut Wire) {
            let e = &mut self.ends[0];
            while let Some(f) = acks.frames.pop_front() {
                e.dev.rx.frames.push_back(f);
            }
            e.poll(self.now);
        }
    }
}

fn run_bulk<P: Pair>(p: &mut P, wire: &mut Wire, acks: &mut Wire) {
    let mut moved = 0u64;
    while moved < BULK {
        moved += round(p, wire, acks) as u64;
    }
    black_box(moved);
}

fn bench_bulk(c: &mut Criterion) {
    let mut g = c.benchmark_group("tcp_bulk_transfer");
    g.throughput(Throughput::Bytes(BULK));
    g.sample_size(20);
    let (mut wire, mut acks) = (Wire::default(), Wire::default());
    let mut p = us::UsPair::new();
    g.bench_function("ustack", |b| {
        b.iter(|| run_bulk(&mut p, &mut wire, &mut acks))
    });
    let mut p = smol::SmolPair::new();
    g.bench_function("smoltcp", |b| {
        b.iter(|| run_bulk(&mut p, &mut wire, &mut acks))
    });
    g.finish();
}

/// Measures only the receiver's half of a round, per data segment: the sender's
/// frames are produced (untimed) until at least `SEGMENTS` wait on the wire; then the
/// receiver takes exactly `SEGMENTS` of them (timed: frame in, data read, ACKs out).
fn bench_segment_rx<P: Pair>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut p: P,
) {
    let (mut wire, mut acks, mut batch) = (Wire::default(), Wire::default(), Wire::default());
    for _ in 0..200 {
        round(&mut p, &mut wire, &mut acks);
    }
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                while wire.len() < SEGMENTS {
                    p.send_side(&mut wire);
                    if wire.len() < SEGMENTS {
                        // Window full: let the receiver catch up, untimed.
                        p.recv_side(&mut wire, &mut acks);
                        p.ack_side(&mut acks);
                    }
                }
                for _ in 0..SEGMENTS {
                    let f = wire.frames.pop_front().expect("frame");
                    batch.frames.push_back(f);
                }
                let t = std::time::Instant::now();
                let n = p.recv_side(&mut batch, &mut acks);
                total += t.elapsed();
                black_box(n);
                p.ack_side(&mut acks);
                wire.spare.append(&mut batch.spare);
            }
            total
        })
    });
}

fn bench_rx(c: &mut Criterion) {
    let mut g = c.benchmark_group("tcp_data_segment_receive");
    g.throughput(Throughput::Elements(SEGMENTS as u64));
    bench_segment_rx(&mut g, "ustack", us::UsPair::new());
    bench_segment_rx(&mut g, "smoltcp", smol::SmolPair::new());
    g.finish();
}

criterion_group!(benches, bench_bulk, bench_rx);
criterion_main!(benches);
