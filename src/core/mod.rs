//! A run, assembled once, above the backends (`cpu`, `gpu`) it drives: the configuration, the
//! run's data, the plan resolved from them, the engine that computes it, the session that
//! trains, evaluates, traces and checks it, the training loop with its run state and
//! checkpoints. It prints nothing: what a person should read comes back as values and notes.
//!
//! Read in this order: `config` → `run_data` → `plan` → `settings` → `engine` → `metrics` →
//! `run_state` → `train` → `checkpoint` → `session` → `parity` → `foreign_weights` →
//! `inference`.

pub mod checkpoint;
pub mod config;
pub mod engine;
pub mod foreign_weights;
pub mod inference;
pub mod metrics;
pub mod parity;
pub mod plan;
pub mod run_data;
pub mod run_state;
pub mod session;
pub mod settings;
pub mod train;

pub use engine::{Engine, Engines};
pub use plan::Plan;
pub use session::Session;
pub use settings::Settings;
