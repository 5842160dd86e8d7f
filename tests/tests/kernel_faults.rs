//! Fault injection and packet study against the Linux kernel, inside a namespace each
//! test creates: the stack's link wrapped in the seeded `FaultInjector` exactly as
//! `ustack --loss ... --seed N` does (`Options::faults`), kernel peers in Rust on
//! threads inside the namespace (echo client, raw-socket ping), and the captures read
//! back with `ustack dump`'s decoder and `ustack plot`'s time-sequence analysis (the
//! `ustack-capture` crate, without its plotting).
//!
//! What "replay" means with a real kernel peer: the injector decides a frame's fate
//! from the seed and the frame's position in its direction (frame 0, 1, 2, ...), never
//! from the clock. With a kernel on the other side the frames themselves differ
//! between runs (timers, ACK pacing), so we assert that the *fate sequence by frame
//! index* is the same for the same seed, not that the same packets are lost. When the
//! inputs are the same (ping answered in order), the totals are identical too.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;
use ustack::iface::DropReason;
use ustack::link::fault::{FaultAction, FaultConfig, FaultEvent};
use ustack::link::{Direction, Faults};
use ustack_capture::analysis::SeqMode;
use ustack_capture::dump_fmt::{one_line, TimeStyle};
use ustack_capture::timeseq::{self, ConnSelect};
use ustack_tests::tcp;
use ustack_tests::{peer, require_netns, FaultReport, Fixture, Options, PingOptions};

const MB: u64 = 1_000_000;

/// Printed even when the test runner captures output.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn loss(p: f64) -> Faults {
    Faults::both(FaultConfig {
        loss: p,
        ..FaultConfig::default()
    })
}

fn echo_fixture(opts: Options) -> Fixture {
    let (make, _stats) = tcp::echo_app(7);
    Fixture::start_with_app(opts, make)
}

/// The kernel sends `len` bytes to the echo service and reads them back; asserts both
/// lengths and that the SHA-256 of what came back equals that of what was sent.
/// Returns the seconds the kernel side measured.
fn kernel_echo(fx: &Fixture, len: u64, timeout: Duration) -> f64 {
    let to = format!("{}:7", fx.stack_ip).parse().expect("addr");
    let t = fx
        .peer("echo client", move || peer::echo_client(to, len, 0xec40))
        .join(timeout)
        .expect("kernel echo client");
    assert_eq!(t.received, len, "bytes echoed back");
    assert_eq!(
        t.sent_sha256, t.received_sha256,
        "SHA-256 of sent vs echoed"
    );
    t.elapsed.as_secs_f64()
}

/// One frame's fate, from the fate log: `x` dropped, `c` corrupted, `d` duplicated,
/// `r` held back (reordered), `.` delivered untouched.
fn fates(events: &[FaultEvent], direction: Direction) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    for e in events.iter().filter(|e| e.direction == direction) {
        let i = e.frame_id as usize;
        if out.len() <= i {
            out.resize(i + 1, b'?');
        }
        let mark = match e.action {
            FaultAction::Dropped(_) => b'x',
            FaultAction::Corrupted { .. } => b'c',
            FaultAction::Duplicated => b'd',
            FaultAction::Reordered { .. } => b'r',
            FaultAction::Delayed { .. } => continue,
            FaultAction::Delivered => b'.',
        };
        // The first decision wins; `Delivered` only marks frames nothing else touched.
        if out[i] == b'?' {
            out[i] = mark;
        }
    }
    out
}

fn dropped_in(f: &[u8]) -> usize {
    f.iter().filter(|&&c| c == b'x').count()
}

/// One lossy echo run with the fate log on; returns (rx fates, tx fates, report).
fn lossy_echo_run(seed: u64, p: f64, len: u64) -> (Vec<u8>, Vec<u8>, FaultReport) {
    let mut fx = echo_fixture(Options {
        seed,
        faults: Some(loss(p)),
        fault_log: 1 << 16,
        ..Options::default()
    });
    kernel_echo(&fx, len, Duration::from_secs(300));
    fx.stop();
    let r = fx.fault_report().clone();
    assert_eq!(r.events_lost, 0, "fate log overflowed");
    let (rx, tx) = (
        fates(&r.events, Direction::Rx),
        fates(&r.events, Direction::Tx),
    );
    assert!(
        !rx.contains(&b'?') && !tx.contains(&b'?'),
        "a frame without a fate"
    );
    assert_eq!(rx.len() as u64, r.rx.received);
    assert_eq!(tx.len() as u64, r.tx.received);
    (rx, tx, r)
}

#[test]
fn kernel_faults_loss_10_percent_seed_7_echo_10mb_byte_exact() {
    require_netns!();
    let mut fx = echo_fixture(Options {
        seed: 7,
        faults: Some(loss(0.1)),
        ..Options::default()
    });
    let events = tcp::count_events(&fx);
    let secs = kernel_echo(&fx, 10 * MB, Duration::from_secs(300));
    let e = *events.lock().unwrap();
    let stack = fx.stop();
    let r = fx.fault_report();
    for (name, c) in [("rx", &r.rx), ("tx", &r.tx)] {
        let rate = c.dropped_random as f64 / c.received as f64;
        assert!(
            (0.07..0.13).contains(&rate),
            "{name}: dropped {} of {} frames ({rate:.3}), expected about 10%",
            c.dropped_random,
            c.received
        );
        assert_eq!(c.passed + c.dropped(), c.received, "{name}: {c:?}");
    }
    assert_eq!(
        stack.link.rx_frames, r.rx.passed,
        "frames the stack was given"
    );
    assert!(e.retransmits > 0, "10% loss but no retransmission: {e:?}");
    report(&format!(
        "loss 10% seed 7, kernel echo client 10 MB each way, byte-exact: {secs:.2} s; \
         injector rx {} in / {} dropped, tx {} in / {} dropped; stack {} retransmissions \
         ({} fast, {} RTOs)",
        r.rx.received,
        r.rx.dropped_random,
        r.tx.received,
        r.tx.dropped_random,
        e.retransmits,
        e.fast_retransmits,
        e.rtos
    ));
}

#[test]
fn kernel_faults_same_seed_same_fate_sequence_with_kernel_peer() {
    require_netns!();
    let len = 2 * MB;
    let (rx1, tx1, r1) = lossy_echo_run(7, 0.1, len);
    let (rx2, tx2, r2) = lossy_echo_run(7, 0.1, len);
    let (rx3, tx3, _) = lossy_echo_run(8, 0.1, len);
    for (name, a, b, c) in [("rx", &rx1, &rx2, &rx3), ("tx", &tx1, &tx2, &tx3)] {
        let n = a.len().min(b.len());
        assert!(n > 1000, "{name}: only {n} frames");
        // The frames differ between runs (kernel timing); their fates by index do not.
        assert_eq!(
            String::from_utf8_lossy(&a[..n]),
            String::from_utf8_lossy(&b[..n]),
            "{name}: same seed, different fates"
        );
        assert_eq!(dropped_in(&a[..n]), dropped_in(&b[..n]));
        let m = n.min(c.len());
        assert_ne!(&a[..m], &c[..m], "{name}: seed 8 gave seed 7's fates");
        report(&format!(
            "replay {name}: seed 7 run 1 saw {} frames, run 2 saw {}; first {n} fates \
             identical, {} dropped in each; seed 8: {} dropped in its first {m} (seed 7: {}), \
             {} positions differ",
            a.len(),
            b.len(),
            dropped_in(&a[..n]),
            dropped_in(&c[..m]),
            dropped_in(&a[..m]),
            a[..m].iter().zip(&c[..m]).filter(|(x, y)| x != y).count()
        ));
    }
    report(&format!(
        "replay totals (differ with timing): run 1 rx {}/{} tx {}/{}, run 2 rx {}/{} tx {}/{} \
         (dropped/received)",
        r1.rx.dropped(),
        r1.rx.received,
        r1.tx.dropped(),
        r1.tx.received,
        r2.rx.dropped(),
        r2.rx.received,
        r2.tx.dropped(),
        r2.tx.received
    ));
}

/// 10,000 pings through a lossy link where the input is fixed: the kernel sends echo
/// requests 1..=N in order (ARP settled beforehand, neighbour entry permanent), the
/// stack answers each one that got through, in order. Returns the injector's report.
fn ping_run(seed: u64, count: u32) -> FaultReport {
    let mut fx = Fixture::start(Options {
        seed,
        // Transparent at first: loss 0 draws nothing from the seeded stream.
        faults: Some(Faults::default()),
        ..Options::default()
    });
    // Settle ARP both ways, then pin the kernel's entry so it never re-probes.
    fx.ping(PingOptions::new(1, 56)).assert_all_answered(1);
    let mac = fx.mac.to_string();
    let out = fx.exec(&[
        "ip",
        "neigh",
        "replace",
        &fx.stack_ip,
        "lladdr",
        &mac,
        "dev",
        fx.kernel_if,
        "nud",
        "permanent",
    ]);
    assert!(out.status.success(), "ip neigh: {out:?}");
    let before = {
        let mut inj = fx.injector();
        let before = (inj.counters(Direction::Rx), inj.counters(Direction::Tx));
        for dir in [Direction::Rx, Direction::Tx] {
            inj.model_mut(dir).set_config(FaultConfig {
                loss: 0.1,
                ..FaultConfig::default()
            });
        }
        before
    };
    // `ping -f -i 0.002 -W 1`: the next request as soon as the reply came, or after
    // 2 ms without one.
    let ping = fx.ping(
        PingOptions::new(count, 56)
            .interval(Duration::from_millis(2))
            .timeout(Duration::from_secs(1))
            .flood(),
    );
    assert_eq!(ping.transmitted, count, "{}", ping.report.summary());
    assert_eq!(
        (ping.report.wrong_data, ping.report.duplicates),
        (0, 0),
        "{}",
        ping.report.summary()
    );
    fx.stop();
    let r = fx.fault_report();
    let mut delta = r.clone();
    delta.rx.received -= before.0.received;
    delta.rx.passed -= before.0.passed;
    delta.tx.received -= before.1.received;
    delta.tx.passed -= before.1.passed;
    assert_eq!(
        delta.rx.received,
        u64::from(count),
        "only the echo requests entered"
    );
    assert_eq!(delta.tx.received, delta.rx.passed, "one reply per request");
    assert_eq!(
        u64::from(ping.received),
        delta.tx.passed,
        "{}",
        ping.report.summary()
    );
    delta
}

#[test]
fn kernel_faults_identical_input_identical_drops_10000_pings() {
    require_netns!();
    let a = ping_run(7, 10_000);
    let b = ping_run(7, 10_000);
    assert_eq!(a.rx, b.rx, "same seed, same requests: same rx faults");
    assert_eq!(a.tx, b.tx, "same seed, same replies: same tx faults");
    report(&format!(
        "10000 pings, loss 10% seed 7, twice: rx dropped {} / {}, tx dropped {} / {} \
         (run 2: rx {} / {}, tx {} / {}); answered {}",
        a.rx.dropped_random,
        a.rx.received,
        a.tx.dropped_random,
        a.tx.received,
        b.rx.dropped_random,
        b.rx.received,
        b.tx.dropped_random,
        b.tx.received,
        a.tx.passed
    ));
}

/// A 2 MB echo from the kernel through `faults`; returns the stack's counters and the
/// injector's report.
fn faulty_echo(seed: u64, faults: Faults) -> (ustack_tests::StackReport, FaultReport) {
    let mut fx = echo_fixture(Options {
        seed,
        faults: Some(faults),
        ..Options::default()
    });
    kernel_echo(&fx, 2 * MB, Duration::from_secs(300));
    let stack = fx.stop();
    (stack, fx.fault_report().clone())
}

#[test]
fn kernel_faults_reorder_echo_byte_exact() {
    require_netns!();
    let (stack, r) = faulty_echo(
        11,
        Faults::both(FaultConfig {
            reorder: 0.05,
            reorder_depth: 3,
            ..FaultConfig::default()
        }),
    );
    for (name, c, held) in [
        ("rx", &r.rx, r.rx_held_at_stop),
        ("tx", &r.tx, r.tx_held_at_stop),
    ] {
        assert!(c.reordered > 0, "{name}: nothing reordered: {c:?}");
        assert!(c.reordered * 10 < c.received, "{name}: {c:?}");
        assert_eq!(c.dropped(), 0, "{name}: {c:?}");
        // A frame held back in the last reorder timeout (10 ms) before the stack stopped
        // is still in the injector: counted as received, not yet delivered. Traffic has
        // ended by then, so only the last few frames can be waiting like that.
        assert!(held <= 8, "{name}: {held} frames still held at stop: {c:?}");
        assert_eq!(
            c.passed + held as u64,
            c.received,
            "{name}: every frame delivered once ({held} still held at stop)"
        );
    }
    assert_eq!(stack.link.rx_frames, r.rx.passed);
    report(&format!(
        "reorder 5% depth 3: rx {} of {} frames held back, tx {} of {}; still held at stop: \
         rx {}, tx {}; 2 MB echoed byte-exact",
        r.rx.reordered,
        r.rx.received,
        r.tx.reordered,
        r.tx.received,
        r.rx_held_at_stop,
        r.tx_held_at_stop
    ));
}

#[test]
fn kernel_faults_duplicate_echo_byte_exact() {
    require_netns!();
    let (stack, r) = faulty_echo(
        12,
        Faults::both(FaultConfig {
            duplicate: 0.05,
            ..FaultConfig::default()
        }),
    );
    for (name, c) in [("rx", &r.rx), ("tx", &r.tx)] {
        assert!(c.duplicated > 0, "{name}: nothing duplicated: {c:?}");
        assert_eq!(c.passed, c.received + c.duplicated, "{name}: {c:?}");
    }
    assert_eq!(
        stack.link.rx_frames, r.rx.passed,
        "the stack got every copy"
    );
    report(&format!(
        "duplicate 5%: rx {} extra copies of {} frames, tx {} of {}; 2 MB echoed byte-exact",
        r.rx.duplicated, r.rx.received, r.tx.duplicated, r.tx.received
    ));
}

/// `Name: v1 v2 ...` header/value line pairs of /proc/net/{snmp,netstat} in the
/// namespace (`file` is `snmp` or `netstat`).
fn kernel_mib(fx: &Fixture, file: &'static str, group: &str, name: &str) -> u64 {
    let text = fx
        .in_ns(move || peer::read_net_file(file))
        .unwrap_or_else(|e| panic!("/proc/net/{file}: {e}"));
    peer::mib_value(&text, group, name).unwrap_or(0)
}

#[test]
fn kernel_faults_corrupt_echo_byte_exact_and_checksum_drops() {
    require_netns!();
    let mut fx = echo_fixture(Options {
        seed: 13,
        faults: Some(Faults::both(FaultConfig {
            corrupt: 0.02,
            ..FaultConfig::default()
        })),
        ..Options::default()
    });
    kernel_echo(&fx, 2 * MB, Duration::from_secs(300));
    // The kernel's view of what we corrupted on the way out.
    let k_ip_csum = kernel_mib(&fx, "netstat", "IpExt", "InCsumErrors");
    let k_ip_hdr = kernel_mib(&fx, "snmp", "Ip", "InHdrErrors");
    let k_tcp_csum = kernel_mib(&fx, "snmp", "Tcp", "InCsumErrors");
    let k_ip_trunc = kernel_mib(&fx, "netstat", "IpExt", "InTruncatedPkts");
    let stack = fx.stop();
    let r = fx.fault_report().clone();
    assert!(r.rx.corrupted > 0 && r.tx.corrupted > 0, "{r:?}");
    let c = stack.iface.counters();
    let by_reason: BTreeMap<String, u64> = DropReason::ALL
        .iter()
        .map(|&d| (format!("{}.{}", d.layer(), d.as_str()), c.dropped(d)))
        .filter(|(_, v)| *v > 0)
        .collect();
    // A one-bit flip past the Ethernet header is always caught: by the IPv4 header
    // checksum or the TCP checksum (ones' complement sums see any single-bit change),
    // or earlier by the IPv4 length/version checks when it hits those fields. So every
    // corrupted frame is dropped exactly once at the IPv4 or TCP layer, and nothing
    // else is.
    let ip_tcp_drops: u64 = [
        DropReason::Ipv4Truncated,
        DropReason::Ipv4Checksum,
        DropReason::Ipv4Malformed,
        DropReason::Ipv4NotForUs,
        DropReason::Ipv4UnknownProtocol,
        DropReason::TcpTruncated,
        DropReason::TcpMalformed,
        DropReason::TcpChecksum,
    ]
    .iter()
    .map(|&d| c.dropped(d))
    .sum();
    assert_eq!(
        ip_tcp_drops, r.rx.corrupted,
        "corrupted frames in vs IPv4/TCP drops: {by_reason:?}"
    );
    assert!(
        c.dropped(DropReason::TcpChecksum) > 0 && c.dropped(DropReason::Ipv4Checksum) > 0,
        "{by_reason:?}"
    );
    // Linux counts an IPv4 checksum failure in both IpExt.InCsumErrors and
    // Ip.InHdrErrors (version/IHL damage only in the latter), a length past the frame
    // in IpExt.InTruncatedPkts, and a TCP checksum failure in Tcp.InCsumErrors.
    assert!(k_ip_csum > 0 && k_tcp_csum > 0 && k_ip_csum <= k_ip_hdr);
    assert_eq!(
        k_ip_hdr + k_ip_trunc + k_tcp_csum,
        r.tx.corrupted,
        "kernel Ip.InHdrErrors {k_ip_hdr} (of which checksum {k_ip_csum}) + \
         IpExt.InTruncatedPkts {k_ip_trunc} + Tcp.InCsumErrors {k_tcp_csum} vs frames we \
         corrupted"
    );
    report(&format!(
        "corrupt 2%: rx {} of {} frames corrupted -> stack drops {by_reason:?}; \
         tx {} of {} corrupted -> kernel IpExt.InCsumErrors {k_ip_csum}, Tcp.InCsumErrors \
         {k_tcp_csum}, Ip.InHdrErrors {k_ip_hdr}, IpExt.InTruncatedPkts {k_ip_trunc}; 2 MB echoed byte-exact",
        r.rx.corrupted, r.rx.received, r.tx.corrupted, r.tx.received
    ));
}

/// One-line decodes (tcpdump -nn style, relative sequence numbers) of a capture,
/// without timestamps, each tagged with whether the stack sent it.
fn decoded_lines(path: &Path, stack_mac: &str) -> Vec<(bool, String)> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cap = ustack_capture::dump::load(std::io::BufReader::new(file), SeqMode::Relative)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(cap.read_error.is_none(), "{:?}", cap.read_error);
    cap.frames
        .iter()
        .zip(&cap.tcp_info)
        .map(|(f, info)| {
            let line = one_line(f, info.as_ref(), TimeStyle::Utc);
            let body = line.split_once(' ').map_or("", |(_, b)| b).to_owned();
            let from_stack = f
                .ethernet
                .as_ref()
                .is_some_and(|e| e.src.to_string() == stack_mac);
            (from_stack, body)
        })
        .collect()
}

#[test]
fn kernel_faults_dump_of_our_pcap_matches_tcpdump() {
    require_netns!("tcpdump");
    // tcpdump itself can lose frames on a loaded machine ("dropped by kernel": its
    // ring overflowed). Such a run proves nothing either way; it is repeated, and a
    // run that completes must match exactly.
    for attempt in 1..=3 {
        if dump_vs_tcpdump() {
            return;
        }
        report(&format!(
            "dump vs tcpdump: attempt {attempt}: tcpdump dropped frames, repeating"
        ));
    }
    panic!("tcpdump dropped frames in 3 runs out of 3");
}

/// One run of the comparison; false when tcpdump reports frames it dropped itself.
fn dump_vs_tcpdump() -> bool {
    let mut fx = echo_fixture(Options {
        seed: 14,
        pcap: true,
        // Loss under the recorder: our pcap, like tcpdump, shows only what crossed.
        faults: Some(loss(0.02)),
        ..Options::default()
    });
    let theirs = std::env::temp_dir().join(format!("{}-tcpdump.pcap", fx.ns.name()));
    let td = fx
        .ns
        .command(&[
            "tcpdump",
            "-i",
            fx.kernel_if,
            "-n",
            "-U",
            "-B",
            "16384",
            "-Z",
            "root",
            "-w",
            theirs.to_str().expect("utf-8 path"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start tcpdump");
    // tcpdump writes the file header once the capture is active.
    let t0 = std::time::Instant::now();
    while std::fs::metadata(&theirs).map_or(0, |m| m.len()) < 24 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "tcpdump did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kernel_echo(&fx, MB, Duration::from_secs(120));
    // tcpdump reads its ring a block at a time, a block being handed over when full
    // or after 1 s (no --immediate-mode, which wakes it per packet and loses frames
    // under load): wait for the last block before stopping it.
    std::thread::sleep(Duration::from_millis(2500));
    // Read before the stack stops: closing its fd deletes the TAP.
    let tap_stat = |name: &str| -> u64 {
        let path = format!("/sys/class/net/{}/statistics/{name}", fx.kernel_if);
        let out = fx.exec(&["cat", &path]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{path}: {e}: {out:?}"))
    };
    let (tap_rx_dropped, tap_tx_dropped) = (tap_stat("rx_dropped"), tap_stat("tx_dropped"));
    fx.stop();
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    unsafe {
        libc::kill(td.id() as i32, libc::SIGINT);
    }
    let out = td.wait_with_output_or_kill();
    assert!(out.contains("packets captured"), "tcpdump: {out}");
    let dropped_by_kernel = out
        .lines()
        .find(|l| l.contains("dropped by kernel"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    if dropped_by_kernel > 0 {
        let _ = std::fs::remove_file(&theirs);
        return false;
    }
    let ours_path = fx.pcap.clone().expect("pcap");
    let mac = fx.mac.to_string();
    let ours = decoded_lines(&ours_path, &mac);
    let theirs_lines = decoded_lines(&theirs, &mac);
    // Only on our side: what the stack sent before tcpdump was listening (the
    // gratuitous ARP at start). Nothing else may be missing on either side.
    let skip = ours
        .iter()
        .position(|l| Some(l) == theirs_lines.first())
        .expect("tcpdump's first frame is in our pcap");
    for (from_stack, l) in &ours[..skip] {
        assert!(
            *from_stack && l.starts_with("ARP"),
            "frame only in our pcap: {l} (tcpdump's file: {})",
            theirs.display()
        );
    }
    let ours = &ours[skip..];
    // Per direction the order is the wire's; between directions each side stamps
    // frames at its own end of the TAP, so the interleaving may differ. A frame can be
    // seen on one side only where the TAP itself drops it: a frame the stack wrote is
    // dropped when the kernel's input backlog is full (tap0 rx_dropped; tcpdump never
    // sees it), a frame the kernel sent is dropped when the TAP's queue towards us is
    // full (tap0 tx_dropped; tcpdump saw it, we never read it).
    let mut matched = 0;
    for (from_stack, dropped_at_tap) in [(true, tap_rx_dropped), (false, tap_tx_dropped)] {
        let pick = |v: &[(bool, String)]| -> Vec<String> {
            v.iter()
                .filter(|l| l.0 == from_stack)
                .map(|l| l.1.clone())
                .collect()
        };
        let (a, b) = (pick(ours), pick(&theirs_lines));
        // The sender's capture is the longer one; the receiver's must be a subsequence.
        let (long, short) = if from_stack { (&a, &b) } else { (&b, &a) };
        let mut missing = Vec::new();
        let mut it = short.iter().peekable();
        for l in long {
            if it.peek() == Some(&l) {
                it.next();
            } else {
                missing.push(l.as_str());
            }
        }
        assert!(
            it.next().is_none(),
            "from stack={from_stack}: the receiving side has a frame the sender's capture \
             lacks or in another order (tcpdump file {})",
            theirs.display()
        );
        assert_eq!(
            missing.len() as u64,
            dropped_at_tap,
            "from stack={from_stack}: frames seen only by the sender's side vs tap0 drops; \
             first: {:#?}",
            &missing[..missing.len().min(5)]
        );
        matched += short.len();
    }
    let _ = std::fs::remove_file(&theirs);
    report(&format!(
        "dump vs tcpdump: {matched} frames decode identically, same order per direction \
         ({} in ours, {} in tcpdump's); {skip} only in ours before tcpdump listened \
         (gratuitous ARP); {tap_rx_dropped} stack frames dropped by the kernel's input \
         backlog (tap0 rx_dropped, only in ours); {tap_tx_dropped} kernel frames dropped at \
         the TAP queue (only in tcpdump's); tcpdump: {}",
        ours.len() + skip,
        theirs_lines.len(),
        out.split_whitespace().collect::<Vec<_>>().join(" ")
    ));
    true
}

trait WaitOrKill {
    fn wait_with_output_or_kill(self) -> String;
}

impl WaitOrKill for std::process::Child {
    /// Waits up to 10 s for the child (killing it then), returns its stderr.
    fn wait_with_output_or_kill(mut self) -> String {
        let t0 = std::time::Instant::now();
        while self.try_wait().ok().flatten().is_none() {
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = self.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = self.wait_with_output().expect("wait");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// The time-sequence data `ustack plot` would draw for a 5%-loss run shows the losses
/// (drawing itself is tested on a committed capture in `ustack-capture`'s plot tests,
/// so this crate does not compile plotters).
#[test]
fn kernel_faults_time_sequence_shows_retransmissions_under_5_percent_loss() {
    require_netns!();
    let mut fx = echo_fixture(Options {
        seed: 7,
        pcap: true,
        faults: Some(loss(0.05)),
        ..Options::default()
    });
    kernel_echo(&fx, 2 * MB, Duration::from_secs(300));
    fx.stop();
    let path = fx.pcap.clone().expect("pcap");
    let file = std::fs::File::open(&path).expect("pcap");
    let cap =
        ustack_capture::dump::load(std::io::BufReader::new(file), SeqMode::Relative).expect("load");
    let conn = timeseq::select(&cap, ConnSelect::Busiest).expect("a connection");
    let ts = timeseq::time_sequence(&cap, conn);
    assert!(ts.retransmissions() > 0, "5% loss, no retransmission found");
    assert!(ts.segments.len() > 1000, "{} segments", ts.segments.len());
    assert!(!ts.sacks.is_empty(), "no SACK blocks under loss");
    report(&format!(
        "time sequence, loss 5% seed 7, 2 MB echo: {} segments, {} retransmissions, {} ACKs, \
         {} SACK blocks",
        ts.segments.len(),
        ts.retransmissions(),
        ts.acks.len(),
        ts.sacks.len()
    ));
}
