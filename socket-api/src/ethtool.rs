//! Offload switches of a network device through the `SIOCETHTOOL` ioctl, without the
//! `ethtool` program: transmit and receive checksum, scatter-gather, TSO, GSO and GRO.
//!
//! The ioctl acts on the device of that name in the **calling thread's** network
//! namespace, so call these from a thread inside the namespace that holds the device
//! (`Netns::run_in`). Each switch is the legacy `ETHTOOL_[GS]<feature>` command with a
//! `struct ethtool_value { u32 cmd; u32 data; }` (linux/ethtool.h), which every kernel
//! still maps onto its feature flags.

use std::io;

// linux/ethtool.h command numbers.
const ETHTOOL_GRXCSUM: u32 = 0x14;
const ETHTOOL_SRXCSUM: u32 = 0x15;
const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_STXCSUM: u32 = 0x17;
const ETHTOOL_GSG: u32 = 0x18;
const ETHTOOL_SSG: u32 = 0x19;
const ETHTOOL_GTSO: u32 = 0x1e;
const ETHTOOL_STSO: u32 = 0x1f;
const ETHTOOL_GGSO: u32 = 0x23;
const ETHTOOL_SGSO: u32 = 0x24;
const ETHTOOL_GGRO: u32 = 0x2b;
const ETHTOOL_SGRO: u32 = 0x2c;
const SIOCETHTOOL: libc::c_ulong = 0x8946;

/// The offload switches this module reads and sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offloads {
    /// Transmit checksum offload (`tx`).
    pub tx_csum: bool,
    /// Receive checksum offload (`rx`).
    pub rx_csum: bool,
    /// Scatter-gather (`sg`), which TSO needs.
    pub sg: bool,
    /// TCP segmentation offload (`tso`).
    pub tso: bool,
    /// Generic segmentation offload (`gso`).
    pub gso: bool,
    /// Generic receive offload (`gro`).
    pub gro: bool,
}

impl Offloads {
    /// Every switch set to `on`.
    pub fn all(on: bool) -> Offloads {
        Offloads {
            tx_csum: on,
            rx_csum: on,
            sg: on,
            tso: on,
            gso: on,
            gro: on,
        }
    }
}

impl std::fmt::Display for Offloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = |b: bool| if b { "on" } else { "off" };
        write!(
            f,
            "tx {} rx {} sg {} tso {} gso {} gro {}",
            o(self.tx_csum),
            o(self.rx_csum),
            o(self.sg),
            o(self.tso),
            o(self.gso),
            o(self.gro)
        )
    }
}

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
    // struct ifreq is 40 bytes on 64-bit Linux; pad the union.
    _pad: [u8; 16],
}

/// An AF_INET datagram socket, closed on drop: the handle the ioctl needs.
struct CtlSocket(libc::c_int);

impl CtlSocket {
    fn new() -> io::Result<CtlSocket> {
        // SAFETY: plain socket(2) call; the fd is owned by the returned value.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(CtlSocket(fd))
    }

    fn call(&self, ifname: &str, cmd: u32, data: u32) -> io::Result<u32> {
        let bytes = ifname.as_bytes();
        if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad interface name `{ifname}`"),
            ));
        }
        let mut value = EthtoolValue { cmd, data };
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            data: &mut value,
            _pad: [0; 16],
        };
        for (d, s) in req.name.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        // SAFETY: `req` is a valid ifreq whose data points at a live ethtool_value for
        // the duration of the call; the kernel reads/writes only those 8 bytes.
        let rc = unsafe { libc::ioctl(self.0, SIOCETHTOOL as _, &mut req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(value.data)
    }
}

impl Drop for CtlSocket {
    fn drop(&mut self) {
        // SAFETY: closing the fd this value owns.
        unsafe { libc::close(self.0) };
    }
}

/// Reads the offload switches of `ifname` (in the calling thread's namespace).
///
/// # Errors
/// No such device, or the ioctl failed.
pub fn get(ifname: &str) -> io::Result<Offloads> {
    let s = CtlSocket::new()?;
    let g = |cmd| s.call(ifname, cmd, 0).map(|v| v != 0);
    Ok(Offloads {
        tx_csum: g(ETHTOOL_GTXCSUM)?,
        rx_csum: g(ETHTOOL_GRXCSUM)?,
        sg: g(ETHTOOL_GSG)?,
        tso: g(ETHTOOL_GTSO)?,
        gso: g(ETHTOOL_GGSO)?,
        gro: g(ETHTOOL_GGRO)?,
    })
}

/// Turns transmit checksum offload of `ifname` on or off (`ethtool -K IF tx on|off`),
/// leaving the other switches to the kernel (turning it off also drops what needs it).
///
/// # Errors
/// No such device, or the kernel refused.
pub fn set_tx_checksum(ifname: &str, on: bool) -> io::Result<()> {
    CtlSocket::new()?
        .call(ifname, ETHTOOL_STXCSUM, u32::from(on))
        .map(|_| ())
}

/// Sets the offload switches of `ifname` (in the calling thread's namespace) and returns
/// what the device reports afterwards, which may differ where the kernel ties features
/// together (TSO needs scatter-gather and transmit checksums).
///
/// # Errors
/// No such device, or the kernel refused a switch.
pub fn set(ifname: &str, want: Offloads) -> io::Result<Offloads> {
    let s = CtlSocket::new()?;
    let put = |cmd, on: bool| s.call(ifname, cmd, u32::from(on)).map(|_| ());
    // Order matters: dependants off first, prerequisites on first.
    if want.tx_csum {
        put(ETHTOOL_STXCSUM, true)?;
        put(ETHTOOL_SSG, want.sg)?;
    } else {
        put(ETHTOOL_SSG, want.sg)?;
        put(ETHTOOL_STXCSUM, false)?;
    }
    put(ETHTOOL_SRXCSUM, want.rx_csum)?;
    put(ETHTOOL_STSO, want.tso)?;
    put(ETHTOOL_SGSO, want.gso)?;
    put(ETHTOOL_SGRO, want.gro)?;
    get(ifname)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_has_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
        assert_eq!(std::mem::size_of::<EthtoolValue>(), 8);
    }

    #[test]
    fn bad_names_are_refused_before_the_ioctl() {
        let s = CtlSocket::new().unwrap();
        assert!(s.call("", ETHTOOL_GTSO, 0).is_err());
        assert!(s
            .call("a-name-longer-than-ifnamsiz", ETHTOOL_GTSO, 0)
            .is_err());
    }

    #[test]
    fn display_names_every_switch() {
        let s = Offloads::all(false).to_string();
        assert_eq!(s, "tx off rx off sg off tso off gso off gro off");
    }
}
