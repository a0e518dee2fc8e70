// Every parameter of the model in one dispatch: the gradient (clipped by the global norm, with
// L2 weight decay folded in) and the update rule of optim.rs (src/nn/optim.rs: apply_slices,
// adam_step, adamw_step). One thread per four parameters: the host keeps `count` a multiple of 4
// (tensors sit at 4-aligned offsets, the gaps between them are zero and stay zero), and vec4
// loads are what pays on lavapipe, where every load is a loop over the lanes.
//
// Around it, when configured: `clip_partials` and `clip_finish` before it (the global norm of
// the gradients and the scale, as optim::sum_of_squares and optim::clip_scale), `max_norm` after
// it (optim::max_norm_rows). The reduction is deterministic: each thread sums a fixed set of
// vec4s in order, each workgroup reduces its threads in a fixed tree, and one workgroup sums the
// partial sums the same way, so the result never depends on timing.

struct OptimDims {
    count: u32,     // parameters, a multiple of 4 (with the zero alignment gaps)
    kind: u32,      // 0 sgd, 1 momentum, 2 nesterov, 3 adam, 4 adamw
    momentum: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    weight_decay: f32,
    one_minus_beta1: f32, // 1 − β1 and 1 − β2 from f64: 1 − f32(0.999) is off by 1.3e-5
    one_minus_beta2: f32,
    clip_norm: f32, // C of clipping by global norm; 0 = off
    max_norm: f32,  // c of the max-norm constraint; 0 = off
}

@group(0) @binding(0) var<uniform> d: OptimDims;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read_write> params: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> grads: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> state: array<vec4<f32>>; // m (or v for momentum) then Adam's v
// [0] the clip scale, [1] the global norm, [4 + w] workgroup w's partial sum of g²
@group(0) @binding(5) var<storage, read_write> clip: array<f32>;
// per weight layer: (weight offset, inputs, first row, rows), rows numbered across layers
@group(0) @binding(6) var<storage, read> weight_rows: array<u32>;

const CLIP_WG: u32 = 256u;
const CLIP_PARTS_MAX: u32 = 1024u; // kernels::CLIP_PARTS_MAX

@compute @workgroup_size(256, 1, 1)
fn update(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 256u;
    let count4 = d.count / 4u;
    if (i >= count4) {
        return;
    }
    let w = params[i];
    var raw = grads[i];
    if (d.clip_norm > 0.0) {
        // stored back, as clip_grad_norm_ leaves .grad (and as the CPU does)
        raw = raw * clip[0];
        grads[i] = raw;
    }
    let g = raw + d.weight_decay * w;
    switch d.kind {
        case 1u: { // momentum: v ← μv + g; w ← w − ηv
            let v = d.momentum * state[i] + g;
            state[i] = v;
            params[i] = w - st.lr * v;
        }
        case 2u: { // Nesterov: v ← μv + g; w ← w − η(g + μv)
            let v = d.momentum * state[i] + g;
            state[i] = v;
            params[i] = w - st.lr * (g + d.momentum * v);
        }
        case 3u: { // Adam: bias-corrected moments, ε outside the square root
            let m = d.beta1 * state[i] + d.one_minus_beta1 * g;
            let v = d.beta2 * state[count4 + i] + d.one_minus_beta2 * (g * g);
            state[i] = m;
            state[count4 + i] = v;
            params[i] = w - st.lr * (m / st.c1) / (sqrt(v / st.c2) + d.epsilon);
        }
        case 4u: { // AdamW: w ← w·(1 − ηλ), then Adam with the raw gradient
            let decayed = w * (1.0 - st.lr * d.weight_decay);
            let m = d.beta1 * state[i] + d.one_minus_beta1 * raw;
            let v = d.beta2 * state[count4 + i] + d.one_minus_beta2 * (raw * raw);
            state[i] = m;
            state[count4 + i] = v;
            params[i] = decayed - st.lr * (m / st.c1) / (sqrt(v / st.c2) + d.epsilon);
        }
        default: { // SGD
            params[i] = w - st.lr * g;
        }
    }
}

// Workgroups of clip_partials: one per 256 vec4s, at most CLIP_PARTS_MAX (kernels::clip_parts).
fn clip_parts(count4: u32) -> u32 {
    return clamp((count4 + CLIP_WG - 1u) / CLIP_WG, 1u, CLIP_PARTS_MAX);
}

var<workgroup> sums: array<f32, 256>;

// Sums `sums` over the workgroup in a fixed tree; the total ends in sums[0].
fn reduce_sums(lid: u32) {
    for (var k = CLIP_WG / 2u; k > 0u; k = k / 2u) {
        if (lid < k) {
            sums[lid] = sums[lid] + sums[lid + k];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256, 1, 1)
fn clip_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let count4 = d.count / 4u;
    let stride = clip_parts(count4) * CLIP_WG;
    var s = 0.0;
    for (var i = wid.x * CLIP_WG + lid; i < count4; i += stride) {
        let g = grads[i];
        s += g.x * g.x + g.y * g.y + g.z * g.z + g.w * g.w;
    }
    sums[lid] = s;
    workgroupBarrier();
    reduce_sums(lid);
    if (lid == 0u) {
        clip[4u + wid.x] = sums[0];
    }
}

@compute @workgroup_size(256, 1, 1)
fn clip_finish(@builtin(local_invocation_index) lid: u32) {
    let parts = clip_parts(d.count / 4u);
    var s = 0.0;
    for (var i = lid; i < parts; i += CLIP_WG) {
        s += clip[4u + i];
    }
    sums[lid] = s;
    workgroupBarrier();
    reduce_sums(lid);
    if (lid == 0u) {
        let norm = sqrt(sums[0]);
        clip[1] = norm;
        clip[0] = min(1.0, d.clip_norm / (norm + 1e-6));
    }
}

// One thread per weight row (a unit's incoming weights): its norm summed in order, then scaled
// back to d.max_norm where longer, as optim::max_norm_rows.
@compute @workgroup_size(64, 1, 1)
fn max_norm(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x + gid.y * 65535u * 64u;
    let layers = arrayLength(&weight_rows) / 4u;
    for (var l = 0u; l < layers; l++) {
        let first = weight_rows[4u * l + 2u];
        let rows = weight_rows[4u * l + 3u];
        if (r >= first && r < first + rows) {
            let n_in = weight_rows[4u * l + 1u];
            let base = weight_rows[4u * l] + (r - first) * n_in;
            var s = 0.0;
            for (var j = 0u; j < n_in; j++) {
                let x = params[(base + j) / 4u][(base + j) % 4u];
                s += x * x;
            }
            let norm = sqrt(s);
            if (norm > d.max_norm) {
                let f = d.max_norm / norm;
                for (var j = 0u; j < n_in; j++) {
                    let q = (base + j) / 4u;
                    let c = (base + j) % 4u;
                    params[q][c] = params[q][c] * f;
                }
            }
            return;
        }
    }
}
