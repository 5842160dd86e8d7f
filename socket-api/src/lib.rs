//! BSD-style sockets and `std::net`-like types over the ustack engine.
//!
//! A [`NetStack`] runs one [`Interface`](ustack::iface::Interface) on a link (TAP,
//! AF_PACKET, an in-memory pair, or any [`Link`](ustack::link::Link)) on the one host
//! loop every `ustack` command and test runs on — calling threads move their own frames
//! and lead the link while they block, a driver thread serves the rest ([`driver`]) —
//! and gives application threads two APIs on top:
//!
//! - [`bsd`]: the BSD calls over integer descriptors ([`Fd`]) in a per-stack table:
//!   [`socket`](NetStack::socket), [`bind`](NetStack::bind),
//!   [`listen`](NetStack::listen), [`accept`](NetStack::accept),
//!   [`connect`](NetStack::connect), [`send`](NetStack::send)/[`recv`](NetStack::recv),
//!   [`sendto`](NetStack::sendto)/[`recvfrom`](NetStack::recvfrom),
//!   [`shutdown`](NetStack::shutdown), [`close`](NetStack::close), options through the
//!   typed [`SockOpt`], [`poll`](NetStack::poll) and [`Epoll`]; errors are [`Errno`]s.
//! - [`net`]: [`TcpListener`], [`TcpStream`], [`UdpSocket`] and [`RawSocket`], shaped
//!   like `std::net` (with `Read`/`Write`), built on the BSD layer.
//!
//! In-driver code (an echo service, a trace recorder) plugs into the driver as a
//! [`Hook`]; recording and fault injection wrap the link ([`link`]).
//!
//! Modules, lowest first; each imports only modules above it in this table, so the
//! crate has no import cycle:
//!
//! | module     | role |
//! |------------|------|
//! | [`errno`]  | [`Errno`] and the one table mapping engine errors to it |
//! | `events`   | [`PollEvents`] and epoll keys |
//! | `hook`     | [`Hook`] and [`Round`]: what runs inside the driver |
//! | [`link`]   | host plumbing around a link: devices, [`Clock`](link::Clock), fault/pcap composition, counters |
//! | [`ethtool`] | device offload switches through SIOCETHTOOL (no `ethtool` program) |
//! | [`netns`]  | network namespaces for hosts and tests (create, enter, run inside) |
//! | [`kernel_peer`] | the kernel's side of a conversation on kernel sockets (ping, HTTP), for the demo and the tests, run on a thread inside a namespace |
//! | `table`    | descriptors → open sockets, per-description options, waiters, epoll sets |
//! | `tcp`      | the TCP-specific parts of the BSD calls |
//! | `ready`    | the readiness of one description |
//! | `state`    | what the stack mutex protects (the link too), a round, the wakers, waiting for readiness (lead or follow) |
//! | [`driver`] | the host loop's rules and the driver thread; its [`Hook`]s |
//! | [`bsd`]    | the BSD calls and poll(2), over the shared state |
//! | `stack`    | [`NetStack`] (every method, the calls delegating to `bsd`) and its [`Builder`] |
//! | [`poll`]   | [`Epoll`] |
//! | [`notifier`] | per-descriptor readiness callbacks (the preload library's wake-ups) |
//! | [`net`]    | the `std::net`-like types |
//! | [`env`](mod@env)    | a stack's settings in environment variables (`ustack run` → the preload library) |
//! | [`echo`]   | an echo service (RFC 862) as a driver hook |
//!
//! Threads block as in gVisor's `waiter` package: try under the stack lock, and if the
//! call would block, wait — polling the link itself when no other thread does, else on
//! a condvar until a round reports readiness — honouring SO_RCVTIMEO/SO_SNDTIMEO.
//! Every call is safe from any number of threads.
//!
//! ```
//! use ustack_socket::{NetStack, UdpSocket};
//! let (a, b) = NetStack::builder()
//!     .ip("10.0.0.1/24".parse().unwrap())
//!     .build_pair(NetStack::builder().ip("10.0.0.2/24".parse().unwrap()), 256)
//!     .unwrap();
//! let server = UdpSocket::bind(&b, "0.0.0.0:7").unwrap();
//! let client = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
//! client.send_to(b"hello", "10.0.0.2:7").unwrap();
//! let mut buf = [0u8; 16];
//! let (n, from) = server.recv_from(&mut buf).unwrap();
//! assert_eq!(&buf[..n], b"hello");
//! assert_eq!(from.port(), client.local_addr().unwrap().port());
//! server.send_to(&buf[..n], from).unwrap();
//! assert_eq!(client.recv(&mut buf).unwrap(), 5);
//! ```

#![warn(missing_docs)]

pub mod bsd;
pub mod driver;
pub mod echo;
pub mod env;
pub mod errno;
pub mod ethtool;
mod events;
pub mod family;
mod hook;
pub mod kernel_peer;
pub mod link;
pub mod net;
pub mod netns;
pub mod notifier;
pub mod poll;
mod ready;
mod stack;
mod state;
mod table;
mod tcp;

pub use bsd::{
    SockOpt, SockOptName, AF_INET, AF_INET6, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_IP, IPPROTO_TCP,
    IPPROTO_UDP, MSG_DONTWAIT, MSG_MORE, MSG_NOSIGNAL, MSG_PEEK, MSG_TRUNC, MSG_WAITALL, SHUT_RD,
    SHUT_RDWR, SHUT_WR, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOCK_RAW, SOCK_STREAM,
};
pub use driver::{CALLER_GRACE, POLL_TICK};
pub use errno::Errno;
pub use hook::{Hook, RingProbe, Round};
pub use net::{Incoming, RawSocket, TcpListener, TcpStream, UdpSocket};
pub use poll::{Epoll, EpollEvent, EpollOp, PollEvents, PollFd};
pub use stack::{Builder, DriverWaker, NetStack, Stopped, MAX_FDS};
pub use state::DriverStats;
pub use table::{Fd, FIRST_FD};
pub use tcp::TcpInfo;
