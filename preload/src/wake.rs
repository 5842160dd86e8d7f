//! Waiting in the kernel for ustack sockets.
//!
//! Threads never wait on the stack's condition variables: a wait must be one the
//! kernel can interrupt with a signal (EINTR), and it often mixes ustack sockets with
//! pipes and files. So a waiting thread registers an eventfd of its own ([`WakeFd`])
//! in the process's [`Wakers`], checks the ustack sockets' readiness, and then blocks
//! in the kernel's ppoll(2) on its kernel descriptors plus that eventfd. The stack
//! calls each socket's readiness notifier (`NetStack::set_ready_notifier`) when it may
//! have changed; the notifier writes every registered eventfd, so the thread wakes and
//! checks again. Registering before checking means no change is missed.

use crate::real;
use crate::table::UFile;
use libc::{c_int, pollfd};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ustack_socket::{PollEvents, PollFd};

/// An eventfd that wakes one waiter; `pending` keeps a burst of wakes to one write.
pub struct WakeFd {
    /// The eventfd.
    pub fd: c_int,
    pending: AtomicBool,
}

impl WakeFd {
    /// A new non-blocking, close-on-exec eventfd.
    pub fn new() -> Result<WakeFd, c_int> {
        // SAFETY: eventfd takes no pointers.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(crate::errno());
        }
        Ok(WakeFd {
            fd,
            pending: AtomicBool::new(false),
        })
    }

    /// Makes the eventfd readable (once per drain).
    pub fn wake(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            let one: u64 = 1;
            // SAFETY: 8 valid bytes from a live local.
            unsafe { real::write(self.fd, (&one as *const u64).cast(), 8) };
        }
    }

    /// Makes the eventfd unreadable again (before re-checking what it signals).
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: 8 writable bytes of a live local.
        unsafe { real::read(self.fd, (&mut v as *mut u64).cast(), 8) };
        self.pending.store(false, Ordering::Release);
    }
}

impl Drop for WakeFd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { real::close(self.fd) };
    }
}

/// The waiters of one process.
#[derive(Default)]
pub struct Wakers {
    list: Mutex<Vec<Arc<WakeFd>>>,
}

impl Wakers {
    /// Adds a waiter.
    pub fn register(&self, w: &Arc<WakeFd>) {
        self.list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(w.clone());
    }

    /// Removes a waiter (one registration).
    pub fn unregister(&self, w: &Arc<WakeFd>) {
        let mut l = self.list.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = l.iter().position(|x| Arc::ptr_eq(x, w)) {
            l.swap_remove(i);
        }
    }

    /// Wakes every waiter (a socket may have changed).
    pub fn wake_all(&self) {
        for w in self.list.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            w.wake();
        }
    }
}

thread_local! {
    /// This thread's waker, with the pid it was made in (a forked child makes its own).
    static MINE: RefCell<Option<(c_int, Arc<WakeFd>)>> = const { RefCell::new(None) };
}

/// This thread's waker.
fn thread_waker() -> Result<Arc<WakeFd>, c_int> {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    MINE.with(|m| {
        let mut m = m.borrow_mut();
        if let Some((p, w)) = &*m {
            if *p == pid {
                return Ok(w.clone());
            }
        }
        let w = Arc::new(WakeFd::new()?);
        *m = Some((pid, w.clone()));
        Ok(w)
    })
}

/// One ustack socket in a wait: what is asked, what is ready.
pub struct UWait {
    /// The socket.
    pub file: Arc<UFile>,
    /// poll(2) events asked for.
    pub events: PollEvents,
    /// poll(2) events ready (filled in).
    pub revents: PollEvents,
}

/// Fills in `revents` of every socket from the stack now; returns how many are ready.
pub fn check(us: &mut [UWait]) -> usize {
    let mut n = 0;
    for u in us.iter_mut() {
        let mut p = [PollFd::new(u.file.sfd, u.events)];
        u.revents = match u.file.stack.poll(&mut p, Some(Duration::ZERO)) {
            Ok(_) => p[0].revents,
            Err(_) => PollEvents::POLLNVAL,
        };
        if !u.revents.is_empty() {
            n += 1;
        }
    }
    n
}

/// Time left until `deadline` (`None`: forever); `Err` once it passed.
pub(crate) fn remaining(deadline: Option<Instant>) -> Result<Option<Duration>, ()> {
    match deadline {
        None => Ok(None),
        Some(d) => d
            .checked_duration_since(Instant::now())
            .filter(|l| !l.is_zero())
            .map(Some)
            .ok_or(()),
    }
}

/// Waits until a kernel descriptor in `kfds` or a ustack socket in `us` is ready, or
/// `timeout` passes (`None`: forever), with `sigmask` during the wait (ppoll);
/// returns how many entries are ready (kernel `revents` and `us[..].revents` filled).
///
/// # Errors
/// EINTR when a signal handler ran; whatever ppoll(2) reports.
pub fn wait(
    kfds: &mut Vec<pollfd>,
    us: &mut [UWait],
    timeout: Option<Duration>,
    sigmask: *const libc::sigset_t,
) -> Result<usize, c_int> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let wakers = crate::table::process().wakers.clone();
    let me = thread_waker()?;
    wakers.register(&me);
    let r = wait_registered(kfds, us, deadline, sigmask, &me);
    wakers.unregister(&me);
    r
}

fn wait_registered(
    kfds: &mut Vec<pollfd>,
    us: &mut [UWait],
    deadline: Option<Instant>,
    sigmask: *const libc::sigset_t,
    me: &WakeFd,
) -> Result<usize, c_int> {
    loop {
        me.drain();
        let nu = check(us);
        let left = if nu > 0 {
            Some(Duration::ZERO)
        } else {
            remaining(deadline).unwrap_or(Some(Duration::ZERO))
        };
        kfds.push(pollfd {
            fd: me.fd,
            events: libc::POLLIN,
            revents: 0,
        });
        let ts = left.map(|d| libc::timespec {
            tv_sec: d.as_secs() as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let tsp = ts.as_ref().map_or(core::ptr::null(), |t| t as *const _);
        // SAFETY: `kfds` is a live, correctly sized array; `tsp` and `sigmask` are null
        // or point to live values.
        let r = unsafe { real::ppoll(kfds.as_mut_ptr(), kfds.len() as libc::nfds_t, tsp, sigmask) };
        let err = crate::errno();
        kfds.pop();
        if r < 0 {
            return Err(err);
        }
        let nk = kfds.iter().filter(|p| p.revents != 0).count();
        if nu + nk > 0 {
            if nu == 0 {
                // A socket may have become ready between the check and the wake-up;
                // report it with the kernel's.
                check(us);
            }
            return Ok(nk + us.iter().filter(|u| !u.revents.is_empty()).count());
        }
        if remaining(deadline).is_err() {
            return Ok(0);
        }
    }
}

/// Blocks until `file` has one of `events` (or an error/hang-up), `deadline` passes
/// (`Ok(false)`) or a signal arrives (EINTR).
pub fn wait_one(
    file: &Arc<UFile>,
    events: PollEvents,
    deadline: Option<Instant>,
) -> Result<bool, c_int> {
    let Ok(left) = remaining(deadline) else {
        return Ok(false);
    };
    let mut us = [UWait {
        file: file.clone(),
        events,
        revents: PollEvents::empty(),
    }];
    Ok(wait(&mut Vec::new(), &mut us, left, core::ptr::null())? > 0)
}

/// Whether a blocking socket call interrupted by a signal should start again, as
/// signal(7) says for accept, connect, recv and send when the handler has SA_RESTART
/// and the socket has no timeout. The wait cannot tell which signal interrupted it, so
/// the call restarts only when every installed handler has SA_RESTART (and returns
/// EINTR if any lacks it). Only asked after an EINTR, so its sigaction(2) reads (one
/// per signal, SIGRTMAX included) cost nothing in the common case.
pub fn restart_after_signal() -> bool {
    let mut handlers = 0;
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: sigaction with a null new action only reads the current one into
        // a zeroed, live struct.
        let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
        if unsafe { libc::sigaction(sig, core::ptr::null(), &mut old) } != 0 {
            continue;
        }
        if old.sa_sigaction == libc::SIG_DFL || old.sa_sigaction == libc::SIG_IGN {
            continue;
        }
        handlers += 1;
        if old.sa_flags & libc::SA_RESTART == 0 {
            return false;
        }
    }
    handlers > 0
}
