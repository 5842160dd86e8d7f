//! CLOSING.

use super::*;

#[test]
fn test_closing_ack_goes_to_time_wait() {
    let mut h = socket_closing();
    send!(
        h,
        TcpRepr {
            seq_number: REMOTE_SEQ + 2,
            ..ack_seg(1)
        }
    );
    assert_eq!(h.state(), TcpState::TimeWait);
}
