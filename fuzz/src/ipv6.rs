//! Structured IPv6 frames for the fuzz targets: an IPv6 header with a random
//! extension-header chain (hop-by-hop and destination options with random options,
//! routing headers of any type, fragment headers with random offsets, raw headers),
//! then ICMPv6 (echo, errors quoting a packet, NDP with options, MLD and MLDv2), TCP,
//! UDP or random bytes, addressed to the interface (its EUI-64 link-local address,
//! a global one, its solicited-node group, all-nodes) or elsewhere. Upper-layer
//! checksums are right unless the input asks otherwise, so frames get past the
//! checksum and reach the code behind it. Lengths may lie and frames may be cut.

use crate::{PEER_MAC, US_MAC};
use core::net::Ipv6Addr;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use ustack_capture::decode6::pseudo6;

/// The interface's link-local address from its MAC (RFC 4291 App. A, EUI-64).
pub fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([mac[0] ^ 2, mac[1]]),
        u16::from_be_bytes([mac[2], 0xff]),
        u16::from_be_bytes([0xfe, mac[3]]),
        u16::from_be_bytes([mac[4], mac[5]]),
    )
}

/// The global address the targets give the interface once IPv6 configuration exists.
pub const US_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
/// The peer's global address.
pub const PEER_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

fn addr(u: &mut Unstructured<'_>, ours: bool) -> Result<Ipv6Addr> {
    let us_ll = link_local(US_MAC.0);
    let peer_ll = link_local(PEER_MAC.0);
    Ok(match u.int_in_range(0..=9u8)? {
        0 if ours => us_ll,
        0 => peer_ll,
        1 if ours => US_IP6,
        1 => PEER_IP6,
        2 => Ipv6Addr::UNSPECIFIED,
        3 => solicited_node(us_ll),
        4 => Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
        5 => Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16),
        6 => Ipv6Addr::LOCALHOST,
        7 => solicited_node(US_IP6),
        8 => us_ll,
        _ => Ipv6Addr::from(u.arbitrary::<[u8; 16]>()?),
    })
}

fn bytes(u: &mut Unstructured<'_>, max: usize) -> Result<Vec<u8>> {
    let n = u.int_in_range(0..=max)?;
    u.bytes(n).map(<[u8]>::to_vec).or_else(|_| Ok(vec![0; n]))
}

/// Options of a hop-by-hop or destination options header, padded to 8-byte units.
fn options(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let mut b = Vec::new();
    for _ in 0..u.int_in_range(0..=4u8)? {
        match u.int_in_range(0..=5u8)? {
            0 => b.push(0),
            1 => {
                let n = u.int_in_range(0..=7u8)?;
                b.push(1);
                b.push(n);
                b.extend(core::iter::repeat_n(0, usize::from(n)));
            }
            // Router alert (MLD), sometimes with a wrong length.
            2 => {
                let n = if u.ratio(1, 8)? { u.arbitrary()? } else { 2 };
                b.extend_from_slice(&[5, n]);
                b.extend(core::iter::repeat_n(0, usize::from(n.min(8))));
            }
            // Jumbo payload.
            3 => {
                b.extend_from_slice(&[0xc2, 4]);
                b.extend_from_slice(&u.arbitrary::<u32>()?.to_be_bytes());
            }
            // An unknown option: its top two bits choose skip, discard or ICMP error.
            _ => {
                let data = bytes(u, 12)?;
                b.push(u.arbitrary()?);
                b.push(data.len() as u8);
                b.extend_from_slice(&data);
            }
        }
    }
    // Pad the header (2 bytes of next header and length + options) to 8n bytes.
    while (b.len() + 2) % 8 != 0 {
        b.push(0);
    }
    Ok(b)
}

/// NDP options: source/target link-layer address, prefix information, MTU, unknown
/// ones, and now and then a zero length (which must end the parse, RFC 4861 §4.6).
fn ndp_options(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let mut b = Vec::new();
    for _ in 0..u.int_in_range(0..=3u8)? {
        match u.int_in_range(0..=5u8)? {
            0 | 1 => {
                b.extend_from_slice(&[u.int_in_range(1..=2u8)?, 1]);
                b.extend_from_slice(&u.arbitrary::<[u8; 6]>()?);
            }
            2 => {
                b.extend_from_slice(&[3, 4, u.arbitrary()?, u.arbitrary()?]);
                b.extend_from_slice(&u.arbitrary::<u32>()?.to_be_bytes());
                b.extend_from_slice(&u.arbitrary::<u32>()?.to_be_bytes());
                b.extend_from_slice(&[0; 4]);
                let p = if u.arbitrary()? {
                    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0).octets()
                } else {
                    u.arbitrary::<[u8; 16]>()?
                };
                b.extend_from_slice(&p);
            }
            3 => {
                b.extend_from_slice(&[5, 1, 0, 0]);
                b.extend_from_slice(&u.arbitrary::<u32>()?.to_be_bytes());
            }
            4 => b.extend_from_slice(&[u.arbitrary()?, 0, 0, 0, 0, 0, 0, 0]),
            _ => {
                let units = u.int_in_range(1..=3u8)?;
                b.extend_from_slice(&[u.arbitrary()?, units]);
                b.extend(core::iter::repeat_n(0, usize::from(units) * 8 - 2));
            }
        }
    }
    Ok(b)
}

/// A transport header with ports for a packet quoted in an ICMPv6 error, or any bytes.
fn quote(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let mut q = vec![0x60, 0, 0, 0];
    let body = bytes(u, 48)?;
    q.extend_from_slice(&(body.len() as u16).to_be_bytes());
    q.push(if u.arbitrary()? { 6 } else { 17 });
    q.push(64);
    q.extend_from_slice(&addr(u, true)?.octets());
    q.extend_from_slice(&addr(u, false)?.octets());
    q.extend_from_slice(&body);
    Ok(q)
}

/// The upper layer: (protocol number, bytes without a checksum, checksum offset).
fn upper(u: &mut Unstructured<'_>) -> Result<(u8, Vec<u8>, Option<usize>)> {
    let icmp = |t: u8, code: u8, rest: &[u8], body: &[u8]| {
        let mut m = vec![t, code, 0, 0];
        m.extend_from_slice(rest);
        m.extend_from_slice(body);
        (58, m, Some(2))
    };
    Ok(match u.int_in_range(0..=11u8)? {
        0 => {
            let id: u16 = u.arbitrary()?;
            let seq: u16 = u.arbitrary()?;
            let mut rest = id.to_be_bytes().to_vec();
            rest.extend_from_slice(&seq.to_be_bytes());
            let len = usize::from(u.arbitrary::<u16>()? % 3000);
            let t = if u.ratio(7, 8)? { 128 } else { 129 };
            icmp(t, 0, &rest, &vec![0xa5; len])
        }
        1 => {
            // Neighbour solicitation for us (or another target), from the peer or DAD.
            let mut body = addr(u, true)?.octets().to_vec();
            body.extend_from_slice(&ndp_options(u)?);
            icmp(135, u.int_in_range(0..=1u8)?, &[0; 4], &body)
        }
        2 => {
            let mut body = addr(u, false)?.octets().to_vec();
            body.extend_from_slice(&ndp_options(u)?);
            icmp(136, 0, &[u.arbitrary()?, 0, 0, 0], &body)
        }
        3 => icmp(133, 0, &[0; 4], &ndp_options(u)?),
        4 => {
            let mut rest = vec![u.arbitrary()?, u.arbitrary()?];
            rest.extend_from_slice(&u.arbitrary::<u16>()?.to_be_bytes());
            let mut body = u.arbitrary::<[u8; 8]>()?.to_vec();
            body.extend_from_slice(&ndp_options(u)?);
            icmp(134, 0, &rest, &body)
        }
        5 => {
            let mut body = addr(u, false)?.octets().to_vec();
            body.extend_from_slice(&addr(u, false)?.octets());
            body.extend_from_slice(&ndp_options(u)?);
            icmp(137, 0, &[0; 4], &body)
        }
        6 => {
            // MLDv2 report with records, or MLD query/report/done.
            let t = *u.choose(&[130u8, 131, 132, 143])?;
            let mut body = Vec::new();
            let n = u.int_in_range(0..=3u16)?;
            if t == 143 {
                for _ in 0..n {
                    let srcs = u.int_in_range(0..=2u16)?;
                    body.extend_from_slice(&[u.int_in_range(1..=6u8)?, 0]);
                    body.extend_from_slice(&srcs.to_be_bytes());
                    body.extend_from_slice(&addr(u, false)?.octets());
                    for _ in 0..srcs {
                        body.extend_from_slice(&addr(u, false)?.octets());
                    }
                }
                icmp(t, 0, &[0, 0, 0, n as u8], &body)
            } else {
                body.extend_from_slice(&addr(u, true)?.octets());
                if u.arbitrary()? {
                    body.extend_from_slice(&[2, 125, 0, 0]);
                }
                icmp(t, 0, &u.arbitrary::<[u8; 4]>()?, &body)
            }
        }
        7 => {
            // Errors: unreachable, packet too big (any MTU), time exceeded, parameter
            // problem, quoting a TCP or UDP packet.
            let t = u.int_in_range(1..=4u8)?;
            let word: u32 = if t == 2 && u.arbitrary()? {
                u32::from(u.int_in_range(0..=1500u16)?)
            } else {
                u.arbitrary()?
            };
            icmp(t, u.int_in_range(0..=6u8)?, &word.to_be_bytes(), &quote(u)?)
        }
        8 => {
            let mut h = vec![0u8; 20];
            h[0..2].copy_from_slice(&u.arbitrary::<u16>()?.to_be_bytes());
            h[2..4].copy_from_slice(
                &if u.arbitrary()? {
                    80u16
                } else {
                    u.arbitrary()?
                }
                .to_be_bytes(),
            );
            h[4..12].copy_from_slice(&u.arbitrary::<[u8; 8]>()?);
            let opts = bytes(u, 40)?;
            let opts_len = opts.len().div_ceil(4) * 4;
            h[12] = (((20 + opts_len) / 4) as u8) << 4;
            h[13] = u.arbitrary()?;
            h[14..16].copy_from_slice(&u.arbitrary::<u16>()?.to_be_bytes());
            h.extend_from_slice(&opts);
            h.resize(20 + opts_len, 1);
            h.extend_from_slice(&bytes(u, 64)?);
            (6, h, Some(16))
        }
        9 => {
            let payload = usize::from(u.arbitrary::<u16>()? % 9000);
            let mut h = u.arbitrary::<[u8; 2]>()?.to_vec();
            h.extend_from_slice(&if u.arbitrary()? { 7u16 } else { u.arbitrary()? }.to_be_bytes());
            h.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
            h.extend_from_slice(&[0, 0]);
            h.extend(core::iter::repeat_n(0x5a, payload));
            (17, h, Some(6))
        }
        10 => (59, Vec::new(), None),
        _ => (u.arbitrary()?, bytes(u, 64)?, None),
    })
}

/// One structured IPv6 frame from the peer (or a random source) to the interface.
/// `ident` lets a caller keep fragments of one datagram together.
pub fn frame6(u: &mut Unstructured<'_>, ident: u32) -> Result<Vec<u8>> {
    let src = addr(u, false)?;
    let dst = addr(u, true)?;
    let (proto, mut up, sum_at) = upper(u)?;
    // Extension headers, each as (its number, bytes with the next-header byte left 0).
    let mut exts: Vec<(u8, Vec<u8>)> = Vec::new();
    for _ in 0..u.int_in_range(0..=4u8)? {
        match u.int_in_range(0..=5u8)? {
            0 | 1 => {
                let n = if u.arbitrary()? { 0 } else { 60 };
                let o = options(u)?;
                let mut h = vec![0, ((o.len() + 2) / 8 - 1) as u8];
                h.extend_from_slice(&o);
                exts.push((n, h));
            }
            2 => {
                let addrs = u.int_in_range(0..=3u8)?;
                let mut h = vec![
                    0,
                    addrs * 2,
                    u.int_in_range(0..=4u8)?,
                    u.int_in_range(0..=3u8)?,
                ];
                h.extend_from_slice(&[0; 4]);
                for _ in 0..addrs {
                    h.extend_from_slice(&addr(u, true)?.octets());
                }
                exts.push((43, h));
            }
            3 | 4 => {
                // Fragment header: offsets in 8-byte units, overlapping on purpose.
                let off = u.int_in_range(0..=8191u16)?;
                let off = if u.ratio(1, 2)? { off % 400 } else { off };
                let more = u.arbitrary::<bool>()?;
                let mut h = vec![0, 0];
                h.extend_from_slice(&((off << 3) | u16::from(more)).to_be_bytes());
                h.extend_from_slice(&ident.to_be_bytes());
                exts.push((44, h));
            }
            _ => {
                let mut h = vec![0, 0];
                h.extend_from_slice(&bytes(u, 6)?);
                h.resize(8, 0);
                exts.push((u.arbitrary()?, h));
            }
        }
    }
    // Checksum over the pseudo-header, unless the input wants it wrong.
    if let Some(at) = sum_at {
        if up.len() >= at + 2 && !u.ratio(1, 16)? {
            let sum = pseudo6(src, dst, proto, &up);
            up[at..at + 2].copy_from_slice(&sum.to_be_bytes());
        }
    }
    let mut payload = Vec::new();
    for i in 0..exts.len() {
        let next = exts.get(i + 1).map_or(proto, |e| e.0);
        let mut h = exts[i].1.clone();
        h[0] = next;
        payload.extend_from_slice(&h);
    }
    payload.extend_from_slice(&up);
    let first = exts.first().map_or(proto, |e| e.0);
    let mut len = payload.len().min(65_535) as u16;
    if u.ratio(1, 16)? {
        len = u.arbitrary()?;
    }
    let dst_mac = if dst.octets()[0] == 0xff {
        let o = dst.octets();
        [0x33, 0x33, o[12], o[13], o[14], o[15]]
    } else {
        US_MAC.0
    };
    let mut f = Vec::with_capacity(54 + payload.len());
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&PEER_MAC.0);
    f.extend_from_slice(&0x86ddu16.to_be_bytes());
    let tc_flow: u32 = u.arbitrary()?;
    f.extend_from_slice(&((6 << 28) | (tc_flow & 0x0fff_ffff)).to_be_bytes());
    f.extend_from_slice(&len.to_be_bytes());
    f.push(first);
    f.push(*u.choose(&[255u8, 64, 1, 0])?);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&payload);
    if u.ratio(1, 16)? {
        let cut = u.int_in_range(14..=f.len())?;
        f.truncate(cut);
    }
    Ok(f)
}

/// A whole datagram (an echo request or a UDP datagram to port 7, checksums right)
/// cut into fragments at 8-byte boundaries, in an order, with duplicates and overlaps
/// the input chooses: what reassembly must put together or refuse (RFC 8200 §4.5,
/// RFC 5722 for overlaps).
pub fn fragment_train(u: &mut Unstructured<'_>, ident: u32) -> Result<Vec<Vec<u8>>> {
    let src = link_local(PEER_MAC.0);
    let dst = link_local(US_MAC.0);
    let len = usize::from(u.int_in_range(8..=9000u16)?);
    let (proto, mut up) = if u.arbitrary()? {
        let mut m = vec![128, 0, 0, 0, 0x12, 0x34, 0, 1];
        m.resize(len.max(8), 0xa5);
        (58u8, m)
    } else {
        let mut h = vec![0x9c, 0x40, 0, 7];
        h.extend_from_slice(&(len.max(8) as u16).to_be_bytes());
        h.extend_from_slice(&[0, 0]);
        h.resize(len.max(8), 0x5a);
        (17u8, h)
    };
    let at = if proto == 58 { 2 } else { 6 };
    let sum = pseudo6(src, dst, proto, &up);
    up[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    let piece = usize::from(u.int_in_range(1..=180u8)?) * 8;
    let mut pieces: Vec<(usize, usize)> = (0..up.len())
        .step_by(piece)
        .map(|s| (s, (s + piece).min(up.len())))
        .collect();
    // Overlaps and duplicates.
    for _ in 0..u.int_in_range(0..=2u8)? {
        let s = usize::from(u.arbitrary::<u16>()?) % up.len() / 8 * 8;
        let e = (s + usize::from(u.int_in_range(1..=200u8)?) * 8).min(up.len());
        pieces.push((s, e));
    }
    // Some order: reversed, rotated or as is.
    match u.int_in_range(0..=2u8)? {
        0 => pieces.reverse(),
        1 => {
            let k = usize::from(u.arbitrary::<u8>()?) % pieces.len().max(1);
            pieces.rotate_left(k);
        }
        _ => {}
    }
    let mut frames = Vec::new();
    for (s, e) in pieces {
        let more = e < up.len();
        let mut payload = vec![proto, 0];
        payload.extend_from_slice(&(((s / 8) as u16) << 3 | u16::from(more)).to_be_bytes());
        payload.extend_from_slice(&ident.to_be_bytes());
        payload.extend_from_slice(&up[s..e]);
        let mut f = Vec::with_capacity(54 + payload.len());
        f.extend_from_slice(&US_MAC.0);
        f.extend_from_slice(&PEER_MAC.0);
        f.extend_from_slice(&0x86ddu16.to_be_bytes());
        f.extend_from_slice(&0x6000_0000u32.to_be_bytes());
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        f.push(44);
        f.push(64);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(&payload);
        frames.push(f);
    }
    Ok(frames)
}
