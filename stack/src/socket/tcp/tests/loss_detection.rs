//! Loss detection on busy connections (regressions found against the kernel).

use super::*;

/// Found against the kernel (echo with 5% loss): the peer's ACKs rode on its own data,
/// so the RFC 5681 "no payload" rule never counted a duplicate ACK and every loss
/// waited for the RTO. Per RFC 6675 §2, with SACK an ACK that SACKs new data is a
/// duplicate ACK whatever it carries.
#[test]
fn test_established_sack_on_data_segments_triggers_fast_retransmit() {
    let (mut h, data) = socket_bulk(sack_config(), sack_syn());
    for _ in 0..10 {
        h.recv().unwrap();
    }
    h.events();
    let base = LOCAL_SEQ + 1;
    // Segment 0 lost; the peer keeps sending data of its own, SACKing 1, 1-2, 1-3.
    for k in 0..3usize {
        let seg = TcpRepr {
            seq_number: REMOTE_SEQ + 1 + k,
            payload: b"x",
            options: TcpOptions {
                sack_ranges: [Some((base + 64, base + 128 + 64 * k)), None, None, None],
                ..NO_OPTIONS
            },
            ..bulk_ack(0)
        };
        send!(h, seg);
        let out = drain(&mut h);
        let rtx = out
            .iter()
            .any(|s| s.seq_number == base && s.payload == &data[..64]);
        assert_eq!(rtx, k == 2, "segment {k}: dispatched {out:?}");
    }
    assert!(h.info().in_recovery);
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, TcpEvent::FastRetransmit { seq, .. } if *seq == base)));
}

/// RFC 3042: with more data queued than cwnd allows, each of the first two duplicate
/// ACKs releases one new segment.
#[test]
fn test_established_limited_transmit_on_first_two_dupacks() {
    let (mut h, data) = socket_bulk(base_config(), NO_OPTIONS);
    let more: Vec<u8> = (0..640).map(|i| (i % 13) as u8).collect();
    assert_eq!(h.layer.send(h.handle, &more), Ok(640));
    // IW = 640 bytes: ten segments, then cwnd-limited.
    for _ in 0..10 {
        h.recv().unwrap();
    }
    recv_nothing!(h);
    send!(h, bulk_ack(0));
    recv!(h, data_seg(640, leak_slice(&more[..64])));
    recv_nothing!(h);
    send!(h, bulk_ack(0));
    recv!(h, data_seg(704, leak_slice(&more[64..128])));
    recv_nothing!(h);
    send!(h, bulk_ack(0));
    recv!(h, data_seg(0, leak_slice(&data[..64])));
    assert!(h.info().in_recovery);
}

/// Found against the kernel (bulk send with 5% loss): in SACK recovery new data was
/// still bounded by SND.UNA + cwnd, so with cwnd halved under a full flight nothing new
/// went out, no more SACKs arrived, and recovery stalled until the RTO. RFC 6675 §5 (C)
/// bounds pipe by cwnd instead.
#[test]
fn test_established_sack_recovery_sends_new_data_while_pipe_below_cwnd() {
    let (mut h, _data) = socket_bulk(sack_config(), sack_syn());
    let more: Vec<u8> = (0..640).map(|i| (i % 7) as u8).collect();
    assert_eq!(h.layer.send(h.handle, &more), Ok(640));
    for _ in 0..10 {
        h.recv().unwrap();
    }
    recv_nothing!(h);
    let base = LOCAL_SEQ + 1;
    let sack = |end: usize| TcpRepr {
        options: TcpOptions {
            sack_ranges: [Some((base + 64, base + end)), None, None, None],
            ..NO_OPTIONS
        },
        ..bulk_ack(0)
    };
    // Segment 0 lost; 1-3 SACKed: fast retransmit, cwnd = ssthresh = 320.
    send!(h, sack(256));
    let out = drain(&mut h);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].seq_number, base);
    assert_eq!(h.info().cwnd, 320);
    // 1-7 SACKed: pipe = 128 (segments 8, 9) + 64 (the retransmission) = 192 < 320,
    // although SND.NXT - SND.UNA = 640: two new segments go out.
    send!(h, sack(512));
    recv!(h, data_seg(640, leak_slice(&more[..64])));
    recv!(h, data_seg(704, leak_slice(&more[64..128])));
    recv_nothing!(h);
    assert!(h.info().in_recovery);
}

/// Found against the kernel (5% loss): a lost fast retransmission of SND.UNA always
/// waited for the RTO. Once more than DupThresh - 1 segments sent after it are SACKed
/// while it is still missing, it is sent again.
#[test]
fn test_established_sack_recovery_resends_lost_retransmission() {
    let (mut h, data) = socket_bulk(sack_config(), sack_syn());
    let more: Vec<u8> = (0..640).map(|i| (i % 7) as u8).collect();
    assert_eq!(h.layer.send(h.handle, &more), Ok(640));
    for _ in 0..10 {
        h.recv().unwrap();
    }
    let base = LOCAL_SEQ + 1;
    let sack = |end: usize| TcpRepr {
        options: TcpOptions {
            sack_ranges: [Some((base + 64, base + end)), None, None, None],
            ..NO_OPTIONS
        },
        ..bulk_ack(0)
    };
    let is_rtx_0 = |s: &TcpRepr<'_>| s.seq_number == base && s.payload == &data[..64];
    send!(h, sack(256));
    assert!(drain(&mut h).iter().any(is_rtx_0), "fast retransmit");
    // Everything up to SND.MAX at the retransmission SACKed: new data goes out, but
    // nothing says the retransmission is lost yet.
    send!(h, sack(640));
    let out = drain(&mut h);
    assert!(!out.is_empty() && !out.iter().any(is_rtx_0), "{out:?}");
    // Two segments sent after the retransmission SACKed: not yet (DupThresh - 1).
    send!(h, sack(768));
    assert!(!drain(&mut h).iter().any(is_rtx_0));
    // A third: the retransmission was lost; resend it without waiting for the RTO.
    send!(h, sack(832));
    assert!(
        drain(&mut h).iter().any(is_rtx_0),
        "lost retransmission resent"
    );
    assert!(h.info().in_recovery);
    // A cumulative ACK past the recovery point ends recovery.
    send!(h, bulk_ack(832));
    assert!(!h.info().in_recovery);
}

/// Found against the kernel (5% loss on its pure ACKs): when the ACKs for the tail of a
/// flight were lost and the peer had nothing else to send, only the RTO (200 ms or
/// more) got things going again. RFC 8985 §7 tail loss probe: after 2 * SRTT (at least
/// 10 ms) without an ACK, the last segment is resent.
#[test]
fn test_established_tail_loss_probe_resends_last_segment() {
    let (mut h, _data) = socket_bulk(sack_config(), sack_syn());
    assert_eq!(drain(&mut h).len(), 10);
    send!(h, time 20, bulk_ack(640));
    let srtt = h.info().srtt.expect("RTT measured");
    assert!(srtt < Duration::from_millis(5), "{srtt:?}");
    let more: Vec<u8> = (0..640).map(|i| (i % 11) as u8).collect();
    assert_eq!(h.layer.send(h.handle, &more), Ok(640));
    assert_eq!(drain(&mut h).len(), 10);
    h.events();
    // PTO = max(2 * SRTT, 10 ms) after the last transmission at 20 ms.
    recv_nothing!(h, time 29);
    let mut probe = data_seg(1216, leak_slice(&more[576..]));
    probe.flags |= PSH;
    recv!(h, time 30, probe);
    recv_nothing!(h);
    assert_eq!(
        h.events(),
        vec![TcpEvent::Retransmit {
            handle: h.handle,
            seq: LOCAL_SEQ + 1 + 1216usize,
            len: 64
        }]
    );
    // One probe per episode: no second probe before the RTO.
    recv_nothing!(h, time 200);
    // The probe's ACK covers everything: no RTO, no recovery.
    send!(h, time 31 + 170, bulk_ack(1280));
    assert_eq!(h.info().unacked, 0);
    assert!(!h.info().in_recovery);
    recv_nothing!(h, time 1000);
}
