//! An AF_PACKET raw socket bound to one interface: the stack shares a real (or veth)
//! interface with the kernel at the Ethernet level.
//!
//! The kernel must **not** own the stack's IP address on that interface, or both would
//! answer ARP and ping (and the kernel would reset the stack's TCP connections). Use,
//! e.g., one end of a veth pair with no address, the stack's address living only in
//! the stack.
//!
//! Frames sent on the interface come back to packet sockets as `PACKET_OUTGOING`
//! copies (to every packet socket but the one that sent them, so these are the
//! kernel's or another socket's); they are skipped so the stack hears only what
//! arrives.
//!
//! Three ways to run, chosen at open:
//!
//! - **Offloads** ([`AfPacketLink::open_vnet`], or [`AfPacketLink::open_with_offload`]
//!   falling back to the next two): `PACKET_VNET_HDR` is set before bind(2), so every
//!   frame either way is preceded by the same 10-byte `struct virtio_net_hdr` a TAP
//!   with `IFF_VNET_HDR` uses (`super::vnet`). A peer with the veth defaults (transmit
//!   checksum, TSO) hands us TCP super-frames of up to 64 KB and partial checksums,
//!   which the header describes and the interface accepts; we send TSO
//!   super-segments with partial checksums, which the kernel cuts or delivers whole.
//!   One recvmsg(2) per frame or super-frame, one writev(2) per frame sent; no ring
//!   (see `recv_vnet` for why).
//! - **Receive ring** ([`AfPacketLink::open`]): a `PACKET_RX_RING` (TPACKET_V2) shared
//!   with the kernel, so frames that are already waiting cost no system call.
//! - **Plain** ([`AfPacketLink::open_plain`], or when the ring does not set up): one
//!   `recvfrom(2)` per frame.
//!
//! Without offloads every frame must be a wire frame with complete checksums: with
//! transmit checksum offload or TSO on the peer (the veth defaults), the kernel hands
//! the socket super-frames and partial checksums that the stack drops, so the peer's
//! offloads must then be off (`ethtool -K PEER tx off`). With offloads on, nothing is
//! needed on the peer.

use super::vnet::{
    decode_vnet_hdr, encode_vnet_hdr, rx_iovecs, vnet_caps, write_with_header, VNET_HDR_LEN,
};
use super::{if_nametoindex, is_queue_full, retry_recv};
use crate::link::offload::{FrameMeta, LinkCaps};
use crate::link::{Link, RingStats};
use crate::time::Instant;
use std::io;
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// A non-blocking AF_PACKET/SOCK_RAW socket bound to one interface.
#[derive(Debug)]
pub struct AfPacketLink {
    /// The receive ring, when it set up; `None` receives with recvfrom(2). Declared
    /// before `fd`: unmapped before the socket closes.
    ring: Option<RxRing>,
    fd: OwnedFd,
    ifname: String,
    ifindex: u32,
    /// Consecutive `recv` calls that found the ring empty (see [`ERROR_CHECK_EVERY`]).
    empty_streak: u32,
    /// The last slot read carried TP_STATUS_LOSING (to log an overflow once).
    losing: bool,
    /// `PACKET_VNET_HDR` is on: every frame either way has a virtio-net header, and
    /// the link offloads (see the module doc). Never with a ring.
    vnet: bool,
    /// The header of the last frame received (vnet mode).
    rx_meta: FrameMeta,
}

/// Bytes of receive ring [`AfPacketLink::open`] asks for: like the plain path's
/// `RX_SOCKET_BUFFER`, room for a TCP burst of megabytes (4096 slots at MTU 1500).
pub const RX_RING_BYTES: usize = 8 << 20;

/// Smallest ring block: blocks must be whole pages; a few of them keep the kernel's
/// per-block allocations small (order 4) while the slots stay contiguous in the mapping.
const RX_RING_BLOCK_MIN: usize = 64 << 10;

/// Largest slot accepted (MTU 65535 needs 128 KiB); a larger MTU falls back to recvfrom.
const RX_SLOT_MAX: usize = 128 << 10;

/// Room for one 802.1Q tag the NIC did not strip.
const VLAN_HLEN: usize = 4;

/// Checks the socket's pending error after this many `recv` calls in a row that found
/// the ring empty. An error (ENETDOWN when the interface goes down) makes poll(2)
/// report the socket ready until something reads the error; recvfrom(2) does that on
/// the plain path, the ring never calls it, so without this the host loop would spin.
const ERROR_CHECK_EVERY: u32 = 16;

impl AfPacketLink {
    /// Opens a raw packet socket on `ifname` (in the calling thread's namespace),
    /// receiving through a [`RX_RING_BYTES`] ring when it sets up and with recvfrom(2)
    /// otherwise (logged at debug level on `ustack::link`); [`ring`](Self::ring) says which.
    ///
    /// # Errors
    /// No such interface, or the caller lacks CAP_NET_RAW.
    pub fn open(ifname: &str) -> io::Result<AfPacketLink> {
        match AfPacketLink::open_with_ring(ifname, RX_RING_BYTES) {
            Ok(link) => Ok(link),
            Err(e) => {
                log::debug!(target: "ustack::link", "af_packet {ifname}: no receive ring ({e}), using recvfrom");
                AfPacketLink::open_plain(ifname)
            }
        }
    }

    /// Opens a raw packet socket on `ifname` that receives with one recvfrom(2) per
    /// frame (no ring): the escape hatch and the A/B baseline.
    ///
    /// # Errors
    /// No such interface, or the caller lacks CAP_NET_RAW.
    pub fn open_plain(ifname: &str) -> io::Result<AfPacketLink> {
        AfPacketLink::open_without_ring(ifname, false)
    }

    /// Opens a raw packet socket on `ifname` with checksum and segmentation offloads
    /// (`PACKET_VNET_HDR`, see the module doc) when `offload` is true and the kernel
    /// takes it; otherwise, or when it refuses (logged on `ustack::link`), as
    /// [`open`](Self::open) when `ring` is true and [`open_plain`](Self::open_plain)
    /// when not. [`offload`](Self::offload) says which.
    ///
    /// # Errors
    /// No such interface, or the caller lacks CAP_NET_RAW.
    pub fn open_with_offload(ifname: &str, offload: bool, ring: bool) -> io::Result<AfPacketLink> {
        if offload {
            match AfPacketLink::open_vnet(ifname) {
                Ok(link) => return Ok(link),
                Err(e) => {
                    log::info!(target: "ustack::link", "af_packet {ifname}: kernel refused PACKET_VNET_HDR ({e}); offloads off");
                }
            }
        }
        if ring {
            AfPacketLink::open(ifname)
        } else {
            AfPacketLink::open_plain(ifname)
        }
    }

    /// Opens a raw packet socket on `ifname` with `PACKET_VNET_HDR` (offloads; one
    /// recvmsg(2) per frame or super-frame), failing rather than falling back.
    ///
    /// # Errors
    /// No such interface, no CAP_NET_RAW, or the kernel refused PACKET_VNET_HDR.
    pub fn open_vnet(ifname: &str) -> io::Result<AfPacketLink> {
        let link = AfPacketLink::open_without_ring(ifname, true)?;
        log::debug!(target: "ustack::link", "af_packet {ifname}: offloads on (PACKET_VNET_HDR)");
        Ok(link)
    }

    /// A socket bound to `ifname` that receives with a system call per frame, with
    /// `PACKET_VNET_HDR` when `vnet`.
    fn open_without_ring(ifname: &str, vnet: bool) -> io::Result<AfPacketLink> {
        let ifindex = if_nametoindex(ifname)?;
        let fd = packet_socket()?;
        if vnet {
            // Before bind(2): the socket hears nothing until bound, so no frame is
            // queued without its header.
            let on: libc::c_int = 1;
            set_packet_option(&fd, libc::PACKET_VNET_HDR, &on)?;
        }
        bind_to(&fd, ifindex)?;
        enlarge_receive_buffer(&fd);
        Ok(AfPacketLink {
            fd,
            ifname: ifname.to_owned(),
            ifindex,
            ring: None,
            empty_streak: 0,
            losing: false,
            vnet,
            rx_meta: FrameMeta::default(),
        })
    }

    /// Opens a raw packet socket on `ifname` receiving through a TPACKET_V2 ring of
    /// about `ring_bytes` (at least one block), failing rather than falling back.
    ///
    /// TPACKET_V2, not V3: V3 hands a whole block to user space at once, when it fills
    /// or when its retire timer (milliseconds) fires, which adds up to that timer to
    /// every frame of a request/response exchange. V2 marks each frame
    /// `TP_STATUS_USER` and wakes the socket per frame, so latency is unchanged, and a
    /// reader that keeps up makes no system call per frame.
    ///
    /// # Errors
    /// No such interface, no CAP_NET_RAW, a kernel without TPACKET_V2 rings, an MTU the
    /// ring cannot hold, or the ring could not be allocated or mapped.
    pub fn open_with_ring(ifname: &str, ring_bytes: usize) -> io::Result<AfPacketLink> {
        let ifindex = if_nametoindex(ifname)?;
        let fd = packet_socket()?;
        // The ring goes in before bind(2): the socket hears nothing until bound, so no
        // frame waits in the plain receive queue, where the ring reader would never look.
        let version = libc::tpacket_versions::TPACKET_V2 as libc::c_int;
        set_packet_option(&fd, libc::PACKET_VERSION, &version)?;
        let mtu = interface_mtu(&fd, ifname)?;
        let geometry = RingGeometry::for_mtu(mtu, ring_bytes).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("MTU {mtu} does not fit a ring slot"),
            )
        })?;
        let req = geometry.request();
        set_packet_option(&fd, libc::PACKET_RX_RING, &req)?;
        let map_len = geometry.map_len();
        // SAFETY: a fresh shared mapping of the ring the kernel just allocated for this
        // socket, exactly `map_len` (block size × block count) bytes from offset 0; the
        // result is checked against MAP_FAILED before use.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let Some(base) = NonNull::new(map.cast::<u8>()) else {
            return Err(io::Error::other("mmap returned a null ring"));
        };
        // SAFETY: `base` is our fresh mapping of `map_len` bytes, page-aligned, holding
        // `geometry.slots()` slots of `geometry.slot_len` bytes each (the slot length
        // divides the block length, so slots sit back to back), all TP_STATUS_KERNEL.
        let ring = unsafe { RxRing::new(base, map_len, geometry.slot_len, geometry.slots(), true) };
        bind_to(&fd, ifindex)?;
        Ok(AfPacketLink {
            fd,
            ifname: ifname.to_owned(),
            ifindex,
            ring: Some(ring),
            empty_streak: 0,
            losing: false,
            vnet: false,
            rx_meta: FrameMeta::default(),
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

    /// Whether frames arrive through the mmap'd receive ring (else recvfrom(2) or,
    /// with offloads, recvmsg(2)).
    pub fn ring(&self) -> bool {
        self.ring.is_some()
    }

    /// Whether checksum and segmentation offloads are on (`PACKET_VNET_HDR`).
    pub fn offload(&self) -> bool {
        self.vnet
    }

    /// Adds the kernel's drop count to the ring's stats (a no-op without a ring).
    fn collect_kernel_drops(&mut self) {
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        if let Ok(drops) = packet_drops(self.fd.as_raw_fd()) {
            ring.stats.kernel_drops += u64::from(drops);
        }
    }

    /// Receives from the ring: the next frame, skipping and releasing what is not one.
    fn recv_ring(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Some(ring) = self.ring.as_mut() else {
            return Ok(None);
        };
        let got = loop {
            let (losing, len) = match ring.take(buf) {
                Slot::Empty => break None,
                Slot::Frame { len, losing } => (losing, Some(len)),
                Slot::Skipped { losing } => (losing, None),
            };
            // The mark stays on every frame until someone reads the drop count: log
            // when it appears, not per frame.
            if losing && !self.losing {
                log::debug!(target: "ustack::link", "af_packet {}: receive ring overflowed, frames lost", self.ifname);
            }
            self.losing = losing;
            if len.is_some() {
                break len;
            }
        };
        if got.is_some() {
            self.empty_streak = 0;
            return Ok(got);
        }
        self.empty_streak += 1;
        if self.empty_streak >= ERROR_CHECK_EVERY {
            self.empty_streak = 0;
            take_socket_error(&self.fd)?;
        }
        Ok(None)
    }

    /// Receives with recvfrom(2), skipping our own frames.
    fn recv_plain(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut sll_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            let fd = self.fd.as_raw_fd();
            // SAFETY: `buf` is valid for `buf.len()` writable bytes, `sll` for `sll_len`.
            let Some(n) = retry_recv(|| unsafe {
                libc::recvfrom(
                    fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut sll as *mut libc::sockaddr_ll).cast(),
                    &mut sll_len,
                )
            })?
            else {
                return Ok(None);
            };
            if sll.sll_pkttype == libc::PACKET_OUTGOING {
                // A copy of a frame sent on the interface by the kernel or another socket.
                continue;
            }
            return Ok(Some(n));
        }
    }

    /// Receives one frame and its virtio-net header with recvmsg(2), skipping our own
    /// frames, ones shorter than a header and ones longer than `buf` (cut by the
    /// kernel: MSG_TRUNC). Not through the ring: a TPACKET_V2 slot is sized for the
    /// MTU and the kernel cuts a 64 KB super-frame to it, and slots of 64 KB would
    /// make an 8 MiB ring hold 128 frames; TPACKET_V3 packs frames of any length into
    /// blocks, but hands a block over only when it fills or its retire timer
    /// (milliseconds) fires, the latency the V2 ring was chosen to avoid.
    fn recv_vnet(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut hdr = [0u8; VNET_HDR_LEN];
        loop {
            // SAFETY: sockaddr_ll and msghdr are plain old data; all-zero is valid.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut iov = rx_iovecs(&mut hdr, buf);
            // SAFETY: as above.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = (&mut sll as *mut libc::sockaddr_ll).cast();
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            msg.msg_iov = iov.as_mut_ptr();
            msg.msg_iovlen = iov.len() as _;
            let fd = self.fd.as_raw_fd();
            // SAFETY: `msg` points at `sll` and at two iovecs describing live, writable
            // buffers of the stated lengths, all alive across the call; no control data.
            let Some(n) = retry_recv(|| unsafe { libc::recvmsg(fd, &mut msg, 0) })? else {
                return Ok(None);
            };
            if sll.sll_pkttype == libc::PACKET_OUTGOING {
                // A copy of a frame sent on the interface by the kernel or another socket.
                continue;
            }
            if msg.msg_flags & libc::MSG_TRUNC != 0 {
                log::debug!(target: "ustack::link", "af_packet {}: frame longer than {} bytes dropped", self.ifname, buf.len());
                continue;
            }
            if n < VNET_HDR_LEN {
                // Not even a header: nothing we can hand up.
                continue;
            }
            self.rx_meta = decode_vnet_hdr(&hdr);
            return Ok(Some(n - VNET_HDR_LEN));
        }
    }

    /// Sends one frame, behind a virtio-net header for `meta` in vnet mode.
    fn send_frame(&mut self, frame: &[u8], meta: &FrameMeta) -> io::Result<()> {
        loop {
            let res = if self.vnet {
                write_with_header(self.fd.as_raw_fd(), &encode_vnet_hdr(frame, meta), frame)
            } else {
                // SAFETY: `frame` is valid for `frame.len()` readable bytes.
                match unsafe {
                    libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0)
                } {
                    n if n < 0 => Err(io::Error::last_os_error()),
                    n => Ok(n as usize),
                }
            };
            let err = match res {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
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

/// A new non-blocking AF_PACKET/SOCK_RAW socket, not yet bound.
fn packet_socket() -> io::Result<OwnedFd> {
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
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Binds a packet socket to every protocol on interface `ifindex`.
fn bind_to(fd: &OwnedFd, ifindex: u32) -> io::Result<()> {
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
    Ok(())
}

/// setsockopt(SOL_PACKET, `opt`, `value`).
fn set_packet_option<T>(fd: &OwnedFd, opt: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is valid for `size_of::<T>()` readable bytes for the whole call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            opt,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The MTU of `ifname` (SIOCGIFMTU on any socket of the namespace).
fn interface_mtu(fd: &OwnedFd, ifname: &str) -> io::Result<usize> {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = ifname.as_bytes();
    if name.len() >= ifr.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    for (d, &s) in ifr.ifr_name.iter_mut().zip(name) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCGIFMTU reads the NUL-terminated name from `ifr` and writes the MTU
    // into it; `ifr` is a valid ifreq for the whole call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFMTU filled the union's `ifru_mtu` member.
    let mtu = unsafe { ifr.ifr_ifru.ifru_mtu };
    usize::try_from(mtu).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "negative MTU"))
}

/// Frames the kernel dropped at an AF_PACKET socket since the previous call (receive
/// buffer full), from `PACKET_STATISTICS` (which resets on every read).
///
/// # Errors
/// `fd` is not a packet socket.
pub fn packet_drops(fd: RawFd) -> io::Result<u32> {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `stats`, which outlives the call.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut stats as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stats.tp_drops)
}

/// Reads and clears the socket's pending error (SO_ERROR), returning it as an error.
fn take_socket_error(fd: &OwnedFd) -> io::Result<()> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `err`, which has exactly that size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(())
}

/// The shape of a receive ring: slots of `slot_len` bytes in blocks of `block_len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RingGeometry {
    slot_len: usize,
    block_len: usize,
    blocks: usize,
}

impl RingGeometry {
    /// The ring for an interface MTU in about `ring_bytes` (at least one block), or
    /// `None` when the MTU is out of range.
    fn for_mtu(mtu: usize, ring_bytes: usize) -> Option<RingGeometry> {
        let slot_len = slot_len_for_mtu(mtu)?;
        let block_len = slot_len.max(RX_RING_BLOCK_MIN).max(page_size());
        let blocks = (ring_bytes / block_len).max(1);
        u32::try_from(blocks * (block_len / slot_len)).ok()?;
        u32::try_from(block_len).ok()?;
        Some(RingGeometry {
            slot_len,
            block_len,
            blocks,
        })
    }

    /// Slots in the ring.
    fn slots(&self) -> usize {
        self.blocks * (self.block_len / self.slot_len)
    }

    /// Bytes mapped.
    fn map_len(&self) -> usize {
        self.blocks * self.block_len
    }

    /// The PACKET_RX_RING request.
    fn request(&self) -> libc::tpacket_req {
        // Every value fits a u32: `for_mtu` checked.
        libc::tpacket_req {
            tp_block_size: self.block_len as libc::c_uint,
            tp_block_nr: self.blocks as libc::c_uint,
            tp_frame_size: self.slot_len as libc::c_uint,
            tp_frame_nr: self.slots() as libc::c_uint,
        }
    }
}

/// Offset of the network header in a TPACKET_V2 slot, the Ethernet header just before
/// it: `TPACKET_ALIGN(TPACKET2_HDRLEN + 16)` (the kernel reserves at least 16 bytes for
/// the link header, of which Ethernet takes 14), so a frame ends at this plus its
/// network-layer length.
const fn slot_network_offset() -> usize {
    tpacket_align(libc::TPACKET2_HDRLEN + 16)
}

/// The slot for one frame of an interface with `mtu`: header, Ethernet, one VLAN tag
/// and `mtu` bytes of packet, rounded up to a power of two (2048 for MTU 1500), so
/// slots tile the power-of-two blocks exactly. `None` outside 68..=65535 + slack.
fn slot_len_for_mtu(mtu: usize) -> Option<usize> {
    if mtu < 68 {
        return None;
    }
    let need = tpacket_align(slot_network_offset() + VLAN_HLEN + mtu);
    let slot = need.checked_next_power_of_two()?;
    (slot <= RX_SLOT_MAX).then_some(slot)
}

/// TPACKET_ALIGN: up to a multiple of TPACKET_ALIGNMENT.
const fn tpacket_align(x: usize) -> usize {
    (x + libc::TPACKET_ALIGNMENT - 1) & !(libc::TPACKET_ALIGNMENT - 1)
}

/// The system page size (4096 if sysconf cannot say).
fn page_size() -> usize {
    // SAFETY: sysconf with a constant name has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// What one slot held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// The slot belongs to the kernel: nothing more to read now.
    Empty,
    /// A frame of `len` bytes was copied into the caller's buffer.
    Frame {
        /// Bytes copied.
        len: usize,
        /// The kernel marked it TP_STATUS_LOSING.
        losing: bool,
    },
    /// The slot held nothing for the caller (our own frame, or one dropped and
    /// counted); it was released.
    Skipped {
        /// The kernel marked it TP_STATUS_LOSING.
        losing: bool,
    },
}

/// Offset of `sll_pkttype` in a TPACKET_V2 slot: the `sockaddr_ll` follows the header
/// at `TPACKET_ALIGN(sizeof(tpacket2_hdr))`.
const SLOT_PKTTYPE_OFFSET: usize = tpacket_align(std::mem::size_of::<libc::tpacket2_hdr>())
    + std::mem::offset_of!(libc::sockaddr_ll, sll_pkttype);

/// The reader's side of a TPACKET_V2 receive ring: walks the slots in order and hands
/// each back to the kernel as soon as its frame is copied out.
///
/// Invariant: slots are released in ring order. The kernel's poll(2) reports the
/// socket readable while the slot before its write position is not TP_STATUS_KERNEL,
/// so a slot kept back past its turn would make poll(2) report input forever.
#[derive(Debug)]
struct RxRing {
    base: NonNull<u8>,
    map_len: usize,
    slot_len: usize,
    slots: usize,
    /// The next slot to read.
    next: usize,
    /// munmap `base` on drop (false for memory the ring does not own: tests).
    mapped: bool,
    stats: RingStats,
}

// SAFETY: the ring is plain memory shared with the kernel, touched only through
// `&mut self` (one thread at a time); nothing in it is tied to a thread.
unsafe impl Send for RxRing {}
// SAFETY: `&RxRing` only reads the plain fields, never the shared memory.
unsafe impl Sync for RxRing {}

impl RxRing {
    /// A reader over `slots` slots of `slot_len` bytes at `base`.
    ///
    /// # Safety
    /// `base` must be valid for reads and writes of `slots * slot_len <= map_len` bytes
    /// for the ring's whole life, aligned to 16, with `slot_len` a multiple of 16 and at
    /// least [`slot_network_offset`]; the memory is shared only with a kernel (or test)
    /// following the TPACKET_V2 status protocol. With `mapped`, `base` is an mmap(2) of
    /// `map_len` bytes that the ring unmaps on drop.
    unsafe fn new(
        base: NonNull<u8>,
        map_len: usize,
        slot_len: usize,
        slots: usize,
        mapped: bool,
    ) -> RxRing {
        RxRing {
            base,
            map_len,
            slot_len,
            slots,
            next: 0,
            mapped,
            stats: RingStats::default(),
        }
    }

    /// Looks at the next slot: copies its frame into `buf` if it holds one for us and
    /// hands the slot back to the kernel. Never panics on what the slot holds.
    fn take(&mut self, buf: &mut [u8]) -> Slot {
        // SAFETY: `next < slots`, so the slot lies inside the ring (`new`'s contract).
        let slot = unsafe { self.base.as_ptr().add(self.next * self.slot_len) };
        // SAFETY: the slot is 16-aligned and starts with the u32 status word, which the
        // kernel also accesses atomically (READ_ONCE/WRITE_ONCE with barriers); this is
        // the only way we touch it.
        let status_word = unsafe { AtomicU32::from_ptr(slot.cast::<u32>()) };
        // Acquire: the kernel writes the frame, then the status (smp_wmb in between);
        // seeing TP_STATUS_USER makes the frame's bytes visible to us.
        let status = status_word.load(Ordering::Acquire);
        if status & libc::TP_STATUS_USER == 0 {
            return Slot::Empty;
        }
        let losing = status & libc::TP_STATUS_LOSING != 0;
        if losing {
            self.stats.losing += 1;
        }
        // SAFETY: the slot is ours while TP_STATUS_USER is set (the kernel writes it only
        // after we store TP_STATUS_KERNEL), at least `slot_network_offset()` bytes long,
        // so the header and the sockaddr_ll after it are inside; read_unaligned copes
        // with any layout.
        let hdr = unsafe { std::ptr::read_unaligned(slot.cast::<libc::tpacket2_hdr>()) };
        // SAFETY: as above; SLOT_PKTTYPE_OFFSET is inside the header area of the slot.
        let pkttype = unsafe { *slot.add(SLOT_PKTTYPE_OFFSET) };
        let mac = usize::from(hdr.tp_mac);
        let snap = hdr.tp_snaplen as usize;
        let outcome = if pkttype == libc::PACKET_OUTGOING {
            // A copy of a frame sent on the interface by the kernel or another socket.
            self.stats.outgoing += 1;
            None
        } else if mac < std::mem::size_of::<libc::tpacket2_hdr>()
            || mac.checked_add(snap).is_none_or(|end| end > self.slot_len)
        {
            self.stats.malformed += 1;
            None
        } else if snap < hdr.tp_len as usize {
            // Larger than the slot (a GSO frame, or the MTU grew): the rest is gone.
            self.stats.truncated += 1;
            None
        } else if snap > buf.len() {
            self.stats.too_long += 1;
            None
        } else {
            // SAFETY: `mac + snap <= slot_len` (checked), so the source lies inside the
            // slot, which is ours until released below; `buf` has room for `snap`
            // bytes (checked) and cannot overlap the kernel's ring.
            unsafe { std::ptr::copy_nonoverlapping(slot.add(mac), buf.as_mut_ptr(), snap) };
            self.stats.frames += 1;
            Some(snap)
        };
        // Release: our reads of the slot happen before the kernel may overwrite it.
        status_word.store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.next = (self.next + 1) % self.slots;
        match outcome {
            Some(len) => Slot::Frame { len, losing },
            None => Slot::Skipped { losing },
        }
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        if self.mapped {
            // SAFETY: `base`/`map_len` is the mapping made in `open_with_ring`, unmapped
            // exactly once, here; nothing borrows it past the ring's life.
            unsafe { libc::munmap(self.base.as_ptr().cast(), self.map_len) };
        }
    }
}

impl AsRawFd for AfPacketLink {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Link for AfPacketLink {
    fn recv(&mut self, _now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        if self.vnet {
            self.recv_vnet(buf)
        } else if self.ring.is_some() {
            self.recv_ring(buf)
        } else {
            self.recv_plain(buf)
        }
    }

    fn send(&mut self, _now: Instant, frame: &[u8]) -> io::Result<()> {
        self.send_frame(frame, &FrameMeta::default())
    }

    /// What the receive ring saw so far (`None` without a ring: offloads or the plain
    /// path), with the kernel's drops read now (PACKET_STATISTICS, which resets the
    /// kernel's count; they accumulate here).
    ///
    /// The receive path itself never reads that count: `ustack wire` and `ustack bench
    /// loss` read it from the descriptor, and a read here would take their figures.
    fn ring_stats(&mut self) -> Option<RingStats> {
        self.collect_kernel_drops();
        self.ring.as_ref().map(|r| r.stats)
    }

    fn caps(&self) -> LinkCaps {
        if self.vnet {
            // The kernel segments TCP over IPv4 and IPv6 alike for a packet socket
            // (virtio_net_hdr_to_skb), whatever the device's own features.
            vnet_caps(true)
        } else {
            LinkCaps::default()
        }
    }

    fn rx_meta(&self) -> FrameMeta {
        // Default until a vnet-mode receive sets it; never set otherwise.
        self.rx_meta
    }

    fn send_meta(&mut self, _now: Instant, frame: &[u8], meta: &FrameMeta) -> io::Result<()> {
        debug_assert!(
            self.vnet || meta.is_plain(),
            "offload metadata for a plain AF_PACKET link"
        );
        self.send_frame(frame, meta)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_fits_header_ethernet_vlan_and_mtu_in_a_power_of_two() {
        // 52-byte TPACKET2_HDRLEN + 16 of link room, aligned: the IP header at 80.
        assert_eq!(libc::TPACKET2_HDRLEN, 52);
        assert_eq!(slot_network_offset(), 80);
        assert_eq!(slot_len_for_mtu(1500), Some(2048));
        // 80 + 4 + 1964 = 2048 exactly; one byte more needs the next size.
        assert_eq!(slot_len_for_mtu(1964), Some(2048));
        assert_eq!(slot_len_for_mtu(1965), Some(4096));
        assert_eq!(slot_len_for_mtu(9000), Some(16384));
        assert_eq!(slot_len_for_mtu(65535), Some(128 << 10));
        assert_eq!(slot_len_for_mtu(200_000), None);
        assert_eq!(slot_len_for_mtu(0), None);
        assert_eq!(slot_len_for_mtu(67), None);
    }

    #[test]
    fn ring_geometry_tiles_blocks_with_slots() {
        let g = RingGeometry::for_mtu(1500, RX_RING_BYTES).unwrap();
        assert_eq!(g.slot_len, 2048);
        assert_eq!(g.block_len % page_size(), 0);
        assert_eq!(g.block_len % g.slot_len, 0);
        assert_eq!(g.map_len(), RX_RING_BYTES);
        assert_eq!(g.slots(), 4096);
        let req = g.request();
        assert_eq!(
            req.tp_frame_nr as usize * req.tp_frame_size as usize,
            req.tp_block_nr as usize * req.tp_block_size as usize
        );
        // A tiny request still gets one block; a jumbo MTU gets fewer, larger slots.
        let g = RingGeometry::for_mtu(1500, 1).unwrap();
        assert_eq!((g.blocks, g.slots()), (1, RX_RING_BLOCK_MIN / 2048));
        let g = RingGeometry::for_mtu(65535, RX_RING_BYTES).unwrap();
        assert_eq!(
            (g.slot_len, g.block_len, g.slots()),
            (128 << 10, 128 << 10, 64)
        );
    }

    /// A ring of `slots` slots of 2048 bytes in ordinary (16-aligned) memory, written
    /// the way the kernel writes one.
    struct FakeRing {
        mem: Vec<u128>,
        ring: RxRing,
    }

    const SLOT: usize = 2048;

    impl FakeRing {
        fn new(slots: usize) -> FakeRing {
            let mut mem = vec![0u128; slots * SLOT / 16];
            let base = NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
            // SAFETY: `mem` (16-aligned, `slots * SLOT` bytes) lives as long as the ring
            // in this struct and is not moved (a Vec's heap buffer stays put).
            let ring = unsafe { RxRing::new(base, slots * SLOT, SLOT, slots, false) };
            FakeRing { mem, ring }
        }

        fn bytes(&mut self) -> &mut [u8] {
            // SAFETY: reinterpreting the u128 buffer as bytes; any byte value is valid.
            unsafe {
                std::slice::from_raw_parts_mut(
                    self.mem.as_mut_ptr().cast::<u8>(),
                    self.mem.len() * 16,
                )
            }
        }

        /// Fills slot `i` like tpacket_rcv does: frame at the usual offset, header, then
        /// the status word last.
        fn put(&mut self, i: usize, status: u32, frame: &[u8], wire_len: usize, pkttype: u8) {
            let mac = slot_network_offset() - 14;
            let s = &mut self.bytes()[i * SLOT..(i + 1) * SLOT];
            let snap = frame.len().min(SLOT - mac);
            s[mac..mac + snap].copy_from_slice(&frame[..snap]);
            s[4..8].copy_from_slice(&(wire_len as u32).to_ne_bytes());
            s[8..12].copy_from_slice(&(snap as u32).to_ne_bytes());
            s[12..14].copy_from_slice(&(mac as u16).to_ne_bytes());
            s[SLOT_PKTTYPE_OFFSET] = pkttype;
            s[0..4].copy_from_slice(&status.to_ne_bytes());
        }

        fn status(&mut self, i: usize) -> u32 {
            let s = &self.bytes()[i * SLOT..];
            u32::from_ne_bytes(s[0..4].try_into().unwrap())
        }
    }

    fn frame(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
    }

    #[test]
    fn ring_reader_copies_frames_in_order_and_releases_each_slot() {
        let mut r = FakeRing::new(4);
        let (a, b) = (frame(60, 1), frame(1514, 2));
        r.put(0, libc::TP_STATUS_USER, &a, 60, libc::PACKET_HOST);
        r.put(1, libc::TP_STATUS_USER, &b, 1514, libc::PACKET_BROADCAST);
        let mut buf = [0u8; 2048];
        assert_eq!(
            r.ring.take(&mut buf),
            Slot::Frame {
                len: 60,
                losing: false
            }
        );
        assert_eq!(&buf[..60], &a[..]);
        assert_eq!(
            r.ring.take(&mut buf),
            Slot::Frame {
                len: 1514,
                losing: false
            }
        );
        assert_eq!(&buf[..1514], &b[..]);
        assert_eq!(r.ring.take(&mut buf), Slot::Empty);
        assert_eq!(
            (r.status(0), r.status(1)),
            (libc::TP_STATUS_KERNEL, libc::TP_STATUS_KERNEL)
        );
        // Wraps around: slots 2, 3, then 0 again.
        for (i, seed) in [(2, 3), (3, 4), (0, 5)] {
            r.put(
                i,
                libc::TP_STATUS_USER,
                &frame(100, seed),
                100,
                libc::PACKET_HOST,
            );
        }
        for seed in [3, 4, 5] {
            assert_eq!(
                r.ring.take(&mut buf),
                Slot::Frame {
                    len: 100,
                    losing: false
                }
            );
            assert_eq!(&buf[..100], &frame(100, seed)[..]);
        }
        assert_eq!(r.ring.take(&mut buf), Slot::Empty);
        assert_eq!(r.ring.stats.frames, 5);
    }

    #[test]
    fn ring_reader_drops_and_counts_what_it_cannot_return() {
        let mut r = FakeRing::new(8);
        let big = frame(4000, 7);
        // Cut to the slot by the kernel (tp_snaplen < tp_len).
        r.put(0, libc::TP_STATUS_USER, &big, 4000, libc::PACKET_HOST);
        // A PACKET_OUTGOING copy of a frame sent on the interface.
        r.put(
            1,
            libc::TP_STATUS_USER,
            &frame(60, 8),
            60,
            libc::PACKET_OUTGOING,
        );
        // Complete, but longer than the caller's buffer.
        r.put(
            2,
            libc::TP_STATUS_USER,
            &frame(1000, 9),
            1000,
            libc::PACKET_HOST,
        );
        // A header pointing past the slot.
        r.put(
            3,
            libc::TP_STATUS_USER,
            &frame(60, 10),
            60,
            libc::PACKET_HOST,
        );
        r.bytes()[3 * SLOT + 12..3 * SLOT + 14].copy_from_slice(&2040u16.to_ne_bytes());
        // A header pointing into itself.
        r.put(
            4,
            libc::TP_STATUS_USER,
            &frame(60, 11),
            60,
            libc::PACKET_HOST,
        );
        r.bytes()[4 * SLOT + 12..4 * SLOT + 14].copy_from_slice(&0u16.to_ne_bytes());
        // After an overflow: still delivered, flagged.
        let good = frame(200, 12);
        r.put(
            5,
            libc::TP_STATUS_USER | libc::TP_STATUS_LOSING,
            &good,
            200,
            libc::PACKET_HOST,
        );
        let mut buf = [0u8; 512];
        for _ in 0..5 {
            assert_eq!(r.ring.take(&mut buf), Slot::Skipped { losing: false });
        }
        assert_eq!(
            r.ring.take(&mut buf),
            Slot::Frame {
                len: 200,
                losing: true
            }
        );
        assert_eq!(&buf[..200], &good[..]);
        assert_eq!(r.ring.take(&mut buf), Slot::Empty);
        for i in 0..6 {
            assert_eq!(r.status(i), libc::TP_STATUS_KERNEL, "slot {i} released");
        }
        let st = r.ring.stats;
        assert_eq!(
            (
                st.frames,
                st.truncated,
                st.outgoing,
                st.too_long,
                st.malformed,
                st.losing
            ),
            (1, 1, 1, 1, 2, 1)
        );
    }

    #[test]
    fn ring_reader_survives_random_slot_headers() {
        // Whatever the header says, no panic and no read outside the slot; the slot is
        // always released.
        let mut r = FakeRing::new(2);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buf = [0u8; 1600];
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = r.ring.next;
            let b = x.to_ne_bytes();
            let s = &mut r.bytes()[i * SLOT..];
            s[4..12].copy_from_slice(&b);
            s[12..14].copy_from_slice(&b[2..4]);
            s[SLOT_PKTTYPE_OFFSET] = b[5] & 7;
            s[0..4].copy_from_slice(&(libc::TP_STATUS_USER | (b[6] as u32 & 4)).to_ne_bytes());
            match r.ring.take(&mut buf) {
                Slot::Frame { len, .. } => assert!(len <= buf.len()),
                Slot::Skipped { .. } => {}
                Slot::Empty => panic!("a USER slot read as empty"),
            }
            assert_eq!(r.status(i), libc::TP_STATUS_KERNEL);
        }
    }
}
