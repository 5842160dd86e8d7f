//! TCP (RFC 9293) with window scaling and timestamps (RFC 7323), SACK (RFC 2018,
//! RFC 6675), NewReno and CUBIC congestion control (RFC 5681, 6582, 9438), RFC 6298
//! retransmission timers and RFC 5961 blind-attack mitigations.
//!
//! The [`TcpLayer`] owns every TCP socket of one interface:
//! - sockets live in a slab addressed by generation-checked [`TcpHandle`]s;
//! - arriving segments are demultiplexed by a 4-tuple map of connections, then a port
//!   map of listeners, then answered as a closed port would (RFC 9293 §3.10.7.1);
//! - sockets with output pending sit in a FIFO *dirty queue* (each at most once), so
//!   [`TcpLayer::dispatch`] never scans all sockets;
//! - each socket's earliest deadline sits in a binary heap tagged with a generation;
//!   stale entries are skipped lazily, and the top of the heap is always valid so
//!   [`TcpLayer::poll_at`] is a peek.
//!
//! Invariants: every socket in `conns` has a 4-tuple and is not CLOSED or LISTEN; every
//! listener is in `listeners`; a socket freed from the slab is in neither map, the
//! dirty queue entries naming it are ignored, and its heap entries are stale.
//!
//! Events ([`TcpEvent`]) describe changes only; they are also logged with target
//! `ustack::tcp`, and the queue is bounded (the oldest are dropped and counted).
//!
//! # Driving the layer
//!
//! - Every arriving segment goes to [`TcpLayer::process`]; its return value (RST, ACK to
//!   an unacceptable segment, rate-limited challenge ACK) is sent as is.
//! - After any input, timer or API call (`send`, `recv` opening the window, `connect`,
//!   `shutdown`, `close`, `abort`), call [`TcpLayer::dispatch`] until it returns false;
//!   [`TcpLayer::has_pending_output`] says whether there is anything to do.
//! - Call [`TcpLayer::handle_timeout`] when [`TcpLayer::poll_at`] is reached.
//! - Sockets are user-owned until `close`/`abort`; then the layer keeps the connection
//!   (FIN-WAIT, TIME-WAIT...) and frees it on reaching CLOSED. Connections accepted from
//!   a listener belong to it until `accept`.

pub mod congestion;
mod isn;
mod rtt;
mod sack;
mod socket;
#[cfg(test)]
mod tests;

pub use congestion::{CongestionAlgorithm, CongestionControl};

use self::isn::SipKey;
use self::socket::{Listener, Reply, Socket, SocketOptions};
use super::IcmpError;
use crate::time::{Duration, Instant};
use crate::wire::{IpProtocol, SeqNumber, TcpFlags, TcpOptions, TcpRepr};
use core::cmp::Reverse;
use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::{BinaryHeap, HashMap, VecDeque};
pub use std::net::Shutdown;

/// TCP tunables shared by every socket of a layer (per-socket overrides live on sockets).
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// Default receive buffer per connection in bytes (SO_RCVBUF).
    pub rx_buffer_len: usize,
    /// Default send buffer per connection in bytes (SO_SNDBUF).
    pub tx_buffer_len: usize,
    /// Maximum segment lifetime; TIME-WAIT lasts 2*MSL (RFC 9293 §3.4.2).
    pub msl: Duration,
    /// Delayed-ACK timeout (RFC 1122 §4.2.3.2); zero disables delayed ACKs.
    pub delayed_ack: Duration,
    /// RTO before any RTT sample (RFC 6298 §2.1).
    pub initial_rto: Duration,
    /// Lower bound of the RTO (Linux: 200 ms).
    pub min_rto: Duration,
    /// Upper bound of the RTO.
    pub max_rto: Duration,
    /// Retransmissions of data before giving up with ETIMEDOUT (Linux tcp_retries2).
    pub max_retries: u32,
    /// SYN retransmissions before connect fails (Linux tcp_syn_retries).
    pub syn_retries: u32,
    /// SYN,ACK retransmissions before a half-open connection is dropped.
    pub synack_retries: u32,
    /// Default keepalive idle time (TCP_KEEPIDLE).
    pub keepalive_idle: Duration,
    /// Default interval between keepalive probes (TCP_KEEPINTVL).
    pub keepalive_interval: Duration,
    /// Default number of unanswered probes before giving up (TCP_KEEPCNT).
    pub keepalive_count: u32,
    /// Offer window scaling (RFC 7323 §2).
    pub window_scaling: bool,
    /// Offer timestamps (RFC 7323 §3).
    pub timestamps: bool,
    /// Offer SACK (RFC 2018).
    pub sack: bool,
    /// Default congestion control algorithm.
    pub congestion: CongestionAlgorithm,
    /// Default for TCP_NODELAY.
    pub nodelay: bool,
    /// Upper bound of a listen backlog (Linux somaxconn).
    pub max_backlog: usize,
    /// Most out-of-order ranges held per connection.
    pub max_ooo_ranges: usize,
    /// Challenge ACKs allowed per second per layer (Linux tcp_challenge_ack_limit).
    pub challenge_ack_limit: u32,
    /// Least time between ACKs answering bare out-of-window segments, per connection
    /// (Linux tcp_invalid_ratelimit).
    pub invalid_ack_ratelimit: Duration,
    /// Most events kept for [`TcpLayer::poll_event`].
    pub event_queue_len: usize,
    /// How long an orphaned connection may stay in FIN-WAIT-2 (Linux tcp_fin_timeout).
    pub fin_wait2_timeout: Duration,
    /// Ephemeral port range (inclusive).
    pub ephemeral_ports: (u16, u16),
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            rx_buffer_len: 131_072,
            tx_buffer_len: 131_072,
            msl: Duration::from_secs(30),
            delayed_ack: Duration::from_millis(40),
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(120),
            max_retries: 15,
            syn_retries: 6,
            synack_retries: 5,
            keepalive_idle: Duration::from_secs(7200),
            keepalive_interval: Duration::from_secs(75),
            keepalive_count: 9,
            window_scaling: true,
            timestamps: true,
            sack: true,
            congestion: CongestionAlgorithm::Cubic,
            nodelay: false,
            max_backlog: 4096,
            max_ooo_ranges: 32,
            challenge_ack_limit: 1000,
            invalid_ack_ratelimit: Duration::from_millis(500),
            event_queue_len: 1024,
            fin_wait2_timeout: Duration::from_secs(60),
            ephemeral_ports: (32768, 60999),
        }
    }
}

/// What the interface tells the TCP layer on each call.
#[derive(Clone, Copy, Debug)]
pub struct TcpContext {
    /// The current time.
    pub now: Instant,
    /// The interface's address.
    pub local_addr: Ipv4Addr,
    /// The IP MTU (the largest IP packet, header included, sent without fragmenting).
    pub mtu: usize,
}

/// The addresses of a segment, the only IP information TCP exchanges with the interface:
/// arriving segments are demultiplexed by them, and the interface builds the IPv4 header
/// of every segment TCP sends around them (TTL, DF and identification are its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SegmentAddrs {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
}

impl SegmentAddrs {
    /// The addresses of a reply: source and destination swapped.
    pub fn reversed(self) -> SegmentAddrs {
        SegmentAddrs {
            src: self.dst,
            dst: self.src,
        }
    }
}

/// Identifies a TCP socket within its layer; stale handles are detected by generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TcpHandle {
    index: u32,
    gen: u32,
}

impl fmt::Display for TcpHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tcp#{}.{}", self.index, self.gen)
    }
}

/// The connection states of RFC 9293 §3.3.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// No connection.
    Closed,
    /// Waiting for a connection request.
    Listen,
    /// SYN sent, waiting for a matching request.
    SynSent,
    /// SYN received and sent, waiting for its acknowledgment.
    SynReceived,
    /// Open; data flows both ways.
    Established,
    /// We closed; waiting for the ACK of our FIN or the peer's FIN.
    FinWait1,
    /// Our FIN is acknowledged; waiting for the peer's FIN.
    FinWait2,
    /// The peer closed; waiting for our application to close.
    CloseWait,
    /// Both closed at once; waiting for the ACK of our FIN.
    Closing,
    /// The peer closed first, then we did; waiting for the ACK of our FIN.
    LastAck,
    /// Waiting 2*MSL so that the peer received the ACK of its FIN.
    TimeWait,
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TcpState::Closed => "CLOSED",
            TcpState::Listen => "LISTEN",
            TcpState::SynSent => "SYN-SENT",
            TcpState::SynReceived => "SYN-RECEIVED",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait1 => "FIN-WAIT-1",
            TcpState::FinWait2 => "FIN-WAIT-2",
            TcpState::CloseWait => "CLOSE-WAIT",
            TcpState::Closing => "CLOSING",
            TcpState::LastAck => "LAST-ACK",
            TcpState::TimeWait => "TIME-WAIT",
        })
    }
}

/// A terminal or soft connection error (what SO_ERROR would report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpError {
    /// The peer refused the connection: RST to our SYN or ICMP port unreachable.
    ConnectionRefused,
    /// The peer reset the connection (ECONNRESET).
    ConnectionReset,
    /// Retransmissions or keepalive probes went unanswered (ETIMEDOUT).
    TimedOut,
    /// ICMP reported the host or network unreachable (EHOSTUNREACH).
    HostUnreachable,
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TcpError::ConnectionRefused => "connection refused",
            TcpError::ConnectionReset => "connection reset by peer",
            TcpError::TimedOut => "connection timed out",
            TcpError::HostUnreachable => "no route to host",
        })
    }
}

impl std::error::Error for TcpError {}

macro_rules! error_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $text:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $v,)*
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $($name::$v => $text,)* })
            }
        }
        impl std::error::Error for $name {}
    };
}

error_enum!(
    /// Errors of [`TcpLayer::bind`].
    BindError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
        /// The socket is already bound or in use (EINVAL).
        InvalidState => "socket already bound",
        /// The port is taken (EADDRINUSE).
        AddrInUse => "address in use",
        /// No free ephemeral port (EADDRNOTAVAIL).
        NoPortsAvailable => "no ports available",
    }
);

error_enum!(
    /// Errors of [`TcpLayer::listen`].
    ListenError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
        /// The socket is connected or connecting (EINVAL).
        InvalidState => "socket is connected",
        /// The port is taken (EADDRINUSE).
        AddrInUse => "address in use",
        /// No free ephemeral port (EADDRNOTAVAIL).
        NoPortsAvailable => "no ports available",
    }
);

error_enum!(
    /// Errors of [`TcpLayer::connect`].
    ConnectError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
        /// Already connected (EISCONN).
        IsConnected => "already connected",
        /// A connection attempt is in progress (EALREADY).
        InProgress => "connection already in progress",
        /// The socket is listening (EINVAL).
        InvalidState => "socket is listening",
        /// The remote address or port is unusable (EINVAL / ENETUNREACH).
        Unaddressable => "unaddressable destination",
        /// The 4-tuple is already in use (EADDRINUSE).
        AddrInUse => "address in use",
        /// No free ephemeral port (EADDRNOTAVAIL).
        NoPortsAvailable => "no ports available",
    }
);

error_enum!(
    /// Errors of [`TcpLayer::accept`].
    AcceptError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
        /// The socket is not listening (EINVAL).
        NotListening => "socket is not listening",
        /// No connection is ready (EAGAIN).
        WouldBlock => "no connection ready",
    }
);

error_enum!(
    /// Errors of [`TcpLayer::send`].
    SendError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
        /// Not connected (ENOTCONN).
        NotConnected => "not connected",
        /// The sending side was shut down or the connection closed (EPIPE).
        Closed => "broken pipe",
        /// The peer reset the connection (ECONNRESET).
        Reset => "connection reset by peer",
        /// The connection timed out (ETIMEDOUT).
        TimedOut => "connection timed out",
        /// The connection was refused (ECONNREFUSED).
        Refused => "connection refused",
        /// The host is unreachable (EHOSTUNREACH).
        Unreachable => "no route to host",
        /// The send buffer is full, or the handshake is not complete (EAGAIN).
        WouldBlock => "send buffer full",
    }
);

error_enum!(
    /// Errors of [`TcpLayer::recv`] and [`TcpLayer::peek`].
    RecvError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
        /// Not connected (ENOTCONN).
        NotConnected => "not connected",
        /// The peer reset the connection (ECONNRESET).
        Reset => "connection reset by peer",
        /// The connection timed out (ETIMEDOUT).
        TimedOut => "connection timed out",
        /// The connection was refused (ECONNREFUSED).
        Refused => "connection refused",
        /// The host is unreachable (EHOSTUNREACH).
        Unreachable => "no route to host",
        /// Nothing to read yet (EAGAIN).
        WouldBlock => "no data ready",
    }
);

error_enum!(
    /// Errors of [`TcpLayer::shutdown`].
    ShutdownError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
        /// Not connected (ENOTCONN).
        NotConnected => "not connected",
    }
);

error_enum!(
    /// Errors of [`TcpLayer::close`] and [`TcpLayer::abort`].
    CloseError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
    }
);

error_enum!(
    /// Errors of socket options and simple queries.
    OptionError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
        /// The option cannot change in this state (EINVAL / EISCONN).
        InvalidState => "invalid state for this option",
    }
);

impl From<TcpError> for SendError {
    fn from(e: TcpError) -> SendError {
        match e {
            TcpError::ConnectionRefused => SendError::Refused,
            TcpError::ConnectionReset => SendError::Reset,
            TcpError::TimedOut => SendError::TimedOut,
            TcpError::HostUnreachable => SendError::Unreachable,
        }
    }
}

impl From<TcpError> for RecvError {
    fn from(e: TcpError) -> RecvError {
        match e {
            TcpError::ConnectionRefused => RecvError::Refused,
            TcpError::ConnectionReset => RecvError::Reset,
            TcpError::TimedOut => RecvError::TimedOut,
            TcpError::HostUnreachable => RecvError::Unreachable,
        }
    }
}

/// A structured TCP event, pulled with [`TcpLayer::poll_event`]. Events describe
/// changes; acting on them is up to the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpEvent {
    /// A socket changed state.
    StateChanged {
        /// The socket.
        handle: TcpHandle,
        /// Local address.
        local: SocketAddrV4,
        /// Remote address (unspecified for listeners).
        remote: SocketAddrV4,
        /// Previous state.
        from: TcpState,
        /// New state.
        to: TcpState,
    },
    /// A segment was retransmitted (timeout, fast retransmit or SACK recovery).
    Retransmit {
        /// The socket.
        handle: TcpHandle,
        /// First sequence number resent.
        seq: SeqNumber,
        /// Payload bytes resent (0 for SYN or FIN only).
        len: usize,
    },
    /// Three duplicate ACKs (or SACK) started fast retransmit / fast recovery.
    FastRetransmit {
        /// The socket.
        handle: TcpHandle,
        /// SND.UNA at the time.
        seq: SeqNumber,
    },
    /// The retransmission timer expired.
    RtoFired {
        /// The socket.
        handle: TcpHandle,
        /// The backed-off RTO now in force.
        rto: Duration,
        /// Consecutive timeouts so far.
        retries: u32,
    },
    /// Congestion control reduced or restored the window (loss, RTO, end of recovery).
    CongestionChanged {
        /// The socket.
        handle: TcpHandle,
        /// New congestion window in bytes.
        cwnd: usize,
        /// New slow-start threshold in bytes.
        ssthresh: usize,
    },
    /// The peer's window closed to zero or re-opened.
    WindowUpdate {
        /// The socket.
        handle: TcpHandle,
        /// The peer's window in bytes.
        window: usize,
    },
    /// We sent a window update after the application read.
    WindowUpdateSent {
        /// The socket.
        handle: TcpHandle,
        /// Our advertised window in bytes.
        window: usize,
    },
    /// A zero-window probe was sent.
    ZeroWindowProbe {
        /// The socket.
        handle: TcpHandle,
        /// Sequence number of the probe.
        seq: SeqNumber,
    },
}

/// A TCP_INFO-like snapshot of one connection (`ss -ti`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpInfo {
    /// Connection state.
    pub state: TcpState,
    /// Congestion control algorithm.
    pub congestion: CongestionAlgorithm,
    /// Congestion window in bytes.
    pub cwnd: usize,
    /// Slow-start threshold in bytes (`usize::MAX` until the first loss).
    pub ssthresh: usize,
    /// Smoothed RTT.
    pub srtt: Option<Duration>,
    /// RTT variance.
    pub rttvar: Duration,
    /// Current retransmission timeout.
    pub rto: Duration,
    /// Exponential backoff count.
    pub backoff: u32,
    /// Consecutive unanswered retransmissions.
    pub retransmits: u32,
    /// Send MSS (payload per segment with timestamps).
    pub snd_mss: usize,
    /// Largest segment received.
    pub rcv_mss: usize,
    /// MSS we advertised.
    pub advmss: usize,
    /// Path MTU.
    pub pmtu: usize,
    /// Peer's window in bytes.
    pub snd_wnd: usize,
    /// Window we last advertised, in bytes.
    pub rcv_wnd: usize,
    /// Shift applied to the peer's window field.
    pub snd_wscale: u8,
    /// Shift we apply to our window field.
    pub rcv_wscale: u8,
    /// Window scaling negotiated.
    pub window_scaling: bool,
    /// Timestamps negotiated.
    pub timestamps: bool,
    /// SACK negotiated.
    pub sack: bool,
    /// Bytes in flight.
    pub unacked: usize,
    /// Bytes the peer SACKed above SND.UNA.
    pub sacked: usize,
    /// In fast recovery.
    pub in_recovery: bool,
    /// Payload bytes sent, retransmissions included.
    pub bytes_sent: u64,
    /// Payload bytes acknowledged.
    pub bytes_acked: u64,
    /// Payload bytes received in order.
    pub bytes_received: u64,
    /// Payload bytes retransmitted.
    pub bytes_retrans: u64,
    /// Retransmitted segments.
    pub total_retrans: u64,
    /// Segments sent.
    pub segs_out: u64,
    /// Segments received.
    pub segs_in: u64,
    /// SND.UNA.
    pub snd_una: SeqNumber,
    /// SND.NXT.
    pub snd_nxt: SeqNumber,
    /// RCV.NXT.
    pub rcv_nxt: SeqNumber,
    /// Bytes queued to send (unacknowledged included).
    pub send_queue: usize,
    /// Bytes received and not yet read.
    pub recv_queue: usize,
}

/// A diagnostic snapshot of one socket with its addresses ([`TcpLayer::sockets`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSocketInfo {
    /// The socket.
    pub handle: TcpHandle,
    /// Local address (port 0 before bind).
    pub local: SocketAddrV4,
    /// Remote address (unspecified for listeners).
    pub remote: SocketAddrV4,
    /// Closed by the user and finishing on its own (no longer reachable by handle).
    pub orphaned: bool,
    /// TCP_INFO-like state.
    pub info: TcpInfo,
}

/// Counters of the TCP layer (drops by reason and notable events).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpCounters {
    /// Segments handed to [`TcpLayer::process`].
    pub segments_in: u64,
    /// Segments emitted by dispatch or returned as replies.
    pub segments_out: u64,
    /// RSTs sent (closed ports, aborts, bad ACKs).
    pub resets_sent: u64,
    /// Segments to a port nobody uses.
    pub no_socket: u64,
    /// Segments with a bad address or port 0.
    pub bad_segments: u64,
    /// SYNs dropped because a listen queue was full.
    pub listen_overflows: u64,
    /// Handshake ACKs dropped because the accept queue was full.
    pub accept_queue_full: u64,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u64,
    /// Challenge ACKs suppressed by the rate limit.
    pub challenge_acks_limited: u64,
    /// Segments rejected by PAWS (RFC 7323 §5).
    pub paws_rejected: u64,
    /// TIME-WAIT connections reopened by a new SYN (RFC 6191).
    pub time_wait_reused: u64,
    /// Events dropped because the queue was full.
    pub events_dropped: u64,
    /// ICMP errors that matched no connection.
    pub icmp_unmatched: u64,
}

/// Bounded queue of events; the oldest are dropped first.
#[derive(Debug)]
pub(crate) struct EventQueue {
    queue: VecDeque<TcpEvent>,
    cap: usize,
    dropped: u64,
}

impl EventQueue {
    fn new(cap: usize) -> EventQueue {
        EventQueue {
            queue: VecDeque::new(),
            cap: cap.max(1),
            dropped: 0,
        }
    }

    /// Logs and queues an event.
    pub(crate) fn push(&mut self, e: TcpEvent) {
        log::debug!(target: "ustack::tcp", "{e:?}");
        if self.queue.len() >= self.cap {
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.queue.push_back(e);
    }
}

/// The 4-tuple of a connection, from our point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ConnKey {
    local: SocketAddrV4,
    remote: SocketAddrV4,
}

#[derive(Debug, Default)]
struct Slot {
    gen: u32,
    sock: Option<Box<Socket>>,
}

/// Port table entry: how many sockets hold the port, and how many exclusively
/// (explicit bind or listen).
#[derive(Clone, Copy, Debug, Default)]
struct PortUse {
    all: u32,
    exclusive: u32,
}

/// All TCP sockets of one interface, with their demultiplexing maps and timers.
#[derive(Debug)]
pub struct TcpLayer {
    config: TcpConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    conns: HashMap<ConnKey, u32>,
    listeners: HashMap<u16, u32>,
    ports: HashMap<u16, PortUse>,
    dirty: VecDeque<u32>,
    /// User-owned sockets whose readiness may have changed, each at most once.
    ready: VecDeque<TcpHandle>,
    timers: BinaryHeap<Reverse<(Instant, u32, u64)>>,
    /// Scratch list of sockets whose timer is due, kept to avoid allocating per expiry.
    due: Vec<u32>,
    timer_seq: u64,
    events: EventQueue,
    pending_rsts: VecDeque<(SegmentAddrs, TcpRepr<'static>)>,
    isn_key: SipKey,
    ts_key: SipKey,
    port_key: SipKey,
    port_counter: u32,
    challenge_window: Instant,
    challenge_count: u32,
    counters: TcpCounters,
    /// Test hook: every new connection uses this ISN and a zero timestamp offset.
    fixed_isn: Option<SeqNumber>,
}

const MAX_PENDING_RSTS: usize = 256;

impl TcpLayer {
    /// A layer with no sockets; `seed` keys initial sequence numbers and ports.
    pub fn new(config: TcpConfig, seed: u64) -> TcpLayer {
        TcpLayer {
            events: EventQueue::new(config.event_queue_len),
            config,
            slots: Vec::new(),
            free: Vec::new(),
            conns: HashMap::new(),
            listeners: HashMap::new(),
            ports: HashMap::new(),
            dirty: VecDeque::new(),
            ready: VecDeque::new(),
            timers: BinaryHeap::new(),
            due: Vec::new(),
            timer_seq: 0,
            pending_rsts: VecDeque::new(),
            isn_key: SipKey::from_seed(seed, 1),
            ts_key: SipKey::from_seed(seed, 2),
            port_key: SipKey::from_seed(seed, 3),
            port_counter: 0,
            challenge_window: Instant::ZERO,
            challenge_count: 0,
            counters: TcpCounters::default(),
            fixed_isn: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TcpConfig {
        &self.config
    }

    /// Layer counters.
    pub fn counters(&self) -> TcpCounters {
        let mut c = self.counters;
        c.events_dropped = self.events.dropped;
        c
    }

    /// Number of sockets in the slab (user-owned, orphaned and TIME-WAIT).
    pub fn socket_count(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    // ------------------------------------------------------------ slab

    fn sock(&self, h: TcpHandle) -> Option<&Socket> {
        let slot = self.slots.get(h.index as usize)?;
        if slot.gen != h.gen {
            return None;
        }
        slot.sock.as_deref()
    }

    fn sock_mut(&mut self, h: TcpHandle) -> Option<&mut Socket> {
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.gen != h.gen {
            return None;
        }
        slot.sock.as_deref_mut()
    }

    /// A user-visible socket (not orphaned by close).
    fn user_sock(&self, h: TcpHandle) -> Option<&Socket> {
        self.sock(h).filter(|s| !s.user_closed)
    }

    fn user_sock_mut(&mut self, h: TcpHandle) -> Option<&mut Socket> {
        self.sock_mut(h).filter(|s| !s.user_closed)
    }

    /// A socket with the configuration and the event queue, borrowed apart.
    fn parts(&mut self, idx: u32) -> Option<(&mut Socket, &TcpConfig, &mut EventQueue)> {
        let s = self.slots.get_mut(idx as usize)?.sock.as_deref_mut()?;
        Some((s, &self.config, &mut self.events))
    }

    /// A user-visible socket with the configuration and the event queue.
    fn user_parts(&mut self, h: TcpHandle) -> Option<(&mut Socket, &TcpConfig, &mut EventQueue)> {
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.gen != h.gen {
            return None;
        }
        let s = slot.sock.as_deref_mut().filter(|s| !s.user_closed)?;
        Some((s, &self.config, &mut self.events))
    }

    fn at(&mut self, idx: u32) -> Option<&mut Socket> {
        self.slots.get_mut(idx as usize)?.sock.as_deref_mut()
    }

    fn alloc(&mut self, opts: SocketOptions) -> TcpHandle {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        let handle = TcpHandle {
            index,
            gen: slot.gen,
        };
        slot.sock = Some(Box::new(Socket::new(handle, opts, &self.config)));
        handle
    }

    /// Removes a socket from every map and the slab.
    fn free_slot(&mut self, idx: u32) {
        let Some(slot) = self.slots.get_mut(idx as usize) else {
            return;
        };
        let Some(sock) = slot.sock.take() else {
            return;
        };
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(idx);
        if sock.in_conns {
            self.conns.remove(&ConnKey {
                local: sock.local,
                remote: sock.remote,
            });
        }
        if let Some((port, exclusive)) = sock.port_claim {
            self.release_port(port, exclusive);
        }
        if let Some(listener) = sock.listener {
            if self.listeners.get(&sock.local.port()) == Some(&idx) {
                self.listeners.remove(&sock.local.port());
            }
            // Unaccepted connections die with their listener (Linux sends RSTs).
            for child in listener
                .syn_queue
                .iter()
                .chain(listener.accept_queue.iter())
            {
                if let Some(c) = self.sock_mut(*child) {
                    c.parent = None;
                    c.user_closed = true;
                }
                self.abort_handle(*child);
            }
        }
        if let Some(parent) = sock.parent {
            if let Some(l) = self.sock_mut(parent).and_then(|p| p.listener.as_mut()) {
                l.syn_queue.retain(|&c| c != sock.handle);
                l.accept_queue.retain(|&c| c != sock.handle);
            }
        }
    }

    fn claim_port(&mut self, port: u16, exclusive: bool) {
        let e = self.ports.entry(port).or_default();
        e.all += 1;
        if exclusive {
            e.exclusive += 1;
        }
    }

    fn release_port(&mut self, port: u16, exclusive: bool) {
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

    // ------------------------------------------------------------ bookkeeping

    fn mark_dirty(&mut self, idx: u32) {
        if let Some(s) = self.at(idx) {
            if !s.queued && s.may_want_dispatch() {
                s.queued = true;
                self.dirty.push_back(idx);
            }
        }
    }

    /// Queues a user-owned socket for [`poll_ready`](Self::poll_ready).
    fn touch(&mut self, idx: u32) {
        if let Some(s) = self.at(idx) {
            // Connections still in a listen queue are not the user's yet.
            if !s.ready_queued && !s.user_closed && s.parent.is_none() {
                s.ready_queued = true;
                let h = s.handle;
                self.ready.push_back(h);
            }
        }
    }

    fn reschedule(&mut self, idx: u32) {
        let seq = self.timer_seq + 1;
        let Some(s) = self.at(idx) else {
            return;
        };
        let at = s.poll_at();
        if at == s.timer_at {
            return;
        }
        s.timer_at = at;
        s.timer_gen = seq;
        self.timer_seq = seq;
        if let Some(t) = at {
            self.timers.push(Reverse((t, idx, seq)));
        }
        if self.timers.len() > 4 * self.slots.len() + 64 {
            self.rebuild_timers();
        }
    }

    fn rebuild_timers(&mut self) {
        // Reuse the heap's buffer: this runs in steady state and must not allocate.
        let mut entries = core::mem::take(&mut self.timers).into_vec();
        entries.clear();
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some(s) = &slot.sock {
                if let Some(t) = s.timer_at {
                    entries.push(Reverse((t, i as u32, s.timer_gen)));
                }
            }
        }
        self.timers = BinaryHeap::from(entries);
    }

    fn timer_valid(&self, idx: u32, gen: u64) -> bool {
        self.slots
            .get(idx as usize)
            .and_then(|s| s.sock.as_ref())
            .is_some_and(|s| s.timer_gen == gen && s.timer_at.is_some())
    }

    /// Pops stale entries so the top of the heap is a live deadline.
    fn tidy_timers(&mut self) {
        while let Some(&Reverse((_, idx, gen))) = self.timers.peek() {
            if self.timer_valid(idx, gen) {
                break;
            }
            self.timers.pop();
        }
    }

    /// After any change to a socket: queue handling for listener children, freeing
    /// at CLOSED, timers and the dirty queue.
    fn settle(&mut self, idx: u32, prev: TcpState, dirty: bool) {
        let Some(s) = self.at(idx) else {
            return;
        };
        let state = s.state;
        let handle = s.handle;
        let parent = s.parent;
        if prev == TcpState::SynReceived
            && !matches!(state, TcpState::SynReceived | TcpState::Closed)
            && !s.in_accept_queue
        {
            if let Some(p) = parent {
                s.in_accept_queue = true;
                if let Some(l) = self.sock_mut(p).and_then(|p| p.listener.as_mut()) {
                    l.syn_queue.retain(|&c| c != handle);
                    l.accept_queue.push_back(handle);
                }
                // The listener became acceptable.
                self.touch(p.index);
            }
        }
        let Some(s) = self.at(idx) else {
            return;
        };
        if state == TcpState::Closed {
            if s.in_conns {
                s.in_conns = false;
                let key = ConnKey {
                    local: s.local,
                    remote: s.remote,
                };
                self.conns.remove(&key);
            }
            let Some(s) = self.at(idx) else {
                return;
            };
            let orphan = s.user_closed || (s.parent.is_some() && !s.in_accept_queue);
            if orphan {
                self.free_slot(idx);
                return;
            }
        }
        if dirty {
            self.mark_dirty(idx);
        }
        self.reschedule(idx);
    }

    fn queue_rst(&mut self, addrs: SegmentAddrs, repr: TcpRepr<'static>) {
        if self.pending_rsts.len() < MAX_PENDING_RSTS {
            self.pending_rsts.push_back((addrs, repr));
        }
    }

    fn abort_handle(&mut self, h: TcpHandle) {
        let Some(s) = self.sock_mut(h) else {
            return;
        };
        let idx = h.index;
        let prev = s.state;
        let synchronized = !matches!(
            prev,
            TcpState::Closed | TcpState::Listen | TcpState::SynSent | TcpState::TimeWait
        );
        let rst = synchronized.then(|| {
            let r = s.rst_segment();
            (s.addrs(), r)
        });
        s.user_closed = true;
        if let Some((s, _, ev)) = self.parts(idx) {
            s.fail(ev, None);
        }
        if let Some((addrs, r)) = rst {
            self.counters.resets_sent += 1;
            self.queue_rst(addrs, r);
        }
        if prev == TcpState::Listen || prev == TcpState::Closed {
            self.free_slot(idx);
        } else {
            self.settle(idx, prev, false);
        }
    }

    fn isn_for(&self, key: ConnKey, now: Instant) -> SeqNumber {
        self.fixed_isn
            .unwrap_or_else(|| SeqNumber(isn::isn(&self.isn_key, key.local, key.remote, now)))
    }

    fn ts_offset_for(&self, key: ConnKey) -> u32 {
        if self.fixed_isn.is_some() {
            0
        } else {
            self.ts_key.tuple(key.local, key.remote) as u32
        }
    }

    fn allow_challenge(&mut self, now: Instant) -> bool {
        if now - self.challenge_window >= Duration::from_secs(1) {
            self.challenge_window = now;
            self.challenge_count = 0;
        }
        if self.challenge_count < self.config.challenge_ack_limit {
            self.challenge_count += 1;
            self.counters.challenge_acks += 1;
            true
        } else {
            self.counters.challenge_acks_limited += 1;
            false
        }
    }

    /// The addresses of a segment from us on connection `key`.
    fn reply_addrs(key: ConnKey) -> SegmentAddrs {
        SegmentAddrs {
            src: *key.local.ip(),
            dst: *key.remote.ip(),
        }
    }

    // ------------------------------------------------------------ interface contract

    /// Handles a segment addressed to us; returns a segment to send at once (RST, ACK,
    /// challenge ACK), if any, with its addresses; the interface builds its IPv4 header.
    pub fn process(
        &mut self,
        cx: &TcpContext,
        addrs: SegmentAddrs,
        seg: &TcpRepr<'_>,
    ) -> Option<(SegmentAddrs, TcpRepr<'static>)> {
        self.counters.segments_in += 1;
        let reply = self.process_inner(cx, addrs, seg);
        self.tidy_timers();
        if let Some((_, r)) = &reply {
            self.counters.segments_out += 1;
            if r.flags.rst() {
                self.counters.resets_sent += 1;
            }
        }
        reply
    }

    fn process_inner(
        &mut self,
        cx: &TcpContext,
        addrs: SegmentAddrs,
        seg: &TcpRepr<'_>,
    ) -> Option<(SegmentAddrs, TcpRepr<'static>)> {
        let src = addrs.src;
        if seg.src_port == 0
            || seg.dst_port == 0
            || src.is_broadcast()
            || src.is_multicast()
            || src.is_unspecified()
            || addrs.dst.is_broadcast()
            || addrs.dst.is_multicast()
        {
            self.counters.bad_segments += 1;
            return None;
        }
        let key = ConnKey {
            local: SocketAddrV4::new(addrs.dst, seg.dst_port),
            remote: SocketAddrV4::new(src, seg.src_port),
        };
        let mut iss_hint = None;
        if let Some(&idx) = self.conns.get(&key) {
            let s = self.at(idx)?;
            if s.state == TcpState::TimeWait
                && seg.flags.syn()
                && !seg.flags.ack()
                && !seg.flags.rst()
                && time_wait_accepts_syn(s, seg)
            {
                // Per RFC 6191 §2: a SYN with a newer timestamp (or, without
                // timestamps, a greater sequence number) may reopen a TIME-WAIT
                // connection. Linux starts the new ISN past the old SND.NXT.
                iss_hint = Some(s.snd_max + 65_537);
                self.counters.time_wait_reused += 1;
                if let Some((s, _, ev)) = self.parts(idx) {
                    s.fail(ev, None);
                }
                // An orphan is freed; a socket still held by its owner stays CLOSED.
                self.touch(idx);
                self.settle(idx, TcpState::TimeWait, false);
            } else {
                if s.state == TcpState::SynReceived && seg.flags.ack() && !seg.flags.rst() {
                    if let Some(p) = s.parent {
                        let full = self
                            .sock(p)
                            .and_then(|p| p.listener.as_ref())
                            .is_some_and(|l| l.accept_queue.len() >= l.backlog);
                        if full {
                            // Linux drops the handshake's final ACK when the accept queue
                            // is full; the SYN,ACK is retransmitted later.
                            self.counters.accept_queue_full += 1;
                            return None;
                        }
                    }
                }
                let (s, cfg, ev) = self.parts(idx)?;
                let prev = s.state;
                let paws_before = s.paws_rejected;
                let reply = s.process(cx, cfg, ev, seg);
                let s = self.at(idx)?;
                let paws = s.paws_rejected - paws_before;
                self.counters.paws_rejected += paws;
                self.touch(idx);
                self.settle(idx, prev, true);
                return match reply? {
                    Reply::Segment(r) => Some((Self::reply_addrs(key), r)),
                    Reply::Challenge(r) => self
                        .allow_challenge(cx.now)
                        .then(|| (Self::reply_addrs(key), r)),
                };
            }
        }
        if let Some(&lidx) = self.listeners.get(&seg.dst_port) {
            let l = self.at(lidx)?;
            let laddr = *l.local.ip();
            if laddr.is_unspecified() || laddr == addrs.dst {
                return self.process_listen(cx, key, seg, lidx, iss_hint);
            }
        }
        self.counters.no_socket += 1;
        closed_port_reply(addrs, seg)
    }

    /// RFC 9293 §3.10.7.2: a segment for a LISTEN socket.
    fn process_listen(
        &mut self,
        cx: &TcpContext,
        key: ConnKey,
        seg: &TcpRepr<'_>,
        lidx: u32,
        iss_hint: Option<SeqNumber>,
    ) -> Option<(SegmentAddrs, TcpRepr<'static>)> {
        // "First, check for a RST: an incoming RST should be ignored."
        if seg.flags.rst() {
            return None;
        }
        // "Second, check for an ACK: any acknowledgment is bad ... <SEQ=SEG.ACK><CTL=RST>"
        if seg.flags.ack() {
            let r = socket::rst_for(seg);
            return Some((Self::reply_addrs(key), r));
        }
        if !seg.flags.syn() {
            return None;
        }
        let (opts, lhandle) = {
            let l = self.at(lidx)?;
            let q = l.listener.as_ref()?;
            // A full SYN or accept queue drops the SYN, like Linux without syncookies.
            if q.syn_queue.len() >= q.backlog || q.accept_queue.len() >= q.backlog {
                self.counters.listen_overflows += 1;
                log::debug!(target: "ustack::tcp", "listen queue of port {} full: SYN dropped", key.local.port());
                return None;
            }
            (l.opts.clone(), l.handle)
        };
        let h = self.alloc(opts);
        let iss = iss_hint.unwrap_or_else(|| self.isn_for(key, cx.now));
        let ts_offset = self.ts_offset_for(key);
        let idx = h.index;
        {
            let cfg = &self.config;
            let ev = &mut self.events;
            let c = self.slots[idx as usize].sock.as_deref_mut()?;
            c.local = key.local;
            c.remote = key.remote;
            c.parent = Some(lhandle);
            c.ts_offset = ts_offset;
            c.port_claim = Some((key.local.port(), false));
            c.in_conns = true;
            c.accept_syn(cx, cfg, ev, seg, iss);
        }
        self.claim_port(key.local.port(), false);
        self.conns.insert(key, idx);
        if let Some(q) = self.at(lidx).and_then(|l| l.listener.as_mut()) {
            q.syn_queue.push(h);
        }
        self.settle(idx, TcpState::Listen, true);
        None
    }

    /// Emits at most one pending segment, with its addresses, through `emit`; returns
    /// whether it did. The interface builds the segment's IPv4 header.
    pub fn dispatch(
        &mut self,
        cx: &TcpContext,
        emit: &mut dyn FnMut(SegmentAddrs, &TcpRepr<'_>),
    ) -> bool {
        if let Some((addrs, r)) = self.pending_rsts.pop_front() {
            emit(addrs, &r);
            self.counters.segments_out += 1;
            return true;
        }
        while let Some(idx) = self.dirty.pop_front() {
            let Some(s) = self
                .slots
                .get_mut(idx as usize)
                .and_then(|s| s.sock.as_deref_mut())
            else {
                continue;
            };
            if !s.queued {
                continue;
            }
            s.queued = false;
            let prev = s.state;
            let sent = s.dispatch(cx, &mut self.events, emit);
            if sent {
                self.counters.segments_out += 1;
                // Round robin: the socket may have more to send after the others.
                self.settle(idx, prev, true);
                self.tidy_timers();
                return true;
            }
            self.settle(idx, prev, false);
        }
        self.tidy_timers();
        false
    }

    /// Runs every timer due at `cx.now`.
    pub fn handle_timeout(&mut self, cx: &TcpContext) {
        let mut due = core::mem::take(&mut self.due);
        due.clear();
        while let Some(&Reverse((t, idx, gen))) = self.timers.peek() {
            if t > cx.now {
                break;
            }
            self.timers.pop();
            if self.timer_valid(idx, gen) {
                due.push(idx);
            }
        }
        for &idx in &due {
            let cfg = &self.config;
            let ev = &mut self.events;
            let Some(s) = self.slots[idx as usize].sock.as_deref_mut() else {
                continue;
            };
            s.timer_at = None;
            let prev = s.state;
            if let Some(rst) = s.handle_timeout(cx, cfg, ev) {
                let addrs = s.addrs();
                self.counters.resets_sent += 1;
                self.queue_rst(addrs, rst);
            }
            self.touch(idx);
            self.settle(idx, prev, true);
        }
        self.due = due;
        self.tidy_timers();
    }

    /// The earliest deadline of any socket.
    pub fn poll_at(&self) -> Option<Instant> {
        self.timers.peek().map(|r| r.0 .0)
    }

    /// True when [`dispatch`](Self::dispatch) may have something to send.
    pub fn has_pending_output(&self) -> bool {
        !self.pending_rsts.is_empty() || !self.dirty.is_empty()
    }

    /// Delivers an ICMP error quoting one of our segments (RFC 1122 §4.2.3.9).
    pub fn handle_icmp_error(&mut self, _cx: &TcpContext, err: &IcmpError) {
        if err.protocol() != IpProtocol::TCP {
            return;
        }
        let key = ConnKey {
            local: SocketAddrV4::new(err.quoted.src_addr, err.src_port),
            remote: SocketAddrV4::new(err.quoted.dst_addr, err.dst_port),
        };
        let Some(&idx) = self.conns.get(&key) else {
            self.counters.icmp_unmatched += 1;
            return;
        };
        let ev = &mut self.events;
        let Some(s) = self.slots[idx as usize].sock.as_deref_mut() else {
            return;
        };
        let prev = s.state;
        s.handle_icmp(ev, err);
        self.touch(idx);
        self.settle(idx, prev, true);
        self.tidy_timers();
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<TcpEvent> {
        self.events.queue.pop_front()
    }

    /// The next user-owned socket whose readiness may have changed since it was last
    /// returned: a segment or timer touched it (data, ACK freeing send space, FIN,
    /// state change, error), or, for a listener, a connection became acceptable.
    ///
    /// An event loop services only these sockets instead of scanning all of them. A
    /// socket is queued at most once; a handle closed since is simply invalid (calls on
    /// it fail with `BadHandle`). Spurious entries are possible; missed ones are not,
    /// except for what happened to a connection before `accept` returned it: service a
    /// newly accepted connection once right away.
    pub fn poll_ready(&mut self) -> Option<TcpHandle> {
        while let Some(h) = self.ready.pop_front() {
            if let Some(s) = self.sock_mut(h) {
                s.ready_queued = false;
                if !s.user_closed {
                    return Some(h);
                }
            }
        }
        None
    }

    // ------------------------------------------------------------ user API

    /// A new socket in CLOSED with the layer's default options (socket(2)).
    pub fn socket(&mut self) -> TcpHandle {
        self.alloc(SocketOptions::from_config(&self.config))
    }

    fn pick_ephemeral(&mut self, local_ip: Ipv4Addr, remote: Option<SocketAddrV4>) -> Option<u16> {
        let (lo, hi) = self.config.ephemeral_ports;
        let (lo, hi) = (lo.min(hi), lo.max(hi));
        let n = u32::from(hi - lo) + 1;
        // RFC 6056 §3.3.3 (Algorithm 3): offset = F(local, remote, key), plus a counter.
        let offset = match remote {
            Some(r) => self.port_key.tuple(SocketAddrV4::new(local_ip, 0), r) as u32,
            None => self.port_key.hash(&[u64::from(u32::from(local_ip))]) as u32,
        };
        for i in 0..n {
            let port = lo + ((offset.wrapping_add(self.port_counter).wrapping_add(i)) % n) as u16;
            let usage = self.ports.get(&port).copied().unwrap_or_default();
            let free = match remote {
                Some(r) => {
                    usage.exclusive == 0
                        && !self.conns.contains_key(&ConnKey {
                            local: SocketAddrV4::new(local_ip, port),
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

    /// Binds to a local address; port 0 picks an ephemeral port (bind(2)).
    ///
    /// # Errors
    /// `BadHandle`, `InvalidState` if already bound, `AddrInUse` if another socket holds
    /// the port (unless both allow reuse and none listens), `NoPortsAvailable`.
    pub fn bind(&mut self, h: TcpHandle, addr: SocketAddrV4) -> Result<(), BindError> {
        let s = self.user_sock(h).ok_or(BindError::BadHandle)?;
        if s.port_claim.is_some() || s.state != TcpState::Closed {
            return Err(BindError::InvalidState);
        }
        let reuse = s.opts.reuse_addr;
        let port = if addr.port() == 0 {
            self.pick_ephemeral(*addr.ip(), None)
                .ok_or(BindError::NoPortsAvailable)?
        } else {
            let usage = self.ports.get(&addr.port()).copied().unwrap_or_default();
            if usage.exclusive > 0 || (usage.all > 0 && !reuse) {
                return Err(BindError::AddrInUse);
            }
            addr.port()
        };
        self.claim_port(port, true);
        let s = self.sock_mut(h).ok_or(BindError::BadHandle)?;
        s.local = SocketAddrV4::new(*addr.ip(), port);
        s.port_claim = Some((port, true));
        Ok(())
    }

    /// Binds (if needed) and listens with a backlog bounding both the SYN queue and the
    /// accept queue (listen(2)).
    ///
    /// # Errors
    /// `BadHandle`, `InvalidState` when connected, `AddrInUse` when another socket
    /// listens on the port, `NoPortsAvailable`.
    pub fn listen(
        &mut self,
        h: TcpHandle,
        addr: SocketAddrV4,
        backlog: usize,
    ) -> Result<(), ListenError> {
        let s = self.user_sock(h).ok_or(ListenError::BadHandle)?;
        let backlog = backlog.clamp(1, self.config.max_backlog.max(1));
        match s.state {
            TcpState::Listen => {
                // listen(2) again only updates the backlog.
                if let Some(l) = self.sock_mut(h).and_then(|s| s.listener.as_mut()) {
                    l.backlog = backlog;
                }
                return Ok(());
            }
            TcpState::Closed => {}
            _ => return Err(ListenError::InvalidState),
        }
        if s.port_claim.is_none() {
            self.bind(h, addr).map_err(|e| match e {
                BindError::BadHandle => ListenError::BadHandle,
                BindError::InvalidState => ListenError::InvalidState,
                BindError::AddrInUse => ListenError::AddrInUse,
                BindError::NoPortsAvailable => ListenError::NoPortsAvailable,
            })?;
        }
        let port = self
            .user_sock(h)
            .ok_or(ListenError::BadHandle)?
            .local
            .port();
        if self.listeners.contains_key(&port) {
            return Err(ListenError::AddrInUse);
        }
        self.listeners.insert(port, h.index);
        if let Some((s, _, ev)) = self.user_parts(h) {
            s.listener = Some(Listener {
                backlog,
                ..Listener::default()
            });
            s.set_state(ev, TcpState::Listen);
        }
        Ok(())
    }

    /// Takes an established connection from the accept queue (accept(2)).
    ///
    /// # Errors
    /// `BadHandle`, `NotListening`, `WouldBlock` when the queue is empty.
    pub fn accept(&mut self, h: TcpHandle) -> Result<(TcpHandle, SocketAddrV4), AcceptError> {
        let s = self.user_sock_mut(h).ok_or(AcceptError::BadHandle)?;
        let l = s.listener.as_mut().ok_or(AcceptError::NotListening)?;
        let child = l.accept_queue.pop_front().ok_or(AcceptError::WouldBlock)?;
        let c = self.sock_mut(child).ok_or(AcceptError::WouldBlock)?;
        c.parent = None;
        c.in_accept_queue = false;
        Ok((child, c.remote))
    }

    /// Opens a connection to `remote` (connect(2)); the SYN goes out on the next
    /// dispatch. An unbound socket gets `cx.local_addr` and an RFC 6056 ephemeral port.
    ///
    /// # Errors
    /// `BadHandle`, `IsConnected`, `InProgress`, `InvalidState` for a listener,
    /// `Unaddressable` for port 0 or a non-unicast address, `AddrInUse`,
    /// `NoPortsAvailable`.
    pub fn connect(
        &mut self,
        h: TcpHandle,
        cx: &TcpContext,
        remote: SocketAddrV4,
    ) -> Result<(), ConnectError> {
        let s = self.user_sock(h).ok_or(ConnectError::BadHandle)?;
        match s.state {
            TcpState::Closed => {}
            TcpState::Listen => return Err(ConnectError::InvalidState),
            TcpState::SynSent | TcpState::SynReceived => return Err(ConnectError::InProgress),
            _ => return Err(ConnectError::IsConnected),
        }
        let rip = *remote.ip();
        if remote.port() == 0 || rip.is_unspecified() || rip.is_broadcast() || rip.is_multicast() {
            return Err(ConnectError::Unaddressable);
        }
        let local_ip = if s.local.ip().is_unspecified() {
            cx.local_addr
        } else {
            *s.local.ip()
        };
        let local = match s.port_claim {
            Some((port, _)) => {
                let local = SocketAddrV4::new(local_ip, port);
                if self.conns.contains_key(&ConnKey { local, remote }) {
                    return Err(ConnectError::AddrInUse);
                }
                local
            }
            None => {
                let port = self
                    .pick_ephemeral(local_ip, Some(remote))
                    .ok_or(ConnectError::NoPortsAvailable)?;
                self.claim_port(port, false);
                if let Some(s) = self.sock_mut(h) {
                    s.port_claim = Some((port, false));
                }
                SocketAddrV4::new(local_ip, port)
            }
        };
        let key = ConnKey { local, remote };
        let iss = self.isn_for(key, cx.now);
        let ts_offset = self.ts_offset_for(key);
        let idx = h.index;
        {
            let cfg = &self.config;
            let ev = &mut self.events;
            let s = self.slots[idx as usize]
                .sock
                .as_deref_mut()
                .ok_or(ConnectError::BadHandle)?;
            s.local = local;
            s.remote = remote;
            s.ts_offset = ts_offset;
            s.in_conns = true;
            s.connect(cx, cfg, ev, iss);
        }
        self.conns.insert(key, idx);
        self.settle(idx, TcpState::Closed, true);
        self.tidy_timers();
        Ok(())
    }

    /// Queues data to send; returns how many bytes were taken (send(2)).
    ///
    /// # Errors
    /// `BadHandle`; `NotConnected` before connect; `WouldBlock` while the handshake is
    /// in progress or the buffer is full; `Closed` after shutdown(write); the stored
    /// connection error (`Reset`, `TimedOut`, ...) once, then `Closed`.
    pub fn send(&mut self, h: TcpHandle, data: &[u8]) -> Result<usize, SendError> {
        let s = self.user_sock_mut(h).ok_or(SendError::BadHandle)?;
        if let Some(e) = s.error.take() {
            return Err(e.into());
        }
        if s.shut_wr {
            return Err(SendError::Closed);
        }
        match s.state {
            TcpState::Established | TcpState::CloseWait => {}
            TcpState::SynSent | TcpState::SynReceived => return Err(SendError::WouldBlock),
            TcpState::Closed if s.in_conns || s.snd_max != s.iss => return Err(SendError::Closed),
            TcpState::Closed | TcpState::Listen => return Err(SendError::NotConnected),
            _ => return Err(SendError::Closed),
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = s.enqueue(data);
        if n == 0 {
            return Err(SendError::WouldBlock);
        }
        self.mark_dirty(h.index);
        Ok(n)
    }

    /// Reads received data; `Ok(0)` means end of stream after the peer's FIN (recv(2)).
    ///
    /// # Errors
    /// `BadHandle`, `NotConnected`, `WouldBlock` when nothing is ready, or the stored
    /// connection error (reported once).
    pub fn recv(&mut self, h: TcpHandle, buf: &mut [u8]) -> Result<usize, RecvError> {
        let s = self.user_sock_mut(h).ok_or(RecvError::BadHandle)?;
        if !s.rx.is_empty() && !buf.is_empty() {
            let n = s.rx.dequeue_slice(buf);
            s.on_app_read();
            let prev = s.state;
            self.settle(h.index, prev, true);
            self.tidy_timers();
            return Ok(n);
        }
        Self::recv_empty(s, buf.is_empty())
    }

    fn recv_empty(s: &mut Socket, empty_buf: bool) -> Result<usize, RecvError> {
        if let Some(e) = s.error.take() {
            return Err(e.into());
        }
        if s.fin_received || s.shut_rd || empty_buf {
            return Ok(0);
        }
        match s.state {
            TcpState::Closed if s.snd_max != s.iss || s.in_conns => Ok(0),
            TcpState::Closed | TcpState::Listen => Err(RecvError::NotConnected),
            _ => Err(RecvError::WouldBlock),
        }
    }

    /// Copies received data without consuming it (MSG_PEEK).
    ///
    /// # Errors
    /// As [`recv`](Self::recv), except that a stored error is not consumed.
    pub fn peek(&self, h: TcpHandle, buf: &mut [u8]) -> Result<usize, RecvError> {
        let s = self.user_sock(h).ok_or(RecvError::BadHandle)?;
        if !s.rx.is_empty() {
            return Ok(s.rx.read_allocated(0, buf));
        }
        if let Some(e) = s.error {
            return Err(e.into());
        }
        if s.fin_received || s.shut_rd || buf.is_empty() {
            return Ok(0);
        }
        match s.state {
            TcpState::Closed | TcpState::Listen => Err(RecvError::NotConnected),
            _ => Err(RecvError::WouldBlock),
        }
    }

    /// Shuts down reading, writing or both (shutdown(2)); writing sends a FIN after the
    /// queued data.
    ///
    /// # Errors
    /// `BadHandle`, `NotConnected` when not connected.
    pub fn shutdown(&mut self, h: TcpHandle, how: Shutdown) -> Result<(), ShutdownError> {
        let (s, _, ev) = self.user_parts(h).ok_or(ShutdownError::BadHandle)?;
        if matches!(s.state, TcpState::Closed) {
            return Err(ShutdownError::NotConnected);
        }
        let prev = s.state;
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            s.shut_rd = true;
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            s.shutdown_write(ev);
        }
        self.settle(h.index, prev, true);
        self.tidy_timers();
        Ok(())
    }

    /// Closes the socket (close(2)): graceful FIN, or RST when unread data remains
    /// (RFC 9293 §3.10.4, Linux) or linger is zero. The handle becomes invalid; the
    /// connection lives on in the layer until CLOSED (TIME-WAIT included); an orphan's
    /// FIN-WAIT-2 timeout starts at `cx.now`.
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn close(&mut self, h: TcpHandle, cx: &TcpContext) -> Result<(), CloseError> {
        let now = cx.now;
        let (s, cfg, ev) = self.user_parts(h).ok_or(CloseError::BadHandle)?;
        let unread = !s.rx.is_empty();
        let linger0 = s.opts.linger == Some(Duration::ZERO);
        let prev = s.state;
        match prev {
            TcpState::Closed | TcpState::Listen | TcpState::SynSent => {
                self.abort_handle(h);
                return Ok(());
            }
            _ if unread || linger0 => {
                self.abort_handle(h);
                return Ok(());
            }
            _ => {}
        }
        s.close_graceful(now, cfg, ev);
        self.settle(h.index, prev, true);
        self.tidy_timers();
        Ok(())
    }

    /// Aborts the connection: RST if synchronized, then the socket is freed.
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn abort(&mut self, h: TcpHandle) -> Result<(), CloseError> {
        self.user_sock(h).ok_or(CloseError::BadHandle)?;
        self.abort_handle(h);
        self.tidy_timers();
        Ok(())
    }

    /// The connection state, or `None` for a bad handle.
    pub fn state(&self, h: TcpHandle) -> Option<TcpState> {
        self.user_sock(h).map(|s| s.state)
    }

    /// True when `recv` would return data, EOF or an error without blocking (POLLIN).
    pub fn can_recv(&self, h: TcpHandle) -> bool {
        self.user_sock(h).is_some_and(|s| {
            !s.rx.is_empty()
                || s.fin_received
                || s.error.is_some()
                || (s
                    .listener
                    .as_ref()
                    .is_some_and(|l| !l.accept_queue.is_empty()))
        })
    }

    /// True when `send` would accept bytes (POLLOUT).
    pub fn can_send(&self, h: TcpHandle) -> bool {
        self.user_sock(h).is_some_and(|s| {
            matches!(s.state, TcpState::Established | TcpState::CloseWait)
                && !s.shut_wr
                && s.tx.window() > 0
        })
    }

    /// Bytes `send` would accept now: free space in the send buffer, 0 when sending is
    /// not possible (SO_SNDBUF minus SIOCOUTQ).
    pub fn send_space(&self, h: TcpHandle) -> usize {
        if self.can_send(h) {
            self.user_sock(h).map_or(0, |s| s.tx.window())
        } else {
            0
        }
    }

    /// True when all data was read and the peer sent FIN (recv would return 0).
    pub fn is_readable_eof(&self, h: TcpHandle) -> bool {
        self.user_sock(h)
            .is_some_and(|s| s.rx.is_empty() && s.fin_received)
    }

    /// Takes the pending error, terminal or soft (SO_ERROR).
    pub fn take_error(&mut self, h: TcpHandle) -> Option<TcpError> {
        let s = self.user_sock_mut(h)?;
        s.error.take().or_else(|| s.soft_error.take())
    }

    /// The local address (getsockname(2)).
    pub fn local_addr(&self, h: TcpHandle) -> Option<SocketAddrV4> {
        self.user_sock(h)
            .filter(|s| s.port_claim.is_some())
            .map(|s| s.local)
    }

    /// The remote address (getpeername(2)).
    pub fn peer_addr(&self, h: TcpHandle) -> Option<SocketAddrV4> {
        self.user_sock(h)
            .filter(|s| s.remote.port() != 0)
            .map(|s| s.remote)
    }

    /// A TCP_INFO-like snapshot.
    pub fn info(&self, h: TcpHandle) -> Option<TcpInfo> {
        self.user_sock(h).map(|s| s.info())
    }

    /// A diagnostic snapshot of any socket of the layer, including ones the user closed
    /// that are still finishing (FIN-WAIT, TIME-WAIT) and connections still in a listen
    /// queue (`ss -tai` shows those too).
    pub fn socket_info(&self, h: TcpHandle) -> Option<TcpSocketInfo> {
        self.sock(h).map(Self::diag)
    }

    /// Every socket of the layer, as [`socket_info`](Self::socket_info), in slab order.
    pub fn sockets(&self) -> impl Iterator<Item = TcpSocketInfo> + '_ {
        self.slots
            .iter()
            .filter_map(|slot| slot.sock.as_deref())
            .map(Self::diag)
    }

    fn diag(s: &Socket) -> TcpSocketInfo {
        TcpSocketInfo {
            handle: s.handle,
            local: s.local,
            remote: s.remote,
            orphaned: s.user_closed,
            info: s.info(),
        }
    }

    fn with_opts(
        &mut self,
        h: TcpHandle,
        f: impl FnOnce(&mut Socket) -> Result<(), OptionError>,
    ) -> Result<(), OptionError> {
        let s = self.user_sock_mut(h).ok_or(OptionError::BadHandle)?;
        f(s)?;
        let prev = s.state;
        self.settle(h.index, prev, true);
        self.tidy_timers();
        Ok(())
    }

    /// Disables Nagle's algorithm (TCP_NODELAY).
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn set_nodelay(&mut self, h: TcpHandle, nodelay: bool) -> Result<(), OptionError> {
        self.with_opts(h, |s| {
            s.opts.nodelay = nodelay;
            Ok(())
        })
    }

    /// TCP_NODELAY.
    pub fn nodelay(&self, h: TcpHandle) -> Option<bool> {
        self.user_sock(h).map(|s| s.opts.nodelay)
    }

    /// Enables keepalive probes (SO_KEEPALIVE).
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn set_keepalive(
        &mut self,
        h: TcpHandle,
        cx: &TcpContext,
        on: bool,
    ) -> Result<(), OptionError> {
        self.with_opts(h, |s| {
            s.opts.keepalive = on;
            s.set_keepalive_timer(cx.now);
            Ok(())
        })
    }

    /// Keepalive idle time, probe interval and probe count (TCP_KEEPIDLE/INTVL/CNT).
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn set_keepalive_params(
        &mut self,
        h: TcpHandle,
        idle: Duration,
        interval: Duration,
        count: u32,
    ) -> Result<(), OptionError> {
        self.with_opts(h, |s| {
            s.opts.keep_idle = idle;
            s.opts.keep_intvl = interval;
            s.opts.keep_cnt = count;
            Ok(())
        })
    }

    /// Receive buffer size (SO_RCVBUF); only before the connection starts.
    ///
    /// # Errors
    /// `BadHandle`, `InvalidState` once connecting.
    pub fn set_recv_buffer_size(&mut self, h: TcpHandle, len: usize) -> Result<(), OptionError> {
        self.with_opts(h, |s| {
            if !matches!(s.state, TcpState::Closed | TcpState::Listen) {
                return Err(OptionError::InvalidState);
            }
            s.opts.rx_buffer_len = len.max(1);
            Ok(())
        })
    }

    /// Send buffer size (SO_SNDBUF); only before the connection starts.
    ///
    /// # Errors
    /// `BadHandle`, `InvalidState` once connecting.
    pub fn set_send_buffer_size(&mut self, h: TcpHandle, len: usize) -> Result<(), OptionError> {
        self.with_opts(h, |s| {
            if !matches!(s.state, TcpState::Closed | TcpState::Listen) {
                return Err(OptionError::InvalidState);
            }
            s.opts.tx_buffer_len = len.max(1);
            Ok(())
        })
    }

    /// Congestion control algorithm (TCP_CONGESTION); only before the connection starts.
    ///
    /// # Errors
    /// `BadHandle`, `InvalidState` once connecting.
    pub fn set_congestion(
        &mut self,
        h: TcpHandle,
        alg: CongestionAlgorithm,
    ) -> Result<(), OptionError> {
        self.with_opts(h, |s| {
            if !matches!(s.state, TcpState::Closed | TcpState::Listen) {
                return Err(OptionError::InvalidState);
            }
            s.opts.congestion = alg;
            Ok(())
        })
    }

    /// SO_LINGER: `Some(ZERO)` makes close() abort with RST; other values are recorded
    /// for the blocking socket layer.
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn set_linger(
        &mut self,
        h: TcpHandle,
        linger: Option<Duration>,
    ) -> Result<(), OptionError> {
        self.with_opts(h, |s| {
            s.opts.linger = linger;
            Ok(())
        })
    }

    /// SO_LINGER as set.
    pub fn linger(&self, h: TcpHandle) -> Option<Option<Duration>> {
        self.user_sock(h).map(|s| s.opts.linger)
    }

    /// SO_REUSEADDR: bind may share a port with connections (not with a listener).
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn set_reuse_addr(&mut self, h: TcpHandle, on: bool) -> Result<(), OptionError> {
        self.with_opts(h, |s| {
            s.opts.reuse_addr = on;
            Ok(())
        })
    }

    /// Test hook: fixes the ISN of every new connection and zeroes timestamp offsets.
    #[cfg(test)]
    pub(crate) fn set_fixed_isn(&mut self, isn: Option<SeqNumber>) {
        self.fixed_isn = isn;
    }

    #[cfg(test)]
    pub(crate) fn socket_ref(&self, h: TcpHandle) -> Option<&Socket> {
        self.sock(h)
    }

    /// Test hook: the handle of the connection with this 4-tuple.
    #[cfg(test)]
    pub(crate) fn conn_handle(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
    ) -> Option<TcpHandle> {
        let idx = *self.conns.get(&ConnKey { local, remote })?;
        self.slots[idx as usize].sock.as_ref().map(|s| s.handle)
    }
}

/// RFC 6191 §2: may a SYN reopen this TIME-WAIT connection?
fn time_wait_accepts_syn(s: &Socket, seg: &TcpRepr<'_>) -> bool {
    match (s.ts_ok_pub(), seg.options.timestamp) {
        (true, Some((tsval, _))) => (tsval.wrapping_sub(s.ts_recent_pub()) as i32) > 0,
        (true, None) => false,
        (false, _) => seg.seq_number > s.rcv_nxt,
    }
}

/// The reply of a CLOSED port (RFC 9293 §3.10.7.1): nothing to a RST; to a segment with
/// ACK, `<SEQ=SEG.ACK><CTL=RST>`; otherwise `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`.
pub fn closed_port_reply(
    addrs: SegmentAddrs,
    seg: &TcpRepr<'_>,
) -> Option<(SegmentAddrs, TcpRepr<'static>)> {
    if seg.flags.rst() {
        return None;
    }
    let (seq_number, ack_number, flags) = if seg.flags.ack() {
        (seg.ack_number, SeqNumber(0), TcpFlags::RST)
    } else {
        (
            SeqNumber(0),
            seg.seq_number + seg.segment_len(),
            TcpFlags::RST | TcpFlags::ACK,
        )
    };
    let reply = TcpRepr {
        src_port: seg.dst_port,
        dst_port: seg.src_port,
        seq_number,
        ack_number,
        flags,
        window_len: 0,
        urgent_ptr: 0,
        options: TcpOptions::default(),
        payload: &[],
    };
    Some((addrs.reversed(), reply))
}
