//! TIME-WAIT: 2*MSL, retransmitted FINs, RFC 6191 reuse.

use super::*;

#[test]
fn test_time_wait_expires() {
    let mut h = socket_time_wait();
    h.layer.close(h.handle, &h.cx()).unwrap();
    assert_eq!(h.layer.socket_count(), 2);
    h.at(59_999);
    assert_eq!(h.layer.socket_count(), 2);
    h.at(60_000);
    assert_eq!(h.layer.socket_count(), 1);
    assert!(h
        .layer
        .conn_handle(SocketAddr::V4(LOCAL), SocketAddr::V4(REMOTE))
        .is_none());
}

#[test]
fn test_time_wait_retransmitted_fin_reacked_and_timer_restarted() {
    let mut h = socket_time_wait();
    send!(h, time 30_000, TcpRepr {
        flags: flags(FIN, ACK),
        seq_number: REMOTE_SEQ + 1,
        ack_number: LOCAL_SEQ + 2,
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 2,
        ack_number: REMOTE_SEQ + 2,
        ..RECV_TEMPL
    }));
    h.at(60_000);
    assert_eq!(h.state(), TcpState::TimeWait);
    h.at(90_000);
    assert_eq!(h.state(), TcpState::Closed);
}

#[test]
fn test_time_wait_syn_with_greater_seq_reopens() {
    let mut h = socket_time_wait();
    h.layer.close(h.handle, &h.cx()).unwrap();
    h.layer.set_fixed_isn(None);
    send!(
        h,
        TcpRepr {
            flags: SYN,
            seq_number: REMOTE_SEQ + 1000,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.layer.counters().time_wait_reused, 1);
    let child = h
        .layer
        .conn_handle(SocketAddr::V4(LOCAL), SocketAddr::V4(REMOTE))
        .unwrap();
    assert_eq!(h.layer.state(child), Some(TcpState::SynReceived));
    // RFC 6191 / Linux: the new ISN is past the old connection's sequence space.
    recv!(
        h,
        TcpRepr {
            flags: flags(SYN, ACK),
            seq_number: LOCAL_SEQ + 2 + 65_537,
            ack_number: REMOTE_SEQ + 1001,
            options: mss_opt(1460),
            ..RECV_TEMPL
        }
    );
}

#[test]
fn test_time_wait_reuse_keeps_user_handle_valid() {
    let mut h = socket_time_wait();
    send!(
        h,
        TcpRepr {
            flags: SYN,
            seq_number: REMOTE_SEQ + 1000,
            ..SEND_TEMPL
        }
    );
    // The owner still holds the old connection: it is CLOSED, not gone.
    assert_eq!(h.layer.state(h.handle), Some(TcpState::Closed));
    let child = h
        .layer
        .conn_handle(SocketAddr::V4(LOCAL), SocketAddr::V4(REMOTE))
        .unwrap();
    assert_ne!(child, h.handle);
    let mut buf = [0u8; 4];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(0));
}

#[test]
fn test_time_wait_old_syn_gets_challenge_ack() {
    let mut h = socket_time_wait();
    send!(h, TcpRepr {
        flags: SYN,
        seq_number: REMOTE_SEQ + 2,
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 2,
        ack_number: REMOTE_SEQ + 2,
        ..RECV_TEMPL
    }));
    assert_eq!(h.state(), TcpState::TimeWait);
}

#[test]
fn test_time_wait_syn_with_newer_timestamp_reopens() {
    let mut h = socket_established_with(ts_config(), ts_opt(500, 0));
    h.layer.shutdown(h.handle, Shutdown::Write).unwrap();
    h.recv().unwrap();
    send!(h, TcpRepr {
        flags: flags(FIN, ACK),
        options: ts_opt(501, 0),
        ..ack_seg(1)
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 2,
        ack_number: REMOTE_SEQ + 2,
        options: ts_opt(0, 501),
        ..RECV_TEMPL
    }));
    assert_eq!(h.state(), TcpState::TimeWait);
    // Same timestamp: not newer, stays.
    let syn = |ts: u32| TcpRepr {
        flags: SYN,
        seq_number: REMOTE_SEQ - 5000,
        options: ts_opt(ts, 0),
        ..SEND_TEMPL
    };
    assert!(h.send(&syn(501)).is_some());
    assert_eq!(h.state(), TcpState::TimeWait);
    send!(h, syn(502));
    assert_eq!(h.layer.counters().time_wait_reused, 1);
}
