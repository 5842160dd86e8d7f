//! Reading captures back: classic pcap (either byte order, µs or ns timestamps) and
//! pcapng (section header, interface description, enhanced and simple packet blocks,
//! with per-packet comments). Used by `ustack dump`/`plot` and by tests that check what
//! crossed the wire.
//!
//! Hand-written rather than pulled from a crate: the formats are small, and the reader
//! must accept our own pcapng comments and never panic on a damaged file (every length
//! is checked; a bad block ends the stream with an error).

use super::Direction;
use std::io::{self, Read};

/// One captured frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcapRecord {
    /// Capture time in nanoseconds since the Unix epoch.
    pub timestamp_ns: i128,
    /// Bytes captured (may be shorter than `orig_len`).
    pub data: Vec<u8>,
    /// Length of the frame on the wire.
    pub orig_len: u32,
    /// pcapng `opt_comment`s attached to the packet.
    pub comments: Vec<String>,
    /// Link type of the interface it was captured on (1 = Ethernet).
    pub link_type: u16,
    /// Direction from the pcapng `epb_flags` option, when recorded.
    pub direction: Option<Direction>,
}

enum Format {
    Classic {
        big_endian: bool,
        nanos: bool,
        link_type: u16,
    },
    Ng {
        big_endian: bool,
        /// (link type, timestamp units per second) per interface id.
        interfaces: Vec<(u16, u64)>,
    },
}

/// Reads records from a pcap or pcapng stream.
pub struct PcapReader<R: Read> {
    inner: R,
    format: Format,
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn u16_at(b: &[u8], at: usize, be: bool) -> io::Result<u16> {
    let s: [u8; 2] = b
        .get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| invalid("short field"))?;
    Ok(if be {
        u16::from_be_bytes(s)
    } else {
        u16::from_le_bytes(s)
    })
}

fn u32_at(b: &[u8], at: usize, be: bool) -> io::Result<u32> {
    let s: [u8; 4] = b
        .get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| invalid("short field"))?;
    Ok(if be {
        u32::from_be_bytes(s)
    } else {
        u32::from_le_bytes(s)
    })
}

/// Largest block or record we accept, so a corrupt length cannot exhaust memory.
const MAX_BLOCK: usize = 16 * 1024 * 1024;

impl<R: Read> PcapReader<R> {
    /// Reads the file header and detects the format.
    ///
    /// # Errors
    /// Not a pcap or pcapng file, or the header is damaged.
    pub fn new(mut inner: R) -> io::Result<Self> {
        let mut magic = [0u8; 4];
        inner.read_exact(&mut magic)?;
        let format = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1]
            | [0x4d, 0x3c, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0xc3, 0xd4]
            | [0xa1, 0xb2, 0x3c, 0x4d] => {
                let big_endian = magic[0] == 0xa1;
                let nanos = magic == [0x4d, 0x3c, 0xb2, 0xa1] || magic == [0xa1, 0xb2, 0x3c, 0x4d];
                let mut rest = [0u8; 20];
                inner.read_exact(&mut rest)?;
                let link_type = u32_at(&rest, 16, big_endian)? as u16;
                Format::Classic {
                    big_endian,
                    nanos,
                    link_type,
                }
            }
            [0x0a, 0x0d, 0x0d, 0x0a] => {
                let mut len_and_bom = [0u8; 8];
                inner.read_exact(&mut len_and_bom)?;
                let big_endian = len_and_bom[4..8] == [0x1a, 0x2b, 0x3c, 0x4d];
                if !big_endian && len_and_bom[4..8] != [0x4d, 0x3c, 0x2b, 0x1a] {
                    return Err(invalid("bad pcapng byte-order magic"));
                }
                let total = u32_at(&len_and_bom, 0, big_endian)? as usize;
                if !(28..=MAX_BLOCK).contains(&total) || total % 4 != 0 {
                    return Err(invalid("bad section header length"));
                }
                let mut skip = vec![0u8; total - 12];
                inner.read_exact(&mut skip)?;
                Format::Ng {
                    big_endian,
                    interfaces: Vec::new(),
                }
            }
            _ => return Err(invalid("not a pcap or pcapng file")),
        };
        Ok(PcapReader { inner, format })
    }

    /// The next record, `Ok(None)` at a clean end of file.
    ///
    /// # Errors
    /// A damaged record or block, or an I/O error.
    pub fn next_record(&mut self) -> io::Result<Option<PcapRecord>> {
        match &mut self.format {
            Format::Classic {
                big_endian,
                nanos,
                link_type,
            } => {
                let mut hdr = [0u8; 16];
                if !read_or_eof(&mut self.inner, &mut hdr)? {
                    return Ok(None);
                }
                let be = *big_endian;
                let secs = u32_at(&hdr, 0, be)?;
                let frac = u32_at(&hdr, 4, be)?;
                let caplen = u32_at(&hdr, 8, be)? as usize;
                let orig_len = u32_at(&hdr, 12, be)?;
                if caplen > MAX_BLOCK {
                    return Err(invalid("record too large"));
                }
                let mut data = vec![0u8; caplen];
                self.inner.read_exact(&mut data)?;
                let frac_ns = if *nanos {
                    i128::from(frac)
                } else {
                    i128::from(frac) * 1000
                };
                Ok(Some(PcapRecord {
                    timestamp_ns: i128::from(secs) * 1_000_000_000 + frac_ns,
                    data,
                    orig_len,
                    comments: Vec::new(),
                    link_type: *link_type,
                    direction: None,
                }))
            }
            Format::Ng { .. } => self.next_ng(),
        }
    }

    fn next_ng(&mut self) -> io::Result<Option<PcapRecord>> {
        loop {
            let Format::Ng {
                big_endian,
                interfaces,
            } = &mut self.format
            else {
                unreachable!("next_ng on classic pcap")
            };
            let be = *big_endian;
            let mut head = [0u8; 8];
            if !read_or_eof(&mut self.inner, &mut head)? {
                return Ok(None);
            }
            let block_type = u32_at(&head, 0, be)?;
            let total = u32_at(&head, 4, be)? as usize;
            if block_type == 0x0a0d_0d0a {
                // A new section: its byte order may differ.
                let mut bom = [0u8; 4];
                self.inner.read_exact(&mut bom)?;
                let nbe = bom == [0x1a, 0x2b, 0x3c, 0x4d];
                let total = u32_at(&head, 4, nbe)? as usize;
                if !(28..=MAX_BLOCK).contains(&total) {
                    return Err(invalid("bad section header length"));
                }
                let mut skip = vec![0u8; total - 12];
                self.inner.read_exact(&mut skip)?;
                self.format = Format::Ng {
                    big_endian: nbe,
                    interfaces: Vec::new(),
                };
                continue;
            }
            if !(12..=MAX_BLOCK).contains(&total) || total % 4 != 0 {
                return Err(invalid("bad block length"));
            }
            let mut body = vec![0u8; total - 8];
            self.inner.read_exact(&mut body)?;
            let body = &body[..total - 12]; // drop the trailing length copy
            match block_type {
                1 => {
                    // Interface description: link type, snaplen, options (if_tsresol = 9).
                    let link_type = u16_at(body, 0, be)?;
                    let mut units = 1_000_000u64;
                    for (code, val) in options(body.get(8..).unwrap_or(&[]), be) {
                        if code == 9 {
                            if let Some(&r) = val.first() {
                                units = if r & 0x80 != 0 {
                                    1u64.checked_shl(u32::from(r & 0x7f)).unwrap_or(u64::MAX)
                                } else {
                                    10u64.checked_pow(u32::from(r)).unwrap_or(u64::MAX)
                                };
                            }
                        }
                    }
                    interfaces.push((link_type, units.max(1)));
                }
                6 => {
                    let if_id = u32_at(body, 0, be)? as usize;
                    let ts =
                        (u64::from(u32_at(body, 4, be)?) << 32) | u64::from(u32_at(body, 8, be)?);
                    let caplen = u32_at(body, 12, be)? as usize;
                    let orig_len = u32_at(body, 16, be)?;
                    let data = body
                        .get(20..20 + caplen)
                        .ok_or_else(|| invalid("packet data past block end"))?
                        .to_vec();
                    let padded = 20 + caplen.div_ceil(4) * 4;
                    let mut comments = Vec::new();
                    let mut direction = None;
                    for (code, v) in options(body.get(padded..).unwrap_or(&[]), be) {
                        match code {
                            1 => comments.push(String::from_utf8_lossy(v).into_owned()),
                            2 => {
                                if let Ok(flags) = u32_at(v, 0, be) {
                                    direction = Direction::from_epb_flags(flags);
                                }
                            }
                            _ => {}
                        }
                    }
                    let (link_type, units) = *interfaces
                        .get(if_id)
                        .ok_or_else(|| invalid("packet for an undeclared interface"))?;
                    let timestamp_ns = i128::from(ts) * 1_000_000_000 / i128::from(units);
                    return Ok(Some(PcapRecord {
                        timestamp_ns,
                        data,
                        orig_len,
                        comments,
                        link_type,
                        direction,
                    }));
                }
                3 => {
                    let orig_len = u32_at(body, 0, be)?;
                    let data = body.get(4..).unwrap_or(&[]);
                    let n = (orig_len as usize).min(data.len());
                    let link_type = interfaces.first().map_or(1, |i| i.0);
                    return Ok(Some(PcapRecord {
                        timestamp_ns: 0,
                        data: data[..n].to_vec(),
                        orig_len,
                        comments: Vec::new(),
                        link_type,
                        direction: None,
                    }));
                }
                _ => {} // statistics, name resolution, custom blocks: skipped
            }
        }
    }
}

impl<R: Read> Iterator for PcapReader<R> {
    type Item = io::Result<PcapRecord>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// Iterates pcapng options `(code, value)` until opt_endofopt or the end of `bytes`.
fn options(bytes: &[u8], be: bool) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = bytes;
    core::iter::from_fn(move || {
        let code = u16_at(rest, 0, be).ok()?;
        let len = u16_at(rest, 2, be).ok()? as usize;
        if code == 0 {
            return None;
        }
        let val = rest.get(4..4 + len)?;
        rest = rest.get(4 + len.div_ceil(4) * 4..).unwrap_or(&[]);
        Some((code, val))
    })
}

/// Fills `buf`, or returns false if the stream ended before its first byte.
fn read_or_eof<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{Link, MemoryLink, PcapTimestamps, PcapWriter};
    use crate::time::Instant;
    use crate::wire::testdata;

    #[test]
    fn reads_the_tcpdump_capture_in_the_repository() {
        let bytes = include_bytes!("../../../testdata/kernel_veth_ping_udp_tcp.pcap");
        let records: Vec<_> = PcapReader::new(&bytes[..])
            .unwrap()
            .collect::<io::Result<_>>()
            .unwrap();
        assert_eq!(records.len(), 19);
        assert_eq!(records[0].data, testdata::ARP_REQUEST);
        assert_eq!(records[18].data, testdata::ICMP_PORT_UNREACHABLE);
        assert!(records
            .windows(2)
            .all(|w| w[0].timestamp_ns <= w[1].timestamp_ns));
    }

    #[test]
    fn reads_back_what_the_writer_wrote() {
        for res in [PcapTimestamps::Micros, PcapTimestamps::Nanos] {
            let (a, _b) = MemoryLink::pair(4);
            let mut w = PcapWriter::new(a, Vec::new(), 1_000_000, res).unwrap();
            w.send(Instant::from_micros(7), testdata::TCP_SYN).unwrap();
            let (_, out) = w.into_parts();
            let rec = PcapReader::new(&out[..])
                .unwrap()
                .next_record()
                .unwrap()
                .unwrap();
            assert_eq!(rec.data, testdata::TCP_SYN);
            assert_eq!(rec.timestamp_ns, 1_000_007_000);
        }
    }

    #[test]
    fn reads_pcapng_with_comments() {
        // SHB, IDB (Ethernet, if_tsresol 9 = ns), EPB with one comment.
        let mut f = Vec::new();
        let block = |f: &mut Vec<u8>, t: u32, body: &[u8]| {
            let total = (12 + body.len()) as u32;
            f.extend_from_slice(&t.to_le_bytes());
            f.extend_from_slice(&total.to_le_bytes());
            f.extend_from_slice(body);
            f.extend_from_slice(&total.to_le_bytes());
        };
        block(
            &mut f,
            0x0a0d0d0a,
            &[
                0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
        );
        block(
            &mut f,
            1,
            &[1, 0, 0, 0, 0, 0, 4, 0, 9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0],
        );
        let mut epb = Vec::new();
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&1_500u32.to_le_bytes());
        epb.extend_from_slice(&42u32.to_le_bytes());
        epb.extend_from_slice(&42u32.to_le_bytes());
        epb.extend_from_slice(testdata::ARP_REQUEST);
        epb.extend_from_slice(&[0, 0]); // pad to 4
        epb.extend_from_slice(&[1, 0, 7, 0]);
        epb.extend_from_slice(b"dropped\0");
        epb.extend_from_slice(&[0, 0, 0, 0]);
        block(&mut f, 6, &epb);
        let recs: Vec<_> = PcapReader::new(&f[..])
            .unwrap()
            .collect::<io::Result<_>>()
            .unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].data, testdata::ARP_REQUEST);
        assert_eq!(recs[0].comments, vec!["dropped".to_string()]);
        assert_eq!(recs[0].timestamp_ns, 1_500);
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let bytes = include_bytes!("../../../testdata/kernel_veth_ping_udp_tcp.pcap");
        for cut in [0, 3, 10, 24, 30, 60, 500] {
            let r = PcapReader::new(&bytes[..cut.min(bytes.len())]);
            if let Ok(r) = r {
                let _ = r.collect::<Vec<_>>();
            }
        }
        let mut corrupt = bytes.to_vec();
        corrupt[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut r = PcapReader::new(&corrupt[..]).unwrap();
        assert!(r.next_record().is_err());
        assert!(PcapReader::new(&b"garbage garbage garbage"[..]).is_err());
    }
}
