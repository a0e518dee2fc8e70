//! `gpu-nn bench`: training throughput of the CPU fast path and the GPU side by side in one
//! process, on real data: samples/s, time per step and where it goes, achieved GFLOP/s,
//! dispatches and submissions per step, and the GPU/CPU ratio. Warm-up excluded, median of
//! several repeats.

use crate::backend::{Backend, Split};
use crate::config::{Config, preset_json};
use crate::cpu::FastBackend;
use crate::data::RunData;
use crate::gpu::GpuBackend;
use crate::model::ModelSpec;
use anyhow::Result;
use serde::Serialize;
use serde_json::{Value, json};
use std::time::Instant;

/// FLOPs of one training sample: forward 2·Σ in·out, weight gradient the same, and the
/// backward product for every layer but the first.
pub fn train_flops_per_sample(spec: &ModelSpec) -> f64 {
    let macs: Vec<f64> = (0..spec.num_layers()).map(|i| (spec.layers[i] * spec.layers[i + 1]) as f64).collect();
    2.0 * (2.0 * macs.iter().sum::<f64>() + macs[1..].iter().sum::<f64>())
}

/// The default set: doc 001, doc 000 and a wide network.
pub fn default_cases() -> Vec<(String, Vec<Value>)> {
    vec![
        ("seed001".into(), vec![preset_json("seed001").unwrap()]),
        ("seed000-mnist".into(), vec![preset_json("seed000-mnist").unwrap()]),
        (
            "wide 784-1024-1024-10".into(),
            vec![json!({
                "model": {"layers": [784, 1024, 1024, 10], "activations": ["relu", "relu", "softmax"], "loss": "cross_entropy", "reduction": "mean"},
                "optimizer": {"kind": "adam", "lr": 0.001},
                "training": {"batch_size": 256}
            })],
        ),
    ]
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct BackendRow {
    pub backend: String,
    pub samples_per_sec: f64,
    pub ms_per_step: f64,
    pub gflops: f64,
    /// Host-clock split of a step (GPU only): uploads, recording, device compute, readback.
    pub upload_ms: Option<f64>,
    pub encode_ms: Option<f64>,
    pub compute_ms: Option<f64>,
    pub readback_ms: Option<f64>,
    pub dispatches_per_step: Option<f64>,
    pub submissions_per_step: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    pub case: String,
    pub layers: Vec<usize>,
    pub batch: usize,
    pub steps: usize,
    pub repeats: usize,
    pub rows: Vec<BackendRow>,
    /// GPU samples/s over CPU samples/s.
    pub gpu_over_cpu: Option<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Times `steps` training steps `repeats` times after one warm-up run; returns the median.
fn time_backend(b: &mut dyn Backend, order: &[u32], batch: usize, steps: usize, repeats: usize, lr: f64) -> Result<f64> {
    let n = order.len();
    let per = (steps * batch).min(n);
    let lrs = vec![lr; steps];
    b.train_steps(&order[..per], batch, &lrs)?;
    let mut times = Vec::new();
    for r in 0..repeats {
        let lo = (r * per) % (n - per + 1);
        let t = Instant::now();
        b.train_steps(&order[lo..lo + per], batch, &lrs)?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(median(times))
}

pub fn run_case(name: &str, cfg: &Config, data: &RunData, steps: usize, repeats: usize, adapter: Option<&str>, with_gpu: bool) -> Result<CaseResult> {
    let n = data.train.len();
    let batch = cfg.training.batch_size.resolve(n).min(n);
    let steps = steps.min(n / batch).max(1);
    let order = crate::train::epoch_order(cfg, n, 0);
    let params = cfg.initial_params()?;
    let flops = train_flops_per_sample(&cfg.model);
    let samples = (steps * batch) as f64;
    let mut rows = Vec::new();

    let mut cpu = FastBackend::new(&cfg.model, &cfg.optimizer);
    cpu.set_params(&params)?;
    cpu.attach(Split::Train, data.train.clone())?;
    let t = time_backend(&mut cpu, &order, batch, steps, repeats, cfg.optimizer.lr)?;
    rows.push(BackendRow {
        backend: cpu.describe(),
        samples_per_sec: samples / t,
        ms_per_step: 1e3 * t / steps as f64,
        gflops: flops * samples / t / 1e9,
        ..Default::default()
    });

    if with_gpu {
        let mut gpu = GpuBackend::new(&cfg.model, &cfg.optimizer, batch, adapter, cfg.backend.stream, true)?;
        gpu.set_params(&params)?;
        gpu.attach(Split::Train, data.train.clone())?;
        // warm-up outside the counters: the first dispatch JIT-compiles the shaders
        let per = (steps * batch).min(n);
        gpu.train_steps(&order[..per], batch, &vec![cfg.optimizer.lr; steps])?;
        let (d0, s0, t0) = (gpu.dispatches, gpu.submissions, gpu.timing);
        let t = time_backend(&mut gpu, &order, batch, steps, repeats, cfg.optimizer.lr)?;
        // counters cover the timed repeats plus time_backend's own warm-up run
        let runs = (repeats + 1) as f64 * steps as f64;
        let ms = |d: std::time::Duration, d0: std::time::Duration| Some(1e3 * (d - d0).as_secs_f64() / runs);
        rows.push(BackendRow {
            backend: gpu.describe(),
            samples_per_sec: samples / t,
            ms_per_step: 1e3 * t / steps as f64,
            gflops: flops * samples / t / 1e9,
            upload_ms: ms(gpu.timing.upload, t0.upload),
            encode_ms: ms(gpu.timing.encode, t0.encode),
            compute_ms: ms(gpu.timing.compute, t0.compute),
            readback_ms: ms(gpu.timing.readback, t0.readback),
            dispatches_per_step: Some((gpu.dispatches - d0) as f64 / runs),
            submissions_per_step: Some((gpu.submissions - s0) as f64 / runs),
        });
    }
    let gpu_over_cpu = (rows.len() == 2).then(|| rows[1].samples_per_sec / rows[0].samples_per_sec);
    Ok(CaseResult { case: name.into(), layers: cfg.model.layers.clone(), batch, steps, repeats, rows, gpu_over_cpu })
}

pub fn print(results: &[CaseResult]) {
    let opt = |v: Option<f64>, p: usize| v.map(|x| format!("{x:.p$}")).unwrap_or_else(|| "-".into());
    for r in results {
        println!(
            "\n{} ({}; batch {}; {} steps x {} repeats, median)",
            r.case,
            r.layers.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("-"),
            r.batch,
            r.steps,
            r.repeats
        );
        println!(
            "{:<44} {:>11} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8}",
            "backend", "samples/s", "ms/step", "GFLOP/s", "upload", "encode", "compute", "readback", "disp/step", "sub/step"
        );
        for b in &r.rows {
            println!(
                "{:<44} {:>11.0} {:>9.3} {:>8.2} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8}",
                b.backend.chars().take(44).collect::<String>(),
                b.samples_per_sec,
                b.ms_per_step,
                b.gflops,
                opt(b.upload_ms, 3),
                opt(b.encode_ms, 3),
                opt(b.compute_ms, 3),
                opt(b.readback_ms, 3),
                opt(b.dispatches_per_step, 1),
                opt(b.submissions_per_step, 3)
            );
        }
        if let Some(x) = r.gpu_over_cpu {
            println!("GPU/CPU samples/s ratio: {x:.2}");
        }
    }
}

// ---- `gpu-nn bench --kernels`: each matmul variant against the CPU GEMM -------------------

use crate::gpu::trainer::Matmul;
use crate::gpu::{Gpu, KernelConfig};
use crate::math::Real;

/// The shapes (M×K×N) training seed001 uses, then 512×784×512 and 1024³, per kernel.
pub fn kernel_shapes() -> Vec<(Matmul, [usize; 3])> {
    let mut v = vec![
        (Matmul::Forward, [64, 784, 128]),
        (Matmul::Forward, [64, 128, 64]),
        (Matmul::Forward, [64, 64, 10]),
        (Matmul::BackwardData, [64, 10, 64]),
        (Matmul::BackwardData, [64, 64, 128]),
        (Matmul::WeightGrad, [128, 64, 784]),
        (Matmul::WeightGrad, [64, 64, 128]),
        (Matmul::WeightGrad, [10, 64, 64]),
    ];
    for kind in [Matmul::Forward, Matmul::BackwardData, Matmul::WeightGrad] {
        v.push((kind, [512, 784, 512]));
        v.push((kind, [1024, 1024, 1024]));
    }
    v
}

/// The network, batch and layer (1-based) whose `kind` product has the shape M×K×N:
/// forward Z[M×N] = A[M×K]·Wᵀ (M = batch), backward_data δ[M×N] = δ'[M×K]·W,
/// weight_grad ∂W[M×N] = δᵀ·A over K batch rows.
pub fn kernel_network(kind: Matmul, [m, k, n]: [usize; 3]) -> (ModelSpec, usize, usize) {
    let (layers, batch, l) = match kind {
        Matmul::Forward => (vec![k, n], m, 1),
        Matmul::BackwardData => (vec![4, n, k], m, 2),
        Matmul::WeightGrad => (vec![n, m], k, 1),
    };
    let activations = vec![crate::model::Activation::Relu; layers.len() - 1];
    let spec = ModelSpec { layers, activations, loss: crate::model::Loss::HalfSse, reduction: crate::model::Reduction::Mean };
    (spec, batch, l)
}

#[derive(Clone, Debug, Serialize)]
pub struct KernelRow {
    pub kernel: String,
    pub shape: [usize; 3],
    /// "vec4" or "scalar": which implementation the layer used.
    pub variant: String,
    pub gpu_us: f64,
    pub gpu_gflops: f64,
    pub cpu_gflops: f64,
}

/// Seconds per dispatch of one GPU matmul, repeated for about `budget` seconds.
pub fn time_gpu_kernel(gpu: Gpu, config: KernelConfig, kind: Matmul, shape: [usize; 3], budget: f64) -> Result<(f64, bool)> {
    let (spec, batch, l) = kernel_network(kind, shape);
    let mut b = GpuBackend::with_config(gpu, &spec, &crate::optim::OptimizerSpec::default(), batch, false, config)?;
    b.set_params(&crate::init::initialize(&spec, crate::init::Init::GlorotUniform, 1)?)?;
    let once = b.time_matmul(kind, l, batch, 1)?;
    let reps = ((budget / once) as usize).clamp(2, 20_000);
    Ok((b.time_matmul(kind, l, batch, reps)?, b.uses_vec4(l - 1, kind)))
}

/// Seconds per call of the CPU GEMM (matrixmultiply) on the same product and layout.
pub fn time_cpu_gemm(kind: Matmul, [m, k, n]: [usize; 3], budget: f64) -> f64 {
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0f32; m * n];
    // strides as the CPU backend uses them for each product
    let call = |c: &mut [f32]| match kind {
        Matmul::Forward => f32::gemm(m, k, n, 1.0, &a, k, 1, &b, 1, k, 0.0, c, n),
        Matmul::BackwardData => f32::gemm(m, k, n, 1.0, &a, k, 1, &b, n, 1, 0.0, c, n),
        Matmul::WeightGrad => f32::gemm(m, k, n, 1.0, &a, 1, m, &b, n, 1, 0.0, c, n),
    };
    call(&mut c);
    let t = Instant::now();
    let mut reps = 0;
    while t.elapsed().as_secs_f64() < budget || reps < 2 {
        call(&mut c);
        reps += 1;
    }
    t.elapsed().as_secs_f64() / reps as f64
}

pub fn run_kernels(adapter: Option<&str>) -> Result<(String, Vec<KernelRow>)> {
    let probe = Gpu::new(adapter, true)?;
    let device = probe.describe();
    let config = KernelConfig::for_adapter(&probe.info, probe.features, crate::gpu::context::is_software(&probe.info));
    drop(probe);
    let mut rows = Vec::new();
    for (kind, shape) in kernel_shapes() {
        let (gpu_s, vec4) = time_gpu_kernel(Gpu::new(adapter, true)?, config, kind, shape, 0.5)?;
        let cpu_s = time_cpu_gemm(kind, shape, 0.3);
        let flops = 2.0 * (shape[0] * shape[1] * shape[2]) as f64;
        rows.push(KernelRow {
            kernel: format!("{kind:?}"),
            shape,
            variant: if vec4 { "vec4" } else { "scalar" }.into(),
            gpu_us: gpu_s * 1e6,
            gpu_gflops: flops / gpu_s / 1e9,
            cpu_gflops: flops / cpu_s / 1e9,
        });
    }
    Ok((device, rows))
}

pub fn print_kernels(device: &str, rows: &[KernelRow]) {
    println!("matmul kernels on {device} against the CPU GEMM (matrixmultiply, one thread); GFLOP/s = 2·M·K·N / time");
    println!("{:<14} {:>16} {:>8} {:>12} {:>10} {:>10} {:>8}", "kernel", "M×K×N", "variant", "µs/dispatch", "GPU GF/s", "CPU GF/s", "GPU/CPU");
    for r in rows {
        println!(
            "{:<14} {:>16} {:>8} {:>12.1} {:>10.2} {:>10.2} {:>8.2}",
            r.kernel,
            format!("{}×{}×{}", r.shape[0], r.shape[1], r.shape[2]),
            r.variant,
            r.gpu_us,
            r.gpu_gflops,
            r.cpu_gflops,
            r.gpu_gflops / r.cpu_gflops
        );
    }
}
