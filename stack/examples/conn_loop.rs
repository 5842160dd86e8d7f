//! Serial connections between two TCP layers in memory, for counting per-connection
//! work under callgrind (issue 10's connection rate): the client connects, the server
//! accepts, writes `hello\n` and closes, the client reads to EOF and closes, as `ustack
//! bench`'s connection-rate row does over a TAP. No device and no IP layer: segments
//! go from one layer's `dispatch` straight to the other's `process`, on a virtual clock
//! that advances 50 µs per connection, so TIME-WAIT connections pile up as in a real
//! run (20k connections a second, 60 s of TIME-WAIT).
//!
//! `valgrind --tool=callgrind target/release/examples/conn_loop 20000` minus the same
//! with 10000, divided by 10000, is the instruction count per connection.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use ustack::socket::tcp::{SegmentAddrs, TcpConfig, TcpContext, TcpLayer};
use ustack::socket::LocalAddrs;
use ustack::time::{Duration, Instant};
use ustack::wire::TcpRepr;

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// A segment in flight: its addresses, header fields and a copy of its payload.
struct Seg {
    addrs: SegmentAddrs,
    repr: TcpRepr<'static>,
    payload: Vec<u8>,
}

fn cx(now: Instant, ip: Ipv4Addr) -> TcpContext {
    TcpContext {
        now,
        local: LocalAddrs::v4(ip),
        mtu: 1500,
        mtu6: 1500,
    }
}

/// Moves segments both ways until neither layer has anything to send.
fn pump(a: &mut TcpLayer, b: &mut TcpLayer, now: Instant, queue: &mut Vec<Seg>) -> usize {
    let (cxa, cxb) = (cx(now, CLIENT), cx(now, SERVER));
    let mut moved = 0;
    loop {
        for (from, cxf) in [(&mut *a, &cxa), (&mut *b, &cxb)] {
            while from.dispatch(cxf, &mut |addrs, r| {
                queue.push(Seg {
                    addrs,
                    repr: TcpRepr { payload: &[], ..*r },
                    payload: r.payload.to_vec(),
                })
            }) {}
        }
        if queue.is_empty() {
            return moved;
        }
        for s in queue.drain(..) {
            moved += 1;
            let repr = TcpRepr {
                payload: &s.payload,
                ..s.repr
            };
            let to_server = s.addrs.dst == IpAddr::V4(SERVER);
            let (to, cxt) = if to_server {
                (&mut *b, &cxb)
            } else {
                (&mut *a, &cxa)
            };
            if let Some((back, reply)) = to.process(cxt, s.addrs, &repr) {
                // Replies (RST, ACK) go straight back.
                let (peer, cxp) = if to_server {
                    (&mut *a, &cxa)
                } else {
                    (&mut *b, &cxb)
                };
                moved += 1;
                let _ = peer.process(cxp, back, &reply);
            }
        }
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let mut a = TcpLayer::new(TcpConfig::default(), 1);
    let mut b = TcpLayer::new(TcpConfig::default(), 2);
    let server = SocketAddr::new(IpAddr::V4(SERVER), 80);
    let listener = b.socket();
    b.listen(listener, server, 128).expect("listen");
    let mut now = Instant::from_millis(0);
    let mut queue = Vec::new();
    let mut segments = 0;
    let mut buf = [0u8; 64];
    for _ in 0..n {
        let c = a.socket();
        a.connect(c, &cx(now, CLIENT), server).expect("connect");
        segments += pump(&mut a, &mut b, now, &mut queue);
        let (s, _) = b.accept(listener).expect("accept");
        assert_eq!(b.send(s, b"hello\n"), Ok(6));
        b.close(s, &cx(now, SERVER)).expect("close");
        segments += pump(&mut a, &mut b, now, &mut queue);
        assert_eq!(a.recv(c, &mut buf), Ok(6));
        assert_eq!(a.recv(c, &mut buf), Ok(0));
        a.close(c, &cx(now, CLIENT)).expect("close");
        segments += pump(&mut a, &mut b, now, &mut queue);
        now += Duration::from_micros(50);
        for (l, ip) in [(&mut a, CLIENT), (&mut b, SERVER)] {
            if l.poll_at().is_some_and(|t| t <= now) {
                l.handle_timeout(&cx(now, ip));
            }
        }
        segments += pump(&mut a, &mut b, now, &mut queue);
    }
    println!(
        "{n} connections, {segments} segments, {:.2} segments per connection; sockets left: client {}, server {}",
        segments as f64 / n as f64,
        a.socket_count(),
        b.socket_count()
    );
}
