//! `ustack up`: the stack on a link, answering ARP and ping until a signal.

use super::CmdResult;
use crate::cli::GlobalArgs;
use crate::observe::Observer;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use ustack::iface::Interface;
use ustack::link::Direction;
use ustack_tools::driver::{self, Clock, Counted};
use ustack_tools::faults::CountersLine;

/// Runs until SIGINT/SIGTERM/SIGHUP, then prints counters.
pub fn run(args: &GlobalArgs) -> CmdResult {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    ustack_tools::signals::handle_with(move |_| stop2.store(true, Ordering::Relaxed))?;

    let super::Device {
        spec,
        link: os_link,
        ip,
        mac,
    } = super::open_device(args, "up")?;
    let fd = os_link.as_raw_fd();
    let clock = Clock::start();
    let config = driver::iface_config(mac, ip, args.gateway, args.mtu.into(), args.seed);
    let mut iface = Interface::new(config, clock.now());
    eprintln!("ustack: up on {spec} as {ip} ({mac}); Ctrl-C to stop");

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
        &mut |iface, now| obs.poll(iface, now),
    );
    let stats = counted.stats();
    let mut link = counted.into_inner();
    let faults = args.faults.faults();
    if faults.is_some() {
        eprintln!(
            "ustack: faults {}",
            CountersLine("rx", &link.fault_counters(Direction::Rx))
        );
        eprintln!(
            "ustack: faults {}",
            CountersLine("tx", &link.fault_counters(Direction::Tx))
        );
    }
    let recorded = link.flush();
    drop(link); // closes the device
    eprintln!(
        "ustack: link rx {} frames / {} bytes, tx {} frames / {} bytes",
        stats.rx_frames, stats.rx_bytes, stats.tx_frames, stats.tx_bytes
    );
    eprint!(
        "ustack: interface counters:\n{}",
        driver::format_counters(&iface)
    );
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
