//! TCP segments (RFC 9293 §3.1) with the options this stack speaks: MSS, window scale
//! and timestamps (RFC 7323), SACK-permitted and SACK blocks (RFC 2018).
//!
//! Options are parsed here rather than with etherparse's `TcpOptionsIterator`, which
//! stops at the first option kind it does not know; RFC 9293 §3.1 (and Linux) skip
//! unknown options by their length, so a SYN carrying e.g. TCP Fast Open before MSS
//! must still yield its MSS.

use super::{checksum, Error, IpProtocol};
use core::cmp::Ordering;
use core::fmt;
use core::net::IpAddr;
use core::ops;

/// Length of a TCP header without options.
pub const TCP_HEADER_LEN: usize = 20;
/// Most option bytes a header can carry.
pub const TCP_MAX_OPTIONS_LEN: usize = 40;

/// A TCP sequence number: arithmetic and comparison wrap modulo 2^32 (RFC 9293 §3.4).
///
/// Ordering compares by signed distance, so it is only meaningful for numbers less than
/// 2^31 apart, which is always the case inside a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// Signed distance from `other` to `self`.
    pub fn wrapping_sub(self, other: SeqNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// The later of two numbers.
    pub fn max(self, other: SeqNumber) -> SeqNumber {
        if self > other {
            self
        } else {
            other
        }
    }

    /// The earlier of two numbers.
    pub fn min(self, other: SeqNumber) -> SeqNumber {
        if self < other {
            self
        } else {
            other
        }
    }
}

impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &SeqNumber) -> Option<Ordering> {
        Some(self.wrapping_sub(*other).cmp(&0))
    }
}

impl ops::Add<usize> for SeqNumber {
    type Output = SeqNumber;
    fn add(self, rhs: usize) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(rhs as u32))
    }
}

impl ops::AddAssign<usize> for SeqNumber {
    fn add_assign(&mut self, rhs: usize) {
        *self = *self + rhs;
    }
}

impl ops::Sub<usize> for SeqNumber {
    type Output = SeqNumber;
    fn sub(self, rhs: usize) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(rhs as u32))
    }
}

impl ops::Sub for SeqNumber {
    type Output = i32;
    /// Signed distance, same as [`SeqNumber::wrapping_sub`].
    fn sub(self, rhs: SeqNumber) -> i32 {
        self.wrapping_sub(rhs)
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The TCP control bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x001);
    /// Synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x002);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x004);
    /// Push function.
    pub const PSH: TcpFlags = TcpFlags(0x008);
    /// Acknowledgment field is significant.
    pub const ACK: TcpFlags = TcpFlags(0x010);
    /// Urgent pointer field is significant.
    pub const URG: TcpFlags = TcpFlags(0x020);
    /// ECN echo (RFC 3168).
    pub const ECE: TcpFlags = TcpFlags(0x040);
    /// Congestion window reduced (RFC 3168).
    pub const CWR: TcpFlags = TcpFlags(0x080);

    /// No bits set.
    pub const fn empty() -> TcpFlags {
        TcpFlags(0)
    }

    /// True when every bit of `other` is set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// SYN set.
    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }
    /// FIN set.
    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }
    /// RST set.
    pub const fn rst(self) -> bool {
        self.contains(Self::RST)
    }
    /// ACK set.
    pub const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }
    /// PSH set.
    pub const fn psh(self) -> bool {
        self.contains(Self::PSH)
    }
}

impl ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl ops::BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Display for TcpFlags {
    /// tcpdump's notation: `S`, `S.`, `P.`, `F.`, `R`, `.` for a bare ACK.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (flag, c) in [
            (Self::SYN, 'S'),
            (Self::FIN, 'F'),
            (Self::PSH, 'P'),
            (Self::RST, 'R'),
            (Self::URG, 'U'),
            (Self::ECE, 'E'),
            (Self::CWR, 'W'),
            (Self::ACK, '.'),
        ] {
            if self.contains(flag) {
                write!(f, "{c}")?;
            }
        }
        if self.0 == 0 {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// The TCP options this stack reads and writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOptions {
    /// Maximum segment size (only meaningful on SYN).
    pub mss: Option<u16>,
    /// Window scale shift count (only meaningful on SYN), RFC 7323 §2.
    pub window_scale: Option<u8>,
    /// SACK permitted (only meaningful on SYN), RFC 2018 §2.
    pub sack_permitted: bool,
    /// SACK blocks as (left edge, right edge), RFC 2018 §3.
    pub sack_ranges: [Option<(SeqNumber, SeqNumber)>; 4],
    /// Timestamps (TSval, TSecr), RFC 7323 §3.
    pub timestamp: Option<(u32, u32)>,
}

const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
const OPT_WS: u8 = 3;
const OPT_SACK_PERM: u8 = 4;
const OPT_SACK: u8 = 5;
const OPT_TS: u8 = 8;

impl TcpOptions {
    /// Parses the options area of a header. Unknown options are skipped by length.
    ///
    /// # Errors
    /// `Malformed` when an option's length runs past the area or is below 2.
    #[inline]
    pub fn parse(bytes: &[u8]) -> Result<TcpOptions, Error> {
        // The layout of nearly every segment of a connection with timestamps (RFC 7323
        // Appendix A): NOP, NOP, TS. Decoded without the loop; the same result.
        if let [OPT_NOP, OPT_NOP, OPT_TS, 10, v0, v1, v2, v3, e0, e1, e2, e3] = *bytes {
            return Ok(TcpOptions {
                timestamp: Some((
                    u32::from_be_bytes([v0, v1, v2, v3]),
                    u32::from_be_bytes([e0, e1, e2, e3]),
                )),
                ..TcpOptions::default()
            });
        }
        if bytes.is_empty() {
            return Ok(TcpOptions::default());
        }
        Self::parse_any(bytes)
    }

    /// `parse` for any other layout: the loop over options.
    #[inline(never)]
    fn parse_any(mut bytes: &[u8]) -> Result<TcpOptions, Error> {
        let mut opts = TcpOptions::default();
        while let Some(&kind) = bytes.first() {
            match kind {
                OPT_END => break,
                OPT_NOP => {
                    bytes = &bytes[1..];
                    continue;
                }
                _ => {}
            }
            let len = *bytes.get(1).ok_or(Error::Malformed)? as usize;
            if len < 2 || len > bytes.len() {
                return Err(Error::Malformed);
            }
            let body = &bytes[2..len];
            match (kind, body.len()) {
                (OPT_MSS, 2) => opts.mss = Some(u16::from_be_bytes([body[0], body[1]])),
                (OPT_WS, 1) => opts.window_scale = Some(body[0]),
                (OPT_SACK_PERM, 0) => opts.sack_permitted = true,
                (OPT_SACK, n) if n % 8 == 0 && n <= 32 => {
                    for (slot, block) in opts.sack_ranges.iter_mut().zip(body.chunks_exact(8)) {
                        let l = u32::from_be_bytes([block[0], block[1], block[2], block[3]]);
                        let r = u32::from_be_bytes([block[4], block[5], block[6], block[7]]);
                        *slot = Some((SeqNumber(l), SeqNumber(r)));
                    }
                }
                (OPT_TS, 8) => {
                    opts.timestamp = Some((
                        u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                        u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
                    ))
                }
                // A known kind with the wrong length is ignored like an unknown one, as
                // Linux does (tcp_parse_options).
                _ => {}
            }
            bytes = &bytes[len..];
        }
        Ok(opts)
    }

    /// Only a timestamp (the common layout `NOP, NOP, TS` of RFC 7323 Appendix A).
    #[inline]
    fn is_timestamp_only(&self) -> bool {
        self.timestamp.is_some()
            && self.mss.is_none()
            && self.window_scale.is_none()
            && !self.sack_permitted
            && self.sack_ranges[0].is_none()
    }

    /// Number of SACK blocks present.
    pub fn sack_count(&self) -> usize {
        self.sack_ranges.iter().take_while(|r| r.is_some()).count()
    }

    /// Bytes these options take when emitted, padded to a multiple of 4.
    pub fn buffer_len(&self) -> usize {
        if self.is_timestamp_only() {
            return 12;
        }
        let mut len = 0;
        if self.mss.is_some() {
            len += 4;
        }
        // SACK-permitted and timestamps share a word pair as Linux lays them out.
        match (self.sack_permitted, self.timestamp.is_some()) {
            (true, true) => len += 12,
            (false, true) => len += 12,
            (true, false) => len += 4,
            (false, false) => {}
        }
        if self.window_scale.is_some() {
            len += 4;
        }
        let sacks = self.sack_count();
        if sacks > 0 {
            len += 4 + 8 * sacks;
        }
        len
    }

    /// Writes the options in Linux's layout (`mss, sackOK, TS, nop, wscale, nop, nop, sack`)
    /// into `buf[..buffer_len()]`.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        if let (true, Some((val, ecr))) = (self.is_timestamp_only(), self.timestamp) {
            // Nearly every segment of a connection with timestamps: one 12-byte write.
            let (v, e) = (val.to_be_bytes(), ecr.to_be_bytes());
            buf[..12].copy_from_slice(&[
                OPT_NOP, OPT_NOP, OPT_TS, 10, v[0], v[1], v[2], v[3], e[0], e[1], e[2], e[3],
            ]);
            return;
        }
        self.emit_any(buf);
    }

    /// `emit` for any other set of options.
    #[inline(never)]
    fn emit_any(&self, buf: &mut [u8]) {
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            buf[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        if let Some(mss) = self.mss {
            let m = mss.to_be_bytes();
            put(&[OPT_MSS, 4, m[0], m[1]]);
        }
        match (self.sack_permitted, self.timestamp) {
            (true, Some(_)) => put(&[OPT_SACK_PERM, 2]),
            (true, None) => put(&[OPT_NOP, OPT_NOP, OPT_SACK_PERM, 2]),
            (false, Some(_)) => put(&[OPT_NOP, OPT_NOP]),
            (false, None) => {}
        }
        if let Some((val, ecr)) = self.timestamp {
            put(&[OPT_TS, 10]);
            put(&val.to_be_bytes());
            put(&ecr.to_be_bytes());
        }
        if let Some(ws) = self.window_scale {
            put(&[OPT_NOP, OPT_WS, 3, ws]);
        }
        let sacks = self.sack_count();
        if sacks > 0 {
            put(&[OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * sacks as u8]);
            for (l, r) in self.sack_ranges.iter().flatten() {
                put(&l.0.to_be_bytes());
                put(&r.0.to_be_bytes());
            }
        }
    }
}

/// A decoded TCP segment; `payload` borrows from the packet (or from a send buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// SEG.SEQ.
    pub seq_number: SeqNumber,
    /// SEG.ACK (meaningful only with the ACK flag).
    pub ack_number: SeqNumber,
    /// Control bits.
    pub flags: TcpFlags,
    /// SEG.WND as carried in the header (unscaled).
    pub window_len: u16,
    /// Urgent pointer (meaningful only with URG).
    pub urgent_ptr: u16,
    /// Decoded options.
    pub options: TcpOptions,
    /// Segment text.
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Parses a segment carried between `src` and `dst` (IPv4 or IPv6), verifying the
    /// checksum over the family's pseudo-header.
    ///
    /// # Errors
    /// `Truncated`, `Malformed` (data offset or options) or `Checksum`.
    pub fn parse(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        segment: &'a [u8],
    ) -> Result<TcpRepr<'a>, Error> {
        Self::parse_inner(Some((src.into(), dst.into())), segment)
    }

    /// Parses a segment whose checksum the link vouches for or left partial (an
    /// offloading link's `DATA_VALID` or `NEEDS_CSUM`): everything
    /// [`parse`](Self::parse) checks but the checksum.
    ///
    /// # Errors
    /// `Truncated` or `Malformed` (data offset or options).
    pub fn parse_unverified(segment: &'a [u8]) -> Result<TcpRepr<'a>, Error> {
        Self::parse_inner(None, segment)
    }

    #[inline]
    fn parse_inner(
        addrs: Option<(IpAddr, IpAddr)>,
        segment: &'a [u8],
    ) -> Result<TcpRepr<'a>, Error> {
        // Read directly (this runs for every segment), with etherparse's checks in its
        // order: 20 bytes, then a data offset of at least 5 words, then that many bytes.
        let Some(&[s0, s1, d0, d1, q0, q1, q2, q3, a0, a1, a2, a3, off, fl, w0, w1, _, _, u0, u1]) =
            segment.get(..TCP_HEADER_LEN)
        else {
            return Err(Error::Truncated);
        };
        let header_len = usize::from(off >> 4) * 4;
        if header_len < TCP_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if header_len > segment.len() {
            return Err(Error::Truncated);
        }
        if let Some((src, dst)) = addrs {
            if checksum::pseudo(src, dst, IpProtocol::TCP.0, segment) != 0 {
                return Err(Error::Checksum);
            }
        }
        Ok(TcpRepr {
            src_port: u16::from_be_bytes([s0, s1]),
            dst_port: u16::from_be_bytes([d0, d1]),
            seq_number: SeqNumber(u32::from_be_bytes([q0, q1, q2, q3])),
            ack_number: SeqNumber(u32::from_be_bytes([a0, a1, a2, a3])),
            flags: TcpFlags(u16::from_be_bytes([off, fl]) & 0x0ff),
            window_len: u16::from_be_bytes([w0, w1]),
            urgent_ptr: u16::from_be_bytes([u0, u1]),
            options: TcpOptions::parse(&segment[TCP_HEADER_LEN..header_len])?,
            payload: &segment[header_len..],
        })
    }

    /// `parse` through etherparse's header slice: the reference the direct read is
    /// tested against.
    #[cfg(test)]
    fn parse_etherparse(src: IpAddr, dst: IpAddr, segment: &'a [u8]) -> Result<TcpRepr<'a>, Error> {
        use etherparse::err::tcp::HeaderSliceError;
        let hdr = etherparse::TcpHeaderSlice::from_slice(segment).map_err(|e| match e {
            HeaderSliceError::Len(_) => Error::Truncated,
            HeaderSliceError::Content(_) => Error::Malformed,
        })?;
        if checksum::pseudo(src, dst, IpProtocol::TCP.0, segment) != 0 {
            return Err(Error::Checksum);
        }
        let header_len = hdr.slice().len();
        let raw = hdr.slice();
        Ok(TcpRepr {
            src_port: hdr.source_port(),
            dst_port: hdr.destination_port(),
            seq_number: SeqNumber(hdr.sequence_number()),
            ack_number: SeqNumber(hdr.acknowledgment_number()),
            flags: TcpFlags(u16::from_be_bytes([raw[12], raw[13]]) & 0x0ff),
            window_len: hdr.window_size(),
            urgent_ptr: hdr.urgent_pointer(),
            options: TcpOptions::parse(hdr.options())?,
            payload: &segment[header_len..],
        })
    }

    /// The folded, uncomplemented pseudo-header sum of a `tcp_len`-byte segment: what
    /// the checksum field holds when a device is left to finish it (`NEEDS_CSUM`).
    pub fn pseudo_sum(src: impl Into<IpAddr>, dst: impl Into<IpAddr>, tcp_len: usize) -> u16 {
        checksum::pseudo_header_sum(src, dst, IpProtocol::TCP.0, tcp_len)
    }

    /// SEG.LEN: payload plus one for each of SYN and FIN (RFC 9293 §3.4).
    pub fn segment_len(&self) -> usize {
        self.payload.len() + usize::from(self.flags.syn()) + usize::from(self.flags.fin())
    }

    /// Header bytes, options included.
    pub fn header_len(&self) -> usize {
        TCP_HEADER_LEN + self.options.buffer_len()
    }

    /// Header plus payload bytes.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Writes header, options and payload into `buf[..buffer_len()]` with the checksum
    /// for a segment from `src` to `dst` (IPv4 or IPv6 pseudo-header, by family).
    #[inline]
    pub fn emit(&self, buf: &mut [u8], src: impl Into<IpAddr>, dst: impl Into<IpAddr>) {
        self.emit_with_header_len(buf, self.header_len(), src, dst);
    }

    /// [`emit`](Self::emit) for a caller that knows the header length already (it
    /// must be [`header_len`](Self::header_len)): the interface, which sized the IP
    /// packet by it, so the options are not measured twice per segment.
    #[inline]
    pub(crate) fn emit_with_header_len(
        &self,
        buf: &mut [u8],
        header_len: usize,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
    ) {
        debug_assert_eq!(header_len, self.header_len());
        debug_assert!(header_len <= TCP_HEADER_LEN + TCP_MAX_OPTIONS_LEN);
        let total = header_len + self.payload.len();
        let b = &mut buf[..total];
        self.emit_header(b, header_len);
        b[header_len..].copy_from_slice(self.payload);
        let sum = checksum::pseudo(src, dst, IpProtocol::TCP.0, b);
        b[16..18].copy_from_slice(&sum.to_be_bytes());
    }

    /// Like [`emit`](Self::emit), but leaves the checksum for the device to finish
    /// (`NEEDS_CSUM`): the field holds only the pseudo-header sum, so the payload is
    /// copied but never summed here.
    pub fn emit_partial(&self, buf: &mut [u8], src: impl Into<IpAddr>, dst: impl Into<IpAddr>) {
        let header_len = self.header_len();
        let total = header_len + self.payload.len();
        self.emit_header(buf, header_len);
        buf[header_len..total].copy_from_slice(self.payload);
        let sum = Self::pseudo_sum(src, dst, total);
        buf[16..18].copy_from_slice(&sum.to_be_bytes());
    }

    /// Writes the `header_len`-byte header (options included; the caller has it
    /// from [`header_len`](Self::header_len)) with a zero checksum.
    #[inline(always)]
    fn emit_header(&self, b: &mut [u8], header_len: usize) {
        b[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        b[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        b[4..8].copy_from_slice(&self.seq_number.0.to_be_bytes());
        b[8..12].copy_from_slice(&self.ack_number.0.to_be_bytes());
        let off_flags = ((header_len as u16 / 4) << 12) | (self.flags.0 & 0x0ff);
        b[12..14].copy_from_slice(&off_flags.to_be_bytes());
        b[14..16].copy_from_slice(&self.window_len.to_be_bytes());
        b[16..18].copy_from_slice(&[0, 0]);
        b[18..20].copy_from_slice(&self.urgent_ptr.to_be_bytes());
        self.options.emit(&mut b[TCP_HEADER_LEN..header_len]);
    }
}

impl fmt::Display for TcpRepr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} > {} [{}] seq {}",
            self.src_port, self.dst_port, self.flags, self.seq_number
        )?;
        if self.flags.ack() {
            write!(f, " ack {}", self.ack_number)?;
        }
        write!(f, " win {} len {}", self.window_len, self.payload.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{testdata, EthernetRepr, Ipv4Repr};
    use core::net::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;

    fn tcp(frame: &[u8]) -> (Ipv4Repr, &[u8]) {
        let (_, ip) = EthernetRepr::parse(frame).unwrap();
        Ipv4Repr::parse(ip).unwrap()
    }

    #[test]
    fn deconstruct_captured_syn() {
        let (ip, seg) = tcp(testdata::TCP_SYN);
        let repr = TcpRepr::parse(ip.src_addr, ip.dst_addr, seg).unwrap();
        assert_eq!((repr.src_port, repr.dst_port), (38394, 5001));
        assert_eq!(repr.seq_number, SeqNumber(3460258186));
        assert_eq!(repr.flags, TcpFlags::SYN);
        assert_eq!(repr.window_len, 64240);
        assert_eq!(repr.options.mss, Some(1460));
        assert_eq!(repr.options.window_scale, Some(10));
        assert!(repr.options.sack_permitted);
        assert_eq!(repr.options.timestamp, Some((3351729865, 0)));
        assert_eq!(repr.segment_len(), 1);
    }

    #[test]
    fn construct_reproduces_captured_segments() {
        for frame in [
            testdata::TCP_SYN,
            testdata::TCP_SYN_ACK,
            testdata::TCP_DATA,
            testdata::TCP_FIN,
        ] {
            let (ip, seg) = tcp(frame);
            let repr = TcpRepr::parse(ip.src_addr, ip.dst_addr, seg).unwrap();
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut buf, ip.src_addr, ip.dst_addr);
            assert_eq!(&buf[..], seg, "segment {repr}");
        }
    }

    #[test]
    fn data_segment_payload() {
        let (ip, seg) = tcp(testdata::TCP_DATA);
        let repr = TcpRepr::parse(ip.src_addr, ip.dst_addr, seg).unwrap();
        assert_eq!(repr.payload, b"hello\n");
        assert_eq!(repr.flags, TcpFlags::PSH | TcpFlags::ACK);
        assert_eq!(repr.flags.to_string(), "P.");
    }

    #[test]
    fn unknown_option_is_skipped_by_length() {
        // TFO cookie option (kind 34, len 10) placed before MSS.
        let mut bytes = vec![34, 10, 1, 2, 3, 4, 5, 6, 7, 8];
        bytes.extend_from_slice(&[OPT_MSS, 4, 0x05, 0xb4]);
        assert_eq!(TcpOptions::parse(&bytes).unwrap().mss, Some(1460));
    }

    #[test]
    fn option_length_overrun_is_malformed() {
        assert_eq!(
            TcpOptions::parse(&[OPT_MSS, 4, 0x05]),
            Err(Error::Malformed)
        );
        assert_eq!(TcpOptions::parse(&[OPT_MSS, 0]), Err(Error::Malformed));
        assert_eq!(TcpOptions::parse(&[99]), Err(Error::Malformed));
    }

    #[test]
    fn seq_number_wraps() {
        let a = SeqNumber(u32::MAX - 1);
        let b = a + 4;
        assert_eq!(b, SeqNumber(2));
        assert!(b > a);
        assert_eq!(b - a, 4);
        assert_eq!(a - b, -4);
        assert_eq!(a.max(b), b);
    }

    fn arb_options() -> impl Strategy<Value = TcpOptions> {
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(0u8..=14),
            any::<bool>(),
            proptest::option::of(any::<(u32, u32)>()),
            proptest::collection::vec(any::<(u32, u32)>(), 0..=3),
        )
            .prop_map(|(mss, ws, sp, ts, sacks)| {
                let mut o = TcpOptions {
                    mss,
                    window_scale: ws,
                    sack_permitted: sp,
                    timestamp: ts,
                    ..Default::default()
                };
                for (slot, (l, r)) in o.sack_ranges.iter_mut().zip(sacks) {
                    *slot = Some((SeqNumber(l), SeqNumber(r)));
                }
                o
            })
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(
            src_port: u16, dst_port: u16, seq: u32, ack: u32, flags in 0u16..256,
            window_len: u16, options in arb_options(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let repr = TcpRepr {
                src_port, dst_port, seq_number: SeqNumber(seq), ack_number: SeqNumber(ack),
                flags: TcpFlags(flags), window_len, urgent_ptr: 0, options, payload: &payload,
            };
            prop_assume!(repr.header_len() <= TCP_HEADER_LEN + TCP_MAX_OPTIONS_LEN);
            let (s, d) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut buf, s, d);
            prop_assert_eq!(TcpRepr::parse(s, d, &buf).unwrap(), repr);
            // The same segment over IPv6: its own pseudo-header, which IPv4's does not verify.
            let (s6, d6) = (Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1), Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2));
            repr.emit(&mut buf, s6, d6);
            prop_assert_eq!(TcpRepr::parse(s6, d6, &buf).unwrap(), repr);
            prop_assert_eq!(TcpRepr::parse(s, d, &buf), Err(Error::Checksum));
        }

        #[test]
        fn seq_ordering_is_antisymmetric(a: u32, d in 1u32..0x7fff_ffff) {
            let (x, y) = (SeqNumber(a), SeqNumber(a.wrapping_add(d)));
            prop_assert!(x < y);
            prop_assert!(y > x);
            prop_assert_eq!((y - x) as u32, d);
        }

        #[test]
        fn direct_parse_matches_etherparse(
            mut seg in proptest::collection::vec(any::<u8>(), 0..80),
            fix_sum: bool,
        ) {
            let (src, dst): (IpAddr, IpAddr) =
                (Ipv4Addr::new(10, 0, 0, 1).into(), Ipv4Addr::new(10, 0, 0, 2).into());
            if fix_sum && seg.len() >= TCP_HEADER_LEN {
                seg[16..18].copy_from_slice(&[0, 0]);
                let sum = checksum::pseudo(src, dst, IpProtocol::TCP.0, &seg);
                seg[16..18].copy_from_slice(&sum.to_be_bytes());
            }
            prop_assert_eq!(
                TcpRepr::parse(src, dst, &seg),
                TcpRepr::parse_etherparse(src, dst, &seg)
            );
        }

        #[test]
        fn options_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = TcpOptions::parse(&bytes);
        }
    }
}
