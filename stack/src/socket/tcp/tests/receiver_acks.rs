//! What a receiver's ACKs must tell a sender during loss recovery, which Linux senders
//! rely on (issue 13): an immediate ACK for out-of-order data and for data that fills
//! all or part of a hole, even with delayed ACKs on (RFC 5681 §4.2) -- sent as the
//! segment's own reply -- the SACK block holding the segment that triggered the ACK
//! listed first and the blocks that last received data after it (RFC 2018 §4),
//! quick-ACK mode, and Linux's SACK compression: past three
//! duplicate ACKs for one RCV.NXT, segments that only extend the newest block share
//! one ACK, sent when a timer of min(1 ms, RTT/20) + 100 µs fires or at the 45th
//! segment.

use super::*;

/// SACK on, 40 ms delayed ACKs (a full-sized in-order segment would wait).
fn delayed_sack() -> Harness {
    let mut config = sack_config();
    config.delayed_ack = Duration::from_millis(40);
    socket_established_with(config, sack_syn())
}

fn peer_data(off: usize, payload: &'static [u8]) -> TcpRepr<'static> {
    TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1 + off,
        ack_number: LOCAL_SEQ + 1,
        payload,
        ..SEND_TEMPL
    }
}

fn block(l: usize, r: usize) -> Option<(SeqNumber, SeqNumber)> {
    Some((REMOTE_SEQ + 1 + l, REMOTE_SEQ + 1 + r))
}

fn our_ack(ack: usize, window: u16, sack: [Option<(SeqNumber, SeqNumber)>; 4]) -> TcpRepr<'static> {
    TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1 + ack,
        window_len: window,
        options: TcpOptions {
            sack_ranges: sack,
            ..NO_OPTIONS
        },
        ..RECV_TEMPL
    }
}

/// Past the quick-ACK mode every connection starts in: the first two one-byte segments
/// (two: the 64-byte window holds no two full segments) were each acknowledged at once.
fn delayed_sack_past_quickack() -> Harness {
    let mut h = delayed_sack();
    send!(h, time 0, peer_data(0, b"a"));
    recv!(h, time 0, our_ack(1, 63, [None; 4]));
    send!(h, time 0, peer_data(1, b"b"));
    recv!(h, time 0, our_ack(2, 62, [None; 4]));
    h
}

#[test]
fn test_established_in_order_data_waits_for_the_delayed_ack() {
    // The baseline the other tests differ from: past the quick-ACK start, in-order
    // data with no hole is not acknowledged at once.
    let mut h = delayed_sack_past_quickack();
    send!(h, time 0, peer_data(2, b"abc"));
    recv_nothing!(h, time 0);
    recv!(h, time 40, our_ack(5, 64 - 5, [None; 4]));
}

#[test]
fn test_established_first_data_is_acked_in_quickack_mode() {
    // Linux tcp_event_data_recv: the first data of a connection enters quick-ACK mode,
    // so a sender in its first slow start is not held back by delayed ACKs.
    let mut h = delayed_sack();
    send!(h, time 0, peer_data(0, b"abc"));
    recv!(h, time 0, our_ack(3, 64 - 3, [None; 4]));
}

#[test]
fn test_established_idle_peer_restarts_quickack_mode() {
    // Linux tcp_event_data_recv: data after more than an RTO of silence (1 s here,
    // no RTT sample yet) is acknowledged at once again.
    let mut h = delayed_sack_past_quickack();
    send!(h, time 0, peer_data(2, b"c"));
    recv_nothing!(h, time 0);
    recv!(h, time 40, our_ack(3, 61, [None; 4]));
    send!(h, time 2000, peer_data(3, b"d"));
    recv!(h, time 2000, our_ack(4, 60, [None; 4]));
}

#[test]
fn test_established_retransmitted_data_enters_quickack_mode() {
    // A segment we already hold means the sender is retransmitting (it lost
    // something): acknowledge it, and the next in-order segments, at once (Linux
    // tcp_data_queue: "A retransmit ... Force an immediate ack").
    let mut h = delayed_sack_past_quickack();
    send!(h, time 0, peer_data(2, b"c"));
    recv_nothing!(h, time 0);
    // RFC 2883 §4: the duplicate is reported as a D-SACK block.
    send!(h, time 1, peer_data(0, b"ab") => Some(our_ack(3, 61, [block(0, 2), None, None, None])));
    send!(h, time 2, peer_data(3, b"d"));
    recv!(h, time 2, our_ack(4, 60, [None; 4]));
    send!(h, time 3, peer_data(4, b"e"));
    recv!(h, time 3, our_ack(5, 59, [None; 4]));
    // Two segments (the window holds no two full ones), then delayed ACKs again.
    send!(h, time 4, peer_data(5, b"f"));
    recv_nothing!(h, time 4);
    recv!(h, time 44, our_ack(6, 58, [None; 4]));
}

#[test]
fn test_established_hole_fill_acked_immediately_despite_delay() {
    let mut h = delayed_sack();
    send!(h, time 0, peer_data(10, b"klm") => Some(our_ack(0, 64, [block(10, 13), None, None, None])));
    // Per RFC 5681 §4.2: "an immediate ACK SHOULD be generated when a segment arrives
    // that fills in all or part of a gap in the sequence space".
    send!(h, time 1, peer_data(0, b"abcdefghij") => Some(our_ack(13, 64 - 13, [None; 4])));
    recv_nothing!(h, time 1);
}

#[test]
fn test_established_partial_hole_fill_acked_immediately_despite_delay() {
    let mut h = delayed_sack();
    send!(h, time 0, peer_data(10, b"klm") => Some(our_ack(0, 64, [block(10, 13), None, None, None])));
    send!(h, time 1, peer_data(0, b"abcde") => Some(our_ack(5, 64 - 5, [block(10, 13), None, None, None])));
}

#[test]
fn test_established_sack_block_of_the_triggering_segment_comes_first() {
    let mut h = delayed_sack();
    send!(h, time 0, peer_data(10, b"kl") => Some(our_ack(0, 64, [block(10, 12), None, None, None])));
    send!(h, time 0, peer_data(20, b"uv") => Some(our_ack(0, 64, [block(20, 22), block(10, 12), None, None])));
    // This segment extends the older block: per RFC 2018 §4, "the first SACK block
    // MUST specify the contiguous block of data containing the segment which
    // triggered this ACK".
    send!(h, time 0, peer_data(12, b"mn") => Some(our_ack(0, 64, [block(10, 14), block(20, 22), None, None])));
}

#[test]
fn test_established_duplicate_data_is_reported_in_a_dsack_block_once() {
    // RFC 2883 §4.1.1: a segment entirely below RCV.NXT is answered at once with its
    // range as the first SACK block; the next ACK no longer carries it.
    let mut h = delayed_sack_past_quickack();
    send!(h, time 1, peer_data(0, b"ab") => Some(our_ack(2, 62, [block(0, 2), None, None, None])));
    send!(h, time 2, peer_data(2, b"cd"));
    recv!(h, time 42, our_ack(4, 60, [None; 4]));
}

#[test]
fn test_established_partly_duplicate_data_reports_the_duplicate_part() {
    // RFC 2883 §4.1.1 with a segment that is only partly old: the D-SACK block is the
    // part we held, and the new bytes are acknowledged with it.
    let mut h = delayed_sack_past_quickack();
    send!(h, time 1, peer_data(1, b"bcd"));
    recv!(h, time 1, our_ack(4, 60, [block(1, 2), None, None, None]));
}

#[test]
fn test_established_duplicate_out_of_order_data_reports_dsack_then_its_block() {
    // RFC 2883 §4.1.2: out-of-order data received twice: the D-SACK block first, the
    // block that holds it second.
    let mut h = delayed_sack_past_quickack();
    send!(h, time 1, peer_data(10, b"klmn") => Some(our_ack(2, 62, [block(10, 14), None, None, None])));
    send!(h, time 1, peer_data(20, b"uv") => Some(our_ack(2, 62, [block(20, 22), block(10, 14), None, None])));
    send!(h, time 2, peer_data(11, b"lm") => Some(our_ack(2, 62, [block(11, 13), block(10, 14), block(20, 22), None])));
    // Once only.
    send!(h, time 3, peer_data(22, b"w") => Some(our_ack(2, 62, [block(20, 23), block(10, 14), None, None])));
}

/// Three out-of-order segments behind a hole at 0, each acknowledged at once: the
/// duplicate ACKs a sender's fast retransmit counts.
fn behind_a_hole() -> Harness {
    let mut h = delayed_sack_past_quickack();
    send!(h, time 1, peer_data(10, b"k") => Some(our_ack(2, 62, [block(10, 11), None, None, None])));
    send!(h, time 1, peer_data(11, b"l") => Some(our_ack(2, 62, [block(10, 12), None, None, None])));
    send!(h, time 1, peer_data(12, b"m") => Some(our_ack(2, 62, [block(10, 13), None, None, None])));
    h
}

#[test]
fn test_established_in_sequence_out_of_order_data_is_compressed_into_one_ack() {
    // Linux __tcp_ack_snd_check (SACK compression): past three duplicate ACKs for the
    // same RCV.NXT, segments that extend the newest block are answered by one ACK,
    // not one each. The handshake here took no time, so RTT/20 is zero and the timer
    // is its 100 µs of slack (the `_timer` tests below have a real RTT).
    let mut h = behind_a_hole();
    send!(h, time 1, peer_data(13, b"n") => None);
    send!(h, time 1, peer_data(14, b"o") => None);
    send!(h, time 1, peer_data(15, b"p") => None);
    recv_nothing!(h, time 1);
    recv!(h, time 2, our_ack(2, 62, [block(10, 16), None, None, None]));
    recv_nothing!(h, time 2);
    // Still the same RCV.NXT: the next segments are compressed too.
    send!(h, time 3, peer_data(16, b"q") => None);
    recv!(h, time 4, our_ack(2, 62, [block(10, 17), None, None, None]));
}

#[test]
fn test_established_out_of_order_data_starting_a_new_block_is_acked_at_once() {
    // A new hole (a second block) is reported first at once (RFC 2018 §4): an ACK
    // covering several new blocks could not list them all.
    let mut h = behind_a_hole();
    send!(h, time 1, peer_data(20, b"u") => Some(our_ack(2, 62, [block(20, 21), block(10, 13), None, None])));
    // Extending the older block is not the newest block either.
    send!(h, time 1, peer_data(13, b"n") => Some(our_ack(2, 62, [block(10, 14), block(20, 21), None, None])));
    // Now (10, 14) is the newest; extending it is compressed.
    send!(h, time 1, peer_data(14, b"o") => None);
    recv!(h, time 2, our_ack(2, 62, [block(10, 15), block(20, 21), None, None]));
}

#[test]
fn test_established_advancing_rcv_nxt_restarts_the_immediate_duplicate_acks() {
    // Linux resets its duplicate-ACK counter when RCV.NXT moves: a sender that
    // retransmitted the first hole gets three fresh duplicate ACKs for the next one.
    let mut h = behind_a_hole();
    send!(h, time 1, peer_data(13, b"n") => None);
    recv!(h, time 2, our_ack(2, 62, [block(10, 14), None, None, None]));
    // Part of the hole: acknowledged at once (RFC 5681 §4.2).
    send!(h, time 2, peer_data(2, b"cd") => Some(our_ack(4, 60, [block(10, 14), None, None, None])));
    send!(h, time 2, peer_data(14, b"o") => Some(our_ack(4, 60, [block(10, 15), None, None, None])));
    send!(h, time 2, peer_data(15, b"p") => Some(our_ack(4, 60, [block(10, 16), None, None, None])));
    send!(h, time 2, peer_data(16, b"q") => Some(our_ack(4, 60, [block(10, 17), None, None, None])));
    send!(h, time 2, peer_data(17, b"r") => None);
}

#[test]
fn test_established_compression_answers_at_most_44_segments_per_ack() {
    // Linux tcp_comp_sack_nr: the 45th segment left unanswered forces the ACK out.
    let mut h = behind_a_hole();
    for off in 13..13 + 44 {
        send!(h, time 1, peer_data(off, b"x") => None);
    }
    send!(h, time 1, peer_data(57, b"y") => Some(our_ack(2, 62, [block(10, 58), None, None, None])));
    // That ACK reset the count.
    send!(h, time 1, peer_data(58, b"z") => None);
}

#[test]
fn test_established_retransmission_quickack_answers_out_of_order_data_at_once() {
    // Quick-ACK mode, entered on a duplicate (the sender is recovering), applies to
    // out-of-order data as well (Linux checks it before compressing).
    let mut h = behind_a_hole();
    send!(h, time 1, peer_data(0, b"ab") => Some(our_ack(2, 62, [block(0, 2), block(10, 13), None, None])));
    send!(h, time 1, peer_data(13, b"n") => Some(our_ack(2, 62, [block(10, 14), None, None, None])));
}

#[test]
fn test_established_sack_compression_off_answers_each_segment() {
    let mut config = sack_config();
    config.delayed_ack = Duration::from_millis(40);
    config.sack_compression = false;
    let mut h = socket_established_with(config, sack_syn());
    for (i, off) in (10..16).enumerate() {
        send!(h, time 0, peer_data(off, b"x") => Some(our_ack(0, 64, [block(10, 11 + i), None, None, None])));
    }
}

#[test]
fn test_established_recent_blocks_stay_listed_while_the_newest_grows() {
    // RFC 2018 §4: after the first block, "the SACK option SHOULD be filled out by
    // repeating the most recently reported SACK blocks". Five blocks, four fit
    // (no timestamps here): the block last created, (5, 6), must stay in the ACKs
    // while in-sequence data extends the newest one, not fall out after three
    // segments.
    let mut h = delayed_sack_past_quickack();
    send!(h, time 1, peer_data(10, b"k") => Some(our_ack(2, 62, [block(10, 11), None, None, None])));
    send!(h, time 1, peer_data(14, b"o") => Some(our_ack(2, 62, [block(14, 15), block(10, 11), None, None])));
    send!(h, time 1, peer_data(17, b"r") => Some(our_ack(2, 62, [block(17, 18), block(14, 15), block(10, 11), None])));
    send!(h, time 1, peer_data(20, b"u") => Some(our_ack(2, 62, [block(20, 21), block(17, 18), block(14, 15), block(10, 11)])));
    send!(h, time 1, peer_data(5, b"f") => Some(our_ack(2, 62, [block(5, 6), block(20, 21), block(17, 18), block(14, 15)])));
    send!(h, time 1, peer_data(21, b"v") => Some(our_ack(2, 62, [block(20, 22), block(5, 6), block(17, 18), block(14, 15)])));
    send!(h, time 1, peer_data(22, b"w") => None);
    send!(h, time 1, peer_data(23, b"x") => None);
    recv!(h, time 2, our_ack(2, 62, [block(20, 24), block(5, 6), block(17, 18), block(14, 15)]));
}

/// The clock at `micros` µs, with the timers due run (the harness's `at` is in ms).
fn at_us(h: &mut Harness, micros: i64) {
    h.now = Instant::from_micros(micros);
    let cx = h.cx();
    h.layer.handle_timeout(&cx);
}

/// `behind_a_hole` on a connection whose handshake took `rtt_ms` (so SRTT is that,
/// and the SACK compression timer min(1 ms, RTT/20) + 100 µs); everything happens at time
/// `rtt_ms`, which is returned.
fn behind_a_hole_after(rtt_ms: i64) -> (Harness, i64) {
    behind_a_hole_after_with(rtt_ms, Duration::from_millis(1))
}

/// `behind_a_hole_after` with `sack_compression_delay` set to `delay`.
fn behind_a_hole_after_with(rtt_ms: i64, delay: Duration) -> (Harness, i64) {
    let mut config = sack_config();
    config.delayed_ack = Duration::from_millis(40);
    config.sack_compression_delay = delay;
    let mut h = socket_syn_received_with(config, sack_syn());
    h.recv().expect("SYN,ACK");
    h.at(rtt_ms);
    establish(&mut h);
    assert_eq!(h.info().srtt, Some(Duration::from_millis(rtt_ms as u64)));
    let t = rtt_ms;
    // Past quick-ACK mode, then three duplicate ACKs at once.
    send!(h, time t, peer_data(0, b"a") => None);
    recv!(h, time t, our_ack(1, 63, [None; 4]));
    send!(h, time t, peer_data(1, b"b") => None);
    recv!(h, time t, our_ack(2, 62, [None; 4]));
    for off in 10..13 {
        send!(h, time t, peer_data(off, b"x") => Some(our_ack(2, 62, [block(10, off + 1), None, None, None])));
    }
    (h, t)
}

#[test]
fn test_established_compressed_sacks_wait_for_the_timer() {
    // Linux __tcp_ack_snd_check: compressed segments arm a timer of
    // min(tcp_comp_sack_delay_ns = 1 ms, RTT/20) with tcp_comp_sack_slack_ns = 100 µs
    // of slack; with a 20 ms RTT that is at most 1.1 ms.
    let (mut h, t) = behind_a_hole_after(20);
    for off in 13..16 {
        send!(h, time t, peer_data(off, b"x") => None);
    }
    recv_nothing!(h, time t);
    at_us(&mut h, t * 1000 + 1099);
    recv_nothing!(h);
    // One ACK for the three, when the timer fires.
    at_us(&mut h, t * 1000 + 1100);
    recv!(h, our_ack(2, 62, [block(10, 16), None, None, None]));
    recv_nothing!(h, time t + 50);
}

#[test]
fn test_established_sack_compression_timer_is_a_twentieth_of_the_rtt() {
    // 10 ms RTT: 500 µs (under the 1 ms cap) + 100 µs. The timer is armed by the
    // first compressed segment and not pushed back by the next ones.
    let (mut h, t) = behind_a_hole_after(10);
    let t_us = t * 1000;
    send!(h, peer_data(13, b"x") => None);
    at_us(&mut h, t_us + 300);
    send!(h, peer_data(14, b"x") => None);
    at_us(&mut h, t_us + 599);
    recv_nothing!(h);
    at_us(&mut h, t_us + 600);
    recv!(h, our_ack(2, 62, [block(10, 15), None, None, None]));
}

#[test]
fn test_established_compression_timer_yields_to_the_45th_segment_and_a_new_block() {
    // Inside one timer period: 44 compressed segments, then the 45th is answered at
    // once (Linux tcp_comp_sack_nr), and that ACK stops the timer.
    let (mut h, t) = behind_a_hole_after(20);
    for off in 13..13 + 44 {
        send!(h, time t, peer_data(off, b"x") => None);
    }
    send!(h, time t, peer_data(57, b"y") => Some(our_ack(2, 62, [block(10, 58), None, None, None])));
    recv_nothing!(h, time t + 1);
    // A new block while the timer runs is reported at once, and also stops it.
    send!(h, time t + 2, peer_data(58, b"z") => None);
    send!(h, time t + 2, peer_data(60, b"u") => Some(our_ack(2, 62, [block(60, 61), block(10, 59), None, None])));
    recv_nothing!(h, time t + 3);
    recv_nothing!(h, time t + 100);
}

#[test]
fn test_established_zero_compression_delay_acks_per_batch() {
    // `sack_compression_delay` zero: no timer; the compressed segments of a batch
    // share the ACK of the next dispatch (the form before the timer).
    let (mut h, t) = behind_a_hole_after_with(20, Duration::ZERO);
    send!(h, time t, peer_data(13, b"x") => None);
    send!(h, time t, peer_data(14, b"x") => None);
    recv!(h, time t, our_ack(2, 62, [block(10, 15), None, None, None]));
    recv_nothing!(h, time t + 50);
}

fn peer_fin(off: usize, payload: &'static [u8]) -> TcpRepr<'static> {
    TcpRepr {
        flags: FIN | ACK,
        ..peer_data(off, payload)
    }
}

#[test]
fn test_established_out_of_order_fin_is_held_and_sacked_past_it() {
    // Linux keeps a FIN that arrives beyond a hole in its out-of-order queue: the SACK
    // block reaches one past it (the sender counts the FIN's sequence number), and the
    // FIN is processed when the hole fills. Forgetting it left the sender only its RTO
    // to resend the FIN (stalls of 200 ms at the end of `bench loss` transfers).
    let mut h = delayed_sack();
    send!(h, time 0, peer_fin(10, b"klm") => Some(our_ack(0, 64, [block(10, 14), None, None, None])));
    assert_eq!(h.state(), TcpState::Established);
    // The hole fills: the data and the FIN held are acknowledged together, at once.
    send!(h, time 1, peer_data(0, b"abcdefghij") => Some(our_ack(14, 64 - 13, [None; 4])));
    assert_eq!(h.state(), TcpState::CloseWait);
    recv_nothing!(h, time 1);
}

#[test]
fn test_established_bare_out_of_order_fin_is_a_block_of_its_own() {
    let mut h = delayed_sack();
    send!(h, time 0, peer_data(10, b"kl") => Some(our_ack(0, 64, [block(10, 12), None, None, None])));
    // A FIN with no text beyond a second hole: its own block, reported first.
    send!(h, time 0, peer_fin(15, b"") => Some(our_ack(0, 64, [block(15, 16), block(10, 12), None, None])));
    // Text up to the FIN joins the FIN's block.
    send!(h, time 0, peer_data(12, b"mno") => Some(our_ack(0, 64, [block(10, 16), None, None, None])));
    assert_eq!(h.state(), TcpState::Established);
    send!(h, time 1, peer_data(0, b"abcdefghij") => Some(our_ack(16, 64 - 15, [None; 4])));
    assert_eq!(h.state(), TcpState::CloseWait);
}

#[test]
fn test_established_text_past_an_out_of_order_fin_is_not_held() {
    // The FIN ends the stream: a later segment claiming text beyond it adds nothing
    // (RFC 9293 §3.10.7.4 eighth), and the stream the application reads stops at it.
    let mut h = delayed_sack();
    send!(h, time 0, peer_fin(5, b"fg") => Some(our_ack(0, 64, [block(5, 8), None, None, None])));
    // "g" is held already (a D-SACK, RFC 2883 §4); "hij" lies past the FIN.
    send!(h, time 0, peer_data(6, b"ghij") => Some(our_ack(0, 64, [block(6, 7), block(5, 8), None, None])));
    send!(h, time 1, peer_data(0, b"abcde") => Some(our_ack(8, 64 - 7, [None; 4])));
    assert_eq!(h.state(), TcpState::CloseWait);
    let mut buf = [0u8; 64];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(7));
    assert_eq!(&buf[..7], b"abcdefg");
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(0));
}

#[test]
fn test_established_second_out_of_order_fin_elsewhere_is_ignored() {
    // One FIN per stream: a second one at another sequence number (a confused or
    // hostile peer) changes nothing; the first one is processed in order.
    let mut h = delayed_sack();
    send!(h, time 0, peer_fin(5, b"") => Some(our_ack(0, 64, [block(5, 6), None, None, None])));
    send!(h, time 0, peer_fin(3, b"") => None);
    recv!(h, time 0, our_ack(0, 64, [block(5, 6), None, None, None]));
    send!(h, time 1, peer_data(0, b"abcde") => Some(our_ack(6, 64 - 5, [None; 4])));
    assert_eq!(h.state(), TcpState::CloseWait);
}
