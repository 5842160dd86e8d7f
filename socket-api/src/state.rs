//! The state every thread of a stack shares: the [`State`] behind the stack mutex (the
//! interface, the descriptor table, epoll sets, the driver's hooks and counters), the
//! [`Waker`] that makes the driver run, and the helpers that wait for readiness under
//! that mutex. The calls (`bsd`, `poll`) and the driver loop (`driver`) build on it.

use crate::events::{EpollKey, PollEvents};
use crate::hook::Hook;
use crate::link::{Clock, LinkStats, ReportSlot};
use crate::ready::readiness;
use crate::table::{EpollSet, File, FileKey, Sock, Table, Waiter};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant as StdInstant};
use ustack::iface::Interface;
use ustack::socket::tcp::TcpHandle;
use ustack::socket::SocketHandle;
use ustack::time::Instant;

/// Small wrappers over eventfd(2); with poll(2) in the engine's `link::sys`, the only
/// syscalls the host makes outside its devices.
mod sys {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

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
}

/// Wakes the driver thread: an eventfd plus a flag so that a burst of calls costs one
/// write(2) (mio `Waker`).
#[derive(Debug)]
pub(crate) struct Waker {
    fd: OwnedFd,
    pending: AtomicBool,
}

impl Waker {
    pub(crate) fn new() -> io::Result<Waker> {
        Ok(Waker {
            fd: sys::eventfd()?,
            pending: AtomicBool::new(false),
        })
    }

    /// The eventfd the driver polls.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Makes the driver run its loop once more, soon.
    pub(crate) fn wake(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            sys::eventfd_write(&self.fd);
        }
    }

    /// Resets the eventfd, then the flag. In this order a wake that found the flag set
    /// happened before the reset, so its call's work is seen by the round that follows;
    /// the other order could consume a write while leaving the flag set, and every later
    /// wake would be skipped.
    pub(crate) fn drain(&self) -> bool {
        let woken = sys::eventfd_read(&self.fd);
        self.pending.store(false, Ordering::Release);
        woken
    }
}

/// Everything the stack mutex protects.
pub(crate) struct State {
    pub iface: Interface,
    pub table: Table,
    pub epolls: HashMap<EpollKey, EpollSet>,
    pub next_epoll: u64,
    /// The last handle is gone (or `stop` was called): the driver winds down.
    pub stopping: bool,
    /// The driver thread died (a panic in the engine): blocking calls fail with EIO.
    pub dead: bool,
    pub link_error: Option<String>,
    /// Frames produced outside the driver (see [`State::flush_to_outbox`]), sent by the
    /// driver before anything else.
    pub outbox: std::collections::VecDeque<Vec<u8>>,
    /// The watched descriptions by the engine socket behind them: what the engine's
    /// `poll_ready` names is looked up here, so a round re-checks only those.
    watched_by_socket: HashMap<SocketHandle, FileKey>,
    pub stats: DriverStats,
    /// What crossed the link, copied from the driver's counter after every round.
    pub link_stats: LinkStats,
    /// In-driver applications and observers, run after every round.
    pub hooks: Vec<Hook>,
    /// Scratch list of files to re-check, kept so a driver round does not allocate.
    recheck: Vec<FileKey>,
}

/// What the driver thread has done, for observability and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Rounds of the loop (wake-ups).
    pub rounds: u64,
    /// Sockets the engine reported as possibly changed (`Interface::poll_ready`),
    /// watched or not.
    pub ready_sockets: u64,
    /// Readiness checks of watched descriptions that those reports led to: the only
    /// checks the driver makes (it never re-checks every watched socket).
    pub ready_checks: u64,
}

impl State {
    /// A stack with no sockets yet.
    pub(crate) fn new(iface: Interface, max_fds: usize) -> State {
        State {
            iface,
            table: Table::new(max_fds),
            epolls: HashMap::new(),
            next_epoll: 0,
            stopping: false,
            dead: false,
            link_error: None,
            outbox: std::collections::VecDeque::new(),
            watched_by_socket: HashMap::new(),
            stats: DriverStats::default(),
            link_stats: LinkStats::default(),
            hooks: Vec::new(),
            recheck: Vec::new(),
        }
    }

    /// Runs the interface's transmit path now and keeps the frames for the driver.
    /// Used when a datagram socket is closed with output still queued: UDP `sendto`
    /// is complete when it returns on Linux, so closing right after must not lose the
    /// datagram, and the port must be free again at once.
    pub(crate) fn flush_to_outbox(&mut self, now: Instant) {
        let mut buf = vec![0u8; self.iface.config().mtu + 14];
        while let Some(n) = self.iface.poll_transmit(now, &mut buf) {
            self.outbox.push_back(buf[..n].to_vec());
        }
    }

    /// Re-checks the readiness of one file and wakes the threads and epoll instances
    /// waiting for what it now is.
    pub(crate) fn notify(&mut self, key: FileKey) {
        let State {
            iface,
            table,
            epolls,
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
                w.cv.notify_one();
            }
        }
        for watch in &file.epolls {
            if let Some(set) = epolls.get_mut(&watch.epoll) {
                if ready.intersects(watch.mask | PollEvents::POLLERR | PollEvents::POLLHUP) {
                    set.mark_ready(watch.fd);
                }
            }
        }
    }

    /// Wakes every waiter of a file regardless of readiness (it was closed).
    pub(crate) fn wake_all(file: &File) {
        for w in &file.waiters {
            w.cv.notify_one();
        }
    }

    /// Keeps the watched set, and the map from engine sockets to watched descriptions,
    /// in step with a file's waiters and epolls.
    pub(crate) fn update_watched(&mut self, key: FileKey) {
        let was = self.table.watched.contains(&key);
        self.table.update_watched(key);
        let now = self.table.watched.contains(&key);
        if was == now {
            return;
        }
        let Ok(f) = self.table.file(key) else {
            return;
        };
        let h = f.sock.handle();
        if now {
            self.watched_by_socket.insert(h, key);
        } else {
            self.watched_by_socket.remove(&h);
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
    /// handles to `tcp` (for the driver's hooks).
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

    /// Wakes every blocked thread and epoll (the driver died).
    pub(crate) fn wake_everyone(&mut self) {
        for key in self.table.watched.clone() {
            if let Ok(f) = self.table.file(key) {
                State::wake_all(f);
            }
        }
        for set in self.epolls.values() {
            set.wake();
        }
    }
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

    /// The stack's current time.
    pub(crate) fn now(&self) -> Instant {
        self.clock.now()
    }
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
}
