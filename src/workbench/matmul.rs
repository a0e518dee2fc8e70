//! The three matrix products of a layer, the kernels that come in variants: forward
//! Z[M×N] = A[M×K]·Wᵀ + b (M = batch), backward_data δ[M×N] = δ'[M×K]·W ⊙ f'(Z), weight_grad
//! ∂W[M×N] = δᵀ·A over K batch rows. Their CPU reference is the f64 backend (`step`); here are
//! the shapes they are measured at, a network that gives a product a shape, the variants an
//! adapter runs, and their timing beside the CPU GEMM's.

use crate::nn::backend::Backend;
use crate::nn::init::{Init, initialize};
use crate::nn::math::Real;
use crate::nn::model::{Activation, Loss, ModelSpec, Reduction};
use crate::nn::optim::OptimizerSpec;
use crate::gpu::context::is_software;
use crate::gpu::tuning::{KernelSelection, named_for};
use crate::core::{Engines, Settings};
use crate::gpu::{Gpu, GpuBackend, KernelConfig, KernelName, Matmul};
use anyhow::Result;
use std::time::Instant;

/// The shapes (M×K×N) training seed001 uses, then 512×784×512 and each of `squares` cubed,
/// per product.
pub fn shapes(squares: &[usize]) -> Vec<(Matmul, [usize; 3])> {
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
    }
    for &s in squares {
        for kind in [Matmul::Forward, Matmul::BackwardData, Matmul::WeightGrad] {
            v.push((kind, [s, s, s]));
        }
    }
    v
}

/// The network, batch and layer (1-based) whose `kind` product has the shape M×K×N.
pub fn network(kind: Matmul, [m, k, n]: [usize; 3]) -> (ModelSpec, usize, usize) {
    let (layers, batch, l) = match kind {
        Matmul::Forward => (vec![k, n], m, 1),
        Matmul::BackwardData => (vec![4, n, k], m, 2),
        Matmul::WeightGrad => (vec![n, m], k, 1),
    };
    let activations = vec![Activation::Relu; layers.len() - 1];
    let spec = ModelSpec { layers, activations, loss: Loss::HalfSse, label_smoothing: 0.0, reduction: Reduction::Mean, input_norm: Default::default(), feature_norm: None, classes: Vec::new() };
    (spec, batch, l)
}

/// The products a network gives each kernel on `rows` samples, with whether `gpu` runs them
/// as vec4.
pub fn layer_shapes(spec: &ModelSpec, rows: usize, gpu: &GpuBackend) -> Vec<(Matmul, [usize; 3], bool)> {
    let mut v = Vec::new();
    for i in 0..spec.num_layers() {
        let (n_in, n_out) = spec.layer_dims(i);
        v.push((Matmul::Forward, [rows, n_in, n_out], gpu.uses_vec4(i, Matmul::Forward)));
        if i > 0 {
            v.push((Matmul::BackwardData, [rows, n_out, n_in], gpu.uses_vec4(i, Matmul::BackwardData)));
        }
        v.push((Matmul::WeightGrad, [n_out, rows, n_in], gpu.uses_vec4(i, Matmul::WeightGrad)));
    }
    v
}

/// The adapter's untimed default (`KernelConfig::default_for`).
pub fn adapters_choice(gpu: &Gpu) -> KernelConfig {
    KernelConfig::default_for(&gpu.info, gpu.features, is_software(&gpu.info)).1
}

/// The variant `selection` picks on `gpu`: `auto` (the adapter's default) or a named one;
/// refused when the adapter cannot run it.
pub fn variant(selection: KernelSelection, gpu: &Gpu) -> Result<KernelConfig> {
    match selection {
        KernelSelection::Auto => Ok(adapters_choice(gpu)),
        KernelSelection::Named(n) => named_for(gpu, n),
    }
}

/// Every named variant the adapter runs (`KernelName::ALL`, in that order).
pub fn variants(gpu: &Gpu) -> Vec<(&'static str, KernelConfig)> {
    KernelName::ALL
        .into_iter()
        .map(|n| (n.as_str(), n.config().for_adapter(&gpu.info, gpu.features)))
        .filter(|(_, c)| c.unsupported(&gpu.info, gpu.features, &gpu.limits).is_none())
        .collect()
}

/// CPU seconds of this process (all threads), where /proc tells.
pub fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let f: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
    Some((f[11].parse::<f64>().ok()? + f[12].parse::<f64>().ok()?) / 100.0)
}

/// The timing of one GPU product.
#[derive(Clone, Copy, Debug)]
pub struct GpuTiming {
    /// Wall seconds per dispatch, over `reps` dispatches in one submission.
    pub seconds: f64,
    /// The device's own seconds per dispatch (timestamp queries), where it has them.
    pub device_seconds: Option<f64>,
    pub reps: usize,
    /// CPU seconds of this process per dispatch (a software adapter's cost), where known.
    pub cpu_seconds: Option<f64>,
    /// Whether the layer ran the vec4 kernel (else the scalar one).
    pub vec4: bool,
}

/// Times one product on `gpu` with `config`, repeated for about `budget` seconds after a
/// warm-up that compiles the kernel. Each time includes the per-dispatch overhead, which
/// dominates the small shapes.
pub fn time_gpu(gpu: Gpu, config: KernelConfig, kind: Matmul, shape: [usize; 3], budget: f64) -> Result<GpuTiming> {
    let (spec, batch, l) = network(kind, shape);
    let mut b = Engines::with_gpu(Settings::default(), gpu).build_with_kernels(&spec, &OptimizerSpec::default(), batch, config)?;
    b.set_params(&initialize(&spec, Init::GlorotUniform, 1)?)?;
    let once = b.time_matmul(kind, l, batch, 1)?.host;
    let reps = ((budget / once) as usize).clamp(2, 20_000);
    let c0 = cpu_seconds();
    let t = b.time_matmul(kind, l, batch, reps)?;
    let cpu_seconds = cpu_seconds().zip(c0).map(|(a, b)| (a - b) / reps as f64);
    Ok(GpuTiming { seconds: t.host, device_seconds: t.device, reps, cpu_seconds, vec4: b.uses_vec4(l - 1, kind) })
}

/// Seconds per call of the CPU GEMM (the f32 backend's) on the same product and layout.
pub fn time_cpu(kind: Matmul, [m, k, n]: [usize; 3], budget: f64) -> f64 {
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

/// GFLOP/s of a product of `shape` done in `seconds` (2·M·K·N flops).
pub fn gflops(shape: [usize; 3], seconds: f64) -> f64 {
    2.0 * (shape[0] * shape[1] * shape[2]) as f64 / seconds / 1e9
}
