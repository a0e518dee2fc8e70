//! The equations of the network, one function each, generic over the float type so the f64
//! reference and the f32 fast path share a single definition. The WGSL kernels in `shaders/`
//! implement the same formulas; `tests/` holds them together.

use crate::nn::model::{Activation, LEAKY_SLOPE, Loss};
use num_traits::{Float, FromPrimitive};
use std::fmt::Debug;
use std::iter::Sum;

/// A float type a CPU backend can compute in, with its matrix product.
pub trait Real: Float + FromPrimitive + Sum + Default + Debug + Send + Sync + 'static {
    const NAME: &'static str;
    /// Whether the CPU backend computes in this type with subnormals flushed to zero
    /// (`cpu::flush`): the f32 fast path does, the f64 reference never.
    const FLUSHES_SUBNORMALS: bool;
    fn of(x: f64) -> Self {
        Self::from_f64(x).unwrap()
    }
    fn f64(self) -> f64 {
        self.to_f64().unwrap()
    }
    /// `C[m×n] = alpha·A[m×k]·B[k×n] + beta·C`, with A and B addressed through row and column
    /// strides (so transposes cost nothing) and C row-major with row stride `rsc`.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize, k: usize, n: usize, alpha: Self,
        a: &[Self], rsa: usize, csa: usize,
        b: &[Self], rsb: usize, csb: usize,
        beta: Self, c: &mut [Self], rsc: usize,
    ) {
        Self::gemm_threads(1, m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc)
    }

    /// Whether `gemm_threads` hands part of an m×k×n product to a second thread (given more
    /// than one): the CPU backend runs a step that splits nothing on the calling thread alone.
    fn splits_product(_m: usize, _k: usize, _n: usize) -> bool {
        false
    }

    /// The length of the blocks of k whose sums `gemm_threads` adds to C one after another
    /// (`C = α·s₀ + β·C`, then `C = α·sᵢ + C`), where it works so: a product whose k is cut at
    /// multiples of it into calls, the first with `beta` and the others with 1, then gives the
    /// bits of one call. `None`: only one call over all of k gives them.
    fn k_block() -> Option<usize> {
        None
    }

    /// Whether the CPU backend holds the first layer's weights as Wᵀ [in×out]
    /// (`cpu::products::WeightLayout`): where the GEMM is `nn::sgemm`, whose every element is
    /// one chain of fused products in k's order whatever the operands' strides, so the bytes
    /// are the same as with W [out×in] and the forward product reads Wᵀ's rows instead of
    /// transposing W every step. The f64 reference keeps the equations' layout.
    fn transposes_first_layer() -> bool {
        false
    }

    /// v = e^v element by element; the f32 fast path computes 16 at a time with the same bits
    /// (`nn::expf`).
    fn exp_in_place(v: &mut [Self]) {
        v.iter_mut().for_each(|x| *x = x.exp())
    }

    /// a = σ(z) element by element (`sigmoid`); the f32 fast path computes 16 at a time with
    /// the same bits (`nn::expf`).
    fn sigmoid_slice(z: &[Self], a: &mut [Self]) {
        sigmoid_each(z, a)
    }

    /// `gemm` on up to `threads` cores. The result does not depend on `threads`: work is split
    /// by blocks of C, and every element sums its products in one fixed order.
    #[allow(clippy::too_many_arguments)]
    fn gemm_threads(
        threads: usize,
        m: usize, k: usize, n: usize, alpha: Self,
        a: &[Self], rsa: usize, csa: usize,
        b: &[Self], rsb: usize, csb: usize,
        beta: Self, c: &mut [Self], rsc: usize,
    );
}

/// Reference matrix product: the textbook triple loop, summing `p` in order.
#[allow(clippy::too_many_arguments)]
pub fn gemm_reference<T: Float>(
    m: usize, k: usize, n: usize, alpha: T,
    a: &[T], rsa: usize, csa: usize,
    b: &[T], rsb: usize, csb: usize,
    beta: T, c: &mut [T], rsc: usize,
) {
    for i in 0..m {
        for j in 0..n {
            let mut s = T::zero();
            for p in 0..k {
                s = s + a[i * rsa + p * csa] * b[p * rsb + j * csb];
            }
            let cij = &mut c[i * rsc + j];
            *cij = if beta == T::zero() { alpha * s } else { alpha * s + beta * *cij };
        }
    }
}

fn check_extent(len: usize, rows: usize, cols: usize, rs: usize, cs: usize) {
    if rows > 0 && cols > 0 {
        assert!((rows - 1) * rs + (cols - 1) * cs < len, "gemm operand out of bounds");
    }
}

/// The reference is the plain triple loop on one core, whatever `threads` says.
impl Real for f64 {
    const NAME: &'static str = "f64";
    const FLUSHES_SUBNORMALS: bool = false;
    fn gemm_threads(_threads: usize, m: usize, k: usize, n: usize, alpha: f64, a: &[f64], rsa: usize, csa: usize, b: &[f64], rsb: usize, csb: usize, beta: f64, c: &mut [f64], rsc: usize) {
        gemm_reference(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc)
    }
}

/// Multiply-adds (m·k·n) from which a product runs on the `gemm` crate, split over threads,
/// where the CPU lacks AVX-512. Below it, waking a second core costs more than it saves
/// (measured on seed001's 64×784×128: slower on two), and matrixmultiply is as fast on one.
pub const PARALLEL_MIN_WORK: usize = 1 << 24;

/// The fast path. On x86-64 with AVX-512F: this crate's kernel (`nn::sgemm`), every size, split
/// over threads by panels of C. Elsewhere, small products: matrixmultiply on one core; large
/// ones: the `gemm` crate's packed AVX2/NEON kernels, split over rayon's threads by blocks of
/// C. Which code computes a product depends on the CPU and the size only, never on `threads`,
/// so neither does the result.
impl Real for f32 {
    const NAME: &'static str = "f32";
    const FLUSHES_SUBNORMALS: bool = true;
    fn splits_product(m: usize, k: usize, n: usize) -> bool {
        let macs = m.saturating_mul(k).saturating_mul(n);
        #[cfg(target_arch = "x86_64")]
        if crate::nn::sgemm::available() {
            return crate::nn::sgemm::splits(m, k, n);
        }
        macs >= PARALLEL_MIN_WORK
    }
    fn k_block() -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if crate::nn::sgemm::available() {
            return Some(crate::nn::sgemm::KC);
        }
        None
    }
    fn transposes_first_layer() -> bool {
        Self::k_block().is_some()
    }
    fn exp_in_place(v: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if crate::nn::expf::available() {
            // SAFETY: `available` said yes.
            return unsafe { crate::nn::expf::exp_in_place(v) };
        }
        v.iter_mut().for_each(|x| *x = x.exp())
    }
    fn sigmoid_slice(z: &[f32], a: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if crate::nn::expf::available() {
            // SAFETY: `available` said yes.
            return unsafe { crate::nn::expf::sigmoid(z, a) };
        }
        sigmoid_each(z, a)
    }
    fn gemm_threads(threads: usize, m: usize, k: usize, n: usize, alpha: f32, a: &[f32], rsa: usize, csa: usize, b: &[f32], rsb: usize, csb: usize, beta: f32, c: &mut [f32], rsc: usize) {
        check_extent(a.len(), m, k, rsa, csa);
        check_extent(b.len(), k, n, rsb, csb);
        check_extent(c.len(), m, n, rsc, 1);
        #[cfg(target_arch = "x86_64")]
        if crate::nn::sgemm::available() {
            // SAFETY: the CPU has AVX-512F, and the extents were checked just above.
            unsafe { crate::nn::sgemm::sgemm(threads, m, k, n, alpha, a.as_ptr(), rsa, csa, b.as_ptr(), rsb, csb, beta, c.as_mut_ptr(), rsc) };
            return;
        }
        if m.saturating_mul(k).saturating_mul(n) < PARALLEL_MIN_WORK {
            // SAFETY: the extents of all three operands were checked against their slices above.
            unsafe {
                matrixmultiply::sgemm(
                    m, k, n, alpha,
                    a.as_ptr(), rsa as isize, csa as isize,
                    b.as_ptr(), rsb as isize, csb as isize,
                    beta, c.as_mut_ptr(), rsc as isize, 1,
                )
            }
            return;
        }
        let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
        // SAFETY: as above. gemm's scalars are the other way round: dst = alpha·dst + beta·lhs·rhs.
        unsafe {
            gemm::gemm(
                m, n, k,
                c.as_mut_ptr(), 1, rsc as isize, beta != 0.0,
                a.as_ptr(), csa as isize, rsa as isize,
                b.as_ptr(), csb as isize, rsb as isize,
                beta, alpha, false, false, false, par,
            )
        }
    }
}

/// σ(z) = 1/(1+e^(−z)), evaluated so that neither branch overflows for large |z|.
#[inline(always)]
pub fn sigmoid<T: Real>(z: T) -> T {
    if z >= T::zero() {
        T::one() / (T::one() + (-z).exp())
    } else {
        let e = z.exp();
        e / (T::one() + e)
    }
}

/// a = σ(z) one element at a time (`Real::sigmoid_slice`'s scalar form).
pub fn sigmoid_each<T: Real>(z: &[T], a: &mut [T]) {
    for (ak, &zk) in a.iter_mut().zip(z) {
        *ak = sigmoid(zk);
    }
}

/// softplus(z) = ln(1 + e^z), stable for large |z|.
pub fn softplus<T: Real>(z: T) -> T {
    z.max(T::zero()) + (-z.abs()).exp().ln_1p()
}

/// a = f(z) for the elementwise activations.
#[inline(always)]
pub fn activate<T: Real>(act: Activation, z: T) -> T {
    match act {
        Activation::Identity => z,
        Activation::Sigmoid => sigmoid(z),
        Activation::Tanh => z.tanh(),
        Activation::Relu => if z > T::zero() { z } else { T::zero() },
        Activation::LeakyRelu => if z >= T::zero() { z } else { T::of(LEAKY_SLOPE) * z },
        Activation::Softmax => unreachable!("softmax is row-wise: use softmax_row"),
    }
}

/// f'(z), using the already computed a = f(z) where that is the cheaper form.
/// ReLU's derivative at exactly 0 is taken as 0 (PyTorch's convention).
#[inline(always)]
pub fn activation_derivative<T: Real>(act: Activation, z: T, a: T) -> T {
    match act {
        Activation::Identity => T::one(),
        Activation::Sigmoid => a * (T::one() - a),
        Activation::Tanh => T::one() - a * a,
        Activation::Relu => if z > T::zero() { T::one() } else { T::zero() },
        Activation::LeakyRelu => if z >= T::zero() { T::one() } else { T::of(LEAKY_SLOPE) },
        Activation::Softmax => unreachable!("softmax is only used fused with cross-entropy"),
    }
}

/// a_k = e^(z_k − max z) / Σ_j e^(z_j − max z): the max is subtracted so exp never overflows.
pub fn softmax_row<T: Real>(z: &[T], a: &mut [T]) {
    let m = z.iter().copied().fold(T::neg_infinity(), T::max);
    for (ak, &zk) in a.iter_mut().zip(z) {
        *ak = zk - m;
    }
    T::exp_in_place(a);
    let mut s = T::zero();
    for &ak in a.iter() {
        s = s + ak;
    }
    for ak in a.iter_mut() {
        *ak = *ak / s;
    }
}

/// Applies the layer activation to one row of pre-activations.
#[inline(always)]
pub fn activate_row<T: Real>(act: Activation, z: &[T], a: &mut [T]) {
    if act == Activation::Softmax {
        softmax_row(z, a)
    } else {
        for (ak, &zk) in a.iter_mut().zip(z) {
            *ak = activate(act, zk);
        }
    }
}

/// Target vector of a sample: the label itself for a single output (binary tasks), else one-hot,
/// with label smoothing ε (cross-entropy only; 0 otherwise) mixing in the uniform distribution:
/// t_k = (1−ε)·[k = y] + ε/K over K outputs, PyTorch's `CrossEntropyLoss(label_smoothing=ε)`.
/// With ε = 0 this is exactly the one-hot vector.
pub fn target<T: Real>(label: u8, k: usize, outputs: usize, smoothing: T) -> T {
    if outputs == 1 {
        return T::of(label as f64);
    }
    let hot = if k == label as usize { T::one() } else { T::zero() };
    if smoothing == T::zero() {
        return hot;
    }
    (T::one() - smoothing) * hot + smoothing / T::of(outputs as f64)
}

/// Per-sample loss L(z, a, t) for one output row. Cross-entropies are computed from the logits
/// z (log-sum-exp, softplus) so a saturated output gives a large finite loss, not ∞.
/// `smoothing` is the label smoothing ε of `target` (with cross-entropy: −Σ_k t_k·log softmax_k).
pub fn sample_loss<T: Real>(loss: Loss, smoothing: f64, z: &[T], a: &[T], label: u8) -> T {
    let n = a.len();
    let eps = T::of(smoothing);
    let t = |k| target::<T>(label, k, n, eps);
    match loss {
        Loss::HalfSse => (0..n).map(|k| T::of(0.5) * (t(k) - a[k]).powi(2)).sum(),
        Loss::Sse => (0..n).map(|k| (t(k) - a[k]).powi(2)).sum(),
        Loss::CrossEntropy => {
            let m = z.iter().copied().fold(T::neg_infinity(), T::max);
            // the exponentials of up to 16 outputs in one call (a vector in f32), summed in order
            let mut e = [T::zero(); 16];
            let sum = match e.get_mut(..z.len()) {
                Some(e) => {
                    e.iter_mut().zip(z).for_each(|(ek, &zk)| *ek = zk - m);
                    T::exp_in_place(e);
                    e.iter().copied().sum::<T>()
                }
                None => z.iter().map(|&zk| (zk - m).exp()).sum::<T>(),
            };
            let lse = m + sum.ln();
            (0..n).map(|k| -t(k) * (z[k] - lse)).sum()
        }
        // −[t ln σ(z) + (1−t) ln(1−σ(z))] = softplus(z) − t·z
        Loss::BinaryCrossEntropy => (0..n).map(|k| softplus(z[k]) - t(k) * z[k]).sum(),
    }
}

/// δ_L = ∂L/∂z of the output layer for one sample; with label smoothing ε, softmax − t for the
/// smoothed t (Σ_k t_k = 1 still, so the softmax Jacobian reduces the same way).
pub fn output_delta<T: Real>(loss: Loss, smoothing: f64, act: Activation, z: &[T], a: &[T], label: u8, delta: &mut [T]) {
    let n = a.len();
    let eps = T::of(smoothing);
    for k in 0..n {
        let t = target::<T>(label, k, n, eps);
        delta[k] = match loss {
            // softmax + cross-entropy and sigmoid + binary cross-entropy both reduce to a − t
            Loss::CrossEntropy | Loss::BinaryCrossEntropy => a[k] - t,
            Loss::HalfSse => (a[k] - t) * activation_derivative(act, z[k], a[k]),
            Loss::Sse => T::of(2.0) * (a[k] - t) * activation_derivative(act, z[k], a[k]),
        };
    }
}

/// The class a row of outputs predicts: threshold 0.5 for a single output, else the first argmax.
pub fn predict<T: Real>(a: &[T]) -> u8 {
    if a.len() == 1 {
        return (a[0] >= T::of(0.5)) as u8;
    }
    let mut best = 0;
    for k in 1..a.len() {
        if a[k] > a[best] {
            best = k;
        }
    }
    best as u8
}
