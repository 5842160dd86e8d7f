//! The stats report behind `--stats` and `ustack stats`: every interface counter by
//! layer, the TCP layer's counters, and one `ss -ti`-like line per TCP socket the layer
//! still knows (user-held, orphaned and finishing, waiting in a listen queue), and,
//! where the report comes from a running host loop, that loop's counters
//! ([`DriverStats`]) and its device's receive-ring counters ([`RingStats`], an AF_PACKET
//! link without offloads), as text or JSON. Collecting reads the stack; nothing here
//! prints.

use core::fmt::Write as _;
use serde_json::{json, Map, Value};
use ustack::iface::{DropReason, Interface};
use ustack::link::RingStats;
use ustack::socket::tcp::{TcpCounters, TcpSocketInfo};
use ustack::time::Duration;
use ustack_socket::DriverStats;

/// A snapshot of the stack's counters and TCP sockets.
#[derive(Clone, Debug)]
pub struct StatsReport {
    /// `(layer, name, value)`; drops are named `dropped.REASON`.
    pub counters: Vec<(&'static str, String, u64)>,
    /// TCP layer counters.
    pub tcp_counters: TcpCounters,
    /// Every TCP socket.
    pub sockets: Vec<TcpSocketInfo>,
    /// The host loop's counters, when known (see [`with_driver`](Self::with_driver)).
    pub driver: Option<DriverStats>,
    /// The device's receive-ring counters, when it has a ring (see
    /// [`with_ring`](Self::with_ring)).
    pub ring: Option<RingStats>,
}

/// Takes the snapshot.
pub fn collect(iface: &mut Interface) -> StatsReport {
    let c = iface.counters();
    let plain = c.iter().count() - DropReason::COUNT;
    let mut counters: Vec<(&'static str, String, u64)> = c
        .iter()
        .take(plain)
        .map(|(layer, name, v)| (layer, name.to_string(), v))
        .collect();
    counters.extend(
        DropReason::ALL
            .iter()
            .map(|&r| (r.layer(), format!("dropped.{}", r.as_str()), c.dropped(r))),
    );
    let tcp = iface.tcp();
    StatsReport {
        counters,
        tcp_counters: tcp.counters(),
        sockets: tcp.sockets().collect(),
        driver: None,
        ring: None,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.total_micros() as f64 / 1000.0)
}

fn ssthresh(v: usize) -> String {
    if v >= 1 << 31 {
        "inf".into()
    } else {
        v.to_string()
    }
}

/// `ss -ti`-style details of one socket (bytes, not segments, for cwnd and ssthresh).
pub fn socket_line(s: &TcpSocketInfo) -> String {
    let i = &s.info;
    let mut out = format!(
        "{:<12} {:<21} {:<21}{}\n\t {}",
        i.state.to_string(),
        s.local.to_string(),
        s.remote.to_string(),
        if s.orphaned { " (orphaned)" } else { "" },
        i.congestion
    );
    if i.window_scaling {
        let _ = write!(out, " wscale:{},{}", i.snd_wscale, i.rcv_wscale);
    }
    if i.timestamps {
        out.push_str(" ts");
    }
    if i.sack {
        out.push_str(" sack");
    }
    let _ = write!(out, " rto:{}", ms(i.rto));
    if let Some(srtt) = i.srtt {
        let _ = write!(out, " rtt:{}/{}", ms(srtt), ms(i.rttvar));
    }
    let _ = write!(
        out,
        " mss:{} rcvmss:{} advmss:{} cwnd:{} ssthresh:{} bytes_sent:{} bytes_retrans:{} \
         bytes_acked:{} bytes_received:{} segs_out:{} segs_in:{} retrans:{}/{} unacked:{} \
         snd_wnd:{} rcv_wnd:{} send_q:{} recv_q:{}",
        i.snd_mss,
        i.rcv_mss,
        i.advmss,
        i.cwnd,
        ssthresh(i.ssthresh),
        i.bytes_sent,
        i.bytes_retrans,
        i.bytes_acked,
        i.bytes_received,
        i.segs_out,
        i.segs_in,
        i.retransmits,
        i.total_retrans,
        i.unacked,
        i.snd_wnd,
        i.rcv_wnd,
        i.send_queue,
        i.recv_queue
    );
    if i.in_recovery {
        out.push_str(" recovery");
    }
    // Loss recovery (RFC 8985 RACK-TLP, D-SACK undo, F-RTO), shown once non-zero.
    for (name, v) in [
        ("rack_lost", i.rack_lost),
        ("tlp", i.tlp_probes),
        ("recovery_probe", i.recovery_probes),
        ("undo", i.undos),
        ("spurious_rto", i.spurious_rtos),
        ("dsack_in", i.dsacks_in),
        ("dsack_out", i.dsacks_out),
    ] {
        if v != 0 {
            let _ = write!(out, " {name}:{v}");
        }
    }
    out
}

/// The whole `--stats` report of `iface` as `--stats` prints it (`json`: one JSON
/// object and a newline), with the host loop's counters `driver` and the receive
/// ring's `ring` when known: what `ustack stats`, a command's `--stats` and `ustack run
/// --stats` print.
pub fn render(
    iface: &mut Interface,
    driver: Option<DriverStats>,
    ring: Option<RingStats>,
    json: bool,
) -> String {
    let mut report = collect(iface).with_ring(ring);
    if let Some(d) = driver {
        report = report.with_driver(d);
    }
    if json {
        report.json() + "\n"
    } else {
        report.text()
    }
}

/// The TCP layer's counters as `--stats` prints them: a `tcp layer:` line, and a
/// `tcp syn flood:` line when SYN cookies or evictions happened. Each line ends in `\n`.
pub fn tcp_layer_lines(t: &TcpCounters) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "tcp layer: {} segments in, {} out, {} resets sent, {} to no socket, {} bad, \
         {} listen overflows, {} accept queue full, {} challenge ACKs, {} PAWS rejected, \
         {} events dropped",
        t.segments_in,
        t.segments_out,
        t.resets_sent,
        t.no_socket,
        t.bad_segments,
        t.listen_overflows,
        t.accept_queue_full,
        t.challenge_acks,
        t.paws_rejected,
        t.events_dropped
    );
    if t.syncookies_sent + t.syncookies_invalid + t.syn_recv_evicted > 0 {
        let _ = writeln!(
            out,
            "tcp syn flood: {} SYN cookies sent, {} valid, {} invalid, {} SYN-RECEIVED evicted",
            t.syncookies_sent, t.syncookies_valid, t.syncookies_invalid, t.syn_recv_evicted
        );
    }
    out
}

impl StatsReport {
    /// The report with the host loop's counters.
    pub fn with_driver(mut self, driver: DriverStats) -> StatsReport {
        self.driver = Some(driver);
        self
    }

    /// The report with the device's receive-ring counters (`None`: no ring, no line).
    pub fn with_ring(mut self, ring: Option<RingStats>) -> StatsReport {
        self.ring = ring;
        self
    }

    /// Readable report: non-zero counters, the host loop's, the receive ring's, then
    /// the TCP sockets.
    pub fn text(&self) -> String {
        let mut out = String::from("interface counters (non-zero):\n");
        for (layer, name, v) in &self.counters {
            if *v != 0 {
                let _ = writeln!(out, "  {:<32} {v}", format!("{layer}.{name}"));
            }
        }
        out.push_str(&tcp_layer_lines(&self.tcp_counters));
        if let Some(d) = &self.driver {
            let _ = writeln!(
                out,
                "host loop: {} driver rounds, {} caller rounds, {} caller flushes, {} leads, \
                 {} follows, {} driver wake-ups, {} leader wake-ups, {} ready sockets, \
                 {} ready checks",
                d.rounds,
                d.caller_rounds,
                d.caller_flushes,
                d.leads,
                d.follows,
                d.driver_wakeups,
                d.leader_wakeups,
                d.ready_sockets,
                d.ready_checks
            );
            if d.busy_polls > 0 {
                let _ = writeln!(
                    out,
                    "busy poll: {} busy polls, {} passes, {} cut short by a switch-out",
                    d.busy_polls, d.busy_passes, d.busy_preempted
                );
            }
        }
        if let Some(r) = &self.ring {
            let _ = writeln!(
                out,
                "packet ring: {} frames, {} outgoing copies skipped, {} truncated, \
                 {} too long, {} malformed, {} marked losing, {} kernel drops",
                r.frames,
                r.outgoing,
                r.truncated,
                r.too_long,
                r.malformed,
                r.losing,
                r.kernel_drops
            );
        }
        let _ = writeln!(out, "tcp sockets: {}", self.sockets.len());
        if !self.sockets.is_empty() {
            let _ = writeln!(out, "{:<12} {:<21} {:<21}", "State", "Local", "Peer");
        }
        for s in &self.sockets {
            out.push_str(&socket_line(s));
            out.push('\n');
        }
        out
    }

    /// The report as one JSON object: `counters` (`"layer.name": value`, every
    /// counter), `tcp_layer`, `host_loop` (the host loop's counters, or null),
    /// `packet_ring` (the receive ring's counters, or null without a ring), and `tcp`
    /// (one object per socket).
    pub fn json(&self) -> String {
        let mut counters = Map::new();
        for (layer, name, v) in &self.counters {
            counters.insert(format!("{layer}.{name}"), (*v).into());
        }
        let t = &self.tcp_counters;
        let tcp_layer = json!({
            "segments_in": t.segments_in,
            "segments_out": t.segments_out,
            "resets_sent": t.resets_sent,
            "no_socket": t.no_socket,
            "bad_segments": t.bad_segments,
            "listen_overflows": t.listen_overflows,
            "accept_queue_full": t.accept_queue_full,
            "syncookies_sent": t.syncookies_sent,
            "syncookies_valid": t.syncookies_valid,
            "syncookies_invalid": t.syncookies_invalid,
            "syn_recv_evicted": t.syn_recv_evicted,
            "buffers_released": t.buffers_released,
            "challenge_acks": t.challenge_acks,
            "challenge_acks_limited": t.challenge_acks_limited,
            "paws_rejected": t.paws_rejected,
            "time_wait_reused": t.time_wait_reused,
            "time_wait_compacted": t.time_wait_compacted,
            "events_dropped": t.events_dropped,
            "icmp_unmatched": t.icmp_unmatched,
            "icmp_rejected": t.icmp_rejected,
            "ooo_dropped": t.ooo_dropped,
        });
        let sockets: Vec<Value> = self
            .sockets
            .iter()
            .map(|s| {
                let i = &s.info;
                json!({
                    "state": i.state.to_string(),
                    "local": s.local.to_string(),
                    "remote": s.remote.to_string(),
                    "orphaned": s.orphaned,
                    "congestion": i.congestion.to_string(),
                    "cwnd": i.cwnd,
                    "ssthresh": i.ssthresh,
                    "srtt_us": i.srtt.map(|d| d.total_micros()),
                    "rttvar_us": i.rttvar.total_micros(),
                    "rto_us": i.rto.total_micros(),
                    "snd_mss": i.snd_mss,
                    "rcv_mss": i.rcv_mss,
                    "advmss": i.advmss,
                    "retransmits": i.retransmits,
                    "total_retrans": i.total_retrans,
                    "bytes_sent": i.bytes_sent,
                    "bytes_acked": i.bytes_acked,
                    "bytes_retrans": i.bytes_retrans,
                    "bytes_received": i.bytes_received,
                    "segs_out": i.segs_out,
                    "segs_in": i.segs_in,
                    "unacked": i.unacked,
                    "snd_wnd": i.snd_wnd,
                    "rcv_wnd": i.rcv_wnd,
                    "snd_wscale": i.window_scaling.then_some(i.snd_wscale),
                    "rcv_wscale": i.window_scaling.then_some(i.rcv_wscale),
                    "timestamps": i.timestamps,
                    "sack": i.sack,
                    "in_recovery": i.in_recovery,
                    "rack_lost": i.rack_lost,
                    "tlp_probes": i.tlp_probes,
                    "recovery_probes": i.recovery_probes,
                    "undos": i.undos,
                    "spurious_rtos": i.spurious_rtos,
                    "dsacks_in": i.dsacks_in,
                    "dsacks_out": i.dsacks_out,
                    "send_queue": i.send_queue,
                    "recv_queue": i.recv_queue,
                })
            })
            .collect();
        let host_loop = self.driver.map(|d| {
            json!({
                "rounds": d.rounds,
                "caller_rounds": d.caller_rounds,
                "caller_flushes": d.caller_flushes,
                "leads": d.leads,
                "follows": d.follows,
                "driver_wakeups": d.driver_wakeups,
                "leader_wakeups": d.leader_wakeups,
                "ready_sockets": d.ready_sockets,
                "ready_checks": d.ready_checks,
                "busy_polls": d.busy_polls,
                "busy_passes": d.busy_passes,
                "busy_preempted": d.busy_preempted,
            })
        });
        let packet_ring = self.ring.map(|r| {
            json!({
                "frames": r.frames,
                "outgoing": r.outgoing,
                "truncated": r.truncated,
                "too_long": r.too_long,
                "malformed": r.malformed,
                "losing": r.losing,
                "kernel_drops": r.kernel_drops,
            })
        });
        json!({
            "counters": counters,
            "tcp_layer": tcp_layer,
            "host_loop": host_loop,
            "packet_ring": packet_ring,
            "tcp": sockets,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ustack::iface::Config;
    use ustack::time::Instant;
    use ustack::wire::EthernetAddress;

    /// A bare interface at 10.0.0.2/24.
    fn iface() -> Interface {
        Interface::new(
            Config::new(
                EthernetAddress([2, 0, 0, 0, 0, 2]),
                "10.0.0.2/24".parse().unwrap(),
            ),
            Instant::ZERO,
        )
    }

    #[test]
    fn tcp_layer_lines_add_the_syn_flood_line_only_when_it_happened() {
        let mut t = TcpCounters {
            segments_in: 7,
            segments_out: 5,
            ..TcpCounters::default()
        };
        let quiet = tcp_layer_lines(&t);
        assert!(
            quiet.starts_with("tcp layer: 7 segments in, 5 out, 0 resets sent"),
            "{quiet}"
        );
        assert_eq!(quiet.lines().count(), 1, "{quiet}");
        t.syncookies_sent = 3;
        let flood = tcp_layer_lines(&t);
        assert!(
            flood.contains("\ntcp syn flood: 3 SYN cookies sent, 0 valid"),
            "{flood}"
        );
        assert_eq!(flood.lines().count(), 2, "{flood}");
    }

    #[test]
    fn report_has_every_counter_and_listeners() {
        let mut iface = iface();
        let l = iface.tcp().socket();
        iface
            .tcp()
            .listen(l, "10.0.0.2:7".parse().unwrap(), 4)
            .unwrap();
        let _ = iface.handle_frame(Instant::ZERO, &[0xff; 10]);
        let r = collect(&mut iface);
        let text = r.text();
        assert!(text.contains("ethernet.rx_frames"), "{text}");
        assert!(
            text.contains("ethernet.dropped.truncated       1"),
            "{text}"
        );
        assert!(text.contains("LISTEN       10.0.0.2:7"), "{text}");
        let v: Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["counters"]["ethernet.rx_frames"], 1);
        assert_eq!(v["counters"]["ipv4.dropped.bad_checksum"], 0);
        assert_eq!(
            v["counters"].as_object().unwrap().len(),
            iface.counters().iter().count()
        );
        assert_eq!(v["tcp"][0]["state"], "LISTEN");
        assert_eq!(v["tcp"][0]["local"], "10.0.0.2:7");
        // No host loop behind a bare interface: none reported.
        assert!(v["host_loop"].is_null());
        assert!(!text.contains("host loop"), "{text}");
        let d = DriverStats {
            leads: 7,
            ..DriverStats::default()
        };
        let r = r.with_driver(d);
        assert!(r.text().contains(" 7 leads,"), "{}", r.text());
        // Busy polling is opt-in: no line for it when it never ran.
        assert!(!r.text().contains("busy poll"), "{}", r.text());
        let v: Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["host_loop"]["leads"], 7);
        assert_eq!(v["host_loop"]["busy_polls"], 0);
        let r = r.with_driver(DriverStats {
            busy_polls: 3,
            busy_passes: 40,
            busy_preempted: 1,
            ..DriverStats::default()
        });
        assert!(
            r.text()
                .contains("busy poll: 3 busy polls, 40 passes, 1 cut short by a switch-out"),
            "{}",
            r.text()
        );
        let v: Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["host_loop"]["busy_passes"], 40);
        assert_eq!(v["host_loop"]["busy_preempted"], 1);
    }

    #[test]
    fn packet_ring_line_and_json_only_with_a_ring() {
        let mut iface = iface();
        // No ring (a TAP, offloads, recvfrom): no line, null in JSON.
        let r = collect(&mut iface)
            .with_driver(DriverStats::default())
            .with_ring(None);
        assert!(!r.text().contains("packet ring"), "{}", r.text());
        let v: Value = serde_json::from_str(&r.json()).unwrap();
        assert!(v["packet_ring"].is_null(), "{v}");

        let ring = RingStats {
            frames: 1200,
            outgoing: 3,
            truncated: 1,
            too_long: 2,
            malformed: 0,
            losing: 5,
            kernel_drops: 40,
        };
        let r = r.with_ring(Some(ring));
        let text = r.text();
        assert!(
            text.contains(
                "packet ring: 1200 frames, 3 outgoing copies skipped, 1 truncated, 2 too long, \
                 0 malformed, 5 marked losing, 40 kernel drops\n"
            ),
            "{text}"
        );
        // After the host loop's line, before the sockets.
        let at = |s: &str| text.find(s).unwrap();
        assert!(at("host loop:") < at("packet ring:") && at("packet ring:") < at("tcp sockets:"));
        let v: Value = serde_json::from_str(&r.json()).unwrap();
        let p = &v["packet_ring"];
        assert_eq!(p["frames"], 1200);
        assert_eq!(p["outgoing"], 3);
        assert_eq!(p["truncated"], 1);
        assert_eq!(p["too_long"], 2);
        assert_eq!(p["malformed"], 0);
        assert_eq!(p["losing"], 5);
        assert_eq!(p["kernel_drops"], 40);
        assert_eq!(p.as_object().unwrap().len(), 7, "{p}");
    }
}
