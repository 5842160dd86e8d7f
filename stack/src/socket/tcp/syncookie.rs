//! SYN cookies (RFC 4987 §3.6): when a listener's SYN queue is full, the SYN,ACK's
//! sequence number carries what the connection needs, so no state is kept until the
//! peer's ACK returns it.
//!
//! The layout follows the classic design that Linux also uses (net/ipv4/syncookies.c),
//! written here from its description:
//!
//! ```text
//! ISN = H1(tuple) + SEG.SEQ + (count << 24) + ((H2(tuple, count) + mss_index) mod 2^24)
//! ```
//!
//! `H1` and `H2` are SipHash-2-4 under the layer's cookie key (derived from its seed),
//! `count` a coarse clock ticking every [`COOKIE_PERIOD`]; a returning ACK is valid when
//! `SEG.ACK - 1` decodes to a count at most one tick old and an index into the MSS
//! table, which a blind attacker hits with probability 4 / 2^24 per guess.
//!
//! With timestamps, the options a cookie cannot hold in 32 bits ride in the low bits of
//! our TSval (echoed back in TSecr): window scale in bits 0-3 (15: none) and SACK
//! permitted in bit 4. Bit 5 would carry ECN; the stack does not negotiate ECN, so it is
//! always zero. Without timestamps a cookie connection has no window scaling and no SACK,
//! as in Linux.
//!
//! Invariant: `decode(encode(x))` returns `x`'s MSS index for any count at most one tick
//! later; the TSval of a cookie SYN,ACK is never above the connection's timestamp clock.

use super::isn::{SipKey, TupleWords};
use crate::time::Instant;
use core::net::SocketAddr;

/// How long one cookie count lasts; a cookie is valid for one to two periods.
pub(crate) const COOKIE_PERIOD_SECS: i64 = 64;
/// MSS values a cookie can encode over IPv4 (the largest not above the peer's is
/// chosen); the common values of Ethernet paths, with and without tunnels, and the RFC
/// default.
pub(crate) const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];
/// The same over IPv6, as Linux's `msstab_v6`: the minimum link MTU (1280), tunnels,
/// Ethernet and jumbo frames, each less the 60 bytes of IPv6 and TCP headers. With the
/// IPv4 table a 1280-byte path (MSS 1220) would fall back to 536.
pub(crate) const MSS_TABLE_V6: [u16; 4] = [1220, 1420, 1440, 8940];

/// The MSS table for connections whose local address is `local`.
pub(crate) fn mss_table(local: SocketAddr) -> &'static [u16; 4] {
    if local.is_ipv6() {
        &MSS_TABLE_V6
    } else {
        &MSS_TABLE
    }
}

const COUNT_BITS: u32 = 24;
const DATA_MASK: u32 = (1 << COUNT_BITS) - 1;
/// TSval bits carrying the options.
pub(crate) const TS_OPT_MASK: u32 = 0x3f;
const TS_NO_WSCALE: u32 = 0xf;
const TS_SACK: u32 = 1 << 4;

/// The cookie count at `now`.
pub(crate) fn count(now: Instant) -> u32 {
    (now.total_micros().max(0) / 1_000_000 / COOKIE_PERIOD_SECS) as u32
}

fn h1(key: &SipKey, local: SocketAddr, remote: SocketAddr) -> u32 {
    key.hash(TupleWords::new(local, remote).with(0).words()) as u32
}

fn h2(key: &SipKey, local: SocketAddr, remote: SocketAddr, count: u32) -> u32 {
    let w = TupleWords::new(local, remote).with((1 << 32) | u64::from(count));
    key.hash(w.words()) as u32
}

/// The index into `table` ([`mss_table`]) for a peer announcing `mss`.
pub(crate) fn mss_index(table: &[u16; 4], mss: u16) -> u32 {
    table.iter().rposition(|&m| m <= mss).unwrap_or(0) as u32
}

/// Our ISN for a SYN with sequence number `peer_seq` (RFC 4987 §3.6).
pub(crate) fn encode(
    key: &SipKey,
    local: SocketAddr,
    remote: SocketAddr,
    peer_seq: u32,
    count: u32,
    mss_index: u32,
) -> u32 {
    h1(key, local, remote)
        .wrapping_add(peer_seq)
        .wrapping_add(count << COUNT_BITS)
        .wrapping_add(h2(key, local, remote, count).wrapping_add(mss_index) & DATA_MASK)
}

/// The MSS index a returning cookie carries, if it is ours and at most one tick old.
/// `peer_seq` is the SYN's sequence number (the ACK's SEG.SEQ - 1), `cookie` our ISN
/// (its SEG.ACK - 1).
pub(crate) fn decode(
    key: &SipKey,
    local: SocketAddr,
    remote: SocketAddr,
    peer_seq: u32,
    cookie: u32,
    count_now: u32,
) -> Option<u32> {
    let c = cookie
        .wrapping_sub(h1(key, local, remote))
        .wrapping_sub(peer_seq);
    // The count sits in the top 8 bits, as sent; compare modulo 2^8.
    let age = count_now.wrapping_sub(c >> COUNT_BITS) & 0xff;
    if age > 1 {
        return None;
    }
    let sent_count = count_now.wrapping_sub(age);
    let data = c.wrapping_sub(h2(key, local, remote, sent_count)) & DATA_MASK;
    (data < MSS_TABLE.len() as u32).then_some(data)
}

/// The options a cookie SYN,ACK agreed to, recovered from the TSecr of the ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CookieOptions {
    /// The peer's window scale shift, if both sides use window scaling.
    pub window_scale: Option<u8>,
    /// SACK permitted on both sides.
    pub sack_permitted: bool,
}

/// Our TSval for a cookie SYN,ACK: `ts_now` with its low bits replaced by `opts`, and
/// moved back one step if that went above `ts_now`, so the clock never runs backwards.
pub(crate) fn ts_encode(ts_now: u32, opts: CookieOptions) -> u32 {
    let mut bits = opts
        .window_scale
        .map_or(TS_NO_WSCALE, |w| u32::from(w.min(14)));
    if opts.sack_permitted {
        bits |= TS_SACK;
    }
    let v = (ts_now & !TS_OPT_MASK) | bits;
    if v.wrapping_sub(ts_now) as i32 > 0 {
        v.wrapping_sub(TS_OPT_MASK + 1)
    } else {
        v
    }
}

/// The options carried by a TSecr that echoes [`ts_encode`]'s value.
pub(crate) fn ts_decode(tsecr: u32) -> CookieOptions {
    let ws = tsecr & 0xf;
    CookieOptions {
        window_scale: (ws != TS_NO_WSCALE).then_some(ws.min(14) as u8),
        sack_permitted: tsecr & TS_SACK != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;

    const L: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 80);
    const R: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 40000);

    #[test]
    fn mss_index_picks_largest_not_above() {
        assert_eq!(mss_index(&MSS_TABLE, 100), 0);
        assert_eq!(mss_index(&MSS_TABLE, 536), 0);
        assert_eq!(mss_index(&MSS_TABLE, 1400), 1);
        assert_eq!(mss_index(&MSS_TABLE, 1460), 3);
        assert_eq!(mss_index(&MSS_TABLE, 9000), 3);
    }

    #[test]
    fn ipv6_cookies_keep_the_minimum_mtu_mss() {
        let l6: SocketAddr = "[fd00::1]:80".parse().unwrap();
        let t = mss_table(l6);
        assert_eq!(t[mss_index(t, 1220) as usize], 1220);
        assert_eq!(t[mss_index(t, 1440) as usize], 1440);
        // Below the IPv6 minimum MTU's MSS nothing fits: the smallest entry.
        assert_eq!(mss_index(t, 536), 0);
        assert_eq!(mss_table(L)[mss_index(mss_table(L), 1220) as usize], 536);
    }

    #[test]
    fn cookie_expires_after_two_periods() {
        let k = SipKey::from_seed(7, 4);
        let c = encode(&k, L, R, 1234, 100, 2);
        assert_eq!(decode(&k, L, R, 1234, c, 100), Some(2));
        assert_eq!(decode(&k, L, R, 1234, c, 101), Some(2));
        assert_eq!(decode(&k, L, R, 1234, c, 102), None);
        assert_eq!(decode(&k, L, R, 1234, c, 99), None, "from the future");
    }

    #[test]
    fn cookie_is_bound_to_tuple_key_and_sequence() {
        let k = SipKey::from_seed(7, 4);
        let c = encode(&k, L, R, 1234, 5, 3);
        assert_eq!(decode(&SipKey::from_seed(8, 4), L, R, 1234, c, 5), None);
        assert_eq!(decode(&k, R, L, 1234, c, 5), None);
        assert_eq!(decode(&k, L, R, 1234 + 100, c, 5), None);
        assert_eq!(decode(&k, L, R, 1234, c.wrapping_add(1 << 24), 5), None);
    }

    #[test]
    fn ipv6_cookie_round_trips_and_is_bound_to_the_whole_address() {
        let k = SipKey::from_seed(7, 4);
        let l = SocketAddr::new(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1).into(), 80);
        let r = SocketAddr::new(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2).into(), 40000);
        let c = encode(&k, l, r, 99, 5, 2);
        assert_eq!(decode(&k, l, r, 99, c, 5), Some(2));
        let other = SocketAddr::new(Ipv6Addr::new(0xfd01, 0, 0, 0, 0, 0, 0, 2).into(), 40000);
        assert_eq!(decode(&k, l, other, 99, c, 5), None);
    }

    #[test]
    fn forged_cookies_rarely_pass() {
        // 4 / 2^24 per guess: 100,000 guesses pass about 0.02 times.
        let k = SipKey::from_seed(7, 4);
        let passed = (0..100_000u32)
            .filter(|&g| decode(&k, L, R, 1234, g.wrapping_mul(2_654_435_761), 5).is_some())
            .count();
        assert!(passed <= 2, "{passed} forged cookies passed");
    }

    proptest! {
        #[test]
        fn roundtrip(seed: u64, seq: u32, count: u32, idx in 0u32..4, later in 0u32..2) {
            let k = SipKey::from_seed(seed, 4);
            let c = encode(&k, L, R, seq, count, idx);
            prop_assert_eq!(decode(&k, L, R, seq, c, count.wrapping_add(later)), Some(idx));
        }

        #[test]
        fn ts_options_roundtrip(ts_now: u32, ws in proptest::option::of(0u8..15), sack: bool) {
            let o = CookieOptions { window_scale: ws, sack_permitted: sack };
            let v = ts_encode(ts_now, o);
            prop_assert_eq!(ts_decode(v), o);
            prop_assert!(ts_now.wrapping_sub(v) < 64, "never ahead, at most one step behind");
        }
    }
}
