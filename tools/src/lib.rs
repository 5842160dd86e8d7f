//! Library half of the `ustack` tool: the driver loop, namespaces and signal handling,
//! shared by the `ustack` binary and the kernel tests (`ustack-tests`); and the capture
//! decoder, conversation tracker and printers behind `ustack dump` and `ustack plot`.

#![warn(missing_docs)]

pub mod analysis;
pub mod control;
pub mod decode;
pub mod driver;
pub mod dump;
pub mod dump_fmt;
pub mod echo;
pub mod faults;
pub mod netns;
pub mod plot;
pub mod signals;
pub mod stats;
pub mod trace;
