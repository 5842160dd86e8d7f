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
    let child = h
        .layer
        .conn_handle(SocketAddr::V4(LOCAL), SocketAddr::V4(REMOTE))
        .unwrap();
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
    let mut h = Harness::new(TcpConfig {
        syncookies: false,
        ..base_config()
    });
    h.layer.listen(h.handle, SocketAddr::V4(LOCAL), 1).unwrap();
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
    assert_eq!(peer, SocketAddr::V4(REMOTE));
    assert_eq!(h.layer.state(c), Some(TcpState::Established));
    assert_eq!(h.layer.accept(h.handle), Err(AcceptError::WouldBlock));
}

#[test]
fn test_listen_accept_queue_full_drops_final_ack() {
    let mut h = Harness::new(base_config());
    h.layer.listen(h.handle, SocketAddr::V4(LOCAL), 1).unwrap();
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

/// A listener with backlog 1 whose SYN queue holds one half-open connection from
/// `REMOTE_PORT + 100`; its SYN,ACK has been pulled.
fn listen_queue_full(config: TcpConfig) -> Harness {
    let mut h = Harness::new(config);
    h.layer.listen(h.handle, SocketAddr::V4(LOCAL), 1).unwrap();
    h.listener = Some(h.handle);
    send!(
        h,
        TcpRepr {
            flags: SYN,
            src_port: REMOTE_PORT + 100,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    h.recv().expect("SYN,ACK of the queued connection");
    h.events();
    h
}

/// Sends a SYN from REMOTE and returns the cookie SYN,ACK answering it.
fn cookie_synack(h: &mut Harness, options: TcpOptions) -> TcpRepr<'static> {
    let count = h.layer.socket_count();
    let r = h
        .send(&TcpRepr {
            flags: SYN,
            seq_number: REMOTE_SEQ,
            options,
            ..SEND_TEMPL
        })
        .expect("a cookie SYN,ACK, sent at once");
    assert_eq!(r.flags, flags(SYN, ACK));
    assert_eq!(r.ack_number, REMOTE_SEQ + 1);
    assert_ne!(r.seq_number, LOCAL_SEQ, "a cookie, not the stateful ISN");
    assert_eq!(h.layer.socket_count(), count, "no state kept");
    assert_eq!(h.layer.counters().syncookies_sent, 1);
    assert!(h
        .layer
        .conn_handle(SocketAddr::V4(LOCAL), SocketAddr::V4(REMOTE))
        .is_none());
    r
}

#[test]
fn test_listen_full_syn_queue_answers_with_cookie() {
    let mut h = listen_queue_full(base_config());
    let r = cookie_synack(&mut h, mss_opt(1400));
    assert_eq!(r.options.mss, Some(1460));
    assert_eq!(r.window_len, 64);
    assert_eq!(h.layer.counters().listen_overflows, 0);
    recv_nothing!(h);
}

#[test]
fn test_listen_cookie_synack_carries_the_listener_ttl_and_tos() {
    // A SYN,ACK from the SYN queue carries the listener's IP_TTL and IP_TOS (the
    // accepted connection inherits them); a cookie SYN,ACK must too, though it keeps
    // no state.
    let mut h = Harness::new(base_config());
    h.layer.set_hop_limit(h.handle, Some(9)).unwrap();
    h.layer.set_tclass(h.handle, 0x48).unwrap();
    h.layer.listen(h.handle, SocketAddr::V4(LOCAL), 1).unwrap();
    h.listener = Some(h.handle);
    let cx = h.cx();
    let addrs = SegmentAddrs::new(IpAddr::V4(REMOTE_IP), IpAddr::V4(LOCAL_IP));
    let syn = |port| TcpRepr {
        flags: SYN,
        src_port: port,
        seq_number: REMOTE_SEQ,
        ..SEND_TEMPL
    };
    // The first SYN fills the queue (its SYN,ACK leaves at the next dispatch); the
    // second is answered at once with a cookie.
    assert_eq!(h.layer.process(&cx, addrs, &syn(REMOTE_PORT + 100)), None);
    let (raddrs, r) = h
        .layer
        .process(&cx, addrs, &syn(REMOTE_PORT))
        .expect("a cookie SYN,ACK");
    assert_eq!(r.flags, flags(SYN, ACK));
    assert_eq!(h.layer.counters().syncookies_sent, 1);
    assert_eq!((raddrs.hop_limit, raddrs.tclass), (Some(9), 0x48));
}

#[test]
fn test_listen_cookie_ack_establishes_and_accepts() {
    let mut h = listen_queue_full(base_config());
    let r = cookie_synack(&mut h, mss_opt(1400));
    // The ACK carries data: it is delivered on the new connection.
    send!(
        h,
        TcpRepr {
            flags: flags(ACK, PSH),
            seq_number: REMOTE_SEQ + 1,
            ack_number: r.seq_number + 1,
            payload: b"hello",
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.layer.counters().syncookies_valid, 1);
    let (c, peer) = h.layer.accept(h.handle).unwrap();
    assert_eq!(peer, SocketAddr::V4(REMOTE));
    assert_eq!(h.layer.state(c), Some(TcpState::Established));
    let mut buf = [0u8; 16];
    assert_eq!(h.layer.recv(c, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    let info = h.layer.info(c).unwrap();
    // MSS table entry 1300 (the largest not above 1400); no timestamps, no options.
    assert_eq!(info.snd_mss, 1300);
    assert!(!info.timestamps && !info.sack && !info.window_scaling);
    assert_eq!(info.snd_wnd, 256);
    // The data is acknowledged from the cookie's ISN + 1.
    h.handle = c;
    let ack = h.recv().expect("ACK of the data");
    assert_eq!(ack.seq_number, r.seq_number + 1);
    assert_eq!(ack.ack_number, REMOTE_SEQ + 6);
    // Sending works in the other direction too.
    assert_eq!(h.layer.send(c, b"back"), Ok(4));
    let seg = h.recv().expect("data");
    assert_eq!(seg.payload, b"back");
    assert_eq!(seg.seq_number, r.seq_number + 1);
}

#[test]
fn test_listen_forged_cookie_ack_gets_rst_and_is_counted() {
    let mut h = listen_queue_full(base_config());
    let r = cookie_synack(&mut h, NO_OPTIONS);
    let forged = TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1,
        ack_number: r.seq_number + 1000,
        ..SEND_TEMPL
    };
    send!(h, forged => Some(TcpRepr {
        flags: RST,
        seq_number: r.seq_number + 1000,
        window_len: 0,
        ..RECV_TEMPL
    }));
    // A valid ISN but for another SYN sequence number fails too.
    let wrong_seq = TcpRepr {
        seq_number: REMOTE_SEQ + 1000,
        ack_number: r.seq_number + 1,
        ..forged
    };
    assert!(h.send(&wrong_seq).is_some_and(|r| r.flags == RST));
    assert_eq!(h.layer.counters().syncookies_invalid, 2);
    assert_eq!(h.layer.counters().syncookies_valid, 0);
    assert_eq!(h.layer.accept(h.handle), Err(AcceptError::WouldBlock));
    assert!(h
        .layer
        .conn_handle(SocketAddr::V4(LOCAL), SocketAddr::V4(REMOTE))
        .is_none());
}

#[test]
fn test_listen_cookie_expires_after_two_periods() {
    let mut h = listen_queue_full(base_config());
    let r = cookie_synack(&mut h, NO_OPTIONS);
    h.at(2 * 64_000 + 1);
    let ack = TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1,
        ack_number: r.seq_number + 1,
        ..SEND_TEMPL
    };
    assert!(h.send(&ack).is_some_and(|r| r.flags == RST));
    assert!(h
        .layer
        .conn_handle(SocketAddr::V4(LOCAL), SocketAddr::V4(REMOTE))
        .is_none());
}

#[test]
fn test_listen_cookie_carries_options_in_timestamp() {
    let config = TcpConfig {
        rx_buffer_len: 1 << 20,
        window_scaling: true,
        timestamps: true,
        sack: true,
        ..base_config()
    };
    let mut h = listen_queue_full(config);
    let syn_opts = TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamp: Some((5555, 0)),
        ..NO_OPTIONS
    };
    let r = cookie_synack(&mut h, syn_opts);
    let (tsval, tsecr) = r.options.timestamp.expect("timestamps");
    assert_eq!(tsecr, 5555);
    assert_eq!(
        r.options.window_scale,
        Some(5),
        "our shift for a 1 MiB buffer"
    );
    assert!(r.options.sack_permitted);
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: r.seq_number + 1,
            window_len: 1000,
            options: TcpOptions {
                timestamp: Some((5556, tsval)),
                ..NO_OPTIONS
            },
            ..SEND_TEMPL
        }
    );
    let (c, _) = h.layer.accept(h.handle).unwrap();
    let info = h.layer.info(c).unwrap();
    assert!(info.timestamps && info.sack && info.window_scaling);
    assert_eq!(info.snd_wscale, 7);
    assert_eq!(info.rcv_wscale, 5);
    assert_eq!(info.snd_wnd, 1000 << 7);
    assert_eq!(info.snd_mss, 1460 - 12);
}

#[test]
fn test_listen_full_queue_evicts_oldest_after_retry_under_pressure() {
    let mut h = listen_queue_full(base_config());
    let old = SocketAddrV4::new(REMOTE_IP, REMOTE_PORT + 100);
    assert!(h
        .layer
        .conn_handle(SocketAddr::V4(LOCAL), SocketAddr::V4(old))
        .is_some());
    // The first SYN,ACK retransmission (initial RTO 1 s).
    h.at(1000);
    h.recv().expect("SYN,ACK retransmitted");
    send!(
        h,
        TcpRepr {
            flags: SYN,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.layer.counters().syn_recv_evicted, 1);
    assert_eq!(h.layer.counters().syncookies_sent, 0);
    assert!(
        h.layer
            .conn_handle(SocketAddr::V4(LOCAL), SocketAddr::V4(old))
            .is_none(),
        "the oldest went"
    );
    assert!(
        h.layer
            .conn_handle(SocketAddr::V4(LOCAL), SocketAddr::V4(REMOTE))
            .is_some(),
        "the new one is queued"
    );
    // Evicted silently: only the new SYN,ACK goes out.
    let r = h.recv().expect("SYN,ACK of the new one");
    assert_eq!((r.flags, r.dst_port), (flags(SYN, ACK), REMOTE_PORT));
    recv_nothing!(h);
}

#[test]
fn test_listen_full_queue_without_cookies_drops_and_counts() {
    let mut h = listen_queue_full(TcpConfig {
        syncookies: false,
        ..base_config()
    });
    send!(
        h,
        TcpRepr {
            flags: SYN,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.layer.counters().listen_overflows, 1);
    assert_eq!(h.layer.counters().syncookies_sent, 0);
    // A bare ACK is answered as RFC 9293 says, not checked as a cookie.
    assert!(h
        .send(&TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: SeqNumber(1),
            ..SEND_TEMPL
        })
        .is_some_and(|r| r.flags == RST));
    assert_eq!(h.layer.counters().syncookies_invalid, 0);
}
