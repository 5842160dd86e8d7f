//! What the three transport layers share: the error of `close`, an ICMP or ICMPv6 error
//! parsed for whichever layer sent the datagram it quotes, the address family of a
//! socket, and the interface's own addresses. A leaf: it imports no layer.
//!
//! Invariant (the IPv6 seam): both addresses of one packet are of one family, and
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) never reach a layer: the socket API maps
//! them to IPv4 before calling it, and back when it reports addresses. IPv6 addresses in
//! a layer's tables carry no flow label or scope id ([`normalize`]): the stack has one
//! interface, so a scope says nothing more.

use crate::wire::{self, IpProtocol, Ipv4Repr};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// The address family of a socket (`AF_INET` or `AF_INET6`).
///
/// An `AF_INET6` socket may also carry IPv4 traffic (dual stack) unless it is
/// `IPV6_V6ONLY`; an `AF_INET` socket carries IPv4 only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IpFamily {
    /// `AF_INET`.
    #[default]
    V4,
    /// `AF_INET6`.
    V6,
}

impl IpFamily {
    /// The family of `addr`.
    pub fn of(addr: IpAddr) -> IpFamily {
        match addr {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// The wildcard address of the family (`0.0.0.0` or `::`).
    pub fn unspecified(self) -> IpAddr {
        match self {
            IpFamily::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpFamily::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }
}

/// The halves of a port space a bound socket holds: bit 0 the IPv4 half, bit 1 the
/// IPv6 half. A socket bound to `[::]` without IPV6_V6ONLY holds both (dual stack), so
/// `0.0.0.0:P` and an IPV6_V6ONLY `[::]:P` can be bound together, as on Linux, while
/// a dual-stack `[::]:P` conflicts with either.
pub(crate) fn port_halves(local: IpAddr, v6only: bool) -> u8 {
    match local {
        IpAddr::V4(_) => HALF_V4,
        IpAddr::V6(a) if a.is_unspecified() && !v6only => HALF_V4 | HALF_V6,
        IpAddr::V6(_) => HALF_V6,
    }
}

/// The IPv4 half of a port space ([`port_halves`]).
pub(crate) const HALF_V4: u8 = 1;
/// The IPv6 half of a port space ([`port_halves`]).
pub(crate) const HALF_V6: u8 = 2;

/// The key of `port` in `half` (one bit of [`port_halves`]) for a per-half port map.
pub(crate) fn half_key(port: u16, half: u8) -> u32 {
    u32::from(port) | (u32::from(half) << 16)
}

/// The half of the port space a packet to `dst` belongs to.
pub(crate) fn half_of(dst: IpAddr) -> u8 {
    if dst.is_ipv4() {
        HALF_V4
    } else {
        HALF_V6
    }
}

/// The single halves in `halves`.
pub(crate) fn each_half(halves: u8) -> impl Iterator<Item = u8> {
    [HALF_V4, HALF_V6]
        .into_iter()
        .filter(move |h| halves & h != 0)
}

/// `addr` as the layers keep it: an IPv6 address loses its flow label and scope id, so
/// that two spellings of one peer compare (and hash) equal.
pub fn normalize(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => addr,
        SocketAddr::V6(a) => SocketAddr::V6(SocketAddrV6::new(*a.ip(), a.port(), 0, 0)),
    }
}

/// `ip:port` as a [`SocketAddr`] of the address's family.
pub fn socket_addr(ip: IpAddr, port: u16) -> SocketAddr {
    match ip {
        IpAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(a, port)),
        IpAddr::V6(a) => SocketAddr::V6(SocketAddrV6::new(a, port, 0, 0)),
    }
}

/// True for an address no segment may come from or go to: unspecified, multicast, or
/// IPv4 broadcast (limited broadcast; directed broadcast is the interface's to judge).
pub fn is_bad_unicast(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_unspecified() || a.is_broadcast() || a.is_multicast(),
        IpAddr::V6(a) => a.is_unspecified() || a.is_multicast(),
    }
}

/// The per-socket fields of the IP header a datagram goes out with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpTx {
    /// TTL (IPv4) or hop limit (IPv6), from IP_TTL / IPV6_UNICAST_HOPS; `None`: the
    /// interface's.
    pub hop_limit: Option<u8>,
    /// TOS (IPv4) or traffic class (IPv6), from IP_TOS / IPV6_TCLASS.
    pub tclass: u8,
}

/// The interface's own unicast addresses, as the transport layers need them: the source
/// of what an unbound socket sends, and whether a bind names an address of ours. An
/// unspecified entry means "none of that kind".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalAddrs {
    /// The IPv4 address.
    pub v4: Ipv4Addr,
    /// The preferred IPv6 address of global (or unique-local) scope.
    pub v6: Ipv6Addr,
    /// The IPv6 link-local address (RFC 4291 §2.5.6).
    pub v6_link_local: Ipv6Addr,
}

impl Default for LocalAddrs {
    fn default() -> Self {
        LocalAddrs {
            v4: Ipv4Addr::UNSPECIFIED,
            v6: Ipv6Addr::UNSPECIFIED,
            v6_link_local: Ipv6Addr::UNSPECIFIED,
        }
    }
}

impl LocalAddrs {
    /// Only an IPv4 address.
    pub fn v4(addr: Ipv4Addr) -> LocalAddrs {
        LocalAddrs {
            v4: addr,
            ..LocalAddrs::default()
        }
    }

    /// The source address for a packet to `dst`, of `dst`'s family; `None` when we have
    /// no address of that family. For IPv6, RFC 6724 §5 rule 2 (prefer the matching
    /// scope) in its simplest form: a link-local destination gets the link-local
    /// source, any other the global one, each falling back on the other.
    pub fn source_for(&self, dst: IpAddr) -> Option<IpAddr> {
        match dst {
            IpAddr::V4(_) => (!self.v4.is_unspecified()).then_some(IpAddr::V4(self.v4)),
            IpAddr::V6(d) => {
                let (first, second) = if d.is_unicast_link_local() || d.is_loopback() {
                    (self.v6_link_local, self.v6)
                } else {
                    (self.v6, self.v6_link_local)
                };
                [first, second]
                    .into_iter()
                    .find(|a| !a.is_unspecified())
                    .map(IpAddr::V6)
            }
        }
    }

    /// True when `addr` is one of our unicast addresses.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => !a.is_unspecified() && a == self.v4,
            IpAddr::V6(a) => !a.is_unspecified() && (a == self.v6 || a == self.v6_link_local),
        }
    }
}

error_enum!(
    /// Errors of `close` on every layer.
    CloseError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
    }
);

/// An ICMP or ICMPv6 error that refers to a datagram we sent, parsed for the transport
/// layers.
///
/// RFC 1122 §3.2.2 (and RFC 4443 §2.4 for ICMPv6): the quoted IP header and the first 8
/// bytes of its payload identify the socket (ports, and for TCP the sequence number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpError {
    /// Who sent the ICMP error.
    pub reporter: IpAddr,
    /// Decoded error kind.
    pub kind: IcmpErrorKind,
    /// Source address of our datagram, as quoted.
    pub src_addr: IpAddr,
    /// Destination address of our datagram, as quoted.
    pub dst_addr: IpAddr,
    /// Transport protocol (the last next header, for IPv6) of our datagram.
    pub protocol: IpProtocol,
    /// Source port of our datagram (from the quoted transport header).
    pub src_port: u16,
    /// Destination port of our datagram.
    pub dst_port: u16,
    /// For TCP, the quoted sequence number (bytes 4..8 of the TCP header).
    pub tcp_seq: u32,
}

impl IcmpError {
    /// Parses the quote of an ICMP error (or a datagram of ours that could not be
    /// delivered): the IPv4 header and at least 8 bytes of the transport header.
    /// ICMPv6 quotes are parsed by the interface, which knows IPv6 extension headers,
    /// and handed over with [`from_transport_quote`](Self::from_transport_quote).
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
        Self::from_transport_quote(
            reporter.into(),
            kind,
            (quoted.src_addr.into(), quoted.dst_addr.into()),
            quoted.protocol,
            transport,
        )
    }

    /// An error about our datagram `src -> dst` of `protocol`, whose transport header
    /// starts `transport` (at least its first 8 bytes).
    ///
    /// # Errors
    /// `Truncated` when fewer than 8 bytes of transport header are quoted.
    pub fn from_transport_quote(
        reporter: IpAddr,
        kind: IcmpErrorKind,
        (src_addr, dst_addr): (IpAddr, IpAddr),
        protocol: IpProtocol,
        transport: &[u8],
    ) -> Result<IcmpError, wire::Error> {
        let t = transport.get(..8).ok_or(wire::Error::Truncated)?;
        Ok(IcmpError {
            reporter,
            kind,
            src_addr,
            dst_addr,
            protocol,
            src_port: u16::from_be_bytes([t[0], t[1]]),
            dst_port: u16::from_be_bytes([t[2], t[3]]),
            tcp_seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        })
    }

    /// The transport protocol of the quoted datagram.
    pub fn protocol(&self) -> IpProtocol {
        self.protocol
    }

    /// Our side of the quoted datagram (its source).
    pub fn local(&self) -> SocketAddr {
        socket_addr(self.src_addr, self.src_port)
    }

    /// The far side of the quoted datagram (its destination).
    pub fn remote(&self) -> SocketAddr {
        socket_addr(self.dst_addr, self.dst_port)
    }
}

/// What an ICMP error says, mapped to errno-like meaning (RFC 1122 §4.2.3.9). ICMPv6
/// errors map onto the same values (RFC 4443 §3): Destination Unreachable code 4 is
/// `PortUnreachable`, codes 0, 2 and 3 `HostUnreachable`, 1, 5 and 6 `Prohibited`;
/// Packet Too Big is `FragmentationNeeded` with its MTU (clamped to 65,535); Time
/// Exceeded is `TimeExceeded`; Parameter Problem code 1 (unknown next header) is
/// `ProtocolUnreachable`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpErrorKind {
    /// Port unreachable: a hard error (ECONNREFUSED).
    PortUnreachable,
    /// Protocol unreachable: a hard error (ENOPROTOOPT / ECONNREFUSED).
    ProtocolUnreachable,
    /// Net or host unreachable (EHOSTUNREACH / ENETUNREACH): soft in synchronized states.
    HostUnreachable,
    /// Fragmentation needed with the next-hop MTU (RFC 1191), or ICMPv6 Packet Too Big
    /// (RFC 8201).
    FragmentationNeeded(u16),
    /// Administratively prohibited and similar.
    Prohibited,
    /// TTL or reassembly time exceeded: soft.
    TimeExceeded,
    /// Any other code.
    Other(u8, u8),
}
