//! The per-stack descriptor table: integer descriptors → open sockets.
//!
//! As in POSIX, a descriptor ([`Fd`]) names an *open file description* ([`File`]);
//! [`dup`](crate::NetStack::dup) makes a second descriptor for the same description, and
//! the socket is closed when its last descriptor is. O_NONBLOCK and the socket options
//! live on the description, so they are shared between duplicates, as on Linux.
//!
//! Invariants:
//! - Descriptors are allocated lowest-free first, starting at [`FIRST_FD`].
//! - A [`FileKey`] is never reused, so a thread blocked on a socket whose descriptor
//!   was closed and reallocated notices (EBADF) instead of waiting on a stranger.
//! - `watched` holds exactly the files with a blocked thread or an epoll registration;
//!   the driver re-checks only those of them whose engine socket `poll_ready` names.

use crate::errno::Errno;
use crate::events::{EpollKey, PollEvents};
use core::net::IpAddr;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Condvar};
use std::time::Duration;
use ustack::socket::raw::RawHandle;
use ustack::socket::tcp::TcpHandle;
use ustack::socket::udp::UdpHandle;
use ustack::socket::{IpFamily, SocketHandle};

/// A hasher for the host's own integer keys (descriptors, description keys, engine
/// handles): a multiply-rotate over the words (FxHash's scheme). Those keys are
/// counters and slab indices the host hands out, never chosen by a peer, so SipHash's
/// flooding resistance buys nothing and costs a few hundred nanoseconds per blocking
/// call.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, w: u32) {
        self.write_u64(u64::from(w));
    }
    fn write_i32(&mut self, w: i32) {
        self.write_u64(w as u32 as u64);
    }
    fn write_usize(&mut self, w: usize) {
        self.write_u64(w as u64);
    }
    fn write_isize(&mut self, w: isize) {
        self.write_u64(w as u64);
    }
    fn write_u16(&mut self, w: u16) {
        self.write_u64(u64::from(w));
    }
    fn write_u8(&mut self, w: u8) {
        self.write_u64(u64::from(w));
    }
}

/// A map keyed by the host's own integers ([`IdHasher`]).
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
/// A set of the host's own integers ([`IdHasher`]).
pub(crate) type IdSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

/// A socket descriptor: an index into its stack's descriptor table (like a Unix fd,
/// but meaningful only to the [`NetStack`](crate::NetStack) that returned it).
pub type Fd = i32;

/// The lowest descriptor handed out; 0, 1 and 2 are left alone so a socket never looks
/// like standard input or output in logs.
pub const FIRST_FD: Fd = 3;

/// Identifies an open file description for its whole life; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct FileKey(u64);

/// The engine-side socket behind a description.
#[derive(Debug)]
pub(crate) enum Sock {
    /// A UDP socket.
    Udp(UdpHandle),
    /// A raw IP socket for `protocol`, with the local address given to bind(2) (only
    /// reported back by getsockname; the stack receives on its addresses anyway), as
    /// the engine sees addresses (never IPv4-mapped).
    Raw {
        h: RawHandle,
        protocol: u8,
        local: Option<IpAddr>,
        remote: Option<IpAddr>,
    },
    /// A TCP socket (see [`crate::tcp`]).
    Tcp(TcpSock),
}

/// The engine side of a TCP descriptor (the calls are in [`crate::tcp`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TcpSock {
    pub h: TcpHandle,
}

impl Sock {
    /// The engine socket, as `Interface::poll_ready` names it.
    pub(crate) fn handle(&self) -> SocketHandle {
        match self {
            Sock::Udp(h) => SocketHandle::Udp(*h),
            Sock::Raw { h, .. } => SocketHandle::Raw(*h),
            Sock::Tcp(t) => SocketHandle::Tcp(t.h),
        }
    }
}

/// Socket options kept on the description (applied to the engine where it has them),
/// and the socket's address family (inherited, like the options, by accepted sockets).
#[derive(Clone, Debug)]
pub(crate) struct Opts {
    /// AF_INET or AF_INET6: how addresses are taken and reported (`crate::family`).
    pub family: IpFamily,
    /// IPV6_V6ONLY (AF_INET6 only).
    pub v6only: bool,
    /// IPV6_TCLASS as set (the traffic class of an IPv6 socket's packets).
    pub tclass: i32,
    /// IPV6_UNICAST_HOPS as set (-1: the interface's hop limit).
    pub unicast_hops: i32,
    /// IP_TTL as set (-1: the interface's TTL).
    pub ttl: i32,
    /// IP_TOS as set.
    pub tos: i32,
    pub reuseaddr: bool,
    pub keepalive: bool,
    pub linger: Option<Duration>,
    pub rcvtimeo: Option<Duration>,
    pub sndtimeo: Option<Duration>,
    pub rcvbuf: usize,
    pub sndbuf: usize,
    pub nodelay: bool,
    pub cork: bool,
    pub keepidle: Duration,
    pub keepintvl: Duration,
    pub keepcnt: u32,
    pub congestion: String,
    /// SO_BUSY_POLL in µs (0: off): how long a blocking receive, accept or poll spins
    /// on the link before it sleeps (`state::busy_poll`).
    pub busy_poll: u32,
}

impl Opts {
    pub(crate) fn new(rcvbuf: usize, sndbuf: usize) -> Opts {
        Opts {
            family: IpFamily::V4,
            v6only: false,
            tclass: 0,
            unicast_hops: -1,
            ttl: -1,
            tos: 0,
            reuseaddr: false,
            keepalive: false,
            linger: None,
            rcvtimeo: None,
            sndtimeo: None,
            rcvbuf,
            sndbuf,
            nodelay: false,
            cork: false,
            // Linux defaults: tcp_keepalive_time 7200 s, intvl 75 s, probes 9.
            keepidle: Duration::from_secs(7200),
            keepintvl: Duration::from_secs(75),
            keepcnt: 9,
            congestion: String::from("reno"),
            busy_poll: 0,
        }
    }
}

/// A thread blocked on a file until its readiness intersects `mask`. The condvar is
/// used with the stack's one mutex, so registering, re-checking and waiting happen
/// atomically with respect to the driver (gVisor `waiter.Entry`).
#[derive(Clone, Debug)]
pub(crate) struct Waiter {
    pub cv: Arc<Condvar>,
    pub mask: PollEvents,
}

/// An epoll instance watching a file through descriptor `fd`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EpollWatch {
    pub epoll: EpollKey,
    pub fd: Fd,
    pub mask: PollEvents,
}

/// What an epoll instance watches on one descriptor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Interest {
    pub key: FileKey,
    pub events: PollEvents,
    pub data: u64,
    /// EPOLLONESHOT fired: ignored until re-armed with `Mod`.
    pub disarmed: bool,
}

/// The state of one epoll instance, kept in the stack (the calls are in
/// [`crate::poll`]).
#[derive(Debug, Default)]
pub(crate) struct EpollSet {
    pub interest: IdMap<Fd, Interest>,
    pub ready: VecDeque<Fd>,
    pub queued: IdSet<Fd>,
    pub cv: Arc<Condvar>,
}

impl EpollSet {
    /// Puts `fd` on the ready list (once); true if it was not on it, and the waiting
    /// threads are to be signalled (`State::signal`: one may be leading the link).
    pub(crate) fn mark_ready(&mut self, fd: Fd) -> bool {
        if self.queued.insert(fd) {
            self.ready.push_back(fd);
            return true;
        }
        false
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

/// An open file description: one socket and its per-description state.
#[derive(Debug)]
pub(crate) struct File {
    pub sock: Sock,
    /// Descriptors naming this description.
    pub refs: u32,
    /// O_NONBLOCK.
    pub nonblocking: bool,
    pub opts: Opts,
    /// shutdown(SHUT_RD) was called.
    pub shut_rd: bool,
    /// shutdown(SHUT_WR) was called.
    pub shut_wr: bool,
    /// An asynchronous error taken from the engine while computing readiness, reported
    /// by the next call or SO_ERROR.
    pub error: Option<Errno>,
    pub waiters: Vec<Waiter>,
    pub epolls: Vec<EpollWatch>,
    /// Called on every readiness report (`crate::notifier`).
    pub notifier: Option<crate::events::Notifier>,
}

impl File {
    pub(crate) fn new(sock: Sock, opts: Opts, nonblocking: bool) -> File {
        File {
            sock,
            refs: 1,
            nonblocking,
            opts,
            shut_rd: false,
            shut_wr: false,
            error: None,
            waiters: Vec::new(),
            epolls: Vec::new(),
            notifier: None,
        }
    }

    /// Whether the round must re-check it: a thread blocks on it, an epoll set watches
    /// it, or a readiness notifier is set.
    pub(crate) fn watched(&self) -> bool {
        !self.waiters.is_empty() || !self.epolls.is_empty() || self.notifier.is_some()
    }
}

/// Descriptors and the descriptions they name.
#[derive(Debug)]
pub(crate) struct Table {
    fds: Vec<Option<FileKey>>,
    files: IdMap<FileKey, File>,
    next_key: u64,
    /// Lowest possibly free slot in `fds`.
    free_hint: usize,
    max_fds: usize,
    pub watched: IdSet<FileKey>,
}

impl Table {
    pub(crate) fn new(max_fds: usize) -> Table {
        Table {
            fds: Vec::new(),
            files: IdMap::default(),
            next_key: 0,
            free_hint: 0,
            max_fds,
            watched: IdSet::default(),
        }
    }

    fn alloc_fd(&mut self, key: FileKey) -> Result<Fd, Errno> {
        let start = self.free_hint.min(self.fds.len());
        let slot = match self.fds[start..].iter().position(Option::is_none) {
            Some(i) => start + i,
            None => {
                if self.fds.len() >= self.max_fds {
                    return Err(Errno::EMFILE);
                }
                self.fds.push(None);
                self.fds.len() - 1
            }
        };
        self.fds[slot] = Some(key);
        self.free_hint = slot + 1;
        Ok(slot as Fd + FIRST_FD)
    }

    /// Installs a new description and returns its descriptor.
    pub(crate) fn insert(&mut self, file: File) -> Result<(Fd, FileKey), Errno> {
        let key = FileKey(self.next_key);
        let fd = self.alloc_fd(key)?;
        self.next_key += 1;
        self.files.insert(key, file);
        Ok((fd, key))
    }

    /// The description `fd` names.
    pub(crate) fn key(&self, fd: Fd) -> Result<FileKey, Errno> {
        usize::try_from(fd - FIRST_FD)
            .ok()
            .and_then(|i| self.fds.get(i).copied().flatten())
            .ok_or(Errno::EBADF)
    }

    pub(crate) fn file(&self, key: FileKey) -> Result<&File, Errno> {
        self.files.get(&key).ok_or(Errno::EBADF)
    }

    pub(crate) fn file_mut(&mut self, key: FileKey) -> Result<&mut File, Errno> {
        self.files.get_mut(&key).ok_or(Errno::EBADF)
    }

    /// A second descriptor for the description `fd` names.
    pub(crate) fn dup(&mut self, fd: Fd) -> Result<Fd, Errno> {
        let key = self.key(fd)?;
        let new = self.alloc_fd(key)?;
        self.file_mut(key)?.refs += 1;
        Ok(new)
    }

    /// Removes descriptor `fd`; returns its description's key, and the description
    /// itself if that was its last descriptor.
    pub(crate) fn remove_fd(&mut self, fd: Fd) -> Result<(FileKey, Option<File>), Errno> {
        let key = self.key(fd)?;
        let slot = (fd - FIRST_FD) as usize;
        self.fds[slot] = None;
        self.free_hint = self.free_hint.min(slot);
        while self.fds.last().is_some_and(Option::is_none) {
            self.fds.pop();
        }
        let file = self.files.get_mut(&key).ok_or(Errno::EBADF)?;
        file.refs -= 1;
        if file.refs == 0 {
            self.watched.remove(&key);
            Ok((key, self.files.remove(&key)))
        } else {
            Ok((key, None))
        }
    }

    /// Keeps `watched` in step with the file's waiters and epoll registrations.
    pub(crate) fn update_watched(&mut self, key: FileKey) {
        match self.files.get(&key) {
            Some(f) if f.watched() => {
                self.watched.insert(key);
            }
            _ => {
                self.watched.remove(&key);
            }
        }
    }

    /// Every live description (for shutdown).
    pub(crate) fn drain_files(&mut self) -> Vec<File> {
        self.fds.clear();
        self.free_hint = 0;
        self.watched.clear();
        self.files.drain().map(|(_, f)| f).collect()
    }

    /// Open descriptors.
    pub(crate) fn len(&self) -> usize {
        self.fds.iter().filter(|s| s.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> File {
        let mut udp = ustack::socket::udp::UdpLayer::new(Default::default(), 0);
        File::new(Sock::Udp(udp.socket()), Opts::new(1, 1), false)
    }

    #[test]
    fn lowest_free_descriptor_first_and_keys_never_reused() {
        let mut t = Table::new(16);
        let (a, ka) = t.insert(file()).unwrap();
        let (b, _) = t.insert(file()).unwrap();
        assert_eq!((a, b), (FIRST_FD, FIRST_FD + 1));
        let (_, gone) = t.remove_fd(a).unwrap();
        assert!(gone.is_some());
        assert_eq!(t.key(a), Err(Errno::EBADF));
        let (c, kc) = t.insert(file()).unwrap();
        assert_eq!(c, a);
        assert_ne!(kc, ka);
        assert_eq!(t.key(-1), Err(Errno::EBADF));
    }

    #[test]
    fn dup_keeps_the_description_until_the_last_close() {
        let mut t = Table::new(16);
        let (a, k) = t.insert(file()).unwrap();
        let b = t.dup(a).unwrap();
        assert_eq!(t.key(b), Ok(k));
        assert!(t.remove_fd(a).unwrap().1.is_none());
        assert!(t.file(k).is_ok());
        assert!(t.remove_fd(b).unwrap().1.is_some());
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn table_is_bounded() {
        let mut t = Table::new(2);
        t.insert(file()).unwrap();
        t.insert(file()).unwrap();
        assert_eq!(t.insert(file()).unwrap_err(), Errno::EMFILE);
    }
}
