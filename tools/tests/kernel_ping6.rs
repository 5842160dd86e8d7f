//! `ustack ping` to IPv6 addresses against the Linux kernel, inside a namespace the
//! test creates (TAP `tap0`, kernel 10.77.0.1/24 and fd00:77::1/64 added `nodad`): the
//! built binary pings with the default 56 bytes and with 3000 (fragmented both ways),
//! as `ping6` would. Without privileges it skips loudly (fails under
//! `USTACK_REQUIRE_NETNS=1`).

use ustack_socket::netns::Netns;

const BIN: &str = env!("CARGO_BIN_EXE_ustack");

fn can_run() -> bool {
    let test = std::thread::current()
        .name()
        .unwrap_or("kernel test")
        .to_owned();
    ustack_tests::netns_available(&test)
}

/// A namespace with IPv6 on (`Netns::new` turns it off) and the kernel at
/// fd00:77::1/64 on `tap0`.
fn namespace() -> Netns {
    let ns = Netns::new("ustack-test").expect("create namespace");
    ns.add_tap("tap0", "10.77.0.1/24").expect("create tap");
    ns.run_in(|| {
        for which in ["all", "default", "tap0"] {
            std::fs::write(format!("/proc/sys/net/ipv6/conf/{which}/disable_ipv6"), "0")
                .expect("enable IPv6");
        }
    })
    .expect("enter namespace");
    ns.ip(&["-6", "addr", "add", "fd00:77::1/64", "dev", "tap0", "nodad"])
        .expect("kernel IPv6 address");
    ns
}

fn ping6(ns: &Netns, extra: &[&str]) -> (bool, String) {
    let mut args = vec![
        BIN,
        "--tap",
        "tap0",
        "--ip",
        "10.77.0.2/24",
        "--ip",
        "fd00:77::2/64",
        "ping",
        "fd00:77::1",
        "-i",
        "0.1",
        "-W",
        "3",
    ];
    args.extend_from_slice(extra);
    let out = ns
        .command(&args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run ustack ping");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn kernel_ping6_default_and_fragmented() {
    if !can_run() {
        return;
    }
    let ns = namespace();
    let (ok, text) = ping6(&ns, &["-c", "3"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("PING fd00:77::1(fd00:77::1) 56 data bytes"),
        "{text}"
    );
    assert!(
        text.contains("64 bytes from fd00:77::1: icmp_seq=1 ttl=64"),
        "{text}"
    );
    assert!(
        text.contains("3 packets transmitted, 3 received, 0% packet loss"),
        "{text}"
    );
    let (ok, text) = ping6(&ns, &["-c", "2", "-s", "3000"]);
    assert!(ok, "{text}");
    assert!(text.contains("3008 bytes from fd00:77::1"), "{text}");
    assert!(text.contains("2 packets transmitted, 2 received"), "{text}");
}

#[test]
fn ipv6_flags_are_checked() {
    if !can_run() {
        return;
    }
    let ns = namespace();
    let out = ns
        .command(&[
            BIN,
            "--tap",
            "tap0",
            "--ip",
            "10.77.0.2/24",
            "--ip",
            "10.77.0.3/24",
            "ping",
            "fd00:77::1",
            "-c",
            "1",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("one IPv4 address"),
        "{out:?}"
    );
}
