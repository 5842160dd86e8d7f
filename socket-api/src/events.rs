//! Event masks shared by every layer of the crate: [`PollEvents`] (poll(2) and epoll(7)
//! bits, Linux's values) and the key naming an epoll instance.
//!
//! This module is a leaf: the descriptor table, readiness, the driver and the calls all
//! build on it, and it imports nothing from the crate.

use core::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign, Not};

/// A set of poll(2)/epoll(7) events; the bit values are Linux's, shared by both.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PollEvents(u32);

impl PollEvents {
    /// Data can be read (or accepted, or the peer closed, or an error is pending).
    pub const POLLIN: PollEvents = PollEvents(libc::POLLIN as u32);
    /// Urgent data (never reported; present for completeness).
    pub const POLLPRI: PollEvents = PollEvents(libc::POLLPRI as u32);
    /// Data can be written (a connect finished, or the send buffer has room).
    pub const POLLOUT: PollEvents = PollEvents(libc::POLLOUT as u32);
    /// An error is pending (SO_ERROR); always reported, whatever was asked.
    pub const POLLERR: PollEvents = PollEvents(libc::POLLERR as u32);
    /// Hung up: both directions are shut; always reported.
    pub const POLLHUP: PollEvents = PollEvents(libc::POLLHUP as u32);
    /// Not an open descriptor (poll only).
    pub const POLLNVAL: PollEvents = PollEvents(libc::POLLNVAL as u32);
    /// The peer shut down its sending side, or we shut down reading.
    pub const POLLRDHUP: PollEvents = PollEvents(libc::POLLRDHUP as u32);
    /// Epoll name of [`PollEvents::POLLIN`].
    pub const EPOLLIN: PollEvents = PollEvents::POLLIN;
    /// Epoll name of [`PollEvents::POLLOUT`].
    pub const EPOLLOUT: PollEvents = PollEvents::POLLOUT;
    /// Epoll name of [`PollEvents::POLLERR`].
    pub const EPOLLERR: PollEvents = PollEvents::POLLERR;
    /// Epoll name of [`PollEvents::POLLHUP`].
    pub const EPOLLHUP: PollEvents = PollEvents::POLLHUP;
    /// Epoll name of [`PollEvents::POLLRDHUP`].
    pub const EPOLLRDHUP: PollEvents = PollEvents::POLLRDHUP;
    /// Report once, then disable the descriptor until `EpollOp::Mod` re-arms it.
    pub const EPOLLONESHOT: PollEvents = PollEvents(libc::EPOLLONESHOT as u32);
    /// Edge-triggered (not supported: `ctl` returns EINVAL).
    pub const EPOLLET: PollEvents = PollEvents(libc::EPOLLET as u32);

    /// No events.
    pub const fn empty() -> PollEvents {
        PollEvents(0)
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// From raw bits (unknown bits are kept and ignored).
    pub const fn from_bits(bits: u32) -> PollEvents {
        PollEvents(bits)
    }

    /// No bit set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Every bit of `other` is set.
    pub const fn contains(self, other: PollEvents) -> bool {
        self.0 & other.0 == other.0
    }

    /// Some bit of `other` is set.
    pub const fn intersects(self, other: PollEvents) -> bool {
        self.0 & other.0 != 0
    }
}

impl core::fmt::Debug for PollEvents {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        const NAMES: [(PollEvents, &str); 9] = [
            (PollEvents::POLLIN, "IN"),
            (PollEvents::POLLPRI, "PRI"),
            (PollEvents::POLLOUT, "OUT"),
            (PollEvents::POLLERR, "ERR"),
            (PollEvents::POLLHUP, "HUP"),
            (PollEvents::POLLNVAL, "NVAL"),
            (PollEvents::POLLRDHUP, "RDHUP"),
            (PollEvents::EPOLLONESHOT, "ONESHOT"),
            (PollEvents::EPOLLET, "ET"),
        ];
        let names: Vec<&str> = NAMES
            .iter()
            .filter(|(b, _)| self.contains(*b))
            .map(|(_, n)| *n)
            .collect();
        write!(f, "PollEvents({})", names.join("|"))
    }
}

impl BitOr for PollEvents {
    type Output = PollEvents;
    fn bitor(self, rhs: PollEvents) -> PollEvents {
        PollEvents(self.0 | rhs.0)
    }
}

impl BitOrAssign for PollEvents {
    fn bitor_assign(&mut self, rhs: PollEvents) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for PollEvents {
    type Output = PollEvents;
    fn bitand(self, rhs: PollEvents) -> PollEvents {
        PollEvents(self.0 & rhs.0)
    }
}

impl BitAndAssign for PollEvents {
    fn bitand_assign(&mut self, rhs: PollEvents) {
        self.0 &= rhs.0;
    }
}

impl Not for PollEvents {
    type Output = PollEvents;
    fn not(self) -> PollEvents {
        PollEvents(!self.0)
    }
}

/// Reported whatever the caller asked for (poll(2): POLLERR and POLLHUP).
pub(crate) const ALWAYS: PollEvents = PollEvents(libc::POLLERR as u32 | libc::POLLHUP as u32);

/// Identifies an epoll instance within its stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct EpollKey(pub u64);

/// A readiness callback (`NetStack::set_ready_notifier`, in `crate::notifier`).
pub type ReadyNotifier = std::sync::Arc<dyn Fn(PollEvents) + Send + Sync>;

/// A [`ReadyNotifier`] kept on an open description.
#[derive(Clone)]
pub(crate) struct Notifier(pub ReadyNotifier);

impl core::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Notifier")
    }
}
