//! The driver thread, and the [`NetStack`] handle and its [`Builder`].
//!
//! One thread per stack owns the link; the [`Interface`] and the descriptor table sit
//! behind one `Mutex` shared with the application threads (STYLE §3). The loop:
//!
//! 1. compute the timeout: the interface's and the link's next deadline;
//! 2. wait with poll(2) on {the link's fd, if it has one; the wake-up eventfd};
//! 3. lock; `Interface::poll_link(now, link)` (every ready frame in, due timers, every
//!    pending frame out); drain `Interface::poll_ready`, which names every socket (TCP,
//!    UDP or raw) whose readiness may have changed, and re-check only those of them
//!    that are *watched* (a blocked thread or an epoll registration), found through a
//!    map from engine socket to description; wake whoever waits for what became
//!    ready; unlock. Nothing re-parses frames, and no round re-checks every watched
//!    socket.
//!
//! Application calls run under the same lock and, after anything that queues output or
//! changes state, write the eventfd so the driver runs at once (mio's `Waker`).
//!
//! Links without a file descriptor (a plain [`MemoryLink`], or a custom `Box<dyn Link>`)
//! cannot wake poll(2), so for them the wait is bounded by [`POLL_TICK`]. A pair built
//! with [`Builder::build_pair`] has no such tick: each end's sends write the other
//! stack's eventfd.
//!
//! `now` is the time since the stack started, from `std::time::Instant`.

use crate::poll::{EpollSet, PollEvents};
use crate::table::{FileKey, Sock, Table};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;
use ustack::iface::{Config, Counters, Interface};
use ustack::link::sys::{AfPacketLink, TapLink};
use ustack::link::{Link, MemoryLink, PcapTimestamps, PcapWriter};
use ustack::socket::SocketHandle;
use ustack::time::Instant;
use ustack::wire::{EthernetAddress, Ipv4Cidr};

/// Longest wait of the driver on a link that cannot wake it (no fd, no notifier).
pub const POLL_TICK: Duration = Duration::from_millis(1);

/// Most descriptors one stack hands out.
pub const MAX_FDS: usize = 1 << 20;

/// Small wrappers over the two syscalls the driver needs; the only `unsafe` here.
mod sys {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

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

    /// poll(2) for readability on up to two fds; `None` waits forever. EINTR counts as
    /// a timeout: the caller loops anyway.
    pub fn wait_readable(fds: &[RawFd], timeout: Option<std::time::Duration>) -> io::Result<()> {
        let mut pfds = [libc::pollfd {
            fd: -1,
            events: libc::POLLIN,
            revents: 0,
        }; 2];
        for (p, &fd) in pfds.iter_mut().zip(fds) {
            p.fd = fd;
        }
        let n = fds.len().min(2);
        let ms: libc::c_int = match timeout {
            None => -1,
            // Round up: a deadline 300 µs away must not become a 0 ms busy loop.
            Some(d) => d.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
        };
        // SAFETY: `pfds` holds `n` (≤ 2) initialised pollfds.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), n as libc::nfds_t, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(())
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
    fn new() -> io::Result<Waker> {
        Ok(Waker {
            fd: sys::eventfd()?,
            pending: AtomicBool::new(false),
        })
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
    fn drain(&self) -> bool {
        let woken = sys::eventfd_read(&self.fd);
        self.pending.store(false, Ordering::Release);
        woken
    }
}

/// Everything the stack mutex protects.
pub(crate) struct State {
    pub iface: Interface,
    pub table: Table,
    pub epolls: HashMap<crate::poll::EpollKey, EpollSet>,
    pub next_epoll: u64,
    stopping: bool,
    /// The driver thread died (a panic in the engine): blocking calls fail with EIO.
    pub dead: bool,
    link_error: Option<String>,
    /// Frames produced outside the driver (see [`State::flush_to_outbox`]), sent by the
    /// driver before anything else.
    outbox: std::collections::VecDeque<Vec<u8>>,
    /// The watched descriptions by the engine socket behind them: what the engine's
    /// `poll_ready` names is looked up here, so a round re-checks only those.
    watched_by_socket: HashMap<SocketHandle, FileKey>,
    stats: DriverStats,
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
        let ready = crate::poll::readiness(iface, file);
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
    pub(crate) fn wake_all(file: &crate::table::File) {
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

    /// Re-checks the watched files whose engine sockets the engine reports as changed
    /// (`Interface::poll_ready`: data, room, errors, state, of every socket kind).
    fn notify_ready(&mut self) {
        let mut keys = core::mem::take(&mut self.recheck);
        keys.clear();
        while let Some(h) = self.iface.poll_ready() {
            self.stats.ready_sockets += 1;
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
    fn wake_everyone(&mut self) {
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
    start: std::time::Instant,
}

impl Shared {
    /// Locks the stack. A panic in another thread while holding the lock leaves the
    /// engine usable (its state is always consistent between calls), so poisoning is
    /// ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stack's current time.
    pub(crate) fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as i64)
    }
}

struct Handle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.waker.wake();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!(target: "ustack::socket", "driver thread panicked");
            }
        }
    }
}

/// A running stack: a cloneable handle (an `Arc` inside) to the interface, its
/// descriptor table and its driver thread. Dropping the last handle (sockets of the
/// [`net`](crate::net) layer hold one each) closes every socket, flushes pending output
/// once, and joins the driver thread.
#[derive(Clone)]
pub struct NetStack {
    handle: Arc<Handle>,
}

impl core::fmt::Debug for NetStack {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NetStack")
            .field("ip", &self.ip())
            .finish_non_exhaustive()
    }
}

impl NetStack {
    /// A builder for a stack.
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// Makes the driver run now (after queuing output or changing state).
    pub(crate) fn kick(&self) {
        self.handle.shared.waker.wake();
    }

    /// The stack's IPv4 address.
    pub fn ip(&self) -> core::net::Ipv4Addr {
        self.shared().lock().iface.ip_addr()
    }

    /// The interface's address and prefix.
    pub fn cidr(&self) -> Ipv4Cidr {
        self.shared().lock().iface.config().ip
    }

    /// The interface's MAC address.
    pub fn mac(&self) -> EthernetAddress {
        self.shared().lock().iface.config().mac
    }

    /// A snapshot of the interface counters (every layer, drops by reason).
    pub fn counters(&self) -> Counters {
        self.shared().lock().iface.counters().clone()
    }

    /// Open descriptors.
    pub fn open_fds(&self) -> usize {
        self.shared().lock().table.len()
    }

    /// What the driver thread has done so far.
    pub fn driver_stats(&self) -> DriverStats {
        self.shared().lock().stats
    }

    /// The last error of the link, if it failed (the driver keeps retrying).
    pub fn link_error(&self) -> Option<String> {
        self.shared().lock().link_error.clone()
    }

    /// Runs `f` on the interface under the stack lock, then wakes the driver. For tools
    /// and tests that need the engine directly; do not block inside.
    pub fn with_interface<R>(&self, f: impl FnOnce(&mut Interface, Instant) -> R) -> R {
        let now = self.shared().now();
        let r = f(&mut self.shared().lock().iface, now);
        self.kick();
        r
    }
}

enum LinkSpec {
    None,
    Tap(String),
    AfPacket(String),
    Boxed(Box<dyn Link + Send>, Option<RawFd>, bool),
}

type LinkWrapper = Box<dyn FnOnce(Box<dyn Link + Send>) -> Box<dyn Link + Send> + Send>;
type ConfigEdit = Box<dyn FnOnce(&mut Config) + Send>;

/// Builds a [`NetStack`]: a link, an address, and optional settings.
///
/// ```no_run
/// # fn main() -> std::io::Result<()> {
/// let stack = ustack_socket::NetStack::builder()
///     .tap("tap0")
///     .ip("10.0.0.2/24".parse().unwrap())
///     .gateway("10.0.0.1".parse().unwrap())
///     .build()?;
/// # Ok(()) }
/// ```
pub struct Builder {
    link: LinkSpec,
    ip: Option<Ipv4Cidr>,
    mac: Option<EthernetAddress>,
    gateway: Option<core::net::Ipv4Addr>,
    mtu: Option<usize>,
    pcap: Option<PathBuf>,
    config: Vec<ConfigEdit>,
    wrap: Vec<LinkWrapper>,
    max_fds: usize,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            link: LinkSpec::None,
            ip: None,
            mac: None,
            gateway: None,
            mtu: None,
            pcap: None,
            config: Vec::new(),
            wrap: Vec::new(),
            max_fds: MAX_FDS,
        }
    }
}

impl Builder {
    /// Uses the TAP device `name` (created if missing; needs CAP_NET_ADMIN).
    pub fn tap(mut self, name: &str) -> Builder {
        self.link = LinkSpec::Tap(name.to_owned());
        self
    }

    /// Uses an AF_PACKET socket on the existing interface `ifname`.
    pub fn af_packet(mut self, ifname: &str) -> Builder {
        self.link = LinkSpec::AfPacket(ifname.to_owned());
        self
    }

    /// Uses one end of an in-memory pair; the driver polls it every [`POLL_TICK`]. For
    /// two stacks joined in memory without a tick, see [`Builder::build_pair`].
    pub fn memory(mut self, link: MemoryLink) -> Builder {
        self.link = LinkSpec::Boxed(Box::new(link), None, false);
        self
    }

    /// Uses any link; without a file descriptor the driver polls it every [`POLL_TICK`].
    pub fn link(mut self, link: Box<dyn Link + Send>) -> Builder {
        self.link = LinkSpec::Boxed(link, None, false);
        self
    }

    /// Uses any link whose readiness shows on `fd` (readable when a frame waits).
    pub fn link_with_fd(mut self, link: Box<dyn Link + Send>, fd: RawFd) -> Builder {
        self.link = LinkSpec::Boxed(link, Some(fd), false);
        self
    }

    /// Our address and prefix length (required).
    pub fn ip(mut self, cidr: Ipv4Cidr) -> Builder {
        self.ip = Some(cidr);
        self
    }

    /// Our MAC address (default: `02:00:` followed by the four bytes of the address).
    pub fn mac(mut self, mac: EthernetAddress) -> Builder {
        self.mac = Some(mac);
        self
    }

    /// The default gateway.
    pub fn gateway(mut self, gw: core::net::Ipv4Addr) -> Builder {
        self.gateway = Some(gw);
        self
    }

    /// The IP MTU (default 1500).
    pub fn mtu(mut self, mtu: usize) -> Builder {
        self.mtu = Some(mtu);
        self
    }

    /// Records every frame in and out to a pcap file at `path`.
    pub fn pcap(mut self, path: impl Into<PathBuf>) -> Builder {
        self.pcap = Some(path.into());
        self
    }

    /// Edits the interface [`Config`] after the settings above are applied.
    pub fn config(mut self, f: impl FnOnce(&mut Config) + Send + 'static) -> Builder {
        self.config.push(Box::new(f));
        self
    }

    /// Wraps the link (after pcap recording, so the file shows what the device moved):
    /// the hook for a fault injector or a tracer.
    pub fn wrap_link(
        mut self,
        f: impl FnOnce(Box<dyn Link + Send>) -> Box<dyn Link + Send> + Send + 'static,
    ) -> Builder {
        self.wrap.push(Box::new(f));
        self
    }

    /// Bounds the descriptor table (default [`MAX_FDS`]); beyond it calls fail EMFILE.
    pub fn max_fds(mut self, n: usize) -> Builder {
        self.max_fds = n;
        self
    }

    /// Opens the link, starts the driver thread and returns the handle.
    ///
    /// # Errors
    /// No address or no link was given, the device could not be opened, the pcap file
    /// could not be created, or the eventfd or thread could not be made.
    pub fn build(self) -> io::Result<NetStack> {
        self.build_with(Arc::new(Waker::new()?))
    }

    /// Builds two stacks joined by an in-memory link of `capacity` frames per
    /// direction; each end's sends wake the other's driver, so neither polls on a tick.
    /// Any link set on either builder is replaced.
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn build_pair(self, other: Builder, capacity: usize) -> io::Result<(NetStack, NetStack)> {
        let (wa, wb) = (Arc::new(Waker::new()?), Arc::new(Waker::new()?));
        let (la, lb) = MemoryLink::pair(capacity);
        let la = NotifyLink {
            inner: la,
            peer: wb.clone(),
        };
        let lb = NotifyLink {
            inner: lb,
            peer: wa.clone(),
        };
        let mut a = self;
        let mut b = other;
        a.link = LinkSpec::Boxed(Box::new(la), None, true);
        b.link = LinkSpec::Boxed(Box::new(lb), None, true);
        Ok((a.build_with(wa)?, b.build_with(wb)?))
    }

    fn build_with(self, waker: Arc<Waker>) -> io::Result<NetStack> {
        let ip = self
            .ip
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no IP address"))?;
        let (mut link, fd, notifies): (Box<dyn Link + Send>, Option<RawFd>, bool) = match self.link
        {
            LinkSpec::None => {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "no link"));
            }
            LinkSpec::Tap(name) => {
                let l = TapLink::open(&name)?;
                let fd = l.as_raw_fd();
                (Box::new(l), Some(fd), false)
            }
            LinkSpec::AfPacket(ifname) => {
                let l = AfPacketLink::open(&ifname)?;
                let fd = l.as_raw_fd();
                (Box::new(l), Some(fd), false)
            }
            LinkSpec::Boxed(l, fd, n) => (l, fd, n),
        };
        if let Some(path) = &self.pcap {
            let file = io::BufWriter::new(std::fs::File::create(path)?);
            let epoch = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as i64)
                .unwrap_or(0);
            link = Box::new(PcapWriter::new(link, file, epoch, PcapTimestamps::Micros)?);
        }
        for w in self.wrap {
            link = w(link);
        }
        let a = ip.address().octets();
        let mac = self
            .mac
            .unwrap_or(EthernetAddress([0x02, 0x00, a[0], a[1], a[2], a[3]]));
        let mut config = Config::new(mac, ip);
        config.gateway = self.gateway;
        if let Some(mtu) = self.mtu {
            config.mtu = mtu;
        }
        for f in self.config {
            f(&mut config);
        }
        let start = std::time::Instant::now();
        let iface = Interface::new(config, Instant::ZERO);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                iface,
                table: Table::new(self.max_fds),
                epolls: HashMap::new(),
                next_epoll: 0,
                stopping: false,
                dead: false,
                link_error: None,
                outbox: std::collections::VecDeque::new(),
                watched_by_socket: HashMap::new(),
                stats: DriverStats::default(),
                recheck: Vec::new(),
            }),
            waker,
            start,
        });
        let tick = if fd.is_some() || notifies {
            None
        } else {
            Some(POLL_TICK)
        };
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("ustack-driver-{}", ip.address()))
            .spawn(move || run(s, link, fd, tick))?;
        log::info!(target: "ustack::socket", "stack {ip} ({mac}) up");
        Ok(NetStack {
            handle: Arc::new(Handle {
                shared,
                thread: Some(thread),
            }),
        })
    }
}

/// A memory link whose sends wake the peer stack's driver.
struct NotifyLink {
    inner: MemoryLink,
    peer: Arc<Waker>,
}

impl Link for NotifyLink {
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.inner.recv(now, buf)
    }
    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        self.inner.send(now, frame)?;
        self.peer.wake();
        Ok(())
    }
}

fn send_outbox(st: &mut State, link: &mut dyn Link, now: Instant) {
    while let Some(frame) = st.outbox.pop_front() {
        if let Err(e) = link.send(now, &frame) {
            log::debug!(target: "ustack::socket", "outbox frame lost: {e}");
        }
    }
}

/// The driver loop (see the module docs).
fn run(
    shared: Arc<Shared>,
    mut link: Box<dyn Link + Send>,
    fd: Option<RawFd>,
    tick: Option<Duration>,
) {
    let wake_fd = shared.waker.fd.as_raw_fd();
    let fds: Vec<RawFd> = fd.into_iter().chain([wake_fd]).collect();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drive(&shared, &mut *link, &fds, tick)
    }));
    if res.is_err() {
        log::error!(target: "ustack::socket", "driver thread panicked: the stack is dead, blocking calls fail with EIO");
        let mut st = shared.lock();
        st.dead = true;
        st.stopping = true;
        st.link_error = Some("driver thread panicked".to_owned());
        st.wake_everyone();
        return;
    }
    // Stopping: nobody holds a descriptor any more. Close every socket, then flush
    // whatever that queued (FINs, RSTs) once.
    let mut st = shared.lock();
    let files = st.table.drain_files();
    st.watched_by_socket.clear();
    let n = files.len();
    let now = shared.now();
    for f in files {
        crate::bsd::close_sock(&mut st, f.sock, now);
    }
    send_outbox(&mut st, &mut *link, now);
    if let Err(e) = st.iface.poll_link(now, &mut *link) {
        log::debug!(target: "ustack::socket", "final flush: {e}");
    }
    log::info!(target: "ustack::socket", "stack {} down ({n} sockets closed)", st.iface.ip_addr());
}

/// The loop proper; returns when the stack is stopping.
fn drive(shared: &Shared, link: &mut dyn Link, fds: &[RawFd], tick: Option<Duration>) {
    let mut failing = false;
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
            t
        };
        if let Err(e) = sys::wait_readable(fds, timeout) {
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
        // The engine names every socket whose readiness frames, timers, ARP, drops or
        // calls (whose output left this round) may have changed; wake only their waiters.
        st.notify_ready();
    }
}
