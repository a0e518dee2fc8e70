//! What every command does before its own work, written once: load the data a configuration
//! names and check the two against each other (`prepare`), choose between the GPU and the CPU
//! (`gpu_or_cpu`, one note text for the fallback), and build the backend (`make_engine`).

use crate::nn::backend::Backend;
use crate::core::config::{BackendKind, Config, Precision};
use crate::core::run_data::{self, RunData};
use crate::cpu::{FastBackend, ReferenceBackend, all_cores};
use crate::gpu::{GpuBackend, KernelChoice};
use crate::report::console::Console;
use anyhow::Result;
use std::path::PathBuf;

/// Testing aid, read only by a binary built with the `test-aids` feature (the tests build it
/// so): lose the GPU device once the run has taken this many steps, to exercise the path a real
/// device loss (driver reset) takes.
#[cfg(feature = "test-aids")]
pub const LOSE_DEVICE_VAR: &str = "GPU_NN_TEST_LOSE_DEVICE_AT_STEP";

/// What computes a run. A checkpoint records it: resuming on another engine would change the
/// results (f64 vs f32 rounding, GPU summation order), so a resume refuses that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    CpuF64,
    CpuF32,
    Gpu,
}

impl Engine {
    /// The name checkpoints record.
    pub fn name(self) -> &'static str {
        match self {
            Engine::CpuF64 => "cpu-f64",
            Engine::CpuF32 => "cpu-f32",
            Engine::Gpu => "gpu",
        }
    }
}

/// Loads the data `cfg` names (with the training split's pixel statistics when it
/// standardises) and checks the configuration against it.
pub fn prepare(cfg: &mut Config, console: &Console) -> Result<RunData> {
    run_data::prepare(cfg, console.quiet)
}

/// Whether `cfg` runs on the GPU: `Some` of what `open` built when it does, `None` for the CPU.
/// `auto` takes the GPU when `open` succeeds (and f32 was asked for), else says why not and
/// takes the CPU; it takes the CPU too when every adapter is CPU-emulated (lavapipe is several
/// times slower than the CPU backend on the same cores), and says how to force the GPU.
pub fn gpu_or_cpu<T>(cfg: &Config, console: &Console, open: impl FnOnce() -> Result<T>) -> Result<Option<T>> {
    match cfg.backend.kind {
        BackendKind::Cpu => Ok(None),
        BackendKind::Gpu => open().map(Some),
        BackendKind::Auto if cfg.backend.precision == Precision::F64 => Ok(None),
        BackendKind::Auto if cfg.backend.adapter.is_none() && only_emulated_adapters() => {
            console.note("note: the only GPU adapters here are CPU-emulated (see gpu-nn adapters), slower than the CPU backend; training on the CPU (--backend gpu uses the emulated adapter anyway)");
            Ok(None)
        }
        BackendKind::Auto => match open() {
            Ok(g) => Ok(Some(g)),
            Err(e) => {
                console.note(&format!("note: no usable GPU ({}); training on the CPU", format!("{e:#}").replace('\n', " ")));
                Ok(None)
            }
        },
    }
}

/// Whether adapters exist and every one is CPU-emulated (`$GPU_NN_ADAPTER` naming one counts as
/// a choice of it: then this is false).
fn only_emulated_adapters() -> bool {
    if std::env::var_os("GPU_NN_ADAPTER").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    let all = crate::gpu::list_adapters(&crate::gpu::context::instance());
    !all.is_empty() && all.iter().all(|a| a.is_software())
}

/// The CPU backend of `cfg`'s precision (f32 on `backend.threads` cores, else all).
pub fn cpu_backend(cfg: &Config) -> (Box<dyn Backend>, Engine) {
    match cfg.backend.precision {
        Precision::F64 => (Box::new(ReferenceBackend::new(&cfg.model, &cfg.optimizer)), Engine::CpuF64),
        Precision::F32 => {
            let threads = cfg.backend.threads.unwrap_or_else(all_cores);
            (Box::new(FastBackend::with_threads(&cfg.model, &cfg.optimizer, threads)), Engine::CpuF32)
        }
    }
}

/// Where the tuned kernel choices are kept: `$GPU_NN_CACHE_DIR/kernels.json`, else the user's
/// cache directory (`~/.cache/gpu-nn/kernels.json` on Linux).
pub fn kernel_cache() -> Option<PathBuf> {
    let dir = std::env::var_os("GPU_NN_CACHE_DIR").map(PathBuf::from).or_else(|| dirs::cache_dir().map(|d| d.join("gpu-nn")))?;
    Some(dir.join("kernels.json"))
}

/// The GPU kernels `cfg` asks for: `backend.kernels` (`--kernels`), else `$GPU_NN_KERNELS`,
/// else tuned and kept in `kernel_cache()`.
pub fn kernel_choice(cfg: &Config) -> Result<KernelChoice> {
    let named = cfg.backend.kernels.clone().or_else(|| std::env::var("GPU_NN_KERNELS").ok().filter(|s| !s.is_empty()));
    Ok(match named {
        Some(n) if n != "auto" => KernelChoice::Named(n.parse()?),
        _ => KernelChoice::Tuned { cache: kernel_cache() },
    })
}

/// The GPU backend of `cfg` for batches of `batch`; says which kernels it chose when `verbose`.
pub fn gpu_backend(cfg: &Config, batch: usize, quiet: bool, verbose: bool) -> Result<GpuBackend> {
    let b = GpuBackend::new(&cfg.model, &cfg.optimizer, batch, cfg.backend.adapter.as_deref(), cfg.backend.stream, quiet, &kernel_choice(cfg)?)?;
    if verbose {
        eprintln!("{}", b.kernel_note());
    }
    Ok(b)
}

/// Builds the backend a configuration asks for; `batch` is the resolved batch size.
pub fn make_engine(cfg: &Config, batch: usize, console: &Console) -> Result<(Box<dyn Backend>, Engine)> {
    let open = || {
        #[allow(unused_mut)]
        let mut b = gpu_backend(cfg, batch, console.quiet, console.verbose)?;
        #[cfg(feature = "test-aids")]
        b.lose_device_at_step(std::env::var(LOSE_DEVICE_VAR).ok().and_then(|v| v.parse::<u64>().ok()));
        Ok(b)
    };
    Ok(match gpu_or_cpu(cfg, console, open)? {
        Some(b) => (Box::new(b), Engine::Gpu),
        None => cpu_backend(cfg),
    })
}

/// `make_engine` without the engine's name.
pub fn make_backend(cfg: &Config, batch: usize, console: &Console) -> Result<Box<dyn Backend>> {
    Ok(make_engine(cfg, batch, console)?.0)
}
