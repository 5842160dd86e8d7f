//! A bulk-transfer application over the real [`Interface`]'s TCP layer, for simulations,
//! interop tests and benchmarks.
//!
//! A [`BulkApp`] plays one end of a transfer:
//! - the **client** connects, sends `send_len` bytes of a seeded [`Pattern`], shuts down
//!   writing (half-close: our FIN while still receiving), reads until end of stream and
//!   then closes;
//! - the **server** listens, accepts one connection, reads until end of stream while
//!   sending its own `send_len` bytes, then closes the connection and the listener.
//!
//! Both ends compare every received byte with the pattern they expect ([`Verifier`])
//! and keep the state changes of their connection, taken from
//! [`TcpLayer::poll_event`](crate::socket::tcp::TcpLayer::poll_event), so a test can
//! check the exact path through RFC 9293's state diagram. [`TcpAppNode`] runs an app
//! inside a [`SimNode`]: the app is driven after every frame and timer, so data read or
//! written goes out in the same simulated instant, as it would with an application
//! blocked in `recv`/`send`.
//!
//! Invariants: the app never panics on network behaviour; anything unexpected (a
//! connection error, a wrong byte, more bytes than announced) is recorded in
//! [`BulkApp::failure`] and the app stops.

use super::SimNode;
use crate::iface::Interface;
use crate::socket::tcp::{RecvError, SendError, Shutdown, TcpEvent, TcpHandle, TcpInfo, TcpState};
use crate::time::Instant;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A deterministic byte stream: byte `i` of stream `seed` (SplitMix64 over 8-byte blocks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// Selects the stream.
    pub seed: u64,
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Pattern {
    /// Writes bytes `offset..offset + buf.len()` of the stream into `buf`.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let mut pos = offset;
        let mut i = 0;
        while i < buf.len() {
            let block = splitmix64(self.seed ^ (pos / 8).wrapping_mul(0x2545_f491_4f6c_dd1d));
            let bytes = block.to_le_bytes();
            let start = (pos % 8) as usize;
            let n = (8 - start).min(buf.len() - i);
            buf[i..i + n].copy_from_slice(&bytes[start..start + n]);
            i += n;
            pos += n as u64;
        }
    }
}

/// Checks a received stream against its [`Pattern`], byte for byte.
#[derive(Clone, Debug)]
pub struct Verifier {
    pattern: Pattern,
    expected_len: u64,
    received: u64,
    first_mismatch: Option<u64>,
    scratch: Vec<u8>,
}

impl Verifier {
    /// Expects exactly `expected_len` bytes of `pattern`.
    pub fn new(pattern: Pattern, expected_len: u64) -> Verifier {
        Verifier {
            pattern,
            expected_len,
            received: 0,
            first_mismatch: None,
            scratch: Vec::new(),
        }
    }

    /// Checks the next bytes of the stream.
    pub fn feed(&mut self, data: &[u8]) {
        if self.first_mismatch.is_none() {
            self.scratch.resize(data.len(), 0);
            self.pattern.fill(self.received, &mut self.scratch);
            if let Some(i) = data.iter().zip(&self.scratch).position(|(a, b)| a != b) {
                self.first_mismatch = Some(self.received + i as u64);
            }
        }
        self.received += data.len() as u64;
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Offset of the first wrong byte, if any.
    pub fn first_mismatch(&self) -> Option<u64> {
        self.first_mismatch
    }

    /// True when exactly the expected bytes arrived, all correct.
    pub fn is_complete(&self) -> bool {
        self.first_mismatch.is_none() && self.received == self.expected_len
    }
}

/// Which end of the transfer an app plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Connects to `remote`, sends, half-closes, reads to EOF, closes.
    Client {
        /// The server's address.
        remote: SocketAddr,
    },
    /// Listens on `port`, accepts one connection, reads to EOF while sending, closes.
    Server {
        /// The port to listen on.
        port: u16,
        /// Listen on `[::]` (dual-stack) rather than `0.0.0.0`.
        any6: bool,
    },
}

/// What one end sends and expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BulkSpec {
    /// Bytes this end sends.
    pub send_len: u64,
    /// The stream it sends.
    pub send_pattern: Pattern,
    /// Bytes it expects to receive.
    pub recv_len: u64,
    /// The stream it expects.
    pub recv_pattern: Pattern,
}

impl BulkSpec {
    /// The other end's spec: what this end sends, it receives, and vice versa.
    pub fn mirrored(&self) -> BulkSpec {
        BulkSpec {
            send_len: self.recv_len,
            send_pattern: self.recv_pattern,
            recv_len: self.send_len,
            recv_pattern: self.send_pattern,
        }
    }
}

/// One state change of the app's connection, from the layer's event queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// When the app saw it (the instant of the frame or timer that caused it).
    pub at: Instant,
    /// Previous state.
    pub from: TcpState,
    /// New state.
    pub to: TcpState,
}

/// One end of a bulk transfer driven through [`Interface::tcp`].
#[derive(Debug)]
pub struct BulkApp {
    role: Role,
    spec: BulkSpec,
    started: bool,
    listener: Option<TcpHandle>,
    conn: Option<TcpHandle>,
    sent: u64,
    shut_wr: bool,
    closed: bool,
    eof: bool,
    verifier: Verifier,
    buf: Vec<u8>,
    /// Every state-change event of the layer, by handle (the connection's is picked
    /// out once it is known: an accepted connection changes state before `accept`).
    events: Vec<(TcpHandle, Transition)>,
    retransmits: u64,
    fast_retransmits: u64,
    rtos: u64,
    failure: Option<String>,
    finished_at: Option<Instant>,
    eof_at: Option<Instant>,
    info_at_close: Option<TcpInfo>,
}

/// Read and write chunk of the app (the size of a typical application buffer).
const APP_CHUNK: usize = 16 * 1024;

impl BulkApp {
    /// A client sending `spec.send_len` bytes to `remote` and expecting `spec.recv_len`.
    pub fn client(remote: impl Into<SocketAddr>, spec: BulkSpec) -> BulkApp {
        BulkApp::new(
            Role::Client {
                remote: remote.into(),
            },
            spec,
        )
    }

    /// A server on `port` sending `spec.send_len` bytes and expecting `spec.recv_len`.
    pub fn server(port: u16, spec: BulkSpec) -> BulkApp {
        BulkApp::new(Role::Server { port, any6: false }, spec)
    }

    /// A server listening on `[::]:port` (takes IPv6 and IPv4 clients).
    pub fn server6(port: u16, spec: BulkSpec) -> BulkApp {
        BulkApp::new(Role::Server { port, any6: true }, spec)
    }

    fn new(role: Role, spec: BulkSpec) -> BulkApp {
        BulkApp {
            role,
            spec,
            started: false,
            listener: None,
            conn: None,
            sent: 0,
            shut_wr: false,
            closed: false,
            eof: false,
            verifier: Verifier::new(spec.recv_pattern, spec.recv_len),
            buf: vec![0; APP_CHUNK],
            events: Vec::new(),
            retransmits: 0,
            fast_retransmits: 0,
            rtos: 0,
            failure: None,
            finished_at: None,
            eof_at: None,
            info_at_close: None,
        }
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The connection's handle once connected or accepted.
    pub fn conn(&self) -> Option<TcpHandle> {
        self.conn
    }

    /// Bytes handed to `send` so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The receive-side checker.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// What went wrong, if anything.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Retransmit events seen on this node's layer.
    pub fn retransmits(&self) -> u64 {
        self.retransmits
    }

    /// Fast-retransmit (recovery entry) events seen on this node's layer.
    pub fn fast_retransmits(&self) -> u64 {
        self.fast_retransmits
    }

    /// Retransmission-timeout events seen on this node's layer.
    pub fn rtos(&self) -> u64 {
        self.rtos
    }

    /// When the app read end of stream.
    pub fn eof_at(&self) -> Option<Instant> {
        self.eof_at
    }

    /// The connection's [`TcpInfo`] just before the app closed it.
    pub fn info_at_close(&self) -> Option<&TcpInfo> {
        self.info_at_close.as_ref()
    }

    /// When the app finished: closed, and every socket of the layer freed.
    pub fn finished_at(&self) -> Option<Instant> {
        self.finished_at
    }

    /// True once the app finished, or failed.
    pub fn is_done(&self) -> bool {
        self.finished_at.is_some() || self.failure.is_some()
    }

    /// The state changes of the app's connection, in order.
    pub fn transitions(&self) -> Vec<Transition> {
        match self.conn {
            Some(h) => self
                .events
                .iter()
                .filter(|(eh, _)| *eh == h)
                .map(|(_, t)| *t)
                .collect(),
            None => Vec::new(),
        }
    }

    /// The sequence of states the connection entered (the `to` of each transition).
    pub fn states(&self) -> Vec<TcpState> {
        self.transitions().iter().map(|t| t.to).collect()
    }

    fn fail(&mut self, why: String) {
        if self.failure.is_none() {
            self.failure = Some(why);
        }
    }

    /// Runs the application as far as it can go at `now`.
    pub fn drive(&mut self, iface: &mut Interface, now: Instant) {
        if self.is_done() {
            self.drain_events(iface, now);
            return;
        }
        if !self.started {
            self.started = true;
            self.start(iface, now);
        }
        if self.conn.is_none() {
            if let Some(l) = self.listener {
                if let Ok((h, _)) = iface.tcp().accept(l) {
                    self.conn = Some(h);
                }
            }
        }
        if let Some(h) = self.conn {
            self.pump(iface, now, h);
        }
        self.drain_events(iface, now);
        if self.closed && self.finished_at.is_none() && iface.tcp().socket_count() == 0 {
            self.finished_at = Some(now);
        }
    }

    fn start(&mut self, iface: &mut Interface, now: Instant) {
        let tcp_cx = iface.tcp_context(now);
        let tcp = iface.tcp();
        let h = tcp.socket();
        match self.role {
            Role::Client { remote } => {
                if let Err(e) = tcp.connect(h, &tcp_cx, remote) {
                    self.fail(format!("connect: {e}"));
                }
                self.conn = Some(h);
            }
            Role::Server { port, any6 } => {
                let any = if any6 {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                };
                if let Err(e) = tcp.listen(h, SocketAddr::new(any, port), 16) {
                    self.fail(format!("listen: {e}"));
                }
                self.listener = Some(h);
            }
        }
    }

    fn pump(&mut self, iface: &mut Interface, now: Instant, h: TcpHandle) {
        let cx = iface.tcp_context(now);
        let tcp = iface.tcp();
        // Read everything there is.
        while !self.eof && !self.closed {
            match tcp.recv(h, &mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    self.eof_at = Some(now);
                    if !self.verifier.is_complete() {
                        let v = &self.verifier;
                        self.fail(format!(
                            "EOF after {} of {} bytes (first mismatch {:?})",
                            v.received, v.expected_len, v.first_mismatch
                        ));
                        return;
                    }
                }
                Ok(n) => {
                    self.verifier.feed(&self.buf[..n]);
                    if let Some(at) = self.verifier.first_mismatch() {
                        self.fail(format!("wrong byte at offset {at}"));
                        return;
                    }
                    if self.verifier.received() > self.spec.recv_len {
                        self.fail(format!("more than {} bytes", self.spec.recv_len));
                        return;
                    }
                }
                Err(RecvError::WouldBlock) => break,
                Err(e) => {
                    self.fail(format!("recv: {e}"));
                    return;
                }
            }
        }
        // Write as much as the send buffer takes.
        while self.sent < self.spec.send_len && !self.closed {
            let n = (self.spec.send_len - self.sent).min(self.buf.len() as u64) as usize;
            self.spec.send_pattern.fill(self.sent, &mut self.buf[..n]);
            match tcp.send(h, &self.buf[..n]) {
                Ok(k) => self.sent += k as u64,
                Err(SendError::WouldBlock) => break,
                Err(e) => {
                    self.fail(format!("send: {e}"));
                    return;
                }
            }
        }
        let all_sent = self.sent == self.spec.send_len;
        let state = tcp.state(h);
        match self.role {
            Role::Client { .. } => {
                if all_sent
                    && !self.shut_wr
                    && matches!(state, Some(TcpState::Established | TcpState::CloseWait))
                {
                    self.shut_wr = true;
                    if let Err(e) = tcp.shutdown(h, Shutdown::Write) {
                        self.fail(format!("shutdown: {e}"));
                        return;
                    }
                }
                if self.shut_wr && self.eof && !self.closed {
                    self.closed = true;
                    self.info_at_close = tcp.info(h);
                    if let Err(e) = tcp.close(h, &cx) {
                        self.fail(format!("close: {e}"));
                    }
                }
            }
            Role::Server { .. } => {
                if all_sent && self.eof && !self.closed {
                    self.closed = true;
                    self.info_at_close = tcp.info(h);
                    if let Err(e) = tcp.close(h, &cx) {
                        self.fail(format!("close: {e}"));
                    }
                    if let Some(l) = self.listener.take() {
                        if let Err(e) = tcp.close(l, &cx) {
                            self.fail(format!("close listener: {e}"));
                        }
                    }
                }
            }
        }
    }

    fn drain_events(&mut self, iface: &mut Interface, now: Instant) {
        while let Some(e) = iface.tcp().poll_event() {
            match e {
                TcpEvent::StateChanged {
                    handle, from, to, ..
                } => self.events.push((handle, Transition { at: now, from, to })),
                TcpEvent::Retransmit { .. } => self.retransmits += 1,
                TcpEvent::FastRetransmit { .. } => self.fast_retransmits += 1,
                TcpEvent::RtoFired { .. } => self.rtos += 1,
                _ => {}
            }
        }
    }
}

/// An [`Interface`] with a [`BulkApp`] on top, as one simulation node.
pub struct TcpAppNode {
    /// The interface.
    pub iface: Interface,
    /// The application.
    pub app: BulkApp,
}

impl TcpAppNode {
    /// Starts `app` on `iface` at `now` (a server listens, a client sends its SYN).
    pub fn new(iface: Interface, app: BulkApp, now: Instant) -> TcpAppNode {
        let mut node = TcpAppNode { iface, app };
        node.app.drive(&mut node.iface, now);
        node
    }
}

impl SimNode for TcpAppNode {
    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        self.iface.handle_frame(now, frame);
        self.app.drive(&mut self.iface, now);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.iface.handle_timeout(now);
        self.app.drive(&mut self.iface, now);
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.iface.poll_transmit(now, buf)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.iface.poll_timeout()
    }
}

/// Checks a state sequence against RFC 9293's diagram for one end of a bulk transfer;
/// returns what is wrong with it.
///
/// The active closer (the client, which half-closes first) must go
/// SYN-SENT → ESTABLISHED → FIN-WAIT-1 → (FIN-WAIT-2 | CLOSING) → TIME-WAIT → CLOSED;
/// the passive one SYN-RECEIVED → ESTABLISHED → CLOSE-WAIT → LAST-ACK → CLOSED.
///
/// # Errors
/// A description of the first unexpected state.
pub fn check_states(role: Role, states: &[TcpState]) -> Result<(), String> {
    use TcpState::*;
    let allowed: &[&[TcpState]] = match role {
        Role::Client { .. } => &[
            &[SynSent, Established, FinWait1, FinWait2, TimeWait, Closed],
            &[SynSent, Established, FinWait1, Closing, TimeWait, Closed],
        ],
        Role::Server { .. } => &[&[SynReceived, Established, CloseWait, LastAck, Closed]],
    };
    if allowed.contains(&states) {
        Ok(())
    } else {
        Err(format!("{role:?}: unexpected state sequence {states:?}"))
    }
}
