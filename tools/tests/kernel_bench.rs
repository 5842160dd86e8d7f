//! `ustack bench` end to end: one small round of every figure, run by the built binary
//! (`CARGO_BIN_EXE_ustack`), which creates and removes its own namespaces, TAP and veth.
//!
//! It checks that the table has every row and a positive figure in every cell that
//! should hold one, that no round failed, and that the namespaces are gone afterwards.
//! It asserts no speed ratio: figures are what the benchmark prints, not pass/fail.
//!
//! Without CAP_NET_ADMIN/NET_RAW/SYS_ADMIN it prints a loud SKIPPED banner; under
//! `USTACK_REQUIRE_NETNS=1` it fails instead.

use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ustack");

fn can_run() -> bool {
    ustack_tests::netns_available("kernel_bench")
}

/// `12.7k` → 12700, `2.50M` → 2.5e6, `0.32` → 0.32; `None` for anything else.
fn figure(cell: &str) -> Option<f64> {
    let (num, mult) = match cell.chars().last()? {
        'k' => (&cell[..cell.len() - 1], 1e3),
        'M' => (&cell[..cell.len() - 1], 1e6),
        _ => (cell, 1.0),
    };
    num.parse::<f64>().ok().map(|v| v * mult)
}

#[test]
fn bench_prints_every_row_with_positive_figures() {
    if !can_run() {
        return;
    }
    // The callgrind row needs valgrind: a loud skip of that row, a failure in CI.
    let callgrind = ustack_tests::tool_available("kernel_bench (callgrind row)", "valgrind");
    let mut args = vec![
        "bench",
        "--rounds",
        "1",
        "--size",
        "2M",
        "--secs",
        "0.2",
        "--conns",
        "200",
        "--inmem-size",
        "2M",
        "--callgrind-size",
        "100K",
        "--inmem-conns",
        "200",
        "--callgrind-conns",
        "50",
    ];
    if !callgrind {
        args.push("--no-callgrind");
    }
    let start = Instant::now();
    let mut child = Command::new(BIN)
        .args(&args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start ustack bench");
    let pid = child.id();
    while child.try_wait().expect("try_wait").is_none() {
        if start.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            panic!("ustack bench did not finish in 300 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ustack bench failed ({}):\n{stdout}\n{stderr}",
        out.status
    );

    let rows = [
        ("bulk, stack receiving 2 MB", true),
        ("bulk, stack sending 2 MB", true),
        ("1-byte request / 2-byte response, pinned to one CPU", true),
        ("1-byte request / 2-byte response, unpinned", true),
        ("connect, read `hello\\n`, close, serial", true),
        ("200 concurrent connections: accept rate", true),
        ("200 concurrent connections: memory per connection", false),
        ("in-memory bulk 2 MB (no device), per CPU second", false),
        ("in-memory bulk: instructions per byte (callgrind)", false),
        ("in-memory connections (no device), per CPU second", false),
        ("in-memory: instructions per connection (callgrind)", false),
    ];
    for (label, kernel_too) in rows {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {label} ")))
            .unwrap_or_else(|| panic!("no row `{label}` in:\n{stdout}"));
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | figure | unit | ustack | smoltcp | ratio | paired ratios (— with one
        //   round) | kernel off | kernel on | ustack offloads on | offloads/smoltcp |
        //   offloads/kernel on |
        assert_eq!(cells.len(), 13, "{line}");
        assert_eq!(cells[6], "—", "one round gives no paired range: {line}");
        if label.starts_with("bulk") {
            for (i, what) in [
                (9, "offloads"),
                (10, "offloads ratio"),
                (11, "offloads/kernel"),
            ] {
                let v =
                    figure(cells[i]).unwrap_or_else(|| panic!("{what} cell not a figure: {line}"));
                assert!(v > 0.0, "{what} figure not positive: {line}");
            }
        } else if label.starts_with("in-memory") {
            assert_eq!(cells[9], "n/a", "{line}");
        } else {
            assert_eq!(cells[9], "skipped", "{line}");
        }
        if label.contains("callgrind") && !callgrind {
            assert_eq!(cells[3], "skipped", "{line}");
            continue;
        }
        for (i, what) in [(3, "ustack"), (4, "smoltcp"), (5, "ratio")] {
            let v = figure(cells[i]).unwrap_or_else(|| panic!("{what} cell not a figure: {line}"));
            assert!(v > 0.0, "{what} figure not positive: {line}");
        }
        for i in [7, 8] {
            if kernel_too {
                let v =
                    figure(cells[i]).unwrap_or_else(|| panic!("kernel cell not a figure: {line}"));
                assert!(v > 0.0, "kernel figure not positive: {line}");
            } else {
                assert_eq!(cells[i], "n/a", "{line}");
            }
        }
    }
    assert!(stdout.contains("date:    "), "{stdout}");
    assert!(stdout.contains("machine: "), "{stdout}");
    assert!(
        stdout.contains("command: ustack bench --rounds 1"),
        "{stdout}"
    );
    assert!(!stdout.contains("failed"), "{stdout}");

    // Its namespaces are gone.
    let list = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let list = String::from_utf8_lossy(&list.stdout);
    for prefix in ["ubench-a", "ubench-b"] {
        let name = format!("{prefix}-{pid}-");
        assert!(
            !list.contains(&name),
            "namespace {name}* left behind:\n{list}"
        );
    }
}

#[test]
fn bench_only_runs_the_selected_rows() {
    if !can_run() {
        return;
    }
    let out = Command::new(BIN)
        .args([
            "bench",
            "--only",
            "rr-pinned,inmem",
            "--rounds",
            "1",
            "--secs",
            "0.2",
            "--inmem-size",
            "2M",
            "--no-kernel",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run ustack bench --only");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for label in [
        "1-byte request / 2-byte response, pinned to one CPU",
        "in-memory bulk 2 MB (no device), per CPU second",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {label} ")))
            .unwrap_or_else(|| panic!("no row `{label}` in:\n{stdout}"));
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        for (i, what) in [(3, "ustack"), (4, "smoltcp")] {
            let v = figure(cells[i]).unwrap_or_else(|| panic!("{what} cell not a figure: {line}"));
            assert!(v > 0.0, "{what} figure not positive: {line}");
        }
    }
    // Nothing else ran: no other row, no progress line for another figure.
    for other in [
        "bulk, stack",
        "unpinned",
        "connect, read",
        "concurrent",
        "callgrind",
        "in-memory connections",
    ] {
        assert!(
            !stdout
                .lines()
                .any(|l| l.starts_with('|') && l.contains(other)),
            "row `{other}` present:\n{stdout}"
        );
        assert!(!stderr.contains(other), "`{other}` ran:\n{stderr}");
    }
    assert!(
        stdout.contains("--only: the figures not selected were not run"),
        "{stdout}"
    );
}

/// The ustack column without offloads runs with smoltcp's fixed buffers unless
/// `--autotune`, and says so; the coordinator fails a round whose server reports other
/// buffer maxima than the note names, so a flag lost on the way fails here.
#[test]
fn bench_fixes_ustack_buffers_unless_autotune() {
    if !can_run() {
        return;
    }
    for (flag, note) in [
        (None, "and for ustack without offloads and in memory, fixed"),
        (
            Some("--autotune"),
            "ustack over the TAP (--autotune) starts with the same and autotunes",
        ),
    ] {
        let mut args = vec![
            "bench",
            "--only",
            "bulk-rx",
            "--rounds",
            "1",
            "--size",
            "2M",
            "--no-kernel",
        ];
        args.extend(flag);
        let out = Command::new(BIN)
            .args(&args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run ustack bench");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{flag:?}: {stdout}\n{stderr}");
        assert!(!stdout.contains("failed"), "{flag:?}: {stdout}");
        assert!(stdout.contains(note), "{flag:?}: {stdout}");
    }
}
