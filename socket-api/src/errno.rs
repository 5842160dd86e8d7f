//! Errors of the socket API: one [`Errno`] per POSIX error, and the one table that
//! maps every stack error to it.
//!
//! Like gVisor (`pkg/syserr/netstack.go`), every typed error of the engine is turned
//! into an errno in exactly one place, this file, so the BSD layer, the `std::net`-like
//! layer and the docs agree. An [`Errno`] converts into [`io::Error`] carrying the raw
//! OS error number from libc, so [`io::Error::kind`] is the same `ErrorKind` std would
//! give for the same failure of a kernel socket.

use core::fmt;
use std::io;
use ustack::socket::tcp::{
    AcceptError, BindError, ConnectError, ListenError, OptionError, RecvError, SendError,
    ShutdownError, TcpError,
};
use ustack::socket::{raw, udp, CloseError};

/// A POSIX error number returned by a socket call (see errno(3)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Errno {
    /// Resource temporarily unavailable: the call would block (EAGAIN, also EWOULDBLOCK).
    EAGAIN,
    /// A non-blocking connect has started and is not finished yet.
    EINPROGRESS,
    /// A connect is already in progress on this socket.
    EALREADY,
    /// The socket is already connected.
    EISCONN,
    /// The peer refused the connection (RST to SYN, or ICMP port unreachable).
    ECONNREFUSED,
    /// The peer reset the connection.
    ECONNRESET,
    /// The connection was aborted before it could be accepted.
    ECONNABORTED,
    /// The connection timed out (retransmissions or keep-alive probes exhausted).
    ETIMEDOUT,
    /// The local address is already in use.
    EADDRINUSE,
    /// The address is not one of this stack's addresses.
    EADDRNOTAVAIL,
    /// The socket is not connected.
    ENOTCONN,
    /// The socket cannot send any more (shut down for writing, or the peer reset it).
    EPIPE,
    /// Invalid argument.
    EINVAL,
    /// Not an open descriptor of this stack.
    EBADF,
    /// The message is too long to be sent atomically.
    EMSGSIZE,
    /// The address family is not supported (only AF_INET is).
    EAFNOSUPPORT,
    /// The protocol is not supported for this socket type.
    EPROTONOSUPPORT,
    /// The socket type is not supported.
    ESOCKTNOSUPPORT,
    /// The operation is not supported by this kind of socket.
    EOPNOTSUPP,
    /// No route to the host.
    EHOSTUNREACH,
    /// The network is unreachable.
    ENETUNREACH,
    /// A destination address is required (unconnected socket, no address given).
    EDESTADDRREQ,
    /// The option is not known at this level, or not valid for this socket.
    ENOPROTOOPT,
    /// No buffer space available.
    ENOBUFS,
    /// Too many open descriptors.
    EMFILE,
    /// Permission denied (for example a broadcast without SO_BROADCAST).
    EACCES,
    /// The stack is shutting down or its link failed.
    EIO,
    /// Already registered (epoll `Add` twice).
    EEXIST,
    /// Not registered (epoll `Mod`/`Del` of an unwatched descriptor).
    ENOENT,
}

impl Errno {
    /// EWOULDBLOCK is EAGAIN on Linux.
    pub const EWOULDBLOCK: Errno = Errno::EAGAIN;

    /// The Linux errno number (from libc).
    pub fn raw(self) -> i32 {
        match self {
            Errno::EAGAIN => libc::EAGAIN,
            Errno::EINPROGRESS => libc::EINPROGRESS,
            Errno::EALREADY => libc::EALREADY,
            Errno::EISCONN => libc::EISCONN,
            Errno::ECONNREFUSED => libc::ECONNREFUSED,
            Errno::ECONNRESET => libc::ECONNRESET,
            Errno::ECONNABORTED => libc::ECONNABORTED,
            Errno::ETIMEDOUT => libc::ETIMEDOUT,
            Errno::EADDRINUSE => libc::EADDRINUSE,
            Errno::EADDRNOTAVAIL => libc::EADDRNOTAVAIL,
            Errno::ENOTCONN => libc::ENOTCONN,
            Errno::EPIPE => libc::EPIPE,
            Errno::EINVAL => libc::EINVAL,
            Errno::EBADF => libc::EBADF,
            Errno::EMSGSIZE => libc::EMSGSIZE,
            Errno::EAFNOSUPPORT => libc::EAFNOSUPPORT,
            Errno::EPROTONOSUPPORT => libc::EPROTONOSUPPORT,
            Errno::ESOCKTNOSUPPORT => libc::ESOCKTNOSUPPORT,
            Errno::EOPNOTSUPP => libc::EOPNOTSUPP,
            Errno::EHOSTUNREACH => libc::EHOSTUNREACH,
            Errno::ENETUNREACH => libc::ENETUNREACH,
            Errno::EDESTADDRREQ => libc::EDESTADDRREQ,
            Errno::ENOPROTOOPT => libc::ENOPROTOOPT,
            Errno::ENOBUFS => libc::ENOBUFS,
            Errno::EMFILE => libc::EMFILE,
            Errno::EACCES => libc::EACCES,
            Errno::EIO => libc::EIO,
            Errno::EEXIST => libc::EEXIST,
            Errno::ENOENT => libc::ENOENT,
        }
    }

    /// Every errno this API can return (for tables and tests).
    pub const ALL: [Errno; 29] = [
        Errno::EAGAIN,
        Errno::EINPROGRESS,
        Errno::EALREADY,
        Errno::EISCONN,
        Errno::ECONNREFUSED,
        Errno::ECONNRESET,
        Errno::ECONNABORTED,
        Errno::ETIMEDOUT,
        Errno::EADDRINUSE,
        Errno::EADDRNOTAVAIL,
        Errno::ENOTCONN,
        Errno::EPIPE,
        Errno::EINVAL,
        Errno::EBADF,
        Errno::EMSGSIZE,
        Errno::EAFNOSUPPORT,
        Errno::EPROTONOSUPPORT,
        Errno::ESOCKTNOSUPPORT,
        Errno::EOPNOTSUPP,
        Errno::EHOSTUNREACH,
        Errno::ENETUNREACH,
        Errno::EDESTADDRREQ,
        Errno::ENOPROTOOPT,
        Errno::ENOBUFS,
        Errno::EMFILE,
        Errno::EACCES,
        Errno::EIO,
        Errno::EEXIST,
        Errno::ENOENT,
    ];

    /// The errno with Linux number `raw`, if this API knows it.
    pub fn from_raw(raw: i32) -> Option<Errno> {
        Errno::ALL.into_iter().find(|e| e.raw() == raw)
    }

    /// The errno inside an [`io::Error`] made from one (or any OS error we know).
    pub fn from_io_error(err: &io::Error) -> Option<Errno> {
        err.raw_os_error().and_then(Errno::from_raw)
    }

    /// The [`io::ErrorKind`] std gives this errno.
    pub fn kind(self) -> io::ErrorKind {
        io::Error::from(self).kind()
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The message is strerror(3)'s, through std.
        let msg = io::Error::from_raw_os_error(self.raw()).to_string();
        let msg = msg.split(" (os error").next().unwrap_or(&msg).to_owned();
        write!(f, "{self:?}: {msg}")
    }
}

impl std::error::Error for Errno {}

impl From<Errno> for io::Error {
    /// Carries the raw OS error, so `kind()` is what std reports for a kernel socket.
    fn from(e: Errno) -> io::Error {
        io::Error::from_raw_os_error(e.raw())
    }
}

// ---------------------------------------------------------------------------------
// The table: every error of the engine, mapped once.
// ---------------------------------------------------------------------------------

impl From<CloseError> for Errno {
    fn from(e: CloseError) -> Errno {
        match e {
            CloseError::BadHandle => Errno::EBADF,
        }
    }
}

impl From<udp::UdpError> for Errno {
    fn from(e: udp::UdpError) -> Errno {
        match e {
            udp::UdpError::ConnectionRefused => Errno::ECONNREFUSED,
        }
    }
}

impl From<udp::BindError> for Errno {
    fn from(e: udp::BindError) -> Errno {
        match e {
            udp::BindError::BadHandle => Errno::EBADF,
            // Linux: bind(2) on a bound socket is EINVAL.
            udp::BindError::InvalidState => Errno::EINVAL,
            udp::BindError::AddrInUse => Errno::EADDRINUSE,
            udp::BindError::AddrNotAvailable => Errno::EADDRNOTAVAIL,
            // Linux inet_csk_get_port fails bind(port 0) with EADDRINUSE.
            udp::BindError::NoPortsAvailable => Errno::EADDRINUSE,
            // Linux inet6_bind: a v4-mapped address on an IPV6_V6ONLY socket is EINVAL.
            udp::BindError::WrongFamily => Errno::EINVAL,
        }
    }
}

impl From<udp::ConnectError> for Errno {
    fn from(e: udp::ConnectError) -> Errno {
        match e {
            udp::ConnectError::BadHandle => Errno::EBADF,
            // The implicit bind to port 0, reported as bind(2) would.
            udp::ConnectError::NoPortsAvailable => Errno::EADDRINUSE,
            // Linux ip6_datagram_connect: IPv4 from an IPV6_V6ONLY socket is ENETUNREACH.
            udp::ConnectError::WrongFamily => Errno::ENETUNREACH,
        }
    }
}

impl From<udp::SendError> for Errno {
    fn from(e: udp::SendError) -> Errno {
        match e {
            udp::SendError::BadHandle => Errno::EBADF,
            // send(2) on an unconnected datagram socket: EDESTADDRREQ.
            udp::SendError::NotConnected => Errno::EDESTADDRREQ,
            udp::SendError::WouldBlock => Errno::EAGAIN,
            udp::SendError::MessageTooLong => Errno::EMSGSIZE,
            udp::SendError::Refused => Errno::ECONNREFUSED,
            udp::SendError::NoPortsAvailable => Errno::EADDRINUSE,
            // Linux udpv6_sendmsg: IPv4 from an IPV6_V6ONLY socket is ENETUNREACH.
            udp::SendError::WrongFamily => Errno::ENETUNREACH,
        }
    }
}

impl From<udp::RecvError> for Errno {
    fn from(e: udp::RecvError) -> Errno {
        match e {
            udp::RecvError::BadHandle => Errno::EBADF,
            udp::RecvError::WouldBlock => Errno::EAGAIN,
            udp::RecvError::Refused => Errno::ECONNREFUSED,
        }
    }
}

impl From<udp::OptionError> for Errno {
    fn from(e: udp::OptionError) -> Errno {
        match e {
            udp::OptionError::BadHandle => Errno::EBADF,
            udp::OptionError::InvalidState => Errno::EINVAL,
        }
    }
}

impl From<raw::ConnectError> for Errno {
    fn from(e: raw::ConnectError) -> Errno {
        match e {
            raw::ConnectError::BadHandle => Errno::EBADF,
            // Linux raw_sendmsg / rawv6_sendmsg: another family is EAFNOSUPPORT.
            raw::ConnectError::WrongFamily => Errno::EAFNOSUPPORT,
        }
    }
}

impl From<raw::SendError> for Errno {
    fn from(e: raw::SendError) -> Errno {
        match e {
            raw::SendError::BadHandle => Errno::EBADF,
            raw::SendError::WouldBlock => Errno::EAGAIN,
            raw::SendError::MessageTooLong => Errno::EMSGSIZE,
            raw::SendError::NotConnected => Errno::EDESTADDRREQ,
            raw::SendError::WrongFamily => Errno::EAFNOSUPPORT,
        }
    }
}

impl From<raw::RecvError> for Errno {
    fn from(e: raw::RecvError) -> Errno {
        match e {
            raw::RecvError::BadHandle => Errno::EBADF,
            raw::RecvError::WouldBlock => Errno::EAGAIN,
        }
    }
}

impl From<raw::OptionError> for Errno {
    fn from(e: raw::OptionError) -> Errno {
        match e {
            raw::OptionError::BadHandle => Errno::EBADF,
        }
    }
}
impl From<TcpError> for Errno {
    fn from(e: TcpError) -> Errno {
        match e {
            TcpError::ConnectionRefused => Errno::ECONNREFUSED,
            TcpError::ConnectionReset => Errno::ECONNRESET,
            TcpError::TimedOut => Errno::ETIMEDOUT,
            TcpError::HostUnreachable => Errno::EHOSTUNREACH,
        }
    }
}

impl From<BindError> for Errno {
    fn from(e: BindError) -> Errno {
        match e {
            BindError::BadHandle => Errno::EBADF,
            BindError::InvalidState => Errno::EINVAL,
            BindError::AddrInUse => Errno::EADDRINUSE,
            // Linux: bind(port 0) with every port taken is EADDRINUSE.
            BindError::NoPortsAvailable => Errno::EADDRINUSE,
        }
    }
}

impl From<ListenError> for Errno {
    fn from(e: ListenError) -> Errno {
        match e {
            ListenError::BadHandle => Errno::EBADF,
            ListenError::InvalidState => Errno::EINVAL,
            ListenError::AddrInUse => Errno::EADDRINUSE,
            ListenError::NoPortsAvailable => Errno::EADDRINUSE,
        }
    }
}

impl From<ConnectError> for Errno {
    fn from(e: ConnectError) -> Errno {
        match e {
            ConnectError::BadHandle => Errno::EBADF,
            ConnectError::IsConnected => Errno::EISCONN,
            ConnectError::InProgress => Errno::EALREADY,
            ConnectError::InvalidState => Errno::EINVAL,
            ConnectError::Unaddressable => Errno::EINVAL,
            ConnectError::AddrInUse => Errno::EADDRINUSE,
            // Linux: connect(2) with no free ephemeral port is EADDRNOTAVAIL.
            ConnectError::NoPortsAvailable => Errno::EADDRNOTAVAIL,
        }
    }
}

impl From<AcceptError> for Errno {
    fn from(e: AcceptError) -> Errno {
        match e {
            AcceptError::BadHandle => Errno::EBADF,
            AcceptError::NotListening => Errno::EINVAL,
            AcceptError::WouldBlock => Errno::EAGAIN,
        }
    }
}

impl From<SendError> for Errno {
    fn from(e: SendError) -> Errno {
        match e {
            SendError::BadHandle => Errno::EBADF,
            SendError::NotConnected => Errno::ENOTCONN,
            SendError::Closed => Errno::EPIPE,
            SendError::Reset => Errno::ECONNRESET,
            SendError::TimedOut => Errno::ETIMEDOUT,
            SendError::Refused => Errno::ECONNREFUSED,
            SendError::Unreachable => Errno::EHOSTUNREACH,
            SendError::WouldBlock => Errno::EAGAIN,
        }
    }
}

impl From<RecvError> for Errno {
    fn from(e: RecvError) -> Errno {
        match e {
            RecvError::BadHandle => Errno::EBADF,
            RecvError::NotConnected => Errno::ENOTCONN,
            RecvError::Reset => Errno::ECONNRESET,
            RecvError::TimedOut => Errno::ETIMEDOUT,
            RecvError::Refused => Errno::ECONNREFUSED,
            RecvError::Unreachable => Errno::EHOSTUNREACH,
            RecvError::WouldBlock => Errno::EAGAIN,
        }
    }
}

impl From<ShutdownError> for Errno {
    fn from(e: ShutdownError) -> Errno {
        match e {
            ShutdownError::BadHandle => Errno::EBADF,
            ShutdownError::NotConnected => Errno::ENOTCONN,
        }
    }
}

impl From<OptionError> for Errno {
    fn from(e: OptionError) -> Errno {
        match e {
            OptionError::BadHandle => Errno::EBADF,
            OptionError::InvalidState => Errno::EINVAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_kinds_match_std() {
        use io::ErrorKind as K;
        let cases = [
            (Errno::EAGAIN, K::WouldBlock),
            (Errno::ECONNREFUSED, K::ConnectionRefused),
            (Errno::ECONNRESET, K::ConnectionReset),
            (Errno::ECONNABORTED, K::ConnectionAborted),
            (Errno::ETIMEDOUT, K::TimedOut),
            (Errno::EADDRINUSE, K::AddrInUse),
            (Errno::EADDRNOTAVAIL, K::AddrNotAvailable),
            (Errno::ENOTCONN, K::NotConnected),
            (Errno::EPIPE, K::BrokenPipe),
            (Errno::EINVAL, K::InvalidInput),
            (Errno::EHOSTUNREACH, K::HostUnreachable),
            (Errno::ENETUNREACH, K::NetworkUnreachable),
        ];
        for (e, k) in cases {
            let io: io::Error = e.into();
            assert_eq!(io.kind(), k, "{e}");
            assert_eq!(io.raw_os_error(), Some(e.raw()));
            assert_eq!(Errno::from_io_error(&io), Some(e));
        }
        assert_eq!(Errno::EWOULDBLOCK.raw(), libc::EWOULDBLOCK);
    }

    #[test]
    fn raw_numbers_round_trip_and_are_distinct() {
        for e in Errno::ALL {
            assert_eq!(Errno::from_raw(e.raw()), Some(e));
            assert!(e.to_string().starts_with(&format!("{e:?}: ")));
        }
    }

    #[test]
    fn stack_errors_map_to_linux_errnos() {
        assert_eq!(Errno::from(udp::BindError::AddrInUse), Errno::EADDRINUSE);
        assert_eq!(Errno::from(udp::BindError::InvalidState), Errno::EINVAL);
        assert_eq!(
            Errno::from(udp::SendError::NotConnected),
            Errno::EDESTADDRREQ
        );
        assert_eq!(Errno::from(udp::SendError::WouldBlock), Errno::EAGAIN);
        assert_eq!(Errno::from(udp::RecvError::Refused), Errno::ECONNREFUSED);
        assert_eq!(
            Errno::from(udp::UdpError::ConnectionRefused),
            Errno::ECONNREFUSED
        );
        assert_eq!(Errno::from(udp::OptionError::BadHandle), Errno::EBADF);
        assert_eq!(Errno::from(raw::SendError::MessageTooLong), Errno::EMSGSIZE);
        assert_eq!(
            Errno::from(raw::SendError::NotConnected),
            Errno::EDESTADDRREQ
        );
        assert_eq!(Errno::from(raw::RecvError::BadHandle), Errno::EBADF);
        assert_eq!(Errno::from(CloseError::BadHandle), Errno::EBADF);
        assert_eq!(Errno::from(ConnectError::InProgress), Errno::EALREADY);
        assert_eq!(Errno::from(ConnectError::IsConnected), Errno::EISCONN);
        assert_eq!(Errno::from(SendError::Closed), Errno::EPIPE);
        assert_eq!(Errno::from(SendError::Reset), Errno::ECONNRESET);
        assert_eq!(Errno::from(RecvError::TimedOut), Errno::ETIMEDOUT);
        assert_eq!(Errno::from(AcceptError::NotListening), Errno::EINVAL);
        assert_eq!(
            Errno::from(TcpError::ConnectionRefused),
            Errno::ECONNREFUSED
        );
        assert_eq!(Errno::from(ListenError::AddrInUse), Errno::EADDRINUSE);
        assert_eq!(Errno::from(ShutdownError::NotConnected), Errno::ENOTCONN);
        assert_eq!(Errno::from(OptionError::InvalidState), Errno::EINVAL);
        assert_eq!(Errno::from(BindError::AddrInUse), Errno::EADDRINUSE);
    }
}
