//! A sequence of forged segments and application calls against an interface with a
//! listener and an established connection (structured input): flags, sequence and ACK
//! offsets relative to the connection, windows, options, payload sizes and time steps.
//!
//! After every step: no panic, SND.UNA <= SND.NXT, queues within their buffers, the
//! window within the buffer. At the end: once the application closed everything and
//! every timer ran out, only the listener is left.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddrV4;
use ustack::iface::Interface;
use ustack::socket::tcp::{Shutdown, TcpHandle};
use ustack::time::{Duration, Instant};
use ustack::wire::{SeqNumber, TcpFlags, TcpOptions, TcpRepr};
use ustack_fuzz::*;

/// The interface under test with one established connection made by a real peer.
fn established() -> (Interface, TcpHandle, TcpHandle, u16) {
    let (mut us, l) = fresh_interface();
    let mut peer = host(PEER_MAC, PEER_IP, (US_IP, US_MAC));
    let c = peer.tcp().socket();
    let cx = peer.tcp_context(Instant::ZERO);
    peer.tcp()
        .connect(c, &cx, SocketAddrV4::new(US_IP, PORT).into())
        .expect("connect");
    let mut buf = [0u8; 1514];
    for _ in 0..8 {
        while let Some(n) = peer.poll_transmit(Instant::ZERO, &mut buf) {
            us.handle_frame(Instant::ZERO, &buf[..n]);
        }
        while let Some(n) = us.poll_transmit(Instant::ZERO, &mut buf) {
            peer.handle_frame(Instant::ZERO, &buf[..n]);
        }
    }
    let (h, remote) = us.tcp().accept(l).expect("handshake completes");
    (us, l, h, remote.port())
}

fn options(u: &mut Unstructured<'_>, base: SeqNumber) -> Result<TcpOptions> {
    let mut o = TcpOptions::default();
    let bits: u8 = u.arbitrary()?;
    if bits & 1 != 0 {
        o.mss = Some(u.arbitrary()?);
    }
    if bits & 2 != 0 {
        o.window_scale = Some(u.arbitrary()?);
    }
    o.sack_permitted = bits & 4 != 0;
    if bits & 8 != 0 {
        o.timestamp = Some((u.arbitrary()?, u.arbitrary()?));
    }
    let blocks = usize::from((bits >> 4) % 4);
    for slot in o.sack_ranges.iter_mut().take(blocks) {
        let a = i32::from(u.arbitrary::<i16>()?) * 16;
        let len = i32::from(u.arbitrary::<u16>()? % 4096);
        let left = SeqNumber(base.0.wrapping_add(a as u32));
        *slot = Some((left, SeqNumber(left.0.wrapping_add(len as u32))));
    }
    Ok(o)
}

fn run(u: &mut Unstructured<'_>) {
    let (mut us, l, conn, peer_port) = established();
    let mut now = Instant::ZERO;
    let mut handles = vec![conn];
    // Running out of input ends the steps; the final check runs regardless.
    let _ = steps(u, &mut us, l, conn, peer_port, &mut now, &mut handles);
    check_all_freed(&mut us, now, l, &handles);
}

fn steps(
    u: &mut Unstructured<'_>,
    us: &mut Interface,
    l: TcpHandle,
    conn: TcpHandle,
    peer_port: u16,
    now: &mut Instant,
    handles: &mut Vec<TcpHandle>,
) -> Result<()> {
    // What the peer last knew: kept when the connection is gone, so forged segments
    // still target its old sequence space.
    let mut rcv_nxt = SeqNumber(0);
    let mut snd_una = SeqNumber(0);
    let payload = [0x5au8; 1460];
    let mut sink = [0u8; 4096];
    for _ in 0..128 {
        if u.is_empty() {
            break;
        }
        if let Some(i) = us.tcp().info(conn) {
            rcv_nxt = i.rcv_nxt;
            snd_una = i.snd_una;
        }
        let op: u8 = u.arbitrary()?;
        match op % 8 {
            0..=3 => {
                // A segment on the connection (or, for op 3, a new port: the listener).
                let flags = TcpFlags(u16::from(u.arbitrary::<u8>()?) & 0x3f);
                let seq_off =
                    i32::from(u.arbitrary::<i16>()?) * if op & 0x80 != 0 { 64 } else { 1 };
                let ack_off = i32::from(u.arbitrary::<i16>()?);
                let seg = TcpRepr {
                    src_port: if op % 8 == 3 {
                        peer_port.wrapping_add(1 + u16::from(op >> 5))
                    } else {
                        peer_port
                    },
                    dst_port: PORT,
                    seq_number: SeqNumber(rcv_nxt.0.wrapping_add(seq_off as u32)),
                    ack_number: SeqNumber(snd_una.0.wrapping_add(ack_off as u32)),
                    flags,
                    window_len: u.arbitrary()?,
                    urgent_ptr: 0,
                    options: options(u, snd_una)?,
                    payload: &payload[..usize::from(u.arbitrary::<u16>()?) % 1461],
                };
                // Options past 40 bytes cannot be emitted (the stack never builds them).
                if seg.header_len() <= 60 && seg.buffer_len() <= 1480 {
                    let _ = us.handle_frame(*now, &tcp_frame(&seg));
                }
            }
            4 => {
                let n = usize::from(u.arbitrary::<u16>()?) % 20_000;
                let data = vec![0xa5u8; n];
                let _ = us.tcp().send(conn, &data);
            }
            5 => {
                let _ = us.tcp().recv(conn, &mut sink);
            }
            6 => {
                let cx = us.tcp_context(*now);
                match u.arbitrary::<u8>()? % 4 {
                    0 => drop(us.tcp().shutdown(conn, Shutdown::Write)),
                    1 => drop(us.tcp().close(conn, &cx)),
                    2 => drop(us.tcp().abort(conn)),
                    _ => accept_all(us, l, handles),
                }
            }
            _ => {
                *now += Duration::from_millis(u64::from(u.arbitrary::<u16>()?));
                us.handle_timeout(*now);
            }
        }
        drain(us, *now);
        for &h in handles.iter() {
            check_connection(us, h);
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    run(&mut Unstructured::new(data));
});
