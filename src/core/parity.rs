//! Parity: a session's engine against the f64 reference, step by step, tensor by tensor
//! (`Session::parity`, what `gpu-nn parity` and the web page's parity button both run, with one
//! verdict), and the comparison underneath it, which also holds each kernel to its reference in
//! the kernel tests: every tensor of a step trace against the reference's, as the largest
//! absolute difference over the largest reference magnitude (a norm-wise relative error,
//! meaningful for tensors with values near zero).

use crate::core::session::Session;
use crate::cpu::ReferenceBackend;
use crate::nn::backend::{Backend, Split, StepTrace};
use anyhow::{Result, bail};

/// Relative tolerance of f32 kernels against the f64 reference on one step, tensor by tensor
/// (the kernel tests).
pub const TOLERANCE: f64 = 1e-5;

/// The worst relative error a parity run accepts unless told otherwise (`gpu-nn parity
/// --tolerance`, and the page's parity button).
pub const DEFAULT_TOLERANCE: f64 = 1e-4;

/// How far one tensor of a GPU trace is from the reference.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorDiff {
    pub name: String,
    /// max |gpu − cpu| over the tensor; infinite when a GPU value is not finite.
    pub max_abs: f64,
    /// `max_abs / max |cpu|`.
    pub max_rel: f64,
    /// Where the largest finite difference is, with both values there.
    pub worst: usize,
    pub gpu: f64,
    pub cpu: f64,
    /// The first element the GPU left non-finite (an element no kernel wrote stays NaN).
    pub nonfinite: Option<usize>,
}

/// Compares two traces of the same step. Fails when they name different tensors or a tensor's
/// length differs; a non-finite GPU value is an infinite error, not a failure here.
pub fn compare(cpu: &StepTrace, gpu: &StepTrace) -> Result<Vec<TensorDiff>> {
    let names = |t: &StepTrace| t.tensors.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    if names(cpu) != names(gpu) {
        bail!("the traces name different tensors: cpu {:?}, gpu {:?}", names(cpu), names(gpu));
    }
    let mut out = Vec::new();
    for ((name, c), (_, g)) in cpu.tensors.iter().zip(&gpu.tensors) {
        if g.len() != c.len() {
            bail!("tensor '{name}': {} values on the GPU, {} on the CPU", g.len(), c.len());
        }
        let scale = c.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-30);
        let nonfinite = g.iter().position(|x| !x.is_finite());
        let (worst, diff) = c.iter().zip(g).map(|(a, b)| (a - b).abs()).enumerate().fold((0, 0.0), |m, (i, d)| if d > m.1 { (i, d) } else { m });
        let nan = c.iter().zip(g).any(|(a, b)| (a - b).is_nan());
        let max_abs = if nonfinite.is_some() || nan { f64::INFINITY } else { diff };
        let (gpu, cpu) = (g.get(worst).copied().unwrap_or(0.0), c.get(worst).copied().unwrap_or(0.0));
        out.push(TensorDiff { name: name.clone(), max_abs, max_rel: max_abs / scale, worst, gpu, cpu, nonfinite });
    }
    Ok(out)
}

/// Worst disagreement seen for one tensor over several steps.
#[derive(Clone, Debug, Default)]
pub struct TensorError {
    pub name: String,
    pub max_abs: f64,
    /// max |gpu − cpu| / max |cpu| over the tensor (norm-wise relative error).
    pub max_rel: f64,
    /// Step at which `max_rel` was seen (1-based).
    pub step: usize,
}

/// Folds one step's comparison (`compare`) into the worst seen per tensor; NaN anywhere counts
/// as an infinite error.
pub fn accumulate(cpu: &StepTrace, gpu: &StepTrace, step: usize, acc: &mut Vec<TensorError>) -> Result<()> {
    for d in compare(cpu, gpu)? {
        match acc.iter_mut().find(|t| t.name == d.name) {
            Some(t) => {
                t.max_abs = t.max_abs.max(d.max_abs);
                if d.max_rel > t.max_rel {
                    t.max_rel = d.max_rel;
                    t.step = step;
                }
            }
            None => acc.push(TensorError { name: d.name, max_abs: d.max_abs, max_rel: d.max_rel, step }),
        }
    }
    Ok(())
}

/// The tolerance of tensor `name` for a base tolerance: Adam's second moment v (`state1`) is
/// (1 − β2)·g², which carries twice the relative error of g.
pub fn tolerance_for(name: &str, base: f64) -> f64 {
    if name.ends_with(".state1") { 2.0 * base } else { base }
}

/// What a parity run found.
#[derive(Clone, Debug)]
pub struct ParityReport {
    /// What the reference was compared with (`Backend::describe`).
    pub engine: String,
    pub steps: usize,
    /// Each step from the reference's weights and optimiser state (else free-running).
    pub resync: bool,
    pub tolerance: f64,
    /// The worst error of every tensor over the steps, in the trace's order.
    pub tensors: Vec<TensorError>,
}

impl ParityReport {
    /// The worst relative error of any tensor (NaN if any is NaN).
    pub fn worst(&self) -> f64 {
        self.tensors.iter().map(|t| t.max_rel).fold(0.0, |w, x| if x.is_nan() || w.is_nan() { f64::NAN } else { w.max(x) })
    }
    /// The verdict: every tensor within the tolerance (a NaN fails).
    pub fn passed(&self) -> bool {
        self.worst() <= self.tolerance
    }
}

impl Session {
    /// The next `steps` training steps of the run from where it stands (its weights, optimiser
    /// state and position: the batches and learning rates training would take) on the f64
    /// reference and on this session's engine, compared tensor by tensor after every step
    /// (activations, deltas, gradients, updated weights, optimiser state). The engine's work
    /// buffers are poisoned with NaN before each step where it has any (the GPU), so an element
    /// no kernel wrote shows. With `resync` the engine restarts every step from the reference's
    /// weights and optimiser state, so each step's error is the kernels' own; without it the
    /// two run free and the report shows how rounding differences grow (Adam amplifies
    /// gradients at rounding-noise level into full-size steps of either sign, so free runs of
    /// it diverge after a few dozen steps). The session is left as it was.
    pub fn parity(&mut self, steps: usize, resync: bool, tolerance: f64) -> Result<ParityReport> {
        pollster::block_on(self.parity_async(steps, resync, tolerance))
    }

    /// `parity`, awaiting the engine (a web page).
    pub async fn parity_async(&mut self, steps: usize, resync: bool, tolerance: f64) -> Result<ParityReport> {
        self.attach(Split::Train)?;
        let (plan, computer, state) = self.parts();
        let cfg = plan.config();
        if let Some(g) = computer.gpu() {
            if plan.batch() > g.rows_cap() {
                bail!("parity compares single micro-batches; batch {} exceeds {} rows — use a smaller --batch-size", plan.batch(), g.rows_cap());
            }
        }
        let saved_params = computer.backend().params_async().await?;
        let saved_state = computer.backend().optimizer_state_async().await?;
        let mut cpu = ReferenceBackend::new(&cfg.model, &cfg.optimizer);
        cpu.set_params(&saved_params)?;
        cpu.set_optimizer_state(&saved_state)?;
        cpu.set_dropout(plan.dropout())?;
        cpu.set_augment(plan.augment())?;
        cpu.attach(Split::Train, plan.data().train.clone())?;
        let mut tensors = Vec::new();
        let mut order: Option<(usize, Vec<u32>)> = None;
        for s in 0..steps {
            let step = state.step + s as u64;
            let (epoch, in_epoch) = plan.position(step);
            if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
                order = Some((epoch, plan.epoch_order(epoch)));
            }
            let idx = plan.step_samples(&order.as_ref().expect("set above").1, in_epoch);
            let lr = plan.lr(epoch, step);
            if let Some(g) = computer.gpu() {
                g.poison()?;
            }
            let c = cpu.trace_step(idx, lr)?;
            let e = computer.backend().trace_step_async(idx, lr).await?;
            accumulate(&c, &e, s + 1, &mut tensors)?;
            if resync {
                computer.backend().set_params(&cpu.params()?)?;
                computer.backend().set_optimizer_state(&cpu.optimizer_state()?)?;
            }
        }
        // the session goes on from where it stood
        let engine = computer.backend().describe();
        computer.backend().set_params(&saved_params)?;
        computer.backend().set_optimizer_state(&saved_state)?;
        Ok(ParityReport { engine, steps, resync, tolerance, tensors })
    }
}
