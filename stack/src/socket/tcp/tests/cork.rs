//! TCP_CORK and MSG_MORE (Linux semantics): partial segments wait for more data, the
//! FIN, an uncork or the 200 ms cork ceiling; full segments go at once.

use super::*;

/// An established connection with a 64-byte MSS and room for four segments.
fn socket_corkable() -> Harness {
    let mut config = base_config();
    config.tx_buffer_len = 256;
    config.tx_buffer_max = 256;
    socket_established_with(config, mss_opt(64))
}

fn data(seq_off: usize, payload: &'static [u8]) -> TcpRepr<'static> {
    TcpRepr {
        flags: flags(ACK, PSH),
        seq_number: LOCAL_SEQ + 1 + seq_off,
        ack_number: REMOTE_SEQ + 1,
        payload,
        ..RECV_TEMPL
    }
}

#[test]
fn test_established_cork_holds_partial_until_uncork() {
    let mut h = socket_corkable();
    h.layer.set_nodelay(h.handle, true).unwrap();
    h.layer.set_cork(h.handle, true).unwrap();
    assert_eq!(h.layer.cork(h.handle), Some(true));
    h.layer.send(h.handle, b"abc").unwrap();
    recv_nothing!(h);
    h.layer.send(h.handle, b"def").unwrap();
    recv_nothing!(h);
    h.layer.set_cork(h.handle, false).unwrap();
    // Both writes in one segment.
    recv!(h, data(0, b"abcdef"));
    recv_nothing!(h);
}

#[test]
fn test_established_cork_sends_full_segments_holds_tail() {
    let mut h = socket_corkable();
    h.layer.set_cork(h.handle, true).unwrap();
    let payload: Vec<u8> = (0..100u8).collect();
    assert_eq!(h.layer.send(h.handle, &payload), Ok(100));
    let first = h.recv().expect("the full segment");
    assert_eq!(first.payload, &payload[..64]);
    recv_nothing!(h);
    h.layer.set_cork(h.handle, false).unwrap();
    let tail = h.recv().expect("the tail after uncork");
    assert_eq!(tail.seq_number, LOCAL_SEQ + 1 + 64);
    assert_eq!(tail.payload, &payload[64..]);
}

#[test]
fn test_established_cork_fin_carries_held_data() {
    let mut h = socket_corkable();
    h.layer.set_cork(h.handle, true).unwrap();
    h.layer.send(h.handle, b"hello\n").unwrap();
    recv_nothing!(h);
    h.layer.shutdown(h.handle, Shutdown::Write).unwrap();
    let seg = h.recv().expect("data and FIN");
    assert_eq!(seg.payload, b"hello\n");
    assert!(seg.flags.contains(FIN), "{seg}");
    recv_nothing!(h);
}

#[test]
fn test_established_cork_ceiling_200ms() {
    let mut h = socket_corkable();
    h.layer.set_cork(h.handle, true).unwrap();
    h.at(1_000);
    h.layer.send(h.handle, b"abc").unwrap();
    recv_nothing!(h);
    recv_nothing!(h, time 1_199);
    recv!(h, time 1_200, data(0, b"abc"));
    recv_nothing!(h);
}

#[test]
fn test_established_more_fin_carries_data() {
    let mut h = socket_corkable();
    h.layer.set_nodelay(h.handle, true).unwrap();
    assert_eq!(h.layer.send_more(h.handle, b"hello\n", true), Ok(6));
    recv_nothing!(h);
    h.layer.close(h.handle, &h.cx()).unwrap();
    let seg = h.recv().expect("data and FIN");
    assert_eq!(seg.payload, b"hello\n");
    assert!(seg.flags.contains(FIN), "{seg}");
    assert_eq!(seg.seq_number, LOCAL_SEQ + 1);
    recv_nothing!(h);
}

#[test]
fn test_established_more_then_send_without_flushes() {
    let mut h = socket_corkable();
    h.layer.set_nodelay(h.handle, true).unwrap();
    h.layer.send_more(h.handle, b"ab", true).unwrap();
    recv_nothing!(h);
    h.layer.send_more(h.handle, b"cd", true).unwrap();
    recv_nothing!(h);
    h.layer.send(h.handle, b"ef").unwrap();
    recv!(h, data(0, b"abcdef"));
    // The hold ended with that send: the next small write goes at once (NODELAY).
    h.layer.send(h.handle, b"g").unwrap();
    recv!(h, data(6, b"g"));
}

#[test]
fn test_established_more_ceiling_ends_hold() {
    let mut h = socket_corkable();
    h.layer.set_nodelay(h.handle, true).unwrap();
    h.at(500);
    h.layer.send_more(h.handle, b"ab", true).unwrap();
    recv_nothing!(h);
    recv_nothing!(h, time 699);
    recv!(h, time 700, data(0, b"ab"));
}

#[test]
fn test_established_cork_inherited_from_listener() {
    let mut h = socket_listen();
    let l = h.listener.unwrap();
    h.layer.set_cork(l, true).unwrap();
    h.layer.set_nodelay(l, true).unwrap();
    send!(
        h,
        TcpRepr {
            flags: SYN,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    h.handle = h
        .layer
        .conn_handle(SocketAddr::V4(LOCAL), SocketAddr::V4(REMOTE))
        .expect("child");
    h.recv().expect("SYN,ACK");
    establish(&mut h);
    assert_eq!(h.layer.cork(h.handle), Some(true));
    h.layer.send(h.handle, b"x").unwrap();
    recv_nothing!(h);
    h.layer.set_cork(h.handle, false).unwrap();
    recv!(h, data(0, b"x"));
}
