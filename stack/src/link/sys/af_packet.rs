//! An AF_PACKET raw socket bound to one interface: the stack shares a real (or veth)
//! interface with the kernel at the Ethernet level.
//!
//! The kernel must **not** own the stack's IP address on that interface, or both would
//! answer ARP and ping (and the kernel would reset the stack's TCP connections). Use,
//! e.g., one end of a veth pair with no address, the stack's address living only in
//! the stack. With checksum offload on the peer (veth default), the kernel may hand
//! us UDP/TCP with partial checksums: turn it off on the sending end
//! (`ethtool -K PEER tx off`).
//!
//! Frames we sent come back to a packet socket as `PACKET_OUTGOING`; they are skipped
//! so the stack does not hear itself.

use super::{if_nametoindex, is_queue_full};
use crate::link::Link;
use crate::time::Instant;
use std::io;
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A non-blocking AF_PACKET/SOCK_RAW socket bound to one interface.
#[derive(Debug)]
pub struct AfPacketLink {
    fd: OwnedFd,
    ifname: String,
    ifindex: u32,
}

impl AfPacketLink {
    /// Opens a raw packet socket on `ifname` (in the calling thread's namespace).
    ///
    /// # Errors
    /// No such interface, or the caller lacks CAP_NET_RAW.
    pub fn open(ifname: &str) -> io::Result<AfPacketLink> {
        let ifindex = if_nametoindex(ifname)?;
        // Protocol 0 at creation: the socket receives nothing until bound, so no frame
        // from another interface slips in between socket(2) and bind(2).
        // SAFETY: plain syscall with constant arguments.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a freshly created descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll and we pass its exact size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        enlarge_receive_buffer(&fd);
        Ok(AfPacketLink {
            fd,
            ifname: ifname.to_owned(),
            ifindex,
        })
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
}

impl AsRawFd for AfPacketLink {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Link for AfPacketLink {
    fn recv(&mut self, _now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut sll_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `buf` is valid for `buf.len()` writable bytes, `sll` for `sll_len`.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut sll as *mut libc::sockaddr_ll).cast(),
                    &mut sll_len,
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::WouldBlock => return Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(err),
                }
            }
            if sll.sll_pkttype == libc::PACKET_OUTGOING {
                // Our own transmission (or the kernel's on this interface), looped back.
                continue;
            }
            return Ok(Some(n as usize));
        }
    }

    fn send(&mut self, _now: Instant, frame: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: `frame` is valid for `frame.len()` readable bytes.
            let n =
                unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
            if n >= 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if is_queue_full(&err) {
                log::debug!(target: "ustack::link", "af_packet {}: queue full, frame dropped", self.ifname);
                return Ok(());
            }
            // ENETDOWN: the interface is down; like a NIC without a cable, drop.
            if err.raw_os_error() == Some(libc::ENETDOWN) {
                return Ok(());
            }
            return Err(err);
        }
    }
}

/// Receive buffer asked for an AF_PACKET socket: TCP's receive window grows to megabytes
/// (autotuning), and a kernel sender then bursts that much; with the default buffer
/// (about 208 KiB, some 90 frames) the socket dropped parts of such a burst before
/// the stack saw them, and the sender resent them.
const RX_SOCKET_BUFFER: libc::c_int = 8 << 20;

/// Best effort: SO_RCVBUFFORCE (CAP_NET_ADMIN may exceed `net.core.rmem_max`), else
/// SO_RCVBUF (capped by it). A failure leaves the default, which still works.
fn enlarge_receive_buffer(fd: &OwnedFd) {
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: setsockopt with a valid int option value and its exact size.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&RX_SOCKET_BUFFER as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}
