//! The calls, with the C library's semantics: each takes the raw C arguments, sends a
//! kernel descriptor to the C library (`crate::real`), a ustack socket to the stack,
//! and returns what the C function would (setting `errno`). The interposed names
//! (`crate::interpose`) and the C ABI (`crate::capi`) both call these.
//!
//! Sockets are non-blocking in the stack; a blocking call here tries the operation,
//! and on EAGAIN waits in the kernel (`crate::wake`) for the socket to become ready,
//! so a signal interrupts it with EINTR. SO_RCVTIMEO/SO_SNDTIMEO bound the wait.

#![allow(clippy::missing_safety_doc)]

use crate::addr::{self, Parsed};
use crate::table::{lookup, process, set_slot, EpollInfo, Slot, UFile, Watch};
use crate::wake::{self, UWait, WakeFd};
use crate::{errno, real, set_errno};
use core::net::SocketAddr;
use libc::{
    c_int, c_uint, c_ulong, c_void, iovec, msghdr, nfds_t, pollfd, size_t, sockaddr, socklen_t,
    ssize_t,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ustack_socket::env::StackEnv;
use ustack_socket::link::Device;
use ustack_socket::{Errno, NetStack, PollEvents, PollFd, SockOpt, SockOptName};

/// Flags the stack understands; others (MSG_CMSG_CLOEXEC, ...) are dropped.
const KNOWN_MSG_FLAGS: c_int = libc::MSG_PEEK
    | libc::MSG_DONTWAIT
    | libc::MSG_WAITALL
    | libc::MSG_TRUNC
    | libc::MSG_NOSIGNAL
    | libc::MSG_MORE;

/// What makes a socket's eventfd readable (`crate::table::Level`).
const READABLE: PollEvents =
    PollEvents::from_bits((libc::POLLIN | libc::POLLERR | libc::POLLHUP | libc::POLLRDHUP) as u32);

/// Re-reads a socket's readiness into its eventfd and its edges, after a call consumed
/// `bits` (POLLIN: read all there was; POLLOUT: filled the send buffer): the notifier
/// only reports what the stack changed, not what the program took.
pub(crate) fn refresh_level(f: &UFile, bits: PollEvents) {
    let reports = f.edges.consumed(bits.bits());
    let all = PollEvents::POLLIN | PollEvents::POLLOUT | PollEvents::POLLRDHUP;
    let mut p = [PollFd::new(f.sfd, all)];
    if f.stack.poll(&mut p, Some(Duration::ZERO)).is_ok() {
        // Not taken in if the notifier reported since `consumed`: it saw every change
        // the stack made, and our reading, made outside the stack lock, may predate its
        // last report.
        let ready = p[0].revents;
        f.edges.observe_since(reports, ready.bits(), || {
            f.level.set(ready.intersects(READABLE))
        });
    }
}

/// The data an epoll instance's wake-up eventfd is registered with in the kernel.
pub const WAKE_TOKEN: u64 = u64::MAX - 0x7573;

fn fail<T: From<i8>>(e: c_int) -> T {
    set_errno(e);
    T::from(-1)
}

fn done(r: Result<c_int, c_int>) -> c_int {
    r.unwrap_or_else(fail)
}

fn done_len(r: Result<usize, c_int>) -> ssize_t {
    match r {
        Ok(n) => n as ssize_t,
        Err(e) => fail(e),
    }
}

fn raw(e: Errno) -> c_int {
    e.raw()
}

/// One line on stderr (the library's only output).
fn say(msg: &str) {
    let line = format!("ustack preload: {msg}\n");
    // SAFETY: a live buffer and its length.
    unsafe { real::write(2, line.as_ptr().cast(), line.len()) };
}

// ---------------------------------------------------------------------------------
// The stack.

/// The process's stack, attached to its link by the first AF_INET/AF_INET6 socket.
fn stack() -> Result<NetStack, c_int> {
    let p = process();
    let mut g = p.stack.lock().unwrap_or_else(|e| e.into_inner());
    match &*g {
        Some(Ok(s)) => return Ok(s.clone()),
        Some(Err(e)) => return Err(*e),
        None => {}
    }
    let r = match attach() {
        Ok(s) => {
            if let Err(e) = crate::observe::attach(&s) {
                say(&format!("trace: {e}"));
            }
            // SAFETY: registering a plain function.
            unsafe { libc::atexit(at_exit) };
            Ok(s)
        }
        Err((e, msg)) => {
            say(&format!(
                "{msg}; AF_INET/AF_INET6 sockets fail with errno {e}"
            ));
            Err(e)
        }
    };
    *g = Some(r.clone());
    r
}

fn attach() -> Result<NetStack, (c_int, String)> {
    let env = StackEnv::from_env().map_err(|m| (libc::EINVAL, m))?;
    let ip = env.ip.ok_or((
        libc::ENETDOWN,
        "USTACK_IP is not set (start the program with `ustack run`)".to_owned(),
    ))?;
    let (device, name) =
        match (&env.tap, &env.raw) {
            (Some(t), _) => (Device::Tap(t.clone()), format!("TAP {t}")),
            (None, Some(r)) => (Device::Raw(r.clone()), format!("interface {r}")),
            (None, None) => return Err((
                libc::ENETDOWN,
                "neither USTACK_TAP nor USTACK_RAW is set (start the program with `ustack run`)"
                    .to_owned(),
            )),
        };
    let mut b = NetStack::builder()
        .device(device)
        .ip(ip)
        .mac(
            env.mac
                .unwrap_or_else(|| ustack_socket::link::mac_from_seed(env.link.seed)),
        )
        .link_options(env.link.clone());
    let seed = env.link.seed;
    b = b.config(move |c| c.seed = seed);
    if let Some(g) = env.gateway {
        b = b.gateway(g);
    }
    b = b.ipv6(!env.no_ipv6);
    for c in &env.ip6 {
        b = b.ip6(*c);
    }
    if let Some(g) = env.gateway6 {
        b = b.gateway6(g);
    }
    if let Some(m) = env.mtu {
        b = b.mtu(m);
    }
    if let Some(us) = env.busy_poll {
        b = b.busy_poll(Duration::from_micros(us.into()));
    }
    b.build().map_err(|e| {
        (
            e.raw_os_error().unwrap_or(libc::EIO),
            format!("cannot attach to {name}: {e}"),
        )
    })
}

/// How long the exit handler waits for closed connections to deliver what they still
/// had to send.
pub const EXIT_DRAIN: Duration = Duration::from_secs(2);

/// At exit: close every socket, let closed connections finish sending (up to
/// [`EXIT_DRAIN`]) and stop the stack, so the peers get their data and the recording is
/// complete.
extern "C" fn at_exit() {
    let p = process();
    let files = p.take_all();
    p.epolls.lock().unwrap_or_else(|e| e.into_inner()).clear();
    drop(files);
    let s = p.stack.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(Ok(s)) = &s {
        drain_closed(s, EXIT_DRAIN);
        crate::observe::finish(s);
    }
    drop(s);
}

/// Waits until no connection still has its FIN (and so its data) unacknowledged, or
/// `limit` passes; returns whether they all finished. A program's `close` returns at
/// once and Linux's kernel keeps sending after the process exits; this stack exits
/// with the process, and stopping it sends once and drops the rest, so an echo server
/// that wrote its last reply and exited left the reply's tail unsent.
pub fn drain_closed(stack: &NetStack, limit: Duration) -> bool {
    use ustack::socket::tcp::TcpState;
    let end = Instant::now() + limit;
    loop {
        // Each look runs a round too, so this thread drives the link as well.
        let busy = stack.with_interface(|iface, _| {
            iface.tcp().sockets().any(|t| {
                matches!(
                    t.info.state,
                    TcpState::FinWait1 | TcpState::Closing | TcpState::LastAck
                )
            })
        });
        if !busy {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Makes `sfd` (a new socket of `stack`) visible as a fresh kernel descriptor.
fn install(
    stack: NetStack,
    sfd: ustack_socket::Fd,
    v6: bool,
    ty: c_int,
    proto: c_int,
    flags: c_int,
) -> Result<c_int, c_int> {
    let efd_flags = if flags & libc::SOCK_CLOEXEC != 0 {
        libc::EFD_CLOEXEC
    } else {
        0
    };
    // SAFETY: eventfd takes no pointers.
    let efd = unsafe { libc::eventfd(0, efd_flags) };
    if efd < 0 {
        let e = errno();
        let _ = stack.close(sfd);
        return Err(e);
    }
    let edges = Arc::new(crate::table::Edges::default());
    let level = Arc::new(crate::table::Level::new(efd));
    let file = Arc::new(UFile {
        stack: stack.clone(),
        sfd,
        v6,
        ty,
        proto,
        nonblocking: AtomicBool::new(flags & libc::SOCK_NONBLOCK != 0),
        listening: AtomicBool::new(false),
        edges: edges.clone(),
        timeouts: Mutex::new((None, None)),
        used: AtomicBool::new(false),
        options: Mutex::new(Vec::new()),
        level: level.clone(),
    });
    let wakers = process().wakers.clone();
    let _ = stack.set_ready_notifier(sfd, Some(ready_notifier(level, edges, wakers)));
    drop(process().set(efd, Slot::Sock(file)));
    Ok(efd)
}

/// The stack's readiness notifier for one socket: mirrors readability on its eventfd,
/// counts its edges and wakes every waiting thread and epoll instance.
pub(crate) fn ready_notifier(
    level: Arc<crate::table::Level>,
    edges: Arc<crate::table::Edges>,
    wakers: Arc<crate::wake::Wakers>,
) -> ustack_socket::notifier::ReadyNotifier {
    Arc::new(move |ready| {
        edges.observe(ready.bits(), || level.set(ready.intersects(READABLE)));
        wakers.wake_all();
    })
}

/// Runs `op` until it does not say EAGAIN, waiting for `events` between tries unless
/// `dontwait`; EAGAIN once `timeout` passes, EINTR if a signal arrives.
fn blocking<T>(
    f: &Arc<UFile>,
    events: PollEvents,
    dontwait: bool,
    timeout: Option<Duration>,
    mut op: impl FnMut() -> Result<T, Errno>,
) -> Result<T, c_int> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut spun = false;
    loop {
        let r = op();
        if matches!(r, Err(Errno::EAGAIN)) {
            refresh_level(f, events);
        }
        if !dontwait && !spun && matches!(r, Err(Errno::EAGAIN)) {
            // SO_BUSY_POLL: a receive or accept spins on the link (once per call, within
            // its timeout) before it sleeps in the kernel.
            spun = true;
            if events.contains(PollEvents::POLLIN) && busy_poll(f, events, deadline) {
                continue;
            }
        }
        match r {
            Err(Errno::EAGAIN) if !dontwait => match wake::wait_one(f, events, deadline) {
                Ok(true) => {}
                Ok(false) => return Err(libc::EAGAIN),
                Err(libc::EINTR) if timeout.is_none() && wake::restart_after_signal() => {}
                Err(e) => return Err(e),
            },
            r => return r.map_err(raw),
        }
    }
}

/// Spins for the socket's SO_BUSY_POLL budget (none: at once false), at most until
/// `deadline`; true if it became ready for `events` meanwhile.
fn busy_poll(f: &Arc<UFile>, events: PollEvents, deadline: Option<Instant>) -> bool {
    let Ok(SockOpt::BusyPoll(us)) = f.stack.getsockopt(f.sfd, SockOptName::BusyPoll) else {
        return false;
    };
    let Ok(us) = u64::try_from(us) else {
        return false;
    };
    if us == 0 {
        return false;
    }
    let mut budget = Duration::from_micros(us);
    if let Some(d) = deadline {
        budget = budget.min(d.saturating_duration_since(Instant::now()));
    }
    f.stack
        .busy_poll_wait(f.sfd, events, budget)
        .unwrap_or(false)
}

/// Moves a socket that has not been used yet to the kernel, under the same number: the
/// program bound or connected it to a loopback address, which only the kernel has. A
/// kernel socket of the same family, type and protocol gets the options set so far
/// and O_NONBLOCK, and replaces the eventfd at `fd` (dup3, keeping FD_CLOEXEC); the
/// ustack socket is closed. Refused (`None`) once the socket was used or is `dup`ed.
fn to_kernel(fd: c_int, f: &Arc<UFile>) -> Option<()> {
    // The table's reference and ours: no other number names it.
    if f.used.load(Ordering::Acquire) || Arc::strong_count(f) > 2 {
        return None;
    }
    let domain = if f.v6 { libc::AF_INET6 } else { libc::AF_INET };
    let ty = f.ty
        | if f.nonblocking() {
            libc::SOCK_NONBLOCK
        } else {
            0
        };
    // SAFETY: raw calls on a descriptor we create; option values are the bytes the
    // program gave, with their length.
    unsafe {
        let k = real::socket(domain, ty, f.proto);
        if k < 0 {
            return None;
        }
        for (level, name, val) in f.options.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            real::setsockopt(
                k,
                *level,
                *name,
                val.as_ptr().cast(),
                val.len() as socklen_t,
            );
        }
        let cloexec = real::fcntl(fd, libc::F_GETFD, 0) & libc::FD_CLOEXEC != 0;
        let flags = if cloexec { libc::O_CLOEXEC } else { 0 };
        let old = process().with_locked(|slots| {
            if real::dup3(k, fd, flags) < 0 {
                return None;
            }
            Some(set_slot(slots, fd, Slot::Kernel))
        });
        real::close(k);
        drop(old?);
    }
    Some(())
}

fn rcvtimeo(f: &UFile) -> Option<Duration> {
    f.timeouts.lock().unwrap_or_else(|e| e.into_inner()).0
}

fn sndtimeo(f: &UFile) -> Option<Duration> {
    f.timeouts.lock().unwrap_or_else(|e| e.into_inner()).1
}

/// What a call on `fd` acts on: the kernel's descriptor, or a ustack socket.
enum Target {
    Kernel,
    Sock(Arc<UFile>),
}

fn target(fd: c_int) -> Result<Target, c_int> {
    match lookup(fd) {
        Slot::Kernel => Ok(Target::Kernel),
        Slot::Sock(f) => Ok(Target::Sock(f)),
        Slot::Dead => Err(libc::EBADF),
    }
}

macro_rules! on_sock {
    ($fd:expr, $kernel:expr, |$f:ident| $body:expr) => {
        match target($fd) {
            Ok(Target::Kernel) => $kernel,
            Ok(Target::Sock($f)) => $body,
            Err(e) => fail(e),
        }
    };
}

// ---------------------------------------------------------------------------------
// Sockets.

/// socket(2).
pub unsafe fn socket(domain: c_int, ty: c_int, proto: c_int) -> c_int {
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        // SAFETY: forwarded unchanged.
        return unsafe { real::socket(domain, ty, proto) };
    }
    let flags = ty & (libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    let base = ty & !flags;
    done((|| {
        let stack = stack()?;
        let sfd = stack
            .socket(domain, base | libc::SOCK_NONBLOCK, proto)
            .map_err(raw)?;
        install(stack, sfd, domain == libc::AF_INET6, base, proto, flags)
    })())
}

/// bind(2).
pub unsafe fn bind(fd: c_int, a: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: forwarded unchanged.
    on_sock!(fd, unsafe { real::bind(fd, a, len) }, |f| done((|| {
        // SAFETY: the caller's address and length.
        if unsafe { addr::is_loopback(a, len) } && to_kernel(fd, &f).is_some() {
            // SAFETY: now a kernel socket at the same number.
            let r = unsafe { real::bind(fd, a, len) };
            return if r < 0 { Err(errno()) } else { Ok(0) };
        }
        f.used.store(true, Ordering::Release);
        // SAFETY: the caller's address and length.
        match unsafe { addr::read(a, len) }? {
            Parsed::Addr(sa) => {
                f.stack.bind(f.sfd, sa).map_err(raw)?;
                Ok(0)
            }
            Parsed::Unspec => Err(libc::EAFNOSUPPORT),
        }
    })()))
}

/// listen(2).
pub unsafe fn listen(fd: c_int, backlog: c_int) -> c_int {
    // SAFETY: forwarded unchanged.
    on_sock!(fd, unsafe { real::listen(fd, backlog) }, |f| {
        f.used.store(true, Ordering::Release);
        done(f.stack.listen(f.sfd, backlog).map_err(raw).map(|()| {
            f.listening.store(true, Ordering::Relaxed);
            0
        }))
    })
}

/// accept4(2) (accept(2) is flags 0).
pub unsafe fn accept4(fd: c_int, a: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int {
    // SAFETY: forwarded unchanged.
    on_sock!(fd, unsafe { real::accept4(fd, a, len, flags) }, |f| done(
        (|| {
            if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
                return Err(libc::EINVAL);
            }
            let (sfd, peer) = blocking(
                &f,
                PollEvents::POLLIN,
                f.nonblocking(),
                rcvtimeo(&f),
                || f.stack.accept(f.sfd),
            )?;
            let _ = f.stack.set_nonblocking(sfd, true);
            let nfd = install(f.stack.clone(), sfd, f.v6, f.ty, f.proto, flags)?;
            // SAFETY: the caller's buffer and length.
            unsafe { addr::write(peer, f.v6, a, len) };
            Ok(nfd)
        })()
    ))
}

/// connect(2).
pub unsafe fn connect(fd: c_int, a: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: forwarded unchanged.
    on_sock!(fd, unsafe { real::connect(fd, a, len) }, |f| done((|| {
        // SAFETY: the caller's address and length.
        if unsafe { addr::is_loopback(a, len) } && to_kernel(fd, &f).is_some() {
            // SAFETY: now a kernel socket at the same number.
            let r = unsafe { real::connect(fd, a, len) };
            return if r < 0 { Err(errno()) } else { Ok(0) };
        }
        f.used.store(true, Ordering::Release);
        // SAFETY: the caller's address and length.
        let sa = match unsafe { addr::read(a, len) }? {
            Parsed::Addr(sa) => sa,
            Parsed::Unspec => return Err(libc::EAFNOSUPPORT),
        };
        match f.stack.connect(f.sfd, sa) {
            Ok(()) => Ok(0),
            Err(Errno::EINPROGRESS) if !f.nonblocking() => {
                let deadline = sndtimeo(&f).map(|t| Instant::now() + t);
                loop {
                    match wake::wait_one(&f, PollEvents::POLLOUT, deadline) {
                        Ok(true) => break,
                        Ok(false) => return Err(libc::EINPROGRESS),
                        Err(libc::EINTR) if deadline.is_none() && wake::restart_after_signal() => {}
                        Err(e) => return Err(e),
                    }
                }
                match f.stack.getsockopt(f.sfd, SockOptName::Error) {
                    Ok(SockOpt::Error(Some(e))) => Err(e.raw()),
                    _ => Ok(0),
                }
            }
            Err(e) => Err(e.raw()),
        }
    })()))
}

/// getsockname(2).
pub unsafe fn getsockname(fd: c_int, a: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: forwarded unchanged.
    on_sock!(fd, unsafe { real::getsockname(fd, a, len) }, |f| done(
        f.stack.getsockname(f.sfd).map_err(raw).map(|sa| {
            // SAFETY: the caller's buffer and length.
            unsafe { addr::write(sa, f.v6, a, len) };
            0
        })
    ))
}

/// getpeername(2).
pub unsafe fn getpeername(fd: c_int, a: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: forwarded unchanged.
    on_sock!(fd, unsafe { real::getpeername(fd, a, len) }, |f| done(
        f.stack.getpeername(f.sfd).map_err(raw).map(|sa| {
            // SAFETY: the caller's buffer and length.
            unsafe { addr::write(sa, f.v6, a, len) };
            0
        })
    ))
}

/// shutdown(2).
pub unsafe fn shutdown(fd: c_int, how: c_int) -> c_int {
    // SAFETY: forwarded unchanged.
    on_sock!(fd, unsafe { real::shutdown(fd, how) }, |f| {
        let r = f.stack.shutdown(f.sfd, how).map_err(raw).map(|()| 0);
        process().wakers.wake_all();
        done(r)
    })
}

// ---------------------------------------------------------------------------------
// Data.

/// Sends `buf` (to `to` if given): all of it on a blocking stream socket, as Linux.
fn send_on(
    f: &Arc<UFile>,
    buf: &[u8],
    flags: c_int,
    to: Option<SocketAddr>,
) -> Result<usize, c_int> {
    f.used.store(true, Ordering::Release);
    let dontwait = flags & libc::MSG_DONTWAIT != 0 || f.nonblocking();
    let stream = f.ty == libc::SOCK_STREAM;
    let deadline = sndtimeo(f).map(|t| Instant::now() + t);
    let sflags = flags & KNOWN_MSG_FLAGS;
    let mut sent = 0;
    loop {
        let r = match to {
            Some(a) if !stream => f.stack.sendto(f.sfd, &buf[sent..], sflags, a),
            _ => f.stack.send(f.sfd, &buf[sent..], sflags),
        };
        if matches!(r, Err(Errno::EAGAIN)) {
            // Full: room appearing later must be an edge.
            refresh_level(f, PollEvents::POLLOUT);
        }
        match r {
            Ok(n) => {
                if n < buf.len() - sent {
                    // A short write: the buffer is full.
                    refresh_level(f, PollEvents::POLLOUT);
                }
                sent += n;
                if !stream || sent >= buf.len() || dontwait {
                    return Ok(sent);
                }
            }
            Err(Errno::EAGAIN) if !dontwait => {
                match wake::wait_one(f, PollEvents::POLLOUT, deadline) {
                    Ok(true) => {}
                    Ok(false) if sent > 0 => return Ok(sent),
                    Ok(false) => return Err(libc::EAGAIN),
                    Err(libc::EINTR) if deadline.is_none() && wake::restart_after_signal() => {}
                    Err(_) if sent > 0 => return Ok(sent),
                    Err(e) => return Err(e),
                }
            }
            Err(_) if sent > 0 => return Ok(sent),
            Err(e) => {
                if e == Errno::EPIPE && stream && flags & libc::MSG_NOSIGNAL == 0 {
                    // SAFETY: raise has no memory preconditions.
                    unsafe { libc::raise(libc::SIGPIPE) };
                }
                return Err(e.raw());
            }
        }
    }
}

/// Receives into `buf`, with the sender; MSG_WAITALL fills it on a stream socket.
fn recv_on(
    f: &Arc<UFile>,
    buf: &mut [u8],
    flags: c_int,
    want_from: bool,
) -> Result<(usize, Option<SocketAddr>), c_int> {
    let dontwait = flags & libc::MSG_DONTWAIT != 0 || f.nonblocking();
    let stream = f.ty == libc::SOCK_STREAM;
    let waitall = stream && flags & libc::MSG_WAITALL != 0 && flags & libc::MSG_PEEK == 0;
    let rflags = flags & KNOWN_MSG_FLAGS & !libc::MSG_WAITALL;
    let deadline = rcvtimeo(f).map(|t| Instant::now() + t);
    let mut got = 0;
    let mut from = None;
    loop {
        let r = if want_from && !stream {
            f.stack
                .recvfrom(f.sfd, &mut buf[got..], rflags)
                .map(|(n, a)| (n, Some(a)))
        } else {
            f.stack
                .recv(f.sfd, &mut buf[got..], rflags)
                .map(|n| (n, None))
        };
        if matches!(r, Err(Errno::EAGAIN)) {
            refresh_level(f, PollEvents::POLLIN);
        }
        match r {
            Ok((n, a)) => {
                let asked = buf.len() - got;
                from = a.or(from);
                got += n;
                if n < asked && flags & libc::MSG_PEEK == 0 {
                    // Probably drained: the next data must be an edge.
                    refresh_level(f, PollEvents::POLLIN);
                }
                if n == 0 || !waitall || got >= buf.len() {
                    break;
                }
            }
            Err(Errno::EAGAIN) if !dontwait => {
                match wake::wait_one(f, PollEvents::POLLIN, deadline) {
                    Ok(true) => {}
                    Ok(false) if got > 0 => break,
                    Ok(false) => return Err(libc::EAGAIN),
                    Err(libc::EINTR) if deadline.is_none() && wake::restart_after_signal() => {}
                    Err(_) if got > 0 => break,
                    Err(e) => return Err(e),
                }
            }
            Err(_) if got > 0 => break,
            Err(e) => return Err(e.raw()),
        }
    }
    if want_from && stream && from.is_none() {
        from = f.stack.getpeername(f.sfd).ok();
    }
    Ok((got, from))
}

/// # Safety
/// `buf` is null with `len` 0, or points to `len` readable bytes.
unsafe fn slice<'a>(buf: *const c_void, len: size_t) -> &'a [u8] {
    if len == 0 || buf.is_null() {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { core::slice::from_raw_parts(buf.cast(), len) }
}

/// # Safety
/// `buf` is null with `len` 0, or points to `len` writable bytes.
unsafe fn slice_mut<'a>(buf: *mut c_void, len: size_t) -> &'a mut [u8] {
    if len == 0 || buf.is_null() {
        return &mut [];
    }
    // SAFETY: the caller's contract.
    unsafe { core::slice::from_raw_parts_mut(buf.cast(), len) }
}

/// sendto(2) (send(2) with no address).
pub unsafe fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    a: *const sockaddr,
    alen: socklen_t,
) -> ssize_t {
    // SAFETY: forwarded unchanged.
    on_sock!(
        fd,
        unsafe { real::sendto(fd, buf, len, flags, a, alen) },
        |f| done_len((|| {
            let to = if a.is_null() {
                None
            } else {
                // SAFETY: the caller's address and length.
                match unsafe { addr::read(a, alen) }? {
                    Parsed::Addr(sa) => Some(sa),
                    Parsed::Unspec => return Err(libc::EAFNOSUPPORT),
                }
            };
            // SAFETY: the caller's buffer.
            send_on(&f, unsafe { slice(buf, len) }, flags, to)
        })())
    )
}

/// send(2).
pub unsafe fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t {
    // SAFETY: forwarded unchanged.
    on_sock!(
        fd,
        unsafe { real::send(fd, buf, len, flags) },
        |f| done_len(
            // SAFETY: the caller's buffer.
            send_on(&f, unsafe { slice(buf, len) }, flags, None)
        )
    )
}

/// write(2).
pub unsafe fn write(fd: c_int, buf: *const c_void, len: size_t) -> ssize_t {
    // SAFETY: forwarded unchanged.
    on_sock!(fd, unsafe { real::write(fd, buf, len) }, |f| done_len(
        // SAFETY: the caller's buffer.
        send_on(&f, unsafe { slice(buf, len) }, 0, None)
    ))
}

/// recvfrom(2).
pub unsafe fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    a: *mut sockaddr,
    alen: *mut socklen_t,
) -> ssize_t {
    // SAFETY: forwarded unchanged.
    on_sock!(
        fd,
        unsafe { real::recvfrom(fd, buf, len, flags, a, alen) },
        |f| done_len((|| {
            // SAFETY: the caller's buffer.
            let (n, from) = recv_on(&f, unsafe { slice_mut(buf, len) }, flags, !a.is_null())?;
            if let Some(from) = from {
                // SAFETY: the caller's address buffer and length.
                unsafe { addr::write(from, f.v6, a, alen) };
            }
            Ok(n)
        })())
    )
}

/// recv(2).
pub unsafe fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t {
    // SAFETY: forwarded unchanged.
    on_sock!(
        fd,
        unsafe { real::recv(fd, buf, len, flags) },
        |f| done_len(
            // SAFETY: the caller's buffer.
            recv_on(&f, unsafe { slice_mut(buf, len) }, flags, false).map(|r| r.0)
        )
    )
}

/// read(2).
pub unsafe fn read(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t {
    // SAFETY: forwarded unchanged.
    on_sock!(fd, unsafe { real::read(fd, buf, len) }, |f| done_len(
        // SAFETY: the caller's buffer.
        recv_on(&f, unsafe { slice_mut(buf, len) }, 0, false).map(|r| r.0)
    ))
}

/// The iovecs of a call as slices.
///
/// # Safety
/// `iov` points to `n` valid iovecs (or `n` is 0).
unsafe fn iovecs<'a>(iov: *const iovec, n: usize) -> &'a [iovec] {
    if n == 0 || iov.is_null() {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { core::slice::from_raw_parts(iov, n) }
}

/// The bytes of `iov`, gathered.
///
/// # Safety
/// Each iovec names readable memory.
unsafe fn gather(iov: &[iovec]) -> Vec<u8> {
    let mut v = Vec::with_capacity(iov.iter().map(|i| i.iov_len).sum());
    for i in iov {
        // SAFETY: the caller's contract.
        v.extend_from_slice(unsafe { slice(i.iov_base, i.iov_len) });
    }
    v
}

/// Copies `data` into `iov` in order.
///
/// # Safety
/// Each iovec names writable memory.
unsafe fn scatter(iov: &[iovec], mut data: &[u8]) {
    for i in iov {
        if data.is_empty() {
            break;
        }
        let n = i.iov_len.min(data.len());
        // SAFETY: the caller's contract; `n` fits both.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), i.iov_base.cast::<u8>(), n) };
        data = &data[n..];
    }
}

/// writev(2).
pub unsafe fn writev(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    // SAFETY: forwarded unchanged.
    on_sock!(fd, unsafe { real::writev(fd, iov, n) }, |f| done_len(
        (|| {
            if n < 0 {
                return Err(libc::EINVAL);
            }
            // SAFETY: the caller's iovecs.
            let data = unsafe { gather(iovecs(iov, n as usize)) };
            send_on(&f, &data, 0, None)
        })()
    ))
}

/// readv(2).
pub unsafe fn readv(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    // SAFETY: forwarded unchanged.
    on_sock!(fd, unsafe { real::readv(fd, iov, n) }, |f| done_len(
        (|| {
            if n < 0 {
                return Err(libc::EINVAL);
            }
            // SAFETY: the caller's iovecs.
            let iov = unsafe { iovecs(iov, n as usize) };
            let mut buf = vec![0u8; iov.iter().map(|i| i.iov_len).sum()];
            let (got, _) = recv_on(&f, &mut buf, 0, false)?;
            // SAFETY: the caller's iovecs.
            unsafe { scatter(iov, &buf[..got]) };
            Ok(got)
        })()
    ))
}

/// sendmsg(2) (control messages are ignored).
pub unsafe fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    // SAFETY: forwarded unchanged.
    on_sock!(fd, unsafe { real::sendmsg(fd, msg, flags) }, |f| done_len(
        (|| {
            // SAFETY: the caller's message header.
            let m = unsafe { msg.as_ref() }.ok_or(libc::EFAULT)?;
            let to = if m.msg_name.is_null() || m.msg_namelen == 0 {
                None
            } else {
                // SAFETY: the caller's address and length.
                match unsafe { addr::read(m.msg_name.cast(), m.msg_namelen) }? {
                    Parsed::Addr(sa) => Some(sa),
                    Parsed::Unspec => return Err(libc::EAFNOSUPPORT),
                }
            };
            // SAFETY: the caller's iovecs.
            let data = unsafe { gather(iovecs(m.msg_iov, m.msg_iovlen)) };
            send_on(&f, &data, flags, to)
        })()
    ))
}

/// recvmsg(2) (no control messages are returned).
pub unsafe fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    // SAFETY: forwarded unchanged.
    on_sock!(fd, unsafe { real::recvmsg(fd, msg, flags) }, |f| done_len(
        (|| {
            // SAFETY: the caller's message header.
            let m = unsafe { msg.as_mut() }.ok_or(libc::EFAULT)?;
            // SAFETY: the caller's iovecs.
            let iov = unsafe { iovecs(m.msg_iov, m.msg_iovlen) };
            let mut buf = vec![0u8; iov.iter().map(|i| i.iov_len).sum()];
            let want_from = !m.msg_name.is_null();
            let (got, from) = recv_on(&f, &mut buf, flags, want_from)?;
            // SAFETY: the caller's iovecs.
            unsafe { scatter(iov, &buf[..got]) };
            if let Some(from) = from {
                // SAFETY: the caller's address buffer; msg_namelen is its size.
                unsafe { addr::write(from, f.v6, m.msg_name.cast(), &mut m.msg_namelen) };
            } else {
                m.msg_namelen = 0;
            }
            m.msg_controllen = 0;
            m.msg_flags = 0;
            Ok(got)
        })()
    ))
}

/// sendmmsg(2): sendmsg for each message until one fails.
pub unsafe fn sendmmsg(fd: c_int, msgs: *mut libc::mmsghdr, n: c_uint, flags: c_int) -> c_int {
    if let Ok(Target::Kernel) = target(fd) {
        // SAFETY: forwarded unchanged.
        return unsafe { real::sendmmsg(fd, msgs, n, flags) };
    }
    let mut done_n = 0;
    for i in 0..n as usize {
        // SAFETY: the caller gave `n` messages.
        let m = unsafe { &mut *msgs.add(i) };
        // SAFETY: one valid message header.
        let r = unsafe { sendmsg(fd, &m.msg_hdr, flags) };
        if r < 0 {
            return if done_n > 0 { done_n } else { -1 };
        }
        m.msg_len = r as c_uint;
        done_n += 1;
    }
    done_n
}

/// recvmmsg(2): recvmsg for each message; after the first, only what is already there.
pub unsafe fn recvmmsg(
    fd: c_int,
    msgs: *mut libc::mmsghdr,
    n: c_uint,
    flags: c_int,
    t: *mut libc::timespec,
) -> c_int {
    if let Ok(Target::Kernel) = target(fd) {
        // SAFETY: forwarded unchanged.
        return unsafe { real::recvmmsg(fd, msgs, n, flags, t) };
    }
    let mut done_n = 0;
    for i in 0..n as usize {
        let fl = if i == 0 {
            flags
        } else {
            flags | libc::MSG_DONTWAIT
        };
        // SAFETY: the caller gave `n` messages.
        let m = unsafe { &mut *msgs.add(i) };
        // SAFETY: one valid message header.
        let r = unsafe { recvmsg(fd, &mut m.msg_hdr, fl) };
        if r < 0 {
            return if done_n > 0 { done_n } else { -1 };
        }
        m.msg_len = r as c_uint;
        done_n += 1;
    }
    done_n
}

/// sendfile(2) to a ustack socket: the file is read with pread(2) and sent.
pub unsafe fn sendfile(out: c_int, inp: c_int, off: *mut libc::off_t, count: size_t) -> ssize_t {
    // SAFETY: forwarded unchanged.
    on_sock!(out, unsafe { real::sendfile(out, inp, off, count) }, |f| {
        done_len((|| {
            let mut pos = if off.is_null() {
                // SAFETY: lseek takes no pointers.
                let p = unsafe { libc::lseek(inp, 0, libc::SEEK_CUR) };
                if p < 0 {
                    return Err(errno());
                }
                p
            } else {
                // SAFETY: the caller's offset.
                unsafe { *off }
            };
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = 0usize;
            let mut result = Ok(());
            while total < count {
                let want = (count - total).min(buf.len());
                // SAFETY: `buf` has `want` writable bytes.
                let n = unsafe { libc::pread(inp, buf.as_mut_ptr().cast(), want, pos) };
                if n < 0 {
                    result = Err(errno());
                    break;
                }
                if n == 0 {
                    break;
                }
                match send_on(&f, &buf[..n as usize], libc::MSG_NOSIGNAL, None) {
                    Ok(s) => {
                        total += s;
                        pos += s as libc::off_t;
                        if s < n as usize {
                            break;
                        }
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            if off.is_null() {
                // SAFETY: lseek takes no pointers.
                unsafe { libc::lseek(inp, pos, libc::SEEK_SET) };
            } else {
                // SAFETY: the caller's offset.
                unsafe { *off = pos };
            }
            match result {
                Err(e) if total == 0 => Err(e),
                _ => Ok(total),
            }
        })())
    })
}

// ---------------------------------------------------------------------------------
// Descriptors.

/// Forgets `fd` in every epoll instance (it was closed or replaced), and the
/// instance `fd` itself if it was one.
fn forget_in_epolls(fd: c_int) {
    let p = process();
    let mut epolls = p.epolls.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(info) = epolls.remove(&fd) {
        p.wakers.unregister(&info.wake);
    }
    for info in epolls.values() {
        info.watches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fd);
    }
}

/// close(2).
pub unsafe fn close(fd: c_int) -> c_int {
    if let Slot::Kernel = lookup(fd) {
        let tracked_epoll = crate::table::active()
            && process()
                .epolls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&fd);
        // SAFETY: forwarded unchanged.
        let r = unsafe { real::close(fd) };
        let e = errno();
        if tracked_epoll {
            forget_in_epolls(fd);
            set_errno(e);
        }
        return r;
    }
    let p = process();
    let (r, e, old) = p.with_locked(|slots| {
        // SAFETY: a raw close of the number; the table is updated in the same step.
        let r = unsafe { real::close(fd) };
        let e = errno();
        (r, e, set_slot(slots, fd, Slot::Kernel))
    });
    let was_sock = matches!(old, Slot::Sock(_));
    drop(old);
    if was_sock {
        forget_in_epolls(fd);
    }
    set_errno(e);
    r
}

/// The dup family: `make` makes the new number with a raw call; the table then maps it
/// to what `old` is, in the same step.
fn dup_with(old: c_int, new_hint: Option<c_int>, make: impl FnOnce() -> c_int) -> c_int {
    if let Slot::Kernel = lookup(old) {
        if new_hint.is_none() || matches!(lookup(new_hint.unwrap_or(-1)), Slot::Kernel) {
            return make();
        }
    }
    let p = process();
    let (r, e, replaced) = p.with_locked(|slots| {
        let src = slots.get(old as usize).cloned().unwrap_or_default();
        let r = make();
        let e = errno();
        let replaced = if r >= 0 && r != old {
            set_slot(slots, r, src)
        } else {
            Slot::Kernel
        };
        (r, e, replaced)
    });
    let was_sock = matches!(replaced, Slot::Sock(_));
    drop(replaced);
    if was_sock {
        forget_in_epolls(r);
    }
    set_errno(e);
    r
}

/// dup(2).
pub unsafe fn dup(fd: c_int) -> c_int {
    // SAFETY: raw call on the caller's number.
    dup_with(fd, None, || unsafe { real::dup(fd) })
}

/// dup2(2).
pub unsafe fn dup2(old: c_int, new: c_int) -> c_int {
    // SAFETY: raw call on the caller's numbers.
    dup_with(old, Some(new), || unsafe { real::dup2(old, new) })
}

/// dup3(2).
pub unsafe fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    // SAFETY: raw call on the caller's numbers.
    dup_with(old, Some(new), || unsafe { real::dup3(old, new, flags) })
}

/// fcntl(2) with an integer argument (all the commands sockets use).
pub unsafe fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: forwarded unchanged.
    on_sock!(fd, unsafe { real::fcntl(fd, cmd, arg) }, |f| match cmd {
        libc::F_GETFL => {
            // SAFETY: raw call on the eventfd behind the socket.
            let r = unsafe { real::fcntl(fd, libc::F_GETFL, 0) };
            if r < 0 {
                return r;
            }
            (r & !libc::O_NONBLOCK) | if f.nonblocking() { libc::O_NONBLOCK } else { 0 }
        }
        libc::F_SETFL => {
            f.nonblocking
                .store(arg as c_int & libc::O_NONBLOCK != 0, Ordering::Relaxed);
            0
        }
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
            // SAFETY: raw call on the caller's number.
            dup_with(fd, None, || unsafe { real::fcntl(fd, cmd, arg) })
        }
        // SAFETY: F_GETFD/F_SETFD and the rest act on the kernel descriptor.
        _ => unsafe { real::fcntl(fd, cmd, arg) },
    })
}

/// ioctl(2): FIONBIO and FIONREAD on sockets.
pub unsafe fn ioctl(fd: c_int, req: c_ulong, arg: *mut c_void) -> c_int {
    // SAFETY: forwarded unchanged.
    on_sock!(fd, unsafe { real::ioctl(fd, req, arg) }, |f| match req {
        libc::FIONBIO => {
            if arg.is_null() {
                return fail(libc::EFAULT);
            }
            // SAFETY: FIONBIO takes a pointer to int.
            let on = unsafe { *arg.cast::<c_int>() } != 0;
            f.nonblocking.store(on, Ordering::Relaxed);
            0
        }
        libc::FIONREAD => {
            if arg.is_null() {
                return fail(libc::EFAULT);
            }
            match f.stack.bytes_readable(f.sfd) {
                Ok(n) => {
                    // SAFETY: FIONREAD takes a pointer to int.
                    unsafe { *arg.cast::<c_int>() = n.min(c_int::MAX as usize) as c_int };
                    0
                }
                Err(e) => fail(e.raw()),
            }
        }
        _ => fail(libc::ENOTTY),
    })
}

// ---------------------------------------------------------------------------------
// Options.

fn read_int(val: *const c_void, len: socklen_t) -> Result<c_int, c_int> {
    if val.is_null() {
        return Err(libc::EFAULT);
    }
    if (len as usize) < core::mem::size_of::<c_int>() {
        return Err(libc::EINVAL);
    }
    // SAFETY: checked non-null and long enough.
    Ok(unsafe { core::ptr::read_unaligned(val.cast::<c_int>()) })
}

/// An IPPROTO_IP option's value: an int, or (Linux's `do_ip_setsockopt`) one byte when
/// `len` is shorter.
fn read_ip_int(val: *const c_void, len: socklen_t) -> Result<c_int, c_int> {
    if val.is_null() {
        return Err(libc::EFAULT);
    }
    match len as usize {
        0 => Err(libc::EINVAL),
        1..=3 => {
            // SAFETY: checked non-null and at least one byte.
            Ok(c_int::from(unsafe { *val.cast::<u8>() }))
        }
        _ => read_int(val, len),
    }
}

fn read_timeval(val: *const c_void, len: socklen_t) -> Result<Option<Duration>, c_int> {
    if val.is_null() {
        return Err(libc::EFAULT);
    }
    if (len as usize) < core::mem::size_of::<libc::timeval>() {
        return Err(libc::EINVAL);
    }
    // SAFETY: checked non-null and long enough.
    let tv: libc::timeval = unsafe { core::ptr::read_unaligned(val.cast()) };
    if tv.tv_sec < 0 || !(0..1_000_000).contains(&tv.tv_usec) {
        return Err(libc::EDOM);
    }
    let d = Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64);
    Ok((!d.is_zero()).then_some(d))
}

/// setsockopt(2). Options the stack has no use for (SO_REUSEPORT, TCP_CORK, ...) are
/// accepted and ignored, as programs set them as hints.
pub unsafe fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    // SAFETY: forwarded unchanged.
    on_sock!(
        fd,
        unsafe { real::setsockopt(fd, level, name, val, len) },
        |f| done((|| {
            if !val.is_null() && len as usize <= 256 {
                // SAFETY: the caller's option value of `len` bytes.
                let bytes = unsafe { slice(val, len as usize) }.to_vec();
                f.options
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((level, name, bytes));
            }
            let opt = match (level, name) {
                (libc::SOL_SOCKET, libc::SO_REUSEADDR) => {
                    SockOpt::ReuseAddr(read_int(val, len)? != 0)
                }
                (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => {
                    SockOpt::KeepAlive(read_int(val, len)? != 0)
                }
                (libc::SOL_SOCKET, libc::SO_RCVBUF) => {
                    SockOpt::RcvBuf(read_int(val, len)?.max(0) as usize)
                }
                (libc::SOL_SOCKET, libc::SO_SNDBUF) => {
                    SockOpt::SndBuf(read_int(val, len)?.max(0) as usize)
                }
                (libc::SOL_SOCKET, libc::SO_LINGER) => {
                    if val.is_null() || (len as usize) < core::mem::size_of::<libc::linger>() {
                        return Err(libc::EINVAL);
                    }
                    // SAFETY: checked non-null and long enough.
                    let l: libc::linger = unsafe { core::ptr::read_unaligned(val.cast()) };
                    SockOpt::Linger(
                        (l.l_onoff != 0).then(|| Duration::from_secs(l.l_linger.max(0) as u64)),
                    )
                }
                (libc::SOL_SOCKET, libc::SO_RCVTIMEO) => {
                    let t = read_timeval(val, len)?;
                    f.timeouts.lock().unwrap_or_else(|e| e.into_inner()).0 = t;
                    return Ok(0);
                }
                (libc::SOL_SOCKET, libc::SO_SNDTIMEO) => {
                    let t = read_timeval(val, len)?;
                    f.timeouts.lock().unwrap_or_else(|e| e.into_inner()).1 = t;
                    return Ok(0);
                }
                (libc::IPPROTO_TCP, libc::TCP_NODELAY) => {
                    SockOpt::TcpNoDelay(read_int(val, len)? != 0)
                }
                (libc::IPPROTO_TCP, libc::TCP_CORK) => SockOpt::TcpCork(read_int(val, len)? != 0),
                (libc::SOL_SOCKET, libc::SO_BUSY_POLL) => SockOpt::BusyPoll(read_int(val, len)?),
                (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => {
                    SockOpt::TcpKeepIdle(Duration::from_secs(read_int(val, len)?.max(1) as u64))
                }
                (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => {
                    SockOpt::TcpKeepIntvl(Duration::from_secs(read_int(val, len)?.max(1) as u64))
                }
                (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => {
                    SockOpt::TcpKeepCnt(read_int(val, len)?.max(1) as u32)
                }
                (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) => {
                    SockOpt::Ipv6V6Only(read_int(val, len)? != 0)
                }
                (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) => SockOpt::Ipv6TClass(read_int(val, len)?),
                (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS) => {
                    SockOpt::Ipv6UnicastHops(read_int(val, len)?)
                }
                (libc::IPPROTO_IP, libc::IP_TTL) => SockOpt::IpTtl(read_ip_int(val, len)?),
                (libc::IPPROTO_IP, libc::IP_TOS) => SockOpt::IpTos(read_ip_int(val, len)?),
                // Linux: any IPPROTO_IPV6 option on an AF_INET socket is ENOPROTOOPT.
                (libc::IPPROTO_IPV6, _) if !f.v6 => return Err(libc::ENOPROTOOPT),
                _ => {
                    log::debug!(target: "ustack::preload", "setsockopt({level}, {name}) ignored");
                    return Ok(0);
                }
            };
            match f.stack.setsockopt(f.sfd, opt) {
                // A TCP option on a UDP socket: Linux says ENOPROTOOPT too, keep it.
                Err(e) => Err(e.raw()),
                Ok(()) => Ok(0),
            }
        })())
    )
}

/// Writes an int option value.
fn put_int(val: *mut c_void, len: *mut socklen_t, v: c_int) -> Result<c_int, c_int> {
    put_bytes(val, len, &v.to_ne_bytes())
}

fn put_bytes(val: *mut c_void, len: *mut socklen_t, bytes: &[u8]) -> Result<c_int, c_int> {
    if val.is_null() || len.is_null() {
        return Err(libc::EFAULT);
    }
    // SAFETY: checked non-null; we copy at most `*len` bytes, as Linux truncates.
    unsafe {
        let n = (*len as usize).min(bytes.len());
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), val.cast::<u8>(), n);
        *len = n as socklen_t;
    }
    Ok(0)
}

fn timeval_bytes(t: Option<Duration>) -> Vec<u8> {
    let t = t.unwrap_or_default();
    let tv = libc::timeval {
        tv_sec: t.as_secs() as libc::time_t,
        tv_usec: t.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: timeval is plain data; we view its bytes.
    unsafe {
        core::slice::from_raw_parts(
            (&tv as *const libc::timeval).cast::<u8>(),
            core::mem::size_of::<libc::timeval>(),
        )
    }
    .to_vec()
}

/// getsockopt(2).
pub unsafe fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    // SAFETY: forwarded unchanged.
    on_sock!(
        fd,
        unsafe { real::getsockopt(fd, level, name, val, len) },
        |f| done((|| {
            let get = |n: SockOptName| f.stack.getsockopt(f.sfd, n).map_err(raw);
            let b = |x: bool| x as c_int;
            match (level, name) {
                (libc::SOL_SOCKET, libc::SO_ERROR) => match get(SockOptName::Error)? {
                    SockOpt::Error(e) => put_int(val, len, e.map_or(0, Errno::raw)),
                    _ => put_int(val, len, 0),
                },
                (libc::SOL_SOCKET, libc::SO_TYPE) => put_int(val, len, f.ty),
                (libc::SOL_SOCKET, libc::SO_DOMAIN) => {
                    put_int(val, len, if f.v6 { libc::AF_INET6 } else { libc::AF_INET })
                }
                (libc::SOL_SOCKET, libc::SO_PROTOCOL) => put_int(
                    val,
                    len,
                    match (f.proto, f.ty) {
                        (0, libc::SOCK_STREAM) => libc::IPPROTO_TCP,
                        (0, libc::SOCK_DGRAM) => libc::IPPROTO_UDP,
                        (p, _) => p,
                    },
                ),
                (libc::SOL_SOCKET, libc::SO_ACCEPTCONN) => {
                    put_int(val, len, b(f.listening.load(Ordering::Relaxed)))
                }
                (libc::SOL_SOCKET, libc::SO_RCVTIMEO) => {
                    put_bytes(val, len, &timeval_bytes(rcvtimeo(&f)))
                }
                (libc::SOL_SOCKET, libc::SO_SNDTIMEO) => {
                    put_bytes(val, len, &timeval_bytes(sndtimeo(&f)))
                }
                (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) => match get(SockOptName::Ipv6V6Only)? {
                    SockOpt::Ipv6V6Only(x) => put_int(val, len, b(x)),
                    _ => put_int(val, len, 0),
                },
                (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) => match get(SockOptName::Ipv6TClass)? {
                    SockOpt::Ipv6TClass(x) => put_int(val, len, x),
                    _ => put_int(val, len, 0),
                },
                (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS) => {
                    match get(SockOptName::Ipv6UnicastHops)? {
                        SockOpt::Ipv6UnicastHops(x) => put_int(val, len, x),
                        _ => put_int(val, len, 64),
                    }
                }
                (libc::IPPROTO_IP, libc::IP_TTL) => match get(SockOptName::IpTtl)? {
                    SockOpt::IpTtl(x) => put_int(val, len, x),
                    _ => put_int(val, len, 64),
                },
                (libc::IPPROTO_IP, libc::IP_TOS) => match get(SockOptName::IpTos)? {
                    SockOpt::IpTos(x) => put_int(val, len, x),
                    _ => put_int(val, len, 0),
                },
                _ => {
                    let n = match (level, name) {
                        (libc::SOL_SOCKET, libc::SO_REUSEADDR) => SockOptName::ReuseAddr,
                        (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => SockOptName::KeepAlive,
                        (libc::SOL_SOCKET, libc::SO_RCVBUF) => SockOptName::RcvBuf,
                        (libc::SOL_SOCKET, libc::SO_SNDBUF) => SockOptName::SndBuf,
                        (libc::SOL_SOCKET, libc::SO_LINGER) => SockOptName::Linger,
                        (libc::IPPROTO_TCP, libc::TCP_NODELAY) => SockOptName::TcpNoDelay,
                        (libc::IPPROTO_TCP, libc::TCP_CORK) => SockOptName::TcpCork,
                        (libc::SOL_SOCKET, libc::SO_BUSY_POLL) => SockOptName::BusyPoll,
                        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => SockOptName::TcpKeepIdle,
                        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => SockOptName::TcpKeepIntvl,
                        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => SockOptName::TcpKeepCnt,
                        (libc::IPPROTO_TCP, libc::TCP_CONGESTION) => SockOptName::TcpCongestion,
                        _ => return Err(libc::ENOPROTOOPT),
                    };
                    match get(n)? {
                        SockOpt::ReuseAddr(x)
                        | SockOpt::KeepAlive(x)
                        | SockOpt::TcpNoDelay(x)
                        | SockOpt::TcpCork(x) => put_int(val, len, b(x)),
                        SockOpt::RcvBuf(x) | SockOpt::SndBuf(x) => {
                            put_int(val, len, x.min(c_int::MAX as usize) as c_int)
                        }
                        SockOpt::TcpKeepIdle(d) | SockOpt::TcpKeepIntvl(d) => {
                            put_int(val, len, d.as_secs() as c_int)
                        }
                        SockOpt::TcpKeepCnt(x) => put_int(val, len, x as c_int),
                        SockOpt::BusyPoll(x) => put_int(val, len, x),
                        SockOpt::Linger(l) => {
                            let lg = libc::linger {
                                l_onoff: b(l.is_some()),
                                l_linger: l.map_or(0, |d| d.as_secs() as c_int),
                            };
                            // SAFETY: linger is plain data; we view its bytes.
                            let bytes = unsafe {
                                core::slice::from_raw_parts(
                                    (&lg as *const libc::linger).cast::<u8>(),
                                    core::mem::size_of::<libc::linger>(),
                                )
                            };
                            put_bytes(val, len, bytes)
                        }
                        SockOpt::TcpCongestion(s) => {
                            let mut v = s.into_bytes();
                            v.push(0);
                            put_bytes(val, len, &v)
                        }
                        _ => Err(libc::ENOPROTOOPT),
                    }
                }
            }
        })())
    )
}

// ---------------------------------------------------------------------------------
// Waiting: poll, select, epoll.

/// The events a program may ask for, as the stack's type.
fn events_of(e: i16) -> PollEvents {
    PollEvents::from_bits(e as u16 as u32)
}

/// poll/ppoll over any mix of descriptors. `None` when none is ours (the caller then
/// makes the plain kernel call).
unsafe fn poll_mixed(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: Option<Duration>,
    mask: *const libc::sigset_t,
) -> Option<c_int> {
    if !crate::table::active() || fds.is_null() || n == 0 {
        return None;
    }
    // SAFETY: the caller gave `n` pollfds.
    let fds = unsafe { core::slice::from_raw_parts_mut(fds, n as usize) };
    let slots: Vec<Slot> = fds.iter().map(|p| lookup(p.fd)).collect();
    if slots.iter().all(|s| matches!(s, Slot::Kernel)) {
        return None;
    }
    let mut kfds = Vec::new();
    let mut kidx = Vec::new();
    let mut us = Vec::new();
    let mut uidx = Vec::new();
    let mut dead = 0;
    for (i, (p, s)) in fds.iter_mut().zip(slots).enumerate() {
        p.revents = 0;
        match s {
            Slot::Kernel => {
                kfds.push(*p);
                kidx.push(i);
            }
            Slot::Sock(file) => {
                us.push(UWait {
                    file,
                    events: events_of(p.events),
                    revents: PollEvents::empty(),
                });
                uidx.push(i);
            }
            Slot::Dead => {
                p.revents = libc::POLLNVAL;
                dead += 1;
            }
        }
    }
    let timeout = if dead > 0 {
        Some(Duration::ZERO)
    } else {
        timeout
    };
    match wake::wait(&mut kfds, &mut us, timeout, mask) {
        Err(e) => Some(fail(e)),
        Ok(_) => {
            let mut count = dead;
            for (k, i) in kfds.iter().zip(kidx) {
                fds[i].revents = k.revents;
                count += (k.revents != 0) as c_int;
            }
            for (u, i) in us.iter().zip(uidx) {
                fds[i].revents = u.revents.bits() as i16;
                count += !u.revents.is_empty() as c_int;
            }
            Some(count)
        }
    }
}

fn ms_timeout(ms: c_int) -> Option<Duration> {
    (ms >= 0).then(|| Duration::from_millis(ms as u64))
}

fn ts_timeout(t: *const libc::timespec) -> Option<Duration> {
    // SAFETY: the caller's timespec, null for forever.
    unsafe { t.as_ref() }.map(|t| {
        Duration::new(
            t.tv_sec.max(0) as u64,
            t.tv_nsec.clamp(0, 999_999_999) as u32,
        )
    })
}

/// poll(2).
pub unsafe fn poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int {
    // SAFETY: the caller's array.
    match unsafe { poll_mixed(fds, n, ms_timeout(timeout), core::ptr::null()) } {
        Some(r) => r,
        // SAFETY: forwarded unchanged.
        None => unsafe { real::poll(fds, n, timeout) },
    }
}

/// ppoll(2).
pub unsafe fn ppoll(
    fds: *mut pollfd,
    n: nfds_t,
    t: *const libc::timespec,
    mask: *const libc::sigset_t,
) -> c_int {
    // SAFETY: the caller's array, timeout and mask.
    match unsafe { poll_mixed(fds, n, ts_timeout(t), mask) } {
        Some(r) => r,
        // SAFETY: forwarded unchanged.
        None => unsafe { real::ppoll(fds, n, t, mask) },
    }
}

/// select/pselect over any mix of descriptors, through poll_mixed.
unsafe fn select_mixed(
    nfds: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    timeout: Option<Duration>,
    mask: *const libc::sigset_t,
) -> Option<c_int> {
    if !crate::table::active() || nfds <= 0 {
        return None;
    }
    let nfds = nfds.min(libc::FD_SETSIZE as c_int);
    // SAFETY: FD_ISSET reads the caller's sets (null sets are skipped).
    let isset = |s: *mut libc::fd_set, fd: c_int| !s.is_null() && unsafe { libc::FD_ISSET(fd, s) };
    let mut pfds = Vec::new();
    let mut ours = false;
    for fd in 0..nfds {
        let mut ev = 0;
        if isset(r, fd) {
            ev |= libc::POLLIN;
        }
        if isset(w, fd) {
            ev |= libc::POLLOUT;
        }
        if isset(e, fd) {
            ev |= libc::POLLPRI;
        }
        if ev != 0 {
            match lookup(fd) {
                Slot::Kernel => {}
                Slot::Sock(_) => ours = true,
                Slot::Dead => return Some(fail(libc::EBADF)),
            }
            pfds.push(pollfd {
                fd,
                events: ev,
                revents: 0,
            });
        }
    }
    if !ours {
        return None;
    }
    // SAFETY: `pfds` is a live array of its length.
    let n = unsafe { poll_mixed(pfds.as_mut_ptr(), pfds.len() as nfds_t, timeout, mask) }?;
    if n < 0 {
        return Some(n);
    }
    for s in [r, w, e] {
        if !s.is_null() {
            // SAFETY: the caller's set.
            unsafe { libc::FD_ZERO(s) };
        }
    }
    let mut count = 0;
    for p in &pfds {
        if p.revents & libc::POLLNVAL != 0 {
            return Some(fail(libc::EBADF));
        }
        let mut set = |s: *mut libc::fd_set, bits: i16| {
            if !s.is_null()
                && p.events & bits != 0
                && p.revents & (bits | libc::POLLERR | libc::POLLHUP) != 0
            {
                // SAFETY: the caller's set.
                unsafe { libc::FD_SET(p.fd, s) };
                count += 1;
            }
        };
        set(r, libc::POLLIN);
        set(w, libc::POLLOUT);
        if !e.is_null() && p.revents & libc::POLLPRI != 0 {
            // SAFETY: the caller's set.
            unsafe { libc::FD_SET(p.fd, e) };
            count += 1;
        }
    }
    Some(count)
}

/// select(2).
pub unsafe fn select(
    n: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    t: *mut libc::timeval,
) -> c_int {
    // SAFETY: the caller's timeval, null for forever.
    let timeout = unsafe { t.as_ref() }.map(|t| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    });
    // SAFETY: the caller's sets.
    match unsafe { select_mixed(n, r, w, e, timeout, core::ptr::null()) } {
        Some(x) => x,
        // SAFETY: forwarded unchanged.
        None => unsafe { real::select(n, r, w, e, t) },
    }
}

/// pselect(2).
pub unsafe fn pselect(
    n: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    t: *const libc::timespec,
    mask: *const libc::sigset_t,
) -> c_int {
    // SAFETY: the caller's sets, timeout and mask.
    match unsafe { select_mixed(n, r, w, e, ts_timeout(t), mask) } {
        Some(x) => x,
        // SAFETY: forwarded unchanged.
        None => unsafe { real::pselect(n, r, w, e, t, mask) },
    }
}

/// The library's record of kernel epoll instance `epfd`, made when it first watches a
/// ustack socket: the instance also watches a wake-up eventfd.
fn epoll_info(epfd: c_int) -> Result<Arc<EpollInfo>, c_int> {
    let p = process();
    let mut epolls = p.epolls.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = epolls.get(&epfd) {
        return Ok(i.clone());
    }
    let wake = Arc::new(WakeFd::new()?);
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: WAKE_TOKEN,
    };
    // SAFETY: a raw call with a live event.
    if unsafe { real::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, wake.fd, &mut ev) } < 0 {
        return Err(errno());
    }
    p.wakers.register(&wake);
    let info = Arc::new(EpollInfo {
        wake,
        watches: Mutex::new(Default::default()),
    });
    epolls.insert(epfd, info.clone());
    Ok(info)
}

/// epoll_ctl(2).
pub unsafe fn epoll_ctl(epfd: c_int, op: c_int, fd: c_int, ev: *mut libc::epoll_event) -> c_int {
    // SAFETY: forwarded unchanged.
    on_sock!(fd, unsafe { real::epoll_ctl(epfd, op, fd, ev) }, |f| done(
        (|| {
            let info = epoll_info(epfd)?;
            // SAFETY: the caller's event (may be null for DEL).
            let ev = unsafe { ev.as_ref() }.copied();
            let mut watches = info.watches.lock().unwrap_or_else(|e| e.into_inner());
            match op {
                libc::EPOLL_CTL_ADD | libc::EPOLL_CTL_MOD => {
                    let ev = ev.ok_or(libc::EFAULT)?;
                    let exists = watches.contains_key(&fd);
                    if op == libc::EPOLL_CTL_ADD && exists {
                        return Err(libc::EEXIST);
                    }
                    if op == libc::EPOLL_CTL_MOD && !exists {
                        return Err(libc::ENOENT);
                    }
                    watches.insert(
                        fd,
                        Watch {
                            file: f.clone(),
                            events: ev.events,
                            data: ev.u64,
                            disarmed: false,
                            seen: u64::MAX,
                        },
                    );
                }
                libc::EPOLL_CTL_DEL => {
                    watches.remove(&fd).ok_or(libc::ENOENT)?;
                }
                _ => return Err(libc::EINVAL),
            }
            drop(watches);
            info.wake.wake();
            Ok(0)
        })()
    ))
}

/// Reports the ready ustack sockets of `info` into `out` (level- or edge-triggered,
/// one-shot), at most `out.len()`.
fn epoll_scan(info: &EpollInfo, out: &mut [libc::epoll_event]) -> usize {
    let mut watches = info.watches.lock().unwrap_or_else(|e| e.into_inner());
    if watches.is_empty() || out.is_empty() {
        return 0;
    }
    let mut fds: Vec<c_int> = watches
        .iter()
        .filter(|(_, w)| !w.disarmed)
        .map(|(fd, _)| *fd)
        .collect();
    fds.sort_unstable();
    let mut n = 0;
    for fd in fds {
        if n == out.len() {
            break;
        }
        let Some(w) = watches.get_mut(&fd) else {
            continue;
        };
        let Some(ready) = poll_watch(w, |file, asked| {
            let mut p = [PollFd::new(file.sfd, asked)];
            match file.stack.poll(&mut p, Some(Duration::ZERO)) {
                Ok(_) => p[0].revents,
                Err(_) => PollEvents::empty(),
            }
        }) else {
            continue;
        };
        out[n] = libc::epoll_event {
            events: ready.bits(),
            u64: w.data,
        };
        n += 1;
    }
    n
}

/// What watch `w` reports now, if anything: `check` reads the socket's readiness for
/// the events asked. Edge-triggered, a report needs an edge since the last one.
pub(crate) fn poll_watch(
    w: &mut Watch,
    check: impl FnOnce(&UFile, PollEvents) -> PollEvents,
) -> Option<PollEvents> {
    let asked = PollEvents::from_bits(w.events)
        & (PollEvents::POLLIN | PollEvents::POLLOUT | PollEvents::POLLRDHUP | PollEvents::POLLPRI);
    let ready = check(&w.file, asked) & (asked | PollEvents::POLLERR | PollEvents::POLLHUP);
    if ready.is_empty() {
        return None;
    }
    if w.events & libc::EPOLLET as u32 != 0 {
        // Counted after the check, never before: the check may itself take in the
        // datagram (a round on an unattended link) or wait for the stack lock while the
        // driver delivers it, and the notifier counts that edge meanwhile. Counted
        // before, the edge this report covers would stay unseen and fire again on the
        // next wait with nothing new (epoll_mix.c, "udp again (ET)"). Counted after,
        // an edge that came after the check is covered by a report the program gets
        // after it came, which is all EPOLLET promises.
        let edges = w.file.edges.count(w.events);
        if edges == w.seen {
            return None;
        }
        w.seen = edges;
    }
    if w.events & libc::EPOLLONESHOT as u32 != 0 {
        w.disarmed = true;
    }
    Some(ready)
}

/// epoll_pwait(2) (epoll_wait(2) with no mask).
pub unsafe fn epoll_pwait(
    epfd: c_int,
    evs: *mut libc::epoll_event,
    max: c_int,
    timeout: c_int,
    mask: *const libc::sigset_t,
) -> c_int {
    let info = if crate::table::active() {
        process()
            .epolls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&epfd)
            .cloned()
    } else {
        None
    };
    let Some(info) = info else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::epoll_pwait(epfd, evs, max, timeout, mask) };
    };
    if max <= 0 || evs.is_null() {
        return fail(libc::EINVAL);
    }
    // SAFETY: the caller gave room for `max` events.
    let out = unsafe { core::slice::from_raw_parts_mut(evs, max as usize) };
    let deadline = ms_timeout(timeout).map(|t| Instant::now() + t);
    loop {
        info.wake.drain();
        let n = epoll_scan(&info, out);
        if n == out.len() {
            return n as c_int;
        }
        let wait_ms = if n > 0 {
            0
        } else {
            match wake::remaining(deadline) {
                Ok(None) => -1,
                Ok(Some(d)) => {
                    d.as_millis().min(c_int::MAX as u128) as c_int
                        + (d.subsec_nanos() % 1_000_000 != 0) as c_int
                }
                Err(()) => 0,
            }
        };
        let rest = &mut out[n..];
        // SAFETY: a raw call into the caller's remaining room.
        let k = unsafe {
            real::epoll_pwait(epfd, rest.as_mut_ptr(), rest.len() as c_int, wait_ms, mask)
        };
        if k < 0 {
            return if n > 0 { n as c_int } else { -1 };
        }
        let mut kept = 0;
        for i in 0..k as usize {
            if rest[i].u64 != WAKE_TOKEN {
                rest[kept] = rest[i];
                kept += 1;
            }
        }
        let total = n + kept;
        if total > 0 || wake::remaining(deadline).is_err() {
            return total as c_int;
        }
    }
}

/// epoll_wait(2).
pub unsafe fn epoll_wait(
    epfd: c_int,
    evs: *mut libc::epoll_event,
    max: c_int,
    timeout: c_int,
) -> c_int {
    // SAFETY: the caller's arguments.
    unsafe { epoll_pwait(epfd, evs, max, timeout, core::ptr::null()) }
}
