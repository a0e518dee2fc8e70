//! What computes a run: `Engine`, the one typed name of it (a checkpoint records it), and
//! `Engines`, the one place backends are built. A configuration asks for `auto`, `cpu` or `gpu`
//! with a precision, threads, an adapter and kernels; `Engines` resolves that against the
//! machine (`auto` takes the GPU only where it is a real one) and builds the backend, sharing
//! what the sessions of one process can share: a device per adapter, the decision `auto` made,
//! and the last GPU backend when the next run differs only in what reaches the kernels per step
//! (a sweep's cells).

use crate::core::config::{BackendConfig, BackendKind, Precision};
use crate::core::plan::Plan;
use crate::core::settings::Settings;
use crate::cpu::{FastBackend, ReferenceBackend, all_cores};
use crate::gpu::tuning::KernelSelection;
use crate::gpu::{Gpu, GpuBackend, KernelChoice, KernelConfig};
use crate::nn::backend::Backend;
use crate::nn::model::ModelSpec;
use crate::nn::optim::{OptimizerSpec, Schedule};
use anyhow::{Result, bail};
use std::collections::HashMap;

/// What computes a run. Resuming on another engine would change the results (f64 against f32
/// rounding, the GPU's summation order), so a resume refuses that.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Engine {
    /// The CPU f64 reference.
    CpuF64,
    /// The CPU f32 fast path.
    CpuF32,
    /// The WGSL kernels on a GPU adapter.
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

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Engine {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu-f64" => Ok(Engine::CpuF64),
            "cpu-f32" => Ok(Engine::CpuF32),
            "gpu" => Ok(Engine::Gpu),
            _ => bail!("unknown engine '{s}'; expected cpu-f64, cpu-f32 or gpu"),
        }
    }
}
crate::serde_via_string!(Engine);

/// A built backend: the CPU ones through the `Backend` trait, the GPU one as itself, for what
/// only it has (poisoning its buffers, its kernels, its counters).
pub enum Computer {
    Cpu(Box<dyn Backend>),
    Gpu(Box<GpuBackend>),
}

impl Computer {
    pub fn backend(&mut self) -> &mut dyn Backend {
        match self {
            Computer::Cpu(b) => b.as_mut(),
            Computer::Gpu(b) => b.as_mut(),
        }
    }
    pub fn describe(&self) -> String {
        match self {
            Computer::Cpu(b) => b.describe(),
            Computer::Gpu(b) => b.describe(),
        }
    }
    pub fn gpu(&mut self) -> Option<&mut GpuBackend> {
        match self {
            Computer::Gpu(b) => Some(b),
            Computer::Cpu(_) => None,
        }
    }
}

/// A backend `Engines::build` made, with what it is and whether it came with the plan's data
/// already attached (a kept GPU backend of the same data).
pub struct Built {
    pub computer: Computer,
    pub engine: Engine,
    pub attached: bool,
}

/// The builder of every session's backend (see the module's comment).
pub struct Engines {
    settings: Settings,
    /// A device given from outside (a web page's WebGPU adapter, the kernel workbench's): every
    /// GPU engine runs on it.
    given: Option<Gpu>,
    /// The devices opened, by adapter choice ("" for the default one).
    gpus: HashMap<String, Gpu>,
    /// What `auto` decided per backend configuration: the GPU or not.
    decided: HashMap<String, bool>,
    /// The GPU backend handed back last, and what it was built for (`reuse_key`).
    kept: Option<(String, GpuBackend)>,
    notes: Vec<String>,
    /// Devices opened and backends built so far (a sweep reports them).
    pub devices_opened: usize,
    pub backends_built: usize,
}

impl Engines {
    pub fn new(settings: Settings) -> Engines {
        Engines { settings, given: None, gpus: HashMap::new(), decided: HashMap::new(), kept: None, notes: Vec::new(), devices_opened: 0, backends_built: 0 }
    }

    /// With a device opened already (a web page's WebGPU adapter, the kernel workbench's):
    /// every GPU engine runs on `gpu`, whatever adapter a configuration names.
    pub fn with_gpu(settings: Settings, gpu: Gpu) -> Engines {
        Engines { given: Some(gpu), ..Engines::new(settings) }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The notes the choices made so far left for the user (a CPU-emulated adapter skipped, a
    /// GPU that could not be opened), each once.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// The kernels a configuration's backend section asks for: its own selection, else the
    /// settings', else `auto`, which is what the settings make of it. The one place `auto` is
    /// read.
    pub fn kernel_choice(&self, b: &BackendConfig) -> KernelChoice {
        match b.kernels.or(self.settings.kernels).unwrap_or(KernelSelection::Auto) {
            KernelSelection::Named(n) => KernelChoice::Named(n),
            KernelSelection::Auto => self.settings.auto_kernels.clone(),
        }
    }

    /// The engine `plan` runs on; `auto` decides once per backend configuration (opening the
    /// device it takes). `gpu` fails when no device opens; `auto` then takes the CPU and says
    /// why, and takes it too when every adapter is CPU-emulated (lavapipe is several times
    /// slower than the CPU backend on the same cores).
    pub fn engine_for(&mut self, plan: &Plan) -> Result<Engine> {
        let b = &plan.config().backend;
        let cpu = match b.precision {
            Precision::F64 => Engine::CpuF64,
            Precision::F32 => Engine::CpuF32,
        };
        let key = serde_json::to_string(b)?;
        if let Some(&on_gpu) = self.decided.get(&key) {
            return Ok(if on_gpu { Engine::Gpu } else { cpu });
        }
        let on_gpu = match b.kind {
            BackendKind::Cpu => false,
            BackendKind::Gpu => {
                self.device(b.adapter.as_deref())?;
                true
            }
            BackendKind::Auto if b.precision == Precision::F64 => false,
            BackendKind::Auto if self.given.is_none() && b.adapter.is_none() && self.settings.adapter.is_none() && only_emulated_adapters() => {
                self.note("note: the only GPU adapters here are CPU-emulated (see gpu-nn adapters), slower than the CPU backend; training on the CPU (--backend gpu uses the emulated adapter anyway)");
                false
            }
            BackendKind::Auto => match self.device(b.adapter.as_deref()) {
                Ok(_) => true,
                Err(e) => {
                    self.note(&format!("note: no usable GPU ({}); training on the CPU", format!("{e:#}").replace('\n', " ")));
                    false
                }
            },
        };
        self.decided.insert(key, on_gpu);
        Ok(if on_gpu { Engine::Gpu } else { cpu })
    }

    /// The device for `adapter` (the configuration's, else the settings'), opened on first use.
    fn device(&mut self, adapter: Option<&str>) -> Result<Gpu> {
        if let Some(g) = &self.given {
            return Ok(g.clone());
        }
        let choice = adapter.map(str::to_string).or_else(|| self.settings.adapter.clone());
        let key = choice.clone().unwrap_or_default();
        if let Some(g) = self.gpus.get(&key) {
            return Ok(g.clone());
        }
        let g = Gpu::new(choice.as_deref(), self.settings.quiet)?;
        self.devices_opened += 1;
        self.gpus.insert(key, g.clone());
        Ok(g)
    }

    fn note(&mut self, line: &str) {
        if !self.notes.iter().any(|n| n == line) {
            self.notes.push(line.to_string());
        }
    }

    /// The backend for `plan`: a fresh CPU one, or a GPU one on the shared device: the one
    /// handed back last (`keep`) when it was built for the same model, optimiser, backend
    /// settings, data and micro-batch size, else a new one. Where `auto` took the GPU and its
    /// backend cannot be built there (the model does not fit the device, say), it takes the
    /// CPU and says why.
    pub fn build(&mut self, plan: &Plan) -> Result<Built> {
        let mut engine = self.engine_for(plan)?;
        let cfg = plan.config();
        if engine == Engine::Gpu {
            match self.build_gpu(plan) {
                Ok(b) => return Ok(b),
                Err(e) if cfg.backend.kind == BackendKind::Auto => {
                    self.note(&format!("note: no usable GPU ({}); training on the CPU", format!("{e:#}").replace('\n', " ")));
                    self.decided.insert(serde_json::to_string(&cfg.backend)?, false);
                    engine = self.engine_for(plan)?;
                }
                Err(e) => return Err(e),
            }
        }
        self.backends_built += 1;
        let b: Box<dyn Backend> = match engine {
            Engine::CpuF64 => Box::new(ReferenceBackend::new(&cfg.model, &cfg.optimizer)),
            _ => Box::new(FastBackend::with_threads(&cfg.model, &cfg.optimizer, cfg.backend.threads.unwrap_or_else(all_cores))),
        };
        Ok(Built { computer: Computer::Cpu(b), engine, attached: false })
    }

    fn build_gpu(&mut self, plan: &Plan) -> Result<Built> {
        let cfg = plan.config();
        let gpu = self.device(cfg.backend.adapter.as_deref())?;
        let key = reuse_key(&gpu, plan)?;
        if let Some((k, b)) = self.kept.take() {
            if k == key {
                return Ok(Built { computer: Computer::Gpu(Box::new(b)), engine: Engine::Gpu, attached: true });
            }
            // dropped here: its buffers are freed before the next backend allocates
        }
        let mut b = GpuBackend::with_gpu(gpu, &cfg.model, &cfg.optimizer, plan.batch(), cfg.backend.stream, &self.kernel_choice(&cfg.backend))?;
        b.lose_device_at_step(self.settings.lose_device_at_step);
        self.backends_built += 1;
        Ok(Built { computer: Computer::Gpu(Box::new(b)), engine: Engine::Gpu, attached: false })
    }

    /// A GPU backend for `spec` trained with `opt` in batches of `batch`, with the kernels of
    /// `config` exactly: the kernel workbench's variants, held to the reference one by one.
    pub fn build_with_kernels(&mut self, spec: &ModelSpec, opt: &OptimizerSpec, batch: usize, config: KernelConfig) -> Result<GpuBackend> {
        let gpu = self.device(None)?;
        let b = GpuBackend::with_config(gpu, spec, opt, batch, false, config)?;
        self.backends_built += 1;
        Ok(b)
    }

    /// Takes back a GPU backend built for `plan`, with its data attached, for the next plan
    /// that can reuse it; a CPU backend is dropped (they are cheap to build).
    pub fn keep(&mut self, computer: Computer, plan: &Plan) {
        if let Computer::Gpu(b) = computer {
            if let Ok(key) = reuse_key(b.gpu(), plan) {
                self.kept = Some((key, *b));
            }
        }
    }
}

/// What a GPU backend is built for: two plans with the same key can share one backend (which
/// then only gets new parameters, zeroing the optimiser state and its step counter). The
/// learning rate and schedule reach the kernels per step; batch sizes that take the same
/// micro-batches (`GpuBackend::rows_cap_for`) give identical results.
fn reuse_key(gpu: &Gpu, plan: &Plan) -> Result<String> {
    let cfg = plan.config();
    let rows = GpuBackend::rows_cap_for(gpu, &cfg.model, plan.batch());
    let mut opt = cfg.optimizer.clone();
    opt.lr = 0.0;
    opt.schedule = Schedule::Constant;
    opt.warmup_steps = 0;
    Ok(format!(
        "{rows}|{}|{}|{}|{}",
        serde_json::to_string(&cfg.model)?,
        serde_json::to_string(&opt)?,
        serde_json::to_string(&cfg.backend)?,
        serde_json::to_string(&cfg.data)?
    ))
}

/// Whether adapters exist and every one is CPU-emulated.
fn only_emulated_adapters() -> bool {
    let all = crate::gpu::list_adapters(&crate::gpu::context::instance());
    !all.is_empty() && all.iter().all(|a| a.is_software())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_is_named_as_checkpoints_record_it() {
        for e in [Engine::CpuF64, Engine::CpuF32, Engine::Gpu] {
            assert_eq!(e.to_string().parse::<Engine>().unwrap(), e);
            assert_eq!(serde_json::to_value(e).unwrap(), serde_json::json!(e.name()));
        }
        assert_eq!(Engine::CpuF32.name(), "cpu-f32");
        assert!("cuda".parse::<Engine>().is_err());
    }

    #[test]
    fn the_configuration_names_the_kernels_before_the_settings_and_auto_is_the_settings_choice() {
        let cache = std::path::PathBuf::from("/nonexistent/kernels.json");
        let settings = Settings { kernels: Some("tiled-32".parse().unwrap()), auto_kernels: KernelChoice::Tuned { cache: Some(cache.clone()) }, ..Default::default() };
        let e = Engines::new(settings);
        let mut b = crate::core::config::Config::default().backend;
        assert_eq!(e.kernel_choice(&b), KernelChoice::Named(crate::gpu::KernelName::Tiled32));
        b.kernels = Some(KernelSelection::Auto);
        assert_eq!(e.kernel_choice(&b), KernelChoice::Tuned { cache: Some(cache) });
        b.kernels = Some("plain".parse().unwrap());
        assert_eq!(e.kernel_choice(&b), KernelChoice::Named(crate::gpu::KernelName::Plain));
        assert_eq!(Engines::new(Settings::default()).kernel_choice(&crate::core::config::Config::default().backend), KernelChoice::Default);
    }
}
