//! The interface every backend implements. The training loop (`train.rs`) only talks to this,
//! so the CPU reference, the CPU fast path and the GPU are interchangeable.

use crate::data::Dataset;
use crate::core::model::Params;
use crate::core::optim::OptimState;
use anyhow::Result;
use std::sync::Arc;

/// Which attached dataset an evaluation refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// Sums over the samples of some training steps, measured on the forward pass that each step
/// made before its update (Keras' running training metrics). Serialisable: a mid-epoch
/// checkpoint carries the running sums of its partial epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepStats {
    pub samples: u64,
    pub loss_sum: f64,
    pub correct: u64,
}

/// Loss and predictions of a model on a whole dataset.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvalResult {
    pub samples: u64,
    pub loss_sum: f64,
    pub correct: u64,
    /// Predicted class of every sample, in dataset order.
    pub predictions: Vec<u8>,
}

impl EvalResult {
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.samples.max(1) as f64
    }
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.samples.max(1) as f64
    }
}

/// Everything one training step computed, for CPU-vs-GPU parity checks: named tensors in f64.
#[derive(Clone, Debug, Default)]
pub struct StepTrace {
    pub tensors: Vec<(String, Vec<f64>)>,
}

pub trait Backend {
    /// One line saying what runs the maths (e.g. "cpu f64 reference", "gpu: llvmpipe (Vulkan)").
    fn describe(&self) -> String;

    /// Replaces the parameters and resets the optimiser state.
    fn set_params(&mut self, params: &Params) -> Result<()>;
    fn params(&mut self) -> Result<Params>;

    fn optimizer_state(&mut self) -> Result<OptimState>;
    fn set_optimizer_state(&mut self, state: &OptimState) -> Result<()>;

    /// Makes a dataset available for `train_steps` (Train) or `evaluate`. Called once per split
    /// and run; the GPU uploads it here, not per step.
    fn attach(&mut self, split: Split, data: Arc<Dataset>) -> Result<()>;

    /// Runs `lrs.len()` consecutive optimiser steps on the Train split. `indices` lists the
    /// samples of all these steps back to back: step s uses `indices.chunks(batch_size)[s]`
    /// (the last chunk may be shorter). Returns the running loss and accuracy of these steps.
    fn train_steps(&mut self, indices: &[u32], batch_size: usize, lrs: &[f64]) -> Result<StepStats>;

    /// Most steps worth handing over in one `train_steps` call. The GPU encodes a whole chunk
    /// into one submission, so it takes many; the CPU gains nothing from batching calls and
    /// takes one at a time, which lets Ctrl-C stop it after the current step and names the
    /// exact step where a loss stops being finite.
    fn steps_per_call(&self) -> usize {
        usize::MAX
    }

    /// Forward pass over a whole attached split.
    fn evaluate(&mut self, split: Split) -> Result<EvalResult>;

    /// One training step like `train_steps`, returning every intermediate tensor
    /// (activations, deltas, gradients, updated weights, optimiser state) for parity checks.
    fn trace_step(&mut self, indices: &[u32], lr: f64) -> Result<StepTrace>;
}
