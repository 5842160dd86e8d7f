//! UDP sockets (RFC 768): bind/connect semantics, ephemeral ports, bounded queues.
//!
//! Sockets live in a slab indexed by [`UdpHandle`]; arriving datagrams are matched by
//! destination port through a hash map. Each socket's receive queue is bounded in
//! datagrams and bytes; overflow is dropped and counted, like a kernel socket buffer.

use super::{IcmpError, IcmpErrorKind};
use crate::time::Instant;
use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};
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

/// Identifies a UDP socket within its layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UdpHandle(pub usize);

/// Errors of UDP socket operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpError {
    /// The handle does not name an open socket.
    BadHandle,
    /// The port is taken (EADDRINUSE).
    AddrInUse,
    /// The local address is not ours (EADDRNOTAVAIL).
    AddrNotAvailable,
    /// Already bound (EINVAL).
    AlreadyBound,
    /// No destination given and not connected (EDESTADDRREQ / ENOTCONN).
    NotConnected,
    /// Nothing to receive, or no room to send (EAGAIN).
    WouldBlock,
    /// Datagram larger than 65,507 bytes or the send buffer (EMSGSIZE).
    MessageTooLong,
    /// The peer answered with ICMP port unreachable (ECONNREFUSED), reported once.
    ConnectionRefused,
    /// Every ephemeral port is taken.
    NoPortsAvailable,
}

impl fmt::Display for UdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for UdpError {}

/// Largest UDP payload over IPv4: 65535 - 20 (IP) - 8 (UDP).
pub const UDP_MAX_PAYLOAD: usize = 65_507;

#[derive(Debug)]
struct Datagram {
    peer: SocketAddrV4,
    data: Vec<u8>,
}

#[derive(Debug)]
struct UdpSocket {
    local: Option<SocketAddrV4>,
    remote: Option<SocketAddrV4>,
    rx: VecDeque<Datagram>,
    rx_bytes: usize,
    tx: VecDeque<Datagram>,
    tx_bytes: usize,
    rx_buffer_len: usize,
    tx_buffer_len: usize,
    error: Option<UdpError>,
    rx_dropped: u64,
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
}

/// All UDP sockets of an interface.
#[derive(Debug)]
pub struct UdpLayer {
    config: UdpConfig,
    sockets: Vec<Option<UdpSocket>>,
    by_port: HashMap<u16, UdpHandle>,
    /// Sockets with queued output, in FIFO order, each at most once.
    dirty: VecDeque<UdpHandle>,
    next_ephemeral: u16,
    spare: Vec<Vec<u8>>,
    counters: UdpCounters,
}

impl UdpLayer {
    /// An empty layer; `seed` picks where the ephemeral port search starts.
    pub fn new(config: UdpConfig, seed: u64) -> UdpLayer {
        let (lo, hi) = config.ephemeral_ports;
        let span = u64::from(hi - lo) + 1;
        UdpLayer {
            next_ephemeral: lo + (seed % span) as u16,
            config,
            sockets: Vec::new(),
            by_port: HashMap::new(),
            dirty: VecDeque::new(),
            spare: Vec::new(),
            counters: UdpCounters::default(),
        }
    }

    /// Layer counters.
    pub fn counters(&self) -> UdpCounters {
        self.counters
    }

    /// Opens an unbound socket.
    pub fn socket(&mut self) -> UdpHandle {
        let sock = UdpSocket {
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
        };
        if let Some(i) = self.sockets.iter().position(Option::is_none) {
            self.sockets[i] = Some(sock);
            UdpHandle(i)
        } else {
            self.sockets.push(Some(sock));
            UdpHandle(self.sockets.len() - 1)
        }
    }

    fn get(&self, h: UdpHandle) -> Result<&UdpSocket, UdpError> {
        self.sockets
            .get(h.0)
            .and_then(Option::as_ref)
            .ok_or(UdpError::BadHandle)
    }

    fn get_mut(&mut self, h: UdpHandle) -> Result<&mut UdpSocket, UdpError> {
        self.sockets
            .get_mut(h.0)
            .and_then(Option::as_mut)
            .ok_or(UdpError::BadHandle)
    }

    /// Binds to `addr` (port 0 picks an ephemeral port). `our_addr` is the interface's.
    ///
    /// # Errors
    /// `AlreadyBound`, `AddrInUse`, `AddrNotAvailable`, `NoPortsAvailable`.
    pub fn bind(
        &mut self,
        h: UdpHandle,
        addr: SocketAddrV4,
        our_addr: Ipv4Addr,
    ) -> Result<SocketAddrV4, UdpError> {
        if self.get(h)?.local.is_some() {
            return Err(UdpError::AlreadyBound);
        }
        if !addr.ip().is_unspecified() && *addr.ip() != our_addr {
            return Err(UdpError::AddrNotAvailable);
        }
        let port = if addr.port() == 0 {
            self.ephemeral_port()?
        } else if self.by_port.contains_key(&addr.port()) {
            return Err(UdpError::AddrInUse);
        } else {
            addr.port()
        };
        let local = SocketAddrV4::new(*addr.ip(), port);
        self.get_mut(h)?.local = Some(local);
        self.by_port.insert(port, h);
        Ok(local)
    }

    fn ephemeral_port(&mut self) -> Result<u16, UdpError> {
        let (lo, hi) = self.config.ephemeral_ports;
        for _ in lo..=hi {
            let p = self.next_ephemeral;
            self.next_ephemeral = if p >= hi { lo } else { p + 1 };
            if !self.by_port.contains_key(&p) {
                return Ok(p);
            }
        }
        Err(UdpError::NoPortsAvailable)
    }

    /// Sets the default destination and filters arrivals to that peer; binds an
    /// ephemeral port first if unbound.
    ///
    /// # Errors
    /// As [`bind`](Self::bind).
    pub fn connect(
        &mut self,
        h: UdpHandle,
        remote: SocketAddrV4,
        our_addr: Ipv4Addr,
    ) -> Result<(), UdpError> {
        if self.get(h)?.local.is_none() {
            self.bind(h, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), our_addr)?;
        }
        let s = self.get_mut(h)?;
        s.remote = Some(remote);
        s.error = None;
        Ok(())
    }

    /// Local address, if bound.
    pub fn local_addr(&self, h: UdpHandle) -> Result<Option<SocketAddrV4>, UdpError> {
        Ok(self.get(h)?.local)
    }

    /// Connected peer, if any.
    pub fn peer_addr(&self, h: UdpHandle) -> Result<Option<SocketAddrV4>, UdpError> {
        Ok(self.get(h)?.remote)
    }

    /// Queues a datagram to `dst` (or the connected peer when `None`).
    ///
    /// # Errors
    /// `MessageTooLong`, `NotConnected`, `WouldBlock` when the send queue is full, a
    /// pending `ConnectionRefused`, or a bind error.
    pub fn send_to(
        &mut self,
        h: UdpHandle,
        data: &[u8],
        dst: Option<SocketAddrV4>,
        our_addr: Ipv4Addr,
    ) -> Result<usize, UdpError> {
        if data.len() > UDP_MAX_PAYLOAD {
            return Err(UdpError::MessageTooLong);
        }
        let max_queued = self.config.max_queued;
        let s = self.get_mut(h)?;
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        let peer = dst.or(s.remote).ok_or(UdpError::NotConnected)?;
        if data.len() > s.tx_buffer_len {
            return Err(UdpError::MessageTooLong);
        }
        if s.tx_bytes + data.len() > s.tx_buffer_len || s.tx.len() >= max_queued {
            return Err(UdpError::WouldBlock);
        }
        if s.local.is_none() {
            self.bind(h, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), our_addr)?;
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        let s = self.get_mut(h)?;
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
    /// `WouldBlock` when the queue is empty, or a pending `ConnectionRefused`.
    pub fn recv_from(
        &mut self,
        h: UdpHandle,
        buf: &mut [u8],
        peek: bool,
    ) -> Result<(usize, SocketAddrV4), UdpError> {
        let s = self.get_mut(h)?;
        let Some(d) = s.rx.front() else {
            return Err(s.error.take().unwrap_or(UdpError::WouldBlock));
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
    pub fn peek_len(&self, h: UdpHandle) -> Result<Option<usize>, UdpError> {
        Ok(self.get(h)?.rx.front().map(|d| d.data.len()))
    }

    /// True when a datagram is queued or an error is pending (POLLIN).
    pub fn can_recv(&self, h: UdpHandle) -> bool {
        self.get(h)
            .map(|s| !s.rx.is_empty() || s.error.is_some())
            .unwrap_or(false)
    }

    /// True when the send queue has room for a datagram of `len` bytes (POLLOUT).
    pub fn can_send(&self, h: UdpHandle, len: usize) -> bool {
        self.get(h)
            .map(|s| s.tx_bytes + len <= s.tx_buffer_len && s.tx.len() < self.config.max_queued)
            .unwrap_or(false)
    }

    /// Takes the pending asynchronous error (SO_ERROR).
    pub fn take_error(&mut self, h: UdpHandle) -> Result<Option<UdpError>, UdpError> {
        Ok(self.get_mut(h)?.error.take())
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
    ) -> Result<(), UdpError> {
        let s = self.get_mut(h)?;
        if let Some(rx) = rx {
            s.rx_buffer_len = rx;
        }
        if let Some(tx) = tx {
            s.tx_buffer_len = tx;
        }
        Ok(())
    }

    /// Datagrams this socket dropped for lack of receive room.
    pub fn rx_dropped(&self, h: UdpHandle) -> Result<u64, UdpError> {
        Ok(self.get(h)?.rx_dropped)
    }

    /// Closes the socket, discarding queued data and freeing its port.
    pub fn close(&mut self, h: UdpHandle) {
        if let Some(Some(s)) = self.sockets.get_mut(h.0).map(Option::take) {
            if let Some(local) = s.local {
                if self.by_port.get(&local.port()) == Some(&h) {
                    self.by_port.remove(&local.port());
                }
            }
            self.spare
                .extend(s.rx.into_iter().chain(s.tx).map(|d| d.data));
        }
    }

    /// Delivers an arriving datagram. Returns false when no socket wants it, so the
    /// interface can answer with ICMP port unreachable.
    pub fn process(
        &mut self,
        _now: Instant,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        payload: &[u8],
    ) -> bool {
        let Some(&h) = self.by_port.get(&dst.port()) else {
            self.counters.no_socket += 1;
            return false;
        };
        let Some(Some(s)) = self.sockets.get_mut(h.0) else {
            self.counters.no_socket += 1;
            return false;
        };
        if let Some(local) = s.local {
            if !local.ip().is_unspecified() && *local.ip() != *dst.ip() {
                self.counters.no_socket += 1;
                return false;
            }
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
            s.rx_dropped += 1;
            self.counters.rx_queue_full += 1;
            return true;
        }
        let mut data = self.spare.pop().unwrap_or_default();
        data.clear();
        data.extend_from_slice(payload);
        s.rx_bytes += payload.len();
        s.rx.push_back(Datagram { peer: src, data });
        self.counters.delivered += 1;
        true
    }

    /// Emits the next queued datagram as `(local, remote, payload)`; returns whether it did.
    pub fn dispatch(
        &mut self,
        our_addr: Ipv4Addr,
        emit: &mut dyn FnMut(SocketAddrV4, SocketAddrV4, &[u8]),
    ) -> bool {
        while let Some(h) = self.dirty.pop_front() {
            let Some(Some(s)) = self.sockets.get_mut(h.0) else {
                continue;
            };
            let Some(d) = s.tx.pop_front() else { continue };
            s.tx_bytes -= d.data.len();
            if !s.tx.is_empty() {
                self.dirty.push_back(h);
            }
            let local = s.local.expect("sending socket is bound");
            let src = SocketAddrV4::new(our_addr, local.port());
            emit(src, d.peer, &d.data);
            self.counters.sent += 1;
            self.spare.push(d.data);
            return true;
        }
        false
    }

    /// Reports an ICMP error to the socket that sent the quoted datagram. Only
    /// connected sockets hear errors, as on Linux (RFC 1122 §4.1.3.3 leaves it open).
    pub fn handle_icmp_error(&mut self, err: &IcmpError) {
        let Some(&h) = self.by_port.get(&err.src_port) else {
            return;
        };
        let Some(Some(s)) = self.sockets.get_mut(h.0) else {
            return;
        };
        let Some(remote) = s.remote else { return };
        if *remote.ip() != err.quoted.dst_addr || remote.port() != err.dst_port {
            return;
        }
        if matches!(
            err.kind,
            IcmpErrorKind::PortUnreachable | IcmpErrorKind::ProtocolUnreachable
        ) {
            s.error = Some(UdpError::ConnectionRefused);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{IpProtocol, Ipv4Repr};

    const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const PEER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 4000);

    fn layer() -> UdpLayer {
        UdpLayer::new(UdpConfig::default(), 7)
    }

    #[test]
    fn bind_deliver_receive() {
        let mut l = layer();
        let h = l.socket();
        l.bind(h, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7), US)
            .unwrap();
        assert!(l.process(Instant::ZERO, PEER, SocketAddrV4::new(US, 7), b"ping"));
        assert!(!l.process(Instant::ZERO, PEER, SocketAddrV4::new(US, 8), b"x"));
        let mut buf = [0u8; 16];
        assert_eq!(l.recv_from(h, &mut buf, true).unwrap(), (4, PEER));
        assert_eq!(l.recv_from(h, &mut buf, false).unwrap(), (4, PEER));
        assert_eq!(&buf[..4], b"ping");
        assert_eq!(l.recv_from(h, &mut buf, false), Err(UdpError::WouldBlock));
    }

    #[test]
    fn port_conflicts_and_ephemeral_ports() {
        let mut l = layer();
        let (a, b) = (l.socket(), l.socket());
        l.bind(a, SocketAddrV4::new(US, 53), US).unwrap();
        assert_eq!(
            l.bind(b, SocketAddrV4::new(US, 53), US),
            Err(UdpError::AddrInUse)
        );
        assert_eq!(
            l.bind(b, SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 54), US),
            Err(UdpError::AddrNotAvailable)
        );
        let got = l
            .bind(b, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), US)
            .unwrap();
        assert!((32768..=60999).contains(&got.port()));
        l.close(a);
        let c = l.socket();
        l.bind(c, SocketAddrV4::new(US, 53), US).unwrap();
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
        l.bind(h, SocketAddrV4::new(US, 9), US).unwrap();
        let to = SocketAddrV4::new(US, 9);
        assert!(l.process(Instant::ZERO, PEER, to, &[0; 6]));
        assert!(l.process(Instant::ZERO, PEER, to, &[0; 6]));
        assert_eq!(l.rx_dropped(h).unwrap(), 1);
        assert_eq!(l.counters().rx_queue_full, 1);
    }

    #[test]
    fn send_dispatches_in_order_and_binds_implicitly() {
        let mut l = layer();
        let h = l.socket();
        assert_eq!(l.send_to(h, b"a", None, US), Err(UdpError::NotConnected));
        l.send_to(h, b"one", Some(PEER), US).unwrap();
        l.send_to(h, b"two", Some(PEER), US).unwrap();
        let mut seen = Vec::new();
        while l.dispatch(US, &mut |src, dst, p| seen.push((src, dst, p.to_vec()))) {}
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].2, b"one");
        assert_eq!(seen[1].2, b"two");
        assert_eq!(*seen[0].0.ip(), US);
        assert_eq!(seen[0].1, PEER);
        assert_eq!(
            l.send_to(h, &vec![0; UDP_MAX_PAYLOAD + 1], Some(PEER), US),
            Err(UdpError::MessageTooLong)
        );
    }

    #[test]
    fn port_unreachable_reaches_connected_socket_once() {
        let mut l = layer();
        let h = l.socket();
        l.connect(h, PEER, US).unwrap();
        let port = l.local_addr(h).unwrap().unwrap().port();
        let quoted = Ipv4Repr {
            src_addr: US,
            dst_addr: *PEER.ip(),
            protocol: IpProtocol::UDP,
            ttl: 64,
            tos: 0,
            ident: 1,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
            payload_len: 9,
        };
        l.handle_icmp_error(&IcmpError {
            reporter: *PEER.ip(),
            kind: IcmpErrorKind::PortUnreachable,
            quoted,
            src_port: port,
            dst_port: PEER.port(),
            tcp_seq: 0,
        });
        assert!(l.can_recv(h));
        let mut buf = [0u8; 4];
        assert_eq!(
            l.recv_from(h, &mut buf, false),
            Err(UdpError::ConnectionRefused)
        );
        assert_eq!(l.recv_from(h, &mut buf, false), Err(UdpError::WouldBlock));
    }
}
