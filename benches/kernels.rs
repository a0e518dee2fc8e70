//! Throughput of the GPU matmul kernels and of seed001 training, per kernel configuration:
//! the scalar kernels (what every layer ran before the vec4 kernels) against the adapter's
//! choice (`KernelConfig::for_adapter`).
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
//! The training run reads MNIST from $GPU_NN_BENCH_MNIST, else $GPU_NN_DATA, else
//! /work/shared/datasets/mnist, and is skipped if the files are not there.

use gpu_nn::core::backend::{Backend, Split};
use gpu_nn::data::Dataset;
use gpu_nn::gpu::context::is_software;
use gpu_nn::gpu::{Gpu, GpuBackend, KernelConfig, Matmul};
use gpu_nn::core::init::{Init, initialize};
use gpu_nn::core::model::{Activation, Loss, ModelSpec, Reduction};
use gpu_nn::core::optim::{OptimizerKind, OptimizerSpec};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// CPU seconds of this process (all threads), where /proc tells.
fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let f: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
    Some((f[11].parse::<f64>().ok()? + f[12].parse::<f64>().ok()?) / 100.0)
}

fn config(name: &str, gpu: &Gpu) -> Option<KernelConfig> {
    let c = match name {
        "scalar" => KernelConfig::scalar(),
        "plain" => KernelConfig::plain(),
        "plain-software" => KernelConfig::plain_software(),
        "subgroup" => KernelConfig::subgroup(),
        "auto" => KernelConfig::for_adapter(&gpu.info, gpu.features, is_software(&gpu.info)),
        _ => panic!("unknown config '{name}' (scalar, plain, plain-software, subgroup, auto)"),
    };
    c.supported(&gpu.info, gpu.features).then_some(c)
}

fn bench_kernel(cfg: KernelConfig, kind: Matmul, shape: [usize; 3]) -> anyhow::Result<String> {
    let (spec, batch, l) = gpu_nn::commands::bench::kernel_network(kind, shape);
    let opt = OptimizerSpec::default();
    let mut b = GpuBackend::with_config(Gpu::new(None, true)?, &spec, &opt, batch, false, cfg)?;
    b.set_params(&initialize(&spec, Init::GlorotUniform, 1)?)?;
    // one dispatch (after the warm-up) sizes the repetitions to about a second
    let once = b.time_matmul(kind, l, batch, 1)?;
    let reps = ((1.0 / once) as usize).clamp(2, 20_000);
    let c0 = cpu_seconds();
    let per = b.time_matmul(kind, l, batch, reps)?;
    let cpu = cpu_seconds().zip(c0).map(|(a, b)| (a - b) / reps as f64);
    let flops = 2.0 * (shape[0] * shape[1] * shape[2]) as f64;
    let vec4 = if b.uses_vec4(l - 1, kind) { "vec4" } else { "scalar" };
    Ok(format!(
        "{:>10.1} µs  {:>7.2} GFLOP/s  {:>7}  ({vec4}, {reps} reps)",
        per * 1e6,
        flops / per / 1e9,
        cpu.map(|c| format!("{:.2}", flops / c / 1e9)).unwrap_or("-".into()),
    ))
}

fn mnist_dir() -> PathBuf {
    std::env::var_os("GPU_NN_BENCH_MNIST")
        .or_else(|| std::env::var_os("GPU_NN_DATA"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/datasets/mnist"))
}

/// One epoch of seed001 (784-128-64-10 relu/relu/softmax, cross-entropy, Adam 1e-3, batch 64)
/// through `train_steps` in chunks of 64 steps like the trainer; returns samples/s.
fn bench_training(cfg: KernelConfig, train: &Arc<Dataset>) -> anyhow::Result<f64> {
    let spec = ModelSpec {
        layers: vec![784, 128, 64, 10],
        activations: vec![Activation::Relu, Activation::Relu, Activation::Softmax],
        loss: Loss::CrossEntropy,
        reduction: Reduction::Mean,
        input_norm: Default::default(),
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
    let configs: Vec<(String, KernelConfig)> = names.iter().filter_map(|n| config(n, &gpu).map(|c| (n.clone(), c))).collect();
    drop(gpu);
    let shapes = gpu_nn::commands::bench::kernel_shapes();
    println!("{:<14} {:<16} {:<16} {:>13}  {:>15}  {:>7}", "kernel", "M×K×N", "config", "per dispatch", "wall", "per CPU-s");
    for (kind, shape) in &shapes {
        for (name, cfg) in &configs {
            let r = bench_kernel(*cfg, *kind, *shape).unwrap_or_else(|e| format!("error: {e:#}"));
            println!("{:<14} {:<16} {:<16} {r}", format!("{kind:?}"), format!("{}×{}×{}", shape[0], shape[1], shape[2]), name);
        }
    }
    if train {
        let dir = mnist_dir();
        let (img, lab) = (dir.join("train-images-idx3-ubyte.gz"), dir.join("train-labels-idx1-ubyte.gz"));
        if !img.exists() || !lab.exists() {
            println!("seed001 training: skipped, no MNIST in {} (set GPU_NN_BENCH_MNIST)", dir.display());
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
