//! The network interface: Ethernet, ARP, IPv4 and ICMP, IPv6 with NDP, MLD and ICMPv6
//! ([`ipv6`](self) module), and the demux to UDP and TCP.
//!
//! An [`Interface`] is sans-IO: it is fed frames with [`Interface::handle_frame`] and
//! time with [`Interface::handle_timeout`], and hands back frames through
//! [`Interface::poll_transmit`] and its next deadline through
//! [`Interface::poll_timeout`]. [`Interface::poll_link`] does all four against a
//! [`Link`].
//!
//! Invariants:
//! - Every received frame is either accepted or dropped with exactly one
//!   [`DropReason`], counted in [`Counters`]; nothing from the wire can panic.
//! - Egress that cannot go out at once (fragments, replies, packets waiting for ARP)
//!   waits in bounded queues of recycled buffers; the TCP fast path writes straight
//!   into the caller's buffer, so a segment's payload is copied once, from the send
//!   buffer into the frame.
//! - Nothing here scans every socket: transports keep dirty queues and timer heaps.

mod arp;
mod counters;
mod ipv6;
mod reassembly;

pub use arp::{ArpAction, ArpConfig, NeighborAddr, NeighborCache, NeighborState, QueueOutcome};
pub use counters::{Counters, DropReason};
pub use ipv6::{AddrOrigin, AddrState, Ipv6AddrInfo, Ipv6Config};
pub use reassembly::{Expired, Fragment, Ipv6Fragment, Reassembler, ReassemblyConfig};

use crate::link::{FrameMeta, Gso, Link, LinkCaps};
use crate::socket::raw::RawLayer;
use crate::socket::tcp::{SegmentAddrs, TcpConfig, TcpContext, TcpLayer};
use crate::socket::udp::{UdpConfig, UdpLayer};
use crate::socket::{IcmpError, IcmpErrorKind, LocalAddrs, SocketHandle};
use crate::time::{earliest, Duration, Instant};
use crate::wire::{
    self, ArpOperation, ArpRepr, EtherType, EthernetAddress, EthernetRepr, IcmpRepr, IpProtocol,
    Ipv4Cidr, Ipv4Repr, TcpRepr, UdpRepr, ETHERNET_HEADER_LEN, IPV4_HEADER_LEN, IPV4_MIN_MTU,
    UDP_HEADER_LEN,
};
use core::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::collections::VecDeque;
use std::io;

/// ICMP error generation tunables.
#[derive(Clone, Debug)]
pub struct IcmpConfig {
    /// Errors (unreachable, time exceeded) allowed per second on average.
    pub error_rate_per_sec: u32,
    /// Errors that may go out back to back before the rate applies.
    pub error_burst: u32,
    /// Answer echo requests sent to a broadcast address (Linux default: no).
    pub echo_broadcast: bool,
}

impl Default for IcmpConfig {
    fn default() -> Self {
        // Linux: net.ipv4.icmp_msgs_per_sec = 1000, icmp_msgs_burst = 50.
        IcmpConfig {
            error_rate_per_sec: 1000,
            error_burst: 50,
            echo_broadcast: false,
        }
    }
}

/// Configuration of an [`Interface`].
#[derive(Clone, Debug)]
pub struct Config {
    /// Our MAC address.
    pub mac: EthernetAddress,
    /// Our address and subnet.
    pub ip: Ipv4Cidr,
    /// Default gateway for destinations outside the subnet.
    pub gateway: Option<Ipv4Addr>,
    /// IP MTU: the largest IP packet sent without fragmenting (default 1500).
    pub mtu: usize,
    /// Default TTL of every IPv4 header the interface builds: TCP segments, UDP and raw
    /// datagrams, ICMP replies and errors (default 64, as Linux's ip_default_ttl).
    pub ttl: u8,
    /// Seed for every random choice (ISNs, ports, IP ids), so runs can be replayed.
    pub seed: u64,
    /// Neighbours whose MAC is configured rather than resolved.
    pub static_neighbors: Vec<(Ipv4Addr, EthernetAddress)>,
    /// Frames that may wait in the transmit queue.
    pub tx_queue_len: usize,
    /// ARP tunables.
    pub arp: ArpConfig,
    /// Fragment reassembly bounds.
    pub reassembly: ReassemblyConfig,
    /// ICMP tunables.
    pub icmp: IcmpConfig,
    /// TCP tunables.
    pub tcp: TcpConfig,
    /// UDP tunables.
    pub udp: UdpConfig,
    /// IPv6: addresses, router, NDP and DAD tunables.
    pub ipv6: Ipv6Config,
}

impl Config {
    /// Defaults for everything but the addresses.
    pub fn new(mac: EthernetAddress, ip: Ipv4Cidr) -> Config {
        Config {
            mac,
            ip,
            gateway: None,
            mtu: 1500,
            ttl: 64,
            seed: 0,
            static_neighbors: Vec::new(),
            tx_queue_len: 1024,
            arp: ArpConfig::default(),
            reassembly: ReassemblyConfig::default(),
            icmp: IcmpConfig::default(),
            tcp: TcpConfig::default(),
            udp: UdpConfig::default(),
            ipv6: Ipv6Config::default(),
        }
    }
}

/// An echo reply received for an echo request we sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoReply {
    /// Who answered.
    pub from: IpAddr,
    /// Identifier.
    pub ident: u16,
    /// Sequence number.
    pub seq_no: u16,
    /// TTL (IPv6: hop limit) of the reply.
    pub ttl: u8,
    /// Payload.
    pub data: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

const ECHO_REPLY_QUEUE: usize = 256;
/// ICMP errors quote at most this much so the message fits 576 bytes (RFC 1812 §4.3.2.3).
const ICMP_QUOTE_MAX: usize = 576 - IPV4_HEADER_LEN - 8;

/// Everything but the transport layers, so that a transport can borrow the transport
/// while emitting through this.
struct Inner {
    config: Config,
    neighbors: NeighborCache,
    counters: Counters,
    tx_queue: VecDeque<Vec<u8>>,
    spare: Vec<Vec<u8>>,
    /// Builds datagrams larger than the MTU before they are cut into fragments.
    scratch: Vec<u8>,
    next_ident: u16,
    icmp_tokens: u32,
    icmp_refilled_at: Instant,
    echo_replies: VecDeque<EchoReply>,
    arp_actions: Vec<ArpAction>,
    /// Offload metadata of the frame being handled (plain outside `handle_frame_meta`).
    rx_meta: FrameMeta,
    /// The transport checksum of the frame being handled is not to be verified: the
    /// link left it partial or validated it (set by `process_ipv4` from `rx_meta`).
    rx_csum_trusted: bool,
    /// The neighbour `emit_ip` resolved last, while the cache has not changed since:
    /// a run of frames to one peer skips hashing its address. Cleared before every call
    /// that may change the cache, so a hit is what `NeighborCache::lookup` would return,
    /// and the entry is already marked in use.
    last_neighbor: Option<(Ipv4Addr, EthernetAddress)>,
    /// IPv6 addresses, NDP cache, routers and path MTUs.
    v6: ipv6::Ipv6State,
    /// Source MAC of the frame being handled.
    rx_src_mac: EthernetAddress,
    /// The frame being handled was sent to a link-layer multicast or broadcast address
    /// (RFC 4443 §2.4 (e.3): no ICMPv6 error about it).
    rx_link_multicast: bool,
}

/// A network interface driven by frames and time.
pub struct Interface {
    inner: Inner,
    reassembler: Reassembler,
    reassembler6: Reassembler<Ipv6Fragment>,
    tcp: TcpLayer,
    udp: UdpLayer,
    raw: RawLayer,
    rx_buf: Vec<u8>,
}

impl Interface {
    /// A new interface at time `now`; queues a gratuitous ARP if configured.
    ///
    /// # Panics
    /// If the MTU is below the IPv4 minimum of 68 or above 65535.
    pub fn new(config: Config, now: Instant) -> Interface {
        assert!(
            (IPV4_MIN_MTU..=65535).contains(&config.mtu),
            "MTU {} outside 68..=65535",
            config.mtu
        );
        let mut neighbors = NeighborCache::new(config.arp.clone());
        for &(ip, mac) in &config.static_neighbors {
            neighbors.add_static(ip, mac);
        }
        let seed = config.seed;
        let mut iface = Interface {
            reassembler: Reassembler::new(config.reassembly.clone()),
            reassembler6: Reassembler::new(config.reassembly.clone()),
            tcp: TcpLayer::new(config.tcp.clone(), seed),
            udp: UdpLayer::new(config.udp.clone(), seed.rotate_left(17)),
            raw: RawLayer::new(),
            // The largest IPv4 packet and its Ethernet header: a GSO super-frame from
            // an offloading link, or a TSO super-segment going to one.
            rx_buf: vec![0; ETHERNET_HEADER_LEN + 65535],
            inner: Inner {
                neighbors,
                counters: Counters::default(),
                tx_queue: VecDeque::new(),
                spare: Vec::new(),
                scratch: Vec::new(),
                next_ident: (seed ^ (seed >> 16) ^ (seed >> 32)) as u16,
                icmp_tokens: config.icmp.error_burst,
                icmp_refilled_at: now,
                echo_replies: VecDeque::new(),
                arp_actions: Vec::new(),
                rx_meta: FrameMeta::default(),
                rx_csum_trusted: false,
                last_neighbor: None,
                v6: ipv6::Ipv6State::new(&config),
                rx_src_mac: EthernetAddress::default(),
                rx_link_multicast: false,
                config,
            },
        };
        if iface.inner.config.arp.gratuitous_at_start {
            let ip = iface.inner.config.ip.address();
            iface.inner.send_arp(
                ArpOperation::Request,
                ip,
                EthernetAddress([0; 6]),
                EthernetAddress::BROADCAST,
            );
        }
        iface.inner.v6_start(now);
        iface
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Our IPv4 address.
    pub fn ip_addr(&self) -> Ipv4Addr {
        self.inner.config.ip.address()
    }

    /// Counters of every layer.
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// The neighbour (ARP) cache.
    pub fn neighbors(&self) -> &NeighborCache {
        &self.inner.neighbors
    }

    /// Fragment reassembly state.
    pub fn reassembler(&self) -> &Reassembler {
        &self.reassembler
    }

    /// The TCP layer (sockets, events).
    pub fn tcp(&mut self) -> &mut TcpLayer {
        &mut self.tcp
    }

    /// Our addresses as the transport layers see them (the sources of unbound sockets,
    /// the addresses a bind may name).
    pub fn local_addrs(&self) -> LocalAddrs {
        self.inner.local_addrs()
    }

    /// What the TCP layer needs to know of the interface at `now`.
    pub fn tcp_context(&self, now: Instant) -> TcpContext {
        self.inner.tcp_context(now)
    }

    /// The UDP layer.
    pub fn udp(&mut self) -> &mut UdpLayer {
        &mut self.udp
    }

    /// Raw IP sockets.
    pub fn raw(&mut self) -> &mut RawLayer {
        &mut self.raw
    }

    /// The next user-owned socket, of any kind, whose readiness may have changed since
    /// it was last returned: data or a connection arrived, transmission freed send room,
    /// an error was stored, a state changed. Each socket is queued at most once and
    /// closed ones are skipped (see [`TcpLayer::poll_ready`], [`UdpLayer::poll_ready`],
    /// [`RawLayer::poll_ready`]). Changes made by the caller's own socket calls (send,
    /// receive, bind, ...) are not reported: the caller knows of them.
    #[must_use]
    pub fn poll_ready(&mut self) -> Option<SocketHandle> {
        if let Some(h) = self.tcp.poll_ready() {
            return Some(SocketHandle::Tcp(h));
        }
        if let Some(h) = self.udp.poll_ready() {
            return Some(SocketHandle::Udp(h));
        }
        self.raw.poll_ready().map(SocketHandle::Raw)
    }

    /// Handles one received Ethernet frame; returns why it was dropped, if it was.
    #[inline]
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) -> Option<DropReason> {
        self.handle_frame_meta(now, frame, FrameMeta::default())
    }

    /// Handles one frame an offloading link returned with `meta` ([`Link::rx_meta`]):
    /// a GSO super-frame (one TCP/IPv4 packet beyond the MTU) is taken whole, and a
    /// partial or link-validated transport checksum is not verified. Metadata that
    /// does not match the frame drops it ([`DropReason::OffloadBadMeta`]).
    pub fn handle_frame_meta(
        &mut self,
        now: Instant,
        frame: &[u8],
        meta: FrameMeta,
    ) -> Option<DropReason> {
        self.inner.counters.rx_frames += 1;
        self.inner.counters.rx_bytes += frame.len() as u64;
        self.inner.rx_meta = meta;
        self.inner.rx_csum_trusted = false;
        let res = self.process_ethernet(now, frame);
        self.inner.rx_meta = FrameMeta::default();
        self.inner.rx_csum_trusted = false;
        self.inner.rx_link_multicast = false;
        match res {
            Ok(()) => None,
            Err(reason) => {
                self.inner.count_drop(reason);
                log::trace!(target: "ustack::iface", "drop ({reason}): {}", wire::pretty::summarize(frame));
                Some(reason)
            }
        }
    }

    fn process_ethernet(&mut self, now: Instant, frame: &[u8]) -> Result<(), DropReason> {
        let (eth, payload) =
            EthernetRepr::parse(frame).map_err(|_| DropReason::EthernetTruncated)?;
        // IPv6 multicast maps to 33:33:xx:xx:xx:xx (RFC 2464 §7); the IPv6 layer
        // checks the group.
        let v6_multicast = eth.dst_addr.0[..2] == [0x33, 0x33] && eth.ethertype == EtherType::IPV6;
        if (eth.dst_addr != self.inner.config.mac && !eth.dst_addr.is_broadcast() && !v6_multicast)
            || eth.src_addr.is_multicast()
        {
            return Err(DropReason::EthernetNotForUs);
        }
        match eth.ethertype {
            EtherType::ARP => self.process_arp(now, payload),
            EtherType::IPV4 => self.process_ipv4(now, payload),
            EtherType::IPV6 => {
                self.inner.rx_src_mac = eth.src_addr;
                self.inner.rx_link_multicast = eth.dst_addr.is_multicast();
                self.process_ipv6(now, payload)
            }
            _ => Err(DropReason::EthernetUnknownType),
        }
    }

    fn process_arp(&mut self, now: Instant, payload: &[u8]) -> Result<(), DropReason> {
        let arp = ArpRepr::parse(payload).map_err(|e| match e {
            wire::Error::Unsupported => DropReason::ArpUnsupported,
            _ => DropReason::ArpMalformed,
        })?;
        let inner = &mut self.inner;
        let our_ip = inner.config.ip.address();
        if arp.source_protocol_addr == our_ip {
            log::warn!(target: "ustack::arp", "address conflict: {} claims {our_ip}", arp.source_hardware_addr);
            return Err(DropReason::ArpNotForUs);
        }
        let for_us = arp.target_protocol_addr == our_ip;
        // RFC 826 "merge": refresh the sender if known; create it when we are the target.
        inner.last_neighbor = None;
        let released = inner.neighbors.learn(
            now,
            arp.source_protocol_addr,
            arp.source_hardware_addr,
            for_us,
        );
        inner.counters.arp_changes_held = inner.neighbors.changes_held();
        if !released.is_empty() {
            log::debug!(target: "ustack::arp", "{} is-at {}: releasing {} queued", arp.source_protocol_addr, arp.source_hardware_addr, released.len());
        }
        for mut frame in released {
            frame[0..6].copy_from_slice(&arp.source_hardware_addr.0);
            inner.enqueue(frame);
        }
        match arp.operation {
            ArpOperation::Request if for_us => {
                inner.counters.arp_rx_requests += 1;
                inner.send_arp(
                    ArpOperation::Reply,
                    arp.source_protocol_addr,
                    arp.source_hardware_addr,
                    arp.source_hardware_addr,
                );
                Ok(())
            }
            ArpOperation::Reply if for_us => {
                inner.counters.arp_rx_replies += 1;
                Ok(())
            }
            ArpOperation::Unknown(_) => Err(DropReason::ArpUnsupported),
            _ => Err(DropReason::ArpNotForUs),
        }
    }

    fn process_ipv4(&mut self, now: Instant, packet: &[u8]) -> Result<(), DropReason> {
        let (ip, payload) = match Ipv4Repr::parse(packet) {
            Ok(parsed) => parsed,
            Err(wire::Error::Truncated) => return Err(DropReason::Ipv4Truncated),
            Err(wire::Error::Checksum) => return Err(DropReason::Ipv4Checksum),
            Err(_) => return Err(DropReason::Ipv4Malformed),
        };
        let cidr = self.inner.config.ip;
        if ip.dst_addr != cidr.address() && !self.inner.is_broadcast(ip.dst_addr) {
            return Err(DropReason::Ipv4NotForUs);
        }
        // RFC 1122 §3.2.1.3: a source must be a unicast address.
        if self.inner.is_broadcast(ip.src_addr) || ip.src_addr.is_multicast() {
            return Err(DropReason::Ipv4BadSource);
        }
        if !self.inner.rx_meta.is_plain() {
            self.check_rx_meta(&ip, usize::from(packet[0] & 0x0f) * 4)?;
        }
        self.inner.counters.ipv4_rx_packets += 1;
        if !ip.is_fragment() {
            if self.raw.wants(ip.protocol) {
                // IHL was validated by the parse; the datagram ends before any padding.
                let header_len = usize::from(packet[0] & 0x0f) * 4;
                let datagram = &packet[..header_len + payload.len()];
                self.raw.process(ip.protocol, ip.src_addr, datagram);
            }
            return self.process_ip_payload(now, &ip, payload);
        }
        self.inner.counters.ipv4_rx_fragments += 1;
        match self.reassembler.add(now, &ip, payload)? {
            None => Ok(()),
            Some((whole, buf)) => {
                self.inner.counters.ipv4_reassembled += 1;
                if self.raw.wants(whole.protocol) {
                    // Raw sockets see the datagram as if it had arrived whole.
                    let mut datagram = vec![0u8; IPV4_HEADER_LEN + buf.len()];
                    whole.emit(&mut datagram);
                    datagram[IPV4_HEADER_LEN..].copy_from_slice(&buf);
                    self.raw.process(whole.protocol, whole.src_addr, &datagram);
                }
                let res = self.process_ip_payload(now, &whole, &buf);
                self.reassembler.recycle(buf);
                res
            }
        }
    }

    /// Checks an offloading link's metadata against the IPv4 packet it came with
    /// (header of `header_len` bytes) and decides whether the transport checksum is
    /// trusted. The link is the kernel on the other side of a TAP: what it says is
    /// still checked, as a bad header must never make us accept a bad packet.
    fn check_rx_meta(&mut self, ip: &Ipv4Repr, header_len: usize) -> Result<(), DropReason> {
        let meta = self.inner.rx_meta;
        let transport = ETHERNET_HEADER_LEN + header_len;
        match meta.gso {
            Gso::None => {}
            Gso::TcpV4 { size } if size > 0 && ip.protocol == IpProtocol::TCP => {
                self.inner.counters.offload_rx_gso_frames += 1;
            }
            _ => return Err(DropReason::OffloadBadMeta),
        }
        if ip.is_fragment() {
            return Err(DropReason::OffloadBadMeta);
        }
        if let Some(c) = meta.csum {
            let offset_ok = match ip.protocol {
                IpProtocol::TCP => c.offset == 16,
                IpProtocol::UDP => c.offset == 6,
                _ => false,
            };
            if usize::from(c.start) != transport || !offset_ok {
                return Err(DropReason::OffloadBadMeta);
            }
        }
        if meta.csum.is_some() || meta.csum_valid {
            self.inner.rx_csum_trusted = true;
            self.inner.counters.offload_rx_csum_skipped += 1;
        }
        Ok(())
    }

    fn process_ip_payload(
        &mut self,
        now: Instant,
        ip: &Ipv4Repr,
        payload: &[u8],
    ) -> Result<(), DropReason> {
        match ip.protocol {
            IpProtocol::ICMP => self.process_icmp(now, ip, payload),
            IpProtocol::UDP => self.process_udp(now, ip, payload),
            IpProtocol::TCP => self.process_tcp(now, ip, payload),
            _ => {
                self.inner
                    .send_icmp_unreachable(now, ip, payload, wire::DST_UNREACHABLE_PROTOCOL);
                Err(DropReason::Ipv4UnknownProtocol)
            }
        }
    }

    fn process_icmp(
        &mut self,
        now: Instant,
        ip: &Ipv4Repr,
        payload: &[u8],
    ) -> Result<(), DropReason> {
        let icmp = IcmpRepr::parse(payload).map_err(|e| match e {
            wire::Error::Checksum => DropReason::IcmpChecksum,
            _ => DropReason::IcmpTruncated,
        })?;
        let inner = &mut self.inner;
        match icmp {
            IcmpRepr::EchoRequest {
                ident,
                seq_no,
                data,
            } => {
                if ip.dst_addr != inner.config.ip.address() && !inner.config.icmp.echo_broadcast {
                    return Err(DropReason::IcmpIgnored);
                }
                inner.counters.icmp_rx_echo_requests += 1;
                let reply = IcmpRepr::EchoReply {
                    ident,
                    seq_no,
                    data,
                };
                let hdr = inner.ip_header(ip.src_addr, IpProtocol::ICMP, reply.buffer_len());
                // Echo the request's TOS, as Linux does.
                let hdr = Ipv4Repr { tos: ip.tos, ..hdr };
                if inner
                    .emit_ip(now, hdr, &mut |b| reply.emit(b), None)
                    .is_ok()
                {
                    inner.counters.icmp_tx_echo_replies += 1;
                }
                Ok(())
            }
            IcmpRepr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                if inner.echo_replies.len() >= ECHO_REPLY_QUEUE {
                    inner.echo_replies.pop_front();
                }
                inner.echo_replies.push_back(EchoReply {
                    from: IpAddr::V4(ip.src_addr),
                    ident,
                    seq_no,
                    ttl: ip.ttl,
                    data: data.to_vec(),
                    at: now,
                });
                Ok(())
            }
            IcmpRepr::DstUnreachable {
                code,
                next_hop_mtu,
                data,
            } => {
                let kind = match code {
                    0 | 1 | 5 | 6 | 7 | 11 | 12 => IcmpErrorKind::HostUnreachable,
                    2 => IcmpErrorKind::ProtocolUnreachable,
                    3 => IcmpErrorKind::PortUnreachable,
                    4 => IcmpErrorKind::FragmentationNeeded(next_hop_mtu),
                    9 | 10 | 13 => IcmpErrorKind::Prohibited,
                    c => IcmpErrorKind::Other(3, c),
                };
                self.deliver_icmp_error(now, ip.src_addr, kind, data)
            }
            IcmpRepr::TimeExceeded { data, .. } => {
                self.deliver_icmp_error(now, ip.src_addr, IcmpErrorKind::TimeExceeded, data)
            }
            IcmpRepr::Other { .. } => Err(DropReason::IcmpIgnored),
        }
    }

    fn deliver_icmp_error(
        &mut self,
        now: Instant,
        reporter: Ipv4Addr,
        kind: IcmpErrorKind,
        quote: &[u8],
    ) -> Result<(), DropReason> {
        let err = IcmpError::from_quote(reporter, kind, quote).map_err(|e| match e {
            wire::Error::Truncated | wire::Error::Malformed => DropReason::IcmpTruncated,
            _ => DropReason::IcmpIgnored,
        })?;
        if err.src_addr != IpAddr::V4(self.inner.config.ip.address()) {
            return Err(DropReason::IcmpIgnored);
        }
        self.inner.counters.icmp_rx_errors += 1;
        log::debug!(target: "ustack::icmp", "{kind:?} from {reporter} for {}:{} -> {}:{}", err.src_addr, err.src_port, err.dst_addr, err.dst_port);
        if self.report_icmp_error(now, &err) {
            Ok(())
        } else {
            Err(DropReason::IcmpIgnored)
        }
    }

    /// Hands an ICMP error (received, or made up for a failed ARP resolution) to the
    /// transport of the quoted datagram; false when no transport takes that protocol.
    fn report_icmp_error(&mut self, now: Instant, err: &IcmpError) -> bool {
        match err.protocol() {
            IpProtocol::UDP => self.udp.handle_icmp_error(err),
            IpProtocol::TCP => {
                let cx = self.inner.tcp_context(now);
                self.tcp.handle_icmp_error(&cx, err)
            }
            _ => return false,
        }
        true
    }

    fn process_udp(
        &mut self,
        now: Instant,
        ip: &Ipv4Repr,
        payload: &[u8],
    ) -> Result<(), DropReason> {
        let parsed = if self.inner.rx_csum_trusted {
            UdpRepr::parse_unverified(payload)
        } else {
            UdpRepr::parse(ip.src_addr, ip.dst_addr, payload)
        };
        let (udp, data) = parsed.map_err(|e| match e {
            wire::Error::Checksum => DropReason::UdpChecksum,
            wire::Error::Truncated => DropReason::UdpTruncated,
            _ => DropReason::UdpMalformed,
        })?;
        self.inner.counters.udp_rx_datagrams += 1;
        let src = SocketAddr::V4(SocketAddrV4::new(ip.src_addr, udp.src_port));
        let dst = SocketAddr::V4(SocketAddrV4::new(ip.dst_addr, udp.dst_port));
        if self.udp.process(now, src, dst, data) {
            return Ok(());
        }
        self.inner
            .send_icmp_unreachable(now, ip, payload, wire::DST_UNREACHABLE_PORT);
        Err(DropReason::UdpNoSocket)
    }

    fn process_tcp(
        &mut self,
        now: Instant,
        ip: &Ipv4Repr,
        payload: &[u8],
    ) -> Result<(), DropReason> {
        let parsed = if self.inner.rx_csum_trusted {
            TcpRepr::parse_unverified(payload)
        } else {
            TcpRepr::parse(ip.src_addr, ip.dst_addr, payload)
        };
        // A match rather than `map_err(..)?`, which moved the whole segment
        // description through a second `Result` on every segment.
        let seg = match parsed {
            Ok(seg) => seg,
            Err(wire::Error::Checksum) => return Err(DropReason::TcpChecksum),
            Err(wire::Error::Truncated) => return Err(DropReason::TcpTruncated),
            Err(_) => return Err(DropReason::TcpMalformed),
        };
        // TCP is unicast only (RFC 9293 §3.9.1.1 leaves broadcast undefined; Linux drops).
        if ip.dst_addr != self.inner.config.ip.address() {
            return Err(DropReason::Ipv4NotForUs);
        }
        self.inner.counters.tcp_rx_segments += 1;
        let cx = self.inner.tcp_context(now);
        let addrs = SegmentAddrs::new(ip.src_addr.into(), ip.dst_addr.into());
        if let Some((raddrs, rseg)) = self.tcp.process(&cx, addrs, &seg) {
            // The reply to an IPv4 segment is IPv4.
            let Some(hdr) = self.inner.tcp_header(raddrs, rseg.buffer_len()) else {
                let _ = self.inner.emit_tcp6(now, raddrs, &rseg, None);
                return Ok(());
            };
            let _ = self.inner.emit_ip(
                now,
                hdr,
                &mut |b| rseg.emit(b, hdr.src_addr, hdr.dst_addr),
                None,
            );
        }
        Ok(())
    }

    /// Runs every timer due at `now`: ARP retries and expiry, reassembly timeouts, TCP.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut actions = core::mem::take(&mut self.inner.arp_actions);
        self.inner.last_neighbor = None;
        self.inner.neighbors.handle_timeout(now, &mut actions);
        for action in actions.drain(..) {
            match action {
                ArpAction::Request { ip, unicast } => {
                    let dst = unicast.unwrap_or(EthernetAddress::BROADCAST);
                    self.inner.send_arp(
                        ArpOperation::Request,
                        ip,
                        unicast.unwrap_or_default(),
                        dst,
                    );
                }
                ArpAction::Failed { ip, frames } => {
                    log::debug!(target: "ustack::arp", "no answer from {ip}: dropping {} queued", frames.len());
                    for frame in frames {
                        self.inner.count_drop(DropReason::ArpFailed);
                        self.report_unreachable(now, ip, &frame);
                        self.inner.recycle(frame);
                    }
                }
            }
        }
        self.inner.arp_actions = actions;

        let inner = &mut self.inner;
        let expired = self.reassembler.handle_timeout(now, |e| {
            // RFC 792: time exceeded, code 1, only if the first fragment arrived.
            let mut quote = [0u8; IPV4_HEADER_LEN + 8];
            let mut hdr = e.header;
            hdr.payload_len = e.leading_len;
            hdr.emit(&mut quote);
            quote[IPV4_HEADER_LEN..IPV4_HEADER_LEN + e.leading_len]
                .copy_from_slice(&e.leading[..e.leading_len]);
            let q = &quote[..IPV4_HEADER_LEN + e.leading_len];
            inner.send_icmp_error(now, &e.header, IcmpRepr::TimeExceeded { code: 1, data: q });
        });
        for _ in 0..expired {
            inner.count_drop(DropReason::ReassemblyTimeout);
        }

        self.v6_handle_timeout(now);

        let cx = self.inner.tcp_context(now);
        self.tcp.handle_timeout(&cx);
    }

    /// Tells the transport that sent `frame` that `next_hop` is unreachable, as Linux
    /// does when neighbour resolution fails (EHOSTUNREACH).
    fn report_unreachable(&mut self, now: Instant, next_hop: Ipv4Addr, frame: &[u8]) {
        let Some(packet) = frame.get(ETHERNET_HEADER_LEN..) else {
            return;
        };
        if let Ok(err) = IcmpError::from_quote(next_hop, IcmpErrorKind::HostUnreachable, packet) {
            self.report_icmp_error(now, &err);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ip = earliest(self.inner.neighbors.poll_at(), self.reassembler.poll_at());
        earliest(earliest(ip, self.tcp.poll_at()), self.v6_poll_at())
    }

    /// Writes the next frame to send into `buf` and returns its length.
    ///
    /// `buf` must hold an MTU-sized frame (MTU + 14 bytes); a queued frame that does not
    /// fit is dropped and counted.
    #[must_use]
    #[inline]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.poll_transmit_meta(now, buf, LinkCaps::default())
            .map(|(n, _)| n)
    }

    /// [`poll_transmit`](Self::poll_transmit) for a link with offloads `caps`
    /// ([`Link::caps`]): with `tx_csum_partial`, TCP segments going straight out carry a
    /// partial checksum for the link to finish; with `tso` too, TCP may build one
    /// segment of many wire segments (up to `max_tx_frame`, at most one 64 KB IPv4
    /// packet) for the link to cut. Returns the frame's length and the metadata to
    /// send it with ([`Link::send_meta`]); plain metadata for everything else.
    #[must_use]
    pub fn poll_transmit_meta(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        caps: LinkCaps,
    ) -> Option<(usize, FrameMeta)> {
        let max_frame = match caps.max_tx_frame {
            0 => buf.len(),
            n => n.min(buf.len()),
        };
        let tso_max_len = if caps.tso && caps.tx_csum_partial {
            max_frame
                .saturating_sub(ETHERNET_HEADER_LEN + IPV4_HEADER_LEN)
                .min(65535 - IPV4_HEADER_LEN)
        } else {
            0
        };
        // IPv6's payload length counts what follows the fixed header: up to 65,535.
        let tso6_max_len = if caps.tso6 && caps.tx_csum_partial {
            max_frame
                .saturating_sub(ETHERNET_HEADER_LEN + crate::wire::IPV6_HEADER_LEN)
                .min(65535)
        } else {
            0
        };
        loop {
            if let Some(frame) = self.inner.tx_queue.pop_front() {
                let n = frame.len();
                let fits = n <= buf.len();
                if fits {
                    buf[..n].copy_from_slice(&frame);
                } else {
                    self.inner.count_drop(DropReason::TxQueueFull);
                }
                self.inner.recycle(frame);
                if fits {
                    self.inner.count_tx(n);
                    return Some((n, FrameMeta::default()));
                }
                continue;
            }
            let Interface {
                inner,
                tcp,
                udp,
                raw,
                ..
            } = self;
            let cx = inner.tcp_context(now);
            let mut written = None;
            let mut over_v6 = false;
            tcp.set_tso(tso_max_len);
            tcp.set_tso6(tso6_max_len);
            let emitted = tcp.dispatch(&cx, &mut |addrs, seg| {
                let Some(hdr) = inner.tcp_header(addrs, seg.buffer_len()) else {
                    over_v6 = true;
                    written = if caps.tx_csum_partial {
                        inner.emit_tcp6_offload(now, addrs, seg, buf)
                    } else {
                        inner
                            .emit_tcp6(now, addrs, seg, Some(&mut *buf))
                            .map(|n| (n, FrameMeta::default()))
                    };
                    return;
                };
                if caps.tx_csum_partial {
                    written = inner.emit_tcp_offload(now, hdr, seg, buf);
                    return;
                }
                if let Some(n) = inner.emit_tcp_direct(hdr, seg, buf) {
                    written = Some((n, FrameMeta::default()));
                    return;
                }
                written = inner
                    .emit_ip(
                        now,
                        hdr,
                        &mut |b| seg.emit(b, hdr.src_addr, hdr.dst_addr),
                        Some(&mut *buf),
                    )
                    .ok()
                    .flatten()
                    .map(|n| (n, FrameMeta::default()));
            });
            let gso = tcp.last_gso_size();
            tcp.set_tso(0);
            tcp.set_tso6(0);
            if let (Some((n, meta)), Some(size)) = (written.as_mut(), gso) {
                meta.gso = if over_v6 {
                    Gso::TcpV6 { size }
                } else {
                    Gso::TcpV4 { size }
                };
                inner.counters.offload_tx_tso_frames += 1;
                inner.counters.offload_tx_tso_segments +=
                    crate::link::offload::wire_segments(&buf[..*n], meta) as u64;
            }
            if !emitted {
                let ours = inner.local_addrs();
                let emitted = udp.dispatch(&ours, &mut |src, dst, data, tx| {
                    let udp_repr = UdpRepr {
                        src_port: src.port(),
                        dst_port: dst.port(),
                    };
                    let IpAddr::V4(dst_ip) = dst.ip() else {
                        written = inner
                            .emit_udp6(now, src, dst, data, tx, Some(&mut *buf))
                            .map(|n| (n, FrameMeta::default()));
                        return;
                    };
                    let mut hdr =
                        inner.ip_header(dst_ip, IpProtocol::UDP, UDP_HEADER_LEN + data.len());
                    hdr.ttl = tx.hop_limit.unwrap_or(hdr.ttl);
                    hdr.tos = tx.tclass;
                    written = inner
                        .emit_ip(
                            now,
                            hdr,
                            &mut |b| {
                                b[UDP_HEADER_LEN..].copy_from_slice(data);
                                udp_repr.emit(b, hdr.src_addr, hdr.dst_addr, data.len());
                            },
                            Some(&mut *buf),
                        )
                        .ok()
                        .flatten()
                        .map(|n| (n, FrameMeta::default()));
                });
                if !emitted {
                    let emitted = raw.dispatch(&mut |protocol, dst, data| {
                        let dst = match dst {
                            IpAddr::V4(dst) => dst,
                            IpAddr::V6(dst) => {
                                written = inner
                                    .emit_raw6(now, protocol, dst, data, Some(&mut *buf))
                                    .map(|n| (n, FrameMeta::default()));
                                return;
                            }
                        };
                        let hdr = inner.ip_header(dst, protocol, data.len());
                        let hdr = Ipv4Repr {
                            dont_frag: false,
                            ..hdr
                        };
                        written = inner
                            .emit_ip(now, hdr, &mut |b| b.copy_from_slice(data), Some(&mut *buf))
                            .ok()
                            .flatten()
                            .map(|n| (n, FrameMeta::default()));
                    });
                    if !emitted {
                        return None;
                    }
                }
            }
            if let Some((n, meta)) = written {
                self.inner.count_tx(n);
                return Some((n, meta));
            }
            // The packet was queued (fragments, ARP pending) or dropped; go round again.
        }
    }

    /// Drives a link once: every ready frame in (bounded per round so output is not
    /// starved), due timers, every pending frame out; then, if anything went out, the
    /// link is read again. Returns frames moved.
    ///
    /// Reading again pays off on a TAP or veth: a frame written to the kernel runs the
    /// peer's input in the `write(2)`, so its immediate answer (the ACK to a SYN,ACK,
    /// more data after an ACK) is usually queued before `send` returns. Picking it up
    /// now costs one read; leaving it costs the caller a `poll(2)` to learn it is there
    /// and a read that finds the link empty after it. The extra passes are bounded.
    ///
    /// # Errors
    /// The link failed.
    pub fn poll_link<L: Link + ?Sized>(&mut self, now: Instant, link: &mut L) -> io::Result<usize> {
        self.poll_link_clocked(&mut || now, link)
            .map(|(moved, _)| moved)
    }

    /// [`poll_link`](Self::poll_link) with the time read from `clock` at every pass
    /// (never earlier than the pass before); returns frames moved and the time of the
    /// last pass. One time for all passes made a segment sent in one pass and
    /// acknowledged in the next measure an RTT of 0 µs, which took BBR's estimate of
    /// the path to nothing and RACK's reordering window with it.
    ///
    /// # Errors
    /// The link failed.
    pub fn poll_link_clocked<L: Link + ?Sized>(
        &mut self,
        clock: &mut dyn FnMut() -> Instant,
        link: &mut L,
    ) -> io::Result<(usize, Instant)> {
        const RX_BUDGET: usize = 256;
        /// Passes that only follow up on our own output, at most.
        const ECHO_PASSES: usize = 4;
        let caps = link.caps();
        let mut buf = core::mem::take(&mut self.rx_buf);
        let mut moved = 0;
        let mut echo_passes = 0;
        let mut now = clock();
        let res = (|| loop {
            let mut received = 0;
            while received < RX_BUDGET {
                match link.recv(now, &mut buf)? {
                    Some(n) => {
                        let meta = if caps.rx_offload {
                            link.rx_meta()
                        } else {
                            FrameMeta::default()
                        };
                        if let Some(reason) = self.handle_frame_meta(now, &buf[..n], meta) {
                            // A recording wrapper notes the reason on the frame.
                            link.rx_dropped(&reason);
                        }
                        received += 1;
                    }
                    None => break,
                }
            }
            if self.poll_timeout().is_some_and(|t| t <= now) {
                self.handle_timeout(now);
            }
            let mut sent = 0;
            while let Some((n, meta)) = self.poll_transmit_meta(now, &mut buf, caps) {
                if meta.is_plain() {
                    link.send(now, &buf[..n])?;
                } else {
                    link.send_meta(now, &buf[..n], &meta)?;
                }
                sent += 1;
            }
            moved += received + sent;
            if received < RX_BUDGET {
                if sent == 0 || echo_passes == ECHO_PASSES {
                    return Ok((moved, now));
                }
                echo_passes += 1;
            }
            // Another pass: what it reads is timed after what this one sent.
            now = now.max(clock());
        })();
        self.rx_buf = buf;
        res
    }

    /// Sends an ICMP (or, to an IPv6 address, ICMPv6) echo request (for ping tools and
    /// tests).
    ///
    /// # Errors
    /// The reason it could not be sent (no route, ARP or NDP queue full).
    pub fn send_echo_request(
        &mut self,
        now: Instant,
        dst: impl Into<IpAddr>,
        ident: u16,
        seq_no: u16,
        data: &[u8],
    ) -> Result<(), DropReason> {
        let dst = match dst.into() {
            IpAddr::V4(dst) => dst,
            IpAddr::V6(dst) => return self.send_echo_request6(now, dst, ident, seq_no, data),
        };
        let req = IcmpRepr::EchoRequest {
            ident,
            seq_no,
            data,
        };
        let mut hdr = self
            .inner
            .ip_header(dst, IpProtocol::ICMP, req.buffer_len());
        hdr.dont_frag = false;
        self.inner
            .emit_ip(now, hdr, &mut |b| req.emit(b), None)
            .map(|_| ())
    }

    /// The next echo reply received, if any (at most 256 are kept).
    pub fn poll_echo_reply(&mut self) -> Option<EchoReply> {
        self.inner.echo_replies.pop_front()
    }
}

impl Inner {
    fn tcp_context(&self, now: Instant) -> TcpContext {
        TcpContext {
            now,
            local: self.local_addrs(),
            mtu: self.config.mtu,
            mtu6: self.v6.link_mtu(),
        }
    }

    /// Our addresses as the transport layers see them: the IPv4 address, and the
    /// usable IPv6 global (configured before SLAAC) and link-local ones.
    fn local_addrs(&self) -> LocalAddrs {
        let mut l = LocalAddrs::v4(self.config.ip.address());
        if self.v6.enabled {
            let (global, link_local) = self.v6.transport_addrs();
            l.v6 = global.unwrap_or(core::net::Ipv6Addr::UNSPECIFIED);
            l.v6_link_local = link_local.unwrap_or(core::net::Ipv6Addr::UNSPECIFIED);
        }
        l
    }

    fn count_drop(&mut self, reason: DropReason) {
        self.counters.drops[reason as usize] += 1;
    }

    fn count_tx(&mut self, n: usize) {
        self.counters.tx_frames += 1;
        self.counters.tx_bytes += n as u64;
    }

    fn is_broadcast(&self, addr: Ipv4Addr) -> bool {
        addr.is_broadcast()
            || (self.config.ip.prefix_len() < 31 && addr == self.config.ip.broadcast())
    }

    /// Builds one unfragmented frame: the Ethernet header, the `ip_len`-byte IP header
    /// `ip_hdr` writes (it sees the frame from the IP header on) and the payload `fill`
    /// writes after it, `frame_len` bytes in all. Written straight into `out` when given and
    /// large enough (the caller passes it only when the neighbour is known), else into
    /// a pooled buffer the caller routes. Shared by IPv4 and IPv6.
    fn whole_frame(
        &mut self,
        eth: &EthernetRepr,
        ip_len: usize,
        frame_len: usize,
        ip_hdr: &dyn Fn(&mut [u8]),
        fill: &mut dyn FnMut(&mut [u8]),
        out: Option<&mut [u8]>,
    ) -> WholeFrame {
        let write = |buf: &mut [u8], fill: &mut dyn FnMut(&mut [u8])| {
            eth.emit(buf);
            ip_hdr(&mut buf[ETHERNET_HEADER_LEN..]);
            fill(&mut buf[ETHERNET_HEADER_LEN + ip_len..frame_len]);
        };
        if let Some(out) = out.filter(|o| o.len() >= frame_len) {
            write(out, fill);
            return WholeFrame::Written(frame_len);
        }
        let mut frame = self.frame_buf();
        frame.resize(frame_len, 0);
        write(&mut frame, fill);
        WholeFrame::Queued(frame)
    }

    fn frame_buf(&mut self) -> Vec<u8> {
        let mut b = self.spare.pop().unwrap_or_default();
        b.clear();
        b
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < 64 {
            self.spare.push(buf);
        }
    }

    fn enqueue(&mut self, frame: Vec<u8>) {
        if self.tx_queue.len() >= self.config.tx_queue_len {
            self.count_drop(DropReason::TxQueueFull);
            self.recycle(frame);
        } else {
            self.tx_queue.push_back(frame);
        }
    }

    fn send_arp(
        &mut self,
        operation: ArpOperation,
        target_ip: Ipv4Addr,
        target_mac: EthernetAddress,
        dst_mac: EthernetAddress,
    ) {
        let arp = ArpRepr {
            operation,
            source_hardware_addr: self.config.mac,
            source_protocol_addr: self.config.ip.address(),
            target_hardware_addr: target_mac,
            target_protocol_addr: target_ip,
        };
        let eth = EthernetRepr {
            src_addr: self.config.mac,
            dst_addr: dst_mac,
            ethertype: EtherType::ARP,
        };
        let mut frame = self.frame_buf();
        frame.resize(ETHERNET_HEADER_LEN + ArpRepr::LEN, 0);
        eth.emit(&mut frame);
        arp.emit(&mut frame[ETHERNET_HEADER_LEN..]);
        match operation {
            ArpOperation::Reply => self.counters.arp_tx_replies += 1,
            _ => self.counters.arp_tx_requests += 1,
        }
        log::trace!(target: "ustack::arp", "send {}", wire::pretty::summarize(&frame));
        self.enqueue(frame);
    }

    /// An IPv4 header from us to `dst` with our defaults.
    fn ip_header(&mut self, dst: Ipv4Addr, protocol: IpProtocol, payload_len: usize) -> Ipv4Repr {
        Ipv4Repr {
            src_addr: self.config.ip.address(),
            dst_addr: dst,
            protocol,
            ttl: self.config.ttl,
            tos: 0,
            ident: 0,
            dont_frag: protocol == IpProtocol::TCP,
            more_frags: false,
            frag_offset: 0,
            payload_len,
        }
    }

    /// The IPv4 header of a TCP segment: TCP chose the addresses (the source is ours,
    /// or the address a socket bound to), everything else is the interface's. `None`
    /// for IPv6 addresses, which take [`Inner::emit_tcp6`].
    fn tcp_header(&mut self, addrs: SegmentAddrs, payload_len: usize) -> Option<Ipv4Repr> {
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (addrs.src, addrs.dst) else {
            return None;
        };
        Some(Ipv4Repr {
            src_addr: src,
            ttl: addrs.hop_limit.unwrap_or(self.config.ttl),
            tos: addrs.tclass,
            ..self.ip_header(dst, IpProtocol::TCP, payload_len)
        })
    }

    /// The MAC of neighbour `ip`, as [`NeighborCache::lookup`] gives it.
    fn neighbor(&mut self, ip: Ipv4Addr) -> Option<EthernetAddress> {
        if let Some((last, mac)) = self.last_neighbor {
            if last == ip {
                return Some(mac);
            }
        }
        let mac = self.neighbors.lookup(ip);
        self.last_neighbor = mac.map(|m| (ip, m));
        mac
    }

    /// Next hop for `dst`: on-link destinations directly, others via the gateway.
    fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.config.ip.contains(dst) || dst.is_broadcast() {
            Some(dst)
        } else {
            self.config.gateway
        }
    }

    /// Sends an IPv4 packet whose payload `fill` writes into the slice it is given
    /// (exactly `hdr.payload_len` bytes). When `out` is given and the packet can go out
    /// whole to a known neighbour, it is written there and its frame length returned;
    /// otherwise it is queued (fragmented if needed, or waiting for ARP) and `None`
    /// returned.
    fn emit_ip(
        &mut self,
        now: Instant,
        mut hdr: Ipv4Repr,
        fill: &mut dyn FnMut(&mut [u8]),
        out: Option<&mut [u8]>,
    ) -> Result<Option<usize>, DropReason> {
        let Some(next_hop) = self.next_hop(hdr.dst_addr) else {
            self.count_drop(DropReason::NoRoute);
            return Err(DropReason::NoRoute);
        };
        hdr.ident = self.next_ident;
        self.next_ident = self.next_ident.wrapping_add(1);
        let mac = if self.is_broadcast(hdr.dst_addr) {
            Some(EthernetAddress::BROADCAST)
        } else {
            self.neighbor(next_hop)
        };
        let eth = EthernetRepr {
            src_addr: self.config.mac,
            dst_addr: mac.unwrap_or_default(),
            ethertype: EtherType::IPV4,
        };
        let total = IPV4_HEADER_LEN + hdr.payload_len;
        let frame_len = ETHERNET_HEADER_LEN + total;

        if total <= self.config.mtu {
            self.counters.ipv4_tx_packets += 1;
            let out = out.filter(|_| mac.is_some());
            return match self.whole_frame(
                &eth,
                IPV4_HEADER_LEN,
                frame_len,
                &|b| hdr.emit(b),
                fill,
                out,
            ) {
                WholeFrame::Written(n) => Ok(Some(n)),
                WholeFrame::Queued(frame) => {
                    self.route_frame(now, next_hop, mac, frame)?;
                    Ok(None)
                }
            };
        }

        // Larger than the MTU: build the datagram, then cut it (RFC 791 §3.2).
        if hdr.dont_frag {
            log::warn!(target: "ustack::ipv4", "{}-byte packet with DF over MTU {}", total, self.config.mtu);
            self.count_drop(DropReason::NoRoute);
            return Err(DropReason::NoRoute);
        }
        let mut scratch = core::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.resize(hdr.payload_len, 0);
        fill(&mut scratch);
        let chunk = (self.config.mtu - IPV4_HEADER_LEN) & !7;
        self.counters.ipv4_fragmented += 1;
        let mut result = Ok(None);
        for (i, piece) in scratch.chunks(chunk).enumerate() {
            let offset = i * chunk;
            let frag = Ipv4Repr {
                more_frags: offset + piece.len() < hdr.payload_len,
                frag_offset: offset as u16,
                payload_len: piece.len(),
                ..hdr
            };
            let mut frame = self.frame_buf();
            frame.resize(ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + piece.len(), 0);
            eth.emit(&mut frame);
            frag.emit(&mut frame[ETHERNET_HEADER_LEN..]);
            frame[ETHERNET_HEADER_LEN + IPV4_HEADER_LEN..].copy_from_slice(piece);
            self.counters.ipv4_tx_packets += 1;
            self.counters.ipv4_tx_fragments += 1;
            if let Err(e) = self.route_frame(now, next_hop, mac, frame) {
                result = Err(e);
                break;
            }
        }
        self.scratch = scratch;
        result
    }

    /// The common case of a TCP segment over IPv4 without offloads, as `emit_ip` would
    /// build it (next IP ident, our MAC and the neighbour's, the full checksum) but
    /// written straight into `out` without its layers of closures: when the segment
    /// fits the MTU and `out`, and the next hop's MAC is known. Returns the frame
    /// length, or `None` with nothing changed for `emit_ip` to take over (ARP,
    /// broadcast, fragmentation and drops stay there). `hdr` is the one
    /// [`tcp_header`](Self::tcp_header) made for `seg` (its payload is the whole segment).
    #[inline]
    fn emit_tcp_direct(
        &mut self,
        mut hdr: Ipv4Repr,
        seg: &TcpRepr<'_>,
        out: &mut [u8],
    ) -> Option<usize> {
        let total = IPV4_HEADER_LEN + hdr.payload_len;
        let frame_len = ETHERNET_HEADER_LEN + total;
        if total > self.config.mtu || out.len() < frame_len || self.is_broadcast(hdr.dst_addr) {
            return None;
        }
        let mac = self
            .next_hop(hdr.dst_addr)
            .and_then(|hop| self.neighbor(hop))?;
        let (frame, _) = out.split_at_mut(frame_len);
        self.emit_ipv4_headers(&mut hdr, mac, frame);
        // `tcp_header` sized the packet by the segment's `buffer_len`.
        let header_len = hdr.payload_len - seg.payload.len();
        let tcp_buf = &mut frame[ETHERNET_HEADER_LEN + IPV4_HEADER_LEN..];
        seg.emit_with_header_len(tcp_buf, header_len, hdr.src_addr, hdr.dst_addr);
        Some(frame_len)
    }

    /// The Ethernet and IPv4 headers of a frame to `mac`, written at the start of
    /// `frame` with the next IP ident given to `hdr`; the packet is counted. For the
    /// paths that write a whole frame straight into the caller's buffer.
    #[inline]
    fn emit_ipv4_headers(&mut self, hdr: &mut Ipv4Repr, mac: EthernetAddress, frame: &mut [u8]) {
        hdr.ident = self.next_ident;
        self.next_ident = self.next_ident.wrapping_add(1);
        let eth = EthernetRepr {
            src_addr: self.config.mac,
            dst_addr: mac,
            ethertype: EtherType::IPV4,
        };
        eth.emit(frame);
        hdr.emit(&mut frame[ETHERNET_HEADER_LEN..]);
        self.counters.ipv4_tx_packets += 1;
    }

    /// Sends a TCP segment to a link that finishes checksums (and, for a segment beyond
    /// one wire segment, cuts it: TSO): straight into `out` with a partial checksum
    /// when the neighbour is known, returning the frame length and its metadata. A
    /// segment that cannot go out at once takes the ordinary path with a full
    /// checksum (queued behind ARP); a super-segment that cannot is dropped and
    /// counted ([`DropReason::TsoNotSent`]), and TCP sends its data again.
    fn emit_tcp_offload(
        &mut self,
        now: Instant,
        mut hdr: Ipv4Repr,
        seg: &TcpRepr<'_>,
        out: &mut [u8],
    ) -> Option<(usize, FrameMeta)> {
        let total = IPV4_HEADER_LEN + hdr.payload_len;
        let frame_len = ETHERNET_HEADER_LEN + total;
        let mac = self
            .next_hop(hdr.dst_addr)
            .and_then(|hop| self.neighbor(hop));
        match mac {
            Some(mac) if out.len() >= frame_len && total <= 65535 => {
                self.emit_ipv4_headers(&mut hdr, mac, out);
                let start = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN;
                seg.emit_partial(&mut out[start..frame_len], hdr.src_addr, hdr.dst_addr);
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
            _ if total <= self.config.mtu => self
                .emit_ip(
                    now,
                    hdr,
                    &mut |b| seg.emit(b, hdr.src_addr, hdr.dst_addr),
                    Some(out),
                )
                .ok()
                .flatten()
                .map(|n| (n, FrameMeta::default())),
            _ => {
                self.count_drop(DropReason::TsoNotSent);
                None
            }
        }
    }

    /// Queues a finished frame for transmission, or behind an ARP resolution.
    fn route_frame(
        &mut self,
        now: Instant,
        next_hop: Ipv4Addr,
        mac: Option<EthernetAddress>,
        frame: Vec<u8>,
    ) -> Result<(), DropReason> {
        if mac.is_some() {
            self.enqueue(frame);
            return Ok(());
        }
        self.last_neighbor = None;
        match self.neighbors.queue(now, next_hop, frame) {
            QueueOutcome::Queued => Ok(()),
            QueueOutcome::QueuedSendRequest => {
                log::debug!(target: "ustack::arp", "resolving {next_hop}");
                self.send_arp(
                    ArpOperation::Request,
                    next_hop,
                    EthernetAddress([0; 6]),
                    EthernetAddress::BROADCAST,
                );
                Ok(())
            }
            QueueOutcome::Full(frame) => {
                self.recycle(frame);
                self.count_drop(DropReason::ArpQueueFull);
                Err(DropReason::ArpQueueFull)
            }
        }
    }

    fn icmp_error_allowed(&mut self, now: Instant) -> bool {
        let cfg = &self.config.icmp;
        if cfg.error_rate_per_sec > 0 {
            let per_token = Duration::from_micros(1_000_000 / u64::from(cfg.error_rate_per_sec));
            let elapsed = now - self.icmp_refilled_at;
            let new = (elapsed.total_micros() / per_token.total_micros().max(1)) as u32;
            if new > 0 {
                self.icmp_tokens = (self.icmp_tokens.saturating_add(new)).min(cfg.error_burst);
                self.icmp_refilled_at = now;
            }
        }
        if self.icmp_tokens == 0 {
            self.counters.icmp_rate_limited += 1;
            return false;
        }
        self.icmp_tokens -= 1;
        true
    }

    /// Sends destination unreachable with `code` about a datagram we received.
    fn send_icmp_unreachable(&mut self, now: Instant, ip: &Ipv4Repr, payload: &[u8], code: u8) {
        let mut quote = [0u8; ICMP_QUOTE_MAX];
        let n = payload.len().min(ICMP_QUOTE_MAX - IPV4_HEADER_LEN);
        ip.emit(&mut quote);
        quote[IPV4_HEADER_LEN..IPV4_HEADER_LEN + n].copy_from_slice(&payload[..n]);
        let data = &quote[..IPV4_HEADER_LEN + n];
        self.send_icmp_error(
            now,
            ip,
            IcmpRepr::DstUnreachable {
                code,
                next_hop_mtu: 0,
                data,
            },
        );
    }

    /// Sends an ICMP error about `about`, unless RFC 1122 §3.2.2 forbids it or the
    /// rate limit says no.
    fn send_icmp_error(&mut self, now: Instant, about: &Ipv4Repr, msg: IcmpRepr<'_>) {
        // Never about broadcasts, non-unicast sources, non-first fragments, or ICMP errors.
        if self.is_broadcast(about.dst_addr)
            || about.dst_addr.is_multicast()
            || self.is_broadcast(about.src_addr)
            || about.src_addr.is_unspecified()
            || about.frag_offset != 0
        {
            return;
        }
        if about.protocol == IpProtocol::ICMP {
            let quoted_payload = &msg.data()[IPV4_HEADER_LEN.min(msg.data().len())..];
            if matches!(quoted_payload.first(), Some(3 | 4 | 5 | 11 | 12)) {
                return;
            }
        }
        if !self.icmp_error_allowed(now) {
            return;
        }
        let hdr = self.ip_header(about.src_addr, IpProtocol::ICMP, msg.buffer_len());
        let hdr = Ipv4Repr {
            tos: 0xc0,
            dont_frag: false,
            ..hdr
        };
        if self.emit_ip(now, hdr, &mut |b| msg.emit(b), None).is_ok() {
            self.counters.icmp_tx_errors += 1;
        }
    }
}

/// Where `Inner::whole_frame` put a frame.
enum WholeFrame {
    /// In the caller's buffer, this many bytes.
    Written(usize),
    /// In a pooled buffer, for the caller to route (send or queue behind resolution).
    Queued(Vec<u8>),
}

#[cfg(test)]
mod ipv6_tests;
#[cfg(test)]
mod offload_tests;
#[cfg(test)]
mod tests;
