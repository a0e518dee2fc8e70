//! `gpu-nn bench --kernels`: each matmul kernel at the shapes training uses and at 1024³,
//! against the CPU GEMM (the timing is the kernel workbench's, `workbench::matmul`).

use crate::commands::args::BenchArgs;
use crate::gpu::Gpu;
use crate::workbench::matmul::{adapters_choice, gflops, shapes, time_cpu, time_gpu};
use anyhow::Result;
use serde::Serialize;

pub fn run(args: &BenchArgs) -> Result<()> {
    let (device, rows) = run_kernels(args.cfg.adapter.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"device": device, "kernels": rows}))?);
    } else {
        print_kernels(&device, &rows);
    }
    Ok(())
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

/// Every product of `workbench::matmul::shapes` with the adapter's kernels, and the CPU GEMM.
pub fn run_kernels(adapter: Option<&str>) -> Result<(String, Vec<KernelRow>)> {
    let probe = Gpu::new(adapter, true)?;
    let device = probe.describe();
    let config = adapters_choice(&probe);
    drop(probe);
    let mut rows = Vec::new();
    for (kind, shape) in shapes() {
        let g = time_gpu(Gpu::new(adapter, true)?, config, kind, shape, 0.5)?;
        let cpu_s = time_cpu(kind, shape, 0.3);
        rows.push(KernelRow {
            kernel: format!("{kind:?}"),
            shape,
            variant: if g.vec4 { "vec4" } else { "scalar" }.into(),
            gpu_us: g.seconds * 1e6,
            gpu_gflops: gflops(shape, g.seconds),
            cpu_gflops: gflops(shape, cpu_s),
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
