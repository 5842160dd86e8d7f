//! Unmodified programs on ustack: an LD_PRELOAD library and a C ABI.
//!
//! Loaded with `LD_PRELOAD` (by `ustack run`), `libustack_preload.so` defines the C
//! library's socket calls itself. AF_INET and AF_INET6 sockets live on one in-process
//! [`NetStack`](ustack_socket::NetStack), attached to the TAP or AF_PACKET link named
//! by the `USTACK_*` environment ([`ustack_socket::env`]) when the first such socket
//! is made; everything else (AF_UNIX, AF_NETLINK, files, pipes, eventfds) goes to the
//! C library's own function, found with `dlsym(RTLD_NEXT)` ([`real`]).
//!
//! Linked normally (`-lustack_preload`, `include/ustack.h`), the same library offers
//! `ustack_socket`, `ustack_bind`, ... with errno semantics ([`capi`]), and its
//! interposed names forward to the C library untouched: only an `LD_PRELOAD` that names
//! the library (or `USTACK_INTERPOSE=1`) turns interposition on.
//!
//! | module    | role |
//! |-----------|------|
//! | [`real`]  | the C library's functions |
//! | [`addr`]  | `struct sockaddr` ⇄ `SocketAddr`, v4-mapped IPv6 |
//! | [`table`] | descriptor numbers → ustack sockets; the per-process state; fork |
//! | [`wake`]  | waiting in the kernel (EINTR) for ustack sockets and kernel descriptors together |
//! | [`ops`]   | every call, with the C semantics |
//! | [`observe`] | `--trace`, `--trace-file`, `--stats` inside the program |
//! | `interpose` | the C library's names (only in the shared library) |
//! | [`capi`]  | the `ustack_*` names of `ustack.h` |
//!
//! See `docs/run.md` for what works, what does not and why.

#![warn(missing_docs)]

pub mod addr;
pub mod capi;
#[cfg(not(test))]
mod interpose;
pub mod observe;
pub mod ops;
pub mod real;
pub mod table;
#[cfg(test)]
mod tests;
pub mod wake;

use libc::c_int;

/// This thread's errno.
pub fn errno() -> c_int {
    // SAFETY: __errno_location always returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Sets this thread's errno.
pub fn set_errno(e: c_int) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = e };
}

/// Registers the fork handler when the library is loaded.
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;

extern "C" fn init() {
    // SAFETY: registering a plain function for the child side of fork.
    unsafe { libc::pthread_atfork(None, None, Some(after_fork_child)) };
}

extern "C" fn after_fork_child() {
    table::reset_after_fork();
}
