//! A stack's settings carried in environment variables, from `ustack run` to the
//! LD_PRELOAD library in the program it starts: the link, address, gateway, MAC, MTU,
//! recording, seed and every fault, so the flags mean what they mean for every other
//! `ustack` command. [`StackEnv::to_vars`] writes them, [`StackEnv::from_env`] reads
//! them back (and reports a malformed value instead of guessing).
//!
//! Faults travel as one variable, `USTACK_FAULTS`: `;`-separated `DIR.FIELD=VALUE`
//! items (`rx.loss=0.05;tx.loss=0.05`), durations in microseconds.

use crate::link::{LinkOptions, Offload};
use core::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use ustack::link::fault::GilbertElliott;
use ustack::link::{FaultConfig, Faults};
use ustack::time::Duration;
use ustack::wire::{EthernetAddress, Ipv4Cidr, Ipv6Cidr};

/// TAP device to attach to.
pub const TAP: &str = "USTACK_TAP";
/// Interface to attach to through AF_PACKET.
pub const RAW: &str = "USTACK_RAW";
/// Address and prefix (`10.77.0.2/24`).
pub const IP: &str = "USTACK_IP";
/// Default gateway.
pub const GATEWAY: &str = "USTACK_GATEWAY";
/// IPv6 addresses with prefixes, comma-separated (`fd00::2/64,2001:db8::2/64`).
pub const IP6: &str = "USTACK_IP6";
/// Default IPv6 router.
pub const GATEWAY6: &str = "USTACK_GATEWAY6";
/// `0` turns IPv6 off (it is on by default under `ustack run`).
pub const IPV6: &str = "USTACK_IPV6";
/// MAC address.
pub const MAC: &str = "USTACK_MAC";
/// IP MTU.
pub const MTU: &str = "USTACK_MTU";
/// Recording file (pcap, or annotated pcapng).
pub const PCAP: &str = "USTACK_PCAP";
/// Seed of every random choice.
pub const SEED: &str = "USTACK_SEED";
/// Faults, encoded as the module docs say.
pub const FAULTS: &str = "USTACK_FAULTS";
/// `--offload`: `off` opens the device without checksum and segmentation offloads.
pub const OFFLOAD: &str = "USTACK_OFFLOAD";

/// SO_BUSY_POLL of every new socket, in microseconds (`0`: off, the default), as
/// Linux's `net.core.busy_read`. Not in [`ALL`]: `ustack run` has no flag for it, so a
/// value in its environment passes through to the program.
pub const BUSY_POLL: &str = "USTACK_BUSY_POLL";

/// `--trace`: TCP events as lines on stderr (`1`).
pub const TRACE: &str = "USTACK_TRACE";
/// `--trace-file`: TCP events and samples as JSON lines in this file.
pub const TRACE_FILE: &str = "USTACK_TRACE_FILE";
/// `--trace-every`: sampling period of the trace file, in milliseconds.
pub const TRACE_EVERY: &str = "USTACK_TRACE_EVERY";
/// `--stats`: the counters and TCP sockets at exit, on stderr (`text` or `json`).
pub const STATS: &str = "USTACK_STATS";

/// Every variable of a stack's settings (this module's, and the observation ones the
/// preload library reads itself).
pub const ALL: [&str; 17] = [
    TAP,
    RAW,
    IP,
    IP6,
    GATEWAY6,
    IPV6,
    GATEWAY,
    MAC,
    MTU,
    PCAP,
    SEED,
    FAULTS,
    OFFLOAD,
    TRACE,
    TRACE_FILE,
    TRACE_EVERY,
    STATS,
];

/// A stack's settings, as carried in the environment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StackEnv {
    /// TAP device name.
    pub tap: Option<String>,
    /// AF_PACKET interface name.
    pub raw: Option<String>,
    /// Address and prefix.
    pub ip: Option<Ipv4Cidr>,
    /// Default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// IPv6 addresses and prefixes.
    pub ip6: Vec<Ipv6Cidr>,
    /// Default IPv6 router.
    pub gateway6: Option<Ipv6Addr>,
    /// IPv6 turned off (`USTACK_IPV6=0`).
    pub no_ipv6: bool,
    /// MAC address.
    pub mac: Option<EthernetAddress>,
    /// IP MTU.
    pub mtu: Option<usize>,
    /// Recording and faults.
    pub link: LinkOptions,
    /// SO_BUSY_POLL of new sockets, in µs ([`BUSY_POLL`]).
    pub busy_poll: Option<u32>,
}

impl StackEnv {
    /// The variables that carry these settings (unset ones are left out).
    pub fn to_vars(&self) -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        if let Some(t) = &self.tap {
            v.push((TAP, t.clone()));
        }
        if let Some(r) = &self.raw {
            v.push((RAW, r.clone()));
        }
        if let Some(ip) = self.ip {
            v.push((IP, ip.to_string()));
        }
        if let Some(g) = self.gateway {
            v.push((GATEWAY, g.to_string()));
        }
        if !self.ip6.is_empty() {
            let list: Vec<String> = self.ip6.iter().map(|c| c.to_string()).collect();
            v.push((IP6, list.join(",")));
        }
        if let Some(g) = self.gateway6 {
            v.push((GATEWAY6, g.to_string()));
        }
        if self.no_ipv6 {
            v.push((IPV6, "0".to_owned()));
        }
        if let Some(m) = self.mac {
            v.push((MAC, m.to_string()));
        }
        if let Some(m) = self.mtu {
            v.push((MTU, m.to_string()));
        }
        if let Some(p) = &self.link.pcap {
            v.push((PCAP, p.display().to_string()));
        }
        v.push((SEED, self.link.seed.to_string()));
        if let Some(f) = &self.link.faults {
            v.push((FAULTS, encode_faults(f)));
        }
        if self.link.offload == Offload::Off {
            v.push((OFFLOAD, "off".to_owned()));
        }
        if let Some(us) = self.busy_poll {
            v.push((BUSY_POLL, us.to_string()));
        }
        v
    }

    /// Reads the settings through `get` (e.g. `|k| std::env::var(k).ok()`).
    ///
    /// # Errors
    /// A variable is malformed; the message names it.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<StackEnv, String> {
        fn parse<T: core::str::FromStr>(
            name: &str,
            v: Option<String>,
        ) -> Result<Option<T>, String> {
            match v {
                None => Ok(None),
                Some(s) => s
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{name}={s}: malformed")),
            }
        }
        let nonempty = |k: &str| get(k).filter(|s| !s.is_empty());
        Ok(StackEnv {
            tap: nonempty(TAP),
            raw: nonempty(RAW),
            ip: parse(IP, nonempty(IP))?,
            gateway: parse(GATEWAY, nonempty(GATEWAY))?,
            ip6: match nonempty(IP6) {
                None => Vec::new(),
                Some(s) => s
                    .split(',')
                    .map(|c| {
                        c.trim()
                            .parse()
                            .map_err(|_| format!("{IP6}={s}: malformed"))
                    })
                    .collect::<Result<_, _>>()?,
            },
            gateway6: parse(GATEWAY6, nonempty(GATEWAY6))?,
            no_ipv6: match nonempty(IPV6).as_deref() {
                None | Some("1") => false,
                Some("0") => true,
                Some(s) => return Err(format!("{IPV6}={s}: malformed (0 or 1)")),
            },
            mac: parse(MAC, nonempty(MAC))?,
            mtu: parse(MTU, nonempty(MTU))?,
            link: LinkOptions {
                pcap: nonempty(PCAP).map(PathBuf::from),
                seed: parse(SEED, nonempty(SEED))?.unwrap_or(1),
                faults: match nonempty(FAULTS) {
                    None => None,
                    Some(s) => Some(decode_faults(&s).map_err(|e| format!("{FAULTS}: {e}"))?),
                },
                offload: match nonempty(OFFLOAD).as_deref() {
                    None | Some("auto") => Offload::Auto,
                    Some("off") => Offload::Off,
                    Some(s) => return Err(format!("{OFFLOAD}={s}: malformed (auto or off)")),
                },
            },
            busy_poll: match parse::<u32>(BUSY_POLL, nonempty(BUSY_POLL))? {
                Some(us) if us > i32::MAX as u32 => {
                    return Err(format!(
                        "{BUSY_POLL}={us}: too large (at most {})",
                        i32::MAX
                    ))
                }
                us => us,
            },
        })
    }

    /// Reads the settings from this process's environment.
    ///
    /// # Errors
    /// As [`from_lookup`](Self::from_lookup).
    pub fn from_env() -> Result<StackEnv, String> {
        StackEnv::from_lookup(|k| std::env::var(k).ok())
    }
}

fn push_config(out: &mut Vec<String>, dir: &str, c: &FaultConfig) {
    let d = FaultConfig::default();
    let mut f = |name: &str, v: String, dv: String| {
        if v != dv {
            out.push(format!("{dir}.{name}={v}"));
        }
    };
    f("loss", c.loss.to_string(), d.loss.to_string());
    f("dup", c.duplicate.to_string(), d.duplicate.to_string());
    f("reorder", c.reorder.to_string(), d.reorder.to_string());
    f(
        "reorder_depth",
        c.reorder_depth.to_string(),
        d.reorder_depth.to_string(),
    );
    let us = |d: Duration| d.total_micros().to_string();
    f(
        "reorder_timeout",
        us(c.reorder_timeout),
        us(d.reorder_timeout),
    );
    f("corrupt", c.corrupt.to_string(), d.corrupt.to_string());
    f(
        "corrupt_bits",
        c.corrupt_max_bits.to_string(),
        d.corrupt_max_bits.to_string(),
    );
    f(
        "corrupt_offset",
        c.corrupt_offset.to_string(),
        d.corrupt_offset.to_string(),
    );
    f("delay", us(c.delay), us(d.delay));
    f("jitter", us(c.jitter), us(d.jitter));
    f("rate", c.rate_bps.unwrap_or(0).to_string(), "0".into());
    f(
        "queue",
        c.queue_frames.to_string(),
        d.queue_frames.to_string(),
    );
    if let Some(b) = c.burst {
        out.push(format!(
            "{dir}.burst={}:{}:{}:{}",
            b.p_good_to_bad, b.p_bad_to_good, b.loss_in_bad, b.loss_in_good
        ));
    }
}

/// `Faults` as the value of `USTACK_FAULTS`.
pub fn encode_faults(f: &Faults) -> String {
    let mut out = Vec::new();
    push_config(&mut out, "rx", &f.rx);
    push_config(&mut out, "tx", &f.tx);
    out.join(";")
}

/// The inverse of [`encode_faults`].
///
/// # Errors
/// An item is not `rx|tx.FIELD=VALUE` with a known field and a valid value.
pub fn decode_faults(s: &str) -> Result<Faults, String> {
    let mut f = Faults::default();
    for item in s.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        let bad = || format!("bad item {item:?}");
        let (key, value) = item.split_once('=').ok_or_else(bad)?;
        let (dir, field) = key.split_once('.').ok_or_else(bad)?;
        let c = match dir {
            "rx" => &mut f.rx,
            "tx" => &mut f.tx,
            _ => return Err(bad()),
        };
        let p = |v: &str| v.parse::<f64>().ok().filter(|p| (0.0..=1.0).contains(p));
        let n = |v: &str| v.parse::<u64>().ok();
        let ok = match field {
            "loss" => p(value).map(|v| c.loss = v),
            "dup" => p(value).map(|v| c.duplicate = v),
            "reorder" => p(value).map(|v| c.reorder = v),
            "corrupt" => p(value).map(|v| c.corrupt = v),
            "reorder_depth" => n(value).map(|v| c.reorder_depth = v as u32),
            "reorder_timeout" => n(value).map(|v| c.reorder_timeout = Duration::from_micros(v)),
            "corrupt_bits" => n(value)
                .filter(|b| (1..=8).contains(b))
                .map(|v| c.corrupt_max_bits = v as u8),
            "corrupt_offset" => n(value).map(|v| c.corrupt_offset = v as usize),
            "delay" => n(value).map(|v| c.delay = Duration::from_micros(v)),
            "jitter" => n(value).map(|v| c.jitter = Duration::from_micros(v)),
            "rate" => n(value).map(|v| c.rate_bps = (v > 0).then_some(v)),
            "queue" => n(value)
                .filter(|q| *q > 0)
                .map(|v| c.queue_frames = v as usize),
            "burst" => {
                let parts: Vec<Option<f64>> = value.split(':').map(p).collect();
                match parts.as_slice() {
                    [Some(a), Some(b), Some(c2), Some(d)] => {
                        c.burst = Some(GilbertElliott {
                            p_good_to_bad: *a,
                            p_bad_to_good: *b,
                            loss_in_bad: *c2,
                            loss_in_good: *d,
                        });
                        Some(())
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        ok.ok_or_else(bad)?;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_survive_the_environment() {
        let mut faults = Faults::default();
        faults.rx.loss = 0.05;
        faults.tx.delay = Duration::from_micros(20_000);
        faults.tx.burst = Some(GilbertElliott {
            p_good_to_bad: 0.01,
            p_bad_to_good: 0.5,
            loss_in_bad: 1.0,
            loss_in_good: 0.0,
        });
        faults.tx.rate_bps = Some(10_000_000);
        let env = StackEnv {
            tap: Some("tap0".into()),
            raw: None,
            ip: Some("10.77.0.2/24".parse().unwrap()),
            gateway: Some("10.77.0.1".parse().unwrap()),
            ip6: vec![
                "fd00:77::2/64".parse().unwrap(),
                "2001:db8::2/56".parse().unwrap(),
            ],
            gateway6: Some("fe80::1".parse().unwrap()),
            no_ipv6: true,
            mac: Some("02:00:0a:4d:00:02".parse().unwrap()),
            mtu: Some(1400),
            link: LinkOptions {
                pcap: Some("x.pcapng".into()),
                faults: Some(faults),
                seed: 7,
                offload: crate::link::Offload::Off,
            },
            busy_poll: Some(50),
        };
        let vars = env.to_vars();
        let back =
            StackEnv::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
                .unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn malformed_values_are_named() {
        let e = StackEnv::from_lookup(|k| (k == IP).then(|| "10.0.0.300/24".to_string()));
        assert!(e.unwrap_err().contains("USTACK_IP"));
        let e = StackEnv::from_lookup(|k| (k == IP6).then(|| "fd00::2/64,fd00::x".to_string()));
        assert!(e.unwrap_err().contains("USTACK_IP6"));
        let e = StackEnv::from_lookup(|k| (k == BUSY_POLL).then(|| "-5".to_string()));
        assert!(e.unwrap_err().contains("USTACK_BUSY_POLL"));
        let e = StackEnv::from_lookup(|k| (k == BUSY_POLL).then(|| "3000000000".to_string()));
        assert!(e.unwrap_err().contains("USTACK_BUSY_POLL"));
        assert!(decode_faults("rx.loss=2").is_err());
        assert!(decode_faults("up.loss=0.1").is_err());
        assert!(decode_faults("rx.nothing=1").is_err());
        assert_eq!(decode_faults("").unwrap(), Faults::default());
    }
}
