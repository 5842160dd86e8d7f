//! Real devices: TAP and AF_PACKET. The only code in the crate that uses `unsafe`.
//!
//! Both links are non-blocking: `recv` returns `Ok(None)` when nothing is queued
//! (EAGAIN), and a full transmit queue (ENOBUFS/EAGAIN) drops the frame like a NIC
//! would. A driver waits for input with [`wait_readable`] on the link's file
//! descriptor ([`AsRawFd`](std::os::unix::io::AsRawFd)), with the timeout the interface asked for.
//!
//! Linux only.

mod af_packet;
mod tap;
mod vnet;

pub use af_packet::{packet_drops, AfPacketLink, RX_RING_BYTES};
pub use tap::TapLink;

use std::io;
use std::os::unix::io::RawFd;
use std::time::Duration;

/// Most descriptors one [`wait_readable`] call watches (a driver needs its device and
/// its wake-up eventfd).
pub const MAX_WAIT_FDS: usize = 4;

/// Waits until one of `fds` is readable or `timeout` passes (`None` waits forever) and
/// says which were: the one wait of every host loop (a driver passes its device and its
/// wake-up fd; a negative fd is skipped).
///
/// ppoll(2), not poll(2): its timeout has nanoseconds where poll(2) has milliseconds,
/// and a deadline 100 µs away (the SACK compression timer) must not wait a whole one.
/// A descriptor hung up or in error reads as readable, so the next read reports it. A
/// signal interrupting the wait reads as a timeout.
///
/// # Errors
/// ppoll(2) failed for a reason other than EINTR, or more than [`MAX_WAIT_FDS`] fds were
/// given.
pub fn poll_readable(fds: &[RawFd], timeout: Option<Duration>) -> io::Result<[bool; MAX_WAIT_FDS]> {
    if fds.len() > MAX_WAIT_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many descriptors to wait on",
        ));
    }
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: libc::POLLIN,
        revents: 0,
    }; MAX_WAIT_FDS];
    for (p, &fd) in pfds.iter_mut().zip(fds) {
        p.fd = fd;
    }
    // SAFETY: `pfds` holds `fds.len()` (at most MAX_WAIT_FDS) initialised pollfds
    // (negative fds are ignored), `ts_ptr` is null or points to `ts`, alive until the
    // call returns; no signal mask.
    let n = unsafe {
        libc::ppoll(
            pfds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            ts_ptr,
            std::ptr::null(),
        )
    };
    if n < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok([false; MAX_WAIT_FDS]);
        }
        return Err(err);
    }
    Ok(pfds.map(|p| p.fd >= 0 && p.revents != 0))
}

/// [`poll_readable`], answering only whether any of `fds` was readable.
///
/// # Errors
/// As [`poll_readable`].
pub fn wait_readable(fds: &[RawFd], timeout: Option<Duration>) -> io::Result<bool> {
    Ok(poll_readable(fds, timeout)?.contains(&true))
}

/// Whether a send error means "the device queue is full": the frame is dropped, not an error.
fn is_queue_full(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOBUFS) | Some(libc::EAGAIN))
}

/// Runs a non-blocking receive call until it is not interrupted: `Some(n)` bytes,
/// `None` when nothing is queued (EAGAIN), the error otherwise.
fn retry_recv(mut call: impl FnMut() -> isize) -> io::Result<Option<usize>> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::WouldBlock => return Ok(None),
            io::ErrorKind::Interrupted => continue,
            _ => return Err(err),
        }
    }
}

/// The interface index of `ifname` in the calling thread's network namespace.
///
/// # Errors
/// No such interface, or the name contains a NUL byte.
pub fn if_nametoindex(ifname: &str) -> io::Result<u32> {
    let cname = std::ffi::CString::new(ifname)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name contains NUL"))?;
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sub_millisecond_timeout_is_not_rounded_to_a_millisecond() {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // Twenty 10 µs waits: poll(2) rounds each up to 1 ms (20 ms in all); ppoll(2)
        // takes about the timer slack (50 µs) each.
        let t = std::time::Instant::now();
        for _ in 0..20 {
            assert!(!wait_readable(&[fds[0]], Some(Duration::from_micros(10))).unwrap());
        }
        let took = t.elapsed();
        // SAFETY: closing descriptors we own exactly once.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        assert!(took >= Duration::from_micros(200), "{took:?}");
        assert!(
            took < Duration::from_millis(15),
            "{took:?}: rounded up to milliseconds?"
        );
    }

    #[test]
    fn waiting_for_input_times_out_on_an_empty_pipe_and_sees_data() {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        assert!(!wait_readable(&[fds[0]], Some(Duration::from_millis(1))).unwrap());
        // SAFETY: writing one byte from a valid buffer to the pipe's write end.
        assert_eq!(unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) }, 1);
        assert!(wait_readable(&[fds[0]], Some(Duration::from_millis(1000))).unwrap());
        // Which one: the pipe's read end, not the skipped negative fd.
        let which = poll_readable(&[-1, fds[0]], Some(Duration::ZERO)).unwrap();
        assert_eq!(which[..2], [false, true]);
        // SAFETY: closing descriptors we own exactly once.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }

    #[test]
    fn unknown_interface_has_no_index() {
        assert!(if_nametoindex("no-such-if0").is_err());
    }
}
