//! The network itself, below every backend: its shape and parameters (`model`), its equations
//! written once for f32 and f64 (`math`), the optimisers' update rules (`optim`), the initial
//! weights and the seeded random streams (`init`), the counter-based generator (`philox`) and
//! what training draws from it, dropout (`dropout`) and the augmentation of pictures
//! (`augment`), and the contract every backend implements (`backend`). Beside `math`, the f32
//! fast paths that give its bits faster on AVX-512: the matrix product (`sgemm`) and e^x for the
//! sigmoid (`expf`).
//! It knows no backend and no run.
//!
//! Read in this order: `model` → `math` → `optim` → `init` → `philox` → `dropout` → `augment` →
//! `backend`.

pub mod augment;
pub mod backend;
pub mod dropout;
pub mod expf;
pub mod init;
pub mod math;
pub mod model;
pub mod optim;
pub mod philox;
pub mod sgemm;
