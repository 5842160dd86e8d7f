//! The IPv4 reassembler under arbitrary fragment sequences (structured input): memory
//! stays within its bounds after every fragment, and every datagram it completes holds
//! exactly the bytes its fragments carried.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use ustack::iface::{Reassembler, ReassemblyConfig};
use ustack::time::{Duration, Instant};
use ustack::wire::{IpProtocol, Ipv4Repr};

const MAX_DATAGRAMS: usize = 4;
const MAX_BYTES: usize = 16 * 1024;

/// The byte at `pos` of datagram `ident`: every fragment of one datagram agrees.
fn byte(ident: u16, pos: usize) -> u8 {
    (pos as u8).wrapping_mul(7) ^ ident as u8
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let mut r = Reassembler::new(ReassemblyConfig {
        max_datagrams: MAX_DATAGRAMS,
        max_bytes: MAX_BYTES,
        timeout: Duration::from_secs(1),
    });
    let mut now = Instant::ZERO;
    let mut payload = Vec::new();
    for _ in 0..256 {
        if u.is_empty() {
            break;
        }
        let op: u8 = u.arbitrary()?;
        if op % 8 == 7 {
            now += Duration::from_millis(u64::from(u.arbitrary::<u16>()?));
            r.handle_timeout(now, |_| {});
        } else {
            let ident = u16::from(op % 5);
            let frag_offset = u.int_in_range(0u16..=8191)? * 8;
            let more_frags: bool = u.arbitrary()?;
            let len = usize::from(u.arbitrary::<u16>()? % 3000);
            let src = Ipv4Addr::new(10, 0, 0, 1 + u.int_in_range(0u8..=1)?);
            payload.clear();
            payload.extend((0..len).map(|i| byte(ident, usize::from(frag_offset) + i)));
            let ip = Ipv4Repr {
                src_addr: src,
                dst_addr: Ipv4Addr::new(10, 0, 0, 9),
                protocol: IpProtocol::UDP,
                ttl: 64,
                tos: 0,
                ident,
                dont_frag: false,
                more_frags,
                frag_offset,
                payload_len: len,
            };
            if let Ok(Some((hdr, data))) = r.add(now, &ip, &payload) {
                assert_eq!(hdr.ident, ident);
                assert!(!hdr.more_frags && hdr.frag_offset == 0);
                assert_eq!(hdr.payload_len, data.len());
                for (pos, &b) in data.iter().enumerate() {
                    assert_eq!(b, byte(ident, pos), "byte {pos} of datagram {ident}");
                }
                r.recycle(data);
            }
        }
        assert!(
            r.in_progress() <= MAX_DATAGRAMS,
            "{} datagrams",
            r.in_progress()
        );
        assert!(r.bytes() <= MAX_BYTES, "{} bytes held", r.bytes());
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
