//! TCP against the Linux kernel, inside a namespace each test creates: the kernel as
//! client of the stack's echo service and as server for a client on the stack; bulk
//! transfers checked with SHA-256 on both sides, concurrency, refusals, resets,
//! negotiated options as `ss` sees them, and recovery from iptables loss.

use std::io::Write;
use std::time::Duration;
use ustack_tests::tcp::{self, Background, BulkClient};
use ustack_tests::{require_netns, Fixture, Options};

const MB: u64 = 1_000_000;

/// Printed even when the test runner captures output (numbers worth seeing in CI).
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn mbit_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 * 8.0 / secs.max(1e-9) / 1e6
}

fn echo_fixture(
    opts: Options,
) -> (
    Fixture,
    std::sync::Arc<std::sync::Mutex<ustack_tools::echo::EchoStats>>,
) {
    let (make, stats) = tcp::echo_app(7);
    (Fixture::start_with_app(opts, make), stats)
}

/// The kernel sends `len` bytes to the echo service and reads them back.
fn kernel_echo(fx: &Fixture, len: u64, timeout: Duration) -> f64 {
    let script = tcp::py_echo_client(&fx.stack_ip, 7, len);
    let bg = Background::spawn(fx, &["python3", "-c", &script]);
    let (ok, out, err) = bg.finish(timeout);
    assert!(ok, "python echo client failed:\n{out}\n{err}");
    let f = tcp::fields(&out, 5);
    assert_eq!(f[0], len.to_string(), "bytes sent by the kernel");
    assert_eq!(f[2], len.to_string(), "bytes echoed back: {out}");
    assert_eq!(f[1], f[3], "SHA-256 of sent vs echoed");
    f[4].parse().expect("seconds")
}

/// A client on the stack exchanges `len` bytes each way with a kernel server.
fn stack_client(fx: &Fixture, len: u64, seed: u64, timeout: Duration) -> tcp::ClientResult {
    let port = 5001;
    let mut server = Background::spawn(
        fx,
        &["python3", "-c", &tcp::py_sink_source_server(port, len)],
    );
    server.wait_for_line("READY");
    let remote = format!("{}:{port}", fx.kernel_ip).parse().expect("addr");
    let (client, rx) = BulkClient::new(remote, len, seed);
    fx.spawn_app(client.into_app());
    let res = tcp::wait_result(&rx, timeout);
    let (ok, out, err) = server.finish(Duration::from_secs(30));
    assert!(ok, "python server failed:\n{out}\n{err}");
    assert!(res.error.is_none(), "client: {res:?}");
    let f = tcp::fields(&out, 4);
    assert_eq!(f[0], len.to_string(), "bytes the kernel received");
    assert_eq!(f[1], res.sent_sha256, "SHA-256 stack -> kernel");
    assert_eq!(f[2], len.to_string(), "bytes the kernel sent");
    assert_eq!(res.received, len, "bytes the stack received");
    assert_eq!(f[3], res.received_sha256, "SHA-256 kernel -> stack");
    res
}

#[test]
fn kernel_tcp_echo_50mb_from_kernel_client() {
    require_netns!("python3");
    let (mut fx, stats) = echo_fixture(Options::default());
    let secs = kernel_echo(&fx, 50 * MB, Duration::from_secs(240));
    let s = *stats.lock().unwrap();
    assert_eq!(s.tcp_bytes, 50 * MB);
    assert_eq!((s.accepted, s.completed, s.failed), (1, 1, 0), "{s:?}");
    let r = fx.stop();
    report(&format!(
        "echo 50 MB each way (kernel client): {secs:.2} s, {:.0} Mbit/s per direction; \
         echo wake-ups {}, services {}; link rx {} / tx {} frames",
        mbit_per_s(50 * MB, secs),
        s.wakeups,
        s.services,
        r.link.rx_frames,
        r.link.tx_frames
    ));
}

#[test]
fn kernel_tcp_stack_client_50mb_each_way_to_kernel_server() {
    require_netns!("python3");
    let fx = Fixture::start(Options::default());
    let res = stack_client(&fx, 50 * MB, 7, Duration::from_secs(240));
    let secs = res.elapsed.as_secs_f64();
    let info = res.info.expect("info");
    report(&format!(
        "stack client 50 MB each way (kernel server): {secs:.2} s, {:.0} Mbit/s per direction; \
         retransmitted segments {}, cwnd {}, srtt {:?}",
        mbit_per_s(50 * MB, secs),
        info.total_retrans,
        info.cwnd,
        info.srtt
    ));
}
