//! IPv6 in the interface: addresses (link-local from the MAC, configured, SLAAC) with
//! duplicate address detection, Neighbor Discovery (resolution, NS/NA, RS/RA), MLDv2
//! reports for the solicited-node groups, ICMPv6 echo and errors, extension headers,
//! fragmentation and reassembly, and Path MTU from Packet Too Big.
//!
//! Invariants:
//! - Every received IPv6 frame is accepted or dropped with exactly one [`DropReason`].
//! - An address is used as a source, or accepted as a destination, only once DAD has
//!   finished for it (RFC 4862 §5.4); a duplicate is never used.
//! - Tables learned from the wire are bounded: [`MAX_ADDRS`] addresses, [`MAX_PREFIXES`]
//!   on-link prefixes, [`MAX_PMTU`] path MTU entries, and the NDP cache's own bounds.
//! - The IPv4 paths do not go through this module.

use super::arp::{ArpAction, ArpConfig, NeighborCache, QueueOutcome};
use super::reassembly::{Ipv6Fragment, Reassembler};
use super::{DropReason, EchoReply, Inner, Interface, WholeFrame, ECHO_REPLY_QUEUE};
use crate::link::FrameMeta;
use crate::socket::tcp::isn::SipKey;
use crate::socket::tcp::SegmentAddrs;
use crate::socket::{IcmpError, IcmpErrorKind, IpFamily, IpTx};
use crate::time::{Duration, Instant};
use crate::wire::ndp::{MLD2_RECORD_LEN, MLD_CHANGE_TO_EXCLUDE, MLD_MODE_IS_EXCLUDE};
use crate::wire::{
    self, eui64_address, is_link_local, link_local_address, multicast_mac, solicited_node,
    walk_ext_headers, EtherType, EthernetAddress, EthernetRepr, ExtError, Icmpv6Repr, IpProtocol,
    Ipv6Cidr, Ipv6FragRepr, Ipv6Repr, Mld2Report, NdpRepr, ALL_MLDV2_ROUTERS, ALL_NODES,
    ALL_ROUTERS, ETHERNET_HEADER_LEN, IPV6_FRAG_HEADER_LEN, IPV6_HEADER_LEN, IPV6_MIN_MTU,
};
use crate::wire::{TcpRepr, UdpRepr, UDP_HEADER_LEN};
use core::net::{IpAddr, Ipv6Addr};
use core::net::{SocketAddr, SocketAddrV6};

/// Most addresses the interface holds (link-local, configured and SLAAC together).
pub const MAX_ADDRS: usize = 16;
/// Most on-link prefixes learned from router advertisements.
pub const MAX_PREFIXES: usize = 16;
/// Most destinations with a path MTU below the link's.
pub const MAX_PMTU: usize = 256;

/// ICMPv6 errors quote at most this much, so the error fits the minimum MTU
/// (RFC 4443 §2.4 (c)).
const ICMPV6_QUOTE_MAX: usize = IPV6_MIN_MTU - IPV6_HEADER_LEN - 8;

/// IPv6 tunables.
#[derive(Clone, Debug)]
pub struct Ipv6Config {
    /// Speak IPv6 at all (it is also off when the MTU is below 1280, RFC 8200 §5).
    /// Off by default in the engine, so an IPv4-only user sees no IPv6 frame; the
    /// socket API's `NetStack` (and so every `ustack` command) turns it on.
    pub enabled: bool,
    /// Configured addresses with their prefixes (on-link); the link-local address
    /// from the MAC is always added.
    pub addresses: Vec<Ipv6Cidr>,
    /// Configured default router (used when no router advertisement gave one).
    pub gateway: Option<Ipv6Addr>,
    /// Take prefixes, a default router and an MTU from router advertisements, and
    /// solicit them at start (Linux `accept_ra`).
    pub accept_ra: bool,
    /// Neighbour solicitations sent for duplicate address detection; 0 disables DAD
    /// (RFC 4862 §5.1 DupAddrDetectTransmits, default 1).
    pub dad_transmits: u32,
    /// Wait between DAD solicitations (RFC 4861 §10 RETRANS_TIMER, 1 s).
    pub retrans_timer: Duration,
    /// Router solicitations sent at start (RFC 4861 §10 MAX_RTR_SOLICITATIONS, 3).
    pub router_solicitations: u32,
    /// Wait between router solicitations (RTR_SOLICITATION_INTERVAL, 4 s).
    pub router_solicitation_interval: Duration,
    /// Hop limit of the packets we originate (until an RA sets Cur Hop Limit).
    pub hop_limit: u8,
    /// How long a lowered path MTU holds before the link MTU is tried again
    /// (RFC 8201 §4 recommends 10 minutes).
    pub pmtu_expiry: Duration,
    /// Neighbour cache tunables ([`ArpConfig::ndp`]).
    pub ndp: ArpConfig,
}

impl Default for Ipv6Config {
    fn default() -> Self {
        Ipv6Config {
            enabled: false,
            addresses: Vec::new(),
            gateway: None,
            accept_ra: true,
            dad_transmits: 1,
            retrans_timer: Duration::from_secs(1),
            router_solicitations: 3,
            router_solicitation_interval: Duration::from_secs(4),
            hop_limit: 64,
            pmtu_expiry: Duration::from_secs(600),
            ndp: ArpConfig::ndp(),
        }
    }
}

/// Where an address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrOrigin {
    /// `fe80::` + EUI-64 of the MAC (RFC 4862 §5.3).
    LinkLocal,
    /// Configured.
    Static,
    /// Formed from a router advertisement's prefix (RFC 4862 §5.5.3).
    Slaac,
}

/// The DAD state of an address (RFC 4862 §5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrState {
    /// DAD in progress: not used yet.
    Tentative,
    /// Usable.
    Preferred,
    /// Another node has it: never used.
    Duplicate,
}

/// One of the interface's IPv6 addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6AddrInfo {
    /// Address and prefix.
    pub cidr: Ipv6Cidr,
    /// Where it came from.
    pub origin: AddrOrigin,
    /// DAD state.
    pub state: AddrState,
    /// When it stops being valid (SLAAC), `None` for ever.
    pub valid_until: Option<Instant>,
}

#[derive(Debug)]
struct AddrEntry {
    info: Ipv6AddrInfo,
    dad_left: u32,
    dad_next: Instant,
}

/// IPv6 state kept beside the IPv4 state in the interface.
#[derive(Debug)]
pub(super) struct Ipv6State {
    pub(super) enabled: bool,
    addrs: Vec<AddrEntry>,
    on_link: Vec<(Ipv6Cidr, Option<Instant>)>,
    /// Default router from an RA and when its lifetime ends.
    router: Option<(Ipv6Addr, Instant)>,
    pub(super) ndp: NeighborCache<Ipv6Addr>,
    ndp_actions: Vec<ArpAction<Ipv6Addr>>,
    pmtu: Vec<(Ipv6Addr, usize, Instant)>,
    link_mtu: usize,
    hop_limit: u8,
    rs_left: u32,
    rs_next: Option<Instant>,
    next_frag_ident: u32,
    /// The secret behind flow labels (RFC 6437 §3): a key of its own, from the seed.
    flow_key: SipKey,
}

/// The domain of the flow-label key (the TCP layer's keys use 1 to 4).
pub(super) const FLOW_LABEL_DOMAIN: u64 = 6437;

/// The flow label of the transport flow `local -> remote` (RFC 6437 §3): a keyed hash of
/// the 4-tuple with the stack's secret, as Linux's `ip6_make_flowlabel` with
/// `auto_flowlabels`, so it is the same on every packet of a connection, differs
/// across connections, and cannot be predicted from outside. 20 bits, never 0 (0
/// means "no label").
pub(crate) fn flow_label(key: &SipKey, local: SocketAddr, remote: SocketAddr) -> u32 {
    let h = key.tuple(local, remote);
    // Fold all 64 bits into 20, so every input bit reaches the label.
    let label = ((h ^ (h >> 20) ^ (h >> 40)) & 0x000f_ffff) as u32;
    if label == 0 {
        1
    } else {
        label
    }
}

impl Ipv6State {
    pub(super) fn new(config: &super::Config) -> Ipv6State {
        let c = &config.ipv6;
        Ipv6State {
            enabled: c.enabled && config.mtu >= IPV6_MIN_MTU,
            addrs: Vec::new(),
            on_link: Vec::new(),
            router: None,
            ndp: NeighborCache::new(c.ndp.clone()),
            ndp_actions: Vec::new(),
            pmtu: Vec::new(),
            link_mtu: config.mtu,
            hop_limit: c.hop_limit,
            rs_left: 0,
            rs_next: None,
            next_frag_ident: (config.seed as u32).rotate_left(7) ^ 0x6a09_e667,
            flow_key: SipKey::from_seed(config.seed, FLOW_LABEL_DOMAIN),
        }
    }

    fn find(&self, addr: Ipv6Addr) -> Option<&AddrEntry> {
        self.addrs.iter().find(|a| a.info.cidr.address() == addr)
    }

    /// True when `addr` is one of ours and usable.
    pub(super) fn is_ours(&self, addr: Ipv6Addr) -> bool {
        self.find(addr)
            .is_some_and(|a| a.info.state == AddrState::Preferred)
    }

    /// The multicast groups we listen to: all-nodes and every solicited-node group of
    /// an address that is not a duplicate (RFC 4861 §7.2.1, RFC 4862 §5.4.2).
    fn is_our_group(&self, addr: Ipv6Addr) -> bool {
        addr == ALL_NODES
            || self.addrs.iter().any(|a| {
                a.info.state != AddrState::Duplicate
                    && solicited_node(a.info.cidr.address()) == addr
            })
    }

    fn groups(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.addrs
            .iter()
            .enumerate()
            .filter(|(_, a)| a.info.state != AddrState::Duplicate)
            .map(|(_, a)| solicited_node(a.info.cidr.address()))
            .enumerate()
            .filter(move |(i, g)| {
                // Each group once, in the order first seen.
                !self
                    .addrs
                    .iter()
                    .filter(|a| a.info.state != AddrState::Duplicate)
                    .take(*i)
                    .any(|a| solicited_node(a.info.cidr.address()) == *g)
            })
            .map(|(_, g)| g)
    }

    /// The addresses the transport layers use: the first usable global one
    /// (configured before SLAAC) and the link-local one.
    pub(super) fn transport_addrs(&self) -> (Option<Ipv6Addr>, Option<Ipv6Addr>) {
        let usable = |o: AddrOrigin| {
            self.addrs
                .iter()
                .find(|a| a.info.origin == o && a.info.state == AddrState::Preferred)
                .map(|a| a.info.cidr.address())
        };
        (
            usable(AddrOrigin::Static).or_else(|| usable(AddrOrigin::Slaac)),
            usable(AddrOrigin::LinkLocal),
        )
    }

    fn link_local(&self) -> Option<Ipv6Addr> {
        self.addrs
            .iter()
            .find(|a| {
                a.info.origin == AddrOrigin::LinkLocal && a.info.state == AddrState::Preferred
            })
            .map(|a| a.info.cidr.address())
    }

    /// Source address for `dst` (RFC 6724 §5, reduced to its scope rule and
    /// longest-prefix tie-break): link-local for link-local and multicast link-scope
    /// destinations, else a usable address on the destination's prefix, else any
    /// usable global one, else the link-local one.
    pub(super) fn source_for(&self, dst: Ipv6Addr) -> Option<Ipv6Addr> {
        let usable = || {
            self.addrs
                .iter()
                .filter(|a| a.info.state == AddrState::Preferred)
        };
        if is_link_local(dst) || (dst.is_multicast() && dst.segments()[0] & 0x000f <= 2) {
            return self.link_local();
        }
        usable()
            .filter(|a| a.info.origin != AddrOrigin::LinkLocal)
            .max_by_key(|a| (u128::from(a.info.cidr.address()) ^ u128::from(dst)).leading_zeros())
            .map(|a| a.info.cidr.address())
            .or_else(|| self.link_local())
    }

    /// True when `dst` is on the link (RFC 4861 §5.2: link-local, or inside a
    /// configured or advertised on-link prefix).
    fn on_link(&self, dst: Ipv6Addr) -> bool {
        is_link_local(dst)
            || self
                .addrs
                .iter()
                .any(|a| a.info.origin == AddrOrigin::Static && a.info.cidr.contains(dst))
            || self.on_link.iter().any(|(p, _)| p.contains(dst))
    }

    /// The IPv6 link MTU: the interface's, or a router advertisement's smaller one.
    pub(super) fn link_mtu(&self) -> usize {
        self.link_mtu
    }

    /// The path MTU towards `dst` (RFC 8201: the link MTU unless a Packet Too Big
    /// lowered it).
    pub(super) fn path_mtu(&self, dst: Ipv6Addr) -> usize {
        self.pmtu
            .iter()
            .find(|(d, _, _)| *d == dst)
            .map_or(self.link_mtu, |&(_, m, _)| m.min(self.link_mtu))
    }

    fn poll_at(&self) -> Option<Instant> {
        let dad = self
            .addrs
            .iter()
            .filter(|a| a.info.state == AddrState::Tentative)
            .map(|a| a.dad_next);
        let valid = self.addrs.iter().filter_map(|a| a.info.valid_until);
        let prefixes = self.on_link.iter().filter_map(|(_, t)| *t);
        let pmtu = self.pmtu.iter().map(|&(_, _, t)| t);
        dad.chain(valid)
            .chain(prefixes)
            .chain(pmtu)
            .chain(self.router.map(|(_, t)| t))
            // A solicitation waiting for the link-local address is due when DAD ends.
            .chain(self.rs_next.filter(|_| self.link_local().is_some()))
            .chain(self.ndp.poll_at())
            .min()
    }
}

/// The 8-byte Hop-by-Hop header MLD messages carry: Router Alert (RFC 2711, value 0
/// = MLD) then PadN, next header ICMPv6 (RFC 3810 §5).
const HBH_ROUTER_ALERT: [u8; 8] = [58, 0, 5, 2, 0, 0, 1, 0];

impl Inner {
    /// Adds the link-local and configured addresses, and sends what a new interface
    /// sends (RFC 4862 §5.4.2: join the solicited-node groups with an MLD report, then
    /// DAD solicitations; RFC 4861 §6.3.7: router solicitations once a link-local
    /// address is usable).
    pub(super) fn v6_start(&mut self, now: Instant) {
        if !self.v6.enabled {
            return;
        }
        let ll = Ipv6Cidr::new(link_local_address(self.config.mac), 64);
        let mut addrs = vec![(ll, AddrOrigin::LinkLocal)];
        addrs.extend(
            self.config
                .ipv6
                .addresses
                .iter()
                .map(|&c| (c, AddrOrigin::Static)),
        );
        for (cidr, origin) in addrs {
            self.v6_add_addr(now, cidr, origin, None);
        }
        self.v6_send_mld_report(MLD_CHANGE_TO_EXCLUDE);
        self.v6_dad_round(now);
        if self.config.ipv6.accept_ra {
            self.v6.rs_left = self.config.ipv6.router_solicitations;
            self.v6.rs_next = Some(now);
            self.v6_maybe_solicit_router(now);
        }
    }

    /// Adds an address (tentative if DAD is on). Returns false when it was already
    /// there or the table is full.
    fn v6_add_addr(
        &mut self,
        now: Instant,
        cidr: Ipv6Cidr,
        origin: AddrOrigin,
        valid_until: Option<Instant>,
    ) -> bool {
        if self.v6.find(cidr.address()).is_some() || self.v6.addrs.len() >= MAX_ADDRS {
            return false;
        }
        let dad = self.config.ipv6.dad_transmits;
        self.v6.addrs.push(AddrEntry {
            info: Ipv6AddrInfo {
                cidr,
                origin,
                state: if dad > 0 {
                    AddrState::Tentative
                } else {
                    AddrState::Preferred
                },
                valid_until,
            },
            dad_left: dad,
            dad_next: now,
        });
        log::info!(target: "ustack::ipv6", "address {cidr} ({origin:?}){}", if dad > 0 { " tentative" } else { "" });
        true
    }

    /// Sends the DAD solicitations that are due and finishes DAD for addresses whose
    /// last solicitation went unanswered for RetransTimer (RFC 4862 §5.4.2, §5.4.3).
    fn v6_dad_round(&mut self, now: Instant) {
        let retrans = self.config.ipv6.retrans_timer;
        let mut probes = Vec::new();
        for a in &mut self.v6.addrs {
            if a.info.state != AddrState::Tentative || a.dad_next > now {
                continue;
            }
            if a.dad_left == 0 {
                a.info.state = AddrState::Preferred;
                log::info!(target: "ustack::ndp", "DAD done: {} is ours", a.info.cidr.address());
                continue;
            }
            a.dad_left -= 1;
            a.dad_next = now + retrans;
            probes.push(a.info.cidr.address());
        }
        for target in probes {
            // §5.4.2: "the Source Address ... is the unspecified address. The
            // Destination Address is the solicited-node multicast address of the
            // target address"; no source link-layer address option (RFC 4861 §7.2.2).
            let dst = solicited_node(target);
            self.v6_send_ndp(
                Ipv6Addr::UNSPECIFIED,
                dst,
                multicast_mac(dst),
                NdpRepr::NeighborSolicit {
                    target,
                    lladdr: None,
                },
            );
        }
    }

    /// Sends a router solicitation if one is due and the link-local address is usable
    /// (RFC 4861 §6.3.7).
    fn v6_maybe_solicit_router(&mut self, now: Instant) {
        let Some(at) = self.v6.rs_next else { return };
        if at > now {
            return;
        }
        let Some(src) = self.v6.link_local() else {
            return; // retried when DAD finishes
        };
        if self.v6.rs_left == 0 {
            self.v6.rs_next = None;
            return;
        }
        self.v6.rs_left -= 1;
        self.v6.rs_next = if self.v6.rs_left > 0 {
            Some(now + self.config.ipv6.router_solicitation_interval)
        } else {
            None
        };
        self.counters.ndp_tx_router_solicits += 1;
        self.v6_send_ndp(
            src,
            ALL_ROUTERS,
            multicast_mac(ALL_ROUTERS),
            NdpRepr::RouterSolicit {
                lladdr: Some(self.config.mac),
            },
        );
    }

    /// Sends an MLDv2 report listing every group we listen to with `record_type`
    /// (RFC 3810 §5.2; all-nodes is never reported, §6).
    fn v6_send_mld_report(&mut self, record_type: u8) {
        let groups: Vec<Ipv6Addr> = self.v6.groups().collect();
        if groups.is_empty() {
            return;
        }
        let mut records = vec![0u8; groups.len() * MLD2_RECORD_LEN];
        for (i, g) in groups.iter().enumerate() {
            Mld2Report::emit_record(&mut records[i * MLD2_RECORD_LEN..], record_type, *g);
        }
        let msg = Icmpv6Repr::Mld2Report(Mld2Report {
            count: groups.len() as u16,
            records: &records,
        });
        // RFC 3810 §5.2.13: from the link-local address, or :: while it is tentative.
        let src = self.v6.link_local().unwrap_or(Ipv6Addr::UNSPECIFIED);
        let dst = ALL_MLDV2_ROUTERS;
        let hdr = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::HOP_BY_HOP,
            hop_limit: 1,
            traffic_class: 0,
            flow_label: 0,
            payload_len: HBH_ROUTER_ALERT.len() + msg.buffer_len(),
        };
        let mut frame = self.frame_buf();
        frame.resize(ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + hdr.payload_len, 0);
        self.v6_eth(multicast_mac(dst)).emit(&mut frame);
        hdr.emit(&mut frame[ETHERNET_HEADER_LEN..]);
        let at = ETHERNET_HEADER_LEN + IPV6_HEADER_LEN;
        frame[at..at + 8].copy_from_slice(&HBH_ROUTER_ALERT);
        msg.emit(src, dst, &mut frame[at + 8..]);
        self.counters.mld_tx_reports += 1;
        self.counters.ipv6_tx_packets += 1;
        log::debug!(target: "ustack::ipv6", "MLDv2 report for {groups:?}");
        self.enqueue(frame);
    }

    fn v6_eth(&self, dst: EthernetAddress) -> EthernetRepr {
        EthernetRepr {
            src_addr: self.config.mac,
            dst_addr: dst,
            ethertype: EtherType::IPV6,
        }
    }

    /// Sends a Neighbor Discovery message with hop limit 255 (RFC 4861 §7.1) straight
    /// to `mac`.
    fn v6_send_ndp(&mut self, src: Ipv6Addr, dst: Ipv6Addr, mac: EthernetAddress, ndp: NdpRepr) {
        let msg = Icmpv6Repr::Ndp(ndp);
        let hdr = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::ICMPV6,
            hop_limit: 255,
            traffic_class: 0,
            flow_label: 0,
            payload_len: msg.buffer_len(),
        };
        let mut frame = self.frame_buf();
        frame.resize(ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + hdr.payload_len, 0);
        self.v6_eth(mac).emit(&mut frame);
        hdr.emit(&mut frame[ETHERNET_HEADER_LEN..]);
        msg.emit(
            src,
            dst,
            &mut frame[ETHERNET_HEADER_LEN + IPV6_HEADER_LEN..],
        );
        match ndp {
            NdpRepr::NeighborSolicit { .. } => self.counters.ndp_tx_solicits += 1,
            NdpRepr::NeighborAdvert { .. } => self.counters.ndp_tx_adverts += 1,
            _ => {}
        }
        self.counters.ipv6_tx_packets += 1;
        log::trace!(target: "ustack::ndp", "send {}", wire::pretty::summarize(&frame));
        self.enqueue(frame);
    }

    /// An IPv6 header from us (the address chosen for `dst`) with our defaults.
    pub(super) fn ip6_header(
        &self,
        dst: Ipv6Addr,
        next_header: IpProtocol,
        payload_len: usize,
    ) -> Option<Ipv6Repr> {
        Some(Ipv6Repr {
            src_addr: self.v6.source_for(dst)?,
            dst_addr: dst,
            next_header,
            hop_limit: self.v6.hop_limit,
            traffic_class: 0,
            flow_label: 0,
            payload_len,
        })
    }

    /// The next hop for `dst`: itself when on-link (or multicast), else the default
    /// router (RFC 4861 §5.2; RFC 4943: never assume off-link destinations on-link).
    fn v6_next_hop(&self, dst: Ipv6Addr) -> Option<Ipv6Addr> {
        if dst.is_multicast() || self.v6.on_link(dst) {
            return Some(dst);
        }
        self.v6.router.map(|(r, _)| r).or(self.config.ipv6.gateway)
    }

    /// Sends an IPv6 packet whose upper-layer payload (`hdr.payload_len` bytes, of
    /// protocol `hdr.next_header`) `fill` writes. Into `out` when it goes out whole to
    /// a known neighbour (its frame length returned), else queued: fragmented when
    /// larger than the path MTU (RFC 8200 §4.5), or behind neighbour resolution.
    pub(super) fn emit_ip6(
        &mut self,
        now: Instant,
        hdr: Ipv6Repr,
        fill: &mut dyn FnMut(&mut [u8]),
        out: Option<&mut [u8]>,
    ) -> Result<Option<usize>, DropReason> {
        let Some(next_hop) = self.v6_next_hop(hdr.dst_addr) else {
            self.count_drop(DropReason::Ipv6NoRoute);
            return Err(DropReason::Ipv6NoRoute);
        };
        let mac = if hdr.dst_addr.is_multicast() {
            Some(multicast_mac(hdr.dst_addr))
        } else {
            self.v6.ndp.set_now(now);
            self.v6.ndp.lookup(next_hop)
        };
        let eth = self.v6_eth(mac.unwrap_or_default());
        let total = IPV6_HEADER_LEN + hdr.payload_len;
        let frame_len = ETHERNET_HEADER_LEN + total;
        let mtu = self.v6.path_mtu(hdr.dst_addr);
        if total <= mtu {
            self.counters.ipv6_tx_packets += 1;
            let out = out.filter(|_| mac.is_some());
            return match self.whole_frame(
                &eth,
                IPV6_HEADER_LEN,
                frame_len,
                &|b| hdr.emit(b),
                fill,
                out,
            ) {
                WholeFrame::Written(n) => Ok(Some(n)),
                WholeFrame::Queued(frame) => {
                    self.v6_route_frame(now, next_hop, mac, frame)?;
                    Ok(None)
                }
            };
        }
        // RFC 8200 §4.5: the source cuts the packet at the path MTU; every fragment
        // but the last carries a multiple of 8 octets. We add no extension headers,
        // so the unfragmentable part is the fixed header alone.
        if hdr.payload_len > 65535 - IPV6_FRAG_HEADER_LEN {
            self.count_drop(DropReason::Ipv6NoRoute);
            return Err(DropReason::Ipv6NoRoute);
        }
        let mut scratch = core::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.resize(hdr.payload_len, 0);
        fill(&mut scratch);
        let chunk = (mtu - IPV6_HEADER_LEN - IPV6_FRAG_HEADER_LEN) & !7;
        let ident = self.v6.next_frag_ident;
        self.v6.next_frag_ident = ident.wrapping_add(1);
        self.counters.ipv6_fragmented += 1;
        let mut result = Ok(None);
        for (i, piece) in scratch.chunks(chunk).enumerate() {
            let offset = i * chunk;
            let fh = Ipv6FragRepr {
                next_header: hdr.next_header,
                offset: offset as u16,
                more_frags: offset + piece.len() < hdr.payload_len,
                ident,
            };
            let fhdr = Ipv6Repr {
                next_header: IpProtocol::IPV6_FRAG,
                payload_len: IPV6_FRAG_HEADER_LEN + piece.len(),
                ..hdr
            };
            let mut frame = self.frame_buf();
            let at = ETHERNET_HEADER_LEN + IPV6_HEADER_LEN;
            frame.resize(at + IPV6_FRAG_HEADER_LEN + piece.len(), 0);
            eth.emit(&mut frame);
            fhdr.emit(&mut frame[ETHERNET_HEADER_LEN..]);
            fh.emit(&mut frame[at..]);
            frame[at + IPV6_FRAG_HEADER_LEN..].copy_from_slice(piece);
            self.counters.ipv6_tx_packets += 1;
            self.counters.ipv6_tx_fragments += 1;
            if let Err(e) = self.v6_route_frame(now, next_hop, mac, frame) {
                result = Err(e);
                break;
            }
        }
        self.scratch = scratch;
        result
    }

    /// Queues a finished frame, or behind neighbour resolution of `next_hop`
    /// (RFC 4861 §7.2.2: a multicast solicitation to its solicited-node group).
    fn v6_route_frame(
        &mut self,
        now: Instant,
        next_hop: Ipv6Addr,
        mac: Option<EthernetAddress>,
        frame: Vec<u8>,
    ) -> Result<(), DropReason> {
        if mac.is_some() {
            self.enqueue(frame);
            return Ok(());
        }
        match self.v6.ndp.queue(now, next_hop, frame) {
            QueueOutcome::Queued => Ok(()),
            QueueOutcome::QueuedSendRequest => {
                log::debug!(target: "ustack::ndp", "resolving {next_hop}");
                self.v6_solicit(next_hop, None);
                Ok(())
            }
            QueueOutcome::Full(frame) => {
                self.recycle(frame);
                self.count_drop(DropReason::NdpQueueFull);
                Err(DropReason::NdpQueueFull)
            }
        }
    }

    /// Sends a neighbour solicitation for `target`: multicast to its solicited-node
    /// group, or unicast to `unicast` (a probe, RFC 4861 §7.3.3).
    fn v6_solicit(&mut self, target: Ipv6Addr, unicast: Option<EthernetAddress>) {
        let Some(src) = self.v6.source_for(target) else {
            return;
        };
        let (dst, mac) = match unicast {
            Some(mac) => (target, mac),
            None => (
                solicited_node(target),
                multicast_mac(solicited_node(target)),
            ),
        };
        self.v6_send_ndp(
            src,
            dst,
            mac,
            NdpRepr::NeighborSolicit {
                target,
                lladdr: Some(self.config.mac),
            },
        );
    }

    /// Sends an ICMPv6 error about a packet we received (`packet`: its IPv6 header and
    /// what follows), unless RFC 4443 §2.4 (e) forbids it or the rate limit (shared with
    /// ICMPv4) says no. `to_multicast_ok` allows it for a multicast destination
    /// (Packet Too Big and Parameter Problem code 2, §2.4 (e.3)).
    fn v6_send_error(
        &mut self,
        now: Instant,
        about: &Ipv6Repr,
        packet: &[u8],
        build: impl FnOnce(&[u8]) -> Icmpv6Repr<'_>,
        to_multicast_ok: bool,
    ) {
        // (e.2)/(e.3): not to a multicast destination; (e.4)/(e.5): not to a source
        // that does not identify one node.
        if (about.dst_addr.is_multicast() && !to_multicast_ok)
            || about.src_addr.is_unspecified()
            || about.src_addr.is_multicast()
            || self.rx_link_multicast
        {
            return;
        }
        if !self.icmp_error_allowed(now) {
            return;
        }
        let quote = &packet[..packet.len().min(ICMPV6_QUOTE_MAX)];
        let msg = build(quote);
        // (e.1): never about an ICMPv6 error. The caller passes upper-layer ICMPv6
        // errors here only when they are not errors.
        let src = if self.v6.is_ours(about.dst_addr) {
            about.dst_addr
        } else {
            match self.v6.source_for(about.src_addr) {
                Some(s) => s,
                None => return,
            }
        };
        let hdr = Ipv6Repr {
            src_addr: src,
            dst_addr: about.src_addr,
            next_header: IpProtocol::ICMPV6,
            hop_limit: self.v6.hop_limit,
            traffic_class: 0,
            flow_label: 0,
            payload_len: msg.buffer_len(),
        };
        if self
            .emit_ip6(now, hdr, &mut |b| msg.emit(src, about.src_addr, b), None)
            .is_ok()
        {
            self.counters.icmpv6_tx_errors += 1;
        }
    }

    /// A TCP segment over IPv6: TCP chose both addresses; the interface adds the
    /// header (the socket's hop limit and traffic class, and the connection's flow label
    /// from its 4-tuple). Returns the frame length when written to `out`.
    pub(super) fn emit_tcp6(
        &mut self,
        now: Instant,
        addrs: SegmentAddrs,
        seg: &TcpRepr<'_>,
        out: Option<&mut [u8]>,
    ) -> Option<usize> {
        let (IpAddr::V6(src), IpAddr::V6(dst)) = (addrs.src, addrs.dst) else {
            // The seam guarantees one family per packet; a mix is a bug, counted.
            self.count_drop(DropReason::Ipv6NoRoute);
            return None;
        };
        if !self.v6.enabled {
            self.count_drop(DropReason::Ipv6NoRoute);
            return None;
        }
        let hdr = self.tcp6_header(src, dst, addrs, seg);
        self.emit_ip6(now, hdr, &mut |b| seg.emit(b, src, dst), out)
            .ok()
            .flatten()
    }

    /// The IPv6 header of a TCP segment: the socket's hop limit and traffic class
    /// (or ours), and the connection's flow label from its 4-tuple.
    fn tcp6_header(
        &self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        addrs: SegmentAddrs,
        seg: &TcpRepr<'_>,
    ) -> Ipv6Repr {
        Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::TCP,
            hop_limit: addrs.hop_limit.unwrap_or(self.v6.hop_limit),
            traffic_class: addrs.tclass,
            flow_label: flow_label(
                &self.v6.flow_key,
                SocketAddr::new(src.into(), seg.src_port),
                SocketAddr::new(dst.into(), seg.dst_port),
            ),
            payload_len: seg.buffer_len(),
        }
    }

    /// A TCP segment over IPv6 for an offloading link: written straight to `out` with a
    /// partial checksum for the link to finish, and, when it is a TSO6 super-segment,
    /// for the link to cut (the caller sets the GSO type). A segment that cannot go
    /// straight out (neighbour unknown) takes [`emit_tcp6`](Self::emit_tcp6) when it
    /// fits the path MTU and is dropped (`tso_not_sent`) when it does not.
    pub(super) fn emit_tcp6_offload(
        &mut self,
        now: Instant,
        addrs: SegmentAddrs,
        seg: &TcpRepr<'_>,
        out: &mut [u8],
    ) -> Option<(usize, FrameMeta)> {
        let (IpAddr::V6(src), IpAddr::V6(dst)) = (addrs.src, addrs.dst) else {
            self.count_drop(DropReason::Ipv6NoRoute);
            return None;
        };
        let payload_len = seg.buffer_len();
        let frame_len = ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + payload_len;
        let mac = if self.v6.enabled {
            self.v6_next_hop(dst).and_then(|hop| {
                self.v6.ndp.set_now(now);
                self.v6.ndp.lookup(hop)
            })
        } else {
            None
        };
        match mac {
            Some(mac) if out.len() >= frame_len && payload_len <= 65535 => {
                let hdr = self.tcp6_header(src, dst, addrs, seg);
                self.v6_eth(mac).emit(out);
                hdr.emit(&mut out[ETHERNET_HEADER_LEN..]);
                let start = ETHERNET_HEADER_LEN + IPV6_HEADER_LEN;
                seg.emit_partial(&mut out[start..frame_len], src, dst);
                self.counters.ipv6_tx_packets += 1;
                self.counters.offload_tx_csum_partial += 1;
                let meta = FrameMeta {
                    csum: Some(crate::link::CsumPartial {
                        start: start as u16,
                        offset: 16,
                    }),
                    ..FrameMeta::default()
                };
                Some((frame_len, meta))
            }
            _ if IPV6_HEADER_LEN + payload_len <= self.v6.path_mtu(dst) => self
                .emit_tcp6(now, addrs, seg, Some(out))
                .map(|n| (n, FrameMeta::default())),
            _ => {
                self.count_drop(DropReason::TsoNotSent);
                None
            }
        }
    }

    /// A UDP datagram over IPv6 (RFC 8200 §8.1: the checksum is mandatory; the wire
    /// layer sends a zero sum as 0xffff).
    pub(super) fn emit_udp6(
        &mut self,
        now: Instant,
        src: SocketAddr,
        dst: SocketAddr,
        data: &[u8],
        tx: IpTx,
        out: Option<&mut [u8]>,
    ) -> Option<usize> {
        let (IpAddr::V6(s), IpAddr::V6(d)) = (src.ip(), dst.ip()) else {
            self.count_drop(DropReason::Ipv6NoRoute);
            return None;
        };
        let Some(mut hdr) = self.ip6_header(d, IpProtocol::UDP, UDP_HEADER_LEN + data.len()) else {
            self.count_drop(DropReason::Ipv6NoRoute);
            return None;
        };
        if !s.is_unspecified() {
            hdr.src_addr = s;
        }
        hdr.hop_limit = tx.hop_limit.unwrap_or(hdr.hop_limit);
        hdr.traffic_class = tx.tclass;
        // Per socket and destination, as Linux labels UDP with auto_flowlabels.
        hdr.flow_label = flow_label(
            &self.v6.flow_key,
            SocketAddr::new(hdr.src_addr.into(), src.port()),
            dst,
        );
        let (s, d) = (hdr.src_addr, hdr.dst_addr);
        let udp = UdpRepr {
            src_port: src.port(),
            dst_port: dst.port(),
        };
        self.emit_ip6(
            now,
            hdr,
            &mut |b| {
                b[UDP_HEADER_LEN..].copy_from_slice(data);
                udp.emit(b, s, d, data.len());
            },
            out,
        )
        .ok()
        .flatten()
    }

    /// A message from an IPv6 raw socket (no IPv6 header, as Linux's raw IPv6 sockets
    /// send). For ICMPv6 the checksum is computed here, as Linux always does for
    /// IPPROTO_ICMPV6 raw sockets (RFC 3542 §3.1).
    pub(super) fn emit_raw6(
        &mut self,
        now: Instant,
        protocol: IpProtocol,
        dst: Ipv6Addr,
        data: &[u8],
        out: Option<&mut [u8]>,
    ) -> Option<usize> {
        let Some(hdr) = self.ip6_header(dst, protocol, data.len()) else {
            self.count_drop(DropReason::Ipv6NoRoute);
            return None;
        };
        let (s, d) = (hdr.src_addr, hdr.dst_addr);
        self.emit_ip6(
            now,
            hdr,
            &mut |b| {
                b.copy_from_slice(data);
                if protocol == IpProtocol::ICMPV6 && b.len() >= 4 {
                    b[2..4].fill(0);
                    let sum = crate::wire::checksum::Sum::default()
                        .add_bytes(&s.octets())
                        .add_bytes(&d.octets())
                        .add_bytes(&(b.len() as u32).to_be_bytes())
                        .add_bytes(&[0, 0, 0, 58])
                        .add_bytes(b)
                        .finish();
                    b[2..4].copy_from_slice(&sum.to_be_bytes());
                }
            },
            out,
        )
        .ok()
        .flatten()
    }

    /// Marks `addr` a duplicate (RFC 4862 §5.4.5): it is never used.
    fn v6_duplicate(&mut self, addr: Ipv6Addr) {
        if let Some(a) = self
            .v6
            .addrs
            .iter_mut()
            .find(|a| a.info.cidr.address() == addr && a.info.state == AddrState::Tentative)
        {
            a.info.state = AddrState::Duplicate;
            self.counters.ndp_dad_duplicates += 1;
            log::warn!(target: "ustack::ndp", "DAD: {addr} is a duplicate; not using it");
        }
    }

    /// Lowers the path MTU towards `dst` (RFC 8201 §4; never below 1280, RFC 8200 §5).
    /// Returns the new value if it changed.
    fn v6_lower_pmtu(&mut self, now: Instant, dst: Ipv6Addr, mtu: u32) -> Option<usize> {
        let mtu = (mtu as usize).max(IPV6_MIN_MTU);
        if mtu >= self.v6.path_mtu(dst) {
            return None;
        }
        let expires = now + self.config.ipv6.pmtu_expiry;
        if let Some(e) = self.v6.pmtu.iter_mut().find(|(d, _, _)| *d == dst) {
            *e = (dst, mtu, expires);
        } else {
            if self.v6.pmtu.len() >= MAX_PMTU {
                // Forget the entry closest to expiry.
                if let Some(i) = (0..self.v6.pmtu.len()).min_by_key(|&i| self.v6.pmtu[i].2) {
                    self.v6.pmtu.swap_remove(i);
                }
            }
            self.v6.pmtu.push((dst, mtu, expires));
        }
        self.counters.icmpv6_pmtu_updates += 1;
        log::debug!(target: "ustack::ipv6", "path MTU to {dst} is now {mtu}");
        Some(mtu)
    }

    /// Processes a router advertisement from `src` (already validated: link-local
    /// source, hop limit 255), RFC 4861 §6.3.4 and RFC 4862 §5.5.3.
    fn v6_process_ra(&mut self, now: Instant, src: Ipv6Addr, ra: NdpRepr) {
        let NdpRepr::RouterAdvert {
            hop_limit,
            router_lifetime,
            lladdr,
            mtu,
            prefixes,
            ..
        } = ra
        else {
            return;
        };
        self.counters.ndp_rx_router_adverts += 1;
        // §6.3.7: "Once the host sends a Router Solicitation, and receives a valid
        // Router Advertisement ..., the host MUST desist from sending additional
        // solicitations".
        self.v6.rs_left = 0;
        self.v6.rs_next = None;
        if hop_limit != 0 {
            self.v6.hop_limit = hop_limit;
        }
        if router_lifetime == 0 {
            if self.v6.router.is_some_and(|(r, _)| r == src) {
                self.v6.router = None;
            }
        } else {
            let until = now + Duration::from_secs(u64::from(router_lifetime));
            self.v6.router = Some((src, until));
            log::info!(target: "ustack::ndp", "default router {src} for {router_lifetime} s");
        }
        if let Some(mac) = lladdr {
            self.v6_learn_unconfirmed(now, src, mac);
        }
        if let Some(mtu) = mtu {
            // "hosts SHOULD copy the option's value into LinkMTU so long as the value
            // is greater than or equal to the minimum link MTU and does not exceed the
            // maximum LinkMTU value".
            let mtu = mtu as usize;
            if (IPV6_MIN_MTU..=self.config.mtu).contains(&mtu) {
                self.v6.link_mtu = mtu;
            }
        }
        for p in prefixes.iter().flatten() {
            self.v6_process_prefix(now, p);
        }
    }

    fn v6_process_prefix(&mut self, now: Instant, p: &wire::PrefixInfo) {
        let prefix = Ipv6Cidr::new(p.prefix, p.prefix_len.min(128));
        // RFC 4862 §5.5.3 (b): ignore the link-local prefix; (c): preferred must not
        // exceed valid.
        if is_link_local(p.prefix) || p.preferred_lifetime > p.valid_lifetime {
            return;
        }
        let lifetime =
            |secs: u32| (secs != u32::MAX).then(|| now + Duration::from_secs(u64::from(secs)));
        if p.on_link {
            // RFC 4861 §6.3.4: a zero valid lifetime times the prefix out at once.
            self.v6.on_link.retain(|(c, _)| *c != prefix);
            if p.valid_lifetime != 0 && self.v6.on_link.len() < MAX_PREFIXES {
                self.v6.on_link.push((prefix, lifetime(p.valid_lifetime)));
            }
        }
        // RFC 4862 §5.5.3 (d): "If the sum of the prefix length and interface
        // identifier length does not equal 128 bits, the Prefix Information option
        // MUST be ignored" (our identifiers are 64 bits).
        if !p.autonomous || p.prefix_len != 64 {
            return;
        }
        let addr = eui64_address(prefix.network(), self.config.mac);
        if let Some(a) = self
            .v6
            .addrs
            .iter_mut()
            .find(|a| a.info.cidr.address() == addr && a.info.origin == AddrOrigin::Slaac)
        {
            // §5.5.3 (e): the two-hour rule protects against a forged short lifetime.
            const TWO_HOURS: u64 = 7200;
            let remaining = a
                .info
                .valid_until
                .map_or(u64::MAX, |t| (t - now).total_micros() / 1_000_000);
            let new = u64::from(p.valid_lifetime);
            if p.valid_lifetime == u32::MAX {
                a.info.valid_until = None;
            } else if new > TWO_HOURS || new > remaining {
                a.info.valid_until = Some(now + Duration::from_secs(new));
            } else if remaining > TWO_HOURS {
                a.info.valid_until = Some(now + Duration::from_secs(TWO_HOURS));
            }
            return;
        }
        if p.valid_lifetime == 0 {
            return;
        }
        if self.v6_add_addr(
            now,
            Ipv6Cidr::new(addr, 64),
            AddrOrigin::Slaac,
            lifetime(p.valid_lifetime),
        ) {
            self.v6_send_mld_report(MLD_CHANGE_TO_EXCLUDE);
            self.v6_dad_round(now);
        }
    }

    /// Records `mac` for `ip` as STALE and releases frames waiting for it.
    fn v6_learn_unconfirmed(&mut self, now: Instant, ip: Ipv6Addr, mac: EthernetAddress) {
        let released = self.v6.ndp.learn_unconfirmed(now, ip, mac);
        self.v6_release(mac, released);
    }

    fn v6_release(&mut self, mac: EthernetAddress, released: std::collections::VecDeque<Vec<u8>>) {
        for mut frame in released {
            frame[0..6].copy_from_slice(&mac.0);
            self.enqueue(frame);
        }
    }

    /// Timers: DAD, router solicitation, neighbour retries and expiry, lifetimes.
    pub(super) fn v6_handle_timeout(&mut self, now: Instant) -> Vec<(Ipv6Addr, Vec<Vec<u8>>)> {
        let mut failed = Vec::new();
        if !self.v6.enabled {
            return failed;
        }
        let had_ll = self.v6.link_local().is_some();
        self.v6_dad_round(now);
        if !had_ll && self.v6.link_local().is_some() {
            // The link-local address just became usable: report our groups from it,
            // and solicit routers if we were waiting to.
            self.v6_send_mld_report(MLD_CHANGE_TO_EXCLUDE);
        }
        self.v6_maybe_solicit_router(now);
        let mut actions = core::mem::take(&mut self.v6.ndp_actions);
        self.v6.ndp.handle_timeout(now, &mut actions);
        for action in actions.drain(..) {
            match action {
                ArpAction::Request { ip, unicast } => self.v6_solicit(ip, unicast),
                ArpAction::Failed { ip, frames } => {
                    log::debug!(target: "ustack::ndp", "no answer from {ip}: dropping {} queued", frames.len());
                    failed.push((ip, frames));
                }
            }
        }
        self.v6.ndp_actions = actions;
        // Lifetimes.
        let before = self.v6.addrs.len();
        self.v6
            .addrs
            .retain(|a| a.info.valid_until.is_none_or(|t| t > now));
        if self.v6.addrs.len() != before {
            log::info!(target: "ustack::ipv6", "{} address(es) expired", before - self.v6.addrs.len());
        }
        self.v6.on_link.retain(|(_, t)| t.is_none_or(|t| t > now));
        if self.v6.router.is_some_and(|(_, t)| t <= now) {
            self.v6.router = None;
        }
        self.v6.pmtu.retain(|&(_, _, t)| t > now);
        failed
    }
}

impl Interface {
    /// Every IPv6 address of the interface with its state.
    pub fn ipv6_addrs(&self) -> Vec<Ipv6AddrInfo> {
        self.inner.v6.addrs.iter().map(|a| a.info).collect()
    }

    /// The default IPv6 router: from a router advertisement, else configured.
    pub fn ipv6_router(&self) -> Option<Ipv6Addr> {
        self.inner
            .v6
            .router
            .map(|(r, _)| r)
            .or(self.inner.config.ipv6.gateway)
    }

    /// The NDP neighbour cache.
    pub fn ndp_neighbors(&self) -> &NeighborCache<Ipv6Addr> {
        &self.inner.v6.ndp
    }

    /// The path MTU towards `dst` (RFC 8201).
    pub fn ipv6_path_mtu(&self, dst: Ipv6Addr) -> usize {
        self.inner.v6.path_mtu(dst)
    }

    /// IPv6 fragment reassembly state.
    pub fn reassembler6(&self) -> &Reassembler<Ipv6Fragment> {
        &self.reassembler6
    }

    pub(super) fn process_ipv6(&mut self, now: Instant, packet: &[u8]) -> Result<(), DropReason> {
        if !self.inner.v6.enabled {
            return Err(DropReason::EthernetUnknownType);
        }
        let (ip, payload) = Ipv6Repr::parse(packet).map_err(|e| match e {
            wire::Error::Truncated => DropReason::Ipv6Truncated,
            _ => DropReason::Ipv6Malformed,
        })?;
        // RFC 4291 §2.7: "Multicast addresses must not be used as source addresses".
        if ip.src_addr.is_multicast() {
            return Err(DropReason::Ipv6BadSource);
        }
        let v6 = &self.inner.v6;
        if ip.dst_addr.is_multicast() {
            if !v6.is_our_group(ip.dst_addr) {
                return Err(DropReason::Ipv6NotForUs);
            }
        } else if !v6.is_ours(ip.dst_addr) {
            // RFC 4862 §5.4: a tentative address receives nothing but DAD's own
            // messages, and those go to its solicited-node group.
            return Err(match v6.find(ip.dst_addr) {
                Some(a) if a.info.state == AddrState::Tentative => DropReason::Ipv6Tentative,
                _ => DropReason::Ipv6NotForUs,
            });
        }
        self.inner.counters.ipv6_rx_packets += 1;
        let walked = match walk_ext_headers(ip.next_header, payload, IPV6_HEADER_LEN, 6, true) {
            Ok(w) => w,
            Err(e) => return Err(self.ext_error(now, &ip, packet, e)),
        };
        if let Some(frag) = walked.fragment {
            // A fragment cannot carry a partial checksum or be a GSO super-frame.
            if self.inner.rx_meta.csum.is_some() || self.inner.rx_meta.gso != crate::link::Gso::None
            {
                return Err(DropReason::OffloadBadMeta);
            }
            let data = &payload[walked.offset + IPV6_FRAG_HEADER_LEN..];
            // RFC 8200 §4.5 / RFC 6946: an atomic fragment (offset 0, M clear) is
            // processed as a whole packet, outside reassembly.
            if frag.offset == 0 && !frag.more_frags {
                let base = IPV6_HEADER_LEN + walked.offset + IPV6_FRAG_HEADER_LEN;
                return self.process_ipv6_after_frag(
                    now,
                    &ip,
                    packet,
                    frag.next_header,
                    data,
                    base,
                );
            }
            self.inner.counters.ipv6_rx_fragments += 1;
            // RFC 8200 §4.5: a non-last fragment whose length is not a multiple of 8
            // gets a Parameter Problem code 0 pointing at the Payload Length field.
            if frag.more_frags && data.len() % 8 != 0 {
                self.inner.v6_send_error(
                    now,
                    &ip,
                    packet,
                    |q| Icmpv6Repr::ParamProblem {
                        code: 0,
                        pointer: 4,
                        data: q,
                    },
                    false,
                );
                return Err(DropReason::Reassembly6Invalid);
            }
            let fragment = Ipv6Fragment { ip, frag };
            let res = self
                .reassembler6
                .add(now, &fragment, data)
                .map_err(|r| match r {
                    DropReason::ReassemblyOverlap => DropReason::Reassembly6Overlap,
                    DropReason::ReassemblyNoRoom => DropReason::Reassembly6NoRoom,
                    DropReason::ReassemblyDuplicate => DropReason::Reassembly6Duplicate,
                    _ => DropReason::Reassembly6Invalid,
                })?;
            return match res {
                None => Ok(()),
                Some((whole, buf)) => {
                    self.inner.counters.ipv6_reassembled += 1;
                    // The reassembled packet for quoting: fixed header + payload.
                    let res = self.process_ipv6_after_frag(
                        now,
                        &whole.ip,
                        &[],
                        whole.frag.next_header,
                        &buf,
                        IPV6_HEADER_LEN,
                    );
                    self.reassembler6.recycle(buf);
                    res
                }
            };
        }
        let upper = &payload[walked.offset..];
        if !self.inner.rx_meta.is_plain() {
            let start = ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + walked.offset;
            self.check_rx_meta6(walked.protocol, start)?;
        }
        self.process_ipv6_upper(now, &ip, packet, walked.protocol, walked.nh_pointer, upper)
    }

    /// Checks an offloading link's metadata against an unfragmented IPv6 packet whose
    /// transport header starts at frame offset `start`, and decides whether the
    /// transport checksum is trusted (as `check_rx_meta` does for IPv4). A GSO
    /// super-frame must be TCPv6 (TSO6) carrying TCP right after the fixed header.
    fn check_rx_meta6(&mut self, protocol: IpProtocol, start: usize) -> Result<(), DropReason> {
        let meta = self.inner.rx_meta;
        match meta.gso {
            crate::link::Gso::None => {}
            crate::link::Gso::TcpV6 { size }
                if size > 0
                    && protocol == IpProtocol::TCP
                    && start == ETHERNET_HEADER_LEN + IPV6_HEADER_LEN =>
            {
                self.inner.counters.offload_rx_gso_frames += 1;
            }
            _ => return Err(DropReason::OffloadBadMeta),
        }
        if let Some(c) = meta.csum {
            let offset_ok = match protocol {
                IpProtocol::TCP => c.offset == 16,
                IpProtocol::UDP => c.offset == 6,
                _ => false,
            };
            if usize::from(c.start) != start || !offset_ok {
                return Err(DropReason::OffloadBadMeta);
            }
        }
        if meta.csum.is_some() || (meta.csum_valid && protocol != IpProtocol::ICMPV6) {
            self.inner.rx_csum_trusted = true;
            self.inner.counters.offload_rx_csum_skipped += 1;
        }
        Ok(())
    }

    /// Continues after a fragment header (or a reassembled datagram): the fragmentable
    /// part may hold more extension headers (but not Hop-by-Hop, RFC 8200 §4.1).
    fn process_ipv6_after_frag(
        &mut self,
        now: Instant,
        ip: &Ipv6Repr,
        packet: &[u8],
        first: IpProtocol,
        data: &[u8],
        base: usize,
    ) -> Result<(), DropReason> {
        let walked = match walk_ext_headers(first, data, base, base as u32 - 8, false) {
            Ok(w) if w.fragment.is_none() => w,
            // A second fragment header: nested fragmentation is not a thing.
            Ok(_) => return Err(DropReason::Reassembly6Invalid),
            Err(e) => return Err(self.ext_error(now, ip, packet, e)),
        };
        self.process_ipv6_upper(
            now,
            ip,
            packet,
            walked.protocol,
            walked.nh_pointer,
            &data[walked.offset..],
        )
    }

    fn ext_error(&mut self, now: Instant, ip: &Ipv6Repr, packet: &[u8], e: ExtError) -> DropReason {
        match e {
            ExtError::Truncated => DropReason::Ipv6ExtTruncated,
            ExtError::Discard => DropReason::Ipv6OptionDiscard,
            ExtError::ParamProblem {
                code,
                pointer,
                unless_multicast,
            } => {
                if !packet.is_empty() {
                    self.inner.v6_send_error(
                        now,
                        ip,
                        packet,
                        |q| Icmpv6Repr::ParamProblem {
                            code,
                            pointer,
                            data: q,
                        },
                        // RFC 8200 §4.2: option type `10` answers even multicast.
                        code == 2 && !unless_multicast,
                    );
                }
                DropReason::Ipv6ParamProblem
            }
        }
    }

    fn process_ipv6_upper(
        &mut self,
        now: Instant,
        ip: &Ipv6Repr,
        packet: &[u8],
        protocol: IpProtocol,
        nh_pointer: u32,
        data: &[u8],
    ) -> Result<(), DropReason> {
        if self.raw.wants_in(IpFamily::V6, protocol) {
            // IPv6 raw sockets get the upper-layer message alone (RFC 3542 §3).
            self.raw.process(protocol, ip.src_addr, data);
        }
        match protocol {
            IpProtocol::ICMPV6 => self.process_icmpv6(now, ip, data),
            // RFC 8200 §4.7: nothing follows; the packet is consumed.
            IpProtocol::IPV6_NO_NXT => Ok(()),
            IpProtocol::TCP => self.process_tcp6(now, ip, data),
            IpProtocol::UDP => self.process_udp6(now, ip, packet, data),
            _ if self.raw.wants_in(IpFamily::V6, protocol) => Ok(()),
            _ => {
                // RFC 8200 §4: unrecognised Next Header → Parameter Problem code 1
                // pointing at it (RFC 4443 §3.4).
                if !packet.is_empty() {
                    self.inner.v6_send_error(
                        now,
                        ip,
                        packet,
                        |q| Icmpv6Repr::ParamProblem {
                            code: 1,
                            pointer: nh_pointer,
                            data: q,
                        },
                        false,
                    );
                }
                Err(DropReason::Ipv6UnknownProtocol)
            }
        }
    }

    fn process_tcp6(&mut self, now: Instant, ip: &Ipv6Repr, data: &[u8]) -> Result<(), DropReason> {
        let parsed = if self.inner.rx_csum_trusted {
            TcpRepr::parse_unverified(data)
        } else {
            TcpRepr::parse(ip.src_addr, ip.dst_addr, data)
        };
        let seg = parsed.map_err(|e| match e {
            wire::Error::Checksum => DropReason::TcpChecksum,
            wire::Error::Truncated => DropReason::TcpTruncated,
            _ => DropReason::TcpMalformed,
        })?;
        // TCP is unicast only.
        if ip.dst_addr.is_multicast() {
            return Err(DropReason::Ipv6NotForUs);
        }
        self.inner.counters.tcp_rx_segments += 1;
        let cx = self.inner.tcp_context(now);
        let addrs = SegmentAddrs::new(ip.src_addr.into(), ip.dst_addr.into());
        if let Some((raddrs, rseg)) = self.tcp.process(&cx, addrs, &seg) {
            self.inner.emit_tcp6(now, raddrs, &rseg, None);
        }
        Ok(())
    }

    fn process_udp6(
        &mut self,
        now: Instant,
        ip: &Ipv6Repr,
        packet: &[u8],
        data: &[u8],
    ) -> Result<(), DropReason> {
        let parsed = if self.inner.rx_csum_trusted {
            UdpRepr::parse_unverified(data)
        } else {
            UdpRepr::parse(ip.src_addr, ip.dst_addr, data)
        };
        let (udp, payload) = parsed.map_err(|e| match e {
            wire::Error::Checksum => DropReason::UdpChecksum,
            wire::Error::Truncated => DropReason::UdpTruncated,
            _ => DropReason::UdpMalformed,
        })?;
        self.inner.counters.udp_rx_datagrams += 1;
        let src = SocketAddr::V6(SocketAddrV6::new(ip.src_addr, udp.src_port, 0, 0));
        let dst = SocketAddr::V6(SocketAddrV6::new(ip.dst_addr, udp.dst_port, 0, 0));
        if self.udp.process(now, src, dst, payload) {
            return Ok(());
        }
        // RFC 4443 §3.1: port unreachable (never about multicast, §2.4 (e.3)).
        if !packet.is_empty() {
            self.inner.v6_send_error(
                now,
                ip,
                packet,
                |q| Icmpv6Repr::DstUnreachable {
                    code: crate::wire::ICMPV6_UNREACH_PORT,
                    data: q,
                },
                false,
            );
        }
        Err(DropReason::UdpNoSocket)
    }

    /// Hands an ICMPv6 error about one of our packets to its transport (and lowers
    /// the path MTU for a Packet Too Big).
    fn deliver_icmpv6_error(
        &mut self,
        now: Instant,
        reporter: Ipv6Addr,
        kind: IcmpErrorKind,
        quote: &[u8],
    ) -> Result<(), DropReason> {
        let (quoted, rest) =
            Ipv6Repr::parse_quoted(quote).map_err(|_| DropReason::Icmpv6Truncated)?;
        if !self.inner.v6.is_ours(quoted.src_addr) {
            return Err(DropReason::Icmpv6Ignored);
        }
        self.inner.counters.icmpv6_rx_errors += 1;
        if let IcmpErrorKind::FragmentationNeeded(mtu) = kind {
            self.inner
                .v6_lower_pmtu(now, quoted.dst_addr, u32::from(mtu));
        }
        // The transport header follows the quoted extension headers (a non-first
        // fragment carries none: nothing to report).
        let Ok(walked) = walk_ext_headers(quoted.next_header, rest, IPV6_HEADER_LEN, 6, true)
        else {
            return Ok(());
        };
        let (protocol, transport) = match walked.fragment {
            Some(f) if f.offset == 0 => (
                f.next_header,
                rest.get(walked.offset + IPV6_FRAG_HEADER_LEN..)
                    .unwrap_or(&[]),
            ),
            Some(_) => return Ok(()),
            None => (walked.protocol, &rest[walked.offset..]),
        };
        let Ok(err) = IcmpError::from_transport_quote(
            reporter.into(),
            kind,
            (quoted.src_addr.into(), quoted.dst_addr.into()),
            protocol,
            transport,
        ) else {
            return Ok(()); // counted; too little quoted to name a socket
        };
        log::debug!(target: "ustack::ipv6", "{kind:?} from {reporter} for {} -> {}", err.src_addr, err.dst_addr);
        self.report_icmp_error(now, &err);
        Ok(())
    }

    fn process_icmpv6(
        &mut self,
        now: Instant,
        ip: &Ipv6Repr,
        msg: &[u8],
    ) -> Result<(), DropReason> {
        let icmp = Icmpv6Repr::parse(ip.src_addr, ip.dst_addr, msg).map_err(|e| match e {
            wire::Error::Checksum => DropReason::Icmpv6Checksum,
            _ => DropReason::Icmpv6Truncated,
        })?;
        let inner = &mut self.inner;
        match icmp {
            Icmpv6Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => {
                inner.counters.icmpv6_rx_echo_requests += 1;
                let reply = Icmpv6Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                };
                // RFC 4443 §4.2: the reply to a multicast request comes from a
                // unicast address of ours.
                let Some(mut hdr) =
                    inner.ip6_header(ip.src_addr, IpProtocol::ICMPV6, reply.buffer_len())
                else {
                    return Err(DropReason::Ipv6NoRoute);
                };
                if !ip.dst_addr.is_multicast() {
                    hdr.src_addr = ip.dst_addr;
                }
                hdr.traffic_class = ip.traffic_class;
                let (s, d) = (hdr.src_addr, hdr.dst_addr);
                if inner
                    .emit_ip6(now, hdr, &mut |b| reply.emit(s, d, b), None)
                    .is_ok()
                {
                    inner.counters.icmpv6_tx_echo_replies += 1;
                }
                Ok(())
            }
            Icmpv6Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                if inner.echo_replies.len() >= ECHO_REPLY_QUEUE {
                    inner.echo_replies.pop_front();
                }
                inner.echo_replies.push_back(EchoReply {
                    from: IpAddr::V6(ip.src_addr),
                    ident,
                    seq_no,
                    ttl: ip.hop_limit,
                    data: data.to_vec(),
                    at: now,
                });
                Ok(())
            }
            // RFC 8201 §4: never below the IPv6 minimum MTU (RFC 8200 §5).
            Icmpv6Repr::PacketTooBig { mtu, data } => {
                let mtu = mtu.clamp(IPV6_MIN_MTU as u32, 65535) as u16;
                self.deliver_icmpv6_error(
                    now,
                    ip.src_addr,
                    IcmpErrorKind::FragmentationNeeded(mtu),
                    data,
                )
            }
            // RFC 4443 §3 codes onto the transport's kinds (see IcmpErrorKind).
            Icmpv6Repr::DstUnreachable { code, data } => {
                let kind = match code {
                    4 => IcmpErrorKind::PortUnreachable,
                    1 | 5 | 6 => IcmpErrorKind::Prohibited,
                    _ => IcmpErrorKind::HostUnreachable,
                };
                self.deliver_icmpv6_error(now, ip.src_addr, kind, data)
            }
            Icmpv6Repr::TimeExceeded { data, .. } => {
                self.deliver_icmpv6_error(now, ip.src_addr, IcmpErrorKind::TimeExceeded, data)
            }
            Icmpv6Repr::ParamProblem { code, data, .. } => {
                let kind = if code == 1 {
                    IcmpErrorKind::ProtocolUnreachable
                } else {
                    IcmpErrorKind::Other(4, code)
                };
                self.deliver_icmpv6_error(now, ip.src_addr, kind, data)
            }
            Icmpv6Repr::Ndp(ndp) => self.process_ndp(now, ip, ndp),
            Icmpv6Repr::MldQuery { group } => {
                // RFC 3810 §6.2: answer with the state of the queried group(s). We
                // answer at once rather than after a random delay.
                if group.is_unspecified() || inner.v6.is_our_group(group) {
                    inner.v6_send_mld_report(MLD_MODE_IS_EXCLUDE);
                    Ok(())
                } else {
                    Err(DropReason::Icmpv6Ignored)
                }
            }
            Icmpv6Repr::Mld2Report(_) | Icmpv6Repr::Other { .. } => Err(DropReason::Icmpv6Ignored),
        }
    }

    fn process_ndp(&mut self, now: Instant, ip: &Ipv6Repr, ndp: NdpRepr) -> Result<(), DropReason> {
        let inner = &mut self.inner;
        // RFC 4861 §6.1, §7.1: "The IP Hop Limit field has a value of 255", so the
        // message cannot have come from off the link.
        if ip.hop_limit != 255 {
            return Err(DropReason::NdpInvalid);
        }
        match ndp {
            NdpRepr::NeighborSolicit { target, lladdr } => {
                inner.counters.ndp_rx_solicits += 1;
                let from_dad = ip.src_addr.is_unspecified();
                // §7.1.1: from ::, the destination is a solicited-node group and
                // there is no source link-layer address option.
                if from_dad
                    && (lladdr.is_some() || ip.dst_addr.segments()[..6] != [0xff02, 0, 0, 0, 0, 1])
                {
                    return Err(DropReason::NdpInvalid);
                }
                let state = inner.v6.find(target).map(|a| a.info.state);
                match state {
                    Some(AddrState::Tentative) => {
                        // RFC 4862 §5.4.3: from :: it is another node's DAD for the
                        // same address: ours is a duplicate. From a unicast address
                        // it is resolution of a tentative address: ignore.
                        if from_dad {
                            inner.v6_duplicate(target);
                            return Ok(());
                        }
                        return Err(DropReason::NdpIgnored);
                    }
                    Some(AddrState::Preferred) => {}
                    _ => return Err(DropReason::NdpIgnored),
                }
                // §7.2.3: learn the sender (STALE), then answer.
                let dst_mac = lladdr.or(Some(inner.rx_src_mac)).filter(|m| m.is_unicast());
                if let (false, Some(mac)) = (from_dad, lladdr) {
                    inner.v6_learn_unconfirmed(now, ip.src_addr, mac);
                }
                // §7.2.4: to the source, solicited and override set; from DAD, to
                // all-nodes with S clear.
                let (dst, mac, solicited) = if from_dad {
                    (ALL_NODES, multicast_mac(ALL_NODES), false)
                } else {
                    let Some(mac) = dst_mac else {
                        return Err(DropReason::NdpInvalid);
                    };
                    (ip.src_addr, mac, true)
                };
                inner.v6_send_ndp(
                    target,
                    dst,
                    mac,
                    NdpRepr::NeighborAdvert {
                        router: false,
                        solicited,
                        override_: true,
                        target,
                        lladdr: Some(inner.config.mac),
                    },
                );
                Ok(())
            }
            NdpRepr::NeighborAdvert {
                solicited,
                target,
                lladdr,
                ..
            } => {
                inner.counters.ndp_rx_adverts += 1;
                // §7.1.2: "If the IP Destination Address is a multicast address the
                // Solicited flag is zero."
                if solicited && ip.dst_addr.is_multicast() {
                    return Err(DropReason::NdpInvalid);
                }
                match inner.v6.find(target).map(|a| a.info.state) {
                    Some(AddrState::Tentative) => {
                        // RFC 4862 §5.4.4: someone already has it.
                        inner.v6_duplicate(target);
                        return Ok(());
                    }
                    Some(_) => {
                        log::warn!(target: "ustack::ndp", "{} advertises our address {target}", ip.src_addr);
                        return Err(DropReason::NdpIgnored);
                    }
                    None => {}
                }
                // §7.2.5: with no entry, "the advertisement SHOULD be silently
                // discarded"; a solicited one confirms reachability.
                if !inner.v6.ndp.contains(target) {
                    return Err(DropReason::NdpIgnored);
                }
                let mac = lladdr.or_else(|| inner.v6.ndp.get(target));
                let Some(mac) = mac else {
                    return Err(DropReason::NdpIgnored);
                };
                let released = if solicited {
                    inner.v6.ndp.learn(now, target, mac, false)
                } else {
                    inner.v6.ndp.learn_unconfirmed(now, target, mac)
                };
                if !released.is_empty() {
                    log::debug!(target: "ustack::ndp", "{target} is-at {mac}: releasing {} queued", released.len());
                }
                inner.v6_release(mac, released);
                Ok(())
            }
            NdpRepr::RouterAdvert { .. } => {
                // §6.1.2: "IP Source Address is a link-local address."
                if !is_link_local(ip.src_addr) {
                    return Err(DropReason::NdpInvalid);
                }
                if !inner.config.ipv6.accept_ra {
                    return Err(DropReason::NdpIgnored);
                }
                inner.v6_process_ra(now, ip.src_addr, ndp);
                Ok(())
            }
            // We are not a router (§6.2.6) and do not act on redirects (§8.3 is
            // optional for hosts that keep no destination cache beyond PMTU).
            NdpRepr::RouterSolicit { .. } | NdpRepr::Redirect { .. } => Err(DropReason::NdpIgnored),
        }
    }

    /// Sends an ICMPv6 echo request to `dst` (for ping tools and tests).
    pub(super) fn send_echo_request6(
        &mut self,
        now: Instant,
        dst: Ipv6Addr,
        ident: u16,
        seq_no: u16,
        data: &[u8],
    ) -> Result<(), DropReason> {
        let req = Icmpv6Repr::EchoRequest {
            ident,
            seq_no,
            data,
        };
        let Some(hdr) = self
            .inner
            .ip6_header(dst, IpProtocol::ICMPV6, req.buffer_len())
        else {
            self.inner.count_drop(DropReason::Ipv6NoRoute);
            return Err(DropReason::Ipv6NoRoute);
        };
        let (s, d) = (hdr.src_addr, hdr.dst_addr);
        self.inner
            .emit_ip6(now, hdr, &mut |b| req.emit(s, d, b), None)
            .map(|_| ())
    }

    /// IPv6 timers; returns nothing (failed resolutions are counted here).
    pub(super) fn v6_handle_timeout(&mut self, now: Instant) {
        for (_ip, frames) in self.inner.v6_handle_timeout(now) {
            for frame in frames {
                self.inner.count_drop(DropReason::NdpFailed);
                self.inner.recycle(frame);
            }
        }
        let inner = &mut self.inner;
        let expired = self.reassembler6.handle_timeout(now, |e| {
            // RFC 8200 §4.5: Time Exceeded code 1 quoting the first fragment, only if
            // it arrived. We quote the fixed header and the first bytes we kept.
            let mut quote = [0u8; IPV6_HEADER_LEN + 8];
            let mut hdr = e.header.ip;
            hdr.next_header = e.header.frag.next_header;
            hdr.payload_len = e.leading_len;
            hdr.emit(&mut quote);
            quote[IPV6_HEADER_LEN..IPV6_HEADER_LEN + e.leading_len]
                .copy_from_slice(&e.leading[..e.leading_len]);
            let q = &quote[..IPV6_HEADER_LEN + e.leading_len];
            inner.v6_send_error(
                now,
                &e.header.ip,
                q,
                |q| Icmpv6Repr::TimeExceeded { code: 1, data: q },
                false,
            );
        });
        for _ in 0..expired {
            inner.count_drop(DropReason::Reassembly6Timeout);
        }
    }

    /// When the IPv6 timers next need [`handle_timeout`](Self::handle_timeout).
    pub(super) fn v6_poll_at(&self) -> Option<Instant> {
        if !self.inner.v6.enabled {
            return None;
        }
        crate::time::earliest(self.inner.v6.poll_at(), self.reassembler6.poll_at())
    }
}
