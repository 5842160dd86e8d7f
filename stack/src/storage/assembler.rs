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
