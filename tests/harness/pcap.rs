//! Reading back the pcap files a [`Fixture`](crate::Fixture) records, through the
//! stack's own [`PcapReader`].

use ustack::link::{PcapReader, PcapRecord};
use ustack::wire::{EtherType, EthernetRepr, Ipv4Repr, TcpRepr};

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

/// Calls `f` with the IPv4 header and TCP segment of every IPv4 TCP frame of a pcap
/// file, in order; other frames, and ones that do not parse, are skipped.
///
/// # Panics
/// The file is unreadable or damaged.
pub fn each_ipv4_tcp(path: &std::path::Path, mut f: impl FnMut(&Ipv4Repr, &TcpRepr<'_>)) {
    for rec in read(path) {
        let Ok((eth, ip)) = EthernetRepr::parse(&rec.data) else {
            continue;
        };
        if eth.ethertype != EtherType::IPV4 {
            continue;
        }
        let Ok((ip, seg)) = Ipv4Repr::parse(ip) else {
            continue;
        };
        if let Ok(tcp) = TcpRepr::parse_unverified(seg) {
            f(&ip, &tcp);
        }
    }
}
