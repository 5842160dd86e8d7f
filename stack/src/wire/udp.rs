//! UDP headers (RFC 768) with the IPv4 or IPv6 (RFC 8200 §8.1) pseudo-header checksum.
//!
//! Over IPv6 the checksum is mandatory: a zero checksum field is refused on receipt
//! (RFC 8200 §8.1), and a computed zero is sent as 0xffff in both families.

use super::{checksum, Error, IpProtocol};
use core::net::IpAddr;

/// Length of a UDP header.
pub const UDP_HEADER_LEN: usize = 8;

/// The decoded UDP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl UdpRepr {
    /// Parses a datagram carried between `src` and `dst`, checking length and checksum.
    ///
    /// Over IPv4 a zero checksum means the sender did not compute one (RFC 768) and is
    /// accepted; over IPv6 it is an error (RFC 8200 §8.1).
    ///
    /// # Errors
    /// `Truncated`, `Malformed` (length field below 8) or `Checksum`.
    pub fn parse(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        segment: &[u8],
    ) -> Result<(UdpRepr, &[u8]), Error> {
        Self::parse_inner(Some((src.into(), dst.into())), segment)
    }

    /// Parses a datagram whose checksum an offloading link vouches for or left partial
    /// (`DATA_VALID`, `NEEDS_CSUM`): the length checks of [`parse`](Self::parse) only.
    ///
    /// # Errors
    /// `Truncated` or `Malformed`.
    pub fn parse_unverified(segment: &[u8]) -> Result<(UdpRepr, &[u8]), Error> {
        Self::parse_inner(None, segment)
    }

    fn parse_inner(
        addrs: Option<(IpAddr, IpAddr)>,
        segment: &[u8],
    ) -> Result<(UdpRepr, &[u8]), Error> {
        let slice = etherparse::UdpSlice::from_slice(segment).map_err(|_| Error::Truncated)?;
        let length = slice.length() as usize;
        if length < UDP_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if length > segment.len() {
            return Err(Error::Truncated);
        }
        if let Some((src, dst)) = addrs {
            let sum = slice.checksum();
            if sum == 0 && src.is_ipv6() {
                // RFC 8200 §8.1: "IPv6 receivers must discard UDP packets containing a
                // zero checksum".
                return Err(Error::Checksum);
            }
            if sum != 0 && checksum::pseudo(src, dst, IpProtocol::UDP.0, &segment[..length]) != 0 {
                return Err(Error::Checksum);
            }
        }
        let repr = UdpRepr {
            src_port: slice.source_port(),
            dst_port: slice.destination_port(),
        };
        Ok((repr, &segment[UDP_HEADER_LEN..length]))
    }

    /// Bytes the header takes.
    pub const fn header_len(&self) -> usize {
        UDP_HEADER_LEN
    }

    /// Writes the header into `buf` and computes the checksum over the payload already
    /// placed at `buf[UDP_HEADER_LEN..UDP_HEADER_LEN + payload_len]`, with the
    /// pseudo-header of the addresses' family.
    pub fn emit(
        &self,
        buf: &mut [u8],
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        payload_len: usize,
    ) {
        let len = UDP_HEADER_LEN + payload_len;
        let hdr = etherparse::UdpHeader {
            source_port: self.src_port,
            destination_port: self.dst_port,
            length: len as u16,
            checksum: 0,
        };
        buf[..UDP_HEADER_LEN].copy_from_slice(&hdr.to_bytes());
        let mut sum = checksum::pseudo(src, dst, IpProtocol::UDP.0, &buf[..len]);
        if sum == 0 {
            // RFC 768 (and RFC 8200 §8.1 for IPv6): a computed zero is sent as all ones;
            // zero means "no checksum".
            sum = 0xffff;
        }
        buf[6..8].copy_from_slice(&sum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{testdata, EthernetRepr, Ipv4Repr};
    use core::net::{Ipv4Addr, Ipv6Addr};

    fn udp(frame: &[u8]) -> (Ipv4Repr, &[u8]) {
        let (_, ip) = EthernetRepr::parse(frame).unwrap();
        Ipv4Repr::parse(ip).unwrap()
    }

    #[test]
    fn deconstruct_and_construct_captured_datagram() {
        let (ip, seg) = udp(testdata::UDP_DATAGRAM);
        let (repr, payload) = UdpRepr::parse(ip.src_addr, ip.dst_addr, seg).unwrap();
        assert_eq!((repr.src_port, repr.dst_port), (42823, 5002));
        assert_eq!(payload, b"hello\n");
        let mut buf = vec![0u8; seg.len()];
        buf[UDP_HEADER_LEN..].copy_from_slice(payload);
        repr.emit(&mut buf, ip.src_addr, ip.dst_addr, payload.len());
        assert_eq!(&buf[..], seg);
    }

    #[test]
    fn checksum_covers_pseudo_header() {
        let (ip, seg) = udp(testdata::UDP_DATAGRAM);
        assert_eq!(
            UdpRepr::parse(ip.src_addr, Ipv4Addr::new(10, 0, 0, 3), seg).unwrap_err(),
            Error::Checksum
        );
        let mut zero = seg.to_vec();
        zero[6] = 0;
        zero[7] = 0;
        assert!(UdpRepr::parse(ip.src_addr, Ipv4Addr::new(10, 0, 0, 3), &zero).is_ok());
    }

    #[test]
    fn lying_length_field() {
        let (ip, seg) = udp(testdata::UDP_DATAGRAM);
        let mut bad = seg.to_vec();
        bad[4..6].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(
            UdpRepr::parse(ip.src_addr, ip.dst_addr, &bad).unwrap_err(),
            Error::Truncated
        );
        bad[4..6].copy_from_slice(&3u16.to_be_bytes());
        assert!(UdpRepr::parse(ip.src_addr, ip.dst_addr, &bad).is_err());
    }

    #[test]
    fn ipv6_checksum_is_mandatory_and_covers_the_pseudo_header() {
        let (s, d) = (
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2),
        );
        let repr = UdpRepr {
            src_port: 5353,
            dst_port: 53,
        };
        let mut buf = [0u8; UDP_HEADER_LEN + 5];
        buf[UDP_HEADER_LEN..].copy_from_slice(b"hello");
        repr.emit(&mut buf, s, d, 5);
        let (got, payload) = UdpRepr::parse(s, d, &buf).unwrap();
        assert_eq!((got, payload), (repr, &b"hello"[..]));
        assert_eq!(UdpRepr::parse(d, d, &buf), Err(Error::Checksum));
        let mut zero = buf;
        zero[6..8].copy_from_slice(&[0, 0]);
        assert_eq!(UdpRepr::parse(s, d, &zero), Err(Error::Checksum));
        // The same bytes over IPv4 would be accepted: zero means "not computed" there.
        let v4 = Ipv4Addr::new(10, 0, 0, 1);
        assert!(UdpRepr::parse(v4, v4, &zero).is_ok());
    }

    #[test]
    fn a_computed_zero_is_sent_as_all_ones() {
        // Search a payload whose checksum folds to zero over the IPv6 pseudo-header.
        let (s, d) = (Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST);
        let repr = UdpRepr {
            src_port: 1,
            dst_port: 2,
        };
        let mut found = false;
        for x in 0..=u16::MAX {
            let mut buf = [0u8; UDP_HEADER_LEN + 2];
            buf[UDP_HEADER_LEN..].copy_from_slice(&x.to_be_bytes());
            repr.emit(&mut buf, s, d, 2);
            assert_ne!(&buf[6..8], &[0, 0]);
            if buf[6..8] == [0xff, 0xff] {
                found = true;
                assert!(UdpRepr::parse(s, d, &buf).is_ok());
            }
        }
        assert!(found, "some payload sums to zero");
    }
}
