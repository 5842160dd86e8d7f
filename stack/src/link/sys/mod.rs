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

pub use af_packet::AfPacketLink;
pub use tap::TapLink;

use std::io;
use std::os::unix::io::RawFd;
use std::time::Duration;

/// Most descriptors one [`wait_readable`] call watches (a driver needs its device and
/// its wake-up eventfd).
pub const MAX_WAIT_FDS: usize = 4;

/// Waits until one of `fds` is readable or `timeout` passes (`None` waits forever).
/// The one poll(2) of every host loop: a driver passes its device and its wake-up fd.
///
/// Returns `Ok(true)` when one is readable (or hung up/in error, so the next read
/// reports it), `Ok(false)` on timeout or when a signal interrupted the wait.
///
/// # Errors
/// poll(2) failed for a reason other than EINTR, or more than [`MAX_WAIT_FDS`] fds were
/// given.
pub fn wait_readable(fds: &[RawFd], timeout: Option<Duration>) -> io::Result<bool> {
    if fds.len() > MAX_WAIT_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many descriptors to wait on",
        ));
    }
    let timeout_ms: libc::c_int = match timeout {
        None => -1,
        // Round up so a deadline 0.3 ms away does not turn into a busy loop of 0 ms polls.
        Some(d) => d.as_micros().div_ceil(1000).min(libc::c_int::MAX as u128) as libc::c_int,
    };
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: libc::POLLIN,
        revents: 0,
    }; MAX_WAIT_FDS];
    for (p, &fd) in pfds.iter_mut().zip(fds) {
        p.fd = fd;
    }
    // SAFETY: `pfds` holds `fds.len()` (at most MAX_WAIT_FDS) initialised pollfds.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(err);
    }
    Ok(n > 0)
}

/// Whether a send error means "the device queue is full": the frame is dropped, not an error.
fn is_queue_full(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOBUFS) | Some(libc::EAGAIN))
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
    fn waiting_for_input_times_out_on_an_empty_pipe_and_sees_data() {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        assert!(!wait_readable(&[fds[0]], Some(Duration::from_millis(1))).unwrap());
        // SAFETY: writing one byte from a valid buffer to the pipe's write end.
        assert_eq!(unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) }, 1);
        assert!(wait_readable(&[fds[0]], Some(Duration::from_millis(1000))).unwrap());
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
