//! The sender's SACK scoreboard (RFC 2018, RFC 6675): which ranges above SND.UNA the
//! peer reported holding.
//!
//! Invariants: blocks are sorted, disjoint, non-touching, lie within
//! `(SND.UNA, SND.MAX]` after every update, and there are at most `MAX_BLOCKS` of them
//! (the lowest are kept, since recovery works from SND.UNA upwards).

use crate::wire::SeqNumber;

/// Most ranges remembered; more are merged away by dropping the highest.
const MAX_BLOCKS: usize = 32;

/// Sorted, disjoint SACKed ranges `[left, right)`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scoreboard {
    blocks: Vec<(SeqNumber, SeqNumber)>,
}

impl Scoreboard {
    /// Forgets everything (RFC 2018 §8: after a retransmission timeout).
    pub(crate) fn clear(&mut self) {
        self.blocks.clear();
    }

    /// True when nothing is SACKed.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Records the blocks of one ACK; returns whether any new byte became SACKed.
    /// Blocks outside `(snd_una, snd_max]` are ignored (RFC 2018 §4 / D-SACK edges).
    pub(crate) fn update(
        &mut self,
        snd_una: SeqNumber,
        snd_max: SeqNumber,
        ranges: &[Option<(SeqNumber, SeqNumber)>],
    ) -> bool {
        let before = self.sacked_bytes();
        for &(l, r) in ranges.iter().flatten() {
            if !(l < r && l >= snd_una && r <= snd_max) {
                continue;
            }
            self.insert(l, r);
        }
        self.prune(snd_una);
        self.sacked_bytes() > before
    }

    fn insert(&mut self, l: SeqNumber, r: SeqNumber) {
        let i = self.blocks.partition_point(|&(_, e)| e < l);
        let j = self.blocks.partition_point(|&(s, _)| s <= r);
        if i == j {
            self.blocks.insert(i, (l, r));
        } else {
            let merged = (l.min(self.blocks[i].0), r.max(self.blocks[j - 1].1));
            self.blocks.drain(i + 1..j);
            self.blocks[i] = merged;
        }
        self.blocks.truncate(MAX_BLOCKS);
    }

    /// Drops whatever lies below the cumulative ACK.
    pub(crate) fn prune(&mut self, snd_una: SeqNumber) {
        self.blocks.retain_mut(|b| {
            if b.0 < snd_una {
                b.0 = snd_una;
            }
            b.1 > b.0
        });
    }

    /// Total SACKed bytes.
    pub(crate) fn sacked_bytes(&self) -> usize {
        self.blocks.iter().map(|&(l, r)| (r - l) as usize).sum()
    }

    /// The left edge of the lowest SACKed block.
    pub(crate) fn lowest(&self) -> Option<SeqNumber> {
        self.blocks.first().map(|b| b.0)
    }

    /// The right edge of the highest SACKed block.
    #[cfg(test)]
    pub(crate) fn highest(&self) -> Option<SeqNumber> {
        self.blocks.last().map(|b| b.1)
    }

    /// SACKed bytes at or above `seq`.
    pub(crate) fn sacked_above(&self, seq: SeqNumber) -> usize {
        self.blocks
            .iter()
            .filter(|b| b.1 > seq)
            .map(|&(l, r)| (r - l.max(seq)) as usize)
            .sum()
    }

    /// True when `seq` lies inside a SACKed block.
    #[cfg(test)]
    pub(crate) fn is_sacked(&self, seq: SeqNumber) -> bool {
        self.blocks.iter().any(|&(l, r)| l <= seq && seq < r)
    }

    /// The first hole `[start, end)` at or after `from` and below the highest SACKed
    /// byte that RFC 6675 §4 `IsLost` deems lost: at `snd_una`, or with more than
    /// `(DupThresh - 1) * SMSS` bytes SACKed above it.
    pub(crate) fn next_lost_hole(
        &self,
        from: SeqNumber,
        snd_una: SeqNumber,
        mss: usize,
    ) -> Option<(SeqNumber, SeqNumber)> {
        let mut start = from.max(snd_una);
        for &(l, r) in &self.blocks {
            if r <= start {
                continue;
            }
            if l > start {
                let lost = start == snd_una || self.sacked_above(start) > 2 * mss;
                return lost.then_some((start, l));
            }
            start = r;
        }
        None
    }

    /// Bytes in holes between `snd_una` and `upto` (not SACKed).
    #[cfg(test)]
    pub(crate) fn hole_bytes_below(&self, snd_una: SeqNumber, upto: SeqNumber) -> usize {
        if upto <= snd_una {
            return 0;
        }
        let total = (upto - snd_una) as usize;
        let sacked: usize = self
            .blocks
            .iter()
            .filter(|b| b.0 < upto)
            .map(|&(l, r)| (r.min(upto) - l) as usize)
            .sum();
        total.saturating_sub(sacked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    #[test]
    fn merges_and_prunes() {
        let mut sb = Scoreboard::default();
        assert!(sb.update(
            s(100),
            s(1000),
            &[Some((s(300), s(400))), Some((s(500), s(600)))]
        ));
        assert!(sb.update(s(100), s(1000), &[Some((s(400), s(500)))]));
        assert_eq!(sb.sacked_bytes(), 300);
        assert!(!sb.update(s(100), s(1000), &[Some((s(300), s(600)))]));
        sb.prune(s(350));
        assert_eq!(sb.sacked_bytes(), 250);
        assert!(sb.is_sacked(s(350)) && !sb.is_sacked(s(600)));
    }

    #[test]
    fn ignores_blocks_outside_flight() {
        let mut sb = Scoreboard::default();
        assert!(!sb.update(
            s(100),
            s(200),
            &[Some((s(50), s(90))), Some((s(150), s(300)))]
        ));
        assert!(sb.is_empty());
    }

    #[test]
    fn lost_holes_follow_is_lost() {
        let mut sb = Scoreboard::default();
        sb.update(
            s(0),
            s(10_000),
            &[Some((s(1000), s(4000))), Some((s(5000), s(5500)))],
        );
        assert_eq!(sb.next_lost_hole(s(0), s(0), 1000), Some((s(0), s(1000))));
        // 4000..5000 has only 500 bytes SACKed above: not yet lost.
        assert_eq!(sb.next_lost_hole(s(1000), s(0), 1000), None);
        assert_eq!(
            sb.next_lost_hole(s(1000), s(0), 200),
            Some((s(4000), s(5000)))
        );
        assert_eq!(sb.hole_bytes_below(s(0), s(5500)), 2000);
        assert_eq!(sb.highest(), Some(s(5500)));
    }
}
