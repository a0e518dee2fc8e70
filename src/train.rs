//! The training loop, backend-agnostic: per-epoch shuffle (seeded), batching, learning-rate
//! schedule, evaluation after every epoch. Backends receive many steps at once so the GPU can
//! encode them into few submissions; metrics come back only at chunk and epoch ends.

use crate::backend::{Backend, EvalResult, Split, StepStats};
use crate::config::Config;
use crate::data::RunData;
use crate::init::{Stream, permutation, rng};
use crate::metrics::EpochMetrics;
use anyhow::Result;
use std::time::Instant;

/// Steps handed to the backend per call: the granularity of progress updates.
pub const STEPS_PER_CHUNK: usize = 64;

/// What the loop reports while it runs.
pub trait Observer {
    /// After each chunk of steps: samples done in this epoch, of `total`, and running stats.
    fn progress(&mut self, _epoch: usize, _done: usize, _total: usize, _stats: &StepStats) {}
    /// After each epoch's evaluation; an error stops the run.
    fn epoch_end(&mut self, _m: &EpochMetrics, _backend: &mut dyn Backend) -> Result<()> {
        Ok(())
    }
}

/// An observer that does nothing (tests, parity).
pub struct Silent;
impl Observer for Silent {}

pub struct RunResult {
    pub metrics: Vec<EpochMetrics>,
    /// The last evaluation on the test set, if there is one.
    pub test: Option<EvalResult>,
    pub steps: u64,
}

/// Batch order of epoch `epoch` (0-based): a permutation drawn from the seed, or file order.
pub fn epoch_order(cfg: &Config, n: usize, epoch: usize) -> Vec<u32> {
    if cfg.training.shuffle {
        permutation(n, &mut rng(cfg.training.seed, Stream::Shuffle(epoch)))
    } else {
        (0..n as u32).collect()
    }
}

/// Sets the initial parameters, attaches the data and trains for the configured epochs.
pub fn run(cfg: &Config, data: &RunData, backend: &mut dyn Backend, obs: &mut dyn Observer) -> Result<RunResult> {
    backend.set_params(&cfg.initial_params()?)?;
    attach_all(data, backend)?;
    train_epochs(cfg, data, backend, obs, 0)
}

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

/// Trains epochs `first_epoch..epochs` from the backend's current state.
pub fn train_epochs(cfg: &Config, data: &RunData, backend: &mut dyn Backend, obs: &mut dyn Observer, first_epoch: usize) -> Result<RunResult> {
    let n = data.train.len();
    let batch = cfg.training.batch_size.resolve(n).min(n);
    let steps_per_epoch = n.div_ceil(batch);
    let total_steps = cfg.training.max_steps.unwrap_or(u64::MAX).min((cfg.training.epochs * steps_per_epoch) as u64);
    let mut step = (first_epoch * steps_per_epoch) as u64;
    let mut metrics = Vec::new();
    let mut test = None;
    for epoch in first_epoch..cfg.training.epochs {
        if step >= total_steps {
            break;
        }
        let start = Instant::now();
        let order = epoch_order(cfg, n, epoch);
        let steps_this_epoch = steps_per_epoch.min((total_steps - step) as usize);
        let mut running = StepStats::default();
        let mut s = 0;
        while s < steps_this_epoch {
            let k = STEPS_PER_CHUNK.min(steps_this_epoch - s);
            let lo = s * batch;
            let hi = ((s + k) * batch).min(n);
            let lrs: Vec<f64> = (0..k as u64)
                .map(|i| cfg.optimizer.schedule.lr(cfg.optimizer.lr, epoch, step + i, total_steps))
                .collect();
            let st = backend.train_steps(&order[lo..hi], batch, &lrs)?;
            running.samples += st.samples;
            running.loss_sum += st.loss_sum;
            running.correct += st.correct;
            s += k;
            step += k as u64;
            obs.progress(epoch, running.samples as usize, (steps_this_epoch * batch).min(n), &running);
        }
        let train_seconds = start.elapsed().as_secs_f64();
        let (train_loss, train_acc) = if cfg.training.eval_train {
            let r = backend.evaluate(Split::Train)?;
            (r.loss(), r.accuracy())
        } else {
            let d = running.samples.max(1) as f64;
            (running.loss_sum / d, running.correct as f64 / d)
        };
        let val = data.val.as_ref().map(|_| backend.evaluate(Split::Val)).transpose()?;
        let t = data.test.as_ref().map(|_| backend.evaluate(Split::Test)).transpose()?;
        let m = EpochMetrics {
            epoch: epoch + 1,
            step,
            lr: cfg.optimizer.schedule.lr(cfg.optimizer.lr, epoch, step.saturating_sub(1), total_steps),
            train_loss,
            train_acc,
            val_loss: val.as_ref().map(|r| r.loss()),
            val_acc: val.as_ref().map(|r| r.accuracy()),
            test_loss: t.as_ref().map(|r| r.loss()),
            test_acc: t.as_ref().map(|r| r.accuracy()),
            seconds: start.elapsed().as_secs_f64(),
            samples_per_sec: running.samples as f64 / train_seconds.max(1e-9),
        };
        obs.epoch_end(&m, backend)?;
        metrics.push(m);
        test = t;
    }
    Ok(RunResult { metrics, test, steps: step })
}
