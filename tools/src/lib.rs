//! Library half of the `ustack` tool: the driver loop, namespaces and the kernel-side
//! peers that talk from inside them, signal handling,
//! shared by the `ustack` binary and the kernel tests (`ustack-tests`); and the capture
//! decoder, conversation tracker and printers behind `ustack dump` and `ustack plot`.

#![warn(missing_docs)]
// Field docs of the clap structs are also the `--help` text, which writes optional
// parts as `[:DEPTH]`; rustdoc would read those brackets as links.
#![allow(rustdoc::broken_intra_doc_links)]

pub mod analysis;
pub mod control;
pub mod decode;
pub mod dns;
pub mod driver;
pub mod dump;
pub mod dump_fmt;
pub mod echo;
pub mod faults;
pub mod kernel_peer;
pub mod netns;
pub mod plot;
pub mod signals;
pub mod stats;
pub mod trace;
