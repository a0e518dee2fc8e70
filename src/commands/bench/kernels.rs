//! `gpu-nn bench --kernels [NAME]`: each matmul kernel configuration the adapter runs (or only
//! NAME) at the shapes training uses, 512×784×512 and the `--sizes` cubes (default 1024³),
//! against the CPU GEMM. Host time per dispatch, and the device's own time where the adapter
//! has timestamp queries (the timing is the kernel workbench's, `workbench::matmul`).

use crate::commands::args::BenchArgs;
use crate::core::Settings;
use crate::gpu::tuning::KernelSelection;
use crate::gpu::Gpu;
use crate::workbench::matmul::{gflops, shapes, time_cpu, time_gpu, variant, variants};
use anyhow::{Result, bail};
use serde::Serialize;

pub fn run(args: &BenchArgs, env: &Settings) -> Result<()> {
    let only: Option<KernelSelection> = args.cfg.kernels.as_deref().filter(|n| !n.is_empty()).map(str::parse).transpose()?;
    let squares = args.sizes.clone().unwrap_or_else(|| vec![1024]);
    if let Some(s) = squares.iter().find(|&&s| s == 0 || s > 16384) {
        bail!("--sizes {s}: each size must be between 1 and 16384");
    }
    let adapter = args.cfg.adapter.clone().or_else(|| env.adapter.clone());
    let report = run_kernels(adapter.as_deref(), only, &squares, !args.json)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_kernels(&report);
    }
    Ok(())
}

#[derive(Clone, Debug, Serialize)]
pub struct KernelRow {
    /// The product: Forward, BackwardData or WeightGrad.
    pub kernel: String,
    pub shape: [usize; 3],
    /// The kernel configuration (`KernelName`).
    pub config: String,
    /// "vec4" or "scalar": which implementation the layer used (the vec4 kernels need widths
    /// that are multiples of 4).
    pub variant: String,
    /// Host time per dispatch (submission to completion, over a batch of dispatches).
    pub gpu_us: f64,
    /// The device's own time per dispatch, where the adapter has timestamp queries.
    pub device_us: Option<f64>,
    /// GFLOP/s by the device's time where known, else by the host's.
    pub gpu_gflops: f64,
    pub cpu_gflops: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct KernelReport {
    pub device: String,
    /// Whether `device_us` was measured (the adapter has timestamp queries).
    pub timestamps: bool,
    pub kernels: Vec<KernelRow>,
}

/// Every product of `workbench::matmul::shapes(squares)` with every configuration the adapter
/// runs (or only `only`), and the CPU GEMM once per shape.
pub fn run_kernels(adapter: Option<&str>, only: Option<KernelSelection>, squares: &[usize], progress: bool) -> Result<KernelReport> {
    // One device for every timing (each gets a clone of its handles): with a fresh instance
    // and device per timing, the H200's driver (NVIDIA 580.159) listed no adapter any more
    // 12 s into the timings.
    let gpu = Gpu::new(adapter, true)?;
    let device = gpu.describe();
    let timestamps = gpu.timestamps;
    let configs: Vec<(String, _)> = match only {
        Some(sel) => vec![(sel.to_string(), variant(sel, &gpu)?)],
        None => variants(&gpu).into_iter().map(|(n, c)| (n.to_string(), c)).collect(),
    };
    let mut rows = Vec::new();
    for (kind, shape) in shapes(squares) {
        let cpu_s = time_cpu(kind, shape, 0.3);
        for (name, config) in &configs {
            if progress {
                eprint!("\r{kind:?} {}×{}×{} {name}          ", shape[0], shape[1], shape[2]);
            }
            let g = time_gpu(gpu.clone(), *config, kind, shape, 0.5)?;
            rows.push(KernelRow {
                kernel: format!("{kind:?}"),
                shape,
                config: name.clone(),
                variant: if g.vec4 { "vec4" } else { "scalar" }.into(),
                gpu_us: g.seconds * 1e6,
                device_us: g.device_seconds.map(|s| s * 1e6),
                gpu_gflops: gflops(shape, g.device_seconds.unwrap_or(g.seconds)),
                cpu_gflops: gflops(shape, cpu_s),
            });
        }
    }
    if progress {
        eprint!("\r{:60}\r", "");
    }
    Ok(KernelReport { device, timestamps, kernels: rows })
}

pub fn print_kernels(r: &KernelReport) {
    println!("matmul kernels on {} against the CPU GEMM (matrixmultiply, one thread); GFLOP/s = 2·M·K·N / time", r.device);
    if r.timestamps {
        println!("device µs: the adapter's timestamp queries around the batch of dispatches; GPU GF/s uses them");
    } else {
        println!("device µs: - (the adapter has no timestamp queries; GPU GF/s uses the host's time)");
    }
    println!("{:<14} {:>16} {:<15} {:>7} {:>11} {:>11} {:>10} {:>10} {:>8}", "kernel", "M×K×N", "config", "variant", "host µs", "device µs", "GPU GF/s", "CPU GF/s", "GPU/CPU");
    let mut last = None;
    for k in &r.kernels {
        if last != Some((&k.kernel, k.shape)) && last.is_some() {
            println!();
        }
        last = Some((&k.kernel, k.shape));
        println!(
            "{:<14} {:>16} {:<15} {:>7} {:>11.1} {:>11} {:>10.2} {:>10.2} {:>8.2}",
            k.kernel,
            format!("{}×{}×{}", k.shape[0], k.shape[1], k.shape[2]),
            k.config,
            k.variant,
            k.gpu_us,
            k.device_us.map(|d| format!("{d:.1}")).unwrap_or_else(|| "-".into()),
            k.gpu_gflops,
            k.cpu_gflops,
            k.gpu_gflops / k.cpu_gflops
        );
    }
}
