//! `struct sockaddr` to and from `SocketAddr`. Both families are native: a
//! `sockaddr_in6` becomes a `SocketAddr::V6` with its flow label and scope id, and the
//! stack (`ustack_socket::family`) decides what it means to the socket: v4-mapped
//! addresses (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2) reach IPv4 peers from a dual-stack
//! `AF_INET6` socket, and every family mismatch gets Linux's errno there.

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use libc::{c_int, sockaddr, sockaddr_in, sockaddr_in6, socklen_t};

/// The size of an RFC 2133 `sockaddr_in6` (without `sin6_scope_id`): Linux's
/// `SIN6_LEN_RFC2133`, the least it accepts for AF_INET6.
const SIN6_LEN_RFC2133: usize = 24;

/// An address from the program.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// AF_INET or AF_INET6.
    Addr(SocketAddr),
    /// AF_UNSPEC (connect: dissolve the association).
    Unspec,
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
            Ok(Parsed::Addr(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            ))))
        }
        libc::AF_INET6 => {
            if (len as usize) < SIN6_LEN_RFC2133 {
                return Err(libc::EINVAL);
            }
            // An RFC 2133 sockaddr_in6 has no scope id: read what is there into a
            // zeroed full one.
            let mut bytes = [0u8; core::mem::size_of::<sockaddr_in6>()];
            let n = (len as usize).min(bytes.len());
            // SAFETY: `len` (at least `n`) bytes are readable at `addr`.
            unsafe { core::ptr::copy_nonoverlapping(addr.cast::<u8>(), bytes.as_mut_ptr(), n) };
            // SAFETY: `bytes` holds a sockaddr_in6's worth of plain data.
            let sin6: sockaddr_in6 = unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast()) };
            Ok(Parsed::Addr(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            ))))
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
    // SAFETY: the caller's contract.
    match unsafe { read(addr, len) } {
        Ok(Parsed::Addr(SocketAddr::V4(a))) => a.ip().is_loopback(),
        Ok(Parsed::Addr(SocketAddr::V6(a))) => {
            a.ip().is_loopback() || a.ip().to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        _ => false,
    }
}

/// Writes `a` at `out` in the family of the socket (`v6`: AF_INET6, an IPv4 address
/// v4-mapped), truncated to `*len` bytes as Linux does, and sets `*len` to the full
/// size. Null pointers are skipped (accept(2) with no address wanted).
///
/// # Safety
/// `out` and `len` are null or valid; `*len` bytes at `out` are writable.
pub unsafe fn write(a: SocketAddr, v6: bool, out: *mut sockaddr, len: *mut socklen_t) {
    if out.is_null() || len.is_null() {
        return;
    }
    let a = match a {
        SocketAddr::V4(a) if v6 => {
            SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0))
        }
        a => a,
    };
    let mut buf = [0u8; core::mem::size_of::<sockaddr_in6>()];
    let size = match a {
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_in6 is plain data; all-zero is valid.
            let mut sin6: sockaddr_in6 = unsafe { core::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            // SAFETY: `buf` has room for a sockaddr_in6.
            unsafe { core::ptr::write_unaligned(buf.as_mut_ptr().cast(), sin6) };
            core::mem::size_of::<sockaddr_in6>()
        }
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_in is plain data; all-zero is valid.
            let mut sin: sockaddr_in = unsafe { core::mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            // SAFETY: `buf` has room for a sockaddr_in.
            unsafe { core::ptr::write_unaligned(buf.as_mut_ptr().cast(), sin) };
            core::mem::size_of::<sockaddr_in>()
        }
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
    fn v4_mapped_and_native_v6_addresses_roundtrip() {
        let v4: SocketAddr = "10.77.0.1:80".parse().unwrap();
        assert_eq!(roundtrip("10.77.0.1:80", false), (Parsed::Addr(v4), 16));
        let mapped: SocketAddr = "[::ffff:10.77.0.1]:80".parse().unwrap();
        assert_eq!(roundtrip("10.77.0.1:80", true), (Parsed::Addr(mapped), 28));
        let native = SocketAddr::V6(SocketAddrV6::new(
            "fe80::1".parse().unwrap(),
            443,
            0x12345,
            7,
        ));
        assert_eq!(
            roundtrip(&native.to_string(), true).1,
            28,
            "written as a sockaddr_in6"
        );
        let mut storage: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
        let mut len = core::mem::size_of::<libc::sockaddr_storage>() as socklen_t;
        // SAFETY: storage is large enough.
        unsafe {
            write(
                native,
                true,
                (&mut storage as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        };
        // SAFETY: `len` bytes were written.
        let back = unsafe { read((&storage as *const libc::sockaddr_storage).cast(), len) };
        assert_eq!(
            back,
            Ok(Parsed::Addr(native)),
            "flow label and scope id kept"
        );
    }

    #[test]
    fn rfc2133_sockaddr_in6_is_taken_without_scope_and_shorter_is_einval() {
        let a = SocketAddr::V6(SocketAddrV6::new("fd00::5".parse().unwrap(), 9, 0, 3));
        let mut storage: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
        let mut len = core::mem::size_of::<libc::sockaddr_storage>() as socklen_t;
        // SAFETY: storage is large enough.
        unsafe {
            write(
                a,
                true,
                (&mut storage as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        };
        let p = (&storage as *const libc::sockaddr_storage).cast();
        // SAFETY: 28 bytes were written; shorter reads stay inside them.
        assert_eq!(
            unsafe { read(p, 24) },
            Ok(Parsed::Addr(SocketAddr::V6(SocketAddrV6::new(
                "fd00::5".parse().unwrap(),
                9,
                0,
                0
            ))))
        );
        // SAFETY: as above.
        assert_eq!(unsafe { read(p, 23) }, Err(libc::EINVAL));
        // SAFETY: as above.
        assert!(!unsafe { is_loopback(p, 28) });
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
