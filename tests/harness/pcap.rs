//! Reading back the pcap files a [`Fixture`](crate::Fixture) records, through the
//! stack's own [`PcapReader`].

use ustack::link::{PcapReader, PcapRecord};

/// Reads every record of a pcap file.
///
/// # Panics
/// The file is unreadable or damaged.
pub fn read(path: &std::path::Path) -> Vec<PcapRecord> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = PcapReader::new(std::io::BufReader::new(file))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    while let Some(rec) = reader
        .next_record()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    {
        out.push(rec);
    }
    out
}
