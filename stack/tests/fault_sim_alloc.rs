//! Steady-state traffic through the fault injector and the simulator must not allocate:
//! frame buffers come from a pool and go back to it, whatever the faults do to them.
//!
//! A counting global allocator wraps the system one; after a warm-up long enough for
//! every queue to reach its high-water mark (bursts of held frames grow capacities a few
//! times, never per frame), thousands of
//! frames pass through loss, duplication, reordering, corruption, delay and a rate
//! limit, and the allocation count must not move.

mod support;

use support::counting_alloc::{count_allocs, CountingAlloc};
use ustack::link::fault::GilbertElliott;
use ustack::link::{FaultConfig, FaultInjector, Faults, Link, MemoryLink};
use ustack::sim::{LinkConfig, SimNet, SimNode};
use ustack::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn faults() -> FaultConfig {
    FaultConfig {
        loss: 0.05,
        burst: Some(GilbertElliott::new(0.01, 0.3)),
        duplicate: 0.05,
        reorder: 0.05,
        reorder_depth: 3,
        corrupt: 0.05,
        delay: Duration::from_millis(2),
        jitter: Duration::from_millis(1),
        rate_bps: Some(100_000_000),
        ..FaultConfig::none()
    }
}

fn pump(f: &mut FaultInjector<MemoryLink>, peer: &mut MemoryLink, rounds: i64, t: &mut i64) {
    let frame = [0x5au8; 600];
    let mut buf = [0u8; 1514];
    for _ in 0..rounds {
        *t += 100;
        let now = Instant::from_micros(*t);
        f.send(now, &frame).unwrap();
        peer.send(now, &frame).unwrap();
        while f.recv(now, &mut buf).unwrap().is_some() {}
        while peer.recv(now, &mut buf).unwrap().is_some() {}
    }
}

/// Sends one 200-byte frame per millisecond to the other node and swallows what arrives.
struct Steady {
    next: Instant,
    due: bool,
}

impl SimNode for Steady {
    fn handle_frame(&mut self, _now: Instant, _frame: &[u8]) {}
    fn handle_timeout(&mut self, now: Instant) {
        self.due = true;
        self.next = now + Duration::from_millis(1);
    }
    fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<usize> {
        if !self.due {
            return None;
        }
        self.due = false;
        buf[..200].fill(0xa5);
        Some(200)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next)
    }
}

#[test]
fn fault_injector_and_simnet_do_not_allocate_in_steady_state() {
    let (a, mut b) = MemoryLink::pair(4096);
    let mut f = FaultInjector::new(a, Faults::both(faults()), 7);
    let mut t = 0;
    pump(&mut f, &mut b, 100_000, &mut t);
    let ((), injector_allocs) = count_allocs(|| pump(&mut f, &mut b, 20_000, &mut t));

    let mut net = SimNet::new(7);
    let x = net.add_node(Steady {
        next: Instant::ZERO,
        due: false,
    });
    let y = net.add_node(Steady {
        next: Instant::ZERO,
        due: false,
    });
    net.connect(x, y, LinkConfig::symmetric(faults())).unwrap();
    net.run_for(Duration::from_secs(20));
    let (_, sim_allocs) = count_allocs(|| net.run_for(Duration::from_secs(20)));

    assert_eq!(injector_allocs, 0, "fault injector allocated");
    assert_eq!(sim_allocs, 0, "simulator allocated");
    let (up, _) = net.link_counters(x).unwrap();
    assert!(up.passed > 30_000 && up.dropped() > 0 && up.reordered > 0);
}
