//! Which watched sockets a round of the driver may have touched.
//!
//! After each round the driver must wake the threads and epolls whose sockets became
//! ready. Re-checking every watched socket costs O(watched) per round; instead:
//!
//! - TCP: the engine names every user-owned socket whose readiness may have changed
//!   (segments, timers, errors, acceptable connections) through
//!   `TcpLayer::poll_ready`; the driver drains it each round.
//! - UDP and raw: the driver's link wrapper ([`Sniffer`]) notes the local UDP port of
//!   each datagram in or out; raw sockets (few) are re-checked whenever anything moved.
//!   Arriving ICMP errors (which may concern any socket) re-check everything; other
//!   ICMP (echo) only concerns raw sockets.
//!
//! The [`Index`] maps these hints to the watched descriptions they concern. Anything a
//! hint cannot describe (fragments, ICMP errors, ARP requests, counted drops, output
//! queued by `close`) falls back to re-checking everything watched, so hints only
//! narrow the work and never lose a wake-up.
//!
//! Invariant: every watched description is indexed under its current key;
//! `State::reindex` runs whenever a description becomes watched or a call may have
//! changed its address (bind, connect, listen, an implicit bind by send).

use crate::table::FileKey;

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
    /// A raw socket (few; all are re-checked whenever anything moved).
    Raw,
    /// A TCP socket, as `TcpLayer::poll_ready` names it.
    Tcp(TcpHandle),
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
                Hint::Tcp(h) => out.extend(self.by.get(&IndexKey::Tcp(h)).into_iter().flatten()),
                Hint::Raw => {}
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
    /// The engine says this TCP socket's readiness may have changed.
    Tcp(TcpHandle),
    /// Only raw sockets may have changed.
    Raw,
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
        let sport = u16::from_be_bytes([ip[ihl], ip[ihl + 1]]);
        let dport = u16::from_be_bytes([ip[ihl + 2], ip[ihl + 3]]);
        match (ip[9], rx) {
            (17, true) => self.hints.push(Hint::Udp(dport)),
            (17, false) => self.hints.push(Hint::Udp(sport)),
            // TCP: the engine's poll_ready names the sockets.
            (6, _) => {}
            // An arriving ICMP error may concern any UDP or TCP socket: re-check all.
            // RFC 792 types: 3 unreachable, 4 source quench, 5 redirect, 11 time
            // exceeded, 12 parameter problem.
            (1, true) if matches!(ip[ihl], 3 | 4 | 5 | 11 | 12) => self.full = true,
            // Other ICMP (echo) and other protocols, in or out, only concern raw
            // sockets (their copies, their send queues).
            _ => self.hints.push(Hint::Raw),
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

    // A recorder below (pcapng) annotates frames with these; pass them through.
    fn rx_dropped(&mut self, reason: &dyn std::fmt::Display) {
        self.inner.rx_dropped(reason)
    }

    fn poll_fault_report(&mut self, frame: &mut Vec<u8>) -> Option<ustack::link::FaultEvent> {
        self.inner.poll_fault_report(frame)
    }
}
