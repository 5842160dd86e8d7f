//! `ustack up`: the stack on a link, answering ARP and ping until a signal.

use super::CmdResult;
use crate::cli::GlobalArgs;
use std::fs::File;
use std::io::BufWriter;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use ustack::iface::Interface;
use ustack::link::{Direction, FaultInjector, Link, PcapTimestamps, PcapWriter};
use ustack_tools::driver::{self, Clock, Counted, LinkSpec};
use ustack_tools::faults::CountersLine;

/// Runs until SIGINT/SIGTERM/SIGHUP, then prints counters.
pub fn run(args: &GlobalArgs) -> CmdResult {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    ustack_tools::signals::handle_with(move |_| stop2.store(true, Ordering::Relaxed))?;

    let spec = match (&args.tap, &args.raw) {
        (Some(t), None) => LinkSpec::Tap(t.clone()),
        (None, Some(r)) => LinkSpec::Raw(r.clone()),
        _ => return Err("`up` needs --tap NAME or --raw IFACE".into()),
    };
    let ip = args.ip.ok_or("`up` needs --ip ADDR/PREFIX")?;
    let mac = args.mac.unwrap_or_else(|| driver::mac_from_seed(args.seed));
    let os_link = spec
        .open()
        .map_err(|e| format!("cannot open {spec}: {e}"))?;
    let fd = os_link.as_raw_fd();
    let clock = Clock::start();
    let link: Box<dyn Link> = match &args.pcap {
        Some(path) => {
            let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Box::new(PcapWriter::new(
                os_link,
                BufWriter::new(file),
                clock.epoch_unix_micros(),
                PcapTimestamps::Micros,
            )?)
        }
        None => Box::new(os_link),
    };
    let config = driver::iface_config(mac, ip, args.gateway, args.mtu.into(), args.seed);
    let mut iface = Interface::new(config, clock.now());
    eprintln!("ustack: up on {spec} as {ip} ({mac}); Ctrl-C to stop");

    // The pcap sits under the injector: it records what really crossed the device.
    let faults = args.faults.faults();
    let injector = FaultInjector::new(link, faults.clone().unwrap_or_default(), args.seed);
    let mut counted = Counted::new(injector);
    let result = driver::run(&mut iface, &mut counted, fd, &clock, &stop);
    let stats = counted.stats();
    let injector = counted.into_inner();
    if faults.is_some() {
        eprintln!(
            "ustack: faults {}",
            CountersLine("rx", &injector.counters(Direction::Rx))
        );
        eprintln!(
            "ustack: faults {}",
            CountersLine("tx", &injector.counters(Direction::Tx))
        );
    }
    drop(injector); // closes the device and flushes the pcap
    eprintln!(
        "ustack: link rx {} frames / {} bytes, tx {} frames / {} bytes",
        stats.rx_frames, stats.rx_bytes, stats.tx_frames, stats.tx_bytes
    );
    eprint!(
        "ustack: interface counters:\n{}",
        driver::format_counters(&iface)
    );
    if let Some(p) = &args.pcap {
        eprintln!("ustack: pcap written to {}", p.display());
    }
    result?;
    Ok(0)
}
