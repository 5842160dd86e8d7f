//! What the application subcommands (`http`, `nc`, `send`, `recv`, `ping`, `dns`) share:
//! a [`NetStack`] built from the global options, and the transfer summary (progress bar,
//! byte count, throughput, SHA-256).
//!
//! The stack is the socket API's (`ustack_socket`): one driver thread owns the link and
//! the application uses `TcpStream`/`UdpSocket`/`RawSocket` from its own threads. The
//! link gets the same wrappers as `ustack up` (`ustack_socket::link`): the pcap writer
//! records what the device moved and the fault injector sits above it (so injected
//! losses do not show in the file, like a lossy path beyond the NIC).

use crate::global::GlobalArgs;
use crate::observe::{Attached, Observer};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::io::{self, IsTerminal, Read, Write};
use std::time::{Duration, Instant};
use ustack_socket::NetStack;

/// Builds and starts the stack for subcommand `what` from the global options.
///
/// # Errors
/// No link or no address was given, or the device could not be opened.
pub fn stack(args: &GlobalArgs, what: &str) -> Result<NetStack, Box<dyn std::error::Error>> {
    let super::Device {
        spec,
        link: device,
        ip,
        mac,
    } = super::open_device(args, what)?;
    let stack = super::builder(args, device, ip, mac)
        .build()
        .map_err(|e| format!("cannot start the stack on {spec}: {e}"))?;
    log::info!("{what}: stack {ip} ({mac}) on {spec}");
    Ok(stack)
}

/// `--trace`, `--trace-file` and `--stats` for a socket-API stack: the [`Observer`] as
/// a hook in the stack's driver, and the report when it ends. The socket-API commands
/// print both on stderr, since their stdout may be data (`nc`, `http get`). Dropping it
/// detaches the hook, drains the last events and prints the report; drop it before the
/// command's last `NetStack` handle.
pub struct Watch {
    stack: NetStack,
    attached: Option<Attached>,
}

/// Starts watching `stack` when `--trace`, `--trace-file` or `--stats` asks for it.
///
/// # Errors
/// The trace file could not be created.
pub fn watch(
    args: &GlobalArgs,
    stack: &NetStack,
) -> Result<Option<Watch>, Box<dyn std::error::Error>> {
    if !Observer::wanted(args) {
        return Ok(None);
    }
    let obs = Observer::new(args, stack, false)?.on_stderr();
    Ok(Some(Watch {
        stack: stack.clone(),
        attached: Some(Attached::attach(obs, stack)),
    }))
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(obs) = self.attached.take().and_then(Attached::detach) {
            let driver = self.stack.driver_stats();
            let ring = self.stack.ring_stats();
            self.stack
                .with_interface(|iface, now| obs.finish(iface, now, Some(driver), ring));
        }
    }
}

/// Says where the pcap went (after the stack is dropped, so the file is complete).
pub fn report_pcap(args: &GlobalArgs) {
    if let Some(p) = &args.pcap {
        eprintln!("ustack: pcap written to {}", p.display());
    }
}

/// Counts and hashes the bytes of a transfer and shows a progress bar on a terminal.
pub struct Transfer {
    hasher: Sha256,
    bytes: u64,
    start: Instant,
    bar: ProgressBar,
}

impl Transfer {
    /// Starts the clock; `total` (when known) sizes the bar.
    pub fn new(total: Option<u64>) -> Transfer {
        let bar = if io::stderr().is_terminal() {
            let bar = match total {
                Some(n) => ProgressBar::new(n).with_style(
                    ProgressStyle::with_template(
                        "{bar:40} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
                    )
                    .expect("constant template"),
                ),
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("{spinner} {binary_bytes} {binary_bytes_per_sec}")
                        .expect("constant template"),
                ),
            };
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        Transfer {
            hasher: Sha256::new(),
            bytes: 0,
            start: Instant::now(),
            bar,
        }
    }

    /// Records `data` as transferred.
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        self.bar.set_position(self.bytes);
    }

    /// Copies `from` to `to` until EOF, recording everything; returns the bytes copied.
    ///
    /// # Errors
    /// Reading or writing failed.
    pub fn copy(&mut self, from: &mut dyn Read, to: &mut dyn Write) -> io::Result<u64> {
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0;
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            to.write_all(&buf[..n])?;
            self.update(&buf[..n]);
            total += n as u64;
        }
        to.flush()?;
        Ok(total)
    }

    /// Stops the bar and returns the one-line summary:
    /// `N bytes in T s (R MB/s, B Mbit/s), sha256 HEX`.
    pub fn finish(self) -> String {
        self.bar.finish_and_clear();
        let secs = self.start.elapsed().as_secs_f64().max(1e-6);
        let rate = self.bytes as f64 / secs;
        format!(
            "{} bytes in {secs:.3} s ({:.1} MB/s, {:.1} Mbit/s), sha256 {}",
            self.bytes,
            rate / 1e6,
            rate * 8.0 / 1e6,
            hex(&self.hasher.finalize())
        )
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses an IPv4 host, or explains that names need `ustack dns` first.
///
/// # Errors
/// `host` is not a dotted-quad IPv4 address.
pub fn ipv4_host(host: &str) -> Result<core::net::Ipv4Addr, String> {
    host.parse().map_err(|_| {
        format!(
            "`{host}` is not an IPv4 address: ustack has no resolver in front of its \
             sockets; look the name up with `ustack dns {host} @SERVER` and use the address"
        )
    })
}

/// Parses an IPv4 or IPv6 host with `port`: `10.0.0.1`, `fd00::1`, `[fd00::1]`, or a
/// link-local `fe80::1%IF` (the stack has one interface, so any zone names it: a
/// number is kept as the scope id, a name becomes `family::SCOPE_ID`).
///
/// # Errors
/// `host` is not an address (there is no resolver in front of the stack's sockets).
pub fn host_addr(host: &str, port: u16) -> Result<std::net::SocketAddr, String> {
    use std::net::{IpAddr, SocketAddr, SocketAddrV6};
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let (ip, zone) = match bare.split_once('%') {
        Some((ip, zone)) => (ip, Some(zone)),
        None => (bare, None),
    };
    let not_an_address = || {
        format!(
            "`{host}` is not an IPv4 or IPv6 address: ustack has no resolver in front of \
             its sockets; look the name up with `ustack dns {host} @SERVER` (A or AAAA) and \
             use the address"
        )
    };
    match (ip.parse::<IpAddr>().map_err(|_| not_an_address())?, zone) {
        (IpAddr::V4(a), None) => Ok(SocketAddr::from((a, port))),
        (IpAddr::V4(_), Some(_)) => Err(format!("`{host}`: a zone only goes with IPv6")),
        (IpAddr::V6(a), zone) => {
            let scope = match zone {
                None => 0,
                Some("") => return Err(format!("`{host}`: empty zone")),
                Some(z) => z.parse().unwrap_or(ustack_socket::family::SCOPE_ID),
            };
            Ok(SocketAddr::V6(SocketAddrV6::new(a, port, 0, scope)))
        }
    }
}

/// `peer` as people read it: an IPv4 peer of a dual-stack socket without its
/// `::ffff:` prefix.
pub fn show_peer(peer: std::net::SocketAddr) -> std::net::SocketAddr {
    match peer {
        std::net::SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => std::net::SocketAddr::from((v4, a.port())),
            None => peer,
        },
        v4 => v4,
    }
}

/// Waits (at most 5 s) until the stack has a source address for `dst`: an IPv6
/// address is unusable while duplicate address detection runs (RFC 4862 §5.4), which
/// starts with the command, and connecting before it ends would fail at once with
/// ENETUNREACH, as it does on Linux. IPv4 needs no wait.
pub fn await_source(stack: &NetStack, dst: std::net::SocketAddr) {
    let ip = match dst {
        std::net::SocketAddr::V6(a) if a.ip().to_ipv4_mapped().is_none() => (*a.ip()).into(),
        _ => return,
    };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5)
        && stack
            .with_interface(|i, _| i.local_addrs().source_for(ip))
            .is_none()
    {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod host_tests {
    use super::*;

    #[test]
    fn hosts_of_both_families_parse() {
        assert_eq!(
            host_addr("10.0.0.1", 80).unwrap().to_string(),
            "10.0.0.1:80"
        );
        assert_eq!(
            host_addr("fd00::1", 80).unwrap().to_string(),
            "[fd00::1]:80"
        );
        assert_eq!(
            host_addr("[fd00::1]", 80).unwrap().to_string(),
            "[fd00::1]:80"
        );
        assert_eq!(
            host_addr("fe80::1%3", 9).unwrap().to_string(),
            "[fe80::1%3]:9"
        );
        assert_eq!(
            host_addr("[fe80::1%tap0]", 9).unwrap().to_string(),
            format!("[fe80::1%{}]:9", ustack_socket::family::SCOPE_ID)
        );
        assert!(host_addr("example.com", 80).is_err());
        assert!(host_addr("10.0.0.1%1", 80).is_err());
        assert!(host_addr("fe80::1%", 80).is_err());
        assert_eq!(
            show_peer("[::ffff:10.0.0.1]:5".parse().unwrap()).to_string(),
            "10.0.0.1:5"
        );
    }
}
