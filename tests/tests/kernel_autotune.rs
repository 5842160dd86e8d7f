//! Receive-window autotuning against the kernel's sender (issue 13): the kernel sends
//! to the stack's echo service, with and without injected loss on the device, and
//! the stack's own capture must show its advertised window growing past 1 MB (from a
//! 128 KiB start), scaled by the shift its SYN,ACK announced for the 6 MiB maximum.

use std::io::Write;
use std::time::Duration;
use ustack::link::fault::FaultConfig;
use ustack::link::Faults;
use ustack_tests::{pcap, peer, require_netns, tcp, Fixture, Options};

const MB: u64 = 1_000_000;

/// Printed even when the test runner captures output.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The stack's SYN,ACK window scale and the largest window it advertised, from its
/// capture: frames whose source is `stack_ip`.
fn stack_windows(path: &std::path::Path, stack_ip: &str) -> (u8, usize) {
    let stack_ip: std::net::Ipv4Addr = stack_ip.parse().expect("stack ip");
    let (mut shift, mut max) = (0u8, 0usize);
    pcap::each_ipv4_tcp(path, |ip, tcp| {
        if ip.src_addr != stack_ip {
            return;
        }
        if tcp.flags.syn() {
            // RFC 7323 §2.2: a SYN's window is not scaled.
            shift = tcp.options.window_scale.unwrap_or(0);
            max = max.max(usize::from(tcp.window_len));
        } else {
            max = max.max(usize::from(tcp.window_len) << shift);
        }
    });
    (shift, max)
}

fn window_grows(loss: Option<f64>, seed: u64) {
    let (make, stats) = tcp::echo_app(7);
    // The loss is ustack's injector on the device, both directions. iptables in the
    // namespace would not do: a segment its OUTPUT chain drops is a local send error
    // to the kernel's TCP, which sends it again as new data (no retransmission, no
    // loss seen by the receiver); only its INPUT drops are wire loss.
    let faults = loss.map(|p| {
        Faults::both(FaultConfig {
            loss: p,
            ..FaultConfig::default()
        })
    });
    let mut fx = Fixture::start_with_app(
        Options {
            pcap: true,
            seed,
            faults,
            ..Options::default()
        },
        make,
    );
    let len = 30 * MB;
    let to = format!("{}:7", fx.stack_ip).parse().expect("addr");
    let t = fx
        .peer("echo client", move || peer::echo_client(to, len, 0xa070))
        .join(Duration::from_secs(300))
        .expect("kernel echo client");
    assert_eq!(t.received, len, "bytes echoed back");
    assert_eq!(t.sent_sha256, t.received_sha256, "SHA-256 sent vs echoed");
    let s = *stats.lock().unwrap();
    assert_eq!((s.completed, s.failed), (1, 0), "{s:?}");
    let stack_ip = fx.stack_ip.clone();
    // The loss must really have happened: the kernel sender retransmitted.
    let kernel_retrans = fx.kernel_retrans_segs();
    if loss.is_some() {
        assert!(
            kernel_retrans > 0,
            "iptables loss, but the kernel retransmitted nothing"
        );
    }
    fx.stop();
    let path = fx.pcap.clone().expect("pcap on");
    let (shift, max) = stack_windows(&path, &stack_ip);
    report(&format!(
        "kernel sender, {} MB echoed, loss {}: stack window scale {shift}, largest window \
         advertised {max} B; kernel RetransSegs {kernel_retrans}; {:.2} s",
        len / MB,
        loss.unwrap_or(0.0),
        t.elapsed.as_secs_f64()
    ));
    // 65535 << 7 covers the 6 MiB maximum (RFC 7323 §2.3, Linux tcp_rmem[2]).
    assert_eq!(shift, 7, "window scale for the autotuning maximum");
    assert!(max > 1 << 20, "the window never grew past 1 MiB: {max}");
}

#[test]
fn kernel_autotune_window_grows_past_1mb_for_a_kernel_sender() {
    require_netns!();
    window_grows(None, 31);
}

#[test]
fn kernel_autotune_window_grows_past_1mb_under_3_percent_loss() {
    require_netns!();
    window_grows(Some(0.03), 32);
}
