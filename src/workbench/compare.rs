//! The check that holds a kernel to its reference: every tensor of a GPU step trace against the
//! f64 reference's, as the largest absolute difference over the largest reference magnitude
//! (a norm-wise relative error, meaningful for tensors with values near zero).

use crate::nn::backend::StepTrace;
use anyhow::{Result, bail};

/// Relative tolerance of f32 kernels against the f64 reference on one step.
pub const TOLERANCE: f64 = 1e-5;

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
