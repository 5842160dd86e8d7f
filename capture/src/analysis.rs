//! Conversation tracking over decoded frames: TCP connections (relative sequence
//! numbers, retransmissions, handshake options, per-direction counts) and UDP flows.
//!
//! Frames must be fed in capture order. Sequence arithmetic wraps modulo 2^32.

use crate::decode::{Frame, Tcp};
use core::net::SocketAddr;
use serde::Serialize;
use std::collections::HashMap;

/// How `ustack dump` shows TCP sequence and acknowledgment numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SeqMode {
    /// Relative to each direction's initial sequence number (the SYN shows `seq 0`);
    /// without a SYN, relative to the first number seen.
    #[default]
    Relative,
    /// As carried on the wire (`tcpdump -S`).
    Absolute,
    /// Exactly what `tcpdump` prints: absolute until (and including) the first segment
    /// with ACK set, relative after it.
    Tcpdump,
}

/// What the tracker learned about one TCP segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TcpInfo {
    /// 1-based connection number, in order of first appearance.
    pub conn: usize,
    /// Sent by the connection's client (the SYN sender).
    pub from_client: bool,
    /// Sequence number to show (per [`SeqMode`]).
    pub seq: u32,
    /// Acknowledgment number to show.
    pub ack: u32,
    /// SACK blocks to show.
    pub sack: Vec<(u32, u32)>,
    /// Sequence number relative to this direction's ISN.
    pub rel_seq: u32,
    /// Acknowledgment number relative to the other direction's ISN.
    pub rel_ack: u32,
    /// SACK blocks relative to the other direction's ISN.
    pub rel_sack: Vec<(u32, u32)>,
    /// Re-sends sequence space this direction had already sent.
    pub retransmission: bool,
    /// Receive window in bytes: the window field shifted by the sender's window scale
    /// when both SYNs carried one (RFC 7323 §2.2; never on a SYN).
    pub window: u32,
}

/// Options a SYN or SYN-ACK carried.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HandshakeOptions {
    /// MSS.
    pub mss: Option<u16>,
    /// Window scale shift.
    pub window_scale: Option<u8>,
    /// SACK permitted.
    pub sack_permitted: bool,
    /// Timestamps offered.
    pub timestamps: bool,
}

/// Counts for one direction of a connection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DirStats {
    /// Segments.
    pub packets: u64,
    /// Payload bytes (retransmissions included).
    pub bytes: u64,
    /// SYN seen.
    pub syn: bool,
    /// FIN seen.
    pub fin: bool,
    /// RST seen.
    pub rst: bool,
    /// Segments that re-sent sequence space already sent.
    pub retransmissions: u64,
    /// Options of this direction's SYN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake: Option<HandshakeOptions>,
}

/// One TCP connection.
#[derive(Clone, Debug, Serialize)]
pub struct TcpConn {
    /// 1-based number.
    pub id: usize,
    /// The SYN sender (or the first sender seen).
    pub client: SocketAddr,
    /// The other end.
    pub server: SocketAddr,
    /// Time of the first segment (ns since the epoch).
    pub first_ns: i128,
    /// Time of the last segment.
    pub last_ns: i128,
    /// Client to server.
    pub to_server: DirStats,
    /// Server to client.
    pub to_client: DirStats,
    /// ISN per direction (0 client, 1 server), or the first sequence number seen.
    #[serde(skip)]
    isn: [Option<u32>; 2],
    /// tcpdump's bases per direction, once it has seen a segment with ACK.
    #[serde(skip)]
    tcpdump_base: Option<[u32; 2]>,
    /// Highest sequence number sent + 1 per direction.
    #[serde(skip)]
    max_end: [Option<u32>; 2],
}

impl TcpConn {
    /// Duration from first to last segment in seconds.
    pub fn duration_secs(&self) -> f64 {
        (self.last_ns - self.first_ns) as f64 / 1e9
    }

    /// The direction that carried more payload: `true` for client to server.
    pub fn data_from_client(&self) -> bool {
        self.to_server.bytes >= self.to_client.bytes
    }

    /// Window scale in force for the given direction (both SYNs must offer one).
    fn scale(&self, dir: usize) -> Option<u8> {
        let c = self.to_server.handshake.as_ref()?.window_scale?;
        let s = self.to_client.handshake.as_ref()?.window_scale?;
        Some(if dir == 0 { c } else { s }.min(14))
    }
}

/// One UDP flow (both directions of an address/port pair).
#[derive(Clone, Debug, Serialize)]
pub struct UdpFlow {
    /// 1-based number.
    pub id: usize,
    /// The first sender.
    pub a: SocketAddr,
    /// The other end.
    pub b: SocketAddr,
    /// Time of the first datagram.
    pub first_ns: i128,
    /// Time of the last datagram.
    pub last_ns: i128,
    /// Datagrams a to b.
    pub packets_ab: u64,
    /// Payload bytes a to b.
    pub bytes_ab: u64,
    /// Datagrams b to a.
    pub packets_ba: u64,
    /// Payload bytes b to a.
    pub bytes_ba: u64,
}

fn key(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if (a.ip(), a.port()) <= (b.ip(), b.port()) {
        (a, b)
    } else {
        (b, a)
    }
}

/// Tracks every conversation in a capture.
#[derive(Debug, Default)]
pub struct Tracker {
    mode: SeqMode,
    /// TCP connections in order of appearance.
    pub tcp: Vec<TcpConn>,
    /// UDP flows in order of appearance.
    pub udp: Vec<UdpFlow>,
    tcp_index: HashMap<(SocketAddr, SocketAddr), usize>,
    udp_index: HashMap<(SocketAddr, SocketAddr), usize>,
}

impl Tracker {
    /// A tracker showing sequence numbers per `mode`.
    pub fn new(mode: SeqMode) -> Tracker {
        Tracker {
            mode,
            ..Tracker::default()
        }
    }

    /// Feeds the next frame; returns what was learned about its TCP segment, if any.
    pub fn observe(&mut self, f: &Frame) -> Option<TcpInfo> {
        let (ip_src, ip_dst) = f.ip_addrs()?;
        if let Some(u) = &f.udp {
            let (src, dst) = (
                SocketAddr::new(ip_src, u.src_port),
                SocketAddr::new(ip_dst, u.dst_port),
            );
            let idx = *self.udp_index.entry(key(src, dst)).or_insert_with(|| {
                self.udp.push(UdpFlow {
                    id: self.udp.len() + 1,
                    a: src,
                    b: dst,
                    first_ns: f.timestamp_ns,
                    last_ns: f.timestamp_ns,
                    packets_ab: 0,
                    bytes_ab: 0,
                    packets_ba: 0,
                    bytes_ba: 0,
                });
                self.udp.len() - 1
            });
            let flow = &mut self.udp[idx];
            flow.last_ns = f.timestamp_ns;
            if flow.a == src {
                flow.packets_ab += 1;
                flow.bytes_ab += u.payload_len as u64;
            } else {
                flow.packets_ba += 1;
                flow.bytes_ba += u.payload_len as u64;
            }
            return None;
        }
        let t = f.tcp.as_ref()?;
        let src = SocketAddr::new(ip_src, t.src_port);
        let dst = SocketAddr::new(ip_dst, t.dst_port);
        let k = key(src, dst);
        let existing = self.tcp_index.get(&k).copied();
        // A SYN with a new ISN on a known 4-tuple starts a new connection (port reuse).
        let reuse = existing.is_some_and(|i| {
            let c = &self.tcp[i];
            t.syn() && !t.ack_flag() && c.client == src && c.isn[0].is_some_and(|isn| isn != t.seq)
        });
        let idx = match existing {
            Some(i) if !reuse => i,
            _ => {
                // A SYN-ACK seen first means the receiver is the client.
                let (client, server) = if t.syn() && t.ack_flag() {
                    (dst, src)
                } else {
                    (src, dst)
                };
                self.tcp.push(TcpConn {
                    id: self.tcp.len() + 1,
                    client,
                    server,
                    first_ns: f.timestamp_ns,
                    last_ns: f.timestamp_ns,
                    to_server: DirStats::default(),
                    to_client: DirStats::default(),
                    isn: [None; 2],
                    tcpdump_base: None,
                    max_end: [None; 2],
                });
                self.tcp_index.insert(k, self.tcp.len() - 1);
                self.tcp.len() - 1
            }
        };
        Some(update(
            &mut self.tcp[idx],
            self.mode,
            f.timestamp_ns,
            src,
            t,
        ))
    }
}

fn update(c: &mut TcpConn, mode: SeqMode, ts: i128, src: SocketAddr, t: &Tcp) -> TcpInfo {
    let d = usize::from(src != c.client);
    let o = 1 - d;
    c.last_ns = ts;
    if t.syn() {
        c.isn[d] = Some(t.seq);
    }
    let isn = *c.isn[d].get_or_insert(t.seq);
    if t.ack_flag() && c.isn[o].is_none() {
        c.isn[o] = Some(t.ack.wrapping_sub(1));
    }
    let peer_isn = c.isn[o].unwrap_or(0);

    // Retransmission: the segment starts below the highest sequence number this
    // direction already sent ("same sequence range sent twice").
    let seg_len = t.segment_len() as u32;
    let end = t.seq.wrapping_add(seg_len);
    let retransmission =
        seg_len > 0 && c.max_end[d].is_some_and(|max| (t.seq.wrapping_sub(max) as i32) < 0);
    if c.max_end[d].is_none_or(|max| (end.wrapping_sub(max) as i32) > 0) {
        c.max_end[d] = Some(end);
    }

    let stats = if d == 0 {
        &mut c.to_server
    } else {
        &mut c.to_client
    };
    stats.packets += 1;
    stats.bytes += t.payload_len as u64;
    stats.syn |= t.syn();
    stats.fin |= t.fin();
    stats.rst |= t.rst();
    stats.retransmissions += u64::from(retransmission);
    if t.syn() && stats.handshake.is_none() {
        stats.handshake = Some(HandshakeOptions {
            mss: t.mss(),
            window_scale: t.window_scale(),
            sack_permitted: t.sack_permitted(),
            timestamps: t.timestamp().is_some(),
        });
    }

    let rel_sack: Vec<_> = t
        .sack_blocks()
        .iter()
        .map(|&(l, r)| (l.wrapping_sub(peer_isn), r.wrapping_sub(peer_isn)))
        .collect();
    let (seq, ack, sack) = match mode {
        SeqMode::Absolute => (t.seq, t.ack, t.sack_blocks().to_vec()),
        SeqMode::Relative => (
            t.seq.wrapping_sub(isn),
            t.ack.wrapping_sub(peer_isn),
            rel_sack.clone(),
        ),
        SeqMode::Tcpdump => tcpdump_numbers(c, d, t),
    };
    let window = match (t.syn(), c.scale(d)) {
        (false, Some(s)) => u32::from(t.window) << s,
        _ => u32::from(t.window),
    };
    TcpInfo {
        conn: c.id,
        from_client: d == 0,
        seq,
        ack,
        sack,
        rel_seq: t.seq.wrapping_sub(isn),
        rel_ack: t.ack.wrapping_sub(peer_isn),
        rel_sack,
        retransmission,
        window,
    }
}

/// tcpdump's print-tcp.c: only segments with ACK take part; the first one (or any
/// SYN-ACK) records both bases and is printed absolute, later ones relative. SACK
/// blocks are made relative whenever bases exist.
fn tcpdump_numbers(c: &mut TcpConn, d: usize, t: &Tcp) -> (u32, u32, Vec<(u32, u32)>) {
    if !t.ack_flag() {
        return (t.seq, t.ack, t.sack_blocks().to_vec());
    }
    let o = 1 - d;
    let rel = |base: u32| -> Vec<(u32, u32)> {
        t.sack_blocks()
            .iter()
            .map(|&(l, r)| (l.wrapping_sub(base), r.wrapping_sub(base)))
            .collect()
    };
    match c.tcpdump_base {
        Some(b) if !t.syn() => (
            t.seq.wrapping_sub(b[d]),
            t.ack.wrapping_sub(b[o]),
            rel(b[o]),
        ),
        _ => {
            let mut b = [0; 2];
            b[d] = t.seq;
            b[o] = t.ack.wrapping_sub(1);
            c.tcpdump_base = Some(b);
            (t.seq, t.ack, rel(b[o]))
        }
    }
}
