//! CLOSE-WAIT and LAST-ACK.

use super::*;

#[test]
fn test_close_wait_close_goes_to_last_ack() {
    let h = socket_last_ack();
    assert_eq!(h.state(), TcpState::LastAck);
}

#[test]
fn test_last_ack_ack_closes_and_frees() {
    let mut h = socket_last_ack();
    h.layer.close(h.handle, &h.cx()).unwrap();
    send!(
        h,
        TcpRepr {
            seq_number: REMOTE_SEQ + 2,
            ..ack_seg(1)
        }
    );
    assert_eq!(h.layer.socket_count(), 1);
    recv_nothing!(h);
}

#[test]
fn test_last_ack_rst_closes() {
    let mut h = socket_last_ack();
    send!(
        h,
        TcpRepr {
            flags: RST,
            seq_number: REMOTE_SEQ + 2,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::Closed);
    assert_eq!(h.layer.take_error(h.handle), None);
}

#[test]
fn test_listen_close_resets_unaccepted() {
    let mut h = socket_established();
    // `h.handle` is the accepted child; make another, unaccepted one.
    send!(
        h,
        TcpRepr {
            flags: SYN,
            src_port: REMOTE_PORT + 1,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    h.recv().unwrap();
    send!(
        h,
        TcpRepr {
            flags: ACK,
            src_port: REMOTE_PORT + 1,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    h.layer.close(h.listener.unwrap(), &h.cx()).unwrap();
    let rst = h.recv().unwrap();
    assert!(rst.flags.rst());
    assert_eq!(rst.dst_port, REMOTE_PORT + 1);
    // The accepted connection is untouched.
    assert_eq!(h.state(), TcpState::Established);
    assert_eq!(h.layer.socket_count(), 1);
}

#[test]
fn test_info_reports_like_tcp_info() {
    let h = socket_established();
    let info = h.info();
    assert_eq!(info.state, TcpState::Established);
    assert_eq!(info.congestion, CongestionAlgorithm::NewReno);
    assert_eq!(info.snd_wnd, 256);
    assert_eq!(info.rcv_wnd, 64);
    // The handshake measured 0 ms: the RTO is at its minimum.
    assert_eq!(info.rto, Duration::from_millis(200));
    assert_eq!(info.snd_una, LOCAL_SEQ + 1);
    assert_eq!(info.rcv_nxt, REMOTE_SEQ + 1);
}
