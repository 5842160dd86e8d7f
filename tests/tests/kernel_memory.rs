//! Memory against the kernel side, inside a namespace each test creates: the test
//! process's RSS while the kernel holds 10,000 idle connections to the stack's echo
//! service, and across rounds of connections opened and closed completely.
//!
//! The stack runs in this process; the kernel's socket memory is not part of its RSS, so
//! the growth measured is the stack's (plus a few bytes per client `TcpStream`).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd;
use std::time::Duration;
use ustack_tests::{require_netns, tcp, Fixture, Options};

/// The tests of this file measure this process's RSS (and load the machine): they run
/// one at a time even when the harness runs tests in parallel.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Printed even when the test runner captures output.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// VmRSS of this process in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A TCP connection from `src` (any port) to `to`: each round uses its own source
/// address so that the kernel's TIME-WAIT entries of earlier rounds never run it out of
/// ephemeral ports.
fn connect_from(src: Ipv4Addr, to: SocketAddrV4) -> std::io::Result<TcpStream> {
    fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
        // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
        let mut sa: libc::sockaddr_in = unsafe { core::mem::zeroed() };
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_port = a.port().to_be();
        sa.sin_addr.s_addr = u32::from(*a.ip()).to_be();
        sa
    }
    let len = core::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket(2); the descriptor is owned by the TcpStream below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket we own.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let local = sockaddr(SocketAddrV4::new(src, 0));
    // SAFETY: the pointer and length describe a valid sockaddr_in.
    if unsafe { libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let remote = sockaddr(to);
    // SAFETY: as above; a blocking connect.
    if unsafe { libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stream)
}

/// Opens `n` connections from `src` that each echo one byte, and keeps them open.
fn open_echoed(src: Ipv4Addr, to: SocketAddrV4, n: usize) -> Result<Vec<TcpStream>, String> {
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = connect_from(src, to).map_err(|e| format!("connect {i}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        s.write_all(&[i as u8])
            .map_err(|e| format!("write {i}: {e}"))?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b).map_err(|e| format!("read {i}: {e}"))?;
        if b[0] != i as u8 {
            return Err(format!("connection {i} echoed {}", b[0]));
        }
        v.push(s);
    }
    Ok(v)
}

/// Closes every connection gracefully (FIN, the echo server answers with its own).
fn close_all(streams: Vec<TcpStream>) -> Result<(), String> {
    for mut s in streams {
        s.shutdown(std::net::Shutdown::Write)
            .map_err(|e| e.to_string())?;
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Waits until the stack holds exactly `want` TCP sockets.
fn wait_sockets(fx: &Fixture, want: usize, timeout: Duration) -> usize {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let n = fx.call(|iface, _| iface.tcp().socket_count());
        if n == want || std::time::Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn fixture() -> (Fixture, SocketAddrV4) {
    let (make, _) = tcp::echo_app(7);
    let fx = Fixture::start_with_app(Options::default(), make);
    for host in 11..=17 {
        fx.ns
            .ip(&["addr", "add", &format!("10.77.0.{host}/24"), "dev", "tap0"])
            .expect("add a source address");
    }
    let to = SocketAddrV4::new(fx.stack_ip.parse().expect("stack ip"), 7);
    (fx, to)
}

#[test]
fn kernel_memory_10k_idle_connections_cost_under_8_kib_each() {
    require_netns!();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (fx, to) = fixture();
    const N: usize = 10_000;
    // Warm-up: pools that are bounded but filled lazily count in the baseline.
    let warm = fx
        .peer("warm-up", move || {
            open_echoed(Ipv4Addr::new(10, 77, 0, 11), to, 200).and_then(close_all)
        })
        .join(Duration::from_secs(60));
    warm.expect("warm-up connections");
    assert_eq!(wait_sockets(&fx, 1, Duration::from_secs(10)), 1);
    let before = rss_kib();
    let t0 = std::time::Instant::now();
    let streams = fx
        .peer("10,000 idle connections", move || {
            open_echoed(Ipv4Addr::new(10, 77, 0, 12), to, N)
        })
        .join(Duration::from_secs(300))
        .expect("10,000 connections each echo one byte");
    let opened = t0.elapsed();
    assert_eq!(wait_sockets(&fx, N + 1, Duration::from_secs(10)), N + 1);
    // Idle buffers are given back after `idle_buffer_release` (1 s) without segments.
    std::thread::sleep(Duration::from_secs(3));
    let after = rss_kib();
    let released = fx.call(|iface, _| iface.tcp().counters().buffers_released);
    let per_conn = (after.saturating_sub(before)) as f64 * 1024.0 / N as f64;
    report(&format!(
        "{N} idle connections (opened in {opened:?}): VmRSS {before} KiB -> {after} KiB, \
         {per_conn:.0} bytes per connection; buffers released {released}"
    ));
    drop(streams);
    assert!(
        per_conn <= 8192.0,
        "RSS grew {per_conn:.0} bytes per idle connection"
    );
}

#[test]
fn kernel_memory_six_rounds_of_5000_connections_give_memory_back() {
    require_netns!();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (fx, to) = fixture();
    const N: usize = 5000;
    let start = rss_kib();
    let mut rss = Vec::new();
    for round in 0..6u8 {
        let t0 = std::time::Instant::now();
        let src = Ipv4Addr::new(10, 77, 0, 11 + round);
        fx.peer("a round of connections", move || {
            open_echoed(src, to, N).and_then(close_all)
        })
        .join(Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let left = wait_sockets(&fx, 1, Duration::from_secs(20));
        assert_eq!(left, 1, "round {round}: only the listener stays");
        rss.push(rss_kib());
        report(&format!(
            "round {}: {N} connections opened, echoed and closed in {:?}; VmRSS {} KiB",
            round + 1,
            t0.elapsed(),
            rss[round as usize]
        ));
    }
    report(&format!(
        "VmRSS at start {start} KiB, after each round {rss:?} KiB"
    ));
    assert!(
        rss[5] as f64 <= 1.2 * rss[0] as f64,
        "RSS after the sixth round {} KiB > 1.2 x after the first {} KiB",
        rss[5],
        rss[0]
    );
}
