//! Ethernet II frames (IEEE 802.3 with an EtherType, as used by IPv4 and ARP).

use super::Error;
use core::fmt;
use core::str::FromStr;

/// Length of an Ethernet II header: two addresses and the EtherType.
pub const ETHERNET_HEADER_LEN: usize = 14;

/// A 48-bit IEEE MAC address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// True for the broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// True when the group bit is set (multicast or broadcast).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True for an address a NIC may own: not multicast and not all zeros.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && self.0 != [0; 6]
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for EthernetAddress {
    type Err = Error;

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-` separators).
    fn from_str(s: &str) -> Result<Self, Error> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let part = parts.next().ok_or(Error::Malformed)?;
            if part.is_empty() || part.len() > 2 {
                return Err(Error::Malformed);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| Error::Malformed)?;
        }
        if parts.next().is_some() {
            return Err(Error::Malformed);
        }
        Ok(EthernetAddress(out))
    }
}

/// An EtherType value (IEEE 802 numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    /// Internet Protocol version 4.
    pub const IPV4: EtherType = EtherType(0x0800);
    /// Address Resolution Protocol.
    pub const ARP: EtherType = EtherType(0x0806);
    /// Internet Protocol version 6 (recognised for counting, not handled).
    pub const IPV6: EtherType = EtherType(0x86dd);
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EtherType::IPV4 => f.write_str("IPv4"),
            EtherType::ARP => f.write_str("ARP"),
            EtherType::IPV6 => f.write_str("IPv6"),
            EtherType(v) => write!(f, "0x{v:04x}"),
        }
    }
}

/// The decoded Ethernet II header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Source MAC.
    pub src_addr: EthernetAddress,
    /// Destination MAC.
    pub dst_addr: EthernetAddress,
    /// What the payload is.
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Splits a frame into its header and payload.
    ///
    /// # Errors
    /// [`Error::Truncated`] when the frame is shorter than a header.
    #[inline]
    pub fn parse(frame: &[u8]) -> Result<(EthernetRepr, &[u8]), Error> {
        let hdr =
            etherparse::Ethernet2HeaderSlice::from_slice(frame).map_err(|_| Error::Truncated)?;
        let repr = EthernetRepr {
            src_addr: EthernetAddress(hdr.source()),
            dst_addr: EthernetAddress(hdr.destination()),
            ethertype: EtherType(hdr.ether_type().0),
        };
        Ok((repr, &frame[ETHERNET_HEADER_LEN..]))
    }

    /// Bytes this header takes on the wire.
    pub const fn buffer_len(&self) -> usize {
        ETHERNET_HEADER_LEN
    }

    /// Writes the header into the first [`ETHERNET_HEADER_LEN`] bytes of `buf`.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        let hdr = etherparse::Ethernet2Header {
            source: self.src_addr.0,
            destination: self.dst_addr.0,
            ether_type: etherparse::EtherType(self.ethertype.0),
        };
        buf[..ETHERNET_HEADER_LEN].copy_from_slice(&hdr.to_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata;

    #[test]
    fn parse_captured_arp_request_header() {
        let (repr, payload) = EthernetRepr::parse(testdata::ARP_REQUEST).unwrap();
        assert_eq!(repr.dst_addr, EthernetAddress::BROADCAST);
        assert_eq!(repr.src_addr, testdata::KERNEL_MAC);
        assert_eq!(repr.ethertype, EtherType::ARP);
        assert_eq!(payload.len(), testdata::ARP_REQUEST.len() - 14);
    }

    #[test]
    fn emit_then_parse_round_trips() {
        let repr = EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ethertype: EtherType::IPV4,
        };
        let mut buf = [0u8; 14];
        repr.emit(&mut buf);
        assert_eq!(buf, [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        assert_eq!(EthernetRepr::parse(&buf).unwrap().0, repr);
    }

    #[test]
    fn truncated_header_is_an_error() {
        for len in 0..14 {
            assert_eq!(
                EthernetRepr::parse(&testdata::ARP_REQUEST[..len]).unwrap_err(),
                Error::Truncated
            );
        }
    }

    #[test]
    fn mac_parse_and_display() {
        let mac: EthernetAddress = "02:00:5e:10:00:01".parse().unwrap();
        assert_eq!(mac.to_string(), "02:00:5e:10:00:01");
        assert!(mac.is_unicast());
        assert!("02:00:5e:10:00".parse::<EthernetAddress>().is_err());
        assert!("02:00:5e:10:00:01:02".parse::<EthernetAddress>().is_err());
        assert!("zz:00:5e:10:00:01".parse::<EthernetAddress>().is_err());
    }
}
