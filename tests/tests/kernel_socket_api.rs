//! The socket API (`ustack_socket`) against the Linux kernel, inside a namespace each
//! test creates: the examples with kernel peers, UDP sizes up to a fragmented 8,000
//! bytes, 100 MB through `io::copy` each way, errno from kernel behaviour (refusal,
//! abort, ICMP port unreachable) and blocking semantics.
//!
//! Set-up: a TAP `tap0` inside a new namespace, the kernel on 10.77.0.1/24; the TAP is
//! opened by a thread that `setns`'d into the namespace (`Netns::run_in`) and handed to
//! `NetStack::builder().link_with_fd(..)`, so the `NetStack`'s driver thread (like the
//! rest of the test) stays in the root namespace while every frame stays inside.
//!
//! The examples run **in-process**: each example keeps its logic in a public function
//! (`serve`, `run`, `Chat`, `fetch`, `ping`) and its `main` only parses flags and
//! builds the stack, so this file includes the example source with `#[path]` and calls
//! the same code. Cargo gives integration tests no path to another package's example
//! binaries (`CARGO_BIN_EXE_*` covers only `[[bin]]` targets of the same package), and
//! in-process keeps every socket's lifetime inside the test.

// Every example brings its own copy of `examples/common/args.rs` (its `main` needs it).
#![allow(clippy::duplicate_mod)]

use sha2::{Digest, Sha256};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ustack::link::sys::TapLink;
use ustack_socket::{NetStack, TcpListener, TcpStream, UdpSocket};
use ustack_tests::tcp::{self, hex, Background, Pattern};
use ustack_tests::{require_netns, Netns};

#[path = "../../socket-api/examples/chat_server.rs"]
mod chat_server;
#[path = "../../socket-api/examples/nonblocking_connect.rs"]
mod nonblocking_connect;
#[path = "../../socket-api/examples/ping.rs"]
mod ping;
#[path = "../../socket-api/examples/tcp_echo_client.rs"]
mod tcp_echo_client;
#[path = "../../socket-api/examples/tcp_echo_server.rs"]
mod tcp_echo_server;
#[path = "../../socket-api/examples/udp_echo_client.rs"]
mod udp_echo_client;
#[path = "../../socket-api/examples/udp_echo_server.rs"]
mod udp_echo_server;

const KERNEL_IP: &str = "10.77.0.1";
const STACK_IP: &str = "10.77.0.2";
/// Correctness bound for a kernel peer that should finish in well under a second.
const PEER_TIMEOUT: Duration = Duration::from_secs(60);
const MB: u64 = 1_000_000;

/// Printed even when the test runner captures output.
fn report(line: &str) {
    let _ = writeln!(io::stderr(), "{line}");
}

/// A `NetStack` on a TAP inside a fresh namespace. Field order is drop order: the
/// stack handle goes first, then the namespace (killing any peer left inside).
struct Kernel {
    stack: NetStack,
    ns: Netns,
}

impl Kernel {
    fn start() -> Kernel {
        let ns = Netns::new("ustack-test").expect("create namespace");
        ns.add_tap("tap0", &format!("{KERNEL_IP}/24"))
            .expect("create tap");
        let tap = ns
            .run_in(|| TapLink::open("tap0"))
            .expect("enter namespace")
            .expect("open tap0 inside the namespace");
        let fd = tap.as_raw_fd();
        let stack = NetStack::builder()
            .link_with_fd(Box::new(tap), fd)
            .ip(format!("{STACK_IP}/24").parse().expect("cidr"))
            .build()
            .expect("build the stack");
        Kernel { stack, ns }
    }

    /// A python script in the namespace, `HOST`/`PORT` replaced.
    fn python(&self, script: &str, port: u16) -> Background {
        let script = script
            .replace("KERNEL_IP", KERNEL_IP)
            .replace("STACK_IP", STACK_IP)
            .replace("PORT", &port.to_string());
        Background::spawn_in(&self.ns, &["python3", "-u", "-c", &script])
    }

    fn kernel(&self, port: u16) -> SocketAddr {
        format!("{KERNEL_IP}:{port}").parse().expect("addr")
    }
}

fn finish_ok(bg: Background, what: &str) -> String {
    let (ok, out, err) = bg.finish(PEER_TIMEOUT);
    assert!(ok, "{what} failed:\n{out}\n{err}");
    out
}

/// Runs `f` on a thread and waits for it up to `timeout` (a correctness bound).
fn within<T: Send + 'static>(timeout: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(timeout)
        .unwrap_or_else(|_| panic!("not done within {timeout:?}"))
}

/// A kernel TCP echo server for one connection on KERNEL_IP:PORT.
const PY_ECHO_SERVER: &str = r#"
import socket
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("KERNEL_IP", PORT))
ls.listen(1)
print("READY")
c, _ = ls.accept()
while True:
    b = c.recv(65536)
    if not b:
        break
    c.sendall(b)
c.close()
print("DONE")
"#;

// ---------------------------------------------------------------- the examples

#[test]
fn ksock_tcp_echo_server_example_answers_socat_and_python() {
    require_netns!("python3", "socat");
    let k = Kernel::start();
    let listener = TcpListener::bind(&k.stack, "0.0.0.0:7").expect("bind");
    let server = std::thread::spawn(move || {
        let threads = tcp_echo_server::serve(listener.incoming().take(2)).expect("serve");
        threads
            .into_iter()
            .map(|t| t.join().expect("echo thread").expect("echo"))
            .collect::<Vec<u64>>()
    });
    let socat = Background::spawn_in(
        &k.ns,
        &[
            "sh",
            "-c",
            &format!("printf 'hello ustack\\nsecond line\\n' | socat -t 10 - TCP:{STACK_IP}:7"),
        ],
    );
    let out = finish_ok(socat, "socat client");
    assert_eq!(out, "hello ustack\nsecond line\n");
    let len = 2 * MB;
    let py = Background::spawn_in(
        &k.ns,
        &["python3", "-c", &tcp::py_echo_client(STACK_IP, 7, len)],
    );
    let out = finish_ok(py, "python echo client");
    let f = tcp::fields(&out, 5);
    assert_eq!((f[0].as_str(), f[2].as_str()), ("2000000", "2000000"));
    assert_eq!(f[1], f[3], "SHA-256 sent vs echoed");
    let mut echoed = within(PEER_TIMEOUT, move || server.join().expect("server"));
    echoed.sort_unstable();
    assert_eq!(echoed, vec![25, len]);
}

#[test]
fn ksock_tcp_echo_client_example_against_kernel_python_server() {
    require_netns!("python3");
    let k = Kernel::start();
    let mut py = k.python(PY_ECHO_SERVER, 7007);
    py.wait_for_line("READY");
    let stream = TcpStream::connect(&k.stack, k.kernel(7007)).expect("connect");
    let input = "one\ntwo two\n\nthree ☃\n";
    let mut out = Vec::new();
    let n = tcp_echo_client::run(stream, io::Cursor::new(input), &mut out).expect("run");
    assert_eq!(n, 4);
    assert_eq!(String::from_utf8(out).expect("utf-8"), input);
    let out = finish_ok(py, "python echo server");
    assert!(out.contains("DONE"), "{out}");
}

#[test]
fn ksock_udp_echo_examples_with_kernel_socat_and_python() {
    require_netns!("python3", "socat");
    let k = Kernel::start();
    // Our server, a kernel client (socat sends each line as a datagram).
    let sock = UdpSocket::bind(&k.stack, "0.0.0.0:7").expect("bind");
    let server = std::thread::spawn(move || udp_echo_server::serve(&sock, Some(1)));
    let socat = Background::spawn_in(
        &k.ns,
        &[
            "sh",
            "-c",
            &format!("printf 'udp hello' | socat -t 3 - UDP:{STACK_IP}:7"),
        ],
    );
    assert_eq!(finish_ok(socat, "socat udp client"), "udp hello");
    within(PEER_TIMEOUT, move || server.join().expect("server")).expect("serve");
    // Our client, a kernel echo server.
    let mut py = k.python(
        r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("KERNEL_IP", PORT))
print("READY")
for _ in range(5):
    b, a = s.recvfrom(65536)
    s.sendto(b, a)
print("DONE")
"#,
        7008,
    );
    py.wait_for_line("READY");
    let sock = UdpSocket::bind(&k.stack, "0.0.0.0:0").expect("bind");
    sock.connect(k.kernel(7008)).expect("connect");
    assert_eq!(udp_echo_client::run(&sock, 5).expect("run"), 5);
    finish_ok(py, "python udp echo server");
}

#[test]
fn ksock_chat_server_example_relays_between_three_kernel_clients() {
    require_netns!("python3");
    let k = Kernel::start();
    let listener = TcpListener::bind(&k.stack, "0.0.0.0:4000").expect("bind");
    let mut chat = chat_server::Chat::new(&k.stack, listener).expect("chat");
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let room = std::thread::spawn(move || {
        let mut most = 0;
        while !stop2.load(Ordering::Relaxed) {
            chat.step(Some(Duration::from_millis(50))).expect("step");
            most = most.max(chat.clients());
        }
        most
    });
    // Client 0 repeats a sync line until 1 and 2 have both heard it (so all three are
    // in the room), then each says one line and waits for the other two's.
    let py = k.python(
        r#"
import socket, time
cs = [socket.create_connection(("STACK_IP", PORT), timeout=30) for _ in range(3)]
for c in cs:
    c.settimeout(0.05)
bufs = [b"", b"", b""]
def pump(i):
    try:
        d = cs[i].recv(4096)
        if not d:
            raise SystemExit("client %d: server closed" % i)
        bufs[i] += d
    except socket.timeout:
        pass
deadline = time.time() + 60
while not (b"sync" in bufs[1] and b"sync" in bufs[2]):
    if time.time() > deadline:
        raise SystemExit("no sync: %r" % bufs)
    cs[0].sendall(b"sync\n")
    pump(1); pump(2)
for i, c in enumerate(cs):
    c.sendall(b"msg from %d\n" % i)
def said(i):
    return {l.split(b": ", 1)[1] for l in bufs[i].split(b"\n") if b": " in l}
while not all({b"msg from %d" % j for j in range(3) if j != i} <= said(i) for i in range(3)):
    if time.time() > deadline:
        raise SystemExit("missing lines: %r" % bufs)
    for i in range(3):
        pump(i)
for i in range(3):
    assert b"msg from %d" % i not in said(i), "own line echoed to %d" % i
    assert all(l.split(b": ")[0].startswith(b"KERNEL_IP:") for l in bufs[i].split(b"\n") if l)
print("OK")
"#,
        4000,
    );
    let out = finish_ok(py, "python chat clients");
    stop.store(true, Ordering::Relaxed);
    let most = within(PEER_TIMEOUT, move || room.join().expect("chat thread"));
    assert!(out.contains("OK"), "{out}");
    assert_eq!(most, 3, "clients in the room at once");
}

#[test]
fn ksock_nonblocking_connect_example_against_kernel_http_server() {
    require_netns!("python3");
    let k = Kernel::start();
    let mut http = Background::spawn_in(
        &k.ns,
        &[
            "python3",
            "-u",
            "-m",
            "http.server",
            "8080",
            "--bind",
            KERNEL_IP,
            "--directory",
            env!("CARGO_MANIFEST_DIR"),
        ],
    );
    http.wait_for_prefix("Serving HTTP");
    let reply = nonblocking_connect::fetch(&k.stack, k.kernel(8080), Duration::from_secs(30))
        .expect("fetch")
        .expect("connected");
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
    assert!(text.contains("Cargo.toml"), "directory listing: {text}");
    // A closed port: POLLOUT|POLLERR, and SO_ERROR says ECONNREFUSED.
    let why = nonblocking_connect::fetch(&k.stack, k.kernel(8081), Duration::from_secs(30))
        .expect("fetch")
        .expect_err("closed port");
    assert!(why.contains("refused"), "{why}");
}

#[test]
fn ksock_ping_example_over_raw_icmp_socket() {
    require_netns!();
    let k = Kernel::start();
    let dst: Ipv4Addr = KERNEL_IP.parse().expect("ip");
    assert_eq!(ping::ping(&k.stack, dst, 4, 56).expect("ping"), 4);
    // 3,000 bytes: the request and the reply are both fragmented.
    assert_eq!(ping::ping(&k.stack, dst, 2, 3000).expect("ping"), 2);
}

// ---------------------------------------------------------------- UDP sizes

#[test]
fn ksock_udp_1_1472_8000_bytes_both_ways_byte_exact() {
    require_netns!("python3");
    let k = Kernel::start();
    // The kernel prints length and SHA-256 of what it got and echoes it back.
    let mut py = k.python(
        r#"
import hashlib, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("KERNEL_IP", PORT))
print("READY")
for _ in range(3):
    b, a = s.recvfrom(65536)
    print(len(b), hashlib.sha256(b).hexdigest())
    s.sendto(b, a)
"#,
        7009,
    );
    py.wait_for_line("READY");
    let sock = UdpSocket::bind(&k.stack, "0.0.0.0:0").expect("bind");
    sock.connect(k.kernel(7009)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut pattern = Pattern::new(1472);
    let mut buf = vec![0u8; 65_536];
    let mut expect = String::new();
    for len in [1usize, 1472, 8000] {
        let mut msg = vec![0u8; len];
        pattern.fill(&mut msg);
        assert_eq!(sock.send(&msg).expect("send"), len);
        let n = sock.recv(&mut buf).expect("echo");
        assert_eq!(n, len, "echo length");
        assert!(buf[..n] == msg[..], "{len}-byte echo differs");
        expect += &format!("{len} {}\n", hex(&Sha256::digest(&msg)));
    }
    let out = finish_ok(py, "python udp peer");
    assert_eq!(out, expect, "what the kernel received");
    // The 8,000-byte datagram went out in fragments and came back in fragments.
    let c = k.stack.counters();
    assert!(c.ipv4_fragmented >= 1 && c.ipv4_tx_fragments >= 6, "{c:?}");
    assert!(c.ipv4_reassembled >= 1 && c.ipv4_rx_fragments >= 6, "{c:?}");
}

// ---------------------------------------------------------------- 100 MB

/// `len` bytes of [`Pattern`], hashed as they are read.
struct PatternReader {
    pattern: Pattern,
    left: u64,
    hash: Sha256,
}

impl Read for PatternReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        self.pattern.fill(&mut buf[..n]);
        self.hash.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// A writer that only hashes and counts.
#[derive(Default)]
struct HashWriter {
    hash: Sha256,
    len: u64,
}

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hash.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn mbit_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 * 8.0 / secs.max(1e-9) / 1e6
}

#[test]
fn ksock_tcp_100mb_io_copy_stack_to_kernel() {
    require_netns!("python3");
    let k = Kernel::start();
    let mut py = k.python(
        r#"
import hashlib, socket, time
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("KERNEL_IP", PORT))
ls.listen(1)
print("READY")
c, _ = ls.accept()
h = hashlib.sha256()
n = 0
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    h.update(b)
    n += len(b)
c.close()
print(n, h.hexdigest())
"#,
        5001,
    );
    py.wait_for_line("READY");
    let len = 100 * MB;
    let (mut stream, reader) = within(Duration::from_secs(30), {
        let stack = k.stack.clone();
        let addr = k.kernel(5001);
        move || {
            let s = TcpStream::connect(&stack, addr).expect("connect");
            let r = PatternReader {
                pattern: Pattern::new(100),
                left: len,
                hash: Sha256::new(),
            };
            (s, r)
        }
    });
    let start = Instant::now();
    let (copied, sha, stream) = within(Duration::from_secs(600), move || {
        let mut reader = reader;
        let n = io::copy(&mut reader, &mut stream).expect("io::copy");
        stream.shutdown(Shutdown::Write).expect("shutdown");
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).expect("read to EOF");
        assert!(rest.is_empty());
        (n, hex(&reader.hash.finalize()), stream)
    });
    let secs = start.elapsed().as_secs_f64();
    drop(stream);
    assert_eq!(copied, len);
    let out = finish_ok(py, "python receiver");
    let f = tcp::fields(&out, 2);
    assert_eq!(f[0], len.to_string(), "bytes the kernel received");
    assert_eq!(f[1], sha, "SHA-256 stack -> kernel");
    report(&format!(
        "ksock 100 MB TcpStream -> kernel: {secs:.2} s, {:.0} Mbit/s",
        mbit_per_s(len, secs)
    ));
}

#[test]
fn ksock_tcp_100mb_io_copy_kernel_to_stack() {
    require_netns!("python3");
    let k = Kernel::start();
    let listener = TcpListener::bind(&k.stack, "0.0.0.0:5002").expect("bind");
    let len = 100 * MB;
    let py = k.python(
        &r#"
import hashlib, os, socket
s = socket.create_connection(("STACK_IP", PORT), timeout=60)
s.settimeout(None)
h = hashlib.sha256()
left = LEN
while left > 0:
    b = os.urandom(min(left, 1 << 20))
    s.sendall(b)
    h.update(b)
    left -= len(b)
s.shutdown(socket.SHUT_WR)
s.recv(1)
s.close()
print(LEN, h.hexdigest())
"#
        .replace("LEN", &len.to_string()),
        5002,
    );
    let (sink, secs) = within(Duration::from_secs(600), move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let start = Instant::now();
        let mut sink = HashWriter::default();
        io::copy(&mut stream, &mut sink).expect("io::copy");
        (sink, start.elapsed().as_secs_f64())
    });
    assert_eq!(sink.len, len, "bytes the stack received");
    let out = finish_ok(py, "python sender");
    let f = tcp::fields(&out, 2);
    assert_eq!(f[1], hex(&sink.hash.finalize()), "SHA-256 kernel -> stack");
    report(&format!(
        "ksock 100 MB kernel -> TcpStream: {secs:.2} s, {:.0} Mbit/s",
        mbit_per_s(len, secs)
    ));
}

// ---------------------------------------------------------------- errno

#[test]
fn ksock_connect_to_closed_kernel_port_is_connection_refused() {
    require_netns!();
    let k = Kernel::start();
    let e = TcpStream::connect(&k.stack, k.kernel(9)).expect_err("closed port");
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED));
}

#[test]
fn ksock_kernel_abort_gives_econnreset_then_write_fails() {
    require_netns!("python3");
    let k = Kernel::start();
    let mut py = k.python(
        r#"
import socket, struct
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("KERNEL_IP", PORT))
ls.listen(1)
print("READY")
c, _ = ls.accept()
c.recv(5)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
print("ABORTED")
"#,
        7010,
    );
    py.wait_for_line("READY");
    let mut s = TcpStream::connect(&k.stack, k.kernel(7010)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(b"hello").expect("write");
    py.wait_for_line("ABORTED");
    let mut buf = [0u8; 16];
    let e = s.read(&mut buf).expect_err("reset");
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    let e = s.write(b"more").expect_err("write after reset");
    assert!(
        matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
        "{e}"
    );
    finish_ok(py, "python aborting server");
}

#[test]
fn ksock_udp_connected_send_to_closed_kernel_port_then_recv_refused() {
    require_netns!();
    let k = Kernel::start();
    let sock = UdpSocket::bind(&k.stack, "0.0.0.0:0").expect("bind");
    sock.connect(k.kernel(9)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    sock.send(b"anyone?").expect("send");
    let mut buf = [0u8; 16];
    let e = sock.recv(&mut buf).expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
}

// ---------------------------------------------------------------- blocking

#[test]
fn ksock_read_timeout_with_silent_kernel_peer_is_would_block() {
    require_netns!("python3");
    let k = Kernel::start();
    let mut py = k.python(PY_ECHO_SERVER, 7011);
    py.wait_for_line("READY");
    let mut s = TcpStream::connect(&k.stack, k.kernel(7011)).expect("connect");
    let timeout = Duration::from_millis(300);
    s.set_read_timeout(Some(timeout)).expect("timeout");
    assert_eq!(s.read_timeout().expect("get"), Some(timeout));
    let mut buf = [0u8; 16];
    let start = Instant::now();
    let e = s.read(&mut buf).expect_err("nothing to read");
    let waited = start.elapsed();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
    assert!(waited >= timeout, "returned after {waited:?}");
    assert!(
        waited < Duration::from_secs(10),
        "returned after {waited:?}"
    );
    // The connection is still fine afterwards.
    s.write_all(b"ping").expect("write");
    s.read_exact(&mut buf[..4]).expect("echo");
    assert_eq!(&buf[..4], b"ping");
    s.shutdown(Shutdown::Write).expect("shutdown");
    finish_ok(py, "python echo server");
}

#[test]
fn ksock_blocking_accept_woken_by_kernel_connect() {
    require_netns!("python3");
    let k = Kernel::start();
    let listener = TcpListener::bind(&k.stack, "0.0.0.0:7012").expect("bind");
    let (tx, rx) = std::sync::mpsc::channel();
    let acceptor = std::thread::spawn(move || {
        let _ = tx.send(());
        let (mut s, peer) = listener.accept().expect("accept");
        let mut line = String::new();
        s.read_to_string(&mut line).expect("read");
        (peer, line)
    });
    rx.recv().expect("acceptor started");
    // Let it block in accept before the kernel connects.
    std::thread::sleep(Duration::from_millis(200));
    let py = k.python(
        r#"
import socket
s = socket.create_connection(("STACK_IP", PORT), timeout=30)
s.sendall(b"woken")
s.close()
"#,
        7012,
    );
    finish_ok(py, "python client");
    let (peer, line) = within(PEER_TIMEOUT, move || acceptor.join().expect("acceptor"));
    assert_eq!(peer.ip().to_string(), KERNEL_IP);
    assert_eq!(line, "woken");
}

// ---------------------------------------------------------------- more edges

#[test]
fn ksock_kernel_abort_wakes_a_blocked_read_with_econnreset() {
    require_netns!("python3");
    let k = Kernel::start();
    let mut py = k.python(
        r#"
import socket, struct, time
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("KERNEL_IP", PORT))
ls.listen(1)
print("READY")
c, _ = ls.accept()
c.recv(5)
time.sleep(0.3)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
"#,
        7013,
    );
    py.wait_for_line("READY");
    let mut s = TcpStream::connect(&k.stack, k.kernel(7013)).expect("connect");
    s.write_all(b"block").expect("write");
    let e = within(PEER_TIMEOUT, move || {
        let mut buf = [0u8; 16];
        s.read(&mut buf).expect_err("reset")
    });
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    finish_ok(py, "python aborting server");
}

#[test]
fn ksock_kernel_data_then_close_gives_data_eof_then_write_fails() {
    require_netns!("python3");
    let k = Kernel::start();
    let mut py = k.python(
        r#"
import socket
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("KERNEL_IP", PORT))
ls.listen(1)
print("READY")
c, _ = ls.accept()
c.sendall(b"last words")
c.close()
ls.close()
print("CLOSED")
"#,
        7014,
    );
    py.wait_for_line("READY");
    let mut s = TcpStream::connect(&k.stack, k.kernel(7014)).expect("connect");
    py.wait_for_line("CLOSED");
    let mut got = String::new();
    s.read_to_string(&mut got).expect("read to EOF");
    assert_eq!(got, "last words");
    // The kernel answers data to a closed socket with RST: writes fail soon after.
    let e = within(PEER_TIMEOUT, move || loop {
        match s.write_all(b"anyone?") {
            Ok(()) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => break e,
        }
    });
    assert!(
        matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
        "{e}"
    );
    finish_ok(py, "python server");
}

#[test]
fn ksock_udp_65507_bytes_both_ways_and_truncation() {
    require_netns!("python3");
    let k = Kernel::start();
    let mut py = k.python(
        r#"
import hashlib, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.bind(("KERNEL_IP", PORT))
print("READY")
b, a = s.recvfrom(70000)
print(len(b), hashlib.sha256(b).hexdigest())
s.sendto(b, a)
s.sendto(b"0123456789", a)
"#,
        7015,
    );
    py.wait_for_line("READY");
    let sock = UdpSocket::bind(&k.stack, "0.0.0.0:0").expect("bind");
    sock.connect(k.kernel(7015)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut msg = vec![0u8; 65_507];
    Pattern::new(65_507).fill(&mut msg);
    assert_eq!(sock.send(&msg).expect("send"), msg.len());
    let mut buf = vec![0u8; 70_000];
    let n = sock.recv(&mut buf).unwrap_or_else(|e| {
        let c = k.stack.counters();
        panic!(
            "echo: {e}; ipv4_tx_fragments {}, drops {:?}",
            c.ipv4_tx_fragments, c.drops
        )
    });
    assert_eq!(n, msg.len());
    assert!(buf[..n] == msg[..], "65,507-byte echo differs");
    // A short buffer truncates (std/Linux: the datagram's rest is discarded).
    let mut small = [0u8; 4];
    assert_eq!(sock.recv(&mut small).expect("short recv"), 4);
    assert_eq!(&small, b"0123");
    let out = finish_ok(py, "python udp peer");
    assert_eq!(
        out,
        format!("65507 {}\n", hex(&Sha256::digest(&msg))),
        "what the kernel received"
    );
}

#[test]
fn ksock_slow_reader_reopens_the_window_for_a_kernel_sender() {
    require_netns!("python3");
    let k = Kernel::start();
    let listener = TcpListener::bind(&k.stack, "0.0.0.0:7016").expect("bind");
    let len = 8 * MB;
    let py = k.python(
        &r#"
import hashlib, os, socket
s = socket.create_connection(("STACK_IP", PORT), timeout=60)
b = os.urandom(LEN)
s.sendall(b)
s.close()
print(LEN, hashlib.sha256(b).hexdigest())
"#
        .replace("LEN", &len.to_string()),
        7016,
    );
    let (stream, _) = listener.accept().expect("accept");
    // Fill the receive buffer (the kernel then probes a zero window), then read.
    std::thread::sleep(Duration::from_millis(1500));
    let start = Instant::now();
    let sink = within(Duration::from_secs(120), move || {
        let mut stream = stream;
        let mut sink = HashWriter::default();
        io::copy(&mut stream, &mut sink).expect("io::copy");
        sink
    });
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(sink.len, len);
    let out = finish_ok(py, "python sender");
    let f = tcp::fields(&out, 2);
    assert_eq!(f[1], hex(&sink.hash.finalize()), "SHA-256 kernel -> stack");
    report(&format!("ksock 8 MB after a zero window: {secs:.2} s"));
    assert!(secs < 20.0, "window updates stalled: {secs:.2} s for 8 MB");
}

#[test]
fn ksock_connect_to_absent_host_fails_with_a_host_error() {
    require_netns!();
    let k = Kernel::start();
    // 10.77.0.3 is on the link but nobody answers ARP.
    let start = Instant::now();
    let e = within(Duration::from_secs(300), {
        let stack = k.stack.clone();
        move || TcpStream::connect(&stack, "10.77.0.3:80").expect_err("nobody there")
    });
    report(&format!(
        "ksock connect to an absent host: {e} ({:?}) after {:?}",
        e.kind(),
        start.elapsed()
    ));
    assert!(
        matches!(
            e.kind(),
            ErrorKind::HostUnreachable | ErrorKind::TimedOut | ErrorKind::ConnectionRefused
        ),
        "{e}"
    );
}

#[test]
fn ksock_connect_timeout_to_absent_host_is_timed_out() {
    require_netns!();
    let k = Kernel::start();
    let timeout = Duration::from_millis(500);
    let start = Instant::now();
    let addr: SocketAddr = "10.77.0.3:80".parse().expect("addr");
    let e = TcpStream::connect_timeout(&k.stack, &addr, timeout).expect_err("nobody there");
    let waited = start.elapsed();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    assert!(waited >= timeout, "gave up after {waited:?}");
    assert!(waited < Duration::from_secs(10), "gave up after {waited:?}");
}

#[test]
fn ksock_peek_then_read_kernel_data() {
    require_netns!("python3");
    let k = Kernel::start();
    let mut py = k.python(
        r#"
import socket
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("KERNEL_IP", PORT))
ls.listen(1)
print("READY")
c, _ = ls.accept()
c.sendall(b"peekaboo")
c.recv(1)
c.close()
"#,
        7017,
    );
    py.wait_for_line("READY");
    let mut s = TcpStream::connect(&k.stack, k.kernel(7017)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut buf = [0u8; 8];
    let n = s.peek(&mut buf[..4]).expect("peek");
    assert_eq!(&buf[..n], &b"peekaboo"[..n]);
    s.read_exact(&mut buf).expect("read");
    assert_eq!(&buf, b"peekaboo");
    s.write_all(b"x").expect("write");
    assert_eq!(s.read(&mut buf).expect("EOF"), 0);
    finish_ok(py, "python server");
}

/// A kernel server that waits `DELAY` seconds after accepting before it reads, then
/// prints the length and SHA-256 of everything up to EOF.
const PY_LATE_READER: &str = r#"
import hashlib, socket, time
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("KERNEL_IP", PORT))
ls.listen(1)
print("READY")
c, _ = ls.accept()
time.sleep(DELAY)
h = hashlib.sha256()
n = 0
while True:
    b = c.recv(1 << 16)
    if not b:
        break
    h.update(b)
    n += len(b)
print(n, h.hexdigest())
"#;

/// With the BSD calls: SO_SNDBUF of `len` (so a blocking send queues everything at
/// once, more than the kernel buffers unread), SO_LINGER `linger`, send `len` bytes of
/// pattern, then close; returns how long the close took and the SHA-256 sent.
fn linger_close(k: &Kernel, port: u16, linger: Duration, len: usize) -> (Duration, String) {
    use ustack_socket::{SockOpt, AF_INET, SOCK_STREAM};
    let s = &k.stack;
    let fd = s.socket(AF_INET, SOCK_STREAM, 0).expect("socket");
    s.setsockopt(fd, SockOpt::SndBuf(len)).expect("SO_SNDBUF");
    s.setsockopt(fd, SockOpt::Linger(Some(linger)))
        .expect("SO_LINGER");
    s.connect(fd, k.kernel(port)).expect("connect");
    let mut data = vec![0u8; len];
    Pattern::new(len as u64).fill(&mut data);
    assert_eq!(s.send(fd, &data, 0).expect("send"), len);
    let start = Instant::now();
    s.close(fd).expect("close");
    (start.elapsed(), hex(&Sha256::digest(&data)))
}

#[test]
fn ksock_linger_close_waits_for_a_late_kernel_reader() {
    require_netns!("python3");
    let k = Kernel::start();
    // More than the kernel takes without reading (tcp_rmem's maximum is 6 MB).
    let len = 16 << 20;
    // The kernel reads after 1 s: our close waits (data and FIN unacknowledged) until
    // then, well inside the 30 s linger.
    let mut py = k.python(&PY_LATE_READER.replace("DELAY", "1.0"), 7018);
    py.wait_for_line("READY");
    let (took, sha) = linger_close(&k, 7018, Duration::from_secs(30), len);
    assert!(
        took >= Duration::from_millis(300),
        "close returned after {took:?}"
    );
    assert!(
        took < Duration::from_secs(20),
        "close returned after {took:?}"
    );
    let out = finish_ok(py, "python late reader");
    assert_eq!(out, format!("{len} {sha}\n"));
    // The kernel reads after 3 s and the linger is 200 ms: close gives up waiting, and
    // the data still arrives (as on Linux, the connection closes in the background).
    let mut py = k.python(&PY_LATE_READER.replace("DELAY", "3.0"), 7019);
    py.wait_for_line("READY");
    let (took, sha) = linger_close(&k, 7019, Duration::from_millis(200), len);
    assert!(
        took >= Duration::from_millis(200),
        "close returned after {took:?}"
    );
    assert!(
        took < Duration::from_secs(2),
        "close returned after {took:?}"
    );
    let out = finish_ok(py, "python late reader");
    assert_eq!(out, format!("{len} {sha}\n"));
}
