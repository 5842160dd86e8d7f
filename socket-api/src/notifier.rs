//! Per-descriptor readiness callbacks, for hosts that keep a kernel object in step
//! with a socket (the LD_PRELOAD library wakes threads blocked in the kernel's poll(2)
//! with them).
//!
//! A notifier is called by the driver, with the stack lock held, each time the engine
//! reports that the socket behind the descriptor may have changed, with its readiness
//! then (possibly empty). It must be quick and must not call back into the stack: it
//! typically sets a flag and writes an eventfd. Changes made by the caller's own calls
//! (a `recv` that empties the buffer) are not reported; the caller knows about them.

use crate::errno::Errno;
use crate::events::Notifier;
pub use crate::events::ReadyNotifier;
use crate::stack::NetStack;
use crate::table::Fd;

impl NetStack {
    /// Calls `notifier` (or stops calling the previous one, with `None`) whenever the
    /// engine reports the socket behind `fd` may have changed; see the module docs of
    /// `notifier`. It is set on the open description, so `dup`s share it, and it is
    /// dropped when the description closes. Setting one calls it once at once with the
    /// current readiness.
    ///
    /// # Errors
    /// EBADF when `fd` is not open.
    pub fn set_ready_notifier(&self, fd: Fd, notifier: Option<ReadyNotifier>) -> Result<(), Errno> {
        let mut st = self.shared().lock();
        let key = st.table.key(fd)?;
        st.external_waiters |= notifier.is_some();
        st.table.file_mut(key)?.notifier = notifier.map(Notifier);
        st.update_watched(key);
        st.notify(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{NetStack, PollEvents, UdpSocket};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    #[test]
    fn a_datagram_arriving_calls_the_notifier_with_pollin_and_none_stops_it() {
        let (a, b) = NetStack::builder()
            .ip("10.0.0.1/24".parse().unwrap())
            .build_pair(NetStack::builder().ip("10.0.0.2/24".parse().unwrap()), 64)
            .unwrap();
        let server = b
            .socket(crate::AF_INET, crate::SOCK_DGRAM | crate::SOCK_NONBLOCK, 0)
            .unwrap();
        b.bind(server, "0.0.0.0:7".parse().unwrap()).unwrap();
        let seen: Arc<Mutex<Vec<PollEvents>>> = Arc::default();
        let s2 = seen.clone();
        b.set_ready_notifier(server, Some(Arc::new(move |r| s2.lock().unwrap().push(r))))
            .unwrap();
        // Setting it reports the readiness now: writable, nothing to read.
        let first = seen.lock().unwrap().clone();
        assert!(
            !first.is_empty() && !first[0].intersects(PollEvents::POLLIN),
            "{first:?}"
        );
        let client = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
        client.send_to(b"x", "10.0.0.2:7").unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        while !seen
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.intersects(PollEvents::POLLIN))
        {
            assert!(
                Instant::now() < end,
                "no POLLIN report: {:?}",
                seen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut buf = [0u8; 4];
        assert_eq!(b.recv(server, &mut buf, 0).unwrap(), 1);
        b.set_ready_notifier(server, None).unwrap();
        let n = seen.lock().unwrap().len();
        client.send_to(b"y", "10.0.0.2:7").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            seen.lock().unwrap().len(),
            n,
            "a removed notifier was called"
        );
        assert_eq!(b.recv(server, &mut buf, 0).unwrap(), 1);
        assert!(
            b.set_ready_notifier(99_999, None).is_err(),
            "EBADF for a closed descriptor"
        );
    }
}
