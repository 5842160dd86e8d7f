//! CLOSED: connect, bind and calls that need a connection.

use super::*;

#[test]
fn test_closed_syn_gets_rst_ack() {
    let mut h = socket();
    send!(h, TcpRepr {
        flags: SYN,
        seq_number: REMOTE_SEQ,
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: flags(RST, ACK),
        seq_number: SeqNumber(0),
        ack_number: REMOTE_SEQ + 1,
        window_len: 0,
        ..RECV_TEMPL
    }));
    assert_eq!(h.layer.counters().no_socket, 1);
}

#[test]
fn test_closed_ack_gets_rst_at_seg_ack() {
    let mut h = socket();
    send!(h, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ,
        ack_number: SeqNumber(1234),
        payload: b"abc",
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: RST,
        seq_number: SeqNumber(1234),
        window_len: 0,
        ..RECV_TEMPL
    }));
}

#[test]
fn test_closed_rst_is_ignored() {
    let mut h = socket();
    send!(
        h,
        TcpRepr {
            flags: RST,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    recv_nothing!(h);
}

#[test]
fn test_closed_port_zero_is_dropped() {
    let mut h = socket();
    send!(
        h,
        TcpRepr {
            flags: SYN,
            dst_port: 0,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.layer.counters().bad_segments, 1);
}

/// A handle kept after close never reaches the socket that reuses its slab slot.
#[test]
fn test_stale_handles_are_rejected() {
    let mut h = socket();
    let old = h.handle;
    h.layer.close(old, &h.cx()).unwrap();
    let new = h.layer.socket();
    assert_eq!(old.index(), new.index(), "the slot is reused");
    assert_ne!(old, new);
    assert_eq!(h.layer.send(old, b"x"), Err(SendError::BadHandle));
    assert_eq!(h.layer.close(old, &h.cx()), Err(CloseError::BadHandle));
    assert_eq!(h.layer.abort(old), Err(CloseError::BadHandle));
    assert_eq!(h.layer.state(old), None);
    assert_eq!(h.layer.state(new), Some(TcpState::Closed));
    assert_eq!(h.layer.socket_count(), 1);
}
