//! TCP (RFC 9293). CONTRACT STUB: the connection state machine replaces this file.
//!
//! The [`TcpLayer`] owns every TCP socket of an interface. Today it only answers every
//! segment as a CLOSED port would (RFC 9293 §3.10.7.1).

use super::IcmpError;
use crate::time::Instant;
use crate::wire::{IpProtocol, Ipv4Repr, SeqNumber, TcpFlags, TcpOptions, TcpRepr};
use core::net::Ipv4Addr;

/// TCP tunables shared by every socket of a layer (per-socket overrides live on sockets).
#[derive(Clone, Debug, Default)]
pub struct TcpConfig {}

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

/// A structured TCP event (state change, retransmission, ...), pulled with
/// [`TcpLayer::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpEvent {}

/// All TCP sockets of one interface, with their demultiplexing maps and timers.
#[derive(Debug, Default)]
pub struct TcpLayer {}

impl TcpLayer {
    /// A layer with no sockets; `seed` keys initial sequence numbers and ports.
    pub fn new(_config: TcpConfig, _seed: u64) -> TcpLayer {
        TcpLayer {}
    }

    /// Handles a segment addressed to us; returns a segment to send at once (RST, ACK,
    /// challenge ACK), if any. The reply's IPv4 fields other than the addresses and
    /// protocol are filled in by the interface.
    pub fn process(
        &mut self,
        _cx: &TcpContext,
        ip: &Ipv4Repr,
        seg: &TcpRepr<'_>,
    ) -> Option<(Ipv4Repr, TcpRepr<'static>)> {
        closed_port_reply(ip, seg)
    }

    /// Emits at most one pending segment through `emit`; returns whether it did.
    pub fn dispatch(
        &mut self,
        _cx: &TcpContext,
        _emit: &mut dyn FnMut(&Ipv4Repr, &TcpRepr<'_>),
    ) -> bool {
        false
    }

    /// Runs every timer due at `cx.now`.
    pub fn handle_timeout(&mut self, _cx: &TcpContext) {}

    /// The earliest deadline of any socket.
    pub fn poll_at(&self) -> Option<Instant> {
        None
    }

    /// Delivers an ICMP error quoting one of our segments (RFC 1122 §4.2.3.9).
    pub fn handle_icmp_error(&mut self, _cx: &TcpContext, _err: &IcmpError) {}

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<TcpEvent> {
        None
    }
}

/// The reply of a CLOSED port (RFC 9293 §3.10.7.1): nothing to a RST; to a segment with
/// ACK, `<SEQ=SEG.ACK><CTL=RST>`; otherwise `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`.
pub fn closed_port_reply(ip: &Ipv4Repr, seg: &TcpRepr<'_>) -> Option<(Ipv4Repr, TcpRepr<'static>)> {
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
    let reply_ip = Ipv4Repr {
        src_addr: ip.dst_addr,
        dst_addr: ip.src_addr,
        protocol: IpProtocol::TCP,
        ttl: 64,
        tos: 0,
        ident: 0,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        payload_len: 0,
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
    Some((reply_ip, reply))
}
