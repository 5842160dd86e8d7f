//! pcapng recording (draft-ietf-opsawg-pcapng) with per-frame direction and comments.
//!
//! Hand-written and deliberately small: one Section Header Block, one Interface
//! Description Block (LINKTYPE_ETHERNET, `if_tsresol` = 9, so timestamps are in
//! nanoseconds) and one Enhanced Packet Block per frame carrying `epb_flags` (inbound or
//! outbound) and any number of `opt_comment`s. Everything is little-endian.
//!
//! [`PcapNgLink`] wraps a link like [`PcapWriter`](super::PcapWriter) does, but holds the
//! most recent frame back until the next one moves, so whoever drives the link can attach
//! a comment to it after the stack has processed it:
//!
//! ```text
//! let n = link.recv(now, &mut buf)?;          // frame recorded lazily
//! if let Some(reason) = iface.handle_frame(now, &buf[..n]) {
//!     link.annotate_last_rx(&format!("dropped: {reason}"));
//! }
//! ```
//!
//! Wrappers further out (the fault injector) can add frames they consumed themselves with
//! [`PcapNgLink::record_extra`], e.g. `"dropped by fault injector (loss)"`.

use super::Link;
use crate::time::Instant;
use std::io::{self, Write};

pub use super::Direction;

impl Direction {
    /// The two `epb_flags` direction bits (pcapng §4.3.1: 01 inbound, 10 outbound).
    pub const fn epb_flags(self) -> u32 {
        match self {
            Direction::Rx => 0b01,
            Direction::Tx => 0b10,
        }
    }

    /// Decodes the direction bits of an `epb_flags` word; `None` when not recorded.
    pub const fn from_epb_flags(flags: u32) -> Option<Direction> {
        match flags & 0b11 {
            0b01 => Some(Direction::Rx),
            0b10 => Some(Direction::Tx),
            _ => None,
        }
    }
}

const BLOCK_SHB: u32 = 0x0a0d_0d0a;
const BLOCK_IDB: u32 = 1;
const BLOCK_EPB: u32 = 6;
const OPT_ENDOFOPT: u16 = 0;
const OPT_COMMENT: u16 = 1;
const OPT_SHB_USERAPPL: u16 = 4;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_EPB_FLAGS: u16 = 2;
const SNAPLEN: u32 = 262_144;
/// Longest comment written; option lengths are 16-bit.
const MAX_COMMENT: usize = 0xfff0;

fn push_option(body: &mut Vec<u8>, code: u16, value: &[u8]) {
    body.extend_from_slice(&code.to_le_bytes());
    body.extend_from_slice(&(value.len() as u16).to_le_bytes());
    body.extend_from_slice(value);
    body.resize(body.len().next_multiple_of(4), 0);
}

fn write_block<W: Write>(out: &mut W, block_type: u32, body: &[u8]) -> io::Result<()> {
    debug_assert!(body.len() % 4 == 0);
    let total = (12 + body.len()) as u32;
    out.write_all(&block_type.to_le_bytes())?;
    out.write_all(&total.to_le_bytes())?;
    out.write_all(body)?;
    out.write_all(&total.to_le_bytes())
}

/// Writes a pcapng stream: section and interface headers up front, then one Enhanced
/// Packet Block per [`record`](Self::record).
pub struct PcapNgWriter<W: Write> {
    out: W,
    epoch_unix_micros: i64,
}

impl<W: Write> PcapNgWriter<W> {
    /// Writes the Section Header and Interface Description blocks to `out`.
    ///
    /// Stack instants have an arbitrary epoch; `epoch_unix_micros` says what wall-clock
    /// time (microseconds since 1970) `Instant::ZERO` is.
    ///
    /// # Errors
    /// Writing the headers failed.
    pub fn new(mut out: W, epoch_unix_micros: i64) -> io::Result<Self> {
        let mut shb = Vec::with_capacity(32);
        shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes()); // major
        shb.extend_from_slice(&0u16.to_le_bytes()); // minor
        shb.extend_from_slice(&(-1i64).to_le_bytes()); // section length unknown
        push_option(&mut shb, OPT_SHB_USERAPPL, b"ustack");
        push_option(&mut shb, OPT_ENDOFOPT, &[]);
        write_block(&mut out, BLOCK_SHB, &shb)?;

        let mut idb = Vec::with_capacity(20);
        idb.extend_from_slice(&1u16.to_le_bytes()); // LINKTYPE_ETHERNET
        idb.extend_from_slice(&0u16.to_le_bytes()); // reserved
        idb.extend_from_slice(&SNAPLEN.to_le_bytes());
        push_option(&mut idb, OPT_IF_TSRESOL, &[9]);
        push_option(&mut idb, OPT_ENDOFOPT, &[]);
        write_block(&mut out, BLOCK_IDB, &idb)?;
        Ok(PcapNgWriter {
            out,
            epoch_unix_micros,
        })
    }

    /// Appends one frame stamped `now`, with its direction and an optional comment.
    ///
    /// # Errors
    /// The underlying writer failed.
    pub fn record(
        &mut self,
        now: Instant,
        direction: Direction,
        frame: &[u8],
        comment: Option<&str>,
    ) -> io::Result<()> {
        self.record_comments(now, direction, frame, comment.into_iter())
    }

    /// Like [`record`](Self::record) with any number of comments (one `opt_comment` each).
    ///
    /// # Errors
    /// The underlying writer failed.
    pub fn record_comments<'c>(
        &mut self,
        now: Instant,
        direction: Direction,
        frame: &[u8],
        comments: impl Iterator<Item = &'c str>,
    ) -> io::Result<()> {
        let ns = (i128::from(self.epoch_unix_micros) + i128::from(now.total_micros())) * 1000;
        let ts = ns.clamp(0, i128::from(u64::MAX)) as u64;
        let caplen = frame.len().min(SNAPLEN as usize);
        let mut body = Vec::with_capacity(32 + caplen.next_multiple_of(4));
        body.extend_from_slice(&0u32.to_le_bytes()); // interface id
        body.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(ts as u32).to_le_bytes());
        body.extend_from_slice(&(caplen as u32).to_le_bytes());
        body.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        body.extend_from_slice(&frame[..caplen]);
        body.resize(body.len().next_multiple_of(4), 0);
        push_option(
            &mut body,
            OPT_EPB_FLAGS,
            &direction.epb_flags().to_le_bytes(),
        );
        for c in comments {
            let mut end = c.len().min(MAX_COMMENT);
            while !c.is_char_boundary(end) {
                end -= 1;
            }
            push_option(&mut body, OPT_COMMENT, &c.as_bytes()[..end]);
        }
        push_option(&mut body, OPT_ENDOFOPT, &[]);
        write_block(&mut self.out, BLOCK_EPB, &body)
    }

    /// Flushes the writer.
    ///
    /// # Errors
    /// The underlying writer failed.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }
}

struct Pending {
    now: Instant,
    direction: Direction,
    frame: Vec<u8>,
    comments: Vec<String>,
}

/// Wraps a link and records every frame in and out to pcapng, each frame held back
/// until the next one so it can still be annotated (see the module docs).
///
/// The held frame is written by the next `recv`/`send` that moves a frame, by
/// [`flush`](Self::flush), and when the wrapper is dropped.
pub struct PcapNgLink<L, W: Write> {
    inner: L,
    writer: PcapNgWriter<W>,
    pending: Option<Pending>,
    error: Option<io::Error>,
}

impl<L, W: Write> PcapNgLink<L, W> {
    /// Writes the pcapng headers to `out` and wraps `inner`.
    ///
    /// # Errors
    /// Writing the headers failed.
    pub fn new(inner: L, out: W, epoch_unix_micros: i64) -> io::Result<Self> {
        Ok(PcapNgLink {
            inner,
            writer: PcapNgWriter::new(out, epoch_unix_micros)?,
            pending: None,
            error: None,
        })
    }

    /// Attaches `comment` to the last frame if it was received (and not yet written);
    /// returns whether it did. Call it after handing the frame to the stack, e.g. with
    /// `format!("dropped: {reason}")` for `Interface::handle_frame`'s `Some(reason)`.
    pub fn annotate_last_rx(&mut self, comment: &str) -> bool {
        self.annotate_last(Direction::Rx, comment)
    }

    /// Attaches `comment` to the last frame if it was sent (and not yet written).
    pub fn annotate_last_tx(&mut self, comment: &str) -> bool {
        self.annotate_last(Direction::Tx, comment)
    }

    fn annotate_last(&mut self, direction: Direction, comment: &str) -> bool {
        match &mut self.pending {
            Some(p) if p.direction == direction => {
                p.comments.push(comment.to_string());
                true
            }
            _ => false,
        }
    }

    /// Records a frame that did not cross the wrapped link (e.g. one a fault injector
    /// dropped before it got here), with a comment saying why.
    pub fn record_extra(
        &mut self,
        now: Instant,
        direction: Direction,
        frame: &[u8],
        comment: &str,
    ) {
        self.write_pending();
        self.pending = Some(Pending {
            now,
            direction,
            frame: frame.to_vec(),
            comments: vec![comment.to_string()],
        });
    }

    /// Writes the held frame and flushes the writer.
    ///
    /// # Errors
    /// The first recording error (recording stops after one), or the flush failed.
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_pending();
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.writer.flush()
    }

    /// The first write error, if recording failed (the link keeps working regardless).
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// The wrapped link.
    pub fn get_mut(&mut self) -> &mut L {
        &mut self.inner
    }

    fn hold(&mut self, now: Instant, direction: Direction, frame: &[u8]) {
        self.write_pending();
        self.pending = Some(Pending {
            now,
            direction,
            frame: frame.to_vec(),
            comments: Vec::new(),
        });
    }

    fn write_pending(&mut self) {
        let Some(p) = self.pending.take() else {
            return;
        };
        if self.error.is_none() {
            let comments = p.comments.iter().map(String::as_str);
            if let Err(e) = self
                .writer
                .record_comments(p.now, p.direction, &p.frame, comments)
            {
                log::warn!(target: "ustack::link", "pcapng recording stopped: {e}");
                self.error = Some(e);
            }
        }
    }
}

impl<L: Link, W: Write> Link for PcapNgLink<L, W> {
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let n = self.inner.recv(now, buf)?;
        if let Some(n) = n {
            self.hold(now, Direction::Rx, &buf[..n]);
        }
        Ok(n)
    }

    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        self.hold(now, Direction::Tx, frame);
        self.inner.send(now, frame)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
}

impl<L, W: Write> Drop for PcapNgLink<L, W> {
    fn drop(&mut self) {
        self.write_pending();
        let _ = self.writer.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{MemoryLink, PcapReader};
    use crate::wire::testdata;

    #[test]
    fn writer_records_read_back_with_direction_and_comments() {
        let mut w = PcapNgWriter::new(Vec::new(), 1_700_000_000_000_000).unwrap();
        w.record(
            Instant::from_micros(1),
            Direction::Tx,
            testdata::ARP_REQUEST,
            None,
        )
        .unwrap();
        w.record(
            Instant::from_micros(2_000_003),
            Direction::Rx,
            testdata::TCP_SYN,
            Some("dropped: ipv4 bad_checksum"),
        )
        .unwrap();
        let out = w.get_mut().clone();
        let recs: Vec<_> = PcapReader::new(&out[..])
            .unwrap()
            .collect::<io::Result<_>>()
            .unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].data, testdata::ARP_REQUEST);
        assert_eq!(recs[0].direction, Some(Direction::Tx));
        assert!(recs[0].comments.is_empty());
        assert_eq!(recs[0].timestamp_ns, 1_700_000_000_000_001_000);
        assert_eq!(recs[1].data, testdata::TCP_SYN);
        assert_eq!(recs[1].direction, Some(Direction::Rx));
        assert_eq!(recs[1].comments, vec!["dropped: ipv4 bad_checksum"]);
        assert_eq!(recs[1].timestamp_ns, 1_700_000_002_000_003_000);
        assert_eq!(recs[1].orig_len as usize, testdata::TCP_SYN.len());
    }

    #[test]
    fn link_wrapper_annotates_the_last_received_frame() {
        let (a, mut b) = MemoryLink::pair(8);
        let mut out = Vec::new();
        {
            let mut l = PcapNgLink::new(a, &mut out, 0).unwrap();
            let mut buf = [0u8; 1514];
            b.send(Instant::ZERO, testdata::TCP_SYN).unwrap();
            b.send(Instant::ZERO, testdata::ARP_REQUEST).unwrap();
            let n = l.recv(Instant::from_micros(10), &mut buf).unwrap().unwrap();
            assert_eq!(n, testdata::TCP_SYN.len());
            assert!(l.annotate_last_rx("dropped: ipv4 bad_checksum"));
            assert!(!l.annotate_last_tx("not a tx frame"));
            l.send(Instant::from_micros(20), testdata::ARP_REPLY)
                .unwrap();
            assert!(!l.annotate_last_rx("too late"));
            assert!(l.annotate_last_tx("sent"));
            l.recv(Instant::from_micros(30), &mut buf).unwrap().unwrap();
            l.record_extra(
                Instant::from_micros(40),
                Direction::Tx,
                testdata::ECHO_REPLY,
                "dropped by fault injector (loss)",
            );
            l.flush().unwrap();
            // Dropped here: nothing pending, nothing written twice.
        }
        let recs: Vec<_> = PcapReader::new(&out[..])
            .unwrap()
            .collect::<io::Result<_>>()
            .unwrap();
        let summary: Vec<_> = recs
            .iter()
            .map(|r| (r.direction, r.comments.clone(), r.timestamp_ns))
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    Some(Direction::Rx),
                    vec!["dropped: ipv4 bad_checksum".to_string()],
                    10_000
                ),
                (Some(Direction::Tx), vec!["sent".to_string()], 20_000),
                (Some(Direction::Rx), vec![], 30_000),
                (
                    Some(Direction::Tx),
                    vec!["dropped by fault injector (loss)".to_string()],
                    40_000
                ),
            ]
        );
        assert_eq!(recs[3].data, testdata::ECHO_REPLY);
    }

    #[test]
    fn dropping_the_wrapper_writes_the_held_frame() {
        let (a, _b) = MemoryLink::pair(8);
        let mut out = Vec::new();
        {
            let mut l = PcapNgLink::new(a, &mut out, 0).unwrap();
            l.send(Instant::ZERO, testdata::ARP_REQUEST).unwrap();
        }
        let recs: Vec<_> = PcapReader::new(&out[..])
            .unwrap()
            .collect::<io::Result<_>>()
            .unwrap();
        assert_eq!(recs.len(), 1);
    }

    #[test]
    fn long_and_multibyte_comments_are_cut_on_a_char_boundary() {
        let mut w = PcapNgWriter::new(Vec::new(), 0).unwrap();
        let long = "é".repeat(40_000);
        w.record(
            Instant::ZERO,
            Direction::Rx,
            testdata::ARP_REQUEST,
            Some(&long),
        )
        .unwrap();
        let out = w.get_mut().clone();
        let rec = PcapReader::new(&out[..])
            .unwrap()
            .next_record()
            .unwrap()
            .unwrap();
        assert!(rec.comments[0].len() <= MAX_COMMENT);
        assert!(rec.comments[0].chars().all(|c| c == 'é'));
    }

    #[test]
    fn tshark_reads_our_pcapng_without_malformed_packets() {
        let tshark = std::path::Path::new("/usr/bin/tshark");
        if !tshark.exists() {
            // Like the kernel tests: loud (past the runner's capture), fatal in CI.
            assert!(
                std::env::var("USTACK_REQUIRE_NETNS").map_or(true, |v| v != "1"),
                "tshark not installed (USTACK_REQUIRE_NETNS=1)"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "## SKIPPED tshark_reads_our_pcapng_without_malformed_packets: /usr/bin/tshark not installed"
            );
            return;
        }
        let mut w = PcapNgWriter::new(Vec::new(), 1_700_000_000_000_000).unwrap();
        for (i, frame) in testdata::ALL.iter().enumerate() {
            let dir = if i % 2 == 0 {
                Direction::Rx
            } else {
                Direction::Tx
            };
            let comment = format!("frame {i}: dropped: ipv4 bad_checksum");
            w.record(
                Instant::from_micros(i as i64 * 1000),
                dir,
                frame,
                Some(&comment),
            )
            .unwrap();
        }
        let path =
            std::env::temp_dir().join(format!("ustack-pcapng-{}.pcapng", std::process::id()));
        std::fs::write(&path, w.get_mut()).unwrap();
        let out = std::process::Command::new(tshark)
            .args(["-n", "-r"])
            .arg(&path)
            .args([
                "-T",
                "fields",
                "-e",
                "frame.comment",
                "-e",
                "frame.packet_flags_direction",
            ])
            .output()
            .unwrap();
        let full = std::process::Command::new(tshark)
            .args(["-n", "-r"])
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        let text = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "tshark failed: {stderr}");
        let listing = String::from_utf8_lossy(&full.stdout);
        assert!(!listing.contains("Malformed"), "tshark: {listing}");
        assert_eq!(text.lines().count(), testdata::ALL.len(), "{text}");
        for (i, line) in text.lines().enumerate() {
            let dir = if i % 2 == 0 {
                "0x00000001"
            } else {
                "0x00000002"
            };
            assert_eq!(
                line,
                format!("frame {i}: dropped: ipv4 bad_checksum\t{dir}"),
                "{text}"
            );
        }
    }
}
