//! `gpu-nn train`: resolve the configuration, load the data, pick the backend, train, and write
//! the run directory (config.json, metrics.csv, model.safetensors, checkpoint.safetensors,
//! best.safetensors with early stopping) as it goes; `gpu-nn train --resume DIR` continues a
//! run from its checkpoint.

use crate::core::backend::{Backend, StepStats};
use crate::core::checkpoint::{BEST_FILE, CHECKPOINT_FILE, CHECKPOINT_FORMAT, Checkpoint, CheckpointMeta, FileDtype, load_checkpoint, save_checkpoint, save_model};
use crate::commands::args::ConfigArgs;
use crate::core::config::{BackendKind, Config, Precision};
use crate::cpu::{FastBackend, ReferenceBackend};
use crate::core::run_data::RunData;
use crate::atomic_file::write_atomic;
use crate::gpu::GpuBackend;
use crate::core::metrics::{EpochMetrics, to_csv};
use crate::report::console::LogFormat;
use crate::core::optim::Schedule;
use crate::core::run_state::RunState;
use crate::core::train::{Controls, Diverged, Observer, Outcome, RunResult, SaveReason, nonfinite_name, step_counts};
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

/// What computes a run. A checkpoint records it: resuming on another engine would change the
/// results (f64 vs f32 rounding, GPU summation order), so a resume refuses that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    CpuF64,
    CpuF32,
    Gpu,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::CpuF64 => "cpu-f64",
            Engine::CpuF32 => "cpu-f32",
            Engine::Gpu => "gpu",
        }
    }
}

/// Builds the backend a configuration asks for; `batch` is the resolved batch size. `auto`
/// takes the GPU when an adapter exists (and f32 was asked for), else the CPU.
pub fn make_backend(cfg: &Config, batch: usize, quiet: bool) -> Result<Box<dyn Backend>> {
    Ok(make_engine(cfg, batch, quiet)?.0)
}

/// `make_backend`, also saying which engine it built.
pub fn make_engine(cfg: &Config, batch: usize, quiet: bool) -> Result<(Box<dyn Backend>, Engine)> {
    let cpu = |p: Precision| -> (Box<dyn Backend>, Engine) {
        match p {
            Precision::F64 => (Box::new(ReferenceBackend::new(&cfg.model, &cfg.optimizer)), Engine::CpuF64),
            Precision::F32 => (Box::new(FastBackend::new(&cfg.model, &cfg.optimizer)), Engine::CpuF32),
        }
    };
    let gpu = || -> Result<(Box<dyn Backend>, Engine)> {
        let mut b = GpuBackend::new(&cfg.model, &cfg.optimizer, batch, cfg.backend.adapter.as_deref(), cfg.backend.stream, quiet)?;
        b.lose_device_at_step(std::env::var("GPU_NN_TEST_LOSE_DEVICE_AT_STEP").ok().and_then(|v| v.parse().ok())); // moved to commands::setup
        Ok((Box::new(b), Engine::Gpu))
    };
    match cfg.backend.kind {
        BackendKind::Cpu => Ok(cpu(cfg.backend.precision)),
        BackendKind::Gpu => gpu(),
        BackendKind::Auto if cfg.backend.precision == Precision::F64 => Ok(cpu(Precision::F64)),
        BackendKind::Auto => match gpu() {
            Ok(b) => Ok(b),
            Err(e) => {
                if !quiet {
                    eprintln!("note: no usable GPU ({}); training on the CPU", format!("{e:#}").replace('\n', " "));
                }
                Ok(cpu(cfg.backend.precision))
            }
        },
    }
}

/// Precision the model file is written in: what the backend computed in.
pub fn file_dtype(cfg: &Config) -> FileDtype {
    match cfg.backend.precision {
        Precision::F64 if cfg.backend.kind != BackendKind::Gpu => FileDtype::F64,
        _ => FileDtype::F32,
    }
}

/// Prepares `--out DIR`: refuses to overwrite an earlier run without `force`, checks it is
/// writable before any training starts.
/// Bytes a run directory of `cfg` needs at most: model and best model in f64, the checkpoint
/// (weights and up to two optimiser slots in f64, while its temporary copy is written), plus
/// metrics and pictures.
pub fn run_dir_bytes(cfg: &Config) -> u64 {
    let p = cfg.model.num_params() as u64;
    p * 8 * (2 + 2 * 3) + (4 << 20)
}

pub fn prepare_out_dir(dir: &Path, force: bool) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("--out {}: exists and is not a directory", dir.display());
    }
    if !force && dir.join("config.json").exists() {
        bail!("--out {}: already holds a run (config.json); pass --force to overwrite it", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("--out {}: cannot create the directory", dir.display()))?;
    let probe = dir.join(".gpu-nn-write-test");
    std::fs::write(&probe, b"ok").with_context(|| format!("--out {}: the directory is not writable", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    if force {
        // an overwritten run starts without the previous run's checkpoint and best model
        for f in [CHECKPOINT_FILE, BEST_FILE] {
            let _ = std::fs::remove_file(dir.join(f));
        }
    }
    Ok(())
}

/// Progress bar per epoch, summary line per epoch, files rewritten after every epoch.
pub struct RunObserver {
    pub cfg: Config,
    pub out: Option<PathBuf>,
    pub quiet: bool,
    pub rows: Vec<EpochMetrics>,
    /// Recorded in checkpoints.
    pub engine: Engine,
    /// Optimiser steps of the whole run (for the learning rate in messages).
    pub total_steps: u64,
    /// Where the newest checkpoint on disk stands (`RunState::describe`), if there is one.
    pub last_checkpoint: Option<String>,
    /// Text summaries or one JSON object per epoch (`--log-format`).
    pub log_format: LogFormat,
    bar: Option<ProgressBar>,
}

impl RunObserver {
    pub fn new(cfg: &Config, out: Option<PathBuf>, quiet: bool) -> Self {
        let engine = match (cfg.backend.kind, cfg.backend.precision) {
            (BackendKind::Gpu, _) => Engine::Gpu,
            (_, Precision::F64) => Engine::CpuF64,
            _ => Engine::CpuF32,
        };
        RunObserver { cfg: cfg.clone(), out, quiet, rows: Vec::new(), engine, total_steps: u64::MAX, last_checkpoint: None, log_format: LogFormat::Text, bar: None }
    }

    /// Parameters and optimiser state, refusing non-finite values: a checkpoint must be a
    /// state worth resuming from.
    fn snapshot(&self, state: &RunState, backend: &mut dyn Backend) -> Result<Checkpoint> {
        let params = backend.params()?;
        let optim = backend.optimizer_state()?;
        let bad_param = params.layers.iter().flat_map(|l| l.weight.iter().chain(&l.bias)).find(|x| !x.is_finite());
        let bad_state = optim.slots.iter().flat_map(|l| l.iter().flatten().flatten()).find(|x| !x.is_finite());
        if let Some((what, x)) = bad_param.map(|x| ("the weights hold", x)).or(bad_state.map(|x| ("the optimiser state holds", x))) {
            let (epoch, lr) = match state.history.last() {
                Some(m) if state.step_in_epoch == 0 && m.epoch == state.epoch => (m.epoch, m.lr),
                _ => {
                    let lr = self.cfg.optimizer.schedule.lr(self.cfg.optimizer.lr, state.epoch, state.step.saturating_sub(1), self.total_steps);
                    (state.epoch + 1, lr)
                }
            };
            return Err(Diverged { what: format!("{what} {}", nonfinite_name(*x)), epoch, first_step: state.step, last_step: state.step, lr }.into());
        }
        let meta = CheckpointMeta {
            format: CHECKPOINT_FORMAT,
            architecture: self.cfg.model.clone(),
            optimizer: self.cfg.optimizer.kind,
            optim_step: optim.step,
            engine: self.engine.name().to_string(),
            config: serde_json::to_value(self.cfg.maths_only())?,
            state: state.clone(),
        };
        Ok(Checkpoint { meta, params, optim })
    }

    /// The divergence error completed with where the last good checkpoint is.
    /// Any error that stops a run (divergence, a lost device, a failed write) completed with
    /// where the last good checkpoint is, so nobody thinks the run is lost.
    fn explain(&self, e: anyhow::Error) -> anyhow::Error {
        let d = match e.downcast_ref::<Diverged>() {
            Some(d) => d.to_string(),
            None => format!("{e:#}"),
        };
        match (&self.out, &self.last_checkpoint) {
            (Some(dir), Some(at)) => anyhow::anyhow!("{d}; the last good checkpoint ({at}) is in {}", dir.display()),
            (Some(_), None) => anyhow::anyhow!("{d}; no checkpoint had been written yet"),
            (None, _) => e,
        }
    }
}

impl Observer for RunObserver {
    fn progress(&mut self, epoch: usize, done: usize, total: usize, st: &StepStats) {
        if self.quiet {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let b = ProgressBar::new(total as u64);
            b.set_style(
                ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}")
                    .unwrap()
                    .progress_chars("=> "),
            );
            b.set_prefix(format!("{}/{}", epoch + 1, self.cfg.training.epochs));
            b
        });
        bar.set_position(done as u64);
        bar.set_message(format!("loss {:.4}", st.loss_sum / st.samples.max(1) as f64));
    }

    fn epoch_end(&mut self, m: &EpochMetrics, _backend: &mut dyn Backend) -> Result<()> {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        if !self.quiet {
            match self.log_format {
                LogFormat::Text => println!("{}", m.summary(self.cfg.training.epochs)),
                LogFormat::Json => println!("{}", crate::report::console::epoch_json(m)),
            }
        }
        self.rows.push(m.clone());
        Ok(())
    }

    /// Writes best.safetensors (when the validation loss improved), model.safetensors and
    /// metrics.csv (at epoch ends), then the checkpoint: last, so that whenever it exists the
    /// other files are at least as new; a resume rewrites metrics.csv from it.
    fn save(&mut self, state: &RunState, why: SaveReason, backend: &mut dyn Backend) -> Result<()> {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        let Some(dir) = self.out.clone() else { return Ok(()) };
        let ck = self.snapshot(state, backend)?;
        if let SaveReason::EpochEnd { new_best } = why {
            if new_best {
                save_model(&dir.join(BEST_FILE), &ck.params, &self.cfg.model, file_dtype(&self.cfg))?;
            }
            save_model(&dir.join("model.safetensors"), &ck.params, &self.cfg.model, file_dtype(&self.cfg))?;
            write_atomic(&dir.join("metrics.csv"), to_csv(&state.history).as_bytes())?;
            // pictures: curves.png / curves.svg, redrawn with every epoch
            crate::report::plots::write_curves(&dir, &state.history, &crate::report::plots::run_title(&self.cfg), !self.cfg.training.eval_train)?;
        }
        save_checkpoint(&dir.join(CHECKPOINT_FILE), &ck)?;
        self.last_checkpoint = Some(state.describe());
        Ok(())
    }
}

/// The whole `train` command.
pub fn train_command(cfg: &Config, out: Option<PathBuf>, force: bool, quiet: bool) -> Result<RunResult> {
    train_with(cfg, out, force, quiet, Controls::default(), LogFormat::Text)
}

/// `train_command` with stop requests (Ctrl-C, `--stop-after-steps`).
pub fn train_with(cfg: &Config, out: Option<PathBuf>, force: bool, quiet: bool, ctl: Controls, log_format: LogFormat) -> Result<RunResult> {
    crate::report::console::set_quiet(quiet);
    if let Some(dir) = &out {
        prepare_out_dir(dir, force)?;
        // a full disk is reported now rather than as a failed write after hours of training
        let need = run_dir_bytes(cfg);
        if let Ok(free) = fs4::available_space(dir) {
            if free < need {
                bail!(
                    "--out {}: only {} KiB free on its file system; this run writes up to {} KiB (model, checkpoint, pictures)",
                    dir.display(),
                    free >> 10,
                    need >> 10
                );
            }
        }
    }
    let mut cfg = cfg.clone();
    let data = crate::core::run_data::prepare(&mut cfg, quiet)?;
    let cfg = &cfg;
    cfg.check_against_data(data.train.sample_len, data.train.num_classes, &data.train.source, data.train.len())?;
    let (mut backend, engine) = make_engine(cfg, cfg.training.batch_size.resolve(data.train.len()), quiet)?;
    if !quiet {
        crate::report::console::info(log_format, quiet, &format!(
            "training {} on {} ({} train{}{} samples) with {}",
            cfg.model.layers.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("-"),
            cfg.data.dataset.name(),
            data.train.len(),
            data.val.as_ref().map(|v| format!(", {} val", v.len())).unwrap_or_default(),
            data.test.as_ref().map(|t| format!(", {} test", t.len())).unwrap_or_default(),
            backend.describe()
        ));
    }
    if let Some(dir) = &out {
        write_atomic(&dir.join("config.json"), serde_json::to_string_pretty(cfg)?.as_bytes())?;
    }
    backend.set_params(&cfg.initial_params()?)?;
    crate::core::train::attach_all(&data, backend.as_mut())?;
    execute(cfg, &data, backend.as_mut(), engine, out, quiet, RunState::default(), ctl, None, log_format)
}

/// Flags that may accompany `--resume`: they change neither the steps nor their maths.
const RESUME_FLAGS: &str = "--epochs, --max-steps, --data, --adapter and --quiet";

/// `gpu-nn train --resume DIR`: continues the run in DIR from its checkpoint, with the same
/// batches, learning rates and optimiser state it would have had without the interruption.
/// `flags` may only extend the run (`--epochs`, `--max-steps`) or say where the data and the
/// adapter are.
pub fn resume_command(dir: &Path, flags: &ConfigArgs, quiet: bool, ctl: Controls, log_format: LogFormat) -> Result<RunResult> {
    crate::report::console::set_quiet(quiet);
    let name = dir.display();
    let changing = flags.flags_changing_the_maths()?;
    if !changing.is_empty() {
        bail!(
            "--resume continues {name} exactly as it was configured; {} would change the training (with --resume only {RESUME_FLAGS} may be given; to change it, start a new run with --config {name}/config.json --out NEW_DIR)",
            changing.join(", ")
        );
    }
    let cfg_path = dir.join("config.json");
    if !cfg_path.is_file() {
        bail!("--resume {name}: no config.json there; is it a run directory written by gpu-nn train --out?");
    }
    let ck_path = dir.join(CHECKPOINT_FILE);
    if !ck_path.is_file() {
        bail!(
            "--resume {name}: no {CHECKPOINT_FILE}: the run ended before its first checkpoint; start it again with gpu-nn train --config {name}/config.json --out {name} --force"
        );
    }
    let mut cfg = flags.resolve_over(&[Config::load_file(&cfg_path)?])?;
    let ck = load_checkpoint(&ck_path)?;
    // read through the defaults, so settings added to gpu-nn after the checkpoint compare equal
    let trained = Config::from_layers(std::slice::from_ref(&ck.meta.config))
        .map_err(|e| anyhow::anyhow!("{}: the configuration in the checkpoint is invalid: {e:#}", ck_path.display()))?
        .maths_only();
    if trained != cfg.maths_only() {
        let diff = crate::core::config::first_difference(&serde_json::to_value(&trained)?, &serde_json::to_value(cfg.maths_only())?)
            .unwrap_or_default();
        bail!(
            "--resume {name}: config.json differs from the configuration {CHECKPOINT_FILE} was trained with ({diff}, checkpoint vs config.json); restore it, or start a new run with --config {name}/config.json --out NEW_DIR"
        );
    }
    let state = ck.meta.state.clone();
    let needed = state.epoch + (state.step_in_epoch > 0) as usize;
    if cfg.training.epochs < needed {
        bail!("--epochs {}: the run in {name} is already at {}; give at least --epochs {needed}", cfg.training.epochs, state.describe());
    }
    if let Some(m) = cfg.training.max_steps.filter(|&m| m < state.step) {
        bail!("--max-steps {m}: the run in {name} has already taken {} steps", state.step);
    }
    if matches!(cfg.optimizer.schedule, Schedule::Cosine { .. }) && (flags.epochs.is_some() || flags.max_steps.is_some()) && !quiet {
        eprintln!("note: the cosine schedule spans the whole run; a new length changes the learning rate of the remaining steps");
    }
    let done = state.stopped_early
        || (state.step_in_epoch == 0 && state.epoch >= cfg.training.epochs)
        || cfg.training.max_steps.is_some_and(|m| state.step >= m);
    if done {
        if !quiet {
            if state.stopped_early {
                crate::report::console::info(log_format, quiet, &format!("nothing to resume: early stopping ended the run in {name} after epoch {}", state.epoch));
            } else {
                crate::report::console::info(log_format, quiet, &format!("nothing to resume: the run in {name} is complete ({}); give a larger --epochs or --max-steps to extend it", state.describe()));
            }
        }
        let outcome = if state.stopped_early { Outcome::StoppedEarly } else { Outcome::Finished };
        return Ok(RunResult { metrics: state.history.clone(), test: None, steps: state.step, outcome, state });
    }

    let data = crate::core::run_data::prepare(&mut cfg, quiet)?;
    let n = data.train.len();
    cfg.check_against_data(data.train.sample_len, data.train.num_classes, &data.train.source, n)?;
    let (steps_per_epoch, _) = step_counts(&cfg, n);
    if state.step != (state.epoch * steps_per_epoch + state.step_in_epoch) as u64 || state.step_in_epoch > steps_per_epoch {
        bail!(
            "--resume {name}: the checkpoint is at step {} ({}), which does not fit {steps_per_epoch} steps per epoch over the {n} training samples of {}; is --data the same data set?",
            state.step,
            state.describe(),
            data.train.source
        );
    }
    let (mut backend, engine) = make_engine(&cfg, cfg.training.batch_size.resolve(n), quiet)?;
    if engine.name() != ck.meta.engine {
        bail!(
            "--resume {name}: the run was computed on {} but would now run on {} ({}); resuming on another engine would change the results",
            ck.meta.engine,
            engine.name(),
            backend.describe()
        );
    }
    backend.set_params(&ck.params)?;
    backend.set_optimizer_state(&ck.optim)?;
    crate::core::train::attach_all(&data, backend.as_mut())?;
    if !quiet {
        crate::report::console::info(log_format, quiet, &format!("resuming {name} from {} ({} epochs in all) with {}", state.describe(), cfg.training.epochs, backend.describe()));
    }
    // config.json says how long the run now is; metrics.csv holds exactly the checkpoint's rows
    write_atomic(&cfg_path, serde_json::to_string_pretty(&cfg)?.as_bytes())?;
    if !state.history.is_empty() {
        write_atomic(&dir.join("metrics.csv"), to_csv(&state.history).as_bytes())?;
    }
    let at = state.describe();
    execute(&cfg, &data, backend.as_mut(), engine, Some(dir.to_path_buf()), quiet, state, ctl, Some(at), log_format)
}

/// Trains from `state` with a `RunObserver`, then says how the run ended.
#[allow(clippy::too_many_arguments)]
pub(crate) fn execute(
    cfg: &Config,
    data: &RunData,
    backend: &mut dyn Backend,
    engine: Engine,
    out: Option<PathBuf>,
    quiet: bool,
    state: RunState,
    ctl: Controls,
    last_checkpoint: Option<String>,
    log_format: LogFormat,
) -> Result<RunResult> {
    let mut obs = RunObserver::new(cfg, out.clone(), quiet);
    obs.log_format = log_format;
    obs.engine = engine;
    obs.total_steps = step_counts(cfg, data.train.len()).1;
    obs.last_checkpoint = last_checkpoint;
    obs.rows = state.history.clone();
    let result = crate::core::train::train_from(cfg, data, backend, &mut obs, state, ctl).map_err(|e| obs.explain(e))?;
    match result.outcome {
        Outcome::Interrupted => {
            // also with --quiet: it answers the user's Ctrl-C and says how to go on
            let at = result.state.describe();
            match &out {
                Some(dir) => eprintln!(
                    "interrupted at {at}; checkpoint written to {}; resume with: gpu-nn train --resume {}",
                    dir.join(CHECKPOINT_FILE).display(),
                    dir.display()
                ),
                None => eprintln!("interrupted at {at}; nothing was saved (no --out)"),
            }
        }
        Outcome::StoppedEarly if !quiet => {
            let patience = cfg.training.early_stop.unwrap_or(0);
            let (best, best_epoch) = result.state.best_val().unwrap_or((f64::NAN, 0));
            let kept = out.as_ref().map(|d| format!("; the best model is {}", d.join(BEST_FILE).display())).unwrap_or_default();
            crate::report::console::info(log_format, quiet, &format!("early stopping: the validation loss has not improved for {patience} epoch(s); best {best:.5} after epoch {best_epoch}{kept}"));
        }
        _ => {}
    }
    if let (Some(dir), false) = (&out, result.outcome == Outcome::Interrupted) {
        // pictures: the confusion matrix of the last test evaluation
        if let (Some(test), Some(eval)) = (&data.test, &result.test) {
            let c = crate::report::confusion::Confusion::of_eval(cfg, test, eval)?;
            crate::report::plots::write_confusion(dir, &c, &crate::report::plots::run_title(cfg))?;
        }
        crate::report::console::info(log_format, quiet, &format!("wrote {}", dir.display()));
    }
    Ok(result)
}
