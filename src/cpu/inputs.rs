//! A dataset's samples as the network's inputs: x = (p − mean) / std of the model's input
//! normalisation, with bytes scaled by 1/255 first. A shuffled batch converts its rows as it
//! gathers them (bytes through a 256-entry table, 16 at a time on AVX-512); the first pass over consecutive samples (an
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
                Pixels::U8(v) => {
                    if let Some(&next) = idx.get(r + 1) {
                        prefetch(&v[next as usize * len..(next as usize + 1) * len]);
                    }
                    self.look_up(&v[i * len..(i + 1) * len], row)
                }
                Pixels::F64(v) => row.iter_mut().zip(&v[i * len..(i + 1) * len]).for_each(|(x, &p)| *x = self.of_f64(p)),
            }
        }
    }

    /// `out[j] = table[bytes[j]]`: in f32 on AVX-512, 16 bytes at a time through a gather from
    /// the same table (the same values, 4-5 times faster than one lookup per byte, a fifth of
    /// seed000-mnist's epoch before).
    fn look_up(&self, bytes: &[u8], out: &mut [T]) {
        #[cfg(target_arch = "x86_64")]
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && crate::nn::sgemm::available() {
            let n = bytes.len().min(out.len());
            // SAFETY: T is f32 (checked just above), so both slices are f32 slices; the CPU has
            // AVX-512F; the table holds 256 entries, one per byte value.
            unsafe {
                let table = std::slice::from_raw_parts(self.table.as_ptr() as *const f32, self.table.len());
                let out = std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut f32, n);
                look_up_f32(&bytes[..n], table, out);
            }
            return;
        }
        out.iter_mut().zip(bytes).for_each(|(x, &p)| *x = self.table[p as usize]);
    }
}

/// Asks for the cache lines of the next sample's bytes while this one converts (a shuffled
/// batch reads rows far apart, which the hardware prefetchers do not guess).
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: a prefetch only hints at an address inside `bytes`; it never faults.
        unsafe { std::arch::x86_64::_mm_prefetch(line.as_ptr() as *const i8, std::arch::x86_64::_MM_HINT_T0) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// `out[j] = table[bytes[j]]` (`out` as long as `bytes`, `table` 256 values), 16 at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn look_up_f32(bytes: &[u8], table: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    assert!(table.len() == 256 && out.len() == bytes.len());
    let whole = bytes.len() / 16 * 16;
    for j in (0..whole).step_by(16) {
        // SAFETY: j + 16 ≤ len for both slices; every index is a byte, < 256 = table.len().
        unsafe {
            let p = _mm_loadu_si128(bytes.as_ptr().add(j) as *const __m128i);
            let x = _mm512_i32gather_ps::<4>(_mm512_cvtepu8_epi32(p), table.as_ptr());
            _mm512_storeu_ps(out.as_mut_ptr().add(j), x);
        }
    }
    for j in whole..bytes.len() {
        out[j] = table[bytes[j] as usize];
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A shuffled gather gives each byte's value from the formula, in f32 (the vector lookup on
    /// AVX-512 CPUs) and f64, with rows of a length that is no multiple of 16, over a poisoned
    /// output, and equals the rows of the whole split converted at once.
    fn gathers_each_byte_as_the_formula_says<T: Real>() {
        let (len, samples) = (37, 11);
        let bytes: Vec<u8> = (0..len * samples).map(|i| (i * 97 % 256) as u8).collect();
        let data = Arc::new(Dataset { source: "test bytes".into(), pixels: Pixels::U8(bytes.clone()), sample_len: len, labels: vec![0; samples], num_classes: 10 });
        let norm = InputNorm { mean: 0.1307, std: 0.3081 };
        let idx: Vec<u32> = vec![7, 2, 10, 0, 5, 5, 9];
        let mut got = vec![T::nan(); idx.len() * len + 3];
        let inputs = Inputs::<T>::new(data.clone(), norm);
        inputs.gather(&idx, &mut got);
        let (scale, mean, std) = (T::one() / T::of(255.0), T::of(norm.mean), T::of(norm.std));
        for (r, &i) in idx.iter().enumerate() {
            for j in 0..len {
                let want = (T::of(bytes[i as usize * len + j] as f64) * scale - mean) / std;
                assert_eq!(got[r * len + j].f64().to_bits(), want.f64().to_bits(), "row {r} (sample {i}) value {j}");
            }
        }
        assert!(got[idx.len() * len..].iter().all(|x| x.is_nan()), "wrote past the batch");
        let whole = Inputs::<T>::new(data, norm).matrix();
        for (r, &i) in idx.iter().enumerate() {
            let i = i as usize;
            assert!(got[r * len..(r + 1) * len].iter().zip(&whole[i * len..(i + 1) * len]).all(|(a, b)| a.f64().to_bits() == b.f64().to_bits()));
        }
    }

    #[test]
    fn gathers_each_byte_as_the_formula_says_in_f32_and_f64() {
        gathers_each_byte_as_the_formula_says::<f32>();
        gathers_each_byte_as_the_formula_says::<f64>();
    }
}
