//! The OS links alone against the kernel, without the interface: a TAP and an
//! AF_PACKET socket move real frames both ways inside a private namespace.

use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant as StdInstant};
use ustack::link::sys::{wait_readable, AfPacketLink, TapLink};
use ustack::link::Link;
use ustack::time::Instant;
use ustack::wire::{ArpOperation, ArpRepr, EtherType, EthernetAddress, EthernetRepr};
use ustack_socket::kernel_peer::{self, PingOptions};
use ustack_tests::{require_netns, spawn_peer, Netns};

const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0x75, 0, 0, 0, 0x42]);

/// Receives frames until `pred` accepts one, for at most `limit`.
fn recv_until<L: Link + AsRawFd>(
    link: &mut L,
    limit: Duration,
    mut pred: impl FnMut(&[u8]) -> bool,
) -> Option<Vec<u8>> {
    let deadline = StdInstant::now() + limit;
    let mut buf = [0u8; 2048];
    while StdInstant::now() < deadline {
        wait_readable(&[link.as_raw_fd()], Some(Duration::from_millis(50))).unwrap();
        while let Some(n) = link.recv(Instant::ZERO, &mut buf).unwrap() {
            if pred(&buf[..n]) {
                return Some(buf[..n].to_vec());
            }
        }
    }
    None
}

fn arp_request_for(frame: &[u8], target: &str) -> Option<ArpRepr> {
    let (eth, payload) = EthernetRepr::parse(frame).ok()?;
    if eth.ethertype != EtherType::ARP {
        return None;
    }
    let arp = ArpRepr::parse(payload).ok()?;
    (arp.operation == ArpOperation::Request && arp.target_protocol_addr.to_string() == target)
        .then_some(arp)
}

#[test]
fn kernel_tap_link_moves_frames_both_ways() {
    require_netns!();
    let ns = Netns::new("ustack-test").unwrap();
    ns.add_tap("tap0", "10.77.0.1/24").unwrap();
    let mut tap = ns.run_in(|| TapLink::open("tap0")).unwrap().unwrap();
    assert_eq!(tap.name(), "tap0");
    ns.wait_running("tap0", Duration::from_secs(5)).unwrap();

    // Kernel → TAP: a ping makes the kernel ask who has 10.77.0.2.
    let ping = spawn_peer(&ns, "ping", || {
        // The request waits in the kernel's ARP queue until our hand-made reply below;
        // nothing ever answers the echo itself.
        let opts = PingOptions::new(1, 56).timeout(Duration::from_millis(100));
        kernel_peer::ping("10.77.0.2".parse().expect("address"), &opts)
    });
    let req = recv_until(&mut tap, Duration::from_secs(3), |f| {
        arp_request_for(f, "10.77.0.2").is_some()
    })
    .expect("the kernel's ARP request reaches the TAP");
    let (req_eth, req_arp) = EthernetRepr::parse(&req).unwrap();
    let req_arp = ArpRepr::parse(req_arp).unwrap();

    // TAP → kernel: our hand-made ARP reply; the kernel then sends the echo to our MAC.
    let reply = ArpRepr {
        operation: ArpOperation::Reply,
        source_hardware_addr: OUR_MAC,
        source_protocol_addr: req_arp.target_protocol_addr,
        target_hardware_addr: req_arp.source_hardware_addr,
        target_protocol_addr: req_arp.source_protocol_addr,
    };
    let mut frame = [0u8; 42];
    EthernetRepr {
        src_addr: OUR_MAC,
        dst_addr: req_eth.src_addr,
        ethertype: EtherType::ARP,
    }
    .emit(&mut frame);
    reply.emit(&mut frame[14..]);
    tap.send(Instant::ZERO, &frame).unwrap();
    let echo = recv_until(&mut tap, Duration::from_secs(3), |f| {
        f.len() > 14 && f[0..6] == OUR_MAC.0 && f[12..14] == [0x08, 0x00]
    });
    // Nothing answers the echo requests (only ARP is hand-made): none come back.
    let report = ping.join(Duration::from_secs(10)).expect("kernel ping");
    assert_eq!(report.received, 0, "{}", report.summary());
    assert!(
        echo.is_some(),
        "the kernel learned our MAC and sent IPv4 to it"
    );
    let neigh = ns.exec(&["ip", "neigh", "show", "dev", "tap0"]).unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    assert!(
        neigh.contains(&OUR_MAC.to_string()),
        "neighbour table: {neigh}"
    );
}

#[test]
fn kernel_af_packet_link_does_not_hear_itself() {
    require_netns!();
    let ns = Netns::new("ustack-test").unwrap();
    ns.add_veth("veth0", "10.77.1.1/24", "veth1").unwrap();
    let (mut ours, mut peer) = ns
        .run_in(|| {
            (
                AfPacketLink::open("veth1").unwrap(),
                AfPacketLink::open("veth0").unwrap(),
            )
        })
        .unwrap();
    assert_eq!(ours.ifname(), "veth1");

    // A frame with a private EtherType, so nothing else in the namespace matches it.
    let mut frame = vec![0u8; 60];
    EthernetRepr {
        src_addr: OUR_MAC,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EtherType(0x88b5),
    }
    .emit(&mut frame);
    frame[14..20].copy_from_slice(b"ustack");
    ours.send(Instant::ZERO, &frame).unwrap();

    let got = recv_until(&mut peer, Duration::from_secs(2), |f| f == frame.as_slice());
    assert!(got.is_some(), "the peer end receives what we send");
    let echoed = recv_until(&mut ours, Duration::from_millis(300), |f| {
        f.len() >= 14 && f[12..14] == [0x88, 0xb5]
    });
    assert!(echoed.is_none(), "PACKET_OUTGOING copies are skipped");

    // And the other way round.
    frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    peer.send(Instant::ZERO, &frame).unwrap();
    let got = recv_until(&mut ours, Duration::from_secs(2), |f| f == frame.as_slice());
    assert!(got.is_some(), "we receive what the peer sends");
}

#[test]
fn kernel_netns_is_removed_on_panic() {
    require_netns!();
    let name = std::panic::catch_unwind(|| {
        let ns = Netns::new("ustack-test").unwrap();
        let name = ns.name().to_owned();
        std::panic::panic_any(name);
    })
    .unwrap_err()
    .downcast::<String>()
    .unwrap();
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains(name.as_str()),
        "namespace {name} survived a panic"
    );
}
