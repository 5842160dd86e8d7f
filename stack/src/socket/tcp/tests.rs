//! Scripted-segment tests in smoltcp's style: one fixture per state, `send!` feeds a
//! segment from the peer (and checks the immediate reply), `recv!` pulls what the layer
//! dispatches, `recv_nothing!` checks silence. Times are milliseconds of a virtual clock.

use super::*;
use crate::socket::{IcmpError, IcmpErrorKind};
use crate::time::{Duration, Instant};
use crate::wire::{IpProtocol, Ipv4Repr, SeqNumber, TcpFlags, TcpOptions, TcpRepr};
use core::net::{Ipv4Addr, SocketAddrV4};

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
            local_addr: LOCAL_IP,
            mtu: self.mtu,
        }
    }

    fn at(&mut self, millis: i64) {
        self.now = Instant::from_millis(millis);
        let cx = self.cx();
        self.layer.handle_timeout(&cx);
    }

    fn send(&mut self, seg: &TcpRepr<'_>) -> Option<TcpRepr<'static>> {
        let addrs = SegmentAddrs {
            src: REMOTE_IP,
            dst: LOCAL_IP,
        };
        let cx = self.cx();
        let reply = self.layer.process(&cx, addrs, seg);
        reply.map(|(raddrs, r)| {
            assert_eq!((raddrs.src, raddrs.dst), (LOCAL_IP, REMOTE_IP));
            r
        })
    }

    fn recv(&mut self) -> Option<TcpRepr<'static>> {
        let cx = self.cx();
        let mut out = None;
        self.layer.dispatch(&cx, &mut |addrs, r| {
            assert_eq!((addrs.src, addrs.dst), (LOCAL_IP, REMOTE_IP));
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

// ------------------------------------------------------------------ fixtures

fn socket() -> Harness {
    Harness::new(base_config())
}

fn socket_listen_with(config: TcpConfig) -> Harness {
    let mut h = Harness::new(config);
    h.layer.listen(h.handle, LOCAL, 8).unwrap();
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
    h.handle = h.layer.conn_handle(LOCAL, REMOTE).expect("child");
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
    h.layer.bind(h.handle, LOCAL).unwrap();
    let cx = h.cx();
    h.layer.connect(h.handle, &cx, REMOTE).unwrap();
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
    assert_eq!(peer, REMOTE);
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

fn socket_time_wait() -> Harness {
    let mut h = socket_fin_wait_2();
    send!(h, TcpRepr {
        flags: flags(FIN, ACK),
        seq_number: REMOTE_SEQ + 1,
        ack_number: LOCAL_SEQ + 2,
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 2,
        ack_number: REMOTE_SEQ + 2,
        ..RECV_TEMPL
    }));
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
        local: LOCAL,
        remote: REMOTE,
        from,
        to,
    }
}

// ------------------------------------------------------------------ CLOSED

#[test]
fn test_closed_syn_gets_rst_ack() {
    let mut h = socket();
    send!(h, TcpRepr {
        flags: SYN,
        seq_number: REMOTE_SEQ,
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: flags(RST, ACK),
        seq_number: SeqNumber(0),
        ack_number: REMOTE_SEQ + 1,
        window_len: 0,
        ..RECV_TEMPL
    }));
    assert_eq!(h.layer.counters().no_socket, 1);
}

#[test]
fn test_closed_ack_gets_rst_at_seg_ack() {
    let mut h = socket();
    send!(h, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ,
        ack_number: SeqNumber(1234),
        payload: b"abc",
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: RST,
        seq_number: SeqNumber(1234),
        window_len: 0,
        ..RECV_TEMPL
    }));
}

#[test]
fn test_closed_rst_is_ignored() {
    let mut h = socket();
    send!(
        h,
        TcpRepr {
            flags: RST,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    recv_nothing!(h);
}

#[test]
fn test_closed_port_zero_is_dropped() {
    let mut h = socket();
    send!(
        h,
        TcpRepr {
            flags: SYN,
            dst_port: 0,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.layer.counters().bad_segments, 1);
}

// ------------------------------------------------------------------ LISTEN

#[test]
fn test_listen_syn_creates_syn_received() {
    let mut h = socket_listen();
    send!(
        h,
        TcpRepr {
            flags: SYN,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    let child = h.layer.conn_handle(LOCAL, REMOTE).unwrap();
    assert_ne!(child, h.handle);
    assert_eq!(h.layer.state(h.handle), Some(TcpState::Listen));
    assert_eq!(
        h.events(),
        vec![state_change(child, TcpState::Listen, TcpState::SynReceived)]
    );
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
    recv_nothing!(h);
    assert_eq!(h.layer.accept(h.handle), Err(AcceptError::WouldBlock));
}

#[test]
fn test_listen_ack_gets_rst() {
    let mut h = socket_listen();
    send!(h, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ,
        ack_number: LOCAL_SEQ,
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: RST,
        seq_number: LOCAL_SEQ,
        window_len: 0,
        ..RECV_TEMPL
    }));
    assert_eq!(h.layer.socket_count(), 1);
}

#[test]
fn test_listen_rst_and_bare_segments_ignored() {
    let mut h = socket_listen();
    send!(
        h,
        TcpRepr {
            flags: RST,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    send!(
        h,
        TcpRepr {
            flags: FIN,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    recv_nothing!(h);
    assert_eq!(h.layer.socket_count(), 1);
}

#[test]
fn test_listen_backlog_overflow_drops_syn() {
    let mut h = Harness::new(base_config());
    h.layer.listen(h.handle, LOCAL, 1).unwrap();
    send!(
        h,
        TcpRepr {
            flags: SYN,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    // The SYN queue is full: the second SYN is dropped silently, like Linux.
    send!(
        h,
        TcpRepr {
            flags: SYN,
            src_port: REMOTE_PORT + 1,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.layer.counters().listen_overflows, 1);
    h.recv().expect("SYN,ACK of the first");
    recv_nothing!(h);
    // Complete the first: it moves to the accept queue, which is now full.
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    send!(
        h,
        TcpRepr {
            flags: SYN,
            src_port: REMOTE_PORT + 2,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.layer.counters().listen_overflows, 2);
    let (c, peer) = h.layer.accept(h.handle).unwrap();
    assert_eq!(peer, REMOTE);
    assert_eq!(h.layer.state(c), Some(TcpState::Established));
    assert_eq!(h.layer.accept(h.handle), Err(AcceptError::WouldBlock));
}

#[test]
fn test_listen_accept_queue_full_drops_final_ack() {
    let mut h = Harness::new(base_config());
    h.layer.listen(h.handle, LOCAL, 1).unwrap();
    for port in [REMOTE_PORT, REMOTE_PORT + 1] {
        if port == REMOTE_PORT + 1 {
            h.recv().expect("SYN,ACK");
            // Make room in the SYN queue only.
            send!(
                h,
                TcpRepr {
                    flags: ACK,
                    seq_number: REMOTE_SEQ + 1,
                    ack_number: LOCAL_SEQ + 1,
                    ..SEND_TEMPL
                }
            );
        }
        send!(
            h,
            TcpRepr {
                flags: SYN,
                src_port: port,
                seq_number: REMOTE_SEQ,
                ..SEND_TEMPL
            }
        );
    }
    // The accept queue was full when the second SYN came: dropped.
    assert_eq!(h.layer.counters().listen_overflows, 1);
}

#[test]
fn test_listen_negotiates_options() {
    let mut config = base_config();
    config.window_scaling = true;
    config.timestamps = true;
    config.sack = true;
    config.rx_buffer_len = 1 << 20;
    let mut h = socket_syn_received_with(
        config,
        TcpOptions {
            mss: Some(1400),
            window_scale: Some(7),
            sack_permitted: true,
            timestamp: Some((500, 0)),
            ..NO_OPTIONS
        },
    );
    recv!(
        h,
        TcpRepr {
            flags: flags(SYN, ACK),
            seq_number: LOCAL_SEQ,
            ack_number: REMOTE_SEQ + 1,
            window_len: 65535,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(5),
                sack_permitted: true,
                timestamp: Some((0, 500)),
                ..NO_OPTIONS
            },
            ..RECV_TEMPL
        }
    );
    let s = h.layer.socket_ref(h.handle).unwrap();
    assert_eq!(s.rcv_wscale(), 5);
    let info = s.info();
    assert!(info.sack && info.timestamps && info.window_scaling);
    assert_eq!(info.snd_wscale, 7);
    // 1400 - 12 bytes of timestamp option.
    assert_eq!(info.snd_mss, 1388);
}

#[test]
fn test_listen_without_peer_options_omits_them() {
    let mut config = base_config();
    config.window_scaling = true;
    config.timestamps = true;
    config.sack = true;
    let mut h = socket_syn_received_with(config, NO_OPTIONS);
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
    assert_eq!(h.info().snd_mss, 536);
}

// ------------------------------------------------------------------ SYN-RECEIVED

#[test]
fn test_syn_received_ack_establishes_and_queues_for_accept() {
    let mut h = socket_syn_received();
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::Established);
    assert_eq!(
        h.events(),
        vec![state_change(
            h.handle,
            TcpState::SynReceived,
            TcpState::Established
        )]
    );
    assert!(h.layer.can_recv(h.listener.unwrap()));
    assert_eq!(h.layer.accept(h.listener.unwrap()), Ok((h.handle, REMOTE)));
    assert_eq!(h.layer.peer_addr(h.handle), Some(REMOTE));
    recv_nothing!(h);
}

#[test]
fn test_syn_received_ack_with_data() {
    let mut h = socket_syn_received();
    send!(
        h,
        TcpRepr {
            flags: flags(ACK, PSH),
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            payload: b"hello",
            ..SEND_TEMPL
        }
    );
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 6,
            window_len: 59,
            ..RECV_TEMPL
        }
    );
    let (c, _) = h.layer.accept(h.listener.unwrap()).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(h.layer.recv(c, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
}

#[test]
fn test_syn_received_ack_fin_goes_to_close_wait() {
    let mut h = socket_syn_received();
    send!(
        h,
        TcpRepr {
            flags: flags(ACK, FIN),
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::CloseWait);
    assert_eq!(
        h.events(),
        vec![
            state_change(h.handle, TcpState::SynReceived, TcpState::Established),
            state_change(h.handle, TcpState::Established, TcpState::CloseWait),
        ]
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
    // Still handed to accept(), where it reads EOF.
    let (c, _) = h.layer.accept(h.listener.unwrap()).unwrap();
    assert!(h.layer.is_readable_eof(c));
}

#[test]
fn test_syn_received_rst_returns_to_listen() {
    let mut h = socket_syn_received();
    send!(
        h,
        TcpRepr {
            flags: RST,
            seq_number: REMOTE_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.layer.socket_count(), 1);
    assert!(h.layer.conn_handle(LOCAL, REMOTE).is_none());
    assert_eq!(
        h.layer.accept(h.listener.unwrap()),
        Err(AcceptError::WouldBlock)
    );
    recv_nothing!(h);
}

#[test]
fn test_syn_received_bad_ack_gets_rst() {
    let mut h = socket_syn_received();
    send!(h, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1,
        ack_number: LOCAL_SEQ + 100,
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: RST,
        seq_number: LOCAL_SEQ + 100,
        window_len: 0,
        ..RECV_TEMPL
    }));
    assert_eq!(h.state(), TcpState::SynReceived);
}

#[test]
fn test_syn_received_retransmitted_syn_resends_syn_ack() {
    let mut h = socket_syn_received();
    send!(
        h,
        TcpRepr {
            flags: SYN,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
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
}

#[test]
fn test_syn_received_timeout_retransmits_then_drops() {
    let mut h = socket_syn_received();
    let synack = TcpRepr {
        flags: flags(SYN, ACK),
        seq_number: LOCAL_SEQ,
        ack_number: REMOTE_SEQ + 1,
        options: mss_opt(1460),
        ..RECV_TEMPL
    };
    recv_nothing!(h, time 999);
    let mut t = 0;
    for i in 0..5 {
        t += 1000 << i;
        recv!(h, time t, synack);
    }
    t += 32_000;
    h.at(t);
    recv_nothing!(h);
    assert!(h.layer.conn_handle(LOCAL, REMOTE).is_none());
    assert_eq!(h.layer.socket_count(), 1);
}

// ------------------------------------------------------------------ SYN-SENT

#[test]
fn test_syn_sent_syn_ack_establishes() {
    let mut h = socket_syn_sent();
    send!(h, time 10, TcpRepr {
        flags: flags(SYN, ACK),
        seq_number: REMOTE_SEQ,
        ack_number: LOCAL_SEQ + 1,
        options: mss_opt(1000),
        ..SEND_TEMPL
    });
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 1,
            ..RECV_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::Established);
    let info = h.info();
    assert_eq!(info.snd_mss, 1000);
    assert_eq!(info.srtt, Some(Duration::from_millis(10)));
    assert_eq!(
        h.events(),
        vec![state_change(
            h.handle,
            TcpState::SynSent,
            TcpState::Established
        )]
    );
    assert!(h.layer.can_send(h.handle));
}

#[test]
fn test_syn_sent_rst_ack_refuses() {
    let mut h = socket_syn_sent();
    send!(
        h,
        TcpRepr {
            flags: flags(RST, ACK),
            seq_number: SeqNumber(0),
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::Closed);
    assert_eq!(h.layer.send(h.handle, b"x"), Err(SendError::Refused));
    assert_eq!(h.layer.send(h.handle, b"x"), Err(SendError::Closed));
    recv_nothing!(h);
}

#[test]
fn test_syn_sent_rst_without_acceptable_ack_ignored() {
    let mut h = socket_syn_sent();
    send!(
        h,
        TcpRepr {
            flags: RST,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    send!(
        h,
        TcpRepr {
            flags: flags(RST, ACK),
            seq_number: REMOTE_SEQ,
            ack_number: LOCAL_SEQ + 5,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::SynSent);
}

#[test]
fn test_syn_sent_bad_ack_gets_rst() {
    let mut h = socket_syn_sent();
    send!(h, TcpRepr {
        flags: flags(SYN, ACK),
        seq_number: REMOTE_SEQ,
        ack_number: LOCAL_SEQ,
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: RST,
        seq_number: LOCAL_SEQ,
        window_len: 0,
        ..RECV_TEMPL
    }));
    assert_eq!(h.state(), TcpState::SynSent);
}

#[test]
fn test_syn_sent_simultaneous_open() {
    let mut h = socket_syn_sent();
    send!(
        h,
        TcpRepr {
            flags: SYN,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::SynReceived);
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
    // The peer's SYN,ACK repeats its SYN; only its ACK matters.
    send!(
        h,
        TcpRepr {
            flags: flags(SYN, ACK),
            seq_number: REMOTE_SEQ,
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::Established);
    assert_eq!(
        h.events(),
        vec![
            state_change(h.handle, TcpState::SynSent, TcpState::SynReceived),
            state_change(h.handle, TcpState::SynReceived, TcpState::Established),
        ]
    );
}

#[test]
fn test_syn_received_shutdown_sends_fin_after_handshake() {
    let mut h = socket_syn_sent();
    send!(
        h,
        TcpRepr {
            flags: SYN,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    h.recv().expect("SYN,ACK");
    h.layer.shutdown(h.handle, Shutdown::Write).unwrap();
    assert_eq!(h.state(), TcpState::SynReceived);
    recv_nothing!(h);
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::FinWait1);
    recv!(
        h,
        TcpRepr {
            flags: flags(FIN, ACK),
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 1,
            ..RECV_TEMPL
        }
    );
}

#[test]
fn test_syn_sent_retransmits_and_gives_up() {
    let mut config = base_config();
    config.syn_retries = 2;
    let mut h = socket_syn_sent_with(config);
    let syn = TcpRepr {
        flags: SYN,
        seq_number: LOCAL_SEQ,
        options: mss_opt(1460),
        ..RECV_TEMPL
    };
    recv!(h, syn);
    recv_nothing!(h, time 999);
    recv!(h, time 1000, syn);
    recv_nothing!(h, time 2999);
    recv!(h, time 3000, syn);
    recv_nothing!(h, time 6999);
    h.at(7000);
    assert_eq!(h.state(), TcpState::Closed);
    assert_eq!(h.layer.take_error(h.handle), Some(TcpError::TimedOut));
    let ev = h.events();
    assert!(ev.contains(&TcpEvent::RtoFired {
        handle: h.handle,
        rto: Duration::from_secs(2),
        retries: 1
    }));
    assert!(ev.contains(&state_change(h.handle, TcpState::SynSent, TcpState::Closed)));
}

fn icmp(kind: IcmpErrorKind, seq: SeqNumber) -> IcmpError {
    IcmpError {
        reporter: REMOTE_IP,
        kind,
        quoted: Ipv4Repr {
            src_addr: LOCAL_IP,
            dst_addr: REMOTE_IP,
            protocol: IpProtocol::TCP,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            payload_len: 24,
        },
        src_port: LOCAL_PORT,
        dst_port: REMOTE_PORT,
        tcp_seq: seq.0,
    }
}

#[test]
fn test_syn_sent_icmp_port_unreachable_refuses() {
    let mut h = socket_syn_sent();
    let cx = h.cx();
    // RFC 5927: a quoted sequence number that is not ours is ignored.
    h.layer
        .handle_icmp_error(&cx, &icmp(IcmpErrorKind::PortUnreachable, LOCAL_SEQ + 7));
    assert_eq!(h.state(), TcpState::SynSent);
    h.layer
        .handle_icmp_error(&cx, &icmp(IcmpErrorKind::PortUnreachable, LOCAL_SEQ));
    assert_eq!(h.state(), TcpState::Closed);
    let mut buf = [0; 4];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Err(RecvError::Refused));
}

#[test]
fn test_syn_sent_icmp_host_unreachable_fails() {
    let mut h = socket_syn_sent();
    let cx = h.cx();
    h.layer
        .handle_icmp_error(&cx, &icmp(IcmpErrorKind::HostUnreachable, LOCAL_SEQ));
    assert_eq!(h.state(), TcpState::Closed);
    assert_eq!(
        h.layer.take_error(h.handle),
        Some(TcpError::HostUnreachable)
    );
}

#[test]
fn test_syn_sent_close_frees() {
    let mut h = socket_syn_sent();
    h.layer.close(h.handle, &h.cx()).unwrap();
    assert_eq!(h.layer.socket_count(), 0);
    assert_eq!(h.layer.state(h.handle), None);
    recv_nothing!(h);
}

#[test]
fn test_connect_picks_ephemeral_port() {
    let mut h = Harness::new(base_config());
    let cx = h.cx();
    h.layer.connect(h.handle, &cx, REMOTE).unwrap();
    let local = h.layer.local_addr(h.handle).unwrap();
    assert_eq!(*local.ip(), LOCAL_IP);
    assert!((32768..=60999).contains(&local.port()));
    let second = h.layer.socket();
    h.layer.connect(second, &cx, REMOTE).unwrap();
    assert_ne!(h.layer.local_addr(second).unwrap().port(), local.port());
    assert_eq!(
        h.layer.connect(second, &cx, REMOTE),
        Err(ConnectError::InProgress)
    );
}

#[test]
fn test_bind_conflicts() {
    let mut h = Harness::new(base_config());
    h.layer.bind(h.handle, LOCAL).unwrap();
    let other = h.layer.socket();
    assert_eq!(h.layer.bind(other, LOCAL), Err(BindError::AddrInUse));
    assert_eq!(h.layer.listen(other, LOCAL, 4), Err(ListenError::AddrInUse));
    assert_eq!(h.layer.bind(h.handle, LOCAL), Err(BindError::InvalidState));
}

// ------------------------------------------------------------------ ESTABLISHED

#[test]
fn test_established_recv_data() {
    let mut h = socket_established();
    send!(
        h,
        TcpRepr {
            flags: flags(ACK, PSH),
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            payload: b"abcdef",
            ..SEND_TEMPL
        }
    );
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 7,
            window_len: 58,
            ..RECV_TEMPL
        }
    );
    let mut buf = [0u8; 4];
    assert_eq!(h.layer.peek(h.handle, &mut buf), Ok(4));
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(4));
    assert_eq!(&buf, b"abcd");
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(2));
    assert_eq!(h.layer.recv(h.handle, &mut buf), Err(RecvError::WouldBlock));
}

#[test]
fn test_established_send_data() {
    let mut h = socket_established();
    assert_eq!(h.layer.send(h.handle, b"hello"), Ok(5));
    recv!(
        h,
        TcpRepr {
            flags: flags(ACK, PSH),
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 1,
            payload: b"hello",
            ..RECV_TEMPL
        }
    );
    recv_nothing!(h);
    send!(h, time 50, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1,
        ack_number: LOCAL_SEQ + 6,
        ..SEND_TEMPL
    });
    let info = h.info();
    assert_eq!(info.bytes_acked, 5);
    assert_eq!(info.unacked, 0);
    // The handshake measured 0 ms: SRTT = 7/8 * 0 + 1/8 * 50 ms.
    assert_eq!(info.srtt, Some(Duration::from_micros(6250)));
}

#[test]
fn test_established_send_buffer_is_bounded() {
    let mut h = socket_established();
    assert_eq!(h.layer.send(h.handle, &[7; 100]), Ok(64));
    assert_eq!(h.layer.send(h.handle, b"x"), Err(SendError::WouldBlock));
    assert!(!h.layer.can_send(h.handle));
}

#[test]
fn test_established_fin_goes_to_close_wait() {
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
    assert_eq!(h.state(), TcpState::CloseWait);
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 2,
            ..RECV_TEMPL
        }
    );
    let mut buf = [0u8; 4];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(0));
    assert!(h.layer.is_readable_eof(h.handle));
    // Half-close: we may still send.
    assert_eq!(h.layer.send(h.handle, b"ok"), Ok(2));
}

#[test]
fn test_established_rst_exact_resets() {
    let mut h = socket_established();
    send!(
        h,
        TcpRepr {
            flags: RST,
            seq_number: REMOTE_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::Closed);
    let mut buf = [0u8; 4];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Err(RecvError::Reset));
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(0));
    assert_eq!(h.layer.send(h.handle, b"x"), Err(SendError::Closed));
    assert!(h.layer.conn_handle(LOCAL, REMOTE).is_none());
}

#[test]
fn test_established_rst_in_window_gets_challenge_ack() {
    let mut h = socket_established();
    // Per RFC 5961 §3.2.
    send!(h, TcpRepr {
        flags: RST,
        seq_number: REMOTE_SEQ + 10,
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    }));
    assert_eq!(h.state(), TcpState::Established);
    assert_eq!(h.layer.counters().challenge_acks, 1);
}

#[test]
fn test_established_rst_out_of_window_ignored() {
    let mut h = socket_established();
    send!(
        h,
        TcpRepr {
            flags: RST,
            seq_number: REMOTE_SEQ + 1000,
            ..SEND_TEMPL
        }
    );
    send!(
        h,
        TcpRepr {
            flags: RST,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::Established);
}

#[test]
fn test_established_syn_gets_challenge_ack() {
    let mut h = socket_established();
    // Per RFC 5961 §4.2, whatever the sequence number.
    for seq in [REMOTE_SEQ + 1, REMOTE_SEQ + 30] {
        send!(h, TcpRepr {
            flags: SYN,
            seq_number: seq,
            ..SEND_TEMPL
        } => Some(TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 1,
            ..RECV_TEMPL
        }));
    }
    // An old SYN is not acceptable: plain ACK.
    send!(h, TcpRepr {
        flags: SYN,
        seq_number: REMOTE_SEQ,
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    }));
    assert_eq!(h.state(), TcpState::Established);
}

#[test]
fn test_established_ack_of_unsent_data_gets_ack() {
    let mut h = socket_established();
    // Per RFC 5961 §5.2 / RFC 9293: SEG.ACK > SND.NXT is answered and dropped, data too.
    send!(h, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1,
        ack_number: LOCAL_SEQ + 100,
        payload: b"zz",
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    }));
    assert_eq!(h.info().recv_queue, 0);
}

#[test]
fn test_established_too_old_ack_dropped_with_ack() {
    let mut h = socket_established();
    // MAX.SND.WND is 256: an ACK more than that below SND.UNA is unacceptable.
    send!(h, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1,
        ack_number: LOCAL_SEQ - 300,
        payload: b"zz",
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    }));
    // Within MAX.SND.WND an old ACK is fine and the data is taken.
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ - 100,
            payload: b"zz",
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.info().recv_queue, 2);
}

#[test]
fn test_established_challenge_acks_rate_limited() {
    let mut config = base_config();
    config.challenge_ack_limit = 2;
    let mut h = socket_established_with(config, NO_OPTIONS);
    let rst = TcpRepr {
        flags: RST,
        seq_number: REMOTE_SEQ + 10,
        ..SEND_TEMPL
    };
    assert!(h.send(&rst).is_some());
    assert!(h.send(&rst).is_some());
    assert!(h.send(&rst).is_none());
    assert_eq!(h.layer.counters().challenge_acks_limited, 1);
    h.at(1000);
    assert!(h.send(&rst).is_some());
}

#[test]
fn test_established_unacceptable_data_gets_ack() {
    let mut h = socket_established();
    // Entirely beyond the window.
    send!(h, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1 + 64,
        ack_number: LOCAL_SEQ + 1,
        payload: b"late",
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    }));
    // Entirely old: a retransmission.
    send!(h, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ - 3,
        ack_number: LOCAL_SEQ + 1,
        payload: b"old",
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    }));
}

#[test]
fn test_established_bare_out_of_window_acks_rate_limited() {
    let mut h = socket_established();
    let oow = TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1000,
        ack_number: LOCAL_SEQ + 1,
        ..SEND_TEMPL
    };
    let dupack = TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    };
    send!(h, time 10, oow => Some(dupack));
    // Linux tcp_invalid_ratelimit: one answer per 500 ms, so no ACK loop can form.
    send!(h, time 20, oow);
    send!(h, time 510, oow => Some(dupack));
}

#[test]
fn test_established_overlapping_data_is_trimmed() {
    let mut h = socket_established();
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            payload: b"abc",
            ..SEND_TEMPL
        }
    );
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 2,
            ack_number: LOCAL_SEQ + 1,
            payload: b"bcdef",
            ..SEND_TEMPL
        }
    );
    let mut buf = [0u8; 16];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(6));
    assert_eq!(&buf[..6], b"abcdef");
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

#[test]
fn test_established_out_of_order_generates_sack() {
    let mut h = socket_established_with(sack_config(), sack_syn());
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1 + 10,
            ack_number: LOCAL_SEQ + 1,
            payload: b"klm",
            ..SEND_TEMPL
        }
    );
    let block = |l: usize, r: usize| Some((REMOTE_SEQ + 1 + l, REMOTE_SEQ + 1 + r));
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 1,
            options: TcpOptions {
                sack_ranges: [block(10, 13), None, None, None],
                ..NO_OPTIONS
            },
            ..RECV_TEMPL
        }
    );
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1 + 20,
            ack_number: LOCAL_SEQ + 1,
            payload: b"uv",
            ..SEND_TEMPL
        }
    );
    // The most recent block first (RFC 2018 §4).
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 1,
            options: TcpOptions {
                sack_ranges: [block(20, 22), block(10, 13), None, None],
                ..NO_OPTIONS
            },
            ..RECV_TEMPL
        }
    );
    // Filling the first hole acknowledges through the first block at once.
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            payload: b"abcdefghij",
            ..SEND_TEMPL
        }
    );
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 14,
            window_len: 64 - 13,
            options: TcpOptions {
                sack_ranges: [block(20, 22), None, None, None],
                ..NO_OPTIONS
            },
            ..RECV_TEMPL
        }
    );
    let mut buf = [0u8; 32];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(13));
    assert_eq!(&buf[..13], b"abcdefghijklm");
}

#[test]
fn test_established_sack_with_timestamps_sends_at_most_3_blocks() {
    let mut config = sack_config();
    config.timestamps = true;
    config.rx_buffer_len = 1024;
    let mut h = socket_established_with(
        config,
        TcpOptions {
            sack_permitted: true,
            timestamp: Some((1, 0)),
            ..NO_OPTIONS
        },
    );
    for i in 1..=4 {
        let reply = h.send(&TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1 + 10 * i,
            ack_number: LOCAL_SEQ + 1,
            options: ts_opt(2, 0),
            payload: b"xx",
            ..SEND_TEMPL
        });
        assert_eq!(reply, None);
        h.recv().expect("duplicate ACK");
    }
    let block = |i: usize| Some((REMOTE_SEQ + 1 + 10 * i, REMOTE_SEQ + 3 + 10 * i));
    let got = h.recv();
    assert_eq!(got, None);
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1 + 50,
            ack_number: LOCAL_SEQ + 1,
            options: ts_opt(3, 0),
            payload: b"yy",
            ..SEND_TEMPL
        }
    );
    // Newest first, then the next most recent, three in all with timestamps.
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 1,
            window_len: 1024,
            options: TcpOptions {
                timestamp: Some((0, 1)),
                sack_ranges: [block(5), block(4), block(3), None],
                ..NO_OPTIONS
            },
            ..RECV_TEMPL
        }
    );
}

#[test]
fn test_established_nagle_holds_small_segments() {
    let mut h = socket_established();
    h.layer.send(h.handle, b"abc").unwrap();
    recv!(
        h,
        TcpRepr {
            flags: flags(ACK, PSH),
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 1,
            payload: b"abc",
            ..RECV_TEMPL
        }
    );
    h.layer.send(h.handle, b"def").unwrap();
    h.layer.send(h.handle, b"ghi").unwrap();
    recv_nothing!(h);
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 4,
            ..SEND_TEMPL
        }
    );
    recv!(
        h,
        TcpRepr {
            flags: flags(ACK, PSH),
            seq_number: LOCAL_SEQ + 4,
            ack_number: REMOTE_SEQ + 1,
            payload: b"defghi",
            ..RECV_TEMPL
        }
    );
}

#[test]
fn test_established_nodelay_sends_at_once() {
    let mut h = socket_established();
    h.layer.set_nodelay(h.handle, true).unwrap();
    h.layer.send(h.handle, b"abc").unwrap();
    recv!(
        h,
        TcpRepr {
            flags: flags(ACK, PSH),
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 1,
            payload: b"abc",
            ..RECV_TEMPL
        }
    );
    h.layer.send(h.handle, b"def").unwrap();
    recv!(
        h,
        TcpRepr {
            flags: flags(ACK, PSH),
            seq_number: LOCAL_SEQ + 4,
            ack_number: REMOTE_SEQ + 1,
            payload: b"def",
            ..RECV_TEMPL
        }
    );
}

#[test]
fn test_established_delayed_ack_timer() {
    let mut config = base_config();
    config.delayed_ack = Duration::from_millis(40);
    let mut h = socket_established_with(config, NO_OPTIONS);
    send!(h, time 100, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1,
        ack_number: LOCAL_SEQ + 1,
        payload: b"abc",
        ..SEND_TEMPL
    });
    recv_nothing!(h);
    recv_nothing!(h, time 139);
    recv!(h, time 140, TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 4,
        window_len: 61,
        ..RECV_TEMPL
    });
}

#[test]
fn test_established_delayed_ack_every_second_full_segment() {
    let mut config = base_config();
    config.delayed_ack = Duration::from_millis(40);
    config.rx_buffer_len = 4096;
    let mut h = socket_established_with(config, mss_opt(100));
    let seg = |off: usize| TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 1 + off,
        ack_number: LOCAL_SEQ + 1,
        payload: &[0x55; 100],
        ..SEND_TEMPL
    };
    send!(h, seg(0));
    recv_nothing!(h);
    send!(h, seg(100));
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 201,
            window_len: 4096 - 200,
            ..RECV_TEMPL
        }
    );
    send!(h, seg(200));
    recv_nothing!(h);
}

#[test]
fn test_established_out_of_order_acked_immediately_despite_delay() {
    let mut config = base_config();
    config.delayed_ack = Duration::from_millis(40);
    let mut h = socket_established_with(config, NO_OPTIONS);
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 5,
            ack_number: LOCAL_SEQ + 1,
            payload: b"x",
            ..SEND_TEMPL
        }
    );
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 1,
            ..RECV_TEMPL
        }
    );
}

#[test]
fn test_established_rto_backoff_and_give_up() {
    let mut config = base_config();
    config.max_retries = 3;
    let mut h = socket_established_with(config, NO_OPTIONS);
    h.layer.send(h.handle, b"data").unwrap();
    let seg = TcpRepr {
        flags: flags(ACK, PSH),
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        payload: b"data",
        ..RECV_TEMPL
    };
    // The handshake measured 0 ms, so the RTO starts at its 200 ms minimum.
    recv!(h, seg);
    recv_nothing!(h, time 199);
    recv!(h, time 200, seg);
    recv_nothing!(h, time 599);
    recv!(h, time 600, seg);
    recv_nothing!(h, time 1399);
    recv!(h, time 1400, seg);
    let ev = h.events();
    assert!(ev.contains(&TcpEvent::RtoFired {
        handle: h.handle,
        rto: Duration::from_millis(1600),
        retries: 3
    }));
    assert!(ev.contains(&TcpEvent::Retransmit {
        handle: h.handle,
        seq: LOCAL_SEQ + 1,
        len: 4
    }));
    assert_eq!(h.info().total_retrans, 3);
    h.at(2999);
    assert_eq!(h.state(), TcpState::Established);
    h.at(3000);
    assert_eq!(h.state(), TcpState::Closed);
    assert_eq!(h.layer.send(h.handle, b"x"), Err(SendError::TimedOut));
}

#[test]
fn test_established_rto_collapses_cwnd() {
    let mut h = socket_established();
    h.layer.send(h.handle, b"data").unwrap();
    h.recv().unwrap();
    // RFC 6928: min(10*MSS, max(2*MSS, 14600)).
    assert_eq!(h.info().cwnd, 10 * 536);
    h.at(200);
    assert_eq!(h.info().cwnd, 536);
    assert_eq!(h.info().ssthresh, 2 * 536);
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

#[test]
fn test_established_fast_retransmit() {
    let (mut h, data) = socket_bulk(base_config(), NO_OPTIONS);
    // IW = min(10*MSS, max(2*MSS, 14600)) = 640: everything goes at once.
    for i in 0..10 {
        let mut want = data_seg(i * 64, leak_slice(&data[i * 64..i * 64 + 64]));
        if i == 9 {
            want.flags |= PSH;
        }
        recv!(h, want);
    }
    recv_nothing!(h);
    h.events();
    // First segment lost: three duplicate ACKs.
    send!(h, bulk_ack(0));
    send!(h, bulk_ack(0));
    recv_nothing!(h);
    send!(h, bulk_ack(0));
    recv!(h, data_seg(0, leak_slice(&data[..64])));
    let ev = h.events();
    assert_eq!(
        ev,
        vec![
            TcpEvent::FastRetransmit {
                handle: h.handle,
                seq: LOCAL_SEQ + 1
            },
            TcpEvent::CongestionChanged {
                handle: h.handle,
                cwnd: 320 + 3 * 64,
                ssthresh: 320
            },
            TcpEvent::Retransmit {
                handle: h.handle,
                seq: LOCAL_SEQ + 1,
                len: 64
            },
        ]
    );
    assert!(h.info().in_recovery);
    // Partial ACK (RFC 6582): the next hole is retransmitted at once.
    send!(h, bulk_ack(128));
    recv!(h, data_seg(128, leak_slice(&data[128..192])));
    recv_nothing!(h);
    // Full ACK ends recovery: cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS).
    send!(h, bulk_ack(640));
    assert!(!h.info().in_recovery);
    assert_eq!(h.info().cwnd, 128);
}

#[test]
fn test_established_sack_recovery_retransmits_holes() {
    let (mut h, data) = socket_bulk(sack_config(), sack_syn());
    for _ in 0..10 {
        h.recv().unwrap();
    }
    let base = LOCAL_SEQ + 1;
    // Segments 0 and 2 lost; the peer SACKs 1 and 3..10.
    let sack = |blocks: [Option<(SeqNumber, SeqNumber)>; 4]| TcpRepr {
        options: TcpOptions {
            sack_ranges: blocks,
            ..NO_OPTIONS
        },
        ..bulk_ack(0)
    };
    send!(h, sack([Some((base + 64, base + 128)), None, None, None]));
    recv_nothing!(h);
    // RFC 6675 IsLost(SND.UNA): more than (DupThresh - 1) * SMSS bytes SACKed above it
    // starts recovery at the second duplicate ACK, with the first hole.
    send!(
        h,
        sack([
            Some((base + 192, base + 320)),
            Some((base + 64, base + 128)),
            None,
            None
        ])
    );
    recv!(h, data_seg(0, leak_slice(&data[..64])));
    // pipe = 320 above the highest SACK + 64 retransmitted >= cwnd = 320: wait.
    recv_nothing!(h);
    assert!(h.info().in_recovery);
    assert_eq!(h.info().cwnd, 320);
    // More SACKed: pipe drops to 256 and the second hole is lost, so it goes next.
    send!(
        h,
        sack([
            Some((base + 192, base + 448)),
            Some((base + 64, base + 128)),
            None,
            None
        ])
    );
    recv!(h, data_seg(128, leak_slice(&data[128..192])));
    recv_nothing!(h);
    assert_eq!(h.info().sacked, 64 + 256);
    send!(h, sack([Some((base + 192, base + 640)), None, None, None]));
    send!(h, bulk_ack(640));
    assert_eq!(h.info().unacked, 0);
    assert!(!h.info().in_recovery);
}

/// Regression (found by `sim::tcp_tests::sack_retransmits_less_than_newreno_alone`,
/// where SACK recovery ran slower than NewReno's): in SACK recovery cwnd is not
/// inflated, so new data must be limited by pipe (RFC 6675 §5 (C)) and the peer's
/// window, not by SND.UNA + cwnd, which froze all new data until recovery ended.
#[test]
fn test_established_sack_recovery_sends_new_data_when_pipe_allows() {
    let (mut h, data) = socket_bulk(sack_config(), sack_syn());
    let more: Vec<u8> = (640..1280).map(|i| (i % 251) as u8).collect();
    assert_eq!(h.layer.send(h.handle, &more), Ok(640));
    for _ in 0..10 {
        h.recv().unwrap();
    }
    // cwnd (IW = 640) is full.
    recv_nothing!(h);
    let base = LOCAL_SEQ + 1;
    let sack = |l: usize, r: usize| TcpRepr {
        options: TcpOptions {
            sack_ranges: [Some((base + l, base + r)), None, None, None],
            ..NO_OPTIONS
        },
        ..bulk_ack(0)
    };
    // Segment 0 lost; 1..=3 SACKed: recovery (cwnd = ssthresh = 320), hole resent.
    send!(h, sack(64, 256));
    recv!(h, data_seg(0, leak_slice(&data[..64])));
    // pipe = 384 above the highest SACK + 64 retransmitted >= 320: wait.
    recv_nothing!(h);
    assert_eq!(h.info().cwnd, 320);
    // 4..=6 SACKed too: pipe = 192 + 64 = 256, so one new segment fits.
    send!(h, sack(64, 448));
    recv!(h, data_seg(640, leak_slice(&more[..64])));
    recv_nothing!(h);
    // 7..=9 SACKed: pipe = 64 new + 64 retransmitted = 128: three more.
    send!(h, sack(64, 640));
    recv!(h, data_seg(704, leak_slice(&more[64..128])));
    recv!(h, data_seg(768, leak_slice(&more[128..192])));
    recv!(h, data_seg(832, leak_slice(&more[192..256])));
    recv_nothing!(h);
    assert!(h.info().in_recovery);
}

/// Regression (seed 2 of `sim::tcp_tests::seed_sweep_64k_each_way`: thousands of
/// 23-byte retransmissions at one instant): duplicate ACKs that arrive while go-back-N
/// resends after an RTO must not start fast recovery (RFC 6582 §3.2 (1), §4), whose
/// pipe does not count the bytes go-back-N resends.
#[test]
fn test_established_dupacks_after_rto_do_not_start_recovery() {
    let (mut h, data) = socket_bulk(sack_config(), sack_syn());
    for _ in 0..10 {
        h.recv().unwrap();
    }
    // Nothing is acknowledged: the RTO resends the first segment, cwnd = 1 MSS.
    recv!(h, time 200, data_seg(0, leak_slice(&data[..64])));
    recv_nothing!(h);
    assert_eq!(h.info().cwnd, 64);
    let base = LOCAL_SEQ + 1;
    let dupack = TcpRepr {
        options: TcpOptions {
            sack_ranges: [Some((base + 64, base + 640)), None, None, None],
            ..NO_OPTIONS
        },
        ..bulk_ack(0)
    };
    // Late ACKs of the first flight, SACKing all but segment 0.
    for _ in 0..3 {
        send!(h, dupack);
        recv_nothing!(h);
    }
    assert!(!h.info().in_recovery);
    assert_eq!(h.info().cwnd, 64);
    // The retransmission is acknowledged: go-back-N goes on in slow start.
    send!(h, bulk_ack(64));
    recv!(h, data_seg(64, leak_slice(&data[64..128])));
    recv!(h, data_seg(128, leak_slice(&data[128..192])));
    recv_nothing!(h);
}

#[test]
fn test_established_zero_window_probe() {
    let mut h = socket_established();
    send!(
        h,
        TcpRepr {
            window_len: 0,
            ..ack_seg(0)
        }
    );
    h.events();
    h.layer.send(h.handle, b"abc").unwrap();
    recv_nothing!(h);
    recv_nothing!(h, time 199);
    let probe = TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    };
    recv!(h, time 200, probe);
    assert_eq!(
        h.events(),
        vec![TcpEvent::ZeroWindowProbe {
            handle: h.handle,
            seq: LOCAL_SEQ
        }]
    );
    // Still zero: the next probe comes after a doubled interval.
    send!(
        h,
        TcpRepr {
            window_len: 0,
            ..ack_seg(0)
        }
    );
    recv_nothing!(h);
    recv_nothing!(h, time 599);
    recv!(h, time 600, probe);
    // The window opens: data flows.
    send!(h, ack_seg(0));
    recv!(
        h,
        TcpRepr {
            flags: flags(ACK, PSH),
            ..data_seg(0, b"abc")
        }
    );
    assert!(h.events().contains(&TcpEvent::WindowUpdate {
        handle: h.handle,
        window: 256
    }));
}

#[test]
fn test_established_window_shrinks_to_zero_under_flight() {
    let mut config = base_config();
    config.max_retries = 2;
    let mut h = socket_established_with(config, NO_OPTIONS);
    h.layer.send(h.handle, b"abcd").unwrap();
    h.recv().unwrap();
    // The peer takes 2 bytes and closes its window.
    send!(
        h,
        TcpRepr {
            window_len: 0,
            ..ack_seg(2)
        }
    );
    let probe = TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 2,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    };
    // Retransmissions turn into probes; an answering peer never times out.
    let mut t = 0;
    for i in 0..5 {
        t += 200 << (i + 1).min(5);
        recv!(h, time t, probe);
        send!(
            h,
            TcpRepr {
                window_len: 0,
                ..ack_seg(2)
            }
        );
    }
    assert_eq!(h.state(), TcpState::Established);
    assert!(
        !h.info().in_recovery,
        "zero-window ACKs are not duplicate ACKs"
    );
    // The window re-opens: what was beyond it is resent at once.
    send!(h, ack_seg(2));
    recv!(
        h,
        TcpRepr {
            flags: flags(ACK, PSH),
            ..data_seg(2, b"cd")
        }
    );
    assert_eq!(h.info().total_retrans, 1);
}

#[test]
fn test_established_window_update_after_read() {
    let mut h = socket_established();
    send!(
        h,
        TcpRepr {
            payload: &[1; 64],
            ..TcpRepr {
                flags: ACK,
                seq_number: REMOTE_SEQ + 1,
                ack_number: LOCAL_SEQ + 1,
                ..SEND_TEMPL
            }
        }
    );
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 65,
            window_len: 0,
            ..RECV_TEMPL
        }
    );
    // A zero-window probe is acceptable and answered.
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 65,
            ack_number: LOCAL_SEQ + 1,
            payload: b"z",
            ..SEND_TEMPL
        }
    );
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 65,
            window_len: 0,
            ..RECV_TEMPL
        }
    );
    let mut buf = [0u8; 10];
    h.layer.recv(h.handle, &mut buf).unwrap();
    // 10 bytes free is below min(RCV.BUFF/2, MSS) = 32: no update yet (SWS avoidance).
    recv_nothing!(h);
    let mut buf = [0u8; 30];
    h.layer.recv(h.handle, &mut buf).unwrap();
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 65,
            window_len: 40,
            ..RECV_TEMPL
        }
    );
    assert!(h.events().contains(&TcpEvent::WindowUpdateSent {
        handle: h.handle,
        window: 40
    }));
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

#[test]
fn test_established_paws_rejects_old_timestamp() {
    let mut h = socket_established_with(ts_config(), ts_opt(1000, 0));
    send!(h, time 5, TcpRepr {
        options: ts_opt(1010, 0),
        payload: b"new",
        ..TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    });
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 4,
            window_len: 61,
            options: ts_opt(5, 1010),
            ..RECV_TEMPL
        }
    );
    // An older TSval: dropped by PAWS (RFC 7323 §5.3) and acknowledged.
    send!(h, TcpRepr {
        flags: ACK,
        seq_number: REMOTE_SEQ + 4,
        ack_number: LOCAL_SEQ + 1,
        options: ts_opt(1005, 0),
        payload: b"old",
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 4,
        window_len: 61,
        options: ts_opt(5, 1010),
        ..RECV_TEMPL
    }));
    assert_eq!(h.info().recv_queue, 3);
    assert_eq!(h.layer.counters().paws_rejected, 1);
}

#[test]
fn test_established_timestamp_rtt_measurement() {
    let mut h = socket_established_with(ts_config(), ts_opt(1000, 0));
    h.layer.send(h.handle, b"x").unwrap();
    recv!(h, time 100, TcpRepr {
        flags: flags(ACK, PSH),
        options: ts_opt(100, 1000),
        ..data_seg(0, b"x")
    });
    send!(h, time 130, TcpRepr {
        options: ts_opt(1001, 100),
        ..ack_seg(1)
    });
    // The handshake measured 0 ms: SRTT = 1/8 * 30 ms.
    assert_eq!(h.info().srtt, Some(Duration::from_micros(3750)));
}

/// Regression (seed 172 of the 1 MB sweep stalled with RTO stuck at its 120 s cap): an
/// ACK lost, the RTO resends, the peer answers the duplicate echoing TS.Recent from
/// the original transmission. That echo predates the timeout, so it is no RTT sample
/// (Karn); taking it made every spurious timeout raise the next RTO by the last one.
#[test]
fn test_established_timestamp_echo_from_before_rto_is_not_sampled() {
    let mut h = socket_established_with(ts_config(), ts_opt(1000, 0));
    h.layer.send(h.handle, b"x").unwrap();
    let seg = |tsval| TcpRepr {
        flags: flags(ACK, PSH),
        options: ts_opt(tsval, 1000),
        ..data_seg(0, b"x")
    };
    recv!(h, time 100, seg(100));
    // The handshake measured 0 ms: RTO = 200 ms.
    recv!(h, time 300, seg(300));
    assert_eq!(h.info().srtt, Some(Duration::ZERO));
    // The ACK of the original was lost; the answer to the duplicate echoes TSval 100.
    send!(h, time 330, TcpRepr {
        options: ts_opt(1001, 100),
        ..ack_seg(1)
    });
    assert_eq!(h.info().unacked, 0);
    assert_eq!(h.info().srtt, Some(Duration::ZERO));
    assert_eq!(h.info().rto, Duration::from_millis(200));
    // Fresh echoes are samples again: 30 ms.
    h.layer.send(h.handle, b"y").unwrap();
    recv!(h, time 400, TcpRepr {
        flags: flags(ACK, PSH),
        options: ts_opt(400, 1001),
        ..data_seg(1, b"y")
    });
    send!(h, time 430, TcpRepr {
        options: ts_opt(1002, 400),
        ..ack_seg(2)
    });
    assert_eq!(h.info().srtt, Some(Duration::from_micros(3750)));
}

#[test]
fn test_established_keepalive_probes_then_resets() {
    let mut h = socket_established();
    let cx = h.cx();
    h.layer
        .set_keepalive_params(h.handle, Duration::from_secs(10), Duration::from_secs(1), 2)
        .unwrap();
    h.layer.set_keepalive(h.handle, &cx, true).unwrap();
    let probe = TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    };
    recv_nothing!(h, time 9_999);
    recv!(h, time 10_000, probe);
    recv!(h, time 11_000, probe);
    recv!(h, time 12_000, TcpRepr {
        flags: flags(RST, ACK),
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        window_len: 0,
        ..RECV_TEMPL
    });
    assert_eq!(h.state(), TcpState::Closed);
    assert_eq!(h.layer.take_error(h.handle), Some(TcpError::TimedOut));
}

#[test]
fn test_established_keepalive_answer_resets_probes() {
    let mut h = socket_established();
    let cx = h.cx();
    h.layer
        .set_keepalive_params(h.handle, Duration::from_secs(10), Duration::from_secs(1), 1)
        .unwrap();
    h.layer.set_keepalive(h.handle, &cx, true).unwrap();
    h.recv();
    h.at(10_000);
    h.recv().expect("probe");
    send!(h, time 10_100, ack_seg(0));
    recv_nothing!(h, time 11_000);
    assert_eq!(h.state(), TcpState::Established);
    recv!(h, time 20_100, TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    });
}

#[test]
fn test_established_close_with_unread_data_resets() {
    let mut h = socket_established();
    send!(
        h,
        TcpRepr {
            payload: b"unread",
            ..TcpRepr {
                flags: ACK,
                seq_number: REMOTE_SEQ + 1,
                ack_number: LOCAL_SEQ + 1,
                ..SEND_TEMPL
            }
        }
    );
    h.recv();
    h.layer.close(h.handle, &h.cx()).unwrap();
    recv!(
        h,
        TcpRepr {
            flags: flags(RST, ACK),
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 7,
            window_len: 0,
            ..RECV_TEMPL
        }
    );
    assert_eq!(h.layer.socket_count(), 1); // the listener
}

#[test]
fn test_established_abort_resets() {
    let mut h = socket_established();
    h.layer.abort(h.handle).unwrap();
    recv!(
        h,
        TcpRepr {
            flags: flags(RST, ACK),
            seq_number: LOCAL_SEQ + 1,
            ack_number: REMOTE_SEQ + 1,
            window_len: 0,
            ..RECV_TEMPL
        }
    );
    assert_eq!(h.layer.state(h.handle), None);
    assert_eq!(h.layer.abort(h.handle), Err(CloseError::BadHandle));
}

#[test]
fn test_established_linger_zero_close_resets() {
    let mut h = socket_established();
    h.layer.set_linger(h.handle, Some(Duration::ZERO)).unwrap();
    h.layer.close(h.handle, &h.cx()).unwrap();
    let got = h.recv().unwrap();
    assert!(got.flags.rst());
}

#[test]
fn test_established_icmp_soft_error() {
    let mut h = socket_established();
    h.layer.send(h.handle, b"abc").unwrap();
    h.recv();
    let cx = h.cx();
    h.layer
        .handle_icmp_error(&cx, &icmp(IcmpErrorKind::HostUnreachable, LOCAL_SEQ + 1));
    assert_eq!(h.state(), TcpState::Established);
    assert_eq!(
        h.layer.take_error(h.handle),
        Some(TcpError::HostUnreachable)
    );
    assert_eq!(h.layer.take_error(h.handle), None);
}

#[test]
fn test_established_icmp_frag_needed_lowers_mss() {
    let (mut h, _) = socket_bulk(base_config(), NO_OPTIONS);
    h.recv().unwrap();
    let cx = h.cx();
    h.layer.handle_icmp_error(
        &cx,
        &icmp(IcmpErrorKind::FragmentationNeeded(80), LOCAL_SEQ + 1),
    );
    assert_eq!(h.info().pmtu, 80);
    // Resent from SND.UNA with 40-byte segments.
    let got = h.recv().unwrap();
    assert_eq!((got.seq_number, got.payload.len()), (LOCAL_SEQ + 1, 40));
}

#[test]
fn test_established_window_scaling_applies_to_peer_window() {
    let mut config = base_config();
    config.window_scaling = true;
    config.tx_buffer_len = 4096;
    let mut h = socket_established_with(
        config,
        TcpOptions {
            window_scale: Some(2),
            mss: Some(1000),
            ..NO_OPTIONS
        },
    );
    assert_eq!(h.info().snd_wnd, 256 << 2);
    h.layer.set_nodelay(h.handle, true).unwrap();
    send!(
        h,
        TcpRepr {
            window_len: 1,
            ..ack_seg(0)
        }
    );
    h.layer.send(h.handle, &[9; 10]).unwrap();
    // Peer window is 1 << 2 = 4 bytes; max window seen 1024: SWS avoidance holds the
    // 4-byte segment (below half of the largest window) until the persist override.
    recv_nothing!(h);
    let got = h.recv();
    assert!(got.is_none());
    h.at(1000);
    let got = h.recv().unwrap();
    assert_eq!(got.payload.len(), 4);
}

#[test]
fn test_events_queue_is_bounded() {
    let mut config = base_config();
    config.event_queue_len = 2;
    let mut h = socket_established_with(config, NO_OPTIONS);
    h.layer.shutdown(h.handle, Shutdown::Write).unwrap(); // ESTABLISHED -> FIN-WAIT-1
    h.recv().expect("FIN");
    h.send(&TcpRepr {
        flags: flags(FIN, ACK),
        ..ack_seg(1)
    })
    .expect("ACK of the FIN");
    let ev = h.events();
    assert_eq!(ev.len(), 2);
    assert!(h.layer.counters().events_dropped >= 1);
}

// ------------------------------------------------------------------ FIN-WAIT-1

#[test]
fn test_fin_wait_1_ack_goes_to_fin_wait_2() {
    let mut h = socket_fin_wait_1();
    send!(h, ack_seg(1));
    assert_eq!(h.state(), TcpState::FinWait2);
    assert_eq!(
        h.events(),
        vec![state_change(
            h.handle,
            TcpState::FinWait1,
            TcpState::FinWait2
        )]
    );
}

#[test]
fn test_fin_wait_1_fin_goes_to_closing() {
    let h = socket_closing();
    assert_eq!(h.state(), TcpState::Closing);
}

#[test]
fn test_fin_wait_1_fin_ack_goes_to_time_wait() {
    let mut h = socket_fin_wait_1();
    send!(h, TcpRepr {
        flags: flags(FIN, ACK),
        ..ack_seg(1)
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 2,
        ack_number: REMOTE_SEQ + 2,
        ..RECV_TEMPL
    }));
    assert_eq!(h.state(), TcpState::TimeWait);
}

#[test]
fn test_fin_wait_1_retransmits_fin() {
    let mut h = socket_fin_wait_1();
    recv!(h, time 1000, TcpRepr {
        flags: flags(FIN, ACK),
        seq_number: LOCAL_SEQ + 1,
        ack_number: REMOTE_SEQ + 1,
        ..RECV_TEMPL
    });
}

#[test]
fn test_fin_wait_1_data_then_fin() {
    let mut h = socket_established();
    h.layer.send(h.handle, b"bye").unwrap();
    h.layer.shutdown(h.handle, Shutdown::Write).unwrap();
    recv!(
        h,
        TcpRepr {
            flags: TcpFlags::ACK | PSH | FIN,
            ..data_seg(0, b"bye")
        }
    );
    assert_eq!(h.layer.send(h.handle, b"x"), Err(SendError::Closed));
    send!(h, ack_seg(4));
    assert_eq!(h.state(), TcpState::FinWait2);
    assert_eq!(h.info().bytes_acked, 3);
}

// ------------------------------------------------------------------ FIN-WAIT-2

#[test]
fn test_fin_wait_2_fin_goes_to_time_wait() {
    let h = socket_time_wait();
    assert_eq!(h.state(), TcpState::TimeWait);
}

#[test]
fn test_fin_wait_2_receives_data_half_closed() {
    let mut h = socket_fin_wait_2();
    send!(
        h,
        TcpRepr {
            payload: b"more",
            ..ack_seg(1)
        }
    );
    recv!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: LOCAL_SEQ + 2,
            ack_number: REMOTE_SEQ + 5,
            window_len: 60,
            ..RECV_TEMPL
        }
    );
    let mut buf = [0u8; 8];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(4));
}

#[test]
fn test_fin_wait_2_orphan_times_out() {
    let mut h = socket_fin_wait_2();
    h.layer.close(h.handle, &h.cx()).unwrap();
    assert_eq!(h.layer.socket_count(), 2);
    h.at(60_000);
    assert_eq!(h.layer.socket_count(), 1);
}

#[test]
fn test_fin_wait_2_orphan_data_gets_rst() {
    let mut h = socket_fin_wait_2();
    h.layer.close(h.handle, &h.cx()).unwrap();
    // Linux: data for a closed socket is answered with a reset.
    send!(h, TcpRepr {
        payload: b"late",
        ..ack_seg(1)
    } => Some(TcpRepr {
        flags: flags(RST, ACK),
        seq_number: LOCAL_SEQ + 2,
        ack_number: REMOTE_SEQ + 1,
        window_len: 0,
        ..RECV_TEMPL
    }));
    assert_eq!(h.layer.socket_count(), 1);
}

// ------------------------------------------------------------------ CLOSING

#[test]
fn test_closing_ack_goes_to_time_wait() {
    let mut h = socket_closing();
    send!(
        h,
        TcpRepr {
            seq_number: REMOTE_SEQ + 2,
            ..ack_seg(1)
        }
    );
    assert_eq!(h.state(), TcpState::TimeWait);
}

// ------------------------------------------------------------------ TIME-WAIT

#[test]
fn test_time_wait_expires() {
    let mut h = socket_time_wait();
    h.layer.close(h.handle, &h.cx()).unwrap();
    assert_eq!(h.layer.socket_count(), 2);
    h.at(59_999);
    assert_eq!(h.layer.socket_count(), 2);
    h.at(60_000);
    assert_eq!(h.layer.socket_count(), 1);
    assert!(h.layer.conn_handle(LOCAL, REMOTE).is_none());
}

#[test]
fn test_time_wait_retransmitted_fin_reacked_and_timer_restarted() {
    let mut h = socket_time_wait();
    send!(h, time 30_000, TcpRepr {
        flags: flags(FIN, ACK),
        seq_number: REMOTE_SEQ + 1,
        ack_number: LOCAL_SEQ + 2,
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 2,
        ack_number: REMOTE_SEQ + 2,
        ..RECV_TEMPL
    }));
    h.at(60_000);
    assert_eq!(h.state(), TcpState::TimeWait);
    h.at(90_000);
    assert_eq!(h.state(), TcpState::Closed);
}

#[test]
fn test_time_wait_syn_with_greater_seq_reopens() {
    let mut h = socket_time_wait();
    h.layer.close(h.handle, &h.cx()).unwrap();
    h.layer.set_fixed_isn(None);
    send!(
        h,
        TcpRepr {
            flags: SYN,
            seq_number: REMOTE_SEQ + 1000,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.layer.counters().time_wait_reused, 1);
    let child = h.layer.conn_handle(LOCAL, REMOTE).unwrap();
    assert_eq!(h.layer.state(child), Some(TcpState::SynReceived));
    // RFC 6191 / Linux: the new ISN is past the old connection's sequence space.
    recv!(
        h,
        TcpRepr {
            flags: flags(SYN, ACK),
            seq_number: LOCAL_SEQ + 2 + 65_537,
            ack_number: REMOTE_SEQ + 1001,
            options: mss_opt(1460),
            ..RECV_TEMPL
        }
    );
}

#[test]
fn test_time_wait_reuse_keeps_user_handle_valid() {
    let mut h = socket_time_wait();
    send!(
        h,
        TcpRepr {
            flags: SYN,
            seq_number: REMOTE_SEQ + 1000,
            ..SEND_TEMPL
        }
    );
    // The owner still holds the old connection: it is CLOSED, not gone.
    assert_eq!(h.layer.state(h.handle), Some(TcpState::Closed));
    let child = h.layer.conn_handle(LOCAL, REMOTE).unwrap();
    assert_ne!(child, h.handle);
    let mut buf = [0u8; 4];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(0));
}

#[test]
fn test_time_wait_old_syn_gets_challenge_ack() {
    let mut h = socket_time_wait();
    send!(h, TcpRepr {
        flags: SYN,
        seq_number: REMOTE_SEQ + 2,
        ..SEND_TEMPL
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 2,
        ack_number: REMOTE_SEQ + 2,
        ..RECV_TEMPL
    }));
    assert_eq!(h.state(), TcpState::TimeWait);
}

#[test]
fn test_time_wait_syn_with_newer_timestamp_reopens() {
    let mut h = socket_established_with(ts_config(), ts_opt(500, 0));
    h.layer.shutdown(h.handle, Shutdown::Write).unwrap();
    h.recv().unwrap();
    send!(h, TcpRepr {
        flags: flags(FIN, ACK),
        options: ts_opt(501, 0),
        ..ack_seg(1)
    } => Some(TcpRepr {
        flags: ACK,
        seq_number: LOCAL_SEQ + 2,
        ack_number: REMOTE_SEQ + 2,
        options: ts_opt(0, 501),
        ..RECV_TEMPL
    }));
    assert_eq!(h.state(), TcpState::TimeWait);
    // Same timestamp: not newer, stays.
    let syn = |ts: u32| TcpRepr {
        flags: SYN,
        seq_number: REMOTE_SEQ - 5000,
        options: ts_opt(ts, 0),
        ..SEND_TEMPL
    };
    assert!(h.send(&syn(501)).is_some());
    assert_eq!(h.state(), TcpState::TimeWait);
    send!(h, syn(502));
    assert_eq!(h.layer.counters().time_wait_reused, 1);
}

// ------------------------------------------------------------------ CLOSE-WAIT / LAST-ACK

#[test]
fn test_close_wait_close_goes_to_last_ack() {
    let h = socket_last_ack();
    assert_eq!(h.state(), TcpState::LastAck);
}

#[test]
fn test_last_ack_ack_closes_and_frees() {
    let mut h = socket_last_ack();
    h.layer.close(h.handle, &h.cx()).unwrap();
    send!(
        h,
        TcpRepr {
            seq_number: REMOTE_SEQ + 2,
            ..ack_seg(1)
        }
    );
    assert_eq!(h.layer.socket_count(), 1);
    recv_nothing!(h);
}

#[test]
fn test_last_ack_rst_closes() {
    let mut h = socket_last_ack();
    send!(
        h,
        TcpRepr {
            flags: RST,
            seq_number: REMOTE_SEQ + 2,
            ..SEND_TEMPL
        }
    );
    assert_eq!(h.state(), TcpState::Closed);
    assert_eq!(h.layer.take_error(h.handle), None);
}

#[test]
fn test_listen_close_resets_unaccepted() {
    let mut h = socket_established();
    // `h.handle` is the accepted child; make another, unaccepted one.
    send!(
        h,
        TcpRepr {
            flags: SYN,
            src_port: REMOTE_PORT + 1,
            seq_number: REMOTE_SEQ,
            ..SEND_TEMPL
        }
    );
    h.recv().unwrap();
    send!(
        h,
        TcpRepr {
            flags: ACK,
            src_port: REMOTE_PORT + 1,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    h.layer.close(h.listener.unwrap(), &h.cx()).unwrap();
    let rst = h.recv().unwrap();
    assert!(rst.flags.rst());
    assert_eq!(rst.dst_port, REMOTE_PORT + 1);
    // The accepted connection is untouched.
    assert_eq!(h.state(), TcpState::Established);
    assert_eq!(h.layer.socket_count(), 1);
}

#[test]
fn test_info_reports_like_tcp_info() {
    let h = socket_established();
    let info = h.info();
    assert_eq!(info.state, TcpState::Established);
    assert_eq!(info.congestion, CongestionAlgorithm::NewReno);
    assert_eq!(info.snd_wnd, 256);
    assert_eq!(info.rcv_wnd, 64);
    // The handshake measured 0 ms: the RTO is at its minimum.
    assert_eq!(info.rto, Duration::from_millis(200));
    assert_eq!(info.snd_una, LOCAL_SEQ + 1);
    assert_eq!(info.rcv_nxt, REMOTE_SEQ + 1);
}

#[test]
fn test_stale_handles_are_rejected() {
    let mut h = socket();
    let old = h.handle;
    h.layer.close(old, &h.cx()).unwrap();
    let new = h.layer.socket();
    assert_ne!(old, new);
    assert_eq!(h.layer.send(old, b"x"), Err(SendError::BadHandle));
    assert_eq!(h.layer.state(new), Some(TcpState::Closed));
}

// ------------------------------------------------------------------ loopback

mod loopback {
    //! Two layers joined by an in-memory wire with seeded loss, delay and jitter
    //! (reordering); the clock jumps to the next delivery or deadline.

    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const A_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const SERVER: SocketAddrV4 = SocketAddrV4::new(B_IP, 5001);

    fn cx(now: Instant, ip: Ipv4Addr) -> TcpContext {
        TcpContext {
            now,
            local_addr: ip,
            mtu: 1500,
        }
    }

    struct Sim {
        a: TcpLayer,
        b: TcpLayer,
        now: Instant,
        rng: ChaCha8Rng,
        drop_rate: f64,
        delay: Duration,
        jitter_ms: u64,
        /// (deliver at, to B?, ip, segment with owned payload)
        wire: Vec<(Instant, bool, SegmentAddrs, TcpRepr<'static>)>,
        steps: u32,
        seed: u64,
    }

    impl Sim {
        fn new(seed: u64, config: TcpConfig, drop_rate: f64, jitter_ms: u64) -> Sim {
            Sim {
                a: TcpLayer::new(config.clone(), seed),
                b: TcpLayer::new(config, seed ^ 0xabcdef),
                now: Instant::ZERO,
                rng: ChaCha8Rng::seed_from_u64(seed),
                drop_rate,
                delay: Duration::from_millis(5),
                jitter_ms,
                wire: Vec::new(),
                steps: 0,
                seed,
            }
        }

        fn put(&mut self, to_b: bool, ip: SegmentAddrs, seg: TcpRepr<'static>) {
            if self.rng.gen_bool(self.drop_rate) {
                return;
            }
            let jitter = if self.jitter_ms > 0 {
                Duration::from_micros(self.rng.gen_range(0..self.jitter_ms * 1000))
            } else {
                Duration::ZERO
            };
            self.wire
                .push((self.now + self.delay + jitter, to_b, ip, seg));
        }

        /// Drains output, advances the clock, delivers and runs timers. Returns false
        /// when nothing at all is left to happen.
        fn step(&mut self) -> bool {
            self.steps += 1;
            assert!(self.steps < 2_000_000, "livelock (seed {})", self.seed);
            for to_b in [true, false] {
                let (layer, ip) = if to_b {
                    (&mut self.a, A_IP)
                } else {
                    (&mut self.b, B_IP)
                };
                let c = cx(self.now, ip);
                let mut out = Vec::new();
                while layer.dispatch(&c, &mut |ip, r| out.push((ip, leak(r)))) {}
                for (ip, r) in out {
                    self.put(to_b, ip, r);
                }
            }
            let next_delivery = self.wire.iter().map(|e| e.0).min();
            let Some(next) = [next_delivery, self.a.poll_at(), self.b.poll_at()]
                .into_iter()
                .flatten()
                .min()
            else {
                return false;
            };
            self.now = self.now.max(next);
            let now = self.now;
            let (due, rest): (Vec<_>, Vec<_>) = self.wire.drain(..).partition(|e| e.0 <= now);
            self.wire = rest;
            for (_, to_b, ip, seg) in due {
                let (layer, local) = if to_b {
                    (&mut self.b, B_IP)
                } else {
                    (&mut self.a, A_IP)
                };
                if let Some((rip, reply)) = layer.process(&cx(now, local), ip, &seg) {
                    self.put(!to_b, rip, reply);
                }
            }
            self.a.handle_timeout(&cx(now, A_IP));
            self.b.handle_timeout(&cx(now, B_IP));
            true
        }
    }

    /// Sends `len` bytes from A to B, checks them byte-exact and returns the sender's
    /// TCP_INFO at the receiver's EOF.
    fn transfer(seed: u64, drop_rate: f64, alg: CongestionAlgorithm, len: usize) -> TcpInfo {
        transfer_with(seed, drop_rate, 0, alg, len)
    }

    fn transfer_with(
        seed: u64,
        drop_rate: f64,
        jitter_ms: u64,
        alg: CongestionAlgorithm,
        len: usize,
    ) -> TcpInfo {
        let config = TcpConfig {
            congestion: alg,
            ..TcpConfig::default()
        };
        let mut sim = Sim::new(seed, config, drop_rate, jitter_ms);
        let server = sim.b.socket();
        sim.b.listen(server, SERVER, 4).unwrap();
        let client = sim.a.socket();
        sim.a.connect(client, &cx(sim.now, A_IP), SERVER).unwrap();

        let data: Vec<u8> = (0..len).map(|_| sim.rng.gen()).collect();
        let mut sent = 0;
        let mut received = Vec::with_capacity(len);
        let mut accepted = None;
        let mut buf = vec![0u8; 65536];
        let mut closed = false;
        'run: loop {
            if sent < len {
                if let Ok(n) = sim.a.send(client, &data[sent..]) {
                    sent += n;
                }
            } else if !closed {
                sim.a.shutdown(client, Shutdown::Write).unwrap();
                closed = true;
            }
            if accepted.is_none() {
                if let Ok((h, _)) = sim.b.accept(server) {
                    accepted = Some(h);
                }
            }
            if let Some(h) = accepted {
                loop {
                    match sim.b.recv(h, &mut buf) {
                        Ok(0) => break 'run,
                        Ok(n) => received.extend_from_slice(&buf[..n]),
                        Err(RecvError::WouldBlock) => break,
                        Err(e) => panic!("recv: {e} (seed {seed})"),
                    }
                }
            }
            assert!(sim.step(), "stuck (seed {seed})");
        }
        assert_eq!(received.len(), data.len(), "seed {seed}");
        assert!(received == data, "corrupted stream (seed {seed})");
        sim.a.info(client).expect("client")
    }

    #[test]
    fn test_loopback_1mb_lossless_cubic() {
        let info = transfer(1, 0.0, CongestionAlgorithm::Cubic, 1 << 20);
        assert_eq!(info.total_retrans, 0);
        assert_eq!(info.bytes_sent, 1 << 20);
    }

    #[test]
    fn test_loopback_1mb_with_drops_cubic() {
        let info = transfer(7, 0.02, CongestionAlgorithm::Cubic, 1 << 20);
        assert!(info.total_retrans > 0, "no loss recovery exercised");
    }

    #[test]
    fn test_loopback_1mb_with_drops_newreno() {
        let info = transfer(11, 0.03, CongestionAlgorithm::NewReno, 1 << 20);
        assert!(info.total_retrans > 0, "no loss recovery exercised");
    }

    #[test]
    fn test_loopback_1mb_with_drops_and_reordering() {
        let info = transfer_with(13, 0.02, 20, CongestionAlgorithm::Cubic, 1 << 20);
        assert!(info.total_retrans > 0, "no loss recovery exercised");
    }

    #[test]
    fn test_loopback_small_transfers_many_seeds() {
        let mut retrans = 0;
        for seed in 100..120 {
            let alg = if seed % 2 == 0 {
                CongestionAlgorithm::Cubic
            } else {
                CongestionAlgorithm::NewReno
            };
            retrans += transfer_with(seed, 0.1, seed % 7, alg, 20_000).total_retrans;
        }
        assert!(retrans > 0);
    }

    /// Both sides close; every socket but the listener is freed, the active closer
    /// after TIME-WAIT.
    #[test]
    fn test_loopback_full_lifecycle_frees_everything() {
        for seed in 200..210 {
            let mut sim = Sim::new(seed, TcpConfig::default(), 0.1, 3);
            let server = sim.b.socket();
            sim.b.listen(server, SERVER, 4).unwrap();
            let client = sim.a.socket();
            sim.a.connect(client, &cx(sim.now, A_IP), SERVER).unwrap();
            while sim.a.state(client) != Some(TcpState::Established) {
                assert!(sim.step(), "seed {seed}");
            }
            sim.a.send(client, b"request").unwrap();
            sim.a.close(client, &cx(sim.now, A_IP)).unwrap();
            let mut conn = None;
            let mut buf = [0u8; 64];
            let mut got = Vec::new();
            while sim.step() {
                if conn.is_none() {
                    conn = sim.b.accept(server).ok().map(|c| c.0);
                }
                if let Some(c) = conn {
                    match sim.b.recv(c, &mut buf) {
                        Ok(0) => {
                            // `c` goes stale: later calls fail with BadHandle.
                            sim.b.close(c, &cx(sim.now, B_IP)).unwrap();
                        }
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                        Err(_) => {}
                    }
                }
            }
            assert_eq!(got, b"request", "seed {seed}");
            assert_eq!(sim.a.socket_count(), 0, "seed {seed}");
            assert_eq!(sim.b.socket_count(), 1, "seed {seed}");
            let mut saw_time_wait = false;
            while let Some(e) = sim.a.poll_event() {
                if let TcpEvent::StateChanged {
                    to: TcpState::TimeWait,
                    ..
                } = e
                {
                    saw_time_wait = true;
                }
            }
            assert!(saw_time_wait, "seed {seed}");
            assert!(sim.now >= Instant::from_secs(60), "seed {seed}");
        }
    }

    /// Both sides connect to each other at once (RFC 9293 §3.5 figure 7).
    #[test]
    fn test_loopback_simultaneous_open() {
        let mut sim = Sim::new(300, TcpConfig::default(), 0.0, 0);
        let a = sim.a.socket();
        let b = sim.b.socket();
        sim.a.bind(a, SocketAddrV4::new(A_IP, 7000)).unwrap();
        sim.b.bind(b, SocketAddrV4::new(B_IP, 7001)).unwrap();
        sim.a
            .connect(a, &cx(sim.now, A_IP), SocketAddrV4::new(B_IP, 7001))
            .unwrap();
        sim.b
            .connect(b, &cx(sim.now, B_IP), SocketAddrV4::new(A_IP, 7000))
            .unwrap();
        for _ in 0..10 {
            sim.step();
        }
        assert_eq!(sim.a.state(a), Some(TcpState::Established));
        assert_eq!(sim.b.state(b), Some(TcpState::Established));
        sim.a.send(a, b"ping").unwrap();
        for _ in 0..10 {
            sim.step();
        }
        let mut buf = [0u8; 8];
        assert_eq!(sim.b.recv(b, &mut buf), Ok(4));
        assert_eq!(&buf[..4], b"ping");
    }
}

// ------------------------------------------------------------------ robustness

mod robustness {
    use super::*;
    use proptest::prelude::*;

    /// (flags, seq offset, ack offset, window, payload length, timestamp, SACK edges, ms)
    type Raw = (
        u16,
        i32,
        i32,
        u16,
        usize,
        Option<(u32, u32)>,
        Vec<(i32, i32)>,
        u16,
    );

    fn arb_raw() -> impl Strategy<Value = Raw> {
        (
            0u16..64,
            -2000i32..2000,
            -2000i32..2000,
            any::<u16>(),
            0usize..200,
            proptest::option::of(any::<(u32, u32)>()),
            proptest::collection::vec((-2000i32..2000, -2000i32..2000), 0..4),
            0u16..3000,
        )
    }

    fn fixture(which: u8) -> Harness {
        let mut config = base_config();
        config.sack = true;
        config.timestamps = true;
        config.window_scaling = true;
        config.delayed_ack = Duration::from_millis(40);
        config.tx_buffer_len = 1024;
        let opts = TcpOptions {
            mss: Some(100),
            window_scale: Some(3),
            sack_permitted: true,
            timestamp: Some((7, 0)),
            ..NO_OPTIONS
        };
        match which % 6 {
            0 => socket_listen_with(config),
            1 => socket_syn_sent_with(config),
            2 => socket_syn_received_with(config, opts),
            3 => socket_established_with(config, opts),
            4 => {
                let mut h = socket_established_with(config, opts);
                h.layer.send(h.handle, &[3; 700]).unwrap();
                h.layer.shutdown(h.handle, Shutdown::Write).unwrap();
                h
            }
            _ => {
                let mut h = socket_established_with(config, opts);
                h.layer.close(h.handle, &h.cx()).unwrap();
                h
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// No sequence of segments, timers and reads panics, and the send sequence
        /// space stays ordered.
        #[test]
        fn test_any_state_any_segments_never_panic(
            which in 0u8..6,
            segs in proptest::collection::vec(arb_raw(), 1..40),
        ) {
            let mut h = fixture(which);
            let payload = [0x5au8; 200];
            let mut t = 0i64;
            for (fl, dseq, dack, wnd, len, ts, sacks, dt) in segs {
                t += i64::from(dt);
                h.at(t);
                let mut options = NO_OPTIONS;
                options.timestamp = ts;
                for (slot, (l, r)) in options.sack_ranges.iter_mut().zip(sacks) {
                    *slot = Some((LOCAL_SEQ + 1 + l as usize, LOCAL_SEQ + 1 + r as usize));
                }
                let seg = TcpRepr {
                    flags: TcpFlags(fl),
                    seq_number: REMOTE_SEQ + 1 + dseq as usize,
                    ack_number: LOCAL_SEQ + 1 + dack as usize,
                    window_len: wnd,
                    options,
                    payload: &payload[..len],
                    ..SEND_TEMPL
                };
                let _ = h.send(&seg);
                let mut n = 0;
                while h.recv().is_some() {
                    n += 1;
                    prop_assert!(n < 1000, "dispatch never ends");
                }
                let mut buf = [0u8; 64];
                let _ = h.layer.recv(h.handle, &mut buf);
                if let Some(s) = h.layer.socket_ref(h.handle) {
                    prop_assert!(s.snd_una <= s.snd_nxt && s.snd_nxt <= s.snd_max);
                    prop_assert!(s.tx.len() <= s.tx.capacity());
                }
                if let Some(at) = h.layer.poll_at() {
                    prop_assert!(at >= Instant::ZERO);
                }
            }
            prop_assert!(h.layer.socket_count() <= 3);
        }
    }
}

// ------------------------------------------------------------------ readiness queue

fn ready(h: &mut Harness) -> Vec<TcpHandle> {
    core::iter::from_fn(|| h.layer.poll_ready()).collect()
}

#[test]
fn test_ready_listener_queued_when_connection_acceptable() {
    let mut h = socket_syn_received();
    // The SYN alone makes nothing acceptable; the child is not the user's yet.
    assert_eq!(ready(&mut h), vec![]);
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 1,
            ..SEND_TEMPL
        }
    );
    let listener = h.listener.unwrap();
    assert_eq!(ready(&mut h), vec![listener]);
    assert_eq!(ready(&mut h), vec![], "each socket is returned once");
}

#[test]
fn test_ready_established_data_ack_and_fin_queue_once() {
    let mut h = socket_established();
    assert_eq!(
        ready(&mut h),
        vec![h.listener.unwrap()],
        "from the handshake"
    );
    assert_eq!(h.layer.send_space(h.handle), 64);
    assert_eq!(h.layer.send(h.handle, b"hello"), Ok(5));
    assert_eq!(h.layer.send_space(h.handle), 59);
    h.recv().expect("data");
    // Data and the ACK of "hello" in two segments: queued once until polled.
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 1,
            ack_number: LOCAL_SEQ + 6,
            payload: b"abc",
            ..SEND_TEMPL
        }
    );
    send!(
        h,
        TcpRepr {
            flags: flags(ACK, FIN),
            seq_number: REMOTE_SEQ + 4,
            ack_number: LOCAL_SEQ + 6,
            ..SEND_TEMPL
        }
    );
    assert_eq!(ready(&mut h), vec![h.handle]);
    assert_eq!(h.layer.send_space(h.handle), 64, "ACK freed the buffer");
    let mut buf = [0u8; 8];
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(3));
    assert_eq!(h.layer.recv(h.handle, &mut buf), Ok(0));
    // A closed handle is never returned, even if queued before close.
    send!(
        h,
        TcpRepr {
            flags: ACK,
            seq_number: REMOTE_SEQ + 5,
            ack_number: LOCAL_SEQ + 6,
            ..SEND_TEMPL
        }
    );
    h.layer.close(h.handle, &h.cx()).unwrap();
    assert_eq!(ready(&mut h), vec![]);
}

#[test]
fn test_ready_send_space_zero_when_not_sendable() {
    let h = socket_syn_sent();
    assert_eq!(h.layer.send_space(h.handle), 0, "handshake in progress");
    let mut h = socket_established();
    h.layer.shutdown(h.handle, Shutdown::Write).unwrap();
    assert_eq!(h.layer.send_space(h.handle), 0, "after shutdown(write)");
}

// ------------------------------------------------------------------ loss detection on busy connections

/// Everything dispatched now.
fn drain(h: &mut Harness) -> Vec<TcpRepr<'static>> {
    core::iter::from_fn(|| h.recv()).collect()
}

/// Found against the kernel (echo with 5% loss): the peer's ACKs rode on its own data,
/// so the RFC 5681 "no payload" rule never counted a duplicate ACK and every loss
/// waited for the RTO. Per RFC 6675 §2, with SACK an ACK that SACKs new data is a
/// duplicate ACK whatever it carries.
#[test]
fn test_established_sack_on_data_segments_triggers_fast_retransmit() {
    let (mut h, data) = socket_bulk(sack_config(), sack_syn());
    for _ in 0..10 {
        h.recv().unwrap();
    }
    h.events();
    let base = LOCAL_SEQ + 1;
    // Segment 0 lost; the peer keeps sending data of its own, SACKing 1, 1-2, 1-3.
    for k in 0..3usize {
        let seg = TcpRepr {
            seq_number: REMOTE_SEQ + 1 + k,
            payload: b"x",
            options: TcpOptions {
                sack_ranges: [Some((base + 64, base + 128 + 64 * k)), None, None, None],
                ..NO_OPTIONS
            },
            ..bulk_ack(0)
        };
        send!(h, seg);
        let out = drain(&mut h);
        let rtx = out
            .iter()
            .any(|s| s.seq_number == base && s.payload == &data[..64]);
        assert_eq!(rtx, k == 2, "segment {k}: dispatched {out:?}");
    }
    assert!(h.info().in_recovery);
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, TcpEvent::FastRetransmit { seq, .. } if *seq == base)));
}

/// RFC 3042: with more data queued than cwnd allows, each of the first two duplicate
/// ACKs releases one new segment.
#[test]
fn test_established_limited_transmit_on_first_two_dupacks() {
    let (mut h, data) = socket_bulk(base_config(), NO_OPTIONS);
    let more: Vec<u8> = (0..640).map(|i| (i % 13) as u8).collect();
    assert_eq!(h.layer.send(h.handle, &more), Ok(640));
    // IW = 640 bytes: ten segments, then cwnd-limited.
    for _ in 0..10 {
        h.recv().unwrap();
    }
    recv_nothing!(h);
    send!(h, bulk_ack(0));
    recv!(h, data_seg(640, leak_slice(&more[..64])));
    recv_nothing!(h);
    send!(h, bulk_ack(0));
    recv!(h, data_seg(704, leak_slice(&more[64..128])));
    recv_nothing!(h);
    send!(h, bulk_ack(0));
    recv!(h, data_seg(0, leak_slice(&data[..64])));
    assert!(h.info().in_recovery);
}

/// Found against the kernel (bulk send with 5% loss): in SACK recovery new data was
/// still bounded by SND.UNA + cwnd, so with cwnd halved under a full flight nothing new
/// went out, no more SACKs arrived, and recovery stalled until the RTO. RFC 6675 §5 (C)
/// bounds pipe by cwnd instead.
#[test]
fn test_established_sack_recovery_sends_new_data_while_pipe_below_cwnd() {
    let (mut h, _data) = socket_bulk(sack_config(), sack_syn());
    let more: Vec<u8> = (0..640).map(|i| (i % 7) as u8).collect();
    assert_eq!(h.layer.send(h.handle, &more), Ok(640));
    for _ in 0..10 {
        h.recv().unwrap();
    }
    recv_nothing!(h);
    let base = LOCAL_SEQ + 1;
    let sack = |end: usize| TcpRepr {
        options: TcpOptions {
            sack_ranges: [Some((base + 64, base + end)), None, None, None],
            ..NO_OPTIONS
        },
        ..bulk_ack(0)
    };
    // Segment 0 lost; 1-3 SACKed: fast retransmit, cwnd = ssthresh = 320.
    send!(h, sack(256));
    let out = drain(&mut h);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].seq_number, base);
    assert_eq!(h.info().cwnd, 320);
    // 1-7 SACKed: pipe = 128 (segments 8, 9) + 64 (the retransmission) = 192 < 320,
    // although SND.NXT - SND.UNA = 640: two new segments go out.
    send!(h, sack(512));
    recv!(h, data_seg(640, leak_slice(&more[..64])));
    recv!(h, data_seg(704, leak_slice(&more[64..128])));
    recv_nothing!(h);
    assert!(h.info().in_recovery);
}

/// Found against the kernel (5% loss): a lost fast retransmission of SND.UNA always
/// waited for the RTO. Once more than DupThresh - 1 segments sent after it are SACKed
/// while it is still missing, it is sent again.
#[test]
fn test_established_sack_recovery_resends_lost_retransmission() {
    let (mut h, data) = socket_bulk(sack_config(), sack_syn());
    let more: Vec<u8> = (0..640).map(|i| (i % 7) as u8).collect();
    assert_eq!(h.layer.send(h.handle, &more), Ok(640));
    for _ in 0..10 {
        h.recv().unwrap();
    }
    let base = LOCAL_SEQ + 1;
    let sack = |end: usize| TcpRepr {
        options: TcpOptions {
            sack_ranges: [Some((base + 64, base + end)), None, None, None],
            ..NO_OPTIONS
        },
        ..bulk_ack(0)
    };
    let is_rtx_0 = |s: &TcpRepr<'_>| s.seq_number == base && s.payload == &data[..64];
    send!(h, sack(256));
    assert!(drain(&mut h).iter().any(is_rtx_0), "fast retransmit");
    // Everything up to SND.MAX at the retransmission SACKed: new data goes out, but
    // nothing says the retransmission is lost yet.
    send!(h, sack(640));
    let out = drain(&mut h);
    assert!(!out.is_empty() && !out.iter().any(is_rtx_0), "{out:?}");
    // Two segments sent after the retransmission SACKed: not yet (DupThresh - 1).
    send!(h, sack(768));
    assert!(!drain(&mut h).iter().any(is_rtx_0));
    // A third: the retransmission was lost; resend it without waiting for the RTO.
    send!(h, sack(832));
    assert!(
        drain(&mut h).iter().any(is_rtx_0),
        "lost retransmission resent"
    );
    assert!(h.info().in_recovery);
    // A cumulative ACK past the recovery point ends recovery.
    send!(h, bulk_ack(832));
    assert!(!h.info().in_recovery);
}

/// Found against the kernel (5% loss on its pure ACKs): when the ACKs for the tail of a
/// flight were lost and the peer had nothing else to send, only the RTO (200 ms or
/// more) got things going again. RFC 8985 §7 tail loss probe: after 2 * SRTT (at least
/// 10 ms) without an ACK, the last segment is resent.
#[test]
fn test_established_tail_loss_probe_resends_last_segment() {
    let (mut h, _data) = socket_bulk(sack_config(), sack_syn());
    assert_eq!(drain(&mut h).len(), 10);
    send!(h, time 20, bulk_ack(640));
    let srtt = h.info().srtt.expect("RTT measured");
    assert!(srtt < Duration::from_millis(5), "{srtt:?}");
    let more: Vec<u8> = (0..640).map(|i| (i % 11) as u8).collect();
    assert_eq!(h.layer.send(h.handle, &more), Ok(640));
    assert_eq!(drain(&mut h).len(), 10);
    h.events();
    // PTO = max(2 * SRTT, 10 ms) after the last transmission at 20 ms.
    recv_nothing!(h, time 29);
    let mut probe = data_seg(1216, leak_slice(&more[576..]));
    probe.flags |= PSH;
    recv!(h, time 30, probe);
    recv_nothing!(h);
    assert_eq!(
        h.events(),
        vec![TcpEvent::Retransmit {
            handle: h.handle,
            seq: LOCAL_SEQ + 1 + 1216usize,
            len: 64
        }]
    );
    // One probe per episode: no second probe before the RTO.
    recv_nothing!(h, time 200);
    // The probe's ACK covers everything: no RTO, no recovery.
    send!(h, time 31 + 170, bulk_ack(1280));
    assert_eq!(h.info().unacked, 0);
    assert!(!h.info().in_recovery);
    recv_nothing!(h, time 1000);
}
