//! A dataset's samples as the network's inputs, converted once when the split is attached:
//! x = (p − mean) / std of the model's input normalisation, with bytes scaled by 1/255 first.
//! Steps then copy rows (a shuffled batch) or read the matrix in place (a batch or an
//! evaluation chunk of consecutive samples), never converting a pixel again.

use crate::core::math::Real;
use crate::data::{Dataset, InputNorm, Pixels};
use std::sync::Arc;

/// The converted samples of one split, row-major [samples × sample_len].
pub struct Inputs<T> {
    pub data: Arc<Dataset>,
    pub x: Arc<Vec<T>>,
}

impl<T: Real> Inputs<T> {
    /// Converts every sample of `data`. For bytes each of the 256 values is converted once
    /// (a table), with the arithmetic of the per-pixel formula, so the result is the same.
    pub fn new(data: Arc<Dataset>, norm: InputNorm) -> Self {
        let (mean, std) = (T::of(norm.mean), T::of(norm.std));
        let x = match &data.pixels {
            Pixels::U8(v) => {
                let scale = T::one() / T::of(255.0);
                let table: Vec<T> = (0..=255u8).map(|p| (T::of(p as f64) * scale - mean) / std).collect();
                v.iter().map(|&p| table[p as usize]).collect()
            }
            Pixels::F64(v) => v.iter().map(|&p| (T::of(p) - mean) / std).collect(),
        };
        Inputs { data, x: Arc::new(x) }
    }

    /// The first sample when `idx` lists consecutive samples in order (the matrix can be read
    /// in place), else `None`.
    pub fn consecutive(idx: &[u32]) -> Option<usize> {
        let first = *idx.first()?;
        idx.iter().enumerate().all(|(i, &s)| s as usize == first as usize + i).then_some(first as usize)
    }

}

/// Copies rows `idx` (in that order) of the matrix `x` with rows of `len` values into the first
/// rows of `out`.
pub fn gather<T: Copy>(x: &[T], len: usize, idx: &[u32], out: &mut [T]) {
    for (r, &i) in idx.iter().enumerate() {
        let i = i as usize;
        out[r * len..(r + 1) * len].copy_from_slice(&x[i * len..(i + 1) * len]);
    }
}
