//! Two interfaces joined by an in-memory wire, and the idle connections the memory
//! tests measure: shared by `memory.rs` and `memory_time_wait.rs`, each its own test
//! binary because their allocation counts are process-wide.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use ustack::iface::Interface;
use ustack::socket::tcp::TcpHandle;
use ustack::time::{Duration, Instant};

/// Printed even when the test runner captures output.
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

pub struct Pair {
    pub ends: [Interface; 2],
    wire: [VecDeque<Vec<u8>>; 2],
    buf: Vec<u8>,
    pub now: Instant,
}

impl Pair {
    pub fn new() -> Pair {
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
    pub fn pump(&mut self) {
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
    pub fn idle(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now = (self.now + Duration::from_millis(100)).min(end);
            self.pump();
        }
    }
}

pub const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 7);

/// Opens `n` connections that each echo one byte; returns (client, server) handles.
pub fn open_idle(p: &mut Pair, l: TcpHandle, n: usize) -> Vec<(TcpHandle, TcpHandle)> {
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
