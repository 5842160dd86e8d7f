//! Shared helpers of the fuzz targets: interfaces set up as the targets need them, frame
//! builders, and the invariants every target checks after each input.
//!
//! The targets live in `fuzz_targets/`; `scripts/fuzz` builds them with libFuzzer's
//! coverage flags on the stable toolchain and runs each for a given time.

use core::net::{Ipv4Addr, SocketAddrV4};
use ustack::iface::{Config, Interface};
use ustack::socket::tcp::{TcpHandle, TcpState};
use ustack::time::{Duration, Instant};
use ustack::wire::{checksum, EthernetAddress, Ipv4Cidr, TcpRepr};

/// The interface under test.
pub const US_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
/// Its address.
pub const US_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// The peer that set up the connection (and whose frames the targets forge).
pub const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
/// Its address.
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The listening port.
pub const PORT: u16 = 80;
/// Receive and send buffers of the interface under test (small: more edge cases).
pub const BUF_LEN: usize = 8192;

/// A host on 10.0.0.0/24 that knows its peer statically.
pub fn host(mac: EthernetAddress, ip: Ipv4Addr, peer: (Ipv4Addr, EthernetAddress)) -> Interface {
    let mut c = Config::new(mac, Ipv4Cidr::new(ip, 24));
    c.arp.gratuitous_at_start = false;
    c.static_neighbors = vec![peer];
    c.seed = u64::from(ip.octets()[3]);
    c.tcp.rx_buffer_len = BUF_LEN;
    c.tcp.tx_buffer_len = BUF_LEN;
    c.tcp.max_backlog = 8;
    Interface::new(c, Instant::ZERO)
}

/// A fresh interface with a TCP listener on [`PORT`] (returned) and a UDP socket bound
/// to port 7.
pub fn fresh_interface() -> (Interface, TcpHandle) {
    let mut i = host(US_MAC, US_IP, (PEER_IP, PEER_MAC));
    let l = i.tcp().socket();
    i.tcp()
        .listen(l, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT).into(), 4)
        .expect("listen");
    let u = i.udp().socket();
    i.udp()
        .bind(
            u,
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7).into(),
            &ustack::socket::LocalAddrs::v4(US_IP),
        )
        .expect("bind");
    (i, l)
}

/// Takes every connection the listener has completed.
pub fn accept_all(iface: &mut Interface, l: TcpHandle, into: &mut Vec<TcpHandle>) {
    while let Ok((h, _)) = iface.tcp().accept(l) {
        into.push(h);
    }
}

/// An Ethernet frame carrying an IPv4 packet with `payload` (header checksum right).
pub fn ipv4_frame(
    src: (EthernetAddress, Ipv4Addr),
    dst: (EthernetAddress, Ipv4Addr),
    protocol: u8,
    ident: u16,
    frag: (u16, bool),
    payload: &[u8],
) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut f = vec![0u8; 14 + total];
    f[0..6].copy_from_slice(&dst.0 .0);
    f[6..12].copy_from_slice(&src.0 .0);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(total.min(65535) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&ident.to_be_bytes());
    let frag_field = (frag.0 & 0x1fff) | if frag.1 { 0x2000 } else { 0 };
    ip[6..8].copy_from_slice(&frag_field.to_be_bytes());
    ip[8] = 64;
    ip[9] = protocol;
    ip[12..16].copy_from_slice(&src.1.octets());
    ip[16..20].copy_from_slice(&dst.1.octets());
    let sum = checksum::of(&f[14..34]);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    f[34..].copy_from_slice(payload);
    f
}

/// A frame from the peer to us carrying `seg`.
pub fn tcp_frame(seg: &TcpRepr<'_>) -> Vec<u8> {
    let mut tcp = vec![0u8; seg.buffer_len()];
    seg.emit(&mut tcp, PEER_IP, US_IP);
    ipv4_frame((PEER_MAC, PEER_IP), (US_MAC, US_IP), 6, 1, (0, false), &tcp)
}

/// Sends everything `iface` has to send into the void; returns the frame count.
/// Every frame must fit the buffer it was given.
pub fn drain(iface: &mut Interface, now: Instant) -> usize {
    let mut buf = [0u8; 1514];
    let mut n = 0;
    while let Some(len) = iface.poll_transmit(now, &mut buf) {
        assert!(
            len <= buf.len(),
            "frame of {len} bytes in a {} buffer",
            buf.len()
        );
        n += 1;
        assert!(n < 100_000, "poll_transmit never ends");
    }
    n
}

/// Runs `iface`'s timers forward until none is left or `limit` passes, draining
/// output; returns the time reached. A step cap catches a timer that never advances.
pub fn run_timers(iface: &mut Interface, mut now: Instant, limit: Duration) -> Instant {
    let end = now + limit;
    for _ in 0..100_000 {
        drain(iface, now);
        match iface.poll_timeout() {
            Some(t) if t <= end => {
                now = now.max(t);
                iface.handle_timeout(now);
            }
            _ => return now,
        }
    }
    panic!("timers still firing after 100,000 steps");
}

/// The per-connection invariants: SND.UNA <= SND.NXT, queues within their buffers,
/// the receive window within the buffer.
pub fn check_connection(iface: &mut Interface, h: TcpHandle) {
    let Some(i) = iface.tcp().info(h) else {
        return;
    };
    assert!(
        i.snd_una <= i.snd_nxt,
        "SND.UNA {:?} > SND.NXT {:?}",
        i.snd_una,
        i.snd_nxt
    );
    assert!(
        i.send_queue <= BUF_LEN,
        "send queue {} over {BUF_LEN}",
        i.send_queue
    );
    assert!(
        i.recv_queue <= BUF_LEN,
        "receive queue {} over {BUF_LEN}",
        i.recv_queue
    );
    assert!(
        i.recv_queue + i.rcv_wnd <= BUF_LEN + (1 << i.rcv_wscale),
        "window {} + queued {} over the buffer {BUF_LEN}",
        i.rcv_wnd,
        i.recv_queue
    );
    if i.state == TcpState::Established {
        assert!(i.snd_mss > 0 && i.snd_mss <= 1460, "MSS {}", i.snd_mss);
    }
}

/// Every socket alive or freed: after the application closed everything and every
/// timer ran out, only the listeners stay.
pub fn check_all_freed(iface: &mut Interface, now: Instant, l: TcpHandle, handles: &[TcpHandle]) {
    let mut handles = handles.to_vec();
    accept_all(iface, l, &mut handles);
    for &h in &handles {
        let cx = iface.tcp_context(now);
        let _ = iface.tcp().close(h, &cx);
    }
    let mut end = now;
    // Connections completing while timers run (a retransmitted SYN,ACK answered by
    // nobody cannot, but be thorough) are taken and closed too.
    for _ in 0..4 {
        end = run_timers(iface, end, Duration::from_secs(4 * 3600));
        let mut more = Vec::new();
        accept_all(iface, l, &mut more);
        if more.is_empty() {
            break;
        }
        for h in more {
            let cx = iface.tcp_context(end);
            let _ = iface.tcp().close(h, &cx);
        }
    }
    let n = iface.tcp().socket_count();
    assert_eq!(
        n, 1,
        "{n} TCP sockets left {:?} after closing everything and running every timer",
        end
    );
}
