//! The driver: THE host loop. Every stack — the socket API, the `ustack` commands, the
//! kernel tests — runs its link through it; who runs it is decided per wait.
//!
//! The `Interface`, the link, the descriptor table and the hooks sit behind one `Mutex`
//! (`State`). All I/O happens in *rounds* (`State::round`), under that lock: what calls
//! queued goes out, every ready frame comes in (`Interface::poll_link`: frames, due
//! timers, pending output), then `Interface::poll_ready` names every socket (TCP, UDP
//! or raw) whose readiness may have changed and only the *watched* ones among them (a
//! blocked thread or an epoll registration, found through a map from engine socket to
//! description) are re-checked and their waiters signalled; then the [`Hook`]s run with
//! the TCP sockets named and what they queued goes out. Nothing re-parses frames, and
//! no round re-checks every watched socket. Three kinds of thread run rounds:
//!
//! 1. **The calling thread, inline.** A call that queued output or changed timers
//!    (send, a receive that opened the window, connect, accept, shutdown, close, UDP
//!    sendto, ...) flushes before it returns (the transmit half of a round, no read):
//!    its frames reach the device from its own thread, with no eventfd write and no
//!    other thread scheduled. A non-blocking call that finds nothing on an unattended
//!    link runs a whole round.
//! 2. **A leader.** A call that must block (recv, accept, connect, send waiting for
//!    room, poll, epoll wait) on a link with an fd, when no other thread leads, leads:
//!    it registers as a waiter like any other, then waits in poll(2) on the link's fd
//!    and the leader eventfd, at most until its own timeout or the stack's next
//!    deadline, runs a round, and re-checks its call; it stops leading when its call
//!    returns. Other blocked threads follow: they sleep on their condvars and whoever
//!    runs a round signals them. A round run by another thread that makes the leader's
//!    socket ready (or a close of it) writes the leader eventfd.
//!    A blocked receive, accept or poll on a socket with SO_BUSY_POLL first *busy-polls*
//!    as leader (`state::busy_poll`): zero-timeout polls of the same two fds with a
//!    sched_yield(2) between them, a round when something comes, for up to its budget
//!    per call; it stops early once it finds it was switched out (something else
//!    needed the CPU), then sleeps as above.
//! 3. **The driver thread**, one per stack, for everything nobody calls for: in-driver
//!    hooks, epoll sets nobody waits on, timers when the application is busy elsewhere.
//!
//! The driver and a leader never both poll the link's fd, so one frame wakes one
//! thread. The driver is *on the link* (poll(2) on the link's fd and its waker, until
//! the next deadline) unless it is *parked*: while a thread leads, or within
//! [`CALLER_GRACE`] of an application thread's last round with nobody following. Parked,
//! it polls only its waker and wakes once per grace period to look: it runs a round
//! then only if the callers went quiet (the link and its timers are theirs meanwhile).
//! A look that finds a caller holding the lock does not queue for it (the callers are
//! not quiet, and the caller would then wait for the look): it looks again a grace
//! period later, and only after `BUSY_LOOKS` such looks in a row waits for the lock.
//! A stack with a readiness notifier set (`crate::notifier`: threads that wait in the
//! kernel, as the preload library's do, and never lead) is not parked on a grace.
//! So:
//!
//! - a thread that becomes leader while the driver is on the link writes the driver's
//!   eventfd once (a takeover); while callers keep calling, the driver stays parked and
//!   no further eventfd is written or read;
//! - a leader whose call returns leaves without a write: the next blocking call leads
//!   again, and if none comes the driver takes the link back within [`CALLER_GRACE`] —
//!   the bound on how long a frame can wait unseen, e.g. for a hook, an epoll set
//!   nobody waits on, a connection no thread is accepting, or a follower left behind
//!   (with followers the driver goes back on the link at its next look, recent callers
//!   or not; so a server whose acceptor stays blocked costs at most one takeover per
//!   grace period, not one per I/O);
//! - a call that arms a timer earlier than what the thread waiting on the link (the
//!   driver on it, or a leader in poll(2)) will wake for wakes that thread; between
//!   calls, with nobody leading, a due timer runs in the next blocking call's round (a
//!   leader polls with the deadline as timeout) or, callers quiet, within
//!   [`CALLER_GRACE`];
//! - a non-blocking call that finds nothing, while the link is unattended (parked
//!   driver, no leader), runs a round first, so frames that arrived are seen.
//!
//! Hooks run in every round, on whichever thread runs it, under the stack lock: a
//! caller's round serves them like the driver's; with callers quiet the driver runs
//! them, at the latest one grace period after the last caller round. A stack whose only
//! applications are hooks is driven by the driver alone.
//!
//! Links without a file descriptor (a plain `MemoryLink`, or a custom `Box<dyn Link>`)
//! cannot wake poll(2): the driver polls them every [`POLL_TICK`] and stays on them,
//! callers run inline rounds but never lead. A pair built with
//! [`Builder::build_pair`](crate::Builder::build_pair) has an eventfd per end that the
//! other end's sends write, so it is a link with an fd.
//!
//! A panic in a round kills the stack, whichever thread ran it: blocking calls fail
//! with EIO. `now` is the time since the stack started ([`Clock`](crate::link::Clock)).

pub use crate::hook::{Hook, Round};
pub use crate::state::CALLER_GRACE;

use crate::state::{close_sock, sys, By, Shared};
use std::sync::Arc;
use std::time::Duration;

/// Longest wait of the driver on a link that cannot wake it (no fd).
pub const POLL_TICK: Duration = Duration::from_millis(1);

/// The driver thread (see the module docs): the loop, then the shutdown.
pub(crate) fn run(shared: Arc<Shared>, tick: Option<Duration>) {
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drive(&shared, tick)));
    let mut st = shared.lock();
    if res.is_err() {
        log::error!(target: "ustack::socket", "driver thread panicked: the stack is dead, blocking calls fail with EIO");
        st.die("driver thread panicked");
    }
    if st.dead {
        // The engine may be inconsistent: close nothing, just let the device go.
        let mut io = st.io.take();
        if let Some(io) = io.as_mut() {
            st.keep_final_link_stats(io);
        }
        drop(st);
        drop(io);
        return;
    }
    // Stopping: nobody holds a descriptor any more. Close every socket, then flush
    // whatever that queued (FINs, RSTs) and what arrived meanwhile, once.
    let files = st.table.drain_files();
    st.forget_all_sockets();
    let n = files.len();
    let now = shared.now();
    for f in files {
        close_sock(&mut st, f.sock, now);
    }
    st.round(now, By::Driver);
    log::info!(target: "ustack::socket", "stack {} down ({n} sockets closed)", st.iface.ip_addr());
    // The link goes with the thread: the device closes and a recorder flushes.
    let mut io = st.io.take();
    if let Some(io) = io.as_mut() {
        st.keep_final_link_stats(io);
    }
    drop(st);
    drop(io);
}

/// Busy looks in a row a parked driver skips before it waits for the lock.
const BUSY_LOOKS: u32 = 3;

/// The loop proper; returns when the stack is stopping or dead.
fn drive(shared: &Shared, tick: Option<Duration>) {
    let wake_fd = shared.waker.fd();
    let mut st = shared.lock();
    loop {
        if st.stopping || st.dead {
            return;
        }
        let now = shared.now();
        let (on_link, timeout) = st.driver_plan(now, tick);
        let has_fd = st.io.as_ref().is_some_and(|io| io.fd.is_some());
        let link_fd = st.io.as_ref().and_then(|io| io.fd).filter(|_| on_link);
        // Parked, the driver only looks whether the callers went quiet (`driver_woke`).
        let parked = has_fd && !on_link && tick.is_none();
        drop(st);
        let (mut timeout, mut busy) = (timeout, 0);
        let ready;
        st = loop {
            let r = match sys::poll2([link_fd.unwrap_or(-1), wake_fd], timeout) {
                Ok(r) => r,
                Err(e) => {
                    log::error!(target: "ustack::socket", "driver poll(2) failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    [false, false]
                }
            };
            if parked && !r[1] && busy < BUSY_LOOKS {
                // A look that finds a caller holding the lock: the callers are not
                // quiet. Queueing for the lock would only make that caller wait for
                // the look (and, on a loaded machine, for the driver to be scheduled
                // again), so look again a grace period later; after BUSY_LOOKS such
                // looks in a row it waits for the lock, so a thread that only sends
                // leaves input and timers unattended for at most BUSY_LOOKS + 1 grace
                // periods.
                if let Some(g) = shared.try_lock() {
                    ready = r;
                    break g;
                }
                busy += 1;
                timeout = Some(CALLER_GRACE);
                continue;
            }
            ready = r;
            break shared.lock();
        };
        if ready[1] {
            shared.waker.drain();
        }
        let now = shared.now();
        if st.driver_woke(now, link_fd.is_some() || tick.is_some(), ready[1]) {
            st.round(now, By::Driver);
        }
    }
}
