//! The lab `ustack wire` is tested and benchmarked in: two endpoint namespaces joined
//! through a third that holds only the wire, plus what a benchmark reads from each side
//! (the kernel's TCP counters, `TCP_INFO`, AF_PACKET socket drops).
//!
//! ```text
//!  namespace A                    namespace W                       namespace B
//!  wla 10.79.0.1/24 ──veth── wwa ─┐                    ┌─ wwb ──veth── wlb 10.79.0.2/24
//!                                 └── ustack wire ─────┘
//!  (a ustack on wla: AF_PACKET, 10.79.0.11)            (a ustack on wlb: AF_PACKET, 10.79.0.12)
//! ```
//!
//! Why this shape: a kernel endpoint and a ustack endpoint on the same side share every
//! device on the path. The kernel owns its address on the veth end; a ustack opens an
//! AF_PACKET socket on that same end with an address of its own (and its own MAC, so
//! the kernel there sees its frames as for another host and ignores them). The wire's
//! ends sit in their own namespace without addresses: in an endpoint's namespace the
//! kernel would also accept, from the wire's end, packets for the endpoint's address.
//! Veth rather than TAP ends, so the wire can restart (a new seed) without the carrier
//! dropping, which the kernel applies only up to a second later.
//!
//! Every offload is off on all four veth ends: the wire forwards frames one by one, so
//! it must see MTU-sized frames with complete checksums, not GSO/GRO aggregates. The
//! wire's AF_PACKET sockets get large buffers (see [`enlarge_socket_buffers`]), and
//! drops there, which no seed decided, are counted ([`packet_drops`](ustack::link::sys::packet_drops)).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::path::Path;
use std::process::Command;
use ustack::link::sys::AfPacketLink;
use ustack::wire::{EthernetAddress, Ipv4Cidr};
use ustack_socket::ethtool::{self, Offloads};
use ustack_socket::netns::{Netns, NetnsError};

/// Endpoint device in namespace A.
pub const A_DEV: &str = "wla";
/// Endpoint device in namespace B.
pub const B_DEV: &str = "wlb";
/// The wire's end facing A (in namespace W).
pub const WIRE_A: &str = "wwa";
/// The wire's end facing B (in namespace W).
pub const WIRE_B: &str = "wwb";
/// Prefix length of the lab's one subnet.
pub const PREFIX: u8 = 24;

/// Socket buffer the wire's and a lab ustack's AF_PACKET sockets get, so a burst
/// (a kernel sender's whole window) is not dropped at the socket before any seed
/// decides its fate.
pub const PACKET_SOCKET_BUFFER: usize = 8 << 20;

/// One side of the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Namespace A (`wla`).
    A,
    /// Namespace B (`wlb`).
    B,
}

impl Side {
    /// The kernel's address on this side.
    pub fn kernel_ip(self) -> Ipv4Addr {
        match self {
            Side::A => Ipv4Addr::new(10, 79, 0, 1),
            Side::B => Ipv4Addr::new(10, 79, 0, 2),
        }
    }

    /// A ustack's address on this side (AF_PACKET on the same veth end).
    pub fn stack_ip(self) -> Ipv4Addr {
        match self {
            Side::A => Ipv4Addr::new(10, 79, 0, 11),
            Side::B => Ipv4Addr::new(10, 79, 0, 12),
        }
    }

    /// A ustack's address with the prefix.
    pub fn stack_cidr(self) -> Ipv4Cidr {
        Ipv4Cidr::new(self.stack_ip(), PREFIX)
    }

    /// A ustack's MAC on this side, fixed so the other side's ARP entry stays right
    /// from one run to the next.
    pub fn stack_mac(self) -> EthernetAddress {
        match self {
            Side::A => EthernetAddress([0x02, 0x00, 0x00, 0x4f, 0x00, 0x0b]),
            Side::B => EthernetAddress([0x02, 0x00, 0x00, 0x4f, 0x00, 0x0c]),
        }
    }

    /// The endpoint device of this side.
    pub fn dev(self) -> &'static str {
        match self {
            Side::A => A_DEV,
            Side::B => B_DEV,
        }
    }
}

/// The three namespaces and two veth pairs of the lab; dropping it deletes them all.
#[derive(Debug)]
pub struct WireLab {
    /// Endpoint namespace A.
    pub a: Netns,
    /// The wire's namespace.
    pub w: Netns,
    /// Endpoint namespace B.
    pub b: Netns,
    /// The offloads of the endpoint devices as read back after switching them off.
    pub offloads: Offloads,
    /// The kernel's MACs on `wla` and `wlb`.
    pub kernel_macs: [EthernetAddress; 2],
}

impl WireLab {
    /// Creates the namespaces (named `PREFIX-a-...`, `PREFIX-w-...`, `PREFIX-b-...`)
    /// and devices, with the kernel's addresses on `wla` and `wlb` and every offload off.
    ///
    /// # Errors
    /// A namespace, device, address or offload switch could not be set up (usually: not
    /// root).
    pub fn new(prefix: &str) -> Result<WireLab, NetnsError> {
        let a = Netns::new(&format!("{prefix}-a"))?;
        let w = Netns::new(&format!("{prefix}-w"))?;
        let b = Netns::new(&format!("{prefix}-b"))?;
        let mut offloads = Offloads::all(false);
        for (ns, dev, wire_end, side) in
            [(&a, A_DEV, WIRE_A, Side::A), (&b, B_DEV, WIRE_B, Side::B)]
        {
            ns.ip(&[
                "link",
                "add",
                dev,
                "type",
                "veth",
                "peer",
                "name",
                wire_end,
                "netns",
                w.name(),
            ])?;
            let cidr = format!("{}/{PREFIX}", side.kernel_ip());
            ns.ip(&["addr", "add", &cidr, "dev", dev])?;
            ns.ip(&["link", "set", dev, "up"])?;
            w.ip(&["link", "set", wire_end, "up"])?;
            offloads = ns.run_in(move || ethtool::set(dev, Offloads::all(false)))??;
            w.run_in(move || ethtool::set(wire_end, Offloads::all(false)))??;
        }
        let kernel_macs = [link_mac(&a, A_DEV)?, link_mac(&b, B_DEV)?];
        Ok(WireLab {
            a,
            w,
            b,
            offloads,
            kernel_macs,
        })
    }

    /// The kernel's MAC on one side's endpoint device.
    pub fn kernel_mac(&self, side: Side) -> EthernetAddress {
        match side {
            Side::A => self.kernel_macs[0],
            Side::B => self.kernel_macs[1],
        }
    }

    /// Gives both kernels permanent neighbour entries for every address on the other
    /// side (kernel and ustack), so no ARP crosses the wire afterwards: a benchmark then
    /// measures TCP, not whether a seed happened to drop an ARP request. A lab ustack
    /// gets the same entries from [`static_neighbors`](Self::static_neighbors).
    ///
    /// # Errors
    /// An `ip neigh` command failed.
    pub fn pin_neighbors(&self) -> Result<(), NetnsError> {
        for side in [Side::A, Side::B] {
            let other = match side {
                Side::A => Side::B,
                Side::B => Side::A,
            };
            for (ip, mac) in [
                (other.kernel_ip(), self.kernel_mac(other)),
                (other.stack_ip(), other.stack_mac()),
            ] {
                self.ns(side).ip(&[
                    "neigh",
                    "replace",
                    &ip.to_string(),
                    "lladdr",
                    &mac.to_string(),
                    "dev",
                    side.dev(),
                    "nud",
                    "permanent",
                ])?;
            }
        }
        Ok(())
    }

    /// Static neighbours for a ustack on `side`: the other side's kernel and ustack.
    pub fn static_neighbors(&self, side: Side) -> Vec<(Ipv4Addr, EthernetAddress)> {
        let other = match side {
            Side::A => Side::B,
            Side::B => Side::A,
        };
        vec![
            (other.kernel_ip(), self.kernel_mac(other)),
            (other.stack_ip(), other.stack_mac()),
        ]
    }

    /// The namespace of one side.
    pub fn ns(&self, side: Side) -> &Netns {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    /// `EXE --netns W wire raw:wwa raw:wwb`: the wire between the two sides; append
    /// fault flags, `--seed` and `--pcap` (global flags may follow the subcommand).
    pub fn wire_command(&self, exe: &Path) -> Command {
        let mut cmd = Command::new(exe);
        cmd.args(["--netns", self.w.name(), "wire"]);
        cmd.arg(format!("raw:{WIRE_A}"));
        cmd.arg(format!("raw:{WIRE_B}"));
        cmd
    }

    /// Opens an AF_PACKET socket on one side's endpoint device, with
    /// [`PACKET_SOCKET_BUFFER`] of socket buffer, for a ustack on that side.
    ///
    /// # Errors
    /// The namespace could not be entered or the socket not opened.
    pub fn open_stack_link(&self, side: Side) -> io::Result<AfPacketLink> {
        self.ns(side)
            .run_in(move || {
                let link = ustack_socket::link::open_af_packet(side.dev())?;
                use std::os::fd::AsRawFd;
                enlarge_socket_buffers(link.as_raw_fd(), PACKET_SOCKET_BUFFER)?;
                Ok(link)
            })
            .map_err(|e| io::Error::other(e.to_string()))?
    }
}

/// The MAC of `dev` in `ns`, from `ip -o link show`.
fn link_mac(ns: &Netns, dev: &str) -> Result<EthernetAddress, NetnsError> {
    let out = ns.ip(&["-o", "link", "show", dev])?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| {
            NetnsError::Failed(
                format!("ip -o link show {dev}"),
                format!("no MAC in: {text}"),
            )
        })
}

/// Sets a socket's receive and send buffers to `bytes` with SO_RCVBUFFORCE and
/// SO_SNDBUFFORCE (CAP_NET_ADMIN lets them exceed the `rmem_max`/`wmem_max` sysctls).
///
/// # Errors
/// The socket refused (no CAP_NET_ADMIN, not a socket).
pub fn enlarge_socket_buffers(fd: RawFd, bytes: usize) -> io::Result<()> {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        // SAFETY: setsockopt with a valid int option value and its exact size.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The kernel's TCP counters of one namespace that a loss benchmark compares, as
/// `nstat` names them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelTcpCounters {
    /// `Tcp: RetransSegs` (/proc/net/snmp): segments retransmitted.
    pub retrans_segs: u64,
    /// `TcpExt: TCPTimeouts` (/proc/net/netstat): retransmission timeouts.
    pub timeouts: u64,
    /// `TcpExt: TCPLossProbes`: tail-loss probes sent.
    pub loss_probes: u64,
    /// `TcpExt: TCPLostRetransmit`: retransmissions found lost.
    pub lost_retransmit: u64,
}

impl KernelTcpCounters {
    /// Reads the calling **thread's** namespace's counters (`/proc/thread-self/net/...`:
    /// `/proc/net` follows the process's main thread, which may be elsewhere).
    ///
    /// # Errors
    /// The files could not be read.
    pub fn read() -> io::Result<KernelTcpCounters> {
        let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp")?;
        let netstat = std::fs::read_to_string("/proc/thread-self/net/netstat")?;
        Ok(KernelTcpCounters {
            retrans_segs: proc_counter(&snmp, "Tcp", "RetransSegs").unwrap_or(0),
            timeouts: proc_counter(&netstat, "TcpExt", "TCPTimeouts").unwrap_or(0),
            loss_probes: proc_counter(&netstat, "TcpExt", "TCPLossProbes").unwrap_or(0),
            lost_retransmit: proc_counter(&netstat, "TcpExt", "TCPLostRetransmit").unwrap_or(0),
        })
    }

    /// What grew from `before` to `self`.
    pub fn since(&self, before: &KernelTcpCounters) -> KernelTcpCounters {
        KernelTcpCounters {
            retrans_segs: self.retrans_segs.saturating_sub(before.retrans_segs),
            timeouts: self.timeouts.saturating_sub(before.timeouts),
            loss_probes: self.loss_probes.saturating_sub(before.loss_probes),
            lost_retransmit: self.lost_retransmit.saturating_sub(before.lost_retransmit),
        }
    }
}

/// One counter of a /proc/net/snmp-style file: pairs of lines `Group: names...` and
/// `Group: values...`.
pub fn proc_counter(text: &str, group: &str, name: &str) -> Option<u64> {
    let prefix = format!("{group}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let names = names[prefix.len()..].split_whitespace();
        let mut values = values[prefix.len()..].split_whitespace();
        for n in names {
            let v = values.next()?;
            if n == name {
                return v.parse().ok();
            }
        }
    }
    None
}

/// What the kernel's `TCP_INFO` says about retransmissions on one socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelTcpInfo {
    /// `tcpi_total_retrans`: segments retransmitted.
    pub total_retrans: u64,
    /// `tcpi_bytes_retrans` (Linux 4.19+; 0 before): payload bytes retransmitted.
    pub bytes_retrans: u64,
}

/// Reads `TCP_INFO` of a kernel TCP socket.
///
/// # Errors
/// `fd` is not a TCP socket.
pub fn kernel_tcp_info(fd: RawFd) -> io::Result<KernelTcpInfo> {
    // struct tcp_info (linux/tcp.h): tcpi_total_retrans is the u32 at byte 100,
    // tcpi_bytes_retrans the u64 at byte 208; older kernels return less.
    let mut buf = [0u8; 256];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `buf`, which outlives the call.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let len = len as usize;
    let u32_at = |o: usize| {
        (len >= o + 4).then(|| {
            u64::from(u32::from_ne_bytes([
                buf[o],
                buf[o + 1],
                buf[o + 2],
                buf[o + 3],
            ]))
        })
    };
    let u64_at = |o: usize| {
        (len >= o + 8).then(|| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[o..o + 8]);
            u64::from_ne_bytes(b)
        })
    };
    Ok(KernelTcpInfo {
        total_retrans: u32_at(100).unwrap_or(0),
        bytes_retrans: u64_at(208).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_counters_are_found_by_group_and_name() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 2 64\n\
                    Tcp: RtoAlgorithm RetransSegs InErrs\nTcp: 1 42 3\n";
        assert_eq!(proc_counter(text, "Tcp", "RetransSegs"), Some(42));
        assert_eq!(proc_counter(text, "Tcp", "InErrs"), Some(3));
        assert_eq!(proc_counter(text, "Ip", "DefaultTTL"), Some(64));
        assert_eq!(proc_counter(text, "Tcp", "Nope"), None);
        assert_eq!(proc_counter(text, "Udp", "InErrs"), None);
    }

    #[test]
    fn counters_of_this_namespace_read_and_subtract() {
        let c = KernelTcpCounters::read().expect("/proc/thread-self/net");
        assert_eq!(c.since(&c), KernelTcpCounters::default());
    }
}
