//! RACK-TLP (RFC 8985), PRR (RFC 6937), D-SACK (RFC 2883) with undo (RFC 3708) and
//! F-RTO/Eifel (RFC 5682, RFC 3522), on a SACK connection whose handshake measured a
//! 10 ms RTT: peer MSS 64, a 8192-byte peer window, NewReno (ssthresh = FlightSize/2).

use super::*;

/// Sequence number of our byte `off`.
fn seq(off: usize) -> SeqNumber {
    LOCAL_SEQ + 1 + off
}

/// An ACK of our byte `off` with a wide window and the given SACK blocks (offsets).
fn ack_sack(off: usize, blocks: &[(usize, usize)]) -> TcpRepr<'static> {
    let mut sack_ranges = [None; 4];
    for (i, &(l, r)) in blocks.iter().enumerate() {
        sack_ranges[i] = Some((seq(l), seq(r)));
    }
    TcpRepr {
        window_len: 8192,
        options: TcpOptions {
            sack_ranges,
            ..NO_OPTIONS
        },
        ..ack_seg(off)
    }
}

/// Established at t = 10 ms (SRTT 10 ms), `queued` bytes of payload queued; the first
/// IW (10 segments) has been dispatched at t = 10 and checked.
fn socket_rack_with(config: TcpConfig, queued: usize) -> (Harness, Vec<u8>) {
    let mut config = config;
    config.tx_buffer_len = 8192;
    let syn_opts = TcpOptions {
        mss: Some(64),
        ..sack_syn()
    };
    let mut h = socket_syn_received_with(config, syn_opts);
    h.recv().expect("SYN,ACK");
    h.at(10);
    establish(&mut h);
    assert_eq!(h.info().srtt, Some(Duration::from_millis(10)));
    send!(h, ack_sack(0, &[]));
    let data: Vec<u8> = (0..queued).map(|i| (i % 251) as u8).collect();
    assert_eq!(h.layer.send(h.handle, &data), Ok(queued));
    let out = drain(&mut h);
    assert_eq!(out.len(), 10, "IW");
    h.events();
    (h, data)
}

fn socket_rack(queued: usize) -> (Harness, Vec<u8>) {
    socket_rack_with(sack_config(), queued)
}

/// Segment `k` (64 bytes) of `data`, as we send it.
fn seg_k(data: &[u8], k: usize) -> TcpRepr<'static> {
    let end = (k * 64 + 64).min(data.len());
    let mut s = data_seg(k * 64, leak_slice(&data[k * 64..end]));
    if end == data.len() {
        s.flags |= PSH;
    }
    s
}

fn starts(out: &[TcpRepr<'_>]) -> Vec<usize> {
    out.iter()
        .map(|s| (s.seq_number - seq(0)) as usize / 64)
        .collect()
}

/// RFC 8985 §6.2: one SACK (segment 1) does not make segment 0 lost at once: RACK
/// waits RACK.rtt + reo_wnd (min_RTT/4 = 2.5 ms) after segment 0 left, then the
/// reordering timer marks it and fast recovery resends it.
#[test]
fn test_established_rack_marks_loss_after_reordering_window() {
    let (mut h, data) = socket_rack(640);
    send!(h, time 20, ack_sack(0, &[(64, 128)]));
    recv_nothing!(h);
    recv_nothing!(h, time 22);
    assert!(!h.info().in_recovery);
    // 10 (sent) + 10 (RACK.rtt) + 2.5 (reo_wnd) = 22.5 ms.
    recv!(h, time 23, seg_k(&data, 0));
    assert!(h.info().in_recovery);
    assert_eq!(h.info().rack_lost, 1);
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, TcpEvent::FastRetransmit { seq: s, .. } if *s == seq(0))));
}

/// RFC 8985 §6.2 step 4 keeps RFC 6675's DupThresh: with three segments SACKed and no
/// reordering seen, reo_wnd is zero and the loss is marked on that ACK.
#[test]
fn test_established_rack_dupthresh_sacks_mark_at_once() {
    let (mut h, data) = socket_rack(640);
    send!(h, time 20, ack_sack(0, &[(64, 128)]));
    send!(h, ack_sack(0, &[(64, 192)]));
    recv_nothing!(h);
    send!(h, ack_sack(0, &[(64, 256)]));
    recv!(h, seg_k(&data, 0));
    assert!(h.info().in_recovery);
}

/// Issue 13: a lost retransmission is found by RACK without an RTO. Segment 0 is
/// resent at 20 ms with four new segments; at 30 ms those four are SACKed while
/// segment 0 is still missing: it was sent no later than them and RACK.rtt (10 ms)
/// has passed, so it is lost again and resent at once.
#[test]
fn test_established_rack_detects_lost_retransmission() {
    let (mut h, data) = socket_rack(1280);
    send!(h, time 20, ack_sack(0, &[(64, 640)]));
    let out = drain(&mut h);
    assert_eq!(
        starts(&out),
        vec![0, 10, 11, 12, 13],
        "PRR-SSRB: 5 segments"
    );
    assert_eq!(out[0], seg_k(&data, 0));
    send!(h, time 30, ack_sack(0, &[(64, 896)]));
    let out = drain(&mut h);
    assert_eq!(out.first(), Some(&seg_k(&data, 0)), "{out:?}");
    let ev = h.events();
    assert!(!ev.iter().any(|e| matches!(e, TcpEvent::RtoFired { .. })));
    assert_eq!(h.info().total_retrans, 2);
    assert_eq!(h.info().rack_lost, 2);
    // The second retransmission arrives: everything is acknowledged.
    send!(h, time 40, ack_sack(896 + 64 * (out.len() - 1), &[]));
    assert!(!h.info().in_recovery);
}

/// RFC 6937: while pipe > ssthresh, PRR sends ssthresh/RecoverFS (here 1/2) of what
/// each ACK delivers, rounded to whole segments (`CEIL(prr_delivered * ssthresh /
/// RecoverFS) - prr_out`); once pipe <= ssthresh, PRR-SSRB lets pipe grow back to
/// ssthresh by at most DeliveredData + 1 MSS per ACK.
#[test]
fn test_established_prr_sends_half_per_ack() {
    let (mut h, _data) = socket_rack(2560);
    // Segment 0 lost, 1-3 SACKed: recovery, ssthresh = 320, RecoverFS = 640,
    // pipe = 640 - 64 - 192 = 384 > 320: sndcnt = CEIL(192 * 320 / 640) = 96 bytes,
    // two segments in whole-segment units (the retransmission and one new one).
    send!(h, time 20, ack_sack(0, &[(64, 256)]));
    assert_eq!(h.info().ssthresh, 320);
    let out = drain(&mut h);
    assert_eq!(starts(&out), vec![0, 10]);
    // Each further ACK SACKs one more original segment (64 bytes delivered).
    let mut per_ack = Vec::new();
    for k in 5..11 {
        send!(h, ack_sack(0, &[(64, 64 * k)]));
        per_ack.push(drain(&mut h).len());
    }
    // k = 5, 6, 7: prr_delivered 256, 320, 384 against prr_out 128, 128, 192 gives
    // 0, 32 (one segment), 0 bytes while pipe (448, 384, 384) > 320. k = 8: pipe =
    // 320 = ssthresh, SSRB's MIN(ssthresh - pipe, limit) = 0. k = 9, 10: pipe 256,
    // one segment back up to ssthresh each time.
    assert_eq!(per_ack, vec![0, 1, 0, 0, 1, 1], "segments per ACK");
    assert!(h.info().in_recovery);
}

/// RFC 2883 §4: a duplicate of data already received is reported in the first SACK
/// block of the ACK it triggers; an out-of-order duplicate is followed by the block
/// holding it.
#[test]
fn test_established_dsack_reports_duplicates() {
    let mut h = socket_established_with(sack_config(), sack_syn());
    let seg = |off: usize, payload: &'static [u8]| TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1 + off,
        ack_number: LOCAL_SEQ + 1,
        payload,
        ..SEND_TEMPL
    };
    send!(h, seg(0, b"abcd"));
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 5,
            window_len: 60,
            ..RECV_TEMPL
        }
    );
    // The same segment again: old, answered at once with a D-SACK for it.
    let dup = TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 5,
        window_len: 60,
        options: TcpOptions {
            sack_ranges: [Some((REMOTE_SEQ + 1, REMOTE_SEQ + 5)), None, None, None],
            ..NO_OPTIONS
        },
        ..RECV_TEMPL
    };
    send!(h, seg(0, b"abcd") => Some(dup));
    // Out of order, then its duplicate: D-SACK first, the block holding it second.
    // Out-of-order data is acknowledged at once (RFC 5681 §4.2), in the reply itself.
    let got = h.send(&seg(8, b"ijkl")).expect("ACK");
    assert_eq!(got, {
        let mut a = dup;
        a.options.sack_ranges = [Some((REMOTE_SEQ + 9, REMOTE_SEQ + 13)), None, None, None];
        a
    });
    let got = h.send(&seg(8, b"ijkl")).expect("ACK");
    assert_eq!(
        got.options.sack_ranges,
        [
            Some((REMOTE_SEQ + 9, REMOTE_SEQ + 13)),
            Some((REMOTE_SEQ + 9, REMOTE_SEQ + 13)),
            None,
            None
        ]
    );
    // Reported once only.
    let got = h.send(&seg(12, b"mnop")).expect("ACK");
    assert_eq!(
        got.options.sack_ranges,
        [Some((REMOTE_SEQ + 9, REMOTE_SEQ + 17)), None, None, None]
    );
    assert_eq!(h.info().dsacks_out, 2);
}

/// `TcpConfig::dsack = false` (Linux `tcp_dsack=0`): duplicates are acknowledged
/// without a D-SACK block.
#[test]
fn test_established_dsack_off_reports_nothing() {
    let mut config = sack_config();
    config.dsack = false;
    let mut h = socket_established_with(config, sack_syn());
    let seg = TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1,
        ack_number: LOCAL_SEQ + 1,
        payload: b"abcd",
        ..SEND_TEMPL
    };
    send!(h, seg);
    h.recv().expect("ACK");
    let reply = h.send(&seg).expect("ACK to the duplicate");
    assert_eq!(reply.options.sack_ranges, [None; 4]);
    assert_eq!(h.info().dsacks_out, 0);
}

/// RFC 3708 §3 (and Linux's undo_retrans): when D-SACKs show that every retransmission
/// of the episode was needless, the reduction of cwnd and ssthresh is undone.
#[test]
fn test_established_dsack_undoes_spurious_recovery() {
    let (mut h, data) = socket_rack(640);
    let before = (h.info().cwnd, h.info().ssthresh);
    send!(h, time 20, ack_sack(0, &[(64, 256)]));
    recv!(h, seg_k(&data, 0));
    assert_eq!(h.info().ssthresh, 320);
    // Segment 0 was only delayed: the cumulative ACK covers all, and then the peer
    // reports the retransmission as a duplicate.
    send!(h, time 25, ack_sack(640, &[]));
    assert!(!h.info().in_recovery);
    assert_eq!(h.info().ssthresh, 320);
    send!(h, time 30, ack_sack(640, &[(0, 64)]));
    assert_eq!((h.info().cwnd, h.info().ssthresh), before);
    assert_eq!((h.info().undos, h.info().dsacks_in), (1, 1));
    assert!(h.events().iter().any(|e| matches!(
        e,
        TcpEvent::CongestionUndone { cwnd, .. } if *cwnd == before.0
    )));
}

/// A D-SACK for data below the undo marker (sent before the episode, here duplicated
/// by the network) undoes nothing.
#[test]
fn test_established_dsack_below_undo_marker_undoes_nothing() {
    let (mut h, data) = socket_rack(640);
    send!(h, time 15, ack_sack(128, &[]));
    // Segment 2 lost, 3-5 SACKed: recovery with the undo marker at 128.
    send!(h, time 20, ack_sack(128, &[(192, 384)]));
    recv!(h, seg_k(&data, 2));
    let reduced = h.info().ssthresh;
    assert!(reduced < usize::MAX);
    send!(h, time 26, ack_sack(128, &[(0, 64), (192, 384)]));
    assert_eq!(h.info().dsacks_in, 1);
    assert_eq!(h.info().undos, 0);
    assert_eq!(h.info().ssthresh, reduced);
}

/// RFC 8985 §7: after PTO = 2·SRTT + 2 ms (Linux's TCP_TIMEOUT_MIN) without an ACK,
/// with unsent data the peer's window allows, the probe is one new segment even though
/// cwnd is full; then the RTO, not another PTO, is armed, and (as Linux's
/// tcp_rearm_rto) it runs from when SND.UNA's segment left, not from the probe.
#[test]
fn test_established_tlp_probes_with_new_data() {
    let (mut h, data) = socket_rack(1280);
    recv_nothing!(h, time 31);
    recv!(h, time 32, seg_k(&data, 10));
    recv_nothing!(h);
    assert_eq!(h.info().tlp_probes, 1);
    assert!(h.events().contains(&TcpEvent::LossProbe {
        handle: h.handle,
        seq: seq(640),
        new_data: true
    }));
    // No second probe; the RTO (SRTT + 200 ms, as Linux) runs from segment 0's
    // transmission at 10 ms: 220 ms, where counting from the probe made it 242 ms.
    recv_nothing!(h, time 219);
    recv!(h, time 220, seg_k(&data, 0));
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, TcpEvent::RtoFired { .. })));
}

/// RFC 8985 §7.3/§7.4: with nothing new to send the probe resends the last segment;
/// when the ACK then goes past the probe without a D-SACK for it, the probe repaired
/// a loss and cwnd is reduced once.
#[test]
fn test_established_tlp_repairing_a_loss_reduces_cwnd() {
    let (mut h, data) = socket_rack(640);
    recv!(h, time 32, seg_k(&data, 9));
    assert!(h.events().contains(&TcpEvent::LossProbe {
        handle: h.handle,
        seq: seq(576),
        new_data: false
    }));
    // The probe's ACK covers everything: the episode stays open (a D-SACK may follow).
    send!(h, time 35, ack_sack(640, &[]));
    assert_eq!(h.info().ssthresh, usize::MAX);
    // New data, acknowledged past TLP.end_seq with no D-SACK: a loss was repaired.
    h.layer.send(h.handle, &data[..64]).unwrap();
    h.recv().expect("new data");
    h.events();
    send!(h, time 45, ack_sack(704, &[]));
    // Linux's CWR on a repaired loss: cwnd = ssthresh = cwnd / 2 (NewReno).
    let info = h.info();
    assert!(info.ssthresh < usize::MAX);
    assert_eq!(info.cwnd, info.ssthresh);
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, TcpEvent::CongestionChanged { .. })));
}

/// The same, but the peer reports the probe as a duplicate: no loss, no reduction.
#[test]
fn test_established_tlp_dsack_means_no_loss() {
    let (mut h, data) = socket_rack(640);
    recv!(h, time 32, seg_k(&data, 9));
    send!(h, time 35, ack_sack(640, &[(576, 640)]));
    h.layer.send(h.handle, &data[..64]).unwrap();
    h.recv().expect("new data");
    send!(h, time 45, ack_sack(704, &[]));
    assert_eq!(h.info().ssthresh, usize::MAX);
    assert_eq!(h.info().dsacks_in, 1);
}

/// RFC 5682 §3.1 (SACK-enhanced F-RTO): after a timeout, the first ACK advances
/// SND.UNA, so new data goes out instead of retransmissions; the second ACK covers
/// segments sent before the timeout and never retransmitted: the timeout was
/// spurious, and cwnd/ssthresh go back to what they were.
#[test]
fn test_established_frto_detects_spurious_timeout() {
    let (mut h, data) = socket_rack(1280);
    let before = (h.info().cwnd, h.info().ssthresh);
    // TLP at 32 ms (new data, segment 10), RTO at 220 ms: segment 0 again, cwnd 1 MSS.
    recv!(h, time 32, seg_k(&data, 10));
    recv!(h, time 220, seg_k(&data, 0));
    recv_nothing!(h);
    assert_eq!(h.info().cwnd, 64);
    // The original flight's ACKs were only delayed.
    send!(h, time 235, ack_sack(192, &[]));
    let out = drain(&mut h);
    assert!(!out.is_empty());
    assert!(
        out.iter().all(|s| s.seq_number >= seq(704)),
        "new data only: {out:?}"
    );
    send!(h, time 236, ack_sack(448, &[]));
    assert_eq!((h.info().cwnd, h.info().ssthresh), before);
    assert_eq!((h.info().spurious_rtos, h.info().undos), (1, 1));
}

/// The same timeout with a real loss: the second ACK acknowledges only what was
/// retransmitted or sent after the timeout (here: SACKs the new data), so the
/// reduction stays.
#[test]
fn test_established_frto_keeps_reduction_for_real_loss() {
    let (mut h, data) = socket_rack(1280);
    recv!(h, time 32, seg_k(&data, 10));
    recv!(h, time 220, seg_k(&data, 0));
    // Segment 0's retransmission arrives; 1 and beyond were lost.
    send!(h, time 235, ack_sack(64, &[(640, 704)]));
    let out = drain(&mut h);
    assert!(!out.is_empty());
    let new_start = (out[0].seq_number - seq(0)) as usize;
    send!(
        h,
        time 245,
        ack_sack(64, &[(640, 704), (new_start, new_start + 64)])
    );
    assert_eq!(h.info().spurious_rtos, 0);
    assert!(h.info().ssthresh < usize::MAX);
}

/// Eifel (RFC 3522): with timestamps, an ACK after the timeout echoing a TSval older
/// than the timeout acknowledges an original transmission: undone at the first ACK.
#[test]
fn test_established_eifel_undoes_spurious_timeout() {
    let mut config = sack_config();
    config.timestamps = true;
    let mut h = socket_syn_received_with(
        {
            let mut c = config;
            c.tx_buffer_len = 8192;
            c
        },
        TcpOptions {
            mss: Some(76),
            timestamp: Some((1, 0)),
            ..sack_syn()
        },
    );
    h.recv().expect("SYN,ACK");
    let ts = |now: i64| {
        h.layer
            .socket_ref(h.handle)
            .unwrap()
            .ts_offset
            .wrapping_add(now as u32)
    };
    let tsv0 = ts(0);
    let tsv10 = ts(10);
    h.at(10);
    let ack = |off: usize, ecr: u32| TcpRepr {
        window_len: 8192,
        options: TcpOptions {
            timestamp: Some((2, ecr)),
            ..NO_OPTIONS
        },
        ..ack_seg(off)
    };
    send!(h, ack(0, tsv0));
    h.layer.accept(h.listener.unwrap()).unwrap();
    let data: Vec<u8> = (0..640).map(|i| (i % 251) as u8).collect();
    h.layer.send(h.handle, &data).unwrap();
    assert_eq!(drain(&mut h).len(), 10);
    let before = (h.info().cwnd, h.info().ssthresh);
    // TLP (last segment) at 32 ms, RTO at 220 ms.
    assert_eq!(drain_at(&mut h, 32).len(), 1);
    assert_eq!(drain_at(&mut h, 220).len(), 1);
    assert_eq!(h.info().cwnd, 64);
    // An ACK echoing the first flight's TSval (sent at 10 ms, before the timeout).
    send!(h, time 232, ack(128, tsv10));
    assert_eq!((h.info().cwnd, h.info().ssthresh), before);
    assert_eq!(h.info().spurious_rtos, 1);
}

fn drain_at(h: &mut Harness, t: i64) -> Vec<TcpRepr<'static>> {
    h.at(t);
    drain(h)
}

/// RFC 6675 §5.1 (as Linux): the SACK scoreboard survives a timeout, so after it the
/// sender resends only what was not SACKed, then new data.
#[test]
fn test_established_rto_keeps_sack_scoreboard() {
    let (mut h, data) = socket_rack(1280);
    // Segments 0-4 lost, 5-9 SACKed: fast recovery resends 0-4 ...
    send!(h, time 20, ack_sack(0, &[(320, 640)]));
    let out = drain(&mut h);
    assert!(starts(&out).starts_with(&[0]), "{out:?}");
    // ... and every retransmission is lost too: the RTO fires, segment 0 goes first.
    h.at(400);
    let out = drain(&mut h);
    assert_eq!(starts(&out), vec![0], "{out:?}");
    assert_eq!(h.info().sacked, 320);
    // Everything resent from here on: never the SACKed segments 5-9. The ACK of
    // segment 0 lets F-RTO send new data first; the next ones only SACK that new data,
    // so the loss was real and segments 1-4 follow as pipe allows.
    let mut resent = Vec::new();
    let mut new_sent = 0;
    let mut una = 64;
    for t in [410, 420, 430, 440, 450] {
        send!(h, time t, ack_sack(una, &[(320, 640), (640, 640 + 64 * new_sent)]));
        let out = starts(&drain(&mut h));
        new_sent += out.iter().filter(|&&k| k >= 10).count();
        resent.extend(out);
        // The peer acknowledges the resent segments that arrive in order.
        while una < 320 && resent.contains(&(una / 64)) {
            una += 64;
        }
    }
    assert!(!resent.iter().any(|k| (5..10).contains(k)), "{resent:?}");
    for k in 1..5 {
        assert!(resent.contains(&k), "{k} in {resent:?}");
    }
    assert_eq!(h.info().spurious_rtos, 0);
    let _ = data;
}

/// On a sub-millisecond path (here a 1 ms handshake RTT) the probe goes at
/// 2·SRTT + 2 ms, as Linux's tcp_schedule_loss_probe adds TCP_TIMEOUT_MIN; a 10 ms
/// floor made every tail loss there wait several RTTs longer before its repair.
#[test]
fn test_established_tlp_pto_on_a_short_path() {
    let mut config = sack_config();
    config.tx_buffer_len = 8192;
    let syn_opts = TcpOptions {
        mss: Some(64),
        ..sack_syn()
    };
    let mut h = socket_syn_received_with(config, syn_opts);
    h.recv().expect("SYN,ACK");
    h.at(1);
    establish(&mut h);
    assert_eq!(h.info().srtt, Some(Duration::from_millis(1)));
    send!(h, ack_sack(0, &[]));
    let data: Vec<u8> = (0..1280).map(|i| (i % 251) as u8).collect();
    assert_eq!(h.layer.send(h.handle, &data), Ok(1280));
    assert_eq!(drain(&mut h).len(), 10, "IW");
    h.events();
    // Sent at 1 ms; PTO = 2 * 1 + 2 = 4 ms.
    recv_nothing!(h, time 4);
    recv!(h, time 5, seg_k(&data, 10));
    assert_eq!(h.info().tlp_probes, 1);
    // The RTO (SRTT + 200 ms) follows segment 0's transmission (1 ms), not the probe.
    recv_nothing!(h, time 201);
    recv!(h, time 202, seg_k(&data, 0));
}

/// The sender shut down writing with data still queued (FIN-WAIT-1, as at the end of
/// every bulk transfer): the tail is probed like any other, after PTO, not left to the
/// RTO. Only ESTABLISHED and CLOSE-WAIT armed the probe before, and in the simulator at
/// 10 % loss one timeout in five came from such a tail.
#[test]
fn test_fin_wait_1_tlp_probes_the_tail() {
    let (mut h, data) = socket_rack(1280);
    h.layer.shutdown(h.handle, Shutdown::Write).unwrap();
    assert_eq!(h.state(), TcpState::FinWait1);
    recv_nothing!(h, time 31);
    recv!(h, time 32, seg_k(&data, 10));
    assert_eq!(h.info().tlp_probes, 1);
}

/// The recovery probe (beyond RFC 8985, which sends no probe in recovery): the whole
/// flight is out, segment 0 is lost, 1-9 are SACKed, and the fast retransmit of
/// segment 0 is lost too. Nothing sent after it can be SACKed, so RACK cannot see
/// the loss; after 2·SRTT + 2 ms without an ACK (10 ms SRTT: at 42 ms) segment 0 is
/// resent once, long before the RTO, and not again while no ACK answers.
#[test]
fn test_established_recovery_probe_resends_snd_una_after_silence() {
    let (mut h, data) = socket_rack(640);
    send!(h, time 20, ack_sack(0, &[(64, 640)]));
    recv!(h, seg_k(&data, 0));
    recv_nothing!(h);
    assert!(h.info().in_recovery);
    h.events();
    recv_nothing!(h, time 41);
    recv!(h, time 42, seg_k(&data, 0));
    assert_eq!(h.info().recovery_probes, 1);
    assert_eq!(h.info().tlp_probes, 0);
    let ev = h.events();
    assert!(
        ev.iter().any(|e| matches!(e, TcpEvent::LossProbe { .. })),
        "{ev:?}"
    );
    assert!(!ev.iter().any(|e| matches!(e, TcpEvent::RtoFired { .. })));
    // One probe per silence: the next is the RTO.
    recv_nothing!(h, time 100);
    assert_eq!(h.info().recovery_probes, 1);
    // The probe arrives: everything is acknowledged and recovery ends.
    send!(h, time 110, ack_sack(640, &[]));
    assert!(!h.info().in_recovery);
    assert_eq!(h.info().total_retrans, 2);
}

/// ACKs that keep arriving put the recovery probe off: the fast retransmit is not
/// answered yet, but SACKs of the rest come less than 2·SRTT apart, so no probe goes;
/// it waits for 2·SRTT + 2 ms of silence after the last of them.
#[test]
fn test_established_recovery_probe_waits_while_acks_arrive() {
    let (mut h, data) = socket_rack(640);
    send!(h, time 20, ack_sack(0, &[(64, 320)]));
    send!(h, ack_sack(0, &[(64, 384)]));
    send!(h, ack_sack(0, &[(64, 448)]));
    recv!(h, seg_k(&data, 0));
    assert!(h.info().in_recovery);
    for t in [35, 50, 65] {
        recv_nothing!(h, time t);
        send!(h, ack_sack(0, &[(64, 448 + 64 * ((t as usize - 20) / 15))]));
    }
    assert_eq!(h.info().recovery_probes, 0);
    recv_nothing!(h, time 86);
    recv!(h, time 87, seg_k(&data, 0));
    assert_eq!(h.info().recovery_probes, 1);
}

/// A recovery probe answered by an ACK that delivers nothing (the peer dropped it, as a
/// full receive buffer would) does not earn another: the next retransmission is the
/// RTO's, with its backoff, not a probe per ACK.
#[test]
fn test_established_recovery_probe_needs_progress_for_the_next() {
    let (mut h, data) = socket_rack(640);
    send!(h, time 20, ack_sack(0, &[(64, 640)]));
    recv!(h, seg_k(&data, 0));
    recv!(h, time 42, seg_k(&data, 0));
    assert_eq!(h.info().recovery_probes, 1);
    // The same ACK again: nothing delivered.
    send!(h, time 50, ack_sack(0, &[(64, 640)]));
    recv_nothing!(h, time 100);
    assert_eq!(h.info().recovery_probes, 1);
    // The RTO (one RTO after the probe left) resends segment 0.
    let out = drain_at(&mut h, 300);
    assert_eq!(starts(&out), vec![0]);
    assert_eq!(h.info().recovery_probes, 1);
}
