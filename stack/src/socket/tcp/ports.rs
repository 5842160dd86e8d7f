//! The port table: how many sockets hold each local port, and how many exclusively (an
//! explicit bind or a listener), per half of the port space (IPv4, IPv6: a dual-stack
//! `[::]` holds both), plus RFC 6056 ephemeral port selection.
//!
//! Invariant: every socket whose `Meta::port_claim` is set is counted once under that
//! port in each of its halves, with the same exclusivity; an entry whose counts all
//! drop to zero is removed.

use super::types::ConnKey;
use super::TcpLayer;
use crate::socket::common::{each_half, socket_addr};
use core::hash::{BuildHasherDefault, Hasher};
use core::net::{IpAddr, SocketAddr};
use std::collections::HashMap;

/// A map keyed by our own port numbers (the port table; the listeners, by port and
/// address-family half).
pub(super) type PortMap<K, V> = HashMap<K, V, BuildHasherDefault<PortHasher>>;

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

    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 << 32) | u64::from(n);
    }
}

impl TcpLayer {
    /// Counts one more holder of `port` in `halves`.
    pub(super) fn claim_port(&mut self, port: u16, exclusive: bool, halves: u8) {
        let e = self.ports.entry(port).or_default();
        for h in each_half(halves) {
            let i = usize::from(h >> 1);
            e.all[i] += 1;
            if exclusive {
                e.exclusive[i] += 1;
            }
        }
    }

    /// Counts one holder of `port` fewer (the inverse of `claim_port`).
    pub(super) fn release_port(&mut self, port: u16, exclusive: bool, halves: u8) {
        if let Some(e) = self.ports.get_mut(&port) {
            for h in each_half(halves) {
                let i = usize::from(h >> 1);
                e.all[i] = e.all[i].saturating_sub(1);
                if exclusive {
                    e.exclusive[i] = e.exclusive[i].saturating_sub(1);
                }
            }
            if e.is_free() {
                self.ports.remove(&port);
            }
        }
    }

    /// An ephemeral port for `local_ip`: free of exclusive holders in `halves` and of a
    /// connection to `remote` when one is given, free of any holder otherwise.
    pub(super) fn pick_ephemeral(
        &mut self,
        local_ip: IpAddr,
        remote: Option<SocketAddr>,
        halves: u8,
    ) -> Option<u16> {
        let (lo, hi) = self.config.ephemeral_ports;
        let (lo, hi) = (lo.min(hi), lo.max(hi));
        let n = u32::from(hi - lo) + 1;
        // RFC 6056 §3.3.3 (Algorithm 3): offset = F(local, remote, key), plus a counter.
        let offset = match remote {
            // F() of the last destination again: a client's connections to one server
            // all have the same offset, so it is hashed once, not per connect.
            Some(r) => match self.port_offset {
                Some((ip, to, offset)) if ip == local_ip && to == r => offset,
                _ => {
                    let offset = self.port_key.tuple(socket_addr(local_ip, 0), r) as u32;
                    self.port_offset = Some((local_ip, r, offset));
                    offset
                }
            },
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
                    !usage.exclusive_in(halves)
                        && !self.conns.contains_key(&ConnKey {
                            local: socket_addr(local_ip, port),
                            remote: r,
                        })
                }
                None => usage.is_free(),
            };
            if free {
                self.port_counter = self.port_counter.wrapping_add(i + 1);
                return Some(port);
            }
        }
        None
    }
}
