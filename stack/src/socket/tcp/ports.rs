//! The port table: how many sockets hold each local port, and how many exclusively (an
//! explicit bind or a listener), plus RFC 6056 ephemeral port selection.
//!
//! Invariant: every socket whose `Meta::port_claim` is set is counted once under that
//! port, with the same exclusivity; an entry whose count drops to zero is removed.

use super::types::ConnKey;
use super::TcpLayer;
use crate::socket::common::socket_addr;
use core::hash::{BuildHasherDefault, Hasher};
use core::net::{IpAddr, SocketAddr};
use std::collections::HashMap;

/// A map keyed by our own port numbers (the port table, the listeners).
pub(super) type PortMap<V> = HashMap<u16, V, BuildHasherDefault<PortHasher>>;

/// An unkeyed multiply-and-fold hash for [`PortMap`], a few instructions where SipHash
/// costs about a hundred on every SYN, claim and release. Hash flooding (issue 12)
/// needs the attacker to choose the keys *inserted*; these maps only ever hold ports
/// this stack bound, listens on or picked, so a peer can at most look up a missing
/// port, which probes our own few entries. The 4-tuple map, whose keys peers choose,
/// keeps the standard library's randomly keyed SipHash.
#[derive(Default)]
pub(super) struct PortHasher(u64);

impl Hasher for PortHasher {
    fn finish(&self) -> u64 {
        let h = self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // Fold the high half down: the table indexes with the low bits.
        h ^ (h >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).rotate_left(5);
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.0 = (self.0 << 16) | u64::from(n);
    }
}

impl TcpLayer {
    /// Counts one more holder of `port`.
    pub(super) fn claim_port(&mut self, port: u16, exclusive: bool) {
        let e = self.ports.entry(port).or_default();
        e.all += 1;
        if exclusive {
            e.exclusive += 1;
        }
    }

    /// Counts one holder of `port` fewer (the inverse of `claim_port`).
    pub(super) fn release_port(&mut self, port: u16, exclusive: bool) {
        if let Some(e) = self.ports.get_mut(&port) {
            e.all = e.all.saturating_sub(1);
            if exclusive {
                e.exclusive = e.exclusive.saturating_sub(1);
            }
            if e.all == 0 {
                self.ports.remove(&port);
            }
        }
    }

    /// An ephemeral port for `local_ip`: free of exclusive holders and of a connection
    /// to `remote` when one is given, free of any holder otherwise.
    pub(super) fn pick_ephemeral(
        &mut self,
        local_ip: IpAddr,
        remote: Option<SocketAddr>,
    ) -> Option<u16> {
        let (lo, hi) = self.config.ephemeral_ports;
        let (lo, hi) = (lo.min(hi), lo.max(hi));
        let n = u32::from(hi - lo) + 1;
        // RFC 6056 §3.3.3 (Algorithm 3): offset = F(local, remote, key), plus a counter.
        let offset = match remote {
            Some(r) => self.port_key.tuple(socket_addr(local_ip, 0), r) as u32,
            None => match local_ip {
                IpAddr::V4(a) => self.port_key.hash(&[u64::from(a.to_bits())]) as u32,
                IpAddr::V6(a) => {
                    let b = a.to_bits();
                    self.port_key.hash(&[(b >> 64) as u64, b as u64]) as u32
                }
            },
        };
        for i in 0..n {
            let port = lo + ((offset.wrapping_add(self.port_counter).wrapping_add(i)) % n) as u16;
            let usage = self.ports.get(&port).copied().unwrap_or_default();
            let free = match remote {
                Some(r) => {
                    usage.exclusive == 0
                        && !self.conns.contains_key(&ConnKey {
                            local: socket_addr(local_ip, port),
                            remote: r,
                        })
                }
                None => usage.all == 0,
            };
            if free {
                self.port_counter = self.port_counter.wrapping_add(i + 1);
                return Some(port);
            }
        }
        None
    }
}
