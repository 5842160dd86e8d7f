//! The C library's names, defined by the shared library so that a program loaded with
//! `LD_PRELOAD=libustack_preload.so` calls them instead of libc's. Each forwards to
//! [`crate::ops`] when interposition is on (the preload names this library, or
//! `USTACK_INTERPOSE=1`), and to the C library's own function otherwise (a program
//! linked to the library for its C ABI keeps the kernel's sockets).
//!
//! fcntl(2) and ioctl(2) are variadic in C; they are defined here with one integer or
//! pointer argument, which the x86-64 and AArch64 Linux calling conventions pass in
//! the same register as a variadic one. The `_FORTIFY_SOURCE` checking variants
//! (`__read_chk`, `__recv_chk`, ...) and the large-file aliases (`fcntl64`,
//! `sendfile64`) are covered too, since distribution binaries call them.

#![allow(clippy::missing_safety_doc)]

use crate::{ops, real};
use libc::{
    c_int, c_uint, c_ulong, c_void, epoll_event, fd_set, iovec, mmsghdr, msghdr, nfds_t, off_t,
    pollfd, sigset_t, size_t, sockaddr, socklen_t, ssize_t, timespec, timeval,
};
use std::sync::atomic::{AtomicU8, Ordering};

/// Whether to interpose: 0 not yet known, 1 yes, 2 no.
static MODE: AtomicU8 = AtomicU8::new(0);

fn interposing() -> bool {
    match MODE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            // getenv, not std::env: this can run inside a malloc's initialisation
            // (jemalloc calls syscall(2) and read(2) while it sets up), where
            // allocating would deadlock.
            let var = |name: &core::ffi::CStr| {
                // SAFETY: getenv takes a NUL-terminated name and returns a string
                // owned by the environment (or null), which we only read here.
                let p = unsafe { libc::getenv(name.as_ptr()) };
                // SAFETY: a non-null getenv result is a valid C string.
                (!p.is_null()).then(|| unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes())
            };
            let preload =
                var(c"LD_PRELOAD").is_some_and(|v| v.windows(14).any(|w| w == b"ustack_preload"));
            let forced = var(c"USTACK_INTERPOSE") == Some(b"1".as_slice());
            let on = preload || forced;
            MODE.store(if on { 1 } else { 2 }, Ordering::Relaxed);
            on
        }
    }
}

macro_rules! interpose {
    ($($name:ident => $op:ident ( $($a:ident : $t:ty),* ) -> $ret:ty;)*) => {$(
        /// Interposed C library function.
        #[no_mangle]
        pub unsafe extern "C" fn $name($($a: $t),*) -> $ret {
            if interposing() {
                // SAFETY: the caller upholds the C function's contract.
                unsafe { ops::$op($($a),*) }
            } else {
                // SAFETY: forwarded unchanged.
                unsafe { real::$op($($a),*) }
            }
        }
    )*};
}

interpose! {
    socket => socket(domain: c_int, ty: c_int, proto: c_int) -> c_int;
    bind => bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    listen => listen(fd: c_int, backlog: c_int) -> c_int;
    accept4 => accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int;
    connect => connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    getsockname => getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    getpeername => getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    shutdown => shutdown(fd: c_int, how: c_int) -> c_int;
    send => send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t;
    recv => recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t;
    sendto => sendto(fd: c_int, buf: *const c_void, len: size_t, flags: c_int, addr: *const sockaddr, alen: socklen_t) -> ssize_t;
    recvfrom => recvfrom(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int, addr: *mut sockaddr, alen: *mut socklen_t) -> ssize_t;
    sendmsg => sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t;
    recvmsg => recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t;
    sendmmsg => sendmmsg(fd: c_int, msgs: *mut mmsghdr, n: c_uint, flags: c_int) -> c_int;
    recvmmsg => recvmmsg(fd: c_int, msgs: *mut mmsghdr, n: c_uint, flags: c_int, t: *mut timespec) -> c_int;
    read => read(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t;
    write => write(fd: c_int, buf: *const c_void, len: size_t) -> ssize_t;
    readv => readv(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t;
    writev => writev(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t;
    close => close(fd: c_int) -> c_int;
    setsockopt => setsockopt(fd: c_int, level: c_int, name: c_int, val: *const c_void, len: socklen_t) -> c_int;
    getsockopt => getsockopt(fd: c_int, level: c_int, name: c_int, val: *mut c_void, len: *mut socklen_t) -> c_int;
    fcntl => fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int;
    ioctl => ioctl(fd: c_int, req: c_ulong, arg: *mut c_void) -> c_int;
    poll => poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int;
    ppoll => ppoll(fds: *mut pollfd, n: nfds_t, t: *const timespec, mask: *const sigset_t) -> c_int;
    select => select(n: c_int, r: *mut fd_set, w: *mut fd_set, e: *mut fd_set, t: *mut timeval) -> c_int;
    pselect => pselect(n: c_int, r: *mut fd_set, w: *mut fd_set, e: *mut fd_set, t: *const timespec, mask: *const sigset_t) -> c_int;
    epoll_ctl => epoll_ctl(epfd: c_int, op: c_int, fd: c_int, ev: *mut epoll_event) -> c_int;
    epoll_wait => epoll_wait(epfd: c_int, ev: *mut epoll_event, n: c_int, timeout: c_int) -> c_int;
    epoll_pwait => epoll_pwait(epfd: c_int, ev: *mut epoll_event, n: c_int, timeout: c_int, mask: *const sigset_t) -> c_int;
    dup => dup(fd: c_int) -> c_int;
    dup2 => dup2(old: c_int, new: c_int) -> c_int;
    dup3 => dup3(old: c_int, new: c_int, flags: c_int) -> c_int;
    sendfile => sendfile(out: c_int, inp: c_int, off: *mut off_t, count: size_t) -> ssize_t;
}

/// accept(2).
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    if interposing() {
        // SAFETY: the caller upholds accept(2)'s contract.
        unsafe { ops::accept4(fd, addr, len, 0) }
    } else {
        // SAFETY: forwarded unchanged.
        unsafe { real::accept(fd, addr, len) }
    }
}

/// fcntl64 (glibc's large-file name for fcntl).
#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: same contract as fcntl.
    unsafe { fcntl(fd, cmd, arg) }
}

/// sendfile64 (glibc's large-file name for sendfile).
#[no_mangle]
pub unsafe extern "C" fn sendfile64(
    out: c_int,
    inp: c_int,
    off: *mut off_t,
    count: size_t,
) -> ssize_t {
    // SAFETY: same contract as sendfile.
    unsafe { sendfile(out, inp, off, count) }
}

/// __read_chk (_FORTIFY_SOURCE read).
#[no_mangle]
pub unsafe extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    buflen: size_t,
) -> ssize_t {
    if len > buflen {
        // SAFETY: glibc's overflow handler; it does not return.
        unsafe { __chk_fail() };
    }
    // SAFETY: as read.
    unsafe { read(fd, buf, len) }
}

/// __recv_chk (_FORTIFY_SOURCE recv).
#[no_mangle]
pub unsafe extern "C" fn __recv_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    buflen: size_t,
    flags: c_int,
) -> ssize_t {
    if len > buflen {
        // SAFETY: glibc's overflow handler; it does not return.
        unsafe { __chk_fail() };
    }
    // SAFETY: as recv.
    unsafe { recv(fd, buf, len, flags) }
}

/// __recvfrom_chk (_FORTIFY_SOURCE recvfrom).
#[no_mangle]
pub unsafe extern "C" fn __recvfrom_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    buflen: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
) -> ssize_t {
    if len > buflen {
        // SAFETY: glibc's overflow handler; it does not return.
        unsafe { __chk_fail() };
    }
    // SAFETY: as recvfrom.
    unsafe { recvfrom(fd, buf, len, flags, addr, alen) }
}

/// __poll_chk (_FORTIFY_SOURCE poll).
#[no_mangle]
pub unsafe extern "C" fn __poll_chk(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: c_int,
    fdslen: size_t,
) -> c_int {
    if (fdslen / core::mem::size_of::<pollfd>()) < n as usize {
        // SAFETY: glibc's overflow handler; it does not return.
        unsafe { __chk_fail() };
    }
    // SAFETY: as poll.
    unsafe { poll(fds, n, timeout) }
}

/// __ppoll_chk (_FORTIFY_SOURCE ppoll).
#[no_mangle]
pub unsafe extern "C" fn __ppoll_chk(
    fds: *mut pollfd,
    n: nfds_t,
    t: *const timespec,
    mask: *const sigset_t,
    fdslen: size_t,
) -> c_int {
    if (fdslen / core::mem::size_of::<pollfd>()) < n as usize {
        // SAFETY: glibc's overflow handler; it does not return.
        unsafe { __chk_fail() };
    }
    // SAFETY: as ppoll.
    unsafe { ppoll(fds, n, t, mask) }
}

/// syscall(2), for the socket calls some libraries make through it rather than
/// through their libc names (libuv's `uv__sendmmsg`/`uv__recvmmsg`, as used by dig).
/// Only sendmmsg and recvmmsg on ustack sockets are diverted; everything else goes to
/// the C library's syscall with the six argument registers as they came.
#[no_mangle]
pub unsafe extern "C" fn syscall(
    n: libc::c_long,
    a: libc::c_long,
    b: libc::c_long,
    c: libc::c_long,
    d: libc::c_long,
    e: libc::c_long,
    f: libc::c_long,
) -> libc::c_long {
    if (n == libc::SYS_sendmmsg || n == libc::SYS_recvmmsg) && interposing() {
        if let crate::table::Slot::Sock(_) | crate::table::Slot::Dead =
            crate::table::lookup(a as c_int)
        {
            // SAFETY: the arguments are those of the named system call.
            return unsafe {
                if n == libc::SYS_sendmmsg {
                    ops::sendmmsg(a as c_int, b as *mut mmsghdr, c as c_uint, d as c_int)
                        as libc::c_long
                } else {
                    ops::recvmmsg(
                        a as c_int,
                        b as *mut mmsghdr,
                        c as c_uint,
                        d as c_int,
                        e as *mut timespec,
                    ) as libc::c_long
                }
            };
        }
    }
    // SAFETY: forwarded unchanged (unused argument registers are passed along as
    // they are, which the kernel ignores).
    unsafe { raw_syscall(n, a, b, c, d, e, f) }
}

/// The system call itself, without the C library: neither dlsym nor anything that
/// allocates may run here (see `interposing`). Returns -1 with errno set, as
/// syscall(3) does.
#[cfg(target_arch = "x86_64")]
unsafe fn raw_syscall(
    n: libc::c_long,
    a: libc::c_long,
    b: libc::c_long,
    c: libc::c_long,
    d: libc::c_long,
    e: libc::c_long,
    f: libc::c_long,
) -> libc::c_long {
    let ret: libc::c_long;
    // SAFETY: the x86-64 Linux system call convention: number in rax, arguments in
    // rdi, rsi, rdx, r10, r8, r9; rcx and r11 are clobbered. The caller passed a
    // system call and its arguments.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") n => ret,
            in("rdi") a, in("rsi") b, in("rdx") c, in("r10") d, in("r8") e, in("r9") f,
            lateout("rcx") _, lateout("r11") _,
            options(nostack)
        );
    }
    if (-4095..0).contains(&ret) {
        crate::set_errno(-ret as c_int);
        -1
    } else {
        ret
    }
}

/// Other architectures: the C library's syscall, found with dlsym.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn raw_syscall(
    n: libc::c_long,
    a: libc::c_long,
    b: libc::c_long,
    c: libc::c_long,
    d: libc::c_long,
    e: libc::c_long,
    f: libc::c_long,
) -> libc::c_long {
    // SAFETY: forwarded unchanged.
    unsafe { real::syscall(n, a, b, c, d, e, f) }
}

extern "C" {
    fn __chk_fail() -> !;
}
