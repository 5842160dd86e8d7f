//! Offloads through two interfaces joined in memory, the way the kernel behind an
//! offloading TAP joins them: super-segments (TSO) with partial checksums either
//! cross whole (the kernel delivering locally, as GRO would) or are cut into wire
//! segments with full checksums (the kernel putting them on a wire), and lying
//! metadata is dropped and counted.

use super::*;
use crate::link::{CsumPartial, FrameMeta, Gso, LinkCaps};
use crate::socket::tcp::TcpHandle;
use crate::wire::testdata::{self, PEER_IP};
use crate::wire::TcpFlags;
use core::net::{Ipv6Addr, SocketAddrV6};

const A_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa1]);
const B_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb2]);
const A_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
const PORT: u16 = 5001;
const A_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 9, 0, 0, 0, 0, 0, 1);
const B_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 9, 0, 0, 0, 0, 0, 2);

const OFFLOAD: LinkCaps = LinkCaps {
    tso: true,
    tso6: true,
    tx_csum_partial: true,
    rx_offload: true,
    max_tx_frame: crate::link::MAX_OFFLOAD_FRAME_LEN,
};

fn iface(mac: EthernetAddress, ip: Ipv4Addr, peer: (Ipv4Addr, EthernetAddress)) -> Interface {
    let mut c = Config::new(mac, Ipv4Cidr::new(ip, 24));
    c.arp.gratuitous_at_start = false;
    c.static_neighbors = vec![peer];
    Interface::new(c, Instant::ZERO)
}

/// What the wire does with one frame A sent: the frames B receives.
type Wire<'a> = dyn FnMut(&[u8], FrameMeta) -> Vec<(Vec<u8>, FrameMeta)> + 'a;

struct Pair {
    a: Interface,
    b: Interface,
    caps: LinkCaps,
    now: Instant,
    buf: Vec<u8>,
    /// Length and metadata of every frame A sent.
    sent: Vec<(usize, FrameMeta)>,
}

impl Pair {
    fn new(caps: LinkCaps) -> Pair {
        Pair {
            a: iface(A_MAC, A_IP, (B_IP, B_MAC)),
            b: iface(B_MAC, B_IP, (A_IP, A_MAC)),
            caps,
            now: Instant::ZERO,
            buf: vec![0; crate::link::MAX_OFFLOAD_FRAME_LEN],
            sent: Vec::new(),
        }
    }

    /// Moves every pending frame both ways once; false when nothing moved.
    fn exchange(&mut self, wire: &mut Wire<'_>) -> bool {
        let mut moved = false;
        while let Some((n, meta)) = self
            .a
            .poll_transmit_meta(self.now, &mut self.buf, self.caps)
        {
            self.sent.push((n, meta));
            for (f, m) in wire(&self.buf[..n], meta) {
                // Over IPv6 A also sends MLD reports, which are not for B.
                match self.b.handle_frame_meta(self.now, &f, m) {
                    None | Some(DropReason::Ipv6NotForUs) => {}
                    Some(d) => panic!("B dropped: {d:?}"),
                }
            }
            moved = true;
        }
        while let Some((n, meta)) = self
            .b
            .poll_transmit_meta(self.now, &mut self.buf, self.caps)
        {
            let dropped = self.a.handle_frame_meta(self.now, &self.buf[..n], meta);
            assert!(
                matches!(dropped, None | Some(DropReason::Ipv6NotForUs)),
                "A dropped: {dropped:?}"
            );
            moved = true;
        }
        moved
    }

    /// Advances the clock to the next deadline and runs the timers.
    fn tick(&mut self) {
        let next = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .expect("a deadline while data is outstanding");
        self.now = self.now.max(next);
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
    }

    /// IPv4 and IPv6 (fd00:9::1 and ::2, DAD and router solicitation off) on both.
    fn new6(caps: LinkCaps) -> Pair {
        let v6 = |mut i: Interface, ip: Ipv6Addr| {
            let mut c = i.config().clone();
            c.ipv6.enabled = true;
            c.ipv6.addresses = vec![crate::wire::Ipv6Cidr::new(ip, 64)];
            c.ipv6.dad_transmits = 0;
            c.ipv6.accept_ra = false;
            c.ipv6.router_solicitations = 0;
            i = Interface::new(c, Instant::ZERO);
            i
        };
        let mut p = Pair::new(caps);
        p.a = v6(p.a, A_IP6);
        p.b = v6(p.b, B_IP6);
        p
    }

    /// A connects to B and sends `data`; returns what B read, and A's handle.
    fn transfer(&mut self, data: &[u8], wire: &mut Wire<'_>) -> (Vec<u8>, TcpHandle) {
        self.transfer_to(SocketAddr::V4(SocketAddrV4::new(B_IP, PORT)), data, wire)
    }

    /// [`transfer`](Self::transfer) to B's `to`.
    fn transfer_to(
        &mut self,
        to: SocketAddr,
        data: &[u8],
        wire: &mut Wire<'_>,
    ) -> (Vec<u8>, TcpHandle) {
        let l = self.b.tcp().socket();
        if to.is_ipv6() {
            self.b.tcp().set_v6only(l, true).unwrap();
        }
        self.b.tcp().listen(l, to, 8).unwrap();
        let h = self.a.tcp().socket();
        let cx = self.a.tcp_context(self.now);
        self.a.tcp().connect(h, &cx, to).unwrap();
        let mut conn = None;
        let (mut off, mut got) = (0, Vec::new());
        let mut chunk = vec![0u8; 256 * 1024];
        for _ in 0..100_000 {
            if conn.is_none() {
                conn = self.b.tcp().accept(l).ok().map(|(c, _)| c);
            }
            if off < data.len() {
                if let Ok(n) = self.a.tcp().send(h, &data[off..]) {
                    off += n;
                }
            }
            if let Some(c) = conn {
                while let Ok(n) = self.b.tcp().recv(c, &mut chunk) {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&chunk[..n]);
                }
            }
            if got.len() == data.len() {
                return (got, h);
            }
            if !self.exchange(wire) {
                self.tick();
            }
        }
        panic!("transfer stalled at {} of {} bytes", got.len(), data.len());
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// The kernel delivering locally: the super-frame arrives as it was sent.
fn whole(frame: &[u8], meta: FrameMeta) -> Vec<(Vec<u8>, FrameMeta)> {
    vec![(frame.to_vec(), meta)]
}

/// What a device does with a super-frame on its way to a wire: wire segments of
/// `gso_size` payload with the super-frame's headers, sequence numbers advanced, PSH
/// and FIN on the last only, full checksums.
fn cut(frame: &[u8], meta: FrameMeta) -> Vec<(Vec<u8>, FrameMeta)> {
    let mut full = frame.to_vec();
    crate::link::offload::complete_checksum(&mut full, &meta);
    let Gso::TcpV4 { size } = meta.gso else {
        return vec![(full, FrameMeta::default())];
    };
    let (eth, p) = EthernetRepr::parse(frame).unwrap();
    let (ip, payload) = Ipv4Repr::parse(p).unwrap();
    let seg = TcpRepr::parse_unverified(payload).unwrap();
    let chunks: Vec<&[u8]> = seg.payload.chunks(usize::from(size)).collect();
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let mut flags = seg.flags;
        if !last {
            flags = TcpFlags(flags.0 & !(TcpFlags::PSH.0 | TcpFlags::FIN.0));
        }
        let s = TcpRepr {
            seq_number: seg.seq_number + i * usize::from(size),
            flags,
            payload: chunk,
            ..seg
        };
        let hdr = Ipv4Repr {
            ident: ip.ident.wrapping_add(i as u16),
            payload_len: s.buffer_len(),
            ..ip
        };
        let mut f = vec![0u8; ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + s.buffer_len()];
        eth.emit(&mut f);
        hdr.emit(&mut f[ETHERNET_HEADER_LEN..]);
        s.emit(
            &mut f[ETHERNET_HEADER_LEN + IPV4_HEADER_LEN..],
            ip.src_addr,
            ip.dst_addr,
        );
        out.push((f, FrameMeta::default()));
    }
    out
}

#[test]
fn tso_super_segments_cross_whole_and_arrive_in_order() {
    let data = pattern(2_000_000);
    let mut p = Pair::new(OFFLOAD);
    let (got, h) = p.transfer(&data, &mut whole);
    assert!(got == data, "B read different bytes");
    let mss = p.a.tcp().info(h).unwrap().snd_mss;
    let supers: Vec<_> = p
        .sent
        .iter()
        .filter_map(|(n, m)| match m.gso {
            Gso::TcpV4 { size } => Some((*n, size)),
            _ => None,
        })
        .collect();
    assert!(!supers.is_empty(), "no super-segment sent");
    // The wire segment size is the MSS the connection uses (with its options) and a
    // super-segment carries many of them.
    for &(n, size) in &supers {
        assert!(
            usize::from(size) <= mss && usize::from(size) >= mss - 40,
            "{size} vs {mss}"
        );
        assert!(n > 1514, "{n}-byte super-frame");
    }
    assert!(supers.iter().any(|&(n, _)| n > 30_000), "{supers:?}");
    // Every TCP segment went out with a partial checksum for the device to finish.
    assert!(p.sent.iter().all(|(_, m)| m.csum.is_some()));
    let c = p.b.counters();
    assert_eq!(c.offload_rx_gso_frames, supers.len() as u64);
    assert!(c.offload_rx_csum_skipped >= c.offload_rx_gso_frames);
    assert_eq!(c.total_dropped(), 0);
    assert_eq!(p.a.counters().offload_tx_tso_frames, supers.len() as u64);
}

#[test]
fn without_tso_every_segment_fits_the_wire() {
    let data = pattern(300_000);
    let mut p = Pair::new(LinkCaps::default());
    let (got, _) = p.transfer(&data, &mut whole);
    assert!(got == data);
    assert!(p.sent.iter().all(|(n, m)| *n <= 1514 && m.is_plain()));
    assert_eq!(p.a.counters().offload_tx_tso_frames, 0);
    assert_eq!(p.b.counters().offload_rx_csum_skipped, 0);
}

#[test]
fn a_lost_wire_segment_of_a_super_segment_is_resent_alone() {
    let data = pattern(1_000_000);
    let mut p = Pair::new(OFFLOAD);
    let mut supers = 0;
    let mut lost = 0;
    let (got, h) = p.transfer(&data, &mut |f: &[u8], m: FrameMeta| {
        let mut segs = cut(f, m);
        if m.gso != Gso::None {
            supers += 1;
            // The third wire segment of the fourth super-segment never arrives.
            if supers == 4 && segs.len() > 3 {
                segs.remove(2);
                lost += 1;
            }
        }
        segs
    });
    assert_eq!(lost, 1, "no super-segment long enough to lose a part of");
    assert!(got == data, "B read different bytes");
    let info = p.a.tcp().info(h).unwrap();
    assert!(info.total_retrans >= 1, "{info:?}");
    // SACK names the hole: the retransmission is that one wire segment, not the
    // super-segment it was cut from.
    assert!(
        info.bytes_retrans <= 2 * info.snd_mss as u64,
        "{} bytes resent for one {}-byte hole",
        info.bytes_retrans,
        info.snd_mss
    );
    // Nothing was dropped for its checksum: the cut segments carried full ones.
    assert_eq!(p.b.counters().total_dropped(), 0);
}

/// TCP_DATA from the capture with its checksum left partial, as a sender with
/// checksum offload hands it to the device.
fn partial_tcp_frame() -> Vec<u8> {
    let mut f = testdata::TCP_DATA.to_vec();
    let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
    let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
    let sum = TcpRepr::pseudo_sum(src, dst, f.len() - 34);
    f[50..52].copy_from_slice(&sum.to_be_bytes());
    f
}

const NEEDS_CSUM_TCP: FrameMeta = FrameMeta {
    gso: Gso::None,
    csum: Some(CsumPartial {
        start: 34,
        offset: 16,
    }),
    csum_valid: false,
};

#[test]
fn partial_checksums_are_accepted_only_with_the_metadata_that_says_so() {
    let mut c = Config::new(testdata::PEER_MAC, Ipv4Cidr::new(PEER_IP, 24));
    c.arp.gratuitous_at_start = false;
    let mut i = Interface::new(c, Instant::ZERO);
    let f = partial_tcp_frame();
    assert_eq!(
        i.handle_frame(Instant::ZERO, &f),
        Some(DropReason::TcpChecksum)
    );
    assert_eq!(i.handle_frame_meta(Instant::ZERO, &f, NEEDS_CSUM_TCP), None);
    // DATA_VALID: the device checked it; a frame with a bad sum is then taken too,
    // as Linux does.
    let valid = FrameMeta {
        csum_valid: true,
        ..FrameMeta::default()
    };
    assert_eq!(i.handle_frame_meta(Instant::ZERO, &f, valid), None);
    assert_eq!(i.counters().offload_rx_csum_skipped, 2);
    assert_eq!(i.counters().dropped(DropReason::OffloadBadMeta), 0);
}

#[test]
fn lying_offload_metadata_is_dropped_and_counted_never_trusted() {
    let mut c = Config::new(testdata::PEER_MAC, Ipv4Cidr::new(PEER_IP, 24));
    c.arp.gratuitous_at_start = false;
    let mut i = Interface::new(c, Instant::ZERO);
    let tcp = partial_tcp_frame();
    let udp = testdata::UDP_DATAGRAM;
    let csum = |start, offset| FrameMeta {
        csum: Some(CsumPartial { start, offset }),
        ..FrameMeta::default()
    };
    let gso = |g| FrameMeta {
        gso: g,
        ..NEEDS_CSUM_TCP
    };
    let bad: Vec<(&[u8], FrameMeta, DropReason)> = vec![
        // The checksum is not where the metadata says.
        (&tcp[..], csum(30, 16), DropReason::OffloadBadMeta),
        (&tcp[..], csum(34, 6), DropReason::OffloadBadMeta),
        (udp, csum(34, 16), DropReason::OffloadBadMeta),
        // GSO of a UDP datagram, a zero segment size, a type we do not speak.
        (
            udp,
            gso(Gso::TcpV4 { size: 1448 }),
            DropReason::OffloadBadMeta,
        ),
        (
            &tcp[..],
            gso(Gso::TcpV4 { size: 0 }),
            DropReason::OffloadBadMeta,
        ),
        (&tcp[..], gso(Gso::Other(3)), DropReason::OffloadBadMeta),
        // An IPv6 segmentation type on an IPv4 frame.
        (
            &tcp[..],
            gso(Gso::TcpV6 { size: 1448 }),
            DropReason::OffloadBadMeta,
        ),
        // A super-frame cut short: the IPv4 total length runs past the frame.
        (
            &tcp[..tcp.len() - 3],
            gso(Gso::TcpV4 { size: 1448 }),
            DropReason::Ipv4Truncated,
        ),
        // Too short for any header the metadata points into.
        (&tcp[..20], NEEDS_CSUM_TCP, DropReason::Ipv4Truncated),
    ];
    for (k, (frame, meta, reason)) in bad.iter().enumerate() {
        assert_eq!(
            i.handle_frame_meta(Instant::ZERO, frame, *meta),
            Some(*reason),
            "case {k}: {meta:?}"
        );
    }
    assert_eq!(i.counters().dropped(DropReason::OffloadBadMeta), 7);
    assert_eq!(
        i.counters().offload_rx_csum_skipped,
        0,
        "nothing was trusted"
    );
    // Random metadata on random bytes never panics, and every frame is accounted for.
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(10);
    for _ in 0..2000 {
        use rand::Rng;
        let mut f = tcp.clone();
        let n = rng.gen_range(0..f.len());
        f[n] ^= rng.gen::<u8>();
        f.truncate(rng.gen_range(0..=f.len()));
        let meta = FrameMeta {
            gso: match rng.gen_range(0..3) {
                0 => Gso::None,
                1 => Gso::TcpV4 { size: rng.gen() },
                _ => Gso::Other(rng.gen()),
            },
            csum: rng.gen_bool(0.5).then(|| CsumPartial {
                start: rng.gen_range(0..80),
                offset: rng.gen_range(0..40),
            }),
            csum_valid: rng.gen(),
        };
        let _ = i.handle_frame_meta(Instant::ZERO, &f, meta);
    }
    let c = i.counters();
    assert_eq!(c.rx_frames, 2000 + bad.len() as u64);
    assert!(
        c.dropped(DropReason::OffloadBadMeta) > 6,
        "random metadata caught"
    );
}

#[test]
fn tso6_super_segments_cross_whole_and_arrive_in_order() {
    let data = pattern(2_000_000);
    let mut p = Pair::new6(OFFLOAD);
    let to = SocketAddr::V6(SocketAddrV6::new(B_IP6, PORT, 0, 0));
    let (got, h) = p.transfer_to(to, &data, &mut whole);
    assert!(got == data, "B read different bytes");
    let mss = p.a.tcp().info(h).unwrap().snd_mss;
    let supers: Vec<_> = p
        .sent
        .iter()
        .filter_map(|(n, m)| match m.gso {
            Gso::TcpV6 { size } => Some((*n, size)),
            _ => None,
        })
        .collect();
    assert!(!supers.is_empty(), "no TSO6 super-segment sent");
    assert!(
        !p.sent
            .iter()
            .any(|(_, m)| matches!(m.gso, Gso::TcpV4 { .. })),
        "an IPv4 GSO type on an IPv6 connection"
    );
    for &(n, size) in &supers {
        assert!(
            usize::from(size) <= mss && usize::from(size) >= mss - 40,
            "{size} vs {mss}"
        );
        assert!(n > 1514, "{n}-byte super-frame");
    }
    assert!(supers.iter().any(|&(n, _)| n > 30_000), "{supers:?}");
    let c = p.b.counters();
    assert_eq!(c.offload_rx_gso_frames, supers.len() as u64);
    // Only A's MLD report is dropped (not for B).
    assert_eq!(
        c.total_dropped() - c.dropped(DropReason::Ipv6NotForUs),
        0,
        "{c:?}"
    );
    assert_eq!(p.a.counters().offload_tx_tso_frames, supers.len() as u64);
}

#[test]
fn without_tso6_ipv6_segments_fit_the_wire_and_take_partial_checksums() {
    let data = pattern(300_000);
    let caps = LinkCaps {
        tso6: false,
        ..OFFLOAD
    };
    let mut p = Pair::new6(caps);
    let to = SocketAddr::V6(SocketAddrV6::new(B_IP6, PORT, 0, 0));
    let (got, _) = p.transfer_to(to, &data, &mut whole);
    assert!(got == data);
    assert!(p.sent.iter().all(|(n, m)| *n <= 1514 && m.gso == Gso::None));
    // IPv6 TCP segments still leave their checksum to the link.
    let tcp6 = p.sent.iter().filter(|(_, m)| m.csum.is_some()).count();
    assert!(tcp6 > 100, "{tcp6} segments with a partial checksum");
}
