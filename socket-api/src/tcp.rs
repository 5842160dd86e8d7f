//! TCP in the BSD layer: the pieces of each call that are specific to the engine's
//! [`TcpLayer`](ustack::socket::tcp::TcpLayer).
//!
//! Readiness follows Linux `tcp_poll`: POLLIN when data, end of stream, an error or
//! (for a listener) a connection is ready; POLLOUT when established with send-buffer
//! room; POLLRDHUP after the peer's FIN; POLLHUP once the connection is CLOSED or both
//! directions are shut; POLLERR when a terminal error (reset, refused, timed out) is
//! pending. Terminal errors are moved out of the engine into the description when
//! readiness is computed (the engine's `take_error` is destructive), and every call
//! looks there first; soft errors (ICMP unreachable while established) stay in the
//! engine and are reported by SO_ERROR only, as on Linux.

use crate::errno::Errno;
use crate::events::PollEvents;
use crate::table::{File, TcpSock};
use std::time::Duration;
use ustack::iface::Interface;
use ustack::socket::tcp::TcpState;
use ustack::time::Instant;

pub use ustack::socket::tcp::TcpInfo;

/// Moves a terminal error from the engine into the description (see module docs).
pub(crate) fn stash_error(iface: &mut Interface, t: TcpSock, file: &mut File) {
    if file.error.is_none() && iface.tcp().state(t.h) == Some(TcpState::Closed) {
        if let Some(e) = iface.tcp().take_error(t.h) {
            file.error = Some(e.into());
        }
    }
}

/// Readiness of a TCP socket (Linux `tcp_poll`).
pub(crate) fn readiness(iface: &mut Interface, t: TcpSock, file: &mut File) -> PollEvents {
    stash_error(iface, t, file);
    let tcp = iface.tcp();
    let mut r = PollEvents::empty();
    let state = tcp.state(t.h);
    // A receive shutdown reads as end of file at once (Linux tcp_poll sets POLLIN for
    // RCV_SHUTDOWN), so a reader blocked in recv wakes.
    if tcp.can_recv(t.h) || file.error.is_some() || file.shut_rd {
        r |= PollEvents::POLLIN;
    }
    if tcp.can_send(t.h) {
        r |= PollEvents::POLLOUT;
    }
    if tcp.is_readable_eof(t.h) {
        r |= PollEvents::POLLIN | PollEvents::POLLRDHUP;
    }
    if matches!(state, None | Some(TcpState::Closed)) {
        r |= PollEvents::POLLHUP;
    }
    r
}

/// Which states make getpeername answer (Linux: not CLOSED, not SYN-SENT).
pub(crate) fn has_peer(state: Option<TcpState>) -> bool {
    !matches!(
        state,
        None | Some(TcpState::Closed) | Some(TcpState::SynSent) | Some(TcpState::Listen)
    )
}

/// Closes a TCP socket: graceful FIN, or RST with a zero SO_LINGER or unread data
/// (the engine decides; a non-zero linger was waited for by the caller).
pub(crate) fn close(iface: &mut Interface, t: TcpSock, linger: Option<Duration>, now: Instant) {
    log::trace!(target: "ustack::socket", "tcp close {} (linger {linger:?})", t.h);
    let cx = iface.tcp_context(now);
    let _ = iface.tcp().close(t.h, &cx);
}

/// What a finished (or failed) connect leaves: Ok once synchronized, the stored error
/// (or ECONNREFUSED) once CLOSED, EAGAIN while the handshake runs.
pub(crate) fn connect_outcome(
    iface: &mut Interface,
    t: TcpSock,
    file: &mut File,
) -> Result<(), Errno> {
    match iface.tcp().state(t.h) {
        Some(TcpState::SynSent) | Some(TcpState::SynReceived) => Err(Errno::EAGAIN),
        Some(TcpState::Closed) | None => {
            stash_error(iface, t, file);
            Err(file.error.take().unwrap_or(Errno::ECONNREFUSED))
        }
        Some(_) => Ok(()),
    }
}
