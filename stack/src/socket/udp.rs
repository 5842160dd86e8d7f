//! UDP sockets (RFC 768): bind/connect semantics, ephemeral ports, bounded queues.
//!
//! Sockets live in a generation-checked [`Slab`] addressed by [`UdpHandle`]s: a handle
//! kept after [`close`](UdpLayer::close) is stale (`BadHandle`) and never reaches the
//! socket that reuses its slot. Arriving datagrams are matched by destination port
//! through a hash map, then by the socket's bound address and family: an `AF_INET6`
//! socket bound to `[::]` hears IPv4 too unless IPV6_V6ONLY (dual stack). Addresses are
//! IPv4 or IPv6, never IPv4-mapped (the socket API maps those). Each socket's receive queue is bounded in datagrams and bytes;
//! overflow is dropped and counted, like a kernel socket buffer.
//!
//! Readiness: every change the engine makes to a user's socket (a datagram delivered,
//! send-queue room freed by transmission, an ICMP error stored) queues the socket once
//! for [`UdpLayer::poll_ready`]. Changes made by the user's own calls are not queued:
//! the caller knows about them.

use super::common::{
    each_half, half_key, half_of, normalize, port_halves, socket_addr, CloseError, IcmpError,
    IcmpErrorKind, IpFamily, IpTx, LocalAddrs,
};
use crate::storage::{Slab, SlabKey};
use crate::time::Instant;
use core::fmt;
use core::net::{IpAddr, SocketAddr};
use std::collections::{HashMap, VecDeque};

/// Tunables of the UDP layer.
#[derive(Clone, Debug)]
pub struct UdpConfig {
    /// Receive queue bound per socket, in payload bytes (SO_RCVBUF).
    pub rx_buffer_len: usize,
    /// Send queue bound per socket, in payload bytes (SO_SNDBUF).
    pub tx_buffer_len: usize,
    /// Most datagrams queued per direction per socket.
    pub max_queued: usize,
    /// Ephemeral port range (inclusive), Linux's default.
    pub ephemeral_ports: (u16, u16),
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            rx_buffer_len: 212_992,
            tx_buffer_len: 212_992,
            max_queued: 1024,
            ephemeral_ports: (32768, 60999),
        }
    }
}

/// Identifies a UDP socket within its layer; a handle kept after close is stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UdpHandle(SlabKey);

impl fmt::Display for UdpHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "udp#{}.{}", self.0.index(), self.0.generation())
    }
}

error_enum!(
    /// An asynchronous error stored on a socket and reported once, by the next send or
    /// receive or by [`UdpLayer::take_error`] (SO_ERROR).
    UdpError {
        /// The peer answered with ICMP port or protocol unreachable (ECONNREFUSED).
        ConnectionRefused => "connection refused",
    }
);

error_enum!(
    /// Errors of [`UdpLayer::bind`].
    BindError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
        /// The socket is already bound (EINVAL).
        InvalidState => "socket already bound",
        /// The port is taken (EADDRINUSE).
        AddrInUse => "address in use",
        /// The local address is not ours (EADDRNOTAVAIL).
        AddrNotAvailable => "address not available",
        /// Every ephemeral port is taken (EADDRINUSE, as Linux's bind to port 0).
        NoPortsAvailable => "no ports available",
        /// The address is of a family the socket cannot use: IPv6 on an `AF_INET`
        /// socket, IPv4 on an IPV6_V6ONLY one (EINVAL / EAFNOSUPPORT in the socket API).
        WrongFamily => "address family not usable by this socket",
    }
);

error_enum!(
    /// Errors of [`UdpLayer::connect`].
    ConnectError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
        /// The implicit bind found every ephemeral port taken (EADDRINUSE).
        NoPortsAvailable => "no ports available",
        /// The peer's family cannot be reached from the socket's bound address
        /// (ENETUNREACH / EAFNOSUPPORT in the socket API).
        WrongFamily => "address family not usable by this socket",
    }
);

error_enum!(
    /// Errors of [`UdpLayer::send_to`].
    SendError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
        /// No destination given and not connected (EDESTADDRREQ).
        NotConnected => "destination address required",
        /// No room in the send queue (EAGAIN).
        WouldBlock => "send queue full",
        /// Larger than 65,507 bytes or the send buffer (EMSGSIZE).
        MessageTooLong => "message too long",
        /// A pending ICMP port unreachable, reported once (ECONNREFUSED).
        Refused => "connection refused",
        /// The implicit bind found every ephemeral port taken (EADDRINUSE).
        NoPortsAvailable => "no ports available",
        /// The destination is of a family the socket's bound address cannot reach
        /// (ENETUNREACH / EAFNOSUPPORT in the socket API).
        WrongFamily => "address family not usable by this socket",
    }
);

error_enum!(
    /// Errors of [`UdpLayer::recv_from`].
    RecvError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
        /// Nothing queued (EAGAIN).
        WouldBlock => "no datagram ready",
        /// A pending ICMP port unreachable, reported once (ECONNREFUSED).
        Refused => "connection refused",
    }
);

error_enum!(
    /// Errors of socket options and simple queries.
    OptionError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
        /// The option cannot change in this state (EINVAL), e.g. IPV6_V6ONLY once bound.
        InvalidState => "invalid state for this option",
    }
);

impl From<UdpError> for SendError {
    fn from(e: UdpError) -> SendError {
        match e {
            UdpError::ConnectionRefused => SendError::Refused,
        }
    }
}

impl From<UdpError> for RecvError {
    fn from(e: UdpError) -> RecvError {
        match e {
            UdpError::ConnectionRefused => RecvError::Refused,
        }
    }
}

/// Where [`UdpLayer::dispatch`] hands a datagram: source, destination, payload, and the
/// socket's IP header fields.
pub type DatagramSink<'a> = dyn FnMut(SocketAddr, SocketAddr, &[u8], IpTx) + 'a;

/// Largest UDP payload over IPv4: 65535 - 20 (IP) - 8 (UDP). Over IPv6 without jumbograms
/// the UDP length field allows 65,527, but Linux caps both families at this value for
/// an unfragmentable-by-us datagram of one IPv4-sized packet; so does the stack.
pub const UDP_MAX_PAYLOAD: usize = 65_507;

#[derive(Debug)]
struct Datagram {
    peer: SocketAddr,
    data: Vec<u8>,
}

#[derive(Debug)]
struct UdpSocket {
    family: IpFamily,
    /// IPV6_V6ONLY (only meaningful for an `AF_INET6` socket bound to `[::]`).
    v6only: bool,
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
    rx: VecDeque<Datagram>,
    rx_bytes: usize,
    tx: VecDeque<Datagram>,
    tx_bytes: usize,
    rx_buffer_len: usize,
    tx_buffer_len: usize,
    error: Option<UdpError>,
    rx_dropped: u64,
    /// In the layer's ready queue (so it is queued at most once).
    ready_queued: bool,
    /// IP_TTL/IPV6_UNICAST_HOPS and IP_TOS/IPV6_TCLASS.
    ip: IpTx,
}

/// Counters of the UDP layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpCounters {
    /// Datagrams delivered to a socket.
    pub delivered: u64,
    /// Datagrams for a port nobody listens on.
    pub no_socket: u64,
    /// Datagrams dropped because the socket's receive queue was full.
    pub rx_queue_full: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams dropped at dispatch because we have no address of the peer's family.
    pub no_source: u64,
}

/// All UDP sockets of an interface.
#[derive(Debug)]
pub struct UdpLayer {
    config: UdpConfig,
    sockets: Slab<UdpSocket>,
    /// Bound sockets by `common::half_key(port, half)`: a dual-stack `[::]` socket is
    /// under both halves of its port, so `0.0.0.0:P` and an IPV6_V6ONLY `[::]:P` can
    /// coexist, as on Linux.
    by_port: HashMap<u32, UdpHandle>,
    /// Sockets with queued output, in FIFO order, each at most once (stale handles of
    /// closed sockets are skipped).
    dirty: VecDeque<UdpHandle>,
    /// Sockets whose readiness may have changed, each at most once.
    ready: VecDeque<UdpHandle>,
    next_ephemeral: u16,
    spare: Vec<Vec<u8>>,
    counters: UdpCounters,
}

/// Queues `h` for [`UdpLayer::poll_ready`] unless it already is.
fn touch(ready: &mut VecDeque<UdpHandle>, s: &mut UdpSocket, h: UdpHandle) {
    if !s.ready_queued {
        s.ready_queued = true;
        ready.push_back(h);
    }
}

impl UdpLayer {
    /// An empty layer; `seed` picks where the ephemeral port search starts.
    pub fn new(config: UdpConfig, seed: u64) -> UdpLayer {
        let (lo, hi) = config.ephemeral_ports;
        let span = u64::from(hi - lo) + 1;
        UdpLayer {
            next_ephemeral: lo + (seed % span) as u16,
            config,
            sockets: Slab::new(),
            by_port: HashMap::new(),
            dirty: VecDeque::new(),
            ready: VecDeque::new(),
            spare: Vec::new(),
            counters: UdpCounters::default(),
        }
    }

    /// Layer counters.
    pub fn counters(&self) -> UdpCounters {
        self.counters
    }

    /// Open sockets.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// True when no socket is open.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// Opens an unbound `AF_INET` socket.
    pub fn socket(&mut self) -> UdpHandle {
        self.socket_in(IpFamily::V4)
    }

    /// Opens an unbound socket of `family`; an `AF_INET6` one binds implicitly to `[::]`.
    pub fn socket_in(&mut self, family: IpFamily) -> UdpHandle {
        let sock = UdpSocket {
            family,
            v6only: false,
            local: None,
            remote: None,
            rx: VecDeque::new(),
            rx_bytes: 0,
            tx: VecDeque::new(),
            tx_bytes: 0,
            rx_buffer_len: self.config.rx_buffer_len,
            tx_buffer_len: self.config.tx_buffer_len,
            error: None,
            rx_dropped: 0,
            ready_queued: false,
            ip: IpTx::default(),
        };
        UdpHandle(self.sockets.insert(sock))
    }

    fn get(&self, h: UdpHandle) -> Option<&UdpSocket> {
        self.sockets.get(h.0)
    }

    fn get_mut(&mut self, h: UdpHandle) -> Option<&mut UdpSocket> {
        self.sockets.get_mut(h.0)
    }

    /// Binds to `addr` (port 0 picks an ephemeral port); `ours` are the interface's
    /// addresses.
    ///
    /// # Errors
    /// `BadHandle`, `InvalidState` (already bound), `WrongFamily`, `AddrInUse`,
    /// `AddrNotAvailable`, `NoPortsAvailable`.
    pub fn bind(
        &mut self,
        h: UdpHandle,
        addr: SocketAddr,
        ours: &LocalAddrs,
    ) -> Result<SocketAddr, BindError> {
        let addr = normalize(addr);
        let s = self.get(h).ok_or(BindError::BadHandle)?;
        if s.local.is_some() {
            return Err(BindError::InvalidState);
        }
        match (s.family, addr.ip()) {
            (IpFamily::V4, IpAddr::V6(_)) => return Err(BindError::WrongFamily),
            (IpFamily::V6, IpAddr::V4(_)) if s.v6only => return Err(BindError::WrongFamily),
            _ => {}
        }
        if !addr.ip().is_unspecified() && !ours.contains(addr.ip()) {
            return Err(BindError::AddrNotAvailable);
        }
        let halves = port_halves(addr.ip(), s.v6only);
        let taken =
            |p: u16| each_half(halves).any(|half| self.by_port.contains_key(&half_key(p, half)));
        let port = if addr.port() == 0 {
            self.ephemeral_port().ok_or(BindError::NoPortsAvailable)?
        } else if taken(addr.port()) {
            return Err(BindError::AddrInUse);
        } else {
            addr.port()
        };
        Ok(self.bind_port(h, addr.ip(), port))
    }

    /// Records a free `port` as `h`'s (which exists and is unbound), in the halves of
    /// the port space its address and IPV6_V6ONLY give.
    fn bind_port(&mut self, h: UdpHandle, ip: IpAddr, port: u16) -> SocketAddr {
        let local = socket_addr(ip, port);
        if let Some(s) = self.get_mut(h) {
            s.local = Some(local);
            let halves = port_halves(ip, s.v6only);
            for half in each_half(halves) {
                self.by_port.insert(half_key(port, half), h);
            }
        }
        local
    }

    /// Binds an unbound socket to an ephemeral port on its family's wildcard address
    /// (the implicit bind of connect and send); false when every port is taken.
    fn autobind(&mut self, h: UdpHandle) -> bool {
        let Some(family) = self.get(h).map(|s| s.family) else {
            return false;
        };
        match self.ephemeral_port() {
            Some(port) => {
                self.bind_port(h, family.unspecified(), port);
                true
            }
            None => false,
        }
    }

    /// Whether a socket of `family` bound to `local` (`None`: unbound, its family's
    /// wildcard) may exchange datagrams with `peer`: same family, or IPv4 from `[::]`
    /// unless IPV6_V6ONLY.
    fn reaches(family: IpFamily, v6only: bool, local: Option<SocketAddr>, peer: IpAddr) -> bool {
        let local = local.map_or(family.unspecified(), |l| l.ip());
        match (local, peer) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => true,
            (IpAddr::V6(l), IpAddr::V4(_)) => l.is_unspecified() && !v6only,
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
        }
    }

    /// IPV6_V6ONLY: whether an `AF_INET6` socket bound to `[::]` hears and reaches IPv6
    /// only; off by default, as on Linux. Only before bind.
    ///
    /// # Errors
    /// `BadHandle`, `InvalidState` once bound (Linux: EINVAL).
    pub fn set_v6only(&mut self, h: UdpHandle, on: bool) -> Result<(), OptionError> {
        let s = self.get_mut(h).ok_or(OptionError::BadHandle)?;
        if s.local.is_some() {
            return Err(OptionError::InvalidState);
        }
        s.v6only = on;
        Ok(())
    }

    /// IPV6_V6ONLY as set.
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn v6only(&self, h: UdpHandle) -> Result<bool, OptionError> {
        Ok(self.get(h).ok_or(OptionError::BadHandle)?.v6only)
    }

    /// The TTL or hop limit and the TOS or traffic class of the datagrams this socket
    /// sends from now on (IP_TTL, IPV6_UNICAST_HOPS, IP_TOS, IPV6_TCLASS); all eight
    /// TOS bits are the application's, ECN included, as on Linux for datagram sockets.
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn set_ip_tx(&mut self, h: UdpHandle, ip: IpTx) -> Result<(), OptionError> {
        self.get_mut(h).ok_or(OptionError::BadHandle)?.ip = ip;
        Ok(())
    }

    fn ephemeral_port(&mut self) -> Option<u16> {
        let (lo, hi) = self.config.ephemeral_ports;
        for _ in lo..=hi {
            let p = self.next_ephemeral;
            self.next_ephemeral = if p >= hi { lo } else { p + 1 };
            if each_half(3).all(|half| !self.by_port.contains_key(&half_key(p, half))) {
                return Some(p);
            }
        }
        None
    }

    /// Sets the default destination and filters arrivals to that peer; binds an
    /// ephemeral port first if unbound. Clears a pending error.
    ///
    /// # Errors
    /// `BadHandle`, `WrongFamily`, `NoPortsAvailable`.
    pub fn connect(&mut self, h: UdpHandle, remote: SocketAddr) -> Result<(), ConnectError> {
        let remote = normalize(remote);
        let s = self.get(h).ok_or(ConnectError::BadHandle)?;
        if !Self::reaches(s.family, s.v6only, s.local, remote.ip()) {
            return Err(ConnectError::WrongFamily);
        }
        if s.local.is_none() && !self.autobind(h) {
            return Err(ConnectError::NoPortsAvailable);
        }
        let s = self.get_mut(h).ok_or(ConnectError::BadHandle)?;
        s.remote = Some(remote);
        s.error = None;
        Ok(())
    }

    /// Local address, if bound.
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn local_addr(&self, h: UdpHandle) -> Result<Option<SocketAddr>, OptionError> {
        Ok(self.get(h).ok_or(OptionError::BadHandle)?.local)
    }

    /// Connected peer, if any.
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn peer_addr(&self, h: UdpHandle) -> Result<Option<SocketAddr>, OptionError> {
        Ok(self.get(h).ok_or(OptionError::BadHandle)?.remote)
    }

    /// Queues a datagram to `dst` (or the connected peer when `None`), binding an
    /// ephemeral port first if unbound.
    ///
    /// # Errors
    /// `BadHandle`, `MessageTooLong`, `NotConnected`, `WrongFamily` (a destination the
    /// bound address cannot reach), `WouldBlock` when the send queue is full, a pending
    /// `Refused` (reported once), `NoPortsAvailable`.
    pub fn send_to(
        &mut self,
        h: UdpHandle,
        data: &[u8],
        dst: Option<SocketAddr>,
    ) -> Result<usize, SendError> {
        let max_queued = self.config.max_queued;
        let s = self.get_mut(h).ok_or(SendError::BadHandle)?;
        if data.len() > UDP_MAX_PAYLOAD {
            return Err(SendError::MessageTooLong);
        }
        if let Some(e) = s.error.take() {
            return Err(e.into());
        }
        let peer = normalize(dst.or(s.remote).ok_or(SendError::NotConnected)?);
        if !Self::reaches(s.family, s.v6only, s.local, peer.ip()) {
            return Err(SendError::WrongFamily);
        }
        if data.len() > s.tx_buffer_len {
            return Err(SendError::MessageTooLong);
        }
        if s.tx_bytes + data.len() > s.tx_buffer_len || s.tx.len() >= max_queued {
            return Err(SendError::WouldBlock);
        }
        if s.local.is_none() && !self.autobind(h) {
            return Err(SendError::NoPortsAvailable);
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        let s = self.sockets.get_mut(h.0).ok_or(SendError::BadHandle)?;
        let was_empty = s.tx.is_empty();
        s.tx_bytes += data.len();
        s.tx.push_back(Datagram { peer, data: buf });
        if was_empty {
            self.dirty.push_back(h);
        }
        Ok(data.len())
    }

    /// Takes the next datagram into `buf` (truncating, like recvfrom without MSG_TRUNC)
    /// and returns its full length and sender. With `peek` the datagram stays queued.
    ///
    /// # Errors
    /// `BadHandle`, `WouldBlock` when the queue is empty, or a pending `Refused`
    /// (reported once).
    pub fn recv_from(
        &mut self,
        h: UdpHandle,
        buf: &mut [u8],
        peek: bool,
    ) -> Result<(usize, SocketAddr), RecvError> {
        let s = self.sockets.get_mut(h.0).ok_or(RecvError::BadHandle)?;
        let Some(d) = s.rx.front() else {
            return Err(s
                .error
                .take()
                .map_or(RecvError::WouldBlock, RecvError::from));
        };
        let n = d.data.len().min(buf.len());
        buf[..n].copy_from_slice(&d.data[..n]);
        let res = (d.data.len(), d.peer);
        if !peek {
            let d = s.rx.pop_front().expect("front exists");
            s.rx_bytes -= d.data.len();
            self.spare.push(d.data);
        }
        Ok(res)
    }

    /// Size of the next queued datagram, if any (FIONREAD).
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn peek_len(&self, h: UdpHandle) -> Result<Option<usize>, OptionError> {
        let s = self.get(h).ok_or(OptionError::BadHandle)?;
        Ok(s.rx.front().map(|d| d.data.len()))
    }

    /// True when a datagram is queued or an error is pending (POLLIN).
    pub fn can_recv(&self, h: UdpHandle) -> bool {
        self.get(h)
            .is_some_and(|s| !s.rx.is_empty() || s.error.is_some())
    }

    /// True when the send queue has room for a datagram of `len` bytes (POLLOUT).
    pub fn can_send(&self, h: UdpHandle, len: usize) -> bool {
        self.get(h).is_some_and(|s| {
            s.tx_bytes + len <= s.tx_buffer_len && s.tx.len() < self.config.max_queued
        })
    }

    /// Takes the pending asynchronous error (SO_ERROR).
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn take_error(&mut self, h: UdpHandle) -> Result<Option<UdpError>, OptionError> {
        Ok(self.get_mut(h).ok_or(OptionError::BadHandle)?.error.take())
    }

    /// Sets the receive and send buffer bounds in bytes (SO_RCVBUF / SO_SNDBUF).
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn set_buffer_sizes(
        &mut self,
        h: UdpHandle,
        rx: Option<usize>,
        tx: Option<usize>,
    ) -> Result<(), OptionError> {
        let s = self.get_mut(h).ok_or(OptionError::BadHandle)?;
        if let Some(rx) = rx {
            s.rx_buffer_len = rx;
        }
        if let Some(tx) = tx {
            s.tx_buffer_len = tx;
        }
        Ok(())
    }

    /// Datagrams this socket dropped for lack of receive room.
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn rx_dropped(&self, h: UdpHandle) -> Result<u64, OptionError> {
        Ok(self.get(h).ok_or(OptionError::BadHandle)?.rx_dropped)
    }

    /// Closes the socket, discarding queued data and freeing its port; the handle (and
    /// every copy of it) goes stale.
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn close(&mut self, h: UdpHandle) -> Result<(), CloseError> {
        let s = self.sockets.remove(h.0).ok_or(CloseError::BadHandle)?;
        if s.ready_queued {
            // Keeps the queue bounded by the open sockets for callers that never drain it.
            self.ready.retain(|&x| x != h);
        }
        if let Some(local) = s.local {
            for half in each_half(3) {
                let key = half_key(local.port(), half);
                if self.by_port.get(&key) == Some(&h) {
                    self.by_port.remove(&key);
                }
            }
        }
        self.spare
            .extend(s.rx.into_iter().chain(s.tx).map(|d| d.data));
        Ok(())
    }

    /// The next socket whose readiness may have changed since it was last returned: a
    /// datagram arrived, transmission freed send-queue room, or an ICMP error was
    /// stored. Each socket is queued at most once; closed sockets are skipped, and
    /// entries may be spurious but none is missed.
    pub fn poll_ready(&mut self) -> Option<UdpHandle> {
        while let Some(h) = self.ready.pop_front() {
            if let Some(s) = self.sockets.get_mut(h.0) {
                s.ready_queued = false;
                return Some(h);
            }
        }
        None
    }

    /// Delivers an arriving datagram (`src` and `dst` of one family). Returns false when
    /// no socket wants it, so the interface can answer with ICMP or ICMPv6 port
    /// unreachable.
    pub fn process(
        &mut self,
        _now: Instant,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
    ) -> bool {
        let src = normalize(src);
        let Some(&h) = self.by_port.get(&half_key(dst.port(), half_of(dst.ip()))) else {
            self.counters.no_socket += 1;
            return false;
        };
        let Some(s) = self.sockets.get_mut(h.0) else {
            self.counters.no_socket += 1;
            return false;
        };
        let local_ok = s.local.is_some_and(|l| {
            Self::reaches(s.family, s.v6only, Some(l), dst.ip())
                && (l.ip().is_unspecified() || l.ip() == dst.ip())
        });
        if !local_ok {
            self.counters.no_socket += 1;
            return false;
        }
        if let Some(remote) = s.remote {
            if remote != src {
                // A connected socket only hears its peer; Linux answers others with
                // port unreachable as if nobody listened.
                self.counters.no_socket += 1;
                return false;
            }
        }
        if s.rx_bytes + payload.len() > s.rx_buffer_len || s.rx.len() >= self.config.max_queued {
            // A full queue is readable already: nothing to report.
            s.rx_dropped += 1;
            self.counters.rx_queue_full += 1;
            return true;
        }
        let mut data = self.spare.pop().unwrap_or_default();
        data.clear();
        data.extend_from_slice(payload);
        s.rx_bytes += payload.len();
        s.rx.push_back(Datagram { peer: src, data });
        touch(&mut self.ready, s, h);
        self.counters.delivered += 1;
        true
    }

    /// Emits the next queued datagram as `(local, remote, payload)`, both addresses of
    /// one family; returns whether it did. The source is the bound address, or ours of
    /// the peer's family ([`LocalAddrs::source_for`]) for a wildcard; a datagram to a
    /// family we have no address of is dropped and counted (`no_source`). The datagram
    /// leaves its socket's queue whatever becomes of it below (sent, held for neighbour
    /// resolution, dropped), so the socket is queued for [`poll_ready`](Self::poll_ready).
    pub fn dispatch(&mut self, ours: &LocalAddrs, emit: &mut DatagramSink<'_>) -> bool {
        while let Some(h) = self.dirty.pop_front() {
            let Some(s) = self.sockets.get_mut(h.0) else {
                continue;
            };
            let Some(d) = s.tx.pop_front() else { continue };
            s.tx_bytes -= d.data.len();
            if !s.tx.is_empty() {
                self.dirty.push_back(h);
            }
            touch(&mut self.ready, s, h);
            // send_to binds before queuing; a socket cannot be unbound with output.
            let Some(local) = s.local else {
                self.spare.push(d.data);
                continue;
            };
            let src_ip = if local.ip().is_unspecified() {
                ours.source_for(d.peer.ip())
            } else {
                Some(local.ip())
            };
            match src_ip {
                Some(ip) => {
                    emit(socket_addr(ip, local.port()), d.peer, &d.data, s.ip);
                    self.counters.sent += 1;
                }
                None => self.counters.no_source += 1,
            }
            self.spare.push(d.data);
            return true;
        }
        false
    }

    /// Reports an ICMP error to the socket that sent the quoted datagram. Only
    /// connected sockets hear errors, and only hard ones (port or protocol
    /// unreachable), as on Linux without IP_RECVERR (RFC 1122 §4.1.3.3 leaves it open).
    pub fn handle_icmp_error(&mut self, err: &IcmpError) {
        let Some(&h) = self
            .by_port
            .get(&half_key(err.src_port, half_of(err.src_addr)))
        else {
            return;
        };
        let Some(s) = self.sockets.get_mut(h.0) else {
            return;
        };
        let Some(remote) = s.remote else { return };
        if remote != err.remote() {
            return;
        }
        if matches!(
            err.kind,
            IcmpErrorKind::PortUnreachable | IcmpErrorKind::ProtocolUnreachable
        ) {
            s.error = Some(UdpError::ConnectionRefused);
            touch(&mut self.ready, s, h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::IpProtocol;
    use core::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};

    const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const US6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
    const OURS: LocalAddrs = LocalAddrs {
        v4: US,
        v6: US6,
        v6_link_local: Ipv6Addr::UNSPECIFIED,
    };
    const PEER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 4000));

    fn sa(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
        SocketAddr::new(ip.into(), port)
    }

    fn layer() -> UdpLayer {
        UdpLayer::new(UdpConfig::default(), 7)
    }

    fn drain_ready(l: &mut UdpLayer) -> Vec<UdpHandle> {
        core::iter::from_fn(|| l.poll_ready()).collect()
    }

    fn port_unreachable(from_port: u16) -> IcmpError {
        IcmpError {
            reporter: PEER.ip(),
            kind: IcmpErrorKind::PortUnreachable,
            src_addr: IpAddr::V4(US),
            dst_addr: PEER.ip(),
            protocol: IpProtocol::UDP,
            src_port: from_port,
            dst_port: PEER.port(),
            tcp_seq: 0,
        }
    }

    #[test]
    fn bind_deliver_receive() {
        let mut l = layer();
        let h = l.socket();
        l.bind(h, sa(Ipv4Addr::UNSPECIFIED, 7), &OURS).unwrap();
        assert!(l.process(Instant::ZERO, PEER, sa(US, 7), b"ping"));
        assert!(!l.process(Instant::ZERO, PEER, sa(US, 8), b"x"));
        let mut buf = [0u8; 16];
        assert_eq!(l.recv_from(h, &mut buf, true).unwrap(), (4, PEER));
        assert_eq!(l.recv_from(h, &mut buf, false).unwrap(), (4, PEER));
        assert_eq!(&buf[..4], b"ping");
        assert_eq!(l.recv_from(h, &mut buf, false), Err(RecvError::WouldBlock));
    }

    #[test]
    fn port_conflicts_and_ephemeral_ports() {
        let mut l = layer();
        let (a, b) = (l.socket(), l.socket());
        l.bind(a, sa(US, 53), &OURS).unwrap();
        assert_eq!(l.bind(b, sa(US, 53), &OURS), Err(BindError::AddrInUse));
        assert_eq!(
            l.bind(b, sa(Ipv4Addr::new(1, 2, 3, 4), 54), &OURS),
            Err(BindError::AddrNotAvailable)
        );
        let got = l.bind(b, sa(Ipv4Addr::UNSPECIFIED, 0), &OURS).unwrap();
        assert!((32768..=60999).contains(&got.port()));
        assert_eq!(l.bind(b, sa(US, 99), &OURS), Err(BindError::InvalidState));
        l.close(a).unwrap();
        let c = l.socket();
        l.bind(c, sa(US, 53), &OURS).unwrap();
    }

    #[test]
    fn stale_handle_never_reaches_the_socket_reusing_its_slot() {
        let mut l = layer();
        let old = l.socket();
        l.bind(old, sa(US, 53), &OURS).unwrap();
        l.close(old).unwrap();
        let new = l.socket();
        assert_ne!(old, new, "a reused slot gets a new generation");
        l.bind(new, sa(US, 53), &OURS).unwrap();
        assert!(l.process(Instant::ZERO, PEER, sa(US, 53), b"new"));
        let mut buf = [0u8; 8];
        assert_eq!(l.recv_from(old, &mut buf, true), Err(RecvError::BadHandle));
        assert_eq!(l.send_to(old, b"x", Some(PEER)), Err(SendError::BadHandle));
        assert_eq!(l.connect(old, PEER), Err(ConnectError::BadHandle));
        assert_eq!(l.bind(old, sa(US, 54), &OURS), Err(BindError::BadHandle));
        assert_eq!(l.local_addr(old), Err(OptionError::BadHandle));
        assert_eq!(l.peek_len(old), Err(OptionError::BadHandle));
        assert!(!l.can_recv(old) && !l.can_send(old, 1));
        assert_eq!(l.close(old), Err(CloseError::BadHandle));
        // The new socket is untouched by any of it.
        assert_eq!(l.local_addr(new), Ok(Some(sa(US, 53))));
        assert_eq!(l.recv_from(new, &mut buf, false), Ok((3, PEER)));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn receive_queue_is_bounded_and_counts_drops() {
        let mut l = UdpLayer::new(
            UdpConfig {
                rx_buffer_len: 10,
                ..Default::default()
            },
            0,
        );
        let h = l.socket();
        l.bind(h, sa(US, 9), &OURS).unwrap();
        let to = sa(US, 9);
        assert!(l.process(Instant::ZERO, PEER, to, &[0; 6]));
        assert!(l.process(Instant::ZERO, PEER, to, &[0; 6]));
        assert_eq!(l.rx_dropped(h).unwrap(), 1);
        assert_eq!(l.counters().rx_queue_full, 1);
    }

    #[test]
    fn send_dispatches_in_order_and_binds_implicitly() {
        let mut l = layer();
        let h = l.socket();
        assert_eq!(l.send_to(h, b"a", None), Err(SendError::NotConnected));
        l.send_to(h, b"one", Some(PEER)).unwrap();
        l.send_to(h, b"two", Some(PEER)).unwrap();
        let mut seen = Vec::new();
        while l.dispatch(&OURS, &mut |src, dst, p, _| {
            seen.push((src, dst, p.to_vec()))
        }) {}
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].2, b"one");
        assert_eq!(seen[1].2, b"two");
        assert_eq!(seen[0].0.ip(), IpAddr::V4(US));
        assert_eq!(seen[0].1, PEER);
        assert_eq!(
            l.send_to(h, &vec![0; UDP_MAX_PAYLOAD + 1], Some(PEER)),
            Err(SendError::MessageTooLong)
        );
    }

    #[test]
    fn output_of_a_closed_socket_is_not_sent_by_the_socket_reusing_its_slot() {
        let mut l = layer();
        let old = l.socket();
        l.send_to(old, b"old", Some(PEER)).unwrap();
        l.close(old).unwrap();
        let new = l.socket();
        l.send_to(new, b"new", Some(PEER)).unwrap();
        let mut seen = Vec::new();
        while l.dispatch(&OURS, &mut |_, _, p, _| seen.push(p.to_vec())) {}
        assert_eq!(seen, vec![b"new".to_vec()]);
    }

    #[test]
    fn port_unreachable_reaches_connected_socket_once() {
        let mut l = layer();
        let h = l.socket();
        l.connect(h, PEER).unwrap();
        let port = l.local_addr(h).unwrap().unwrap().port();
        l.handle_icmp_error(&port_unreachable(port));
        assert!(l.can_recv(h));
        let mut buf = [0u8; 4];
        assert_eq!(l.recv_from(h, &mut buf, false), Err(RecvError::Refused));
        assert_eq!(l.recv_from(h, &mut buf, false), Err(RecvError::WouldBlock));
    }

    // ------------------------------------------------------------ readiness

    #[test]
    fn test_ready_after_delivery_once_per_drain() {
        let mut l = layer();
        let (a, b) = (l.socket(), l.socket());
        l.bind(a, sa(US, 7), &OURS).unwrap();
        l.bind(b, sa(US, 8), &OURS).unwrap();
        assert_eq!(
            drain_ready(&mut l),
            vec![],
            "binding is the user's own call"
        );
        for _ in 0..3 {
            assert!(l.process(Instant::ZERO, PEER, sa(US, 7), b"x"));
        }
        assert_eq!(
            drain_ready(&mut l),
            vec![a],
            "three datagrams, one entry, not b"
        );
        assert!(l.process(Instant::ZERO, PEER, sa(US, 7), b"x"));
        assert_eq!(
            drain_ready(&mut l),
            vec![a],
            "queued again after being returned"
        );
        // Dropped for a full queue or for nobody listening: no change to report.
        assert!(!l.process(Instant::ZERO, PEER, sa(US, 9), b"x"));
        assert_eq!(drain_ready(&mut l), vec![]);
    }

    #[test]
    fn test_ready_when_transmission_frees_send_room() {
        let mut l = layer();
        let h = l.socket();
        l.send_to(h, b"one", Some(PEER)).unwrap();
        l.send_to(h, b"two", Some(PEER)).unwrap();
        assert_eq!(
            drain_ready(&mut l),
            vec![],
            "queuing is the user's own call"
        );
        // Whatever becomes of the datagram below (sent, held for ARP, dropped), it left
        // the socket's queue.
        assert!(l.dispatch(&OURS, &mut |_, _, _, _| {}));
        assert_eq!(drain_ready(&mut l), vec![h]);
        assert!(l.dispatch(&OURS, &mut |_, _, _, _| {}));
        assert!(!l.dispatch(&OURS, &mut |_, _, _, _| {}));
        assert_eq!(drain_ready(&mut l), vec![h]);
    }

    #[test]
    fn test_ready_when_an_icmp_error_is_stored() {
        let mut l = layer();
        let (conn, unconn) = (l.socket(), l.socket());
        l.connect(conn, PEER).unwrap();
        l.bind(unconn, sa(US, 5000), &OURS).unwrap();
        let port = l.local_addr(conn).unwrap().unwrap().port();
        l.handle_icmp_error(&port_unreachable(port));
        l.handle_icmp_error(&port_unreachable(5000));
        let mut soft = port_unreachable(port);
        soft.kind = IcmpErrorKind::HostUnreachable;
        l.handle_icmp_error(&soft);
        assert_eq!(
            drain_ready(&mut l),
            vec![conn],
            "only the stored error counts"
        );
    }

    #[test]
    fn test_ready_skips_closed_sockets_and_their_reused_slots() {
        let mut l = layer();
        let old = l.socket();
        l.bind(old, sa(US, 7), &OURS).unwrap();
        assert!(l.process(Instant::ZERO, PEER, sa(US, 7), b"x"));
        l.close(old).unwrap();
        let new = l.socket();
        assert_eq!(
            drain_ready(&mut l),
            vec![],
            "{new} inherits nothing from {old}"
        );
    }

    // ------------------------------------------------------------ families

    const PEER6: SocketAddr = SocketAddr::V6(core::net::SocketAddrV6::new(
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
        4000,
        0,
        0,
    ));

    #[test]
    fn dual_stack_socket_hears_both_families_and_v6only_only_ipv6() {
        let mut l = layer();
        let dual = l.socket_in(IpFamily::V6);
        l.bind(dual, sa(Ipv6Addr::UNSPECIFIED, 53), &OURS).unwrap();
        assert!(l.process(Instant::ZERO, PEER, sa(US, 53), b"v4"));
        assert!(l.process(Instant::ZERO, PEER6, sa(US6, 53), b"v6"));
        let mut buf = [0u8; 8];
        assert_eq!(l.recv_from(dual, &mut buf, false), Ok((2, PEER)));
        assert_eq!(l.recv_from(dual, &mut buf, false), Ok((2, PEER6)));
        let only6 = l.socket_in(IpFamily::V6);
        l.set_v6only(only6, true).unwrap();
        l.bind(only6, sa(Ipv6Addr::UNSPECIFIED, 54), &OURS).unwrap();
        assert_eq!(l.set_v6only(only6, false), Err(OptionError::InvalidState));
        assert!(!l.process(Instant::ZERO, PEER, sa(US, 54), b"v4"));
        assert!(l.process(Instant::ZERO, PEER6, sa(US6, 54), b"v6"));
        let v4 = l.socket();
        l.bind(v4, sa(Ipv4Addr::UNSPECIFIED, 55), &OURS).unwrap();
        assert!(!l.process(Instant::ZERO, PEER6, sa(US6, 55), b"v6"));
        // Families the socket cannot use are refused with a typed error.
        let other4 = l.socket();
        assert_eq!(
            l.bind(other4, sa(Ipv6Addr::UNSPECIFIED, 56), &OURS),
            Err(BindError::WrongFamily)
        );
        assert_eq!(
            l.send_to(v4, b"x", Some(PEER6)),
            Err(SendError::WrongFamily)
        );
        assert_eq!(
            l.send_to(only6, b"x", Some(PEER)),
            Err(SendError::WrongFamily)
        );
        assert_eq!(l.connect(only6, PEER), Err(ConnectError::WrongFamily));
        let fe80 = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 9);
        let not_ours = l.socket_in(IpFamily::V6);
        assert_eq!(
            l.bind(not_ours, sa(fe80, 57), &OURS),
            Err(BindError::AddrNotAvailable)
        );
    }

    #[test]
    fn dispatch_picks_a_source_of_the_peer_family() {
        let mut l = layer();
        let h = l.socket_in(IpFamily::V6);
        l.send_to(h, b"to6", Some(PEER6)).unwrap();
        l.send_to(h, b"to4", Some(PEER)).unwrap();
        assert_eq!(
            l.local_addr(h).unwrap().map(|a| a.ip()),
            Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
        );
        let mut seen = Vec::new();
        while l.dispatch(&OURS, &mut |src, dst, _, _| seen.push((src.ip(), dst))) {}
        assert_eq!(seen, vec![(IpAddr::V6(US6), PEER6), (IpAddr::V4(US), PEER)]);
        // No IPv6 address of ours: the datagram is dropped and counted, not sent.
        l.send_to(h, b"to6", Some(PEER6)).unwrap();
        let v4_only = LocalAddrs::v4(US);
        assert!(l.dispatch(&v4_only, &mut |_, _, _, _| panic!("sent without a source")));
        assert_eq!(l.counters().no_source, 1);
    }

    #[test]
    fn ipv4_and_v6only_sockets_share_a_port_dual_stack_does_not() {
        let mut l = layer();
        let v4 = l.socket();
        l.bind(v4, sa(Ipv4Addr::UNSPECIFIED, 53), &OURS).unwrap();
        let dual = l.socket_in(IpFamily::V6);
        assert_eq!(
            l.bind(dual, sa(Ipv6Addr::UNSPECIFIED, 53), &OURS),
            Err(BindError::AddrInUse)
        );
        let only6 = l.socket_in(IpFamily::V6);
        l.set_v6only(only6, true).unwrap();
        l.bind(only6, sa(Ipv6Addr::UNSPECIFIED, 53), &OURS).unwrap();
        assert!(l.process(Instant::ZERO, PEER, sa(US, 53), b"4"));
        assert!(l.process(Instant::ZERO, PEER6, sa(US6, 53), b"6"));
        let mut buf = [0u8; 4];
        assert_eq!(l.recv_from(v4, &mut buf, false), Ok((1, PEER)));
        assert_eq!(l.recv_from(only6, &mut buf, false), Ok((1, PEER6)));
        // Closing one frees its half only.
        l.close(v4).unwrap();
        assert!(!l.process(Instant::ZERO, PEER, sa(US, 53), b"4"));
        assert!(l.process(Instant::ZERO, PEER6, sa(US6, 53), b"6"));
        let v4b = l.socket();
        l.bind(v4b, sa(US, 53), &OURS).unwrap();
    }
}
