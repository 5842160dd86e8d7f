//! Which descriptor numbers are ustack sockets, and what they share.
//!
//! Every ustack socket holds a real kernel descriptor (an eventfd), so numbers come
//! from the kernel: the program never sees one the kernel does not know, `dup`s get
//! fresh numbers, FD_CLOEXEC and `close` act on the kernel's table, and a number
//! reused for a file is a file. This table maps the numbers that name ustack sockets
//! to their open description ([`UFile`]); `dup` maps a new number to the same
//! description, as Linux does, and the engine socket is closed when the last number
//! naming it is closed.
//!
//! The whole state of the library (this table, the stack, epoll instances, wakers) is
//! one [`Process`] behind a pointer. A forked child replaces it with a fresh one and
//! never touches the parent's (its driver thread does not exist in the child, and
//! another thread may have held a lock at the fork): the inherited ustack numbers are
//! marked [`Slot::Dead`], and every call on them fails with EBADF until they are
//! closed.

use crate::wake::Wakers;
use libc::c_int;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use ustack_socket::{Fd, NetStack};

/// An open description of a ustack socket, shared by every number naming it.
pub struct UFile {
    /// The stack it lives on.
    pub stack: NetStack,
    /// Its descriptor in the stack's own table (always non-blocking there: the library
    /// does the blocking, so that a signal can interrupt it).
    pub sfd: Fd,
    /// Opened as AF_INET6: addresses are shown v4-mapped.
    pub v6: bool,
    /// SOCK_STREAM, SOCK_DGRAM or SOCK_RAW.
    pub ty: c_int,
    /// The protocol given to socket(2).
    pub proto: c_int,
    /// O_NONBLOCK of the description, as the program set it.
    pub nonblocking: AtomicBool,
    /// listen(2) succeeded (SO_ACCEPTCONN).
    pub listening: AtomicBool,
    /// Edges for EPOLLET: which readiness bits newly appeared, counted.
    pub edges: Arc<Edges>,
    /// SO_RCVTIMEO and SO_SNDTIMEO (`None`: forever).
    pub timeouts: Mutex<(Option<Duration>, Option<Duration>)>,
    /// bind, connect, listen or a send happened: the socket can no longer move to the
    /// kernel (see `ops::to_kernel`).
    pub used: AtomicBool,
    /// Every setsockopt(2) made so far, `(level, name, value)`, replayed on the kernel
    /// socket if the socket moves there.
    pub options: Mutex<Vec<(c_int, c_int, Vec<u8>)>>,
    /// Keeps the eventfd readable exactly while the socket is readable.
    pub level: Arc<Level>,
}

/// The readability of a socket mirrored on its eventfd, for waits the library does not
/// intercept (a raw `syscall(SYS_epoll_wait)`, an epoll instance nested in another).
/// It writes through a private duplicate of the eventfd at a high number, since the
/// program may close or reuse the numbers it was given; the duplicate is closed when
/// both the description and the stack's notifier have let go of it. Writability is not
/// mirrored: an eventfd can be made unwritable only by filling its counter, which would
/// also make it readable.
pub struct Level {
    fd: c_int,
    on: AtomicBool,
}

impl Level {
    /// Mirrors `efd`'s readability through a duplicate of it (none if the duplicate
    /// cannot be made: then nothing is mirrored).
    pub fn new(efd: c_int) -> Level {
        // SAFETY: getrlimit writes into a live struct.
        let mut lim: libc::rlimit = unsafe { core::mem::zeroed() };
        let cur = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            lim.rlim_cur
        } else {
            1024
        };
        // Out of the way of the numbers the program counts on (the lowest free ones),
        // without growing the kernel's descriptor table much.
        let min = (cur / 2).clamp(3, 4096) as c_int;
        // SAFETY: F_DUPFD_CLOEXEC on a descriptor we just made.
        let fd = unsafe { crate::real::fcntl(efd, libc::F_DUPFD_CLOEXEC, min as libc::c_ulong) };
        Level {
            fd,
            on: AtomicBool::new(false),
        }
    }

    /// Makes the eventfd readable or not.
    pub fn set(&self, readable: bool) {
        if self.fd < 0 {
            return;
        }
        if readable {
            if !self.on.swap(true, Ordering::AcqRel) {
                let one: u64 = 1;
                // SAFETY: 8 bytes from a live local, to our own descriptor.
                unsafe { crate::real::write(self.fd, (&one as *const u64).cast(), 8) };
            }
        } else if self.on.swap(false, Ordering::AcqRel) {
            let mut v: u64 = 0;
            // SAFETY: 8 writable bytes of a live local, from our own descriptor (the
            // counter is non-zero, so this does not block).
            unsafe { crate::real::read(self.fd, (&mut v as *mut u64).cast(), 8) };
        }
    }
}

impl Drop for Level {
    fn drop(&mut self) {
        if self.fd >= 0 {
            // SAFETY: we own the duplicate.
            unsafe { crate::real::close(self.fd) };
        }
    }
}

impl UFile {
    /// Whether calls on it may block.
    pub fn nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }
}

impl Drop for UFile {
    fn drop(&mut self) {
        let _ = self.stack.close(self.sfd);
    }
}

/// The edges of a socket's readiness, for EPOLLET: a counter per kind of event, bumped
/// when its bit appears in the readiness after being absent. The readiness is observed
/// by the stack's notifier and re-read by the calls that consume (a receive that finds
/// nothing more, or less than it asked for), so draining a socket and then receiving
/// new data is a new edge, as on Linux, while a report of something else (the send
/// side) is not an edge for a watcher of EPOLLIN.
#[derive(Default)]
pub struct Edges {
    last: Mutex<Last>,
    input: AtomicU64,
    output: AtomicU64,
    hangup: AtomicU64,
}

/// The readiness last taken in, and how many the stack's notifier reported.
#[derive(Default)]
struct Last {
    ready: u32,
    reports: u64,
}

impl Edges {
    /// Takes in the readiness the stack's notifier reports; `mirror` runs in the same
    /// critical section, so mirrors of it (the eventfd's level) follow the same order.
    /// The notifier runs under the stack lock, so its reports come in the stack's order.
    pub fn observe(&self, ready: u32, mirror: impl FnOnce()) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.reports += 1;
        self.take(&mut last, ready);
        mirror();
    }

    /// Takes in the readiness a call re-read after [`Edges::consumed`] returned
    /// `reports`, unless the notifier reported since (then the call's reading, made
    /// outside the stack lock, may be older than the notifier's: taken in, it would
    /// hide an edge already counted, and the next report would count it again).
    /// Returns whether it was taken in (and `mirror` ran).
    pub fn observe_since(&self, reports: u64, ready: u32, mirror: impl FnOnce()) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.reports != reports {
            return false;
        }
        self.take(&mut last, ready);
        mirror();
        true
    }

    fn take(&self, last: &mut Last, ready: u32) {
        let new = ready & !last.ready;
        last.ready = ready;
        if new & libc::POLLIN as u32 != 0 {
            self.input.fetch_add(1, Ordering::AcqRel);
        }
        if new & libc::POLLOUT as u32 != 0 {
            self.output.fetch_add(1, Ordering::AcqRel);
        }
        if new & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) as u32 != 0 {
            self.hangup.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Forgets that `bits` were set: the caller consumed them (read until nothing was
    /// left, wrote until the buffer was full), so seeing them again, even at once, is
    /// an edge. A spurious edge costs an EAGAIN; a missed one hangs an ET program.
    /// Returns the notifier's report count, for [`Edges::observe_since`].
    pub fn consumed(&self, bits: u32) -> u64 {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.ready &= !bits;
        last.reports
    }

    /// A number that grows with every edge an epoll watch of `events` cares about.
    pub fn count(&self, events: u32) -> u64 {
        let mut n = self.hangup.load(Ordering::Acquire);
        if events & libc::EPOLLIN as u32 != 0 {
            n += self.input.load(Ordering::Acquire);
        }
        if events & libc::EPOLLOUT as u32 != 0 {
            n += self.output.load(Ordering::Acquire);
        }
        n
    }
}

/// What a descriptor number is to the library.
#[derive(Clone, Default)]
pub enum Slot {
    /// Not ours: the kernel's.
    #[default]
    Kernel,
    /// A ustack socket.
    Sock(Arc<UFile>),
    /// A ustack socket inherited across fork: unusable in this process.
    Dead,
}

/// A ustack descriptor an epoll instance watches.
#[derive(Clone)]
pub struct Watch {
    /// The description (kept so a closed-and-reused number is noticed).
    pub file: Arc<UFile>,
    /// EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLET, EPOLLONESHOT.
    pub events: u32,
    /// The caller's data.
    pub data: u64,
    /// EPOLLONESHOT fired: silent until EPOLL_CTL_MOD.
    pub disarmed: bool,
    /// The edge count last reported (EPOLLET).
    pub seen: u64,
}

/// What the library keeps for one kernel epoll instance that watches ustack sockets.
pub struct EpollInfo {
    /// Wakes the instance's waiters when a ustack socket may have changed; it is
    /// registered in the kernel instance with [`crate::ops::WAKE_TOKEN`].
    pub wake: Arc<crate::wake::WakeFd>,
    /// The ustack descriptors watched, by number.
    pub watches: Mutex<HashMap<c_int, Watch>>,
}

/// The library's whole state in one process.
pub struct Process {
    slots: RwLock<Vec<Slot>>,
    /// The stack, started by the first AF_INET/AF_INET6 socket (or the error that
    /// stopped it, as an errno, reported once on stderr).
    pub stack: Mutex<Option<Result<NetStack, c_int>>>,
    /// Kernel epoll instances that watch ustack sockets, by number.
    pub epolls: Mutex<HashMap<c_int, Arc<EpollInfo>>>,
    /// Threads and epoll instances to wake when a socket changes.
    pub wakers: Arc<Wakers>,
    /// The process id this state belongs to.
    pub pid: c_int,
}

/// Whether any ustack descriptor was ever made: until then every call goes straight to
/// the kernel without looking at the table.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static CURRENT: AtomicPtr<Process> = AtomicPtr::new(core::ptr::null_mut());

impl Process {
    fn new(dead: Vec<c_int>) -> Process {
        let mut slots = Vec::new();
        for fd in dead {
            set_slot(&mut slots, fd, Slot::Dead);
        }
        Process {
            slots: RwLock::new(slots),
            stack: Mutex::new(None),
            epolls: Mutex::new(HashMap::new()),
            wakers: Arc::new(Wakers::default()),
            // SAFETY: getpid has no preconditions.
            pid: unsafe { libc::getpid() },
        }
    }

    /// What `fd` is.
    pub fn get(&self, fd: c_int) -> Slot {
        if fd < 0 {
            return Slot::Kernel;
        }
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        slots.get(fd as usize).cloned().unwrap_or_default()
    }

    /// Makes `fd` name `slot`, returning what it named. Callers drop the result after
    /// releasing every lock (dropping a [`UFile`] calls into the stack).
    pub fn set(&self, fd: c_int, slot: Slot) -> Slot {
        if matches!(slot, Slot::Sock(_)) {
            ACTIVE.store(true, Ordering::Release);
        }
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        set_slot(&mut slots, fd, slot)
    }

    /// Runs `f` with the table locked for writing: the kernel call that frees or reuses
    /// a number (close, dup2) and the table update happen as one step for other threads.
    /// `f` must only make raw kernel calls (`crate::real`).
    pub fn with_locked<R>(&self, f: impl FnOnce(&mut Vec<Slot>) -> R) -> R {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        f(&mut slots)
    }

    /// Every number naming a ustack socket or a dead one.
    pub fn numbers(&self) -> Vec<c_int> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !matches!(s, Slot::Kernel))
            .map(|(i, _)| i as c_int)
            .collect()
    }

    /// Empties the table (process exit), returning the descriptions to drop.
    pub fn take_all(&self) -> Vec<Slot> {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        core::mem::take(&mut *slots)
    }
}

/// Sets `slots[fd]`, growing the table; returns the old value.
pub fn set_slot(slots: &mut Vec<Slot>, fd: c_int, slot: Slot) -> Slot {
    let i = fd as usize;
    if i >= slots.len() {
        if matches!(slot, Slot::Kernel) {
            return Slot::Kernel;
        }
        slots.resize(i + 1, Slot::Kernel);
    }
    core::mem::replace(&mut slots[i], slot)
}

/// The current process's state (made on first use).
pub fn process() -> &'static Process {
    let p = CURRENT.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: CURRENT only ever holds pointers from Box::leak, never freed.
        return unsafe { &*p };
    }
    let fresh = Box::into_raw(Box::new(Process::new(Vec::new())));
    match CURRENT.compare_exchange(
        core::ptr::null_mut(),
        fresh,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        // SAFETY: we just leaked `fresh`; it lives forever.
        Ok(_) => unsafe { &*fresh },
        Err(other) => {
            // SAFETY: `fresh` was never shared; `other` is a leaked, live state.
            unsafe {
                drop(Box::from_raw(fresh));
                &*other
            }
        }
    }
}

/// Whether any ustack descriptor was ever made in this process image.
pub fn active() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

/// Whether `fd` may be ours (cheap: false until the first ustack socket exists).
pub fn lookup(fd: c_int) -> Slot {
    if !ACTIVE.load(Ordering::Acquire) {
        return Slot::Kernel;
    }
    process().get(fd)
}

/// In a forked child: abandon the parent's state (without locking it, unless it is
/// free) and start a fresh one in which the inherited ustack numbers are dead.
pub fn reset_after_fork() {
    let old = CURRENT.load(Ordering::Acquire);
    let mut dead = Vec::new();
    if !old.is_null() {
        // SAFETY: `old` came from Box::leak and is never freed.
        let old = unsafe { &*old };
        // A lock held by a thread that does not exist in the child stays held forever;
        // then the inherited numbers are simply not known (they act as eventfds).
        if let Ok(slots) = old.slots.try_read() {
            dead = slots
                .iter()
                .enumerate()
                .filter(|(_, s)| !matches!(s, Slot::Kernel))
                .map(|(i, _)| i as c_int)
                .collect();
        }
    }
    let fresh = Box::into_raw(Box::new(Process::new(dead)));
    CURRENT.store(fresh, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_slot_grows_only_for_sockets_and_returns_the_old_value() {
        let mut slots = Vec::new();
        assert!(matches!(
            set_slot(&mut slots, 7, Slot::Kernel),
            Slot::Kernel
        ));
        assert!(
            slots.is_empty(),
            "clearing an unknown number must not grow the table"
        );
        assert!(matches!(set_slot(&mut slots, 5, Slot::Dead), Slot::Kernel));
        assert_eq!(slots.len(), 6);
        assert!(matches!(set_slot(&mut slots, 5, Slot::Kernel), Slot::Dead));
        assert!(matches!(slots[5], Slot::Kernel));
    }

    #[test]
    fn edges_count_bits_that_appear_and_only_those_a_watch_asks_for() {
        let (i, o) = (libc::POLLIN as u32, libc::POLLOUT as u32);
        let e = Edges::default();
        let (in_only, out_only) = (libc::EPOLLIN as u32, libc::EPOLLOUT as u32);
        e.observe(o, || {});
        assert_eq!((e.count(in_only), e.count(out_only)), (0, 1));
        e.observe(o | i, || {});
        assert_eq!(e.count(in_only), 1, "data arrived");
        e.observe(o | i, || {});
        e.observe(i, || {});
        assert_eq!(
            e.count(in_only),
            1,
            "the same readiness, or OUT going away, is no IN edge"
        );
        e.observe(i | o, || {});
        assert_eq!((e.count(in_only), e.count(out_only)), (1, 2));
        e.observe(o, || {});
        e.observe(o | i, || {});
        assert_eq!(e.count(in_only), 2, "drained, then new data");
        e.observe(o | i | libc::POLLRDHUP as u32, || {});
        assert_eq!(e.count(in_only), 3, "a hang-up is an edge for every watch");
    }

    #[test]
    fn a_call_s_re_read_older_than_the_notifier_s_report_is_not_taken_in() {
        let (i, o) = (libc::POLLIN as u32, libc::POLLOUT as u32);
        let in_only = libc::EPOLLIN as u32;
        let e = Edges::default();
        e.observe(o | i, || {});
        assert_eq!(e.count(in_only), 1);
        // A receive drained the socket and re-reads it (outside the stack lock): it
        // sees no data; before it takes that in, a datagram lands and the notifier
        // counts the edge.
        let reports = e.consumed(i);
        let stale = o;
        e.observe(o | i, || {});
        assert_eq!(e.count(in_only), 2, "data after draining");
        let mut mirrored = false;
        assert!(!e.observe_since(reports, stale, || mirrored = true));
        assert!(
            !mirrored,
            "the eventfd's level must not go back to the stale reading"
        );
        // A later report that changes nothing for IN (the send side) is no IN edge;
        // taken in, the stale reading would have made it one.
        e.observe(o | i, || {});
        assert_eq!(
            e.count(in_only),
            2,
            "a spurious IN edge from a stale re-read"
        );
        // With no report between, the re-read is taken in: data still there after a
        // short read is an edge (the program stopped reading; it must hear of it).
        let reports = e.consumed(i);
        assert!(e.observe_since(reports, o | i, || mirrored = true));
        assert!(mirrored);
        assert_eq!(e.count(in_only), 3);
    }

    #[test]
    fn a_fresh_process_after_fork_marks_inherited_numbers_dead() {
        let p = Process::new(vec![3, 9]);
        assert!(matches!(p.get(3), Slot::Dead));
        assert!(matches!(p.get(9), Slot::Dead));
        assert!(matches!(p.get(4), Slot::Kernel));
        assert!(matches!(p.get(-1), Slot::Kernel));
        assert_eq!(p.numbers(), vec![3, 9]);
        assert!(matches!(p.set(3, Slot::Kernel), Slot::Dead));
        assert_eq!(p.numbers(), vec![9]);
    }
}
