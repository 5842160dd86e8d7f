//! Kernel-side TCP peers for the tests, on `std::net` sockets: run them on a thread
//! inside the test's namespace ([`Fixture::peer`](crate::Fixture::peer)).
//!
//! Byte-exactness is checked with SHA-256 on both sides: the kernel side sends
//! [`Pattern`] bytes and hashes what it sends and what it reads; the stack side hashes
//! independently. A peer returns its counts and hashes, and fails (returns `Err`) where
//! the old python peers printed a traceback.

use crate::tcp::{hex, Pattern};
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Chunk size of the peers' reads and writes (what the python peers used).
const CHUNK: usize = 1 << 20;

/// What one side of a bidirectional transfer did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// SHA-256 of the bytes this side sent: all it was asked to (a short write is an
    /// error, not a shorter transfer).
    pub sent_sha256: String,
    /// Bytes this side read before EOF.
    pub received: u64,
    /// SHA-256 of them.
    pub received_sha256: String,
    /// From the start of the exchange to EOF and the end of sending.
    pub elapsed: Duration,
}

/// Writes `len` bytes of `Pattern::new(seed)` to `stream`, then half-closes it;
/// returns the SHA-256 of what was written.
///
/// # Errors
/// A write failed.
pub fn source(mut stream: &TcpStream, len: u64, seed: u64) -> io::Result<String> {
    let mut pattern = Pattern::new(seed);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut left = len;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        pattern.fill(&mut buf[..n]);
        stream.write_all(&buf[..n])?;
        hash.update(&buf[..n]);
        left -= n as u64;
    }
    stream.shutdown(Shutdown::Write)?;
    Ok(hex(&hash.finalize()))
}

/// Reads `stream` to EOF; returns the byte count and SHA-256.
///
/// # Errors
/// A read failed (a reset, a timeout).
pub fn sink(mut stream: &TcpStream) -> io::Result<(u64, String)> {
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0u64;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok((n, hex(&hash.finalize()))),
            Ok(k) => {
                hash.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Sends `len` pattern bytes on `stream` (then half-closes) while reading it to EOF,
/// on two threads, as a full-duplex peer must: with only one, both sides could block
/// writing into full windows.
///
/// # Errors
/// Either direction failed.
pub fn exchange(stream: TcpStream, len: u64, seed: u64) -> io::Result<Transfer> {
    let start = Instant::now();
    let writer = stream.try_clone()?;
    let sending = std::thread::Builder::new()
        .name("kernel-peer-tx".into())
        .spawn(move || source(&writer, len, seed))?;
    let read = sink(&stream);
    let sent = sending
        .join()
        .map_err(|_| io::Error::other("the sending thread panicked"))?;
    let (received, received_sha256) = read?;
    Ok(Transfer {
        sent_sha256: sent?,
        received,
        received_sha256,
        elapsed: start.elapsed(),
    })
}

/// A kernel client of an echo service at `to`: connects, sends `len` pattern bytes
/// while reading the echo, half-closes, reads to EOF.
///
/// # Errors
/// Connecting or the exchange failed.
pub fn echo_client(to: SocketAddr, len: u64, seed: u64) -> io::Result<Transfer> {
    let stream = TcpStream::connect_timeout(&to, Duration::from_secs(60))?;
    exchange(stream, len, seed)
}

/// Sets SO_LINGER {on, 0} on `stream` and drops it: the kernel closes with a RST.
///
/// # Errors
/// The socket option could not be set.
pub fn abort(stream: TcpStream) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt with a valid fd and a `linger` of the size given.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    drop(stream);
    Ok(())
}

/// Reads a per-namespace MIB file (`/proc/net/snmp`, `/proc/net/netstat`) as the
/// calling thread's namespace sees it: `/proc/net` is `/proc/self/net`, the *process's*
/// namespace, so a thread that entered another one reads `/proc/thread-self/net`.
///
/// # Errors
/// The file could not be read.
pub fn read_net_file(name: &str) -> io::Result<String> {
    std::fs::read_to_string(format!("/proc/thread-self/net/{name}"))
}

/// One counter of a `Group: name ...` / `Group: value ...` line pair of a MIB file.
pub fn mib_value(text: &str, group: &str, name: &str) -> Option<u64> {
    let prefix = format!("{group}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let (names, values) = (lines.next()?, lines.next()?);
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// A kernel echo server for one connection: accepts on `listener`, writes back what
/// it reads until EOF, then closes; returns the bytes echoed.
///
/// # Errors
/// Accepting, reading or writing failed.
pub fn echo_once(listener: &std::net::TcpListener) -> io::Result<u64> {
    let (mut conn, _) = listener.accept()?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut buf = vec![0u8; 65_536];
    let mut total = 0u64;
    loop {
        match conn.read(&mut buf)? {
            0 => return Ok(total),
            n => {
                conn.write_all(&buf[..n])?;
                total += n as u64;
            }
        }
    }
}

/// Sets an int socket option on a kernel socket.
///
/// # Panics
/// The kernel refuses it.
pub fn set_int_option(fd: i32, level: i32, name: i32, value: i32) {
    // SAFETY: `value` outlives the call and `len` is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt({level}, {name}): {}",
        io::Error::last_os_error()
    );
}

/// Receives one datagram on a kernel socket that asked for IP_RECVTTL and IP_RECVTOS:
/// its payload, its IPv4 source, and the TTL and TOS the kernel read from its IP header.
///
/// # Panics
/// recvmsg fails (a read timeout included).
pub fn recv_with_ttl_tos(
    sock: &std::net::UdpSocket,
) -> (Vec<u8>, SocketAddr, Option<i32>, Option<u8>) {
    let mut data = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut control = [0u64; 16];
    // SAFETY: a zeroed sockaddr_in is valid.
    let mut from: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    // SAFETY: a zeroed msghdr is valid; the pointers below outlive recvmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_in).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: `msg` describes live buffers.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    assert!(n >= 0, "recvmsg: {}", io::Error::last_os_error());
    let (mut ttl, mut tos) = (None, None);
    // SAFETY: walking the control messages recvmsg wrote, with the libc macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let d = libc::CMSG_DATA(c);
            match ((*c).cmsg_level, (*c).cmsg_type) {
                (libc::IPPROTO_IP, libc::IP_TTL) => ttl = Some(std::ptr::read_unaligned(d.cast())),
                (libc::IPPROTO_IP, libc::IP_TOS) => tos = Some(*d),
                _ => {}
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let source = SocketAddr::from((
        std::net::Ipv4Addr::from(u32::from_be(from.sin_addr.s_addr)),
        u16::from_be(from.sin_port),
    ));
    (data[..n as usize].to_vec(), source, ttl, tos)
}
