// Dropout on one layer of a micro-batch, one thread per element: the mirror of
// nn::dropout::Dropout::mask (src/nn/dropout.rs) and of elementwise::times_mask and
// times_derivative_masked (src/cpu/elementwise.rs). Element e = (batch row)·n + unit is kept
// when its Philox bits (random.wgsl) are at least `threshold`, and then scaled by 1/(1 − p).
// Forward: A ← A ⊙ m after the layer's product. Backward: δ ← δ ⊙ f'(Z) ⊙ m after the product
// above it, which leaves the derivative to this kernel (its dims say identity), since A holds
// the masked values: f' is taken on f(Z), recomputed.

struct DropoutDims {
    n: u32,          // units of the layer
    off: u32,        // where the layer starts in acts, pre and dlt
    layer: u32,      // the draw's slot: the layer's index (0 = the network's input)
    threshold: u32,  // dropped when the bits are below: ⌊p·2³²⌋
    scale: f32,      // 1/(1 − p)
    act: u32,        // the layer's activation
    key0: u32,       // the generator's key: the seed's low and high words
    key1: u32,
}

@group(0) @binding(0) var<uniform> d: DropoutDims;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read_write> acts: array<f32>;
@group(0) @binding(3) var<storage, read> pre: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlt: array<f32>;

// 1/(1 − p) or 0 for element i of this micro-batch (row_base places it in the whole batch).
fn mask(i: u32) -> f32 {
    let e = st.row_base * d.n + i;
    let bits = random_bits(vec2<u32>(d.key0, d.key1), STREAM_DROPOUT, st.t, 0u, d.layer, e);
    return select(d.scale, 0.0, bits < d.threshold);
}

@compute @workgroup_size(256, 1, 1)
fn dropout_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 256u;
    if (i >= st.rows * d.n) {
        return;
    }
    acts[d.off + i] = acts[d.off + i] * mask(i);
}

@compute @workgroup_size(256, 1, 1)
fn dropout_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 256u;
    if (i >= st.rows * d.n) {
        return;
    }
    let z = pre[d.off + i];
    dlt[d.off + i] = dlt[d.off + i] * activation_derivative(d.act, z, activate(d.act, z)) * mask(i);
}
