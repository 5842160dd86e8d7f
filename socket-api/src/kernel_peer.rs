//! The kernel's side of a conversation, in Rust: an ICMP echo client on a raw socket
//! (what `ping` does), an HTTP/1.1 client (what `curl` does) and a small HTTP/1.0 file
//! server (what `python3 -m http.server` does), all on the kernel's own sockets.
//!
//! Each function uses the sockets of the thread that calls it, so it talks inside the
//! namespace of a thread started with [`Netns::spawn_in`](crate::netns::Netns::spawn_in)
//! or [`Netns::run_in`](crate::netns::Netns::run_in). The demo and the kernel tests use
//! them so that neither needs an outside program for traffic; outside programs are kept
//! only as oracles (tshark, tcpdump, iptables).

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What [`ping`] sends.
#[derive(Clone, Debug)]
pub struct PingOptions {
    /// Echo requests to send (`ping -c`).
    pub count: u32,
    /// ICMP payload bytes (`ping -s`); more than the MTU allows is fragmented.
    pub size: usize,
    /// Pause between requests (`ping -i`); in flood mode, the longest wait for a reply
    /// before the next request.
    pub interval: Duration,
    /// How long to wait for outstanding replies after the last request (`ping -W`).
    /// iputils ping stops sooner, after twice the longest round trip seen; a test
    /// wants the stack's answer, not that guess, so this waits the whole timeout
    /// while a reply is missing.
    pub timeout: Duration,
    /// Send the next request as soon as the previous one is answered (`ping -f`).
    pub flood: bool,
}

impl PingOptions {
    /// `count` requests of `size` payload bytes, 10 ms apart, waiting 2 s at the end.
    pub fn new(count: u32, size: usize) -> PingOptions {
        PingOptions {
            count,
            size,
            interval: Duration::from_millis(10),
            timeout: Duration::from_secs(2),
            flood: false,
        }
    }

    /// Sets the pause between requests.
    pub fn interval(mut self, interval: Duration) -> PingOptions {
        self.interval = interval;
        self
    }

    /// Sets the wait for the last replies.
    pub fn timeout(mut self, timeout: Duration) -> PingOptions {
        self.timeout = timeout;
        self
    }

    /// Flood mode (`ping -f`).
    pub fn flood(mut self) -> PingOptions {
        self.flood = true;
        self
    }
}

/// One echo reply [`ping`] accepted.
#[derive(Clone, Copy, Debug)]
pub struct EchoReply {
    /// Its sequence number, from 1.
    pub seq: u16,
    /// ICMP bytes (header and payload), as ping prints them.
    pub bytes: usize,
    /// The IPv4 TTL (or IPv6 hop limit) it arrived with.
    pub ttl: u8,
    /// Round-trip time.
    pub rtt: Duration,
}

/// What a [`ping`] run saw.
#[derive(Clone, Debug, Default)]
pub struct PingReport {
    /// Requests sent.
    pub transmitted: u32,
    /// Distinct requests answered with intact payloads.
    pub received: u32,
    /// Replies whose payload differed from the request's (not counted as received).
    pub wrong_data: u32,
    /// Replies to a request already answered.
    pub duplicates: u32,
    /// The accepted replies, in arrival order.
    pub replies: Vec<EchoReply>,
}

impl PingReport {
    /// The summary line ping prints: `N packets transmitted, M received, L% packet loss`.
    pub fn summary(&self) -> String {
        let lost = self.transmitted - self.received.min(self.transmitted);
        let loss = (100 * lost).checked_div(self.transmitted).unwrap_or(0);
        let mut s = format!(
            "{} packets transmitted, {} received, {loss}% packet loss",
            self.transmitted, self.received
        );
        if self.duplicates > 0 {
            s += &format!(", {} duplicates", self.duplicates);
        }
        if self.wrong_data > 0 {
            s += &format!(", {} with wrong data", self.wrong_data);
        }
        s
    }
}

/// Identifiers of concurrent pingers in one process differ (a raw ICMP socket sees
/// every echo reply of its namespace).
static NEXT_ID: AtomicU16 = AtomicU16::new(0);

/// The payload of request `seq`: a pattern that depends on the sequence number, so a
/// reply with another request's payload counts as wrong data.
fn echo_payload(seq: u16, size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| (i as u8).wrapping_add((seq as u8).wrapping_mul(31)))
        .collect()
}

/// Internet checksum (RFC 1071), written apart from `ustack::wire::checksum` on purpose:
/// the peer checks the stack's replies, so it must not share the stack's code.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A raw ICMP (or ICMPv6) socket (root has CAP_NET_RAW; no sysctl needed, unlike ICMP
/// datagram sockets and `net.ipv4.ping_group_range`). The ICMPv6 one asks for each
/// message's hop limit in a control message.
fn raw_icmp_socket(v6: bool) -> io::Result<OwnedFd> {
    let (family, proto) = if v6 {
        (libc::AF_INET6, libc::IPPROTO_ICMPV6)
    } else {
        (libc::AF_INET, libc::IPPROTO_ICMP)
    };
    // SAFETY: plain socket(2); the fd is owned by the OwnedFd at once.
    let fd = unsafe { libc::socket(family, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if v6 {
        let on: libc::c_int = 1;
        // SAFETY: an int option of the right size.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_RECVHOPLIMIT,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(fd)
}

fn send_to(fd: &OwnedFd, dst: IpAddr, packet: &[u8]) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_storage; the family's fields are set below.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match dst {
        IpAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(a).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        IpAddr::V6(a) => {
            // SAFETY: all-zero is a valid sockaddr_in6.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = a.octets();
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: the buffer and the address are valid for the given lengths; on a raw
    // ICMPv6 socket the kernel fills in the checksum (RFC 3542 §3.1).
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&ss as *const libc::sockaddr_storage).cast(),
            len as libc::socklen_t,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits up to `wait` for one ICMP message on `fd`: returns the ICMP bytes (after the
/// IPv4 header; an ICMPv6 raw socket gives no header), the source and the TTL or hop
/// limit. `Ok(None)` when nothing (or no parsable message) came.
fn recv_echo<'a>(
    fd: &OwnedFd,
    buf: &'a mut [u8],
    wait: Duration,
) -> io::Result<Option<(&'a [u8], IpAddr, u8)>> {
    if !ustack::link::sys::wait_readable(&[fd.as_raw_fd()], Some(wait))? {
        return Ok(None);
    }
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    // u64 words keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid msghdr; its pointers are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: every pointer in `msg` is valid for its length.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(e)
        };
    }
    let data = &buf[..n as usize];
    if i32::from(from.ss_family) == libc::AF_INET6 {
        // SAFETY: the kernel wrote a sockaddr_in6 (family AF_INET6).
        let sin6: libc::sockaddr_in6 =
            unsafe { std::ptr::read((&from as *const libc::sockaddr_storage).cast()) };
        let mut hops = 0u8;
        // SAFETY: walking the control buffer the kernel filled, with the libc macros.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::IPPROTO_IPV6 && (*c).cmsg_type == libc::IPV6_HOPLIMIT {
                    let v: libc::c_int = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    hops = v.clamp(0, 255) as u8;
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        return Ok(Some((
            data,
            IpAddr::V6(sin6.sin6_addr.s6_addr.into()),
            hops,
        )));
    }
    if data.len() < 20 || data[0] >> 4 != 4 {
        return Ok(None);
    }
    let ihl = usize::from(data[0] & 0x0f) * 4;
    if ihl < 20 || data.len() < ihl {
        return Ok(None);
    }
    let src = Ipv4Addr::new(data[12], data[13], data[14], data[15]);
    Ok(Some((&data[ihl..], IpAddr::V4(src), data[8])))
}

/// Sends ICMP echo requests to `dst` from the calling thread's namespace and counts
/// the replies, as `ping -c COUNT -s SIZE -i INTERVAL -W TIMEOUT [-f]` does: requests
/// carry an identifier of their own and sequence numbers from 1; a reply counts when
/// it comes from `dst` with our identifier and the request's exact payload.
///
/// # Errors
/// The raw socket could not be opened (no CAP_NET_RAW) or a send failed.
pub fn ping(dst: Ipv4Addr, opts: &PingOptions) -> io::Result<PingReport> {
    ping_ip(IpAddr::V4(dst), opts)
}

/// [`ping`] for IPv6 (what `ping -6` does): ICMPv6 echo requests (type 128) on a raw
/// ICMPv6 socket, whose checksum the kernel fills in and checks (RFC 3542 §3.1); the
/// reply's hop limit comes from an `IPV6_HOPLIMIT` control message. `dst` must not be
/// link-local (no scope id is given).
///
/// # Errors
/// The raw socket could not be opened (no CAP_NET_RAW) or a send failed.
pub fn ping6(dst: Ipv6Addr, opts: &PingOptions) -> io::Result<PingReport> {
    ping_ip(IpAddr::V6(dst), opts)
}

fn ping_ip(dst: IpAddr, opts: &PingOptions) -> io::Result<PingReport> {
    let fd = raw_icmp_socket(dst.is_ipv6())?;
    // Echo request and reply types: ICMP 8/0, ICMPv6 128/129.
    let (request, reply) = if dst.is_ipv6() {
        (128u8, 129u8)
    } else {
        (8, 0)
    };
    let id = (std::process::id() as u16)
        .wrapping_mul(251)
        .wrapping_add(NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let mut report = PingReport::default();
    let mut sent_at: HashMap<u16, Instant> = HashMap::new();
    let mut answered: HashSet<u16> = HashSet::new();
    let mut buf = vec![0u8; 65_536];
    let mut packet = Vec::with_capacity(8 + opts.size);
    // Reads replies until `until`, or (flood) until `seq` is answered.
    let mut drain = |report: &mut PingReport,
                     sent_at: &HashMap<u16, Instant>,
                     until: Instant,
                     stop_at: Option<u16>|
     -> io::Result<()> {
        loop {
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            let Some((icmp, src, ttl)) = recv_echo(&fd, &mut buf, until - now)? else {
                continue;
            };
            let at = Instant::now();
            if src != dst || icmp.len() < 8 {
                continue;
            }
            let (kind, code) = (icmp[0], icmp[1]);
            let rid = u16::from_be_bytes([icmp[4], icmp[5]]);
            let seq = u16::from_be_bytes([icmp[6], icmp[7]]);
            if kind != reply || code != 0 || rid != id {
                continue;
            }
            let Some(&t0) = sent_at.get(&seq) else {
                continue;
            };
            // The kernel has checked an ICMPv6 checksum already (it covers a
            // pseudo-header that a raw ICMPv6 socket does not show).
            let bad_sum = dst.is_ipv4() && checksum(icmp) != 0;
            if bad_sum || icmp[8..] != echo_payload(seq, opts.size)[..] {
                report.wrong_data += 1;
                continue;
            }
            if !answered.insert(seq) {
                report.duplicates += 1;
                continue;
            }
            report.received += 1;
            report.replies.push(EchoReply {
                seq,
                bytes: icmp.len(),
                ttl,
                rtt: at - t0,
            });
            if stop_at == Some(seq) {
                return Ok(());
            }
        }
    };
    for i in 1..=opts.count {
        let seq = i as u16;
        packet.clear();
        packet.extend_from_slice(&[request, 0, 0, 0]);
        packet.extend_from_slice(&id.to_be_bytes());
        packet.extend_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(&echo_payload(seq, opts.size));
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
        let t0 = Instant::now();
        sent_at.insert(seq, t0);
        send_to(&fd, dst, &packet)?;
        report.transmitted += 1;
        if i < opts.count {
            let stop_at = opts.flood.then_some(seq);
            drain(&mut report, &sent_at, t0 + opts.interval, stop_at)?;
        }
    }
    // The last replies: wait until every request is answered or the timeout passes, as
    // `ping -W` does. (Giving up after twice the longest round trip seen lost late but
    // intact replies on a loaded machine: the stack had answered all 5, in its pcap.)
    let deadline = Instant::now() + opts.timeout;
    while report.received < report.transmitted && Instant::now() < deadline {
        drain(
            &mut report,
            &sent_at,
            deadline.min(Instant::now() + Duration::from_millis(20)),
            None,
        )?;
    }
    Ok(report)
}

/// The head of an HTTP response read by [`http_get`].
#[derive(Clone, Debug)]
pub struct HttpResponse {
    /// The status code (200, 404, ...).
    pub status: u16,
    /// The status line and header lines, CRLF-terminated as received.
    pub head: String,
    /// Body bytes written to the sink.
    pub body_len: u64,
}

/// `GET PATH HTTP/1.1` with `Connection: close` to `addr` on a kernel TCP socket
/// (what `curl -i` does); the body (everything until the server closes) goes to
/// `body`. `path` is sent as given, `..` included (`curl --path-as-is`).
///
/// # Errors
/// Connecting, writing or reading failed, or the response has no HTTP status line.
pub fn http_get(addr: SocketAddr, path: &str, body: &mut impl Write) -> io::Result<HttpResponse> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    (&stream).write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ustack-kernel-peer\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n",
            addr.ip()
        )
        .as_bytes(),
    )?;
    let mut reader = BufReader::with_capacity(1 << 16, &stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("connection closed inside the response head: {head:?}"),
            ));
        }
        head.push_str(&line);
        if line == "\r\n" || line == "\n" {
            break;
        }
    }
    let status = head
        .lines()
        .next()
        .filter(|l| l.starts_with("HTTP/1."))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no HTTP status line: {head:?}"),
            )
        })?;
    let body_len = io::copy(&mut reader, body)?;
    Ok(HttpResponse {
        status,
        head,
        body_len,
    })
}

/// A kernel HTTP/1.0 file server (what `python3 -m http.server` is to the tests):
/// serves the files under a directory, and a directory as a plain listing of its
/// entry names, one request per connection, until dropped.
pub struct HttpFileServer {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpFileServer {
    /// Listens on `addr` (from the calling thread's namespace) and serves `root` on a
    /// thread of its own (which inherits the namespace: it is started from here).
    ///
    /// # Errors
    /// The listening socket could not be bound.
    pub fn start(addr: SocketAddr, root: &Path) -> io::Result<HttpFileServer> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (root, flag) = (root.to_path_buf(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("kernel-http".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let root = root.clone();
                            let _ = std::thread::Builder::new()
                                .name("kernel-http-conn".into())
                                .spawn(move || {
                                    let _ = serve_one(conn, &root);
                                });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })?;
        Ok(HttpFileServer {
            stop,
            addr,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpFileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one request on `conn`: 200 with the file or listing, 404 otherwise.
fn serve_one(conn: TcpStream, root: &Path) -> io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(&conn);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
    }
    let target = request.split_whitespace().nth(1).unwrap_or("/");
    let mut out = io::BufWriter::with_capacity(1 << 16, &conn);
    match resolve(root, target) {
        Some(path) if path.is_dir() => {
            let mut names: Vec<String> = std::fs::read_dir(&path)?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            let body = names.join("\n") + "\n";
            write!(
                out,
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )?;
        }
        Some(path) if path.is_file() => {
            let mut file = std::fs::File::open(&path)?;
            let len = file.metadata()?.len();
            write!(
                out,
                "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {len}\r\n\r\n"
            )?;
            io::copy(&mut file, &mut out)?;
        }
        _ => {
            let body = "not found\n";
            write!(
                out,
                "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )?;
        }
    }
    out.flush()?;
    drop(out);
    let _ = conn.shutdown(Shutdown::Write);
    // Read what the client still sends so the close is a FIN, not a RST.
    let _ = io::copy(&mut (&conn).take(1 << 20), &mut io::sink());
    Ok(())
}

/// The file under `root` a request target names; `None` for anything that leaves it.
fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let mut out = root.to_path_buf();
    for c in Path::new(path.trim_start_matches('/')).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}
