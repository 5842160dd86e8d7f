//! The state every thread of a stack shares: the [`State`] behind the stack mutex (the
//! interface, the link, the descriptor table, epoll sets, the hooks and counters), the
//! [`Waker`]s, one *round* of I/O ([`State::round`]) and the waits for readiness,
//! which lead the link when they can. The calls (`bsd`, `poll`) and the driver loop
//! (`driver`) build on it; the driver module's docs describe the whole loop.
//!
//! Invariants, all under the stack mutex:
//! - at most one application thread leads the link ([`State::lead`]); the driver polls
//!   the link's fd only while `driver_on_link` is set, which it never is while a leader
//!   exists, so one frame wakes one thread;
//! - every thread that waits for readiness is registered on the files it waits for
//!   (a [`Waiter`]) before it releases the mutex, and whoever runs a round signals it
//!   ([`State::signal`]): a condvar for a follower, the leader's eventfd for a leader
//!   in poll(2).

use crate::events::{EpollKey, PollEvents};
pub use crate::hook::DriverStats;
use crate::hook::{Hook, Round};
use crate::link::{Clock, Counted, LinkStats, ReportSlot};
use crate::ready::readiness;
use crate::table::{EpollSet, File, FileKey, IdMap, Sock, Table, Waiter};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant as StdInstant};
use ustack::iface::Interface;
use ustack::link::{Link, RingStats};
use ustack::socket::tcp::TcpHandle;
use ustack::socket::SocketHandle;
use ustack::time::Instant;

/// How long the driver leaves the link to application threads after their last round
/// (or while one leads): it does not poll the link fd then, and wakes only this often
/// to look. The bound on how late a frame is taken in when application threads stop
/// calling with nobody blocked (see the driver module).
pub const CALLER_GRACE: Duration = Duration::from_millis(1);

/// Small wrappers over eventfd(2) and poll(2); with the devices, the only syscalls the
/// host makes.
pub(crate) mod sys {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::time::Duration;

    /// A non-blocking, close-on-exec eventfd (eventfd(2)).
    pub fn eventfd() -> io::Result<OwnedFd> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a fresh fd we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Adds 1 to the eventfd counter. A full counter (EAGAIN) is already "woken".
    pub fn eventfd_write(fd: &OwnedFd) {
        let one: u64 = 1;
        // SAFETY: we pass a pointer to 8 valid bytes and their length.
        let _ = unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Resets the eventfd counter; true if it was non-zero (EAGAIN means zero).
    pub fn eventfd_read(fd: &OwnedFd) -> bool {
        let mut v: u64 = 0;
        // SAFETY: we pass a pointer to 8 writable bytes and their length.
        let n = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        n == 8 && v > 0
    }

    /// Readability of up to two descriptors (a negative one is skipped), with a
    /// timeout in nanoseconds: the link layer's `poll_readable` (ppoll(2)).
    pub fn poll2(fds: [RawFd; 2], timeout: Option<Duration>) -> io::Result<[bool; 2]> {
        let r = ustack::link::sys::poll_readable(&fds, timeout)?;
        Ok([r[0], r[1]])
    }
}

/// Wakes a thread sleeping in poll(2) on its eventfd (the driver, or the leader): an
/// eventfd plus a flag so that a burst of wakes costs one write(2) (mio `Waker`).
#[derive(Debug)]
pub(crate) struct Waker {
    fd: OwnedFd,
    pending: AtomicBool,
    /// write(2)s made, for [`DriverStats`].
    writes: AtomicU64,
}

impl Waker {
    pub(crate) fn new() -> io::Result<Waker> {
        Ok(Waker {
            fd: sys::eventfd()?,
            pending: AtomicBool::new(false),
            writes: AtomicU64::new(0),
        })
    }

    /// The eventfd to poll.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Makes the thread polling the eventfd return, soon.
    pub(crate) fn wake(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            self.writes.fetch_add(1, Ordering::Relaxed);
            sys::eventfd_write(&self.fd);
        }
    }

    /// Resets the eventfd, then the flag; called only when poll(2) found the eventfd
    /// readable (or by a link that must look), so a round that was not signalled makes
    /// no read(2). In this order a wake that found the flag set happened before the
    /// reset, so its work is seen by the round that follows; the other order could
    /// consume a write while leaving the flag set, and every later wake would be
    /// skipped.
    pub(crate) fn drain(&self) -> bool {
        let woken = sys::eventfd_read(&self.fd);
        self.pending.store(false, Ordering::Release);
        woken
    }

    /// write(2)s made so far.
    pub(crate) fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

/// The link as the stack holds it: counted, with the fd that shows a frame waiting.
pub(crate) struct LinkIo {
    pub link: Counted<Box<dyn Link + Send>>,
    /// Readable when a frame waits. `None` (a plain memory link, a custom link): the
    /// driver polls the link every tick and application threads never lead.
    pub fd: Option<RawFd>,
    /// The link failed in the last round (the driver retries, logging once).
    failing: bool,
    /// MTU-sized scratch for the transmit path.
    buf: Vec<u8>,
    /// The stack's clock, read again at every pass of a round over the link.
    clock: Clock,
}

impl LinkIo {
    pub(crate) fn new(link: Box<dyn Link + Send>, fd: Option<RawFd>, clock: Clock) -> LinkIo {
        LinkIo {
            link: Counted::new(link),
            fd,
            failing: false,
            buf: Vec::new(),
            clock,
        }
    }

    /// Whether the last round failed on the link.
    pub(crate) fn failing(&self) -> bool {
        self.failing
    }
}

/// Which thread runs a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum By {
    /// The driver thread.
    Driver,
    /// An application thread, inline after its call or while it leads.
    Caller,
}

/// The application thread that leads the link (see the driver module).
#[derive(Debug)]
pub(crate) struct Lead {
    /// The condvar it registered on the files it waits for: signals meant for it
    /// become a write to the leader eventfd while it is in poll(2).
    cv: Arc<Condvar>,
    /// In poll(2), without the lock.
    parked: bool,
    /// When that poll(2) returns at the latest (`None`: only for a frame or a signal):
    /// a call that arms an earlier timer meanwhile wakes it.
    until: Option<Instant>,
}

/// Everything the stack mutex protects.
pub(crate) struct State {
    pub iface: Interface,
    /// The link; taken by the driver when the stack stops (the device closes with it).
    pub io: Option<LinkIo>,
    pub table: Table,
    pub epolls: IdMap<EpollKey, EpollSet>,
    pub next_epoll: u64,
    /// The last handle is gone (or `stop` was called): the driver winds down.
    pub stopping: bool,
    /// A round panicked (in the driver or in a caller): blocking calls fail with EIO.
    pub dead: bool,
    pub link_error: Option<String>,
    /// The watched descriptions by the engine socket behind them: what the engine's
    /// `poll_ready` names is looked up here, so a round re-checks only those.
    watched_by_socket: IdMap<SocketHandle, FileKey>,
    pub stats: DriverStats,
    /// In-driver applications and observers, run after every round, whoever runs it.
    pub hooks: Vec<Hook>,
    /// Scratch list of files to re-check, kept so a round does not allocate.
    recheck: Vec<FileKey>,
    /// The TCP sockets a round named, for the hooks (scratch).
    ready: Vec<TcpHandle>,
    /// TCP sockets the hooks' own output touched, handed to the hooks next round.
    carried: Vec<TcpHandle>,
    /// The application thread leading the link, if any.
    lead: Option<Lead>,
    /// Application threads waiting on a condvar (not leading).
    followers: usize,
    /// The driver is in poll(2) on the link's fd (not parked).
    driver_on_link: bool,
    /// When the driver, on the link, wakes at the latest (`None`: only for a frame or
    /// a wake-up): a call that arms an earlier timer wakes it.
    driver_until: Option<Instant>,
    /// When an application thread last ran a round.
    last_caller_round: Option<Instant>,
    /// Some thread waits for readiness outside the stack (a readiness notifier is set,
    /// `crate::notifier`: the preload library's threads sleep in the kernel's poll(2)).
    /// Nobody who calls will lead then, so the driver never parks on a caller's grace:
    /// it stays on the link, and a frame is taken in when it arrives.
    pub(crate) external_waiters: bool,
    /// A call queued output or changed timers: the round after it is owed.
    pub call_queued: bool,
    /// SO_BUSY_POLL of new sockets, in µs (0: off), as Linux's `net.core.busy_read`.
    pub busy_poll: u32,
    /// What crossed the link, kept when the driver dropped it.
    pub final_link_stats: Option<LinkStats>,
    /// The link's receive-ring counters, read when the driver dropped it.
    pub final_ring_stats: Option<RingStats>,
    /// Wakes the driver thread.
    waker: Arc<Waker>,
    /// Wakes the leader out of poll(2).
    leader_waker: Waker,
}

/// Writes every frame the interface has queued to the link.
fn transmit(iface: &mut Interface, io: &mut LinkIo, now: Instant) -> io::Result<()> {
    // With the link's offloads, as `Interface::poll_link` sends: a call's output may
    // leave as TSO super-segments from the calling thread too.
    let caps = io.link.caps();
    let need = (iface.config().mtu + 14).max(caps.max_tx_frame);
    if io.buf.len() < need {
        io.buf.resize(need, 0);
    }
    while let Some((n, meta)) = iface.poll_transmit_meta(now, &mut io.buf, caps) {
        if meta.is_plain() {
            io.link.send(now, &io.buf[..n])?;
        } else {
            io.link.send_meta(now, &io.buf[..n], &meta)?;
        }
    }
    Ok(())
}

impl State {
    /// A stack with no sockets yet, on `io`, whose driver `waker` wakes.
    pub(crate) fn new(
        iface: Interface,
        io: LinkIo,
        max_fds: usize,
        waker: Arc<Waker>,
    ) -> io::Result<State> {
        Ok(State {
            iface,
            io: Some(io),
            table: Table::new(max_fds),
            epolls: IdMap::default(),
            next_epoll: 0,
            stopping: false,
            dead: false,
            link_error: None,
            watched_by_socket: IdMap::default(),
            stats: DriverStats::default(),
            hooks: Vec::new(),
            recheck: Vec::new(),
            ready: Vec::new(),
            carried: Vec::new(),
            lead: None,
            followers: 0,
            driver_on_link: false,
            driver_until: None,
            last_caller_round: None,
            external_waiters: false,
            call_queued: false,
            busy_poll: 0,
            final_link_stats: None,
            final_ring_stats: None,
            waker,
            leader_waker: Waker::new()?,
        })
    }

    /// The counters, with the wake-ups the wakers made.
    pub(crate) fn driver_stats(&self) -> DriverStats {
        DriverStats {
            driver_wakeups: self.waker.writes(),
            leader_wakeups: self.leader_waker.writes(),
            ..self.stats
        }
    }

    /// What crossed the link so far.
    pub(crate) fn link_stats(&self) -> LinkStats {
        match &self.io {
            Some(io) => io.link.stats(),
            None => self.final_link_stats.unwrap_or_default(),
        }
    }

    /// The link's receive-ring counters (`None` without a ring), read now: the device
    /// is asked, which may cost a system call, so only on request.
    pub(crate) fn ring_stats(&mut self) -> Option<RingStats> {
        match &mut self.io {
            Some(io) => io.link.ring_stats(),
            None => self.final_ring_stats,
        }
    }

    /// Keeps what the link counted ([`link_stats`](Self::link_stats),
    /// [`ring_stats`](Self::ring_stats)) before the driver drops it.
    pub(crate) fn keep_final_link_stats(&mut self, io: &mut LinkIo) {
        self.final_link_stats = Some(io.link.stats());
        self.final_ring_stats = io.link.ring_stats();
    }

    /// The engine's and the link's next deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let link = self.io.as_ref().and_then(|io| io.link.poll_timeout());
        match (self.iface.poll_timeout(), link) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// One round of I/O: what calls queued goes out, every ready frame comes in, due
    /// timers run, every pending frame goes out; the watched descriptions the engine
    /// names are re-checked and their waiters signalled; the hooks run with the TCP
    /// sockets named, and what they queued goes out. The one code path of the driver
    /// and of application threads.
    pub(crate) fn round(&mut self, mut now: Instant, by: By) {
        if self.dead {
            return;
        }
        let Some(io) = self.io.as_mut() else {
            return;
        };
        match by {
            By::Driver => self.stats.rounds += 1,
            By::Caller => {
                self.stats.caller_rounds += 1;
                self.last_caller_round = Some(now);
            }
        }
        self.call_queued = false;
        // What a call queued leaves before anything is read: a reply is not delayed by
        // the read(2) that finds the link empty.
        // A failing send must not keep frames from being read or timers from running.
        let tx = transmit(&mut self.iface, io, now);
        let clock = io.clock;
        let res = tx.and(
            self.iface
                .poll_link_clocked(&mut || clock.now(), &mut io.link)
                // The rest of the round (the hooks) runs at the time of the last pass.
                .map(|(_, last)| now = now.max(last)),
        );
        match res {
            Ok(()) => {
                if io.failing {
                    log::info!(target: "ustack::socket", "link recovered");
                    io.failing = false;
                    self.link_error = None;
                }
            }
            Err(e) => {
                if !io.failing {
                    log::warn!(target: "ustack::socket", "link error: {e}");
                }
                io.failing = true;
                self.link_error = Some(e.to_string());
            }
        }
        // The engine names every socket (TCP, UDP, raw) whose readiness frames, timers,
        // ARP, drops or calls may have changed: wake only their waiters. The TCP ones
        // also go to the hooks; what a hook's own output touched is woken at once and
        // handed to the hooks next round.
        let mut ready = core::mem::take(&mut self.ready);
        ready.clear();
        ready.append(&mut self.carried);
        self.notify_ready(&mut ready);
        if !self.hooks.is_empty() {
            self.run_hooks(now, &ready);
            let mut carried = core::mem::take(&mut self.carried);
            self.notify_ready(&mut carried);
            self.carried = carried;
            if by == By::Caller && !self.carried.is_empty() {
                // The driver owes the hooks a round at once (it runs one when it has
                // carried handles); a caller does not loop on them.
                self.waker.wake();
            }
        }
        self.ready = ready;
    }

    /// Wakes the driver thread (it looks at the link at once).
    pub(crate) fn wake_driver(&self) {
        self.waker.wake();
    }

    /// Whether a round left handles for the hooks' next round.
    pub(crate) fn has_carried(&self) -> bool {
        !self.carried.is_empty()
    }

    /// Runs the hooks with the TCP sockets `ready` names, then sends what they queued.
    fn run_hooks(&mut self, now: Instant, ready: &[TcpHandle]) {
        let driver = self.driver_stats();
        let State {
            iface, hooks, io, ..
        } = self;
        let link = io.as_mut().map(|io| &mut io.link as &mut dyn Link);
        let mut round = Round::new(iface, now, driver, link, ready);
        for hook in hooks.iter_mut() {
            hook(&mut round);
        }
        if let Some(io) = io.as_mut() {
            if let Err(e) = transmit(iface, io, now) {
                log::debug!(target: "ustack::socket", "hook output lost: {e}");
            }
        }
    }

    /// A round run by an application thread. A panic in it (a bug in the engine or a
    /// hook) kills the stack as a panic in the driver does: blocking calls fail with
    /// EIO; it does not unwind into the application.
    pub(crate) fn caller_round(&mut self, now: Instant) {
        let r =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.round(now, By::Caller)));
        if r.is_err() {
            log::error!(target: "ustack::socket", "a round panicked in an application thread: the stack is dead, blocking calls fail with EIO");
            self.die("a round panicked");
            return;
        }
        self.after_call();
    }

    /// What a call owes when it queued output or changed timers: its frames go to the
    /// device from its own thread (the transmit path only: no read(2) that would find
    /// the link empty; frames in are the business of the next full round), and the
    /// driver learns of an earlier timer. Nothing when the call queued nothing.
    pub(crate) fn flush(&mut self, now: Instant) {
        if !core::mem::take(&mut self.call_queued) || self.dead {
            return;
        }
        let State {
            iface, io, stats, ..
        } = self;
        let Some(io) = io.as_mut() else {
            return;
        };
        stats.caller_flushes += 1;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| transmit(iface, io, now)));
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                log::debug!(target: "ustack::socket", "transmit failed: {e}");
                // As in `round`: the next round that succeeds clears it.
                io.failing = true;
                self.link_error = Some(e.to_string());
            }
            Err(_) => {
                log::error!(target: "ustack::socket", "transmit panicked in an application thread: the stack is dead, blocking calls fail with EIO");
                self.die("a round panicked");
                return;
            }
        }
        self.last_caller_round = Some(now);
        self.after_call();
    }

    /// After a call changed timers: whoever waits on the link (the driver, or a leader
    /// in poll(2)) for a later deadline must look again. (A parked driver leaves timers
    /// to the callers, and takes them over within [`CALLER_GRACE`] once they are quiet.)
    pub(crate) fn after_call(&mut self) {
        let earlier = |d: Option<Instant>, until: Option<Instant>| {
            d.is_some() && (until.is_none() || d < until)
        };
        if self.driver_on_link {
            let d = self.next_deadline();
            if earlier(d, self.driver_until) {
                self.driver_until = d;
                self.waker.wake();
            }
        } else if self.lead.as_ref().is_some_and(|l| l.parked) {
            let d = self.next_deadline();
            if let Some(l) = self.lead.as_mut() {
                if earlier(d, l.until) {
                    l.until = d;
                    self.leader_waker.wake();
                }
            }
        }
    }

    /// The stack is dead (a round panicked): everyone blocked wakes and fails with EIO,
    /// and the driver winds down.
    pub(crate) fn die(&mut self, why: &str) {
        self.dead = true;
        self.link_error = Some(why.to_owned());
        self.wake_everyone();
        self.waker.wake();
    }

    /// Signals a waiter's condvar: the leader's eventfd if it is the leader's and the
    /// leader is in poll(2) (its own rounds need no signal: it looks after each), the
    /// condvar otherwise. `all`: every thread on it (an epoll set's).
    pub(crate) fn signal(lead: &Option<Lead>, leader_waker: &Waker, cv: &Arc<Condvar>, all: bool) {
        if let Some(l) = lead {
            if Arc::ptr_eq(&l.cv, cv) {
                if l.parked {
                    leader_waker.wake();
                }
                if all {
                    cv.notify_all();
                }
                return;
            }
        }
        if all {
            cv.notify_all();
        } else {
            cv.notify_one();
        }
    }

    /// Re-checks the readiness of one file and wakes the threads and epoll instances
    /// waiting for what it now is.
    pub(crate) fn notify(&mut self, key: FileKey) {
        let State {
            iface,
            table,
            epolls,
            lead,
            leader_waker,
            ..
        } = self;
        let Ok(file) = table.file_mut(key) else {
            return;
        };
        let ready = readiness(iface, file);
        if let Some(n) = &file.notifier {
            (n.0)(ready);
        }
        if ready.is_empty() {
            return;
        }
        for w in &file.waiters {
            if ready.intersects(w.mask | PollEvents::POLLERR | PollEvents::POLLHUP) {
                State::signal(lead, leader_waker, &w.cv, false);
            }
        }
        for watch in &file.epolls {
            if let Some(set) = epolls.get_mut(&watch.epoll) {
                if ready.intersects(watch.mask | PollEvents::POLLERR | PollEvents::POLLHUP)
                    && set.mark_ready(watch.fd)
                {
                    State::signal(lead, leader_waker, &set.cv, true);
                }
            }
        }
    }

    /// Wakes every waiter of a file regardless of readiness (it was closed).
    pub(crate) fn wake_all(&self, file: &File) {
        for w in &file.waiters {
            State::signal(&self.lead, &self.leader_waker, &w.cv, false);
        }
    }

    /// Keeps the watched set, and the map from engine sockets to watched descriptions,
    /// in step with a file's waiters and epolls.
    pub(crate) fn update_watched(&mut self, key: FileKey) {
        // Once per blocking call each way (add and remove a waiter): one lookup of the
        // file, one of the set, and the map only when the set changed.
        let Ok(f) = self.table.file(key) else {
            self.table.update_watched(key);
            return;
        };
        let watch = f.watched();
        let h = f.sock.handle();
        let changed = if watch {
            self.table.watched.insert(key)
        } else {
            self.table.watched.remove(&key)
        };
        if changed {
            if watch {
                self.watched_by_socket.insert(h, key);
            } else {
                self.watched_by_socket.remove(&h);
            }
        }
    }

    /// Forgets the engine socket of a description whose last descriptor was closed.
    pub(crate) fn forget_socket(&mut self, sock: &Sock) {
        self.watched_by_socket.remove(&sock.handle());
    }

    /// Forgets every engine socket (the stack is stopping).
    pub(crate) fn forget_all_sockets(&mut self) {
        self.watched_by_socket.clear();
    }

    /// Drains `Interface::poll_ready` (every socket kind whose readiness may have
    /// changed), re-checks the watched descriptions among them and appends the TCP
    /// handles to `tcp` (for the hooks).
    pub(crate) fn notify_ready(&mut self, tcp: &mut Vec<TcpHandle>) {
        let mut keys = core::mem::take(&mut self.recheck);
        keys.clear();
        while let Some(h) = self.iface.poll_ready() {
            self.stats.ready_sockets += 1;
            if let SocketHandle::Tcp(t) = h {
                tcp.push(t);
            }
            if let Some(&key) = self.watched_by_socket.get(&h) {
                keys.push(key);
            }
        }
        self.stats.ready_checks += keys.len() as u64;
        for &key in &keys {
            self.notify(key);
        }
        self.recheck = keys;
    }

    /// Wakes every blocked thread, the leader and every epoll (the stack died).
    pub(crate) fn wake_everyone(&mut self) {
        for key in self.table.watched.clone() {
            if let Ok(f) = self.table.file(key) {
                for w in &f.waiters {
                    w.cv.notify_all();
                }
            }
        }
        for set in self.epolls.values() {
            set.wake();
        }
        self.leader_waker.wake();
    }

    /// Whether a call that found nothing ready should run a round before it gives up
    /// or sleeps: nobody else is taking frames in at once (the driver is parked and no
    /// thread leads), so frames may be waiting on the link.
    pub(crate) fn link_unattended(&self) -> bool {
        self.lead.is_none()
            && !self.driver_on_link
            && self.io.as_ref().is_some_and(|io| io.fd.is_some())
    }

    /// How the driver waits next (see the driver module): `(poll the link fd, timeout)`.
    /// Sets `driver_on_link` accordingly.
    pub(crate) fn driver_plan(
        &mut self,
        now: Instant,
        tick: Option<Duration>,
    ) -> (bool, Option<Duration>) {
        let has_fd = self.io.as_ref().is_some_and(|io| io.fd.is_some());
        let grace = to_stack(CALLER_GRACE);
        let recent = self.last_caller_round.is_some_and(|t| now < t + grace);
        let parked = has_fd
            && (self.lead.is_some() || (recent && self.followers == 0 && !self.external_waiters));
        let deadline = self.next_deadline();
        let until =
            |t: Instant| Duration::from_micros(t.saturating_duration_since(now).total_micros());
        if parked {
            // The link and its timers are the callers': a leader's poll(2) is bounded
            // by the deadline (and woken for an earlier one, `after_call`), and the
            // next blocking call will lead. The driver only looks, once per grace
            // period, whether the callers went quiet.
            self.driver_on_link = false;
            self.driver_until = None;
            let wake = match (&self.lead, self.last_caller_round) {
                (None, Some(last)) => last + grace,
                _ => now + grace,
            };
            return (false, Some(until(wake)));
        }
        self.driver_on_link = has_fd;
        self.driver_until = deadline;
        let mut t = match (deadline.map(until), tick) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if self.io.as_ref().is_some_and(LinkIo::failing) {
            t = Some(t.map_or(Duration::from_millis(100), |t| {
                t.min(Duration::from_millis(100))
            }));
        }
        if self.has_carried() {
            t = Some(Duration::ZERO);
        }
        (has_fd, t)
    }

    /// The driver woke: it no longer polls the link. Whether it must run a round: it
    /// was signalled, or on the link, or the callers went quiet.
    pub(crate) fn driver_woke(&mut self, now: Instant, on_link: bool, signalled: bool) -> bool {
        self.driver_on_link = false;
        self.driver_until = None;
        if on_link || signalled || self.has_carried() {
            return true;
        }
        // Parked: a leader takes frames in and runs timers.
        if self.lead.is_some() {
            return false;
        }
        let grace = to_stack(CALLER_GRACE);
        let recent = self.last_caller_round.is_some_and(|t| now < t + grace);
        if !recent || self.external_waiters {
            return true;
        }
        // Recent callers may only be sending (a flush reads nothing and runs no
        // timer): once per grace period, take in what waits and run what is due, so
        // input and timers are never starved longer than that.
        let due = self.next_deadline().is_some_and(|d| d <= now);
        let fd = self.io.as_ref().and_then(|io| io.fd);
        due || fd.is_some_and(|fd| sys::poll2([fd, -1], Some(Duration::ZERO)).is_ok_and(|r| r[0]))
    }
}

fn to_stack(d: Duration) -> ustack::time::Duration {
    ustack::time::Duration::from_micros(d.as_micros() as u64)
}

/// What the driver thread and the handles share.
pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) waker: Arc<Waker>,
    clock: Clock,
    /// Where the host wrappers leave their report when the driver drops the link.
    pub(crate) report: Option<ReportSlot>,
}

impl Shared {
    pub(crate) fn new(
        state: State,
        waker: Arc<Waker>,
        clock: Clock,
        report: Option<ReportSlot>,
    ) -> Shared {
        Shared {
            state: Mutex::new(state),
            waker,
            clock,
            report,
        }
    }

    /// Takes the state out of a stack nobody else refers to any more.
    pub(crate) fn into_state(self) -> State {
        self.state
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks the stack. A panic in another thread while holding the lock leaves the
    /// engine usable (its state is always consistent between calls), so poisoning is
    /// ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state if nobody holds it now.
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, State>> {
        match self.state.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// The stack's current time.
    pub(crate) fn now(&self) -> Instant {
        self.clock.now()
    }
}

thread_local! {
    /// The condvar this thread waits on in the BSD calls and poll: a thread is in one
    /// call at a time, so one serves them all, and a blocking call allocates nothing.
    static THREAD_CV: Arc<Condvar> = Arc::new(Condvar::new());
}

/// This thread's condvar (see `THREAD_CV`).
pub(crate) fn thread_cv() -> Arc<Condvar> {
    THREAD_CV.with(Arc::clone)
}

/// Waits on `cv` with the stack lock, at most `timeout`.
pub(crate) fn wait_on<'a>(
    cv: &Condvar,
    guard: MutexGuard<'a, State>,
    timeout: Option<Duration>,
) -> MutexGuard<'a, State> {
    match timeout {
        None => cv.wait(guard).unwrap_or_else(|e| e.into_inner()),
        Some(t) => {
            cv.wait_timeout(guard, t)
                .unwrap_or_else(|e| e.into_inner())
                .0
        }
    }
}

/// Waits once for readiness: the caller registered `cv` on what it waits for (a
/// [`Waiter`] on its files, or an epoll set's condvar) and re-checks when this returns,
/// after `left` at most (`None`: no bound).
///
/// If the link has an fd and nobody leads (or this caller leads already: `leading`),
/// the caller leads: it waits in poll(2) on the link's fd and the leader eventfd, at
/// most until the stack's next deadline, then runs a round itself, which signals the
/// others whose sockets became ready. If the driver was on the link it is told to park
/// (one eventfd write per takeover). Otherwise the caller follows: it sleeps on `cv`
/// until whoever runs a round signals it. A leader keeps leading across calls of this
/// function; the caller steps down with [`step_down`] when its call returns.
pub(crate) fn wait_ready<'a>(
    shared: &'a Shared,
    mut st: MutexGuard<'a, State>,
    cv: &Arc<Condvar>,
    left: Option<Duration>,
    leading: &mut bool,
) -> MutexGuard<'a, State> {
    let link_fd = st.io.as_ref().and_then(|io| io.fd);
    let Some(link_fd) = link_fd.filter(|_| *leading || st.lead.is_none()) else {
        st.followers += 1;
        st.stats.follows += 1;
        st = wait_on(cv, st, left);
        st.followers -= 1;
        return st;
    };
    take_lead(&mut st, cv, leading);
    let deadline = st.next_deadline();
    let to_deadline = deadline.map(|d| {
        let now = shared.now();
        Duration::from_micros(d.saturating_duration_since(now).total_micros())
    });
    let timeout = match (left, to_deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let Some(l) = st.lead.as_mut() {
        l.parked = true;
        l.until = deadline;
    }
    st.stats.leads += 1;
    let leader_fd = st.leader_waker.fd();
    drop(st);
    let polled = sys::poll2([link_fd, leader_fd], timeout);
    let mut st = shared.lock();
    if let Some(l) = st.lead.as_mut() {
        l.parked = false;
    }
    match polled {
        Ok([_, true]) => {
            st.leader_waker.drain();
        }
        Ok(_) => {}
        Err(e) => {
            log::error!(target: "ustack::socket", "leader poll(2) failed: {e}");
            st = wait_on(cv, st, Some(Duration::from_millis(10)));
        }
    }
    let now = shared.now();
    st.caller_round(now);
    st
}

/// Makes the caller the leader if it is not yet (the caller checked nobody else
/// leads); a driver on the link is told to park (one eventfd write per takeover).
fn take_lead(st: &mut State, cv: &Arc<Condvar>, leading: &mut bool) {
    if !*leading {
        *leading = true;
        st.lead = Some(Lead {
            cv: cv.clone(),
            parked: false,
            until: None,
        });
        if st.driver_on_link {
            st.driver_on_link = false;
            st.waker.wake();
        }
    }
}

/// Whether a blocked caller may busy-poll now (SO_BUSY_POLL): the link has an fd and
/// nobody else leads it. (A follower would only spin on a condvar: the leader in
/// poll(2) takes the frame in and signals it anyway.)
pub(crate) fn may_busy_poll(st: &State, leading: bool) -> bool {
    st.io.as_ref().is_some_and(|io| io.fd.is_some()) && (leading || st.lead.is_none())
}

/// A gap between two busy-poll passes longer than this means the thread was switched
/// out (a pass is a zero-timeout poll(2) and a sched_yield(2), a few µs): something
/// else needed this CPU, so the spin stops and the call sleeps.
const BUSY_PREEMPTED_GAP: Duration = Duration::from_micros(20);

/// One stretch of busy polling (SO_BUSY_POLL, socket(7)) by a blocked caller that
/// registered `cv` as its waiter: instead of sleeping in poll(2) it leads the link
/// and spins, without the lock, on a zero-timeout poll(2) of the link's fd and the
/// leader eventfd, until a frame waits, another thread signals it (its socket became
/// ready in another thread's round, a close, an earlier timer), the stack's next
/// deadline comes, or `until` passes. It returns with the lock held, after a round if
/// something came (the caller then re-tries its call), without one if the budget ran
/// out (the caller then sleeps as usual, still leading). It must not starve others:
/// between passes it yields the CPU (sched_yield(2)), so a peer or another thread that
/// needs this CPU runs first, and once it finds it was switched out between two passes
/// (longer than [`BUSY_PREEMPTED_GAP`]) it stops for the rest of the call (the second
/// value returned is false) and the call sleeps: a spin on a busy CPU costs one yield,
/// not the others' time.
pub(crate) fn busy_poll<'a>(
    shared: &'a Shared,
    mut st: MutexGuard<'a, State>,
    cv: &Arc<Condvar>,
    until: StdInstant,
    leading: &mut bool,
) -> (MutexGuard<'a, State>, bool) {
    let Some(link_fd) = st.io.as_ref().and_then(|io| io.fd) else {
        return (st, false);
    };
    if !may_busy_poll(&st, *leading) {
        return (st, false);
    }
    take_lead(&mut st, cv, leading);
    let deadline = st.next_deadline();
    // The stack's deadline on this thread's clock, so a pass reads one clock.
    let due = deadline.map(|d| {
        let left = d.saturating_duration_since(shared.now()).total_micros();
        StdInstant::now() + Duration::from_micros(left)
    });
    if let Some(l) = st.lead.as_mut() {
        // As in poll(2): a signal meant for this thread, or an earlier timer, writes
        // the leader eventfd, which the spin watches.
        l.parked = true;
        l.until = deadline;
    }
    st.stats.busy_polls += 1;
    let leader_fd = st.leader_waker.fd();
    drop(st);
    let mut passes = 0u64;
    let mut last = StdInstant::now();
    let mut preempted = false;
    // (link or leader eventfd readable, or a timer due): a round is owed.
    let (came, signalled) = loop {
        passes += 1;
        match sys::poll2([link_fd, leader_fd], Some(Duration::ZERO)) {
            Ok([false, false]) => {}
            Ok([_, s]) => break (true, s),
            Err(e) => {
                log::warn!(target: "ustack::socket", "busy-poll poll(2) failed: {e}");
                break (false, false);
            }
        }
        let now = StdInstant::now();
        if due.is_some_and(|d| now >= d) {
            break (true, false);
        }
        if now >= until {
            break (false, false);
        }
        if now.duration_since(last) > BUSY_PREEMPTED_GAP {
            preempted = true;
            break (false, false);
        }
        last = now;
        std::thread::yield_now();
    };
    let mut st = shared.lock();
    st.stats.busy_passes += passes;
    if let Some(l) = st.lead.as_mut() {
        l.parked = false;
    }
    if signalled {
        st.leader_waker.drain();
    }
    if preempted {
        st.stats.busy_preempted += 1;
    }
    if came {
        let now = shared.now();
        st.caller_round(now);
    }
    (st, !preempted)
}

/// Ends a caller's lead, if it led (see [`wait_ready`]), without a wake-up: the next
/// blocking call leads again, and if none comes the parked driver takes the link back
/// within [`CALLER_GRACE`] (at once on its next look when threads still follow). Waking
/// the driver here would cost an eventfd write and a switch per I/O in a server with a
/// thread that stays blocked (an acceptor) — the handoff this loop exists to avoid.
pub(crate) fn step_down(st: &mut State, leading: &mut bool) {
    if core::mem::take(leading) {
        st.lead = None;
    }
}

/// Time left until `deadline`, or `Err(())` when it has passed. `None` is forever.
pub(crate) fn remaining(deadline: Option<StdInstant>) -> Result<Option<Duration>, ()> {
    match deadline {
        None => Ok(None),
        Some(d) => {
            let now = StdInstant::now();
            if now >= d {
                Err(())
            } else {
                Ok(Some(d - now))
            }
        }
    }
}

pub(crate) fn add_waiter(st: &mut State, key: FileKey, cv: &Arc<Condvar>, mask: PollEvents) {
    if let Ok(f) = st.table.file_mut(key) {
        f.waiters.push(Waiter {
            cv: cv.clone(),
            mask,
        });
        st.update_watched(key);
    }
}

pub(crate) fn remove_waiter(st: &mut State, key: FileKey, cv: &Arc<Condvar>) {
    if let Ok(f) = st.table.file_mut(key) {
        f.waiters.retain(|w| !Arc::ptr_eq(&w.cv, cv));
        st.update_watched(key);
    }
}

/// Closes the engine socket behind a description whose last descriptor went away.
pub(crate) fn close_sock(st: &mut State, sock: Sock, now: Instant) {
    match sock {
        // The description held the only handle, so it is live: nothing to report.
        Sock::Udp(h) => drop(st.iface.udp().close(h)),
        Sock::Raw { h, .. } => drop(st.iface.raw().close(h)),
        Sock::Tcp(t) => crate::tcp::close(&mut st.iface, t, None, now),
    }
    st.call_queued = true;
}
