//! Socket options (SO_*/TCP_* set through the layer's API, inherited by accepted
//! connections), the buffer sizes and window scale they imply, and the TCP options
//! negotiated on the SYN (MSS, window scale, timestamps, SACK permitted; RFC 9293
//! §3.7.1, RFC 7323, RFC 2018).

use super::{Socket, DEFAULT_MSS, MAX_WSCALE, MIN_MSS};
use crate::socket::tcp::config::{TcpConfig, TcpContext};
use crate::socket::tcp::congestion::CongestionAlgorithm;
use crate::socket::tcp::types::TcpState;
use crate::storage::RingBuffer;
use crate::time::{Duration, Instant};
use crate::wire::TcpRepr;

/// Per-socket options, inherited by connections accepted from a listener.
#[derive(Clone, Debug)]
pub(crate) struct SocketOptions {
    pub nodelay: bool,
    /// TCP_CORK: hold partial segments until uncorked, a full segment, the FIN, or the
    /// cork ceiling.
    pub cork: bool,
    pub keepalive: bool,
    pub keep_idle: Duration,
    pub keep_intvl: Duration,
    pub keep_cnt: u32,
    pub rx_buffer_len: usize,
    pub tx_buffer_len: usize,
    /// Autotuning bounds; equal to the buffer length when off (SO_RCVBUF/SO_SNDBUF set,
    /// as Linux's SOCK_RCVBUF_LOCK/SOCK_SNDBUF_LOCK).
    pub rx_buffer_max: usize,
    pub tx_buffer_max: usize,
    pub congestion: CongestionAlgorithm,
    pub linger: Option<Duration>,
    pub reuse_addr: bool,
    /// IPV6_V6ONLY: a socket bound to `::` hears IPv6 only (not IPv4 too).
    pub v6only: bool,
    /// IP_TTL / IPV6_UNICAST_HOPS; `None`: the interface's.
    pub hop_limit: Option<u8>,
    /// IP_TOS / IPV6_TCLASS, ECN bits clear.
    pub tclass: u8,
}

impl SocketOptions {
    pub(crate) fn from_config(cfg: &TcpConfig) -> SocketOptions {
        SocketOptions {
            nodelay: cfg.nodelay,
            cork: false,
            keepalive: false,
            keep_idle: cfg.keepalive_idle,
            keep_intvl: cfg.keepalive_interval,
            keep_cnt: cfg.keepalive_count,
            rx_buffer_len: cfg.rx_buffer_len,
            tx_buffer_len: cfg.tx_buffer_len,
            rx_buffer_max: cfg.rx_buffer_max.max(cfg.rx_buffer_len),
            tx_buffer_max: cfg.tx_buffer_max.max(cfg.tx_buffer_len),
            congestion: cfg.congestion,
            linger: None,
            reuse_addr: false,
            v6only: false,
            hop_limit: None,
            tclass: 0,
        }
    }
}

/// The window scale that lets a receive buffer of `len` bytes be announced (RFC 7323
/// §2.2: the shift makes the buffer fit into the 16-bit field).
pub(crate) fn wscale_for(len: usize) -> u8 {
    let mut shift = 0;
    while shift < MAX_WSCALE && (65_535usize << shift) < len {
        shift += 1;
    }
    shift
}

impl SocketOptions {
    /// The receive buffer size the window scale must cover: the autotuning maximum
    /// (Linux tcp_select_initial_window scales for tcp_rmem\[2\] too), or the fixed
    /// size when autotuning is off.
    pub(crate) fn rx_scale_len(&self) -> usize {
        self.rx_buffer_max.max(self.rx_buffer_len)
    }
}

impl Socket {
    /// MSG_MORE for the data about to be queued (see `TcpLayer::send_more`).
    pub(crate) fn set_more(&mut self, more: bool) {
        self.more = more;
    }

    /// TCP_CORK; uncorking pushes a waiting partial segment past Nagle once, as
    /// Linux's TCP_NAGLE_PUSH.
    pub(crate) fn set_cork(&mut self, cork: bool) {
        if self.opts.cork && !cork && self.snd_buf_end > self.snd_nxt {
            self.force_send = true;
        }
        self.opts.cork = cork;
    }

    /// Empty send and receive buffers of the sizes the options ask for (reused when the
    /// size did not change), and the window scale that lets the receive buffer be
    /// announced.
    pub(super) fn size_buffers(&mut self) {
        if self.rx.capacity() != self.opts.rx_buffer_len {
            self.rx = RingBuffer::new(self.opts.rx_buffer_len);
        }
        if self.tx.capacity() != self.opts.tx_buffer_len {
            self.tx = RingBuffer::new(self.opts.tx_buffer_len);
        }
        self.tx.dequeue_allocated(self.tx.len());
        self.rx.dequeue_allocated(self.rx.len());
        // Per RFC 7323 §2.2: the shift makes our buffer fit into the 16-bit field.
        self.rcv_wscale = if self.offer_ws {
            wscale_for(self.opts.rx_scale_len())
        } else {
            0
        };
    }

    /// Applies the options of the peer's SYN (RFC 9293 §3.7.1, RFC 7323, RFC 2018).
    pub(super) fn negotiate(&mut self, cx: &TcpContext, seg: &TcpRepr<'_>) {
        self.peer_mss = seg
            .options
            .mss
            .map_or(super::default_mss(self.remote.ip()), usize::from)
            .max(MIN_MSS);
        self.ws_ok = self.offer_ws && seg.options.window_scale.is_some();
        if self.ws_ok {
            self.snd_wscale = seg.options.window_scale.unwrap_or(0).min(MAX_WSCALE);
        } else {
            self.snd_wscale = 0;
            self.rcv_wscale = 0;
        }
        self.sack_ok = self.offer_sack && seg.options.sack_permitted;
        self.ts_ok = self.offer_ts && seg.options.timestamp.is_some();
        if let (true, Some((tsval, _))) = (self.ts_ok, seg.options.timestamp) {
            self.ts_recent = tsval;
            self.ts_recent_age = cx.now;
        }
        // Linux tcp_initialize_rcv_mss: a conservative guess, grown by observation.
        self.rcv_mss = self
            .our_mss
            .min(self.send_mss())
            .clamp(MIN_MSS, DEFAULT_MSS);
        let mss = self.send_mss();
        self.renew_cc(mss, true);
    }

    /// (Re)arms or clears the keepalive timer after the option changed.
    pub(crate) fn set_keepalive_timer(&mut self, now: Instant) {
        let at = (self.opts.keepalive
            && matches!(
                self.state,
                TcpState::Established | TcpState::CloseWait | TcpState::FinWait2
            ))
        .then(|| now + self.opts.keep_idle);
        self.timers_changed |= self.keepalive_at != at;
        self.keepalive_at = at;
    }
}
