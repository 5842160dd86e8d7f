//! Scripted-segment tests in smoltcp's style: one fixture per state, `send!` feeds a
//! segment from the peer (and checks the immediate reply), `recv!` pulls what the layer
//! dispatches, `recv_nothing!` checks silence. Times are milliseconds of a virtual clock.
//!
//! This file holds the shared harness, macros and fixtures (`socket_<state>()`); the
//! tests sit in one submodule per state (`test_<state>_<event>`), plus the two-layer
//! loopback simulation, property tests, the readiness queue and loss-detection
//! regressions.

use super::*;
use crate::socket::{IcmpError, IcmpErrorKind};
use crate::time::{Duration, Instant};
use crate::wire::{IpProtocol, SeqNumber, TcpFlags, TcpOptions, TcpRepr};
use core::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
const REMOTE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);
const LOCAL_PORT: u16 = 80;
const REMOTE_PORT: u16 = 49500;
const LOCAL: SocketAddrV4 = SocketAddrV4::new(LOCAL_IP, LOCAL_PORT);
const REMOTE: SocketAddrV4 = SocketAddrV4::new(REMOTE_IP, REMOTE_PORT);
const LOCAL_SEQ: SeqNumber = SeqNumber(10000);
/// Close to 2^32 so that every test crosses the wrap of the peer's sequence space.
const REMOTE_SEQ: SeqNumber = SeqNumber(-10001i32 as u32);
const NO_OPTIONS: TcpOptions = TcpOptions {
    mss: None,
    window_scale: None,
    sack_permitted: false,
    sack_ranges: [None; 4],
    timestamp: None,
};

const SEND_TEMPL: TcpRepr<'static> = TcpRepr {
    src_port: REMOTE_PORT,
    dst_port: LOCAL_PORT,
    seq_number: SeqNumber(0),
    ack_number: SeqNumber(0),
    flags: TcpFlags::empty(),
    window_len: 256,
    urgent_ptr: 0,
    options: NO_OPTIONS,
    payload: &[],
};

const RECV_TEMPL: TcpRepr<'static> = TcpRepr {
    src_port: LOCAL_PORT,
    dst_port: REMOTE_PORT,
    seq_number: SeqNumber(0),
    ack_number: SeqNumber(0),
    flags: TcpFlags::empty(),
    window_len: 64,
    urgent_ptr: 0,
    options: NO_OPTIONS,
    payload: &[],
};

const ACK: TcpFlags = TcpFlags::ACK;
const SYN: TcpFlags = TcpFlags::SYN;
const FIN: TcpFlags = TcpFlags(TcpFlags::FIN.0);
const RST: TcpFlags = TcpFlags::RST;
const PSH: TcpFlags = TcpFlags::PSH;

fn flags(a: TcpFlags, b: TcpFlags) -> TcpFlags {
    a | b
}

/// A layer, a virtual clock and the socket under test.
struct Harness {
    layer: TcpLayer,
    now: Instant,
    mtu: usize,
    handle: TcpHandle,
    listener: Option<TcpHandle>,
}

fn leak(r: &TcpRepr<'_>) -> TcpRepr<'static> {
    TcpRepr {
        payload: Box::leak(r.payload.to_vec().into_boxed_slice()),
        ..*r
    }
}

impl Harness {
    fn new(config: TcpConfig) -> Harness {
        let mut layer = TcpLayer::new(config, 42);
        layer.set_fixed_isn(Some(LOCAL_SEQ));
        let handle = layer.socket();
        Harness {
            layer,
            now: Instant::ZERO,
            mtu: 1500,
            handle,
            listener: None,
        }
    }

    fn cx(&self) -> TcpContext {
        TcpContext {
            now: self.now,
            local: crate::socket::LocalAddrs::v4(LOCAL_IP),
            mtu: self.mtu,
            mtu6: self.mtu,
        }
    }

    fn at(&mut self, millis: i64) {
        self.now = Instant::from_millis(millis);
        let cx = self.cx();
        self.layer.handle_timeout(&cx);
    }

    fn send(&mut self, seg: &TcpRepr<'_>) -> Option<TcpRepr<'static>> {
        let addrs = SegmentAddrs::new(IpAddr::V4(REMOTE_IP), IpAddr::V4(LOCAL_IP));
        let cx = self.cx();
        let reply = self.layer.process(&cx, addrs, seg);
        reply.map(|(raddrs, r)| {
            assert_eq!(
                (raddrs.src, raddrs.dst),
                (LOCAL_IP.into(), REMOTE_IP.into())
            );
            r
        })
    }

    fn recv(&mut self) -> Option<TcpRepr<'static>> {
        let cx = self.cx();
        let mut out = None;
        self.layer.dispatch(&cx, &mut |addrs, r| {
            assert_eq!((addrs.src, addrs.dst), (LOCAL_IP.into(), REMOTE_IP.into()));
            out = Some(leak(r));
        });
        out
    }

    fn state(&self) -> TcpState {
        self.layer.socket_ref(self.handle).expect("socket").state
    }

    fn events(&mut self) -> Vec<TcpEvent> {
        core::iter::from_fn(|| self.layer.poll_event()).collect()
    }

    fn info(&self) -> TcpInfo {
        self.layer.socket_ref(self.handle).unwrap().info()
    }
}

macro_rules! send {
    ($h:expr, time $t:expr, $seg:expr) => {{
        $h.at($t);
        send!($h, $seg)
    }};
    ($h:expr, time $t:expr, $seg:expr => $reply:expr) => {{
        $h.at($t);
        send!($h, $seg => $reply)
    }};
    ($h:expr, $seg:expr) => {
        send!($h, $seg => None)
    };
    ($h:expr, $seg:expr => $reply:expr) => {{
        let reply: Option<TcpRepr<'static>> = $reply;
        assert_eq!($h.send(&$seg), reply, "reply to {}", $seg);
    }};
}

macro_rules! recv {
    ($h:expr, time $t:expr, $seg:expr) => {{
        $h.at($t);
        recv!($h, $seg)
    }};
    ($h:expr, $seg:expr) => {{
        let want: TcpRepr<'static> = $seg;
        match $h.recv() {
            Some(got) => assert_eq!(got, want, "got {got}, want {want}"),
            None => panic!("nothing dispatched, want {want}"),
        }
    }};
}

macro_rules! recv_nothing {
    ($h:expr, time $t:expr) => {{
        $h.at($t);
        recv_nothing!($h)
    }};
    ($h:expr) => {{
        if let Some(got) = $h.recv() {
            panic!("dispatched {got}, want nothing");
        }
    }};
}

fn base_config() -> TcpConfig {
    TcpConfig {
        rx_buffer_len: 64,
        tx_buffer_len: 64,
        // Fixed buffers: scripted windows stay what the test says; the autotuning
        // tests turn it on.
        rx_buffer_max: 0,
        tx_buffer_max: 0,
        delayed_ack: Duration::ZERO,
        window_scaling: false,
        timestamps: false,
        sack: false,
        congestion: CongestionAlgorithm::NewReno,
        ..TcpConfig::default()
    }
}

fn mss_opt(mss: u16) -> TcpOptions {
    TcpOptions {
        mss: Some(mss),
        ..NO_OPTIONS
    }
}

fn socket() -> Harness {
    Harness::new(base_config())
}

fn socket_listen_with(config: TcpConfig) -> Harness {
    let mut h = Harness::new(config);
    h.layer.listen(h.handle, SocketAddr::V4(LOCAL), 8).unwrap();
    h.listener = Some(h.handle);
    h.events();
    h
}

fn socket_listen() -> Harness {
    socket_listen_with(base_config())
}

/// SYN received with `syn_opts`; the SYN,ACK has been pulled and checked by the caller
/// unless `expect` is given.
fn socket_syn_received_with(config: TcpConfig, syn_opts: TcpOptions) -> Harness {
    let mut h = socket_listen_with(config);
    send!(
        h,
        TcpRepr {
            flags: SYN,
            seq_number: REMOTE_SEQ,
            options: syn_opts,
            ..SEND_TEMPL
        }
    );
    h.handle = h
        .layer
        .conn_handle(SocketAddr::V4(LOCAL), SocketAddr::V4(REMOTE))
        .expect("child");
    h
}

fn socket_syn_received() -> Harness {
    let mut h = socket_syn_received_with(base_config(), NO_OPTIONS);
    recv!(
        h,
        TcpRepr {
            flags: flags(SYN, ACK),
            seq_number: LOCAL_SEQ,
            ack_number: REMOTE_SEQ + 1,
            options: mss_opt(1460),
            ..RECV_TEMPL
        }
    );
    h.events();
    h
}

fn socket_syn_sent_with(config: TcpConfig) -> Harness {
    let mut h = Harness::new(config);
    h.layer.bind(h.handle, SocketAddr::V4(LOCAL)).unwrap();
    let cx = h.cx();
    h.layer
        .connect(h.handle, &cx, SocketAddr::V4(REMOTE))
        .unwrap();
    h
}

fn socket_syn_sent() -> Harness {
    let mut h = socket_syn_sent_with(base_config());
    recv!(
        h,
        TcpRepr {
            flags: SYN,
            seq_number: LOCAL_SEQ,
            ack_number: SeqNumber(0),
            options: mss_opt(1460),
            ..RECV_TEMPL
        }
    );
    h.events();
    h
}

fn establish(h: &mut Harness) {
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    let (child, peer) = h.layer.accept(h.listener.unwrap()).unwrap();
    assert_eq!(child, h.handle);
    assert_eq!(peer, SocketAddr::V4(REMOTE));
    h.events();
}

fn socket_established_with(config: TcpConfig, syn_opts: TcpOptions) -> Harness {
    let mut h = socket_syn_received_with(config, syn_opts);
    h.recv().expect("SYN,ACK");
    establish(&mut h);
    h
}

fn socket_established() -> Harness {
    let mut h = socket_syn_received();
    establish(&mut h);
    h
}

fn socket_fin_wait_1() -> Harness {
    let mut h = socket_established();
    h.layer.shutdown(h.handle, Shutdown::Write).unwrap();
    recv!(
        h,
        TcpRepr {
            flags: flags(FIN, ACK),
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 1,
            ..RECV_TEMPL
        }
    );
    h.events();
    h
}

fn socket_fin_wait_2() -> Harness {
    let mut h = socket_fin_wait_1();
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 2,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::FinWait2);
    h.events();
    h
}

fn socket_closing() -> Harness {
    let mut h = socket_fin_wait_1();
    send!(
        h,
        TcpRepr {
            flags: flags(FIN, ACK),
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 2,
            ack_number: REMOTE_SEQ + 2,
            ..RECV_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::Closing);
    h.events();
    h
}

/// The peer's FIN taking our FIN-WAIT connection into TIME-WAIT: no reply at once; the
/// ACK of it, with `ack_options`, leaves at the next dispatch, after the segments the
/// rest of the batch produces (`Reply::TimeWaitAck`).
fn fin_into_time_wait(h: &mut Harness, fin: TcpRepr<'static>, ack_options: TcpOptions) {
    send!(h, fin);
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 2,
            ack_number: REMOTE_SEQ + 2,
            options: ack_options,
            ..RECV_TEMPL
        }
    );
}

/// The FIN of [`socket_fin_wait_2`]'s peer.
const PEER_FIN: TcpRepr<'static> = TcpRepr {
    flags: TcpFlags(TcpFlags::FIN.0 | TcpFlags::ACK.0),
    seq_number: SeqNumber(REMOTE_SEQ.0.wrapping_add(1)),
    ack_number: SeqNumber(LOCAL_SEQ.0 + 2),
    ..SEND_TEMPL
};

fn socket_time_wait() -> Harness {
    let mut h = socket_fin_wait_2();
    fin_into_time_wait(&mut h, PEER_FIN, NO_OPTIONS);
    assert_eq!(h.state(), TcpState::TimeWait);
    h.events();
    h
}

fn socket_close_wait() -> Harness {
    let mut h = socket_established();
    send!(
        h,
        TcpRepr {
            flags: flags(FIN, ACK),
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 2,
            ..RECV_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::CloseWait);
    h.events();
    h
}

fn socket_last_ack() -> Harness {
    let mut h = socket_close_wait();
    h.layer.shutdown(h.handle, Shutdown::Write).unwrap();
    recv!(
        h,
        TcpRepr {
            flags: flags(FIN, ACK),
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 2,
            ..RECV_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::LastAck);
    h.events();
    h
}

fn state_change(h: TcpHandle, from: TcpState, to: TcpState) -> TcpEvent {
    TcpEvent::StateChanged {
        handle: h,
        local: SocketAddr::V4(LOCAL),
        remote: SocketAddr::V4(REMOTE),
        from,
        to,
    }
}

fn icmp(kind: IcmpErrorKind, seq: SeqNumber) -> IcmpError {
    IcmpError {
        reporter: IpAddr::V4(REMOTE_IP),
        kind,
        src_addr: IpAddr::V4(LOCAL_IP),
        dst_addr: IpAddr::V4(REMOTE_IP),
        protocol: IpProtocol::TCP,
        src_port: LOCAL_PORT,
        dst_port: REMOTE_PORT,
        tcp_seq: seq.0,
    }
}

fn sack_config() -> TcpConfig {
    let mut config = base_config();
    config.sack = true;
    config
}

fn sack_syn() -> TcpOptions {
    TcpOptions {
        sack_permitted: true,
        ..NO_OPTIONS
    }
}

fn data_seg(off: usize, payload: &'static [u8]) -> TcpRepr<'static> {
    TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1 + off,
        ack_number: REMOTE_SEQ + 1,
        payload,
        ..RECV_TEMPL
    }
}

fn ack_seg(off: usize) -> TcpRepr<'static> {
    TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1,
        ack_number: LOCAL_SEQ + 1 + off,
        ..SEND_TEMPL
    }
}

/// An ACK from the peer with a 1024-byte window.
fn bulk_ack(off: usize) -> TcpRepr<'static> {
    TcpRepr {
        window_len: 1024,
        ..ack_seg(off)
    }
}

/// An established socket whose peer has MSS 64 and a 1024-byte window, with 10
/// segments of payload queued.
fn socket_bulk(config: TcpConfig, syn_opts: TcpOptions) -> (Harness, Vec<u8>) {
    let mut config = config;
    config.tx_buffer_len = 4096;
    let mut h = socket_established_with(
        config,
        TcpOptions {
            mss: Some(64),
            ..syn_opts
        },
    );
    send!(h, bulk_ack(0));
    let data: Vec<u8> = (0..640).map(|i| (i % 251) as u8).collect();
    assert_eq!(h.layer.send(h.handle, &data), Ok(640));
    (h, data)
}

fn leak_slice(d: &[u8]) -> &'static [u8] {
    Box::leak(d.to_vec().into_boxed_slice())
}

fn ts_config() -> TcpConfig {
    let mut config = base_config();
    config.timestamps = true;
    config
}

fn ts_opt(val: u32, ecr: u32) -> TcpOptions {
    TcpOptions {
        timestamp: Some((val, ecr)),
        ..NO_OPTIONS
    }
}

fn ready(h: &mut Harness) -> Vec<TcpHandle> {
    core::iter::from_fn(|| h.layer.poll_ready()).collect()
}

/// Everything dispatched now.
fn drain(h: &mut Harness) -> Vec<TcpRepr<'static>> {
    core::iter::from_fn(|| h.recv()).collect()
}

// ------------------------------------------------------------------ tests by state

mod autotune;
mod bbr;
mod close_wait;
mod closed;
mod closing;
mod cork;
mod established;
mod established_recovery;
mod fin_wait;
mod listen;
mod loopback;
mod loss_detection;
mod rack_tlp;
mod readiness;
mod receiver_acks;
mod robustness;
mod syn_received;
mod syn_sent;
mod time_wait;
