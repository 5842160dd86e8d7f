//! TCP echo server: one thread per connection, `io::copy` back to the sender.
//!
//! `cargo run -p ustack-socket --example tcp_echo_server -- --tap tap0 --ip 10.0.0.2/24 --port 7`
//!
//! The logic is in [`serve`], which `tests/tests/kernel_socket_api.rs` calls in-process
//! against kernel clients.

#[path = "common/args.rs"]
mod args;

use std::io;
use std::thread::JoinHandle;
use ustack_socket::{TcpListener, TcpStream};

#[allow(dead_code)]
fn main() -> io::Result<()> {
    let args = args::parse("[--port N]", &[]);
    let port: u16 = args.get_or("--port", "7").parse().expect("port");
    let listener = TcpListener::bind(&args.stack, ("0.0.0.0", port))?;
    println!("echo server on {}", listener.local_addr()?);
    serve(listener.incoming())?;
    Ok(())
}

/// Echoes every accepted connection on its own thread until `conns` ends (never, for
/// `TcpListener::incoming`); returns the threads, each giving its byte count.
pub fn serve(
    conns: impl Iterator<Item = io::Result<TcpStream>>,
) -> io::Result<Vec<JoinHandle<io::Result<u64>>>> {
    let mut threads = Vec::new();
    for stream in conns {
        let stream = stream?;
        let peer = stream.peer_addr()?;
        threads.push(std::thread::spawn(move || {
            println!("{peer} connected");
            let mut reader = stream.try_clone()?;
            let mut writer = stream;
            let r = io::copy(&mut reader, &mut writer);
            match &r {
                Ok(n) => println!("{peer} done, {n} bytes echoed"),
                Err(e) => println!("{peer}: {e}"),
            }
            r
        }));
    }
    Ok(threads)
}
