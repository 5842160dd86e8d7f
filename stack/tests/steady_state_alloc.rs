//! Steady-state traffic must not allocate: buffers are recycled, not reallocated.
//!
//! A counting global allocator wraps the system one; after a warm-up that fills the
//! spare lists, thousands of pings and UDP datagrams go through the interface and the
//! count of allocations must not move. (Counts, not timings: this is deterministic.)

mod support;

use std::net::{Ipv4Addr, SocketAddrV4};
use support::counting_alloc::{count_allocs, CountingAlloc};
use ustack::iface::{Config, Interface};
use ustack::link::PcapReader;
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
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5002),
            Ipv4Addr::new(10, 0, 0, 2),
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
            let _ = i
                .udp()
                .send_to(h, &rx[..n], Some(from), Ipv4Addr::new(10, 0, 0, 2));
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
