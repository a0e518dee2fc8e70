//! A run resolved once (`Plan`): the configuration, frozen after its data has been measured;
//! the data; the batch size, the steps per epoch and the steps of the whole run; each step's
//! samples and learning rate. Every front-end asks the plan instead of working these out again.

use crate::core::config::{BackendConfig, Config};
use crate::core::run_data::{self, RunData};
use crate::data::Dataset;
use crate::data::DataKind;
use crate::nn::augment::{Augment, AugmentSpec};
use crate::nn::dropout::Dropout;
use crate::nn::init::{Stream, permutation, rng};
use anyhow::{Context, Result};
use std::sync::Arc;

/// The most optimiser steps a run may count (2⁶³ − 1, what the step counters hold).
pub const MAX_STEPS: u64 = i64::MAX as u64;

/// A run's immutable plan. Cheap to clone (the data is shared).
#[derive(Clone)]
pub struct Plan {
    cfg: Config,
    data: RunData,
    batch: usize,
    steps_per_epoch: usize,
    total_steps: u64,
    dropout: Dropout,
    augment: Option<Augment>,
}

impl Plan {
    /// `cfg` on `data`: shaped by the data (`--hidden`), validated, the class names and the
    /// training split's input statistics (`data.standardize`) measured, checked against the
    /// data, the counts resolved.
    pub fn new(mut cfg: Config, data: RunData) -> Result<Plan> {
        run_data::fit_shape(&mut cfg, &data)?;
        cfg.validate()?;
        let data = run_data::measure(&mut cfg, data)?;
        if let (Some(a), None, None) = (cfg.training.target_acc, &data.val, &data.test) {
            anyhow::bail!("--target-acc {a} is measured on the validation split or the test set, and this data has neither; add --val-split N");
        }
        Plan::resolved(cfg, data)
    }

    /// Loads the data `cfg` names (from `sources` where its `data.dir` is unset; downloading
    /// with a progress bar unless `quiet`), then `new`.
    #[cfg(feature = "cli")]
    pub fn load(cfg: Config, sources: &crate::data::DataSources, quiet: bool) -> Result<Plan> {
        let data = run_data::load_with(&cfg, sources, quiet)?;
        Plan::new(cfg, data)
    }

    /// A plan to evaluate a trained model (`cfg` holds its architecture and input statistics,
    /// which are kept as they are) on `test`: nothing is measured, and the test set stands in
    /// for the training set, which an evaluation never attaches.
    pub fn evaluation(cfg: Config, test: Arc<Dataset>) -> Result<Plan> {
        let data = RunData { train: test.clone(), val: None, test: Some(test), classes: Vec::new(), kind: crate::data::DataKind::Pictures };
        let data = run_data::with_feature_norm(&cfg, data);
        Plan::resolved(cfg, data)
    }

    fn resolved(cfg: Config, data: RunData) -> Result<Plan> {
        let n = data.train.len();
        let batch = cfg.training.batch_size.resolve(n).clamp(1, n.max(1));
        let steps_per_epoch = n.div_ceil(batch);
        let epochs = cfg.training.epochs;
        // the step counters are u64 and never wrap: a run longer than 2^63 steps is refused
        let all = (epochs as u64).checked_mul(steps_per_epoch as u64).filter(|&s| s <= MAX_STEPS).with_context(|| {
            format!("--epochs {epochs}: {epochs} epochs of {steps_per_epoch} steps are more than the {MAX_STEPS} steps a run may count")
        })?;
        let total_steps = cfg.training.max_steps.unwrap_or(u64::MAX).min(all);
        let t = &cfg.training;
        let dropout = Dropout::new(&cfg.model, t.input_dropout, &t.dropout, t.seed, batch)?;
        let augment = match t.augment.filter(|a| a.is_on()) {
            Some(spec) => Some(augment_for(spec, &data, t.seed, batch)?),
            None => None,
        };
        Ok(Plan { cfg, data, batch, steps_per_epoch, total_steps, dropout, augment })
    }

    /// The same run computed elsewhere: `change` edits the backend section (engine, threads,
    /// adapter, kernels), which never changes the maths' definition, only its rounding.
    pub fn with_backend(&self, change: impl FnOnce(&mut BackendConfig)) -> Plan {
        let mut p = self.clone();
        change(&mut p.cfg.backend);
        p
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
    pub fn data(&self) -> &RunData {
        &self.data
    }
    /// Samples per optimiser step (the last step of an epoch may take fewer).
    pub fn batch(&self) -> usize {
        self.batch
    }
    pub fn steps_per_epoch(&self) -> usize {
        self.steps_per_epoch
    }
    /// Optimiser steps of the whole run: every epoch's, or `max_steps` if fewer.
    pub fn total_steps(&self) -> u64 {
        self.total_steps
    }
    /// The training steps' dropout, keyed by the seed.
    pub fn dropout(&self) -> &Dropout {
        &self.dropout
    }
    /// The training steps' augmentation of the pictures, keyed by the seed.
    pub fn augment(&self) -> Option<&Augment> {
        self.augment.as_ref()
    }

    /// The order of the training samples in epoch `epoch` (0-based): a permutation drawn from
    /// the seed, or file order.
    pub fn epoch_order(&self, epoch: usize) -> Vec<u32> {
        epoch_order(&self.cfg, self.data.train.len(), epoch)
    }

    /// The learning rate of step `step` (0-based, counted over the run), in epoch `epoch`.
    pub fn lr(&self, epoch: usize, step: u64) -> f64 {
        self.cfg.optimizer.lr_at(epoch, step, self.total_steps)
    }

    /// Where step `step` (0-based, over the run) falls: its epoch and its place in it.
    pub fn position(&self, step: u64) -> (usize, usize) {
        let per = self.steps_per_epoch as u64;
        ((step / per) as usize, (step % per) as usize)
    }

    /// The samples of the step at place `in_epoch` of an epoch whose order is `order`.
    pub fn step_samples<'a>(&self, order: &'a [u32], in_epoch: usize) -> &'a [u32] {
        let lo = in_epoch * self.batch;
        &order[lo..(lo + self.batch).min(order.len())]
    }
}

/// `spec` for the pictures of `data`: square pictures (their side the root of a sample's
/// values), not a table's features.
fn augment_for(spec: AugmentSpec, data: &RunData, seed: u64, batch: usize) -> Result<Augment> {
    let t = &data.train;
    let side = (t.sample_len as f64).sqrt().round() as usize;
    if data.kind != DataKind::Pictures || side * side != t.sample_len {
        anyhow::bail!(
            "--augment moves pixels of square pictures, but the samples of {} are {}: {} values",
            t.source,
            if data.kind == DataKind::Pictures { "not square" } else { "a table's features" },
            t.sample_len
        );
    }
    Augment::new(spec, side, side, seed, batch)
}

/// Batch order of epoch `epoch` (0-based) of `n` samples under `cfg`: a permutation drawn from
/// the seed, or file order.
pub fn epoch_order(cfg: &Config, n: usize, epoch: usize) -> Vec<u32> {
    if cfg.training.shuffle {
        permutation(n, &mut rng(cfg.training.seed, Stream::Shuffle(epoch)))
    } else {
        (0..n as u32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::{BatchSize, InlineData, preset_json};
    use crate::data::DatasetName;

    fn inline(n: usize) -> Config {
        let mut cfg = Config::from_layers(&[preset_json("seed000-hand").unwrap()]).unwrap();
        cfg.data.dataset = DatasetName::Inline;
        cfg.data.inline = Some(InlineData { inputs: vec![vec![0.5, 0.25]; n], labels: (0..n).map(|i| (i % 2) as u8).collect(), num_classes: 2 });
        cfg
    }

    fn plan(cfg: Config) -> Plan {
        let data = run_data::from_bytes(&cfg, None).unwrap();
        Plan::new(cfg, data).unwrap()
    }

    #[test]
    fn the_counts_are_resolved_once_from_the_data() {
        let mut cfg = inline(10);
        cfg.training.batch_size = BatchSize::N(3);
        cfg.training.epochs = 4;
        let p = plan(cfg.clone());
        assert_eq!((p.batch(), p.steps_per_epoch(), p.total_steps()), (3, 4, 16));
        assert_eq!(p.position(0), (0, 0));
        assert_eq!(p.position(5), (1, 1));
        let order: Vec<u32> = (0..10).collect();
        assert_eq!(p.step_samples(&order, 3), &[9]);
        cfg.training.max_steps = Some(7);
        assert_eq!(plan(cfg.clone()).total_steps(), 7);
        cfg.training.batch_size = BatchSize::Full;
        let full = plan(cfg.clone());
        assert_eq!((full.batch(), full.steps_per_epoch()), (10, 1));
        // a step count past what the counters hold is refused, not wrapped to nothing
        cfg.training.batch_size = BatchSize::N(1);
        cfg.training.max_steps = None;
        cfg.training.epochs = 1 << 62;
        let data = run_data::from_bytes(&cfg, None).unwrap();
        let e = Plan::new(cfg, data).err().unwrap().to_string();
        assert!(e.contains("epochs of 10 steps are more than the 9223372036854775807 steps"), "{e}");
    }

    #[test]
    fn a_batch_larger_than_the_data_is_refused_when_planned() {
        let mut cfg = inline(4);
        cfg.training.batch_size = BatchSize::N(5);
        let data = run_data::from_bytes(&cfg, None).unwrap();
        let e = Plan::new(cfg, data).err().unwrap().to_string();
        assert!(e.contains("--batch-size 5 is larger than the training set (4 samples)"), "{e}");
    }
}
