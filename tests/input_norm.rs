//! Input normalisation (`--standardize`, `model.input_norm`): x = (p − mean) / std on every
//! path that feeds a network — the reference backend against the formula, the statistics
//! against their definition, and a standardised run whose saved model `eval`, `predict` and
//! `gradcheck` all read the same way. (The GPU's gather kernel is held to the reference in
//! tests/gpu_kernels.rs.)

mod common;

use common::{gpu_nn, tensor};
use gpu_nn::nn::backend::{Backend, Split};
use gpu_nn::core::checkpoint::load_model;
use gpu_nn::cpu::{FastBackend, ReferenceBackend};
use gpu_nn::data::{Dataset, Pixels};
use gpu_nn::data::InputNorm;
use gpu_nn::nn::model::{Activation, LayerParams, Loss, ModelSpec, Params, Reduction};
use gpu_nn::nn::optim::OptimizerSpec;
use std::path::PathBuf;
use std::sync::Arc;

fn bytes(pixels: Vec<u8>, len: usize) -> Dataset {
    let n = pixels.len() / len;
    Dataset { source: "test bytes".into(), pixels: Pixels::U8(pixels), sample_len: len, labels: vec![0; n], num_classes: 2 }
}

#[test]
fn the_reference_feeds_the_normalised_pixels() {
    let norm = InputNorm { mean: 0.1307, std: 0.3081 };
    let spec = ModelSpec { layers: vec![3, 2], activations: vec![Activation::Identity], loss: Loss::HalfSse, label_smoothing: 0.0, reduction: Reduction::Mean, input_norm: norm, feature_norm: None, classes: Vec::new() };
    spec.validate().unwrap();
    let px = [0u8, 51, 255, 200, 7, 128];
    let w = [0.5, -1.25, 2.0, 0.75, 0.1, -0.3];
    let b = [0.2, -0.4];
    let params = Params { layers: vec![LayerParams { weight: w.to_vec(), bias: b.to_vec() }] };
    let mut cpu = ReferenceBackend::new(&spec, &OptimizerSpec::default());
    cpu.set_params(&params).unwrap();
    cpu.attach(Split::Train, Arc::new(bytes(px.to_vec(), 3))).unwrap();
    let trace = cpu.trace_step(&[1, 0], 0.1).unwrap();
    // z = b + W·x with x_i = (p_i / 255 − mean) / std, rows in the order asked for
    let x = |s: usize, i: usize| (px[3 * s + i] as f64 / 255.0 - norm.mean) / norm.std;
    let want: Vec<f64> = [1, 0].iter().flat_map(|&s| (0..2).map(move |o| b[o] + (0..3).map(|i| w[3 * o + i] * x(s, i)).sum::<f64>())).collect();
    common::assert_close("layer1.z", tensor(&trace, "layer1.z"), &want, 1e-12);
}

#[test]
fn pixel_stats_are_the_mean_and_standard_deviation() {
    // p = 0, 1, 0, 1 (bytes 0 and 255): mean ½, population standard deviation ½
    let s = bytes(vec![0, 255, 0, 255], 2).pixel_stats().unwrap();
    assert_eq!((s.mean, s.std), (0.5, 0.5));
    // bytes 51 and 102: 0.2 and 0.4, mean 0.3, std 0.1
    let s = bytes(vec![51, 102], 1).pixel_stats().unwrap();
    assert!((s.mean - 0.3).abs() < 1e-15 && (s.std - 0.1).abs() < 1e-15, "{s:?}");
    let err = bytes(vec![9, 9, 9], 3).pixel_stats().unwrap_err().to_string();
    assert!(err.contains("test bytes") && err.contains("no spread"), "{err}");
}

#[test]
fn a_standardised_run_is_read_back_with_its_normalisation() {
    let Some(data) = common::mnist_dir_or_skip("a_standardised_run_is_read_back_with_its_normalisation") else { return };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("input_norm_run");
    let s = |p: &PathBuf| p.display().to_string();
    let run = gpu_nn(&[
        "train", "--preset", "seed000-mnist", "--standardize", "--backend", "cpu", "--epochs", "1", "--data", &s(&data), "--out", &s(&dir), "--force", "--quiet",
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));

    // the model file carries the statistics of MNIST's 60,000 training images (0.1307, 0.3081)
    let (params, spec) = load_model(&dir.join("model.safetensors")).unwrap();
    assert!((spec.input_norm.mean - 0.1307).abs() < 1e-4 && (spec.input_norm.std - 0.3081).abs() < 1e-4, "{:?}", spec.input_norm);
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["data"]["standardize"], true);

    // eval reads the file's normalisation: it reports the run's own test accuracy
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let head: Vec<&str> = metrics.lines().next().unwrap().split(',').collect();
    let last: Vec<&str> = metrics.lines().last().unwrap().split(',').collect();
    let test_acc: f64 = last[head.iter().position(|h| *h == "test_acc").unwrap()].parse().unwrap();
    let o = gpu_nn(&["eval", "--model", &s(&dir.join("model.safetensors")), "--data", &s(&data), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["accuracy"].as_f64().unwrap(), test_acc);
    assert!(test_acc > 0.9, "one standardised epoch gives {test_acc}");

    // predict agrees with the backend, and the backend without the normalisation would not
    let test = Dataset::load(&data.join("t10k-images-idx3-ubyte.gz"), &data.join("t10k-labels-idx1-ubyte.gz"), 10).unwrap();
    let predictions = |spec: &ModelSpec| {
        let mut b = FastBackend::new(spec, &Default::default());
        b.set_params(&params).unwrap();
        b.attach(Split::Test, Arc::new(test.clone())).unwrap();
        b.evaluate(Split::Test).unwrap().predictions
    };
    let want = predictions(&spec);
    let raw = predictions(&ModelSpec { input_norm: InputNorm::IDENTITY, ..spec.clone() });
    let differ = (0..test.len()).filter(|&i| want[i] != raw[i]).count();
    assert!(differ > 100, "the normalisation changes {differ} predictions only");
    let idx: Vec<usize> = (0..test.len()).filter(|&i| want[i] != raw[i]).take(5).collect();
    let list = idx.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let o = gpu_nn(&["predict", "--model", &s(&dir.join("model.safetensors")), "--data", &s(&data), "--idx-index", &list]);
    let text = String::from_utf8_lossy(&o.stdout);
    let got: Vec<u8> = text.lines().filter_map(|l| l.strip_prefix("prediction: ")).map(|r| r.split_whitespace().next().unwrap().parse().unwrap()).collect();
    assert_eq!(got, idx.iter().map(|&i| want[i]).collect::<Vec<_>>(), "{text}");

    // backpropagation through normalised inputs matches central differences
    let o = gpu_nn(&["gradcheck", "--preset", "seed000-mnist", "--standardize", "--data", &s(&data), "--batch", "4", "--samples", "8"]);
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
}
