//! The plain vec4 kernels: each thread computes a register block of the output, loading vec4s
//! along the contiguous axis of both operands; no workgroup memory, no subgroups. Portable, and
//! with large blocks the best of the three vec4 families on lavapipe without 8-lane subgroups
//! (there loads are what costs, so more FMAs per loaded vec4 win despite register spills).
//!
//! Generated per configuration (`Blocks`) and appended to `shaders/matmul_vec4.wgsl`
//! (bindings and helpers, `VEC4_HEADER`), because the register block must be unrolled in the
//! source: WGSL cannot unroll a loop, and lavapipe keeps arrays indexed in loops in memory. The
//! kernels assume the shape conditions listed in that header; the host checks them per layer
//! (`KernelConfig::runs_vec4`) and otherwise uses the scalar kernels.

use super::product::{Generated, Grid, Matmul, XYZW, emit};
use std::fmt::Write;

/// The bindings and helpers every vec4 family (plain, subgroup, tiled) appends its entry to.
pub const VEC4_HEADER: &str = include_str!("../../../shaders/matmul_vec4.wgsl");

/// A register block; the unit of `rows` and `cols` is given per product in [`Blocks`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub rows: u32,
    pub cols: u32,
}

/// The plain kernels' register blocks and workgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocks {
    /// Rows × columns of Z per thread.
    pub forward: Block,
    /// Rows × vec4 columns of δ per thread.
    pub backward_data: Block,
    /// vec4 rows (outputs) × vec4 columns (inputs) of ∂W per thread.
    pub weight_grad: Block,
    /// Threads per workgroup (x over columns, y over rows).
    pub workgroup: (u32, u32),
}

impl Blocks {
    /// 4×4 blocks and 8×8 threads: the portable choice.
    pub const PLAIN: Blocks = Blocks {
        forward: Block { rows: 4, cols: 4 },
        backward_data: Block { rows: 4, cols: 1 },
        weight_grad: Block { rows: 1, cols: 1 },
        workgroup: (8, 8),
    };
    /// The largest blocks that still paid on lavapipe.
    pub const SOFTWARE: Blocks = Blocks {
        forward: Block { rows: 8, cols: 8 },
        backward_data: Block { rows: 4, cols: 2 },
        weight_grad: Block { rows: 4, cols: 2 },
        workgroup: (8, 8),
    };
}

/// The kernel of `kind` with blocks `b`.
pub fn generate(kind: Matmul, b: &Blocks) -> Generated {
    match kind {
        Matmul::Forward => forward(b),
        Matmul::BackwardData => backward_data(b),
        Matmul::WeightGrad => weight_grad(b),
    }
}

/// Z = A·Wᵀ + b, A = f(Z): both operands are contiguous along k, so the inner loop walks k in
/// vec4 steps and accumulates dot products.
fn forward(b: &Blocks) -> Generated {
    let Block { rows: r, cols: c } = b.forward;
    let mut s = String::new();
    let (wx, wy) = b.workgroup;
    emit!(s, "@compute @workgroup_size({wx}, {wy}, 1)");
    emit!(s, "fn forward(@builtin(global_invocation_id) gid: vec3<u32>) {{");
    emit!(s, "    let m = st.rows;\n    let n = d.n;\n    let k4 = d.k / 4u;");
    emit!(s, "    let r0 = gid.y * {r}u;\n    let c0 = gid.x * {c}u;");
    emit!(s, "    if (r0 >= m || c0 >= n) {{\n        return;\n    }}");
    for i in 0..r {
        emit!(s, "    let a{i} = d.a_off / 4u + min(r0 + {i}u, m - 1u) * k4;");
    }
    for j in 0..c {
        emit!(s, "    let b{j} = d.b_off / 4u + min(c0 + {j}u, n - 1u) * k4;");
    }
    for i in 0..r {
        for j in 0..c {
            emit!(s, "    var acc{i}_{j} = 0.0;");
        }
    }
    emit!(s, "    for (var p = 0u; p < k4; p++) {{");
    for i in 0..r {
        emit!(s, "        let x{i} = acts[a{i} + p];");
    }
    for j in 0..c {
        emit!(s, "        let w{j} = params[b{j} + p];");
    }
    for i in 0..r {
        for j in 0..c {
            emit!(s, "        acc{i}_{j} = dot_acc(x{i}, w{j}, acc{i}_{j});");
        }
    }
    emit!(s, "    }}");
    for i in 0..r {
        emit!(s, "    if (r0 + {i}u < m) {{");
        for j in 0..c {
            emit!(s, "        if (c0 + {j}u < n) {{ store_forward(d.c_off + (r0 + {i}u) * n + c0 + {j}u, acc{i}_{j} + param_at(d.bias_off + c0 + {j}u)); }}");
        }
        emit!(s, "    }}");
    }
    emit!(s, "}}");
    Generated { source: s, grid: Grid { tile: (r * wy, c * wx), rows_in_x: false, bias_column: false } }
}

/// δ_{l−1} = (δ_l·W) ⊙ f'(Z_{l−1}): δ_l is contiguous along k, W along the output columns, so
/// each k-step of 4 multiplies four broadcast δ values by four vec4 rows of W.
fn backward_data(b: &Blocks) -> Generated {
    let Block { rows: r, cols: q } = b.backward_data;
    let mut s = String::new();
    let (wx, wy) = b.workgroup;
    emit!(s, "@compute @workgroup_size({wx}, {wy}, 1)");
    emit!(s, "fn backward_data(@builtin(global_invocation_id) gid: vec3<u32>) {{");
    emit!(s, "    let m = st.rows;\n    let n4 = d.n / 4u;\n    let k4 = d.k / 4u;");
    emit!(s, "    let r0 = gid.y * {r}u;\n    let q0 = gid.x * {q}u;");
    emit!(s, "    if (r0 >= m || q0 >= n4) {{\n        return;\n    }}");
    for i in 0..r {
        emit!(s, "    let a{i} = d.a_off / 4u + min(r0 + {i}u, m - 1u) * k4;");
    }
    for j in 0..q {
        emit!(s, "    let b{j} = d.b_off / 4u + min(q0 + {j}u, n4 - 1u);");
    }
    for i in 0..r {
        for j in 0..q {
            emit!(s, "    var acc{i}_{j} = vec4<f32>(0.0);");
        }
    }
    emit!(s, "    for (var p = 0u; p < k4; p++) {{");
    for i in 0..r {
        emit!(s, "        let x{i} = dlt[a{i} + p];");
    }
    for (e, c) in XYZW.iter().enumerate() {
        emit!(s, "        let row{e} = (4u * p + {e}u) * n4;");
        for j in 0..q {
            emit!(s, "        let w{j}_{e} = params[row{e} + b{j}];");
            for i in 0..r {
                emit!(s, "        acc{i}_{j} = fma(vec4<f32>(x{i}.{c}), w{j}_{e}, acc{i}_{j});");
            }
        }
    }
    emit!(s, "    }}");
    for i in 0..r {
        emit!(s, "    if (r0 + {i}u < m) {{");
        for j in 0..q {
            emit!(s, "        if (q0 + {j}u < n4) {{ store_delta4(d.c_off / 4u + (r0 + {i}u) * n4 + q0 + {j}u, acc{i}_{j}); }}");
        }
        emit!(s, "    }}");
    }
    emit!(s, "}}");
    Generated { source: s, grid: Grid { tile: (r * wy, 4 * q * wx), rows_in_x: false, bias_column: false } }
}

/// ∂W = s·δᵀ·A and ∂b = s·Σ_rows δ: both operands are contiguous along the output axes and k
/// runs over the rows, so each row adds outer products of vec4s of δ and A. The threads that
/// hold the first vec4 column of ∂W also write the bias gradient (they see every δ anyway).
fn weight_grad(b: &Blocks) -> Generated {
    let Block { rows: p, cols: t } = b.weight_grad;
    let mut s = String::new();
    let (wx, wy) = b.workgroup;
    emit!(s, "@compute @workgroup_size({wx}, {wy}, 1)");
    emit!(s, "fn weight_grad(@builtin(global_invocation_id) gid: vec3<u32>) {{");
    emit!(s, "    let m4 = d.m / 4u;\n    let n4 = d.n / 4u;\n    let k = st.rows;");
    emit!(s, "    let o0 = gid.y * {p}u;\n    let q0 = gid.x * {t}u;");
    emit!(s, "    if (o0 >= m4 || q0 >= n4) {{\n        return;\n    }}");
    for u in 0..p {
        emit!(s, "    let g{u} = d.a_off / 4u + min(o0 + {u}u, m4 - 1u);");
        emit!(s, "    var bias{u} = vec4<f32>(0.0);");
    }
    for j in 0..t {
        emit!(s, "    let b{j} = d.b_off / 4u + min(q0 + {j}u, n4 - 1u);");
    }
    for u in 0..p {
        for e in 0..4 {
            for j in 0..t {
                emit!(s, "    var acc{u}_{e}_{j} = vec4<f32>(0.0);");
            }
        }
    }
    emit!(s, "    for (var r = 0u; r < k; r++) {{");
    for u in 0..p {
        emit!(s, "        let g{u}v = dlt[g{u} + r * m4];");
        emit!(s, "        bias{u} += g{u}v;");
    }
    for j in 0..t {
        emit!(s, "        let x{j} = acts[b{j} + r * n4];");
    }
    for u in 0..p {
        for (e, c) in XYZW.iter().enumerate() {
            for j in 0..t {
                emit!(s, "        acc{u}_{e}_{j} = fma(vec4<f32>(g{u}v.{c}), x{j}, acc{u}_{e}_{j});");
            }
        }
    }
    emit!(s, "    }}");
    for u in 0..p {
        emit!(s, "    if (o0 + {u}u < m4) {{");
        for e in 0..4 {
            for j in 0..t {
                emit!(s, "        if (q0 + {j}u < n4) {{ store_grad4(d.c_off / 4u + (4u * (o0 + {u}u) + {e}u) * n4 + q0 + {j}u, acc{u}_{e}_{j}); }}");
            }
        }
        emit!(s, "        if (q0 == 0u) {{ store_grad4(d.bias_off / 4u + o0 + {u}u, bias{u}); }}");
        emit!(s, "    }}");
    }
    emit!(s, "}}");
    Generated { source: s, grid: Grid { tile: (4 * p * wy, 4 * t * wx), rows_in_x: false, bias_column: false } }
}
