//! Neighbor Discovery messages (RFC 4861 §4) and their options (§4.6), and MLDv2
//! listener reports and queries (RFC 3810 §5). These are ICMPv6 messages: the ICMPv6
//! header (type, code, checksum) is handled by [`super::Icmpv6Repr`]; this module
//! reads and writes what follows it.
//!
//! Validation here is what the bytes alone can decide (RFC 4861 §6.1, §7.1: lengths,
//! option lengths, multicast targets); checks that need the IP header (hop limit 255,
//! source address rules) are the interface's.

use super::{Error, EthernetAddress};
use core::net::Ipv6Addr;

/// ICMPv6 type: Router Solicitation.
pub(crate) const TYPE_ROUTER_SOLICIT: u8 = 133;
/// ICMPv6 type: Router Advertisement.
pub(crate) const TYPE_ROUTER_ADVERT: u8 = 134;
/// ICMPv6 type: Neighbor Solicitation.
pub(crate) const TYPE_NEIGHBOR_SOLICIT: u8 = 135;
/// ICMPv6 type: Neighbor Advertisement.
pub(crate) const TYPE_NEIGHBOR_ADVERT: u8 = 136;
/// ICMPv6 type: Redirect.
pub(crate) const TYPE_REDIRECT: u8 = 137;

const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_TARGET_LLADDR: u8 = 2;
const OPT_PREFIX_INFO: u8 = 3;
const OPT_MTU: u8 = 5;

/// Most Prefix Information options kept from one Router Advertisement; later ones are
/// ignored (a router that needs more on one link is unusual, and the bound keeps the
/// repr `Copy` and allocation-free).
pub const NDP_MAX_PREFIXES: usize = 4;

/// A Prefix Information option (RFC 4861 §4.6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixInfo {
    /// The prefix (bits past `prefix_len` are ignored by receivers).
    pub prefix: Ipv6Addr,
    /// Prefix length.
    pub prefix_len: u8,
    /// L flag: the prefix is on-link.
    pub on_link: bool,
    /// A flag: usable for stateless address autoconfiguration (RFC 4862).
    pub autonomous: bool,
    /// Valid lifetime in seconds (`u32::MAX` is infinity).
    pub valid_lifetime: u32,
    /// Preferred lifetime in seconds (`u32::MAX` is infinity).
    pub preferred_lifetime: u32,
}

/// A decoded Neighbor Discovery message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NdpRepr {
    /// Router Solicitation (§4.1).
    RouterSolicit {
        /// Source link-layer address option.
        lladdr: Option<EthernetAddress>,
    },
    /// Router Advertisement (§4.2).
    RouterAdvert {
        /// Cur Hop Limit (0: unspecified).
        hop_limit: u8,
        /// M flag: addresses are available via DHCPv6.
        managed: bool,
        /// O flag: other configuration is available via DHCPv6.
        other: bool,
        /// Router Lifetime in seconds (0: not a default router).
        router_lifetime: u16,
        /// Reachable Time in milliseconds (0: unspecified).
        reachable_time: u32,
        /// Retrans Timer in milliseconds (0: unspecified).
        retrans_time: u32,
        /// Source link-layer address option.
        lladdr: Option<EthernetAddress>,
        /// MTU option.
        mtu: Option<u32>,
        /// Prefix Information options, in order (at most [`NDP_MAX_PREFIXES`]).
        prefixes: [Option<PrefixInfo>; NDP_MAX_PREFIXES],
    },
    /// Neighbor Solicitation (§4.3).
    NeighborSolicit {
        /// The address being resolved or checked.
        target: Ipv6Addr,
        /// Source link-layer address option.
        lladdr: Option<EthernetAddress>,
    },
    /// Neighbor Advertisement (§4.4).
    NeighborAdvert {
        /// R flag: the sender is a router.
        router: bool,
        /// S flag: sent in response to a solicitation.
        solicited: bool,
        /// O flag: override an existing cache entry.
        override_: bool,
        /// The address advertised.
        target: Ipv6Addr,
        /// Target link-layer address option.
        lladdr: Option<EthernetAddress>,
    },
    /// Redirect (§4.5); parsed so it can be counted, never acted on.
    Redirect {
        /// Better first hop.
        target: Ipv6Addr,
        /// Destination being redirected.
        dest: Ipv6Addr,
    },
}

fn addr_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(o)
}

/// The options of one message, after RFC 4861 §4.6's length check.
#[derive(Default)]
struct Options {
    source_lladdr: Option<EthernetAddress>,
    target_lladdr: Option<EthernetAddress>,
    mtu: Option<u32>,
    prefixes: [Option<PrefixInfo>; NDP_MAX_PREFIXES],
}

fn parse_options(mut opts: &[u8]) -> Result<Options, Error> {
    let mut out = Options::default();
    let mut n_prefixes = 0;
    while !opts.is_empty() {
        let (&t, len) = match opts {
            [t, len, ..] => (t, usize::from(*len) * 8),
            _ => return Err(Error::Truncated),
        };
        // §4.6: "Nodes MUST silently discard an ND packet that contains an option
        // with length zero."
        if len == 0 {
            return Err(Error::Malformed);
        }
        let body = opts.get(..len).ok_or(Error::Truncated)?;
        match t {
            OPT_SOURCE_LLADDR | OPT_TARGET_LLADDR if len == 8 => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&body[2..8]);
                let mac = Some(EthernetAddress(mac));
                if t == OPT_SOURCE_LLADDR {
                    out.source_lladdr = mac;
                } else {
                    out.target_lladdr = mac;
                }
            }
            OPT_PREFIX_INFO => {
                if len != 32 {
                    return Err(Error::Malformed);
                }
                if n_prefixes < NDP_MAX_PREFIXES {
                    out.prefixes[n_prefixes] = Some(PrefixInfo {
                        prefix_len: body[2],
                        on_link: body[3] & 0x80 != 0,
                        autonomous: body[3] & 0x40 != 0,
                        valid_lifetime: u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
                        preferred_lifetime: u32::from_be_bytes([
                            body[8], body[9], body[10], body[11],
                        ]),
                        prefix: addr_at(body, 16),
                    });
                    n_prefixes += 1;
                }
            }
            OPT_MTU if len == 8 => {
                out.mtu = Some(u32::from_be_bytes([body[4], body[5], body[6], body[7]]));
            }
            // §4.6: "Receivers MUST silently ignore any options they do not recognize".
            _ => {}
        }
        opts = &opts[len..];
    }
    Ok(out)
}

impl NdpRepr {
    /// Parses the body (everything after the 4-byte ICMPv6 header) of a message of
    /// ICMPv6 type `msg_type` with code `code`; `None` when the type is not NDP.
    ///
    /// # Errors
    /// `Malformed` for a non-zero code, a zero-length option, a multicast target or a
    /// bad Prefix Information length; `Truncated` when shorter than the fixed part.
    pub fn parse(msg_type: u8, code: u8, body: &[u8]) -> Option<Result<NdpRepr, Error>> {
        let fixed = match msg_type {
            TYPE_ROUTER_SOLICIT => 4,
            TYPE_ROUTER_ADVERT => 12,
            TYPE_NEIGHBOR_SOLICIT | TYPE_NEIGHBOR_ADVERT => 20,
            TYPE_REDIRECT => 36,
            _ => return None,
        };
        Some((|| {
            // §6.1.1, §7.1.1: "ICMP Code is 0"; "ICMP length ... is N or more octets".
            if code != 0 {
                return Err(Error::Malformed);
            }
            if body.len() < fixed {
                return Err(Error::Truncated);
            }
            let opts = parse_options(&body[fixed..])?;
            Ok(match msg_type {
                TYPE_ROUTER_SOLICIT => NdpRepr::RouterSolicit {
                    lladdr: opts.source_lladdr,
                },
                TYPE_ROUTER_ADVERT => NdpRepr::RouterAdvert {
                    hop_limit: body[0],
                    managed: body[1] & 0x80 != 0,
                    other: body[1] & 0x40 != 0,
                    router_lifetime: u16::from_be_bytes([body[2], body[3]]),
                    reachable_time: u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
                    retrans_time: u32::from_be_bytes([body[8], body[9], body[10], body[11]]),
                    lladdr: opts.source_lladdr,
                    mtu: opts.mtu,
                    prefixes: opts.prefixes,
                },
                TYPE_NEIGHBOR_SOLICIT | TYPE_NEIGHBOR_ADVERT => {
                    let target = addr_at(body, 4);
                    // §7.1.1/§7.1.2: "Target Address is not a multicast address."
                    if target.is_multicast() {
                        return Err(Error::Malformed);
                    }
                    if msg_type == TYPE_NEIGHBOR_SOLICIT {
                        NdpRepr::NeighborSolicit {
                            target,
                            lladdr: opts.source_lladdr,
                        }
                    } else {
                        NdpRepr::NeighborAdvert {
                            router: body[0] & 0x80 != 0,
                            solicited: body[0] & 0x40 != 0,
                            override_: body[0] & 0x20 != 0,
                            target,
                            lladdr: opts.target_lladdr,
                        }
                    }
                }
                _ => NdpRepr::Redirect {
                    target: addr_at(body, 4),
                    dest: addr_at(body, 20),
                },
            })
        })())
    }

    /// The ICMPv6 type of this message.
    pub fn msg_type(&self) -> u8 {
        match self {
            NdpRepr::RouterSolicit { .. } => TYPE_ROUTER_SOLICIT,
            NdpRepr::RouterAdvert { .. } => TYPE_ROUTER_ADVERT,
            NdpRepr::NeighborSolicit { .. } => TYPE_NEIGHBOR_SOLICIT,
            NdpRepr::NeighborAdvert { .. } => TYPE_NEIGHBOR_ADVERT,
            NdpRepr::Redirect { .. } => TYPE_REDIRECT,
        }
    }

    /// Bytes of the body (after the 4-byte ICMPv6 header) when emitted.
    pub fn body_len(&self) -> usize {
        let ll = |l: &Option<EthernetAddress>| if l.is_some() { 8 } else { 0 };
        match self {
            NdpRepr::RouterSolicit { lladdr } => 4 + ll(lladdr),
            NdpRepr::RouterAdvert {
                lladdr,
                mtu,
                prefixes,
                ..
            } => {
                12 + ll(lladdr)
                    + if mtu.is_some() { 8 } else { 0 }
                    + 32 * prefixes.iter().flatten().count()
            }
            NdpRepr::NeighborSolicit { lladdr, .. } | NdpRepr::NeighborAdvert { lladdr, .. } => {
                20 + ll(lladdr)
            }
            NdpRepr::Redirect { .. } => 36,
        }
    }

    /// Writes the body into `buf[..body_len()]`.
    pub fn emit_body(&self, buf: &mut [u8]) {
        let buf = &mut buf[..self.body_len()];
        buf.fill(0);
        let lladdr_opt = |b: &mut [u8], t: u8, mac: &EthernetAddress| {
            b[0] = t;
            b[1] = 1;
            b[2..8].copy_from_slice(&mac.0);
        };
        match *self {
            NdpRepr::RouterSolicit { lladdr } => {
                if let Some(mac) = lladdr {
                    lladdr_opt(&mut buf[4..], OPT_SOURCE_LLADDR, &mac);
                }
            }
            NdpRepr::RouterAdvert {
                hop_limit,
                managed,
                other,
                router_lifetime,
                reachable_time,
                retrans_time,
                lladdr,
                mtu,
                prefixes,
            } => {
                buf[0] = hop_limit;
                buf[1] = (u8::from(managed) << 7) | (u8::from(other) << 6);
                buf[2..4].copy_from_slice(&router_lifetime.to_be_bytes());
                buf[4..8].copy_from_slice(&reachable_time.to_be_bytes());
                buf[8..12].copy_from_slice(&retrans_time.to_be_bytes());
                let mut at = 12;
                if let Some(mac) = lladdr {
                    lladdr_opt(&mut buf[at..], OPT_SOURCE_LLADDR, &mac);
                    at += 8;
                }
                if let Some(mtu) = mtu {
                    buf[at] = OPT_MTU;
                    buf[at + 1] = 1;
                    buf[at + 4..at + 8].copy_from_slice(&mtu.to_be_bytes());
                    at += 8;
                }
                for p in prefixes.iter().flatten() {
                    let b = &mut buf[at..at + 32];
                    b[0] = OPT_PREFIX_INFO;
                    b[1] = 4;
                    b[2] = p.prefix_len;
                    b[3] = (u8::from(p.on_link) << 7) | (u8::from(p.autonomous) << 6);
                    b[4..8].copy_from_slice(&p.valid_lifetime.to_be_bytes());
                    b[8..12].copy_from_slice(&p.preferred_lifetime.to_be_bytes());
                    b[16..32].copy_from_slice(&p.prefix.octets());
                    at += 32;
                }
            }
            NdpRepr::NeighborSolicit { target, lladdr } => {
                buf[4..20].copy_from_slice(&target.octets());
                if let Some(mac) = lladdr {
                    lladdr_opt(&mut buf[20..], OPT_SOURCE_LLADDR, &mac);
                }
            }
            NdpRepr::NeighborAdvert {
                router,
                solicited,
                override_,
                target,
                lladdr,
            } => {
                buf[0] = (u8::from(router) << 7)
                    | (u8::from(solicited) << 6)
                    | (u8::from(override_) << 5);
                buf[4..20].copy_from_slice(&target.octets());
                if let Some(mac) = lladdr {
                    lladdr_opt(&mut buf[20..], OPT_TARGET_LLADDR, &mac);
                }
            }
            NdpRepr::Redirect { target, dest } => {
                buf[4..20].copy_from_slice(&target.octets());
                buf[20..36].copy_from_slice(&dest.octets());
            }
        }
    }
}

/// ICMPv6 type: Multicast Listener Query (RFC 3810 §5.1).
pub(crate) const TYPE_MLD_QUERY: u8 = 130;
/// ICMPv6 type: Version 2 Multicast Listener Report (RFC 3810 §5.2).
pub(crate) const TYPE_MLD2_REPORT: u8 = 143;

/// MLDv2 record type MODE_IS_EXCLUDE (RFC 3810 §5.2.12): the answer to a query for a
/// group we listen to with no source filter.
pub const MLD_MODE_IS_EXCLUDE: u8 = 2;
/// MLDv2 record type CHANGE_TO_EXCLUDE_MODE: the state-change report sent on joining.
pub const MLD_CHANGE_TO_EXCLUDE: u8 = 4;

/// Length of one MLDv2 address record without sources or auxiliary data.
pub const MLD2_RECORD_LEN: usize = 20;

/// An MLDv2 listener report (RFC 3810 §5.2): the records as they are on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mld2Report<'a> {
    /// Number of address records.
    pub count: u16,
    /// The records, validated to hold `count` of them.
    pub records: &'a [u8],
}

impl<'a> Mld2Report<'a> {
    /// Parses the body after the 4-byte ICMPv6 header.
    ///
    /// # Errors
    /// `Truncated` when the records do not fit.
    pub fn parse(body: &'a [u8]) -> Result<Mld2Report<'a>, Error> {
        let b = body.get(..4).ok_or(Error::Truncated)?;
        let count = u16::from_be_bytes([b[2], b[3]]);
        let records = &body[4..];
        let mut at = 0usize;
        for _ in 0..count {
            let r = records
                .get(at..at + MLD2_RECORD_LEN)
                .ok_or(Error::Truncated)?;
            let len = MLD2_RECORD_LEN
                + 16 * usize::from(u16::from_be_bytes([r[2], r[3]]))
                + 4 * usize::from(r[1]);
            if records.len() < at + len {
                return Err(Error::Truncated);
            }
            at += len;
        }
        Ok(Mld2Report {
            count,
            records: &records[..at],
        })
    }

    /// Every record as `(record type, multicast address)`.
    pub fn groups(&self) -> impl Iterator<Item = (u8, Ipv6Addr)> + 'a {
        let mut rest = self.records;
        (0..self.count).map_while(move |_| {
            let r = rest.get(..MLD2_RECORD_LEN)?;
            let len = MLD2_RECORD_LEN
                + 16 * usize::from(u16::from_be_bytes([r[2], r[3]]))
                + 4 * usize::from(r[1]);
            let item = (r[0], addr_at(r, 4));
            rest = rest.get(len..)?;
            Some(item)
        })
    }

    /// Writes one source-less record for `group` into `buf[..MLD2_RECORD_LEN]`.
    pub fn emit_record(buf: &mut [u8], record_type: u8, group: Ipv6Addr) {
        let b = &mut buf[..MLD2_RECORD_LEN];
        b.fill(0);
        b[0] = record_type;
        b[4..20].copy_from_slice(&group.octets());
    }

    /// Bytes of the body (after the 4-byte ICMPv6 header).
    pub fn body_len(&self) -> usize {
        4 + self.records.len()
    }

    /// Writes the body into `buf[..body_len()]`.
    pub fn emit_body(&self, buf: &mut [u8]) {
        buf[0..2].fill(0);
        buf[2..4].copy_from_slice(&self.count.to_be_bytes());
        buf[4..4 + self.records.len()].copy_from_slice(self.records);
    }
}

/// Reads the multicast address of an MLD query body (RFC 3810 §5.1: MLDv1's 24 bytes
/// or MLDv2's 28 and more; `::` for a general query).
///
/// # Errors
/// `Truncated` when shorter than an MLDv1 query.
pub fn parse_mld_query(body: &[u8]) -> Result<Ipv6Addr, Error> {
    if body.len() < 20 {
        return Err(Error::Truncated);
    }
    Ok(addr_at(body, 4))
}
