//! What the three transport layers share: the error of `close`, and an ICMP error
//! parsed for whichever layer sent the datagram it quotes. A leaf: it imports no layer.

use crate::wire::{self, IpProtocol, Ipv4Repr};
use core::net::Ipv4Addr;

error_enum!(
    /// Errors of `close` on every layer.
    CloseError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
    }
);

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
