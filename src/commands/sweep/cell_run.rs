//! Trains the cells of a sweep, each into its own run directory (`DIR/cells/NAME`, as
//! `gpu-nn train --out` writes it), sharing what the cells can share:
//! - the data: loaded (and decoded) once per data configuration, handed to every backend as
//!   the same `Arc`s;
//! - on the GPU, one device (`Gpu` clones share wgpu's device and queue), opened once; and one
//!   backend (kernels compiled, buffers allocated, data uploaded) for consecutive cells that
//!   differ only in what reaches the kernels per step: the learning rate, the schedule, the
//!   batch size within one micro-batch size (`GpuBackend::rows_cap_for`). A cell only replaces
//!   the parameters, which zeroes the optimiser state and its step counter;
//! - on the CPU, nothing but the data: each cell gets a fresh backend (they are cheap).
//!
//! A cell whose `result.json` exists is finished and skipped; one with a checkpoint resumes
//! from it, so a killed and requeued shard loses at most the steps since its last checkpoint
//! and computes the same bytes as an uninterrupted one.

use crate::commands::run_dir::{RUN_FILES, diverged, execute, lock_run_dir};
use crate::commands::setup::{Engine, cpu_backend, gpu_or_cpu, kernel_choice};
use crate::commands::sweep::record::{CellOutcome, CellResult, RESULT_FILE, identity};
use crate::atomic_file::write_atomic;
use crate::nn::backend::Backend;
use crate::core::checkpoint::{CHECKPOINT_FILE, read_checkpoint};
use crate::core::config::Config;
use crate::core::metrics::to_csv;
use crate::core::run_data::{self, RunData};
use crate::core::run_state::RunState;
use crate::core::train::{Controls, Outcome, step_counts};
use crate::gpu::{Gpu, GpuBackend};
use crate::report::console::Console;
use anyhow::{Result, bail};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// How a cell's turn ended.
pub enum CellRun {
    /// It had finished before (its `result.json`).
    Skipped(CellResult),
    /// It ran to its end now; `resumed_from` says where its checkpoint stood, if it had one.
    Ran { result: CellResult, resumed_from: Option<String> },
    /// Ctrl-C or SIGTERM stopped it between two steps; its checkpoint holds the state.
    Interrupted { at: String },
}

/// The engines and data the cells share.
pub struct CellRunner {
    console: Console,
    data: HashMap<String, RunData>,
    /// Whether a backend configuration (`cfg.backend`) runs on the GPU; decided once.
    on_gpu: HashMap<String, bool>,
    /// The devices opened, by `--adapter` ("" for the default one).
    gpus: HashMap<String, Gpu>,
    /// The GPU backend of the last GPU cell and what it was built for (`gpu_key`).
    gpu_backend: Option<(String, GpuBackend)>,
    pub devices_opened: usize,
    pub backends_built: usize,
}

impl CellRunner {
    pub fn new(console: Console) -> CellRunner {
        CellRunner { console, data: HashMap::new(), on_gpu: HashMap::new(), gpus: HashMap::new(), gpu_backend: None, devices_opened: 0, backends_built: 0 }
    }

    /// The data `cfg` names, loaded on first use; sets the input statistics of `--standardize`.
    fn data(&mut self, cfg: &mut Config) -> Result<RunData> {
        let key = serde_json::to_string(&cfg.data)?;
        if !self.data.contains_key(&key) {
            let data = run_data::prepare(&mut cfg.clone(), self.console.quiet)?;
            self.data.insert(key.clone(), data);
        }
        let data = self.data[&key].clone();
        if cfg.data.standardize {
            cfg.model.input_norm = data.train.pixel_stats()?;
        }
        run_data::check(cfg, &data)?;
        Ok(data)
    }

    /// The backend for `cfg`: a fresh CPU one, or the kept GPU one when it fits `cfg` (else a
    /// new one on the kept device).
    fn backend<'a>(&'a mut self, cfg: &Config, data: &RunData, data_key: &str) -> Result<(Slot<'a>, Engine)> {
        let bkey = serde_json::to_string(&cfg.backend)?;
        let adapter = cfg.backend.adapter.clone().unwrap_or_default();
        if !self.on_gpu.contains_key(&bkey) {
            let kept = self.gpus.get(&adapter).cloned();
            let quiet = self.console.quiet;
            let opened = gpu_or_cpu(cfg, &self.console, || match kept {
                Some(g) => Ok(g),
                None => Gpu::new(cfg.backend.adapter.as_deref(), quiet),
            })?;
            if let Some(g) = &opened {
                if !self.gpus.contains_key(&adapter) {
                    self.devices_opened += 1;
                    self.gpus.insert(adapter.clone(), g.clone());
                }
            }
            self.on_gpu.insert(bkey.clone(), opened.is_some());
        }
        let on_gpu = self.on_gpu[&bkey];
        if !on_gpu {
            let (mut b, engine) = cpu_backend(cfg);
            self.backends_built += 1;
            crate::core::train::attach_all(data, b.as_mut())?;
            return Ok((Slot::Owned(b), engine));
        }
        let gpu = self.gpus[&adapter].clone();
        let n_batch = cfg.training.batch_size.resolve(data.train.len());
        let rows = GpuBackend::rows_cap_for(&gpu, &cfg.model, n_batch);
        // what the backend is built for; the learning rate and schedule reach it per step
        let mut opt = cfg.optimizer.clone();
        opt.lr = 0.0;
        opt.schedule = crate::nn::optim::Schedule::Constant;
        let key = format!("{rows}|{}|{}|{}|{data_key}", serde_json::to_string(&cfg.model)?, serde_json::to_string(&opt)?, serde_json::to_string(&cfg.backend)?);
        if self.gpu_backend.as_ref().is_none_or(|(k, _)| *k != key) {
            self.gpu_backend = None; // free the previous backend's buffers first
            let mut b = GpuBackend::with_gpu(gpu, &cfg.model, &cfg.optimizer, n_batch, cfg.backend.stream, &kernel_choice(cfg)?)?;
            crate::core::train::attach_all(data, &mut b)?;
            self.backends_built += 1;
            self.gpu_backend = Some((key, b));
        }
        Ok((Slot::Kept(&mut self.gpu_backend.as_mut().unwrap().1), Engine::Gpu))
    }

    /// Runs cell `name` of configuration `cfg` in `dir`: skipped when finished, resumed from
    /// its checkpoint, or trained from the start. With `force` an earlier result there is
    /// discarded. Another configuration's run there is refused (or, with `force`, replaced).
    pub fn run(&mut self, cfg: &Config, name: &str, values: &[String], dir: &Path, force: bool, ctl: Controls) -> Result<CellRun> {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: cannot create the cell's directory: {e}", dir.display()))?;
        // held while the cell runs: a requeued task whose first run still lives waits its turn
        let _lock = lock_run_dir(dir)?;
        let cfg_path = dir.join("config.json");
        let stale = if cfg_path.is_file() {
            let there = identity(&Config::from_layers(&[Config::load_file(&cfg_path)?])?)?;
            let now = identity(cfg)?;
            if there != now && !force {
                let diff = crate::core::config::first_difference(&there, &now).unwrap_or_default();
                bail!("{}: holds a run of another configuration ({diff}, there vs this sweep); use another --out, or --force to recompute it", dir.display());
            }
            there != now
        } else {
            false
        };
        if force || stale {
            for f in RUN_FILES.iter().copied().chain([RESULT_FILE]) {
                match std::fs::remove_file(dir.join(f)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => bail!("{}: cannot remove the earlier {f}: {e}", dir.display()),
                    _ => {}
                }
            }
        } else if let Some(done) = CellResult::read(dir)? {
            return Ok(CellRun::Skipped(done));
        }

        let mut cfg = cfg.clone();
        let data = self.data(&mut cfg)?;
        let data_key = serde_json::to_string(&cfg.data)?;
        let start = Instant::now();
        let quiet = self.console.quiet;
        let (mut slot, engine) = self.backend(&cfg, &data, &data_key)?;
        let backend = slot.get();
        let describe = backend.describe();

        // where to start: the checkpoint, if it is this configuration's on this engine
        let mut state = RunState::default();
        let mut resumed_from = None;
        let ck_path = dir.join(CHECKPOINT_FILE);
        if ck_path.is_file() {
            let (ck, _) = read_checkpoint(&ck_path)?;
            let trained = Config::from_layers(std::slice::from_ref(&ck.meta.config))?.maths_only();
            if trained == cfg.maths_only() && ck.meta.engine == engine.name() {
                backend.set_params(&ck.params)?;
                backend.set_optimizer_state(&ck.optim)?;
                state = ck.meta.state.clone();
                resumed_from = Some(state.describe());
            } else if !quiet {
                eprintln!("note: {}: its checkpoint was computed on {} (or another configuration); training the cell again on {}", dir.display(), ck.meta.engine, engine.name());
            }
        }
        if resumed_from.is_none() {
            write_atomic(&cfg_path, serde_json::to_string_pretty(&cfg)?.as_bytes())?;
            backend.set_params(&cfg.initial_params()?)?;
        } else if !state.history.is_empty() {
            // metrics.csv holds exactly the checkpoint's rows, as after gpu-nn train --resume
            write_atomic(&dir.join("metrics.csv"), to_csv(&state.history).as_bytes())?;
        }
        let total_steps = step_counts(&cfg, data.train.len()).1;
        let complete = state.stopped_early || (state.step_in_epoch == 0 && state.epoch >= cfg.training.epochs) || state.step >= total_steps;
        let outcome = if complete {
            // killed after its last checkpoint but before its result: the checkpoint has it all
            CellOutcome::Trained(state.history.clone())
        } else {
            let at = state.describe();
            match execute(&cfg, &data, backend, engine, Some(dir.to_path_buf()), &Console::quiet(), state, ctl, resumed_from.clone()) {
                Ok(r) if r.outcome == Outcome::Interrupted => return Ok(CellRun::Interrupted { at: r.state.describe() }),
                Ok(r) => CellOutcome::Trained(r.metrics),
                Err(e) if diverged(&e).is_some() => CellOutcome::Diverged(format!("{e}")),
                Err(e) => return Err(e.context(format!("sweep cell {name} (resumed from {at})"))),
            }
        };
        let seconds = match &outcome {
            CellOutcome::Trained(m) => m.iter().map(|m| m.seconds).sum(),
            CellOutcome::Diverged(_) => start.elapsed().as_secs_f64(),
        };
        let result = CellResult::new(name.to_string(), values.to_vec(), outcome, describe, seconds);
        result.write(dir)?;
        Ok(CellRun::Ran { result, resumed_from })
    }
}

/// A cell's backend: its own (CPU) or the kept GPU one.
enum Slot<'a> {
    Owned(Box<dyn Backend>),
    Kept(&'a mut GpuBackend),
}

impl Slot<'_> {
    fn get(&mut self) -> &mut dyn Backend {
        match self {
            Slot::Owned(b) => b.as_mut(),
            Slot::Kept(b) => *b,
        }
    }
}
