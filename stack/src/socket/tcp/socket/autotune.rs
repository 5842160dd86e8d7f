//! What one connection learns about its own use to size itself: receive-buffer
//! autotuning (Linux's dynamic right-sizing, `tcp_rcv_space_adjust`), send-buffer
//! autotuning (`tcp_sndbuf_expand`), congestion-window validation (RFC 7661, as Linux's
//! `tcp_is_cwnd_limited`), the receiver's quick-ACK mode (Linux `tcp_incr_quickack`)
//! and SACK compression (Linux `__tcp_ack_snd_check`), and the round tracking
//! HyStart++ (RFC 9406) needs.
//!
//! Invariants: buffers only grow here, up to `SocketOptions::rx_buffer_max` /
//! `tx_buffer_max` (equal to the fixed size when SO_RCVBUF/SO_SNDBUF was set, which
//! turns tuning off); growth raises the capacity, not the storage, which still follows
//! the bytes held (`storage::ring`), and is given back when idle (`reclaim`). So the
//! advertised right edge never moves left (RFC 9293 §3.8.6) and an idle connection
//! costs what it did before.

use super::Socket;
use crate::socket::tcp::types::TcpState;
use crate::time::{Duration, Instant};
use crate::wire::{SeqNumber, TcpRepr};

/// Linux TCP_MAX_QUICKACKS: most segments acknowledged at once in quick-ACK mode.
const MAX_QUICKACKS: u32 = 16;
/// Out-of-order segments acknowledged at once for each value of RCV.NXT before SACK
/// compression starts: enough duplicate ACKs for a sender's fast retransmit (Linux
/// `TCP_FASTRETRANS_THRESH`).
const OOO_ACKS_AT_ONCE: u8 = 3;
/// Most out-of-order segments one compressed ACK may answer (Linux `tcp_comp_sack_nr`).
const MAX_COMPRESSED_ACKS: u16 = 44;
/// Slack of the SACK compression timer (Linux `tcp_comp_sack_slack_ns`): Linux's
/// timer may fire up to this much after its delay, which "gives extra time for small
/// RTT flows"; on a sub-millisecond path RTT/20 alone is a few microseconds, shorter
/// than the gap between two arriving segments, and would compress nothing.
const SACK_COMPRESSION_SLACK: Duration = Duration::from_micros(100);
/// Linux TCP_INIT_CWND: the first receive-space estimate is this many segments.
const INIT_SPACE_SEGS: usize = 10;
/// A receiver RTT from timestamps (millisecond ticks) is at least one tick.
const MIN_RCV_RTT: Duration = Duration::from_millis(1);

/// Per-connection state of the mechanisms in this module.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tuning {
    /// Bytes the application read during the last measured RTT (Linux
    /// `rcvq_space.space`): the receive buffer grows only when a round beats it.
    rcv_space: usize,
    /// Start of the current measurement: bytes read so far ("copied_seq") and when.
    rcv_space_seq: SeqNumber,
    rcv_space_time: Option<Instant>,
    /// The receiver's RTT estimate (Linux `rcv_rtt_est`): from timestamps, else the
    /// time one advertised window took to arrive.
    rcv_rtt: Option<Duration>,
    rcv_rtt_seq: SeqNumber,
    rcv_rtt_time: Option<Instant>,
    /// Segments still to acknowledge at once (quick-ACK mode).
    pub quickacks: u32,
    /// The segment being processed was out of order or filled a hole: its ACK goes
    /// back as the immediate reply (`input::process`), not at the next dispatch.
    pub ack_in_reply: bool,
    /// RCV.NXT when `ooo_acks` started counting (Linux `compressed_ack_rcv_nxt`).
    ooo_rcv_nxt: SeqNumber,
    /// Out-of-order segments acknowledged at once since RCV.NXT was `ooo_rcv_nxt`
    /// (Linux `dup_ack_counter`).
    ooo_acks: u8,
    /// Out-of-order segments whose ACK was left to the next one sent (Linux
    /// `compressed_ack`); sending any ACK resets it.
    pub compressed_acks: u16,
    /// When in-order data last arrived (Linux `icsk_ack.lrcvtime`).
    last_data_at: Option<Instant>,
    /// The application was refused bytes by a full send buffer (Linux SOCK_NOSPACE).
    pub tx_refused: bool,
    /// RFC 7661 / Linux: the flight reached cwnd during the current window.
    cwnd_limited: bool,
    /// Largest flight seen during the current window (Linux `max_packets_out`, bytes).
    max_flight: usize,
    /// The current window ends when SND.UNA reaches this (Linux `cwnd_usage_seq`).
    cwnd_usage_seq: SeqNumber,
    /// RFC 9406 §4.2 `windowEnd`: an ACK at or past it starts a new round.
    round_end: SeqNumber,
}

impl Tuning {
    /// Fresh state for a connection announcing `mss`, whose sequence numbers start at
    /// `iss` (sent) and `irs` (received; set again once known).
    pub(crate) fn new(mss: usize, iss: SeqNumber) -> Tuning {
        Tuning {
            // Linux tcp_init_buffer_space: min(rcv_wnd, TCP_INIT_CWND * advmss).
            rcv_space: INIT_SPACE_SEGS * mss,
            rcv_space_seq: SeqNumber(0),
            rcv_space_time: None,
            rcv_rtt: None,
            rcv_rtt_seq: SeqNumber(0),
            rcv_rtt_time: None,
            quickacks: 0,
            ack_in_reply: false,
            ooo_rcv_nxt: SeqNumber(0),
            ooo_acks: 0,
            compressed_acks: 0,
            last_data_at: None,
            tx_refused: false,
            cwnd_limited: false,
            max_flight: 0,
            cwnd_usage_seq: iss,
            round_end: iss,
        }
    }
}

impl Socket {
    /// Whether the receive buffer may still grow.
    #[inline]
    fn rx_tunable(&self) -> bool {
        self.opts.rx_buffer_max > self.rx.capacity()
    }

    /// Bytes of the receive sequence space the application has read (Linux copied_seq).
    fn copied_seq(&self) -> SeqNumber {
        self.rcv_nxt - self.rx.len()
    }

    /// The receiver's RTT sample from an arriving data segment (Linux
    /// `tcp_rcv_rtt_measure_ts` / `tcp_rcv_rtt_measure`); call before its text is
    /// queued. With timestamps, a full-sized segment's TSecr echoes the ACK that let it
    /// out, so now − TSecr is one round trip (smoothed, gain 1/8). Without them, the
    /// time the window advertised at some moment took to fill is an upper bound (the
    /// minimum is kept).
    pub(super) fn rcv_rtt_measure(&mut self, now: Instant, seg: &TcpRepr<'_>) {
        if !self.rx_tunable() {
            return;
        }
        if self.ts_ok {
            let Some((_, tsecr)) = seg.options.timestamp else {
                return;
            };
            if tsecr == 0 || seg.payload.len() < self.rcv_mss {
                return;
            }
            let ms = self.ts_now(now).wrapping_sub(tsecr);
            if ms >= 1 << 30 {
                return;
            }
            let sample = Duration::from_millis(u64::from(ms)).max(MIN_RCV_RTT);
            self.tune.rcv_rtt = Some(match self.tune.rcv_rtt {
                Some(old) => {
                    Duration::from_micros((7 * old.total_micros() + sample.total_micros()) / 8)
                }
                None => sample,
            });
            return;
        }
        if let Some(t) = self.tune.rcv_rtt_time {
            if self.rcv_nxt < self.tune.rcv_rtt_seq {
                return;
            }
            let sample = (now - t).max(Duration::from_micros(1));
            self.tune.rcv_rtt = Some(self.tune.rcv_rtt.map_or(sample, |old| old.min(sample)));
        }
        self.tune.rcv_rtt_seq = self.rcv_adv.max(self.rcv_nxt + 1);
        self.tune.rcv_rtt_time = Some(now);
    }

    /// Receive-buffer autotuning (Linux `tcp_rcv_space_adjust`, "dynamic right-sizing"),
    /// run as in-order data arrives: once per receiver RTT, compare the bytes the
    /// application read in that RTT with the best earlier round; when it beat it, let
    /// the buffer (hence the window) grow to twice that, plus room for 16 segments, plus
    /// twice the round-over-round growth (the sender may still be in slow start, and the
    /// window offered now is used one RTT later), up to the maximum. An application that
    /// does not read makes nothing grow.
    #[inline]
    pub(super) fn rcv_space_adjust(&mut self, now: Instant) {
        if !self.rx_tunable() {
            return;
        }
        let copied_seq = self.copied_seq();
        let Some(start) = self.tune.rcv_space_time else {
            self.tune.rcv_space_seq = copied_seq;
            self.tune.rcv_space_time = Some(now);
            return;
        };
        let Some(rtt) = self.tune.rcv_rtt.or(self.rtt.srtt()) else {
            return;
        };
        if now - start < rtt.max(MIN_RCV_RTT) {
            return;
        }
        let copied = (copied_seq - self.tune.rcv_space_seq).max(0) as usize;
        if copied > self.tune.rcv_space {
            let space = self.tune.rcv_space.max(1);
            let mut win = copied.saturating_mul(2).saturating_add(16 * self.our_mss);
            let grow = win.saturating_mul(copied - space) / space;
            win = win.saturating_add(grow.saturating_mul(2));
            let want = win.min(self.opts.rx_buffer_max);
            if want > self.rx.capacity() {
                log::trace!(target: "ustack::tcp", "{:?}: receive buffer {} -> {want} ({copied} B read in {rtt})", self.handle, self.rx.capacity());
                self.rx.grow_capacity(want);
            }
            self.tune.rcv_space = copied;
        }
        self.tune.rcv_space_seq = copied_seq;
        self.tune.rcv_space_time = Some(now);
    }

    /// Quick-ACK mode (Linux `tcp_incr_quickack`): acknowledge the next segments at
    /// once, as many as half the window holds full segments, at least 2, at most 16.
    pub(super) fn enter_quickack(&mut self) {
        let segs = (self.rx.window() / (2 * self.rcv_mss.max(1))).clamp(2, MAX_QUICKACKS as usize);
        self.tune.quickacks = self.tune.quickacks.max(segs as u32);
    }

    /// In-order data arrived: at the first data of the connection and after the peer
    /// fell silent for longer than an RTO, enter quick-ACK mode (Linux
    /// `tcp_event_data_recv`), so a sender starting (or restarting) slow start gets
    /// its ACKs, and its window grows, without the delayed-ACK wait. Returns whether
    /// this segment is to be acknowledged at once.
    #[inline(always)]
    pub(super) fn take_quickack(&mut self, now: Instant) -> bool {
        let idle = self
            .tune
            .last_data_at
            .is_none_or(|t| now - t > self.rtt.rto());
        self.tune.last_data_at = Some(now);
        if idle {
            self.enter_quickack();
        }
        if self.tune.quickacks > 0 {
            self.tune.quickacks -= 1;
            return true;
        }
        false
    }

    /// Whether the ACK for an out-of-order segment goes back at once, as the segment's
    /// own reply, or is left to the next ACK sent, which the socket sends when a short
    /// timer fires (`sack_compression_deadline`) or an ACK goes out anyway (SACK
    /// compression, as Linux's `__tcp_ack_snd_check` does since 4.18 with a timer of
    /// min(1 ms, RTT/20)). RFC 5681 §4.2 asks for an immediate duplicate ACK per
    /// out-of-order segment; Linux answers the first three for each RCV.NXT at once
    /// (enough for a fast retransmit), then compresses up to 44. Compressed here only:
    /// a segment extending the newest SACK block at its right edge, the common case of
    /// a sender's in-sequence segments behind a hole, so the next ACK's first block
    /// covers it. A segment that starts or extends another block, a duplicate
    /// (D-SACK pending) and quick-ACK mode are answered at once, so each block is
    /// reported first in some ACK (RFC 2018 §4). One ACK per out-of-order segment
    /// tripled the ACKs a kernel sender got behind a hole (6,938 against the kernel
    /// receiver's 2,505 for 10 MB at 5 % loss), frames the sender and the path must
    /// carry.
    pub(super) fn ooo_ack_at_once(&mut self, extends_newest: bool) -> bool {
        let t = &mut self.tune;
        if t.ooo_rcv_nxt != self.rcv_nxt {
            t.ooo_rcv_nxt = self.rcv_nxt;
            t.ooo_acks = 0;
        }
        let quick = t.quickacks > 0;
        if quick {
            t.quickacks -= 1;
        }
        let forced = !self.sack_ok || !extends_newest || self.dsack.is_some() || quick;
        if forced || t.ooo_acks < OOO_ACKS_AT_ONCE || t.compressed_acks >= MAX_COMPRESSED_ACKS {
            t.ooo_acks = t.ooo_acks.saturating_add(1);
            return true;
        }
        t.compressed_acks += 1;
        false
    }

    /// When the ACK of compressed out-of-order segments is due: as Linux's
    /// `__tcp_ack_snd_check`, min(`sack_compression_delay`, RTT/20), the RTT being the
    /// smaller of the receiver's estimate and SRTT (5 % of an RTT delays the sender's
    /// SACK information by little, while a burst of segments arriving together shares
    /// one ACK), the configured delay while neither is known, plus Linux's timer slack
    /// (the latest its range timer fires).
    pub(super) fn sack_compression_deadline(
        &self,
        now: Instant,
        cfg: &crate::socket::tcp::config::TcpConfig,
    ) -> Instant {
        let rtt = match (self.tune.rcv_rtt, self.rtt.srtt()) {
            (Some(a), Some(b)) => Some(if b < a { b } else { a }),
            (a, b) => a.or(b),
        };
        let delay = rtt.map_or(cfg.sack_compression_delay, |r| {
            Duration::from_micros(r.total_micros() / 20).min(cfg.sack_compression_delay)
        });
        now + delay + SACK_COMPRESSION_SLACK
    }

    /// The application found the send buffer full and waits for room without writing
    /// (Linux sets SOCK_NOSPACE when poll finds a socket unwritable): as for a write
    /// that did not fit, the next ACK may grow the buffer (`snd_buf_expand`).
    pub(crate) fn note_send_full(&mut self) {
        let open = matches!(self.state, TcpState::Established | TcpState::CloseWait);
        if open && !self.shut_wr && self.tx.window() == 0 {
            self.tune.tx_refused = true;
        }
    }

    /// Send-buffer autotuning on an ACK that freed send-buffer space (Linux
    /// `tcp_new_space` → `tcp_should_expand_sndbuf` → `tcp_sndbuf_expand`): when the
    /// application found the buffer full and the flight is below cwnd (so the buffer,
    /// not the network, held the sender back), grow the buffer to twice cwnd (Linux's
    /// factor: fast recovery keeps sending new data while up to a cwnd is unacknowledged),
    /// at least twice the initial window, up to the maximum.
    pub(super) fn snd_buf_expand(&mut self) {
        if !self.tune.tx_refused {
            return;
        }
        if self.opts.tx_buffer_max <= self.tx.capacity() {
            self.tune.tx_refused = false;
            return;
        }
        let cwnd = self.cc.cwnd();
        if self.in_flight() >= cwnd {
            return;
        }
        let want = cwnd
            .max(INIT_SPACE_SEGS * self.send_mss())
            .saturating_mul(2)
            .min(self.opts.tx_buffer_max);
        if want > self.tx.capacity() {
            log::trace!(target: "ustack::tcp", "{:?}: send buffer {} -> {want}", self.handle, self.tx.capacity());
            self.tx.grow_capacity(want);
        }
        self.tune.tx_refused = false;
    }

    /// After new data went out (Linux `tcp_cwnd_validate`): remember whether cwnd held
    /// the sender back during the current window, else the largest flight. A window ends
    /// when SND.UNA passes what was sent when it began.
    pub(super) fn note_cwnd_use(&mut self) {
        let flight = self.in_flight();
        let cwnd = self.cc.cwnd();
        let unsent = self.snd_buf_end > self.snd_nxt;
        let limited = flight >= cwnd || (unsent && flight + self.send_mss() > cwnd);
        let t = &mut self.tune;
        if self.snd_una >= t.cwnd_usage_seq || limited || (!t.cwnd_limited && flight > t.max_flight)
        {
            t.cwnd_limited = limited;
            t.max_flight = flight;
            t.cwnd_usage_seq = self.snd_max;
        }
    }

    /// Whether an ACK may grow cwnd (RFC 7661 §4.3: not while the sender is
    /// application-limited, in the non-validated phase; Linux `tcp_is_cwnd_limited`).
    /// In slow start cwnd may grow to twice the largest flight of the window, as the
    /// flight of a sender that uses its window doubles per round trip.
    pub(super) fn is_cwnd_limited(&self) -> bool {
        let cwnd = self.cc.cwnd();
        if cwnd < self.cc.ssthresh() {
            return cwnd < 2 * self.tune.max_flight;
        }
        self.tune.cwnd_limited
    }

    /// RFC 9406 §4.2: whether the ACK that moved SND.UNA here starts a new round (it
    /// passed `windowEnd`, the SND.NXT of the previous round's start).
    pub(super) fn round_starts(&mut self) -> bool {
        if self.snd_una >= self.tune.round_end {
            self.tune.round_end = self.snd_max;
            return true;
        }
        false
    }
}
