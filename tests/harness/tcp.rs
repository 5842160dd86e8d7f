//! TCP helpers for kernel tests: a bulk client that runs on the stack's driver thread,
//! the echo server as a fixture app, and event counting. The kernel-side peers are in
//! [`crate::peer`].
//!
//! Byte-exactness is checked with SHA-256 on both sides, each hashing on its own.

use crate::BoxedApp;
use crate::Fixture;
use core::net::SocketAddrV4;
use sha2::{Digest, Sha256};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use ustack::iface::Interface;
use ustack::socket::tcp::{RecvError, SendError, Shutdown, TcpError, TcpHandle, TcpInfo, TcpState};
use ustack::time::Instant;
use ustack_socket::echo::{EchoServer, EchoStats};

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A deterministic byte stream (xorshift64*), fast enough for tens of megabytes.
#[derive(Clone, Debug)]
pub struct Pattern(u64);

impl Pattern {
    /// A stream from `seed` (0 is replaced by a constant).
    pub fn new(seed: u64) -> Pattern {
        Pattern(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// Fills `buf` with the next bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let v = self.next_u64().to_le_bytes();
            let n = rest.len();
            rest.copy_from_slice(&v[..n]);
        }
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// What a [`BulkClient`] did.
#[derive(Clone, Debug)]
pub struct ClientResult {
    /// Payload bytes queued for sending (all of them were acknowledged before EOF
    /// only if the peer read them; compare with the peer's count).
    pub sent: u64,
    /// SHA-256 of what was sent.
    pub sent_sha256: String,
    /// Payload bytes received before EOF.
    pub received: u64,
    /// SHA-256 of what was received.
    pub received_sha256: String,
    /// Why the connection ended early, if it did.
    pub error: Option<String>,
    /// From connect to EOF (stack time).
    pub elapsed: Duration,
    /// TCP_INFO at EOF (or at the error).
    pub info: Option<TcpInfo>,
}

/// A TCP client on the stack: connects to `remote`, sends `to_send` bytes of
/// [`Pattern`] data while reading, shuts down writing, and once it has both read EOF
/// and queued everything, closes (the FIN follows the queued data), hashing both
/// directions. Runs as (part of) a fixture app; reports once through a channel.
pub struct BulkClient {
    remote: SocketAddrV4,
    to_send: u64,
    pattern: Pattern,
    handle: Option<TcpHandle>,
    sent: u64,
    received: u64,
    sent_hash: Sha256,
    received_hash: Sha256,
    shut: bool,
    /// The peer's FIN was read.
    eof: bool,
    started: Option<Instant>,
    buf: Vec<u8>,
    report: Option<mpsc::Sender<ClientResult>>,
}

impl BulkClient {
    /// A client and the receiver of its result.
    pub fn new(
        remote: SocketAddrV4,
        to_send: u64,
        seed: u64,
    ) -> (BulkClient, mpsc::Receiver<ClientResult>) {
        let (tx, rx) = mpsc::channel();
        let c = BulkClient {
            remote,
            to_send,
            pattern: Pattern::new(seed),
            handle: None,
            sent: 0,
            received: 0,
            sent_hash: Sha256::new(),
            received_hash: Sha256::new(),
            shut: false,
            eof: false,
            started: None,
            buf: vec![0; 64 * 1024],
            report: Some(tx),
        };
        (c, rx)
    }

    /// Wraps the client as a fixture app; it connects on its first call.
    pub fn into_app(mut self) -> BoxedApp {
        Box::new(move |round| self.poll(round.iface, round.now))
    }

    fn finish(&mut self, iface: &mut Interface, now: Instant, error: Option<String>) {
        let Some(report) = self.report.take() else {
            return;
        };
        let cx = iface.tcp_context(now);
        let tcp = iface.tcp();
        let info = self.handle.and_then(|h| tcp.info(h));
        if let Some(h) = self.handle {
            let _ = tcp.close(h, &cx);
        }
        let elapsed = self.started.map_or(Duration::ZERO, |t| (now - t).into());
        let _ = report.send(ClientResult {
            sent: self.sent,
            sent_sha256: hex(&self.sent_hash.clone().finalize()),
            received: self.received,
            received_sha256: hex(&self.received_hash.clone().finalize()),
            error,
            elapsed,
            info,
        });
    }

    /// The driver hook.
    pub fn poll(&mut self, iface: &mut Interface, now: Instant) {
        if self.report.is_none() {
            return;
        }
        let h = match self.handle {
            Some(h) => h,
            None => {
                let cx = iface.tcp_context(now);
                let tcp = iface.tcp();
                let h = tcp.socket();
                self.handle = Some(h);
                self.started = Some(now);
                if let Err(e) = tcp.connect(h, &cx, self.remote.into()) {
                    self.finish(iface, now, Some(format!("connect: {e}")));
                }
                return;
            }
        };
        let tcp = iface.tcp();
        match tcp.state(h) {
            Some(TcpState::SynSent | TcpState::SynReceived) => return,
            Some(TcpState::Closed) | None => {
                let e = tcp.take_error(h);
                self.finish(iface, now, Some(format!("closed: {e:?}")));
                return;
            }
            _ => {}
        }
        // Send what fits.
        while self.sent < self.to_send {
            let space = tcp.send_space(h);
            if space == 0 {
                break;
            }
            let n = (self.to_send - self.sent)
                .min(space as u64)
                .min(self.buf.len() as u64) as usize;
            self.pattern.fill(&mut self.buf[..n]);
            match tcp.send(h, &self.buf[..n]) {
                Ok(k) => {
                    assert_eq!(k, n, "send_space promised room");
                    self.sent_hash.update(&self.buf[..n]);
                    self.sent += n as u64;
                }
                Err(SendError::WouldBlock) => break,
                Err(e) => {
                    self.finish(iface, now, Some(format!("send: {e}")));
                    return;
                }
            }
        }
        if self.sent == self.to_send && !self.shut {
            self.shut = true;
            let _ = tcp.shutdown(h, Shutdown::Write);
        }
        // Read everything ready.
        while !self.eof {
            match tcp.recv(h, &mut self.buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.received_hash.update(&self.buf[..n]);
                    self.received += n as u64;
                }
                Err(RecvError::WouldBlock) => return,
                Err(e) => {
                    self.finish(iface, now, Some(format!("recv: {e}")));
                    return;
                }
            }
        }
        if self.shut {
            self.finish(iface, now, None);
        }
    }
}

/// The echo server as a fixture app on `port`, with its counters shared.
pub fn echo_app(
    port: u16,
) -> (
    impl FnOnce(&mut Interface) -> BoxedApp,
    Arc<Mutex<EchoStats>>,
) {
    let stats = Arc::new(Mutex::new(EchoStats::default()));
    let shared = stats.clone();
    let make = move |iface: &mut Interface| -> BoxedApp {
        let mut server = EchoServer::new(iface, port, 128).expect("echo server listens");
        Box::new(move |round| {
            server.poll(round);
            *shared.lock().unwrap_or_else(|e| e.into_inner()) = server.stats();
        })
    };
    (make, stats)
}

/// TCP events seen by [`count_events`].
#[derive(Clone, Copy, Debug, Default)]
pub struct EventCounts {
    /// `TcpEvent::Retransmit`.
    pub retransmits: u64,
    /// `TcpEvent::FastRetransmit`.
    pub fast_retransmits: u64,
    /// `TcpEvent::RtoFired`.
    pub rtos: u64,
}

/// Adds an app to the fixture that drains the TCP event queue and counts loss
/// recovery events (for reporting; the queue is otherwise left alone).
pub fn count_events(fx: &Fixture) -> Arc<Mutex<EventCounts>> {
    use ustack::socket::tcp::TcpEvent;
    let counts = Arc::new(Mutex::new(EventCounts::default()));
    let shared = counts.clone();
    fx.spawn_app(Box::new(move |round| {
        let mut c = shared.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(e) = round.iface.tcp().poll_event() {
            match e {
                TcpEvent::Retransmit { .. } => c.retransmits += 1,
                TcpEvent::FastRetransmit { .. } => c.fast_retransmits += 1,
                TcpEvent::RtoFired { .. } => c.rtos += 1,
                _ => {}
            }
        }
    }));
    counts
}

/// Waits for a client result, up to `timeout`.
///
/// # Panics
/// No result in time.
pub fn wait_result(rx: &mpsc::Receiver<ClientResult>, timeout: Duration) -> ClientResult {
    rx.recv_timeout(timeout)
        .unwrap_or_else(|e| panic!("no client result within {timeout:?}: {e}"))
}

/// What [`TcpError`] a refused or reset connection reports, for assertions.
pub fn is_refused(e: Option<TcpError>) -> bool {
    e == Some(TcpError::ConnectionRefused)
}
