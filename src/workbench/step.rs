//! One training step on the f64 reference and on the GPU from the same random samples and
//! weights, the GPU's work buffers poisoned with NaN first, so an element no kernel wrote shows
//! up: the correctness check of every kernel at once (`compare` reads the two traces).

use crate::nn::backend::{Backend, Split, StepTrace};
use crate::nn::model::{LayerParams, ModelSpec, Params};
use crate::nn::optim::OptimizerSpec;
use crate::cpu::ReferenceBackend;
use crate::data::{Dataset, Pixels};
use crate::core::{Engines, Settings};
use crate::gpu::{Gpu, GpuBackend, KernelConfig};
use anyhow::Result;
use rand::Rng;
use std::sync::Arc;

/// `n` random samples shaped for `spec`: bytes (or floats in [0, 1)) and labels its loss accepts.
pub fn random_dataset(spec: &ModelSpec, n: usize, float_pixels: bool, rng: &mut impl Rng) -> Dataset {
    let len = spec.input_size();
    let classes = if spec.output_size() == 1 { 2 } else { spec.output_size().min(10) };
    let pixels = if float_pixels {
        Pixels::F64((0..n * len).map(|_| rng.random::<f64>()).collect())
    } else {
        Pixels::U8((0..n * len).map(|_| rng.random::<u8>()).collect())
    };
    let labels = (0..n).map(|_| rng.random_range(0..classes) as u8).collect();
    Dataset { source: "random samples".into(), pixels, sample_len: len, labels, num_classes: classes }
}

/// Uniform random parameters scaled so the activations stay in a useful range.
pub fn random_params(spec: &ModelSpec, rng: &mut impl Rng) -> Params {
    Params {
        layers: (0..spec.num_layers())
            .map(|i| {
                let (n_in, n_out) = spec.layer_dims(i);
                let a = 2.0 / (n_in as f64).sqrt();
                LayerParams {
                    weight: (0..n_in * n_out).map(|_| rng.random_range(-a..a)).collect(),
                    bias: (0..n_out).map(|_| rng.random_range(-0.5..0.5)).collect(),
                }
            })
            .collect(),
    }
}

/// The reference: one step of the f64 CPU backend on samples `idx` of `data`.
pub fn reference_step(spec: &ModelSpec, opt: &OptimizerSpec, data: &Arc<Dataset>, params: &Params, idx: &[u32]) -> Result<StepTrace> {
    let mut cpu = ReferenceBackend::new(spec, opt);
    cpu.set_params(params)?;
    cpu.attach(Split::Train, data.clone())?;
    cpu.trace_step(idx, opt.lr)
}

/// The same step on `gpu` with the kernels of `config`, every work buffer poisoned first; the
/// backend comes back too, for the kernel choices it made (`uses_vec4`).
pub fn gpu_step(gpu: Gpu, config: KernelConfig, spec: &ModelSpec, opt: &OptimizerSpec, data: &Arc<Dataset>, params: &Params, idx: &[u32]) -> Result<(StepTrace, GpuBackend)> {
    let mut b = Engines::with_gpu(Settings::default(), gpu).build_with_kernels(spec, opt, idx.len(), config)?;
    b.set_params(params)?;
    b.attach(Split::Train, data.clone())?;
    b.poison()?;
    let trace = b.trace_step(idx, opt.lr)?;
    Ok((trace, b))
}
