//! `gpu-nn bench --kernels`: each matmul kernel at the shapes training uses and at 1024³,
//! against the CPU GEMM.

use crate::commands::args::BenchArgs;
use crate::core::backend::Backend;
use crate::core::math::Real;
use crate::core::model::ModelSpec;
use crate::gpu::trainer::Matmul;
use crate::gpu::{Gpu, GpuBackend, KernelConfig};
use anyhow::Result;
use serde::Serialize;
use std::time::Instant;

pub fn run(args: &BenchArgs) -> Result<()> {
    let (device, rows) = run_kernels(args.cfg.adapter.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"device": device, "kernels": rows}))?);
    } else {
        print_kernels(&device, &rows);
    }
    Ok(())
}

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
    let activations = vec![crate::core::model::Activation::Relu; layers.len() - 1];
    let spec = ModelSpec { layers, activations, loss: crate::core::model::Loss::HalfSse, reduction: crate::core::model::Reduction::Mean, input_norm: Default::default() };
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
    let mut b = GpuBackend::with_config(gpu, &spec, &crate::core::optim::OptimizerSpec::default(), batch, false, config)?;
    b.set_params(&crate::core::init::initialize(&spec, crate::core::init::Init::GlorotUniform, 1)?)?;
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

