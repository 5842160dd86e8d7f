//! Autotuning (`socket/autotune.rs`): the receive window grows with what the
//! application reads per RTT and never beyond its maximum, the window scale is picked
//! for that maximum, SO_RCVBUF/SO_SNDBUF turn tuning off, the send buffer grows when it
//! held the sender back, and cwnd does not grow while the sender is
//! application-limited (RFC 7661).

use super::*;

const SEG: usize = 1000;
const RTT_MS: i64 = 10;

/// Receive side: timestamps and scaling on, a 16 KiB buffer that may grow to 1 MiB, and
/// a peer with MSS 1000 whose segments echo the TSval of our ACK one RTT earlier.
fn tunable_receiver(max: usize) -> Harness {
    let config = TcpConfig {
        window_scaling: true,
        timestamps: true,
        rx_buffer_len: 16 * 1024,
        rx_buffer_max: max,
        ..base_config()
    };
    socket_established_with(
        config,
        TcpOptions {
            mss: Some(SEG as u16),
            window_scale: Some(0),
            timestamp: Some((1, 0)),
            ..NO_OPTIONS
        },
    )
}

/// One round trip of a peer that fills the window we advertised by the round's start
/// (right edge `edge`), from `seq` (both relative to REMOTE_SEQ + 1): full segments at
/// `t`, each echoing our TSval of one RTT ago; if `read`, the application reads
/// everything after each segment. Returns the next sequence offset and the right edge
/// of the last window we advertised.
fn peer_round(h: &mut Harness, t: i64, mut seq: usize, edge: usize, read: bool) -> (usize, usize) {
    let shift = h.layer.socket_ref(h.handle).unwrap().rcv_wscale();
    let limit = edge;
    let mut edge = edge;
    h.at(t);
    while seq + SEG <= limit {
        let payload = leak_slice(&[0x5a; SEG]);
        let seg = TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1 + seq,
            ack_number: LOCAL_SEQ + 1,
            options: ts_opt(t as u32, (t - RTT_MS) as u32),
            payload,
            ..SEND_TEMPL
        };
        assert_eq!(h.send(&seg), None);
        seq += SEG;
        if read {
            let mut buf = [0u8; 4 * SEG];
            while h.layer.recv(h.handle, &mut buf).is_ok_and(|n| n > 0) {}
        }
        for ack in drain(h) {
            let right = (ack.ack_number - (REMOTE_SEQ + 1)) as usize
                + (usize::from(ack.window_len) << shift);
            // RFC 9293 §3.8.6: the right edge does not move left; by less than one
            // scale unit only when the buffer is full (see the test below).
            assert!(
                right + (1 << shift) > edge,
                "right edge moved left: {right} < {edge}"
            );
            edge = edge.max(right);
        }
    }
    (seq, edge)
}

#[test]
fn test_established_window_grows_with_what_the_application_reads() {
    let mut h = tunable_receiver(1 << 20);
    // Per RFC 7323 §2.3 the shift is chosen for the most the buffer may grow to.
    assert_eq!(h.layer.socket_ref(h.handle).unwrap().rcv_wscale(), 5);
    let (mut seq, mut edge) = (0, 16 * 1024);
    let mut windows = Vec::new();
    for round in 0..12 {
        (seq, edge) = peer_round(&mut h, 100 + RTT_MS * round, seq, edge, true);
        windows.push(edge - seq);
    }
    // Each round the application read a whole window, more than the round before:
    // the window follows (Linux tcp_rcv_space_adjust), up to the maximum.
    assert!(windows[11] > 8 * 16 * 1024, "windows {windows:?}");
    assert!(windows.iter().all(|&w| w <= 1 << 20), "windows {windows:?}");
    assert!(
        windows.windows(2).all(|w| w[1] >= w[0]),
        "windows {windows:?}"
    );
    assert_eq!(windows[11], 1 << 20, "reaches the maximum: {windows:?}");
}

#[test]
fn test_established_window_does_not_grow_without_reads() {
    let mut h = tunable_receiver(1 << 20);
    let (mut seq, mut edge) = (0, 16 * 1024);
    for round in 0..4 {
        (seq, edge) = peer_round(&mut h, 100 + RTT_MS * round, seq, edge, false);
    }
    // Nothing was read: the buffer kept its size, and the window closed.
    let info = h.info();
    assert_eq!(info.recv_queue, seq);
    assert!(seq > 15 * 1024 && seq <= 16 * 1024, "{seq}");
    assert!(info.rcv_wnd < SEG, "window {}", info.rcv_wnd);
    // Reading it all re-opens the window to the buffer's original size only.
    let mut buf = [0u8; 16 * 1024];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(seq));
    let update = h.recv().expect("window update");
    let wnd = usize::from(update.window_len) << 5;
    assert!(wnd <= 16 * 1024 + 32, "window {wnd}");
}

#[test]
fn test_established_fixed_receive_buffer_does_not_grow() {
    // rx_buffer_max at most the initial size: what SO_RCVBUF does to a socket.
    let mut h = tunable_receiver(0);
    assert_eq!(h.layer.socket_ref(h.handle).unwrap().rcv_wscale(), 0);
    let (mut seq, mut edge) = (0, 16 * 1024);
    for round in 0..8 {
        (seq, edge) = peer_round(&mut h, 100 + RTT_MS * round, seq, edge, true);
        assert!(edge - seq <= 16 * 1024, "window {}", edge - seq);
    }
}

/// The window scale of the SYN a socket sends after `configure`.
fn syn_wscale(configure: impl FnOnce(&mut Harness)) -> Option<u8> {
    let config = TcpConfig {
        window_scaling: true,
        ..TcpConfig::default()
    };
    let mut h = Harness::new(config);
    configure(&mut h);
    let cx = h.cx();
    h.layer.connect(h.handle, &cx, REMOTE.into()).unwrap();
    let syn = h.recv().expect("SYN");
    assert!(syn.flags.syn());
    syn.options.window_scale
}

#[test]
fn test_closed_syn_scale_covers_the_autotuning_maximum() {
    // Default: 128 KiB to start, 6 MiB at most: 65535 << 7 covers 6 MiB.
    assert_eq!(syn_wscale(|_| {}), Some(7));
    // SO_RCVBUF fixes the buffer and turns tuning off: the scale fits that size.
    assert_eq!(
        syn_wscale(|h| h.layer.set_recv_buffer_size(h.handle, 65_535).unwrap()),
        Some(0)
    );
    assert_eq!(
        syn_wscale(|h| h.layer.set_recv_buffer_size(h.handle, 1 << 20).unwrap()),
        Some(5)
    );
}

/// Send side: a 4000-byte send buffer that may grow to 1 MiB, peer MSS 1000 (initial
/// cwnd 10 000 bytes), a 64 KiB peer window.
fn tunable_sender(max: usize) -> Harness {
    let config = TcpConfig {
        tx_buffer_len: 4000,
        tx_buffer_max: max,
        nodelay: true,
        ..base_config()
    };
    let mut h = socket_established_with(config, mss_opt(SEG as u16));
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            window_len: 65_535,
            ..SEND_TEMPL
        }
    );
    h
}

fn peer_ack(acked: usize) -> TcpRepr<'static> {
    TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1,
        ack_number: LOCAL_SEQ + 1 + acked,
        window_len: 65_535,
        ..SEND_TEMPL
    }
}

#[test]
fn test_established_send_buffer_grows_when_it_held_the_sender_back() {
    let mut h = tunable_sender(1 << 20);
    let data = [7u8; 20_000];
    assert_eq!(h.layer.send(h.handle, &data), Ok(4000));
    assert_eq!(drain(&mut h).len(), 4);
    // The ACK frees the buffer while only 2000 bytes of a 10 000-byte cwnd fly: the
    // buffer, not the network, held the sender back (Linux tcp_should_expand_sndbuf),
    // so it grows to 2 x cwnd.
    send!(h, peer_ack(2000));
    assert_eq!(h.layer.send(h.handle, &data), Ok(20_000 - 2000));
}

#[test]
fn test_established_send_buffer_grows_for_a_writer_waiting_on_a_full_buffer() {
    // An application that asks for room and waits when there is none (an echo that
    // reads only what it can send) never has a write refused; finding the buffer full
    // counts as one, so the buffer grows as in the test above.
    let mut h = tunable_sender(1 << 20);
    let data = [7u8; 20_000];
    assert_eq!(h.layer.send_space_or_note_full(h.handle), 4000);
    assert_eq!(h.layer.send(h.handle, &data[..4000]), Ok(4000));
    assert_eq!(drain(&mut h).len(), 4);
    assert_eq!(h.layer.send_space_or_note_full(h.handle), 0);
    send!(h, peer_ack(2000));
    assert_eq!(h.layer.send_space(h.handle), 20_000 - 2000);
}

#[test]
fn test_established_send_buffer_stays_when_the_writer_never_found_it_full() {
    // The control: asking while there is room is no refused write.
    let mut h = tunable_sender(1 << 20);
    let data = [7u8; 20_000];
    assert_eq!(h.layer.send_space_or_note_full(h.handle), 4000);
    assert_eq!(h.layer.send(h.handle, &data[..4000]), Ok(4000));
    assert_eq!(drain(&mut h).len(), 4);
    send!(h, peer_ack(2000));
    assert_eq!(h.layer.send_space(h.handle), 2000);
}

#[test]
fn test_established_fixed_send_buffer_does_not_grow() {
    let mut h = tunable_sender(0);
    let data = [7u8; 20_000];
    assert_eq!(h.layer.send(h.handle, &data), Ok(4000));
    drain(&mut h);
    send!(h, peer_ack(2000));
    assert_eq!(h.layer.send(h.handle, &data), Ok(2000));
}

#[test]
fn test_established_application_limited_sender_keeps_its_cwnd() {
    // RFC 7661 / Linux tcp_is_cwnd_limited: 1000 bytes per round trip never use more
    // than a tenth of the 10 000-byte initial window, so ACKs do not grow it.
    let mut h = tunable_sender(0);
    let cwnd0 = h.info().cwnd;
    let mut acked = 0;
    for _ in 0..20 {
        assert_eq!(h.layer.send(h.handle, &[1u8; SEG]), Ok(SEG));
        let sent: usize = drain(&mut h).iter().map(|s| s.payload.len()).sum();
        assert_eq!(sent, SEG);
        acked += SEG;
        send!(h, peer_ack(acked));
    }
    assert_eq!(h.info().cwnd, cwnd0, "cwnd grew while application-limited");
}

#[test]
fn test_established_window_limited_sender_grows_its_cwnd() {
    // The contrast: a sender that keeps its whole cwnd in flight grows it in slow
    // start by one segment per ACKed segment (RFC 5681 §3.1, ABC L = 2 SMSS).
    let mut h = tunable_sender(1 << 20);
    let cwnd0 = h.info().cwnd;
    let data = [3u8; 64_000];
    let mut acked = 0;
    for _ in 0..3 {
        let _ = h.layer.send(h.handle, &data);
        let segs = drain(&mut h);
        assert!(!segs.is_empty());
        for s in segs {
            acked += s.payload.len();
            send!(h, peer_ack(acked));
        }
    }
    assert!(
        h.info().cwnd > 2 * cwnd0,
        "cwnd {} from {cwnd0}",
        h.info().cwnd
    );
}

#[test]
fn test_established_hystart_leaves_slow_start_when_the_rtt_grows() {
    // A CUBIC sender with timestamps whose path RTT rises from 20 ms to 50 ms once a
    // queue builds (here: from 300 ms on). Every segment is ACKed alone, one RTT after
    // it left, echoing its TSval; nothing is lost. HyStart++ (RFC 9406) must see the
    // round minimum rise, go through CSS and set ssthresh without any loss.
    let config = TcpConfig {
        timestamps: true,
        window_scaling: true,
        congestion: CongestionAlgorithm::Cubic,
        tx_buffer_len: 1 << 20,
        nodelay: true,
        ..base_config()
    };
    let mut h = socket_established_with(
        config,
        TcpOptions {
            mss: Some(SEG as u16),
            window_scale: Some(7),
            timestamp: Some((1, 0)),
            ..NO_OPTIONS
        },
    );
    let data = vec![9u8; 1 << 20];
    let rtt = |t: i64| if t < 300 { 20 } else { 50 };
    // (when the ACK arrives, what it acknowledges, the TSval it echoes)
    let mut acks: std::collections::VecDeque<(i64, usize, u32)> = Default::default();
    let mut t = 100;
    let mut sent = 0;
    let mut ssthresh_at = None;
    h.at(t);
    while t < 2000 {
        let _ = h.layer.send(h.handle, &data);
        for s in drain(&mut h) {
            sent += s.payload.len();
            let tsval = s.options.timestamp.map_or(0, |ts| ts.0);
            acks.push_back((t + rtt(t), sent, tsval));
        }
        let Some((at, acked, tsval)) = acks.pop_front() else {
            break;
        };
        t = at;
        h.at(t);
        let ack = TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1 + acked,
            window_len: 65_535,
            options: ts_opt(t as u32, tsval),
            ..SEND_TEMPL
        };
        assert_eq!(h.send(&ack), None);
        if ssthresh_at.is_none() && h.info().ssthresh != usize::MAX {
            ssthresh_at = Some((t, h.info().cwnd, h.info().ssthresh));
        }
    }
    let (at, cwnd, ssthresh) = ssthresh_at.expect("HyStart++ never left slow start");
    // Slow start runs until the RTT rises (300 ms + the rounds that see it); CSS then
    // takes CSS_ROUNDS rounds of about 50 ms each before ssthresh is set to cwnd.
    assert!(at > 300 + 5 * 50, "ssthresh set at {at} ms");
    assert_eq!(ssthresh, cwnd);
    let events = h.events();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, TcpEvent::FastRetransmit { .. })),
        "no loss here: {events:?}"
    );
}

#[test]
fn test_established_scaled_window_never_invites_bytes_the_buffer_cannot_hold() {
    // Scale 5 (32-byte units), a 16 KiB buffer nobody reads, and a peer that sends
    // exactly up to each right edge we advertise, in odd-sized segments. An edge that
    // falls between two units must not be rounded up past the free space: the bytes
    // beyond would be dropped and resent.
    let mut h = tunable_receiver(1 << 20);
    let shift = h.layer.socket_ref(h.handle).unwrap().rcv_wscale();
    assert_eq!(shift, 5);
    let (mut seq, mut edge) = (0usize, 16 * 1024usize);
    h.at(100);
    while edge > seq {
        let len = (edge - seq).min(SEG - 1);
        let payload = leak_slice(&vec![0x33; len]);
        let seg = TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1 + seq,
            ack_number: LOCAL_SEQ + 1,
            options: ts_opt(100, 90),
            payload,
            ..SEND_TEMPL
        };
        assert_eq!(h.send(&seg), None);
        seq += len;
        let ack = drain(&mut h).pop().expect("ACK");
        let acked = (ack.ack_number - (REMOTE_SEQ + 1)) as usize;
        assert_eq!(
            acked, seq,
            "bytes inside the advertised window were dropped"
        );
        edge = acked + (usize::from(ack.window_len) << shift);
    }
    assert_eq!(h.info().recv_queue, seq);
}
