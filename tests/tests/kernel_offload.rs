//! TAP offloads against the kernel (`IFF_VNET_HDR`, `TUN_F_CSUM | TUN_F_TSO4`): a stack
//! client exchanges 100 MB each way with a kernel server, byte-exact (SHA-256 both
//! ways), once with offloads and once without. With them, the interface's counters
//! must show GSO super-frames received and TSO super-segments sent, and the kernel's
//! TCP `InCsumErrors` in the namespace must not move (our partial checksums were
//! finished correctly, or trusted as the kernel trusts its own); without them, no
//! super-frame may appear.

use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;
use ustack_tests::tcp::{self, BulkClient};
use ustack_tests::{peer, require_netns, Fixture, Options, StackReport};

const MB: u64 = 1_000_000;

fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// `InCsumErrors` of the namespace's kernel, TCP and UDP (/proc/net/snmp).
fn kernel_csum_errors(fx: &Fixture) -> (u64, u64) {
    let text = fx
        .in_ns(|| peer::read_net_file("snmp"))
        .expect("/proc/net/snmp");
    (
        peer::mib_value(&text, "Tcp", "InCsumErrors").expect("Tcp InCsumErrors"),
        peer::mib_value(&text, "Udp", "InCsumErrors").expect("Udp InCsumErrors"),
    )
}

/// 100 MB each way between a stack client and a kernel server; returns what the stack
/// did, the seconds it took and the kernel's checksum errors before and after.
fn bulk_each_way(offload: bool) -> (StackReport, f64, (u64, u64), (u64, u64)) {
    let len = 100 * MB;
    let mut fx = Fixture::start(Options {
        offload,
        seed: 11,
        ..Options::default()
    });
    let before = kernel_csum_errors(&fx);
    let port = 5001;
    let listener = fx.in_ns(move || TcpListener::bind(("0.0.0.0", port)).expect("bind"));
    let server = fx.peer("sink-source server", move || {
        let (conn, _) = listener.accept()?;
        peer::exchange(conn, len, 0x0ff1)
    });
    let remote = format!("{}:{port}", fx.kernel_ip).parse().expect("addr");
    let (client, rx) = BulkClient::new(remote, len, 0x0ff2);
    fx.spawn_app(client.into_app());
    let res = tcp::wait_result(&rx, Duration::from_secs(300));
    let k = server.join(Duration::from_secs(60)).expect("kernel server");
    assert!(res.error.is_none(), "client: {res:?}");
    assert_eq!(k.received, len, "bytes the kernel received");
    assert_eq!(
        k.received_sha256, res.sent_sha256,
        "SHA-256 stack -> kernel"
    );
    assert_eq!(k.sent, len, "bytes the kernel sent");
    assert_eq!(res.received, len, "bytes the stack received");
    assert_eq!(
        k.sent_sha256, res.received_sha256,
        "SHA-256 kernel -> stack"
    );
    let after = kernel_csum_errors(&fx);
    let secs = res.elapsed.as_secs_f64();
    (fx.stop(), secs, before, after)
}

fn summary(what: &str, r: &StackReport, secs: f64) {
    let c = r.iface.counters();
    report(&format!(
        "{what}: 100 MB each way in {secs:.2} s ({:.0} Mbit/s per direction); link rx {} / tx {} \
         frames; rx GSO frames {}, rx checksums skipped {}, tx TSO frames {} ({} wire \
         segments), tx partial checksums {}",
        100.0 * 8.0 / secs.max(1e-9),
        r.link.rx_frames,
        r.link.tx_frames,
        c.offload_rx_gso_frames,
        c.offload_rx_csum_skipped,
        c.offload_tx_tso_frames,
        c.offload_tx_tso_segments,
        c.offload_tx_csum_partial,
    ));
}

#[test]
fn kernel_offload_on_100mb_each_way_moves_super_frames_with_good_checksums() {
    require_netns!();
    let (r, secs, before, after) = bulk_each_way(true);
    summary("offloads on", &r, secs);
    let c = r.iface.counters();
    assert!(c.offload_rx_gso_frames > 0, "no GSO super-frame received");
    assert!(c.offload_tx_tso_frames > 0, "no TSO super-segment sent");
    assert!(
        c.offload_tx_tso_segments > c.offload_tx_tso_frames,
        "super-segments stand for several wire segments"
    );
    assert!(c.offload_rx_csum_skipped > 0 && c.offload_tx_csum_partial > 0);
    assert_eq!(after, before, "kernel InCsumErrors (tcp, udp) moved");
    assert_eq!(c.dropped(ustack::iface::DropReason::OffloadBadMeta), 0);
    assert_eq!(c.dropped(ustack::iface::DropReason::TcpChecksum), 0);
    // 200 MB crossed in far fewer frames than 1448-byte segments would need.
    assert!(
        r.link.rx_frames + r.link.tx_frames < 2 * 100 * MB / 1448,
        "{} frames: super-frames barely used",
        r.link.rx_frames + r.link.tx_frames
    );
}

#[test]
fn kernel_offload_off_100mb_each_way_moves_wire_frames() {
    require_netns!();
    let (r, secs, before, after) = bulk_each_way(false);
    summary("offloads off", &r, secs);
    let c = r.iface.counters();
    assert_eq!(c.offload_rx_gso_frames, 0);
    assert_eq!(c.offload_tx_tso_frames, 0);
    assert_eq!(c.offload_rx_csum_skipped + c.offload_tx_csum_partial, 0);
    assert_eq!(after, before, "kernel InCsumErrors (tcp, udp) moved");
    assert!(r.link.rx_frames + r.link.tx_frames >= 2 * 100 * MB / 1500);
}

#[test]
fn kernel_offload_pcap_records_super_frames_with_complete_checksums() {
    require_netns!();
    let len = 5 * MB;
    let mut fx = Fixture::start(Options {
        offload: true,
        pcap: true,
        seed: 12,
        ..Options::default()
    });
    let port = 5002;
    let listener = fx.in_ns(move || TcpListener::bind(("0.0.0.0", port)).expect("bind"));
    let server = fx.peer("sink-source server", move || {
        let (conn, _) = listener.accept()?;
        peer::exchange(conn, len, 0x0ff3)
    });
    let remote = format!("{}:{port}", fx.kernel_ip).parse().expect("addr");
    let (client, rx) = BulkClient::new(remote, len, 0x0ff4);
    fx.spawn_app(client.into_app());
    let res = tcp::wait_result(&rx, Duration::from_secs(120));
    let k = server.join(Duration::from_secs(60)).expect("kernel server");
    assert!(res.error.is_none(), "client: {res:?}");
    assert_eq!((k.received, res.received), (len, len));
    let path = fx.pcap.clone().expect("pcap path");
    let r = fx.stop();
    assert!(r.iface.counters().offload_rx_gso_frames > 0);
    let records = ustack_tests::pcap::read(&path);
    let _ = std::fs::remove_file(&path);
    let mut big = 0;
    let mut tcp_frames = 0;
    for (i, rec) in records.iter().enumerate() {
        let f = ustack_capture::decode::decode_record(i + 1, rec);
        assert!(f.malformed.is_none(), "frame {}: {:?}", i + 1, f.malformed);
        if let Some(t) = &f.tcp {
            tcp_frames += 1;
            // Partial checksums were finished for the file, super-frames included.
            assert_eq!(t.checksum_ok, Some(true), "frame {}", i + 1);
        }
        if rec.data.len() > 1514 {
            big += 1;
        }
    }
    report(&format!(
        "offloads on, pcap: {} records, {tcp_frames} TCP, {big} super-frames",
        records.len()
    ));
    assert!(big > 0, "no super-frame in the recording");
}
