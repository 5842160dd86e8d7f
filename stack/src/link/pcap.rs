//! Classic pcap (LINKTYPE_ETHERNET) recording of every frame a link moves.
//!
//! Format: the libpcap file format (draft-ietf-opsawg-pcap): a 24-byte global header
//! and a 16-byte record header per frame. Both microsecond (magic `a1b2c3d4`) and
//! nanosecond (magic `a1b23c4d`) timestamps are supported; tcpdump and tshark read both.

use super::Link;
use crate::time::Instant;
use std::io::{self, Write};

/// Timestamp resolution of a pcap file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PcapTimestamps {
    /// Microseconds (the original format).
    #[default]
    Micros,
    /// Nanoseconds.
    Nanos,
}

/// The link type recorded in the file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PcapLinkType {
    /// LINKTYPE_ETHERNET (1).
    Ethernet = 1,
}

/// Wraps a link and appends every received and sent frame to a pcap stream.
///
/// Stack instants have an arbitrary epoch; `epoch_unix_micros` says what wall-clock
/// time (microseconds since 1970) `Instant::ZERO` is, so the file shows real times.
pub struct PcapWriter<L, W: Write> {
    inner: L,
    out: W,
    epoch_unix_micros: i64,
    resolution: PcapTimestamps,
    snaplen: u32,
    error: Option<io::Error>,
    /// A copy of a partial-checksum frame with its checksum filled in for the file.
    scratch: Vec<u8>,
}

impl<L, W: Write> PcapWriter<L, W> {
    /// Writes the global header to `out` and wraps `inner`.
    ///
    /// # Errors
    /// Writing the header failed.
    pub fn new(
        inner: L,
        mut out: W,
        epoch_unix_micros: i64,
        resolution: PcapTimestamps,
    ) -> io::Result<Self> {
        let snaplen: u32 = 262_144;
        let magic: u32 = match resolution {
            PcapTimestamps::Micros => 0xa1b2_c3d4,
            PcapTimestamps::Nanos => 0xa1b2_3c4d,
        };
        let mut hdr = [0u8; 24];
        hdr[0..4].copy_from_slice(&magic.to_le_bytes());
        hdr[4..6].copy_from_slice(&2u16.to_le_bytes());
        hdr[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay zero.
        hdr[16..20].copy_from_slice(&snaplen.to_le_bytes());
        hdr[20..24].copy_from_slice(&(PcapLinkType::Ethernet as u32).to_le_bytes());
        out.write_all(&hdr)?;
        Ok(PcapWriter {
            inner,
            out,
            epoch_unix_micros,
            resolution,
            snaplen,
            error: None,
            scratch: Vec::new(),
        })
    }

    /// Appends one frame stamped `now`.
    ///
    /// # Errors
    /// The underlying writer failed.
    pub fn record(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        let t = self.epoch_unix_micros + now.total_micros();
        let secs = t.div_euclid(1_000_000) as u32;
        let micros = t.rem_euclid(1_000_000) as u32;
        let frac = match self.resolution {
            PcapTimestamps::Micros => micros,
            PcapTimestamps::Nanos => micros * 1000,
        };
        let caplen = (frame.len() as u32).min(self.snaplen);
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&secs.to_le_bytes());
        rec[4..8].copy_from_slice(&frac.to_le_bytes());
        rec[8..12].copy_from_slice(&caplen.to_le_bytes());
        rec[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out.write_all(&rec)?;
        self.out.write_all(&frame[..caplen as usize])
    }

    /// Flushes the writer.
    ///
    /// # Errors
    /// The underlying writer failed.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The first write error, if recording failed (the link keeps working regardless).
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// The wrapped link.
    pub fn get_mut(&mut self) -> &mut L {
        &mut self.inner
    }

    /// Unwraps into the link and the writer.
    pub fn into_parts(self) -> (L, W) {
        (self.inner, self.out)
    }

    /// Records a frame an offloading link moved with `meta`: a partial checksum is
    /// filled in for the file (the wire would carry it complete); a GSO super-frame is
    /// recorded whole, as one packet (classic pcap cannot say so; pcapng does).
    fn record_meta(&mut self, now: Instant, frame: &[u8], meta: &super::FrameMeta) {
        if meta.csum.is_none() {
            return self.record_or_keep_error(now, frame);
        }
        let mut copy = core::mem::take(&mut self.scratch);
        copy.clear();
        copy.extend_from_slice(frame);
        super::offload::complete_checksum(&mut copy, meta);
        self.record_or_keep_error(now, &copy);
        self.scratch = copy;
    }

    fn record_or_keep_error(&mut self, now: Instant, frame: &[u8]) {
        if self.error.is_none() {
            if let Err(e) = self.record(now, frame) {
                log::warn!(target: "ustack::link", "pcap recording stopped: {e}");
                self.error = Some(e);
            }
        }
    }
}

impl<L: Link, W: Write> Link for PcapWriter<L, W> {
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let n = self.inner.recv(now, buf)?;
        if let Some(n) = n {
            let meta = self.inner.rx_meta();
            self.record_meta(now, &buf[..n], &meta);
        }
        Ok(n)
    }

    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        self.record_or_keep_error(now, frame);
        self.inner.send(now, frame)
    }

    fn caps(&self) -> super::LinkCaps {
        self.inner.caps()
    }

    fn rx_meta(&self) -> super::FrameMeta {
        self.inner.rx_meta()
    }

    fn send_meta(&mut self, now: Instant, frame: &[u8], meta: &super::FrameMeta) -> io::Result<()> {
        self.record_meta(now, frame, meta);
        self.inner.send_meta(now, frame, meta)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    // Classic pcap has no comments: pass annotations through to whatever can use them.
    fn rx_dropped(&mut self, reason: &dyn core::fmt::Display) {
        self.inner.rx_dropped(reason);
    }

    fn poll_fault_report(&mut self, frame: &mut Vec<u8>) -> Option<super::FaultEvent> {
        self.inner.poll_fault_report(frame)
    }

    fn ring_stats(&mut self) -> Option<super::RingStats> {
        self.inner.ring_stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::MemoryLink;
    use crate::wire::testdata;

    #[test]
    fn records_both_directions_in_pcap_layout() {
        let (a, mut b) = MemoryLink::pair(8);
        let mut w =
            PcapWriter::new(a, Vec::new(), 1_700_000_000_000_000, PcapTimestamps::Micros).unwrap();
        w.send(Instant::from_micros(1_500_000), testdata::ARP_REQUEST)
            .unwrap();
        b.send(Instant::ZERO, testdata::ARP_REPLY).unwrap();
        let mut buf = [0u8; 1514];
        assert_eq!(
            w.recv(Instant::from_micros(2_000_001), &mut buf).unwrap(),
            Some(42)
        );
        let (_, out) = w.into_parts();
        assert_eq!(&out[0..4], &0xa1b2c3d4u32.to_le_bytes());
        assert_eq!(out.len(), 24 + 2 * (16 + 42));
        let rec1 = &out[24..40];
        assert_eq!(
            u32::from_le_bytes(rec1[0..4].try_into().unwrap()),
            1_700_000_001
        );
        assert_eq!(u32::from_le_bytes(rec1[4..8].try_into().unwrap()), 500_000);
        assert_eq!(&out[40..82], testdata::ARP_REQUEST);
        let rec2 = &out[82..98];
        assert_eq!(u32::from_le_bytes(rec2[4..8].try_into().unwrap()), 1);
        assert_eq!(&out[98..], testdata::ARP_REPLY);
    }

    #[test]
    fn nanosecond_magic_and_fraction() {
        let (a, _b) = MemoryLink::pair(8);
        let mut w = PcapWriter::new(a, Vec::new(), 0, PcapTimestamps::Nanos).unwrap();
        w.send(Instant::from_micros(3), testdata::ARP_REQUEST)
            .unwrap();
        let (_, out) = w.into_parts();
        assert_eq!(&out[0..4], &0xa1b23c4du32.to_le_bytes());
        assert_eq!(u32::from_le_bytes(out[28..32].try_into().unwrap()), 3000);
    }
}
