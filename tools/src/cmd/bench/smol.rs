//! The smoltcp 0.14 servers of `ustack bench`: `phy::TunTapInterface` on the same TAP,
//! with smoltcp's own driving model — one thread polls the interface, serves its
//! sockets, and sleeps in `phy::wait` until the device is readable or the next timer —
//! as its `benchmark` and `server` examples do.
//!
//! smoltcp has no accept: a connection lands on a socket that was listening. Servers
//! that take several connections keep a pool of listening sockets and re-arm each one
//! when it closes (from TIME-WAIT too, as smoltcp's `server` example does). Socket
//! buffers are the sizes ustack's sockets get by default, so both stacks advertise the
//! same windows.

use super::pattern::{self, Pattern};
use super::serve::{say, stopped, vm_rss_kib, ServeArgs, Test, TICK};
use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{wait as phy_wait, Medium, TunTapInterface};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use std::os::unix::io::AsRawFd;
use ustack::wire::Ipv4Cidr;

/// Listening sockets kept armed for the serial connection test.
pub const POOL: usize = 16;

fn new_socket() -> tcp::Socket<'static> {
    let cfg = ustack::socket::tcp::TcpConfig::default();
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; cfg.rx_buffer_len]),
        tcp::SocketBuffer::new(vec![0; cfg.tx_buffer_len]),
    );
    s.set_nagle_enabled(false);
    s
}

/// One server's progress, advanced after every poll.
enum Job {
    BulkRx {
        h: SocketHandle,
        off: u64,
        ok: bool,
        seen: bool,
        replied: bool,
    },
    BulkTx {
        h: SocketHandle,
        off: u64,
        closed: bool,
        pat: Pattern,
    },
    Rr {
        h: SocketHandle,
        n: u64,
        seen: bool,
        closed: bool,
    },
    Conn {
        pool: Vec<(SocketHandle, bool)>,
        n: u64,
    },
    Concurrent {
        socks: Vec<(SocketHandle, bool)>,
        first_open: usize,
        n: usize,
        rss0: u64,
        reported: bool,
    },
}

/// Serves `args.test` on the TAP `tap` as `ip`/`mac` until the coordinator stops it;
/// returns what was served.
///
/// # Errors
/// The TAP could not be opened, or the transfer went wrong.
pub fn serve(
    tap: &str,
    ip: Ipv4Cidr,
    mac: ustack::wire::EthernetAddress,
    args: &ServeArgs,
) -> Result<u64, String> {
    let mut dev =
        TunTapInterface::new(tap, Medium::Ethernet).map_err(|e| format!("TAP {tap}: {e}"))?;
    let fd = dev.as_raw_fd();
    let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac.0)));
    config.random_seed = 1;
    let mut iface = Interface::new(config, &mut dev, Instant::now());
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::new(IpAddress::Ipv4(ip.address()), ip.prefix_len()));
    });
    let mut sockets = SocketSet::new(Vec::new());
    let rss0 = vm_rss_kib();
    let listen = |sockets: &mut SocketSet<'static>| -> Result<SocketHandle, String> {
        let h = sockets.add(new_socket());
        sockets
            .get_mut::<tcp::Socket>(h)
            .listen(args.port)
            .map_err(|e| format!("listen: {e}"))?;
        Ok(h)
    };
    let mut job = match args.test {
        Test::BulkRx => Job::BulkRx {
            h: listen(&mut sockets)?,
            off: 0,
            ok: true,
            seen: false,
            replied: false,
        },
        Test::BulkTx => Job::BulkTx {
            h: listen(&mut sockets)?,
            off: 0,
            closed: false,
            pat: Pattern::new(),
        },
        Test::Rr => Job::Rr {
            h: listen(&mut sockets)?,
            n: 0,
            seen: false,
            closed: false,
        },
        Test::Conn => Job::Conn {
            pool: (0..POOL)
                .map(|_| listen(&mut sockets).map(|h| (h, false)))
                .collect::<Result<_, _>>()?,
            n: 0,
        },
        Test::Concurrent => Job::Concurrent {
            socks: (0..args.conns)
                .map(|_| listen(&mut sockets).map(|h| (h, false)))
                .collect::<Result<_, _>>()?,
            first_open: 0,
            n: 0,
            rss0,
            reported: false,
        },
    };
    say("ready");
    let mut scratch = vec![0u8; 64];
    loop {
        let now = Instant::now();
        let changed = iface.poll(now, &mut dev, &mut sockets) == PollResult::SocketStateChanged;
        let busy = step(&mut job, &mut sockets, args, &mut scratch, changed)?;
        if stopped() {
            break;
        }
        let delay = if busy {
            Duration::ZERO
        } else {
            let cap = Duration::from_micros(TICK.as_micros() as u64);
            iface.poll_delay(now, &sockets).map_or(cap, |d| d.min(cap))
        };
        phy_wait(fd, Some(delay)).map_err(|e| format!("wait: {e}"))?;
    }
    finish(&job, args)
}

/// Advances the job after a poll (`changed`: the poll says socket states may have
/// changed); true when it queued output (poll again at once).
fn step(
    job: &mut Job,
    sockets: &mut SocketSet<'static>,
    args: &ServeArgs,
    scratch: &mut [u8],
    changed: bool,
) -> Result<bool, String> {
    let mut busy = false;
    match job {
        Job::BulkRx {
            h,
            off,
            ok,
            seen,
            replied,
        } => {
            let s = sockets.get_mut::<tcp::Socket>(*h);
            *seen |= s.is_active();
            while s.can_recv() {
                let n = s
                    .recv(|buf| {
                        *ok &= pattern::check(*off, buf);
                        (buf.len(), buf.len())
                    })
                    .map_err(|e| format!("recv: {e}"))?;
                *off += n as u64;
            }
            if *seen && !*replied && !s.may_recv() && s.state() == tcp::State::CloseWait {
                let mut verdict = [0u8; 9];
                verdict[..8].copy_from_slice(&off.to_le_bytes());
                verdict[8] = u8::from(*ok);
                s.send_slice(&verdict).map_err(|e| format!("send: {e}"))?;
                s.close();
                *replied = true;
                busy = true;
            }
        }
        Job::BulkTx {
            h,
            off,
            closed,
            pat,
        } => {
            let s = sockets.get_mut::<tcp::Socket>(*h);
            while s.can_send() && *off < args.size {
                let n = s
                    .send(|buf| {
                        let src = pat.slice(*off, (args.size - *off).min(buf.len() as u64));
                        buf[..src.len()].copy_from_slice(src);
                        (src.len(), src.len())
                    })
                    .map_err(|e| format!("send: {e}"))?;
                *off += n as u64;
                busy = true;
            }
            if *off == args.size && !*closed && s.may_send() {
                s.close();
                *closed = true;
                busy = true;
            }
        }
        Job::Rr { h, n, seen, closed } => {
            let s = sockets.get_mut::<tcp::Socket>(*h);
            *seen |= s.is_active();
            while s.can_recv() {
                let got = s
                    .recv_slice(&mut scratch[..32])
                    .map_err(|e| format!("recv: {e}"))?;
                if got == 0 {
                    break;
                }
                let mut out = [0u8; 64];
                for (i, &b) in scratch[..got].iter().enumerate() {
                    out[2 * i] = b;
                    out[2 * i + 1] = !b;
                }
                let sent = s
                    .send_slice(&out[..2 * got])
                    .map_err(|e| format!("send: {e}"))?;
                if sent != 2 * got {
                    return Err("send buffer full in request/response".into());
                }
                *n += got as u64;
                busy = true;
            }
            if *seen && !*closed && !s.may_recv() && s.state() == tcp::State::CloseWait {
                s.close();
                *closed = true;
                busy = true;
            }
        }
        Job::Conn { pool, n } => {
            for (h, greeted) in pool.iter_mut() {
                let s = sockets.get_mut::<tcp::Socket>(*h);
                if !s.is_open() {
                    s.listen(args.port).map_err(|e| format!("listen: {e}"))?;
                    *greeted = false;
                }
                if !*greeted && s.may_send() {
                    s.send_slice(b"hello\n").map_err(|e| format!("send: {e}"))?;
                    s.close();
                    *greeted = true;
                    *n += 1;
                    busy = true;
                }
            }
        }
        Job::Concurrent {
            socks,
            first_open,
            n,
            rss0,
            reported,
        } => {
            // Scanning thousands of sockets is the application's cost in smoltcp's
            // model; skip it when the poll says nothing changed, as its docs allow.
            if !changed {
                return Ok(false);
            }
            for (h, greeted) in socks[*first_open..].iter_mut() {
                if *greeted {
                    continue;
                }
                let s = sockets.get_mut::<tcp::Socket>(*h);
                if s.may_send() {
                    s.send_slice(b"+").map_err(|e| format!("send: {e}"))?;
                    *greeted = true;
                    *n += 1;
                    busy = true;
                }
            }
            while socks.get(*first_open).is_some_and(|(_, g)| *g) {
                *first_open += 1;
            }
            if *n == args.conns && !*reported {
                say(&format!("accepted {n} {rss0} {}", vm_rss_kib()));
                *reported = true;
            }
        }
    }
    Ok(busy)
}

/// The count to report once stopped, or why the job is incomplete.
fn finish(job: &Job, args: &ServeArgs) -> Result<u64, String> {
    match job {
        Job::BulkRx { off, ok, .. } => {
            if !ok {
                Err("broken byte pattern".into())
            } else {
                Ok(*off)
            }
        }
        Job::BulkTx { off, .. } => Ok(*off),
        Job::Rr { n, .. } => Ok(*n),
        Job::Conn { n, .. } => Ok(*n),
        Job::Concurrent { n, .. } => {
            if *n == args.conns {
                Ok(*n as u64)
            } else {
                Err(format!("{n} of {} connections established", args.conns))
            }
        }
    }
}
