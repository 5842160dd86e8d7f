//! `ustack dns`: one DNS query (RFC 1035) over a ustack `UdpSocket`, the answer printed
//! one record a line (`NAME. TTL IN A a.b.c.d`, CNAME chains in order). Building and
//! parsing live in [`message`] (pure functions on bytes, used by this command only);
//! this file does the socket and the printing.
//!
//! Exit code 0 when the answer holds a record of the asked type; 1 on NXDOMAIN,
//! SERVFAIL and the other error codes, an answer without such a record, no answer
//! after the retries, or a malformed answer.

pub mod message;

use super::net;
use super::CmdResult;
use crate::global::GlobalArgs;
use clap::Args;
use message::Name;
use std::io::{self, Write};
use std::time::{Duration, Instant};
use ustack_socket::UdpSocket;

/// Examples for `ustack dns --help`.
pub const AFTER_HELP: &str = "Examples:\n  \
    # a resolver at 10.77.0.1 inside the namespace you created:\n  \
    sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 dns www.example.test @10.77.0.1\n  \
    sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 dns example.test @10.77.0.1 --type TXT --port 5353\n  \
    # AAAA records, from a server reached over IPv6:\n  \
    sudo ip netns exec NS ustack --tap tap0 dns www.example.test @fd00::1 --type AAAA\n\n\
    Output: one answer record a line, `NAME. TTL IN TYPE DATA`, the CNAME chain first.\n\
    Exit code 1 on NXDOMAIN/SERVFAIL/other errors, no record of the type, or no answer.";

/// Tries in all: the first query and two retries.
const TRIES: u32 = 3;

/// Options of `ustack dns`.
#[derive(Debug, Args)]
pub struct DnsArgs {
    /// The name to look up.
    pub name: String,
    /// The server's IPv4 or IPv6 address, as @ADDR (dig's form; `@fe80::1%tap0` for a
    /// link-local one).
    #[arg(value_name = "@SERVER")]
    pub server: String,
    /// Record type: A, AAAA, CNAME, MX, NS, PTR, SOA, TXT, SRV, ANY or TYPEnnn.
    #[arg(long = "type", short = 't', value_name = "TYPE", default_value = "A")]
    pub qtype: String,
    /// The server's UDP port.
    #[arg(long, short = 'p', default_value_t = 53)]
    pub port: u16,
    /// Seconds to wait for an answer before each of the two retries.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub timeout: f64,
}

/// Runs `ustack dns`.
pub fn run(global: &GlobalArgs, args: &DnsArgs) -> CmdResult {
    let server = args.server.strip_prefix('@').unwrap_or(&args.server);
    let to = net::host_addr(server, args.port).map_err(|_| {
        format!(
            "`{}` is not @IPV4 or @IPV6: the server must be an address",
            args.server
        )
    })?;
    let qtype = message::parse_type(&args.qtype)?;
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        return Err("--timeout must be positive".into());
    }
    let name = Name::from_text(&args.name)?;
    let id = message::query_id(global.seed);
    let query = message::build_query(id, &args.name, qtype)?;

    let stack = net::stack(global, "dns")?;

    let watch = net::watch(global, &stack)?;
    // A socket of the server's family.
    let local = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
    let sock = UdpSocket::bind(&stack, local)?;
    net::await_source(&stack, to);
    let timeout = Duration::from_secs_f64(args.timeout);
    let mut buf = vec![0u8; 65_536];
    let mut answer = None;
    'tries: for attempt in 1..=TRIES {
        let t0 = Instant::now();
        sock.send_to(&query, to)?;
        let deadline = t0 + timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                if attempt < TRIES {
                    eprintln!(
                        "ustack: no answer from {to} in {:.1} s, retrying",
                        args.timeout
                    );
                }
                break;
            }
            sock.set_read_timeout(Some(deadline - now))?;
            let (n, from) = match sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(format!("{to}: port unreachable (no DNS server there)").into())
                }
                Err(e) => return Err(e.into()),
            };
            // The scope id is the stack's own; the address and port say who answered.
            if (from.ip(), from.port()) != (to.ip(), to.port()) {
                log::debug!("dns: ignoring {n} bytes from {from}");
                continue;
            }
            // Only a datagram with our id can fail the lookup; others are ignored.
            match message::Header::parse(&buf[..n]) {
                Ok(h) if h.id == id && h.response => {}
                _ => {
                    log::debug!("dns: ignoring {n} bytes from {from}: not our answer");
                    continue;
                }
            }
            let msg = message::parse_message(&buf[..n])
                .map_err(|e| format!("malformed answer from {to}: {e}"))?;
            if let Err(why) = msg.answers_query(id, &name, qtype) {
                log::debug!("dns: ignoring answer from {from}: {why}");
                continue;
            }
            answer = Some((msg, t0.elapsed()));
            break 'tries;
        }
    }
    drop(sock);
    drop(watch);
    drop(stack);
    net::report_pcap(global);
    let Some((msg, rtt)) = answer else {
        return Err(format!("no answer from {to} after {TRIES} tries").into());
    };
    let h = &msg.header;
    eprintln!(
        "ustack: answer from {to} in {:.1} ms: id {id:#06x}, {}{}{}, {} answer{}",
        rtt.as_secs_f64() * 1e3,
        message::rcode_name(h.rcode),
        if h.authoritative { ", aa" } else { "" },
        if h.recursion_available { ", ra" } else { "" },
        msg.answers.len(),
        if msg.answers.len() == 1 { "" } else { "s" },
    );
    if h.truncated {
        eprintln!("ustack: the answer is truncated (TC); ustack dns does not retry over TCP");
    }
    if h.rcode != 0 {
        eprintln!("ustack: {name}: {}", message::rcode_name(h.rcode));
        return Ok(1);
    }
    // ANY: every answer as it came; otherwise the chain from the name to the type.
    let chain: Vec<&message::Record> = if qtype == message::TYPE_ANY {
        msg.answers.iter().collect()
    } else {
        msg.chain(&name, qtype)
    };
    let mut out = io::stdout().lock();
    for r in &chain {
        writeln!(out, "{r}")?;
    }
    out.flush()?;
    let found = if qtype == message::TYPE_ANY {
        !chain.is_empty()
    } else {
        chain.last().is_some_and(|r| r.rtype == qtype)
    };
    if !found {
        eprintln!("ustack: {name}: no {} record", message::type_name(qtype));
        return Ok(1);
    }
    Ok(0)
}
