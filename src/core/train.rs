//! The training loop, backend-agnostic: per-epoch shuffle (seeded), batching, learning-rate
//! schedule, evaluation after every epoch. Backends receive many steps at once so the GPU can
//! encode them into few submissions; metrics come back only at chunk and epoch ends.
//!
//! The loop can start anywhere between two steps (`RunState`): a run resumed from a
//! checkpoint takes exactly the steps, with the same batches and learning rates, that the
//! uninterrupted run would have taken. It stops early on request (`Controls`: Ctrl-C, or a
//! step limit for tests, both through the same path), when the validation loss stops improving
//! (`training.early_stop`), when an epoch's accuracy reaches `training.target_acc`, or with a
//! `Diverged` error when the loss stops being finite.

use crate::core::config::Config;
use crate::core::metrics::{EpochMetrics, target_reached};
use crate::core::plan::Plan;
use crate::core::run_data::RunData;
use crate::core::run_state::RunState;
use crate::nn::backend::{Backend, EvalResult, Split, StepStats};
use anyhow::Result;
use std::sync::atomic::{AtomicBool, Ordering};
use web_time::Instant;

/// Steps per chunk: the granularity of progress updates and of the GPU's submissions, hence of
/// its checks for a non-finite loss and for an interrupt (the CPU checks after every step, see
/// `Backend::steps_per_call`). Chunks are aligned to multiples of this within an epoch, so a
/// resumed epoch is cut into the same chunks as an uninterrupted one.
pub const STEPS_PER_CHUNK: usize = 64;

/// The front-ends' `Controls::save_gap`: a second of training is what a killed run of short
/// epochs may lose, and the 2-4 ms of a save then cost under half a percent.
pub const SAVE_GAP: std::time::Duration = std::time::Duration::from_secs(1);

/// Why the observer is asked to persist the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveReason {
    /// An epoch ended (its metrics are the last entry of the history); `new_best` when early
    /// stopping is on and the validation loss improved.
    EpochEnd { new_best: bool },
    /// The run was interrupted between two steps.
    Interrupted,
    /// `Controls::checkpoint_every` elapsed inside an epoch; the run goes on.
    Periodic,
    /// An epoch ended less than `Controls::save_gap` after the last save, the run goes on and
    /// the epoch is no new best: the observer may keep the state (this is its last chance to
    /// read the epoch's parameters) and write it with the next save, or at an error.
    EpochEndDeferred,
}

/// What the loop reports while it runs.
pub trait Observer {
    /// After each chunk of steps: samples done in this epoch, of `total`, and running stats.
    fn progress(&mut self, _epoch: usize, _done: usize, _total: usize, _stats: &StepStats) {}
    /// After each epoch's evaluation; an error stops the run.
    fn epoch_end(&mut self, _m: &EpochMetrics, _backend: &mut dyn Backend) -> Result<()> {
        Ok(())
    }
    /// After `epoch_end`, and when the run is interrupted: the moment to write a checkpoint of
    /// `state` and the backend's parameters and optimiser state. An error stops the run.
    fn save(&mut self, _state: &RunState, _why: SaveReason, _backend: &mut dyn Backend) -> Result<()> {
        Ok(())
    }
}

/// An observer that does nothing (tests, parity).
pub struct Silent;
impl Observer for Silent {}

/// Requests to stop between two steps. Ctrl-C sets `interrupt`; `stop_after_steps` is the same
/// stop at a fixed step (tests use it to interrupt reproducibly through the Ctrl-C path).
/// `checkpoint_every` also saves the state inside an epoch, at the first chunk boundary after
/// that much time (a sweep cell on a cluster that may be killed and requeued at any moment).
/// `save_gap` is the least time between two epoch-end saves: a run of short epochs (the
/// documents' full-batch runs take 30-140 ms an epoch, a save some 4 ms with its fsyncs) saves
/// every so often instead of every epoch; the run's last epoch, an improved validation loss and
/// an interrupt always save (zero, the default: every epoch end saves).
/// `between_chunks` is awaited after every chunk of steps: a web page hands the browser its
/// turn there (to draw the progress bar) when the backend computes without awaiting anything.
#[derive(Clone, Copy, Default)]
pub struct Controls<'a> {
    pub interrupt: Option<&'a AtomicBool>,
    pub stop_after_steps: Option<u64>,
    pub checkpoint_every: Option<std::time::Duration>,
    pub save_gap: std::time::Duration,
    pub between_chunks: Option<&'a dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>>,
}

impl Controls<'_> {
    fn stop_requested(&self, step: u64) -> bool {
        self.interrupted() || self.stop_after_steps.is_some_and(|s| step >= s)
    }
    fn interrupted(&self) -> bool {
        self.interrupt.is_some_and(|f| f.load(Ordering::SeqCst))
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every epoch (or `max_steps`) done.
    Finished,
    /// Early stopping: the validation loss stopped improving.
    StoppedEarly,
    /// An epoch's accuracy reached `training.target_acc` (`metrics::target_reached` says where).
    ReachedTarget,
    /// Stopped on request between two steps; the observer saved the state.
    Interrupted,
}

pub struct RunResult {
    /// The metrics of every completed epoch, those before a resume included.
    pub metrics: Vec<EpochMetrics>,
    /// The last evaluation on the test set, if there is one.
    pub test: Option<EvalResult>,
    pub steps: u64,
    pub outcome: Outcome,
    /// Where the run stands at the end.
    pub state: RunState,
}

/// The loss (or a parameter) stopped being finite. Its message names the epoch (1-based, as
/// printed) and the steps; a run with a directory wraps it in `commands::run_dir::RunStopped`,
/// which adds where the last good checkpoint is.
#[derive(Debug, Clone, PartialEq)]
pub struct Diverged {
    /// e.g. "loss is NaN", "the weights hold inf".
    pub what: String,
    pub epoch: usize,
    /// The steps (1-based, counted over the run) in which it happened: the backends report
    /// the running loss per chunk of steps, so this is the chunk.
    pub first_step: u64,
    pub last_step: u64,
    pub lr: f64,
}

impl std::fmt::Display for Diverged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "training diverged: {} at epoch {}, ", self.what, self.epoch)?;
        if self.first_step < self.last_step {
            write!(f, "steps {}-{}", self.first_step, self.last_step)?;
        } else {
            write!(f, "step {}", self.last_step)?;
        }
        write!(f, " (lr {})", self.lr)
    }
}
impl std::error::Error for Diverged {}

/// "NaN", "inf" or "-inf".
pub fn nonfinite_name(x: f64) -> &'static str {
    if x.is_nan() {
        "NaN"
    } else if x > 0.0 {
        "inf"
    } else {
        "-inf"
    }
}

/// A whole run of `cfg` on `data` with a backend of your own (`Session` builds the backend
/// itself): plans it, sets the initial parameters, attaches the data and trains every epoch.
pub fn run(cfg: &Config, data: &RunData, backend: &mut dyn Backend, obs: &mut dyn Observer) -> Result<RunResult> {
    let plan = Plan::new(cfg.clone(), data.clone())?;
    backend.set_params(&plan.config().initial_params()?)?;
    attach_all(data, backend)?;
    train(&plan, backend, obs, RunState::default(), Controls::default())
}

/// Attaches every split of `data`.
pub fn attach_all(data: &RunData, backend: &mut dyn Backend) -> Result<()> {
    backend.attach(Split::Train, data.train.clone())?;
    if let Some(v) = &data.val {
        backend.attach(Split::Val, v.clone())?;
    }
    if let Some(t) = &data.test {
        backend.attach(Split::Test, t.clone())?;
    }
    Ok(())
}

/// `train` of `cfg` on `data` with a backend of your own, from `state`.
pub fn train_from(cfg: &Config, data: &RunData, backend: &mut dyn Backend, obs: &mut dyn Observer, state: RunState, ctl: Controls) -> Result<RunResult> {
    train(&Plan::new(cfg.clone(), data.clone())?, backend, obs, state, ctl)
}

/// Trains `plan` from `state` (the backend holding the matching parameters and optimiser
/// state, the data attached) to the end of the run, an early stop, or a requested stop at the
/// next chunk boundary.
pub fn train(plan: &Plan, backend: &mut dyn Backend, obs: &mut dyn Observer, state: RunState, ctl: Controls) -> Result<RunResult> {
    // natively every future the loop awaits is ready when polled (the GPU's readbacks poll the
    // device first), so this never waits on anything but the work itself
    pollster::block_on(train_async(plan, backend, obs, state, ctl))
}

/// `train`, awaiting the backend (`Backend::train_steps_async`, `evaluate_async`): the same
/// loop, which a web page runs without blocking its main thread.
pub async fn train_async(plan: &Plan, backend: &mut dyn Backend, obs: &mut dyn Observer, state: RunState, ctl: Controls<'_>) -> Result<RunResult> {
    let (cfg, data) = (plan.config(), plan.data());
    let n = data.train.len();
    let batch = plan.batch();
    let (steps_per_epoch, total_steps) = (plan.steps_per_epoch(), plan.total_steps());
    let mut p = state;
    let mut test = None;
    let mut outcome = Outcome::Finished;
    let lr_at = |epoch: usize, step: u64| plan.lr(epoch, step);
    let mut last_save = Instant::now();
    // read from the history, as a resumed run reads it, so no state records it
    let split = cfg.training.target_split(cfg.data.val_split);
    let reached = |p: &RunState| cfg.training.target_acc.is_some_and(|a| target_reached(&p.history, a, split).is_some());
    let goes_on = |p: &RunState| p.epoch < cfg.training.epochs && p.step < total_steps && !p.stopped_early && !reached(p);
    'epochs: while goes_on(&p) {
        let epoch = p.epoch;
        // an epoch cut short by max_steps and now continued replaces its metrics row
        p.history.retain(|m| m.epoch <= epoch);
        let start = Instant::now();
        let order = plan.epoch_order(epoch);
        let epoch_first_step = p.step - p.step_in_epoch as u64;
        let steps_this_epoch = steps_per_epoch.min((total_steps - epoch_first_step) as usize);
        while p.step_in_epoch < steps_this_epoch {
            if ctl.stop_requested(p.step) {
                p.epoch_seconds += start.elapsed().as_secs_f64();
                obs.save(&p, SaveReason::Interrupted, backend)?;
                outcome = Outcome::Interrupted;
                break 'epochs;
            }
            let s = p.step_in_epoch;
            let mut k = (STEPS_PER_CHUNK - s % STEPS_PER_CHUNK).min(steps_this_epoch - s);
            if let Some(limit) = ctl.stop_after_steps {
                k = k.min((limit - p.step) as usize);
            }
            // the chunk, in as many calls as the backend wants; an interrupt stops it between
            // two calls (the loop's next turn saves the state)
            let per_call = backend.steps_per_call().max(1);
            let mut done = 0;
            while done < k && !(done > 0 && ctl.interrupted()) {
                let m = per_call.min(k - done);
                let at = p.step_in_epoch;
                let lo = at * batch;
                let hi = ((at + m) * batch).min(n);
                let lrs: Vec<f64> = (0..m as u64).map(|i| lr_at(epoch, p.step + i)).collect();
                let st = backend.train_steps_async(&order[lo..hi], batch, &lrs).await?;
                if !st.loss_sum.is_finite() {
                    return Err(Diverged {
                        what: format!("loss is {}", nonfinite_name(st.loss_sum)),
                        epoch: epoch + 1,
                        first_step: p.step + 1,
                        last_step: p.step + m as u64,
                        lr: lrs[m - 1],
                    }
                    .into());
                }
                p.running.samples += st.samples;
                p.running.loss_sum += st.loss_sum;
                p.running.correct += st.correct;
                p.step_in_epoch += m;
                p.step += m as u64;
                done += m;
            }
            obs.progress(epoch, p.running.samples as usize, (steps_this_epoch * batch).min(n), &p.running);
            if let Some(pause) = ctl.between_chunks {
                pause().await;
            }
            if ctl.checkpoint_every.is_some_and(|every| last_save.elapsed() >= every) && p.step_in_epoch < steps_this_epoch {
                // the state as an interrupt here would save it; the loop itself goes on unchanged
                let mut here = p.clone();
                here.epoch_seconds += start.elapsed().as_secs_f64();
                obs.save(&here, SaveReason::Periodic, backend)?;
                last_save = Instant::now();
            }
        }
        let train_seconds = p.epoch_seconds + start.elapsed().as_secs_f64();
        let (train_loss, train_acc) = if cfg.training.eval_train {
            let r = backend.evaluate_async(Split::Train).await?;
            (r.loss(), r.accuracy())
        } else {
            let d = p.running.samples.max(1) as f64;
            (p.running.loss_sum / d, p.running.correct as f64 / d)
        };
        let lr = lr_at(epoch, p.step.saturating_sub(1));
        if !train_loss.is_finite() {
            let what = format!("the epoch's training loss is {}", nonfinite_name(train_loss));
            return Err(Diverged { what, epoch: epoch + 1, first_step: p.step, last_step: p.step, lr }.into());
        }
        let val = match &data.val {
            Some(_) => Some(backend.evaluate_async(Split::Val).await?),
            None => None,
        };
        let t = match &data.test {
            Some(_) => Some(backend.evaluate_async(Split::Test).await?),
            None => None,
        };
        let m = EpochMetrics {
            epoch: epoch + 1,
            step: p.step,
            lr,
            train_loss,
            train_acc,
            val_loss: val.as_ref().map(|r| r.loss()),
            val_acc: val.as_ref().map(|r| r.accuracy()),
            test_loss: t.as_ref().map(|r| r.loss()),
            test_acc: t.as_ref().map(|r| r.accuracy()),
            seconds: p.epoch_seconds + start.elapsed().as_secs_f64(),
            samples_per_sec: p.running.samples as f64 / train_seconds.max(1e-9),
        };
        // early stopping: compare with the best epoch before this one
        let mut new_best = false;
        if let (Some(patience), Some(l)) = (cfg.training.early_stop, m.val_loss) {
            match p.best_val() {
                Some((best, best_epoch)) if !(l < best) => p.stopped_early = m.epoch - best_epoch >= patience,
                _ => new_best = true,
            }
        }
        p.history.push(m.clone());
        if p.step_in_epoch >= steps_per_epoch {
            p.epoch += 1;
            p.step_in_epoch = 0;
            p.running = StepStats::default();
            p.epoch_seconds = 0.0;
        } else {
            // cut short by max_steps: stay inside the epoch, so a larger max_steps continues
            // its permutation where it stopped
            p.epoch_seconds = train_seconds;
        }
        obs.epoch_end(&m, backend)?;
        if new_best || !goes_on(&p) || last_save.elapsed() >= ctl.save_gap {
            obs.save(&p, SaveReason::EpochEnd { new_best }, backend)?;
            last_save = Instant::now();
        } else {
            obs.save(&p, SaveReason::EpochEndDeferred, backend)?;
        }
        test = t;
        if p.stopped_early {
            outcome = Outcome::StoppedEarly;
        }
    }
    if outcome != Outcome::Interrupted && reached(&p) {
        outcome = Outcome::ReachedTarget;
    } else if p.stopped_early {
        outcome = Outcome::StoppedEarly;
    }
    Ok(RunResult { metrics: p.history.clone(), test, steps: p.step, outcome, state: p })
}
