//! TCP against the Linux kernel, inside a namespace each test creates: the kernel as
//! client of the stack's echo service and as server for a client on the stack; bulk
//! transfers checked with SHA-256 on both sides, concurrency, refusals, resets,
//! negotiated options as `ss` sees them, and recovery from iptables loss.

use core::net::SocketAddrV4;
use std::io::Write;
use std::time::Duration;
use ustack::iface::Interface;
use ustack::socket::tcp::{RecvError, SendError, TcpHandle, TcpState};
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
    std::sync::Arc<std::sync::Mutex<ustack_socket::echo::EchoStats>>,
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

#[test]
fn kernel_tcp_100_concurrent_connections_to_echo() {
    require_netns!("python3");
    let (mut fx, stats) = echo_fixture(Options {
        seed: 3,
        ..Options::default()
    });
    // Every thread connects, then all send at once (a barrier), so the 100 connections
    // are open together; each payload is distinct (its own random bytes and length).
    let script = format!(
        r#"
import os, socket, threading
N = 100
barrier = threading.Barrier(N)
results = [None] * N
def worker(i):
    try:
        s = socket.create_connection(("{ip}", 7), timeout=60)
        payload = os.urandom(20000 + 97 * i)
        barrier.wait(timeout=60)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
        s.close()
        results[i] = bytes(got) == payload or "mismatch: %d of %d bytes" % (len(got), len(payload))
    except Exception as e:
        results[i] = repr(e)
threads = [threading.Thread(target=worker, args=(i,)) for i in range(N)]
for t in threads:
    t.start()
for t in threads:
    t.join()
bad = [(i, r) for i, r in enumerate(results) if r is not True]
print(N - len(bad), bad[:5])
"#,
        ip = fx.stack_ip
    );
    let bg = Background::spawn(&fx, &["python3", "-c", &script]);
    let (ok, out, err) = bg.finish(Duration::from_secs(120));
    assert!(ok, "python failed:\n{out}\n{err}");
    assert!(out.trim().starts_with("100 []"), "{out}\n{err}");
    let s = *stats.lock().unwrap();
    assert_eq!((s.accepted, s.completed, s.failed), (100, 100, 0), "{s:?}");
    assert_eq!(s.max_open, 100, "all open at once: {s:?}");
    let expected: u64 = (0..100).map(|i| 20000 + 97 * i).sum();
    assert_eq!(s.tcp_bytes, expected);
    let mut r = fx.stop();
    report(&format!(
        "100 concurrent echo connections: echo wake-ups {}, services {} ({:.1} per wake-up); \
         listen overflows {}",
        s.wakeups,
        s.services,
        s.services as f64 / s.wakeups.max(1) as f64,
        r.iface.tcp().counters().listen_overflows
    ));
}

/// Polls `f` on the driver thread every 20 ms until it returns `Some`, for at most `timeout`.
fn wait_until<T: Send + 'static>(
    fx: &Fixture,
    timeout: Duration,
    what: &str,
    f: impl Fn(&mut Interface) -> Option<T> + Send + Sync + Clone + 'static,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let g = f.clone();
        if let Some(v) = fx.call(move |iface, _| g(iface)) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens a connection from the stack to `remote` and returns its handle.
fn stack_connect(fx: &Fixture, remote: SocketAddrV4) -> TcpHandle {
    fx.call(move |iface, now| {
        let cx = iface.tcp_context(now);
        let tcp = iface.tcp();
        let h = tcp.socket();
        tcp.connect(h, &cx, remote).expect("connect");
        h
    })
}

#[test]
fn kernel_tcp_kernel_connect_to_closed_stack_port_is_refused() {
    require_netns!("python3");
    let (fx, _) = echo_fixture(Options::default());
    let script = format!(
        r#"
import socket
try:
    socket.create_connection(("{ip}", 8), timeout=5)
    print("CONNECTED")
except ConnectionRefusedError:
    print("REFUSED")
except socket.timeout:
    print("TIMEOUT")
"#,
        ip = fx.stack_ip
    );
    let out = fx.exec(&["python3", "-c", &script]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "REFUSED",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kernel_tcp_stack_connect_to_closed_kernel_port_is_refused() {
    require_netns!();
    let fx = Fixture::start(Options::default());
    let remote: SocketAddrV4 = format!("{}:9", fx.kernel_ip).parse().unwrap();
    let h = stack_connect(&fx, remote);
    wait_until(
        &fx,
        Duration::from_secs(10),
        "connect fails",
        move |iface| (iface.tcp().state(h) == Some(TcpState::Closed)).then_some(()),
    );
    let (recv, send) = fx.call(move |iface, _| {
        let tcp = iface.tcp();
        let mut buf = [0u8; 8];
        (tcp.recv(h, &mut buf), tcp.send(h, b"x"))
    });
    assert_eq!(
        recv,
        Err(RecvError::Refused),
        "the RST refused the connection"
    );
    assert_eq!(send, Err(SendError::Closed), "then EPIPE");
}

#[test]
fn kernel_tcp_kernel_abort_resets_stack_connection() {
    require_netns!("python3");
    let fx = Fixture::start(Options::default());
    // The kernel accepts, reads the greeting, then closes with SO_LINGER {on, 0}: RST.
    let script = r#"
import socket, struct
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", 5002))
ls.listen(1)
print("READY", flush=True)
c, _ = ls.accept()
got = b""
while len(got) < 5:
    got += c.recv(5 - len(got))
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
print("ABORTED", got.decode(), flush=True)
"#;
    let mut server = Background::spawn(&fx, &["python3", "-c", script]);
    server.wait_for_line("READY");
    let remote: SocketAddrV4 = format!("{}:5002", fx.kernel_ip).parse().unwrap();
    let h = stack_connect(&fx, remote);
    wait_until(&fx, Duration::from_secs(10), "established", move |iface| {
        (iface.tcp().state(h) == Some(TcpState::Established)).then_some(())
    });
    assert_eq!(
        fx.call(move |iface, _| iface.tcp().send(h, b"hello")),
        Ok(5)
    );
    let (ok, out, err) = server.finish(Duration::from_secs(10));
    assert!(ok && out.contains("ABORTED hello"), "{out}\n{err}");
    wait_until(&fx, Duration::from_secs(10), "RST received", move |iface| {
        (iface.tcp().state(h) == Some(TcpState::Closed)).then_some(())
    });
    let (recv, send) = fx.call(move |iface, _| {
        let tcp = iface.tcp();
        let mut buf = [0u8; 8];
        (tcp.recv(h, &mut buf), tcp.send(h, b"more"))
    });
    assert_eq!(recv, Err(RecvError::Reset), "ECONNRESET");
    assert_eq!(send, Err(SendError::Closed), "then EPIPE");
}

#[test]
fn kernel_tcp_stack_abort_resets_kernel_connection() {
    require_netns!("python3");
    let fx = Fixture::start(Options::default());
    let listener = fx.call(|iface, _| {
        let tcp = iface.tcp();
        let l = tcp.socket();
        tcp.listen(l, "0.0.0.0:7001".parse().unwrap(), 8)
            .expect("listen");
        l
    });
    let script = format!(
        r#"
import socket
s = socket.create_connection(("{ip}", 7001), timeout=10)
s.sendall(b"hello")
try:
    b = s.recv(100)
    print("EOF" if not b else "DATA")
except ConnectionResetError:
    print("RESET")
except socket.timeout:
    print("TIMEOUT")
"#,
        ip = fx.stack_ip
    );
    let client = Background::spawn(&fx, &["python3", "-c", &script]);
    let conn = wait_until(&fx, Duration::from_secs(10), "accept", move |iface| {
        iface.tcp().accept(listener).ok().map(|(h, _)| h)
    });
    wait_until(&fx, Duration::from_secs(10), "greeting", move |iface| {
        let mut buf = [0u8; 5];
        match iface.tcp().peek(conn, &mut buf) {
            Ok(5) => Some(()),
            _ => None,
        }
    });
    fx.call(move |iface, _| iface.tcp().abort(conn))
        .expect("abort");
    let (ok, out, err) = client.finish(Duration::from_secs(15));
    assert!(ok, "{out}\n{err}");
    assert_eq!(out.trim(), "RESET", "{err}");
}

#[test]
fn kernel_tcp_options_negotiated_and_pcap_reads_in_tshark() {
    require_netns!("python3", "ss", "tshark");
    let (make, _) = tcp::echo_app(7);
    let mut fx = Fixture::start_with_app(
        Options {
            pcap: true,
            seed: 11,
            ..Options::default()
        },
        make,
    );
    // The kernel connects, checks one echo, then holds the connection while `ss` looks.
    let script = format!(
        r#"
import socket, time
s = socket.create_connection(("{ip}", 7), timeout=10)
s.sendall(b"options?")
got = b""
while len(got) < 8:
    got += s.recv(8 - len(got))
assert got == b"options?", got
# struct tcp_info: tcpi_options is byte 5 (1 = timestamps, 2 = SACK, 4 = wscale).
info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
print("TCPI_OPTIONS", info[5], flush=True)
print("OPEN", flush=True)
time.sleep(3)
s.close()
print("CLOSED", flush=True)
"#,
        ip = fx.stack_ip
    );
    let mut client = Background::spawn(&fx, &["python3", "-c", &script]);
    let tcpi_options: u8 = client
        .wait_for_prefix("TCPI_OPTIONS ")
        .trim()
        .parse()
        .expect("tcpi_options");
    client.wait_for_line("OPEN");
    let out = fx.exec(&["ss", "-tin", "dst", &format!("{}:7", fx.stack_ip)]);
    let ss = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = client.finish(Duration::from_secs(15));
    // `ss -i` prints the connection line, then its TCP_INFO on the next line.
    let info = ss
        .lines()
        .skip_while(|l| !l.contains(&format!("{}:7", fx.stack_ip)))
        .nth(1)
        .unwrap_or_else(|| panic!("no connection to the stack in ss:\n{ss}"));
    let words: Vec<&str> = info.split_whitespace().collect();
    // `ss` prints `ts` and `sack` from tcpi_options. Some iproute2/kernel pairs omit
    // them even between two kernel sockets (iproute2 6.1 on Linux 6.18 does), so the
    // same bits read with getsockopt(TCP_INFO) on the kernel's socket also count.
    assert!(
        words.contains(&"ts") || tcpi_options & 1 != 0,
        "timestamps not negotiated (tcpi_options {tcpi_options:#x}):\n{ss}"
    );
    assert!(
        words.contains(&"sack") || tcpi_options & 2 != 0,
        "SACK not negotiated (tcpi_options {tcpi_options:#x}):\n{ss}"
    );
    assert!(tcpi_options & 4 != 0, "wscale bit: {tcpi_options:#x}");
    let wscale = words
        .iter()
        .find_map(|w| w.strip_prefix("wscale:"))
        .unwrap_or_else(|| panic!("window scaling not negotiated:\n{ss}"));
    // snd_wscale (what the stack announced),rcv_wscale: 128 KiB needs a shift of 2.
    assert_eq!(wscale.split(',').next(), Some("2"), "{ss}");
    let mss: usize = words
        .iter()
        .find_map(|w| w.strip_prefix("mss:"))
        .unwrap_or_else(|| panic!("no mss:\n{ss}"))
        .parse()
        .expect("mss number");
    // 1500 - 40, minus 12 bytes of timestamps.
    assert_eq!(mss, 1448, "{ss}");
    report(&format!(
        "ss -tin (kernel side): {}; tcpi_options {tcpi_options:#x}",
        info.trim()
    ));

    let report_ = fx.stop();
    let path = fx.pcap.clone().expect("pcap on");
    let path = path.to_str().expect("utf-8 path");
    let moved = report_.link.rx_frames + report_.link.tx_frames;
    let all = fx.exec(&["tshark", "-n", "-r", path]);
    assert!(all.status.success(), "tshark failed: {all:?}");
    let text = String::from_utf8_lossy(&all.stdout);
    assert_eq!(text.lines().count() as u64, moved, "tshark lists:\n{text}");
    let flagged = fx.exec(&[
        "tshark",
        "-n",
        "-r",
        path,
        "-Y",
        "_ws.malformed || _ws.expert.severity >= error",
    ]);
    let flagged = String::from_utf8_lossy(&flagged.stdout);
    assert!(flagged.trim().is_empty(), "tshark flags:\n{flagged}");
    // The handshake: SYN from the kernel, SYN,ACK from the stack with every option.
    let field = |filter: &str, fields: &[&str]| -> Vec<String> {
        let mut args = vec!["tshark", "-n", "-r", path, "-Y", filter, "-T", "fields"];
        for f in fields {
            args.extend_from_slice(&["-e", f]);
        }
        let out = fx.exec(&args);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let syn = field("tcp.flags.syn == 1 && tcp.flags.ack == 0", &["ip.src"]);
    assert_eq!(syn, vec![fx.kernel_ip.clone()], "SYN\n{text}");
    let syn_ack = field(
        "tcp.flags.syn == 1 && tcp.flags.ack == 1",
        &[
            "ip.src",
            "tcp.options.mss_val",
            "tcp.options.wscale.shift",
            "tcp.options.sack_perm",
            "tcp.options.timestamp.tsval",
        ],
    );
    assert_eq!(syn_ack.len(), 1, "one SYN,ACK\n{text}");
    let f: Vec<&str> = syn_ack[0].split('\t').collect();
    assert_eq!(f[0], fx.stack_ip, "{syn_ack:?}");
    assert_eq!(f[1], "1460", "{syn_ack:?}");
    assert_eq!(f[2], "2", "{syn_ack:?}");
    assert!(!f[3].is_empty() && !f[4].is_empty(), "{syn_ack:?}");
    assert!(
        text.contains("[SYN]") && text.contains("[SYN, ACK]"),
        "{text}"
    );
}

/// Adds `rule` (e.g. `-A INPUT ...`) inside the fixture's namespace, with whichever
/// iptables flavour works here (nft, then legacy). Never touches the root namespace.
fn iptables_in_ns(fx: &Fixture, rule: &[&str]) {
    let mut errors = String::new();
    for tool in ["iptables", "iptables-nft", "iptables-legacy"] {
        let mut args = vec![tool];
        args.extend_from_slice(rule);
        match fx.ns.exec(&args) {
            Ok(out) if out.status.success() => return,
            Ok(out) => errors.push_str(&format!(
                "{tool}: {}\n",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => errors.push_str(&format!("{tool}: {e}\n")),
        }
    }
    panic!("cannot add iptables rule {rule:?} in the namespace:\n{errors}");
}

fn add_loss(fx: &Fixture, probability: &str) {
    for chain in ["INPUT", "OUTPUT"] {
        iptables_in_ns(
            fx,
            &[
                "-A",
                chain,
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                probability,
                "-j",
                "DROP",
            ],
        );
    }
}

/// Tcp RetransSegs of the namespace's kernel (/proc/net/snmp is per namespace).
fn kernel_retrans_segs(fx: &Fixture) -> u64 {
    let out = fx.exec(&["cat", "/proc/net/snmp"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().unwrap_or(""), tcp.next().unwrap_or(""));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RetransSegs")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn kernel_tcp_loss_5_percent_stack_client_10mb_each_way() {
    require_netns!("python3", "iptables");
    let fx = Fixture::start(Options {
        seed: 21,
        ..Options::default()
    });
    add_loss(&fx, "0.05");
    let events = tcp::count_events(&fx);
    let res = stack_client(&fx, 10 * MB, 5, Duration::from_secs(300));
    let info = res.info.clone().expect("info");
    assert!(
        info.total_retrans > 0,
        "5% loss but no retransmission: {info:?}"
    );
    let e = *events.lock().unwrap();
    report(&format!(
        "5% loss each way, stack client 10 MB each way: {:.2} s ({:.1} Mbit/s per direction); \
         stack retransmitted {} segments ({} bytes): {} fast retransmits, {} RTOs; \
         kernel RetransSegs {}",
        res.elapsed.as_secs_f64(),
        mbit_per_s(10 * MB, res.elapsed.as_secs_f64()),
        info.total_retrans,
        info.bytes_retrans,
        e.fast_retransmits,
        e.rtos,
        kernel_retrans_segs(&fx)
    ));
}

#[test]
fn kernel_tcp_loss_5_percent_kernel_echo_10mb() {
    require_netns!("python3", "iptables");
    let (mut fx, stats) = echo_fixture(Options {
        seed: 22,
        ..Options::default()
    });
    add_loss(&fx, "0.05");
    let events = tcp::count_events(&fx);
    let secs = kernel_echo(&fx, 10 * MB, Duration::from_secs(300));
    let s = *stats.lock().unwrap();
    assert_eq!((s.completed, s.failed), (1, 0), "{s:?}");
    let retrans = kernel_retrans_segs(&fx);
    let e = *events.lock().unwrap();
    assert!(
        e.retransmits > 0,
        "5% loss but the stack never retransmitted: {e:?}"
    );
    let r = fx.stop();
    report(&format!(
        "5% loss each way, kernel echo client 10 MB each way: {secs:.2} s \
         ({:.1} Mbit/s per direction); stack: {} retransmissions, {} fast retransmits, \
         {} RTOs; kernel RetransSegs {retrans}; stack sent {} frames",
        mbit_per_s(10 * MB, secs),
        e.retransmits,
        e.fast_retransmits,
        e.rtos,
        r.link.tx_frames
    ));
}
