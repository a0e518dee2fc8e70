//! The library in a web page (`web/`): `PageSession` is the page's front-end over a
//! `core::Session`, plain Rust that builds natively too (so the tests drive the page's own entry
//! points); `bindings` hands it to JavaScript (feature `web`, built for wasm32 by
//! `scripts/build-web.sh`).

#[cfg(feature = "web")]
mod bindings;
pub mod session;

pub use session::{PageEngine, PageSession};
