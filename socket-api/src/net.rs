//! `std::net`-like types on the BSD layer: [`TcpListener`], [`TcpStream`],
//! [`UdpSocket`] and [`RawSocket`].
//!
//! Names and semantics mirror `std::net`; the one difference is that constructors take
//! the [`NetStack`] to open the socket on (`UdpSocket::bind(&stack, "0.0.0.0:7")`).
//! As in std, the family of the socket follows the address: `"[::]:7"` opens an
//! `AF_INET6` socket (dual stack: IPv4 peers appear as `::ffff:a.b.c.d`), and
//! [`TcpStream::connect`] and [`UdpSocket::bind`] try every address a name resolves to,
//! IPv4 and IPv6.
//! Each value owns one descriptor and closes it on drop; [`try_clone`](TcpStream::try_clone)
//! duplicates it. Errors are [`io::Error`]s carrying the errno, so `kind()` matches
//! what std reports for a kernel socket. Like std's, a [`TcpListener`] sets
//! SO_REUSEADDR before binding, and writes never raise SIGPIPE.

use crate::bsd::{
    SockOpt, SockOptName, AF_INET, AF_INET6, MSG_NOSIGNAL, MSG_PEEK, SHUT_RD, SHUT_RDWR, SHUT_WR,
    SOCK_DGRAM, SOCK_NONBLOCK, SOCK_RAW, SOCK_STREAM,
};
use crate::errno::Errno;
use crate::poll::{PollEvents, PollFd};
use crate::stack::NetStack;
use crate::table::Fd;
use core::net::{IpAddr, SocketAddr};
use std::io::{self, Read, Write};
use std::net::{Shutdown, ToSocketAddrs};
use std::time::Duration;

/// Tries `f` on each address `addr` resolves to, like std; returns the first success
/// or the last error.
fn each_addr<T>(
    addr: impl ToSocketAddrs,
    mut f: impl FnMut(SocketAddr) -> Result<T, Errno>,
) -> io::Result<T> {
    let mut last: Option<Errno> = None;
    for a in addr.to_socket_addrs()? {
        match f(a) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map(io::Error::from).unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

/// The first address `addr` resolves to, as std's `send_to` takes it.
fn first_addr(addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to send to"))
}

/// The `socket(2)` domain for an address.
fn domain_of(addr: &SocketAddr) -> i32 {
    if addr.is_ipv6() {
        AF_INET6
    } else {
        AF_INET
    }
}

fn check_timeout(t: Option<Duration>) -> io::Result<()> {
    if t.is_some_and(|t| t.is_zero()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    Ok(())
}

/// One descriptor, closed on drop; the common part of every type here.
#[derive(Debug)]
struct Socket {
    stack: NetStack,
    fd: Fd,
}

impl Socket {
    fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let ttl = i32::try_from(ttl).map_err(|_| io::Error::from(Errno::EINVAL))?;
        Ok(self.stack.setsockopt(self.fd, SockOpt::IpTtl(ttl))?)
    }

    fn ttl(&self) -> io::Result<u32> {
        match self.stack.getsockopt(self.fd, SockOptName::IpTtl)? {
            SockOpt::IpTtl(t) => Ok(t.max(0) as u32),
            _ => unreachable!("asked for IP_TTL"),
        }
    }

    fn new(stack: &NetStack, domain: i32, ty: i32, protocol: i32) -> Result<Socket, Errno> {
        let fd = stack.socket(domain, ty, protocol)?;
        Ok(Socket {
            stack: stack.clone(),
            fd,
        })
    }

    fn try_clone(&self) -> io::Result<Socket> {
        Ok(Socket {
            stack: self.stack.clone(),
            fd: self.stack.dup(self.fd)?,
        })
    }

    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        Ok(self.stack.set_nonblocking(self.fd, on)?)
    }

    fn set_timeout(&self, t: Option<Duration>, read: bool) -> io::Result<()> {
        check_timeout(t)?;
        let opt = if read {
            SockOpt::RcvTimeo(t)
        } else {
            SockOpt::SndTimeo(t)
        };
        Ok(self.stack.setsockopt(self.fd, opt)?)
    }

    fn timeout(&self, read: bool) -> io::Result<Option<Duration>> {
        let name = if read {
            SockOptName::RcvTimeo
        } else {
            SockOptName::SndTimeo
        };
        match self.stack.getsockopt(self.fd, name)? {
            SockOpt::RcvTimeo(t) | SockOpt::SndTimeo(t) => Ok(t),
            _ => unreachable!("asked for a timeout"),
        }
    }

    fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self.stack.getsockopt(self.fd, SockOptName::Error)? {
            SockOpt::Error(e) => Ok(e.map(io::Error::from)),
            _ => unreachable!("asked for SO_ERROR"),
        }
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let how = match how {
            Shutdown::Read => SHUT_RD,
            Shutdown::Write => SHUT_WR,
            Shutdown::Both => SHUT_RDWR,
        };
        Ok(self.stack.shutdown(self.fd, how)?)
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = self.stack.close(self.fd);
    }
}

macro_rules! common_methods {
    () => {
        /// The descriptor in the stack's table, for the BSD calls, `poll` and `Epoll`.
        pub fn fd(&self) -> Fd {
            self.0.fd
        }

        /// The stack this socket lives on.
        pub fn stack(&self) -> &NetStack {
            &self.0.stack
        }

        /// Sets IP_TTL, the TTL of what this socket sends over IPv4 (`std`'s
        /// `set_ttl`; an AF_INET6 socket records it, as Linux applies it to v4-mapped
        /// traffic only).
        ///
        /// # Errors
        /// EINVAL outside 1..=255; the descriptor is no longer valid.
        pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
            self.0.set_ttl(ttl)
        }

        /// IP_TTL: the socket's TTL, or the interface's when unset.
        ///
        /// # Errors
        /// The descriptor is no longer valid.
        pub fn ttl(&self) -> io::Result<u32> {
            self.0.ttl()
        }

        /// Moves in or out of non-blocking mode (O_NONBLOCK): calls that would block
        /// fail with `ErrorKind::WouldBlock`.
        ///
        /// # Errors
        /// The descriptor is no longer valid.
        pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
            self.0.set_nonblocking(nonblocking)
        }

        /// Takes the pending asynchronous error (SO_ERROR).
        ///
        /// # Errors
        /// The descriptor is no longer valid.
        pub fn take_error(&self) -> io::Result<Option<io::Error>> {
            self.0.take_error()
        }
    };
}

macro_rules! timeout_methods {
    () => {
        /// Bounds blocking reads (SO_RCVTIMEO); `None` blocks forever. Timed-out reads
        /// fail with `ErrorKind::WouldBlock`.
        ///
        /// # Errors
        /// `InvalidInput` for a zero duration, as std.
        pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
            self.0.set_timeout(dur, true)
        }

        /// Bounds blocking writes (SO_SNDTIMEO); `None` blocks forever.
        ///
        /// # Errors
        /// `InvalidInput` for a zero duration, as std.
        pub fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
            self.0.set_timeout(dur, false)
        }

        /// The read timeout.
        ///
        /// # Errors
        /// The descriptor is no longer valid.
        pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
            self.0.timeout(true)
        }

        /// The write timeout.
        ///
        /// # Errors
        /// The descriptor is no longer valid.
        pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
            self.0.timeout(false)
        }
    };
}

// ------------------------------------------------------------------------------------
// UDP
// ------------------------------------------------------------------------------------

/// A UDP socket, as `std::net::UdpSocket`.
#[derive(Debug)]
pub struct UdpSocket(Socket);

impl UdpSocket {
    /// Opens a UDP socket on `stack` bound to `addr` (port 0: ephemeral).
    ///
    /// # Errors
    /// `AddrInUse`, `AddrNotAvailable`, or the address did not resolve.
    pub fn bind(stack: &NetStack, addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        each_addr(addr, |a| {
            let s = Socket::new(stack, domain_of(&a), SOCK_DGRAM, 0)?;
            stack.bind(s.fd, a)?;
            Ok(UdpSocket(s))
        })
    }

    /// Sets the default destination and only hears that peer from now on.
    ///
    /// # Errors
    /// The address did not resolve, or binding an ephemeral port failed.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        each_addr(addr, |a| self.0.stack.connect(self.0.fd, a))
    }

    /// Sends a datagram to `addr` (the first address it resolves to).
    ///
    /// # Errors
    /// `WouldBlock` (non-blocking, send queue full), EMSGSIZE, a reported ICMP error.
    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let a = first_addr(addr)?;
        Ok(self.0.stack.sendto(self.0.fd, buf, 0, a)?)
    }

    /// Receives a datagram; a longer one is truncated to `buf`.
    ///
    /// # Errors
    /// `WouldBlock` (non-blocking, or the read timeout passed), `ConnectionRefused`.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        Ok(self.0.stack.recvfrom(self.0.fd, buf, 0)?)
    }

    /// As [`recv_from`](Self::recv_from) but leaves the datagram queued.
    ///
    /// # Errors
    /// As `recv_from`.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        Ok(self.0.stack.recvfrom(self.0.fd, buf, MSG_PEEK)?)
    }

    /// Sends to the connected peer.
    ///
    /// # Errors
    /// EDESTADDRREQ when not connected, or as [`send_to`](Self::send_to).
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.0.stack.send(self.0.fd, buf, 0)?)
    }

    /// Receives from the connected peer.
    ///
    /// # Errors
    /// As [`recv_from`](Self::recv_from).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.0.stack.recv(self.0.fd, buf, 0)?)
    }

    /// As [`recv`](Self::recv) but leaves the datagram queued.
    ///
    /// # Errors
    /// As `recv`.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.0.stack.recv(self.0.fd, buf, MSG_PEEK)?)
    }

    /// The local address.
    ///
    /// # Errors
    /// The descriptor is no longer valid.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.0.stack.getsockname(self.0.fd)?)
    }

    /// The connected peer.
    ///
    /// # Errors
    /// `NotConnected`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.0.stack.getpeername(self.0.fd)?)
    }

    /// A second handle on the same socket.
    ///
    /// # Errors
    /// The descriptor table is full.
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(UdpSocket(self.0.try_clone()?))
    }

    common_methods!();
    timeout_methods!();
}

// ------------------------------------------------------------------------------------
// Raw
// ------------------------------------------------------------------------------------

/// A raw IP socket for one protocol (Linux SOCK_RAW). An IPv4 one ([`new`](Self::new))
/// receives whole datagrams, IP header included; an IPv6 one ([`new_v6`](Self::new_v6),
/// e.g. for ICMPv6) receives the message without the IPv6 header, as Linux does. Both
/// send transport messages, to which the stack adds the header.
#[derive(Debug)]
pub struct RawSocket(Socket);

impl RawSocket {
    /// Opens an IPv4 raw socket on `stack` for IP protocol `protocol` (1 for ICMP).
    ///
    /// # Errors
    /// `protocol` is 0 or 255.
    pub fn new(stack: &NetStack, protocol: u8) -> io::Result<RawSocket> {
        Ok(RawSocket(Socket::new(
            stack,
            AF_INET,
            SOCK_RAW,
            i32::from(protocol),
        )?))
    }

    /// Opens an IPv6 raw socket on `stack` for next header `protocol` (58 for ICMPv6).
    ///
    /// # Errors
    /// `protocol` is 0 or 255.
    pub fn new_v6(stack: &NetStack, protocol: u8) -> io::Result<RawSocket> {
        Ok(RawSocket(Socket::new(
            stack,
            AF_INET6,
            SOCK_RAW,
            i32::from(protocol),
        )?))
    }

    /// Opens an IPv4 one non-blocking from the start (SOCK_NONBLOCK).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn new_nonblocking(stack: &NetStack, protocol: u8) -> io::Result<RawSocket> {
        Ok(RawSocket(Socket::new(
            stack,
            AF_INET,
            SOCK_RAW | SOCK_NONBLOCK,
            i32::from(protocol),
        )?))
    }

    /// Records a local address (must be one of the stack's, or unspecified).
    ///
    /// # Errors
    /// `AddrNotAvailable`; an address of the other family (EINVAL, EAFNOSUPPORT).
    pub fn bind(&self, addr: impl Into<IpAddr>) -> io::Result<()> {
        Ok(self
            .0
            .stack
            .bind(self.0.fd, SocketAddr::new(addr.into(), 0))?)
    }

    /// Only hears `addr` from now on, and sends to it by default.
    ///
    /// # Errors
    /// The descriptor is no longer valid; an address of the other family
    /// (EAFNOSUPPORT).
    pub fn connect(&self, addr: impl Into<IpAddr>) -> io::Result<()> {
        Ok(self
            .0
            .stack
            .connect(self.0.fd, SocketAddr::new(addr.into(), 0))?)
    }

    /// Sends a transport message (e.g. an ICMP echo request with its checksum) to `dst`.
    ///
    /// # Errors
    /// EMSGSIZE, `WouldBlock`; an address of the other family (EINVAL,
    /// EAFNOSUPPORT).
    pub fn send_to(&self, msg: &[u8], dst: impl Into<IpAddr>) -> io::Result<usize> {
        Ok(self
            .0
            .stack
            .sendto(self.0.fd, msg, 0, SocketAddr::new(dst.into(), 0))?)
    }

    /// Sends to the connected peer.
    ///
    /// # Errors
    /// EDESTADDRREQ when not connected.
    pub fn send(&self, msg: &[u8]) -> io::Result<usize> {
        Ok(self.0.stack.send(self.0.fd, msg, 0)?)
    }

    /// Receives a datagram (for IPv4 with its IP header) and its source.
    ///
    /// # Errors
    /// `WouldBlock` (non-blocking, or the read timeout passed).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, IpAddr)> {
        let (n, from) = self.0.stack.recvfrom(self.0.fd, buf, 0)?;
        Ok((n, from.ip()))
    }

    /// Receives a datagram, IP header included.
    ///
    /// # Errors
    /// As [`recv_from`](Self::recv_from).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.0.stack.recv(self.0.fd, buf, 0)?)
    }

    /// A second handle on the same socket.
    ///
    /// # Errors
    /// The descriptor table is full.
    pub fn try_clone(&self) -> io::Result<RawSocket> {
        Ok(RawSocket(self.0.try_clone()?))
    }

    common_methods!();
    timeout_methods!();
}

// ------------------------------------------------------------------------------------
// TCP
// ------------------------------------------------------------------------------------

/// A listening TCP socket, as `std::net::TcpListener`.
#[derive(Debug)]
pub struct TcpListener(Socket);

impl TcpListener {
    /// Opens a listening socket on `stack` at `addr` (SO_REUSEADDR set, backlog 128).
    ///
    /// # Errors
    /// `AddrInUse`, `AddrNotAvailable`, or the address did not resolve.
    pub fn bind(stack: &NetStack, addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        each_addr(addr, |a| {
            let s = Socket::new(stack, domain_of(&a), SOCK_STREAM, 0)?;
            stack.setsockopt(s.fd, SockOpt::ReuseAddr(true))?;
            stack.bind(s.fd, a)?;
            stack.listen(s.fd, 128)?;
            Ok(TcpListener(s))
        })
    }

    /// Waits for and takes the next connection.
    ///
    /// # Errors
    /// `WouldBlock` (non-blocking), `ConnectionAborted`.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, peer) = self.0.stack.accept(self.0.fd)?;
        Ok((
            TcpStream(Socket {
                stack: self.0.stack.clone(),
                fd,
            }),
            peer,
        ))
    }

    /// An endless iterator of [`accept`](Self::accept)ed streams.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The local address.
    ///
    /// # Errors
    /// The descriptor is no longer valid.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.0.stack.getsockname(self.0.fd)?)
    }

    /// A second handle on the same listener.
    ///
    /// # Errors
    /// The descriptor table is full.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener(self.0.try_clone()?))
    }

    common_methods!();
}

/// The iterator of [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A TCP connection, as `std::net::TcpStream`.
#[derive(Debug)]
pub struct TcpStream(Socket);

impl TcpStream {
    /// Connects from `stack` to `addr`, trying each resolved address.
    ///
    /// # Errors
    /// `ConnectionRefused`, `TimedOut`, `HostUnreachable`, `NetworkUnreachable` (no
    /// route), or the address did not resolve.
    pub fn connect(stack: &NetStack, addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        each_addr(addr, |a| {
            let s = Socket::new(stack, domain_of(&a), SOCK_STREAM, 0)?;
            stack.connect(s.fd, a)?;
            Ok(TcpStream(s))
        })
    }

    /// Connects with a bound on the handshake: a non-blocking connect, then poll for
    /// POLLOUT, then SO_ERROR.
    ///
    /// # Errors
    /// `TimedOut` when `timeout` passes; `InvalidInput` for a zero timeout; as
    /// [`connect`](Self::connect).
    pub fn connect_timeout(
        stack: &NetStack,
        addr: &SocketAddr,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        check_timeout(Some(timeout))?;
        let s = Socket::new(stack, domain_of(addr), SOCK_STREAM | SOCK_NONBLOCK, 0)?;
        match stack.connect(s.fd, *addr) {
            Ok(()) => {}
            Err(Errno::EINPROGRESS) => {
                let mut p = [PollFd::new(s.fd, PollEvents::POLLOUT)];
                if stack.poll(&mut p, Some(timeout))? == 0 {
                    return Err(io::Error::from(Errno::ETIMEDOUT));
                }
                if let Some(e) = s.take_error()? {
                    return Err(e);
                }
            }
            Err(e) => return Err(e.into()),
        }
        s.set_nonblocking(false)?;
        Ok(TcpStream(s))
    }

    /// The peer's address.
    ///
    /// # Errors
    /// `NotConnected`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.0.stack.getpeername(self.0.fd)?)
    }

    /// The local address.
    ///
    /// # Errors
    /// The descriptor is no longer valid.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.0.stack.getsockname(self.0.fd)?)
    }

    /// Shuts down reading, writing or both (a FIN goes out on `Write`).
    ///
    /// # Errors
    /// `NotConnected`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.0.shutdown(how)
    }

    /// Reads without consuming.
    ///
    /// # Errors
    /// As `read`.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.0.stack.recv(self.0.fd, buf, MSG_PEEK)?)
    }

    /// Disables (true) or enables Nagle's algorithm (TCP_NODELAY).
    ///
    /// # Errors
    /// The descriptor is no longer valid.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        Ok(self
            .0
            .stack
            .setsockopt(self.0.fd, SockOpt::TcpNoDelay(nodelay))?)
    }

    /// Whether TCP_NODELAY is set.
    ///
    /// # Errors
    /// The descriptor is no longer valid.
    pub fn nodelay(&self) -> io::Result<bool> {
        match self
            .0
            .stack
            .getsockopt(self.0.fd, SockOptName::TcpNoDelay)?
        {
            SockOpt::TcpNoDelay(b) => Ok(b),
            _ => unreachable!("asked for TCP_NODELAY"),
        }
    }

    /// Sets SO_LINGER: `Some(Duration::ZERO)` makes drop reset the connection; a longer
    /// time makes drop wait (at most that long) until the peer acknowledged everything.
    ///
    /// # Errors
    /// The descriptor is no longer valid.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        Ok(self
            .0
            .stack
            .setsockopt(self.0.fd, SockOpt::Linger(linger))?)
    }

    /// A second handle on the same connection.
    ///
    /// # Errors
    /// The descriptor table is full.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream(self.0.try_clone()?))
    }

    common_methods!();
    timeout_methods!();
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.0.stack.recv(self.0.fd, buf, 0)?)
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.0.stack.send(self.0.fd, buf, MSG_NOSIGNAL)?)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
