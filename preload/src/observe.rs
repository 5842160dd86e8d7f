//! `--trace`, `--trace-file` and `--stats` inside the program (`USTACK_TRACE`,
//! `USTACK_TRACE_FILE`, `USTACK_TRACE_EVERY`, `USTACK_STATS`): a hook in the stack's
//! driver drains TCP events through the `ustack` tool's tracer, and the report is
//! printed at exit. Lines go to stderr: the program's stdout is its own.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex};
use ustack::iface::Interface;
use ustack::time::{Duration, Instant};
use ustack_socket::env;
use ustack_socket::NetStack;
use ustack_tools::trace::{TraceRecord, Tracer};

/// What the program asked to observe.
pub struct Observer {
    tracer: Tracer,
    print: bool,
    file: Option<BufWriter<File>>,
    records: Vec<TraceRecord>,
    /// `Some(json)` when a report is wanted at exit.
    stats: Option<bool>,
}

impl Observer {
    /// From the environment; `None` when nothing is asked for.
    ///
    /// # Errors
    /// The trace file could not be created.
    pub fn from_env() -> Result<Option<Observer>, String> {
        let var = |k| std::env::var(k).ok().filter(|v| !v.is_empty());
        let print = var(env::TRACE).is_some_and(|v| v == "1");
        let file = match var(env::TRACE_FILE) {
            Some(p) => Some(BufWriter::new(
                File::create(&p).map_err(|e| format!("{p}: {e}"))?,
            )),
            None => None,
        };
        let stats = var(env::STATS).map(|v| v == "json");
        if !print && file.is_none() && stats.is_none() {
            return Ok(None);
        }
        let every = file.as_ref().map(|_| {
            let ms = var(env::TRACE_EVERY)
                .and_then(|v| v.parse().ok())
                .unwrap_or(10);
            Duration::from_millis(ms)
        });
        Ok(Some(Observer {
            tracer: Tracer::new(every),
            print,
            file,
            records: Vec::new(),
            stats,
        }))
    }

    fn poll(&mut self, iface: &mut Interface, now: Instant) {
        if !self.print && self.file.is_none() {
            // --stats alone: the events are not wanted; leave them for nobody.
            return;
        }
        self.tracer.poll(now, iface.tcp(), &mut self.records);
        let mut err = std::io::stderr().lock();
        for r in self.records.drain(..) {
            if self.print && r.is_event() {
                let _ = writeln!(err, "{}", r.human());
            }
            if let (Some(f), false) = (&mut self.file, r.is_listener()) {
                let _ = writeln!(f, "{}", r.json());
            }
        }
    }

    /// The last events, the trace file flushed; whether a `--stats` report is wanted
    /// (`Some(json)`).
    fn flush(&mut self, iface: &mut Interface, now: Instant) -> Option<bool> {
        self.poll(iface, now);
        if let Some(f) = &mut self.file {
            let _ = f.flush();
        }
        self.stats
    }
}

/// The observer of the process's stack, if any.
static CURRENT: Mutex<Option<Arc<Mutex<Observer>>>> = Mutex::new(None);

/// Starts observing `stack` as the environment asks.
///
/// # Errors
/// The trace file could not be created.
pub fn attach(stack: &NetStack) -> Result<(), String> {
    let Some(obs) = Observer::from_env()? else {
        return Ok(());
    };
    let obs = Arc::new(Mutex::new(obs));
    let hook = obs.clone();
    stack.add_hook(move |_, _| {
        Box::new(move |round| {
            hook.lock()
                .unwrap_or_else(|e| e.into_inner())
                .poll(round.iface, round.now);
        })
    });
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(obs);
    Ok(())
}

/// At exit: the last events, the trace file flushed, the `--stats` report.
pub fn finish(stack: &NetStack) {
    let Some(obs) = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    // The observer's lock is taken inside the stack's, as the hook takes it.
    let stats = stack.with_interface(|iface, now| {
        obs.lock()
            .unwrap_or_else(|e| e.into_inner())
            .flush(iface, now)
    });
    if let Some(json) = stats {
        let text = report(stack, json);
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

/// The `--stats` report of `stack` (`json`: the JSON form), as the other commands print
/// it: the interface's and TCP layer's counters, the host loop's, the receive ring's
/// (only when the device has one), then the TCP sockets.
pub(crate) fn report(stack: &NetStack, json: bool) -> String {
    // Both take the stack lock, which `with_interface` holds while it runs `f`.
    let driver = stack.driver_stats();
    let ring = stack.ring_stats();
    stack.with_interface(|iface, _| ustack_tools::stats::render(iface, Some(driver), ring, json))
}
