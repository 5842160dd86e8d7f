//! `ustack demo`: the stack against the Linux kernel in a private namespace.
//!
//! Everything happens inside a namespace this process creates (`ustack-demo-PID-...`):
//! a TAP `tap0` with the kernel at 10.77.0.1/24, the stack at 10.77.0.2/24 on a thread
//! that entered the namespace. The kernel's side of each step (ping, HTTP GET, TCP and
//! UDP echo) is a thread of this process that entered the namespace with setns(2) and
//! uses kernel sockets ([`ustack_socket::kernel_peer`]), so the demo needs no program
//! but `ip`; each step prints the shell command that does the same by hand.
//! The namespace is removed on every exit path: the guard's `Drop` (normal return,
//! errors, panics) and the signal thread (Ctrl-C/SIGTERM), which deletes it and exits.

use super::CmdResult;
use crate::global::GlobalArgs;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use ustack::iface::AddrState;
use ustack::link::PcapReader;
use ustack::wire::{EthernetAddress, Ipv4Cidr, Ipv6Cidr};
use ustack_capture::decode;
use ustack_capture::dump_fmt::{self, TimeStyle};
use ustack_socket::kernel_peer::{self, PingOptions};
use ustack_socket::link::{mac_from_seed, Device, LinkOptions};
use ustack_socket::netns::{self, Netns};
use ustack_socket::{NetStack, SockOpt, TcpListener, UdpSocket};

const TAP: &str = "tap0";
const KERNEL_CIDR: &str = "10.77.0.1/24";
const STACK_IP: &str = "10.77.0.2";
/// The IPv6 part: unique local addresses (RFC 4193) on the same link; the kernel's is
/// added `nodad` so it is usable at once.
const KERNEL_CIDR6: &str = "fd00:77::1/64";
const STACK_IP6: &str = "fd00:77::2";

/// Runs the demo; exit code 0 when every kernel-side step succeeded.
pub fn run(args: &GlobalArgs) -> CmdResult {
    ustack_tools::signals::handle_with(|sig| {
        // Holding both console locks parks the main thread at its next print, so it
        // does not race on into a namespace that is being deleted.
        let _out = std::io::stdout().lock();
        let _err = std::io::stderr().lock();
        eprintln!("\nustack demo: signal {sig}, removing the namespace");
        netns::cleanup_all();
        std::process::exit(128 + sig);
    })?;
    let missing = netns::missing_privileges();
    if !missing.is_empty() {
        return Err(format!(
            "the demo creates a network namespace and a TAP; missing: {}",
            missing.join(", ")
        )
        .into());
    }
    let pcap_path = args
        .pcap
        .clone()
        .unwrap_or_else(|| PathBuf::from("ustack-demo.pcap"));
    let mac = args.mac.unwrap_or_else(|| mac_from_seed(args.seed));
    let ip: Ipv4Cidr = format!("{STACK_IP}/24").parse().expect("constant cidr");

    let ns = Netns::new("ustack-demo")?;
    println!("== namespace {} (removed at exit)", ns.name());
    ns.add_tap(TAP, KERNEL_CIDR)?;
    if args.mtu != 1500 {
        ns.ip(&["link", "set", TAP, "mtu", &args.mtu.to_string()])?;
    }
    // `Netns::new` switches IPv6 off (no stray router solicitations in IPv4 tests);
    // the demo's IPv6 part needs it on in its namespace.
    ns.run_in(|| {
        ["all", "default", TAP].iter().try_for_each(|which| {
            std::fs::write(format!("/proc/sys/net/ipv6/conf/{which}/disable_ipv6"), "0")
        })
    })??;
    ns.ip(&["-6", "addr", "add", KERNEL_CIDR6, "dev", TAP, "nodad"])?;
    let ip6: Ipv6Cidr = format!("{STACK_IP6}/64").parse().expect("constant cidr");
    println!("== kernel: {TAP} {KERNEL_CIDR} {KERNEL_CIDR6}   stack: {ip} {ip6} {mac}");

    let os_link = ns.run_in(|| Device::Tap(TAP.into()).open())??;
    // The kernel's side of the TAP drops what it sends until it has seen the carrier.
    ns.wait_running(TAP, Duration::from_secs(5))?;
    let seed = args.seed;
    // Composed like every subcommand's link: faults from the flags, pcap (or annotated
    // pcapng when the name ends in .pcapng) at the device.
    let opts = LinkOptions {
        pcap: Some(pcap_path.clone()),
        faults: args.faults.faults(),
        seed,
        offload: ustack_socket::link::Offload::Off,
    };
    let stack = NetStack::builder()
        .os_link(os_link)
        .link_options(opts)
        .ip(ip)
        .ip6(ip6)
        .mac(mac)
        .mtu(args.mtu.into())
        .config(move |c| c.seed = seed)
        .build()
        .map_err(|e| format!("cannot start the stack: {e}"))?;
    let services = Services::start(&stack)?;
    println!("== stack services: HTTP on port 80 (IPv4 and IPv6), TCP and UDP echo on port 7");

    let mut all_ok = true;
    let stack_v4: Ipv4Addr = STACK_IP.parse().expect("constant address");
    // The kernel's side of every step runs on a thread that entered the namespace and
    // uses the kernel's own sockets; no outside program takes part.
    for (title, count, size) in [
        ("ping, 3 x 56 bytes", 3u32, 56usize),
        ("ping, 2 x 3000 bytes (fragmented both ways)", 2, 3000),
    ] {
        all_ok &= ping_step(&ns, title, IpAddr::V4(stack_v4), count, size)?;
    }
    let http = SocketAddr::from((stack_v4, 80));
    all_ok &= http_step(&ns, "HTTP/1.1 GET from the stack's server", http)?;

    step(
        "TCP echo on port 7",
        "a TcpStream that half-closes after its line",
        &format!("echo 'hello over TCP' | socat - TCP:{STACK_IP}:7"),
    );
    let sent = "hello over TCP\n";
    match ns.run_in(move || tcp_echo(SocketAddr::from((stack_v4, 7)), sent))? {
        Ok(got) => {
            print!("{got}");
            all_ok &= got == sent;
        }
        Err(e) => {
            println!("kernel TCP echo client failed: {e}");
            all_ok = false;
        }
    }

    step(
        "UDP echo on port 7",
        "a UdpSocket",
        &format!("echo 'hello over UDP' | socat - UDP:{STACK_IP}:7"),
    );
    let sent = "hello over UDP\n";
    match ns.run_in(move || udp_echo(SocketAddr::from((stack_v4, 7)), sent))? {
        Ok(got) => {
            print!("{got}");
            all_ok &= got == sent;
        }
        Err(e) => {
            println!("kernel UDP echo client failed: {e}");
            all_ok = false;
        }
    }
    let neigh = ns.exec(&["ip", "neigh", "show", "dev", TAP])?;
    println!(
        "\n== kernel neighbour table: {}",
        String::from_utf8_lossy(&neigh.stdout).trim()
    );

    // IPv6: the same kernel-side sockets with AF_INET6, to the stack's ULA.
    let stack_v6: Ipv6Addr = STACK_IP6.parse().expect("constant address");
    if stack.with_interface(|i, _| i.ipv6_addrs().is_empty()) {
        println!("\n== IPv6 not shown: it needs an MTU of at least 1280 (RFC 8200 §5)");
    } else {
        // DAD (RFC 4862 §5.4) keeps the stack's new address tentative for about a second;
        // packets to it are dropped until then.
        println!("\n== IPv6: waiting for the stack's duplicate address detection of {STACK_IP6}");
        let ready_by = std::time::Instant::now() + Duration::from_secs(5);
        let ready = || {
            stack.with_interface(|i, _| {
                i.ipv6_addrs()
                    .iter()
                    .any(|a| a.cidr.address() == stack_v6 && a.state == AddrState::Preferred)
            })
        };
        while !ready() && std::time::Instant::now() < ready_by {
            std::thread::sleep(Duration::from_millis(20));
        }
        for (title, count, size) in [
            ("ping over IPv6, 3 x 56 bytes", 3u32, 56usize),
            (
                "ping over IPv6, 2 x 3000 bytes (fragmented both ways)",
                2,
                3000,
            ),
        ] {
            all_ok &= ping_step(&ns, title, IpAddr::V6(stack_v6), count, size)?;
        }
        let http = SocketAddr::from((stack_v6, 80));
        all_ok &= http_step(
            &ns,
            "HTTP/1.1 GET over IPv6 (the same dual-stack server)",
            http,
        )?;
        let neigh = ns.exec(&["ip", "-6", "neigh", "show", STACK_IP6, "dev", TAP])?;
        println!(
            "\n== kernel IPv6 neighbour table: {}",
            String::from_utf8_lossy(&neigh.stdout).trim()
        );
    }

    services.stop();
    let counters = stack.with_interface(|iface, _| super::format_counters(iface));
    // The last handle: the driver closes what is left, flushes and closes the pcap.
    drop(stack);
    print!("\n== stack interface counters:\n{counters}");
    print_trace(&pcap_path, mac)?;
    println!(
        "\n== pcap written to {} (try: tshark -r {} -V)",
        pcap_path.display(),
        pcap_path.display()
    );
    drop(ns);
    if !all_ok {
        println!("== some kernel-side steps failed");
        return Ok(1);
    }
    Ok(0)
}

/// One ping step: the kernel pings `dst` (`ping -c COUNT -s SIZE`, or `ping -6`) and
/// the replies print as ping prints them; true when every request was answered intact.
fn ping_step(
    ns: &Netns,
    title: &str,
    dst: IpAddr,
    count: u32,
    size: usize,
) -> Result<bool, netns::NetnsError> {
    let (socket, flag) = match dst {
        IpAddr::V4(_) => ("a raw ICMP socket", ""),
        IpAddr::V6(_) => ("a raw ICMPv6 socket", "-6 "),
    };
    step(
        title,
        socket,
        &format!("ping {flag}-c {count} -i 0.2 -s {size} {dst}"),
    );
    let opts = PingOptions::new(count, size)
        .interval(Duration::from_millis(200))
        .timeout(Duration::from_secs(1));
    let result = ns.run_in(move || match dst {
        IpAddr::V4(a) => kernel_peer::ping(a, &opts),
        IpAddr::V6(a) => kernel_peer::ping6(a, &opts),
    })?;
    Ok(match result {
        Ok(report) => {
            println!("PING {dst}: {size} data bytes");
            for r in &report.replies {
                println!(
                    "{} bytes from {dst}: icmp_seq={} {}={} time={:.3} ms",
                    r.bytes,
                    r.seq,
                    if dst.is_ipv6() { "hlim" } else { "ttl" },
                    r.ttl,
                    r.rtt.as_secs_f64() * 1e3
                );
            }
            println!("{}", report.summary());
            report.received == count && report.wrong_data == 0 && report.duplicates == 0
        }
        Err(e) => {
            println!("kernel ping failed: {e}");
            false
        }
    })
}

/// One HTTP step: the kernel GETs `/` from `addr` and the response prints whole; true
/// on status 200.
fn http_step(ns: &Netns, title: &str, addr: SocketAddr) -> Result<bool, netns::NetnsError> {
    let url = match addr {
        SocketAddr::V4(_) => format!("http://{}/", addr.ip()),
        SocketAddr::V6(_) => format!("http://[{}]/", addr.ip()),
    };
    step(title, "a TcpStream", &format!("curl -i {url}"));
    let result = ns.run_in(move || {
        let mut body = Vec::new();
        kernel_peer::http_get(addr, "/", &mut body).map(|r| (r, body))
    })?;
    Ok(match result {
        Ok((reply, body)) => {
            print!("{}", reply.head.replace("\r\n", "\n"));
            print!("{}", String::from_utf8_lossy(&body));
            reply.status == 200
        }
        Err(e) => {
            println!("kernel HTTP client failed: {e}");
            false
        }
    })
}

/// Prints one line per pcap record: time, direction, Ethernet, and the upper layers.
fn print_trace(path: &Path, mac: EthernetAddress) -> std::io::Result<()> {
    let mut reader = PcapReader::new(std::io::BufReader::new(File::open(path)?))?;
    let mut records = Vec::new();
    while let Some(rec) = reader.next_record()? {
        records.push((rec.timestamp_ns / 1000, rec.data));
    }
    println!("\n== what crossed the wire ({} frames):", records.len());
    let t0 = records.first().map(|r| r.0).unwrap_or(0);
    for (i, (t, frame)) in records.iter().enumerate() {
        let dir = if frame.len() >= 12 && frame[6..12] == mac.0 {
            "stack  -> kernel"
        } else {
            "kernel -> stack "
        };
        let eth = if frame.len() >= 14 {
            format!(
                "eth {} > {} len {}",
                EthernetAddress(frame[6..12].try_into().expect("6 bytes")),
                EthernetAddress(frame[0..6].try_into().expect("6 bytes")),
                frame.len()
            )
        } else {
            format!("eth runt len {}", frame.len())
        };
        // The stack's own one-line summary knows no IPv6; the capture decoder behind
        // `ustack dump` does (NDP, MLD, ICMPv6, fragments), without its clock.
        let upper = if frame.len() >= 14 && frame[12..14] == [0x86, 0xdd] {
            let line = dump_fmt::one_line(&decode::decode_frame(1, frame), None, TimeStyle::Utc);
            line.split_once(' ')
                .map_or(line.clone(), |(_, rest)| rest.to_owned())
        } else {
            ustack::wire::pretty::summarize(frame)
        };
        println!(
            "{:4} {:>10.6}s  {dir}  {eth:<52} | {upper}",
            i + 1,
            (t - t0) as f64 / 1e6,
        );
    }
    Ok(())
}

/// Announces a step: what it does, the kernel socket that does it, and the shell
/// command that does the same by hand (in a namespace of your own, see the README).
fn step(title: &str, socket: &str, by_hand: &str) {
    println!("\n== {title}\n   kernel side: {socket} on a thread inside the namespace; by hand: {by_hand}");
}

/// The kernel's TCP echo client: sends `line`, half-closes, reads until the stack's FIN.
fn tcp_echo(to: SocketAddr, line: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(line.as_bytes())?;
    s.shutdown(Shutdown::Write)?;
    let mut got = String::new();
    s.read_to_string(&mut got)?;
    Ok(got)
}

/// The kernel's UDP echo client: sends `line` until an answer comes (3 tries, 1 s each).
fn udp_echo(to: SocketAddr, line: &str) -> std::io::Result<String> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
    s.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut buf = [0u8; 2048];
    let mut last = None;
    for _ in 0..3 {
        s.send_to(line.as_bytes(), to)?;
        match s.recv_from(&mut buf) {
            Ok((n, from)) if from == to => {
                return Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
            }
            Ok(_) => {}
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no answer from the echo service")))
}

/// The page the demo's HTTP server answers with.
const INDEX: &str = "<!DOCTYPE html>\n<html><body><h1>Hello from ustack</h1>\n\
    <p>This page crossed a userspace TCP/IP stack.</p></body></html>\n";

/// HTTP on port 80 (a temporary directory with one index.html), TCP and UDP echo on
/// port 7, each on its own thread over the socket API, until [`Services::stop`].
struct Services {
    stop: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
    site: PathBuf,
}

impl Services {
    fn start(stack: &NetStack) -> Result<Services, Box<dyn std::error::Error>> {
        let tick = Some(Duration::from_millis(100));
        let stop = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicUsize::new(0));
        let site = std::env::temp_dir().join(format!("ustack-demo-site-{}", std::process::id()));
        std::fs::create_dir_all(&site)?;
        std::fs::write(site.join("index.html"), INDEX)?;
        let mut threads = Vec::new();

        // Dual stack (`[::]`, IPV6_V6ONLY off as on Linux): IPv4 clients arrive as
        // `::ffff:a.b.c.d`, IPv6 clients as themselves.
        let http = TcpListener::bind(stack, "[::]:80")?;
        stack.setsockopt(http.fd(), SockOpt::RcvTimeo(tick))?;
        let (root, s, a) = (Arc::new(site.clone()), stop.clone(), active.clone());
        threads.push(std::thread::spawn(move || {
            super::http::serve_loop(&http, &root, &s, &a, false)
        }));

        let echo = TcpListener::bind(stack, "0.0.0.0:7")?;
        stack.setsockopt(echo.fd(), SockOpt::RcvTimeo(tick))?;
        let s = stop.clone();
        threads.push(std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((conn, _)) = echo.accept() else {
                    continue;
                };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                // Small exchanges only: echo inline until the peer's FIN.
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = (&conn).read(&mut buf) {
                    if (&conn).write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = conn.shutdown(Shutdown::Write);
            }
        }));

        let udp = UdpSocket::bind(stack, "0.0.0.0:7")?;
        udp.set_read_timeout(tick)?;
        let s = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                if let Ok((n, from)) = udp.recv_from(&mut buf) {
                    let _ = udp.send_to(&buf[..n], from);
                }
            }
        }));
        Ok(Services {
            stop,
            active,
            threads,
            site,
        })
    }

    /// Stops the services and waits for their threads (and open connections, briefly).
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while self.active.load(Ordering::Relaxed) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&self.site);
    }
}
