//! `ustack wire` between two kernels: the built binary forwards a kernel-to-kernel TCP
//! transfer across the lab of `ustack_tools::wirelab` (namespaces A, W, B; the wire in
//! W on two veth ends), byte-exact with no loss and with 5 % seeded loss, and the same
//! seed drops the same frames (by frame index per direction) twice.
//!
//! Without CAP_NET_ADMIN/NET_RAW/SYS_ADMIN it prints a loud SKIPPED banner; under
//! `USTACK_REQUIRE_NETNS=1` it fails instead.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use ustack::link::{Direction, PcapReader};
use ustack_tests::peer;
use ustack_tools::wirelab::{Side, WireLab};

const BIN: &str = env!("CARGO_BIN_EXE_ustack");
const PORT: u16 = 5001;

fn can_run() -> bool {
    let test = std::thread::current()
        .name()
        .unwrap_or("kernel_wire")
        .to_owned();
    ustack_tests::netns_available(&test)
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ustack-wire-{}-{name}", std::process::id()))
}

/// The wire as a child process, its stderr in a file; SIGTERM on drop.
struct Wire {
    child: Option<Child>,
    log: PathBuf,
}

impl Wire {
    /// Starts the wire with `args` after the subcommand and waits for its banner.
    fn start(lab: &WireLab, args: &[&str], log: PathBuf) -> Wire {
        let file = std::fs::File::create(&log).expect("wire log");
        let child = lab
            .wire_command(Path::new(BIN))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn ustack wire");
        let w = Wire {
            child: Some(child),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !w.output().contains("forwarding") {
            assert!(
                Instant::now() < deadline,
                "the wire did not start: {}",
                w.output()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        w
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, wait, and return everything it printed; asserts a clean exit.
    fn stop(mut self) -> String {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let status = child.wait().expect("wait for the wire");
        let out = self.output();
        let _ = std::fs::remove_file(&self.log);
        // Written to the stderr handle: shown by `cargo test -- --nocapture`.
        let _ = writeln!(std::io::stderr(), "{}", out.trim_end());
        assert!(status.success(), "ustack wire exited with {status}: {out}");
        out
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `frames in` and drops of one direction from the wire's exit counters.
fn counters(out: &str, dir: &str) -> (u64, u64) {
    let line = out
        .lines()
        .find(|l| l.contains(&format!("{dir}: ")) && l.contains("frames in"))
        .unwrap_or_else(|| panic!("no {dir} counters in: {out}"));
    let num_before = |word: &str| -> u64 {
        let i = line
            .find(word)
            .unwrap_or_else(|| panic!("no `{word}` in {line}"));
        line[..i]
            .split_whitespace()
            .last()
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("no number before `{word}` in {line}"))
    };
    (num_before(" frames in"), num_before(" random"))
}

/// A 2 MB kernel transfer from namespace A to namespace B through the wire; asserts it
/// arrived byte-exact and returns the receiver's count.
fn kernel_transfer(lab: &WireLab, len: u64) {
    let to = SocketAddr::from((Side::B.kernel_ip(), PORT));
    let listener = lab
        .b
        .run_in(move || TcpListener::bind(to))
        .expect("enter B")
        .expect("listen in B");
    let sink = lab
        .b
        .spawn_in("sink", move || {
            let (s, _) = listener.accept()?;
            s.set_read_timeout(Some(Duration::from_secs(60)))?;
            peer::sink(&s)
        })
        .expect("enter B");
    let sent = lab
        .a
        .run_in(move || -> std::io::Result<String> {
            let s = TcpStream::connect_timeout(&to, Duration::from_secs(10))?;
            s.set_write_timeout(Some(Duration::from_secs(60)))?;
            peer::source(&s, len, 0x3157)
        })
        .expect("enter A")
        .expect("kernel sender");
    let (got, sha) = sink
        .join_timeout(Duration::from_secs(90))
        .unwrap_or_else(|_| panic!("the receiver did not finish"))
        .expect("kernel receiver");
    assert_eq!(got, len, "bytes received");
    assert_eq!(sha, sent, "SHA-256 received vs sent");
}

#[test]
fn wire_forwards_a_kernel_transfer_byte_exact_without_and_with_loss() {
    if !can_run() {
        return;
    }
    let lab = WireLab::new("uwire").expect("lab");
    let len = 2_000_000;

    let wire = Wire::start(&lab, &["--seed", "5"], temp("clean.log"));
    kernel_transfer(&lab, len);
    let out = wire.stop();
    let (a2b_in, a2b_dropped) = counters(&out, "a2b");
    let (b2a_in, b2a_dropped) = counters(&out, "b2a");
    // 2 MB is over 1,300 full segments one way and their ACKs the other.
    assert!(a2b_in > 1_300 && b2a_in > 100, "{out}");
    assert_eq!((a2b_dropped, b2a_dropped), (0, 0), "{out}");

    let wire = Wire::start(&lab, &["--seed", "5", "--loss", "0.05"], temp("lossy.log"));
    kernel_transfer(&lab, len);
    let out = wire.stop();
    let (a2b_in, a2b_dropped) = counters(&out, "a2b");
    let (b2a_in, b2a_dropped) = counters(&out, "b2a");
    // Binomial bounds far outside chance (5 % of >1,300 frames is >65).
    assert!(a2b_dropped > 20 && a2b_dropped < a2b_in / 5, "{out}");
    assert!(b2a_dropped < b2a_in / 5, "{out}");
}

/// Frame indices the injector dropped, per direction, from the pcapng comments.
fn dropped_ids(path: &Path) -> (BTreeSet<u64>, BTreeSet<u64>, u64, u64) {
    let mut r = PcapReader::new(std::fs::File::open(path).expect("capture")).expect("pcapng");
    let (mut tx, mut rx) = (BTreeSet::new(), BTreeSet::new());
    let (mut n_tx, mut n_rx) = (0, 0);
    while let Some(rec) = r.next_record().expect("record") {
        match rec.direction {
            Some(Direction::Tx) => n_tx += 1,
            Some(Direction::Rx) => n_rx += 1,
            None => panic!("a frame without direction"),
        }
        for c in &rec.comments {
            let Some(rest) = c.strip_prefix("fault injector ") else {
                continue;
            };
            if !rest.contains("dropped (random loss)") {
                continue;
            }
            let mut words = rest.split_whitespace();
            let dir = words.next().unwrap_or_default();
            let id: u64 = words
                .nth(1)
                .and_then(|w| w.trim_end_matches(':').parse().ok())
                .unwrap_or_else(|| panic!("bad comment {c}"));
            match dir {
                "tx" => tx.insert(id),
                "rx" => rx.insert(id),
                _ => panic!("bad comment {c}"),
            };
        }
    }
    (tx, rx, n_tx, n_rx)
}

#[test]
fn the_same_seed_drops_the_same_frames_twice() {
    if !can_run() {
        return;
    }
    let lab = WireLab::new("uwire").expect("lab");
    let mut runs = Vec::new();
    for i in 0..2 {
        let pcap = temp(&format!("seed-{i}.pcapng"));
        let p = pcap.to_string_lossy().into_owned();
        let wire = Wire::start(
            &lab,
            &["--seed", "11", "--loss", "0.05", "--pcap", &p],
            temp(&format!("seed-{i}.log")),
        );
        kernel_transfer(&lab, 1_000_000);
        let out = wire.stop();
        let (a2b_in, a2b_dropped) = counters(&out, "a2b");
        let (b2a_in, _) = counters(&out, "b2a");
        let (tx, rx, n_tx, n_rx) = dropped_ids(&pcap);
        let _ = std::fs::remove_file(&pcap);
        // Every frame is in the capture, dropped ones included, and every drop has its
        // comment.
        assert_eq!((n_tx, n_rx), (a2b_in, b2a_in), "{out}");
        assert_eq!(tx.len() as u64, a2b_dropped, "{out}");
        assert!(!tx.is_empty(), "{out}");
        runs.push((tx, rx, a2b_in, b2a_in));
    }
    // The traffic differs between runs (timers, ACK pacing), so compare the fate of
    // frame 0, 1, 2, ... up to the shorter run of each direction.
    let (t0, r0, a0, b0) = &runs[0];
    let (t1, r1, a1, b1) = &runs[1];
    let below = |s: &BTreeSet<u64>, n: u64| s.range(..n).copied().collect::<Vec<_>>();
    let (na, nb) = ((*a0).min(*a1), (*b0).min(*b1));
    assert!(!below(t0, na).is_empty());
    assert_eq!(
        below(t0, na),
        below(t1, na),
        "a2b drops differ for the same seed"
    );
    assert_eq!(
        below(r0, nb),
        below(r1, nb),
        "b2a drops differ for the same seed"
    );
}

/// `ustack bench loss --quick` (one seed, small transfers): every cell of the table is
/// filled, no run failed, and the namespaces are gone afterwards. No figure is
/// asserted: they are what the benchmark prints.
#[test]
fn bench_loss_quick_fills_every_cell() {
    if !can_run() {
        return;
    }
    let child = std::process::Command::new(BIN)
        .args(["bench", "loss", "--quick", "--seeds", "1", "--size", "200K"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ustack bench loss");
    let pid = child.id();
    let out = child
        .wait_with_output()
        .expect("wait for ustack bench loss");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {}: {stdout}\n{stderr}",
        out.status
    );
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| loss"))
        .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
        .collect();
    let models = ["1%", "3%", "5%", "10%", "gilbert:0.01:0.3"];
    let pairs = ["kernel → kernel", "kernel → ustack", "ustack → kernel"];
    assert_eq!(rows.len(), models.len() * pairs.len(), "{stdout}");
    for m in models {
        for p in pairs {
            let row = rows
                .iter()
                .find(|r| r[0] == m && r[1] == p)
                .unwrap_or_else(|| panic!("no row {m} / {p} in {stdout}"));
            assert_eq!(row[2], "1/1", "{m} {p}: {stdout}");
            for (i, cell) in row.iter().enumerate().skip(3) {
                assert!(
                    !cell.is_empty() && *cell != "-",
                    "{m} {p} column {i} empty: {stdout}"
                );
            }
            let secs: f64 = row[3]
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{m} {p}: bad time {}", row[3]));
            assert!(secs > 0.0, "{m} {p}: {secs}");
        }
    }
    assert!(stdout.contains("0 of 15 runs failed"), "{stdout}");
    // Its namespaces are named `uloss-{a,w,b}-PID-...`; other runs' may exist.
    let leftover = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let list = String::from_utf8_lossy(&leftover.stdout);
    for side in ["a", "w", "b"] {
        let name = format!("uloss-{side}-{pid}-");
        assert!(!list.contains(&name), "{name}... left behind: {list}");
    }
}
