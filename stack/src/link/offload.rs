//! Offload metadata: what a link can do beyond moving plain wire frames ([`LinkCaps`]),
//! and what it says about one frame ([`FrameMeta`]), in the terms of the virtio-net
//! header a TAP with `IFF_VNET_HDR` puts before every frame.
//!
//! Two things change when a link offloads:
//! - **checksums**: a frame may carry a *partial* TCP/UDP checksum (the field holds only
//!   the pseudo-header sum, and whoever finishes the frame adds the rest:
//!   `NEEDS_CSUM`), or come with its checksum already validated (`DATA_VALID`);
//! - **segmentation**: a frame may be a GSO *super-frame*: one TCP packet over IPv4 or
//!   IPv6 of up to 64 KB standing for several wire segments of `gso_size` payload bytes each, cut by
//!   whoever puts it on a wire (the kernel) or assembled by whoever took it off one.
//!
//! Invariant: a link that reports no capability ([`LinkCaps::default`]) never gets a
//! frame with non-default metadata from the interface, and never returns one; so links
//! and wrappers that ignore offloads (the memory pair, the fault injector with faults
//! on) keep their plain-frame meaning. A wrapper that passes frames one for one
//! forwards [`Link::caps`](super::Link::caps), [`Link::rx_meta`](super::Link::rx_meta)
//! and [`Link::send_meta`](super::Link::send_meta) inward; one that does not (that
//! holds, reorders or rewrites frames) reports no capability.

use crate::wire::checksum;

/// What a link can do beyond plain frames. The default is nothing: every frame fits
/// the MTU and carries complete checksums both ways.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkCaps {
    /// The link takes TCP/IPv4 super-frames (TSO) with a [`Gso::TcpV4`] meta.
    pub tso: bool,
    /// The link takes TCP/IPv6 super-frames (TSO6) with a [`Gso::TcpV6`] meta.
    pub tso6: bool,
    /// The link takes frames whose TCP checksum is partial (`NEEDS_CSUM`).
    pub tx_csum_partial: bool,
    /// The link may return frames with partial or pre-validated checksums and GSO
    /// super-frames, described by [`Link::rx_meta`](super::Link::rx_meta).
    pub rx_offload: bool,
    /// Largest frame (Ethernet header included) the link takes; 0 means "the MTU".
    pub max_tx_frame: usize,
}

/// Segmentation of a super-frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Gso {
    /// An ordinary frame.
    #[default]
    None,
    /// A TCP/IPv4 super-frame: wire segments of `size` payload bytes each (the last
    /// may be shorter), every one with the super-frame's headers.
    TcpV4 {
        /// Payload bytes per wire segment (the MSS used on the wire, options counted).
        size: u16,
    },
    /// A TCP/IPv6 super-frame (no extension headers), cut as [`Gso::TcpV4`].
    TcpV6 {
        /// Payload bytes per wire segment.
        size: u16,
    },
    /// A segmentation type the stack does not speak (the raw virtio `gso_type`).
    Other(u8),
}

/// Where a partial checksum lives: the sum over `frame[start..]` goes at
/// `start + offset` (virtio's `csum_start`/`csum_offset`, from the Ethernet header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CsumPartial {
    /// Offset of the transport header in the frame.
    pub start: u16,
    /// Offset of the checksum field in the transport header (16 for TCP, 6 for UDP).
    pub offset: u16,
}

/// What a link says about one frame (received), or is told about one (sent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameMeta {
    /// Segmentation.
    pub gso: Gso,
    /// The transport checksum is partial (`NEEDS_CSUM`).
    pub csum: Option<CsumPartial>,
    /// The transport checksum was validated by the other side (`DATA_VALID`).
    pub csum_valid: bool,
}

impl FrameMeta {
    /// True for the metadata of an ordinary frame with complete checksums.
    pub fn is_plain(&self) -> bool {
        *self == FrameMeta::default()
    }
}

/// Fills in the transport checksum a partial-checksum frame leaves for the device to
/// finish, so a recording shows the frame as the wire would carry it (the whole
/// super-frame summed as one packet). Does nothing when `meta` has no partial checksum
/// or its offsets fall outside the frame.
pub fn complete_checksum(frame: &mut [u8], meta: &FrameMeta) {
    let Some(c) = meta.csum else {
        return;
    };
    let start = usize::from(c.start);
    let at = start + usize::from(c.offset);
    if at + 2 > frame.len() {
        return;
    }
    // The field holds the folded pseudo-header sum; summing the segment over it and
    // complementing gives the full checksum (RFC 1071 is associative).
    let sum = checksum::of(&frame[start..]);
    let sum = if sum == 0 { 0xffff } else { sum };
    frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
}

/// How many wire segments a TCP super-frame stands for (1 for anything else or a
/// frame too short to tell).
pub fn wire_segments(frame: &[u8], meta: &FrameMeta) -> usize {
    let (size, payload) = match meta.gso {
        Gso::TcpV4 { size } => (size, tcp_payload_len(frame)),
        Gso::TcpV6 { size } => (size, tcp6_payload_len(frame)),
        _ => return 1,
    };
    let Some(payload) = payload else {
        return 1;
    };
    payload.div_ceil(usize::from(size).max(1)).max(1)
}

/// The TCP header length (options included) of an Ethernet/IPv6/TCP frame without
/// extension headers, or `None` when the frame is too short to say.
pub(crate) fn ipv6_tcp_header_len(frame: &[u8]) -> Option<usize> {
    Some(usize::from(*frame.get(14 + 40 + 12)? >> 4) * 4)
}

/// The TCP payload length of an Ethernet/IPv6/TCP frame, from its headers.
fn tcp6_payload_len(frame: &[u8]) -> Option<usize> {
    let doff = ipv6_tcp_header_len(frame)?;
    let payload = usize::from(u16::from_be_bytes([*frame.get(18)?, *frame.get(19)?]));
    payload.checked_sub(doff)
}

/// The IPv4 and TCP header lengths (options included) of an Ethernet/IPv4/TCP frame,
/// or `None` when the frame is too short to say.
pub(crate) fn ipv4_tcp_header_lens(frame: &[u8]) -> Option<(usize, usize)> {
    let ip = frame.get(14..)?;
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    let doff = usize::from(*ip.get(ihl + 12)? >> 4) * 4;
    Some((ihl, doff))
}

/// The TCP payload length of an Ethernet/IPv4/TCP frame, from its headers.
fn tcp_payload_len(frame: &[u8]) -> Option<usize> {
    let (ihl, doff) = ipv4_tcp_header_lens(frame)?;
    let total = usize::from(u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]));
    total.checked_sub(ihl + doff)
}

/// A one-line note a recorder puts on a super-frame (pcapng comment).
pub fn describe(frame: &[u8], meta: &FrameMeta) -> Option<String> {
    match meta.gso {
        Gso::None => None,
        Gso::TcpV4 { size } | Gso::TcpV6 { size } => Some(format!(
            "GSO super-frame, gso_size {size}, {} wire segments",
            wire_segments(frame, meta)
        )),
        Gso::Other(t) => Some(format!("GSO super-frame of unknown type {t}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{testdata, TcpRepr};

    #[test]
    fn completing_a_partial_checksum_gives_the_full_one() {
        let full = testdata::TCP_DATA;
        let mut frame = full.to_vec();
        // Replace the TCP checksum with the pseudo-header sum, as a sender with
        // checksum offload leaves it.
        let tcp = &frame[34..];
        let src = core::net::Ipv4Addr::new(frame[26], frame[27], frame[28], frame[29]);
        let dst = core::net::Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]);
        let partial = TcpRepr::pseudo_sum(src, dst, tcp.len());
        frame[50..52].copy_from_slice(&partial.to_be_bytes());
        assert_ne!(&frame[..], full);
        let meta = FrameMeta {
            csum: Some(CsumPartial {
                start: 34,
                offset: 16,
            }),
            ..FrameMeta::default()
        };
        complete_checksum(&mut frame, &meta);
        assert_eq!(&frame[..], full);
    }
}
