//! AF_PACKET offloads (`PACKET_VNET_HDR`) against the kernel, over a veth pair in a
//! private namespace: a `NetStack` on `veth1` (AF_PACKET, `--offload auto`) and a
//! kernel TCP peer on `veth0`.
//!
//! - With the veth's default offloads on the kernel's end (transmit checksum, TSO; the
//!   harness turns the checksum off and these tests turn it back on), 40 MB kernel →
//!   stack arrive byte-exact as GSO super-frames with partial checksums, and 40 MB
//!   stack → kernel leave as TSO super-segments that the kernel takes without a
//!   checksum error; the same over IPv6 (TCPV6 super-frames, TSO6).
//! - With offloads off on our side and on the kernel's end (the configuration the
//!   docs asked for before), the same transfers still work, one wire frame per read;
//!   offloads on our side with the kernel's end plain are byte-exact too; `--pcap`
//!   records super-frames whole with finished checksums.
//!
//! Each prints its time, so the modes can be compared (`USTACK_PACKET_OFFLOAD_MB`
//! sets the bulk length).

use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener};
use std::time::Duration;
use ustack::iface::DropReason;
use ustack_socket::ethtool;
use ustack_tests::tcp::{self, Pattern};
use ustack_tests::{peer, require_netns, Fixture, LinkKind, Options, StackReport};

const MB: u64 = 1_000_000;

/// Bytes of the bulk transfers: 40 MB, or `USTACK_PACKET_OFFLOAD_MB` (for a longer,
/// steadier measurement of the printed times; docs/performance.md).
fn bulk_len() -> u64 {
    std::env::var("USTACK_PACKET_OFFLOAD_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&mb| mb > 0)
        .unwrap_or(40)
        * MB
}

/// Which way the bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    KernelToStack,
    StackToKernel,
}

/// What one transfer did.
struct Run {
    report: StackReport,
    /// The kernel's TCP `InCsumErrors` moved by this much.
    kernel_csum_errors: u64,
    /// The records of the classic pcap the stack wrote, if asked to.
    pcap: Option<Vec<ustack::link::PcapRecord>>,
}

fn kernel_tcp_csum_errors(fx: &Fixture) -> u64 {
    let text = fx
        .in_ns(|| peer::read_net_file("snmp"))
        .expect("/proc/net/snmp");
    peer::mib_value(&text, "Tcp", "InCsumErrors").expect("Tcp InCsumErrors")
}

/// `len` bytes one way between a stack on `veth1` (offloads per `offload`) and a kernel
/// peer on `veth0` (default offloads when `peer_offloads`, transmit checksum and TSO
/// off otherwise), checked by SHA-256.
fn transfer(dir: Dir, offload: bool, peer_offloads: bool, len: u64) -> Run {
    transfer_with(dir, offload, peer_offloads, len, With::default())
}

/// What else a [`transfer_with`] does.
#[derive(Clone, Copy, Debug, Default)]
struct With {
    /// Record a classic pcap (`--pcap`).
    pcap: bool,
    /// Over IPv6 (fd00:77::2 → fd00:77::1) instead of IPv4.
    ipv6: bool,
}

fn transfer_with(dir: Dir, offload: bool, peer_offloads: bool, len: u64, with: With) -> Run {
    let mut fx = Fixture::start(Options {
        link: LinkKind::Veth,
        offload,
        pcap: with.pcap,
        ipv6: with.ipv6,
        seed: 21,
        ..Options::default()
    });
    let kernel_if = "veth0";
    let now = fx
        .in_ns(move || {
            if peer_offloads {
                // What `ip link add type veth` gives; the harness turned it off.
                ethtool::set_tx_checksum(kernel_if, true)?;
            }
            ethtool::get(kernel_if)
        })
        .expect("veth0 offloads");
    assert_eq!(
        (now.tx_csum, now.tso),
        (peer_offloads, peer_offloads),
        "veth0 offloads: {now}"
    );
    let before = kernel_tcp_csum_errors(&fx);
    let port = 5011;
    let any = if with.ipv6 { "::" } else { "0.0.0.0" };
    let listener = fx.in_ns(move || TcpListener::bind((any, port)).expect("bind"));
    const SEED: u64 = 0x7e7;
    let server = fx.peer("kernel peer", move || -> io::Result<(u64, String)> {
        let (conn, _) = listener.accept()?;
        match dir {
            Dir::KernelToStack => {
                let sha = peer::source(&conn, len, SEED)?;
                // Until the stack closes: every byte was taken.
                let (extra, _) = peer::sink(&conn)?;
                Ok((extra, sha))
            }
            Dir::StackToKernel => {
                let got = peer::sink(&conn)?;
                conn.shutdown(Shutdown::Write)?;
                Ok(got)
            }
        }
    });
    let remote: std::net::SocketAddr = if with.ipv6 {
        format!("[fd00:77::1]:{port}")
    } else {
        format!("{}:{port}", fx.kernel_ip)
    }
    .parse()
    .expect("addr");
    let t0 = std::time::Instant::now();
    let s = ustack_socket::TcpStream::connect(fx.stack(), remote).expect("connect");
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut moved = 0u64;
    match dir {
        Dir::KernelToStack => loop {
            match (&s).read(&mut buf) {
                Ok(0) => break,
                Ok(k) => {
                    hash.update(&buf[..k]);
                    moved += k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("stack read: {e}"),
            }
        },
        Dir::StackToKernel => {
            let mut pattern = Pattern::new(SEED);
            while moved < len {
                let n = (len - moved).min(buf.len() as u64) as usize;
                pattern.fill(&mut buf[..n]);
                (&s).write_all(&buf[..n]).expect("stack write");
                hash.update(&buf[..n]);
                moved += n as u64;
            }
        }
    }
    s.shutdown(Shutdown::Write).expect("shutdown");
    if dir == Dir::StackToKernel {
        let mut rest = Vec::new();
        (&s).read_to_end(&mut rest)
            .expect("stack reads the kernel's FIN");
        assert!(rest.is_empty());
    }
    let secs = t0.elapsed().as_secs_f64();
    let (kernel_n, kernel_sha) = server.join(Duration::from_secs(120)).expect("kernel peer");
    let ours = tcp::hex(&hash.finalize());
    match dir {
        Dir::KernelToStack => {
            assert_eq!(moved, len, "bytes the stack received");
            assert_eq!(kernel_n, 0, "the kernel received nothing");
        }
        Dir::StackToKernel => assert_eq!(kernel_n, len, "bytes the kernel received"),
    }
    assert_eq!(ours, kernel_sha, "SHA-256 of the stream");
    let after = kernel_tcp_csum_errors(&fx);
    drop(s);
    let path = fx.pcap.clone();
    let report = fx.stop();
    // Read before the fixture goes (it removes the file).
    let pcap = path.map(|p| ustack_tests::pcap::read(&p));
    let c = report.iface.counters();
    assert_eq!(c.dropped(DropReason::OffloadBadMeta), 0);
    assert_eq!(c.dropped(DropReason::TcpChecksum), 0);
    let _ = writeln!(
        io::stderr(),
        "AF_PACKET offload {} (veth0 offloads {}): {} MB {dir:?} in {secs:.3} s ({:.0} Mbit/s); \
         link rx {} / tx {} frames; rx GSO frames {}, rx checksums skipped {}, tx TSO \
         frames {} ({} wire segments), tx partial checksums {}",
        if offload { "on" } else { "off" },
        if peer_offloads { "on" } else { "off" },
        len / MB,
        len as f64 * 8.0 / secs.max(1e-9) / 1e6,
        report.link.rx_frames,
        report.link.tx_frames,
        c.offload_rx_gso_frames,
        c.offload_rx_csum_skipped,
        c.offload_tx_tso_frames,
        c.offload_tx_tso_segments,
        c.offload_tx_csum_partial,
    );
    Run {
        report,
        kernel_csum_errors: after - before,
        pcap,
    }
}

#[test]
fn kernel_packet_offload_receives_gso_super_frames_from_a_default_veth_byte_exact() {
    require_netns!();
    let len = bulk_len();
    let r = transfer(Dir::KernelToStack, true, true, len);
    let c = r.report.iface.counters();
    assert!(c.offload_rx_gso_frames > 0, "no GSO super-frame received");
    assert!(
        c.offload_rx_csum_skipped > 0,
        "no partial or validated checksum"
    );
    // Far fewer frames than 1448-byte segments would need.
    assert!(
        r.report.link.rx_frames < len / 1448 / 2,
        "{} frames received: super-frames barely used",
        r.report.link.rx_frames
    );
    // Our ACKs left with partial checksums, which the kernel finished or trusted.
    assert_eq!(r.kernel_csum_errors, 0, "kernel Tcp InCsumErrors moved");
}

#[test]
fn kernel_packet_offload_sends_tso_super_segments_the_kernel_takes() {
    require_netns!();
    let len = bulk_len();
    let r = transfer(Dir::StackToKernel, true, true, len);
    let c = r.report.iface.counters();
    assert!(c.offload_tx_tso_frames > 0, "no TSO super-segment sent");
    assert!(
        c.offload_tx_tso_segments > c.offload_tx_tso_frames,
        "super-segments stand for several wire segments"
    );
    assert!(c.offload_tx_csum_partial > 0);
    assert_eq!(r.kernel_csum_errors, 0, "kernel Tcp InCsumErrors moved");
    assert!(
        r.report.link.tx_frames < len / 1448 / 2,
        "{} frames sent: super-segments barely used",
        r.report.link.tx_frames
    );
}

/// Regression: offloads off on our side, the kernel's end as the docs used to ask
/// (transmit checksum and TSO off): plain wire frames both ways, byte-exact.
#[test]
fn kernel_packet_offload_off_with_the_peer_offloads_off_moves_wire_frames() {
    require_netns!();
    // As long as the offload tests: the printed times compare.
    let len = bulk_len();
    for dir in [Dir::KernelToStack, Dir::StackToKernel] {
        let r = transfer(dir, false, false, len);
        let c = r.report.iface.counters();
        assert_eq!(
            c.offload_rx_gso_frames + c.offload_tx_tso_frames + c.offload_rx_csum_skipped,
            0,
            "{dir:?}: offload metadata without offloads"
        );
        assert_eq!(c.offload_tx_csum_partial, 0, "{dir:?}");
        assert_eq!(
            r.kernel_csum_errors, 0,
            "{dir:?}: kernel Tcp InCsumErrors moved"
        );
        let frames = match dir {
            Dir::KernelToStack => r.report.link.rx_frames,
            Dir::StackToKernel => r.report.link.tx_frames,
        };
        assert!(
            frames >= len / 1500,
            "{dir:?}: {frames} frames for {len} bytes"
        );
    }
}

/// Offloads on our side, the kernel's end plain: nothing to reassemble, but the
/// stack's TSO super-segments are still cut by the kernel for veth0.
#[test]
fn kernel_packet_offload_on_with_the_peer_offloads_off_is_byte_exact() {
    require_netns!();
    let len = 20 * MB;
    for dir in [Dir::KernelToStack, Dir::StackToKernel] {
        let r = transfer(dir, true, false, len);
        let c = r.report.iface.counters();
        assert_eq!(c.offload_rx_gso_frames, 0, "{dir:?}: veth0 sends no GSO");
        assert_eq!(
            r.kernel_csum_errors, 0,
            "{dir:?}: kernel Tcp InCsumErrors moved"
        );
        if dir == Dir::StackToKernel {
            assert!(c.offload_tx_tso_frames > 0, "TSO needs nothing from veth0");
        }
    }
}

/// `--pcap` on an offloading AF_PACKET link records as on an offloading TAP: the
/// super-frames whole, their partial checksums finished for the file.
#[test]
fn kernel_packet_offload_pcap_records_super_frames_with_complete_checksums() {
    require_netns!();
    let r = transfer_with(
        Dir::KernelToStack,
        true,
        true,
        5 * MB,
        With {
            pcap: true,
            ..With::default()
        },
    );
    assert!(r.report.iface.counters().offload_rx_gso_frames > 0);
    let records = r.pcap.expect("a recording");
    let (tcp_frames, big) = ustack_tests::pcap::check_offload_recording(&records);
    let _ = writeln!(
        io::stderr(),
        "AF_PACKET offload on, pcap: {} records, {tcp_frames} TCP, {big} super-frames",
        records.len()
    );
    assert!(big > 0, "no super-frame in the recording");
    assert!(tcp_frames > big, "the handshake and ACKs are recorded too");
}

/// IPv6 both ways with the veth defaults: GSO TCPV6 super-frames in, TSO6 out.
#[test]
fn kernel_packet_offload_over_ipv6_moves_tcpv6_super_frames_both_ways() {
    require_netns!();
    let len = 20 * MB;
    let ipv6 = With {
        ipv6: true,
        ..With::default()
    };
    let r = transfer_with(Dir::KernelToStack, true, true, len, ipv6);
    let c = r.report.iface.counters();
    assert!(c.offload_rx_gso_frames > 0, "no TCPV6 super-frame received");
    assert_eq!(r.kernel_csum_errors, 0, "kernel Tcp InCsumErrors moved");
    let r = transfer_with(Dir::StackToKernel, true, true, len, ipv6);
    let c = r.report.iface.counters();
    assert!(c.offload_tx_tso_frames > 0, "no TSO6 super-segment sent");
    assert_eq!(r.kernel_csum_errors, 0, "kernel Tcp InCsumErrors moved");
}
