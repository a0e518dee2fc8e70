//! Throughput of the GPU matmul kernels and of seed001 training, per kernel configuration:
//! the scalar kernels (what every layer ran before the vec4 kernels) against the adapter's
//! choice (`KernelConfig::default_for`).
//!
//!   cargo bench --bench kernels                 all shapes, then one seed001 epoch
//!   cargo bench --bench kernels -- --no-train   kernels only
//!   cargo bench --bench kernels -- --configs scalar,plain,plain-software,subgroup,auto
//!
//! Shapes are M×K×N of each product: forward Z[M×N] = A[M×K]·Wᵀ (M = batch), backward_data
//! δ[M×N] = δ'[M×K]·W, weight_grad ∂W[M×N] = δᵀ·A over K batch rows. A kernel's time is taken
//! over repeated dispatches in one submission after a warm-up (lavapipe compiles a shader at
//! its first dispatch), so it includes the per-dispatch overhead (~25 µs on lavapipe), which
//! dominates the small shapes. GFLOP/s counts 2·M·K·N. On a shared machine the "per CPU-s"
//! column (flops / CPU seconds of this process, all threads) is steadier than wall time.
//!
//! The training run reads MNIST from $GPU_NN_DATA, else the project's shared data beside the
//! checkout (`../shared/datasets/mnist`, as the tests do), and is skipped if the files are not
//! there.
//!
//! Shapes, variants and timing are the kernel workbench's (`gpu_nn::workbench::matmul`), which
//! `gpu-nn bench --kernels` and the kernel tests use too.

use gpu_nn::nn::backend::{Backend, Split};
use gpu_nn::nn::init::{Init, initialize};
use gpu_nn::nn::model::{Activation, Loss, ModelSpec, Reduction};
use gpu_nn::nn::optim::{OptimizerKind, OptimizerSpec};
use gpu_nn::data::Dataset;
use gpu_nn::gpu::{Gpu, GpuBackend, KernelConfig, Matmul};
use gpu_nn::workbench::matmul::{cpu_seconds, gflops, shapes, time_gpu, variant};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

fn bench_kernel(cfg: KernelConfig, kind: Matmul, shape: [usize; 3]) -> anyhow::Result<String> {
    // about a second of repetitions after the warm-up
    let t = time_gpu(Gpu::new(None, true)?, cfg, kind, shape, 1.0)?;
    let vec4 = if t.vec4 { "vec4" } else { "scalar" };
    Ok(format!(
        "{:>10.1} µs  {:>7.2} GFLOP/s  {:>7}  ({vec4}, {} reps)",
        t.seconds * 1e6,
        gflops(shape, t.seconds),
        t.cpu_seconds.map(|c| format!("{:.2}", gflops(shape, c))).unwrap_or("-".into()),
        t.reps,
    ))
}

/// One epoch of seed001 (784-128-64-10 relu/relu/softmax, cross-entropy, Adam 1e-3, batch 64)
/// through `train_steps` in chunks of 64 steps like the trainer; returns samples/s.
fn bench_training(cfg: KernelConfig, train: &Arc<Dataset>) -> anyhow::Result<f64> {
    let spec = ModelSpec {
        layers: vec![784, 128, 64, 10],
        activations: vec![Activation::Relu, Activation::Relu, Activation::Softmax],
        loss: Loss::CrossEntropy,
        label_smoothing: 0.0,
        reduction: Reduction::Mean,
        input_norm: Default::default(),
        feature_norm: None,
        classes: Vec::new(),
    };
    let opt = OptimizerSpec { kind: OptimizerKind::Adam, lr: 1e-3, ..Default::default() };
    let batch = 64;
    let mut b = GpuBackend::with_config(Gpu::new(None, true)?, &spec, &opt, batch, false, cfg)?;
    b.set_params(&initialize(&spec, Init::GlorotUniform, 1)?)?;
    b.attach(Split::Train, train.clone())?;
    let n = train.len();
    let order: Vec<u32> = (0..n as u32).map(|i| (i as u64 * 7919 % n as u64) as u32).collect();
    let chunk = 64 * batch;
    // warm-up: compiles every kernel
    b.train_steps(&order[..chunk], batch, &[1e-3; 64])?;
    let t = Instant::now();
    for part in order.chunks(chunk) {
        let steps = part.len().div_ceil(batch);
        b.train_steps(part, batch, &vec![1e-3; steps])?;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let train = !args.iter().any(|a| a == "--no-train");
    let names: Vec<String> = args
        .iter()
        .position(|a| a == "--configs")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_string).collect())
        .unwrap_or_else(|| vec!["scalar".into(), "auto".into()]);
    let gpu = match Gpu::new(None, true) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("no GPU: {e:#}");
            return Ok(());
        }
    };
    println!("adapter: {} ({:?}), subgroups {}..{}", gpu.info.name, gpu.info.backend, gpu.info.subgroup_min_size, gpu.info.subgroup_max_size);
    let mut configs: Vec<(String, KernelConfig)> = Vec::new();
    for n in &names {
        match n.parse().and_then(|sel| variant(sel, &gpu)) {
            Ok(c) => configs.push((n.clone(), c)),
            Err(e) => println!("{n}: skipped, {e:#}"),
        }
    }
    drop(gpu);
    let shapes = shapes(&[1024]);
    println!("{:<14} {:<16} {:<16} {:>13}  {:>15}  {:>7}", "kernel", "M×K×N", "config", "per dispatch", "wall", "per CPU-s");
    for (kind, shape) in &shapes {
        for (name, cfg) in &configs {
            let r = bench_kernel(*cfg, *kind, *shape).unwrap_or_else(|e| format!("error: {e:#}"));
            println!("{:<14} {:<16} {:<16} {r}", format!("{kind:?}"), format!("{}×{}×{}", shape[0], shape[1], shape[2]), name);
        }
    }
    if train {
        let dir = std::env::var_os("GPU_NN_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/datasets/mnist")));
        let (img, lab) = (dir.join("train-images-idx3-ubyte.gz"), dir.join("train-labels-idx1-ubyte.gz"));
        if !img.exists() || !lab.exists() {
            println!("seed001 training: skipped, no MNIST in {} (set GPU_NN_DATA)", dir.display());
            return Ok(());
        }
        let data = Arc::new(Dataset::load(&img, &lab, 10)?);
        for (name, cfg) in &configs {
            let c0 = cpu_seconds();
            let t = Instant::now();
            let sps = bench_training(*cfg, &data)?;
            let cpu = cpu_seconds().zip(c0).map(|(a, b)| (a - b) / t.elapsed().as_secs_f64());
            println!(
                "seed001 epoch (60000 samples, batch 64, Adam): {name:<16} {sps:>8.0} samples/s  (CPU use {} cores)",
                cpu.map(|c| format!("{c:.2}")).unwrap_or("-".into())
            );
        }
    }
    Ok(())
}
