// Shared by every kernel (prepended by the crate): activation codes and formulas, the same
// equations as src/nn/math.rs, the per-step uniform and the matmul dimensions.

const ACT_IDENTITY: u32 = 0u;
const ACT_SIGMOID: u32 = 1u;
const ACT_TANH: u32 = 2u;
const ACT_RELU: u32 = 3u;
const ACT_LEAKY_RELU: u32 = 4u;
const ACT_SOFTMAX: u32 = 5u;
const LEAKY_SLOPE: f32 = 0.01;

// One micro-batch of a training step (or of an evaluation), written by the host per chunk and
// selected per dispatch with a dynamic offset, so many steps encode into one submission.
struct Step {
    idx_offset: u32,   // first entry of the index list (or first sample, if use_index == 0)
    rows: u32,         // samples in this micro-batch
    stat_offset: u32,  // where this micro-batch's per-sample loss and prediction go
    accumulate: u32,   // 1: add to the gradients of earlier micro-batches of the same step
    scale: f32,        // batch reduction: 1/B for mean, 1 for sum (B = the whole step's batch)
    lr: f32,
    c1: f32,           // Adam bias corrections 1 − β1^t and 1 − β2^t (computed in f64 on the host)
    c2: f32,
    use_index: u32,    // 1: sample = index[idx_offset + r]; 0: sample = idx_offset + r
    train: u32,        // 1: compute the output delta as well
    row_base: u32,     // place of this micro-batch's first row in its step's batch (dropout's masks)
    t: u32,            // the optimiser step, 1-based (low word; dropout's masks)
}

// The static dimensions of one matrix product, for the scalar (matmul.wgsl) and the vec4
// (matmul_vec4.wgsl) kernels alike; mirrored by `MatmulDims` in src/gpu/kernels.rs.
struct MatmulDims {
    m: u32,        // output rows (forward/backward_data: ignored, the step's rows are used)
    n: u32,        // output columns (weight_grad: without the bias column)
    k: u32,        // inner dimension (weight_grad: ignored, the step's rows are used)
    a_off: u32,    // first operand
    b_off: u32,    // second operand
    c_off: u32,    // output
    bias_off: u32, // forward: the bias; weight_grad: where the bias gradient goes
    act: u32,      // forward: activation of this layer; backward_data: of the layer below
}

// σ(z) without overflow for large |z|.
fn sigmoid(z: f32) -> f32 {
    if (z >= 0.0) {
        return 1.0 / (1.0 + exp(-z));
    }
    let e = exp(z);
    return e / (1.0 + e);
}

// tanh through e^(−2|z|) so large |z| gives ±1, not inf/inf.
fn tanh_stable(z: f32) -> f32 {
    let e = exp(-2.0 * abs(z));
    return sign(z) * (1.0 - e) / (1.0 + e);
}

fn activate(act: u32, z: f32) -> f32 {
    switch act {
        case 1u: { return sigmoid(z); }
        case 2u: { return tanh_stable(z); }
        case 3u: { return select(0.0, z, z > 0.0); }
        case 4u: { return select(LEAKY_SLOPE * z, z, z >= 0.0); }
        default: { return z; }
    }
}

// f'(z) from z and a = f(z); ReLU'(0) = 0 as on the CPU.
fn activation_derivative(act: u32, z: f32, a: f32) -> f32 {
    switch act {
        case 1u: { return a * (1.0 - a); }
        case 2u: { return 1.0 - a * a; }
        case 3u: { return select(0.0, 1.0, z > 0.0); }
        case 4u: { return select(LEAKY_SLOPE, 1.0, z >= 0.0); }
        default: { return 1.0; }
    }
}
