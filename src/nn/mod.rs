//! The network itself, below every backend: its shape and parameters (`model`), its equations
//! written once for f32 and f64 (`math`), the optimisers' update rules (`optim`), the initial
//! weights and the seeded random streams (`init`), the counter-based generator (`philox`) and
//! what training draws from it, dropout (`dropout`) and the augmentation of pictures
//! (`augment`), and the contract every backend implements (`backend`).
//! It knows no backend and no run.
//!
//! Read in this order: `model` → `math` → `optim` → `init` → `philox` → `dropout` → `augment` →
//! `backend`.

pub mod augment;
pub mod backend;
pub mod dropout;
pub mod init;
pub mod math;
pub mod model;
pub mod optim;
pub mod philox;
pub mod sgemm;
