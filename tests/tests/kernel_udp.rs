//! UDP from the kernel to the stack. Needs the interface (ICMP port unreachable).

use ustack_tests::{require_netns, Fixture, Options};

#[test]
fn kernel_udp_to_closed_port_is_refused() {
    require_netns!("python3");
    let fx = Fixture::start(Options::default());
    // A connected UDP socket turns the ICMP port unreachable into ECONNREFUSED.
    let script = format!(
        r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect(("{ip}", 9))
s.send(b"anyone there?")
try:
    s.recv(100)
    print("DATA")
except ConnectionRefusedError:
    print("REFUSED")
except socket.timeout:
    print("TIMEOUT")
"#,
        ip = fx.stack_ip
    );
    let out = fx.exec(&["python3", "-c", &script]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        "REFUSED",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
