//! e^x on 16 f32 lanes at once, bit for bit what the scalar `f32::exp` returns here (glibc's
//! `expf`, the build for CPUs with FMA), so the f32 sigmoid can be vectorised without moving a
//! single bit of any result (the scalar call was 16 % of a full-batch epoch of seed002-hidden).
//!
//! The algorithm is glibc's (Szabolcs Nagy's, in glibc since 2.28), computed in f64 and rounded
//! once to f32: with N = 32 and k = round(x·N/ln 2), e^x = 2^(k/N)·2^(r/N) where
//! r = x·N/ln 2 − k, 2^(k/N) from a table of 2^(i/N) with k's high bits added to the exponent,
//! and 2^(r/N) ≈ C0·r³ + C1·r² + C2·r + 1. The fused multiply-adds are the ones glibc's FMA build
//! uses (its machine code, not only its C source, fixes which products are rounded).
//! Lanes outside that path (|x| ≥ 88, NaN, ±∞) are left to the scalar call. `available` also
//! checks the agreement at run time, on a spread of inputs, so a different libm keeps the scalar
//! path; the tests check every f32 the sigmoid passes down to −104, on this machine's libm.

// Elsewhere only `available` (false) is used.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// 2^(i/32) rounded to f64, as bits, less i·2^47: adding k·2^47 (k's low five bits give i, the
/// rest lands in the exponent) gives the bits of 2^(k/32) for any integer k.
const TABLE: [u64; 32] = [
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
];
/// N/ln 2.
const INV_LN2_N: u64 = 0x40471547652b82fe;
/// 2^(r/N) − 1 ≈ C0·r³ + C1·r² + C2·r (glibc's coefficients, scaled by powers of 1/N).
const C0: u64 = 0x3ebc6af84b912394;
const C1: u64 = 0x3f2ebfce50fac4f3;
const C2: u64 = 0x3f962e42ff0c52d6;
/// 1.5·2^52: adding it rounds to an integer, which the low bits of the sum then hold.
const SHIFT: u64 = 0x4338000000000000;
/// Bits 20..30 of an f32 (its top 12 bits without the sign) from which glibc leaves the main
/// path: |x| ≥ 88.
const SPECIAL_TOP: u32 = 0x42b;

/// Whether `exp16` runs on this CPU (AVX-512F) and agrees with `f32::exp` on a spread of
/// inputs (checked once).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AGREES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AGREES.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f") && agrees_with_scalar(samples()))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// 65,536 inputs spread evenly over the bit patterns of [−87, 87] (results stay normal, so the
/// check does not depend on the thread's subnormal flushing).
fn samples() -> impl Iterator<Item = f32> {
    let top = 87.0f32.to_bits();
    (0..32768u32).flat_map(move |i| {
        let x = f32::from_bits(i * (top / 32768));
        [x, -x]
    })
}

/// Whether `exp16` gives `f32::exp`'s bits on every one of `xs` (false where `exp16` cannot
/// run).
fn agrees_with_scalar(xs: impl Iterator<Item = f32>) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let xs: Vec<f32> = xs.collect();
        xs.chunks(16).all(|c| {
            let mut lanes = [0.0f32; 16];
            lanes[..c.len()].copy_from_slice(c);
            // SAFETY: `available` calls this only where the CPU has AVX-512F; the tests check first.
            let got = unsafe { exp_lanes(lanes) };
            lanes.iter().zip(got).all(|(&x, g)| g.to_bits() == x.exp().to_bits())
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = xs;
        false
    }
}

/// `exp16` on an array, lanes outside the vector path through `f32::exp`.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn exp_lanes(x: [f32; 16]) -> [f32; 16] {
    let mut out = [0.0f32; 16];
    // SAFETY: 16 lanes each way.
    unsafe {
        match exp16(_mm512_loadu_ps(x.as_ptr())) {
            Some(e) => _mm512_storeu_ps(out.as_mut_ptr(), e),
            None => out = x.map(f32::exp),
        }
    }
    out
}

/// e^x on 16 lanes, or `None` where a lane is outside glibc's main path (|x| ≥ 88 or NaN),
/// which the caller then computes with `f32::exp`.
///
/// # Safety
/// The CPU has AVX-512F (`available`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub fn exp16(x: __m512) -> Option<__m512> {
    let top = _mm512_and_si512(_mm512_srli_epi32::<20>(_mm512_castps_si512(x)), _mm512_set1_epi32(0x7ff));
    if _mm512_cmpge_epu32_mask(top, _mm512_set1_epi32(SPECIAL_TOP as i32)) != 0 {
        return None;
    }
    let lo = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
    let hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(x))));
    let (lo, hi) = (exp8(lo), exp8(hi));
    let lo = _mm256_castps_pd(_mm512_cvtpd_ps(lo));
    let hi = _mm256_castps_pd(_mm512_cvtpd_ps(hi));
    Some(_mm512_castpd_ps(_mm512_insertf64x4::<1>(_mm512_castpd256_pd512(lo), hi)))
}

/// e^x in f64 on 8 lanes, before the rounding to f32: glibc's main path, operation for
/// operation (x·N/ln 2 + SHIFT and x·N/ln 2 − k fused, as its FMA build has them).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn exp8(xd: __m512d) -> __m512d {
    let c = |bits: u64| _mm512_set1_pd(f64::from_bits(bits));
    let (inv, shift) = (c(INV_LN2_N), c(SHIFT));
    let kd = _mm512_fmadd_pd(inv, xd, shift);
    let ki = _mm512_castpd_si512(kd);
    let kd = _mm512_sub_pd(kd, shift);
    let r = _mm512_fmsub_pd(inv, xd, kd);
    // The table's 32 entries as four vectors of 8: two two-source permutes by i's low four
    // bits, chosen between by its fifth.
    let t: [__m512i; 4] = std::array::from_fn(|q| {
        // SAFETY: 8 values from 8·q, inside the table.
        unsafe { _mm512_loadu_si512(TABLE.as_ptr().add(8 * q) as *const _) }
    });
    let i = _mm512_and_si512(ki, _mm512_set1_epi64(31));
    let low = _mm512_permutex2var_epi64(t[0], i, t[1]);
    let high = _mm512_permutex2var_epi64(t[2], i, t[3]);
    let upper = _mm512_test_epi64_mask(i, _mm512_set1_epi64(16));
    let entry = _mm512_mask_blend_epi64(upper, low, high);
    let s = _mm512_castsi512_pd(_mm512_add_epi64(entry, _mm512_slli_epi64::<47>(ki)));
    let z = _mm512_fmadd_pd(r, c(C0), c(C1));
    let r2 = _mm512_mul_pd(r, r);
    let y = _mm512_fmadd_pd(r, c(C2), _mm512_set1_pd(1.0));
    let y = _mm512_fmadd_pd(z, r2, y);
    _mm512_mul_pd(y, s)
}

/// σ(z) on every element, bit for bit `math::sigmoid::<f32>`: e = e^(−|z|) from `exp16`, then
/// 1/(1+e) where z ≥ 0 and e/(1+e) below (IEEE division and addition, as the scalar form).
///
/// # Safety
/// `available()` is true.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn sigmoid(z: &[f32], a: &mut [f32]) {
    assert_eq!(z.len(), a.len(), "sigmoid: {} inputs for {} outputs", z.len(), a.len());
    let one = _mm512_set1_ps(1.0);
    let sign = _mm512_set1_ps(-0.0);
    for (zc, ac) in z.chunks(16).zip(a.chunks_mut(16)) {
        let mask = crate::nn::sgemm::lanes(zc.len());
        // SAFETY: the masked lanes are inside both chunks.
        unsafe {
            let zv = _mm512_maskz_loadu_ps(mask, zc.as_ptr());
            match exp16(_mm512_or_ps(zv, sign)) {
                Some(e) => {
                    let positive = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(zv, _mm512_setzero_ps());
                    let num = _mm512_mask_blend_ps(positive, e, one);
                    _mm512_mask_storeu_ps(ac.as_mut_ptr(), mask, _mm512_div_ps(num, _mm512_add_ps(one, e)));
                }
                None => crate::nn::math::sigmoid_each(zc, ac),
            }
        }
    }
}

/// `v[i] = e^v[i]` with the bits of `f32::exp`, 16 at a time (a softmax row's ten outputs in one
/// masked vector); a chunk with a lane off `exp16`'s main path takes the scalar call.
///
/// # Safety
/// `available()` is true.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn exp_in_place(v: &mut [f32]) {
    for c in v.chunks_mut(16) {
        let mask = crate::nn::sgemm::lanes(c.len());
        // SAFETY: the masked lanes are inside the chunk.
        unsafe {
            match exp16(_mm512_maskz_loadu_ps(mask, c.as_ptr())) {
                Some(e) => _mm512_mask_storeu_ps(c.as_mut_ptr(), mask, e),
                None => c.iter_mut().for_each(|x| *x = x.exp()),
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// The table is 2^(i/32), to within f64's rounding, less i·2^47.
    #[test]
    fn the_table_holds_the_powers_of_two() {
        for (i, &t) in TABLE.iter().enumerate() {
            let v = f64::from_bits(t + ((i as u64) << 47));
            let want = (i as f64 / 32.0).exp2();
            assert!((v - want).abs() <= want * f64::EPSILON, "entry {i}: {v} vs 2^({i}/32) = {want}");
        }
    }

    /// Every f32 from −0 down to −104 (all the sigmoid passes to exp before the result is 0,
    /// subnormal results included, ±∞ and NaN) and every 7th from 0 to 89 through `exp16`, 16 at
    /// a time: the bits of `f32::exp`. Computing r = x·N/ln 2 − k unfused makes it fail (on one
    /// vector of 16: a sampled check would not see it).
    #[test]
    fn exp16_gives_the_bits_of_the_scalar_exp() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("no AVX-512F on this CPU: the vector exp never runs here, nothing to check");
            return;
        }
        let negative = (0x8000_0000u32..=(-104.0f32).to_bits()).chain([f32::NEG_INFINITY.to_bits(), f32::NAN.to_bits()]);
        let positive = (0..=89.0f32.to_bits()).step_by(7).chain([f32::INFINITY.to_bits()]);
        let bits: Vec<u32> = negative.chain(positive).collect();
        use rayon::prelude::*;
        let bad = bits.par_chunks(1 << 16).map(|chunk| {
            chunk.chunks(16).filter(|c| {
                let mut x = [0.0f32; 16];
                for (xi, &b) in x.iter_mut().zip(c.iter()) {
                    *xi = f32::from_bits(b);
                }
                // SAFETY: AVX-512F is there (checked above).
                let got = unsafe { exp_lanes(x) };
                x.iter().zip(got).take(c.len()).any(|(&x, g)| g.to_bits() != x.exp().to_bits() && !(g.is_nan() && x.exp().is_nan()))
            }).count()
        }).sum::<usize>();
        assert_eq!(bad, 0, "{bad} vectors of 16 differ from f32::exp");
        assert!(available(), "exp16 agrees everywhere, so the run-time check must accept it");
    }

    /// The vector sigmoid against `math::sigmoid` on a poisoned output, lengths off 16, with
    /// large, tiny, signed-zero and NaN inputs.
    #[test]
    fn sigmoid_gives_the_bits_of_the_scalar_form() {
        if !available() {
            eprintln!("no vector exp on this CPU: nothing to check");
            return;
        }
        let mut z: Vec<f32> = (0..1000).map(|i| ((i as f32) * 0.731).sin() * 30.0).collect();
        z.extend([0.0, -0.0, 88.5, -88.5, 120.0, -120.0, 1e-30, -1e-30, f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
        for n in [0, 1, 15, 16, 17, 100, z.len()] {
            let mut a = vec![f32::NAN; n + 3];
            // SAFETY: `available` said yes.
            unsafe { sigmoid(&z[..n], &mut a[..n]) };
            for (k, (&zk, &ak)) in z[..n].iter().zip(&a).enumerate() {
                let want = crate::nn::math::sigmoid(zk);
                assert!(ak.to_bits() == want.to_bits() || (ak.is_nan() && want.is_nan()), "z[{k}] = {zk}: {ak} vs {want}");
            }
            assert!(a[n..].iter().all(|v| v.is_nan()), "written past the end");
        }
    }

    /// `exp_in_place` on runs of every length from 0 to 33 (masked tails), with lanes off the
    /// main path among them: the bits of `f32::exp`, nothing written past the run.
    #[test]
    fn exp_in_place_gives_the_bits_of_the_scalar_exp() {
        if !available() {
            eprintln!("no vector exp on this CPU: nothing to check");
            return;
        }
        let mut x: Vec<f32> = (0..40).map(|i| ((i as f32) * 1.37).sin() * 20.0 - 10.0).collect();
        x[5] = -120.0;
        x[21] = 95.0;
        x[30] = f32::NAN;
        for start in [0, 3] {
            for n in 0..=33 {
                let mut v = x.clone();
                // SAFETY: `available` said yes.
                unsafe { exp_in_place(&mut v[start..start + n]) };
                for (k, (&got, &xk)) in v.iter().zip(&x).enumerate() {
                    let want = if (start..start + n).contains(&k) { xk.exp() } else { xk };
                    assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "run {start}+{n}, x[{k}] = {xk}: {got} vs {want}");
                }
            }
        }
    }
}
