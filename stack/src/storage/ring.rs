//! A fixed-capacity ring of bytes.

/// A byte ring buffer of fixed capacity.
///
/// The storage is reserved at once but initialised only as far as bytes are written
/// (`storage.len()` is that high-water mark): a connection that moves a few bytes
/// touches a few pages, and allocating a ring never zeroes it (a zeroed allocation is
/// a memset of the whole ring whenever the allocator reuses memory, e.g. for every
/// connection of a server that accepts and closes in a loop).
#[derive(Debug)]
pub struct RingBuffer {
    storage: Vec<u8>,
    capacity: usize,
    read_at: usize,
    length: usize,
}

impl RingBuffer {
    /// An empty ring that holds up to `capacity` bytes.
    pub fn new(capacity: usize) -> RingBuffer {
        RingBuffer {
            storage: Vec::with_capacity(capacity),
            capacity,
            read_at: 0,
            length: 0,
        }
    }

    /// Total capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Copies `data` to `at` (within the capacity), initialising the storage up to its
    /// end first if it was never written that far.
    fn put(&mut self, at: usize, data: &[u8]) {
        let end = at + data.len();
        if end > self.storage.len() {
            self.storage.resize(end, 0);
        }
        self.storage[at..end].copy_from_slice(data);
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
        self.put(write_at, &data[..first]);
        self.put(0, &data[first..n]);
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
        self.put(start, &data[..first]);
        self.put(0, &data[first..n]);
        n
    }

    /// Makes `n` bytes written with [`write_unallocated`](Self::write_unallocated) readable.
    pub fn enqueue_unallocated(&mut self, n: usize) {
        let n = n.min(self.window());
        // Those bytes were written (out-of-order data); one that was not reads as zero,
        // as it did when the ring was zeroed up front.
        let end = (self.read_at + self.length + n).min(self.capacity);
        if end > self.storage.len() {
            self.storage.resize(end, 0);
        }
        self.length += n;
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
    fn only_written_bytes_are_initialised() {
        let mut r = RingBuffer::new(1 << 20);
        assert_eq!(r.storage.len(), 0, "allocating does not zero the ring");
        r.enqueue_slice(b"abc");
        assert_eq!(r.storage.len(), 3);
        // Out-of-order data past a gap initialises the gap; made readable, it reads.
        assert_eq!(r.write_unallocated(7, b"xy"), 2);
        assert_eq!(r.storage.len(), 12);
        r.enqueue_unallocated(9);
        let mut out = [1u8; 12];
        assert_eq!(r.dequeue_slice(&mut out), 12);
        assert_eq!(&out, b"abc\0\0\0\0\0\0\0xy");
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
