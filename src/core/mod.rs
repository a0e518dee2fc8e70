//! The core every command shares: the model and its equations, optimisers, initialisation, the
//! configuration, the `Backend` contract, and the training loop with its run state and
//! checkpoints. It knows no backend and prints nothing.
//!
//! Read in this order: `model` → `math` → `optim` → `init` → `config` → `run_data` →
//! `backend` → `metrics` → `run_state` → `train` → `checkpoint` → `foreign_weights` →
//! `inference`.

pub mod backend;
pub mod checkpoint;
pub mod config;
pub mod foreign_weights;
pub mod inference;
pub mod init;
pub mod math;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod run_data;
pub mod run_state;
pub mod train;
