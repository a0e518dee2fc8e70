// Output layer, one thread per sample: softmax (max subtracted), the per-sample loss from the
// logits (log-sum-exp, softplus), the predicted class, and in training the output delta
// δ_L = ∂L/∂z_L. Same formulas as math::sample_loss and math::output_delta (src/nn/math.rs),
// label smoothing included (math::target).

const LOSS_HALF_SSE: u32 = 0u;
const LOSS_SSE: u32 = 1u;
const LOSS_CE: u32 = 2u;
const LOSS_BCE: u32 = 3u;

struct LossDims {
    n: u32,       // outputs
    off: u32,     // where the output layer starts in pre/acts/dlt
    act: u32,     // output activation
    loss: u32,
    smoothing: f32, // label smoothing ε (cross-entropy only; 0 = one-hot targets)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Storage, not uniform: lavapipe would otherwise recompile this kernel at every dispatch with
// the loss and activation inlined (see ParamBlocks::Storage in kernels.rs).
@group(0) @binding(0) var<storage, read> d: LossDims;
@group(0) @binding(1) var<storage, read> st: Step;
@group(0) @binding(2) var<storage, read_write> pre: array<f32>;
@group(0) @binding(3) var<storage, read_write> acts: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlt: array<f32>;
@group(0) @binding(5) var<storage, read> batch_labels: array<u32>;
@group(0) @binding(6) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(7) var<storage, read_write> row_pred: array<u32>;

// math::target: (1−ε)·[k = y] + ε/K, exactly one-hot at ε = 0.
fn target_value(label: u32, k: u32) -> f32 {
    if (d.n == 1u) {
        return f32(label);
    }
    let hot = select(0.0, 1.0, k == label);
    if (d.smoothing == 0.0) {
        return hot;
    }
    return (1.0 - d.smoothing) * hot + d.smoothing / f32(d.n);
}

fn softplus(z: f32) -> f32 {
    return max(z, 0.0) + log(1.0 + exp(-abs(z)));
}

@compute @workgroup_size(64, 1, 1)
fn output_layer(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x + gid.y * 65535u * 64u;
    if (r >= st.rows) {
        return;
    }
    let base = d.off + r * d.n;
    let label = batch_labels[r];
    var loss = 0.0;
    if (d.act == ACT_SOFTMAX) {
        var m = pre[base];
        for (var k = 1u; k < d.n; k++) {
            m = max(m, pre[base + k]);
        }
        var s = 0.0;
        for (var k = 0u; k < d.n; k++) {
            s += exp(pre[base + k] - m);
        }
        let lse = m + log(s);
        for (var k = 0u; k < d.n; k++) {
            acts[base + k] = exp(pre[base + k] - lse);
            loss -= target_value(label, k) * (pre[base + k] - lse);
        }
    } else {
        for (var k = 0u; k < d.n; k++) {
            let t = target_value(label, k);
            let a = acts[base + k];
            switch d.loss {
                case 0u: { loss += 0.5 * (t - a) * (t - a); }
                case 1u: { loss += (t - a) * (t - a); }
                default: { loss += softplus(pre[base + k]) - t * pre[base + k]; }
            }
        }
    }
    // prediction: threshold 0.5 for one output, else the first argmax
    var pred = 0u;
    if (d.n == 1u) {
        pred = select(0u, 1u, acts[base] >= 0.5);
    } else {
        for (var k = 1u; k < d.n; k++) {
            if (acts[base + k] > acts[base + pred]) {
                pred = k;
            }
        }
    }
    row_loss[st.stat_offset + r] = loss;
    row_pred[st.stat_offset + r] = pred;
    if (st.train == 1u) {
        for (var k = 0u; k < d.n; k++) {
            let t = target_value(label, k);
            let a = acts[base + k];
            var delta = a - t; // cross-entropy with softmax, binary cross-entropy with sigmoid
            if (d.loss == LOSS_HALF_SSE) {
                delta = (a - t) * activation_derivative(d.act, pre[base + k], a);
            } else if (d.loss == LOSS_SSE) {
                delta = 2.0 * (a - t) * activation_derivative(d.act, pre[base + k], a);
            }
            dlt[base + k] = delta;
        }
    }
}
