//! `gpu-nn bench`: training throughput of the CPU fast path and the GPU side by side in one
//! process, on real data: samples/s, time per step and where it goes, achieved GFLOP/s,
//! dispatches and submissions per step, and the GPU/CPU ratio. Warm-up excluded, median of
//! several repeats.

use crate::core::backend::{Backend, Split};
use crate::core::config::{Config, preset_json};
use crate::cpu::FastBackend;
use crate::core::run_data::RunData;
use crate::gpu::GpuBackend;
use crate::core::model::ModelSpec;
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
    let order = crate::core::train::epoch_order(cfg, n, 0);
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
        let c0 = gpu.counters();
        let t = time_backend(&mut gpu, &order, batch, steps, repeats, cfg.optimizer.lr)?;
        // counters cover the timed repeats plus time_backend's own warm-up run
        let runs = (repeats + 1) as f64 * steps as f64;
        let ms = |d: std::time::Duration, d0: std::time::Duration| Some(1e3 * (d - d0).as_secs_f64() / runs);
        rows.push(BackendRow {
            backend: gpu.describe(),
            samples_per_sec: samples / t,
            ms_per_step: 1e3 * t / steps as f64,
            gflops: flops * samples / t / 1e9,
            upload_ms: ms(gpu.counters().timing.upload, c0.timing.upload),
            encode_ms: ms(gpu.counters().timing.encode, c0.timing.encode),
            compute_ms: ms(gpu.counters().timing.compute, c0.timing.compute),
            readback_ms: ms(gpu.counters().timing.readback, c0.timing.readback),
            dispatches_per_step: Some((gpu.counters().dispatches - c0.dispatches) as f64 / runs),
            submissions_per_step: Some((gpu.counters().submissions - c0.submissions) as f64 / runs),
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

use crate::gpu::{Gpu, KernelConfig, Matmul};
use crate::core::math::Real;

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

// ---- `gpu-nn bench --scaling`: cost against batch size and against width --------------------

#[derive(Clone, Debug, Serialize)]
pub struct ScalingRow {
    /// "batch" or "width": which sweep the row belongs to.
    pub sweep: String,
    pub batch: usize,
    pub width: usize,
    pub cpu_ms_per_step: f64,
    pub gpu_ms_per_step: Option<f64>,
    pub cpu_samples_per_sec: f64,
    pub gpu_samples_per_sec: Option<f64>,
}

/// seed001's network and optimiser with hidden widths `w`, `w/2` at `batch`.
fn scaling_config(batch: usize, width: usize) -> Result<Config> {
    Config::from_layers(&[
        preset_json("seed001")?,
        json!({"model": {"layers": [784, width, width / 2, 10]}, "training": {"batch_size": batch}}),
    ])
}

pub const SCALING_BATCHES: [usize; 6] = [16, 32, 64, 128, 256, 512];
pub const SCALING_WIDTHS: [usize; 6] = [32, 64, 128, 256, 512, 1024];

/// ms per step on both backends for seed001's network over batch sizes (width 128) and widths
/// (batch 64).
pub fn run_scaling(data: &RunData, steps: usize, repeats: usize, adapter: Option<&str>, with_gpu: bool) -> Result<Vec<ScalingRow>> {
    let mut cells: Vec<(&str, usize, usize)> = SCALING_BATCHES.iter().map(|&b| ("batch", b, 128)).collect();
    cells.extend(SCALING_WIDTHS.iter().map(|&w| ("width", 64, w)));
    let mut rows = Vec::new();
    for (sweep, batch, width) in cells {
        let cfg = scaling_config(batch, width)?;
        let r = run_case(sweep, &cfg, data, steps, repeats, adapter, with_gpu)?;
        rows.push(ScalingRow {
            sweep: sweep.into(),
            batch,
            width,
            cpu_ms_per_step: r.rows[0].ms_per_step,
            gpu_ms_per_step: r.rows.get(1).map(|g| g.ms_per_step),
            cpu_samples_per_sec: r.rows[0].samples_per_sec,
            gpu_samples_per_sec: r.rows.get(1).map(|g| g.samples_per_sec),
        });
    }
    Ok(rows)
}

/// Two panels, ms per step against batch size and against width, CPU and GPU, log-log axes.
pub fn scaling_svg(rows: &[ScalingRow], device: &str) -> Result<String> {
    use crate::report::plots::{font, plot_err, register_font, render_svg};
    use plotters::prelude::*;
    register_font();
    render_svg((1200, 520), |root| {
        root.fill(&WHITE).map_err(plot_err)?;
        let root = root.titled(&format!("seed001 network: time per training step (CPU f32 vs {device})"), font(19.0)).map_err(plot_err)?;
        let (left, right) = root.split_horizontally(600);
        for (area, sweep, x_desc) in [(&left, "batch", "batch size (width 128-64)"), (&right, "width", "first hidden width w (784-w-w/2-10, batch 64)")] {
            let pts: Vec<&ScalingRow> = rows.iter().filter(|r| r.sweep == sweep).collect();
            // x on a log2 axis, labelled with the sizes themselves
            let x = |r: &ScalingRow| (if sweep == "batch" { r.batch } else { r.width } as f64).log2();
            let ys: Vec<f64> = pts.iter().flat_map(|r| [Some(r.cpu_ms_per_step), r.gpu_ms_per_step]).flatten().collect();
            let (lo, hi) = ys.iter().fold((f64::MAX, 0.0f64), |(l, h), &y| (l.min(y), h.max(y)));
            let (x0, x1) = (x(pts[0]) - 0.3, x(pts[pts.len() - 1]) + 0.3);
            let mut chart = ChartBuilder::on(area)
                .caption(format!("against {sweep}"), font(20.0))
                .margin(14)
                .x_label_area_size(46)
                .y_label_area_size(72)
                .build_cartesian_2d(x0..x1, (lo * 0.7..hi * 1.4).log_scale())
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc("ms per step")
                .x_labels(2 * pts.len() + 1)
                .x_label_formatter(&|v| if (v - v.round()).abs() < 1e-6 { format!("{}", 2f64.powf(v.round())) } else { String::new() })
                .y_label_formatter(&|v| format!("{v:.2}"))
                .label_style(font(14.0))
                .axis_desc_style(font(16.0))
                .draw()
                .map_err(plot_err)?;
            let series: [(&str, RGBColor, Vec<(f64, f64)>); 2] = [
                ("cpu f32", RGBColor(31, 119, 180), pts.iter().map(|r| (x(r), r.cpu_ms_per_step)).collect()),
                ("gpu", RGBColor(214, 39, 40), pts.iter().filter_map(|r| r.gpu_ms_per_step.map(|g| (x(r), g))).collect()),
            ];
            for (name, color, p) in series {
                if p.is_empty() {
                    continue;
                }
                chart
                    .draw_series(LineSeries::new(p.clone(), color.stroke_width(2)))
                    .map_err(plot_err)?
                    .label(name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
                chart.draw_series(p.iter().map(|&q| Circle::new(q, 3, color.filled()))).map_err(plot_err)?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font(font(14.0))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .draw()
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
        Ok(())
    })
}

/// Writes scaling.csv, scaling.svg and scaling.png into `dir`.
pub fn write_scaling(dir: &std::path::Path, rows: &[ScalingRow], device: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut csv = String::from("sweep,batch,width,cpu_ms_per_step,gpu_ms_per_step,cpu_samples_per_sec,gpu_samples_per_sec\n");
    let o = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
    for r in rows {
        csv += &format!(
            "{},{},{},{},{},{},{}\n",
            r.sweep, r.batch, r.width, r.cpu_ms_per_step, o(r.gpu_ms_per_step), r.cpu_samples_per_sec, o(r.gpu_samples_per_sec)
        );
    }
    crate::atomic_file::write_atomic(&dir.join("scaling.csv"), csv.as_bytes())?;
    let svg = scaling_svg(rows, device)?;
    crate::atomic_file::write_atomic(&dir.join("scaling.svg"), svg.as_bytes())?;
    crate::atomic_file::write_atomic(&dir.join("scaling.png"), &crate::report::plots::svg_to_png(&svg)?)?;
    Ok(())
}
