//! A closed connection in TIME-WAIT costs a compact entry, not a socket.
//!
//! A global allocator counts live heap bytes (in its own test binary: the count is
//! process-wide, so no other test may run beside it); two interfaces joined by an
//! in-memory wire open connections that each echo one byte, then the server closes
//! them all first, so every one ends in the server's TIME-WAIT.

mod support;

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use support::counting_alloc::{live_bytes, CountingAlloc};
use ustack::iface::Interface;
use ustack::socket::tcp::TcpHandle;
use ustack::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Printed even when the test runner captures output.
fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

struct Pair {
    ends: [Interface; 2],
    wire: [VecDeque<Vec<u8>>; 2],
    buf: Vec<u8>,
    now: Instant,
}

impl Pair {
    fn new() -> Pair {
        let host =
            |n: u8, peer: u8| Interface::new(ustack::sim::lab_config(n, peer), Instant::ZERO);
        Pair {
            ends: [host(1, 2), host(2, 1)],
            wire: Default::default(),
            buf: vec![0; 1514],
            now: Instant::ZERO,
        }
    }

    /// Moves frames until both ends are quiet; runs due timers first.
    fn pump(&mut self) {
        for e in self.ends.iter_mut() {
            if e.poll_timeout().is_some_and(|t| t <= self.now) {
                e.handle_timeout(self.now);
            }
        }
        loop {
            let mut progress = false;
            for i in 0..2 {
                while let Some(n) = self.ends[i].poll_transmit(self.now, &mut self.buf) {
                    self.wire[i].push_back(self.buf[..n].to_vec());
                    progress = true;
                }
            }
            for i in 0..2 {
                while let Some(f) = self.wire[1 - i].pop_front() {
                    self.ends[i].handle_frame(self.now, &f);
                    progress = true;
                }
            }
            if !progress {
                // Events are bounded (`event_queue_len`); an application drains them.
                for e in self.ends.iter_mut() {
                    while e.tcp().poll_event().is_some() {}
                }
                // The wire's queues are the test's, not the stacks': give them back.
                self.wire = Default::default();
                return;
            }
        }
    }

    /// Lets `d` pass in steps of at most 100 ms, running timers.
    fn idle(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now = (self.now + Duration::from_millis(100)).min(end);
            self.pump();
        }
    }
}

const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 7);

/// Opens `n` connections that each echo one byte; returns (client, server) handles.
fn open_idle(p: &mut Pair, l: TcpHandle, n: usize) -> Vec<(TcpHandle, TcpHandle)> {
    let mut conns = Vec::with_capacity(n);
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let c = p.ends[0].tcp().socket();
        let cx = p.ends[0].tcp_context(p.now);
        p.ends[0]
            .tcp()
            .connect(c, &cx, SocketAddr::V4(SERVER))
            .unwrap();
        clients.push(c);
        if clients.len() % 64 == 0 {
            p.pump();
        }
    }
    p.pump();
    for c in clients {
        let (s, _) = p.ends[1].tcp().accept(l).expect("accepted");
        assert_eq!(p.ends[0].tcp().send(c, b"x"), Ok(1));
        conns.push((c, s));
    }
    p.pump();
    let mut b = [0u8; 4];
    for &(_, s) in &conns {
        assert_eq!(p.ends[1].tcp().recv(s, &mut b), Ok(1));
        assert_eq!(p.ends[1].tcp().send(s, &b[..1]), Ok(1));
    }
    p.pump();
    for &(c, _) in &conns {
        assert_eq!(p.ends[0].tcp().recv(c, &mut b), Ok(1));
        assert_eq!(&b[..1], b"x");
    }
    // Long enough for delayed ACKs and idle buffers to be given back.
    p.idle(Duration::from_secs(3));
    conns
}

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
