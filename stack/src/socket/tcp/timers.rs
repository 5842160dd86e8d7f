//! The layer's timer heap: one entry per socket deadline, so finding what is due never
//! scans the sockets.
//!
//! Each socket's earliest deadline ([`Socket::poll_at`](super::socket::Socket::poll_at))
//! sits in a binary heap as `(deadline, slot, tag)`. It is re-read only when one of
//! the socket's timers was written since the last look (`Socket::timers_changed`), so
//! a segment that leaves the timers alone costs no recomputation. The slot's `Meta` records the tag
//! and deadline of its one live entry; any other entry for the slot (an older deadline,
//! or a freed socket's) is stale and skipped lazily. Invariant: after every public call
//! the top of the heap is live, so [`TcpLayer::poll_at`] is a peek. The heap is rebuilt
//! from the slab when stale entries outnumber live ones by far, reusing its buffer.

use super::{TcpContext, TcpLayer};
use crate::time::Instant;
use core::cmp::Reverse;
use std::collections::BinaryHeap;

impl TcpLayer {
    /// Re-reads a socket's earliest deadline and pushes a fresh heap entry if it moved.
    pub(super) fn reschedule(&mut self, idx: u32) {
        let seq = self.timer_seq + 1;
        let Some(it) = self.slab.get_at_mut(idx) else {
            return;
        };
        if !it.socket.timers_changed {
            // No deadline was written since the last look: the entry is current.
            debug_assert_eq!(it.socket.poll_at(), it.meta.timer_at);
            return;
        }
        it.socket.timers_changed = false;
        let at = it.socket.poll_at();
        if at == it.meta.timer_at {
            return;
        }
        it.meta.timer_at = at;
        it.meta.timer_gen = seq;
        self.timers_stale = true;
        self.timer_seq = seq;
        if let Some(t) = at {
            self.timers.push(Reverse((t, idx, seq)));
        }
        if self.timers.len() > 4 * self.slab.slots() + 64 {
            self.rebuild_timers();
        }
    }

    fn rebuild_timers(&mut self) {
        // Reuse the heap's buffer: this runs in steady state and must not allocate.
        let mut entries = core::mem::take(&mut self.timers).into_vec();
        entries.clear();
        for (key, it) in self.slab.iter() {
            if let Some(t) = it.meta.timer_at {
                entries.push(Reverse((t, key.index(), it.meta.timer_gen)));
            }
        }
        self.timers = BinaryHeap::from(entries);
    }

    fn timer_valid(&self, idx: u32, gen: u64) -> bool {
        self.slab
            .get_at(idx)
            .is_some_and(|it| it.meta.timer_gen == gen && it.meta.timer_at.is_some())
    }

    /// Pops stale entries so the top of the heap is a live deadline.
    pub(super) fn tidy_timers(&mut self) {
        if !self.timers_stale {
            debug_assert!(self
                .timers
                .peek()
                .is_none_or(|&Reverse((_, idx, gen))| self.timer_valid(idx, gen)));
            return;
        }
        while let Some(&Reverse((_, idx, gen))) = self.timers.peek() {
            if self.timer_valid(idx, gen) {
                break;
            }
            self.timers.pop();
        }
        self.timers_stale = false;
    }

    /// Runs every timer due at `cx.now`.
    pub fn handle_timeout(&mut self, cx: &TcpContext) {
        let mut due = core::mem::take(&mut self.due);
        due.clear();
        while let Some(&Reverse((t, idx, gen))) = self.timers.peek() {
            if t > cx.now {
                break;
            }
            self.timers.pop();
            if self.timer_valid(idx, gen) {
                due.push(idx);
            }
        }
        for &idx in &due {
            let Some(it) = self.slab.get_at_mut(idx) else {
                continue;
            };
            it.meta.timer_at = None;
            self.timers_stale = true;
            let s = &mut it.socket;
            // The layer dropped its entry: the next settle must push the socket's
            // remaining deadlines afresh.
            s.timers_changed = true;
            let prev = s.state;
            if let Some(rst) = s.handle_timeout(cx, &self.config, &mut self.events) {
                let addrs = s.addrs();
                self.counters.resets_sent += 1;
                self.queue_rst(addrs, rst);
            }
            self.touch(idx);
            self.settle(idx, prev, true);
        }
        self.due = due;
        self.expire_time_wait(cx.now);
        self.run_reclaim(cx);
        self.tidy_timers();
    }

    /// The earliest deadline of any socket, TIME-WAIT entry or the buffer reclaim tick.
    pub fn poll_at(&self) -> Option<Instant> {
        let earlier = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let heap = self.timers.peek().map(|r| r.0 .0);
        earlier(
            earlier(heap, self.reclaim_at),
            self.time_wait.next_deadline(),
        )
    }
}
