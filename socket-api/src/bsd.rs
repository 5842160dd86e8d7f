//! The BSD socket calls over integer descriptors, poll(2) included. They are the
//! methods of [`NetStack`](crate::NetStack) (declared and documented in `stack.rs`,
//! which delegates here); `Calls` implements them over the shared state, so this
//! module imports nothing above `state`.
//!
//! Each call locks the stack once, resolves the descriptor once, and tries the
//! non-blocking operation on the engine. What it queued is transmitted before it
//! returns, by its own thread (`State::flush`). If it would block and the descriptor
//! is blocking (no O_NONBLOCK, no MSG_DONTWAIT), the thread registers a waiter for
//! POLLIN or POLLOUT and waits (`state::wait_ready`): leading the link itself when
//! nobody does, else on its condvar until a round signals readiness, honouring
//! SO_RCVTIMEO/SO_SNDTIMEO (EAGAIN once they pass). A non-blocking call that finds
//! nothing while nobody attends the link runs a round first (see the driver module).
//!
//! Names and semantics follow Linux; each call links its man page. Differences are
//! listed in `docs/socket-api.md`.

use crate::errno::Errno;
use crate::events::{PollEvents, ALWAYS};
use crate::family::{self, to_engine, to_user, Use};
use crate::ready::readiness;
use crate::state::Shared;
use crate::state::{
    add_waiter, busy_poll, close_sock, may_busy_poll, remaining, remove_waiter, step_down,
    thread_cv, wait_on, wait_ready, State,
};
use crate::table::{Fd, File, FileKey, Opts, Sock, TcpSock};
use crate::tcp::{self, TcpInfo};
use core::net::{IpAddr, SocketAddr};
use std::sync::Condvar;
use std::time::{Duration, Instant as StdInstant};
use ustack::iface::{AddrState, Interface};
use ustack::socket::tcp::{CongestionAlgorithm, RecvError, SendError, Shutdown};
use ustack::socket::udp;
use ustack::socket::{IpFamily, IpTx};
use ustack::wire::IpProtocol;

/// IPv4.
pub const AF_INET: i32 = libc::AF_INET;
/// IPv6, dual stack unless IPV6_V6ONLY (IPv4 peers appear as `::ffff:a.b.c.d`).
pub const AF_INET6: i32 = libc::AF_INET6;
/// Byte stream (TCP).
pub const SOCK_STREAM: i32 = libc::SOCK_STREAM;
/// Datagrams (UDP).
pub const SOCK_DGRAM: i32 = libc::SOCK_DGRAM;
/// Raw IP (receive includes the IP header; send takes the transport message).
pub const SOCK_RAW: i32 = libc::SOCK_RAW;
/// Or-ed into the type: open with O_NONBLOCK.
pub const SOCK_NONBLOCK: i32 = libc::SOCK_NONBLOCK;
/// Or-ed into the type: accepted and ignored (there is no exec across stacks).
pub const SOCK_CLOEXEC: i32 = libc::SOCK_CLOEXEC;
/// The default protocol of the type.
pub const IPPROTO_IP: i32 = libc::IPPROTO_IP;
/// ICMP (for SOCK_RAW).
pub const IPPROTO_ICMP: i32 = libc::IPPROTO_ICMP;
/// TCP.
pub const IPPROTO_TCP: i32 = libc::IPPROTO_TCP;
/// UDP.
pub const IPPROTO_UDP: i32 = libc::IPPROTO_UDP;
/// ICMPv6 (for SOCK_RAW on AF_INET6).
pub const IPPROTO_ICMPV6: i32 = libc::IPPROTO_ICMPV6;
/// Look at the data without consuming it.
pub const MSG_PEEK: i32 = libc::MSG_PEEK;
/// Do not block this one call.
pub const MSG_DONTWAIT: i32 = libc::MSG_DONTWAIT;
/// Stream sockets: block until the whole buffer is filled (or EOF, error, timeout).
pub const MSG_WAITALL: i32 = libc::MSG_WAITALL;
/// Datagrams: return the real length even if it was truncated.
pub const MSG_TRUNC: i32 = libc::MSG_TRUNC;
/// Accepted and ignored: there are no signals, EPIPE is always returned instead.
pub const MSG_NOSIGNAL: i32 = libc::MSG_NOSIGNAL;
/// TCP: more data follows, so the partial segment at the end of this send waits (as
/// under TCP_CORK) for a send without the flag, shutdown/close (the FIN carries it) or
/// 200 ms. Ignored for datagram sockets.
pub const MSG_MORE: i32 = libc::MSG_MORE;
/// Shut down receiving.
pub const SHUT_RD: i32 = libc::SHUT_RD;
/// Shut down sending.
pub const SHUT_WR: i32 = libc::SHUT_WR;
/// Shut down both.
pub const SHUT_RDWR: i32 = libc::SHUT_RDWR;

/// The longest a call waits for duplicate address detection to free an IPv6 source
/// address (`Calls::await_dad`): DAD takes one RetransTimer (1 s) per probe.
const DAD_WAIT: Duration = Duration::from_secs(3);

/// Buffer size of raw sockets (Linux's default SO_RCVBUF).
const RAW_BUFFER_LEN: usize = 212_992;

/// A socket option with its value, for [`NetStack::setsockopt`](crate::NetStack::setsockopt) and as the answer of
/// [`NetStack::getsockopt`](crate::NetStack::getsockopt) (socket(7), tcp(7)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
// The `TcpInfo` answer is the large variant; an option is passed by value once per
// call, so its size does not matter and boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum SockOpt {
    /// SO_REUSEADDR: bind to a port whose old connections linger in TIME-WAIT.
    ReuseAddr(bool),
    /// SO_KEEPALIVE: probe idle TCP connections.
    KeepAlive(bool),
    /// SO_LINGER: `Some(0)` makes close send RST; `Some(t)` makes a blocking TCP close
    /// wait up to `t` for the peer to acknowledge everything; `None` is a normal close.
    Linger(Option<Duration>),
    /// SO_RCVBUF in bytes (not doubled as Linux does).
    RcvBuf(usize),
    /// SO_SNDBUF in bytes (not doubled as Linux does).
    SndBuf(usize),
    /// SO_RCVTIMEO: blocking receives and accepts give EAGAIN after this; `None` or
    /// zero waits forever.
    RcvTimeo(Option<Duration>),
    /// SO_SNDTIMEO: blocking sends give EAGAIN (connect EINPROGRESS) after this.
    SndTimeo(Option<Duration>),
    /// SO_ERROR (read only): the pending asynchronous error, cleared by reading.
    Error(Option<Errno>),
    /// SO_TYPE (read only): SOCK_STREAM, SOCK_DGRAM or SOCK_RAW.
    Type(i32),
    /// TCP_NODELAY: disable Nagle's algorithm.
    TcpNoDelay(bool),
    /// TCP_CORK: hold partial segments until uncorked (which sends them at once), a
    /// full segment, the FIN, or a 200 ms ceiling (tcp(7)).
    TcpCork(bool),
    /// TCP_KEEPIDLE: idle time before the first keep-alive probe.
    TcpKeepIdle(Duration),
    /// TCP_KEEPINTVL: time between keep-alive probes.
    TcpKeepIntvl(Duration),
    /// TCP_KEEPCNT: unanswered probes before the connection is dropped.
    TcpKeepCnt(u32),
    /// TCP_INFO (read only).
    TcpInfo(TcpInfo),
    /// TCP_CONGESTION: the congestion control algorithm by name.
    TcpCongestion(String),
    /// IPV6_V6ONLY (AF_INET6 only): `[::]` takes IPv6 only; off by default, as Linux.
    /// Only before bind (EINVAL after).
    Ipv6V6Only(bool),
    /// IPV6_TCLASS (AF_INET6 only), 0..=255 or -1 for 0: the traffic class of what an
    /// IPv6 socket sends (a TCP socket keeps the two ECN bits clear, as Linux).
    Ipv6TClass(i32),
    /// IPV6_UNICAST_HOPS (AF_INET6 only), 0..=255 or -1 for the interface's: the hop
    /// limit of what an IPv6 socket sends.
    Ipv6UnicastHops(i32),
    /// IP_TTL, 1..=255 or -1 for the interface's: the TTL of what an IPv4 socket sends
    /// (on an AF_INET6 socket recorded and reported only).
    IpTtl(i32),
    /// IP_TOS: the TOS byte of what an IPv4 socket sends (a TCP socket keeps the two ECN
    /// bits clear, as Linux; on an AF_INET6 socket recorded and reported only).
    IpTos(i32),
    /// SO_BUSY_POLL, in µs (0, the default, is off; negative is EINVAL): how long a
    /// blocking receive, accept or poll on this socket spins on the link (leading it,
    /// yielding the CPU between passes) before it sleeps, as socket(7) describes.
    /// Accepted sockets inherit it; new sockets start at the stack's default
    /// ([`Builder::busy_poll`](crate::Builder::busy_poll)).
    BusyPoll(i32),
}

/// The name of a [`SockOpt`], for [`NetStack::getsockopt`](crate::NetStack::getsockopt).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SockOptName {
    /// SO_REUSEADDR.
    ReuseAddr,
    /// SO_KEEPALIVE.
    KeepAlive,
    /// SO_LINGER.
    Linger,
    /// SO_RCVBUF.
    RcvBuf,
    /// SO_SNDBUF.
    SndBuf,
    /// SO_RCVTIMEO.
    RcvTimeo,
    /// SO_SNDTIMEO.
    SndTimeo,
    /// SO_ERROR.
    Error,
    /// SO_TYPE.
    Type,
    /// TCP_NODELAY.
    TcpNoDelay,
    /// TCP_CORK.
    TcpCork,
    /// TCP_KEEPIDLE.
    TcpKeepIdle,
    /// TCP_KEEPINTVL.
    TcpKeepIntvl,
    /// TCP_KEEPCNT.
    TcpKeepCnt,
    /// TCP_INFO.
    TcpInfo,
    /// TCP_CONGESTION.
    TcpCongestion,
    /// IPV6_V6ONLY.
    Ipv6V6Only,
    /// IPV6_TCLASS.
    Ipv6TClass,
    /// IPV6_UNICAST_HOPS.
    Ipv6UnicastHops,
    /// IP_TTL.
    IpTtl,
    /// IP_TOS.
    IpTos,
    /// SO_BUSY_POLL.
    BusyPoll,
}

impl SockOptName {
    /// The Linux `(level, optname)` pair.
    pub fn level_and_name(self) -> (i32, i32) {
        use SockOptName as N;
        match self {
            N::ReuseAddr => (libc::SOL_SOCKET, libc::SO_REUSEADDR),
            N::KeepAlive => (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
            N::Linger => (libc::SOL_SOCKET, libc::SO_LINGER),
            N::RcvBuf => (libc::SOL_SOCKET, libc::SO_RCVBUF),
            N::SndBuf => (libc::SOL_SOCKET, libc::SO_SNDBUF),
            N::RcvTimeo => (libc::SOL_SOCKET, libc::SO_RCVTIMEO),
            N::SndTimeo => (libc::SOL_SOCKET, libc::SO_SNDTIMEO),
            N::Error => (libc::SOL_SOCKET, libc::SO_ERROR),
            N::Type => (libc::SOL_SOCKET, libc::SO_TYPE),
            N::TcpNoDelay => (libc::IPPROTO_TCP, libc::TCP_NODELAY),
            N::TcpCork => (libc::IPPROTO_TCP, libc::TCP_CORK),
            N::TcpKeepIdle => (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
            N::TcpKeepIntvl => (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
            N::TcpKeepCnt => (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
            N::TcpInfo => (libc::IPPROTO_TCP, libc::TCP_INFO),
            N::TcpCongestion => (libc::IPPROTO_TCP, libc::TCP_CONGESTION),
            N::Ipv6V6Only => (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
            N::Ipv6TClass => (libc::IPPROTO_IPV6, libc::IPV6_TCLASS),
            N::Ipv6UnicastHops => (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS),
            N::IpTtl => (libc::IPPROTO_IP, libc::IP_TTL),
            N::IpTos => (libc::IPPROTO_IP, libc::IP_TOS),
            N::BusyPoll => (libc::SOL_SOCKET, libc::SO_BUSY_POLL),
        }
    }

    /// True for options at level IPPROTO_IPV6.
    pub fn is_ipv6(self) -> bool {
        self.level_and_name().0 == libc::IPPROTO_IPV6
    }

    /// True for options at level IPPROTO_TCP.
    pub fn is_tcp(self) -> bool {
        self.level_and_name().0 == libc::IPPROTO_TCP
    }
}

impl SockOpt {
    /// The option's name.
    pub fn name(&self) -> SockOptName {
        use SockOptName as N;
        match self {
            SockOpt::ReuseAddr(_) => N::ReuseAddr,
            SockOpt::KeepAlive(_) => N::KeepAlive,
            SockOpt::Linger(_) => N::Linger,
            SockOpt::RcvBuf(_) => N::RcvBuf,
            SockOpt::SndBuf(_) => N::SndBuf,
            SockOpt::RcvTimeo(_) => N::RcvTimeo,
            SockOpt::SndTimeo(_) => N::SndTimeo,
            SockOpt::Error(_) => N::Error,
            SockOpt::Type(_) => N::Type,
            SockOpt::TcpNoDelay(_) => N::TcpNoDelay,
            SockOpt::TcpCork(_) => N::TcpCork,
            SockOpt::TcpKeepIdle(_) => N::TcpKeepIdle,
            SockOpt::TcpKeepIntvl(_) => N::TcpKeepIntvl,
            SockOpt::TcpKeepCnt(_) => N::TcpKeepCnt,
            SockOpt::TcpInfo(_) => N::TcpInfo,
            SockOpt::TcpCongestion(_) => N::TcpCongestion,
            SockOpt::Ipv6V6Only(_) => N::Ipv6V6Only,
            SockOpt::Ipv6TClass(_) => N::Ipv6TClass,
            SockOpt::Ipv6UnicastHops(_) => N::Ipv6UnicastHops,
            SockOpt::IpTtl(_) => N::IpTtl,
            SockOpt::IpTos(_) => N::IpTos,
            SockOpt::BusyPoll(_) => N::BusyPoll,
        }
    }
}

/// Which readiness a blocking call waits for, and which timeout applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    /// POLLIN, SO_RCVTIMEO.
    Read,
    /// POLLOUT, SO_SNDTIMEO.
    Write,
}

/// Gives the engine's socket the TTL and TOS its family's options ask for: IP_TTL and
/// IP_TOS for AF_INET, IPV6_UNICAST_HOPS and IPV6_TCLASS for AF_INET6 (Linux applies
/// the IPv4 pair to an AF_INET6 socket's v4-mapped traffic only; here one pair is
/// kept per socket, its family's).
fn apply_ip_tx(iface: &mut Interface, f: &File) -> Result<(), Errno> {
    let o = &f.opts;
    let (hops, tclass) = match o.family {
        IpFamily::V4 => (o.ttl, o.tos),
        IpFamily::V6 => (o.unicast_hops, o.tclass),
    };
    let tx = IpTx {
        // -1 (the default) is out of range, so `None`.
        hop_limit: u8::try_from(hops).ok(),
        tclass: (tclass & 0xff) as u8,
    };
    match &f.sock {
        Sock::Tcp(t) => {
            iface.tcp().set_hop_limit(t.h, tx.hop_limit)?;
            iface.tcp().set_tclass(t.h, tx.tclass)?;
        }
        Sock::Udp(h) => iface.udp().set_ip_tx(*h, tx)?,
        // Raw sockets send with the interface's TTL.
        Sock::Raw { .. } => {}
    }
    Ok(())
}

/// Whether the interface has a route to `ip`: for IPv4 on-link, broadcast, or a
/// gateway; for IPv6, an address of ours to send from (the interface routes the rest).
fn routable(iface: &Interface, ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let c = iface.config();
            c.ip.contains(ip) || ip.is_broadcast() || c.gateway.is_some()
        }
        IpAddr::V6(_) => iface.local_addrs().source_for(ip).is_some(),
    }
}

/// The BSD calls over one stack's shared state. [`NetStack`](crate::NetStack)'s
/// methods of the same names delegate here, so the calls need nothing above the shared
/// state.
pub(crate) struct Calls<'a> {
    shared: &'a Shared,
}

impl<'a> Calls<'a> {
    pub(crate) fn new(shared: &'a Shared) -> Calls<'a> {
        Calls { shared }
    }

    fn shared(&self) -> &Shared {
        self.shared
    }
}

fn to_stack(d: Duration) -> ustack::time::Duration {
    ustack::time::Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// send(2) for TCP, one try under the lock (see `Calls::send_inner`): queues what fits
/// after what earlier tries queued (`sent`).
fn tcp_send(
    iface: &mut Interface,
    f: &mut File,
    t: TcpSock,
    buf: &[u8],
    flags: i32,
    sent: &mut usize,
    call_queued: &mut bool,
) -> Result<usize, Errno> {
    let nonblocking = f.nonblocking || flags & MSG_DONTWAIT != 0;
    if let Some(e) = f.error.take() {
        return Err(e);
    }
    if f.shut_wr {
        return Err(Errno::EPIPE);
    }
    loop {
        if *sent == buf.len() {
            return Ok(*sent);
        }
        match iface
            .tcp()
            .send_more(t.h, &buf[*sent..], flags & MSG_MORE != 0)
        {
            Ok(n) => {
                *sent += n;
                *call_queued = true;
            }
            Err(SendError::WouldBlock) if nonblocking && *sent > 0 => return Ok(*sent),
            Err(SendError::WouldBlock) => return Err(Errno::EAGAIN),
            Err(e) if *sent > 0 => {
                // Report what was queued now, the error on the next call.
                f.error = Some(e.into());
                return Ok(*sent);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// recv(2) for TCP, one try under the lock: data first, then a pending error, then end
/// of stream (0). MSG_WAITALL keeps waiting until `buf` is full (or EOF, error,
/// SO_RCVTIMEO); `got` carries what earlier tries received.
#[allow(clippy::too_many_arguments)]
fn tcp_recv(
    iface: &mut Interface,
    f: &mut File,
    t: TcpSock,
    buf: &mut [u8],
    flags: i32,
    got: &mut usize,
    peer: &mut Option<SocketAddr>,
    call_queued: &mut bool,
) -> Result<usize, Errno> {
    let peek = flags & MSG_PEEK != 0;
    let waitall = flags & MSG_WAITALL != 0 && !peek;
    let nonblocking = f.nonblocking || flags & MSG_DONTWAIT != 0;
    if peer.is_none() {
        *peer = iface.tcp().peer_addr(t.h);
    }
    if buf.is_empty() {
        return Ok(0);
    }
    loop {
        let r = if peek {
            iface.tcp().peek(t.h, &mut buf[*got..])
        } else {
            iface.tcp().recv(t.h, &mut buf[*got..])
        };
        match r {
            Ok(0) => {
                if *got > 0 {
                    return Ok(*got);
                }
                return match f.error.take() {
                    Some(e) => Err(e),
                    None => Ok(0),
                };
            }
            Ok(n) => {
                *got += n;
                if !peek {
                    // The window opened: the peer may be owed an update.
                    *call_queued = true;
                }
                if peek || *got == buf.len() || !waitall || nonblocking {
                    return Ok(*got);
                }
            }
            Err(RecvError::WouldBlock) => {
                if *got > 0 && (!waitall || nonblocking) {
                    return Ok(*got);
                }
                if let Some(e) = f.error.take() {
                    if *got > 0 {
                        f.error = Some(e);
                        return Ok(*got);
                    }
                    return Err(e);
                }
                if f.shut_rd {
                    return Ok(*got);
                }
                return Err(Errno::EAGAIN);
            }
            Err(e) if *got > 0 => {
                f.error = Some(e.into());
                return Ok(*got);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

impl Calls<'_> {
    /// Runs `op` under the lock until it stops saying EAGAIN, waiting for readiness in
    /// between (leading the link or following, `wait_ready`) unless the descriptor or
    /// `flags` ask not to block. What `op` queued (it sets `State::call_queued`) is
    /// transmitted after each try. Gives `on_timeout` when the direction's SO_*TIMEO
    /// passes. One lock and one descriptor lookup when `op` succeeds at once.
    pub(crate) fn blocking<T>(
        &self,
        fd: Fd,
        flags: i32,
        dir: Dir,
        on_timeout: Errno,
        mut op: impl FnMut(&mut State, FileKey) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        let mut st = self.shared().lock();
        let key = st.table.key(fd)?;
        let mask = match dir {
            Dir::Read => PollEvents::POLLIN,
            Dir::Write => PollEvents::POLLOUT,
        };
        let mut leading = false;
        let mut polled = false;
        // This thread's condvar, registered once for the whole call (a signal that
        // finds it while `op` runs only costs a re-check).
        let mut waiting: Option<std::sync::Arc<Condvar>> = None;
        let mut deadline: Option<Option<StdInstant>> = None;
        // When this call's busy polling (SO_BUSY_POLL, receives and accepts) ends, set
        // at its first wait: one budget per call, as Linux's sk_busy_loop.
        let mut busy_end: Option<Option<StdInstant>> = None;
        let r = loop {
            if st.dead {
                break Err(Errno::EIO);
            }
            // A panic in `op` (a bug in the engine) unwinds into the caller as before,
            // but must not leave this thread registered or leading: nobody would
            // take the link again.
            let r =
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(&mut st, key))) {
                    Ok(r) => r,
                    Err(panic) => {
                        if let Some(cv) = waiting.take() {
                            remove_waiter(&mut st, key, &cv);
                        }
                        step_down(&mut st, &mut leading);
                        drop(st);
                        std::panic::resume_unwind(panic);
                    }
                };
            if st.call_queued {
                // (No clock read for a call that queued nothing: most reads.)
                st.flush(self.shared().now());
            }
            match r {
                Err(Errno::EAGAIN) => {}
                r => break r,
            }
            let (nonblocking, timeout, busy) = match st.table.file(key) {
                Ok(f) => (
                    f.nonblocking || flags & MSG_DONTWAIT != 0,
                    match dir {
                        Dir::Read => f.opts.rcvtimeo,
                        Dir::Write => f.opts.sndtimeo,
                    },
                    match dir {
                        Dir::Read => f.opts.busy_poll,
                        Dir::Write => 0,
                    },
                ),
                Err(e) => break Err(e),
            };
            if nonblocking {
                if !polled && st.link_unattended() {
                    // Frames may wait on a link nobody polls: look once.
                    polled = true;
                    st.caller_round(self.shared().now());
                    continue;
                }
                break Err(Errno::EAGAIN);
            }
            let left = match deadline {
                Some(d) => match remaining(d) {
                    Ok(left) => left,
                    Err(()) => break Err(on_timeout),
                },
                None => {
                    // The first wait: all of the timeout is left (one clock read).
                    deadline = Some(timeout.map(|t| StdInstant::now() + t));
                    timeout
                }
            };
            let cv = match &waiting {
                Some(cv) => cv.clone(),
                None => {
                    let cv = thread_cv();
                    add_waiter(&mut st, key, &cv, mask);
                    waiting.insert(cv).clone()
                }
            };
            if let Some(end) = *busy_end.get_or_insert_with(|| {
                (busy > 0).then(|| StdInstant::now() + Duration::from_micros(busy.into()))
            }) {
                // Never past the call's own timeout.
                let end = deadline.flatten().map_or(end, |d| d.min(end));
                if StdInstant::now() < end && may_busy_poll(&st, leading) {
                    let (g, more) = busy_poll(self.shared(), st, &cv, end, &mut leading);
                    st = g;
                    if !more {
                        busy_end = Some(None);
                    }
                    continue;
                }
            }
            st = wait_ready(self.shared(), st, &cv, left, &mut leading);
        };
        if let Some(cv) = waiting {
            remove_waiter(&mut st, key, &cv);
        }
        step_down(&mut st, &mut leading);
        r
    }

    /// See `NetStack::socket`.
    pub(crate) fn socket(&self, domain: i32, ty: i32, protocol: i32) -> Result<Fd, Errno> {
        let family = match domain {
            AF_INET => IpFamily::V4,
            AF_INET6 => IpFamily::V6,
            _ => return Err(Errno::EAFNOSUPPORT),
        };
        let nonblocking = ty & SOCK_NONBLOCK != 0;
        let base = ty & !(SOCK_NONBLOCK | SOCK_CLOEXEC);
        let mut st = self.shared().lock();
        let (sock, opts) = match base {
            SOCK_DGRAM => {
                if protocol != 0 && protocol != IPPROTO_UDP {
                    return Err(Errno::EPROTONOSUPPORT);
                }
                let cfg = &st.iface.config().udp;
                let opts = Opts::new(cfg.rx_buffer_len, cfg.tx_buffer_len);
                (Sock::Udp(st.iface.udp().socket_in(family)), opts)
            }
            SOCK_STREAM => {
                if protocol != 0 && protocol != IPPROTO_TCP {
                    return Err(Errno::EPROTONOSUPPORT);
                }
                let cfg = &st.iface.config().tcp;
                let mut opts = Opts::new(cfg.rx_buffer_len, cfg.tx_buffer_len);
                opts.nodelay = cfg.nodelay;
                opts.keepidle = Duration::from_micros(cfg.keepalive_idle.total_micros());
                opts.keepintvl = Duration::from_micros(cfg.keepalive_interval.total_micros());
                opts.keepcnt = cfg.keepalive_count;
                opts.congestion = cfg.congestion.to_string();
                let h = st.iface.tcp().socket();
                (Sock::Tcp(TcpSock { h }), opts)
            }
            SOCK_RAW => {
                // Linux: protocol 0 is EPROTONOSUPPORT; IPPROTO_RAW (send-only with
                // header included) is not supported here.
                let protocol = u8::try_from(protocol).map_err(|_| Errno::EINVAL)?;
                if protocol == 0 || protocol == 255 {
                    return Err(Errno::EPROTONOSUPPORT);
                }
                let h = st
                    .iface
                    .raw()
                    .socket_in(family, IpProtocol(protocol), RAW_BUFFER_LEN);
                let sock = Sock::Raw {
                    h,
                    protocol,
                    local: None,
                    remote: None,
                };
                (sock, Opts::new(RAW_BUFFER_LEN, RAW_BUFFER_LEN))
            }
            _ => return Err(Errno::ESOCKTNOSUPPORT),
        };
        let opts = Opts {
            family,
            busy_poll: st.busy_poll,
            ..opts
        };
        match st.table.insert(File::new(sock, opts, nonblocking)) {
            Ok((fd, _)) => {
                log::trace!(target: "ustack::socket", "socket({base}, {protocol}) = {fd}");
                Ok(fd)
            }
            Err(e) => Err(e),
        }
    }

    /// See `NetStack::bind`.
    pub(crate) fn bind(&self, fd: Fd, addr: SocketAddr) -> Result<(), Errno> {
        let mut st = self.shared().lock();
        let key = st.table.key(fd)?;
        let ours = st.iface.local_addrs();
        let State { iface, table, .. } = &mut *st;
        let f = table.file_mut(key)?;
        let addr = to_engine(f.opts.family, f.opts.v6only, addr, Use::Bind)?;
        let ip = addr.ip();
        let is_ours = ip.is_unspecified() || ours.contains(ip);
        match &mut f.sock {
            Sock::Udp(h) => {
                iface.udp().bind(*h, addr, &ours)?;
            }
            Sock::Raw { local, .. } => {
                if !is_ours {
                    return Err(Errno::EADDRNOTAVAIL);
                }
                *local = Some(ip);
            }
            Sock::Tcp(t) => {
                if !is_ours {
                    return Err(Errno::EADDRNOTAVAIL);
                }
                iface.tcp().bind(t.h, addr)?;
            }
        }
        Ok(())
    }

    /// See `NetStack::listen`.
    pub(crate) fn listen(&self, fd: Fd, backlog: i32) -> Result<(), Errno> {
        let mut st = self.shared().lock();
        let key = st.table.key(fd)?;
        let State { iface, table, .. } = &mut *st;
        let f = table.file(key)?;
        match &f.sock {
            Sock::Udp(_) | Sock::Raw { .. } => Err(Errno::EOPNOTSUPP),
            Sock::Tcp(t) => {
                // An unbound socket listens on its family's wildcard (`[::]` is dual
                // stack unless IPV6_V6ONLY, which the engine already knows).
                let local = iface
                    .tcp()
                    .local_addr(t.h)
                    .unwrap_or_else(|| family::unspecified(f.opts.family));
                let backlog = usize::try_from(backlog).unwrap_or(0);
                iface.tcp().listen(t.h, local, backlog)?;
                Ok(())
            }
        }
    }

    /// See `NetStack::accept`.
    pub(crate) fn accept(&self, fd: Fd) -> Result<(Fd, SocketAddr), Errno> {
        self.blocking(fd, 0, Dir::Read, Errno::EAGAIN, |st, key| {
            let f = st.table.file(key)?;
            let (t, opts) = match &f.sock {
                Sock::Udp(_) | Sock::Raw { .. } => return Err(Errno::EOPNOTSUPP),
                Sock::Tcp(t) => (*t, f.opts.clone()),
            };
            let family = opts.family;
            let (child, peer) = st.iface.tcp().accept(t.h)?;
            // A slot of the accept queue freed: a round may owe the peer something.
            st.call_queued = true;
            let State { iface, table, .. } = st;
            // Linux: options are inherited, O_NONBLOCK is not.
            let file = File::new(Sock::Tcp(TcpSock { h: child }), opts, false);
            match table.insert(file) {
                Ok((fd, _)) => Ok((fd, to_user(family, peer))),
                Err(e) => {
                    let _ = iface.tcp().abort(child);
                    Err(e)
                }
            }
        })
    }

    /// Waits (at most [`DAD_WAIT`]) while the only thing between a call and an IPv6
    /// destination is duplicate address detection on our addresses (RFC 4862 §5.4: a
    /// tentative address is not used). A stack starts with the program that uses it
    /// (`ustack run`, every `ustack` command), so a client's first connect or sendto
    /// would otherwise fail with ENETUNREACH for the first second. Nothing is waited
    /// for once no address is tentative, or for IPv4.
    fn await_dad(&self, fd: Fd, addr: SocketAddr) {
        let SocketAddr::V6(a) = addr else { return };
        if a.ip().to_ipv4_mapped().is_some() {
            return;
        }
        let dst = IpAddr::V6(*a.ip());
        let deadline = StdInstant::now() + DAD_WAIT;
        loop {
            let mut st = self.shared().lock();
            // Only an AF_INET6 socket can use the address (AF_INET fails at once).
            let v6_socket = st
                .table
                .key(fd)
                .and_then(|k| st.table.file(k))
                .is_ok_and(|f| f.opts.family == IpFamily::V6);
            if !v6_socket || routable(&st.iface, dst) || StdInstant::now() >= deadline || st.dead {
                return;
            }
            let tentative = st
                .iface
                .ipv6_addrs()
                .iter()
                .any(|a| a.state == AddrState::Tentative);
            if !tentative {
                return;
            }
            // DAD's timers run in rounds: run one if nobody attends the link.
            if st.link_unattended() {
                st.caller_round(self.shared().now());
            }
            drop(st);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// See `NetStack::connect`.
    pub(crate) fn connect(&self, fd: Fd, addr: SocketAddr) -> Result<(), Errno> {
        self.await_dad(fd, addr);
        let mut st = self.shared().lock();
        let key = st.table.key(fd)?;
        let State { iface, table, .. } = &mut *st;
        let f = table.file_mut(key)?;
        let use_ = match f.sock {
            Sock::Udp(_) => Use::ConnectDgram,
            Sock::Raw { .. } => Use::ConnectRaw,
            Sock::Tcp(_) => Use::ConnectStream,
        };
        let addr = to_engine(f.opts.family, f.opts.v6only, addr, use_)?;
        if !routable(iface, addr.ip()) {
            return Err(Errno::ENETUNREACH);
        }
        match &mut f.sock {
            Sock::Udp(h) => {
                iface.udp().connect(*h, addr)?;
                f.error = None;
            }
            Sock::Raw { h, remote, .. } => {
                iface.raw().connect(*h, addr.ip())?;
                *remote = Some(addr.ip());
            }
            Sock::Tcp(_) => {
                drop(st);
                return self.tcp_connect(fd, addr);
            }
        }
        Ok(())
    }

    /// connect(2) for TCP: start the handshake, then (unless non-blocking) wait for
    /// POLLOUT and report how it went. SO_SNDTIMEO bounds the wait (EINPROGRESS, as
    /// Linux; the handshake continues).
    fn tcp_connect(&self, fd: Fd, addr: SocketAddr) -> Result<(), Errno> {
        let mut started = false;
        self.blocking(fd, 0, Dir::Write, Errno::EINPROGRESS, |st, key| {
            let cx = st.iface.tcp_context(self.shared().now());
            let State {
                iface,
                table,
                call_queued,
                ..
            } = st;
            let f = table.file_mut(key)?;
            let Sock::Tcp(t) = f.sock else {
                return Err(Errno::EBADF);
            };
            if !started {
                started = true;
                iface.tcp().connect(t.h, &cx, addr)?;
                f.error = None;
                *call_queued = true;
                if f.nonblocking {
                    return Err(Errno::EINPROGRESS);
                }
            }
            tcp::connect_outcome(iface, t, f)
        })
    }

    /// See `NetStack::send`.
    pub(crate) fn send(&self, fd: Fd, buf: &[u8], flags: i32) -> Result<usize, Errno> {
        self.send_inner(fd, buf, flags, None)
    }

    /// See `NetStack::sendto`.
    pub(crate) fn sendto(
        &self,
        fd: Fd,
        buf: &[u8],
        flags: i32,
        addr: SocketAddr,
    ) -> Result<usize, Errno> {
        self.await_dad(fd, addr);
        self.send_inner(fd, buf, flags, Some(addr))
    }

    /// send(2) and sendto(2), every socket kind, in one lock and one lookup. TCP: a
    /// blocking send queues everything (waiting for room, transmitting as it goes)
    /// unless SO_SNDTIMEO passes, then returns what was queued; a non-blocking send
    /// queues what fits. Datagrams: one datagram or nothing.
    fn send_inner(
        &self,
        fd: Fd,
        buf: &[u8],
        flags: i32,
        dst: Option<SocketAddr>,
    ) -> Result<usize, Errno> {
        let mut sent = 0;
        let r = self.blocking(fd, flags, Dir::Write, Errno::EAGAIN, |st, key| {
            let State {
                iface,
                table,
                call_queued,
                ..
            } = st;
            let f = table.file_mut(key)?;
            let (h, raw) = match f.sock {
                Sock::Tcp(t) => return tcp_send(iface, f, t, buf, flags, &mut sent, call_queued),
                Sock::Udp(h) => (Some(h), None),
                Sock::Raw { h, .. } => (None, Some(h)),
            };
            if f.shut_wr {
                return Err(Errno::EPIPE);
            }
            let use_ = if raw.is_some() {
                Use::SendToRaw
            } else {
                Use::SendTo
            };
            let dst = match dst {
                Some(d) => Some(to_engine(f.opts.family, f.opts.v6only, d, use_)?),
                None => None,
            };
            // Linux: no source address for the destination's family is ENETUNREACH at
            // sendto, not a datagram silently dropped later.
            if dst.is_some_and(|d| d.is_ipv6() && !routable(iface, d.ip())) {
                return Err(Errno::ENETUNREACH);
            }
            let n = match (h, raw) {
                (Some(h), _) => {
                    if let Some(e) = f.error.take() {
                        return Err(e);
                    }
                    if dst.is_some_and(|d| d.port() == 0) {
                        return Err(Errno::EINVAL);
                    }
                    iface.udp().send_to(h, buf, dst)?
                }
                (None, Some(h)) => iface.raw().send_to(h, buf, dst.map(|d| d.ip()))?,
                (None, None) => return Err(Errno::EBADF),
            };
            *call_queued = true;
            Ok(n)
        });
        match r {
            Err(Errno::EAGAIN) if sent > 0 => Ok(sent),
            r => r,
        }
    }

    /// See `NetStack::recv`.
    pub(crate) fn recv(&self, fd: Fd, buf: &mut [u8], flags: i32) -> Result<usize, Errno> {
        self.recvfrom(fd, buf, flags).map(|(n, _)| n)
    }

    /// See `NetStack::recvfrom`: every socket kind, in one lock and one lookup.
    pub(crate) fn recvfrom(
        &self,
        fd: Fd,
        buf: &mut [u8],
        flags: i32,
    ) -> Result<(usize, SocketAddr), Errno> {
        let peek = flags & MSG_PEEK != 0;
        let trunc = flags & MSG_TRUNC != 0;
        let mut got = 0;
        let mut peer = None;
        let mut seen_family = IpFamily::V4;
        let r = self.blocking(fd, flags, Dir::Read, Errno::EAGAIN, |st, key| {
            let State {
                iface,
                table,
                call_queued,
                ..
            } = st;
            let f = table.file_mut(key)?;
            let family = f.opts.family;
            seen_family = family;
            let got_dgram = match &f.sock {
                Sock::Tcp(t) => {
                    let t = *t;
                    return tcp_recv(iface, f, t, buf, flags, &mut got, &mut peer, call_queued)
                        .map(|n| {
                            let p = peer.map_or_else(
                                || family::unspecified(family),
                                |p| to_user(family, p),
                            );
                            (n, p)
                        });
                }
                Sock::Udp(h) => match iface.udp().recv_from(*h, buf, peek) {
                    Ok((n, from)) => Ok((n, to_user(family, from))),
                    Err(udp::RecvError::WouldBlock) => Err(Errno::EAGAIN),
                    Err(e) => return Err(e.into()),
                },
                Sock::Raw { h, .. } => iface
                    .raw()
                    .recv_from(*h, buf, peek)
                    .map(|(n, ip)| (n, to_user(family, family::with_port0(ip))))
                    .map_err(Errno::from),
            };
            match got_dgram {
                Ok((n, from)) => Ok((if trunc { n } else { n.min(buf.len()) }, from)),
                // Data first, then a pending error, then end of file (Linux order).
                Err(Errno::EAGAIN) => match f.error.take() {
                    Some(e) => Err(e),
                    None if f.shut_rd => Ok((0, family::unspecified(family))),
                    None => Err(Errno::EAGAIN),
                },
                Err(e) => Err(e),
            }
        });
        match r {
            Err(Errno::EAGAIN) if got > 0 => Ok((
                got,
                peer.map_or_else(
                    || family::unspecified(seen_family),
                    |p| to_user(seen_family, p),
                ),
            )),
            r => r,
        }
    }

    /// See `NetStack::shutdown`.
    pub(crate) fn shutdown(&self, fd: Fd, how: i32) -> Result<(), Errno> {
        let (rd, wr) = match how {
            SHUT_RD => (true, false),
            SHUT_WR => (false, true),
            SHUT_RDWR => (true, true),
            _ => return Err(Errno::EINVAL),
        };
        let mut st = self.shared().lock();
        let key = st.table.key(fd)?;
        let State { iface, table, .. } = &mut *st;
        let f = table.file_mut(key)?;
        let connected = match &f.sock {
            Sock::Udp(h) => matches!(iface.udp().peer_addr(*h), Ok(Some(_))),
            Sock::Raw { remote, .. } => remote.is_some(),
            Sock::Tcp(t) => {
                let how = match (rd, wr) {
                    (true, true) => Shutdown::Both,
                    (true, false) => Shutdown::Read,
                    _ => Shutdown::Write,
                };
                // Linux: an unconnected TCP socket is not shut down at all.
                iface.tcp().shutdown(t.h, how)?;
                true
            }
        };
        f.shut_rd |= rd;
        f.shut_wr |= wr;
        st.notify(key);
        st.call_queued = true;
        st.flush(self.shared().now());
        drop(st);
        if connected {
            Ok(())
        } else {
            Err(Errno::ENOTCONN)
        }
    }

    /// See `NetStack::close`.
    pub(crate) fn close(&self, fd: Fd) -> Result<(), Errno> {
        self.linger_wait(fd);
        let mut st = self.shared().lock();
        let (key, file) = st.table.remove_fd(fd)?;
        match file {
            Some(file) => {
                st.forget_socket(&file.sock);
                for w in &file.epolls {
                    if let Some(set) = st.epolls.get_mut(&w.epoll) {
                        set.forget(w.fd);
                    }
                }
                st.wake_all(&file);
                let linger = file.opts.linger;
                let now = self.shared().now();
                // Datagrams sent before close must still leave (they did: every call
                // transmits what it queued); a TCP close queues its FIN or RST.
                match file.sock {
                    Sock::Tcp(t) => {
                        tcp::close(&mut st.iface, t, linger, now);
                        st.call_queued = true;
                    }
                    sock => close_sock(&mut st, sock, now),
                }
                st.flush(now);
            }
            None => {
                // Other descriptors remain: only forget this one in epolls.
                let f = st.table.file_mut(key)?;
                let gone: Vec<_> = f.epolls.iter().filter(|w| w.fd == fd).copied().collect();
                f.epolls.retain(|w| w.fd != fd);
                for w in gone {
                    if let Some(set) = st.epolls.get_mut(&w.epoll) {
                        set.forget(w.fd);
                    }
                }
                st.update_watched(key);
            }
        }
        drop(st);
        log::trace!(target: "ustack::socket", "close({fd})");
        Ok(())
    }

    /// SO_LINGER > 0 on the last descriptor of a blocking, connected TCP socket: FIN,
    /// then wait until it is acknowledged (FIN-WAIT-2, TIME-WAIT or CLOSED) or the
    /// linger time passes. The state change has no readiness of its own, so the wait
    /// re-checks every 5 ms.
    fn linger_wait(&self, fd: Fd) {
        use ustack::socket::tcp::TcpState as S;
        let mut st = self.shared().lock();
        let Ok(key) = st.table.key(fd) else { return };
        let Ok(f) = st.table.file(key) else { return };
        let (Sock::Tcp(t), Some(linger)) = (&f.sock, f.opts.linger) else {
            return;
        };
        if linger.is_zero() || f.nonblocking || f.refs > 1 {
            return;
        }
        let h = t.h;
        if !matches!(st.iface.tcp().state(h), Some(S::Established | S::CloseWait)) {
            return;
        }
        if st.iface.tcp().shutdown(h, Shutdown::Write).is_err() {
            return;
        }
        st.call_queued = true;
        st.flush(self.shared().now());
        let deadline = StdInstant::now() + linger;
        let cv = Condvar::new();
        loop {
            if matches!(
                st.iface.tcp().state(h),
                None | Some(S::FinWait2 | S::TimeWait | S::Closed)
            ) || st.dead
            {
                return;
            }
            let Ok(left) = remaining(Some(deadline)) else {
                log::debug!(target: "ustack::socket", "close({fd}): SO_LINGER passed with data unacknowledged");
                return;
            };
            st = wait_on(
                &cv,
                st,
                Some(left.unwrap_or_default().min(Duration::from_millis(5))),
            );
            // The acknowledgement may wait on a link nobody attends.
            if st.link_unattended() {
                st.caller_round(self.shared().now());
            }
        }
    }

    /// See `NetStack::dup`.
    pub(crate) fn dup(&self, fd: Fd) -> Result<Fd, Errno> {
        self.shared().lock().table.dup(fd)
    }

    /// See `NetStack::getsockname`.
    pub(crate) fn getsockname(&self, fd: Fd) -> Result<SocketAddr, Errno> {
        let mut st = self.shared().lock();
        let key = st.table.key(fd)?;
        let State { iface, table, .. } = &mut *st;
        let f = table.file(key)?;
        let family = f.opts.family;
        let local = match &f.sock {
            Sock::Udp(h) => iface.udp().local_addr(*h)?,
            // Linux reports a raw socket's protocol as its port, bound or not.
            Sock::Raw {
                protocol, local, ..
            } => Some(SocketAddr::new(
                local.unwrap_or_else(|| family::unspecified(family).ip()),
                u16::from(*protocol),
            )),
            Sock::Tcp(t) => iface.tcp().local_addr(t.h),
        };
        Ok(local.map_or_else(|| family::unspecified(family), |a| to_user(family, a)))
    }

    /// See `NetStack::getpeername`.
    pub(crate) fn getpeername(&self, fd: Fd) -> Result<SocketAddr, Errno> {
        let mut st = self.shared().lock();
        let key = st.table.key(fd)?;
        let State { iface, table, .. } = &mut *st;
        let f = table.file(key)?;
        let family = f.opts.family;
        match &f.sock {
            Sock::Udp(h) => iface.udp().peer_addr(*h)?,
            Sock::Raw { remote, .. } => remote.map(family::with_port0),
            Sock::Tcp(t) => {
                let tcp = iface.tcp();
                if tcp::has_peer(tcp.state(t.h)) {
                    tcp.peer_addr(t.h)
                } else {
                    None
                }
            }
        }
        .map(|a| to_user(family, a))
        .ok_or(Errno::ENOTCONN)
    }

    /// See `NetStack::setsockopt`.
    pub(crate) fn setsockopt(&self, fd: Fd, opt: SockOpt) -> Result<(), Errno> {
        let mut st = self.shared().lock();
        let key = st.table.key(fd)?;
        let cx = st.iface.tcp_context(self.shared().now());
        let State { iface, table, .. } = &mut *st;
        let f = table.file_mut(key)?;
        let is_tcp = matches!(f.sock, Sock::Tcp(_));
        if opt.name().is_tcp() && !is_tcp {
            return Err(Errno::ENOPROTOOPT);
        }
        // Linux: IPPROTO_IPV6 options on an AF_INET socket are ENOPROTOOPT.
        if opt.name().is_ipv6() && f.opts.family != IpFamily::V6 {
            return Err(Errno::ENOPROTOOPT);
        }
        // Validate, and apply to the engine's TCP socket first.
        match &opt {
            SockOpt::Ipv6TClass(n) | SockOpt::Ipv6UnicastHops(n) if !(-1..=255).contains(n) => {
                return Err(Errno::EINVAL)
            }
            // Linux: -1 (the default) or 1..=255.
            SockOpt::IpTtl(n) if *n != -1 && !(1..=255).contains(n) => return Err(Errno::EINVAL),
            SockOpt::Ipv6V6Only(b) => match f.sock {
                // The engine refuses once bound (Linux: EINVAL).
                Sock::Tcp(t) => iface.tcp().set_v6only(t.h, *b)?,
                Sock::Udp(h) => iface.udp().set_v6only(h, *b)?,
                Sock::Raw { .. } => {}
            },
            SockOpt::TcpKeepIdle(d) | SockOpt::TcpKeepIntvl(d)
                if !(Duration::from_secs(1)..=Duration::from_secs(32_767)).contains(d) =>
            {
                return Err(Errno::EINVAL)
            }
            SockOpt::TcpKeepCnt(n) if !(1..=127).contains(n) => return Err(Errno::EINVAL),
            // Linux: a negative budget is EINVAL.
            SockOpt::BusyPoll(n) if *n < 0 => return Err(Errno::EINVAL),
            _ => {}
        }
        if let Sock::Tcp(t) = f.sock {
            let tcp = iface.tcp();
            let o = &f.opts;
            match &opt {
                SockOpt::ReuseAddr(b) => tcp.set_reuse_addr(t.h, *b)?,
                SockOpt::KeepAlive(b) => tcp.set_keepalive(t.h, &cx, *b)?,
                SockOpt::Linger(d) => tcp.set_linger(t.h, d.map(to_stack))?,
                SockOpt::RcvBuf(n) if *n > 0 => tcp.set_recv_buffer_size(t.h, *n)?,
                SockOpt::SndBuf(n) if *n > 0 => tcp.set_send_buffer_size(t.h, *n)?,
                SockOpt::TcpNoDelay(b) => tcp.set_nodelay(t.h, *b)?,
                SockOpt::TcpCork(b) => tcp.set_cork(t.h, *b)?,
                SockOpt::TcpKeepIdle(d) => {
                    tcp.set_keepalive_params(t.h, to_stack(*d), to_stack(o.keepintvl), o.keepcnt)?
                }
                SockOpt::TcpKeepIntvl(d) => {
                    tcp.set_keepalive_params(t.h, to_stack(o.keepidle), to_stack(*d), o.keepcnt)?
                }
                SockOpt::TcpKeepCnt(n) => {
                    tcp.set_keepalive_params(t.h, to_stack(o.keepidle), to_stack(o.keepintvl), *n)?
                }
                SockOpt::TcpCongestion(name) => {
                    // Linux: an unknown algorithm is ENOENT.
                    let alg = CongestionAlgorithm::from_name(name).ok_or(Errno::ENOENT)?;
                    tcp.set_congestion(t.h, alg)?;
                }
                _ => {}
            }
        }
        let opt_name = opt.name();
        let nz = |d: Option<Duration>| d.filter(|d| !d.is_zero());
        match opt {
            SockOpt::ReuseAddr(b) => f.opts.reuseaddr = b,
            SockOpt::KeepAlive(b) => f.opts.keepalive = b,
            SockOpt::Linger(d) => f.opts.linger = d,
            SockOpt::RcvTimeo(d) => f.opts.rcvtimeo = nz(d),
            SockOpt::SndTimeo(d) => f.opts.sndtimeo = nz(d),
            SockOpt::RcvBuf(n) | SockOpt::SndBuf(n) if n == 0 => return Err(Errno::EINVAL),
            SockOpt::RcvBuf(n) => {
                f.opts.rcvbuf = n;
                if let Sock::Udp(h) = f.sock {
                    iface.udp().set_buffer_sizes(h, Some(n), None)?;
                }
            }
            SockOpt::SndBuf(n) => {
                f.opts.sndbuf = n;
                if let Sock::Udp(h) = f.sock {
                    iface.udp().set_buffer_sizes(h, None, Some(n))?;
                }
            }
            SockOpt::Error(_) | SockOpt::Type(_) | SockOpt::TcpInfo(_) => {
                return Err(Errno::ENOPROTOOPT)
            }
            SockOpt::TcpNoDelay(b) => f.opts.nodelay = b,
            SockOpt::TcpCork(b) => f.opts.cork = b,
            SockOpt::TcpKeepIdle(d) => f.opts.keepidle = d,
            SockOpt::TcpKeepIntvl(d) => f.opts.keepintvl = d,
            SockOpt::TcpKeepCnt(n) => f.opts.keepcnt = n,
            SockOpt::TcpCongestion(name) => f.opts.congestion = name,
            SockOpt::Ipv6V6Only(b) => f.opts.v6only = b,
            // -1 restores the default (Linux: traffic class 0, the route's hop limit).
            // A TCP socket's ECN bits are its own (Linux masks them for SOCK_STREAM).
            SockOpt::Ipv6TClass(n) => f.opts.tclass = n.max(0) & if is_tcp { !3 } else { !0 },
            SockOpt::Ipv6UnicastHops(n) => f.opts.unicast_hops = n,
            SockOpt::IpTtl(n) => f.opts.ttl = n,
            // Linux keeps the low byte.
            SockOpt::IpTos(n) => f.opts.tos = n & if is_tcp { 0xfc } else { 0xff },
            SockOpt::BusyPoll(n) => f.opts.busy_poll = n.unsigned_abs(),
        }
        if matches!(
            opt_name,
            SockOptName::IpTtl
                | SockOptName::IpTos
                | SockOptName::Ipv6TClass
                | SockOptName::Ipv6UnicastHops
        ) {
            apply_ip_tx(iface, f)?;
        }
        if opt_name == SockOptName::TcpCork && is_tcp {
            // Uncorking sends what waited from this thread, as a send would; corking
            // may have armed the cork ceiling.
            st.call_queued = true;
            st.flush(self.shared().now());
        }
        // A keep-alive or buffer change may move a timer.
        st.after_call();
        Ok(())
    }

    /// See `NetStack::getsockopt`.
    pub(crate) fn getsockopt(&self, fd: Fd, name: SockOptName) -> Result<SockOpt, Errno> {
        let mut st = self.shared().lock();
        let key = st.table.key(fd)?;
        let State { iface, table, .. } = &mut *st;
        let f = table.file_mut(key)?;
        if name.is_tcp() && !matches!(f.sock, Sock::Tcp(_)) {
            return Err(Errno::ENOPROTOOPT);
        }
        // Linux: getsockopt(IPPROTO_IPV6) on an AF_INET socket is EOPNOTSUPP.
        if name.is_ipv6() && f.opts.family != IpFamily::V6 {
            return Err(Errno::EOPNOTSUPP);
        }
        let o = &f.opts;
        Ok(match name {
            SockOptName::ReuseAddr => SockOpt::ReuseAddr(o.reuseaddr),
            SockOptName::KeepAlive => SockOpt::KeepAlive(o.keepalive),
            SockOptName::Linger => SockOpt::Linger(o.linger),
            SockOptName::RcvBuf => SockOpt::RcvBuf(o.rcvbuf),
            SockOptName::SndBuf => SockOpt::SndBuf(o.sndbuf),
            SockOptName::RcvTimeo => SockOpt::RcvTimeo(o.rcvtimeo),
            SockOptName::SndTimeo => SockOpt::SndTimeo(o.sndtimeo),
            SockOptName::Type => SockOpt::Type(match f.sock {
                Sock::Udp(_) => SOCK_DGRAM,
                Sock::Raw { .. } => SOCK_RAW,
                Sock::Tcp(_) => SOCK_STREAM,
            }),
            SockOptName::Error => {
                let pending = match &f.sock {
                    Sock::Udp(h) => iface.udp().take_error(*h)?.map(Errno::from),
                    Sock::Raw { .. } => None,
                    Sock::Tcp(t) => iface.tcp().take_error(t.h).map(Errno::from),
                };
                SockOpt::Error(f.error.take().or(pending))
            }
            SockOptName::TcpNoDelay => SockOpt::TcpNoDelay(match &f.sock {
                Sock::Tcp(t) => iface.tcp().nodelay(t.h).unwrap_or(o.nodelay),
                _ => o.nodelay,
            }),
            SockOptName::TcpCork => SockOpt::TcpCork(match &f.sock {
                Sock::Tcp(t) => iface.tcp().cork(t.h).unwrap_or(o.cork),
                _ => o.cork,
            }),
            SockOptName::TcpKeepIdle => SockOpt::TcpKeepIdle(o.keepidle),
            SockOptName::TcpKeepIntvl => SockOpt::TcpKeepIntvl(o.keepintvl),
            SockOptName::TcpKeepCnt => SockOpt::TcpKeepCnt(o.keepcnt),
            SockOptName::TcpCongestion => SockOpt::TcpCongestion(o.congestion.clone()),
            SockOptName::Ipv6V6Only => SockOpt::Ipv6V6Only(o.v6only),
            SockOptName::Ipv6TClass => SockOpt::Ipv6TClass(o.tclass),
            // Linux reports the default hop limit (64) for -1.
            SockOptName::Ipv6UnicastHops => SockOpt::Ipv6UnicastHops(if o.unicast_hops < 0 {
                i32::from(iface.config().ttl)
            } else {
                o.unicast_hops
            }),
            // Linux reports the default TTL (64) for -1.
            SockOptName::IpTtl => SockOpt::IpTtl(if o.ttl < 0 {
                i32::from(iface.config().ttl)
            } else {
                o.ttl
            }),
            SockOptName::IpTos => SockOpt::IpTos(o.tos),
            SockOptName::BusyPoll => SockOpt::BusyPoll(o.busy_poll.min(i32::MAX as u32) as i32),
            SockOptName::TcpInfo => match &f.sock {
                Sock::Tcp(t) => SockOpt::TcpInfo(iface.tcp().info(t.h).ok_or(Errno::EBADF)?),
                _ => return Err(Errno::ENOPROTOOPT),
            },
        })
    }

    /// See `NetStack::set_nonblocking`.
    pub(crate) fn set_nonblocking(&self, fd: Fd, nonblocking: bool) -> Result<(), Errno> {
        let mut st = self.shared().lock();
        let key = st.table.key(fd)?;
        st.table.file_mut(key)?.nonblocking = nonblocking;
        Ok(())
    }

    /// See `NetStack::is_nonblocking`.
    pub(crate) fn is_nonblocking(&self, fd: Fd) -> Result<bool, Errno> {
        let st = self.shared().lock();
        Ok(st.table.file(st.table.key(fd)?)?.nonblocking)
    }

    /// See `NetStack::bytes_readable`.
    pub(crate) fn bytes_readable(&self, fd: Fd) -> Result<usize, Errno> {
        let mut st = self.shared().lock();
        let key = st.table.key(fd)?;
        let State { iface, table, .. } = &mut *st;
        Ok(match &table.file(key)?.sock {
            Sock::Udp(h) => iface.udp().peek_len(*h)?.unwrap_or(0),
            Sock::Raw { .. } => 0,
            Sock::Tcp(t) => iface.tcp().info(t.h).map_or(0, |i| i.recv_queue),
        })
    }
}

/// One entry of a [`NetStack::poll`](crate::NetStack::poll) call, as `struct pollfd` (poll(2)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollFd {
    /// The descriptor; negative entries are ignored (revents 0), as on Linux.
    pub fd: Fd,
    /// What the caller waits for (POLLERR and POLLHUP are always reported).
    pub events: PollEvents,
    /// What is ready, filled in by `poll`.
    pub revents: PollEvents,
}

impl PollFd {
    /// Waits for `events` on `fd`.
    pub fn new(fd: Fd, events: PollEvents) -> PollFd {
        PollFd {
            fd,
            events,
            revents: PollEvents::empty(),
        }
    }
}

impl Calls<'_> {
    /// See `NetStack::busy_poll_wait`.
    pub(crate) fn busy_poll_wait(
        &self,
        fd: Fd,
        events: PollEvents,
        budget: Duration,
    ) -> Result<bool, Errno> {
        let end = StdInstant::now() + budget;
        let cv = thread_cv();
        let mut leading = false;
        let mut st = self.shared().lock();
        let key = st.table.key(fd)?;
        add_waiter(&mut st, key, &cv, events);
        let r = loop {
            if st.dead {
                break Err(Errno::EIO);
            }
            let State { iface, table, .. } = &mut *st;
            match table.file_mut(key) {
                Ok(f) => {
                    if readiness(iface, f).intersects(events | ALWAYS) {
                        break Ok(true);
                    }
                }
                Err(e) => break Err(e),
            }
            if StdInstant::now() >= end || !may_busy_poll(&st, leading) {
                break Ok(false);
            }
            let (g, more) = busy_poll(self.shared(), st, &cv, end, &mut leading);
            st = g;
            if !more {
                break Ok(false);
            }
        };
        remove_waiter(&mut st, key, &cv);
        if leading {
            step_down(&mut st, &mut leading);
            if st.external_waiters {
                // The caller goes on to sleep in the kernel and never leads: the driver
                // takes the link back now, not at its next look.
                st.wake_driver();
            }
        }
        r
    }

    /// See `NetStack::poll`. Allocates only when it has to wait.
    pub(crate) fn poll(
        &self,
        fds: &mut [PollFd],
        timeout: Option<Duration>,
    ) -> Result<usize, Errno> {
        let deadline = timeout.map(|t| StdInstant::now() + t);
        let cv = thread_cv();
        let mut keys = Vec::new();
        let mut leading = false;
        let mut polled = false;
        // Busy polling (SO_BUSY_POLL): the largest budget of the descriptors polled,
        // once per call, from its first wait.
        let mut busy_end: Option<Option<StdInstant>> = None;
        let mut st = self.shared().lock();
        let r = loop {
            if st.dead {
                break Err(Errno::EIO);
            }
            let mut n = 0;
            for p in fds.iter_mut() {
                p.revents = PollEvents::empty();
                if p.fd < 0 {
                    continue;
                }
                match st.table.key(p.fd) {
                    Err(_) => p.revents = PollEvents::POLLNVAL,
                    Ok(k) => {
                        let State { iface, table, .. } = &mut *st;
                        if let Ok(f) = table.file_mut(k) {
                            p.revents = readiness(iface, f) & (p.events | ALWAYS);
                        }
                    }
                }
                if !p.revents.is_empty() {
                    n += 1;
                }
            }
            if n > 0 {
                break Ok(n);
            }
            let left = match remaining(deadline) {
                Ok(left) if left.is_some_and(|l| l.is_zero()) => None,
                Ok(left) => Some(left),
                Err(()) => None,
            };
            let Some(left) = left else {
                if !polled && st.link_unattended() {
                    // Frames may wait on a link nobody polls: look once.
                    polled = true;
                    st.caller_round(self.shared().now());
                    continue;
                }
                break Ok(0);
            };
            keys.clear();
            for p in fds.iter() {
                if let Ok(k) = st.table.key(p.fd) {
                    if p.fd >= 0 {
                        keys.push((k, p.events));
                    }
                }
            }
            for &(k, mask) in &keys {
                add_waiter(&mut st, k, &cv, mask);
            }
            let end = *busy_end.get_or_insert_with(|| {
                let busy = keys
                    .iter()
                    .filter_map(|&(k, _)| st.table.file(k).ok())
                    .map(|f| f.opts.busy_poll)
                    .max()
                    .unwrap_or(0);
                (busy > 0).then(|| StdInstant::now() + Duration::from_micros(busy.into()))
            });
            let spin = end
                .map(|end| deadline.map_or(end, |d| d.min(end)))
                .filter(|&end| StdInstant::now() < end && may_busy_poll(&st, leading));
            st = match spin {
                Some(end) => {
                    let (g, more) = busy_poll(self.shared(), st, &cv, end, &mut leading);
                    if !more {
                        busy_end = Some(None);
                    }
                    g
                }
                None => wait_ready(self.shared(), st, &cv, left, &mut leading),
            };
            for &(k, _) in &keys {
                remove_waiter(&mut st, k, &cv);
            }
        };
        step_down(&mut st, &mut leading);
        r
    }
}
