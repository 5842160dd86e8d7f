//! One frame into a fresh interface (a TCP listener on port 80, UDP bound to port 7):
//! no panic, every frame sent fits its buffer, and once every timer has run out only the
//! listener is left.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ustack::time::Instant;
use ustack_fuzz::{check_all_freed, drain, fresh_interface};

fuzz_target!(|data: &[u8]| {
    let (mut i, l) = fresh_interface();
    let now = Instant::ZERO;
    let _ = i.handle_frame(now, data);
    drain(&mut i, now);
    check_all_freed(&mut i, now, l, &[]);
});
