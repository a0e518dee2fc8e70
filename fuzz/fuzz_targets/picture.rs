//! `gpu-nn predict`'s pictures from arbitrary bytes (PNG, JPEG, anything else): an error, or
//! 28×28 values in [0, 1]; never a panic.
#![no_main]
use gpu_nn::data::picture::{SIDE, decode_image, preprocess};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(img) = decode_image(data, "fuzz input") else { return };
    if let Ok(p) = preprocess(&img) {
        assert_eq!(p.pixels.len(), SIDE * SIDE);
        assert!(p.pixels.iter().all(|&x| (0.0..=1.0).contains(&x)), "a pixel outside [0, 1]");
    }
});
