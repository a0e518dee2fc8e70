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

/// Learning rate as a function of the epoch (0-based) and the step within the run (0-based,
/// of `total_steps`). The per-step schedules follow PyTorch's schedulers stepped once per
/// optimiser step, so their sequences can be compared (scripts/compare_schedules.py).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// η·γ^⌊epoch / every⌋
    Step { every: usize, gamma: f64 },
    /// η·γ^epoch
    Exponential { gamma: f64 },
    /// η_min + ½(η − η_min)(1 + cos(π·step/total_steps)), per step (PyTorch's
    /// CosineAnnealingLR with T_max = total_steps).
    Cosine { min_lr: f64 },
    /// η + (η_min − η)·step/total_steps, per step: η at the first step, η_min + (η − η_min)/T
    /// at the last (PyTorch's LinearLR with start_factor 1, end_factor η_min/η, total_iters T).
    Linear { min_lr: f64 },
    /// PyTorch's OneCycleLR (anneal_strategy='cos', three_phase=False), learning rate only (its
    /// default also cycles the momentum; this does not). With T = total_steps, s = step,
    /// η₀ = η/div, η_end = η₀/final_div, e = pct·T − 1 (a real number) and
    /// cos_anneal(a, b, x) = b + ½(a − b)(1 + cos(π·x)):
    ///   s ≤ e: cos_anneal(η₀, η, s/e)                      (rising to η at s = e)
    ///   s > e: cos_anneal(η, η_end, (s − e)/(T − 1 − e))   (η_end at the last step, s = T − 1)
    /// Where e = 0 (pct·T = 1) PyTorch divides 0 by 0 at the first step; here that step takes η.
    OneCycle { pct: f64, div: f64, final_div: f64 },
}

impl Schedule {
    /// One-cycle's defaults, PyTorch's: pct_start 0.3, div_factor 25, final_div_factor 1e4.
    pub const ONE_CYCLE_DEFAULTS: (f64, f64, f64) = (0.3, 25.0, 1e4);

    pub fn lr(&self, base: f64, epoch: usize, step: u64, total_steps: u64) -> f64 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => base * gamma.powi((epoch / every.max(1)) as i32),
            Schedule::Exponential { gamma } => base * gamma.powi(epoch as i32),
            Schedule::Cosine { min_lr } => {
                let frac = step as f64 / total_steps.max(1) as f64;
                min_lr + 0.5 * (base - min_lr) * (1.0 + (std::f64::consts::PI * frac).cos())
            }
            Schedule::Linear { min_lr } => {
                let frac = step as f64 / total_steps.max(1) as f64;
                base + (min_lr - base) * frac
            }
            Schedule::OneCycle { pct, div, final_div } => {
                let cos_anneal = |a: f64, b: f64, x: f64| b + 0.5 * (a - b) * (1.0 + (std::f64::consts::PI * x).cos());
                let (t, s) = (total_steps.max(1) as f64, step as f64);
                let (initial, end) = (base / div, base / div / final_div);
                let e = pct * t - 1.0;
                if s <= e {
                    cos_anneal(initial, base, if e > 0.0 { s / e } else { 1.0 })
                } else {
                    // pct < 1 makes T − 1 − e = T(1 − pct) > 0
                    cos_anneal(base, end, (s - e) / (t - 1.0 - e))
                }
            }
        }
    }

    /// The schedule's name, without its parameters.
    pub fn name(&self) -> &'static str {
        match self {
            Schedule::Constant => "constant",
            Schedule::Step { .. } => "step",
            Schedule::Exponential { .. } => "exponential",
            Schedule::Cosine { .. } => "cosine",
            Schedule::Linear { .. } => "linear",
            Schedule::OneCycle { .. } => "one_cycle",
        }
    }

    /// Whether the schedule is laid out over the run's total steps, so that a run lengthened
    /// on resume changes the learning rate of its remaining steps.
    pub fn spans_the_run(&self) -> bool {
        matches!(self, Schedule::Cosine { .. } | Schedule::Linear { .. } | Schedule::OneCycle { .. })
    }
}

impl FromStr for Schedule {
    type Err = anyhow::Error;
    /// `constant`, `step:EVERY:GAMMA`, `exponential:GAMMA`, `cosine[:MIN_LR]`, `linear[:MIN_LR]`,
    /// `one_cycle[:PCT[:DIV[:FINAL_DIV]]]`.
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
            "linear" if parts.len() <= 2 => {
                Schedule::Linear { min_lr: if parts.len() == 2 { num(1, "minimum learning rate")? } else { 0.0 } }
            }
            "one_cycle" if parts.len() <= 4 => {
                let (mut pct, mut div, mut final_div) = Schedule::ONE_CYCLE_DEFAULTS;
                if parts.len() > 1 {
                    pct = num(1, "warm fraction PCT")?;
                    if !(pct > 0.0 && pct < 1.0) {
                        bail!("schedule '{s}': PCT, the fraction of the steps spent rising, must be in (0, 1), got {pct}");
                    }
                }
                if parts.len() > 2 {
                    div = num(2, "initial divisor DIV")?;
                    if div <= 0.0 {
                        bail!("schedule '{s}': DIV (the first learning rate is lr/DIV) must be > 0, got {div}");
                    }
                }
                if parts.len() > 3 {
                    final_div = num(3, "final divisor FINAL_DIV")?;
                    if final_div <= 0.0 {
                        bail!("schedule '{s}': FINAL_DIV (the last learning rate is lr/(DIV·FINAL_DIV)) must be > 0, got {final_div}");
                    }
                }
                Schedule::OneCycle { pct, div, final_div }
            }
            _ => bail!(
                "unknown schedule '{s}'; expected constant, step:EVERY:GAMMA, exponential:GAMMA, cosine[:MIN_LR], linear[:MIN_LR] or one_cycle[:PCT[:DIV[:FINAL_DIV]]]"
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
            Schedule::Linear { min_lr } => write!(f, "linear:{min_lr}"),
            Schedule::OneCycle { pct, div, final_div } => write!(f, "one_cycle:{pct}:{div}:{final_div}"),
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
    /// Linear warm-up over the first `warmup_steps` steps of the run (0 = none): step s
    /// (0-based) takes the schedule's rate times (s + 1)/warmup_steps while s < warmup_steps,
    /// so the first step takes 1/warmup_steps of it and step warmup_steps − 1 all of it.
    /// That is PyTorch's LinearLR(start_factor=1/W, end_factor=1, total_iters=W−1) chained
    /// (multiplied) with the schedule. Left out of config.json when 0, so the files and
    /// checkpoints of runs without it read as before.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warmup_steps: u64,
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
            warmup_steps: 0,
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

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl OptimizerSpec {
    /// The learning rate of step `step` (0-based, over a run of `total_steps`) in epoch
    /// `epoch`: the schedule's, times the warm-up factor. Computed on the host in f64 and
    /// handed to every backend, so all take the same rates.
    pub fn lr_at(&self, epoch: usize, step: u64, total_steps: u64) -> f64 {
        let lr = self.schedule.lr(self.lr, epoch, step, total_steps);
        if step < self.warmup_steps { lr * ((step + 1) as f64 / self.warmup_steps as f64) } else { lr }
    }

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

/// Σ g² over `values` in order, accumulated in f64 whatever T is: one fixed order, so the same
/// gradients give the same norm on any thread count.
pub fn sum_of_squares<T: Real>(values: impl IntoIterator<Item = T>) -> f64 {
    let mut s = 0.0f64;
    for g in values {
        let g = g.f64();
        s += g * g;
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

/// `max_norm_rows` on W [units×inputs] held as its transpose `wt` [inputs×units] (the CPU
/// backend's first layer, `cpu::products::WeightLayout::InByOut`): a unit's incoming weights
/// are a column of `wt`, its norm summed down the column in the inputs' order, as along W's
/// row, so the same bits.
pub fn max_norm_columns<T: Real>(wt: &mut [T], units: usize, c: T) {
    let units = units.max(1);
    let mut s = vec![T::zero(); units];
    for row in wt.chunks(units) {
        for (s, &x) in s.iter_mut().zip(row) {
            *s = *s + x * x;
        }
    }
    let f: Vec<Option<T>> = s.iter().map(|s| s.sqrt()).map(|norm| (norm > c).then(|| c / norm)).collect();
    for row in wt.chunks_mut(units) {
        for (x, f) in row.iter_mut().zip(&f) {
            if let Some(f) = *f {
                *x = *x * f;
            }
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
/// updated in pieces (on several threads) with the same result. On x86-64 with AVX-512 or AVX2
/// the loops run sixteen or eight lanes wide: the same IEEE operations in the same order (Rust
/// never fuses a multiply and an add by itself), so the same bytes as the baseline build's four
/// lanes. Adam's loops stay eight wide: with its square roots and divisions sixteen wide the
/// wide network's command took 1 % longer (farm-bench, two runs of 5 and 6 pairs), while SGD's
/// sixteen made seed000-mnist's 0.6–1.3 % quicker (two runs of 8 pairs).
pub fn apply_slices<T: Real>(spec: &OptimizerSpec, lr: f64, t: u64, w: &mut [T], g: &[T], state: &mut [&mut [T]]) {
    #[cfg(target_arch = "x86_64")]
    if !matches!(spec.kind, OptimizerKind::Adam | OptimizerKind::AdamW) && std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above.
        return unsafe { apply_slices_avx512(spec, lr, t, w, g, state) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { apply_slices_avx2(spec, lr, t, w, g, state) };
    }
    apply_slices_here(spec, lr, t, w, g, state)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn apply_slices_avx512<T: Real>(spec: &OptimizerSpec, lr: f64, t: u64, w: &mut [T], g: &[T], state: &mut [&mut [T]]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every step's rate of `spec` over a run of `total` steps in one epoch.
    fn rates(spec: &OptimizerSpec, total: u64) -> Vec<f64> {
        (0..total).map(|s| spec.lr_at(0, s, total)).collect()
    }

    fn spec(lr: f64, schedule: &str, warmup_steps: u64) -> OptimizerSpec {
        OptimizerSpec { lr, schedule: schedule.parse().unwrap(), warmup_steps, ..Default::default() }
    }

    fn assert_close(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (s, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-14 * w.abs().max(1e-300), "step {s}: {g} vs {w}\n got {got:?}\nwant {want:?}");
        }
    }

    /// The max-norm constraint on a transposed W gives W's bits, transposed: some units over
    /// the bound (scaled), some under (left), on a shape that is not square.
    #[test]
    fn max_norm_on_the_transpose_is_the_transpose_of_max_norm() {
        let (units, inputs) = (5, 7);
        let w: Vec<f32> = (0..units * inputs).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3 * (1 + i / inputs) as f32).collect();
        let t = |m: &[f32], rows: usize, cols: usize| (0..rows * cols).map(|i| m[(i % rows) * cols + i / rows]).collect::<Vec<f32>>();
        let mut rows = w.clone();
        max_norm_rows(&mut rows, inputs, 4.0);
        let changed = rows.chunks(inputs).zip(w.chunks(inputs)).filter(|(a, b)| a != b).count();
        assert!(changed > 0 && changed < units, "{changed} of {units} units scaled: the case must have both");
        let mut cols = t(&w, units, inputs); // [inputs×units]
        max_norm_columns(&mut cols, units, 4.0);
        let back = t(&cols, inputs, units);
        assert_eq!(back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), rows.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
    }

    #[test]
    fn linear_decays_per_step_from_lr_towards_min_lr() {
        // 0.1 + (0.02 − 0.1)·s/4
        assert_close(&rates(&spec(0.1, "linear:0.02", 0), 4), &[0.1, 0.08, 0.06, 0.04]);
        assert_close(&rates(&spec(0.1, "linear", 0), 4), &[0.1, 0.075, 0.05, 0.025]);
    }

    #[test]
    fn one_cycle_takes_pytorchs_rates() {
        // torch.optim.lr_scheduler.OneCycleLR(max_lr=1, total_steps=10, anneal_strategy='cos'),
        // read before each optimiser step (torch 2.x, scripts/compare_schedules.py). By hand:
        // e = 0.3·10 − 1 = 2; s=0: 1/25; s=1: 1 + ½(0.04 − 1)(1 + cos π/2) = 0.52; s=2: 1;
        // s=9: (9 − 2)/(9 − 2) = 1, so 1/25/1e4 = 4e-6.
        let torch = [0.04, 0.52, 1.0, 0.9504846320134737, 0.8117456539497631, 0.6112620219362893, 0.38874197806371075, 0.18825834605023697, 0.049519367986526286, 4e-06];
        assert_close(&rates(&spec(1.0, "one_cycle", 0), 10), &torch);
        assert_close(&rates(&spec(1.0, "one_cycle:0.3:25:10000", 0), 10), &torch);
        // pct·T − 1 = 0.75 is not a whole step: step 0 alone rises, then the fall to 0.5/10/100
        let torch = [0.05, 0.49721049884972585, 0.4333297049894991, 0.3058246032555895, 0.15900607916449283, 0.04389686611458033, 0.0005];
        assert_close(&rates(&spec(0.5, "one_cycle:0.25:10:100", 0), 7), &torch);
    }

    #[test]
    fn one_cycle_with_a_single_rising_step_starts_at_lr() {
        // pct·T = 1: the rise ends at step 0 (PyTorch computes 0/0 there)
        let r = rates(&spec(1.0, "one_cycle:0.25", 0), 4);
        assert_eq!(r[0], 1.0);
        assert!((r[3] - 1.0 / 25.0 / 1e4).abs() < 1e-18, "{r:?}");
    }

    #[test]
    fn warmup_multiplies_the_schedule_by_step_plus_one_over_warmup() {
        assert_close(&rates(&spec(0.1, "constant", 4), 6), &[0.025, 0.05, 0.075, 0.1, 0.1, 0.1]);
        // PyTorch: ChainedScheduler([LinearLR(start_factor=1/3, end_factor=1, total_iters=2),
        // LinearLR(start_factor=1, end_factor=0.1, total_iters=6)]) on lr 0.1
        let torch = [0.03333333333333333, 0.056666666666666664, 0.06999999999999999, 0.05499999999999999, 0.039999999999999994, 0.024999999999999994];
        assert_close(&rates(&spec(0.1, "linear:0.01", 3), 6), &torch);
        // epoch-wise schedules too: step 1 of a 2-step warm-up in epoch 1 of step:1:0.5
        assert_eq!(spec(0.1, "step:1:0.5", 2).lr_at(1, 0, 10), 0.1 * 0.5 * 0.5);
        assert_eq!(spec(0.1, "constant", 1).lr_at(0, 0, 10), 0.1);
    }

    #[test]
    fn schedules_print_as_they_parse() {
        for s in ["linear:0.001", "linear:0", "one_cycle:0.3:25:10000", "one_cycle:0.5:10:100", "cosine:0"] {
            assert_eq!(s.parse::<Schedule>().unwrap().to_string(), s);
        }
        assert_eq!("linear".parse::<Schedule>().unwrap(), Schedule::Linear { min_lr: 0.0 });
        assert_eq!("one_cycle:0.4".parse::<Schedule>().unwrap(), Schedule::OneCycle { pct: 0.4, div: 25.0, final_div: 1e4 });
        assert_eq!("one_cycle:0.4:5".parse::<Schedule>().unwrap(), Schedule::OneCycle { pct: 0.4, div: 5.0, final_div: 1e4 });
    }

    #[test]
    fn bad_schedules_are_refused_with_one_line_naming_the_value() {
        for (s, says) in [
            ("one_cycle:0", "PCT"),
            ("one_cycle:1", "PCT"),
            ("one_cycle:1.5", "PCT"),
            ("one_cycle:0.3:0", "DIV"),
            ("one_cycle:0.3:25:0", "FINAL_DIV"),
            ("one_cycle:0.3:-2", "≥ 0"),
            ("one_cycle:x", "not a number"),
            ("one_cycle:0.3:25:1e4:9", "expected constant"),
            ("linear:-1", "≥ 0"),
            ("linear:1:2", "expected constant"),
        ] {
            let e = format!("{:#}", s.parse::<Schedule>().unwrap_err());
            assert!(e.contains(says) && e.contains(s) && !e.contains('\n'), "{s}: {e}");
        }
    }

    #[test]
    fn no_warmup_is_left_out_of_the_json() {
        let v = serde_json::to_value(OptimizerSpec::default()).unwrap();
        assert!(v.get("warmup_steps").is_none(), "{v}");
        let v = serde_json::to_value(OptimizerSpec { warmup_steps: 5, ..Default::default() }).unwrap();
        assert_eq!(v["warmup_steps"], 5);
    }
}
