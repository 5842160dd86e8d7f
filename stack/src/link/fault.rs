//! Seeded fault injection: loss, burst loss, duplication, reordering, corruption,
//! delay with jitter and a rate-limited bounded queue, per direction.
//!
//! [`FaultModel`] is one direction of faults, independent of any device: frames are
//! pushed in with the current time and popped out when due. [`FaultInjector`] wraps a
//! [`Link`] with two models (`tx`: stack → device, `rx`: device → stack); the simulator
//! (`crate::sim`) puts the same model on every simulated link direction, so a fault
//! configuration means the same thing on a TAP device and in a simulation.
//!
//! Invariants:
//! - Determinism: a model's only entropy is a ChaCha8 stream seeded from a `u64`; the
//!   same seed, configuration and sequence of calls (with the same instants) inject the
//!   same faults. Each direction has its own stream derived from the seed
//!   ([`derive_seed`]), so traffic in one direction never shifts the other's faults.
//! - Pipeline order per frame: burst loss (Gilbert-Elliott) → random loss → corruption →
//!   duplication → rate-limited queue (tail drop, serialization delay) → delay ± jitter
//!   → reordering. Jitter alone never reorders (a frame is never due before the one
//!   sent ahead of it); only the reorder fault does, so every reordering is counted.
//! - Memory is bounded: at most [`MAX_HELD`] frames are held per direction (excess is
//!   dropped as `QueueFull`), the event log is a ring of fixed capacity, and frame
//!   buffers are recycled through a [`FramePool`], so steady traffic does not allocate.
//! - No input panics: out-of-range probabilities are clamped (NaN counts as 0), a zero
//!   rate means unlimited, and frames of any length (including empty) are accepted.

use super::{Link, DEFAULT_FRAME_LEN};
use crate::time::{Duration, Instant};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::io;

mod spec;
pub use spec::{DelaySpec, FaultSpecError, Probability, Rate, ReorderSpec};

/// Most frames a single direction holds (delayed, queued or held back) at once.
pub const MAX_HELD: usize = 1 << 16;

/// Spare buffers a [`FramePool`] keeps at most; beyond that, returned buffers are freed.
const POOL_MAX: usize = 1024;

/// Frames pulled from the inner link per [`FaultInjector::recv`] call at most.
const RX_BATCH: usize = 256;

/// Derives the seed of an independent stream (`stream` = direction or link index) from a
/// master seed with SplitMix64, so neighbouring streams are uncorrelated.
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    mix(seed ^ mix(stream))
}

pub use super::Direction;

/// Gilbert-Elliott burst loss: a two-state Markov chain stepped once per frame.
///
/// The mean time spent in the bad state is `1 / p_bad_to_good` frames, so with
/// `loss_in_bad = 1` the mean loss burst is that long.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GilbertElliott {
    /// Probability of moving from the good to the bad state, per frame.
    pub p_good_to_bad: f64,
    /// Probability of moving from the bad to the good state, per frame.
    pub p_bad_to_good: f64,
    /// Loss probability while bad (default 1).
    pub loss_in_bad: f64,
    /// Loss probability while good (default 0).
    pub loss_in_good: f64,
}

impl GilbertElliott {
    /// A chain with the given transition probabilities, losing every frame while bad.
    pub fn new(p_good_to_bad: f64, p_bad_to_good: f64) -> GilbertElliott {
        GilbertElliott {
            p_good_to_bad,
            p_bad_to_good,
            loss_in_bad: 1.0,
            loss_in_good: 0.0,
        }
    }
}

/// Faults applied to one direction of a link. The default injects nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultConfig {
    /// Probability that a frame is dropped (independently of other frames).
    pub loss: f64,
    /// Burst loss, applied before `loss`.
    pub burst: Option<GilbertElliott>,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that a frame is held back behind later frames.
    pub reorder: f64,
    /// A held-back frame waits for 1..=`reorder_depth` later frames to pass it.
    pub reorder_depth: u32,
    /// A held-back frame is released after this long even if too few frames passed it.
    pub reorder_timeout: Duration,
    /// Probability that a frame has bits flipped.
    pub corrupt: f64,
    /// A corrupted frame has 1..=`corrupt_max_bits` bits flipped in one byte (1..=8).
    pub corrupt_max_bits: u8,
    /// Corruption only touches bytes at or after this offset (default 14: past the
    /// Ethernet header, as a NIC's FCS check would have dropped the rest), so corrupted
    /// frames reach the stack and show up as checksum drops. Frames no longer than the
    /// offset are corrupted anywhere.
    pub corrupt_offset: usize,
    /// Propagation delay added to every frame.
    pub delay: Duration,
    /// Each frame's delay is drawn uniformly from `delay ± jitter` (floored at zero).
    pub jitter: Duration,
    /// Link rate in bits per second (`None` or 0: unlimited). Each frame occupies the
    /// link for `8 * len / rate` seconds, queued behind the frames before it.
    pub rate_bps: Option<u64>,
    /// Frames the rate limiter queues (including the one being serialized); a frame
    /// arriving at a full queue is tail-dropped.
    pub queue_frames: usize,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            loss: 0.0,
            burst: None,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_depth: 1,
            reorder_timeout: Duration::from_millis(10),
            corrupt: 0.0,
            corrupt_max_bits: 1,
            corrupt_offset: 14,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            rate_bps: None,
            queue_frames: 1000,
        }
    }
}

impl FaultConfig {
    /// No faults at all: every frame passes at once.
    pub fn none() -> FaultConfig {
        FaultConfig::default()
    }

    /// True when this configuration never changes, drops or holds a frame.
    pub fn is_transparent(&self) -> bool {
        !enabled(self.loss)
            && self.burst.is_none()
            && !enabled(self.duplicate)
            && !enabled(self.reorder)
            && !enabled(self.corrupt)
            && self.delay == Duration::ZERO
            && self.jitter == Duration::ZERO
            && self.rate_bps.unwrap_or(0) == 0
    }
}

/// Fault configurations for both directions of a [`FaultInjector`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// Device → stack.
    pub rx: FaultConfig,
    /// Stack → device.
    pub tx: FaultConfig,
}

impl Faults {
    /// The same configuration in both directions.
    pub fn both(config: FaultConfig) -> Faults {
        Faults {
            rx: config.clone(),
            tx: config,
        }
    }
}

/// Why a fault model dropped a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Independent random loss (`loss`).
    RandomLoss,
    /// Gilbert-Elliott burst loss (`burst`).
    BurstLoss,
    /// The rate limiter's queue (or the [`MAX_HELD`] bound) was full.
    QueueFull,
}

/// What a fault model did to a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Dropped, never delivered.
    Dropped(DropReason),
    /// `mask` was XORed into the byte at `offset`.
    Corrupted {
        /// Byte offset in the frame.
        offset: usize,
        /// Bits flipped.
        mask: u8,
    },
    /// A second copy was made (both are delivered unless dropped later).
    Duplicated,
    /// Held back until `behind` later frames pass it (or the reorder timeout).
    Reordered {
        /// Later frames that must pass first.
        behind: u32,
    },
    /// Due later than it arrived, by `by` (queueing, serialization, delay and jitter).
    Delayed {
        /// Extra time before delivery.
        by: Duration,
    },
    /// Left the model.
    Delivered,
}

/// One entry of the fate log: what happened to which frame, when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultEvent {
    /// When the action was taken.
    pub at: Instant,
    /// The direction the frame travelled.
    pub direction: Direction,
    /// Per-direction number of the frame, counting from 0 in arrival order (a duplicate
    /// keeps its original's number).
    pub frame_id: u64,
    /// The action.
    pub action: FaultAction,
    /// Length of the frame in bytes.
    pub frame_len: usize,
}

/// Everything a fault model decided for one copy of a frame when it was pushed; it
/// travels with the frame to delivery, so a frame can be described when it comes out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fate {
    /// Per-direction frame number (a duplicate keeps its original's).
    pub id: u64,
    /// Length in bytes.
    pub len: usize,
    /// Dropped: this copy is never delivered.
    pub dropped: Option<DropReason>,
    /// `(offset, mask)`: `mask` was XORed into the byte at `offset`.
    pub corrupted: Option<(usize, u8)>,
    /// This is the extra copy made by duplication.
    pub copy: bool,
    /// Delivered this much later than it arrived.
    pub delayed: Option<Duration>,
    /// Held back until this many later frames passed it.
    pub reordered: Option<u32>,
}

impl Fate {
    /// What was done, as fate-log actions in pipeline order (`Duplicated` marks the
    /// extra copy; `Delivered` is not included).
    pub fn actions(&self) -> impl Iterator<Item = FaultAction> {
        [
            self.corrupted
                .map(|(offset, mask)| FaultAction::Corrupted { offset, mask }),
            self.copy.then_some(FaultAction::Duplicated),
            self.delayed.map(|by| FaultAction::Delayed { by }),
            self.reordered
                .map(|behind| FaultAction::Reordered { behind }),
            self.dropped.map(FaultAction::Dropped),
        ]
        .into_iter()
        .flatten()
    }

    /// True when nothing was done to the frame but moving it.
    pub fn is_clean(&self) -> bool {
        self.actions().next().is_none()
    }
}

/// What [`FaultModel::push`] did with a frame: its fate, and the extra copy's if it was
/// duplicated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// The frame itself.
    pub frame: Fate,
    /// The extra copy, if one was made.
    pub copy: Option<Fate>,
}

/// Per-direction counters of a fault model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounters {
    /// Frames that entered the model.
    pub received: u64,
    /// Frames delivered (each copy of a duplicate counts).
    pub passed: u64,
    /// Frames dropped by random loss.
    pub dropped_random: u64,
    /// Frames dropped by burst loss.
    pub dropped_burst: u64,
    /// Frames tail-dropped at a full queue.
    pub dropped_queue_full: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Frames held back behind later ones.
    pub reordered: u64,
    /// Frames with flipped bits.
    pub corrupted: u64,
    /// Frames delivered later than they arrived.
    pub delayed: u64,
}

impl FaultCounters {
    /// Frames dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_random + self.dropped_burst + self.dropped_queue_full
    }
}

/// A free list of frame buffers, so frames moving through models do not allocate once
/// the pool has warmed up.
#[derive(Debug, Default)]
pub struct FramePool {
    spare: Vec<Vec<u8>>,
}

impl FramePool {
    /// An empty pool.
    pub fn new() -> FramePool {
        FramePool::default()
    }

    /// An empty buffer (capacity kept from earlier use).
    pub fn take(&mut self) -> Vec<u8> {
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf
    }

    /// A buffer holding a copy of `data`.
    pub fn copy_of(&mut self, data: &[u8]) -> Vec<u8> {
        let mut buf = self.take();
        buf.extend_from_slice(data);
        buf
    }

    /// Returns a buffer for reuse.
    pub fn put(&mut self, buf: Vec<u8>) {
        if self.spare.len() < POOL_MAX && buf.capacity() > 0 {
            self.spare.push(buf);
        }
    }
}

/// A bounded ring of [`FaultEvent`]s; the oldest are overwritten when full.
#[derive(Debug)]
struct EventLog {
    events: VecDeque<FaultEvent>,
    capacity: usize,
    lost: u64,
}

#[derive(Debug)]
struct Scheduled {
    due: Instant,
    fate: Fate,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct HeldBack {
    remaining: u32,
    deadline: Instant,
    fate: Fate,
    buf: Vec<u8>,
}

/// Dropped frames kept for [`FaultModel::take_dropped`] at most.
const KEEP_DROPPED_MAX: usize = 8;

/// One direction of faults: frames go in with [`push`](Self::push) and come out of
/// [`pop`](Self::pop) when due.
#[derive(Debug)]
pub struct FaultModel {
    config: FaultConfig,
    direction: Direction,
    rng: ChaCha8Rng,
    /// Gilbert-Elliott state.
    in_bad_state: bool,
    /// Frames waiting to be delivered, sorted by due time, FIFO among equal times.
    scheduled: VecDeque<Scheduled>,
    /// Frames held back by the reorder fault.
    held: Vec<HeldBack>,
    /// Departure times of frames still in the rate limiter's queue, ascending.
    serializer: VecDeque<Instant>,
    busy_until: Instant,
    last_due: Instant,
    next_id: u64,
    counters: FaultCounters,
    events: Option<EventLog>,
    /// Dropped frames kept for their bytes (`None`: recycled at once).
    dropped: Option<VecDeque<Vec<u8>>>,
}

/// True when a probability can ever fire (false for zero, negatives and NaN).
fn enabled(p: f64) -> bool {
    p > 0.0
}

fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    // No randomness is drawn for a disabled fault, so a stream is only consumed by the
    // faults that are configured.
    if !enabled(p) {
        false
    } else if p >= 1.0 {
        true
    } else {
        rng.gen::<f64>() < p
    }
}

impl FaultModel {
    /// A model for `direction` drawing from a stream seeded with `seed`.
    pub fn new(config: FaultConfig, direction: Direction, seed: u64) -> FaultModel {
        FaultModel {
            config,
            direction,
            rng: ChaCha8Rng::seed_from_u64(seed),
            in_bad_state: false,
            scheduled: VecDeque::new(),
            held: Vec::new(),
            serializer: VecDeque::new(),
            busy_until: Instant::ZERO,
            last_due: Instant::ZERO,
            next_id: 0,
            counters: FaultCounters::default(),
            events: None,
            dropped: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// Replaces the configuration; frames already held keep their schedule.
    pub fn set_config(&mut self, config: FaultConfig) {
        self.config = config;
    }

    /// The counters.
    pub fn counters(&self) -> FaultCounters {
        self.counters
    }

    /// Counts a frame that went past the model untouched (an offloading link's frame
    /// while no fault is configured, see [`FaultInjector`]): an id, received and passed.
    fn count_bypass(&mut self) {
        self.next_id += 1;
        self.counters.received += 1;
        self.counters.passed += 1;
    }

    /// Frames currently held (delayed, queued or held back).
    pub fn held(&self) -> usize {
        self.scheduled.len() + self.held.len()
    }

    /// Starts recording a fate log of at most `capacity` events (0 turns it off).
    pub fn enable_event_log(&mut self, capacity: usize) {
        self.events = (capacity > 0).then(|| EventLog {
            events: VecDeque::with_capacity(capacity),
            capacity,
            lost: 0,
        });
    }

    /// Keeps the bytes of dropped frames (the last few) for
    /// [`take_dropped`](Self::take_dropped) instead of recycling them at once.
    pub fn set_keep_dropped(&mut self, on: bool) {
        self.dropped = on.then(VecDeque::new);
    }

    /// The oldest dropped frame kept, in drop order (with
    /// [`set_keep_dropped`](Self::set_keep_dropped); at most 8 are kept, so take them
    /// after every push). Return the buffer to a pool when done.
    pub fn take_dropped(&mut self) -> Option<Vec<u8>> {
        self.dropped.as_mut()?.pop_front()
    }

    /// The oldest unread fate-log event.
    pub fn poll_event(&mut self) -> Option<FaultEvent> {
        self.events.as_mut()?.events.pop_front()
    }

    /// Instant of the oldest unread event, if any.
    fn peek_event_at(&self) -> Option<Instant> {
        Some(self.events.as_ref()?.events.front()?.at)
    }

    /// Events overwritten before they were read.
    pub fn events_lost(&self) -> u64 {
        self.events.as_ref().map_or(0, |l| l.lost)
    }

    fn log(&mut self, at: Instant, id: u64, len: usize, action: FaultAction) {
        if let Some(log) = self.events.as_mut() {
            if log.events.len() >= log.capacity {
                log.events.pop_front();
                log.lost += 1;
            }
            log.events.push_back(FaultEvent {
                at,
                direction: self.direction,
                frame_id: id,
                action,
                frame_len: len,
            });
        }
    }

    fn drop_frame(
        &mut self,
        now: Instant,
        fate: &mut Fate,
        buf: Vec<u8>,
        why: DropReason,
        pool: &mut FramePool,
    ) {
        let id = fate.id;
        fate.dropped = Some(why);
        match why {
            DropReason::RandomLoss => self.counters.dropped_random += 1,
            DropReason::BurstLoss => self.counters.dropped_burst += 1,
            DropReason::QueueFull => self.counters.dropped_queue_full += 1,
        }
        log::trace!(target: "ustack::link", "fault {:?}: frame {id} dropped ({why:?})", self.direction);
        self.log(now, id, buf.len(), FaultAction::Dropped(why));
        match self.dropped.as_mut() {
            Some(kept) if kept.len() < KEEP_DROPPED_MAX => kept.push_back(buf),
            _ => pool.put(buf),
        }
    }

    /// Takes in one frame at `now` (the buffer is owned by the model from here on; it
    /// comes back through [`pop`](Self::pop) or, if dropped, into `pool`).
    pub fn push(&mut self, now: Instant, buf: Vec<u8>, pool: &mut FramePool) {
        self.push_with_fate(now, buf, pool);
    }

    /// Like [`push`](Self::push), saying what was decided for the frame.
    pub fn push_with_fate(
        &mut self,
        now: Instant,
        mut buf: Vec<u8>,
        pool: &mut FramePool,
    ) -> Pushed {
        let id = self.next_id;
        self.next_id += 1;
        self.counters.received += 1;
        let mut fate = Fate {
            id,
            len: buf.len(),
            ..Fate::default()
        };

        if let Some(ge) = self.config.burst {
            let flip = if self.in_bad_state {
                ge.p_bad_to_good
            } else {
                ge.p_good_to_bad
            };
            if chance(&mut self.rng, flip) {
                self.in_bad_state = !self.in_bad_state;
            }
            let p = if self.in_bad_state {
                ge.loss_in_bad
            } else {
                ge.loss_in_good
            };
            if chance(&mut self.rng, p) {
                self.drop_frame(now, &mut fate, buf, DropReason::BurstLoss, pool);
                return Pushed {
                    frame: fate,
                    copy: None,
                };
            }
        }
        if chance(&mut self.rng, self.config.loss) {
            self.drop_frame(now, &mut fate, buf, DropReason::RandomLoss, pool);
            return Pushed {
                frame: fate,
                copy: None,
            };
        }
        if !buf.is_empty() && chance(&mut self.rng, self.config.corrupt) {
            let start = if buf.len() > self.config.corrupt_offset {
                self.config.corrupt_offset
            } else {
                0
            };
            let offset = self.rng.gen_range(start..buf.len());
            let bits = u32::from(self.config.corrupt_max_bits.clamp(1, 8));
            let k = self.rng.gen_range(1..=bits);
            let mut mask = 0u8;
            while mask.count_ones() < k {
                mask |= 1 << self.rng.gen_range(0..8);
            }
            buf[offset] ^= mask;
            fate.corrupted = Some((offset, mask));
            self.counters.corrupted += 1;
            self.log(now, id, buf.len(), FaultAction::Corrupted { offset, mask });
        }
        if chance(&mut self.rng, self.config.duplicate) {
            let copy = pool.copy_of(&buf);
            self.counters.duplicated += 1;
            self.log(now, id, buf.len(), FaultAction::Duplicated);
            let copy_fate = Fate { copy: true, ..fate };
            Pushed {
                frame: self.schedule(now, fate, buf, pool),
                copy: Some(self.schedule(now, copy_fate, copy, pool)),
            }
        } else {
            Pushed {
                frame: self.schedule(now, fate, buf, pool),
                copy: None,
            }
        }
    }

    /// Copies `frame` into a pooled buffer and pushes it.
    pub fn push_copy(&mut self, now: Instant, frame: &[u8], pool: &mut FramePool) {
        let buf = pool.copy_of(frame);
        self.push(now, buf, pool);
    }

    fn serialization_time(rate_bps: u64, len: usize) -> Duration {
        let bits = (len as u128) * 8 * 1_000_000;
        let micros = bits.div_ceil(u128::from(rate_bps));
        Duration::from_micros(micros.min(u128::from(u64::MAX)) as u64)
    }

    fn schedule(
        &mut self,
        now: Instant,
        mut fate: Fate,
        buf: Vec<u8>,
        pool: &mut FramePool,
    ) -> Fate {
        let id = fate.id;
        if self.held() >= MAX_HELD {
            self.drop_frame(now, &mut fate, buf, DropReason::QueueFull, pool);
            return fate;
        }
        let departure = match self.config.rate_bps {
            Some(rate) if rate > 0 => {
                while self.serializer.front().is_some_and(|&t| t <= now) {
                    self.serializer.pop_front();
                }
                if self.serializer.len() >= self.config.queue_frames {
                    self.drop_frame(now, &mut fate, buf, DropReason::QueueFull, pool);
                    return fate;
                }
                let start = self.busy_until.max(now);
                self.busy_until = start + Self::serialization_time(rate, buf.len());
                self.serializer.push_back(self.busy_until);
                self.busy_until
            }
            _ => now,
        };
        let mut delay = self.config.delay;
        let jitter = self.config.jitter.total_micros();
        if jitter > 0 {
            let j = self.rng.gen_range(0..=jitter.saturating_mul(2));
            delay = Duration::from_micros(
                delay
                    .total_micros()
                    .saturating_add(j)
                    .saturating_sub(jitter),
            );
        }
        // Jitter never reorders: a frame is never due before the one scheduled ahead of it.
        let due = (departure + delay).max(self.last_due);
        self.last_due = due;
        if due > now {
            self.counters.delayed += 1;
            fate.delayed = Some(due - now);
            self.log(now, id, buf.len(), FaultAction::Delayed { by: due - now });
        }
        if self.config.reorder_depth > 0 && chance(&mut self.rng, self.config.reorder) {
            let behind = self.rng.gen_range(1..=self.config.reorder_depth);
            self.counters.reordered += 1;
            fate.reordered = Some(behind);
            self.log(now, id, buf.len(), FaultAction::Reordered { behind });
            self.held.push(HeldBack {
                remaining: behind,
                deadline: due + self.config.reorder_timeout,
                fate,
                buf,
            });
            return fate;
        }
        self.insert(due, fate, buf);
        // Every held-back frame this one passes comes one step closer to release, and is
        // then delivered right after it.
        let mut i = 0;
        while i < self.held.len() {
            self.held[i].remaining -= 1;
            if self.held[i].remaining == 0 {
                let h = self.held.remove(i);
                self.insert(due, h.fate, h.buf);
            } else {
                i += 1;
            }
        }
        fate
    }

    fn insert(&mut self, due: Instant, fate: Fate, buf: Vec<u8>) {
        let entry = Scheduled { due, fate, buf };
        // An entry goes after every other entry due at the same time: FIFO among equals.
        if self.scheduled.back().is_none_or(|b| b.due <= due) {
            self.scheduled.push_back(entry);
        } else {
            let at = self.scheduled.partition_point(|s| s.due <= due);
            self.scheduled.insert(at, entry);
        }
    }

    /// Releases held-back frames whose timeout expired by `now`.
    fn release_expired(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].deadline <= now {
                let h = self.held.remove(i);
                self.insert(h.deadline, h.fate, h.buf);
            } else {
                i += 1;
            }
        }
    }

    /// The next frame due at or before `now`, if any.
    #[must_use]
    pub fn pop(&mut self, now: Instant) -> Option<Vec<u8>> {
        self.pop_with_fate(now).map(|(buf, _)| buf)
    }

    /// Like [`pop`](Self::pop), with what was done to the frame.
    #[must_use]
    pub fn pop_with_fate(&mut self, now: Instant) -> Option<(Vec<u8>, Fate)> {
        if !self.held.is_empty() {
            self.release_expired(now);
        }
        if self.scheduled.front()?.due > now {
            return None;
        }
        let s = self.scheduled.pop_front()?;
        self.counters.passed += 1;
        self.log(now, s.fate.id, s.buf.len(), FaultAction::Delivered);
        Some((s.buf, s.fate))
    }

    /// The earliest instant at which [`pop`](Self::pop) will return a frame.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let next = self.scheduled.front().map(|s| s.due);
        let held = self.held.iter().map(|h| h.deadline).min();
        match (next, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A [`Link`] wrapper that injects seeded faults in both directions.
///
/// Frames sent are pushed through the `tx` model and reach the inner link when due;
/// frames from the inner link go through the `rx` model before `recv` returns them.
/// Delayed frames only move when the link is called: drive it at
/// [`poll_timeout`](Link::poll_timeout) (any `recv` or `send` call flushes due `tx` frames).
#[derive(Debug)]
pub struct FaultInjector<L> {
    inner: L,
    seed: u64,
    tx: FaultModel,
    rx: FaultModel,
    pool: FramePool,
    max_frame_len: usize,
    reports: Option<Reports>,
    /// The last received frame came straight from the inner link (see `bypass`).
    rx_bypassed: bool,
}

/// Fault reports waiting for [`Link::poll_fault_report`], with the bytes of dropped
/// frames; bounded, the oldest are discarded first.
#[derive(Debug)]
struct Reports {
    queue: VecDeque<(FaultEvent, Option<Vec<u8>>)>,
    capacity: usize,
    lost: u64,
}

impl<L: Link> FaultInjector<L> {
    /// Wraps `inner`; `seed` determines every fault (tx and rx draw from separate streams).
    pub fn new(inner: L, faults: Faults, seed: u64) -> FaultInjector<L> {
        FaultInjector {
            inner,
            seed,
            tx: FaultModel::new(faults.tx, Direction::Tx, derive_seed(seed, 1)),
            rx: FaultModel::new(faults.rx, Direction::Rx, derive_seed(seed, 2)),
            pool: FramePool::new(),
            max_frame_len: DEFAULT_FRAME_LEN,
            reports: None,
            rx_bypassed: false,
        }
    }

    /// Whether frames go straight through, metadata and all: only over an offloading
    /// inner link, while no fault is configured in either direction and nothing is
    /// held. Then the injector forwards [`Link::caps`], [`Link::rx_meta`] and
    /// [`Link::send_meta`], so a transparent injector (every host has one) does not
    /// turn offloads off or copy 64 KB super-frames. With faults on, the injector
    /// reports no capability and works on plain frames: it completes the partial
    /// checksums of what it receives, and takes super-frames as single frames.
    fn bypass(&self) -> bool {
        self.rx.config().is_transparent()
            && self.tx.config().is_transparent()
            && self.rx.held() == 0
            && self.tx.held() == 0
            && self.inner.caps() != super::LinkCaps::default()
    }

    /// Starts keeping reports of every fault for [`Link::poll_fault_report`] (at most
    /// `capacity` unread; 0 turns them off), so a recorder wrapped around this injector
    /// (`PcapNgLink`) can show what was done to each frame.
    pub fn enable_reports(&mut self, capacity: usize) {
        self.reports = (capacity > 0).then(|| Reports {
            queue: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
            lost: 0,
        });
        self.tx.set_keep_dropped(capacity > 0);
        self.rx.set_keep_dropped(capacity > 0);
    }

    /// Reports discarded unread because the queue was full.
    pub fn reports_lost(&self) -> u64 {
        self.reports.as_ref().map_or(0, |r| r.lost)
    }

    /// Queues one report per action in `fate` (`with_corruption: false` leaves out a
    /// corruption already reported for the original of a copy).
    fn report(&mut self, now: Instant, direction: Direction, fate: Fate, with_corruption: bool) {
        let Some(reports) = self.reports.as_mut() else {
            return;
        };
        let model = match direction {
            Direction::Rx => &mut self.rx,
            Direction::Tx => &mut self.tx,
        };
        for action in fate.actions() {
            if !with_corruption && matches!(action, FaultAction::Corrupted { .. }) {
                continue;
            }
            let bytes = match action {
                FaultAction::Dropped(_) => model.take_dropped(),
                _ => None,
            };
            if reports.queue.len() >= reports.capacity {
                if let Some((_, Some(b))) = reports.queue.pop_front() {
                    self.pool.put(b);
                }
                reports.lost += 1;
            }
            let event = FaultEvent {
                at: now,
                direction,
                frame_id: fate.id,
                action,
                frame_len: fate.len,
            };
            reports.queue.push_back((event, bytes));
        }
    }

    /// Largest frame read from the inner link (default [`DEFAULT_FRAME_LEN`]).
    pub fn set_max_frame_len(&mut self, len: usize) {
        self.max_frame_len = len;
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The model of one direction.
    pub fn model(&self, direction: Direction) -> &FaultModel {
        match direction {
            Direction::Rx => &self.rx,
            Direction::Tx => &self.tx,
        }
    }

    /// The model of one direction, to reconfigure it.
    pub fn model_mut(&mut self, direction: Direction) -> &mut FaultModel {
        match direction {
            Direction::Rx => &mut self.rx,
            Direction::Tx => &mut self.tx,
        }
    }

    /// Counters of one direction.
    pub fn counters(&self, direction: Direction) -> FaultCounters {
        self.model(direction).counters()
    }

    /// Records a fate log of at most `capacity` events per direction (0 turns it off).
    pub fn enable_event_log(&mut self, capacity: usize) {
        self.tx.enable_event_log(capacity);
        self.rx.enable_event_log(capacity);
    }

    /// The oldest unread fate-log event of either direction.
    pub fn poll_event(&mut self) -> Option<FaultEvent> {
        match (self.tx.peek_event_at(), self.rx.peek_event_at()) {
            (Some(t), Some(r)) if r < t => self.rx.poll_event(),
            (Some(_), _) => self.tx.poll_event(),
            (None, _) => self.rx.poll_event(),
        }
    }

    /// The wrapped link.
    pub fn get_ref(&self) -> &L {
        &self.inner
    }

    /// The wrapped link, mutably.
    pub fn get_mut(&mut self) -> &mut L {
        &mut self.inner
    }

    /// Unwraps the link; frames still held are lost.
    pub fn into_inner(self) -> L {
        self.inner
    }

    /// Reports a tx frame's fate (and its copy's) as soon as it was pushed.
    fn report_pushed_tx(&mut self, now: Instant, pushed: Pushed) {
        self.report(now, Direction::Tx, pushed.frame, true);
        if let Some(copy) = pushed.copy {
            self.report(now, Direction::Tx, copy, false);
        }
    }

    fn flush_tx(&mut self, now: Instant) -> io::Result<()> {
        while let Some(buf) = self.tx.pop(now) {
            let res = self.inner.send(now, &buf);
            self.pool.put(buf);
            res?;
        }
        Ok(())
    }
}

impl<L: Link> Link for FaultInjector<L> {
    /// Flushes due `tx` frames, pulls what the inner link has into the `rx` model, and
    /// returns the next due `rx` frame.
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.flush_tx(now)?;
        self.rx_bypassed = false;
        let caps = self.inner.caps();
        if self.bypass() {
            let n = self.inner.recv(now, buf)?;
            if n.is_some() {
                self.rx.count_bypass();
                self.rx_bypassed = true;
            }
            return Ok(n);
        }
        let max_frame_len = if caps.rx_offload {
            self.max_frame_len.max(super::MAX_OFFLOAD_FRAME_LEN)
        } else {
            self.max_frame_len
        };
        for _ in 0..RX_BATCH {
            let mut frame = self.pool.take();
            frame.resize(max_frame_len, 0);
            match self.inner.recv(now, &mut frame) {
                Ok(Some(n)) => {
                    frame.truncate(n);
                    if caps.rx_offload {
                        // The models move plain frames: finish what the device left
                        // partial, so the stack verifies it like any other.
                        let meta = self.inner.rx_meta();
                        super::offload::complete_checksum(&mut frame, &meta);
                    }
                    let pushed = self.rx.push_with_fate(now, frame, &mut self.pool);
                    if self.reports.is_some() {
                        // Dropped frames are reported now (they will never come out);
                        // the others when they are delivered.
                        for fate in [Some(pushed.frame), pushed.copy].into_iter().flatten() {
                            if fate.dropped.is_some() {
                                self.report(now, Direction::Rx, fate, true);
                            }
                        }
                    }
                }
                Ok(None) => {
                    self.pool.put(frame);
                    break;
                }
                Err(e) => {
                    self.pool.put(frame);
                    return Err(e);
                }
            }
        }
        let Some((frame, fate)) = self.rx.pop_with_fate(now) else {
            return Ok(None);
        };
        self.report(now, Direction::Rx, fate, true);
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        self.pool.put(frame);
        Ok(Some(n))
    }

    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        self.flush_tx(now)?;
        if self.bypass() {
            self.tx.count_bypass();
            return self.inner.send(now, frame);
        }
        let buf = self.pool.copy_of(frame);
        let pushed = self.tx.push_with_fate(now, buf, &mut self.pool);
        self.report_pushed_tx(now, pushed);
        self.flush_tx(now)
    }

    // `rx_dropped` is deliberately not forwarded: the frame the inner link returned
    // last is not the one the stack just dropped (frames are pulled in batches, held,
    // reordered).

    fn caps(&self) -> super::LinkCaps {
        if self.bypass() {
            self.inner.caps()
        } else {
            super::LinkCaps::default()
        }
    }

    fn rx_meta(&self) -> super::FrameMeta {
        if self.rx_bypassed {
            self.inner.rx_meta()
        } else {
            super::FrameMeta::default()
        }
    }

    fn send_meta(&mut self, now: Instant, frame: &[u8], meta: &super::FrameMeta) -> io::Result<()> {
        // Only given metadata while `caps` forwarded the inner link's, i.e. bypassing.
        self.flush_tx(now)?;
        self.tx.count_bypass();
        self.inner.send_meta(now, frame, meta)
    }

    fn poll_fault_report(&mut self, frame: &mut Vec<u8>) -> Option<FaultEvent> {
        let Some(reports) = self.reports.as_mut() else {
            return self.inner.poll_fault_report(frame);
        };
        let Some((event, bytes)) = reports.queue.pop_front() else {
            return self.inner.poll_fault_report(frame);
        };
        if let Some(b) = bytes {
            frame.clear();
            frame.extend_from_slice(&b);
            self.pool.put(b);
        }
        Some(event)
    }

    fn ring_stats(&mut self) -> Option<super::RingStats> {
        self.inner.ring_stats()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [
            self.inner.poll_timeout(),
            self.tx.poll_timeout(),
            self.rx.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::MemoryLink;

    const SEED: u64 = 0x5eed_0001;

    fn frame(i: u32, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len.max(4)];
        f[..4].copy_from_slice(&i.to_be_bytes());
        f
    }

    fn id_of(f: &[u8]) -> u32 {
        u32::from_be_bytes(f[..4].try_into().unwrap())
    }

    /// Pushes `n` numbered frames of `len` bytes at `now` and drains what is due then.
    fn run(model: &mut FaultModel, n: u32, len: usize) -> Vec<Vec<u8>> {
        let mut pool = FramePool::new();
        let mut out = Vec::new();
        for i in 0..n {
            model.push(Instant::ZERO, frame(i, len), &mut pool);
            while let Some(f) = model.pop(Instant::ZERO) {
                out.push(f);
            }
        }
        // Release anything held back by reordering.
        let mut now = Instant::ZERO;
        while let Some(t) = model.poll_timeout() {
            now = now.max(t);
            while let Some(f) = model.pop(now) {
                out.push(f);
            }
        }
        out
    }

    #[test]
    fn transparent_config_passes_everything_in_order_at_once() {
        let mut m = FaultModel::new(FaultConfig::none(), Direction::Tx, SEED);
        let out = run(&mut m, 100, 60);
        assert_eq!(
            out.iter().map(|f| id_of(f)).collect::<Vec<_>>(),
            (0..100).collect::<Vec<_>>()
        );
        assert_eq!(m.counters().passed, 100);
        assert_eq!(m.counters().dropped(), 0);
        assert_eq!(m.poll_timeout(), None);
        assert!(FaultConfig::none().is_transparent());
    }

    #[test]
    fn random_loss_rate_is_within_statistical_bounds() {
        let cfg = FaultConfig {
            loss: 0.1,
            ..FaultConfig::none()
        };
        let mut m = FaultModel::new(cfg, Direction::Rx, SEED);
        let out = run(&mut m, 10_000, 60);
        let c = m.counters();
        // Binomial(10000, 0.1): sd = 30; allow 5 sd.
        assert!((850..=1150).contains(&c.dropped_random), "{c:?}");
        assert_eq!(out.len() as u64, 10_000 - c.dropped_random);
        assert_eq!(c.passed, out.len() as u64);
        // Survivors stay in order.
        assert!(out.windows(2).all(|w| id_of(&w[0]) < id_of(&w[1])));
    }

    #[test]
    fn duplication_delivers_identical_copies() {
        let cfg = FaultConfig {
            duplicate: 0.2,
            ..FaultConfig::none()
        };
        let mut m = FaultModel::new(cfg, Direction::Tx, SEED);
        let out = run(&mut m, 10_000, 60);
        let c = m.counters();
        assert!((1800..=2200).contains(&c.duplicated), "{c:?}");
        assert_eq!(out.len() as u64, 10_000 + c.duplicated);
        let dups = out.windows(2).filter(|w| w[0] == w[1]).count() as u64;
        assert_eq!(dups, c.duplicated);
    }

    #[test]
    fn reordering_holds_frames_back_by_at_most_depth_and_loses_none() {
        let cfg = FaultConfig {
            reorder: 0.1,
            reorder_depth: 3,
            ..FaultConfig::none()
        };
        let mut m = FaultModel::new(cfg, Direction::Tx, SEED);
        let out = run(&mut m, 10_000, 60);
        let c = m.counters();
        assert!((850..=1150).contains(&c.reordered), "{c:?}");
        let ids: Vec<u32> = out.iter().map(|f| id_of(f)).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..10_000).collect::<Vec<_>>(),
            "nothing lost or duplicated"
        );
        let inversions = ids.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(inversions > 500, "reordering observed: {inversions}");
        // A held frame is passed by at most `depth` frames that were not themselves held,
        // so with overlapping holds its displacement stays small.
        for (pos, &id) in ids.iter().enumerate() {
            assert!(pos as i64 - i64::from(id) <= 12, "frame {id} at {pos}");
        }
    }

    #[test]
    fn held_back_frame_is_released_by_timeout_when_nothing_follows() {
        let cfg = FaultConfig {
            reorder: 1.0,
            reorder_depth: 2,
            reorder_timeout: Duration::from_millis(5),
            ..FaultConfig::none()
        };
        let mut m = FaultModel::new(cfg, Direction::Tx, SEED);
        let mut pool = FramePool::new();
        m.push(Instant::ZERO, frame(7, 60), &mut pool);
        assert!(m.pop(Instant::ZERO).is_none());
        assert_eq!(m.poll_timeout(), Some(Instant::from_millis(5)));
        assert!(m.pop(Instant::from_micros(4999)).is_none());
        assert_eq!(id_of(&m.pop(Instant::from_millis(5)).unwrap()), 7);
        assert_eq!(m.poll_timeout(), None);
    }

    #[test]
    fn corruption_flips_bits_in_one_byte_past_the_ethernet_header() {
        let cfg = FaultConfig {
            corrupt: 1.0,
            corrupt_max_bits: 3,
            ..FaultConfig::none()
        };
        let mut m = FaultModel::new(cfg, Direction::Rx, SEED);
        m.enable_event_log(16);
        let mut pool = FramePool::new();
        let mut seen_bits = [false; 4];
        for i in 0..200 {
            let orig = vec![0u8; 60];
            m.push(Instant::ZERO, orig.clone(), &mut pool);
            let got = m.pop(Instant::ZERO).unwrap();
            let diff: Vec<usize> = (0..60).filter(|&j| got[j] != orig[j]).collect();
            assert_eq!(diff.len(), 1, "frame {i}: exactly one byte changed");
            assert!(diff[0] >= 14);
            let bits = (got[diff[0]] ^ orig[diff[0]]).count_ones() as usize;
            assert!((1..=3).contains(&bits));
            seen_bits[bits] = true;
            match m.poll_event().unwrap().action {
                FaultAction::Corrupted { offset, mask } => {
                    assert_eq!(offset, diff[0]);
                    assert_eq!(mask, got[offset]);
                }
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(m.poll_event().unwrap().action, FaultAction::Delivered);
        }
        assert!(seen_bits[1] && seen_bits[2] && seen_bits[3]);
        assert_eq!(m.counters().corrupted, 200);
        // Frames too short for the offset, and empty frames, do not panic.
        m.push(Instant::ZERO, vec![0u8; 3], &mut pool);
        assert_ne!(m.pop(Instant::ZERO).unwrap(), vec![0u8; 3]);
        m.push(Instant::ZERO, Vec::new(), &mut pool);
        assert_eq!(m.pop(Instant::ZERO).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn delay_holds_frames_until_due_and_poll_timeout_says_when() {
        let cfg = FaultConfig {
            delay: Duration::from_millis(20),
            ..FaultConfig::none()
        };
        let mut m = FaultModel::new(cfg, Direction::Tx, SEED);
        let mut pool = FramePool::new();
        m.push(Instant::from_millis(1), frame(1, 60), &mut pool);
        m.push(Instant::from_millis(3), frame(2, 60), &mut pool);
        assert_eq!(m.poll_timeout(), Some(Instant::from_millis(21)));
        assert!(m.pop(Instant::from_millis(20)).is_none());
        assert_eq!(id_of(&m.pop(Instant::from_millis(21)).unwrap()), 1);
        assert!(m.pop(Instant::from_millis(21)).is_none());
        assert_eq!(m.poll_timeout(), Some(Instant::from_millis(23)));
        assert_eq!(id_of(&m.pop(Instant::from_millis(30)).unwrap()), 2);
        assert_eq!(m.poll_timeout(), None);
        assert_eq!(m.counters().delayed, 2);
    }

    #[test]
    fn jitter_spreads_delay_within_bounds_without_reordering() {
        let cfg = FaultConfig {
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(4),
            ..FaultConfig::none()
        };
        let mut m = FaultModel::new(cfg, Direction::Tx, SEED);
        let mut pool = FramePool::new();
        let mut delays = Vec::new();
        for i in 0..1000u32 {
            // One frame every 20 ms, so the no-reorder clamp never kicks in.
            let sent = Instant::from_millis(i64::from(i) * 20);
            m.push(sent, frame(i, 60), &mut pool);
            let due = m.poll_timeout().unwrap();
            assert!(m.pop(due).is_some());
            delays.push((due - sent).total_micros());
        }
        assert!(delays.iter().all(|&d| (6000..=14000).contains(&d)));
        let min = *delays.iter().min().unwrap();
        let max = *delays.iter().max().unwrap();
        assert!(min < 6500 && max > 13500, "spread {min}..{max}");
        // Back to back, jitter must not reorder.
        let out = run(&mut m, 500, 60);
        assert!(out.windows(2).all(|w| id_of(&w[0]) < id_of(&w[1])));
    }

    #[test]
    fn rate_limit_serializes_frames_and_tail_drops_at_a_full_queue() {
        let cfg = FaultConfig {
            rate_bps: Some(8_000_000), // 1000-byte frame = 1 ms
            queue_frames: 3,
            ..FaultConfig::none()
        };
        let mut m = FaultModel::new(cfg, Direction::Tx, SEED);
        let mut pool = FramePool::new();
        for i in 0..5 {
            m.push(Instant::ZERO, frame(i, 1000), &mut pool);
        }
        let c = m.counters();
        assert_eq!(c.dropped_queue_full, 2);
        assert_eq!(m.poll_timeout(), Some(Instant::from_millis(1)));
        assert!(m.pop(Instant::from_micros(999)).is_none());
        assert_eq!(id_of(&m.pop(Instant::from_millis(1)).unwrap()), 0);
        // One slot freed at 1 ms: the next frame queues behind the two still waiting.
        m.push(Instant::from_millis(1), frame(9, 1000), &mut pool);
        m.push(Instant::from_millis(1), frame(10, 1000), &mut pool);
        assert_eq!(m.counters().dropped_queue_full, 3);
        let mut got = Vec::new();
        while let Some(t) = m.poll_timeout() {
            let f = m.pop(t).unwrap();
            got.push((t.total_micros(), id_of(&f)));
        }
        assert_eq!(got, vec![(2000, 1), (3000, 2), (4000, 9)]);
        // Throughput: 100 frames spaced at line rate all pass, 1 ms apart.
        let mut m = FaultModel::new(
            FaultConfig {
                rate_bps: Some(8_000_000),
                queue_frames: 3,
                ..FaultConfig::none()
            },
            Direction::Tx,
            SEED,
        );
        for i in 0..100 {
            m.push(Instant::from_millis(i), frame(i as u32, 1000), &mut pool);
        }
        assert_eq!(m.counters().dropped(), 0);
        assert_eq!(m.held(), 100);
    }

    #[test]
    fn gilbert_elliott_loses_in_bursts_of_mean_length_one_over_p_bad_to_good() {
        let cfg = FaultConfig {
            burst: Some(GilbertElliott::new(0.01, 0.25)),
            ..FaultConfig::none()
        };
        let mut m = FaultModel::new(cfg, Direction::Rx, SEED);
        m.enable_event_log(100_000);
        let mut pool = FramePool::new();
        let n = 50_000u64;
        let mut lost = Vec::with_capacity(n as usize);
        for i in 0..n {
            m.push(Instant::ZERO, frame(i as u32, 60), &mut pool);
            let passed = m.pop(Instant::ZERO).is_some();
            lost.push(!passed);
        }
        let mut bursts = Vec::new();
        let mut run_len = 0;
        for &l in &lost {
            if l {
                run_len += 1;
            } else if run_len > 0 {
                bursts.push(run_len);
                run_len = 0;
            }
        }
        let mean = bursts.iter().sum::<u32>() as f64 / bursts.len() as f64;
        assert!(
            (3.4..=4.6).contains(&mean),
            "mean burst {mean} over {} bursts",
            bursts.len()
        );
        // Stationary loss = p_gb / (p_gb + p_bg) ≈ 3.85%.
        let rate = m.counters().dropped_burst as f64 / n as f64;
        assert!((0.028..=0.05).contains(&rate), "loss rate {rate}");
        assert_eq!(m.counters().dropped_random, 0);
        // Independent loss at the same rate has mean runs near 1.
        let mut indep = FaultModel::new(
            FaultConfig {
                loss: rate,
                ..FaultConfig::none()
            },
            Direction::Rx,
            SEED,
        );
        let out = run(&mut indep, n as u32, 60);
        let gaps = out.windows(2).filter(|w| id_of(&w[1]) - id_of(&w[0]) > 1);
        let indep_mean = (n - out.len() as u64) as f64 / gaps.count().max(1) as f64;
        assert!(indep_mean < 1.2, "independent mean run {indep_mean}");
    }

    #[test]
    fn hostile_configs_do_not_panic() {
        let cfg = FaultConfig {
            loss: f64::NAN,
            duplicate: 7.0,
            reorder: -1.0,
            corrupt: f64::INFINITY,
            corrupt_max_bits: 200,
            corrupt_offset: usize::MAX,
            delay: Duration::MAX,
            jitter: Duration::MAX,
            rate_bps: Some(0),
            queue_frames: 0,
            reorder_depth: 0,
            reorder_timeout: Duration::MAX,
            burst: Some(GilbertElliott {
                p_good_to_bad: f64::NAN,
                p_bad_to_good: 2.0,
                loss_in_bad: -3.0,
                loss_in_good: f64::NEG_INFINITY,
            }),
        };
        let mut m = FaultModel::new(cfg, Direction::Rx, SEED);
        let mut pool = FramePool::new();
        for len in [0, 1, 13, 14, 15, 1514] {
            m.push(
                Instant::from_micros(i64::MAX - 1),
                vec![0xaa; len],
                &mut pool,
            );
        }
        let _ = m.pop(Instant::from_micros(i64::MAX));
        let mut m = FaultModel::new(
            FaultConfig {
                rate_bps: Some(1),
                queue_frames: 0,
                ..FaultConfig::none()
            },
            Direction::Tx,
            SEED,
        );
        m.push(Instant::ZERO, vec![1; 1514], &mut pool);
        assert_eq!(m.counters().dropped_queue_full, 1);
    }

    #[test]
    fn event_log_is_bounded_and_counts_overwrites() {
        let cfg = FaultConfig {
            loss: 0.5,
            ..FaultConfig::none()
        };
        let mut m = FaultModel::new(cfg, Direction::Tx, SEED);
        m.enable_event_log(8);
        let _ = run(&mut m, 100, 60);
        let mut n = 0;
        while let Some(e) = m.poll_event() {
            assert_eq!(e.direction, Direction::Tx);
            assert_eq!(e.frame_len, 60);
            n += 1;
        }
        assert_eq!(n, 8);
        assert_eq!(m.events_lost(), 100 - 8);
    }

    fn exchange(seed: u64) -> (Vec<Vec<u8>>, FaultCounters, FaultCounters) {
        let (a, mut b) = MemoryLink::pair(100_000);
        let cfg = FaultConfig {
            loss: 0.1,
            duplicate: 0.05,
            reorder: 0.05,
            reorder_depth: 3,
            corrupt: 0.05,
            delay: Duration::from_millis(2),
            jitter: Duration::from_millis(1),
            ..FaultConfig::none()
        };
        let mut f = FaultInjector::new(a, Faults::both(cfg), seed);
        let mut buf = [0u8; 1514];
        let mut got = Vec::new();
        for i in 0..2000u32 {
            let now = Instant::from_micros(i64::from(i) * 100);
            f.send(now, &frame(i, 60)).unwrap();
            b.send(now, &frame(i | 0x8000_0000, 60)).unwrap();
            while let Some(n) = f.recv(now, &mut buf).unwrap() {
                got.push(buf[..n].to_vec());
            }
        }
        while let Some(t) = f.poll_timeout() {
            while let Some(n) = f.recv(t, &mut buf).unwrap() {
                got.push(buf[..n].to_vec());
            }
        }
        while let Some(n) = b.recv(Instant::ZERO, &mut buf).unwrap() {
            got.push(buf[..n].to_vec());
        }
        (got, f.counters(Direction::Tx), f.counters(Direction::Rx))
    }

    #[test]
    fn injector_is_deterministic_per_seed_and_directions_are_independent() {
        let (a, atx, arx) = exchange(SEED);
        let (b, btx, brx) = exchange(SEED);
        assert_eq!(a, b);
        assert_eq!((atx, arx), (btx, brx));
        let (c, ctx, _) = exchange(SEED + 1);
        assert_ne!(a, c);
        assert_ne!(atx, ctx);
        // Same config both ways, but separate streams: different fates.
        assert_ne!(atx.dropped_random, arx.dropped_random);
        assert_eq!(atx.received, 2000);
        assert_eq!(arx.received, 2000);
    }

    #[test]
    fn injector_delays_both_directions_through_the_inner_link() {
        let (a, mut b) = MemoryLink::pair(16);
        let faults = Faults {
            tx: FaultConfig {
                delay: Duration::from_millis(5),
                ..FaultConfig::none()
            },
            rx: FaultConfig {
                delay: Duration::from_millis(7),
                ..FaultConfig::none()
            },
        };
        let mut f = FaultInjector::new(a, faults, SEED);
        f.enable_event_log(64);
        let mut buf = [0u8; 64];
        f.send(Instant::ZERO, b"out-frame").unwrap();
        b.send(Instant::ZERO, b"in-frame").unwrap();
        assert_eq!(b.recv(Instant::ZERO, &mut buf).unwrap(), None);
        assert_eq!(f.recv(Instant::from_millis(1), &mut buf).unwrap(), None);
        // tx due at 5 ms, rx (pulled at 1 ms) due at 8 ms.
        assert_eq!(f.poll_timeout(), Some(Instant::from_millis(5)));
        assert_eq!(f.recv(Instant::from_millis(5), &mut buf).unwrap(), None);
        assert_eq!(b.recv(Instant::ZERO, &mut buf).unwrap(), Some(9));
        assert_eq!(&buf[..9], b"out-frame");
        assert_eq!(f.poll_timeout(), Some(Instant::from_millis(8)));
        assert_eq!(f.recv(Instant::from_millis(8), &mut buf).unwrap(), Some(8));
        assert_eq!(&buf[..8], b"in-frame");
        assert_eq!(f.poll_timeout(), None);
        let events: Vec<_> = std::iter::from_fn(|| f.poll_event()).collect();
        assert_eq!(events.len(), 4);
        assert!(events.windows(2).all(|w| w[0].at <= w[1].at));
        assert_eq!(
            events[0].action,
            FaultAction::Delayed {
                by: Duration::from_millis(5)
            }
        );
        assert_eq!(f.counters(Direction::Tx).passed, 1);
        assert_eq!(f.counters(Direction::Rx).delayed, 1);
    }
}
