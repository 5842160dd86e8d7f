//! 1000 seeded garbage frames from the kernel side of the TAP: the stack stays up,
//! counts the drops, and still answers ping. Needs the interface.
//!
//! The IPv6 test sends 1000 hostile IPv6 frames (random extension-header chains, lying
//! lengths, ICMPv6 and NDP with bad checksums and odd options, MLD, TCP/UDP over IPv6,
//! overlapping fragments). What it asserts holds whether the stack drops IPv6 or
//! speaks it: no panic, every frame received and counted, and afterwards an IPv4
//! ping and a TCP echo still work.
//!
//! The seed is printed; set `USTACK_SEED=N` to replay one.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::{Read, Write};
use std::time::Duration;
use ustack::link::Link;
use ustack::time::Instant;
use ustack::wire::{checksum, EthernetAddress};
use ustack_tests::{require_netns, tcp, Fixture, Options, PingOptions};

const FRAMES: usize = 1000;
const KERNEL_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];

/// An IPv4 header (20 bytes, checksum right unless damaged later) and payload.
fn ipv4(rng: &mut ChaCha8Rng, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&(rng.gen::<u16>()).to_be_bytes());
    p[8] = 64;
    p[9] = protocol;
    // Sources stay inside the namespace's subnet: any reply goes nowhere else.
    p[12..16].copy_from_slice(&[10, 77, 0, rng.gen_range(1..=254)]);
    p[16..20].copy_from_slice(&[10, 77, 0, 2]);
    let sum = checksum::of(&p[..20]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p[20..].copy_from_slice(payload);
    p
}

fn random_bytes(rng: &mut ChaCha8Rng, max: usize) -> Vec<u8> {
    let mut v = vec![0u8; rng.gen_range(0..=max)];
    rng.fill_bytes(&mut v);
    v
}

/// One hostile frame addressed to the stack; `kind` picks the flavour of damage.
fn garbage(rng: &mut ChaCha8Rng, kind: u32, dst: EthernetAddress) -> Vec<u8> {
    let (ethertype, payload): (u16, Vec<u8>) = match kind {
        // Random bytes under a random EtherType.
        0 => (rng.gen(), random_bytes(rng, 200)),
        // Truncated or random ARP, sometimes a valid-looking header with a bad opcode.
        1 => {
            let mut arp = random_bytes(rng, 40);
            if arp.len() >= 8 && rng.gen_bool(0.5) {
                arp[0..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
            }
            (0x0806, arp)
        }
        // IPv4 with a bad header checksum.
        2 => {
            let payload = random_bytes(rng, 100);
            let mut p = ipv4(rng, 1, &payload);
            p[10] ^= 0x5a;
            (0x0800, p)
        }
        // IPv4 whose total length lies (too long or shorter than the header).
        3 => {
            let payload = random_bytes(rng, 100);
            let mut p = ipv4(rng, 17, &payload);
            let lie: u16 = if rng.gen_bool(0.5) {
                rng.gen_range(p.len() as u16 + 1..=u16::MAX)
            } else {
                rng.gen_range(0..20)
            };
            p[2..4].copy_from_slice(&lie.to_be_bytes());
            p[10..12].copy_from_slice(&[0, 0]);
            let sum = checksum::of(&p[..20]);
            p[10..12].copy_from_slice(&sum.to_be_bytes());
            (0x0800, p)
        }
        // Bad version or header length, truncated headers.
        4 => {
            let payload = random_bytes(rng, 60);
            let mut p = ipv4(rng, 6, &payload);
            p[0] = [0x44, 0x46, 0x65, 0x4f, 0x40][rng.gen_range(0..5)];
            let cut = rng.gen_range(1..=p.len());
            p.truncate(cut);
            (0x0800, p)
        }
        // ICMP echo request with a bad checksum.
        5 => {
            let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
            icmp.extend(random_bytes(rng, 64));
            let sum = checksum::of(&icmp) ^ 0x0101;
            icmp[2..4].copy_from_slice(&sum.to_be_bytes());
            (0x0800, ipv4(rng, 1, &icmp))
        }
        // UDP with a lying length field and a random checksum.
        6 => {
            let data = random_bytes(rng, 64);
            let mut udp = vec![0u8; 8];
            udp[0..2].copy_from_slice(&rng.gen::<u16>().to_be_bytes());
            udp[2..4].copy_from_slice(&rng.gen::<u16>().to_be_bytes());
            udp[4..6].copy_from_slice(&rng.gen::<u16>().to_be_bytes());
            udp[6..8].copy_from_slice(&rng.gen::<u16>().to_be_bytes());
            udp.extend(data);
            (0x0800, ipv4(rng, 17, &udp))
        }
        // TCP shorter than its header, or with a random data offset.
        7 => {
            let tcp = random_bytes(rng, 30);
            (0x0800, ipv4(rng, 6, &tcp))
        }
        // Fragments: random offsets and flags, overlapping or past 65535.
        _ => {
            let payload = random_bytes(rng, 64);
            let mut p = ipv4(rng, 1, &payload);
            p[4..6].copy_from_slice(&[0x77, rng.gen_range(0..4)]);
            let frag: u16 = rng.gen::<u16>() & 0x3fff; // MF and offset, never DF
            p[6..8].copy_from_slice(&frag.to_be_bytes());
            p[10..12].copy_from_slice(&[0, 0]);
            let sum = checksum::of(&p[..20]);
            p[10..12].copy_from_slice(&sum.to_be_bytes());
            (0x0800, p)
        }
    };
    let mut frame = Vec::with_capacity(14 + payload.len());
    frame.extend_from_slice(&dst.0);
    frame.extend_from_slice(&KERNEL_MAC);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(&payload);
    frame
}

#[test]
fn kernel_garbage_frames_are_dropped_and_counted() {
    require_netns!();
    let seed: u64 = std::env::var("USTACK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("kernel_garbage: seed {seed} (replay with USTACK_SEED={seed})");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    let mut fx = Fixture::start(Options::default());
    fx.ping(PingOptions::new(1, 56)).assert_all_answered(1);
    let mut inject = fx.kernel_side_raw();
    let mut sent = 0u64;
    for i in 0..FRAMES {
        let frame = garbage(&mut rng, (i % 9) as u32, fx.mac);
        // The kernel refuses frames shorter than an Ethernet header; those do not count.
        if inject.send(Instant::ZERO, &frame).is_ok() {
            sent += 1;
        }
        if i % 50 == 49 {
            // Pace the flood so the TAP queue (not the stack) never has to drop.
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(fx.stack_running(), "the stack survived (seed {seed})");
    fx.ping(PingOptions::new(3, 56).interval(Duration::from_millis(50)))
        .assert_all_answered(3);

    let report = fx.stop();
    let c = report.iface.counters();
    assert!(sent >= 900, "only {sent} frames injected");
    assert!(
        report.link.rx_frames >= sent,
        "stack received {} of {sent} (seed {seed})",
        report.link.rx_frames
    );
    let reasons: Vec<_> = ustack::iface::DropReason::ALL
        .iter()
        .filter(|&&r| c.dropped(r) > 0)
        .map(|&r| format!("{r}={}", c.dropped(r)))
        .collect();
    eprintln!(
        "kernel_garbage: injected {sent}, received {}, dropped {}: {reasons:?}",
        report.link.rx_frames,
        c.total_dropped()
    );
    // Most of the garbage must be dropped; a few frames (e.g. a random UDP datagram
    // with a zero checksum, answered with port unreachable) may legitimately pass.
    assert!(
        c.total_dropped() >= sent * 8 / 10,
        "dropped {} of {sent} (seed {seed}): {reasons:?}",
        c.total_dropped()
    );
    assert!(
        reasons.len() >= 6,
        "drop reasons seen (seed {seed}): {reasons:?}"
    );
}

/// A link-local address of the namespace's link (the kernel side has IPv6 off, so
/// nothing but the stack answers); `host` picks the interface identifier.
fn link_local(host: u16) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0..2].copy_from_slice(&[0xfe, 0x80]);
    a[8..14].copy_from_slice(&[0x00, 0x5f, 0x00, 0xff, 0xfe, 0x00]);
    a[14..16].copy_from_slice(&host.to_be_bytes());
    a
}

/// The stack's EUI-64 link-local address (RFC 4291 App. A) from its MAC.
fn eui64(mac: EthernetAddress) -> [u8; 16] {
    let m = mac.0;
    let mut a = [0u8; 16];
    a[0..2].copy_from_slice(&[0xfe, 0x80]);
    a[8..16].copy_from_slice(&[m[0] ^ 2, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]);
    a
}

/// Checksum over the IPv6 pseudo-header (RFC 8200 §8.1) and `data`.
fn pseudo6(src: &[u8; 16], dst: &[u8; 16], nh: u8, data: &[u8]) -> u16 {
    let mut b = Vec::with_capacity(40 + data.len());
    b.extend_from_slice(src);
    b.extend_from_slice(dst);
    b.extend_from_slice(&(data.len() as u32).to_be_bytes());
    b.extend_from_slice(&[0, 0, 0, nh]);
    b.extend_from_slice(data);
    checksum::of(&b)
}

/// An ICMPv6 message with its checksum right.
fn icmp6(src: &[u8; 16], dst: &[u8; 16], t: u8, code: u8, rest: &[u8]) -> Vec<u8> {
    let mut m = vec![t, code, 0, 0];
    m.extend_from_slice(rest);
    let sum = pseudo6(src, dst, 58, &m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    m
}

/// An extension header: its number and its bytes, next-header byte left 0.
type Ext = (u8, Vec<u8>);

/// A random extension header.
fn random_ext(rng: &mut ChaCha8Rng) -> Ext {
    match rng.gen_range(0..5) {
        // Options with random types: the top bits of an unknown type ask for skip,
        // discard, or an ICMPv6 parameter problem (RFC 8200 §4.2).
        0 | 1 => {
            let units = rng.gen_range(0..3usize);
            let mut h = vec![0, units as u8];
            let mut opts = random_bytes(rng, 6 + units * 8);
            opts.resize(6 + units * 8, 1);
            h.extend(opts);
            (if rng.gen_bool(0.5) { 0 } else { 60 }, h)
        }
        // Routing header of any type (type 0 must be refused, RFC 5095).
        2 => {
            let n = rng.gen_range(0..3u8);
            let mut h = vec![
                0,
                n * 2,
                rng.gen_range(0..5),
                rng.gen_range(0..4),
                0,
                0,
                0,
                0,
            ];
            for _ in 0..n {
                h.extend_from_slice(&link_local(rng.gen()));
            }
            (43, h)
        }
        // A fragment header with a random offset and flag.
        3 => {
            let mut h = vec![0, 0];
            h.extend_from_slice(&rng.gen::<u16>().to_be_bytes());
            h.extend_from_slice(&rng.gen_range(0..8u32).to_be_bytes());
            (44, h)
        }
        // A header length that runs past the packet.
        _ => (rng.gen_range(0..2u8) * 60, vec![0, rng.gen_range(20..255)]),
    }
}

/// One hostile IPv6 frame addressed to the stack (or its multicast groups).
fn garbage6(rng: &mut ChaCha8Rng, kind: u32, stack_mac: EthernetAddress) -> Vec<u8> {
    let src = link_local(rng.gen_range(1..=1000));
    let us = eui64(stack_mac);
    let all_nodes = {
        let mut a = [0u8; 16];
        a[0] = 0xff;
        a[1] = 0x02;
        a[15] = 1;
        a
    };
    let dst = if rng.gen_bool(0.8) { us } else { all_nodes };
    let (nh, mut payload, mut exts): (u8, Vec<u8>, Vec<Ext>) = match kind {
        // Random bytes behind the fixed header.
        0 => (rng.gen(), random_bytes(rng, 200), Vec::new()),
        // A random chain of extension headers before random bytes.
        1 => {
            let exts = (0..rng.gen_range(1..5)).map(|_| random_ext(rng)).collect();
            (rng.gen(), random_bytes(rng, 64), exts)
        }
        // ICMPv6 echo request with a bad checksum.
        2 => {
            let mut m = icmp6(&src, &dst, 128, 0, &[0x12, 0x34, 0, 1, 0xaa, 0xbb]);
            m[2] ^= 0x5a;
            (58, m, Vec::new())
        }
        // NDP (NS, NA, RS, RA, redirect) with a right checksum and random options,
        // sometimes one of zero length (RFC 4861 §4.6: the packet must be dropped).
        3 => {
            let t = [133u8, 134, 135, 136, 137][rng.gen_range(0..5)];
            let mut rest = vec![0u8; 4];
            rng.fill_bytes(&mut rest);
            rest.extend_from_slice(&us);
            if t == 137 {
                rest.extend_from_slice(&src);
            }
            let mut opts = random_bytes(rng, 40);
            if opts.len() >= 2 && rng.gen_bool(0.3) {
                opts[1] = 0;
            }
            rest.extend(opts);
            (
                58,
                icmp6(&src, &dst, t, rng.gen_range(0..2), &rest),
                Vec::new(),
            )
        }
        // MLD queries and reports of any length.
        4 => {
            let t = [130u8, 131, 132, 143][rng.gen_range(0..4)];
            let rest = random_bytes(rng, 60);
            (
                58,
                icmp6(&src, &dst, t, 0, &rest),
                vec![(0, vec![0, 0, 5, 2, 0, 0, 1, 0])],
            )
        }
        // ICMPv6 errors quoting random bytes; packet too big with tiny MTUs.
        5 => {
            let t = rng.gen_range(1..=4u8);
            let mut rest = if t == 2 {
                (rng.gen_range(0..1400u32)).to_be_bytes().to_vec()
            } else {
                vec![0; 4]
            };
            rest.extend(random_bytes(rng, 80));
            (
                58,
                icmp6(&src, &dst, t, rng.gen_range(0..8), &rest),
                Vec::new(),
            )
        }
        // UDP over IPv6 with a zero or wrong checksum or a lying length.
        6 => {
            let mut udp = vec![0u8; 8];
            rng.fill_bytes(&mut udp);
            udp[2..4].copy_from_slice(&7u16.to_be_bytes());
            if rng.gen_bool(0.5) {
                udp[6..8].copy_from_slice(&[0, 0]);
            }
            udp.extend(random_bytes(rng, 64));
            (17, udp, Vec::new())
        }
        // TCP over IPv6: random header bytes to port 7 (the echo service).
        7 => {
            let mut t = random_bytes(rng, 40);
            if t.len() >= 4 {
                t[2..4].copy_from_slice(&7u16.to_be_bytes());
            }
            (6, t, Vec::new())
        }
        // Fragments: a few idents, random offsets (overlapping), random MF.
        _ => {
            let mut h = vec![0, 0];
            let off: u16 = rng.gen_range(0..64) * 8;
            h.extend_from_slice(&(off | u16::from(rng.gen_bool(0.7))).to_be_bytes());
            h.extend_from_slice(&rng.gen_range(0..4u32).to_be_bytes());
            (58, random_bytes(rng, 120), vec![(44, h)])
        }
    };
    // Chain the extension headers.
    let mut body = Vec::new();
    for i in 0..exts.len() {
        let next = exts.get(i + 1).map_or(nh, |e| e.0);
        exts[i].1[0] = next;
        body.extend_from_slice(&exts[i].1);
    }
    let first = exts.first().map_or(nh, |e| e.0);
    body.append(&mut payload);
    let mut len = body.len() as u16;
    if rng.gen_bool(0.1) {
        len = rng.gen();
    }
    let mut f = Vec::with_capacity(54 + body.len());
    if dst == us {
        f.extend_from_slice(&stack_mac.0);
    } else {
        f.extend_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    }
    f.extend_from_slice(&KERNEL_MAC);
    f.extend_from_slice(&0x86ddu16.to_be_bytes());
    // Version 6, or now and then another one.
    let version: u8 = if rng.gen_bool(0.95) {
        6
    } else {
        rng.gen_range(0..16)
    };
    f.extend_from_slice(&[version << 4, 0, 0, 0]);
    f.extend_from_slice(&len.to_be_bytes());
    f.push(first);
    f.push([255u8, 64, 1, 0][rng.gen_range(0..4)]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend(body);
    if rng.gen_bool(0.05) {
        let cut = rng.gen_range(15..=f.len());
        f.truncate(cut);
    }
    f
}

#[test]
fn kernel_garbage_ipv6_frames_leave_the_stack_answering() {
    require_netns!();
    let seed: u64 = std::env::var("USTACK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("kernel_garbage ipv6: seed {seed} (replay with USTACK_SEED={seed})");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    let (make, _stats) = tcp::echo_app(7);
    let mut fx = Fixture::start_with_app(Options::default(), make);
    fx.ping(PingOptions::new(1, 56)).assert_all_answered(1);
    let before = fx.call(|iface, _| iface.counters().total_dropped());
    let mut inject = fx.kernel_side_raw();
    let mut sent = 0u64;
    for i in 0..FRAMES {
        let frame = garbage6(&mut rng, (i % 9) as u32, fx.mac);
        if inject.send(Instant::ZERO, &frame).is_ok() {
            sent += 1;
        }
        if i % 50 == 49 {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(fx.stack_running(), "the stack survived (seed {seed})");
    fx.ping(PingOptions::new(3, 56).interval(Duration::from_millis(50)))
        .assert_all_answered(3);
    // TCP still works after the IPv6 garbage: echo 10 kB through port 7.
    let to: std::net::SocketAddr = format!("{}:7", fx.stack_ip).parse().expect("addr");
    let echoed = fx
        .peer(
            "tcp echo after ipv6 garbage",
            move || -> Result<Vec<u8>, String> {
                let mut s = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(3))
                    .map_err(|e| format!("connect: {e}"))?;
                s.set_read_timeout(Some(Duration::from_secs(3)))
                    .map_err(|e| e.to_string())?;
                let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
                s.write_all(&data).map_err(|e| format!("write: {e}"))?;
                let mut back = vec![0u8; data.len()];
                s.read_exact(&mut back).map_err(|e| format!("read: {e}"))?;
                Ok(back)
            },
        )
        .join(Duration::from_secs(10))
        .expect("TCP echo after the IPv6 garbage");
    assert!(echoed
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (i as u32 * 7) as u8));

    let report = fx.stop();
    let c = report.iface.counters();
    assert!(sent >= 900, "only {sent} frames injected");
    assert!(
        report.link.rx_frames >= sent,
        "stack received {} of {sent} (seed {seed})",
        report.link.rx_frames
    );
    let v6: Vec<_> = c
        .iter()
        .filter(|(layer, _, v)| *v > 0 && (layer.contains('6') || layer.contains("ndp")))
        .map(|(l, n, v)| format!("{l}.{n}={v}"))
        .collect();
    let reasons: Vec<_> = ustack::iface::DropReason::ALL
        .iter()
        .filter(|&&r| c.dropped(r) > 0)
        .map(|&r| format!("{r}={}", c.dropped(r)))
        .collect();
    eprintln!(
        "kernel_garbage ipv6: injected {sent}, received {}, dropped {} (before: {before}): {reasons:?}; ipv6 counters {v6:?}",
        report.link.rx_frames,
        c.total_dropped()
    );
    // Every hostile frame is accounted for somewhere: dropped with a reason, or (once
    // the stack speaks IPv6) handled and counted by its IPv6 layers.
    let handled: u64 = c
        .iter()
        .filter(|(layer, name, _)| {
            (layer.contains('6') || layer.contains("ndp")) && name.starts_with("rx")
        })
        .map(|(_, _, v)| v)
        .sum();
    assert!(
        c.total_dropped() - before + handled >= sent * 8 / 10,
        "dropped {} and counted {handled} IPv6 receptions of {sent} (seed {seed}): {reasons:?} {v6:?}",
        c.total_dropped() - before
    );
}
