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
pub mod checksum;
mod ethernet;
mod icmp;
mod icmpv6;
mod ipv4;
mod ipv6;
pub mod ndp;
pub mod pretty;
mod tcp;
#[cfg(test)]
pub(crate) mod testdata;
#[cfg(test)]
pub(crate) mod testdata6;
mod udp;

pub use arp::{ArpOperation, ArpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetRepr, ETHERNET_HEADER_LEN};
pub use icmp::{IcmpRepr, DST_UNREACHABLE_PORT, DST_UNREACHABLE_PROTOCOL, ICMP_HEADER_LEN};
pub use icmpv6::{
    Icmpv6Repr, ICMPV6_HEADER_LEN, ICMPV6_UNREACH_ADDRESS, ICMPV6_UNREACH_PORT,
    ICMPV6_UNREACH_PROHIBITED,
};
pub use ipv4::{IpProtocol, Ipv4Cidr, Ipv4Repr, IPV4_HEADER_LEN, IPV4_MIN_MTU};
pub use ipv6::{
    eui64_address, eui64_interface_id, is_link_local, link_local_address, multicast_mac,
    solicited_node, walk_ext_headers, ExtError, Ipv6Cidr, Ipv6FragRepr, Ipv6Headers, Ipv6Repr,
    ALL_MLDV2_ROUTERS, ALL_NODES, ALL_ROUTERS, IPV6_FRAG_HEADER_LEN, IPV6_HEADER_LEN, IPV6_MIN_MTU,
};
pub use ndp::{Mld2Report, NdpRepr, PrefixInfo};
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
        if eth.ethertype == EtherType::IPV6 {
            if let Ok((ip, payload)) = Ipv6Repr::parse(payload) {
                if let Ok(h) = walk_ext_headers(ip.next_header, payload, 40, 6, true) {
                    if h.protocol == IpProtocol::ICMPV6 {
                        let _ = Icmpv6Repr::parse(ip.src_addr, ip.dst_addr, &payload[h.offset..]);
                    }
                }
            }
            return;
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
    fn ipv6_frames_survive_every_prefix_and_mutation() {
        for frame in testdata6::ALL {
            for len in 0..=frame.len() {
                parse_all(&frame[..len]);
            }
            for pos in 0..frame.len() {
                let mut f = frame.to_vec();
                f[pos] ^= 0xff;
                parse_all(&f);
            }
        }
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
