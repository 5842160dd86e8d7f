//! The control socket a running `ustack` listens on, so `ustack stats` can ask it for
//! its [`StatsReport`](crate::stats::StatsReport).
//!
//! Where: `RUN_DIR/PID.sock`, with `RUN_DIR` = `$USTACK_RUN_DIR`, else
//! `$XDG_RUNTIME_DIR/ustack`, else `/run/ustack` for root, else `$TMPDIR/ustack-UID`
//! (created with mode 0700; refused unless it belongs to us and only we can write it).
//! The socket is removed when the server is dropped.
//!
//! Protocol: the client connects and writes one line, `stats` or `stats json`; the
//! server answers with the report and closes.
//!
//! Off the hot path: a separate thread accepts and reads requests, hands each to the
//! driver through a channel and wakes the driver. The driver answers in its next round
//! with [`ControlServer::poll`], run from a driver hook (a `try_recv` when nobody
//! asks), so the report is read on the thread that owns the stack.

use crate::stats;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use ustack::iface::Interface;
use ustack::link::RingStats;
use ustack_socket::DriverStats;

/// How long a client may take to send its request, and the driver to answer.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The directory control sockets live in (see the module docs).
pub fn run_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("USTACK_RUN_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Path::new(&d).join("ustack");
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        PathBuf::from("/run/ustack")
    } else {
        std::env::temp_dir().join(format!("ustack-{uid}"))
    }
}

/// The control socket of process `pid` in `dir`.
pub fn socket_path(dir: &Path, pid: u32) -> PathBuf {
    dir.join(format!("{pid}.sock"))
}

/// Control sockets in `dir` whose process is still alive, by pid.
pub fn running(dir: &Path) -> Vec<(u32, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_socket()))
        .filter_map(|e| {
            let path = e.path();
            let pid: u32 = path.file_stem()?.to_str()?.parse().ok()?;
            Path::new(&format!("/proc/{pid}"))
                .exists()
                .then_some((pid, path))
        })
        .collect();
    out.sort();
    out
}

/// Asks the process listening on `path` for its report (`json`: the JSON form).
///
/// # Errors
/// Connecting, writing or reading failed.
pub fn query(path: &Path, json: bool) -> io::Result<String> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(TIMEOUT * 2))?;
    s.write_all(if json { b"stats json\n" } else { b"stats\n" })?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// One request waiting for the driver.
struct Request {
    json: bool,
    reply: mpsc::Sender<String>,
}

/// A listening control socket; answer requests with [`poll`](Self::poll).
pub struct ControlServer {
    path: PathBuf,
    requests: mpsc::Receiver<Request>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Listens on `path` (a stale socket there is replaced; the directory is created
    /// with mode 0700).
    ///
    /// # Errors
    /// The directory or socket could not be created, or the thread spawned.
    pub fn start(path: &Path, wake: impl Fn() + Send + 'static) -> io::Result<ControlServer> {
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            // A directory someone else made (e.g. in /tmp) could expose the socket.
            let meta = std::fs::metadata(dir)?;
            // SAFETY: geteuid has no preconditions and cannot fail.
            let uid = unsafe { libc::geteuid() };
            if meta.uid() != uid || meta.mode() & 0o022 != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("{} is not a private directory of uid {uid}", dir.display()),
                ));
            }
        }
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ustack-control".into())
            .spawn(move || accept_loop(&listener, &tx, &stop2, &wake))?;
        Ok(ControlServer {
            path: path.to_path_buf(),
            requests: rx,
            stop,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers every waiting request from `iface`, the host loop's counters `driver`
    /// and the receive ring's counters that `ring` reads (call it from a driver hook,
    /// which has all three: `Round::ring`). `ring` is called once per request, never
    /// when none waits, since reading the ring may cost a system call.
    pub fn poll(
        &self,
        iface: &mut Interface,
        driver: Option<DriverStats>,
        mut ring: impl FnMut() -> Option<RingStats>,
    ) {
        while let Ok(req) = self.requests.try_recv() {
            let _ = req
                .reply
                .send(stats::render(iface, driver, ring(), req.json));
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(
    listener: &UnixListener,
    tx: &mpsc::Sender<Request>,
    stop: &AtomicBool,
    wake: &dyn Fn(),
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                // One client at a time: requests are rare and answered quickly.
                let _ = serve(stream, tx, wake);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut pfd = libc::pollfd {
                    fd: listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd for the duration of the call.
                unsafe { libc::poll(&mut pfd, 1, 100) };
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn serve(stream: UnixStream, tx: &mpsc::Sender<Request>, wake: &dyn Fn()) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(&stream).take(256).read_line(&mut line)?;
    let mut out = &stream;
    let json = match line.trim() {
        "stats" => false,
        "stats json" => true,
        other => {
            return writeln!(out, "error: unknown request {other:?} (try \"stats\")");
        }
    };
    let (reply_tx, reply_rx) = mpsc::channel();
    if tx
        .send(Request {
            json,
            reply: reply_tx,
        })
        .is_err()
    {
        return writeln!(out, "error: the stack is shutting down");
    }
    wake();
    match reply_rx.recv_timeout(TIMEOUT) {
        Ok(text) => out.write_all(text.as_bytes()),
        Err(_) => writeln!(out, "error: the stack did not answer"),
    }
}
