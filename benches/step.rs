//! Criterion benchmarks of one training step (seed001: 784-128-64-10, batch 64, Adam) on the CPU
//! fast path and on the GPU, and of the forward matmul kernel at seed001's largest shape.
//! `cargo bench --bench step`; MNIST from $GPU_NN_DATA or ../shared/datasets/mnist (a
//! deterministic random dataset of the same shape when absent). GPU benchmarks are skipped
//! without an adapter.

use criterion::{Criterion, criterion_group, criterion_main};
use gpu_nn::nn::backend::{Backend, Split};
use gpu_nn::core::config::{Config, preset_json};
use gpu_nn::cpu::FastBackend;
use gpu_nn::data::{Dataset, Pixels};
use gpu_nn::gpu::{Gpu, GpuBackend, KernelChoice, Matmul};
use gpu_nn::workbench::matmul::{adapters_choice, network};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn train_set() -> Arc<Dataset> {
    let dir = std::env::var_os("GPU_NN_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/datasets/mnist")));
    let (img, lab) = (dir.join("train-images-idx3-ubyte.gz"), dir.join("train-labels-idx1-ubyte.gz"));
    if let Ok(d) = Dataset::load(&img, &lab, 10) {
        return Arc::new(d);
    }
    let n = 60_000;
    let pixels = (0..n * 784).map(|i| (i * 2_654_435_761usize >> 13) as u8).collect();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    Arc::new(Dataset { source: "random".into(), pixels: Pixels::U8(pixels), sample_len: 784, labels, num_classes: 10 })
}

fn seed001() -> Config {
    Config::from_layers(&[preset_json("seed001").unwrap()]).unwrap()
}

/// Steps cycle through the epoch's order, 64 at a time (one `train_steps` call per 64 steps,
/// as the training loop does); the benchmark reports the time of such a call.
fn bench_step(c: &mut Criterion) {
    let cfg = seed001();
    let data = train_set();
    let order = gpu_nn::core::plan::epoch_order(&cfg, data.len(), 0);
    let params = cfg.initial_params().unwrap();
    let chunk = 64 * 64;
    let mut g = c.benchmark_group("seed001 64 steps");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    let mut cpu = FastBackend::new(&cfg.model, &cfg.optimizer);
    cpu.set_params(&params).unwrap();
    cpu.attach(Split::Train, data.clone()).unwrap();
    let mut at = 0;
    g.bench_function("cpu f32", |b| {
        b.iter(|| {
            at = (at + chunk) % (data.len() - chunk);
            cpu.train_steps(&order[at..at + chunk], 64, &[1e-3; 64]).unwrap()
        })
    });
    match Gpu::new(None, true).and_then(|g| GpuBackend::with_gpu(g, &cfg.model, &cfg.optimizer, 64, false, &KernelChoice::Default)) {
        Ok(mut gpu) => {
            gpu.set_params(&params).unwrap();
            gpu.attach(Split::Train, data.clone()).unwrap();
            gpu.train_steps(&order[..chunk], 64, &[1e-3; 64]).unwrap(); // compiles the shaders
            g.bench_function("gpu", |b| {
                b.iter(|| {
                    at = (at + chunk) % (data.len() - chunk);
                    gpu.train_steps(&order[at..at + chunk], 64, &[1e-3; 64]).unwrap()
                })
            });
        }
        Err(e) => eprintln!("gpu benchmarks skipped: {e:#}"),
    }
    g.finish();
}

fn bench_kernels(c: &mut Criterion) {
    let Ok(probe) = Gpu::new(None, true) else { return };
    let config = adapters_choice(&probe);
    let mut g = c.benchmark_group("matmul kernels (10 dispatches)");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for (kind, shape) in [(Matmul::Forward, [64, 784, 128]), (Matmul::WeightGrad, [128, 64, 784]), (Matmul::BackwardData, [64, 64, 128])] {
        let (spec, batch, l) = network(kind, shape);
        let mut b = GpuBackend::with_config(Gpu::new(None, true).unwrap(), &spec, &Default::default(), batch, false, config).unwrap();
        b.set_params(&gpu_nn::nn::init::initialize(&spec, gpu_nn::nn::init::Init::GlorotUniform, 1).unwrap()).unwrap();
        g.bench_function(format!("{kind:?} {}x{}x{}", shape[0], shape[1], shape[2]), |bn| {
            bn.iter(|| b.time_matmul(kind, l, batch, 10).unwrap())
        });
    }
    g.finish();
}

// no plots: criterion's plotters backend needs system fonts, which headless machines lack
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench_step, bench_kernels
}
criterion_main!(benches);
