//! One module per subcommand; each `run` returns the process exit code.

pub mod demo;
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
