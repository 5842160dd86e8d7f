//! The kernel side of every figure: Linux TCP sockets on a thread that entered the
//! client namespace. The same client talks to ustack, smoltcp and a kernel server, so
//! only the server differs between columns.
//!
//! Every function verifies what it moved (byte count, pattern, replies) and returns an
//! error rather than a figure when something is wrong.

use super::pattern::{self, Pattern};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant};

/// How long one read or write may block before the round is declared failed.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| format!("socket options: {e}"))?;
    Ok(s)
}

/// Pins the calling thread to `cpu` (sched_setaffinity(2)).
///
/// # Errors
/// The CPU does not exist or is not allowed.
pub fn pin_to(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET only write inside it, and
    // sched_setaffinity reads it for the calling thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn gbit(bytes: u64, t: Duration) -> f64 {
    bytes as f64 * 8.0 / t.as_secs_f64() / 1e9
}

/// Sends `size` pattern bytes to the server, half-closes, and waits for the server's
/// verdict (8-byte LE count, 1 byte pattern ok). Returns Gbit/s from connect to verdict.
///
/// # Errors
/// A socket error, or the server counted other bytes or saw a broken pattern.
pub fn bulk_to_server(addr: SocketAddr, size: u64) -> Result<f64, String> {
    let t0 = Instant::now();
    let mut s = connect(addr)?;
    let pat = Pattern::new();
    let mut off = 0u64;
    while off < size {
        match s.write(pat.slice(off, size - off)) {
            Ok(0) => return Err(format!("connection closed after {off} of {size} bytes")),
            Ok(n) => off += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("write after {off} of {size} bytes: {e}")),
        }
    }
    s.shutdown(Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    let mut verdict = [0u8; 9];
    s.read_exact(&mut verdict)
        .map_err(|e| format!("reading the server's count: {e}"))?;
    let t = t0.elapsed();
    let mut count = [0u8; 8];
    count.copy_from_slice(&verdict[..8]);
    let got = u64::from_le_bytes(count);
    if got != size {
        return Err(format!("the server received {got} of {size} bytes"));
    }
    if verdict[8] != 1 {
        return Err("the server saw a broken byte pattern".into());
    }
    Ok(gbit(size, t))
}

/// Reads the server's stream to EOF, checking the pattern, and expects `size` bytes.
/// Returns Gbit/s from connect to EOF.
///
/// # Errors
/// A socket error, a broken pattern, or another byte count.
pub fn bulk_from_server(addr: SocketAddr, size: u64) -> Result<f64, String> {
    let t0 = Instant::now();
    let mut s = connect(addr)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut off = 0u64;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if !pattern::check(off, &buf[..n]) {
                    return Err(format!("broken byte pattern near offset {off}"));
                }
                off += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read after {off} of {size} bytes: {e}")),
        }
    }
    let t = t0.elapsed();
    if off != size {
        return Err(format!("received {off} of {size} bytes"));
    }
    Ok(gbit(size, t))
}

/// 1-byte requests, each answered by 2 bytes (`b`, `!b`), one at a time for `secs`;
/// pinned to `pin` if given. Returns round trips per second and their count.
///
/// # Errors
/// A socket error or a wrong reply.
pub fn request_response(
    addr: SocketAddr,
    secs: f64,
    pin: Option<usize>,
) -> Result<(f64, u64), String> {
    if let Some(cpu) = pin {
        pin_to(cpu).map_err(|e| format!("pin to CPU {cpu}: {e}"))?;
    }
    let mut s = connect(addr)?;
    s.set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let limit = Duration::from_secs_f64(secs);
    let t0 = Instant::now();
    let mut n = 0u64;
    let mut reply = [0u8; 2];
    loop {
        let b = n as u8;
        s.write_all(&[b]).map_err(|e| format!("request {n}: {e}"))?;
        s.read_exact(&mut reply)
            .map_err(|e| format!("reply {n}: {e}"))?;
        if reply != [b, !b] {
            return Err(format!("reply {n} was {reply:?}, expected [{b}, {}]", !b));
        }
        n += 1;
        if n % 64 == 0 && t0.elapsed() >= limit {
            break;
        }
    }
    let t = t0.elapsed();
    Ok((n as f64 / t.as_secs_f64(), n))
}

/// Serial connections for `secs`: connect, read to EOF, expect `hello\n`, close.
/// Refused connects are retried (and counted). Returns connections per second, the
/// number completed and the number refused.
///
/// # Errors
/// A socket error other than a refusal, a wrong greeting, or only refusals.
pub fn connection_rate(addr: SocketAddr, secs: f64) -> Result<(f64, u64, u64), String> {
    let limit = Duration::from_secs_f64(secs);
    let t0 = Instant::now();
    let (mut done, mut refused) = (0u64, 0u64);
    let mut buf = Vec::with_capacity(16);
    while t0.elapsed() < limit {
        let mut s = match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                refused += 1;
                if refused > 100_000 {
                    return Err(format!("{refused} refused connects, {done} completed"));
                }
                continue;
            }
            Err(e) => return Err(format!("connect {done}: {e}")),
        };
        s.set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|e| format!("SO_RCVTIMEO: {e}"))?;
        buf.clear();
        s.read_to_end(&mut buf)
            .map_err(|e| format!("connection {done}: {e}"))?;
        if buf != b"hello\n" {
            return Err(format!(
                "connection {done} read {:?}, expected \"hello\\n\"",
                String::from_utf8_lossy(&buf)
            ));
        }
        done += 1;
    }
    let t = t0.elapsed();
    if done == 0 {
        return Err(format!("no connection completed ({refused} refused)"));
    }
    Ok((done as f64 / t.as_secs_f64(), done, refused))
}

/// Opens `n` connections one after another and keeps them; returns them with the
/// instant the first connect started.
///
/// # Errors
/// A connect failed.
pub fn open_many(addr: SocketAddr, n: usize) -> Result<(Vec<TcpStream>, Instant), String> {
    let t0 = Instant::now();
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map_err(|e| format!("connect {i} of {n}: {e}"))?;
        v.push(s);
    }
    Ok((v, t0))
}

/// Reads the one-byte greeting `+` the server wrote on every held connection, then
/// resets them all (SO_LINGER 0) so no kernel state outlives the round.
///
/// # Errors
/// A connection did not carry its greeting.
pub fn check_and_reset(conns: Vec<TcpStream>) -> Result<(), String> {
    let mut bad = None;
    for (i, mut s) in conns.into_iter().enumerate() {
        if bad.is_none() {
            let mut b = [0u8; 1];
            let r = s
                .set_read_timeout(Some(IO_TIMEOUT))
                .and_then(|()| s.read_exact(&mut b));
            match r {
                Ok(()) if b[0] == b'+' => {}
                Ok(()) => bad = Some(format!("connection {i} read {:?}, expected '+'", b[0])),
                Err(e) => bad = Some(format!("connection {i}: {e}")),
            }
        }
        reset_on_close(&s);
    }
    bad.map_or(Ok(()), Err)
}

/// SO_LINGER {on, 0}: close sends RST and leaves no TIME_WAIT or FIN_WAIT behind.
pub fn reset_on_close(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a live fd with a pointer to a linger struct of the given size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
