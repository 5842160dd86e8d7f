//! TAP offloads against the kernel (`IFF_VNET_HDR`, `TUN_F_CSUM | TUN_F_TSO4`): a stack
//! client on the socket API exchanges 100 MB each way with a kernel server, byte-exact (SHA-256 both
//! ways), once with offloads and once without. With them, the interface's counters
//! must show GSO super-frames received and TSO super-segments sent, and the kernel's
//! TCP `InCsumErrors` in the namespace must not move (our partial checksums were
//! finished correctly, or trusted as the kernel trusts its own); without them, no
//! super-frame may appear.

use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::time::Duration;
use ustack::link::{FaultConfig, Faults};
use ustack_tests::tcp::{self, BulkClient, Pattern};
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

/// Sends `len` pattern bytes on a stack socket (then half-closes) while reading it to
/// EOF on another thread; returns (sent SHA-256, bytes received, received SHA-256).
fn stack_exchange(s: ustack_socket::TcpStream, len: u64, seed: u64) -> (String, u64, String) {
    let writer = s.try_clone().expect("clone");
    let sending = std::thread::spawn(move || {
        let mut pattern = Pattern::new(seed);
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            pattern.fill(&mut buf[..n]);
            (&writer).write_all(&buf[..n]).expect("stack write");
            hash.update(&buf[..n]);
            left -= n as u64;
        }
        writer.shutdown(Shutdown::Write).expect("shutdown");
        tcp::hex(&hash.finalize())
    });
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        match (&s).read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                hash.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("stack read: {e}"),
        }
    }
    let sent = sending.join().expect("stack writer");
    (sent, n, tcp::hex(&hash.finalize()))
}

/// 100 MB each way between a stack client (on the socket API, whose driver moves
/// frames with `poll_link`) and a kernel server; returns what the stack did, the
/// seconds it took and the kernel's checksum errors before and after.
fn bulk_each_way(offload: bool) -> (StackReport, f64, (u64, u64), (u64, u64)) {
    bulk_each_way_with(offload, None, 100 * MB)
}

fn bulk_each_way_with(
    offload: bool,
    faults: Option<Faults>,
    len: u64,
) -> (StackReport, f64, (u64, u64), (u64, u64)) {
    let mut fx = Fixture::start(Options {
        offload,
        faults,
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
    let remote: std::net::SocketAddr = format!("{}:{port}", fx.kernel_ip).parse().expect("addr");
    let t0 = std::time::Instant::now();
    let s = ustack_socket::TcpStream::connect(fx.stack(), remote).expect("connect");
    let (sent_sha, received, received_sha) = stack_exchange(s, len, 0x0ff2);
    let secs = t0.elapsed().as_secs_f64();
    let k = server
        .join(Duration::from_secs(120))
        .expect("kernel server");
    assert_eq!(k.received, len, "bytes the kernel received");
    assert_eq!(k.received_sha256, sent_sha, "SHA-256 stack -> kernel");
    assert_eq!(received, len, "bytes the stack received");
    assert_eq!(k.sent_sha256, received_sha, "SHA-256 kernel -> stack");
    let after = kernel_csum_errors(&fx);
    (fx.stop(), secs, before, after)
}

fn summary(what: &str, len: u64, r: &StackReport, secs: f64) {
    let c = r.iface.counters();
    report(&format!(
        "{what}: {} MB each way in {secs:.2} s ({:.0} Mbit/s per direction); link rx {} / tx {} \
         frames; rx GSO frames {}, rx checksums skipped {}, tx TSO frames {} ({} wire \
         segments), tx partial checksums {}",
        len / MB,
        (len / MB) as f64 * 8.0 / secs.max(1e-9),
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
    summary("offloads on", 100 * MB, &r, secs);
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
    summary("offloads off", 100 * MB, &r, secs);
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
    let (tcp_frames, big) = ustack_tests::pcap::check_offload_recording(&records);
    report(&format!(
        "offloads on, pcap: {} records, {tcp_frames} TCP, {big} super-frames",
        records.len()
    ));
    assert!(big > 0, "no super-frame in the recording");
}

#[test]
fn kernel_offload_with_a_transparent_injector_still_moves_super_frames() {
    require_netns!();
    // Every host wraps its device in an injector; without faults it must pass the
    // offloads through (metadata and all), not turn them off or cut super-frames.
    let (r, secs, before, after) =
        bulk_each_way_with(true, Some(Faults::both(FaultConfig::none())), 20 * MB);
    summary("offloads on, transparent injector", 20 * MB, &r, secs);
    let c = r.iface.counters();
    assert!(c.offload_rx_gso_frames > 0 && c.offload_tx_tso_frames > 0);
    assert_eq!(after, before, "kernel InCsumErrors (tcp, udp) moved");
}

#[test]
fn kernel_offload_device_under_a_lossy_injector_falls_back_to_plain_output() {
    require_netns!();
    // With faults on, the injector reports no offloads: the stack sends plain wire
    // frames with full checksums, and the super-frames and partial checksums the
    // device still hands up are finished by the injector before the stack sees them.
    let (r, secs, before, after) = bulk_each_way_with(
        true,
        Some(Faults::both(FaultConfig {
            loss: 0.01,
            ..FaultConfig::none()
        })),
        10 * MB,
    );
    summary("offloads on, 1% loss in the injector", 10 * MB, &r, secs);
    let c = r.iface.counters();
    assert_eq!(c.offload_tx_tso_frames + c.offload_tx_csum_partial, 0);
    assert_eq!(
        c.offload_rx_csum_skipped, 0,
        "the stack verified every checksum"
    );
    assert_eq!(c.dropped(ustack::iface::DropReason::TcpChecksum), 0);
    assert_eq!(after, before, "kernel InCsumErrors (tcp, udp) moved");
}
