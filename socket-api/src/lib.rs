//! BSD-style socket API over ustack (being written).
#![warn(missing_docs)]
