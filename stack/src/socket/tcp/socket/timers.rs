//! The timers of one connection: retransmission (RFC 6298, with SYN retries and
//! zero-window probing under data in flight), tail loss probe expiry, delayed ACK
//! (RFC 1122 §4.2.3.2), persist (RFC 9293 §3.8.6.1), keepalive (RFC 1122 §4.2.3.6),
//! TIME-WAIT (2*MSL) and an orphan's FIN-WAIT-2 timeout.
//!
//! Each timer is an `Option<Instant>` deadline on the socket; [`Socket::poll_at`] is the
//! earliest, which the layer keeps in its heap. A timer is cleared before it runs.

use super::{Probe, Socket};
use crate::socket::tcp::config::{TcpConfig, TcpContext};
use crate::socket::tcp::types::{EventQueue, TcpError, TcpEvent, TcpState};
use crate::time::Instant;
use crate::wire::TcpRepr;

impl Socket {
    /// The earliest deadline of this socket.
    pub(crate) fn poll_at(&self) -> Option<Instant> {
        // Straight-line: this runs after every segment in and out.
        let earlier = crate::time::earliest;
        let a = earlier(self.rto_at, self.tlp_at);
        let b = earlier(self.delack_at, self.persist_at);
        let c = earlier(self.keepalive_at, self.close_at);
        earlier(
            earlier(a, b),
            earlier(earlier(c, self.rack_at), self.pace_at),
        )
    }

    /// Runs the timers due at `cx.now`; returns a RST to send if the connection was
    /// abandoned by keepalive.
    pub(crate) fn handle_timeout(
        &mut self,
        cx: &TcpContext,
        cfg: &TcpConfig,
        ev: &mut EventQueue,
    ) -> Option<TcpRepr<'static>> {
        self.tlp_armed = None;
        let now = cx.now;
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(self.close_at) {
            self.timers_changed |= self.close_at.is_some();
            self.close_at = None;
            if matches!(self.state, TcpState::TimeWait | TcpState::FinWait2) {
                self.fail(ev, None);
                return None;
            }
        }
        if due(self.pace_at) {
            self.pacing_timer_fired();
        }
        if due(self.rack_at) {
            // RFC 8985 §6.2 step 5: the reordering window of a segment has passed.
            self.timers_changed |= self.rack_at.is_some();
            self.rack_at = None;
            let was = self.recovery.is_some();
            self.rack_detect(now, ev);
            if !was && self.recovery.is_some() {
                // As Linux's tcp_rack_reo_timeout: PRR counts one segment delivered,
                // so the first retransmission goes at once.
                self.prr_on_ack(self.send_mss());
            }
        }
        if due(self.tlp_at) {
            self.timers_changed |= self.tlp_at.is_some();
            self.tlp_at = None;
            self.fire_tlp(now, ev);
        }
        if due(self.rto_at) {
            self.timers_changed |= self.rto_at.is_some();
            self.rto_at = None;
            self.timers_changed |= self.tlp_at.is_some();
            self.tlp_at = None;
            self.on_rto(now, cfg, ev);
            if self.state == TcpState::Closed {
                return None;
            }
        }
        if due(self.delack_at) {
            self.timers_changed |= self.delack_at.is_some();
            self.delack_at = None;
            self.ack_now = true;
        }
        if due(self.persist_at) {
            self.timers_changed |= self.persist_at.is_some();
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
                // RFC 1122 §4.2.3.4 (d): the override timeout sends what the window
                // allows; for a MSG_MORE tail it is the cork ceiling, which ends the hold.
                self.force_send = true;
                self.more = false;
            }
        }
        if due(self.keepalive_at) {
            self.timers_changed |= self.keepalive_at.is_some();
            self.keepalive_at = None;
            return self.on_keepalive(now, ev);
        }
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
            let at = Some(now + self.rtt.rto());
            self.timers_changed |= self.rto_at != at;
            self.rto_at = at;
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
                let first = self.rto_recover.is_none();
                if first && (self.recovery.is_none() || self.undo.is_none()) {
                    // Undo state for F-RTO; a timeout during fast recovery keeps the
                    // state saved when that recovery began (as Linux does).
                    self.save_undo();
                }
                // RFC 5682 §3.1 step 1: F-RTO watches the ACKs after the first timeout
                // of an episode (with SACK; it needs RACK's per-segment record).
                self.frto = if first && self.sack_ok { 1 } else { 0 };
                self.cc.on_rto(now, flight, self.send_mss());
                self.emit_cc_event(ev);
                if self.recovery.take().is_some() {
                    self.rack.on_recovery_exit();
                }
                self.dupacks = 0;
                self.tlp_end = None;
                self.tlp_pending = false;
                self.timers_changed |= self.rack_at.is_some();
                self.rack_at = None;
                self.high_rxt = self.snd_una;
                if self.sack_ok && self.scoreboard.lowest() == Some(self.snd_una) {
                    // RFC 2018 §8: SND.UNA itself is SACKed but not acknowledged, so the
                    // receiver reneged (Linux tcp_check_sack_reneging): forget it all.
                    self.scoreboard.clear();
                    self.txlog.clear_sacked();
                }
                if self.sack_ok {
                    // RFC 6675 §5.1 (as Linux): the scoreboard survives the timeout, so
                    // SACKed data is not resent. RFC 8985 §6.3: what RACK deems lost is
                    // marked, SND.UNA's segment always; it goes first, under cwnd =
                    // 1 MSS, the rest as the ACKs of slow start allow.
                    let reo_wnd = self.rack.reo_wnd(true, 0, self.rtt.srtt());
                    self.txlog.mark_lost_on_rto(&self.rack, reo_wnd, now);
                    self.rtx_next = Some(self.snd_una);
                } else {
                    // Go back N; RFC 2018 §8: forget SACK information after a timeout.
                    self.snd_nxt = self.snd_una;
                    self.rtx_next = None;
                    self.scoreboard.clear();
                }
                self.rto_recover = Some(self.snd_max);
                self.rto_tsval = Some(self.ts_now(now));
            }
        }
        self.rtt_sample = None;
        let at = Some(now + self.rtt.rto());
        self.timers_changed |= self.rto_at != at;
        self.rto_at = at;
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
            let at = Some(now + self.opts.keep_idle);
            self.timers_changed |= self.keepalive_at != at;
            self.keepalive_at = at;
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
        let at = Some(now + self.opts.keep_intvl);
        self.timers_changed |= self.keepalive_at != at;
        self.keepalive_at = at;
        None
    }

    pub(super) fn stop_timers(&mut self) {
        self.timers_changed |= self.rto_at.is_some();
        self.rto_at = None;
        self.timers_changed |= self.tlp_at.is_some();
        self.tlp_at = None;
        self.timers_changed |= self.rack_at.is_some();
        self.rack_at = None;
        self.timers_changed |= self.delack_at.is_some();
        self.delack_at = None;
        self.timers_changed |= self.persist_at.is_some();
        self.persist_at = None;
        self.timers_changed |= self.keepalive_at.is_some();
        self.keepalive_at = None;
        self.timers_changed |= self.close_at.is_some();
        self.close_at = None;
        self.timers_changed |= self.pace_at.is_some();
        self.pace_at = None;
    }

    pub(super) fn enter_time_wait(&mut self, now: Instant, cfg: &TcpConfig, ev: &mut EventQueue) {
        self.stop_timers();
        let at = Some(now + cfg.msl.saturating_mul(2));
        self.timers_changed |= self.close_at != at;
        self.close_at = at;
        self.set_state(ev, TcpState::TimeWait);
    }

    /// When TIME-WAIT ends (the 2*MSL deadline), if set.
    pub(crate) fn close_deadline(&self) -> Option<Instant> {
        self.close_at
    }

    /// What a compact TIME-WAIT entry keeps of this connection (`tcp::time_wait`).
    pub(in crate::socket::tcp) fn time_wait_entry(
        &mut self,
        deadline: Instant,
    ) -> crate::socket::tcp::time_wait::TimeWait {
        // The window field an ACK would carry (nothing more will be read); only the
        // window is kept, so the time given for the timestamp does not matter.
        let window_field = self.ack_reply(deadline).window_len;
        crate::socket::tcp::time_wait::TimeWait {
            handle: self.handle,
            local: self.local,
            remote: self.remote,
            snd_nxt: self.snd_max,
            rcv_nxt: self.rcv_nxt,
            rcv_wnd: self.rx.window().min(u32::MAX as usize) as u32,
            window_field,
            max_snd_wnd: self.max_snd_wnd.min(u32::MAX as usize) as u32,
            ts_ok: self.ts_ok,
            ts_recent: self.ts_recent,
            ts_recent_age: self.ts_recent_age,
            ts_offset: self.ts_offset,
            last_oow_ack: self.last_oow_ack,
            deadline,
            port_claim: None,
            congestion: self.opts.congestion,
        }
    }
}
