//! TCP echo client: sends each line of standard input and prints what comes back.
//!
//! `cargo run -p ustack-socket --example tcp_echo_client -- --tap tap1 --ip 10.0.0.3/24 --connect 10.0.0.2:7`
//!
//! The logic is in [`run`], which `tests/tests/kernel_socket_api.rs` calls in-process
//! against a kernel echo server.

#[path = "common/args.rs"]
mod args;

use std::io::{self, BufRead, BufReader, Write};
use ustack_socket::TcpStream;

#[allow(dead_code)]
fn main() -> io::Result<()> {
    let args = args::parse("--connect ADDR:PORT", &[]);
    let Some(dst) = args.get("--connect") else {
        eprintln!("--connect ADDR:PORT is required");
        std::process::exit(2)
    };
    let stream = TcpStream::connect(&args.stack, dst)?;
    println!(
        "connected {} -> {}",
        stream.local_addr()?,
        stream.peer_addr()?
    );
    run(stream, io::stdin().lock(), io::stdout().lock())?;
    Ok(())
}

/// Sends each line of `input` and writes each line that comes back to `out`; then
/// shuts down writing. Returns the number of lines echoed.
pub fn run(mut stream: TcpStream, input: impl BufRead, mut out: impl Write) -> io::Result<usize> {
    let mut replies = BufReader::new(stream.try_clone()?);
    let mut echoed = 0;
    for line in input.lines() {
        let line = line?;
        writeln!(stream, "{line}")?;
        let mut back = String::new();
        if replies.read_line(&mut back)? == 0 {
            writeln!(out, "server closed the connection")?;
            break;
        }
        write!(out, "{back}")?;
        echoed += 1;
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    Ok(echoed)
}
