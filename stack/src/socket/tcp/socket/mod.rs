//! One TCP connection: the RFC 9293 state machine with its send and receive sequence
//! spaces, retransmission, flow control and loss recovery.
//!
//! The layer ([`super::TcpLayer`]) owns sockets, demultiplexes segments to them and
//! keeps their deadlines in its timer heap; its bookkeeping lives beside each socket,
//! not in it, so a socket only ever looks at itself.
//!
//! This file holds the socket's state, its set-up and what the application does to it;
//! the rest is split by concern:
//! - [`input`]: a segment arrives (RFC 9293 §3.10.7, step by step);
//! - [`output`]: planning and building the next segment (`dispatch`);
//! - [`timers`]: retransmission, delayed ACK, persist, keepalive, TIME-WAIT;
//! - [`recovery`]: loss detection and recovery, SACK, tail loss probes and the
//!   congestion-control hooks;
//! - [`options`]: socket options, buffer sizes and the options negotiated on the SYN;
//! - [`autotune`]: buffer autotuning, cwnd validation, quick ACKs, HyStart++ rounds.
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

mod autotune;
mod input;
mod options;
mod output;
mod pacing;
mod recovery;
mod timers;

#[cfg(test)]
pub(crate) use input::{PREDICTED, PREDICTION_OFF};
pub(crate) use options::{wscale_for, SocketOptions};

use super::congestion::{self, CongestionControl};
use super::rack::{Rack, TxLog};
use super::rtt::RttEstimator;
use super::sack::Scoreboard;
use crate::socket::tcp::config::{TcpConfig, TcpContext};
use crate::socket::tcp::types::{EventQueue, TcpError, TcpEvent, TcpHandle, TcpInfo, TcpState};
use crate::storage::{Assembler, RingBuffer};
use crate::time::{Duration, Instant};
use crate::wire::{SeqNumber, TcpFlags, TcpOptions, TcpRepr};
use core::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

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
/// Longest a partial segment waits under TCP_CORK or MSG_MORE with nothing in flight
/// (tcp(7): "a 200 millisecond ceiling on the time for which output is corked").
const CORK_CEILING: Duration = Duration::from_millis(200);

/// A segment a socket wants sent at once in answer to an arriving one.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Send unconditionally (ACK to an unacceptable segment, RST).
    Segment(TcpRepr<'static>),
    /// An RFC 5961 challenge ACK: subject to the layer's rate limit.
    Challenge(TcpRepr<'static>),
    /// The ACK of the FIN that took the connection into TIME-WAIT: sent after the other
    /// segments the caller's batch of frames produced (`TcpLayer::last_acks`), as
    /// nothing on the peer waits for it but its LAST-ACK retransmission timer, while a
    /// SYN,ACK or data answering the same batch ends a wait in the peer's `connect` or
    /// `recv`.
    TimeWaitAck(TcpRepr<'static>),
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
    /// Segments RACK marked lost (RFC 8985 §6.2), RTO marks excluded.
    pub rack_lost: u64,
    /// Tail loss probes sent (RFC 8985 §7.3).
    pub tlp_probes: u64,
    /// Probes sent in fast recovery after a silence (`recovery.rs`).
    pub recovery_probes: u64,
    /// Congestion-window reductions undone (D-SACK, F-RTO or Eifel).
    pub undos: u64,
    /// Retransmission timeouts found spurious (RFC 5682, RFC 3522).
    pub spurious_rtos: u64,
    /// D-SACK blocks received (RFC 2883).
    pub dsacks_in: u64,
    /// D-SACK blocks sent (RFC 2883).
    pub dsacks_out: u64,
}

/// RFC 6937 Proportional Rate Reduction state of one fast-recovery episode.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Prr {
    /// `prr_delivered`: bytes the receiver got since recovery began.
    delivered: usize,
    /// `prr_out`: bytes sent since recovery began.
    out: usize,
    /// `RecoverFS`: FlightSize when recovery began.
    recover_fs: usize,
}

/// What a congestion-window reduction would be undone to, if it proves spurious
/// (RFC 3708, RFC 5682; Linux's `prior_cwnd`/`undo_marker`/`undo_retrans`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Undo {
    cwnd: usize,
    ssthresh: usize,
    /// SND.UNA when the reduction happened: D-SACKs above it count.
    marker: SeqNumber,
    /// Retransmitted segments not yet reported as duplicates by a D-SACK.
    retrans: i64,
}

/// A TCP socket: listener or connection.
#[derive(Debug)]
pub(crate) struct Socket {
    pub handle: TcpHandle,
    pub state: TcpState,
    pub local: SocketAddr,
    pub remote: SocketAddr,
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
    /// End of the last new-data segment sent shorter than the MSS (Linux's `snd_sml`):
    /// Nagle holds a small segment only while this one is unacknowledged.
    snd_sml: SeqNumber,
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
    /// Sequence number of a FIN that arrived out of order, kept until RCV.NXT reaches
    /// it, as Linux keeps a FIN in its out-of-order queue (`tcp_ofo_queue`): forgetting
    /// it left the sender only its RTO to resend it, and SACK blocks that stopped one
    /// short of it.
    rcv_fin_ooo: Option<SeqNumber>,
    /// One out-of-order segment of each of the blocks that last received data, newest
    /// first, one per block (RFC 2018 §4; `input::note_sack_recent`).
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
    /// RFC 8985 §7: `TLP.end_seq` of the probe in flight, and `TLP.is_retrans`.
    tlp_end: Option<SeqNumber>,
    tlp_retrans: bool,
    /// The open probe episode is a recovery probe (`recovery.rs`, `fire_tlp`).
    tlp_in_recovery: bool,
    /// The probe timer fired: the next segment is the probe (beyond cwnd if new data).
    tlp_pending: bool,
    /// What the last new segment's `arm_tlp` saw while more than one MSS was in
    /// flight: (`now`, `rto_at`, `state`, the deadline it set). Another new segment
    /// with the same key would compute the same deadline (see `arm_tlp_after_send`).
    /// Cleared by every input, timer and ICMP error, which may change the rest.
    tlp_armed: Option<(Instant, Option<Instant>, TcpState, Instant)>,
    /// RFC 8985 §6.2 step 5: the RACK reordering timer.
    rack_at: Option<Instant>,
    delack_at: Option<Instant>,
    persist_at: Option<Instant>,
    keepalive_at: Option<Instant>,
    /// TIME-WAIT expiry, or the FIN-WAIT-2 timeout of an orphan.
    close_at: Option<Instant>,
    /// Pacing (`pacing.rs`): when the next data segment may leave, and the timer armed
    /// while the gate is closed.
    pace_next: Option<Instant>,
    pace_at: Option<Instant>,
    /// Set by every write to a deadline above, cleared by the layer when it re-reads
    /// [`poll_at`](Self::poll_at): while clear, the layer's copy of the earliest
    /// deadline is current, and the layer skips recomputing it after each segment.
    pub timers_changed: bool,
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
    /// MSG_MORE on the last send: its partial tail waits like TCP_CORK until a send
    /// without the flag, the FIN, or the cork ceiling (`output.rs`).
    more: bool,

    // Loss recovery.
    dupacks: u32,
    /// RFC 6582 "recover": set while in fast recovery.
    recovery: Option<SeqNumber>,
    rtx_next: Option<SeqNumber>,
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
    /// Per-segment transmit times and marks (RFC 8985), with SACK.
    txlog: TxLog,
    rack: Rack,
    prr: Prr,
    undo: Option<Undo>,
    /// F-RTO (RFC 5682 §3, SACK-enhanced): 1 after a timeout until the first ACK, 2
    /// until the second; 0 when off.
    frto: u8,
    /// Receiver: a duplicate segment to report as the first SACK block (RFC 2883 §4).
    dsack: Option<(SeqNumber, SeqNumber)>,
    cc: Box<dyn CongestionControl>,
    /// Buffer autotuning, cwnd validation, quick ACKs, HyStart++ rounds.
    tune: autotune::Tuning,

    pub stats: Stats,
    pub paws_rejected: u64,
    /// Segments past RCV.NXT dropped for want of buffer room or assembler ranges.
    pub ooo_dropped: u64,

    // Segmentation offload, set by the layer around each dispatch.
    /// Largest TCP segment (header included) the link cuts into wire segments for us
    /// (TSO); 0 when every segment must fit the wire.
    pub(crate) tso_max_len: usize,
    /// Payload bytes per wire segment of the last segment dispatched when it was a
    /// super-segment (larger than one wire segment), else 0.
    pub(crate) gso_size: u16,
}

/// The send MSS assumed when the peer's SYN has no MSS option (RFC 9293 §3.7.1): 536
/// over IPv4, 1220 over IPv6 (the minimum IPv6 MTU, 1280, less 60).
pub(crate) fn default_mss(peer: IpAddr) -> usize {
    match peer {
        IpAddr::V4(_) => DEFAULT_MSS,
        IpAddr::V6(_) => 1220,
    }
}

/// IP and TCP header bytes (without options) of a segment to `peer`: 20 + 20 over
/// IPv4, 40 + 20 over IPv6 (RFC 8200 §3; no extension headers on our segments).
pub(crate) fn header_overhead(peer: IpAddr) -> usize {
    match peer {
        IpAddr::V4(_) => 40,
        IpAddr::V6(_) => 60,
    }
}

/// The smallest path MTU the family allows: 68 for IPv4 (RFC 791), 1280 for IPv6 (RFC
/// 8200 §5), below which a Packet Too Big is not believed.
pub(crate) fn min_mtu(peer: IpAddr) -> usize {
    match peer {
        IpAddr::V4(_) => 68,
        IpAddr::V6(_) => 1280,
    }
}

/// The MSS we announce to `peer` on a link with this IP MTU: MTU − 40 over IPv4,
/// MTU − 60 over IPv6 (1460 and 1440 at 1500).
pub(crate) fn our_mss(mtu: usize, peer: IpAddr) -> usize {
    mtu.saturating_sub(header_overhead(peer)).max(MIN_MSS)
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
    /// True when this listener takes a segment addressed to `dst`: its own address, the
    /// wildcard of `dst`'s family, or (dual stack) `::` for IPv4 unless IPV6_V6ONLY.
    pub(crate) fn accepts_local(&self, dst: IpAddr) -> bool {
        match (self.local.ip(), dst) {
            (IpAddr::V4(l), IpAddr::V4(d)) => l.is_unspecified() || l == d,
            (IpAddr::V6(l), IpAddr::V6(d)) => l.is_unspecified() || l == d,
            (IpAddr::V6(l), IpAddr::V4(_)) => l.is_unspecified() && !self.opts.v6only,
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
        }
    }

    /// A fresh, unbound socket in CLOSED.
    pub(crate) fn new(handle: TcpHandle, opts: SocketOptions, cfg: &TcpConfig) -> Socket {
        Socket::with_txlog(handle, opts, cfg, TxLog::default())
    }

    /// Makes this socket, freed by the layer, what [`new`](Self::new) returns, in the
    /// same allocation and with the transmit log's storage (`TxLog::recycled`): the
    /// layer's spare sockets save a connection two allocations and two frees.
    pub(crate) fn renew(&mut self, handle: TcpHandle, opts: SocketOptions, cfg: &TcpConfig) {
        let txlog = self.txlog.recycled();
        *self = Socket::with_txlog(handle, opts, cfg, txlog);
    }

    /// Gives back the memory a spare socket must not hold until it is renewed: its
    /// buffers, out-of-order ranges, SACK blocks and a large transmit log's storage.
    pub(crate) fn strip(&mut self) {
        self.tx = RingBuffer::new(0);
        self.rx = RingBuffer::new(0);
        self.assembler = Assembler::new(0);
        self.scoreboard = Scoreboard::default();
        self.txlog = self.txlog.recycled();
    }

    /// [`new`](Self::new) with `txlog` as the (empty) transmit log.
    fn with_txlog(handle: TcpHandle, opts: SocketOptions, cfg: &TcpConfig, txlog: TxLog) -> Socket {
        let unspec = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
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
            snd_sml: SeqNumber(0),
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
            rcv_fin_ooo: None,
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
            tlp_end: None,
            tlp_retrans: false,
            tlp_in_recovery: false,
            tlp_pending: false,
            tlp_armed: None,
            rack_at: None,
            delack_at: None,
            persist_at: None,
            keepalive_at: None,
            close_at: None,
            pace_next: None,
            pace_at: None,
            timers_changed: false,
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
            more: false,
            tso_max_len: 0,
            gso_size: 0,
            dupacks: 0,
            recovery: None,
            rtx_next: None,
            high_rxt: SeqNumber(0),
            rto_recover: None,
            rto_tsval: None,
            scoreboard: Scoreboard::default(),
            txlog,
            rack: Rack::new(),
            prr: Prr::default(),
            undo: None,
            frto: 0,
            dsack: None,
            cc,
            tune: autotune::Tuning::new(DEFAULT_MSS, SeqNumber(0)),
            stats: Stats::default(),
            paws_rejected: 0,
            ooo_dropped: 0,
        }
    }

    /// Common set-up of a new connection (active or passive), before any SYN is sent.
    fn init_connection(&mut self, cx: &TcpContext, cfg: &TcpConfig, iss: SeqNumber) {
        self.size_buffers();
        self.assembler = Assembler::new(cfg.max_ooo_ranges);
        self.iss = iss;
        self.snd_una = iss;
        self.snd_nxt = iss;
        self.snd_max = iss;
        self.snd_sml = iss;
        self.snd_buf_end = iss + 1;
        self.high_rxt = iss;
        self.rto_recover = None;
        self.rto_tsval = None;
        self.txlog.clear();
        self.rack = Rack::new();
        self.undo = None;
        self.frto = 0;
        self.dsack = None;
        self.fin_seq = None;
        self.fin_received = false;
        self.rcv_fin_ooo = None;
        self.shut_rd = false;
        self.shut_wr = false;
        self.error = None;
        self.soft_error = None;
        let mtu = cx.mtu_for(self.remote.ip());
        self.pmtu = mtu.max(min_mtu(self.remote.ip()));
        self.our_mss = our_mss(mtu, self.remote.ip());
        self.rtt = RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto);
        self.retries = 0;
        self.stats = Stats::default();
        let mss = self.send_mss();
        self.renew_cc(mss, false);
        self.tune = autotune::Tuning::new(self.our_mss, iss);
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

    /// A child made from a SYN cookie: its SYN,ACK already went out (statelessly) with
    /// the unscaled window its receive buffer allows, so the returning ACK completes the
    /// handshake as if this socket had sent it.
    pub(crate) fn synack_sent_as_cookie(&mut self) {
        self.snd_nxt = self.iss + 1;
        self.snd_max = self.snd_nxt;
        self.rcv_adv = self.rcv_nxt + self.rx.capacity().min(65_535);
        self.last_ack_sent = self.rcv_nxt;
        self.ack_now = false;
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
        let base = self
            .peer_mss
            .min(self.pmtu.saturating_sub(header_overhead(self.remote.ip())));
        let opts = if self.ts_ok { TS_OPTION_LEN } else { 0 };
        base.saturating_sub(opts).max(MIN_MSS / 2)
    }

    pub(super) fn ts_now(&self, now: Instant) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.ts_offset)
    }

    pub(super) fn fin_acked(&self) -> bool {
        self.fin_seq.is_some_and(|f| self.snd_una > f)
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

    // ---------------------------------------------------------------- application

    /// Queues bytes for sending; returns how many fit.
    pub(crate) fn enqueue(&mut self, data: &[u8]) -> usize {
        self.check_app_limited();
        let n = self.tx.enqueue_slice(data);
        self.snd_buf_end += n;
        // Linux SOCK_NOSPACE: the buffer may grow on the next ACK (`snd_buf_expand`).
        self.tune.tx_refused |= n < data.len();
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

    /// close() on a connection that continues as an orphan.
    pub(crate) fn close_graceful(&mut self, now: Instant, cfg: &TcpConfig, ev: &mut EventQueue) {
        self.user_closed = true;
        self.shut_rd = true;
        self.shutdown_write(ev);
        if self.state == TcpState::FinWait2 && self.close_at.is_none() {
            let at = Some(now + cfg.fin_wait2_timeout);
            self.timers_changed |= self.close_at != at;
            self.close_at = at;
        }
    }

    /// Whether anything waits out of order: data, or a FIN beyond a hole.
    #[inline]
    fn out_of_order(&self) -> bool {
        !self.assembler.is_empty() || self.rcv_fin_ooo.is_some()
    }

    /// The sequence ranges held out of order, ascending. A FIN held out of order counts
    /// as the sender counts it: the block it closes reaches one past it, or it is a
    /// block of its own (a bare FIN beyond a hole).
    fn ooo_ranges(&self) -> impl DoubleEndedIterator<Item = (SeqNumber, SeqNumber)> + '_ {
        let rcv_nxt = self.rcv_nxt;
        let fin = self.rcv_fin_ooo;
        // Data past the FIN is never held (`receive_data`), so only the last range can
        // end at it.
        let joined = fin.is_some_and(|f| {
            self.assembler
                .ranges()
                .next_back()
                .is_some_and(|(_, e)| rcv_nxt + e == f)
        });
        self.assembler
            .ranges()
            .map(move |(s, e)| {
                let (s, e) = (rcv_nxt + s, rcv_nxt + e);
                if fin == Some(e) {
                    (s, e + 1)
                } else {
                    (s, e)
                }
            })
            .chain(fin.filter(|_| !joined).map(|f| (f, f + 1)))
    }

    // ---------------------------------------------------------------- memory

    /// Bytes queued to send and not yet acknowledged, from the sequence space:
    /// `[SND.UNA, end of queued data)` (tests check `tx` holds exactly that).
    #[cfg(test)]
    pub(crate) fn unacked_queued(&self) -> usize {
        (self.snd_buf_end - self.snd_una).max(0) as usize
    }

    /// A buffer holds storage but no bytes (and, for the receive side, no out-of-order
    /// data written past its end).
    pub(crate) fn has_idle_buffers(&self) -> bool {
        (self.tx.is_empty() && self.tx.allocated() > 0)
            || (self.rx.is_empty() && self.rx.allocated() > 0 && self.assembler.is_empty())
    }

    /// Gives back the storage of empty buffers; returns whether any was freed.
    pub(crate) fn release_idle_buffers(&mut self) -> bool {
        let tx = self.tx.release_if_empty();
        if self.tx.is_empty() {
            // Nothing queued, so nothing in flight: the transmit log is empty too.
            self.txlog.release();
        }
        let rx = self.assembler.is_empty() && self.rx.release_if_empty();
        if self.assembler.is_empty() {
            self.assembler.release();
        }
        tx || rx
    }

    /// Changes whenever a segment arrives or leaves: idleness is "unchanged since".
    pub(crate) fn activity(&self) -> u64 {
        self.stats.segs_in.wrapping_add(self.stats.segs_out)
    }

    // ---------------------------------------------------------------- reporting

    /// Timestamps negotiated.
    pub(crate) fn ts_ok_pub(&self) -> bool {
        self.ts_ok
    }

    /// TS.Recent (RFC 7323 §4.3).
    pub(crate) fn ts_recent_pub(&self) -> u32 {
        self.ts_recent
    }

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
            rack_lost: self.stats.rack_lost,
            tlp_probes: self.stats.tlp_probes,
            recovery_probes: self.stats.recovery_probes,
            undos: self.stats.undos,
            spurious_rtos: self.stats.spurious_rtos,
            dsacks_in: self.stats.dsacks_in,
            dsacks_out: self.stats.dsacks_out,
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
                    || self.tlp_pending
                    || self.txlog.lost_bytes() != 0
                    || self.fin_seq.is_some_and(|f| self.snd_nxt <= f)))
    }

    /// Test hook: the window scale we announce.
    #[cfg(test)]
    pub(crate) fn rcv_wscale(&self) -> u8 {
        self.rcv_wscale
    }
}
