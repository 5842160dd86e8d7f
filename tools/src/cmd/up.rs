//! `ustack up`: the stack on a link, answering ARP and ping until a signal.

use super::{CmdResult, Served};
use crate::global::GlobalArgs;

/// Runs until SIGINT/SIGTERM/SIGHUP, then prints counters.
pub fn run(args: &GlobalArgs) -> CmdResult {
    let served = Served::open(args, "up")?;
    eprintln!(
        "ustack: up on {} as {} ({}); Ctrl-C to stop",
        served.spec, served.ip, served.mac
    );
    let (_, result) = served.run(args)?;
    result?;
    Ok(0)
}
