//! The GPU backend: keeps the model, its gradients, optimiser state and (when it fits) the
//! dataset resident on the device, and encodes many training steps into one submission; per-
//! sample losses and predictions stay on the device until a progress update or the epoch end
//! reads them back. `GpuBackend` owns the parts and implements `Backend` by delegating to them:
//! the model's buffers (`device`), the attached datasets (`residency`) and the micro-batch
//! scheduler (`scheduler`).

use super::tuning::{Chosen, KernelChoice, choose};
use super::context::Gpu;
use super::augment::AugmentPass;
use super::dropout::DropoutPass;
use super::device::{Device, wait};
use super::instrument::{Counters, DispatchTiming};
use super::layout::Layout;
use super::matmul::{KernelConfig, Matmul};
use super::residency::Residency;
use super::scheduler::{self, Scheduler};
use super::test_aids;
use crate::nn::backend::{Backend, EvalResult, Pending, Split, StepStats, StepTrace, check_attach, check_optimizer_state};
use crate::nn::augment::Augment;
use crate::nn::dropout::Dropout;
use crate::nn::model::{ModelSpec, Params};
use crate::nn::optim::{OptimState, OptimizerSpec};
use crate::data::Dataset;
use anyhow::{Result, bail};
use std::sync::Arc;

pub struct GpuBackend {
    dev: Device,
    data: Residency,
    sched: Scheduler,
    /// Optimiser steps taken (Adam's t).
    step: u64,
    /// Testing aid: the step at which `train_steps` destroys the device.
    lose_device_at: Option<u64>,
    /// The matmul kernels' name and how they were chosen (None: built from a bare config).
    chosen: Option<Chosen>,
}

impl GpuBackend {
    /// Allocates on `gpu` everything training in batches of `batch` samples needs, with the
    /// matmul kernels `kernels` picks (`tuning::choose`). Runs build theirs through
    /// `core::Engines`, the one place that opens devices and builds backends for them.
    pub fn with_gpu(gpu: Gpu, spec: &ModelSpec, opt: &OptimizerSpec, batch: usize, stream: bool, kernels: &KernelChoice) -> Result<Self> {
        let chosen = choose(&gpu, spec, opt, batch, kernels)?;
        let mut b = Self::with_config(gpu, spec, opt, batch, stream, chosen.config)?;
        b.chosen = Some(chosen);
        Ok(b)
    }

    /// Rows of one micro-batch of a backend built for `batch` on `gpu`: the batch (at least
    /// the evaluation chunk of 1024 rows) if it fits the binding limit; 0 if one sample does
    /// not. Two backends with the same rows take the same micro-batches, so one of them can
    /// train the other's batch size with identical results (`gpu-nn sweep` relies on it).
    pub fn rows_cap_for(gpu: &Gpu, spec: &ModelSpec, batch: usize) -> usize {
        Layout::rows_cap_for(spec, batch, &gpu.limits)
    }

    /// With the given matmul kernels (tests and benchmarks compare the variants).
    pub fn with_config(gpu: Gpu, spec: &ModelSpec, opt: &OptimizerSpec, batch: usize, stream: bool, config: KernelConfig) -> Result<Self> {
        let dev = Device::new(gpu, spec, opt, batch, config)?;
        scheduler::check_grids(&dev)?;
        let sched = Scheduler::new(&dev);
        let data = Residency::new(&dev, stream);
        dev.write_static_dims();
        dev.gpu.check("setting up the GPU backend")?;
        Ok(GpuBackend { dev, data, sched, step: 0, lose_device_at: None, chosen: None })
    }

    /// Fills every work buffer (activations, pre-activations, deltas, gradients, statistics)
    /// with NaN, so a test sees any element a kernel failed to write.
    pub fn poison(&mut self) -> Result<()> {
        test_aids::poison(&self.dev, &self.sched)
    }

    /// Testing aid: the masks the dropout kernel draws at optimiser step `step` for `rows` rows
    /// from batch row `row_base`, per layer with dropout (0 = the input): 1/(1 − p) where kept,
    /// 0 where dropped. Overwrites the work buffers.
    pub fn dropout_masks(&mut self, step: u64, rows: usize, row_base: usize) -> Result<Vec<(usize, Vec<f32>)>> {
        test_aids::dropout_masks(&self.dev, step, rows, row_base)
    }

    /// Testing aid: the pictures the augmentation kernels make of `x` (whole pictures as the
    /// model's inputs) as batch rows `row_base..` of optimiser step `step`. Overwrites the work
    /// buffers.
    pub fn augmented(&mut self, step: u64, row_base: usize, x: &[f32]) -> Result<Vec<f32>> {
        test_aids::augmented(&self.dev, step, row_base, x)
    }

    /// Testing aid: destroys the device at the start of the first `train_steps` call made once
    /// the run has taken `step` steps (None: never), to exercise the path a real device loss
    /// (driver reset, GPU unplugged) takes.
    pub fn lose_device_at_step(&mut self, step: Option<u64>) {
        self.lose_device_at = step;
    }

    pub fn gpu(&self) -> &Gpu {
        &self.dev.gpu
    }
    pub fn rows_cap(&self) -> usize {
        self.dev.layout.rows_cap()
    }
    /// The matmul kernels in use.
    pub fn kernel_config(&self) -> KernelConfig {
        self.dev.k.config
    }
    /// The matmul kernels' name (`KernelName`'s, or "custom").
    pub fn kernel_name(&self) -> &'static str {
        self.dev.k.config.name().map_or("custom", |n| n.as_str())
    }
    /// The kernels and how they were chosen, one line (`--verbose`).
    pub fn kernel_note(&self) -> String {
        match &self.chosen {
            Some(c) => format!("kernels: {} ({})", c.name, c.how),
            None => format!("kernels: {}", self.kernel_name()),
        }
    }
    /// Dispatches, submissions and host-clock time so far (for benchmarks).
    pub fn counters(&self) -> Counters {
        self.sched.counters()
    }
    /// Whether layer `i` (0-based weight layer) runs `kind` with a vec4 kernel.
    pub fn uses_vec4(&self, i: usize, kind: Matmul) -> bool {
        self.dev.uses_vec4(i, kind)
    }

    /// Seconds per dispatch of one matrix product of layer `l` (1-based) on `rows` samples
    /// (at most `rows_cap`), timed over `reps` dispatches in one submission after a warm-up
    /// that compiles the kernel. Operands are whatever the buffers hold; for benchmarks.
    pub fn time_matmul(&mut self, kind: Matmul, l: usize, rows: usize, reps: usize) -> Result<DispatchTiming> {
        scheduler::time_matmul(&self.dev, kind, l, rows, reps)
    }
}

impl Backend for GpuBackend {
    fn describe(&self) -> String {
        self.dev.gpu.describe()
    }

    fn set_params(&mut self, params: &Params) -> Result<()> {
        let d = &self.dev;
        params.check_shapes(&d.spec, "parameters")?;
        d.write_f32(&d.params, 0, &d.layout.flatten_params(params));
        let zeros = vec![0.0; d.layout.state_len()];
        d.write_f32(&d.state, 0, &zeros);
        self.step = 0;
        d.gpu.check("uploading parameters")
    }

    fn params(&mut self) -> Result<Params> {
        wait(self.read_params())
    }

    fn optimizer_state(&mut self) -> Result<OptimState> {
        wait(self.read_state())
    }

    fn set_optimizer_state(&mut self, st: &OptimState) -> Result<()> {
        let d = &self.dev;
        check_optimizer_state(&d.spec, d.opt.kind, st)?;
        d.write_f32(&d.state, 0, &d.layout.flatten_state(st));
        self.step = st.step;
        Ok(())
    }

    fn attach(&mut self, split: Split, data: Arc<Dataset>) -> Result<()> {
        check_attach(&self.dev.spec, &data)?;
        self.sched.ensure_stats(&self.dev, &mut self.data, data.len().min(1 << 22));
        self.data.attach(&self.dev, split, data)?;
        self.dev.gpu.check("uploading the dataset")
    }

    fn train_steps(&mut self, indices: &[u32], batch_size: usize, lrs: &[f64]) -> Result<StepStats> {
        wait(self.run_steps(indices, batch_size, lrs))
    }

    fn evaluate(&mut self, split: Split) -> Result<EvalResult> {
        wait(self.run_evaluation(split))
    }

    fn set_augment(&mut self, a: Option<&Augment>) -> Result<()> {
        self.dev.augment = None;
        self.dev.augment = a.map(|a| AugmentPass::new(&self.dev, a)).transpose()?;
        self.dev.gpu.check("building the augmentation kernels")
    }

    fn set_dropout(&mut self, d: &Dropout) -> Result<()> {
        self.dev.dropout = None;
        self.dev.dropout = DropoutPass::new(&self.dev, d)?;
        self.dev.gpu.check("building the dropout kernels")
    }

    fn trace_step(&mut self, indices: &[u32], lr: f64) -> Result<StepTrace> {
        wait(self.run_trace(indices, lr))
    }

    fn train_steps_async<'a>(&'a mut self, indices: &'a [u32], batch_size: usize, lrs: &'a [f64]) -> Pending<'a, StepStats> {
        Box::pin(self.run_steps(indices, batch_size, lrs))
    }
    fn evaluate_async(&mut self, split: Split) -> Pending<'_, EvalResult> {
        Box::pin(self.run_evaluation(split))
    }
    fn params_async(&mut self) -> Pending<'_, Params> {
        Box::pin(self.read_params())
    }
    fn optimizer_state_async(&mut self) -> Pending<'_, OptimState> {
        Box::pin(self.read_state())
    }
    fn trace_step_async<'a>(&'a mut self, indices: &'a [u32], lr: f64) -> Pending<'a, StepTrace> {
        Box::pin(self.run_trace(indices, lr))
    }
}

// What the `Backend` methods do, as futures: their readbacks are awaited (`device::wait`
// runs them to the end natively).
impl GpuBackend {
    async fn read_params(&mut self) -> Result<Params> {
        let v = self.dev.read_f32(&self.dev.params, 0, self.dev.layout.param_len()).await?;
        Ok(self.dev.layout.params_of(&v))
    }

    async fn read_state(&mut self) -> Result<OptimState> {
        let v = self.dev.read_f32(&self.dev.state, 0, self.dev.layout.state_len()).await?;
        Ok(self.dev.layout.state_of(&v, self.step))
    }

    async fn run_steps(&mut self, indices: &[u32], batch_size: usize, lrs: &[f64]) -> Result<StepStats> {
        test_aids::lose_device_if_due(&self.dev, self.lose_device_at, self.step);
        let data = self.data.data_of(Split::Train)?;
        let source = self.data.train_source();
        let (micros, pos) = scheduler::train_micros(&self.dev, source, indices, batch_size, lrs, &mut self.step);
        let (losses, preds) = self.sched.run_micros(&self.dev, &mut self.data, Split::Train, micros, &indices[..pos]).await?;
        let mut st = StepStats { samples: pos as u64, ..Default::default() };
        for (r, (&l, &p)) in losses.iter().zip(&preds).enumerate() {
            st.loss_sum += l as f64;
            st.correct += (p == data.labels[indices[r] as usize] as u32) as u64;
        }
        Ok(st)
    }

    async fn run_evaluation(&mut self, split: Split) -> Result<EvalResult> {
        let data = self.data.data_of(split)?;
        let n = data.len();
        let source = self.data.eval_source(split);
        let all: Vec<u32> = (0..n as u32).collect();
        let micros = scheduler::eval_micros(&self.dev, source, n);
        let (losses, preds) = self.sched.run_micros(&self.dev, &mut self.data, split, micros, &all).await?;
        let mut r = EvalResult { samples: n as u64, ..Default::default() };
        for (i, (&l, &p)) in losses.iter().zip(&preds).enumerate() {
            r.loss_sum += l as f64;
            r.correct += (p == data.labels[i] as u32) as u64;
            r.predictions.push(p as u8);
        }
        Ok(r)
    }

    async fn run_trace(&mut self, indices: &[u32], lr: f64) -> Result<StepTrace> {
        let rows_cap = self.dev.layout.rows_cap();
        if indices.len() > rows_cap {
            bail!("trace_step: a batch of {} exceeds one micro-batch ({rows_cap} rows)", indices.len());
        }
        self.run_steps(indices, indices.len(), &[lr]).await?;
        let rows = indices.len();
        let mut t = StepTrace::default();
        let d = &self.dev;
        for l in 1..d.spec.layers.len() {
            let (off, n) = (d.layout.layer_off(l), d.spec.layers[l]);
            let read = async |buf| -> Result<Vec<f64>> { Ok(d.read_f32(buf, off, rows * n).await?.into_iter().map(f64::from).collect()) };
            t.push_layer(l, read(&d.pre).await?, read(&d.acts).await?, read(&d.dlt).await?);
        }
        let grads = d.read_f32(&d.grads, 0, d.layout.param_len()).await?;
        let params = self.read_params().await?;
        let state = self.read_state().await?;
        for i in 0..self.dev.spec.num_layers() {
            let grad = self.dev.layout.tensors(&grads, i);
            let param = [params.layers[i].weight.clone(), params.layers[i].bias.clone()];
            t.push_tensors(i, grad, param, &state.slots[i]);
        }
        Ok(t)
    }
}
