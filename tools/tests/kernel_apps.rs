//! The application subcommands (`http`, `nc`, `send`/`recv`, `ping`, `dns`, `demo`)
//! against the Linux kernel, each inside a network namespace the test creates.
//!
//! These tests run the **built `ustack` binary** (`CARGO_BIN_EXE_ustack`) inside the
//! namespace with `ip netns exec`, exactly as a user would, on a TAP `tap0` whose kernel
//! side is 10.77.0.1/24 (the stack is 10.77.0.2/24). They live in `tools/tests/` because
//! only the binary's own package sees `CARGO_BIN_EXE_ustack`. The namespace guard
//! ([`Netns`]) kills what still runs inside and deletes the namespace on every exit
//! path, panics included; [`Proc`] also kills its process on drop.
//!
//! The kernel's side of each conversation (HTTP client and server, TCP senders and
//! receivers, the DNS responder) is Rust on kernel sockets, on a thread that entered
//! the namespace ([`Netns::spawn_in`], [`peer`]): no curl, socat or python.
//!
//! Without CAP_NET_ADMIN/NET_RAW/SYS_ADMIN they print a loud SKIPPED banner; under
//! `USTACK_REQUIRE_NETNS=1` they fail instead.

use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ustack_socket::kernel_peer::{http_get, HttpFileServer};
use ustack_socket::netns::{Netns, NsThread};

const BIN: &str = env!("CARGO_BIN_EXE_ustack");
const KERNEL_IP: &str = "10.77.0.1";
const STACK_IP: &str = "10.77.0.2";
const STACK_CIDR: &str = "10.77.0.2/24";

/// Whether the test can run (privileges); otherwise skip loudly, or fail under
/// `USTACK_REQUIRE_NETNS=1` (the harness's rule).
fn can_run() -> bool {
    let test = std::thread::current()
        .name()
        .unwrap_or("kernel test")
        .to_owned();
    ustack_tests::netns_available(&test)
}

/// A namespace with `tap0` (kernel 10.77.0.1/24) for the stack to attach to.
fn namespace() -> Netns {
    let ns = Netns::new("ustack-test").expect("create namespace");
    ns.add_tap("tap0", "10.77.0.1/24").expect("create tap");
    ns
}

/// `ustack --tap tap0 --ip 10.77.0.2/24 ARGS...` inside `ns`.
fn ustack(ns: &Netns, args: &[&str]) -> Command {
    let mut full = vec![BIN, "--tap", "tap0", "--ip", STACK_CIDR];
    full.extend_from_slice(args);
    let mut cmd = ns.command(&full);
    cmd.env("RUST_LOG", "warn");
    cmd
}

/// A child process killed (SIGTERM, then SIGKILL) on drop.
struct Proc {
    child: Option<Child>,
    what: String,
}

impl Proc {
    fn spawn(mut cmd: Command, what: &str) -> Proc {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        Proc {
            child: Some(child),
            what: what.to_owned(),
        }
    }

    /// Waits up to `limit` for the process to exit and returns its output.
    fn wait(mut self, limit: Duration) -> Output {
        let mut child = self.child.take().expect("waited once");
        let start = Instant::now();
        while child.try_wait().expect("try_wait").is_none() {
            if start.elapsed() > limit {
                let _ = child.kill();
                let out = child.wait_with_output().expect("wait");
                panic!(
                    "{} did not finish in {limit:?}; stderr:\n{}",
                    self.what,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("wait")
    }

    /// SIGTERM, then the output.
    fn stop(mut self) -> Output {
        let mut child = self.child.take().expect("stopped once");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let start = Instant::now();
        while child.try_wait().expect("try_wait").is_none()
            && start.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait_with_output().expect("wait")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(
            format!(
                "ustack-apps-{tag}-{}-{:?}",
                std::process::id(),
                Instant::now()
            )
            .replace([' ', '{', '}', ':', ','], ""),
        );
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn s(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `len` seeded pseudo-random bytes to `path` and returns their SHA-256.
fn random_file(path: &Path, len: usize, seed: u64) -> String {
    let mut x = seed | 1;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        data.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, &data).expect("write test file");
    sha256(&data)
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sha256_file(path: &Path) -> String {
    sha256(&std::fs::read(path).expect("read output"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `f` as the kernel's side of a test, on a thread inside `ns`.
fn peer<T: Send + 'static>(
    ns: &Netns,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> NsThread<T> {
    ns.spawn_in(what, f)
        .unwrap_or_else(|e| panic!("kernel peer `{what}`: {e}"))
}

/// Waits up to `limit` for a kernel peer's result.
fn join<T>(peer: NsThread<T>, limit: Duration) -> T {
    let what = peer.what().to_owned();
    peer.join_timeout(limit)
        .unwrap_or_else(|_| panic!("kernel peer `{what}` still running after {limit:?}"))
}

/// Runs `f` inside `ns` and waits for it.
fn in_ns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    ns.run_in(f).expect("enter the namespace")
}

fn addr(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}").parse().expect("addr")
}

/// Hashes and counts what is written to it.
#[derive(Default)]
struct HashWriter {
    hash: Sha256,
    len: u64,
}

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hash.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl HashWriter {
    fn hex(self) -> String {
        self.hash
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Waits until a TCP port on `ip` accepts a connection from inside `ns`.
fn wait_port(ns: &Netns, ip: &str, port: u16) {
    let to = addr(ip, port);
    let up = in_ns(ns, move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if TcpStream::connect_timeout(&to, Duration::from_millis(500)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    });
    assert!(up, "nothing listens on {ip}:{port} after 10 s");
}

/// The kernel's TCP client: connects to `to` (retrying for up to 10 s while nothing
/// listens yet), sends the file at `path`, half-closes, reads to EOF.
fn send_file(to: SocketAddr, path: &Path) -> std::io::Result<u64> {
    let start = Instant::now();
    let mut s = loop {
        match TcpStream::connect_timeout(&to, Duration::from_secs(2)) {
            Ok(s) => break s,
            Err(e) if start.elapsed() > Duration::from_secs(10) => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let n = std::io::copy(&mut std::fs::File::open(path)?, &mut s)?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)?;
    Ok(n)
}

/// The kernel's TCP receiver: accepts one connection and hashes it to EOF.
fn receive_one(listener: TcpListener) -> std::io::Result<(u64, String)> {
    let (mut c, _) = listener.accept()?;
    c.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut sink = HashWriter::default();
    std::io::copy(&mut c, &mut sink)?;
    Ok((sink.len, sink.hex()))
}

// ---------------------------------------------------------------------------------
// http

#[test]
fn kernel_apps_kernel_http_client_fetches_from_http_serve_1mb_and_100mb() {
    if !can_run() {
        return;
    }
    let ns = namespace();
    let dir = TempDir::new("serve");
    let small = random_file(&dir.path("1m.bin"), 1_000_000, 1);
    let big = random_file(&dir.path("100m.bin"), 100_000_000, 2);
    std::fs::write(dir.path("index.html"), "<h1>hello from ustack</h1>\n").unwrap();
    let mut cmd = ustack(&ns, &["http", "serve", &dir.s(""), "--port", "8080"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let server = Proc::spawn(cmd, "ustack http serve");
    wait_port(&ns, STACK_IP, 8080);

    // The kernel's HTTP client (what curl does), GETs with Connection: close.
    let to = addr(STACK_IP, 8080);
    let get = |path: &'static str| {
        in_ns(&ns, move || {
            let mut body = Vec::new();
            http_get(to, path, &mut body).map(|r| (r.status, body))
        })
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    };
    let (status, page) = get("/");
    assert_eq!(status, 200);
    assert_eq!(text(&page), "<h1>hello from ustack</h1>\n");
    assert_eq!(get("/nope").0, 404);
    // Sent as is (curl --path-as-is): the server must not leave its directory.
    assert_eq!(get("/../../../etc/passwd").0, 404);
    for (name, want) in [("1m.bin", &small), ("100m.bin", &big)] {
        let start = Instant::now();
        let path = format!("/{name}");
        let (status, len, sha) = in_ns(&ns, move || {
            let mut sink = HashWriter::default();
            let r = http_get(to, &path, &mut sink).expect("GET");
            (r.status, sink.len, sink.hex())
        });
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(status, 200, "{name}");
        assert_eq!(&sha, want, "{name} differs");
        eprintln!(
            "kernel HTTP client <- ustack http serve: {name} {len} bytes in {secs:.2} s ({:.1} MB/s)",
            len as f64 / secs / 1e6
        );
    }
    let out = server.stop();
    let err = text(&out.stderr);
    assert!(err.contains("\"GET /100m.bin\" 200"), "{err}");
}

#[test]
fn kernel_apps_http_get_fetches_from_kernel_http_server_1mb_and_100mb() {
    if !can_run() {
        return;
    }
    let ns = namespace();
    let dir = TempDir::new("pyserve");
    let small = random_file(&dir.path("1m.bin"), 1_000_000, 3);
    let big = random_file(&dir.path("100m.bin"), 100_000_000, 4);
    // The kernel's HTTP file server (what `python3 -m http.server` does).
    let root = dir.path("");
    let _server = in_ns(&ns, move || {
        HttpFileServer::start(addr(KERNEL_IP, 8000), &root)
    })
    .expect("kernel HTTP server");
    let out_dir = TempDir::new("get");
    for (name, want) in [("1m.bin", &small), ("100m.bin", &big)] {
        let url = format!("http://{KERNEL_IP}:8000/{name}");
        let mut cmd = ustack(&ns, &["http", "get", &url, "-o", &out_dir.s(name)]);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = Proc::spawn(cmd, "ustack http get").wait(Duration::from_secs(120));
        let err = text(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert_eq!(&sha256_file(&out_dir.path(name)), want, "{name} differs");
        assert!(err.contains(&format!("sha256 {want}")), "{err}");
        eprintln!(
            "ustack http get <- kernel HTTP server: {name}: {}",
            err.lines().last().unwrap_or("")
        );
    }
    // Names are refused with a pointer to `ustack dns`.
    let out = ustack(&ns, &["http", "get", "http://example.invalid/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not an IPv4 or IPv6 address"),
        "{}",
        text(&out.stderr)
    );
}
// ---------------------------------------------------------------------------------
// nc

#[test]
fn kernel_apps_nc_both_directions_with_kernel_peers() {
    if !can_run() {
        return;
    }
    let ns = namespace();
    let dir = TempDir::new("nc");
    let want = random_file(&dir.path("in.bin"), 300_000, 5);
    // Our nc connects to a kernel listener and sends stdin, then half-closes.
    let listener = in_ns(&ns, || TcpListener::bind(addr(KERNEL_IP, 9000))).expect("listen");
    let receiver = peer(&ns, "receiver", move || receive_one(listener));
    let mut nc = ustack(&ns, &["nc", KERNEL_IP, "9000"]);
    nc.stdin(std::fs::File::open(dir.path("in.bin")).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = Proc::spawn(nc, "ustack nc").wait(Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (len, sha) = join(receiver, Duration::from_secs(10)).expect("kernel receiver");
    assert_eq!(len, 300_000);
    assert_eq!(sha, want, "kernel received other bytes");

    // Our nc -l receives from a kernel client and exits when it closes.
    let mut nc = ustack(&ns, &["nc", "-l", "9001"]);
    nc.stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.path("u.out")).unwrap())
        .stderr(Stdio::piped());
    let listener = Proc::spawn(nc, "ustack nc -l");
    let file = dir.path("in.bin");
    let sender = peer(&ns, "sender", move || {
        send_file(addr(STACK_IP, 9001), &file)
    });
    let sent = join(sender, Duration::from_secs(30)).expect("kernel sender");
    assert_eq!(sent, 300_000);
    let out = listener.wait(Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        sha256_file(&dir.path("u.out")),
        want,
        "nc -l wrote other bytes"
    );
}

// ---------------------------------------------------------------------------------
// send / recv

#[test]
fn kernel_apps_send_and_recv_100mb_with_kernel_peers() {
    if !can_run() {
        return;
    }
    let ns = namespace();
    let dir = TempDir::new("xfer");
    let want = random_file(&dir.path("in.bin"), 100_000_000, 6);

    // kernel sender -> ustack recv
    let mut recv = ustack(&ns, &["recv", "9100", "-o", &dir.s("recv.out")]);
    recv.stdout(Stdio::piped()).stderr(Stdio::piped());
    let recv = Proc::spawn(recv, "ustack recv");
    let file = dir.path("in.bin");
    let sender = peer(&ns, "sender", move || {
        send_file(addr(STACK_IP, 9100), &file)
    });
    let sent = join(sender, Duration::from_secs(60)).expect("kernel sender");
    assert_eq!(sent, 100_000_000);
    let out = recv.wait(Duration::from_secs(60));
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("sha256 {want}")), "{err}");
    assert_eq!(sha256_file(&dir.path("recv.out")), want);
    eprintln!(
        "kernel sender -> ustack recv: {}",
        err.lines().last().unwrap_or("")
    );

    // ustack send -> kernel receiver
    let listener = in_ns(&ns, || TcpListener::bind(addr(KERNEL_IP, 9101))).expect("listen");
    let receiver = peer(&ns, "receiver", move || receive_one(listener));
    let mut send = ustack(&ns, &["send", &dir.s("in.bin"), KERNEL_IP, "9101"]);
    send.stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = Proc::spawn(send, "ustack send").wait(Duration::from_secs(60));
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("sha256 {want}")), "{err}");
    let (len, sha) = join(receiver, Duration::from_secs(10)).expect("kernel receiver");
    assert_eq!(len, 100_000_000);
    assert_eq!(sha, want);
    eprintln!(
        "ustack send -> kernel receiver: {}",
        err.lines().last().unwrap_or("")
    );
}

// ---------------------------------------------------------------------------------
// ping

#[test]
fn kernel_apps_ping_the_kernel() {
    if !can_run() {
        return;
    }
    let ns = namespace();
    // -W 3: the kernel drops what it sends in the instant after the TAP's carrier comes
    // up (its queue discipline is attached a moment later), so its first ARP reply can
    // be lost and the first echo then waits for the stack's ARP retry after 1 s.
    let out = ustack(&ns, &["ping", KERNEL_IP, "-c", "5", "-i", "0.1", "-W", "3"])
        .output()
        .unwrap();
    let s = text(&out.stdout);
    assert!(out.status.success(), "{s}{}", text(&out.stderr));
    assert!(
        s.starts_with(&format!(
            "PING {KERNEL_IP} ({KERNEL_IP}) 56(84) bytes of data.\n"
        )),
        "{s}"
    );
    for seq in 1..=5 {
        assert!(
            s.contains(&format!(
                "64 bytes from {KERNEL_IP}: icmp_seq={seq} ttl=64 time="
            )),
            "{s}"
        );
    }
    assert!(
        s.contains("5 packets transmitted, 5 received, 0% packet loss"),
        "{s}"
    );
    assert!(s.contains("rtt min/avg/max/mdev = "), "{s}");
    assert!(!s.contains("wrong data"), "{s}");

    // Fragmented both ways.
    let out = ustack(
        &ns,
        &[
            "ping", KERNEL_IP, "-c", "2", "-i", "0.1", "-s", "3000", "-W", "3",
        ],
    )
    .output()
    .unwrap();
    let s = text(&out.stdout);
    assert!(
        s.contains("2 packets transmitted, 2 received, 0% packet loss"),
        "{s}"
    );
    assert!(s.contains("3008 bytes from"), "{s}");

    // Nobody there: no reply, exit code 1.
    let out = ustack(
        &ns,
        &["ping", "10.77.0.99", "-c", "2", "-i", "0.1", "-W", "0.3"],
    )
    .output()
    .unwrap();
    let s = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{s}");
    assert!(
        s.contains("2 packets transmitted, 0 received, 100% packet loss"),
        "{s}"
    );
}

// ---------------------------------------------------------------------------------
// demo

#[test]
fn kernel_apps_demo_pings_fetches_echoes_over_both_families_and_leaves_no_namespace() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new("demo");
    let pcap = dir.s("demo.pcap");
    let child = Command::new(BIN)
        .args(["--pcap", &pcap, "demo"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ustack demo");
    let pid = child.id();
    let proc = Proc {
        child: Some(child),
        what: "ustack demo".into(),
    };
    let out = proc.wait(Duration::from_secs(60));
    let s = text(&out.stdout);
    assert!(out.status.success(), "{s}{}", text(&out.stderr));
    // The kernel side is the demo's own threads: every step answered, nothing skipped.
    assert!(
        s.contains("3 packets transmitted, 3 received, 0% packet loss"),
        "{s}"
    );
    assert!(
        s.contains("2 packets transmitted, 2 received, 0% packet loss"),
        "{s}"
    );
    assert!(s.contains("3008 bytes from 10.77.0.2: icmp_seq=1"), "{s}");
    assert!(s.contains("HTTP/1.1 200 OK"), "{s}");
    assert!(s.contains("<h1>Hello from ustack</h1>"), "{s}");
    let lower = s.to_lowercase();
    assert!(
        !lower.contains("skipped") && !lower.contains("failed"),
        "{s}"
    );
    assert!(s.contains("hello over TCP\n"), "{s}");
    assert!(s.contains("hello over UDP\n"), "{s}");
    assert!(s.contains("== what crossed the wire"), "{s}");
    assert!(
        s.contains("10.77.0.2.80: TCP [S]") || s.contains(".80: TCP"),
        "{s}"
    );
    // The IPv6 part: the same steps to fd00:77::2, and what crossed the wire decoded.
    assert_eq!(
        s.matches("3 packets transmitted, 3 received, 0% packet loss")
            .count(),
        2,
        "{s}"
    );
    assert_eq!(
        s.matches("2 packets transmitted, 2 received, 0% packet loss")
            .count(),
        2,
        "{s}"
    );
    assert!(
        s.contains("64 bytes from fd00:77::2: icmp_seq=3 hlim="),
        "{s}"
    );
    assert!(
        s.contains("3008 bytes from fd00:77::2: icmp_seq=2 hlim="),
        "{s}"
    );
    let v6_http = s
        .split_once("== HTTP/1.1 GET over IPv6")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no IPv6 HTTP step: {s}"));
    assert!(v6_http.contains("curl -i http://[fd00:77::2]/"), "{s}");
    assert!(v6_http.contains("HTTP/1.1 200 OK"), "{s}");
    assert!(v6_http.contains("<h1>Hello from ustack</h1>"), "{s}");
    assert!(
        s.contains("kernel IPv6 neighbour table: fd00:77::2 lladdr"),
        "{s}"
    );
    assert!(
        s.contains("IP6 fd00:77::1 > fd00:77::2: frag (0|1448) ICMP6, echo request"),
        "{s}"
    );
    assert!(
        s.contains("IP6 fd00:77::2 > fd00:77::1: frag (0|1448) ICMP6, echo reply"),
        "{s}"
    );
    assert!(s.contains("IP6 fd00:77::2.80 > fd00:77::1."), "{s}");
    assert!(s.contains(&format!("== pcap written to {pcap}")), "{s}");
    assert!(std::fs::metadata(&pcap).is_ok_and(|m| m.len() > 0));
    // RFC 6437: the stack's segments of the IPv6 HTTP connection, which the kernel
    // accepted (the page came), all carry one nonzero flow label.
    let mut reader =
        ustack::link::PcapReader::new(std::io::BufReader::new(std::fs::File::open(&pcap).unwrap()))
            .unwrap();
    let stack_ip6: std::net::Ipv6Addr = "fd00:77::2".parse().unwrap();
    let mut labels = Vec::new();
    while let Some(rec) = reader.next_record().unwrap() {
        let f = &rec.data;
        if f.len() >= 54 && f[12..14] == [0x86, 0xdd] && f[20] == 6 {
            let src: [u8; 16] = f[22..38].try_into().unwrap();
            if std::net::Ipv6Addr::from(src) == stack_ip6 {
                labels.push(u32::from_be_bytes([0, f[15] & 0x0f, f[16], f[17]]));
            }
        }
    }
    assert!(labels.len() >= 3, "{labels:?}");
    assert!(
        labels[0] != 0 && labels.iter().all(|l| *l == labels[0]),
        "{labels:?}"
    );
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let prefix = format!("ustack-demo-{pid}-");
    assert!(
        !text(&list.stdout).contains(&prefix),
        "the demo left its namespace: {}",
        text(&list.stdout)
    );
}

// ---------------------------------------------------------------------------------
// dns

/// A tiny DNS responder for the test, on a kernel UDP socket bound to 10.77.0.1:53
/// inside the namespace: `host.ustack.test` A 10.77.0.53; `www.ustack.test` a CNAME to
/// it (compressed, with the A record after it); `retry.ustack.test` answered only from
/// its second query on; NXDOMAIN for every other name. Runs until `stop` is set.
fn dns_responder(sock: UdpSocket, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut seen: std::collections::HashMap<String, u32> = Default::default();
    let mut q = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        let (n, peer) = match sock.recv_from(&mut q) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        let q = &q[..n];
        // The question: labels from offset 12, then QTYPE and QCLASS.
        let (mut i, mut labels) = (12usize, Vec::new());
        while i < q.len() && q[i] != 0 {
            let len = usize::from(q[i]);
            let Some(label) = q.get(i + 1..i + 1 + len) else {
                break;
            };
            labels.push(String::from_utf8_lossy(label).to_lowercase());
            i += 1 + len;
        }
        if i + 5 > q.len() {
            continue;
        }
        let name = labels.join(".");
        let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
        let question = &q[12..i + 5];
        let count = seen.entry(name.clone()).or_default();
        *count += 1;
        if name == "retry.ustack.test" && *count == 1 {
            continue;
        }
        // TYPE A, CLASS IN, TTL 300, RDLENGTH 4, 10.77.0.53.
        let a: &[u8] = &[0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 10, 77, 0, 53];
        let (rcode, answers): (u16, Vec<Vec<u8>>) =
            if (name == "host.ustack.test" || name == "retry.ustack.test") && qtype == 1 {
                (0, vec![[&[0xc0, 0x0c][..], a].concat()])
            } else if name == "www.ustack.test" && qtype == 1 {
                // CNAME www -> host (host.ustack.test written once, then pointed at).
                let target: &[u8] = b"\x04host\xc0\x10";
                let mut cname = vec![0xc0, 0x0c, 0, 5, 0, 1, 0, 0, 0, 60, 0, target.len() as u8];
                cname.extend_from_slice(target);
                let host_at = (12 + question.len() + 12) as u16;
                let owner = (0xc000 | host_at).to_be_bytes();
                (0, vec![cname, [&owner[..], a].concat()])
            } else {
                (3, Vec::new())
            };
        let mut reply = Vec::new();
        reply.extend_from_slice(&q[..2]);
        reply.extend_from_slice(&(0x8180 | rcode).to_be_bytes());
        reply.extend_from_slice(&1u16.to_be_bytes());
        reply.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        reply.extend_from_slice(&[0, 0, 0, 0]);
        reply.extend_from_slice(question);
        for ans in &answers {
            reply.extend_from_slice(ans);
        }
        sock.send_to(&reply, peer)?;
    }
    Ok(())
}

#[test]
fn kernel_apps_dns_queries_a_responder_in_the_namespace() {
    if !can_run() {
        return;
    }
    let ns = namespace();
    let sock = in_ns(&ns, || UdpSocket::bind(addr(KERNEL_IP, 53))).expect("bind :53");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let responder = peer(&ns, "DNS responder", move || dns_responder(sock, flag));
    let server = format!("@{KERNEL_IP}");

    let out = ustack(&ns, &["dns", "host.ustack.test", &server])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "host.ustack.test. 300 IN A 10.77.0.53\n");
    assert!(
        text(&out.stderr).contains("NOERROR"),
        "{}",
        text(&out.stderr)
    );

    // A CNAME chain, the A record's owner compressed.
    let out = ustack(&ns, &["dns", "WWW.ustack.test.", &server])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "WWW.ustack.test. 60 IN CNAME host.ustack.test.\n\
         host.ustack.test. 300 IN A 10.77.0.53\n"
    );

    // The first query is ignored: the retry gets the answer.
    let out = ustack(
        &ns,
        &["dns", "retry.ustack.test", &server, "--timeout", "0.5"],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("retrying"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout),
        "retry.ustack.test. 300 IN A 10.77.0.53\n"
    );

    // NXDOMAIN: exit 1, nothing on stdout.
    let out = ustack(&ns, &["dns", "nope.ustack.test", &server])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    assert!(
        text(&out.stderr).contains("nope.ustack.test.: NXDOMAIN"),
        "{}",
        text(&out.stderr)
    );

    // Nobody on that port: the kernel's port unreachable ends it at once.
    let out = ustack(
        &ns,
        &[
            "dns",
            "host.ustack.test",
            &server,
            "--port",
            "5399",
            "--timeout",
            "0.3",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    stop.store(true, Ordering::Relaxed);
    join(responder, Duration::from_secs(5)).expect("DNS responder");
}

// ---------------------------------------------------------------------------------
// --netns

#[test]
fn kernel_apps_netns_option_enters_the_namespace_from_the_root_one() {
    if !can_run() {
        return;
    }
    let ns = namespace();
    let root_had_tap0 = Command::new("ip")
        .args(["link", "show", "tap0"])
        .stderr(Stdio::null())
        .output()
        .unwrap()
        .status
        .success();
    // Started in the root namespace: the process enters `ns` itself, so the TAP it
    // opens and every packet stay inside it.
    let out = Command::new(BIN)
        .args([
            "--netns",
            ns.name(),
            "--tap",
            "tap0",
            "--ip",
            STACK_CIDR,
            "ping",
            KERNEL_IP,
            "-c",
            "2",
            "-i",
            "0.1",
            // As in kernel_apps_ping_the_kernel: the first reply may wait for the
            // stack's ARP retry.
            "-W",
            "3",
            "--stats",
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let s = text(&out.stdout);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{s}{err}");
    assert!(
        s.contains("2 packets transmitted, 2 received, 0% packet loss"),
        "{s}"
    );
    // --stats on a socket-API command: the report on stderr at exit.
    assert!(err.contains("interface counters (non-zero):"), "{err}");
    assert!(err.contains("ipv4.rx_packets"), "{err}");
    // The TAP was opened inside `ns`: none appeared in the root namespace.
    if !root_had_tap0 {
        let root = Command::new("ip")
            .args(["link", "show", "tap0"])
            .stderr(Stdio::null())
            .output()
            .unwrap();
        assert!(
            !root.status.success(),
            "a tap0 appeared in the root namespace"
        );
    }

    // A namespace that does not exist: a clear error, exit 1, nothing opened.
    let missing = format!("{}-missing", ns.name());
    let out = Command::new(BIN)
        .args(["--netns", &missing, "--tap", "tap0", "--ip", STACK_CIDR])
        .args(["ping", KERNEL_IP, "-c", "1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("no network namespace `{missing}`")),
        "{err}"
    );
    assert_eq!(text(&out.stdout), "");
    let out = Command::new(BIN)
        .args(["--netns", "../x", "ping", KERNEL_IP])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not a path"),
        "{}",
        text(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------
// IPv6

/// The kernel's IPv6 address on `tap0` in [`namespace6`].
const KERNEL6: &str = "fd00:77::1";
/// The stack's IPv6 address (`--ip fd00:77::2/64`).
const STACK6: &str = "fd00:77::2";

/// As [`namespace`], with IPv6 on and the kernel at fd00:77::1/64 too (`nodad`).
fn namespace6() -> Netns {
    let ns = Netns::new("ustack-test6").expect("create namespace");
    // `Netns` turns IPv6 off; on before the TAP exists, so that it inherits `default`.
    ns.run_in(|| {
        for which in ["all", "default"] {
            std::fs::write(format!("/proc/sys/net/ipv6/conf/{which}/disable_ipv6"), "0")
                .expect("enable IPv6 in the namespace");
        }
    })
    .expect("enter namespace");
    ns.add_tap("tap0", "10.77.0.1/24").expect("create tap");
    ns.ip(&["-6", "addr", "add", "fd00:77::1/64", "dev", "tap0", "nodad"])
        .expect("ip -6 addr add");
    ns
}

/// `ustack --tap tap0 --ip 10.77.0.2/24 --ip fd00:77::2/64 ARGS...` inside `ns`.
fn ustack6(ns: &Netns, args: &[&str]) -> Command {
    let mut full = vec![
        BIN,
        "--tap",
        "tap0",
        "--ip",
        STACK_CIDR,
        "--ip",
        "fd00:77::2/64",
    ];
    full.extend_from_slice(args);
    let mut cmd = ns.command(&full);
    cmd.env("RUST_LOG", "warn");
    cmd
}

fn addr6(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("ip"), port)
}

/// A DNS responder on its socket until `stop`: `host6.ustack.test` AAAA fd00:77::53
/// (TTL 300); NXDOMAIN for everything else.
fn dns_responder6(sock: UdpSocket, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut q = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        let (n, peer) = match sock.recv_from(&mut q) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        let q = &q[..n];
        let (mut i, mut labels) = (12usize, Vec::new());
        while i < q.len() && q[i] != 0 {
            let len = usize::from(q[i]);
            let Some(label) = q.get(i + 1..i + 1 + len) else {
                break;
            };
            labels.push(String::from_utf8_lossy(label).to_lowercase());
            i += 1 + len;
        }
        if i + 5 > q.len() {
            continue;
        }
        let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
        let question = &q[12..i + 5];
        let hit = labels.join(".") == "host6.ustack.test" && qtype == 28;
        let mut reply = Vec::new();
        reply.extend_from_slice(&q[..2]);
        reply.extend_from_slice(&(0x8180u16 | if hit { 0 } else { 3 }).to_be_bytes());
        reply.extend_from_slice(&[0, 1, 0, u8::from(hit), 0, 0, 0, 0]);
        reply.extend_from_slice(question);
        if hit {
            // Owner (pointer to the question), TYPE AAAA, CLASS IN, TTL 300, RDLENGTH 16.
            reply.extend_from_slice(&[0xc0, 0x0c, 0, 28, 0, 1, 0, 0, 1, 44, 0, 16]);
            let a: std::net::Ipv6Addr = "fd00:77::53".parse().expect("ip");
            reply.extend_from_slice(&a.octets());
        }
        sock.send_to(&reply, peer)?;
    }
    Ok(())
}

/// `nc`, `send`, `recv`, `http get` and `dns` (AAAA, from a server reached over IPv6)
/// with IPv6 addresses, against kernel peers on the kernel's IPv6 address.
#[test]
fn kernel_apps_ipv6_nc_send_recv_http_get_and_dns_aaaa() {
    if !can_run() {
        return;
    }
    let ns = namespace6();
    let dir = TempDir::new("v6");
    let want = random_file(&dir.path("in.bin"), 1_000_000, 61);

    // ustack send [v6] -> kernel receiver.
    let listener = in_ns(&ns, || TcpListener::bind(addr6(KERNEL6, 9200))).expect("listen");
    let receiver = peer(&ns, "receiver", move || receive_one(listener));
    let mut send = ustack6(&ns, &["send", &dir.s("in.bin"), KERNEL6, "9200"]);
    send.stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = Proc::spawn(send, "ustack send (IPv6)").wait(Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (len, sha) = join(receiver, Duration::from_secs(10)).expect("kernel receiver");
    assert_eq!(
        (len, sha.as_str()),
        (1_000_000, want.as_str()),
        "send over IPv6"
    );

    // kernel sender [v6] -> ustack recv (listening on [::]).
    let mut recv = ustack6(&ns, &["recv", "9201", "-o", &dir.s("recv.out")]);
    recv.stdout(Stdio::piped()).stderr(Stdio::piped());
    let recv = Proc::spawn(recv, "ustack recv (IPv6)");
    let file = dir.path("in.bin");
    let sender = peer(&ns, "sender", move || send_file(addr6(STACK6, 9201), &file));
    assert_eq!(
        join(sender, Duration::from_secs(60)).expect("kernel sender"),
        1_000_000
    );
    let out = recv.wait(Duration::from_secs(60));
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("receiving from [{KERNEL6}]")),
        "{err}"
    );
    assert_eq!(sha256_file(&dir.path("recv.out")), want, "recv over IPv6");

    // ustack nc [v6] -> kernel receiver.
    let listener = in_ns(&ns, || TcpListener::bind(addr6(KERNEL6, 9202))).expect("listen");
    let receiver = peer(&ns, "receiver", move || receive_one(listener));
    let mut nc = ustack6(&ns, &["nc", &format!("[{KERNEL6}]"), "9202"]);
    nc.stdin(std::fs::File::open(dir.path("in.bin")).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = Proc::spawn(nc, "ustack nc (IPv6)").wait(Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (len, sha) = join(receiver, Duration::from_secs(10)).expect("kernel receiver");
    assert_eq!(
        (len, sha.as_str()),
        (1_000_000, want.as_str()),
        "nc over IPv6"
    );

    // ustack http get http://[v6]:8000/ from the kernel's HTTP server.
    let root = dir.path("");
    let _server = in_ns(&ns, move || {
        HttpFileServer::start(addr6(KERNEL6, 8000), &root)
    })
    .expect("server");
    let url = format!("http://[{KERNEL6}]:8000/in.bin");
    let mut get = ustack6(&ns, &["http", "get", &url, "-o", &dir.s("got.bin")]);
    get.stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = Proc::spawn(get, "ustack http get (IPv6)").wait(Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        sha256_file(&dir.path("got.bin")),
        want,
        "http get over IPv6"
    );

    // ustack dns AAAA @v6.
    let sock = in_ns(&ns, || UdpSocket::bind(addr6(KERNEL6, 53))).expect("bind :53");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let responder = peer(&ns, "DNS responder", move || dns_responder6(sock, flag));
    let server = format!("@{KERNEL6}");
    let out = ustack6(
        &ns,
        &["dns", "host6.ustack.test", &server, "--type", "AAAA"],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "host6.ustack.test. 300 IN AAAA fd00:77::53\n"
    );
    stop.store(true, Ordering::Relaxed);
    join(responder, Duration::from_secs(5)).expect("DNS responder");
}
