//! Giving idle connections' buffer memory back (memory proportional to data).
//!
//! Socket buffers ([`RingBuffer`](crate::storage::RingBuffer)) allocate only when bytes
//! arrive and keep their storage while busy, so the data path never allocates in steady
//! state. This module frees that storage once it has been empty for a while:
//! - after any change to a socket (`settle`), a connection whose send or receive buffer
//!   holds storage but no bytes is queued once, with a snapshot of its segment counters;
//!   TIME-WAIT and CLOSED connections give their buffers back at once;
//! - every `idle_buffer_release` a tick looks at the queued connections: one with no
//!   segment in or out since its snapshot gives back its empty buffers; a busy one is
//!   queued again with a fresh snapshot; one whose buffers filled again leaves the queue.
//!
//! Cost: one check per settle, one queue entry per connection at most (`meta.reclaim_queued`),
//! and one deadline beside the timer heap ([`TcpLayer::poll_at`] includes it). Stale
//! entries (a freed socket's handle) are skipped by the slab's generation check.

use super::{TcpContext, TcpLayer, TcpState};
use crate::time::Instant;
use std::collections::VecDeque;

impl TcpLayer {
    /// After a change to the socket in slot `idx`: gives back or queues its empty
    /// buffers.
    pub(super) fn note_idle_buffers(&mut self, idx: u32) {
        let Some(it) = self.slab.get_at_mut(idx) else {
            return;
        };
        if !it.socket.has_idle_buffers() {
            return;
        }
        if matches!(it.socket.state, TcpState::TimeWait | TcpState::Closed) {
            // Nothing more will be sent or received into them: give them back now, even
            // if the connection already waits for the tick (its entry then finds
            // nothing to do).
            if it.socket.release_idle_buffers() {
                self.counters.buffers_released += 1;
            }
            return;
        }
        if it.meta.reclaim_queued {
            return;
        }
        it.meta.reclaim_queued = true;
        let snapshot = it.socket.activity();
        self.reclaim.push_back((it.socket.handle, snapshot));
    }

    /// Arms the reclaim tick when connections wait for it.
    pub(super) fn arm_reclaim(&mut self, now: Instant) {
        if self.reclaim_at.is_none() && !self.reclaim.is_empty() {
            self.reclaim_at = Some(now + self.config.idle_buffer_release);
        }
    }

    /// The reclaim tick, if due: frees the buffers of connections idle since queued.
    pub(super) fn run_reclaim(&mut self, cx: &TcpContext) {
        if self.reclaim_at.is_none_or(|t| t > cx.now) {
            return;
        }
        self.reclaim_at = None;
        for _ in 0..self.reclaim.len() {
            let Some((h, snapshot)) = self.reclaim.pop_front() else {
                break;
            };
            let Some(it) = self.slab.get_mut(h.0) else {
                continue;
            };
            if !it.socket.has_idle_buffers() {
                it.meta.reclaim_queued = false;
            } else if it.socket.activity() == snapshot {
                it.meta.reclaim_queued = false;
                if it.socket.release_idle_buffers() {
                    self.counters.buffers_released += 1;
                }
            } else {
                let now = it.socket.activity();
                self.reclaim.push_back((h, now));
            }
        }
        self.arm_reclaim(cx.now);
    }

    /// After a socket or TIME-WAIT entry was freed: once the live ones fell to a quarter of what they
    /// were, gives the tables' spare memory back ([`compact`](Self::compact)). The mark
    /// halves after each compaction, so the work stays linear in the frees.
    pub(super) fn maybe_compact(&mut self) {
        // Compact TIME-WAIT entries count: they hold map entries too.
        let live = self.socket_count();
        // A small table is not worth shrinking: a client opening and closing one
        // connection at a time would rebuild its maps every time.
        if live > self.compact_at || self.slab.slots() + self.time_wait.slots() <= 64 {
            return;
        }
        self.compact();
        self.compact_at = live / 2;
    }

    /// Drops the slab's free tail and the spare capacity of every map and queue, and
    /// the stale entries of the timer heap, so a layer that once held many connections
    /// shrinks back towards what it holds now.
    pub(super) fn compact(&mut self) {
        self.slab.shrink();
        self.time_wait.shrink();
        let slab = &self.slab;
        self.timers.retain(|r| {
            let (_, idx, gen) = r.0;
            slab.get_at(idx)
                .is_some_and(|it| it.meta.timer_gen == gen && it.meta.timer_at.is_some())
        });
        self.due = Vec::new();
        self.spare = Vec::new();
        fn shrink_deque<T>(q: &mut VecDeque<T>) {
            if q.capacity() > 2 * q.len() + 16 {
                q.shrink_to_fit();
            }
        }
        if self.timers.capacity() > 2 * self.timers.len() + 16 {
            self.timers.shrink_to_fit();
        }
        shrink_deque(&mut self.dirty);
        shrink_deque(&mut self.ready);
        shrink_deque(&mut self.reclaim);
        shrink_deque(&mut self.pending_rsts);
        shrink_deque(&mut self.last_acks);
        shrink_deque(&mut self.events.queue);
        if self.conns.capacity() > 2 * self.conns.len() + 16 {
            self.conns.shrink_to_fit();
        }
        if self.ports.capacity() > 2 * self.ports.len() + 16 {
            self.ports.shrink_to_fit();
        }
    }

    /// Test hook: connections waiting for the reclaim tick.
    #[cfg(test)]
    pub(crate) fn reclaim_queue_len(&self) -> usize {
        self.reclaim.len()
    }
}
