//! What the host loop hands the code that runs inside it: a [`Round`] after every round
//! of I/O, and the [`Hook`] type for that code. A leaf of the crate: the shared state
//! holds the hooks and runs them in every round, so it imports this module and this
//! module imports nothing of the crate. The host loop's counters ([`DriverStats`]) live
//! here for the same reason: a round hands them to the hooks, with the link's
//! receive-ring counters on request ([`RingProbe`]).

use ustack::iface::Interface;
use ustack::link::{Link, RingStats};
use ustack::socket::tcp::TcpHandle;
use ustack::time::Instant;

/// What the host loop has done, for observability and tests: rounds by thread, waits
/// on the link, wake-ups written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Rounds run by the driver thread.
    pub rounds: u64,
    /// Rounds run by application threads: while leading the link, or for a
    /// non-blocking call that found nothing on an unattended link.
    pub caller_rounds: u64,
    /// Transmit-only flushes by application threads after a call that queued output.
    pub caller_flushes: u64,
    /// Waits in poll(2) on the link by a leading application thread.
    pub leads: u64,
    /// Waits on a condvar by a follower (another thread led, or the link has no fd).
    pub follows: u64,
    /// eventfd writes that woke the driver thread (a takeover of the link, an earlier
    /// timer, `DriverWaker`, stop).
    pub driver_wakeups: u64,
    /// eventfd writes that woke a leader out of poll(2) (another thread made its socket
    /// ready, or closed it).
    pub leader_wakeups: u64,
    /// Sockets the engine reported as possibly changed (`Interface::poll_ready`),
    /// watched or not.
    pub ready_sockets: u64,
    /// Readiness checks of watched descriptions that those reports led to: the only
    /// checks a round makes (it never re-checks every watched socket).
    pub ready_checks: u64,
    /// Stretches of busy polling by blocked callers (SO_BUSY_POLL).
    pub busy_polls: u64,
    /// Zero-timeout poll(2)s of the link made while busy polling.
    pub busy_passes: u64,
    /// Busy polls cut short because the thread was descheduled between two passes
    /// (another thread needed the CPU): the call then sleeps.
    pub busy_preempted: u64,
}

/// What a [`Hook`] is given after every round, under the stack lock.
pub struct Round<'a> {
    /// The interface.
    pub iface: &'a mut Interface,
    /// The round's time.
    pub now: Instant,
    /// What the host loop had done when the hooks started (for observers: `ustack stats`).
    pub driver: DriverStats,
    /// The link's receive-ring counters, read only when asked (for observers).
    pub ring: RingProbe<'a>,
    ready: &'a [TcpHandle],
}

impl<'a> Round<'a> {
    pub(crate) fn new(
        iface: &'a mut Interface,
        now: Instant,
        driver: DriverStats,
        link: Option<&'a mut dyn Link>,
        ready: &'a [TcpHandle],
    ) -> Round<'a> {
        Round {
            iface,
            now,
            driver,
            ring: RingProbe { link },
            ready,
        }
    }

    /// The TCP sockets whose readiness may have changed since the previous round: the
    /// TCP part of what `Interface::poll_ready` returned, plus those the hooks' own
    /// output touched last round (the round drains that queue, so hooks read it here).
    /// A handle may appear twice. Every hook sees every handle; each services its own.
    pub fn ready_tcp(&self) -> &'a [TcpHandle] {
        self.ready
    }
}

/// Reads the link's receive-ring counters for a hook on request ([`Round::ring`]).
/// Not read for every round: asking the device may cost a system call (the kernel's
/// drop count), which a hook pays only when it reports (`ustack stats`).
pub struct RingProbe<'a> {
    /// The link, while the stack has one.
    link: Option<&'a mut dyn Link>,
}

impl RingProbe<'_> {
    /// The counters of the link's receive ring now ([`Link::ring_stats`]); `None` when
    /// the link has no ring (or the stack no longer has a link).
    pub fn stats(&mut self) -> Option<RingStats> {
        self.link.as_mut().and_then(|l| l.ring_stats())
    }
}

/// Application or observer code inside the host loop (an echo service, a trace
/// recorder, a control socket): run after every round of input with the interface
/// and the time, on whichever thread runs the round (the driver, or an application
/// thread leading the link); what it queues is sent before the round ends. It must not
/// block.
pub type Hook = Box<dyn FnMut(&mut Round<'_>) + Send>;
