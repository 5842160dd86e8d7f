//! Per-layer counters and the reasons a frame can be dropped.
//!
//! Every drop has exactly one [`DropReason`], counted in [`Counters::drops`], so the
//! sum of accepted and dropped frames always accounts for every frame received.

use core::fmt;

macro_rules! drop_reasons {
    ($( $(#[$doc:meta])* $name:ident => $layer:literal, $text:literal; )*) => {
        /// Why the stack discarded a received frame (or an outgoing packet).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(usize)]
        pub enum DropReason {
            $( $(#[$doc])* $name, )*
        }

        impl DropReason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name),*];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// The layer that dropped the packet (`ethernet`, `arp`, `ipv4`, ...).
            pub const fn layer(self) -> &'static str {
                match self { $(DropReason::$name => $layer,)* }
            }

            /// A short snake_case name, stable for scripts and JSON.
            pub const fn as_str(self) -> &'static str {
                match self { $(DropReason::$name => $text,)* }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than an Ethernet header.
    EthernetTruncated => "ethernet", "truncated";
    /// Destination MAC is neither ours nor broadcast, or source MAC is a group address.
    EthernetNotForUs => "ethernet", "not_for_us";
    /// An EtherType we do not handle (IPv6, VLAN, ...).
    EthernetUnknownType => "ethernet", "unknown_ethertype";
    /// ARP packet too short or malformed.
    ArpMalformed => "arp", "malformed";
    /// ARP for another hardware or protocol type.
    ArpUnsupported => "arp", "unsupported";
    /// ARP request for an address that is not ours.
    ArpNotForUs => "arp", "not_for_us";
    /// IPv4 packet shorter than its header or total length.
    Ipv4Truncated => "ipv4", "truncated";
    /// IPv4 header checksum wrong.
    Ipv4Checksum => "ipv4", "bad_checksum";
    /// IPv4 version, header length or total length invalid.
    Ipv4Malformed => "ipv4", "malformed";
    /// Destination address is not ours (we do not forward).
    Ipv4NotForUs => "ipv4", "not_for_us";
    /// Source address is broadcast, multicast or otherwise impossible (RFC 1122 §3.2.1.3).
    Ipv4BadSource => "ipv4", "bad_source";
    /// Transport protocol we do not implement (answered with protocol unreachable).
    Ipv4UnknownProtocol => "ipv4", "unknown_protocol";
    /// Fragment overlaps another fragment of the same datagram (whole datagram dropped).
    ReassemblyOverlap => "ipv4", "reassembly_overlap";
    /// Fragment that lies past the datagram's end or makes it exceed 65535 bytes.
    ReassemblyInvalid => "ipv4", "reassembly_invalid";
    /// Reassembly memory or datagram-count bound reached.
    ReassemblyNoRoom => "ipv4", "reassembly_no_room";
    /// Datagram not completed in time (counted once per datagram).
    ReassemblyTimeout => "ipv4", "reassembly_timeout";
    /// Fragment that exactly duplicates one already held.
    ReassemblyDuplicate => "ipv4", "reassembly_duplicate";
    /// ICMP message too short.
    IcmpTruncated => "icmp", "truncated";
    /// ICMP checksum wrong.
    IcmpChecksum => "icmp", "bad_checksum";
    /// ICMP type we do not act on, or an echo request to a broadcast address.
    IcmpIgnored => "icmp", "ignored";
    /// UDP datagram shorter than its header or length field.
    UdpTruncated => "udp", "truncated";
    /// UDP length field invalid.
    UdpMalformed => "udp", "malformed";
    /// UDP checksum wrong.
    UdpChecksum => "udp", "bad_checksum";
    /// No socket on the destination port (answered with port unreachable).
    UdpNoSocket => "udp", "no_socket";
    /// TCP segment shorter than its header.
    TcpTruncated => "tcp", "truncated";
    /// TCP data offset or options invalid.
    TcpMalformed => "tcp", "malformed";
    /// TCP checksum wrong.
    TcpChecksum => "tcp", "bad_checksum";
    /// Outgoing packet with no route to its destination.
    NoRoute => "ipv4", "no_route";
    /// Outgoing packet dropped because its next hop did not answer ARP.
    ArpFailed => "arp", "resolution_failed";
    /// Outgoing packet dropped because the ARP pending queue was full.
    ArpQueueFull => "arp", "pending_queue_full";
    /// Outgoing frame dropped because the transmit queue was full.
    TxQueueFull => "ethernet", "tx_queue_full";
    /// Received frame whose offload metadata (virtio-net header) does not match it: a
    /// partial checksum or GSO type for a packet that is not TCP/UDP, offsets that do
    /// not point at its checksum, a zero segment size, a GSO type we do not speak.
    OffloadBadMeta => "ipv4", "bad_offload_meta";
    /// A TCP super-segment (TSO) that could not go out at once (its neighbour was not
    /// resolved); TCP sends the data again.
    TsoNotSent => "ipv4", "tso_not_sent";
    /// IPv6 packet shorter than its header or payload length.
    Ipv6Truncated => "ipv6", "truncated";
    /// IPv6 version wrong, or a jumbogram (not supported).
    Ipv6Malformed => "ipv6", "malformed";
    /// IPv6 destination is none of our addresses or groups (we do not forward).
    Ipv6NotForUs => "ipv6", "not_for_us";
    /// IPv6 destination is one of our addresses still tentative (RFC 4862 §5.4: only
    /// DAD's own messages may use it).
    Ipv6Tentative => "ipv6", "tentative_dst";
    /// IPv6 source is multicast (RFC 4291 §2.7).
    Ipv6BadSource => "ipv6", "bad_source";
    /// Extension headers cut short or inconsistent.
    Ipv6ExtTruncated => "ipv6", "ext_truncated";
    /// An unrecognised option whose type bits say discard (RFC 8200 §4.2, `01`).
    Ipv6OptionDiscard => "ipv6", "option_discard";
    /// An extension header or option refused with a Parameter Problem (RFC 8200 §4:
    /// unrecognised option `10`/`11`, routing header with segments left, misplaced
    /// Hop-by-Hop).
    Ipv6ParamProblem => "ipv6", "param_problem";
    /// Upper-layer protocol we do not implement (answered with Parameter Problem code 1).
    Ipv6UnknownProtocol => "ipv6", "unknown_protocol";
    /// Outgoing IPv6 packet with no route (no on-link prefix, no default router) or
    /// no usable source address.
    Ipv6NoRoute => "ipv6", "no_route";
    /// IPv6 fragment overlapping another of its datagram (RFC 5722: whole datagram dropped).
    Reassembly6Overlap => "ipv6", "reassembly_overlap";
    /// IPv6 fragment past the datagram's end, beyond 65535 bytes, or not a multiple of 8.
    Reassembly6Invalid => "ipv6", "reassembly_invalid";
    /// IPv6 reassembly memory or datagram-count bound reached.
    Reassembly6NoRoom => "ipv6", "reassembly_no_room";
    /// IPv6 datagram not completed in time (counted once per datagram).
    Reassembly6Timeout => "ipv6", "reassembly_timeout";
    /// IPv6 fragment that exactly duplicates one already held.
    Reassembly6Duplicate => "ipv6", "reassembly_duplicate";
    /// ICMPv6 message too short or invalid for its type.
    Icmpv6Truncated => "icmpv6", "truncated";
    /// ICMPv6 checksum wrong.
    Icmpv6Checksum => "icmpv6", "bad_checksum";
    /// ICMPv6 message we do not act on (or an error quoting nothing of ours).
    Icmpv6Ignored => "icmpv6", "ignored";
    /// Neighbor Discovery message failing RFC 4861 §6.1/§7.1 validation (hop limit not
    /// 255, bad source, option rules).
    NdpInvalid => "ndp", "invalid";
    /// Neighbor Discovery message not for us (another target, a router solicitation,
    /// a redirect, an RA while `accept_ra` is off).
    NdpIgnored => "ndp", "ignored";
    /// Outgoing packet dropped because its next hop did not answer neighbour solicitation.
    NdpFailed => "ndp", "resolution_failed";
    /// Outgoing packet dropped because the NDP pending queue was full.
    NdpQueueFull => "ndp", "pending_queue_full";
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.layer(), self.as_str())
    }
}

/// Counters of everything the interface did, readable at any time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters {
    /// Frames received from the link.
    pub rx_frames: u64,
    /// Bytes received from the link.
    pub rx_bytes: u64,
    /// Frames handed to the link.
    pub tx_frames: u64,
    /// Bytes handed to the link.
    pub tx_bytes: u64,
    /// ARP requests received for our address.
    pub arp_rx_requests: u64,
    /// ARP replies received.
    pub arp_rx_replies: u64,
    /// ARP requests sent (resolution, refresh and gratuitous).
    pub arp_tx_requests: u64,
    /// ARP replies sent.
    pub arp_tx_replies: u64,
    /// Claims of a new MAC for a resolved neighbour kept back until it was re-confirmed
    /// (ARP spoofing defence).
    pub arp_changes_held: u64,
    /// IPv4 packets delivered to us (fragments counted individually).
    pub ipv4_rx_packets: u64,
    /// IPv4 packets sent (fragments counted individually).
    pub ipv4_tx_packets: u64,
    /// Fragments received.
    pub ipv4_rx_fragments: u64,
    /// Datagrams reassembled from fragments.
    pub ipv4_reassembled: u64,
    /// Fragments sent.
    pub ipv4_tx_fragments: u64,
    /// Datagrams we had to fragment.
    pub ipv4_fragmented: u64,
    /// Echo requests received.
    pub icmp_rx_echo_requests: u64,
    /// Echo replies sent.
    pub icmp_tx_echo_replies: u64,
    /// ICMP errors received and passed to the transport layers.
    pub icmp_rx_errors: u64,
    /// ICMP errors sent (unreachable, time exceeded).
    pub icmp_tx_errors: u64,
    /// ICMP errors not sent because of the rate limit.
    pub icmp_rate_limited: u64,
    /// UDP datagrams received (valid).
    pub udp_rx_datagrams: u64,
    /// TCP segments received (valid).
    pub tcp_rx_segments: u64,
    /// GSO super-frames received from an offloading link (counted in `rx_frames` too).
    pub offload_rx_gso_frames: u64,
    /// Frames received with a checksum the link left partial or validated, so not
    /// verified here.
    pub offload_rx_csum_skipped: u64,
    /// TCP super-segments sent for the link to cut (TSO).
    pub offload_tx_tso_frames: u64,
    /// Wire segments those super-segments stand for.
    pub offload_tx_tso_segments: u64,
    /// Frames sent with a partial checksum for the link to finish.
    pub offload_tx_csum_partial: u64,
    /// IPv6 packets delivered to us (fragments counted individually).
    pub ipv6_rx_packets: u64,
    /// IPv6 packets sent (fragments counted individually).
    pub ipv6_tx_packets: u64,
    /// IPv6 fragments received.
    pub ipv6_rx_fragments: u64,
    /// IPv6 datagrams reassembled.
    pub ipv6_reassembled: u64,
    /// IPv6 fragments sent.
    pub ipv6_tx_fragments: u64,
    /// IPv6 datagrams we had to fragment.
    pub ipv6_fragmented: u64,
    /// ICMPv6 echo requests received.
    pub icmpv6_rx_echo_requests: u64,
    /// ICMPv6 echo replies sent.
    pub icmpv6_tx_echo_replies: u64,
    /// ICMPv6 errors received about our packets.
    pub icmpv6_rx_errors: u64,
    /// ICMPv6 errors sent.
    pub icmpv6_tx_errors: u64,
    /// Packet Too Big messages that lowered a path MTU (RFC 8201).
    pub icmpv6_pmtu_updates: u64,
    /// Neighbour solicitations received.
    pub ndp_rx_solicits: u64,
    /// Neighbour advertisements received.
    pub ndp_rx_adverts: u64,
    /// Neighbour solicitations sent (resolution, probes, DAD).
    pub ndp_tx_solicits: u64,
    /// Neighbour advertisements sent.
    pub ndp_tx_adverts: u64,
    /// Router advertisements accepted.
    pub ndp_rx_router_adverts: u64,
    /// Router solicitations sent.
    pub ndp_tx_router_solicits: u64,
    /// Addresses found duplicate by DAD (RFC 4862 §5.4.5) and not used.
    pub ndp_dad_duplicates: u64,
    /// MLDv2 reports sent.
    pub mld_tx_reports: u64,
    /// Drops, indexed by [`DropReason`] as usize.
    pub drops: [u64; DropReason::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            rx_frames: 0,
            rx_bytes: 0,
            tx_frames: 0,
            tx_bytes: 0,
            arp_rx_requests: 0,
            arp_rx_replies: 0,
            arp_tx_requests: 0,
            arp_tx_replies: 0,
            arp_changes_held: 0,
            ipv4_rx_packets: 0,
            ipv4_tx_packets: 0,
            ipv4_rx_fragments: 0,
            ipv4_reassembled: 0,
            ipv4_tx_fragments: 0,
            ipv4_fragmented: 0,
            icmp_rx_echo_requests: 0,
            icmp_tx_echo_replies: 0,
            icmp_rx_errors: 0,
            icmp_tx_errors: 0,
            icmp_rate_limited: 0,
            udp_rx_datagrams: 0,
            tcp_rx_segments: 0,
            offload_rx_gso_frames: 0,
            offload_rx_csum_skipped: 0,
            offload_tx_tso_frames: 0,
            offload_tx_tso_segments: 0,
            offload_tx_csum_partial: 0,
            ipv6_rx_packets: 0,
            ipv6_tx_packets: 0,
            ipv6_rx_fragments: 0,
            ipv6_reassembled: 0,
            ipv6_tx_fragments: 0,
            ipv6_fragmented: 0,
            icmpv6_rx_echo_requests: 0,
            icmpv6_tx_echo_replies: 0,
            icmpv6_rx_errors: 0,
            icmpv6_tx_errors: 0,
            icmpv6_pmtu_updates: 0,
            ndp_rx_solicits: 0,
            ndp_rx_adverts: 0,
            ndp_tx_solicits: 0,
            ndp_tx_adverts: 0,
            ndp_rx_router_adverts: 0,
            ndp_tx_router_solicits: 0,
            ndp_dad_duplicates: 0,
            mld_tx_reports: 0,
            drops: [0; DropReason::COUNT],
        }
    }
}

impl Counters {
    /// How many packets were dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Total drops over every reason.
    pub fn total_dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Every counter as `(layer, name, value)`, drops included, for printing and JSON.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        let plain = [
            ("ethernet", "rx_frames", self.rx_frames),
            ("ethernet", "rx_bytes", self.rx_bytes),
            ("ethernet", "tx_frames", self.tx_frames),
            ("ethernet", "tx_bytes", self.tx_bytes),
            ("arp", "rx_requests", self.arp_rx_requests),
            ("arp", "rx_replies", self.arp_rx_replies),
            ("arp", "tx_requests", self.arp_tx_requests),
            ("arp", "tx_replies", self.arp_tx_replies),
            ("arp", "changes_held", self.arp_changes_held),
            ("ipv4", "rx_packets", self.ipv4_rx_packets),
            ("ipv4", "tx_packets", self.ipv4_tx_packets),
            ("ipv4", "rx_fragments", self.ipv4_rx_fragments),
            ("ipv4", "reassembled", self.ipv4_reassembled),
            ("ipv4", "tx_fragments", self.ipv4_tx_fragments),
            ("ipv4", "fragmented", self.ipv4_fragmented),
            ("icmp", "rx_echo_requests", self.icmp_rx_echo_requests),
            ("icmp", "tx_echo_replies", self.icmp_tx_echo_replies),
            ("icmp", "rx_errors", self.icmp_rx_errors),
            ("icmp", "tx_errors", self.icmp_tx_errors),
            ("icmp", "rate_limited", self.icmp_rate_limited),
            ("udp", "rx_datagrams", self.udp_rx_datagrams),
            ("tcp", "rx_segments", self.tcp_rx_segments),
            ("offload", "rx_gso_frames", self.offload_rx_gso_frames),
            ("offload", "rx_csum_skipped", self.offload_rx_csum_skipped),
            ("offload", "tx_tso_frames", self.offload_tx_tso_frames),
            ("offload", "tx_tso_segments", self.offload_tx_tso_segments),
            ("offload", "tx_csum_partial", self.offload_tx_csum_partial),
            ("ipv6", "rx_packets", self.ipv6_rx_packets),
            ("ipv6", "tx_packets", self.ipv6_tx_packets),
            ("ipv6", "rx_fragments", self.ipv6_rx_fragments),
            ("ipv6", "reassembled", self.ipv6_reassembled),
            ("ipv6", "tx_fragments", self.ipv6_tx_fragments),
            ("ipv6", "fragmented", self.ipv6_fragmented),
            ("icmpv6", "rx_echo_requests", self.icmpv6_rx_echo_requests),
            ("icmpv6", "tx_echo_replies", self.icmpv6_tx_echo_replies),
            ("icmpv6", "rx_errors", self.icmpv6_rx_errors),
            ("icmpv6", "tx_errors", self.icmpv6_tx_errors),
            ("icmpv6", "pmtu_updates", self.icmpv6_pmtu_updates),
            ("ndp", "rx_solicits", self.ndp_rx_solicits),
            ("ndp", "rx_adverts", self.ndp_rx_adverts),
            ("ndp", "tx_solicits", self.ndp_tx_solicits),
            ("ndp", "tx_adverts", self.ndp_tx_adverts),
            ("ndp", "rx_router_adverts", self.ndp_rx_router_adverts),
            ("ndp", "tx_router_solicits", self.ndp_tx_router_solicits),
            ("ndp", "dad_duplicates", self.ndp_dad_duplicates),
            ("mld", "tx_reports", self.mld_tx_reports),
        ];
        plain.into_iter().chain(
            DropReason::ALL
                .iter()
                .map(|&r| (r.layer(), r.as_str(), self.drops[r as usize])),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_distinct_name_within_its_layer() {
        let mut seen = std::collections::HashSet::new();
        for r in DropReason::ALL {
            assert!(seen.insert((r.layer(), r.as_str())), "{r} twice");
        }
        assert_eq!(
            DropReason::ALL[DropReason::TcpChecksum as usize],
            DropReason::TcpChecksum
        );
    }
}
