//! Keyed hashing for initial sequence numbers (RFC 6528), timestamp offsets (RFC 7323
//! §7.1) and ephemeral port offsets (RFC 6056 §3.3.3).
//!
//! A small SipHash-2-4 with a key derived from the layer's seed: stable across Rust
//! versions (unlike `DefaultHasher`), and a PRF so the outside cannot predict `F()`.

use crate::time::Instant;
use core::net::SocketAddr;

/// SipHash-2-4 keyed with two 64-bit words.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SipKey {
    k0: u64,
    k1: u64,
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl SipKey {
    /// A key expanded from `seed` for the given purpose.
    pub(crate) fn from_seed(seed: u64, domain: u64) -> SipKey {
        let mut x = seed ^ domain.wrapping_mul(0xa076_1d64_78bd_642f);
        SipKey {
            k0: splitmix(&mut x),
            k1: splitmix(&mut x),
        }
    }

    /// SipHash-2-4 of `words` (each word is one message block).
    pub(crate) fn hash(&self, words: &[u64]) -> u64 {
        let mut v0 = self.k0 ^ 0x736f_6d65_7073_6575;
        let mut v1 = self.k1 ^ 0x646f_7261_6e64_6f6d;
        let mut v2 = self.k0 ^ 0x6c79_6765_6e65_7261;
        let mut v3 = self.k1 ^ 0x7465_6462_7974_6573;
        let round = |v0: &mut u64, v1: &mut u64, v2: &mut u64, v3: &mut u64| {
            *v0 = v0.wrapping_add(*v1);
            *v1 = v1.rotate_left(13) ^ *v0;
            *v0 = v0.rotate_left(32);
            *v2 = v2.wrapping_add(*v3);
            *v3 = v3.rotate_left(16) ^ *v2;
            *v0 = v0.wrapping_add(*v3);
            *v3 = v3.rotate_left(21) ^ *v0;
            *v2 = v2.wrapping_add(*v1);
            *v1 = v1.rotate_left(17) ^ *v2;
            *v2 = v2.rotate_left(32);
        };
        let len = (words.len() as u64 * 8) << 56;
        for &m in words.iter().chain(core::iter::once(&len)) {
            v3 ^= m;
            round(&mut v0, &mut v1, &mut v2, &mut v3);
            round(&mut v0, &mut v1, &mut v2, &mut v3);
            v0 ^= m;
        }
        v2 ^= 0xff;
        for _ in 0..4 {
            round(&mut v0, &mut v1, &mut v2, &mut v3);
        }
        v0 ^ v1 ^ v2 ^ v3
    }

    /// F(4-tuple) as one value.
    pub(crate) fn tuple(&self, local: SocketAddr, remote: SocketAddr) -> u64 {
        self.hash(TupleWords::new(local, remote).words())
    }
}

/// A 4-tuple as SipHash message words, with room for one more: two words for IPv4
/// (the same words as before IPv6, so IPv4 values are unchanged), five for IPv6.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TupleWords {
    w: [u64; 6],
    len: usize,
}

impl TupleWords {
    /// The words of `local, remote` (both of one family; mixed ones hash as IPv6).
    pub(crate) fn new(local: SocketAddr, remote: SocketAddr) -> TupleWords {
        let ports = (u64::from(local.port()) << 16) | u64::from(remote.port());
        match (local, remote) {
            (SocketAddr::V4(l), SocketAddr::V4(r)) => TupleWords {
                w: [
                    (u64::from(l.ip().to_bits()) << 32) | u64::from(r.ip().to_bits()),
                    ports,
                    0,
                    0,
                    0,
                    0,
                ],
                len: 2,
            },
            (l, r) => {
                let bits = |a: SocketAddr| match a {
                    SocketAddr::V4(a) => a.ip().to_ipv6_mapped().to_bits(),
                    SocketAddr::V6(a) => a.ip().to_bits(),
                };
                let (l, r) = (bits(l), bits(r));
                TupleWords {
                    w: [
                        (l >> 64) as u64,
                        l as u64,
                        (r >> 64) as u64,
                        r as u64,
                        ports,
                        0,
                    ],
                    len: 5,
                }
            }
        }
    }

    /// The words with `extra` appended.
    pub(crate) fn with(mut self, extra: u64) -> TupleWords {
        self.w[self.len] = extra;
        self.len += 1;
        self
    }

    /// The message words.
    pub(crate) fn words(&self) -> &[u64] {
        &self.w[..self.len]
    }
}

/// RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), where
/// M is a 4-microsecond timer.
pub(crate) fn isn(key: &SipKey, local: SocketAddr, remote: SocketAddr, now: Instant) -> u32 {
    let m = (now.total_micros() / 4) as u32;
    m.wrapping_add(key.tuple(local, remote) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};

    #[test]
    fn isn_is_keyed_and_advances_with_time() {
        let l = SocketAddr::from(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80));
        let r = SocketAddr::from(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000));
        let k = SipKey::from_seed(1, 0);
        let a = isn(&k, l, r, Instant::ZERO);
        assert_eq!(
            isn(&k, l, r, Instant::from_micros(400)),
            a.wrapping_add(100)
        );
        assert_ne!(isn(&SipKey::from_seed(2, 0), l, r, Instant::ZERO), a);
        assert_ne!(isn(&k, r, l, Instant::ZERO), a);
    }

    #[test]
    fn ipv4_words_are_unchanged_and_ipv6_words_cover_the_whole_addresses() {
        let l = SocketAddr::from(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80));
        let r = SocketAddr::from(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000));
        assert_eq!(
            TupleWords::new(l, r).words(),
            &[0x0a00_0001_0a00_0002, (80 << 16) | 40000]
        );
        let k = SipKey::from_seed(1, 0);
        let a6 =
            |last: u16| SocketAddr::new(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, last).into(), 80);
        let r6 = SocketAddr::new(Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 2).into(), 40000);
        // Addresses differing only in their last or first bits hash apart.
        assert_ne!(k.tuple(a6(1), r6), k.tuple(a6(2), r6));
        let r6b = SocketAddr::new(Ipv6Addr::new(0xfd01, 1, 0, 0, 0, 0, 0, 2).into(), 40000);
        assert_ne!(k.tuple(a6(1), r6), k.tuple(a6(1), r6b));
        assert_eq!(TupleWords::new(a6(1), r6).with(7).words().len(), 6);
    }
}
