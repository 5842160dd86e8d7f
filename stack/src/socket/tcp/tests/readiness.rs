//! The readiness queue (`TcpLayer::poll_ready`).

use super::*;

#[test]
fn test_ready_listener_queued_when_connection_acceptable() {
    let mut h = socket_syn_received();
    // The SYN alone makes nothing acceptable; the child is not the user's yet.
    assert_eq!(ready(&mut h), vec![]);
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    let listener = h.listener.unwrap();
    assert_eq!(ready(&mut h), vec![listener]);
    assert_eq!(ready(&mut h), vec![], "each socket is returned once");
}

#[test]
fn test_ready_established_data_ack_and_fin_queue_once() {
    let mut h = socket_established();
    assert_eq!(
        ready(&mut h),
        vec![h.listener.unwrap()],
        "from the handshake"
    );
    assert_eq!(h.layer.send_space(h.handle), 64);
    assert_eq!(h.layer.send(h.handle, b"hello"), Ok(5));
    assert_eq!(h.layer.send_space(h.handle), 59);
    h.recv().expect("data");
    // Data and the ACK of "hello" in two segments: queued once until polled.
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 6,
            payload: b"abc",
            ..SEND_TEMPL
        }
    );
    send!(
        h,
        TcpRepr {
            flags: flags(ACK, FIN),
            seq_number: REMOTE_SEQ + 4,
            ack_number: LOCAL_SEQ + 6,
            ..SEND_TEMPL
        }
    );
    assert_eq!(ready(&mut h), vec![h.handle]);
    assert_eq!(h.layer.send_space(h.handle), 64, "ACK freed the buffer");
    let mut buf = [0u8; 8];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(3));
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(0));
    // A closed handle is never returned, even if queued before close.
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 5,
            ack_number: LOCAL_SEQ + 6,
            ..SEND_TEMPL
        }
    );
    h.layer.close(h.handle, &h.cx()).unwrap();
    assert_eq!(ready(&mut h), vec![]);
}

#[test]
fn test_ready_send_space_zero_when_not_sendable() {
    let h = socket_syn_sent();
    assert_eq!(h.layer.send_space(h.handle), 0, "handshake in progress");
    let mut h = socket_established();
    h.layer.shutdown(h.handle, Shutdown::Write).unwrap();
    assert_eq!(h.layer.send_space(h.handle), 0, "after shutdown(write)");
}

#[test]
fn test_ready_entry_of_a_freed_socket_is_dropped_with_it() {
    let mut h = socket_established();
    send!(
        h,
        TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            payload: b"abc",
            ..SEND_TEMPL
        }
    );
    assert!(h.layer.ready.contains(&h.handle), "queued by the data");
    // Nobody drains the queue: freeing the socket must take its entry along, or a
    // caller that never polls would keep one per connection ever touched.
    assert_eq!(h.layer.abort(h.handle), Ok(()));
    assert_eq!(h.layer.state(h.handle), None, "the slot was freed");
    assert!(!h.layer.ready.contains(&h.handle));
}
