//! `struct sockaddr` to and from `SocketAddr`. AF_INET6 sockets talk to IPv4 peers
//! through v4-mapped addresses (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2): `::` means
//! 0.0.0.0, a mapped address means its IPv4 address, and addresses are shown mapped.
//! Native IPv6 on the wire is not supported (issue 14).

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use libc::{c_int, sockaddr, sockaddr_in, sockaddr_in6, socklen_t};

/// An address from the program, read as the IPv4 address the stack uses.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// IPv4, or IPv6 that maps to IPv4 (`::` or `::ffff:a.b.c.d`).
    V4(SocketAddr),
    /// AF_UNSPEC (connect: dissolve the association).
    Unspec,
    /// A native IPv6 address, which the stack cannot reach.
    NativeV6,
}

/// Reads `len` bytes at `addr`.
///
/// # Errors
/// EFAULT for a null pointer, EINVAL for a short length, EAFNOSUPPORT for a family
/// other than AF_INET, AF_INET6 and AF_UNSPEC.
///
/// # Safety
/// `addr` is null or points to `len` readable bytes.
pub unsafe fn read(addr: *const sockaddr, len: socklen_t) -> Result<Parsed, c_int> {
    if addr.is_null() {
        return Err(libc::EFAULT);
    }
    if (len as usize) < core::mem::size_of::<libc::sa_family_t>() {
        return Err(libc::EINVAL);
    }
    // SAFETY: at least the family is readable (checked above); the caller's buffer
    // need not be aligned for `sockaddr`, so the field is read unaligned.
    let family =
        unsafe { core::ptr::read_unaligned(core::ptr::addr_of!((*addr).sa_family)) } as c_int;
    match family {
        libc::AF_INET => {
            if (len as usize) < core::mem::size_of::<sockaddr_in>() {
                return Err(libc::EINVAL);
            }
            // SAFETY: `len` covers a sockaddr_in; read_unaligned copes with any alignment.
            let sin: sockaddr_in = unsafe { core::ptr::read_unaligned(addr.cast()) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Ok(Parsed::V4(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            ))))
        }
        libc::AF_INET6 => {
            if (len as usize) < core::mem::size_of::<sockaddr_in6>() {
                return Err(libc::EINVAL);
            }
            // SAFETY: `len` covers a sockaddr_in6.
            let sin6: sockaddr_in6 = unsafe { core::ptr::read_unaligned(addr.cast()) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            Ok(match v4_of(ip) {
                Some(v4) => Parsed::V4(SocketAddr::V4(SocketAddrV4::new(v4, port))),
                None => Parsed::NativeV6,
            })
        }
        libc::AF_UNSPEC => Ok(Parsed::Unspec),
        _ => Err(libc::EAFNOSUPPORT),
    }
}

/// Whether the address at `addr` is a loopback one (127.0.0.0/8, `::1`, or
/// `::ffff:127.x.y.z`): the stack has no loopback, the kernel does.
///
/// # Safety
/// As [`read`].
pub unsafe fn is_loopback(addr: *const sockaddr, len: socklen_t) -> bool {
    if addr.is_null() || (len as usize) < core::mem::size_of::<sockaddr_in>() {
        return false;
    }
    // SAFETY: the caller's contract; at least a sockaddr_in is readable, possibly
    // unaligned.
    let family =
        unsafe { core::ptr::read_unaligned(core::ptr::addr_of!((*addr).sa_family)) } as c_int;
    match family {
        libc::AF_INET => {
            // SAFETY: as above.
            let sin: sockaddr_in = unsafe { core::ptr::read_unaligned(addr.cast()) };
            Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).is_loopback()
        }
        libc::AF_INET6 if (len as usize) >= core::mem::size_of::<sockaddr_in6>() => {
            // SAFETY: `len` covers a sockaddr_in6.
            let sin6: sockaddr_in6 = unsafe { core::ptr::read_unaligned(addr.cast()) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        _ => false,
    }
}

/// The IPv4 address an IPv6 one stands for: `::` is 0.0.0.0, `::ffff:a.b.c.d` is
/// a.b.c.d; anything else is native IPv6.
pub fn v4_of(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if ip.is_unspecified() {
        return Some(Ipv4Addr::UNSPECIFIED);
    }
    ip.to_ipv4_mapped()
}

/// Writes `a` at `out` as the family of the socket (`v6`: AF_INET6, mapped), truncated
/// to `*len` bytes as Linux does, and sets `*len` to the full size. Null pointers are
/// skipped (accept(2) with no address wanted).
///
/// # Safety
/// `out` and `len` are null or valid; `*len` bytes at `out` are writable.
pub unsafe fn write(a: SocketAddr, v6: bool, out: *mut sockaddr, len: *mut socklen_t) {
    if out.is_null() || len.is_null() {
        return;
    }
    let (ip, port) = match a {
        SocketAddr::V4(a) => (*a.ip(), a.port()),
        SocketAddr::V6(a) => (v4_of(*a.ip()).unwrap_or(Ipv4Addr::UNSPECIFIED), a.port()),
    };
    let mut buf = [0u8; core::mem::size_of::<sockaddr_in6>()];
    let size = if v6 {
        // SAFETY: sockaddr_in6 is plain data; all-zero is valid.
        let mut sin6: sockaddr_in6 = unsafe { core::mem::zeroed() };
        sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        sin6.sin6_port = port.to_be();
        sin6.sin6_addr.s6_addr = if ip.is_unspecified() {
            Ipv6Addr::UNSPECIFIED.octets()
        } else {
            ip.to_ipv6_mapped().octets()
        };
        let n = core::mem::size_of::<sockaddr_in6>();
        // SAFETY: `buf` has room for a sockaddr_in6.
        unsafe { core::ptr::write_unaligned(buf.as_mut_ptr().cast(), sin6) };
        n
    } else {
        // SAFETY: sockaddr_in is plain data; all-zero is valid.
        let mut sin: sockaddr_in = unsafe { core::mem::zeroed() };
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_port = port.to_be();
        sin.sin_addr.s_addr = u32::from(ip).to_be();
        // SAFETY: `buf` has room for a sockaddr_in.
        unsafe { core::ptr::write_unaligned(buf.as_mut_ptr().cast(), sin) };
        core::mem::size_of::<sockaddr_in>()
    };
    // SAFETY: the caller gave `*len` writable bytes at `out`; we copy at most that.
    unsafe {
        let room = (*len as usize).min(size);
        core::ptr::copy_nonoverlapping(buf.as_ptr(), out.cast::<u8>(), room);
        *len = size as socklen_t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(a: &str, v6: bool) -> (Parsed, socklen_t) {
        let a: SocketAddr = a.parse().unwrap();
        let mut storage: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
        let mut len = core::mem::size_of::<libc::sockaddr_storage>() as socklen_t;
        // SAFETY: storage is large enough for either family.
        unsafe {
            write(
                a,
                v6,
                (&mut storage as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        };
        // SAFETY: `len` bytes were written.
        let p = unsafe { read((&storage as *const libc::sockaddr_storage).cast(), len) }.unwrap();
        (p, len)
    }

    #[test]
    fn v4_and_mapped_addresses_roundtrip() {
        let v4: SocketAddr = "10.77.0.1:80".parse().unwrap();
        assert_eq!(roundtrip("10.77.0.1:80", false), (Parsed::V4(v4), 16));
        assert_eq!(roundtrip("10.77.0.1:80", true), (Parsed::V4(v4), 28));
        let any: SocketAddr = "0.0.0.0:8000".parse().unwrap();
        assert_eq!(roundtrip("0.0.0.0:8000", true), (Parsed::V4(any), 28));
    }

    #[test]
    fn ipv6_forms() {
        assert_eq!(v4_of("::".parse().unwrap()), Some(Ipv4Addr::UNSPECIFIED));
        assert_eq!(
            v4_of("::ffff:10.0.0.1".parse().unwrap()),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(v4_of("::1".parse().unwrap()), None);
        assert_eq!(v4_of("fe80::1".parse().unwrap()), None);
    }

    #[test]
    fn short_and_foreign_addresses_are_refused() {
        let mut sin: sockaddr_in = unsafe { core::mem::zeroed() };
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        let p = (&sin as *const sockaddr_in).cast();
        // SAFETY: `sin` is live and 16 bytes long.
        assert_eq!(unsafe { read(p, 8) }, Err(libc::EINVAL));
        assert_eq!(unsafe { read(core::ptr::null(), 16) }, Err(libc::EFAULT));
        sin.sin_family = libc::AF_UNIX as libc::sa_family_t;
        let p = (&sin as *const sockaddr_in).cast();
        // SAFETY: as above.
        assert_eq!(unsafe { read(p, 16) }, Err(libc::EAFNOSUPPORT));
    }

    #[test]
    fn a_short_buffer_is_truncated_and_told_the_full_size() {
        let mut out = [0xffu8; 4];
        let mut len: socklen_t = 4;
        // SAFETY: 4 writable bytes.
        unsafe {
            write(
                "10.0.0.1:1".parse().unwrap(),
                true,
                out.as_mut_ptr().cast(),
                &mut len,
            )
        };
        assert_eq!(len, 28);
        assert_eq!(u16::from_ne_bytes([out[0], out[1]]), libc::AF_INET6 as u16);
    }
}
