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

/// Checks the recording of an offloading link: every record decodes and every TCP
/// checksum in it is complete and right (partial ones are finished for the file);
/// returns (TCP records, records longer than a 1514-byte wire frame: super-frames).
///
/// # Panics
/// A record is malformed or has a wrong TCP checksum.
pub fn check_offload_recording(records: &[PcapRecord]) -> (usize, usize) {
    let (mut tcp_frames, mut big) = (0, 0);
    for (i, rec) in records.iter().enumerate() {
        let f = ustack_capture::decode::decode_record(i + 1, rec);
        assert!(f.malformed.is_none(), "frame {}: {:?}", i + 1, f.malformed);
        if let Some(t) = &f.tcp {
            tcp_frames += 1;
            // Partial checksums were finished for the file, super-frames included.
            assert_eq!(t.checksum_ok, Some(true), "frame {}", i + 1);
        }
        if rec.data.len() > 1514 {
            big += 1;
        }
    }
    (tcp_frames, big)
}
