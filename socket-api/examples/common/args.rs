//! Shared argument handling for the examples (plain `std::env::args`).
//!
//! Stack flags: `--tap NAME` or `--af-packet IFNAME` (one is required), `--ip
//! ADDR/PREFIX` (required), `--gw ADDR`, `--mtu N`, `--pcap FILE`. Everything else is
//! left for the example.
#![allow(dead_code)]

use std::collections::HashMap;
use ustack_socket::NetStack;

/// The stack built from the flags, and the example's own flags.
pub struct Args {
    pub stack: NetStack,
    flags: HashMap<String, String>,
    switches: Vec<String>,
}

impl Args {
    /// A flag's value, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.flags.get(name).map(String::as_str)
    }

    /// A flag's value or a default.
    pub fn get_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.get(name).unwrap_or(default)
    }

    /// Whether a switch without a value was given.
    pub fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }
}

fn usage(extra: &str) -> ! {
    eprintln!(
        "usage: {} (--tap NAME | --af-packet IF) --ip ADDR/PREFIX [--gw ADDR] [--mtu N] [--pcap FILE] {extra}",
        std::env::args().next().unwrap_or_default()
    );
    std::process::exit(2)
}

/// Parses the command line; `switches` are flags that take no value.
pub fn parse(extra_usage: &str, switches: &[&str]) -> Args {
    let mut flags = HashMap::new();
    let mut on = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "-h" || a == "--help" {
            usage(extra_usage);
        }
        if !a.starts_with("--") {
            usage(extra_usage);
        }
        if switches.contains(&a.as_str()) {
            on.push(a);
            continue;
        }
        let Some(v) = it.next() else {
            usage(extra_usage)
        };
        flags.insert(a, v);
    }
    let mut b = NetStack::builder();
    b = match (flags.remove("--tap"), flags.remove("--af-packet")) {
        (Some(t), None) => b.tap(&t),
        (None, Some(i)) => b.af_packet(&i),
        _ => usage(extra_usage),
    };
    let Some(ip) = flags.remove("--ip").and_then(|s| s.parse().ok()) else {
        usage(extra_usage)
    };
    b = b.ip(ip);
    if let Some(gw) = flags.remove("--gw") {
        b = b.gateway(gw.parse().unwrap_or_else(|_| usage(extra_usage)));
    }
    if let Some(mtu) = flags.remove("--mtu") {
        b = b.mtu(mtu.parse().unwrap_or_else(|_| usage(extra_usage)));
    }
    if let Some(p) = flags.remove("--pcap") {
        b = b.pcap(p);
    }
    let stack = b.build().unwrap_or_else(|e| {
        eprintln!("cannot start the stack: {e}");
        std::process::exit(1)
    });
    Args {
        stack,
        flags,
        switches: on,
    }
}
