//! Real devices: TAP and AF_PACKET. The only code in the crate that uses `unsafe`.
//! (Placeholder: being written.)
