//! A TAP device (`/dev/net/tun`, `IFF_TAP | IFF_NO_PI`): Ethernet frames to and from
//! the kernel, which sees the other side as an ordinary network interface.
//!
//! The device is created (or attached to, if a persistent TAP of that name exists, e.g.
//! from `ip tuntap add dev NAME mode tap`) in the network namespace of the *calling
//! thread*. Addressing and bringing up the kernel side is the caller's business
//! (`ip addr add`, `ip link set up`).
//!
//! **Offloads** ([`TapLink::open_with_offload`]): the device is opened with
//! `IFF_VNET_HDR`, so every frame in either direction is preceded by a 10-byte
//! `struct virtio_net_hdr`, and `TUNSETOFFLOAD` turns on `TUN_F_CSUM | TUN_F_TSO4 |
//! TUN_F_TSO6` (without TSO6 when the kernel refuses it). The
//! kernel then sends us TCP super-frames of up to 64 KB (GSO, one read instead of ~44)
//! and frames whose TCP/UDP checksum it left partial (it never crossed a wire), and
//! takes the same from us. The 10-byte header rather than the 12-byte
//! `virtio_net_hdr_mrg_rxbuf`: its extra `num_buffers` field only matters to a virtio
//! driver merging receive buffers, never to one `read` of one frame, and 10 is the
//! kernel's default, which we still set explicitly. The header is in native byte order
//! (no `TUNSETVNETLE`), which is what the kernel uses for a TAP by default.
//!
//! When the kernel refuses (`IFF_VNET_HDR` or `TUNSETOFFLOAD` fails, e.g. an old kernel
//! or a device attached with other flags), the device is reopened plain, a log line
//! says so, and [`TapLink::offload`] reports false. Our own ioctl layer (not the
//! tun-tap crate, whose open knows no `IFF_VNET_HDR`): `TUNSETIFF`, `TUNSETVNETHDRSZ`,
//! `TUNSETOFFLOAD`.
//!
//! Frames move with `readv`/`writev` of the header and the caller's buffer, so the
//! frame itself is never copied here.

use super::vnet::{
    decode_vnet_hdr, encode_vnet_hdr, rx_iovecs, vnet_caps, write_with_header, VNET_HDR_LEN,
};
use super::{is_queue_full, retry_recv};
use crate::link::offload::{FrameMeta, LinkCaps};
use crate::link::Link;
use crate::time::Instant;
use std::io;
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags in the union.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// A non-blocking TAP device.
#[derive(Debug)]
pub struct TapLink {
    fd: OwnedFd,
    name: String,
    offload: bool,
    /// The kernel took `TUN_F_TSO6` too.
    tso6: bool,
    rx_meta: FrameMeta,
}

impl TapLink {
    /// Opens (creating if needed) the TAP device `name`, non-blocking, without offloads.
    ///
    /// # Errors
    /// `/dev/net/tun` is missing, the caller lacks CAP_NET_ADMIN, or `name` is taken by
    /// a device of another kind.
    pub fn open(name: &str) -> io::Result<TapLink> {
        Self::open_with_offload(name, false)
    }

    /// Opens the TAP device `name`, with checksum and TCP segmentation offload when
    /// `offload` is true and the kernel accepts it (see the module doc; if it does not,
    /// the device is plain and [`offload`](Self::offload) says so).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with_offload(name: &str, offload: bool) -> io::Result<TapLink> {
        if offload {
            match Self::open_flags(name, true) {
                Ok(mut link) => match link.enable_offload() {
                    Ok(()) => return Ok(link),
                    Err(e) => {
                        log::info!(target: "ustack::link", "tap {name}: kernel refused TUNSETOFFLOAD ({e}); offloads off");
                    }
                },
                Err(e) => {
                    log::info!(target: "ustack::link", "tap {name}: kernel refused IFF_VNET_HDR ({e}); offloads off");
                }
            }
        }
        let link = Self::open_flags(name, false)?;
        // Offload features outlive the descriptor that set them on a persistent TAP:
        // a plain reader after an offloading one would get super-frames and partial
        // checksums it cannot tell from garbage. Reset them (already off by default).
        if let Err(e) = link.set_offload_flags(0) {
            log::debug!(target: "ustack::link", "tap {}: resetting offloads: {e}", link.name);
        }
        Ok(link)
    }

    fn open_flags(name: &str, vnet: bool) -> io::Result<TapLink> {
        if name.len() >= libc::IFNAMSIZ || name.as_bytes().contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TAP name too long or contains NUL",
            ));
        }
        // SAFETY: a constant NUL-terminated path and plain flags.
        let raw = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a freshly opened descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TAP | IFF_NO_PI | if vnet { IFF_VNET_HDR } else { 0 },
            _pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which `IfReq` lays out
        // (40 bytes), and `req` lives across the call.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req as *mut IfReq) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let len = req
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(req.name.len());
        let name = String::from_utf8_lossy(&req.name[..len]).into_owned();
        Ok(TapLink {
            fd,
            name,
            offload: vnet,
            tso6: false,
            rx_meta: FrameMeta::default(),
        })
    }

    fn enable_offload(&mut self) -> io::Result<()> {
        let hdr_len: libc::c_int = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one int from the pointer, valid for the call.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), TUNSETVNETHDRSZ, &hdr_len) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // TSO6 where the kernel takes it; IPv4 offloads alone otherwise.
        if self
            .set_offload_flags(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
            .is_ok()
        {
            self.tso6 = true;
            log::debug!(target: "ustack::link", "tap {}: offloads on (csum, tso4, tso6)", self.name);
        } else {
            self.set_offload_flags(TUN_F_CSUM | TUN_F_TSO4)?;
            log::debug!(target: "ustack::link", "tap {}: offloads on (csum, tso4)", self.name);
        }
        Ok(())
    }

    fn set_offload_flags(&self, flags: libc::c_uint) -> io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes its flags by value.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), TUNSETOFFLOAD, flags as libc::c_ulong) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The device name the kernel gave us (the requested one unless it was too long).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether checksum and segmentation offloads are on.
    pub fn offload(&self) -> bool {
        self.offload
    }

    fn recv_plain(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let fd = self.fd.as_raw_fd();
        // SAFETY: `buf` is valid for `buf.len()` writable bytes.
        retry_recv(|| unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
    }

    fn recv_vnet(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut hdr = [0u8; VNET_HDR_LEN];
        loop {
            let iov = rx_iovecs(&mut hdr, buf);
            let fd = self.fd.as_raw_fd();
            // SAFETY: both iovecs describe live, writable buffers of the stated lengths.
            let Some(n) = retry_recv(|| unsafe { libc::readv(fd, iov.as_ptr(), 2) })? else {
                return Ok(None);
            };
            if n < VNET_HDR_LEN {
                // Not even a header: nothing we can hand up.
                continue;
            }
            self.rx_meta = decode_vnet_hdr(&hdr);
            return Ok(Some(n - VNET_HDR_LEN));
        }
    }

    fn write_frame(&mut self, frame: &[u8], meta: Option<&FrameMeta>) -> io::Result<()> {
        loop {
            let hdr = meta.map(|m| encode_vnet_hdr(frame, m));
            let res = match &hdr {
                Some(h) => write_with_header(self.fd.as_raw_fd(), h, frame),
                // SAFETY: `frame` is valid for `frame.len()` readable bytes.
                None => match unsafe {
                    libc::write(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len())
                } {
                    n if n < 0 => Err(io::Error::last_os_error()),
                    n => Ok(n as usize),
                },
            };
            let e = match res {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            match e {
                _ if e.kind() == io::ErrorKind::Interrupted => continue,
                _ if is_queue_full(&e) => {
                    log::debug!(target: "ustack::link", "tap {}: queue full, frame dropped", self.name);
                    return Ok(());
                }
                // The kernel side is down (no carrier): frames go nowhere, like a NIC
                // with no cable. Not an error for the stack.
                _ if e.raw_os_error() == Some(libc::EIO) => return Ok(()),
                _ => return Err(e),
            }
        }
    }
}

impl Drop for TapLink {
    /// Leaves a persistent TAP as it was found: offloads off for whoever attaches next
    /// (another program may read it without a virtio-net header).
    fn drop(&mut self) {
        if self.offload {
            let _ = self.set_offload_flags(0);
        }
    }
}

impl AsRawFd for TapLink {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Link for TapLink {
    fn recv(&mut self, _now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        if self.offload {
            self.recv_vnet(buf)
        } else {
            self.recv_plain(buf)
        }
    }

    fn send(&mut self, _now: Instant, frame: &[u8]) -> io::Result<()> {
        if self.offload {
            self.write_frame(frame, Some(&FrameMeta::default()))
        } else {
            self.write_frame(frame, None)
        }
    }

    fn caps(&self) -> LinkCaps {
        if self.offload {
            vnet_caps(self.tso6)
        } else {
            LinkCaps::default()
        }
    }

    fn rx_meta(&self) -> FrameMeta {
        if self.offload {
            self.rx_meta
        } else {
            FrameMeta::default()
        }
    }

    fn send_meta(&mut self, _now: Instant, frame: &[u8], meta: &FrameMeta) -> io::Result<()> {
        if self.offload {
            self.write_frame(frame, Some(meta))
        } else {
            debug_assert!(meta.is_plain(), "offload metadata for a plain TAP");
            self.write_frame(frame, None)
        }
    }
}
