//! ESTABLISHED: data, ACKs, RFC 5961 checks, SACK blocks, Nagle, delayed ACKs, windows,
//! timestamps, keepalive, close and abort.

use super::*;

#[test]
fn test_established_recv_data() {
    let mut h = socket_established();
    send!(
        h,
        TcpRepr {
            flags: flags(ACK, PSH),
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            payload: b"abcdef",
            ..SEND_TEMPL
        }
    );
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 7,
            window_len: 58,
            ..RECV_TEMPL
        }
    );
    let mut buf = [0u8; 4];
    assert_eq!(h.layer.peek(h.handle, &mut buf), Ok(4));
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(4));
    assert_eq!(&buf, b"abcd");
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(2));
    assert_eq!(h.layer.recv(h.handle, &mut buf), Err(RecvError::WouldBlock));
}

#[test]
fn test_established_recv_with_reads_in_place() {
    let mut h = socket_established();
    send!(
        h,
        TcpRepr {
            flags: flags(ACK, PSH),
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            payload: b"abcdef",
            ..SEND_TEMPL
        }
    );
    let mut seen = Vec::new();
    // Consumes only part of what it is shown; the rest stays readable.
    let n = h.layer.recv_with(h.handle, |d| {
        seen.extend_from_slice(d);
        4
    });
    assert_eq!(n, Ok(4));
    assert_eq!(seen, b"abcdef");
    // Claiming more than it was shown consumes only what is there.
    assert_eq!(h.layer.recv_with(h.handle, |d| d.len() + 10), Ok(2));
    assert_eq!(
        h.layer
            .recv_with(h.handle, |_| unreachable!("nothing to read")),
        Err(RecvError::WouldBlock)
    );
}

#[test]
fn test_established_send_data() {
    let mut h = socket_established();
    assert_eq!(h.layer.send(h.handle, b"hello"), Ok(5));
    recv!(
        h,
        TcpRepr {
            flags: flags(ACK, PSH),
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 1,
            payload: b"hello",
            ..RECV_TEMPL
        }
    );
    recv_nothing!(h);
    send!(h, time 50, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1,
        ack_number: LOCAL_SEQ + 6,
        ..SEND_TEMPL
    });
    let info = h.info();
    assert_eq!(info.bytes_acked, 5);
    assert_eq!(info.unacked, 0);
    // The handshake measured 0 ms: SRTT = 7/8 * 0 + 1/8 * 50 ms.
    assert_eq!(info.srtt, Some(Duration::from_micros(6250)));
}

#[test]
fn test_established_send_buffer_is_bounded() {
    let mut h = socket_established();
    assert_eq!(h.layer.send(h.handle, &[7; 100]), Ok(64));
    assert_eq!(h.layer.send(h.handle, b"x"), Err(SendError::WouldBlock));
    assert!(!h.layer.can_send(h.handle));
}

#[test]
fn test_established_fin_goes_to_close_wait() {
    let mut h = socket_established();
    send!(
        h,
        TcpRepr {
            flags: flags(FIN, ACK),
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::CloseWait);
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 2,
            ..RECV_TEMPL
        }
    );
    let mut buf = [0u8; 4];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(0));
    assert!(h.layer.is_readable_eof(h.handle));
    // Half-close: we may still send.
    assert_eq!(h.layer.send(h.handle, b"ok"), Ok(2));
}

#[test]
fn test_established_rst_exact_resets() {
    let mut h = socket_established();
    send!(
        h,
        TcpRepr {
            flags: RST,
            seq_number: REMOTE_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::Closed);
    let mut buf = [0u8; 4];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Err(RecvError::Reset));
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(0));
    assert_eq!(h.layer.send(h.handle, b"x"), Err(SendError::Closed));
    assert!(h
        .layer
        .conn_handle(SocketAddr::V4(LOCAL), SocketAddr::V4(REMOTE))
        .is_none());
}

#[test]
fn test_established_rst_in_window_gets_challenge_ack() {
    let mut h = socket_established();
    // Per RFC 5961 §3.2.
    send!(h, TcpRepr {
        flags: RST,
        seq_number: REMOTE_SEQ + 10,
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    }));
    assert_eq!(h.state(), TcpState::Established);
    assert_eq!(h.layer.counters().challenge_acks, 1);
}

#[test]
fn test_established_rst_out_of_window_ignored() {
    let mut h = socket_established();
    send!(
        h,
        TcpRepr {
            flags: RST,
            seq_number: REMOTE_SEQ + 1000,
            ..SEND_TEMPL
        }
    );
    send!(
        h,
        TcpRepr {
            flags: RST,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::Established);
}

#[test]
fn test_established_syn_gets_challenge_ack() {
    let mut h = socket_established();
    // Per RFC 5961 §4.2, whatever the sequence number.
    for seq in [REMOTE_SEQ + 1, REMOTE_SEQ + 30] {
        send!(h, TcpRepr {
            flags: SYN,
            seq_number: seq,
            ..SEND_TEMPL
        } => Some(TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 1,
            ..RECV_TEMPL
        }));
    }
    // An old SYN is not acceptable: plain ACK.
    send!(h, TcpRepr {
        flags: SYN,
        seq_number: REMOTE_SEQ,
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    }));
    assert_eq!(h.state(), TcpState::Established);
}

#[test]
fn test_established_ack_of_unsent_data_gets_ack() {
    let mut h = socket_established();
    // Per RFC 5961 §5.2 / RFC 9293: SEG.ACK > SND.NXT is answered and dropped, data too.
    send!(h, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1,
        ack_number: LOCAL_SEQ + 100,
        payload: b"zz",
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    }));
    assert_eq!(h.info().recv_queue, 0);
}

#[test]
fn test_established_too_old_ack_dropped_with_ack() {
    let mut h = socket_established();
    // MAX.SND.WND is 256: an ACK more than that below SND.UNA is unacceptable.
    send!(h, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1,
        ack_number: LOCAL_SEQ - 300,
        payload: b"zz",
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    }));
    // Within MAX.SND.WND an old ACK is fine and the data is taken.
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ - 100,
            payload: b"zz",
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.info().recv_queue, 2);
}

#[test]
fn test_established_challenge_acks_rate_limited() {
    let mut config = base_config();
    config.challenge_ack_limit = 2;
    let mut h = socket_established_with(config, NO_OPTIONS);
    let rst = TcpRepr {
        flags: RST,
        seq_number: REMOTE_SEQ + 10,
        ..SEND_TEMPL
    };
    assert!(h.send(&rst).is_some());
    assert!(h.send(&rst).is_some());
    assert!(h.send(&rst).is_none());
    assert_eq!(h.layer.counters().challenge_acks_limited, 1);
    h.at(1000);
    assert!(h.send(&rst).is_some());
}

#[test]
fn test_established_unacceptable_data_gets_ack() {
    let mut h = socket_established();
    // Entirely beyond the window.
    send!(h, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1 + 64,
        ack_number: LOCAL_SEQ + 1,
        payload: b"late",
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    }));
    // Entirely old: a retransmission.
    send!(h, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ - 3,
        ack_number: LOCAL_SEQ + 1,
        payload: b"old",
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    }));
}

#[test]
fn test_established_bare_out_of_window_acks_rate_limited() {
    let mut h = socket_established();
    let oow = TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1000,
        ack_number: LOCAL_SEQ + 1,
        ..SEND_TEMPL
    };
    let dupack = TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    };
    send!(h, time 10, oow => Some(dupack));
    // Linux tcp_invalid_ratelimit: one answer per 500 ms, so no ACK loop can form.
    send!(h, time 20, oow);
    send!(h, time 510, oow => Some(dupack));
}

#[test]
fn test_established_overlapping_data_is_trimmed() {
    let mut h = socket_established();
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            payload: b"abc",
            ..SEND_TEMPL
        }
    );
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 2,
            ack_number: LOCAL_SEQ + 1,
            payload: b"bcdef",
            ..SEND_TEMPL
        }
    );
    let mut buf = [0u8; 16];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(6));
    assert_eq!(&buf[..6], b"abcdef");
}

#[test]
fn test_established_out_of_order_generates_sack() {
    let mut h = socket_established_with(sack_config(), sack_syn());
    let block = |l: usize, r: usize| Some((REMOTE_SEQ + 1 + l, REMOTE_SEQ + 1 + r));
    send!(h,
    TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1 + 10,
        ack_number: LOCAL_SEQ + 1,
        payload: b"klm",
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        options: TcpOptions {
            sack_ranges: [block(10, 13), None, None, None],
            ..NO_OPTIONS
        },
        ..RECV_TEMPL
    }));
    send!(h,
    TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1 + 20,
        ack_number: LOCAL_SEQ + 1,
        payload: b"uv",
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        options: TcpOptions {
            sack_ranges: [block(20, 22), block(10, 13), None, None],
            ..NO_OPTIONS
        },
        ..RECV_TEMPL
    }));
    // Filling the first hole acknowledges through the first block at once.
    send!(h,
    TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1,
        ack_number: LOCAL_SEQ + 1,
        payload: b"abcdefghij",
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 14,
        window_len: 64 - 13,
        options: TcpOptions {
            sack_ranges: [block(20, 22), None, None, None],
            ..NO_OPTIONS
        },
        ..RECV_TEMPL
    }));
    let mut buf = [0u8; 32];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(13));
    assert_eq!(&buf[..13], b"abcdefghijklm");
}

#[test]
fn test_established_sack_with_timestamps_sends_at_most_3_blocks() {
    let mut config = sack_config();
    config.timestamps = true;
    config.rx_buffer_len = 1024;
    let mut h = socket_established_with(
        config,
        TcpOptions {
            sack_permitted: true,
            timestamp: Some((1, 0)),
            ..NO_OPTIONS
        },
    );
    for i in 1..=4 {
        let reply = h.send(&TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1 + 10 * i,
            ack_number: LOCAL_SEQ + 1,
            options: ts_opt(2, 0),
            payload: b"xx",
            ..SEND_TEMPL
        });
        // Out of order: the duplicate ACK is the segment's immediate reply.
        assert!(reply.is_some_and(|r| r.ack_number == REMOTE_SEQ + 1));
        assert_eq!(h.recv(), None);
    }
    let block = |i: usize| Some((REMOTE_SEQ + 1 + 10 * i, REMOTE_SEQ + 3 + 10 * i));
    let got = h.recv();
    assert_eq!(got, None);
    send!(h,
    TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1 + 50,
        ack_number: LOCAL_SEQ + 1,
        options: ts_opt(3, 0),
        payload: b"yy",
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        window_len: 1024,
        options: TcpOptions {
            timestamp: Some((0, 1)),
            sack_ranges: [block(5), block(4), block(3), None],
            ..NO_OPTIONS
        },
        ..RECV_TEMPL
    }));
}

#[test]
fn test_established_nagle_holds_small_segments() {
    let mut h = socket_established();
    h.layer.send(h.handle, b"abc").unwrap();
    recv!(
        h,
        TcpRepr {
            flags: flags(ACK, PSH),
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 1,
            payload: b"abc",
            ..RECV_TEMPL
        }
    );
    h.layer.send(h.handle, b"def").unwrap();
    h.layer.send(h.handle, b"ghi").unwrap();
    recv_nothing!(h);
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 4,
            ..SEND_TEMPL
        }
    );
    recv!(
        h,
        TcpRepr {
            flags: flags(ACK, PSH),
            seq_number: LOCAL_SEQ + 4,
            ack_number: REMOTE_SEQ + 1,
            payload: b"defghi",
            ..RECV_TEMPL
        }
    );
}

/// Nagle is Minshall's variant, as Linux's: a small tail after full-size segments goes
/// at once (no small segment is outstanding); a further small write waits until the
/// small one is acknowledged, however much else is.
#[test]
fn test_established_nagle_lets_a_small_tail_follow_full_segments() {
    let mut config = base_config();
    config.tx_buffer_len = 4096;
    let mut h = socket_established_with(config, mss_opt(64));
    // A window of several segments.
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            window_len: 8192,
            ..SEND_TEMPL
        }
    );
    let mss = h.layer.info(h.handle).unwrap().snd_mss;
    assert_eq!(mss, 64);
    let data = vec![7u8; 3 * mss + 10];
    assert_eq!(h.layer.send(h.handle, &data).unwrap(), data.len());
    for _ in 0..2 {
        assert_eq!(h.recv().expect("a full segment").payload.len(), mss);
    }
    let full = h.recv().expect("a full segment");
    assert_eq!(full.payload.len(), mss);
    let tail = h.recv().expect("the small tail at once");
    assert_eq!(tail.payload.len(), 10);
    h.layer.send(h.handle, b"xyz").unwrap();
    recv_nothing!(h);
    // The full segment's ACK does not release it: the small one is still out.
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1 + 3 * mss,
            window_len: 8192,
            ..SEND_TEMPL
        }
    );
    recv_nothing!(h);
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1 + 3 * mss + 10,
            window_len: 8192,
            ..SEND_TEMPL
        }
    );
    let next = h
        .recv()
        .expect("the held write after the small segment's ACK");
    assert_eq!(next.payload, b"xyz");
}

#[test]
fn test_established_nodelay_sends_at_once() {
    let mut h = socket_established();
    h.layer.set_nodelay(h.handle, true).unwrap();
    h.layer.send(h.handle, b"abc").unwrap();
    recv!(
        h,
        TcpRepr {
            flags: flags(ACK, PSH),
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 1,
            payload: b"abc",
            ..RECV_TEMPL
        }
    );
    h.layer.send(h.handle, b"def").unwrap();
    recv!(
        h,
        TcpRepr {
            flags: flags(ACK, PSH),
            seq_number: LOCAL_SEQ + 4,
            ack_number: REMOTE_SEQ + 1,
            payload: b"def",
            ..RECV_TEMPL
        }
    );
}

#[test]
fn test_established_delayed_ack_timer() {
    let mut config = base_config();
    config.delayed_ack = Duration::from_millis(40);
    let mut h = socket_established_with(config, NO_OPTIONS);
    // The first data of a connection is acknowledged at once: quick-ACK mode, two
    // segments for a window this small (Linux tcp_incr_quickack).
    for i in 0..2 {
        send!(h, time 100, TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1 + i,
            ack_number: LOCAL_SEQ + 1,
            payload: b"a",
            ..SEND_TEMPL
        });
        recv!(h, time 100, TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 2 + i,
            window_len: 63 - i as u16,
            ..RECV_TEMPL
        });
    }
    send!(h, time 100, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 3,
        ack_number: LOCAL_SEQ + 1,
        payload: b"abc",
        ..SEND_TEMPL
    });
    recv_nothing!(h);
    recv_nothing!(h, time 139);
    recv!(h, time 140, TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 6,
        window_len: 59,
        ..RECV_TEMPL
    });
}

#[test]
fn test_established_delayed_ack_every_second_full_segment() {
    let mut config = base_config();
    config.delayed_ack = Duration::from_millis(40);
    config.rx_buffer_len = 4096;
    let mut h = socket_established_with(config, mss_opt(100));
    let seg = |off: usize| TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1 + off,
        ack_number: LOCAL_SEQ + 1,
        payload: &[0x55; 100],
        ..SEND_TEMPL
    };
    let ack = |n: usize| TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1 + n,
        window_len: (4096 - n) as u16,
        ..RECV_TEMPL
    };
    // Quick-ACK mode at the start: min(16, window / (2 * rcv_mss)) = 16 segments of
    // 100 bytes are acknowledged one by one (Linux tcp_incr_quickack).
    for i in 0..16 {
        send!(h, seg(100 * i));
        recv!(h, ack(100 * (i + 1)));
    }
    send!(h, seg(1600));
    recv_nothing!(h);
    send!(h, seg(1700));
    recv!(h, ack(1800));
    send!(h, seg(1800));
    recv_nothing!(h);
}

#[test]
fn test_established_out_of_order_acked_immediately_despite_delay() {
    let mut config = base_config();
    config.delayed_ack = Duration::from_millis(40);
    let mut h = socket_established_with(config, NO_OPTIONS);
    send!(h,
    TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 5,
        ack_number: LOCAL_SEQ + 1,
        payload: b"x",
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    }));
}

#[test]
fn test_established_zero_window_probe() {
    let mut h = socket_established();
    send!(
        h,
        TcpRepr {
            window_len: 0,
            ..ack_seg(0)
        }
    );
    h.events();
    h.layer.send(h.handle, b"abc").unwrap();
    recv_nothing!(h);
    recv_nothing!(h, time 199);
    let probe = TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    };
    recv!(h, time 200, probe);
    assert_eq!(
        h.events(),
        vec![TcpEvent::ZeroWindowProbe {
            handle: h.handle,
            seq: LOCAL_SEQ
        }]
    );
    // Still zero: the next probe comes after a doubled interval.
    send!(
        h,
        TcpRepr {
            window_len: 0,
            ..ack_seg(0)
        }
    );
    recv_nothing!(h);
    recv_nothing!(h, time 599);
    recv!(h, time 600, probe);
    // The window opens: data flows.
    send!(h, ack_seg(0));
    recv!(
        h,
        TcpRepr {
            flags: flags(ACK, PSH),
            ..data_seg(0, b"abc")
        }
    );
    assert!(h.events().contains(&TcpEvent::WindowUpdate {
        handle: h.handle,
        window: 256
    }));
}

#[test]
fn test_established_window_shrinks_to_zero_under_flight() {
    let mut config = base_config();
    config.max_retries = 2;
    let mut h = socket_established_with(config, NO_OPTIONS);
    h.layer.send(h.handle, b"abcd").unwrap();
    h.recv().unwrap();
    // The peer takes 2 bytes and closes its window.
    send!(
        h,
        TcpRepr {
            window_len: 0,
            ..ack_seg(2)
        }
    );
    let probe = TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 2,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    };
    // Retransmissions turn into probes; an answering peer never times out.
    let mut t = 0;
    for i in 0..5 {
        t += 200 << (i + 1).min(5);
        recv!(h, time t, probe);
        send!(
            h,
            TcpRepr {
                window_len: 0,
                ..ack_seg(2)
            }
        );
    }
    assert_eq!(h.state(), TcpState::Established);
    assert!(
        !h.info().in_recovery,
        "zero-window ACKs are not duplicate ACKs"
    );
    // The window re-opens: what was beyond it is resent at once.
    send!(h, ack_seg(2));
    recv!(
        h,
        TcpRepr {
            flags: flags(ACK, PSH),
            ..data_seg(2, b"cd")
        }
    );
    assert_eq!(h.info().total_retrans, 1);
}

#[test]
fn test_established_window_update_after_read() {
    let mut h = socket_established();
    send!(
        h,
        TcpRepr {
            payload: &[1; 64],
            ..TcpRepr {
                flags: ACK,
                seq_number: REMOTE_SEQ + 1,
                ack_number: LOCAL_SEQ + 1,
                ..SEND_TEMPL
            }
        }
    );
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 65,
            window_len: 0,
            ..RECV_TEMPL
        }
    );
    // A zero-window probe is acceptable and answered.
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 65,
            ack_number: LOCAL_SEQ + 1,
            payload: b"z",
            ..SEND_TEMPL
        }
    );
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 65,
            window_len: 0,
            ..RECV_TEMPL
        }
    );
    let mut buf = [0u8; 10];
    h.layer.recv(h.handle, &mut buf).unwrap();
    // 10 bytes free is below min(RCV.BUFF/2, MSS) = 32: no update yet (SWS avoidance).
    recv_nothing!(h);
    let mut buf = [0u8; 30];
    h.layer.recv(h.handle, &mut buf).unwrap();
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 65,
            window_len: 40,
            ..RECV_TEMPL
        }
    );
    assert!(h.events().contains(&TcpEvent::WindowUpdateSent {
        handle: h.handle,
        window: 40
    }));
}

#[test]
fn test_established_paws_rejects_old_timestamp() {
    let mut h = socket_established_with(ts_config(), ts_opt(1000, 0));
    send!(h, time 5, TcpRepr {
        options: ts_opt(1010, 0),
        payload: b"new",
        ..TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    });
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 4,
            window_len: 61,
            options: ts_opt(5, 1010),
            ..RECV_TEMPL
        }
    );
    // An older TSval: dropped by PAWS (RFC 7323 §5.3) and acknowledged.
    send!(h, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 4,
        ack_number: LOCAL_SEQ + 1,
        options: ts_opt(1005, 0),
        payload: b"old",
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 4,
        window_len: 61,
        options: ts_opt(5, 1010),
        ..RECV_TEMPL
    }));
    assert_eq!(h.info().recv_queue, 3);
    assert_eq!(h.layer.counters().paws_rejected, 1);
}

#[test]
fn test_established_timestamp_rtt_measurement() {
    let mut h = socket_established_with(ts_config(), ts_opt(1000, 0));
    h.layer.send(h.handle, b"x").unwrap();
    recv!(h, time 100, TcpRepr {
        flags: flags(ACK, PSH),
        options: ts_opt(100, 1000),
        ..data_seg(0, b"x")
    });
    send!(h, time 130, TcpRepr {
        options: ts_opt(1001, 100),
        ..ack_seg(1)
    });
    // The handshake measured 0 ms: SRTT = 1/8 * 30 ms.
    assert_eq!(h.info().srtt, Some(Duration::from_micros(3750)));
}

/// Regression (seed 172 of the 1 MB sweep stalled with RTO stuck at its 120 s cap): an
/// ACK lost, the RTO resends, the peer answers the duplicate echoing TS.Recent from
/// the original transmission. That echo predates the timeout, so it is no RTT sample
/// (Karn); taking it made every spurious timeout raise the next RTO by the last one.
#[test]
fn test_established_timestamp_echo_from_before_rto_is_not_sampled() {
    let mut h = socket_established_with(ts_config(), ts_opt(1000, 0));
    h.layer.send(h.handle, b"x").unwrap();
    let seg = |tsval| TcpRepr {
        flags: flags(ACK, PSH),
        options: ts_opt(tsval, 1000),
        ..data_seg(0, b"x")
    };
    recv!(h, time 100, seg(100));
    // The handshake measured 0 ms: RTO = 200 ms.
    recv!(h, time 300, seg(300));
    assert_eq!(h.info().srtt, Some(Duration::ZERO));
    // The ACK of the original was lost; the answer to the duplicate echoes TSval 100.
    send!(h, time 330, TcpRepr {
        options: ts_opt(1001, 100),
        ..ack_seg(1)
    });
    assert_eq!(h.info().unacked, 0);
    assert_eq!(h.info().srtt, Some(Duration::ZERO));
    assert_eq!(h.info().rto, Duration::from_millis(200));
    // Fresh echoes are samples again: 30 ms.
    h.layer.send(h.handle, b"y").unwrap();
    recv!(h, time 400, TcpRepr {
        flags: flags(ACK, PSH),
        options: ts_opt(400, 1001),
        ..data_seg(1, b"y")
    });
    send!(h, time 430, TcpRepr {
        options: ts_opt(1002, 400),
        ..ack_seg(2)
    });
    assert_eq!(h.info().srtt, Some(Duration::from_micros(3750)));
}

#[test]
fn test_established_keepalive_probes_then_resets() {
    let mut h = socket_established();
    let cx = h.cx();
    h.layer
        .set_keepalive_params(h.handle, Duration::from_secs(10), Duration::from_secs(1), 2)
        .unwrap();
    h.layer.set_keepalive(h.handle, &cx, true).unwrap();
    let probe = TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    };
    recv_nothing!(h, time 9_999);
    recv!(h, time 10_000, probe);
    recv!(h, time 11_000, probe);
    recv!(h, time 12_000, TcpRepr {
        flags: flags(RST, ACK),
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        window_len: 0,
        ..RECV_TEMPL
    });
    assert_eq!(h.state(), TcpState::Closed);
    assert_eq!(h.layer.take_error(h.handle), Some(TcpError::TimedOut));
}

#[test]
fn test_established_keepalive_answer_resets_probes() {
    let mut h = socket_established();
    let cx = h.cx();
    h.layer
        .set_keepalive_params(h.handle, Duration::from_secs(10), Duration::from_secs(1), 1)
        .unwrap();
    h.layer.set_keepalive(h.handle, &cx, true).unwrap();
    h.recv();
    h.at(10_000);
    h.recv().expect("probe");
    send!(h, time 10_100, ack_seg(0));
    recv_nothing!(h, time 11_000);
    assert_eq!(h.state(), TcpState::Established);
    recv!(h, time 20_100, TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    });
}

#[test]
fn test_established_close_with_unread_data_resets() {
    let mut h = socket_established();
    send!(
        h,
        TcpRepr {
            payload: b"unread",
            ..TcpRepr {
                flags: ACK,
                seq_number: REMOTE_SEQ + 1,
                ack_number: LOCAL_SEQ + 1,
                ..SEND_TEMPL
            }
        }
    );
    h.recv();
    h.layer.close(h.handle, &h.cx()).unwrap();
    recv!(
        h,
        TcpRepr {
            flags: flags(RST, ACK),
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 7,
            window_len: 0,
            ..RECV_TEMPL
        }
    );
    assert_eq!(h.layer.socket_count(), 1); // the listener
}

#[test]
fn test_established_abort_resets() {
    let mut h = socket_established();
    h.layer.abort(h.handle).unwrap();
    recv!(
        h,
        TcpRepr {
            flags: flags(RST, ACK),
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 1,
            window_len: 0,
            ..RECV_TEMPL
        }
    );
    assert_eq!(h.layer.state(h.handle), None);
    assert_eq!(h.layer.abort(h.handle), Err(CloseError::BadHandle));
}

#[test]
fn test_established_linger_zero_close_resets() {
    let mut h = socket_established();
    h.layer.set_linger(h.handle, Some(Duration::ZERO)).unwrap();
    h.layer.close(h.handle, &h.cx()).unwrap();
    let got = h.recv().unwrap();
    assert!(got.flags.rst());
}

#[test]
fn test_established_icmp_soft_error() {
    let mut h = socket_established();
    h.layer.send(h.handle, b"abc").unwrap();
    h.recv();
    let cx = h.cx();
    h.layer
        .handle_icmp_error(&cx, &icmp(IcmpErrorKind::HostUnreachable, LOCAL_SEQ + 1));
    assert_eq!(h.state(), TcpState::Established);
    assert_eq!(
        h.layer.take_error(h.handle),
        Some(TcpError::HostUnreachable)
    );
    assert_eq!(h.layer.take_error(h.handle), None);
}

#[test]
fn test_established_icmp_frag_needed_lowers_mss() {
    let (mut h, _) = socket_bulk(base_config(), NO_OPTIONS);
    h.recv().unwrap();
    let cx = h.cx();
    h.layer.handle_icmp_error(
        &cx,
        &icmp(IcmpErrorKind::FragmentationNeeded(80), LOCAL_SEQ + 1),
    );
    assert_eq!(h.info().pmtu, 80);
    // Resent from SND.UNA with 40-byte segments.
    let got = h.recv().unwrap();
    assert_eq!((got.seq_number, got.payload.len()), (LOCAL_SEQ + 1, 40));
}

#[test]
fn test_established_window_scaling_applies_to_peer_window() {
    let mut config = base_config();
    config.window_scaling = true;
    config.tx_buffer_len = 4096;
    let mut h = socket_established_with(
        config,
        TcpOptions {
            window_scale: Some(2),
            mss: Some(1000),
            ..NO_OPTIONS
        },
    );
    assert_eq!(h.info().snd_wnd, 256 << 2);
    h.layer.set_nodelay(h.handle, true).unwrap();
    send!(
        h,
        TcpRepr {
            window_len: 1,
            ..ack_seg(0)
        }
    );
    h.layer.send(h.handle, &[9; 10]).unwrap();
    // Peer window is 1 << 2 = 4 bytes; max window seen 1024: SWS avoidance holds the
    // 4-byte segment (below half of the largest window) until the persist override.
    recv_nothing!(h);
    let got = h.recv();
    assert!(got.is_none());
    h.at(1000);
    let got = h.recv().unwrap();
    assert_eq!(got.payload.len(), 4);
}

#[test]
fn test_events_queue_is_bounded() {
    let mut config = base_config();
    config.event_queue_len = 2;
    let mut h = socket_established_with(config, NO_OPTIONS);
    h.layer.shutdown(h.handle, Shutdown::Write).unwrap(); // ESTABLISHED -> FIN-WAIT-1
    h.recv().expect("FIN");
    send!(
        h,
        TcpRepr {
            flags: flags(FIN, ACK),
            ..ack_seg(1)
        }
    );
    h.recv().expect("ACK of the FIN");
    let ev = h.events();
    assert_eq!(ev.len(), 2);
    assert!(h.layer.counters().events_dropped >= 1);
}
