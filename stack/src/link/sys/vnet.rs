//! The `struct virtio_net_hdr` that precedes every frame on a link with offloads: a TAP
//! opened with `IFF_VNET_HDR` and an AF_PACKET socket with `PACKET_VNET_HDR` speak the
//! same 10-byte header, in native byte order (what the kernel uses for both unless told
//! otherwise), so both links decode and encode it here, and write a frame behind it
//! with one `writev(2)`.
//!
//! Decoding takes whatever the kernel wrote as given; the interface checks the
//! metadata against the frame ([`FrameMeta`]). Encoding never panics on a frame too
//! short to hold the headers it describes (`hdr_len` is then 0, a hint only).

use crate::link::offload::{
    ipv4_tcp_header_lens, ipv6_tcp_header_len, CsumPartial, FrameMeta, Gso, LinkCaps,
};
use std::io;
use std::os::unix::io::RawFd;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the transport checksum is partial.
const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the transport checksum was validated.
const F_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
const GSO_TCPV6: u8 = 4;
/// Size of `struct virtio_net_hdr` (flags, gso_type, hdr_len, gso_size, csum_start,
/// csum_offset).
pub(super) const VNET_HDR_LEN: usize = 10;

/// The metadata a received virtio-net header describes. Whatever the kernel wrote is
/// taken as given here; the interface checks it against the frame.
pub(super) fn decode_vnet_hdr(h: &[u8; VNET_HDR_LEN]) -> FrameMeta {
    let u16_at = |i: usize| u16::from_ne_bytes([h[i], h[i + 1]]);
    let flags = h[0];
    let gso = match h[1] {
        0 => Gso::None,
        GSO_TCPV4 => Gso::TcpV4 { size: u16_at(4) },
        GSO_TCPV6 => Gso::TcpV6 { size: u16_at(4) },
        other => Gso::Other(other),
    };
    FrameMeta {
        gso,
        csum: (flags & F_NEEDS_CSUM != 0).then(|| CsumPartial {
            start: u16_at(6),
            offset: u16_at(8),
        }),
        csum_valid: flags & F_DATA_VALID != 0,
    }
}

/// The virtio-net header for a frame we send with `meta`.
pub(super) fn encode_vnet_hdr(frame: &[u8], meta: &FrameMeta) -> [u8; VNET_HDR_LEN] {
    let mut h = [0u8; VNET_HDR_LEN];
    if let Some(c) = meta.csum {
        h[0] = F_NEEDS_CSUM;
        h[6..8].copy_from_slice(&c.start.to_ne_bytes());
        h[8..10].copy_from_slice(&c.offset.to_ne_bytes());
    }
    // hdr_len: Ethernet, IP and TCP headers, options included (a hint for the kernel's
    // linear allocation).
    let gso = match meta.gso {
        Gso::TcpV4 { size } => Some((
            GSO_TCPV4,
            size,
            ipv4_tcp_header_lens(frame).map_or(0, |(ihl, doff)| 14 + ihl + doff),
        )),
        Gso::TcpV6 { size } => Some((
            GSO_TCPV6,
            size,
            ipv6_tcp_header_len(frame).map_or(0, |doff| 14 + 40 + doff),
        )),
        _ => None,
    };
    if let Some((ty, size, hdr_len)) = gso {
        h[1] = ty;
        h[2..4].copy_from_slice(&(hdr_len as u16).to_ne_bytes());
        h[4..6].copy_from_slice(&size.to_ne_bytes());
    }
    h
}

/// What a link speaking the header offers: TSO (and TSO6 when `tso6`), partial
/// checksums either way, super-frames received, frames up to one 64 KB IP packet and
/// its Ethernet header.
pub(super) fn vnet_caps(tso6: bool) -> LinkCaps {
    LinkCaps {
        tso: true,
        tso6,
        tx_csum_partial: true,
        rx_offload: true,
        max_tx_frame: crate::link::MAX_OFFLOAD_FRAME_LEN,
    }
}

/// The two iovecs a receive fills: the header into `hdr`, the frame into `buf`, so the
/// frame lands in the caller's buffer without a copy.
pub(super) fn rx_iovecs(hdr: &mut [u8; VNET_HDR_LEN], buf: &mut [u8]) -> [libc::iovec; 2] {
    [
        libc::iovec {
            iov_base: hdr.as_mut_ptr().cast(),
            iov_len: VNET_HDR_LEN,
        },
        libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        },
    ]
}

/// Writes `hdr` and then `frame` as one datagram (`writev(2)` of two iovecs), so the
/// frame is not copied to put the header in front of it. Returns writev's result; the
/// caller decides which errors drop the frame.
pub(super) fn write_with_header(
    fd: RawFd,
    hdr: &[u8; VNET_HDR_LEN],
    frame: &[u8],
) -> io::Result<usize> {
    let iov = [
        libc::iovec {
            iov_base: hdr.as_ptr() as *mut libc::c_void,
            iov_len: VNET_HDR_LEN,
        },
        libc::iovec {
            iov_base: frame.as_ptr() as *mut libc::c_void,
            iov_len: frame.len(),
        },
    ];
    // SAFETY: both iovecs describe live buffers of the stated lengths; writev only
    // reads them.
    let n = unsafe { libc::writev(fd, iov.as_ptr(), 2) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vnet_header_round_trips_gso_and_partial_checksum() {
        let meta = FrameMeta {
            gso: Gso::TcpV4 { size: 1448 },
            csum: Some(CsumPartial {
                start: 34,
                offset: 16,
            }),
            csum_valid: false,
        };
        // Ethernet + IPv4 (IHL 5) + TCP with data offset 8 (32 bytes).
        let mut frame = vec![0u8; 14 + 20 + 32 + 100];
        frame[14] = 0x45;
        frame[14 + 20 + 12] = 8 << 4;
        let h = encode_vnet_hdr(&frame, &meta);
        assert_eq!(h[0], F_NEEDS_CSUM);
        assert_eq!(u16::from_ne_bytes([h[2], h[3]]), 14 + 20 + 32);
        assert_eq!(decode_vnet_hdr(&h), meta);
        let valid = decode_vnet_hdr(&[F_DATA_VALID, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(valid.csum_valid && valid.csum.is_none() && valid.gso == Gso::None);
        // UDP fragmentation offload (3) is not spoken.
        assert_eq!(
            decode_vnet_hdr(&[0, 3, 0, 0, 0, 0, 0, 0, 0, 0]).gso,
            Gso::Other(3)
        );
        // TSO6: Ethernet + IPv6 + TCP with data offset 8; hdr_len covers all three.
        let meta6 = FrameMeta {
            gso: Gso::TcpV6 { size: 1428 },
            csum: Some(CsumPartial {
                start: 54,
                offset: 16,
            }),
            csum_valid: false,
        };
        let mut frame6 = vec![0u8; 14 + 40 + 32 + 100];
        frame6[14] = 0x60;
        frame6[14 + 40 + 12] = 8 << 4;
        let h6 = encode_vnet_hdr(&frame6, &meta6);
        assert_eq!(h6[1], GSO_TCPV6);
        assert_eq!(u16::from_ne_bytes([h6[2], h6[3]]), 14 + 40 + 32);
        assert_eq!(u16::from_ne_bytes([h6[4], h6[5]]), 1428);
        assert_eq!(decode_vnet_hdr(&h6), meta6);
    }

    #[test]
    fn a_gso_header_for_a_frame_too_short_to_hold_its_headers_does_not_panic() {
        let meta = FrameMeta {
            gso: Gso::TcpV4 { size: 1448 },
            ..FrameMeta::default()
        };
        for len in [0, 14, 15, 20, 34, 46] {
            let h = encode_vnet_hdr(&vec![0x45; len], &meta);
            assert_eq!(u16::from_ne_bytes([h[2], h[3]]), 0, "{len}-byte frame");
        }
    }
}
