//! `ustack ping`: ICMP echo (RFC 792) from the stack over a raw ICMP socket, or, to an
//! IPv6 address, ICMPv6 echo (RFC 4443 §4) sent and collected through the interface,
//! with Linux ping's output: one line per reply, then the statistics. Exit code 0 when
//! at least one reply came, 1 otherwise.

use super::net;
use super::CmdResult;
use crate::global::GlobalArgs;
use clap::Args;
use core::net::Ipv6Addr;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ustack::iface::AddrState;
use ustack::wire::{IcmpRepr, Ipv4Repr};
use ustack_socket::RawSocket;

/// Options of `ustack ping`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 ping 10.77.0.1 -c 3\n  \
    sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 ping 10.77.0.1 -c 5 -s 3000 -i 0.2\n  \
    sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 --ip fd00:77::2/64 ping fd00:77::1 -c 3 -s 3000")]
pub struct PingArgs {
    /// The IPv4 or IPv6 address to ping (a link-local IPv6 address may carry a
    /// `%scope`, which is ignored: the stack has one link).
    pub host: String,
    /// Stop after N requests [default: until Ctrl-C].
    #[arg(short, value_name = "N")]
    pub count: Option<u32>,
    /// Payload bytes per request (above the MTU the request is fragmented).
    #[arg(short, value_name = "SIZE", default_value_t = 56,
          value_parser = clap::value_parser!(u16).range(0..=65_507))]
    pub size: u16,
    /// Seconds between requests.
    #[arg(short, value_name = "INTERVAL", default_value_t = 1.0)]
    pub interval: f64,
    /// Seconds to wait for each reply.
    #[arg(short = 'W', value_name = "TIMEOUT", default_value_t = 1.0)]
    pub timeout: f64,
}

/// Runs `ustack ping`.
pub fn run(global: &GlobalArgs, args: &PingArgs) -> CmdResult {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    ustack_tools::signals::handle_with(move |_| stop2.store(true, Ordering::Relaxed))?;
    if !(args.interval > 0.0 && args.timeout > 0.0) {
        return Err("-i and -W must be positive".into());
    }
    let v6 = args.host.split('%').next().unwrap_or_default();
    if let Ok(dst) = v6.parse::<Ipv6Addr>() {
        return run6(global, args, dst, &stop);
    }
    let dst = net::ipv4_host(&args.host)?;
    let stack = net::stack(global, "ping")?;
    let watch = net::watch(global, &stack)?;
    let sock = RawSocket::new(&stack, 1)?;
    let ident = (std::process::id() as u16) ^ 0x5a5a;
    let size = usize::from(args.size);
    let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut buf = vec![0u8; 65_536];
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "PING {dst} ({dst}) {size}({}) bytes of data.",
        size + 28
    )?;
    let started = Instant::now();
    let (mut sent, mut received) = (0u32, 0u32);
    let mut rtts: Vec<f64> = Vec::new();
    let mut seq: u16 = 0;
    while !stop.load(Ordering::Relaxed) && args.count.is_none_or(|c| sent < c) {
        seq = seq.wrapping_add(1);
        let req = IcmpRepr::EchoRequest {
            ident,
            seq_no: seq,
            data: &payload,
        };
        let mut msg = vec![0u8; req.buffer_len()];
        req.emit(&mut msg);
        let t0 = Instant::now();
        sock.send_to(&msg, dst)?;
        sent += 1;
        let reply_by = t0 + Duration::from_secs_f64(args.timeout);
        let next = t0 + Duration::from_secs_f64(args.interval);
        let last = args.count.is_some_and(|c| sent >= c);
        // Wait for this reply until the timeout; leave early for the next request only
        // once it has come.
        loop {
            let now = Instant::now();
            if now >= reply_by || stop.load(Ordering::Relaxed) {
                break;
            }
            sock.set_read_timeout(Some((reply_by - now).min(Duration::from_millis(200))))?;
            let (n, from) = match sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            };
            let Ok((ip, icmp)) = Ipv4Repr::parse(&buf[..n]) else {
                continue;
            };
            match IcmpRepr::parse(icmp) {
                Ok(IcmpRepr::EchoReply {
                    ident: i,
                    seq_no,
                    data,
                }) if i == ident && seq_no == seq => {
                    let ms = t0.elapsed().as_secs_f64() * 1e3;
                    received += 1;
                    rtts.push(ms);
                    let wrong = if data == &payload[..] {
                        ""
                    } else {
                        " (wrong data)"
                    };
                    writeln!(
                        out,
                        "{} bytes from {from}: icmp_seq={seq} ttl={} time={}{wrong}",
                        data.len() + 8,
                        ip.ttl,
                        fmt_ms(ms)
                    )?;
                    out.flush()?;
                    break;
                }
                Ok(IcmpRepr::DstUnreachable { .. }) => {
                    writeln!(out, "From {from} icmp_seq={seq} Destination Unreachable")?;
                    break;
                }
                _ => {}
            }
        }
        if last {
            break;
        }
        while Instant::now() < next && !stop.load(Ordering::Relaxed) {
            std::thread::sleep((next - Instant::now()).min(Duration::from_millis(100)));
        }
    }
    summary(
        &mut out,
        &dst.to_string(),
        sent,
        received,
        started.elapsed().as_millis(),
        &rtts,
    )?;
    out.flush()?;
    drop(sock);
    drop(watch);
    drop(stack);
    net::report_pcap(global);
    Ok(if received == 0 { 1 } else { 0 })
}

/// `ustack ping` to an IPv6 address, with ping6's output (`56 data bytes`, hop limit
/// as `ttl=`).
fn run6(global: &GlobalArgs, args: &PingArgs, dst: Ipv6Addr, stop: &AtomicBool) -> CmdResult {
    let stack = net::stack(global, "ping")?;
    let watch = net::watch(global, &stack)?;
    // DAD (RFC 4862 §5.4) keeps new addresses tentative for about a second.
    let ready_by = Instant::now() + Duration::from_secs(3);
    while Instant::now() < ready_by
        && !stack.with_interface(|i, _| {
            let a = i.ipv6_addrs();
            !a.is_empty() && a.iter().all(|a| a.state != AddrState::Tentative)
        })
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let ident = (std::process::id() as u16) ^ 0x6a6a;
    let size = usize::from(args.size);
    let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut out = io::stdout().lock();
    writeln!(out, "PING {dst}({dst}) {size} data bytes")?;
    let started = Instant::now();
    let (mut sent, mut received) = (0u32, 0u32);
    let mut rtts: Vec<f64> = Vec::new();
    let mut seq: u16 = 0;
    while !stop.load(Ordering::Relaxed) && args.count.is_none_or(|c| sent < c) {
        seq = seq.wrapping_add(1);
        let t0 = Instant::now();
        if let Err(e) =
            stack.with_interface(|i, now| i.send_echo_request(now, dst, ident, seq, &payload))
        {
            writeln!(out, "ping: sendmsg: {e}")?;
        }
        sent += 1;
        let reply_by = t0 + Duration::from_secs_f64(args.timeout);
        let next = t0 + Duration::from_secs_f64(args.interval);
        let last = args.count.is_some_and(|c| sent >= c);
        'wait: while Instant::now() < reply_by && !stop.load(Ordering::Relaxed) {
            let replies: Vec<_> =
                stack.with_interface(|i, _| std::iter::from_fn(|| i.poll_echo_reply()).collect());
            for r in replies {
                if r.from == core::net::IpAddr::V6(dst) && r.ident == ident && r.seq_no == seq {
                    let ms = t0.elapsed().as_secs_f64() * 1e3;
                    received += 1;
                    rtts.push(ms);
                    let wrong = if r.data == payload {
                        ""
                    } else {
                        " (wrong data)"
                    };
                    writeln!(
                        out,
                        "{} bytes from {}: icmp_seq={seq} ttl={} time={}{wrong}",
                        r.data.len() + 8,
                        r.from,
                        r.ttl,
                        fmt_ms(ms)
                    )?;
                    out.flush()?;
                    break 'wait;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if last {
            break;
        }
        while Instant::now() < next && !stop.load(Ordering::Relaxed) {
            std::thread::sleep((next - Instant::now()).min(Duration::from_millis(100)));
        }
    }
    summary(
        &mut out,
        &dst.to_string(),
        sent,
        received,
        started.elapsed().as_millis(),
        &rtts,
    )?;
    out.flush()?;
    drop(watch);
    drop(stack);
    net::report_pcap(global);
    Ok(if received == 0 { 1 } else { 0 })
}

/// Times as iputils prints them: three significant digits below 100 ms.
fn fmt_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.3} ms")
    } else if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn fmt_loss(loss: f64) -> String {
    if loss.fract() == 0.0 {
        format!("{loss:.0}")
    } else {
        format!("{loss:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

/// The closing lines, as iputils prints them: counts, loss, time and the RTT summary
/// (mdev = sqrt(mean(x²) − mean(x)²)).
fn summary(
    out: &mut impl Write,
    dst: &str,
    sent: u32,
    received: u32,
    elapsed: u128,
    rtts: &[f64],
) -> io::Result<()> {
    let loss = if sent == 0 {
        0.0
    } else {
        100.0 * f64::from(sent - received) / f64::from(sent)
    };
    writeln!(out, "\n--- {dst} ping statistics ---")?;
    writeln!(
        out,
        "{sent} packets transmitted, {received} received, {}% packet loss, time {elapsed}ms",
        fmt_loss(loss)
    )?;
    if !rtts.is_empty() {
        let n = rtts.len() as f64;
        let min = rtts.iter().copied().fold(f64::INFINITY, f64::min);
        let max = rtts.iter().copied().fold(0.0, f64::max);
        let avg = rtts.iter().sum::<f64>() / n;
        let mdev = (rtts.iter().map(|x| x * x).sum::<f64>() / n - avg * avg)
            .max(0.0)
            .sqrt();
        writeln!(
            out,
            "rtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{mdev:.3} ms"
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_like_iputils() {
        assert_eq!(fmt_ms(0.0456), "0.046 ms");
        assert_eq!(fmt_ms(12.345), "12.3 ms");
        assert_eq!(fmt_loss(0.0), "0");
        assert_eq!(fmt_loss(100.0), "100");
        assert_eq!(fmt_loss(100.0 / 3.0), "33.3333");
    }
}
