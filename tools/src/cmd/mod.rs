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

use crate::cli::GlobalArgs;
use ustack::wire::{EthernetAddress, Ipv4Cidr};
use ustack_tools::driver::{self, LinkSpec, OsLink};

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
