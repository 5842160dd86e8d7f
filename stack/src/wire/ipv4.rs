//! IPv4 headers (RFC 791), addresses with prefixes, and protocol numbers.

use super::{checksum, Error};
use core::fmt;
use core::net::Ipv4Addr;
use core::str::FromStr;

/// Length of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;

/// The smallest MTU every IPv4 host must accept (RFC 791: 68 octets).
pub const IPV4_MIN_MTU: usize = 68;

/// An IP protocol number (IANA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    /// Internet Control Message Protocol.
    pub const ICMP: IpProtocol = IpProtocol(1);
    /// Transmission Control Protocol.
    pub const TCP: IpProtocol = IpProtocol(6);
    /// User Datagram Protocol.
    pub const UDP: IpProtocol = IpProtocol(17);
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IpProtocol::ICMP => f.write_str("ICMP"),
            IpProtocol::TCP => f.write_str("TCP"),
            IpProtocol::UDP => f.write_str("UDP"),
            IpProtocol(p) => write!(f, "proto-{p}"),
        }
    }
}

/// An IPv4 address with a prefix length, e.g. `10.0.0.2/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    address: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Cidr {
    /// An address and a prefix length.
    ///
    /// # Panics
    /// If `prefix_len > 32`.
    pub fn new(address: Ipv4Addr, prefix_len: u8) -> Ipv4Cidr {
        assert!(prefix_len <= 32, "prefix length {prefix_len} > 32");
        Ipv4Cidr {
            address,
            prefix_len,
        }
    }

    /// The address.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The netmask as an address.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    fn mask(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix_len)
        }
    }

    /// The directed broadcast address of the subnet.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.address) | !self.mask())
    }

    /// True when `addr` lies in this subnet.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        (u32::from(addr) ^ u32::from(self.address)) & self.mask() == 0
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = Error;

    /// Parses `a.b.c.d/len`.
    fn from_str(s: &str) -> Result<Self, Error> {
        let (addr, len) = s.split_once('/').ok_or(Error::Malformed)?;
        let address: Ipv4Addr = addr.parse().map_err(|_| Error::Malformed)?;
        let prefix_len: u8 = len.parse().map_err(|_| Error::Malformed)?;
        if prefix_len > 32 {
            return Err(Error::Malformed);
        }
        Ok(Ipv4Cidr::new(address, prefix_len))
    }
}

/// The decoded fields of an IPv4 header that the stack acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: IpProtocol,
    /// Time to live.
    pub ttl: u8,
    /// DSCP and ECN byte (the old TOS).
    pub tos: u8,
    /// Identification, shared by the fragments of one datagram.
    pub ident: u16,
    /// Don't Fragment.
    pub dont_frag: bool,
    /// More Fragments.
    pub more_frags: bool,
    /// Offset of this fragment's payload in the datagram, in bytes (a multiple of 8).
    pub frag_offset: u16,
    /// Payload bytes carried by this packet (total length minus header length).
    pub payload_len: usize,
}

impl Ipv4Repr {
    /// True when this packet is a fragment (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.more_frags || self.frag_offset != 0
    }

    /// Parses a packet, verifying the header checksum, and returns the payload.
    ///
    /// Bytes past the total length (Ethernet padding) are ignored. Options are
    /// accepted and skipped (RFC 1122 §3.2.1.8 lets a host ignore the ones it does
    /// not implement).
    ///
    /// # Errors
    /// `Truncated`, `Malformed` (version, IHL or total length wrong) or `Checksum`.
    #[inline]
    pub fn parse(packet: &[u8]) -> Result<(Ipv4Repr, &[u8]), Error> {
        // Nearly every packet: version 4, no options, whole. Read directly; anything
        // else takes etherparse's validation below.
        if let Some(&[0x45, tos, l0, l1, i0, i1, f0, f1, ttl, protocol]) = packet.get(..10) {
            let total_len = usize::from(u16::from_be_bytes([l0, l1]));
            if (IPV4_HEADER_LEN..=packet.len()).contains(&total_len) {
                let hdr = &packet[..IPV4_HEADER_LEN];
                if checksum::of(hdr) != 0 {
                    return Err(Error::Checksum);
                }
                let flags_frag = u16::from_be_bytes([f0, f1]);
                let repr = Ipv4Repr {
                    src_addr: Ipv4Addr::new(hdr[12], hdr[13], hdr[14], hdr[15]),
                    dst_addr: Ipv4Addr::new(hdr[16], hdr[17], hdr[18], hdr[19]),
                    protocol: IpProtocol(protocol),
                    ttl,
                    tos,
                    ident: u16::from_be_bytes([i0, i1]),
                    dont_frag: flags_frag & 0x4000 != 0,
                    more_frags: flags_frag & 0x2000 != 0,
                    frag_offset: (flags_frag & 0x1fff) * 8,
                    payload_len: total_len - IPV4_HEADER_LEN,
                };
                if repr.frag_offset as usize + repr.payload_len > 65535 {
                    return Err(Error::Malformed);
                }
                return Ok((repr, &packet[IPV4_HEADER_LEN..total_len]));
            }
        }
        Self::parse_general(packet)
    }

    /// `parse` for any packet, through etherparse's header validation.
    fn parse_general(packet: &[u8]) -> Result<(Ipv4Repr, &[u8]), Error> {
        use etherparse::err::ipv4::{HeaderError, HeaderSliceError};
        let hdr = etherparse::Ipv4HeaderSlice::from_slice(packet).map_err(|e| match e {
            HeaderSliceError::Len(_) => Error::Truncated,
            HeaderSliceError::Content(HeaderError::UnexpectedVersion { .. }) => Error::Malformed,
            HeaderSliceError::Content(_) => Error::Malformed,
        })?;
        let header_len = hdr.slice().len();
        let total_len = hdr.total_len() as usize;
        if total_len < header_len {
            return Err(Error::Malformed);
        }
        if total_len > packet.len() {
            return Err(Error::Truncated);
        }
        if checksum::of(hdr.slice()) != 0 {
            return Err(Error::Checksum);
        }
        let repr = Ipv4Repr {
            src_addr: hdr.source_addr(),
            dst_addr: hdr.destination_addr(),
            protocol: IpProtocol(hdr.protocol().0),
            ttl: hdr.ttl(),
            tos: packet[1],
            ident: hdr.identification(),
            dont_frag: hdr.dont_fragment(),
            more_frags: hdr.more_fragments(),
            frag_offset: hdr.fragments_offset().value() * 8,
            payload_len: total_len - header_len,
        };
        if repr.frag_offset as usize + repr.payload_len > 65535 {
            return Err(Error::Malformed);
        }
        Ok((repr, &packet[header_len..total_len]))
    }

    /// Parses the IP header quoted inside an ICMP error (RFC 792: the header plus the
    /// first 64 bits of data). The quote is truncated by design, so neither the total
    /// length nor the checksum is checked; `payload_len` is what the header claims.
    ///
    /// # Errors
    /// `Truncated` or `Malformed` when even the header is not there.
    pub fn parse_quoted(quote: &[u8]) -> Result<(Ipv4Repr, &[u8]), Error> {
        let hdr = etherparse::Ipv4HeaderSlice::from_slice(quote).map_err(|e| match e {
            etherparse::err::ipv4::HeaderSliceError::Len(_) => Error::Truncated,
            etherparse::err::ipv4::HeaderSliceError::Content(_) => Error::Malformed,
        })?;
        let header_len = hdr.slice().len();
        let repr = Ipv4Repr {
            src_addr: hdr.source_addr(),
            dst_addr: hdr.destination_addr(),
            protocol: IpProtocol(hdr.protocol().0),
            ttl: hdr.ttl(),
            tos: quote[1],
            ident: hdr.identification(),
            dont_frag: hdr.dont_fragment(),
            more_frags: hdr.more_fragments(),
            frag_offset: hdr.fragments_offset().value() * 8,
            payload_len: (hdr.total_len() as usize).saturating_sub(header_len),
        };
        Ok((repr, &quote[header_len..]))
    }

    /// Bytes the header takes when emitted (never with options).
    pub const fn buffer_len(&self) -> usize {
        IPV4_HEADER_LEN
    }

    /// Writes a 20-byte header with a correct checksum into `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`IPV4_HEADER_LEN`] or the packet exceeds 65535 bytes.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        let total_len = IPV4_HEADER_LEN + self.payload_len;
        assert!(total_len <= 65535, "IPv4 packet of {total_len} bytes");
        let flags_frag = (u16::from(self.dont_frag) << 14)
            | (u16::from(self.more_frags) << 13)
            | (self.frag_offset / 8);
        let b = &mut buf[..IPV4_HEADER_LEN];
        b[0] = 0x45;
        b[1] = self.tos;
        b[2..4].copy_from_slice(&(total_len as u16).to_be_bytes());
        b[4..6].copy_from_slice(&self.ident.to_be_bytes());
        b[6..8].copy_from_slice(&flags_frag.to_be_bytes());
        b[8] = self.ttl;
        b[9] = self.protocol.0;
        b[10..12].copy_from_slice(&[0, 0]);
        b[12..16].copy_from_slice(&self.src_addr.octets());
        b[16..20].copy_from_slice(&self.dst_addr.octets());
        let sum = checksum::of(b);
        b[10..12].copy_from_slice(&sum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{testdata, EthernetRepr};

    fn ip(frame: &[u8]) -> &[u8] {
        EthernetRepr::parse(frame).unwrap().1
    }

    #[test]
    fn deconstruct_captured_echo_request() {
        let (repr, payload) = Ipv4Repr::parse(ip(testdata::ECHO_REQUEST)).unwrap();
        assert_eq!(repr.src_addr, testdata::KERNEL_IP);
        assert_eq!(repr.dst_addr, testdata::PEER_IP);
        assert_eq!(repr.protocol, IpProtocol::ICMP);
        assert_eq!(repr.ttl, 64);
        assert!(repr.dont_frag && !repr.is_fragment());
        assert_eq!(payload.len(), 32);
    }

    #[test]
    fn deconstruct_captured_fragments() {
        let (first, p1) = Ipv4Repr::parse(ip(testdata::FRAG_FIRST)).unwrap();
        let (last, p2) = Ipv4Repr::parse(ip(testdata::FRAG_LAST)).unwrap();
        assert!(first.more_frags && first.frag_offset == 0);
        assert!(!last.more_frags && last.frag_offset == 1480);
        assert_eq!(first.ident, last.ident);
        assert_eq!(p1.len() + p2.len(), 2008);
    }

    #[test]
    fn construct_reproduces_captured_header() {
        let packet = ip(testdata::ECHO_REPLY);
        let (repr, _) = Ipv4Repr::parse(packet).unwrap();
        let mut buf = [0u8; IPV4_HEADER_LEN];
        repr.emit(&mut buf);
        assert_eq!(&buf[..], &packet[..IPV4_HEADER_LEN]);
    }

    proptest::proptest! {
        /// The direct read of an option-less header agrees with etherparse's
        /// validation, on valid headers (checksum fixed up) and on noise.
        #[test]
        fn fast_parse_matches_etherparse(
            mut packet in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
            valid: bool,
            total in 0u16..100,
        ) {
            if valid && packet.len() >= IPV4_HEADER_LEN {
                packet[0] = 0x45;
                packet[2..4].copy_from_slice(&total.to_be_bytes());
                packet[10..12].copy_from_slice(&[0, 0]);
                let sum = checksum::of(&packet[..IPV4_HEADER_LEN]);
                packet[10..12].copy_from_slice(&sum.to_be_bytes());
            }
            proptest::prop_assert_eq!(Ipv4Repr::parse(&packet), Ipv4Repr::parse_general(&packet));
        }
    }

    #[test]
    fn bad_checksum_is_rejected() {
        let mut packet = ip(testdata::ECHO_REQUEST).to_vec();
        packet[10] ^= 0xff;
        assert_eq!(Ipv4Repr::parse(&packet), Err(Error::Checksum));
    }

    #[test]
    fn lying_total_length_is_rejected() {
        let mut packet = ip(testdata::ECHO_REQUEST).to_vec();
        packet[2..4].copy_from_slice(&2000u16.to_be_bytes());
        assert_eq!(Ipv4Repr::parse(&packet), Err(Error::Truncated));
        packet[2..4].copy_from_slice(&10u16.to_be_bytes());
        assert!(Ipv4Repr::parse(&packet).is_err());
    }

    #[test]
    fn padding_after_total_length_is_ignored() {
        let mut packet = ip(testdata::ECHO_REQUEST).to_vec();
        packet.extend_from_slice(&[0; 10]);
        let (_, payload) = Ipv4Repr::parse(&packet).unwrap();
        assert_eq!(payload.len(), 32);
    }

    #[test]
    fn quoted_header_in_port_unreachable() {
        let (_, icmp) = Ipv4Repr::parse(ip(testdata::ICMP_PORT_UNREACHABLE)).unwrap();
        let (quoted, rest) = Ipv4Repr::parse_quoted(&icmp[8..]).unwrap();
        assert_eq!(quoted.protocol, IpProtocol::UDP);
        assert_eq!(quoted.src_addr, testdata::KERNEL_IP);
        assert_eq!(u16::from_be_bytes([rest[2], rest[3]]), 5009);
        assert!(Ipv4Repr::parse_quoted(&icmp[8..20]).is_err());
    }

    #[test]
    fn cidr_parse_contains_broadcast() {
        let c: Ipv4Cidr = "10.0.0.2/24".parse().unwrap();
        assert!(c.contains(Ipv4Addr::new(10, 0, 0, 200)));
        assert!(!c.contains(Ipv4Addr::new(10, 0, 1, 1)));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 0, 0, 255));
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!("10.0.0.2/33".parse::<Ipv4Cidr>().is_err());
        assert!("10.0.0.2".parse::<Ipv4Cidr>().is_err());
        let all: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(8, 8, 8, 8)));
    }
}
