//! The CPU backend, generic over the float type:
//! - `CpuBackend<f64>` is the reference: the textbook matrix product (`math::gemm_reference`)
//!   and each step of backpropagation as one equation, to be read against the maths;
//! - `CpuBackend<f32>` is the fast path: the same equations with the f32 GEMM of
//!   `math::Real for f32` (`nn::sgemm` on AVX-512 CPUs) on every core (`--threads`) where a
//!   step has pieces large enough to split (`CpuBackend::splits`; small steps stay on the calling
//!   thread), subnormals flushed to zero (`flush`), bit-identical whatever the number of threads.
//!
//! Inputs are converted as they are read (`inputs`: byte pixels stay bytes); a pass over
//! consecutive samples runs in blocks (evaluation chunks, and a full batch's blocks of rows, each
//! run forward and back while its inputs are in cache, `step_on`); the workspaces grow to the
//! largest block and are reused.
//!
//! One step on a batch X [B, in] (row layout, W [out, in]; the f32 path holds the first layer's
//! W as its transpose, which changes only the products' strides, `products::WeightLayout`):
//!   forward   Z_l = A_{l−1}·W_lᵀ + b_l,   A_l = f_l(Z_l),   A_0 = X
//!             (with dropout, A_l ⊙ m_l where a layer has a rate: `nn::dropout`)
//!   output    δ_L = ∂L/∂Z_L                                   (math::output_delta)
//!   backward  ∂W_l = s·δ_lᵀ·A_{l−1},   ∂b_l = s·Σ_b δ_l,   δ_{l−1} = (δ_l·W_l) ⊙ f'_{l−1}(Z_{l−1})
//!   update    the optimiser rule on every tensor               (optim::apply)
//! with s the batch reduction (1/B for mean, 1 for sum); the update optionally clips the
//! gradients by their global norm before and applies the max-norm constraint after.

use crate::nn::backend::{Backend, EvalResult, Split, StepStats, StepTrace, check_attach, check_optimizer_state};
use crate::nn::augment::Augment;
use crate::nn::dropout::Dropout;
use crate::nn::math::Real;
use crate::nn::model::{ModelSpec, Params};
use crate::nn::optim::{self, OptimState, OptimizerSpec};
use crate::data::Dataset;
use anyhow::{Result, bail};
use inputs::Inputs;
use products::{Product, WeightLayout, step_products};
use std::collections::HashMap;
use std::sync::Arc;

mod elementwise;
pub mod flush;
pub mod inputs;
pub mod products;

pub type ReferenceBackend = CpuBackend<f64>;
pub type FastBackend = CpuBackend<f32>;

/// Rows evaluated per forward pass in `evaluate`.
const EVAL_CHUNK: usize = 1024;

/// Rows per block of a training batch of consecutive samples (`CpuBackend::step_on`), rounded
/// up to a multiple of the GEMM's k block: its inputs, 3 MB as f32 at 784 values a sample,
/// stay in the two cores' L2 between the forward pass and the weight gradient.
const BLOCK_ROWS: usize = 1024;

/// What a step is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StepKind {
    /// A training step: a full batch may be read in file order, and in blocks of rows.
    Train,
    /// A traced step: the batch in its order, every row's Z, A and δ kept for the trace.
    Trace,
}

pub struct CpuBackend<T: Real> {
    spec: ModelSpec,
    opt: OptimizerSpec,
    /// How each layer's weights, their gradients and their optimiser state are held in
    /// `params`, `grads` and `state` (W [out×in], or its transpose for the first layer of the
    /// f32 path); everything the backend hands out or takes in is W [out×in].
    layouts: Vec<WeightLayout>,
    params: Params<T>,
    grads: Params<T>,
    /// `state[layer][tensor][slot]`, tensor 0 = weight, 1 = bias.
    state: Vec<[Vec<Vec<T>>; 2]>,
    /// Optimiser steps taken.
    step: u64,
    /// Every attached split, converted to inputs once.
    inputs: HashMap<Split, Arc<Inputs<T>>>,
    /// Rows the workspaces hold: the largest pass so far (they grow, never shrink, so a run
    /// that alternates a full batch and evaluation chunks allocates once).
    cap: usize,
    /// A shuffled batch's inputs, gathered [rows × n_0].
    x_buf: Vec<T>,
    /// Per layer l = 1..=L: A_l, Z_l and δ_l [cap × n_l], the first `rows × n_l` values in use
    /// (index 0 unused: A_0 is the input matrix, read in place or from `x_buf`).
    a: Vec<Vec<T>>,
    z: Vec<Vec<T>>,
    delta: Vec<Vec<T>>,
    /// Dropout in training steps, and per layer l = 0..L−1 the mask of the current step on A_l
    /// (its first `rows × n_l` values; empty where the layer has no dropout).
    dropout: Dropout,
    mask: Vec<Vec<T>>,
    /// Augmentation of the training steps' pictures.
    augment: Option<Augment>,
    /// Each row's loss and predicted class in `score` [up to the largest pass's rows].
    row_loss: Vec<f64>,
    row_pred: Vec<u8>,
    /// Cores the matrix products may use (`Real::gemm_threads`; the results do not depend on it).
    threads: usize,
    /// Where a step's pieces run when subnormals are flushed on more than one thread: a pool
    /// whose threads all flush (`flush`); None on one thread or in f64.
    pool: Option<rayon::ThreadPool>,
}

/// Parameters of a tensor from which its update is split over threads.
pub const PARALLEL_MIN_UPDATE: usize = 1 << 18;

/// `optim::apply` on `threads` contiguous pieces of a tensor at once.
fn update_in_pieces<T: Real>(opt: &OptimizerSpec, lr: f64, t: u64, w: &mut [T], g: &[T], state: &mut [Vec<T>], threads: usize) {
    let piece = w.len().div_ceil(threads);
    let mut slots: Vec<std::slice::ChunksMut<'_, T>> = state.iter_mut().map(|s| s.chunks_mut(piece)).collect();
    rayon::scope(|scope| {
        for (w, g) in w.chunks_mut(piece).zip(g.chunks(piece)) {
            let mut parts: Vec<&mut [T]> = slots.iter_mut().map(|s| s.next().unwrap()).collect();
            scope.spawn(move |_| optim::apply_slices(opt, lr, t, w, g, &mut parts));
        }
    });
}

/// The instruction sets the f32 path's GEMM kernels are chosen by when the program starts
/// (`nn::sgemm` where there is avx512f; matrixmultiply and the `gemm` crate dispatch on them), e.g. "x86_64 avx2 fma avx". Results
/// are the same bytes for any thread count on one CPU type; on a CPU with another answer here
/// the kernels, and so the f32 rounding, differ.
pub fn instruction_sets() -> String {
    let mut found: Vec<&str> = vec![std::env::consts::ARCH];
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        for (name, has) in [
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("avx", std::arch::is_x86_feature_detected!("avx")),
        ] {
            if has {
                found.push(name);
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        for (name, has) in [("neon", std::arch::is_aarch64_feature_detected!("neon")), ("fcma", std::arch::is_aarch64_feature_detected!("fcma"))] {
            if has {
                found.push(name);
            }
        }
    }
    #[cfg(target_arch = "wasm32")]
    if cfg!(target_feature = "simd128") {
        found.push("simd128");
    }
    found.join(" ")
}

/// Every core the machine has.
pub fn all_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

impl<T: Real> CpuBackend<T> {
    /// Runs `work` on `rows` samples as every computation of the backend runs: in f32 with
    /// subnormals flushed on this thread and, where a piece of it would go to another thread
    /// (`splits`), inside the backend's flushing pool (`flush`). Where none would, it runs on
    /// this thread alone (a hand-over to the pool per step costs seed000-mnist's small steps
    /// a third of their time) with `threads` at 1, so that nothing can leave a flushing thread.
    fn computing<R: Send>(&mut self, rows: usize, work: impl FnOnce(&mut Self) -> R + Send) -> R {
        if !T::FLUSHES_SUBNORMALS {
            return work(self);
        }
        let _flushing = flush::Flushing::start();
        match self.pool.take() {
            Some(pool) if self.splits(rows) => {
                let r = pool.install(|| work(self));
                self.pool = Some(pool);
                r
            }
            pool => {
                let threads = std::mem::replace(&mut self.threads, 1);
                let r = work(self);
                (self.threads, self.pool) = (threads, pool);
                r
            }
        }
    }

    /// Whether some piece of a step on `rows` samples goes to a second thread: a product large
    /// enough (`Real::splits_product`), a tensor's update, a layer's element-wise work, or the
    /// augmentation of its pictures (each thresholded where it splits).
    pub fn splits(&self, rows: usize) -> bool {
        self.threads > 1
            && ((self.augment.is_some() && rows > 1)
                || step_products(&self.spec, rows, &self.layouts).iter().any(|p| T::splits_product(p.m, p.k, p.n))
                || self.params.layers.iter().any(|p| p.weight.len() >= PARALLEL_MIN_UPDATE)
                || self.spec.layers.iter().any(|&w| rows.saturating_mul(w) >= elementwise::PARALLEL_MIN_ELEMENTS))
    }

    /// A backend whose products use every core (the f64 reference always computes on one).
    pub fn new(spec: &ModelSpec, opt: &OptimizerSpec) -> Self {
        Self::with_threads(spec, opt, all_cores())
    }

    /// A backend whose products use up to `threads` cores.
    pub fn with_threads(spec: &ModelSpec, opt: &OptimizerSpec, threads: usize) -> Self {
        let zeros = Params::zeros(spec).map(T::of);
        let mut b = CpuBackend {
            spec: spec.clone(),
            opt: opt.clone(),
            layouts: WeightLayout::of_layers::<T>(spec.num_layers()),
            params: zeros.clone(),
            grads: zeros,
            state: Vec::new(),
            step: 0,
            inputs: HashMap::new(),
            cap: 0,
            x_buf: Vec::new(),
            a: Vec::new(),
            z: Vec::new(),
            delta: Vec::new(),
            dropout: Dropout::none(),
            mask: Vec::new(),
            augment: None,
            row_loss: Vec::new(),
            row_pred: Vec::new(),
            threads: threads.max(1),
            pool: None,
        };
        if T::FLUSHES_SUBNORMALS && b.threads > 1 {
            // The step's pieces must run on threads that flush. Where the system will not start
            // them, the step runs on the calling thread alone: the same bytes, only slower.
            match flush::pool(b.threads) {
                Ok(pool) => b.pool = Some(pool),
                Err(_) => b.threads = 1,
            }
        }
        b.reset_state();
        b
    }

    fn reset_state(&mut self) {
        let slots = self.opt.kind.state_slots();
        self.state = self
            .params
            .layers
            .iter()
            .map(|l| [vec![vec![T::zero(); l.weight.len()]; slots], vec![vec![T::zero(); l.bias.len()]; slots]])
            .collect();
        self.step = 0;
    }

    /// Grows the workspaces to hold `rows` rows.
    fn ensure_workspace(&mut self, rows: usize) {
        if rows <= self.cap {
            return;
        }
        self.cap = rows;
        let n = &self.spec.layers;
        self.a = n.iter().enumerate().map(|(l, &w)| vec![T::zero(); if l == 0 { 0 } else { rows * w }]).collect();
        self.z = self.a.clone();
        self.delta = self.a.clone();
        self.mask = n.iter().enumerate().map(|(l, &w)| vec![T::zero(); if self.dropout.rate(l) > 0.0 { rows * w } else { 0 }]).collect();
    }

    /// Z_l = A_{l−1}·W_lᵀ + b_l;  A_l = f_l(Z_l), for every layer, on `rows` samples `x`; in
    /// the training step `step` (1-based), A_l ⊙ m_l on the hidden layers with dropout.
    fn forward(&mut self, rows: usize, x: &[T], step: Option<u64>) {
        let threads = self.threads;
        for l in 1..self.spec.layers.len() {
            let (n_in, n_out) = self.spec.layer_dims(l - 1);
            let p = &self.params.layers[l - 1];
            let (prev, rest) = self.a.split_at_mut(l);
            let input = if l == 1 { x } else { &prev[l - 1][..rows * n_in] };
            let z = &mut self.z[l][..rows * n_out];
            for r in 0..rows {
                z[r * n_out..(r + 1) * n_out].copy_from_slice(&p.bias);
            }
            // Z += A_{l−1} [rows×in] · Wᵀ [in×out]   (W [out×in] read through strides, or Wᵀ's rows)
            Product::forward(l, rows, n_in, n_out, self.layouts[l - 1]).run(threads, T::one(), input, &p.weight, T::one(), z);
            elementwise::activate_rows(threads, self.spec.activations[l - 1], n_out, z, &mut rest[0][..rows * n_out]);
            if let Some(t) = step.filter(|_| l < self.spec.layers.len() - 1 && self.dropout.rate(l) > 0.0) {
                let m = &mut self.mask[l][..rows * n_out];
                self.dropout.mask(t, l, 0, m);
                elementwise::times_mask(&mut rest[0][..rows * n_out], m);
            }
        }
    }

    /// Loss sum (added to `loss`, in the rows' order) and correct count of the current outputs
    /// against `labels`; each row's loss is computed apart (`elementwise::row_scores`), the
    /// sum here.
    fn score(&mut self, labels: &[u8], predictions: Option<&mut Vec<u8>>, loss: f64) -> (f64, u64) {
        let (rows, last, n) = (labels.len(), self.spec.layers.len() - 1, self.spec.output_size());
        if self.row_loss.len() < rows {
            self.row_loss.resize(rows, 0.0);
            self.row_pred.resize(rows, 0);
        }
        let (losses, preds) = (&mut self.row_loss[..rows], &mut self.row_pred[..rows]);
        let (z, a) = (&self.z[last][..rows * n], &self.a[last][..rows * n]);
        elementwise::row_scores(self.threads, self.spec.loss, self.spec.label_smoothing, n, z, a, labels, losses, preds);
        let loss = losses.iter().fold(loss, |sum, &l| sum + l);
        let correct = preds.iter().zip(labels).filter(|(p, y)| p == y).count() as u64;
        if let Some(v) = predictions {
            v.extend_from_slice(preds);
        }
        (loss, correct)
    }

    /// δ_L, then for l = L…1: ∂W_l = s·δ_lᵀ·A_{l−1};  ∂b_l = Σ_rows δ_l (scaled by s once every
    /// block is in, `step_on`);  δ_{l−1} = (δ_l·W_l) ⊙ f'(Z_{l−1}), on the inputs `x` of the
    /// forward pass: one block of a batch's rows, whose gradients start the sums (`first`) or
    /// are added to those of the blocks before.
    fn backward(&mut self, labels: &[u8], x: &[T], scale: T, first: bool) {
        let rows = labels.len();
        let last = self.spec.layers.len() - 1;
        let n = self.spec.output_size();
        let out_act = self.spec.output_activation();
        let (z, a) = (&self.z[last][..rows * n], &self.a[last][..rows * n]);
        elementwise::output_deltas(self.threads, self.spec.loss, self.spec.label_smoothing, out_act, n, z, a, labels, &mut self.delta[last][..rows * n]);
        let old = if first { T::zero() } else { T::one() };
        for l in (1..=last).rev() {
            let (n_in, n_out) = self.spec.layer_dims(l - 1);
            let g = &mut self.grads.layers[l - 1];
            let input = if l == 1 { x } else { &self.a[l - 1][..rows * n_in] };
            // ∂W [out×in] = s · δᵀ [out×rows] · A_{l−1} [rows×in]   (δᵀ through strides: rs = 1, cs = out),
            // or ∂Wᵀ [in×out] = s · A_{l−1}ᵀ · δ where the layer is held transposed
            let d = &self.delta[l][..rows * n_out];
            let (a, b) = match self.layouts[l - 1] {
                WeightLayout::OutByIn => (d, input),
                WeightLayout::InByOut => (input, d),
            };
            Product::weight_gradient(l, rows, n_in, n_out, self.layouts[l - 1]).run(self.threads, scale, a, b, old, &mut g.weight);
            elementwise::add_column_sums(self.threads, &self.delta[l][..rows * n_out], n_out, &mut g.bias, first);
            if l > 1 {
                // δ_{l−1} [rows×in] = (δ_l [rows×out] · W [out×in]) ⊙ f'(Z_{l−1})
                let (lo, hi) = self.delta.split_at_mut(l);
                let w = &self.params.layers[l - 1].weight;
                let d_prev = &mut lo[l - 1][..rows * n_in];
                Product::input_gradient(l, rows, n_in, n_out).run(self.threads, T::one(), &hi[0][..rows * n_out], w, T::zero(), d_prev);
                let (z, a) = (&self.z[l - 1][..rows * n_in], &self.a[l - 1][..rows * n_in]);
                let act = self.spec.activations[l - 2];
                if self.dropout.rate(l - 1) > 0.0 {
                    elementwise::times_derivative_masked(self.threads, act, n_in, d_prev, z, &self.mask[l - 1][..rows * n_in]);
                } else {
                    elementwise::times_derivative(self.threads, act, n_in, d_prev, z, a);
                }
            }
        }
    }

    /// One optimiser update of every tensor with the current gradients; a large tensor is
    /// updated in pieces on the backend's threads (element by element, so the same result).
    /// Around it: clipping by global norm first (the gradients are scaled in place, as
    /// `clip_grad_norm_` leaves them, so a trace shows the clipped ones), the max-norm
    /// constraint last (whole rows, so after every piece is done).
    fn update(&mut self, lr: f64) {
        self.step += 1;
        if let Some(c) = self.opt.clip_norm {
            // in W [out×in]'s order whatever the layout, so the same norm to the last bit
            let (spec, layouts) = (&self.spec, &self.layouts);
            let sum_sq = optim::sum_of_squares(self.grads.layers.iter().enumerate().flat_map(|(i, g)| {
                let (n_in, n_out) = spec.layer_dims(i);
                layouts[i].in_out_by_in_order(&g.weight, n_in, n_out).chain(g.bias.iter().copied())
            }));
            let scale = optim::clip_scale(c, sum_sq);
            if scale < 1.0 {
                let f = T::of(scale);
                for g in &mut self.grads.layers {
                    g.weight.iter_mut().chain(g.bias.iter_mut()).for_each(|x| *x = *x * f);
                }
            }
        }
        let (opt, t, threads) = (&self.opt, self.step, self.threads);
        for ((p, g), st) in self.params.layers.iter_mut().zip(&self.grads.layers).zip(&mut self.state) {
            let [sw, sb] = st;
            for (w, g, s) in [(&mut p.weight, &g.weight, sw), (&mut p.bias, &g.bias, sb)] {
                if threads > 1 && w.len() >= PARALLEL_MIN_UPDATE {
                    update_in_pieces(opt, lr, t, w, g, s, threads);
                } else {
                    optim::apply(opt, lr, t, w, g, s);
                }
            }
        }
        if self.opt.max_norm > 0.0 {
            for (i, p) in self.params.layers.iter_mut().enumerate() {
                let (n_in, n_out) = self.spec.layer_dims(i);
                match self.layouts[i] {
                    WeightLayout::OutByIn => optim::max_norm_rows(&mut p.weight, n_in, T::of(self.opt.max_norm)),
                    WeightLayout::InByOut => optim::max_norm_columns(&mut p.weight, n_out, T::of(self.opt.max_norm)),
                }
            }
        }
    }

    /// Layer `i`'s weight-shaped tensor `held` (weights, gradient or an optimiser slot, in the
    /// layer's layout) as W [out×in].
    fn out_by_in<U: Copy>(&self, i: usize, held: &[U]) -> Vec<U> {
        let (n_in, n_out) = self.spec.layer_dims(i);
        self.layouts[i].out_by_in(held, n_in, n_out)
    }

    /// Layer `i`'s weight-shaped tensor given as W [out×in], in the layer's layout.
    fn hold<U: Copy>(&self, i: usize, w: &[U]) -> Vec<U> {
        let (n_in, n_out) = self.spec.layer_dims(i);
        self.layouts[i].hold(w, n_in, n_out)
    }

    fn inputs_of(&self, split: Split) -> Result<Arc<Inputs<T>>> {
        match self.inputs.get(&split) {
            Some(i) => Ok(i.clone()),
            None => bail!("no {} data attached to the backend", split.name()),
        }
    }

    /// forward + score + backward + update on the training samples `idx`.
    ///
    /// In a training step (`StepKind::Train`), a batch that is a permutation of the whole split
    /// (full-batch training) is read in place in file order: its gradient is the same sum, the
    /// shuffle only reorders its terms, and reading in place saves a copy of the whole set per
    /// step. A batch of consecutive samples then runs in blocks of `BLOCK_ROWS` (a multiple of
    /// the GEMM's k block, `Real::k_block`, so the weight gradients' sums are the one call's):
    /// each block's inputs are converted, run forward and back while they are in cache, so
    /// the inputs cross memory once a step, as bytes, not twice as floats. (A trace keeps the
    /// batch's order, row by row as the GPU's, and every row's values.)
    fn step_on(&mut self, idx: &[u32], lr: f64, kind: StepKind) -> Result<StepStats> {
        let mut buf = std::mem::take(&mut self.x_buf);
        let step = self.step + 1;
        // augmentation and input dropout change a copy of the batch, never the split's inputs
        let input_dropout = self.dropout.rate(0) > 0.0;
        let copy = input_dropout || self.augment.is_some();
        let train = kind == StepKind::Train;
        let inputs = self.inputs_of(Split::Train)?;
        let data = inputs.data.clone();
        let in_order: Vec<u32>;
        // (not with dropout or augmentation: a row's draws follow its place in the batch)
        let idx = if train && !self.dropout.is_on() && self.augment.is_none() && idx.len() == data.len() && idx.len() > 1 && is_permutation(idx) {
            in_order = (0..idx.len() as u32).collect();
            &in_order[..]
        } else {
            idx
        };
        let rows = idx.len();
        let consecutive = Inputs::<T>::consecutive(idx).filter(|_| !copy);
        let block = match (consecutive, T::k_block()) {
            (Some(_), Some(kb)) if train && !self.dropout.is_on() => BLOCK_ROWS.div_ceil(kb) * kb,
            _ => rows,
        };
        self.ensure_workspace(block.min(rows));
        let labels: Vec<u8> = idx.iter().map(|&i| data.labels[i as usize]).collect();
        let scale = T::of(self.spec.reduction.scale(rows));
        let (mut loss_sum, mut correct) = (0.0, 0);
        // (an empty batch still runs once: its gradients are zero, as the update expects)
        for b0 in (0..rows.max(1)).step_by(block.max(1)) {
            let n = block.min(rows - b0);
            let x: &[T] = match consecutive {
                Some(lo) => inputs.rows(lo + b0, n, &mut buf, self.threads),
                None => self.gathered(&inputs, idx, step, &mut buf),
            };
            self.forward(n, x, Some(step));
            let (loss, c) = self.score(&labels[b0..b0 + n], None, loss_sum);
            (loss_sum, correct) = (loss, correct + c);
            self.backward(&labels[b0..b0 + n], x, scale, b0 == 0);
        }
        for g in &mut self.grads.layers {
            elementwise::scale_all(scale, &mut g.bias);
        }
        self.update(lr);
        self.x_buf = buf;
        Ok(StepStats { samples: rows as u64, loss_sum, correct })
    }

    /// The samples `idx` gathered into `buf`, augmented and with input dropout applied where
    /// the run has them.
    fn gathered<'a>(&mut self, inputs: &Inputs<T>, idx: &[u32], step: u64, buf: &'a mut Vec<T>) -> &'a [T] {
        let (rows, len) = (idx.len(), inputs.data.sample_len);
        if buf.len() < rows * len {
            buf.resize(rows * len, T::zero());
        }
        inputs.gather(idx, buf);
        if let Some(aug) = &self.augment {
            let background = T::of(self.spec.input_norm.apply(0.0));
            inputs::augment_batch(aug, step, &mut buf[..rows * len], len, background, self.threads);
        }
        if let Some(m) = self.mask.first_mut().filter(|_| self.dropout.rate(0) > 0.0) {
            self.dropout.mask(step, 0, 0, &mut m[..rows * len]);
            elementwise::times_mask(&mut buf[..rows * len], &m[..rows * len]);
        }
        &buf[..rows * len]
    }

    /// Loss, accuracy and predictions of the current parameters on `split`, in chunks of
    /// `EVAL_CHUNK` consecutive samples.
    fn evaluate_here(&mut self, split: Split) -> Result<EvalResult> {
        let inputs = self.inputs_of(split)?;
        let ds = inputs.data.clone();
        let mut buf = std::mem::take(&mut self.x_buf);
        let mut res = EvalResult { predictions: Vec::with_capacity(ds.len()), ..Default::default() };
        for lo in (0..ds.len()).step_by(EVAL_CHUNK) {
            let rows = EVAL_CHUNK.min(ds.len() - lo);
            self.ensure_workspace(rows);
            let x = inputs.rows(lo, rows, &mut buf, self.threads);
            self.forward(rows, x, None);
            let (loss, correct) = self.score(&ds.labels[lo..lo + rows], Some(&mut res.predictions), 0.0);
            res.samples += rows as u64;
            res.loss_sum += loss;
            res.correct += correct;
        }
        self.x_buf = buf;
        Ok(res)
    }
}

/// Whether `idx` holds every number below its length once.
fn is_permutation(idx: &[u32]) -> bool {
    let mut seen = vec![false; idx.len()];
    idx.iter().all(|&i| seen.get_mut(i as usize).is_some_and(|s| !std::mem::replace(s, true)))
}

fn to_f64<T: Real>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.f64()).collect()
}

impl<T: Real> Backend for CpuBackend<T> {
    fn describe(&self) -> String {
        if T::NAME == "f64" {
            "cpu f64 reference".into()
        } else {
            format!("cpu f32 ({} thread{})", self.threads, if self.threads == 1 { "" } else { "s" })
        }
    }

    fn set_params(&mut self, params: &Params) -> Result<()> {
        params.check_shapes(&self.spec, "parameters")?;
        let mut held = params.map(T::of);
        for (i, l) in held.layers.iter_mut().enumerate() {
            l.weight = self.hold(i, &l.weight);
        }
        self.params = held;
        self.reset_state();
        Ok(())
    }

    fn params(&mut self) -> Result<Params> {
        let mut p = self.params.map(|x| x.f64());
        for (i, l) in p.layers.iter_mut().enumerate() {
            l.weight = self.out_by_in(i, &l.weight);
        }
        Ok(p)
    }

    fn optimizer_state(&mut self) -> Result<OptimState> {
        Ok(OptimState {
            step: self.step,
            slots: self
                .state
                .iter()
                .enumerate()
                .map(|(i, [w, b])| [w.iter().map(|s| to_f64(&self.out_by_in(i, s))).collect(), b.iter().map(|s| to_f64(s)).collect()])
                .collect(),
        })
    }

    fn set_optimizer_state(&mut self, st: &OptimState) -> Result<()> {
        check_optimizer_state(&self.spec, self.opt.kind, st)?;
        self.state = st
            .slots
            .iter()
            .enumerate()
            .map(|(i, [w, b])| {
                [
                    w.iter().map(|s| self.hold(i, &s.iter().map(|&x| T::of(x)).collect::<Vec<T>>())).collect(),
                    b.iter().map(|s| s.iter().map(|&x| T::of(x)).collect()).collect(),
                ]
            })
            .collect();
        self.step = st.step;
        Ok(())
    }

    fn attach(&mut self, split: Split, data: Arc<Dataset>) -> Result<()> {
        check_attach(&self.spec, &data)?;
        self.inputs.insert(split, Arc::new(Inputs::new(data, self.spec.input_norm)));
        Ok(())
    }

    fn train_steps(&mut self, indices: &[u32], batch_size: usize, lrs: &[f64]) -> Result<StepStats> {
        self.computing(batch_size.min(indices.len()), |b| {
            let mut total = StepStats::default();
            for (idx, &lr) in indices.chunks(batch_size.max(1)).zip(lrs) {
                let s = b.step_on(idx, lr, StepKind::Train)?;
                total.samples += s.samples;
                total.loss_sum += s.loss_sum;
                total.correct += s.correct;
            }
            Ok(total)
        })
    }

    fn steps_per_call(&self) -> usize {
        1
    }

    fn set_augment(&mut self, a: Option<&Augment>) -> Result<()> {
        if let Some(a) = a.filter(|a| a.height * a.width != self.spec.input_size()) {
            bail!("--augment: pictures of {}×{} are {} values, the model takes {}", a.height, a.width, a.height * a.width, self.spec.input_size());
        }
        self.augment = a.cloned();
        Ok(())
    }

    fn set_dropout(&mut self, d: &Dropout) -> Result<()> {
        self.dropout = d.clone();
        self.cap = 0; // the masks' workspaces follow the rates
        Ok(())
    }

    fn evaluate(&mut self, split: Split) -> Result<EvalResult> {
        self.computing(usize::MAX, |b| b.evaluate_here(split))
    }

    fn trace_step(&mut self, indices: &[u32], lr: f64) -> Result<StepTrace> {
        self.computing(indices.len(), |b| b.step_on(indices, lr, StepKind::Trace))?;
        let mut t = StepTrace::default();
        for l in 1..self.spec.layers.len() {
            let n = indices.len() * self.spec.layers[l];
            t.push_layer(l, to_f64(&self.z[l][..n]), to_f64(&self.a[l][..n]), to_f64(&self.delta[l][..n]));
        }
        for (i, ((p, g), st)) in self.params.layers.iter().zip(&self.grads.layers).zip(&self.state).enumerate() {
            let state = [st[0].iter().map(|s| to_f64(&self.out_by_in(i, s))).collect(), st[1].iter().map(|s| to_f64(s)).collect()];
            t.push_tensors(i, [to_f64(&self.out_by_in(i, &g.weight)), to_f64(&g.bias)], [to_f64(&self.out_by_in(i, &p.weight)), to_f64(&p.bias)], &state);
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::model::Activation;
    use crate::nn::optim::OptimizerKind;
    use crate::workbench::step::{random_dataset, random_params};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// A network whose first layer is no multiple of any block, 40 random samples and a start.
    fn setup() -> (ModelSpec, Arc<Dataset>, Params) {
        let spec = ModelSpec::classifier(&[37, 21, 9, 5], &[Activation::Sigmoid, Activation::Relu, Activation::Softmax]);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let data = Arc::new(random_dataset(&spec, 40, false, &mut rng));
        let start = random_params(&spec, &mut rng);
        (spec, data, start)
    }

    /// Weights, optimiser state and a traced step's every tensor after training from `setup`'s
    /// start with the first layer held in `first`.
    fn trained(first: WeightLayout, opt: &OptimizerSpec) -> (Params, OptimState, StepTrace) {
        let (spec, data, start) = setup();
        let mut b = FastBackend::with_threads(&spec, opt, 2);
        b.layouts[0] = first;
        b.set_params(&start).unwrap();
        b.attach(Split::Train, data).unwrap();
        // batches of 11 (the last one 7), then the whole set in one batch, then a traced step
        let shuffled: Vec<u32> = (0..40).map(|i| (i * 17) % 40).collect();
        b.train_steps(&shuffled, 11, &[0.05; 4]).unwrap();
        b.train_steps(&shuffled, 40, &[0.05]).unwrap();
        let trace = b.trace_step(&shuffled[..13], 0.05).unwrap();
        (b.params().unwrap(), b.optimizer_state().unwrap(), trace)
    }

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// The first layer held as Wᵀ trains to the bits of W [out×in] where the GEMM is `sgemm`
    /// (`Real::transposes_first_layer`), through clipping, the max-norm constraint, Adam's state
    /// and a full batch; and everything handed out is W [out×in] either way. Elsewhere (another
    /// GEMM, whose sums may depend on the strides) the two agree to f32 rounding.
    #[test]
    fn the_first_layer_transposed_gives_the_same_training() {
        let sgd = OptimizerSpec { kind: OptimizerKind::Sgd, ..Default::default() };
        let adam = OptimizerSpec { kind: OptimizerKind::Adam, lr: 1e-2, clip_norm: Some(0.5), max_norm: 1.5, ..Default::default() };
        let exact = f32::transposes_first_layer();
        let start = setup().2;
        for opt in [sgd, adam] {
            let (p0, s0, t0) = trained(WeightLayout::OutByIn, &opt);
            let (p1, s1, t1) = trained(WeightLayout::InByOut, &opt);
            let moved = p0.layers[0].weight.iter().zip(&start.layers[0].weight).filter(|(a, b)| a != b).count();
            assert!(moved > 0, "{:?}: training must change the first layer", opt.kind);
            let mut pairs: Vec<(String, &[f64], &[f64])> = Vec::new();
            for (i, (a, b)) in p0.layers.iter().zip(&p1.layers).enumerate() {
                pairs.push((format!("layer {i} weight"), &a.weight, &b.weight));
                pairs.push((format!("layer {i} bias"), &a.bias, &b.bias));
            }
            for (i, (a, b)) in s0.slots.iter().zip(&s1.slots).enumerate() {
                for (j, (a, b)) in a[0].iter().zip(&b[0]).enumerate() {
                    pairs.push((format!("layer {i} weight slot {j}"), a, b));
                }
            }
            assert_eq!(t0.tensors.len(), t1.tensors.len());
            for ((name, a), (_, b)) in t0.tensors.iter().zip(&t1.tensors) {
                pairs.push((format!("trace {name}"), a, b));
            }
            for (name, a, b) in pairs {
                assert_eq!(a.len(), b.len(), "{name}");
                if exact {
                    assert_eq!(bits(a), bits(b), "{:?} {name}", opt.kind);
                } else {
                    for (x, y) in a.iter().zip(b) {
                        assert!((x - y).abs() <= 1e-4 * x.abs().max(1.0), "{:?} {name}: {x} vs {y}", opt.kind);
                    }
                }
            }
        }
    }
}
