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

/// A freed socket kept as a spare comes back from `socket()` as a new one would: renewed
/// in place, with nothing left of the connection it carried, and the old handle stale.
#[test]
fn test_closed_spare_socket_renews_as_new() {
    let cfg = TcpConfig::default();
    let mut t = TcpLayer::new(cfg.clone(), 7);
    let cx = TcpContext {
        now: Instant::from_millis(5),
        local: crate::socket::LocalAddrs::v4(Ipv4Addr::new(10, 0, 0, 1)),
        mtu: 1500,
        mtu6: 1500,
    };
    let old = t.socket();
    let peer = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80));
    t.connect(old, &cx, peer).unwrap();
    assert_eq!(t.send(old, b"queued"), Err(SendError::WouldBlock));
    // The SYN leaves: the transmit log holds it, timers run.
    let mut sent = 0;
    while t.dispatch(&cx, &mut |_, _| sent += 1) {}
    assert_eq!(sent, 1);
    t.abort(old).unwrap();
    assert_eq!(t.spare.len(), 1, "kept as a spare");
    let new = t.socket();
    assert!(t.spare.is_empty(), "renewed");
    let fresh = Socket::new(new, SocketOptions::from_config(&cfg), &cfg);
    assert_eq!(
        format!("{:?}", t.socket_ref(new).unwrap()),
        format!("{fresh:?}")
    );
    assert_eq!(t.state(old), None, "the old handle is stale");
    assert_eq!(t.state(new), Some(TcpState::Closed));
}
