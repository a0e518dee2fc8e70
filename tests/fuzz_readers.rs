//! The readers of `fuzz/fuzz_targets/` (IDX, model and checkpoint files, configuration text,
//! pictures) on inputs a property-test generator makes, a bounded number per reader, in the test
//! command (cargo-fuzz, which needs a nightly compiler and libFuzzer, runs the same targets for
//! longer: README, "Fuzzing the readers"). Inputs are random bytes and valid files mutated
//! (bytes overwritten, cut short, grown); each reader must return an error or a value that
//! holds together, never panic.

use gpu_nn::core::checkpoint::{FileDtype, checkpoint_from_bytes, model_bytes, model_from_bytes};
use gpu_nn::core::config::{Config, preset_json};
use gpu_nn::data::idx::{IdxArray, IdxData, decode_idx, encode_idx};
use gpu_nn::data::picture::{SIDE, decode_image, preprocess};
use gpu_nn::nn::model::{Activation, Loss, ModelSpec, Params, Reduction};
use proptest::prelude::*;
use std::io::Write;

/// A valid file and edits of it: (position, byte) overwrites, then a cut or an appendix.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    (0..n, prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8), prop::option::of(any::<prop::sample::Index>()), prop::collection::vec(any::<u8>(), 0..16)).prop_map(
        move |(k, edits, cut, tail)| {
            let mut b = seeds[k].clone();
            for (at, v) in edits {
                if !b.is_empty() {
                    let i = at.index(b.len());
                    b[i] = v;
                }
            }
            if let Some(c) = cut {
                b.truncate(c.index(b.len() + 1));
            } else {
                b.extend(tail);
            }
            b
        },
    )
}

/// Random bytes, or a mutated valid file.
fn inputs(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..512), mutated(seeds)]
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn idx_seeds() -> Vec<Vec<u8>> {
    let bytes = IdxArray { dims: vec![3, 4, 2], data: IdxData::U8((0..24).collect()) };
    let floats = IdxArray { dims: vec![5], data: IdxData::F32(vec![1.5, -2.0, 0.25, 8.0, 3.0]) };
    let labels = IdxArray { dims: vec![6], data: IdxData::U8(vec![0, 1, 2, 9, 3, 4]) };
    let raw: Vec<Vec<u8>> = [bytes, floats, labels].iter().map(encode_idx).collect();
    raw.iter().map(|r| gzip(r)).chain(raw.clone()).collect()
}

fn spec() -> ModelSpec {
    ModelSpec { layers: vec![3, 4, 2], activations: vec![Activation::Tanh, Activation::Softmax], loss: Loss::CrossEntropy, label_smoothing: 0.0, reduction: Reduction::Mean, input_norm: Default::default(), feature_norm: None, classes: Vec::new() }
}

fn model_seeds() -> Vec<Vec<u8>> {
    let s = spec();
    let mut p = Params::zeros(&s);
    for (i, l) in p.layers.iter_mut().enumerate() {
        l.weight.iter_mut().enumerate().for_each(|(j, w)| *w = (i + j) as f64 * 0.1 - 0.3);
    }
    vec![model_bytes(&p, &s, FileDtype::F32).unwrap(), model_bytes(&p, &s, FileDtype::F64).unwrap()]
}

fn picture_seeds() -> Vec<Vec<u8>> {
    let mut digit = image::GrayImage::new(20, 24);
    for y in 4..20 {
        digit.put_pixel(10, y, image::Luma([255]));
    }
    let mut out = Vec::new();
    for format in [image::ImageFormat::Png, image::ImageFormat::Jpeg] {
        let mut b = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageLuma8(digit.clone()).write_to(&mut b, format).unwrap();
        out.push(b.into_inner());
    }
    out
}

fn config_seeds() -> Vec<Vec<u8>> {
    ["seed000-hand", "seed001", "seed004"].iter().map(|p| serde_json::to_vec(&preset_json(p).unwrap()).unwrap()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_idx_reader_answers_every_input(data in inputs(idx_seeds())) {
        if let Ok(arr) = decode_idx(&data, "generated input") {
            let n: usize = arr.dims.iter().product();
            prop_assert_eq!(n, arr.len(), "dimensions {:?}", arr.dims);
        }
    }

    #[test]
    fn the_model_and_checkpoint_readers_answer_every_input(data in inputs(model_seeds())) {
        if let Ok((params, spec, _)) = model_from_bytes(&data, "generated input") {
            params.check_shapes(&spec, "generated input").expect("a model read back fits its architecture");
        }
        if let Ok((ck, _)) = checkpoint_from_bytes(&data, "generated input") {
            ck.params.check_shapes(&ck.meta.architecture, "generated input").expect("a checkpoint read back fits its architecture");
        }
    }

    #[test]
    fn the_configuration_reader_answers_every_text(data in inputs(config_seeds())) {
        let Ok(text) = std::str::from_utf8(&data) else { return Ok(()) };
        let Ok(layer) = Config::layer_from_str(text, "generated input") else { return Ok(()) };
        let cfg = Config::from_layers(&[layer]).expect("a layer that validated alone resolves");
        let _ = cfg.validate();
        let again = serde_json::to_value(&cfg).expect("a configuration serialises");
        prop_assert_eq!(Config::from_layers(&[again]).expect("its own JSON reads back"), cfg);
    }
}

proptest! {
    // pictures decode and resample: fewer cases keep this reader's share of the time bounded
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_picture_reader_answers_every_input(data in inputs(picture_seeds())) {
        let Ok(img) = decode_image(&data, "generated input") else { return Ok(()) };
        if let Ok(p) = preprocess(&img) {
            prop_assert_eq!(p.pixels.len(), SIDE * SIDE);
            prop_assert!(p.pixels.iter().all(|&x| (0.0..=1.0).contains(&x)), "a pixel outside [0, 1]");
        }
    }
}

/// The valid seeds themselves are read back as what they are (so the mutations start from
/// real files, and a reader that refused everything would fail here).
#[test]
fn the_seeds_are_valid() {
    for s in idx_seeds() {
        decode_idx(&s, "seed").unwrap();
    }
    for s in model_seeds() {
        let (_, spec, _) = model_from_bytes(&s, "seed").unwrap();
        assert_eq!(spec.layers, vec![3, 4, 2]);
    }
    for s in picture_seeds() {
        preprocess(&decode_image(&s, "seed").unwrap()).unwrap();
    }
    for s in config_seeds() {
        Config::layer_from_str(std::str::from_utf8(&s).unwrap(), "seed").unwrap();
    }
}
