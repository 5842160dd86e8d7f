//! Readiness: [`NetStack::poll`] over any mix of descriptors, and [`Epoll`], a
//! registry that scales to thousands of sockets.
//!
//! Readiness of a socket is computed from the engine on demand (`readiness`); nothing
//! is cached that could go stale. Waiting follows gVisor's `waiter` package: under the
//! stack lock, check; if nothing is ready, register a waiter (a condvar and an event
//! mask) on every socket of interest, wait, unregister, check again. The driver, after
//! each round of I/O, re-checks the sockets that have waiters and signals the ones whose
//! readiness meets the mask; since it holds the same lock, no wake-up is lost.
//!
//! An [`Epoll`] keeps, like Linux's, a *ready list*: the driver (or any call that
//! changes a socket's state) appends a descriptor when it becomes ready, and
//! [`Epoll::wait`] only looks at that list, never at the whole interest set. It is
//! level-triggered: a descriptor stays on the list while it is ready (EPOLLONESHOT is
//! supported; EPOLLET is not and is refused with EINVAL).

use crate::driver::{NetStack, State};
use crate::errno::Errno;
use crate::table::{EpollWatch, Fd, File, FileKey, Sock, Waiter};
use core::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign, Not};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, MutexGuard};
use std::time::{Duration, Instant as StdInstant};
use ustack::iface::Interface;

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

/// One entry of a [`NetStack::poll`] call, as `struct pollfd` (poll(2)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollFd {
    /// The descriptor; negative entries are ignored (revents 0), as on Linux.
    pub fd: Fd,
    /// What the caller waits for (POLLERR and POLLHUP are always reported).
    pub events: PollEvents,
    /// What is ready, filled in by `poll`.
    pub revents: PollEvents,
}

impl PollFd {
    /// Waits for `events` on `fd`.
    pub fn new(fd: Fd, events: PollEvents) -> PollFd {
        PollFd {
            fd,
            events,
            revents: PollEvents::empty(),
        }
    }
}

const ALWAYS: PollEvents = PollEvents(libc::POLLERR as u32 | libc::POLLHUP as u32);

/// The readiness of one socket now. May move a pending asynchronous error from the
/// engine into `file.error`, from where the next call or SO_ERROR reports it.
pub(crate) fn readiness(iface: &mut Interface, file: &mut File) -> PollEvents {
    let mut r = PollEvents::empty();
    match &file.sock {
        Sock::Udp(h) => {
            let h = *h;
            let udp = iface.udp();
            if file.error.is_none() {
                if let Ok(Some(e)) = udp.take_error(h) {
                    file.error = Some(e.into());
                }
            }
            if matches!(udp.peek_len(h), Ok(Some(_))) || file.error.is_some() || file.shut_rd {
                r |= PollEvents::POLLIN;
            }
            if udp.can_send(h, 1) {
                r |= PollEvents::POLLOUT;
            }
        }
        Sock::Raw { h, .. } => {
            let raw = iface.raw();
            if raw.can_recv(*h) || file.shut_rd {
                r |= PollEvents::POLLIN;
            }
            if raw.can_send(*h) {
                r |= PollEvents::POLLOUT;
            }
        }
        Sock::Tcp(t) => {
            let t = *t;
            r |= crate::tcp::readiness(iface, t, file);
        }
    }
    if file.error.is_some() {
        r |= PollEvents::POLLERR;
    }
    // Linux datagram_poll / tcp_poll: RDHUP on receive shutdown, HUP when both are.
    if file.shut_rd {
        r |= PollEvents::POLLRDHUP;
        if file.shut_wr {
            r |= PollEvents::POLLHUP;
        }
    }
    r
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

impl NetStack {
    /// Waits until one of `fds` is ready or `timeout` passes (`None`: forever; zero:
    /// just check) and returns how many have non-zero `revents`
    /// ([poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html)).
    ///
    /// # Errors
    /// None today (a closed descriptor is reported as POLLNVAL); the `Result` leaves
    /// room for EINTR-like cancellation.
    pub fn poll(&self, fds: &mut [PollFd], timeout: Option<Duration>) -> Result<usize, Errno> {
        let deadline = timeout.map(|t| StdInstant::now() + t);
        let cv = Arc::new(Condvar::new());
        let mut st = self.shared().lock();
        loop {
            if st.dead {
                return Err(Errno::EIO);
            }
            let mut n = 0;
            let mut keys = Vec::with_capacity(fds.len());
            for p in fds.iter_mut() {
                p.revents = PollEvents::empty();
                if p.fd < 0 {
                    continue;
                }
                match st.table.key(p.fd) {
                    Err(_) => p.revents = PollEvents::POLLNVAL,
                    Ok(k) => {
                        let State { iface, table, .. } = &mut *st;
                        if let Ok(f) = table.file_mut(k) {
                            p.revents = readiness(iface, f) & (p.events | ALWAYS);
                        }
                        keys.push((k, p.events));
                    }
                }
                if !p.revents.is_empty() {
                    n += 1;
                }
            }
            if n > 0 {
                return Ok(n);
            }
            let Ok(left) = remaining(deadline) else {
                return Ok(0);
            };
            for &(k, mask) in &keys {
                add_waiter(&mut st, k, &cv, mask);
            }
            st = wait_on(&cv, st, left);
            for &(k, _) in &keys {
                remove_waiter(&mut st, k, &cv);
            }
        }
    }
}

/// Identifies an epoll instance within its stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct EpollKey(pub u64);

/// What an epoll instance watches on one descriptor.
#[derive(Clone, Copy, Debug)]
struct Interest {
    key: FileKey,
    events: PollEvents,
    data: u64,
    /// EPOLLONESHOT fired: ignored until re-armed with `Mod`.
    disarmed: bool,
}

/// The state of one epoll instance, kept in the stack.
#[derive(Debug, Default)]
pub(crate) struct EpollSet {
    interest: HashMap<Fd, Interest>,
    ready: VecDeque<Fd>,
    queued: HashSet<Fd>,
    cv: Arc<Condvar>,
}

impl EpollSet {
    /// Puts `fd` on the ready list (once) and wakes the waiting threads.
    pub(crate) fn mark_ready(&mut self, fd: Fd) {
        if self.queued.insert(fd) {
            self.ready.push_back(fd);
            self.cv.notify_all();
        }
    }

    /// Wakes every thread waiting on this instance.
    pub(crate) fn wake(&self) {
        self.cv.notify_all();
    }

    /// Forgets `fd` (it was closed).
    pub(crate) fn forget(&mut self, fd: Fd) {
        self.interest.remove(&fd);
    }
}

/// `epoll_ctl` operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpollOp {
    /// EPOLL_CTL_ADD: start watching a descriptor.
    Add,
    /// EPOLL_CTL_MOD: change the events or data (and re-arm a oneshot).
    Mod,
    /// EPOLL_CTL_DEL: stop watching.
    Del,
}

/// `struct epoll_event`: the events, and the caller's data given back with them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EpollEvent {
    /// Events asked for (in `ctl`) or ready (from `wait`).
    pub events: PollEvents,
    /// Opaque to the stack, usually the descriptor or a token.
    pub data: u64,
}

impl EpollEvent {
    /// An event mask with its data.
    pub fn new(events: PollEvents, data: u64) -> EpollEvent {
        EpollEvent { events, data }
    }
}

/// An epoll-like registry of descriptors of one stack
/// ([epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html)). Unlike Linux,
/// it is an object rather than a descriptor, and closing a descriptor removes it from
/// every epoll even if a `dup` of it is still open.
#[derive(Debug)]
pub struct Epoll {
    stack: NetStack,
    key: EpollKey,
}

impl Epoll {
    /// A new, empty instance on `stack`
    /// ([epoll_create(2)](https://man7.org/linux/man-pages/man2/epoll_create.2.html)).
    pub fn new(stack: &NetStack) -> Epoll {
        let mut st = stack.shared().lock();
        let key = EpollKey(st.next_epoll);
        st.next_epoll += 1;
        st.epolls.insert(key, EpollSet::default());
        Epoll {
            stack: stack.clone(),
            key,
        }
    }

    /// Adds, changes or removes `fd`
    /// ([epoll_ctl(2)](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html)).
    ///
    /// # Errors
    /// EBADF (not open), EEXIST (`Add` twice), ENOENT (`Mod`/`Del` of an unwatched
    /// descriptor), EINVAL (EPOLLET).
    pub fn ctl(&self, op: EpollOp, fd: Fd, event: EpollEvent) -> Result<(), Errno> {
        if event.events.intersects(PollEvents::EPOLLET) {
            return Err(Errno::EINVAL);
        }
        let mut st = self.stack.shared().lock();
        let key = st.table.key(fd)?;
        let set = st.epolls.get_mut(&self.key).ok_or(Errno::EBADF)?;
        let watching = set.interest.contains_key(&fd);
        match op {
            EpollOp::Add if watching => return Err(Errno::EEXIST),
            EpollOp::Mod | EpollOp::Del if !watching => return Err(Errno::ENOENT),
            EpollOp::Del => {
                set.interest.remove(&fd);
                let file = st.table.file_mut(key)?;
                file.epolls.retain(|w| !(w.epoll == self.key && w.fd == fd));
                st.update_watched(key);
                return Ok(());
            }
            EpollOp::Add | EpollOp::Mod => {
                set.interest.insert(
                    fd,
                    Interest {
                        key,
                        events: event.events,
                        data: event.data,
                        disarmed: false,
                    },
                );
                let file = st.table.file_mut(key)?;
                file.epolls.retain(|w| !(w.epoll == self.key && w.fd == fd));
                file.epolls.push(EpollWatch {
                    epoll: self.key,
                    fd,
                    mask: event.events,
                });
                st.update_watched(key);
            }
        }
        // It may be ready already.
        st.notify(key);
        Ok(())
    }

    /// Waits until some watched descriptor is ready or `timeout` passes (`None`:
    /// forever) and fills `events`; returns how many
    /// ([epoll_wait(2)](https://man7.org/linux/man-pages/man2/epoll_wait.2.html)).
    /// Only the ready list is examined, so the cost does not grow with the number of
    /// idle descriptors.
    ///
    /// # Errors
    /// EINVAL when `events` is empty.
    pub fn wait(
        &self,
        events: &mut [EpollEvent],
        timeout: Option<Duration>,
    ) -> Result<usize, Errno> {
        if events.is_empty() {
            return Err(Errno::EINVAL);
        }
        let deadline = timeout.map(|t| StdInstant::now() + t);
        let mut st = self.stack.shared().lock();
        loop {
            if st.dead {
                return Err(Errno::EIO);
            }
            let n = self.harvest(&mut st, events);
            if n > 0 {
                return Ok(n);
            }
            let Ok(left) = remaining(deadline) else {
                return Ok(0);
            };
            let cv = match st.epolls.get(&self.key) {
                Some(set) => set.cv.clone(),
                None => return Err(Errno::EBADF),
            };
            st = wait_on(&cv, st, left);
        }
    }

    /// Moves ready descriptors into `out`: each queued one is re-checked; one still
    /// ready is reported and re-queued at the back (level-triggered), others dropped.
    fn harvest(&self, st: &mut State, out: &mut [EpollEvent]) -> usize {
        let State {
            iface,
            table,
            epolls,
            ..
        } = st;
        let Some(set) = epolls.get_mut(&self.key) else {
            return 0;
        };
        let mut n = 0;
        let mut budget = set.ready.len();
        while n < out.len() && budget > 0 {
            budget -= 1;
            let Some(fd) = set.ready.pop_front() else {
                break;
            };
            let ready = match set.interest.get_mut(&fd) {
                Some(i) if !i.disarmed && table.key(fd) == Ok(i.key) => {
                    match table.file_mut(i.key) {
                        Ok(f) => {
                            let r = readiness(iface, f) & (i.events | ALWAYS);
                            if !r.is_empty() {
                                out[n] = EpollEvent::new(r, i.data);
                                n += 1;
                                if i.events.contains(PollEvents::EPOLLONESHOT) {
                                    i.disarmed = true;
                                }
                            }
                            !r.is_empty() && !i.disarmed
                        }
                        Err(_) => false,
                    }
                }
                _ => false,
            };
            if ready {
                set.ready.push_back(fd);
            } else {
                set.queued.remove(&fd);
            }
        }
        n
    }

    /// How many descriptors are watched.
    pub fn len(&self) -> usize {
        let st = self.stack.shared().lock();
        st.epolls.get(&self.key).map_or(0, |s| s.interest.len())
    }

    /// True when nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        let mut st = self.stack.shared().lock();
        if let Some(set) = st.epolls.remove(&self.key) {
            for (fd, i) in set.interest {
                if let Ok(f) = st.table.file_mut(i.key) {
                    f.epolls.retain(|w| !(w.epoll == self.key && w.fd == fd));
                    st.update_watched(i.key);
                }
            }
        }
    }
}
