//! TCP and UDP over IPv6 through the socket API (`ustack_socket`) against the Linux
//! kernel, inside a namespace each test creates: 50 MB each way byte-exact in
//! both roles, 100 concurrent connections, the options both sides negotiated (checked
//! from the kernel's TCP_INFO and from ours), UDP datagrams of 1, 1452, 8000 and 65,507
//! bytes both ways, a dual-stack listener on `[::]` taking an IPv4 and an IPv6 client,
//! and IPV6_V6ONLY refusing the IPv4 one.
//!
//! Set-up: a TAP `tap0` in a new namespace; the kernel has 10.77.0.1/24 and
//! fd00:77::1/64 (`nodad`, so it is usable at once), the stack 10.77.0.2/24 and
//! fd00:77::2/64. The TAP is opened by a thread inside the namespace and handed to the
//! `NetStack`, so every frame stays inside; the kernel's side is Rust on kernel sockets
//! on threads that entered the namespace.

use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::net::UdpSocket as KernelUdp;
use std::net::{IpAddr, Ipv6Addr, Shutdown, SocketAddr};
use std::net::{TcpListener as KernelListener, TcpStream as KernelStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use ustack::link::sys::TapLink;
use ustack_socket::{
    NetStack, SockOpt, SockOptName, TcpListener, TcpStream, UdpSocket, AF_INET6, SOCK_STREAM,
};
use ustack_tests::tcp::{hex, Pattern};
use ustack_tests::{in_ns, peer, require_netns, spawn_peer, Netns, Peer};

const KERNEL4: &str = "10.77.0.1";
const STACK4: &str = "10.77.0.2";
const KERNEL6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1);
const STACK6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 2);
/// Correctness bound for a kernel peer.
const PEER_TIMEOUT: Duration = Duration::from_secs(120);
const MB: u64 = 1_000_000;

/// Printed even when the test runner captures output.
fn report(line: &str) {
    let _ = writeln!(io::stderr(), "{line}");
}

/// A `NetStack` with IPv4 and IPv6 on a TAP inside a fresh namespace. Field order is
/// drop order: the stack goes first, then the namespace.
struct Kernel {
    stack: NetStack,
    ns: Netns,
}

impl Kernel {
    fn start() -> Kernel {
        let ns = Netns::new("ustack-v6").expect("create namespace");
        // `Netns` turns IPv6 off; these tests need it on the kernel's side (before the
        // TAP exists, so that it inherits `default`).
        ns.run_in(|| {
            for which in ["all", "default"] {
                std::fs::write(format!("/proc/sys/net/ipv6/conf/{which}/disable_ipv6"), "0")
                    .expect("enable IPv6 in the namespace");
            }
        })
        .expect("enter namespace");
        ns.add_tap("tap0", &format!("{KERNEL4}/24"))
            .expect("create tap");
        let out = ns
            .ip(&["-6", "addr", "add", "fd00:77::1/64", "dev", "tap0", "nodad"])
            .expect("ip -6 addr add");
        assert!(out.status.success(), "ip -6 addr add: {out:?}");
        let tap = ns
            .run_in(|| TapLink::open("tap0"))
            .expect("enter namespace")
            .expect("open tap0 inside the namespace");
        ns.wait_running("tap0", Duration::from_secs(5))
            .expect("the kernel's tap0 comes up");
        let fd = tap.as_raw_fd();
        let stack = NetStack::builder()
            .link_with_fd(Box::new(tap), fd)
            .ip(format!("{STACK4}/24").parse().expect("cidr"))
            .ip6("fd00:77::2/64".parse().expect("cidr6"))
            .build()
            .expect("build the stack");
        let k = Kernel { stack, ns };
        k.wait_ipv6_ready();
        k
    }

    /// Waits until the stack's IPv6 address is usable (duplicate address detection
    /// done): the transport sees it among our addresses.
    fn wait_ipv6_ready(&self) {
        let t0 = Instant::now();
        loop {
            let ours = self.stack.with_interface(|i, _| i.local_addrs());
            if ours.contains(IpAddr::V6(STACK6)) {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the stack's IPv6 address never became usable: {ours:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn peer<T: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Peer<T> {
        spawn_peer(&self.ns, what, f)
    }

    /// A kernel TCP listener on `[fd00:77::1]:port`, bound before the stack connects.
    fn listen6(&self, port: u16) -> KernelListener {
        in_ns(&self.ns, move || KernelListener::bind((KERNEL6, port)))
            .unwrap_or_else(|e| panic!("kernel listener on {port}: {e}"))
    }
}

fn kernel6(port: u16) -> SocketAddr {
    SocketAddr::from((KERNEL6, port))
}

fn stack6(port: u16) -> SocketAddr {
    SocketAddr::from((STACK6, port))
}

fn stack4(port: u16) -> SocketAddr {
    format!("{STACK4}:{port}").parse().expect("addr")
}

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

// ---------------------------------------------------------------- TCP bulk

#[test]
fn k6_tcp_50mb_stack_to_kernel() {
    require_netns!();
    let k = Kernel::start();
    let listener = k.listen6(5001);
    let receiver = k.peer("receiver", move || {
        let (c, from) = listener.accept()?;
        assert_eq!(from.ip(), IpAddr::V6(STACK6), "the stack's IPv6 address");
        peer::sink(&c)
    });
    let len = 50 * MB;
    let stack = k.stack.clone();
    let start = Instant::now();
    let sha = within(Duration::from_secs(600), move || {
        let mut s = TcpStream::connect(&stack, kernel6(5001)).expect("connect");
        assert_eq!(s.local_addr().expect("local").ip(), IpAddr::V6(STACK6));
        let mut reader = PatternReader {
            pattern: Pattern::new(600),
            left: len,
            hash: Sha256::new(),
        };
        let n = io::copy(&mut reader, &mut s).expect("io::copy");
        assert_eq!(n, len);
        s.shutdown(Shutdown::Write).expect("shutdown");
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).expect("read to EOF");
        hex(&reader.hash.finalize())
    });
    let secs = start.elapsed().as_secs_f64();
    let (n, ksha) = finish_ok(receiver, "receiver");
    assert_eq!(n, len, "bytes the kernel received");
    assert_eq!(ksha, sha, "SHA-256 stack -> kernel over IPv6");
    report(&format!(
        "k6 50 MB stack -> kernel over IPv6: {secs:.2} s, {:.0} Mbit/s",
        mbit_per_s(len, secs)
    ));
}

#[test]
fn k6_tcp_50mb_kernel_to_stack() {
    require_netns!();
    let k = Kernel::start();
    let listener = TcpListener::bind(&k.stack, "[::]:5002").expect("bind");
    let len = 50 * MB;
    let sender = k.peer("sender", move || -> io::Result<String> {
        let mut s = KernelStream::connect_timeout(&stack6(5002), PEER_TIMEOUT)?;
        let sha = peer::source(&s, len, 0x600)?;
        let mut one = [0u8; 1];
        let _ = s.read(&mut one)?;
        Ok(sha)
    });
    let (sink, secs, from) = within(Duration::from_secs(600), move || {
        let (mut stream, from) = listener.accept().expect("accept");
        let start = Instant::now();
        let mut sink = HashWriter::default();
        io::copy(&mut stream, &mut sink).expect("io::copy");
        (sink, start.elapsed().as_secs_f64(), from)
    });
    assert_eq!(from.ip(), IpAddr::V6(KERNEL6), "a native IPv6 peer");
    assert_eq!(sink.len, len, "bytes the stack received");
    let ksha = finish_ok(sender, "sender");
    assert_eq!(
        ksha,
        hex(&sink.hash.finalize()),
        "SHA-256 kernel -> stack over IPv6"
    );
    report(&format!(
        "k6 50 MB kernel -> stack over IPv6: {secs:.2} s, {:.0} Mbit/s",
        mbit_per_s(len, secs)
    ));
}

#[test]
fn k6_tcp_100_concurrent_connections() {
    require_netns!();
    let k = Kernel::start();
    let listener = TcpListener::bind(&k.stack, "[::]:5003").expect("bind");
    const N: usize = 100;
    const EACH: usize = 2000;
    // The kernel opens all 100 first, then writes on each, then reads each echo.
    let clients = k.peer("clients", move || -> io::Result<usize> {
        let mut conns = Vec::new();
        for _ in 0..N {
            let s = KernelStream::connect_timeout(&stack6(5003), PEER_TIMEOUT)?;
            s.set_read_timeout(Some(PEER_TIMEOUT))?;
            conns.push(s);
        }
        for (i, s) in conns.iter_mut().enumerate() {
            s.write_all(&vec![i as u8; EACH])?;
        }
        let mut ok = 0;
        for (i, s) in conns.iter_mut().enumerate() {
            let mut buf = vec![0u8; EACH];
            s.read_exact(&mut buf)?;
            if buf.iter().all(|&b| b == i as u8) {
                ok += 1;
            }
        }
        Ok(ok)
    });
    let served = within(Duration::from_secs(300), move || {
        let mut conns = Vec::new();
        for _ in 0..N {
            let (s, from) = listener.accept().expect("accept");
            assert_eq!(from.ip(), IpAddr::V6(KERNEL6));
            conns.push(s);
        }
        for mut s in conns.iter() {
            let mut buf = vec![0u8; EACH];
            s.read_exact(&mut buf).expect("read");
            s.write_all(&buf).expect("echo");
        }
        conns.len()
    });
    assert_eq!(served, N);
    assert_eq!(finish_ok(clients, "clients"), N, "every echo byte-exact");
}

// ---------------------------------------------------------------- options

/// The kernel's TCP_INFO for `s`.
fn kernel_tcp_info(s: &KernelStream) -> libc::tcp_info {
    // SAFETY: zeroed tcp_info is valid; getsockopt writes at most `len` bytes.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: a live fd, and `info` of `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", io::Error::last_os_error());
    info
}

#[test]
fn k6_tcp_negotiated_options_mss_1440_wscale_sack_timestamps() {
    require_netns!();
    let k = Kernel::start();
    let listener = k.listen6(5004);
    let kernel = k.peer("acceptor", move || -> io::Result<libc::tcp_info> {
        let (mut c, _) = listener.accept()?;
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf)?;
        let info = kernel_tcp_info(&c);
        c.write_all(b"done!")?;
        Ok(info)
    });
    let stack = k.stack.clone();
    let ours = within(Duration::from_secs(60), move || {
        let mut s = TcpStream::connect(&stack, kernel6(5004)).expect("connect");
        s.write_all(b"hello").expect("write");
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).expect("read");
        match stack
            .getsockopt(s.fd(), SockOptName::TcpInfo)
            .expect("TCP_INFO")
        {
            SockOpt::TcpInfo(i) => i,
            other => panic!("{other:?}"),
        }
    });
    let theirs = finish_ok(kernel, "acceptor");
    // Kernel side: timestamps (1), SACK (2) and window scaling (4) all on; its send MSS
    // is our announced 1440 less the 12 bytes of timestamps; it announced 1440 too,
    // which Linux reports (tcpi_advmss) less the timestamp option as well.
    assert_eq!(
        theirs.tcpi_options & 7,
        7,
        "tcpi_options {:#x}",
        theirs.tcpi_options
    );
    assert_eq!(theirs.tcpi_snd_mss, 1440 - 12, "kernel's send MSS");
    assert_eq!(
        theirs.tcpi_advmss,
        1440 - 12,
        "kernel's advertised MSS less timestamps"
    );
    // Our side.
    assert_eq!(ours.advmss, 1440, "{ours:?}");
    assert_eq!(ours.snd_mss, 1440 - 12, "{ours:?}");
    assert!(
        ours.sack && ours.timestamps && ours.window_scaling,
        "{ours:?}"
    );
    assert!(
        ours.snd_wscale > 0,
        "the kernel scales its window: {ours:?}"
    );
    report(&format!(
        "k6 options: kernel snd_mss {} advmss {} options {:#x}; ours snd_mss {} advmss {} wscale {}/{}",
        theirs.tcpi_snd_mss,
        theirs.tcpi_advmss,
        theirs.tcpi_options,
        ours.snd_mss,
        ours.advmss,
        ours.snd_wscale,
        ours.rcv_wscale
    ));
}

// ---------------------------------------------------------------- UDP

/// SO_RCVBUF on a kernel socket (a 65,507-byte datagram arrives as many fragments).
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
fn k6_udp_1_1452_8000_65507_bytes_both_ways() {
    require_netns!();
    let k = Kernel::start();
    const SIZES: [usize; 4] = [1, 1452, 8000, 65_507];
    let ksock = in_ns(&k.ns, || KernelUdp::bind((KERNEL6, 7009))).expect("kernel udp");
    // The kernel records length and SHA-256 of each datagram and echoes it back.
    let peer = k.peer("udp peer", move || -> io::Result<String> {
        set_rcvbuf(&ksock, 1 << 20)?;
        ksock.set_read_timeout(Some(PEER_TIMEOUT))?;
        let mut buf = vec![0u8; 65_536];
        let mut seen = String::new();
        for _ in SIZES {
            let (n, from) = ksock.recv_from(&mut buf)?;
            seen += &format!("{n} {}\n", hex(&Sha256::digest(&buf[..n])));
            ksock.send_to(&buf[..n], from)?;
        }
        Ok(seen)
    });
    let sock = UdpSocket::bind(&k.stack, "[::]:0").expect("bind");
    sock.connect(kernel6(7009)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut pattern = Pattern::new(1452);
    let mut buf = vec![0u8; 65_536];
    let mut expect = String::new();
    for len in SIZES {
        let mut msg = vec![0u8; len];
        pattern.fill(&mut msg);
        assert_eq!(sock.send(&msg).expect("send"), len);
        let n = sock.recv(&mut buf).expect("echo");
        assert_eq!(n, len, "echo length");
        assert!(buf[..n] == msg[..], "{len}-byte echo differs");
        expect += &format!("{len} {}\n", hex(&Sha256::digest(&msg)));
    }
    let seen = finish_ok(peer, "udp peer");
    assert_eq!(seen, expect, "what the kernel received over IPv6");
    // 8000 and 65,507 bytes went out in IPv6 fragments and came back in fragments
    // (65,515 bytes of UDP over 1448-byte fragments: 46 of them).
    let c = k.stack.counters();
    assert!(
        c.ipv6_fragmented >= 2 && c.ipv6_tx_fragments >= 6 + 46,
        "{c:?}"
    );
    assert!(
        c.ipv6_reassembled >= 2 && c.ipv6_rx_fragments >= 6 + 46,
        "{c:?}"
    );
}

// ---------------------------------------------------------------- dual stack

/// One exchange on a kernel connection: writes `msg`, reads the echo.
fn kernel_echo(to: SocketAddr, msg: &'static [u8]) -> io::Result<Vec<u8>> {
    let mut s = KernelStream::connect_timeout(&to, PEER_TIMEOUT)?;
    s.set_read_timeout(Some(PEER_TIMEOUT))?;
    s.write_all(msg)?;
    let mut buf = vec![0u8; msg.len()];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

#[test]
fn k6_dual_stack_listener_accepts_ipv4_and_ipv6_clients() {
    require_netns!();
    let k = Kernel::start();
    let listener = TcpListener::bind(&k.stack, "[::]:5005").expect("bind");
    let server = std::thread::spawn(move || {
        let mut peers = Vec::new();
        for _ in 0..2 {
            let (mut s, from) = listener.accept().expect("accept");
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).expect("read");
            s.write_all(&buf).expect("echo");
            peers.push(from);
        }
        peers
    });
    let v4 = k.peer("ipv4 client", || kernel_echo(stack4(5005), b"four"));
    assert_eq!(finish_ok(v4, "ipv4 client"), b"four");
    let v6 = k.peer("ipv6 client", || kernel_echo(stack6(5005), b"six!"));
    assert_eq!(finish_ok(v6, "ipv6 client"), b"six!");
    let peers = within(Duration::from_secs(30), move || {
        server.join().expect("server")
    });
    let kernel4: std::net::Ipv4Addr = KERNEL4.parse().expect("ip");
    assert_eq!(
        peers[0].ip(),
        IpAddr::V6(kernel4.to_ipv6_mapped()),
        "IPv4 peer, v4-mapped"
    );
    assert_eq!(peers[1].ip(), IpAddr::V6(KERNEL6), "native IPv6 peer");
}

#[test]
fn k6_v6only_listener_refuses_the_ipv4_client() {
    require_netns!();
    let k = Kernel::start();
    let s = &k.stack;
    let fd = s.socket(AF_INET6, SOCK_STREAM, 0).expect("socket");
    s.setsockopt(fd, SockOpt::Ipv6V6Only(true))
        .expect("IPV6_V6ONLY");
    s.bind(fd, SocketAddr::from((Ipv6Addr::UNSPECIFIED, 5006)))
        .expect("bind");
    s.listen(fd, 8).expect("listen");
    let v4 = k.peer("ipv4 client", || {
        KernelStream::connect_timeout(&stack4(5006), PEER_TIMEOUT)
    });
    match v4.join(PEER_TIMEOUT) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
        other => panic!("the IPv4 client should be refused, got {other:?}"),
    }
    let v6 = k.peer("ipv6 client", || kernel_echo(stack6(5006), b"only"));
    let stack = s.clone();
    let served = std::thread::spawn(move || {
        let (c, from) = stack.accept(fd).expect("accept");
        let mut buf = [0u8; 4];
        let n = stack
            .recv(c, &mut buf, ustack_socket::MSG_WAITALL)
            .expect("recv");
        stack.send(c, &buf[..n], 0).expect("send");
        from
    });
    assert_eq!(finish_ok(v6, "ipv6 client"), b"only");
    let from = within(Duration::from_secs(30), move || {
        served.join().expect("server")
    });
    assert_eq!(from.ip(), IpAddr::V6(KERNEL6));
}
