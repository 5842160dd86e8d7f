//! ICMP for IPv4 (RFC 792): echo, destination unreachable, time exceeded.

use super::{checksum, Error};

/// Length of the fixed ICMP header (type, code, checksum, 4 bytes of rest-of-header).
pub const ICMP_HEADER_LEN: usize = 8;

/// Destination unreachable code: protocol unreachable.
pub const DST_UNREACHABLE_PROTOCOL: u8 = 2;
/// Destination unreachable code: port unreachable.
pub const DST_UNREACHABLE_PORT: u8 = 3;

const TYPE_ECHO_REPLY: u8 = 0;
const TYPE_DST_UNREACHABLE: u8 = 3;
const TYPE_ECHO_REQUEST: u8 = 8;
const TYPE_TIME_EXCEEDED: u8 = 11;

/// A decoded ICMP message. `data` borrows from the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpRepr<'a> {
    /// Echo request (type 8).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Opaque payload, echoed back verbatim.
        data: &'a [u8],
    },
    /// Echo reply (type 0).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Payload of the request.
        data: &'a [u8],
    },
    /// Destination unreachable (type 3).
    DstUnreachable {
        /// Why (2 protocol, 3 port, 4 fragmentation needed, ...).
        code: u8,
        /// Next-hop MTU for code 4 (RFC 1191), zero otherwise.
        next_hop_mtu: u16,
        /// The offending datagram's IP header and at least 8 bytes of its payload.
        data: &'a [u8],
    },
    /// Time exceeded (type 11).
    TimeExceeded {
        /// 0 TTL exceeded in transit, 1 fragment reassembly time exceeded.
        code: u8,
        /// The offending datagram's IP header and leading payload.
        data: &'a [u8],
    },
    /// Any other type, kept raw.
    Other {
        /// ICMP type.
        msg_type: u8,
        /// ICMP code.
        code: u8,
        /// The 4 bytes after the checksum.
        rest: [u8; 4],
        /// Everything after the header.
        data: &'a [u8],
    },
}

impl<'a> IcmpRepr<'a> {
    /// Parses an ICMP message (the whole IP payload), verifying its checksum.
    ///
    /// # Errors
    /// `Truncated` if shorter than a header, `Checksum` if the checksum is wrong.
    pub fn parse(msg: &'a [u8]) -> Result<IcmpRepr<'a>, Error> {
        if msg.len() < ICMP_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if checksum::of(msg) != 0 {
            return Err(Error::Checksum);
        }
        // etherparse's Icmpv4Slice validates the per-type fixed lengths; we only need the
        // generic header split here, so read the four bytes ourselves once checked.
        let slice = etherparse::Icmpv4Slice::from_slice(msg).map_err(|_| Error::Truncated)?;
        let rest = slice.bytes5to8();
        let data = &msg[ICMP_HEADER_LEN..];
        let (t, code) = (slice.type_u8(), slice.code_u8());
        let ident = u16::from_be_bytes([rest[0], rest[1]]);
        let seq_no = u16::from_be_bytes([rest[2], rest[3]]);
        Ok(match (t, code) {
            (TYPE_ECHO_REQUEST, 0) => IcmpRepr::EchoRequest {
                ident,
                seq_no,
                data,
            },
            (TYPE_ECHO_REPLY, 0) => IcmpRepr::EchoReply {
                ident,
                seq_no,
                data,
            },
            (TYPE_DST_UNREACHABLE, code) => IcmpRepr::DstUnreachable {
                code,
                next_hop_mtu: u16::from_be_bytes([rest[2], rest[3]]),
                data,
            },
            (TYPE_TIME_EXCEEDED, code) => IcmpRepr::TimeExceeded { code, data },
            (msg_type, code) => IcmpRepr::Other {
                msg_type,
                code,
                rest,
                data,
            },
        })
    }

    /// The payload after the 8-byte header.
    pub fn data(&self) -> &'a [u8] {
        match *self {
            IcmpRepr::EchoRequest { data, .. }
            | IcmpRepr::EchoReply { data, .. }
            | IcmpRepr::DstUnreachable { data, .. }
            | IcmpRepr::TimeExceeded { data, .. }
            | IcmpRepr::Other { data, .. } => data,
        }
    }

    /// True for error messages (which must never be answered with an ICMP error, RFC 1122 §3.2.2).
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            IcmpRepr::DstUnreachable { .. } | IcmpRepr::TimeExceeded { .. }
        ) || matches!(self, IcmpRepr::Other { msg_type, .. } if matches!(*msg_type, 4 | 5 | 12))
    }

    /// Bytes the message takes on the wire.
    pub fn buffer_len(&self) -> usize {
        ICMP_HEADER_LEN + self.data().len()
    }

    /// Writes the message, data and checksum included, into `buf[..buffer_len()]`.
    pub fn emit(&self, buf: &mut [u8]) {
        let (t, code, rest) = match *self {
            IcmpRepr::EchoRequest { ident, seq_no, .. } => {
                (TYPE_ECHO_REQUEST, 0, join(ident, seq_no))
            }
            IcmpRepr::EchoReply { ident, seq_no, .. } => (TYPE_ECHO_REPLY, 0, join(ident, seq_no)),
            IcmpRepr::DstUnreachable {
                code, next_hop_mtu, ..
            } => (TYPE_DST_UNREACHABLE, code, join(0, next_hop_mtu)),
            IcmpRepr::TimeExceeded { code, .. } => (TYPE_TIME_EXCEEDED, code, [0; 4]),
            IcmpRepr::Other {
                msg_type,
                code,
                rest,
                ..
            } => (msg_type, code, rest),
        };
        let data = self.data();
        let buf = &mut buf[..ICMP_HEADER_LEN + data.len()];
        buf[0] = t;
        buf[1] = code;
        buf[2] = 0;
        buf[3] = 0;
        buf[4..8].copy_from_slice(&rest);
        buf[ICMP_HEADER_LEN..].copy_from_slice(data);
        let sum = checksum::of(buf);
        buf[2..4].copy_from_slice(&sum.to_be_bytes());
    }
}

fn join(a: u16, b: u16) -> [u8; 4] {
    let (a, b) = (a.to_be_bytes(), b.to_be_bytes());
    [a[0], a[1], b[0], b[1]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{testdata, EthernetRepr, Ipv4Repr};

    fn icmp(frame: &[u8]) -> &[u8] {
        let (_, ip) = EthernetRepr::parse(frame).unwrap();
        Ipv4Repr::parse(ip).unwrap().1
    }

    #[test]
    fn echo_request_to_reply_matches_capture() {
        let repr = IcmpRepr::parse(icmp(testdata::ECHO_REQUEST)).unwrap();
        let IcmpRepr::EchoRequest {
            ident,
            seq_no,
            data,
        } = repr
        else {
            panic!("not an echo request: {repr:?}")
        };
        assert_eq!((ident, seq_no, data.len()), (5435, 1, 24));
        assert!(data[16..].iter().all(|&b| b == 0x55));
        let reply = IcmpRepr::EchoReply {
            ident,
            seq_no,
            data,
        };
        let mut buf = vec![0u8; reply.buffer_len()];
        reply.emit(&mut buf);
        assert_eq!(&buf[..], icmp(testdata::ECHO_REPLY));
    }

    #[test]
    fn port_unreachable_round_trips() {
        let msg = icmp(testdata::ICMP_PORT_UNREACHABLE);
        let repr = IcmpRepr::parse(msg).unwrap();
        assert!(matches!(
            repr,
            IcmpRepr::DstUnreachable {
                code: DST_UNREACHABLE_PORT,
                ..
            }
        ));
        assert!(repr.is_error());
        let (quoted, _) = Ipv4Repr::parse(repr.data()).unwrap();
        assert_eq!(quoted.dst_addr, testdata::PEER_IP);
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut buf);
        assert_eq!(&buf[..], msg);
    }

    #[test]
    fn bad_checksum_and_truncation() {
        let mut msg = icmp(testdata::ECHO_REQUEST).to_vec();
        msg[9] ^= 1;
        assert_eq!(IcmpRepr::parse(&msg), Err(Error::Checksum));
        assert_eq!(IcmpRepr::parse(&msg[..7]), Err(Error::Truncated));
    }
}
