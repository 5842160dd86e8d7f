//! One module per subcommand; each `run` returns the process exit code.

pub mod demo;
pub mod dns;
pub mod dump;
pub mod echo;
pub mod http;
pub mod nc;
pub mod net;
pub mod ping;
pub mod plot;
pub mod stats;
pub mod up;
pub mod xfer;

/// Errors a subcommand reports before exiting.
pub type CmdResult = Result<i32, Box<dyn std::error::Error>>;

use crate::global::GlobalArgs;
use crate::observe::Observer;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use ustack::iface::Interface;
use ustack::link::Direction;
use ustack::time::Instant;
use ustack::wire::{EthernetAddress, Ipv4Cidr};
use ustack_tools::driver::{self, Clock, Counted, LinkSpec, OsLink};
use ustack_tools::faults::CountersLine;

/// The device and addresses every subcommand that runs a stack starts from.
pub struct Device {
    /// Which device.
    pub spec: LinkSpec,
    /// The opened device.
    pub link: OsLink,
    /// The stack's address (`--ip`).
    pub ip: Ipv4Cidr,
    /// The stack's MAC (`--mac`, or derived from `--seed`).
    pub mac: EthernetAddress,
}

/// Opens the device named by `--tap`/`--raw` for subcommand `what`, with `--ip` and the
/// MAC resolved.
///
/// # Errors
/// No link or no address given, or the device could not be opened.
pub fn open_device(args: &GlobalArgs, what: &str) -> Result<Device, String> {
    let spec = match (&args.tap, &args.raw) {
        (Some(t), None) => LinkSpec::Tap(t.clone()),
        (None, Some(r)) => LinkSpec::Raw(r.clone()),
        _ => return Err(format!("`{what}` needs --tap NAME or --raw IFACE")),
    };
    let ip = args
        .ip
        .ok_or_else(|| format!("`{what}` needs --ip ADDR/PREFIX"))?;
    let mac = args.mac.unwrap_or_else(|| driver::mac_from_seed(args.seed));
    let link = spec
        .open()
        .map_err(|e| format!("cannot open {spec}: {e}"))?;
    Ok(Device {
        spec,
        link,
        ip,
        mac,
    })
}

/// A stack running in the tool's own driver loop (`up`, `echo`): the device opened, the
/// interface built, stopped by SIGINT/SIGTERM/SIGHUP.
pub struct Served {
    /// The interface, for the application to set up before [`Served::run`].
    pub iface: Interface,
    device: OsLink,
    clock: Clock,
    stop: Arc<AtomicBool>,
    /// What the banner names the link.
    pub spec: LinkSpec,
    /// The stack's address.
    pub ip: Ipv4Cidr,
    /// The stack's MAC.
    pub mac: EthernetAddress,
}

impl Served {
    /// Installs the signal handler, opens the device and builds the interface.
    ///
    /// # Errors
    /// As [`open_device`], or the signal handler could not be installed.
    pub fn open(args: &GlobalArgs, what: &str) -> Result<Served, Box<dyn std::error::Error>> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        ustack_tools::signals::handle_with(move |_| stop2.store(true, Ordering::Relaxed))?;
        let Device {
            spec,
            link,
            ip,
            mac,
        } = open_device(args, what)?;
        let clock = Clock::start();
        let config = driver::iface_config(mac, ip, args.gateway, args.mtu.into(), args.seed);
        let iface = Interface::new(config, clock.now());
        Ok(Served {
            iface,
            device: link,
            clock,
            stop,
            spec,
            ip,
            mac,
        })
    }

    /// Drives the stack with `app` run after every round until a signal, then prints the
    /// fault, link and interface counters, the observer's report and where the capture
    /// went. Returns the interface and the driver's result, so the caller can report
    /// its own figures before failing.
    ///
    /// # Errors
    /// The link or the observer (control socket, trace file) could not be set up.
    pub fn run(
        self,
        args: &GlobalArgs,
        app: &mut dyn FnMut(&mut Interface, Instant),
    ) -> Result<(Interface, std::io::Result<()>), Box<dyn std::error::Error>> {
        let Served {
            mut iface,
            device,
            clock,
            stop,
            ..
        } = self;
        let fd = device.as_raw_fd();
        let link = driver::build_link(device, &args.link_options(), &clock)?;
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
                app(iface, now);
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
        Ok((iface, result))
    }
}
