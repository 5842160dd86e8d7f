//! A closed connection in TIME-WAIT costs a compact entry, not a socket.
//!
//! A global allocator counts live heap bytes (in its own test binary: the count is
//! process-wide, so no other test may run beside it); two interfaces joined by an
//! in-memory wire open connections that each echo one byte, then the server closes
//! them all first, so every one ends in the server's TIME-WAIT.

mod support;

#[path = "support/idle_pair.rs"]
mod idle_pair;

use idle_pair::{open_idle, report, Pair, SERVER};
use std::net::SocketAddr;
use support::counting_alloc::{live_bytes, CountingAlloc};
use ustack::time::Duration;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// A closed connection in TIME-WAIT keeps a compact entry (about the size of Linux's
/// `tcp_timewait_sock`), not its socket: 2·MSL of a busy server's closed connections
/// must not cost what as many open ones do.
#[test]
fn time_wait_connections_cost_a_compact_entry() {
    const N: usize = 2000;
    let mut p = Pair::new();
    let l = p.ends[1].tcp().socket();
    p.ends[1]
        .tcp()
        .listen(l, SocketAddr::V4(SERVER), 4096)
        .unwrap();
    let base = live_bytes();
    let conns = open_idle(&mut p, l, N);
    let before = live_bytes() - base;
    // The server closes first, so the TIME-WAIT is its own; the client follows.
    for &(_, s) in &conns {
        let cx = p.ends[1].tcp_context(p.now);
        p.ends[1].tcp().close(s, &cx).unwrap();
    }
    p.pump();
    for &(c, _) in &conns {
        let cx = p.ends[0].tcp_context(p.now);
        p.ends[0].tcp().close(c, &cx).unwrap();
    }
    p.idle(Duration::from_secs(5));
    assert_eq!(
        p.ends[0].tcp().socket_count(),
        0,
        "the client's side is gone"
    );
    assert_eq!(
        p.ends[1].tcp().socket_count(),
        N + 1,
        "the listener and every connection in TIME-WAIT"
    );
    let after = live_bytes() - base;
    let open_per_conn = before as f64 / N as f64;
    let tw_per_conn = after as f64 / N as f64;
    report(&format!(
        "{N} connections: {before} heap bytes open and idle (both ends), {after} with all \
         of them in the server's TIME-WAIT: {tw_per_conn:.0} bytes per TIME-WAIT \
         connection (above the layer with its listener, before the connections)"
    ));
    assert!(
        tw_per_conn < open_per_conn / 4.0,
        "TIME-WAIT costs {tw_per_conn:.0} bytes per connection, open idle {open_per_conn:.0}"
    );
    p.idle(Duration::from_secs(70));
    assert_eq!(p.ends[1].tcp().socket_count(), 1, "only the listener");
}
