//! A run directory (`--out DIR`): checked before training starts (`prepare_out_dir`), written
//! as training goes by `RunObserver` (config.json, metrics.csv, model.safetensors,
//! checkpoint.safetensors, best.safetensors with early stopping, target.json with a target
//! accuracy, pictures, the TensorBoard event file), and a session trained into it (`execute`),
//! as `gpu-nn train` and each cell of `gpu-nn sweep` do; the session opened with the console's
//! notes (`open_session`).

use crate::atomic_file::write_atomic;
use crate::core::checkpoint::{BEST_FILE, CHECKPOINT_FILE, CHECKPOINT_FORMAT, Checkpoint, CheckpointMeta, FileDtype, save_checkpoint, save_model};
use crate::core::config::{BackendKind, Config, Precision};
use crate::core::metrics::{EpochMetrics, target_line, target_reached, to_csv};
use crate::core::run_state::RunState;
use crate::core::train::{Controls, Diverged, Observer, Outcome, RunResult, SaveReason, nonfinite_name};
use crate::core::{Engine, Engines, Session, Settings};
use crate::nn::backend::{Backend, StepStats};
use crate::report::console::Console;
use crate::report::tensorboard::{EventWriter, SessionStart, remove_event_files};
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

/// An error that stopped a run writing into a directory (a divergence, a lost device, a failed
/// write), with where the last good checkpoint is, so nobody thinks the run is lost. The cause
/// stays typed: `diverged` finds a divergence under it.
#[derive(Debug)]
pub struct RunStopped {
    pub cause: anyhow::Error,
    pub dir: PathBuf,
    /// Where the newest checkpoint stands (`RunState::describe`); `None` before the first.
    pub last_checkpoint: Option<String>,
}

impl RunStopped {
    /// The divergence that stopped the run, if that is what did.
    pub fn diverged(&self) -> Option<&Diverged> {
        self.cause.downcast_ref::<Diverged>()
    }
}

impl std::fmt::Display for RunStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the cause's own account on one line, then where the run can be picked up
        match self.cause.downcast_ref::<Diverged>() {
            Some(d) => write!(f, "{d}")?,
            None => write!(f, "{:#}", self.cause)?,
        }
        match &self.last_checkpoint {
            Some(at) => write!(f, "; the last good checkpoint ({at}) is in {}", self.dir.display()),
            None => write!(f, "; no checkpoint had been written yet"),
        }
    }
}

// No `source()`: the message already holds the cause, and `{:#}` would print it twice.
impl std::error::Error for RunStopped {}

/// The divergence in `e`, whether it stopped a run in a directory or one without.
pub fn diverged(e: &anyhow::Error) -> Option<&Diverged> {
    e.downcast_ref::<Diverged>().or_else(|| e.downcast_ref::<RunStopped>().and_then(RunStopped::diverged))
}

/// Precision the model file is written in: what the backend computed in.
pub fn file_dtype(cfg: &Config) -> FileDtype {
    match cfg.backend.precision {
        Precision::F64 if cfg.backend.kind != BackendKind::Gpu => FileDtype::F64,
        _ => FileDtype::F32,
    }
}

/// Bytes a run directory of `cfg` needs at most: model and best model in f64, the checkpoint
/// (weights and up to two optimiser slots in f64, while its temporary copy is written), plus
/// metrics and pictures.
pub fn run_dir_bytes(cfg: &Config) -> u64 {
    let p = cfg.model.num_params() as u64;
    p * 8 * (2 + 2 * 3) + (4 << 20)
}

/// The files a run writes into its directory, besides its TensorBoard event file
/// (`events.out.tfevents.*`, `report::tensorboard`), whose name changes from run to run:
/// `--force` removes these and the directory's event files, and nothing else there.
pub const RUN_FILES: [&str; 10] = [
    "config.json",
    "metrics.csv",
    TARGET_FILE,
    "model.safetensors",
    CHECKPOINT_FILE,
    BEST_FILE,
    "curves.png",
    "curves.svg",
    "confusion.csv",
    "confusion.png",
];

/// What a run with `training.target_acc` says of it when it ends (not when interrupted):
/// the target, its split and, when reached, the epoch, step, seconds and accuracy
/// (`metrics::TargetReached`); `reached` null when not.
pub const TARGET_FILE: &str = "target.json";

/// The lock file of a run directory; it holds the pid of the run writing there.
pub const LOCK_FILE: &str = ".gpu-nn.lock";

/// A run directory held for writing: an exclusive lock on its `LOCK_FILE`, released when this
/// is dropped or the process ends however it ends (the OS drops the lock with the process, so
/// a killed run never blocks the next).
#[derive(Debug)]
pub struct RunDirLock {
    _file: std::fs::File,
}

/// Another process holds a run directory's lock (`lock_run_dir`): a sweep leaves such a cell to
/// its holder.
#[derive(Debug)]
pub struct RunDirBusy {
    pub dir: PathBuf,
    /// "another gpu-nn process (pid N)".
    pub holder: String,
}

impl std::fmt::Display for RunDirBusy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} is writing to this run directory; wait for it to finish or use another directory", self.dir.display(), self.holder)
    }
}
impl std::error::Error for RunDirBusy {}

/// Takes `dir`'s lock, or says which process holds it (`RunDirBusy`).
pub fn lock_run_dir(dir: &Path) -> Result<RunDirLock> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(LOCK_FILE);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("{}: cannot open the run directory's lock file", path.display()))?;
    match f.try_lock() {
        Ok(()) => {
            // the holder's pid, for the message a second run prints
            let _ = f.set_len(0).and_then(|()| f.rewind()).and_then(|()| write!(f, "{}", std::process::id()));
            // what a run killed mid-write left: with the lock held, nobody else writes here
            crate::atomic_file::remove_stale_temporaries(dir, std::time::Duration::ZERO)?;
            Ok(RunDirLock { _file: f })
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            let holder = match pid.trim() {
                "" => "another gpu-nn process".to_string(),
                p => format!("another gpu-nn process (pid {p})"),
            };
            Err(RunDirBusy { dir: dir.to_path_buf(), holder }.into())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("{}: cannot lock the run directory", path.display())),
    }
}

/// Prepares `--out DIR`: refuses to overwrite an earlier run without `force`, checks it is
/// writable before any training starts, locks it for this run and, with `force`, removes the
/// earlier run's files (only `RUN_FILES` and event files), so the directory never mixes two runs.
pub fn prepare_out_dir(dir: &Path, force: bool) -> Result<RunDirLock> {
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
    let lock = lock_run_dir(dir)?;
    if force {
        for f in RUN_FILES {
            match std::fs::remove_file(dir.join(f)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("--out {} --force: cannot remove the earlier run's {f}", dir.display()));
                }
                _ => {}
            }
        }
        remove_event_files(dir).with_context(|| format!("--out {} --force: cannot remove the earlier run's event file", dir.display()))?;
    }
    Ok(lock)
}

/// Progress bar per epoch, summary line per epoch, files rewritten at epoch ends (all but
/// those the loop defers, `Controls::save_gap`).
pub struct RunObserver {
    pub cfg: Config,
    pub out: Option<PathBuf>,
    pub console: Console,
    /// Epochs ended since the files were last written at an epoch end: the event file lacks
    /// their scalars.
    unwritten: Vec<EpochMetrics>,
    /// The last epoch end the loop deferred, as its checkpoint: written with the next save,
    /// or when an error stops the run.
    deferred: Option<Checkpoint>,
    /// Recorded in checkpoints.
    pub engine: Engine,
    /// Optimiser steps of the whole run (for the learning rate in messages).
    pub total_steps: u64,
    /// Where the newest checkpoint on disk stands (`RunState::describe`), if there is one.
    pub last_checkpoint: Option<String>,
    /// The directory's TensorBoard event file, when there is a directory.
    pub events: Option<EventWriter>,
    /// Samples per step and steps per epoch: what turns a progress update into the run's step.
    pub batch: usize,
    pub steps_per_epoch: usize,
    /// A failed write of the event file in `progress`, which cannot return it: the next
    /// epoch end or save does.
    events_failed: Option<anyhow::Error>,
    bar: Option<ProgressBar>,
    /// When curves.png was last drawn, and the rows it lacks since (`CURVES_EVERY`).
    curves_drawn: Option<std::time::Instant>,
    curves_stale: bool,
}

/// Least time between two drawings of curves.png / curves.svg at epoch ends: a drawing takes
/// ~35 ms, which at every epoch of the documents' 500-epoch full-batch runs (70-200 ms epochs)
/// was 17 s a run. The picture is at most this old while a run goes on, and whole at its end.
const CURVES_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

impl RunObserver {
    /// Draws curves.png / curves.svg in `dir` from `rows` where they lack some of them.
    pub fn draw_curves(&mut self, dir: &Path, rows: &[EpochMetrics]) -> Result<()> {
        if self.curves_stale {
            crate::report::plots::write_curves(dir, rows, &crate::report::plots::run_title(&self.cfg), !self.cfg.training.eval_train)?;
            (self.curves_drawn, self.curves_stale) = (Some(std::time::Instant::now()), false);
        }
        Ok(())
    }

    pub fn new(cfg: &Config, out: Option<PathBuf>, engine: Engine, console: Console) -> Self {
        RunObserver {
            cfg: cfg.clone(),
            out,
            console,
            unwritten: Vec::new(),
            deferred: None,
            engine,
            total_steps: u64::MAX,
            last_checkpoint: None,
            events: None,
            batch: 0,
            steps_per_epoch: 0,
            events_failed: None,
            bar: None,
            curves_drawn: None,
            curves_stale: false,
        }
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
                    let lr = self.cfg.optimizer.lr_at(state.epoch, state.step.saturating_sub(1), self.total_steps);
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
            cpu: (self.engine != Engine::Gpu).then(crate::cpu::instruction_sets),
            config: serde_json::to_value(self.cfg.maths_only())?,
            state: state.clone(),
        };
        Ok(Checkpoint { meta, params, optim })
    }

    /// Any error that stops a run with a directory, as a `RunStopped` saying where the last
    /// good checkpoint is: a deferred epoch end's, written now where it can be.
    fn explain(&mut self, e: anyhow::Error) -> anyhow::Error {
        if let (Some(dir), Some(ck)) = (self.out.clone(), self.deferred.take())
            && let Err(w) = self.write_epoch_end(&dir, &ck, false, true)
        {
            return RunStopped { cause: e.context(format!("the run's last epoch ends were not written either: {w:#}")), dir, last_checkpoint: self.last_checkpoint.clone() }.into();
        }
        match &self.out {
            Some(dir) => RunStopped { cause: e, dir: dir.clone(), last_checkpoint: self.last_checkpoint.clone() }.into(),
            None => e,
        }
    }
}

impl Observer for RunObserver {
    fn progress(&mut self, epoch: usize, done: usize, total: usize, st: &StepStats) {
        if let (Some(events), None, true) = (&mut self.events, &self.events_failed, self.batch > 0) {
            // every step of the epoch but its last takes a whole batch
            let step = (epoch * self.steps_per_epoch + done.div_ceil(self.batch)) as u64;
            if let Err(e) = events.running_loss(step, st.loss_sum / st.samples.max(1) as f64) {
                self.events_failed = Some(e);
            }
        }
        if self.console.quiet {
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
        if let Some(e) = self.events_failed.take() {
            return Err(e);
        }
        self.console.epoch(m, self.cfg.training.epochs);
        if self.out.is_some() {
            self.unwritten.push(m.clone());
        }
        Ok(())
    }

    /// At an epoch end, writes its files (`write_epoch_end`); one the loop defers is kept
    /// for later. An interrupt or a periodic save first writes the files of a deferred epoch
    /// end, then the checkpoint of the state now.
    fn save(&mut self, state: &RunState, why: SaveReason, backend: &mut dyn Backend) -> Result<()> {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        let Some(dir) = self.out.clone() else { return Ok(()) };
        if let Some(e) = self.events_failed.take() {
            return Err(e);
        }
        let ck = self.snapshot(state, backend)?;
        match why {
            SaveReason::EpochEndDeferred => self.deferred = Some(ck),
            SaveReason::EpochEnd { new_best } => {
                self.deferred = None;
                self.write_epoch_end(&dir, &ck, new_best, true)?;
            }
            SaveReason::Interrupted | SaveReason::Periodic => {
                if let Some(d) = self.deferred.take() {
                    self.write_epoch_end(&dir, &d, false, false)?;
                }
                save_checkpoint(&dir.join(CHECKPOINT_FILE), &ck)?;
                self.last_checkpoint = Some(state.describe());
            }
        }
        Ok(())
    }
}

impl RunObserver {
    /// The files of the epoch end `ck`: best.safetensors (when the validation loss improved),
    /// model.safetensors, metrics.csv and the scalars of the epochs ended since the last
    /// such write in the event file, then, with `checkpoint`, the checkpoint: last, so that
    /// whenever it exists the other files are at least as new; a resume rewrites metrics.csv
    /// and cuts the event file back to it.
    fn write_epoch_end(&mut self, dir: &Path, ck: &Checkpoint, new_best: bool, checkpoint: bool) -> Result<()> {
        let dtype = file_dtype(&self.cfg);
        if new_best {
            save_model(&dir.join(BEST_FILE), &ck.params, &self.cfg.model, dtype)?;
        }
        save_model(&dir.join("model.safetensors"), &ck.params, &self.cfg.model, dtype)?;
        let state = &ck.meta.state;
        write_atomic(&dir.join("metrics.csv"), to_csv(&state.history).as_bytes())?;
        // (an epoch after `ck`'s, whose state could not be saved, stays out of the file)
        let last = state.history.last().map_or(0, |m| m.epoch);
        let (rows, later) = std::mem::take(&mut self.unwritten).into_iter().partition(|m| m.epoch <= last);
        self.unwritten = later;
        for m in &rows {
            if let Some(events) = &mut self.events {
                events.epoch(m)?;
            }
        }
        // pictures: curves.png / curves.svg, redrawn with an epoch when the last drawing
        // is old enough (and when the run ends: `draw_curves`)
        self.curves_stale = true;
        if self.curves_drawn.is_none_or(|t| t.elapsed() >= CURVES_EVERY) {
            self.draw_curves(dir, &state.history)?;
        }
        if checkpoint {
            save_checkpoint(&dir.join(CHECKPOINT_FILE), ck)?;
            self.last_checkpoint = Some(state.describe());
        }
        Ok(())
    }
}

/// A session `open` builds with engines of `env` (quiet as the console is), its notes printed
/// and, with `--verbose`, how the GPU's kernels were chosen.
pub fn open_session(env: &Settings, console: &Console, open: impl FnOnce(&mut Engines) -> Result<Session>) -> Result<Session> {
    let mut engines = Engines::new(Settings { quiet: console.quiet, ..env.clone() });
    let opened = open(&mut engines);
    for n in engines.take_notes() {
        console.note(&n);
    }
    let mut session = opened?;
    for n in session.take_notes() {
        console.note(&n);
    }
    if console.verbose {
        if let Some(k) = session.kernel_note() {
            eprintln!("{k}");
        }
    }
    Ok(session)
}

/// Rewrites `dir`'s metrics.csv to hold exactly the rows of `state` (a run resumed from its
/// checkpoint, whose metrics.csv may have rows of epochs the checkpoint does not).
pub fn rewrite_metrics(dir: &Path, state: &RunState) -> Result<()> {
    if !state.history.is_empty() {
        write_atomic(&dir.join("metrics.csv"), to_csv(&state.history).as_bytes())?;
    }
    Ok(())
}

/// Trains `session` from where it stands with a `RunObserver` writing `out`, then says how the
/// run ended. `last_checkpoint` is where the checkpoint it was resumed from stands (`None` for a
/// new run); `hparams`, a sweep cell's values for TensorBoard's HParams table.
pub fn execute(
    session: &mut Session,
    out: Option<PathBuf>,
    console: &Console,
    ctl: Controls,
    last_checkpoint: Option<String>,
    hparams: Option<&SessionStart>,
) -> Result<RunResult> {
    let cfg = session.config().clone();
    let cfg = &cfg;
    let mut obs = RunObserver::new(cfg, out.clone(), session.engine(), *console);
    obs.total_steps = session.plan().total_steps();
    (obs.batch, obs.steps_per_epoch) = (session.plan().batch(), session.plan().steps_per_epoch());
    if let Some(dir) = &out {
        // a resumed run goes on in its event file, cut back to its checkpoint
        let mut events = match &last_checkpoint {
            Some(_) => EventWriter::resume(dir, session.state())?,
            None => EventWriter::create(dir)?,
        };
        if let Some(h) = hparams.filter(|_| !events.session_started()) {
            events.session_start(h)?;
        }
        obs.events = Some(events);
    }
    obs.last_checkpoint = last_checkpoint;
    let result = session.train(&mut obs, ctl).map_err(|e| obs.explain(e))?;
    if let Some(dir) = &out {
        obs.draw_curves(dir, &result.state.history)?;
    }
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
        Outcome::StoppedEarly => {
            let patience = cfg.training.early_stop.unwrap_or(0);
            let (best, best_epoch) = result.state.best_val().unwrap_or((f64::NAN, 0));
            let kept = out.as_ref().map(|d| format!("; the best model is {}", d.join(BEST_FILE).display())).unwrap_or_default();
            console.info(&format!("early stopping: the validation loss has not improved for {patience} epoch(s); best {best:.5} after epoch {best_epoch}{kept}"));
        }
        _ => {}
    }
    if let (Some(target), false) = (cfg.training.target_acc, result.outcome == Outcome::Interrupted) {
        let split = cfg.training.target_split(cfg.data.val_split);
        console.info(&target_line(&result.metrics, target, split));
        let reached = target_reached(&result.metrics, target, split);
        if let Some(dir) = &out {
            let record = serde_json::json!({ "target_acc": target, "split": split, "reached": reached, "epochs": result.metrics.len(), "steps": result.steps });
            write_atomic(&dir.join(TARGET_FILE), serde_json::to_string_pretty(&record)?.as_bytes())?;
        }
        if let (Some(events), Some(t)) = (&mut obs.events, reached) {
            events.target(&t)?;
        }
    }
    if let (Some(dir), false) = (&out, result.outcome == Outcome::Interrupted) {
        // pictures: the confusion matrix of the last test evaluation
        if let (Some(test), Some(eval)) = (&session.plan().data().test, &result.test) {
            let c = crate::report::confusion::Confusion::of_eval(cfg, test, eval)?;
            crate::report::confusion_picture::write_confusion(dir, &c, &crate::report::plots::run_title(cfg))?;
        }
        if let (Some(events), Some(last)) = (&mut obs.events, result.metrics.last()) {
            events.pictures(dir, last.epoch)?;
        }
        console.info(&format!("wrote {}", dir.display()));
    }
    Ok(result)
}
