//! `ustack wire`: a seeded lossy wire. Forwards every Ethernet frame between two
//! devices (TAP or AF_PACKET, each optionally in its own namespace) through the
//! project's fault injector, one model per direction, so any two stacks can be compared
//! under the same fault sequence; it is a bridge, so ARP and everything else crosses too.
//!
//! Composition: end A plays the part a stack plays in the other commands. End B's
//! device is wrapped exactly as a stack's device is (`ustack_socket::link::build_link`):
//! frames from A are *sent* into it (the injector's tx model: A→B), frames it
//! *receives* go to A (rx model: B→A). So `--loss a2b:P` is `--loss tx:P`, the seed
//! streams are the stack's, and `--pcap FILE.pcapng` is A's view with the same comments
//! the other commands write (outbound = A→B as A sent it, inbound = B→A as A got it,
//! frames the injector dropped recorded with why).
//!
//! Loop: poll(2) on both devices with the injector's next deadline (delayed, queued,
//! held-back frames) as the timeout, capped so a signal is noticed; each wake drains
//! every ready frame of both ends, alternating batches so neither direction starves.

use super::CmdResult;
use crate::global::GlobalArgs;
use clap::Args;
use core::str::FromStr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use ustack::link::{Direction, Link};
use ustack_socket::link::{build_link, Clock, Device, HostLink, OsLink};
use ustack_tools::faults::CountersLine;
use ustack_tools::wirelab;

/// Frames moved from one end before the other end gets its turn.
const BATCH: usize = 64;
/// Longest wait without looking at the stop flag.
const STOP_TICK: std::time::Duration = std::time::Duration::from_millis(100);
/// Ethernet header plus one VLAN tag: a frame may be this much longer than the MTU.
const FRAME_OVERHEAD: usize = 18;

/// Help text after the options.
pub const AFTER_HELP: &str = "\
Ends are tap:NAME (a TAP device, created if missing; the wire is its user side) or
raw:IFACE (an AF_PACKET socket on an existing interface, e.g. a veth end without an
address), each optionally followed by @NETNS to open it in that namespace. Turn the
offloads off on the devices whose frames cross the wire (ethtool -K DEV tx off tso off
gso off gro off): it forwards frames one by one and cannot split a GSO aggregate or
finish a partial checksum.

Directions: a fault flag applies both ways, or to one with a2b: or b2a: before its
value (--loss a2b:0.05). tx: and rx: are accepted too and mean a2b and b2a.
--seed decides every fault: the same seed and configuration give the same fate to
the Nth frame of each direction, run after run. --pcap FILE.pcapng records A's view,
with a comment on every frame the injector dropped, duplicated, corrupted, delayed or
held back (tx = A->B, rx = B->A). Only --netns, --seed, --mtu, --pcap and the fault
flags apply. Counters are printed at exit (Ctrl-C, SIGTERM).

Examples:
  # two veth ends in namespace W, the endpoints' peers in namespaces A and B:
  sudo ustack --netns W wire raw:wwa raw:wwb --loss 0.05 --seed 3
  # different faults each way, burst loss, 10 ms each way, an annotated capture:
  sudo ustack --netns W wire raw:wwa raw:wwb --loss a2b:0.03 \\
      --loss-model b2a:gilbert:0.01:0.3 --delay 10 --seed 7 --pcap wire.pcapng
  # two TAPs, each in an endpoint's namespace (the kernel addresses them there):
  sudo ustack wire tap:ta@nsA tap:tb@nsB --rate 100M --queue 64
  # what was dropped, frame by frame:
  tshark -r wire.pcapng -Y frame.comment -T fields -e frame.number -e frame.comment";

/// One end of the wire: a device and the namespace it is opened in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct End {
    /// The device.
    pub device: Device,
    /// Namespace to open it in (`None`: the process's).
    pub netns: Option<String>,
}

impl FromStr for End {
    type Err = String;
    fn from_str(s: &str) -> Result<End, String> {
        let (dev, netns) = match s.split_once('@') {
            Some((d, ns)) if !ns.is_empty() => (d, Some(ns.to_owned())),
            Some(_) => return Err(format!("`{s}`: empty namespace after @")),
            None => (s, None),
        };
        let device = match dev.split_once(':') {
            Some(("tap", n)) if !n.is_empty() => Device::Tap(n.to_owned()),
            Some(("raw", n)) if !n.is_empty() => Device::Raw(n.to_owned()),
            _ => return Err(format!("`{s}`: expected tap:NAME or raw:IFACE[@NETNS]")),
        };
        Ok(End { device, netns })
    }
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.device {
            Device::Tap(n) => write!(f, "tap:{n}")?,
            Device::Raw(n) => write!(f, "raw:{n}")?,
        }
        if let Some(ns) = &self.netns {
            write!(f, "@{ns}")?;
        }
        Ok(())
    }
}

impl End {
    /// Opens the device, in its namespace if it has one (on a thread that enters it:
    /// the descriptor stays bound there whoever uses it).
    fn open(&self) -> Result<OsLink, String> {
        let device = self.device.clone();
        let open = move || -> Result<OsLink, String> {
            let link = device
                .open()
                .map_err(|e| format!("cannot open {device}: {e}"))?;
            if let OsLink::Raw(l) = &link {
                // A kernel sender's window arrives in one burst; the default buffer
                // would drop part of it before any seed decided anything.
                wirelab::enlarge_socket_buffers(l.as_raw_fd(), wirelab::PACKET_SOCKET_BUFFER)
                    .map_err(|e| format!("socket buffers of {device}: {e}"))?;
            }
            Ok(link)
        };
        match &self.netns {
            None => open(),
            Some(ns) => {
                let ns = ns.clone();
                std::thread::spawn(move || {
                    ustack_socket::netns::enter(&ns)?;
                    open()
                })
                .join()
                .map_err(|_| "the thread opening the device panicked".to_owned())?
            }
        }
    }
}

/// Options of `ustack wire`.
#[derive(Debug, Args)]
pub struct WireArgs {
    /// End A: tap:NAME or raw:IFACE, optionally @NETNS. Faults a2b: act on what A sends.
    #[arg(value_name = "A")]
    pub a: End,
    /// End B: tap:NAME or raw:IFACE, optionally @NETNS. Faults b2a: act on what B sends.
    #[arg(value_name = "B")]
    pub b: End,
}

/// AF_PACKET drops of an end since the last read (0 for a TAP).
fn socket_drops(link: &OsLink) -> u32 {
    match link {
        OsLink::Raw(l) => ustack::link::sys::packet_drops(l.as_raw_fd()).unwrap_or(0),
        OsLink::Tap(_) => 0,
    }
}

/// Runs `ustack wire` until SIGINT/SIGTERM/SIGHUP.
pub fn run(global: &GlobalArgs, args: &WireArgs) -> CmdResult {
    if global.tap.is_some() || global.raw.is_some() || !global.ips.is_empty() {
        return Err(
            "ustack wire takes its two ends as arguments (A B), not --tap/--raw/--ip".into(),
        );
    }
    // The wire runs no stack: flags that configure or observe one would be ignored.
    if !global.gateways.is_empty()
        || global.mac.is_some()
        || global.trace
        || global.trace_file.is_some()
        || global.stats.is_some()
    {
        return Err(
            "ustack wire runs no stack: --gateway, --mac, --trace, --trace-file and --stats do not apply".into(),
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ustack_tools::signals::handle_with(move |_| flag.store(true, Ordering::Relaxed))?;

    let mut a = args.a.open()?;
    let b = args.b.open()?;
    // Counted from the open: drops before the loop runs are nobody's.
    let _ = (socket_drops(&a), socket_drops(&b));
    let b_fd = b.as_raw_fd();
    let clock = Clock::start();
    let opts = global.link_options();
    let mut b = build_link(b, &opts, clock.epoch_unix_micros())
        .map_err(|e| format!("cannot record: {e}"))?;
    let frame_len = usize::from(global.mtu) + FRAME_OVERHEAD;
    match &mut b {
        HostLink::Plain(i) => i.set_max_frame_len(frame_len),
        HostLink::Pcap(i) => i.set_max_frame_len(frame_len),
        HostLink::PcapNg(r) => r.get_mut().set_max_frame_len(frame_len),
    }
    let fds = [a.as_raw_fd(), b_fd];
    eprintln!(
        "ustack wire: forwarding {} <-> {} (seed {}); Ctrl-C to stop",
        args.a, args.b, global.seed
    );
    let mut buf = vec![0u8; frame_len];
    let result = forward(&mut a, &mut b, &fds, &clock, &stop, &mut buf);

    let (a2b, b2a) = (
        b.fault_counters(Direction::Tx),
        b.fault_counters(Direction::Rx),
    );
    let recorded = b.flush();
    let b_drops = match &mut b {
        HostLink::Plain(i) => socket_drops(i.get_mut()),
        HostLink::Pcap(i) => socket_drops(i.get_mut().get_mut()),
        HostLink::PcapNg(r) => socket_drops(r.get_mut().get_mut()),
    };
    eprintln!("ustack wire: {}", CountersLine("a2b", &a2b));
    eprintln!("ustack wire: {}", CountersLine("b2a", &b2a));
    eprintln!(
        "ustack wire: socket drops (receive buffer full, not injected): {} {}, {} {}",
        args.a,
        socket_drops(&a),
        args.b,
        b_drops
    );
    if let Some(p) = &global.pcap {
        match recorded {
            Ok(()) => eprintln!("ustack wire: capture written to {}", p.display()),
            Err(e) => eprintln!("ustack wire: capture {} incomplete: {e}", p.display()),
        }
    }
    result?;
    Ok(0)
}

/// The forwarding loop; returns when `stop` is set or a device fails.
fn forward(
    a: &mut OsLink,
    b: &mut HostLink<OsLink>,
    fds: &[i32],
    clock: &Clock,
    stop: &AtomicBool,
    buf: &mut [u8],
) -> Result<(), String> {
    while !stop.load(Ordering::Relaxed) {
        // Drain both ends; `b.recv` also delivers a2b frames that came due, so it runs
        // on every wake even when only a deadline passed.
        loop {
            let now = clock.now();
            let mut moved = false;
            for _ in 0..BATCH {
                match a.recv(now, buf).map_err(|e| format!("end A: {e}"))? {
                    Some(n) => {
                        b.send(now, &buf[..n]).map_err(|e| format!("end B: {e}"))?;
                        moved = true;
                    }
                    None => break,
                }
            }
            for _ in 0..BATCH {
                match b.recv(now, buf).map_err(|e| format!("end B: {e}"))? {
                    Some(n) => {
                        a.send(now, &buf[..n]).map_err(|e| format!("end A: {e}"))?;
                        moved = true;
                    }
                    None => break,
                }
            }
            if !moved {
                break;
            }
        }
        let now = clock.now();
        let timeout = match b.poll_timeout() {
            Some(t) => {
                let d = t - now;
                std::time::Duration::from_micros(d.total_micros()).min(STOP_TICK)
            }
            None => STOP_TICK,
        };
        ustack::link::sys::wait_readable(fds, Some(timeout)).map_err(|e| format!("poll: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_parse_with_and_without_a_namespace() {
        let e: End = "raw:wwa".parse().unwrap();
        assert_eq!(e.device, Device::Raw("wwa".into()));
        assert_eq!(e.netns, None);
        let e: End = "tap:t0@nsA".parse().unwrap();
        assert_eq!(e.device, Device::Tap("t0".into()));
        assert_eq!(e.netns.as_deref(), Some("nsA"));
        assert_eq!(e.to_string(), "tap:t0@nsA");
        for bad in ["wwa", "raw:", "eth:x", "tap:x@", ":x"] {
            assert!(bad.parse::<End>().is_err(), "{bad} accepted");
        }
    }
}
