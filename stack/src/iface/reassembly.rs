//! IPv4 fragment reassembly (RFC 791 §3.2, RFC 815 hole tracking).
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
use crate::wire::{IpProtocol, Ipv4Repr};
use core::net::Ipv4Addr;

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

type Key = (Ipv4Addr, Ipv4Addr, IpProtocol, u16);

#[derive(Debug)]
struct Datagram {
    key: Key,
    started: Instant,
    buf: Vec<u8>,
    /// Received byte ranges, sorted and disjoint.
    ranges: Vec<(usize, usize)>,
    total_len: Option<usize>,
    /// Header of the offset-0 fragment, once seen.
    first: Option<Ipv4Repr>,
}

/// A datagram that timed out after its first fragment arrived: enough to quote it in
/// an ICMP time exceeded message (RFC 792: IP header plus 64 bits of data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expired {
    /// Header of the first fragment.
    pub header: Ipv4Repr,
    /// First 8 bytes of the datagram's payload (fewer if the fragment was shorter).
    pub leading: [u8; 8],
    /// How many of `leading` are valid.
    pub leading_len: usize,
}

/// The reassembly buffers.
#[derive(Debug)]
pub struct Reassembler {
    config: ReassemblyConfig,
    datagrams: Vec<Datagram>,
    bytes: usize,
    /// Recycled payload buffers and range lists, so steady traffic does not allocate.
    spare: Vec<Vec<u8>>,
    spare_ranges: Vec<Vec<(usize, usize)>>,
}

/// Most disjoint pieces one datagram may be in; more is an attack, not a network.
const MAX_PIECES: usize = 128;

impl Reassembler {
    /// No datagrams in progress.
    pub fn new(config: ReassemblyConfig) -> Reassembler {
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
        ip: &Ipv4Repr,
        payload: &[u8],
    ) -> Result<Option<(Ipv4Repr, Vec<u8>)>, DropReason> {
        let start = ip.frag_offset as usize;
        let end = start + payload.len();
        // RFC 791: every fragment but the last carries a multiple of 8 octets.
        if (ip.more_frags && payload.len() % 8 != 0) || end > 65535 - 20 || payload.is_empty() {
            return Err(DropReason::ReassemblyInvalid);
        }
        let key = (ip.src_addr, ip.dst_addr, ip.protocol, ip.ident);
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
            .is_some_and(|t| end > t || (!ip.more_frags && end != t));
        let data_past_last = !ip.more_frags && d.ranges.last().is_some_and(|&(_, e)| e > end);
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
        ip: &Ipv4Repr,
        payload: &[u8],
        start: usize,
        end: usize,
        growth: usize,
    ) -> Result<Option<(Ipv4Repr, Vec<u8>)>, DropReason> {
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
        if !ip.more_frags {
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
        let mut header = d.first.expect("offset 0 present in a complete datagram");
        header.more_frags = false;
        header.frag_offset = 0;
        header.payload_len = d.buf.len();
        Ok(Some((header, d.buf)))
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
    pub fn handle_timeout(&mut self, now: Instant, mut expired: impl FnMut(Expired)) -> usize {
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
