//! Storage for socket data: a fixed-capacity byte ring and an assembler that tracks
//! out-of-order ranges. Capacities are set when a socket is created and never grow,
//! which bounds memory per socket.

pub mod assembler;
pub mod ring;

pub use assembler::Assembler;
pub use ring::RingBuffer;
