//! 1000 seeded garbage frames from the kernel side of the TAP: the stack stays up,
//! counts the drops, and still answers ping. Needs the interface.
//!
//! The seed is printed; set `USTACK_SEED=N` to replay one.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use ustack::link::Link;
use ustack::time::Instant;
use ustack::wire::{checksum, EthernetAddress};
use ustack_tests::{require_netns, Fixture, Options, PingOptions};

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
