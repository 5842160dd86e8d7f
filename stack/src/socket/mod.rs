//! Transport layer: TCP, UDP and raw IP sockets.
//!
//! Each protocol has a *layer* object owned by the [`crate::iface::Interface`] that
//! holds its sockets, demultiplexes by hash map (UDP: local port; TCP: 4-tuple, then
//! listening address; raw: protocol), keeps deadlines in a timer structure, and tracks
//! which sockets have output pending, so no per-packet work scans every socket.
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

pub mod raw;
pub mod tcp;
pub mod udp;

use self::raw::RawHandle;
use self::tcp::TcpHandle;
use self::udp::UdpHandle;
use crate::wire::{self, IpProtocol, Ipv4Repr};
use core::fmt;
use core::net::Ipv4Addr;

error_enum!(
    /// Errors of `close` on every layer.
    CloseError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
    }
);

/// Any socket of an interface, as [`Interface::poll_ready`](crate::iface::Interface::poll_ready)
/// reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SocketHandle {
    /// A TCP socket.
    Tcp(TcpHandle),
    /// A UDP socket.
    Udp(UdpHandle),
    /// A raw IP socket.
    Raw(RawHandle),
}

impl fmt::Display for SocketHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketHandle::Tcp(h) => h.fmt(f),
            SocketHandle::Udp(h) => h.fmt(f),
            SocketHandle::Raw(h) => h.fmt(f),
        }
    }
}

impl From<TcpHandle> for SocketHandle {
    fn from(h: TcpHandle) -> SocketHandle {
        SocketHandle::Tcp(h)
    }
}

impl From<UdpHandle> for SocketHandle {
    fn from(h: UdpHandle) -> SocketHandle {
        SocketHandle::Udp(h)
    }
}

impl From<RawHandle> for SocketHandle {
    fn from(h: RawHandle) -> SocketHandle {
        SocketHandle::Raw(h)
    }
}

/// An ICMP error that refers to a datagram we sent, parsed for the transport layers.
///
/// RFC 1122 §3.2.2: the quoted IP header and the first 8 bytes of its payload identify
/// the socket (ports, and for TCP the sequence number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpError {
    /// Who sent the ICMP error.
    pub reporter: Ipv4Addr,
    /// Decoded error kind.
    pub kind: IcmpErrorKind,
    /// The header of our datagram, as quoted.
    pub quoted: Ipv4Repr,
    /// Source port of our datagram (from the quoted transport header).
    pub src_port: u16,
    /// Destination port of our datagram.
    pub dst_port: u16,
    /// For TCP, the quoted sequence number (bytes 4..8 of the TCP header).
    pub tcp_seq: u32,
}

impl IcmpError {
    /// Parses the quote of an ICMP error (or a datagram of ours that could not be
    /// delivered): the IP header and at least 8 bytes of the transport header.
    ///
    /// # Errors
    /// `Truncated` or `Malformed` when the quote is too short or its header is bad;
    /// `Unsupported` when it quotes a non-first fragment (no transport header).
    pub fn from_quote(
        reporter: Ipv4Addr,
        kind: IcmpErrorKind,
        quote: &[u8],
    ) -> Result<IcmpError, wire::Error> {
        let (quoted, transport) = Ipv4Repr::parse_quoted(quote)?;
        if quoted.frag_offset != 0 {
            return Err(wire::Error::Unsupported);
        }
        let t = transport.get(..8).ok_or(wire::Error::Truncated)?;
        Ok(IcmpError {
            reporter,
            kind,
            quoted,
            src_port: u16::from_be_bytes([t[0], t[1]]),
            dst_port: u16::from_be_bytes([t[2], t[3]]),
            tcp_seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        })
    }

    /// The transport protocol of the quoted datagram.
    pub fn protocol(&self) -> IpProtocol {
        self.quoted.protocol
    }
}

/// What an ICMP error says, mapped to errno-like meaning (RFC 1122 §4.2.3.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpErrorKind {
    /// Port unreachable: a hard error (ECONNREFUSED).
    PortUnreachable,
    /// Protocol unreachable: a hard error (ENOPROTOOPT / ECONNREFUSED).
    ProtocolUnreachable,
    /// Net or host unreachable (EHOSTUNREACH / ENETUNREACH): soft in synchronized states.
    HostUnreachable,
    /// Fragmentation needed with the next-hop MTU (RFC 1191).
    FragmentationNeeded(u16),
    /// Administratively prohibited and similar.
    Prohibited,
    /// TTL or reassembly time exceeded: soft.
    TimeExceeded,
    /// Any other code.
    Other(u8, u8),
}
