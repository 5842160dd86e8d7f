//! What the host loop hands the code that runs inside it: a [`Round`] after every round
//! of I/O, and the [`Hook`] type for that code. A leaf of the crate: the shared state
//! holds the hooks and runs them in every round, so it imports this module and this
//! module imports nothing of the crate.

use ustack::iface::Interface;
use ustack::socket::tcp::TcpHandle;
use ustack::time::Instant;

/// What a [`Hook`] is given after every round, under the stack lock.
pub struct Round<'a> {
    /// The interface.
    pub iface: &'a mut Interface,
    /// The round's time.
    pub now: Instant,
    ready: &'a [TcpHandle],
}

impl<'a> Round<'a> {
    pub(crate) fn new(iface: &'a mut Interface, now: Instant, ready: &'a [TcpHandle]) -> Round<'a> {
        Round { iface, now, ready }
    }

    /// The TCP sockets whose readiness may have changed since the previous round: the
    /// TCP part of what `Interface::poll_ready` returned, plus those the hooks' own
    /// output touched last round (the round drains that queue, so hooks read it here).
    /// A handle may appear twice. Every hook sees every handle; each services its own.
    pub fn ready_tcp(&self) -> &'a [TcpHandle] {
        self.ready
    }
}

/// Application or observer code inside the host loop (an echo service, a trace
/// recorder, a control socket): run after every round of input with the interface
/// and the time, on whichever thread runs the round (the driver, or an application
/// thread leading the link); what it queues is sent before the round ends. It must not
/// block.
pub type Hook = Box<dyn FnMut(&mut Round<'_>) + Send>;
