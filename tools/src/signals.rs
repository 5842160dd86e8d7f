//! SIGINT/SIGTERM/SIGHUP handled on a dedicated thread (sigwait), so the action may do
//! anything (set a flag, delete namespaces, exit) instead of being async-signal-safe.

use std::io;

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and every thread it spawns
/// afterwards, and calls `action(signo)` from a dedicated thread for each one received.
///
/// Call it first thing in `main`, before any thread exists. Child processes start with
/// an empty signal mask (std's `Command` resets it), so they still get Ctrl-C.
///
/// # Errors
/// The mask could not be set or the thread could not be spawned.
pub fn handle_with(action: impl Fn(i32) + Send + 'static) -> io::Result<()> {
    // SAFETY: sigset_t is plain data initialised by sigemptyset before use; the calls
    // only touch that set and this thread's mask.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        set
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set` is a valid initialised sigset, `sig` a valid out pointer.
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                action(sig);
            }
        })?;
    Ok(())
}
