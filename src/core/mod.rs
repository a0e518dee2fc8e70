//! A run, assembled once: the configuration, the run's data, the training loop with its run
//! state and checkpoints, above the backends (`cpu`, `gpu`) it drives. It prints nothing.
//!
//! Read in this order: `config` → `run_data` → `metrics` → `run_state` → `train` →
//! `checkpoint` → `foreign_weights` → `inference`.

pub mod checkpoint;
pub mod config;
pub mod foreign_weights;
pub mod inference;
pub mod metrics;
pub mod run_data;
pub mod run_state;
pub mod train;
