//! Fragment reassembly for IPv4 (RFC 791 §3.2, RFC 815 hole tracking) and IPv6
//! (RFC 8200 §4.5), one implementation over [`Fragment`]: the same bounds, timeout and
//! overlap rule for both families.
//!
//! Overlapping fragments drop the whole datagram, in the spirit of RFC 5722 (written
//! for IPv6; Linux applies the same rule to IPv4 since 4.19): overlaps are only ever
//! produced by attackers (teardrop and friends). An exact duplicate is ignored.
//!
//! Memory is bounded twice: at most `max_datagrams` datagrams in progress, and at most
//! `max_bytes` of buffers over all of them. When a bound is hit the oldest datagram is
//! evicted to make room, as Linux does when it crosses `ipfrag_high_thresh`.

use super::counters::DropReason;
use crate::time::{Duration, Instant};
use crate::wire::{IpProtocol, Ipv4Repr, Ipv6FragRepr, Ipv6Repr};
use core::net::{Ipv4Addr, Ipv6Addr};

/// What the reassembler needs of a fragment's headers.
pub trait Fragment: Copy + core::fmt::Debug {
    /// Identifies the datagram the fragment belongs to.
    type Key: Copy + Eq + core::fmt::Debug;
    /// The datagram key (RFC 791: source, destination, protocol, id; RFC 8200 §4.5:
    /// source, destination, id).
    fn key(&self) -> Self::Key;
    /// Offset of this fragment's data, in bytes.
    fn offset(&self) -> usize;
    /// More fragments follow.
    fn more(&self) -> bool;
    /// Largest reassembled payload.
    fn max_len() -> usize;
    /// The header of the whole datagram, made from its first fragment's.
    fn whole(self, len: usize) -> Self;
}

impl Fragment for Ipv4Repr {
    type Key = (Ipv4Addr, Ipv4Addr, IpProtocol, u16);
    fn key(&self) -> Self::Key {
        (self.src_addr, self.dst_addr, self.protocol, self.ident)
    }
    fn offset(&self) -> usize {
        usize::from(self.frag_offset)
    }
    fn more(&self) -> bool {
        self.more_frags
    }
    fn max_len() -> usize {
        65535 - 20
    }
    fn whole(mut self, len: usize) -> Self {
        self.more_frags = false;
        self.frag_offset = 0;
        self.payload_len = len;
        self
    }
}

/// An IPv6 fragment: its fixed header (with `next_header` already the fragmentable
/// part's first header, and `payload_len` that part's length once whole) and its
/// fragment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Fragment {
    /// Fixed header.
    pub ip: Ipv6Repr,
    /// Fragment header.
    pub frag: Ipv6FragRepr,
}

impl Fragment for Ipv6Fragment {
    type Key = (Ipv6Addr, Ipv6Addr, u32);
    fn key(&self) -> Self::Key {
        (self.ip.src_addr, self.ip.dst_addr, self.frag.ident)
    }
    fn offset(&self) -> usize {
        usize::from(self.frag.offset)
    }
    fn more(&self) -> bool {
        self.frag.more_frags
    }
    fn max_len() -> usize {
        // RFC 8200 §4.5: the reassembled payload length may not exceed 65,535 with
        // the fragment header gone.
        65535 - 8
    }
    fn whole(mut self, len: usize) -> Self {
        self.ip.next_header = self.frag.next_header;
        self.ip.payload_len = len;
        self.frag.offset = 0;
        self.frag.more_frags = false;
        self
    }
}

/// Reassembly tunables.
#[derive(Clone, Debug)]
pub struct ReassemblyConfig {
    /// Datagrams in progress at once.
    pub max_datagrams: usize,
    /// Buffer bytes over all datagrams in progress (Linux ipfrag_high_thresh: 4 MiB).
    pub max_bytes: usize,
    /// Time from the first fragment until an incomplete datagram is dropped (Linux ipfrag_time: 30 s).
    pub timeout: Duration,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            max_datagrams: 64,
            max_bytes: 4 * 1024 * 1024,
            timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
struct Datagram<H: Fragment> {
    key: H::Key,
    started: Instant,
    buf: Vec<u8>,
    /// Received byte ranges, sorted and disjoint.
    ranges: Vec<(usize, usize)>,
    total_len: Option<usize>,
    /// Header of the offset-0 fragment, once seen.
    first: Option<H>,
}

/// A datagram that timed out after its first fragment arrived: enough to quote it in
/// an ICMP time exceeded message (RFC 792: IP header plus 64 bits of data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expired<H = Ipv4Repr> {
    /// Header of the first fragment.
    pub header: H,
    /// First 8 bytes of the datagram's payload (fewer if the fragment was shorter).
    pub leading: [u8; 8],
    /// How many of `leading` are valid.
    pub leading_len: usize,
}

/// The reassembly buffers.
#[derive(Debug)]
pub struct Reassembler<H: Fragment = Ipv4Repr> {
    config: ReassemblyConfig,
    datagrams: Vec<Datagram<H>>,
    bytes: usize,
    /// Recycled payload buffers and range lists, so steady traffic does not allocate.
    spare: Vec<Vec<u8>>,
    spare_ranges: Vec<Vec<(usize, usize)>>,
}

/// Most disjoint pieces one datagram may be in; more is an attack, not a network.
const MAX_PIECES: usize = 128;

impl<H: Fragment> Reassembler<H> {
    /// No datagrams in progress.
    pub fn new(config: ReassemblyConfig) -> Reassembler<H> {
        Reassembler {
            config,
            datagrams: Vec::new(),
            bytes: 0,
            spare: Vec::new(),
            spare_ranges: Vec::new(),
        }
    }

    /// Datagrams in progress.
    pub fn in_progress(&self) -> usize {
        self.datagrams.len()
    }

    /// Buffer bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds a fragment. Returns the whole datagram (header with fragment fields cleared,
    /// and its payload buffer, to hand back with [`recycle`](Self::recycle)) once complete.
    ///
    /// # Errors
    /// The reason the fragment (and, for overlaps and invalid fragments, its datagram)
    /// was dropped.
    pub fn add(
        &mut self,
        now: Instant,
        ip: &H,
        payload: &[u8],
    ) -> Result<Option<(H, Vec<u8>)>, DropReason> {
        let start = ip.offset();
        let end = start + payload.len();
        // RFC 791 and RFC 8200 §4.5: every fragment but the last carries a multiple
        // of 8 octets.
        if (ip.more() && payload.len() % 8 != 0) || end > H::max_len() || payload.is_empty() {
            return Err(DropReason::ReassemblyInvalid);
        }
        let key = ip.key();
        let idx = match self.datagrams.iter().position(|d| d.key == key) {
            Some(i) => i,
            None => {
                if self.datagrams.len() >= self.config.max_datagrams {
                    self.evict_oldest();
                }
                let mut buf = self.spare.pop().unwrap_or_default();
                buf.clear();
                let mut ranges = self.spare_ranges.pop().unwrap_or_default();
                ranges.clear();
                self.datagrams.push(Datagram {
                    key,
                    started: now,
                    buf,
                    ranges,
                    total_len: None,
                    first: None,
                });
                self.datagrams.len() - 1
            }
        };

        // Validate against what we hold.
        let d = &self.datagrams[idx];
        if d.ranges.contains(&(start, end)) {
            return Err(DropReason::ReassemblyDuplicate);
        }
        let overlaps = d.ranges.iter().any(|&(s, e)| start < e && s < end);
        let past_end = d
            .total_len
            .is_some_and(|t| end > t || (!ip.more() && end != t));
        let data_past_last = !ip.more() && d.ranges.last().is_some_and(|&(_, e)| e > end);
        if d.ranges.len() >= MAX_PIECES {
            self.remove(idx);
            return Err(DropReason::ReassemblyNoRoom);
        }
        if overlaps || past_end || data_past_last {
            self.remove(idx);
            return Err(if overlaps {
                DropReason::ReassemblyOverlap
            } else {
                DropReason::ReassemblyInvalid
            });
        }

        // Make room for the buffer growth by evicting the oldest other datagrams.
        let mut idx = idx;
        let growth = end.saturating_sub(self.datagrams[idx].buf.len());
        while self.bytes + growth > self.config.max_bytes {
            let Some(victim) = self.oldest_except(idx) else {
                self.remove(idx);
                return Err(DropReason::ReassemblyNoRoom);
            };
            self.remove(victim);
            // `swap_remove` moved the last datagram into `victim`'s slot.
            if idx == self.datagrams.len() {
                idx = victim;
            }
        }
        self.insert_at(idx, ip, payload, start, end, growth)
    }

    fn insert_at(
        &mut self,
        idx: usize,
        ip: &H,
        payload: &[u8],
        start: usize,
        end: usize,
        growth: usize,
    ) -> Result<Option<(H, Vec<u8>)>, DropReason> {
        let d = &mut self.datagrams[idx];
        if d.buf.len() < end {
            d.buf.resize(end, 0);
            self.bytes += growth;
        }
        d.buf[start..end].copy_from_slice(payload);
        let pos = d.ranges.partition_point(|&(s, _)| s < start);
        d.ranges.insert(pos, (start, end));
        // Merge with touching neighbours so a complete datagram is one range.
        if pos + 1 < d.ranges.len() && d.ranges[pos + 1].0 == end {
            d.ranges[pos].1 = d.ranges[pos + 1].1;
            d.ranges.remove(pos + 1);
        }
        if pos > 0 && d.ranges[pos - 1].1 == start {
            d.ranges[pos - 1].1 = d.ranges[pos].1;
            d.ranges.remove(pos);
        }
        if !ip.more() {
            d.total_len = Some(end);
        }
        if start == 0 {
            d.first = Some(*ip);
        }
        let complete = d.total_len.is_some_and(|t| d.ranges == [(0, t)]);
        if !complete {
            return Ok(None);
        }
        let d = self.datagrams.swap_remove(idx);
        self.bytes -= d.buf.len();
        self.recycle_ranges(d.ranges);
        let header = d.first.expect("offset 0 present in a complete datagram");
        let len = d.buf.len();
        Ok(Some((header.whole(len), d.buf)))
    }

    /// Returns a payload buffer from [`add`](Self::add) for reuse.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < 8 {
            self.spare.push(buf);
        }
    }

    fn recycle_ranges(&mut self, ranges: Vec<(usize, usize)>) {
        if self.spare_ranges.len() < 8 {
            self.spare_ranges.push(ranges);
        }
    }

    fn oldest_except(&self, keep: usize) -> Option<usize> {
        self.datagrams
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != keep)
            .min_by_key(|(_, d)| d.started)
            .map(|(i, _)| i)
    }

    fn evict_oldest(&mut self) {
        if let Some(i) = self.oldest_except(usize::MAX) {
            self.remove(i);
        }
    }

    fn remove(&mut self, idx: usize) {
        let d = self.datagrams.swap_remove(idx);
        self.bytes -= d.buf.len();
        self.recycle(d.buf);
        self.recycle_ranges(d.ranges);
    }

    /// When the oldest datagram in progress times out.
    pub fn poll_at(&self) -> Option<Instant> {
        self.datagrams
            .iter()
            .map(|d| d.started + self.config.timeout)
            .min()
    }

    /// Drops datagrams whose time is up; returns how many, and calls `expired` for each
    /// that had its first fragment (so an ICMP time exceeded can quote it).
    pub fn handle_timeout(&mut self, now: Instant, mut expired: impl FnMut(Expired<H>)) -> usize {
        let timeout = self.config.timeout;
        let mut n = 0;
        let mut i = 0;
        while i < self.datagrams.len() {
            if self.datagrams[i].started + timeout <= now {
                let d = &self.datagrams[i];
                if let Some(header) = d.first {
                    let mut leading = [0u8; 8];
                    let leading_len = d.ranges.first().map_or(0, |&(_, e)| e.min(8));
                    leading[..leading_len].copy_from_slice(&d.buf[..leading_len]);
                    expired(Expired {
                        header,
                        leading,
                        leading_len,
                    });
                }
                self.remove(i);
                n += 1;
            } else {
                i += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{testdata, EthernetRepr};

    fn frag(ident: u16, offset: u16, more: bool, data: &[u8]) -> (Ipv4Repr, Vec<u8>) {
        let ip = Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::new(10, 0, 0, 2),
            protocol: IpProtocol::UDP,
            ttl: 64,
            tos: 0,
            ident,
            dont_frag: false,
            more_frags: more,
            frag_offset: offset,
            payload_len: data.len(),
        };
        (ip, data.to_vec())
    }

    fn reasm() -> Reassembler {
        Reassembler::new(ReassemblyConfig::default())
    }

    #[test]
    fn captured_fragments_reassemble_in_either_order() {
        let parse = |f: &'static [u8]| Ipv4Repr::parse(EthernetRepr::parse(f).unwrap().1).unwrap();
        for order in [
            [testdata::FRAG_FIRST, testdata::FRAG_LAST],
            [testdata::FRAG_LAST, testdata::FRAG_FIRST],
        ] {
            let mut r = reasm();
            let (a, pa) = parse(order[0]);
            assert_eq!(r.add(Instant::ZERO, &a, pa), Ok(None));
            let (b, pb) = parse(order[1]);
            let (hdr, buf) = r.add(Instant::ZERO, &b, pb).unwrap().unwrap();
            assert_eq!(buf.len(), 2008);
            assert_eq!(hdr.payload_len, 2008);
            assert!(!hdr.is_fragment());
            assert_eq!(r.bytes(), 0);
            assert_eq!(r.in_progress(), 0);
        }
    }

    #[test]
    fn out_of_order_three_pieces() {
        let mut r = reasm();
        let data: Vec<u8> = (0..40u8).collect();
        let (c, pc) = frag(1, 32, false, &data[32..]);
        let (a, pa) = frag(1, 0, true, &data[..16]);
        let (b, pb) = frag(1, 16, true, &data[16..32]);
        assert_eq!(r.add(Instant::ZERO, &c, &pc), Ok(None));
        assert_eq!(r.add(Instant::ZERO, &a, &pa), Ok(None));
        let (_, buf) = r.add(Instant::ZERO, &b, &pb).unwrap().unwrap();
        assert_eq!(buf, data);
    }

    #[test]
    fn exact_duplicate_is_ignored_but_overlap_drops_datagram() {
        let mut r = reasm();
        let (a, pa) = frag(2, 0, true, &[1; 16]);
        assert_eq!(r.add(Instant::ZERO, &a, &pa), Ok(None));
        assert_eq!(
            r.add(Instant::ZERO, &a, &pa),
            Err(DropReason::ReassemblyDuplicate)
        );
        assert_eq!(r.in_progress(), 1);
        let (b, pb) = frag(2, 8, true, &[2; 16]);
        assert_eq!(
            r.add(Instant::ZERO, &b, &pb),
            Err(DropReason::ReassemblyOverlap)
        );
        assert_eq!(r.in_progress(), 0);
        assert_eq!(r.bytes(), 0);
        // A later fragment of the same id starts afresh and can never complete with
        // the poisoned data.
        let (c, pc) = frag(2, 16, false, &[3; 8]);
        assert_eq!(r.add(Instant::ZERO, &c, &pc), Ok(None));
    }

    #[test]
    fn invalid_fragments() {
        let mut r = reasm();
        let (a, pa) = frag(3, 0, true, &[0; 10]); // not a multiple of 8
        assert_eq!(
            r.add(Instant::ZERO, &a, &pa),
            Err(DropReason::ReassemblyInvalid)
        );
        let (last, pl) = frag(4, 8, false, &[0; 8]);
        assert_eq!(r.add(Instant::ZERO, &last, &pl), Ok(None));
        let (beyond, pb) = frag(4, 32, true, &[0; 8]);
        assert_eq!(
            r.add(Instant::ZERO, &beyond, &pb),
            Err(DropReason::ReassemblyInvalid)
        );
        let (huge, ph) = frag(5, 65528, false, &[0; 16]);
        assert_eq!(
            r.add(Instant::ZERO, &huge, &ph),
            Err(DropReason::ReassemblyInvalid)
        );
    }

    #[test]
    fn timeout_drops_and_reports_first_fragment() {
        let mut r = reasm();
        let (a, pa) = frag(6, 0, true, &[9; 16]);
        let (b, pb) = frag(7, 8, true, &[9; 16]);
        r.add(Instant::ZERO, &a, &pa).unwrap();
        r.add(Instant::from_secs(1), &b, &pb).unwrap();
        assert_eq!(r.poll_at(), Some(Instant::from_secs(30)));
        let mut seen = Vec::new();
        assert_eq!(
            r.handle_timeout(Instant::from_secs(30), |e| seen.push(e)),
            1
        );
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].header.ident, 6);
        assert_eq!(seen[0].leading_len, 8);
        assert_eq!(r.poll_at(), Some(Instant::from_secs(31)));
        assert_eq!(
            r.handle_timeout(Instant::from_secs(31), |_| panic!("no first fragment")),
            1
        );
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn memory_and_count_bounds_evict_oldest() {
        let mut r = Reassembler::new(ReassemblyConfig {
            max_datagrams: 2,
            max_bytes: 64,
            timeout: Duration::from_secs(30),
        });
        let (a, pa) = frag(10, 0, true, &[0; 32]);
        let (b, pb) = frag(11, 0, true, &[0; 32]);
        let (c, pc) = frag(12, 0, true, &[0; 32]);
        r.add(Instant::from_millis(1), &a, &pa).unwrap();
        r.add(Instant::from_millis(2), &b, &pb).unwrap();
        assert_eq!(r.bytes(), 64);
        r.add(Instant::from_millis(3), &c, &pc).unwrap();
        assert_eq!(r.in_progress(), 2);
        assert!(r.bytes() <= 64);
        // A single datagram larger than the whole budget is refused.
        let (d, pd) = frag(13, 0, true, &[0; 72]);
        assert_eq!(
            r.add(Instant::from_millis(4), &d, &pd),
            Err(DropReason::ReassemblyNoRoom)
        );
        assert!(r.bytes() <= 64);
    }
}
