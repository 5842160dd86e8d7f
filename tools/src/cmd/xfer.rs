//! `ustack send` and `ustack recv`: one file over one TCP connection, raw bytes.
//!
//! The sender writes the file, shuts down its write side (FIN) and waits for the peer
//! to close, so a successful exit means the receiver got every byte. Both sides print
//! the byte count, throughput and SHA-256, so the two lines can be compared.

use super::net::{self, Transfer};
use super::CmdResult;
use crate::global::GlobalArgs;
use clap::Args;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::{Ipv6Addr, Shutdown};
use std::path::PathBuf;
use std::time::Duration;
use ustack_socket::{TcpListener, TcpStream};

/// Options of `ustack send`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    # to a kernel receiver in the namespace (socat -u TCP-LISTEN:9000 OPEN:out.bin,creat):\n  \
    sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 send big.bin 10.77.0.1 9000\n  \
    # to another ustack: `ustack recv 9000 -o out.bin` on the other side")]
pub struct SendArgs {
    /// The file to send ("-" for stdin).
    pub file: PathBuf,
    /// The receiver's IPv4 or IPv6 address (`fd00::1`, `[fe80::1%tap0]`).
    pub host: String,
    /// The receiver's TCP port.
    pub port: u16,
}

/// Options of `ustack recv`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 recv 9000 -o out.bin\n  \
    sudo ip netns exec NS socat -u FILE:big.bin TCP:10.77.0.2:9000")]
pub struct RecvArgs {
    /// TCP port to listen on (one connection is accepted, IPv4 or IPv6: `[::]`).
    pub port: u16,
    /// Where to write what arrives ("-" for stdout).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

/// Runs `ustack send`.
pub fn send(global: &GlobalArgs, args: &SendArgs) -> CmdResult {
    let addr = net::host_addr(&args.host, args.port)?;
    let (mut input, total): (Box<dyn Read>, Option<u64>) = if args.file.as_os_str() == "-" {
        (Box::new(io::stdin().lock()), None)
    } else {
        let f = File::open(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
        let len = f.metadata()?.len();
        (Box::new(f), Some(len))
    };
    let stack = net::stack(global, "send")?;
    let watch = net::watch(global, &stack)?;
    net::await_source(&stack, addr);
    let stream = TcpStream::connect(&stack, addr).map_err(|e| format!("connect to {addr}: {e}"))?;
    eprintln!("ustack: sending {} to {addr}", args.file.display());
    let mut t = Transfer::new(total);
    t.copy(&mut input, &mut &stream)?;
    stream.shutdown(Shutdown::Write)?;
    // Wait for the receiver to close: then every byte (and our FIN) was taken.
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut sink = [0u8; 4096];
    loop {
        match (&stream).read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err("the receiver did not close within 30 s of our FIN".into())
            }
            Err(e) => return Err(e.into()),
        }
    }
    eprintln!("ustack: sent {}", t.finish());
    drop(stream);
    drop(watch);
    drop(stack);
    net::report_pcap(global);
    Ok(0)
}

/// Runs `ustack recv`.
pub fn recv(global: &GlobalArgs, args: &RecvArgs) -> CmdResult {
    let mut out: Box<dyn Write> = if args.output.as_os_str() == "-" {
        Box::new(io::stdout().lock())
    } else {
        Box::new(BufWriter::with_capacity(
            1 << 20,
            File::create(&args.output).map_err(|e| format!("{}: {e}", args.output.display()))?,
        ))
    };
    let stack = net::stack(global, "recv")?;
    let watch = net::watch(global, &stack)?;
    let listener = TcpListener::bind(&stack, (Ipv6Addr::UNSPECIFIED, args.port))?;
    eprintln!("ustack: waiting on {}:{}", stack.ip(), args.port);
    let (stream, peer) = listener.accept()?;
    drop(listener);
    eprintln!("ustack: receiving from {}", net::show_peer(peer));
    let mut t = Transfer::new(None);
    t.copy(&mut &stream, &mut out)?;
    out.flush()?;
    drop(out);
    eprintln!("ustack: received {}", t.finish());
    drop(stream);
    drop(watch);
    drop(stack);
    net::report_pcap(global);
    Ok(0)
}
