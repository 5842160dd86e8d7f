//! Structured IPv6 input into a fresh interface (TCP listener on port 80, UDP on 7):
//! a sequence of IPv6 frames with random extension-header chains, fragments (random
//! ones and whole datagrams cut up, reordered, duplicated and overlapping), ICMPv6
//! with NDP and MLD, TCP and UDP over IPv6, and time steps that let reassembly and
//! neighbour timers run.
//!
//! After every frame: no panic, every frame sent fits its buffer, and `ustack dump`'s
//! decoder and printers take the same bytes without panicking. At the end the
//! interface still answers an IPv4 ping (IPv6 input must not break the rest), and once
//! every timer has run out only the listener is left. Before the interface speaks
//! IPv6 this exercises its drop path and the decoder; with IPv6 in the interface the
//! same inputs reach NDP, ICMPv6, reassembly and the transport over IPv6.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use ustack::time::{Duration, Instant};
use ustack_capture::decode::{decode_frame, LINKTYPE_ETHERNET};
use ustack_capture::dump_fmt::{one_line, tree, TimeStyle};
use ustack_fuzz::ipv6::{fragment_train, frame6};
use ustack_fuzz::*;

fn feed(i: &mut ustack::iface::Interface, now: Instant, f: &[u8]) {
    let _ = i.handle_frame(now, f);
    drain(i, now);
    let d = decode_frame(LINKTYPE_ETHERNET, f);
    assert!(
        d.ipv6.is_some() || d.malformed.is_some(),
        "an IPv6 frame neither decoded nor marked malformed"
    );
    let _ = one_line(&d, None, TimeStyle::Utc);
    let _ = tree(&d, None, TimeStyle::Utc);
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let (mut i, l) = fresh_interface();
    let mut now = Instant::ZERO;
    for _ in 0..u.int_in_range(1..=12u8)? {
        let ident = u32::from(u.int_in_range(0..=3u8)?);
        match u.int_in_range(0..=5u8)? {
            0..=2 => {
                let f = frame6(u, ident)?;
                feed(&mut i, now, &f);
            }
            3 => {
                for f in fragment_train(u, ident)? {
                    feed(&mut i, now, &f);
                }
            }
            _ => {
                // Up to 70 s: past reassembly (60 s) and neighbour timers.
                now += Duration::from_millis(u64::from(u.arbitrary::<u16>()?) + 1);
                i.handle_timeout(now);
                drain(&mut i, now);
            }
        }
    }
    assert!(
        answers_ipv4_ping(&mut i, now),
        "the interface no longer answers an IPv4 ping after IPv6 input"
    );
    check_all_freed(&mut i, now, l, &[]);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
