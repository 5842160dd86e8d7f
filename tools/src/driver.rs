//! The one driver loop for a stack on a real device: poll(2) on the link's fd with the
//! interface's deadline, then `Interface::poll_link`. Used by `ustack up`, `ustack demo`,
//! `ustack echo` and the kernel tests (which run it in-process on a thread).
//!
//! Applications run in the same thread through an [`App`] hook: after every round of
//! input (frames and due timers) the hook gets the interface and the time, services
//! its sockets, and whatever it queued is sent before the loop waits again. So one
//! wake-up is: frames in → application → frames out.
//!
//! Time: `now` is measured from a [`Clock`]'s start (`std::time::Instant`), converted to
//! `ustack::time::Instant`; the wall-clock time of that start is the pcap epoch.

use std::fs::File;
use std::io::{self, BufWriter};
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use ustack::iface::{Config, Interface};
use ustack::link::fault::FaultCounters;
use ustack::link::sys::{wait_readable, AfPacketLink, TapLink};
use ustack::link::{
    Direction, FaultEvent, FaultInjector, Faults, Link, PcapNgLink, PcapTimestamps, PcapWriter,
};
use ustack::time::Instant;
use ustack::wire::{EthernetAddress, Ipv4Cidr};

/// Longest single wait, so a stop request is noticed promptly even with no traffic.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Monotonic time since the driver started, plus the wall-clock time of that start.
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

/// Which device to run on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkSpec {
    /// A TAP device of that name (created if missing).
    Tap(String),
    /// An AF_PACKET socket on that existing interface.
    Raw(String),
}

impl LinkSpec {
    /// Opens the device in the calling thread's network namespace.
    ///
    /// # Errors
    /// The device could not be opened.
    pub fn open(&self) -> io::Result<OsLink> {
        match self {
            LinkSpec::Tap(name) => TapLink::open(name).map(OsLink::Tap),
            LinkSpec::Raw(name) => AfPacketLink::open(name).map(OsLink::Raw),
        }
    }
}

impl std::fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkSpec::Tap(n) => write!(f, "TAP {n}"),
            LinkSpec::Raw(n) => write!(f, "AF_PACKET on {n}"),
        }
    }
}

/// An opened OS link.
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
}

/// Frames and bytes a link moved, counted at the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames received from the device.
    pub rx_frames: u64,
    /// Bytes received from the device.
    pub rx_bytes: u64,
    /// Frames handed to the device.
    pub tx_frames: u64,
    /// Bytes handed to the device.
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
}

/// Recording and fault injection around a device, from the global flags.
#[derive(Clone, Debug, Default)]
pub struct LinkOptions {
    /// Record to this file: pcapng with comments when it ends in `.pcapng`, classic
    /// pcap otherwise.
    pub pcap: Option<PathBuf>,
    /// Faults to inject (`None`: a transparent injector).
    pub faults: Option<Faults>,
    /// Seed of the injected faults.
    pub seed: u64,
}

/// Unread fault reports a recording injector keeps at most (the recorder drains them
/// after every frame, so this only bounds a stalled reader).
const FAULT_REPORTS: usize = 4096;

type Recording = BufWriter<File>;

/// The wrapper stack every subcommand runs its device in ([`build_link`]).
pub enum ToolLink<D> {
    /// No recording: `FaultInjector<D>`.
    Plain(FaultInjector<D>),
    /// Classic pcap under the injector, `FaultInjector<PcapWriter<D>>`: it records
    /// what really crossed the device (classic pcap cannot carry comments).
    Pcap(FaultInjector<PcapWriter<D, Recording>>),
    /// pcapng over the injector, `PcapNgLink<FaultInjector<D>>`: the stack's view of
    /// every frame, plus what the injector and the stack did to each as comments.
    PcapNg(PcapNgLink<FaultInjector<D>, Recording>),
}

/// Wraps `device` in the injector and the recorder `opts` ask for; `clock` dates the
/// recording. Every subcommand that runs a link builds it here, so `--pcap`, `--seed`
/// and the fault flags mean the same everywhere.
///
/// # Errors
/// The recording file could not be created.
pub fn build_link<D: Link>(
    device: D,
    opts: &LinkOptions,
    clock: &Clock,
) -> io::Result<ToolLink<D>> {
    let faults = opts.faults.clone().unwrap_or_default();
    let Some(path) = &opts.pcap else {
        return Ok(ToolLink::Plain(FaultInjector::new(
            device, faults, opts.seed,
        )));
    };
    let file = File::create(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let out = BufWriter::new(file);
    if is_pcapng(path) {
        let mut injector = FaultInjector::new(device, faults, opts.seed);
        injector.enable_reports(FAULT_REPORTS);
        Ok(ToolLink::PcapNg(PcapNgLink::new(
            injector,
            out,
            clock.epoch_unix_micros(),
        )?))
    } else {
        let recorder = PcapWriter::new(
            device,
            out,
            clock.epoch_unix_micros(),
            PcapTimestamps::Micros,
        )?;
        Ok(ToolLink::Pcap(FaultInjector::new(
            recorder, faults, opts.seed,
        )))
    }
}

/// True when `path` names a pcapng file (extension `.pcapng`, any case).
pub fn is_pcapng(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("pcapng"))
}

impl<D: Link> ToolLink<D> {
    fn injector(&self) -> &dyn InjectorCounters {
        match self {
            ToolLink::Plain(i) => i,
            ToolLink::Pcap(i) => i,
            ToolLink::PcapNg(r) => r.get_ref(),
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
            ToolLink::Plain(_) => Ok(()),
            ToolLink::Pcap(i) => {
                let r = i.get_mut();
                match r.take_error() {
                    Some(e) => Err(e),
                    None => r.flush(),
                }
            }
            ToolLink::PcapNg(r) => r.flush(),
        }
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

impl<D: Link> Link for ToolLink<D> {
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self {
            ToolLink::Plain(l) => l.recv(now, buf),
            ToolLink::Pcap(l) => l.recv(now, buf),
            ToolLink::PcapNg(l) => l.recv(now, buf),
        }
    }
    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        match self {
            ToolLink::Plain(l) => l.send(now, frame),
            ToolLink::Pcap(l) => l.send(now, frame),
            ToolLink::PcapNg(l) => l.send(now, frame),
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            ToolLink::Plain(l) => l.poll_timeout(),
            ToolLink::Pcap(l) => l.poll_timeout(),
            ToolLink::PcapNg(l) => l.poll_timeout(),
        }
    }
    fn rx_dropped(&mut self, reason: &dyn std::fmt::Display) {
        match self {
            ToolLink::Plain(l) => l.rx_dropped(reason),
            ToolLink::Pcap(l) => l.rx_dropped(reason),
            ToolLink::PcapNg(l) => l.rx_dropped(reason),
        }
    }
    fn poll_fault_report(&mut self, frame: &mut Vec<u8>) -> Option<FaultEvent> {
        match self {
            ToolLink::Plain(l) => l.poll_fault_report(frame),
            ToolLink::Pcap(l) => l.poll_fault_report(frame),
            ToolLink::PcapNg(l) => l.poll_fault_report(frame),
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

/// The interface configuration the tools build from their flags.
pub fn iface_config(
    mac: EthernetAddress,
    ip: Ipv4Cidr,
    gateway: Option<core::net::Ipv4Addr>,
    mtu: usize,
    seed: u64,
) -> Config {
    let mut config = Config::new(mac, ip);
    config.gateway = gateway;
    config.mtu = mtu;
    config.seed = seed;
    config
}

/// The interface counters that are not zero, one `layer.name value` per line, drops
/// as `layer.dropped.reason` (for the tools' exit summaries).
pub fn format_counters(iface: &Interface) -> String {
    use ustack::iface::DropReason;
    let counters = iface.counters();
    let plain = counters.iter().count() - DropReason::COUNT;
    let mut out = String::new();
    for (layer, name, value) in counters.iter().take(plain) {
        if value != 0 {
            out.push_str(&format!("  {:<32} {value}\n", format!("{layer}.{name}")));
        }
    }
    for &reason in DropReason::ALL {
        let value = counters.dropped(reason);
        if value != 0 {
            let key = format!("{}.dropped.{}", reason.layer(), reason.as_str());
            out.push_str(&format!("  {key:<32} {value}\n"));
        }
    }
    out
}

/// Application code on the driver thread: called with the interface and the current
/// time after every round of input; what it queues (sends, connects, closes) is
/// transmitted right after it returns. It must not block.
pub type App<'a> = dyn FnMut(&mut Interface, Instant) + 'a;

/// An [`App`] that can move to a driver thread.
pub type BoxedApp = Box<dyn FnMut(&mut Interface, Instant) + Send>;

/// Drives `iface` on `link` until `stop` is set: wait for the fd to become readable or
/// the next deadline, then feed/poll everything that is due.
///
/// # Errors
/// The link or poll(2) failed.
pub fn run<L: Link + ?Sized>(
    iface: &mut Interface,
    link: &mut L,
    fd: RawFd,
    clock: &Clock,
    stop: &AtomicBool,
) -> io::Result<()> {
    run_with_app(iface, link, fd, clock, stop, &mut |_, _| {})
}

/// Sends every frame the interface has ready (no input, no timers).
///
/// # Errors
/// The link failed.
pub fn flush<L: Link + ?Sized>(
    iface: &mut Interface,
    now: Instant,
    link: &mut L,
    buf: &mut [u8],
) -> io::Result<usize> {
    let mut sent = 0;
    while let Some(n) = iface.poll_transmit(now, buf) {
        link.send(now, &buf[..n])?;
        sent += 1;
    }
    Ok(sent)
}

/// [`run`] with an application: after each `poll_link`, `app` services its sockets and
/// what it queued is flushed before waiting.
///
/// # Errors
/// The link or poll(2) failed.
pub fn run_with_app<L: Link + ?Sized>(
    iface: &mut Interface,
    link: &mut L,
    fd: RawFd,
    clock: &Clock,
    stop: &AtomicBool,
    app: &mut App<'_>,
) -> io::Result<()> {
    let mut buf = vec![0u8; iface.config().mtu + 14];
    while !stop.load(Ordering::Relaxed) {
        let now = clock.now();
        iface.poll_link(now, link)?;
        app(iface, now);
        flush(iface, now, link, &mut buf)?;
        let deadline = match (iface.poll_timeout(), link.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let wait = match deadline {
            Some(d) => std::time::Duration::from(d - clock.now()).min(MAX_WAIT),
            None => MAX_WAIT,
        };
        wait_readable(fd, Some(wait))?;
    }
    // Last chance for anything queued (e.g. replies to the final frames).
    iface.poll_link(clock.now(), link).map(drop)
}

/// What a stopped stack hands back.
pub struct StackReport {
    /// The interface, for its counters.
    pub iface: Interface,
    /// What crossed the device.
    pub link: LinkStats,
}

/// A stack running [`run`] on its own thread; stopped (and joined) on drop.
pub struct StackThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<io::Result<StackReport>>>,
}

impl StackThread {
    /// Starts driving `iface` on `link`, whose readiness is signalled on `fd`.
    ///
    /// The link is dropped (closing the device and flushing any pcap writer inside) when
    /// the thread ends.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn spawn(
        iface: Interface,
        link: Box<dyn Link + Send>,
        fd: RawFd,
        clock: Clock,
    ) -> io::Result<StackThread> {
        Self::spawn_with_app(iface, link, fd, clock, Box::new(|_, _| {}))
    }

    /// [`spawn`](Self::spawn) with an application running on the driver thread
    /// ([`run_with_app`]); it is dropped when the thread ends.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn spawn_with_app(
        mut iface: Interface,
        link: Box<dyn Link + Send>,
        fd: RawFd,
        clock: Clock,
        mut app: BoxedApp,
    ) -> io::Result<StackThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::Builder::new()
            .name("ustack-driver".into())
            .spawn(move || {
                let mut link = Counted::new(link);
                run_with_app(&mut iface, &mut link, fd, &clock, &stop2, &mut *app)?;
                Ok(StackReport {
                    iface,
                    link: link.stats(),
                })
            })?;
        Ok(StackThread {
            stop,
            handle: Some(handle),
        })
    }

    /// Whether the driver thread is still running (false after a link error).
    pub fn is_running(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Stops the driver and returns the interface and link counters.
    ///
    /// # Errors
    /// The driver ended on a link error.
    ///
    /// # Panics
    /// Re-raises a panic of the driver thread.
    pub fn stop(mut self) -> io::Result<StackReport> {
        self.stop.store(true, Ordering::Relaxed);
        let handle = self.handle.take().expect("joined only once");
        match handle.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

impl Drop for StackThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
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
    fn clock_advances_from_zero() {
        let c = Clock::start();
        let t1 = c.now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(c.now() > t1);
        assert!(c.epoch_unix_micros() > 1_600_000_000_000_000);
    }
}
