//! UDP echo server: sends every datagram back to its sender.
//!
//! `cargo run -p ustack-socket --example udp_echo_server -- --tap tap0 --ip 10.0.0.2/24 --port 7`

#[path = "common/args.rs"]
mod args;

use ustack_socket::UdpSocket;

fn main() -> std::io::Result<()> {
    let args = args::parse("[--port N]", &[]);
    let port: u16 = args.get_or("--port", "7").parse().expect("port");
    let sock = UdpSocket::bind(&args.stack, ("0.0.0.0", port))?;
    println!("UDP echo on {}", sock.local_addr()?);
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = sock.recv_from(&mut buf)?;
        println!("{n} bytes from {from}");
        sock.send_to(&buf[..n], from)?;
    }
}
