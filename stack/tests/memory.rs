//! Memory follows data, not connections: idle connections cost a bounded number of heap
//! bytes each, and closing them gives the memory back.
//!
//! A global allocator counts live heap bytes; two interfaces joined by an in-memory wire
//! open many connections that each echo one byte, then sit idle. (Bytes, not timings:
//! the figures are deterministic for a given build.)

mod support;

#[path = "support/idle_pair.rs"]
mod idle_pair;

use idle_pair::{open_idle, report, Pair, SERVER};
use std::net::SocketAddr;
use support::counting_alloc::{live_bytes, CountingAlloc};
use ustack::socket::tcp::TcpHandle;
use ustack::time::Duration;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn close_all(p: &mut Pair, conns: &[(TcpHandle, TcpHandle)]) {
    for &(c, s) in conns {
        let cx = p.ends[0].tcp_context(p.now);
        p.ends[0].tcp().close(c, &cx).unwrap();
        let cx = p.ends[1].tcp_context(p.now);
        p.ends[1].tcp().close(s, &cx).unwrap();
    }
    // TIME-WAIT is 2 MSL = 60 s by default.
    p.idle(Duration::from_secs(70));
    assert_eq!(p.ends[0].tcp().socket_count(), 0);
    assert_eq!(p.ends[1].tcp().socket_count(), 1, "only the listener");
}

#[test]
fn idle_connections_cost_bounded_heap_and_closing_returns_it() {
    const N: usize = 2000;
    let mut p = Pair::new();
    let l = p.ends[1].tcp().socket();
    p.ends[1]
        .tcp()
        .listen(l, SocketAddr::V4(SERVER), 4096)
        .unwrap();
    let base = live_bytes();
    let mut after = Vec::new();
    for round in 0..3 {
        let before = live_bytes();
        let conns = open_idle(&mut p, l, N);
        let idle = live_bytes() - before;
        // Both ends are this stack: two sockets per connection.
        let per_socket = idle as f64 / (2 * N) as f64;
        close_all(&mut p, &conns);
        drop(conns);
        after.push(live_bytes() - base);
        report(&format!(
            "round {round}: {N} idle connections (both ends on the stack): {idle} heap bytes, \
             {per_socket:.0} per socket; after closing all: {} bytes above the fresh layer",
            after[round]
        ));
        assert!(
            per_socket <= 4096.0,
            "an idle socket costs {per_socket:.0} heap bytes"
        );
    }
    // What stays is per interface and bounded whatever the connection count: 64 spare
    // frames (1514 bytes each) and the capacity of the transmit queue (`tx_queue_len`
    // entries), for each of the two interfaces.
    let budget = 2 * (64 * 1514 + 1024 * 24) + 16 * 1024;
    assert!(
        after[0] <= budget as isize,
        "{} bytes stay allocated after every connection closed (budget {budget})",
        after[0]
    );
    assert!(
        after[2] <= after[0] + 4096,
        "memory grows from round to round: {after:?}"
    );
}
