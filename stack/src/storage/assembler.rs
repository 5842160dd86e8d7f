//! Tracks which byte ranges past a contiguous prefix have arrived (TCP out-of-order
//! data). The number of holes is bounded; data that would need more is refused.

/// Up to `MAX_RANGES` disjoint, sorted ranges of received bytes, offsets relative to
/// the first byte not yet contiguous.
#[derive(Clone, Debug, Default)]
pub struct Assembler {
    ranges: Vec<(usize, usize)>,
    max_ranges: usize,
}

impl Assembler {
    /// An empty assembler tracking at most `max_ranges` disjoint ranges. It allocates
    /// only when out-of-order data first arrives (most connections never see any).
    pub fn new(max_ranges: usize) -> Assembler {
        Assembler {
            ranges: Vec::new(),
            max_ranges,
        }
    }

    /// Frees the range list's memory when it is empty.
    pub fn release(&mut self) {
        if self.ranges.is_empty() {
            self.ranges = Vec::new();
        }
    }

    /// True when no out-of-order data is held.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Records `[offset, offset + len)` as received. Returns false (and records
    /// nothing) if that would need more than `max_ranges` ranges.
    pub fn add(&mut self, offset: usize, len: usize) -> bool {
        if len == 0 {
            return true;
        }
        let (start, end) = (offset, offset + len);
        // First range that ends at or after `start` (touching ranges merge).
        let i = self.ranges.partition_point(|&(_, e)| e < start);
        // Ranges from i..j overlap or touch [start, end].
        let j = self.ranges.partition_point(|&(s, _)| s <= end);
        if i == j {
            if self.ranges.len() >= self.max_ranges {
                return false;
            }
            self.ranges.insert(i, (start, end));
        } else {
            let merged = (start.min(self.ranges[i].0), end.max(self.ranges[j - 1].1));
            self.ranges.drain(i + 1..j);
            self.ranges[i] = merged;
        }
        true
    }

    /// [`add`](Self::add) then [`remove_front`](Self::remove_front): records `[offset,
    /// offset + len)` and returns the length of the contiguous prefix taken out, or
    /// `None` (nothing recorded) where `add` refuses. In-order data with nothing held,
    /// every segment of most connections, skips the range list, so the first data of a
    /// connection does not allocate it.
    pub fn add_and_take_front(&mut self, offset: usize, len: usize) -> Option<usize> {
        if offset == 0 && len > 0 && self.ranges.is_empty() && self.max_ranges > 0 {
            // What `add` would insert as the only range, and `remove_front` take.
            return Some(len);
        }
        if !self.add(offset, len) {
            return None;
        }
        Some(self.remove_front())
    }

    /// If data starting at offset 0 is present, removes it and returns its length;
    /// remaining offsets shift down by that amount.
    pub fn remove_front(&mut self) -> usize {
        match self.ranges.first() {
            Some(&(0, end)) => {
                self.ranges.remove(0);
                for r in &mut self.ranges {
                    r.0 -= end;
                    r.1 -= end;
                }
                end
            }
            _ => 0,
        }
    }

    /// Shifts every range down by `n` after `n` in-order bytes were consumed by the caller.
    pub fn shift(&mut self, n: usize) {
        self.ranges.retain_mut(|r| {
            r.0 = r.0.saturating_sub(n);
            r.1 = r.1.saturating_sub(n);
            r.1 > 0
        });
    }

    /// The held ranges, sorted, as (offset, end).
    pub fn ranges(&self) -> impl DoubleEndedIterator<Item = (usize, usize)> + '_ {
        self.ranges.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_overlapping_and_touching_ranges() {
        let mut a = Assembler::new(4);
        assert!(a.add(10, 5));
        assert!(a.add(20, 5));
        assert!(a.add(15, 5)); // touches both
        assert_eq!(a.ranges().collect::<Vec<_>>(), vec![(10, 25)]);
        assert!(a.add(0, 10));
        assert_eq!(a.remove_front(), 25);
        assert!(a.is_empty());
    }

    /// `add_and_take_front` does what `add` then `remove_front` do, for every mix of
    /// in-order, out-of-order, overlapping and refused pieces, with and without room
    /// for ranges.
    #[test]
    fn add_and_take_front_matches_add_then_remove_front() {
        let pieces = [
            (0, 5),
            (3, 4),
            (10, 2),
            (0, 3),
            (20, 5),
            (0, 0),
            (30, 1),
            (0, 40),
            (2, 2),
            (0, 1),
        ];
        for max in [0, 1, 2, 4] {
            let (mut fast, mut slow) = (Assembler::new(max), Assembler::new(max));
            for &(off, len) in pieces.iter().cycle().take(40) {
                let want = slow.add(off, len).then(|| slow.remove_front());
                assert_eq!(
                    fast.add_and_take_front(off, len),
                    want,
                    "max {max}: {off}+{len}"
                );
                assert_eq!(
                    fast.ranges().collect::<Vec<_>>(),
                    slow.ranges().collect::<Vec<_>>()
                );
            }
        }
        let mut a = Assembler::new(4);
        assert_eq!(a.add_and_take_front(0, 1448), Some(1448));
        assert_eq!(a.ranges.capacity(), 0, "in-order data allocates nothing");
    }

    #[test]
    fn bounded_number_of_holes() {
        let mut a = Assembler::new(2);
        assert!(a.add(10, 1));
        assert!(a.add(20, 1));
        assert!(!a.add(30, 1));
        assert!(a.add(11, 9)); // fills the hole between: still 1 range
        assert_eq!(a.ranges().collect::<Vec<_>>(), vec![(10, 21)]);
    }
}
