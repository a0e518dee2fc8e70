//! `gpu-nn bench`: training throughput of the CPU fast path and the GPU side by side in one
//! process, on real data: samples/s, time per step and where it goes, achieved GFLOP/s,
//! dispatches and submissions per step, and the GPU/CPU ratio. Warm-up excluded, median of
//! several repeats; the GPU's kernels and, where the adapter has timestamp queries, its own
//! time per step. `--kernels [NAME]` times each matmul kernel (`kernels`), `--scaling` the
//! cost against batch size and width (`scaling`).

pub mod kernels;
pub mod roofline;
pub mod scaling;

use crate::commands::args::BenchArgs;
use crate::core::config::{BackendKind, Precision, preset_json};
use crate::core::{Engines, Plan, Session, Settings};
use crate::cpu::all_cores;
use crate::nn::backend::{Backend, Split};
use crate::nn::model::ModelSpec;
use anyhow::Result;
use serde::Serialize;
use serde_json::{Value, json};
use std::time::Instant;

/// The command: `--scaling`, `--kernels`, or the throughput of the default set (or of the
/// configuration the flags select).
pub fn run(args: BenchArgs, env: &Settings) -> Result<()> {
    if args.scaling {
        return scaling::run(&args, env);
    }
    // `--kernels [NAME]` (a ConfigArgs flag elsewhere: the kernels to train with) times the
    // kernels here
    if args.cfg.kernels.is_some() {
        return kernels::run(&args, env);
    }
    let cases: Vec<(String, Vec<Value>)> = if args.cfg.selects_model() {
        vec![(args.cfg.preset.clone().unwrap_or_else(|| "configuration".into()), Vec::new())]
    } else {
        default_cases()
    };
    let mut results = Vec::new();
    for (name, base) in cases {
        let cfg = if base.is_empty() { args.cfg.resolve()? } else { args.cfg.resolve_over(&base)? };
        let plan = Plan::load(cfg, &env.data, false)?;
        if !args.json {
            eprintln!("benchmarking {name} ...");
        }
        results.push(run_case(&name, &plan, env, args.steps, args.repeats, !args.cpu_only)?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print(&results);
    }
    Ok(())
}

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
    /// GPU only: the device's own ms per step (timestamp queries), where the adapter has them.
    pub device_ms: Option<f64>,
    /// GPU only: the matmul kernels and how they were chosen.
    pub kernels: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    pub case: String,
    pub layers: Vec<usize>,
    pub batch: usize,
    pub steps: usize,
    pub repeats: usize,
    /// The CPU on one thread, then on `--threads` (default every core) when that is more,
    /// then the GPU.
    pub rows: Vec<BackendRow>,
    /// GPU samples/s over the CPU's on every thread.
    pub gpu_over_cpu: Option<f64>,
    /// The CPU step on every thread against its own products timed alone.
    pub roofline: Option<roofline::Roofline>,
}

impl CaseResult {
    /// The CPU row with the most threads.
    pub fn cpu(&self) -> &BackendRow {
        self.rows.iter().rfind(|r| r.dispatches_per_step.is_none()).expect("a CPU row")
    }
    /// The GPU row, if the GPU ran.
    pub fn gpu(&self) -> Option<&BackendRow> {
        self.rows.iter().find(|r| r.dispatches_per_step.is_some())
    }
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

/// Times `plan`'s training steps on the CPU f32 path (one thread, then `backend.threads` or
/// every core) and, `with_gpu`, on the GPU, each a session of the same run.
pub fn run_case(name: &str, plan: &Plan, env: &Settings, steps: usize, repeats: usize, with_gpu: bool) -> Result<CaseResult> {
    let cfg = plan.config();
    let n = plan.data().train.len();
    let batch = plan.batch();
    let steps = steps.min(n / batch).max(1);
    let order = plan.epoch_order(0);
    let flops = train_flops_per_sample(&cfg.model);
    let samples = (steps * batch) as f64;
    let mut rows = Vec::new();
    let mut engines = Engines::new(env.clone());

    let threads = cfg.backend.threads.unwrap_or_else(all_cores);
    let mut roof = None;
    for t in if threads > 1 { vec![1, threads] } else { vec![1] } {
        let on_cpu = plan.with_backend(|b| {
            b.kind = BackendKind::Cpu;
            b.precision = Precision::F32;
            b.threads = Some(t);
        });
        let mut cpu = Session::start(on_cpu, &mut engines)?;
        cpu.attach(Split::Train)?;
        let secs = time_backend(cpu.backend(), &order, batch, steps, repeats, cfg.optimizer.lr)?;
        if t == threads {
            roof = Some(roofline::measure(&cfg.model, batch, t, 1e3 * secs / steps as f64, repeats));
        }
        let t = secs;
        rows.push(BackendRow {
            backend: cpu.describe(),
            samples_per_sec: samples / t,
            ms_per_step: 1e3 * t / steps as f64,
            gflops: flops * samples / t / 1e9,
            ..Default::default()
        });
    }

    if with_gpu {
        let mut session = Session::start(plan.with_backend(|b| b.kind = BackendKind::Gpu), &mut engines)?;
        session.attach(Split::Train)?;
        let gpu = session.gpu().expect("a GPU session's backend is the GPU's");
        // warm-up outside the counters: the first dispatch JIT-compiles the shaders
        let per = (steps * batch).min(n);
        gpu.train_steps(&order[..per], batch, &vec![cfg.optimizer.lr; steps])?;
        let c0 = gpu.counters();
        let t = time_backend(gpu, &order, batch, steps, repeats, cfg.optimizer.lr)?;
        // counters cover the timed repeats plus time_backend's own warm-up run
        let runs = (repeats + 1) as f64 * steps as f64;
        let c1 = gpu.counters();
        let ms = |d: std::time::Duration, d0: std::time::Duration| Some(1e3 * (d - d0).as_secs_f64() / runs);
        rows.push(BackendRow {
            backend: gpu.describe(),
            samples_per_sec: samples / t,
            ms_per_step: 1e3 * t / steps as f64,
            gflops: flops * samples / t / 1e9,
            upload_ms: ms(c1.timing.upload, c0.timing.upload),
            encode_ms: ms(c1.timing.encode, c0.timing.encode),
            compute_ms: ms(c1.timing.compute, c0.timing.compute),
            readback_ms: ms(c1.timing.readback, c0.timing.readback),
            dispatches_per_step: Some((c1.dispatches - c0.dispatches) as f64 / runs),
            submissions_per_step: Some((c1.submissions - c0.submissions) as f64 / runs),
            device_ms: c1.device.zip(c0.device).map(|(a, b)| 1e3 * (a - b).as_secs_f64() / runs),
            kernels: Some(gpu.kernel_note()),
        });
    }
    let mut r = CaseResult { case: name.into(), layers: cfg.model.layers.clone(), batch, steps, repeats, rows, gpu_over_cpu: None, roofline: roof };
    r.gpu_over_cpu = r.gpu().map(|g| g.samples_per_sec / r.cpu().samples_per_sec);
    Ok(r)
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
            "{:<44} {:>11} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8}",
            "backend", "samples/s", "ms/step", "GFLOP/s", "upload", "encode", "compute", "readback", "device", "disp/step", "sub/step"
        );
        for b in &r.rows {
            println!(
                "{:<44} {:>11.0} {:>9.3} {:>8.2} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8}",
                b.backend.chars().take(44).collect::<String>(),
                b.samples_per_sec,
                b.ms_per_step,
                b.gflops,
                opt(b.upload_ms, 3),
                opt(b.encode_ms, 3),
                opt(b.compute_ms, 3),
                opt(b.readback_ms, 3),
                opt(b.device_ms, 3),
                opt(b.dispatches_per_step, 1),
                opt(b.submissions_per_step, 3)
            );
        }
        if let Some(roof) = &r.roofline {
            roofline::print(roof);
        }
        if let Some(k) = r.gpu().and_then(|g| g.kernels.as_deref()) {
            println!("GPU {k}");
            if r.gpu().is_some_and(|g| g.device_ms.is_none()) {
                println!("GPU device time: - (the adapter has no timestamp queries)");
            }
        }
        if let Some(x) = r.gpu_over_cpu {
            println!("GPU/CPU samples/s ratio: {x:.2}");
        }
    }
}
