//! Transport layer: UDP and TCP sockets.
//!
//! Each protocol has a *layer* object owned by the [`crate::iface::Interface`] that
//! holds its sockets, demultiplexes by hash map (UDP: local port; TCP: 4-tuple, then
//! listening address), keeps deadlines in a timer structure, and tracks which sockets
//! have output pending, so no per-packet work scans every socket.

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

use crate::wire::{IpProtocol, Ipv4Repr};
use core::net::Ipv4Addr;

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
