//! TCP against the Linux kernel, inside a namespace each test creates: the kernel as
//! client of the stack's echo service and as server for a client on the stack; bulk
//! transfers checked with SHA-256 on both sides, concurrency, refusals, resets,
//! negotiated options as `ss` sees them, and recovery from iptables loss.

use core::net::SocketAddrV4;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Barrier};
use std::time::Duration;
use ustack::iface::Interface;
use ustack::socket::tcp::{RecvError, SendError, TcpHandle, TcpState};
use ustack_tests::tcp::{self, BulkClient, Pattern};
use ustack_tests::{peer, require_netns, Fixture, Options};

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

fn stack_addr(fx: &Fixture, port: u16) -> SocketAddr {
    format!("{}:{port}", fx.stack_ip).parse().expect("addr")
}

/// The kernel sends `len` bytes to the echo service and reads them back; returns the
/// seconds the kernel side measured.
fn kernel_echo(fx: &Fixture, len: u64, timeout: Duration) -> f64 {
    let to = stack_addr(fx, 7);
    let t = fx
        .peer("echo client", move || peer::echo_client(to, len, 0xec40))
        .join(timeout)
        .expect("kernel echo client");
    assert_eq!(t.received, len, "bytes echoed back");
    assert_eq!(
        t.sent_sha256, t.received_sha256,
        "SHA-256 of sent vs echoed"
    );
    t.elapsed.as_secs_f64()
}

/// A client on the stack exchanges `len` bytes each way with a kernel server.
fn stack_client(fx: &Fixture, len: u64, seed: u64, timeout: Duration) -> tcp::ClientResult {
    let port = 5001;
    // Bound before the stack connects, so there is no start-up race.
    let listener = fx.in_ns(move || TcpListener::bind(("0.0.0.0", port)).expect("bind"));
    let server = fx.peer("sink-source server", move || {
        let (conn, _) = listener.accept()?;
        peer::exchange(conn, len, seed ^ 0x5eed)
    });
    let remote = format!("{}:{port}", fx.kernel_ip).parse().expect("addr");
    let (client, rx) = BulkClient::new(remote, len, seed);
    fx.spawn_app(client.into_app());
    let res = tcp::wait_result(&rx, timeout);
    let k = server.join(Duration::from_secs(30)).expect("kernel server");
    assert!(res.error.is_none(), "client: {res:?}");
    assert_eq!(k.received, len, "bytes the kernel received");
    assert_eq!(
        k.received_sha256, res.sent_sha256,
        "SHA-256 stack -> kernel"
    );
    assert_eq!(res.received, len, "bytes the stack received");
    assert_eq!(
        k.sent_sha256, res.received_sha256,
        "SHA-256 kernel -> stack"
    );
    res
}

#[test]
fn kernel_tcp_echo_50mb_from_kernel_client() {
    require_netns!();
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
    require_netns!();
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
    require_netns!();
    let (mut fx, stats) = echo_fixture(Options {
        seed: 3,
        ..Options::default()
    });
    // Every thread connects, then all send at once (a barrier), and none half-closes
    // before all have their first echoed bytes (a second barrier), so the 100
    // connections are open together; each payload is distinct (its own bytes and length).
    let to = stack_addr(&fx, 7);
    let clients = fx.peer("100 echo clients", move || {
        const N: usize = 100;
        let barrier = Arc::new(Barrier::new(N));
        let echoed = Arc::new(Barrier::new(N));
        let workers: Vec<_> = (0..N)
            .map(|i| {
                let barrier = barrier.clone();
                let echoed = echoed.clone();
                std::thread::spawn(move || -> Result<(), String> {
                    let connected = TcpStream::connect_timeout(&to, Duration::from_secs(60));
                    // Wait at the barriers whatever happened, or the others hang there.
                    barrier.wait();
                    let mut payload = vec![0u8; 20000 + 97 * i];
                    Pattern::new(i as u64 + 1).fill(&mut payload);
                    // The first echoed bytes prove the server accepted this connection;
                    // nobody half-closes before every client has them, so all 100 are
                    // open at the server together whatever the scheduling.
                    let first = (|| -> Result<(TcpStream, Vec<u8>), String> {
                        let mut s = connected.map_err(|e| format!("connect: {e}"))?;
                        s.set_read_timeout(Some(Duration::from_secs(60)))
                            .map_err(|e| e.to_string())?;
                        s.write_all(&payload).map_err(|e| format!("write: {e}"))?;
                        let mut got = vec![0u8; payload.len()];
                        let n = s.read(&mut got).map_err(|e| format!("read: {e}"))?;
                        got.truncate(n);
                        Ok((s, got))
                    })();
                    echoed.wait();
                    let (mut s, mut got) = first?;
                    s.shutdown(std::net::Shutdown::Write)
                        .map_err(|e| format!("shutdown: {e}"))?;
                    s.read_to_end(&mut got).map_err(|e| format!("read: {e}"))?;
                    if got == payload {
                        Ok(())
                    } else {
                        Err(format!(
                            "mismatch: {} of {} bytes",
                            got.len(),
                            payload.len()
                        ))
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .enumerate()
            .filter_map(|(i, w)| match w.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some((i, e)),
                Err(_) => Some((i, "panicked".to_owned())),
            })
            .collect::<Vec<_>>()
    });
    let bad = clients.join(Duration::from_secs(120));
    assert!(
        bad.is_empty(),
        "{} of 100 failed: {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
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
        tcp.connect(h, &cx, remote.into()).expect("connect");
        h
    })
}

#[test]
fn kernel_tcp_kernel_connect_to_closed_stack_port_is_refused() {
    require_netns!();
    let (fx, _) = echo_fixture(Options::default());
    let to = stack_addr(&fx, 8);
    let got = fx
        .peer("client", move || {
            TcpStream::connect_timeout(&to, Duration::from_secs(5)).map(|_| ())
        })
        .join(Duration::from_secs(30));
    let e = got.expect_err("connected to a closed port");
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
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
    require_netns!();
    let fx = Fixture::start(Options::default());
    // The kernel accepts, reads the greeting, then closes with SO_LINGER {on, 0}: RST.
    let listener = fx.in_ns(|| TcpListener::bind("0.0.0.0:5002").expect("bind"));
    let server = fx.peer("aborting server", move || -> std::io::Result<String> {
        let (mut c, _) = listener.accept()?;
        c.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut got = [0u8; 5];
        c.read_exact(&mut got)?;
        peer::abort(c)?;
        Ok(String::from_utf8_lossy(&got).into_owned())
    });
    let remote: SocketAddrV4 = format!("{}:5002", fx.kernel_ip).parse().unwrap();
    let h = stack_connect(&fx, remote);
    wait_until(&fx, Duration::from_secs(10), "established", move |iface| {
        (iface.tcp().state(h) == Some(TcpState::Established)).then_some(())
    });
    assert_eq!(
        fx.call(move |iface, _| iface.tcp().send(h, b"hello")),
        Ok(5)
    );
    let got = server.join(Duration::from_secs(10)).expect("kernel server");
    assert_eq!(got, "hello", "the kernel read the greeting before aborting");
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
    require_netns!();
    let fx = Fixture::start(Options::default());
    let listener = fx.call(|iface, _| {
        let tcp = iface.tcp();
        let l = tcp.socket();
        tcp.listen(l, "0.0.0.0:7001".parse().unwrap(), 8)
            .expect("listen");
        l
    });
    let to = stack_addr(&fx, 7001);
    let client = fx.peer("client", move || -> std::io::Result<usize> {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(10))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"hello")?;
        let mut buf = [0u8; 100];
        s.read(&mut buf)
    });
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
    let got = client.join(Duration::from_secs(15));
    let e = got.expect_err("the stack's abort reaches the kernel as a RST, not EOF or data");
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
}

#[test]
fn kernel_tcp_options_negotiated_and_pcap_reads_in_tshark() {
    require_netns!("ss", "tshark");
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
    let to = stack_addr(&fx, 7);
    let (tx, rx) = std::sync::mpsc::channel::<u8>();
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let client = fx.peer("client", move || -> std::io::Result<()> {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(10))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"options?")?;
        let mut got = [0u8; 8];
        s.read_exact(&mut got)?;
        assert_eq!(&got, b"options?");
        // struct tcp_info: tcpi_options is byte 5 (1 = timestamps, 2 = SACK, 4 = wscale).
        // SAFETY: zeroed tcp_info is valid; getsockopt writes at most `len` bytes.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let rc = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let _ = tx.send(info.tcpi_options);
        // Held open until `ss` has looked (or the test gave up).
        let _ = hold.recv_timeout(Duration::from_secs(15));
        Ok(())
    });
    let tcpi_options = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("tcpi_options from the kernel client");
    let out = fx.exec(&["ss", "-tin", "dst", &format!("{}:7", fx.stack_ip)]);
    let ss = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = release.send(());
    client.join(Duration::from_secs(15)).expect("kernel client");
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
    // snd_wscale (what the stack announced),rcv_wscale: the shift covers the 6 MiB the
    // receive buffer may be autotuned to (65535 << 7), as Linux's covers tcp_rmem[2].
    assert_eq!(wscale.split(',').next(), Some("7"), "{ss}");
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
    assert_eq!(f[2], "7", "{syn_ack:?}");
    assert!(!f[3].is_empty() && !f[4].is_empty(), "{syn_ack:?}");
    assert!(
        text.contains("[SYN]") && text.contains("[SYN, ACK]"),
        "{text}"
    );
}

#[test]
fn kernel_tcp_loss_5_percent_stack_client_10mb_each_way() {
    require_netns!("iptables");
    let fx = Fixture::start(Options {
        seed: 21,
        ..Options::default()
    });
    fx.add_kernel_loss("0.05");
    let events = tcp::count_events(&fx);
    let res = stack_client(&fx, 10 * MB, 5, Duration::from_secs(300));
    let info = res.info.clone().expect("info");
    assert!(
        info.total_retrans > 0,
        "5% loss but no retransmission: {info:?}"
    );
    let e = *events.lock().unwrap();
    report(&format!(
        "5% iptables loss in INPUT and OUTPUT, stack client 10 MB each way: {:.2} s ({:.1} Mbit/s per direction); \
         stack retransmitted {} segments ({} bytes): {} fast retransmits, {} RTOs; \
         kernel RetransSegs {}",
        res.elapsed.as_secs_f64(),
        mbit_per_s(10 * MB, res.elapsed.as_secs_f64()),
        info.total_retrans,
        info.bytes_retrans,
        e.fast_retransmits,
        e.rtos,
        fx.kernel_retrans_segs()
    ));
}

#[test]
fn kernel_tcp_loss_5_percent_kernel_echo_10mb() {
    require_netns!("iptables");
    let (mut fx, stats) = echo_fixture(Options {
        seed: 22,
        ..Options::default()
    });
    fx.add_kernel_loss("0.05");
    let events = tcp::count_events(&fx);
    let secs = kernel_echo(&fx, 10 * MB, Duration::from_secs(300));
    let s = *stats.lock().unwrap();
    assert_eq!((s.completed, s.failed), (1, 0), "{s:?}");
    let retrans = fx.kernel_retrans_segs();
    let e = *events.lock().unwrap();
    assert!(
        e.retransmits > 0,
        "5% loss but the stack never retransmitted: {e:?}"
    );
    let r = fx.stop();
    report(&format!(
        "5% iptables loss in INPUT and OUTPUT, kernel echo client 10 MB each way: {secs:.2} s \
         ({:.1} Mbit/s per direction); stack: {} retransmissions, {} fast retransmits, \
         {} RTOs; kernel RetransSegs {retrans}; stack sent {} frames",
        mbit_per_s(10 * MB, secs),
        e.retransmits,
        e.fast_retransmits,
        e.rtos,
        r.link.tx_frames
    ));
}
