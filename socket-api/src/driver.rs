//! The driver: THE host loop. Every stack — the socket API, the `ustack` commands, the
//! kernel tests — runs its link on one of these threads.
//!
//! One thread per stack owns the link; the `Interface` and the descriptor table sit
//! behind one `Mutex` shared with the application threads (STYLE §3). The loop:
//!
//! 1. compute the timeout: the interface's and the link's next deadline;
//! 2. wait with poll(2) on {the link's fd, if it has one; the wake-up eventfd};
//! 3. lock; `Interface::poll_link(now, link)` (every ready frame in, due timers, every
//!    pending frame out); drain `Interface::poll_ready`, which names every socket (TCP,
//!    UDP or raw) whose readiness may have changed, and re-check only those of them
//!    that are *watched* (a blocked thread or an epoll registration), found through a
//!    map from engine socket to description; run the [`Hook`]s (in-driver applications
//!    and observers) with the TCP sockets named, send what they queued, and re-check
//!    what that touched; unlock. Nothing re-parses frames, and no round re-checks every
//!    watched socket.
//!
//! Application calls run under the same lock and, after anything that queues output or
//! changes state, write the eventfd so the driver runs at once (mio's `Waker`).
//!
//! Links without a file descriptor (a plain `MemoryLink`, or a custom `Box<dyn Link>`)
//! cannot wake poll(2), so for them the wait is bounded by [`POLL_TICK`]. A pair built
//! with [`Builder::build_pair`](crate::Builder::build_pair) has no such tick: each
//! end's sends write the other stack's eventfd.
//!
//! `now` is the time since the stack started ([`Clock`](crate::link::Clock)).

pub use crate::hook::{Hook, Round};

use crate::link::Counted;
use crate::state::{close_sock, Shared, State};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;
use ustack::link::sys::wait_readable;
use ustack::link::Link;
use ustack::socket::tcp::TcpHandle;
use ustack::time::Instant;

/// Longest wait of the driver on a link that cannot wake it (no fd, no notifier).
pub const POLL_TICK: Duration = Duration::from_millis(1);

/// The link as the driver holds it: counted.
type DriverLink = Counted<Box<dyn Link + Send>>;

fn send_outbox(st: &mut State, link: &mut dyn Link, now: Instant) {
    while let Some(frame) = st.outbox.pop_front() {
        if let Err(e) = link.send(now, &frame) {
            log::debug!(target: "ustack::socket", "outbox frame lost: {e}");
        }
    }
}

/// The driver thread (see the module docs): the loop, then the shutdown.
pub(crate) fn run(
    shared: Arc<Shared>,
    link: Box<dyn Link + Send>,
    fd: Option<RawFd>,
    tick: Option<Duration>,
) {
    let mut link = Counted::new(link);
    let wake_fd = shared.waker.fd();
    let fds: Vec<RawFd> = fd.into_iter().chain([wake_fd]).collect();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drive(&shared, &mut link, &fds, tick)
    }));
    if res.is_err() {
        log::error!(target: "ustack::socket", "driver thread panicked: the stack is dead, blocking calls fail with EIO");
        let mut st = shared.lock();
        st.dead = true;
        st.stopping = true;
        st.link_error = Some("driver thread panicked".to_owned());
        st.link_stats = link.stats();
        st.wake_everyone();
        return;
    }
    // Stopping: nobody holds a descriptor any more. Close every socket, then flush
    // whatever that queued (FINs, RSTs) and what arrived meanwhile, once.
    let mut st = shared.lock();
    let files = st.table.drain_files();
    st.forget_all_sockets();
    let n = files.len();
    let now = shared.now();
    for f in files {
        close_sock(&mut st, f.sock, now);
    }
    send_outbox(&mut st, &mut link, now);
    if let Err(e) = st.iface.poll_link(now, &mut link) {
        log::debug!(target: "ustack::socket", "final flush: {e}");
    }
    st.link_stats = link.stats();
    log::info!(target: "ustack::socket", "stack {} down ({n} sockets closed)", st.iface.ip_addr());
    drop(st);
    // The link goes with the thread: the device closes and a recorder flushes.
    drop(link);
}

/// Runs the hooks with the TCP sockets `ready` names, then sends what they queued.
fn run_hooks(
    st: &mut State,
    link: &mut DriverLink,
    now: Instant,
    ready: &[TcpHandle],
    buf: &mut Vec<u8>,
) {
    let State { iface, hooks, .. } = st;
    let mut round = Round::new(iface, now, ready);
    for hook in hooks.iter_mut() {
        hook(&mut round);
    }
    buf.resize(iface.config().mtu + 14, 0);
    while let Some(n) = iface.poll_transmit(now, buf) {
        if let Err(e) = link.send(now, &buf[..n]) {
            log::debug!(target: "ustack::socket", "hook output lost: {e}");
        }
    }
}

/// The loop proper; returns when the stack is stopping.
fn drive(shared: &Shared, link: &mut DriverLink, fds: &[RawFd], tick: Option<Duration>) {
    let mut failing = false;
    // TCP sockets the engine named this round (for the hooks), and the few a hook's
    // own output touched, carried to the next round.
    let mut ready: Vec<TcpHandle> = Vec::new();
    let mut carried: Vec<TcpHandle> = Vec::new();
    let mut hook_buf: Vec<u8> = Vec::new();
    loop {
        let timeout = {
            let st = shared.lock();
            if st.stopping {
                return;
            }
            let now = shared.now();
            let deadline = match (st.iface.poll_timeout(), link.poll_timeout()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let until = deadline
                .map(|d| Duration::from_micros(d.saturating_duration_since(now).total_micros()));
            let mut t = match (until, tick) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if failing {
                t = Some(t.map_or(Duration::from_millis(100), |t| {
                    t.min(Duration::from_millis(100))
                }));
            }
            if !carried.is_empty() {
                t = Some(Duration::ZERO);
            }
            t
        };
        if let Err(e) = wait_readable(fds, timeout) {
            log::error!(target: "ustack::socket", "driver poll(2) failed: {e}");
            std::thread::sleep(Duration::from_millis(10));
        }
        shared.waker.drain();
        let mut st = shared.lock();
        st.stats.rounds += 1;
        let now = shared.now();
        send_outbox(&mut st, link, now);
        match st.iface.poll_link(now, link) {
            Ok(_) => {
                if failing {
                    log::info!(target: "ustack::socket", "link recovered");
                    failing = false;
                    st.link_error = None;
                }
            }
            Err(e) => {
                if !failing {
                    log::warn!(target: "ustack::socket", "link error: {e}");
                }
                failing = true;
                st.link_error = Some(e.to_string());
            }
        }
        // The engine names every socket (TCP, UDP, raw) whose readiness frames, timers,
        // ARP, drops or calls may have changed: wake only their waiters. The TCP ones
        // also go to the hooks; what a hook's own output touched is woken at once and
        // handed to the hooks next round.
        ready.clear();
        ready.append(&mut carried);
        st.notify_ready(&mut ready);
        if !st.hooks.is_empty() {
            run_hooks(&mut st, link, now, &ready, &mut hook_buf);
            st.notify_ready(&mut carried);
        }
        st.link_stats = link.stats();
    }
}
