//! Property tests: arbitrary segments against sockets in every state never panic, and
//! the layer's invariants hold after each.

use super::*;
use proptest::prelude::*;

/// (flags, seq offset, ack offset, window, payload length, timestamp, SACK edges, ms)
type Raw = (
    u16,
    i32,
    i32,
    u16,
    usize,
    Option<(u32, u32)>,
    Vec<(i32, i32)>,
    u16,
);

fn arb_raw() -> impl Strategy<Value = Raw> {
    (
        0u16..64,
        -2000i32..2000,
        -2000i32..2000,
        any::<u16>(),
        0usize..200,
        proptest::option::of(any::<(u32, u32)>()),
        proptest::collection::vec((-2000i32..2000, -2000i32..2000), 0..4),
        0u16..3000,
    )
}

fn fixture(which: u8) -> Harness {
    let mut config = base_config();
    config.sack = true;
    config.timestamps = true;
    config.window_scaling = true;
    config.delayed_ack = Duration::from_millis(40);
    config.tx_buffer_len = 1024;
    let opts = TcpOptions {
        mss: Some(100),
        window_scale: Some(3),
        sack_permitted: true,
        timestamp: Some((7, 0)),
        ..NO_OPTIONS
    };
    match which % 6 {
        0 => socket_listen_with(config),
        1 => socket_syn_sent_with(config),
        2 => socket_syn_received_with(config, opts),
        3 => socket_established_with(config, opts),
        4 => {
            let mut h = socket_established_with(config, opts);
            h.layer.send(h.handle, &[3; 700]).unwrap();
            h.layer.shutdown(h.handle, Shutdown::Write).unwrap();
            h
        }
        _ => {
            let mut h = socket_established_with(config, opts);
            h.layer.close(h.handle, &h.cx()).unwrap();
            h
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// No sequence of segments, timers and reads panics, and the send sequence
    /// space stays ordered.
    #[test]
    fn test_any_state_any_segments_never_panic(
        which in 0u8..6,
        segs in proptest::collection::vec(arb_raw(), 1..40),
    ) {
        let mut h = fixture(which);
        let payload = [0x5au8; 200];
        let mut t = 0i64;
        for (fl, dseq, dack, wnd, len, ts, sacks, dt) in segs {
            t += i64::from(dt);
            h.at(t);
            let mut options = NO_OPTIONS;
            options.timestamp = ts;
            for (slot, (l, r)) in options.sack_ranges.iter_mut().zip(sacks) {
                *slot = Some((LOCAL_SEQ + 1 + l as usize, LOCAL_SEQ + 1 + r as usize));
            }
            let seg = TcpRepr {
                flags: TcpFlags(fl),
                seq_number: REMOTE_SEQ + 1 + dseq as usize,
                ack_number: LOCAL_SEQ + 1 + dack as usize,
                window_len: wnd,
                options,
                payload: &payload[..len],
                ..SEND_TEMPL
            };
            let _ = h.send(&seg);
            let mut n = 0;
            while h.recv().is_some() {
                n += 1;
                prop_assert!(n < 1000, "dispatch never ends");
            }
            let mut buf = [0u8; 64];
            let _ = h.layer.recv(h.handle, &mut buf);
            if let Some(s) = h.layer.socket_ref(h.handle) {
                prop_assert!(s.snd_una <= s.snd_nxt && s.snd_nxt <= s.snd_max);
                if !matches!(s.state, TcpState::SynSent | TcpState::SynReceived | TcpState::Closed) {
                    // Once the SYN is acknowledged the send buffer holds exactly
                    // [SND.UNA, the end of queued data) (a FIN sits just past it).
                    prop_assert_eq!(s.tx.len(), s.unacked_queued());
                }
            }
            if let Some(at) = h.layer.poll_at() {
                // A deadline already past is served by the next timeout call: none may
                // be earlier than the time the last event was handled at.
                prop_assert!(at >= Instant::from_millis(t), "deadline {at:?} before now {t} ms");
            }
        }
        prop_assert!(h.layer.socket_count() <= 3);
    }
}

#[test]
fn test_established_idle_buffers_are_given_back_and_grow_again() {
    let mut h = socket_established_with(
        TcpConfig {
            rx_buffer_len: 1 << 16,
            tx_buffer_len: 1 << 16,
            idle_buffer_release: Duration::from_secs(1),
            ..base_config()
        },
        mss_opt(1460),
    );
    let alloc = |h: &Harness| {
        let s = h.layer.socket_ref(h.handle).unwrap();
        (s.rx.allocated(), s.tx.allocated())
    };
    assert_eq!(alloc(&h), (0, 0), "nothing allocated before data");
    send!(
        h,
        time 10,
        TcpRepr {
            flags: flags(ACK, PSH),
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            payload: b"abcdef",
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.layer.send(h.handle, b"xyz"), Ok(3));
    assert!(alloc(&h).0 > 0 && alloc(&h).1 > 0);
    let mut buf = [0u8; 16];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(6));
    let seg = h.recv().expect("data and ACK");
    assert_eq!(seg.payload, b"xyz");
    send!(
        h,
        time 20,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 7,
            ack_number: LOCAL_SEQ + 4,
            ..SEND_TEMPL
        }
    );
    // Empty but recently busy: kept until a whole period passes without segments.
    assert!(h.layer.poll_at().is_some());
    h.at(500);
    assert!(alloc(&h).0 > 0, "kept while the period runs");
    h.at(1100);
    h.at(2100);
    assert_eq!(alloc(&h), (0, 0), "given back after a quiet period");
    assert!(h.layer.counters().buffers_released >= 1);
    assert_eq!(h.layer.reclaim_queue_len(), 0);
    // And grown again on demand, data intact.
    send!(
        h,
        time 2200,
        TcpRepr {
            flags: flags(ACK, PSH),
            seq_number: REMOTE_SEQ + 7,
            ack_number: LOCAL_SEQ + 4,
            payload: b"more",
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(4));
    assert_eq!(&buf[..4], b"more");
}

#[test]
fn test_established_icmp_flood_outside_flight_is_ignored_and_counted() {
    let mut h = socket_established();
    h.layer.send(h.handle, b"abc").unwrap();
    h.recv();
    let cx = h.cx();
    // Per RFC 5927 §4.1: errors quoting anything but SND.UNA..SND.NXT are forged.
    for off in [0usize, 4, 1000, 1 << 30] {
        for _ in 0..250 {
            h.layer
                .handle_icmp_error(&cx, &icmp(IcmpErrorKind::PortUnreachable, LOCAL_SEQ + off));
        }
    }
    assert_eq!(h.layer.counters().icmp_rejected, 1000);
    assert_eq!(h.state(), TcpState::Established);
    assert_eq!(h.layer.take_error(h.handle), None);
    // One that quotes data in flight is believed (soft in ESTABLISHED).
    h.layer
        .handle_icmp_error(&cx, &icmp(IcmpErrorKind::HostUnreachable, LOCAL_SEQ + 2));
    assert_eq!(h.layer.counters().icmp_rejected, 1000);
    assert_eq!(
        h.layer.take_error(h.handle),
        Some(TcpError::HostUnreachable)
    );
}

#[test]
fn test_established_out_of_order_flood_is_bounded_and_counted() {
    let mut h = socket_established_with(
        TcpConfig {
            rx_buffer_len: 4096,
            max_ooo_ranges: 4,
            ..base_config()
        },
        mss_opt(1460),
    );
    // 1,000 one-byte segments, each leaving a hole: only 4 ranges are kept.
    for i in 0..1000usize {
        h.send(&TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1 + 2 + 2 * (i % 2000),
            ack_number: LOCAL_SEQ + 1,
            payload: b"x",
            ..SEND_TEMPL
        });
    }
    let dropped = h.layer.counters().ooo_dropped;
    assert!(dropped >= 996, "only {dropped} dropped");
    let s = h.layer.socket_ref(h.handle).unwrap();
    assert!(
        s.rx.allocated() <= 4096,
        "{} bytes for out-of-order data",
        s.rx.allocated()
    );
    assert_eq!(s.rx.len(), 0);
    // The hole filled: the kept ranges become readable, and the connection goes on.
    h.send(&TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1,
        ack_number: LOCAL_SEQ + 1,
        payload: b"ab",
        ..SEND_TEMPL
    });
    let mut buf = [0u8; 64];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(3));
    assert_eq!(&buf[..3], b"abx");
}

#[test]
fn test_time_wait_gives_buffers_back_at_once_even_when_queued_for_the_tick() {
    let mut h = socket_established_with(
        TcpConfig {
            idle_buffer_release: Duration::from_secs(10),
            ..base_config()
        },
        mss_opt(1460),
    );
    assert_eq!(h.layer.send(h.handle, b"xyz"), Ok(3));
    h.recv().expect("data");
    send!(
        h,
        time 10,
        TcpRepr {
            flags: flags(ACK, PSH),
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 4,
            payload: b"abc",
            ..SEND_TEMPL
        }
    );
    let mut buf = [0u8; 8];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(3));
    assert_eq!(
        h.layer.reclaim_queue_len(),
        1,
        "empty buffers wait for the tick"
    );
    h.layer.shutdown(h.handle, Shutdown::Write).unwrap();
    let fin = h.recv().expect("FIN");
    assert!(fin.flags.fin());
    h.at(20);
    // The next dispatch sends the ACK of the FIN.
    send!(
        h,
        TcpRepr {
            flags: flags(FIN, ACK),
            seq_number: REMOTE_SEQ + 4,
            ack_number: LOCAL_SEQ + 5,
            ..SEND_TEMPL
        }
    );
    let ack = h.recv();
    assert!(ack.is_some_and(|a| a.ack_number == REMOTE_SEQ + 5));
    assert_eq!(h.state(), TcpState::TimeWait);
    let s = h.layer.socket_ref(h.handle).unwrap();
    assert_eq!(
        (s.rx.allocated(), s.tx.allocated()),
        (0, 0),
        "freed at TIME-WAIT"
    );
}
