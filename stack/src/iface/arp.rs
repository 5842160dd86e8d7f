//! The neighbour cache (RFC 826 with the RFC 1122 §2.3.2 rules): IPv4 → MAC entries
//! with expiry, resolution with retries, and a bounded queue of packets waiting for a
//! resolution to finish.
//!
//! Invariants: at most `max_entries` entries; at most `pending_per_neighbor` frames per
//! unresolved neighbour and `pending_total` overall. An entry in active use is refreshed
//! with a unicast request before it expires instead of being dropped (like Linux's
//! STALE → PROBE), so a busy peer never loses its entry mid-transfer.
//!
//! ARP spoofing of a resolved neighbour: an unsolicited claim that a known address moved
//! to another MAC does not replace the entry. Like Linux (which keeps a connected entry's
//! address unless the update overrides it), the old address stays in use and is
//! re-confirmed at once with unicast requests; if its owner answers, the claim is ignored,
//! and only if it stays silent does the entry go and the next resolution learn anew.
//! Each claim held back is counted ([`NeighborCache::changes_held`]) and logged.
//!
//! The same cache serves IPv6 Neighbor Discovery (RFC 4861 §7.3), keyed by
//! `Ipv6Addr`. With [`ArpConfig::delay_first_probe`] set (as the NDP cache has it),
//! the RFC 4861 states are kept in full: an expired entry goes STALE (still used)
//! instead of being dropped, its first use then starts DELAY, and only when DELAY ends
//! without a confirmation does PROBE send unicast solicitations (§7.3.3).

use crate::time::{Duration, Instant};
use crate::wire::EthernetAddress;
use core::hash::Hash;
use core::net::{Ipv4Addr, Ipv6Addr};
use std::collections::{HashMap, VecDeque};

/// A protocol address the cache can hold (IPv4 for ARP, IPv6 for NDP).
pub trait NeighborAddr: Copy + Eq + Hash + core::fmt::Debug + core::fmt::Display {
    /// True for an address no neighbour can own (unspecified, broadcast, multicast).
    fn is_unusable(&self) -> bool;
}

impl NeighborAddr for Ipv4Addr {
    fn is_unusable(&self) -> bool {
        self.is_unspecified() || self.is_broadcast() || self.is_multicast()
    }
}

impl NeighborAddr for Ipv6Addr {
    fn is_unusable(&self) -> bool {
        self.is_unspecified() || self.is_multicast()
    }
}

/// The state of an entry, named as RFC 4861 §7.3.2 names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighborState {
    /// Resolution in progress; frames queued.
    Incomplete,
    /// Confirmed recently.
    Reachable,
    /// Not confirmed recently; used as is until traffic goes to it (NDP only).
    Stale,
    /// Used while stale: waiting for upper-layer confirmation before probing (NDP only).
    Delay,
    /// Being re-confirmed with unicast requests.
    Probe,
    /// Configured by hand.
    Permanent,
}

/// ARP tunables.
#[derive(Clone, Debug)]
pub struct ArpConfig {
    /// How long a confirmed entry is trusted (Linux base_reachable_time is 30 s; we keep 60 s).
    pub reachable_time: Duration,
    /// Wait between requests for an unresolved (or re-probed) neighbour.
    pub retry_interval: Duration,
    /// Requests sent before giving up on a neighbour (Linux mcast_solicit = 3).
    pub max_retries: u32,
    /// Frames queued per unresolved neighbour. Linux's `unres_qlen` (101): enough for
    /// the 45 fragments of a maximal UDP datagram at MTU 1500, which would otherwise
    /// reach the peer incomplete.
    pub pending_per_neighbor: usize,
    /// Frames queued over all unresolved neighbours.
    pub pending_total: usize,
    /// Most entries in the cache.
    pub max_entries: usize,
    /// Send a gratuitous ARP announcing our address when the interface starts.
    pub gratuitous_at_start: bool,
    /// When set, RFC 4861's STALE and DELAY states are used with this DELAY time
    /// (DELAY_FIRST_PROBE_TIME, 5 s in RFC 4861 §10); when not, an expired entry in use
    /// is probed at once and an idle one dropped (ARP).
    pub delay_first_probe: Option<Duration>,
}

impl Default for ArpConfig {
    fn default() -> Self {
        ArpConfig {
            reachable_time: Duration::from_secs(60),
            retry_interval: Duration::from_secs(1),
            max_retries: 3,
            pending_per_neighbor: 101,
            pending_total: 256,
            max_entries: 1024,
            gratuitous_at_start: true,
            delay_first_probe: None,
        }
    }
}

impl ArpConfig {
    /// The Neighbor Discovery defaults (RFC 4861 §10): REACHABLE_TIME 30 s,
    /// RETRANS_TIMER 1 s, MAX_MULTICAST_SOLICIT 3, DELAY_FIRST_PROBE_TIME 5 s.
    pub fn ndp() -> ArpConfig {
        ArpConfig {
            reachable_time: Duration::from_secs(30),
            gratuitous_at_start: false,
            delay_first_probe: Some(Duration::from_secs(5)),
            ..ArpConfig::default()
        }
    }
}

#[derive(Debug)]
enum State {
    /// Configured by hand; never expires.
    Static(EthernetAddress),
    /// Confirmed at some point; trusted until `expires_at`.
    Reachable {
        mac: EthernetAddress,
        expires_at: Instant,
        used_since_confirmed: bool,
    },
    /// Expired (NDP): still used; the next use starts DELAY.
    Stale { mac: EthernetAddress },
    /// Used while stale (NDP): probing starts at `until` unless confirmed first.
    Delay {
        mac: EthernetAddress,
        until: Instant,
    },
    /// Expired while in use: still used, being re-confirmed by unicast requests.
    Probe {
        mac: EthernetAddress,
        retries_left: u32,
        next_at: Instant,
    },
    /// No address yet; broadcast requests outstanding, frames queued.
    Incomplete {
        retries_left: u32,
        next_at: Instant,
        pending: VecDeque<Vec<u8>>,
    },
}

/// Something the interface must do on behalf of the cache.
#[derive(Debug, PartialEq, Eq)]
pub enum ArpAction<A = Ipv4Addr> {
    /// Send an ARP request (NDP: a neighbour solicitation) for `ip`, to `unicast` if
    /// given, else broadcast (NDP: to the solicited-node group).
    Request {
        /// Address to resolve.
        ip: A,
        /// Known MAC to re-confirm, or `None` to broadcast.
        unicast: Option<EthernetAddress>,
    },
    /// Resolution of `ip` failed; these queued frames are dropped.
    Failed {
        /// The neighbour that did not answer.
        ip: A,
        /// Frames that were waiting for it.
        frames: Vec<Vec<u8>>,
    },
}

/// What [`NeighborCache::queue`] did with a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum QueueOutcome {
    /// Queued; a request is already outstanding.
    Queued,
    /// Queued; this is a new resolution, send a broadcast request now.
    QueuedSendRequest,
    /// Not queued: a bound was reached. The frame is handed back.
    Full(Vec<u8>),
}

/// The neighbour cache.
#[derive(Debug)]
pub struct NeighborCache<A = Ipv4Addr> {
    config: ArpConfig,
    entries: HashMap<A, State>,
    pending_total: usize,
    /// A lower bound of every entry's deadline (may be early, never late).
    next_deadline: Option<Instant>,
    /// Claims of a new MAC for a resolved neighbour held back until it is re-confirmed.
    changes_held: u64,
    /// The latest `now` any call was given: `lookup` (which takes no time) starts DELAY
    /// from it.
    now_hint: Instant,
}

impl<A: NeighborAddr> NeighborCache<A> {
    /// An empty cache.
    pub fn new(config: ArpConfig) -> NeighborCache<A> {
        NeighborCache {
            config,
            entries: HashMap::new(),
            pending_total: 0,
            next_deadline: None,
            changes_held: 0,
            now_hint: Instant::ZERO,
        }
    }

    fn note_deadline(&mut self, at: Instant) {
        self.next_deadline = Some(self.next_deadline.map_or(at, |d| d.min(at)));
    }

    /// Adds a permanent entry.
    pub fn add_static(&mut self, ip: A, mac: EthernetAddress) {
        if let Some(State::Incomplete { pending, .. }) = self.entries.insert(ip, State::Static(mac))
        {
            self.pending_total -= pending.len();
        }
    }

    /// The MAC for `ip`, if known. Marks the entry as in use so it is refreshed rather
    /// than dropped when it expires.
    pub fn lookup(&mut self, ip: A) -> Option<EthernetAddress> {
        let delay = self.config.delay_first_probe;
        let state = self.entries.get_mut(&ip)?;
        if let (State::Stale { mac }, Some(d)) = (&*state, delay) {
            // RFC 4861 §7.3.3: "the first time a node sends a packet to a neighbor
            // whose entry is STALE, the sender changes the state to DELAY".
            let (mac, until) = (*mac, self.now_hint + d);
            *state = State::Delay { mac, until };
            self.note_deadline(until);
            return Some(mac);
        }
        match self.entries.get_mut(&ip)? {
            State::Static(mac)
            | State::Probe { mac, .. }
            | State::Stale { mac }
            | State::Delay { mac, .. } => Some(*mac),
            State::Reachable {
                mac,
                used_since_confirmed,
                ..
            } => {
                *used_since_confirmed = true;
                Some(*mac)
            }
            State::Incomplete { .. } => None,
        }
    }

    /// The MAC for `ip` without marking use (for inspection).
    pub fn get(&self, ip: A) -> Option<EthernetAddress> {
        match self.entries.get(&ip)? {
            State::Static(mac)
            | State::Probe { mac, .. }
            | State::Reachable { mac, .. }
            | State::Stale { mac }
            | State::Delay { mac, .. } => Some(*mac),
            State::Incomplete { .. } => None,
        }
    }

    /// The RFC 4861 state of the entry for `ip`, if any.
    pub fn state(&self, ip: A) -> Option<NeighborState> {
        Some(match self.entries.get(&ip)? {
            State::Static(_) => NeighborState::Permanent,
            State::Reachable { .. } => NeighborState::Reachable,
            State::Stale { .. } => NeighborState::Stale,
            State::Delay { .. } => NeighborState::Delay,
            State::Probe { .. } => NeighborState::Probe,
            State::Incomplete { .. } => NeighborState::Incomplete,
        })
    }

    /// Records that `ip` is at `mac` without confirming reachability: what a neighbour
    /// solicitation's source link-layer address option or a router advertisement says
    /// (RFC 4861 §7.2.3, §6.3.4). A new entry, a changed address or an INCOMPLETE
    /// entry becomes STALE (frames waiting for it are returned); an entry already at
    /// `mac` keeps its state. Without `delay_first_probe` this is [`learn`](Self::learn).
    pub fn learn_unconfirmed(
        &mut self,
        now: Instant,
        ip: A,
        mac: EthernetAddress,
    ) -> VecDeque<Vec<u8>> {
        if self.config.delay_first_probe.is_none() {
            return self.learn(now, ip, mac, true);
        }
        self.now_hint = now;
        if !mac.is_unicast() || ip.is_unusable() {
            return VecDeque::new();
        }
        let room = self.entries.len() < self.config.max_entries;
        let released = match self.entries.get_mut(&ip) {
            Some(State::Static(_)) => return VecDeque::new(),
            Some(
                State::Reachable { mac: old, .. }
                | State::Stale { mac: old }
                | State::Delay { mac: old, .. }
                | State::Probe { mac: old, .. },
            ) if *old == mac => return VecDeque::new(),
            Some(state) => match core::mem::replace(state, State::Stale { mac }) {
                State::Incomplete { pending, .. } => pending,
                _ => VecDeque::new(),
            },
            None if room => {
                self.entries.insert(ip, State::Stale { mac });
                VecDeque::new()
            }
            None => return VecDeque::new(),
        };
        self.pending_total -= released.len();
        released
    }

    /// Number of entries (resolved or not).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every resolved entry as `(ip, mac, permanent)`.
    pub fn entries(&self) -> impl Iterator<Item = (A, EthernetAddress, bool)> + '_ {
        self.entries.iter().filter_map(|(ip, s)| match s {
            State::Static(mac) => Some((*ip, *mac, true)),
            State::Reachable { mac, .. }
            | State::Probe { mac, .. }
            | State::Stale { mac }
            | State::Delay { mac, .. } => Some((*ip, *mac, false)),
            State::Incomplete { .. } => None,
        })
    }

    /// True when an entry (of any state) exists for `ip`.
    pub fn contains(&self, ip: A) -> bool {
        self.entries.contains_key(&ip)
    }

    /// Tells the cache the time, for a [`lookup`](Self::lookup) that starts DELAY.
    pub fn set_now(&mut self, now: Instant) {
        self.now_hint = now;
    }

    /// Claims of a new MAC for a resolved neighbour held back so far (module docs).
    pub fn changes_held(&self) -> u64 {
        self.changes_held
    }

    /// Records that `ip` is at `mac` (RFC 826 "merge"). Creates the entry only when
    /// `create` (the packet was addressed to us, or answers our request). A resolved
    /// entry claimed by another MAC keeps its own until re-confirmed (module docs).
    /// Returns frames that were waiting for this neighbour, with their destination MAC
    /// still unset.
    pub fn learn(
        &mut self,
        now: Instant,
        ip: A,
        mac: EthernetAddress,
        create: bool,
    ) -> VecDeque<Vec<u8>> {
        self.now_hint = now;
        if !mac.is_unicast() || ip.is_unusable() {
            return VecDeque::new();
        }
        let expires_at = now + self.config.reachable_time;
        let confirmed = State::Reachable {
            mac,
            expires_at,
            used_since_confirmed: false,
        };
        let room = self.entries.len() < self.config.max_entries;
        let released = match self.entries.get_mut(&ip) {
            Some(State::Static(_)) => return VecDeque::new(),
            Some(State::Reachable { mac: old, .. }) if *old != mac => {
                // Keep the old address and ask its owner right away (module docs).
                let old = *old;
                log::warn!(target: "ustack::arp", "{ip} claimed by {mac} while at {old}: kept until re-confirmed");
                self.changes_held += 1;
                self.entries.insert(
                    ip,
                    State::Probe {
                        mac: old,
                        retries_left: self.config.max_retries,
                        next_at: now,
                    },
                );
                self.note_deadline(now);
                return VecDeque::new();
            }
            Some(State::Probe { mac: old, .. }) if *old != mac => {
                log::debug!(target: "ustack::arp", "{ip} claimed by {mac} while re-confirming {old}: ignored");
                self.changes_held += 1;
                return VecDeque::new();
            }
            Some(state) => match core::mem::replace(state, confirmed) {
                State::Incomplete { pending, .. } => pending,
                _ => VecDeque::new(),
            },
            None if create && room => {
                self.entries.insert(ip, confirmed);
                VecDeque::new()
            }
            None => return VecDeque::new(),
        };
        self.pending_total -= released.len();
        self.note_deadline(expires_at);
        released
    }

    /// Queues a frame for an unresolved `ip`, starting a resolution if none is running.
    pub fn queue(&mut self, now: Instant, ip: A, frame: Vec<u8>) -> QueueOutcome {
        self.now_hint = now;
        if self.pending_total >= self.config.pending_total {
            return QueueOutcome::Full(frame);
        }
        match self.entries.get_mut(&ip) {
            Some(State::Incomplete { pending, .. }) => {
                if pending.len() >= self.config.pending_per_neighbor {
                    return QueueOutcome::Full(frame);
                }
                pending.push_back(frame);
                self.pending_total += 1;
                QueueOutcome::Queued
            }
            Some(_) => QueueOutcome::Full(frame), // resolved: caller should not queue
            None => {
                if self.entries.len() >= self.config.max_entries {
                    return QueueOutcome::Full(frame);
                }
                let next_at = now + self.config.retry_interval;
                let mut pending = VecDeque::new();
                pending.push_back(frame);
                self.entries.insert(
                    ip,
                    State::Incomplete {
                        retries_left: self.config.max_retries.saturating_sub(1),
                        next_at,
                        pending,
                    },
                );
                self.pending_total += 1;
                self.note_deadline(next_at);
                QueueOutcome::QueuedSendRequest
            }
        }
    }

    /// True when a resolution for `ip` is outstanding.
    pub fn is_pending(&self, ip: A) -> bool {
        matches!(self.entries.get(&ip), Some(State::Incomplete { .. }))
    }

    /// The earliest instant [`handle_timeout`](Self::handle_timeout) has work.
    pub fn poll_at(&self) -> Option<Instant> {
        self.next_deadline
    }

    /// Retries, refreshes and expires entries due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, actions: &mut Vec<ArpAction<A>>) {
        self.now_hint = now;
        if self.next_deadline.is_none_or(|d| d > now) {
            return;
        }
        let ndp = self.config.delay_first_probe.is_some();
        let retry = self.config.retry_interval;
        let max_retries = self.config.max_retries;
        let mut next: Option<Instant> = None;
        let mut remove = Vec::new();
        for (&ip, state) in self.entries.iter_mut() {
            let deadline = match state {
                State::Static(_) => continue,
                State::Reachable {
                    mac,
                    expires_at,
                    used_since_confirmed,
                } => {
                    if *expires_at > now {
                        *expires_at
                    } else if ndp {
                        // RFC 4861 §7.3.3: REACHABLE → STALE after ReachableTime.
                        *state = State::Stale { mac: *mac };
                        continue;
                    } else if *used_since_confirmed {
                        let mac = *mac;
                        actions.push(ArpAction::Request {
                            ip,
                            unicast: Some(mac),
                        });
                        *state = State::Probe {
                            mac,
                            retries_left: max_retries.saturating_sub(1),
                            next_at: now + retry,
                        };
                        now + retry
                    } else {
                        remove.push(ip);
                        continue;
                    }
                }
                State::Stale { .. } => continue,
                State::Delay { mac, until } => {
                    if *until > now {
                        *until
                    } else {
                        // §7.3.3: DELAY → PROBE, first unicast solicitation now.
                        let mac = *mac;
                        actions.push(ArpAction::Request {
                            ip,
                            unicast: Some(mac),
                        });
                        *state = State::Probe {
                            mac,
                            retries_left: max_retries.saturating_sub(1),
                            next_at: now + retry,
                        };
                        now + retry
                    }
                }
                State::Probe {
                    mac,
                    retries_left,
                    next_at,
                } => {
                    if *next_at > now {
                        *next_at
                    } else if *retries_left > 0 {
                        *retries_left -= 1;
                        *next_at = now + retry;
                        actions.push(ArpAction::Request {
                            ip,
                            unicast: Some(*mac),
                        });
                        *next_at
                    } else {
                        remove.push(ip);
                        continue;
                    }
                }
                State::Incomplete {
                    retries_left,
                    next_at,
                    pending,
                } => {
                    if *next_at > now {
                        *next_at
                    } else if *retries_left > 0 {
                        *retries_left -= 1;
                        *next_at = now + retry;
                        actions.push(ArpAction::Request { ip, unicast: None });
                        *next_at
                    } else {
                        let frames: Vec<Vec<u8>> = pending.drain(..).collect();
                        self.pending_total -= frames.len();
                        actions.push(ArpAction::Failed { ip, frames });
                        remove.push(ip);
                        continue;
                    }
                }
            };
            next = Some(next.map_or(deadline, |n: Instant| n.min(deadline)));
        }
        for ip in remove {
            self.entries.remove(&ip);
        }
        self.next_deadline = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);

    fn cache() -> NeighborCache {
        NeighborCache::new(ArpConfig {
            pending_per_neighbor: 2,
            ..ArpConfig::default()
        })
    }

    #[test]
    fn unresolved_neighbour_queues_retries_then_fails() {
        let mut c = cache();
        let t0 = Instant::ZERO;
        assert_eq!(c.queue(t0, IP, vec![1]), QueueOutcome::QueuedSendRequest);
        assert_eq!(c.queue(t0, IP, vec![2]), QueueOutcome::Queued);
        assert_eq!(c.queue(t0, IP, vec![3]), QueueOutcome::Full(vec![3]));
        let mut actions = Vec::new();
        c.handle_timeout(t0 + Duration::from_millis(999), &mut actions);
        assert!(actions.is_empty());
        c.handle_timeout(Instant::from_secs(1), &mut actions);
        c.handle_timeout(Instant::from_secs(2), &mut actions);
        assert_eq!(
            actions,
            vec![
                ArpAction::Request {
                    ip: IP,
                    unicast: None
                },
                ArpAction::Request {
                    ip: IP,
                    unicast: None
                }
            ]
        );
        actions.clear();
        c.handle_timeout(Instant::from_secs(3), &mut actions);
        assert_eq!(
            actions,
            vec![ArpAction::Failed {
                ip: IP,
                frames: vec![vec![1], vec![2]]
            }]
        );
        assert!(c.is_empty());
        assert_eq!(c.poll_at(), None);
    }

    #[test]
    fn reply_releases_queued_frames() {
        let mut c = cache();
        c.queue(Instant::ZERO, IP, vec![7]);
        let released = c.learn(Instant::from_millis(5), IP, MAC, true);
        assert_eq!(released, VecDeque::from(vec![vec![7]]));
        assert_eq!(c.lookup(IP), Some(MAC));
        // The total bound was released too.
        for i in 0..2 {
            assert_ne!(
                c.queue(Instant::ZERO, Ipv4Addr::new(10, 0, 0, 9), vec![i]),
                QueueOutcome::Full(vec![i])
            );
        }
    }

    #[test]
    fn merge_does_not_create_unless_asked() {
        let mut c = cache();
        c.learn(Instant::ZERO, IP, MAC, false);
        assert_eq!(c.get(IP), None);
        c.learn(Instant::ZERO, IP, MAC, true);
        assert_eq!(c.get(IP), Some(MAC));
        let newer = EthernetAddress([2, 0, 0, 0, 0, 2]);
        c.learn(Instant::ZERO, IP, newer, false);
        assert_eq!(
            c.get(IP),
            Some(MAC),
            "a resolved entry is not moved by a claim"
        );
        assert_eq!(c.changes_held(), 1);
    }

    #[test]
    fn spoofed_claim_keeps_old_entry_until_probe_decides() {
        let mut c = cache();
        let spoof = EthernetAddress([2, 6, 6, 6, 6, 6]);
        c.learn(Instant::ZERO, IP, MAC, true);
        // Many spoofed replies: the old address stays, one probe starts at once.
        for _ in 0..100 {
            c.learn(Instant::from_millis(10), IP, spoof, true);
        }
        assert_eq!(c.lookup(IP), Some(MAC));
        assert_eq!(c.changes_held(), 100);
        assert_eq!(c.poll_at(), Some(Instant::from_millis(10)));
        let mut actions = Vec::new();
        c.handle_timeout(Instant::from_millis(10), &mut actions);
        assert_eq!(
            actions,
            vec![ArpAction::Request {
                ip: IP,
                unicast: Some(MAC)
            }]
        );
        // The owner answers: confirmed, the claim is forgotten.
        c.learn(Instant::from_millis(11), IP, MAC, true);
        assert_eq!(c.get(IP), Some(MAC));
        actions.clear();
        c.handle_timeout(Instant::from_secs(5), &mut actions);
        assert!(actions.is_empty(), "{actions:?}");

        // Another claim, and this time the owner stays silent: the entry goes after the
        // probes, and the next resolution learns whoever answers.
        c.learn(Instant::from_secs(6), IP, spoof, true);
        for s in 6..12 {
            c.handle_timeout(Instant::from_secs(s), &mut actions);
        }
        assert_eq!(c.get(IP), None);
        c.learn(Instant::from_secs(12), IP, spoof, true);
        assert_eq!(c.get(IP), Some(spoof));
    }

    #[test]
    fn idle_entry_expires_but_used_entry_is_reprobed() {
        let mut c = cache();
        let other = Ipv4Addr::new(10, 0, 0, 2);
        c.learn(Instant::ZERO, IP, MAC, true);
        c.learn(Instant::ZERO, other, MAC, true);
        assert_eq!(c.lookup(IP), Some(MAC));
        let mut actions = Vec::new();
        c.handle_timeout(Instant::from_secs(60), &mut actions);
        assert_eq!(
            actions,
            vec![ArpAction::Request {
                ip: IP,
                unicast: Some(MAC)
            }]
        );
        assert_eq!(c.get(other), None, "idle entry expired");
        assert_eq!(c.lookup(IP), Some(MAC), "probing entry still usable");
        c.learn(
            Instant::from_secs(60) + Duration::from_millis(1),
            IP,
            MAC,
            false,
        );
        actions.clear();
        c.handle_timeout(Instant::from_secs(64), &mut actions);
        assert!(actions.is_empty());
        assert_eq!(c.get(IP), Some(MAC));
    }

    #[test]
    fn static_entries_are_never_overwritten_or_expired() {
        let mut c = cache();
        c.add_static(IP, MAC);
        c.learn(Instant::ZERO, IP, EthernetAddress([2, 9, 9, 9, 9, 9]), true);
        let mut actions = Vec::new();
        c.handle_timeout(Instant::from_secs(10_000), &mut actions);
        assert_eq!(c.get(IP), Some(MAC));
    }
}
