//! `ustack echo`: TCP and UDP echo (RFC 862) on a link until a signal.
//!
//! The stack and the service share one thread: the driver loop feeds frames and timers
//! to the interface, then runs [`EchoServer::poll`] as its application hook (and the
//! trace/stats observer), then sends what the service queued.

use super::{CmdResult, Served};
use crate::global::GlobalArgs;
use clap::Args;
use ustack_tools::echo::EchoServer;

/// Options of `ustack echo`.
#[derive(Debug, Args)]
pub struct EchoArgs {
    /// TCP and UDP port to serve.
    #[arg(long, value_name = "N", default_value_t = 7)]
    pub port: u16,
    /// TCP listen backlog (connections waiting for the handshake or for accept).
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub backlog: usize,
}

/// Runs until SIGINT/SIGTERM/SIGHUP, then prints counters.
pub fn run(args: &GlobalArgs, echo: &EchoArgs) -> CmdResult {
    let mut served = Served::open(args, "echo")?;
    let mut server = EchoServer::new(&mut served.iface, echo.port, echo.backlog)?;
    eprintln!(
        "ustack: echo on {}:{} (TCP and UDP) over {} ({}); Ctrl-C to stop",
        served.ip.address(),
        echo.port,
        served.spec,
        served.mac
    );
    let (mut iface, result) = served.run(args, &mut |iface, now| server.poll(iface, now))?;
    let s = server.stats();
    eprintln!(
        "ustack: echo: tcp {} accepted, {} completed, {} failed, {} open, at most {} at once, \
         {} bytes; udp {} datagrams / {} bytes, {} dropped",
        s.accepted,
        s.completed,
        s.failed,
        server.open_connections(),
        s.max_open,
        s.tcp_bytes,
        s.udp_datagrams,
        s.udp_bytes,
        s.udp_dropped
    );
    eprintln!("ustack: tcp counters: {:?}", iface.tcp().counters());
    result?;
    Ok(0)
}
