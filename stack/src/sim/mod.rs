//! Deterministic network simulation: interfaces joined by seeded, faulty links under a
//! virtual clock. (Placeholder: being written.)
