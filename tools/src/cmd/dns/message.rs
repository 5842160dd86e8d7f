//! DNS messages (RFC 1035) for `ustack dns`: building a standard query and parsing the
//! answer, name compression included. Pure functions on byte slices: no sockets, no
//! printing, and no panic on any input (every offset is checked; compression pointers
//! are followed at most [`MAX_POINTERS`] times and names stop at 255 bytes, so a pointer
//! loop or an out-of-range offset is an error, not a hang or a crash).

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

/// Most compression pointers followed while reading one name.
pub const MAX_POINTERS: usize = 64;
/// Longest name on the wire, length octets included (RFC 1035 §3.1).
pub const MAX_NAME: usize = 255;
/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL: usize = 63;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 12;

/// Class IN.
pub const CLASS_IN: u16 = 1;

/// Why a name could not be encoded or a message could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsError {
    /// The message ends before `what` at `offset`.
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where.
        offset: usize,
    },
    /// A compression pointer points outside the message.
    BadPointer(usize),
    /// More than [`MAX_POINTERS`] pointers in one name: a loop.
    PointerLoop(usize),
    /// A name longer than 255 bytes.
    NameTooLong,
    /// A label type other than a plain label or a pointer (0x40, 0x80).
    BadLabelType(u8),
    /// A name to encode is not valid (empty label, label over 63 bytes, ...).
    BadName(String),
    /// An unknown record type name.
    BadType(String),
    /// Record data inconsistent with its type (e.g. an A record that is not 4 bytes).
    BadRdata {
        /// The record type.
        rtype: u16,
        /// The data length.
        len: usize,
    },
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::Truncated { what, offset } => {
                write!(f, "message truncated in {what} at offset {offset}")
            }
            DnsError::BadPointer(o) => write!(f, "compression pointer out of range ({o})"),
            DnsError::PointerLoop(o) => write!(f, "compression pointer loop at offset {o}"),
            DnsError::NameTooLong => write!(f, "name longer than {MAX_NAME} bytes"),
            DnsError::BadLabelType(b) => write!(f, "unsupported label type 0x{b:02x}"),
            DnsError::BadName(why) => write!(f, "bad name: {why}"),
            DnsError::BadType(t) => write!(f, "unknown record type `{t}`"),
            DnsError::BadRdata { rtype, len } => {
                write!(f, "{} record with {len} bytes of data", type_name(*rtype))
            }
        }
    }
}

impl std::error::Error for DnsError {}

/// Record types by name, for `--type` and for printing.
const TYPES: &[(&str, u16)] = &[
    ("A", TYPE_A),
    ("NS", 2),
    ("CNAME", 5),
    ("SOA", 6),
    ("PTR", 12),
    ("MX", 15),
    ("TXT", 16),
    ("AAAA", 28),
    ("SRV", 33),
    ("OPT", 41),
    ("ANY", 255),
];

/// Type A.
pub const TYPE_A: u16 = 1;
/// Type CNAME.
pub const TYPE_CNAME: u16 = 5;
/// QTYPE ANY (`*`).
pub const TYPE_ANY: u16 = 255;

/// The mnemonic of a record type (`TYPE123` for the others, RFC 3597).
pub fn type_name(t: u16) -> String {
    TYPES
        .iter()
        .find(|(_, v)| *v == t)
        .map_or_else(|| format!("TYPE{t}"), |(n, _)| (*n).to_owned())
}

/// Parses a record type: a mnemonic (case-insensitive) or `TYPEnnn`.
///
/// # Errors
/// Neither.
pub fn parse_type(s: &str) -> Result<u16, DnsError> {
    let up = s.to_ascii_uppercase();
    if let Some((_, v)) = TYPES.iter().find(|(n, _)| *n == up) {
        return Ok(*v);
    }
    up.strip_prefix("TYPE")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| DnsError::BadType(s.to_owned()))
}

/// The mnemonic of a response code.
pub fn rcode_name(rcode: u8) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        RCODE_NXDOMAIN => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("RCODE{n}"),
    }
}

/// Response code NXDOMAIN.
pub const RCODE_NXDOMAIN: u8 = 3;

/// The fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Header {
    /// Query id.
    pub id: u16,
    /// A response (QR).
    pub response: bool,
    /// Opcode (0: standard query).
    pub opcode: u8,
    /// Authoritative answer (AA).
    pub authoritative: bool,
    /// Truncated (TC).
    pub truncated: bool,
    /// Recursion desired (RD).
    pub recursion_desired: bool,
    /// Recursion available (RA).
    pub recursion_available: bool,
    /// Response code.
    pub rcode: u8,
    /// Entries in the question section.
    pub qdcount: u16,
    /// Records in the answer section.
    pub ancount: u16,
    /// Records in the authority section.
    pub nscount: u16,
    /// Records in the additional section.
    pub arcount: u16,
}

impl Header {
    fn emit(&self, out: &mut Vec<u8>) {
        let flags = (u16::from(self.response) << 15)
            | (u16::from(self.opcode & 0xf) << 11)
            | (u16::from(self.authoritative) << 10)
            | (u16::from(self.truncated) << 9)
            | (u16::from(self.recursion_desired) << 8)
            | (u16::from(self.recursion_available) << 7)
            | u16::from(self.rcode & 0xf);
        for v in [
            self.id,
            flags,
            self.qdcount,
            self.ancount,
            self.nscount,
            self.arcount,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }

    /// Parses the 12-byte header at the start of `buf`.
    ///
    /// # Errors
    /// `buf` is shorter than 12 bytes.
    pub fn parse(buf: &[u8]) -> Result<Header, DnsError> {
        let mut r = Reader { buf, pos: 0 };
        let id = r.u16("header")?;
        let flags = r.u16("header")?;
        Ok(Header {
            id,
            response: flags & 0x8000 != 0,
            opcode: ((flags >> 11) & 0xf) as u8,
            authoritative: flags & 0x0400 != 0,
            truncated: flags & 0x0200 != 0,
            recursion_desired: flags & 0x0100 != 0,
            recursion_available: flags & 0x0080 != 0,
            rcode: (flags & 0xf) as u8,
            qdcount: r.u16("header")?,
            ancount: r.u16("header")?,
            nscount: r.u16("header")?,
            arcount: r.u16("header")?,
        })
    }
}

/// A domain name as labels (raw bytes, case kept).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Name(pub Vec<Vec<u8>>);

impl Name {
    /// Parses dotted text (`www.example.com`, trailing dot optional; `.` is the root).
    /// `\.` and `\DDD` escapes are understood.
    ///
    /// # Errors
    /// An empty label, a label over 63 bytes, a name over 255 bytes, a bad escape.
    pub fn from_text(s: &str) -> Result<Name, DnsError> {
        if s == "." {
            return Ok(Name(Vec::new()));
        }
        let bad = |why: &str| DnsError::BadName(format!("`{s}`: {why}"));
        let mut labels = Vec::new();
        let mut cur = Vec::new();
        let mut chars = s.bytes().peekable();
        let mut ended_with_dot = false;
        while let Some(c) = chars.next() {
            ended_with_dot = false;
            match c {
                b'.' => {
                    if cur.is_empty() {
                        return Err(bad("empty label"));
                    }
                    labels.push(std::mem::take(&mut cur));
                    ended_with_dot = true;
                }
                b'\\' => {
                    let Some(n) = chars.next() else {
                        return Err(bad("trailing backslash"));
                    };
                    if n.is_ascii_digit() {
                        let (Some(d2), Some(d3)) = (chars.next(), chars.next()) else {
                            return Err(bad("short \\DDD escape"));
                        };
                        let v = [n, d2, d3]
                            .iter()
                            .try_fold(0u32, |acc, d| {
                                d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
                            })
                            .filter(|v| *v <= 255)
                            .ok_or_else(|| bad("bad \\DDD escape"))?;
                        cur.push(v as u8);
                    } else {
                        cur.push(n);
                    }
                }
                c => cur.push(c),
            }
        }
        if !cur.is_empty() {
            labels.push(cur);
        } else if !ended_with_dot {
            return Err(bad("empty name"));
        }
        if labels.iter().any(|l| l.len() > MAX_LABEL) {
            return Err(bad("label longer than 63 bytes"));
        }
        let name = Name(labels);
        if name.wire_len() > MAX_NAME {
            return Err(DnsError::NameTooLong);
        }
        Ok(name)
    }

    /// Bytes on the wire, uncompressed.
    pub fn wire_len(&self) -> usize {
        self.0.iter().map(|l| l.len() + 1).sum::<usize>() + 1
    }

    fn emit(&self, out: &mut Vec<u8>) {
        for l in &self.0 {
            out.push(l.len() as u8);
            out.extend_from_slice(l);
        }
        out.push(0);
    }

    /// Case-insensitive equality (RFC 4343).
    pub fn eq_ignore_case(&self, other: &Name) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }
}

impl fmt::Display for Name {
    /// Absolute presentation form, with the trailing dot; `.`, `\` and bytes outside
    /// printable ASCII escaped as dig does (`\.`, `\\`, `\DDD`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str(".");
        }
        for l in &self.0 {
            for &b in l {
                match b {
                    b'.' | b'\\' | b'"' | b';' | b'(' | b')' | b'@' | b'$' => {
                        write!(f, "\\{}", b as char)?;
                    }
                    0x21..=0x7e => write!(f, "{}", b as char)?,
                    _ => write!(f, "\\{b:03}")?,
                }
            }
            f.write_str(".")?;
        }
        Ok(())
    }
}

/// An entry of the question section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// QNAME.
    pub name: Name,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
}

/// Record data, decoded for the types `ustack dns` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rdata {
    /// A.
    A(Ipv4Addr),
    /// AAAA.
    Aaaa(Ipv6Addr),
    /// CNAME, NS, PTR: one name.
    Name(Name),
    /// MX: preference and exchange.
    Mx(u16, Name),
    /// TXT: the character strings.
    Txt(Vec<Vec<u8>>),
    /// SOA: mname, rname, serial, refresh, retry, expire, minimum.
    Soa(Name, Name, [u32; 5]),
    /// Anything else, as it came.
    Other(Vec<u8>),
}

/// A resource record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Owner name.
    pub name: Name,
    /// TYPE.
    pub rtype: u16,
    /// CLASS.
    pub class: u16,
    /// TTL in seconds.
    pub ttl: u32,
    /// RDATA.
    pub data: Rdata,
}

impl fmt::Display for Record {
    /// `NAME. TTL IN TYPE DATA`, e.g. `example.com. 300 IN A 192.0.2.1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = if self.class == CLASS_IN {
            "IN".to_owned()
        } else {
            format!("CLASS{}", self.class)
        };
        write!(
            f,
            "{} {} {class} {} ",
            self.name,
            self.ttl,
            type_name(self.rtype)
        )?;
        match &self.data {
            Rdata::A(a) => write!(f, "{a}"),
            Rdata::Aaaa(a) => write!(f, "{a}"),
            Rdata::Name(n) => write!(f, "{n}"),
            Rdata::Mx(p, n) => write!(f, "{p} {n}"),
            Rdata::Txt(strings) => {
                for (i, s) in strings.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    f.write_str("\"")?;
                    for &b in s {
                        match b {
                            b'"' | b'\\' => write!(f, "\\{}", b as char)?,
                            0x20..=0x7e => write!(f, "{}", b as char)?,
                            _ => write!(f, "\\{b:03}")?,
                        }
                    }
                    f.write_str("\"")?;
                }
                Ok(())
            }
            Rdata::Soa(m, r, v) => {
                write!(f, "{m} {r} {} {} {} {} {}", v[0], v[1], v[2], v[3], v[4])
            }
            Rdata::Other(d) => {
                write!(f, "\\# {}", d.len())?;
                if !d.is_empty() {
                    f.write_str(" ")?;
                    for b in d {
                        write!(f, "{b:02x}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// A whole message.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Message {
    /// The header (the counts as they came on the wire).
    pub header: Header,
    /// Question section.
    pub questions: Vec<Question>,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section.
    pub authority: Vec<Record>,
    /// Additional section.
    pub additional: Vec<Record>,
}

/// Builds a standard query (opcode 0, RD set) for `name`/`qtype`, class IN.
///
/// # Errors
/// `name` is not a valid domain name.
pub fn build_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, DnsError> {
    let name = Name::from_text(name)?;
    let mut out = Vec::with_capacity(HEADER_LEN + name.wire_len() + 4);
    Header {
        id,
        recursion_desired: true,
        qdcount: 1,
        ..Header::default()
    }
    .emit(&mut out);
    name.emit(&mut out);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

/// A cursor over the message, with checked reads.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], DnsError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(DnsError::Truncated {
                what,
                offset: self.pos,
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DnsError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, DnsError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, DnsError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a possibly compressed name; the cursor ends after its in-place part.
    fn name(&mut self) -> Result<Name, DnsError> {
        let mut labels = Vec::new();
        let mut wire_len = 1; // the root's zero octet
        let mut pos = self.pos;
        let mut jumps = 0;
        // Where the cursor goes once the name is read: after the first pointer, or
        // after the terminating zero if there is none.
        let mut resume = None;
        loop {
            let len = *self.buf.get(pos).ok_or(DnsError::Truncated {
                what: "name",
                offset: pos,
            })?;
            match len & 0xc0 {
                0x00 if len == 0 => {
                    self.pos = resume.unwrap_or(pos + 1);
                    return Ok(Name(labels));
                }
                0x00 => {
                    let start = pos + 1;
                    let label = self.buf.get(start..start + usize::from(len)).ok_or(
                        DnsError::Truncated {
                            what: "label",
                            offset: pos,
                        },
                    )?;
                    wire_len += label.len() + 1;
                    if wire_len > MAX_NAME {
                        return Err(DnsError::NameTooLong);
                    }
                    labels.push(label.to_vec());
                    pos = start + label.len();
                }
                0xc0 => {
                    let lo = *self.buf.get(pos + 1).ok_or(DnsError::Truncated {
                        what: "compression pointer",
                        offset: pos,
                    })?;
                    let target = (usize::from(len & 0x3f) << 8) | usize::from(lo);
                    jumps += 1;
                    if jumps > MAX_POINTERS {
                        return Err(DnsError::PointerLoop(pos));
                    }
                    if target >= self.buf.len() {
                        return Err(DnsError::BadPointer(target));
                    }
                    resume.get_or_insert(pos + 2);
                    pos = target;
                }
                _ => return Err(DnsError::BadLabelType(len)),
            }
        }
    }

    fn question(&mut self) -> Result<Question, DnsError> {
        Ok(Question {
            name: self.name()?,
            qtype: self.u16("question")?,
            qclass: self.u16("question")?,
        })
    }

    fn record(&mut self) -> Result<Record, DnsError> {
        let name = self.name()?;
        let rtype = self.u16("record")?;
        let class = self.u16("record")?;
        let ttl = self.u32("record")?;
        let rdlen = usize::from(self.u16("record")?);
        let start = self.pos;
        self.take(rdlen, "record data")?;
        let end = self.pos;
        // Names inside the data may point anywhere in the message: read them with a
        // cursor over the whole message, then check they stayed inside the data.
        let mut r = Reader {
            buf: self.buf,
            pos: start,
        };
        let bad = DnsError::BadRdata { rtype, len: rdlen };
        let data = match rtype {
            1 => {
                let b: [u8; 4] = self.buf[start..end].try_into().map_err(|_| bad.clone())?;
                Rdata::A(Ipv4Addr::from(b))
            }
            28 => {
                let b: [u8; 16] = self.buf[start..end].try_into().map_err(|_| bad.clone())?;
                Rdata::Aaaa(Ipv6Addr::from(b))
            }
            2 | 5 | 12 => Rdata::Name(r.name()?),
            15 => Rdata::Mx(r.u16("MX")?, r.name()?),
            6 => {
                let m = r.name()?;
                let n = r.name()?;
                let mut v = [0u32; 5];
                for x in &mut v {
                    *x = r.u32("SOA")?;
                }
                Rdata::Soa(m, n, v)
            }
            16 => {
                let mut strings = Vec::new();
                while r.pos < end {
                    let n = usize::from(r.u8("TXT")?);
                    strings.push(r.take(n, "TXT")?.to_vec());
                }
                Rdata::Txt(strings)
            }
            _ => Rdata::Other(self.buf[start..end].to_vec()),
        };
        if matches!(rtype, 2 | 5 | 6 | 12 | 15 | 16) && r.pos != end {
            return Err(bad);
        }
        Ok(Record {
            name,
            rtype,
            class,
            ttl,
            data,
        })
    }
}

/// Parses a whole message: header, question, and the three record sections.
///
/// # Errors
/// The message is truncated or malformed anywhere ([`DnsError`]).
pub fn parse_message(buf: &[u8]) -> Result<Message, DnsError> {
    let header = Header::parse(buf)?;
    let mut r = Reader {
        buf,
        pos: HEADER_LEN,
    };
    // Counts come from the wire: never pre-allocate from them.
    let mut questions = Vec::new();
    for _ in 0..header.qdcount {
        questions.push(r.question()?);
    }
    let mut sections: [Vec<Record>; 3] = Default::default();
    for (section, count) in
        sections
            .iter_mut()
            .zip([header.ancount, header.nscount, header.arcount])
    {
        for _ in 0..count {
            section.push(r.record()?);
        }
    }
    let [answers, authority, additional] = sections;
    Ok(Message {
        header,
        questions,
        answers,
        authority,
        additional,
    })
}

/// Why a datagram is not the answer to our query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// Another id.
    Id(u16),
    /// QR is not set.
    NotResponse,
    /// The question section is not our question.
    Question,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Id(id) => write!(f, "id {id:#06x} is not ours"),
            Mismatch::NotResponse => f.write_str("not a response"),
            Mismatch::Question => f.write_str("answers another question"),
        }
    }
}

impl Message {
    /// Checks that this answers the query `id` for `name`/`qtype` (RFC 5452 §9.1: id
    /// and question). A server may leave the question out of an error answer.
    ///
    /// # Errors
    /// What does not match.
    pub fn answers_query(&self, id: u16, name: &Name, qtype: u16) -> Result<(), Mismatch> {
        if self.header.id != id {
            return Err(Mismatch::Id(self.header.id));
        }
        if !self.header.response {
            return Err(Mismatch::NotResponse);
        }
        match self.questions.as_slice() {
            [] if self.header.rcode != 0 => Ok(()),
            [q] if q.qtype == qtype && q.qclass == CLASS_IN && q.name.eq_ignore_case(name) => {
                Ok(())
            }
            _ => Err(Mismatch::Question),
        }
    }

    /// The answer records for `name`/`qtype` in resolution order: each CNAME from
    /// `name` on (the chain), then the records of type `qtype` at the chain's end. A
    /// CNAME loop stops the chain (each owner is visited once).
    pub fn chain(&self, name: &Name, qtype: u16) -> Vec<&Record> {
        let mut out = Vec::new();
        let mut cur = name.clone();
        let mut seen = vec![cur.clone()];
        loop {
            let at_cur = |r: &&Record| r.name.eq_ignore_case(&cur);
            let finals: Vec<&Record> = self
                .answers
                .iter()
                .filter(at_cur)
                .filter(|r| r.rtype == qtype)
                .collect();
            if !finals.is_empty() || qtype == TYPE_CNAME {
                out.extend(finals);
                return out;
            }
            let Some(cname) = self
                .answers
                .iter()
                .filter(at_cur)
                .find(|r| r.rtype == TYPE_CNAME)
            else {
                return out;
            };
            out.push(cname);
            let Rdata::Name(next) = &cname.data else {
                return out;
            };
            if seen.iter().any(|s| s.eq_ignore_case(next)) {
                return out;
            }
            seen.push(next.clone());
            cur = next.clone();
        }
    }
}

/// A query id from a seed (splitmix64), so `--seed` replays the same id.
pub fn query_id(seed: u64) -> u16 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to `query` with the given answer bytes appended (counts as given).
    fn response(query: &[u8], rcode: u8, ancount: u16, answers: &[u8]) -> Vec<u8> {
        let mut m = query.to_vec();
        m[2] |= 0x80; // QR
        m[3] = 0x80 | rcode; // RA, rcode
        m[6..8].copy_from_slice(&ancount.to_be_bytes());
        m.extend_from_slice(answers);
        m
    }

    #[test]
    fn query_round_trips() {
        let q = build_query(0x1234, "www.Example.com", TYPE_A).unwrap();
        assert_eq!(
            q,
            [
                0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'w', b'w', 7, b'E', b'x',
                b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, 0, 1, 0, 1
            ]
        );
        let m = parse_message(&q).unwrap();
        assert_eq!(m.header.id, 0x1234);
        assert!(m.header.recursion_desired && !m.header.response);
        assert_eq!(m.header.qdcount, 1);
        assert_eq!(m.questions.len(), 1);
        assert_eq!(m.questions[0].name.to_string(), "www.Example.com.");
        assert_eq!(m.questions[0].qtype, TYPE_A);
        assert_eq!(m.questions[0].qclass, CLASS_IN);
        // A trailing dot changes nothing.
        assert_eq!(build_query(0x1234, "www.Example.com.", TYPE_A).unwrap(), q);
        // The header survives every flag.
        let h = Header {
            id: 7,
            response: true,
            opcode: 2,
            authoritative: true,
            truncated: true,
            recursion_desired: true,
            recursion_available: true,
            rcode: 5,
            qdcount: 1,
            ancount: 2,
            nscount: 3,
            arcount: 4,
        };
        let mut b = Vec::new();
        h.emit(&mut b);
        assert_eq!(Header::parse(&b).unwrap(), h);
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", "a..b", ".a", &"x".repeat(64), &"abcdefg.".repeat(40)] {
            assert!(build_query(1, bad, TYPE_A).is_err(), "{bad:?}");
        }
        assert!(build_query(1, &"x".repeat(63), TYPE_A).is_ok());
        assert_eq!(Name::from_text(".").unwrap().to_string(), ".");
        assert_eq!(Name::from_text("a\\.b.c").unwrap().0.len(), 2);
        assert_eq!(Name::from_text("a\\.b.c").unwrap().to_string(), "a\\.b.c.");
        assert_eq!(Name::from_text("\\065b").unwrap().to_string(), "Ab.");
        assert_eq!(parse_type("aaaa").unwrap(), 28);
        assert_eq!(parse_type("TYPE99").unwrap(), 99);
        assert!(parse_type("BOGUS").is_err());
    }

    /// `www.example.com A` answered with a CNAME to `example.com` and two A records,
    /// every owner and target compressed, as a resolver sends it (the bytes of a
    /// captured answer, with documentation addresses).
    const CAPTURED: &[u8] = &[
        0xab, 0xcd, 0x81, 0x80, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, // header
        0x03, b'w', b'w', b'w', 0x07, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0x03, b'c', b'o',
        b'm', 0x00, 0x00, 0x01, 0x00, 0x01, // question at 12; example.com at 16
        0xc0, 0x0c, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x02, 0xc0,
        0x10, // www.example.com CNAME example.com (rdata: pointer to 16)
        0xc0, 0x10, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x04, 192, 0, 2,
        1, // example.com A 192.0.2.1
        0xc0, 0x10, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x04, 192, 0, 2,
        2, // example.com A 192.0.2.2
    ];

    #[test]
    fn captured_answer_with_compression() {
        let m = parse_message(CAPTURED).unwrap();
        assert_eq!(m.header.id, 0xabcd);
        assert!(m.header.response && m.header.recursion_available);
        assert_eq!(m.header.rcode, 0);
        let lines: Vec<String> = m.answers.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "www.example.com. 3600 IN CNAME example.com.",
                "example.com. 300 IN A 192.0.2.1",
                "example.com. 300 IN A 192.0.2.2",
            ]
        );
        let q = Name::from_text("WWW.example.com").unwrap();
        assert_eq!(m.answers_query(0xabcd, &q, TYPE_A), Ok(()));
        assert_eq!(
            m.answers_query(0xabce, &q, TYPE_A),
            Err(Mismatch::Id(0xabcd))
        );
        assert_eq!(
            m.answers_query(0xabcd, &Name::from_text("x.com").unwrap(), TYPE_A),
            Err(Mismatch::Question)
        );
        let chain: Vec<String> = m.chain(&q, TYPE_A).iter().map(|r| r.to_string()).collect();
        assert_eq!(chain, lines);
        // Asking for the CNAME itself stops at it.
        assert_eq!(m.chain(&q, TYPE_CNAME).len(), 1);
    }

    #[test]
    fn round_trip_through_a_built_answer() {
        let q = build_query(42, "a.test", TYPE_A).unwrap();
        let rr = [
            0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 77, 0, 53, // a.test A
        ];
        let m = parse_message(&response(&q, 0, 1, &rr)).unwrap();
        assert_eq!(m.answers[0].to_string(), "a.test. 60 IN A 10.77.0.53");
        let nx = parse_message(&response(&q, RCODE_NXDOMAIN, 0, &[])).unwrap();
        assert_eq!(rcode_name(nx.header.rcode), "NXDOMAIN");
        assert!(nx.answers.is_empty());
    }

    #[test]
    fn other_types_print() {
        let q = build_query(1, "t", 16).unwrap();
        let mut rr = vec![
            0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 0, 5, 0, 8, 3, b'a', b'"', b'c',
        ];
        rr.extend_from_slice(&[3, b'x', 0x01, b'z']);
        let m = parse_message(&response(&q, 0, 1, &rr)).unwrap();
        assert_eq!(
            m.answers[0].to_string(),
            "t. 5 IN TXT \"a\\\"c\" \"x\\001z\""
        );
        let q = build_query(1, "t", 99).unwrap();
        let rr = [0xc0, 0x0c, 0, 99, 0, 1, 0, 0, 0, 5, 0, 2, 0xbe, 0xef];
        let m = parse_message(&response(&q, 0, 1, &rr)).unwrap();
        assert_eq!(m.answers[0].to_string(), "t. 5 IN TYPE99 \\# 2 beef");
    }

    #[test]
    fn truncated_answers_are_errors_at_every_length() {
        for n in 0..CAPTURED.len() {
            assert!(parse_message(&CAPTURED[..n]).is_err(), "length {n}");
        }
    }

    #[test]
    fn pointer_loops_and_bad_pointers_are_errors() {
        let q = build_query(1, "a.test", TYPE_A).unwrap();
        let at = q.len() as u8;
        // An owner name that points at itself.
        let self_loop = [0xc0, at, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4];
        assert_eq!(
            parse_message(&response(&q, 0, 1, &self_loop)),
            Err(DnsError::PointerLoop(usize::from(at)))
        );
        // A label, then a pointer back to that label: x.x.x.x...
        let label_loop = [1, b'x', 0xc0, at, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4];
        assert_eq!(
            parse_message(&response(&q, 0, 1, &label_loop)),
            Err(DnsError::PointerLoop(usize::from(at) + 2))
        );
        // Beyond the end of the message.
        let far = [0xc0 | 0x3f, 0xff, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4];
        assert_eq!(
            parse_message(&response(&q, 0, 1, &far)),
            Err(DnsError::BadPointer(0x3fff))
        );
        // A pointer in the data of a CNAME that loops.
        let cname = [0xc0, 0x0c, 0, 5, 0, 1, 0, 0, 0, 1, 0, 2, 0xc0, at + 12];
        assert!(matches!(
            parse_message(&response(&q, 0, 1, &cname)),
            Err(DnsError::PointerLoop(_))
        ));
        // Reserved label types.
        let ext = [0x41, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4];
        assert_eq!(
            parse_message(&response(&q, 0, 1, &ext)),
            Err(DnsError::BadLabelType(0x41))
        );
    }

    #[test]
    fn malformed_record_data_is_an_error() {
        let q = build_query(1, "a.test", TYPE_A).unwrap();
        // A record with 5 bytes.
        let a5 = [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 1, 0, 5, 1, 2, 3, 4, 5];
        assert_eq!(
            parse_message(&response(&q, 0, 1, &a5)),
            Err(DnsError::BadRdata { rtype: 1, len: 5 })
        );
        // CNAME whose name runs past its RDLENGTH.
        let long = [0xc0, 0x0c, 0, 5, 0, 1, 0, 0, 0, 1, 0, 1, 1, b'x', 0];
        assert!(parse_message(&response(&q, 0, 1, &long)).is_err());
        // RDLENGTH past the end.
        let past = [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 1, 2, 3, 4];
        assert!(matches!(
            parse_message(&response(&q, 0, 1, &past)),
            Err(DnsError::Truncated { .. })
        ));
        // More answers announced than present.
        let rr = [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4];
        assert!(parse_message(&response(&q, 0, 2, &rr)).is_err());
    }

    #[test]
    fn parse_never_panics_on_noise() {
        // Every single-byte corruption of the captured answer, and xorshift noise.
        for i in 0..CAPTURED.len() {
            for v in [0x00, 0x3f, 0x40, 0xc0, 0xff] {
                let mut m = CAPTURED.to_vec();
                m[i] = v;
                let _ = parse_message(&m);
            }
        }
        let mut x = 0x1234_5678_9abc_def1u64;
        for len in 0..400 {
            let mut m = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                m.push(x as u8);
            }
            let _ = parse_message(&m);
        }
    }

    #[test]
    fn cname_loops_end_the_chain() {
        let q = build_query(1, "a.test", TYPE_A).unwrap();
        let b = Name::from_text("b.test").unwrap();
        let mut msg = parse_message(&response(&q, 0, 0, &[])).unwrap();
        let a = msg.questions[0].name.clone();
        let rec = |o: &Name, t: &Name| Record {
            name: o.clone(),
            rtype: TYPE_CNAME,
            class: CLASS_IN,
            ttl: 1,
            data: Rdata::Name(t.clone()),
        };
        msg.answers = vec![rec(&a, &b), rec(&b, &a)];
        assert_eq!(msg.chain(&a, TYPE_A).len(), 2);
    }

    #[test]
    fn ids_follow_the_seed() {
        assert_eq!(query_id(1), query_id(1));
        assert_ne!(query_id(1), query_id(2));
    }
}
