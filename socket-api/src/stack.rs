//! [`NetStack`], the handle every thread of an application holds, and its
//! [`Builder`]. Building opens the link, composes the host wrappers around it
//! ([`LinkOptions`]) and starts the driver thread (`driver`); the calls on a stack
//! live by concern in `bsd` (the BSD calls) and `poll` (poll and epoll), each an
//! `impl NetStack` block over the shared state (`state`).

use crate::bsd::{Calls, PollFd, SockOpt, SockOptName};
use crate::driver::{self, POLL_TICK};
use crate::errno::Errno;
use crate::hook::Hook;
use crate::link::{Clock, Device, LinkOptions, LinkReport, LinkStats, OsLink, Reported};
use crate::state::{DriverStats, LinkIo, Shared, State, Waker};
use crate::table::Fd;
use core::net::SocketAddr;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use ustack::iface::{Config, Counters, Interface};
use ustack::link::{Link, MemoryLink, RingStats};
use ustack::time::Instant;
use ustack::wire::{EthernetAddress, Ipv4Cidr};

/// Most descriptors one stack hands out.
pub const MAX_FDS: usize = 1 << 20;

struct Handle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Handle {
    /// Tells the driver to stop and waits for it: it closes every socket, flushes once
    /// and drops the link (which files the [`LinkReport`]).
    fn halt(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.waker.wake();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!(target: "ustack::socket", "driver thread panicked");
            }
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A running stack: a cloneable handle (an `Arc` inside) to the interface, its
/// descriptor table and its driver thread. Dropping the last handle (sockets of the
/// [`net`](crate::net) layer hold one each) closes every socket, flushes pending output
/// once, and joins the driver thread; [`stop`](NetStack::stop) does the same and hands
/// the interface back.
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

/// Wakes a stack's driver ([`NetStack::driver_waker`]); waking a stopped stack does
/// nothing.
#[derive(Clone, Debug)]
pub struct DriverWaker(Arc<Waker>);

impl DriverWaker {
    /// Makes the driver run a round soon.
    pub fn wake(&self) {
        self.0.wake();
    }
}

/// What a stack hands back when [`NetStack::stop`] ends it.
pub struct Stopped {
    /// The interface, for its counters and sockets' last state.
    pub iface: Interface,
    /// What crossed the link (counted above the host wrappers).
    pub link: LinkStats,
    /// The device's receive-ring counters when the driver dropped it (`None` without a
    /// ring; see [`NetStack::ring_stats`]).
    pub ring: Option<RingStats>,
    /// What the host wrappers did, when the stack was built with [`LinkOptions`].
    pub report: Option<LinkReport>,
    /// What the host loop did (rounds by the driver and by callers, leads, wake-ups).
    pub driver: DriverStats,
    /// The link's last error, if it was failing when the stack stopped.
    pub link_error: Option<String>,
    /// The stack's time when it stopped.
    pub now: Instant,
}

impl core::fmt::Debug for Stopped {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Stopped")
            .field("ip", &self.iface.ip_addr())
            .field("link", &self.link)
            .field("ring", &self.ring)
            .field("report", &self.report)
            .field("driver", &self.driver)
            .field("link_error", &self.link_error)
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

    /// The BSD calls on this stack (`bsd.rs`).
    fn calls(&self) -> Calls<'_> {
        Calls::new(self.shared())
    }

    /// A handle that makes the driver run a round (and its hooks) soon, for a thread
    /// that hands a hook work from outside the stack. It does not keep the stack alive.
    pub fn driver_waker(&self) -> DriverWaker {
        DriverWaker(self.handle.shared.waker.clone())
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

    /// What the host loop has done so far: rounds by the driver and by application
    /// threads, waits on the link, wake-ups (see the [`driver`](crate::driver) module).
    pub fn driver_stats(&self) -> DriverStats {
        self.shared().lock().driver_stats()
    }

    /// What crossed the link so far.
    pub fn link_stats(&self) -> LinkStats {
        self.shared().lock().link_stats()
    }

    /// What the device's receive ring saw so far (frames, drops by reason, the
    /// kernel's drops), or `None` when the device has none: only an AF_PACKET link
    /// without offloads receives through `PACKET_RX_RING`. Reads the kernel's drop
    /// count (a system call) under the stack lock, so call it to report, not per frame.
    pub fn ring_stats(&self) -> Option<RingStats> {
        self.shared().lock().ring_stats()
    }

    /// The last error of the link, if it failed (the driver keeps retrying).
    pub fn link_error(&self) -> Option<String> {
        self.shared().lock().link_error.clone()
    }

    /// Whether the driver thread is running (false once it stopped or died).
    pub fn is_running(&self) -> bool {
        let alive = self
            .handle
            .thread
            .as_ref()
            .is_some_and(|t| !t.is_finished());
        alive && !self.shared().lock().dead
    }

    /// Runs `f` on the interface under the stack lock, then a round (what `f` queued
    /// goes out). For tools and tests that need the engine directly; do not block
    /// inside.
    pub fn with_interface<R>(&self, f: impl FnOnce(&mut Interface, Instant) -> R) -> R {
        let now = self.shared().now();
        let mut st = self.shared().lock();
        let r = f(&mut st.iface, now);
        st.caller_round(self.shared().now());
        r
    }

    /// Adds a hook to the driver: `make` runs under the stack lock (to open the
    /// hook's sockets), and the [`Hook`] it returns runs after every later round, in
    /// the same critical section, so nothing the sockets report is missed in between.
    pub fn add_hook(&self, make: impl FnOnce(&mut Interface, Instant) -> Hook) {
        let now = self.shared().now();
        let mut st = self.shared().lock();
        let hook = make(&mut st.iface, now);
        st.hooks.push(hook);
        st.caller_round(self.shared().now());
    }

    /// Stops the driver (it closes every socket, flushes once and drops the link) and
    /// hands back the interface and what the link did.
    ///
    /// # Errors
    /// Another handle (a clone, or a socket of the [`net`](crate::net) layer) still
    /// refers to the stack: it is returned unchanged.
    pub fn stop(self) -> Result<Stopped, NetStack> {
        let mut handle = Arc::try_unwrap(self.handle).map_err(|handle| NetStack { handle })?;
        handle.halt();
        let shared = handle.shared.clone();
        drop(handle);
        let now = shared.now();
        let shared = match Arc::try_unwrap(shared) {
            Ok(s) => s,
            // The driver thread is joined and no handle is left: nothing else holds it.
            Err(_) => unreachable!("a stopped stack has no other owner"),
        };
        let report = shared
            .report
            .as_ref()
            .and_then(|s| s.lock().unwrap_or_else(|e| e.into_inner()).take());
        let mut st = shared.into_state();
        Ok(Stopped {
            link: st.link_stats(),
            ring: st.ring_stats(),
            driver: st.driver_stats(),
            link_error: st.link_error,
            iface: st.iface,
            report,
            now,
        })
    }
}

/// The BSD calls and poll(2), implemented in `bsd.rs` over the shared state.
impl NetStack {
    /// Creates a socket ([socket(2)](https://man7.org/linux/man-pages/man2/socket.2.html)):
    /// `AF_INET` or `AF_INET6` with `SOCK_DGRAM` (UDP), `SOCK_STREAM` (TCP) or
    /// `SOCK_RAW` and a protocol (e.g. `IPPROTO_ICMP`, `IPPROTO_ICMPV6`); `SOCK_NONBLOCK`
    /// may be or-ed into the type. An `AF_INET6` socket takes and reports `SocketAddr::V6`
    /// (IPv4 peers of a dual-stack socket as `::ffff:a.b.c.d`); family mismatches fail
    /// as on Linux (see [`family`](crate::family)).
    ///
    /// # Errors
    /// EAFNOSUPPORT, ESOCKTNOSUPPORT, EPROTONOSUPPORT, EINVAL (raw protocol above
    /// 255), EMFILE.
    pub fn socket(&self, domain: i32, ty: i32, protocol: i32) -> Result<Fd, Errno> {
        self.calls().socket(domain, ty, protocol)
    }

    /// Binds a local address ([bind(2)](https://man7.org/linux/man-pages/man2/bind.2.html));
    /// port 0 picks an ephemeral port. Raw sockets only remember the address.
    ///
    /// # Errors
    /// EBADF, EAFNOSUPPORT / EINVAL (address of the other family), EADDRINUSE,
    /// EADDRNOTAVAIL, EINVAL (already bound; a link-local address without scope id).
    pub fn bind(&self, fd: Fd, addr: SocketAddr) -> Result<(), Errno> {
        self.calls().bind(fd, addr)
    }

    /// Marks a stream socket as accepting connections, with room for `backlog`
    /// pending ones ([listen(2)](https://man7.org/linux/man-pages/man2/listen.2.html)).
    ///
    /// # Errors
    /// EBADF; EOPNOTSUPP on datagram and raw sockets; EADDRINUSE; EINVAL.
    pub fn listen(&self, fd: Fd, backlog: i32) -> Result<(), Errno> {
        self.calls().listen(fd, backlog)
    }

    /// Takes the next established connection, blocking until one arrives (SO_RCVTIMEO
    /// applies); returns the new descriptor and the peer
    /// ([accept(2)](https://man7.org/linux/man-pages/man2/accept.2.html)).
    ///
    /// # Errors
    /// EBADF; EOPNOTSUPP on datagram and raw sockets; EINVAL when not listening;
    /// EAGAIN when non-blocking or timed out; ECONNABORTED.
    pub fn accept(&self, fd: Fd) -> Result<(Fd, SocketAddr), Errno> {
        self.calls().accept(fd)
    }

    /// Connects ([connect(2)](https://man7.org/linux/man-pages/man2/connect.2.html)). For
    /// UDP and raw sockets it sets the default destination and filters arrivals; for
    /// TCP it runs the handshake, blocking unless O_NONBLOCK (then EINPROGRESS, and
    /// POLLOUT when done; SO_ERROR tells how it went).
    ///
    /// # Errors
    /// EBADF, EAFNOSUPPORT / EINVAL (address of the other family), ENETUNREACH (no
    /// route, or IPv4 on an IPV6_V6ONLY socket), EINPROGRESS, EALREADY, EISCONN,
    /// ECONNREFUSED, ETIMEDOUT, EADDRINUSE (no ephemeral port).
    pub fn connect(&self, fd: Fd, addr: SocketAddr) -> Result<(), Errno> {
        self.calls().connect(fd, addr)
    }

    /// Sends on a connected socket
    /// ([send(2)](https://man7.org/linux/man-pages/man2/send.2.html)); `flags` may hold
    /// MSG_DONTWAIT and MSG_NOSIGNAL. Returns the bytes queued.
    ///
    /// # Errors
    /// EBADF, EDESTADDRREQ/ENOTCONN, EAGAIN, EMSGSIZE, EPIPE, ECONNRESET, ECONNREFUSED
    /// (an ICMP error reported on a connected UDP socket).
    pub fn send(&self, fd: Fd, buf: &[u8], flags: i32) -> Result<usize, Errno> {
        self.calls().send(fd, buf, flags)
    }

    /// Sends a datagram to `addr`
    /// ([sendto(2)](https://man7.org/linux/man-pages/man2/sendto.2.html)). On a stream
    /// socket the address is ignored (Linux) once connected.
    ///
    /// # Errors
    /// As [`send`](Self::send), plus EAFNOSUPPORT and EINVAL (port 0).
    pub fn sendto(&self, fd: Fd, buf: &[u8], flags: i32, addr: SocketAddr) -> Result<usize, Errno> {
        self.calls().sendto(fd, buf, flags, addr)
    }

    /// Receives into `buf` ([recv(2)](https://man7.org/linux/man-pages/man2/recv.2.html));
    /// `flags` may hold MSG_PEEK, MSG_DONTWAIT, MSG_WAITALL (streams) and MSG_TRUNC
    /// (datagrams). Returns the bytes received; 0 at end of stream or after SHUT_RD.
    ///
    /// # Errors
    /// EBADF, EAGAIN (non-blocking or SO_RCVTIMEO passed), ENOTCONN, ECONNRESET,
    /// ECONNREFUSED, ETIMEDOUT.
    pub fn recv(&self, fd: Fd, buf: &mut [u8], flags: i32) -> Result<usize, Errno> {
        self.calls().recv(fd, buf, flags)
    }

    /// Receives into `buf` and says who sent it
    /// ([recvfrom(2)](https://man7.org/linux/man-pages/man2/recvfrom.2.html)). A datagram
    /// longer than `buf` is truncated (the rest is lost) unless MSG_PEEK; with
    /// MSG_TRUNC its real length is returned. IPv4 raw sockets receive the IP header too
    /// (IPv6 ones do not, as Linux); raw sockets report port 0.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn recvfrom(
        &self,
        fd: Fd,
        buf: &mut [u8],
        flags: i32,
    ) -> Result<(usize, SocketAddr), Errno> {
        self.calls().recvfrom(fd, buf, flags)
    }

    /// Shuts down receiving (SHUT_RD), sending (SHUT_WR) or both
    /// ([shutdown(2)](https://man7.org/linux/man-pages/man2/shutdown.2.html)). Blocked
    /// receivers wake and see end of file; senders get EPIPE.
    ///
    /// # Errors
    /// EBADF, EINVAL (bad `how`), ENOTCONN (not connected; the shutdown still applies,
    /// as on Linux).
    pub fn shutdown(&self, fd: Fd, how: i32) -> Result<(), Errno> {
        self.calls().shutdown(fd, how)
    }

    /// Closes a descriptor ([close(2)](https://man7.org/linux/man-pages/man2/close.2.html));
    /// the socket goes when its last descriptor does. Threads blocked on it wake with
    /// EBADF (Linux leaves them blocked). A blocking TCP socket with a non-zero
    /// SO_LINGER first sends its FIN and waits, at most the linger time, until the peer
    /// has acknowledged everything (Linux `sk_stream_wait_close`).
    ///
    /// # Errors
    /// EBADF.
    pub fn close(&self, fd: Fd) -> Result<(), Errno> {
        self.calls().close(fd)
    }

    /// A second descriptor for the same socket
    /// ([dup(2)](https://man7.org/linux/man-pages/man2/dup.2.html)); O_NONBLOCK and
    /// options are shared.
    ///
    /// # Errors
    /// EBADF, EMFILE.
    pub fn dup(&self, fd: Fd) -> Result<Fd, Errno> {
        self.calls().dup(fd)
    }

    /// The local address ([getsockname(2)](https://man7.org/linux/man-pages/man2/getsockname.2.html));
    /// `0.0.0.0:0` when unbound. Raw sockets report their protocol as the port (Linux).
    ///
    /// # Errors
    /// EBADF.
    pub fn getsockname(&self, fd: Fd) -> Result<SocketAddr, Errno> {
        self.calls().getsockname(fd)
    }

    /// The connected peer ([getpeername(2)](https://man7.org/linux/man-pages/man2/getpeername.2.html)).
    ///
    /// # Errors
    /// EBADF, ENOTCONN.
    pub fn getpeername(&self, fd: Fd) -> Result<SocketAddr, Errno> {
        self.calls().getpeername(fd)
    }

    /// Sets an option ([setsockopt(2)](https://man7.org/linux/man-pages/man2/setsockopt.2.html)).
    ///
    /// # Errors
    /// EBADF; ENOPROTOOPT for read-only options and TCP options on other sockets;
    /// EINVAL for a zero buffer size or an unknown congestion algorithm.
    pub fn setsockopt(&self, fd: Fd, opt: SockOpt) -> Result<(), Errno> {
        self.calls().setsockopt(fd, opt)
    }

    /// Reads an option ([getsockopt(2)](https://man7.org/linux/man-pages/man2/getsockopt.2.html)).
    /// Reading SO_ERROR clears it.
    ///
    /// # Errors
    /// EBADF; ENOPROTOOPT for TCP options on other sockets.
    pub fn getsockopt(&self, fd: Fd, name: SockOptName) -> Result<SockOpt, Errno> {
        self.calls().getsockopt(fd, name)
    }

    /// Sets or clears O_NONBLOCK (`fcntl(fd, F_SETFL, O_NONBLOCK)`,
    /// [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html)).
    ///
    /// # Errors
    /// EBADF.
    pub fn set_nonblocking(&self, fd: Fd, nonblocking: bool) -> Result<(), Errno> {
        self.calls().set_nonblocking(fd, nonblocking)
    }

    /// Whether O_NONBLOCK is set (`fcntl(fd, F_GETFL)`).
    ///
    /// # Errors
    /// EBADF.
    pub fn is_nonblocking(&self, fd: Fd) -> Result<bool, Errno> {
        self.calls().is_nonblocking(fd)
    }

    /// Bytes of the next datagram, or of readable stream data (`ioctl(FIONREAD)`).
    ///
    /// # Errors
    /// EBADF.
    pub fn bytes_readable(&self, fd: Fd) -> Result<usize, Errno> {
        self.calls().bytes_readable(fd)
    }

    /// Waits until one of `fds` is ready or `timeout` passes (`None`: forever; zero:
    /// just check) and returns how many have non-zero `revents`
    /// ([poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html)).
    ///
    /// # Errors
    /// None today (a closed descriptor is reported as POLLNVAL); the `Result` leaves
    /// room for EINTR-like cancellation.
    pub fn poll(&self, fds: &mut [PollFd], timeout: Option<Duration>) -> Result<usize, Errno> {
        self.calls().poll(fds, timeout)
    }

    /// Busy-polls for a host that blocks in the kernel instead of in this stack (the
    /// LD_PRELOAD library): spins on the link, as a blocked call with SO_BUSY_POLL does,
    /// until `fd` is ready for `events` (or has POLLERR/POLLHUP) or `budget` passes.
    /// True if it is ready. Does nothing (false) while another thread leads the link
    /// or on a link without an fd.
    ///
    /// # Errors
    /// EBADF when `fd` is not open; EIO when the stack died.
    pub fn busy_poll_wait(
        &self,
        fd: Fd,
        events: crate::PollEvents,
        budget: Duration,
    ) -> Result<bool, Errno> {
        self.calls().busy_poll_wait(fd, events, budget)
    }
}

enum LinkSpec {
    None,
    Device(Device),
    Boxed(Box<dyn Link + Send>, Option<RawFd>),
}

type LinkWrapper = Box<dyn FnOnce(Box<dyn Link + Send>) -> Box<dyn Link + Send> + Send>;
type ConfigEdit = Box<dyn FnOnce(&mut Config) + Send>;
type MakeHook = Box<dyn FnOnce(&mut Interface, Instant) -> Hook + Send>;

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
    ipv6: bool,
    ip6: Vec<ustack::wire::Ipv6Cidr>,
    gateway6: Option<core::net::Ipv6Addr>,
    mtu: Option<usize>,
    options: LinkOptions,
    config: Vec<ConfigEdit>,
    wrap: Vec<LinkWrapper>,
    hooks: Vec<MakeHook>,
    max_fds: usize,
    busy_poll: u32,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            link: LinkSpec::None,
            ip: None,
            mac: None,
            gateway: None,
            ipv6: false,
            ip6: Vec::new(),
            gateway6: None,
            mtu: None,
            options: LinkOptions::default(),
            config: Vec::new(),
            wrap: Vec::new(),
            hooks: Vec::new(),
            max_fds: MAX_FDS,
            busy_poll: 0,
        }
    }
}

impl Builder {
    /// Uses the TAP device `name` (created if missing; needs CAP_NET_ADMIN).
    pub fn tap(self, name: &str) -> Builder {
        self.device(Device::Tap(name.to_owned()))
    }

    /// Uses an AF_PACKET socket on the existing interface `ifname`.
    pub fn af_packet(self, ifname: &str) -> Builder {
        self.device(Device::Raw(ifname.to_owned()))
    }

    /// Uses an OS device, opened by [`build`](Self::build) in the building thread's
    /// network namespace.
    pub fn device(mut self, device: Device) -> Builder {
        self.link = LinkSpec::Device(device);
        self
    }

    /// Uses an OS device opened already (e.g. inside another network namespace).
    pub fn os_link(mut self, link: OsLink) -> Builder {
        let fd = link.as_raw_fd();
        self.link = LinkSpec::Boxed(Box::new(link), Some(fd));
        self
    }

    /// Uses one end of an in-memory pair; the driver polls it every [`POLL_TICK`]. For
    /// two stacks joined in memory without a tick, see [`Builder::build_pair`].
    pub fn memory(mut self, link: MemoryLink) -> Builder {
        self.link = LinkSpec::Boxed(Box::new(link), None);
        self
    }

    /// Uses any link; without a file descriptor the driver polls it every [`POLL_TICK`].
    pub fn link(mut self, link: Box<dyn Link + Send>) -> Builder {
        self.link = LinkSpec::Boxed(link, None);
        self
    }

    /// Uses any link whose readiness shows on `fd` (readable when a frame waits).
    pub fn link_with_fd(mut self, link: Box<dyn Link + Send>, fd: RawFd) -> Builder {
        self.link = LinkSpec::Boxed(link, Some(fd));
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

    /// Speak IPv6 too (default off): a link-local address from the MAC, addresses and
    /// a default router from router advertisements, plus any given with
    /// [`ip6`](Self::ip6) and [`gateway6`](Self::gateway6).
    pub fn ipv6(mut self, enabled: bool) -> Builder {
        self.ipv6 = enabled;
        self
    }

    /// An IPv6 address and prefix (any number; implies [`ipv6`](Self::ipv6)).
    pub fn ip6(mut self, cidr: ustack::wire::Ipv6Cidr) -> Builder {
        self.ip6.push(cidr);
        self.ipv6 = true;
        self
    }

    /// The default IPv6 router (implies [`ipv6`](Self::ipv6)); a router advertisement's
    /// takes precedence.
    pub fn gateway6(mut self, gw: core::net::Ipv6Addr) -> Builder {
        self.gateway6 = Some(gw);
        self.ipv6 = true;
        self
    }

    /// The IP MTU (default 1500).
    pub fn mtu(mut self, mtu: usize) -> Builder {
        self.mtu = Some(mtu);
        self
    }

    /// Records every frame in and out at `path`: classic pcap of what crossed the
    /// device, or annotated pcapng when the name ends in `.pcapng` (see
    /// [`link`](crate::link)).
    pub fn pcap(mut self, path: impl Into<PathBuf>) -> Builder {
        self.options.pcap = Some(path.into());
        self
    }

    /// Recording and fault injection around the device, composed as every `ustack`
    /// command does ([`build_link`](crate::link::build_link)); [`NetStack::stop`]
    /// reports what they did. Replaces an earlier [`pcap`](Self::pcap).
    pub fn link_options(mut self, options: LinkOptions) -> Builder {
        self.options = options;
        self
    }

    /// Edits the interface [`Config`] after the settings above are applied.
    pub fn config(mut self, f: impl FnOnce(&mut Config) + Send + 'static) -> Builder {
        self.config.push(Box::new(f));
        self
    }

    /// Wraps the link (above the recorder and injector of
    /// [`link_options`](Self::link_options), so a pcap shows what the device moved):
    /// the hook for a fault injector or a tracer of one's own.
    pub fn wrap_link(
        mut self,
        f: impl FnOnce(Box<dyn Link + Send>) -> Box<dyn Link + Send> + Send + 'static,
    ) -> Builder {
        self.wrap.push(Box::new(f));
        self
    }

    /// Adds a driver hook (see [`NetStack::add_hook`]); `make` runs on the new
    /// interface before the driver starts.
    pub fn hook(
        mut self,
        make: impl FnOnce(&mut Interface, Instant) -> Hook + Send + 'static,
    ) -> Builder {
        self.hooks.push(Box::new(make));
        self
    }

    /// Bounds the descriptor table (default [`MAX_FDS`]); beyond it calls fail EMFILE.
    pub fn max_fds(mut self, n: usize) -> Builder {
        self.max_fds = n;
        self
    }

    /// SO_BUSY_POLL of every new socket (default zero: off), the stack-wide default as
    /// Linux's `net.core.busy_read`: a blocking receive, accept or poll that finds
    /// nothing spins on the link for up to this long before it sleeps (see
    /// [`SockOpt::BusyPoll`](crate::SockOpt::BusyPoll)). Whole microseconds, at most
    /// `i32::MAX`.
    pub fn busy_poll(mut self, budget: Duration) -> Builder {
        self.busy_poll = u32::try_from(budget.as_micros())
            .unwrap_or(u32::MAX)
            .min(i32::MAX as u32);
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
    /// direction; each end has an eventfd that the other end's sends write, so the
    /// link has an fd like a device: nobody polls it on a tick, and blocked callers
    /// lead it. Any link set on either builder is replaced.
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn build_pair(self, other: Builder, capacity: usize) -> io::Result<(NetStack, NetStack)> {
        let (na, nb) = (Arc::new(Waker::new()?), Arc::new(Waker::new()?));
        let (la, lb) = MemoryLink::pair(capacity);
        let (fa, fb) = (na.fd(), nb.fd());
        let la = NotifyLink {
            inner: la,
            own: na.clone(),
            peer: nb.clone(),
        };
        let lb = NotifyLink {
            inner: lb,
            own: nb,
            peer: na,
        };
        let mut a = self;
        let mut b = other;
        a.link = LinkSpec::Boxed(Box::new(la), Some(fa));
        b.link = LinkSpec::Boxed(Box::new(lb), Some(fb));
        Ok((
            a.build_with(Arc::new(Waker::new()?))?,
            b.build_with(Arc::new(Waker::new()?))?,
        ))
    }

    fn build_with(self, waker: Arc<Waker>) -> io::Result<NetStack> {
        let ip = self
            .ip
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no IP address"))?;
        let (mut link, fd): (Box<dyn Link + Send>, Option<RawFd>) = match self.link {
            LinkSpec::None => {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "no link"));
            }
            LinkSpec::Device(device) => {
                let l = device.open_with(self.options.device_offload())?;
                let fd = l.as_raw_fd();
                (Box::new(l), Some(fd))
            }
            LinkSpec::Boxed(l, fd) => (l, fd),
        };
        let clock = Clock::start();
        let mut report = None;
        if !self.options.is_empty() {
            let slot = Arc::new(Mutex::new(None));
            let composed = crate::link::build_link(link, &self.options, clock.epoch_unix_micros())?;
            link = Box::new(Reported {
                link: composed,
                slot: slot.clone(),
            });
            report = Some(slot);
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
        config.ipv6.enabled = self.ipv6;
        config.ipv6.addresses = self.ip6;
        config.ipv6.gateway = self.gateway6;
        if let Some(mtu) = self.mtu {
            config.mtu = mtu;
        }
        for f in self.config {
            f(&mut config);
        }
        let mut iface = Interface::new(config, clock.now());
        let mut hooks = Vec::with_capacity(self.hooks.len());
        for make in self.hooks {
            hooks.push(make(&mut iface, clock.now()));
        }
        let mut state = State::new(
            iface,
            LinkIo::new(link, fd, clock),
            self.max_fds,
            waker.clone(),
        )?;
        state.hooks = hooks;
        state.busy_poll = self.busy_poll;
        let shared = Arc::new(Shared::new(state, waker, clock, report));
        let tick = if fd.is_some() { None } else { Some(POLL_TICK) };
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("ustack-driver-{}", ip.address()))
            .spawn(move || driver::run(s, tick))?;
        log::info!(target: "ustack::socket", "stack {ip} ({mac}) up");
        Ok(NetStack {
            handle: Arc::new(Handle {
                shared,
                thread: Some(thread),
            }),
        })
    }
}

/// A memory link whose sends signal the peer end's eventfd, which is the peer's link
/// fd (readable while a frame may wait).
struct NotifyLink {
    inner: MemoryLink,
    own: Arc<Waker>,
    peer: Arc<Waker>,
}

impl Link for NotifyLink {
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        if let Some(n) = self.inner.recv(now, buf)? {
            return Ok(Some(n));
        }
        // Empty: reset the signal, then look once more, so that a frame sent after
        // this look signals again and one sent before it is not left behind.
        if self.own.drain() {
            return self.inner.recv(now, buf);
        }
        Ok(None)
    }
    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        self.inner.send(now, frame)?;
        self.peer.wake();
        Ok(())
    }
}
