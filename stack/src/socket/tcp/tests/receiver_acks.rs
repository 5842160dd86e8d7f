//! What a receiver's ACKs must tell a sender during loss recovery, which Linux senders
//! rely on (issue 13): an immediate ACK for out-of-order data and for data that fills
//! all or part of a hole, even with delayed ACKs on (RFC 5681 §4.2), and the SACK block
//! holding the segment that triggered the ACK listed first (RFC 2018 §4).

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

#[test]
fn test_established_in_order_data_waits_for_the_delayed_ack() {
    // The baseline the other tests differ from: in-order data with no hole is not
    // acknowledged at once.
    let mut h = delayed_sack();
    send!(h, time 0, peer_data(0, b"abc"));
    recv_nothing!(h, time 0);
    recv!(h, time 40, our_ack(3, 64 - 3, [None; 4]));
}

#[test]
fn test_established_hole_fill_acked_immediately_despite_delay() {
    let mut h = delayed_sack();
    send!(h, time 0, peer_data(10, b"klm"));
    recv!(h, time 0, our_ack(0, 64, [block(10, 13), None, None, None]));
    // Per RFC 5681 §4.2: "an immediate ACK SHOULD be generated when a segment arrives
    // that fills in all or part of a gap in the sequence space".
    send!(h, time 1, peer_data(0, b"abcdefghij"));
    recv!(h, time 1, our_ack(13, 64 - 13, [None; 4]));
}

#[test]
fn test_established_partial_hole_fill_acked_immediately_despite_delay() {
    let mut h = delayed_sack();
    send!(h, time 0, peer_data(10, b"klm"));
    recv!(h, time 0, our_ack(0, 64, [block(10, 13), None, None, None]));
    send!(h, time 1, peer_data(0, b"abcde"));
    recv!(h, time 1, our_ack(5, 64 - 5, [block(10, 13), None, None, None]));
}

#[test]
fn test_established_sack_block_of_the_triggering_segment_comes_first() {
    let mut h = delayed_sack();
    send!(h, time 0, peer_data(10, b"kl"));
    recv!(h, time 0, our_ack(0, 64, [block(10, 12), None, None, None]));
    send!(h, time 0, peer_data(20, b"uv"));
    recv!(h, time 0, our_ack(0, 64, [block(20, 22), block(10, 12), None, None]));
    // This segment extends the older block: per RFC 2018 §4, "the first SACK block
    // MUST specify the contiguous block of data containing the segment which
    // triggered this ACK".
    send!(h, time 0, peer_data(12, b"mn"));
    recv!(h, time 0, our_ack(0, 64, [block(10, 14), block(20, 22), None, None]));
}
