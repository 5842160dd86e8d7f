//! TCP echo server: one thread per connection, `io::copy` back to the sender.
//!
//! `cargo run -p ustack-socket --example tcp_echo_server -- --tap tap0 --ip 10.0.0.2/24 --port 7`

#[path = "common/args.rs"]
mod args;

use ustack_socket::TcpListener;

fn main() -> std::io::Result<()> {
    let args = args::parse("[--port N]", &[]);
    let port: u16 = args.get_or("--port", "7").parse().expect("port");
    let listener = TcpListener::bind(&args.stack, ("0.0.0.0", port))?;
    println!("echo server on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        let stream = stream?;
        let peer = stream.peer_addr()?;
        std::thread::spawn(move || {
            println!("{peer} connected");
            let mut reader = stream.try_clone().expect("clone");
            let mut writer = stream;
            match std::io::copy(&mut reader, &mut writer) {
                Ok(n) => println!("{peer} done, {n} bytes echoed"),
                Err(e) => println!("{peer}: {e}"),
            }
        });
    }
    Ok(())
}
