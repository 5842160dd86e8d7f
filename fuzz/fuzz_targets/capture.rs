//! The pcap/pcapng reader and `ustack dump`'s decoder on arbitrary files, in every
//! output style: no panic, a dump shows at most the frames it read, every style reads
//! the same frames, and loading for analysis agrees on the count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ustack_capture::analysis::SeqMode;
use ustack_capture::dump::{self, DumpOptions, Output};

fuzz_target!(|data: &[u8]| {
    let mut frames = None;
    for output in [Output::Lines, Output::Tree, Output::Json, Output::Summary] {
        let opts = DumpOptions {
            output,
            ..DumpOptions::default()
        };
        let mut out = Vec::new();
        let Ok(t) = dump::run(data, &opts, &mut out) else {
            return;
        };
        assert!(t.shown <= t.frames, "{t:?}");
        assert_eq!(*frames.get_or_insert(t.frames), t.frames, "{output:?}");
    }
    if let (Ok(c), Some(n)) = (dump::load(data, SeqMode::Relative), frames) {
        assert_eq!(
            c.frames.len() as u64,
            n,
            "dump and load read the same frames"
        );
    }
});
