//! `ustack stats` against a running stack: a `NetStack` whose driver answers the
//! control socket from a hook, on an in-memory pair in this process, with a control
//! socket in a private run directory; a peer stack opens a TCP connection and sends
//! data. The report comes back through `control::query` and through the `ustack stats`
//! binary.

use std::io::Write;
use ustack_socket::{NetStack, TcpStream};
use ustack_tools::control::{self, ControlServer};

#[test]
fn running_stack_answers_stats_over_its_control_socket() {
    let dir = std::env::temp_dir().join(format!("ustack-stats-test-{}", std::process::id()));
    let path = control::socket_path(&dir, std::process::id());

    let (stack, peer) = NetStack::builder()
        .ip("10.0.0.2/24".parse().unwrap())
        .build_pair(NetStack::builder().ip("10.0.0.1/24".parse().unwrap()), 4096)
        .unwrap();
    let waker = stack.driver_waker();
    let server = ControlServer::start(&path, move || waker.wake()).unwrap();
    stack.add_hook(move |iface, _| {
        let l = iface.tcp().socket();
        iface
            .tcp()
            .listen(l, "10.0.0.2:5001".parse().unwrap(), 8)
            .unwrap();
        Box::new(move |round| server.poll(round.iface, Some(round.driver), || round.ring.stats()))
    });

    // The peer: the socket API on the other stack.
    let mut stream = TcpStream::connect(&peer, "10.0.0.2:5001").unwrap();
    stream.write_all(&[0x5a; 10_000]).unwrap();
    let local = stream.local_addr().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !control::query(&path, false)
        .unwrap()
        .contains("bytes_received:10000")
    {
        assert!(std::time::Instant::now() < deadline, "transfer stalled");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }

    let text = control::query(&path, false).unwrap();
    assert!(text.contains("ethernet.rx_frames"), "{text}");
    assert!(text.contains("tcp sockets: 2"), "{text}");
    assert!(
        text.contains(&format!("ESTABLISHED  10.0.0.2:5001         {local}")),
        "{text}"
    );
    assert!(text.contains("bytes_received:10000"), "{text}");
    // The host loop's counters come with it: rounds ran, and the peer's segments made
    // the engine report the connection.
    assert!(text.contains("host loop: "), "{text}");

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
    let host = &json["host_loop"];
    assert!(
        host["rounds"].as_u64().unwrap() + host["caller_rounds"].as_u64().unwrap() > 0,
        "{host}"
    );
    assert!(host["ready_sockets"].as_u64().unwrap() > 0, "{host}");
    // A memory link has no receive ring: null, and no `packet ring:` line.
    assert!(json["packet_ring"].is_null(), "{json}");
    assert!(!text.contains("packet ring"), "{text}");

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

    // Stopping drops the hook, and the control socket with it.
    let stopped = stack.stop().unwrap();
    assert!(!path.exists(), "control socket removed at exit");
    assert!(stopped.iface.counters().tcp_rx_segments >= 3);
    drop(stream);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ustack"))
        .arg("stats")
        .env("USTACK_RUN_DIR", &dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no running ustack found"));
    let _ = std::fs::remove_dir(&dir);
}
