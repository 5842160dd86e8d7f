//! `ustack echo`: TCP and UDP echo (RFC 862) on a link until a signal.
//!
//! The stack and the service share one thread: the stack's driver feeds frames and
//! timers to the interface, then runs [`EchoServer::poll`] as a hook (and the
//! trace/stats observer), then sends what the service queued.

use super::{CmdResult, Served};
use crate::global::GlobalArgs;
use clap::Args;
use std::sync::{Arc, Mutex, PoisonError};
use ustack_socket::echo::EchoServer;

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
    let served = Served::open(args, "echo")?;
    let server = served
        .stack
        .with_interface(|iface, _| EchoServer::new(iface, echo.port, echo.backlog))?;
    let server = Arc::new(Mutex::new(server));
    let hook_server = server.clone();
    served.stack.add_hook(move |_, _| {
        Box::new(move |round| {
            hook_server
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .poll(round)
        })
    });
    eprintln!(
        "ustack: echo on {}:{} (TCP and UDP) over {} ({}); Ctrl-C to stop",
        served.ip.address(),
        echo.port,
        served.spec,
        served.mac
    );
    let (mut stopped, result) = served.run(args)?;
    let server = server.lock().unwrap_or_else(PoisonError::into_inner);
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
    // The TCP layer's counters in `--stats`'s words (interface counters came above).
    for line in ustack_tools::stats::tcp_layer_lines(&stopped.iface.tcp().counters()).lines() {
        eprintln!("ustack: {line}");
    }
    result?;
    Ok(0)
}
