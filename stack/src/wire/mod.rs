//! Wire formats: a thin layer over etherparse that turns untrusted bytes into narrow
//! `Repr`s and back.
//!
//! Invariants:
//! - Parsing never panics, whatever the input; every malformed or truncated input
//!   returns an [`Error`]. A property test feeds every prefix of real frames.
//! - `emit` writes into a caller-provided buffer that is at least `buffer_len()` bytes
//!   long (it panics otherwise: that is a bug in the caller, never wire input).
//! - No etherparse type escapes this module: the rest of the stack sees only `Repr`s.
//!
//! This module imports nothing else from the crate.

mod arp;
mod ethernet;
mod icmp;
mod ipv4;
pub mod pretty;
mod tcp;
#[cfg(test)]
pub(crate) mod testdata;
mod udp;

pub use arp::{ArpOperation, ArpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetRepr, ETHERNET_HEADER_LEN};
pub use icmp::{IcmpRepr, DST_UNREACHABLE_PORT, DST_UNREACHABLE_PROTOCOL, ICMP_HEADER_LEN};
pub use ipv4::{IpProtocol, Ipv4Cidr, Ipv4Repr, IPV4_HEADER_LEN, IPV4_MIN_MTU};
pub use tcp::{SeqNumber, TcpFlags, TcpOptions, TcpRepr, TCP_HEADER_LEN, TCP_MAX_OPTIONS_LEN};
pub use udp::{UdpRepr, UDP_HEADER_LEN};

use core::fmt;

/// Why a packet could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// Shorter than its headers or length fields say.
    Truncated,
    /// A field holds a value the format does not allow.
    Malformed,
    /// The checksum does not match the contents.
    Checksum,
    /// Well formed, but a kind this stack does not handle (e.g. IPv4 options it will not parse).
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
            Error::Checksum => "bad checksum",
            Error::Unsupported => "unsupported",
        })
    }
}

impl std::error::Error for Error {}

/// Internet checksum (RFC 1071) helpers built on etherparse's 16-bit word summer.
pub mod checksum {
    use core::net::Ipv4Addr;
    use etherparse::checksum::Sum16BitWords;

    /// Ones-complement checksum of `data`; 0 means a received buffer (checksum included) verifies.
    pub fn of(data: &[u8]) -> u16 {
        Sum16BitWords::new()
            .add_slice(data)
            .ones_complement()
            .to_be()
    }

    /// The folded, uncomplemented sum of the IPv4 pseudo-header of a `len`-byte
    /// transport segment: what a sender leaves in the checksum field for a device that
    /// finishes the checksum (virtio-net `NEEDS_CSUM`, Linux `CHECKSUM_PARTIAL`).
    pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: usize) -> u16 {
        !Sum16BitWords::new()
            .add_4bytes(src.octets())
            .add_4bytes(dst.octets())
            .add_2bytes([0, protocol])
            .add_2bytes((len as u16).to_be_bytes())
            .ones_complement()
            .to_be()
    }

    /// Checksum over the IPv4 pseudo-header (RFC 793 §3.1) and `data`.
    pub fn pseudo(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, data: &[u8]) -> u16 {
        Sum16BitWords::new()
            .add_4bytes(src.octets())
            .add_4bytes(dst.octets())
            .add_2bytes([0, protocol])
            .add_2bytes((data.len() as u16).to_be_bytes())
            .add_slice(data)
            .ones_complement()
            .to_be()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 §3 example words: 0x0001 0xf203 0xf4f5 0xf6f7 sum to 0xddf2 (complement 0x220d).
        assert_eq!(
            checksum::of(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
    }
}

#[cfg(test)]
mod robustness {
    use super::*;
    use proptest::prelude::*;

    /// Runs every parser of the path a frame would take; must never panic.
    fn parse_all(frame: &[u8]) {
        let Ok((eth, payload)) = EthernetRepr::parse(frame) else {
            return;
        };
        if eth.ethertype == EtherType::ARP {
            let _ = ArpRepr::parse(payload);
        }
        let Ok((ip, payload)) = Ipv4Repr::parse(payload) else {
            return;
        };
        match ip.protocol {
            IpProtocol::TCP => drop(TcpRepr::parse(ip.src_addr, ip.dst_addr, payload)),
            IpProtocol::UDP => drop(UdpRepr::parse(ip.src_addr, ip.dst_addr, payload)),
            IpProtocol::ICMP => drop(IcmpRepr::parse(payload)),
            _ => {}
        }
        let _ = pretty::summarize(frame);
    }

    #[test]
    fn every_truncated_prefix_of_a_real_frame_fails_cleanly() {
        for frame in testdata::ALL {
            for len in 0..frame.len() {
                let prefix = &frame[..len];
                parse_all(prefix);
                // The innermost layer that the full frame parses must reject the prefix.
                if len < ETHERNET_HEADER_LEN {
                    assert!(EthernetRepr::parse(prefix).is_err());
                    continue;
                }
                let (eth, payload) = EthernetRepr::parse(prefix).unwrap();
                match eth.ethertype {
                    EtherType::ARP if payload.len() < ArpRepr::LEN => {
                        assert!(ArpRepr::parse(payload).is_err())
                    }
                    EtherType::IPV4 => assert!(
                        Ipv4Repr::parse(payload).is_err(),
                        "a {len}-byte prefix of a {}-byte IPv4 frame parsed",
                        frame.len()
                    ),
                    _ => {}
                }
            }
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
            parse_all(&bytes);
        }

        #[test]
        fn mutated_real_frames_never_panic(idx in 0usize..13, flips in proptest::collection::vec((0usize..1600, any::<u8>()), 1..8)) {
            let mut frame = testdata::ALL[idx % testdata::ALL.len()].to_vec();
            for (pos, val) in flips {
                let n = frame.len();
                frame[pos % n] = val;
            }
            parse_all(&frame);
        }
    }
}
