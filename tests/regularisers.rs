//! Label smoothing, AdamW, the max-norm constraint and gradient clipping by global norm (issue
//! 24) on the CPU: each rule against values worked out by hand from its definition (PyTorch's
//! for smoothing, AdamW and clipping; Srivastava et al. 2014 for max-norm), the f32 fast path
//! against the f64 reference on a step trace, the one-line errors for bad values, and old
//! configurations unchanged. The GPU's side is in gpu_kernels.rs (`regularisers_match_cpu`).

use gpu_nn::commands::config_args::ConfigArgs;
use gpu_nn::core::config::{Config, PRESETS, preset_json};
use gpu_nn::core::parity::{TOLERANCE, compare, tolerance_for};
use gpu_nn::cpu::{FastBackend, ReferenceBackend};
use gpu_nn::data::{Dataset, Pixels};
use gpu_nn::nn::backend::{Backend, Split, StepTrace};
use gpu_nn::nn::math;
use gpu_nn::nn::model::{Activation, LayerParams, Loss, ModelSpec, Params, Reduction};
use gpu_nn::nn::optim::{self, OptimizerKind, OptimizerSpec};
use gpu_nn::workbench::step::{random_dataset, random_params, reference_step};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
mod common;

fn spec(layers: &[usize], activations: &[Activation], loss: Loss, reduction: Reduction) -> ModelSpec {
    ModelSpec { layers: layers.to_vec(), activations: activations.to_vec(), loss, label_smoothing: 0.0, reduction, input_norm: Default::default(), feature_norm: None, classes: Vec::new() }
}

fn close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}[{i}]: {g:e}, expected {w:e}");
    }
}

// ---- each rule by hand ----------------------------------------------------------------------

/// One AdamW step at t = 1 on w = (1, −2), g = (0.5, −0.1), η = 0.1, λ = 0.1, β = (0.9, 0.999),
/// ε = 1e-8. Decay first: w·(1 − ηλ) = (0.99, −1.98). Then m = 0.1·g = (0.05, −0.01),
/// v = 0.001·g² = (2.5e-4, 1e-5), m̂ = g, √v̂ = |g|, so the step is η·g/(|g| + ε):
/// 0.05/0.50000001 = 0.099999998 and −0.01/0.10000001 = −0.09999999, giving
/// w = (0.890000002, −1.88000001). Adam with the same λ as an L2 term would instead step
/// on g + λw = (0.6, −0.3): w ≈ (0.9, −1.9).
#[test]
fn adamw_one_step_by_hand() {
    let opt = OptimizerSpec { kind: OptimizerKind::AdamW, lr: 0.1, weight_decay: 0.1, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, ..Default::default() };
    let mut w = vec![1.0f64, -2.0];
    let g = [0.5, -0.1];
    let mut state = vec![vec![0.0; 2]; 2];
    optim::apply(&opt, 0.1, 1, &mut w, &g, &mut state);
    close("adamw w", &w, &[0.890000002, -1.88000001], 1e-12);
    close("adamw m", &state[0], &[0.05, -0.01], 1e-15);
    close("adamw v", &state[1], &[2.5e-4, 1e-5], 1e-17);

    // f32, through the same dispatch (AVX2 where the CPU has it)
    let mut w32 = vec![1.0f32, -2.0];
    let mut s32 = vec![vec![0.0f32; 2]; 2];
    optim::apply(&opt, 0.1, 1, &mut w32, &[0.5, -0.1], &mut s32);
    close("adamw f32 w", &w32.iter().map(|&x| x as f64).collect::<Vec<_>>(), &[0.890000002, -1.88000001], 2e-7);

    // a long tensor (the vector loop and its remainder) gives every element the same result
    let n = 37;
    let mut long: Vec<f64> = (0..n).map(|i| if i % 2 == 0 { 1.0 } else { -2.0 }).collect();
    let gl: Vec<f64> = (0..n).map(|i| if i % 2 == 0 { 0.5 } else { -0.1 }).collect();
    let mut sl = vec![vec![0.0; n]; 2];
    optim::apply(&opt, 0.1, 1, &mut long, &gl, &mut sl);
    for (i, x) in long.iter().enumerate() {
        let want = if i % 2 == 0 { 0.890000002 } else { -1.88000001 };
        assert!((x - want).abs() <= 1e-12, "element {i}: {x}");
    }

    // not the same as Adam with an L2 term
    let adam = OptimizerSpec { kind: OptimizerKind::Adam, ..opt.clone() };
    let mut wa = vec![1.0f64, -2.0];
    let mut sa = vec![vec![0.0; 2]; 2];
    optim::apply(&adam, 0.1, 1, &mut wa, &g, &mut sa);
    close("adam + L2", &wa, &[0.9, -1.9], 1e-6);
    assert_eq!(OptimizerKind::AdamW.state_slots(), 2);
    assert_eq!("adamw".parse::<OptimizerKind>().unwrap(), OptimizerKind::AdamW);
    assert_eq!(serde_json::to_string(&OptimizerKind::AdamW).unwrap(), "\"adamw\"");
}

/// A second AdamW step uses the bias corrections of t = 2: from the state above with the same
/// gradient, m = 0.9·0.05 + 0.1·0.5 = 0.095, v = 0.999·2.5e-4 + 0.001·0.25 = 4.9975e-4,
/// m̂ = 0.095/0.19 = 0.5, v̂ = 4.9975e-4/0.001999 = 0.25, so again a step of η·0.5/(0.5 + ε) after
/// the decay: 0.890000002·0.99 − 0.099999998 = 0.78110000398 (first element).
#[test]
fn adamw_second_step_by_hand() {
    let opt = OptimizerSpec { kind: OptimizerKind::AdamW, lr: 0.1, weight_decay: 0.1, ..Default::default() };
    let mut w = vec![1.0f64];
    let mut state = vec![vec![0.0]; 2];
    optim::apply(&opt, 0.1, 1, &mut w, &[0.5], &mut state);
    optim::apply(&opt, 0.1, 2, &mut w, &[0.5], &mut state);
    close("m", &state[0], &[0.095], 1e-15);
    close("v", &state[1], &[4.9975e-4], 1e-17);
    close("w", &w, &[0.890000002 * 0.99 - 0.05 / 0.50000001], 1e-12);
    assert!((w[0] - 0.78110000398).abs() < 1e-10);
}

/// Label smoothing with K = 4, ε = 0.2, label 1: t = (0.05, 0.85, 0.05, 0.05). From z = 0 the
/// softmax is uniform, the loss −Σ t_k ln ¼ = ln 4 and δ = ¼ − t = (0.2, −0.6, 0.2, 0.2). From
/// z = (ln 2, 0, 0, 0) the softmax is (0.4, 0.2, 0.2, 0.2), the loss −0.05·ln 0.4 − 0.95·ln 0.2
/// and δ = (0.35, −0.65, 0.15, 0.15).
#[test]
fn label_smoothing_targets_loss_and_delta_by_hand() {
    let t: Vec<f64> = (0..4).map(|k| math::target(1, k, 4, 0.2)).collect();
    close("t", &t, &[0.05, 0.85, 0.05, 0.05], 1e-15);
    assert_eq!((0..4).map(|k| math::target::<f64>(1, k, 4, 0.0)).collect::<Vec<_>>(), [0.0, 1.0, 0.0, 0.0], "ε = 0 is one-hot");
    for (z, a, loss, delta) in [
        ([0.0, 0.0, 0.0, 0.0], [0.25; 4], 4f64.ln(), [0.2, -0.6, 0.2, 0.2]),
        ([2f64.ln(), 0.0, 0.0, 0.0], [0.4, 0.2, 0.2, 0.2], -0.05 * 0.4f64.ln() - 0.95 * 0.2f64.ln(), [0.35, -0.65, 0.15, 0.15]),
    ] {
        let mut soft = [0.0; 4];
        math::softmax_row(&z, &mut soft);
        close("softmax", &soft, &a, 1e-15);
        let l = math::sample_loss(Loss::CrossEntropy, 0.2, &z, &soft, 1);
        assert!((l - loss).abs() < 1e-14, "loss {l}, expected {loss}");
        let mut d = [0.0; 4];
        math::output_delta(Loss::CrossEntropy, 0.2, Activation::Softmax, &z, &soft, 1, &mut d);
        close("delta", &d, &delta, 1e-15);
        // f32
        let z32 = z.map(|v| v as f32);
        let mut s32 = [0.0f32; 4];
        math::softmax_row(&z32, &mut s32);
        let l32 = math::sample_loss(Loss::CrossEntropy, 0.2, &z32, &s32, 1);
        assert!((l32 as f64 - loss).abs() < 1e-6, "f32 loss {l32}, expected {loss}");
        let mut d32 = [0.0f32; 4];
        math::output_delta(Loss::CrossEntropy, 0.2, Activation::Softmax, &z32, &s32, 1, &mut d32);
        close("f32 delta", &d32.map(|v| v as f64), &delta, 1e-7);
    }
}

/// The evaluated loss is the smoothed one (as PyTorch's criterion reports it), the accuracy is
/// not affected: zero weights give z = 0, ln 4 per sample, and the first argmax (class 0).
#[test]
fn evaluation_reports_the_smoothed_loss() {
    let mut s = spec(&[1, 4], &[Activation::Softmax], Loss::CrossEntropy, Reduction::Mean);
    s.label_smoothing = 0.2;
    let opt = OptimizerSpec::default();
    let ds = Arc::new(Dataset { source: "x".into(), pixels: Pixels::F64(vec![1.0, 2.0, 3.0]), sample_len: 1, labels: vec![0, 1, 3], num_classes: 4 });
    let zero = Params { layers: vec![LayerParams { weight: vec![0.0; 4], bias: vec![0.0; 4] }] };
    let mut cpu = ReferenceBackend::new(&s, &opt);
    cpu.set_params(&zero).unwrap();
    cpu.attach(Split::Test, ds.clone()).unwrap();
    let r = cpu.evaluate(Split::Test).unwrap();
    assert!((r.loss() - 4f64.ln()).abs() < 1e-15 && r.correct == 1, "{} {}", r.loss(), r.correct);
    // with a decisive output the smoothed loss stays above the plain one: the ε/K mass on the
    // other classes costs −(ε/K)·ln p_k there
    let sure = Params { layers: vec![LayerParams { weight: vec![0.0; 4], bias: vec![10.0, 0.0, 0.0, 0.0] }] };
    cpu.set_params(&sure).unwrap();
    let smoothed = cpu.evaluate(Split::Test).unwrap();
    let mut plain = ReferenceBackend::new(&ModelSpec { label_smoothing: 0.0, ..s.clone() }, &opt);
    plain.set_params(&sure).unwrap();
    plain.attach(Split::Test, ds).unwrap();
    let p = plain.evaluate(Split::Test).unwrap();
    assert_eq!((smoothed.correct, smoothed.predictions.clone()), (p.correct, p.predictions.clone()));
    // by hand: z = (10, 0, 0, 0), so p0 = e^10/(e^10 + 3) and the others 1/(e^10 + 3); label y
    // costs −Σ_k (0.8·[k = y] + 0.05)·ln p_k
    let (p0, po) = (10f64.exp() / (10f64.exp() + 3.0), 1.0 / (10f64.exp() + 3.0));
    let sample = |y: usize| -> f64 { (0..4).map(|k| -(0.8 * (k == y) as u8 as f64 + 0.05) * if k == 0 { p0 } else { po }.ln()).sum() };
    let want = (sample(0) + sample(1) + sample(3)) / 3.0;
    assert!((smoothed.loss() - want).abs() < 1e-12, "{} vs {want}", smoothed.loss());
}

/// One layer 1→1, identity, Σ½(o − t)², x = 1, label 0 (target 0), w = 3, b = 4: z = 7, so both
/// gradients are 7 and ‖g‖ = 7√2. Clipped to C = 1 they become 7/(7√2 + 1e-6) each; SGD with
/// η = 0.1 moves w and b by that much over ten. A C above the norm leaves them as they are.
#[test]
fn clipping_by_global_norm_by_hand() {
    let s = spec(&[1, 1], &[Activation::Identity], Loss::HalfSse, Reduction::Sum);
    let ds = Arc::new(Dataset { source: "x = 1".into(), pixels: Pixels::F64(vec![1.0]), sample_len: 1, labels: vec![0], num_classes: 2 });
    let p0 = Params { layers: vec![LayerParams { weight: vec![3.0], bias: vec![4.0] }] };
    for (clip, g) in [(Some(1.0), 7.0 / (7.0 * 2f64.sqrt() + 1e-6)), (Some(10.0), 7.0), (None, 7.0)] {
        let opt = OptimizerSpec { kind: OptimizerKind::Sgd, lr: 0.1, clip_norm: clip, ..Default::default() };
        let mut f64_ = ReferenceBackend::new(&s, &opt);
        let mut f32_ = FastBackend::new(&s, &opt);
        for (be, tol) in [(&mut f64_ as &mut dyn Backend, 1e-15), (&mut f32_, 1e-6)] {
            be.set_params(&p0).unwrap();
            be.attach(Split::Train, ds.clone()).unwrap();
            let t = be.trace_step(&[0], 0.1).unwrap();
            close(&format!("clip {clip:?} gradients"), &[t.get("layers.0.weight.grad")[0], t.get("layers.0.bias.grad")[0]], &[g, g], tol);
            close(&format!("clip {clip:?} parameters"), &[t.get("layers.0.weight")[0], t.get("layers.0.bias")[0]], &[3.0 - 0.1 * g, 4.0 - 0.1 * g], tol);
        }
    }
    assert_eq!(optim::clip_scale(1.0, 25.0), 1.0 / (5.0 + 1e-6));
    assert_eq!(optim::clip_scale(10.0, 25.0), 1.0);
}

/// W = [[3, 4], [0.3, 0.4]] with c = 1: the first row (norm 5) becomes (0.6, 0.8), the second
/// (norm 0.5) stays; the bias (5, 5) is not constrained. The step itself moves nothing here (x = 0
/// and η = 1e-300).
#[test]
fn max_norm_by_hand() {
    let mut w = vec![3.0f64, 4.0, 0.3, 0.4];
    optim::max_norm_rows(&mut w, 2, 1.0);
    close("rows", &w, &[0.6, 0.8, 0.3, 0.4], 1e-15);
    let s = spec(&[2, 2], &[Activation::Identity], Loss::HalfSse, Reduction::Sum);
    let ds = Arc::new(Dataset { source: "x = 0".into(), pixels: Pixels::F64(vec![0.0, 0.0]), sample_len: 2, labels: vec![0], num_classes: 2 });
    let p0 = Params { layers: vec![LayerParams { weight: vec![3.0, 4.0, 0.3, 0.4], bias: vec![5.0, 5.0] }] };
    let opt = OptimizerSpec { kind: OptimizerKind::Sgd, lr: 1e-300, max_norm: 1.0, ..Default::default() };
    let mut f64_ = ReferenceBackend::new(&s, &opt);
    let mut f32_ = FastBackend::new(&s, &opt);
    for (be, tol) in [(&mut f64_ as &mut dyn Backend, 1e-15), (&mut f32_, 1e-7)] {
        be.set_params(&p0).unwrap();
        be.attach(Split::Train, ds.clone()).unwrap();
        be.train_steps(&[0], 1, &[1e-300]).unwrap();
        let p = be.params().unwrap();
        close("weights", &p.layers[0].weight, &[0.6, 0.8, 0.3, 0.4], tol);
        close("bias", &p.layers[0].bias, &[5.0, 5.0], 0.0);
    }
}

// ---- f32 against the f64 reference on a step ----------------------------------------------

/// The cases of the parity checks, on shapes that are no multiple of any tile (13 inputs, 7 and 5
/// units, batches of 9): each new piece alone, then all of them together. Shared in spirit with
/// gpu_kernels.rs's `regularisers_match_cpu`, which runs the same on the GPU.
fn cases() -> Vec<(&'static str, ModelSpec, OptimizerSpec)> {
    use Activation::*;
    let base = spec(&[13, 7, 5], &[Tanh, Softmax], Loss::CrossEntropy, Reduction::Mean);
    let smoothed = ModelSpec { label_smoothing: 0.1, ..base.clone() };
    let sgd = OptimizerSpec { kind: OptimizerKind::Momentum, lr: 0.05, ..Default::default() };
    // Adam's step is ±η wherever a gradient is tiny, whatever its rounding: a small η keeps that
    // below the tolerance, a large λ makes the decoupled decay (1 − ηλ = 0.99) plain to see
    let adamw = OptimizerSpec { kind: OptimizerKind::AdamW, lr: 1e-6, weight_decay: 1e4, ..Default::default() };
    vec![
        ("label smoothing", smoothed.clone(), sgd.clone()),
        ("adamw", base.clone(), adamw.clone()),
        // random_params' rows have norm ≈ 1.15: c = 1.1 shortens some and leaves others
        ("max-norm", base.clone(), OptimizerSpec { max_norm: 1.1, ..sgd.clone() }),
        ("clip-norm", base.clone(), OptimizerSpec { clip_norm: Some(0.05), ..sgd.clone() }),
        ("all together", smoothed, OptimizerSpec { max_norm: 1.1, clip_norm: Some(0.05), ..adamw }),
    ]
}

fn step_on<B: Backend>(mut be: B, p: &Params, data: &Arc<Dataset>, idx: &[u32], lr: f64) -> StepTrace {
    be.set_params(p).unwrap();
    be.attach(Split::Train, data.clone()).unwrap();
    be.trace_step(idx, lr).unwrap()
}

fn compare_traces(what: &str, want: &StepTrace, got: &StepTrace) {
    for d in compare(want, got).unwrap() {
        let tol = tolerance_for(&d.name, TOLERANCE);
        assert!(d.nonfinite.is_none() && d.max_rel <= tol, "{what}: {}[{}] {} vs reference {} — relative {:.2e} > {tol:.0e}", d.name, d.worst, d.gpu, d.cpu, d.max_rel);
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

#[test]
fn f32_matches_the_reference_and_each_piece_acts() {
    for (ci, (name, spec, opt)) in cases().into_iter().enumerate() {
        spec.validate().unwrap();
        opt.validate().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(500 + ci as u64);
        let data = Arc::new(random_dataset(&spec, 16, false, &mut rng));
        let p = random_params(&spec, &mut rng);
        let idx: Vec<u32> = (0..9).map(|i| (i * 5 % 16) as u32).collect();
        let want = reference_step(&spec, &opt, &data, &p, &idx).unwrap();
        let got = step_on(FastBackend::with_threads(&spec, &opt, 2), &p, &data, &idx, opt.lr);
        compare_traces(&format!("{name}: cpu f32"), &want, &got);

        // and each piece did something, in the reference: against the same step without it
        let grads = |t: &StepTrace| -> Vec<f64> { (0..2).flat_map(|l| [format!("layers.{l}.weight.grad"), format!("layers.{l}.bias.grad")]).flat_map(|n| t.get(&n).to_vec()).collect() };
        if spec.label_smoothing > 0.0 {
            let bare = reference_step(&ModelSpec { label_smoothing: 0.0, ..spec.clone() }, &opt, &data, &p, &idx).unwrap();
            assert_ne!(want.get("layer2.delta"), bare.get("layer2.delta"), "{name}: smoothing changed nothing");
            // δ rows sum to 0 with smoothed targets too (Σ softmax = Σ t = 1)
            for row in want.get("layer2.delta").chunks(5) {
                assert!(row.iter().sum::<f64>().abs() < 1e-12, "{name}: a δ row sums to {}", row.iter().sum::<f64>());
            }
        }
        if let Some(c) = opt.clip_norm {
            let bare = reference_step(&spec, &OptimizerSpec { clip_norm: None, ..opt.clone() }, &data, &p, &idx).unwrap();
            let (n0, n1) = (norm(&grads(&bare)), norm(&grads(&want)));
            assert!(n0 > 2.0 * c, "{name}: the gradient norm {n0} must exceed C = {c} for the test to mean anything");
            assert!((n1 - c * n0 / (n0 + 1e-6)).abs() < 1e-12, "{name}: clipped norm {n1}, expected ≈ {c}");
        }
        if opt.max_norm > 0.0 {
            let c = opt.max_norm;
            let (mut at_c, mut below) = (0, 0);
            for l in 0..2 {
                let n_in = spec.layers[l];
                for row in want.get(&format!("layers.{l}.weight")).chunks(n_in) {
                    let r = norm(row);
                    assert!(r <= c * (1.0 + 1e-12), "{name}: a row of norm {r} > c = {c}");
                    if (r - c).abs() <= 1e-12 { at_c += 1 } else { below += 1 }
                }
            }
            assert!(at_c > 0 && below > 0, "{name}: {at_c} rows at c and {below} below: the case must test both");
        }
        if opt.kind == OptimizerKind::AdamW {
            // the decay is there: every weight moved by about ηλ·w = 1 % plus at most η
            let (w0, w1) = (&p.layers[0].weight, want.get("layers.0.weight"));
            if opt.max_norm == 0.0 {
                for (a, b) in w0.iter().zip(w1) {
                    assert!((b - a * 0.99).abs() <= 1.01e-6, "{name}: {a} became {b}, not ≈ 0.99·w ± η");
                }
            }
        }
    }
}

// ---- errors and old configurations --------------------------------------------------------

fn resolve_error(args: ConfigArgs) -> String {
    let e = format!("{:#}", args.resolve().expect_err("the values must be refused"));
    assert!(!e.contains('\n'), "one line: {e}");
    e
}

#[test]
fn bad_values_get_one_clear_line() {
    let a = ConfigArgs::default;
    for (args, needle) in [
        (ConfigArgs { label_smoothing: Some(-0.1), ..a() }, "--label-smoothing must be a number in [0, 1), got -0.1"),
        (ConfigArgs { label_smoothing: Some(1.0), ..a() }, "--label-smoothing must be a number in [0, 1), got 1"),
        (ConfigArgs { label_smoothing: Some(f64::NAN), ..a() }, "--label-smoothing must be a finite number in [0, 1), got NaN"),
        (ConfigArgs { clip_norm: Some(0.0), ..a() }, "--clip-norm must be a finite number > 0 (leave it out to turn clipping off), got 0"),
        (ConfigArgs { clip_norm: Some(-1.0), ..a() }, "--clip-norm must be a finite number > 0 (leave it out to turn clipping off), got -1"),
        (ConfigArgs { max_norm: Some(-2.0), ..a() }, "--max-norm must be a finite number ≥ 0 (0 turns the constraint off), got -2"),
        (ConfigArgs { max_norm: Some(f64::INFINITY), ..a() }, "--max-norm must be a finite number, got inf"),
        (ConfigArgs { optimizer: Some("adamx".into()), ..a() }, "unknown optimizer 'adamx'; expected one of: sgd, momentum, nesterov, adam, adamw"),
    ] {
        let e = resolve_error(args);
        assert!(e.contains(needle), "{e}\n  expected: {needle}");
    }
    // smoothing is for cross-entropy only
    let e = resolve_error(ConfigArgs {
        label_smoothing: Some(0.1),
        net: gpu_nn::commands::config_args::NetworkFlags { layers: Some(vec![784, 10]), loss: Some("sse".into()), ..Default::default() },
        ..a()
    });
    assert!(e.contains("--label-smoothing 0.1 needs --loss cross_entropy (a softmax output); got --loss sse"), "{e}");
    // and good values are taken, where the flags say
    let c = ConfigArgs { label_smoothing: Some(0.1), clip_norm: Some(1.0), max_norm: Some(3.0), optimizer: Some("adamw".into()), weight_decay: Some(0.01), ..a() }.resolve().unwrap();
    assert_eq!((c.model.label_smoothing, c.optimizer.clip_norm, c.optimizer.max_norm, c.optimizer.kind), (0.1, Some(1.0), 3.0, OptimizerKind::AdamW));
    assert_eq!(ConfigArgs { max_norm: Some(0.0), ..a() }.resolve().unwrap().optimizer.max_norm, 0.0, "--max-norm 0 is off");
    // a run resumed with one of them would train differently: refused as a change of the maths
    let flags = ConfigArgs { label_smoothing: Some(0.1), clip_norm: Some(1.0), max_norm: Some(3.0), ..a() }.flags_changing_the_maths().unwrap();
    for f in ["--label-smoothing", "--clip-norm", "--max-norm"] {
        assert!(flags.iter().any(|x| x == f), "{f} not in {flags:?}");
    }
}

/// Configurations and model files written before these options read the same and write the
/// same: the new fields are omitted while off, so `maths_only` (which a resume compares) and
/// every document's preset serialise exactly as before.
#[test]
fn old_configurations_are_unchanged() {
    let default = serde_json::to_value(Config::default()).unwrap();
    for key in ["label_smoothing"] {
        assert!(default["model"].get(key).is_none(), "model.{key} is written while off");
    }
    for key in ["max_norm", "clip_norm"] {
        assert!(default["optimizer"].get(key).is_none(), "optimizer.{key} is written while off");
    }
    // the documents' presets, which predate these options (mlp-99 and mlp-fast-98 use them)
    for (name, _) in PRESETS.iter().filter(|(n, _)| n.starts_with("seed")) {
        let layer = preset_json(name).unwrap();
        let cfg = Config::from_layers(&[layer]).unwrap();
        let text = serde_json::to_string(&cfg).unwrap();
        for key in ["label_smoothing", "max_norm", "clip_norm"] {
            assert!(!text.contains(key), "{name}: {key} appears in its configuration");
        }
        // the configuration as an older gpu-nn wrote it reads back to the same maths
        let again = Config::from_layers(&[serde_json::from_str(&text).unwrap()]).unwrap();
        assert_eq!(again.maths_only(), cfg.maths_only(), "{name}");
    }
    // set, they are written and read back
    let mut cfg = Config::default();
    cfg.model.label_smoothing = 0.1;
    cfg.optimizer.clip_norm = Some(1.0);
    cfg.optimizer.max_norm = 2.0;
    let back = Config::from_layers(&[serde_json::to_value(&cfg).unwrap()]).unwrap();
    assert_eq!(back, cfg);
    assert_ne!(back.maths_only(), Config::default().maths_only());
}

/// Through the binary: a negative value as a separate word (as people type it) reaches the
/// check instead of clap's usage message, and the error is the one line, exit status 2.
#[test]
fn the_binary_refuses_bad_values_in_one_line() {
    for (args, needle) in [
        (["--label-smoothing", "-0.1"], "--label-smoothing must be a number in [0, 1), got -0.1"),
        (["--label-smoothing", "1"], "--label-smoothing must be a number in [0, 1), got 1"),
        (["--clip-norm", "0"], "--clip-norm must be a finite number > 0"),
        (["--max-norm", "-3"], "--max-norm must be a finite number ≥ 0"),
    ] {
        let all: Vec<&str> = ["train", "--backend", "cpu"].into_iter().chain(args).collect();
        let o = common::gpu_nn(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{all:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{all:?}: one line expected: {err}");
        assert!(err.starts_with("error:") && err.contains(needle), "{all:?}: {err}");
    }
}
