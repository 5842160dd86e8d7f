//! IPv6 decoding for [`crate::decode`]: the fixed header (RFC 8200 §3), the extension
//! header chain (hop-by-hop and destination options §4.3/§4.6, routing §4.4, fragment
//! §4.5), ICMPv6 (RFC 4443) with NDP (RFC 4861) and MLD (RFC 2710, RFC 3810) messages.
//!
//! The headers are read through etherparse's slices (`Ipv6HeaderSlice`,
//! `Ipv6RawExtHeaderSlice`, `Ipv6FragmentHeaderSlice`, `Icmpv6Slice`,
//! `NdpOptionsIterator`), which check lengths; this module keeps every field a printer
//! needs, adds checksum verdicts over the IPv6 pseudo-header (RFC 8200 §8.1), and never
//! panics: a chain that cannot be walked stops there and is named in
//! [`Frame::malformed`](crate::decode::Frame::malformed).

use crate::decode::{Frame, Malformed};
use core::net::{IpAddr, Ipv6Addr};
use serde::Serialize;
use ustack::wire::checksum::Sum;

/// IPv6 header and its extension headers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ipv6 {
    /// Traffic class (DSCP and ECN).
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
    /// Payload length field.
    pub payload_len: u16,
    /// Next header field of the fixed header.
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Extension headers in wire order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ext: Vec<Ipv6Ext>,
    /// The header the chain ended on: the upper-layer protocol, or the next header of a
    /// later fragment (whose upper-layer header is in the first fragment).
    pub protocol: u8,
    /// Bytes after the extension headers as the payload length field says (the
    /// upper-layer message this packet carries, or the fragment's data).
    pub upper_len: usize,
    /// Bytes the frame lacks against the payload length field (0 when complete, or
    /// when only the capture's snapshot length cut it).
    pub missing: usize,
    /// The extension-header chain could not be walked to its end (the reason is in
    /// the frame's `malformed`): how many bytes the header that did not fit had.
    pub chain_error: Option<usize>,
}

impl Ipv6 {
    /// The fragment header, if any.
    pub fn fragment(&self) -> Option<&Fragment6> {
        self.ext.iter().find_map(|e| match e {
            Ipv6Ext::Fragment(f) => Some(f),
            _ => None,
        })
    }

    /// True for a fragment with a non-zero offset (it carries no upper-layer header).
    pub fn later_fragment(&self) -> bool {
        self.fragment().is_some_and(|f| f.offset != 0)
    }
}

/// One option of a hop-by-hop or destination options header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ipv6Option {
    /// Option type (0 = Pad1, which has no length byte).
    pub kind: u8,
    /// Option data.
    pub data: Vec<u8>,
}

/// The fragment header (RFC 8200 §4.5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fragment6 {
    /// Next header of the fragmented part.
    pub next_header: u8,
    /// Fragment offset in bytes.
    pub offset: u16,
    /// More fragments.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

/// An IPv6 extension header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "header", rename_all = "snake_case")]
pub enum Ipv6Ext {
    /// Hop-by-hop options (next header 0).
    HopByHop {
        /// Next header.
        next_header: u8,
        /// Header length in bytes.
        len: usize,
        /// Options in wire order; `None` when an option runs past the header.
        options: Option<Vec<Ipv6Option>>,
    },
    /// Destination options (next header 60).
    DestOpts {
        /// Next header.
        next_header: u8,
        /// Header length in bytes.
        len: usize,
        /// Options in wire order; `None` when an option runs past the header.
        options: Option<Vec<Ipv6Option>>,
    },
    /// Routing header (next header 43).
    Routing {
        /// Next header.
        next_header: u8,
        /// Hdr Ext Len field (8-byte units beyond the first 8).
        len_field: u8,
        /// Routing type.
        routing_type: u8,
        /// Segments left.
        segments_left: u8,
        /// The word after segments left (reserved for types 0 and 2; last entry,
        /// flags and tag for type 4).
        word: u32,
        /// The addresses carried (types 0, 2 and 4).
        addresses: Vec<Ipv6Addr>,
    },
    /// Fragment header (next header 44).
    Fragment(Fragment6),
}

/// The IPv6 packet quoted by an ICMPv6 error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Quoted6 {
    /// Quoted source.
    pub src: Ipv6Addr,
    /// Quoted destination.
    pub dst: Ipv6Addr,
    /// The upper-layer protocol reached through the quoted chain, with the first two
    /// port words when TCP or UDP (tcpdump's `get_upperlayer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper: Option<(u8, u16, u16)>,
}

/// One NDP option (RFC 4861 §4.6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "option", rename_all = "snake_case")]
pub enum NdpOption {
    /// Source link-layer address (type 1).
    SourceLinkAddr {
        /// The address bytes.
        addr: Vec<u8>,
    },
    /// Target link-layer address (type 2).
    TargetLinkAddr {
        /// The address bytes.
        addr: Vec<u8>,
    },
    /// Prefix information (type 3).
    Prefix {
        /// Prefix length.
        prefix_len: u8,
        /// On-link flag.
        on_link: bool,
        /// Autonomous address-configuration flag.
        autonomous: bool,
        /// Valid lifetime (s).
        valid: u32,
        /// Preferred lifetime (s).
        preferred: u32,
        /// The prefix.
        prefix: Ipv6Addr,
    },
    /// Redirected header (type 4).
    Redirected {
        /// Bytes of the redirected packet.
        len: usize,
    },
    /// MTU (type 5).
    Mtu {
        /// The MTU.
        mtu: u32,
    },
    /// Any other type.
    Other {
        /// Option type.
        kind: u8,
        /// Option length in bytes.
        len: usize,
    },
}

/// One MLDv2 multicast address record (RFC 3810 §5.2.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct McastRecord {
    /// Record type (1..=6).
    pub record_type: u8,
    /// Multicast address.
    pub group: Ipv6Addr,
    /// Source addresses.
    pub sources: Vec<Ipv6Addr>,
}

/// What an ICMPv6 message carries beyond type, code and checksum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Icmpv6Body {
    /// Echo request or reply.
    Echo {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
    },
    /// An error (destination unreachable, packet too big, time exceeded, parameter
    /// problem) with its 32-bit word (MTU, pointer or unused) and the quote.
    Error {
        /// MTU (packet too big), pointer (parameter problem), unused otherwise.
        word: u32,
        /// The quoted packet, when its header was captured.
        quoted: Option<Quoted6>,
    },
    /// Router solicitation.
    RouterSolicit {
        /// Options.
        options: Vec<NdpOption>,
    },
    /// Router advertisement.
    RouterAdvert {
        /// Cur hop limit.
        hop_limit: u8,
        /// The flags byte (M 0x80, O 0x40, H 0x20, Prf 0x18, P 0x04).
        flags: u8,
        /// Router lifetime (s).
        lifetime: u16,
        /// Reachable time (ms).
        reachable: u32,
        /// Retrans timer (ms).
        retrans: u32,
        /// Options.
        options: Vec<NdpOption>,
    },
    /// Neighbour solicitation.
    NeighborSolicit {
        /// Target address.
        target: Ipv6Addr,
        /// Options.
        options: Vec<NdpOption>,
    },
    /// Neighbour advertisement.
    NeighborAdvert {
        /// The flags byte (R 0x80, S 0x40, O 0x20).
        flags: u8,
        /// Target address.
        target: Ipv6Addr,
        /// Options.
        options: Vec<NdpOption>,
    },
    /// Redirect.
    Redirect {
        /// Target (better first hop).
        target: Ipv6Addr,
        /// Destination redirected.
        dst: Ipv6Addr,
        /// Options.
        options: Vec<NdpOption>,
    },
    /// MLDv1 query/report/done, or an MLDv2 query.
    Mld {
        /// Maximum response code.
        max_resp: u16,
        /// Multicast address.
        group: Ipv6Addr,
        /// Number of sources (MLDv2 query only).
        sources: Option<u16>,
    },
    /// MLDv2 report.
    Mldv2Report {
        /// Number of records the header announces.
        count: u16,
        /// The records that are wholly present.
        records: Vec<McastRecord>,
    },
    /// Anything else, or a message too short for its type.
    Other,
}

/// ICMPv6 message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Icmpv6 {
    /// Type.
    pub icmp_type: u8,
    /// Code.
    pub code: u8,
    /// Checksum as carried.
    pub checksum: u16,
    /// Whether it verifies; `None` when not all of the message is here.
    pub checksum_ok: Option<bool>,
    /// Message length this packet carries (per the IPv6 payload length).
    pub len: usize,
    /// Type-specific fields.
    pub body: Icmpv6Body,
    /// The message bytes present (for tcpdump's hex dump of unknown types).
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

/// Checksum over the IPv6 pseudo-header (RFC 8200 §8.1) and `data`; 0 verifies.
pub fn pseudo6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, data: &[u8]) -> u16 {
    let len = (data.len() as u32).to_be_bytes();
    Sum::default()
        .add_bytes(&src.octets())
        .add_bytes(&dst.octets())
        .add_bytes(&len)
        .add_bytes(&[0, 0, 0, next_header])
        .add_bytes(data)
        .finish()
}

/// Options of a hop-by-hop or destination options header (type-length-value, Pad1
/// alone); `None` if one runs past the area.
fn parse_options(mut b: &[u8]) -> Option<Vec<Ipv6Option>> {
    let mut out = Vec::new();
    while let Some(&kind) = b.first() {
        if kind == 0 {
            out.push(Ipv6Option {
                kind,
                data: Vec::new(),
            });
            b = &b[1..];
            continue;
        }
        let len = usize::from(*b.get(1)?);
        let data = b.get(2..2 + len)?;
        out.push(Ipv6Option {
            kind,
            data: data.to_vec(),
        });
        b = &b[2 + len..];
    }
    Some(out)
}

fn addrs(b: &[u8]) -> Vec<Ipv6Addr> {
    b.chunks_exact(16)
        .filter_map(|c| <[u8; 16]>::try_from(c).ok().map(Ipv6Addr::from))
        .collect()
}

fn addr_at(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let a: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(a))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Walks an extension-header chain starting with `nh` over `data`. Returns the headers,
/// the header it stopped on, the offset of what follows, and a reason if a header did
/// not fit.
fn walk_chain(mut nh: u8, data: &[u8]) -> (Vec<Ipv6Ext>, u8, usize, Option<String>) {
    let mut ext = Vec::new();
    let mut off = 0;
    loop {
        let rest = data.get(off..).unwrap_or(&[]);
        match nh {
            0 | 60 | 43 => {
                let h = match etherparse::Ipv6RawExtHeaderSlice::from_slice(rest) {
                    Ok(h) => h,
                    Err(e) => {
                        let name = match nh {
                            0 => "hop-by-hop",
                            60 => "destination options",
                            _ => "routing",
                        };
                        let reason = format!(
                            "{name} header truncated: {} of {} bytes",
                            rest.len(),
                            e.required_len
                        );
                        return (ext, nh, off, Some(reason));
                    }
                };
                let bytes = h.slice();
                let next_header = h.next_header().0;
                ext.push(match nh {
                    0 => Ipv6Ext::HopByHop {
                        next_header,
                        len: bytes.len(),
                        options: parse_options(&bytes[2..]),
                    },
                    60 => Ipv6Ext::DestOpts {
                        next_header,
                        len: bytes.len(),
                        options: parse_options(&bytes[2..]),
                    },
                    _ => Ipv6Ext::Routing {
                        next_header,
                        len_field: bytes[1],
                        routing_type: bytes[2],
                        segments_left: bytes[3],
                        word: be32(bytes, 4).unwrap_or(0),
                        addresses: if matches!(bytes[2], 0 | 2 | 4) {
                            addrs(&bytes[8..])
                        } else {
                            Vec::new()
                        },
                    },
                });
                off += bytes.len();
                nh = next_header;
            }
            44 => {
                let h = match etherparse::Ipv6FragmentHeaderSlice::from_slice(rest) {
                    Ok(h) => h,
                    Err(_) => {
                        let reason =
                            format!("fragment header truncated: {} of 8 bytes", rest.len());
                        return (ext, nh, off, Some(reason));
                    }
                };
                let frag = Fragment6 {
                    next_header: h.next_header().0,
                    offset: h.fragment_offset().value() * 8,
                    more: h.more_fragments(),
                    ident: h.identification(),
                };
                off += 8;
                nh = frag.next_header;
                let later = frag.offset != 0;
                ext.push(Ipv6Ext::Fragment(frag));
                if later {
                    // A later fragment carries no upper-layer header: stop here.
                    return (ext, nh, off, None);
                }
            }
            _ => return (ext, nh, off, None),
        }
    }
}

/// Decodes an IPv6 packet `p` into `f` (the link layer already decoded).
pub fn decode_ipv6(f: &mut Frame, p: &[u8]) {
    use etherparse::err::ipv6::{HeaderError, HeaderSliceError};
    let hdr = match etherparse::Ipv6HeaderSlice::from_slice(p) {
        Ok(h) => h,
        Err(e) => {
            let reason = match e {
                HeaderSliceError::Len(l) => {
                    format!("truncated: {} of {} header bytes", p.len(), l.required_len)
                }
                HeaderSliceError::Content(HeaderError::UnexpectedVersion { version_number }) => {
                    format!("version {version_number}")
                }
            };
            f.malformed = Some(Malformed {
                layer: "ipv6",
                reason,
            });
            return;
        }
    };
    let payload_len = hdr.payload_length();
    let total = 40 + usize::from(payload_len);
    // The bytes of this IP packet on the wire (the link header is what the capture
    // holds before `p`).
    let link_hdr = f.captured_len.saturating_sub(p.len());
    let wire = (f.wire_len as usize).saturating_sub(link_hdr);
    // A zero payload length announces a jumbogram (RFC 2675): the chain is walked
    // over what was captured, as tcpdump does, to find the hop-by-hop option.
    let end = if payload_len == 0 {
        p.len()
    } else {
        total.min(p.len())
    };
    let data = &p[40..end.max(40)];
    let (ext, protocol, off, bad) = walk_chain(hdr.next_header().0, data);
    let ext_len = off.min(data.len());
    let upper_len = usize::from(payload_len).saturating_sub(off);
    let mut ip = Ipv6 {
        traffic_class: hdr.traffic_class(),
        flow_label: hdr.flow_label().value(),
        payload_len,
        next_header: hdr.next_header().0,
        hop_limit: hdr.hop_limit(),
        src: hdr.source_addr(),
        dst: hdr.destination_addr(),
        ext,
        protocol,
        upper_len,
        missing: total.saturating_sub(wire),
        chain_error: bad.is_some().then(|| data.len().saturating_sub(off)),
    };
    let truncated = p.len() < total;
    if let Some(reason) = bad {
        f.malformed = Some(Malformed {
            layer: "ipv6",
            reason,
        });
        f.ipv6 = Some(ip);
        return;
    }
    if truncated && f.captured_len as u32 >= f.wire_len {
        f.malformed = Some(Malformed {
            layer: "ipv6",
            reason: format!(
                "truncated: payload length {payload_len}, {} bytes present",
                p.len().saturating_sub(40)
            ),
        });
    }
    let upper = if payload_len == 0 {
        &[][..]
    } else {
        &data[ext_len..]
    };
    if let Some(frag) = ip.fragment() {
        f.fragment_payload = Some(upper.to_vec());
        if frag.offset != 0 {
            f.ipv6 = Some(ip);
            return;
        }
    }
    let whole = !truncated && !ip.fragment().is_some_and(|fr| fr.more);
    if payload_len == 0 {
        ip.upper_len = 0;
    }
    let (src, dst, len) = (ip.src, ip.dst, ip.upper_len);
    f.ipv6 = Some(ip);
    decode_upper6(f, src, dst, protocol, upper, len, whole);
}

/// Decodes a datagram reassembled from fragments: `data` is the fragmentable part,
/// starting with the header `next_header` names (the fragment header's).
pub fn decode_reassembled6(
    f: &mut Frame,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    data: &[u8],
) {
    let (_, proto, off, bad) = walk_chain(next_header, data);
    if let Some(reason) = bad {
        f.malformed = Some(Malformed {
            layer: "ipv6",
            reason,
        });
        return;
    }
    let upper = data.get(off..).unwrap_or(&[]);
    decode_upper6(f, src, dst, proto, upper, upper.len(), true);
}

/// Decodes the upper layer of an IPv6 packet.
pub fn decode_upper6(
    f: &mut Frame,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    protocol: u8,
    upper: &[u8],
    len: usize,
    whole: bool,
) {
    let ctx = crate::decode::L4 {
        src: IpAddr::V6(src),
        dst: IpAddr::V6(dst),
        payload_len: len,
        fragment: !whole && f.ipv6.as_ref().is_some_and(|i| i.fragment().is_some()),
    };
    let result = match protocol {
        58 => match decode_icmpv6(src, dst, upper, len, whole) {
            Ok(m) => {
                f.icmpv6 = Some(m);
                Ok(())
            }
            // A message shorter than its 8-byte header still has a type (and maybe a
            // code) to show, as tcpdump does before it runs out of bytes.
            Err(bad) => {
                if let Some(&icmp_type) = upper.first() {
                    f.icmpv6 = Some(Icmpv6 {
                        icmp_type,
                        code: upper.get(1).copied().unwrap_or(0),
                        checksum: 0,
                        checksum_ok: None,
                        len,
                        body: Icmpv6Body::Other,
                        bytes: upper[..upper.len().min(len)].to_vec(),
                    });
                }
                Err(bad)
            }
        },
        6 => crate::decode::decode_tcp(&ctx, upper, whole).map(|t| f.tcp = Some(t)),
        17 => {
            let (udp, bad) = crate::decode::decode_udp(&ctx, upper, whole);
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

fn ndp_options(b: &[u8]) -> Vec<NdpOption> {
    use etherparse::icmpv6::NdpOptionSlice as O;
    let mut out = Vec::new();
    for o in etherparse::icmpv6::NdpOptionsIterator::from_slice(b) {
        let Ok(o) = o else { break };
        out.push(match o {
            O::SourceLinkLayerAddress(s) => NdpOption::SourceLinkAddr {
                addr: s.link_layer_address().to_vec(),
            },
            O::TargetLinkLayerAddress(s) => NdpOption::TargetLinkAddr {
                addr: s.link_layer_address().to_vec(),
            },
            O::PrefixInformation(s) => NdpOption::Prefix {
                prefix_len: s.prefix_length(),
                on_link: s.on_link(),
                autonomous: s.autonomous_address_configuration(),
                valid: s.valid_lifetime(),
                preferred: s.preferred_lifetime(),
                prefix: Ipv6Addr::from(s.prefix()),
            },
            O::RedirectedHeader(s) => NdpOption::Redirected {
                len: s.redirected_packet().len(),
            },
            O::Mtu(s) => NdpOption::Mtu { mtu: s.mtu() },
            other => NdpOption::Other {
                kind: other.option_type().0,
                len: other.as_bytes().len(),
            },
        });
    }
    out
}

/// The packet an ICMPv6 error quotes, and the upper layer reached through its chain.
fn quoted6(q: &[u8]) -> Option<Quoted6> {
    let src = addr_at(q, 8)?;
    let dst = addr_at(q, 24)?;
    let nh = *q.get(6)?;
    let rest = q.get(40..).unwrap_or(&[]);
    let (_, proto, off, _) = walk_chain(nh, rest);
    let l4 = rest.get(off..).unwrap_or(&[]);
    let upper = match proto {
        6 | 17 => match (be16(l4, 0), be16(l4, 2)) {
            (Some(s), Some(d)) => Some((proto, s, d)),
            _ => None,
        },
        _ => None,
    };
    Some(Quoted6 { src, dst, upper })
}

fn decode_icmpv6(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    p: &[u8],
    len: usize,
    whole: bool,
) -> Result<Icmpv6, Malformed> {
    let m = etherparse::Icmpv6Slice::from_slice(p).map_err(|_| Malformed {
        layer: "icmpv6",
        reason: format!("truncated: {} of 8 header bytes", p.len()),
    })?;
    let (icmp_type, code) = (m.type_u8(), m.code_u8());
    let w = m.bytes5to8();
    let word = u32::from_be_bytes(w);
    let body = m.payload();
    let checksum_ok = (whole && p.len() >= len).then(|| pseudo6(src, dst, 58, &p[..len]) == 0);
    let mld = || {
        Some(Icmpv6Body::Mld {
            max_resp: u16::from_be_bytes([w[0], w[1]]),
            group: addr_at(body, 0)?,
            sources: None,
        })
    };
    let detail = match icmp_type {
        1..=4 => Some(Icmpv6Body::Error {
            word,
            quoted: quoted6(body),
        }),
        128 | 129 => Some(Icmpv6Body::Echo {
            ident: u16::from_be_bytes([w[0], w[1]]),
            seq: u16::from_be_bytes([w[2], w[3]]),
        }),
        130 if len >= 28 => Some(Icmpv6Body::Mld {
            max_resp: u16::from_be_bytes([w[0], w[1]]),
            group: addr_at(body, 0).unwrap_or(Ipv6Addr::UNSPECIFIED),
            sources: be16(body, 18),
        }),
        130..=132 => mld(),
        133 => Some(Icmpv6Body::RouterSolicit {
            options: ndp_options(body),
        }),
        134 => (body.len() >= 8).then(|| Icmpv6Body::RouterAdvert {
            hop_limit: w[0],
            flags: w[1],
            lifetime: u16::from_be_bytes([w[2], w[3]]),
            reachable: be32(body, 0).unwrap_or(0),
            retrans: be32(body, 4).unwrap_or(0),
            options: ndp_options(&body[8..]),
        }),
        135 => addr_at(body, 0).map(|target| Icmpv6Body::NeighborSolicit {
            target,
            options: ndp_options(&body[16..]),
        }),
        136 => addr_at(body, 0).map(|target| Icmpv6Body::NeighborAdvert {
            flags: w[0],
            target,
            options: ndp_options(&body[16..]),
        }),
        137 => match (addr_at(body, 0), addr_at(body, 16)) {
            (Some(target), Some(dst)) => Some(Icmpv6Body::Redirect {
                target,
                dst,
                options: ndp_options(&body[32..]),
            }),
            _ => None,
        },
        143 => {
            let count = u16::from_be_bytes([w[2], w[3]]);
            let mut records = Vec::new();
            let mut at = 0;
            for _ in 0..count {
                let (Some(&rt), Some(aux), Some(n), Some(group)) = (
                    body.get(at),
                    body.get(at + 1),
                    be16(body, at + 2),
                    addr_at(body, at + 4),
                ) else {
                    break;
                };
                let n = usize::from(n);
                let Some(srcs) = body.get(at + 20..at + 20 + 16 * n) else {
                    break;
                };
                records.push(McastRecord {
                    record_type: rt,
                    group,
                    sources: addrs(srcs),
                });
                at += 20 + 16 * n + 4 * usize::from(*aux);
            }
            Some(Icmpv6Body::Mldv2Report { count, records })
        }
        _ => None,
    };
    Ok(Icmpv6 {
        icmp_type,
        code,
        checksum: m.checksum(),
        checksum_ok,
        len,
        body: detail.unwrap_or(Icmpv6Body::Other),
        bytes: p[..p.len().min(len)].to_vec(),
    })
}
