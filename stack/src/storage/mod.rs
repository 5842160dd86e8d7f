//! Storage for socket data: a fixed-capacity byte ring, an assembler that tracks
//! out-of-order ranges, and the generation-checked slab every socket layer keeps its
//! sockets in. Capacities are set when a socket is created and never grow,
//! which bounds memory per socket.

pub mod assembler;
pub mod ring;
pub mod slab;

pub use assembler::Assembler;
pub use ring::RingBuffer;
pub use slab::{Slab, SlabKey};
