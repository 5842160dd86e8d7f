//! Readiness: [`NetStack::poll`] over any mix of descriptors (implemented in `bsd.rs`,
//! with [`PollFd`]), and [`Epoll`], a registry that scales to thousands of sockets.
//!
//! Readiness of a socket is computed from the engine on demand (`readiness`); nothing
//! is cached that could go stale. Waiting follows gVisor's `waiter` package: under the
//! stack lock, check; if nothing is ready, register a waiter (a condvar and an event
//! mask) on every socket of interest, wait, unregister, check again. Whoever runs a
//! round of I/O re-checks the sockets that have waiters and signals the ones whose
//! readiness meets the mask; since it holds the same lock, no wake-up is lost. A waiter
//! may lead the link itself instead of sleeping (see the driver module); the round it
//! runs signals the others.
//!
//! An [`Epoll`] keeps, like Linux's, a *ready list*: a round (or any call that
//! changes a socket's state) appends a descriptor when it becomes ready, and
//! [`Epoll::wait`] only looks at that list, never at the whole interest set. It is
//! level-triggered: a descriptor stays on the list while it is ready (EPOLLONESHOT is
//! supported; EPOLLET is not and is refused with EINVAL).

use crate::errno::Errno;
use crate::events::{EpollKey, ALWAYS};
use crate::ready::readiness;
use crate::stack::NetStack;
use crate::state::{remaining, step_down, wait_ready, State};
use crate::table::{EpollSet, EpollWatch, Fd, Interest};

use std::time::{Duration, Instant as StdInstant};

pub use crate::bsd::PollFd;
pub use crate::events::PollEvents;

/// `epoll_ctl` operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpollOp {
    /// EPOLL_CTL_ADD: start watching a descriptor.
    Add,
    /// EPOLL_CTL_MOD: change the events or data (and re-arm a oneshot).
    Mod,
    /// EPOLL_CTL_DEL: stop watching.
    Del,
}

/// `struct epoll_event`: the events, and the caller's data given back with them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EpollEvent {
    /// Events asked for (in `ctl`) or ready (from `wait`).
    pub events: PollEvents,
    /// Opaque to the stack, usually the descriptor or a token.
    pub data: u64,
}

impl EpollEvent {
    /// An event mask with its data.
    pub fn new(events: PollEvents, data: u64) -> EpollEvent {
        EpollEvent { events, data }
    }
}

/// An epoll-like registry of descriptors of one stack
/// ([epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html)). Unlike Linux,
/// it is an object rather than a descriptor, and closing a descriptor removes it from
/// every epoll even if a `dup` of it is still open.
#[derive(Debug)]
pub struct Epoll {
    stack: NetStack,
    key: EpollKey,
}

impl Epoll {
    /// A new, empty instance on `stack`
    /// ([epoll_create(2)](https://man7.org/linux/man-pages/man2/epoll_create.2.html)).
    pub fn new(stack: &NetStack) -> Epoll {
        let mut st = stack.shared().lock();
        let key = EpollKey(st.next_epoll);
        st.next_epoll += 1;
        st.epolls.insert(key, EpollSet::default());
        Epoll {
            stack: stack.clone(),
            key,
        }
    }

    /// Adds, changes or removes `fd`
    /// ([epoll_ctl(2)](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html)).
    ///
    /// # Errors
    /// EBADF (not open), EEXIST (`Add` twice), ENOENT (`Mod`/`Del` of an unwatched
    /// descriptor), EINVAL (EPOLLET).
    pub fn ctl(&self, op: EpollOp, fd: Fd, event: EpollEvent) -> Result<(), Errno> {
        if event.events.intersects(PollEvents::EPOLLET) {
            return Err(Errno::EINVAL);
        }
        let mut st = self.stack.shared().lock();
        let key = st.table.key(fd)?;
        let set = st.epolls.get_mut(&self.key).ok_or(Errno::EBADF)?;
        let watching = set.interest.contains_key(&fd);
        match op {
            EpollOp::Add if watching => return Err(Errno::EEXIST),
            EpollOp::Mod | EpollOp::Del if !watching => return Err(Errno::ENOENT),
            EpollOp::Del => {
                set.interest.remove(&fd);
                let file = st.table.file_mut(key)?;
                file.epolls.retain(|w| !(w.epoll == self.key && w.fd == fd));
                st.update_watched(key);
                return Ok(());
            }
            EpollOp::Add | EpollOp::Mod => {
                set.interest.insert(
                    fd,
                    Interest {
                        key,
                        events: event.events,
                        data: event.data,
                        disarmed: false,
                    },
                );
                let file = st.table.file_mut(key)?;
                file.epolls.retain(|w| !(w.epoll == self.key && w.fd == fd));
                file.epolls.push(EpollWatch {
                    epoll: self.key,
                    fd,
                    mask: event.events,
                });
                st.update_watched(key);
            }
        }
        // It may be ready already.
        st.notify(key);
        Ok(())
    }

    /// Waits until some watched descriptor is ready or `timeout` passes (`None`:
    /// forever) and fills `events`; returns how many
    /// ([epoll_wait(2)](https://man7.org/linux/man-pages/man2/epoll_wait.2.html)).
    /// Only the ready list is examined, so the cost does not grow with the number of
    /// idle descriptors.
    ///
    /// # Errors
    /// EINVAL when `events` is empty.
    pub fn wait(
        &self,
        events: &mut [EpollEvent],
        timeout: Option<Duration>,
    ) -> Result<usize, Errno> {
        if events.is_empty() {
            return Err(Errno::EINVAL);
        }
        let deadline = timeout.map(|t| StdInstant::now() + t);
        let shared = self.stack.shared();
        let mut st = shared.lock();
        let mut leading = false;
        let mut polled = false;
        let r = loop {
            if st.dead {
                break Err(Errno::EIO);
            }
            let n = self.harvest(&mut st, events);
            if n > 0 {
                break Ok(n);
            }
            let left = match remaining(deadline) {
                Ok(Some(l)) if l.is_zero() => None,
                Ok(left) => Some(left),
                Err(()) => None,
            };
            let Some(left) = left else {
                if !polled && st.link_unattended() {
                    // Frames may wait on a link nobody polls: look once.
                    polled = true;
                    st.caller_round(shared.now());
                    continue;
                }
                break Ok(0);
            };
            let cv = match st.epolls.get(&self.key) {
                Some(set) => set.cv.clone(),
                None => break Err(Errno::EBADF),
            };
            // Waiting on the set's condvar, or leading the link with it as identity:
            // a round that marks a descriptor ready signals either.
            st = wait_ready(shared, st, &cv, left, &mut leading);
        };
        step_down(&mut st, &mut leading);
        r
    }

    /// Moves ready descriptors into `out`: each queued one is re-checked; one still
    /// ready is reported and re-queued at the back (level-triggered), others dropped.
    fn harvest(&self, st: &mut State, out: &mut [EpollEvent]) -> usize {
        let State {
            iface,
            table,
            epolls,
            ..
        } = st;
        let Some(set) = epolls.get_mut(&self.key) else {
            return 0;
        };
        let mut n = 0;
        let mut budget = set.ready.len();
        while n < out.len() && budget > 0 {
            budget -= 1;
            let Some(fd) = set.ready.pop_front() else {
                break;
            };
            let ready = match set.interest.get_mut(&fd) {
                Some(i) if !i.disarmed && table.key(fd) == Ok(i.key) => {
                    match table.file_mut(i.key) {
                        Ok(f) => {
                            let r = readiness(iface, f) & (i.events | ALWAYS);
                            if !r.is_empty() {
                                out[n] = EpollEvent::new(r, i.data);
                                n += 1;
                                if i.events.contains(PollEvents::EPOLLONESHOT) {
                                    i.disarmed = true;
                                }
                            }
                            !r.is_empty() && !i.disarmed
                        }
                        Err(_) => false,
                    }
                }
                _ => false,
            };
            if ready {
                set.ready.push_back(fd);
            } else {
                set.queued.remove(&fd);
            }
        }
        n
    }

    /// How many descriptors are watched.
    pub fn len(&self) -> usize {
        let st = self.stack.shared().lock();
        st.epolls.get(&self.key).map_or(0, |s| s.interest.len())
    }

    /// True when nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        let mut st = self.stack.shared().lock();
        if let Some(set) = st.epolls.remove(&self.key) {
            for (fd, i) in set.interest {
                if let Ok(f) = st.table.file_mut(i.key) {
                    f.epolls.retain(|w| !(w.epoll == self.key && w.fd == fd));
                    st.update_watched(i.key);
                }
            }
        }
    }
}
