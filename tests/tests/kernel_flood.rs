//! Floods from the kernel side of the TAP, inside a namespace each test creates: a
//! spoofed SYN flood against the echo service (SYN cookies keep it serving), and
//! IPv4 and IPv6 floods of fragments that never complete (bounded memory).
//!
//! The flooding thread enters the namespace and writes frames with an AF_PACKET socket
//! on the kernel's end of the TAP; the spoofed sources are addresses of the namespace's
//! subnet that nobody owns, so the stack's SYN,ACKs wait for ARP answers that never
//! come and its SYN-RECEIVED entries retransmit: the queue fills for good unless the
//! stack answers with cookies.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant as StdInstant};
use ustack::link::sys::AfPacketLink;
use ustack::link::Link;
use ustack::time::Instant;
use ustack::wire::{checksum, EthernetAddress, SeqNumber, TcpFlags, TcpOptions, TcpRepr};
use ustack_tests::{require_netns, tcp, Fixture, Options};

/// The tests of this file measure this process's RSS (and load the machine): they run
/// one at a time even when the harness runs tests in parallel.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Printed even when the test runner captures output.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A spoofed SYN from `10.77.0.{host}:{port}` (a MAC nobody has) to the stack's port 7.
fn syn_frame(dst_mac: EthernetAddress, host: u8, port: u16, seq: u32) -> Vec<u8> {
    let src = std::net::Ipv4Addr::new(10, 77, 0, host);
    let dst = std::net::Ipv4Addr::new(10, 77, 0, 2);
    let tcp = TcpRepr {
        src_port: port,
        dst_port: 7,
        seq_number: SeqNumber(seq),
        ack_number: SeqNumber(0),
        flags: TcpFlags::SYN,
        window_len: 64240,
        urgent_ptr: 0,
        options: TcpOptions {
            mss: Some(1460),
            ..TcpOptions::default()
        },
        payload: &[],
    };
    let tcp_len = tcp.buffer_len();
    let total = 14 + 20 + tcp_len;
    let mut f = vec![0u8; total];
    f[0..6].copy_from_slice(&dst_mac.0);
    f[6..12].copy_from_slice(&[0x02, 0x5f, 0, 0, 0, host]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&(seq as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let sum = checksum::of(&f[14..34]);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    tcp.emit(&mut f[34..], src, dst);
    f
}

/// The byte at `offset` of an echo stream seeded `seed`.
fn pattern(seed: u8, offset: u64) -> u8 {
    (offset.wrapping_mul(131) >> 3) as u8 ^ seed
}

/// Echoes `len` bytes over `s` (a writer thread beside the reader) and checks every
/// byte; returns the elapsed time. With `pace`, the writer sends at most 1 MB per
/// `pace`, so the transfer spans a known time.
fn echo_exact(
    mut s: TcpStream,
    len: u64,
    seed: u8,
    pace: Option<Duration>,
) -> Result<Duration, String> {
    let t0 = StdInstant::now();
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = vec![0u8; 16384];
        let mut off = 0u64;
        let start = StdInstant::now();
        while off < len {
            if let Some(p) = pace {
                let due = p * (off / 1_000_000) as u32;
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            let n = (len - off).min(buf.len() as u64) as usize;
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = pattern(seed, off + i as u64);
            }
            w.write_all(&buf[..n])?;
            off += n as u64;
        }
        Ok(())
    });
    let mut buf = vec![0u8; 65536];
    let mut got = 0u64;
    while got < len {
        let n = s
            .read(&mut buf)
            .map_err(|e| format!("read after {got} bytes: {e}"))?;
        if n == 0 {
            return Err(format!("EOF after {got} of {len} bytes"));
        }
        for (i, &b) in buf[..n].iter().enumerate() {
            if b != pattern(seed, got + i as u64) {
                return Err(format!("byte {} differs", got + i as u64));
            }
        }
        got += n as u64;
    }
    writer
        .join()
        .map_err(|_| "writer panicked".to_owned())?
        .map_err(|e| format!("write: {e}"))?;
    Ok(t0.elapsed())
}

/// Connects and echoes `len` bytes; both must finish within `limit`.
fn connect_and_echo(
    to: SocketAddr,
    len: u64,
    seed: u8,
    limit: Duration,
) -> Result<Duration, String> {
    let t0 = StdInstant::now();
    let s = TcpStream::connect_timeout(&to, limit).map_err(|e| format!("connect: {e}"))?;
    echo_exact(s, len, seed, None)?;
    let took = t0.elapsed();
    if took > limit {
        return Err(format!("took {took:?}, over {limit:?}"));
    }
    Ok(took)
}

#[test]
fn kernel_flood_syn_cookies_keep_service_under_100k_spoofed_syns() {
    require_netns!();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (make, _stats) = tcp::echo_app(7);
    let fx = Fixture::start_with_app(Options::default(), make);
    let to: SocketAddr = format!("{}:7", fx.stack_ip).parse().expect("addr");
    let mac = fx.mac;
    const SYNS: u32 = 100_000;
    const BULK: u64 = 20_000_000;

    // The connection made before the flood; it starts echoing when the flood starts and
    // is paced to last about as long (1 MB per 50 ms).
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (up_tx, up_rx) = mpsc::channel::<()>();
    let bulk = fx.peer("20 MB echo", move || {
        let s = TcpStream::connect_timeout(&to, Duration::from_secs(5))
            .map_err(|e| format!("connect: {e}"))?;
        let _ = up_tx.send(());
        let _ = go_rx.recv();
        echo_exact(s, BULK, 0x5a, Some(Duration::from_millis(50)))
    });
    up_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the pre-flood connection is up");

    let flood = fx.peer("SYN flood", move || -> Result<Duration, String> {
        let mut link = AfPacketLink::open("tap0").map_err(|e| e.to_string())?;
        let frames: Vec<Vec<u8>> = (0..SYNS)
            .map(|i| {
                // Hosts 100..=254 of the subnet: nobody answers ARP for them.
                let host = 100 + (i % 155) as u8;
                let port = 1024 + (i / 155) as u16;
                syn_frame(mac, host, port, i.wrapping_mul(2_654_435_761))
            })
            .collect();
        let t0 = StdInstant::now();
        for (i, f) in frames.iter().enumerate() {
            // Paced to about one second: 1,000 frames per millisecond.
            let due = Duration::from_micros(i as u64 * 10);
            if let Some(wait) = due.checked_sub(t0.elapsed()) {
                if wait > Duration::from_millis(1) {
                    std::thread::sleep(wait);
                }
            }
            loop {
                match link.send(Instant::ZERO, f) {
                    Ok(()) => break,
                    // The TAP's queue is full (ENOBUFS): the stack is behind; retry.
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        std::thread::sleep(Duration::from_micros(50))
                    }
                    Err(e) => return Err(format!("send: {e}")),
                }
            }
        }
        Ok(t0.elapsed())
    });
    let _ = go_tx.send(());

    // A new connection while the flood runs.
    std::thread::sleep(Duration::from_millis(300));
    let during = fx
        .peer("echo during the flood", move || {
            connect_and_echo(to, 100_000, 0x11, Duration::from_secs(3))
        })
        .join(Duration::from_secs(20));
    let flood_took = flood.join(Duration::from_secs(60)).expect("flood sent");
    let after = fx
        .peer("echo after the flood", move || {
            connect_and_echo(to, 100_000, 0x22, Duration::from_secs(3))
        })
        .join(Duration::from_secs(20));
    let bulk = bulk.join(Duration::from_secs(120));
    let c = fx.call(|iface, _| iface.tcp().counters());
    // SYNs the kernel could not hand to the TAP because the stack was behind.
    let tap = fx
        .ns
        .ip(&["-s", "link", "show", "tap0"])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let tx_dropped = tap
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("TX:"))
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or("?")
        .to_owned();
    report(&format!(
        "SYN flood: {SYNS} spoofed SYNs sent in {flood_took:?}; pre-flood connection echoed \
         {BULK} bytes: {bulk:?}; new connection during the flood: {during:?}, after: {after:?}; \
         segments in {}, SYN cookies sent {}, valid {}, invalid {}, SYN-RECEIVED evicted {}, \
         listen overflows {}; tap0 TX dropped (SYNs the stack was too slow to take) {tx_dropped}",
        c.segments_in,
        c.syncookies_sent,
        c.syncookies_valid,
        c.syncookies_invalid,
        c.syn_recv_evicted,
        c.listen_overflows
    ));
    bulk.expect("the pre-flood connection echoes 20 MB byte-exact");
    during.expect("a connection made during the flood echoes 100 KB within 3 s");
    after.expect("a connection made after the flood echoes 100 KB within 3 s");
    assert!(c.syncookies_sent > 0, "the SYN queue overflowed: {c:?}");
    assert_eq!(
        c.listen_overflows, 0,
        "no SYN dropped for a full queue: {c:?}"
    );
}

/// VmRSS of this process in KiB (the stack runs in it).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A first fragment (MF set, offset 0) of a UDP datagram that never completes.
fn fragment_frame(dst_mac: EthernetAddress, host: u8, ident: u16, len: usize) -> Vec<u8> {
    let total = 20 + len;
    let mut f = vec![0u8; 14 + total];
    f[0..6].copy_from_slice(&dst_mac.0);
    f[6..12].copy_from_slice(&[0x02, 0x5f, 0, 0, 1, host]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14] = 0x45;
    f[16..18].copy_from_slice(&(total as u16).to_be_bytes());
    f[18..20].copy_from_slice(&ident.to_be_bytes());
    f[20..22].copy_from_slice(&0x2000u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 77, 0, host]);
    f[30..34].copy_from_slice(&[10, 77, 0, 2]);
    let sum = checksum::of(&f[14..34]);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    for (i, b) in f[34..].iter_mut().enumerate() {
        *b = i as u8;
    }
    f
}

#[test]
fn kernel_flood_100k_never_completed_fragments_stay_bounded() {
    require_netns!();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fx = Fixture::start(Options::default());
    let mac = fx.mac;
    const FRAGMENTS: u32 = 100_000;
    let before = rss_kib();
    let flood = fx.peer("fragment flood", move || -> Result<Duration, String> {
        let mut link = AfPacketLink::open("tap0").map_err(|e| e.to_string())?;
        let t0 = StdInstant::now();
        for i in 0..FRAGMENTS {
            // Hosts 100..=254 of the subnet (nobody answers ARP), every ident distinct
            // per host: 100,000 datagrams, each missing its last fragment.
            let host = 100 + (i % 155) as u8;
            let f = fragment_frame(mac, host, (i / 155) as u16, 1200);
            loop {
                match link.send(Instant::ZERO, &f) {
                    Ok(()) => break,
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        std::thread::sleep(Duration::from_micros(50))
                    }
                    Err(e) => return Err(format!("send: {e}")),
                }
            }
        }
        Ok(t0.elapsed())
    });
    let took = flood
        .join(Duration::from_secs(120))
        .expect("fragments sent");
    let during = rss_kib();
    let ping = fx.ping(&["-c", "3", "-s", "3000", "-W", "2"][..]);
    let after = rss_kib();
    let (held, datagrams, counters) = fx.call(|iface, _| {
        let r = iface.reassembler();
        (
            r.bytes(),
            r.in_progress(),
            iface.counters().iter().collect::<Vec<_>>(),
        )
    });
    let count = |name: &str| {
        counters
            .iter()
            .find(|(l, n, _)| *l == "ipv4" && *n == name)
            .map_or(0, |c| c.2)
    };
    report(&format!(
        "fragment flood: {FRAGMENTS} first fragments of 1200 bytes in {took:?}; VmRSS {before} \
         KiB -> {during} KiB after the flood, {after} KiB after the ping; reassembler holds \
         {held} bytes in {datagrams} datagrams; ipv4.rx_fragments {}, reassembly_no_room {}, \
         reassembled {}; 3000-byte ping: {}",
        count("rx_fragments"),
        count("reassembly_no_room"),
        count("reassembled"),
        ping.output
    ));
    ping.assert_all_answered(3);
    // Sampled right after the sender and again after the ping (the stack may still
    // have been draining the TAP at the first sample): both stay within the bound.
    let grew = during.max(after).saturating_sub(before);
    assert!(
        grew <= 64 * 1024,
        "RSS grew {grew} KiB under the fragment flood"
    );
    assert!(count("rx_fragments") > 0);
}

/// The first fragment (fragment header, offset 0, M set) of an ICMPv6 echo that never
/// completes, from a link-local source nobody owns to the stack's EUI-64 link-local
/// address (RFC 4291 App. A): what reassembly must hold within its bounds or drop.
fn fragment6_frame(dst_mac: EthernetAddress, host: u16, ident: u32, len: usize) -> Vec<u8> {
    let m = dst_mac.0;
    let mut src = [0u8; 16];
    src[0..2].copy_from_slice(&[0xfe, 0x80]);
    src[8..14].copy_from_slice(&[0x00, 0x5f, 0x00, 0xff, 0xfe, 0x01]);
    src[14..16].copy_from_slice(&host.to_be_bytes());
    let mut dst = [0u8; 16];
    dst[0..2].copy_from_slice(&[0xfe, 0x80]);
    dst[8..16].copy_from_slice(&[m[0] ^ 2, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]);
    let mut f = Vec::with_capacity(14 + 48 + len);
    f.extend_from_slice(&dst_mac.0);
    f.extend_from_slice(&[0x02, 0x5f, 0, 1, (host >> 8) as u8, host as u8]);
    f.extend_from_slice(&0x86ddu16.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&((8 + len) as u16).to_be_bytes());
    f.push(44);
    f.push(64);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    // Fragment header: next header ICMPv6, offset 0, more fragments.
    f.extend_from_slice(&[58, 0, 0, 1]);
    f.extend_from_slice(&ident.to_be_bytes());
    // An echo request's first bytes (its checksum covers bytes that never come).
    f.extend_from_slice(&[128, 0, 0, 0, 0x66, 0x66, 0, 1]);
    f.extend((8..len).map(|i| i as u8));
    f
}

#[test]
fn kernel_flood_100k_never_completed_ipv6_fragments_stay_bounded() {
    require_netns!();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (make, _stats) = tcp::echo_app(7);
    let fx = Fixture::start_with_app(Options::default(), make);
    let mac = fx.mac;
    const FRAGMENTS: u32 = 100_000;
    let rx_frames = |c: &[(&str, &str, u64)]| {
        c.iter()
            .find(|(l, n, _)| *l == "ethernet" && *n == "rx_frames")
            .map_or(0, |c| c.2)
    };
    let rx_before = fx.call(|iface, _| iface.counters().iter().collect::<Vec<_>>());
    let rx_before = rx_frames(&rx_before);
    // What the kernel's TAP dropped because its queue to the stack was full: those
    // frames never reach the stack, so they are accounted for separately.
    let tap_dropped = || -> u64 {
        let out = fx
            .ns
            .ip(&["-s", "link", "show", "tap0"])
            .expect("ip -s link");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("TX:"));
        lines
            .nth(1)
            .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
            .unwrap_or_else(|| panic!("no TX dropped in {text}"))
    };
    let dropped_before = tap_dropped();
    let before = rss_kib();
    let flood = fx.peer(
        "ipv6 fragment flood",
        move || -> Result<Duration, String> {
            let mut link = AfPacketLink::open("tap0").map_err(|e| e.to_string())?;
            let t0 = StdInstant::now();
            for i in 0..FRAGMENTS {
                // 1000 link-local sources, every ident distinct per source: 100,000
                // datagrams, each missing everything after its first 1232 bytes.
                let f = fragment6_frame(mac, 1 + (i % 1000) as u16, i / 1000, 1232);
                if i % 128 == 127 {
                    // Paced so that most frames reach the stack rather than overflow the
                    // TAP's queue (which drops, and is counted below).
                    std::thread::sleep(Duration::from_micros(500));
                }
                loop {
                    match link.send(Instant::ZERO, &f) {
                        Ok(()) => break,
                        Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                            std::thread::sleep(Duration::from_micros(50))
                        }
                        Err(e) => return Err(format!("send: {e}")),
                    }
                }
            }
            Ok(t0.elapsed())
        },
    );
    let took = flood
        .join(Duration::from_secs(120))
        .expect("IPv6 fragments sent");
    let during = rss_kib();
    // The stack still answers IPv4: a fragmented 3000-byte ping and a TCP echo.
    let ping = fx.ping(&["-c", "3", "-s", "3000", "-W", "2"][..]);
    let to: SocketAddr = format!("{}:7", fx.stack_ip).parse().expect("addr");
    let echo = fx
        .peer("echo after the ipv6 flood", move || {
            connect_and_echo(to, 100_000, 0x66, Duration::from_secs(3))
        })
        .join(Duration::from_secs(10));
    let after = rss_kib();
    let counters = fx.call(|iface, _| iface.counters().iter().collect::<Vec<_>>());
    let rx_after = rx_frames(&counters);
    let tap_drops = tap_dropped() - dropped_before;
    let v6: Vec<_> = counters
        .iter()
        .filter(|(l, _, v)| *v > 0 && (l.contains('6') || l.contains("ndp")))
        .map(|(l, n, v)| format!("{l}.{n}={v}"))
        .collect();
    report(&format!(
        "ipv6 fragment flood: {FRAGMENTS} first fragments of 1232 bytes in {took:?}; VmRSS \
         {before} KiB -> {during} KiB after the flood, {after} KiB after ping and echo; \
         ethernet.rx_frames {rx_before} -> {rx_after}, TAP queue drops {tap_drops}; ipv6 counters {v6:?}; 3000-byte ping: {}",
        ping.output
    ));
    ping.assert_all_answered(3);
    echo.expect("TCP echo of 100 kB after the IPv6 fragment flood");
    let grew = during.max(after).saturating_sub(before);
    assert!(
        grew <= 64 * 1024,
        "RSS grew {grew} KiB under the IPv6 fragment flood"
    );
    // Every fragment was either received and counted by the stack (dropped today,
    // counted as fragments once it reassembles IPv6) or dropped by the kernel's full
    // TAP queue; and the stack received a good share of them.
    let received = rx_after - rx_before;
    assert!(
        received + tap_drops >= u64::from(FRAGMENTS),
        "ethernet.rx_frames grew by {received}, the TAP dropped {tap_drops}, of {FRAGMENTS}"
    );
    assert!(
        received >= u64::from(FRAGMENTS) / 4,
        "the stack received {received}"
    );
}
