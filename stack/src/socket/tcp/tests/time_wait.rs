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
    let fin = TcpRepr {
        flags: flags(FIN, ACK),
        options: ts_opt(501, 0),
        ..ack_seg(1)
    };
    fin_into_time_wait(&mut h, fin, ts_opt(0, 501));
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

// ---------------------------------------------------------------- compact TIME-WAIT

/// TIME-WAIT after the user closed: the socket is freed for a compact entry.
fn compact_time_wait() -> Harness {
    compact_time_wait_from(socket_time_wait())
}

fn compact_time_wait_from(mut h: Harness) -> Harness {
    assert_eq!(h.state(), TcpState::TimeWait);
    h.layer.close(h.handle, &h.cx()).unwrap();
    assert!(h.layer.socket_ref(h.handle).is_none(), "socket freed");
    assert_eq!(h.layer.counters().time_wait_compacted, 1);
    h.events();
    h
}

/// The state of the connection as listed (`sockets()`), compact entry or socket.
fn listed_state(h: &Harness) -> Option<TcpState> {
    h.layer
        .sockets()
        .find(|i| i.local == SocketAddr::V4(LOCAL) && i.remote == SocketAddr::V4(REMOTE))
        .map(|i| i.info.state)
}

#[test]
fn test_time_wait_closed_becomes_compact_and_stays_listed() {
    let h = compact_time_wait();
    assert_eq!(
        h.layer.socket_count(),
        2,
        "listener and the TIME-WAIT entry"
    );
    assert_eq!(listed_state(&h), Some(TcpState::TimeWait));
    let info = h
        .layer
        .sockets()
        .find(|i| i.handle == h.handle)
        .expect("listed under its old handle");
    assert!(
        h.layer.socket_info(h.handle).is_none(),
        "no socket behind it"
    );
    assert!(info.orphaned);
    assert_eq!(info.info.snd_nxt, LOCAL_SEQ + 2);
    assert_eq!(info.info.rcv_nxt, REMOTE_SEQ + 2);
    // The user's handle is gone, as for any closed socket.
    assert_eq!(h.layer.state(h.handle), None);
}

#[test]
fn test_time_wait_compact_expires_after_2msl() {
    let mut h = compact_time_wait();
    assert_eq!(h.layer.poll_at(), Some(Instant::from_millis(60_000)));
    h.at(59_999);
    assert_eq!(listed_state(&h), Some(TcpState::TimeWait));
    h.at(60_000);
    assert_eq!(listed_state(&h), None);
    assert_eq!(h.layer.socket_count(), 1);
    assert!(h.events().iter().any(|e| matches!(
        e,
        TcpEvent::StateChanged {
            from: TcpState::TimeWait,
            to: TcpState::Closed,
            ..
        }
    )));
    // The 4-tuple is free: a segment now meets the listener (an ACK gets a RST).
    let reply = h.send(&TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 2,
        ack_number: LOCAL_SEQ + 2,
        ..SEND_TEMPL
    });
    assert!(reply.is_some_and(|r| r.flags.rst()));
}

#[test]
fn test_time_wait_compact_retransmitted_fin_reacked_and_timer_restarted() {
    let mut h = compact_time_wait();
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
    assert_eq!(listed_state(&h), Some(TcpState::TimeWait));
    assert_eq!(h.layer.poll_at(), Some(Instant::from_millis(90_000)));
    h.at(90_000);
    assert_eq!(listed_state(&h), None);
}

#[test]
fn test_time_wait_compact_rst_at_rcv_nxt_closes() {
    let mut h = compact_time_wait();
    send!(
        h,
        TcpRepr {
            flags: TcpFlags::RST,
            seq_number: REMOTE_SEQ + 2,
            ..SEND_TEMPL
        }
    );
    assert_eq!(listed_state(&h), None);
    assert_eq!(h.layer.socket_count(), 1);
}

#[test]
fn test_time_wait_compact_rst_in_window_gets_challenge_ack() {
    let mut h = compact_time_wait();
    send!(h, TcpRepr {
        flags: TcpFlags::RST,
        seq_number: REMOTE_SEQ + 10,
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 2,
        ack_number: REMOTE_SEQ + 2,
        ..RECV_TEMPL
    }));
    assert_eq!(listed_state(&h), Some(TcpState::TimeWait));
}

#[test]
fn test_time_wait_compact_old_syn_gets_challenge_ack() {
    let mut h = compact_time_wait();
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
    assert_eq!(listed_state(&h), Some(TcpState::TimeWait));
    assert_eq!(h.layer.counters().time_wait_reused, 0);
}

#[test]
fn test_time_wait_compact_ack_beyond_snd_nxt_gets_challenge_ack() {
    let mut h = compact_time_wait();
    send!(h, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 2,
        ack_number: LOCAL_SEQ + 100,
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 2,
        ack_number: REMOTE_SEQ + 2,
        ..RECV_TEMPL
    }));
    // A plain duplicate ACK of our FIN needs no answer.
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 2,
            ack_number: LOCAL_SEQ + 2,
            ..SEND_TEMPL
        }
    );
}

#[test]
fn test_time_wait_compact_syn_with_newer_timestamp_reopens_and_paws() {
    let mut h = socket_established_with(ts_config(), ts_opt(500, 0));
    h.layer.shutdown(h.handle, Shutdown::Write).unwrap();
    h.recv().unwrap();
    let fin = TcpRepr {
        flags: flags(FIN, ACK),
        options: ts_opt(501, 0),
        ..ack_seg(1)
    };
    fin_into_time_wait(&mut h, fin, ts_opt(0, 501));
    let mut h = compact_time_wait_from(h);
    // RFC 7323 §5.3: an older timestamp fails PAWS and gets a duplicate ACK.
    send!(h, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 2,
        ack_number: LOCAL_SEQ + 2,
        options: ts_opt(400, 0),
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 2,
        ack_number: REMOTE_SEQ + 2,
        options: ts_opt(0, 501),
        ..RECV_TEMPL
    }));
    assert_eq!(h.layer.counters().paws_rejected, 1);
    let syn = |ts: u32| TcpRepr {
        flags: SYN,
        seq_number: REMOTE_SEQ - 5000,
        options: ts_opt(ts, 0),
        ..SEND_TEMPL
    };
    // Same timestamp: not newer, the entry stays.
    assert!(h.send(&syn(501)).is_some());
    assert_eq!(listed_state(&h), Some(TcpState::TimeWait));
    h.layer.set_fixed_isn(None);
    send!(h, syn(502));
    assert_eq!(h.layer.counters().time_wait_reused, 1);
    let child = h
        .layer
        .conn_handle(SocketAddr::V4(LOCAL), SocketAddr::V4(REMOTE))
        .expect("a new connection on the tuple");
    assert_eq!(h.layer.state(child), Some(TcpState::SynReceived));
    let synack = h.recv().expect("SYN,ACK");
    assert_eq!(synack.seq_number, LOCAL_SEQ + 2 + 65_537);
}

/// The compact entry answers as the full socket it replaced did: the same segments
/// sent to a TIME-WAIT socket the user still holds and to a compact entry get the
/// same replies.
#[test]
fn test_time_wait_compact_answers_as_full_socket() {
    let segs = [
        TcpRepr {
            flags: flags(FIN, ACK),
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 2,
            ..SEND_TEMPL
        },
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 2,
            ack_number: LOCAL_SEQ + 2,
            payload: b"late",
            ..SEND_TEMPL
        },
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 5000,
            ack_number: LOCAL_SEQ + 2,
            ..SEND_TEMPL
        },
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ - 5000,
            ack_number: LOCAL_SEQ + 2,
            payload: b"old",
            ..SEND_TEMPL
        },
        TcpRepr {
            flags: TcpFlags::RST,
            seq_number: REMOTE_SEQ + 3,
            ..SEND_TEMPL
        },
        TcpRepr {
            flags: SYN,
            seq_number: REMOTE_SEQ + 1,
            ..SEND_TEMPL
        },
        TcpRepr {
            flags: flags(FIN, ACK),
            seq_number: REMOTE_SEQ + 2,
            ack_number: LOCAL_SEQ + 2,
            ..SEND_TEMPL
        },
    ];
    for (i, seg) in segs.iter().enumerate() {
        let mut full = socket_time_wait();
        let mut compact = compact_time_wait();
        for t in [1_000, 1_001, 3_000] {
            full.at(t);
            compact.at(t);
            let a = full.send(seg);
            let b = compact.send(seg);
            assert_eq!(a, b, "segment {i} at {t} ms");
            assert_eq!(full.recv(), None);
            assert_eq!(
                full.layer.poll_at(),
                compact.layer.poll_at(),
                "segment {i} at {t} ms"
            );
        }
    }
}

/// A batch with the FIN that ends one connection and the SYN that opens the next (a
/// serial client's close and connect): the SYN,ACK, which the peer's `connect` waits
/// for, leaves before the ACK of the FIN, which only the peer's LAST-ACK timer does.
#[test]
fn test_time_wait_ack_of_the_fin_leaves_after_the_batch_syn_ack() {
    let mut h = socket_fin_wait_2();
    h.layer.close(h.handle, &h.cx()).unwrap();
    send!(h, PEER_FIN);
    assert_eq!(h.layer.counters().time_wait_compacted, 1);
    let next = REMOTE_PORT + 1;
    send!(
        h,
        TcpRepr {
            src_port: next,
            flags: SYN,
            seq_number: REMOTE_SEQ + 100_000,
            ..SEND_TEMPL
        }
    );
    let out = h.layer.counters().segments_out;
    let first = h.recv().expect("the SYN,ACK");
    assert_eq!((first.flags, first.dst_port), (flags(SYN, ACK), next));
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 2,
            ack_number: REMOTE_SEQ + 2,
            ..RECV_TEMPL
        }
    );
    recv_nothing!(h);
    // The deferred ACK is counted once, when it is sent.
    assert_eq!(h.layer.counters().segments_out, out + 2);
}

/// The FIN and a SYN reopening the same 4-tuple in one batch (RFC 6191 reuse): the
/// deferred ACK of the FIN is dropped, so no segment of the old connection follows the
/// new connection's SYN,ACK; with the user's socket (full TIME-WAIT) and without it
/// (compact entry).
#[test]
fn test_time_wait_reuse_in_the_same_batch_drops_the_deferred_ack() {
    for closed_first in [true, false] {
        let mut h = socket_fin_wait_2();
        if closed_first {
            h.layer.close(h.handle, &h.cx()).unwrap();
        }
        h.layer.set_fixed_isn(None);
        send!(h, PEER_FIN);
        assert_eq!(
            h.layer.counters().time_wait_compacted,
            u64::from(closed_first)
        );
        send!(
            h,
            TcpRepr {
                flags: SYN,
                seq_number: REMOTE_SEQ + 1000,
                ..SEND_TEMPL
            }
        );
        assert_eq!(h.layer.counters().time_wait_reused, 1, "{closed_first}");
        let syn_ack = h.recv().expect("the SYN,ACK");
        assert_eq!(syn_ack.flags, flags(SYN, ACK), "{closed_first}");
        assert_eq!(syn_ack.ack_number, REMOTE_SEQ + 1001, "{closed_first}");
        recv_nothing!(h);
    }
}
