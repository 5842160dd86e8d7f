//! Test harness: the stack against the Linux kernel, inside network namespaces the
//! test creates.
//!
//! - [`Netns`] (from `ustack_socket::netns`): a uniquely named namespace (`PREFIX-PID-COUNTER-RANDOM`)
//!   whose `Drop` kills what runs inside and deletes it with its devices, panics included.
//! - [`require_netns!`]: skip loudly without the privileges (CAP_NET_ADMIN, CAP_NET_RAW,
//!   CAP_SYS_ADMIN, `/dev/net/tun`, iproute2); panic instead under `USTACK_REQUIRE_NETNS=1`.
//! - [`Fixture`]: a namespace with the kernel on one side and the stack on the other,
//!   over a TAP or a veth pair (AF_PACKET). The stack is a [`NetStack`] running
//!   **in-process** on its driver thread, like every other host: its device is opened
//!   on a thread that `setns`'d into the namespace, so the fd belongs there while the
//!   rest of the test process stays in the root namespace. Test applications run in
//!   the driver as hooks ([`BoxedApp`]).
//!   In-process keeps the stack's lifetime tied to the test (no orphaned `ustack up`),
//!   lets the test read the interface's counters directly, and needs no path to a built
//!   binary.
//! - [`spawn_peer`] / [`Fixture::peer`]: the kernel's side of a conversation is Rust, a
//!   closure on a thread that entered the namespace (setns(2)) and uses kernel sockets
//!   (`std::net`, a raw ICMP socket for [`Fixture::ping`]); [`peer`] holds the common
//!   ones. Outside programs run only as oracles (tshark, tcpdump, iptables, `ss`), each
//!   checked with [`require_netns!`] first.
//!
//! Drop order: the stack stops first, then the namespace goes, whatever the exit path.

pub mod pcap;
pub mod peer;
pub mod tcp;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::Output;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use ustack::iface::Interface;
use ustack::link::fault::{FaultCounters, FaultEvent};
use ustack::link::sys::AfPacketLink;
use ustack::link::{Direction, FaultInjector, Faults, Link};
use ustack::time::Instant;
use ustack::wire::{EthernetAddress, Ipv4Cidr};
use ustack_socket::link::{mac_from_seed, Device, LinkStats};
use ustack_socket::NetStack;

pub use ustack_socket::kernel_peer::{PingOptions, PingReport};
pub use ustack_socket::netns::{have_privileges, Netns, NetnsError, NsThread};

/// An application on the stack's driver thread: a [`ustack_socket::Hook`], run after
/// every round with the interface, the time and the TCP sockets that became ready.
pub type BoxedApp = ustack_socket::Hook;

/// Builds a fixture's application from the new interface.
type MakeApp = dyn FnOnce(&mut Interface) -> BoxedApp;

/// What a stopped fixture's stack hands back.
pub struct StackReport {
    /// The interface, for its counters.
    pub iface: Interface,
    /// What crossed the device.
    pub link: LinkStats,
}

/// Whether kernel tests must fail rather than skip when they cannot run.
pub fn netns_required() -> bool {
    std::env::var("USTACK_REQUIRE_NETNS").is_ok_and(|v| v == "1")
}

/// Skips (loudly, returning `false`) or, under `USTACK_REQUIRE_NETNS=1`, panics with `why`.
pub fn skip_or_fail(test: &str, why: &str) -> bool {
    if netns_required() {
        panic!("{test}: cannot run kernel test: {why} (USTACK_REQUIRE_NETNS=1)");
    }
    // Written to the stderr handle, not with `eprintln!`, which the test runner
    // captures: a skip must be visible in a plain `cargo test`.
    let _ = writeln!(
        io::stderr(),
        "\n################################################################\n\
         ## SKIPPED {test}: {why}\n\
         ## kernel tests need root (CAP_NET_ADMIN/NET_RAW/SYS_ADMIN),\n\
         ## /dev/net/tun and iproute2; set USTACK_REQUIRE_NETNS=1 to fail.\n\
         ################################################################\n"
    );
    false
}

/// Whether this process can run kernel tests (see [`skip_or_fail`]).
pub fn netns_available(test: &str) -> bool {
    have_privileges() || skip_or_fail(test, "missing privileges or tools")
}

/// A kernel-side peer: a closure running on a thread inside a test's namespace, on
/// kernel sockets. Join it with [`Peer::join`]; a panic inside it fails the test there.
#[derive(Debug)]
pub struct Peer<T> {
    thread: NsThread<T>,
}

impl<T> Peer<T> {
    /// Waits up to `timeout` for the peer's result (a correctness bound).
    ///
    /// # Panics
    /// The peer panicked, or is still running after `timeout`.
    pub fn join(self, timeout: Duration) -> T {
        let what = self.thread.what().to_owned();
        match self.thread.join_timeout(timeout) {
            Ok(v) => v,
            Err(_) => panic!("kernel peer `{what}` still running after {timeout:?}"),
        }
    }

    /// Whether the closure has returned.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

/// Runs `f` as the kernel's side of a test on a new thread inside `ns` (see
/// [`Netns::spawn_in`]): sockets it opens belong to the namespace. `what` names it in
/// failures.
///
/// # Panics
/// The thread could not enter the namespace.
pub fn spawn_peer<T, F>(ns: &Netns, what: &str, f: F) -> Peer<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let thread = ns
        .spawn_in(what, f)
        .unwrap_or_else(|e| panic!("kernel peer `{what}`: cannot enter the namespace: {e}"));
    Peer { thread }
}

/// Runs `f` inside `ns` and waits for it: set-up on the kernel side (bind a listener
/// before the stack connects, read a per-namespace /proc file).
///
/// # Panics
/// The thread could not enter the namespace, or `f` panicked.
pub fn in_ns<T, F>(ns: &Netns, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    ns.run_in(f)
        .unwrap_or_else(|e| panic!("cannot enter the namespace: {e}"))
}

/// Whether `tool` is on PATH (skips loudly / fails otherwise).
pub fn tool_available(test: &str, tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
    found || skip_or_fail(test, &format!("`{tool}` is not installed"))
}

/// Returns from the calling test unless namespaces can be used (and every named tool
/// is installed); under `USTACK_REQUIRE_NETNS=1` it panics instead.
#[macro_export]
macro_rules! require_netns {
    ($($tool:expr),* $(,)?) => {{
        let test = ::std::thread::current().name().unwrap_or("kernel test").to_owned();
        if !$crate::netns_available(&test) {
            return;
        }
        $( if !$crate::tool_available(&test, $tool) { return; } )*
    }};
}

/// Which device joins the stack to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// A TAP `tap0`; kernel 10.77.0.1/24 on it.
    Tap,
    /// A veth pair: kernel 10.77.1.1/24 on `veth0`, the stack on `veth1` (no address) via AF_PACKET.
    Veth,
}

/// Options of a [`Fixture`].
#[derive(Clone, Debug)]
pub struct Options {
    /// The device.
    pub link: LinkKind,
    /// Record a pcap of every frame the stack moves.
    pub pcap: bool,
    /// Seed (MAC, ISNs, IP ids).
    pub seed: u64,
    /// IP MTU of both sides.
    pub mtu: usize,
    /// Faults injected on the stack's link, seeded with `seed`, as `ustack --loss ...
    /// --seed N` does: the injector wraps the device (and the pcap writer, which so
    /// records what really crossed the device). `None`: no injector at all.
    pub faults: Option<Faults>,
    /// Capacity of the injector's fate log per direction (0: off); read it with
    /// [`Fixture::injector`] and `poll_event`.
    pub fault_log: usize,
    /// Open the TAP with checksum and segmentation offloads (`--offload`); off by
    /// default so the other tests see one wire frame per read.
    pub offload: bool,
    /// Speak IPv6 too: the kernel gets fd00:77::1/64 (`nodad`, so no test waits for
    /// the kernel's DAD), the stack fd00:77::2/64 and its link-local address.
    pub ipv6: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            link: LinkKind::Tap,
            pcap: false,
            seed: 1,
            mtu: 1500,
            faults: None,
            fault_log: 0,
            offload: false,
            ipv6: false,
        }
    }
}

/// The kernel's IPv6 address and prefix under [`Options::ipv6`].
pub const KERNEL_IP6_CIDR: &str = "fd00:77::1/64";
/// The stack's IPv6 address and prefix under [`Options::ipv6`].
pub const STACK_IP6_CIDR: &str = "fd00:77::2/64";

/// A namespace with the kernel on one side of a link and a running stack on the other.
pub struct Fixture {
    // Field order is drop order: stop the stack, close the device (held by the
    // injector when there is one), then delete the namespace.
    stack: Option<NetStack>,
    injector: Option<Arc<Mutex<Injector>>>,
    fault_report: Option<FaultReport>,
    /// The namespace.
    pub ns: Netns,
    /// The stack's MAC.
    pub mac: EthernetAddress,
    /// The stack's address.
    pub stack_ip: String,
    /// The kernel's address.
    pub kernel_ip: String,
    /// The kernel-side interface name.
    pub kernel_if: &'static str,
    /// Where the pcap is written, if recording.
    pub pcap: Option<PathBuf>,
}

/// What the injector did over a fixture's life, collected by [`Fixture::stop`].
#[derive(Clone, Debug, Default)]
pub struct FaultReport {
    /// Device → stack counters.
    pub rx: FaultCounters,
    /// Stack → device counters.
    pub tx: FaultCounters,
    /// The fate log ([`Options::fault_log`]), oldest first, both directions.
    pub events: Vec<FaultEvent>,
    /// Events overwritten because the log was full (per direction, summed).
    pub events_lost: u64,
    /// Device → stack frames still held (delayed, queued or held back) when the stack
    /// stopped: counted as received, neither delivered nor dropped.
    pub rx_held_at_stop: usize,
    /// Stack → device frames still held when the stack stopped.
    pub tx_held_at_stop: usize,
}

/// The fault injector a fixture puts around its device ([`Options::faults`]).
pub type Injector = FaultInjector<Box<dyn Link + Send>>;

/// The injector, shared between the driver thread (which moves frames through it) and
/// the test (which reads its counters and fate log).
struct SharedInjector(Arc<Mutex<Injector>>);

impl SharedInjector {
    fn lock(&self) -> MutexGuard<'_, Injector> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Link for SharedInjector {
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.lock().recv(now, buf)
    }
    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        self.lock().send(now, frame)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.lock().poll_timeout()
    }
    // The injector decides whether offloads pass (only while it is transparent).
    fn caps(&self) -> ustack::link::LinkCaps {
        self.lock().caps()
    }
    fn rx_meta(&self) -> ustack::link::FrameMeta {
        self.lock().rx_meta()
    }
    fn send_meta(
        &mut self,
        now: Instant,
        frame: &[u8],
        meta: &ustack::link::FrameMeta,
    ) -> io::Result<()> {
        self.lock().send_meta(now, frame, meta)
    }
    fn ring_stats(&mut self) -> Option<ustack::link::RingStats> {
        self.lock().ring_stats()
    }
}

impl Fixture {
    /// Creates the namespace and devices and starts the stack.
    ///
    /// # Panics
    /// Any set-up step fails (the test fails with the reason).
    pub fn start(opts: Options) -> Fixture {
        // No hook: a round with none skips the hook pass entirely.
        Fixture::start_inner(opts, None)
    }

    /// Like [`start`](Self::start), with an application on the driver thread: `make_app`
    /// gets the interface under the stack lock (to open sockets, e.g. listen) before the
    /// hook is attached, and returns the hook run after every round of input.
    ///
    /// # Panics
    /// Any set-up step fails.
    pub fn start_with_app(
        opts: Options,
        make_app: impl FnOnce(&mut Interface) -> BoxedApp + 'static,
    ) -> Fixture {
        Fixture::start_inner(opts, Some(Box::new(make_app)))
    }

    fn start_inner(opts: Options, make_app: Option<Box<MakeApp>>) -> Fixture {
        let ns = Netns::new("ustack-test").expect("create namespace");
        let mac = mac_from_seed(opts.seed);
        let (spec, kernel_if, kernel_ip, stack_ip) = match opts.link {
            LinkKind::Tap => {
                ns.add_tap("tap0", "10.77.0.1/24").expect("create tap");
                (Device::Tap("tap0".into()), "tap0", "10.77.0.1", "10.77.0.2")
            }
            LinkKind::Veth => {
                ns.add_veth("veth0", "10.77.1.1/24", "veth1")
                    .expect("create veth");
                (
                    Device::Raw("veth1".into()),
                    "veth0",
                    "10.77.1.1",
                    "10.77.1.2",
                )
            }
        };
        if opts.mtu != 1500 {
            ns.ip(&["link", "set", kernel_if, "mtu", &opts.mtu.to_string()])
                .expect("set mtu");
        }
        let offload = if opts.offload {
            ustack_socket::link::Offload::Auto
        } else {
            ustack_socket::link::Offload::Off
        };
        let os_link = ns
            .run_in(move || spec.open_with(offload))
            .expect("enter namespace")
            .expect("open the stack's link");
        // Kernel side: its device is usable once it has seen the new carrier.
        ns.wait_running(kernel_if, Duration::from_secs(5))
            .expect("the kernel's device comes up");
        let pcap = opts
            .pcap
            .then(|| std::env::temp_dir().join(format!("{}.pcap", ns.name())));
        let ip: Ipv4Cidr = format!("{stack_ip}/24").parse().expect("cidr");
        if opts.ipv6 {
            // `Netns::new` turned IPv6 off; on again for this namespace and device.
            let dev = kernel_if;
            ns.run_in(move || {
                for which in ["all", "default", dev] {
                    std::fs::write(format!("/proc/sys/net/ipv6/conf/{which}/disable_ipv6"), "0")
                        .expect("enable IPv6");
                }
            })
            .expect("enter namespace");
            ns.ip(&[
                "-6",
                "addr",
                "add",
                KERNEL_IP6_CIDR,
                "dev",
                kernel_if,
                "nodad",
            ])
            .expect("kernel IPv6 address");
        }
        let seed = opts.seed;
        let mut builder = NetStack::builder()
            .os_link(os_link)
            .ip(ip)
            .mac(mac)
            .mtu(opts.mtu)
            .config(move |c| c.seed = seed);
        if opts.ipv6 {
            builder = builder.ip6(STACK_IP6_CIDR.parse().expect("cidr"));
        }
        if let Some(path) = &pcap {
            // Classic pcap at the device, under the injector: it records what really
            // crossed the device.
            builder = builder.pcap(path);
        }
        // The injector is shared with the test (counters and fate log while running),
        // so it wraps the link here rather than through `LinkOptions`.
        let mut handle = None;
        if let Some(faults) = opts.faults {
            let log = opts.fault_log;
            let (tx, rx) = std::sync::mpsc::channel();
            builder = builder.wrap_link(move |link| {
                let mut inj = FaultInjector::new(link, faults, seed);
                inj.enable_event_log(log);
                let shared = Arc::new(Mutex::new(inj));
                let _ = tx.send(shared.clone());
                Box::new(SharedInjector(shared))
            });
            handle = Some(rx);
        }
        let stack = builder.build().expect("start the stack");
        let injector = handle.map(|rx| rx.recv().expect("the injector was built"));
        // Under the stack lock: nothing the app's sockets report is missed meanwhile.
        if let Some(make_app) = make_app {
            stack.add_hook(move |iface, _| make_app(iface));
        }
        Fixture {
            stack: Some(stack),
            ns,
            mac,
            stack_ip: stack_ip.into(),
            kernel_ip: kernel_ip.into(),
            kernel_if,
            pcap,
            injector,
            fault_report: None,
        }
    }

    /// The fault injector on the stack's link (counters, fate log, configuration).
    /// Hold the guard briefly: the driver thread waits for it to move frames.
    ///
    /// # Panics
    /// The fixture was started without [`Options::faults`].
    pub fn injector(&self) -> MutexGuard<'_, Injector> {
        self.injector
            .as_ref()
            .expect("fixture started without faults")
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The running stack (for the socket API, or anything else a test needs of it).
    ///
    /// # Panics
    /// The stack was stopped.
    pub fn stack(&self) -> &NetStack {
        self.stack.as_ref().expect("stack running")
    }

    /// Runs `f` on the stack's interface under the stack lock, between two rounds of
    /// the driver, and returns its result; frames it queues go out right after.
    ///
    /// # Panics
    /// The stack is not running.
    pub fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Interface, Instant) -> T + Send + 'static,
    ) -> T {
        self.stack().with_interface(f)
    }

    /// Adds an application to the driver's hooks (after the fixture's own); it runs
    /// from the next round (started at once) until the stack stops.
    ///
    /// # Panics
    /// The stack is not running.
    pub fn spawn_app(&self, app: BoxedApp) {
        self.stack().add_hook(move |_, _| app);
    }

    /// Runs `args` inside the namespace.
    ///
    /// # Panics
    /// The command could not be started.
    pub fn exec(&self, args: &[&str]) -> Output {
        self.ns
            .exec(args)
            .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
    }

    /// Pings the stack from the kernel: a raw ICMP socket on a thread inside the
    /// namespace sends `opts.count` echo requests (see [`kernel_peer::ping`]). `opts`
    /// is [`PingOptions`] or ping's own flags (`&["-c", "3", "-s", "3000"]`).
    ///
    /// # Panics
    /// The namespace could not be entered, the raw socket failed, or a flag is unknown.
    ///
    /// [`kernel_peer::ping`]: ustack_socket::kernel_peer::ping
    pub fn ping(&self, opts: impl IntoPingOptions) -> Ping {
        let opts = opts.into_ping_options();
        let dst: std::net::Ipv4Addr = self.stack_ip.parse().expect("stack address");
        let cmd = format!(
            "ping -c {} -s {} -i {:?} -W {:?}{} {dst}",
            opts.count,
            opts.size,
            opts.interval,
            opts.timeout,
            if opts.flood { " -f" } else { "" }
        );
        let report = in_ns(&self.ns, move || {
            ustack_socket::kernel_peer::ping(dst, &opts)
        })
        .unwrap_or_else(|e| panic!("`{cmd}` from the kernel: {e}"));
        Ping::new(cmd, report)
    }

    /// Starts `f` as the kernel's side of the test, on a thread inside the namespace
    /// ([`spawn_peer`]).
    pub fn peer<T, F>(&self, what: &str, f: F) -> Peer<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        spawn_peer(&self.ns, what, f)
    }

    /// Runs `f` inside the namespace and waits for it ([`in_ns`]).
    pub fn in_ns<T, F>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        in_ns(&self.ns, f)
    }

    /// Adds `rule` (e.g. `-A INPUT ...`) inside the fixture's namespace, with whichever
    /// iptables flavour works here (nft, then legacy). Never touches the root namespace.
    ///
    /// # Panics
    /// No flavour accepted the rule.
    pub fn iptables(&self, rule: &[&str]) {
        let mut errors = String::new();
        for tool in ["iptables", "iptables-nft", "iptables-legacy"] {
            let mut args = vec![tool];
            args.extend_from_slice(rule);
            match self.ns.exec(&args) {
                Ok(out) if out.status.success() => return,
                Ok(out) => errors.push_str(&format!(
                    "{tool}: {}\n",
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Err(e) => errors.push_str(&format!("{tool}: {e}\n")),
            }
        }
        panic!("cannot add iptables rule {rule:?} in the namespace:\n{errors}");
    }

    /// Drops each packet the namespace's kernel receives or sends with `probability`
    /// (iptables `statistic` in INPUT and OUTPUT; this kernel has no netem). Only the
    /// INPUT drops are wire loss, for what the stack sends. A segment OUTPUT drops is
    /// a local send error to the kernel's TCP, which sends it again as new data: a
    /// kernel sender sees no loss (`RetransSegs` stays 0). For loss on what the kernel
    /// sends, use [`Options::faults`].
    pub fn add_kernel_loss(&self, probability: &str) {
        for chain in ["INPUT", "OUTPUT"] {
            self.iptables(&[
                "-A",
                chain,
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                probability,
                "-j",
                "DROP",
            ]);
        }
    }

    /// `Tcp: RetransSegs` of the namespace's kernel (`/proc/net/snmp` is per namespace,
    /// read from a thread inside it).
    pub fn kernel_retrans_segs(&self) -> u64 {
        let text = self
            .in_ns(|| peer::read_net_file("snmp"))
            .expect("/proc/net/snmp");
        peer::mib_value(&text, "Tcp", "RetransSegs").unwrap_or(0)
    }

    /// Whether the driver thread is still running and its link has not failed.
    pub fn stack_running(&self) -> bool {
        self.stack
            .as_ref()
            .is_some_and(|s| s.is_running() && s.link_error().is_none())
    }

    /// Stops the stack (flushing the pcap) and returns its interface and link counters.
    /// With faults, the injector's counters and fate log are kept for
    /// [`fault_report`](Self::fault_report) and the device is closed.
    ///
    /// # Panics
    /// Already stopped, or the driver ended on a link error.
    pub fn stop(&mut self) -> StackReport {
        let stopped = self
            .stack
            .take()
            .expect("stack already stopped")
            .stop()
            .unwrap_or_else(|_| panic!("the test still holds a handle of the stack"));
        if let Some(e) = &stopped.link_error {
            panic!("driver ended with a link error: {e}");
        }
        let report = StackReport {
            iface: stopped.iface,
            link: stopped.link,
        };
        if let Some(shared) = self.injector.take() {
            let Ok(mutex) = Arc::try_unwrap(shared) else {
                panic!("the stopped driver still holds the injector");
            };
            let mut inj = mutex.into_inner().unwrap_or_else(|e| e.into_inner());
            let mut events = Vec::new();
            while let Some(e) = inj.poll_event() {
                events.push(e);
            }
            self.fault_report = Some(FaultReport {
                rx: inj.counters(Direction::Rx),
                tx: inj.counters(Direction::Tx),
                events,
                events_lost: inj.model(Direction::Rx).events_lost()
                    + inj.model(Direction::Tx).events_lost(),
                rx_held_at_stop: inj.model(Direction::Rx).held(),
                tx_held_at_stop: inj.model(Direction::Tx).held(),
            });
            // Closes the device and flushes the pcap writer inside.
            drop(inj);
        }
        report
    }

    /// The injector's counters and fate log, after [`stop`](Self::stop).
    ///
    /// # Panics
    /// Not stopped yet, or started without faults.
    pub fn fault_report(&self) -> &FaultReport {
        self.fault_report
            .as_ref()
            .expect("fault_report after stop(), on a fixture with faults")
    }

    /// Opens an AF_PACKET socket on the kernel side of the link (inside the namespace),
    /// to inject frames towards the stack.
    ///
    /// # Panics
    /// The socket could not be opened.
    pub fn kernel_side_raw(&self) -> AfPacketLink {
        let ifname = self.kernel_if;
        self.ns
            .run_in(move || AfPacketLink::open(ifname))
            .expect("enter namespace")
            .expect("open AF_PACKET on the kernel side")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        drop(self.stack.take());
        if let Some(p) = &self.pcap {
            if std::thread::panicking() {
                eprintln!("pcap kept for inspection: {}", p.display());
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// What [`Fixture::ping`] accepts: [`PingOptions`], or the flags the tests gave
/// ping when they ran it (`-c N -s N -i SECS -W SECS -f -q`).
pub trait IntoPingOptions {
    /// The options.
    ///
    /// # Panics
    /// An unknown flag or a bad number.
    fn into_ping_options(self) -> PingOptions;
}

impl IntoPingOptions for PingOptions {
    fn into_ping_options(self) -> PingOptions {
        self
    }
}

impl IntoPingOptions for &[&str] {
    fn into_ping_options(self) -> PingOptions {
        // ping's defaults: 56 bytes, one second apart.
        let mut o = PingOptions::new(1, 56).interval(Duration::from_secs(1));
        let mut it = self.iter();
        let secs = |v: Option<&&str>| -> Duration {
            Duration::from_secs_f64(
                v.and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("ping flags {self:?}: a number of seconds")),
            )
        };
        while let Some(flag) = it.next() {
            match *flag {
                "-c" => o.count = it.next().and_then(|v| v.parse().ok()).expect("-c N"),
                "-s" => o.size = it.next().and_then(|v| v.parse().ok()).expect("-s N"),
                "-i" => o.interval = secs(it.next()),
                "-W" => o.timeout = secs(it.next()),
                "-f" => o.flood = true,
                "-q" | "-n" => {}
                other => panic!("ping flag {other} not supported by the kernel pinger"),
            }
        }
        o
    }
}

impl<const N: usize> IntoPingOptions for &[&str; N] {
    fn into_ping_options(self) -> PingOptions {
        self.as_slice().into_ping_options()
    }
}

/// The outcome of a kernel ping ([`Fixture::ping`]).
#[derive(Debug)]
pub struct Ping {
    /// The equivalent `ping` command line, for messages.
    pub cmd: String,
    /// Requests sent.
    pub transmitted: u32,
    /// Requests answered with intact payloads.
    pub received: u32,
    /// The summary line, for messages.
    pub output: String,
    /// Everything the pinger saw.
    pub report: PingReport,
}

impl Ping {
    fn new(cmd: String, report: PingReport) -> Ping {
        Ping {
            cmd,
            transmitted: report.transmitted,
            received: report.received,
            output: report.summary(),
            report,
        }
    }

    /// Asserts every request was answered, with intact payloads and no duplicates.
    ///
    /// # Panics
    /// Loss, corruption (wrong data) or duplicates.
    pub fn assert_all_answered(&self, expected: u32) {
        let r = &self.report;
        assert!(
            r.transmitted == expected
                && r.received == expected
                && r.wrong_data == 0
                && r.duplicates == 0,
            "`{}`: expected {expected} intact replies: {}",
            self.cmd,
            r.summary()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_flags_become_options() {
        let o = (&[
            "-q", "-f", "-i", "0.002", "-W", "1", "-c", "10000", "-s", "3000",
        ])
            .into_ping_options();
        assert_eq!((o.count, o.size, o.flood), (10_000, 3000, true));
        assert_eq!(o.interval, Duration::from_micros(2000));
        assert_eq!(o.timeout, Duration::from_secs(1));
        let o = (&["-c", "1"]).into_ping_options();
        assert_eq!((o.count, o.size, o.flood), (1, 56, false));
        assert_eq!(o.interval, Duration::from_secs(1));
    }

    #[test]
    #[should_panic(expected = "not supported")]
    fn unknown_ping_flag_is_refused() {
        let _ = (&["-c", "1", "-t", "3"]).into_ping_options();
    }
}
