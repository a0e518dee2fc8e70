//! The CPU backend, generic over the float type:
//! - `CpuBackend<f64>` is the reference: the textbook matrix product (`math::gemm_reference`)
//!   and each step of backpropagation as one equation, to be read against the maths;
//! - `CpuBackend<f32>` is the fast path: the same equations with `matrixmultiply`'s GEMM.
//!
//! One step on a batch X [B, in] (row layout, W [out, in]):
//!   forward   Z_l = A_{l−1}·W_lᵀ + b_l,   A_l = f_l(Z_l),   A_0 = X
//!   output    δ_L = ∂L/∂Z_L                                   (math::output_delta)
//!   backward  ∂W_l = s·δ_lᵀ·A_{l−1},   ∂b_l = s·Σ_b δ_l,   δ_{l−1} = (δ_l·W_l) ⊙ f'_{l−1}(Z_{l−1})
//!   update    the optimiser rule on every tensor               (optim::apply)
//! with s the batch reduction (1/B for mean, 1 for sum).

use crate::core::backend::{Backend, EvalResult, Split, StepStats, StepTrace, check_attach, check_optimizer_state};
use crate::data::{Dataset, Pixels};
use crate::core::math::{self, Real};
use crate::core::model::{ModelSpec, Params};
use crate::core::optim::{self, OptimState, OptimizerSpec};
use anyhow::{Result, bail};
use std::collections::HashMap;
use std::sync::Arc;

pub type ReferenceBackend = CpuBackend<f64>;
pub type FastBackend = CpuBackend<f32>;

/// Rows evaluated per forward pass in `evaluate`.
const EVAL_CHUNK: usize = 1024;

pub struct CpuBackend<T: Real> {
    spec: ModelSpec,
    opt: OptimizerSpec,
    params: Params<T>,
    grads: Params<T>,
    /// `state[layer][tensor][slot]`, tensor 0 = weight, 1 = bias.
    state: Vec<[Vec<Vec<T>>; 2]>,
    /// Optimiser steps taken.
    step: u64,
    data: HashMap<Split, Arc<Dataset>>,
    /// Per layer l = 0..=L: activations A_l [B, n_l]; Z_l and δ_l for l ≥ 1 (index 0 unused).
    a: Vec<Vec<T>>,
    z: Vec<Vec<T>>,
    delta: Vec<Vec<T>>,
}

impl<T: Real> CpuBackend<T> {
    pub fn new(spec: &ModelSpec, opt: &OptimizerSpec) -> Self {
        let zeros = Params::zeros(spec).map(T::of);
        let mut b = CpuBackend {
            spec: spec.clone(),
            opt: opt.clone(),
            params: zeros.clone(),
            grads: zeros,
            state: Vec::new(),
            step: 0,
            data: HashMap::new(),
            a: Vec::new(),
            z: Vec::new(),
            delta: Vec::new(),
        };
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

    fn ensure_workspace(&mut self, rows: usize) {
        let n = &self.spec.layers;
        if self.a.len() == n.len() && self.a[0].len() == rows * n[0] {
            return;
        }
        self.a = n.iter().map(|&w| vec![T::zero(); rows * w]).collect();
        self.z = self.a.clone();
        self.delta = self.a.clone();
    }

    /// A_0 ← the samples `idx` of `ds`: bytes scaled by 1/255, then `(p − mean) / std` of the
    /// model's input normalisation (exact for the identity).
    fn gather(&mut self, ds: &Dataset, idx: &[u32]) {
        self.ensure_workspace(idx.len());
        let len = ds.sample_len;
        let (mean, std) = (T::of(self.spec.input_norm.mean), T::of(self.spec.input_norm.std));
        let x = &mut self.a[0];
        for (r, &i) in idx.iter().enumerate() {
            let row = &mut x[r * len..(r + 1) * len];
            let i = i as usize;
            match &ds.pixels {
                Pixels::U8(v) => {
                    let scale = T::one() / T::of(255.0);
                    for (x, &p) in row.iter_mut().zip(&v[i * len..(i + 1) * len]) {
                        *x = (T::of(p as f64) * scale - mean) / std;
                    }
                }
                Pixels::F64(v) => {
                    for (x, &p) in row.iter_mut().zip(&v[i * len..(i + 1) * len]) {
                        *x = (T::of(p) - mean) / std;
                    }
                }
            }
        }
    }

    /// Z_l = A_{l−1}·W_lᵀ + b_l;  A_l = f_l(Z_l), for every layer, on `rows` samples.
    fn forward(&mut self, rows: usize) {
        for l in 1..self.spec.layers.len() {
            let (n_in, n_out) = self.spec.layer_dims(l - 1);
            let p = &self.params.layers[l - 1];
            let (prev, rest) = self.a.split_at_mut(l);
            let z = &mut self.z[l];
            for r in 0..rows {
                z[r * n_out..(r + 1) * n_out].copy_from_slice(&p.bias);
            }
            // Z += A_{l−1} [rows×in] · Wᵀ [in×out]   (Wᵀ read through strides: rs = 1, cs = in)
            T::gemm(rows, n_in, n_out, T::one(), &prev[l - 1], n_in, 1, &p.weight, 1, n_in, T::one(), z, n_out);
            let act = self.spec.activations[l - 1];
            for r in 0..rows {
                let s = r * n_out..(r + 1) * n_out;
                math::activate_row(act, &z[s.clone()], &mut rest[0][s]);
            }
        }
    }

    /// Loss sum and correct count of the current outputs against `labels`.
    fn score(&self, labels: &[u8], predictions: Option<&mut Vec<u8>>) -> (f64, u64) {
        let last = self.spec.layers.len() - 1;
        let n = self.spec.output_size();
        let (mut loss, mut correct) = (0.0, 0);
        let mut preds = predictions;
        for (r, &y) in labels.iter().enumerate() {
            let s = r * n..(r + 1) * n;
            loss += math::sample_loss(self.spec.loss, &self.z[last][s.clone()], &self.a[last][s.clone()], y).f64();
            let p = math::predict(&self.a[last][s]);
            correct += (p == y) as u64;
            if let Some(v) = preds.as_deref_mut() {
                v.push(p);
            }
        }
        (loss, correct)
    }

    /// δ_L, then for l = L…1: ∂W_l = s·δ_lᵀ·A_{l−1};  ∂b_l = s·Σ_rows δ_l;  δ_{l−1} = (δ_l·W_l) ⊙ f'(Z_{l−1}).
    fn backward(&mut self, labels: &[u8]) {
        let rows = labels.len();
        let last = self.spec.layers.len() - 1;
        let n = self.spec.output_size();
        let out_act = self.spec.output_activation();
        for (r, &y) in labels.iter().enumerate() {
            let s = r * n..(r + 1) * n;
            math::output_delta(self.spec.loss, out_act, &self.z[last][s.clone()], &self.a[last][s.clone()], y, &mut self.delta[last][s]);
        }
        let scale = T::of(self.spec.reduction.scale(rows));
        for l in (1..=last).rev() {
            let (n_in, n_out) = self.spec.layer_dims(l - 1);
            let g = &mut self.grads.layers[l - 1];
            // ∂W [out×in] = s · δᵀ [out×rows] · A_{l−1} [rows×in]   (δᵀ through strides: rs = 1, cs = out)
            T::gemm(n_out, rows, n_in, scale, &self.delta[l], 1, n_out, &self.a[l - 1], n_in, 1, T::zero(), &mut g.weight, n_in);
            for (o, gb) in g.bias.iter_mut().enumerate() {
                *gb = scale * (0..rows).map(|r| self.delta[l][r * n_out + o]).sum::<T>();
            }
            if l > 1 {
                // δ_{l−1} [rows×in] = (δ_l [rows×out] · W [out×in]) ⊙ f'(Z_{l−1})
                let (lo, hi) = self.delta.split_at_mut(l);
                let w = &self.params.layers[l - 1].weight;
                T::gemm(rows, n_out, n_in, T::one(), &hi[0], n_out, 1, w, n_in, 1, T::zero(), &mut lo[l - 1], n_in);
                let act = self.spec.activations[l - 2];
                for ((d, &z), &a) in lo[l - 1].iter_mut().zip(&self.z[l - 1]).zip(&self.a[l - 1]) {
                    *d = *d * math::activation_derivative(act, z, a);
                }
            }
        }
    }

    /// One optimiser update of every tensor with the current gradients.
    fn update(&mut self, lr: f64) {
        self.step += 1;
        for ((p, g), st) in self.params.layers.iter_mut().zip(&self.grads.layers).zip(&mut self.state) {
            optim::apply(&self.opt, lr, self.step, &mut p.weight, &g.weight, &mut st[0]);
            optim::apply(&self.opt, lr, self.step, &mut p.bias, &g.bias, &mut st[1]);
        }
    }

    fn split(&self, split: Split) -> Result<Arc<Dataset>> {
        match self.data.get(&split) {
            Some(d) => Ok(d.clone()),
            None => bail!("no {} data attached to the backend", split.name()),
        }
    }

    /// forward + score + backward + update on one batch.
    fn step_on(&mut self, ds: &Dataset, idx: &[u32], lr: f64) -> StepStats {
        self.gather(ds, idx);
        self.forward(idx.len());
        let labels: Vec<u8> = idx.iter().map(|&i| ds.labels[i as usize]).collect();
        let (loss_sum, correct) = self.score(&labels, None);
        self.backward(&labels);
        self.update(lr);
        StepStats { samples: idx.len() as u64, loss_sum, correct }
    }
}

fn to_f64<T: Real>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.f64()).collect()
}

impl<T: Real> Backend for CpuBackend<T> {
    fn describe(&self) -> String {
        if T::NAME == "f64" {
            "cpu f64 reference".into()
        } else {
            "cpu f32 (matrixmultiply GEMM)".into()
        }
    }

    fn set_params(&mut self, params: &Params) -> Result<()> {
        params.check_shapes(&self.spec, "parameters")?;
        self.params = params.map(T::of);
        self.reset_state();
        Ok(())
    }

    fn params(&mut self) -> Result<Params> {
        Ok(self.params.map(|x| x.f64()))
    }

    fn optimizer_state(&mut self) -> Result<OptimState> {
        Ok(OptimState {
            step: self.step,
            slots: self
                .state
                .iter()
                .map(|[w, b]| [w.iter().map(|s| to_f64(s)).collect(), b.iter().map(|s| to_f64(s)).collect()])
                .collect(),
        })
    }

    fn set_optimizer_state(&mut self, st: &OptimState) -> Result<()> {
        check_optimizer_state(&self.spec, self.opt.kind, st)?;
        self.state = st
            .slots
            .iter()
            .map(|[w, b]| {
                [
                    w.iter().map(|s| s.iter().map(|&x| T::of(x)).collect()).collect(),
                    b.iter().map(|s| s.iter().map(|&x| T::of(x)).collect()).collect(),
                ]
            })
            .collect();
        self.step = st.step;
        Ok(())
    }

    fn attach(&mut self, split: Split, data: Arc<Dataset>) -> Result<()> {
        check_attach(&self.spec, &data)?;
        self.data.insert(split, data);
        Ok(())
    }

    fn train_steps(&mut self, indices: &[u32], batch_size: usize, lrs: &[f64]) -> Result<StepStats> {
        let ds = self.split(Split::Train)?;
        let mut total = StepStats::default();
        for (idx, &lr) in indices.chunks(batch_size.max(1)).zip(lrs) {
            let s = self.step_on(&ds, idx, lr);
            total.samples += s.samples;
            total.loss_sum += s.loss_sum;
            total.correct += s.correct;
        }
        Ok(total)
    }

    fn steps_per_call(&self) -> usize {
        1
    }

    fn evaluate(&mut self, split: Split) -> Result<EvalResult> {
        let ds = self.split(split)?;
        let mut res = EvalResult { predictions: Vec::with_capacity(ds.len()), ..Default::default() };
        let all: Vec<u32> = (0..ds.len() as u32).collect();
        for idx in all.chunks(EVAL_CHUNK) {
            self.gather(&ds, idx);
            self.forward(idx.len());
            let (loss, correct) = self.score(&ds.labels[idx[0] as usize..idx[0] as usize + idx.len()], Some(&mut res.predictions));
            res.samples += idx.len() as u64;
            res.loss_sum += loss;
            res.correct += correct;
        }
        Ok(res)
    }

    fn trace_step(&mut self, indices: &[u32], lr: f64) -> Result<StepTrace> {
        let ds = self.split(Split::Train)?;
        self.step_on(&ds, indices, lr);
        let mut t = StepTrace::default();
        for l in 1..self.spec.layers.len() {
            t.push_layer(l, to_f64(&self.z[l]), to_f64(&self.a[l]), to_f64(&self.delta[l]));
        }
        for (i, ((p, g), st)) in self.params.layers.iter().zip(&self.grads.layers).zip(&self.state).enumerate() {
            let state = [st[0].iter().map(|s| to_f64(s)).collect(), st[1].iter().map(|s| to_f64(s)).collect()];
            t.push_tensors(i, [to_f64(&g.weight), to_f64(&g.bias)], [to_f64(&p.weight), to_f64(&p.bias)], &state);
        }
        Ok(t)
    }
}
