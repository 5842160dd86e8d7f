//! The AF_PACKET link's mmap'd receive ring (TPACKET_V2) against the kernel, over a veth
//! pair in a private namespace: frames arrive byte-exact and in order, a burst larger
//! than the ring loses frames without harm (counted, and later frames still arrive),
//! frames sent on our interface are not handed back, the interface going down is
//! reported once (no busy loop) and frames flow again after, and TCP through a
//! `NetStack` on the ring is byte-exact (and on the plain path, each printing its time),
//! with the ring's counters readable through the `NetStack`.
//!
//! The kernel's side sends with a plain (ring-less) AF_PACKET socket on `veth0`, so
//! what is under test is only the receiving end on `veth1`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream as KernelStream};
use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant as StdInstant};
use ustack::link::sys::{wait_readable, AfPacketLink};
use ustack::link::Link;
use ustack::time::Instant;
use ustack::wire::{EtherType, EthernetAddress, EthernetRepr};
use ustack_socket::link::OsLink;
use ustack_socket::{NetStack, TcpListener};
use ustack_tests::tcp::Pattern;
use ustack_tests::{require_netns, spawn_peer, Netns};

/// A private EtherType (IEEE local experimental), so nothing else in the namespace
/// produces frames the test counts.
const TEST_ETHERTYPE: EtherType = EtherType(0x88b5);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0x75, 0, 0, 0, 0x01]);
const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0x75, 0, 0, 0, 0x42]);

/// Test frame number `seq`: 60 to 1514 bytes, the number in its first payload bytes,
/// the rest a pattern of the number, so a frame from the wrong place or with a wrong
/// byte anywhere fails the comparison.
fn test_frame(seq: u32) -> Vec<u8> {
    let len = 60 + (seq as usize * 97) % (1514 - 60 + 1);
    let mut f = vec![0u8; len];
    EthernetRepr {
        src_addr: PEER_MAC,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: TEST_ETHERTYPE,
    }
    .emit(&mut f);
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    Pattern::new(u64::from(seq) + 1).fill(&mut f[18..]);
    f
}

/// The test number of a frame, if it is one of ours.
fn seq_of(frame: &[u8]) -> Option<u32> {
    (frame.len() >= 18 && frame[12..14] == [0x88, 0xb5] && frame[6..12] == PEER_MAC.0)
        .then(|| u32::from_be_bytes(frame[14..18].try_into().expect("4 bytes")))
}

/// Sends test frames `range` from the peer, pausing briefly every 100 frames so the
/// veth's backlog (1000 frames) never overflows: every loss is the ring's.
fn send_frames(peer: &mut AfPacketLink, range: std::ops::Range<u32>) {
    for seq in range {
        peer.send(Instant::ZERO, &test_frame(seq))
            .expect("peer send");
        if seq % 100 == 99 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Reads test frames until `want` arrived or `limit` passed with nothing new; returns
/// their numbers after checking each byte-exact.
fn recv_frames(link: &mut AfPacketLink, want: usize, limit: Duration) -> Vec<u32> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let mut deadline = StdInstant::now() + limit;
    while got.len() < want && StdInstant::now() < deadline {
        wait_readable(&[link.as_raw_fd()], Some(Duration::from_millis(20))).expect("ppoll");
        while let Some(n) = link.recv(Instant::ZERO, &mut buf).expect("recv") {
            let frame = &buf[..n];
            if let Some(seq) = seq_of(frame) {
                assert_eq!(frame, test_frame(seq).as_slice(), "frame {seq} byte-exact");
                got.push(seq);
                deadline = StdInstant::now() + limit;
            }
        }
    }
    got
}

/// A namespace with a veth pair (no addresses needed beyond the harness's), our ring
/// link on `veth1` made by `open`, and the peer's plain link on `veth0`.
fn veth_pair(
    open: impl FnOnce() -> io::Result<AfPacketLink> + Send + 'static,
) -> (Netns, AfPacketLink, AfPacketLink) {
    let ns = Netns::new("ustack-test").expect("create namespace");
    ns.add_veth("veth0", "10.77.1.1/24", "veth1")
        .expect("create veth");
    let (ours, peer) = ns
        .run_in(move || {
            (
                open().expect("open the ring link"),
                AfPacketLink::open_plain("veth0").expect("open the peer link"),
            )
        })
        .expect("enter namespace");
    ns.wait_running("veth0", Duration::from_secs(5))
        .expect("veth0 comes up");
    (ns, ours, peer)
}

#[test]
fn kernel_packet_ring_delivers_frames_byte_exact_in_order_and_skips_its_own() {
    require_netns!();
    let (ns, mut ours, mut peer) = veth_pair(|| AfPacketLink::open("veth1"));
    assert!(ours.ring(), "the ring sets up on a veth");
    assert!(!peer.ring());

    // More frames than fit at once in a default socket buffer, fewer than the ring.
    const N: u32 = 3000;
    send_frames(&mut peer, 0..N);
    let got = recv_frames(&mut ours, N as usize, Duration::from_secs(2));
    assert_eq!(got, (0..N).collect::<Vec<_>>(), "all frames, in order");

    // Frames sent on our interface come back to a packet socket as PACKET_OUTGOING
    // copies, except to the socket that sent them: ours from another socket on veth1
    // (as the kernel's own transmissions would) and from the ring link itself. Both
    // reach the peer; neither is handed to our reader.
    let mut neighbour = ns
        .run_in(|| AfPacketLink::open_plain("veth1"))
        .expect("enter namespace")
        .expect("a second socket on veth1");
    let before = ours.ring_stats().expect("a ring");
    let mut buf = [0u8; 2048];
    for (i, sender) in [&mut neighbour, &mut ours].into_iter().enumerate() {
        let mut frame = test_frame(7 + i as u32);
        frame[6..12].copy_from_slice(&OUR_MAC.0);
        sender.send(Instant::ZERO, &frame).expect("send");
        let deadline = StdInstant::now() + Duration::from_secs(2);
        let mut peer_saw = false;
        while !peer_saw && StdInstant::now() < deadline {
            wait_readable(&[peer.as_raw_fd()], Some(Duration::from_millis(20))).expect("ppoll");
            while let Some(n) = peer.recv(Instant::ZERO, &mut buf).expect("recv") {
                peer_saw |= buf[..n] == frame[..];
            }
        }
        assert!(peer_saw, "the peer receives what sender {i} sent");
    }
    let deadline = StdInstant::now() + Duration::from_millis(300);
    while StdInstant::now() < deadline {
        wait_readable(&[ours.as_raw_fd()], Some(Duration::from_millis(20))).expect("ppoll");
        while let Some(n) = ours.recv(Instant::ZERO, &mut buf).expect("recv") {
            assert!(
                buf[6..12] != OUR_MAC.0,
                "a frame sent on our interface was handed back: {:02x?}",
                &buf[..n.min(18)]
            );
        }
    }
    let after = ours.ring_stats().expect("a ring");
    assert_eq!(
        after.outgoing,
        before.outgoing + 1,
        "the neighbour's PACKET_OUTGOING copy was seen and skipped: {after:?}"
    );
    assert_eq!(after.frames, u64::from(N), "{after:?}");
    assert_eq!(
        (
            after.truncated,
            after.too_long,
            after.malformed,
            after.kernel_drops
        ),
        (0, 0, 0, 0),
        "{after:?}"
    );
}

#[test]
fn kernel_packet_ring_overflow_is_counted_and_later_frames_arrive() {
    require_netns!();
    // 64 KiB: one block of 32 slots of 2048 bytes.
    let (_ns, mut ours, mut peer) = veth_pair(|| AfPacketLink::open_with_ring("veth1", 64 << 10));
    assert!(ours.ring());

    // A burst of 500 frames while nobody reads: the first ones fill the ring, the rest
    // are dropped by the kernel.
    const BURST: u32 = 500;
    send_frames(&mut peer, 0..BURST);
    let first = recv_frames(&mut ours, BURST as usize, Duration::from_millis(300));
    assert!(
        !first.is_empty() && first.len() <= 32,
        "the ring held {} frames",
        first.len()
    );
    assert_eq!(
        first,
        (0..first.len() as u32).collect::<Vec<_>>(),
        "the frames that fitted, in order"
    );

    // Later frames arrive, the first of them marked as following losses.
    send_frames(&mut peer, BURST..BURST + 10);
    let later = recv_frames(&mut ours, 10, Duration::from_secs(2));
    assert_eq!(later, (BURST..BURST + 10).collect::<Vec<_>>());
    let st = ours.ring_stats().expect("a ring");
    assert!(st.losing >= 1, "TP_STATUS_LOSING seen: {st:?}");
    assert_eq!(
        st.kernel_drops + first.len() as u64,
        u64::from(BURST),
        "every frame of the burst either arrived or was counted as dropped: {st:?}"
    );
    assert_eq!(st.frames, first.len() as u64 + 10, "{st:?}");

    // A second burst: receiving leaves the kernel's count alone, for whoever reads it
    // from the descriptor (`ustack wire`, `ustack bench loss`).
    send_frames(&mut peer, 1000..1000 + BURST);
    let second = recv_frames(&mut ours, BURST as usize, Duration::from_millis(300));
    assert!(!second.is_empty() && second.len() <= 32, "{}", second.len());
    assert_eq!(
        u64::from(ustack::link::sys::packet_drops(ours.as_raw_fd()).expect("PACKET_STATISTICS")),
        u64::from(BURST) - second.len() as u64,
        "PACKET_STATISTICS read from the descriptor"
    );
    assert_eq!(
        ours.ring_stats().expect("a ring").kernel_drops,
        st.kernel_drops
    );
}

/// Checks a byte stream against [`Pattern`] as it is written.
struct PatternCheck {
    pattern: Pattern,
    len: u64,
    first_bad: Option<u64>,
    scratch: Vec<u8>,
}

impl Write for PatternCheck {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.scratch.resize(buf.len(), 0);
        self.pattern.fill(&mut self.scratch);
        if self.first_bad.is_none() {
            if let Some(i) = buf.iter().zip(&self.scratch).position(|(a, b)| a != b) {
                self.first_bad = Some(self.len + i as u64);
            }
        }
        self.len += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn kernel_packet_ring_carries_tcp_byte_exact() {
    require_netns!();
    tcp_kernel_to_stack(true);
}

/// The same transfer on the plain recvfrom(2) path: the baseline of the printed time.
#[test]
fn kernel_packet_plain_carries_tcp_byte_exact() {
    require_netns!();
    tcp_kernel_to_stack(false);
}

/// 20 MB from a kernel TCP sender on veth0 to a `NetStack` on veth1, through the ring
/// (`ring`) or recvfrom(2), checked byte-exact; prints the time.
fn tcp_kernel_to_stack(ring: bool) {
    let ns = Netns::new("ustack-test").expect("create namespace");
    ns.add_veth("veth0", "10.77.1.1/24", "veth1")
        .expect("create veth");
    let link = ns
        .run_in(move || {
            if ring {
                AfPacketLink::open("veth1")
            } else {
                AfPacketLink::open_plain("veth1")
            }
        })
        .expect("enter namespace")
        .expect("open veth1");
    assert_eq!(
        link.ring(),
        ring,
        "the stack's link receives through the ring"
    );
    ns.wait_running("veth0", Duration::from_secs(5))
        .expect("veth0 comes up");
    let stack = NetStack::builder()
        .os_link(OsLink::Raw(link))
        .ip("10.77.1.2/24".parse().expect("cidr"))
        .build()
        .expect("build the stack");
    let listener = TcpListener::bind(&stack, "0.0.0.0:5003").expect("bind");

    const LEN: u64 = 20_000_000;
    const SEED: u64 = 0x5e9;
    let sender = spawn_peer(&ns, "sender", move || -> io::Result<()> {
        let mut s = KernelStream::connect_timeout(
            &"10.77.1.2:5003".parse().expect("addr"),
            Duration::from_secs(10),
        )?;
        let mut pattern = Pattern::new(SEED);
        let mut chunk = vec![0u8; 64 << 10];
        let mut left = LEN;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            pattern.fill(&mut chunk[..n]);
            s.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        s.shutdown(Shutdown::Write)?;
        // Wait for the stack's close.
        let mut one = [0u8; 1];
        let _ = s.read(&mut one)?;
        Ok(())
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let start = StdInstant::now();
        let mut check = PatternCheck {
            pattern: Pattern::new(SEED),
            len: 0,
            first_bad: None,
            scratch: Vec::new(),
        };
        let res = io::copy(&mut stream, &mut check)
            .map(|_| (check.len, check.first_bad, start.elapsed()));
        let _ = tx.send(res);
    });
    let (len, first_bad, took) = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the transfer finishes")
        .expect("io::copy");
    assert_eq!(first_bad, None, "first wrong byte");
    assert_eq!(len, LEN, "bytes the stack received");
    sender
        .join(Duration::from_secs(30))
        .expect("the kernel sender");
    // The ring's counters reach the host loop through its wrappers (`--stats`).
    let st = stack.ring_stats();
    if ring {
        let st = st.expect("ring stats through the NetStack");
        // 20 MB in frames of at most 1514 bytes: more frames than that quotient.
        assert!(
            st.frames > LEN / 1514,
            "the segments came through the ring: {st:?}"
        );
        assert_eq!(
            (st.truncated, st.too_long, st.malformed),
            (0, 0, 0),
            "{st:?}"
        );
    } else {
        assert_eq!(st, None, "no ring, no ring stats");
    }
    drop(stack);
    // Written to the stderr handle: the test runner captures `eprintln!`.
    let _ = writeln!(
        io::stderr(),
        "packet ring {}: 20 MB kernel -> NetStack over veth in {:.3} s ({:.0} Mbit/s)",
        if ring { "on" } else { "off" },
        took.as_secs_f64(),
        LEN as f64 * 8.0 / took.as_secs_f64().max(1e-9) / 1e6
    );
}

#[test]
fn kernel_packet_ring_reports_interface_down_and_then_stops_waking() {
    require_netns!();
    let (ns, mut ours, mut peer) = veth_pair(|| AfPacketLink::open("veth1"));
    assert!(ours.ring());
    let fd = ours.as_raw_fd();
    assert!(
        !wait_readable(&[fd], Some(Duration::from_millis(50))).expect("ppoll"),
        "nothing to read yet"
    );
    // Down: the kernel sets ENETDOWN on the socket, and poll(2) reports it ready until
    // the error is read. The ring never calls recvfrom(2), so `recv` must read it.
    ns.ip(&["link", "set", "veth1", "down"])
        .expect("veth1 down");
    assert!(
        wait_readable(&[fd], Some(Duration::from_secs(1))).expect("ppoll"),
        "the error wakes the reader"
    );
    let mut buf = [0u8; 2048];
    let err = (0..1000)
        .find_map(|_| ours.recv(Instant::ZERO, &mut buf).err())
        .expect("recv reports the error");
    assert_eq!(err.raw_os_error(), Some(libc::ENETDOWN), "{err}");
    assert!(
        !wait_readable(&[fd], Some(Duration::from_millis(100))).expect("ppoll"),
        "once read, the error no longer wakes the reader (no busy loop)"
    );
    // Up again: frames flow through the same ring.
    ns.ip(&["link", "set", "veth1", "up"]).expect("veth1 up");
    ns.wait_running("veth0", Duration::from_secs(5))
        .expect("veth0 comes back");
    send_frames(&mut peer, 0..50);
    let got = recv_frames(&mut ours, 50, Duration::from_secs(2));
    assert_eq!(got, (0..50).collect::<Vec<_>>());
}
