//! One module per subcommand; each `run` returns the process exit code.

pub mod bench;
pub mod demo;
pub mod dns;
pub mod dump;
pub mod echo;
pub mod http;
pub mod nc;
pub mod net;
pub mod ping;
pub mod plot;
pub mod run;
pub mod stats;
pub mod up;
pub mod wire;
pub mod xfer;

/// Errors a subcommand reports before exiting.
pub type CmdResult = Result<i32, Box<dyn std::error::Error>>;

use crate::global::GlobalArgs;
use crate::observe::{Attached, Observer};
use std::sync::mpsc;
use std::time::Duration;
use ustack::iface::Interface;
use ustack::wire::{EthernetAddress, Ipv4Cidr};
use ustack_socket::link::{mac_from_seed, Device as DeviceSpec, OsLink};
use ustack_socket::{Builder, NetStack, Stopped};
use ustack_tools::faults::CountersLine;

/// The device and addresses every subcommand that runs a stack starts from.
pub struct Device {
    /// Which device.
    pub spec: DeviceSpec,
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
        (Some(t), None) => DeviceSpec::Tap(t.clone()),
        (None, Some(r)) => DeviceSpec::Raw(r.clone()),
        _ => return Err(format!("`{what}` needs --tap NAME or --raw IFACE")),
    };
    args.check_addresses()?;
    let ip = args
        .ip()
        .ok_or_else(|| format!("`{what}` needs an IPv4 --ip ADDR/PREFIX"))?;
    let mac = args.mac.unwrap_or_else(|| mac_from_seed(args.seed));
    let link = spec
        .open_with(args.link_options().device_offload())
        .map_err(|e| format!("cannot open {spec}: {e}"))?;
    Ok(Device {
        spec,
        link,
        ip,
        mac,
    })
}

/// The stack every subcommand builds from the global options on an opened device:
/// address, MAC, MTU, gateway, seed, and the link wrappers of `--pcap`, `--seed` and
/// the fault flags.
pub fn builder(args: &GlobalArgs, device: OsLink, ip: Ipv4Cidr, mac: EthernetAddress) -> Builder {
    let seed = args.seed;
    let mut b = NetStack::builder()
        .os_link(device)
        .ip(ip)
        .mac(mac)
        .mtu(args.mtu.into())
        .link_options(args.link_options())
        .config(move |c| c.seed = seed);
    if let Some(gw) = args.gateway() {
        b = b.gateway(gw);
    }
    b = b.ipv6(!args.no_ipv6);
    for c in args.ip6() {
        b = b.ip6(c);
    }
    if let Some(gw) = args.gateway6() {
        b = b.gateway6(gw);
    }
    b
}

/// The interface counters that are not zero, one `layer.name value` per line, drops
/// as `layer.dropped.reason` (for the exit summaries).
pub fn format_counters(iface: &Interface) -> String {
    use ustack::iface::DropReason;
    let counters = iface.counters();
    let plain = counters.iter().count() - DropReason::COUNT;
    let mut out = String::new();
    for (layer, name, value) in counters.iter().take(plain) {
        if value != 0 {
            out.push_str(&format!("  {:<32} {value}\n", format!("{layer}.{name}")));
        }
    }
    for &reason in DropReason::ALL {
        let value = counters.dropped(reason);
        if value != 0 {
            let key = format!("{}.dropped.{}", reason.layer(), reason.as_str());
            out.push_str(&format!("  {key:<32} {value}\n"));
        }
    }
    out
}

/// How often `up` and `echo` look at the link's health while they wait for a signal.
const WAIT_TICK: Duration = Duration::from_millis(50);

/// A stack serving until a signal (`up`, `echo`): the device opened and the stack
/// running, stopped by SIGINT/SIGTERM/SIGHUP. In-driver services are hooks on
/// [`Served::stack`].
pub struct Served {
    /// The running stack (add hooks to it before [`Served::run`]).
    pub stack: NetStack,
    signals: mpsc::Receiver<i32>,
    /// What the banner names the link.
    pub spec: DeviceSpec,
    /// The stack's address.
    pub ip: Ipv4Cidr,
    /// The stack's MAC.
    pub mac: EthernetAddress,
}

impl Served {
    /// Installs the signal handler, opens the device and starts the stack.
    ///
    /// # Errors
    /// As [`open_device`], the stack could not start, or the signal handler could not
    /// be installed.
    pub fn open(args: &GlobalArgs, what: &str) -> Result<Served, Box<dyn std::error::Error>> {
        let (tx, signals) = mpsc::channel();
        ustack_tools::signals::handle_with(move |sig| {
            let _ = tx.send(sig);
        })?;
        let Device {
            spec,
            link,
            ip,
            mac,
        } = open_device(args, what)?;
        let stack = builder(args, link, ip, mac)
            .build()
            .map_err(|e| format!("cannot start the stack on {spec}: {e}"))?;
        Ok(Served {
            stack,
            signals,
            spec,
            ip,
            mac,
        })
    }

    /// Serves until a signal (or until the link fails), then stops the stack and prints
    /// the fault, link and interface counters, the observer's report and where the
    /// capture went. Returns what the stopped stack handed back and the link's result,
    /// so the caller can report its own figures before failing.
    ///
    /// # Errors
    /// The observer (control socket, trace file) could not be set up.
    pub fn run(
        self,
        args: &GlobalArgs,
    ) -> Result<(Stopped, std::io::Result<()>), Box<dyn std::error::Error>> {
        let Served { stack, signals, .. } = self;
        let obs = Observer::new(args, &stack, true)?;
        if let Some(p) = obs.control_path() {
            eprintln!(
                "ustack: `ustack stats --pid {}` reads {}",
                std::process::id(),
                p.display()
            );
        }
        let attached = Attached::attach(obs, &stack);
        // The driver keeps retrying a failing link; a serving command gives up on it.
        let result = loop {
            match signals.recv_timeout(WAIT_TICK) {
                Ok(_) | Err(mpsc::RecvTimeoutError::Disconnected) => break Ok(()),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if let Some(e) = stack.link_error() {
                break Err(std::io::Error::other(e));
            }
        };
        let mut stopped = stack
            .stop()
            .map_err(|_| "the stack is still in use by another handle")?;
        if let Some(r) = &stopped.report {
            if args.faults.faults().is_some() {
                eprintln!("ustack: faults {}", CountersLine("rx", &r.rx_faults));
                eprintln!("ustack: faults {}", CountersLine("tx", &r.tx_faults));
            }
        }
        let l = stopped.link;
        eprintln!(
            "ustack: link rx {} frames / {} bytes, tx {} frames / {} bytes",
            l.rx_frames, l.rx_bytes, l.tx_frames, l.tx_bytes
        );
        eprint!(
            "ustack: interface counters:\n{}",
            format_counters(&stopped.iface)
        );
        if let Some(obs) = attached.detach() {
            obs.finish(
                &mut stopped.iface,
                stopped.now,
                Some(stopped.driver),
                stopped.ring,
            );
        }
        if let Some(p) = &args.pcap {
            match stopped.report.as_mut().and_then(|r| r.recorded.take()) {
                Some(Err(e)) => eprintln!("ustack: capture {} incomplete: {e}", p.display()),
                _ => eprintln!("ustack: capture written to {}", p.display()),
            }
        }
        Ok((stopped, result))
    }
}
