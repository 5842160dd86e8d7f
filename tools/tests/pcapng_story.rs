//! `--pcap FILE.pcapng` tells the whole story: every frame the fault injector dropped,
//! duplicated, corrupted, delayed or held back is in the file with a comment saying
//! so, and every frame the stack dropped carries the reason. Built with the same
//! `ustack_socket::link::build_link` every host uses, on a memory link, fed the real frames of
//! `testdata/kernel_veth_ping_udp_tcp.pcap` plus garbage; counts must match the
//! injector's and the interface's counters exactly.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use ustack::iface::{Config, DropReason, Interface};
use ustack::link::{Direction, FaultConfig, Faults, Link, MemoryLink, PcapReader, PcapRecord};
use ustack::time::{Duration, Instant};
use ustack::wire::EthernetAddress;
use ustack_socket::link::{build_link, Clock, HostLink, LinkOptions};

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testdata/kernel_veth_ping_udp_tcp.pcap"
);

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ustack-story-{}-{name}", std::process::id()))
}

fn read_all(path: &Path) -> Vec<PcapRecord> {
    let mut r = PcapReader::new(BufReader::new(File::open(path).unwrap())).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        out.push(rec);
    }
    out
}

/// Frames the stack gets: the capture (both directions, so the kernel side's own frames
/// are "not for us"), repeated, and garbage.
fn input_frames() -> Vec<Vec<u8>> {
    let capture: Vec<Vec<u8>> = read_all(Path::new(CAPTURE))
        .into_iter()
        .map(|r| r.data)
        .collect();
    let mut frames = Vec::new();
    for _ in 0..20 {
        frames.extend(capture.iter().cloned());
        // Garbage: a runt, an unknown EtherType, an IPv4 header with a bad checksum.
        frames.push(vec![0x02, 0, 0, 0, 0]);
        let mut v6 = capture[0].clone();
        v6[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        frames.push(v6);
        let mut bad = capture
            .iter()
            .find(|f| f.len() > 34 && f[12..14] == [8, 0] && f[0..6] == [2, 0, 0, 0, 0, 0xb])
            .unwrap()
            .clone();
        bad[24] ^= 0xff;
        frames.push(bad);
    }
    frames
}

struct Run {
    records: Vec<PcapRecord>,
    iface: Interface,
    rx: ustack::link::fault::FaultCounters,
    tx: ustack::link::fault::FaultCounters,
}

fn run(path: &Path) -> Run {
    let (device, mut peer) = MemoryLink::pair(100_000);
    let faults = Faults {
        rx: FaultConfig {
            loss: 0.15,
            duplicate: 0.15,
            corrupt: 0.25,
            reorder: 0.1,
            reorder_depth: 2,
            ..FaultConfig::none()
        },
        tx: FaultConfig {
            loss: 0.15,
            duplicate: 0.15,
            corrupt: 0.15,
            delay: Duration::from_millis(3),
            ..FaultConfig::none()
        },
    };
    let opts = LinkOptions {
        pcap: Some(path.to_path_buf()),
        faults: Some(faults),
        seed: 7,
        ..LinkOptions::default()
    };
    let mut link = build_link(device, &opts, Clock::start().epoch_unix_micros()).unwrap();
    assert!(matches!(link, HostLink::PcapNg(_)));
    let mac = EthernetAddress([2, 0, 0, 0, 0, 0xb]);
    let mut config = Config::new(mac, "10.0.0.2/24".parse().unwrap());
    config.seed = 3;
    let mut iface = Interface::new(config, Instant::ZERO);
    let mut buf = [0u8; 1514];
    let mut now = Instant::ZERO;
    for frame in input_frames() {
        now += Duration::from_millis(1);
        peer.send(now, &frame).unwrap();
        iface.poll_link(now, &mut link).unwrap();
        while peer.recv(now, &mut buf).unwrap().is_some() {}
    }
    // Let delayed and held-back frames out.
    for _ in 0..100 {
        now += Duration::from_millis(10);
        iface.poll_link(now, &mut link).unwrap();
    }
    let rx = link.fault_counters(Direction::Rx);
    let tx = link.fault_counters(Direction::Tx);
    link.flush().unwrap();
    drop(link);
    Run {
        records: read_all(path),
        iface,
        rx,
        tx,
    }
}

fn count(records: &[PcapRecord], dir: Direction, needle: &str) -> u64 {
    records
        .iter()
        .filter(|r| r.direction == Some(dir))
        .flat_map(|r| &r.comments)
        .filter(|c| c.contains(needle))
        .count() as u64
}

/// Distinct injector frame numbers whose comment contains `needle`.
fn distinct_ids(records: &[PcapRecord], dir: Direction, needle: &str) -> u64 {
    let prefix = match dir {
        Direction::Rx => "fault injector rx frame ",
        Direction::Tx => "fault injector tx frame ",
    };
    let ids: HashSet<u64> = records
        .iter()
        .filter(|r| r.direction == Some(dir))
        .flat_map(|r| &r.comments)
        .filter(|c| c.contains(needle))
        .filter_map(|c| c.strip_prefix(prefix)?.split(':').next()?.parse().ok())
        .collect();
    ids.len() as u64
}

#[test]
fn pcapng_records_every_fault_and_every_stack_drop() {
    let path = tmp("story.pcapng");
    let Run {
        records,
        iface,
        rx,
        tx,
    } = run(&path);
    let c = iface.counters();

    // Every fault is there, not one more.
    assert!(
        rx.dropped_random > 10 && tx.dropped_random > 10,
        "{rx:?} {tx:?}"
    );
    assert_eq!(
        count(
            &records,
            Direction::Rx,
            "dropped (random loss); never reached the stack"
        ),
        rx.dropped_random
    );
    assert_eq!(
        count(&records, Direction::Tx, "dropped (random loss)"),
        tx.dropped_random
    );
    assert_eq!(
        count(
            &records,
            Direction::Rx,
            "duplicated (this is the extra copy)"
        ),
        rx.duplicated
    );
    assert_eq!(
        count(
            &records,
            Direction::Tx,
            "duplicated (the device got it twice)"
        ),
        tx.duplicated
    );
    assert_eq!(
        distinct_ids(&records, Direction::Rx, "corrupted: byte"),
        rx.corrupted
    );
    assert_eq!(
        distinct_ids(&records, Direction::Tx, "corrupted: byte"),
        tx.corrupted
    );
    assert_eq!(
        count(&records, Direction::Rx, "held back behind"),
        rx.reordered
    );
    // Every tx frame is delayed 3 ms; copies of duplicated frames say so separately.
    assert_eq!(
        count(&records, Direction::Tx, "; delayed 3.000ms")
            + count(&records, Direction::Tx, ": delayed 3.000ms"),
        tx.delayed - tx.duplicated
    );
    assert_eq!(
        count(&records, Direction::Tx, "copy delayed 3.000ms"),
        tx.duplicated
    );

    // Every frame: rx records = what the stack saw + what the injector dropped; tx
    // records = what the stack sent.
    let rx_records = records
        .iter()
        .filter(|r| r.direction == Some(Direction::Rx))
        .count() as u64;
    assert_eq!(rx_records, c.rx_frames + rx.dropped());
    assert_eq!(rx.passed, c.rx_frames);
    let tx_records = records
        .iter()
        .filter(|r| r.direction == Some(Direction::Tx))
        .count() as u64;
    assert_eq!(tx_records, c.tx_frames);
    assert_eq!(tx.received, c.tx_frames);

    // Every stack drop carries its reason, exactly as counted.
    let mut by_reason: HashMap<String, u64> = HashMap::new();
    for r in &records {
        for comment in &r.comments {
            if let Some(reason) = comment.strip_prefix("dropped by stack: ") {
                assert_eq!(r.direction, Some(Direction::Rx));
                *by_reason.entry(reason.to_string()).or_default() += 1;
            }
        }
    }
    for &reason in DropReason::ALL {
        assert_eq!(
            by_reason.get(&reason.to_string()).copied().unwrap_or(0),
            c.dropped(reason),
            "{reason}"
        );
    }
    assert!(c.dropped(DropReason::EthernetNotForUs) > 0);
    assert!(c.dropped(DropReason::EthernetTruncated) > 0);
    assert!(c.dropped(DropReason::Ipv4Checksum) > 0);
    // The whole story on one frame: corrupted by the injector, then dropped by the stack.
    assert!(records.iter().any(|r| {
        r.comments.iter().any(|c| c.contains("corrupted: byte"))
            && r.comments
                .iter()
                .any(|c| c.starts_with("dropped by stack: "))
    }));

    tshark_check(&path, &records);
    let _ = std::fs::remove_file(&path);
}

/// tshark reads the file, lists the same comments, and flags as malformed only frames
/// we corrupted or fed as garbage.
fn tshark_check(path: &Path, records: &[PcapRecord]) {
    if !ustack_tests::tool_available(
        "pcapng_records_every_fault_and_every_stack_drop (tshark part)",
        "tshark",
    ) {
        return;
    }
    let out = std::process::Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args([
            "-Y",
            "frame.comment",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "frame.comment",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("damaged") && !stderr.contains("corrupt"),
        "{stderr}"
    );
    let listed = String::from_utf8_lossy(&out.stdout);
    let commented = records.iter().filter(|r| !r.comments.is_empty()).count();
    assert_eq!(listed.lines().count(), commented);
    for line in listed.lines() {
        let (n, comments) = line.split_once('\t').unwrap();
        let rec = &records[n.parse::<usize>().unwrap() - 1];
        // tshark joins several comments with ','.
        assert_eq!(comments, rec.comments.join(","), "frame {n}");
    }
    let malformed = std::process::Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args(["-Y", "_ws.malformed", "-T", "fields", "-e", "frame.number"])
        .output()
        .unwrap();
    for n in String::from_utf8_lossy(&malformed.stdout).lines() {
        let rec = &records[n.parse::<usize>().unwrap() - 1];
        assert!(
            // Our garbage: runts and ARP bodies labelled IPv6.
            rec.data.len() < 14
                || rec.data[12..14] == [0x86, 0xdd]
                || rec.comments.iter().any(|c| c.contains("corrupted")),
            "frame {n} malformed for tshark: {:?}",
            rec.comments
        );
    }
}
