//! A dataset's samples as the network's inputs: x = (p − mean) / std of the model's input
//! normalisation, with bytes scaled by 1/255 first. Byte pixels stay bytes: a batch, shuffled
//! or a run of consecutive samples (an evaluation's chunk, a block of a full batch), is
//! converted as it is read (through a 256-entry table, 64 at a time on AVX-512 with VBMI),
//! which costs less than reading 4-byte values from memory: a quarter of the bytes (MNIST's
//! training set is 47 MB of bytes, 188 MB as f32), and no f32 copy kept. Other pixels are
//! converted once per split and read in place.
//! Every path computes a value with the same arithmetic, so the results do not depend on the
//! path.
//! A training batch's pictures are augmented here, after they are gathered (`augment_batch`).

use crate::nn::augment::Augment;
use crate::nn::math::Real;
use crate::data::{Dataset, InputNorm, Pixels};
use std::sync::{Arc, OnceLock};

/// Values converted from bytes from which `Inputs::rows` splits the work over threads.
const PARALLEL_MIN_CONVERT: usize = 1 << 16;

/// The inputs of one attached split.
pub struct Inputs<T> {
    pub data: Arc<Dataset>,
    /// The input normalisation's mean and std in `T`.
    mean: T,
    std: T,
    /// x of each byte value (for byte pixels).
    table: Vec<T>,
    /// In f32, the table as 4 planes of 256 bytes, byte k of every value in plane k (the
    /// vector byte lookup, `look_up_vbmi`, x86-64 only); else empty.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    planes: Vec<u8>,
    /// The whole split converted, row-major [samples × sample_len], once it is read in place
    /// (float pixels only: bytes are converted as they are read).
    x: OnceLock<Vec<T>>,
}

impl<T: Real> Inputs<T> {
    pub fn new(data: Arc<Dataset>, norm: InputNorm) -> Self {
        let (mean, std) = (T::of(norm.mean), T::of(norm.std));
        let scale = T::one() / T::of(255.0);
        let table = match data.pixels {
            Pixels::U8(_) => (0..=255u8).map(|p| (T::of(p as f64) * scale - mean) / std).collect(),
            Pixels::F64(_) => Vec::new(),
        };
        let planes = match as_f32(&table) {
            Some(t) if t.len() == 256 => (0..4).flat_map(|k| t.iter().map(move |v| v.to_le_bytes()[k])).collect(),
            _ => Vec::new(),
        };
        Inputs { data, mean, std, table, planes, x: OnceLock::new() }
    }

    fn of_f64(&self, p: f64) -> T {
        (T::of(p) - self.mean) / self.std
    }

    /// Samples `lo..lo + rows` as rows of inputs: byte pixels converted into `buf` (grown to
    /// fit) on up to `threads` threads, other pixels read in place from the split converted once.
    pub fn rows<'a>(&'a self, lo: usize, rows: usize, buf: &'a mut Vec<T>, threads: usize) -> &'a [T] {
        let len = self.data.sample_len;
        let v = match &self.data.pixels {
            Pixels::U8(v) => v,
            Pixels::F64(v) => return &self.matrix(v)[lo * len..(lo + rows) * len],
        };
        if buf.len() < rows * len {
            buf.resize(rows * len, T::zero());
        }
        let (bytes, out) = (&v[lo * len..(lo + rows) * len], &mut buf[..rows * len]);
        if threads > 1 && out.len() >= PARALLEL_MIN_CONVERT {
            let per = rows.div_ceil(threads) * len;
            rayon::scope(|s| {
                for (b, o) in bytes.chunks(per).zip(out.chunks_mut(per)) {
                    s.spawn(move |_| self.look_up(b, o));
                }
            });
        } else {
            self.look_up(bytes, out);
        }
        &buf[..rows * len]
    }

    /// The split's float pixels `v` converted (done on the first call).
    fn matrix(&self, v: &[f64]) -> &[T] {
        self.x.get_or_init(|| v.iter().map(|&p| self.of_f64(p)).collect())
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
        match &self.data.pixels {
            Pixels::U8(v) => {
                let sample = |i: u32| &v[i as usize * len..(i as usize + 1) * len];
                idx.iter().take(PREFETCH_AHEAD).for_each(|&i| prefetch(sample(i)));
                for (r, &i) in idx.iter().enumerate() {
                    if let Some(&next) = idx.get(r + PREFETCH_AHEAD) {
                        prefetch(sample(next));
                    }
                    self.look_up(sample(i), &mut out[r * len..(r + 1) * len])
                }
            }
            Pixels::F64(v) => {
                for (r, &i) in idx.iter().enumerate() {
                    let i = i as usize;
                    out[r * len..(r + 1) * len].iter_mut().zip(&v[i * len..(i + 1) * len]).for_each(|(x, &p)| *x = self.of_f64(p));
                }
            }
        }
    }

    /// `out[j] = table[bytes[j]]`: in f32 on AVX-512, 64 bytes at a time through byte
    /// permutes of the table's planes where the CPU has VBMI (`look_up_vbmi`: a block of 64 in
    /// about 25 instructions, where a gather was 30 % of a full-batch one-neuron epoch), else 16 at a time through a gather from the table (4-5 times faster
    /// than one lookup per byte, a fifth of seed000-mnist's epoch before); the same values.
    fn look_up(&self, bytes: &[u8], out: &mut [T]) {
        #[cfg(target_arch = "x86_64")]
        if let (Some(table), true) = (as_f32(&self.table), crate::nn::sgemm::available()) {
            let n = bytes.len().min(out.len());
            // SAFETY: T is f32 (`as_f32` said so); the CPU has AVX-512F, and VBMI where that path
            // is taken; the table holds 256 entries, one per byte value, and the planes 4 × 256.
            unsafe {
                let out = std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut f32, n);
                let done = if vbmi() { look_up_vbmi(&bytes[..n], &self.planes, out) } else { 0 };
                look_up_f32(&bytes[done..n], table, &mut out[done..]);
            }
            return;
        }
        out.iter_mut().zip(bytes).for_each(|(x, &p)| *x = self.table[p as usize]);
    }
}

/// `v` as f32 values, where `T` is f32.
fn as_f32<T: Real>(v: &[T]) -> Option<&[f32]> {
    // SAFETY: T is f32, so the slice is an f32 slice.
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()).then(|| unsafe { std::slice::from_raw_parts(v.as_ptr() as *const f32, v.len()) })
}

/// Whether the CPU has the byte permutes of `look_up_vbmi` (checked once by std and cached).
#[cfg(target_arch = "x86_64")]
fn vbmi() -> bool {
    std::arch::is_x86_feature_detected!("avx512vbmi") && std::arch::is_x86_feature_detected!("avx512bw")
}

/// Samples whose bytes are asked for ahead of their conversion: a sample's conversion (some
/// 0.1 µs for MNIST's 784 bytes) is about a read from memory, so one ahead left part of the
/// wait (four: seed000-mnist's command 1 % quicker than one, farm-bench, 8 pairs).
const PREFETCH_AHEAD: usize = 4;

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

/// `out[j] = table[bytes[j]]` for the whole blocks of 64 bytes, `planes` holding byte k of
/// table entry e at `256·k + e`; returns how many values it wrote. Per block: the 4 bytes of
/// each value looked up in the 4 planes (two 128-entry byte permutes each, picked by the byte's
/// top bit), then interleaved into 32-bit values; the interleaves work within 128-bit lanes,
/// so the block's bytes are first reordered to make them come out in order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn look_up_vbmi(bytes: &[u8], planes: &[u8], out: &mut [f32]) -> usize {
    use std::arch::x86_64::*;
    assert!(planes.len() == 1024 && out.len() == bytes.len());
    // SAFETY: 16 loads of 64 bytes inside the 1024 of `planes`.
    let t: [__m512i; 16] = std::array::from_fn(|q| unsafe { _mm512_loadu_si512(planes.as_ptr().add(64 * q) as *const _) });
    // After the interleaves, 32-bit lane 4L + i of result j holds the value of byte 16L + 4j + i
    // (L the 128-bit lane): so that byte must be value 16j + 4L + i of the block.
    let order: [u8; 64] = std::array::from_fn(|p| (16 * (p % 16 / 4) + 4 * (p / 16) + p % 4) as u8);
    // SAFETY (below): every load and store is of 64 bytes or 16 values inside a whole block.
    let order = unsafe { _mm512_loadu_si512(order.as_ptr() as *const _) };
    let whole = bytes.len() / 64 * 64;
    for c in (0..whole).step_by(64) {
        unsafe {
            let v = _mm512_permutexvar_epi8(order, _mm512_loadu_si512(bytes.as_ptr().add(c) as *const _));
            let high = _mm512_movepi8_mask(v);
            let plane = |k: usize| _mm512_mask_blend_epi8(high, _mm512_permutex2var_epi8(t[4 * k], v, t[4 * k + 1]), _mm512_permutex2var_epi8(t[4 * k + 2], v, t[4 * k + 3]));
            let (b0, b1, b2, b3) = (plane(0), plane(1), plane(2), plane(3));
            let (lo01, hi01) = (_mm512_unpacklo_epi8(b0, b1), _mm512_unpackhi_epi8(b0, b1));
            let (lo23, hi23) = (_mm512_unpacklo_epi8(b2, b3), _mm512_unpackhi_epi8(b2, b3));
            let dst = out.as_mut_ptr().add(c) as *mut __m512i;
            _mm512_storeu_si512(dst, _mm512_unpacklo_epi16(lo01, lo23));
            _mm512_storeu_si512(dst.add(1), _mm512_unpackhi_epi16(lo01, lo23));
            _mm512_storeu_si512(dst.add(2), _mm512_unpacklo_epi16(hi01, hi23));
            _mm512_storeu_si512(dst.add(3), _mm512_unpackhi_epi16(hi01, hi23));
        }
    }
    whole
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
        let (fresh, mut buf) = (Inputs::<T>::new(data, norm), Vec::new());
        let whole = fresh.rows(0, samples, &mut buf, 1);
        for (r, &i) in idx.iter().enumerate() {
            let i = i as usize;
            assert!(got[r * len..(r + 1) * len].iter().zip(&whole[i * len..(i + 1) * len]).all(|(a, b)| a.f64().to_bits() == b.f64().to_bits()));
        }
    }

    /// Every byte value in every place of a 64-byte block (the byte permutes' blocks, with
    /// a tail the gather takes), and a run of consecutive samples, converted as the table
    /// says, over a poisoned buffer, on one thread and split.
    #[test]
    fn converts_every_byte_in_every_place_of_a_block() {
        let len: usize = 64 * 4 + 13;
        let samples = 257;
        // from the second sample on, place p of block q holds q + 37·p: each place takes all 256
        // values, and no two places of a block hold the same
        let bytes: Vec<u8> = (0..len * samples).map(|i| i.wrapping_sub(len)).map(|j| (j / 64 + 37 * (j % 64)) as u8).collect();
        let data = Arc::new(Dataset { source: "test bytes".into(), pixels: Pixels::U8(bytes.clone()), sample_len: len, labels: vec![0; samples], num_classes: 10 });
        let inputs = Inputs::<f32>::new(data, InputNorm { mean: 0.1307, std: 0.3081 });
        for threads in [1, 3] {
            let mut buf = vec![f32::NAN; 5];
            let got = inputs.rows(1, samples - 1, &mut buf, threads);
            assert_eq!(got.len(), (samples - 1) * len);
            for (j, (g, &b)) in got.iter().zip(&bytes[len..]).enumerate() {
                assert_eq!(g.to_bits(), inputs.table[b as usize].to_bits(), "value {j} (byte {b}) on {threads} threads");
            }
        }
        let places: std::collections::HashSet<(usize, u8)> = bytes[len..].iter().enumerate().map(|(j, &b)| (j % 64, b)).collect();
        assert_eq!(places.len(), 64 * 256, "every byte in every place");
    }

    #[test]
    fn gathers_each_byte_as_the_formula_says_in_f32_and_f64() {
        gathers_each_byte_as_the_formula_says::<f32>();
        gathers_each_byte_as_the_formula_says::<f64>();
    }
}
