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
