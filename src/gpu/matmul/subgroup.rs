//! The subgroup kernels, for lavapipe. There every load from a storage buffer is a loop over
//! the 8 SIMD lanes with a bounds check per element (~40 instructions per vec4 per lane), while
//! an FMA covers all 8 lanes in one instruction, so loads are what costs. The lanes of a
//! subgroup (one workgroup) therefore share the operand that all of them need: each lane loads
//! one vec4 of it and `subgroupBroadcast` (a register shuffle there) hands it to the others.
//! Per loaded vec4 this does 2–4× the FMAs of the plain kernels (measured on lavapipe's 8
//! lanes: ~2× the GFLOP/s).
//!
//! Written for any fixed subgroup width of 4 or more lanes, a multiple of 4 (`Blocks::lanes`):
//! lavapipe has 8, SwiftShader 4, NVIDIA 32, AMD 32 or 64. Generated like the plain kernels
//! (`vec4`), over the same header and shape conditions.

use super::product::{Generated, Grid, Matmul, XYZW, emit};
use super::vec4::Block;
use std::fmt::Write;

/// The subgroup kernels' width and register blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocks {
    /// Lanes of the subgroup the kernels are written for (one workgroup is one subgroup): a
    /// multiple of 4, the adapter's fixed subgroup width.
    pub lanes: u32,
    /// Rows per lane × blocks of `lanes` columns of Z.
    pub forward: Block,
    /// Rows per lane × vec4 columns of the subgroup's tile of δ (a multiple of `lanes / 4`).
    pub backward_data: Block,
    /// vec4 rows of the subgroup's tile of ∂W × vec4 columns per lane.
    pub weight_grad: Block,
}

impl Blocks {
    /// The blocks measured best on lavapipe (AVX2, 8 lanes).
    pub const LAVAPIPE: Blocks = Blocks {
        lanes: 8,
        forward: Block { rows: 4, cols: 2 },
        backward_data: Block { rows: 4, cols: 4 },
        weight_grad: Block { rows: 4, cols: 1 },
    };

    /// The blocks for `lanes` lanes: lavapipe's at 8; at 4 the same register blocks (half the
    /// accumulators); from 16 lanes up one row and one block per lane, so that the unrolled
    /// broadcasts stay within a few dozen registers. None unless `lanes` is a multiple of 4.
    pub fn for_lanes(lanes: u32) -> Option<Blocks> {
        match lanes {
            8 => Some(Blocks::LAVAPIPE),
            4 => Some(Blocks { lanes: 4, ..Blocks::LAVAPIPE }),
            l if l >= 16 && l % 4 == 0 => Some(Blocks {
                lanes: l,
                forward: Block { rows: 1, cols: 1 },
                backward_data: Block { rows: 1, cols: l / 4 },
                weight_grad: Block { rows: 1, cols: 1 },
            }),
            _ => None,
        }
    }
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
    let lanes = b.lanes;
    let mut s = String::new();
    // lane l owns rows r0 + L·i; the tile's columns c0 + L·j + t are loaded by lane t
    emit!(s, "@compute @workgroup_size({lanes}, 1, 1)");
    emit!(s, "fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {{");
    emit!(s, "    let m = st.rows;\n    let n = d.n;\n    let k4 = d.k / 4u;");
    emit!(s, "    let r0 = wid.y * {}u + lane;", lanes * r);
    emit!(s, "    let c0 = wid.x * {}u;", lanes * c);
    for i in 0..r {
        emit!(s, "    let a{i} = d.a_off / 4u + min(r0 + {}u, m - 1u) * k4;", lanes * i);
    }
    for j in 0..c {
        emit!(s, "    let b{j} = d.b_off / 4u + min(c0 + {}u + lane, n - 1u) * k4;", lanes * j);
        emit!(s, "    let bias{j} = param_at(d.bias_off + min(c0 + {}u + lane, n - 1u));", lanes * j);
    }
    for i in 0..r {
        for j in 0..c {
            for t in 0..lanes {
                emit!(s, "    var acc{i}_{j}_{t} = subgroupBroadcast(bias{j}, {t}u);");
            }
        }
    }
    emit!(s, "    for (var p = 0u; p < k4; p++) {{");
    for i in 0..r {
        emit!(s, "        let x{i} = acts[a{i} + p];");
    }
    for j in 0..c {
        emit!(s, "        let w{j} = params[b{j} + p];");
        for t in 0..lanes {
            emit!(s, "        let w{j}_{t} = subgroupBroadcast(w{j}, {t}u);");
            for i in 0..r {
                emit!(s, "        acc{i}_{j}_{t} = dot_acc(x{i}, w{j}_{t}, acc{i}_{j}_{t});");
            }
        }
    }
    emit!(s, "    }}");
    // vec4 stores when every row starts vec4-aligned, else one element at a time
    emit!(s, "    let aligned = (n & 3u) == 0u;");
    for i in 0..r {
        emit!(s, "    if (r0 + {}u < m) {{", lanes * i);
        emit!(s, "        let o{i} = d.c_off + (r0 + {}u) * n + c0;", lanes * i);
        emit!(s, "        if (aligned) {{");
        for j in 0..c {
            for h in 0..lanes / 4 {
                let col = lanes * j + 4 * h;
                let v: Vec<String> = (0..4).map(|e| format!("acc{i}_{j}_{}", 4 * h + e)).collect();
                emit!(s, "            if (c0 + {col}u < n) {{ store_forward4((o{i} + {col}u) / 4u, vec4<f32>({})); }}", v.join(", "));
            }
        }
        emit!(s, "        }} else {{");
        for j in 0..c {
            for t in 0..lanes {
                let col = lanes * j + t;
                emit!(s, "            if (c0 + {col}u < n) {{ store_forward(o{i} + {col}u, acc{i}_{j}_{t}); }}");
            }
        }
        emit!(s, "        }}\n    }}");
    }
    emit!(s, "}}");
    Generated { source: s, grid: Grid { tile: (lanes * r, lanes * c), rows_in_x: false, bias_column: false } }
}

/// δ_{l−1} = (δ_l·W) ⊙ f'(Z_{l−1}): δ_l is contiguous along k, W along the output columns, so
/// each k-step of 4 multiplies four broadcast δ values by four vec4 rows of W.
fn backward_data(b: &Blocks) -> Generated {
    let Block { rows: r, cols: q } = b.backward_data;
    let lanes = b.lanes;
    // the lanes cover 4 rows of W × `across` vec4 columns at once
    let across = lanes / 4;
    let mut s = String::new();
    assert!(q % across == 0, "subgroup backward_data needs a multiple of {across} vec4 columns");
    // lane l owns rows r0 + L·i. Per k-step the tile needs W rows 4p..4p+3 at vec4 columns
    // q0..q0+q: 4q vec4s, lane t loading row 4p + t%4 at columns q0 + t/4 + (L/4)·h.
    emit!(s, "@compute @workgroup_size({lanes}, 1, 1)");
    emit!(s, "fn backward_data(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {{");
    emit!(s, "    let m = st.rows;\n    let n4 = d.n / 4u;\n    let k4 = d.k / 4u;");
    emit!(s, "    let r0 = wid.y * {}u + lane;", lanes * r);
    emit!(s, "    let q0 = wid.x * {q}u;");
    for i in 0..r {
        emit!(s, "    let a{i} = d.a_off / 4u + min(r0 + {}u, m - 1u) * k4;", lanes * i);
    }
    emit!(s, "    let kk = lane % 4u;");
    for h in 0..q / across {
        emit!(s, "    let b{h} = d.b_off / 4u + min(q0 + lane / 4u + {}u, n4 - 1u);", across * h);
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
    emit!(s, "        let row = (4u * p + kk) * n4;");
    for h in 0..q / across {
        emit!(s, "        let w{h} = params[row + b{h}];");
    }
    for j in 0..q {
        for e in 0..4 {
            // W[4p + e, column vec4 q0 + j] sits in lane e + 4·(j % (L/4)), slot j / (L/4)
            emit!(s, "        let w{j}_{e} = subgroupBroadcast(w{}, {}u);", j / across, e + 4 * (j % across));
            for i in 0..r {
                emit!(s, "        acc{i}_{j} = fma(vec4<f32>(x{i}.{}), w{j}_{e}, acc{i}_{j});", XYZW[e as usize]);
            }
        }
    }
    emit!(s, "    }}");
    for i in 0..r {
        emit!(s, "    if (r0 + {}u < m) {{", lanes * i);
        for j in 0..q {
            emit!(s, "        if (q0 + {j}u < n4) {{ store_delta4(d.c_off / 4u + (r0 + {}u) * n4 + q0 + {j}u, acc{i}_{j}); }}", lanes * i);
        }
        emit!(s, "    }}");
    }
    emit!(s, "}}");
    Generated { source: s, grid: Grid { tile: (lanes * r, 4 * q), rows_in_x: false, bias_column: false } }
}

/// ∂W = s·δᵀ·A and ∂b = s·Σ_rows δ: both operands are contiguous along the output axes and k
/// runs over the rows, so each row adds outer products of vec4s of δ and A. The threads that
/// hold the first vec4 column of ∂W also write the bias gradient (they see every δ anyway).
fn weight_grad(b: &Blocks) -> Generated {
    let Block { rows: p, cols: t } = b.weight_grad;
    let lanes = b.lanes;
    let mut s = String::new();
    // rows of the batch in chunks of L: lane l loads δ of row r0 + l (zero past the last
    // row) and broadcasts it; lane l owns the vec4 columns q0 + L·j of ∂W. Workgroup x runs
    // over the output rows, so consecutive workgroups reuse the same band of A (the larger
    // operand) from cache: with power-of-two widths that made 1024³ ~1.5× faster.
    emit!(s, "@compute @workgroup_size({lanes}, 1, 1)");
    emit!(s, "fn weight_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {{");
    emit!(s, "    let m4 = d.m / 4u;\n    let n4 = d.n / 4u;\n    let k = st.rows;");
    emit!(s, "    let o0 = wid.x * {p}u;");
    emit!(s, "    let q0 = wid.y * {}u + lane;", lanes * t);
    for u in 0..p {
        emit!(s, "    let g{u} = d.a_off / 4u + min(o0 + {u}u, m4 - 1u);");
        emit!(s, "    var bias{u} = vec4<f32>(0.0);");
    }
    for j in 0..t {
        emit!(s, "    let b{j} = d.b_off / 4u + min(q0 + {}u, n4 - 1u);", lanes * j);
    }
    for u in 0..p {
        for e in 0..4 {
            for j in 0..t {
                emit!(s, "    var acc{u}_{e}_{j} = vec4<f32>(0.0);");
            }
        }
    }
    emit!(s, "    for (var r0 = 0u; r0 < k; r0 += {lanes}u) {{");
    emit!(s, "        let keep = select(0.0, 1.0, r0 + lane < k);");
    emit!(s, "        let drow = min(r0 + lane, k - 1u) * m4;");
    for u in 0..p {
        emit!(s, "        let g{u}v = dlt[g{u} + drow] * keep;");
        // each lane sums the δ rows it loaded; subgroupAdd combines the lanes at the end
        emit!(s, "        bias{u} += g{u}v;");
    }
    for l in 0..lanes {
        emit!(s, "        let arow{l} = min(r0 + {l}u, k - 1u) * n4;");
        for j in 0..t {
            emit!(s, "        let x{l}_{j} = acts[b{j} + arow{l}];");
        }
        for u in 0..p {
            emit!(s, "        let g{u}_{l} = subgroupBroadcast(g{u}v, {l}u);");
            for (e, c) in XYZW.iter().enumerate() {
                for j in 0..t {
                    emit!(s, "        acc{u}_{e}_{j} = fma(vec4<f32>(g{u}_{l}.{c}), x{l}_{j}, acc{u}_{e}_{j});");
                }
            }
        }
    }
    emit!(s, "    }}");
    for u in 0..p {
        emit!(s, "    let bias_sum{u} = subgroupAdd(bias{u});");
    }
    for u in 0..p {
        emit!(s, "    if (o0 + {u}u < m4) {{");
        for e in 0..4 {
            for j in 0..t {
                emit!(s, "        if (q0 + {}u < n4) {{ store_grad4(d.c_off / 4u + (4u * (o0 + {u}u) + {e}u) * n4 + q0 + {}u, acc{u}_{e}_{j}); }}", lanes * j, lanes * j);
            }
        }
        emit!(s, "        if (q0 == 0u) {{ store_grad4(d.bias_off / 4u + o0 + {u}u, bias_sum{u}); }}");
        emit!(s, "    }}");
    }
    emit!(s, "}}");
    Generated { source: s, grid: Grid { tile: (4 * p, 4 * lanes * t), rows_in_x: true, bias_column: false } }
}
