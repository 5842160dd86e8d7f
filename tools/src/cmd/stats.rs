//! `ustack stats`: the report of a running ustack, through its control socket.

use super::CmdResult;
use clap::Args;
use ustack_tools::control;

/// Examples for `--help`.
pub const AFTER_HELP: &str = "Examples:\n  \
    sudo ustack stats                 # the only ustack running\n  \
    sudo ustack stats --pid 4242 --json\n\n\
    Every running `ustack up`/`echo` listens on RUN_DIR/PID.sock, RUN_DIR being\n\
    $USTACK_RUN_DIR, else $XDG_RUNTIME_DIR/ustack, else /run/ustack for root, else\n\
    $TMPDIR/ustack-UID: run `ustack stats` as the same user (sudo for sudo).";

/// Flags of `ustack stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The process to ask (default: the only one running).
    #[arg(long, value_name = "N")]
    pub pid: Option<u32>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Connects, prints the answer.
pub fn run(args: &StatsArgs) -> CmdResult {
    let dir = control::run_dir();
    let path = match args.pid {
        Some(pid) => control::socket_path(&dir, pid),
        None => {
            let running = control::running(&dir);
            match running.as_slice() {
                [] => return Err(format!("no running ustack found in {}", dir.display()).into()),
                [(_, path)] => path.clone(),
                many => {
                    let pids: Vec<String> = many.iter().map(|(p, _)| p.to_string()).collect();
                    return Err(format!(
                        "several ustack processes are running ({}): pick one with --pid",
                        pids.join(", ")
                    )
                    .into());
                }
            }
        }
    };
    let text = control::query(&path, args.json)
        .map_err(|e| format!("cannot ask {}: {e}", path.display()))?;
    print!("{text}");
    Ok(if text.starts_with("error:") { 1 } else { 0 })
}
