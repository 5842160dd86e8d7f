//! The C ABI of `include/ustack.h`: `ustack_socket`, `ustack_bind`, ... for programs
//! that link to the library on purpose. Each behaves as the C library's call of the
//! same name (return value and errno); AF_INET/AF_INET6 sockets are ustack's, other
//! descriptors are passed to the C library, so `ustack_close` or `ustack_poll` work on
//! pipes too. The stack attaches to the link in the `USTACK_*` environment at the
//! first `ustack_socket(AF_INET...)`.

#![allow(clippy::missing_safety_doc)]

use crate::ops;
use libc::{
    c_int, c_uint, c_ulong, c_void, epoll_event, fd_set, iovec, msghdr, nfds_t, off_t, pollfd,
    size_t, sockaddr, socklen_t, ssize_t, timeval,
};

macro_rules! capi {
    ($($cname:ident => $op:ident ( $($a:ident : $t:ty),* ) -> $ret:ty;)*) => {$(
        /// See the C library function of the same name without `ustack_`.
        #[no_mangle]
        pub unsafe extern "C" fn $cname($($a: $t),*) -> $ret {
            // SAFETY: the caller upholds the C function's contract.
            unsafe { ops::$op($($a),*) }
        }
    )*};
}

capi! {
    ustack_socket => socket(domain: c_int, ty: c_int, proto: c_int) -> c_int;
    ustack_bind => bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    ustack_listen => listen(fd: c_int, backlog: c_int) -> c_int;
    ustack_accept4 => accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int;
    ustack_connect => connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    ustack_getsockname => getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    ustack_getpeername => getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    ustack_shutdown => shutdown(fd: c_int, how: c_int) -> c_int;
    ustack_send => send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t;
    ustack_recv => recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t;
    ustack_sendto => sendto(fd: c_int, buf: *const c_void, len: size_t, flags: c_int, addr: *const sockaddr, alen: socklen_t) -> ssize_t;
    ustack_recvfrom => recvfrom(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int, addr: *mut sockaddr, alen: *mut socklen_t) -> ssize_t;
    ustack_sendmsg => sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t;
    ustack_recvmsg => recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t;
    ustack_read => read(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t;
    ustack_write => write(fd: c_int, buf: *const c_void, len: size_t) -> ssize_t;
    ustack_readv => readv(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t;
    ustack_writev => writev(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t;
    ustack_close => close(fd: c_int) -> c_int;
    ustack_setsockopt => setsockopt(fd: c_int, level: c_int, name: c_int, val: *const c_void, len: socklen_t) -> c_int;
    ustack_getsockopt => getsockopt(fd: c_int, level: c_int, name: c_int, val: *mut c_void, len: *mut socklen_t) -> c_int;
    ustack_fcntl => fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int;
    ustack_ioctl => ioctl(fd: c_int, req: c_ulong, arg: *mut c_void) -> c_int;
    ustack_poll => poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int;
    ustack_select => select(n: c_int, r: *mut fd_set, w: *mut fd_set, e: *mut fd_set, t: *mut timeval) -> c_int;
    ustack_epoll_ctl => epoll_ctl(epfd: c_int, op: c_int, fd: c_int, ev: *mut epoll_event) -> c_int;
    ustack_epoll_wait => epoll_wait(epfd: c_int, ev: *mut epoll_event, n: c_int, timeout: c_int) -> c_int;
    ustack_dup => dup(fd: c_int) -> c_int;
    ustack_dup2 => dup2(old: c_int, new: c_int) -> c_int;
    ustack_sendfile => sendfile(out: c_int, inp: c_int, off: *mut off_t, count: size_t) -> ssize_t;
    ustack_sendmmsg => sendmmsg(fd: c_int, msgs: *mut libc::mmsghdr, n: c_uint, flags: c_int) -> c_int;
}

/// accept(2) on the stack.
#[no_mangle]
pub unsafe extern "C" fn ustack_accept(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> c_int {
    // SAFETY: the caller upholds accept(2)'s contract.
    unsafe { ops::accept4(fd, addr, len, 0) }
}
