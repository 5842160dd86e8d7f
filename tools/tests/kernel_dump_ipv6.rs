//! `ustack dump --tcpdump` on a capture of real kernel IPv6 traffic, compared line by
//! line with `tcpdump -n -r`, and read by tshark with no malformed packet.
//!
//! Two namespaces created here (IPv6 switched back on) joined by one veth pair; one
//! end is read by an AF_PACKET socket opened before the links come up, so the capture
//! holds the kernel's own chatter (duplicate address detection, MLDv2 reports, router
//! solicitations), then neighbour discovery, pings of 56 and 3000 bytes (fragmented)
//! to the global and the link-local address, UDP of 6 and 3000 bytes (fragmented), a
//! UDP datagram to a closed port (ICMPv6 port unreachable) and a TCP connection.
//! Every sender is a thread inside a namespace. Without CAP_NET_ADMIN it prints a loud
//! SKIPPED banner; under `USTACK_REQUIRE_NETNS=1` it fails instead.
//!
//! Exemptions: none. The ports are chosen among those tcpdump decodes as plain UDP/TCP.

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use ustack_socket::netns::Netns;

const BIN: &str = env!("CARGO_BIN_EXE_ustack");
const A6: &str = "2001:db8:77::1";
const B6: &str = "2001:db8:77::2";

fn enable_ipv6(ns: &Netns) {
    ns.run_in(|| {
        for which in ["all", "default"] {
            std::fs::write(format!("/proc/sys/net/ipv6/conf/{which}/disable_ipv6"), "0")
                .expect("enable IPv6 in the namespace");
        }
    })
    .expect("enter namespace");
}

/// Frames read, with their arrival time (ns since the epoch).
type Frames = Arc<Mutex<Vec<(u128, Vec<u8>)>>>;

/// An AF_PACKET socket on `dev` that sees both directions (unlike the stack's
/// `AfPacketLink`, which skips what its own side sent), so the kernel's queue order is
/// the capture's order. Opened inside the namespace.
fn open_capture(dev: &str) -> OwnedFd {
    let index = ustack::link::sys::if_nametoindex(dev).expect("ifindex");
    // SAFETY: socket/bind/setsockopt on a descriptor owned here; the sockaddr and the
    // timeval outlive the calls.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from((libc::ETH_P_ALL as u16).to_be()),
        )
    };
    assert!(
        raw >= 0,
        "AF_PACKET socket: {}",
        std::io::Error::last_os_error()
    );
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = index as i32;
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 50_000,
    };
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    fd
}

/// Reads the capture socket until `stop`.
fn capture(fd: OwnedFd, frames: Frames, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: recv into a buffer this function owns.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n > 0 {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            frames.lock().unwrap().push((t, buf[..n as usize].to_vec()));
        }
    }
}

/// A classic pcap (µs) of the frames in time order.
fn write_pcap(path: &Path, frames: &[(u128, Vec<u8>)]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (t, f) in frames {
        let us = t / 1000;
        out.extend_from_slice(&((us / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((us % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).expect("write capture");
}

/// One ICMPv6 echo over a raw socket (the kernel fills in the checksum); waits for the
/// reply. Runs inside the namespace.
fn ping6(dst: Ipv6Addr, scope: u32, size: usize, seq: u16) -> Result<(), String> {
    // SAFETY: plain socket calls on a descriptor this function owns; the buffers and
    // the sockaddr outlive each call.
    let raw = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6) };
    if raw < 0 {
        return Err(format!("socket: {}", std::io::Error::last_os_error()));
    }
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let tv = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    let id = 0x6d00 | (seq & 0xff);
    let mut msg = vec![128, 0, 0, 0];
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&seq.to_be_bytes());
    msg.extend((0..size).map(|i| i as u8));
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_addr.s6_addr = dst.octets();
    sa.sin6_scope_id = scope;
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&sa as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    if n < 0 {
        return Err(format!("sendto: {}", std::io::Error::last_os_error()));
    }
    let mut buf = vec![0u8; 65_536];
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(format!("recv: {}", std::io::Error::last_os_error()));
        }
        let m = &buf[..n as usize];
        if m.len() >= 8 && m[0] == 129 && m[4..6] == id.to_be_bytes() {
            assert_eq!(m.len(), 8 + size, "echo reply length");
            return Ok(());
        }
    }
    Err(format!("no reply from {dst}"))
}

fn link_local(ns: &Netns, dev: &str) -> Ipv6Addr {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = ns
            .ip(&["-6", "addr", "show", "dev", dev, "scope", "link"])
            .expect("ip addr");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(addr) = text.lines().find_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("inet6 ")?;
            (!l.contains("tentative")).then(|| rest.split('/').next()?.parse().ok())?
        }) {
            return addr;
        }
        assert!(
            Instant::now() < deadline,
            "no link-local address on {dev}: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tool(path: &str) -> Option<&str> {
    Path::new(path).exists().then_some(path)
}

fn require_or_skip(what: &str) {
    assert!(
        !ustack_tests::netns_required(),
        "{what} not installed (USTACK_REQUIRE_NETNS=1)"
    );
    let _ = writeln!(
        std::io::stderr(),
        "## SKIPPED part of kernel_dump_ipv6: {what} not installed"
    );
}

#[test]
fn kernel_ipv6_capture_dumps_like_tcpdump() {
    if !ustack_tests::netns_available("kernel_ipv6_capture_dumps_like_tcpdump") {
        return;
    }
    let a = Netns::new("v6dA").expect("namespace A");
    let b = Netns::new("v6dB").expect("namespace B");
    enable_ipv6(&a);
    enable_ipv6(&b);
    a.ip(&[
        "link",
        "add",
        "v6a",
        "type",
        "veth",
        "peer",
        "name",
        "v6b",
        "netns",
        b.name(),
    ])
    .expect("veth pair");
    let fd = a.run_in(|| open_capture("v6a")).expect("capture on v6a");
    let frames: Frames = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let cap = {
        let (frames, stop) = (frames.clone(), stop.clone());
        std::thread::spawn(move || capture(fd, frames, stop))
    };
    for (ns, dev, addr) in [(&a, "v6a", A6), (&b, "v6b", B6)] {
        let d = dev.to_owned();
        ns.run_in(move || ustack_socket::ethtool::set_tx_checksum(&d, false))
            .unwrap()
            .expect("checksum offload off");
        ns.ip(&["addr", "add", &format!("{addr}/64"), "dev", dev, "nodad"])
            .expect("address");
        ns.ip(&["link", "set", dev, "up"]).expect("link up");
    }
    // Link-local duplicate address detection (about a second) and the first router
    // solicitation happen on their own.
    let b_ll = link_local(&b, "v6b");
    let _ = link_local(&a, "v6a");
    std::thread::sleep(Duration::from_millis(1500));
    let scope = a
        .run_in(|| ustack::link::sys::if_nametoindex("v6a"))
        .unwrap()
        .expect("ifindex");

    let server = b
        .spawn_in("server", || {
            let udp = UdpSocket::bind("[::]:5002").expect("udp bind");
            udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let tcp = TcpListener::bind(format!("[{B6}]:5001")).expect("tcp listen");
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65_536];
            for _ in 0..2 {
                let (n, _) = udp.recv_from(&mut buf).expect("udp datagram");
                got.push(n);
            }
            let (mut s, _) = tcp.accept().expect("accept");
            let mut data = Vec::new();
            s.read_to_end(&mut data).expect("read");
            s.write_all(b"done").expect("reply");
            (got, data)
        })
        .expect("server thread");
    let client = a
        .spawn_in("client", move || -> Result<(), String> {
            let b_global: Ipv6Addr = B6.parse().unwrap();
            ping6(b_global, 0, 56, 1)?;
            ping6(b_ll, scope, 56, 2)?;
            ping6(b_global, 0, 3000, 3)?;
            let udp = UdpSocket::bind("[::]:0").map_err(|e| e.to_string())?;
            std::thread::sleep(Duration::from_millis(100));
            let to = SocketAddr::V6(SocketAddrV6::new(b_global, 5002, 0, 0));
            udp.send_to(b"hello!", to).map_err(|e| e.to_string())?;
            udp.send_to(&[0x42; 3000], to).map_err(|e| e.to_string())?;
            let closed = SocketAddr::V6(SocketAddrV6::new(b_global, 5009, 0, 0));
            udp.send_to(b"no", closed).map_err(|e| e.to_string())?;
            let mut s = TcpStream::connect(SocketAddr::V6(SocketAddrV6::new(b_global, 5001, 0, 0)))
                .map_err(|e| e.to_string())?;
            s.write_all(b"ipv6!\n").map_err(|e| e.to_string())?;
            s.shutdown(std::net::Shutdown::Write)
                .map_err(|e| e.to_string())?;
            let mut reply = Vec::new();
            s.read_to_end(&mut reply).map_err(|e| e.to_string())?;
            (reply == b"done")
                .then_some(())
                .ok_or("tcp reply".to_string())
        })
        .expect("client thread");
    client.join().expect("kernel IPv6 traffic");
    let (udp_sizes, tcp_data) = server.join();
    assert_eq!(udp_sizes, vec![6, 3000]);
    assert_eq!(tcp_data, b"ipv6!\n");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    cap.join().expect("capture thread");
    let frames = std::mem::take(&mut *frames.lock().unwrap());

    let path: PathBuf =
        std::env::temp_dir().join(format!("ustack-v6dump-{}.pcap", std::process::id()));
    write_pcap(&path, &frames);
    let path_s = path.to_str().expect("utf-8 path").to_owned();

    // What the capture must hold, by our own decoder.
    let decoded: Vec<_> = frames
        .iter()
        .map(|(_, f)| ustack_capture::decode::decode_frame(1, f))
        .collect();
    let icmp6 = |t: u8| {
        decoded
            .iter()
            .filter(|f| f.icmpv6.as_ref().is_some_and(|m| m.icmp_type == t))
            .count()
    };
    for (t, what) in [
        (128, "echo request"),
        (129, "echo reply"),
        (135, "neighbour solicitation"),
        (136, "neighbour advertisement"),
        (143, "MLDv2 report"),
        (133, "router solicitation"),
        (1, "port unreachable"),
    ] {
        assert!(icmp6(t) > 0, "no {what} in the capture");
    }
    let later = decoded
        .iter()
        .filter(|f| f.ipv6.as_ref().is_some_and(|i| i.later_fragment()))
        .count();
    assert!(
        later >= 4,
        "3000-byte ping and UDP each way: {later} later fragments"
    );
    assert!(decoded
        .iter()
        .any(|f| f.tcp.as_ref().is_some_and(|t| t.syn()) && f.ipv6.is_some()));
    let bad: Vec<_> = decoded
        .iter()
        .enumerate()
        .filter_map(|(i, f)| Some((i + 1, f.malformed.clone()?)))
        .collect();
    assert!(
        bad.is_empty(),
        "kernel frames decoded as malformed: {bad:?}"
    );

    // ustack dump --tcpdump against tcpdump -n, line for line.
    let ours = std::process::Command::new(BIN)
        .args(["dump", "--tcpdump", "--utc", &path_s])
        .output()
        .expect("ustack dump");
    assert!(
        ours.status.success(),
        "ustack dump: {}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let ours = String::from_utf8(ours.stdout).expect("utf-8");
    assert_eq!(ours.lines().count(), frames.len());
    match tool("/usr/bin/tcpdump").or(tool("/usr/sbin/tcpdump")) {
        Some(tcpdump) => {
            let theirs = std::process::Command::new(tcpdump)
                .args(["-n", "-r", &path_s])
                .env("TZ", "UTC")
                .output()
                .expect("tcpdump");
            assert!(theirs.status.success());
            let theirs = String::from_utf8_lossy(&theirs.stdout).into_owned();
            let (o, t): (Vec<_>, Vec<_>) = (ours.lines().collect(), theirs.lines().collect());
            for (i, (x, y)) in o.iter().zip(&t).enumerate() {
                assert_eq!(x, y, "line {} of {path_s}", i + 1);
            }
            assert_eq!(o.len(), t.len(), "{path_s}");
            let _ = writeln!(
                std::io::stderr(),
                "kernel_dump_ipv6: {} of {} lines match tcpdump -n",
                o.len(),
                t.len()
            );
        }
        None => require_or_skip("tcpdump"),
    }
    match tool("/usr/bin/tshark") {
        Some(tshark) => {
            let out = std::process::Command::new(tshark)
                .args(["-n", "-r", &path_s])
                .output()
                .expect("tshark");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success());
            assert_eq!(text.lines().count(), frames.len());
            assert!(!text.contains("Malformed"), "tshark: {text}");
        }
        None => require_or_skip("tshark"),
    }
    if std::env::var_os("USTACK_KEEP_CAPTURE").is_none() {
        let _ = std::fs::remove_file(&path);
    } else {
        let _ = writeln!(std::io::stderr(), "capture kept: {path_s}");
    }
}
