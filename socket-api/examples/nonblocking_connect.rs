//! Non-blocking connect with the BSD calls: `connect` gives EINPROGRESS, `poll` waits
//! for POLLOUT, SO_ERROR says how the handshake went; then an HTTP/1.0 request.
//!
//! `cargo run -p ustack-socket --example nonblocking_connect -- --tap tap0 --ip 10.0.0.2/24 --connect 10.0.0.1:80`

#[path = "common/args.rs"]
mod args;

use std::time::Duration;
use ustack_socket::{
    Errno, PollEvents, PollFd, SockOpt, SockOptName, AF_INET, SOCK_NONBLOCK, SOCK_STREAM,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args::parse("--connect ADDR:PORT [--timeout-ms N]", &[]);
    let dst: std::net::SocketAddr = args.get_or("--connect", "10.0.0.1:80").parse()?;
    let timeout = Duration::from_millis(args.get_or("--timeout-ms", "3000").parse()?);
    let s = &args.stack;
    let fd = s.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)?;
    match s.connect(fd, dst) {
        Ok(()) => println!("connected at once"),
        Err(Errno::EINPROGRESS) => {
            println!("EINPROGRESS; polling for POLLOUT");
            let mut p = [PollFd::new(fd, PollEvents::POLLOUT)];
            if s.poll(&mut p, Some(timeout))? == 0 {
                println!("timed out after {timeout:?}");
                return Ok(());
            }
            println!("revents {:?}", p[0].revents);
            if let SockOpt::Error(Some(e)) = s.getsockopt(fd, SockOptName::Error)? {
                println!("connect failed: {e}");
                return Ok(());
            }
        }
        Err(e) => return Err(e.into()),
    }
    println!("{} -> {}", s.getsockname(fd)?, s.getpeername(fd)?);
    s.set_nonblocking(fd, false)?;
    let req = format!("GET / HTTP/1.0\r\nHost: {}\r\n\r\n", dst.ip());
    s.send(fd, req.as_bytes(), 0)?;
    let mut buf = [0u8; 4096];
    loop {
        let n = s.recv(fd, &mut buf, 0)?;
        if n == 0 {
            break;
        }
        print!("{}", String::from_utf8_lossy(&buf[..n]));
    }
    s.close(fd)?;
    Ok(())
}
