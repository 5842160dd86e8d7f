//! Printers for decoded frames: tcpdump-style one-liners and the `-v` layer tree.
//! They build strings; the `dump` command decides where they go.

use crate::analysis::TcpInfo;
use crate::decode::{Frame, Icmp, Ipv4, Tcp, TcpOption};
use core::fmt::Write;

/// How to show capture times.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeStyle {
    /// Local time of day, as tcpdump does (`TZ` is honoured).
    #[default]
    Local,
    /// UTC time of day.
    Utc,
}

/// `HH:MM:SS.uuuuuu` for a timestamp in ns since the epoch (microseconds truncated, as
/// tcpdump prints them).
pub fn clock(ts_ns: i128, style: TimeStyle) -> String {
    let secs = ts_ns.div_euclid(1_000_000_000) as i64;
    let micros = ts_ns.rem_euclid(1_000_000_000) / 1000;
    let (h, m, s) = match style {
        TimeStyle::Local => local_hms(secs).unwrap_or_else(|| utc_hms(secs)),
        TimeStyle::Utc => utc_hms(secs),
    };
    format!("{h:02}:{m:02}:{s:02}.{micros:06}")
}

fn utc_hms(secs: i64) -> (i64, i64, i64) {
    let d = secs.rem_euclid(86_400);
    (d / 3600, d / 60 % 60, d % 60)
}

fn local_hms(secs: i64) -> Option<(i64, i64, i64)> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: localtime_r only reads `t` and writes the `tm` we own; a null return
    // means failure and leaves nothing to free.
    let mut tm: libc::tm = unsafe { core::mem::zeroed() };
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        return None;
    }
    Some((
        i64::from(tm.tm_hour),
        i64::from(tm.tm_min),
        i64::from(tm.tm_sec),
    ))
}

/// tcpdump's flag letters, in its order: `F S R P . U E W` (AE as `e`), `none` if empty.
pub fn tcp_flags(flags: u16) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (0x01, 'F'),
        (0x02, 'S'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x10, '.'),
        (0x20, 'U'),
        (0x40, 'E'),
        (0x80, 'W'),
        (0x100, 'e'),
    ] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    if s.is_empty() {
        s.push_str("none");
    }
    s
}

fn ethertype_name(t: u16) -> &'static str {
    match t {
        0x0800 => "IPv4",
        0x0806 => "ARP",
        0x86dd => "IPv6",
        0x8100 => "802.1Q",
        0x88cc => "LLDP",
        _ => "Unknown",
    }
}

fn proto_name(p: u8) -> Option<&'static str> {
    match p {
        1 => Some("ICMP"),
        6 => Some("TCP"),
        17 => Some("UDP"),
        58 => Some("ICMPv6"),
        _ => None,
    }
}

/// tcpdump's rendering of one option (`mss 1460`, `sackOK`, `TS val 1 ecr 0`, ...);
/// `sack` holds the blocks to print for a SACK option (possibly relative).
fn tcp_option(o: &TcpOption, sack: &[(u32, u32)]) -> String {
    match o {
        TcpOption::Eol => "eol".into(),
        TcpOption::Nop => "nop".into(),
        TcpOption::Mss { value } => format!("mss {value}"),
        TcpOption::WindowScale { shift } => format!("wscale {shift}"),
        TcpOption::SackPermitted => "sackOK".into(),
        TcpOption::Sack { blocks } => {
            let mut s = format!("sack {} ", blocks.len());
            let shown = if sack.len() == blocks.len() {
                sack
            } else {
                blocks
            };
            for (l, r) in shown {
                let _ = write!(s, "{{{l}:{r}}}");
            }
            s
        }
        TcpOption::Timestamp { val, ecr } => format!("TS val {val} ecr {ecr}"),
        TcpOption::Unknown { kind: 34, data } if data.is_empty() => "tfo  cookiereq".into(),
        TcpOption::Unknown { kind: 34, data } => {
            let mut s = String::from("tfo  cookie ");
            for b in data {
                let _ = write!(s, "{b:02x}");
            }
            s
        }
        TcpOption::Unknown { kind, data } => {
            let mut s = format!("opt-{kind}:");
            for b in data {
                let _ = write!(s, "{b:02x}");
            }
            s
        }
    }
}

/// The options list as tcpdump prints it inside `options [...]`.
pub fn tcp_options(t: &Tcp, sack: &[(u32, u32)]) -> String {
    let mut parts: Vec<String> = t.options.iter().map(|o| tcp_option(o, sack)).collect();
    if t.options_malformed {
        parts.push("[bad opt]".into());
    }
    parts.join(",")
}

/// One tcpdump-style line (`tcpdump -nn`), without the trailing newline.
pub fn one_line(f: &Frame, info: Option<&TcpInfo>, time: TimeStyle) -> String {
    let mut s = clock(f.timestamp_ns, time);
    s.push(' ');
    s.push_str(&one_line_body(f, info));
    s
}

pub(crate) fn malformed_tag(f: &Frame) -> String {
    match &f.malformed {
        Some(m) => format!("[malformed {}: {}]", m.layer, m.reason),
        None => String::new(),
    }
}

fn one_line_body(f: &Frame, info: Option<&TcpInfo>) -> String {
    if let Some(a) = &f.arp {
        return match a.operation {
            1 => {
                let tha = if a.target_mac.0 != [0; 6] {
                    format!(" ({})", a.target_mac)
                } else {
                    String::new()
                };
                format!(
                    "ARP, Request who-has {}{tha} tell {}, length {}",
                    a.target_ip, a.sender_ip, a.len
                )
            }
            2 => format!(
                "ARP, Reply {} is-at {}, length {}",
                a.sender_ip, a.sender_mac, a.len
            ),
            3 => format!(
                "ARP, Reverse Request who-is {} tell {}, length {}",
                a.target_mac, a.sender_mac, a.len
            ),
            4 => format!(
                "ARP, Reverse Reply {} at {}, length {}",
                a.target_mac, a.target_ip, a.len
            ),
            op => format!("ARP, Unknown ({op}), length {}", a.len),
        };
    }
    if let Some(ip) = &f.ipv6 {
        return crate::fmt6::one_line6(f, ip, info);
    }
    let Some(ip) = &f.ipv4 else {
        if let Some(m) = &f.malformed {
            let what = match m.layer {
                "ipv4" => "IP ",
                "ipv6" => "IP6 ",
                "arp" => "ARP, ",
                _ => "",
            };
            return format!("{what}{}", malformed_tag(f));
        }
        let (ethertype, len) = match (&f.ethernet, &f.sll) {
            (Some(e), _) => (e.ethertype, f.captured_len.saturating_sub(14)),
            (_, Some(s)) => (s.protocol, f.captured_len),
            _ => (0, f.captured_len),
        };
        return format!(
            "ethertype {} (0x{ethertype:04x}), length {len}",
            ethertype_name(ethertype)
        );
    };
    let mut s = String::from("IP ");
    if let Some(t) = &f.tcp {
        let _ = write!(
            s,
            "{}.{} > {}.{}: {}",
            ip.src,
            t.src_port,
            ip.dst,
            t.dst_port,
            tcp_body(t, info)
        );
    } else if let Some(u) = &f.udp {
        let _ = write!(
            s,
            "{}.{} > {}.{}: UDP, ",
            ip.src, u.src_port, ip.dst, u.dst_port
        );
        if usize::from(u.length) > ip.payload_len || u.length < 8 {
            // tcpdump's wording; the frame still counts as malformed.
            let _ = write!(
                s,
                "bad length {} > {}",
                u.payload_len,
                ip.payload_len.saturating_sub(8)
            );
            return s;
        }
        let _ = write!(s, "length {}", u.payload_len);
    } else if let Some(m) = &f.icmp {
        let _ = write!(s, "{} > {}: ICMP {}", ip.src, ip.dst, icmp_body(m, ip));
    } else if ip.frag_offset != 0 {
        let _ = write!(s, "{} > {}: ip-proto-{}", ip.src, ip.dst, ip.protocol);
    } else if f.malformed.is_some() {
        let _ = write!(s, "{} > {}: {}", ip.src, ip.dst, malformed_tag(f));
        return s;
    } else {
        let _ = write!(
            s,
            "{} > {}:  ip-proto-{} {}",
            ip.src, ip.dst, ip.protocol, ip.payload_len
        );
    }
    if f.malformed.is_some() {
        s.push(' ');
        s.push_str(&malformed_tag(f));
    }
    s
}

pub(crate) fn tcp_body(t: &Tcp, info: Option<&TcpInfo>) -> String {
    let (seq, ack, sack) = match info {
        Some(i) => (i.seq, i.ack, &i.sack[..]),
        None => (t.seq, t.ack, t.sack_blocks()),
    };
    let mut s = format!("Flags [{}]", tcp_flags(t.flags));
    if t.payload_len > 0 || t.flags & 0x07 != 0 {
        let _ = write!(s, ", seq {seq}");
        if t.payload_len > 0 {
            let _ = write!(s, ":{}", seq.wrapping_add(t.payload_len as u32));
        }
    }
    if t.ack_flag() {
        let _ = write!(s, ", ack {ack}");
    }
    let _ = write!(s, ", win {}", t.window);
    if t.flags & 0x20 != 0 {
        let _ = write!(s, ", urg {}", t.urgent_ptr);
    }
    if !t.options.is_empty() || t.options_malformed {
        let _ = write!(s, ", options [{}]", tcp_options(t, sack));
    }
    let _ = write!(s, ", length {}", t.payload_len);
    s
}

fn icmp_body(m: &Icmp, ip: &Ipv4) -> String {
    let len = if ip.more_frags { ip.payload_len } else { m.len };
    let q = m.quoted.as_ref();
    let qdst = q.map_or_else(|| "?".to_string(), |q| q.dst.to_string());
    let what = match (m.icmp_type, m.code) {
        (0 | 8, _) => format!(
            "echo {}, id {}, seq {}",
            if m.icmp_type == 8 { "request" } else { "reply" },
            m.ident.unwrap_or(0),
            m.seq.unwrap_or(0)
        ),
        (3, 0) => format!("net {qdst} unreachable"),
        (3, 1) => format!("host {qdst} unreachable"),
        (3, 2) => format!(
            "{qdst} protocol {} unreachable",
            q.map_or(0, |q| q.protocol)
        ),
        (3, 3) => match q {
            Some(q) if matches!(q.protocol, 6 | 17) => format!(
                "{qdst} {} port {} unreachable",
                if q.protocol == 6 { "tcp" } else { "udp" },
                q.dst_port.map_or_else(|| "?".into(), |p| p.to_string())
            ),
            Some(q) => format!("{qdst} protocol {} port unreachable", q.protocol),
            None => format!("{qdst} port unreachable"),
        },
        (3, 4) => format!(
            "{qdst} unreachable - need to frag (mtu {})",
            m.next_hop_mtu.unwrap_or(0)
        ),
        (3, c) => format!("{qdst} unreachable - code {c}"),
        (13 | 14, _) => format!(
            "time stamp {} id {} seq {}",
            if m.icmp_type == 13 { "query" } else { "reply" },
            m.ident.unwrap_or(0),
            m.seq.unwrap_or(0)
        ),
        (11, 0) => "time exceeded in-transit".into(),
        (11, 1) => "ip reassembly time exceeded".into(),
        (t, c) => format!("type-#{t} code {c}"),
    };
    format!("{what}, length {len}")
}

fn check(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "correct",
        Some(false) => "incorrect",
        None => "not verified",
    }
}

/// The `-v` tree: one block per layer, every field, checksums verified.
pub fn tree(f: &Frame, info: Option<&TcpInfo>, time: TimeStyle) -> String {
    let mut s = String::new();
    let dir = match f.direction {
        Some(ustack::link::Direction::Rx) => ", inbound",
        Some(ustack::link::Direction::Tx) => ", outbound",
        None => "",
    };
    let _ = writeln!(
        s,
        "Frame {}: {}, {} bytes captured, {} on wire{dir}",
        f.number,
        clock(f.timestamp_ns, time),
        f.captured_len,
        f.wire_len
    );
    if let Some(e) = &f.ethernet {
        let _ = writeln!(s, "  Ethernet");
        let _ = writeln!(s, "    src: {}", e.src);
        let _ = writeln!(s, "    dst: {}", e.dst);
        let _ = writeln!(
            s,
            "    type: 0x{:04x} ({})",
            e.ethertype,
            ethertype_name(e.ethertype)
        );
    }
    if let Some(l) = &f.sll {
        let _ = writeln!(s, "  Linux cooked capture");
        let _ = writeln!(s, "    packet type: {}", l.packet_type);
        let _ = writeln!(
            s,
            "    protocol: 0x{:04x} ({})",
            l.protocol,
            ethertype_name(l.protocol)
        );
    }
    if let Some(a) = &f.arp {
        let op = match a.operation {
            1 => "request",
            2 => "reply",
            _ => "unknown",
        };
        let _ = writeln!(s, "  ARP");
        let _ = writeln!(s, "    hardware type: {}", a.hardware_type);
        let _ = writeln!(s, "    protocol type: 0x{:04x}", a.protocol_type);
        let _ = writeln!(s, "    operation: {} ({op})", a.operation);
        let _ = writeln!(s, "    sender: {} {}", a.sender_mac, a.sender_ip);
        let _ = writeln!(s, "    target: {} {}", a.target_mac, a.target_ip);
    }
    if let Some(ip) = &f.ipv4 {
        ipv4_tree(&mut s, ip);
    }
    if let Some(ip) = &f.ipv6 {
        crate::fmt6::ipv6_tree(&mut s, ip);
    }
    transport_tree(&mut s, f, info);
    if let Some(m) = &f.malformed {
        let _ = writeln!(s, "  [malformed {}: {}]", m.layer, m.reason);
    }
    s
}

fn ipv4_tree(s: &mut String, ip: &Ipv4) {
    let mut flags = Vec::new();
    if ip.reserved_flag {
        flags.push("reserved");
    }
    if ip.dont_frag {
        flags.push("DF");
    }
    if ip.more_frags {
        flags.push("MF");
    }
    let _ = writeln!(s, "  IPv4");
    let _ = writeln!(s, "    version: {}", ip.version);
    let _ = writeln!(
        s,
        "    header length: {} ({} option bytes)",
        ip.header_len, ip.options_len
    );
    let _ = writeln!(
        s,
        "    tos: 0x{:02x} (dscp {}, ecn {})",
        ip.tos,
        ip.tos >> 2,
        ip.tos & 3
    );
    let _ = writeln!(s, "    total length: {}", ip.total_len);
    let _ = writeln!(s, "    id: {}", ip.ident);
    let _ = writeln!(
        s,
        "    flags: [{}]",
        if flags.is_empty() {
            "none".to_string()
        } else {
            flags.join(", ")
        }
    );
    let _ = writeln!(s, "    fragment offset: {}", ip.frag_offset);
    if ip.is_fragment() {
        let _ = writeln!(
            s,
            "    fragment: bytes {}..{} of datagram {}{}",
            ip.frag_offset,
            usize::from(ip.frag_offset) + ip.payload_len,
            ip.ident,
            if ip.more_frags { "" } else { " (last)" }
        );
    }
    let _ = writeln!(s, "    ttl: {}", ip.ttl);
    let _ = writeln!(
        s,
        "    protocol: {} ({})",
        ip.protocol,
        proto_name(ip.protocol).unwrap_or("unknown")
    );
    let _ = writeln!(
        s,
        "    checksum: 0x{:04x} ({})",
        ip.checksum,
        check(Some(ip.checksum_ok))
    );
    let _ = writeln!(s, "    src: {}", ip.src);
    let _ = writeln!(s, "    dst: {}", ip.dst);
}

/// The transport blocks of the tree (also used for reassembled datagrams).
pub fn transport_tree(s: &mut String, f: &Frame, info: Option<&TcpInfo>) {
    if let Some(m) = &f.icmpv6 {
        crate::fmt6::icmpv6_tree(s, m);
    }
    if let Some(m) = &f.icmp {
        let _ = writeln!(s, "  ICMP");
        let _ = writeln!(s, "    type: {}", m.icmp_type);
        let _ = writeln!(s, "    code: {}", m.code);
        let _ = writeln!(
            s,
            "    checksum: 0x{:04x} ({})",
            m.checksum,
            check(m.checksum_ok)
        );
        if let (Some(id), Some(seq)) = (m.ident, m.seq) {
            let _ = writeln!(s, "    id: {id}");
            let _ = writeln!(s, "    seq: {seq}");
        }
        if let Some(mtu) = m.next_hop_mtu {
            let _ = writeln!(s, "    next-hop mtu: {mtu}");
        }
        if let Some(q) = &m.quoted {
            let proto = proto_name(q.protocol).unwrap_or("proto");
            match (q.src_port, q.dst_port) {
                (Some(sp), Some(dp)) => {
                    let _ = writeln!(s, "    quoted: {proto} {}.{sp} > {}.{dp}", q.src, q.dst);
                }
                _ => {
                    let _ = writeln!(s, "    quoted: {proto} {} > {}", q.src, q.dst);
                }
            }
        }
        let _ = writeln!(s, "    length: {}", m.len);
    }
    if let Some(u) = &f.udp {
        let _ = writeln!(s, "  UDP");
        let _ = writeln!(s, "    src port: {}", u.src_port);
        let _ = writeln!(s, "    dst port: {}", u.dst_port);
        let _ = writeln!(s, "    length: {}", u.length);
        let sum = if u.checksum == 0 {
            "none".to_string()
        } else {
            check(u.checksum_ok).to_string()
        };
        let _ = writeln!(s, "    checksum: 0x{:04x} ({sum})", u.checksum);
        let _ = writeln!(s, "    payload: {} bytes", u.payload_len);
    }
    if let Some(t) = &f.tcp {
        let _ = writeln!(s, "  TCP");
        let _ = writeln!(s, "    src port: {}", t.src_port);
        let _ = writeln!(s, "    dst port: {}", t.dst_port);
        match info {
            Some(i) => {
                let _ = writeln!(s, "    seq: {} (absolute {})", i.rel_seq, t.seq);
            }
            None => {
                let _ = writeln!(s, "    seq: {}", t.seq);
            }
        }
        match info {
            _ if !t.ack_flag() => {
                let _ = writeln!(s, "    ack: {} (ACK flag not set)", t.ack);
            }
            Some(i) => {
                let _ = writeln!(s, "    ack: {} (absolute {})", i.rel_ack, t.ack);
            }
            None => {
                let _ = writeln!(s, "    ack: {}", t.ack);
            }
        }
        let _ = writeln!(s, "    header length: {}", t.header_len);
        let _ = writeln!(s, "    flags: 0x{:03x} [{}]", t.flags, tcp_flags(t.flags));
        match info {
            Some(i) if i.window != u32::from(t.window) => {
                let _ = writeln!(s, "    window: {} (scaled {})", t.window, i.window);
            }
            _ => {
                let _ = writeln!(s, "    window: {}", t.window);
            }
        }
        let _ = writeln!(
            s,
            "    checksum: 0x{:04x} ({})",
            t.checksum,
            check(t.checksum_ok)
        );
        let _ = writeln!(s, "    urgent pointer: {}", t.urgent_ptr);
        if !t.options.is_empty() || t.options_malformed {
            let sack = info.map_or(t.sack_blocks(), |i| &i.rel_sack[..]);
            let _ = writeln!(s, "    options: [{}]", tcp_options(t, sack));
        }
        let _ = writeln!(s, "    payload: {} bytes", t.payload_len);
        if let Some(i) = info {
            let _ = writeln!(
                s,
                "    connection: {} ({}){}",
                i.conn,
                if i.from_client {
                    "client to server"
                } else {
                    "server to client"
                },
                if i.retransmission {
                    ", retransmission"
                } else {
                    ""
                }
            );
        }
    }
}
