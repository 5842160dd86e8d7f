//! Library half of the `ustack` tool: signal handling, the control socket, traces,
//! stats and fault flags of the `ustack` binary; and the capture decoder, conversation
//! tracker and printers behind `ustack dump` and `ustack plot`. The host loop, the link
//! wrappers and namespaces live in `ustack-socket` (`NetStack`, `link`, `netns`).

#![warn(missing_docs)]
// Field docs of the clap structs are also the `--help` text, which writes optional
// parts as `[:DEPTH]`; rustdoc would read those brackets as links.
#![allow(rustdoc::broken_intra_doc_links)]

pub mod analysis;
pub mod control;
pub mod decode;
pub mod dns;
pub mod dump;
pub mod dump_fmt;
pub mod faults;
pub mod plot;
pub mod signals;
pub mod stats;
pub mod trace;
