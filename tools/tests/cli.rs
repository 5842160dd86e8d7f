//! The `ustack dump` and `ustack plot` binaries end to end: exit codes, messages, help.

use std::process::Command;

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testdata/kernel_veth_ping_udp_tcp.pcap"
);

fn ustack(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ustack"))
        .args(args)
        .env("TZ", "UTC")
        .output()
        .expect("run ustack")
}

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ustack-cli-{}-{name}", std::process::id()))
}

#[test]
fn dump_prints_one_line_per_packet() {
    let out = ustack(&["dump", CAPTURE, "--proto", "tcp", "-c", "1"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "12:45:59.856722 IP 10.0.0.1.38394 > 10.0.0.2.5001: Flags [S], seq 0, win 64240, \
         options [mss 1460,sackOK,TS val 3351729865 ecr 0,nop,wscale 10], length 0\n"
    );
}

#[test]
fn damaged_and_foreign_files_exit_with_a_message() {
    let bytes = std::fs::read(CAPTURE).unwrap();
    let cut = tmp("cut.pcap");
    std::fs::write(&cut, &bytes[..300]).unwrap();
    let out = ustack(&["dump", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4);
    assert!(String::from_utf8_lossy(&out.stderr).contains("file ends inside the record"));
    let _ = std::fs::remove_file(&cut);

    let out = ustack(&["dump", "Cargo.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a pcap or pcapng file"));
    let out = ustack(&["dump", "/nonexistent/file.pcap"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn plot_writes_the_file_and_reports_it() {
    let svg = tmp("t.svg");
    let out = ustack(&[
        "plot",
        CAPTURE,
        "--port",
        "5001",
        "-o",
        svg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 segments, 0 retransmissions"));
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    let _ = std::fs::remove_file(&svg);
    let out = ustack(&["plot", CAPTURE, "-o", "out.gif"]);
    assert_eq!(out.status.code(), Some(1));
    let out = ustack(&["plot", CAPTURE, "--conn", "7", "-o", svg.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no TCP connection #7"));
}

#[test]
fn help_has_examples() {
    for cmd in ["dump", "plot", "stats", "up"] {
        let out = ustack(&[cmd, "--help"]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Examples:"), "{cmd}");
        assert!(text.contains(&format!("ustack {cmd} ")), "{cmd}");
    }
}

#[test]
fn bench_help_has_examples_and_names_the_smoltcp_feature() {
    let out = ustack(&["bench", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("sudo ustack bench --quick"), "{help}");
    assert!(help.contains("smoltcp-peer"), "{help}");
    // The child-process subcommands stay out of the top-level help.
    let top = String::from_utf8_lossy(&ustack(&["--help"]).stdout).into_owned();
    assert!(top.contains("bench"), "{top}");
    assert!(
        !top.contains("bench-serve") && !top.contains("bench-inmem"),
        "{top}"
    );
}

#[test]
fn bench_rejects_bad_sizes_before_touching_the_network() {
    let out = ustack(&["bench", "--size", "12X"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown suffix"));
}
