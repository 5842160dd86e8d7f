//! Raw IP sockets, as Linux's `socket(AF_INET, SOCK_RAW, protocol)` and
//! `socket(AF_INET6, SOCK_RAW, protocol)`: each socket gets a copy of every datagram of
//! its family and protocol addressed to us, alongside the stack's own processing, and
//! sends whole transport messages to which the stack adds the IP header. An `AF_INET`
//! socket receives the IPv4 header too; an `AF_INET6` one receives the message only
//! (RFC 3542 §3: IPv6 raw sockets never see the IPv6 header), as Linux does. The
//! interface decides what bytes to hand over; this layer only queues them.
//!
//! Sockets live in a generation-checked [`Slab`] addressed by [`RawHandle`]s: a handle
//! kept after [`close`](RawLayer::close) is stale (`BadHandle`) and never reaches the
//! socket that reuses its slot. Receive queues are bounded in bytes; overflow is
//! dropped and counted.
//!
//! Readiness: a copy delivered, or send-queue room freed by transmission, queues the
//! socket once for [`RawLayer::poll_ready`].

use super::common::{CloseError, IpFamily};
use crate::storage::{Slab, SlabKey};
use crate::wire::IpProtocol;
use core::fmt;
use core::net::IpAddr;
use std::collections::VecDeque;

/// Identifies a raw socket within its layer; a handle kept after close is stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawHandle(SlabKey);

impl fmt::Display for RawHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raw#{}.{}", self.0.index(), self.0.generation())
    }
}

error_enum!(
    /// Errors of [`RawLayer::connect`].
    ConnectError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
        /// The peer is not of the socket's family (EAFNOSUPPORT / EINVAL).
        WrongFamily => "address family not usable by this socket",
    }
);

error_enum!(
    /// Errors of [`RawLayer::send_to`].
    SendError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
        /// No room in the send queue (EAGAIN).
        WouldBlock => "send queue full",
        /// Larger than 65,515 bytes (EMSGSIZE).
        MessageTooLong => "message too long",
        /// No destination given and not connected (EDESTADDRREQ).
        NotConnected => "destination address required",
        /// The destination is not of the socket's family (EAFNOSUPPORT / EINVAL).
        WrongFamily => "address family not usable by this socket",
    }
);

error_enum!(
    /// Errors of [`RawLayer::recv_from`].
    RecvError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
        /// Nothing queued (EAGAIN).
        WouldBlock => "no datagram ready",
    }
);

error_enum!(
    /// Errors of simple queries.
    OptionError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
    }
);

/// Largest payload of a raw send: 65535 minus the IPv4 header.
pub const RAW_MAX_PAYLOAD: usize = 65_515;

#[derive(Debug)]
struct RawSocket {
    family: IpFamily,
    protocol: IpProtocol,
    remote: Option<IpAddr>,
    rx: VecDeque<(IpAddr, Vec<u8>)>,
    rx_bytes: usize,
    tx: VecDeque<(IpAddr, Vec<u8>)>,
    tx_bytes: usize,
    buffer_len: usize,
    dropped: u64,
    /// In the layer's ready queue (so it is queued at most once).
    ready_queued: bool,
}

/// All raw sockets of an interface.
#[derive(Debug, Default)]
pub struct RawLayer {
    sockets: Slab<RawSocket>,
    /// Open sockets per family and protocol number, so delivery does not scan unrelated
    /// sockets.
    by_protocol: Vec<((IpFamily, IpProtocol), Vec<RawHandle>)>,
    /// Sockets with queued output, each at most once (stale handles are skipped).
    dirty: VecDeque<RawHandle>,
    /// Sockets whose readiness may have changed, each at most once.
    ready: VecDeque<RawHandle>,
    spare: Vec<Vec<u8>>,
}

/// Queues `h` for [`RawLayer::poll_ready`] unless it already is.
fn touch(ready: &mut VecDeque<RawHandle>, s: &mut RawSocket, h: RawHandle) {
    if !s.ready_queued {
        s.ready_queued = true;
        ready.push_back(h);
    }
}

impl RawLayer {
    /// No sockets.
    pub fn new() -> RawLayer {
        RawLayer::default()
    }

    /// Open sockets.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// True when no socket is open.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// Opens an `AF_INET` raw socket for `protocol` with `buffer_len` bytes of queue per
    /// direction.
    pub fn socket(&mut self, protocol: IpProtocol, buffer_len: usize) -> RawHandle {
        self.socket_in(IpFamily::V4, protocol, buffer_len)
    }

    /// Opens a raw socket of `family` for `protocol` (the next header, for IPv6, e.g.
    /// ICMPv6) with `buffer_len` bytes of queue per direction.
    pub fn socket_in(
        &mut self,
        family: IpFamily,
        protocol: IpProtocol,
        buffer_len: usize,
    ) -> RawHandle {
        let h = RawHandle(self.sockets.insert(RawSocket {
            family,
            protocol,
            remote: None,
            rx: VecDeque::new(),
            rx_bytes: 0,
            tx: VecDeque::new(),
            tx_bytes: 0,
            buffer_len,
            dropped: 0,
            ready_queued: false,
        }));
        let key = (family, protocol);
        match self.by_protocol.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(h),
            None => self.by_protocol.push((key, vec![h])),
        }
        h
    }

    /// Restricts the socket to one peer and makes it the default destination.
    ///
    /// # Errors
    /// `BadHandle`, `WrongFamily` for a peer of the other family.
    pub fn connect(&mut self, h: RawHandle, remote: IpAddr) -> Result<(), ConnectError> {
        let s = self.sockets.get_mut(h.0).ok_or(ConnectError::BadHandle)?;
        if IpFamily::of(remote) != s.family {
            return Err(ConnectError::WrongFamily);
        }
        s.remote = Some(remote);
        Ok(())
    }

    /// The socket's family.
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn family(&self, h: RawHandle) -> Result<IpFamily, OptionError> {
        Ok(self.sockets.get(h.0).ok_or(OptionError::BadHandle)?.family)
    }

    /// Closes the socket, discarding queued data; the handle (and every copy of it)
    /// goes stale.
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn close(&mut self, h: RawHandle) -> Result<(), CloseError> {
        let s = self.sockets.remove(h.0).ok_or(CloseError::BadHandle)?;
        if s.ready_queued {
            // Keeps the queue bounded by the open sockets for callers that never drain it.
            self.ready.retain(|&x| x != h);
        }
        let key = (s.family, s.protocol);
        if let Some((_, list)) = self.by_protocol.iter_mut().find(|(k, _)| *k == key) {
            list.retain(|&x| x != h);
        }
        self.spare
            .extend(s.rx.into_iter().chain(s.tx).map(|(_, d)| d));
        Ok(())
    }

    /// True when some `AF_INET` socket listens for `protocol` (lets the interface skip
    /// copying).
    pub fn wants(&self, protocol: IpProtocol) -> bool {
        self.wants_in(IpFamily::V4, protocol)
    }

    /// True when some socket of `family` listens for `protocol`.
    pub fn wants_in(&self, family: IpFamily, protocol: IpProtocol) -> bool {
        self.by_protocol
            .iter()
            .any(|(k, list)| *k == (family, protocol) && !list.is_empty())
    }

    /// Gives every socket of `src`'s family and `protocol` a copy of `datagram` from
    /// `src`: for IPv4 the datagram with its IP header, for IPv6 the message after the
    /// IPv6 header and extension headers.
    pub fn process(&mut self, protocol: IpProtocol, src: impl Into<IpAddr>, datagram: &[u8]) {
        let src = src.into();
        let key = (IpFamily::of(src), protocol);
        let Some((_, list)) = self.by_protocol.iter().find(|(k, _)| *k == key) else {
            return;
        };
        for &h in list {
            let Some(s) = self.sockets.get_mut(h.0) else {
                continue;
            };
            if s.remote.is_some_and(|r| r != src) {
                continue;
            }
            if s.rx_bytes + datagram.len() > s.buffer_len {
                s.dropped += 1;
                continue;
            }
            let mut buf = self.spare.pop().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(datagram);
            s.rx_bytes += buf.len();
            s.rx.push_back((src, buf));
            touch(&mut self.ready, s, h);
        }
    }

    /// Takes the next datagram (IP header included) into `buf`, truncating; returns its
    /// full length and source. With `peek` it stays queued.
    ///
    /// # Errors
    /// `BadHandle`, `WouldBlock` when nothing is queued.
    pub fn recv_from(
        &mut self,
        h: RawHandle,
        buf: &mut [u8],
        peek: bool,
    ) -> Result<(usize, IpAddr), RecvError> {
        let s = self.sockets.get_mut(h.0).ok_or(RecvError::BadHandle)?;
        let Some((src, d)) = s.rx.front() else {
            return Err(RecvError::WouldBlock);
        };
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        let res = (d.len(), *src);
        if !peek {
            let (_, d) = s.rx.pop_front().expect("front exists");
            s.rx_bytes -= d.len();
            self.spare.push(d);
        }
        Ok(res)
    }

    /// Queues `payload` (the transport message) to `dst` or the connected peer.
    ///
    /// # Errors
    /// `BadHandle`, `MessageTooLong`, `NotConnected`, `WrongFamily`, `WouldBlock`.
    pub fn send_to(
        &mut self,
        h: RawHandle,
        payload: &[u8],
        dst: Option<IpAddr>,
    ) -> Result<usize, SendError> {
        let s = self.sockets.get_mut(h.0).ok_or(SendError::BadHandle)?;
        if payload.len() > RAW_MAX_PAYLOAD {
            return Err(SendError::MessageTooLong);
        }
        let dst = dst.or(s.remote).ok_or(SendError::NotConnected)?;
        if IpFamily::of(dst) != s.family {
            return Err(SendError::WrongFamily);
        }
        // One message always fits an empty queue, whatever the bound.
        if s.tx_bytes + payload.len() > s.buffer_len.max(payload.len()) && !s.tx.is_empty() {
            return Err(SendError::WouldBlock);
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(payload);
        s.tx_bytes += payload.len();
        let was_empty = s.tx.is_empty();
        s.tx.push_back((dst, buf));
        if was_empty {
            self.dirty.push_back(h);
        }
        Ok(payload.len())
    }

    /// True when a datagram is queued (POLLIN).
    pub fn can_recv(&self, h: RawHandle) -> bool {
        self.sockets.get(h.0).is_some_and(|s| !s.rx.is_empty())
    }

    /// True when the send queue has room (POLLOUT).
    pub fn can_send(&self, h: RawHandle) -> bool {
        self.sockets
            .get(h.0)
            .is_some_and(|s| s.tx_bytes < s.buffer_len)
    }

    /// Datagrams this socket dropped for lack of room.
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn dropped(&self, h: RawHandle) -> Result<u64, OptionError> {
        Ok(self.sockets.get(h.0).ok_or(OptionError::BadHandle)?.dropped)
    }

    /// The next socket whose readiness may have changed since it was last returned: a
    /// copy was delivered, or transmission freed send-queue room. Each socket is queued
    /// at most once; closed sockets are skipped.
    pub fn poll_ready(&mut self) -> Option<RawHandle> {
        while let Some(h) = self.ready.pop_front() {
            if let Some(s) = self.sockets.get_mut(h.0) {
                s.ready_queued = false;
                return Some(h);
            }
        }
        None
    }

    /// Emits the next queued message as `(protocol, dst, payload)`, `dst` of the
    /// socket's family; returns whether it did. The message leaves its socket's queue
    /// whatever becomes of it below, so the socket is queued for
    /// [`poll_ready`](Self::poll_ready).
    pub fn dispatch(&mut self, emit: &mut dyn FnMut(IpProtocol, IpAddr, &[u8])) -> bool {
        while let Some(h) = self.dirty.pop_front() {
            let Some(s) = self.sockets.get_mut(h.0) else {
                continue;
            };
            let Some((dst, data)) = s.tx.pop_front() else {
                continue;
            };
            s.tx_bytes -= data.len();
            if !s.tx.is_empty() {
                self.dirty.push_back(h);
            }
            touch(&mut self.ready, s, h);
            emit(s.protocol, dst, &data);
            self.spare.push(data);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9));
    const A6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1));

    fn drain_ready(l: &mut RawLayer) -> Vec<RawHandle> {
        core::iter::from_fn(|| l.poll_ready()).collect()
    }

    #[test]
    fn copies_go_to_every_socket_of_the_protocol_and_respect_connect() {
        let mut l = RawLayer::new();
        let any = l.socket(IpProtocol::ICMP, 1024);
        let only_a = l.socket(IpProtocol::ICMP, 1024);
        let udp = l.socket(IpProtocol::UDP, 1024);
        l.connect(only_a, A).unwrap();
        l.process(IpProtocol::ICMP, B, b"from-b");
        l.process(IpProtocol::ICMP, A, b"from-a");
        let mut buf = [0u8; 16];
        assert_eq!(l.recv_from(any, &mut buf, false).unwrap(), (6, B));
        assert_eq!(l.recv_from(any, &mut buf, false).unwrap(), (6, A));
        assert_eq!(l.recv_from(only_a, &mut buf, false).unwrap(), (6, A));
        assert_eq!(&buf[..6], b"from-a");
        assert_eq!(
            l.recv_from(udp, &mut buf, false),
            Err(RecvError::WouldBlock)
        );
        assert!(l.wants(IpProtocol::ICMP));
        l.close(any).unwrap();
        l.close(only_a).unwrap();
        assert!(!l.wants(IpProtocol::ICMP));
    }

    #[test]
    fn queue_bound_drops_and_counts() {
        let mut l = RawLayer::new();
        let h = l.socket(IpProtocol::ICMP, 10);
        l.process(IpProtocol::ICMP, A, &[0; 8]);
        l.process(IpProtocol::ICMP, A, &[0; 8]);
        assert_eq!(l.dropped(h), Ok(1));
    }

    #[test]
    fn sends_are_dispatched_in_order() {
        let mut l = RawLayer::new();
        let h = l.socket(IpProtocol::ICMP, 1024);
        assert_eq!(l.send_to(h, b"x", None), Err(SendError::NotConnected));
        l.send_to(h, b"one", Some(A)).unwrap();
        l.send_to(h, b"two", Some(B)).unwrap();
        let mut seen = Vec::new();
        while l.dispatch(&mut |p, d, m| seen.push((p, d, m.to_vec()))) {}
        assert_eq!(
            seen,
            vec![
                (IpProtocol::ICMP, A, b"one".to_vec()),
                (IpProtocol::ICMP, B, b"two".to_vec())
            ]
        );
    }

    #[test]
    fn stale_handle_never_reaches_the_socket_reusing_its_slot() {
        let mut l = RawLayer::new();
        let old = l.socket(IpProtocol::ICMP, 1024);
        l.send_to(old, b"old", Some(A)).unwrap();
        l.close(old).unwrap();
        let new = l.socket(IpProtocol::ICMP, 1024);
        assert_ne!(old, new, "a reused slot gets a new generation");
        l.process(IpProtocol::ICMP, A, b"copy");
        let mut buf = [0u8; 8];
        assert_eq!(l.recv_from(old, &mut buf, true), Err(RecvError::BadHandle));
        assert_eq!(l.send_to(old, b"x", Some(A)), Err(SendError::BadHandle));
        assert_eq!(l.connect(old, B), Err(ConnectError::BadHandle));
        assert_eq!(l.dropped(old), Err(OptionError::BadHandle));
        assert!(!l.can_recv(old) && !l.can_send(old));
        assert_eq!(l.close(old), Err(CloseError::BadHandle));
        // The new socket got the copy, is not connected, and sends nothing of the old.
        assert_eq!(l.recv_from(new, &mut buf, false), Ok((4, A)));
        l.process(IpProtocol::ICMP, B, b"from-b");
        assert_eq!(l.recv_from(new, &mut buf, false), Ok((6, B)));
        assert!(!l.dispatch(&mut |_, _, _| panic!("the closed socket's message left")));
        assert_eq!(l.len(), 1);
    }

    // ------------------------------------------------------------ readiness

    #[test]
    fn test_ready_after_each_delivered_copy() {
        let mut l = RawLayer::new();
        let icmp = l.socket(IpProtocol::ICMP, 1024);
        let only_b = l.socket(IpProtocol::ICMP, 1024);
        let udp = l.socket(IpProtocol::UDP, 1024);
        l.connect(only_b, B).unwrap();
        l.process(IpProtocol::ICMP, A, b"x");
        l.process(IpProtocol::ICMP, A, b"y");
        assert_eq!(drain_ready(&mut l), vec![icmp], "not {only_b} nor {udp}");
        l.process(IpProtocol::UDP, B, b"z");
        assert_eq!(drain_ready(&mut l), vec![udp]);
    }

    #[test]
    fn test_ready_when_transmission_frees_send_room() {
        let mut l = RawLayer::new();
        let h = l.socket(IpProtocol::ICMP, 1024);
        l.send_to(h, b"one", Some(A)).unwrap();
        assert_eq!(
            drain_ready(&mut l),
            vec![],
            "queuing is the user's own call"
        );
        assert!(l.dispatch(&mut |_, _, _| {}));
        assert_eq!(drain_ready(&mut l), vec![h]);
    }

    #[test]
    fn test_ready_skips_closed_sockets() {
        let mut l = RawLayer::new();
        let old = l.socket(IpProtocol::ICMP, 1024);
        l.process(IpProtocol::ICMP, A, b"x");
        l.close(old).unwrap();
        let _new = l.socket(IpProtocol::ICMP, 1024);
        assert_eq!(drain_ready(&mut l), vec![]);
    }

    #[test]
    fn families_are_kept_apart() {
        let mut l = RawLayer::new();
        let v4 = l.socket(IpProtocol::ICMP, 1024);
        let v6 = l.socket_in(IpFamily::V6, IpProtocol(58), 1024);
        let v6_proto1 = l.socket_in(IpFamily::V6, IpProtocol::ICMP, 1024);
        assert!(l.wants_in(IpFamily::V6, IpProtocol(58)));
        assert!(!l.wants(IpProtocol(58)), "no AF_INET socket for 58");
        l.process(IpProtocol(58), A6, b"icmpv6");
        l.process(IpProtocol::ICMP, A, b"icmp");
        let mut buf = [0u8; 16];
        assert_eq!(l.recv_from(v6, &mut buf, false), Ok((6, A6)));
        assert_eq!(l.recv_from(v4, &mut buf, false), Ok((4, A)));
        assert_eq!(
            l.recv_from(v6_proto1, &mut buf, false),
            Err(RecvError::WouldBlock),
            "an IPv4 datagram of protocol 1 is not for an AF_INET6 socket"
        );
        assert_eq!(l.send_to(v6, b"x", Some(A)), Err(SendError::WrongFamily));
        assert_eq!(l.connect(v4, A6), Err(ConnectError::WrongFamily));
        l.send_to(v6, b"echo", Some(A6)).unwrap();
        let mut seen = Vec::new();
        while l.dispatch(&mut |p, d, m| seen.push((p, d, m.to_vec()))) {}
        assert_eq!(seen, vec![(IpProtocol(58), A6, b"echo".to_vec())]);
    }
}
