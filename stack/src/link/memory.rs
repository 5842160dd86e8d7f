//! An in-memory, thread-safe pair of links: what one end sends, the other receives.

use super::Link;
use crate::time::Instant;
use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Queue {
    frames: VecDeque<Vec<u8>>,
    /// Spent frame buffers kept for reuse so a steady flow does not allocate.
    spare: Vec<Vec<u8>>,
}

/// One end of an in-memory link pair; each direction holds at most `capacity` frames.
#[derive(Clone)]
pub struct MemoryLink {
    rx: Arc<Mutex<Queue>>,
    tx: Arc<Mutex<Queue>>,
    capacity: usize,
}

impl MemoryLink {
    /// Two connected ends, each direction bounded at `capacity` frames (excess is dropped).
    pub fn pair(capacity: usize) -> (MemoryLink, MemoryLink) {
        let a = Arc::new(Mutex::new(Queue::default()));
        let b = Arc::new(Mutex::new(Queue::default()));
        (
            MemoryLink {
                rx: a.clone(),
                tx: b.clone(),
                capacity,
            },
            MemoryLink {
                rx: b,
                tx: a,
                capacity,
            },
        )
    }

    /// Frames waiting to be received on this end.
    pub fn pending(&self) -> usize {
        self.rx.lock().map(|q| q.frames.len()).unwrap_or(0)
    }
}

impl Link for MemoryLink {
    fn recv(&mut self, _now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut q = self
            .rx
            .lock()
            .map_err(|_| io::Error::other("link poisoned"))?;
        let Some(frame) = q.frames.pop_front() else {
            return Ok(None);
        };
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        q.spare.push(frame);
        Ok(Some(n))
    }

    fn send(&mut self, _now: Instant, frame: &[u8]) -> io::Result<()> {
        let mut q = self
            .tx
            .lock()
            .map_err(|_| io::Error::other("link poisoned"))?;
        if q.frames.len() >= self.capacity {
            return Ok(());
        }
        let mut buf = q.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(frame);
        q.frames.push_back(buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_in_order_and_queue_is_bounded() {
        let (mut a, mut b) = MemoryLink::pair(2);
        let now = Instant::ZERO;
        a.send(now, b"one").unwrap();
        a.send(now, b"two").unwrap();
        a.send(now, b"three").unwrap(); // dropped: queue full
        let mut buf = [0u8; 16];
        assert_eq!(b.recv(now, &mut buf).unwrap(), Some(3));
        assert_eq!(&buf[..3], b"one");
        assert_eq!(b.recv(now, &mut buf).unwrap(), Some(3));
        assert_eq!(&buf[..3], b"two");
        assert_eq!(b.recv(now, &mut buf).unwrap(), None);
        assert_eq!(a.recv(now, &mut buf).unwrap(), None);
    }
}
