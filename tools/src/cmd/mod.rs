//! One module per subcommand; each `run` returns the process exit code.

pub mod demo;
pub mod dump;
pub mod echo;
pub mod http;
pub mod net;
pub mod plot;
pub mod up;

/// Errors a subcommand reports before exiting.
pub type CmdResult = Result<i32, Box<dyn std::error::Error>>;
