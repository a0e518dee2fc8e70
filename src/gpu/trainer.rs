//! The GPU backend: the host-side scheduler that keeps the model, its gradients, optimiser state
//! and (when it fits) the dataset resident on the device, and encodes many training steps into
//! one submission. Per step the host writes nothing but a 48-byte uniform entry (batch position,
//! learning rate, Adam's bias corrections); per-sample losses and predictions stay on the device
//! until a progress update or the epoch end reads them back.
//! The model's buffers are `device::Device`; where everything sits in them is `layout::Layout`;
//! the attached datasets are `residency::Residency`.
//! A step whose batch exceeds `rows_cap` (full-batch training) runs as micro-batches whose
//! weight gradients accumulate before the single update.

use super::context::{Gpu, is_software};
use super::device::{Device, map_read_timed, storage};
use super::residency::{Residency, Source};
use super::instrument::{Counters, time_dispatches};
use super::kernels::{Matmul, StepUniform, bind};
use super::layout::{Layout, MAX_ENTRIES};
use super::matmul_vec4::KernelConfig;
use crate::core::backend::{Backend, EvalResult, Split, StepStats, StepTrace, check_attach, check_optimizer_state};
use crate::data::Dataset;
use crate::core::model::{ModelSpec, Params};
use crate::core::optim::{OptimState, OptimizerSpec};
use anyhow::{Result, bail};
use std::sync::Arc;

/// One micro-batch to encode.
struct Micro {
    source: Source,
    entry: StepUniform,
    /// Run the optimiser after this micro-batch (last of its step).
    update: bool,
    /// Samples (dataset indices) for the host: labels and streaming.
    samples_lo: usize,
    samples_hi: usize,
}

pub struct GpuBackend {
    dev: Device,
    data: Residency,
    // per-sample statistics, grown on demand
    stats_cap: usize,
    row_loss: wgpu::Buffer,
    row_pred: wgpu::Buffer,
    loss_bg: wgpu::BindGroup,
    step: u64,
    counters: Counters,
    lose_device_at: Option<u64>,
}

fn groups(n: usize, per: usize) -> u32 {
    n.div_ceil(per).max(1) as u32
}

/// Splits a 1-D workgroup count over x and y (each at most 65535).
fn grid(n: u32) -> (u32, u32) {
    if n <= 65535 { (n, 1) } else { (65535, n.div_ceil(65535)) }
}

impl GpuBackend {
    /// Opens the adapter and allocates everything a batch of `batch` samples needs.
    pub fn new(spec: &ModelSpec, opt: &OptimizerSpec, batch: usize, adapter: Option<&str>, stream: bool, quiet: bool) -> Result<Self> {
        let gpu = Gpu::new(adapter, quiet)?;
        Self::with_gpu(gpu, spec, opt, batch, stream)
    }

    /// With the matmul kernels chosen for the adapter (`KernelConfig::for_adapter`).
    pub fn with_gpu(gpu: Gpu, spec: &ModelSpec, opt: &OptimizerSpec, batch: usize, stream: bool) -> Result<Self> {
        let config = KernelConfig::for_adapter(&gpu.info, gpu.features, is_software(&gpu.info));
        Self::with_config(gpu, spec, opt, batch, stream, config)
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
        let stats_cap = 1024;
        let row_loss = storage(&dev.gpu, "row loss", 4 * stats_cap);
        let row_pred = storage(&dev.gpu, "row pred", 4 * stats_cap);
        let loss_bg = bind(&dev.gpu, &dev.k.output_layer, &dev.dims, &dev.steps, &[&dev.pre, &dev.acts, &dev.dlt, &dev.batch_labels, &row_loss, &row_pred]);
        let data = Residency::new(&dev, stream);
        let b = GpuBackend {
            dev,
            data,
            stats_cap,
            row_loss,
            row_pred,
            loss_bg,
            step: 0,
            counters: Counters::default(),
            lose_device_at: None,
        };
        b.dev.write_static_dims();
        b.dev.gpu.check("setting up the GPU backend")?;
        Ok(b)
    }

    /// Fills every work buffer (activations, pre-activations, deltas, gradients, statistics)
    /// with NaN, so a test sees any element a kernel failed to write.
    pub fn poison(&mut self) -> Result<()> {
        for buf in [&self.dev.acts, &self.dev.pre, &self.dev.dlt, &self.row_loss] {
            let nan = vec![f32::NAN; (buf.size() / 4) as usize];
            self.dev.gpu.queue.write_buffer(buf, 0, bytemuck::cast_slice(&nan));
        }
        // gradients tensor by tensor: the alignment gaps must stay zero (the optimiser runs
        // over them too, and zero parameters with zero gradients stay zero)
        for i in 0..self.dev.spec.num_layers() {
            let (n_in, n_out) = self.dev.spec.layer_dims(i);
            let (w, b) = self.dev.layout.param_off(i);
            self.dev.write_f32(&self.dev.grads, w, &vec![f64::NAN; n_in * n_out]);
            self.dev.write_f32(&self.dev.grads, b, &vec![f64::NAN; n_out]);
        }
        let bad = vec![u32::MAX; (self.row_pred.size() / 4) as usize];
        self.dev.gpu.queue.write_buffer(&self.row_pred, 0, bytemuck::cast_slice(&bad));
        self.dev.gpu.check("poisoning buffers")
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
    /// Dispatches, submissions and host-clock time so far (for benchmarks).
    pub fn counters(&self) -> Counters {
        self.counters
    }
    /// Whether layer `i` (0-based weight layer) runs `kind` with a vec4 kernel.
    pub fn uses_vec4(&self, i: usize, kind: Matmul) -> bool {
        self.dev.uses_vec4(i, kind)
    }

    /// Grows the per-sample statistics and index buffers to hold `n` entries.
    fn ensure_stats(&mut self, n: usize) {
        if n > self.stats_cap {
            self.stats_cap = n.next_power_of_two();
            self.row_loss = storage(&self.dev.gpu, "row loss", 4 * self.stats_cap);
            self.row_pred = storage(&self.dev.gpu, "row pred", 4 * self.stats_cap);
            self.loss_bg = bind(&self.dev.gpu, &self.dev.k.output_layer, &self.dev.dims, &self.dev.steps,
                &[&self.dev.pre, &self.dev.acts, &self.dev.dlt, &self.dev.batch_labels, &self.row_loss, &self.row_pred]);
        }
        self.data.ensure_index(&self.dev, n);
    }

    /// Encodes, submits and reads back a sequence of micro-batches, in as few submissions as
    /// the uniform entries, the statistics buffer and the stream slots allow. `samples` lists the
    /// dataset index of every row, in order; returns per-row (loss, prediction).
    fn run_micros(&mut self, split: Split, micros: Vec<Micro>, samples: &[u32]) -> Result<(Vec<f32>, Vec<u32>)> {
        let data = self.data.data_of(split)?;
        let total_rows: usize = micros.iter().map(|m| m.entry.rows as usize).sum();
        let resident_index = micros.iter().any(|m| matches!(m.source, Source::Resident(_, true)));
        self.ensure_stats(total_rows.min(1 << 22).max(if resident_index { samples.len().min(1 << 22) } else { 0 }));
        let mut losses = Vec::with_capacity(total_rows);
        let mut preds = Vec::with_capacity(total_rows);
        let mut i = 0;
        let mut stream_turn = 0;
        while i < micros.len() {
            // a group: consecutive micro-batches within the entry, stats and stream capacities
            let mut j = i;
            let mut rows = 0;
            let stream_cap = self.data.stream_cap();
            while j < micros.len()
                && j - i < MAX_ENTRIES
                && rows + micros[j].entry.rows as usize <= self.stats_cap
                && (!matches!(micros[j].source, Source::Stream(_)) || rows + micros[j].entry.rows as usize <= stream_cap)
            {
                rows += micros[j].entry.rows as usize;
                j += 1;
            }
            if j == i {
                bail!("internal: a micro-batch of {} rows exceeds the GPU buffers", micros[i].entry.rows);
            }
            let slot = stream_turn % 2;
            stream_turn += 1;
            let t_upload = std::time::Instant::now();
            // entries with stat offsets relative to this group; stream rows packed in order
            let mut entries = Vec::with_capacity(j - i);
            let mut stat = 0u32;
            let mut stream_samples: Vec<usize> = Vec::new();
            let mut idx_base = None;
            for m in &micros[i..j] {
                let mut e = m.entry;
                e.stat_offset = stat;
                match m.source {
                    Source::Stream(_) => {
                        e.idx_offset = stream_samples.len() as u32;
                        stream_samples.extend(samples[m.samples_lo..m.samples_hi].iter().map(|&s| s as usize));
                    }
                    Source::Resident(_, true) => {
                        let base = *idx_base.get_or_insert(m.samples_lo);
                        e.idx_offset = (m.samples_lo - base) as u32;
                    }
                    Source::Resident(_, false) => {}
                }
                stat += e.rows;
                entries.push(e);
            }
            let mut bytes = vec![0u8; entries.len() * self.dev.layout.align()];
            for (n, e) in entries.iter().enumerate() {
                bytes[n * self.dev.layout.align()..n * self.dev.layout.align() + std::mem::size_of::<StepUniform>()].copy_from_slice(bytemuck::bytes_of(e));
            }
            self.dev.gpu.queue.write_buffer(&self.dev.steps, 0, &bytes);
            if let Some(base) = idx_base {
                let hi = micros[i..j].iter().filter(|m| matches!(m.source, Source::Resident(_, true))).map(|m| m.samples_hi).max().unwrap();
                self.data.write_index(&self.dev, &samples[base..hi]);
            }
            if !stream_samples.is_empty() {
                self.data.write_stream(&self.dev, slot, &data, &stream_samples);
            }
            self.counters.timing.upload += t_upload.elapsed();
            let t_encode = std::time::Instant::now();
            let mut enc = self.dev.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("steps") });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("steps"), timestamp_writes: None });
                for (n, m) in micros[i..j].iter().enumerate() {
                    let eoff = (n * self.dev.layout.align()) as u32;
                    let rows = m.entry.rows as usize;
                    self.encode_micro(&mut pass, m, eoff, rows, slot)?;
                }
            }
            let readback = self.dev.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("stats readback"),
                size: (8 * rows as u64).max(8),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            enc.copy_buffer_to_buffer(&self.row_loss, 0, &readback, 0, 4 * rows as u64);
            enc.copy_buffer_to_buffer(&self.row_pred, 0, &readback, 4 * rows as u64, 4 * rows as u64);
            let cmd = enc.finish();
            self.counters.timing.encode += t_encode.elapsed();
            let t_compute = std::time::Instant::now();
            self.dev.gpu.queue.submit([cmd]);
            self.counters.submissions += 1;
            let (bytes, copy) = map_read_timed(&self.dev.gpu, &readback, 8 * rows as u64)?;
            self.counters.timing.compute += t_compute.elapsed() - copy;
            self.counters.timing.readback += copy;
            let (l, p) = bytes.split_at(4 * rows);
            losses.extend_from_slice(bytemuck::cast_slice::<u8, f32>(l));
            preds.extend_from_slice(bytemuck::cast_slice::<u8, u32>(p));
            self.dev.gpu.check("training")?;
            i = j;
        }
        Ok((losses, preds))
    }

    fn encode_micro(&mut self, pass: &mut wgpu::ComputePass, m: &Micro, eoff: u32, rows: usize, slot: usize) -> Result<()> {
        let s = &self.dev.spec;
        let a = self.dev.layout.align() as u32;
        // gather
        let (bg, dslot, words) = self.data.gather(&self.dev, m.source, slot)?;
        pass.set_pipeline(&self.dev.k.gather.pipeline);
        pass.set_bind_group(0, bg, &[dslot as u32 * a, eoff]);
        let (gy, gz) = grid(rows as u32);
        pass.dispatch_workgroups(groups(words, 64), gy, gz);
        let mut dispatches = 1;
        // forward
        for l in 1..s.layers.len() {
            self.dispatch_matmul(pass, Matmul::Forward, l, rows, eoff);
            dispatches += 1;
        }
        // output layer: loss, prediction, δ_L
        pass.set_pipeline(&self.dev.k.output_layer.pipeline);
        pass.set_bind_group(0, &self.loss_bg, &[self.dev.layout.loss_slot() as u32 * a, eoff]);
        let (gx, gy) = grid(groups(rows, 64));
        pass.dispatch_workgroups(gx, gy, 1);
        dispatches += 1;
        if m.entry.train == 1 {
            for l in (1..s.layers.len()).rev() {
                self.dispatch_matmul(pass, Matmul::WeightGrad, l, rows, eoff);
                dispatches += 1;
                if l > 1 {
                    self.dispatch_matmul(pass, Matmul::BackwardData, l, rows, eoff);
                    dispatches += 1;
                }
            }
            if m.update {
                pass.set_pipeline(&self.dev.k.update.pipeline);
                pass.set_bind_group(0, &self.dev.update_bg, &[self.dev.layout.opt_slot() as u32 * a, eoff]);
                // one thread per vec4 of parameters (param_len is a multiple of 4)
                let (gx, gy) = grid(groups(self.dev.layout.param_len() / 4, 256));
                pass.dispatch_workgroups(gx, gy, 1);
                dispatches += 1;
            }
        }
        self.counters.dispatches += dispatches;
        Ok(())
    }

    /// Sets the pipeline, dims and grid of one matrix product of layer `l` (1-based) on `rows`
    /// samples: the vec4 kernel where the layer's shapes allow, else the scalar one.
    fn dispatch_matmul(&self, pass: &mut wgpu::ComputePass, kind: Matmul, l: usize, rows: usize, eoff: u32) {
        let (n_in, n_out) = self.dev.spec.layer_dims(l - 1);
        let (slot, kernel, vec4) = match kind {
            Matmul::Forward => (self.dev.layout.fwd_slot(l), &self.dev.k.forward, &self.dev.k.forward4),
            Matmul::BackwardData => (self.dev.layout.bwd_slot(l), &self.dev.k.backward_data, &self.dev.k.backward_data4),
            Matmul::WeightGrad => (self.dev.layout.wg_slot(l), &self.dev.k.weight_grad, &self.dev.k.weight_grad4),
        };
        // output rows × columns; the scalar weight_grad has the bias as an extra column
        let (out_rows, out_cols) = match kind {
            Matmul::Forward => (rows, n_out),
            Matmul::BackwardData => (rows, n_in),
            Matmul::WeightGrad => (n_out, n_in),
        };
        pass.set_bind_group(0, &self.dev.matmul_bg, &[slot as u32 * self.dev.layout.align() as u32, eoff]);
        match vec4.as_ref().filter(|_| self.dev.uses_vec4(l - 1, kind)) {
            Some(v) => {
                pass.set_pipeline(&v.kernel.pipeline);
                let (gx, gy) = (groups(out_cols, v.tile.1 as usize), groups(out_rows, v.tile.0 as usize));
                if v.rows_in_x { pass.dispatch_workgroups(gy, gx, 1) } else { pass.dispatch_workgroups(gx, gy, 1) }
            }
            None => {
                // 8×8 threads of 4×4 outputs
                let cols = if kind == Matmul::WeightGrad { out_cols + 1 } else { out_cols };
                pass.set_pipeline(&kernel.pipeline);
                pass.dispatch_workgroups(groups(cols, 32), groups(out_rows, 32), 1);
            }
        }
    }

    /// Seconds per dispatch of one matrix product of layer `l` (1-based) on `rows` samples
    /// (at most `rows_cap`), timed over `reps` dispatches in one submission after a warm-up
    /// that compiles the kernel. Operands are whatever the buffers hold; for benchmarks.
    pub fn time_matmul(&mut self, kind: Matmul, l: usize, rows: usize, reps: usize) -> Result<f64> {
        if rows == 0 || rows > self.dev.layout.rows_cap() || l == 0 || l >= self.dev.spec.layers.len() || (kind == Matmul::BackwardData && l < 2) {
            bail!("time_matmul: no {kind:?} of layer {l} on {rows} rows");
        }
        let entry = StepUniform { rows: rows as u32, scale: 1.0, train: 1, ..Default::default() };
        self.dev.gpu.queue.write_buffer(&self.dev.steps, 0, bytemuck::bytes_of(&entry));
        let per = time_dispatches(&self.dev.gpu, reps, |pass| self.dispatch_matmul(pass, kind, l, rows, 0))?;
        self.dev.gpu.check("timing a matmul")?;
        Ok(per)
    }

    /// The per-step uniform for an optimiser step `t` (1-based).
    fn step_entry(&self, rows: usize, batch: usize, lr: f64, t: u64, accumulate: bool) -> StepUniform {
        let t = t.max(1) as i32;
        StepUniform {
            rows: rows as u32,
            accumulate: accumulate as u32,
            scale: self.dev.spec.reduction.scale(batch) as f32,
            lr: lr as f32,
            c1: (1.0 - self.dev.opt.beta1.powi(t)) as f32,
            c2: (1.0 - self.dev.opt.beta2.powi(t)) as f32,
            use_index: 1,
            train: 1,
            ..Default::default()
        }
    }

}

impl Backend for GpuBackend {
    fn describe(&self) -> String {
        self.dev.gpu.describe()
    }

    fn set_params(&mut self, params: &Params) -> Result<()> {
        params.check_shapes(&self.dev.spec, "parameters")?;
        self.dev.write_f32(&self.dev.params, 0, &self.dev.layout.flatten_params(params));
        let zeros = vec![0.0; self.dev.layout.state_len()];
        self.dev.write_f32(&self.dev.state, 0, &zeros);
        self.step = 0;
        self.dev.gpu.check("uploading parameters")
    }

    fn params(&mut self) -> Result<Params> {
        let v = self.dev.read_f32(&self.dev.params, 0, self.dev.layout.param_len())?;
        Ok(self.dev.layout.params_of(&v))
    }

    fn optimizer_state(&mut self) -> Result<OptimState> {
        let v = self.dev.read_f32(&self.dev.state, 0, self.dev.layout.state_len())?;
        Ok(self.dev.layout.state_of(&v, self.step))
    }

    fn set_optimizer_state(&mut self, st: &OptimState) -> Result<()> {
        check_optimizer_state(&self.dev.spec, self.dev.opt.kind, st)?;
        self.dev.write_f32(&self.dev.state, 0, &self.dev.layout.flatten_state(st));
        self.step = st.step;
        Ok(())
    }

    fn attach(&mut self, split: Split, data: Arc<Dataset>) -> Result<()> {
        check_attach(&self.dev.spec, &data)?;
        self.ensure_stats(data.len().min(1 << 22));
        self.data.attach(&self.dev, split, data)?;
        self.dev.gpu.check("uploading the dataset")
    }

    fn train_steps(&mut self, indices: &[u32], batch_size: usize, lrs: &[f64]) -> Result<StepStats> {
        if let Some(n) = self.lose_device_at {
            if self.step >= n {
                self.dev.gpu.device.destroy();
            }
        }
        let data = self.data.data_of(Split::Train)?;
        let source = self.data.train_source();
        let mut micros = Vec::new();
        let mut pos = 0;
        for &lr in lrs {
            if pos >= indices.len() {
                break;
            }
            let batch = batch_size.min(indices.len() - pos);
            self.step += 1;
            let mut done = 0;
            while done < batch {
                let rows = self.dev.layout.rows_cap().min(batch - done);
                let mut e = self.step_entry(rows, batch, lr, self.step, done > 0);
                e.use_index = matches!(source, Source::Resident(_, true)) as u32;
                micros.push(Micro { source, entry: e, update: done + rows == batch, samples_lo: pos + done, samples_hi: pos + done + rows });
                done += rows;
            }
            pos += batch;
        }
        let (losses, preds) = self.run_micros(Split::Train, micros, &indices[..pos])?;
        let mut st = StepStats { samples: pos as u64, ..Default::default() };
        for (r, (&l, &p)) in losses.iter().zip(&preds).enumerate() {
            st.loss_sum += l as f64;
            st.correct += (p == data.labels[indices[r] as usize] as u32) as u64;
        }
        Ok(st)
    }

    fn evaluate(&mut self, split: Split) -> Result<EvalResult> {
        let data = self.data.data_of(split)?;
        let n = data.len();
        let source = self.data.eval_source(split);
        let all: Vec<u32> = (0..n as u32).collect();
        let mut micros = Vec::new();
        let mut lo = 0;
        while lo < n {
            let rows = self.dev.layout.rows_cap().min(n - lo);
            let e = StepUniform { idx_offset: lo as u32, rows: rows as u32, ..Default::default() };
            micros.push(Micro { source, entry: e, update: false, samples_lo: lo, samples_hi: lo + rows });
            lo += rows;
        }
        let (losses, preds) = self.run_micros(split, micros, &all)?;
        let mut r = EvalResult { samples: n as u64, ..Default::default() };
        for (i, (&l, &p)) in losses.iter().zip(&preds).enumerate() {
            r.loss_sum += l as f64;
            r.correct += (p == data.labels[i] as u32) as u64;
            r.predictions.push(p as u8);
        }
        Ok(r)
    }

    fn trace_step(&mut self, indices: &[u32], lr: f64) -> Result<StepTrace> {
        if indices.len() > self.dev.layout.rows_cap() {
            bail!("trace_step: a batch of {} exceeds one micro-batch ({} rows)", indices.len(), self.dev.layout.rows_cap());
        }
        self.train_steps(indices, indices.len(), &[lr])?;
        let rows = indices.len();
        let mut t = StepTrace::default();
        for l in 1..self.dev.spec.layers.len() {
            let (off, n) = (self.dev.layout.layer_off(l), self.dev.spec.layers[l]);
            let read = |buf| -> Result<Vec<f64>> { Ok(self.dev.read_f32(buf, off, rows * n)?.into_iter().map(f64::from).collect()) };
            t.push_layer(l, read(&self.dev.pre)?, read(&self.dev.acts)?, read(&self.dev.dlt)?);
        }
        let grads = self.dev.read_f32(&self.dev.grads, 0, self.dev.layout.param_len())?;
        let params = self.params()?;
        let state = self.optimizer_state()?;
        for i in 0..self.dev.spec.num_layers() {
            let grad = self.dev.layout.tensors(&grads, i);
            let param = [params.layers[i].weight.clone(), params.layers[i].bias.clone()];
            t.push_tensors(i, grad, param, &state.slots[i]);
        }
        Ok(t)
    }
}
