//! Backpropagation against finite differences, for every valid activation × loss pair and both
//! batch reductions (f64 reference to 1e-6 relative, the f32 fast path to 1e-4), plus the numerically delicate ends of sigmoid, softmax and the
//! cross-entropies. The loss is recomputed here from the documents' definitions with a forward
//! pass written in the test, so the check does not lean on the code it checks.

use gpu_nn::nn::backend::{Backend, Split};
use gpu_nn::cpu::{FastBackend, ReferenceBackend};
use gpu_nn::data::{Dataset, Pixels};
use gpu_nn::nn::math;
use gpu_nn::nn::model::{Activation, LayerParams, Loss, ModelSpec, Params, Reduction};
use gpu_nn::nn::optim::{OptimizerKind, OptimizerSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

const BATCH: usize = 3;
const INPUTS: usize = 5;
const HIDDEN: usize = 4;
/// Step of the fourth-order central difference; its error is O(h⁴) + O(ε/h) ≈ 1e-12 here.
const H: f64 = 1e-3;
/// Pre-activations of ReLU-type units must stay this far from the kink, so that no ±2h
/// perturbation (inputs are in [−1, 1]) crosses it.
const KINK_MARGIN: f64 = 0.05;

// ---- an independent forward pass and loss -------------------------------------------------

fn act(f: Activation, z: f64) -> f64 {
    match f {
        Activation::Identity => z,
        Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        Activation::Tanh => z.tanh(),
        Activation::Relu => z.max(0.0),
        Activation::LeakyRelu => if z >= 0.0 { z } else { 0.01 * z },
        Activation::Softmax => unreachable!("row-wise"),
    }
}

/// Z_l and A_l of every layer (index 0: the inputs), rows = samples.
fn forward(spec: &ModelSpec, p: &Params, x: &[f64]) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let rows = x.len() / spec.layers[0];
    let (mut zs, mut a_s) = (vec![x.to_vec()], vec![x.to_vec()]);
    for (l, lp) in p.layers.iter().enumerate() {
        let (n_in, n_out) = (spec.layers[l], spec.layers[l + 1]);
        let prev = &a_s[l];
        let mut z = vec![0.0; rows * n_out];
        for r in 0..rows {
            for o in 0..n_out {
                z[r * n_out + o] = lp.bias[o] + (0..n_in).map(|i| lp.weight[o * n_in + i] * prev[r * n_in + i]).sum::<f64>();
            }
        }
        let f = spec.activations[l];
        let a = if f == Activation::Softmax {
            z.chunks(n_out)
                .flat_map(|row| {
                    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = row.iter().map(|v| (v - m).exp()).collect();
                    let s: f64 = e.iter().sum();
                    e.into_iter().map(move |v| v / s)
                })
                .collect()
        } else {
            z.iter().map(|&v| act(f, v)).collect()
        };
        zs.push(z);
        a_s.push(a);
    }
    (zs, a_s)
}

/// The batch loss: per-sample losses as the model documents define them, summed or averaged.
fn batch_loss(spec: &ModelSpec, p: &Params, x: &[f64], labels: &[u8]) -> f64 {
    let (_, a_s) = forward(spec, p, x);
    let out = a_s.last().unwrap();
    let n = spec.output_size();
    let mut total = 0.0;
    for (r, &y) in labels.iter().enumerate() {
        let a = &out[r * n..(r + 1) * n];
        // label smoothing (cross-entropy): (1−ε)·one-hot + ε/K, PyTorch's definition
        let eps = spec.label_smoothing;
        let t = |k: usize| if n == 1 { y as f64 } else { (1.0 - eps) * if k == y as usize { 1.0 } else { 0.0 } + eps / n as f64 };
        total += (0..n)
            .map(|k| match spec.loss {
                Loss::HalfSse => 0.5 * (t(k) - a[k]).powi(2),
                Loss::Sse => (t(k) - a[k]).powi(2),
                Loss::CrossEntropy => -t(k) * a[k].ln(),
                Loss::BinaryCrossEntropy => -(t(k) * a[k].ln() + (1.0 - t(k)) * (1.0 - a[k]).ln()),
            })
            .sum::<f64>();
    }
    match spec.reduction {
        Reduction::Sum => total,
        Reduction::Mean => total / labels.len() as f64,
    }
}

/// Fourth-order central difference of the batch loss in every parameter, in `Params::flat` order.
fn numeric_gradient(spec: &ModelSpec, p: &Params, x: &[f64], labels: &[u8]) -> Vec<f64> {
    let mut grad = Vec::new();
    for l in 0..p.layers.len() {
        for tensor in 0..2 {
            let len = if tensor == 0 { p.layers[l].weight.len() } else { p.layers[l].bias.len() };
            for i in 0..len {
                let at = |d: f64| {
                    let mut q = p.clone();
                    let v = if tensor == 0 { &mut q.layers[l].weight[i] } else { &mut q.layers[l].bias[i] };
                    *v += d;
                    batch_loss(spec, &q, x, labels)
                };
                grad.push((-at(2.0 * H) + 8.0 * at(H) - 8.0 * at(-H) + at(-2.0 * H)) / (12.0 * H));
            }
        }
    }
    grad
}

// ---- the cases -----------------------------------------------------------------------------

struct Problem {
    params: Params,
    x: Vec<f64>,
    labels: Vec<u8>,
    numeric: Vec<f64>,
}

fn is_kinked(f: Activation) -> bool {
    matches!(f, Activation::Relu | Activation::LeakyRelu)
}

/// Draws inputs, labels and weights from `seed`; `None` if a ReLU-type pre-activation is too
/// close to its kink or the gradient is too small to be a meaningful check.
fn draw(spec: &ModelSpec, seed: u64) -> Option<Problem> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let classes = if spec.output_size() == 1 { 2 } else { spec.output_size() };
    let x: Vec<f64> = (0..BATCH * INPUTS).map(|_| r.random_range(-1.0..1.0)).collect();
    let labels: Vec<u8> = (0..BATCH).map(|_| r.random_range(0..classes as u8)).collect();
    let params = Params {
        layers: (0..spec.num_layers())
            .map(|l| {
                let (n_in, n_out) = spec.layer_dims(l);
                LayerParams {
                    weight: (0..n_in * n_out).map(|_| r.random_range(-0.9..0.9)).collect(),
                    bias: (0..n_out).map(|_| r.random_range(-0.5..0.5)).collect(),
                }
            })
            .collect(),
    };
    let (zs, _) = forward(spec, &params, &x);
    for (l, f) in spec.activations.iter().enumerate() {
        if is_kinked(*f) && zs[l + 1].iter().any(|z| z.abs() < KINK_MARGIN) {
            return None;
        }
    }
    let numeric = numeric_gradient(spec, &params, &x, &labels);
    if numeric.iter().fold(0.0f64, |m, g| m.max(g.abs())) < 1e-2 {
        return None;
    }
    Some(Problem { params, x, labels, numeric })
}

fn all_specs() -> Vec<ModelSpec> {
    use Activation::*;
    let hidden = [Identity, Sigmoid, Tanh, Relu, LeakyRelu];
    let mut outputs: Vec<(Activation, Loss, usize)> = Vec::new();
    for out in [Identity, Sigmoid, Tanh, Relu, LeakyRelu] {
        outputs.push((out, Loss::HalfSse, 3));
        outputs.push((out, Loss::Sse, 3));
    }
    outputs.push((Softmax, Loss::CrossEntropy, 3));
    outputs.push((Sigmoid, Loss::BinaryCrossEntropy, 1));
    let mut specs = Vec::new();
    for h in hidden {
        for &(out, loss, n_out) in &outputs {
            for reduction in [Reduction::Mean, Reduction::Sum] {
                let spec = ModelSpec { layers: vec![INPUTS, HIDDEN, n_out], activations: vec![h, out], loss, label_smoothing: 0.0, reduction, input_norm: Default::default(), feature_norm: None, classes: Vec::new() };
                spec.validate().expect("every listed pair is a valid model");
                specs.push(spec);
            }
        }
    }
    specs
}

fn describe(s: &ModelSpec) -> String {
    format!("{:?} {}/{}+{} {}", s.layers, s.activations[0], s.activations[1], s.loss, s.reduction.name())
}

#[test]
fn backprop_matches_finite_differences_for_every_pair() {
    let specs = all_specs();
    assert_eq!(specs.len(), 5 * 12 * 2);
    let mut worst = (0.0f64, String::new());
    for (n, spec) in specs.iter().enumerate() {
        let pb = (0..200u64)
            .find_map(|k| draw(spec, 1000 * n as u64 + k))
            .unwrap_or_else(|| panic!("{}: no usable random draw", describe(spec)));

        let lr = 0.25;
        let opt = OptimizerSpec { kind: OptimizerKind::Sgd, lr, ..Default::default() };
        let mut be = ReferenceBackend::new(spec, &opt);
        be.set_params(&pb.params).unwrap();
        let classes = if spec.output_size() == 1 { 2 } else { spec.output_size() };
        let ds = Dataset { source: "random".into(), pixels: Pixels::F64(pb.x.clone()), sample_len: INPUTS, labels: pb.labels.clone(), num_classes: classes };
        be.attach(Split::Train, Arc::new(ds)).unwrap();

        // the backend's loss is the documented loss (its `loss_sum` is the per-sample sum)
        let ev = be.evaluate(Split::Train).unwrap();
        let mut sum_spec = spec.clone();
        sum_spec.reduction = Reduction::Sum;
        let want = batch_loss(&sum_spec, &pb.params, &pb.x, &pb.labels);
        assert!(((ev.loss_sum - want) / want).abs() < 1e-12, "{}: evaluate loss {} vs {want}", describe(spec), ev.loss_sum);

        let trace = be.trace_step(&[0, 1, 2], lr).unwrap();
        let get = |name: &str| trace.tensors.iter().find(|(t, _)| t == name).unwrap().1.clone();
        let mut analytic = Vec::new();
        for l in 0..spec.num_layers() {
            analytic.extend(get(&format!("layers.{l}.weight.grad")));
            analytic.extend(get(&format!("layers.{l}.bias.grad")));
        }
        assert_eq!(analytic.len(), pb.numeric.len());
        for (i, (&a, &num)) in analytic.iter().zip(&pb.numeric).enumerate() {
            let rel = (a - num).abs() / a.abs().max(num.abs()).max(1e-5);
            if rel > worst.0 {
                worst = (rel, describe(spec));
            }
            assert!(rel < 1e-6, "{}: parameter {i}: backprop {a:e} vs finite difference {num:e} (rel {rel:e})", describe(spec));
        }
        // and these gradients are what the step applied: w ← w − η·g (SGD)
        let mut applied = Vec::new();
        for l in 0..spec.num_layers() {
            applied.extend(get(&format!("layers.{l}.weight")));
            applied.extend(get(&format!("layers.{l}.bias")));
        }
        for ((w_new, w_old), g) in applied.iter().zip(pb.params.flat()).zip(&analytic) {
            assert!((w_new - (w_old - lr * g)).abs() < 1e-15, "{}: update is not w − η·grad", describe(spec));
        }

        // the f32 fast path (strided sgemm instead of the textbook loop) agrees with float
        // rounding: f32 carries ~7 digits, so 1e-4 relative (floor 1e-3) leaves ample room
        let mut fast = FastBackend::new(spec, &opt);
        fast.set_params(&pb.params).unwrap();
        fast.attach(Split::Train, Arc::new(Dataset { source: "random".into(), pixels: Pixels::F64(pb.x.clone()), sample_len: INPUTS, labels: pb.labels.clone(), num_classes: classes })).unwrap();
        let t32 = fast.trace_step(&[0, 1, 2], lr).unwrap();
        let mut g32 = Vec::new();
        for l in 0..spec.num_layers() {
            for n in [format!("layers.{l}.weight.grad"), format!("layers.{l}.bias.grad")] {
                g32.extend(t32.tensors.iter().find(|(t, _)| *t == n).unwrap().1.iter().copied());
            }
        }
        for (i, (&a, &b)) in g32.iter().zip(&pb.numeric).enumerate() {
            let rel = (a - b).abs() / b.abs().max(1e-3);
            assert!(rel < 1e-4, "{}: f32 gradient {i}: {a:e} vs finite difference {b:e}", describe(spec));
        }
    }
    eprintln!("largest relative error: {:e} ({})", worst.0, worst.1);
}

/// Label smoothing: backprop of −Σ t_k ln softmax_k with t = (1−ε)·one-hot + ε/K against finite
/// differences of the loss as defined above, for several ε, hidden activations and both
/// reductions; the evaluated loss is the smoothed loss too. f64 to 1e-6, f32 to 1e-4.
#[test]
fn label_smoothing_backprop_matches_finite_differences() {
    use Activation::*;
    let mut n = 0u64;
    for eps in [0.05, 0.1, 0.3, 0.9] {
        for h in [Tanh, Relu, Sigmoid] {
            for reduction in [Reduction::Mean, Reduction::Sum] {
                n += 1;
                let spec = ModelSpec { layers: vec![INPUTS, HIDDEN, 3], activations: vec![h, Softmax], loss: Loss::CrossEntropy, label_smoothing: eps, reduction, input_norm: Default::default(), feature_norm: None, classes: Vec::new() };
                spec.validate().unwrap();
                let what = format!("ε = {eps}, {}", describe(&spec));
                let pb = (0..200u64).find_map(|k| draw(&spec, 77_000 + 1000 * n + k)).unwrap_or_else(|| panic!("{what}: no usable random draw"));
                // the smoothed loss differs from the plain one: the check cannot pass by ignoring ε
                let plain = ModelSpec { label_smoothing: 0.0, ..spec.clone() };
                assert!((batch_loss(&plain, &pb.params, &pb.x, &pb.labels) - batch_loss(&spec, &pb.params, &pb.x, &pb.labels)).abs() > 1e-3, "{what}");
                let opt = OptimizerSpec { kind: OptimizerKind::Sgd, lr: 0.25, ..Default::default() };
                let ds = || Arc::new(Dataset { source: "random".into(), pixels: Pixels::F64(pb.x.clone()), sample_len: INPUTS, labels: pb.labels.clone(), num_classes: 3 });
                let grads = |t: &gpu_nn::nn::backend::StepTrace| -> Vec<f64> {
                    (0..spec.num_layers()).flat_map(|l| [format!("layers.{l}.weight.grad"), format!("layers.{l}.bias.grad")]).flat_map(|n| t.get(&n).to_vec()).collect()
                };
                let mut be = ReferenceBackend::new(&spec, &opt);
                be.set_params(&pb.params).unwrap();
                be.attach(Split::Train, ds()).unwrap();
                let ev = be.evaluate(Split::Train).unwrap();
                let want = batch_loss(&ModelSpec { reduction: Reduction::Sum, ..spec.clone() }, &pb.params, &pb.x, &pb.labels);
                assert!(((ev.loss_sum - want) / want).abs() < 1e-12, "{what}: evaluate loss {} vs smoothed loss {want}", ev.loss_sum);
                let g64 = grads(&be.trace_step(&[0, 1, 2], 0.25).unwrap());
                let mut fast = FastBackend::new(&spec, &opt);
                fast.set_params(&pb.params).unwrap();
                fast.attach(Split::Train, ds()).unwrap();
                let g32 = grads(&fast.trace_step(&[0, 1, 2], 0.25).unwrap());
                assert_eq!(g64.len(), pb.numeric.len());
                for (i, ((&a, &b), &num)) in g64.iter().zip(&g32).zip(&pb.numeric).enumerate() {
                    let rel = (a - num).abs() / a.abs().max(num.abs()).max(1e-5);
                    assert!(rel < 1e-6, "{what}: parameter {i}: backprop {a:e} vs finite difference {num:e} (rel {rel:e})");
                    let rel32 = (b - num).abs() / num.abs().max(1e-3);
                    assert!(rel32 < 1e-4, "{what}: f32 parameter {i}: {b:e} vs finite difference {num:e}");
                }
            }
        }
    }
}

// ---- numerical stability at large |z| --------------------------------------------------------

#[test]
fn sigmoid_is_finite_and_saturates_at_large_z() {
    assert_eq!(math::sigmoid(800.0f64), 1.0);
    let s = math::sigmoid(-800.0f64);
    assert!(s.is_finite() && (0.0..=1e-300).contains(&s), "sigmoid(-800) = {s:e}");
    assert_eq!(math::sigmoid(800.0f32), 1.0);
    let s = math::sigmoid(-800.0f32);
    assert!(s.is_finite() && (0.0..=1e-30).contains(&s), "f32 sigmoid(-800) = {s:e}");
    // moderate arguments are still accurate on the negative branch: σ(−30) = e^-30/(1+e^-30)
    let want = (-30.0f64).exp() / (1.0 + (-30.0f64).exp());
    assert!(((math::sigmoid(-30.0f64) - want) / want).abs() < 1e-15);
    let a = math::activate(Activation::Sigmoid, -800.0f64);
    assert!(a.is_finite() && (0.0..=1e-300).contains(&a), "activate(sigmoid, -800) = {a:e}");
    assert_eq!(math::activate(Activation::Sigmoid, 800.0f64), 1.0);
    assert_eq!(math::activation_derivative(Activation::Sigmoid, 800.0f64, 1.0), 0.0);
}

#[test]
fn softmax_is_finite_for_huge_logits() {
    let mut a = [0.0f64; 2];
    math::softmax_row(&[1000.0, 0.0], &mut a);
    assert_eq!(a, [1.0, 0.0], "e^-1000 underflows to 0");
    math::softmax_row(&[-1000.0, -1000.0], &mut a);
    assert_eq!(a, [0.5, 0.5]);
    let mut a32 = [0.0f32; 3];
    math::softmax_row(&[1000.0f32, 0.0, 999.0], &mut a32);
    assert!(a32.iter().all(|v| v.is_finite()) && (a32.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{a32:?}");
    let e = (-1.0f64).exp();
    assert!((a32[0] as f64 - 1.0 / (1.0 + e)).abs() < 1e-6);
}

#[test]
fn cross_entropies_are_finite_from_saturated_logits() {
    // softmax + CE from z = [1000, 0]: −ln softmax = [0, 1000]
    let z = [1000.0f64, 0.0];
    let mut a = [0.0; 2];
    math::softmax_row(&z, &mut a);
    assert_eq!(math::sample_loss(Loss::CrossEntropy, 0.0, &z, &a, 0), 0.0);
    assert_eq!(math::sample_loss(Loss::CrossEntropy, 0.0, &z, &a, 1), 1000.0);
    let z32 = [1000.0f32, 0.0];
    let mut a32 = [0.0f32; 2];
    math::softmax_row(&z32, &mut a32);
    assert_eq!(math::sample_loss(Loss::CrossEntropy, 0.0, &z32, &a32, 1), 1000.0f32);

    // sigmoid + BCE: −[t ln σ(z) + (1−t) ln(1−σ(z))] = ln(1 + e^z) − t·z
    for (z, t, want) in [(100.0f64, 0u8, 100.0), (-100.0, 1, 100.0), (100.0, 1, (-100.0f64).exp()), (-100.0, 0, (-100.0f64).exp())] {
        let a = [math::sigmoid(z)];
        let got = math::sample_loss(Loss::BinaryCrossEntropy, 0.0, &[z], &a, t);
        assert!(got.is_finite() && got >= 0.0, "BCE(z={z}, t={t}) = {got}");
        // ln(1 + e^-100) ≈ 3.7e-44 may be resolved or rounded to 0 (absolute error 3.7e-44)
        let tol = if want > 1.0 { 1e-12 * want } else { 1e-43 };
        assert!((got - want).abs() <= tol, "BCE(z={z}, t={t}) = {got:e}, expected {want:e}");
        let mut d = [0.0];
        math::output_delta(Loss::BinaryCrossEntropy, 0.0, Activation::Sigmoid, &[z], &a, t, &mut d);
        assert!(d[0].is_finite() && (d[0] - (a[0] - t as f64)).abs() == 0.0);
    }
    let got = math::sample_loss(Loss::BinaryCrossEntropy, 0.0, &[100.0f32], &[math::sigmoid(100.0f32)], 0);
    assert_eq!(got, 100.0f32);
}

/// The same extremes through a backend's evaluation: saturated outputs give the large finite
/// loss of the logits, never NaN or ∞.
#[test]
fn saturated_model_evaluates_to_finite_loss() {
    let opt = OptimizerSpec::default();
    let ds = |labels: Vec<u8>, classes| Arc::new(Dataset { source: "x=1".into(), pixels: Pixels::F64(vec![1.0; labels.len()]), sample_len: 1, labels, num_classes: classes });

    let bce = ModelSpec { layers: vec![1, 1], activations: vec![Activation::Sigmoid], loss: Loss::BinaryCrossEntropy, label_smoothing: 0.0, reduction: Reduction::Mean, input_norm: Default::default(), feature_norm: None, classes: Vec::new() };
    let mut be = ReferenceBackend::new(&bce, &opt);
    be.set_params(&Params { layers: vec![LayerParams { weight: vec![1000.0], bias: vec![0.0] }] }).unwrap();
    be.attach(Split::Test, ds(vec![0, 1], 2)).unwrap();
    let r = be.evaluate(Split::Test).unwrap();
    assert_eq!((r.loss_sum, r.correct), (1000.0, 1), "z = 1000: label 0 costs 1000, label 1 costs ~0");

    let ce = ModelSpec { layers: vec![1, 2], activations: vec![Activation::Softmax], loss: Loss::CrossEntropy, label_smoothing: 0.0, reduction: Reduction::Mean, input_norm: Default::default(), feature_norm: None, classes: Vec::new() };
    let mut be = ReferenceBackend::new(&ce, &opt);
    be.set_params(&Params { layers: vec![LayerParams { weight: vec![1000.0, 0.0], bias: vec![0.0, 0.0] }] }).unwrap();
    be.attach(Split::Test, ds(vec![1, 0], 2)).unwrap();
    let r = be.evaluate(Split::Test).unwrap();
    assert_eq!((r.loss_sum, r.correct), (1000.0, 1));
}
