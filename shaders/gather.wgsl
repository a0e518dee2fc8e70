// Builds a batch X [rows, len] on the device from a resident (or streamed) dataset: pixels are
// bytes packed four to a u32 (WGSL has no u8) and scaled by 1/255 here, or plain f32; then
// x = (p − mean) / std, the model's input normalisation (exact for mean 0, std 1).
// One thread per packed word of one sample. Also copies the batch's labels.

struct GatherDims {
    len: u32,          // values per sample
    words: u32,        // u32 words per sample in `images` (ceil(len/4) for bytes, len for f32)
    is_bytes: u32,     // 1: packed u8; 0: f32 bit patterns
    x_off: u32,        // where X starts in `acts`
    mean: f32,
    sd: f32,           // `std` is a reserved word in WGSL
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> d: GatherDims;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read> images: array<u32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read> index: array<u32>;
@group(0) @binding(5) var<storage, read_write> acts: array<f32>;
@group(0) @binding(6) var<storage, read_write> batch_labels: array<u32>;

@compute @workgroup_size(64, 1, 1)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>) {
    let w = gid.x;
    let r = gid.y + gid.z * 65535u;
    if (r >= st.rows || w >= d.words) {
        return;
    }
    var sample = st.idx_offset + r;
    if (st.use_index == 1u) {
        sample = index[st.idx_offset + r];
    }
    if (w == 0u) {
        batch_labels[r] = labels[sample];
    }
    let word = images[sample * d.words + w];
    let dst = d.x_off + r * d.len;
    if (d.is_bytes == 1u) {
        for (var b = 0u; b < 4u; b++) {
            let j = w * 4u + b;
            if (j < d.len) {
                acts[dst + j] = (f32((word >> (8u * b)) & 0xffu) * (1.0 / 255.0) - d.mean) / d.sd;
            }
        }
    } else {
        acts[dst + w] = (bitcast<f32>(word) - d.mean) / d.sd;
    }
}
