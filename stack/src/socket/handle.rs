//! [`SocketHandle`]: any socket of an interface, as the readiness queue names it.

use super::raw::RawHandle;
use super::tcp::TcpHandle;
use super::udp::UdpHandle;
use core::fmt;

/// Any socket of an interface, as [`Interface::poll_ready`](crate::iface::Interface::poll_ready)
/// reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SocketHandle {
    /// A TCP socket.
    Tcp(TcpHandle),
    /// A UDP socket.
    Udp(UdpHandle),
    /// A raw IP socket.
    Raw(RawHandle),
}

impl fmt::Display for SocketHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketHandle::Tcp(h) => h.fmt(f),
            SocketHandle::Udp(h) => h.fmt(f),
            SocketHandle::Raw(h) => h.fmt(f),
        }
    }
}

impl From<TcpHandle> for SocketHandle {
    fn from(h: TcpHandle) -> SocketHandle {
        SocketHandle::Tcp(h)
    }
}

impl From<UdpHandle> for SocketHandle {
    fn from(h: UdpHandle) -> SocketHandle {
        SocketHandle::Udp(h)
    }
}

impl From<RawHandle> for SocketHandle {
    fn from(h: RawHandle) -> SocketHandle {
        SocketHandle::Raw(h)
    }
}
