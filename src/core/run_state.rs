//! Where a run stands between two steps (`RunState`): what a checkpoint stores besides the
//! weights and optimiser state, and where the training loop resumes.

use crate::nn::backend::StepStats;
use crate::core::metrics::EpochMetrics;
use serde::{Deserialize, Serialize};

/// Where a run stands between two steps: everything besides the backend's parameters and
/// optimiser state that continuing it exactly needs.
///
/// There is no random-number-generator state here on purpose: the only randomness after
/// initialisation is the batch order, and the order of epoch `e` is a pure function of
/// (seed, e) (`epoch_order`), so `epoch` and `step_in_epoch` are the whole RNG state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The epoch in progress, 0-based (= the number of completed epochs).
    pub epoch: usize,
    /// Steps of that epoch already taken (its permutation continues from batch
    /// `step_in_epoch`). Non-zero after an interrupt, or after an epoch cut short by
    /// `max_steps` (a larger `max_steps` continues it).
    pub step_in_epoch: usize,
    /// Optimiser steps taken in the run.
    pub step: u64,
    /// Running loss and accuracy sums of the partial epoch.
    pub running: StepStats,
    /// Seconds already spent in the partial epoch.
    pub epoch_seconds: f64,
    /// The metrics of every completed epoch (the rows of metrics.csv).
    pub history: Vec<EpochMetrics>,
    /// Early stopping ended the run.
    pub stopped_early: bool,
}

impl RunState {
    /// The start of epoch `epoch` (0-based) of a run with `steps_per_epoch` steps per epoch.
    pub fn at_epoch(epoch: usize, steps_per_epoch: usize) -> RunState {
        RunState { epoch, step: (epoch * steps_per_epoch) as u64, ..Default::default() }
    }

    /// The best validation loss so far and the (1-based) epoch that reached it: the first
    /// epoch with the smallest loss.
    pub fn best_val(&self) -> Option<(f64, usize)> {
        let mut best: Option<(f64, usize)> = None;
        for m in &self.history {
            if let Some(l) = m.val_loss {
                if best.is_none_or(|(b, _)| l < b) {
                    best = Some((l, m.epoch));
                }
            }
        }
        best
    }

    /// "end of epoch 2" or "epoch 3, step 1100 (40 of 57 in the epoch)".
    pub fn describe(&self) -> String {
        if self.step_in_epoch == 0 {
            if self.epoch == 0 { "the start of the run".to_string() } else { format!("end of epoch {}", self.epoch) }
        } else {
            format!("epoch {}, step {} (step {} of the epoch)", self.epoch + 1, self.step, self.step_in_epoch)
        }
    }
}
