//! Non-blocking connect with the BSD calls: `connect` gives EINPROGRESS, `poll` waits
//! for POLLOUT, SO_ERROR says how the handshake went; then an HTTP/1.0 request.
//!
//! `cargo run -p ustack-socket --example nonblocking_connect -- --tap tap0 --ip 10.0.0.2/24 --connect 10.0.0.1:80`
//!
//! The logic is in [`fetch`], which `tests/tests/kernel_socket_api.rs` calls in-process
//! against a kernel listener.

#[path = "common/args.rs"]
mod args;

use std::time::Duration;
use ustack_socket::{
    Errno, NetStack, PollEvents, PollFd, SockOpt, SockOptName, AF_INET, SOCK_NONBLOCK, SOCK_STREAM,
};

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args::parse("--connect ADDR:PORT [--timeout-ms N]", &[]);
    let dst: std::net::SocketAddr = args.get_or("--connect", "10.0.0.1:80").parse()?;
    let timeout = Duration::from_millis(args.get_or("--timeout-ms", "3000").parse()?);
    match fetch(&args.stack, dst, timeout)? {
        Ok(reply) => print!("{}", String::from_utf8_lossy(&reply)),
        Err(why) => println!("{why}"),
    }
    Ok(())
}

/// Connects without blocking, waits for POLLOUT up to `timeout`, checks SO_ERROR, then
/// sends `GET /` and reads to the end. `Ok(Err(why))` when the connection did not come
/// up (timeout, or the error SO_ERROR reported).
pub fn fetch(
    s: &NetStack,
    dst: std::net::SocketAddr,
    timeout: Duration,
) -> Result<Result<Vec<u8>, String>, Errno> {
    let fd = s.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)?;
    let r = exchange(s, fd, dst, timeout);
    s.close(fd)?;
    r
}

fn exchange(
    s: &NetStack,
    fd: ustack_socket::Fd,
    dst: std::net::SocketAddr,
    timeout: Duration,
) -> Result<Result<Vec<u8>, String>, Errno> {
    match s.connect(fd, dst) {
        Ok(()) => println!("connected at once"),
        Err(Errno::EINPROGRESS) => {
            println!("EINPROGRESS; polling for POLLOUT");
            let mut p = [PollFd::new(fd, PollEvents::POLLOUT)];
            if s.poll(&mut p, Some(timeout))? == 0 {
                return Ok(Err(format!("timed out after {timeout:?}")));
            }
            println!("revents {:?}", p[0].revents);
            if let SockOpt::Error(Some(e)) = s.getsockopt(fd, SockOptName::Error)? {
                return Ok(Err(format!("connect failed: {e}")));
            }
        }
        Err(e) => return Err(e),
    }
    println!("{} -> {}", s.getsockname(fd)?, s.getpeername(fd)?);
    s.set_nonblocking(fd, false)?;
    let req = format!("GET / HTTP/1.0\r\nHost: {}\r\n\r\n", dst.ip());
    s.send(fd, req.as_bytes(), 0)?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.recv(fd, &mut buf, 0)?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    Ok(Ok(reply))
}
