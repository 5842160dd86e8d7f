//! Which watched sockets a round of the driver may have touched.
//!
//! After each round the driver must wake the threads and epolls whose sockets became
//! ready. Re-checking every watched socket costs O(watched) per round; instead the
//! driver's link wrapper ([`Sniffer`]) notes a *hint* per frame moved (UDP port, TCP
//! 4-tuple, raw), and the [`Index`] maps hints to the watched descriptions they may
//! concern. Anything a hint cannot describe (fragments, ICMP, ARP requests, drops,
//! timers) falls back to re-checking everything watched, so a hint can only narrow the
//! work, never lose a wake-up.
//!
//! TCP state changes made by timers arrive as engine events ([`Hint::State`]).
//!
//! Invariant: every watched description is indexed under its current addresses;
//! `State::reindex` runs whenever a description becomes watched or a call may have
//! changed its addresses (bind, connect, listen, an implicit bind by send).

use crate::table::FileKey;
use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::{HashMap, HashSet};
use std::io;
use ustack::link::Link;
use ustack::socket::tcp::TcpHandle;
use ustack::time::Instant;

/// What a description is reachable by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum IndexKey {
    /// A UDP socket's local port.
    Udp(u16),
    /// A TCP connection: local port and remote address.
    TcpConn(u16, SocketAddrV4),
    /// A TCP listener's port.
    TcpListen(u16),
    /// A raw socket (few; all are re-checked whenever anything moved).
    Raw,
    /// A TCP socket, for the engine's state-change events (timer-driven changes).
    TcpHandle(TcpHandle),
}

/// Watched descriptions by address.
#[derive(Debug, Default)]
pub(crate) struct Index {
    by: HashMap<IndexKey, Vec<FileKey>>,
    raw: HashSet<FileKey>,
    keys: HashMap<FileKey, Vec<IndexKey>>,
}

impl Index {
    /// Forgets a description.
    pub(crate) fn remove(&mut self, key: FileKey) {
        self.raw.remove(&key);
        for k in self.keys.remove(&key).unwrap_or_default() {
            if let Some(v) = self.by.get_mut(&k) {
                v.retain(|&x| x != key);
                if v.is_empty() {
                    self.by.remove(&k);
                }
            }
        }
    }

    /// Indexes a description under `ks` (after [`remove`](Self::remove)).
    pub(crate) fn insert(&mut self, key: FileKey, ks: Vec<IndexKey>) {
        for &k in &ks {
            if k == IndexKey::Raw {
                self.raw.insert(key);
            } else {
                self.by.entry(k).or_default().push(key);
            }
        }
        self.keys.insert(key, ks);
    }

    /// Everything indexed.
    pub(crate) fn clear(&mut self) {
        *self = Index::default();
    }

    /// The descriptions the hints may concern (with duplicates).
    pub(crate) fn lookup(&self, hints: &[Hint], out: &mut Vec<FileKey>) {
        for h in hints {
            match *h {
                Hint::Udp(port) => {
                    out.extend(self.by.get(&IndexKey::Udp(port)).into_iter().flatten())
                }
                Hint::State(h) => {
                    out.extend(self.by.get(&IndexKey::TcpHandle(h)).into_iter().flatten())
                }
                Hint::Tcp(port, remote) => {
                    let conn = self.by.get(&IndexKey::TcpConn(port, remote));
                    out.extend(conn.into_iter().flatten());
                    // The segment may also complete a handshake on the listener's queue
                    // (even when an old socket with the same 4-tuple is still open).
                    let listener = self.by.get(&IndexKey::TcpListen(port));
                    out.extend(listener.into_iter().flatten());
                }
            }
        }
        if !hints.is_empty() {
            out.extend(&self.raw);
        }
    }
}

/// What one frame may have changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hint {
    /// A datagram arrived on or left from this local UDP port.
    Udp(u16),
    /// A segment arrived for this local port from this remote.
    Tcp(u16, SocketAddrV4),
    /// The engine reported a state change of this TCP socket.
    State(TcpHandle),
}

/// Wraps the driver's link and notes a [`Hint`] per frame, or that a full re-check is
/// needed.
pub(crate) struct Sniffer {
    pub inner: Box<dyn Link + Send>,
    pub hints: Vec<Hint>,
    pub full: bool,
}

const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];

impl Sniffer {
    fn note(&mut self, frame: &[u8], rx: bool) {
        if frame.len() < 14 {
            return;
        }
        let ethertype = [frame[12], frame[13]];
        if ethertype == ETHERTYPE_ARP {
            // An ARP request out means datagrams went to the pending queue (freeing
            // their socket's send queue without a frame of their own).
            if !rx {
                self.full = true;
            }
            return;
        }
        if ethertype != ETHERTYPE_IPV4 {
            return;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip.first().copied().unwrap_or(0) & 0x0f) * 4;
        if ihl < 20 || ip.len() < ihl + 4 {
            self.full = true;
            return;
        }
        let frag = u16::from_be_bytes([ip[6], ip[7]]);
        if frag & 0x3fff != 0 {
            self.full = true;
            return;
        }
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let sport = u16::from_be_bytes([ip[ihl], ip[ihl + 1]]);
        let dport = u16::from_be_bytes([ip[ihl + 2], ip[ihl + 3]]);
        match (ip[9], rx) {
            (17, true) => self.hints.push(Hint::Udp(dport)),
            (17, false) => self.hints.push(Hint::Udp(sport)),
            (6, true) => self
                .hints
                .push(Hint::Tcp(dport, SocketAddrV4::new(src, sport))),
            // Sending a TCP segment changes no readiness; room in the send buffer
            // comes from ACKs, which arrive.
            (6, false) => {}
            // ICMP (errors for UDP and TCP sockets, echo replies for raw ones) and
            // other protocols: re-check everything.
            _ => self.full = true,
        }
    }
}

impl Link for Sniffer {
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let r = self.inner.recv(now, buf)?;
        if let Some(n) = r {
            self.note(&buf[..n.min(buf.len())], true);
        }
        Ok(r)
    }

    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        self.note(frame, false);
        self.inner.send(now, frame)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
}
