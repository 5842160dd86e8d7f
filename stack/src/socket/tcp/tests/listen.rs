//! LISTEN: SYNs, listen queues, accept.

use super::*;

#[test]
fn test_listen_syn_creates_syn_received() {
    let mut h = socket_listen();
    send!(
        h,
        TcpRepr {
            flags: SYN,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    let child = h.layer.conn_handle(LOCAL, REMOTE).unwrap();
    assert_ne!(child, h.handle);
    assert_eq!(h.layer.state(h.handle), Some(TcpState::Listen));
    assert_eq!(
        h.events(),
        vec![state_change(child, TcpState::Listen, TcpState::SynReceived)]
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
    recv_nothing!(h);
    assert_eq!(h.layer.accept(h.handle), Err(AcceptError::WouldBlock));
}

#[test]
fn test_listen_ack_gets_rst() {
    let mut h = socket_listen();
    send!(h, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ,
        ack_number: LOCAL_SEQ,
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: RST,
        seq_number: LOCAL_SEQ,
        window_len: 0,
        ..RECV_TEMPL
    }));
    assert_eq!(h.layer.socket_count(), 1);
}

#[test]
fn test_listen_rst_and_bare_segments_ignored() {
    let mut h = socket_listen();
    send!(
        h,
        TcpRepr {
            flags: RST,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    send!(
        h,
        TcpRepr {
            flags: FIN,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    recv_nothing!(h);
    assert_eq!(h.layer.socket_count(), 1);
}

#[test]
fn test_listen_backlog_overflow_drops_syn() {
    let mut h = Harness::new(base_config());
    h.layer.listen(h.handle, LOCAL, 1).unwrap();
    send!(
        h,
        TcpRepr {
            flags: SYN,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    // The SYN queue is full: the second SYN is dropped silently, like Linux.
    send!(
        h,
        TcpRepr {
            flags: SYN,
            src_port: REMOTE_PORT + 1,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.layer.counters().listen_overflows, 1);
    h.recv().expect("SYN,ACK of the first");
    recv_nothing!(h);
    // Complete the first: it moves to the accept queue, which is now full.
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    send!(
        h,
        TcpRepr {
            flags: SYN,
            src_port: REMOTE_PORT + 2,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.layer.counters().listen_overflows, 2);
    let (c, peer) = h.layer.accept(h.handle).unwrap();
    assert_eq!(peer, REMOTE);
    assert_eq!(h.layer.state(c), Some(TcpState::Established));
    assert_eq!(h.layer.accept(h.handle), Err(AcceptError::WouldBlock));
}

#[test]
fn test_listen_accept_queue_full_drops_final_ack() {
    let mut h = Harness::new(base_config());
    h.layer.listen(h.handle, LOCAL, 1).unwrap();
    for port in [REMOTE_PORT, REMOTE_PORT + 1] {
        if port == REMOTE_PORT + 1 {
            h.recv().expect("SYN,ACK");
            // Make room in the SYN queue only.
            send!(
                h,
                TcpRepr {
                    flags: ACK,
                    seq_number: REMOTE_SEQ + 1,
                    ack_number: LOCAL_SEQ + 1,
                    ..SEND_TEMPL
                }
            );
        }
        send!(
            h,
            TcpRepr {
                flags: SYN,
                src_port: port,
                seq_number: REMOTE_SEQ,
                ..SEND_TEMPL
            }
        );
    }
    // The accept queue was full when the second SYN came: dropped.
    assert_eq!(h.layer.counters().listen_overflows, 1);
}

#[test]
fn test_listen_negotiates_options() {
    let mut config = base_config();
    config.window_scaling = true;
    config.timestamps = true;
    config.sack = true;
    config.rx_buffer_len = 1 << 20;
    let mut h = socket_syn_received_with(
        config,
        TcpOptions {
            mss: Some(1400),
            window_scale: Some(7),
            sack_permitted: true,
            timestamp: Some((500, 0)),
            ..NO_OPTIONS
        },
    );
    recv!(
        h,
        TcpRepr {
            flags: flags(SYN, ACK),
            seq_number: LOCAL_SEQ,
            ack_number: REMOTE_SEQ + 1,
            window_len: 65535,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(5),
                sack_permitted: true,
                timestamp: Some((0, 500)),
                ..NO_OPTIONS
            },
            ..RECV_TEMPL
        }
    );
    let s = h.layer.socket_ref(h.handle).unwrap();
    assert_eq!(s.rcv_wscale(), 5);
    let info = s.info();
    assert!(info.sack && info.timestamps && info.window_scaling);
    assert_eq!(info.snd_wscale, 7);
    // 1400 - 12 bytes of timestamp option.
    assert_eq!(info.snd_mss, 1388);
}

#[test]
fn test_listen_without_peer_options_omits_them() {
    let mut config = base_config();
    config.window_scaling = true;
    config.timestamps = true;
    config.sack = true;
    let mut h = socket_syn_received_with(config, NO_OPTIONS);
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
    assert_eq!(h.info().snd_mss, 536);
}
