//! The f32 matrix product on x86-64 AVX-512: BLIS's loop order (panels of B and blocks of A
//! packed once per block of K, A read in place, a 12×32 block of C held in 24 registers while
//! K runs). Written here because it is this project's subject and because, at the step's
//! shapes, it runs well ahead of the `gemm` crate and matrixmultiply on AVX-512 CPUs
//! (`cargo bench --bench cpu_gemm`, docs/BENCHMARKS.md).
//! `math::gemm_reference` is its mirror; the tests below hold them together on shapes that are
//! not multiples of any block, with every stride the backends use.
//!
//! Every element of C is summed in one order, whatever the thread count or the tile it falls
//! in: within each block of `KC` values of k, one fused multiply-add chain in k's order; the
//! blocks' sums then added to C in k's order (`C = α·s₀ + β·C`, then `C = α·sᵢ + C`). Threads
//! split C by whole tiles and never split K, so the bytes do not depend on `threads`.

// Elsewhere only `available` (false) is used.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Rows of a register block (one broadcast each per k).
const MR: usize = 12;
/// Columns of a register block: two 16-lane vectors.
const NR: usize = 32;
/// Columns of C per kernel call where one row of C reads B in place.
const WIDE: usize = 256;
/// Values of k per packed block: a 32-column panel of B (32 KB) and a 12-row tile of A (12 KB)
/// stay in a 48 KB L1 while the kernel runs over them. Fixed: it decides the summation order.
pub const KC: usize = 256;
/// Rows of A run against one packed block of B before the next panel (10 tiles: their k block
/// of A, 120 KB, stays in L2).
const MC: usize = 120;
/// Columns of B packed at a time (1 MB at `KC`, in L2).
const NC: usize = 1024;
/// Values of k up to which B's rows (contiguous) are read in place whatever the rows of C.
const IN_PLACE_K: usize = 64;
/// Packed values of B (1 MB) up to which all of its k is packed at once (`region`).
const WHOLE_B: usize = 1 << 18;

/// Multiply-adds from which a product is split over threads: below, handing half to a second
/// core costs more than it saves. On this 2-core machine seed000-mnist's 20×784·784×30 split
/// (from 2^18) made its `train` epochs 0.35-0.41 s against 0.21-0.32 unsplit; seed001's
/// 64×784×128 (6.4 M, about 50 µs on one core) split (from 2^22) made its `train` command
/// 1.13x the time of one thread's on the 2-core VM of 2026-12-04, where waking a sleeping
/// thread took 40-80 µs (two 25 µs halves on two threads: 68-108 µs after an idle gap).
pub const SPLIT_MIN_MACS: usize = 1 << 23;

/// Values of A and B from which a product is split over threads however few its multiply-adds:
/// a thin product (a one-output layer's 1024×784·784×1 block of a full batch) is bound by
/// reading its operands, which two cores do faster than one.
pub const SPLIT_MIN_VALUES: usize = 1 << 18;

/// Whether `sgemm` hands part of an m×k×n product to a second thread (given more than one).
pub fn splits(m: usize, k: usize, n: usize) -> bool {
    m.saturating_mul(k).saturating_mul(n) >= SPLIT_MIN_MACS || m.saturating_mul(k).saturating_add(k.saturating_mul(n)) >= SPLIT_MIN_VALUES
}

/// Whether this CPU runs `sgemm` (AVX-512F, checked once by std and cached).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One operand, addressed through (row, column) strides.
#[derive(Clone, Copy)]
struct Operand {
    ptr: *const f32,
    rs: usize,
    cs: usize,
}

/// C, row-major with row stride `rs`; shared between threads, which write disjoint tiles.
#[derive(Clone, Copy)]
struct Out {
    ptr: *mut f32,
    rs: usize,
}

// SAFETY: threads only ever write disjoint tiles of C and read A and B.
unsafe impl Send for Operand {}
unsafe impl Sync for Operand {}
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// `C[m×n] = alpha·A[m×k]·B[k×n] + beta·C` on up to `threads` cores (rayon's current pool).
/// With `beta == 0`, C is only written (it may hold anything, NaN included).
///
/// # Safety
/// The CPU has AVX-512F (`available`), and every element the strides address exists:
/// `a[(m−1)·rsa + (k−1)·csa]`, `b[(k−1)·rsb + (n−1)·csb]` and `c[(m−1)·rsc + n−1]`
/// (`math.rs` checks these extents against the slices before calling).
#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
pub unsafe fn sgemm(
    threads: usize, m: usize, k: usize, n: usize, alpha: f32,
    a: *const f32, rsa: usize, csa: usize,
    b: *const f32, rsb: usize, csb: usize,
    beta: f32, c: *mut f32, rsc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let (a, b, c) = (Operand { ptr: a, rs: rsa, cs: csa }, Operand { ptr: b, rs: rsb, cs: csb }, Out { ptr: c, rs: rsc });
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                // SAFETY: (i, j) is inside C's extent (the caller's contract).
                unsafe {
                    let e = c.ptr.add(i * c.rs + j);
                    *e = if beta == 0.0 { 0.0 } else { beta * *e };
                }
            }
        }
        return;
    }
    if n == 1 && m > 1 && rsc == 1 {
        // A column of C (a one-output layer's forward, 60000×784·784×1 in the documents'
        // full-batch neurons) would fill one lane of 16: compute its transpose, the row
        // Cᵀ = Bᵀ·Aᵀ, instead. Each element is the same chain of fused products (a·b = b·a).
        // SAFETY: the same elements of A, B and C, addressed through swapped strides.
        return unsafe { sgemm(threads, 1, k, m, alpha, b.ptr, b.cs, b.rs, a.ptr, a.cs, a.rs, beta, c.ptr, m) };
    }
    // Split C by whole panels of columns (each thread packs only its own panels of B and reads
    // all of A) or by whole tiles of rows (each packs all of B and reads its rows of A): where
    // both have a piece per thread, the one that repeats the smaller operand (a full-batch
    // forward 60000×784·784×64 by rows, or each thread would stream all 188 MB of A). Either
    // way no element's sum changes: its order never depends on the tile.
    let threads = if splits(m, k, n) { threads.max(1) } else { 1 };
    let (n_tiles, m_tiles) = (n.div_ceil(NR), m.div_ceil(MR));
    let along_n = if n_tiles >= threads && m_tiles >= threads { n >= m } else { n_tiles >= m_tiles };
    let (len, unit) = if along_n { (n, NR) } else { (m, MR) };
    let tiles = len.div_ceil(unit);
    let pieces = threads.min(tiles);
    if pieces <= 1 {
        // SAFETY: the caller's contract; the region is the whole of C.
        unsafe { region(k, alpha, a, b, beta, c, 0..m, 0..n) };
        return;
    }
    let per = tiles.div_ceil(pieces) * unit;
    rayon::scope(|s| {
        for start in (0..len).step_by(per) {
            let end = (start + per).min(len);
            s.spawn(move |_| {
                let (rows, cols) = if along_n { (0..m, start..end) } else { (start..end, 0..n) };
                // SAFETY: the caller's contract; the pieces' regions of C are disjoint.
                unsafe { region(k, alpha, a, b, beta, c, rows, cols) }
            });
        }
    });
}

/// Where a region's kernels read B's panels from: packed (`NR` values per k, zero past the
/// panel's width), or B's own rows (`rs` apart, read only below the tile's width).
#[derive(Clone, Copy)]
enum Panels {
    Packed(*const f32),
    InPlace(*const f32, usize),
}

thread_local! {
    /// Each thread's packed panels of B, kept between calls (a step makes dozens).
    static PACKED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Each thread's packed block of a column-major A (`pack_a`), `MC × KC` at most.
    static PACKED_A: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The BLIS loops over one rectangle of C, on this thread. A is not packed where its rows are
/// contiguous: the kernel broadcasts its values straight from A's rows (12 streams, which the
/// prefetchers follow). A column-major A (a weight gradient's δᵀ, whose 12 values of one k sit
/// together and the next k a whole row of δ away, so that a tile's 256 k crowd into a few
/// cache sets) is packed per block of rows and k (`pack_a`) where more than one panel of B
/// reads it. B, read as vectors, is laid out anew only where a panel serves more than one
/// tile of rows (with one tile, B's rows are read in place, and with one row against B = Xᵀ,
/// X's blocks are transposed in registers); B's rows are read in place too where k is at most
/// `IN_PLACE_K` (a weight gradient over a batch of 20 or 64: a panel's rows, a few KB, stay in
/// L1 for every tile, and packing them cost more than it saved), and where B is one panel wide
/// (the forward product of a first layer held as Wᵀ [784×30]: a packed panel would be the same
/// 32 columns, copied; its `KC` rows, 30 KB, stay in L1 for every tile). Where all of B's k for a
/// block of columns fits in `WHOLE_B` (the forward products' Wᵀ, up to 784×320), it is packed
/// once and each block of rows runs through every k block while its tile of C is still in
/// cache; else B is packed one k block at a time and every row block runs against it. Both
/// call the kernel on each tile in k's order, so both give the same bits.
#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn region(k: usize, alpha: f32, a: Operand, b: Operand, beta: f32, c: Out, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) {
    let transposed_row = rows.len() == 1 && b.rs == 1 && b.cs != 1;
    let in_place = b.cs == 1 && (rows.len() <= MR || k <= IN_PLACE_K || cols.len() <= NR);
    let packs_a = a.rs == 1 && a.cs != 1 && rows.len() > 1 && cols.len() > NR && !transposed_row;
    // k block `pc`: its length, and what the old C is scaled by (the first block scales it by
    // beta; later ones add to it).
    let block_of = |pc: usize| (KC.min(k - pc), if pc == 0 { beta } else { 1.0 });
    PACKED.with_borrow_mut(|bp| {
        for jc in cols.clone().step_by(NC) {
            let nc = NC.min(cols.end - jc);
            let ncp = nc.div_ceil(NR) * NR;
            let whole = k * ncp <= WHOLE_B;
            let need = if transposed_row || in_place { 0 } else if whole { k * ncp } else { KC * ncp };
            if bp.len() < need {
                bp.resize(need, 0.0);
            }
            // SAFETY (for every block below): the caller's contract bounds every index of A, B
            // and C formed; k block `pc` of the packed B holds kc·ncp values from `pc·ncp`
            // (whole) or from 0.
            let tiles = |pc: usize, panels: Panels, rows: std::ops::Range<usize>| {
                let (kc, old) = block_of(pc);
                let block = if whole { pc * ncp } else { 0 };
                let end = rows.end;
                for ic in rows.step_by(MC) {
                    let mc = MC.min(end - ic);
                    // the block's tiles of A, packed: tile t's row i at k p is `t·MR·kc + p·MR + i`
                    let packed_a = packs_a.then(|| {
                        PACKED_A.with_borrow_mut(|ap| {
                            if ap.len() < MC * KC {
                                ap.resize(MC * KC, 0.0);
                            }
                            unsafe { pack_a(a, ic, mc, pc, kc, ap) };
                            ap.as_ptr()
                        })
                    });
                    for jr in (0..nc).step_by(NR) {
                        let width = NR.min(nc - jr);
                        unsafe {
                            // A packed panel: `kc` rows of NR, zero past `width`; B in place: its own
                            // rows, read only below `width`.
                            let (panel, brs, bw) = match panels {
                                Panels::Packed(bp) => (bp.add(block + jr * kc), NR, NR),
                                Panels::InPlace(b0, rs) => (b0.add(jr), rs, width),
                            };
                            for ir in (0..mc).step_by(MR) {
                                let height = MR.min(mc - ir);
                                let tile = match packed_a {
                                    Some(ap) => Operand { ptr: ap.add(ir * kc), rs: 1, cs: MR },
                                    None => Operand { ptr: a.ptr.add((ic + ir) * a.rs + pc * a.cs), ..a },
                                };
                                let cc = c.ptr.add((ic + ir) * c.rs + jc + jr);
                                let run = match (panels, packed_a.is_some()) {
                                    (Panels::Packed(_), true) => pick::<true, true>(height, width),
                                    (Panels::Packed(_), false) => pick::<false, true>(height, width),
                                    (Panels::InPlace(..), true) => pick::<true, false>(height, width),
                                    (Panels::InPlace(..), false) => pick::<false, false>(height, width),
                                };
                                run(kc, tile, panel, brs, bw, cc, c.rs, height, width, alpha, old)
                            }
                        }
                    }
                }
            };
            if transposed_row {
                // One row of C against B = Xᵀ (a one-output forward as its transpose): no panel is
                // used twice, so the kernel transposes B's 16×16 blocks in registers as it goes.
                for jr in (0..nc).step_by(NR) {
                    let width = NR.min(nc - jr);
                    for pc in (0..k).step_by(KC) {
                        let (kc, old) = block_of(pc);
                        unsafe {
                            let row = Operand { ptr: a.ptr.add(rows.start * a.rs + pc * a.cs), ..a };
                            let panel = b.ptr.add(pc + (jc + jr) * b.cs);
                            let cc = c.ptr.add(rows.start * c.rs + jc + jr);
                            if width > 16 {
                                kernel_transposing::<2>(kc, row, panel, b.cs, cc, width, alpha, old)
                            } else {
                                kernel_transposing::<1>(kc, row, panel, b.cs, cc, width, alpha, old)
                            }
                        }
                    }
                }
            } else if in_place && rows.len() == 1 {
                // One row of C (a one-output weight gradient, 1×40000·40000×784): B's rows are
                // read where they are, `WIDE` columns of each at a time, so that a block of k
                // rows (800 KB) is swept 4 times, not once per 32-column panel (25).
                for pc in (0..k).step_by(KC) {
                    let (kc, old) = block_of(pc);
                    for j0 in (0..nc).step_by(WIDE) {
                        let width = WIDE.min(nc - j0);
                        unsafe {
                            let row = Operand { ptr: a.ptr.add(rows.start * a.rs + pc * a.cs), ..a };
                            let cc = c.ptr.add(rows.start * c.rs + jc + j0);
                            kernel::<1, { WIDE / 16 }, false, false>(kc, row, b.ptr.add(pc * b.rs + jc + j0), b.rs, width, cc, c.rs, 1, width, alpha, old)
                        }
                    }
                }
            } else if in_place {
                // At most one tile of rows (a weight gradient of up to 12 outputs): each panel of
                // B would be used once, so the kernel reads B's rows where they are.
                for pc in (0..k).step_by(KC) {
                    tiles(pc, Panels::InPlace(unsafe { b.ptr.add(pc * b.rs + jc) }, b.rs), rows.clone());
                }
            } else if whole {
                for pc in (0..k).step_by(KC) {
                    unsafe { pack_b(b, pc, KC.min(k - pc), jc, nc, &mut bp[pc * ncp..]) };
                }
                for ic in rows.clone().step_by(MC) {
                    for pc in (0..k).step_by(KC) {
                        tiles(pc, Panels::Packed(bp.as_ptr()), ic..(ic + MC).min(rows.end));
                    }
                }
            } else {
                for pc in (0..k).step_by(KC) {
                    unsafe { pack_b(b, pc, KC.min(k - pc), jc, nc, bp) };
                    tiles(pc, Panels::Packed(bp.as_ptr()), rows.clone());
                }
            }
        }
    })
}

/// Packs k `p0..p0+kc`, columns `j0..j0+nc` of B as panels of `NR` columns, each `[k][NR]`,
/// columns past `nc` zero. Rows of B contiguous: two vector copies per k. Columns contiguous
/// (B = Wᵀ in the forward product): 16×16 blocks transposed in registers. Otherwise one value
/// at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_b(b: Operand, p0: usize, kc: usize, j0: usize, nc: usize, out: &mut [f32]) {
    for (t, jr) in (0..nc).step_by(NR).enumerate() {
        let panel = out[t * NR * kc..(t + 1) * NR * kc].as_mut_ptr();
        let width = NR.min(nc - jr);
        let at = |p: usize, j: usize| (p0 + p) * b.rs + (j0 + jr + j) * b.cs;
        // SAFETY: every read is at k below `kc` and a column below `width` (masked loads
        // read nothing else), inside B's extent; every write is inside the panel.
        unsafe {
            if b.cs == 1 {
                let (m0, m1) = (lanes(width), lanes(width.saturating_sub(16)));
                for p in 0..kc {
                    let src = b.ptr.add(at(p, 0));
                    _mm512_storeu_ps(panel.add(p * NR), _mm512_maskz_loadu_ps(m0, src));
                    _mm512_storeu_ps(panel.add(p * NR + 16), _mm512_maskz_loadu_ps(m1, src.add(16)));
                }
            } else if b.rs == 1 {
                for half in 0..2 {
                    let cols = width.saturating_sub(16 * half).min(16);
                    if cols == 0 {
                        // columns past the width are zero
                        for p in 0..kc {
                            _mm512_storeu_ps(panel.add(p * NR + 16), _mm512_setzero_ps());
                        }
                        continue;
                    }
                    for pb in (0..kc).step_by(16) {
                        let depth = (kc - pb).min(16);
                        // A fixed count of 16 columns, so that the block stays in registers (a
                        // loop to `cols` kept it on the stack): past `cols`, zero.
                        let mut v: [__m512; 16] = std::array::from_fn(|j| {
                            let l = _mm512_maskz_loadu_ps(lanes(depth), b.ptr.add(at(pb, 16 * half + j.min(cols - 1))));
                            if j < cols { l } else { _mm512_setzero_ps() }
                        });
                        transpose16(&mut v);
                        #[allow(clippy::needless_range_loop)]
                        for q in 0..16 {
                            if q >= depth {
                                break;
                            }
                            _mm512_storeu_ps(panel.add((pb + q) * NR + 16 * half), v[q]);
                        }
                    }
                }
            } else {
                for p in 0..kc {
                    for j in 0..NR {
                        *panel.add(p * NR + j) = if j < width { *b.ptr.add(at(p, j)) } else { 0.0 };
                    }
                }
            }
        }
    }
}

/// Packs rows `i0..i0+mc`, k `p0..p0+kc` of a column-major A (`a.rs == 1`) as tiles of `MR`
/// rows, each `[k][MR]`: one masked vector copy per tile and k (rows past a short tile's
/// height keep what the buffer held: the kernel computes with them and never stores those).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_a(a: Operand, i0: usize, mc: usize, p0: usize, kc: usize, out: &mut [f32]) {
    debug_assert!(a.rs == 1 && out.len() >= mc.div_ceil(MR) * MR * kc);
    for (t, ir) in (0..mc).step_by(MR).enumerate() {
        let h = lanes(MR.min(mc - ir));
        let tile = out[t * MR * kc..(t + 1) * MR * kc].as_mut_ptr();
        // SAFETY: rows below `mc` (masked) and k below `kc` are inside A's extent (the caller's
        // contract); each store writes inside the tile (`MR` ≤ 16 lanes, masked to the height).
        unsafe {
            let src = a.ptr.add(i0 + ir + p0 * a.cs);
            for p in 0..kc {
                _mm512_mask_storeu_ps(tile.add(p * MR), h, _mm512_maskz_loadu_ps(h, src.add(p * a.cs)));
            }
        }
    }
}

/// Transposes a 16×16 block held as 16 row vectors: 32-bit, then 64-bit interleaves within
/// 128-bit lanes, then two rounds of lane shuffles.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transpose16(r: &mut [__m512; 16]) {
    // t[2a], t[2a+1]: rows 2a and 2a+1 interleaved; per 128-bit lane L, columns 4L+0,1 and 4L+2,3.
    let mut t = [_mm512_setzero_ps(); 16];
    for a in 0..8 {
        t[2 * a] = _mm512_unpacklo_ps(r[2 * a], r[2 * a + 1]);
        t[2 * a + 1] = _mm512_unpackhi_ps(r[2 * a], r[2 * a + 1]);
    }
    // s[4g+q]: per lane L, column 4L+q of rows 4g..4g+3.
    let mut s = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let (lo, hi) = (_mm512_castps_pd(t[4 * g]), _mm512_castps_pd(t[4 * g + 2]));
        let (lo2, hi2) = (_mm512_castps_pd(t[4 * g + 1]), _mm512_castps_pd(t[4 * g + 3]));
        s[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo, hi));
        s[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo, hi));
        s[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo2, hi2));
        s[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo2, hi2));
    }
    // Column 4L+q gathers lane L of s[q], s[4+q], s[8+q], s[12+q].
    for q in 0..4 {
        let u0 = _mm512_shuffle_f32x4::<0x88>(s[q], s[4 + q]);
        let u1 = _mm512_shuffle_f32x4::<0xdd>(s[q], s[4 + q]);
        let w0 = _mm512_shuffle_f32x4::<0x88>(s[8 + q], s[12 + q]);
        let w1 = _mm512_shuffle_f32x4::<0xdd>(s[8 + q], s[12 + q]);
        r[q] = _mm512_shuffle_f32x4::<0x88>(u0, w0);
        r[8 + q] = _mm512_shuffle_f32x4::<0xdd>(u0, w0);
        r[4 + q] = _mm512_shuffle_f32x4::<0x88>(u1, w1);
        r[12 + q] = _mm512_shuffle_f32x4::<0xdd>(u1, w1);
    }
}

/// A register-block kernel, as `region` calls it.
type Kernel = unsafe fn(usize, Operand, *const f32, usize, usize, *mut f32, usize, usize, usize, f32, f32);

/// The kernel for a tile of `height` rows and `width` columns: the fewest rows of 12, 8, 4 or
/// 1 that cover it, one or two vectors wide; `PACKED_A` where A is a `pack_a` tile, `PACKED_B`
/// where B is a packed panel.
#[cfg(target_arch = "x86_64")]
fn pick<const PACKED_A: bool, const PACKED_B: bool>(height: usize, width: usize) -> Kernel {
    match (height, width > 16) {
        (9.., true) => kernel::<MR, 2, PACKED_A, PACKED_B>,
        (5.., true) => kernel::<8, 2, PACKED_A, PACKED_B>,
        (2.., true) => kernel::<4, 2, PACKED_A, PACKED_B>,
        (_, true) => kernel::<1, 2, PACKED_A, PACKED_B>,
        (9.., false) => kernel::<MR, 1, PACKED_A, PACKED_B>,
        (5.., false) => kernel::<8, 1, PACKED_A, PACKED_B>,
        (2.., false) => kernel::<4, 1, PACKED_A, PACKED_B>,
        (_, false) => kernel::<1, 1, PACKED_A, PACKED_B>,
    }
}

/// One `H × 16·NV` block of C from `H` rows of A (read through its strides; rows past
/// `height` repeat the last one, or in a packed tile hold anything: their results are never
/// stored) and a panel of B. With `PACKED_A` (a `pack_a` tile) and `PACKED_B` (a packed panel,
/// zero past its width) the offsets are constants: one pointer for A instead of a register per
/// row (twelve row pointers left two of them reloaded from the stack every k), plain loads of
/// B instead of masked ones.
/// `H` is `MR`, or 8, 4 or 1 for a shorter tile (a weight gradient of 64 or 1 outputs), so
/// that no more rows are computed than the tile has, rounded up to one of these:
/// `s = Σ_p a_p·b_p` as one fused chain in p's order, then `C = scale·s + old·C` on the
/// `height × width` corner that exists (`old == 0` never reads C).
#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const H: usize, const NV: usize, const PACKED_A: bool, const PACKED_B: bool>(kc: usize, a: Operand, b: *const f32, brs: usize, bw: usize, c: *mut f32, rsc: usize, height: usize, width: usize, scale: f32, old: f32) {
    debug_assert!(!PACKED_A || (a.rs == 1 && a.cs == MR));
    debug_assert!(!PACKED_B || (brs == NR && bw == NR));
    let rows: [*const f32; H] = std::array::from_fn(|i| a.ptr.wrapping_add(i.min(height - 1) * a.rs));
    let bmask: [__mmask16; NV] = std::array::from_fn(|v| lanes(bw.saturating_sub(16 * v)));
    let mut acc = [[_mm512_setzero_ps(); NV]; H];
    for p in 0..kc {
        // SAFETY: rows below `height`, k below `kc`: inside A's extent; B's row p holds `bw`
        // values from `p·brs` (masked loads read no others).
        unsafe {
            let bv: [__m512; NV] = std::array::from_fn(|v| if PACKED_B { _mm512_loadu_ps(b.add(p * NR + 16 * v)) } else { _mm512_maskz_loadu_ps(bmask[v], b.add(p * brs + 16 * v)) });
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(if PACKED_A { *a.ptr.add(p * MR + i) } else { *rows[i].add(p * a.cs) });
                for v in 0..NV {
                    row[v] = _mm512_fmadd_ps(ai, bv[v], row[v]);
                }
            }
        }
    }
    // Constant bounds, so that the loop unrolls and `acc` never leaves the registers (with
    // `take(height)` it went through the stack, zeroed by a 1.5 KB memset per call: 4-6 % of
    // the wide network's step).
    #[allow(clippy::needless_range_loop)]
    for i in 0..H {
        if i >= height {
            break;
        }
        // SAFETY: row i of C exists and holds `width` columns from `c + i·rsc`.
        unsafe { store(&acc[i], c.add(i * rsc), width, scale, old) };
    }
}

/// One row of C, `16·NV` wide, from one row of A and B = Xᵀ read where it is: column j of B
/// (row j of X) starts at `b + j·bcs`, its k contiguous. Each 16×16 block of X is transposed in
/// registers (as `pack_b` would lay it out), then runs the same fused chain as
/// `kernel::<1, NV>`, so the same bits as the packed path. Columns past `width` repeat the last
/// one (read, never stored).
#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel_transposing<const NV: usize>(kc: usize, a: Operand, b: *const f32, bcs: usize, c: *mut f32, width: usize, scale: f32, old: f32) {
    let mut acc = [_mm512_setzero_ps(); NV];
    for pb in (0..kc).step_by(16) {
        let depth = (kc - pb).min(16);
        let mut t = [[_mm512_setzero_ps(); 16]; NV];
        for (v, tv) in t.iter_mut().enumerate() {
            for (j, tj) in tv.iter_mut().enumerate() {
                let col = (16 * v + j).min(width - 1);
                // SAFETY: column below `width`, k below `kc` (the mask reads no further).
                *tj = unsafe { _mm512_maskz_loadu_ps(lanes(depth), b.add(col * bcs + pb)) };
            }
            transpose16(tv);
        }
        #[allow(clippy::needless_range_loop)]
        for q in 0..16 {
            if q >= depth {
                break;
            }
            // SAFETY: k below `kc`, inside A's row.
            let aq = _mm512_set1_ps(unsafe { *a.ptr.add((pb + q) * a.cs) });
            for v in 0..NV {
                acc[v] = _mm512_fmadd_ps(aq, t[v][q], acc[v]);
            }
        }
    }
    // SAFETY: this row of C holds `width` columns from `c`.
    unsafe { store(&acc, c, width, scale, old) };
}

/// `C = scale·s + old·C` on the first `width` columns of one row of a register block
/// (`old == 0` never reads C).
#[inline]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn store<const NV: usize>(s: &[__m512; NV], dst: *mut f32, width: usize, scale: f32, old: f32) {
    for (v, sv) in s.iter().enumerate() {
        let count = width.saturating_sub(16 * v);
        if count == 0 {
            break;
        }
        let mask = lanes(count);
        // SAFETY: the masked lanes are columns below `width` (the caller's row).
        unsafe {
            let dst = dst.add(16 * v);
            let mut out = _mm512_mul_ps(_mm512_set1_ps(scale), *sv);
            if old != 0.0 {
                let prev = _mm512_maskz_loadu_ps(mask, dst);
                out = if old == 1.0 { _mm512_add_ps(out, prev) } else { _mm512_add_ps(out, _mm512_mul_ps(_mm512_set1_ps(old), prev)) };
            }
            _mm512_mask_storeu_ps(dst, mask, out);
        }
    }
}

/// The first `n` of 16 lanes (all from 16).
#[cfg(target_arch = "x86_64")]
pub(crate) fn lanes(n: usize) -> __mmask16 {
    if n >= 16 { 0xffff } else { (1u16 << n) - 1 }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::nn::math::gemm_reference;

    /// The reference with the same summation order: per block of `KC`, one fused chain in f32;
    /// the blocks' sums added in k's order. The kernel must match it to the bit.
    #[allow(clippy::too_many_arguments)]
    fn blocked_reference(m: usize, k: usize, n: usize, alpha: f32, a: &[f32], rsa: usize, csa: usize, b: &[f32], rsb: usize, csb: usize, beta: f32, c: &mut [f32], rsc: usize) {
        for i in 0..m {
            for j in 0..n {
                let e = &mut c[i * rsc + j];
                for (blk, p0) in (0..k).step_by(KC).enumerate() {
                    let mut s = 0.0f32;
                    for p in p0..(p0 + KC).min(k) {
                        s = a[i * rsa + p * csa].mul_add(b[p * rsb + j * csb], s);
                    }
                    *e = if blk > 0 { alpha * s + *e } else if beta == 0.0 { alpha * s } else { alpha * s + beta * *e };
                }
            }
        }
    }

    fn fill(n: usize, seed: f64) -> Vec<f32> {
        (0..n).map(|i| ((i as f64 + 1.0) * seed).sin() as f32).collect()
    }

    /// Shapes off every block size (MR 12, NR 32, KC 256, MC 120, NC 1024), each operand read
    /// plain and transposed, C with a row stride wider than n, poisoned where beta is 0; one
    /// thread and several: the same bits as the blocked mirror, and within 1e-5 of the f64
    /// reference relative to the product of the operands' norms.
    #[test]
    fn sgemm_matches_its_mirror_bit_for_bit_and_the_f64_reference() {
        if !available() {
            // A CPU feature cannot be installed the way a missing package can; on this CPU the
            // kernel never runs (math.rs takes the gemm crate), so there is nothing to check.
            eprintln!("no AVX-512F on this CPU: nn::sgemm is not used here and is not checked");
            return;
        }
        let shapes = [(1, 1, 1), (13, 7, 5), (20, 784, 30), (121, 257, 33), (37, 600, 1030), (250, 513, 17), (5, 1, 70), (16, 300, 40), (64, 9, 784), (3, 260, 1), (1, 600, 1030), (12, 530, 50), (7, 300, 2000), (1, 2100, 2000)];
        for (m, k, n) in shapes {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = fill(m * k, 0.37);
                let b = fill(k * n, 0.61);
                let (rsa, csa) = if ta { (1, m) } else { (k, 1) };
                let (rsb, csb) = if tb { (1, k) } else { (n, 1) };
                // C padded, and packed (a column of C then takes the transposed path)
                for (rsc, (alpha, beta)) in [n + 3, n].into_iter().flat_map(|r| [(1.0f32, 0.0f32), (0.5, 1.0), (-2.0, 0.25)].map(|s| (r, s))) {
                    let start = fill(m * rsc, 0.13);
                    let mut want = start.clone();
                    blocked_reference(m, k, n, alpha, &a, rsa, csa, &b, rsb, csb, beta, &mut want, rsc);
                    let mut exact = start.iter().map(|&x| x as f64).collect::<Vec<f64>>();
                    let (a64, b64): (Vec<f64>, Vec<f64>) = (a.iter().map(|&x| x as f64).collect(), b.iter().map(|&x| x as f64).collect());
                    gemm_reference(m, k, n, alpha as f64, &a64, rsa, csa, &b64, rsb, csb, beta as f64, &mut exact, rsc);
                    for threads in [1, 2, 3] {
                        let mut got = if beta == 0.0 { vec![f32::NAN; m * rsc] } else { start.clone() };
                        // Padding columns keep their values: poison them to see they are not written.
                        for i in 0..m {
                            for j in n..rsc {
                                got[i * rsc + j] = 7.0;
                            }
                        }
                        unsafe { sgemm(threads, m, k, n, alpha, a.as_ptr(), rsa, csa, b.as_ptr(), rsb, csb, beta, got.as_mut_ptr(), rsc) };
                        let scale = (k as f64).sqrt() * alpha.abs() as f64 + beta.abs() as f64;
                        for i in 0..m {
                            for j in 0..rsc {
                                let (g, w) = (got[i * rsc + j], want[i * rsc + j]);
                                if j >= n {
                                    assert_eq!(g, 7.0, "{m}×{k}×{n}: padding ({i},{j}) written");
                                    continue;
                                }
                                assert_eq!(g.to_bits(), w.to_bits(), "{m}×{k}×{n} ta={ta} tb={tb} α={alpha} β={beta} threads={threads} ({i},{j}): {g} vs mirror {w}");
                                let e = exact[i * rsc + j];
                                assert!((g as f64 - e).abs() <= 1e-5 * scale.max(1.0), "{m}×{k}×{n} ({i},{j}): {g} vs f64 {e}");
                            }
                        }
                    }
                }
            }
        }
    }
}
