//! RACK-TLP loss detection (RFC 8985) for one connection: the sender's per-segment
//! transmit log and RACK's state (the most recently delivered segment's send time,
//! the reordering window and its D-SACK adaptation).
//!
//! The log holds one record per segment sent (a TSO super-segment is one record until
//! a SACK or a retransmission splits it), in sequence order, covering exactly
//! `[SND.UNA, SND.MAX)` of what was sent since the connection synchronized. Each record
//! carries its latest transmission time and whether it was retransmitted, SACKed or is
//! deemed lost. Records live in a `VecDeque` that keeps its capacity: in steady state
//! sending and acknowledging allocate nothing.
//!
//! Invariants: records are sorted, disjoint and contiguous; `lost` is the byte count of
//! records marked LOST and not SACKed; `retrans` counts records marked RETRANS; the log
//! never holds more than `MAX_RECORDS` records (beyond that, new data joins the last
//! record and SACK edges stop splitting records).

use super::rate::{RateState, TxRate};
use crate::time::{Duration, Instant};
use crate::wire::SeqNumber;
use std::collections::VecDeque;

/// Record retransmitted at least once.
const RETRANS: u8 = 1;
/// Record SACKed.
const SACKED: u8 = 2;
/// Record deemed lost and not yet retransmitted (RFC 8985 `Segment.lost`).
const LOST: u8 = 4;
/// Record sent while the connection was application-limited (delivery-rate
/// estimation, `rate.rs`).
const APP_LIMITED: u8 = 8;

/// Most records kept (40 bytes each): a peer SACKing single bytes cannot make the log
/// grow past this; a full flight of MSS-sized segments needs far fewer.
const MAX_RECORDS: usize = 4096;

/// RFC 8985 §6.2 step 4: how many recoveries a widened reordering window persists.
const REO_WND_PERSIST: u32 = 16;

/// One transmitted segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Record {
    start: SeqNumber,
    end: SeqNumber,
    xmit_ts: Instant,
    /// Transmission order: RACK's tie-break between segments sent at one instant.
    order: u32,
    flags: u8,
    /// Delivery-rate snapshot of the latest transmission (`rate.rs`).
    rate: TxRate,
}

impl Record {
    fn len(&self) -> usize {
        (self.end - self.start).max(0) as usize
    }
}

/// RFC 8985 `RACK_sent_after(t1, seq1, t2, seq2)`: ordered by time, then, for segments
/// sent at one instant, by transmission order, then by sequence (parts of one record
/// went out in sequence order). The RFC breaks ties by sequence alone, which puts a
/// retransmission of a low sequence number before the original segments it followed
/// when the clock did not tick between them.
fn sent_after(a: (Instant, u32, SeqNumber), b: (Instant, u32, SeqNumber)) -> bool {
    let order = a.1.wrapping_sub(b.1) as i32;
    a.0 > b.0 || (a.0 == b.0 && (order > 0 || (order == 0 && a.2 > b.2)))
}

/// RACK's per-connection state (RFC 8985 §5.2).
#[derive(Clone, Debug, Default)]
pub(crate) struct Rack {
    /// `RACK.xmit_ts` and the transmission order standing in for `RACK.end_seq`: the
    /// most recently sent segment delivered so far.
    xmit_ts: Option<Instant>,
    order: u32,
    end_seq: SeqNumber,
    /// `RACK.rtt`: the RTT of that segment.
    rtt: Duration,
    /// `RACK.min_RTT`.
    min_rtt: Option<Duration>,
    /// `RACK.fack`: highest end sequence delivered (ACKed or SACKed); none before the
    /// first delivery (a sequence number has no zero to start from: a default of 0
    /// lay "above" every sequence number in half of the ISN space, and the first
    /// delivery then counted as reordering for the rest of the connection).
    fack: Option<SeqNumber>,
    /// `RACK.fack` as it stood before the ACK being processed (Linux's `prior_fack`):
    /// step 3 compares with it, so that segments delivered by one ACK are not taken as
    /// reordered against each other.
    prior_fack: Option<SeqNumber>,
    /// `RACK.reordering_seen`.
    reordering_seen: bool,
    /// `RACK.reo_wnd_mult`, `RACK.reo_wnd_persist`, `RACK.dsack_round`.
    reo_wnd_mult: u32,
    reo_wnd_persist: u32,
    dsack_round: Option<SeqNumber>,
}

/// What one ACK told the log.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Delivered {
    /// A record never retransmitted and ending at or below the `orig_limit` given was
    /// newly ACKed or SACKed (Linux's FLAG_ORIG_SACK_ACKED, used by F-RTO).
    pub orig: bool,
}

impl Rack {
    /// A fresh state (RFC 8985 §6.1 initialization).
    pub(crate) fn new() -> Rack {
        Rack {
            reo_wnd_mult: 1,
            ..Rack::default()
        }
    }

    /// The handshake's round trip (SYN to SYN,ACK, or SYN,ACK to ACK) as an RTT sample
    /// for RACK.min_RTT, as Linux's `tcp_min_rtt` takes it (`tcp_synack_rtt_meas`,
    /// `FLAG_SYN_ACKED`). Without it min_RTT came only from data, whose ACKs a Linux
    /// receiver delays or compresses (SACK compression) while it answers a hole fill
    /// at once: min_RTT sat above the round trip of the retransmissions, step 2 took
    /// their SACKs as ambiguous, and a lost retransmission waited for the RTO (seen in
    /// `bench loss --echo` at 10 %: min_RTT 183 µs, retransmissions SACKed after
    /// 154-163 µs skipped).
    pub(crate) fn on_handshake_rtt(&mut self, rtt: Duration) {
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
    }

    /// Called once per ACK before its SACK blocks and cumulative ACK are fed in.
    pub(crate) fn start_ack(&mut self) {
        self.prior_fack = self.fack;
    }

    /// Whether reordering was seen on this connection, by step 3 or by a D-SACK
    /// (which widened the reordering window).
    fn reordering_seen(&self) -> bool {
        self.reordering_seen || self.reo_wnd_mult > 1
    }

    /// RFC 8985 §6.2 steps 1-3 for one newly delivered record.
    fn update(&mut self, r: &Record, now: Instant, echo_before: &dyn Fn(Instant) -> bool) {
        let rtt = now - r.xmit_ts;
        if r.flags & RETRANS != 0 {
            // Step 2: a retransmitted segment is ambiguous; skip it when the ACK
            // echoes an older transmission, or, once reordering was seen, when it
            // came back faster than any RTT seen. The RTT test guards against the ACK
            // of an earlier copy that was only delayed past the reordering window.
            // Without reordering that copy's ACK would have come before a later-sent
            // segment's, and RACK's window is zero in recovery anyway; and our RTTs
            // are stamped per pass of the host loop, so on a path of tens of
            // microseconds a hole-filling retransmission's prompt ACK often measured
            // below the handshake's round trip. Skipping it left a lost retransmission
            // sent just before it to the RTO (`bench loss --echo`, 10 %: 94 skips in
            // 30 runs, most at 0.5-1.0 of min_RTT). A spurious mark this lets through
            // is answered by a D-SACK, which undoes it and turns the test back on.
            let too_fast = self.reordering_seen() && self.min_rtt.is_some_and(|m| rtt < m);
            if echo_before(r.xmit_ts) || too_fast {
                return;
            }
        } else {
            // Step 1: RACK.min_RTT from unambiguous samples.
            self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        }
        self.rtt = rtt;
        if self
            .xmit_ts
            .is_none_or(|t| sent_after((r.xmit_ts, r.order, r.end), (t, self.order, self.end_seq)))
        {
            self.xmit_ts = Some(r.xmit_ts);
            self.order = r.order;
            self.end_seq = r.end;
        }
        // Step 3: a never-retransmitted segment delivered below RACK.fack was
        // reordered. Below the fack of the ACKs before this one, as Linux compares
        // (`prior_fack`): an ACK that SACKs a high block and cumulatively acknowledges
        // lower data whose own ACK was lost, or whose SACK blocks arrive most recent
        // first (RFC 2018), delivered them together, not out of order.
        if self.prior_fack.is_some_and(|f| r.end < f) && r.flags & RETRANS == 0 {
            self.reordering_seen = true;
        }
        if self.fack.is_none_or(|f| r.end > f) {
            self.fack = Some(r.end);
        }
    }

    /// RFC 8985 §6.2 step 4, the D-SACK part of `RACK_update_reo_wnd`: each round trip
    /// with a D-SACK widens the window by one more min_RTT/4.
    pub(crate) fn on_ack_reo_wnd(&mut self, snd_una: SeqNumber, snd_nxt: SeqNumber, dsack: bool) {
        if self.dsack_round.is_some_and(|r| snd_una >= r) {
            self.dsack_round = None;
        }
        if self.dsack_round.is_none() && dsack {
            self.dsack_round = Some(snd_nxt);
            self.reo_wnd_mult = self.reo_wnd_mult.saturating_add(1);
            self.reo_wnd_persist = REO_WND_PERSIST;
        }
    }

    /// RFC 8985 §6.2 step 4: on leaving fast or RTO recovery, a widened window decays
    /// back after `REO_WND_PERSIST` recoveries without D-SACK.
    pub(crate) fn on_recovery_exit(&mut self) {
        self.reo_wnd_persist = self.reo_wnd_persist.saturating_sub(1);
        if self.reo_wnd_persist == 0 {
            self.reo_wnd_mult = 1;
        }
    }

    /// RFC 8985 §6.2 step 4 `RACK_update_reo_wnd`: zero (DupThresh-like marking) when no
    /// reordering was seen and either recovery is under way or DupThresh segments are
    /// SACKed; else `reo_wnd_mult * min_RTT / 4`, at most SRTT.
    pub(crate) fn reo_wnd(
        &self,
        in_recovery: bool,
        sacked_segs: usize,
        srtt: Option<Duration>,
    ) -> Duration {
        if !self.reordering_seen && (in_recovery || sacked_segs >= 3) {
            return Duration::ZERO;
        }
        let base = self.min_rtt.unwrap_or(Duration::ZERO);
        let wnd = Duration::from_micros(base.total_micros() / 4).saturating_mul(self.reo_wnd_mult);
        srtt.map_or(wnd, |s| wnd.min(s))
    }

    /// The current reordering-window multiplier.
    #[cfg(test)]
    pub(crate) fn reo_wnd_mult(&self) -> u32 {
        self.reo_wnd_mult
    }
}

/// Most records whose storage a recycled log keeps (`TxLog::recycled`): what a short
/// connection needs, not a bulk transfer's window.
const RECYCLED_RECORDS: usize = 16;

/// The sender's per-segment transmit log.
#[derive(Clone, Debug, Default)]
pub(crate) struct TxLog {
    recs: VecDeque<Record>,
    /// Bytes of records marked LOST (and not SACKed).
    lost: usize,
    /// Records marked RETRANS.
    retrans: usize,
    /// Transmission order of the next transmission.
    next_order: u32,
    /// Delivery-rate estimation: fed by transmissions and deliveries of records.
    pub(crate) rate: RateState,
}

impl TxLog {
    /// Forgets everything (connection reset or re-initialised).
    pub(crate) fn clear(&mut self) {
        self.recs.clear();
        self.lost = 0;
        self.retrans = 0;
        self.rate = RateState::default();
    }

    /// A fresh log, as `default` makes, in this one's storage while that is small (a
    /// recycled socket's, `Socket::renew`); this one is left empty.
    pub(crate) fn recycled(&mut self) -> TxLog {
        let mut recs = core::mem::take(&mut self.recs);
        recs.clear();
        if recs.capacity() > RECYCLED_RECORDS {
            recs = VecDeque::new();
        }
        TxLog {
            recs,
            ..TxLog::default()
        }
    }

    /// Gives back the ring's storage once the log is empty (an idle connection).
    pub(crate) fn release(&mut self) {
        if self.recs.is_empty() {
            self.recs = VecDeque::new();
        }
    }

    /// Delivery-rate estimation: `r` (or its acknowledged part) was delivered.
    fn rate_delivered(&mut self, r: &Record, now: Instant) {
        let (app, retrans) = (r.flags & APP_LIMITED != 0, r.flags & RETRANS != 0);
        self.rate.on_delivered(
            r.rate,
            app,
            retrans,
            r.xmit_ts,
            r.order,
            r.end,
            r.len(),
            now,
        );
    }

    /// Bytes deemed lost and not yet retransmitted.
    pub(crate) fn lost_bytes(&self) -> usize {
        self.lost
    }

    /// When SND.UNA's segment was last (re)transmitted.
    pub(crate) fn head_sent(&self) -> Option<Instant> {
        self.recs.front().map(|r| r.xmit_ts)
    }

    /// Whether any retransmitted record is still unacknowledged.
    pub(crate) fn has_retrans(&self) -> bool {
        self.retrans != 0
    }

    fn set_flags(&mut self, i: usize, flags: u8) {
        let r = self.recs[i];
        let was_lost = r.flags & (LOST | SACKED) == LOST;
        let is_lost = flags & (LOST | SACKED) == LOST;
        match (was_lost, is_lost) {
            (false, true) => {
                self.lost += r.len();
                self.rate.on_lost(r.len());
            }
            (true, false) => self.lost = self.lost.saturating_sub(r.len()),
            _ => {}
        }
        match (r.flags & RETRANS != 0, flags & RETRANS != 0) {
            (false, true) => self.retrans += 1,
            (true, false) => self.retrans = self.retrans.saturating_sub(1),
            _ => {}
        }
        self.recs[i].flags = flags;
    }

    /// Index of the first record ending after `seq`.
    fn index_after(&self, seq: SeqNumber) -> usize {
        self.recs.partition_point(|r| r.end <= seq)
    }

    /// Splits the record containing `seq` strictly inside it; false when the log is
    /// full (the record then stays whole).
    fn split_at(&mut self, seq: SeqNumber) -> bool {
        let i = self.index_after(seq);
        let Some(&r) = self.recs.get(i) else {
            return true;
        };
        if r.start >= seq {
            return true;
        }
        if self.recs.len() >= MAX_RECORDS {
            return false;
        }
        // Counters are per byte (lost) and per record (retrans): a RETRANS record
        // becomes two.
        if r.flags & RETRANS != 0 {
            self.retrans += 1;
        }
        self.recs[i].end = seq;
        self.recs.insert(i + 1, Record { start: seq, ..r });
        true
    }

    /// Records a transmission of `[start, end)` at `now`: new data is appended, a
    /// retransmission updates the records it covers (RFC 8985 §6.1: the latest
    /// transmission time, `Segment.lost` cleared).
    #[inline]
    pub(crate) fn on_transmit(&mut self, start: SeqNumber, end: SeqNumber, now: Instant) {
        if end <= start {
            return;
        }
        let order = self.next_order;
        self.next_order = self.next_order.wrapping_add(1);
        let (rate, app) = self.rate.on_send(now, self.recs.is_empty());
        let app = if app { APP_LIMITED } else { 0 };
        let full = self.recs.len() >= MAX_RECORDS;
        // One look at the last record: new data lands at or past its end.
        let tail = match self.recs.back_mut() {
            Some(b) if start >= b.end => {
                let next = b.order.wrapping_add(1) == order;
                let same = b.flags == app && b.rate == rate;
                let plain = b.flags & !APP_LIMITED == 0;
                if b.end == start && plain && ((b.xmit_ts == now && next && same) || full) {
                    // Appended at the same instant, nothing sent and nothing delivered
                    // in between (or no room): one record.
                    b.end = end;
                    b.xmit_ts = now;
                    b.order = order;
                    b.rate = rate;
                    b.flags = app;
                    return;
                }
                None
            }
            Some(b) => Some(b.end),
            None => None,
        };
        let Some(tail) = tail else {
            self.recs.push_back(Record {
                start,
                end,
                xmit_ts: now,
                order,
                flags: app,
                rate,
            });
            return;
        };
        self.split_at(start);
        self.split_at(end);
        let mut i = self.index_after(start);
        while i < self.recs.len() && self.recs[i].start < end {
            let f = ((self.recs[i].flags | RETRANS) & !(LOST | APP_LIMITED)) | app;
            self.set_flags(i, f);
            self.recs[i].xmit_ts = now;
            self.recs[i].order = order;
            self.recs[i].rate = rate;
            i += 1;
        }
        if end > tail {
            // Sent past the log's end (its start was below it): the rest is new.
            self.on_transmit(tail, end, now);
        }
    }

    /// The cumulative ACK reached `snd_una`: drops the records below it, feeding RACK
    /// with those not SACKed before (RFC 8985 §6.2 steps 1-3).
    pub(crate) fn on_cum_ack(
        &mut self,
        snd_una: SeqNumber,
        rack: &mut Rack,
        now: Instant,
        orig_limit: SeqNumber,
        echo_before: &dyn Fn(Instant) -> bool,
    ) -> Delivered {
        let mut d = Delivered::default();
        while let Some(&r) = self.recs.front() {
            if r.start >= snd_una {
                break;
            }
            if r.end > snd_una {
                // Partly acknowledged (records sent at one instant are one record):
                // the acknowledged part counts as delivered, the rest stays.
                if r.flags & (LOST | SACKED) == LOST {
                    self.lost = self.lost.saturating_sub((snd_una - r.start) as usize);
                }
                if r.flags & SACKED == 0 {
                    let part = Record { end: snd_una, ..r };
                    self.rate_delivered(&part, now);
                    rack.update(&part, now, echo_before);
                    d.orig |= r.flags & RETRANS == 0 && snd_una <= orig_limit;
                }
                self.recs[0].start = snd_una;
                break;
            }
            self.set_flags(0, 0);
            self.recs.pop_front();
            if r.flags & SACKED == 0 {
                self.rate_delivered(&r, now);
                rack.update(&r, now, echo_before);
                d.orig |= r.flags & RETRANS == 0 && r.end <= orig_limit;
            }
        }
        d
    }

    /// One SACK block `[left, right)`: marks the records inside it SACKed and feeds
    /// RACK with the newly SACKed ones. No timestamp test here, unlike
    /// [`on_cum_ack`](Self::on_cum_ack): a receiver echoes the TSval of the segment
    /// that last advanced RCV.NXT (RFC 7323 §4.3), so an ACK carrying SACK blocks
    /// echoes an older transmission whatever it SACKs, and the test ignored every
    /// SACKed retransmission once the timestamp clock ticked, leaving a lost
    /// retransmission before them to the RTO. Linux's `tcp_rack_advance` tests only
    /// `rtt < min_rtt` for them, as step 2 does here.
    pub(crate) fn on_sack(
        &mut self,
        left: SeqNumber,
        right: SeqNumber,
        rack: &mut Rack,
        now: Instant,
        orig_limit: SeqNumber,
    ) -> Delivered {
        let mut d = Delivered::default();
        if right <= left {
            return d;
        }
        self.split_at(left);
        self.split_at(right);
        let mut i = self.index_after(left);
        while i < self.recs.len() && self.recs[i].end <= right {
            let r = self.recs[i];
            if r.start >= left && r.flags & SACKED == 0 {
                self.set_flags(i, r.flags | SACKED);
                self.rate_delivered(&r, now);
                rack.update(&r, now, &|_| false);
                d.orig |= r.flags & RETRANS == 0 && r.end <= orig_limit;
            }
            i += 1;
        }
        d
    }

    /// RFC 8985 §6.2 step 5 `RACK_detect_loss`: marks lost every unacknowledged record
    /// sent before the most recently delivered one for longer than RACK.rtt + reo_wnd.
    /// Returns the segments newly marked (in `mss` units) and, when some records are
    /// not yet overdue, how long until the first of them is (the reordering timer).
    pub(crate) fn detect_loss(
        &mut self,
        rack: &Rack,
        reo_wnd: Duration,
        now: Instant,
        mss: usize,
    ) -> (u64, Option<Duration>) {
        let Some(rack_ts) = rack.xmit_ts else {
            return (0, None);
        };
        let mut marked = 0u64;
        let mut timeout: Option<Duration> = None;
        for i in 0..self.recs.len() {
            let r = self.recs[i];
            if r.flags & (SACKED | LOST) != 0 {
                continue;
            }
            if !sent_after(
                (rack_ts, rack.order, rack.end_seq),
                (r.xmit_ts, r.order, r.end),
            ) {
                if self.retrans == 0 {
                    // Without retransmissions the log is in transmission order too:
                    // nothing further was sent before RACK's segment.
                    break;
                }
                continue;
            }
            let deadline = r.xmit_ts + rack.rtt + reo_wnd;
            if deadline <= now {
                self.set_flags(i, r.flags | LOST);
                marked += r.len().div_ceil(mss.max(1)) as u64;
            } else {
                let remaining = deadline - now;
                timeout = Some(timeout.map_or(remaining, |t| t.max(remaining)));
            }
        }
        (marked, timeout)
    }

    /// RFC 8985 §6.3 `RACK_mark_losses_on_RTO`: the first record, and every one not
    /// SACKed that was sent more than RACK.rtt + reo_wnd ago, is lost.
    pub(crate) fn mark_lost_on_rto(&mut self, rack: &Rack, reo_wnd: Duration, now: Instant) {
        for i in 0..self.recs.len() {
            let r = self.recs[i];
            if r.flags & SACKED != 0 {
                continue;
            }
            if i == 0 || r.xmit_ts + rack.rtt + reo_wnd <= now {
                self.set_flags(i, r.flags | LOST);
            }
        }
    }

    /// Undo: every LOST mark is taken back (the loss was spurious).
    pub(crate) fn unmark_lost(&mut self) {
        for i in 0..self.recs.len() {
            let f = self.recs[i].flags;
            if f & LOST != 0 {
                self.set_flags(i, f & !LOST);
            }
        }
    }

    /// Forgets every SACK mark (RFC 2018 §8: the receiver reneged).
    pub(crate) fn clear_sacked(&mut self) {
        for i in 0..self.recs.len() {
            let f = self.recs[i].flags;
            if f & SACKED != 0 {
                self.set_flags(i, f & !SACKED);
            }
        }
    }

    /// Bytes in flight by RFC 8985's and Linux's count: unacknowledged bytes neither
    /// SACKed nor deemed lost (a retransmitted record is in flight again).
    pub(crate) fn pipe(&self) -> usize {
        self.recs
            .iter()
            .filter(|r| r.flags & (SACKED | LOST) == 0)
            .map(Record::len)
            .sum()
    }

    /// The first run of contiguous records deemed lost, as `[start, end)`.
    pub(crate) fn first_lost(&self) -> Option<(SeqNumber, SeqNumber)> {
        if self.lost == 0 {
            return None;
        }
        let is_lost = |r: &Record| r.flags & (LOST | SACKED) == LOST;
        let i = self.recs.iter().position(is_lost)?;
        let start = self.recs[i].start;
        let mut end = self.recs[i].end;
        for r in self.recs.iter().skip(i + 1) {
            if !is_lost(r) || r.start != end {
                break;
            }
            end = r.end;
        }
        Some((start, end))
    }

    /// Number of records (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.recs.len()
    }

    /// Checks the invariants of the module doc against the records (tests).
    #[cfg(test)]
    fn check(&self) -> Result<(), String> {
        let lost: usize = self
            .recs
            .iter()
            .filter(|r| r.flags & (LOST | SACKED) == LOST)
            .map(Record::len)
            .sum();
        let retrans = self.recs.iter().filter(|r| r.flags & RETRANS != 0).count();
        if (lost, retrans) != (self.lost, self.retrans) {
            return Err(format!(
                "counters {:?} vs records {:?}",
                (self.lost, self.retrans),
                (lost, retrans)
            ));
        }
        for w in self.recs.iter().zip(self.recs.iter().skip(1)) {
            if w.0.end != w.1.start || w.0.start >= w.0.end {
                return Err(format!("not contiguous: {:?} {:?}", w.0, w.1));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> SeqNumber {
        SeqNumber(n)
    }
    fn t(ms: i64) -> Instant {
        Instant::from_millis(ms)
    }
    fn never(_: Instant) -> bool {
        false
    }

    #[test]
    fn appends_splits_and_acks() {
        let mut log = TxLog::default();
        let mut rack = Rack::new();
        log.on_transmit(s(0), s(100), t(0));
        log.on_transmit(s(100), s(200), t(0)); // same instant: joins
        log.on_transmit(s(200), s(300), t(1));
        assert_eq!(log.len(), 2);
        log.on_sack(s(100), s(200), &mut rack, t(10), s(300));
        assert_eq!(log.len(), 3);
        assert_eq!(log.pipe(), 200);
        log.on_cum_ack(s(150), &mut rack, t(11), s(300), &never);
        assert_eq!(log.pipe(), 100);
        log.on_cum_ack(s(300), &mut rack, t(12), s(300), &never);
        assert_eq!(log.len(), 0);
        assert_eq!((log.lost_bytes(), log.retrans), (0, 0));
    }

    #[test]
    fn time_based_marking_waits_for_reo_wnd() {
        let mut log = TxLog::default();
        let mut rack = Rack::new();
        for k in 0..4u32 {
            log.on_transmit(s(k * 100), s(k * 100 + 100), t(i64::from(k)));
        }
        // Segment 1 SACKed 20 ms after it left: RACK.rtt = 19 ms, min_RTT 19 ms.
        log.on_sack(s(100), s(200), &mut rack, t(20), s(400));
        let reo = rack.reo_wnd(false, 1, None);
        assert_eq!(reo, Duration::from_micros(4750));
        // Segment 0 is overdue only at 0 + 19 + 4.75 ms.
        let (n, timer) = log.detect_loss(&rack, reo, t(20), 100);
        assert_eq!(n, 0);
        assert_eq!(timer, Some(Duration::from_micros(3750)));
        let (n, timer) = log.detect_loss(&rack, reo, t(24), 100);
        assert_eq!((n, timer), (1, None));
        assert_eq!(log.lost_bytes(), 100);
        assert_eq!(log.first_lost(), Some((s(0), s(100))));
        // Retransmitted: in flight again, no longer lost.
        log.on_transmit(s(0), s(100), t(25));
        assert_eq!((log.lost_bytes(), log.retrans), (0, 1));
        assert_eq!(log.pipe(), 300);
    }

    /// A retransmission SACKed while the ACK echoes an older TSval (the receiver echoes
    /// its last in-order segment's) still advances RACK, so an earlier retransmission
    /// that was lost is marked lost within a round trip instead of waiting for the RTO.
    #[test]
    fn sacked_retransmission_advances_rack_whatever_the_echo() {
        let mut log = TxLog::default();
        let mut rack = Rack::new();
        for k in 0..5u32 {
            log.on_transmit(s(k * 100), s(k * 100 + 100), t(0));
        }
        // Only segment 4 arrives, SACKed at 10 ms (min_RTT 10 ms): 0-3 are lost.
        log.on_sack(s(400), s(500), &mut rack, t(10), s(500));
        let reo = rack.reo_wnd(false, 1, None);
        assert_eq!(log.detect_loss(&rack, reo, t(20), 100).0, 4);
        // Retransmissions: segment 0 at 20 ms (lost again), 1-3 at 21 ms, SACKed at
        // 31 ms (by an ACK whose echo, from a Linux receiver, would be older than all
        // of them: on_sack takes none).
        log.on_transmit(s(0), s(100), t(20));
        log.on_transmit(s(100), s(400), t(21));
        log.on_sack(s(100), s(400), &mut rack, t(31), s(500));
        // RACK moved to the 21 ms retransmissions, so segment 0's, sent before them
        // and unacknowledged for longer than RACK.rtt + reo_wnd, is lost again.
        let reo = rack.reo_wnd(false, 1, None);
        assert_eq!(log.detect_loss(&rack, reo, t(34), 100).0, 1);
        assert_eq!(log.first_lost(), Some((s(0), s(100))));
    }

    /// Segment 0 retransmitted (lost again), then segment 1 retransmitted and SACKed
    /// 6 ms later, quicker than the data's min_RTT of 10 ms: how many segments RACK
    /// then marks lost, with a handshake RTT sample or none, and with reordering seen
    /// on the connection or not.
    fn fast_sacked_retransmission(handshake: Option<Duration>, reordered: bool) -> u64 {
        let mut log = TxLog::default();
        let mut rack = Rack::new();
        if let Some(r) = handshake {
            rack.on_handshake_rtt(r);
        }
        for k in 0..3u32 {
            log.on_transmit(s(k * 100), s(k * 100 + 100), t(0));
        }
        // Segment 2 SACKed after 10 ms (a compressed SACK): data min_RTT 10 ms.
        log.on_sack(s(200), s(300), &mut rack, t(10), s(300));
        let reo = rack.reo_wnd(true, 1, None);
        assert_eq!(log.detect_loss(&rack, reo, t(10), 100).0, 2);
        rack.reordering_seen = reordered;
        log.on_transmit(s(0), s(100), t(10));
        log.on_transmit(s(100), s(200), t(11));
        log.on_sack(s(100), s(200), &mut rack, t(17), s(300));
        // Past 10 + 6 ms (RACK.rtt) + the reordering window (1.25 ms at most).
        let reo = rack.reo_wnd(true, 2, None);
        log.detect_loss(&rack, reo, t(19), 100).0
    }

    /// Once reordering was seen, step 2 takes a retransmission SACKed faster than
    /// min_RTT as ambiguous (the SACK may be the delayed original's); the handshake's
    /// round trip brings min_RTT down to the path's and the same SACK advances RACK.
    #[test]
    fn handshake_rtt_keeps_a_fast_sacked_retransmission_unambiguous() {
        assert_eq!(fast_sacked_retransmission(None, true), 0, "ambiguous");
        assert_eq!(
            fast_sacked_retransmission(Some(Duration::from_millis(5)), true),
            1
        );
    }

    /// Without reordering seen, a retransmission SACKed faster than min_RTT advances
    /// RACK: the lost retransmission sent before it is marked in a round trip instead
    /// of waiting for the RTO.
    #[test]
    fn without_reordering_a_fast_sacked_retransmission_advances_rack() {
        assert_eq!(fast_sacked_retransmission(None, false), 1);
    }

    /// RACK.fack starts unset: with an ISN in the upper half of the sequence space, in-
    /// order delivery is not reordering (a fack starting at 0 lay above it).
    #[test]
    fn in_order_delivery_after_a_high_isn_is_not_reordering() {
        for isn in [0x9000_0000u32, 0xffff_ff00, 5] {
            let mut log = TxLog::default();
            let mut rack = Rack::new();
            for k in 0..4u32 {
                let a = isn.wrapping_add(k * 100);
                log.on_transmit(s(a), s(a.wrapping_add(100)), t(i64::from(k)));
            }
            for k in 1..=4u32 {
                rack.start_ack();
                log.on_cum_ack(
                    s(isn.wrapping_add(k * 100)),
                    &mut rack,
                    t(10 + i64::from(k)),
                    s(0),
                    &never,
                );
            }
            assert!(!rack.reordering_seen, "ISN {isn:#x}");
        }
    }

    /// Step 3 compares with RACK.fack before the ACK: an ACK that SACKs a high block
    /// and cumulatively acknowledges lower data (whose own ACK was lost) delivered
    /// both together; a later ACK delivering a never-retransmitted segment below the
    /// earlier SACK is reordering.
    #[test]
    fn one_ack_delivering_low_and_high_data_is_not_reordering() {
        let mut log = TxLog::default();
        let mut rack = Rack::new();
        for k in 0..5u32 {
            log.on_transmit(s(k * 100), s(k * 100 + 100), t(i64::from(k)));
        }
        rack.start_ack();
        log.on_sack(s(300), s(400), &mut rack, t(20), s(0));
        log.on_cum_ack(s(200), &mut rack, t(20), s(0), &never);
        assert!(!rack.reordering_seen);
        rack.start_ack();
        log.on_sack(s(200), s(300), &mut rack, t(21), s(0));
        assert!(rack.reordering_seen);
    }

    #[test]
    fn dsack_widens_reo_wnd_once_per_round() {
        let mut rack = Rack::new();
        rack.min_rtt = Some(Duration::from_millis(40));
        rack.on_ack_reo_wnd(s(0), s(1000), true);
        rack.on_ack_reo_wnd(s(10), s(1000), true);
        assert_eq!(rack.reo_wnd_mult(), 2);
        assert_eq!(rack.reo_wnd(false, 0, None), Duration::from_millis(20));
        rack.on_ack_reo_wnd(s(1000), s(2000), true);
        assert_eq!(rack.reo_wnd_mult(), 3);
        for _ in 0..REO_WND_PERSIST {
            rack.on_recovery_exit();
        }
        assert_eq!(rack.reo_wnd_mult(), 1);
    }

    proptest::proptest! {
        /// Any mix of sends, retransmissions, SACKs, cumulative ACKs, loss marking
        /// and undo keeps the records contiguous and the counters exact, and the log
        /// always covers [SND.UNA, SND.MAX).
        #[test]
        fn counters_and_coverage_hold(ops in proptest::collection::vec((0u8..7, 0u32..3000, 1u32..300), 1..200)) {
            let mut log = TxLog::default();
            let mut rack = Rack::new();
            let (mut una, mut max) = (0u32, 0u32);
            for (i, (op, a, b)) in ops.into_iter().enumerate() {
                let now = t(i as i64);
                match op {
                    0 | 1 => {
                        log.on_transmit(s(max), s(max + b), now);
                        max += b;
                    }
                    2 if max > una => {
                        let l = una + a % (max - una);
                        log.on_transmit(s(l), s((l + b).min(max)), now);
                    }
                    3 if max > una => {
                        let l = una + a % (max - una);
                        log.on_sack(s(l), s((l + b).min(max)), &mut rack, now, s(max));
                    }
                    4 if max > una => {
                        una += a % (max - una + 1);
                        log.on_cum_ack(s(una), &mut rack, now, s(max), &never);
                    }
                    5 => {
                        log.detect_loss(&rack, Duration::from_millis(u64::from(b % 3)), now, 100);
                    }
                    6 if a % 2 == 0 => log.mark_lost_on_rto(&rack, Duration::ZERO, now),
                    6 => log.unmark_lost(),
                    _ => {}
                }
                log.check().map_err(proptest::test_runner::TestCaseError::fail)?;
                let covered: usize = log.recs.iter().map(Record::len).sum();
                proptest::prop_assert_eq!(covered, (max - una) as usize);
                if let Some(r) = log.recs.front() {
                    proptest::prop_assert_eq!(r.start, s(una));
                }
            }
        }
    }

    #[test]
    fn record_is_small() {
        // 24 bytes for RACK, 12 (+ padding) for the delivery-rate snapshot.
        assert!(core::mem::size_of::<Record>() <= 40);
    }

    #[test]
    fn log_is_bounded() {
        let mut log = TxLog::default();
        let mut rack = Rack::new();
        for k in 0..(MAX_RECORDS as u32 + 100) {
            log.on_transmit(s(k * 10), s(k * 10 + 10), t(i64::from(k)));
        }
        assert_eq!(log.len(), MAX_RECORDS);
        // Single-byte SACKs cannot split further.
        log.on_sack(s(5), s(6), &mut rack, t(0), s(0));
        assert_eq!(log.len(), MAX_RECORDS);
    }
}
