//! Library half of the `ustack` tool: signal handling, the control socket, traces,
//! stats and fault flags of the `ustack` binary. The host loop, the link wrappers,
//! namespaces and the kernel-side peers live in `ustack-socket` (`NetStack`, `link`,
//! `netns`, `kernel_peer`);
//! reading captures (`ustack dump`, `ustack plot`) is the `ustack-capture` crate.

#![warn(missing_docs)]
// Field docs of the clap structs are also the `--help` text, which writes optional
// parts as `[:DEPTH]`; rustdoc would read those brackets as links.
#![allow(rustdoc::broken_intra_doc_links)]

pub mod control;
pub mod faults;
pub mod signals;
pub mod stats;
pub mod trace;
pub mod wirelab;
