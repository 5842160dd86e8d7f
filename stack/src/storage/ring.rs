//! A fixed-capacity ring of bytes.

/// A byte ring buffer of fixed capacity.
#[derive(Debug)]
pub struct RingBuffer {
    storage: Box<[u8]>,
    read_at: usize,
    length: usize,
}

impl RingBuffer {
    /// An empty ring that holds up to `capacity` bytes.
    pub fn new(capacity: usize) -> RingBuffer {
        RingBuffer {
            storage: vec![0; capacity].into_boxed_slice(),
            read_at: 0,
            length: 0,
        }
    }

    /// Total capacity in bytes.
    pub fn capacity(&self) -> usize {
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
        self.capacity() - self.length
    }

    /// Appends as much of `data` as fits; returns how many bytes were taken.
    pub fn enqueue_slice(&mut self, data: &[u8]) -> usize {
        let cap = self.capacity();
        let n = data.len().min(self.window());
        if n == 0 {
            return 0;
        }
        let write_at = (self.read_at + self.length) % cap;
        let first = n.min(cap - write_at);
        self.storage[write_at..write_at + first].copy_from_slice(&data[..first]);
        self.storage[..n - first].copy_from_slice(&data[first..n]);
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
        if offset >= self.length || self.capacity() == 0 {
            return 0;
        }
        let cap = self.capacity();
        let n = buf.len().min(self.length - offset);
        let start = (self.read_at + offset) % cap;
        let first = n.min(cap - start);
        buf[..first].copy_from_slice(&self.storage[start..start + first]);
        buf[first..n].copy_from_slice(&self.storage[..n - first]);
        n
    }

    /// Drops `n` bytes from the front (at most what is stored).
    pub fn dequeue_allocated(&mut self, n: usize) {
        let n = n.min(self.length);
        if self.capacity() > 0 {
            self.read_at = (self.read_at + n) % self.capacity();
        }
        // `read_at` is not rewound when the ring empties: bytes written past the end
        // with `write_unallocated` (out-of-order TCP data) must stay where they are.
        self.length -= n;
    }

    /// Writes `data` at `offset` past the end of the stored bytes without making it
    /// readable (out-of-order data); returns how many bytes fit.
    pub fn write_unallocated(&mut self, offset: usize, data: &[u8]) -> usize {
        let cap = self.capacity();
        if offset >= self.window() {
            return 0;
        }
        let n = data.len().min(self.window() - offset);
        let start = (self.read_at + self.length + offset) % cap;
        let first = n.min(cap - start);
        self.storage[start..start + first].copy_from_slice(&data[..first]);
        self.storage[..n - first].copy_from_slice(&data[first..n]);
        n
    }

    /// Makes `n` bytes written with [`write_unallocated`](Self::write_unallocated) readable.
    pub fn enqueue_unallocated(&mut self, n: usize) {
        self.length += n.min(self.window());
    }

    /// The longest contiguous readable slice starting `offset` past the front, at most
    /// `max` bytes long.
    pub fn get_allocated(&self, offset: usize, max: usize) -> &[u8] {
        if offset >= self.length || self.capacity() == 0 {
            return &[];
        }
        let cap = self.capacity();
        let start = (self.read_at + offset) % cap;
        let n = (self.length - offset).min(cap - start).min(max);
        &self.storage[start..start + n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    proptest! {
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
