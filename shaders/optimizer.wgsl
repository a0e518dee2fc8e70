// Every parameter of the model in one dispatch: the gradient (with L2 weight decay folded in)
// and the update rule of optim.rs. One thread per four parameters: the host keeps `count` a
// multiple of 4 (tensors sit at 4-aligned offsets, the gaps between them are zero and stay
// zero), and vec4 loads are what pays on lavapipe, where every load is a loop over the lanes.

struct OptimDims {
    count: u32,     // parameters, a multiple of 4 (with the zero alignment gaps)
    kind: u32,      // 0 sgd, 1 momentum, 2 nesterov, 3 adam
    momentum: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    weight_decay: f32,
    one_minus_beta1: f32, // 1 − β1 and 1 − β2 from f64: 1 − f32(0.999) is off by 1.3e-5
    one_minus_beta2: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> d: OptimDims;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read_write> params: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> grads: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> state: array<vec4<f32>>; // m (or v for momentum) then Adam's v

@compute @workgroup_size(256, 1, 1)
fn update(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 256u;
    let count4 = d.count / 4u;
    if (i >= count4) {
        return;
    }
    let w = params[i];
    let g = grads[i] + d.weight_decay * w;
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
        default: { // SGD
            params[i] = w - st.lr * g;
        }
    }
}
