//! The interface every backend implements, and the parts of its contract written once for all
//! of them: the checks of what a caller hands in (`check_attach`, `check_optimizer_state`) and
//! the names of the tensors a step trace holds (`StepTrace::push_layer`, `push_tensors`), which
//! `gpu-nn parity` and the kernel tests match between backends. The training loop
//! (`core::train`) only talks to this, so the CPU reference, the CPU fast path and the GPU are
//! interchangeable.

use crate::nn::augment::Augment;
use crate::nn::dropout::Dropout;
use crate::nn::model::{ModelSpec, Params, tensor_names};
use crate::nn::optim::{OptimState, OptimizerKind};
use crate::data::Dataset;
use anyhow::{Result, bail};
use std::future::Future;
use std::pin::Pin;
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

/// Everything one training step computed, for CPU-vs-GPU parity checks: named tensors in f64,
/// in the order the `push_*` methods give (every backend builds its trace through them).
#[derive(Clone, Debug, Default)]
pub struct StepTrace {
    pub tensors: Vec<(String, Vec<f64>)>,
}

impl StepTrace {
    /// The tensor named `name` (a name the two functions below push; its absence is a bug in
    /// the backend that recorded the trace).
    pub fn get(&self, name: &str) -> &[f64] {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice()).unwrap_or_else(|| panic!("the step trace has no tensor '{name}'"))
    }

    /// Z_l, A_l and δ_l of layer `l` (1-based; layer 0 is the input) over the batch:
    /// `layer{l}.z`, `layer{l}.a`, `layer{l}.delta`.
    pub fn push_layer(&mut self, l: usize, z: Vec<f64>, a: Vec<f64>, delta: Vec<f64>) {
        self.tensors.push((format!("layer{l}.z"), z));
        self.tensors.push((format!("layer{l}.a"), a));
        self.tensors.push((format!("layer{l}.delta"), delta));
    }

    /// Weight layer `i` after the update: its gradients (`layers.{i}.weight.grad`, `.bias.grad`),
    /// its parameters (`layers.{i}.weight`, `.bias`, the model file's names) and each optimiser
    /// slot k (`layers.{i}.weight.state{k}`, `.bias.state{k}`); `state` as in `OptimState`.
    pub fn push_tensors(&mut self, i: usize, grad: [Vec<f64>; 2], param: [Vec<f64>; 2], state: &[Vec<Vec<f64>>; 2]) {
        let (w, b) = tensor_names(i);
        let [gw, gb] = grad;
        let [pw, pb] = param;
        self.tensors.push((format!("{w}.grad"), gw));
        self.tensors.push((format!("{b}.grad"), gb));
        self.tensors.push((w.clone(), pw));
        self.tensors.push((b.clone(), pb));
        for (k, (sw, sb)) in state[0].iter().zip(&state[1]).enumerate() {
            self.tensors.push((format!("{w}.state{k}"), sw.clone()));
            self.tensors.push((format!("{b}.state{k}"), sb.clone()));
        }
    }
}

/// `Backend::attach`'s precondition: the samples have as many values as the model has inputs.
pub fn check_attach(spec: &ModelSpec, data: &Dataset) -> Result<()> {
    if data.sample_len != spec.input_size() {
        bail!("{}: samples have {} values, the model takes {}", data.source, data.sample_len, spec.input_size());
    }
    Ok(())
}

/// `Backend::set_optimizer_state`'s precondition: one entry per layer, each with the
/// optimiser's number of slots, each slot shaped like its tensor.
pub fn check_optimizer_state(spec: &ModelSpec, kind: OptimizerKind, st: &OptimState) -> Result<()> {
    let slots = kind.state_slots();
    if st.slots.len() != spec.num_layers() {
        bail!("optimizer state has {} layers, the model {}", st.slots.len(), spec.num_layers());
    }
    for (i, [w, b]) in st.slots.iter().enumerate() {
        let (n_in, n_out) = spec.layer_dims(i);
        if w.len() != slots || b.len() != slots || w.iter().any(|s| s.len() != n_in * n_out) || b.iter().any(|s| s.len() != n_out) {
            bail!("optimizer state of layer {i} does not match the model and optimiser");
        }
    }
    Ok(())
}

/// A backend's result to await: ready at once on the CPU; on the GPU in a web page, once the
/// browser has mapped the readback (natively the device is polled first, so it is ready too).
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + 'a>>;

fn ready<'a, T: 'a>(r: Result<T>) -> Pending<'a, T> {
    Box::pin(std::future::ready(r))
}

pub trait Backend {
    /// One line saying what runs the maths (e.g. "cpu f64 reference", "gpu: llvmpipe (Vulkan)").
    fn describe(&self) -> String;

    /// Replaces the parameters and resets the optimiser state (shapes checked with
    /// `Params::check_shapes`).
    fn set_params(&mut self, params: &Params) -> Result<()>;
    fn params(&mut self) -> Result<Params>;

    fn optimizer_state(&mut self) -> Result<OptimState>;
    /// Checked with `check_optimizer_state`.
    fn set_optimizer_state(&mut self, state: &OptimState) -> Result<()>;

    /// Makes a dataset available for `train_steps` (Train) or `evaluate`. Called once per split
    /// and run; the GPU uploads it here, not per step. Checked with `check_attach`.
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

    /// Augmentation of the training steps' pictures from now on (None: none; a new backend
    /// has none). Evaluation never augments.
    fn set_augment(&mut self, a: Option<&Augment>) -> Result<()>;

    /// Dropout in the training steps from now on (`Dropout::none()`: none; a new backend has
    /// none). Evaluation never drops.
    fn set_dropout(&mut self, d: &Dropout) -> Result<()>;

    /// Forward pass over a whole attached split.
    fn evaluate(&mut self, split: Split) -> Result<EvalResult>;

    /// One training step like `train_steps`, returning every intermediate tensor
    /// (activations, deltas, gradients, updated weights, optimiser state) for parity checks,
    /// built with `StepTrace::push_layer` and `push_tensors`.
    fn trace_step(&mut self, indices: &[u32], lr: f64) -> Result<StepTrace>;

    // The same operations to await, for a web page's main thread, which must never block:
    // the training loop (`core::train`) awaits these, and the GPU backend overrides them. By
    // default they run the blocking method and are ready at once.

    fn train_steps_async<'a>(&'a mut self, indices: &'a [u32], batch_size: usize, lrs: &'a [f64]) -> Pending<'a, StepStats> {
        ready(self.train_steps(indices, batch_size, lrs))
    }
    fn evaluate_async(&mut self, split: Split) -> Pending<'_, EvalResult> {
        ready(self.evaluate(split))
    }
    fn params_async(&mut self) -> Pending<'_, Params> {
        ready(self.params())
    }
    fn optimizer_state_async(&mut self) -> Pending<'_, OptimState> {
        ready(self.optimizer_state())
    }
    fn trace_step_async<'a>(&'a mut self, indices: &'a [u32], lr: f64) -> Pending<'a, StepTrace> {
        ready(self.trace_step(indices, lr))
    }
}
