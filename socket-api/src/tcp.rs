//! TCP in the BSD layer.
//!
//! STUB: the engine's TCP (`stack/src/socket/tcp/`, a `TcpLayer` with socket, bind,
//! listen, accept, connect, send, recv, shutdown, close, readiness queries and
//! TCP_INFO) is being written on branch `tcp`; until it lands, `socket(AF_INET,
//! SOCK_STREAM, 0)` fails with EOPNOTSUPP and no TCP descriptor can exist. [`TcpSock`]
//! is uninhabited so every TCP branch of the BSD layer is already in place and
//! type-checked.

use crate::driver::State;
use crate::errno::Errno;
use crate::poll::PollEvents;
use std::time::Duration;
use ustack::iface::Interface;

/// The engine side of a TCP descriptor (none can exist yet).
#[derive(Debug)]
pub(crate) enum TcpSock {}

/// What `getsockopt(TCP_INFO)` reports, after Linux's `struct tcp_info` (tcp(7)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpInfo {
    /// The RFC 9293 state name (`"ESTABLISHED"`, ...).
    pub state: &'static str,
    /// Current retransmission timeout.
    pub rto: Duration,
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Round-trip time variation.
    pub rttvar: Duration,
    /// Maximum segment size we send.
    pub snd_mss: u32,
    /// Maximum segment size we receive.
    pub rcv_mss: u32,
    /// Congestion window, in segments.
    pub snd_cwnd: u32,
    /// Slow-start threshold, in segments.
    pub snd_ssthresh: u32,
    /// Segments sent and not yet acknowledged.
    pub unacked: u32,
    /// Consecutive retransmissions of the oldest unacknowledged segment.
    pub retransmits: u32,
    /// Retransmitted segments over the connection's life.
    pub total_retrans: u32,
}

/// Opens a TCP socket.
pub(crate) fn socket(_st: &mut State) -> Result<TcpSock, Errno> {
    log::debug!(target: "ustack::socket", "TCP not available yet (engine stub)");
    Err(Errno::EOPNOTSUPP)
}

/// Readiness of a TCP socket.
pub(crate) fn readiness(
    _iface: &mut Interface,
    t: &TcpSock,
    _shut_rd: bool,
    _shut_wr: bool,
) -> PollEvents {
    match *t {}
}

/// Closes a TCP socket (graceful, or abortive with a zero SO_LINGER).
pub(crate) fn close(_st: &mut State, t: TcpSock, _linger: Option<Duration>) {
    match t {}
}
