//! The element-wise work of a step beside the matrix products: activations, the output layer's
//! losses and δ, the derivative factor of δ and the bias-gradient sums. On large layers it
//! runs in pieces on the backend's threads (rows, columns for the sums); every element is
//! computed exactly as on one thread, in the same order, so the bytes do not depend on the
//! thread count.

use crate::nn::math::{self, Real};
use crate::nn::model::{Activation, Loss};

/// Elements of a layer's work from which it is split over threads (below, the threads' start
/// costs more than they save: seed001's 64 × 128 stays on one).
pub const PARALLEL_MIN_ELEMENTS: usize = 1 << 16;

/// Rows of outputs from which their losses and δ are split over threads: a row's loss takes
/// an exp per output and a log (some 100 ns for ten softmax outputs), so a block of 1024 rows
/// (`BLOCK_ROWS`, `EVAL_CHUNK`) is worth two threads where its element count alone is not.
pub const PARALLEL_MIN_ROWS_SCORED: usize = 512;

/// Rows per piece, so that `threads` pieces cover `rows`; None when one thread should do it.
fn piece_rows(threads: usize, rows: usize, width: usize) -> Option<usize> {
    (threads > 1 && rows > 1 && rows * width >= PARALLEL_MIN_ELEMENTS).then(|| rows.div_ceil(threads))
}

/// `piece_rows` for the output layer's per-row work (`PARALLEL_MIN_ROWS_SCORED`).
fn piece_rows_scored(threads: usize, rows: usize) -> Option<usize> {
    (threads > 1 && rows >= PARALLEL_MIN_ROWS_SCORED).then(|| rows.div_ceil(threads))
}

/// Each row's loss (`math::sample_loss`, in f64) and predicted class (`math::predict`) of the
/// outputs Z, A [rows × width] against `labels`. The caller sums the losses in the rows'
/// order, so the sum is one thread's whatever the pieces.
#[allow(clippy::too_many_arguments)]
pub fn row_scores<T: Real>(threads: usize, loss: Loss, smoothing: f64, width: usize, z: &[T], a: &[T], labels: &[u8], losses: &mut [f64], preds: &mut [u8]) {
    let one = |z: &[T], a: &[T], labels: &[u8], losses: &mut [f64], preds: &mut [u8]| {
        for (r, &y) in labels.iter().enumerate() {
            let s = r * width..(r + 1) * width;
            losses[r] = math::sample_loss(loss, smoothing, &z[s.clone()], &a[s.clone()], y).f64();
            preds[r] = math::predict(&a[s]);
        }
    };
    match piece_rows_scored(threads, labels.len()) {
        None => one(z, a, labels, losses, preds),
        Some(p) => rayon::scope(|s| {
            let rows = z.chunks(p * width).zip(a.chunks(p * width)).zip(labels.chunks(p));
            for ((((zc, ac), lc), oc), pc) in rows.zip(losses.chunks_mut(p)).zip(preds.chunks_mut(p)) {
                s.spawn(move |_| one(zc, ac, lc, oc, pc));
            }
        }),
    }
}

/// δ_L [rows × width] of the outputs Z, A against `labels` (`math::output_delta`), row by row.
#[allow(clippy::too_many_arguments)]
pub fn output_deltas<T: Real>(threads: usize, loss: Loss, smoothing: f64, act: Activation, width: usize, z: &[T], a: &[T], labels: &[u8], delta: &mut [T]) {
    let one = |z: &[T], a: &[T], labels: &[u8], delta: &mut [T]| {
        for (r, &y) in labels.iter().enumerate() {
            let s = r * width..(r + 1) * width;
            math::output_delta(loss, smoothing, act, &z[s.clone()], &a[s.clone()], y, &mut delta[s]);
        }
    };
    match piece_rows_scored(threads, labels.len()) {
        None => one(z, a, labels, delta),
        Some(p) => rayon::scope(|s| {
            let rows = z.chunks(p * width).zip(a.chunks(p * width)).zip(labels.chunks(p));
            for (((zc, ac), lc), dc) in rows.zip(delta.chunks_mut(p * width)) {
                s.spawn(move |_| one(zc, ac, lc, dc));
            }
        }),
    }
}

/// Runs `$body` (a call of an `#[inline(always)]` loop) compiled for AVX2 where the CPU has it:
/// eight lanes instead of the baseline build's four, with the same IEEE operations in the same
/// order (Rust never fuses a multiply and an add by itself), so the same bytes.
macro_rules! avx2_if_there {
    ($name:ident($($arg:ident: $ty:ty),*) $body:block) => {{
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $name<T: Real>($($arg: $ty),*) $body
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            unsafe { $name($($arg),*) }
        } else {
            $body
        }
        #[cfg(not(target_arch = "x86_64"))]
        $body
    }};
}

/// A = f(Z) row by row (`math::activate_row`; softmax needs the whole row).
pub fn activate_rows<T: Real>(threads: usize, act: Activation, width: usize, z: &[T], a: &mut [T]) {
    let one = |z: &[T], a: &mut [T]| {
        avx2_if_there!(activate_rows_avx2(act: Activation, width: usize, z: &[T], a: &mut [T]) {
            if act == Activation::Sigmoid {
                // Elementwise, so the rows need no splitting (and f32 runs 16 at a time).
                return T::sigmoid_slice(z, a);
            }
            for (zr, ar) in z.chunks(width).zip(a.chunks_mut(width)) {
                math::activate_row(act, zr, ar);
            }
        })
    };
    match piece_rows(threads, z.len() / width, width) {
        None => one(z, a),
        Some(p) => rayon::scope(|s| {
            for (zc, ac) in z.chunks(p * width).zip(a.chunks_mut(p * width)) {
                s.spawn(move |_| one(zc, ac));
            }
        }),
    }
}

/// d ← d ⊙ f'(z, a), element by element.
#[inline(always)]
fn times<T: Real>(d: &mut [T], z: &[T], a: &[T], f: impl Fn(T, T) -> T) {
    for ((d, &z), &a) in d.iter_mut().zip(z).zip(a) {
        *d = *d * f(z, a);
    }
}

/// δ ← δ ⊙ f'(Z) from Z and A = f(Z).
pub fn times_derivative<T: Real>(threads: usize, act: Activation, width: usize, d: &mut [T], z: &[T], a: &[T]) {
    let one = |d: &mut [T], z: &[T], a: &[T]| {
        avx2_if_there!(times_derivative_avx2(act: Activation, d: &mut [T], z: &[T], a: &[T]) {
            // One loop per activation, each with its f' inlined: a match inside the loop (with
            // softmax's unreachable arm) kept it scalar, 7 % of the wide network's step.
            match act {
                Activation::Identity => times(d, z, a, |z, a| math::activation_derivative(Activation::Identity, z, a)),
                Activation::Sigmoid => times(d, z, a, |z, a| math::activation_derivative(Activation::Sigmoid, z, a)),
                Activation::Tanh => times(d, z, a, |z, a| math::activation_derivative(Activation::Tanh, z, a)),
                Activation::Relu => times(d, z, a, |z, a| math::activation_derivative(Activation::Relu, z, a)),
                Activation::LeakyRelu => times(d, z, a, |z, a| math::activation_derivative(Activation::LeakyRelu, z, a)),
                Activation::Softmax => unreachable!("softmax is only used fused with cross-entropy"),
            }
        })
    };
    match piece_rows(threads, d.len() / width, width) {
        None => one(d, z, a),
        Some(p) => rayon::scope(|s| {
            for ((dc, zc), ac) in d.chunks_mut(p * width).zip(z.chunks(p * width)).zip(a.chunks(p * width)) {
                s.spawn(move |_| one(dc, zc, ac));
            }
        }),
    }
}

/// δ ← δ ⊙ f'(Z) ⊙ m on a layer whose activations dropout masked with m (`nn::dropout`): f'
/// from Z and f(Z) recomputed, as A holds the masked values (and as the GPU's kernel does).
pub fn times_derivative_masked<T: Real>(threads: usize, act: Activation, width: usize, d: &mut [T], z: &[T], m: &[T]) {
    let one = |d: &mut [T], z: &[T], m: &[T]| {
        for ((d, &z), &m) in d.iter_mut().zip(z).zip(m) {
            *d = *d * math::activation_derivative(act, z, math::activate(act, z)) * m;
        }
    };
    match piece_rows(threads, d.len() / width, width) {
        None => one(d, z, m),
        Some(p) => rayon::scope(|s| {
            for ((dc, zc), mc) in d.chunks_mut(p * width).zip(z.chunks(p * width)).zip(m.chunks(p * width)) {
                s.spawn(move |_| one(dc, zc, mc));
            }
        }),
    }
}

/// A ← A ⊙ m: dropout's mask on a layer's activations.
pub fn times_mask<T: Real>(a: &mut [T], m: &[T]) {
    for (a, &m) in a.iter_mut().zip(m) {
        *a = *a * m;
    }
}

/// `sums[o] += Σ_r δ[r, o]` (from zero where `fresh`), each column over the rows in order,
/// walking δ row by row so the reads are contiguous. A batch's blocks of rows added in order
/// and the sums then scaled (`scale_all`) give ∂b[o] = s · Σ_r δ[r, o] summed from zero in
/// the rows' order (as `Iterator::sum` would), whatever the blocks.
pub fn add_column_sums<T: Real>(threads: usize, delta: &[T], width: usize, sums: &mut [T], fresh: bool) {
    let rows = delta.len() / width;
    let one = |c0: usize, out: &mut [T]| {
        if fresh {
            out.iter_mut().for_each(|g| *g = T::zero());
        }
        for r in 0..rows {
            let row = &delta[r * width + c0..r * width + c0 + out.len()];
            for (g, &d) in out.iter_mut().zip(row) {
                *g = *g + d;
            }
        }
    };
    match piece_rows(threads, rows, width).map(|_| width.div_ceil(threads)) {
        Some(cols) if cols >= 16 => rayon::scope(|s| {
            for (i, oc) in sums.chunks_mut(cols).enumerate() {
                s.spawn(move |_| one(i * cols, oc));
            }
        }),
        _ => one(0, sums),
    }
}

/// `x[i] = s · x[i]`.
pub fn scale_all<T: Real>(s: T, x: &mut [T]) {
    x.iter_mut().for_each(|v| *v = s * *v);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pieces give the same bits as one thread, at sizes above and below the split.
    #[test]
    fn pieces_match_one_thread_bit_for_bit() {
        for (rows, width) in [(3, 5), (300, 257), (1000, 70)] {
            let z: Vec<f32> = (0..rows * width).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 97.0).collect();
            for act in [Activation::Relu, Activation::Sigmoid, Activation::Softmax, Activation::Tanh] {
                let (mut a1, mut a4) = (vec![0f32; z.len()], vec![0f32; z.len()]);
                activate_rows(1, act, width, &z, &mut a1);
                activate_rows(4, act, width, &z, &mut a4);
                assert_eq!(a1, a4, "{act:?} {rows}×{width}");
                if act == Activation::Softmax {
                    continue; // an output activation: its δ comes fused with the loss
                }
                let (mut d1, mut d4) = (z.clone(), z.clone());
                times_derivative(1, act, width, &mut d1, &z, &a1);
                times_derivative(4, act, width, &mut d4, &z, &a1);
                assert_eq!(d1, d4);
            }
            let (mut b1, mut b4) = (vec![9f32; width], vec![9f32; width]);
            add_column_sums(1, &z, width, &mut b1, true);
            add_column_sums(4, &z, width, &mut b4, true);
            assert_eq!(b1, b4);
            // the same sums in two blocks of rows, the second added to the first's
            let cut = rows / 3 * width;
            let mut blocks = vec![9f32; width];
            add_column_sums(4, &z[..cut], width, &mut blocks, true);
            add_column_sums(4, &z[cut..], width, &mut blocks, false);
            assert_eq!(b1, blocks, "{rows} rows in two blocks");
            // the output layer's losses, predictions and δ, as softmax + cross-entropy and
            // as (one column of) sigmoid + binary cross-entropy
            let labels: Vec<u8> = (0..rows).map(|r| (r * 31 % 10) as u8).collect();
            for (loss, act, w) in [(Loss::CrossEntropy, Activation::Softmax, width), (Loss::BinaryCrossEntropy, Activation::Sigmoid, 1)] {
                let (zo, labels) = (&z[..rows * w], &labels.iter().map(|&y| if w == 1 { y % 2 } else { y % w as u8 }).collect::<Vec<_>>());
                let mut ao = vec![0f32; zo.len()];
                activate_rows(1, act, w, zo, &mut ao);
                let scored = |threads| {
                    let (mut l, mut p, mut d) = (vec![f64::NAN; rows], vec![99u8; rows], vec![f32::NAN; rows * w]);
                    row_scores(threads, loss, 0.1, w, zo, &ao, labels, &mut l, &mut p);
                    output_deltas(threads, loss, 0.1, act, w, zo, &ao, labels, &mut d);
                    (l.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), p, d)
                };
                let one = scored(1);
                assert_eq!(one, scored(4), "{loss:?} {rows}×{w}");
                let r = rows - 1;
                let (zr, ar) = (&zo[r * w..], &ao[r * w..]);
                assert_eq!(one.0[r], math::sample_loss(loss, 0.1, zr, ar, labels[r]).f64().to_bits(), "the last row's loss");
                assert_eq!(one.1[r], math::predict(ar), "the last row's class");
            }
            scale_all(0.25, &mut b1);
            let want: Vec<f32> = (0..width).map(|o| 0.25 * (0..rows).map(|r| z[r * width + o]).sum::<f32>()).collect();
            assert_eq!(b1, want, "the column sums in row order, as Iterator::sum");
        }
    }
}
