//! A dataset's samples as the network's inputs: x = (p − mean) / std of the model's input
//! normalisation, with bytes scaled by 1/255 first. A shuffled batch converts its rows as it
//! gathers them (bytes through a 256-entry table); the first pass over consecutive samples (an
//! evaluation, an unshuffled or full batch) converts the whole split once and then reads it in
//! place, so such passes run at memory speed and no pixel is converted twice for them. Every
//! path computes a value with the same arithmetic, so the results do not depend on the path.
//! A training batch's pictures are augmented here, after they are gathered (`augment_batch`).

use crate::nn::augment::Augment;
use crate::nn::math::Real;
use crate::data::{Dataset, InputNorm, Pixels};
use std::sync::{Arc, OnceLock};

/// The inputs of one attached split.
pub struct Inputs<T> {
    pub data: Arc<Dataset>,
    /// The input normalisation's mean and std in `T`.
    mean: T,
    std: T,
    /// x of each byte value (for byte pixels).
    table: Vec<T>,
    /// The whole split converted, row-major [samples × sample_len], once it is read in place.
    x: OnceLock<Arc<Vec<T>>>,
}

impl<T: Real> Inputs<T> {
    pub fn new(data: Arc<Dataset>, norm: InputNorm) -> Self {
        let (mean, std) = (T::of(norm.mean), T::of(norm.std));
        let scale = T::one() / T::of(255.0);
        let table = match data.pixels {
            Pixels::U8(_) => (0..=255u8).map(|p| (T::of(p as f64) * scale - mean) / std).collect(),
            Pixels::F64(_) => Vec::new(),
        };
        Inputs { data, mean, std, table, x: OnceLock::new() }
    }

    fn of_f64(&self, p: f64) -> T {
        (T::of(p) - self.mean) / self.std
    }

    /// The whole split converted (done on the first call).
    pub fn matrix(&self) -> Arc<Vec<T>> {
        self.x
            .get_or_init(|| {
                Arc::new(match &self.data.pixels {
                    Pixels::U8(v) => v.iter().map(|&p| self.table[p as usize]).collect(),
                    Pixels::F64(v) => v.iter().map(|&p| self.of_f64(p)).collect(),
                })
            })
            .clone()
    }

    /// The first sample when `idx` lists consecutive samples in order (the matrix can be read
    /// in place), else `None`.
    pub fn consecutive(idx: &[u32]) -> Option<usize> {
        let first = *idx.first()?;
        idx.iter().enumerate().all(|(i, &s)| s as usize == first as usize + i).then_some(first as usize)
    }

    /// Converts the samples `idx` (in that order) into the first rows of `out`.
    pub fn gather(&self, idx: &[u32], out: &mut [T]) {
        let len = self.data.sample_len;
        if let Some(x) = self.x.get() {
            for (r, &i) in idx.iter().enumerate() {
                let i = i as usize;
                out[r * len..(r + 1) * len].copy_from_slice(&x[i * len..(i + 1) * len]);
            }
            return;
        }
        for (r, &i) in idx.iter().enumerate() {
            let (i, row) = (i as usize, &mut out[r * len..(r + 1) * len]);
            match &self.data.pixels {
                Pixels::U8(v) => row.iter_mut().zip(&v[i * len..(i + 1) * len]).for_each(|(x, &p)| *x = self.table[p as usize]),
                Pixels::F64(v) => row.iter_mut().zip(&v[i * len..(i + 1) * len]).for_each(|(x, &p)| *x = self.of_f64(p)),
            }
        }
    }
}

/// Augments the gathered pictures `x` (rows of `len` inputs) in place for optimiser step `step`
/// (`nn::augment`), row r being batch row r, on up to `threads` threads: each row on its own,
/// so the bytes do not depend on the thread count.
pub fn augment_batch<T: Real>(aug: &Augment, step: u64, x: &mut [T], len: usize, background: T, threads: usize) {
    let one = |first: usize, rows: &mut [T]| {
        let (mut src, mut work) = (vec![T::zero(); len], Vec::new());
        for (i, row) in rows.chunks_mut(len).enumerate() {
            src.copy_from_slice(row);
            aug.apply(step, first + i, &src, background, row, &mut work);
        }
    };
    let rows = x.len() / len;
    if threads <= 1 || rows < 2 {
        return one(0, x);
    }
    let per = rows.div_ceil(threads);
    rayon::scope(|s| {
        for (k, chunk) in x.chunks_mut(per * len).enumerate() {
            s.spawn(move |_| one(k * per, chunk));
        }
    });
}
