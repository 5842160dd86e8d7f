//! Multi-client chat server on one thread with `poll`: every line a client sends goes
//! to every other client.
//!
//! `cargo run -p ustack-socket --example chat_server -- --tap tap0 --ip 10.0.0.2/24 --port 4000`
//! then, from the host: `nc 10.0.0.2 4000` in several terminals.

#[path = "common/args.rs"]
mod args;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use ustack_socket::{PollEvents, PollFd, TcpListener, TcpStream};

struct Client {
    stream: TcpStream,
    pending: Vec<u8>,
    name: String,
}

fn main() -> std::io::Result<()> {
    let args = args::parse("[--port N]", &[]);
    let port: u16 = args.get_or("--port", "4000").parse().expect("port");
    let stack = args.stack.clone();
    let listener = TcpListener::bind(&stack, ("0.0.0.0", port))?;
    listener.set_nonblocking(true)?;
    println!("chat on {}", listener.local_addr()?);
    let mut clients: HashMap<i32, Client> = HashMap::new();
    loop {
        let mut fds = vec![PollFd::new(listener.fd(), PollEvents::POLLIN)];
        fds.extend(
            clients
                .keys()
                .map(|&fd| PollFd::new(fd, PollEvents::POLLIN)),
        );
        stack.poll(&mut fds, None)?;
        let mut lines: Vec<(i32, Vec<u8>)> = Vec::new();
        let mut gone = Vec::new();
        for p in &fds {
            if p.revents.is_empty() {
                continue;
            }
            if p.fd == listener.fd() {
                loop {
                    match listener.accept() {
                        Ok((s, peer)) => {
                            s.set_nonblocking(true)?;
                            println!("{peer} joined");
                            let name = peer.to_string();
                            clients.insert(
                                s.fd(),
                                Client {
                                    stream: s,
                                    pending: Vec::new(),
                                    name,
                                },
                            );
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            let Some(c) = clients.get_mut(&p.fd) else {
                continue;
            };
            let mut buf = [0u8; 1024];
            match (&c.stream).read(&mut buf) {
                Ok(0) => gone.push(p.fd),
                Ok(n) => {
                    c.pending.extend_from_slice(&buf[..n]);
                    while let Some(i) = c.pending.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = c.pending.drain(..=i).collect();
                        let mut msg = format!("{}: ", c.name).into_bytes();
                        msg.extend_from_slice(&line);
                        lines.push((p.fd, msg));
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => gone.push(p.fd),
            }
        }
        for (from, msg) in lines {
            for (&fd, c) in &clients {
                if fd != from {
                    // Slow readers lose lines rather than stall the room.
                    let _ = (&c.stream).write(&msg);
                }
            }
        }
        for fd in gone {
            if let Some(c) = clients.remove(&fd) {
                println!("{} left", c.name);
            }
        }
    }
}
