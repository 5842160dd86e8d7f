//! Recording a pcapng with every fault and stack drop annotated must not allocate in
//! steady state either: the recorder reuses its frame, comment and block buffers, and
//! the injector's fault reports recycle dropped frames through its pool. The warm-up is
//! as long as `fault_sim_alloc.rs`'s, so the injector's queues reach their high-water
//! marks first.

mod support;

use std::io;
use support::counting_alloc::{count_allocs, CountingAlloc};
use ustack::link::{FaultConfig, FaultInjector, Faults, Link, MemoryLink, PcapNgLink};
use ustack::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

type Recorder = PcapNgLink<FaultInjector<MemoryLink>, io::Sink>;

fn pump(link: &mut Recorder, peer: &mut MemoryLink, rounds: i64, t: &mut i64) {
    let frame = [0x5au8; 600];
    let mut buf = [0u8; 1514];
    for i in 0..rounds {
        *t += 100;
        let now = Instant::from_micros(*t);
        link.send(now, &frame).unwrap();
        peer.send(now, &frame).unwrap();
        while link.recv(now, &mut buf).unwrap().is_some() {
            if i % 3 == 0 {
                link.rx_dropped(&"ipv4: bad_checksum");
            }
        }
        while peer.recv(now, &mut buf).unwrap().is_some() {}
    }
}

#[test]
fn annotated_pcapng_recording_does_not_allocate_in_steady_state() {
    let (a, mut b) = MemoryLink::pair(4096);
    let faults = FaultConfig {
        loss: 0.05,
        duplicate: 0.05,
        reorder: 0.05,
        reorder_depth: 3,
        corrupt: 0.05,
        delay: Duration::from_millis(2),
        jitter: Duration::from_millis(1),
        ..FaultConfig::none()
    };
    let mut injector = FaultInjector::new(a, Faults::both(faults), 7);
    injector.enable_reports(4096);
    let mut link = PcapNgLink::new(injector, io::sink(), 0).unwrap();
    let mut t = 0;
    pump(&mut link, &mut b, 100_000, &mut t);
    let ((), allocs) = count_allocs(|| pump(&mut link, &mut b, 20_000, &mut t));
    assert_eq!(allocs, 0, "recording allocated");
    let c = link.get_ref().counters(ustack::link::Direction::Rx);
    assert!(c.dropped() > 0 && c.duplicated > 0 && c.corrupted > 0 && c.reordered > 0);
    assert_eq!(link.get_ref().reports_lost(), 0);
}
