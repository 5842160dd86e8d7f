//! Host plumbing around a link: the devices a stack runs on, the stack's clock, and
//! the wrappers every host puts around its device (fault injection, pcap or annotated
//! pcapng recording, frame counters). [`Builder`](crate::Builder) composes them, so the
//! `ustack` commands, the kernel tests and any other host mean the same by `--pcap`,
//! `--seed` and the fault flags.
//!
//! Composition ([`build_link`]), from the device up:
//!
//! - no recording: `FaultInjector<D>`;
//! - classic pcap: `FaultInjector<PcapWriter<D>>`: the file holds what really crossed
//!   the device (classic pcap cannot carry comments);
//! - pcapng (a path ending in `.pcapng`): `PcapNgLink<FaultInjector<D>>`: the stack's
//!   view of every frame, plus what the injector and the stack did to each as comments.
//!
//! The driver counts what crosses the top of that stack ([`Counted`], [`LinkStats`]);
//! every wrapper forwards the device's receive-ring counters ([`Link::ring_stats`]).

use std::fs::File;
use std::io::{self, BufWriter};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use ustack::link::fault::FaultCounters;
use ustack::link::sys::{AfPacketLink, TapLink};
use ustack::link::{
    Direction, FaultEvent, FaultInjector, Faults, FrameMeta, Link, LinkCaps, PcapNgLink,
    PcapTimestamps, PcapWriter, RingStats,
};
use ustack::time::Instant;
use ustack::wire::EthernetAddress;

/// Monotonic time since a stack started, plus the wall-clock time of that start (the
/// epoch of its recordings). Every stack time comes from one of these.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: std::time::Instant,
    epoch_unix_micros: i64,
}

impl Clock {
    /// A clock whose epoch is now.
    pub fn start() -> Clock {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        Clock {
            start: std::time::Instant::now(),
            epoch_unix_micros: unix,
        }
    }

    /// The current stack time.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as i64)
    }

    /// Wall-clock microseconds since 1970 at stack time zero (the pcap epoch).
    pub fn epoch_unix_micros(&self) -> i64 {
        self.epoch_unix_micros
    }
}

/// Which OS device to run on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    /// A TAP device of that name (created if missing; needs CAP_NET_ADMIN).
    Tap(String),
    /// An AF_PACKET socket on that existing interface.
    Raw(String),
}

impl Device {
    /// Opens the device in the calling thread's network namespace, without offloads.
    ///
    /// # Errors
    /// The device could not be opened.
    pub fn open(&self) -> io::Result<OsLink> {
        self.open_with(Offload::Off)
    }

    /// Opens the device with checksum and segmentation offloads when `offload` asks
    /// for them and the kernel supports them (a TAP with `IFF_VNET_HDR`, an AF_PACKET
    /// socket with `PACKET_VNET_HDR`): `Offload::Auto` falls back to plain frames with
    /// a log line.
    ///
    /// # Errors
    /// The device could not be opened.
    pub fn open_with(&self, offload: Offload) -> io::Result<OsLink> {
        match self {
            Device::Tap(name) => {
                TapLink::open_with_offload(name, offload == Offload::Auto).map(OsLink::Tap)
            }
            Device::Raw(name) => open_af_packet_with(name, offload).map(OsLink::Raw),
        }
    }
}

/// Opens an AF_PACKET socket on `ifname` (calling thread's namespace) without
/// offloads, one wire frame per read, receiving through its mmap'd ring unless the
/// environment has `USTACK_PACKET_RING=0`: then one recvfrom(2) per frame (A/B
/// measurements, and an escape hatch).
///
/// # Errors
/// As [`AfPacketLink::open`].
pub fn open_af_packet(ifname: &str) -> io::Result<AfPacketLink> {
    open_af_packet_with(ifname, Offload::Off)
}

/// [`open_af_packet`], with `PACKET_VNET_HDR` offloads first under `Offload::Auto`
/// (falling back to it when the kernel refuses).
///
/// # Errors
/// As [`AfPacketLink::open`].
pub fn open_af_packet_with(ifname: &str, offload: Offload) -> io::Result<AfPacketLink> {
    let ring = std::env::var_os("USTACK_PACKET_RING").is_none_or(|v| v != "0");
    AfPacketLink::open_with_offload(ifname, offload == Offload::Auto, ring)
}

/// Whether a device is opened with checksum and segmentation offloads (`--offload`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Offload {
    /// On where the device and kernel support it (TAP, AF_PACKET), plain frames
    /// elsewhere.
    #[default]
    Auto,
    /// Plain frames with complete checksums, one wire segment per frame.
    Off,
}

impl OsLink {
    /// Whether offloads are on for this device.
    pub fn offload(&self) -> bool {
        match self {
            OsLink::Tap(l) => l.offload(),
            OsLink::Raw(l) => l.offload(),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Tap(n) => write!(f, "TAP {n}"),
            Device::Raw(n) => write!(f, "AF_PACKET on {n}"),
        }
    }
}

/// An opened OS device.
#[derive(Debug)]
pub enum OsLink {
    /// A TAP device.
    Tap(TapLink),
    /// An AF_PACKET socket.
    Raw(AfPacketLink),
}

impl AsRawFd for OsLink {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            OsLink::Tap(l) => l.as_raw_fd(),
            OsLink::Raw(l) => l.as_raw_fd(),
        }
    }
}

impl Link for OsLink {
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self {
            OsLink::Tap(l) => l.recv(now, buf),
            OsLink::Raw(l) => l.recv(now, buf),
        }
    }
    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        match self {
            OsLink::Tap(l) => l.send(now, frame),
            OsLink::Raw(l) => l.send(now, frame),
        }
    }
    fn caps(&self) -> LinkCaps {
        match self {
            OsLink::Tap(l) => l.caps(),
            OsLink::Raw(l) => l.caps(),
        }
    }
    fn rx_meta(&self) -> FrameMeta {
        match self {
            OsLink::Tap(l) => l.rx_meta(),
            OsLink::Raw(l) => l.rx_meta(),
        }
    }
    fn send_meta(&mut self, now: Instant, frame: &[u8], meta: &FrameMeta) -> io::Result<()> {
        match self {
            OsLink::Tap(l) => l.send_meta(now, frame, meta),
            OsLink::Raw(l) => l.send_meta(now, frame, meta),
        }
    }
    fn ring_stats(&mut self) -> Option<RingStats> {
        match self {
            OsLink::Tap(l) => l.ring_stats(),
            OsLink::Raw(l) => l.ring_stats(),
        }
    }
}

/// A locally administered unicast MAC derived from `seed` (`02:75:xx:xx:xx:xx`).
pub fn mac_from_seed(seed: u64) -> EthernetAddress {
    // splitmix64: neighbouring seeds give unrelated addresses.
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let b = z.to_be_bytes();
    EthernetAddress([0x02, 0x75, b[0], b[1], b[2], b[3]])
}

/// Frames and bytes a link moved, counted at the top of the host's wrappers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames received from the link.
    pub rx_frames: u64,
    /// Bytes received from the link.
    pub rx_bytes: u64,
    /// Frames handed to the link.
    pub tx_frames: u64,
    /// Bytes handed to the link.
    pub tx_bytes: u64,
}

/// Wraps a link and counts what it moves.
#[derive(Debug)]
pub struct Counted<L> {
    inner: L,
    stats: LinkStats,
}

impl<L> Counted<L> {
    /// Wraps `inner` with zeroed counters.
    pub fn new(inner: L) -> Self {
        Counted {
            inner,
            stats: LinkStats::default(),
        }
    }
    /// The counters so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }
    /// The wrapped link.
    pub fn get_mut(&mut self) -> &mut L {
        &mut self.inner
    }
    /// The wrapped link.
    pub fn into_inner(self) -> L {
        self.inner
    }
}

impl<L: Link> Link for Counted<L> {
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let n = self.inner.recv(now, buf)?;
        if let Some(n) = n {
            self.stats.rx_frames += 1;
            self.stats.rx_bytes += n as u64;
        }
        Ok(n)
    }
    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += frame.len() as u64;
        self.inner.send(now, frame)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
    fn rx_dropped(&mut self, reason: &dyn std::fmt::Display) {
        self.inner.rx_dropped(reason)
    }
    fn poll_fault_report(&mut self, frame: &mut Vec<u8>) -> Option<FaultEvent> {
        self.inner.poll_fault_report(frame)
    }
    fn caps(&self) -> LinkCaps {
        self.inner.caps()
    }
    fn rx_meta(&self) -> FrameMeta {
        self.inner.rx_meta()
    }
    fn send_meta(&mut self, now: Instant, frame: &[u8], meta: &FrameMeta) -> io::Result<()> {
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += frame.len() as u64;
        self.inner.send_meta(now, frame, meta)
    }
    fn ring_stats(&mut self) -> Option<RingStats> {
        self.inner.ring_stats()
    }
}

/// Recording and fault injection around a device (the `ustack` global flags).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkOptions {
    /// Record to this file: pcapng with comments when it ends in `.pcapng`, classic
    /// pcap otherwise.
    pub pcap: Option<PathBuf>,
    /// Faults to inject (`None`: a transparent injector).
    pub faults: Option<Faults>,
    /// Seed of the injected faults.
    pub seed: u64,
    /// Checksum and segmentation offloads of a device the host opens (`--offload`).
    /// Fault flags work on wire frames: with faults configured the device is opened
    /// without offloads ([`device_offload`](Self::device_offload)).
    pub offload: Offload,
}

impl LinkOptions {
    /// Whether these options wrap the device in anything observable (a recording or
    /// faults); a host may leave the device bare otherwise. The offload choice is made
    /// when the device is opened and wraps nothing.
    pub fn is_empty(&self) -> bool {
        self.pcap.is_none() && self.faults.is_none()
    }

    /// The offload setting to open the device with: [`offload`](Self::offload), but off
    /// while faults are configured, since loss, corruption and reordering are meant
    /// per wire frame, not per 64 KB super-frame.
    pub fn device_offload(&self) -> Offload {
        let faulty = self
            .faults
            .as_ref()
            .is_some_and(|f| !(f.rx.is_transparent() && f.tx.is_transparent()));
        if faulty {
            Offload::Off
        } else {
            self.offload
        }
    }
}

/// Unread fault reports a recording injector keeps at most (the recorder drains them
/// after every frame, so this only bounds a stalled reader).
const FAULT_REPORTS: usize = 4096;

type Recording = BufWriter<File>;

/// The wrapper stack a host runs its device in ([`build_link`]).
pub enum HostLink<D> {
    /// No recording: `FaultInjector<D>`.
    Plain(FaultInjector<D>),
    /// Classic pcap under the injector, `FaultInjector<PcapWriter<D>>`.
    Pcap(FaultInjector<PcapWriter<D, Recording>>),
    /// pcapng over the injector, `PcapNgLink<FaultInjector<D>>`.
    PcapNg(PcapNgLink<FaultInjector<D>, Recording>),
}

/// Wraps `device` in the injector and the recorder `opts` ask for; the recording is
/// dated from `epoch_unix_micros` ([`Clock::epoch_unix_micros`]).
///
/// # Errors
/// The recording file could not be created.
pub fn build_link<D: Link>(
    device: D,
    opts: &LinkOptions,
    epoch_unix_micros: i64,
) -> io::Result<HostLink<D>> {
    let faults = opts.faults.clone().unwrap_or_default();
    let Some(path) = &opts.pcap else {
        return Ok(HostLink::Plain(FaultInjector::new(
            device, faults, opts.seed,
        )));
    };
    let file = File::create(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let out = BufWriter::new(file);
    if is_pcapng(path) {
        let mut injector = FaultInjector::new(device, faults, opts.seed);
        injector.enable_reports(FAULT_REPORTS);
        Ok(HostLink::PcapNg(PcapNgLink::new(
            injector,
            out,
            epoch_unix_micros,
        )?))
    } else {
        let recorder = PcapWriter::new(device, out, epoch_unix_micros, PcapTimestamps::Micros)?;
        Ok(HostLink::Pcap(FaultInjector::new(
            recorder, faults, opts.seed,
        )))
    }
}

/// True when `path` names a pcapng file (extension `.pcapng`, any case).
pub fn is_pcapng(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("pcapng"))
}

impl<D: Link> HostLink<D> {
    fn injector(&self) -> &dyn InjectorCounters {
        match self {
            HostLink::Plain(i) => i,
            HostLink::Pcap(i) => i,
            HostLink::PcapNg(r) => r.get_ref(),
        }
    }

    /// The injector's counters for one direction.
    pub fn fault_counters(&self, direction: Direction) -> FaultCounters {
        self.injector().counters_of(direction)
    }

    /// Writes out what the recorder still holds.
    ///
    /// # Errors
    /// Recording failed (the first error).
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            HostLink::Plain(_) => Ok(()),
            HostLink::Pcap(i) => {
                let r = i.get_mut();
                match r.take_error() {
                    Some(e) => Err(e),
                    None => r.flush(),
                }
            }
            HostLink::PcapNg(r) => r.flush(),
        }
    }

    /// Whether a recorder is in the stack.
    pub fn is_recording(&self) -> bool {
        !matches!(self, HostLink::Plain(_))
    }
}

/// Object-safe access to a `FaultInjector`'s counters whatever it wraps.
trait InjectorCounters {
    fn counters_of(&self, direction: Direction) -> FaultCounters;
}

impl<L: Link> InjectorCounters for FaultInjector<L> {
    fn counters_of(&self, direction: Direction) -> FaultCounters {
        self.counters(direction)
    }
}

impl<D: Link> Link for HostLink<D> {
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self {
            HostLink::Plain(l) => l.recv(now, buf),
            HostLink::Pcap(l) => l.recv(now, buf),
            HostLink::PcapNg(l) => l.recv(now, buf),
        }
    }
    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        match self {
            HostLink::Plain(l) => l.send(now, frame),
            HostLink::Pcap(l) => l.send(now, frame),
            HostLink::PcapNg(l) => l.send(now, frame),
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            HostLink::Plain(l) => l.poll_timeout(),
            HostLink::Pcap(l) => l.poll_timeout(),
            HostLink::PcapNg(l) => l.poll_timeout(),
        }
    }
    fn rx_dropped(&mut self, reason: &dyn std::fmt::Display) {
        match self {
            HostLink::Plain(l) => l.rx_dropped(reason),
            HostLink::Pcap(l) => l.rx_dropped(reason),
            HostLink::PcapNg(l) => l.rx_dropped(reason),
        }
    }
    fn poll_fault_report(&mut self, frame: &mut Vec<u8>) -> Option<FaultEvent> {
        match self {
            HostLink::Plain(l) => l.poll_fault_report(frame),
            HostLink::Pcap(l) => l.poll_fault_report(frame),
            HostLink::PcapNg(l) => l.poll_fault_report(frame),
        }
    }
    fn caps(&self) -> LinkCaps {
        match self {
            HostLink::Plain(l) => l.caps(),
            HostLink::Pcap(l) => l.caps(),
            HostLink::PcapNg(l) => l.caps(),
        }
    }
    fn rx_meta(&self) -> FrameMeta {
        match self {
            HostLink::Plain(l) => l.rx_meta(),
            HostLink::Pcap(l) => l.rx_meta(),
            HostLink::PcapNg(l) => l.rx_meta(),
        }
    }
    fn send_meta(&mut self, now: Instant, frame: &[u8], meta: &FrameMeta) -> io::Result<()> {
        match self {
            HostLink::Plain(l) => l.send_meta(now, frame, meta),
            HostLink::Pcap(l) => l.send_meta(now, frame, meta),
            HostLink::PcapNg(l) => l.send_meta(now, frame, meta),
        }
    }
    fn ring_stats(&mut self) -> Option<RingStats> {
        match self {
            HostLink::Plain(l) => l.ring_stats(),
            HostLink::Pcap(l) => l.ring_stats(),
            HostLink::PcapNg(l) => l.ring_stats(),
        }
    }
}

/// What the host wrappers did over a stack's life, handed back by
/// [`NetStack::stop`](crate::NetStack::stop) when the stack was built with
/// [`LinkOptions`].
#[derive(Debug)]
pub struct LinkReport {
    /// The injector's device → stack counters.
    pub rx_faults: FaultCounters,
    /// The injector's stack → device counters.
    pub tx_faults: FaultCounters,
    /// Whether the recording (if any) was written completely: `None` without one.
    pub recorded: Option<io::Result<()>>,
}

/// Where a [`Reported`] link leaves its [`LinkReport`] when it is dropped.
pub(crate) type ReportSlot = Arc<Mutex<Option<LinkReport>>>;

/// A [`HostLink`] that files its [`LinkReport`] when the driver drops it (after the
/// last frame), so the report needs no lock while frames move.
pub(crate) struct Reported<D: Link> {
    pub link: HostLink<D>,
    pub slot: ReportSlot,
}

impl<D: Link> Drop for Reported<D> {
    fn drop(&mut self) {
        let report = LinkReport {
            rx_faults: self.link.fault_counters(Direction::Rx),
            tx_faults: self.link.fault_counters(Direction::Tx),
            recorded: self.link.is_recording().then(|| self.link.flush()),
        };
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
    }
}

impl<D: Link> Link for Reported<D> {
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.link.recv(now, buf)
    }
    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        self.link.send(now, frame)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.link.poll_timeout()
    }
    fn rx_dropped(&mut self, reason: &dyn std::fmt::Display) {
        self.link.rx_dropped(reason)
    }
    fn poll_fault_report(&mut self, frame: &mut Vec<u8>) -> Option<FaultEvent> {
        self.link.poll_fault_report(frame)
    }
    fn caps(&self) -> LinkCaps {
        self.link.caps()
    }
    fn rx_meta(&self) -> FrameMeta {
        self.link.rx_meta()
    }
    fn send_meta(&mut self, now: Instant, frame: &[u8], meta: &FrameMeta) -> io::Result<()> {
        self.link.send_meta(now, frame, meta)
    }
    fn ring_stats(&mut self) -> Option<RingStats> {
        self.link.ring_stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_macs_are_local_unicast_and_distinct() {
        let a = mac_from_seed(1);
        let b = mac_from_seed(2);
        assert_ne!(a, b);
        assert!(a.is_unicast());
        assert_eq!(a.0[0] & 0x02, 0x02, "locally administered bit");
        assert_eq!(mac_from_seed(1), a, "deterministic");
    }

    #[test]
    fn fault_flags_open_the_device_without_offloads() {
        use ustack::link::FaultConfig;
        let mut o = LinkOptions::default();
        assert_eq!(o.device_offload(), Offload::Auto, "offloads by default");
        o.faults = Some(Faults::both(FaultConfig::none()));
        assert_eq!(o.device_offload(), Offload::Auto, "a transparent injector");
        o.faults = Some(Faults::both(FaultConfig {
            loss: 0.01,
            ..FaultConfig::none()
        }));
        assert_eq!(o.device_offload(), Offload::Off, "loss is per wire frame");
        o.faults = None;
        o.offload = Offload::Off;
        assert_eq!(o.device_offload(), Offload::Off);
    }

    #[test]
    fn clock_advances_from_zero() {
        let c = Clock::start();
        let t1 = c.now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(c.now() > t1);
        assert!(c.epoch_unix_micros() > 1_600_000_000_000_000);
    }
}
