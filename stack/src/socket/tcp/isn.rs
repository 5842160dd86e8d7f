//! Keyed hashing for initial sequence numbers (RFC 6528), timestamp offsets (RFC 7323
//! §7.1) and ephemeral port offsets (RFC 6056 §3.3.3).
//!
//! A small SipHash-2-4 with a key derived from the layer's seed: stable across Rust
//! versions (unlike `DefaultHasher`), and a PRF so the outside cannot predict `F()`.

use crate::time::Instant;
use core::net::SocketAddrV4;

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
    pub(crate) fn tuple(&self, local: SocketAddrV4, remote: SocketAddrV4) -> u64 {
        let a = (u64::from(u32::from(*local.ip())) << 32) | u64::from(u32::from(*remote.ip()));
        let b = (u64::from(local.port()) << 16) | u64::from(remote.port());
        self.hash(&[a, b])
    }
}

/// RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), where
/// M is a 4-microsecond timer.
pub(crate) fn isn(key: &SipKey, local: SocketAddrV4, remote: SocketAddrV4, now: Instant) -> u32 {
    let m = (now.total_micros() / 4) as u32;
    m.wrapping_add(key.tuple(local, remote) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn isn_is_keyed_and_advances_with_time() {
        let l = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80);
        let r = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000);
        let k = SipKey::from_seed(1, 0);
        let a = isn(&k, l, r, Instant::ZERO);
        assert_eq!(
            isn(&k, l, r, Instant::from_micros(400)),
            a.wrapping_add(100)
        );
        assert_ne!(isn(&SipKey::from_seed(2, 0), l, r, Instant::ZERO), a);
        assert_ne!(isn(&k, r, l, Instant::ZERO), a);
    }
}
