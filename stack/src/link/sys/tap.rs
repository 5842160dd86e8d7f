//! A TAP device (`/dev/net/tun`, `IFF_TAP | IFF_NO_PI`): Ethernet frames to and from
//! the kernel, which sees the other side as an ordinary network interface.
//!
//! The device is created (or attached to, if a persistent TAP of that name exists, e.g.
//! from `ip tuntap add dev NAME mode tap`) in the network namespace of the *calling
//! thread*. Addressing and bringing up the kernel side is the caller's business
//! (`ip addr add`, `ip link set up`). Without packet info and without a vnet header,
//! the kernel hands us frames with complete checksums.

use super::is_queue_full;
use crate::link::Link;
use crate::time::Instant;
use std::io;
use std::os::unix::io::{AsRawFd, RawFd};

/// A non-blocking TAP device.
#[derive(Debug)]
pub struct TapLink {
    iface: tun_tap::Iface,
}

impl TapLink {
    /// Opens (creating if needed) the TAP device `name` and makes it non-blocking.
    ///
    /// # Errors
    /// `/dev/net/tun` is missing, the caller lacks CAP_NET_ADMIN, or `name` is taken by
    /// a device of another kind.
    pub fn open(name: &str) -> io::Result<TapLink> {
        let iface = tun_tap::Iface::without_packet_info(name, tun_tap::Mode::Tap)?;
        iface.set_non_blocking()?;
        Ok(TapLink { iface })
    }

    /// The device name the kernel gave us (the requested one unless it was too long).
    pub fn name(&self) -> &str {
        self.iface.name()
    }
}

impl AsRawFd for TapLink {
    fn as_raw_fd(&self) -> RawFd {
        self.iface.as_raw_fd()
    }
}

impl Link for TapLink {
    fn recv(&mut self, _now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match self.iface.recv(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn send(&mut self, _now: Instant, frame: &[u8]) -> io::Result<()> {
        loop {
            match self.iface.send(frame) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_queue_full(&e) => {
                    log::debug!(target: "ustack::link", "tap {}: queue full, frame dropped", self.name());
                    return Ok(());
                }
                // The kernel side is down (no carrier): frames go nowhere, like a NIC with
                // no cable. Not an error for the stack.
                Err(e) if e.raw_os_error() == Some(libc::EIO) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}
