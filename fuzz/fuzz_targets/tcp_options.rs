//! TCP option parsing: the stack's parser never panics, whatever it accepts emits and
//! parses back to the same value, and the capture decoder's parser never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ustack::wire::TcpOptions;

fuzz_target!(|data: &[u8]| {
    if let Ok(o) = TcpOptions::parse(data) {
        let len = o.buffer_len();
        assert_eq!(len % 4, 0, "options padded to 32 bits");
        let mut buf = vec![0u8; len];
        o.emit(&mut buf);
        let back = TcpOptions::parse(&buf).expect("what we emit parses");
        assert_eq!(back, o, "emit/parse round trip of {data:02x?}");
    }
    let _ = ustack_capture::decode::parse_tcp_options(data);
});
