//! Per-frame cost of the interface paths, ustack side by side with smoltcp, both fed the
//! same real frames (the repository capture) through their own device abstraction.
//!
//! Also the checksum alone, against smoltcp's and etherparse's.
//!
//! Run: `cargo bench -p ustack --bench iface` (criterion prints medians per frame).

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};
use ustack::iface::{Config, Interface};
use ustack::link::PcapReader;
use ustack::time::Instant;
use ustack::wire::{EthernetAddress, Ipv4Cidr};

const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0b];

fn capture() -> Vec<Vec<u8>> {
    let bytes = include_bytes!("../../testdata/kernel_veth_ping_udp_tcp.pcap");
    PcapReader::new(&bytes[..])
        .unwrap()
        .map(|r| r.unwrap().data)
        .collect()
}

fn ustack_iface() -> Interface {
    let mut c = Config::new(
        EthernetAddress(OUR_MAC),
        Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 2), 24),
    );
    c.arp.gratuitous_at_start = false;
    Interface::new(c, Instant::ZERO)
}

mod smol {
    use smoltcp::iface::{Config, Interface, SocketSet};
    use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
    use smoltcp::time::Instant;
    use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

    /// A device that yields one given frame per poll and counts what is sent.
    pub struct OneFrame<'a> {
        pub rx: Option<&'a [u8]>,
        pub tx_buf: Vec<u8>,
        pub sent: usize,
    }

    pub struct Rx<'a>(&'a [u8]);
    pub struct Tx<'b>(&'b mut Vec<u8>, &'b mut usize);

    impl RxToken for Rx<'_> {
        fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
            f(self.0)
        }
    }

    impl TxToken for Tx<'_> {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
            *self.1 += 1;
            f(&mut self.0[..len])
        }
    }

    impl<'a> Device for OneFrame<'a> {
        type RxToken<'b>
            = Rx<'a>
        where
            Self: 'b;
        type TxToken<'b>
            = Tx<'b>
        where
            Self: 'b;

        fn receive(&mut self, _t: Instant) -> Option<(Rx<'a>, Tx<'_>)> {
            let frame = self.rx.take()?;
            Some((Rx(frame), Tx(&mut self.tx_buf, &mut self.sent)))
        }

        fn transmit(&mut self, _t: Instant) -> Option<Tx<'_>> {
            Some(Tx(&mut self.tx_buf, &mut self.sent))
        }

        fn capabilities(&self) -> DeviceCapabilities {
            let mut caps = DeviceCapabilities::default();
            caps.medium = Medium::Ethernet;
            caps.max_transmission_unit = 1514;
            caps
        }
    }

    pub fn iface(dev: &mut OneFrame<'_>) -> Interface {
        let config = Config::new(HardwareAddress::Ethernet(EthernetAddress(super::OUR_MAC)));
        let mut iface = Interface::new(config, dev, Instant::from_millis(0));
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::v4(10, 0, 0, 2), 24)).unwrap();
        });
        iface
    }

    pub fn sockets() -> SocketSet<'static> {
        SocketSet::new(vec![])
    }
}

fn bench_echo(c: &mut Criterion) {
    let frames = capture();
    let (arp, echo) = (&frames[0], &frames[2]);
    let mut g = c.benchmark_group("icmp_echo_request_to_reply");

    let mut i = ustack_iface();
    let mut buf = vec![0u8; 1514];
    i.handle_frame(Instant::ZERO, arp);
    while i.poll_transmit(Instant::ZERO, &mut buf).is_some() {}
    let mut t = 0;
    g.bench_function("ustack", |b| {
        b.iter(|| {
            t += 1;
            let now = Instant::from_micros(t);
            i.handle_frame(now, black_box(echo));
            let n = i.poll_transmit(now, &mut buf).expect("reply");
            black_box(&buf[..n]);
        })
    });

    let mut dev = smol::OneFrame {
        rx: Some(arp),
        tx_buf: vec![0; 1514],
        sent: 0,
    };
    let mut si = smol::iface(&mut dev);
    let mut sockets = smol::sockets();
    si.poll(
        smoltcp::time::Instant::from_millis(0),
        &mut dev,
        &mut sockets,
    );
    assert_eq!(dev.sent, 1, "smoltcp answered the ARP request");
    let mut ms = 1;
    g.bench_function("smoltcp", |b| {
        b.iter(|| {
            ms += 1;
            dev.rx = Some(black_box(echo));
            si.poll(
                smoltcp::time::Instant::from_micros(ms),
                &mut dev,
                &mut sockets,
            );
            black_box(&dev.tx_buf);
        })
    });
    g.finish();
}

fn bench_udp(c: &mut Criterion) {
    let frames = capture();
    let (arp, udp) = (&frames[0], &frames[8]);
    let mut g = c.benchmark_group("udp_datagram_to_socket");

    let mut i = ustack_iface();
    let h = i.udp().socket();
    i.udp()
        .bind(
            h,
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5002).into(),
            &ustack::socket::LocalAddrs::v4(Ipv4Addr::new(10, 0, 0, 2)),
        )
        .unwrap();
    let mut buf = vec![0u8; 1514];
    i.handle_frame(Instant::ZERO, arp);
    while i.poll_transmit(Instant::ZERO, &mut buf).is_some() {}
    let mut rx = [0u8; 64];
    g.bench_function("ustack", |b| {
        b.iter(|| {
            i.handle_frame(Instant::ZERO, black_box(udp));
            let (n, _) = i.udp().recv_from(h, &mut rx, false).expect("datagram");
            black_box(&rx[..n]);
        })
    });

    use smoltcp::socket::udp;
    let mut dev = smol::OneFrame {
        rx: None,
        tx_buf: vec![0; 1514],
        sent: 0,
    };
    let mut si = smol::iface(&mut dev);
    let mut sockets = smol::sockets();
    let sock = udp::Socket::new(
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; 4096]),
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; 4096]),
    );
    let sh = sockets.add(sock);
    sockets.get_mut::<udp::Socket>(sh).bind(5002).unwrap();
    g.bench_function("smoltcp", |b| {
        b.iter(|| {
            dev.rx = Some(black_box(udp));
            si.poll(
                smoltcp::time::Instant::from_millis(0),
                &mut dev,
                &mut sockets,
            );
            let (n, _) = sockets
                .get_mut::<udp::Socket>(sh)
                .recv_slice(&mut rx)
                .expect("datagram");
            black_box(&rx[..n]);
        })
    });
    g.finish();
}

fn bench_parse(c: &mut Criterion) {
    let frames = capture();
    let syn = &frames[9][14 + 20..];
    let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let mut g = c.benchmark_group("parse_tcp_syn_with_options");
    g.bench_function("ustack", |b| {
        b.iter(|| black_box(ustack::wire::TcpRepr::parse(src, dst, black_box(syn)).unwrap()))
    });
    g.bench_function("smoltcp", |b| {
        use smoltcp::wire::{IpAddress, TcpPacket, TcpRepr};
        let caps = smoltcp::phy::ChecksumCapabilities::default();
        let (s, d) = (IpAddress::v4(10, 0, 0, 1), IpAddress::v4(10, 0, 0, 2));
        b.iter(|| {
            let p = TcpPacket::new_checked(black_box(syn)).unwrap();
            black_box(TcpRepr::parse(&p, &s, &d, &caps).unwrap());
        })
    });
    g.finish();
}

/// The Internet checksum of a full-sized TCP segment (1480 bytes): ours, smoltcp's and
/// etherparse's (which the stack used before), on the same bytes.
fn bench_checksum(c: &mut Criterion) {
    let data: Vec<u8> = (0..1480u32).map(|i| (i * 7 + 3) as u8).collect();
    let mut g = c.benchmark_group("checksum_1480_bytes");
    g.throughput(criterion::Throughput::Bytes(data.len() as u64));
    g.bench_function("ustack", |b| {
        b.iter(|| black_box(ustack::wire::checksum::of(black_box(&data))))
    });
    g.bench_function("smoltcp", |b| {
        b.iter(|| black_box(smoltcp::wire::checksum::data(black_box(&data))))
    });
    g.bench_function("etherparse", |b| {
        use etherparse::checksum::Sum16BitWords;
        b.iter(|| {
            black_box(
                Sum16BitWords::new()
                    .add_slice(black_box(&data))
                    .ones_complement(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench_echo, bench_udp, bench_parse, bench_checksum);
criterion_main!(benches);
