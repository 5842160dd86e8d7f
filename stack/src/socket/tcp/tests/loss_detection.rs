//! Loss detection on busy connections (regressions found against the kernel).

use super::*;

/// Found against the kernel (echo with 5% loss): the peer's ACKs rode on its own data,
/// so the RFC 5681 "no payload" rule never counted a duplicate ACK and every loss
/// waited for the RTO. Per RFC 6675 §2, with SACK an ACK that SACKs new data is a
/// duplicate ACK whatever it carries; RACK (RFC 8985) reads its SACK blocks the same.
/// The handshake measured an RTT of 0, so RACK's reordering window is 0 and the first
/// such SACK already marks segment 0 lost.
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
        assert_eq!(rtx, k == 0, "segment {k}: dispatched {out:?}");
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
    // Segment 0 lost; 1-3 SACKed: fast recovery, ssthresh = 320. PRR (RFC 6937):
    // pipe = 384 > ssthresh, CEIL(192 * 320 / 640) = 96 bytes: the retransmission and
    // one new segment (whole segments).
    send!(h, sack(256));
    let out = drain(&mut h);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].seq_number, base);
    assert_eq!(out[1], data_seg(640, leak_slice(&more[..64])));
    assert_eq!(h.info().ssthresh, 320);
    // 1-7 SACKed: pipe = 64 (retransmission) + 128 (8, 9) + 64 (the new one) = 256,
    // although SND.NXT - SND.UNA = 704 > cwnd: PRR-SSRB refills pipe to ssthresh.
    send!(h, sack(512));
    recv!(h, data_seg(704, leak_slice(&more[64..128])));
    recv_nothing!(h);
    // 1-9 SACKed: pipe = 192, so 128 bytes more: two new segments.
    send!(h, sack(640));
    recv!(h, data_seg(768, leak_slice(&more[128..192])));
    recv!(h, data_seg(832, leak_slice(&more[192..256])));
    recv_nothing!(h);
    assert!(h.info().in_recovery);
}

/// Found against the kernel (5% loss on its pure ACKs): when the ACKs for the tail of a
/// flight were lost and the peer had nothing else to send, only the RTO (200 ms or
/// more) got things going again. RFC 8985 §7 tail loss probe: after 2 * SRTT + 2 ms
/// (Linux's TCP_TIMEOUT_MIN) without an ACK, the last segment is resent.
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
    // PTO = 2 * SRTT + 2 ms after the last transmission at 20 ms.
    let pto = (srtt.total_micros() * 2 + 2000).div_ceil(1000) as i64;
    recv_nothing!(h, time 20 + pto - 1);
    let mut probe = data_seg(1216, leak_slice(&more[576..]));
    probe.flags |= PSH;
    recv!(h, time 20 + pto, probe);
    recv_nothing!(h);
    assert_eq!(
        h.events(),
        vec![
            TcpEvent::LossProbe {
                handle: h.handle,
                seq: LOCAL_SEQ + 1 + 1216usize,
                new_data: false
            },
            TcpEvent::Retransmit {
                handle: h.handle,
                seq: LOCAL_SEQ + 1 + 1216usize,
                len: 64
            }
        ]
    );
    // One probe per episode: no second probe before the RTO.
    recv_nothing!(h, time 200);
    // The probe's ACK covers everything: no RTO, no recovery.
    send!(h, time 31 + 170, bulk_ack(1280));
    assert_eq!(h.info().unacked, 0);
    assert!(!h.info().in_recovery);
    recv_nothing!(h, time 1000);
}
