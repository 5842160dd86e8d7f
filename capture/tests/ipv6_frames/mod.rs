//! Crafted IPv6 frames (built with etherparse) covering what the kernel captures do
//! not: every extension header, NDP and MLD message kinds, ICMPv6 errors, fragments
//! and odd lengths. Written to `testdata/ipv6_edge_cases.pcap`.

use etherparse::{
    IpNumber, Ipv6FlowLabel, Ipv6FragmentHeader, Ipv6Header, Ipv6RawExtHeader, TcpHeader,
    TcpOptionElement, UdpHeader,
};
use std::net::Ipv6Addr;
use ustack::link::{PcapTimestamps, PcapWriter};
use ustack::time::Instant;

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn a(s: &str) -> Ipv6Addr {
    s.parse().expect("address")
}

/// One extension header: (next-header number of this header, its bytes without the
/// next-header byte filled in).
enum Ext {
    Raw(u8, Vec<u8>),
    Frag { offset: u16, more: bool, ident: u32 },
}

struct Pkt {
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    ext: Vec<Ext>,
    proto: u8,
    upper: Vec<u8>,
    /// Override the payload length field.
    payload_len: Option<u16>,
    /// Cut the frame to this many bytes after the IPv6 header.
    cut: Option<usize>,
}

impl Pkt {
    fn new(src: &str, dst: &str, proto: u8, upper: Vec<u8>) -> Pkt {
        Pkt {
            src: a(src),
            dst: a(dst),
            hop_limit: 64,
            ext: Vec::new(),
            proto,
            upper,
            payload_len: None,
            cut: None,
        }
    }

    fn ext(mut self, e: Ext) -> Pkt {
        self.ext.push(e);
        self
    }

    fn frame(&self) -> Vec<u8> {
        let ext_num = |e: &Ext| match e {
            Ext::Raw(n, _) => *n,
            Ext::Frag { .. } => 44,
        };
        let mut ext_bytes = Vec::new();
        for (i, e) in self.ext.iter().enumerate() {
            let next = self.ext.get(i + 1).map_or(self.proto, ext_num);
            match e {
                Ext::Raw(_, body) => {
                    let h = Ipv6RawExtHeader::new_raw(IpNumber(next), body).expect("ext body");
                    ext_bytes.extend_from_slice(&h.to_bytes());
                }
                Ext::Frag {
                    offset,
                    more,
                    ident,
                } => {
                    let h = Ipv6FragmentHeader::new(
                        IpNumber(next),
                        etherparse::IpFragOffset::try_new(offset / 8).expect("offset"),
                        *more,
                        *ident,
                    );
                    ext_bytes.extend_from_slice(&h.to_bytes());
                }
            }
        }
        let first = self.ext.first().map_or(self.proto, ext_num);
        let len = ext_bytes.len() + self.upper.len();
        let ip = Ipv6Header {
            traffic_class: 0,
            flow_label: Ipv6FlowLabel::ZERO,
            payload_length: self.payload_len.unwrap_or(len as u16),
            next_header: IpNumber(first),
            hop_limit: self.hop_limit,
            source: self.src.octets(),
            destination: self.dst.octets(),
        };
        let mut f = Vec::new();
        f.extend_from_slice(&MAC_B);
        f.extend_from_slice(&MAC_A);
        f.extend_from_slice(&[0x86, 0xdd]);
        f.extend_from_slice(&ip.to_bytes());
        let mut rest = ext_bytes;
        rest.extend_from_slice(&self.upper);
        if let Some(c) = self.cut {
            rest.truncate(c);
        }
        f.extend_from_slice(&rest);
        f
    }
}

/// An ICMPv6 message with a correct checksum: `rest` is the 4 bytes after the checksum
/// followed by the body.
fn icmp6(src: &str, dst: &str, t: u8, code: u8, rest: &[u8]) -> Vec<u8> {
    let mut m = vec![t, code, 0, 0];
    m.extend_from_slice(rest);
    let sum = ustack_capture::decode6::pseudo6(a(src), a(dst), 58, &m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    m
}

fn udp6(src: &str, dst: &str, sp: u16, dp: u16, payload: &[u8]) -> Vec<u8> {
    let h = UdpHeader::with_ipv6_checksum(
        sp,
        dp,
        &Ipv6Header {
            source: a(src).octets(),
            destination: a(dst).octets(),
            ..Ipv6Header::default()
        },
        payload,
    )
    .expect("udp");
    let mut v = h.to_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

fn tcp6(src: &str, dst: &str, syn: bool, payload: &[u8]) -> Vec<u8> {
    let mut h = TcpHeader::new(40000, 5001, 1000, 64800);
    h.syn = syn;
    if !syn {
        h.ack = true;
        h.psh = !payload.is_empty();
        h.acknowledgment_number = 7000;
    }
    h.set_options(&[
        TcpOptionElement::MaximumSegmentSize(1440),
        TcpOptionElement::SelectiveAcknowledgementPermitted,
        TcpOptionElement::Timestamp(1, 0),
        TcpOptionElement::Noop,
        TcpOptionElement::WindowScale(7),
    ])
    .expect("options");
    let ip = Ipv6Header {
        source: a(src).octets(),
        destination: a(dst).octets(),
        ..Ipv6Header::default()
    };
    h.checksum = h.calc_checksum_ipv6(&ip, payload).expect("tcp sum");
    let mut v = h.to_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// A packet quoted by an ICMPv6 error: an IPv6 header plus the start of `upper`.
fn quote(src: &str, dst: &str, proto: u8, upper: &[u8]) -> Vec<u8> {
    let ip = Ipv6Header {
        payload_length: upper.len() as u16,
        next_header: IpNumber(proto),
        hop_limit: 64,
        source: a(src).octets(),
        destination: a(dst).octets(),
        ..Ipv6Header::default()
    };
    let mut v = ip.to_bytes().to_vec();
    v.extend_from_slice(upper);
    v
}

fn opt(t: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![t, ((body.len() + 2) / 8) as u8];
    v.extend_from_slice(body);
    v
}

const G1: &str = "2001:db8::1";
const G2: &str = "2001:db8::2";
const L1: &str = "fe80::1";
const L2: &str = "fe80::2";

/// The crafted frames, in file order.
pub fn frames() -> Vec<Vec<u8>> {
    let slla = opt(1, &MAC_A);
    let tlla = opt(2, &MAC_B);
    let mut prefix = vec![3, 4, 64, 0xc0];
    prefix.extend_from_slice(&86400u32.to_be_bytes());
    prefix.extend_from_slice(&14400u32.to_be_bytes());
    prefix.extend_from_slice(&[0; 4]);
    prefix.extend_from_slice(&a("2001:db8::").octets());
    let mtu_opt = [5, 1, 0, 0, 0, 0, 0x05, 0xdc];
    let udp_q = udp6(G1, G2, 40000, 5009, b"hi");
    let tcp_q = tcp6(G1, G2, true, b"");
    let rtalert = [5u8, 2, 0, 0, 1, 0]; // router alert (MLD), PadN(0)
    let mut p = Vec::new();
    let mut push = |pkt: Pkt| p.push(pkt.frame());

    // Echo.
    let mut echo = vec![0x12, 0x34, 0, 1];
    echo.extend_from_slice(&[0xab; 56]);
    push(Pkt::new(G1, G2, 58, icmp6(G1, G2, 128, 0, &echo)));
    push(Pkt::new(G2, G1, 58, icmp6(G2, G1, 129, 0, &echo)));
    // NDP: DAD probe, NS with SLLA, NA with TLLA, RS, RA, redirect.
    let mut ns = vec![0; 4];
    ns.extend_from_slice(&a(L1).octets());
    push(Pkt::new(
        "::",
        "ff02::1:ff00:1",
        58,
        icmp6("::", "ff02::1:ff00:1", 135, 0, &ns),
    ));
    let mut ns2 = ns.clone();
    ns2.extend_from_slice(&slla);
    push(Pkt::new(
        L2,
        "ff02::1:ff00:1",
        58,
        icmp6(L2, "ff02::1:ff00:1", 135, 0, &ns2),
    ));
    let mut na = vec![0x60, 0, 0, 0];
    na.extend_from_slice(&a(L1).octets());
    na.extend_from_slice(&tlla);
    push(Pkt::new(L1, L2, 58, icmp6(L1, L2, 136, 0, &na)));
    let mut rs = vec![0; 4];
    rs.extend_from_slice(&slla);
    push(Pkt::new(
        L2,
        "ff02::2",
        58,
        icmp6(L2, "ff02::2", 133, 0, &rs),
    ));
    let mut ra = vec![64, 0x08, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    ra.extend_from_slice(&prefix);
    ra.extend_from_slice(&mtu_opt);
    ra.extend_from_slice(&slla);
    push(Pkt::new(
        L1,
        "ff02::1",
        58,
        icmp6(L1, "ff02::1", 134, 0, &ra),
    ));
    let mut rd = vec![0; 4];
    rd.extend_from_slice(&a(L1).octets());
    rd.extend_from_slice(&a("2001:db8::99").octets());
    push(Pkt::new(L1, L2, 58, icmp6(L1, L2, 137, 0, &rd)));
    // MLDv2 report behind a hop-by-hop router alert, as Linux sends it.
    let mut rep = vec![0, 0, 0, 2];
    rep.extend_from_slice(&[4, 0, 0, 0]);
    rep.extend_from_slice(&a("ff02::1:ff00:2").octets());
    rep.extend_from_slice(&[1, 0, 0, 1]);
    rep.extend_from_slice(&a("ff05::fb").octets());
    rep.extend_from_slice(&a(G1).octets());
    push(
        Pkt::new(L2, "ff02::16", 58, icmp6(L2, "ff02::16", 143, 0, &rep))
            .ext(Ext::Raw(0, rtalert.to_vec())),
    );
    // MLDv1 report, MLDv1 query, MLDv2 query with a source, MLD done.
    let mut v1 = vec![0, 0, 0, 0];
    v1.extend_from_slice(&a("ff02::fb").octets());
    push(
        Pkt::new(L2, "ff02::fb", 58, icmp6(L2, "ff02::fb", 131, 0, &v1))
            .ext(Ext::Raw(0, rtalert.to_vec())),
    );
    let mut q1 = vec![0x27, 0x10, 0, 0];
    q1.extend_from_slice(&[0; 16]);
    push(
        Pkt::new(L1, "ff02::1", 58, icmp6(L1, "ff02::1", 130, 0, &q1))
            .ext(Ext::Raw(0, rtalert.to_vec())),
    );
    let mut q2 = q1.clone();
    q2.extend_from_slice(&[2, 125, 0, 1]);
    q2.extend_from_slice(&a(G1).octets());
    push(
        Pkt::new(L1, "ff02::1", 58, icmp6(L1, "ff02::1", 130, 0, &q2))
            .ext(Ext::Raw(0, rtalert.to_vec())),
    );
    push(
        Pkt::new(L2, "ff02::2", 58, icmp6(L2, "ff02::2", 132, 0, &v1))
            .ext(Ext::Raw(0, rtalert.to_vec())),
    );
    // Errors: unreachable (every code tcpdump names, and one it does not), packet too
    // big, time exceeded, parameter problem.
    for code in 0..=5u8 {
        let mut e = vec![0; 4];
        e.extend_from_slice(&quote(G1, G2, 17, &udp_q));
        push(Pkt::new(G2, G1, 58, icmp6(G2, G1, 1, code, &e)));
    }
    let mut e = vec![0; 4];
    e.extend_from_slice(&quote(G1, G2, 6, &tcp_q[..8]));
    push(Pkt::new(G2, G1, 58, icmp6(G2, G1, 1, 4, &e)));
    let mut ptb = 1280u32.to_be_bytes().to_vec();
    ptb.extend_from_slice(&quote(G1, G2, 6, &tcp_q));
    push(Pkt::new(G2, G1, 58, icmp6(G2, G1, 2, 0, &ptb)));
    for code in 0..=2u8 {
        let mut e = vec![0; 4];
        e.extend_from_slice(&quote(G1, G2, 17, &udp_q));
        push(Pkt::new(G2, G1, 58, icmp6(G2, G1, 3, code, &e)));
    }
    for code in 0..=4u8 {
        let mut e = 40u32.to_be_bytes().to_vec();
        e.extend_from_slice(&quote(G1, G2, 17, &udp_q));
        push(Pkt::new(G2, G1, 58, icmp6(G2, G1, 4, code, &e)));
    }
    // Unknown ICMPv6 type: tcpdump dumps it in hex.
    push(Pkt::new(
        G1,
        G2,
        58,
        icmp6(G1, G2, 250, 0, &[1, 2, 3, 4, 5, 6, 7, 8, 9]),
    ));
    // Home-agent discovery request (an id).
    push(Pkt::new(
        G1,
        G2,
        58,
        icmp6(G1, G2, 144, 0, &[0xbe, 0xef, 0, 0]),
    ));
    // Transport.
    push(Pkt::new(G1, G2, 17, udp6(G1, G2, 40000, 5002, b"hello")));
    push(Pkt::new(G1, G2, 6, tcp6(G1, G2, true, b"")));
    push(Pkt::new(G1, G2, 6, tcp6(G1, G2, false, b"abcdef")));
    // Extension-header chains.
    push(
        Pkt::new(G1, G2, 17, udp6(G1, G2, 40000, 5002, b"x"))
            .ext(Ext::Raw(60, vec![1, 4, 0, 0, 0, 0])),
    );
    let mut rt0 = vec![0, 1, 0, 0, 0, 0];
    rt0.extend_from_slice(&a("2001:db8::7").octets());
    rt0.extend_from_slice(&a(G2).octets());
    push(
        Pkt::new(G1, G2, 17, udp6(G1, G2, 40000, 5002, b"x"))
            .ext(Ext::Raw(0, vec![1, 4, 0, 0, 0, 0]))
            .ext(Ext::Raw(60, vec![1, 4, 0, 0, 0, 0]))
            .ext(Ext::Raw(43, rt0.clone())),
    );
    let mut rt2 = vec![2, 1, 0, 0, 0, 0];
    rt2.extend_from_slice(&a("2001:db8::8").octets());
    push(Pkt::new(G1, G2, 58, icmp6(G1, G2, 128, 0, &echo[..8])).ext(Ext::Raw(43, rt2)));
    let mut srh = vec![4, 2, 1, 0, 0, 0x12];
    srh.extend_from_slice(&a("2001:db8::9").octets());
    srh.extend_from_slice(&a(G2).octets());
    push(Pkt::new(G1, G2, 59, Vec::new()).ext(Ext::Raw(43, srh)));
    push(Pkt::new(G1, G2, 59, Vec::new()).ext(Ext::Raw(43, vec![3, 0, 0, 0, 0, 0])));
    // Fragments: an echo in two, a UDP datagram's first fragment, and a TCP segment
    // behind a fragment header.
    let mut big = vec![0x12, 0x34, 0, 2];
    big.extend_from_slice(&[0x5a; 100]);
    let whole = icmp6(G1, G2, 128, 0, &big);
    push(Pkt::new(G1, G2, 58, whole[..64].to_vec()).ext(Ext::Frag {
        offset: 0,
        more: true,
        ident: 0x1234,
    }));
    push(Pkt::new(G1, G2, 58, whole[64..].to_vec()).ext(Ext::Frag {
        offset: 64,
        more: false,
        ident: 0x1234,
    }));
    let u = udp6(G1, G2, 40000, 5003, &[7; 40]);
    push(Pkt::new(G1, G2, 17, u[..24].to_vec()).ext(Ext::Frag {
        offset: 0,
        more: true,
        ident: 9,
    }));
    push(
        Pkt::new(G1, G2, 6, tcp6(G1, G2, false, b"z")).ext(Ext::Frag {
            offset: 0,
            more: false,
            ident: 10,
        }),
    );
    // Misplaced and malformed headers.
    push(
        Pkt::new(G1, G2, 17, udp6(G1, G2, 40000, 5002, b"x"))
            .ext(Ext::Raw(60, vec![1, 4, 0, 0, 0, 0]))
            .ext(Ext::Raw(0, vec![1, 4, 0, 0, 0, 0])),
    );
    push(
        Pkt::new(G1, G2, 17, udp6(G1, G2, 40000, 5002, b"x"))
            .ext(Ext::Raw(0, vec![5, 3, 0, 0, 0, 0])),
    );
    let mut zero = Pkt::new(G1, G2, 17, udp6(G1, G2, 40000, 5002, b"x"))
        .ext(Ext::Raw(0, vec![1, 4, 0, 0, 0, 0]));
    zero.payload_len = Some(0);
    push(zero);
    let mut nolen = Pkt::new(G1, G2, 58, Vec::new());
    nolen.payload_len = Some(0);
    push(nolen);
    push(Pkt::new(G1, G2, 253, vec![1, 2, 3, 4, 5]));
    push(Pkt::new(G1, G2, 59, Vec::new()));
    let mut short = Pkt::new(G1, G2, 17, udp6(G1, G2, 40000, 5002, b"truncated"));
    short.cut = Some(10);
    push(short);
    // ICMPv6 messages shorter than their 8-byte header (the payload length agrees).
    let cut_icmp = |t: u8, code: u8, n: usize| {
        let m = icmp6(G1, G2, t, code, &[0x12, 0x34, 0x56, 0x78]);
        Pkt::new(G1, G2, 58, m[..n].to_vec())
    };
    for (t, code, n) in [
        (128, 0, 6),
        (133, 0, 4),
        (143, 0, 6),
        (1, 4, 4),
        (1, 6, 5),
        (2, 0, 6),
        (3, 1, 4),
        (130, 0, 4),
        (131, 0, 4),
        (144, 0, 6),
        (250, 0, 5),
        (128, 0, 1),
    ] {
        push(cut_icmp(t, code, n));
    }
    // An echo request of which not a byte made it into the frame.
    let mut gone = Pkt::new(G1, G2, 58, icmp6(G1, G2, 128, 0, &echo));
    gone.cut = Some(0);
    push(gone);
    p
}

/// The frames as a classic pcap (µs), one millisecond apart.
pub fn pcap() -> Vec<u8> {
    let (link, _peer) = ustack::link::MemoryLink::pair(1);
    let mut w = PcapWriter::new(
        link,
        Vec::new(),
        1_700_000_000_000_000,
        PcapTimestamps::Micros,
    )
    .expect("pcap header");
    for (i, f) in frames().iter().enumerate() {
        w.record(Instant::from_micros(i as i64 * 1000), f)
            .expect("record");
    }
    w.into_parts().1
}
