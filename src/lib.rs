//! gpu-nn: multi-layer perceptrons on MNIST, trained by WGSL kernels through wgpu, with a CPU
//! reference beside them. Data flows one way: `data` → `train` (batches) → `model` →
//! `backend` (`cpu`, `gpu`) → `metrics`.

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

pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod confusion;
pub mod cpu;
pub mod data;
pub mod eval;
pub mod fsutil;
pub mod gpu;
pub mod gradcheck;
pub mod init;
pub mod math;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod parity;
pub mod plots;
pub mod predict;
pub mod report;
pub mod run;
pub mod sweep;
pub mod train;
