//! gpu-nn: multi-layer perceptrons on MNIST, trained by WGSL kernels through wgpu, with a CPU
//! reference beside them.
//!
//! The parts, each importing only from those listed before it:
//! - `atomic_file`: durable writes (a leaf);
//! - `data`: IDX files, datasets, downloads, input normalisation;
//! - `nn`: the model, its equations, optimisers, initialisation, the `Backend` contract;
//! - `cpu`, `gpu`: the backends (the f64 reference and f32 fast path; the WGSL kernels);
//! - `core`: a run: the configuration, the data, the training loop with its run state,
//!   checkpoints;
//! - `workbench`: each GPU kernel beside its CPU reference, its check and its timing;
//! - `report`: what a person reads: the terminal, plots, confusion matrices;
//! - `commands`: one module per subcommand, and the setup they share (feature `cli`);
//! - `web`: the library's bindings for a web page (feature `web`, wasm32).

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
#[cfg(feature = "web")]
pub mod web;
pub mod workbench;
