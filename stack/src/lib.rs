//! ustack: a userspace TCP/IP stack, sans-IO.
//!
//! The stack is fed Ethernet frames and the current time, and hands back frames to
//! send and the next instant it wants to be woken. It never reads a clock, never
//! blocks and never touches a file descriptor, so the same code runs on a TAP device,
//! in the deterministic simulator ([`sim`]) and in benchmarks.
//!
//! # Layers
//!
//! | module      | role |
//! |-------------|------|
//! | [`wire`]    | parse/emit of Ethernet, ARP, IPv4, ICMP, UDP, TCP into `Repr`s (over etherparse) |
//! | [`iface`]   | the [`iface::Interface`]: Ethernet demux, ARP cache, IPv4 routing, fragmentation and reassembly, ICMP, counters |
//! | [`socket`]  | transport: TCP, UDP and raw sockets in generation-checked slabs, demultiplexed by 4-tuple / port / protocol maps; `poll_ready` names the sockets whose readiness changed |
//! | [`storage`] | ring buffers, the out-of-order assembler, the generation-checked slab |
//! | [`link`]    | the [`link::Link`] trait, memory pairs, pcap/fault/trace wrappers, TAP and AF_PACKET (`os` feature) |
//! | [`time`]    | [`time::Instant`] and [`time::Duration`] |
//!
//! # Path of a frame
//!
//! In: `Interface::handle_frame(now, frame)` → Ethernet → ARP | IPv4 (reassembly) →
//! ICMP | UDP | TCP → socket demux → socket. Replies are queued, never sent from inside.
//!
//! Out: `Interface::poll_transmit(now, buf)` drains queued control packets, then asks
//! sockets with pending output to dispatch one segment, which flows through IPv4
//! (fragmentation) and Ethernet (neighbour lookup; ARP request and a bounded pending
//! queue when the next hop is unknown) into `buf`.
//!
//! Timers are deadlines: `Interface::poll_timeout()` says when to call
//! `Interface::handle_timeout(now)` next.

#![warn(missing_docs)]
#![cfg_attr(not(feature = "os"), forbid(unsafe_code))]

pub mod iface;
pub mod link;
#[cfg(feature = "sim")]
pub mod sim;
pub mod socket;
pub mod storage;
pub mod time;
pub mod wire;
