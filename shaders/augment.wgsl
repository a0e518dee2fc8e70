// Data augmentation of a micro-batch's pictures, one thread per pixel: the mirror of
// nn::augment::Augment (src/nn/augment.rs: `affine`, `displacements`, `apply`), with the
// random numbers of random.wgsl. Three passes over the gathered inputs X (acts at `off`):
//   augment_prepare  copies X to `src` and, with elastic deformation, draws the raw field U
//   augment_rows     smooths U along each row (Gaussian taps −r..=r, zeros outside)
//   augment_warp     smooths along each column, scales by α, adds the sample's affine map and
//                    samples `src` bilinearly into X (the background outside the picture)

struct AugmentDims {
    h: u32,
    w: u32,
    off: u32,         // where X starts in acts
    radius: u32,      // the Gaussian's half width r (taps: 2r + 1)
    shift: f32,       // largest shift, pixels
    rotate: f32,      // largest angle, radians
    scale: f32,       // largest relative change of size
    alpha: f32,       // elastic α
    background: f32,  // the input of a 0 pixel: (0 − mean) / std
    elastic: u32,     // 1: elastic deformation on
    key0: u32,
    key1: u32,
}

const SLOT_AFFINE: u32 = 0u;
const SLOT_FIELD_X: u32 = 1u;
const SLOT_FIELD_Y: u32 = 2u;

@group(0) @binding(0) var<uniform> d: AugmentDims;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read_write> acts: array<f32>;
@group(0) @binding(3) var<storage, read_write> src: array<f32>;
@group(0) @binding(4) var<storage, read_write> field: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> smoothed: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read> taps: array<f32>;

// 2·unit − 1 from the top 24 bits: exact in f32, as philox::unit on the CPU.
fn signed_unit(bits: u32) -> f32 {
    return 2.0 * (f32(bits >> 8u) * (1.0 / 16777216.0)) - 1.0;
}

// (sin θ, cos θ) for |θ| ≤ π to f32 precision: the built-ins may be far coarser (Vulkan allows
// an absolute error of 2⁻¹¹, which SwiftShader shows), so Taylor polynomials to x¹¹ and x¹²
// (error below 6e-8) after folding θ into [−π/2, π/2].
fn sin_cos(theta: f32) -> vec2<f32> {
    let pi = 3.14159265358979;
    var x = theta;
    var c_sign = 1.0;
    if (x > 0.5 * pi) {
        x = pi - x;
        c_sign = -1.0;
    } else if (x < -0.5 * pi) {
        x = -pi - x;
        c_sign = -1.0;
    }
    let x2 = x * x;
    let s = x * (1.0 + x2 * (-1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 * (1.0 / 362880.0 + x2 * (-1.0 / 39916800.0))))));
    let c = 1.0 + x2 * (-0.5 + x2 * (1.0 / 24.0 + x2 * (-1.0 / 720.0 + x2 * (1.0 / 40320.0 + x2 * (-1.0 / 3628800.0 + x2 * (1.0 / 479001600.0))))));
    return vec2<f32>(s, c_sign * c);
}

fn thread_index(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * 65535u * 256u;
}

@compute @workgroup_size(256, 1, 1)
fn augment_prepare(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = thread_index(gid);
    let n = d.h * d.w;
    if (j >= st.rows * n) {
        return;
    }
    src[j] = acts[d.off + j];
    if (d.elastic == 1u) {
        let e = st.row_base * n + j; // (batch row)·n + pixel
        let key = vec2<u32>(d.key0, d.key1);
        field[j] = vec2<f32>(
            signed_unit(random_bits(key, STREAM_AUGMENT, st.t, 0u, SLOT_FIELD_X, e)),
            signed_unit(random_bits(key, STREAM_AUGMENT, st.t, 0u, SLOT_FIELD_Y, e)));
    }
}

@compute @workgroup_size(256, 1, 1)
fn augment_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = thread_index(gid);
    let n = d.h * d.w;
    if (j >= st.rows * n) {
        return;
    }
    let p = j % n;
    let row0 = j - p; // first pixel of this picture
    let y = p / d.w;
    let x = p % d.w;
    var acc = vec2<f32>(0.0, 0.0);
    for (var k = 0u; k <= 2u * d.radius; k++) {
        let xx = i32(x) + i32(k) - i32(d.radius);
        if (xx >= 0 && xx < i32(d.w)) {
            acc = acc + taps[k] * field[row0 + y * d.w + u32(xx)];
        }
    }
    smoothed[j] = acc;
}

// `src`'s picture starting at `row0` at integer point (x, y), the background outside.
fn pixel(row0: u32, x: i32, y: i32) -> f32 {
    if (x < 0 || y < 0 || x >= i32(d.w) || y >= i32(d.h)) {
        return d.background;
    }
    return src[row0 + u32(y) * d.w + u32(x)];
}

@compute @workgroup_size(256, 1, 1)
fn augment_warp(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = thread_index(gid);
    let n = d.h * d.w;
    if (j >= st.rows * n) {
        return;
    }
    let p = j % n;
    let row0 = j - p;
    let y = p / d.w;
    let x = p % d.w;
    var e = vec2<f32>(0.0, 0.0);
    if (d.elastic == 1u) {
        var acc = vec2<f32>(0.0, 0.0);
        for (var k = 0u; k <= 2u * d.radius; k++) {
            let yy = i32(y) + i32(k) - i32(d.radius);
            if (yy >= 0 && yy < i32(d.h)) {
                acc = acc + taps[k] * smoothed[row0 + u32(yy) * d.w + x];
            }
        }
        e = d.alpha * acc;
    }
    // the sample's shift, angle and scale: one Philox block at (batch row, slot 0)
    let r = st.row_base + j / n;
    let b = philox4x32_10(vec4<u32>(r, SLOT_AFFINE | (STREAM_AUGMENT << 24u), st.t, 0u), vec2<u32>(d.key0, d.key1));
    let tx = d.shift * signed_unit(b.x);
    let ty = d.shift * signed_unit(b.y);
    let theta = d.rotate * signed_unit(b.z);
    let s = 1.0 + d.scale * signed_unit(b.w);
    let sc = sin_cos(theta);
    let c = sc.y;
    let sn = sc.x;
    let cx = f32(d.w - 1u) * 0.5;
    let cy = f32(d.h - 1u) * 0.5;
    let ux = f32(x) - cx - tx;
    let uy = f32(y) - cy - ty;
    let qx = cx + (c * ux + sn * uy) / s + e.x;
    let qy = cy + (c * uy - sn * ux) / s + e.y;
    var out = d.background;
    let fx = floor(qx);
    let fy = floor(qy);
    if (abs(fx) < 1e6 && abs(fy) < 1e6) {
        let dx = qx - fx;
        let dy = qy - fy;
        let x0 = i32(fx);
        let y0 = i32(fy);
        let top = (1.0 - dx) * pixel(row0, x0, y0) + dx * pixel(row0, x0 + 1, y0);
        let bottom = (1.0 - dx) * pixel(row0, x0, y0 + 1) + dx * pixel(row0, x0 + 1, y0 + 1);
        out = (1.0 - dy) * top + dy * bottom;
    }
    acts[d.off + j] = out;
}
