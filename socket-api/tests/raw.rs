//! Raw ICMP sockets: ping between two stacks.

mod common;

use common::{pair, sa, A, B, PATIENCE};
use std::net::Ipv4Addr;
use ustack::wire::{IcmpRepr, IpProtocol, Ipv4Repr};
use ustack_socket::*;

fn echo_request(ident: u16, seq_no: u16, data: &[u8]) -> Vec<u8> {
    let req = IcmpRepr::EchoRequest {
        ident,
        seq_no,
        data,
    };
    let mut msg = vec![0u8; req.buffer_len()];
    req.emit(&mut msg);
    msg
}

#[test]
fn raw_icmp_ping_between_stacks() {
    let (a, b) = pair();
    let ping = RawSocket::new(&a, 1).unwrap();
    ping.set_read_timeout(Some(PATIENCE)).unwrap();
    // B's own raw socket sees a copy of the request while B's stack answers it.
    let watcher = RawSocket::new(&b, 1).unwrap();
    watcher.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 2048];
    for seq in 0..5u16 {
        let payload = vec![seq as u8; 56];
        ping.send_to(&echo_request(0x1234, seq, &payload), B)
            .unwrap();
        let (n, from) = ping.recv_from(&mut buf).unwrap();
        assert_eq!(from, B);
        // Linux SOCK_RAW: the IP header comes first.
        let (ip, icmp) = Ipv4Repr::parse(&buf[..n]).unwrap();
        assert_eq!(
            (ip.src_addr, ip.dst_addr, ip.protocol),
            (B, A, IpProtocol::ICMP)
        );
        assert_eq!(
            IcmpRepr::parse(icmp).unwrap(),
            IcmpRepr::EchoReply {
                ident: 0x1234,
                seq_no: seq,
                data: &payload
            }
        );
        let (n, from) = watcher.recv_from(&mut buf).unwrap();
        assert_eq!(from, A);
        let (_, icmp) = Ipv4Repr::parse(&buf[..n]).unwrap();
        assert!(matches!(
            IcmpRepr::parse(icmp).unwrap(),
            IcmpRepr::EchoRequest { seq_no, .. } if seq_no == seq
        ));
    }
}

#[test]
fn raw_socket_calls_and_errors() {
    let (a, b) = pair();
    let fd = a.socket(AF_INET, SOCK_RAW, IPPROTO_ICMP).unwrap();
    // Linux reports the protocol as the port.
    assert_eq!(a.getsockname(fd).unwrap(), sa(Ipv4Addr::UNSPECIFIED, 1));
    assert_eq!(a.send(fd, b"x", 0), Err(Errno::EDESTADDRREQ));
    assert_eq!(a.getpeername(fd), Err(Errno::ENOTCONN));
    assert_eq!(a.bind(fd, sa(B, 0)), Err(Errno::EADDRNOTAVAIL));
    a.bind(fd, sa(A, 0)).unwrap();
    assert_eq!(a.getsockname(fd).unwrap(), sa(A, 1));
    assert_eq!(a.listen(fd, 1), Err(Errno::EOPNOTSUPP));
    assert_eq!(a.recv(fd, &mut [0u8; 4], MSG_DONTWAIT), Err(Errno::EAGAIN));
    assert_eq!(
        a.sendto(fd, &vec![0u8; 70_000], 0, sa(B, 0)),
        Err(Errno::EMSGSIZE)
    );
    assert_eq!(
        a.getsockopt(fd, SockOptName::Type).unwrap(),
        SockOpt::Type(SOCK_RAW)
    );
    // Connected: send works without an address; poll says POLLIN when the reply lands.
    a.connect(fd, sa(B, 0)).unwrap();
    assert_eq!(a.getpeername(fd).unwrap(), sa(B, 0));
    a.send(fd, &echo_request(1, 1, b"hi"), 0).unwrap();
    let mut p = [PollFd::new(fd, PollEvents::POLLIN)];
    assert_eq!(a.poll(&mut p, Some(PATIENCE)).unwrap(), 1);
    let mut buf = [0u8; 64];
    let n = a.recv(fd, &mut buf, MSG_PEEK).unwrap();
    assert_eq!(n, 20 + 8 + 2);
    assert_eq!(a.recv(fd, &mut buf, 0).unwrap(), n);
    a.close(fd).unwrap();
    let _ = b;
}

/// A raw handle kept after close never reaches the raw socket that reuses its slot:
/// the copy of an echo request stays with the new socket.
#[test]
fn raw_handle_kept_after_close_cannot_reach_the_socket_reusing_its_slot() {
    use ustack::socket::raw::{RecvError, SendError};
    use ustack::socket::CloseError;
    let (a, b) = pair();
    let old = b.with_interface(|i, _| {
        let h = i.raw().socket(IpProtocol::ICMP, 4096);
        i.raw().close(h).unwrap();
        h
    });
    let new = RawSocket::new(&b, 1).unwrap();
    new.set_read_timeout(Some(PATIENCE)).unwrap();
    assert_eq!(
        b.with_interface(|i, _| i.raw().len()),
        1,
        "slot of {old} reused"
    );
    let ping = RawSocket::new(&a, 1).unwrap();
    ping.send_to(&echo_request(7, 1, b"copy"), B).unwrap();
    let mut p = [PollFd::new(new.fd(), PollEvents::POLLIN)];
    assert_eq!(b.poll(&mut p, Some(PATIENCE)).unwrap(), 1);
    b.with_interface(|i, _| {
        let mut buf = [0u8; 128];
        let raw = i.raw();
        assert_eq!(
            raw.recv_from(old, &mut buf, true),
            Err(RecvError::BadHandle)
        );
        assert!(!raw.can_recv(old));
        assert_eq!(
            raw.send_to(old, b"x", Some(A.into())),
            Err(SendError::BadHandle)
        );
        assert_eq!(raw.close(old), Err(CloseError::BadHandle));
    });
    let mut buf = [0u8; 128];
    let (n, from) = new.recv_from(&mut buf).unwrap();
    assert_eq!(from, A);
    let (_, icmp) = Ipv4Repr::parse(&buf[..n]).unwrap();
    assert!(matches!(
        IcmpRepr::parse(icmp).unwrap(),
        IcmpRepr::EchoRequest {
            ident: 7,
            seq_no: 1,
            ..
        }
    ));
}
