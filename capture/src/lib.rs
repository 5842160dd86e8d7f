//! Reading packet captures (pcap and pcapng, as `ustack --pcap` and tcpdump write them):
//! the library behind `ustack dump` and `ustack plot`.
//!
//! Layers, each importing only the ones before it:
//! - [`decode`]: one frame into plain data, every field kept, checksums verified and
//!   reported rather than a reason to drop (built on etherparse's header slices);
//! - [`analysis`]: TCP connections and UDP flows across frames (relative sequence
//!   numbers, window scaling, retransmissions, handshake options);
//! - [`dump_fmt`] and [`dump`]: tcpdump-style lines, a layer tree, JSON lines and a
//!   summary, with filters and IP reassembly;
//! - [`timeseq`] and [`trace`]: the data behind the plots (a connection's time-sequence
//!   graph, a TCP event log);
//! - `plot` (feature `plot`, on by default): drawing them as SVG or PNG with plotters.
//!
//! Nothing here prints on its own; the caller passes the writer.

#![warn(missing_docs)]

pub mod analysis;
pub mod decode;
pub mod decode6;
pub mod dump;
pub mod dump_fmt;
pub mod fmt6;
#[cfg(feature = "plot")]
pub mod plot;
pub mod timeseq;
pub mod trace;
