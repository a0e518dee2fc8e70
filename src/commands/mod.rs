//! The subcommands: one module each, and the setup they share.

pub mod args;
pub mod bench;
pub mod eval;
pub mod gradcheck;
pub mod parity;
pub mod predict;
pub mod sweep;
pub mod train;
