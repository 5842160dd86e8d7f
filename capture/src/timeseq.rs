//! The time-sequence (Stevens/tcptrace) data of one TCP connection of a capture: the
//! segments of its data direction, the ACKs, receive windows and SACK blocks of the other.
//! Pure data, computed from the [`crate::analysis`] tracker; drawing it is
//! the `plot` module's job (feature `plot`), so tests can assert on it without plotters.

use crate::analysis::TcpConn;
use crate::dump::Capture;
use core::net::SocketAddr;

/// One segment of the data direction.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentMark {
    /// Seconds since the connection's first packet.
    pub t: f64,
    /// Relative sequence number of the first byte (unwrapped).
    pub seq: u64,
    /// Sequence space: payload plus SYN/FIN.
    pub len: u64,
    /// Re-sends sequence space already sent.
    pub retransmission: bool,
}

/// The data behind a time-sequence graph.
#[derive(Clone, Debug, Default)]
pub struct TimeSequence {
    /// Connection number.
    pub conn: usize,
    /// Sender of the data direction.
    pub from: Option<SocketAddr>,
    /// Receiver.
    pub to: Option<SocketAddr>,
    /// Segments sent.
    pub segments: Vec<SegmentMark>,
    /// (time, relative ACK) from the receiver.
    pub acks: Vec<(f64, u64)>,
    /// (time, ACK + scaled window): the right edge the receiver offers.
    pub windows: Vec<(f64, u64)>,
    /// (time, left, right) SACK blocks from the receiver.
    pub sacks: Vec<(f64, u64, u64)>,
}

impl TimeSequence {
    /// Number of retransmitted segments.
    pub fn retransmissions(&self) -> usize {
        self.segments.iter().filter(|s| s.retransmission).count()
    }
}

/// Which connection to plot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnSelect {
    /// The connection with the most payload bytes.
    Busiest,
    /// By number, as `ustack dump --summary` lists them.
    Number(usize),
    /// The first connection with this port at either end.
    Port(u16),
}

/// Unwraps 32-bit relative numbers into a monotone-ish 64-bit space.
#[derive(Default)]
struct Unwrap {
    last: Option<(u32, i64)>,
}

impl Unwrap {
    fn get(&mut self, v: u32) -> u64 {
        let out = match self.last {
            None => i64::from(v),
            Some((lv, lo)) => lo + i64::from(v.wrapping_sub(lv) as i32),
        };
        self.last = Some((v, out));
        out.max(0) as u64
    }
}

/// Picks a connection of the capture.
///
/// # Errors
/// No TCP connection matches.
pub fn select(cap: &Capture, sel: ConnSelect) -> Result<&TcpConn, String> {
    let conns = &cap.tracker.tcp;
    let found = match sel {
        ConnSelect::Busiest => conns.iter().max_by_key(|c| {
            (
                c.to_server.bytes + c.to_client.bytes,
                std::cmp::Reverse(c.id),
            )
        }),
        ConnSelect::Number(n) => conns.iter().find(|c| c.id == n),
        ConnSelect::Port(p) => conns
            .iter()
            .find(|c| c.client.port() == p || c.server.port() == p),
    };
    found.ok_or_else(|| match sel {
        _ if conns.is_empty() => "no TCP connection in the capture".to_string(),
        ConnSelect::Number(n) => {
            format!("no TCP connection #{n} (the capture has {})", conns.len())
        }
        ConnSelect::Port(p) => format!("no TCP connection on port {p}"),
        ConnSelect::Busiest => unreachable!("a non-empty list has a maximum"),
    })
}

/// Extracts the time-sequence data of `conn`'s data direction (the one that carried
/// more payload).
pub fn time_sequence(cap: &Capture, conn: &TcpConn) -> TimeSequence {
    let from_client = conn.data_from_client();
    let (from, to) = if from_client {
        (conn.client, conn.server)
    } else {
        (conn.server, conn.client)
    };
    let mut ts = TimeSequence {
        conn: conn.id,
        from: Some(from),
        to: Some(to),
        ..TimeSequence::default()
    };
    let (mut useq, mut uack) = (Unwrap::default(), Unwrap::default());
    for (f, info) in cap.frames.iter().zip(&cap.tcp_info) {
        let (Some(info), Some(t)) = (info, &f.tcp) else {
            continue;
        };
        if info.conn != conn.id {
            continue;
        }
        let time = (f.timestamp_ns - conn.first_ns) as f64 / 1e9;
        if info.from_client == from_client {
            let len = t.segment_len() as u64;
            let seq = useq.get(info.rel_seq);
            if len > 0 {
                ts.segments.push(SegmentMark {
                    t: time,
                    seq,
                    len,
                    retransmission: info.retransmission,
                });
            }
        } else if t.ack_flag() {
            let ack = uack.get(info.rel_ack);
            ts.acks.push((time, ack));
            ts.windows.push((time, ack + u64::from(info.window)));
            for &(l, r) in &info.rel_sack {
                let base = ack as i64 - i64::from(info.rel_ack);
                let l = (base + i64::from(l)).max(0) as u64;
                let r = (base + i64::from(r)).max(0) as u64;
                ts.sacks.push((time, l, r));
            }
        }
    }
    ts
}
