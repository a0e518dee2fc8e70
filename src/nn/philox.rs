//! The counter-based random numbers of training (dropout masks, augmentation): Philox4x32-10
//! (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011), the generator of
//! cuRAND and JAX. A number is a pure function of a key (the run's seed) and a counter (what it
//! is for and where: the stream, the step, the layer, the element), so the CPU and the GPU draw
//! the same bits in any order, on any thread, and a resumed run needs no generator state.
//! `shaders/random.wgsl` is the same function in WGSL; tests hold the two together bit for bit.

/// Philox's round multipliers and Weyl key increments (the paper's constants).
const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Which use a number is drawn for: part of the counter, so two uses never share a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Dropout = 1,
    Augment = 2,
}

/// (high, low) words of the 64-bit product a·b.
#[inline(always)]
fn mul_hi_lo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// Philox4x32 with 10 rounds: four 32-bit words from a 128-bit counter and a 64-bit key.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (counter, key);
    for round in 0..10 {
        if round > 0 {
            k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
        }
        let (hi0, lo0) = mul_hi_lo(M0, c[0]);
        let (hi1, lo1) = mul_hi_lo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// The key of a run's generator: its seed's two halves.
pub fn key(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// The 32 random bits of element `element` of `stream`'s draw `(step, slot)` under `key`.
/// Elements come four to a Philox block: element e is word e mod 4 of the block at counter
/// (e / 4, slot | stream << 24, step's low and high words). `slot` tells draws of one step
/// apart (a layer for dropout) and must be below 2^24.
#[inline]
pub fn bits(key: [u32; 2], stream: Stream, step: u64, slot: u32, element: u32) -> u32 {
    let block = philox4x32_10([element >> 2, slot | (stream as u32) << 24, step as u32, (step >> 32) as u32], key);
    block[(element & 3) as usize]
}

/// Fills `out[i]` with `bits(key, stream, step, slot, first + i)`, one Philox block per four
/// elements instead of one per element.
pub fn fill_bits(key: [u32; 2], stream: Stream, step: u64, slot: u32, first: u32, out: &mut [u32]) {
    let mut e = first;
    let mut i = 0;
    while i < out.len() {
        let block = philox4x32_10([e >> 2, slot | (stream as u32) << 24, step as u32, (step >> 32) as u32], key);
        let lane = (e & 3) as usize;
        let take = (4 - lane).min(out.len() - i);
        out[i..i + take].copy_from_slice(&block[lane..lane + take]);
        i += take;
        e = e.wrapping_add(take as u32);
    }
}

/// A uniform number in [0, 1) from 32 random bits: the top 24 bits, exact in f32 and f64.
#[inline]
pub fn unit(bits: u32) -> f64 {
    (bits >> 8) as f64 * (1.0 / (1u32 << 24) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors of Random123 (kat_vectors, philox4x32 with 10 rounds): a
    /// transcription error in a constant or the round structure changes every word.
    #[test]
    fn philox_gives_random123s_known_answers() {
        assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]);
        assert_eq!(philox4x32_10([u32::MAX; 4], [u32::MAX; 2]), [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]);
        assert_eq!(
            philox4x32_10([0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344], [0xa409_3822, 0x299f_31d0]),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn filled_bits_are_the_elements_drawn_one_by_one_from_any_start() {
        let k = key(0x1234_5678_9abc_def0);
        for first in [0u32, 1, 2, 3, 5, 4093] {
            let mut v = vec![0u32; 11];
            fill_bits(k, Stream::Dropout, 7, 3, first, &mut v);
            for (i, &b) in v.iter().enumerate() {
                assert_eq!(b, bits(k, Stream::Dropout, 7, 3, first + i as u32), "element {}", first + i as u32);
            }
        }
    }

    #[test]
    fn streams_steps_slots_and_seeds_draw_different_bits() {
        let k = key(1);
        let base = bits(k, Stream::Dropout, 1, 0, 0);
        assert_ne!(base, bits(k, Stream::Augment, 1, 0, 0));
        assert_ne!(base, bits(k, Stream::Dropout, 2, 0, 0));
        assert_ne!(base, bits(k, Stream::Dropout, 1 + (1 << 32), 0, 0));
        assert_ne!(base, bits(k, Stream::Dropout, 1, 1, 0));
        assert_ne!(base, bits(key(2), Stream::Dropout, 1, 0, 0));
    }

    #[test]
    fn unit_numbers_are_in_the_half_open_interval_and_about_uniform() {
        assert_eq!(unit(0), 0.0);
        assert_eq!(unit(u32::MAX), 1.0 - 1.0 / (1u32 << 24) as f64);
        let mut v = vec![0u32; 100_000];
        fill_bits(key(9), Stream::Augment, 0, 0, 0, &mut v);
        let mean = v.iter().map(|&b| unit(b)).sum::<f64>() / v.len() as f64;
        // the standard error of the mean of 1e5 uniforms is 0.0009
        assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
    }
}
