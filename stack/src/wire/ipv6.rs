//! IPv6 headers (RFC 8200 §3), extension headers (§4), addresses with prefixes, and the
//! address forms the network layer derives (EUI-64 interface identifiers, RFC 4291
//! Appendix A; solicited-node multicast groups, RFC 4291 §2.7.1).
//!
//! The fixed header goes through etherparse's validation once; extension headers are
//! walked here rather than with etherparse's `Ipv6Extensions`, because the receiver
//! must act on each option's type bits and report the byte offset of what it did not
//! recognise in an ICMPv6 Parameter Problem (RFC 8200 §4.2, §4.4), which etherparse
//! does not expose.

use super::{Error, EthernetAddress, IpProtocol};
use core::fmt;
use core::net::Ipv6Addr;
use core::str::FromStr;

/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;

/// The smallest link MTU IPv6 may use (RFC 8200 §5).
pub const IPV6_MIN_MTU: usize = 1280;

/// Length of the fragment extension header (RFC 8200 §4.5).
pub const IPV6_FRAG_HEADER_LEN: usize = 8;

impl IpProtocol {
    /// IPv6 Hop-by-Hop Options header (RFC 8200 §4.3).
    pub const HOP_BY_HOP: IpProtocol = IpProtocol(0);
    /// IPv6 Routing header (RFC 8200 §4.4).
    pub const IPV6_ROUTE: IpProtocol = IpProtocol(43);
    /// IPv6 Fragment header (RFC 8200 §4.5).
    pub const IPV6_FRAG: IpProtocol = IpProtocol(44);
    /// ICMP for IPv6 (RFC 4443).
    pub const ICMPV6: IpProtocol = IpProtocol(58);
    /// No next header (RFC 8200 §4.7).
    pub const IPV6_NO_NXT: IpProtocol = IpProtocol(59);
    /// IPv6 Destination Options header (RFC 8200 §4.6).
    pub const IPV6_OPTS: IpProtocol = IpProtocol(60);
}

/// An IPv6 address with a prefix length, e.g. `fd00::2/64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv6Cidr {
    address: Ipv6Addr,
    prefix_len: u8,
}

impl Ipv6Cidr {
    /// An address and a prefix length.
    ///
    /// # Panics
    /// If `prefix_len > 128`.
    pub fn new(address: Ipv6Addr, prefix_len: u8) -> Ipv6Cidr {
        assert!(prefix_len <= 128, "prefix length {prefix_len} > 128");
        Ipv6Cidr {
            address,
            prefix_len,
        }
    }

    /// The address.
    pub fn address(&self) -> Ipv6Addr {
        self.address
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    fn mask(&self) -> u128 {
        if self.prefix_len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix_len))
        }
    }

    /// The prefix with the host bits cleared.
    pub fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.address) & self.mask())
    }

    /// True when `addr` lies in this prefix.
    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        (u128::from(addr) ^ u128::from(self.address)) & self.mask() == 0
    }
}

impl fmt::Display for Ipv6Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

impl FromStr for Ipv6Cidr {
    type Err = Error;

    /// Parses `addr/len`; a bare address is taken as a /64 (the only prefix length
    /// SLAAC and most links use, RFC 4291 §2.5.1).
    fn from_str(s: &str) -> Result<Self, Error> {
        let (addr, len) = s.split_once('/').unwrap_or((s, "64"));
        let address: Ipv6Addr = addr.parse().map_err(|_| Error::Malformed)?;
        let prefix_len: u8 = len.parse().map_err(|_| Error::Malformed)?;
        if prefix_len > 128 {
            return Err(Error::Malformed);
        }
        Ok(Ipv6Cidr::new(address, prefix_len))
    }
}

/// The modified EUI-64 interface identifier of a MAC (RFC 4291 Appendix A): `ff:fe` in
/// the middle and the universal/local bit flipped.
pub fn eui64_interface_id(mac: EthernetAddress) -> [u8; 8] {
    let m = mac.0;
    [m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]
}

/// `prefix` (its first 64 bits) joined with the EUI-64 identifier of `mac`
/// (RFC 4862 §5.3 for the link-local `fe80::/64`, §5.5.3 for prefixes from RAs).
pub fn eui64_address(prefix: Ipv6Addr, mac: EthernetAddress) -> Ipv6Addr {
    let mut o = prefix.octets();
    o[8..].copy_from_slice(&eui64_interface_id(mac));
    Ipv6Addr::from(o)
}

/// The link-local address of `mac`: `fe80::` + EUI-64 (RFC 4862 §5.3).
pub fn link_local_address(mac: EthernetAddress) -> Ipv6Addr {
    eui64_address(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), mac)
}

/// The solicited-node multicast group of `addr`: `ff02::1:ff` + its low 24 bits
/// (RFC 4291 §2.7.1).
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet group address an IPv6 multicast address maps to: `33:33` + its low 32
/// bits (RFC 2464 §7).
pub fn multicast_mac(addr: Ipv6Addr) -> EthernetAddress {
    let o = addr.octets();
    EthernetAddress([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// All-nodes multicast `ff02::1` (RFC 4291 §2.7.1).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// All-routers multicast `ff02::2` (RFC 4291 §2.7.1).
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// All MLDv2-capable routers `ff02::16` (RFC 3810 §5.2.14).
pub const ALL_MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);

/// True for `fe80::/10` (RFC 4291 §2.5.6).
pub fn is_link_local(addr: Ipv6Addr) -> bool {
    addr.segments()[0] & 0xffc0 == 0xfe80
}

/// The decoded fields of a fixed IPv6 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// The header that follows (an extension header or the upper layer).
    pub next_header: IpProtocol,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class (DSCP and ECN).
    pub traffic_class: u8,
    /// Flow label (20 bits, RFC 6437).
    pub flow_label: u32,
    /// Bytes after the fixed header (extension headers included).
    pub payload_len: usize,
}

impl Ipv6Repr {
    /// Parses the fixed header and returns the payload (extension headers included).
    /// Bytes past the payload length (Ethernet padding) are ignored.
    ///
    /// # Errors
    /// `Truncated` when shorter than the header or its payload length, `Malformed` for
    /// a version other than 6 or a jumbogram's zero payload length (RFC 2675 is not
    /// implemented: it needs links with a larger MTU than Ethernet's).
    pub fn parse(packet: &[u8]) -> Result<(Ipv6Repr, &[u8]), Error> {
        use etherparse::err::ipv6::{HeaderError, HeaderSliceError};
        let hdr = etherparse::Ipv6HeaderSlice::from_slice(packet).map_err(|e| match e {
            HeaderSliceError::Len(_) => Error::Truncated,
            HeaderSliceError::Content(HeaderError::UnexpectedVersion { .. }) => Error::Malformed,
        })?;
        let payload_len = usize::from(hdr.payload_length());
        if payload_len == 0 && hdr.next_header().0 == 0 {
            // A Jumbo Payload option would follow; we cannot carry jumbograms.
            return Err(Error::Malformed);
        }
        let end = IPV6_HEADER_LEN + payload_len;
        if end > packet.len() {
            return Err(Error::Truncated);
        }
        let repr = Ipv6Repr {
            src_addr: hdr.source_addr(),
            dst_addr: hdr.destination_addr(),
            next_header: IpProtocol(hdr.next_header().0),
            hop_limit: hdr.hop_limit(),
            traffic_class: hdr.traffic_class(),
            flow_label: hdr.flow_label().value(),
            payload_len,
        };
        Ok((repr, &packet[IPV6_HEADER_LEN..end]))
    }

    /// Parses the IPv6 header quoted in an ICMPv6 error (RFC 4443 §2.4 (c): "as much of
    /// invoking packet as possible"). The quote may be cut short, so the payload length
    /// is not checked; the rest of the quote is returned.
    ///
    /// # Errors
    /// `Truncated` or `Malformed` when even the fixed header is not there.
    pub fn parse_quoted(quote: &[u8]) -> Result<(Ipv6Repr, &[u8]), Error> {
        let hdr = quote.get(..IPV6_HEADER_LEN).ok_or(Error::Truncated)?;
        if hdr[0] >> 4 != 6 {
            return Err(Error::Malformed);
        }
        let repr = Self::read(hdr);
        Ok((repr, &quote[IPV6_HEADER_LEN..]))
    }

    fn read(h: &[u8]) -> Ipv6Repr {
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&h[8..24]);
        dst.copy_from_slice(&h[24..40]);
        Ipv6Repr {
            src_addr: src.into(),
            dst_addr: dst.into(),
            next_header: IpProtocol(h[6]),
            hop_limit: h[7],
            traffic_class: (h[0] << 4) | (h[1] >> 4),
            flow_label: u32::from_be_bytes([0, h[1] & 0x0f, h[2], h[3]]),
            payload_len: usize::from(u16::from_be_bytes([h[4], h[5]])),
        }
    }

    /// Bytes the fixed header takes when emitted.
    pub const fn buffer_len(&self) -> usize {
        IPV6_HEADER_LEN
    }

    /// Writes the 40-byte fixed header into `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`IPV6_HEADER_LEN`] or the payload exceeds 65535 bytes.
    pub fn emit(&self, buf: &mut [u8]) {
        assert!(
            self.payload_len <= 65535,
            "IPv6 payload of {} bytes",
            self.payload_len
        );
        let b = &mut buf[..IPV6_HEADER_LEN];
        let flow = self.flow_label & 0x000f_ffff;
        b[0] = 0x60 | (self.traffic_class >> 4);
        b[1] = (self.traffic_class << 4) | (flow >> 16) as u8;
        b[2..4].copy_from_slice(&(flow as u16).to_be_bytes());
        b[4..6].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
        b[6] = self.next_header.0;
        b[7] = self.hop_limit;
        b[8..24].copy_from_slice(&self.src_addr.octets());
        b[24..40].copy_from_slice(&self.dst_addr.octets());
    }
}

/// The fields of a fragment header (RFC 8200 §4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6FragRepr {
    /// The header of the fragmentable part (first header after the fragment header).
    pub next_header: IpProtocol,
    /// Offset of this fragment's data in the fragmentable part, in bytes (multiple of 8).
    pub offset: u16,
    /// More fragments follow.
    pub more_frags: bool,
    /// Identification shared by the fragments of one packet.
    pub ident: u32,
}

impl Ipv6FragRepr {
    /// Parses an 8-byte fragment header at the start of `bytes`.
    ///
    /// # Errors
    /// `Truncated` when shorter than 8 bytes.
    pub fn parse(bytes: &[u8]) -> Result<Ipv6FragRepr, Error> {
        let b = bytes.get(..IPV6_FRAG_HEADER_LEN).ok_or(Error::Truncated)?;
        let off = u16::from_be_bytes([b[2], b[3]]);
        Ok(Ipv6FragRepr {
            next_header: IpProtocol(b[0]),
            offset: off & !7,
            more_frags: off & 1 != 0,
            ident: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        })
    }

    /// Writes the 8-byte header.
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..IPV6_FRAG_HEADER_LEN];
        b[0] = self.next_header.0;
        b[1] = 0;
        let off = (self.offset & !7) | u16::from(self.more_frags);
        b[2..4].copy_from_slice(&off.to_be_bytes());
        b[4..8].copy_from_slice(&self.ident.to_be_bytes());
    }
}

/// What walking the extension headers found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Headers {
    /// The upper-layer protocol, or [`IpProtocol::IPV6_FRAG`] when the walk stopped at
    /// a fragment header (the rest is reassembled first).
    pub protocol: IpProtocol,
    /// Offset of the upper-layer data (or of the fragment header) in the walked bytes.
    pub offset: usize,
    /// Offset, in the original packet, of the Next Header field that named
    /// `protocol`: what a Parameter Problem code 1 points at.
    pub nh_pointer: u32,
    /// The fragment header, when the walk stopped at one.
    pub fragment: Option<Ipv6FragRepr>,
}

/// Why the extension-header walk refused a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtError {
    /// Cut short or internally inconsistent: drop silently.
    Truncated,
    /// Discard silently, as an option's type bits `01` ask (RFC 8200 §4.2).
    Discard,
    /// Discard and send an ICMPv6 Parameter Problem with this code and pointer
    /// (offset in the original packet), unless `unless_multicast` and the
    /// destination was a multicast address (option type bits `11`).
    ParamProblem {
        /// 0 erroneous header field, 1 unrecognised Next Header, 2 unrecognised option.
        code: u8,
        /// Offset of the offending byte from the start of the IPv6 header.
        pointer: u32,
        /// Do not answer packets sent to a multicast address.
        unless_multicast: bool,
    },
}

/// Walks the extension headers of a packet whose first header after the fixed header
/// (or after a reassembled fragment header) is `first`, over `data`; `base` is
/// `data`'s offset in the original packet and `first_nh_pointer` the offset of the
/// field that named `first`. Stops at the upper layer, at a fragment header, or at
/// No Next Header.
///
/// Per RFC 8200 §4.1, Hop-by-Hop may only come first (`hbh_allowed` is true only for
/// the header right after the fixed header); anything else there is a Parameter Problem
/// code 1. Options are processed per §4.2; a Routing header with segments left is
/// refused per §4.4 (we do not forward, so every routing type is one we cannot act on,
/// and RFC 5095 deprecates type 0 outright).
///
/// # Errors
/// [`ExtError`] naming what to do with the packet.
pub fn walk_ext_headers(
    first: IpProtocol,
    data: &[u8],
    base: usize,
    first_nh_pointer: u32,
    mut hbh_allowed: bool,
) -> Result<Ipv6Headers, ExtError> {
    let mut next = first;
    let mut nh_pointer = first_nh_pointer;
    let mut off = 0usize;
    loop {
        let here = (base + off) as u32;
        match next {
            IpProtocol::HOP_BY_HOP | IpProtocol::IPV6_OPTS => {
                if next == IpProtocol::HOP_BY_HOP && !hbh_allowed {
                    // RFC 8200 §4.1: "the Hop-by-Hop Options header ... MUST
                    // immediately follow the IPv6 header"; §4: code 1 otherwise.
                    return Err(ExtError::ParamProblem {
                        code: 1,
                        pointer: nh_pointer,
                        unless_multicast: false,
                    });
                }
                let hdr = data.get(off..off + 2).ok_or(ExtError::Truncated)?;
                let len = (usize::from(hdr[1]) + 1) * 8;
                let body = data.get(off..off + len).ok_or(ExtError::Truncated)?;
                process_options(&body[2..], here + 2)?;
                nh_pointer = here;
                next = IpProtocol(body[0]);
                off += len;
            }
            IpProtocol::IPV6_ROUTE => {
                let hdr = data.get(off..off + 4).ok_or(ExtError::Truncated)?;
                let len = (usize::from(hdr[1]) + 1) * 8;
                if data.len() < off + len {
                    return Err(ExtError::Truncated);
                }
                let segments_left = hdr[3];
                if segments_left != 0 {
                    // RFC 8200 §4.4: unrecognised Routing Type with Segments Left
                    // non-zero: "discard the packet and send an ICMP Parameter
                    // Problem, Code 0, ... pointing to the unrecognized Routing Type".
                    // RFC 5095 §3: type 0 is processed as an unrecognised type.
                    return Err(ExtError::ParamProblem {
                        code: 0,
                        pointer: here + 2,
                        unless_multicast: false,
                    });
                }
                // Segments Left zero: "ignore the Routing header and proceed".
                nh_pointer = here;
                next = IpProtocol(hdr[0]);
                off += len;
            }
            IpProtocol::IPV6_FRAG => {
                let frag = Ipv6FragRepr::parse(data.get(off..).ok_or(ExtError::Truncated)?)
                    .map_err(|_| ExtError::Truncated)?;
                return Ok(Ipv6Headers {
                    protocol: IpProtocol::IPV6_FRAG,
                    offset: off,
                    nh_pointer,
                    fragment: Some(frag),
                });
            }
            protocol => {
                return Ok(Ipv6Headers {
                    protocol,
                    offset: off,
                    nh_pointer,
                    fragment: None,
                })
            }
        }
        hbh_allowed = false;
    }
}

/// Processes the TLV options of a Hop-by-Hop or Destination Options header; `base` is
/// the offset of `opts` in the original packet. We recognise only Pad1 and PadN.
fn process_options(opts: &[u8], base: u32) -> Result<(), ExtError> {
    let mut i = 0usize;
    while i < opts.len() {
        let t = opts[i];
        if t == 0 {
            // Pad1: a single byte, no length.
            i += 1;
            continue;
        }
        let len = usize::from(*opts.get(i + 1).ok_or(ExtError::Truncated)?);
        if i + 2 + len > opts.len() {
            return Err(ExtError::Truncated);
        }
        if t != 1 {
            // RFC 8200 §4.2: the two high-order bits of an unrecognised option's type
            // say what to do.
            let pointer = base + i as u32;
            match t >> 6 {
                0b00 => {} // skip over this option and continue
                0b01 => return Err(ExtError::Discard),
                0b10 => {
                    return Err(ExtError::ParamProblem {
                        code: 2,
                        pointer,
                        unless_multicast: false,
                    })
                }
                _ => {
                    return Err(ExtError::ParamProblem {
                        code: 2,
                        pointer,
                        unless_multicast: true,
                    })
                }
            }
        }
        i += 2 + len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata6;
    use proptest::prelude::*;

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn eui64_and_solicited_node_match_rfc_examples() {
        // The MAC 02:00:00:00:00:0b gives fe80::ff:fe00:b (U/L bit flipped to 0).
        let mac = EthernetAddress([2, 0, 0, 0, 0, 0x0b]);
        assert_eq!(link_local_address(mac), addr("fe80::ff:fe00:b"));
        let mac = EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(link_local_address(mac), addr("fe80::5054:ff:fe12:3456"));
        assert_eq!(
            solicited_node(addr("fe80::5054:ff:fe12:3456")),
            addr("ff02::1:ff12:3456")
        );
        assert_eq!(
            multicast_mac(addr("ff02::1:ff12:3456")),
            EthernetAddress([0x33, 0x33, 0xff, 0x12, 0x34, 0x56])
        );
        assert!(is_link_local(addr("fe80::1")) && !is_link_local(addr("fd00::1")));
    }

    #[test]
    fn cidr_parse_and_contains() {
        let c: Ipv6Cidr = "fd00:1::2/64".parse().unwrap();
        assert!(c.contains(addr("fd00:1::ffff")));
        assert!(!c.contains(addr("fd00:2::1")));
        assert_eq!(c.network(), addr("fd00:1::"));
        assert_eq!("fd00::5".parse::<Ipv6Cidr>().unwrap().prefix_len(), 64);
        assert!("fd00::5/129".parse::<Ipv6Cidr>().is_err());
        assert!("10.0.0.1/24".parse::<Ipv6Cidr>().is_err());
        let all: Ipv6Cidr = "::/0".parse().unwrap();
        assert!(all.contains(addr("2001:db8::1")));
    }

    fn ip(frame: &[u8]) -> &[u8] {
        &frame[14..]
    }

    #[test]
    fn deconstruct_and_reconstruct_captured_header() {
        let packet = ip(testdata6::ECHO_REQUEST);
        let (repr, payload) = Ipv6Repr::parse(packet).unwrap();
        assert_eq!(repr.src_addr, testdata6::KERNEL_IP6);
        assert_eq!(repr.dst_addr, testdata6::PEER_IP6);
        assert_eq!(repr.next_header, IpProtocol::ICMPV6);
        assert_eq!(repr.hop_limit, 64);
        assert_eq!(payload.len(), 16);
        let mut buf = [0u8; IPV6_HEADER_LEN];
        repr.emit(&mut buf);
        assert_eq!(&buf[..], &packet[..IPV6_HEADER_LEN]);
        // The captured MLD report starts with a Hop-by-Hop header (Router Alert).
        let (mld, payload) = Ipv6Repr::parse(ip(testdata6::MLD_REPORT_UNSPEC)).unwrap();
        assert_eq!(mld.next_header, IpProtocol::HOP_BY_HOP);
        let walked = walk_ext_headers(mld.next_header, payload, 40, 6, true).unwrap();
        assert_eq!((walked.protocol, walked.offset), (IpProtocol::ICMPV6, 8));
        // The first fragment of the 2056-byte echo request.
        let (f, payload) = Ipv6Repr::parse(ip(testdata6::FRAG_FIRST)).unwrap();
        let walked = walk_ext_headers(f.next_header, payload, 40, 6, true).unwrap();
        let frag = walked.fragment.unwrap();
        assert_eq!(
            (frag.offset, frag.more_frags, frag.next_header),
            (0, true, IpProtocol::ICMPV6)
        );
        let (_, payload) = Ipv6Repr::parse(ip(testdata6::FRAG_LAST)).unwrap();
        let last = Ipv6FragRepr::parse(payload).unwrap();
        assert_eq!(
            (last.offset, last.more_frags, last.ident),
            (1448, false, frag.ident)
        );
    }

    #[test]
    fn every_truncated_prefix_is_an_error() {
        for frame in testdata6::ALL {
            let packet = ip(frame);
            for len in 0..packet.len() {
                assert!(
                    Ipv6Repr::parse(&packet[..len]).is_err(),
                    "{len}-byte prefix parsed"
                );
            }
        }
        let mut v4 = ip(testdata6::ECHO_REQUEST).to_vec();
        v4[0] = 0x45;
        assert_eq!(Ipv6Repr::parse(&v4), Err(Error::Malformed));
    }

    fn ext(next: u8, body: &[u8]) -> Vec<u8> {
        // One extension header of 8 * n bytes: next header, length, body, padded.
        let mut h = vec![next, 0];
        h.extend_from_slice(body);
        while h.len() % 8 != 0 {
            h.push(0);
        }
        h[1] = (h.len() / 8 - 1) as u8;
        h
    }

    #[test]
    fn options_follow_the_type_bits() {
        // PadN then an unknown option of each action class.
        let walk = |t: u8| {
            let h = ext(58, &[1, 0, t, 0]);
            walk_ext_headers(IpProtocol::HOP_BY_HOP, &h, 40, 6, true)
        };
        assert_eq!(walk(0x05).unwrap().protocol, IpProtocol::ICMPV6);
        assert_eq!(walk(0x05).unwrap().offset, 8);
        assert_eq!(walk(0x45), Err(ExtError::Discard));
        assert_eq!(
            walk(0x85),
            Err(ExtError::ParamProblem {
                code: 2,
                pointer: 44,
                unless_multicast: false
            })
        );
        assert_eq!(
            walk(0xc5),
            Err(ExtError::ParamProblem {
                code: 2,
                pointer: 44,
                unless_multicast: true
            })
        );
    }

    #[test]
    fn routing_header_with_segments_left_is_refused() {
        // Type 0, one segment left: pointer at the routing type (offset 2 of the header).
        let mut h = ext(58, &[0, 1, 0, 0, 0, 0]);
        h.extend_from_slice(&[0; 16]);
        h[1] = 2;
        let r = walk_ext_headers(IpProtocol::IPV6_ROUTE, &h, 40, 6, true);
        assert_eq!(
            r,
            Err(ExtError::ParamProblem {
                code: 0,
                pointer: 42,
                unless_multicast: false
            })
        );
        // Segments left zero: ignored.
        let h = ext(17, &[0, 0, 0, 0, 0, 0]);
        let r = walk_ext_headers(IpProtocol::IPV6_ROUTE, &h, 40, 6, true).unwrap();
        assert_eq!(
            (r.protocol, r.offset, r.nh_pointer),
            (IpProtocol::UDP, 8, 40)
        );
    }

    #[test]
    fn hop_by_hop_after_another_header_is_refused() {
        let mut h = ext(0, &[1, 0, 0, 0]);
        h.extend(ext(58, &[1, 0, 0, 0]));
        let r = walk_ext_headers(IpProtocol::IPV6_OPTS, &h, 40, 6, true);
        assert_eq!(
            r,
            Err(ExtError::ParamProblem {
                code: 1,
                pointer: 40,
                unless_multicast: false
            })
        );
    }

    #[test]
    fn walk_stops_at_fragment_header() {
        let mut h = ext(44, &[1, 0, 0, 0]);
        let f = Ipv6FragRepr {
            next_header: IpProtocol::ICMPV6,
            offset: 1232,
            more_frags: true,
            ident: 0xdead_beef,
        };
        let mut fb = [0u8; 8];
        f.emit(&mut fb);
        h.extend_from_slice(&fb);
        let r = walk_ext_headers(IpProtocol::HOP_BY_HOP, &h, 40, 6, true).unwrap();
        assert_eq!(r.protocol, IpProtocol::IPV6_FRAG);
        assert_eq!(r.offset, 8);
        assert_eq!(r.fragment, Some(f));
        // Every truncation of the chain is an error, never a panic.
        for len in 0..h.len() {
            assert!(walk_ext_headers(IpProtocol::HOP_BY_HOP, &h[..len], 40, 6, true).is_err());
        }
    }

    proptest! {
        #[test]
        fn header_round_trips(
            src: [u8; 16], dst: [u8; 16], nh: u8, hop: u8, tc: u8,
            flow in 0u32..(1 << 20), len in 0usize..200,
        ) {
            let repr = Ipv6Repr {
                src_addr: src.into(), dst_addr: dst.into(), next_header: IpProtocol(nh),
                hop_limit: hop, traffic_class: tc, flow_label: flow, payload_len: len,
            };
            let mut buf = vec![0u8; IPV6_HEADER_LEN + len];
            repr.emit(&mut buf);
            if len == 0 && nh == 0 {
                prop_assert!(Ipv6Repr::parse(&buf).is_err());
            } else {
                let (back, payload) = Ipv6Repr::parse(&buf).unwrap();
                prop_assert_eq!(back, repr);
                prop_assert_eq!(payload.len(), len);
            }
        }

        #[test]
        fn frag_header_round_trips(nh: u8, off in 0u16..8192, m: bool, id: u32) {
            let f = Ipv6FragRepr { next_header: IpProtocol(nh), offset: off * 8, more_frags: m, ident: id };
            let mut b = [0u8; 8];
            f.emit(&mut b);
            prop_assert_eq!(Ipv6FragRepr::parse(&b).unwrap(), f);
        }

        #[test]
        fn walk_never_panics(first: u8, data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = walk_ext_headers(IpProtocol(first), &data, 40, 6, true);
        }
    }
}
