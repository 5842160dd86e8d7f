//! Raw IP sockets, as Linux's `socket(AF_INET, SOCK_RAW, protocol)`: each socket gets a
//! copy of every datagram of its protocol addressed to us (IP header included, after
//! reassembly), alongside the stack's own processing, and sends whole transport
//! messages to which the stack adds the IP header.
//!
//! Receive queues are bounded in bytes and datagrams; overflow is dropped and counted.

use crate::wire::IpProtocol;
use core::net::Ipv4Addr;
use std::collections::VecDeque;

/// Identifies a raw socket within its layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawHandle(pub usize);

/// Errors of raw socket operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawError {
    /// The handle does not name an open socket.
    BadHandle,
    /// Nothing to receive, or no room to send (EAGAIN).
    WouldBlock,
    /// Message larger than 65,515 bytes or the send buffer (EMSGSIZE).
    MessageTooLong,
    /// No destination and not connected (EDESTADDRREQ).
    NotConnected,
}

impl core::fmt::Display for RawError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for RawError {}

/// Largest payload of a raw send: 65535 minus the IPv4 header.
pub const RAW_MAX_PAYLOAD: usize = 65_515;

#[derive(Debug)]
struct RawSocket {
    protocol: IpProtocol,
    remote: Option<Ipv4Addr>,
    rx: VecDeque<(Ipv4Addr, Vec<u8>)>,
    rx_bytes: usize,
    tx: VecDeque<(Ipv4Addr, Vec<u8>)>,
    tx_bytes: usize,
    buffer_len: usize,
    dropped: u64,
}

/// All raw sockets of an interface.
#[derive(Debug, Default)]
pub struct RawLayer {
    sockets: Vec<Option<RawSocket>>,
    /// Open sockets per protocol number, so delivery does not scan unrelated sockets.
    by_protocol: Vec<(IpProtocol, Vec<RawHandle>)>,
    dirty: VecDeque<RawHandle>,
    spare: Vec<Vec<u8>>,
}

impl RawLayer {
    /// No sockets.
    pub fn new() -> RawLayer {
        RawLayer::default()
    }

    /// Opens a raw socket for `protocol` with `buffer_len` bytes of queue per direction.
    pub fn socket(&mut self, protocol: IpProtocol, buffer_len: usize) -> RawHandle {
        let sock = RawSocket {
            protocol,
            remote: None,
            rx: VecDeque::new(),
            rx_bytes: 0,
            tx: VecDeque::new(),
            tx_bytes: 0,
            buffer_len,
            dropped: 0,
        };
        let h = match self.sockets.iter().position(Option::is_none) {
            Some(i) => {
                self.sockets[i] = Some(sock);
                RawHandle(i)
            }
            None => {
                self.sockets.push(Some(sock));
                RawHandle(self.sockets.len() - 1)
            }
        };
        match self.by_protocol.iter_mut().find(|(p, _)| *p == protocol) {
            Some((_, list)) => list.push(h),
            None => self.by_protocol.push((protocol, vec![h])),
        }
        h
    }

    fn get_mut(&mut self, h: RawHandle) -> Result<&mut RawSocket, RawError> {
        self.sockets
            .get_mut(h.0)
            .and_then(Option::as_mut)
            .ok_or(RawError::BadHandle)
    }

    /// Restricts the socket to one peer and makes it the default destination.
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn connect(&mut self, h: RawHandle, remote: Ipv4Addr) -> Result<(), RawError> {
        self.get_mut(h)?.remote = Some(remote);
        Ok(())
    }

    /// Closes the socket.
    pub fn close(&mut self, h: RawHandle) {
        if let Some(Some(s)) = self.sockets.get_mut(h.0).map(Option::take) {
            if let Some((_, list)) = self.by_protocol.iter_mut().find(|(p, _)| *p == s.protocol) {
                list.retain(|&x| x != h);
            }
            self.spare
                .extend(s.rx.into_iter().chain(s.tx).map(|(_, d)| d));
        }
    }

    /// True when some socket listens for `protocol` (lets the interface skip copying).
    pub fn wants(&self, protocol: IpProtocol) -> bool {
        self.by_protocol
            .iter()
            .any(|(p, list)| *p == protocol && !list.is_empty())
    }

    /// Gives every socket of `protocol` a copy of `datagram` (IP header included) from `src`.
    pub fn process(&mut self, protocol: IpProtocol, src: Ipv4Addr, datagram: &[u8]) {
        let Some((_, list)) = self.by_protocol.iter().find(|(p, _)| *p == protocol) else {
            return;
        };
        for &h in list {
            let Some(Some(s)) = self.sockets.get_mut(h.0) else {
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
        }
    }

    /// Takes the next datagram (IP header included) into `buf`, truncating; returns its
    /// full length and source. With `peek` it stays queued.
    ///
    /// # Errors
    /// `WouldBlock` when nothing is queued.
    pub fn recv_from(
        &mut self,
        h: RawHandle,
        buf: &mut [u8],
        peek: bool,
    ) -> Result<(usize, Ipv4Addr), RawError> {
        let s = self.get_mut(h)?;
        let Some((src, d)) = s.rx.front() else {
            return Err(RawError::WouldBlock);
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
    /// `MessageTooLong`, `NotConnected`, `WouldBlock`.
    pub fn send_to(
        &mut self,
        h: RawHandle,
        payload: &[u8],
        dst: Option<Ipv4Addr>,
    ) -> Result<usize, RawError> {
        if payload.len() > RAW_MAX_PAYLOAD {
            return Err(RawError::MessageTooLong);
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        let s = self.get_mut(h)?;
        let dst = dst.or(s.remote).ok_or(RawError::NotConnected)?;
        if s.tx_bytes + payload.len() > s.buffer_len.max(payload.len()) && !s.tx.is_empty() {
            self.spare.push(buf);
            return Err(RawError::WouldBlock);
        }
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
        matches!(self.sockets.get(h.0), Some(Some(s)) if !s.rx.is_empty())
    }

    /// True when the send queue has room (POLLOUT).
    pub fn can_send(&self, h: RawHandle) -> bool {
        matches!(self.sockets.get(h.0), Some(Some(s)) if s.tx_bytes < s.buffer_len)
    }

    /// Datagrams this socket dropped for lack of room.
    pub fn dropped(&self, h: RawHandle) -> u64 {
        match self.sockets.get(h.0) {
            Some(Some(s)) => s.dropped,
            _ => 0,
        }
    }

    /// Emits the next queued message as `(protocol, dst, payload)`; returns whether it did.
    pub fn dispatch(&mut self, emit: &mut dyn FnMut(IpProtocol, Ipv4Addr, &[u8])) -> bool {
        while let Some(h) = self.dirty.pop_front() {
            let Some(Some(s)) = self.sockets.get_mut(h.0) else {
                continue;
            };
            let Some((dst, data)) = s.tx.pop_front() else {
                continue;
            };
            s.tx_bytes -= data.len();
            if !s.tx.is_empty() {
                self.dirty.push_back(h);
            }
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

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);

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
        assert_eq!(l.recv_from(udp, &mut buf, false), Err(RawError::WouldBlock));
        assert!(l.wants(IpProtocol::ICMP));
        l.close(any);
        l.close(only_a);
        assert!(!l.wants(IpProtocol::ICMP));
    }

    #[test]
    fn queue_bound_drops_and_counts() {
        let mut l = RawLayer::new();
        let h = l.socket(IpProtocol::ICMP, 10);
        l.process(IpProtocol::ICMP, A, &[0; 8]);
        l.process(IpProtocol::ICMP, A, &[0; 8]);
        assert_eq!(l.dropped(h), 1);
    }

    #[test]
    fn sends_are_dispatched_in_order() {
        let mut l = RawLayer::new();
        let h = l.socket(IpProtocol::ICMP, 1024);
        assert_eq!(l.send_to(h, b"x", None), Err(RawError::NotConnected));
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
}
