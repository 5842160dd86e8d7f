//! Interop: a smoltcp 0.14 interface as a [`SimNode`], talking to our [`Interface`]
//! across faulty simulated links. [`SmolNode`] is the adapter other interop tests can
//! copy: a queue-backed smoltcp `Device` polled on every input.

use super::*;
use crate::iface::Config;
use crate::link::fault::GilbertElliott;
use crate::wire::{EthernetAddress, Ipv4Cidr};
use core::net::{Ipv4Addr, SocketAddrV4};
use smoltcp::iface::{Config as SmolConfig, Interface as SmolIface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::udp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{EthernetAddress as SmolMac, HardwareAddress, IpAddress, IpCidr};
use std::collections::VecDeque;

fn to_smol(t: Instant) -> SmolInstant {
    SmolInstant::from_micros(t.total_micros())
}

/// Frames queued in each direction between smoltcp and the simulator.
#[derive(Default)]
struct QueueDevice {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
}

struct Rx(Vec<u8>);
struct Tx<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0; len];
        let r = f(&mut buf);
        self.0.push_back(buf);
        r
    }
}

impl Device for QueueDevice {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _t: SmolInstant) -> Option<(Rx, Tx<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((Rx(frame), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _t: SmolInstant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

/// A smoltcp interface and its sockets as a simulation node.
struct SmolNode {
    iface: SmolIface,
    device: QueueDevice,
    sockets: SocketSet<'static>,
    next: Option<Instant>,
}

impl SmolNode {
    fn new(mac: [u8; 6], addr: Ipv4Addr, seed: u64) -> SmolNode {
        let mut device = QueueDevice::default();
        let mut config = SmolConfig::new(HardwareAddress::Ethernet(SmolMac(mac)));
        config.random_seed = seed;
        let mut iface = SmolIface::new(config, &mut device, SmolInstant::ZERO);
        iface.update_ip_addrs(|addrs| {
            addrs
                .push(IpCidr::new(IpAddress::Ipv4(addr), 24))
                .expect("room for one address");
        });
        SmolNode {
            iface,
            device,
            sockets: SocketSet::new(Vec::new()),
            next: None,
        }
    }

    fn poll(&mut self, now: Instant) {
        self.iface
            .poll(to_smol(now), &mut self.device, &mut self.sockets);
        self.next = self
            .iface
            .poll_at(to_smol(now), &self.sockets)
            .map(|t| Instant::from_micros(t.total_micros()).max(now));
    }

    fn udp_echo_server(&mut self, port: u16) -> SocketHandle {
        let buf = || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0; 65536]);
        let mut s = udp::Socket::new(buf(), buf());
        s.bind(port).expect("port free");
        self.sockets.add(s)
    }

    /// Echoes every queued datagram back to its sender.
    fn echo(&mut self, h: SocketHandle, now: Instant) -> usize {
        let s = self.sockets.get_mut::<udp::Socket>(h);
        let mut n = 0;
        while let Ok((data, meta)) = s.recv() {
            let data = data.to_vec();
            if s.send_slice(&data, meta.endpoint).is_ok() {
                n += 1;
            }
        }
        self.poll(now);
        n
    }
}

impl SimNode for SmolNode {
    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        self.device.rx.push_back(frame.to_vec());
        self.poll(now);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.poll(now);
        // smoltcp's deadline is soft: never ask to be woken again at the same instant.
        if self.next.is_some_and(|t| t <= now) {
            self.next = None;
        }
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if self.device.tx.is_empty() {
            self.poll(now);
        }
        let frame = self.device.tx.pop_front()?;
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Some(n)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }
}

fn ustack_host(seed: u64) -> Interface {
    let mut c = Config::new(
        EthernetAddress([2, 0, 0, 0, 0, 1]),
        Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 1), 24),
    );
    c.seed = seed;
    Interface::new(c, Instant::ZERO)
}

#[test]
fn ustack_pings_smoltcp() {
    let mut net = SimNet::new(21);
    let us = net.add_node(ustack_host(21));
    let smol = net.add_node(SmolNode::new(
        [2, 0, 0, 0, 0, 9],
        Ipv4Addr::new(10, 0, 0, 9),
        21,
    ));
    let one_way = FaultConfig {
        delay: Duration::from_millis(3),
        ..FaultConfig::none()
    };
    net.connect(us, smol, LinkConfig::symmetric(one_way))
        .unwrap();
    for seq in 1..=3 {
        let now = net.now();
        net.node_mut::<Interface>(us)
            .unwrap()
            .send_echo_request(now, Ipv4Addr::new(10, 0, 0, 9), 0xbeef, seq, b"interop")
            .unwrap();
        let mut reply = None;
        assert!(net.run_until(now + Duration::from_secs(2), |net| {
            reply = net.node_mut::<Interface>(us).unwrap().poll_echo_reply();
            reply.is_some()
        }));
        let reply = reply.unwrap();
        assert_eq!(
            (reply.seq_no, reply.data.as_slice()),
            (seq, &b"interop"[..])
        );
        let expect = if seq == 1 { 12 } else { 6 }; // the first one waits for ARP
        assert_eq!(reply.at - now, Duration::from_millis(expect));
    }
}

#[test]
fn udp_request_response_with_smoltcp_over_a_lossy_link() {
    let seed = seed_from_env(0x5_0170);
    let _guard = SeedGuard::new(seed);
    let mut net = SimNet::new(seed);
    let us = net.add_node(ustack_host(seed));
    let mut node = SmolNode::new([2, 0, 0, 0, 0, 9], Ipv4Addr::new(10, 0, 0, 9), seed);
    let server_h = node.udp_echo_server(7);
    let smol = net.add_node(node);
    let faulty = FaultConfig {
        loss: 0.1,
        burst: Some(GilbertElliott::new(0.02, 0.5)),
        duplicate: 0.05,
        reorder: 0.1,
        corrupt: 0.03,
        delay: Duration::from_millis(2),
        jitter: Duration::from_millis(1),
        ..FaultConfig::none()
    };
    net.connect(us, smol, LinkConfig::symmetric(faulty))
        .unwrap();

    let server = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 7);
    fn iface(net: &mut SimNet, id: NodeId) -> &mut Interface {
        net.node_mut::<Interface>(id).unwrap()
    }
    let c = iface(&mut net, us).udp().socket();
    let (mut next, total) = (0u32, 100u32);
    let mut sent_at: Option<Instant> = None;
    let mut buf = [0u8; 256];
    while next < total {
        assert!(net.now() < Instant::from_secs(600), "stuck at {next}");
        let now = net.now();
        net.node_mut::<SmolNode>(smol).unwrap().echo(server_h, now);
        while let Ok((n, from)) = iface(&mut net, us).udp().recv_from(c, &mut buf, false) {
            assert_eq!(from, server);
            if buf[..n] == next.to_be_bytes() {
                next += 1;
                sent_at = None;
            }
        }
        if next < total && sent_at.is_none_or(|t| now >= t + Duration::from_millis(20)) {
            let _ = iface(&mut net, us).udp().send_to(
                c,
                &next.to_be_bytes(),
                Some(server),
                Ipv4Addr::new(10, 0, 0, 1),
            );
            sent_at = Some(now);
        }
        net.run_for(Duration::from_millis(1));
    }
    let (up, down) = (
        net.link_counters(us).unwrap().0,
        net.link_counters(smol).unwrap().0,
    );
    assert!(up.dropped() + down.dropped() > 0, "faults were injected");
}
