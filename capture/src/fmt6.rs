//! Printers for IPv6 frames: the tcpdump-style one-liner (`tcpdump -nn`, default
//! verbosity, tcpdump 4.99's wording and order: `IP6 src > dst: HBH ICMP6, ...`) and
//! the `-v` tree blocks for the IPv6 header, its extension headers and ICMPv6 with NDP
//! options and MLDv2 records.

use crate::analysis::TcpInfo;
use crate::decode::Frame;
use crate::decode6::{Icmpv6, Icmpv6Body, Ipv6, Ipv6Ext, NdpOption};
use crate::dump_fmt;
use core::fmt::Write;

/// tcpdump's name of an ICMPv6 type (`icmp6_type_values`).
pub fn icmp6_type_name(t: u8) -> Option<&'static str> {
    Some(match t {
        1 => "destination unreachable",
        2 => "packet too big",
        3 => "time exceeded in-transit",
        4 => "parameter problem",
        128 => "echo request",
        129 => "echo reply",
        130 => "multicast listener query",
        131 => "multicast listener report",
        132 => "multicast listener done",
        133 => "router solicitation",
        134 => "router advertisement",
        135 => "neighbor solicitation",
        136 => "neighbor advertisement",
        137 => "redirect",
        138 => "router renumbering",
        139 => "who-are-you request",
        140 => "who-are-you reply",
        141 => "inverse neighbor solicitation",
        142 => "inverse neighbor advertisement",
        143 => "multicast listener report v2",
        144 => "ha discovery request",
        145 => "ha discovery reply",
        146 => "mobile router solicitation",
        147 => "mobile router advertisement",
        155 => "RPL",
        200 => "mtrace message",
        201 => "mtrace response",
        _ => return None,
    })
}

/// tcpdump's `hex_print` with the `\n\t` indent: 16 bytes a line as 16-bit groups.
fn hex_dump(s: &mut String, b: &[u8]) {
    for (i, pair) in b.chunks(2).enumerate() {
        if i % 8 == 0 {
            let _ = write!(s, "\n\t0x{:04x}: ", i * 2);
        }
        match pair {
            [a, b] => {
                let _ = write!(s, " {a:02x}{b:02x}");
            }
            [a] => {
                let _ = write!(s, " {a:02x}");
            }
            _ => {}
        }
    }
}

/// The ICMPv6 part of a line (`ICMP6, echo request, id 1, seq 2, length 64`).
fn icmp6_text(m: &Icmpv6) -> String {
    const TRUNC: &str = " [|icmp6]";
    if m.len == 0 {
        return "ICMP6, length 0 (invalid)".into();
    }
    let mut s = format!(
        "ICMP6, {}",
        icmp6_type_name(m.icmp_type).map_or_else(
            || format!("unknown icmp6 type ({})", m.icmp_type),
            str::to_string
        )
    );
    // Fewer than the 8 header bytes: what tcpdump prints before it runs out of them.
    let have = m.bytes.len();
    if have < 8 {
        if have < 2 {
            s.push_str(TRUNC);
            return s;
        }
        match (m.icmp_type, m.code) {
            (1, c @ 0..=4) => {
                let name = [
                    "unreachable route",
                    " unreachable prohibited",
                    "beyond scope",
                    "unreachable address",
                    "unreachable port",
                ][usize::from(c)];
                let _ = write!(s, ", {name}{TRUNC}");
                return s;
            }
            (1, c) => {
                let _ = write!(s, ", unknown unreach code ({c})");
                hex_dump(&mut s, &m.bytes);
                return s;
            }
            (3, 1) => s.push_str(" (reassembly)"),
            (3, c) if c != 0 => {
                let _ = write!(s, ", unknown code ({c})");
            }
            (143, _) => {
                let _ = write!(s, " [invalid len {}]", m.len);
            }
            (130, _) => {
                let _ = write!(s, " unknown-version (len {}) ", m.len);
            }
            (144 | 146, _) if have >= 6 => {
                let _ = write!(s, ", id 0x{:02x}{:02x}", m.bytes[4], m.bytes[5]);
            }
            (131..=134 | 141 | 142 | 145 | 147, _) => {}
            (t, _) if icmp6_type_name(t).is_none() || t >= 200 => {
                let _ = write!(s, ", length {}", m.len);
                hex_dump(&mut s, &m.bytes);
                return s;
            }
            _ => {
                s.push_str(TRUNC);
                return s;
            }
        }
        let _ = write!(s, ", length {}", m.len);
        return s;
    }
    let quoted = match &m.body {
        Icmpv6Body::Error { quoted, .. } => quoted.as_ref(),
        _ => None,
    };
    let word = match &m.body {
        Icmpv6Body::Error { word, .. } => *word,
        _ => 0,
    };
    match (m.icmp_type, &m.body) {
        (1, _) => {
            let name = match m.code {
                0 => "unreachable route".to_string(),
                1 => " unreachable prohibited".to_string(),
                2 => "beyond scope".to_string(),
                3 => "unreachable address".to_string(),
                4 => "unreachable port".to_string(),
                c => format!("unknown unreach code ({c})"),
            };
            let _ = write!(s, ", {name}");
            match (m.code, quoted) {
                (0 | 1 | 3, Some(q)) => {
                    let _ = write!(s, " {}", q.dst);
                }
                (2, Some(q)) => {
                    let _ = write!(s, " {}, source address {}", q.dst, q.src);
                }
                (4, Some(q)) if q.upper.is_some() => {
                    let (proto, _, dport) = q.upper.unwrap_or_default();
                    let _ = match proto {
                        6 => write!(s, ", {} tcp port {dport}", q.dst),
                        17 => write!(s, ", {} udp port {dport}", q.dst),
                        p => write!(s, ", {} protocol {p} port {dport} unreachable", q.dst),
                    };
                }
                (0..=4, _) => {
                    s.push_str(TRUNC);
                    return s;
                }
                _ => {
                    hex_dump(&mut s, &m.bytes);
                    return s;
                }
            }
        }
        (2, _) => {
            let _ = write!(s, ", mtu {word}");
        }
        (3, _) => match (m.code, quoted) {
            (0, Some(q)) => {
                let _ = write!(s, " for {}", q.dst);
            }
            (0, None) => {
                s.push_str(TRUNC);
                return s;
            }
            (1, _) => s.push_str(" (reassembly)"),
            (c, _) => {
                let _ = write!(s, ", unknown code ({c})");
            }
        },
        (4, _) => {
            if quoted.is_none() {
                s.push_str(TRUNC);
                return s;
            }
            let _ = match m.code {
                0 => write!(s, ", erroneous - octet {word}"),
                1 => write!(s, ", next header - octet {word}"),
                2 => write!(s, ", option - octet {word}"),
                3 => write!(s, ", incomplete header chain - octet {word}"),
                c => write!(s, ", code-#{c}"),
            };
        }
        (128 | 129, Icmpv6Body::Echo { ident, seq }) => {
            let _ = write!(s, ", id {ident}, seq {seq}");
        }
        (
            130,
            Icmpv6Body::Mld {
                sources: Some(n),
                group,
                ..
            },
        ) => {
            let _ = write!(s, " v2 [gaddr {group}");
            if *n > 0 {
                if m.len < 28 + 16 * usize::from(*n) {
                    s.push_str(" [invalid number of sources]");
                } else {
                    let _ = write!(s, ", {n} source(s)");
                }
            }
            s.push(']');
        }
        (130, _) if m.len != 24 && m.len < 28 => {
            let _ = write!(s, " unknown-version (len {}) ", m.len);
        }
        (
            130..=132,
            Icmpv6Body::Mld {
                max_resp, group, ..
            },
        ) => {
            // tcpdump's mld6_print starts without a separator.
            let _ = write!(s, "max resp delay: {max_resp} addr: {group}");
        }
        (130..=132, _) => {}
        (135, Icmpv6Body::NeighborSolicit { target, .. }) => {
            let _ = write!(s, ", who has {target}");
        }
        (136, Icmpv6Body::NeighborAdvert { target, .. }) => {
            let _ = write!(s, ", tgt is {target}");
        }
        (137, Icmpv6Body::Redirect { target, dst, .. }) => {
            let _ = write!(s, ", {dst} to {target}");
        }
        (135..=137 | 128 | 129, _) => {
            s.push_str(TRUNC);
            return s;
        }
        (143, Icmpv6Body::Mldv2Report { count, .. }) => {
            if m.len < 8 {
                let _ = write!(s, " [invalid len {}]", m.len);
            } else {
                let _ = write!(s, ", {count} group record(s)");
            }
        }
        (144 | 146, _) => {
            let id = m
                .bytes
                .get(4..6)
                .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
            let _ = write!(s, ", id 0x{id:04x}");
        }
        (133 | 134 | 138..=142 | 145 | 147 | 155, _) => {}
        _ => {
            let _ = write!(s, ", length {}", m.len);
            hex_dump(&mut s, &m.bytes);
            return s;
        }
    }
    let _ = write!(s, ", length {}", m.len);
    s
}

/// The hop-by-hop options as tcpdump walks them at default verbosity: only errors
/// print. Returns false when the walk stopped (tcpdump then prints `[|hbhopt]`).
fn hbh_options(s: &mut String, options: Option<&[crate::decode6::Ipv6Option]>) -> bool {
    let Some(options) = options else {
        return false;
    };
    for o in options {
        let (name, want) = match o.kind {
            5 => ("rtalert", 2),
            0xc2 => ("jumbo", 4),
            0xc9 if o.data.len() < 16 => ("homeaddr", 16),
            _ => continue,
        };
        if o.data.len() != want {
            let _ = write!(s, "({name}: invalid len {})", o.data.len());
            return false;
        }
    }
    true
}

fn has_jumbo(ip: &Ipv6) -> bool {
    ip.ext.iter().any(|e| match e {
        Ipv6Ext::HopByHop {
            options: Some(o), ..
        } => o.iter().any(|o| o.kind == 0xc2 && o.data.len() == 4),
        _ => false,
    })
}

/// The line after the time stamp for an IPv6 frame.
pub fn one_line6(f: &Frame, ip: &Ipv6, info: Option<&TcpInfo>) -> String {
    let mut s = String::from("IP6 ");
    if ip.missing > 0 {
        let _ = write!(s, "truncated-ip6 - {} bytes missing!", ip.missing);
    }
    // tcpdump prints the addresses first unless the fixed header leads straight to a
    // protocol that prints them with its ports.
    if !matches!(ip.next_header, 6 | 17 | 33 | 132) {
        let _ = write!(s, "{} > {}: ", ip.src, ip.dst);
    }
    // Bytes of extension headers before the current one (for the fragment's length).
    let mut before = 0usize;
    for (i, e) in ip.ext.iter().enumerate() {
        match e {
            Ipv6Ext::HopByHop { options, len, .. } => {
                if i > 0 {
                    let already = ip.ext[..i]
                        .iter()
                        .any(|e| matches!(e, Ipv6Ext::HopByHop { .. }));
                    s.push_str(if already {
                        "[The Hop-by-Hop Options header was already found] (invalid)"
                    } else {
                        "[The Hop-by-Hop Options header don't follow the IPv6 header] (invalid)"
                    });
                    return s;
                }
                s.push_str("HBH ");
                let ok = hbh_options(&mut s, options.as_deref());
                if ip.payload_len == 0 && !has_jumbo(ip) {
                    s.push_str("[No valid Jumbo Payload Hop-by-Hop option found] (invalid)");
                    return s;
                }
                if !ok {
                    s.push_str(" [|hbhopt]");
                    return s;
                }
                before += len;
            }
            Ipv6Ext::DestOpts { len, .. } => {
                s.push_str("DSTOPT ");
                before += len;
            }
            Ipv6Ext::Routing {
                len_field,
                routing_type,
                segments_left,
                word,
                addresses,
                ..
            } => {
                let _ = write!(s, "RT6 (len={len_field}, type={routing_type}");
                if *routing_type == 0 {
                    s.push_str(" [Deprecated]");
                }
                let _ = write!(s, ", segleft={segments_left}");
                match routing_type {
                    0 | 2 => {
                        if *word != 0 {
                            let _ = write!(s, ", rsv=0x{word:x}");
                        }
                    }
                    4 => {
                        let [last, flags, t0, t1] = word.to_be_bytes();
                        let _ = write!(s, ", last-entry={last}");
                        if flags != 0 {
                            let _ = write!(s, ", flags=0x{flags:x}");
                        }
                        let _ = write!(s, ", tag={:x}", u16::from_be_bytes([t0, t1]));
                    }
                    _ => {
                        s.push_str(" (unknown type) (invalid)");
                        return s;
                    }
                }
                if len_field % 2 == 1 {
                    let _ = write!(s, " (invalid length {len_field}) (invalid)");
                    return s;
                }
                for (n, a) in addresses
                    .iter()
                    .take(usize::from(*len_field / 2))
                    .enumerate()
                {
                    let _ = write!(s, ", [{n}]{a}");
                }
                s.push_str(") ");
                before += (usize::from(*len_field) + 1) * 8;
            }
            Ipv6Ext::Fragment(fr) => {
                // tcpdump computes this as an unsigned size: a lying payload length
                // wraps rather than going negative.
                let len = usize::from(ip.payload_len)
                    .wrapping_sub(before)
                    .wrapping_sub(8);
                let _ = write!(s, "frag ({}|{len})", fr.offset);
                if fr.offset != 0 {
                    return s;
                }
                s.push(' ');
                before += 8;
            }
        }
    }
    if let Some(present) = ip.chain_error {
        // tcpdump always reads the header after the fixed one; a later one only when
        // some of it was captured. It names the header it ran out in.
        if present > 0 || ip.ext.is_empty() {
            s.push_str(match ip.protocol {
                0 => " [|hbhopt]",
                60 => " [|dstopt]",
                43 => " [|rt6]",
                _ => " [|frag6]",
            });
        }
        return s;
    }
    if ip.fragment().is_some() && f.fragment_payload.as_ref().is_some_and(|p| p.is_empty()) {
        // Nothing captured after the fragment header: tcpdump stops there.
        return s;
    }
    // tcp_print and udp_print name the addresses only when the fixed header leads
    // straight to them; behind extension headers they print the ports alone.
    let ends = |sp: u16, dp: u16| {
        if ip.next_header == ip.protocol {
            format!("{}.{sp} > {}.{dp}: ", ip.src, ip.dst)
        } else {
            format!("{sp} > {dp}: ")
        }
    };
    let fragmented = ip.fragment().is_some();
    if ip.payload_len == 0 && !ip.ext.is_empty() && !has_jumbo(ip) {
        s.push_str(" [|ip6]");
        return s;
    }
    match ip.protocol {
        6 => match &f.tcp {
            Some(t) => {
                s.push_str(&ends(t.src_port, t.dst_port));
                s.push_str(&dump_fmt::tcp_body(t, info));
            }
            None => s.push_str(&dump_fmt::malformed_tag(f)),
        },
        17 => match &f.udp {
            Some(u) => {
                s.push_str(&ends(u.src_port, u.dst_port));
                let len = ip.upper_len.saturating_sub(8);
                if u.length < 8 {
                    let _ = write!(s, "truncated-udplength {}", u.length);
                } else if u.payload_len > len && !fragmented {
                    let _ = write!(s, "UDP, bad length {} > {len}", u.payload_len);
                } else {
                    let _ = write!(s, "UDP, length {}", u.payload_len);
                }
                return s;
            }
            None => s.push_str(&dump_fmt::malformed_tag(f)),
        },
        58 if ip.upper_len == 0 => {
            s.push_str("ICMP6, length 0 (invalid)");
            return s;
        }
        58 => match &f.icmpv6 {
            Some(m) => s.push_str(&icmp6_text(m)),
            // Not a byte of the message captured: tcpdump stops at its type.
            None => {
                s.push_str(" [|icmp6]");
                return s;
            }
        },
        59 => s.push_str("no next header"),
        p => {
            let _ = write!(s, " ip-proto-{p} {}", ip.upper_len);
        }
    }
    // A frame shorter than its payload length already says so (`truncated-ip6`).
    // A short ICMPv6 message is already shown in tcpdump's words.
    let other = f.malformed.as_ref().is_some_and(|m| m.layer != "ipv6");
    let shown = ip.protocol == 58 && f.icmpv6.is_some();
    if other && matches!(ip.protocol, 6 | 58) && !shown && !s.ends_with(']') {
        s.push(' ');
        s.push_str(&dump_fmt::malformed_tag(f));
    }
    s
}

fn mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ndp_option_text(o: &NdpOption) -> String {
    match o {
        NdpOption::SourceLinkAddr { addr } => format!("source link-address {}", mac(addr)),
        NdpOption::TargetLinkAddr { addr } => format!("target link-address {}", mac(addr)),
        NdpOption::Prefix {
            prefix_len,
            on_link,
            autonomous,
            valid,
            preferred,
            prefix,
        } => {
            let mut flags = Vec::new();
            if *on_link {
                flags.push("onlink");
            }
            if *autonomous {
                flags.push("auto");
            }
            format!(
                "prefix info {prefix}/{prefix_len}, Flags [{}], valid time {valid}s, pref. time {preferred}s",
                if flags.is_empty() { "none".to_string() } else { flags.join(", ") }
            )
        }
        NdpOption::Redirected { len } => format!("redirected header, {len} bytes"),
        NdpOption::Mtu { mtu } => format!("mtu {mtu}"),
        NdpOption::Other { kind, len } => format!("option type {kind}, length {len}"),
    }
}

/// The `-v` tree blocks of the IPv6 header and its extension headers.
pub fn ipv6_tree(s: &mut String, ip: &Ipv6) {
    let _ = writeln!(s, "  IPv6");
    let _ = writeln!(
        s,
        "    traffic class: 0x{:02x} (dscp {}, ecn {})",
        ip.traffic_class,
        ip.traffic_class >> 2,
        ip.traffic_class & 3
    );
    let _ = writeln!(s, "    flow label: 0x{:05x}", ip.flow_label);
    let _ = writeln!(s, "    payload length: {}", ip.payload_len);
    let _ = writeln!(s, "    next header: {}", ip.next_header);
    let _ = writeln!(s, "    hop limit: {}", ip.hop_limit);
    let _ = writeln!(s, "    src: {}", ip.src);
    let _ = writeln!(s, "    dst: {}", ip.dst);
    for e in &ip.ext {
        match e {
            Ipv6Ext::HopByHop {
                next_header,
                len,
                options,
            }
            | Ipv6Ext::DestOpts {
                next_header,
                len,
                options,
            } => {
                let name = if matches!(e, Ipv6Ext::HopByHop { .. }) {
                    "Hop-by-hop options"
                } else {
                    "Destination options"
                };
                let _ = writeln!(s, "  {name} ({len} bytes, next header {next_header})");
                match options {
                    Some(opts) => {
                        for o in opts {
                            let what = match o.kind {
                                0 => "pad1".to_string(),
                                1 => format!("padn ({} bytes)", o.data.len()),
                                5 => format!("router alert {:02x?}", o.data),
                                0xc2 => format!("jumbo payload {:02x?}", o.data),
                                k => format!("type 0x{k:02x} ({} bytes)", o.data.len()),
                            };
                            let _ = writeln!(s, "    option: {what}");
                        }
                    }
                    None => {
                        let _ = writeln!(s, "    options: [an option runs past the header]");
                    }
                }
            }
            Ipv6Ext::Routing {
                next_header,
                len_field,
                routing_type,
                segments_left,
                addresses,
                ..
            } => {
                let _ = writeln!(
                    s,
                    "  Routing header (type {routing_type}, segments left {segments_left}, {} bytes, next header {next_header})",
                    (usize::from(*len_field) + 1) * 8
                );
                for (i, a) in addresses.iter().enumerate() {
                    let _ = writeln!(s, "    address [{i}]: {a}");
                }
            }
            Ipv6Ext::Fragment(fr) => {
                let _ = writeln!(s, "  Fragment header (next header {})", fr.next_header);
                let _ = writeln!(
                    s,
                    "    fragment: offset {}, id 0x{:08x}{}",
                    fr.offset,
                    fr.ident,
                    if fr.more {
                        ", more fragments"
                    } else {
                        " (last)"
                    }
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "    upper layer: protocol {}, {} bytes",
        ip.protocol, ip.upper_len
    );
}

/// The `-v` tree block of an ICMPv6 message.
pub fn icmpv6_tree(s: &mut String, m: &Icmpv6) {
    let _ = writeln!(s, "  ICMPv6");
    let _ = writeln!(
        s,
        "    type: {} ({})",
        m.icmp_type,
        icmp6_type_name(m.icmp_type).unwrap_or("unknown")
    );
    let _ = writeln!(s, "    code: {}", m.code);
    let _ = writeln!(
        s,
        "    checksum: 0x{:04x} ({})",
        m.checksum,
        match m.checksum_ok {
            Some(true) => "correct",
            Some(false) => "incorrect",
            None => "not verified",
        }
    );
    let opts = |s: &mut String, o: &[NdpOption]| {
        for o in o {
            let _ = writeln!(s, "    option: {}", ndp_option_text(o));
        }
    };
    match &m.body {
        Icmpv6Body::Echo { ident, seq } => {
            let _ = writeln!(s, "    id: {ident}");
            let _ = writeln!(s, "    seq: {seq}");
        }
        Icmpv6Body::Error { word, quoted } => {
            let what = match m.icmp_type {
                2 => "mtu",
                4 => "pointer",
                _ => "unused",
            };
            let _ = writeln!(s, "    {what}: {word}");
            if let Some(q) = quoted {
                match q.upper {
                    Some((p, sp, dp)) => {
                        let name = if p == 6 { "TCP" } else { "UDP" };
                        let _ = writeln!(s, "    quoted: {name} {}.{sp} > {}.{dp}", q.src, q.dst);
                    }
                    None => {
                        let _ = writeln!(s, "    quoted: {} > {}", q.src, q.dst);
                    }
                }
            }
        }
        Icmpv6Body::RouterSolicit { options } => opts(s, options),
        Icmpv6Body::RouterAdvert {
            hop_limit,
            flags,
            lifetime,
            reachable,
            retrans,
            options,
        } => {
            let mut fl = Vec::new();
            for (bit, name) in [
                (0x80, "managed"),
                (0x40, "other stateful"),
                (0x20, "home agent"),
                (0x04, "proxy"),
            ] {
                if flags & bit != 0 {
                    fl.push(name);
                }
            }
            let pref = match (flags >> 3) & 3 {
                0 => "medium",
                1 => "high",
                3 => "low",
                _ => "reserved",
            };
            let _ = writeln!(
                s,
                "    hop limit {hop_limit}, Flags [{}], pref {pref}, router lifetime {lifetime}s, reachable time {reachable}ms, retrans timer {retrans}ms",
                if fl.is_empty() { "none".to_string() } else { fl.join(", ") }
            );
            opts(s, options);
        }
        Icmpv6Body::NeighborSolicit { target, options } => {
            let _ = writeln!(s, "    target: {target}");
            opts(s, options);
        }
        Icmpv6Body::NeighborAdvert {
            flags,
            target,
            options,
        } => {
            let mut fl = Vec::new();
            for (bit, name) in [(0x80, "router"), (0x40, "solicited"), (0x20, "override")] {
                if flags & bit != 0 {
                    fl.push(name);
                }
            }
            let _ = writeln!(s, "    target: {target}");
            let _ = writeln!(
                s,
                "    flags: [{}]",
                if fl.is_empty() {
                    "none".to_string()
                } else {
                    fl.join(", ")
                }
            );
            opts(s, options);
        }
        Icmpv6Body::Redirect {
            target,
            dst,
            options,
        } => {
            let _ = writeln!(s, "    destination: {dst}");
            let _ = writeln!(s, "    target: {target}");
            opts(s, options);
        }
        Icmpv6Body::Mld {
            max_resp,
            group,
            sources,
        } => {
            let _ = writeln!(s, "    max response: {max_resp}");
            let _ = writeln!(s, "    group: {group}");
            if let Some(n) = sources {
                let _ = writeln!(s, "    sources: {n}");
            }
        }
        Icmpv6Body::Mldv2Report { count, records } => {
            let _ = writeln!(s, "    records: {count}");
            for r in records {
                let kind = match r.record_type {
                    1 => "is_in",
                    2 => "is_ex",
                    3 => "to_in",
                    4 => "to_ex",
                    5 => "allow",
                    6 => "block",
                    _ => "unknown",
                };
                let _ = write!(s, "    record: {kind} {}", r.group);
                if !r.sources.is_empty() {
                    let srcs: Vec<_> = r.sources.iter().map(|a| a.to_string()).collect();
                    let _ = write!(s, " {{ {} }}", srcs.join(" "));
                }
                s.push('\n');
            }
        }
        Icmpv6Body::Other => {}
    }
    let _ = writeln!(s, "    length: {}", m.len);
}
