//! Optimisers and learning-rate schedules. Each update rule is one function over a parameter
//! tensor, its gradient and its state; the GPU's `optimizer.wgsl` implements the same rules.

use crate::nn::math::Real;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// w ← w − η·g
    Sgd,
    /// v ← μ·v + g;  w ← w − η·v   (PyTorch's form)
    Momentum,
    /// v ← μ·v + g;  w ← w − η·(g + μ·v)
    Nesterov,
    /// Kingma & Ba (2015), Algorithm 1: bias-corrected moments, ε outside the square root.
    Adam,
    /// Loshchilov & Hutter (2019), as PyTorch's `torch.optim.AdamW`: w ← w·(1 − η·λ), then
    /// Adam's update with the raw gradient (`weight_decay` λ is decoupled, not an L2 term).
    #[serde(rename = "adamw")]
    AdamW,
}

impl OptimizerKind {
    pub const ALL: [OptimizerKind; 5] =
        [OptimizerKind::Sgd, OptimizerKind::Momentum, OptimizerKind::Nesterov, OptimizerKind::Adam, OptimizerKind::AdamW];
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Momentum => "momentum",
            OptimizerKind::Nesterov => "nesterov",
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
        }
    }
    pub fn code(self) -> u32 {
        self as u32
    }
    /// How many state tensors of the parameter's size the rule keeps.
    pub fn state_slots(self) -> usize {
        match self {
            OptimizerKind::Sgd => 0,
            OptimizerKind::Momentum | OptimizerKind::Nesterov => 1,
            OptimizerKind::Adam | OptimizerKind::AdamW => 2,
        }
    }
}

impl FromStr for OptimizerKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        for k in Self::ALL {
            if k.name() == s.trim() {
                return Ok(k);
            }
        }
        bail!("unknown optimizer '{s}'; expected one of: sgd, momentum, nesterov, adam, adamw")
    }
}
impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Learning rate as a function of the epoch (0-based) and the step within the run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// η·γ^⌊epoch / every⌋
    Step { every: usize, gamma: f64 },
    /// η·γ^epoch
    Exponential { gamma: f64 },
    /// η_min + ½(η − η_min)(1 + cos(π·step/total_steps)), per step.
    Cosine { min_lr: f64 },
}

impl Schedule {
    pub fn lr(&self, base: f64, epoch: usize, step: u64, total_steps: u64) -> f64 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => base * gamma.powi((epoch / every.max(1)) as i32),
            Schedule::Exponential { gamma } => base * gamma.powi(epoch as i32),
            Schedule::Cosine { min_lr } => {
                let frac = step as f64 / total_steps.max(1) as f64;
                min_lr + 0.5 * (base - min_lr) * (1.0 + (std::f64::consts::PI * frac).cos())
            }
        }
    }
}

impl FromStr for Schedule {
    type Err = anyhow::Error;
    /// `constant`, `step:EVERY:GAMMA`, `exponential:GAMMA`, `cosine[:MIN_LR]`.
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        let num = |i: usize, what: &str| -> Result<f64> {
            let v: f64 = parts
                .get(i)
                .with_context(|| format!("schedule '{s}' is missing its {what}"))?
                .parse()
                .with_context(|| format!("schedule '{s}': {what} is not a number"))?;
            if !v.is_finite() || v < 0.0 {
                bail!("schedule '{s}': {what} must be a finite number ≥ 0, got {v}");
            }
            Ok(v)
        };
        let sched = match parts[0] {
            "constant" if parts.len() == 1 => Schedule::Constant,
            "step" if parts.len() == 3 => {
                let every = num(1, "step length in epochs")?;
                if every < 1.0 || every.fract() != 0.0 {
                    bail!("schedule '{s}': the step length must be a whole number of epochs ≥ 1");
                }
                Schedule::Step { every: every as usize, gamma: num(2, "decay factor")? }
            }
            "exponential" if parts.len() == 2 => Schedule::Exponential { gamma: num(1, "decay factor")? },
            "cosine" if parts.len() <= 2 => {
                Schedule::Cosine { min_lr: if parts.len() == 2 { num(1, "minimum learning rate")? } else { 0.0 } }
            }
            _ => bail!(
                "unknown schedule '{s}'; expected constant, step:EVERY:GAMMA, exponential:GAMMA or cosine[:MIN_LR]"
            ),
        };
        Ok(sched)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Constant => write!(f, "constant"),
            Schedule::Step { every, gamma } => write!(f, "step:{every}:{gamma}"),
            Schedule::Exponential { gamma } => write!(f, "exponential:{gamma}"),
            Schedule::Cosine { min_lr } => write!(f, "cosine:{min_lr}"),
        }
    }
}
crate::serde_via_string!(Schedule);

/// The optimiser and its hyper-parameters, shared by every backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSpec {
    pub kind: OptimizerKind,
    pub lr: f64,
    pub schedule: Schedule,
    /// μ for momentum and Nesterov.
    pub momentum: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
    /// Weights and biases alike: for sgd, momentum, nesterov and adam the L2 penalty λ added to
    /// the gradient (g ← g + λ·w); for adamw the decoupled decay w ← w·(1 − η·λ). 0 for every
    /// kind unless given (PyTorch's AdamW defaults to 0.01: give `--weight-decay 0.01`).
    pub weight_decay: f64,
    /// Max-norm constraint c (Srivastava et al. 2014): after every update each unit's incoming
    /// weight vector (a row of W [out, in], every layer, not the bias) longer than c is scaled
    /// back to length c. 0 = off, and then omitted from files.
    #[serde(default, skip_serializing_if = "crate::nn::model::is_zero")]
    pub max_norm: f64,
    /// Gradient clipping by global norm C before the update, as `torch.nn.utils.clip_grad_norm_`:
    /// g ← g·min(1, C/(‖g‖₂ + 1e-6)), ‖g‖₂ over every weight and bias gradient of the model
    /// (before weight decay is added). None = off, and then omitted from files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_norm: Option<f64>,
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        OptimizerSpec {
            kind: OptimizerKind::Sgd,
            lr: 0.1,
            schedule: Schedule::Constant,
            momentum: 0.9,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
            max_norm: 0.0,
            clip_norm: None,
        }
    }
}

impl OptimizerSpec {
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            bail!("--lr must be a finite number > 0, got {}", self.lr);
        }
        if !(0.0..1.0).contains(&self.momentum) {
            bail!("--momentum must be in [0, 1), got {}", self.momentum);
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            bail!("Adam's beta1 and beta2 must be in [0, 1), got {} and {}", self.beta1, self.beta2);
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            bail!("Adam's epsilon must be a finite number > 0, got {}", self.epsilon);
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            bail!("--weight-decay must be a finite number ≥ 0, got {}", self.weight_decay);
        }
        if !(self.max_norm.is_finite() && self.max_norm >= 0.0) {
            bail!("--max-norm must be a finite number ≥ 0 (0 turns the constraint off), got {}", self.max_norm);
        }
        if let Some(c) = self.clip_norm {
            if !(c.is_finite() && c > 0.0) {
                bail!("--clip-norm must be a finite number > 0 (leave it out to turn clipping off), got {c}");
            }
        }
        Ok(())
    }
}

/// g + λ·w: the gradient with the L2 penalty folded in.
#[inline(always)]
fn decayed<T: Real>(g: T, w: T, weight_decay: T) -> T {
    g + weight_decay * w
}

/// SGD: w ← w − η·g
#[inline(always)]
pub fn sgd_step<T: Real>(w: &mut [T], g: &[T], lr: T, wd: T) {
    for (w, &g) in w.iter_mut().zip(g) {
        *w = *w - lr * decayed(g, *w, wd);
    }
}

/// Momentum: v ← μ·v + g;  w ← w − η·v
#[inline(always)]
pub fn momentum_step<T: Real>(w: &mut [T], g: &[T], v: &mut [T], lr: T, mu: T, wd: T) {
    for ((w, &g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
        let g = decayed(g, *w, wd);
        *v = mu * *v + g;
        *w = *w - lr * *v;
    }
}

/// Nesterov: v ← μ·v + g;  w ← w − η·(g + μ·v)
#[inline(always)]
pub fn nesterov_step<T: Real>(w: &mut [T], g: &[T], v: &mut [T], lr: T, mu: T, wd: T) {
    for ((w, &g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
        let g = decayed(g, *w, wd);
        *v = mu * *v + g;
        *w = *w - lr * (g + mu * *v);
    }
}

/// Adam at step t ≥ 1: m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
/// m̂ = m/(1−β1^t);  v̂ = v/(1−β2^t);  w ← w − α·m̂/(√v̂ + ε)
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn adam_step<T: Real>(w: &mut [T], g: &[T], m: &mut [T], v: &mut [T], lr: T, b1: T, b2: T, eps: T, t: u64, wd: T) {
    let c1 = T::one() - b1.powi(t as i32);
    let c2 = T::one() - b2.powi(t as i32);
    for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = decayed(g, *w, wd);
        *m = b1 * *m + (T::one() - b1) * g;
        *v = b2 * *v + (T::one() - b2) * (g * g);
        let m_hat = *m / c1;
        let v_hat = *v / c2;
        *w = *w - lr * m_hat / (v_hat.sqrt() + eps);
    }
}

/// AdamW at step t ≥ 1 (PyTorch's order): w ← w·(1 − η·λ); then Adam's moments and update
/// with the raw gradient g: m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  w ← w − η·m̂/(√v̂ + ε).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn adamw_step<T: Real>(w: &mut [T], g: &[T], m: &mut [T], v: &mut [T], lr: T, b1: T, b2: T, eps: T, t: u64, wd: T) {
    let c1 = T::one() - b1.powi(t as i32);
    let c2 = T::one() - b2.powi(t as i32);
    let keep = T::one() - lr * wd;
    for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let decayed = *w * keep;
        *m = b1 * *m + (T::one() - b1) * g;
        *v = b2 * *v + (T::one() - b2) * (g * g);
        let m_hat = *m / c1;
        let v_hat = *v / c2;
        *w = decayed - lr * m_hat / (v_hat.sqrt() + eps);
    }
}

/// The factor `clip_norm` scales every gradient by: min(1, C/(‖g‖₂ + 1e-6)) for the global
/// norm ‖g‖₂ whose square is `sum_sq` (PyTorch's clip_grad_norm_, 1e-6 included).
pub fn clip_scale(clip_norm: f64, sum_sq: f64) -> f64 {
    (clip_norm / (sum_sq.sqrt() + 1e-6)).min(1.0)
}

/// Σ g² over `tensors` in order, element by element, accumulated in f64 whatever T is: one fixed
/// order, so the same gradients give the same norm on any thread count.
pub fn sum_of_squares<'a, T: Real>(tensors: impl IntoIterator<Item = &'a [T]>) -> f64 {
    let mut s = 0.0f64;
    for t in tensors {
        for &g in t {
            let g = g.f64();
            s += g * g;
        }
    }
    s
}

/// The max-norm constraint on one weight matrix [rows × cols]: a row whose Euclidean norm
/// exceeds c is scaled by c/‖row‖ (so its norm is c up to rounding); shorter rows are left as
/// they are. The norm is summed in T, in order (`optimizer.wgsl`'s `max_norm` does the same in f32).
pub fn max_norm_rows<T: Real>(w: &mut [T], cols: usize, c: T) {
    for row in w.chunks_mut(cols.max(1)) {
        let mut s = T::zero();
        for &x in row.iter() {
            s = s + x * x;
        }
        let norm = s.sqrt();
        if norm > c {
            let f = c / norm;
            row.iter_mut().for_each(|x| *x = *x * f);
        }
    }
}

/// Applies the configured rule to one parameter tensor. `state` holds `kind.state_slots()`
/// tensors of `w`'s length; `t` is the 1-based step counter.
pub fn apply<T: Real>(spec: &OptimizerSpec, lr: f64, t: u64, w: &mut [T], g: &[T], state: &mut [Vec<T>]) {
    let mut slots: Vec<&mut [T]> = state.iter_mut().map(|s| s.as_mut_slice()).collect();
    apply_slices(spec, lr, t, w, g, &mut slots)
}

/// `apply` on any part of a tensor: the rules are element by element, so a tensor may be
/// updated in pieces (on several threads) with the same result. On x86-64 with AVX2 the loops
/// run eight lanes wide: the same IEEE operations in the same order (Rust never fuses a multiply
/// and an add by itself), so the same bytes as the baseline build's four lanes.
pub fn apply_slices<T: Real>(spec: &OptimizerSpec, lr: f64, t: u64, w: &mut [T], g: &[T], state: &mut [&mut [T]]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { apply_slices_avx2(spec, lr, t, w, g, state) };
    }
    apply_slices_here(spec, lr, t, w, g, state)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn apply_slices_avx2<T: Real>(spec: &OptimizerSpec, lr: f64, t: u64, w: &mut [T], g: &[T], state: &mut [&mut [T]]) {
    apply_slices_here(spec, lr, t, w, g, state)
}

/// `apply_slices`, compiled into its caller (and so for the caller's vector width).
#[inline(always)]
fn apply_slices_here<T: Real>(spec: &OptimizerSpec, lr: f64, t: u64, w: &mut [T], g: &[T], state: &mut [&mut [T]]) {
    let (lr, wd) = (T::of(lr), T::of(spec.weight_decay));
    match spec.kind {
        OptimizerKind::Sgd => sgd_step(w, g, lr, wd),
        OptimizerKind::Momentum => momentum_step(w, g, state[0], lr, T::of(spec.momentum), wd),
        OptimizerKind::Nesterov => nesterov_step(w, g, state[0], lr, T::of(spec.momentum), wd),
        OptimizerKind::Adam => {
            let (m, v) = state.split_at_mut(1);
            adam_step(w, g, m[0], v[0], lr, T::of(spec.beta1), T::of(spec.beta2), T::of(spec.epsilon), t, wd)
        }
        OptimizerKind::AdamW => {
            let (m, v) = state.split_at_mut(1);
            adamw_step(w, g, m[0], v[0], lr, T::of(spec.beta1), T::of(spec.beta2), T::of(spec.epsilon), t, wd)
        }
    }
}

/// Optimiser state of a whole model, in f64, so it can be checkpointed and compared between
/// backends: per layer, per tensor (weight, bias), `state_slots` vectors.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct OptimState {
    /// Number of updates taken so far (Adam's t before the next step).
    pub step: u64,
    /// `slots[layer][tensor][slot]`, tensor 0 = weight, 1 = bias.
    pub slots: Vec<[Vec<Vec<f64>>; 2]>,
}
