// The counter-based generator of training's randomness, Philox4x32-10: the mirror of
// src/nn/philox.rs (`philox4x32_10`, `bits`), held to it bit for bit by tests/gpu_kernels.rs.
// WGSL has no 64-bit integers, so the 32×32→64-bit products are built from 16-bit halves.

const STREAM_DROPOUT: u32 = 1u;
const STREAM_AUGMENT: u32 = 2u;

// (high, low) words of a·b.
fn mul_hi_lo(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

fn philox4x32_10(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var round = 0u; round < 10u; round++) {
        if (round > 0u) {
            k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
        }
        let p0 = mul_hi_lo(0xD2511F53u, c.x);
        let p1 = mul_hi_lo(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    }
    return c;
}

// The 32 random bits of element `element` of `stream`'s draw (step, slot) under `key`: word
// element mod 4 of the block at counter (element / 4, slot | stream << 24, step_lo, step_hi).
fn random_bits(key: vec2<u32>, stream: u32, step_lo: u32, step_hi: u32, slot: u32, element: u32) -> u32 {
    let block = philox4x32_10(vec4<u32>(element >> 2u, slot | (stream << 24u), step_lo, step_hi), key);
    return block[element & 3u];
}
