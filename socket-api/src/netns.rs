//! Network namespaces the process creates for itself, and removes on every exit path.
//!
//! Rules this module enforces for its users (see `docs/testing.md`):
//! - every namespace has a unique name (`PREFIX-PID-COUNTER-RANDOM`), so parallel tests
//!   and concurrent runs never collide;
//! - TAP and veth devices are created *inside* the namespace, never in the root one;
//! - [`Netns`]'s `Drop` kills the processes left inside and deletes the namespace (and
//!   with it every device in it), on panics too; [`cleanup_all`] does the same from a
//!   signal handler thread.

use std::collections::hash_map::RandomState;
use std::ffi::OsStr;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::unix::io::AsRawFd;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

static COUNTER: AtomicU64 = AtomicU64::new(0);
/// Names of live namespaces, for [`cleanup_all`].
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Errors of namespace set-up.
#[derive(Debug)]
pub enum NetnsError {
    /// A command could not be started (e.g. `ip` is not installed).
    Spawn(String, io::Error),
    /// A command ran and failed.
    Failed(String, String),
    /// A system call failed.
    Io(io::Error),
}

impl std::fmt::Display for NetnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetnsError::Spawn(cmd, e) => write!(f, "cannot run `{cmd}`: {e}"),
            NetnsError::Failed(cmd, stderr) => write!(f, "`{cmd}` failed: {}", stderr.trim()),
            NetnsError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for NetnsError {}

impl From<io::Error> for NetnsError {
    fn from(e: io::Error) -> Self {
        NetnsError::Io(e)
    }
}

/// Runs `cmd` and fails unless it exits 0.
fn run_checked<S: AsRef<OsStr>>(args: &[S]) -> Result<Output, NetnsError> {
    let line = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new(&args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| NetnsError::Spawn(line.clone(), e))?;
    if !out.status.success() {
        return Err(NetnsError::Failed(
            line,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Ok(out)
}

fn random_u16() -> u16 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u16
}

/// A network namespace this process created; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace named `PREFIX-PID-COUNTER-RANDOM` with `lo` up and IPv6 off
    /// (so traces show only what the stack speaks).
    ///
    /// # Errors
    /// `ip netns add` failed (usually: not root / no CAP_SYS_ADMIN).
    pub fn new(prefix: &str) -> Result<Netns, NetnsError> {
        let name = format!(
            "{prefix}-{}-{}-{:04x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            random_u16()
        );
        run_checked(&["ip", "netns", "add", &name])?;
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.clone());
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        // Written from a thread inside the namespace: /proc/sys/net is the calling
        // thread's namespace's. Best effort: a kernel without IPv6 has no such file,
        // which is just as good.
        ns.run_in(|| {
            for which in ["all", "default"] {
                let _ =
                    std::fs::write(format!("/proc/sys/net/ipv6/conf/{which}/disable_ipv6"), "1");
            }
        })?;
        Ok(ns)
    }

    /// The namespace's name (for `ip netns exec NAME ...`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS...` and fails unless it succeeds.
    ///
    /// # Errors
    /// The command could not run or exited non-zero.
    pub fn ip(&self, args: &[&str]) -> Result<Output, NetnsError> {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend_from_slice(args);
        run_checked(&full)
    }

    /// Runs `ARGS...` inside the namespace and returns its output, whatever the status.
    ///
    /// # Errors
    /// The command could not be started.
    pub fn exec<S: AsRef<OsStr>>(&self, args: &[S]) -> io::Result<Output> {
        self.command(args).stdin(Stdio::null()).output()
    }

    /// A [`Command`] that runs `ARGS...` inside the namespace (`ip netns exec`).
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]);
        cmd.args(args);
        cmd
    }

    /// Creates a TAP device `tap` inside the namespace (persistent until the namespace
    /// goes), gives the kernel side `kernel_cidr` (e.g. `10.77.0.1/24`) and brings it up.
    /// A stack then attaches to it with `TapLink::open(tap)` from [`Netns::run_in`].
    ///
    /// # Errors
    /// One of the `ip` commands failed.
    pub fn add_tap(&self, tap: &str, kernel_cidr: &str) -> Result<(), NetnsError> {
        self.ip(&["tuntap", "add", "dev", tap, "mode", "tap"])?;
        self.ip(&["addr", "add", kernel_cidr, "dev", tap])?;
        self.ip(&["link", "set", tap, "up"])?;
        Ok(())
    }

    /// Creates a veth pair `a`–`b` inside the namespace, gives `a` the kernel address
    /// `a_cidr`, leaves `b` without an address (for an AF_PACKET stack) and brings both
    /// up. Transmit checksum offload is turned off on `a` (an ioctl, no ethtool needed)
    /// so the kernel's UDP/TCP reach the raw socket with complete checksums.
    ///
    /// # Errors
    /// One of the `ip` commands or the ioctl failed.
    pub fn add_veth(&self, a: &str, a_cidr: &str, b: &str) -> Result<(), NetnsError> {
        self.ip(&["link", "add", a, "type", "veth", "peer", "name", b])?;
        self.ip(&["addr", "add", a_cidr, "dev", a])?;
        self.ip(&["link", "set", a, "up"])?;
        self.ip(&["link", "set", b, "up"])?;
        let dev = a.to_owned();
        // Complete checksums for an AF_PACKET reader: the kernel's UDP and TCP would
        // otherwise leave the veth with partial ones.
        self.run_in(move || crate::ethtool::set_tx_checksum(&dev, false))??;
        Ok(())
    }

    /// Waits up to `timeout` until the kernel's device `dev` is operational
    /// (IFF_RUNNING), e.g. once a stack has opened its TAP. Until the kernel has
    /// processed the carrier change it drops what it sends on the device (its queue
    /// discipline is attached with the operational state), so a kernel peer that
    /// starts at once loses its first ARP request and waits a second for the retry.
    ///
    /// # Errors
    /// The namespace could not be entered, the device does not exist, or it is not
    /// running after `timeout`.
    pub fn wait_running(&self, dev: &str, timeout: Duration) -> Result<(), NetnsError> {
        let name = dev.to_owned();
        self.run_in(move || -> io::Result<()> {
            let deadline = Instant::now() + timeout;
            loop {
                if if_flags(&name)? & libc::IFF_RUNNING as libc::c_short != 0 {
                    // The operational state is set just before the qdisc is attached,
                    // in the same kernel work item: give it a moment to finish.
                    std::thread::sleep(Duration::from_millis(1));
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{name} not running after {timeout:?}"),
                    ));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })??;
        Ok(())
    }

    /// Runs `f` on a new thread that has entered the namespace (setns(2)), and returns
    /// its result. File descriptors opened there (TAP, AF_PACKET sockets) stay bound to
    /// the namespace, whatever thread uses them afterwards.
    ///
    /// # Errors
    /// The namespace could not be entered.
    pub fn run_in<T, F>(&self, f: F) -> Result<T, NetnsError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        Ok(self.spawn_in("run", f)?.join())
    }

    /// Starts `f` on a new thread named `netns-WHAT` that has entered the namespace
    /// (setns(2)) before `f` runs, and returns at once: the kernel's side of a
    /// conversation (a ping, an HTTP client, an echo server) runs there on kernel
    /// sockets while the caller drives the other side. Sockets the thread opens belong
    /// to the namespace; the rest of the process stays where it is.
    ///
    /// # Errors
    /// The thread could not start or the namespace could not be entered.
    pub fn spawn_in<T, F>(&self, what: &str, f: F) -> Result<NsThread<T>, NetnsError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path)?;
        let (entered_tx, entered) = mpsc::sync_channel::<io::Result<()>>(1);
        let handle = std::thread::Builder::new()
            .name(format!("netns-{what}"))
            .spawn(move || -> Option<T> {
                // SAFETY: setns on a valid namespace fd; it changes only this thread's
                // network namespace (CLONE_NEWNET is allowed in multithreaded processes).
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                drop(file);
                if rc != 0 {
                    let _ = entered_tx.send(Err(io::Error::last_os_error()));
                    return None;
                }
                let _ = entered_tx.send(Ok(()));
                Some(f())
            })?;
        match entered.recv() {
            Ok(Ok(())) => Ok(NsThread {
                handle,
                what: what.to_owned(),
            }),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(NetnsError::Io(e))
            }
            Err(_) => Err(NetnsError::Io(io::Error::other(
                "the namespace thread ended before entering",
            ))),
        }
    }

    /// Kills what runs inside and deletes the namespace now.
    fn delete(name: &str) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", name])
            .stderr(Stdio::null())
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<libc::pid_t>() {
                    // SAFETY: kill(2) on a pid that lives in a namespace we created.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        Netns::delete(&self.name);
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n| n != &self.name);
    }
}

/// A thread inside a namespace, started by [`Netns::spawn_in`].
#[derive(Debug)]
pub struct NsThread<T> {
    handle: JoinHandle<Option<T>>,
    what: String,
}

impl<T> NsThread<T> {
    /// What the thread does (the name it was started with).
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Whether the closure has returned (or panicked).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the closure and returns its result; a panic in it continues here.
    pub fn join(self) -> T {
        match self.handle.join() {
            Ok(Some(v)) => v,
            // `spawn_in` hands out a handle only once the thread entered the namespace,
            // and from then on the thread returns `Some`.
            Ok(None) => unreachable!("namespace thread handed out before entering"),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Waits up to `timeout` for the closure; gives the handle back if it still runs.
    ///
    /// # Errors
    /// The closure did not return within `timeout`.
    pub fn join_timeout(self, timeout: Duration) -> Result<T, NsThread<T>> {
        let deadline = Instant::now() + timeout;
        while !self.handle.is_finished() {
            if Instant::now() >= deadline {
                return Err(self);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(self.join())
    }
}

/// `struct ifreq` with the `ifr_flags` member.
#[repr(C)]
struct IfreqFlags {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// The interface flags of `dev` (SIOCGIFFLAGS), as the calling thread's namespace sees it.
fn if_flags(dev: &str) -> io::Result<libc::c_short> {
    if dev.is_empty() || dev.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad device name",
        ));
    }
    let mut req = IfreqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    for (d, s) in req.name.iter_mut().zip(dev.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: plain socket(2); the fd is closed below on every path.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of `req`, which outlives
    // the call.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req) };
    let err = io::Error::last_os_error();
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
    if rc != 0 {
        return Err(err);
    }
    Ok(req.flags)
}

/// Moves the calling thread into the existing network namespace `name`
/// (`/run/netns/NAME`, as `ip netns add` makes it) with setns(2). Threads spawned
/// afterwards inherit it, so `ustack --netns` calls this on the main thread before it
/// opens a device or starts a thread. Creates nothing and configures nothing.
///
/// # Errors
/// `name` is not a plain name, the namespace does not exist, or the process lacks
/// CAP_SYS_ADMIN; the message says which.
pub fn enter(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(format!(
            "--netns `{name}`: a namespace name as `ip netns list` shows it, not a path"
        ));
    }
    let path = format!("/run/netns/{name}");
    let denied = |e: &io::Error| matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES));
    let file = File::open(&path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            format!("--netns {name}: no network namespace `{name}` ({path} does not exist; `ip netns list` shows the existing ones)")
        } else if denied(&e) {
            format!("--netns {name}: cannot open {path}: {e} (entering a namespace needs root / CAP_SYS_ADMIN)")
        } else {
            format!("--netns {name}: cannot open {path}: {e}")
        }
    })?;
    // SAFETY: setns on a valid fd we own; CLONE_NEWNET changes only the calling
    // thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(if denied(&e) {
            format!("--netns {name}: cannot enter the namespace: {e} (needs root / CAP_SYS_ADMIN)")
        } else if e.raw_os_error() == Some(libc::EINVAL) {
            format!("--netns {name}: {path} is not a network namespace")
        } else {
            format!("--netns {name}: cannot enter the namespace: {e}")
        });
    }
    Ok(())
}

/// Deletes every namespace this process still holds (for signal handlers that exit).
pub fn cleanup_all() {
    let names: Vec<String> = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|e| e.into_inner()));
    for name in names {
        Netns::delete(&name);
    }
}

/// Whether the process can create namespaces and devices: see [`missing_privileges`].
pub fn have_privileges() -> bool {
    missing_privileges().is_empty()
}

/// What this process lacks to create namespaces and devices, one short phrase each
/// (empty when nothing): effective CAP_NET_ADMIN (12), CAP_NET_RAW (13) and
/// CAP_SYS_ADMIN (21), i.e. root; `/dev/net/tun`; and the `ip` tool of iproute2.
pub fn missing_privileges() -> Vec<&'static str> {
    let cap_eff = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    let needed = (1u64 << 12) | (1 << 13) | (1 << 21);
    let mut missing = Vec::new();
    if cap_eff & needed != needed {
        missing.push("root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN)");
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        missing.push("/dev/net/tun");
    }
    let ip = Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !ip.is_ok_and(|s| s.success()) {
        missing.push("the `ip` command (iproute2)");
    }
    missing
}
