//! Options every subcommand understands (link, address, recording, tracing, faults).
//! Commands and the observer import this module; it imports no command, so the command
//! line (`crate::cli`, which lists the commands) is not part of a cycle.

use clap::Args;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use ustack::wire::{EthernetAddress, Ipv4Cidr, Ipv6Cidr};

/// An address with a prefix of either family, as `--ip` takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpCidr {
    /// `a.b.c.d/len`.
    V4(Ipv4Cidr),
    /// `x:y::z/len` (a bare address is a /64).
    V6(Ipv6Cidr),
}

impl core::str::FromStr for IpCidr {
    type Err = String;

    fn from_str(s: &str) -> Result<IpCidr, String> {
        if s.contains(':') {
            s.parse()
                .map(IpCidr::V6)
                .map_err(|_| format!("{s}: not an IPv6 address/prefix"))
        } else {
            s.parse()
                .map(IpCidr::V4)
                .map_err(|_| format!("{s}: not an IPv4 address/prefix (a.b.c.d/len)"))
        }
    }
}

impl GlobalArgs {
    /// The IPv4 address given with `--ip` (the first, if several: see
    /// [`check_addresses`](Self::check_addresses)).
    pub fn ip(&self) -> Option<Ipv4Cidr> {
        self.ips.iter().find_map(|c| match c {
            IpCidr::V4(c) => Some(*c),
            IpCidr::V6(_) => None,
        })
    }

    /// The IPv6 addresses given with `--ip`.
    pub fn ip6(&self) -> Vec<Ipv6Cidr> {
        self.ips
            .iter()
            .filter_map(|c| match c {
                IpCidr::V6(c) => Some(*c),
                IpCidr::V4(_) => None,
            })
            .collect()
    }

    /// The IPv4 `--gateway`.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.gateways.iter().find_map(|g| match g {
            IpAddr::V4(g) => Some(*g),
            IpAddr::V6(_) => None,
        })
    }

    /// The IPv6 `--gateway`.
    pub fn gateway6(&self) -> Option<Ipv6Addr> {
        self.gateways.iter().find_map(|g| match g {
            IpAddr::V6(g) => Some(*g),
            IpAddr::V4(_) => None,
        })
    }

    /// At most one IPv4 address and one gateway per family.
    ///
    /// # Errors
    /// What is wrong, for the user.
    pub fn check_addresses(&self) -> Result<(), String> {
        let v4 = self
            .ips
            .iter()
            .filter(|c| matches!(c, IpCidr::V4(_)))
            .count();
        if v4 > 1 {
            return Err("--ip: give one IPv4 address (and any number of IPv6 ones)".into());
        }
        let g4 = self.gateways.iter().filter(|g| g.is_ipv4()).count();
        if g4 > 1 || self.gateways.len() - g4 > 1 {
            return Err("--gateway: one per address family".into());
        }
        if self.no_ipv6 && (!self.ip6().is_empty() || self.gateway6().is_some()) {
            return Err("--no-ipv6 with an IPv6 --ip or --gateway".into());
        }
        Ok(())
    }
}

/// Options every subcommand understands.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Run the whole command inside the existing network namespace NAME
    /// (/run/netns/NAME, made by `ip netns add NAME`), as `ip netns exec NAME ustack ...`
    /// would: entered at startup, before any device is opened or thread started. Needs
    /// root (CAP_SYS_ADMIN). Example: `sudo ustack --netns lab --tap tap0 --ip
    /// 10.77.0.2/24 ping 10.77.0.1 -c 3`.
    #[arg(long, value_name = "NAME", global = true)]
    pub netns: Option<String>,
    /// Run on the TAP device NAME (created if it does not exist).
    #[arg(long, value_name = "NAME", global = true, conflicts_with = "raw")]
    pub tap: Option<String>,
    /// Run on the existing interface IFACE through an AF_PACKET socket. The kernel must
    /// not own the stack's address on it (e.g. a veth end without an address).
    #[arg(long, value_name = "IFACE", global = true)]
    pub raw: Option<String>,
    /// The stack's address and prefix, e.g. 10.77.0.2/24. Repeatable: one IPv4 address
    /// and any number of IPv6 ones (e.g. `--ip 10.77.0.2/24 --ip fd00:77::2/64`; a bare
    /// IPv6 address is a /64). The stack always has an IPv6 link-local address and
    /// takes further IPv6 addresses and a router from router advertisements.
    #[arg(long = "ip", value_name = "ADDR/PREFIX", global = true, action = clap::ArgAction::Append)]
    pub ips: Vec<IpCidr>,
    /// Default gateway for destinations outside the subnet; repeatable, one per family
    /// (an IPv6 one is used until a router advertisement names a router).
    #[arg(long = "gateway", value_name = "IP", global = true, action = clap::ArgAction::Append)]
    pub gateways: Vec<IpAddr>,
    /// Do not speak IPv6 at all.
    #[arg(long, global = true)]
    pub no_ipv6: bool,
    /// The stack's MAC address [default: a locally administered address derived from --seed].
    #[arg(long, value_name = "MAC", global = true)]
    pub mac: Option<EthernetAddress>,
    /// IP MTU.
    #[arg(long, value_name = "N", global = true, default_value_t = 1500,
          value_parser = clap::value_parser!(u16).range(576..=9000))]
    pub mtu: u16,
    /// Record every frame in and out to FILE. FILE.pcapng records the stack's view with
    /// a comment on every frame the fault flags dropped, duplicated, corrupted, delayed
    /// or held back (dropped ones are still recorded) and on every frame the stack
    /// dropped, with the reason (Wireshark: frame.comment). Any other name writes
    /// classic pcap of what crossed the device, which cannot carry comments.
    #[arg(long, value_name = "FILE", global = true)]
    pub pcap: Option<PathBuf>,
    /// Seed for every random choice (MAC, ISNs, ports, IP ids, injected faults), so runs
    /// can be replayed.
    #[arg(long, value_name = "N", global = true, default_value_t = 1)]
    pub seed: u64,
    /// Print TCP events as they happen, one line each on stdout: seconds since start,
    /// local-remote, then the event (state change, retransmission, fast retransmit, RTO,
    /// cwnd/ssthresh change, window update, zero-window probe) and cwnd/ssthresh/srtt.
    /// Give it before the subcommand (`ustack --trace up`): `ustack plot --trace FILE`
    /// is the plot's own flag. The socket-API commands (http, nc, send, recv, ping,
    /// dns) print the lines on stderr, since their stdout may be data.
    #[arg(long)]
    pub trace: bool,
    /// Write the TCP events, plus cwnd/ssthresh/srtt samples while data flows, to FILE
    /// as JSON lines, the format `ustack plot --trace FILE -o cwnd.svg` draws.
    #[arg(long, value_name = "FILE", global = true)]
    pub trace_file: Option<PathBuf>,
    /// Sample each connection at most every MS milliseconds in --trace-file (0: events
    /// only).
    #[arg(long, value_name = "MS", global = true, default_value_t = 10)]
    pub trace_every: u64,
    /// When a stack exits, print every counter by layer and one `ss -ti`-like line per
    /// TCP socket (cwnd and ssthresh in bytes) on stdout (on stderr for the socket-API
    /// commands http, nc, send, recv, ping, dns);
    /// --stats=json prints one JSON object. `ustack stats` shows the same for a running
    /// process.
    #[arg(long, value_name = "FORMAT", global = true, num_args = 0..=1,
          require_equals = true, default_missing_value = "text", value_enum)]
    pub stats: Option<StatsFormat>,
    /// Checksum and TCP segmentation offloads on a TAP (`IFF_VNET_HDR`) or an AF_PACKET
    /// socket (--raw, `PACKET_VNET_HDR`): the kernel and the stack exchange 64 KB TCP
    /// super-frames and leave checksums of frames that never cross a wire unfinished.
    /// `auto` (the default) turns them on where the kernel supports it and falls back
    /// to plain frames otherwise; `off` (or --no-offload) moves one wire frame per
    /// read/write (AF_PACKET: through its receive ring). Fault flags imply `off`:
    /// faults are per wire frame.
    #[arg(long, value_name = "auto|off", global = true, default_value = "auto",
          value_parser = parse_offload)]
    pub offload: ustack_socket::link::Offload,
    /// Same as `--offload off`.
    #[arg(long, global = true)]
    pub no_offload: bool,
    /// Loss, duplication, reordering, corruption, delay and rate limits at the link.
    #[command(flatten)]
    pub faults: ustack_tools::faults::FaultArgs,
}

/// How `--stats` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatsFormat {
    /// Readable text.
    Text,
    /// One JSON object.
    Json,
}

impl GlobalArgs {
    /// Recording and fault injection from `--pcap`, the fault flags and `--seed`
    /// (composed by `ustack_socket::link::build_link`).
    pub fn link_options(&self) -> ustack_socket::link::LinkOptions {
        ustack_socket::link::LinkOptions {
            pcap: self.pcap.clone(),
            faults: self.faults.faults(),
            seed: self.seed,
            offload: if self.no_offload {
                ustack_socket::link::Offload::Off
            } else {
                self.offload
            },
        }
    }
}

/// `--offload` values: `auto`/`on` and `off`.
fn parse_offload(s: &str) -> Result<ustack_socket::link::Offload, String> {
    match s {
        "auto" | "on" => Ok(ustack_socket::link::Offload::Auto),
        "off" => Ok(ustack_socket::link::Offload::Off),
        _ => Err(format!("`{s}`: expected auto, on or off")),
    }
}

#[cfg(test)]
mod ip_tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        g: GlobalArgs,
    }

    #[test]
    fn ip_is_repeatable_across_families() {
        let t = T::try_parse_from([
            "t",
            "--ip",
            "10.0.0.2/24",
            "--ip",
            "fd00::2/64",
            "--ip",
            "2001:db8::5",
            "--gateway",
            "10.0.0.1",
            "--gateway",
            "fe80::1",
        ])
        .unwrap();
        assert_eq!(t.g.ip(), Some("10.0.0.2/24".parse().unwrap()));
        assert_eq!(
            t.g.ip6(),
            vec![
                "fd00::2/64".parse().unwrap(),
                "2001:db8::5/64".parse().unwrap()
            ]
        );
        assert_eq!(t.g.gateway(), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(t.g.gateway6(), Some("fe80::1".parse().unwrap()));
        assert!(t.g.check_addresses().is_ok());
        let two = T::try_parse_from(["t", "--ip", "10.0.0.2/24", "--ip", "10.0.0.3/24"]).unwrap();
        assert!(two.g.check_addresses().is_err());
        assert!(T::try_parse_from(["t", "--ip", "fd00::zz/64"]).is_err());
    }
}
