//! One-line, tcpdump-like summaries of frames, for traces and logs.
//!
//! The full layer-by-layer decoder lives in the `ustack dump` tool; this one is small
//! enough to run on every frame when `--trace` is on.

use super::{
    ArpOperation, ArpRepr, EtherType, EthernetRepr, IcmpRepr, IpProtocol, Ipv4Repr, TcpRepr,
    UdpRepr,
};
use core::fmt::Write;

/// Summarises an Ethernet frame on one line; never fails, malformed layers say why.
pub fn summarize(frame: &[u8]) -> String {
    let mut out = String::new();
    let _ = write_summary(&mut out, frame);
    out
}

fn write_summary(out: &mut String, frame: &[u8]) -> core::fmt::Result {
    let (eth, payload) = match EthernetRepr::parse(frame) {
        Ok(v) => v,
        Err(e) => return write!(out, "ethernet {e} ({} bytes)", frame.len()),
    };
    match eth.ethertype {
        EtherType::ARP => match ArpRepr::parse(payload) {
            Ok(arp) => match arp.operation {
                // RFC 5227 §2.3: a request whose sender and target are the same address
                // announces it (gratuitous ARP).
                ArpOperation::Request if arp.source_protocol_addr == arp.target_protocol_addr => {
                    write!(
                        out,
                        "ARP announcement {} is-at {}",
                        arp.source_protocol_addr, arp.source_hardware_addr
                    )
                }
                ArpOperation::Request => write!(
                    out,
                    "ARP who-has {} tell {}",
                    arp.target_protocol_addr, arp.source_protocol_addr
                ),
                ArpOperation::Reply => write!(
                    out,
                    "ARP {} is-at {}",
                    arp.source_protocol_addr, arp.source_hardware_addr
                ),
                ArpOperation::Unknown(op) => write!(out, "ARP op {op}"),
            },
            Err(e) => write!(out, "ARP {e}"),
        },
        EtherType::IPV4 => {
            let (ip, payload) = match Ipv4Repr::parse(payload) {
                Ok(v) => v,
                Err(e) => return write!(out, "IPv4 {e}"),
            };
            if ip.is_fragment() && (ip.frag_offset != 0 || ip.protocol != IpProtocol::ICMP) {
                return write!(
                    out,
                    "IP {} > {}: {} frag id {} off {} len {}{}",
                    ip.src_addr,
                    ip.dst_addr,
                    ip.protocol,
                    ip.ident,
                    ip.frag_offset,
                    ip.payload_len,
                    if ip.more_frags { " +MF" } else { "" }
                );
            }
            match ip.protocol {
                IpProtocol::TCP => match TcpRepr::parse(ip.src_addr, ip.dst_addr, payload) {
                    Ok(tcp) => write!(
                        out,
                        "IP {}.{} > {}.{}: TCP [{}] seq {} ack {} win {} len {}",
                        ip.src_addr,
                        tcp.src_port,
                        ip.dst_addr,
                        tcp.dst_port,
                        tcp.flags,
                        tcp.seq_number,
                        tcp.ack_number,
                        tcp.window_len,
                        tcp.payload.len()
                    ),
                    Err(e) => write!(out, "IP {} > {}: TCP {e}", ip.src_addr, ip.dst_addr),
                },
                IpProtocol::UDP => match UdpRepr::parse(ip.src_addr, ip.dst_addr, payload) {
                    Ok((udp, data)) => write!(
                        out,
                        "IP {}.{} > {}.{}: UDP len {}",
                        ip.src_addr,
                        udp.src_port,
                        ip.dst_addr,
                        udp.dst_port,
                        data.len()
                    ),
                    Err(e) => write!(out, "IP {} > {}: UDP {e}", ip.src_addr, ip.dst_addr),
                },
                IpProtocol::ICMP => {
                    write!(out, "IP {} > {}: ICMP ", ip.src_addr, ip.dst_addr)?;
                    // A first fragment still starts with the ICMP header but its checksum
                    // covers the whole datagram, so only the type can be shown.
                    if ip.more_frags {
                        let kind = match payload.first() {
                            Some(8) => "echo request",
                            Some(0) => "echo reply",
                            _ => "message",
                        };
                        return write!(
                            out,
                            "{kind}, first fragment id {} len {} +MF",
                            ip.ident, ip.payload_len
                        );
                    }
                    match IcmpRepr::parse(payload) {
                        Ok(IcmpRepr::EchoRequest {
                            ident,
                            seq_no,
                            data,
                        }) => {
                            write!(
                                out,
                                "echo request id {ident} seq {seq_no} len {}",
                                data.len()
                            )
                        }
                        Ok(IcmpRepr::EchoReply {
                            ident,
                            seq_no,
                            data,
                        }) => {
                            write!(out, "echo reply id {ident} seq {seq_no} len {}", data.len())
                        }
                        Ok(IcmpRepr::DstUnreachable { code, .. }) => {
                            write!(out, "destination unreachable code {code}")
                        }
                        Ok(IcmpRepr::TimeExceeded { code, .. }) => {
                            write!(out, "time exceeded code {code}")
                        }
                        Ok(IcmpRepr::Other { msg_type, code, .. }) => {
                            write!(out, "type {msg_type} code {code}")
                        }
                        Err(e) => write!(out, "{e}"),
                    }
                }
                other => write!(out, "IP {} > {}: {other}", ip.src_addr, ip.dst_addr),
            }
        }
        other => write!(out, "{} > {} ethertype {other}", eth.src_addr, eth.dst_addr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata;

    #[test]
    fn summaries_of_captured_frames() {
        assert_eq!(
            summarize(testdata::ARP_REQUEST),
            "ARP who-has 10.0.0.2 tell 10.0.0.1"
        );
        assert_eq!(
            summarize(testdata::ECHO_REQUEST),
            "IP 10.0.0.1 > 10.0.0.2: ICMP echo request id 5435 seq 1 len 24"
        );
        assert_eq!(
            summarize(testdata::TCP_SYN),
            "IP 10.0.0.1.38394 > 10.0.0.2.5001: TCP [S] seq 3460258186 ack 0 win 64240 len 0"
        );
        assert_eq!(summarize(&[1, 2, 3]), "ethernet truncated (3 bytes)");
        assert_eq!(
            summarize(testdata::FRAG_FIRST),
            "IP 10.0.0.1 > 10.0.0.2: ICMP echo request, first fragment id 12809 len 1480 +MF"
        );
    }
}
