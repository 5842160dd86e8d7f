//! The kernel pings the stack over a TAP (and over a veth with AF_PACKET), inside a
//! namespace each test creates; the kernel's pinger is a raw ICMP socket on a thread
//! inside the namespace (`Fixture::ping`). Needs the interface (ARP, IPv4, ICMP,
//! fragmentation).

use std::time::Duration;
use ustack::wire::{EtherType, EthernetRepr, Ipv4Repr};
use ustack_tests::{pcap, require_netns, Fixture, LinkKind, Options, PingOptions};

fn ping_payload(payload: usize) {
    let fx = Fixture::start(Options::default());
    fx.ping(PingOptions::new(50, payload).interval(Duration::from_millis(10)))
        .assert_all_answered(50);
}

#[test]
fn kernel_ping_empty_payload() {
    require_netns!();
    ping_payload(0);
}

#[test]
fn kernel_ping_default_payload() {
    require_netns!();
    ping_payload(56);
}

#[test]
fn kernel_ping_full_mtu_payload() {
    require_netns!();
    // 1472 + 8 (ICMP) + 20 (IPv4) = 1500: the largest echo that needs no fragment.
    ping_payload(1472);
}

#[test]
fn kernel_ping_3000_bytes_fragmented_both_ways() {
    require_netns!();
    let mut fx = Fixture::start(Options {
        pcap: true,
        ..Options::default()
    });
    fx.ping(PingOptions::new(3, 3000).interval(Duration::from_millis(50)))
        .assert_all_answered(3);
    let report = fx.stop();
    let c = report.iface.counters();
    assert!(c.ipv4_reassembled >= 3, "reassembled: {c:?}");
    assert!(c.ipv4_fragmented >= 3, "fragmented: {c:?}");

    // On the wire: fragments (MF set or offset > 0) in both directions.
    let (mut from_stack, mut to_stack) = (0, 0);
    for rec in pcap::read(fx.pcap.as_ref().expect("pcap on")) {
        let Ok((eth, payload)) = EthernetRepr::parse(&rec.data) else {
            continue;
        };
        if eth.ethertype != EtherType::IPV4 {
            continue;
        }
        if let Ok((ip, _)) = Ipv4Repr::parse(payload) {
            if ip.more_frags || ip.frag_offset != 0 {
                if eth.src_addr == fx.mac {
                    from_stack += 1;
                } else {
                    to_stack += 1;
                }
            }
        }
    }
    // 3028-byte datagrams at MTU 1500 make 3 fragments each.
    assert!(to_stack >= 9, "fragments kernel -> stack: {to_stack}");
    assert!(from_stack >= 9, "fragments stack -> kernel: {from_stack}");
}

#[test]
fn kernel_neighbour_table_learns_the_stack_mac() {
    require_netns!();
    let fx = Fixture::start(Options {
        seed: 77,
        ..Options::default()
    });
    fx.ping(PingOptions::new(1, 56)).assert_all_answered(1);
    let out = fx.exec(&["ip", "neigh", "show", "dev", fx.kernel_if]);
    let table = String::from_utf8_lossy(&out.stdout);
    let mac = fx.mac.to_string();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&format!("{} ", fx.stack_ip)) && l.contains(&mac)),
        "neighbour table lacks {} at {mac}:\n{table}",
        fx.stack_ip
    );
}

#[test]
fn kernel_pcap_reads_back_in_tshark() {
    require_netns!("tshark");
    let mut fx = Fixture::start(Options {
        pcap: true,
        ..Options::default()
    });
    fx.ping(PingOptions::new(5, 56).interval(Duration::from_millis(50)))
        .assert_all_answered(5);
    fx.ping(PingOptions::new(2, 3000).interval(Duration::from_millis(50)))
        .assert_all_answered(2);
    let report = fx.stop();
    let moved = report.link.rx_frames + report.link.tx_frames;
    let path = fx.pcap.clone().expect("pcap on");
    assert_eq!(
        pcap::read(&path).len() as u64,
        moved,
        "records vs frames moved"
    );

    let out = fx.exec(&["tshark", "-n", "-r", path.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "tshark failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count() as u64, moved, "tshark lists:\n{text}");
    assert!(!text.to_lowercase().contains("malformed"), "{text}");
    let flagged = fx.exec(&[
        "tshark",
        "-n",
        "-r",
        path.to_str().expect("utf-8 path"),
        "-Y",
        "_ws.malformed || _ws.expert.severity >= error",
    ]);
    let flagged = String::from_utf8_lossy(&flagged.stdout);
    assert!(flagged.trim().is_empty(), "tshark flags:\n{flagged}");
    assert!(text.contains("Echo (ping) reply"), "{text}");
}

#[test]
fn kernel_af_packet_ping_on_veth() {
    require_netns!();
    let fx = Fixture::start(Options {
        link: LinkKind::Veth,
        seed: 9,
        ..Options::default()
    });
    fx.ping(PingOptions::new(10, 56).interval(Duration::from_millis(20)))
        .assert_all_answered(10);
    fx.ping(PingOptions::new(2, 3000).interval(Duration::from_millis(50)))
        .assert_all_answered(2);
}
