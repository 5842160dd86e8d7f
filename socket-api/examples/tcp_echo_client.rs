//! TCP echo client: sends each line of standard input and prints what comes back.
//!
//! `cargo run -p ustack-socket --example tcp_echo_client -- --tap tap1 --ip 10.0.0.3/24 --connect 10.0.0.2:7`

#[path = "common/args.rs"]
mod args;

use std::io::{BufRead, BufReader, Write};
use ustack_socket::TcpStream;

fn main() -> std::io::Result<()> {
    let args = args::parse("--connect ADDR:PORT", &[]);
    let Some(dst) = args.get("--connect") else {
        eprintln!("--connect ADDR:PORT is required");
        std::process::exit(2)
    };
    let mut stream = TcpStream::connect(&args.stack, dst)?;
    println!(
        "connected {} -> {}",
        stream.local_addr()?,
        stream.peer_addr()?
    );
    let mut replies = BufReader::new(stream.try_clone()?);
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        writeln!(stream, "{line}")?;
        let mut back = String::new();
        if replies.read_line(&mut back)? == 0 {
            println!("server closed the connection");
            break;
        }
        print!("{back}");
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    Ok(())
}
