//! UDP from the kernel to the stack. Needs the interface (ICMP port unreachable).

use std::io::ErrorKind;
use std::net::UdpSocket;
use std::time::Duration;
use ustack_tests::{require_netns, Fixture, Options};

#[test]
fn kernel_udp_to_closed_port_is_refused() {
    require_netns!();
    let fx = Fixture::start(Options::default());
    // A connected UDP socket turns the ICMP port unreachable into ECONNREFUSED.
    let to = format!("{}:9", fx.stack_ip);
    let got = fx
        .peer("udp client", move || -> std::io::Result<usize> {
            let s = UdpSocket::bind("0.0.0.0:0")?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.connect(&to)?;
            s.send(b"anyone there?")?;
            let mut buf = [0u8; 100];
            s.recv(&mut buf)
        })
        .join(Duration::from_secs(30));
    match got {
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
        other => panic!("expected ECONNREFUSED from the port unreachable, got {other:?}"),
    }
}
