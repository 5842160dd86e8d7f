//! BBR (issue 13, like for like with a kernel defaulting to BBR) against the Linux
//! kernel, inside a namespace the test creates: a ustack sender whose socket asked for
//! BBR with `setsockopt(TCP_CONGESTION, "bbr")` through the socket API moves a few MB
//! to a kernel receiver through 5 % loss each way (the stack's link wrapped in the
//! seeded fault injector, `Options::faults`); the kernel checks every byte.

use std::io::Write;
use std::net::{SocketAddr, TcpListener as KernelListener};
use std::time::{Duration, Instant};
use ustack::link::fault::FaultConfig;
use ustack::link::Faults;
use ustack_socket::{SockOpt, SockOptName};
use ustack_tests::tcp::{hex, Pattern};
use ustack_tests::{peer, require_netns, Fixture, Options};

const MB: u64 = 1_000_000;

#[test]
fn kernel_bbr_sender_moves_data_through_five_percent_loss() {
    require_netns!();
    let opts = Options {
        seed: 0xbb5,
        faults: Some(Faults::both(FaultConfig {
            loss: 0.05,
            ..FaultConfig::default()
        })),
        ..Options::default()
    };
    let fx = Fixture::start(opts);
    let port = 5101;
    let bind: SocketAddr = format!("{}:{port}", fx.kernel_ip).parse().expect("addr");
    let listener = fx
        .in_ns(move || KernelListener::bind(bind))
        .expect("kernel listen");
    let receiver = fx.peer("sink", move || -> std::io::Result<(u64, String)> {
        let (c, _) = listener.accept()?;
        c.set_read_timeout(Some(Duration::from_secs(60)))?;
        peer::sink(&c)
    });

    let stack = fx.stack();
    let fd = stack
        .socket(libc::AF_INET, libc::SOCK_STREAM, 0)
        .expect("socket");
    // The default is CUBIC; the application asks for BBR as it would on Linux.
    let got = stack
        .getsockopt(fd, SockOptName::TcpCongestion)
        .expect("TCP_CONGESTION");
    assert_eq!(got, SockOpt::TcpCongestion("cubic".into()));
    stack
        .setsockopt(fd, SockOpt::TcpCongestion("bbr".into()))
        .expect("TCP_CONGESTION bbr");
    stack.connect(fd, bind).expect("connect");
    let got = stack
        .getsockopt(fd, SockOptName::TcpCongestion)
        .expect("TCP_CONGESTION");
    assert_eq!(got, SockOpt::TcpCongestion("bbr".into()));

    let len = 4 * MB;
    let mut pattern = Pattern::new(0xbb);
    let mut hash = sha2::Sha256::default();
    let mut buf = vec![0u8; 64 * 1024];
    let start = Instant::now();
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        pattern.fill(&mut buf[..n]);
        sha2::Digest::update(&mut hash, &buf[..n]);
        let mut off = 0;
        while off < n {
            off += stack.send(fd, &buf[off..n], 0).expect("send");
        }
        left -= n as u64;
    }
    stack.shutdown(fd, libc::SHUT_WR).expect("shutdown");
    let (n, ksha) = receiver
        .join(Duration::from_secs(120))
        .expect("kernel receiver");
    let secs = start.elapsed().as_secs_f64();
    let info = match stack.getsockopt(fd, SockOptName::TcpInfo) {
        Ok(SockOpt::TcpInfo(i)) => i,
        other => panic!("TCP_INFO: {other:?}"),
    };
    assert_eq!(n, len, "bytes the kernel received");
    assert_eq!(
        ksha,
        hex(&sha2::Digest::finalize(hash)),
        "SHA-256 stack -> kernel"
    );
    assert_eq!(info.congestion.to_string(), "bbr");
    assert!(info.total_retrans > 0, "5 % loss was recovered: {info:?}");
    let _ = writeln!(
        std::io::stderr(),
        "kernel_bbr: 4 MB ustack BBR -> kernel through 5 % loss each way: {secs:.2} s, {} segments / {} bytes retransmitted, {} TLPs, {} RACK-marked",
        info.total_retrans,
        info.bytes_retrans,
        info.tlp_probes,
        info.rack_lost
    );
    stack.close(fd).expect("close");
}
