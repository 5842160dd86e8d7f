//! FIN-WAIT-1 and FIN-WAIT-2.

use super::*;

#[test]
fn test_fin_wait_1_ack_goes_to_fin_wait_2() {
    let mut h = socket_fin_wait_1();
    send!(h, ack_seg(1));
    assert_eq!(h.state(), TcpState::FinWait2);
    assert_eq!(
        h.events(),
        vec![state_change(
            h.handle,
            TcpState::FinWait1,
            TcpState::FinWait2
        )]
    );
}

#[test]
fn test_fin_wait_1_fin_goes_to_closing() {
    let h = socket_closing();
    assert_eq!(h.state(), TcpState::Closing);
}

#[test]
fn test_fin_wait_1_fin_ack_goes_to_time_wait() {
    let mut h = socket_fin_wait_1();
    let fin = TcpRepr {
        flags: flags(FIN, ACK),
        ..ack_seg(1)
    };
    fin_into_time_wait(&mut h, fin, NO_OPTIONS);
    assert_eq!(h.state(), TcpState::TimeWait);
}

#[test]
fn test_fin_wait_1_retransmits_fin() {
    let mut h = socket_fin_wait_1();
    recv!(h, time 1000, TcpRepr {
        flags: flags(FIN, ACK),
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    });
}

#[test]
fn test_fin_wait_1_data_then_fin() {
    let mut h = socket_established();
    h.layer.send(h.handle, b"bye").unwrap();
    h.layer.shutdown(h.handle, Shutdown::Write).unwrap();
    recv!(
        h,
        TcpRepr {
            flags: TcpFlags::ACK | PSH | FIN,
            ..data_seg(0, b"bye")
        }
    );
    assert_eq!(h.layer.send(h.handle, b"x"), Err(SendError::Closed));
    send!(h, ack_seg(4));
    assert_eq!(h.state(), TcpState::FinWait2);
    assert_eq!(h.info().bytes_acked, 3);
}

#[test]
fn test_fin_wait_2_fin_goes_to_time_wait() {
    let h = socket_time_wait();
    assert_eq!(h.state(), TcpState::TimeWait);
}

#[test]
fn test_fin_wait_2_receives_data_half_closed() {
    let mut h = socket_fin_wait_2();
    send!(
        h,
        TcpRepr {
            payload: b"more",
            ..ack_seg(1)
        }
    );
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 2,
            ack_number: REMOTE_SEQ + 5,
            window_len: 60,
            ..RECV_TEMPL
        }
    );
    let mut buf = [0u8; 8];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(4));
}

#[test]
fn test_fin_wait_2_orphan_times_out() {
    let mut h = socket_fin_wait_2();
    h.layer.close(h.handle, &h.cx()).unwrap();
    assert_eq!(h.layer.socket_count(), 2);
    h.at(60_000);
    assert_eq!(h.layer.socket_count(), 1);
}

#[test]
fn test_fin_wait_2_orphan_data_gets_rst() {
    let mut h = socket_fin_wait_2();
    h.layer.close(h.handle, &h.cx()).unwrap();
    // Linux: data for a closed socket is answered with a reset.
    send!(h, TcpRepr {
        payload: b"late",
        ..ack_seg(1)
    } => Some(TcpRepr {
        flags: flags(RST, ACK),
        seq_number: LOCAL_SEQ + 2,
        ack_number: REMOTE_SEQ + 1,
        window_len: 0,
        ..RECV_TEMPL
    }));
    assert_eq!(h.layer.socket_count(), 1);
}
