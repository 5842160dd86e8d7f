//! UDP echo client: sends `--count` datagrams and waits up to a second for each echo.
//!
//! `cargo run -p ustack-socket --example udp_echo_client -- --tap tap1 --ip 10.0.0.3/24 --to 10.0.0.2:7`
//!
//! The logic is in [`run`], which `tests/tests/kernel_socket_api.rs` calls in-process.

#[path = "common/args.rs"]
mod args;

use std::io::{self, ErrorKind};
use std::time::{Duration, Instant};
use ustack_socket::UdpSocket;

#[allow(dead_code)]
fn main() -> io::Result<()> {
    let args = args::parse("--to ADDR:PORT [--count N]", &[]);
    let Some(dst) = args.get("--to") else {
        eprintln!("--to ADDR:PORT is required");
        std::process::exit(2)
    };
    let count: u32 = args.get_or("--count", "5").parse().expect("count");
    let sock = UdpSocket::bind(&args.stack, "0.0.0.0:0")?;
    sock.connect(dst)?;
    run(&sock, count)?;
    Ok(())
}

/// Sends `count` datagrams on the connected `sock`, each waiting up to a second for
/// its echo; returns how many came back identical.
pub fn run(sock: &UdpSocket, count: u32) -> io::Result<u32> {
    sock.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut buf = [0u8; 2048];
    let mut echoed = 0;
    for i in 0..count {
        let msg = format!("datagram {i}");
        let start = Instant::now();
        sock.send(msg.as_bytes())?;
        match sock.recv(&mut buf) {
            Ok(n) => {
                println!("{} from {}: {:?}", n, sock.peer_addr()?, start.elapsed());
                if &buf[..n] == msg.as_bytes() {
                    echoed += 1;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => println!("{msg}: no echo in 1 s"),
            Err(e) => println!("{msg}: {e}"),
        }
    }
    Ok(echoed)
}
