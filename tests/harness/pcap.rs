//! Reading back classic pcap files (what `PcapWriter` writes) in tests.

/// One record: wall-clock microseconds and the captured frame.
#[derive(Clone, Debug)]
pub struct Record {
    /// Microseconds since 1970.
    pub unix_micros: i64,
    /// The frame as captured.
    pub frame: Vec<u8>,
}

/// Parses a microsecond pcap; `None` if the header is not one.
pub fn parse(data: &[u8]) -> Option<Vec<Record>> {
    if data.len() < 24 || data[0..4] != 0xa1b2_c3d4u32.to_le_bytes() {
        return None;
    }
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let word = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().expect("4 bytes"));
        let (secs, micros, caplen) = (word(off), word(off + 4), word(off + 8) as usize);
        off += 16;
        if off + caplen > data.len() {
            return None;
        }
        out.push(Record {
            unix_micros: secs as i64 * 1_000_000 + micros as i64,
            frame: data[off..off + caplen].to_vec(),
        });
        off += caplen;
    }
    Some(out)
}

/// Reads and parses a pcap file.
///
/// # Panics
/// The file is unreadable or not a complete microsecond pcap.
pub fn read(path: &std::path::Path) -> Vec<Record> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse(&data).unwrap_or_else(|| panic!("{}: not a complete pcap", path.display()))
}
