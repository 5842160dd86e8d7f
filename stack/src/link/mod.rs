//! Links move whole Ethernet frames between the stack and the world.
//!
//! A [`Link`] is the only I/O boundary of the stack. Wrappers compose around any link,
//! in the same order on a real TAP and in the simulator:
//! `FaultInjector<Tracer<PcapWriter<Tap>>>`, so a seed replays identically on both.
//!
//! - [`MemoryLink`]: an in-memory pair for tests.
//! - [`FaultInjector`]: seeded loss, duplication, reordering, corruption, delay and rate
//!   limits per direction (the same model the simulator uses).
//! - [`PcapWriter`]: records every frame in and out to a classic pcap file.
//! - [`PcapReader`]: reads pcap and pcapng files back.
//! - [`PcapNgWriter`], [`PcapNgLink`]: pcapng with direction and per-frame comments.
//! - `sys::TapLink`, `sys::AfPacketLink` (feature `os`): real devices.
//!
//! Two default-no-op hooks let a recorder tell the whole story under any driver:
//! [`Link::rx_dropped`] (the interface says it dropped the frame just received, and
//! why) and [`Link::poll_fault_report`] (the injector says what it did to a frame). The
//! tools compose `PcapNgLink<FaultInjector<Device>>` so every such event becomes a
//! pcapng comment (see [`PcapNgLink`]). A third, [`Link::ring_stats`], lets a host show
//! the device's receive-ring counters through any wrapper.

pub mod fault;
mod memory;
pub mod offload;
mod pcap;
mod pcap_read;
mod pcapng;
#[cfg(feature = "os")]
pub mod sys;

pub use fault::{FaultAction, FaultConfig, FaultEvent, FaultInjector, Faults};
pub use memory::MemoryLink;
pub use offload::{CsumPartial, FrameMeta, Gso, LinkCaps};
pub use pcap::{PcapLinkType, PcapTimestamps, PcapWriter};
pub use pcap_read::{PcapReader, PcapRecord};
pub use pcapng::{PcapNgLink, PcapNgWriter};

use crate::time::Instant;
use core::fmt;
use std::io;

/// Which way a frame crosses a link, as seen from the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the device to the stack (`Link::recv`): inbound.
    Rx,
    /// From the stack to the device (`Link::send`): outbound.
    Tx,
}

/// What a link's receive ring saw ([`Link::ring_stats`]): the AF_PACKET link's
/// `PACKET_RX_RING` (`sys::AfPacketLink`, feature `os`). Defined here, not beside that
/// link, so hosts built without `os` can carry and print it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Frames handed to the caller.
    pub frames: u64,
    /// `PACKET_OUTGOING` copies of frames sent on the interface, skipped.
    pub outgoing: u64,
    /// Frames the kernel cut to the slot (`tp_snaplen < tp_len`), dropped.
    pub truncated: u64,
    /// Frames longer than the caller's buffer, dropped.
    pub too_long: u64,
    /// Slots whose header pointed outside the slot, dropped (never seen from a sane kernel).
    pub malformed: u64,
    /// Frames marked `TP_STATUS_LOSING`: the kernel had dropped frames (ring full)
    /// since its drop count was last read, so every frame carries the mark until then.
    pub losing: u64,
    /// Frames the kernel dropped (ring full), as read by [`Link::ring_stats`]
    /// (PACKET_STATISTICS); drops another reader of that count took are not here.
    pub kernel_drops: u64,
}

/// Largest Ethernet frame the stack handles by default (1500 MTU + 14 header).
pub const DEFAULT_FRAME_LEN: usize = 1514;

/// Largest frame an offloading link moves: one 64 KB IPv4 packet and its Ethernet
/// header (a GSO super-frame).
pub const MAX_OFFLOAD_FRAME_LEN: usize = 14 + 65535;

/// A device that moves Ethernet frames (header included, no FCS).
pub trait Link {
    /// Reads one frame into `buf` and returns its length, or `Ok(None)` when no frame is
    /// ready. A frame longer than `buf` is truncated to `buf.len()`.
    ///
    /// # Errors
    /// Device errors other than "would block".
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>>;

    /// Sends one frame. A full device queue drops the frame (like a NIC) rather than
    /// blocking.
    ///
    /// # Errors
    /// Device errors other than a full queue.
    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()>;

    /// The earliest instant at which this link will have something to deliver without
    /// any new input (a wrapper holding delayed frames), if any.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Told by the interface that the stack dropped the frame the last `recv` returned,
    /// and why (`Interface::poll_link` calls it right after `handle_frame`). A recorder
    /// notes it on that frame; wrappers that hand frames up one for one forward it
    /// inward, wrappers that batch or reorder (the fault injector) do not, since the
    /// frame their inner link returned last is another one.
    fn rx_dropped(&mut self, reason: &dyn fmt::Display) {
        let _ = reason;
    }

    /// The next report of what a fault-injecting wrapper inside this link did to a
    /// frame besides moving it (dropped, corrupted, duplicated, delayed, reordered),
    /// pulled like `TcpLayer::poll_event`. For a `Dropped` report the frame's bytes are
    /// copied into `frame`, since nobody else will ever see them. Reports about a frame
    /// are ready right after the `send` that took it (tx) or the `recv` that returned
    /// it (rx); rx drops right after the `recv` that pulled the frame from the device.
    fn poll_fault_report(&mut self, frame: &mut Vec<u8>) -> Option<FaultEvent> {
        let _ = frame;
        None
    }

    /// What this link takes and returns beyond plain frames; the interface reads it on
    /// every [`poll_link`](crate::iface::Interface::poll_link). Default: nothing.
    fn caps(&self) -> LinkCaps {
        LinkCaps::default()
    }

    /// Offload metadata of the frame the last `recv` returned (partial or validated
    /// checksum, GSO). Only meaningful when [`caps`](Self::caps) has `rx_offload`.
    fn rx_meta(&self) -> FrameMeta {
        FrameMeta::default()
    }

    /// Sends one frame with offload metadata the interface chose within
    /// [`caps`](Self::caps). The default, for links without offloads, is `send`: the
    /// interface never gives such a link non-plain metadata.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    fn send_meta(&mut self, now: Instant, frame: &[u8], meta: &FrameMeta) -> io::Result<()> {
        debug_assert!(
            meta.is_plain(),
            "offload metadata for a link without offloads"
        );
        self.send(now, frame)
    }

    /// What the link's receive ring saw so far, or `None` when it has none (every link
    /// but an AF_PACKET socket receiving through `PACKET_RX_RING`). Wrappers forward it
    /// from the device they wrap. It may cost a system call (the kernel's drop count),
    /// so hosts read it on demand, never per frame or per round.
    fn ring_stats(&mut self) -> Option<RingStats> {
        None
    }
}

impl<L: Link + ?Sized> Link for Box<L> {
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        (**self).recv(now, buf)
    }
    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        (**self).send(now, frame)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        (**self).poll_timeout()
    }
    fn rx_dropped(&mut self, reason: &dyn fmt::Display) {
        (**self).rx_dropped(reason)
    }
    fn poll_fault_report(&mut self, frame: &mut Vec<u8>) -> Option<FaultEvent> {
        (**self).poll_fault_report(frame)
    }
    fn caps(&self) -> LinkCaps {
        (**self).caps()
    }
    fn rx_meta(&self) -> FrameMeta {
        (**self).rx_meta()
    }
    fn send_meta(&mut self, now: Instant, frame: &[u8], meta: &FrameMeta) -> io::Result<()> {
        (**self).send_meta(now, frame, meta)
    }
    fn ring_stats(&mut self) -> Option<RingStats> {
        (**self).ring_stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device with a receive ring: reports fixed statistics and counts the reads.
    struct RingDevice {
        reads: u32,
    }

    const RING: RingStats = RingStats {
        frames: 7,
        outgoing: 1,
        truncated: 2,
        too_long: 3,
        malformed: 4,
        losing: 5,
        kernel_drops: 6,
    };

    impl Link for RingDevice {
        fn recv(&mut self, _: Instant, _: &mut [u8]) -> io::Result<Option<usize>> {
            Ok(None)
        }
        fn send(&mut self, _: Instant, _: &[u8]) -> io::Result<()> {
            Ok(())
        }
        fn ring_stats(&mut self) -> Option<RingStats> {
            self.reads += 1;
            Some(RING)
        }
    }

    fn device() -> RingDevice {
        RingDevice { reads: 0 }
    }

    #[test]
    fn ring_stats_default_to_none() {
        let (mut a, _b) = MemoryLink::pair(1);
        assert_eq!(a.ring_stats(), None);
        let mut boxed: Box<dyn Link> = Box::new(a);
        assert_eq!(boxed.ring_stats(), None, "a box forwards the inner None");
    }

    #[test]
    fn every_wrapper_forwards_ring_stats_from_its_device() {
        let mut boxed: Box<dyn Link> = Box::new(device());
        assert_eq!(boxed.ring_stats(), Some(RING), "Box");

        // Transparent and fault-injecting: the ring's counters are the device's either way.
        let mut injector = FaultInjector::new(device(), Faults::default(), 1);
        assert_eq!(
            injector.ring_stats(),
            Some(RING),
            "FaultInjector, transparent"
        );
        let lossy = Faults::both(FaultConfig {
            loss: 0.5,
            ..FaultConfig::none()
        });
        let mut injector = FaultInjector::new(device(), lossy, 1);
        assert_eq!(injector.ring_stats(), Some(RING), "FaultInjector, lossy");
        assert_eq!(
            injector.get_ref().reads,
            1,
            "one read of the device per call"
        );

        let mut pcap =
            PcapWriter::new(device(), Vec::new(), 0, PcapTimestamps::Micros).expect("pcap header");
        assert_eq!(pcap.ring_stats(), Some(RING), "PcapWriter");

        // The host composition with pcapng: PcapNgLink<FaultInjector<D>>, boxed.
        let pcapng = PcapNgLink::new(
            FaultInjector::new(device(), Faults::default(), 1),
            Vec::new(),
            0,
        )
        .expect("pcapng header");
        let mut top: Box<dyn Link> = Box::new(pcapng);
        assert_eq!(
            top.ring_stats(),
            Some(RING),
            "Box<PcapNgLink<FaultInjector>>"
        );
    }
}
