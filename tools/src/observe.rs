//! What `--trace`, `--trace-file`, `--stats` and the control socket do around a running
//! stack: a hook in the stack's driver (`ustack_socket::Hook`) that drains TCP events
//! into the trace and answers `ustack stats`, and the report at exit. The formatting
//! lives in the library (`trace`, `stats`, `control`); printing happens here.

use crate::global::{GlobalArgs, StatsFormat};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::{Arc, Mutex, PoisonError};
use ustack::iface::Interface;
use ustack::link::RingStats;
use ustack::time::{Duration, Instant};
use ustack_socket::{DriverStats, NetStack};
use ustack_tools::control::{self, ControlServer};
use ustack_tools::stats;
use ustack_tools::trace::{TraceRecord, Tracer};

/// Trace, control socket and exit report of one running stack.
pub struct Observer {
    tracer: Option<Tracer>,
    print: bool,
    file: Option<BufWriter<File>>,
    records: Vec<TraceRecord>,
    control: Option<ControlServer>,
    stats: Option<StatsFormat>,
    /// Print trace lines and the report on stderr (commands whose stdout is data).
    stderr: bool,
}

impl Observer {
    /// Opens the trace file and, with `control`, the control socket of `stack` (a
    /// failure there is reported and the stack runs without it).
    ///
    /// # Errors
    /// The trace file could not be created.
    pub fn new(args: &GlobalArgs, stack: &NetStack, control: bool) -> Result<Observer, String> {
        let file = match &args.trace_file {
            Some(p) => Some(BufWriter::new(
                File::create(p).map_err(|e| format!("{}: {e}", p.display()))?,
            )),
            None => None,
        };
        let tracing = args.trace || file.is_some();
        let every = file
            .as_ref()
            .map(|_| Duration::from_millis(args.trace_every));
        let control = if control {
            let path = control::socket_path(&control::run_dir(), std::process::id());
            let waker = stack.driver_waker();
            match ControlServer::start(&path, move || waker.wake()) {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!(
                        "ustack: no control socket ({}: {e}); `ustack stats` will not reach this process",
                        path.display()
                    );
                    None
                }
            }
        } else {
            None
        };
        Ok(Observer {
            tracer: tracing.then(|| Tracer::new(every)),
            print: args.trace,
            file,
            records: Vec::new(),
            control,
            stats: args.stats,
            stderr: false,
        })
    }

    /// Prints trace lines and the `--stats` report on stderr instead of stdout.
    pub fn on_stderr(mut self) -> Observer {
        self.stderr = true;
        self
    }

    /// Whether any of `--trace`, `--trace-file`, `--stats` asks for observing.
    pub fn wanted(args: &GlobalArgs) -> bool {
        args.trace || args.trace_file.is_some() || args.stats.is_some()
    }

    /// The control socket's path, if listening.
    pub fn control_path(&self) -> Option<&std::path::Path> {
        self.control.as_ref().map(ControlServer::path)
    }

    /// The driver hook's work: trace what happened, answer waiting `ustack stats`
    /// requests (with the host loop's counters `driver`, when the caller has them, and
    /// the receive ring's that `ring` reads, only if a request waits).
    pub fn poll(
        &mut self,
        iface: &mut Interface,
        now: Instant,
        driver: Option<DriverStats>,
        ring: impl FnMut() -> Option<RingStats>,
    ) {
        if let Some(tracer) = &mut self.tracer {
            tracer.poll(now, iface.tcp(), &mut self.records);
            if !self.records.is_empty() {
                let mut out: Box<dyn Write> = if self.stderr {
                    Box::new(io::stderr().lock())
                } else {
                    Box::new(io::stdout().lock())
                };
                for r in self.records.drain(..) {
                    if self.print && r.is_event() {
                        let _ = writeln!(out, "{}", r.human());
                    }
                    if let (Some(f), false) = (&mut self.file, r.is_listener()) {
                        let _ = writeln!(f, "{}", r.json());
                    }
                }
            }
        }
        if let Some(c) = &self.control {
            c.poll(iface, driver, ring);
        }
    }

    /// Stops listening, flushes the trace file and prints the `--stats` report (with the
    /// host loop's counters `driver` and the receive ring's `ring`, when known).
    pub fn finish(
        mut self,
        iface: &mut Interface,
        now: Instant,
        driver: Option<DriverStats>,
        ring: Option<RingStats>,
    ) {
        self.poll(iface, now, driver, || ring);
        drop(self.control.take());
        if let Some(mut f) = self.file.take() {
            if let Err(e) = f.flush() {
                eprintln!("ustack: trace file: {e}");
            }
        }
        print_stats_to(self.stats, iface, driver, ring, self.stderr);
    }
}

/// An [`Observer`] running as a hook in a stack's driver, until
/// [`detach`](Self::detach) takes it back.
pub struct Attached {
    slot: Arc<Mutex<Option<Observer>>>,
}

impl Attached {
    /// Runs `obs` after every round of `stack`'s driver.
    pub fn attach(obs: Observer, stack: &NetStack) -> Attached {
        let slot = Arc::new(Mutex::new(Some(obs)));
        let hook_slot = slot.clone();
        stack.add_hook(move |_, _| {
            Box::new(move |round| {
                let mut obs = hook_slot.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(obs) = obs.as_mut() {
                    obs.poll(round.iface, round.now, Some(round.driver), || {
                        round.ring.stats()
                    });
                }
            })
        });
        Attached { slot }
    }

    /// Stops the hook and returns the observer (to [`finish`](Observer::finish) it).
    pub fn detach(self) -> Option<Observer> {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Prints the `--stats` report, if asked for, on stdout (`stderr`: on stderr), with the
/// host loop's counters `driver` and the receive ring's `ring` when known.
pub fn print_stats_to(
    format: Option<StatsFormat>,
    iface: &mut Interface,
    driver: Option<DriverStats>,
    ring: Option<RingStats>,
    stderr: bool,
) {
    let Some(format) = format else {
        return;
    };
    let text = stats::render(iface, driver, ring, format == StatsFormat::Json);
    if stderr {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}
