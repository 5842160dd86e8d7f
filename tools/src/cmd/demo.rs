//! `ustack demo`: the stack against the Linux kernel in a private namespace.
//!
//! Everything happens inside a namespace this process creates (`ustack-demo-PID-...`):
//! a TAP `tap0` with the kernel at 10.77.0.1/24, the stack at 10.77.0.2/24 on a thread
//! that entered the namespace, and the kernel's `ping` run there with `ip netns exec`.
//! The namespace is removed on every exit path: the guard's `Drop` (normal return,
//! errors, panics) and the signal thread (Ctrl-C/SIGTERM), which deletes it and exits.

use super::CmdResult;
use crate::cli::GlobalArgs;
use std::fs::File;
use std::io::BufWriter;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use ustack::iface::Interface;
use ustack::link::{PcapReader, PcapTimestamps, PcapWriter};
use ustack::wire::{EthernetAddress, Ipv4Cidr};
use ustack_tools::driver::{self, Clock, LinkSpec, StackThread};
use ustack_tools::netns::{self, Netns};

const TAP: &str = "tap0";
const KERNEL_CIDR: &str = "10.77.0.1/24";
const STACK_IP: &str = "10.77.0.2";

/// Runs the demo; exit code 0 when every ping was answered.
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
    if !netns::have_privileges() {
        return Err(
            "the demo creates a network namespace and a TAP: run it as root \
                    (CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN) with iproute2 installed"
                .into(),
        );
    }
    let pcap_path = args
        .pcap
        .clone()
        .unwrap_or_else(|| PathBuf::from("ustack-demo.pcap"));
    let mac = args.mac.unwrap_or_else(|| driver::mac_from_seed(args.seed));
    let ip: Ipv4Cidr = format!("{STACK_IP}/24").parse().expect("constant cidr");

    let ns = Netns::new("ustack-demo")?;
    println!("== namespace {} (removed at exit)", ns.name());
    ns.add_tap(TAP, KERNEL_CIDR)?;
    if args.mtu != 1500 {
        ns.ip(&["link", "set", TAP, "mtu", &args.mtu.to_string()])?;
    }
    println!("== kernel: {TAP} {KERNEL_CIDR}   stack: {ip} {mac}");

    let clock = Clock::start();
    let os_link = ns.run_in(|| LinkSpec::Tap(TAP.into()).open())??;
    let fd = os_link.as_raw_fd();
    let file = File::create(&pcap_path).map_err(|e| format!("{}: {e}", pcap_path.display()))?;
    let link = PcapWriter::new(
        os_link,
        BufWriter::new(file),
        clock.epoch_unix_micros(),
        PcapTimestamps::Micros,
    )?;
    let config = driver::iface_config(mac, ip, None, args.mtu.into(), args.seed);
    let stack = StackThread::spawn(
        Interface::new(config, clock.now()),
        Box::new(link),
        fd,
        clock,
    )?;

    let mut all_ok = true;
    for (title, cmd) in [
        (
            "ping, 3 x 56 bytes",
            vec!["ping", "-c", "3", "-i", "0.2", "-W", "1", STACK_IP],
        ),
        (
            "ping, 2 x 3000 bytes (fragmented both ways)",
            vec![
                "ping", "-c", "2", "-i", "0.2", "-W", "1", "-s", "3000", STACK_IP,
            ],
        ),
    ] {
        println!("\n== {title}: {}", cmd.join(" "));
        let out = ns.exec(&cmd)?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        all_ok &= out.status.success();
    }
    let neigh = ns.exec(&["ip", "neigh", "show", "dev", TAP])?;
    println!(
        "\n== kernel neighbour table: {}",
        String::from_utf8_lossy(&neigh.stdout).trim()
    );

    let report = stack.stop()?;
    println!(
        "\n== stack link counters: rx {} frames / {} bytes, tx {} frames / {} bytes",
        report.link.rx_frames, report.link.rx_bytes, report.link.tx_frames, report.link.tx_bytes
    );
    print!(
        "== stack interface counters:\n{}",
        driver::format_counters(&report.iface)
    );
    print_trace(&pcap_path, mac)?;
    println!(
        "\n== pcap written to {} (try: tshark -r {} -V)",
        pcap_path.display(),
        pcap_path.display()
    );
    drop(ns);
    if !all_ok {
        println!("== some pings were not answered");
        return Ok(1);
    }
    Ok(0)
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
        println!(
            "{:4} {:>10.6}s  {dir}  {eth:<52} | {}",
            i + 1,
            (t - t0) as f64 / 1e6,
            ustack::wire::pretty::summarize(frame)
        );
    }
    Ok(())
}
