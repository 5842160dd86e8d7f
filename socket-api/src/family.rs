//! Address families at the socket boundary: what an address given to a socket of one
//! family means to the engine, and how the engine's addresses are reported back.
//!
//! The engine never sees an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`): an `AF_INET6`
//! socket that is not IPV6_V6ONLY talks IPv4 through it, so the address is mapped to
//! IPv4 on the way in and back to IPv4-mapped on the way out. Every family mismatch
//! fails with the errno Linux gives (checked against kernel sockets, see
//! `docs/socket-api.md`):
//!
//! | socket   | address                         | bind         | connect            | sendto      |
//! |----------|---------------------------------|--------------|--------------------|-------------|
//! | AF_INET  | IPv6 (mapped or not)            | EAFNOSUPPORT | EAFNOSUPPORT       | EAFNOSUPPORT|
//! | AF_INET6 | IPv4 (`sockaddr_in`)            | EINVAL       | TCP EINVAL, UDP ok | UDP ok      |
//! | AF_INET6 | mapped, IPV6_V6ONLY             | EINVAL       | ENETUNREACH        | ENETUNREACH |
//! | AF_INET6 | link-local without a scope id   | EINVAL       | EINVAL             | EINVAL      |
//!
//! A link-local address needs a scope id (the interface); the stack has one interface,
//! so any non-zero scope id names it, and link-local addresses are reported with
//! [`SCOPE_ID`].

use crate::errno::Errno;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use ustack::socket::IpFamily;

/// The scope id reported with link-local addresses: the stack's one interface.
pub const SCOPE_ID: u32 = 1;

/// Which call hands an address over (the errno of a mismatch depends on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Use {
    /// bind(2).
    Bind,
    /// connect(2) of a stream socket.
    ConnectStream,
    /// connect(2) of a datagram socket.
    ConnectDgram,
    /// sendto(2) of a datagram socket.
    SendTo,
    /// connect(2) of a raw socket.
    ConnectRaw,
    /// sendto(2) of a raw socket.
    SendToRaw,
}

/// True for addresses that need a scope id (RFC 4007): link-local unicast and
/// interface- or link-local multicast.
fn needs_scope(a: &Ipv6Addr) -> bool {
    a.is_unicast_link_local() || (a.is_multicast() && matches!(a.segments()[0] & 0x000f, 1 | 2))
}

/// The engine's view of `addr`, given to a socket of `family` (IPV6_V6ONLY `v6only`)
/// for `use_`: the same family, or IPv4 for an IPv4-mapped address on a dual-stack
/// socket; IPv6 addresses lose flow label and scope id.
///
/// # Errors
/// The errno Linux gives for the mismatch (module table).
pub(crate) fn to_engine(
    family: IpFamily,
    v6only: bool,
    addr: SocketAddr,
    use_: Use,
) -> Result<SocketAddr, Errno> {
    match (family, addr) {
        (IpFamily::V4, SocketAddr::V4(_)) => Ok(addr),
        (IpFamily::V4, SocketAddr::V6(_)) => Err(Errno::EAFNOSUPPORT),
        // A `sockaddr_in` on an AF_INET6 socket: too short a `sockaddr_in6` for bind,
        // stream connect and raw sendto (EINVAL); raw connect checks the family
        // (EAFNOSUPPORT); datagram connect and sendto take it as IPv4.
        (IpFamily::V6, SocketAddr::V4(_)) => match use_ {
            Use::Bind | Use::ConnectStream | Use::SendToRaw => Err(Errno::EINVAL),
            Use::ConnectRaw => Err(Errno::EAFNOSUPPORT),
            Use::ConnectDgram | Use::SendTo if v6only => Err(Errno::ENETUNREACH),
            Use::ConnectDgram | Use::SendTo => Ok(addr),
        },
        (IpFamily::V6, SocketAddr::V6(a)) => {
            if let Some(v4) = a.ip().to_ipv4_mapped() {
                if matches!(use_, Use::ConnectRaw | Use::SendToRaw) {
                    // Raw IPv6 sockets speak IPv6 only.
                    return Err(Errno::ENETUNREACH);
                }
                if v6only {
                    return Err(match use_ {
                        Use::Bind => Errno::EINVAL,
                        _ => Errno::ENETUNREACH,
                    });
                }
                return Ok(SocketAddr::V4(SocketAddrV4::new(v4, a.port())));
            }
            if needs_scope(a.ip()) && a.scope_id() == 0 {
                return Err(Errno::EINVAL);
            }
            Ok(SocketAddr::V6(SocketAddrV6::new(*a.ip(), a.port(), 0, 0)))
        }
    }
}

/// `addr` from the engine as a socket of `family` reports it: IPv4 on an `AF_INET6`
/// socket as IPv4-mapped, link-local IPv6 with [`SCOPE_ID`].
pub(crate) fn to_user(family: IpFamily, addr: SocketAddr) -> SocketAddr {
    match (family, addr) {
        (IpFamily::V6, SocketAddr::V4(a)) => {
            SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0))
        }
        (_, SocketAddr::V6(a)) if needs_scope(a.ip()) => {
            SocketAddr::V6(SocketAddrV6::new(*a.ip(), a.port(), 0, SCOPE_ID))
        }
        _ => addr,
    }
}

/// The address of an unbound or unconnected socket of `family` (`0.0.0.0:0`, `[::]:0`).
pub(crate) fn unspecified(family: IpFamily) -> SocketAddr {
    match family {
        IpFamily::V4 => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
        IpFamily::V6 => SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0)),
    }
}

/// `ip` with port 0 (raw sockets have no ports).
pub(crate) fn with_port0(ip: IpAddr) -> SocketAddr {
    SocketAddr::new(ip, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str, port: u16, scope: u32) -> SocketAddr {
        SocketAddr::V6(SocketAddrV6::new(s.parse().unwrap(), port, 0, scope))
    }

    #[test]
    fn mismatches_give_linux_errnos() {
        let a4: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let mapped = v6("::ffff:10.0.0.1", 80, 0);
        use IpFamily::{V4, V6};
        for u in [
            Use::Bind,
            Use::ConnectStream,
            Use::ConnectDgram,
            Use::SendTo,
        ] {
            assert_eq!(to_engine(V4, false, mapped, u), Err(Errno::EAFNOSUPPORT));
            assert_eq!(
                to_engine(V4, false, v6("fd00::1", 80, 0), u),
                Err(Errno::EAFNOSUPPORT)
            );
            assert_eq!(to_engine(V4, false, a4, u), Ok(a4));
        }
        assert_eq!(to_engine(V6, false, a4, Use::Bind), Err(Errno::EINVAL));
        assert_eq!(
            to_engine(V6, false, a4, Use::ConnectStream),
            Err(Errno::EINVAL)
        );
        assert_eq!(to_engine(V6, false, a4, Use::ConnectDgram), Ok(a4));
        assert_eq!(to_engine(V6, false, a4, Use::SendTo), Ok(a4));
        assert_eq!(to_engine(V6, false, a4, Use::SendToRaw), Err(Errno::EINVAL));
        assert_eq!(
            to_engine(V6, false, a4, Use::ConnectRaw),
            Err(Errno::EAFNOSUPPORT)
        );
        assert_eq!(to_engine(V6, false, mapped, Use::ConnectStream), Ok(a4));
        assert_eq!(to_engine(V6, true, mapped, Use::Bind), Err(Errno::EINVAL));
        assert_eq!(
            to_engine(V6, true, mapped, Use::ConnectStream),
            Err(Errno::ENETUNREACH)
        );
        assert_eq!(
            to_engine(V6, true, mapped, Use::SendTo),
            Err(Errno::ENETUNREACH)
        );
        assert_eq!(
            to_engine(V6, false, v6("fe80::1", 80, 0), Use::Bind),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            to_engine(V6, false, v6("fe80::1", 80, 7), Use::ConnectStream),
            Ok(v6("fe80::1", 80, 0)),
            "any scope names the one interface; the engine sees none"
        );
        assert_eq!(
            to_engine(V6, false, v6("::", 80, 0), Use::Bind),
            Ok(v6("::", 80, 0))
        );
    }

    #[test]
    fn reports_map_back() {
        let a4: SocketAddr = "10.0.0.1:80".parse().unwrap();
        assert_eq!(to_user(IpFamily::V6, a4), v6("::ffff:10.0.0.1", 80, 0));
        assert_eq!(to_user(IpFamily::V4, a4), a4);
        assert_eq!(
            to_user(IpFamily::V6, v6("fe80::2", 1, 0)),
            v6("fe80::2", 1, SCOPE_ID)
        );
        assert_eq!(
            to_user(IpFamily::V6, v6("fd00::2", 1, 0)),
            v6("fd00::2", 1, 0)
        );
        assert_eq!(unspecified(IpFamily::V6), v6("::", 0, 0));
    }
}
