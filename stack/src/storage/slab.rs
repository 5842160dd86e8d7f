//! A slab with generation-checked keys: the one socket table of every layer.
//!
//! A [`SlabKey`] is an index plus the generation the slot had when the value went in.
//! Removing a value bumps its slot's generation, so a key kept after removal never
//! reaches the value that later reuses the slot: it is simply stale (`None`). Freed
//! slots are reused last-in first-out, which keeps the table dense.
//!
//! Layers that keep raw slot indices in their own queues (timers, dirty lists) may use
//! [`Slab::get_at_mut`] and check the generation themselves with [`Slab::key_at`].
//!
//! The `slab` crate has no generations, and `slotmap` keys cannot be split into an index
//! that a timer heap stores beside its own tag; this type is the small wrapper STYLE §8
//! asks for.

use core::fmt;

/// Identifies one value in a [`Slab`]: a slot index and that slot's generation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlabKey {
    index: u32,
    gen: u32,
}

impl SlabKey {
    /// The slot index (unique among live values, reused after removal).
    pub fn index(self) -> u32 {
        self.index
    }

    /// The slot's generation when the value was inserted.
    pub fn generation(self) -> u32 {
        self.gen
    }
}

impl fmt::Debug for SlabKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}v{}", self.index, self.gen)
    }
}

impl fmt::Display for SlabKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.gen)
    }
}

#[derive(Debug, Clone)]
struct Entry<T> {
    gen: u32,
    value: Option<T>,
}

/// Values addressed by generation-checked [`SlabKey`]s.
#[derive(Debug, Clone)]
pub struct Slab<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    len: usize,
    /// Generation of slots created from now on: above every generation a slot dropped
    /// by [`shrink`](Slab::shrink) ever had, so keys into dropped slots stay stale.
    fresh_gen: u32,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab::new()
    }
}

impl<T> Slab<T> {
    /// An empty slab.
    pub const fn new() -> Slab<T> {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
            fresh_gen: 0,
        }
    }

    /// Number of live values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no value is live.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of slots, live or free (the bound of [`key_at`](Self::key_at)).
    pub fn slots(&self) -> usize {
        self.entries.len()
    }

    /// Stores `value` and returns its key.
    pub fn insert(&mut self, value: T) -> SlabKey {
        self.insert_with(|_| value)
    }

    /// Stores the value `make` builds from its own key (for values that carry it).
    pub fn insert_with(&mut self, make: impl FnOnce(SlabKey) -> T) -> SlabKey {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = u32::try_from(self.entries.len()).expect("slab holds under 2^32 values");
                self.entries.push(Entry {
                    gen: self.fresh_gen,
                    value: None,
                });
                i
            }
        };
        let entry = &mut self.entries[index as usize];
        let key = SlabKey {
            index,
            gen: entry.gen,
        };
        entry.value = Some(make(key));
        self.len += 1;
        key
    }

    /// The value under `key`, unless it was removed.
    pub fn get(&self, key: SlabKey) -> Option<&T> {
        let e = self.entries.get(key.index as usize)?;
        if e.gen != key.gen {
            return None;
        }
        e.value.as_ref()
    }

    /// The value under `key`, mutably, unless it was removed.
    pub fn get_mut(&mut self, key: SlabKey) -> Option<&mut T> {
        let e = self.entries.get_mut(key.index as usize)?;
        if e.gen != key.gen {
            return None;
        }
        e.value.as_mut()
    }

    /// Removes and returns the value under `key`; the key (and every copy of it) goes
    /// stale.
    pub fn remove(&mut self, key: SlabKey) -> Option<T> {
        let e = self.entries.get_mut(key.index as usize)?;
        if e.gen != key.gen {
            return None;
        }
        let value = e.value.take()?;
        e.gen = e.gen.wrapping_add(1);
        self.free.push(key.index);
        self.len -= 1;
        Some(value)
    }

    /// Gives back memory after many removals: drops the free slots at the end of the
    /// table and the spare capacity of its vectors. Live keys stay valid; keys into
    /// dropped slots stay stale (a slot created later at that index starts at a newer
    /// generation). Returns the number of slots dropped.
    pub fn shrink(&mut self) -> usize {
        let before = self.entries.len();
        while let Some(e) = self.entries.last() {
            if e.value.is_some() {
                break;
            }
            self.fresh_gen = self.fresh_gen.max(e.gen.wrapping_add(1));
            self.entries.pop();
        }
        let len = self.entries.len() as u32;
        if self.entries.len() < before {
            self.free.retain(|&i| i < len);
        }
        if self.entries.capacity() > 2 * self.entries.len() {
            self.entries.shrink_to_fit();
        }
        if self.free.capacity() > 2 * self.free.len() {
            self.free.shrink_to_fit();
        }
        before - self.entries.len()
    }

    /// The key of the live value in slot `index`, if any.
    pub fn key_at(&self, index: u32) -> Option<SlabKey> {
        let e = self.entries.get(index as usize)?;
        e.value.as_ref().map(|_| SlabKey { index, gen: e.gen })
    }

    /// The live value in slot `index`, whatever its generation.
    pub fn get_at(&self, index: u32) -> Option<&T> {
        self.entries.get(index as usize)?.value.as_ref()
    }

    /// The live value in slot `index`, mutably, whatever its generation.
    pub fn get_at_mut(&mut self, index: u32) -> Option<&mut T> {
        self.entries.get_mut(index as usize)?.value.as_mut()
    }

    /// Every live value with its key, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (SlabKey, &T)> + '_ {
        self.entries.iter().enumerate().filter_map(|(i, e)| {
            e.value.as_ref().map(|v| {
                (
                    SlabKey {
                        index: i as u32,
                        gen: e.gen,
                    },
                    v,
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_key_never_reaches_the_value_reusing_its_slot() {
        let mut s = Slab::new();
        let a = s.insert("a");
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_eq!(a.index(), b.index(), "the slot is reused");
        assert_ne!(a, b);
        assert_eq!(s.get(a), None);
        assert_eq!(s.get_mut(a), None);
        assert_eq!(s.remove(a), None);
        assert_eq!(s.get(b), Some(&"b"));
    }

    #[test]
    fn len_iter_and_key_at_agree() {
        let mut s = Slab::new();
        let keys: Vec<_> = (0..5).map(|i| s.insert(i)).collect();
        s.remove(keys[1]);
        s.remove(keys[3]);
        assert_eq!(s.len(), 3);
        let live: Vec<_> = s.iter().map(|(k, v)| (k, *v)).collect();
        assert_eq!(live, vec![(keys[0], 0), (keys[2], 2), (keys[4], 4)]);
        assert_eq!(s.key_at(2), Some(keys[2]));
        assert_eq!(s.key_at(1), None);
        assert_eq!(s.key_at(99), None);
    }

    #[test]
    fn shrink_drops_trailing_free_slots_and_keeps_old_keys_stale() {
        let mut s = Slab::new();
        let keys: Vec<_> = (0..100).map(|i| s.insert(i)).collect();
        for k in &keys[1..] {
            s.remove(*k);
        }
        // A slot used twice: its generation must not come back.
        let again = s.insert(1000);
        s.remove(again);
        assert_eq!(s.shrink(), 99);
        assert_eq!(s.slots(), 1);
        assert_eq!(s.get(keys[0]), Some(&0));
        let fresh: Vec<_> = (0..100).map(|i| s.insert(i)).collect();
        for old in keys[1..].iter().chain([&again]) {
            assert_eq!(s.get(*old), None, "stale {old:?} reaches a new value");
        }
        assert!(fresh.iter().all(|k| s.get(*k).is_some()));
        assert_eq!(s.shrink(), 0, "nothing free at the end");
    }

    #[test]
    fn insert_with_sees_its_own_key() {
        let mut s = Slab::new();
        let k = s.insert_with(|k| k);
        assert_eq!(s.get(k), Some(&k));
    }
}
