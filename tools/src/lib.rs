//! Library half of the `ustack` tool: the driver loop, namespaces and the kernel-side
//! peers that talk from inside them, signal handling, shared by the `ustack` binary and
//! the kernel tests (`ustack-tests`). Reading captures (`ustack dump`, `ustack plot`) is
//! the `ustack-capture` crate.

#![warn(missing_docs)]
// Field docs of the clap structs are also the `--help` text, which writes optional
// parts as `[:DEPTH]`; rustdoc would read those brackets as links.
#![allow(rustdoc::broken_intra_doc_links)]

pub mod control;
pub mod driver;
pub mod echo;
pub mod faults;
pub mod kernel_peer;
pub mod netns;
pub mod signals;
pub mod stats;
pub mod trace;
