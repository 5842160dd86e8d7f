//! The socket API (`ustack_socket`) against the Linux kernel, inside a namespace each
//! test creates: the examples with kernel peers, UDP sizes up to a fragmented 8,000
//! bytes, 100 MB through `io::copy` each way, errno from kernel behaviour (refusal,
//! abort, ICMP port unreachable) and blocking semantics. The kernel's side of each test
//! is Rust on kernel sockets, on a thread inside the namespace (`spawn_peer`).
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
use std::net::UdpSocket as KernelUdp;
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::net::{TcpListener as KernelListener, TcpStream as KernelStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ustack::link::sys::TapLink;
use ustack_socket::{NetStack, TcpListener, TcpStream, UdpSocket};
use ustack_tests::tcp::{hex, Pattern};
use ustack_tests::{in_ns, peer, require_netns, spawn_peer, Netns, Peer};

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
        ns.wait_running("tap0", Duration::from_secs(5))
            .expect("the kernel's tap0 comes up");
        let fd = tap.as_raw_fd();
        let stack = NetStack::builder()
            .link_with_fd(Box::new(tap), fd)
            .ip(format!("{STACK_IP}/24").parse().expect("cidr"))
            .build()
            .expect("build the stack");
        Kernel { stack, ns }
    }

    /// The kernel's side of the test, on a thread inside the namespace.
    fn peer<T: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Peer<T> {
        spawn_peer(&self.ns, what, f)
    }

    /// A kernel TCP listener on KERNEL_IP:`port`, bound before the stack connects.
    fn listen(&self, port: u16) -> KernelListener {
        in_ns(&self.ns, move || KernelListener::bind((KERNEL_IP, port)))
            .unwrap_or_else(|e| panic!("kernel listener on {port}: {e}"))
    }

    /// A kernel UDP socket on KERNEL_IP:`port`.
    fn udp(&self, port: u16) -> KernelUdp {
        in_ns(&self.ns, move || KernelUdp::bind((KERNEL_IP, port)))
            .unwrap_or_else(|e| panic!("kernel UDP socket on {port}: {e}"))
    }

    fn kernel(&self, port: u16) -> SocketAddr {
        format!("{KERNEL_IP}:{port}").parse().expect("addr")
    }
}

fn stack_addr(port: u16) -> SocketAddr {
    format!("{STACK_IP}:{port}").parse().expect("addr")
}

/// Joins a peer that returns an `io::Result`, failing the test with `what` on error.
fn finish_ok<T>(peer: Peer<io::Result<T>>, what: &str) -> T {
    peer.join(PEER_TIMEOUT)
        .unwrap_or_else(|e| panic!("kernel {what} failed: {e}"))
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

// ---------------------------------------------------------------- the examples

#[test]
fn ksock_tcp_echo_server_example_answers_kernel_clients() {
    require_netns!();
    let k = Kernel::start();
    let listener = TcpListener::bind(&k.stack, "0.0.0.0:7").expect("bind");
    let server = std::thread::spawn(move || {
        let threads = tcp_echo_server::serve(listener.incoming().take(2)).expect("serve");
        threads
            .into_iter()
            .map(|t| t.join().expect("echo thread").expect("echo"))
            .collect::<Vec<u64>>()
    });
    // Two lines, then a half-close; the echo is read until the server's FIN (what
    // `printf ... | socat -t 10 - TCP:...` does).
    let lines = k.peer("line client", || -> io::Result<String> {
        let mut s = KernelStream::connect_timeout(&stack_addr(7), PEER_TIMEOUT)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"hello ustack\nsecond line\n")?;
        s.shutdown(Shutdown::Write)?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    });
    assert_eq!(
        finish_ok(lines, "line client"),
        "hello ustack\nsecond line\n"
    );
    let len = 2 * MB;
    let bulk = k.peer("echo client", move || {
        peer::echo_client(stack_addr(7), len, 7)
    });
    let t = finish_ok(bulk, "echo client");
    assert_eq!(t.received, len);
    assert_eq!(t.sent_sha256, t.received_sha256, "SHA-256 sent vs echoed");
    let mut echoed = within(PEER_TIMEOUT, move || server.join().expect("server"));
    echoed.sort_unstable();
    assert_eq!(echoed, vec![25, len]);
}

#[test]
fn ksock_tcp_echo_client_example_against_kernel_echo_server() {
    require_netns!();
    let k = Kernel::start();
    let listener = k.listen(7007);
    let server = k.peer("echo server", move || peer::echo_once(&listener));
    let stream = TcpStream::connect(&k.stack, k.kernel(7007)).expect("connect");
    let input = "one\ntwo two\n\nthree ☃\n";
    let mut out = Vec::new();
    let n = tcp_echo_client::run(stream, io::Cursor::new(input), &mut out).expect("run");
    assert_eq!(n, 4);
    assert_eq!(String::from_utf8(out).expect("utf-8"), input);
    let echoed = finish_ok(server, "echo server");
    assert_eq!(echoed, input.len() as u64);
}

#[test]
fn ksock_udp_echo_examples_with_kernel_peers() {
    require_netns!();
    let k = Kernel::start();
    // Our server, a kernel client (one datagram, as `printf ... | socat - UDP:...`).
    let sock = UdpSocket::bind(&k.stack, "0.0.0.0:7").expect("bind");
    let server = std::thread::spawn(move || udp_echo_server::serve(&sock, Some(1)));
    let client = k.peer("udp client", || -> io::Result<String> {
        let s = KernelUdp::bind("0.0.0.0:0")?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        s.connect(stack_addr(7))?;
        s.send(b"udp hello")?;
        let mut buf = [0u8; 2048];
        let n = s.recv(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    });
    assert_eq!(finish_ok(client, "udp client"), "udp hello");
    within(PEER_TIMEOUT, move || server.join().expect("server")).expect("serve");
    // Our client, a kernel echo server for 5 datagrams.
    let ksock = k.udp(7008);
    let echo = k.peer("udp echo server", move || -> io::Result<()> {
        ksock.set_read_timeout(Some(PEER_TIMEOUT))?;
        let mut buf = vec![0u8; 65_536];
        for _ in 0..5 {
            let (n, from) = ksock.recv_from(&mut buf)?;
            ksock.send_to(&buf[..n], from)?;
        }
        Ok(())
    });
    let sock = UdpSocket::bind(&k.stack, "0.0.0.0:0").expect("bind");
    sock.connect(k.kernel(7008)).expect("connect");
    assert_eq!(udp_echo_client::run(&sock, 5).expect("run"), 5);
    finish_ok(echo, "udp echo server");
}

#[test]
fn ksock_chat_server_example_relays_between_three_kernel_clients() {
    require_netns!();
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
    let clients = k.peer("chat clients", || chat_clients(stack_addr(4000)));
    let outcome = clients.join(PEER_TIMEOUT);
    stop.store(true, Ordering::Relaxed);
    let most = within(PEER_TIMEOUT, move || room.join().expect("chat thread"));
    outcome.unwrap_or_else(|e| panic!("chat clients: {e}"));
    assert_eq!(most, 3, "clients in the room at once");
}

/// Three kernel chat clients: client 0 repeats a sync line until 1 and 2 have both
/// heard it (so all three are in the room), then each says one line and waits for the
/// other two's; nobody hears their own line, and every line names its sender.
fn chat_clients(to: SocketAddr) -> Result<(), String> {
    let mut cs = Vec::new();
    for _ in 0..3 {
        let c = KernelStream::connect_timeout(&to, Duration::from_secs(30))
            .map_err(|e| format!("connect: {e}"))?;
        c.set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| e.to_string())?;
        cs.push(c);
    }
    let mut bufs: [Vec<u8>; 3] = Default::default();
    let pump = |cs: &mut Vec<KernelStream>, bufs: &mut [Vec<u8>; 3], i: usize| {
        let mut d = [0u8; 4096];
        match cs[i].read(&mut d) {
            Ok(0) => Err(format!("client {i}: server closed")),
            Ok(n) => {
                bufs[i].extend_from_slice(&d[..n]);
                Ok(())
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(()),
            Err(e) => Err(format!("client {i}: {e}")),
        }
    };
    let heard = |b: &[u8], what: &str| String::from_utf8_lossy(b).contains(what);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(heard(&bufs[1], "sync") && heard(&bufs[2], "sync")) {
        if Instant::now() > deadline {
            return Err(format!("no sync: {bufs:?}"));
        }
        cs[0].write_all(b"sync\n").map_err(|e| e.to_string())?;
        pump(&mut cs, &mut bufs, 1)?;
        pump(&mut cs, &mut bufs, 2)?;
    }
    for (i, c) in cs.iter_mut().enumerate() {
        c.write_all(format!("msg from {i}\n").as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let said = |b: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(b)
            .lines()
            .filter_map(|l| l.split_once(": ").map(|(_, m)| m.to_owned()))
            .collect()
    };
    let all_heard = |bufs: &[Vec<u8>; 3]| {
        (0..3).all(|i| {
            let s = said(&bufs[i]);
            (0..3)
                .filter(|&j| j != i)
                .all(|j| s.contains(&format!("msg from {j}")))
        })
    };
    while !all_heard(&bufs) {
        if Instant::now() > deadline {
            return Err(format!("missing lines: {bufs:?}"));
        }
        for i in 0..3 {
            pump(&mut cs, &mut bufs, i)?;
        }
    }
    for (i, b) in bufs.iter().enumerate() {
        if said(b).contains(&format!("msg from {i}")) {
            return Err(format!("own line echoed to {i}"));
        }
        let text = String::from_utf8_lossy(b);
        if let Some(l) = text
            .lines()
            .find(|l| !l.is_empty() && !l.starts_with(&format!("{KERNEL_IP}:")))
        {
            return Err(format!("client {i}: a line without its sender: {l:?}"));
        }
    }
    Ok(())
}

#[test]
fn ksock_nonblocking_connect_example_against_kernel_http_server() {
    require_netns!();
    let k = Kernel::start();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let addr = k.kernel(8080);
    let _http = in_ns(&k.ns, move || {
        ustack_socket::kernel_peer::HttpFileServer::start(addr, &root)
    })
    .expect("kernel HTTP server");
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
    require_netns!();
    let k = Kernel::start();
    // The kernel records length and SHA-256 of what it got and echoes it back.
    let ksock = k.udp(7009);
    let peer = k.peer("udp peer", move || -> io::Result<String> {
        ksock.set_read_timeout(Some(PEER_TIMEOUT))?;
        let mut buf = vec![0u8; 65_536];
        let mut seen = String::new();
        for _ in 0..3 {
            let (n, from) = ksock.recv_from(&mut buf)?;
            seen += &format!("{n} {}\n", hex(&Sha256::digest(&buf[..n])));
            ksock.send_to(&buf[..n], from)?;
        }
        Ok(seen)
    });
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
    let seen = finish_ok(peer, "udp peer");
    assert_eq!(seen, expect, "what the kernel received");
    // The 8,000-byte datagram went out in fragments and came back in fragments.
    let c = k.stack.counters();
    assert!(c.ipv4_fragmented >= 1 && c.ipv4_tx_fragments >= 6, "{c:?}");
    assert!(c.ipv4_reassembled >= 1 && c.ipv4_rx_fragments >= 6, "{c:?}");
}

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
    require_netns!();
    let k = Kernel::start();
    let listener = k.listen(5001);
    let receiver = k.peer("receiver", move || {
        let (c, _) = listener.accept()?;
        peer::sink(&c)
    });
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
    let (n, ksha) = finish_ok(receiver, "receiver");
    assert_eq!(n, len, "bytes the kernel received");
    assert_eq!(ksha, sha, "SHA-256 stack -> kernel");
    report(&format!(
        "ksock 100 MB TcpStream -> kernel: {secs:.2} s, {:.0} Mbit/s",
        mbit_per_s(len, secs)
    ));
}

#[test]
fn ksock_tcp_100mb_io_copy_kernel_to_stack() {
    require_netns!();
    let k = Kernel::start();
    let listener = TcpListener::bind(&k.stack, "0.0.0.0:5002").expect("bind");
    let len = 100 * MB;
    // Sends, half-closes, then waits for the stack's close before closing itself.
    let sender = k.peer("sender", move || -> io::Result<String> {
        let mut s = KernelStream::connect_timeout(&stack_addr(5002), PEER_TIMEOUT)?;
        let sha = peer::source(&s, len, 0x100)?;
        let mut one = [0u8; 1];
        let _ = s.read(&mut one)?;
        Ok(sha)
    });
    let (sink, secs) = within(Duration::from_secs(600), move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let start = Instant::now();
        let mut sink = HashWriter::default();
        io::copy(&mut stream, &mut sink).expect("io::copy");
        (sink, start.elapsed().as_secs_f64())
    });
    assert_eq!(sink.len, len, "bytes the stack received");
    let ksha = finish_ok(sender, "sender");
    assert_eq!(ksha, hex(&sink.hash.finalize()), "SHA-256 kernel -> stack");
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
    require_netns!();
    let k = Kernel::start();
    let listener = k.listen(7010);
    let server = k.peer("aborting server", move || -> io::Result<()> {
        let (mut c, _) = listener.accept()?;
        c.set_read_timeout(Some(PEER_TIMEOUT))?;
        let mut five = [0u8; 5];
        c.read_exact(&mut five)?;
        peer::abort(c)
    });
    let mut s = TcpStream::connect(&k.stack, k.kernel(7010)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(b"hello").expect("write");
    finish_ok(server, "aborting server");
    let mut buf = [0u8; 16];
    let e = s.read(&mut buf).expect_err("reset");
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    let e = s.write(b"more").expect_err("write after reset");
    assert!(
        matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
        "{e}"
    );
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
    require_netns!();
    let k = Kernel::start();
    let listener = k.listen(7011);
    let server = k.peer("echo server", move || peer::echo_once(&listener));
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
    assert_eq!(finish_ok(server, "echo server"), 4);
}

#[test]
fn ksock_blocking_accept_woken_by_kernel_connect() {
    require_netns!();
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
    let client = k.peer("client", || -> io::Result<()> {
        let mut s = KernelStream::connect_timeout(&stack_addr(7012), Duration::from_secs(30))?;
        s.write_all(b"woken")
    });
    finish_ok(client, "client");
    let (peer, line) = within(PEER_TIMEOUT, move || acceptor.join().expect("acceptor"));
    assert_eq!(peer.ip().to_string(), KERNEL_IP);
    assert_eq!(line, "woken");
}

// ---------------------------------------------------------------- more edges

#[test]
fn ksock_kernel_abort_wakes_a_blocked_read_with_econnreset() {
    require_netns!();
    let k = Kernel::start();
    let listener = k.listen(7013);
    let server = k.peer("aborting server", move || -> io::Result<()> {
        let (mut c, _) = listener.accept()?;
        c.set_read_timeout(Some(PEER_TIMEOUT))?;
        let mut five = [0u8; 5];
        c.read_exact(&mut five)?;
        std::thread::sleep(Duration::from_millis(300));
        peer::abort(c)
    });
    let mut s = TcpStream::connect(&k.stack, k.kernel(7013)).expect("connect");
    s.write_all(b"block").expect("write");
    let e = within(PEER_TIMEOUT, move || {
        let mut buf = [0u8; 16];
        s.read(&mut buf).expect_err("reset")
    });
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    finish_ok(server, "aborting server");
}

#[test]
fn ksock_kernel_data_then_close_gives_data_eof_then_write_fails() {
    require_netns!();
    let k = Kernel::start();
    let listener = k.listen(7014);
    let server = k.peer("server", move || -> io::Result<()> {
        let (mut c, _) = listener.accept()?;
        c.write_all(b"last words")?;
        drop(c);
        drop(listener);
        Ok(())
    });
    let mut s = TcpStream::connect(&k.stack, k.kernel(7014)).expect("connect");
    finish_ok(server, "server");
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
}

#[test]
fn ksock_udp_65507_bytes_both_ways_and_truncation() {
    require_netns!();
    let k = Kernel::start();
    let ksock = k.udp(7015);
    let peer = k.peer("udp peer", move || -> io::Result<String> {
        set_rcvbuf(&ksock, 1 << 20)?;
        ksock.set_read_timeout(Some(PEER_TIMEOUT))?;
        let mut b = vec![0u8; 70_000];
        let (n, from) = ksock.recv_from(&mut b)?;
        ksock.send_to(&b[..n], from)?;
        ksock.send_to(b"0123456789", from)?;
        Ok(format!("{n} {}\n", hex(&Sha256::digest(&b[..n]))))
    });
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
    let seen = finish_ok(peer, "udp peer");
    assert_eq!(
        seen,
        format!("65507 {}\n", hex(&Sha256::digest(&msg))),
        "what the kernel received"
    );
}

/// SO_RCVBUF on a kernel socket (a 65,507-byte datagram arrives as 45 fragments).
fn set_rcvbuf(sock: &KernelUdp, bytes: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt with a valid fd and an int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[test]
fn ksock_slow_reader_reopens_the_window_for_a_kernel_sender() {
    require_netns!();
    let k = Kernel::start();
    let listener = TcpListener::bind(&k.stack, "0.0.0.0:7016").expect("bind");
    let len = 8 * MB;
    let sender = k.peer("sender", move || -> io::Result<String> {
        let s = KernelStream::connect_timeout(&stack_addr(7016), PEER_TIMEOUT)?;
        peer::source(&s, len, 0x816)
    });
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
    let ksha = finish_ok(sender, "sender");
    assert_eq!(ksha, hex(&sink.hash.finalize()), "SHA-256 kernel -> stack");
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
    require_netns!();
    let k = Kernel::start();
    let listener = k.listen(7017);
    let server = k.peer("server", move || -> io::Result<()> {
        let (mut c, _) = listener.accept()?;
        c.set_read_timeout(Some(PEER_TIMEOUT))?;
        c.write_all(b"peekaboo")?;
        let mut one = [0u8; 1];
        let _ = c.read(&mut one)?;
        Ok(())
    });
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
    finish_ok(server, "server");
}

/// A kernel server that waits `delay` after accepting before it reads, then returns
/// the length and SHA-256 of everything up to EOF.
fn late_reader(k: &Kernel, port: u16, delay: Duration) -> Peer<io::Result<(u64, String)>> {
    let listener = k.listen(port);
    k.peer("late reader", move || {
        let (c, _) = listener.accept()?;
        std::thread::sleep(delay);
        peer::sink(&c)
    })
}

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
    require_netns!();
    let k = Kernel::start();
    // More than the kernel takes without reading (tcp_rmem's maximum is 6 MB).
    let len = 16 << 20;
    // The kernel reads after 1 s: our close waits (data and FIN unacknowledged) until
    // then, well inside the 30 s linger.
    let reader = late_reader(&k, 7018, Duration::from_secs(1));
    let (took, sha) = linger_close(&k, 7018, Duration::from_secs(30), len);
    assert!(
        took >= Duration::from_millis(300),
        "close returned after {took:?}"
    );
    assert!(
        took < Duration::from_secs(20),
        "close returned after {took:?}"
    );
    assert_eq!(finish_ok(reader, "late reader"), (len as u64, sha));
    // The kernel reads after 3 s and the linger is 200 ms: close gives up waiting, and
    // the data still arrives (as on Linux, the connection closes in the background).
    let reader = late_reader(&k, 7019, Duration::from_secs(3));
    let (took, sha) = linger_close(&k, 7019, Duration::from_millis(200), len);
    assert!(
        took >= Duration::from_millis(200),
        "close returned after {took:?}"
    );
    assert!(
        took < Duration::from_secs(2),
        "close returned after {took:?}"
    );
    assert_eq!(finish_ok(reader, "late reader"), (len as u64, sha));
}

// ---------------------------------------------------------------- IP header options

/// IP_TTL and IP_TOS set on the stack's UDP socket reach the kernel in the IP header
/// (read with IP_RECVTTL/IP_RECVTOS); -1 gives the default TTL back.
#[test]
fn ksock_udp_ip_ttl_and_tos_reach_the_kernel() {
    require_netns!();
    use ustack_socket::{SockOpt, SockOptName};
    let k = Kernel::start();
    let kernel = k.udp(7301);
    peer::set_int_option(kernel.as_raw_fd(), libc::IPPROTO_IP, libc::IP_RECVTTL, 1);
    peer::set_int_option(kernel.as_raw_fd(), libc::IPPROTO_IP, libc::IP_RECVTOS, 1);
    kernel
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let sock = UdpSocket::bind(&k.stack, "0.0.0.0:0").expect("bind");
    let fd = sock.fd();
    sock.set_ttl(7).expect("IP_TTL");
    assert_eq!(sock.ttl().expect("ttl"), 7);
    k.stack
        .setsockopt(fd, SockOpt::IpTos(0x2a))
        .expect("IP_TOS");
    sock.send_to(b"one", k.kernel(7301)).expect("send");
    let (data, _, ttl, tos) = peer::recv_with_ttl_tos(&kernel);
    assert_eq!((data, ttl, tos), (b"one".to_vec(), Some(7), Some(0x2a)));
    // Back to the defaults: TTL 64 (reported as such), TOS 0.
    k.stack
        .setsockopt(fd, SockOpt::IpTtl(-1))
        .expect("IP_TTL -1");
    k.stack.setsockopt(fd, SockOpt::IpTos(0)).expect("IP_TOS 0");
    assert_eq!(
        k.stack.getsockopt(fd, SockOptName::IpTtl).expect("get"),
        SockOpt::IpTtl(64)
    );
    assert_eq!(
        k.stack.setsockopt(fd, SockOpt::IpTtl(0)),
        Err(ustack_socket::Errno::EINVAL)
    );
    sock.send_to(b"two", k.kernel(7301)).expect("send");
    let (data, _, ttl, tos) = peer::recv_with_ttl_tos(&kernel);
    assert_eq!((data, ttl, tos), (b"two".to_vec(), Some(64), Some(0)));
}

/// IP_TTL on the stack's TCP socket reaches the wire: a kernel listener with IP_MINTTL
/// 255 (RFC 5082's TTL security) completes a handshake from a socket with IP_TTL 255
/// and drops the SYNs of one left at the default 64. IP_TOS on a TCP socket keeps the
/// ECN bits clear, as Linux reports it.
#[test]
fn ksock_tcp_ip_ttl_passes_the_kernels_minimum_ttl() {
    require_netns!();
    use ustack_socket::{PollEvents, PollFd, SockOpt, SockOptName};
    let k = Kernel::start();
    let listener = k.listen(7302);
    peer::set_int_option(listener.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MINTTL, 255);
    let server = k.peer("acceptor", move || listener.accept().map(|_| ()));
    let connects = |ttl: Option<i32>, wait: Duration| -> bool {
        let fd = k
            .stack
            .socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0)
            .expect("socket");
        if let Some(t) = ttl {
            k.stack.setsockopt(fd, SockOpt::IpTtl(t)).expect("IP_TTL");
        }
        k.stack
            .setsockopt(fd, SockOpt::IpTos(0x13))
            .expect("IP_TOS");
        assert_eq!(
            k.stack.getsockopt(fd, SockOptName::IpTos).expect("get"),
            SockOpt::IpTos(0x10)
        );
        match k.stack.connect(fd, k.kernel(7302)) {
            Ok(()) | Err(ustack_socket::Errno::EINPROGRESS) => {}
            Err(e) => panic!("connect: {e:?}"),
        }
        let mut p = [PollFd::new(fd, PollEvents::POLLOUT)];
        let ready = k.stack.poll(&mut p, Some(wait)).expect("poll") == 1
            && k.stack
                .getsockopt(fd, SockOptName::Error)
                .expect("SO_ERROR")
                == SockOpt::Error(None);
        k.stack.close(fd).expect("close");
        ready
    };
    assert!(
        !connects(None, Duration::from_millis(1500)),
        "TTL 64 passed IP_MINTTL 255"
    );
    assert!(
        connects(Some(255), Duration::from_secs(10)),
        "TTL 255 did not connect"
    );
    finish_ok(server, "acceptor");
}

/// Segments the stack sent between accepting a kernel client's connection and the
/// client reading `hello\n` and EOF, when the server sends the greeting (with
/// MSG_MORE or not, TCP_NODELAY on) and closes.
fn greeting_segments(k: &Kernel, port: u16, more: bool) -> u64 {
    let listener = TcpListener::bind(&k.stack, ("0.0.0.0", port)).expect("bind");
    let (got_tx, got_rx) = std::sync::mpsc::channel();
    let (close_tx, close_rx) = std::sync::mpsc::channel::<()>();
    let client = k.peer("client", move || -> io::Result<()> {
        let mut s = KernelStream::connect_timeout(&stack_addr(port), Duration::from_secs(30))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)?;
        let _ = got_tx.send(buf);
        // Keep the connection until the stack's counters are read: our FIN would be
        // answered with one more segment.
        let _ = close_rx.recv_timeout(PEER_TIMEOUT);
        Ok(())
    });
    let (s, _) = listener.accept().expect("accept");
    s.set_nodelay(true).expect("TCP_NODELAY");
    let out = || {
        k.stack
            .with_interface(|iface, _| iface.tcp().counters().segments_out)
    };
    let before = out();
    let flags = if more { ustack_socket::MSG_MORE } else { 0 };
    assert_eq!(k.stack.send(s.fd(), b"hello\n", flags).expect("send"), 6);
    drop(s);
    let got = got_rx
        .recv_timeout(PEER_TIMEOUT)
        .expect("the client's bytes");
    let sent = out() - before;
    let _ = close_tx.send(());
    finish_ok(client, "client");
    assert_eq!(got, b"hello\n");
    sent
}

#[test]
fn ksock_msg_more_greeting_leaves_with_the_fin() {
    require_netns!();
    let k = Kernel::start();
    // Without MSG_MORE the greeting goes at the write and the FIN at the close, as Linux.
    assert_eq!(greeting_segments(&k, 7030, false), 2);
    // With it, one segment carries both.
    assert_eq!(greeting_segments(&k, 7031, true), 1);
}
