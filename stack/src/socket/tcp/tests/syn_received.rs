//! SYN-RECEIVED: completing (or failing) a passive open.

use super::*;

#[test]
fn test_syn_received_ack_establishes_and_queues_for_accept() {
    let mut h = socket_syn_received();
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::Established);
    assert_eq!(
        h.events(),
        vec![state_change(
            h.handle,
            TcpState::SynReceived,
            TcpState::Established
        )]
    );
    assert!(h.layer.can_recv(h.listener.unwrap()));
    assert_eq!(
        h.layer.accept(h.listener.unwrap()),
        Ok((h.handle, SocketAddr::V4(REMOTE)))
    );
    assert_eq!(h.layer.peer_addr(h.handle), Some(SocketAddr::V4(REMOTE)));
    recv_nothing!(h);
}

#[test]
fn test_syn_received_ack_with_data() {
    let mut h = socket_syn_received();
    send!(
        h,
        TcpRepr {
            flags: flags(ACK, PSH),
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            payload: b"hello",
            ..SEND_TEMPL
        }
    );
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 6,
            window_len: 59,
            ..RECV_TEMPL
        }
    );
    let (c, _) = h.layer.accept(h.listener.unwrap()).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(h.layer.recv(c, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
}

#[test]
fn test_syn_received_ack_fin_goes_to_close_wait() {
    let mut h = socket_syn_received();
    send!(
        h,
        TcpRepr {
            flags: flags(ACK, FIN),
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::CloseWait);
    assert_eq!(
        h.events(),
        vec![
            state_change(h.handle, TcpState::SynReceived, TcpState::Established),
            state_change(h.handle, TcpState::Established, TcpState::CloseWait),
        ]
    );
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 2,
            ..RECV_TEMPL
        }
    );
    // Still handed to accept(), where it reads EOF.
    let (c, _) = h.layer.accept(h.listener.unwrap()).unwrap();
    assert!(h.layer.is_readable_eof(c));
}

#[test]
fn test_syn_received_rst_returns_to_listen() {
    let mut h = socket_syn_received();
    send!(
        h,
        TcpRepr {
            flags: RST,
            seq_number: REMOTE_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.layer.socket_count(), 1);
    assert!(h
        .layer
        .conn_handle(SocketAddr::V4(LOCAL), SocketAddr::V4(REMOTE))
        .is_none());
    assert_eq!(
        h.layer.accept(h.listener.unwrap()),
        Err(AcceptError::WouldBlock)
    );
    recv_nothing!(h);
}

#[test]
fn test_syn_received_bad_ack_gets_rst() {
    let mut h = socket_syn_received();
    send!(h, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1,
        ack_number: LOCAL_SEQ + 100,
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: RST,
        seq_number: LOCAL_SEQ + 100,
        window_len: 0,
        ..RECV_TEMPL
    }));
    assert_eq!(h.state(), TcpState::SynReceived);
}

#[test]
fn test_syn_received_retransmitted_syn_resends_syn_ack() {
    let mut h = socket_syn_received();
    send!(
        h,
        TcpRepr {
            flags: SYN,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    recv!(
        h,
        TcpRepr {
            flags: flags(SYN, ACK),
            seq_number: LOCAL_SEQ,
            ack_number: REMOTE_SEQ + 1,
            options: mss_opt(1460),
            ..RECV_TEMPL
        }
    );
}

#[test]
fn test_syn_received_timeout_retransmits_then_drops() {
    let mut h = socket_syn_received();
    let synack = TcpRepr {
        flags: flags(SYN, ACK),
        seq_number: LOCAL_SEQ,
        ack_number: REMOTE_SEQ + 1,
        options: mss_opt(1460),
        ..RECV_TEMPL
    };
    recv_nothing!(h, time 999);
    let mut t = 0;
    for i in 0..5 {
        t += 1000 << i;
        recv!(h, time t, synack);
    }
    t += 32_000;
    h.at(t);
    recv_nothing!(h);
    assert!(h
        .layer
        .conn_handle(SocketAddr::V4(LOCAL), SocketAddr::V4(REMOTE))
        .is_none());
    assert_eq!(h.layer.socket_count(), 1);
}
