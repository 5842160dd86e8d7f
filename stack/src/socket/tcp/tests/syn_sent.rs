//! SYN-SENT: completing (or failing) an active open, simultaneous open, ICMP errors.

use super::*;

#[test]
fn test_syn_sent_syn_ack_establishes() {
    let mut h = socket_syn_sent();
    send!(h, time 10, TcpRepr {
        flags: flags(SYN, ACK),
        seq_number: REMOTE_SEQ,
        ack_number: LOCAL_SEQ + 1,
        options: mss_opt(1000),
        ..SEND_TEMPL
    });
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 1,
            ..RECV_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::Established);
    let info = h.info();
    assert_eq!(info.snd_mss, 1000);
    assert_eq!(info.srtt, Some(Duration::from_millis(10)));
    assert_eq!(
        h.events(),
        vec![state_change(
            h.handle,
            TcpState::SynSent,
            TcpState::Established
        )]
    );
    assert!(h.layer.can_send(h.handle));
}

#[test]
fn test_syn_sent_rst_ack_refuses() {
    let mut h = socket_syn_sent();
    send!(
        h,
        TcpRepr {
            flags: flags(RST, ACK),
            seq_number: SeqNumber(0),
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::Closed);
    assert_eq!(h.layer.send(h.handle, b"x"), Err(SendError::Refused));
    assert_eq!(h.layer.send(h.handle, b"x"), Err(SendError::Closed));
    recv_nothing!(h);
}

#[test]
fn test_syn_sent_rst_without_acceptable_ack_ignored() {
    let mut h = socket_syn_sent();
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
            flags: flags(RST, ACK),
            seq_number: REMOTE_SEQ,
            ack_number: LOCAL_SEQ + 5,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::SynSent);
}

#[test]
fn test_syn_sent_bad_ack_gets_rst() {
    let mut h = socket_syn_sent();
    send!(h, TcpRepr {
        flags: flags(SYN, ACK),
        seq_number: REMOTE_SEQ,
        ack_number: LOCAL_SEQ,
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: RST,
        seq_number: LOCAL_SEQ,
        window_len: 0,
        ..RECV_TEMPL
    }));
    assert_eq!(h.state(), TcpState::SynSent);
}

#[test]
fn test_syn_sent_simultaneous_open() {
    let mut h = socket_syn_sent();
    send!(
        h,
        TcpRepr {
            flags: SYN,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::SynReceived);
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
    // The peer's SYN,ACK repeats its SYN; only its ACK matters.
    send!(
        h,
        TcpRepr {
            flags: flags(SYN, ACK),
            seq_number: REMOTE_SEQ,
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::Established);
    assert_eq!(
        h.events(),
        vec![
            state_change(h.handle, TcpState::SynSent, TcpState::SynReceived),
            state_change(h.handle, TcpState::SynReceived, TcpState::Established),
        ]
    );
}

#[test]
fn test_syn_received_shutdown_sends_fin_after_handshake() {
    let mut h = socket_syn_sent();
    send!(
        h,
        TcpRepr {
            flags: SYN,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    h.recv().expect("SYN,ACK");
    h.layer.shutdown(h.handle, Shutdown::Write).unwrap();
    assert_eq!(h.state(), TcpState::SynReceived);
    recv_nothing!(h);
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::FinWait1);
    recv!(
        h,
        TcpRepr {
            flags: flags(FIN, ACK),
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 1,
            ..RECV_TEMPL
        }
    );
}

#[test]
fn test_syn_sent_retransmits_and_gives_up() {
    let mut config = base_config();
    config.syn_retries = 2;
    let mut h = socket_syn_sent_with(config);
    let syn = TcpRepr {
        flags: SYN,
        seq_number: LOCAL_SEQ,
        options: mss_opt(1460),
        ..RECV_TEMPL
    };
    recv!(h, syn);
    recv_nothing!(h, time 999);
    recv!(h, time 1000, syn);
    recv_nothing!(h, time 2999);
    recv!(h, time 3000, syn);
    recv_nothing!(h, time 6999);
    h.at(7000);
    assert_eq!(h.state(), TcpState::Closed);
    assert_eq!(h.layer.take_error(h.handle), Some(TcpError::TimedOut));
    let ev = h.events();
    assert!(ev.contains(&TcpEvent::RtoFired {
        handle: h.handle,
        rto: Duration::from_secs(2),
        retries: 1
    }));
    assert!(ev.contains(&state_change(h.handle, TcpState::SynSent, TcpState::Closed)));
}

#[test]
fn test_syn_sent_icmp_port_unreachable_refuses() {
    let mut h = socket_syn_sent();
    let cx = h.cx();
    // RFC 5927: a quoted sequence number that is not ours is ignored.
    h.layer
        .handle_icmp_error(&cx, &icmp(IcmpErrorKind::PortUnreachable, LOCAL_SEQ + 7));
    assert_eq!(h.state(), TcpState::SynSent);
    h.layer
        .handle_icmp_error(&cx, &icmp(IcmpErrorKind::PortUnreachable, LOCAL_SEQ));
    assert_eq!(h.state(), TcpState::Closed);
    let mut buf = [0; 4];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Err(RecvError::Refused));
}

#[test]
fn test_syn_sent_icmp_host_unreachable_fails() {
    let mut h = socket_syn_sent();
    let cx = h.cx();
    h.layer
        .handle_icmp_error(&cx, &icmp(IcmpErrorKind::HostUnreachable, LOCAL_SEQ));
    assert_eq!(h.state(), TcpState::Closed);
    assert_eq!(
        h.layer.take_error(h.handle),
        Some(TcpError::HostUnreachable)
    );
}

#[test]
fn test_syn_sent_close_frees() {
    let mut h = socket_syn_sent();
    h.layer.close(h.handle, &h.cx()).unwrap();
    assert_eq!(h.layer.socket_count(), 0);
    assert_eq!(h.layer.state(h.handle), None);
    recv_nothing!(h);
}

#[test]
fn test_connect_picks_ephemeral_port() {
    let mut h = Harness::new(base_config());
    let cx = h.cx();
    h.layer
        .connect(h.handle, &cx, SocketAddr::V4(REMOTE))
        .unwrap();
    let local = h.layer.local_addr(h.handle).unwrap();
    assert_eq!(local.ip(), IpAddr::V4(LOCAL_IP));
    assert!((32768..=60999).contains(&local.port()));
    let second = h.layer.socket();
    h.layer
        .connect(second, &cx, SocketAddr::V4(REMOTE))
        .unwrap();
    assert_ne!(h.layer.local_addr(second).unwrap().port(), local.port());
    assert_eq!(
        h.layer.connect(second, &cx, SocketAddr::V4(REMOTE)),
        Err(ConnectError::InProgress)
    );
}

/// The RFC 6056 offset kept from the last destination gives the ports hashing it
/// afresh gives: the same sequence, to one server and alternating between two.
#[test]
fn test_connect_ephemeral_ports_with_and_without_the_kept_offset() {
    let (mut kept, mut fresh) = (Harness::new(base_config()), Harness::new(base_config()));
    let cx = kept.cx();
    let other = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 443));
    let dests = [SocketAddr::V4(REMOTE); 4].into_iter().chain([
        other,
        SocketAddr::V4(REMOTE),
        other,
        other,
    ]);
    for (i, to) in dests.enumerate() {
        fresh.layer.port_offset = None;
        let (a, b) = (kept.layer.socket(), fresh.layer.socket());
        kept.layer.connect(a, &cx, to).unwrap();
        fresh.layer.connect(b, &cx, to).unwrap();
        let port = kept.layer.local_addr(a).unwrap().port();
        assert_eq!(
            port,
            fresh.layer.local_addr(b).unwrap().port(),
            "connect {i}"
        );
    }
}

#[test]
fn test_bind_conflicts() {
    let mut h = Harness::new(base_config());
    h.layer.bind(h.handle, SocketAddr::V4(LOCAL)).unwrap();
    let other = h.layer.socket();
    assert_eq!(
        h.layer.bind(other, SocketAddr::V4(LOCAL)),
        Err(BindError::AddrInUse)
    );
    assert_eq!(
        h.layer.listen(other, SocketAddr::V4(LOCAL), 4),
        Err(ListenError::AddrInUse)
    );
    assert_eq!(
        h.layer.bind(h.handle, SocketAddr::V4(LOCAL)),
        Err(BindError::InvalidState)
    );
}
