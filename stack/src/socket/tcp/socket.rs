//! One TCP connection: the RFC 9293 state machine with its send and receive sequence
//! spaces, retransmission, flow control and loss recovery.
//!
//! The layer ([`super::TcpLayer`]) owns sockets, demultiplexes segments to them and
//! keeps their deadlines in its timer heap; a socket only ever looks at itself.
//!
//! Invariants:
//! - `snd_una <= snd_nxt <= snd_max <= snd_buf_end (+1 for SYN/FIN)`: `snd_nxt` is the
//!   next byte to send and goes back to `snd_una` after an RTO (go-back-N); `snd_max` is
//!   the highest sequence number ever sent.
//! - Once the SYN is acknowledged, `tx` holds exactly the bytes `[snd_una, snd_buf_end)`
//!   (the FIN, if queued, sits at `fin_seq == snd_buf_end`).
//! - `rx` holds in-order bytes not yet read by the application; out-of-order bytes past
//!   `rcv_nxt` are written into its unallocated part and tracked by `assembler`, whose
//!   offsets are relative to `rcv_nxt`.
//! - `rcv_adv` is the right edge of the window last advertised; it never moves left.

use super::congestion::{self, CongestionAlgorithm, CongestionControl};
use super::rtt::RttEstimator;
use super::sack::Scoreboard;
use super::{
    EventQueue, SegmentAddrs, TcpConfig, TcpContext, TcpError, TcpEvent, TcpHandle, TcpInfo,
    TcpState,
};
use crate::socket::{IcmpError, IcmpErrorKind};
use crate::storage::{Assembler, RingBuffer};
use crate::time::{Duration, Instant};
use crate::wire::{SeqNumber, TcpFlags, TcpOptions, TcpRepr};
use core::net::{Ipv4Addr, SocketAddrV4};

/// RFC 9293 §3.7.1: the MSS assumed when the peer sends none.
pub(crate) const DEFAULT_MSS: usize = 536;
/// Smallest MSS we accept from a peer (Linux clamps similarly), so segments make progress.
const MIN_MSS: usize = 64;
/// Bytes the timestamp option takes on every segment (RFC 7323 §3 with two NOPs).
const TS_OPTION_LEN: usize = 12;
/// RFC 7323 §2.3: shift counts above 14 are treated as 14.
const MAX_WSCALE: u8 = 14;
/// RFC 7323 §5.5: TS.Recent is invalid after 24 days of idleness.
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);
/// RFC 5681 §3.2 DupThresh.
const DUPTHRESH: u32 = 3;

/// Per-socket options, inherited by connections accepted from a listener.
#[derive(Clone, Debug)]
pub(crate) struct SocketOptions {
    pub nodelay: bool,
    pub keepalive: bool,
    pub keep_idle: Duration,
    pub keep_intvl: Duration,
    pub keep_cnt: u32,
    pub rx_buffer_len: usize,
    pub tx_buffer_len: usize,
    pub congestion: CongestionAlgorithm,
    pub linger: Option<Duration>,
    pub reuse_addr: bool,
}

impl SocketOptions {
    pub(crate) fn from_config(cfg: &TcpConfig) -> SocketOptions {
        SocketOptions {
            nodelay: cfg.nodelay,
            keepalive: false,
            keep_idle: cfg.keepalive_idle,
            keep_intvl: cfg.keepalive_interval,
            keep_cnt: cfg.keepalive_count,
            rx_buffer_len: cfg.rx_buffer_len,
            tx_buffer_len: cfg.tx_buffer_len,
            congestion: cfg.congestion,
            linger: None,
            reuse_addr: false,
        }
    }
}

/// A segment a socket wants sent at once in answer to an arriving one.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Send unconditionally (ACK to an unacceptable segment, RST).
    Segment(TcpRepr<'static>),
    /// An RFC 5961 challenge ACK: subject to the layer's rate limit.
    Challenge(TcpRepr<'static>),
}

/// What kind of probe segment `<SEQ=SND.UNA-1><ACK=RCV.NXT>` to send next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    ZeroWindow,
    Keepalive,
}

/// Per-connection statistics for [`TcpInfo`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stats {
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub bytes_retrans: u64,
    pub total_retrans: u64,
    pub segs_out: u64,
    pub segs_in: u64,
}

/// One planned data/FIN segment.
#[derive(Clone, Copy, Debug)]
struct Plan {
    seq: SeqNumber,
    len: usize,
    fin: bool,
    rtx: bool,
    /// Selective retransmission (does not move SND.NXT).
    hole: bool,
}

/// A TCP socket: listener or connection.
#[derive(Debug)]
pub(crate) struct Socket {
    pub handle: TcpHandle,
    pub state: TcpState,
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    pub opts: SocketOptions,
    /// Created by a passive OPEN (RFC 9293: a reset in SYN-RECEIVED returns to LISTEN).
    pub passive: bool,
    /// `close()` was called: the socket is orphaned and freed once CLOSED.
    pub user_closed: bool,
    pub shut_rd: bool,
    pub shut_wr: bool,
    pub error: Option<TcpError>,
    pub soft_error: Option<TcpError>,

    // Send sequence space (RFC 9293 §3.3.1).
    pub iss: SeqNumber,
    pub snd_una: SeqNumber,
    pub snd_nxt: SeqNumber,
    pub snd_max: SeqNumber,
    pub snd_wnd: usize,
    snd_wl1: SeqNumber,
    snd_wl2: SeqNumber,
    max_snd_wnd: usize,
    snd_wscale: u8,
    /// Sequence number just past the last byte queued by the application.
    snd_buf_end: SeqNumber,
    /// Sequence number of our FIN once the application shut down writing.
    fin_seq: Option<SeqNumber>,
    pub tx: RingBuffer,

    // Receive sequence space.
    pub irs: SeqNumber,
    pub rcv_nxt: SeqNumber,
    rcv_adv: SeqNumber,
    rcv_wscale: u8,
    pub rx: RingBuffer,
    assembler: Assembler,
    pub fin_received: bool,
    /// Starts of the most recent out-of-order segments, newest first (RFC 2018 §4).
    sack_recent: [Option<SeqNumber>; 3],
    rcv_mss: usize,
    rcv_unacked: usize,

    // Options.
    our_mss: usize,
    peer_mss: usize,
    pmtu: usize,
    offer_ws: bool,
    offer_ts: bool,
    offer_sack: bool,
    ws_ok: bool,
    ts_ok: bool,
    sack_ok: bool,
    ts_recent: u32,
    ts_recent_age: Instant,
    pub ts_offset: u32,
    last_ack_sent: SeqNumber,
    /// When we last answered a bare out-of-window segment.
    last_oow_ack: Option<Instant>,

    // Timers.
    rto_at: Option<Instant>,
    /// Tail loss probe (RFC 8985 §7): when to resend the last segment if no ACK came.
    tlp_at: Option<Instant>,
    /// A probe went out and no ACK has advanced SND.UNA since.
    tlp_probed: bool,
    delack_at: Option<Instant>,
    persist_at: Option<Instant>,
    keepalive_at: Option<Instant>,
    /// TIME-WAIT expiry, or the FIN-WAIT-2 timeout of an orphan.
    close_at: Option<Instant>,
    rtt: RttEstimator,
    retries: u32,
    /// Karn's algorithm: (sequence number that must be acked, send time).
    rtt_sample: Option<(SeqNumber, Instant)>,
    persist_backoff: u32,
    persist_probes: u32,
    keep_probes: u32,

    // Pending output.
    ack_now: bool,
    window_update: bool,
    probe: Option<Probe>,
    force_send: bool,

    // Loss recovery.
    dupacks: u32,
    /// RFC 6582 "recover": set while in fast recovery.
    recovery: Option<SeqNumber>,
    rtx_next: Option<SeqNumber>,
    /// During SACK recovery: the retransmission of SND.UNA and SND.MAX when it left,
    /// to tell when that retransmission was itself lost.
    rtx_una_mark: Option<(SeqNumber, SeqNumber)>,
    high_rxt: SeqNumber,
    /// RFC 6582 §4 "recover" after a timeout: SND.MAX when the RTO fired. Until the
    /// cumulative ACK reaches it, duplicate ACKs (caused by go-back-N resending what
    /// the peer already holds) do not start fast recovery.
    rto_recover: Option<SeqNumber>,
    /// Our TSval when the retransmission timer last fired, kept as long as
    /// `rto_recover`: an ACK echoing an older TSval acknowledges a segment sent before
    /// the timeout, so its RTT sample is ambiguous (Karn) and inflated by the RTO.
    rto_tsval: Option<u32>,
    scoreboard: Scoreboard,
    cc: Box<dyn CongestionControl>,

    pub stats: Stats,
    pub paws_rejected: u64,
}

fn in_window(seq: SeqNumber, start: SeqNumber, len: usize) -> bool {
    seq >= start && seq < start + len
}

/// `<SEQ=SEG.ACK><CTL=RST>` for a segment with ACK (RFC 9293 §3.10.7).
pub(crate) fn rst_for(seg: &TcpRepr<'_>) -> TcpRepr<'static> {
    TcpRepr {
        src_port: seg.dst_port,
        dst_port: seg.src_port,
        seq_number: seg.ack_number,
        ack_number: SeqNumber(0),
        flags: TcpFlags::RST,
        window_len: 0,
        urgent_ptr: 0,
        options: TcpOptions::default(),
        payload: &[],
    }
}

impl Socket {
    /// A fresh, unbound socket in CLOSED.
    pub(crate) fn new(handle: TcpHandle, opts: SocketOptions, cfg: &TcpConfig) -> Socket {
        let unspec = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
        let cc = congestion::new_controller(opts.congestion, DEFAULT_MSS);
        Socket {
            handle,
            state: TcpState::Closed,
            local: unspec,
            remote: unspec,
            opts,
            passive: false,
            user_closed: false,
            shut_rd: false,
            shut_wr: false,
            error: None,
            soft_error: None,
            iss: SeqNumber(0),
            snd_una: SeqNumber(0),
            snd_nxt: SeqNumber(0),
            snd_max: SeqNumber(0),
            snd_wnd: 0,
            snd_wl1: SeqNumber(0),
            snd_wl2: SeqNumber(0),
            max_snd_wnd: 0,
            snd_wscale: 0,
            snd_buf_end: SeqNumber(0),
            fin_seq: None,
            tx: RingBuffer::new(0),
            irs: SeqNumber(0),
            rcv_nxt: SeqNumber(0),
            rcv_adv: SeqNumber(0),
            rcv_wscale: 0,
            rx: RingBuffer::new(0),
            assembler: Assembler::new(cfg.max_ooo_ranges),
            fin_received: false,
            sack_recent: [None; 3],
            rcv_mss: DEFAULT_MSS,
            rcv_unacked: 0,
            our_mss: DEFAULT_MSS,
            peer_mss: DEFAULT_MSS,
            pmtu: 576,
            offer_ws: cfg.window_scaling,
            offer_ts: cfg.timestamps,
            offer_sack: cfg.sack,
            ws_ok: false,
            ts_ok: false,
            sack_ok: false,
            ts_recent: 0,
            ts_recent_age: Instant::ZERO,
            ts_offset: 0,
            last_ack_sent: SeqNumber(0),
            last_oow_ack: None,
            rto_at: None,
            tlp_at: None,
            tlp_probed: false,
            delack_at: None,
            persist_at: None,
            keepalive_at: None,
            close_at: None,
            rtt: RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto),
            retries: 0,
            rtt_sample: None,
            persist_backoff: 0,
            persist_probes: 0,
            keep_probes: 0,
            ack_now: false,
            window_update: false,
            probe: None,
            force_send: false,
            dupacks: 0,
            recovery: None,
            rtx_next: None,
            rtx_una_mark: None,
            high_rxt: SeqNumber(0),
            rto_recover: None,
            rto_tsval: None,
            scoreboard: Scoreboard::default(),
            cc,
            stats: Stats::default(),
            paws_rejected: 0,
        }
    }

    // ---------------------------------------------------------------- set-up

    /// Common set-up of a new connection (active or passive), before any SYN is sent.
    fn init_connection(&mut self, cx: &TcpContext, cfg: &TcpConfig, iss: SeqNumber) {
        if self.rx.capacity() != self.opts.rx_buffer_len {
            self.rx = RingBuffer::new(self.opts.rx_buffer_len);
        }
        if self.tx.capacity() != self.opts.tx_buffer_len {
            self.tx = RingBuffer::new(self.opts.tx_buffer_len);
        }
        self.tx.dequeue_allocated(self.tx.len());
        self.rx.dequeue_allocated(self.rx.len());
        self.assembler = Assembler::new(cfg.max_ooo_ranges);
        self.iss = iss;
        self.snd_una = iss;
        self.snd_nxt = iss;
        self.snd_max = iss;
        self.snd_buf_end = iss + 1;
        self.high_rxt = iss;
        self.rto_recover = None;
        self.rto_tsval = None;
        self.fin_seq = None;
        self.fin_received = false;
        self.shut_rd = false;
        self.shut_wr = false;
        self.error = None;
        self.soft_error = None;
        self.pmtu = cx.mtu.max(68);
        self.our_mss = cx.mtu.saturating_sub(40).max(MIN_MSS);
        // Per RFC 7323 §2.2: the shift makes our buffer fit into the 16-bit field.
        self.rcv_wscale = 0;
        if self.offer_ws {
            while self.rcv_wscale < MAX_WSCALE
                && (65_535usize << self.rcv_wscale) < self.opts.rx_buffer_len
            {
                self.rcv_wscale += 1;
            }
        }
        self.rtt = RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto);
        self.retries = 0;
        self.stats = Stats::default();
        self.cc = congestion::new_controller(self.opts.congestion, self.send_mss());
    }

    /// Active OPEN (RFC 9293 §3.10.1): CLOSED → SYN-SENT; the SYN goes out via dispatch.
    pub(crate) fn connect(
        &mut self,
        cx: &TcpContext,
        cfg: &TcpConfig,
        ev: &mut EventQueue,
        iss: SeqNumber,
    ) {
        self.offer_ws = cfg.window_scaling;
        self.offer_ts = cfg.timestamps;
        self.offer_sack = cfg.sack;
        self.init_connection(cx, cfg, iss);
        self.passive = false;
        self.set_state(ev, TcpState::SynSent);
    }

    /// Passive OPEN: a listener got `seg` (a SYN); this child enters SYN-RECEIVED
    /// (RFC 9293 §3.10.7.2).
    pub(crate) fn accept_syn(
        &mut self,
        cx: &TcpContext,
        cfg: &TcpConfig,
        ev: &mut EventQueue,
        seg: &TcpRepr<'_>,
        iss: SeqNumber,
    ) {
        self.offer_ws = cfg.window_scaling;
        self.offer_ts = cfg.timestamps;
        self.offer_sack = cfg.sack;
        self.init_connection(cx, cfg, iss);
        self.passive = true;
        self.state = TcpState::Listen;
        self.irs = seg.seq_number;
        self.rcv_nxt = seg.seq_number + 1;
        self.rcv_adv = self.rcv_nxt;
        self.last_ack_sent = self.rcv_nxt;
        self.negotiate(cx, seg);
        // Per RFC 7323 §2.2: the window of a SYN is never scaled.
        self.snd_wnd = usize::from(seg.window_len);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = seg.seq_number;
        self.snd_wl2 = self.iss;
        self.last_rx_touch(cx.now);
        self.set_state(ev, TcpState::SynReceived);
    }

    /// Applies the options of the peer's SYN (RFC 9293 §3.7.1, RFC 7323, RFC 2018).
    fn negotiate(&mut self, cx: &TcpContext, seg: &TcpRepr<'_>) {
        self.peer_mss = seg
            .options
            .mss
            .map_or(DEFAULT_MSS, usize::from)
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
        self.cc = congestion::new_controller(self.opts.congestion, self.send_mss());
    }

    // ---------------------------------------------------------------- helpers

    pub(crate) fn set_state(&mut self, ev: &mut EventQueue, to: TcpState) {
        if self.state != to {
            ev.push(TcpEvent::StateChanged {
                handle: self.handle,
                local: self.local,
                remote: self.remote,
                from: self.state,
                to,
            });
            self.state = to;
        }
    }

    /// Largest payload of a segment carrying only the timestamp option (Linux mss_cache).
    pub(crate) fn send_mss(&self) -> usize {
        let base = self.peer_mss.min(self.pmtu.saturating_sub(40));
        let opts = if self.ts_ok { TS_OPTION_LEN } else { 0 };
        base.saturating_sub(opts).max(MIN_MSS / 2)
    }

    fn ts_now(&self, now: Instant) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.ts_offset)
    }

    fn fin_acked(&self) -> bool {
        self.fin_seq.is_some_and(|f| self.snd_una > f)
    }

    fn last_rx_touch(&mut self, now: Instant) {
        self.keep_probes = 0;
        if self.opts.keepalive {
            self.keepalive_at = Some(now + self.opts.keep_idle);
        }
    }

    /// The receive window we may announce: free buffer space, with receiver-side SWS
    /// avoidance (RFC 1122 §4.2.3.3: move the right edge only by min(RCV.BUFF/2, MSS)).
    fn window_to_advertise(&self) -> usize {
        let max = 65_535usize << self.rcv_wscale;
        let free = self.rx.window().min(max);
        let promised = self.rcv_adv - self.rcv_nxt;
        let promised = if promised > 0 { promised as usize } else { 0 };
        let threshold = (self.rx.capacity() / 2).min(self.our_mss);
        if free > promised && free - promised < threshold {
            promised
        } else {
            free
        }
    }

    /// Window field value for a non-SYN segment; records the advertised edge.
    fn take_window(&mut self) -> u16 {
        let wnd = self.window_to_advertise();
        let field = (wnd >> self.rcv_wscale).min(65_535);
        let edge = self.rcv_nxt + (field << self.rcv_wscale);
        if edge > self.rcv_adv {
            self.rcv_adv = edge;
        }
        field as u16
    }

    /// Up to 3 (with timestamps) or 4 SACK blocks, the newest first (RFC 2018 §4).
    fn sack_blocks(&self) -> [Option<(SeqNumber, SeqNumber)>; 4] {
        let mut out = [None; 4];
        if !self.sack_ok || self.assembler.is_empty() {
            return out;
        }
        let max = if self.ts_ok { 3 } else { 4 };
        // Iterators only: this runs for every ACK while data is out of order, and must
        // not allocate.
        let ranges = || {
            self.assembler
                .ranges()
                .map(|(s, e)| (self.rcv_nxt + s, self.rcv_nxt + e))
        };
        let mut n = 0;
        let recent = self.sack_recent.iter().flatten();
        let by_recency = recent.filter_map(|&seq| ranges().find(|r| r.0 <= seq && seq < r.1));
        for r in by_recency.chain(ranges().rev()) {
            if n == max {
                break;
            }
            if !out.contains(&Some(r)) {
                out[n] = Some(r);
                n += 1;
            }
        }
        out
    }

    /// Options and window of a segment carrying ACK; marks the ACK as sent.
    fn ack_fields(&mut self, now: Instant) -> (TcpOptions, u16) {
        let mut options = TcpOptions::default();
        if self.ts_ok {
            options.timestamp = Some((self.ts_now(now), self.ts_recent));
        }
        options.sack_ranges = self.sack_blocks();
        let window = self.take_window();
        self.last_ack_sent = self.rcv_nxt;
        self.ack_now = false;
        self.window_update = false;
        self.delack_at = None;
        self.rcv_unacked = 0;
        (options, window)
    }

    fn bare(&self, seq: SeqNumber, flags: TcpFlags) -> TcpRepr<'static> {
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq_number: seq,
            ack_number: if flags.ack() {
                self.rcv_nxt
            } else {
                SeqNumber(0)
            },
            flags,
            window_len: 0,
            urgent_ptr: 0,
            options: TcpOptions::default(),
            payload: &[],
        }
    }

    /// `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>` with window, timestamps and SACK blocks.
    pub(crate) fn ack_reply(&mut self, now: Instant) -> TcpRepr<'static> {
        let mut repr = self.bare(self.snd_max, TcpFlags::ACK);
        let (options, window) = self.ack_fields(now);
        repr.options = options;
        repr.window_len = window;
        self.stats.segs_out += 1;
        repr
    }

    /// `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=RST,ACK>` for aborting a synchronized connection.
    pub(crate) fn rst_segment(&self) -> TcpRepr<'static> {
        let mut r = self.bare(self.snd_max, TcpFlags::RST | TcpFlags::ACK);
        if self.state == TcpState::SynSent {
            r.flags = TcpFlags::RST;
            r.ack_number = SeqNumber(0);
        }
        r
    }

    /// The addresses of a segment from this socket.
    pub(crate) fn addrs(&self) -> SegmentAddrs {
        SegmentAddrs {
            src: *self.local.ip(),
            dst: *self.remote.ip(),
        }
    }

    /// Enters CLOSED, recording `err` for the application, and stops every timer.
    pub(crate) fn fail(&mut self, ev: &mut EventQueue, err: Option<TcpError>) {
        if let Some(e) = err {
            self.error = Some(e);
        }
        // Per RFC 9293 §3.10.7.4: "all segment queues should be flushed"; received
        // in-order data stays readable, as in Linux.
        self.tx.dequeue_allocated(self.tx.len());
        self.assembler = Assembler::new(1);
        self.stop_timers();
        self.ack_now = false;
        self.window_update = false;
        self.probe = None;
        self.set_state(ev, TcpState::Closed);
    }

    fn stop_timers(&mut self) {
        self.rto_at = None;
        self.tlp_at = None;
        self.delack_at = None;
        self.persist_at = None;
        self.keepalive_at = None;
        self.close_at = None;
    }

    fn enter_time_wait(&mut self, now: Instant, cfg: &TcpConfig, ev: &mut EventQueue) {
        self.stop_timers();
        self.close_at = Some(now + cfg.msl.saturating_mul(2));
        self.set_state(ev, TcpState::TimeWait);
    }

    fn pipe(&self) -> usize {
        // RFC 6675 §4 SetPipe, simplified: bytes above the highest SACK are in flight;
        // holes below it are lost and count again once retransmitted.
        let highest = self.scoreboard.highest().unwrap_or(self.snd_una);
        let above = (self.snd_max - highest.max(self.snd_una)).max(0) as usize;
        let upto = self.high_rxt.min(highest);
        above + self.scoreboard.hole_bytes_below(self.snd_una, upto)
    }

    fn emit_cc_event(&self, ev: &mut EventQueue) {
        ev.push(TcpEvent::CongestionChanged {
            handle: self.handle,
            cwnd: self.cc.cwnd(),
            ssthresh: self.cc.ssthresh(),
        });
    }

    // ---------------------------------------------------------------- application

    /// Queues bytes for sending; returns how many fit.
    pub(crate) fn enqueue(&mut self, data: &[u8]) -> usize {
        let n = self.tx.enqueue_slice(data);
        self.snd_buf_end += n;
        n
    }

    /// The application closed its sending side: queue a FIN (RFC 9293 §3.10.4).
    pub(crate) fn shutdown_write(&mut self, ev: &mut EventQueue) {
        if self.shut_wr {
            return;
        }
        self.shut_wr = true;
        match self.state {
            TcpState::SynReceived => {
                // The FIN follows the handshake: the state moves to FIN-WAIT-1 once the
                // SYN is acknowledged (RFC 9293 §3.10.4, SYN-RECEIVED).
                self.fin_seq = Some(self.snd_buf_end);
            }
            TcpState::Established => {
                self.fin_seq = Some(self.snd_buf_end);
                self.set_state(ev, TcpState::FinWait1);
            }
            TcpState::CloseWait => {
                self.fin_seq = Some(self.snd_buf_end);
                self.set_state(ev, TcpState::LastAck);
            }
            TcpState::SynSent | TcpState::Listen => self.fail(ev, None),
            _ => {}
        }
    }

    /// After the application read from `rx`: schedule a window update when the window
    /// grew enough (RFC 1122 §4.2.3.3), always when it re-opens from zero.
    pub(crate) fn on_app_read(&mut self) {
        if !matches!(
            self.state,
            TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2
        ) {
            return;
        }
        let promised = (self.rcv_adv - self.rcv_nxt).max(0) as usize;
        let wnd = self.window_to_advertise();
        let free = self.rx.window();
        let threshold = (self.rx.capacity() / 2).min(2 * self.our_mss);
        if wnd > promised && (wnd - promised >= threshold || promised == 0) && free > 0 {
            self.window_update = true;
        }
    }

    // ---------------------------------------------------------------- input

    /// Processes a segment for this connection (RFC 9293 §3.10.7.3 and §3.10.7.4).
    pub(crate) fn process(
        &mut self,
        cx: &TcpContext,
        cfg: &TcpConfig,
        ev: &mut EventQueue,
        seg: &TcpRepr<'_>,
    ) -> Option<Reply> {
        match self.state {
            TcpState::Closed | TcpState::Listen => return None,
            TcpState::SynSent => return self.process_syn_sent(cx, ev, seg),
            _ => {}
        }
        self.stats.segs_in += 1;
        let now = cx.now;

        // Per RFC 7323 §5.3 R1: drop a segment whose TSval is older than TS.Recent
        // (PAWS), and acknowledge it, unless it is a RST.
        if let (true, false, Some((tsval, _))) =
            (self.ts_ok, seg.flags.rst(), seg.options.timestamp)
        {
            if (tsval.wrapping_sub(self.ts_recent) as i32) < 0
                && now - self.ts_recent_age < PAWS_IDLE
            {
                self.paws_rejected += 1;
                log::debug!(target: "ustack::tcp", "{:?}: PAWS rejects TSval {tsval}", self.handle);
                return self.dupack_reply(now, cfg, seg);
            }
        }

        let mut seq = seg.seq_number;
        let mut syn = seg.flags.syn();
        let mut fin = seg.flags.fin();
        let mut payload = seg.payload;

        if self.state == TcpState::SynReceived && syn && seq == self.irs {
            if seg.flags.ack() {
                // The peer's SYN,ACK of a simultaneous open repeats its SYN: only the
                // ACK is new.
                syn = false;
                seq += 1;
            } else {
                // A retransmitted SYN: our SYN,ACK was lost; send it again.
                self.snd_nxt = self.iss;
                return None;
            }
        }

        // Per RFC 9293 §3.10.7.4 first: the acceptability test.
        let seg_len = payload.len() + usize::from(syn) + usize::from(fin);
        let rcv_wnd = self.rx.window();
        let mut acceptable = match (seg_len, rcv_wnd) {
            (0, 0) => seq == self.rcv_nxt,
            (0, _) => in_window(seq, self.rcv_nxt, rcv_wnd),
            (_, 0) => false,
            (_, _) => {
                in_window(seq, self.rcv_nxt, rcv_wnd)
                    || in_window(seq + (seg_len - 1), self.rcv_nxt, rcv_wnd)
            }
        };
        // "If the RCV.WND is zero, no segments will be acceptable, but special allowance
        // should be made to accept valid ACKs, URGs, and RSTs."
        let zero_window_allowance = !acceptable && rcv_wnd == 0 && seq == self.rcv_nxt;
        if zero_window_allowance {
            acceptable = true;
            payload = &[];
            fin = false;
            self.ack_now = true;
        }
        if !acceptable {
            if seg.flags.rst() {
                return None;
            }
            if self.state == TcpState::TimeWait && fin && seq + seg_len == self.rcv_nxt {
                // Per RFC 9293 §3.10.7.4 eighth: a retransmitted FIN in TIME-WAIT is
                // acknowledged and restarts the 2 MSL timeout.
                self.close_at = Some(now + cfg.msl.saturating_mul(2));
            }
            return self.dupack_reply(now, cfg, seg);
        }

        // Per RFC 7323 §4.3 (2): remember TSval when the segment covers Last.ACK.sent.
        if let (true, Some((tsval, _))) = (self.ts_ok, seg.options.timestamp) {
            if seq <= self.last_ack_sent && (tsval.wrapping_sub(self.ts_recent) as i32) >= 0 {
                self.ts_recent = tsval;
                self.ts_recent_age = now;
            }
        }

        // Trim what was already received, and what does not fit the window.
        if seq < self.rcv_nxt {
            let mut skip = (self.rcv_nxt - seq) as usize;
            if syn {
                syn = false;
                skip -= 1;
                seq += 1;
            }
            let d = skip.min(payload.len());
            payload = &payload[d..];
            seq += d;
            if seq < self.rcv_nxt {
                fin = false;
            }
        }
        let offset = (seq - self.rcv_nxt).max(0) as usize;
        let room = rcv_wnd.saturating_sub(offset);
        if payload.len() > room {
            payload = &payload[..room];
            fin = false;
        }

        // Second: the RST bit.
        if seg.flags.rst() {
            // Per RFC 5961 §3.2: reset only when SEG.SEQ exactly matches RCV.NXT;
            // otherwise (in window) send a challenge ACK.
            if seg.seq_number != self.rcv_nxt {
                return Some(Reply::Challenge(self.ack_reply(now)));
            }
            let err = match self.state {
                // "If this connection was initiated with a passive OPEN, then return
                // this connection to the LISTEN state": the child simply goes away.
                TcpState::SynReceived if self.passive => None,
                TcpState::SynReceived => Some(TcpError::ConnectionRefused),
                TcpState::Established
                | TcpState::FinWait1
                | TcpState::FinWait2
                | TcpState::CloseWait => Some(TcpError::ConnectionReset),
                _ => None,
            };
            self.fail(ev, err);
            return None;
        }

        self.last_rx_touch(now);

        // Fourth: the SYN bit.
        if syn {
            if self.state == TcpState::SynReceived && self.passive {
                // Per RFC 9293 §3.10.7.4 fourth: a passive SYN-RECEIVED returns to LISTEN.
                self.fail(ev, None);
                return None;
            }
            // Per RFC 5961 §4.2: a SYN in a synchronized state elicits a challenge ACK.
            return Some(Reply::Challenge(self.ack_reply(now)));
        }

        // Fifth: the ACK field.
        if !seg.flags.ack() {
            return None;
        }
        let ack = seg.ack_number;
        if self.state == TcpState::SynReceived {
            // Per RFC 9293 §3.10.7.4 fifth: "If SND.UNA < SEG.ACK =< SND.NXT, then enter
            // ESTABLISHED state", else send <SEQ=SEG.ACK><CTL=RST>.
            if !(ack > self.snd_una && ack <= self.snd_max) {
                return Some(Reply::Segment(rst_for(seg)));
            }
            self.snd_una = self.iss + 1;
            self.snd_nxt = self.snd_nxt.max(self.snd_una);
            self.take_syn_rtt_sample(now, seg);
            self.rto_at = None;
            self.retries = 0;
            self.rtt.reset_backoff();
            self.snd_wnd = usize::from(seg.window_len) << self.snd_wscale;
            self.max_snd_wnd = self.snd_wnd;
            self.snd_wl1 = seg.seq_number;
            self.snd_wl2 = ack;
            self.cc = congestion::new_controller(self.opts.congestion, self.send_mss());
            if self.fin_seq.is_some() {
                self.set_state(ev, TcpState::Established);
                self.set_state(ev, TcpState::FinWait1);
            } else {
                self.set_state(ev, TcpState::Established);
            }
        }
        // Per RFC 5961 §5.2: acceptable ACKs lie in
        // (SND.UNA - MAX.SND.WND) <= SEG.ACK <= SND.NXT; others are dropped with an ACK.
        let max_snd_wnd = self.max_snd_wnd.max(1);
        if ack > self.snd_max || ack < self.snd_una - max_snd_wnd {
            return Some(Reply::Challenge(self.ack_reply(now)));
        }
        self.process_ack(now, ev, seg);

        match self.state {
            TcpState::FinWait1 if self.fin_acked() => {
                self.set_state(ev, TcpState::FinWait2);
                if self.user_closed {
                    self.close_at = Some(now + cfg.fin_wait2_timeout);
                }
            }
            TcpState::Closing if self.fin_acked() => {
                self.enter_time_wait(now, cfg, ev);
            }
            TcpState::LastAck if self.fin_acked() => {
                self.fail(ev, None);
                return None;
            }
            _ => {}
        }

        // Seventh: segment text.
        if !payload.is_empty() {
            match self.state {
                TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2 => {
                    if self.user_closed {
                        // Linux (tcp_rcv_state_process): data for a socket the
                        // application closed is answered with a reset.
                        let rst = self.rst_segment();
                        self.fail(ev, None);
                        return Some(Reply::Segment(rst));
                    }
                    self.receive_data(now, cfg, seq, payload);
                }
                // CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: "This should not occur since
                // a FIN has been received from the remote side. Ignore the segment text."
                _ => {}
            }
        }

        // Eighth: the FIN bit, processed only when in order.
        if fin && seq + payload.len() == self.rcv_nxt {
            // The FIN takes a sequence number but no buffer space: the window's right
            // edge moves along with it.
            self.rcv_nxt += 1;
            self.rcv_adv += 1;
            self.fin_received = true;
            self.ack_now = true;
            match self.state {
                TcpState::SynReceived | TcpState::Established => {
                    self.set_state(ev, TcpState::CloseWait)
                }
                TcpState::FinWait1 => self.set_state(ev, TcpState::Closing),
                TcpState::FinWait2 => self.enter_time_wait(now, cfg, ev),
                TcpState::TimeWait => {
                    self.close_at = Some(now + cfg.msl.saturating_mul(2));
                }
                _ => {}
            }
        } else if fin {
            // An out-of-order FIN is not remembered: the peer retransmits it.
            self.ack_now = true;
        }
        if self.state == TcpState::TimeWait && self.ack_now {
            return Some(Reply::Segment(self.ack_reply(now)));
        }
        None
    }

    /// The ACK answering an unacceptable segment, rate-limited for bare ACKs like
    /// Linux's tcp_invalid_ratelimit: data segments are not part of ACK loops, but
    /// two stacks answering each other's bare out-of-window ACKs would be.
    fn dupack_reply(&mut self, now: Instant, cfg: &TcpConfig, seg: &TcpRepr<'_>) -> Option<Reply> {
        if seg.segment_len() == 0 {
            if self
                .last_oow_ack
                .is_some_and(|t| now - t < cfg.invalid_ack_ratelimit)
            {
                return None;
            }
            self.last_oow_ack = Some(now);
        }
        Some(Reply::Segment(self.ack_reply(now)))
    }

    fn take_syn_rtt_sample(&mut self, now: Instant, seg: &TcpRepr<'_>) {
        if let (true, Some((_, tsecr))) = (self.ts_ok, seg.options.timestamp) {
            if tsecr != 0 {
                let ms = self.ts_now(now).wrapping_sub(tsecr);
                if ms < 1 << 30 {
                    self.rtt.sample(Duration::from_millis(u64::from(ms)));
                }
                return;
            }
        }
        if let Some((_, sent)) = self.rtt_sample.take() {
            self.rtt.sample(now - sent);
        }
    }

    /// RFC 9293 §3.10.7.3: a segment arriving in SYN-SENT.
    fn process_syn_sent(
        &mut self,
        cx: &TcpContext,
        ev: &mut EventQueue,
        seg: &TcpRepr<'_>,
    ) -> Option<Reply> {
        let ack_ok = seg.flags.ack() && seg.ack_number > self.iss && seg.ack_number <= self.snd_max;
        // First: "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless the RST
        // bit is set, if so drop the segment and return)".
        if seg.flags.ack() && !ack_ok {
            return (!seg.flags.rst()).then(|| Reply::Segment(rst_for(seg)));
        }
        // Second: a RST is acceptable only if its ACK acknowledges our SYN (RFC 5961 §3).
        if seg.flags.rst() {
            if ack_ok {
                self.fail(ev, Some(TcpError::ConnectionRefused));
            }
            return None;
        }
        // Fourth: the SYN bit.
        if !seg.flags.syn() {
            return None;
        }
        self.stats.segs_in += 1;
        self.irs = seg.seq_number;
        self.rcv_nxt = seg.seq_number + 1;
        self.rcv_adv = self.rcv_nxt;
        self.last_ack_sent = self.rcv_nxt;
        self.negotiate(cx, seg);
        self.snd_wnd = usize::from(seg.window_len);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = seg.seq_number;
        self.snd_wl2 = seg.ack_number;
        self.last_rx_touch(cx.now);
        if ack_ok {
            // "If SND.UNA > ISS (our SYN has been ACKed), change the connection state to
            // ESTABLISHED, form an ACK segment <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>".
            self.snd_una = seg.ack_number;
            self.take_syn_rtt_sample(cx.now, seg);
            self.rto_at = None;
            self.retries = 0;
            self.rtt.reset_backoff();
            self.ack_now = true;
            self.set_state(ev, TcpState::Established);
        } else {
            // "Otherwise, enter SYN-RECEIVED, form a SYN,ACK segment
            // <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> and send it" (simultaneous open).
            self.snd_nxt = self.iss;
            self.rto_at = None;
            self.set_state(ev, TcpState::SynReceived);
        }
        None
    }

    /// Fifth step for synchronized states: SND.UNA, RTT, congestion control, loss
    /// detection, and the send window (RFC 9293 §3.10.7.4, RFC 5681, 6582, 6675).
    fn process_ack(&mut self, now: Instant, ev: &mut EventQueue, seg: &TcpRepr<'_>) {
        let ack = seg.ack_number;
        let mss = self.send_mss();
        let seg_wnd = usize::from(seg.window_len) << self.snd_wscale;
        let sack_new = self.sack_ok
            && self
                .scoreboard
                .update(self.snd_una, self.snd_max, &seg.options.sack_ranges);
        // Any acceptable ACK shows the peer is alive: zero-window probing goes on as
        // long as it answers (Linux resets icsk_probes_out the same way).
        self.persist_probes = 0;

        if ack > self.snd_una {
            let acked = (ack - self.snd_una) as usize;
            let mut data_acked = acked;
            if self.fin_seq.is_some_and(|f| ack > f && self.snd_una <= f) {
                data_acked -= 1;
            }
            let data_acked = data_acked.min(self.tx.len());
            self.tx.dequeue_allocated(data_acked);
            self.stats.bytes_acked += data_acked as u64;
            self.snd_una = ack;
            if self.snd_nxt < self.snd_una {
                self.snd_nxt = self.snd_una;
            }
            if self.high_rxt < self.snd_una {
                self.high_rxt = self.snd_una;
            }
            self.scoreboard.prune(self.snd_una);

            // RTT measurement: RFC 7323 §4 RTTM, else Karn's algorithm. Per Karn (RFC
            // 6298 §3), an echo of a TSval older than the last timeout is no sample: a
            // receiver answering a duplicate echoes TS.Recent, which may date from
            // before the timeout whose ACK was lost, and the sample would include the
            // whole RTO; RTO would feed on itself.
            let mut sampled = false;
            let stale = |tsecr: u32| {
                self.rto_tsval
                    .is_some_and(|t| (tsecr.wrapping_sub(t) as i32) < 0)
            };
            if let (true, Some((_, tsecr))) = (self.ts_ok, seg.options.timestamp) {
                if tsecr != 0 && !stale(tsecr) {
                    let ms = self.ts_now(now).wrapping_sub(tsecr);
                    if ms < 1 << 30 {
                        self.rtt.sample(Duration::from_millis(u64::from(ms)));
                        sampled = true;
                    }
                }
            }
            if let Some((end, sent)) = self.rtt_sample {
                if ack >= end {
                    if !sampled {
                        self.rtt.sample(now - sent);
                    }
                    self.rtt_sample = None;
                }
            }
            self.retries = 0;
            self.rtt.reset_backoff();
            self.persist_probes = 0;
            if self.rto_recover.is_some_and(|r| self.snd_una >= r) {
                self.rto_recover = None;
                self.rto_tsval = None;
            }

            match self.recovery {
                Some(recover) if ack >= recover => {
                    let cwnd = if self.sack_ok {
                        // Per RFC 6675 §5: recovery ran with cwnd = ssthresh and pipe kept
                        // the flight in check; leaving it keeps cwnd at ssthresh (as Linux
                        // does) rather than restarting from two segments.
                        self.cc.ssthresh()
                    } else {
                        // Per RFC 6582 §3.2 (3): a full acknowledgment ends fast recovery;
                        // cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS), which guards
                        // against a burst when the inflated window deflates.
                        let flight = (self.snd_max - self.snd_una).max(0) as usize;
                        self.cc.ssthresh().min(flight.max(mss) + mss)
                    };
                    self.cc.set_cwnd(cwnd);
                    self.recovery = None;
                    self.rtx_una_mark = None;
                    self.emit_cc_event(ev);
                }
                Some(_) => {
                    if !self.sack_ok {
                        // Per RFC 6582 §3.2 (5): a partial ACK retransmits the first
                        // unacknowledged segment and deflates cwnd by the amount acked.
                        self.rtx_next = Some(self.snd_una);
                        let cwnd = self.cc.cwnd().saturating_sub(acked) + mss;
                        self.cc.set_cwnd(cwnd.max(mss));
                    }
                }
                None => self.cc.on_ack(now, data_acked, mss, self.rtt.srtt()),
            }
            self.dupacks = 0;
            self.tlp_probed = false;
            // Per RFC 6298 §5.2/5.3: stop the timer when all is acked, else restart it.
            self.rto_at = (self.snd_max > self.snd_una).then(|| now + self.rtt.rto());
        } else if ack == self.snd_una && self.snd_max > self.snd_una {
            let dupack = if self.sack_ok {
                // Per RFC 6675 §2: with SACK, a duplicate acknowledgment is one that
                // SACKs octets not SACKed before, whatever its payload or window (so
                // ACKs riding on the peer's data count too).
                sack_new
            } else {
                // Per RFC 5681 §2: no data, no SYN/FIN, same ACK and same window.
                seg.payload.is_empty() && !seg.flags.fin() && seg_wnd > 0 && seg_wnd == self.snd_wnd
            };
            if dupack {
                self.dupacks += 1;
                if self.recovery.is_some() && !self.sack_ok {
                    // RFC 6582 §3.2 (4): inflate by one segment per further dupack.
                    self.cc.set_cwnd(self.cc.cwnd() + mss);
                }
            }
        }
        if self.recovery.is_none() && self.snd_max > self.snd_una {
            // Per RFC 6675 §5 (1)-(2): DupThresh duplicate ACKs, or IsLost(HighACK + 1)
            // -- more than (DupThresh - 1) * SMSS SACKed above SND.UNA -- whether or not
            // this ACK also advanced SND.UNA, starts loss recovery.
            let sack_loss = self.sack_ok
                && self.scoreboard.sacked_above(self.snd_una) > (DUPTHRESH as usize - 1) * mss;
            // Per RFC 6582 §3.2 (1) and §4: no fast retransmit until the ACK covers
            // what was outstanding when the retransmission timer fired.
            if (self.dupacks >= DUPTHRESH || sack_loss) && self.rto_recover.is_none() {
                self.enter_recovery(now, ev);
            }
        } else if let (true, Some((seq, mark))) = (self.sack_ok, self.rtx_una_mark) {
            if self.snd_una != seq {
                self.rtx_una_mark = None;
            } else if self.scoreboard.sacked_above(mark) > (DUPTHRESH as usize - 1) * mss {
                // The retransmission of SND.UNA was lost too: more than DupThresh - 1
                // segments sent after it have been SACKed while it is still missing
                // (the IsLost rule applied to the retransmission, as RFC 8985 RACK
                // would conclude from send order). Resend it now rather than waiting
                // for the RTO; the recovery episode and cwnd stay as they are.
                self.rtx_una_mark = None;
                self.rtx_next = Some(self.snd_una);
            }
        }

        // Per RFC 9293 §3.10.7.4: update the send window when the segment is newer.
        if self.snd_wl1 < seg.seq_number || (self.snd_wl1 == seg.seq_number && self.snd_wl2 <= ack)
        {
            let old = self.snd_wnd;
            self.snd_wnd = seg_wnd;
            self.snd_wl1 = seg.seq_number;
            self.snd_wl2 = ack;
            self.max_snd_wnd = self.max_snd_wnd.max(seg_wnd);
            if (old == 0) != (seg_wnd == 0) {
                ev.push(TcpEvent::WindowUpdate {
                    handle: self.handle,
                    window: seg_wnd,
                });
            }
            if seg_wnd > 0 {
                self.persist_at = None;
                self.persist_backoff = 0;
                self.persist_probes = 0;
                if old == 0 && self.snd_max > self.snd_una && self.recovery.is_none() {
                    // The window re-opened under data sent past it, which the peer
                    // cannot have kept: resend from SND.UNA now instead of waiting out
                    // a backed-off RTO.
                    self.snd_nxt = self.snd_una;
                    self.rtt.reset_backoff();
                    self.rto_at = Some(now + self.rtt.rto());
                }
            }
        }
        self.arm_tlp(now);
    }

    /// Arms the tail loss probe (RFC 8985 §7.2) after new data went out or an ACK
    /// advanced SND.UNA: PTO = 2 * SRTT (plus a worst-case delayed ACK when a single
    /// segment is in flight), at least 10 ms, and only if it comes before the RTO.
    /// Not during loss recovery, without SACK, or with a probe already out.
    fn arm_tlp(&mut self, now: Instant) {
        self.tlp_at = None;
        if !self.sack_ok
            || self.recovery.is_some()
            || self.tlp_probed
            || self.snd_max <= self.snd_una
            || !matches!(self.state, TcpState::Established | TcpState::CloseWait)
        {
            return;
        }
        let Some(srtt) = self.rtt.srtt() else {
            return;
        };
        let mut pto = srtt.saturating_mul(2);
        if ((self.snd_max - self.snd_una).max(0) as usize) <= self.send_mss() {
            pto += Duration::from_millis(200);
        }
        let at = now + pto.max(Duration::from_millis(10));
        if self.rto_at.is_none_or(|rto| at < rto) {
            self.tlp_at = Some(at);
        }
    }

    /// The probe timeout fired: resend the last segment sent (RFC 8985 §7.3 when no new
    /// data can go). Its ACK -- or its SACK -- tells what the tail of the flight lost,
    /// typically after the peer's ACKs for it were lost, without waiting for the RTO.
    fn fire_tlp(&mut self) {
        if self.recovery.is_some() || self.snd_max <= self.snd_una || !self.may_send_data() {
            return;
        }
        let flight = (self.snd_max - self.snd_una).max(0) as usize;
        let data_end = self.snd_buf_end.min(self.snd_max);
        let data_flight = (data_end - self.snd_una).max(0) as usize;
        let last = data_flight.min(self.send_mss());
        self.rtx_next = Some(if data_flight > 0 {
            data_end - last
        } else {
            // Only the FIN is outstanding.
            self.snd_max - flight.min(1)
        });
        self.tlp_probed = true;
    }

    /// Fast retransmit and entry into fast recovery (RFC 5681 §3.2, RFC 6582, RFC 6675 §5).
    fn enter_recovery(&mut self, now: Instant, ev: &mut EventQueue) {
        let mss = self.send_mss();
        let flight = (self.snd_max - self.snd_una).max(0) as usize;
        self.recovery = Some(self.snd_max);
        self.cc.on_loss(now, flight, mss);
        if !self.sack_ok {
            // RFC 5681 §3.2 (3): cwnd = ssthresh + 3*SMSS.
            self.cc.set_cwnd(self.cc.ssthresh() + 3 * mss);
        }
        self.high_rxt = self.snd_una;
        self.rtx_next = Some(self.snd_una);
        ev.push(TcpEvent::FastRetransmit {
            handle: self.handle,
            seq: self.snd_una,
        });
        self.emit_cc_event(ev);
    }

    /// Seventh step: places text in the receive buffer (RFC 9293 §3.10.7.4) and decides
    /// about the acknowledgment (RFC 1122 §4.2.3.2, RFC 5681 §4.2).
    fn receive_data(&mut self, now: Instant, cfg: &TcpConfig, seq: SeqNumber, payload: &[u8]) {
        let offset = (seq - self.rcv_nxt).max(0) as usize;
        let had_holes = !self.assembler.is_empty();
        let n = self.rx.write_unallocated(offset, payload);
        if n == 0 || !self.assembler.add(offset, n) {
            // No room, or too many holes: drop the text and tell the peer where we are.
            self.ack_now = true;
            return;
        }
        let contiguous = self.assembler.remove_front();
        self.rx.enqueue_unallocated(contiguous);
        self.rcv_nxt += contiguous;
        self.stats.bytes_received += contiguous as u64;
        self.rcv_mss = self.rcv_mss.max(payload.len().min(self.our_mss));
        if offset > 0 {
            // Out of order: acknowledge at once (a duplicate ACK with SACK blocks).
            self.sack_recent.rotate_right(1);
            self.sack_recent[0] = Some(seq);
            self.ack_now = true;
        } else if had_holes {
            // Fills (part of) a hole: acknowledge at once.
            self.ack_now = true;
        } else {
            self.rcv_unacked += n;
            if self.rcv_unacked >= 2 * self.rcv_mss || cfg.delayed_ack == Duration::ZERO {
                // "an ACK SHOULD be generated for at least every second full-sized segment"
                self.ack_now = true;
            } else if self.delack_at.is_none() {
                self.delack_at = Some(now + cfg.delayed_ack);
            }
        }
    }

    /// An ICMP error quoting one of our segments (RFC 1122 §4.2.3.9, RFC 5927).
    pub(crate) fn handle_icmp(&mut self, ev: &mut EventQueue, err: &IcmpError) {
        let seq = SeqNumber(err.tcp_seq);
        // Per RFC 5927 §4.1: only believe errors quoting SND.UNA <= SEG.SEQ < SND.NXT.
        let plausible = match self.state {
            TcpState::SynSent => seq == self.iss,
            _ => seq >= self.snd_una && seq < self.snd_max,
        };
        if !plausible {
            log::debug!(target: "ustack::tcp", "{:?}: ICMP quoting seq {seq} ignored", self.handle);
            return;
        }
        let (hard, error) = match err.kind {
            IcmpErrorKind::FragmentationNeeded(mtu) => {
                // RFC 1191: lower the path MTU and resend with smaller segments.
                let mtu = usize::from(mtu).max(68);
                if mtu < self.pmtu {
                    self.pmtu = mtu;
                    self.snd_nxt = self.snd_una;
                }
                return;
            }
            IcmpErrorKind::PortUnreachable | IcmpErrorKind::ProtocolUnreachable => {
                (true, TcpError::ConnectionRefused)
            }
            IcmpErrorKind::HostUnreachable | IcmpErrorKind::Prohibited => {
                (true, TcpError::HostUnreachable)
            }
            IcmpErrorKind::TimeExceeded | IcmpErrorKind::Other(..) => {
                (false, TcpError::HostUnreachable)
            }
        };
        if hard && self.state == TcpState::SynSent {
            self.fail(ev, Some(error));
        } else {
            // Per RFC 5927 §4.1 / Linux: soft in synchronized states; reported if the
            // connection later times out.
            self.soft_error = Some(error);
        }
    }

    // ---------------------------------------------------------------- timers

    /// The earliest deadline of this socket.
    pub(crate) fn poll_at(&self) -> Option<Instant> {
        [
            self.rto_at,
            self.tlp_at,
            self.delack_at,
            self.persist_at,
            self.keepalive_at,
            self.close_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the timers due at `cx.now`; returns a RST to send if the connection was
    /// abandoned by keepalive.
    pub(crate) fn handle_timeout(
        &mut self,
        cx: &TcpContext,
        cfg: &TcpConfig,
        ev: &mut EventQueue,
    ) -> Option<TcpRepr<'static>> {
        let now = cx.now;
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(self.close_at) {
            self.close_at = None;
            if matches!(self.state, TcpState::TimeWait | TcpState::FinWait2) {
                self.fail(ev, None);
                return None;
            }
        }
        if due(self.tlp_at) {
            self.tlp_at = None;
            self.fire_tlp();
        }
        if due(self.rto_at) {
            self.rto_at = None;
            self.tlp_at = None;
            self.on_rto(now, cfg, ev);
            if self.state == TcpState::Closed {
                return None;
            }
        }
        if due(self.delack_at) {
            self.delack_at = None;
            self.ack_now = true;
        }
        if due(self.persist_at) {
            self.persist_at = None;
            if self.snd_wnd == 0 {
                self.persist_probes += 1;
                if self.persist_probes > cfg.max_retries {
                    let err = self.soft_error.take().unwrap_or(TcpError::TimedOut);
                    self.fail(ev, Some(err));
                    return None;
                }
                self.persist_backoff = self.persist_backoff.saturating_add(1);
                self.probe = Some(Probe::ZeroWindow);
            } else {
                // RFC 1122 §4.2.3.4 (d): the override timeout sends what the window allows.
                self.force_send = true;
            }
        }
        if due(self.keepalive_at) {
            self.keepalive_at = None;
            return self.on_keepalive(now, ev);
        }
        None
    }

    fn on_keepalive(&mut self, now: Instant, ev: &mut EventQueue) -> Option<TcpRepr<'static>> {
        if !self.opts.keepalive
            || !matches!(
                self.state,
                TcpState::Established | TcpState::CloseWait | TcpState::FinWait2
            )
        {
            return None;
        }
        if self.snd_max > self.snd_una || self.snd_buf_end > self.snd_max {
            // Data outstanding: the retransmission timer watches the connection.
            self.keepalive_at = Some(now + self.opts.keep_idle);
            return None;
        }
        if self.keep_probes >= self.opts.keep_cnt {
            // RFC 1122 §4.2.3.6; Linux resets the connection when keepalive gives up.
            let rst = self.rst_segment();
            let err = self.soft_error.take().unwrap_or(TcpError::TimedOut);
            self.fail(ev, Some(err));
            return Some(rst);
        }
        self.keep_probes += 1;
        self.probe = Some(Probe::Keepalive);
        self.keepalive_at = Some(now + self.opts.keep_intvl);
        None
    }

    fn on_rto(&mut self, now: Instant, cfg: &TcpConfig, ev: &mut EventQueue) {
        let limit = match self.state {
            TcpState::SynSent => cfg.syn_retries,
            TcpState::SynReceived => cfg.synack_retries,
            _ => cfg.max_retries,
        };
        if self.snd_max == self.snd_una {
            return;
        }
        if self.snd_wnd == 0 && self.may_send_data() {
            // The peer shrank its window to zero under data in flight: retransmissions
            // become zero-window probes, which do not time out while the peer answers.
            self.persist_probes += 1;
            if self.persist_probes > cfg.max_retries {
                let err = self.soft_error.take().unwrap_or(TcpError::TimedOut);
                self.fail(ev, Some(err));
                return;
            }
            self.rtt.backoff();
            self.probe = Some(Probe::ZeroWindow);
            self.rto_at = Some(now + self.rtt.rto());
            return;
        }
        if self.retries >= limit {
            let err = if self.state == TcpState::SynReceived && self.passive {
                None
            } else {
                Some(self.soft_error.take().unwrap_or(TcpError::TimedOut))
            };
            self.fail(ev, err);
            return;
        }
        self.retries += 1;
        self.rtt.backoff();
        ev.push(TcpEvent::RtoFired {
            handle: self.handle,
            rto: self.rtt.rto(),
            retries: self.retries,
        });
        match self.state {
            TcpState::SynSent | TcpState::SynReceived => {
                // SYN (or SYN,ACK) retransmission.
                self.snd_nxt = self.iss;
                self.stats.total_retrans += 1;
                ev.push(TcpEvent::Retransmit {
                    handle: self.handle,
                    seq: self.iss,
                    len: 0,
                });
            }
            _ => {
                let flight = (self.snd_max - self.snd_una).max(0) as usize;
                self.cc.on_rto(now, flight, self.send_mss());
                self.emit_cc_event(ev);
                // Go back N; RFC 2018 §8: forget SACK information after a timeout.
                self.snd_nxt = self.snd_una;
                self.recovery = None;
                self.dupacks = 0;
                self.rtx_next = None;
                self.rtx_una_mark = None;
                self.scoreboard.clear();
                self.high_rxt = self.snd_una;
                self.rto_recover = Some(self.snd_max);
                self.rto_tsval = Some(self.ts_now(now));
            }
        }
        self.rtt_sample = None;
        self.rto_at = Some(now + self.rtt.rto());
    }

    // ---------------------------------------------------------------- output

    fn may_send_data(&self) -> bool {
        matches!(
            self.state,
            TcpState::Established
                | TcpState::CloseWait
                | TcpState::FinWait1
                | TcpState::Closing
                | TcpState::LastAck
        )
    }

    /// Most payload bytes a segment with `opts_len` option bytes may carry.
    fn max_payload(&self, opts_len: usize) -> usize {
        let base = self.peer_mss.min(self.pmtu.saturating_sub(40));
        base.saturating_sub(opts_len).max(1)
    }

    fn data_options(&self, now: Instant) -> TcpOptions {
        let mut o = TcpOptions::default();
        if self.ts_ok {
            o.timestamp = Some((self.ts_now(now), self.ts_recent));
        }
        o.sack_ranges = self.sack_blocks();
        o
    }

    /// A segment of up to `max_len` bytes starting at `seq` (retransmission).
    fn plan_at(&self, seq: SeqNumber, max_len: usize, hole_end: SeqNumber, hole: bool) -> Plan {
        let data_end = self.snd_buf_end.min(self.snd_max).min(hole_end);
        let len = ((data_end - seq).max(0) as usize).min(max_len);
        let fin = self
            .fin_seq
            .is_some_and(|f| seq + len == f && self.snd_max > f && hole_end > f);
        Plan {
            seq,
            len,
            fin,
            rtx: true,
            hole,
        }
    }

    fn plan_segment(&mut self, now: Instant) -> Option<Plan> {
        let plan = self.plan_segment_inner(now)?;
        if plan.rtx && plan.seq == self.snd_una && self.recovery.is_some() && self.sack_ok {
            self.rtx_una_mark = Some((plan.seq, self.snd_max));
        }
        Some(plan)
    }

    fn plan_segment_inner(&mut self, now: Instant) -> Option<Plan> {
        if !self.may_send_data() {
            return None;
        }
        let opts = self.data_options(now);
        let max_len = self.max_payload(opts.buffer_len());
        let mss = self.send_mss();
        if let Some(seq) = self.rtx_next.take() {
            if seq >= self.snd_una && seq < self.snd_max {
                // Fast retransmit: one segment, not running into SACKed data.
                let end = self
                    .scoreboard
                    .next_lost_hole(seq, self.snd_una, mss)
                    .filter(|h| h.0 == seq)
                    .map_or(self.snd_max, |h| h.1);
                let plan = self.plan_at(seq, max_len, end, true);
                if plan.len > 0 || plan.fin {
                    return Some(plan);
                }
            }
        }
        let cwnd = self.cc.cwnd();
        let mut budget = usize::MAX;
        if self.recovery.is_some() && self.sack_ok {
            // RFC 6675 §5 (C): while pipe < cwnd, retransmit lost holes, then new data.
            let pipe = self.pipe();
            if pipe >= cwnd {
                return None;
            }
            budget = cwnd - pipe;
            let from = self.high_rxt.max(self.snd_una);
            if let Some((s, e)) = self.scoreboard.next_lost_hole(from, self.snd_una, mss) {
                let plan = self.plan_at(s, max_len.min(budget), e, true);
                if plan.len > 0 || plan.fin {
                    return Some(plan);
                }
                // Nothing sendable in that hole: never plan an empty retransmission.
                self.high_rxt = e;
            }
        }
        let avail = (self.snd_buf_end - self.snd_nxt).max(0) as usize;
        // Per RFC 3042 (Limited Transmit): each of the first two duplicate ACKs lets one
        // more new segment out, beyond cwnd, so a small window still produces the
        // duplicate ACKs (or SACKs) that trigger fast retransmit instead of an RTO.
        let limited = if self.recovery.is_none() && self.snd_nxt == self.snd_max {
            self.dupacks.min(DUPTHRESH - 1) as usize * mss
        } else {
            0
        };
        let win_end = if self.recovery.is_some() && self.sack_ok && self.snd_nxt >= self.snd_max {
            // RFC 6675 §5 (C): during SACK recovery cwnd bounds pipe (`budget` above),
            // not SND.NXT - SND.UNA; new data is bounded only by the peer's window. With
            // SND.UNA + cwnd here, a halved cwnd under a full flight let nothing new out,
            // so no further SACKs came and every recovery with a second loss ended in
            // an RTO. While resending below SND.MAX (after a path MTU drop) pipe does
            // not see those bytes, so the cwnd bound stays.
            self.snd_una + self.snd_wnd
        } else {
            self.snd_una + self.snd_wnd.min(cwnd + limited)
        };
        let can = ((win_end - self.snd_nxt).max(0) as usize).min(budget);
        let len = avail.min(can).min(max_len);
        let rtx = self.snd_nxt < self.snd_max;
        let fin = self.fin_seq == Some(self.snd_nxt + len);
        if len == 0 && !fin {
            return None;
        }
        if !rtx && len < max_len && !fin && !self.force_send {
            // RFC 1122 §4.2.3.4 sender SWS avoidance: send a partial segment only when it
            // holds all queued data or at least half the largest window seen...
            if len < avail && len < self.max_snd_wnd / 2 {
                return None;
            }
            // ...and RFC 896 (Nagle): not while data is unacknowledged.
            if !self.opts.nodelay && self.snd_max > self.snd_una {
                return None;
            }
        }
        self.force_send = false;
        Some(Plan {
            seq: self.snd_nxt,
            len,
            fin,
            rtx,
            hole: false,
        })
    }

    /// Emits at most one segment; returns whether it did.
    pub(crate) fn dispatch(
        &mut self,
        cx: &TcpContext,
        ev: &mut EventQueue,
        emit: &mut dyn FnMut(SegmentAddrs, &TcpRepr<'_>),
    ) -> bool {
        let now = cx.now;
        match self.state {
            TcpState::Closed | TcpState::Listen => return false,
            TcpState::SynSent | TcpState::SynReceived => {
                if self.snd_nxt == self.iss {
                    self.send_syn(now, emit);
                    return true;
                }
                if !(self.state == TcpState::SynReceived && self.ack_now) {
                    return false;
                }
            }
            _ => {}
        }
        if let Some(probe) = self.probe.take() {
            if self.may_send_data() || probe == Probe::Keepalive {
                // Linux's probe: an old sequence number elicits an ACK with the window.
                let mut repr = self.bare(self.snd_una - 1, TcpFlags::ACK);
                let (options, window) = self.ack_fields(now);
                repr.options = options;
                repr.window_len = window;
                if probe == Probe::ZeroWindow {
                    ev.push(TcpEvent::ZeroWindowProbe {
                        handle: self.handle,
                        seq: repr.seq_number,
                    });
                }
                emit(self.addrs(), &repr);
                self.stats.segs_out += 1;
                return true;
            }
        }
        if let Some(plan) = self.plan_segment(now) {
            self.send_segment(now, plan, ev, emit);
            return true;
        }
        self.maybe_arm_persist(now);
        if self.ack_now || self.window_update {
            let update = self.window_update && !self.ack_now;
            let repr = self.ack_reply(now);
            if update {
                ev.push(TcpEvent::WindowUpdateSent {
                    handle: self.handle,
                    window: usize::from(repr.window_len) << self.rcv_wscale,
                });
            }
            emit(self.addrs(), &repr);
            return true;
        }
        false
    }

    fn maybe_arm_persist(&mut self, now: Instant) {
        let unsent = self.snd_buf_end > self.snd_nxt;
        if self.may_send_data()
            && unsent
            && self.snd_max == self.snd_una
            && self.rto_at.is_none()
            && self.persist_at.is_none()
        {
            // RFC 9293 §3.8.6.1: probe with exponential backoff, capped like Linux's
            // TCP_RTO_MAX.
            let t = self
                .rtt
                .rto()
                .saturating_mul(1 << self.persist_backoff.min(16))
                .min(Duration::from_secs(120));
            self.persist_at = Some(now + t);
        }
    }

    fn send_syn(&mut self, now: Instant, emit: &mut dyn FnMut(SegmentAddrs, &TcpRepr<'_>)) {
        let synack = self.state == TcpState::SynReceived;
        let mut flags = TcpFlags::SYN;
        if synack {
            flags |= TcpFlags::ACK;
        }
        let mut repr = self.bare(self.iss, flags);
        let (ws, ts, sack) = if synack {
            (self.ws_ok, self.ts_ok, self.sack_ok)
        } else {
            (self.offer_ws, self.offer_ts, self.offer_sack)
        };
        repr.options.mss = Some(self.our_mss.min(65_535) as u16);
        if ws {
            repr.options.window_scale = Some(self.rcv_wscale);
        }
        repr.options.sack_permitted = sack;
        if ts {
            let ecr = if synack { self.ts_recent } else { 0 };
            repr.options.timestamp = Some((self.ts_now(now), ecr));
        }
        // Per RFC 7323 §2.2: the window field of a SYN is not scaled.
        repr.window_len = self.rx.window().min(65_535) as u16;
        if synack {
            self.rcv_adv = self.rcv_nxt + usize::from(repr.window_len);
            self.last_ack_sent = self.rcv_nxt;
            self.ack_now = false;
        }
        emit(self.addrs(), &repr);
        self.stats.segs_out += 1;
        self.snd_nxt = self.iss + 1;
        if self.snd_max < self.snd_nxt {
            self.snd_max = self.snd_nxt;
            self.rtt_sample = Some((self.snd_nxt, now));
        }
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.rtt.rto());
        }
    }

    fn send_segment(
        &mut self,
        now: Instant,
        plan: Plan,
        ev: &mut EventQueue,
        emit: &mut dyn FnMut(SegmentAddrs, &TcpRepr<'_>),
    ) {
        let mut options = self.data_options(now);
        // ack_fields also records the ACK as sent; options must match what it builds.
        let (ack_opts, window) = self.ack_fields(now);
        options.sack_ranges = ack_opts.sack_ranges;
        let offset = (plan.seq - self.snd_una).max(0) as usize;
        let len = plan.len;
        let payload = self.tx.get_allocated(offset, len);
        let sent = payload.len();
        let fin = plan.fin && sent == len;
        let mut flags = TcpFlags::ACK;
        if sent > 0 && plan.seq + sent == self.snd_buf_end {
            flags |= TcpFlags::PSH;
        }
        if fin {
            flags |= TcpFlags::FIN;
        }
        let repr = TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq_number: plan.seq,
            ack_number: self.rcv_nxt,
            flags,
            window_len: window,
            urgent_ptr: 0,
            options,
            payload,
        };
        emit(self.addrs(), &repr);

        let end = plan.seq + sent + usize::from(fin);
        self.stats.segs_out += 1;
        if plan.hole {
            self.high_rxt = self.high_rxt.max(end);
        } else {
            self.snd_nxt = end;
        }
        if plan.rtx {
            self.stats.bytes_retrans += sent as u64;
            self.stats.total_retrans += 1;
            self.rtt_sample = None;
            ev.push(TcpEvent::Retransmit {
                handle: self.handle,
                seq: plan.seq,
                len: sent,
            });
        } else {
            self.stats.bytes_sent += sent as u64;
            if self.rtt_sample.is_none() {
                self.rtt_sample = Some((end, now));
            }
        }
        if end > self.snd_max {
            self.snd_max = end;
        }
        if self.rto_at.is_none() && self.snd_max > self.snd_una {
            self.rto_at = Some(now + self.rtt.rto());
        }
        if !plan.rtx {
            self.arm_tlp(now);
        }
    }

    /// Timestamps negotiated.
    pub(crate) fn ts_ok_pub(&self) -> bool {
        self.ts_ok
    }

    /// TS.Recent (RFC 7323 §4.3).
    pub(crate) fn ts_recent_pub(&self) -> u32 {
        self.ts_recent
    }

    /// (Re)arms or clears the keepalive timer after the option changed.
    pub(crate) fn set_keepalive_timer(&mut self, now: Instant) {
        self.keepalive_at = (self.opts.keepalive
            && matches!(
                self.state,
                TcpState::Established | TcpState::CloseWait | TcpState::FinWait2
            ))
        .then(|| now + self.opts.keep_idle);
    }

    /// close() on a connection that continues as an orphan.
    pub(crate) fn close_graceful(&mut self, now: Instant, cfg: &TcpConfig, ev: &mut EventQueue) {
        self.user_closed = true;
        self.shut_rd = true;
        self.shutdown_write(ev);
        if self.state == TcpState::FinWait2 && self.close_at.is_none() {
            self.close_at = Some(now + cfg.fin_wait2_timeout);
        }
    }

    // ---------------------------------------------------------------- reporting

    /// Bytes sent but not yet acknowledged.
    pub(crate) fn in_flight(&self) -> usize {
        (self.snd_max - self.snd_una).max(0) as usize
    }

    /// A TCP_INFO-like snapshot.
    pub(crate) fn info(&self) -> TcpInfo {
        TcpInfo {
            state: self.state,
            congestion: self.cc.algorithm(),
            cwnd: self.cc.cwnd(),
            ssthresh: self.cc.ssthresh(),
            srtt: self.rtt.srtt(),
            rttvar: self.rtt.rttvar(),
            rto: self.rtt.rto(),
            backoff: self.rtt.backoff_count(),
            retransmits: self.retries,
            snd_mss: self.send_mss(),
            rcv_mss: self.rcv_mss,
            advmss: self.our_mss,
            pmtu: self.pmtu,
            snd_wnd: self.snd_wnd,
            rcv_wnd: (self.rcv_adv - self.rcv_nxt).max(0) as usize,
            snd_wscale: self.snd_wscale,
            rcv_wscale: self.rcv_wscale,
            window_scaling: self.ws_ok,
            timestamps: self.ts_ok,
            sack: self.sack_ok,
            unacked: self.in_flight(),
            sacked: self.scoreboard.sacked_bytes(),
            in_recovery: self.recovery.is_some(),
            bytes_sent: self.stats.bytes_sent + self.stats.bytes_retrans,
            bytes_acked: self.stats.bytes_acked,
            bytes_received: self.stats.bytes_received,
            bytes_retrans: self.stats.bytes_retrans,
            total_retrans: self.stats.total_retrans,
            segs_out: self.stats.segs_out,
            segs_in: self.stats.segs_in,
            snd_una: self.snd_una,
            snd_nxt: self.snd_nxt,
            rcv_nxt: self.rcv_nxt,
            send_queue: self.tx.len(),
            recv_queue: self.rx.len(),
        }
    }

    /// Whether the connection has output that `dispatch` would emit now (cheap check).
    pub(crate) fn may_want_dispatch(&self) -> bool {
        self.ack_now
            || self.window_update
            || self.probe.is_some()
            || (matches!(self.state, TcpState::SynSent | TcpState::SynReceived)
                && self.snd_nxt == self.iss)
            || (self.may_send_data()
                && (self.snd_buf_end > self.snd_nxt
                    || self.rtx_next.is_some()
                    || self.recovery.is_some()
                    || self.fin_seq.is_some_and(|f| self.snd_nxt <= f)))
    }

    /// Test hook: the window scale we announce.
    #[cfg(test)]
    pub(crate) fn rcv_wscale(&self) -> u8 {
        self.rcv_wscale
    }
}
