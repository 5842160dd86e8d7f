//! ARP for IPv4 over Ethernet (RFC 826). Other hardware/protocol pairs are `Unsupported`.

use super::{Error, EthernetAddress};
use core::net::Ipv4Addr;

/// ARP opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// Who has `target_protocol_addr`?
    Request,
    /// `source_protocol_addr` is at `source_hardware_addr`.
    Reply,
    /// Any other opcode (RARP and friends); counted and ignored.
    Unknown(u16),
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpRepr {
    /// Request or reply.
    pub operation: ArpOperation,
    /// Sender's MAC.
    pub source_hardware_addr: EthernetAddress,
    /// Sender's IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target's MAC (zero in a request).
    pub target_hardware_addr: EthernetAddress,
    /// Target's IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Length of an Ethernet/IPv4 ARP packet.
    pub const LEN: usize = 28;

    /// Parses an ARP packet (the Ethernet payload; trailing padding is ignored).
    ///
    /// # Errors
    /// `Truncated` if short, `Unsupported` for non-Ethernet/IPv4 ARP.
    pub fn parse(payload: &[u8]) -> Result<ArpRepr, Error> {
        let slice =
            etherparse::ArpPacketSlice::from_slice(payload).map_err(|_| Error::Truncated)?;
        let pkt = slice
            .to_packet()
            .try_eth_ipv4()
            .map_err(|_| Error::Unsupported)?;
        let operation = match pkt.operation {
            etherparse::ArpOperation::REQUEST => ArpOperation::Request,
            etherparse::ArpOperation::REPLY => ArpOperation::Reply,
            etherparse::ArpOperation(other) => ArpOperation::Unknown(other),
        };
        Ok(ArpRepr {
            operation,
            source_hardware_addr: EthernetAddress(pkt.sender_mac),
            source_protocol_addr: Ipv4Addr::from(pkt.sender_ipv4),
            target_hardware_addr: EthernetAddress(pkt.target_mac),
            target_protocol_addr: Ipv4Addr::from(pkt.target_ipv4),
        })
    }

    /// Bytes this packet takes on the wire.
    pub const fn buffer_len(&self) -> usize {
        Self::LEN
    }

    /// Writes the packet into the first [`ArpRepr::LEN`] bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) {
        let operation = match self.operation {
            ArpOperation::Request => etherparse::ArpOperation::REQUEST,
            ArpOperation::Reply => etherparse::ArpOperation::REPLY,
            ArpOperation::Unknown(op) => etherparse::ArpOperation(op),
        };
        let pkt = etherparse::ArpEthIpv4Packet {
            operation,
            sender_mac: self.source_hardware_addr.0,
            sender_ipv4: self.source_protocol_addr.octets(),
            target_mac: self.target_hardware_addr.0,
            target_ipv4: self.target_protocol_addr.octets(),
        };
        buf[..Self::LEN].copy_from_slice(&pkt.to_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{testdata, EthernetRepr};

    fn arp_payload(frame: &[u8]) -> &[u8] {
        EthernetRepr::parse(frame).unwrap().1
    }

    #[test]
    fn deconstruct_captured_request() {
        let repr = ArpRepr::parse(arp_payload(testdata::ARP_REQUEST)).unwrap();
        assert_eq!(repr.operation, ArpOperation::Request);
        assert_eq!(repr.source_hardware_addr, testdata::KERNEL_MAC);
        assert_eq!(repr.source_protocol_addr, testdata::KERNEL_IP);
        assert_eq!(repr.target_protocol_addr, testdata::PEER_IP);
    }

    #[test]
    fn construct_reply_matches_capture() {
        let repr = ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: testdata::PEER_MAC,
            source_protocol_addr: testdata::PEER_IP,
            target_hardware_addr: testdata::KERNEL_MAC,
            target_protocol_addr: testdata::KERNEL_IP,
        };
        let mut buf = [0u8; ArpRepr::LEN];
        repr.emit(&mut buf);
        assert_eq!(&buf[..], &arp_payload(testdata::ARP_REPLY)[..ArpRepr::LEN]);
        assert_eq!(ArpRepr::parse(&buf).unwrap(), repr);
    }

    #[test]
    fn non_ethernet_ipv4_is_unsupported() {
        let mut bytes = arp_payload(testdata::ARP_REQUEST).to_vec();
        bytes[1] = 6; // hardware type IEEE 802 instead of Ethernet
        assert_eq!(ArpRepr::parse(&bytes), Err(Error::Unsupported));
    }
}
