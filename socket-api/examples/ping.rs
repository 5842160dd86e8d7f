//! ping over a raw ICMP socket: echo requests out, replies (IP header included, as
//! Linux SOCK_RAW) in, with round-trip times.
//!
//! `cargo run -p ustack-socket --example ping -- --tap tap0 --ip 10.0.0.2/24 --dst 10.0.0.1 --count 4`
//!
//! The logic is in [`ping`], which `tests/tests/kernel_socket_api.rs` calls in-process.

#[path = "common/args.rs"]
mod args;

use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use ustack::wire::{IcmpRepr, Ipv4Repr};
use ustack_socket::{NetStack, RawSocket};

#[allow(dead_code)]
fn main() -> std::io::Result<()> {
    let args = args::parse("--dst ADDR [--count N] [--size BYTES]", &[]);
    let dst: Ipv4Addr = args.get_or("--dst", "10.0.0.1").parse().expect("--dst");
    let count: u16 = args.get_or("--count", "4").parse().expect("--count");
    let size: usize = args.get_or("--size", "56").parse().expect("--size");
    ping(&args.stack, dst, count, size)?;
    Ok(())
}

/// Sends `count` echo requests of `size` payload bytes to `dst`, 200 ms apart, each
/// waiting up to a second for its reply; returns the replies whose ident, sequence
/// number and payload matched.
pub fn ping(stack: &NetStack, dst: Ipv4Addr, count: u16, size: usize) -> std::io::Result<u16> {
    let sock = RawSocket::new(stack, 1)?;
    sock.set_read_timeout(Some(Duration::from_secs(1)))?;
    let ident = std::process::id() as u16;
    let payload = vec![0xa5u8; size];
    let mut buf = vec![0u8; 65_536];
    println!("PING {dst}: {size} data bytes");
    let mut received = 0;
    for seq in 0..count {
        let req = IcmpRepr::EchoRequest {
            ident,
            seq_no: seq,
            data: &payload,
        };
        let mut msg = vec![0u8; req.buffer_len()];
        req.emit(&mut msg);
        let sent = Instant::now();
        sock.send_to(&msg, dst)?;
        loop {
            let (n, from) = match sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    println!("seq={seq}: timeout");
                    break;
                }
                Err(e) => return Err(e),
            };
            let Ok((ip, icmp)) = Ipv4Repr::parse(&buf[..n]) else {
                continue;
            };
            if let Ok(IcmpRepr::EchoReply {
                ident: i,
                seq_no,
                data,
            }) = IcmpRepr::parse(icmp)
            {
                if i == ident && seq_no == seq && data == &payload[..] {
                    received += 1;
                    println!(
                        "{} bytes from {from}: icmp_seq={seq} ttl={} time={:.3} ms",
                        data.len() + 8,
                        ip.ttl,
                        sent.elapsed().as_secs_f64() * 1e3
                    );
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("{count} transmitted, {received} received");
    Ok(received)
}
