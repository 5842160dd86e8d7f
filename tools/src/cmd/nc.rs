//! `ustack nc`: netcat over the stack. stdin → socket, socket → stdout.
//!
//! TCP: on stdin EOF the write side is shut down (FIN), and the command exits when the
//! peer closes its side. UDP: every chunk read from stdin (a line, on a terminal) is one
//! datagram; the listener answers whoever sent the last datagram; it runs until
//! Ctrl-C, or `-q SECS` after stdin EOF.

use super::net;
use super::CmdResult;
use crate::global::GlobalArgs;
use clap::Args;
use std::io::{self, Read, Write};
use std::net::{Ipv6Addr, Shutdown, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ustack_socket::{TcpListener, TcpStream, UdpSocket};

/// Examples for `ustack nc --help`.
pub const AFTER_HELP: &str = "Examples:\n  \
    # connect to a kernel listener (socat -u TCP-LISTEN:9000 - in the namespace):\n  \
    echo hello | sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 nc 10.77.0.1 9000\n  \
    # listen on the stack; the kernel connects with socat:\n  \
    sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 nc -l 9000 > got.txt\n  \
    sudo ip netns exec NS socat -u FILE:data.txt TCP:10.77.0.2:9000\n  \
    # UDP, one datagram per line, quit 1 s after stdin ends:\n  \
    sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 nc -u -q 1 10.77.0.1 9000\n  \
    # IPv6 (a link-local peer needs its zone):\n  \
    sudo ip netns exec NS ustack --tap tap0 nc fd00::1 9000\n  \
    sudo ip netns exec NS ustack --tap tap0 nc [fe80::1%tap0] 9000\n\n\
    Listening without HOST binds [::], which takes IPv4 and IPv6 (dual stack).";

/// Options of `ustack nc`.
#[derive(Debug, Args)]
pub struct NcArgs {
    /// Listen for one connection (TCP) or for datagrams (UDP) instead of connecting.
    #[arg(short, long)]
    pub listen: bool,
    /// UDP instead of TCP.
    #[arg(short, long)]
    pub udp: bool,
    /// After stdin EOF, wait SECS and quit (UDP; TCP quits when the peer closes).
    #[arg(short, value_name = "SECS")]
    pub q: Option<f64>,
    /// HOST PORT to connect to, or PORT (or HOST PORT) to listen on; HOST is an IPv4
    /// or IPv6 address (`fd00::1`, `[fe80::1%tap0]`).
    #[arg(value_name = "[HOST] PORT", num_args = 1..=2, required = true)]
    pub target: Vec<String>,
}

/// Runs `ustack nc`.
pub fn run(global: &GlobalArgs, args: &NcArgs) -> CmdResult {
    let (host, port) = match args.target.as_slice() {
        [p] if args.listen => (None, p),
        [h, p] => (Some(h.as_str()), p),
        _ => return Err("usage: nc HOST PORT, or nc -l [HOST] PORT".into()),
    };
    let port: u16 = port.parse().map_err(|_| format!("bad port `{port}`"))?;
    let host = host.map(|h| net::host_addr(h, port)).transpose()?;
    // Listening without a host: `[::]`, dual stack.
    let any = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    let stack = net::stack(global, "nc")?;
    let watch = net::watch(global, &stack)?;
    let code = match (args.udp, args.listen) {
        (false, false) => {
            let addr = host.ok_or("usage: nc HOST PORT")?;
            net::await_source(&stack, addr);
            let s =
                TcpStream::connect(&stack, addr).map_err(|e| format!("connect to {addr}: {e}"))?;
            tcp(s)?
        }
        (false, true) => {
            let l = TcpListener::bind(&stack, host.unwrap_or(any))?;
            eprintln!("ustack: nc listening on {}:{port}", stack.ip());
            let (s, peer) = l.accept()?;
            eprintln!("ustack: nc connection from {}", net::show_peer(peer));
            drop(l);
            tcp(s)?
        }
        (true, listen) => {
            if let (Some(h), false) = (host, listen) {
                net::await_source(&stack, h);
            }
            udp(&stack, host, any, listen, args.q)?
        }
    };
    drop(watch);
    drop(stack);
    net::report_pcap(global);
    Ok(code)
}

/// stdin → stream (then FIN) on a thread; stream → stdout here until the peer's FIN.
fn tcp(stream: TcpStream) -> io::Result<i32> {
    let writer = stream.try_clone()?;
    let sender =
        std::thread::Builder::new()
            .name("nc-stdin".into())
            .spawn(move || -> io::Result<()> {
                let mut stdin = io::stdin().lock();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match stdin.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    (&writer).write_all(&buf[..n])?;
                }
                writer.shutdown(Shutdown::Write)
            })?;
    let mut out = io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match (&stream).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
        out.flush()?;
    }
    if sender.is_finished() {
        if let Ok(Err(e)) = sender.join() {
            if e.kind() != io::ErrorKind::BrokenPipe {
                return Err(e);
            }
        }
        Ok(0)
    } else {
        // The peer closed while stdin is still open: like nc, we are done. The stdin
        // thread holds the stack, so leave without waiting for it.
        drop(stream);
        std::thread::sleep(Duration::from_millis(100));
        std::process::exit(0);
    }
}

/// UDP both ways until Ctrl-C, or `quit_after` once stdin ended. `host` is the peer
/// (or, listening, the address to bind; `any` without one).
fn udp(
    stack: &ustack_socket::NetStack,
    host: Option<SocketAddr>,
    any: SocketAddr,
    listen: bool,
    quit_after: Option<f64>,
) -> io::Result<i32> {
    let sock = if listen {
        let s = UdpSocket::bind(stack, host.unwrap_or(any))?;
        eprintln!("ustack: nc listening on udp {}:{}", stack.ip(), any.port());
        s
    } else {
        // An unbound socket of the peer's family.
        let local = match host {
            Some(SocketAddr::V6(_)) => "[::]:0",
            _ => "0.0.0.0:0",
        };
        UdpSocket::bind(stack, local)?
    };
    // Where stdin's datagrams go: the given peer, or (listening) the last sender.
    let peer: Arc<Mutex<Option<SocketAddr>>> =
        Arc::new(Mutex::new(if listen { None } else { host }));
    let eof_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let (tx_sock, tx_peer, tx_eof) = (sock.try_clone()?, peer.clone(), eof_at.clone());
    std::thread::Builder::new()
        .name("nc-stdin".into())
        .spawn(move || {
            let mut stdin = io::stdin().lock();
            let mut buf = vec![0u8; 65_507];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let to = *tx_peer.lock().unwrap_or_else(|e| e.into_inner());
                        match to {
                            Some(to) => {
                                if let Err(e) = tx_sock.send_to(&buf[..n], to) {
                                    eprintln!("ustack: nc: send to {to}: {e}");
                                }
                            }
                            None => eprintln!("ustack: nc: no peer yet, {n} bytes dropped"),
                        }
                    }
                }
            }
            *tx_eof.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        })?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut out = io::stdout().lock();
    let mut buf = vec![0u8; 65_536];
    loop {
        if let (Some(q), Some(t)) = (
            quit_after,
            *eof_at.lock().unwrap_or_else(|e| e.into_inner()),
        ) {
            if t.elapsed().as_secs_f64() >= q {
                return Ok(0);
            }
        }
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                if listen {
                    *peer.lock().unwrap_or_else(|e| e.into_inner()) = Some(from);
                }
                out.write_all(&buf[..n])?;
                out.flush()?;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                eprintln!("ustack: nc: {e}");
            }
            Err(e) => return Err(e),
        }
    }
}
