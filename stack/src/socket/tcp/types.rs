//! The public vocabulary of TCP: handles, states, per-operation errors, events,
//! TCP_INFO-like snapshots, counters, and the addresses a segment is exchanged with.
//!
//! Invariants: a [`TcpHandle`] is a generation-checked slab key, so a handle kept after
//! `close` never names the socket that reuses its slot; every error enum has a
//! `BadHandle` variant for that case; events describe changes only and carry no action.

use super::congestion::CongestionAlgorithm;
use crate::storage::SlabKey;
use crate::time::Duration;
use crate::wire::SeqNumber;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::net::{IpAddr, SocketAddr};
use std::collections::VecDeque;

/// The addresses of a segment, the only IP information TCP exchanges with the interface:
/// arriving segments are demultiplexed by them, and the interface builds the IPv4 or
/// IPv6 header of every segment TCP sends around them, by their family (DF,
/// identification and flow label are its own; the TTL or hop limit and the traffic
/// class are the sending socket's when it set them). Both are of one family, and
/// never IPv4-mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SegmentAddrs {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// TTL or hop limit of a segment we send (IP_TTL, IPV6_UNICAST_HOPS); `None`: the
    /// interface's. Ignored on arriving segments.
    pub hop_limit: Option<u8>,
    /// IPv4 TOS or IPv6 traffic class of a segment we send (IP_TOS, IPV6_TCLASS), its
    /// ECN bits clear. Ignored on arriving segments.
    pub tclass: u8,
}

impl SegmentAddrs {
    /// Addresses with the interface's TTL and traffic class 0.
    pub fn new(src: IpAddr, dst: IpAddr) -> SegmentAddrs {
        SegmentAddrs {
            src,
            dst,
            hop_limit: None,
            tclass: 0,
        }
    }

    /// The addresses of a reply: source and destination swapped, the interface's TTL.
    pub fn reversed(self) -> SegmentAddrs {
        SegmentAddrs::new(self.dst, self.src)
    }
}

/// Identifies a TCP socket within its layer: a generation-checked slab key, so a stale
/// handle is detected rather than reaching the socket that reuses its slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TcpHandle(pub(super) SlabKey);

impl TcpHandle {
    /// The slab slot (what the layer's queues and timer heap store).
    pub(super) fn index(self) -> u32 {
        self.0.index()
    }
}

impl fmt::Display for TcpHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tcp#{}.{}", self.0.index(), self.0.generation())
    }
}

impl fmt::Debug for TcpHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
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

error_enum!(
    /// Errors of [`TcpLayer::bind`](super::TcpLayer::bind).
    BindError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
        /// The socket is already bound or in use (EINVAL).
        InvalidState => "socket already bound",
        /// The port is taken (EADDRINUSE).
        AddrInUse => "address in use",
        /// No free ephemeral port (EADDRINUSE, as Linux's bind and listen).
        NoPortsAvailable => "no ports available",
    }
);

error_enum!(
    /// Errors of [`TcpLayer::listen`](super::TcpLayer::listen).
    ListenError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
        /// The socket is connected or connecting (EINVAL).
        InvalidState => "socket is connected",
        /// The port is taken (EADDRINUSE).
        AddrInUse => "address in use",
        /// No free ephemeral port (EADDRINUSE, as Linux's bind and listen).
        NoPortsAvailable => "no ports available",
    }
);

error_enum!(
    /// Errors of [`TcpLayer::connect`](super::TcpLayer::connect).
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
    /// Errors of [`TcpLayer::accept`](super::TcpLayer::accept).
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
    /// Errors of [`TcpLayer::send`](super::TcpLayer::send).
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
    /// Errors of [`TcpLayer::recv`](super::TcpLayer::recv) and [`TcpLayer::peek`](super::TcpLayer::peek).
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
    /// Errors of [`TcpLayer::shutdown`](super::TcpLayer::shutdown).
    ShutdownError {
        /// The handle does not name an open socket (EBADF).
        BadHandle => "bad handle",
        /// Not connected (ENOTCONN).
        NotConnected => "not connected",
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

/// A structured TCP event, pulled with [`TcpLayer::poll_event`](super::TcpLayer::poll_event). Events describe
/// changes; acting on them is up to the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpEvent {
    /// A socket changed state.
    StateChanged {
        /// The socket.
        handle: TcpHandle,
        /// Local address.
        local: SocketAddr,
        /// Remote address (unspecified for listeners).
        remote: SocketAddr,
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
    /// The tail loss probe timer fired (RFC 8985 §7.3): a probe is about to go out.
    LossProbe {
        /// The socket.
        handle: TcpHandle,
        /// Sequence number the probe starts at.
        seq: SeqNumber,
        /// The probe carries new data (else it resends the last segment).
        new_data: bool,
    },
    /// A congestion-window reduction proved spurious and was undone (D-SACK per
    /// RFC 3708, or a spurious timeout per RFC 5682 / RFC 3522).
    CongestionUndone {
        /// The socket.
        handle: TcpHandle,
        /// Congestion window in bytes after the undo.
        cwnd: usize,
        /// Slow-start threshold in bytes after the undo.
        ssthresh: usize,
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
    /// Segments RACK marked lost (RFC 8985 §6.2; marks made by an RTO excluded).
    pub rack_lost: u64,
    /// Tail loss probes sent (RFC 8985 §7.3).
    pub tlp_probes: u64,
    /// Probes sent in fast recovery after 2·SRTT without an ACK (SND.UNA's segment
    /// resent; beyond RFC 8985, which sends no probe in recovery).
    pub recovery_probes: u64,
    /// Congestion-window reductions undone as spurious (D-SACK, F-RTO, Eifel).
    pub undos: u64,
    /// Retransmission timeouts found spurious (F-RTO, RFC 5682; Eifel, RFC 3522).
    pub spurious_rtos: u64,
    /// D-SACK blocks received (RFC 2883).
    pub dsacks_in: u64,
    /// D-SACK blocks sent (RFC 2883).
    pub dsacks_out: u64,
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

/// A diagnostic snapshot of one socket with its addresses ([`TcpLayer::sockets`](super::TcpLayer::sockets)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSocketInfo {
    /// The socket.
    pub handle: TcpHandle,
    /// Local address (port 0 before bind).
    pub local: SocketAddr,
    /// Remote address (unspecified for listeners).
    pub remote: SocketAddr,
    /// Closed by the user and finishing on its own (no longer reachable by handle).
    pub orphaned: bool,
    /// TCP_INFO-like state.
    pub info: TcpInfo,
}

/// Counters of the TCP layer (drops by reason and notable events).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpCounters {
    /// Segments handed to [`TcpLayer::process`](super::TcpLayer::process).
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
    /// SYN,ACKs sent with a SYN cookie because a SYN queue was full.
    pub syncookies_sent: u64,
    /// ACKs carrying a valid SYN cookie (each made a connection).
    pub syncookies_valid: u64,
    /// ACKs to a listener that recently sent cookies whose cookie did not validate.
    pub syncookies_invalid: u64,
    /// SYN-RECEIVED entries evicted, oldest first, from a full SYN queue.
    pub syn_recv_evicted: u64,
    /// Times an idle or closing connection gave its empty buffers' memory back.
    pub buffers_released: u64,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u64,
    /// Challenge ACKs suppressed by the rate limit.
    pub challenge_acks_limited: u64,
    /// Segments rejected by PAWS (RFC 7323 §5).
    pub paws_rejected: u64,
    /// TIME-WAIT connections reopened by a new SYN (RFC 6191).
    pub time_wait_reused: u64,
    /// Closed connections that entered TIME-WAIT and gave up their full socket for a
    /// compact entry (`time_wait`).
    pub time_wait_compacted: u64,
    /// Events dropped because the queue was full.
    pub events_dropped: u64,
    /// ICMP errors that matched no connection.
    pub icmp_unmatched: u64,
    /// ICMP errors for a connection quoting a sequence number not in flight (RFC 5927
    /// §4.1): ignored.
    pub icmp_rejected: u64,
    /// Out-of-order segments dropped: past the receive buffer or the per-connection
    /// limit of out-of-order ranges (`max_ooo_ranges`).
    pub ooo_dropped: u64,
}

/// Bounded queue of events; the oldest are dropped first.
#[derive(Debug)]
pub(crate) struct EventQueue {
    pub(super) queue: VecDeque<TcpEvent>,
    cap: usize,
    pub(super) dropped: u64,
}

impl EventQueue {
    pub(super) fn new(cap: usize) -> EventQueue {
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

/// The 4-tuple of a connection, from our point of view. IPv6 addresses in it carry no
/// flow label or scope id (`common::normalize`), so derived equality is address
/// equality.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ConnKey {
    pub(super) local: SocketAddr,
    pub(super) remote: SocketAddr,
}

impl Hash for ConnKey {
    /// Hashes the addresses' bytes and the ports only, as few words as the family
    /// needs: an IPv4 key costs what it did before IPv6 (two address words, one of
    /// ports), and the enum's layout (flow label, scope id, padding) stays out.
    fn hash<H: Hasher>(&self, h: &mut H) {
        match (self.local, self.remote) {
            (SocketAddr::V4(l), SocketAddr::V4(r)) => {
                h.write_u64((u64::from(l.ip().to_bits()) << 32) | u64::from(r.ip().to_bits()));
            }
            (l, r) => {
                h.write_u128(ip_bits(l.ip()));
                h.write_u128(ip_bits(r.ip()));
            }
        }
        h.write_u32((u32::from(self.local.port()) << 16) | u32::from(self.remote.port()));
    }
}

/// An address as 128 bits (IPv4 as IPv4-mapped), for hashing.
fn ip_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped().to_bits(),
        IpAddr::V6(a) => a.to_bits(),
    }
}

impl ConnKey {
    /// The addresses of a segment from us on this connection.
    pub(super) fn reply_addrs(self) -> SegmentAddrs {
        SegmentAddrs::new(self.local.ip(), self.remote.ip())
    }
}

/// Port table entry: how many sockets hold the port in each half of the port space
/// (index 0 IPv4, 1 IPv6; `common::port_halves`), and how many exclusively (explicit
/// bind or listen). A dual-stack socket counts in both halves.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct PortUse {
    pub(super) all: [u32; 2],
    pub(super) exclusive: [u32; 2],
}

impl PortUse {
    /// Whether an exclusive bind over `halves` conflicts: another exclusive holder, or
    /// (without SO_REUSEADDR) any holder in one of the halves.
    pub(super) fn conflicts(&self, halves: u8, reuse: bool) -> bool {
        crate::socket::common::each_half(halves).any(|h| {
            let i = usize::from(h >> 1);
            self.exclusive[i] > 0 || (self.all[i] > 0 && !reuse)
        })
    }

    /// Whether an exclusive holder sits in one of `halves`.
    pub(super) fn exclusive_in(&self, halves: u8) -> bool {
        crate::socket::common::each_half(halves).any(|h| self.exclusive[usize::from(h >> 1)] > 0)
    }

    /// Whether nobody holds the port in either half.
    pub(super) fn is_free(&self) -> bool {
        self.all == [0, 0]
    }
}
