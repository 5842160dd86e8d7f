//! The layer's tunables ([`TcpConfig`]) and what the interface passes on every call
//! ([`TcpContext`]): the caller's time, our addresses and the MTU. The layer keeps no clock
//! of its own; every call that needs the time takes a context.

use super::congestion::CongestionAlgorithm;
use crate::socket::common::LocalAddrs;
use crate::time::{Duration, Instant};
use core::net::IpAddr;

/// TCP tunables shared by every socket of a layer (per-socket overrides live on sockets).
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// Default receive buffer per connection in bytes (SO_RCVBUF).
    pub rx_buffer_len: usize,
    /// Default send buffer per connection in bytes (SO_SNDBUF).
    pub tx_buffer_len: usize,
    /// Most a connection's receive buffer may grow to by autotuning (Linux
    /// tcp_rmem\[2\]); the window scale is chosen from it. At most `rx_buffer_len`
    /// turns receive autotuning off; so does an explicit SO_RCVBUF on the socket.
    pub rx_buffer_max: usize,
    /// Most a connection's send buffer may grow to by autotuning (Linux
    /// tcp_wmem\[2\]). At most `tx_buffer_len` turns send autotuning off; so does an
    /// explicit SO_SNDBUF on the socket.
    pub tx_buffer_max: usize,
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
    /// Report duplicate segments as D-SACK blocks (RFC 2883; Linux `tcp_dsack`).
    pub dsack: bool,
    /// Answer in-sequence out-of-order segments past the third duplicate ACK with one
    /// ACK when a short timer fires or after 44 of them (SACK compression, as Linux's
    /// `tcp_comp_sack_nr`), not one each.
    pub sack_compression: bool,
    /// Longest a compressed SACK waits (Linux `tcp_comp_sack_delay_ns`, 1 ms); the
    /// timer is the smaller of this and RTT/20, plus 100 µs of slack. Zero: no timer,
    /// one ACK per batch of arriving frames (at the next dispatch).
    pub sack_compression_delay: Duration,
    /// Default congestion control algorithm.
    pub congestion: CongestionAlgorithm,
    /// Default for TCP_NODELAY.
    pub nodelay: bool,
    /// Upper bound of a listen backlog (Linux somaxconn). A listener's SYN queue and
    /// accept queue each hold at most its backlog.
    pub max_backlog: usize,
    /// Answer SYNs with SYN cookies (RFC 4987 §3.6) when a listener's SYN queue is full
    /// (Linux tcp_syncookies=1); off: such SYNs are dropped (`listen_overflows`).
    pub syncookies: bool,
    /// SYN,ACK retransmissions after which the oldest SYN-RECEIVED entry of a full SYN
    /// queue is evicted to make room for a new SYN (`syn_recv_evicted`); the limit
    /// `synack_retries` applies otherwise. Linux prunes young and old entries alike.
    pub synack_retries_under_pressure: u32,
    /// Most out-of-order ranges held per connection (16 bytes each, allocated as
    /// holes appear). Enough for an autotuned multi-megabyte window at 10 % loss: a
    /// segment that would need more is dropped, and the sender must resend it.
    pub max_ooo_ranges: usize,
    /// Challenge ACKs allowed per second per layer (Linux tcp_challenge_ack_limit).
    pub challenge_ack_limit: u32,
    /// Least time between ACKs answering bare out-of-window segments, per connection
    /// (Linux tcp_invalid_ratelimit).
    pub invalid_ack_ratelimit: Duration,
    /// Most events kept for [`TcpLayer::poll_event`](super::TcpLayer::poll_event).
    pub event_queue_len: usize,
    /// How long an orphaned connection may stay in FIN-WAIT-2 (Linux tcp_fin_timeout).
    pub fin_wait2_timeout: Duration,
    /// How long a connection's empty send or receive buffer keeps its storage while no
    /// segment moves before the memory is given back (buffers grow again on demand).
    pub idle_buffer_release: Duration,
    /// Ephemeral port range (inclusive).
    pub ephemeral_ports: (u16, u16),
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            rx_buffer_len: 131_072,
            tx_buffer_len: 131_072,
            rx_buffer_max: 6 << 20,
            tx_buffer_max: 4 << 20,
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
            dsack: true,
            sack_compression: true,
            sack_compression_delay: Duration::from_millis(1),
            congestion: CongestionAlgorithm::Cubic,
            nodelay: false,
            max_backlog: 4096,
            syncookies: true,
            synack_retries_under_pressure: 1,
            max_ooo_ranges: 1024,
            challenge_ack_limit: 1000,
            invalid_ack_ratelimit: Duration::from_millis(500),
            event_queue_len: 1024,
            fin_wait2_timeout: Duration::from_secs(60),
            idle_buffer_release: Duration::from_secs(1),
            ephemeral_ports: (32768, 60999),
        }
    }
}

/// What the interface tells the TCP layer on each call.
#[derive(Clone, Copy, Debug)]
pub struct TcpContext {
    /// The current time.
    pub now: Instant,
    /// The interface's addresses: the source of an unbound socket's connection.
    pub local: LocalAddrs,
    /// The IP MTU (the largest IP packet, header included, sent without fragmenting),
    /// of both families: the MSS is derived from it by family (MTU − 40 for IPv4,
    /// MTU − 60 for IPv6).
    pub mtu: usize,
    /// The IPv6 link MTU: `mtu`, or less when a router advertisement's MTU option
    /// lowered it (RFC 4861 §6.3.4). Connections to IPv6 peers take their MSS from it.
    pub mtu6: usize,
}

impl TcpContext {
    /// The IP MTU towards `peer`'s family: [`mtu`](Self::mtu) for IPv4,
    /// [`mtu6`](Self::mtu6) for IPv6.
    pub fn mtu_for(&self, peer: IpAddr) -> usize {
        match peer {
            IpAddr::V4(_) => self.mtu,
            IpAddr::V6(_) => self.mtu6,
        }
    }
}
