//! The byte pattern every bulk transfer carries, and its cheap check.
//!
//! Byte `i` of a stream is `i % 251`. 251 is prime and shares no factor with segment
//! sizes, so a lost, repeated or reordered segment shifts the pattern and a sampled
//! check finds it. The check looks at the first and last byte of every read and at one
//! byte in [`SAMPLE`], so it costs a few percent of a full compare.

/// The pattern's period.
const PERIOD: u64 = 251;
/// One byte in this many is checked (plus the ends of every read).
pub const SAMPLE: u64 = 64;
/// The longest slice [`Pattern::slice`] hands out.
pub const CHUNK: usize = 64 * 1024;

/// The expected byte at stream offset `off`.
pub fn byte_at(off: u64) -> u8 {
    (off % PERIOD) as u8
}

/// A buffer long enough to hand out any [`CHUNK`]-sized slice of the pattern.
pub struct Pattern(Vec<u8>);

impl Default for Pattern {
    fn default() -> Self {
        Pattern::new()
    }
}

impl Pattern {
    /// Builds the buffer.
    pub fn new() -> Pattern {
        Pattern((0..CHUNK as u64 + PERIOD).map(byte_at).collect())
    }

    /// The pattern from stream offset `off`, at most [`CHUNK`] bytes and at most `len`.
    pub fn slice(&self, off: u64, len: u64) -> &[u8] {
        let start = (off % PERIOD) as usize;
        let n = len.min(CHUNK as u64) as usize;
        &self.0[start..start + n]
    }
}

/// Whether `data`, found at stream offset `off`, matches the pattern at its ends and at
/// every [`SAMPLE`]-th stream offset.
pub fn check(off: u64, data: &[u8]) -> bool {
    let Some(&last) = data.last() else {
        return true;
    };
    if data[0] != byte_at(off) || last != byte_at(off + data.len() as u64 - 1) {
        return false;
    }
    let first = (SAMPLE - off % SAMPLE) % SAMPLE;
    (first..data.len() as u64)
        .step_by(SAMPLE as usize)
        .all(|i| data[i as usize] == byte_at(off + i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_the_pattern_and_pass_the_check() {
        let p = Pattern::new();
        for off in [0u64, 1, 250, 251, 1_000_003, u64::from(u32::MAX)] {
            let s = p.slice(off, 5000);
            assert_eq!(s.len(), 5000);
            assert_eq!(s[0], byte_at(off));
            assert_eq!(s[4999], byte_at(off + 4999));
            assert!(check(off, s));
        }
        assert_eq!(p.slice(7, 1 << 30).len(), CHUNK);
    }

    #[test]
    fn a_lost_or_repeated_segment_fails_the_check() {
        let p = Pattern::new();
        let mut stream = p.slice(0, 1448 * 3).to_vec();
        // Lose the second segment: the third arrives where the second should be.
        stream.drain(1448..2896);
        assert!(!check(0, &stream));
        // Repeat the first segment.
        let mut rep = p.slice(0, 1448).to_vec();
        rep.extend_from_slice(p.slice(0, 1448));
        assert!(!check(0, &rep));
        // A single corrupted sampled byte.
        let mut bad = p.slice(0, 1000).to_vec();
        bad[128] ^= 1;
        assert!(!check(0, &bad));
        assert!(check(0, &[]));
    }
}
