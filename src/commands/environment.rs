//! The settings the command line takes from the environment, read once when a command starts
//! (`read`) and handed down as `core::Settings`; nothing below the command line reads the
//! environment.
//!
//! | variable | what it sets |
//! |---|---|
//! | `GPU_NN_DATA` | the data directory when `--data` is not given |
//! | `GPU_NN_OFFLINE` | never download a missing dataset (any value but `0`) |
//! | `GPU_NN_MIRROR` | one base URL to download datasets from |
//! | `GPU_NN_DOWNLOAD_TIMEOUT` | seconds a stalled download may wait (default 120) |
//! | `GPU_NN_ADAPTER` | the GPU adapter when `--adapter` is not given |
//! | `GPU_NN_KERNELS` | the matmul kernels when `--kernels` is not given |
//! | `GPU_NN_CACHE_DIR` | where tuned kernel choices are kept (`kernels.json`) |
//! | `GPU_NN_TEST_LOSE_DEVICE_AT_STEP` | testing aid, builds with `test-aids` only |

use crate::core::Settings;
use crate::data::DataSources;
use crate::gpu::KernelChoice;
use anyhow::{Context, Result};
use std::path::PathBuf;

/// Testing aid, read only by a binary built with the `test-aids` feature (the tests build it
/// so): lose the GPU device once the run has taken this many steps, to exercise the path a real
/// device loss (driver reset) takes.
#[cfg(feature = "test-aids")]
pub const LOSE_DEVICE_VAR: &str = "GPU_NN_TEST_LOSE_DEVICE_AT_STEP";

/// A variable's value, unset when empty.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The settings of this process's environment (quiet: lower layers print nothing; a command
/// that prints sets `quiet` from its flags).
pub fn read() -> Result<Settings> {
    let timeout = match var("GPU_NN_DOWNLOAD_TIMEOUT") {
        Some(v) => std::time::Duration::from_secs(v.parse::<u64>().with_context(|| format!("GPU_NN_DOWNLOAD_TIMEOUT '{v}': expected a whole number of seconds"))?),
        None => DataSources::default().timeout,
    };
    let data = DataSources { dir: var("GPU_NN_DATA").map(PathBuf::from), offline: var("GPU_NN_OFFLINE").is_some_and(|v| v != "0"), mirror: var("GPU_NN_MIRROR"), timeout };
    let kernels = var("GPU_NN_KERNELS").map(|v| v.parse().with_context(|| format!("GPU_NN_KERNELS '{v}'"))).transpose()?;
    Ok(Settings {
        data,
        adapter: var("GPU_NN_ADAPTER"),
        kernels,
        auto_kernels: KernelChoice::Tuned { cache: kernel_cache() },
        lose_device_at_step: lose_device_at_step(),
        quiet: true,
    })
}

/// Where the tuned kernel choices are kept: `$GPU_NN_CACHE_DIR/kernels.json`, else the user's
/// cache directory (`~/.cache/gpu-nn/kernels.json` on Linux).
fn kernel_cache() -> Option<PathBuf> {
    let dir = var("GPU_NN_CACHE_DIR").map(PathBuf::from).or_else(|| dirs::cache_dir().map(|d| d.join("gpu-nn")))?;
    Some(dir.join("kernels.json"))
}

#[cfg(feature = "test-aids")]
fn lose_device_at_step() -> Option<u64> {
    var(LOSE_DEVICE_VAR).and_then(|v| v.parse().ok())
}

#[cfg(not(feature = "test-aids"))]
fn lose_device_at_step() -> Option<u64> {
    None
}
