//! Interop: a smoltcp 0.14 interface as a [`SimNode`], talking to our [`Interface`]
//! across faulty simulated links. [`SmolNode`] is the adapter other interop tests can
//! copy: a queue-backed smoltcp `Device` polled on every input. [`SmolBulk`] is the
//! smoltcp twin of [`BulkApp`](super::tcp_app::BulkApp), for TCP transfers both ways.

use super::tcp_app::{check_states, BulkApp, BulkSpec, Pattern, TcpAppNode, Verifier};
use super::tcp_tests::{sim_tcp_config, tcp_host, SERVER_PORT};
use super::*;
use crate::iface::Config;
use crate::link::fault::GilbertElliott;
use crate::wire::{EthernetAddress, Ipv4Cidr};
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use smoltcp::iface::{Config as SmolConfig, Interface as SmolIface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{tcp, udp};
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
    /// A TCP application run after every poll.
    app: Option<SmolBulk>,
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
            app: None,
        }
    }

    fn poll(&mut self, now: Instant) {
        // Poll, let the application react, and poll again while it makes progress
        // (what a smoltcp event loop does).
        for _ in 0..16 {
            self.iface
                .poll(to_smol(now), &mut self.device, &mut self.sockets);
            let progress = self
                .app
                .as_mut()
                .is_some_and(|app| app.drive(&mut self.sockets, now));
            if !progress {
                break;
            }
        }
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

/// One end of a bulk transfer on a smoltcp TCP socket: the client connects, sends,
/// closes its sending half (smoltcp's `close` is a half-close), reads to EOF; the server
/// listens, reads to EOF while sending, then closes.
struct SmolBulk {
    handle: SocketHandle,
    client: bool,
    spec: BulkSpec,
    sent: u64,
    closed: bool,
    eof_at: Option<Instant>,
    verifier: Verifier,
    buf: Vec<u8>,
    states: Vec<tcp::State>,
    failure: Option<String>,
}

impl SmolBulk {
    fn socket(buffer: usize) -> tcp::Socket<'static> {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; buffer]),
            tcp::SocketBuffer::new(vec![0; buffer]),
        )
    }

    fn new(handle: SocketHandle, client: bool, spec: BulkSpec) -> SmolBulk {
        SmolBulk {
            handle,
            client,
            spec,
            sent: 0,
            closed: false,
            eof_at: None,
            verifier: Verifier::new(spec.recv_pattern, spec.recv_len),
            buf: vec![0; 16 * 1024],
            states: Vec::new(),
            failure: None,
        }
    }

    /// A server listening on `port`.
    fn server(node: &mut SmolNode, port: u16, spec: BulkSpec, buffer: usize) {
        let mut s = SmolBulk::socket(buffer);
        s.listen(port).expect("port free");
        let h = node.sockets.add(s);
        let mut app = SmolBulk::new(h, false, spec);
        app.states.push(tcp::State::Listen);
        node.app = Some(app);
    }

    /// A client connecting from `local_port` to `remote`.
    fn client(
        node: &mut SmolNode,
        remote: SocketAddrV4,
        local_port: u16,
        spec: BulkSpec,
        buffer: usize,
    ) {
        let mut s = SmolBulk::socket(buffer);
        let remote = (IpAddress::Ipv4(*remote.ip()), remote.port());
        s.connect(node.iface.context(), remote, local_port)
            .expect("connect");
        let h = node.sockets.add(s);
        let mut app = SmolBulk::new(h, true, spec);
        app.states.push(tcp::State::SynSent);
        node.app = Some(app);
    }

    fn is_done(&self) -> bool {
        self.failure.is_some() || (self.closed && self.states.last() == Some(&tcp::State::Closed))
    }

    /// Runs the application; returns whether it did anything that may need a poll.
    fn drive(&mut self, sockets: &mut SocketSet<'static>, now: Instant) -> bool {
        let s = sockets.get_mut::<tcp::Socket>(self.handle);
        if self.states.last() != Some(&s.state()) {
            self.states.push(s.state());
        }
        if self.failure.is_some() {
            return false;
        }
        let mut progress = false;
        while self.eof_at.is_none() {
            match s.recv_slice(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => {
                    progress = true;
                    self.verifier.feed(&self.buf[..n]);
                    if let Some(at) = self.verifier.first_mismatch() {
                        self.failure = Some(format!("smoltcp: wrong byte at {at}"));
                        return false;
                    }
                }
                Err(tcp::RecvError::Finished) => self.eof_at = Some(now),
                Err(tcp::RecvError::InvalidState) => {
                    // Not yet connected, or reset.
                    if s.state() == tcp::State::Closed && self.sent > 0 {
                        self.failure = Some("smoltcp: connection reset".into());
                    }
                    break;
                }
            }
        }
        while self.sent < self.spec.send_len && s.can_send() {
            let n = (self.spec.send_len - self.sent).min(self.buf.len() as u64) as usize;
            self.spec.send_pattern.fill(self.sent, &mut self.buf[..n]);
            match s.send_slice(&self.buf[..n]) {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    progress = true;
                    self.sent += k as u64;
                }
            }
        }
        let all_sent = self.sent == self.spec.send_len;
        let ready = if self.client {
            all_sent && s.may_send()
        } else {
            all_sent && self.eof_at.is_some()
        };
        if ready && !self.closed {
            self.closed = true;
            progress = true;
            s.close();
        }
        if self.eof_at.is_some() && !self.verifier.is_complete() && self.failure.is_none() {
            self.failure = Some(format!(
                "smoltcp: EOF after {} bytes",
                self.verifier.received()
            ));
        }
        if self.states.last() != Some(&s.state()) {
            self.states.push(s.state());
        }
        progress
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
            assert_eq!(from, SocketAddr::V4(server));
            if buf[..n] == next.to_be_bytes() {
                next += 1;
                sent_at = None;
            }
        }
        if next < total && sent_at.is_none_or(|t| now >= t + Duration::from_millis(20)) {
            let _ = iface(&mut net, us).udp().send_to(
                c,
                &next.to_be_bytes(),
                Some(SocketAddr::V4(server)),
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

// ---------------------------------------------------------------- TCP interop

const SMOL_MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];
const SMOL_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);

fn transfer_spec(seed: u64, up: u64, down: u64) -> BulkSpec {
    BulkSpec {
        send_len: up,
        send_pattern: Pattern { seed },
        recv_len: down,
        recv_pattern: Pattern { seed: !seed },
    }
}

/// A link with 5 ms one-way delay and, optionally, loss, reordering and duplication.
fn interop_link(lossy: bool) -> LinkConfig {
    let mut c = FaultConfig {
        delay: Duration::from_millis(5),
        jitter: Duration::from_micros(500),
        rate_bps: Some(100_000_000),
        ..FaultConfig::none()
    };
    if lossy {
        c.loss = 0.02;
        c.reorder = 0.02;
        c.reorder_depth = 2;
        c.duplicate = 0.01;
        c.corrupt = 0.005;
    }
    LinkConfig::symmetric(c)
}

/// Runs a transfer between our stack (node 0) and smoltcp (node 1); `ustack_client`
/// says who connects. Returns the net after both ends finished.
fn interop(seed: u64, ustack_client: bool, lossy: bool, up: u64, down: u64) -> SimNet {
    let _guard = SeedGuard::new(seed);
    let mut net = SimNet::new(seed);
    let spec = transfer_spec(seed, up, down);
    // Our host knows smoltcp's MAC; smoltcp resolves ours (and retries as needed).
    let ours = tcp_host(1, 9, seed, sim_tcp_config());
    let mut smol = SmolNode::new(SMOL_MAC, SMOL_IP, seed);
    let buffer = 256 * 1024;
    let app = if ustack_client {
        SmolBulk::server(&mut smol, SERVER_PORT, spec.mirrored(), buffer);
        BulkApp::client(SocketAddrV4::new(SMOL_IP, SERVER_PORT), spec)
    } else {
        let remote = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), SERVER_PORT);
        SmolBulk::client(&mut smol, remote, 49_152, spec.mirrored(), buffer);
        BulkApp::server(SERVER_PORT, spec)
    };
    let us = net.add_node(TcpAppNode::new(ours, app, Instant::ZERO));
    let them = net.add_node(smol);
    net.connect(us, them, interop_link(lossy)).unwrap();
    let finished = net.run_until(Instant::from_secs(3600), |net| {
        net.node::<TcpAppNode>(us).unwrap().app.is_done()
            && net
                .node::<SmolNode>(them)
                .unwrap()
                .app
                .as_ref()
                .unwrap()
                .is_done()
    });
    let app = &net.node::<TcpAppNode>(us).unwrap().app;
    let smol = net.node::<SmolNode>(them).unwrap().app.as_ref().unwrap();
    let ctx = format!(
        "seed {seed}, ustack {}, lossy {lossy}",
        if ustack_client { "client" } else { "server" }
    );
    assert_eq!(app.failure(), None, "{ctx}");
    assert_eq!(smol.failure, None, "{ctx}");
    assert!(finished, "{ctx}: not finished by {}", net.now());
    assert!(
        app.verifier().is_complete(),
        "{ctx}: ustack got {} B",
        app.verifier().received()
    );
    assert!(
        smol.verifier.is_complete(),
        "{ctx}: smoltcp got {} B",
        smol.verifier.received()
    );
    check_states(app.role(), &app.states()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    use smoltcp::socket::tcp::State as S;
    let want: &[S] = if ustack_client {
        &[
            S::Listen,
            S::SynReceived,
            S::Established,
            S::CloseWait,
            S::LastAck,
            S::Closed,
        ]
    } else {
        &[
            S::SynSent,
            S::Established,
            S::FinWait1,
            S::FinWait2,
            S::TimeWait,
            S::Closed,
        ]
    };
    // smoltcp's states are sampled after each poll, so a state it passes through
    // within one poll may be missing; what is there must be in order.
    let mut it = want.iter();
    for st in &smol.states {
        assert!(
            it.any(|w| w == st),
            "{ctx}: smoltcp states {:?}",
            smol.states
        );
    }
    assert_eq!(smol.states.last(), Some(&S::Closed), "{ctx}");
    println!("{ctx}: {up} B up, {down} B down, done at {}", net.now());
    net
}

#[test]
fn tcp_ustack_client_to_smoltcp_server() {
    let seed = seed_from_env(0x7c9_0001);
    interop(seed, true, false, 1 << 20, 1 << 20);
}

#[test]
fn tcp_smoltcp_client_to_ustack_server() {
    let seed = seed_from_env(0x7c9_0002);
    interop(seed, false, false, 1 << 20, 1 << 20);
}

#[test]
fn tcp_ustack_client_to_smoltcp_server_over_a_lossy_link() {
    let seed = seed_from_env(0x7c9_0003);
    let net = interop(seed, true, true, 256 * 1024, 256 * 1024);
    let (up, _) = net.link_counters(NodeId(0)).unwrap();
    assert!(up.dropped() > 0, "faults were injected");
}

#[test]
fn tcp_smoltcp_client_to_ustack_server_over_a_lossy_link() {
    let seed = seed_from_env(0x7c9_0004);
    let net = interop(seed, false, true, 256 * 1024, 256 * 1024);
    let (up, _) = net.link_counters(NodeId(0)).unwrap();
    assert!(up.dropped() > 0, "faults were injected");
}
