//! `gpu-nn parity`: one configuration on the CPU reference (f64) and on the selected GPU
//! adapter, from identical weights and the same batches, compared tensor by tensor after every
//! step (activations, deltas, gradients, updated weights, optimiser state).

use crate::commands::args::ParityArgs;
use crate::commands::setup::{kernel_choice, prepare};
use crate::nn::backend::{Backend, Split};
use crate::core::config::Config;
use crate::core::run_data::RunData;
use crate::cpu::ReferenceBackend;
use crate::gpu::GpuBackend;
use crate::report::console::Console;
use crate::workbench::compare::{TensorError, accumulate};
use anyhow::{Result, bail};

/// The command: compares the backends on the configuration; fails above the tolerance.
pub fn run(args: ParityArgs) -> Result<()> {
    let mut cfg = args.cfg.resolve()?;
    let data = prepare(&mut cfg, &Console::text())?;
    let r = compare_backends(&cfg, &data, args.steps, cfg.backend.adapter.as_deref(), !args.free_run)?;
    print(&r, args.tolerance);
    if !(r.worst() <= args.tolerance) {
        bail!("parity failed: worst relative error {:.3e} exceeds the tolerance {:.1e}", r.worst(), args.tolerance);
    }
    Ok(())
}

pub struct ParityReport {
    pub device: String,
    pub steps: usize,
    pub resync: bool,
    pub tensors: Vec<TensorError>,
}

impl ParityReport {
    pub fn worst(&self) -> f64 {
        self.tensors.iter().map(|t| t.max_rel).fold(0.0, f64::max)
    }
}

/// Runs `steps` training steps of `cfg` on both backends, with the batch order of the run.
/// With `resync`, the GPU restarts every step from the CPU's weights and optimiser state, so
/// each step's error is the kernels' own; without it the two trajectories run free and the
/// report shows how rounding differences grow (Adam amplifies gradients at rounding-noise level
/// into full-size steps of either sign, so free runs of it diverge after a few dozen steps).
pub fn compare_backends(cfg: &Config, data: &RunData, steps: usize, adapter: Option<&str>, resync: bool) -> Result<ParityReport> {
    let n = data.train.len();
    let batch = cfg.training.batch_size.resolve(n).min(n);
    let mut cpu = ReferenceBackend::new(&cfg.model, &cfg.optimizer);
    let mut gpu = GpuBackend::new(&cfg.model, &cfg.optimizer, batch, adapter, false, true, &kernel_choice(cfg)?)?;
    if batch > gpu.rows_cap() {
        bail!("parity compares single micro-batches; batch {batch} exceeds {} rows — use a smaller --batch-size", gpu.rows_cap());
    }
    let params = cfg.initial_params()?;
    cpu.set_params(&params)?;
    gpu.set_params(&params)?;
    cpu.attach(Split::Train, data.train.clone())?;
    gpu.attach(Split::Train, data.train.clone())?;
    let mut tensors = Vec::new();
    let steps_per_epoch = n.div_ceil(batch);
    let total = steps as u64;
    let mut order = Vec::new();
    for s in 0..steps {
        let epoch = s / steps_per_epoch;
        if s % steps_per_epoch == 0 {
            order = crate::core::train::epoch_order(cfg, n, epoch);
        }
        let lo = (s % steps_per_epoch) * batch;
        let idx = &order[lo..(lo + batch).min(n)];
        let lr = cfg.optimizer.schedule.lr(cfg.optimizer.lr, epoch, s as u64, total);
        gpu.poison()?;
        let c = cpu.trace_step(idx, lr)?;
        let g = gpu.trace_step(idx, lr)?;
        accumulate(&c, &g, s + 1, &mut tensors)?;
        if resync {
            gpu.set_params(&cpu.params()?)?;
            gpu.set_optimizer_state(&cpu.optimizer_state()?)?;
        }
    }
    Ok(ParityReport { device: gpu.describe(), steps, resync, tensors })
}

pub fn print(r: &ParityReport, tolerance: f64) {
    println!(
        "parity: cpu f64 reference vs {} over {} step(s), {}; relative error = max|gpu−cpu| / max|cpu| per tensor",
        r.device,
        r.steps,
        if r.resync { "each step from the same weights" } else { "free-running" }
    );
    println!("{:<28} {:>12} {:>12} {:>6}  ", "tensor", "max abs", "max rel", "step");
    for t in &r.tensors {
        let flag = if t.max_rel.is_nan() || t.max_rel > tolerance { "  FAIL" } else { "" };
        println!("{:<28} {:>12.3e} {:>12.3e} {:>6}{flag}", t.name, t.max_abs, t.max_rel, t.step);
    }
    println!("worst relative error {:.3e} (tolerance {tolerance:.1e})", r.worst());
}
