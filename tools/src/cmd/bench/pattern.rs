//! The byte pattern every bulk transfer carries, and its cheap check.
//!
//! Byte `i` of a stream is `i % 251`. 251 is prime and shares no factor with segment
//! sizes, so a lost, repeated or reordered segment shifts the pattern. The check
//! compares every byte with a table of the pattern, a `memcmp` of at most [`TABLE_RUN`]
//! bytes at a time: about 0.1 instructions per byte, less than the sampled check it
//! replaced (the ends of every read and one byte in 64, at about 0.3 per byte, which
//! counted in both stacks' in-memory instructions per byte).

/// The pattern's period.
const PERIOD: u64 = 251;
/// Bytes of the pattern one comparison covers.
const TABLE_RUN: usize = 4096;
/// The pattern from offset 0, long enough to start a [`TABLE_RUN`] at any phase.
static TABLE: [u8; TABLE_RUN + PERIOD as usize] = {
    let mut t = [0u8; TABLE_RUN + PERIOD as usize];
    let mut i = 0;
    while i < t.len() {
        t[i] = (i as u64 % PERIOD) as u8;
        i += 1;
    }
    t
};
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

/// Whether `data`, found at stream offset `off`, is the pattern there, every byte.
pub fn check(off: u64, mut data: &[u8]) -> bool {
    let mut phase = (off % PERIOD) as usize;
    while !data.is_empty() {
        let n = data.len().min(TABLE_RUN);
        if data[..n] != TABLE[phase..phase + n] {
            return false;
        }
        phase = (phase + n) % PERIOD as usize;
        data = &data[n..];
    }
    true
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
        // A single corrupted byte anywhere, in the first or a later table run.
        for at in [0, 1, 128, 4095, 4096, 9999] {
            let mut bad = p.slice(3, 10_000).to_vec();
            bad[at] ^= 1;
            assert!(!check(3, &bad), "corruption at {at} missed");
        }
        assert!(check(3, p.slice(3, 10_000)));
        assert!(check(0, &[]));
    }
}
