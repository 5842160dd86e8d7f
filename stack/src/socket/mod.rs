//! Transport layer: TCP, UDP and raw IP sockets.
//!
//! Each protocol has a *layer* object owned by the [`crate::iface::Interface`] that
//! holds its sockets, demultiplexes by hash map (UDP: local port; TCP: 4-tuple, then
//! listening address; raw: protocol) and tracks which sockets have output pending; TCP,
//! the only one with timers, keeps its deadlines in a timer structure. So no per-packet
//! work scans every socket.
//!
//! The three layers share one convention:
//! - sockets live in a generation-checked [`Slab`](crate::storage::Slab), so a handle
//!   kept after `close` is stale and never reaches the socket that reuses its slot;
//! - every operation returns its own error enum (`BindError`, `SendError`, ...), each
//!   with a `BadHandle` variant for a stale or unknown handle, and each variant's doc
//!   names the Linux errno it stands for; `close` returns [`CloseError`];
//! - each layer queues the user-owned sockets whose readiness may have changed
//!   (`poll_ready`), and [`Interface::poll_ready`](crate::iface::Interface::poll_ready)
//!   merges the three queues as [`SocketHandle`]s, so nothing above the engine scans
//!   sockets or re-parses frames to find out what changed.

/// Defines a per-operation error enum: `Copy`, `Display` (the given text) and
/// `std::error::Error`. Shared by the three layers so they read alike.
macro_rules! error_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $text:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $v,)*
        }
        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(match self { $($name::$v => $text,)* })
            }
        }
        impl ::std::error::Error for $name {}
    };
}

mod common;
mod handle;
pub mod raw;
pub mod tcp;
pub mod udp;

pub use common::{CloseError, IcmpError, IcmpErrorKind, IpFamily, IpTx, LocalAddrs};
pub use handle::SocketHandle;
