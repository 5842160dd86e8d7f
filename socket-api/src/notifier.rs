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
        st.table.file_mut(key)?.notifier = notifier.map(Notifier);
        st.update_watched(key);
        st.notify(key);
        Ok(())
    }
}
