//! The echo service (RFC 862) as a driver [`Hook`](crate::Hook): TCP and UDP on one
//! port, run inside the driver thread by `ustack echo` and by the kernel tests.
//!
//! TCP: every accepted connection echoes every byte. Flow control is end to end: a
//! connection reads at most as many bytes as its send buffer has room for, so a sender
//! faster than its own reader is throttled by our receive window, and nothing is ever
//! buffered here. After the peer's FIN, once everything read has been queued for
//! sending, the connection is closed (FIN after the echoed data).
//!
//! Work per wake-up is proportional to the sockets that changed: the server services
//! the handles the round names ([`Round::ready_tcp`]), never all connections.
//!
//! UDP: each datagram goes back to its sender; when the send queue is full it is
//! dropped (and counted), as a kernel UDP echo would.

use crate::hook::Round;
use std::collections::HashMap;
use ustack::iface::Interface;
use ustack::socket::tcp::{RecvError, SendError, TcpContext, TcpHandle, TcpLayer, TcpState};
use ustack::socket::udp::{self, UdpHandle};
use ustack::time::Instant;

/// What the echo server has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EchoStats {
    /// TCP connections accepted.
    pub accepted: u64,
    /// TCP connections closed after the peer's FIN, everything echoed.
    pub completed: u64,
    /// TCP connections that ended with an error (reset, timeout).
    pub failed: u64,
    /// Most TCP connections open at once.
    pub max_open: usize,
    /// TCP bytes echoed (queued for sending).
    pub tcp_bytes: u64,
    /// UDP datagrams echoed.
    pub udp_datagrams: u64,
    /// UDP payload bytes echoed.
    pub udp_bytes: u64,
    /// UDP datagrams dropped because the send queue was full.
    pub udp_dropped: u64,
    /// Times the server was woken (hook calls).
    pub wakeups: u64,
    /// Connection services done (one per ready handle).
    pub services: u64,
}

/// Errors setting up the server.
#[derive(Debug)]
pub struct EchoError(String);

impl std::fmt::Display for EchoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EchoError {}

/// Largest read per call; a connection loops until it would block.
const CHUNK: usize = 64 * 1024;

/// A TCP and UDP echo server on one port of an interface.
#[derive(Debug)]
pub struct EchoServer {
    port: u16,
    listener: TcpHandle,
    udp: UdpHandle,
    /// Open connections (the value is unused: all state lives in the TCP layer).
    conns: HashMap<TcpHandle, ()>,
    buf: Vec<u8>,
    stats: EchoStats,
    /// Polled before: connections that arrived between `new` and the first poll were
    /// announced to nobody, so the first poll accepts without waiting for a hint.
    polled: bool,
}

impl EchoServer {
    /// Listens on TCP `port` with `backlog` and binds UDP `port`.
    ///
    /// # Errors
    /// The port is taken.
    pub fn new(iface: &mut Interface, port: u16, backlog: usize) -> Result<EchoServer, EchoError> {
        // `[::]` without IPV6_V6ONLY: IPv4 and IPv6 clients alike (dual stack).
        let any = core::net::SocketAddr::from((core::net::Ipv6Addr::UNSPECIFIED, port));
        let tcp = iface.tcp();
        let listener = tcp.socket();
        tcp.listen(listener, any, backlog)
            .map_err(|e| EchoError(format!("TCP port {port}: {e}")))?;
        let ours = iface.local_addrs();
        let udp = iface.udp().socket_in(ustack::socket::IpFamily::V6);
        iface
            .udp()
            .bind(udp, any, &ours)
            .map_err(|e| EchoError(format!("UDP port {port}: {e}")))?;
        Ok(EchoServer {
            port,
            listener,
            udp,
            conns: HashMap::new(),
            buf: vec![0; CHUNK.max(ustack::socket::udp::UDP_MAX_PAYLOAD)],
            stats: EchoStats::default(),
            polled: false,
        })
    }

    /// The port served.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Counters so far.
    pub fn stats(&self) -> EchoStats {
        self.stats
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// The driver hook: accepts, echoes and closes whatever is ready.
    pub fn poll(&mut self, round: &mut Round<'_>) {
        let ready = round.ready_tcp();
        self.poll_ready(round.iface, round.now, ready);
    }

    /// Accepts, echoes and closes whatever `ready` names (the TCP handles the engine
    /// reported since the last call).
    pub fn poll_ready(&mut self, iface: &mut Interface, now: Instant, ready: &[TcpHandle]) {
        self.stats.wakeups += 1;
        let cx = iface.tcp_context(now);
        if !self.polled {
            self.polled = true;
            self.accept_all(iface.tcp(), &cx);
        }
        for &h in ready {
            if h == self.listener {
                self.accept_all(iface.tcp(), &cx);
            } else if self.conns.contains_key(&h) {
                self.service(iface.tcp(), &cx, h);
            }
        }
        self.echo_udp(iface);
    }

    fn accept_all(&mut self, tcp: &mut TcpLayer, cx: &TcpContext) {
        while let Ok((h, _peer)) = tcp.accept(self.listener) {
            self.stats.accepted += 1;
            self.conns.insert(h, ());
            self.stats.max_open = self.stats.max_open.max(self.conns.len());
            // Whatever arrived before accept is not announced by poll_ready.
            self.service(tcp, cx, h);
        }
    }

    /// Echoes what can be echoed now; closes the connection at EOF or on error.
    fn service(&mut self, tcp: &mut TcpLayer, cx: &TcpContext, h: TcpHandle) {
        self.stats.services += 1;
        loop {
            // A full send buffer is noted, so the buffer autotunes as it would for a
            // writer: an echo held to its initial buffer cannot keep sending new data
            // while it recovers a loss, and falls back to RTOs.
            let space = tcp.send_space_or_note_full(h);
            if space == 0 {
                // Full send buffer: wait for ACKs (they make the socket ready again).
                // Any other reason to be unable to send ends the connection.
                if !matches!(
                    tcp.state(h),
                    Some(TcpState::Established | TcpState::CloseWait)
                ) {
                    self.finish(tcp, cx, h, true);
                }
                return;
            }
            let want = space.min(self.buf.len());
            match tcp.recv(h, &mut self.buf[..want]) {
                Ok(0) => {
                    // EOF, everything read was queued: close sends FIN after it.
                    self.finish(tcp, cx, h, false);
                    return;
                }
                Ok(n) => match tcp.send(h, &self.buf[..n]) {
                    Ok(sent) => {
                        // send_space promised room for all of it.
                        debug_assert_eq!(sent, n);
                        self.stats.tcp_bytes += sent as u64;
                        if sent < n {
                            self.finish(tcp, cx, h, true);
                            return;
                        }
                    }
                    Err(SendError::WouldBlock) => unreachable!("send_space > 0"),
                    Err(_) => {
                        self.finish(tcp, cx, h, true);
                        return;
                    }
                },
                Err(RecvError::WouldBlock) => return,
                Err(_) => {
                    self.finish(tcp, cx, h, true);
                    return;
                }
            }
        }
    }

    fn finish(&mut self, tcp: &mut TcpLayer, cx: &TcpContext, h: TcpHandle, failed: bool) {
        if failed {
            self.stats.failed += 1;
            let _ = tcp.abort(h);
        } else {
            self.stats.completed += 1;
            let _ = tcp.close(h, cx);
        }
        self.conns.remove(&h);
    }

    fn echo_udp(&mut self, iface: &mut Interface) {
        let udp = iface.udp();
        loop {
            match udp.recv_from(self.udp, &mut self.buf, false) {
                Ok((len, peer)) => {
                    let n = len.min(self.buf.len());
                    match udp.send_to(self.udp, &self.buf[..n], Some(peer)) {
                        Ok(_) => {
                            self.stats.udp_datagrams += 1;
                            self.stats.udp_bytes += n as u64;
                        }
                        Err(_) => self.stats.udp_dropped += 1,
                    }
                }
                // An ICMP error about an earlier reply: nothing to do.
                Err(udp::RecvError::Refused) => {}
                Err(_) => return,
            }
        }
    }
}
