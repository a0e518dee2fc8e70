//! gpu-nn: multi-layer perceptrons trained by hand-written WGSL kernels through wgpu, with a CPU
//! reference beside them that proves the GPU right.
//!
//! # Use it from Rust
//!
//! A run is a [`core::Plan`] (a configuration and its data, resolved once: batch size, steps,
//! learning rates) driven by a [`core::Session`] on the backend [`core::Engines`] builds for it
//! (the CPU f64 reference, the CPU f32 fast path, or the GPU). The session trains with an
//! observer of your own, evaluates, classifies, traces one step, and checks its engine against
//! the reference ([`core::Session::parity`]). The command line and the web page are front-ends
//! over the same session.
//!
//! Doc 000's hand-worked example, trained on the f64 reference; its losses and weights are the
//! document's own numbers (`../shared/SEEDS.md`):
//!
//! ```
//! use gpu_nn::core::config::{Config, preset_json};
//! use gpu_nn::core::run_data::from_bytes;
//! use gpu_nn::core::train::Silent;
//! use gpu_nn::core::{Engines, Plan, Session, Settings};
//!
//! # fn main() -> anyhow::Result<()> {
//! let cfg = Config::from_layers(&[preset_json("seed000-hand")?, serde_json::json!({"backend": {"kind": "cpu", "precision": "f64"}})])?;
//! let data = from_bytes(&cfg, None)?; // its two samples are in the preset itself
//! let mut session = Session::start(Plan::new(cfg, data)?, &mut Engines::new(Settings::default()))?;
//! let run = session.train(&mut Silent, Default::default())?;
//!
//! let losses: Vec<f64> = run.metrics.iter().map(|m| m.train_loss).collect();
//! for (got, want) in losses.iter().zip([0.25339465, 0.25332996, 0.25326647]) {
//!     assert!((got - want).abs() < 5e-9, "{got} vs {want}");
//! }
//! let w1 = session.params()?.layers[0].weight[0];
//! assert!((w1 - 0.09997898706535735).abs() < 1e-12);
//! # Ok(())
//! # }
//! ```
//!
//! `examples/train.rs` trains a preset on MNIST, saves, reloads and classifies a picture;
//! `examples/in_memory.rs` trains on a dataset made in the program
//! ([`data::Dataset::from_rows`], [`core::run_data::RunData::new`]).
//!
//! # The parts
//!
//! Each imports only from those listed before it:
//! - `atomic_file`: durable writes (a leaf);
//! - `data`: IDX files, datasets, downloads, input normalisation;
//! - `nn`: the model, its equations, optimisers, initialisation, the `Backend` contract;
//! - `cpu`, `gpu`: the backends (the f64 reference and f32 fast path; the WGSL kernels);
//! - `core`: a run: the configuration, the data, the plan, the engines, the session, the
//!   training loop with its run state, checkpoints, parity;
//! - `workbench`: each GPU kernel beside its CPU reference, its check and its timing;
//! - `report`: what a person reads: the terminal, plots, confusion matrices;
//! - `commands`: one module per subcommand, and the environment read once (feature `cli`);
//! - `web`: the web page's session, and its bindings for JavaScript (feature `web`, wasm32).

/// Serialises a type through its `Display` and `FromStr` (for compact config values such as
/// `"normal:0.1"` or `"step:10:0.5"`).
#[macro_export]
macro_rules! serde_via_string {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(|e: anyhow::Error| serde::de::Error::custom(format!("{e:#}")))
            }
        }
    };
}

pub mod atomic_file;
#[cfg(feature = "cli")]
pub mod commands;
pub mod core;
pub mod cpu;
pub mod data;
pub mod gpu;
pub mod nn;
pub mod report;
pub mod web;
pub mod workbench;
