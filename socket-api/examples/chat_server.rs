//! Multi-client chat server on one thread with `poll`: every line a client sends goes
//! to every other client.
//!
//! `cargo run -p ustack-socket --example chat_server -- --tap tap0 --ip 10.0.0.2/24 --port 4000`
//! then, from the host: `nc 10.0.0.2 4000` in several terminals.
//!
//! The logic is in [`Chat`], which `tests/tests/kernel_socket_api.rs` drives in-process
//! with kernel clients.

#[path = "common/args.rs"]
mod args;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::time::Duration;
use ustack_socket::{NetStack, PollEvents, PollFd, TcpListener, TcpStream};

struct Client {
    stream: TcpStream,
    pending: Vec<u8>,
    name: String,
}

#[allow(dead_code)]
fn main() -> std::io::Result<()> {
    let args = args::parse("[--port N]", &[]);
    let port: u16 = args.get_or("--port", "4000").parse().expect("port");
    let listener = TcpListener::bind(&args.stack, ("0.0.0.0", port))?;
    println!("chat on {}", listener.local_addr()?);
    let mut chat = Chat::new(&args.stack, listener)?;
    loop {
        chat.step(None)?;
    }
}

/// The chat room: the listener and every client.
pub struct Chat {
    stack: NetStack,
    listener: TcpListener,
    clients: HashMap<i32, Client>,
}

impl Chat {
    /// A room on `listener` (made non-blocking).
    pub fn new(stack: &NetStack, listener: TcpListener) -> std::io::Result<Chat> {
        listener.set_nonblocking(true)?;
        Ok(Chat {
            stack: stack.clone(),
            listener,
            clients: HashMap::new(),
        })
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// One round: `poll` (up to `timeout`; `None` waits forever), accept, read, relay.
    pub fn step(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        let Chat {
            stack,
            listener,
            clients,
        } = self;
        let mut fds = vec![PollFd::new(listener.fd(), PollEvents::POLLIN)];
        fds.extend(
            clients
                .keys()
                .map(|&fd| PollFd::new(fd, PollEvents::POLLIN)),
        );
        stack.poll(&mut fds, timeout)?;
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
            for (&fd, c) in clients.iter() {
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
        Ok(())
    }
}
