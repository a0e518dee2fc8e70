//! CPU-vs-GPU parity of the GPU kernels, above all the three matrix products (forward,
//! backward_data, weight_grad) in their scalar and vec4 variants. Every case builds a small
//! network whose layers give the matmuls the shapes under test, sets identical random
//! parameters on the f64 reference and on the GPU, poisons the GPU's work buffers with NaN (so
//! an element no kernel wrote shows up), runs one `trace_step` on both and compares every named
//! tensor: no NaN, and max|gpu − cpu| / max|cpu| ≤ 1e-5 (f32 against f64).
//!
//! Every case runs with each kernel configuration the adapter supports: scalar only, the plain
//! vec4 kernels (hardware-GPU and software blocks) and the adapter's own choice (on lavapipe:
//! the 8-lane subgroup kernels). With no adapter the tests print why and pass, unless `CI` is
//! set, where they fail.

use gpu_nn::nn::backend::{Backend, Split, StepTrace};
use gpu_nn::nn::model::{Activation, Loss, ModelSpec, Params, Reduction};
use gpu_nn::nn::optim::{OptimizerKind, OptimizerSpec};
use gpu_nn::cpu::ReferenceBackend;
use gpu_nn::data::InputNorm;
use gpu_nn::gpu::context::{instance, list_adapters};
use gpu_nn::gpu::{Gpu, GpuBackend, KernelChoice, KernelConfig, Matmul};
use gpu_nn::core::parity::{TOLERANCE, compare as diffs, tolerance_for};
use gpu_nn::workbench::matmul::{layer_shapes, variants};
use gpu_nn::workbench::step::{gpu_step, random_dataset as dataset, random_params as params, reference_step};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::sync::Arc;
mod common;


/// Whether an adapter exists; without one, panics under CI and otherwise says why it skips.
fn have_adapter() -> bool {
    common::drivers::watch_validation();
    if !list_adapters(&instance()).is_empty() {
        return true;
    }
    if common::in_ci() {
        panic!("no GPU adapter found and CI is set: the GPU kernel tests must run in CI (install lavapipe: mesa-vulkan-drivers)");
    }
    eprintln!("skipping GPU kernel tests: no GPU adapter found (install lavapipe: mesa-vulkan-drivers libvulkan1)");
    false
}

/// The kernel configurations to compare on this adapter (the workbench's variants).
fn configs() -> Vec<(&'static str, KernelConfig)> {
    variants(&Gpu::new(None, true).expect("opening the GPU"))
}

struct Case {
    name: &'static str,
    layers: Vec<usize>,
    activations: Vec<Activation>,
    loss: Loss,
    reduction: Reduction,
    optimizer: OptimizerKind,
    batch: usize,
    /// F64 pixels instead of bytes.
    float_pixels: bool,
    /// x = (p − mean) / std in the gather kernel; the identity unless a case sets it.
    input_norm: InputNorm,
}

impl Case {
    fn spec(&self) -> ModelSpec {
        let spec = ModelSpec {
            layers: self.layers.clone(),
            activations: self.activations.clone(),
            loss: self.loss,
            label_smoothing: 0.0,
            reduction: self.reduction,
            input_norm: self.input_norm,
            feature_norm: None,
            classes: Vec::new(),
        };
        spec.validate().unwrap();
        spec
    }

    fn optimizer(&self) -> OptimizerSpec {
        // Adam's step is ±lr wherever the gradient is tiny, whatever its f32 rounding: a small
        // lr keeps that far below the tolerance relative to the weights
        let lr = if self.optimizer == OptimizerKind::Adam { 1e-6 } else { 0.05 };
        OptimizerSpec { kind: self.optimizer, lr, weight_decay: 1e-3, ..Default::default() }
    }
}

/// Max relative difference of every tensor; panics on NaN, on missing tensors and beyond `tol`.
fn compare(what: &str, cpu: &StepTrace, gpu: &StepTrace, tol: f64) {
    for d in diffs(cpu, gpu).unwrap_or_else(|e| panic!("{what}: {e:#}")) {
        let name = &d.name;
        if let Some(i) = d.nonfinite {
            panic!("{what}: {name}[{i}] is {} on the GPU (an element no kernel wrote?)", tensor(gpu, name)[i]);
        }
        let tol = tolerance_for(name, tol);
        assert!(d.max_rel <= tol, "{what}: {name}[{}] gpu {} cpu {} — max relative difference {:.2e} > {tol:.0e}", d.worst, d.gpu, d.cpu, d.max_rel);
    }
}

fn tensor<'a>(t: &'a StepTrace, name: &str) -> &'a [f64] {
    &t.tensors.iter().find(|(n, _)| n == name).unwrap().1
}

/// Runs every case with every kernel configuration; returns the (kernel, shape, vec4) seen.
fn run_cases(cases: &[Case]) -> BTreeSet<(String, [usize; 3], bool)> {
    let mut seen = BTreeSet::new();
    let configs = configs();
    for (ci, case) in cases.iter().enumerate() {
        let spec = case.spec();
        let opt = case.optimizer();
        let mut rng = ChaCha8Rng::seed_from_u64(1000 + ci as u64);
        let data = Arc::new(dataset(&spec, case.batch + 7, case.float_pixels, &mut rng));
        let p = params(&spec, &mut rng);
        // a random subset in random order, so the gather's index path matters too
        let mut idx: Vec<u32> = (0..data.len() as u32).collect();
        for i in (1..idx.len()).rev() {
            idx.swap(i, rng.random_range(0..=i));
        }
        idx.truncate(case.batch);

        let want = reference_step(&spec, &opt, &data, &p, &idx).unwrap();

        for (cname, config) in &configs {
            let what = format!("case '{}' ({:?}, batch {}) with {cname} kernels", case.name, case.layers, case.batch);
            let (got, gpu) = gpu_step(Gpu::new(None, true).unwrap(), *config, &spec, &opt, &data, &p, &idx).unwrap_or_else(|e| panic!("{what}: {e:#}"));
            compare(&what, &want, &got, TOLERANCE);
            for (kind, shape, vec4) in layer_shapes(&spec, case.batch, &gpu) {
                assert!(!vec4 || config.vec4(), "{what}: {kind:?} uses vec4 under the scalar config");
                let [a, b, c] = shape;
                let widths_of_4 = match kind {
                    Matmul::Forward | Matmul::BackwardData => b % 4 == 0 && c % 4 == 0,
                    Matmul::WeightGrad => a % 4 == 0 && c % 4 == 0,
                };
                assert!(!vec4 || widths_of_4, "{what}: {kind:?} {shape:?} uses vec4 with widths not multiples of 4");
                seen.insert((format!("{kind:?}"), shape, vec4));
            }
        }
    }
    seen
}

fn case(name: &'static str, layers: &[usize], activations: &[Activation], loss: Loss, reduction: Reduction, optimizer: OptimizerKind, batch: usize) -> Case {
    Case { name, layers: layers.to_vec(), activations: activations.to_vec(), loss, reduction, optimizer, batch, float_pixels: false, input_norm: InputNorm::IDENTITY }
}

use Activation::*;

/// Degenerate and odd shapes: 1×1, 1×784, 784×1, 33×65×17, widths and batches that are not
/// multiples of 4 or of any tile. The scalar kernels, and vec4 where both widths are multiples
/// of 4.
#[test]
fn odd_shapes_match_cpu() {
    if !have_adapter() {
        return;
    }
    let cases = [
        // forward 1×1×1, weight_grad 1×1×1
        case("1x1", &[1, 1], &[Sigmoid], Loss::HalfSse, Reduction::Mean, OptimizerKind::Sgd, 1),
        // forward 1×784×1 (vec4), weight_grad 1×1×784
        case("one neuron on 784 inputs", &[784, 1], &[Sigmoid], Loss::BinaryCrossEntropy, Reduction::Mean, OptimizerKind::Adam, 1),
        // forward 1×1×784, weight_grad 784×1×1
        case("784 outputs of 1 input", &[1, 784], &[Identity], Loss::Sse, Reduction::Sum, OptimizerKind::Momentum, 1),
        // 784 rows: forward 784×1×8 and 784×8×2 (vec4), backward_data 784×2×8, weight_grad 8×784×1, 2×784×8
        case("784 rows", &[1, 8, 2], &[Tanh, Softmax], Loss::CrossEntropy, Reduction::Mean, OptimizerKind::Nesterov, 784),
        // forward 33×65×17, backward_data 33×65×17 (layer 2), weight_grad 17×33×65, 65×33×17, 3×33×65
        case("33x65x17", &[65, 17, 65, 3], &[LeakyRelu, Relu, Softmax], Loss::CrossEntropy, Reduction::Mean, OptimizerKind::Adam, 33),
        // weight_grad 33×65×17
        case("33x65x17 weight grad", &[17, 33], &[Tanh], Loss::HalfSse, Reduction::Sum, OptimizerKind::Sgd, 65),
    ];
    let seen = run_cases(&cases);
    for (kind, shape, vec4) in [
        ("Forward", [1, 1, 1], false),
        ("WeightGrad", [1, 1, 1], false),
        // a forward product with outputs not a multiple of 4 always runs scalar (matmul_vec4.wgsl)
        ("Forward", [1, 784, 1], false),
        ("WeightGrad", [1, 1, 784], false),
        ("Forward", [1, 1, 784], false),
        ("WeightGrad", [784, 1, 1], false),
        ("Forward", [784, 1, 8], false),
        ("Forward", [784, 8, 2], false),
        ("Forward", [33, 65, 17], false),
        ("BackwardData", [33, 65, 17], false),
        ("WeightGrad", [33, 65, 17], false),
    ] {
        assert!(seen.contains(&(kind.to_string(), shape, vec4)), "no case ran {kind} {shape:?} (vec4: {vec4})");
    }
}

/// Shapes the vec4 kernels take, chosen to miss every tile: batches of 9, 33, 100 and 150 rows
/// (not multiples of 8 or 32), widths of 12, 20, 36, 44, 132, 140 (not multiples of 8 or 16),
/// products spanning several workgroup tiles of every size (32, 64, 128) in each dimension with
/// a partial tile at the end, an output of 10 (always the scalar forward kernel: its rows are
/// not vec4-aligned), every activation and loss; input normalisation on bytes and on float
/// pixels.
#[test]
fn vec4_shapes_match_cpu() {
    if !have_adapter() {
        return;
    }
    let mut floats = case("784-36-44-10 on float pixels", &[784, 36, 44, 10], &[Sigmoid, LeakyRelu, Softmax], Loss::CrossEntropy, Reduction::Mean, OptimizerKind::Momentum, 100);
    floats.float_pixels = true;
    floats.input_norm = InputNorm { mean: -0.25, std: 1.7 };
    let mut centred = case("68-20-12-8, centred bytes", &[68, 20, 12, 8], &[Relu, Tanh, Sigmoid], Loss::BinaryCrossEntropy, Reduction::Mean, OptimizerKind::Adam, 33);
    centred.input_norm = InputNorm { mean: 0.1307, std: 0.3081 };
    let cases = [
        centred,
        floats,
        case("identity layers", &[12, 16, 4], &[Identity, Identity], Loss::Sse, Reduction::Sum, OptimizerKind::Nesterov, 9),
        case("sigmoid squares", &[16, 8, 4], &[Sigmoid, Sigmoid], Loss::HalfSse, Reduction::Mean, OptimizerKind::Sgd, 5),
        case("several tiles", &[132, 140, 36], &[Relu, Sigmoid], Loss::HalfSse, Reduction::Mean, OptimizerKind::Adam, 150),
    ];
    let seen = run_cases(&cases);
    for (kind, shape) in [
        ("Forward", [33, 68, 20]),
        ("Forward", [100, 36, 44]),
        ("BackwardData", [33, 12, 20]),
        ("BackwardData", [100, 44, 36]),
        ("WeightGrad", [20, 33, 68]),
        ("WeightGrad", [36, 100, 784]),
        ("WeightGrad", [4, 9, 16]),
        ("Forward", [150, 132, 140]),
        ("BackwardData", [150, 36, 140]),
        ("WeightGrad", [140, 150, 132]),
        ("WeightGrad", [36, 150, 140]),
    ] {
        for vec4 in [true, false] {
            assert!(seen.contains(&(kind.to_string(), shape, vec4)), "no case ran {kind} {shape:?} (vec4: {vec4})");
        }
    }
    // an output of 10 (seed001's last layer): the scalar forward kernel, whatever the config
    assert!(seen.contains(&("Forward".to_string(), [100, 44, 10], false)));
    assert!(!seen.contains(&("Forward".to_string(), [100, 44, 10], true)));
}

/// A step larger than one micro-batch (8192 rows): the weight gradients of the micro-batches
/// accumulate before the update, in the scalar and the vec4 weight_grad alike.
#[test]
fn accumulated_micro_batches_match_cpu() {
    if !have_adapter() {
        return;
    }
    for (name, layers) in [("vec4", [8usize, 4]), ("scalar", [7, 5])] {
        let spec = ModelSpec { layers: layers.to_vec(), activations: vec![Sigmoid], loss: Loss::HalfSse, label_smoothing: 0.0, reduction: Reduction::Mean, input_norm: Default::default(), feature_norm: None, classes: Vec::new() };
        let opt = OptimizerSpec { kind: OptimizerKind::Sgd, lr: 1.0, ..Default::default() };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let batch = 8192 + 37;
        let data = Arc::new(dataset(&spec, batch, false, &mut rng));
        let p = params(&spec, &mut rng);
        let idx: Vec<u32> = (0..batch as u32).rev().collect();
        let mut cpu = ReferenceBackend::new(&spec, &opt);
        cpu.set_params(&p).unwrap();
        cpu.attach(Split::Train, data.clone()).unwrap();
        cpu.train_steps(&idx, batch, &[1.0]).unwrap();
        let want = cpu.params().unwrap();
        for (cname, config) in configs() {
            let mut gpu = GpuBackend::with_config(Gpu::new(None, true).unwrap(), &spec, &opt, batch, false, config).unwrap();
            assert!(gpu.rows_cap() < batch, "the step must not fit one micro-batch");
            assert_eq!(gpu.uses_vec4(0, Matmul::WeightGrad), config.vec4() && name == "vec4");
            gpu.set_params(&p).unwrap();
            gpu.attach(Split::Train, data.clone()).unwrap();
            gpu.train_steps(&idx, batch, &[1.0]).unwrap();
            let got = gpu.params().unwrap();
            // compare the updates (w − w0 = −∂W with lr 1). Tolerance 1e-4, not 1e-5: each
            // gradient is a sum over 8229 rows in f32, whose rounding grows with the row count
            let step = |q: &Params| -> StepTrace {
                StepTrace {
                    tensors: q.layers.iter().zip(&p.layers).flat_map(|(l, l0)| {
                        [
                            ("weight step".to_string(), l.weight.iter().zip(&l0.weight).map(|(a, b)| a - b).collect()),
                            ("bias step".to_string(), l.bias.iter().zip(&l0.bias).map(|(a, b)| a - b).collect()),
                        ]
                    }).collect(),
                }
            };
            compare(&format!("{name} layer, {cname} kernels, {batch} rows"), &step(&want), &step(&got), 1e-4);
        }
    }
}

/// The GPU backend's own constructor (the adapter's kernel choice) on a seed001-shaped network.
#[test]
fn default_backend_matches_cpu() {
    if !have_adapter() {
        return;
    }
    let spec = ModelSpec { layers: vec![784, 128, 64, 10], activations: vec![Relu, Relu, Softmax], loss: Loss::CrossEntropy, label_smoothing: 0.0, reduction: Reduction::Mean, input_norm: Default::default(), feature_norm: None, classes: Vec::new() };
    let opt = OptimizerSpec { kind: OptimizerKind::Adam, lr: 1e-6, ..Default::default() };
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let data = Arc::new(dataset(&spec, 100, false, &mut rng));
    let p = params(&spec, &mut rng);
    let idx: Vec<u32> = (0..64).map(|i| (i * 37 % 100) as u32).collect();
    let mut cpu = ReferenceBackend::new(&spec, &opt);
    cpu.set_params(&p).unwrap();
    cpu.attach(Split::Train, data.clone()).unwrap();
    let want = cpu.trace_step(&idx, opt.lr).unwrap();
    let mut gpu = GpuBackend::with_gpu(Gpu::new(None, true).unwrap(), &spec, &opt, 64, false, &KernelChoice::Default).unwrap();
    gpu.set_params(&p).unwrap();
    gpu.attach(Split::Train, data).unwrap();
    gpu.poison().unwrap();
    let got = gpu.trace_step(&idx, opt.lr).unwrap();
    compare(&format!("seed001 shapes, {:?}", gpu.kernel_config()), &want, &got, TOLERANCE);
}

/// Label smoothing, AdamW, the max-norm constraint and gradient clipping by global norm (issue
/// 24), each alone and all together, on shapes that are no multiple of any tile: the GPU's step
/// against the f64 reference, work buffers (and clipping's sums) poisoned first. Clipping also
/// on 1.06 M parameters, more vec4s than the partial sums' 1024 workgroups of 256 cover in one
/// pass (so each thread sums several); smoothing's loss also through an evaluation.
#[test]
fn regularisers_match_cpu() {
    if !have_adapter() {
        return;
    }
    let spec = |layers: &[usize], acts: &[Activation], eps: f64| ModelSpec {
        layers: layers.to_vec(), activations: acts.to_vec(), loss: Loss::CrossEntropy, label_smoothing: eps,
        reduction: Reduction::Mean, input_norm: Default::default(), feature_norm: None, classes: Vec::new(),
    };
    let momentum = OptimizerSpec { kind: OptimizerKind::Momentum, lr: 0.05, ..Default::default() };
    // Adam's step is ±η wherever a gradient is tiny, whatever its rounding: a small η keeps that
    // below the tolerance; a large λ makes the decoupled decay (1 − ηλ = 0.99) visible
    let adamw = OptimizerSpec { kind: OptimizerKind::AdamW, lr: 1e-6, weight_decay: 1e4, ..Default::default() };
    let odd = [13, 7, 5];
    let cases = [
        ("label smoothing", spec(&odd, &[Tanh, Softmax], 0.1), momentum.clone(), 9),
        ("adamw", spec(&odd, &[Relu, Softmax], 0.0), adamw.clone(), 9),
        ("max-norm", spec(&odd, &[Tanh, Softmax], 0.0), OptimizerSpec { max_norm: 1.1, ..momentum.clone() }, 9),
        ("clip-norm", spec(&odd, &[Tanh, Softmax], 0.0), OptimizerSpec { clip_norm: Some(0.05), ..momentum.clone() }, 9),
        ("clip-norm, several partial sums", spec(&[67, 33, 10], &[Sigmoid, Softmax], 0.0), OptimizerSpec { clip_norm: Some(0.05), ..momentum.clone() }, 33),
        ("clip-norm, 1.06 M parameters", spec(&[1025, 1031, 3], &[Tanh, Softmax], 0.0), OptimizerSpec { clip_norm: Some(0.01), ..momentum.clone() }, 3),
        ("max-norm, 65 units", spec(&[36, 65, 10], &[LeakyRelu, Softmax], 0.0), OptimizerSpec { max_norm: 1.15, ..momentum.clone() }, 17),
        ("all together", spec(&odd, &[Tanh, Softmax], 0.1), OptimizerSpec { max_norm: 1.1, clip_norm: Some(0.05), ..adamw }, 9),
    ];
    let gpu = Gpu::new(None, true).unwrap();
    let (_, config) = configs().into_iter().next().unwrap();
    for (ci, (name, spec, opt, batch)) in cases.into_iter().enumerate() {
        spec.validate().unwrap();
        opt.validate().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(2400 + ci as u64);
        let data = Arc::new(dataset(&spec, batch + 7, false, &mut rng));
        let p = params(&spec, &mut rng);
        let idx: Vec<u32> = (0..batch).map(|i| ((i * 5 + 3) % (batch + 7)) as u32).collect();
        let want = reference_step(&spec, &opt, &data, &p, &idx).unwrap();
        let (got, mut b) = gpu_step(gpu.clone(), config, &spec, &opt, &data, &p, &idx).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        compare(&format!("regulariser case '{name}' ({:?}, batch {batch})", spec.layers), &want, &got, TOLERANCE);
        if spec.label_smoothing > 0.0 {
            let mut cpu = ReferenceBackend::new(&spec, &opt);
            cpu.set_params(&p).unwrap();
            cpu.attach(Split::Train, data.clone()).unwrap();
            b.set_params(&p).unwrap();
            let (c, g) = (cpu.evaluate(Split::Train).unwrap(), b.evaluate(Split::Train).unwrap());
            assert!((c.loss_sum - g.loss_sum).abs() <= 1e-5 * c.loss_sum, "{name}: evaluated loss gpu {} vs cpu {}", g.loss_sum, c.loss_sum);
            assert_eq!(c.predictions, g.predictions, "{name}");
        }
    }
}

/// Parameters and optimiser state go in and out per tensor, around the alignment gaps.
#[test]
fn parameters_and_state_round_trip() {
    if !have_adapter() {
        return;
    }
    let spec = ModelSpec { layers: vec![3, 5, 2], activations: vec![Tanh, Sigmoid], loss: Loss::HalfSse, label_smoothing: 0.0, reduction: Reduction::Mean, input_norm: Default::default(), feature_norm: None, classes: Vec::new() };
    let opt = OptimizerSpec { kind: OptimizerKind::Adam, ..Default::default() };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let p = params(&spec, &mut rng);
    let mut gpu = GpuBackend::with_gpu(Gpu::new(None, true).unwrap(), &spec, &opt, 4, false, &KernelChoice::Default).unwrap();
    gpu.set_params(&p).unwrap();
    let f32_round = |v: &[f64]| v.iter().map(|&x| x as f32 as f64).collect::<Vec<_>>();
    let back = gpu.params().unwrap();
    for (a, b) in back.layers.iter().zip(&p.layers) {
        assert_eq!(a.weight, f32_round(&b.weight));
        assert_eq!(a.bias, f32_round(&b.bias));
    }
    let mut st = gpu.optimizer_state().unwrap();
    assert!(st.slots.iter().flatten().flatten().flatten().all(|&x| x == 0.0), "set_params resets the state");
    for x in st.slots.iter_mut().flatten().flatten().flatten() {
        *x = rng.random_range(-1.0..1.0);
    }
    st.step = 17;
    gpu.set_optimizer_state(&st).unwrap();
    let back = gpu.optimizer_state().unwrap();
    assert_eq!(back.step, 17);
    for (a, b) in back.slots.iter().flatten().flatten().zip(st.slots.iter().flatten().flatten()) {
        assert_eq!(a, &f32_round(b));
    }
    // and the parameters are untouched by the state upload
    assert_eq!(gpu.params().unwrap().layers[1].bias, f32_round(&p.layers[1].bias));
}

/// The traces' every value, as bits.
fn trace_bits(t: &StepTrace) -> Vec<u64> {
    t.tensors.iter().flat_map(|(_, v)| v.iter().map(|x| x.to_bits())).collect()
}

/// Races show as results that differ between runs of the same work. Every configuration the
/// adapter runs, and the plain kernels with other workgroup shapes, takes the same step (odd
/// batch, vec4 and scalar layers) four times on one backend, its work buffers poisoned before
/// each: the same bytes every time; the plain kernels give the same bytes whatever their
/// workgroup shape. A digest of the bytes goes into the driver report, which the driver matrix
/// holds equal across lavapipe's thread counts (`LP_NUM_THREADS`).
#[test]
fn repeated_steps_give_identical_bytes() {
    if !have_adapter() {
        return;
    }
    use gpu_nn::gpu::matmul::vec4::{Block, Blocks};
    use std::hash::{DefaultHasher, Hasher};
    let gpu = Gpu::new(None, true).unwrap();
    let spec = case("races", &[64, 36, 20, 10], &[Relu, Tanh, Softmax], Loss::CrossEntropy, Reduction::Mean, OptimizerKind::Adam, 37).spec();
    let opt = OptimizerSpec { kind: OptimizerKind::Adam, lr: 1e-3, ..Default::default() };
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    let data = Arc::new(dataset(&spec, 50, false, &mut rng));
    let p = params(&spec, &mut rng);
    let idx: Vec<u32> = (0..37).map(|i| (i * 7 % 50) as u32).collect();
    let plain = |workgroup: (u32, u32)| KernelConfig::Plain(Blocks { workgroup, ..Blocks::PLAIN });
    let mut runs: Vec<(String, KernelConfig)> = variants(&gpu).into_iter().map(|(n, c)| (n.to_string(), c)).collect();
    for wg in [(4, 16), (16, 4), (32, 2), (1, 64)] {
        if wg.0 * wg.1 <= gpu.limits.max_compute_invocations_per_workgroup {
            runs.push((format!("plain {}x{}", wg.0, wg.1), plain(wg)));
        }
    }
    let big = KernelConfig::Plain(Blocks { forward: Block { rows: 2, cols: 8 }, ..Blocks::SOFTWARE });
    runs.push(("plain-software, 2x8 forward blocks".into(), big));
    let mut digest = DefaultHasher::new();
    let mut plain_bits: Option<Vec<u64>> = None;
    for (name, config) in &runs {
        let mut b = gpu_nn::core::Engines::with_gpu(Default::default(), gpu.clone()).build_with_kernels(&spec, &opt, idx.len(), *config).unwrap();
        b.attach(Split::Train, data.clone()).unwrap();
        let mut first: Option<Vec<u64>> = None;
        for run in 0..4 {
            b.set_params(&p).unwrap();
            b.poison().unwrap();
            let bits = trace_bits(&b.trace_step(&idx, opt.lr).unwrap());
            match &first {
                None => first = Some(bits),
                Some(f) => assert!(*f == bits, "{name}: run {run} differs from run 0 ({} of {} values)", f.iter().zip(&bits).filter(|(a, b)| a != b).count(), f.len()),
            }
        }
        let bits = first.unwrap();
        if name.starts_with("plain") && !name.starts_with("plain-software") {
            match &plain_bits {
                None => plain_bits = Some(bits.clone()),
                Some(p) => assert!(*p == bits, "{name}: the plain kernels give other bytes with this workgroup shape"),
            }
        }
        digest.write(name.as_bytes());
        bits.iter().for_each(|&x| digest.write_u64(x));
    }
    println!("driver report: {} ran {} configurations 4 times each, identical bytes; determinism digest {:016x}", gpu.info.name, runs.len(), digest.finish());
}

/// The matmul kernels run without runtime bounds checks on Vulkan; the host refuses every
/// product that could index outside its buffers: no rows, more rows than a micro-batch holds,
/// a layer that is not there, the backward product of the first layer.
#[test]
fn the_host_refuses_products_that_could_index_out_of_range() {
    if !have_adapter() {
        return;
    }
    let spec = case("bounds", &[36, 20, 12], &[Relu, Softmax], Loss::CrossEntropy, Reduction::Mean, OptimizerKind::Sgd, 8).spec();
    let mut b = GpuBackend::with_gpu(Gpu::new(None, true).unwrap(), &spec, &OptimizerSpec::default(), 8, false, &KernelChoice::Named(gpu_nn::gpu::KernelName::Plain)).unwrap();
    let cap = b.rows_cap();
    for (kind, l, rows) in [(Matmul::Forward, 1, 0), (Matmul::Forward, 1, cap + 1), (Matmul::Forward, 0, 4), (Matmul::Forward, 3, 4), (Matmul::WeightGrad, 3, 4), (Matmul::BackwardData, 1, 4)] {
        let e = b.time_matmul(kind, l, rows, 1).err().unwrap_or_else(|| panic!("{kind:?} of layer {l} on {rows} rows was dispatched"));
        assert!(e.to_string().contains("no ") && e.to_string().contains(&format!("layer {l} on {rows} rows")), "{e}");
    }
    for (kind, l) in [(Matmul::Forward, 1), (Matmul::Forward, 2), (Matmul::BackwardData, 2), (Matmul::WeightGrad, 1), (Matmul::WeightGrad, 2)] {
        b.time_matmul(kind, l, cap, 1).unwrap_or_else(|e| panic!("{kind:?} of layer {l} on {cap} rows: {e:#}"));
        b.time_matmul(kind, l, 1, 1).unwrap_or_else(|e| panic!("{kind:?} of layer {l} on 1 row: {e:#}"));
    }
}

/// The subgroup kernels are written for any width that is a multiple of 4: those of 4, 16, 32
/// and 64 lanes (NVIDIA's 32, AMD's 64, which no adapter here has) compile on this adapter too,
/// where it has subgroups (running them needs that width; `repeated_steps…` and the matches
/// above run the adapter's own).
#[test]
fn subgroup_kernels_of_every_width_compile() {
    if !have_adapter() {
        return;
    }
    let gpu = Gpu::new(None, true).unwrap();
    if !gpu.features.contains(wgpu::Features::SUBGROUP) {
        return println!("driver report: {} has no subgroups; the subgroup kernels were not compiled", gpu.info.name);
    }
    use gpu_nn::gpu::kernels::{MatmulDims, ParamBlocks, kernel};
    use gpu_nn::gpu::matmul::subgroup::Blocks;
    use gpu_nn::gpu::matmul::vec4::VEC4_HEADER;
    for lanes in [4, 8, 16, 32, 64] {
        let config = KernelConfig::Subgroup(Blocks::for_lanes(lanes).unwrap());
        for kind in Matmul::ALL {
            let g = config.generate(kind).unwrap();
            let source = format!("{VEC4_HEADER}\n{}", g.source);
            kernel(&gpu, &source, kind.entry(), std::mem::size_of::<MatmulDims>() as u64, &[false, false, false, true, false], ParamBlocks::Uniform)
                .unwrap_or_else(|e| panic!("{lanes} lanes, {kind:?}: {e:#}"));
        }
    }
}

/// Which adapter these tests ran on and which kernel configurations it runs (and why not the
/// others): `driver report:` lines, which `on_every_driver` prints per driver.
#[test]
fn driver_report() {
    if !have_adapter() {
        return;
    }
    let gpu = Gpu::new(None, true).unwrap();
    let (mut ran, mut not) = (Vec::new(), Vec::new());
    for n in gpu_nn::gpu::KernelName::ALL {
        match n.config().for_adapter(&gpu.info, gpu.features).unsupported(&gpu.info, gpu.features, &gpu.limits) {
            None => ran.push(n.to_string()),
            Some(why) => not.push(format!("{n} ({why})")),
        }
    }
    let i = &gpu.info;
    println!(
        "driver report: {} ({:?}, subgroups {}..{}): kernel configurations run: {}; not supported: {}",
        i.name,
        i.backend,
        i.subgroup_min_size,
        i.subgroup_max_size,
        ran.join(", "),
        if not.is_empty() { "none".into() } else { not.join("; ") }
    );
}

/// Every test above again on each GPU implementation the machine has (lavapipe, SwiftShader,
/// llvmpipe's OpenGL), each in a process of its own.
#[test]
fn on_every_driver() {
    common::drivers::rerun_on_every_driver("on_every_driver");
}
