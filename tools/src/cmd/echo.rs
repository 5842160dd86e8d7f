//! `ustack echo`: TCP and UDP echo (RFC 862) on a link until a signal.
//!
//! The stack and the service share one thread: the driver loop feeds frames and timers
//! to the interface, then runs [`EchoServer::poll`] as its application hook (and the
//! trace/stats observer), then sends what the service queued.

use super::CmdResult;
use crate::cli::GlobalArgs;
use crate::observe::Observer;
use clap::Args;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use ustack::iface::Interface;
use ustack::link::Direction;
use ustack_tools::driver::{self, Clock, Counted};
use ustack_tools::echo::EchoServer;
use ustack_tools::faults::CountersLine;

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
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    ustack_tools::signals::handle_with(move |_| stop2.store(true, Ordering::Relaxed))?;

    let super::Device {
        spec,
        link: os_link,
        ip,
        mac,
    } = super::open_device(args, "echo")?;
    let fd = os_link.as_raw_fd();
    let clock = Clock::start();
    let config = driver::iface_config(mac, ip, args.gateway, args.mtu.into(), args.seed);
    let mut iface = Interface::new(config, clock.now());
    let mut server = EchoServer::new(&mut iface, echo.port, echo.backlog)?;
    eprintln!(
        "ustack: echo on {}:{} (TCP and UDP) over {spec} ({mac}); Ctrl-C to stop",
        ip.address(),
        echo.port
    );

    let link = driver::build_link(os_link, &args.link_options(), &clock)?;
    let mut obs = Observer::new(args, true)?;
    if let Some(p) = obs.control_path() {
        eprintln!(
            "ustack: `ustack stats --pid {}` reads {}",
            std::process::id(),
            p.display()
        );
    }
    let mut counted = Counted::new(link);
    let result = driver::run_with_app(
        &mut iface,
        &mut counted,
        fd,
        &clock,
        &stop,
        &mut |iface, now| {
            server.poll(iface, now);
            obs.poll(iface, now);
        },
    );
    let stats = counted.stats();
    let mut link = counted.into_inner();
    if args.faults.faults().is_some() {
        for (name, dir) in [("rx", Direction::Rx), ("tx", Direction::Tx)] {
            eprintln!(
                "ustack: faults {}",
                CountersLine(name, &link.fault_counters(dir))
            );
        }
    }
    let recorded = link.flush();
    drop(link); // closes the device
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
    eprintln!(
        "ustack: link rx {} frames / {} bytes, tx {} frames / {} bytes",
        stats.rx_frames, stats.rx_bytes, stats.tx_frames, stats.tx_bytes
    );
    eprint!(
        "ustack: interface counters:\n{}",
        driver::format_counters(&iface)
    );
    eprintln!("ustack: tcp counters: {:?}", iface.tcp().counters());
    obs.finish(&mut iface, clock.now());
    if let Some(p) = &args.pcap {
        match recorded {
            Ok(()) => eprintln!("ustack: capture written to {}", p.display()),
            Err(e) => eprintln!("ustack: capture {} incomplete: {e}", p.display()),
        }
    }
    result?;
    Ok(0)
}
