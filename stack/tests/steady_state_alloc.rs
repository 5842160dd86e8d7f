//! Steady-state traffic must not allocate: buffers are recycled, not reallocated.
//!
//! A counting global allocator wraps the system one; after a warm-up that fills the
//! spare lists, thousands of pings and UDP datagrams go through the interface and the
//! count of allocations must not move. (Counts, not timings: this is deterministic.)

mod support;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use support::counting_alloc::{count_allocs, CountingAlloc};
use ustack::iface::{Config, Interface};
use ustack::link::PcapReader;
use ustack::socket::tcp::CongestionAlgorithm;
use ustack::time::Instant;
use ustack::wire::{EthernetAddress, Ipv4Cidr};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Frames of the repository capture, by index (see stack/src/wire/testdata.rs).
fn capture() -> Vec<Vec<u8>> {
    let bytes = include_bytes!("../../testdata/kernel_veth_ping_udp_tcp.pcap");
    PcapReader::new(&bytes[..])
        .unwrap()
        .map(|r| r.unwrap().data)
        .collect()
}

/// The stack plays 10.0.0.2 (02:00:00:00:00:0b), the capture's answering side.
fn iface() -> Interface {
    let mut c = Config::new(
        EthernetAddress([2, 0, 0, 0, 0, 0x0b]),
        Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 2), 24),
    );
    c.arp.gratuitous_at_start = false;
    Interface::new(c, Instant::ZERO)
}

fn run(
    iface: &mut Interface,
    frames: &[&[u8]],
    rounds: usize,
    buf: &mut [u8],
    t: &mut i64,
) -> usize {
    let mut sent = 0;
    for _ in 0..rounds {
        *t += 1000;
        let now = Instant::from_micros(*t);
        for f in frames {
            iface.handle_frame(now, f);
        }
        while iface.poll_transmit(now, buf).is_some() {
            sent += 1;
        }
    }
    sent
}

#[test]
fn ping_and_udp_paths_do_not_allocate_in_steady_state() {
    let frames = capture();
    let (arp, echo, frag1, frag2, udp) =
        (&frames[0], &frames[2], &frames[4], &frames[5], &frames[8]);
    let mut i = iface();
    let h = i.udp().socket();
    i.udp()
        .bind(
            h,
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5002)),
            &ustack::socket::LocalAddrs::v4(Ipv4Addr::new(10, 0, 0, 2)),
        )
        .unwrap();
    let mut buf = vec![0u8; 1514];
    let mut rx = [0u8; 64];
    let mut t = 0i64;
    let traffic: [&[u8]; 5] = [arp, echo, frag1, frag2, udp];

    // One round of traffic plus the UDP echo-back; the same body warms up and is measured.
    let mut round = |i: &mut Interface, t: &mut i64| -> usize {
        let mut sent = run(i, &traffic, 100, &mut buf, t);
        while let Ok((n, from)) = i.udp().recv_from(h, &mut rx, false) {
            let _ = i.udp().send_to(h, &rx[..n], Some(from));
        }
        while i
            .poll_transmit(Instant::from_micros(*t), &mut buf)
            .is_some()
        {
            sent += 1;
        }
        sent
    };
    // Warm-up: spare lists, queues and hash maps reach their working size.
    for _ in 0..5 {
        round(&mut i, &mut t);
    }
    let (sent, allocs) = count_allocs(|| {
        let mut sent = 0;
        for _ in 0..20 {
            sent += round(&mut i, &mut t);
        }
        sent
    });
    // 2000 rounds: an ARP reply, an echo reply, a 2-fragment reply and a UDP echo each.
    assert_eq!(sent, 2000 * 5);
    assert_eq!(
        allocs, 0,
        "allocations during {sent} frames of steady traffic"
    );
}

#[test]
fn the_counter_sees_allocations() {
    let (v, n) = count_allocs(|| std::hint::black_box(Vec::<u8>::with_capacity(100)));
    assert_eq!(n, 1);
    drop(v);
    let (_, n) = count_allocs(|| ());
    assert_eq!(n, 0);
}

/// Two interfaces joined by an in-memory wire whose frame buffers are recycled.
struct TcpPair {
    ends: [Interface; 2],
    wire: [std::collections::VecDeque<Vec<u8>>; 2],
    spare: Vec<Vec<u8>>,
    buf: Vec<u8>,
    now: Instant,
    /// Drop every n-th frame from end 0 to end 1 (0: none).
    drop_every: usize,
    count: usize,
}

impl TcpPair {
    fn new(alg: CongestionAlgorithm) -> TcpPair {
        let host = |n: u8, peer: u8| {
            let mut c = ustack::sim::lab_config(n, peer);
            c.tcp.congestion = alg;
            Interface::new(c, Instant::ZERO)
        };
        TcpPair {
            ends: [host(1, 2), host(2, 1)],
            wire: Default::default(),
            // The test's own wire: pre-sized so that only the stacks' allocations count.
            spare: (0..4096).map(|_| Vec::with_capacity(1514)).collect(),
            buf: vec![0; 1514],
            now: Instant::ZERO,
            drop_every: 0,
            count: 0,
        }
    }

    /// Moves frames until both ends are quiet; runs due timers first.
    fn pump(&mut self) -> usize {
        let mut moved = 0;
        for i in 0..2 {
            if self.ends[i].poll_timeout().is_some_and(|t| t <= self.now) {
                self.ends[i].handle_timeout(self.now);
            }
        }
        loop {
            let mut progress = false;
            for i in 0..2 {
                while let Some(n) = self.ends[i].poll_transmit(self.now, &mut self.buf) {
                    let mut f = self.spare.pop().unwrap_or_default();
                    f.clear();
                    f.extend_from_slice(&self.buf[..n]);
                    self.wire[i].push_back(f);
                    progress = true;
                }
            }
            for i in 0..2 {
                while let Some(f) = self.wire[1 - i].pop_front() {
                    self.count += 1;
                    let lost = i == 1 && self.drop_every > 0 && self.count % self.drop_every == 0;
                    if !lost {
                        self.ends[i].handle_frame(self.now, &f);
                    }
                    self.spare.push(f);
                    moved += 1;
                    progress = true;
                }
            }
            if !progress {
                return moved;
            }
        }
    }
}

#[test]
fn tcp_bulk_transfer_does_not_allocate_in_steady_state() {
    tcp_bulk(0, CongestionAlgorithm::Cubic);
}

/// BBR, without and with loss: rate samples live in the transmit log's records and
/// pacing is a deadline, so BBR allocates nothing either.
#[test]
fn tcp_bulk_transfer_with_bbr_does_not_allocate_in_steady_state() {
    tcp_bulk(0, CongestionAlgorithm::Bbr);
    tcp_bulk(97, CongestionAlgorithm::Bbr);
}

/// With every 97th data frame lost: out-of-order data, SACK blocks, the scoreboard
/// and fast recovery all run; a few allocations remain (see the bound below).
#[test]
fn tcp_bulk_transfer_with_loss_does_not_allocate_in_steady_state() {
    tcp_bulk(97, CongestionAlgorithm::Cubic);
}

fn tcp_bulk(drop_every: usize, alg: CongestionAlgorithm) {
    use ustack::socket::tcp::TcpEvent;
    let mut p = TcpPair::new(alg);
    p.drop_every = drop_every;
    let server = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5001);
    let l = p.ends[1].tcp().socket();
    p.ends[1]
        .tcp()
        .listen(l, SocketAddr::V4(server), 4)
        .unwrap();
    let c = p.ends[0].tcp().socket();
    let cx = p.ends[0].tcp_context(p.now);
    p.ends[0]
        .tcp()
        .connect(c, &cx, SocketAddr::V4(server))
        .unwrap();
    p.pump();
    let (s, _) = p.ends[1].tcp().accept(l).unwrap();
    let chunk = vec![0x5a_u8; 16 * 1024];
    let mut sink = vec![0u8; 64 * 1024];
    let mut received = 0u64;
    let mut segments = 0usize;
    // One round: 100 µs pass, the client fills its send buffer, frames flow, the server
    // reads everything, and the window update flows too.
    let mut round = |p: &mut TcpPair, received: &mut u64, segments: &mut usize| {
        p.now += ustack::time::Duration::from_micros(100);
        while p.ends[0].tcp().send(c, &chunk).is_ok() {}
        *segments += p.pump();
        while let Ok(n) = p.ends[1].tcp().recv(s, &mut sink) {
            if n == 0 {
                break;
            }
            *received += n as u64;
        }
        *segments += p.pump();
        for e in p.ends.iter_mut() {
            while let Some(ev) = e.tcp().poll_event() {
                if drop_every == 0 {
                    assert!(!matches!(ev, TcpEvent::Retransmit { .. }), "{ev:?}");
                }
            }
        }
    };
    // Warm-up: 1,000 rounds fill the spare lists, rings and timer heap.
    for _ in 0..1000 {
        round(&mut p, &mut received, &mut segments);
    }
    let warm = received;
    let ((), allocs) = count_allocs(|| {
        for _ in 0..2000 {
            round(&mut p, &mut received, &mut segments);
        }
    });
    let bytes = received - warm;
    // BBR paces. Here every flight is acknowledged at the instant it left, so each
    // send starts from an empty pipe and no rate sample has a non-zero interval (as in
    // Linux, which restarts the interval when nothing is in flight): it keeps its
    // initial pacing rate, 41 MB/s, which moves about 8 MB in these 200 ms.
    let least = if alg == CongestionAlgorithm::Bbr {
        4 << 20
    } else {
        20 << 20
    };
    assert!(bytes > least, "moved only {bytes} bytes");
    if drop_every > 0 {
        let info = p.ends[0].tcp().info(c).unwrap();
        assert!(info.bytes_retrans > 0, "losses were recovered: {info:?}");
    }
    assert_eq!(
        allocs, 0,
        "{allocs} allocations while moving {bytes} bytes of TCP in steady state"
    );
}
