//! BBR on a scripted SACK connection whose handshake measured a 10 ms RTT (peer MSS
//! 1000, a 65,535-byte peer window): pacing of new segments, and a random loss that
//! only conserves packets and leaves cwnd where it was once recovery ends. The model
//! itself (STARTUP, DRAIN, PROBE_BW, PROBE_RTT) is tested on the controller in
//! `congestion/bbr.rs`, the rate sampler in `rate.rs`.

use super::*;

fn bbr_config() -> TcpConfig {
    let mut config = sack_config();
    config.congestion = CongestionAlgorithm::Bbr;
    config.tx_buffer_len = 64 * 1024;
    config
}

/// Advances the clock to `us` microseconds and runs what is due.
fn at_us(h: &mut Harness, us: i64) {
    h.now = Instant::from_micros(us);
    let cx = h.cx();
    h.layer.handle_timeout(&cx);
}

/// Byte `off` of our stream.
fn seq(off: usize) -> SeqNumber {
    LOCAL_SEQ + 1 + off
}

fn ack_sack(off: usize, blocks: &[(usize, usize)]) -> TcpRepr<'static> {
    let mut sack_ranges = [None; 4];
    for (i, &(l, r)) in blocks.iter().enumerate() {
        sack_ranges[i] = Some((seq(l), seq(r)));
    }
    TcpRepr {
        window_len: 65_535,
        options: TcpOptions {
            sack_ranges,
            ..NO_OPTIONS
        },
        ..ack_seg(off)
    }
}

/// Established at t = 10 ms with SRTT 10 ms and 20,000 bytes queued; nothing sent yet.
fn socket_bbr() -> Harness {
    socket_bbr_queued(20_000)
}

/// Established at t = 10 ms with SRTT 10 ms and `queued` bytes queued; nothing sent.
fn socket_bbr_queued(queued: usize) -> Harness {
    let syn_opts = TcpOptions {
        mss: Some(1000),
        ..sack_syn()
    };
    let mut h = socket_syn_received_with(bbr_config(), syn_opts);
    h.recv().expect("SYN,ACK");
    h.at(10);
    establish(&mut h);
    send!(h, ack_sack(0, &[]));
    assert_eq!(h.info().congestion, CongestionAlgorithm::Bbr);
    let data = vec![0x42u8; queued];
    assert_eq!(h.layer.send(h.handle, &data), Ok(queued));
    h
}

/// Linux's initial BBR pacing once an RTT is known (`bbr_init_pacing_rate_from_rtt`):
/// the initial window (10 segments of 1000 bytes) per SRTT (10 ms) times 2.885, less
/// the 1 % margin: 2.856 MB/s, so a 1000-byte segment takes 350.1 µs of it (351 in
/// whole µs). The first segment goes at once, the next one only when its slot comes,
/// and the deadline the layer reports is that slot; a sender that wakes late sends
/// what it owes at once, but at most 1 ms of it (`PACING_SLACK`).
#[test]
fn test_established_bbr_paces_new_segments() {
    let mut h = socket_bbr();
    let t0 = h.now.total_micros();
    assert_eq!(drain(&mut h).len(), 1, "the gate closes after one segment");
    let slot = h.layer.poll_at().expect("pacing deadline");
    assert_eq!(slot.total_micros() - t0, 351);
    at_us(&mut h, t0 + 350);
    recv_nothing!(h);
    at_us(&mut h, t0 + 351);
    let out = drain(&mut h);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].seq_number, seq(1000));
    assert_eq!(h.layer.poll_at().map(|t| t.total_micros() - t0), Some(702));
    // At 1.1 ms the slots at 0.702 and 1.053 ms have passed: two segments at once.
    at_us(&mut h, t0 + 1100);
    assert_eq!(drain(&mut h).len(), 2);
    // Woken 3.6 ms after the next slot (1.404 ms): only the last 1 ms counts, so the
    // slots are 4.0, 4.351 and 4.702 ms: three segments.
    at_us(&mut h, t0 + 5000);
    assert_eq!(drain(&mut h).len(), 3);
    assert_eq!(h.layer.poll_at().map(|t| t.total_micros() - t0), Some(5053));
    assert_eq!(h.info().unacked, 7000);
}

/// A random loss: three segments SACKed above segment 0 mark it lost (RFC 8985
/// DupThresh). BBR does not halve: cwnd only comes down to packet conservation, the
/// flight plus what the ACK delivered (here 6,000 + 3,000 = 9,000, the old cwnd less
/// the lost segment), segment 0 is resent at once, and when recovery ends cwnd goes
/// back to at least the 10,000 bytes it had before the loss. CUBIC, for comparison,
/// sets ssthresh to 7,000 on the same ACK.
#[test]
fn test_established_bbr_random_loss_conserves_then_restores_cwnd() {
    let mut h = socket_bbr();
    let t0 = h.now.total_micros();
    let mut sent = drain(&mut h).len();
    for k in 1..=9 {
        at_us(&mut h, t0 + 351 * k);
        sent += drain(&mut h).len();
    }
    assert_eq!(sent, 10, "the initial window, paced");
    let before = h.info().cwnd;
    assert_eq!(before, 10_000);
    h.events();
    send!(h, time 21, ack_sack(0, &[(1000, 4000)]));
    let info = h.info();
    assert!(info.in_recovery);
    assert_eq!(info.rack_lost, 1);
    assert_eq!(
        info.cwnd, 9_000,
        "packet conservation: 6,000 in flight + 3,000 delivered"
    );
    assert_eq!(info.ssthresh, usize::MAX, "BBR sets no ssthresh on loss");
    let out = drain(&mut h);
    assert_eq!(out[0].seq_number, seq(0), "the fast retransmit");
    // The retransmission and the rest of the flight arrive: recovery ends.
    send!(h, time 32, ack_sack(10_000, &[]));
    let info = h.info();
    assert!(!info.in_recovery);
    assert!(
        info.cwnd >= before,
        "cwnd {} restored to >= {before}",
        info.cwnd
    );

    // The same ACK with CUBIC: ssthresh 7,000.
    let mut config = bbr_config();
    config.congestion = CongestionAlgorithm::Cubic;
    let syn_opts = TcpOptions {
        mss: Some(1000),
        ..sack_syn()
    };
    let mut c = socket_syn_received_with(config, syn_opts);
    c.recv().expect("SYN,ACK");
    c.at(10);
    establish(&mut c);
    send!(c, ack_sack(0, &[]));
    assert_eq!(c.layer.send(c.handle, &[0x42u8; 20_000]), Ok(20_000));
    assert_eq!(drain(&mut c).len(), 10, "CUBIC does not pace");
    send!(c, time 21, ack_sack(0, &[(1000, 4000)]));
    assert_eq!(c.info().ssthresh, 7_000);
}

/// A small flight: segment 0 lost, segments 1-3 SACKed by one ACK, nothing else
/// out. Packet conservation alone (the flight, 0, plus the 3,000 bytes delivered)
/// would leave room for the retransmission and two new segments; BBR's 4-segment
/// floor holds during conservation too, so three new segments follow it without
/// waiting for another ACK: more segments whose SACKs can show the retransmission's
/// loss if it is lost again.
#[test]
fn test_established_bbr_conservation_keeps_the_4_segment_floor() {
    let mut h = socket_bbr_queued(4000);
    let t0 = h.now.total_micros();
    let mut sent = 0;
    for k in 0..8 {
        at_us(&mut h, t0 + 351 * k);
        sent += drain(&mut h).len();
    }
    assert_eq!(sent, 4);
    // Segments 1-3 SACKed at 21 ms: three SACKed segments mark segment 0 lost at once.
    send!(h, time 21, ack_sack(0, &[(1000, 4000)]));
    assert!(h.info().in_recovery);
    assert_eq!(
        h.info().cwnd,
        4000,
        "the floor, above 0 in flight + 3,000 delivered"
    );
    // The application writes more: the retransmission, then new data up to cwnd.
    assert_eq!(h.layer.send(h.handle, &[0x43u8; 5000]), Ok(5000));
    let t1 = h.now.total_micros();
    let mut out = Vec::new();
    for k in 0..=20 {
        at_us(&mut h, t1 + 500 * k);
        out.extend(drain(&mut h));
    }
    assert_eq!(out.first().map(|s| s.seq_number), Some(seq(0)), "{out:?}");
    let new = out.iter().filter(|s| s.seq_number >= seq(4000)).count();
    assert_eq!(new, 3, "three new segments in a 4-segment window");
}
