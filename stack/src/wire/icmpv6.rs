//! ICMP for IPv6 (RFC 4443): echo, the four error messages, and the Neighbor
//! Discovery and MLD messages it carries (decoded by [`super::ndp`]).
//!
//! The checksum covers the IPv6 pseudo-header (RFC 4443 §2.3, RFC 8200 §8.1), so
//! parsing and emitting take the packet's addresses.

use super::ndp::{self, Mld2Report, NdpRepr};
use super::{checksum, Error};
use core::net::Ipv6Addr;

/// Length of the ICMPv6 header up to and including the 4 message-specific bytes.
pub const ICMPV6_HEADER_LEN: usize = 8;

/// Destination Unreachable code 1: communication administratively prohibited.
pub const ICMPV6_UNREACH_PROHIBITED: u8 = 1;
/// Destination Unreachable code 3: address unreachable.
pub const ICMPV6_UNREACH_ADDRESS: u8 = 3;
/// Destination Unreachable code 4: port unreachable.
pub const ICMPV6_UNREACH_PORT: u8 = 4;

const TYPE_DST_UNREACHABLE: u8 = 1;
const TYPE_PACKET_TOO_BIG: u8 = 2;
const TYPE_TIME_EXCEEDED: u8 = 3;
const TYPE_PARAM_PROBLEM: u8 = 4;
const TYPE_ECHO_REQUEST: u8 = 128;
const TYPE_ECHO_REPLY: u8 = 129;

/// A decoded ICMPv6 message; `data` borrows from the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmpv6Repr<'a> {
    /// Echo request (type 128, RFC 4443 §4.1).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Payload, echoed back verbatim.
        data: &'a [u8],
    },
    /// Echo reply (type 129, §4.2).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Payload of the request.
        data: &'a [u8],
    },
    /// Destination Unreachable (type 1, §3.1).
    DstUnreachable {
        /// 0 no route, 1 prohibited, 3 address unreachable, 4 port unreachable, ...
        code: u8,
        /// As much of the invoking packet as fits.
        data: &'a [u8],
    },
    /// Packet Too Big (type 2, §3.2).
    PacketTooBig {
        /// The MTU of the next-hop link.
        mtu: u32,
        /// As much of the invoking packet as fits.
        data: &'a [u8],
    },
    /// Time Exceeded (type 3, §3.3).
    TimeExceeded {
        /// 0 hop limit exceeded, 1 fragment reassembly time exceeded.
        code: u8,
        /// As much of the invoking packet as fits.
        data: &'a [u8],
    },
    /// Parameter Problem (type 4, §3.4).
    ParamProblem {
        /// 0 erroneous header field, 1 unrecognised Next Header, 2 unrecognised option.
        code: u8,
        /// Offset of the error in the invoking packet.
        pointer: u32,
        /// As much of the invoking packet as fits.
        data: &'a [u8],
    },
    /// A Neighbor Discovery message (RFC 4861).
    Ndp(NdpRepr),
    /// A Multicast Listener Query (RFC 3810 §5.1), with its multicast address.
    MldQuery {
        /// `::` for a general query.
        group: Ipv6Addr,
    },
    /// A Version 2 Multicast Listener Report (RFC 3810 §5.2).
    Mld2Report(Mld2Report<'a>),
    /// Any other type, kept raw.
    Other {
        /// ICMPv6 type.
        msg_type: u8,
        /// ICMPv6 code.
        code: u8,
        /// Everything after the checksum.
        data: &'a [u8],
    },
}

/// The IPv6 pseudo-header sum (RFC 8200 §8.1) for `len` bytes of next header `nh`.
fn pseudo_header(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, len: usize) -> checksum::Sum {
    checksum::Sum::default()
        .add_bytes(&src.octets())
        .add_bytes(&dst.octets())
        .add_bytes(&(len as u32).to_be_bytes())
        .add_bytes(&[0, 0, 0, nh])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl<'a> Icmpv6Repr<'a> {
    /// Parses a whole ICMPv6 message sent from `src` to `dst`, verifying its checksum.
    ///
    /// # Errors
    /// `Truncated` if shorter than its type's fixed part, `Checksum` if the checksum
    /// is wrong, `Malformed` for an invalid NDP message (RFC 4861 §6.1, §7.1).
    pub fn parse(src: Ipv6Addr, dst: Ipv6Addr, msg: &'a [u8]) -> Result<Icmpv6Repr<'a>, Error> {
        if msg.len() < 4 {
            return Err(Error::Truncated);
        }
        if pseudo_header(src, dst, 58, msg.len())
            .add_bytes(msg)
            .finish()
            != 0
        {
            return Err(Error::Checksum);
        }
        let (t, code, body) = (msg[0], msg[1], &msg[4..]);
        if let Some(ndp) = NdpRepr::parse(t, code, body) {
            return ndp.map(Icmpv6Repr::Ndp);
        }
        match t {
            ndp::TYPE_MLD_QUERY => {
                return Ok(Icmpv6Repr::MldQuery {
                    group: ndp::parse_mld_query(body)?,
                })
            }
            ndp::TYPE_MLD2_REPORT => return Ok(Icmpv6Repr::Mld2Report(Mld2Report::parse(body)?)),
            _ => {}
        }
        if msg.len() < ICMPV6_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let rest = &msg[4..8];
        let data = &msg[ICMPV6_HEADER_LEN..];
        let ident = u16::from_be_bytes([rest[0], rest[1]]);
        let seq_no = u16::from_be_bytes([rest[2], rest[3]]);
        Ok(match (t, code) {
            (TYPE_ECHO_REQUEST, 0) => Icmpv6Repr::EchoRequest {
                ident,
                seq_no,
                data,
            },
            (TYPE_ECHO_REPLY, 0) => Icmpv6Repr::EchoReply {
                ident,
                seq_no,
                data,
            },
            (TYPE_DST_UNREACHABLE, code) => Icmpv6Repr::DstUnreachable { code, data },
            (TYPE_PACKET_TOO_BIG, 0) => Icmpv6Repr::PacketTooBig {
                mtu: be32(rest),
                data,
            },
            (TYPE_TIME_EXCEEDED, code) => Icmpv6Repr::TimeExceeded { code, data },
            (TYPE_PARAM_PROBLEM, code) => Icmpv6Repr::ParamProblem {
                code,
                pointer: be32(rest),
                data,
            },
            (msg_type, code) => Icmpv6Repr::Other {
                msg_type,
                code,
                data: &msg[4..],
            },
        })
    }

    /// True for error messages (types below 128, RFC 4443 §2.1), which are never
    /// answered with an error (§2.4 (e.1)).
    pub fn is_error(&self) -> bool {
        match self {
            Icmpv6Repr::DstUnreachable { .. }
            | Icmpv6Repr::PacketTooBig { .. }
            | Icmpv6Repr::TimeExceeded { .. }
            | Icmpv6Repr::ParamProblem { .. } => true,
            Icmpv6Repr::Other { msg_type, .. } => *msg_type < 128,
            _ => false,
        }
    }

    /// Bytes the message takes on the wire.
    pub fn buffer_len(&self) -> usize {
        match self {
            Icmpv6Repr::EchoRequest { data, .. }
            | Icmpv6Repr::EchoReply { data, .. }
            | Icmpv6Repr::DstUnreachable { data, .. }
            | Icmpv6Repr::PacketTooBig { data, .. }
            | Icmpv6Repr::TimeExceeded { data, .. }
            | Icmpv6Repr::ParamProblem { data, .. } => ICMPV6_HEADER_LEN + data.len(),
            Icmpv6Repr::Ndp(n) => 4 + n.body_len(),
            Icmpv6Repr::MldQuery { .. } => 4 + 24,
            Icmpv6Repr::Mld2Report(r) => 4 + r.body_len(),
            Icmpv6Repr::Other { data, .. } => 4 + data.len(),
        }
    }

    /// Writes the message, checksum included, into `buf[..buffer_len()]`.
    pub fn emit(&self, src: Ipv6Addr, dst: Ipv6Addr, buf: &mut [u8]) {
        let len = self.buffer_len();
        let buf = &mut buf[..len];
        let head = |t: u8, code: u8, rest: [u8; 4], data: &[u8], buf: &mut [u8]| {
            buf[0] = t;
            buf[1] = code;
            buf[4..8].copy_from_slice(&rest);
            buf[8..].copy_from_slice(data);
        };
        let join = |a: u16, b: u16| {
            let (a, b) = (a.to_be_bytes(), b.to_be_bytes());
            [a[0], a[1], b[0], b[1]]
        };
        match *self {
            Icmpv6Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => head(TYPE_ECHO_REQUEST, 0, join(ident, seq_no), data, buf),
            Icmpv6Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => head(TYPE_ECHO_REPLY, 0, join(ident, seq_no), data, buf),
            Icmpv6Repr::DstUnreachable { code, data } => {
                head(TYPE_DST_UNREACHABLE, code, [0; 4], data, buf)
            }
            Icmpv6Repr::PacketTooBig { mtu, data } => {
                head(TYPE_PACKET_TOO_BIG, 0, mtu.to_be_bytes(), data, buf)
            }
            Icmpv6Repr::TimeExceeded { code, data } => {
                head(TYPE_TIME_EXCEEDED, code, [0; 4], data, buf)
            }
            Icmpv6Repr::ParamProblem {
                code,
                pointer,
                data,
            } => head(TYPE_PARAM_PROBLEM, code, pointer.to_be_bytes(), data, buf),
            Icmpv6Repr::Ndp(n) => {
                buf[0] = n.msg_type();
                buf[1] = 0;
                n.emit_body(&mut buf[4..]);
            }
            Icmpv6Repr::MldQuery { group } => {
                buf[0] = ndp::TYPE_MLD_QUERY;
                buf[1] = 0;
                buf[4..].fill(0);
                buf[8..24].copy_from_slice(&group.octets());
            }
            Icmpv6Repr::Mld2Report(r) => {
                buf[0] = ndp::TYPE_MLD2_REPORT;
                buf[1] = 0;
                r.emit_body(&mut buf[4..]);
            }
            Icmpv6Repr::Other {
                msg_type,
                code,
                data,
            } => {
                buf[0] = msg_type;
                buf[1] = code;
                buf[4..].copy_from_slice(data);
            }
        }
        buf[2..4].fill(0);
        let sum = pseudo_header(src, dst, 58, len).add_bytes(buf).finish();
        buf[2..4].copy_from_slice(&sum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ndp::{PrefixInfo, MLD_CHANGE_TO_EXCLUDE, NDP_MAX_PREFIXES};
    use crate::wire::{testdata6, EthernetAddress, Ipv6Repr};
    use proptest::prelude::*;

    /// The IPv6 header and ICMPv6 message of a captured frame.
    fn icmp(frame: &[u8]) -> (Ipv6Repr, &[u8]) {
        let (ip, payload) = Ipv6Repr::parse(&frame[14..]).unwrap();
        let walked = crate::wire::walk_ext_headers(ip.next_header, payload, 40, 6, true).unwrap();
        (ip, &payload[walked.offset..])
    }

    fn round_trip(ip: &Ipv6Repr, msg: &[u8]) -> Icmpv6Repr<'static> {
        let repr = Icmpv6Repr::parse(ip.src_addr, ip.dst_addr, msg).unwrap();
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(ip.src_addr, ip.dst_addr, &mut buf);
        assert_eq!(buf, msg, "{repr:?} does not re-emit as captured");
        // Leak is fine in a test: keeps the signature simple.
        Icmpv6Repr::parse(ip.src_addr, ip.dst_addr, Box::leak(buf.into_boxed_slice())).unwrap()
    }

    #[test]
    fn captured_echo_request_and_reply() {
        let (ip, msg) = icmp(testdata6::ECHO_REQUEST);
        let Icmpv6Repr::EchoRequest {
            ident,
            seq_no,
            data,
        } = round_trip(&ip, msg)
        else {
            panic!("not an echo request")
        };
        assert_eq!((ident, seq_no), (8012, 1));
        assert_eq!(data, &[0x55; 8]);
        // Our reply to it is byte for byte what Linux answered.
        let (rip, rmsg) = icmp(testdata6::ECHO_REPLY);
        let reply = Icmpv6Repr::EchoReply {
            ident,
            seq_no,
            data,
        };
        let mut buf = vec![0u8; reply.buffer_len()];
        reply.emit(rip.src_addr, rip.dst_addr, &mut buf);
        assert_eq!(buf, rmsg);
    }

    #[test]
    fn captured_ndp_messages() {
        let kernel_mac = EthernetAddress([2, 0, 0, 0, 0, 0x0a]);
        let peer_mac = EthernetAddress([2, 0, 0, 0, 0, 0x0b]);
        let (ip, msg) = icmp(testdata6::NEIGHBOR_SOLICIT);
        assert_eq!(
            round_trip(&ip, msg),
            Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
                target: testdata6::PEER_IP6,
                lladdr: Some(kernel_mac)
            })
        );
        let (ip, msg) = icmp(testdata6::NEIGHBOR_ADVERT);
        assert_eq!(
            round_trip(&ip, msg),
            Icmpv6Repr::Ndp(NdpRepr::NeighborAdvert {
                router: false,
                solicited: true,
                override_: true,
                target: testdata6::PEER_IP6,
                lladdr: Some(peer_mac)
            })
        );
        // Linux's DAD probe carries a Nonce option (type 14, RFC 7527), which RFC 4861
        // §4.6 has us ignore: it parses, and re-emits without it.
        let (ip, msg) = icmp(testdata6::DAD_NS);
        assert!(ip.src_addr.is_unspecified());
        assert_eq!(msg[24], 14);
        assert!(matches!(
            Icmpv6Repr::parse(ip.src_addr, ip.dst_addr, msg),
            Ok(Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
                lladdr: None,
                ..
            }))
        ));
        let (ip, msg) = icmp(testdata6::ROUTER_SOLICIT);
        assert_eq!(
            round_trip(&ip, msg),
            Icmpv6Repr::Ndp(NdpRepr::RouterSolicit {
                lladdr: Some(peer_mac)
            })
        );
        let (ip, msg) = icmp(testdata6::MLD_REPORT_UNSPEC);
        let Icmpv6Repr::Mld2Report(r) = round_trip(&ip, msg) else {
            panic!("not an MLDv2 report")
        };
        assert_eq!(r.count, 2);
        assert!(r
            .groups()
            .all(|(t, g)| t == MLD_CHANGE_TO_EXCLUDE && g.is_multicast()));
    }

    #[test]
    fn every_truncated_prefix_is_an_error() {
        for frame in testdata6::ALL {
            let (ip, msg) = icmp(frame);
            if ip.next_header == crate::wire::IpProtocol::IPV6_FRAG {
                continue;
            }
            for len in 0..msg.len() {
                assert!(
                    Icmpv6Repr::parse(ip.src_addr, ip.dst_addr, &msg[..len]).is_err(),
                    "{len}-byte prefix of {msg:02x?}"
                );
            }
        }
    }

    #[test]
    fn bad_checksum_zero_length_option_and_multicast_target() {
        let (ip, msg) = icmp(testdata6::NEIGHBOR_SOLICIT);
        let mut bad = msg.to_vec();
        bad[30] ^= 1;
        assert_eq!(
            Icmpv6Repr::parse(ip.src_addr, ip.dst_addr, &bad),
            Err(Error::Checksum)
        );
        let emit = |repr: Icmpv6Repr<'_>, patch: &dyn Fn(&mut Vec<u8>)| {
            let mut b = vec![0u8; repr.buffer_len()];
            repr.emit(ip.src_addr, ip.dst_addr, &mut b);
            patch(&mut b);
            b[2..4].fill(0);
            let sum = pseudo_header(ip.src_addr, ip.dst_addr, 58, b.len())
                .add_bytes(&b)
                .finish();
            b[2..4].copy_from_slice(&sum.to_be_bytes());
            b
        };
        let ns = Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
            target: testdata6::PEER_IP6,
            lladdr: Some(EthernetAddress([2, 0, 0, 0, 0, 1])),
        });
        let zero_opt = emit(ns, &|b| b[25] = 0);
        assert_eq!(
            Icmpv6Repr::parse(ip.src_addr, ip.dst_addr, &zero_opt),
            Err(Error::Malformed)
        );
        let mcast = emit(ns, &|b| b[8] = 0xff);
        assert_eq!(
            Icmpv6Repr::parse(ip.src_addr, ip.dst_addr, &mcast),
            Err(Error::Malformed)
        );
    }

    fn arb_prefix() -> impl Strategy<Value = Option<PrefixInfo>> {
        proptest::option::of(
            (
                any::<[u8; 16]>(),
                0u8..=128,
                any::<bool>(),
                any::<bool>(),
                any::<u32>(),
                any::<u32>(),
            )
                .prop_map(|(p, l, on, a, v, pr)| PrefixInfo {
                    prefix: p.into(),
                    prefix_len: l,
                    on_link: on,
                    autonomous: a,
                    valid_lifetime: v,
                    preferred_lifetime: pr,
                }),
        )
    }

    fn arb_mac() -> impl Strategy<Value = Option<EthernetAddress>> {
        proptest::option::of(any::<[u8; 6]>().prop_map(EthernetAddress))
    }

    fn arb_ndp() -> impl Strategy<Value = NdpRepr> {
        let target = any::<[u8; 16]>().prop_map(|mut a| {
            a[0] &= 0xfe; // never multicast
            Ipv6Addr::from(a)
        });
        prop_oneof![
            arb_mac().prop_map(|lladdr| NdpRepr::RouterSolicit { lladdr }),
            (target.clone(), arb_mac())
                .prop_map(|(target, lladdr)| NdpRepr::NeighborSolicit { target, lladdr }),
            (target.clone(), arb_mac(), any::<[bool; 3]>()).prop_map(|(target, lladdr, f)| {
                NdpRepr::NeighborAdvert {
                    router: f[0],
                    solicited: f[1],
                    override_: f[2],
                    target,
                    lladdr,
                }
            }),
            (
                any::<(u8, bool, bool, u16, u32, u32)>(),
                arb_mac(),
                proptest::option::of(any::<u32>()),
                proptest::collection::vec(arb_prefix(), NDP_MAX_PREFIXES)
            )
                .prop_map(|((h, m, o, rl, rt, rx), lladdr, mtu, p)| {
                    // Emitted prefixes come back packed at the front.
                    let mut prefixes = [None; NDP_MAX_PREFIXES];
                    for (slot, v) in prefixes.iter_mut().zip(p.into_iter().flatten()) {
                        *slot = Some(v);
                    }
                    NdpRepr::RouterAdvert {
                        hop_limit: h,
                        managed: m,
                        other: o,
                        router_lifetime: rl,
                        reachable_time: rt,
                        retrans_time: rx,
                        lladdr,
                        mtu,
                        prefixes,
                    }
                }),
            (target.clone(), target).prop_map(|(target, dest)| NdpRepr::Redirect { target, dest }),
        ]
    }

    proptest! {
        #[test]
        fn ndp_round_trips(n in arb_ndp(), src: [u8; 16], dst: [u8; 16]) {
            let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            let repr = Icmpv6Repr::Ndp(n);
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(src, dst, &mut buf);
            prop_assert_eq!(Icmpv6Repr::parse(src, dst, &buf), Ok(repr));
            for len in 0..buf.len() {
                prop_assert!(Icmpv6Repr::parse(src, dst, &buf[..len]).is_err());
            }
        }

        #[test]
        fn errors_and_echo_round_trip(
            kind in 0u8..6, code: u8, word: u32,
            data in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let (src, dst) = (testdata6::KERNEL_IP6, testdata6::PEER_IP6);
            let (a, b) = ((word >> 16) as u16, word as u16);
            let repr = match kind {
                0 => Icmpv6Repr::EchoRequest { ident: a, seq_no: b, data: &data },
                1 => Icmpv6Repr::EchoReply { ident: a, seq_no: b, data: &data },
                2 => Icmpv6Repr::DstUnreachable { code, data: &data },
                3 => Icmpv6Repr::PacketTooBig { mtu: word, data: &data },
                4 => Icmpv6Repr::TimeExceeded { code, data: &data },
                _ => Icmpv6Repr::ParamProblem { code, pointer: word, data: &data },
            };
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(src, dst, &mut buf);
            prop_assert_eq!(Icmpv6Repr::parse(src, dst, &buf), Ok(repr));
            prop_assert!(Icmpv6Repr::parse(src, dst, &buf[..7]).is_err());
        }

        #[test]
        fn mld_report_round_trips(groups in proptest::collection::vec((any::<u8>(), any::<[u8; 16]>()), 0..6)) {
            let mut records = vec![0u8; groups.len() * ndp::MLD2_RECORD_LEN];
            for (i, (t, g)) in groups.iter().enumerate() {
                Mld2Report::emit_record(&mut records[i * ndp::MLD2_RECORD_LEN..], *t, (*g).into());
            }
            let repr = Icmpv6Repr::Mld2Report(Mld2Report { count: groups.len() as u16, records: &records });
            let (src, dst) = (Ipv6Addr::UNSPECIFIED, crate::wire::ALL_MLDV2_ROUTERS);
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(src, dst, &mut buf);
            let back = Icmpv6Repr::parse(src, dst, &buf).unwrap();
            prop_assert_eq!(back, repr);
            let Icmpv6Repr::Mld2Report(r) = back else { unreachable!() };
            let got: Vec<(u8, Ipv6Addr)> = r.groups().collect();
            let want: Vec<(u8, Ipv6Addr)> = groups.iter().map(|(t, g)| (*t, (*g).into())).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Icmpv6Repr::parse(Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED, &data);
        }
    }
}
