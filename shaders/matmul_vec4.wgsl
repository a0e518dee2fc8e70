// Header of the vec4 matmul kernels: the same bindings and dimensions (`MatmulDims`, declared in
// common.wgsl) as matmul.wgsl, with the buffers viewed as vec4<f32>. The entry points (`forward`,
// `backward_data`, `weight_grad`) are appended by src/gpu/matmul_vec4.rs, fully unrolled for the
// register block of the adapter's KernelConfig (WGSL has no way to unroll a loop, and lavapipe
// keeps arrays indexed in loops in memory, which halves the speed).
//
// The host uses these kernels only for layers whose every operand row is vec4-aligned: all
// offsets below are multiples of 4 floats (src/gpu/layout.rs aligns layer_off and param_off),
// and all three kernels need n_in % 4 == 0 and n_out % 4 == 0. For the forward kernel that is
// what makes its single-component stores safe: with rows of a multiple of 4 floats, every vec4
// of Z and A belongs to one thread's output block, so no two invocations write parts of one
// vec4 (WGSL promises nothing about neighbours writing components of the same vector).
// Other layers use the scalar kernels of matmul.wgsl, whose buffers are arrays of f32. Loads are clamped to the last valid
// row/column and stores are masked, so any number of rows and columns works.

@group(0) @binding(0) var<uniform> d: MatmulDims;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read_write> acts: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> pre: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> dlt: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> params: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> grads: array<vec4<f32>>;

// acc + a·b as four chained fma (one rounding per product, like the scalar kernels).
fn dot_acc(a: vec4<f32>, b: vec4<f32>, acc: f32) -> f32 {
    return fma(a.w, b.w, fma(a.z, b.z, fma(a.y, b.y, fma(a.x, b.x, acc))));
}

// Float i of `params` (i counts floats, not vec4s).
fn param_at(i: u32) -> f32 {
    return params[i >> 2u][i & 3u];
}

// Z and A = f(Z) of one output element (float index o); softmax is left to the loss kernel.
fn store_forward(o: u32, z: f32) {
    pre[o >> 2u][o & 3u] = z;
    if (d.act != ACT_SOFTMAX) {
        acts[o >> 2u][o & 3u] = activate(d.act, z);
    }
}

// The same for four consecutive elements starting at vec4 index o4.
fn store_forward4(o4: u32, z: vec4<f32>) {
    pre[o4] = z;
    if (d.act != ACT_SOFTMAX) {
        acts[o4] = vec4<f32>(activate(d.act, z.x), activate(d.act, z.y), activate(d.act, z.z), activate(d.act, z.w));
    }
}

// δ_{l−1} = (δ_l·W) ⊙ f'(Z_{l−1}) for four elements at vec4 index o4 of the layer below.
fn store_delta4(o4: u32, s: vec4<f32>) {
    let z = pre[o4];
    let a = acts[o4];
    dlt[o4] = s * vec4<f32>(
        activation_derivative(d.act, z.x, a.x), activation_derivative(d.act, z.y, a.y),
        activation_derivative(d.act, z.z, a.z), activation_derivative(d.act, z.w, a.w));
}

// Scaled gradient of four parameters at vec4 index o4, added to the earlier micro-batches'
// when the step accumulates.
fn store_grad4(o4: u32, v: vec4<f32>) {
    var g = st.scale * v;
    if (st.accumulate == 1u) {
        g += grads[o4];
    }
    grads[o4] = g;
}
