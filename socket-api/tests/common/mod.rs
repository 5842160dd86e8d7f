//! Two stacks joined in memory, each with its own driver thread.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;
use ustack_socket::NetStack;

/// Address of stack A.
pub const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// Address of stack B.
pub const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// A generous bound for things that should happen at once; only a correctness bound.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Stacks A (10.0.0.1) and B (10.0.0.2) on one in-memory link.
pub fn pair() -> (NetStack, NetStack) {
    let _ = env_logger_init().is_ok();
    NetStack::builder()
        .ip("10.0.0.1/24".parse().unwrap())
        .build_pair(NetStack::builder().ip("10.0.0.2/24".parse().unwrap()), 4096)
        .expect("stack pair")
}

pub fn env_logger_init() -> Result<(), log::SetLoggerError> {
    env_logger::builder().is_test(true).try_init()
}

/// `ip:port` as a `SocketAddr`.
pub fn sa(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, port))
}
