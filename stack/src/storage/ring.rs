//! A byte ring of bounded capacity whose memory follows its contents.
//!
//! The capacity (what [`RingBuffer::window`] offers, e.g. a TCP window) is fixed at
//! creation, but storage is allocated only when bytes need it: it starts empty, grows by
//! doubling (at least [`MIN_ALLOC`]) when a write does not fit, and is given back by
//! [`RingBuffer::release_if_empty`]. So an idle connection costs no buffer memory and a
//! busy one reaches its working size once, after which writes never allocate (Linux's
//! tcp_rmem/tcp_wmem play the same role with socket buffers grown on demand).
//!
//! Invariants: `len() <= capacity()`; `allocated() <= capacity()` while the capacity
//! is the one the ring was made with, and below twice the capacity once
//! [`RingBuffer::grow_capacity`] raised it (storage then doubles up to the power of
//! two above the capacity, so a capacity raised in small steps, as autotuning does,
//! costs a logarithmic number of reallocations and copies, not one per step); bytes
//! live at positions
//! `read_at .. read_at + len` modulo `allocated()`; bytes written past the end with
//! [`RingBuffer::write_unallocated`] keep their offset from `read_at` across growth.

/// The smallest storage a ring allocates. Small, so that a connection that moves a few
/// bytes and goes idle costs little even before its buffers are given back; writes of a
/// full segment go straight to the next power of two that holds them.
pub const MIN_ALLOC: usize = 256;

/// A byte ring buffer of bounded capacity, allocated on demand.
#[derive(Debug)]
pub struct RingBuffer {
    storage: Box<[u8]>,
    limit: usize,
    /// The capacity was raised after creation ([`grow_capacity`](Self::grow_capacity)).
    raised: bool,
    read_at: usize,
    length: usize,
}

impl RingBuffer {
    /// An empty ring that holds up to `capacity` bytes; allocates nothing yet.
    pub fn new(capacity: usize) -> RingBuffer {
        RingBuffer {
            storage: Box::default(),
            limit: capacity,
            raised: false,
            read_at: 0,
            length: 0,
        }
    }

    /// Total capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.limit
    }

    /// Raises the capacity to `capacity` (never lowers it: bytes stored, and a window
    /// already offered on the strength of it, must stay valid). Allocates nothing; the
    /// storage still grows only when bytes need it (TCP buffer autotuning).
    pub fn grow_capacity(&mut self, capacity: usize) {
        if capacity > self.limit {
            self.limit = capacity;
            self.raised = true;
        }
    }

    /// Bytes of storage currently allocated.
    pub fn allocated(&self) -> usize {
        self.storage.len()
    }

    /// Bytes stored.
    pub fn len(&self) -> usize {
        self.length
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Free space in bytes.
    pub fn window(&self) -> usize {
        self.limit - self.length
    }

    /// Frees the storage when no byte is stored; returns whether memory was given back.
    /// Bytes written with [`write_unallocated`](Self::write_unallocated) and not yet
    /// made readable are lost: the caller releases only when it holds none.
    pub fn release_if_empty(&mut self) -> bool {
        if self.length != 0 || self.storage.is_empty() {
            return false;
        }
        self.storage = Box::default();
        self.read_at = 0;
        true
    }

    /// Makes room for `end` bytes counted from `read_at` (at most the capacity): the
    /// cold path of every write.
    #[cold]
    fn grow(&mut self, end: usize) {
        let old = self.storage.len();
        // A raised capacity may be raised again, in steps as small as one segment
        // (send-buffer autotuning follows cwnd): storage sized to the capacity itself
        // would be reallocated and copied whole at every step, which made the copies
        // of a bulk transfer's growth phase about two instructions per byte sent.
        let ceiling = if self.raised {
            self.limit.checked_next_power_of_two().unwrap_or(self.limit)
        } else {
            self.limit
        };
        let want = end
            .max(MIN_ALLOC)
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX)
            .max(old.saturating_mul(2))
            .min(ceiling.max(end));
        let mut fresh = vec![0u8; want].into_boxed_slice();
        // Unroll the ring so `read_at` becomes 0; every byte keeps its offset from it,
        // the not-yet-readable ones past `length` included.
        let first = old - self.read_at;
        fresh[..first].copy_from_slice(&self.storage[self.read_at..]);
        fresh[first..old].copy_from_slice(&self.storage[..self.read_at]);
        self.storage = fresh;
        self.read_at = 0;
    }

    /// Appends as much of `data` as fits; returns how many bytes were taken.
    pub fn enqueue_slice(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.window());
        if n == 0 {
            return 0;
        }
        if self.length + n > self.storage.len() {
            self.grow(self.length + n);
        }
        let cap = self.storage.len();
        let write_at = wrap(self.read_at + self.length, cap);
        let first = n.min(cap - write_at);
        self.storage[write_at..write_at + first].copy_from_slice(&data[..first]);
        if first < n {
            // Wrapped: the rest at the start (skipped otherwise, which spares a
            // zero-length `memcpy` call per received segment).
            self.storage[..n - first].copy_from_slice(&data[first..n]);
        }
        self.length += n;
        n
    }

    /// Removes up to `buf.len()` bytes from the front into `buf`; returns the count.
    pub fn dequeue_slice(&mut self, buf: &mut [u8]) -> usize {
        let n = self.read_allocated(0, buf);
        self.dequeue_allocated(n);
        n
    }

    /// Copies bytes starting `offset` past the front into `buf` without removing them.
    pub fn read_allocated(&self, offset: usize, buf: &mut [u8]) -> usize {
        if offset >= self.length {
            return 0;
        }
        let cap = self.storage.len();
        let n = buf.len().min(self.length - offset);
        let start = wrap(self.read_at + offset, cap);
        let first = n.min(cap - start);
        buf[..first].copy_from_slice(&self.storage[start..start + first]);
        buf[first..n].copy_from_slice(&self.storage[..n - first]);
        n
    }

    /// Drops `n` bytes from the front (at most what is stored).
    pub fn dequeue_allocated(&mut self, n: usize) {
        let n = n.min(self.length);
        if n == 0 {
            return;
        }
        self.read_at = wrap(self.read_at + n, self.storage.len());
        // `read_at` is not rewound when the ring empties: bytes written past the end
        // with `write_unallocated` (out-of-order TCP data) must stay where they are.
        self.length -= n;
    }

    /// Writes `data` at `offset` past the end of the stored bytes without making it
    /// readable (out-of-order data); returns how many bytes fit.
    pub fn write_unallocated(&mut self, offset: usize, data: &[u8]) -> usize {
        if offset >= self.window() {
            return 0;
        }
        let n = data.len().min(self.window() - offset);
        if n == 0 {
            return 0;
        }
        let end = self.length + offset + n;
        if end > self.storage.len() {
            self.grow(end);
        }
        let cap = self.storage.len();
        let start = wrap(self.read_at + self.length + offset, cap);
        let first = n.min(cap - start);
        self.storage[start..start + first].copy_from_slice(&data[..first]);
        self.storage[..n - first].copy_from_slice(&data[first..n]);
        n
    }

    /// Makes `n` bytes written with [`write_unallocated`](Self::write_unallocated) readable.
    pub fn enqueue_unallocated(&mut self, n: usize) {
        // Only bytes that were written can become readable: they lie in the storage.
        let n = n.min(self.window()).min(self.storage.len() - self.length);
        self.length += n;
    }

    /// The longest contiguous readable slice starting `offset` past the front, at most
    /// `max` bytes long.
    pub fn get_allocated(&self, offset: usize, max: usize) -> &[u8] {
        if offset >= self.length {
            return &[];
        }
        let cap = self.storage.len();
        let start = wrap(self.read_at + offset, cap);
        let n = (self.length - offset).min(cap - start).min(max);
        &self.storage[start..start + n]
    }
}

/// `pos % cap` for a position that is at most one lap ahead (`pos < 2 * cap`, or both
/// zero), which every ring position is (`read_at < cap` and the offsets added to it stay
/// within the stored bytes): a compare and a subtraction instead of a division, which
/// costs tens of cycles and ran several times per segment.
#[inline(always)]
fn wrap(pos: usize, cap: usize) -> usize {
    debug_assert!(
        pos < 2 * cap || pos == 0,
        "ring position {pos} beyond one lap of {cap}"
    );
    if pos >= cap {
        pos - cap
    } else {
        pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wrap_is_the_remainder_within_one_lap() {
        assert_eq!(wrap(0, 0), 0);
        for cap in [1usize, 2, 7, 256, 4096] {
            for pos in 0..2 * cap {
                assert_eq!(wrap(pos, cap), pos % cap, "pos {pos} cap {cap}");
            }
        }
    }

    #[test]
    fn wraps_around() {
        let mut r = RingBuffer::new(8);
        assert_eq!(r.enqueue_slice(b"abcdef"), 6);
        let mut out = [0u8; 4];
        assert_eq!(r.dequeue_slice(&mut out), 4);
        assert_eq!(&out, b"abcd");
        assert_eq!(r.enqueue_slice(b"ghijklmn"), 6);
        assert_eq!(r.len(), 8);
        let mut all = [0u8; 8];
        assert_eq!(r.dequeue_slice(&mut all), 8);
        assert_eq!(&all, b"efghijkl");
    }

    #[test]
    fn unallocated_data_survives_draining_the_ring() {
        let mut r = RingBuffer::new(8);
        r.enqueue_slice(b"abc");
        assert_eq!(r.write_unallocated(2, b"fg"), 2);
        let mut out = [0u8; 3];
        assert_eq!(r.dequeue_slice(&mut out), 3);
        assert_eq!(r.write_unallocated(0, b"de"), 2);
        r.enqueue_unallocated(4);
        let mut out = [0u8; 4];
        assert_eq!(r.dequeue_slice(&mut out), 4);
        assert_eq!(&out, b"defg");
    }

    #[test]
    fn unallocated_writes_become_readable_in_order() {
        let mut r = RingBuffer::new(8);
        assert_eq!(r.write_unallocated(2, b"cd"), 2);
        assert_eq!(r.len(), 0);
        assert_eq!(r.write_unallocated(0, b"ab"), 2);
        r.enqueue_unallocated(4);
        let mut out = [0u8; 4];
        r.dequeue_slice(&mut out);
        assert_eq!(&out, b"abcd");
    }

    #[test]
    fn grown_capacity_keeps_bytes_and_never_shrinks() {
        let mut r = RingBuffer::new(8);
        assert_eq!(r.enqueue_slice(b"abcdefghij"), 8);
        assert_eq!(r.write_unallocated(0, b"x"), 0, "full");
        r.grow_capacity(16);
        assert_eq!((r.capacity(), r.window(), r.len()), (16, 8, 8));
        assert_eq!(r.write_unallocated(1, b"kl"), 2);
        assert_eq!(r.enqueue_slice(b"i"), 1);
        r.enqueue_unallocated(2);
        r.grow_capacity(4);
        assert_eq!(r.capacity(), 16, "capacity never shrinks");
        let mut out = [0u8; 11];
        assert_eq!(r.dequeue_slice(&mut out), 11);
        assert_eq!(&out, b"abcdefghikl");
    }

    #[test]
    fn capacity_raised_in_small_steps_reallocates_by_doubling() {
        // Send-buffer autotuning raises the capacity by about a segment per ACK while
        // the application keeps the ring full.
        let mut r = RingBuffer::new(3000);
        let mut next = 0u8;
        let mut chunk = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    next = next.wrapping_add(1);
                    next
                })
                .collect()
        };
        assert_eq!(r.enqueue_slice(&chunk(3000)), 3000);
        assert_eq!(
            r.allocated(),
            3000,
            "an unraised capacity bounds the storage"
        );
        let mut reallocations = 0;
        let mut out = vec![0u8; 1000];
        for _ in 0..1000 {
            r.grow_capacity(r.capacity() + 1448);
            let before = r.allocated();
            // Keep the ring full and wrapped, as a sender with unacknowledged data.
            r.dequeue_slice(&mut out);
            let fill = chunk(r.window());
            assert_eq!(r.enqueue_slice(&fill), fill.len());
            assert!(r.allocated() < 2 * r.capacity());
            if r.allocated() != before {
                reallocations += 1;
            }
        }
        // 3000 + 1000 * 1448 bytes: 4 KiB .. 2 MiB by doubling.
        assert_eq!(r.capacity(), 3000 + 1000 * 1448);
        assert!(reallocations <= 10, "{reallocations} reallocations");
        // The bytes survived every reallocation in order.
        let mut all = vec![0u8; r.len()];
        assert_eq!(r.dequeue_slice(&mut all), all.len());
        assert!(all.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    }

    #[test]
    fn storage_follows_contents() {
        let mut r = RingBuffer::new(1 << 20);
        assert_eq!(
            (r.capacity(), r.allocated(), r.window()),
            (1 << 20, 0, 1 << 20)
        );
        assert_eq!(r.enqueue_slice(b"x"), 1);
        assert_eq!(r.allocated(), MIN_ALLOC);
        assert_eq!(r.enqueue_slice(&[7u8; 5000]), 5000);
        assert_eq!(r.allocated(), 8192);
        assert!(!r.release_if_empty(), "holds bytes");
        r.dequeue_allocated(5001);
        assert!(r.release_if_empty());
        assert_eq!((r.allocated(), r.capacity()), (0, 1 << 20));
        assert!(!r.release_if_empty(), "nothing left to give back");
    }

    #[test]
    fn growth_keeps_wrapped_and_unallocated_bytes() {
        let mut r = RingBuffer::new(100_000);
        let a: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
        r.enqueue_slice(&a);
        let mut sink = [0u8; 1000];
        r.dequeue_slice(&mut sink);
        // Wraps in the 2 KiB storage.
        r.enqueue_slice(&a);
        // Out-of-order bytes far past the end force growth.
        assert_eq!(r.write_unallocated(3000, b"late"), 4);
        assert!(r.allocated() >= 8192);
        assert_eq!(r.write_unallocated(0, &vec![9u8; 3000]), 3000);
        r.enqueue_unallocated(3004);
        let mut all = vec![0u8; r.len()];
        assert_eq!(r.dequeue_slice(&mut all), 500 + 1500 + 3004);
        assert_eq!(&all[..500], &a[1000..]);
        assert_eq!(&all[500..2000], &a[..]);
        assert!(all[2000..5000].iter().all(|&b| b == 9));
        assert_eq!(&all[5000..], b"late");
    }

    proptest! {
        #[test]
        fn lazy_ring_matches_a_model_with_out_of_order_writes(
            ops in proptest::collection::vec((0u8..4, 0usize..3000, 0usize..3000), 0..100)
        ) {
            let cap = 10_000;
            let mut r = RingBuffer::new(cap);
            let mut model: std::collections::VecDeque<u8> = Default::default();
            // Bytes past the end: offset -> value.
            let mut ooo: std::collections::BTreeMap<usize, u8> = Default::default();
            let mut next = 0u8;
            for (op, a, b) in ops {
                match op {
                    0 => {
                        let data: Vec<u8> = (0..a).map(|_| { next = next.wrapping_add(1); next }).collect();
                        let n = r.enqueue_slice(&data);
                        prop_assert_eq!(n, a.min(cap - model.len()));
                        model.extend(&data[..n]);
                        ooo.clear();
                    }
                    1 => {
                        let mut buf = vec![0u8; a];
                        let got = r.dequeue_slice(&mut buf);
                        let want: Vec<u8> = model.drain(..got.min(model.len())).collect();
                        prop_assert_eq!(&buf[..got], &want[..]);
                        let shifted = ooo.iter().map(|(&k, &v)| (k, v)).collect::<Vec<_>>();
                        ooo = shifted.into_iter().collect();
                    }
                    2 => {
                        let data: Vec<u8> = (0..b.min(500)).map(|_| { next = next.wrapping_add(1); next }).collect();
                        let n = r.write_unallocated(a, &data);
                        for (i, &v) in data[..n].iter().enumerate() {
                            ooo.insert(a + i, v);
                        }
                    }
                    _ => {
                        // Make the contiguous prefix of out-of-order bytes readable.
                        let mut k = 0;
                        while ooo.contains_key(&k) { k += 1; }
                        r.enqueue_unallocated(k);
                        for i in 0..k { model.push_back(ooo[&i]); }
                        ooo = ooo.into_iter().filter(|&(o, _)| o >= k).map(|(o, v)| (o - k, v)).collect();
                    }
                }
                prop_assert_eq!(r.len(), model.len());
                prop_assert!(r.allocated() <= cap);
                let mut peek = vec![0u8; model.len()];
                r.read_allocated(0, &mut peek);
                prop_assert!(peek.iter().eq(model.iter()));
            }
        }

        #[test]
        fn behaves_like_a_fifo(ops in proptest::collection::vec((any::<bool>(), 0usize..20), 0..200)) {
            let mut r = RingBuffer::new(16);
            let mut model = std::collections::VecDeque::new();
            let mut next = 0u8;
            for (push, n) in ops {
                if push {
                    let data: Vec<u8> = (0..n).map(|_| { next = next.wrapping_add(1); next }).collect();
                    let taken = r.enqueue_slice(&data);
                    prop_assert_eq!(taken, n.min(16 - model.len()));
                    model.extend(&data[..taken]);
                } else {
                    let mut buf = vec![0u8; n];
                    let got = r.dequeue_slice(&mut buf);
                    let want: Vec<u8> = (0..got).filter_map(|_| model.pop_front()).collect();
                    prop_assert_eq!(&buf[..got], &want[..]);
                    prop_assert_eq!(got, n.min(want.len().max(got)));
                }
                prop_assert_eq!(r.len(), model.len());
            }
        }
    }
}
