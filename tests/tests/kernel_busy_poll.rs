//! SO_BUSY_POLL against the Linux kernel: a ustack server whose blocked accepts and
//! reads busy-poll the TAP serves kernel clients correctly, request after request and
//! connection after connection (what `ustack bench --busy-poll` measures). Correctness
//! only: the figures are the bench's business.
//!
//! Set-up as `kernel_socket_api.rs`: a TAP in a fresh namespace with the kernel on
//! 10.77.0.1/24, opened by a thread inside it and handed to the stack; the kernel's
//! side runs on a thread inside the namespace.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as KernelStream};
use std::os::fd::AsRawFd;
use std::time::Duration;
use ustack::link::sys::TapLink;
use ustack_socket::{NetStack, SockOpt, SockOptName, TcpListener};
use ustack_tests::{require_netns, spawn_peer, Netns};

const KERNEL_IP: &str = "10.77.0.1";
const STACK_IP: &str = "10.77.0.2";
/// Correctness bound for a kernel peer.
const PEER_TIMEOUT: Duration = Duration::from_secs(60);

/// A stack on a TAP inside a fresh namespace; field order is drop order.
struct Kernel {
    stack: NetStack,
    ns: Netns,
}

impl Kernel {
    fn start(busy_poll: Duration) -> Kernel {
        let ns = Netns::new("ustack-busy").expect("create namespace");
        ns.add_tap("tap0", &format!("{KERNEL_IP}/24"))
            .expect("create tap");
        let tap = ns
            .run_in(|| TapLink::open("tap0"))
            .expect("enter namespace")
            .expect("open tap0 inside the namespace");
        ns.wait_running("tap0", Duration::from_secs(5))
            .expect("the kernel's tap0 comes up");
        let fd = tap.as_raw_fd();
        let stack = NetStack::builder()
            .link_with_fd(Box::new(tap), fd)
            .ip(format!("{STACK_IP}/24").parse().expect("cidr"))
            .busy_poll(busy_poll)
            .build()
            .expect("build the stack");
        Kernel { stack, ns }
    }
}

/// Printed even when the test runner captures output.
fn report(line: &str) {
    let _ = writeln!(io::stderr(), "{line}");
}

fn stack_addr(port: u16) -> SocketAddr {
    format!("{STACK_IP}:{port}").parse().expect("addr")
}

/// 1-byte requests, 2-byte replies, as the bench's request/response figure: the
/// server (busy-polling, from the stack's default) answers every one, in order.
#[test]
fn kbusy_request_response_server_answers_every_request() {
    require_netns!();
    const N: u32 = 3000;
    let k = Kernel::start(Duration::from_micros(50));
    let l = TcpListener::bind(&k.stack, "0.0.0.0:7100").expect("bind");
    assert_eq!(
        k.stack.getsockopt(l.fd(), SockOptName::BusyPoll),
        Ok(SockOpt::BusyPoll(50))
    );
    let server = std::thread::spawn(move || -> io::Result<u32> {
        let (mut s, _) = l.accept()?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(PEER_TIMEOUT))?;
        let (mut buf, mut out, mut n) = ([0u8; 64], Vec::new(), 0u32);
        loop {
            let got = s.read(&mut buf)?;
            if got == 0 {
                return Ok(n);
            }
            out.clear();
            for &b in &buf[..got] {
                out.extend_from_slice(&[b, !b]);
            }
            s.write_all(&out)?;
            n += got as u32;
        }
    });
    let client = spawn_peer(&k.ns, "rr client", move || -> io::Result<u32> {
        let mut c = KernelStream::connect_timeout(&stack_addr(7100), PEER_TIMEOUT)?;
        c.set_nodelay(true)?;
        c.set_read_timeout(Some(PEER_TIMEOUT))?;
        let mut two = [0u8; 2];
        for i in 0..N {
            let b = i as u8;
            c.write_all(&[b])?;
            c.read_exact(&mut two)?;
            if two != [b, !b] {
                return Err(io::Error::other(format!("reply {i}: {two:?}")));
            }
        }
        Ok(N)
    });
    let sent = client.join(PEER_TIMEOUT).expect("kernel client");
    assert_eq!(sent, N);
    let served = server.join().expect("server thread").expect("server");
    assert_eq!(served, N, "every request was answered once");
    let d = k.stack.driver_stats();
    report(&format!(
        "request/response, {N} round trips: {} spins, {} passes, {} cut short by a switch-out, {} sleeps in ppoll",
        d.busy_polls, d.busy_passes, d.busy_preempted, d.leads
    ));
    assert!(d.busy_polls > 0, "the server busy-polled: {d:?}");
}

/// Serial connect, read `hello\n`, close, as the bench's connection rate: a listener
/// with SO_BUSY_POLL set greets every connection, and every one reads its greeting and
/// EOF.
#[test]
fn kbusy_connection_loop_greets_every_connection() {
    require_netns!();
    const N: usize = 400;
    let k = Kernel::start(Duration::ZERO);
    let l = TcpListener::bind(&k.stack, "0.0.0.0:7101").expect("bind");
    k.stack
        .setsockopt(l.fd(), SockOpt::BusyPoll(50))
        .expect("SO_BUSY_POLL");
    k.stack
        .setsockopt(l.fd(), SockOpt::RcvTimeo(Some(PEER_TIMEOUT)))
        .expect("SO_RCVTIMEO");
    let server = std::thread::spawn(move || -> io::Result<usize> {
        for _ in 0..N {
            let (mut s, _) = l.accept()?;
            s.set_nodelay(true)?;
            s.write_all(b"hello\n")?;
        }
        Ok(N)
    });
    let client = spawn_peer(&k.ns, "connection loop", move || -> io::Result<usize> {
        let mut ok = 0;
        for i in 0..N {
            let mut c = KernelStream::connect_timeout(&stack_addr(7101), PEER_TIMEOUT)?;
            c.set_read_timeout(Some(PEER_TIMEOUT))?;
            let mut got = Vec::new();
            c.read_to_end(&mut got)?;
            if got != b"hello\n" {
                return Err(io::Error::other(format!("connection {i}: {got:?}")));
            }
            ok += 1;
        }
        Ok(ok)
    });
    let greeted = client.join(PEER_TIMEOUT).expect("kernel client");
    assert_eq!(greeted, N);
    assert_eq!(server.join().expect("server thread").expect("server"), N);
    let d = k.stack.driver_stats();
    report(&format!(
        "connection loop, {N} connections: {} spins, {} passes, {} cut short by a switch-out, {} sleeps in ppoll",
        d.busy_polls, d.busy_passes, d.busy_preempted, d.leads
    ));
    assert!(d.busy_polls > 0, "the acceptor busy-polled: {d:?}");
}
