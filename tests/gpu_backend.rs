//! The GPU backend end to end against the documents and the CPU reference: the doc-000 hand
//! example, the doc-001 Adam step, 20 free-running steps of seed001, a streamed run against a
//! resident one, and one real-MNIST epoch. In CI (CI set) a missing adapter or dataset fails.

use gpu_nn::nn::backend::{Backend, Split};
use gpu_nn::core::config::{Config, preset_json};
use gpu_nn::cpu::ReferenceBackend;
use gpu_nn::data::{Dataset, Pixels};
use gpu_nn::gpu::{GpuBackend, KernelChoice};
use gpu_nn::nn::model::{Activation, LayerParams, Loss, ModelSpec, Params, Reduction};
use gpu_nn::nn::optim::{OptimState, OptimizerKind, OptimizerSpec};
use serde_json::json;
mod common;
use common::in_ci;
use std::path::PathBuf;
use std::sync::Arc;


/// A GPU backend, or None with a printed reason (a failure in CI).
fn gpu_or_skip(test: &str, spec: &ModelSpec, opt: &OptimizerSpec, batch: usize, stream: bool) -> Option<GpuBackend> {
    common::drivers::watch_validation();
    match gpu_nn::gpu::Gpu::new(None, true).and_then(|g| GpuBackend::with_gpu(g, spec, opt, batch, stream, &KernelChoice::Default)) {
        Ok(b) => Some(b),
        Err(e) if in_ci() => panic!("{test}: no GPU adapter in CI: {e:#}"),
        Err(e) => {
            eprintln!("SKIPPED {test}: no GPU adapter ({e:#})");
            None
        }
    }
}

fn mnist_or_skip(test: &str) -> Option<PathBuf> {
    common::mnist_dir_or_skip(test)
}

fn preset(name: &str, extra: serde_json::Value) -> Config {
    Config::from_layers(&[preset_json(name).unwrap(), extra]).unwrap()
}

#[test]
fn hand_example_on_the_gpu_matches_the_exact_weights() {
    let cfg = preset("seed000-hand", json!({}));
    let Some(mut gpu) = gpu_or_skip("hand_example_on_the_gpu", &cfg.model, &cfg.optimizer, 2, false) else { return };
    let data = gpu_nn::core::run_data::load(&cfg).unwrap();
    let r = gpu_nn::core::train::run(&cfg, &data, &mut gpu, &mut gpu_nn::core::train::Silent).unwrap();
    assert_eq!(r.steps, 3);
    let got = common::hand::doc_order(&gpu.params().unwrap());
    for (i, (g, w)) in got.iter().zip(common::hand::EXACT[2]).enumerate() {
        assert!((g - w).abs() <= 1e-6, "w{}: gpu {g} vs exact {w}", i + 1);
    }
}

/// Doc 001 Figure 10b: one Adam step at t = 2 from zero moments moves the output bias by the
/// printed amounts; the gradient is softmax(z) − onehot(5) with the doc's Table 3 probabilities.
#[test]
fn adam_step_reproduces_doc001_figure_10b() {
    let (probs, figure_10b) = (common::doc001::TF_PROBS, common::doc001::FIG_10B);
    // Two inputs x = (1, 0) and W[:, 0] = ln p, W[:, 1] = 0.25, b = 0: the logits are ln p, so
    // softmax gives p (to the 1.9e-8 by which the doc's probabilities miss summing to 1), the
    // bias starts at 0 exactly as in the document, and column 1 has an exactly zero gradient.
    let spec = ModelSpec { layers: vec![2, 10], activations: vec![Activation::Softmax], loss: Loss::CrossEntropy, label_smoothing: 0.0, reduction: Reduction::Mean, input_norm: Default::default(), feature_norm: None, classes: Vec::new() };
    let opt = OptimizerSpec { kind: OptimizerKind::Adam, lr: 1e-3, ..Default::default() };
    let Some(mut gpu) = gpu_or_skip("adam_step_reproduces_doc001", &spec, &opt, 1, false) else { return };
    let w0: Vec<f64> = probs.iter().flat_map(|p| [p.ln(), 0.25]).collect();
    gpu.set_params(&Params { layers: vec![LayerParams { weight: w0.clone(), bias: vec![0.0; 10] }] }).unwrap();
    // the document's TensorFlow had already counted one step: the next one is t = 2
    let zero = |n| vec![vec![0.0; n]; 2];
    gpu.set_optimizer_state(&OptimState { step: 1, slots: vec![[zero(20), zero(10)]] }).unwrap();
    let ds = Dataset { source: "x = (1, 0)".into(), pixels: Pixels::F64(vec![1.0, 0.0]), sample_len: 2, labels: vec![5], num_classes: 10 };
    gpu.attach(Split::Train, Arc::new(ds)).unwrap();
    gpu.train_steps(&[0], 1, &[1e-3]).unwrap();
    let p = gpu.params().unwrap();
    for k in 0..10 {
        let b = p.layers[0].bias[k];
        assert!((b - figure_10b[k]).abs() <= 1e-6 * 7.5e-4, "bias {k}: {b:e}, Figure 10b {:e}", figure_10b[k]);
        assert_eq!(p.layers[0].weight[2 * k + 1], 0.25, "weight ({k}, 1) has zero gradient and must not move");
    }
    assert_eq!(gpu.optimizer_state().unwrap().step, 2);
}

#[test]
fn twenty_seed001_steps_agree_with_the_cpu_reference() {
    let Some(dir) = mnist_or_skip("twenty_seed001_steps") else { return };
    let cfg = preset("seed001", json!({"data": {"dir": dir}}));
    let data = gpu_nn::core::run_data::load(&cfg).unwrap();
    if gpu_or_skip("twenty_seed001_steps", &cfg.model, &cfg.optimizer, 64, false).is_none() {
        return;
    }
    // free-running: each backend continues from its own results
    let r = gpu_nn::commands::parity::compare_backends(&cfg, &data, 20, None, false).unwrap();
    for t in &r.tensors {
        assert!(t.max_rel <= 1e-4, "{}: relative error {:e} at step {}", t.name, t.max_rel, t.step);
    }
    assert!(r.tensors.iter().any(|t| t.name == "layers.0.weight.state1"), "Adam's second moment is compared");
}

/// Dropout's masks as the GPU kernel draws them are the CPU's (`nn::dropout`) bit for bit: on
/// the input and two hidden layers of widths that are not multiples of anything, at steps whose
/// key words differ, for micro-batches that start inside the batch.
#[test]
fn dropout_masks_on_the_gpu_are_the_cpus_bit_for_bit() {
    use gpu_nn::nn::dropout::Dropout;
    let spec = ModelSpec::classifier(&[37, 61, 29, 10], &[Activation::Relu, Activation::Sigmoid, Activation::Softmax]);
    let opt = OptimizerSpec::default();
    let Some(mut gpu) = gpu_or_skip("dropout_masks", &spec, &opt, 300, false) else { return };
    let d = Dropout::new(&spec, 0.2, &[0.5, 0.35], 0x0123_4567_89ab_cdef, 300).unwrap();
    gpu.set_dropout(&d).unwrap();
    let mut compared = 0;
    for (step, rows, row_base) in [(1u64, 300, 0), (7, 13, 250), (4_000_000_000, 77, 1000)] {
        let masks = gpu.dropout_masks(step, rows, row_base).unwrap();
        assert_eq!(masks.iter().map(|m| m.0).collect::<Vec<_>>(), vec![0, 1, 2]);
        for (l, got) in masks {
            let mut want = vec![0f32; rows * spec.layers[l]];
            d.mask(step, l, row_base * spec.layers[l], &mut want);
            let (g, w): (Vec<u32>, Vec<u32>) = (got.iter().map(|x| x.to_bits()).collect(), want.iter().map(|x| x.to_bits()).collect());
            assert_eq!(g, w, "layer {l}, step {step}, rows {row_base}..{}", row_base + rows);
            let dropped = want.iter().filter(|&&x| x == 0.0).count();
            assert!(dropped > 0 && dropped < want.len(), "layer {l}: a mask that drops some units");
            compared += want.len();
        }
    }
    assert!(compared > 20_000);
}

/// With augmented pictures and dropout on the input and the hidden layers, every tensor of 12
/// free-running steps of seed001 on the GPU agrees with the f64 reference (a dropped unit in
/// the wrong place would be an error of order 1), with sigmoid and tanh hidden layers, whose
/// derivative the dropout kernel takes on the unmasked activations, and a batch that is not a
/// multiple of any tile. (Momentum, not seed001's Adam: Adam's first steps move every weight by
/// ±lr whatever the size of its gradient, so a gradient at rounding level, which augmentation
/// gives the pixels at a digit's edge, takes either sign on the two backends.)
#[test]
fn dropout_and_augmentation_steps_agree_with_the_cpu_reference() {
    let Some(dir) = mnist_or_skip("dropout_steps") else { return };
    let augment = json!({"shift": 2.0, "rotate": 12.0, "scale": 0.1, "elastic_alpha": 20.0, "elastic_sigma": 3.0});
    let cfg = preset("seed001", json!({"data": {"dir": dir, "standardize": true}, "training": {"batch_size": 45, "dropout": [0.5, 0.3], "input_dropout": 0.2, "augment": augment},
        "model": {"activations": ["sigmoid", "tanh", "softmax"]}, "optimizer": {"kind": "momentum", "lr": 0.1}}));
    let data = gpu_nn::core::run_data::load(&cfg).unwrap();
    if gpu_or_skip("dropout_steps", &cfg.model, &cfg.optimizer, 45, false).is_none() {
        return;
    }
    let r = gpu_nn::commands::parity::compare_backends(&cfg, &data, 12, None, false).unwrap();
    for t in &r.tensors {
        assert!(t.max_rel <= 1e-4, "{}: relative error {:e} at step {}", t.name, t.max_rel, t.step);
    }
}

/// The augmentation kernels make the CPU's pictures (`nn::augment` in f64) within f32
/// rounding: real digits shifted, rotated, scaled and elastically deformed, as batch rows that
/// start inside a batch, with the background of centred inputs brought in from outside.
#[test]
fn augmented_pictures_on_the_gpu_are_the_cpus() {
    use gpu_nn::nn::augment::{Augment, AugmentSpec};
    let Some(dir) = mnist_or_skip("augmented_pictures") else { return };
    let cfg = preset("seed001", json!({"data": {"dir": dir}}));
    let data = gpu_nn::core::run_data::load(&cfg).unwrap();
    let mut spec = ModelSpec::classifier(&[784, 30, 10], &[Activation::Relu, Activation::Softmax]);
    spec.input_norm = gpu_nn::data::InputNorm { mean: 0.1307, std: 0.3081 };
    let Some(mut gpu) = gpu_or_skip("augmented_pictures", &spec, &OptimizerSpec::default(), 64, false) else { return };
    let rows = 40;
    let x64: Vec<f64> = (0..rows * 784).map(|i| spec.input_norm.apply(data.train.pixel(i / 784, i % 784))).collect();
    let x32: Vec<f32> = x64.iter().map(|&v| v as f32).collect();
    let background = spec.input_norm.apply(0.0);
    for (what, a) in [
        ("affine", AugmentSpec { shift: 3.0, rotate: 15.0, scale: 0.15, ..Default::default() }),
        ("elastic", AugmentSpec { elastic_alpha: 34.0, elastic_sigma: 4.0, ..Default::default() }),
        ("both", AugmentSpec { shift: 2.0, rotate: 10.0, scale: 0.1, elastic_alpha: 8.0, elastic_sigma: 1.5 }),
    ] {
        let aug = Augment::new(a, 28, 28, 0xfeed, 64).unwrap();
        gpu.set_augment(Some(&aug)).unwrap();
        for (step, row_base) in [(1u64, 0usize), (123, 24)] {
            let got = gpu.augmented(step, row_base, &x32).unwrap();
            let mut want = vec![0.0f64; rows * 784];
            for r in 0..rows {
                let s = r * 784..(r + 1) * 784;
                aug.apply(step, row_base + r, &x64[s.clone()], background, &mut want[s], &mut Vec::new());
            }
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let (i, diff) = got.iter().zip(&want).map(|(&g, &w)| (g as f64 - w).abs()).enumerate().fold((0, 0.0), |m, (i, d)| if d > m.1 { (i, d) } else { m });
            assert!(diff <= 1e-5 * scale, "{what}, step {step}: pixel {i} is {} on the GPU, {} on the CPU (scale {scale})", got[i], want[i]);
            let moved = want.iter().zip(&x64).filter(|(w, x)| (*w - *x).abs() > 0.1).count();
            assert!(moved > rows * 784 / 20, "{what}: the pictures changed ({moved} pixels moved)");
        }
    }
}

/// A full-batch step of 9,000 samples runs on the GPU as micro-batches (at most 8,192 rows),
/// each drawing its masks from its place in the whole batch: after three steps with dropout
/// the weights are the f64 reference's.
#[test]
fn dropout_over_micro_batches_follows_the_rows_place_in_the_batch() {
    use gpu_nn::nn::dropout::Dropout;
    let spec = ModelSpec::classifier(&[20, 33, 6], &[Activation::Relu, Activation::Softmax]);
    let opt = OptimizerSpec { kind: OptimizerKind::Sgd, lr: 0.5, ..Default::default() };
    let n = 9000;
    let Some(mut gpu) = gpu_or_skip("dropout_micro_batches", &spec, &opt, n, false) else { return };
    assert!(gpu.rows_cap() < n, "the step must be split into micro-batches ({} rows each)", gpu.rows_cap());
    let mut x = 99u64;
    let mut next = || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) as u32
    };
    let pixels: Vec<u8> = (0..n * 20).map(|_| next() as u8).collect();
    let labels: Vec<u8> = (0..n).map(|_| (next() % 6) as u8).collect();
    let ds = Arc::new(Dataset { source: "random".into(), pixels: Pixels::U8(pixels), sample_len: 20, labels, num_classes: 6 });
    let d = Dropout::new(&spec, 0.1, &[0.5], 11, n).unwrap();
    let params = gpu_nn::nn::init::initialize(&spec, gpu_nn::nn::init::Init::GlorotUniform, 5).unwrap();
    let mut cpu = ReferenceBackend::new(&spec, &opt);
    let order: Vec<u32> = (0..n as u32).rev().collect();
    for b in [&mut cpu as &mut dyn Backend, &mut gpu] {
        b.set_params(&params).unwrap();
        b.set_dropout(&d).unwrap();
        b.attach(Split::Train, ds.clone()).unwrap();
        for _ in 0..3 {
            b.train_steps(&order, n, &[0.5]).unwrap();
        }
    }
    let (c, g) = (cpu.params().unwrap(), gpu.params().unwrap());
    for (i, (lc, lg)) in c.layers.iter().zip(&g.layers).enumerate() {
        for (what, a, b) in [("weight", &lc.weight, &lg.weight), ("bias", &lc.bias, &lg.bias)] {
            let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let diff = a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
            assert!(diff <= 1e-5 * scale, "layer {i} {what}: max difference {diff:e} (scale {scale:e})");
        }
    }
    // and the masks mattered: without dropout the weights are elsewhere
    let mut plain = ReferenceBackend::new(&spec, &opt);
    plain.set_params(&params).unwrap();
    plain.attach(Split::Train, ds).unwrap();
    for _ in 0..3 {
        plain.train_steps(&order, n, &[0.5]).unwrap();
    }
    let p = plain.params().unwrap();
    let moved = p.layers[0].weight.iter().zip(&c.layers[0].weight).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    assert!(moved > 1e-3, "dropout changed the steps (max weight difference {moved:e})");
}

/// A network and data set small enough to run quickly, with a batch order that crosses the
/// stream chunks.
fn small_run(stream: bool) -> Option<(Params, gpu_nn::nn::optim::OptimState)> {
    let spec = ModelSpec::classifier(&[30, 17, 5], &[Activation::Tanh, Activation::Softmax]);
    let opt = OptimizerSpec { kind: OptimizerKind::Momentum, lr: 0.05, ..Default::default() };
    let mut gpu = gpu_or_skip("streamed_equals_resident", &spec, &opt, 7, stream)?;
    let n = 5000;
    let mut x = 12345u64;
    let mut next = || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) as u32
    };
    let pixels: Vec<u8> = (0..n * 30).map(|_| next() as u8).collect();
    let labels: Vec<u8> = (0..n).map(|_| (next() % 5) as u8).collect();
    let ds = Dataset { source: "random".into(), pixels: Pixels::U8(pixels), sample_len: 30, labels, num_classes: 5 };
    let params = gpu_nn::nn::init::initialize(&spec, gpu_nn::nn::init::Init::GlorotUniform, 7).unwrap();
    gpu.set_params(&params).unwrap();
    gpu.attach(Split::Train, Arc::new(ds)).unwrap();
    let order = gpu_nn::nn::init::permutation(n, &mut gpu_nn::nn::init::rng(3, gpu_nn::nn::init::Stream::Shuffle(0)));
    let steps = n.div_ceil(7);
    let lrs = vec![0.05; steps];
    gpu.train_steps(&order, 7, &lrs).unwrap();
    Some((gpu.params().unwrap(), gpu.optimizer_state().unwrap()))
}

#[test]
fn streamed_run_equals_resident_run() {
    let Some((p_res, s_res)) = small_run(false) else { return };
    let (p_str, s_str) = small_run(true).unwrap();
    // the same kernels on the same rows in the same order: bit-identical
    assert_eq!(p_res, p_str);
    assert_eq!(s_res, s_str);
}

#[test]
fn one_gpu_epoch_of_seed000_mnist_reaches_90_percent() {
    let Some(dir) = mnist_or_skip("one_gpu_epoch_of_seed000_mnist") else { return };
    let cfg = preset("seed000-mnist", json!({"data": {"dir": dir}, "training": {"epochs": 1}}));
    let data = gpu_nn::core::run_data::load(&cfg).unwrap();
    let Some(mut gpu) = gpu_or_skip("one_gpu_epoch_of_seed000_mnist", &cfg.model, &cfg.optimizer, 20, false) else { return };
    let r = gpu_nn::core::train::run(&cfg, &data, &mut gpu, &mut gpu_nn::core::train::Silent).unwrap();
    let acc = r.metrics[0].test_acc.unwrap();
    assert!(acc >= 0.90, "test accuracy after one GPU epoch: {acc}");
    // and the CPU reference computes the same test accuracy from the GPU's weights
    let mut cpu = ReferenceBackend::new(&cfg.model, &cfg.optimizer);
    cpu.set_params(&gpu.params().unwrap()).unwrap();
    cpu.attach(Split::Test, data.test.clone().unwrap()).unwrap();
    let c = cpu.evaluate(Split::Test).unwrap();
    assert!((c.accuracy() - acc).abs() <= 2e-4, "cpu {} vs gpu {acc} on the same weights", c.accuracy());
}

/// Every test above again on each GPU implementation the machine has (lavapipe, SwiftShader,
/// llvmpipe's OpenGL), each in a process of its own.
#[test]
fn on_every_driver() {
    common::drivers::rerun_on_every_driver("on_every_driver");
}
