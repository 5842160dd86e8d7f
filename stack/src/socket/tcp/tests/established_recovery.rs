//! ESTABLISHED, loss recovery: retransmission timeouts, fast retransmit, NewReno and SACK
//! recovery.

use super::*;

#[test]
fn test_established_rto_backoff_and_give_up() {
    let mut config = base_config();
    config.max_retries = 3;
    let mut h = socket_established_with(config, NO_OPTIONS);
    h.layer.send(h.handle, b"data").unwrap();
    let seg = TcpRepr {
        flags: flags(ACK, PSH),
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        payload: b"data",
        ..RECV_TEMPL
    };
    // The handshake measured 0 ms, so the RTO starts at its 200 ms minimum.
    recv!(h, seg);
    recv_nothing!(h, time 199);
    recv!(h, time 200, seg);
    recv_nothing!(h, time 599);
    recv!(h, time 600, seg);
    recv_nothing!(h, time 1399);
    recv!(h, time 1400, seg);
    let ev = h.events();
    assert!(ev.contains(&TcpEvent::RtoFired {
        handle: h.handle,
        rto: Duration::from_millis(1600),
        retries: 3
    }));
    assert!(ev.contains(&TcpEvent::Retransmit {
        handle: h.handle,
        seq: LOCAL_SEQ + 1,
        len: 4
    }));
    assert_eq!(h.info().total_retrans, 3);
    h.at(2999);
    assert_eq!(h.state(), TcpState::Established);
    h.at(3000);
    assert_eq!(h.state(), TcpState::Closed);
    assert_eq!(h.layer.send(h.handle, b"x"), Err(SendError::TimedOut));
}

#[test]
fn test_established_rto_collapses_cwnd() {
    let mut h = socket_established();
    h.layer.send(h.handle, b"data").unwrap();
    h.recv().unwrap();
    // RFC 6928: min(10*MSS, max(2*MSS, 14600)).
    assert_eq!(h.info().cwnd, 10 * 536);
    h.at(200);
    assert_eq!(h.info().cwnd, 536);
    assert_eq!(h.info().ssthresh, 2 * 536);
}

#[test]
fn test_established_fast_retransmit() {
    let (mut h, data) = socket_bulk(base_config(), NO_OPTIONS);
    // IW = min(10*MSS, max(2*MSS, 14600)) = 640: everything goes at once.
    for i in 0..10 {
        let mut want = data_seg(i * 64, leak_slice(&data[i * 64..i * 64 + 64]));
        if i == 9 {
            want.flags |= PSH;
        }
        recv!(h, want);
    }
    recv_nothing!(h);
    h.events();
    // First segment lost: three duplicate ACKs.
    send!(h, bulk_ack(0));
    send!(h, bulk_ack(0));
    recv_nothing!(h);
    send!(h, bulk_ack(0));
    recv!(h, data_seg(0, leak_slice(&data[..64])));
    let ev = h.events();
    assert_eq!(
        ev,
        vec![
            TcpEvent::FastRetransmit {
                handle: h.handle,
                seq: LOCAL_SEQ + 1
            },
            TcpEvent::CongestionChanged {
                handle: h.handle,
                cwnd: 320 + 3 * 64,
                ssthresh: 320
            },
            TcpEvent::Retransmit {
                handle: h.handle,
                seq: LOCAL_SEQ + 1,
                len: 64
            },
        ]
    );
    assert!(h.info().in_recovery);
    // Partial ACK (RFC 6582): the next hole is retransmitted at once.
    send!(h, bulk_ack(128));
    recv!(h, data_seg(128, leak_slice(&data[128..192])));
    recv_nothing!(h);
    // Full ACK ends recovery: cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS).
    send!(h, bulk_ack(640));
    assert!(!h.info().in_recovery);
    assert_eq!(h.info().cwnd, 128);
}

#[test]
fn test_established_sack_recovery_retransmits_holes() {
    let (mut h, data) = socket_bulk(sack_config(), sack_syn());
    for _ in 0..10 {
        h.recv().unwrap();
    }
    let base = LOCAL_SEQ + 1;
    // Segments 0 and 2 lost; the peer SACKs 1 and 3..10.
    let sack = |blocks: [Option<(SeqNumber, SeqNumber)>; 4]| TcpRepr {
        options: TcpOptions {
            sack_ranges: blocks,
            ..NO_OPTIONS
        },
        ..bulk_ack(0)
    };
    // RACK (RFC 8985): the handshake measured an RTT of 0, so the reordering window
    // is 0 and the first SACK marks segment 0 lost; PRR lets the retransmission out.
    send!(h, sack([Some((base + 64, base + 128)), None, None, None]));
    recv!(h, data_seg(0, leak_slice(&data[..64])));
    recv_nothing!(h);
    assert!(h.info().in_recovery);
    assert_eq!(h.info().ssthresh, 320);
    // Segments 3 and 4 SACKed: segment 2, sent before them, is lost too.
    send!(
        h,
        sack([
            Some((base + 192, base + 320)),
            Some((base + 64, base + 128)),
            None,
            None
        ])
    );
    recv!(h, data_seg(128, leak_slice(&data[128..192])));
    recv_nothing!(h);
    assert_eq!(h.info().sacked, 64 + 128);
    send!(h, sack([Some((base + 192, base + 640)), None, None, None]));
    send!(h, bulk_ack(640));
    assert_eq!(h.info().unacked, 0);
    assert!(!h.info().in_recovery);
}

/// Regression (found by `sim::tcp_tests::sack_retransmits_less_than_newreno_alone`,
/// where SACK recovery ran slower than NewReno's): in SACK recovery cwnd is not
/// inflated, so new data must be limited by pipe (RFC 6675 §5 (C)) and the peer's
/// window, not by SND.UNA + cwnd, which froze all new data until recovery ended.
#[test]
fn test_established_sack_recovery_sends_new_data_when_pipe_allows() {
    let (mut h, data) = socket_bulk(sack_config(), sack_syn());
    let more: Vec<u8> = (640..1280).map(|i| (i % 251) as u8).collect();
    assert_eq!(h.layer.send(h.handle, &more), Ok(640));
    for _ in 0..10 {
        h.recv().unwrap();
    }
    // cwnd (IW = 640) is full.
    recv_nothing!(h);
    let base = LOCAL_SEQ + 1;
    let sack = |l: usize, r: usize| TcpRepr {
        options: TcpOptions {
            sack_ranges: [Some((base + l, base + r)), None, None, None],
            ..NO_OPTIONS
        },
        ..bulk_ack(0)
    };
    // Segment 0 lost; 1..=3 SACKed: recovery (ssthresh = 320); PRR (RFC 6937) lets
    // the retransmission and one new segment out (CEIL(192 * 320 / 640) = 96 bytes,
    // in whole segments).
    send!(h, sack(64, 256));
    recv!(h, data_seg(0, leak_slice(&data[..64])));
    recv!(h, data_seg(640, leak_slice(&more[..64])));
    recv_nothing!(h);
    assert_eq!(h.info().ssthresh, 320);
    // 4..=6 SACKed too: pipe = 64 + 192 + 64 = 320 = ssthresh: nothing more.
    send!(h, sack(64, 448));
    recv_nothing!(h);
    // 7..=9 SACKed: pipe = 128, PRR-SSRB refills to ssthresh: three new segments,
    // though SND.NXT - SND.UNA is already 704 > cwnd.
    send!(h, sack(64, 640));
    recv!(h, data_seg(704, leak_slice(&more[64..128])));
    recv!(h, data_seg(768, leak_slice(&more[128..192])));
    recv!(h, data_seg(832, leak_slice(&more[192..256])));
    recv_nothing!(h);
    assert!(h.info().in_recovery);
}

/// Regression (seed 2 of `sim::tcp_tests::seed_sweep_64k_each_way`: thousands of
/// 23-byte retransmissions at one instant): duplicate ACKs that arrive after an RTO
/// must not start fast recovery (RFC 6582 §3.2 (1), §4). And since the SACK scoreboard
/// survives the timeout (RFC 6675 §5.1, as Linux), what they SACK is never resent.
#[test]
fn test_established_dupacks_after_rto_do_not_start_recovery() {
    let (mut h, data) = socket_bulk(sack_config(), sack_syn());
    for _ in 0..10 {
        h.recv().unwrap();
    }
    // No ACK: the tail loss probe (PTO = 10 ms, the RTT being 0) resends the last
    // segment, then the RTO, armed from the probe, resends the first; cwnd = 1 MSS.
    recv!(h, time 10, {
        let mut s = data_seg(576, leak_slice(&data[576..]));
        s.flags |= PSH;
        s
    });
    recv!(h, time 210, data_seg(0, leak_slice(&data[..64])));
    recv_nothing!(h);
    assert_eq!(h.info().cwnd, 64);
    let base = LOCAL_SEQ + 1;
    let dupack = TcpRepr {
        options: TcpOptions {
            sack_ranges: [Some((base + 64, base + 640)), None, None, None],
            ..NO_OPTIONS
        },
        ..bulk_ack(0)
    };
    // Late ACKs of the first flight, SACKing all but segment 0.
    for _ in 0..3 {
        send!(h, dupack);
        recv_nothing!(h);
    }
    assert!(!h.info().in_recovery);
    assert_eq!(h.info().cwnd, 64);
    // The retransmission is acknowledged: nothing is resent (1-9 are SACKed).
    send!(h, bulk_ack(64));
    recv_nothing!(h);
    assert_eq!(h.info().total_retrans, 2);
    send!(h, bulk_ack(640));
    assert_eq!(h.info().unacked, 0);
}
