//! UDP echo server: sends every datagram back to its sender.
//!
//! `cargo run -p ustack-socket --example udp_echo_server -- --tap tap0 --ip 10.0.0.2/24 --port 7`
//!
//! The logic is in [`serve`], which `tests/tests/kernel_socket_api.rs` calls in-process.

#[path = "common/args.rs"]
mod args;

use std::io;
use ustack_socket::UdpSocket;

#[allow(dead_code)]
fn main() -> io::Result<()> {
    let args = args::parse("[--port N]", &[]);
    let port: u16 = args.get_or("--port", "7").parse().expect("port");
    let sock = UdpSocket::bind(&args.stack, ("0.0.0.0", port))?;
    println!("UDP echo on {}", sock.local_addr()?);
    serve(&sock, None)
}

/// Echoes datagrams, `count` of them or forever.
pub fn serve(sock: &UdpSocket, count: Option<u64>) -> io::Result<()> {
    let mut buf = vec![0u8; 65_536];
    let mut done = 0;
    while count.is_none_or(|c| done < c) {
        let (n, from) = sock.recv_from(&mut buf)?;
        println!("{n} bytes from {from}");
        sock.send_to(&buf[..n], from)?;
        done += 1;
    }
    Ok(())
}
