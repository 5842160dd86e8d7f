//! `ustack stats` against a running stack: the real driver loop (`run_with_app`) on a
//! memory link in this process, with a control socket in a private run directory; a
//! peer interface in the test thread opens a TCP connection and sends data. The report
//! comes back through `control::query` and through the `ustack stats` binary.

use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use ustack::iface::Interface;
use ustack::link::MemoryLink;
use ustack::time::Instant;
use ustack::wire::EthernetAddress;
use ustack_tools::control::{self, ControlServer};
use ustack_tools::driver::{self, Clock};

fn iface(last: u8, now: Instant) -> Interface {
    let config = driver::iface_config(
        EthernetAddress([2, 0, 0, 0, 0, last]),
        format!("10.0.0.{last}/24").parse().unwrap(),
        None,
        1500,
        u64::from(last),
    );
    Interface::new(config, now)
}

#[test]
fn running_stack_answers_stats_over_its_control_socket() {
    let dir = std::env::temp_dir().join(format!("ustack-stats-test-{}", std::process::id()));
    let path = control::socket_path(&dir, std::process::id());
    let server = ControlServer::start(&path).unwrap();

    let (la, mut lb) = MemoryLink::pair(4096);
    let clock = Clock::start();
    let mut stack = iface(2, clock.now());
    let l = stack.tcp().socket();
    stack
        .tcp()
        .listen(l, "10.0.0.2:5001".parse().unwrap(), 8)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    // The memory link has no fd: the driver waits on one that never becomes readable.
    let (wait_fd, _keep) = UnixStream::pair().unwrap();
    let driver = std::thread::spawn(move || {
        let mut link = la;
        driver::run_with_app(
            &mut stack,
            &mut link,
            wait_fd.as_raw_fd(),
            &clock,
            &stop2,
            &mut |iface, _| server.poll(iface),
        )
        .unwrap();
        // The control socket goes away with the server.
        drop(server);
        stack
    });

    // The peer, driven here.
    let peer_clock = Clock::start();
    let mut peer = iface(1, peer_clock.now());
    let c = peer.tcp().socket();
    let cx = peer.tcp_context(peer_clock.now());
    peer.tcp()
        .connect(c, &cx, "10.0.0.2:5001".parse().unwrap())
        .unwrap();
    let data = vec![0x5a; 10_000];
    let mut sent = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while peer.tcp().info(c).unwrap().bytes_acked < data.len() as u64 {
        assert!(std::time::Instant::now() < deadline, "transfer stalled");
        peer.poll_link(peer_clock.now(), &mut lb).unwrap();
        if sent < data.len() {
            sent += peer.tcp().send(c, &data[sent..]).unwrap_or(0);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let local = peer.tcp().local_addr(c).unwrap();

    let text = control::query(&path, false).unwrap();
    assert!(text.contains("ethernet.rx_frames"), "{text}");
    assert!(text.contains("tcp sockets: 2"), "{text}");
    assert!(
        text.contains(&format!("ESTABLISHED  10.0.0.2:5001         {local}")),
        "{text}"
    );
    assert!(text.contains("bytes_received:10000"), "{text}");

    let json: serde_json::Value =
        serde_json::from_str(&control::query(&path, true).unwrap()).unwrap();
    assert!(json["counters"]["tcp.rx_segments"].as_u64().unwrap() >= 3);
    assert_eq!(json["counters"]["ipv4.dropped.bad_checksum"], 0);
    let conn = json["tcp"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"] == "ESTABLISHED")
        .unwrap();
    assert_eq!(conn["remote"], local.to_string());
    assert_eq!(conn["bytes_received"], 10_000);
    assert_eq!(conn["sack"], true);

    // The binary finds this process by pid in the run directory.
    assert_eq!(
        control::running(&dir),
        vec![(std::process::id(), path.clone())]
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ustack"))
        .args(["stats", "--json", "--pid", &std::process::id().to_string()])
        .env("USTACK_RUN_DIR", &dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tcp"].as_array().unwrap().len(), 2);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ustack"))
        .arg("stats")
        .env("USTACK_RUN_DIR", &dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("bytes_received:10000"));

    stop.store(true, Ordering::Relaxed);
    let stack = driver.join().unwrap();
    assert!(!path.exists(), "control socket removed at exit");
    assert!(stack.counters().tcp_rx_segments >= 3);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ustack"))
        .arg("stats")
        .env("USTACK_RUN_DIR", &dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no running ustack found"));
    let _ = std::fs::remove_dir(&dir);
}
