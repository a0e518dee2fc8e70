//! `gpu-nn parity`: one configuration on the CPU reference (f64) and on the selected GPU
//! adapter, from identical weights and the same batches, compared tensor by tensor after every
//! step (activations, deltas, gradients, updated weights, optimiser state): the session's
//! parity (`core::parity`), which the web page's parity button runs too.

use crate::commands::args::ParityArgs;
use crate::core::config::{BackendKind, Config};
use crate::core::parity::{DEFAULT_TOLERANCE, ParityReport};
use crate::core::run_data::RunData;
use crate::core::{Engines, Plan, Session, Settings};
use anyhow::{Result, bail};

/// The command: compares the backends on the configuration; fails above the tolerance.
pub fn run(args: ParityArgs, env: &Settings) -> Result<()> {
    let cfg = args.cfg.resolve()?;
    let plan = Plan::load(cfg, &env.data, false)?;
    let mut r = parity_of(plan, env, args.steps, !args.free_run)?;
    r.tolerance = args.tolerance;
    print(&r);
    if !r.passed() {
        bail!("parity failed: worst relative error {:.3e} exceeds the tolerance {:.1e}", r.worst(), args.tolerance);
    }
    Ok(())
}

/// `steps` training steps of `plan` from its initial weights, on the f64 reference and on the
/// GPU (the configuration's adapter and kernels), each step from the same weights with
/// `resync` (`Session::parity`).
pub fn parity_of(plan: Plan, env: &Settings, steps: usize, resync: bool) -> Result<ParityReport> {
    let plan = plan.with_backend(|b| b.kind = BackendKind::Gpu);
    let mut session = Session::start(plan, &mut Engines::new(env.clone()))?;
    session.parity(steps, resync, DEFAULT_TOLERANCE)
}

/// `parity_of` for `cfg` on `data` with `adapter`, in this process's environment.
pub fn compare_backends(cfg: &Config, data: &RunData, steps: usize, adapter: Option<&str>, resync: bool) -> Result<ParityReport> {
    let mut cfg = cfg.clone();
    if let Some(a) = adapter {
        cfg.backend.adapter = Some(a.to_string());
    }
    parity_of(Plan::new(cfg, data.clone())?, &crate::commands::environment::read()?, steps, resync)
}

pub fn print(r: &ParityReport) {
    println!(
        "parity: cpu f64 reference vs {} over {} step(s), {}; relative error = max|gpu−cpu| / max|cpu| per tensor",
        r.engine,
        r.steps,
        if r.resync { "each step from the same weights" } else { "free-running" }
    );
    println!("{:<28} {:>12} {:>12} {:>6}  ", "tensor", "max abs", "max rel", "step");
    for t in &r.tensors {
        let flag = if t.max_rel.is_nan() || t.max_rel > r.tolerance { "  FAIL" } else { "" };
        println!("{:<28} {:>12.3e} {:>12.3e} {:>6}{flag}", t.name, t.max_abs, t.max_rel, t.step);
    }
    println!("worst relative error {:.3e} (tolerance {:.1e})", r.worst(), r.tolerance);
}
