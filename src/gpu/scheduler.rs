//! The host-side scheduler: turns training steps and evaluations into micro-batches of at most
//! `rows_cap` rows (a step whose batch exceeds it, as in full-batch training, runs as several
//! whose weight gradients accumulate before the single update), groups them into as few
//! submissions as the step entries, the per-sample statistics and the stream slots allow, and
//! per submission uploads only the step entries (48 bytes each: batch position, learning rate,
//! Adam's bias corrections), the index list or the streamed samples, encodes every dispatch,
//! and reads back each row's loss and prediction.

use super::device::{Device, map_read_timed, storage};
use super::instrument::{Counters, DispatchTiming, PassTimer, TIMER_BYTES, time_dispatches};
use super::kernels::{StepUniform, bind, clip_parts};
use super::dropout::Direction;
use super::matmul::Matmul;
use super::layout::MAX_ENTRIES;
use super::residency::{Residency, Source};
use crate::nn::backend::Split;
use anyhow::{Result, bail};

/// One micro-batch to encode.
pub(super) struct Micro {
    source: Source,
    entry: StepUniform,
    /// Run the optimiser after this micro-batch (last of its step).
    update: bool,
    /// Samples (dataset indices) for the host: labels and streaming.
    samples_lo: usize,
    samples_hi: usize,
}

/// The per-sample statistics (loss and prediction of every row of a submission), grown on
/// demand, and what the scheduler has done so far.
pub(super) struct Scheduler {
    stats_cap: usize,
    row_loss: wgpu::Buffer,
    row_pred: wgpu::Buffer,
    loss_bg: wgpu::BindGroup,
    counters: Counters,
    /// Device time of every submission's pass, where the adapter has timestamp queries.
    timer: Option<PassTimer>,
}

fn groups(n: usize, per: usize) -> u32 {
    n.div_ceil(per).max(1) as u32
}

/// Splits a 1-D workgroup count over x and y (each at most 65535).
pub(super) fn grid(n: u32) -> (u32, u32) {
    if n <= 65535 { (n, 1) } else { (65535, n.div_ceil(65535)) }
}

/// The per-step uniform for an optimiser step `t` (1-based). Every micro-batch has 1 to
/// `rows_cap` rows (`train_micros`, `eval_micros`): the matmul kernels, built without runtime
/// bounds checks on Vulkan, rely on it (`Layout::check_matmul_extents`), so it is asserted.
fn step_entry(dev: &Device, rows: usize, batch: usize, lr: f64, t: u64, accumulate: bool) -> StepUniform {
    assert!((1..=dev.layout.rows_cap()).contains(&rows), "internal: a micro-batch of {rows} rows (1 to {} allowed)", dev.layout.rows_cap());
    let t = t.max(1) as i32;
    StepUniform {
        rows: rows as u32,
        accumulate: accumulate as u32,
        scale: dev.spec.reduction.scale(batch) as f32,
        lr: lr as f32,
        c1: (1.0 - dev.opt.beta1.powi(t)) as f32,
        c2: (1.0 - dev.opt.beta2.powi(t)) as f32,
        use_index: 1,
        train: 1,
        t: t as u32,
        ..Default::default()
    }
}

/// The micro-batches of `lrs.len()` training steps (`Backend::train_steps`) from `source`,
/// counting the steps in `step`; also how many of `indices` they use.
pub(super) fn train_micros(dev: &Device, source: Source, indices: &[u32], batch_size: usize, lrs: &[f64], step: &mut u64) -> (Vec<Micro>, usize) {
    let mut micros = Vec::new();
    let mut pos = 0;
    for &lr in lrs {
        if pos >= indices.len() {
            break;
        }
        let batch = batch_size.min(indices.len() - pos);
        *step += 1;
        let mut done = 0;
        while done < batch {
            let rows = dev.layout.rows_cap().min(batch - done);
            let mut e = step_entry(dev, rows, batch, lr, *step, done > 0);
            e.use_index = matches!(source, Source::Resident(_, true)) as u32;
            e.row_base = done as u32;
            micros.push(Micro { source, entry: e, update: done + rows == batch, samples_lo: pos + done, samples_hi: pos + done + rows });
            done += rows;
        }
        pos += batch;
    }
    (micros, pos)
}

/// The micro-batches of a forward pass over `n` samples from `source`, in order.
pub(super) fn eval_micros(dev: &Device, source: Source, n: usize) -> Vec<Micro> {
    let mut micros = Vec::new();
    let mut lo = 0;
    while lo < n {
        let rows = dev.layout.rows_cap().min(n - lo);
        let e = StepUniform { idx_offset: lo as u32, rows: rows as u32, ..Default::default() };
        micros.push(Micro { source, entry: e, update: false, samples_lo: lo, samples_hi: lo + rows });
        lo += rows;
    }
    micros
}

impl Scheduler {
    /// Statistics for 1024 rows.
    pub(super) fn new(dev: &Device) -> Scheduler {
        let stats_cap = 1024;
        let row_loss = storage(&dev.gpu, "row loss", 4 * stats_cap);
        let row_pred = storage(&dev.gpu, "row pred", 4 * stats_cap);
        let loss_bg = bind(&dev.gpu, &dev.k.output_layer, &dev.dims, &dev.steps, &[&dev.pre, &dev.acts, &dev.dlt, &dev.batch_labels, &row_loss, &row_pred]);
        let timer = PassTimer::new(&dev.gpu);
        let counters = Counters { device: timer.as_ref().map(|_| Default::default()), ..Default::default() };
        Scheduler { stats_cap, row_loss, row_pred, loss_bg, counters, timer }
    }

    pub(super) fn counters(&self) -> Counters {
        self.counters
    }

    /// The per-row loss and prediction buffers.
    pub(super) fn stats(&self) -> [&wgpu::Buffer; 2] {
        [&self.row_loss, &self.row_pred]
    }

    /// Grows the per-sample statistics and index buffers to hold `n` entries.
    pub(super) fn ensure_stats(&mut self, dev: &Device, data: &mut Residency, n: usize) {
        if n > self.stats_cap {
            self.stats_cap = n.next_power_of_two();
            self.row_loss = storage(&dev.gpu, "row loss", 4 * self.stats_cap);
            self.row_pred = storage(&dev.gpu, "row pred", 4 * self.stats_cap);
            self.loss_bg = bind(&dev.gpu, &dev.k.output_layer, &dev.dims, &dev.steps,
                &[&dev.pre, &dev.acts, &dev.dlt, &dev.batch_labels, &self.row_loss, &self.row_pred]);
        }
        data.ensure_index(dev, n);
    }

    /// Encodes, submits and reads back a sequence of micro-batches, in as few submissions as
    /// the uniform entries, the statistics buffer and the stream slots allow. `samples` lists the
    /// dataset index of every row, in order; returns per-row (loss, prediction).
    pub(super) async fn run_micros(&mut self, dev: &Device, data: &mut Residency, split: Split, micros: Vec<Micro>, samples: &[u32]) -> Result<(Vec<f32>, Vec<u32>)> {
        let dataset = data.data_of(split)?;
        let total_rows: usize = micros.iter().map(|m| m.entry.rows as usize).sum();
        let resident_index = micros.iter().any(|m| matches!(m.source, Source::Resident(_, true)));
        self.ensure_stats(dev, data, total_rows.min(1 << 22).max(if resident_index { samples.len().min(1 << 22) } else { 0 }));
        let data = &*data;
        let align = dev.layout.align();
        let mut losses = Vec::with_capacity(total_rows);
        let mut preds = Vec::with_capacity(total_rows);
        let mut i = 0;
        let mut stream_turn = 0;
        while i < micros.len() {
            // a group: consecutive micro-batches within the entry, stats and stream capacities
            let mut j = i;
            let mut rows = 0;
            let stream_cap = data.stream_cap();
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
            let t_upload = web_time::Instant::now();
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
            let mut bytes = vec![0u8; entries.len() * align];
            for (n, e) in entries.iter().enumerate() {
                bytes[n * align..n * align + std::mem::size_of::<StepUniform>()].copy_from_slice(bytemuck::bytes_of(e));
            }
            dev.gpu.queue.write_buffer(&dev.steps, 0, &bytes);
            if let Some(base) = idx_base {
                let hi = micros[i..j].iter().filter(|m| matches!(m.source, Source::Resident(_, true))).map(|m| m.samples_hi).max().unwrap();
                data.write_index(dev, &samples[base..hi]);
            }
            if !stream_samples.is_empty() {
                data.write_stream(dev, slot, &dataset, &stream_samples);
            }
            self.counters.timing.upload += t_upload.elapsed();
            let t_encode = web_time::Instant::now();
            let mut enc = dev.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("steps") });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("steps"), timestamp_writes: self.timer.as_ref().map(PassTimer::writes) });
                for (n, m) in micros[i..j].iter().enumerate() {
                    let eoff = (n * align) as u32;
                    self.encode_micro(dev, data, &mut pass, m, eoff, slot)?;
                }
            }
            let readback = dev.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("stats readback"),
                size: 8 * rows as u64 + TIMER_BYTES,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            enc.copy_buffer_to_buffer(&self.row_loss, 0, &readback, 0, 4 * rows as u64);
            enc.copy_buffer_to_buffer(&self.row_pred, 0, &readback, 4 * rows as u64, 4 * rows as u64);
            if let Some(t) = &self.timer {
                t.copy_to(&mut enc, &readback, 8 * rows as u64);
            }
            let cmd = enc.finish();
            self.counters.timing.encode += t_encode.elapsed();
            let t_compute = web_time::Instant::now();
            dev.gpu.queue.submit([cmd]);
            self.counters.submissions += 1;
            let (bytes, copy) = map_read_timed(&dev.gpu, &readback, 8 * rows as u64 + TIMER_BYTES).await?;
            self.counters.timing.compute += t_compute.elapsed() - copy;
            self.counters.timing.readback += copy;
            let (stats, ticks) = bytes.split_at(8 * rows);
            if let (Some(t), Some(d)) = (&self.timer, &mut self.counters.device) {
                *d += t.duration(ticks);
            }
            let (l, p) = stats.split_at(4 * rows);
            losses.extend_from_slice(bytemuck::cast_slice::<u8, f32>(l));
            preds.extend_from_slice(bytemuck::cast_slice::<u8, u32>(p));
            dev.gpu.check("training")?;
            i = j;
        }
        Ok((losses, preds))
    }

    /// Records the dispatches of one micro-batch: gather, forward, output layer, and in
    /// training the backward products and (last micro-batch of a step) the update.
    fn encode_micro(&mut self, dev: &Device, data: &Residency, pass: &mut wgpu::ComputePass, m: &Micro, eoff: u32, slot: usize) -> Result<()> {
        let s = &dev.spec;
        let rows = m.entry.rows as usize;
        let a = dev.layout.align() as u32;
        // gather
        let (bg, dslot, words) = data.gather(dev, m.source, slot)?;
        pass.set_pipeline(&dev.k.gather.pipeline);
        pass.set_bind_group(0, bg, &[dslot as u32 * a, eoff]);
        let (gy, gz) = grid(rows as u32);
        pass.dispatch_workgroups(groups(words, 64), gy, gz);
        let mut dispatches = 1;
        // in training: augmentation of the gathered pictures, then dropout on the layers that
        // have it (the input's first)
        let dropout = dev.dropout.as_ref().filter(|_| m.entry.train == 1);
        let dropout_on = |pass: &mut wgpu::ComputePass, dir: Direction, l: usize| match dropout.filter(|d| d.drops(l)) {
            Some(d) => {
                d.encode(dev, pass, dir, l, rows, eoff);
                1
            }
            None => 0,
        };
        if let Some(a) = dev.augment.as_ref().filter(|_| m.entry.train == 1) {
            dispatches += a.encode(dev, pass, rows, eoff);
        }
        dispatches += dropout_on(pass, Direction::Forward, 0);
        // forward
        for l in 1..s.layers.len() {
            dispatch_matmul(dev, pass, Matmul::Forward, l, rows, eoff);
            dispatches += 1;
            if l < s.layers.len() - 1 {
                dispatches += dropout_on(pass, Direction::Forward, l);
            }
        }
        // output layer: loss, prediction, δ_L
        pass.set_pipeline(&dev.k.output_layer.pipeline);
        pass.set_bind_group(0, &self.loss_bg, &[dev.layout.loss_slot() as u32 * a, eoff]);
        let (gx, gy) = grid(groups(rows, 64));
        pass.dispatch_workgroups(gx, gy, 1);
        dispatches += 1;
        if m.entry.train == 1 {
            for l in (1..s.layers.len()).rev() {
                dispatch_matmul(dev, pass, Matmul::WeightGrad, l, rows, eoff);
                dispatches += 1;
                if l > 1 {
                    dispatch_matmul(dev, pass, Matmul::BackwardData, l, rows, eoff);
                    dispatches += 1;
                    dispatches += dropout_on(pass, Direction::Backward, l - 1);
                }
            }
            if m.update {
                dispatches += encode_update(dev, pass, eoff);
            }
        }
        self.counters.dispatches += dispatches;
        Ok(())
    }
}

/// Records the optimiser update of one step: clipping's reduction before it and the max-norm
/// constraint after it where configured; returns the dispatches. All of them share the update's
/// bind group and dims (optimizer.wgsl).
fn encode_update(dev: &Device, pass: &mut wgpu::ComputePass, eoff: u32) -> u64 {
    let offsets = [dev.layout.opt_slot() as u32 * dev.layout.align() as u32, eoff];
    let mut dispatches = 0;
    let mut run = |k: &super::kernels::Kernel, (gx, gy): (u32, u32)| {
        pass.set_pipeline(&k.pipeline);
        pass.set_bind_group(0, &dev.update_bg, &offsets);
        pass.dispatch_workgroups(gx, gy, 1);
        dispatches += 1;
    };
    if dev.opt.clip_norm.is_some() {
        run(&dev.k.clip_partials, (clip_parts(dev.layout.param_len()) as u32, 1));
        run(&dev.k.clip_finish, (1, 1));
    }
    // one thread per vec4 of parameters (param_len is a multiple of 4)
    run(&dev.k.update, grid(groups(dev.layout.param_len() / 4, 256)));
    if dev.opt.max_norm > 0.0 {
        run(&dev.k.max_norm, grid(groups(dev.spec.layers[1..].iter().sum(), 64)));
    }
    dispatches
}

/// The pipeline and workgroup grid (x, y) of one matrix product of layer `l` (1-based) on
/// `rows` samples: the vec4 kernel where the layer's shapes allow, else the scalar one.
fn matmul_grid(dev: &Device, kind: Matmul, l: usize, rows: usize) -> (&wgpu::ComputePipeline, (u32, u32)) {
    let (n_in, n_out) = dev.spec.layer_dims(l - 1);
    let (out_rows, out_cols) = match kind {
        Matmul::Forward => (rows, n_out),
        Matmul::BackwardData => (rows, n_in),
        Matmul::WeightGrad => (n_out, n_in),
    };
    let k = match &dev.k.vec4 {
        Some(v) if dev.uses_vec4(l - 1, kind) => &v[kind as usize],
        _ => &dev.k.scalar[kind as usize],
    };
    (&k.kernel.pipeline, k.grid.workgroups(out_rows, out_cols))
}

/// Sets the pipeline, dims and grid of one matrix product of layer `l` (1-based) on `rows`.
fn dispatch_matmul(dev: &Device, pass: &mut wgpu::ComputePass, kind: Matmul, l: usize, rows: usize, eoff: u32) {
    let slot = match kind {
        Matmul::Forward => dev.layout.fwd_slot(l),
        Matmul::BackwardData => dev.layout.bwd_slot(l),
        Matmul::WeightGrad => dev.layout.wg_slot(l),
    };
    pass.set_bind_group(0, &dev.matmul_bg, &[slot as u32 * dev.layout.align() as u32, eoff]);
    let (pipeline, (gx, gy)) = matmul_grid(dev, kind, l, rows);
    pass.set_pipeline(pipeline);
    pass.dispatch_workgroups(gx, gy, 1);
}

/// Checks, when the backend is built, that no dispatch of a micro-batch of up to `rows_cap`
/// rows needs more workgroups per dimension than the device allows: a clear error naming the
/// layer now, instead of a validation error in the middle of a run. (The 1-D dispatches split
/// over x and y at 65535, the least WebGPU guarantees.)
pub(super) fn check_grids(dev: &Device) -> Result<()> {
    let max = dev.gpu.limits.max_compute_workgroups_per_dimension;
    for l in 1..dev.spec.layers.len() {
        for kind in Matmul::ALL {
            let (_, (gx, gy)) = matmul_grid(dev, kind, l, dev.layout.rows_cap());
            if gx.max(gy) > max {
                let (n_in, n_out) = dev.spec.layer_dims(l - 1);
                bail!(
                    "layer {l} ({n_in}→{n_out}) needs {} workgroups in one dimension for its {kind:?} product; adapter '{}' allows {max} (max_compute_workgroups_per_dimension): use narrower layers or --backend cpu",
                    gx.max(gy),
                    dev.gpu.info.name
                );
            }
        }
    }
    let update = groups(dev.layout.param_len() / 4, 256);
    if grid(update).1 > max.min(65535) {
        bail!("the model's {} parameters need more update workgroups than adapter '{}' allows", dev.layout.param_len(), dev.gpu.info.name);
    }
    Ok(())
}

/// `GpuBackend::time_matmul`: one step entry of `rows` rows, then `reps` dispatches of the
/// product timed by `instrument::time_dispatches`.
pub(super) fn time_matmul(dev: &Device, kind: Matmul, l: usize, rows: usize, reps: usize) -> Result<DispatchTiming> {
    if rows == 0 || rows > dev.layout.rows_cap() || l == 0 || l >= dev.spec.layers.len() || (kind == Matmul::BackwardData && l < 2) {
        bail!("time_matmul: no {kind:?} of layer {l} on {rows} rows");
    }
    let entry = StepUniform { rows: rows as u32, scale: 1.0, train: 1, ..Default::default() };
    dev.gpu.queue.write_buffer(&dev.steps, 0, bytemuck::bytes_of(&entry));
    let per = time_dispatches(&dev.gpu, reps, |pass| dispatch_matmul(dev, pass, kind, l, rows, 0))?;
    dev.gpu.check("timing a matmul")?;
    Ok(per)
}
