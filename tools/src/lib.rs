//! Library half of the `ustack` tool: the driver loop, namespaces and signal handling,
//! shared by the `ustack` binary and the kernel tests (`ustack-tests`).

#![warn(missing_docs)]

pub mod driver;
pub mod echo;
pub mod netns;
pub mod signals;
