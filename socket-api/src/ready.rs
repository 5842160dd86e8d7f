//! The readiness of one open description, computed from the engine on demand: nothing
//! is cached that could go stale. Used by the driver's wake-ups, `poll` and `epoll`.

use crate::events::PollEvents;
use crate::table::{File, Sock};
use crate::tcp;
use ustack::iface::Interface;

/// The readiness of one socket now. May move a pending asynchronous error from the
/// engine into `file.error`, from where the next call or SO_ERROR reports it.
pub(crate) fn readiness(iface: &mut Interface, file: &mut File) -> PollEvents {
    let mut r = PollEvents::empty();
    match &file.sock {
        Sock::Udp(h) => {
            let h = *h;
            let udp = iface.udp();
            if file.error.is_none() {
                if let Ok(Some(e)) = udp.take_error(h) {
                    file.error = Some(e.into());
                }
            }
            if matches!(udp.peek_len(h), Ok(Some(_))) || file.error.is_some() || file.shut_rd {
                r |= PollEvents::POLLIN;
            }
            if udp.can_send(h, 1) {
                r |= PollEvents::POLLOUT;
            }
        }
        Sock::Raw { h, .. } => {
            let raw = iface.raw();
            if raw.can_recv(*h) || file.shut_rd {
                r |= PollEvents::POLLIN;
            }
            if raw.can_send(*h) {
                r |= PollEvents::POLLOUT;
            }
        }
        Sock::Tcp(t) => {
            let t = *t;
            r |= tcp::readiness(iface, t, file);
        }
    }
    if file.error.is_some() {
        r |= PollEvents::POLLERR;
    }
    // Linux datagram_poll / tcp_poll: RDHUP on receive shutdown, HUP when both are.
    if file.shut_rd {
        r |= PollEvents::POLLRDHUP;
        if file.shut_wr {
            r |= PollEvents::POLLHUP;
        }
    }
    r
}
