//! `gpu-nn gradcheck`: backpropagation against finite differences on the real configuration.
//!
//! The gradients come from the f64 reference backend's training step (`trace_step`, which
//! records `layers.{i}.weight.grad` / `.bias.grad` before it applies the update; the backend
//! is used for that one step only). The finite differences come from a forward pass written
//! here from `math.rs`'s equations: for a sampled parameter θ,
//!   g ≈ [−L(θ+2h) + 8L(θ+h) − 8L(θ−h) + L(θ−2h)] / 12h
//! (the fourth-order central difference; error O(h⁴) + O(ε/h)), with L the batch loss under the
//! configured reduction (mean or sum of the per-sample losses).
//!
//! Per layer, N weights and N biases are drawn (seeded) among the entries whose gradient is at
//! least 1e-3 of the tensor's largest, where a relative error is meaningful; an entry whose
//! perturbation moves a ReLU pre-activation across its kink (the derivative is undefined there)
//! is skipped and another drawn. The relative error is |g_bp − g_fd| / max(|g_bp|, |g_fd|).

use crate::commands::args::GradcheckArgs;
use crate::core::{Plan, Settings};
use crate::nn::backend::{Backend, Split};
use crate::core::config::Config;
use crate::nn::math;
use crate::nn::model::{Activation, Params};
use crate::cpu::ReferenceBackend;
use crate::data::Dataset;
use anyhow::{Result, bail};
use rand::seq::SliceRandom;
use rand::{SeedableRng, rngs::StdRng};
use std::sync::Arc;

/// The command: checks the configuration's gradients; fails above the tolerance.
pub fn run(args: GradcheckArgs, env: &Settings) -> Result<()> {
    let plan = Plan::load(args.cfg.resolve()?, &env.data, false)?;
    let o = GradcheckOptions { samples: args.samples, batch: args.batch, tolerance: args.tolerance, step: args.step };
    let r = check(&plan, &o)?;
    print(plan.config(), &r, &o);
    if !(r.worst() <= args.tolerance) {
        bail!("gradcheck failed: worst relative error {:.3e} exceeds the tolerance {:.1e}", r.worst(), args.tolerance);
    }
    println!("gradcheck passed: worst relative error {:.3e} <= tolerance {:.1e}", r.worst(), args.tolerance);
    Ok(())
}

/// Entries with |g| below this fraction of the tensor's largest |g| are not sampled.
pub const SIGNIFICANT: f64 = 1e-3;

pub struct GradcheckOptions {
    /// Parameters sampled per tensor (weights and biases of each layer).
    pub samples: usize,
    /// Samples in the batch (default: the configured batch size, at most 32).
    pub batch: Option<usize>,
    pub tolerance: f64,
    /// Finite-difference step h.
    pub step: f64,
}

/// One checked entry.
#[derive(Clone, Debug)]
pub struct Entry {
    pub index: usize,
    pub backprop: f64,
    pub numeric: f64,
    pub rel_error: f64,
}

/// The result for one tensor.
#[derive(Clone, Debug)]
pub struct TensorCheck {
    pub name: String,
    pub layer: usize,
    pub entries: Vec<Entry>,
    /// Entries skipped because they straddle a ReLU kink.
    pub kinks: usize,
}

impl TensorCheck {
    pub fn worst(&self) -> f64 {
        self.entries.iter().map(|e| e.rel_error).fold(0.0, f64::max)
    }
}

pub struct GradcheckReport {
    pub batch: usize,
    pub tensors: Vec<TensorCheck>,
}

impl GradcheckReport {
    pub fn worst(&self) -> f64 {
        self.tensors.iter().map(|t| t.worst()).fold(0.0, f64::max)
    }
}

/// The batch loss L = s·Σ_b L_b and a fingerprint of which side of the kink every ReLU-type
/// pre-activation lies on. With augmentation and dropout, the pictures are augmented and every
/// layer's input masked as in the backend's first step (t = 1), held fixed, so L is the
/// function that step differentiates.
fn batch_loss(cfg: &Config, p: &Params, ds: &Dataset, plan: &Plan) -> (f64, u64) {
    let dropout = plan.dropout();
    let spec = &cfg.model;
    let mut total = 0.0;
    let mut sig: u64 = 0xcbf29ce484222325;
    for b in 0..ds.len() {
        let mut a: Vec<f64> = (0..ds.sample_len).map(|j| spec.input_norm.apply(ds.pixel(b, j))).collect();
        if let Some(aug) = plan.augment() {
            let src = a.clone();
            aug.apply(1, b, &src, spec.input_norm.apply(0.0), &mut a, &mut Vec::new());
        }
        let mut z = Vec::new();
        for (l, lp) in p.layers.iter().enumerate() {
            let (n_in, n_out) = spec.layer_dims(l);
            if dropout.rate(l) > 0.0 {
                let mut m = vec![0.0; n_in];
                dropout.mask(1, l, b * n_in, &mut m);
                a.iter_mut().zip(&m).for_each(|(a, m)| *a *= m);
            }
            z = (0..n_out).map(|o| lp.bias[o] + (0..n_in).map(|i| lp.weight[o * n_in + i] * a[i]).sum::<f64>()).collect();
            let act = spec.activations[l];
            if matches!(act, Activation::Relu | Activation::LeakyRelu) {
                for &v in &z {
                    let side = if act == Activation::Relu { v > 0.0 } else { v >= 0.0 };
                    sig = (sig ^ side as u64).wrapping_mul(0x100000001b3);
                }
            }
            let mut next = vec![0.0; n_out];
            math::activate_row(act, &z, &mut next);
            a = next;
        }
        total += math::sample_loss(spec.loss, spec.label_smoothing, &z, &a, ds.labels[b]);
    }
    (spec.reduction.scale(ds.len()) * total, sig)
}

fn tensor_mut(p: &mut Params, layer: usize, bias: bool) -> &mut Vec<f64> {
    let l = &mut p.layers[layer];
    if bias { &mut l.bias } else { &mut l.weight }
}

/// Runs the check on the first `batch` samples of epoch 1's order.
pub fn check(plan: &Plan, o: &GradcheckOptions) -> Result<GradcheckReport> {
    let (cfg, data) = (plan.config(), plan.data());
    if !(o.step > 0.0 && o.step.is_finite()) {
        bail!("--step must be a finite number > 0");
    }
    if o.samples == 0 {
        bail!("--samples 0: nothing to check; give at least 1");
    }
    let n = data.train.len();
    let batch = o.batch.unwrap_or(plan.batch().min(32)).min(n);
    if batch == 0 {
        bail!("--batch 0: a batch needs at least 1 sample");
    }
    let order = plan.epoch_order(0);
    let ds = data.train.subset(&order[..batch], format!("{} (gradcheck batch)", data.train.source));
    let params = cfg.initial_params()?;

    // backpropagated gradients: one traced step of the f64 reference from `params`, without
    // --clip-norm (the trace would show the clipped gradients; clipping belongs to the update)
    let opt = crate::nn::optim::OptimizerSpec { clip_norm: None, ..cfg.optimizer.clone() };
    let mut backend = ReferenceBackend::new(&cfg.model, &opt);
    backend.set_params(&params)?;
    backend.set_dropout(plan.dropout())?;
    backend.set_augment(plan.augment())?;
    backend.attach(Split::Train, Arc::new(ds.clone()))?;
    let trace = backend.trace_step(&(0..batch as u32).collect::<Vec<_>>(), cfg.optimizer.lr)?;
    let grad = |name: &str| -> Result<Vec<f64>> {
        trace.tensors.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).ok_or_else(|| anyhow::anyhow!("the trace has no tensor {name}"))
    };

    let (_, base_sig) = batch_loss(cfg, &params, &ds, plan);
    let mut rng = StdRng::seed_from_u64(cfg.training.seed ^ 0x6772_6164_6368_6b);
    let h = o.step;
    let mut tensors = Vec::new();
    for layer in 0..cfg.model.num_layers() {
        for bias in [false, true] {
            let name = format!("layers.{layer}.{}", if bias { "bias" } else { "weight" });
            let g = grad(&format!("{name}.grad"))?;
            let gmax = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let mut candidates: Vec<usize> = (0..g.len()).filter(|&i| g[i].abs() >= SIGNIFICANT * gmax).collect();
            candidates.shuffle(&mut rng);
            let mut check = TensorCheck { name, layer, entries: Vec::new(), kinks: 0 };
            for &i in &candidates {
                if check.entries.len() == o.samples {
                    break;
                }
                let mut p = params.clone();
                let theta = tensor_mut(&mut p, layer, bias)[i];
                let mut at = |d: f64| {
                    tensor_mut(&mut p, layer, bias)[i] = theta + d;
                    batch_loss(cfg, &p, &ds, plan)
                };
                let evals = [at(2.0 * h), at(h), at(-h), at(-2.0 * h)];
                if evals.iter().any(|e| e.1 != base_sig) {
                    check.kinks += 1;
                    continue;
                }
                let numeric = (-evals[0].0 + 8.0 * evals[1].0 - 8.0 * evals[2].0 + evals[3].0) / (12.0 * h);
                let backprop = g[i];
                let denom = backprop.abs().max(numeric.abs());
                let rel_error = if denom == 0.0 { 0.0 } else { (backprop - numeric).abs() / denom };
                check.entries.push(Entry { index: i, backprop, numeric, rel_error });
            }
            tensors.push(check);
        }
    }
    Ok(GradcheckReport { batch, tensors })
}

/// Prints the report: per layer the worst relative error of its weights and biases.
pub fn print(cfg: &Config, r: &GradcheckReport, o: &GradcheckOptions) {
    let m = &cfg.model;
    println!(
        "gradcheck {} {}, {}{} ({}), batch of {} sample(s): f64 backpropagation vs 4th-order central differences, h = {:e}",
        m.layers.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("-"),
        m.activations.iter().map(|a| a.name()).collect::<Vec<_>>().join("/"),
        m.loss,
        if m.label_smoothing > 0.0 { format!(" with label smoothing {}", m.label_smoothing) } else { String::new() },
        m.reduction.name(),
        r.batch,
        o.step
    );
    if cfg.training.input_dropout > 0.0 || cfg.training.dropout.iter().any(|&p| p > 0.0) {
        println!("dropout masks of the first step held fixed on both sides (input {}, hidden {:?})", cfg.training.input_dropout, cfg.training.dropout);
    }
    for layer in 0..m.num_layers() {
        let (n_in, n_out) = m.layer_dims(layer);
        let ts: Vec<&TensorCheck> = r.tensors.iter().filter(|t| t.layer == layer).collect();
        let worst = ts.iter().map(|t| t.worst()).fold(0.0, f64::max);
        let parts: Vec<String> = ts
            .iter()
            .map(|t| {
                let kinks = if t.kinks > 0 { format!(", {} skipped at a ReLU kink", t.kinks) } else { String::new() };
                let what = match (t.name.ends_with("bias"), t.entries.len()) {
                    (true, 1) => "bias",
                    (true, _) => "biases",
                    (false, 1) => "weight",
                    (false, _) => "weights",
                };
                format!("{} {what} {:.2e}{kinks}", t.entries.len(), t.worst())
            })
            .collect();
        println!(
            "layer {layer} ({n_in}->{n_out} {}): worst relative error {worst:.2e}  [{}]",
            m.activations[layer],
            parts.join("; ")
        );
    }
}
