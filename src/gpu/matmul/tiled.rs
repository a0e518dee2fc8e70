//! The tiled matmul kernels, the family for hardware GPUs: each workgroup computes a BM×BN tile
//! of the output, staging BK-deep slices of both operands in workgroup memory (loaded once,
//! with vec4 loads, by all its threads together) and each thread accumulates a TM×TN block
//! from there. This is what makes a GPU's FMA units, not its memory, the limit: every loaded
//! float is used BM (or BN) times from fast memory instead of once from global memory. On
//! lavapipe it does not pay (workgroup memory is ordinary memory there, and the barriers
//! cost), which is why the software adapters keep the register-blocked `vec4` and `subgroup`.
//!
//! The three products in one form, `C[M×N] = Σ_k A[m,k]·B[k,n]`, with each operand stored either
//! contiguous along k or along its other axis:
//!
//! | product        | M, N, K            | A (stored)        | B (stored)          |
//! |----------------|--------------------|-------------------|---------------------|
//! | forward        | rows, out, in      | acts [m, k]       | W [n, k]            |
//! | backward_data  | rows, in, out      | δ [m, k]          | W [k, n]            |
//! | weight_grad    | out, in, rows      | δ [k, m] (δᵀ)     | acts [k, n]         |
//!
//! Every output element sums k in increasing order with one fma per term, as the scalar and
//! plain kernels do, so the families agree to the last bit but for the sign of a zero. The
//! kernels need the shape conditions of `shaders/matmul_vec4.wgsl` (both widths multiples of 4);
//! any row count works: loads past the edges read zero, stores are masked. Generated, like
//! the plain kernels (`vec4`), because WGSL cannot unroll the thread's block.
//!
//! Each thread's rows and columns are strided by the workgroup's threads (vec4 i of a thread is
//! vec4 `lid + i·threads` of the tile), so neighbouring threads read neighbouring vec4s of
//! workgroup memory (no bank conflicts) and write neighbouring vec4s of the output.

use super::product::{Generated, Grid, Matmul, XYZW, emit};
use std::fmt::Write;

/// A workgroup tile: BM×BN outputs, BK-deep operand slices, TM×TN outputs per thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub bm: u32,
    pub bn: u32,
    pub bk: u32,
    pub tm: u32,
    pub tn: u32,
}

impl Tile {
    /// Small tiles for small products (batch 64, layers of 128): more workgroups to fill a GPU.
    pub const T32: Tile = Tile { bm: 32, bn: 32, bk: 16, tm: 4, tn: 4 };
    pub const T64: Tile = Tile { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 };
    /// Large tiles for large products: twice the FMAs per workgroup-memory read of T64.
    pub const T128: Tile = Tile { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8 };

    /// Threads per workgroup (x over columns, y over rows).
    pub fn threads(&self) -> (u32, u32) {
        (self.bn / self.tn, self.bm / self.tm)
    }

    /// Workgroup memory of the two operand slices.
    pub fn workgroup_bytes(&self) -> u32 {
        4 * self.bk * (self.bm + self.bn)
    }

    /// vec4 loads per thread per slice of A and of B (the slices divide evenly: asserted).
    fn loads(&self) -> (u32, u32) {
        let (x, y) = self.threads();
        let t = x * y;
        assert!(self.tm % 4 == 0 && self.tn % 4 == 0 && self.bk % 4 == 0, "tile {self:?}: blocks and depth must be multiples of 4");
        assert!((self.bm * self.bk / 4) % t == 0 && (self.bn * self.bk / 4) % t == 0, "tile {self:?}: slices must split evenly over the threads");
        (self.bm * self.bk / 4 / t, self.bn * self.bk / 4 / t)
    }
}

/// How an operand is stored: contiguous along k, or along its other axis (m for A, n for B).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Major {
    K,
    Outer,
}

/// One product in the form above: its WGSL names for the buffers, offsets and sizes.
struct Product {
    entry: &'static str,
    a: (&'static str, &'static str, Major),
    b: (&'static str, &'static str, Major),
    /// WGSL expressions for M, N, K.
    mnk: [&'static str; 3],
}

/// Emits the loads of one operand's slice into workgroup array `tile` (name), `loads` vec4s per
/// thread; `outer` is the operand's other axis (M or N) as a WGSL name, `o0` its tile start.
fn emit_slice(s: &mut String, t: &Tile, (buf, off, major): (&str, &str, Major), tile: &str, outer_len: u32, outer: &str, o0: &str, loads: u32) {
    let (x, y) = t.threads();
    let threads = x * y;
    let (bk4, o4) = (t.bk / 4, outer_len / 4);
    for u in 0..loads {
        emit!(s, "        {{");
        emit!(s, "            let v = tid + {}u;", u * threads);
        match major {
            // vec4 (o, k..k+3) goes to four rows of the slice, one component each
            Major::K => {
                emit!(s, "            let o = v / {bk4}u;\n            let q = v % {bk4}u;");
                emit!(s, "            var x = vec4<f32>(0.0);");
                emit!(s, "            if ({o0} + o < {outer} && k0 + 4u * q < k) {{ x = {buf}[{off} / 4u + ({o0} + o) * (k / 4u) + k0 / 4u + q]; }}");
                for (e, c) in XYZW.iter().enumerate() {
                    emit!(s, "            {tile}[(4u * q + {e}u) * {o4}u + o / 4u][o % 4u] = x.{c};");
                }
            }
            // vec4 (k, o..o+3) is one vec4 of the slice
            Major::Outer => {
                emit!(s, "            let kk = v / {o4}u;\n            let q = v % {o4}u;");
                emit!(s, "            var x = vec4<f32>(0.0);");
                emit!(s, "            if (k0 + kk < k && {o0} + 4u * q < {outer}) {{ x = {buf}[{off} / 4u + (k0 + kk) * ({outer} / 4u) + {o0} / 4u + q]; }}");
                emit!(s, "            {tile}[kk * {o4}u + q] = x;");
            }
        }
        emit!(s, "        }}");
    }
}

/// The generated entry point of `p` for tile `t`; `epilogue` writes the thread's block.
fn generate_product(t: &Tile, p: &Product, bias_sum: bool, epilogue: impl Fn(&mut String, &Tile)) -> Generated {
    let (tx, ty) = t.threads();
    let (la, lb) = t.loads();
    let (bm4, bn4, rv, cv) = (t.bm / 4, t.bn / 4, t.tm / 4, t.tn / 4);
    let mut s = String::new();
    emit!(s, "var<workgroup> tile_a: array<vec4<f32>, {}>;", t.bk * bm4);
    emit!(s, "var<workgroup> tile_b: array<vec4<f32>, {}>;", t.bk * bn4);
    emit!(s, "@compute @workgroup_size({tx}, {ty}, 1)");
    emit!(s, "fn {}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {{", p.entry);
    emit!(s, "    let m = {};\n    let n = {};\n    let k = {};", p.mnk[0], p.mnk[1], p.mnk[2]);
    emit!(s, "    let m0 = wid.y * {}u;\n    let n0 = wid.x * {}u;", t.bm, t.bn);
    emit!(s, "    let tid = lid.y * {tx}u + lid.x;");
    for i in 0..t.tm {
        for j in 0..cv {
            emit!(s, "    var acc{i}_{j} = vec4<f32>(0.0);");
        }
    }
    if bias_sum {
        // the threads of the tile's first columns also sum A over k: the bias gradient
        emit!(s, "    let sums_bias = wid.x == 0u && lid.x == 0u;");
        for v in 0..rv {
            emit!(s, "    var bias{v} = vec4<f32>(0.0);");
        }
    }
    emit!(s, "    for (var k0 = 0u; k0 < k; k0 += {}u) {{", t.bk);
    emit_slice(&mut s, t, p.a, "tile_a", t.bm, "m", "m0", la);
    emit_slice(&mut s, t, p.b, "tile_b", t.bn, "n", "n0", lb);
    emit!(s, "        workgroupBarrier();");
    for kk in 0..t.bk {
        for v in 0..rv {
            emit!(s, "        let a{kk}_{v} = tile_a[{}u + lid.y + {}u];", kk * bm4, v * ty);
        }
        for w in 0..cv {
            emit!(s, "        let b{kk}_{w} = tile_b[{}u + lid.x + {}u];", kk * bn4, w * tx);
        }
        for i in 0..t.tm {
            for w in 0..cv {
                emit!(s, "        acc{i}_{w} = fma(vec4<f32>(a{kk}_{}.{}), b{kk}_{w}, acc{i}_{w});", i / 4, XYZW[(i % 4) as usize]);
            }
        }
        if bias_sum {
            let adds: Vec<String> = (0..rv).map(|v| format!("bias{v} += a{kk}_{v};")).collect();
            emit!(s, "        if (sums_bias) {{ {} }}", adds.join(" "));
        }
    }
    emit!(s, "        workgroupBarrier();");
    emit!(s, "    }}");
    epilogue(&mut s, t);
    emit!(s, "}}");
    Generated { source: s, grid: Grid { tile: (t.bm, t.bn), rows_in_x: false, bias_column: false } }
}

/// For each (row i of the block, vec4 column w): the guarded store `body(i, w)` at output row
/// `r` and first column `c` (both WGSL names in scope inside `body`).
fn emit_stores(s: &mut String, t: &Tile, body: impl Fn(u32, u32) -> String) {
    let (tx, ty) = t.threads();
    for i in 0..t.tm {
        emit!(s, "    {{\n        let r = m0 + 4u * (lid.y + {}u) + {}u;", (i / 4) * ty, i % 4);
        emit!(s, "        if (r < m) {{");
        for w in 0..t.tn / 4 {
            emit!(s, "            {{ let c = n0 + 4u * (lid.x + {}u); if (c < n) {{ {} }} }}", w * tx, body(i, w));
        }
        emit!(s, "        }}\n    }}");
    }
}

/// The kernel of `kind` for tile `t`.
pub fn generate(kind: Matmul, t: &Tile) -> Generated {
    match kind {
        Matmul::Forward => forward(t),
        Matmul::BackwardData => backward_data(t),
        Matmul::WeightGrad => weight_grad(t),
    }
}

/// Z = A·Wᵀ + b, A = f(Z).
fn forward(t: &Tile) -> Generated {
    let p = Product { entry: "forward", a: ("acts", "d.a_off", Major::K), b: ("params", "d.b_off", Major::K), mnk: ["st.rows", "d.n", "d.k"] };
    generate_product(t, &p, false, |s, t| {
        emit_stores(s, t, |i, w| format!("store_forward4((d.c_off + r * n + c) / 4u, acc{i}_{w} + params[(d.bias_off + c) / 4u]);"));
    })
}

/// δ_{l−1} = (δ_l·W) ⊙ f'(Z_{l−1}).
fn backward_data(t: &Tile) -> Generated {
    let p = Product { entry: "backward_data", a: ("dlt", "d.a_off", Major::K), b: ("params", "d.b_off", Major::Outer), mnk: ["st.rows", "d.n", "d.k"] };
    generate_product(t, &p, false, |s, t| {
        emit_stores(s, t, |i, w| format!("store_delta4((d.c_off + r * n + c) / 4u, acc{i}_{w});"));
    })
}

/// ∂W = s·δᵀ·A and ∂b = s·Σ_rows δ.
fn weight_grad(t: &Tile) -> Generated {
    let p = Product { entry: "weight_grad", a: ("dlt", "d.a_off", Major::Outer), b: ("acts", "d.b_off", Major::Outer), mnk: ["d.m", "d.n", "st.rows"] };
    generate_product(t, &p, true, |s, t| {
        emit_stores(s, t, |i, w| format!("store_grad4((d.c_off + r * n + c) / 4u, acc{i}_{w});"));
        let ty = t.threads().1;
        for v in 0..t.tm / 4 {
            emit!(s, "    if (sums_bias && m0 + 4u * (lid.y + {}u) < m) {{ store_grad4(d.bias_off / 4u + m0 / 4u + lid.y + {}u, bias{v}); }}", v * ty, v * ty);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tile_splits_its_slices_evenly_and_fits_default_limits() {
        let lim = wgpu::Limits::default();
        for t in [Tile::T32, Tile::T64, Tile::T128] {
            let (x, y) = t.threads();
            assert!(x * y <= lim.max_compute_invocations_per_workgroup, "{t:?}");
            assert!(t.workgroup_bytes() <= lim.max_compute_workgroup_storage_size, "{t:?}");
            let (la, lb) = t.loads();
            assert!(la >= 1 && lb >= 1);
            assert_eq!(forward(&t).grid.tile, (t.bm, t.bn));
        }
    }
}
