//! The network interface: Ethernet, ARP, IPv4, ICMP and the transport demux.
//! (Skeleton: the body is being written; the public API below is the contract.)

use crate::link::Link;
use crate::socket::tcp::{TcpConfig, TcpContext, TcpLayer};
use crate::socket::udp::{UdpConfig, UdpLayer};
use crate::time::Instant;
use crate::wire::{EthernetAddress, Ipv4Cidr};
use core::net::Ipv4Addr;
use std::io;

/// Configuration of an [`Interface`].
#[derive(Clone, Debug)]
pub struct Config {
    /// Our MAC address.
    pub mac: EthernetAddress,
    /// Our address and subnet.
    pub ip: Ipv4Cidr,
    /// Default gateway for destinations outside the subnet.
    pub gateway: Option<Ipv4Addr>,
    /// IP MTU: the largest IP packet sent without fragmenting (default 1500).
    pub mtu: usize,
    /// Seed for every random choice (ISNs, ports, IP ids), so runs can be replayed.
    pub seed: u64,
    /// TCP tunables.
    pub tcp: TcpConfig,
    /// UDP tunables.
    pub udp: UdpConfig,
}

/// A network interface driven by frames and time.
pub struct Interface {
    config: Config,
    tcp: TcpLayer,
    udp: UdpLayer,
}

impl Interface {
    /// A new interface at time `now`.
    pub fn new(config: Config, _now: Instant) -> Interface {
        Interface {
            tcp: TcpLayer::new(config.tcp.clone(), config.seed),
            udp: UdpLayer::new(config.udp.clone(), config.seed),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Handles one received Ethernet frame.
    pub fn handle_frame(&mut self, _now: Instant, _frame: &[u8]) {}

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, _now: Instant) {}

    /// Writes the next frame to send into `buf` (at least MTU + 14 bytes) and returns its length.
    #[must_use]
    pub fn poll_transmit(&mut self, _now: Instant, _buf: &mut [u8]) -> Option<usize> {
        None
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Drives a link once: every ready frame in, due timers, every pending frame out.
    ///
    /// # Errors
    /// The link failed.
    pub fn poll_link<L: Link + ?Sized>(&mut self, _now: Instant, _link: &mut L) -> io::Result<()> {
        Ok(())
    }

    /// The TCP layer (sockets, events).
    pub fn tcp(&mut self) -> &mut TcpLayer {
        &mut self.tcp
    }

    /// What the TCP layer needs to know of the interface at `now`.
    pub fn tcp_context(&self, now: Instant) -> TcpContext {
        TcpContext {
            now,
            local_addr: self.config.ip.address(),
            mtu: self.config.mtu,
        }
    }

    /// The UDP layer.
    pub fn udp(&mut self) -> &mut UdpLayer {
        &mut self.udp
    }
}
