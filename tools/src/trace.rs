//! TCP event tracing behind `--trace` and `--trace-file`: turns the TCP layer's events
//! (`TcpLayer::poll_event`) into records with the connection's 4-tuple and its
//! congestion state, formatted as one readable line or as one JSON line in the format
//! `ustack plot --trace` reads (`ustack_capture::trace`).
//!
//! Events only mark changes (state, loss, RTO, window), so a cwnd plot made of them
//! alone would be a few dots. While data flows, [`Tracer::poll`] also samples every
//! traced connection's `TcpInfo` at most once per `sample_every` (an `ack` record), so
//! the plot has a curve. Samples are JSON-only: the readable trace shows events;
//! listeners' records are readable-only (they have no congestion state, and `ustack
//! plot --trace` draws the first connection of the log by default).
//!
//! Nothing here prints; the binary decides where lines go.

use core::fmt::Write as _;
use core::net::SocketAddr;
use std::collections::HashMap;
use ustack::socket::tcp::{TcpEvent, TcpHandle, TcpLayer, TcpState};
use ustack::time::{Duration, Instant};

/// What a record is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceKind {
    /// A TCP event, described in words.
    Event {
        /// Short name for JSON and plots: `state`, `retransmit`, `fast_retransmit`,
        /// `rto`, `cwnd`, `window`, `window_update_sent`, `zero_window_probe`.
        name: &'static str,
        /// The readable description, e.g. `state SYN-SENT -> ESTABLISHED`.
        text: String,
    },
    /// A periodic sample while data flows (JSON event `ack`).
    Sample,
}

/// One line of trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceRecord {
    /// Stack time.
    pub t: Instant,
    /// `local_ip:port-remote_ip:port`.
    pub conn: String,
    /// Event or sample.
    pub kind: TraceKind,
    /// Congestion window in bytes, if the socket still exists.
    pub cwnd: Option<usize>,
    /// Slow-start threshold in bytes (`usize::MAX` before the first loss).
    pub ssthresh: Option<usize>,
    /// Smoothed RTT.
    pub srtt: Option<Duration>,
}

impl TraceRecord {
    /// True for events (what `--trace` prints), false for samples.
    pub fn is_event(&self) -> bool {
        matches!(self.kind, TraceKind::Event { .. })
    }

    /// True for a listening socket's record (no peer): it has no congestion state to
    /// plot, so the JSON log leaves it out.
    pub fn is_listener(&self) -> bool {
        self.conn.ends_with("-0.0.0.0:0")
    }

    /// The readable line: seconds since start, the 4-tuple, the event, and the
    /// congestion state when known.
    pub fn human(&self) -> String {
        let mut s = format!(
            "{:>4}.{:06} {} ",
            self.t.total_micros().div_euclid(1_000_000),
            self.t.total_micros().rem_euclid(1_000_000),
            self.conn
        );
        match &self.kind {
            TraceKind::Event { text, .. } => s.push_str(text),
            TraceKind::Sample => s.push_str("sample"),
        }
        if let (Some(cwnd), Some(ssthresh)) = (self.cwnd, self.ssthresh) {
            let _ = write!(s, " [cwnd {cwnd} ssthresh {}", fmt_ssthresh(ssthresh));
            if let Some(srtt) = self.srtt {
                let _ = write!(s, " srtt {srtt}");
            }
            s.push(']');
        }
        s
    }

    /// The JSON line `ustack plot --trace` reads (keys without a value are left out).
    pub fn json(&self) -> String {
        let event = match &self.kind {
            TraceKind::Event { name, .. } => *name,
            TraceKind::Sample => "ack",
        };
        let mut obj = serde_json::Map::new();
        obj.insert("t_us".into(), self.t.total_micros().into());
        obj.insert("conn".into(), self.conn.clone().into());
        if let Some(c) = self.cwnd {
            obj.insert("cwnd".into(), (c as u64).into());
        }
        if let Some(s) = self.ssthresh {
            obj.insert("ssthresh".into(), (s as u64).into());
        }
        if let Some(r) = self.srtt {
            obj.insert("srtt_us".into(), r.total_micros().into());
        }
        obj.insert("event".into(), event.into());
        serde_json::Value::Object(obj).to_string()
    }
}

fn fmt_ssthresh(ssthresh: usize) -> String {
    if ssthresh >= 1 << 31 {
        "inf".into()
    } else {
        ssthresh.to_string()
    }
}

/// `local-remote` as the plot expects it.
pub fn conn_name(local: SocketAddr, remote: SocketAddr) -> String {
    format!("{local}-{remote}")
}

#[derive(Debug)]
struct Conn {
    name: String,
    last_sample: Option<Instant>,
    last_bytes: (u64, u64),
}

/// Turns TCP events into [`TraceRecord`]s and samples flowing connections.
#[derive(Debug)]
pub struct Tracer {
    conns: HashMap<TcpHandle, Conn>,
    sample_every: Option<Duration>,
    next_scan: Instant,
}

impl Tracer {
    /// A tracer sampling each connection at most every `sample_every` while data flows
    /// (`None`: events only).
    pub fn new(sample_every: Option<Duration>) -> Tracer {
        Tracer {
            conns: HashMap::new(),
            sample_every: sample_every.filter(|d| *d > Duration::ZERO),
            next_scan: Instant::ZERO,
        }
    }

    /// Connections being followed.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Drains every pending TCP event into `out`, then, if due, adds samples of the
    /// connections whose data moved since their last record. Connections are forgotten
    /// when they close or their socket is freed, so memory follows the live sockets.
    pub fn poll(&mut self, now: Instant, tcp: &mut TcpLayer, out: &mut Vec<TraceRecord>) {
        while let Some(ev) = tcp.poll_event() {
            out.push(self.record(now, tcp, &ev));
        }
        // Samples are due every `sample_every`; without sampling, the scan still runs
        // once a second to forget sockets freed without a last event.
        let period = self.sample_every.unwrap_or(Duration::from_secs(1));
        if now < self.next_scan {
            return;
        }
        self.next_scan = now + period;
        let sample_every = self.sample_every;
        self.conns.retain(|&h, conn| {
            let Some(s) = tcp.socket_info(h) else {
                return false;
            };
            let Some(every) = sample_every else {
                return true;
            };
            let bytes = (s.info.bytes_sent, s.info.bytes_acked);
            let due = conn.last_sample.is_none_or(|t| now >= t + every);
            if bytes != conn.last_bytes && due {
                conn.last_bytes = bytes;
                conn.last_sample = Some(now);
                out.push(TraceRecord {
                    t: now,
                    conn: conn.name.clone(),
                    kind: TraceKind::Sample,
                    cwnd: Some(s.info.cwnd),
                    ssthresh: Some(s.info.ssthresh),
                    srtt: s.info.srtt,
                });
            }
            true
        });
    }

    fn record(&mut self, now: Instant, tcp: &TcpLayer, ev: &TcpEvent) -> TraceRecord {
        let (handle, name, text) = describe(ev);
        let info = tcp.socket_info(handle);
        let conn = self.conns.entry(handle).or_insert_with(|| Conn {
            name: String::new(),
            last_sample: None,
            last_bytes: (0, 0),
        });
        // The 4-tuple: from the event when it carries one, else from the socket.
        if let TcpEvent::StateChanged { local, remote, .. } = ev {
            conn.name = conn_name(*local, *remote);
        } else if conn.name.is_empty() {
            conn.name = match &info {
                Some(s) => conn_name(s.local, s.remote),
                None => handle.to_string(),
            };
        }
        let mut rec = TraceRecord {
            t: now,
            conn: conn.name.clone(),
            kind: TraceKind::Event { name, text },
            cwnd: None,
            ssthresh: None,
            srtt: None,
        };
        if let Some(s) = info {
            conn.last_sample = Some(now);
            conn.last_bytes = (s.info.bytes_sent, s.info.bytes_acked);
            rec.cwnd = Some(s.info.cwnd);
            rec.ssthresh = Some(s.info.ssthresh);
            rec.srtt = s.info.srtt;
        }
        if let TcpEvent::CongestionChanged { cwnd, ssthresh, .. } = ev {
            // The event's values are the ones that just took effect.
            rec.cwnd = Some(*cwnd);
            rec.ssthresh = Some(*ssthresh);
        }
        if matches!(
            ev,
            TcpEvent::StateChanged {
                to: TcpState::Closed,
                ..
            }
        ) {
            self.conns.remove(&handle);
        }
        rec
    }
}

/// The handle, JSON name and readable text of an event.
fn describe(ev: &TcpEvent) -> (TcpHandle, &'static str, String) {
    match *ev {
        TcpEvent::StateChanged {
            handle, from, to, ..
        } => (handle, "state", format!("state {from} -> {to}")),
        TcpEvent::Retransmit { handle, seq, len } => (
            handle,
            "retransmit",
            format!("retransmit seq {seq} len {len}"),
        ),
        TcpEvent::FastRetransmit { handle, seq } => (
            handle,
            "fast_retransmit",
            format!("fast retransmit (recovery from snd_una {seq})"),
        ),
        TcpEvent::RtoFired {
            handle,
            rto,
            retries,
        } => (
            handle,
            "rto",
            format!("RTO fired, retry {retries}, rto now {rto}"),
        ),
        TcpEvent::CongestionChanged {
            handle,
            cwnd,
            ssthresh,
        } => (
            handle,
            "cwnd",
            format!(
                "congestion window {cwnd} ssthresh {}",
                fmt_ssthresh(ssthresh)
            ),
        ),
        TcpEvent::WindowUpdate { handle, window: 0 } => {
            (handle, "window", "peer window closed (zero window)".into())
        }
        TcpEvent::WindowUpdate { handle, window } => {
            (handle, "window", format!("peer window {window}"))
        }
        TcpEvent::WindowUpdateSent { handle, window } => (
            handle,
            "window_update_sent",
            format!("window update sent, rcv_wnd {window}"),
        ),
        TcpEvent::ZeroWindowProbe { handle, seq } => (
            handle,
            "zero_window_probe",
            format!("zero-window probe seq {seq}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ustack::iface::{Config, Interface};
    use ustack::link::{FaultConfig, FaultInjector, Faults, MemoryLink};
    use ustack::wire::EthernetAddress;

    fn iface(last: u8) -> Interface {
        let mut c = Config::new(
            EthernetAddress([2, 0, 0, 0, 0, last]),
            format!("10.0.0.{last}/24").parse().unwrap(),
        );
        c.seed = u64::from(last);
        Interface::new(c, Instant::ZERO)
    }

    #[test]
    fn json_line_is_what_plot_reads() {
        let rec = TraceRecord {
            t: Instant::from_micros(150_000),
            conn: "10.0.0.1:40000-10.0.0.2:5001".into(),
            kind: TraceKind::Event {
                name: "fast_retransmit",
                text: "fast retransmit".into(),
            },
            cwnd: Some(26960),
            ssthresh: Some(26960),
            srtt: Some(Duration::from_micros(21800)),
        };
        let line = rec.json();
        assert_eq!(
            line,
            r#"{"conn":"10.0.0.1:40000-10.0.0.2:5001","cwnd":26960,"event":"fast_retransmit","srtt_us":21800,"ssthresh":26960,"t_us":150000}"#
        );
        let parsed = ustack_capture::trace::parse_trace(&line).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].event.as_deref(), Some("fast_retransmit"));
        assert_eq!(parsed[0].cwnd, Some(26960));
        assert_eq!(
            rec.human(),
            "   0.150000 10.0.0.1:40000-10.0.0.2:5001 fast retransmit \
             [cwnd 26960 ssthresh 26960 srtt 21.800ms]"
        );
    }

    #[test]
    fn sample_without_socket_state_leaves_keys_out() {
        let rec = TraceRecord {
            t: Instant::from_micros(1),
            conn: "tcp#0.0".into(),
            kind: TraceKind::Sample,
            cwnd: None,
            ssthresh: Some(usize::MAX),
            srtt: None,
        };
        assert!(!rec.is_event());
        assert_eq!(
            rec.json(),
            format!(
                r#"{{"conn":"tcp#0.0","event":"ack","ssthresh":{},"t_us":1}}"#,
                usize::MAX
            )
        );
    }

    /// A real connection between two interfaces over a memory link: the handshake's
    /// state changes come out with the 4-tuple, and a transfer yields samples.
    #[test]
    fn traces_a_real_connection() {
        let (la, mut lb) = MemoryLink::pair(4096);
        // 5 ms each way, so the transfer takes several round trips, and some loss on
        // the data, so there is recovery to trace.
        let delay = FaultConfig {
            delay: Duration::from_millis(5),
            ..FaultConfig::none()
        };
        let faults = Faults {
            tx: FaultConfig {
                loss: 0.02,
                ..delay.clone()
            },
            rx: delay,
        };
        let mut la = FaultInjector::new(la, faults, 1);
        let mut a = iface(1);
        let mut b = iface(2);
        let server = b.tcp().socket();
        b.tcp()
            .listen(server, "10.0.0.2:5001".parse().unwrap(), 8)
            .unwrap();
        let client = a.tcp().socket();
        let cx = a.tcp_context(Instant::ZERO);
        a.tcp()
            .connect(client, &cx, "10.0.0.2:5001".parse().unwrap())
            .unwrap();
        let mut tracer = Tracer::new(Some(Duration::from_millis(10)));
        let mut recs = Vec::new();
        let data = vec![7u8; 200_000];
        let mut sent = 0;
        let mut accepted = None;
        let mut sink = [0u8; 65536];
        for ms in 0..2000 {
            let now = Instant::from_millis(ms);
            a.poll_link(now, &mut la).unwrap();
            b.poll_link(now, &mut lb).unwrap();
            if accepted.is_none() {
                accepted = b.tcp().accept(server).ok().map(|(h, _)| h);
            }
            if let Some(h) = accepted {
                while b.tcp().recv(h, &mut sink).unwrap_or(0) > 0 {}
            }
            if sent < data.len() {
                sent += a.tcp().send(client, &data[sent..]).unwrap_or(0);
            }
            tracer.poll(now, a.tcp(), &mut recs);
        }
        assert_eq!(sent, data.len());
        let events: Vec<String> = recs
            .iter()
            .filter(|r| r.is_event())
            .map(TraceRecord::human)
            .collect();
        assert!(
            events[0].contains(" state CLOSED -> SYN-SENT"),
            "{events:?}"
        );
        assert!(events.iter().any(|l| l.contains("SYN-SENT -> ESTABLISHED")));
        assert!(
            events.iter().any(|l| l.contains(" retransmit seq ")),
            "{events:?}"
        );
        assert!(events.iter().any(|l| l.contains(" congestion window ")));
        // The event's own cwnd/ssthresh are the ones recorded.
        assert!(recs
            .iter()
            .any(|r| matches!(r.kind, TraceKind::Event { name: "cwnd", .. })
                && r.ssthresh < Some(1 << 31)));
        let conn = &recs[0].conn;
        assert!(conn.starts_with("10.0.0.1:") && conn.ends_with("-10.0.0.2:5001"));
        let samples: Vec<&TraceRecord> = recs.iter().filter(|r| !r.is_event()).collect();
        assert!(samples.len() >= 3, "{} samples", samples.len());
        assert!(samples.iter().all(|s| s.cwnd.is_some() && &s.conn == conn));
        // At most one sample per 10 ms.
        assert!(samples
            .windows(2)
            .all(|w| w[1].t - w[0].t >= Duration::from_millis(10)));
        // Growth shows up in the samples.
        assert!(samples.iter().any(|s| s.cwnd > samples[0].cwnd));
        assert_eq!(tracer.connections(), 1);
        // An aborted connection is traced to CLOSED and forgotten.
        a.tcp().abort(client).unwrap();
        recs.clear();
        tracer.poll(Instant::from_millis(2000), a.tcp(), &mut recs);
        assert!(recs[0].human().ends_with("-> CLOSED"), "{recs:?}");
        assert_eq!(tracer.connections(), 0);
    }
}
