//! Layer-by-layer decoding of captured frames into plain data, for `ustack dump` and
//! `ustack plot`. Printing lives in [`crate::dump_fmt`]; this module never prints.
//!
//! Unlike the stack's `wire` Reprs, which reject a packet whose checksum is wrong (the
//! stack must drop it), a capture decoder has to show such packets: checksums are
//! verified and reported (`checksum_ok`), never a reason to stop. Every header field is
//! kept, options in the order they appear, so the printers can match tcpdump.
//!
//! The headers are read through etherparse's header slices (Ethernet through the
//! stack's `EthernetRepr`, ARP through `ArpRepr`; IPv4, ICMP, UDP, TCP and TCP options
//! through etherparse directly), which check lengths but not checksums; this module
//! adds the checksum verdicts and tcpdump's wording for what is wrong. Linux cooked
//! headers, which etherparse rejects for types it does not know or lacks (SLL2), are
//! read field by field.
//!
//! Invariant: decoding never panics. A layer that cannot be decoded (short, bad length
//! field, bad option) stops the decode there and is named in [`Frame::malformed`];
//! everything outside it is still returned.

pub use crate::decode6::{Icmpv6, Ipv6};
use core::net::{IpAddr, Ipv4Addr};
use serde::{Serialize, Serializer};
use ustack::link::{Direction, PcapRecord};
use ustack::wire::{checksum, ArpRepr, EthernetAddress, EthernetRepr};

/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u16 = 1;
/// LINKTYPE_RAW (raw IPv4/IPv6, no link header).
pub const LINKTYPE_RAW: u16 = 101;
/// LINKTYPE_IPV4.
pub const LINKTYPE_IPV4: u16 = 228;
/// LINKTYPE_LINUX_SLL (Linux "cooked" capture, `tcpdump -i any`).
pub const LINKTYPE_LINUX_SLL: u16 = 113;
/// LINKTYPE_LINUX_SLL2.
pub const LINKTYPE_LINUX_SLL2: u16 = 276;

fn ser_display<T: core::fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn ser_direction<S: Serializer>(v: &Option<Direction>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(Direction::Rx) => s.serialize_some("in"),
        Some(Direction::Tx) => s.serialize_some("out"),
        None => s.serialize_none(),
    }
}

/// One decoded capture record.
#[derive(Clone, Debug, Serialize)]
pub struct Frame {
    /// 1-based position in the file.
    pub number: usize,
    /// Capture time, nanoseconds since the Unix epoch.
    pub timestamp_ns: i128,
    /// Bytes captured.
    pub captured_len: usize,
    /// Bytes on the wire.
    pub wire_len: u32,
    /// Link type of the record.
    pub link_type: u16,
    /// pcapng direction, when recorded.
    #[serde(
        serialize_with = "ser_direction",
        skip_serializing_if = "Option::is_none"
    )]
    pub direction: Option<Direction>,
    /// pcapng comments.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<String>,
    /// Ethernet header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ethernet: Option<Ethernet>,
    /// Linux cooked-capture header (SLL/SLL2 link types).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sll: Option<Sll>,
    /// ARP packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arp: Option<Arp>,
    /// IPv4 header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4>,
    /// ICMP message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp: Option<Icmp>,
    /// IPv6 header and extension headers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6>,
    /// ICMPv6 message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmpv6: Option<Icmpv6>,
    /// UDP header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp: Option<Udp>,
    /// TCP header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<Tcp>,
    /// The first layer that could not be decoded, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub malformed: Option<Malformed>,
    /// The IP payload of a fragment (kept for reassembly).
    #[serde(skip)]
    pub fragment_payload: Option<Vec<u8>>,
}

impl Frame {
    /// The IP payload bytes, kept only for fragments.
    pub fn ip_payload(&self) -> Option<&[u8]> {
        self.fragment_payload.as_deref()
    }

    /// Source and destination of the IPv4 or IPv6 header.
    pub fn ip_addrs(&self) -> Option<(IpAddr, IpAddr)> {
        match (&self.ipv4, &self.ipv6) {
            (Some(ip), _) => Some((ip.src.into(), ip.dst.into())),
            (_, Some(ip)) => Some((ip.src.into(), ip.dst.into())),
            _ => None,
        }
    }

    /// The upper-layer protocol number the IP header (chain) names.
    pub fn ip_protocol(&self) -> Option<u8> {
        match (&self.ipv4, &self.ipv6) {
            (Some(ip), _) => Some(ip.protocol),
            (_, Some(ip)) => Some(ip.protocol),
            _ => None,
        }
    }
}

/// What the transport decoders need from the IP layer: the pseudo-header addresses and
/// the payload length the IP header gives.
pub(crate) struct L4 {
    pub(crate) src: IpAddr,
    pub(crate) dst: IpAddr,
    pub(crate) payload_len: usize,
    /// The first fragment of a larger datagram: a length field beyond this packet is
    /// expected, not malformed.
    pub(crate) fragment: bool,
}

impl L4 {
    fn of(ip: &Ipv4) -> L4 {
        L4 {
            src: ip.src.into(),
            dst: ip.dst.into(),
            payload_len: ip.payload_len,
            fragment: ip.more_frags,
        }
    }

    /// Checksum over the pseudo-header of the family and `data`; 0 verifies.
    fn pseudo(&self, protocol: u8, data: &[u8]) -> u16 {
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => checksum::pseudo(s, d, protocol, data),
            (IpAddr::V6(s), IpAddr::V6(d)) => crate::decode6::pseudo6(s, d, protocol, data),
            // Never built: both addresses come from one header.
            _ => 1,
        }
    }
}

/// A layer that could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Malformed {
    /// `ethernet`, `arp`, `ipv4`, `icmp`, `udp`, `tcp`, `link`.
    pub layer: &'static str,
    /// What was wrong.
    pub reason: String,
}

/// Ethernet II header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ethernet {
    /// Destination MAC.
    #[serde(serialize_with = "ser_display")]
    pub dst: EthernetAddress,
    /// Source MAC.
    #[serde(serialize_with = "ser_display")]
    pub src: EthernetAddress,
    /// EtherType.
    pub ethertype: u16,
}

/// Linux cooked-capture header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sll {
    /// Packet type (0 to us, 1 broadcast, 2 multicast, 3 to someone else, 4 sent by us).
    pub packet_type: u16,
    /// Protocol (an EtherType).
    pub protocol: u16,
}

/// ARP packet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Arp {
    /// Hardware type (1 = Ethernet).
    pub hardware_type: u16,
    /// Protocol type (0x0800 = IPv4).
    pub protocol_type: u16,
    /// Opcode (1 request, 2 reply).
    pub operation: u16,
    /// Sender MAC (Ethernet/IPv4 ARP only).
    #[serde(serialize_with = "ser_display")]
    pub sender_mac: EthernetAddress,
    /// Sender IPv4 address.
    pub sender_ip: Ipv4Addr,
    /// Target MAC.
    #[serde(serialize_with = "ser_display")]
    pub target_mac: EthernetAddress,
    /// Target IPv4 address.
    pub target_ip: Ipv4Addr,
    /// Bytes after the link header (ARP plus any padding), as tcpdump reports it.
    pub len: usize,
}

/// IPv4 header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ipv4 {
    /// Version field (4).
    pub version: u8,
    /// Header length in bytes (IHL * 4).
    pub header_len: usize,
    /// DSCP/ECN byte.
    pub tos: u8,
    /// Total length field.
    pub total_len: u16,
    /// Identification.
    pub ident: u16,
    /// Reserved (evil) bit.
    pub reserved_flag: bool,
    /// Don't Fragment.
    pub dont_frag: bool,
    /// More Fragments.
    pub more_frags: bool,
    /// Fragment offset in bytes.
    pub frag_offset: u16,
    /// Time to live.
    pub ttl: u8,
    /// Protocol number.
    pub protocol: u8,
    /// Header checksum as carried.
    pub checksum: u16,
    /// Whether the header checksum verifies.
    pub checksum_ok: bool,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Option bytes (header length minus 20).
    pub options_len: usize,
    /// Payload bytes this packet carries (total length minus header length).
    pub payload_len: usize,
}

impl Ipv4 {
    /// True for any fragment (MF set or non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.more_frags || self.frag_offset != 0
    }
}

/// The IP header and transport ports quoted inside an ICMP error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Quoted {
    /// Quoted source address.
    pub src: Ipv4Addr,
    /// Quoted destination address.
    pub dst: Ipv4Addr,
    /// Quoted protocol.
    pub protocol: u8,
    /// Quoted source port (TCP/UDP, when the quote reaches it).
    pub src_port: Option<u16>,
    /// Quoted destination port.
    pub dst_port: Option<u16>,
}

/// ICMP message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Icmp {
    /// Type.
    pub icmp_type: u8,
    /// Code.
    pub code: u8,
    /// Checksum as carried.
    pub checksum: u16,
    /// Whether it verifies; `None` when not every byte it covers was captured (or this
    /// is the first fragment of a larger datagram).
    pub checksum_ok: Option<bool>,
    /// Echo identifier (types 0 and 8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ident: Option<u16>,
    /// Echo sequence number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u16>,
    /// Next-hop MTU (destination unreachable, code 4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_hop_mtu: Option<u16>,
    /// The datagram quoted by an error message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quoted: Option<Quoted>,
    /// Message length (header included) this packet carries.
    pub len: usize,
}

/// UDP header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Udp {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Length field (header included).
    pub length: u16,
    /// Checksum as carried (0 = none).
    pub checksum: u16,
    /// Whether it verifies; `None` when absent or not verifiable.
    pub checksum_ok: Option<bool>,
    /// Payload bytes (length field minus 8).
    pub payload_len: usize,
}

/// One TCP option, in wire order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "option", rename_all = "snake_case")]
pub enum TcpOption {
    /// End of option list.
    Eol,
    /// No-operation (padding).
    Nop,
    /// Maximum segment size.
    Mss {
        /// The MSS.
        value: u16,
    },
    /// Window scale shift.
    WindowScale {
        /// The shift count.
        shift: u8,
    },
    /// SACK permitted.
    SackPermitted,
    /// SACK blocks (left, right), absolute.
    Sack {
        /// The blocks.
        blocks: Vec<(u32, u32)>,
    },
    /// Timestamps.
    Timestamp {
        /// TSval.
        val: u32,
        /// TSecr.
        ecr: u32,
    },
    /// Anything else (or a known kind with a wrong length).
    Unknown {
        /// Option kind.
        kind: u8,
        /// Option body.
        data: Vec<u8>,
    },
}

/// TCP header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tcp {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number (absolute).
    pub seq: u32,
    /// Acknowledgment number (absolute).
    pub ack: u32,
    /// Header length in bytes.
    pub header_len: usize,
    /// Flag bits (FIN 0x01 ... CWR 0x80, AE 0x100).
    pub flags: u16,
    /// Window field (unscaled).
    pub window: u16,
    /// Checksum as carried.
    pub checksum: u16,
    /// Whether it verifies; `None` when not every byte was captured or in a fragment.
    pub checksum_ok: Option<bool>,
    /// Urgent pointer.
    pub urgent_ptr: u16,
    /// Options in wire order.
    pub options: Vec<TcpOption>,
    /// The options area did not parse to its end (an option ran past it).
    pub options_malformed: bool,
    /// Payload bytes the IP header says this segment carries.
    pub payload_len: usize,
}

impl Tcp {
    /// FIN.
    pub fn fin(&self) -> bool {
        self.flags & 0x01 != 0
    }
    /// SYN.
    pub fn syn(&self) -> bool {
        self.flags & 0x02 != 0
    }
    /// RST.
    pub fn rst(&self) -> bool {
        self.flags & 0x04 != 0
    }
    /// ACK.
    pub fn ack_flag(&self) -> bool {
        self.flags & 0x10 != 0
    }
    /// Sequence space the segment occupies: payload plus SYN and FIN.
    pub fn segment_len(&self) -> usize {
        self.payload_len + usize::from(self.syn()) + usize::from(self.fin())
    }
    /// The MSS option, if present.
    pub fn mss(&self) -> Option<u16> {
        self.options.iter().find_map(|o| match o {
            TcpOption::Mss { value } => Some(*value),
            _ => None,
        })
    }
    /// The window scale option, if present.
    pub fn window_scale(&self) -> Option<u8> {
        self.options.iter().find_map(|o| match o {
            TcpOption::WindowScale { shift } => Some(*shift),
            _ => None,
        })
    }
    /// Whether SACK-permitted is present.
    pub fn sack_permitted(&self) -> bool {
        self.options.contains(&TcpOption::SackPermitted)
    }
    /// The timestamp option, if present.
    pub fn timestamp(&self) -> Option<(u32, u32)> {
        self.options.iter().find_map(|o| match o {
            TcpOption::Timestamp { val, ecr } => Some((*val, *ecr)),
            _ => None,
        })
    }
    /// SACK blocks, if any.
    pub fn sack_blocks(&self) -> &[(u32, u32)] {
        self.options
            .iter()
            .find_map(|o| match o {
                TcpOption::Sack { blocks } => Some(&blocks[..]),
                _ => None,
            })
            .unwrap_or(&[])
    }
}

/// A big-endian 16-bit word of `b` at `at`, for the few fields no header parser offers:
/// the Linux cooked-capture headers (etherparse rejects packet and protocol types it
/// does not know, which a capture must still show, and has no SLL2), the fixed words of
/// an ARP packet too short for its address lengths (named in the diagnostic), the port
/// and the port words of the partial transport header an ICMP error quotes.
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Decodes one capture record.
pub fn decode_record(number: usize, rec: &PcapRecord) -> Frame {
    let mut f = decode_frame_of(rec.link_type, &rec.data, rec.orig_len);
    f.number = number;
    f.timestamp_ns = rec.timestamp_ns;
    f.direction = rec.direction;
    f.comments = rec.comments.clone();
    f
}

/// Decodes the bytes of one frame of the given link type (number and time left zero).
pub fn decode_frame(link_type: u16, data: &[u8]) -> Frame {
    decode_frame_of(link_type, data, data.len() as u32)
}

/// Decodes a frame of which `data` was captured out of `wire_len` bytes.
fn decode_frame_of(link_type: u16, data: &[u8], wire_len: u32) -> Frame {
    let mut f = Frame {
        number: 0,
        timestamp_ns: 0,
        captured_len: data.len(),
        wire_len,
        link_type,
        direction: None,
        comments: Vec::new(),
        ethernet: None,
        sll: None,
        arp: None,
        ipv4: None,
        icmp: None,
        ipv6: None,
        icmpv6: None,
        udp: None,
        tcp: None,
        malformed: None,
        fragment_payload: None,
    };
    let (ethertype, payload) = match link_type {
        LINKTYPE_ETHERNET => match EthernetRepr::parse(data) {
            Ok((eth, payload)) => {
                f.ethernet = Some(Ethernet {
                    dst: eth.dst_addr,
                    src: eth.src_addr,
                    ethertype: eth.ethertype.0,
                });
                (eth.ethertype.0, payload)
            }
            Err(e) => {
                f.malformed = Some(Malformed {
                    layer: "ethernet",
                    reason: format!("{e}: {} bytes", data.len()),
                });
                return f;
            }
        },
        LINKTYPE_RAW | LINKTYPE_IPV4 => match data.first().map(|b| b >> 4) {
            Some(4) => (0x0800, data),
            Some(6) => (0x86dd, data),
            _ => {
                f.malformed = Some(Malformed {
                    layer: "link",
                    reason: "raw IP record is neither IPv4 nor IPv6".into(),
                });
                return f;
            }
        },
        LINKTYPE_LINUX_SLL | LINKTYPE_LINUX_SLL2 => {
            let (pt, proto, hlen) = if link_type == LINKTYPE_LINUX_SLL {
                (be16(data, 0), be16(data, 14), 16)
            } else {
                (data.get(10).map(|&b| u16::from(b)), be16(data, 0), 20)
            };
            match (pt, proto, data.get(hlen..)) {
                (Some(packet_type), Some(protocol), Some(rest)) => {
                    f.sll = Some(Sll {
                        packet_type,
                        protocol,
                    });
                    (protocol, rest)
                }
                _ => {
                    f.malformed = Some(Malformed {
                        layer: "link",
                        reason: format!("cooked header truncated: {} bytes", data.len()),
                    });
                    return f;
                }
            }
        }
        other => {
            f.malformed = Some(Malformed {
                layer: "link",
                reason: format!("link type {other} not decoded"),
            });
            return f;
        }
    };
    match ethertype {
        0x0806 => decode_arp(&mut f, payload),
        0x0800 => decode_ipv4(&mut f, payload),
        0x86dd => crate::decode6::decode_ipv6(&mut f, payload),
        _ => {}
    }
    f
}

fn decode_arp(f: &mut Frame, p: &[u8]) {
    let fixed = match etherparse::ArpPacketSlice::from_slice(p) {
        Ok(a) => Some((a.hw_addr_type().0, a.proto_addr_type().0, a.operation().0)),
        // Too short for the address lengths it declares: its fixed words still say what
        // it was meant to be.
        Err(_) => match (be16(p, 0), be16(p, 2), be16(p, 6)) {
            (Some(h), Some(t), Some(o)) => Some((h, t, o)),
            _ => None,
        },
    };
    let Some((hardware_type, protocol_type, operation)) = fixed else {
        f.malformed = Some(Malformed {
            layer: "arp",
            reason: format!("truncated: {} bytes", p.len()),
        });
        return;
    };
    match ArpRepr::parse(p) {
        Ok(arp) => {
            f.arp = Some(Arp {
                hardware_type,
                protocol_type,
                operation,
                sender_mac: arp.source_hardware_addr,
                sender_ip: arp.source_protocol_addr,
                target_mac: arp.target_hardware_addr,
                target_ip: arp.target_protocol_addr,
                len: p.len(),
            })
        }
        Err(e) => {
            f.malformed = Some(Malformed {
                layer: "arp",
                reason: format!(
                    "{e} (hardware type {hardware_type}, protocol 0x{protocol_type:04x}, {} bytes)",
                    p.len()
                ),
            })
        }
    }
}

/// Decodes the IPv4 header (etherparse's slice: version, IHL and length checked, the
/// checksum not); `Err` names what is wrong.
fn parse_ipv4_header(p: &[u8]) -> Result<Ipv4, String> {
    use etherparse::err::ipv4::{HeaderError, HeaderSliceError};
    let hdr = etherparse::Ipv4HeaderSlice::from_slice(p).map_err(|e| match e {
        HeaderSliceError::Len(l) => {
            format!("truncated: {} of {} header bytes", p.len(), l.required_len)
        }
        HeaderSliceError::Content(HeaderError::UnexpectedVersion { version_number }) => {
            format!("version {version_number}")
        }
        HeaderSliceError::Content(HeaderError::HeaderLengthSmallerThanHeader { ihl }) => {
            format!("header length {} < 20", usize::from(ihl) * 4)
        }
    })?;
    let bytes = hdr.slice();
    let header_len = bytes.len();
    let total_len = hdr.total_len();
    Ok(Ipv4 {
        version: hdr.version(),
        header_len,
        tos: (hdr.dcp().value() << 2) | hdr.ecn().value(),
        total_len,
        ident: hdr.identification(),
        // etherparse does not model the reserved ("evil", RFC 3514) bit: the top bit of
        // the flags byte. The slice is at least 20 bytes long.
        reserved_flag: bytes[6] & 0x80 != 0,
        dont_frag: hdr.dont_fragment(),
        more_frags: hdr.more_fragments(),
        frag_offset: hdr.fragments_offset().value() * 8,
        ttl: hdr.ttl(),
        protocol: hdr.protocol().0,
        checksum: hdr.header_checksum(),
        checksum_ok: checksum::of(bytes) == 0,
        src: hdr.source_addr(),
        dst: hdr.destination_addr(),
        options_len: header_len - 20,
        payload_len: usize::from(total_len).saturating_sub(header_len),
    })
}

fn decode_ipv4(f: &mut Frame, p: &[u8]) {
    let ip = match parse_ipv4_header(p) {
        Ok(ip) => ip,
        Err(reason) => {
            f.malformed = Some(Malformed {
                layer: "ipv4",
                reason,
            });
            return;
        }
    };
    let total = usize::from(ip.total_len);
    if total < ip.header_len {
        f.malformed = Some(Malformed {
            layer: "ipv4",
            reason: format!("total length {total} < header length {}", ip.header_len),
        });
        f.ipv4 = Some(ip);
        return;
    }
    // Bytes of the payload actually present (a short capture or a lying total length
    // leaves fewer than the header claims); Ethernet padding past `total` is dropped.
    let end = total.min(p.len());
    let payload = &p[ip.header_len.min(end)..end];
    let truncated = p.len() < total;
    if truncated && f.captured_len as u32 >= f.wire_len {
        // Not a snaplen cut: the frame itself is shorter than the IP header claims.
        f.malformed = Some(Malformed {
            layer: "ipv4",
            reason: format!("truncated: total length {total}, {} bytes present", p.len()),
        });
    }
    let ip_for_transport = ip.clone();
    if ip.is_fragment() {
        f.fragment_payload = Some(payload.to_vec());
    }
    f.ipv4 = Some(ip);
    if ip_for_transport.frag_offset != 0 {
        return; // no transport header in a later fragment
    }
    decode_transport(f, &ip_for_transport, payload, truncated);
}

/// Decodes the transport layer of `payload` (which may be shorter than the IP header
/// says when `truncated`), e.g. for a datagram reassembled from fragments.
pub fn decode_transport(f: &mut Frame, ip: &Ipv4, payload: &[u8], truncated: bool) {
    // Checksums cover the whole transport message: only verifiable when all of it is
    // here and this is not the first fragment of a larger datagram.
    let whole = !truncated && !ip.more_frags;
    let l4 = L4::of(ip);
    let result = match ip.protocol {
        1 => decode_icmp(payload, ip.payload_len, whole).map(|m| f.icmp = Some(m)),
        6 => decode_tcp(&l4, payload, whole).map(|t| f.tcp = Some(t)),
        17 => {
            let (udp, bad) = decode_udp(&l4, payload, whole);
            f.udp = udp;
            bad.map_or(Ok(()), Err)
        }
        _ => Ok(()),
    };
    if let Err(m) = result {
        if f.malformed.is_none() {
            f.malformed = Some(m);
        }
    }
}

fn decode_icmp(p: &[u8], len: usize, whole: bool) -> Result<Icmp, Malformed> {
    let truncated = || Malformed {
        layer: "icmp",
        reason: format!("truncated: {} of 8 header bytes", p.len()),
    };
    // type, code, checksum, the "rest of header" word, and what follows the 8 bytes.
    let (icmp_type, code, sum, rest, body) = match etherparse::Icmpv4Slice::from_slice(p) {
        Ok(m) => (
            m.type_u8(),
            m.code_u8(),
            m.checksum(),
            m.bytes5to8(),
            m.payload(),
        ),
        // etherparse also refuses a timestamp message that is not exactly 20 bytes;
        // tcpdump still shows its identifier and sequence number, so we do too.
        Err(_) => match p.get(..8) {
            Some(h) => (
                h[0],
                h[1],
                u16::from_be_bytes([h[2], h[3]]),
                [h[4], h[5], h[6], h[7]],
                &p[8..],
            ),
            None => return Err(truncated()),
        },
    };
    // RFC 792: the word holds identifier and sequence number of echo and timestamp
    // messages; RFC 1191: its low half is the next-hop MTU of "fragmentation needed".
    let hi = u16::from_be_bytes([rest[0], rest[1]]);
    let lo = u16::from_be_bytes([rest[2], rest[3]]);
    let mut m = Icmp {
        icmp_type,
        code,
        checksum: sum,
        checksum_ok: whole.then(|| checksum::of(p) == 0),
        ident: None,
        seq: None,
        next_hop_mtu: None,
        quoted: None,
        len,
    };
    match icmp_type {
        0 | 8 | 13 | 14 => {
            m.ident = Some(hi);
            m.seq = Some(lo);
        }
        3 | 4 | 5 | 11 | 12 => {
            if icmp_type == 3 && code == 4 {
                m.next_hop_mtu = Some(lo);
            }
            m.quoted = parse_quoted(body);
        }
        _ => {}
    }
    Ok(m)
}

/// The datagram an ICMP error quotes: its IP header and the first 8 bytes after it
/// (RFC 792), of which TCP and UDP both start with the two ports.
fn parse_quoted(q: &[u8]) -> Option<Quoted> {
    let ip = parse_ipv4_header(q).ok()?;
    let l4 = q.get(ip.header_len..).unwrap_or(&[]);
    let ports = matches!(ip.protocol, 6 | 17) && ip.frag_offset == 0;
    Some(Quoted {
        src: ip.src,
        dst: ip.dst,
        protocol: ip.protocol,
        src_port: be16(l4, 0).filter(|_| ports),
        dst_port: be16(l4, 2).filter(|_| ports),
    })
}

/// A UDP header is returned even with a bad length field (tcpdump shows its ports),
/// together with the reason it is malformed.
pub(crate) fn decode_udp(ip: &L4, p: &[u8], whole: bool) -> (Option<Udp>, Option<Malformed>) {
    let Ok(hdr) = etherparse::UdpHeaderSlice::from_slice(p) else {
        return (
            None,
            Some(Malformed {
                layer: "udp",
                reason: format!("truncated: {} of 8 header bytes", p.len()),
            }),
        );
    };
    let (length, sum) = (hdr.length(), hdr.checksum());
    let udp = Udp {
        src_port: hdr.source_port(),
        dst_port: hdr.destination_port(),
        length,
        checksum: sum,
        checksum_ok: (whole && sum != 0 && usize::from(length) <= p.len())
            .then(|| ip.pseudo(17, &p[..usize::from(length)]) == 0),
        payload_len: usize::from(length).saturating_sub(8),
    };
    if usize::from(length) < 8 || (usize::from(length) > ip.payload_len && !ip.fragment) {
        let m = Malformed {
            layer: "udp",
            reason: format!("bad length {length} (IP payload {} bytes)", ip.payload_len),
        };
        return (Some(udp), Some(m));
    }
    (Some(udp), None)
}

pub(crate) fn decode_tcp(ip: &L4, p: &[u8], whole: bool) -> Result<Tcp, Malformed> {
    use etherparse::err::tcp::{HeaderError, HeaderSliceError};
    let malformed = |reason| Malformed {
        layer: "tcp",
        reason,
    };
    let bad_len = |header_len: usize| {
        malformed(format!(
            "bad header length {header_len} (IP payload {} bytes)",
            ip.payload_len
        ))
    };
    // etherparse checks the 20 fixed bytes, then the data offset, then that the options
    // are present; a header longer than the IP payload is reported as such even when
    // the capture also cut it short.
    let hdr = etherparse::TcpHeaderSlice::from_slice(p).map_err(|e| match e {
        HeaderSliceError::Len(l) if l.required_len == 20 => {
            malformed(format!("truncated: {} of 20 header bytes", p.len()))
        }
        HeaderSliceError::Len(l) if l.required_len > ip.payload_len => bad_len(l.required_len),
        HeaderSliceError::Len(l) => malformed(format!(
            "truncated: {} of {} header bytes",
            p.len(),
            l.required_len
        )),
        HeaderSliceError::Content(HeaderError::DataOffsetTooSmall { data_offset }) => {
            bad_len(usize::from(data_offset) * 4)
        }
    })?;
    let header_len = hdr.slice().len();
    if header_len > ip.payload_len {
        return Err(bad_len(header_len));
    }
    let (options, options_malformed) = parse_tcp_options(hdr.options());
    let flags = [
        hdr.fin(),
        hdr.syn(),
        hdr.rst(),
        hdr.psh(),
        hdr.ack(),
        hdr.urg(),
        hdr.ece(),
        hdr.cwr(),
        hdr.ns(), // AE since RFC 9768
    ]
    .iter()
    .enumerate()
    .fold(0u16, |acc, (bit, &set)| acc | (u16::from(set) << bit));
    Ok(Tcp {
        src_port: hdr.source_port(),
        dst_port: hdr.destination_port(),
        seq: hdr.sequence_number(),
        ack: hdr.acknowledgment_number(),
        header_len,
        flags,
        window: hdr.window_size(),
        checksum: hdr.checksum(),
        checksum_ok: whole.then(|| ip.pseudo(6, p) == 0),
        urgent_ptr: hdr.urgent_pointer(),
        options,
        options_malformed,
        payload_len: ip.payload_len - header_len,
    })
}

/// Parses a TCP options area in order; the flag is set when an option runs past the end.
///
/// Well-formed MSS, window scale, SACK-permitted, SACK and timestamp options, NOP and
/// EOL come from etherparse's option iterator. What it refuses, an unknown kind or a
/// known kind of the wrong length, is still a kind-length-value triple (RFC 9293
/// §3.2), kept as [`TcpOption::Unknown`] so the printers can show it as tcpdump does;
/// only a length that is below 2 or runs past the area ends the walk.
pub fn parse_tcp_options(mut b: &[u8]) -> (Vec<TcpOption>, bool) {
    use etherparse::TcpOptionElement as E;
    let mut out = Vec::new();
    while !b.is_empty() {
        let mut it = etherparse::TcpOptionsIterator::from_slice(b);
        match it.next() {
            // The iterator stops at End of Option List without consuming it.
            None => {
                out.push(TcpOption::Eol);
                break;
            }
            Some(Ok(e)) => {
                out.push(match e {
                    E::Noop => TcpOption::Nop,
                    E::MaximumSegmentSize(value) => TcpOption::Mss { value },
                    E::WindowScale(shift) => TcpOption::WindowScale { shift },
                    E::SelectiveAcknowledgementPermitted => TcpOption::SackPermitted,
                    E::SelectiveAcknowledgement(first, rest) => TcpOption::Sack {
                        blocks: core::iter::once(first)
                            .chain(rest.into_iter().flatten())
                            .collect(),
                    },
                    E::Timestamp(val, ecr) => TcpOption::Timestamp { val, ecr },
                });
                b = it.rest();
            }
            Some(Err(_)) => {
                let kind = b[0];
                let Some(len) = b.get(1).map(|&l| usize::from(l)) else {
                    return (out, true);
                };
                if len < 2 || len > b.len() {
                    return (out, true);
                }
                out.push(TcpOption::Unknown {
                    kind,
                    data: b[2..len].to_vec(),
                });
                b = &b[len..];
            }
        }
    }
    (out, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_keep_wire_order_and_nops() {
        let bytes = [
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 10,
        ];
        let (opts, bad) = parse_tcp_options(&bytes);
        assert!(!bad);
        assert_eq!(
            opts,
            vec![
                TcpOption::Mss { value: 1460 },
                TcpOption::SackPermitted,
                TcpOption::Timestamp { val: 1, ecr: 0 },
                TcpOption::Nop,
                TcpOption::WindowScale { shift: 10 },
            ]
        );
    }

    #[test]
    fn option_overrun_is_flagged() {
        let (opts, bad) = parse_tcp_options(&[1, 2, 4, 5]);
        assert_eq!(opts, vec![TcpOption::Nop]);
        assert!(bad);
    }

    #[test]
    fn every_prefix_of_a_frame_decodes_without_panic() {
        let data = include_bytes!("../../testdata/kernel_veth_ping_udp_tcp.pcap");
        let recs: Vec<_> = ustack::link::PcapReader::new(&data[..])
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for r in &recs {
            for n in 0..=r.data.len() {
                let f = decode_frame(LINKTYPE_ETHERNET, &r.data[..n]);
                if n < r.data.len() && n < 34 {
                    assert!(f.malformed.is_some() || f.arp.is_some(), "{n}: {f:?}");
                }
            }
        }
    }
}
