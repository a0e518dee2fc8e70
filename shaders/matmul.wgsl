// The three matrix products of training, each thread computing a 4×4 block of the output
// (register blocking: on lavapipe this, not shared memory, is what pays), for any sizes: loads
// are clamped to the last valid row/column and stores are masked.
//
//   forward        Z_l = A_{l−1}·W_lᵀ + b_l, A_l = f(Z_l)        [rows, out], k over in
//   backward_data  δ_{l−1} = (δ_l·W_l) ⊙ f'(Z_{l−1})             [rows, in],  k over out
//   weight_grad    ∂W_l = s·δ_lᵀ·A_{l−1},  ∂b_l = s·Σ_rows δ_l    [out, in+1], k over rows
//
// W is [out, in] row-major in `params`; activations are [rows, width] row-major per layer.
// `MatmulDims` (the dims binding) is declared in common.wgsl.

@group(0) @binding(0) var<uniform> d: MatmulDims;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read_write> acts: array<f32>;
@group(0) @binding(3) var<storage, read_write> pre: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlt: array<f32>;
@group(0) @binding(5) var<storage, read> params: array<f32>;
@group(0) @binding(6) var<storage, read_write> grads: array<f32>;

// Z = A·Wᵀ + b: both operands are contiguous along k.
@compute @workgroup_size(8, 8, 1)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = st.rows;
    let n = d.n;
    let k = d.k;
    let r0 = gid.y * 4u;
    let c0 = gid.x * 4u;
    if (r0 >= m || c0 >= n) {
        return;
    }
    let a0 = d.a_off + min(r0, m - 1u) * k;
    let a1 = d.a_off + min(r0 + 1u, m - 1u) * k;
    let a2 = d.a_off + min(r0 + 2u, m - 1u) * k;
    let a3 = d.a_off + min(r0 + 3u, m - 1u) * k;
    let b0 = d.b_off + min(c0, n - 1u) * k;
    let b1 = d.b_off + min(c0 + 1u, n - 1u) * k;
    let b2 = d.b_off + min(c0 + 2u, n - 1u) * k;
    let b3 = d.b_off + min(c0 + 3u, n - 1u) * k;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var p = 0u; p < k; p++) {
        let b = vec4<f32>(params[b0 + p], params[b1 + p], params[b2 + p], params[b3 + p]);
        acc0 = fma(vec4<f32>(acts[a0 + p]), b, acc0);
        acc1 = fma(vec4<f32>(acts[a1 + p]), b, acc1);
        acc2 = fma(vec4<f32>(acts[a2 + p]), b, acc2);
        acc3 = fma(vec4<f32>(acts[a3 + p]), b, acc3);
    }
    var acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let r = r0 + i;
        if (r < m) {
            for (var j = 0u; j < 4u; j++) {
                let c = c0 + j;
                if (c < n) {
                    let z = acc[i][j] + params[d.bias_off + c];
                    let o = d.c_off + r * n + c;
                    pre[o] = z;
                    if (d.act != ACT_SOFTMAX) {
                        acts[o] = activate(d.act, z);
                    }
                }
            }
        }
    }
}

// δ_{l−1} = (δ_l·W) ⊙ f'(Z_{l−1}): δ_l is contiguous along k, W along the output columns.
@compute @workgroup_size(8, 8, 1)
fn backward_data(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = st.rows;
    let n = d.n;
    let k = d.k;
    let r0 = gid.y * 4u;
    let c0 = gid.x * 4u;
    if (r0 >= m || c0 >= n) {
        return;
    }
    let a0 = d.a_off + min(r0, m - 1u) * k;
    let a1 = d.a_off + min(r0 + 1u, m - 1u) * k;
    let a2 = d.a_off + min(r0 + 2u, m - 1u) * k;
    let a3 = d.a_off + min(r0 + 3u, m - 1u) * k;
    let c1 = min(c0 + 1u, n - 1u);
    let c2 = min(c0 + 2u, n - 1u);
    let c3 = min(c0 + 3u, n - 1u);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var p = 0u; p < k; p++) {
        let row = d.b_off + p * n;
        let b = vec4<f32>(params[row + c0], params[row + c1], params[row + c2], params[row + c3]);
        acc0 = fma(vec4<f32>(dlt[a0 + p]), b, acc0);
        acc1 = fma(vec4<f32>(dlt[a1 + p]), b, acc1);
        acc2 = fma(vec4<f32>(dlt[a2 + p]), b, acc2);
        acc3 = fma(vec4<f32>(dlt[a3 + p]), b, acc3);
    }
    var acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let r = r0 + i;
        if (r < m) {
            for (var j = 0u; j < 4u; j++) {
                let c = c0 + j;
                if (c < n) {
                    let o = d.c_off + r * n + c;
                    dlt[o] = acc[i][j] * activation_derivative(d.act, pre[o], acts[o]);
                }
            }
        }
    }
}

// ∂W = s·δᵀ·A over the step's rows, with the bias gradient as an extra column n (A ≡ 1).
// With st.accumulate the micro-batches of one large step add up.
@compute @workgroup_size(8, 8, 1)
fn weight_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = d.m;
    let n = d.n;
    let k = st.rows;
    let r0 = gid.y * 4u;
    let c0 = gid.x * 4u;
    if (r0 >= m || c0 > n) {
        return;
    }
    let r1 = min(r0 + 1u, m - 1u);
    let r2 = min(r0 + 2u, m - 1u);
    let r3 = min(r0 + 3u, m - 1u);
    let col0 = min(c0, n - 1u);
    let col1 = min(c0 + 1u, n - 1u);
    let col2 = min(c0 + 2u, n - 1u);
    let col3 = min(c0 + 3u, n - 1u);
    // which of the four columns is the bias column (value 1)
    let ones = vec4<f32>(
        select(0.0, 1.0, c0 == n), select(0.0, 1.0, c0 + 1u == n),
        select(0.0, 1.0, c0 + 2u == n), select(0.0, 1.0, c0 + 3u == n));
    let keep = vec4<f32>(1.0) - ones;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var p = 0u; p < k; p++) {
        let arow = d.a_off + p * m;
        let brow = d.b_off + p * n;
        let b = vec4<f32>(acts[brow + col0], acts[brow + col1], acts[brow + col2], acts[brow + col3]) * keep + ones;
        acc0 = fma(vec4<f32>(dlt[arow + r0]), b, acc0);
        acc1 = fma(vec4<f32>(dlt[arow + r1]), b, acc1);
        acc2 = fma(vec4<f32>(dlt[arow + r2]), b, acc2);
        acc3 = fma(vec4<f32>(dlt[arow + r3]), b, acc3);
    }
    var acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let r = r0 + i;
        if (r < m) {
            for (var j = 0u; j < 4u; j++) {
                let c = c0 + j;
                if (c <= n) {
                    var o = d.c_off + r * n + c;
                    if (c == n) {
                        o = d.bias_off + r;
                    }
                    let v = st.scale * acc[i][j];
                    if (st.accumulate == 1u) {
                        grads[o] = grads[o] + v;
                    } else {
                        grads[o] = v;
                    }
                }
            }
        }
    }
}
