//! The recovery probe (docs/tcp.md, beyond RFC 8985) against the Linux kernel, inside
//! a namespace the test creates: ustack sends short transfers to a kernel receiver
//! through 20 % loss on the stack's own segments (the seeded fault injector), so
//! retransmissions are lost in fast recovery with nothing sent after them. The
//! kernel must take the probes (SND.UNA's segment again, after 2·SRTT + 2 ms without
//! an ACK) like any retransmission: every transfer arrives byte for byte, and the
//! stack did send probes.

use std::io::Write;
use std::net::{SocketAddr, TcpListener as KernelListener};
use std::time::Duration;
use ustack::link::fault::FaultConfig;
use ustack::link::Faults;
use ustack_socket::{SockOpt, SockOptName};
use ustack_tests::tcp::{hex, Pattern};
use ustack_tests::{peer, require_netns, Fixture, Options};

#[test]
fn kernel_receiver_takes_recovery_probes_byte_exact() {
    require_netns!();
    const CONNS: u64 = 32;
    const LEN: u64 = 100_000;
    let opts = Options {
        seed: 0x9a0b,
        faults: Some(Faults {
            rx: FaultConfig::default(),
            tx: FaultConfig {
                loss: 0.2,
                ..FaultConfig::default()
            },
        }),
        ..Options::default()
    };
    let fx = Fixture::start(opts);
    let port = 5109;
    let bind: SocketAddr = format!("{}:{port}", fx.kernel_ip).parse().expect("addr");
    let listener = fx
        .in_ns(move || KernelListener::bind(bind))
        .expect("kernel listen");
    let receiver = fx.peer("sink", move || -> std::io::Result<Vec<(u64, String)>> {
        let mut got = Vec::new();
        for _ in 0..CONNS {
            let (c, _) = listener.accept()?;
            c.set_read_timeout(Some(Duration::from_secs(60)))?;
            got.push(peer::sink(&c)?);
        }
        Ok(got)
    });

    let stack = fx.stack();
    let (mut probes, mut tlps, mut retrans) = (0u64, 0u64, 0u64);
    let mut sums = Vec::new();
    for k in 0..CONNS {
        let fd = stack
            .socket(libc::AF_INET, libc::SOCK_STREAM, 0)
            .expect("socket");
        stack.connect(fd, bind).expect("connect");
        let mut pattern = Pattern::new(k);
        let mut buf = vec![0u8; LEN as usize];
        pattern.fill(&mut buf);
        sums.push(hex(&sha2::Digest::finalize(
            <sha2::Sha256 as sha2::Digest>::new_with_prefix(&buf),
        )));
        let mut off = 0;
        while off < buf.len() {
            off += stack.send(fd, &buf[off..], 0).expect("send");
        }
        stack.shutdown(fd, libc::SHUT_WR).expect("shutdown");
        // Wait until everything is acknowledged, so the counters are final.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let info = loop {
            let info = match stack.getsockopt(fd, SockOptName::TcpInfo) {
                Ok(SockOpt::TcpInfo(i)) => i,
                other => panic!("TCP_INFO: {other:?}"),
            };
            if info.unacked == 0 || std::time::Instant::now() > deadline {
                break info;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(info.unacked, 0, "connection {k} never finished: {info:?}");
        probes += info.recovery_probes;
        tlps += info.tlp_probes;
        retrans += info.total_retrans;
        stack.close(fd).expect("close");
    }
    let got = receiver
        .join(Duration::from_secs(240))
        .expect("kernel receiver");
    for (k, ((n, sha), want)) in got.iter().zip(&sums).enumerate() {
        assert_eq!(*n, LEN, "connection {k}: bytes the kernel received");
        assert_eq!(sha, want, "connection {k}: SHA-256 stack -> kernel");
    }
    let _ = writeln!(
        std::io::stderr(),
        "kernel_recovery_probe: {CONNS} x {LEN} bytes ustack -> kernel through 20 % loss on the stack's segments: {probes} recovery probes, {tlps} TLPs, {retrans} segments retransmitted"
    );
    assert!(
        probes > 0,
        "no recovery probe was sent: the seed no longer tests it"
    );
}
