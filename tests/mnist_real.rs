//! On the real MNIST files: the label decoding and the accuracy metric against the digit shares
//! of the test set (SEEDS.md, "A sanity check that needs no training"), and a one-epoch run of
//! doc 000's 784-30-10 network on the CPU fast path.

mod common;

use gpu_nn::nn::backend::{Backend, Split};
use gpu_nn::commands::config_args::ConfigArgs;
use gpu_nn::cpu::{FastBackend, ReferenceBackend};
use gpu_nn::data::Dataset;
use gpu_nn::nn::model::{Activation, LayerParams, Loss, ModelSpec, Params, Reduction};
use gpu_nn::nn::optim::OptimizerSpec;
use std::sync::Arc;

/// Accuracy (%) of the classifier that always answers digit c, c = 0…9 (SEEDS.md).
const SHARE_PERCENT: [f64; 10] = [9.80, 11.35, 10.32, 10.10, 9.82, 8.92, 9.58, 10.28, 9.74, 10.09];

fn test_set(dir: &std::path::Path) -> Dataset {
    Dataset::load(&dir.join("t10k-images-idx3-ubyte.gz"), &dir.join("t10k-labels-idx1-ubyte.gz"), 10).unwrap()
}

/// 784-10 softmax model with zero weights and bias 1 on class c: every image is classified c.
fn constant_model(c: usize) -> (ModelSpec, Params) {
    let spec = ModelSpec { layers: vec![784, 10], activations: vec![Activation::Softmax], loss: Loss::CrossEntropy, label_smoothing: 0.0, reduction: Reduction::Mean, input_norm: Default::default(), feature_norm: None, classes: Vec::new() };
    let mut bias = vec![0.0; 10];
    bias[c] = 1.0;
    (spec, Params { layers: vec![LayerParams { weight: vec![0.0; 7840], bias }] })
}

#[test]
fn constant_classifier_scores_each_digit_share() {
    let Some(dir) = common::mnist_dir_or_skip("constant_classifier_scores_each_digit_share") else { return };
    let test = Arc::new(test_set(&dir));
    assert_eq!((test.len(), test.sample_len), (10_000, 784));

    // the shares as counts out of 10,000 (2-decimal percentages are exact counts)
    let want: Vec<u64> = SHARE_PERCENT.iter().map(|p| (p * 100.0).round() as u64).collect();
    assert_eq!(want.iter().sum::<u64>(), 10_000);
    let mut counted = [0u64; 10];
    for &l in &test.labels {
        counted[l as usize] += 1;
    }
    assert_eq!(counted.to_vec(), want, "label counts of the test set");

    // the same numbers from a real model and the backend's accuracy metric
    for c in 0..10 {
        let (spec, params) = constant_model(c);
        let mut be = FastBackend::new(&spec, &OptimizerSpec::default());
        be.set_params(&params).unwrap();
        be.attach(Split::Test, test.clone()).unwrap();
        let r = be.evaluate(Split::Test).unwrap();
        assert!(r.predictions.iter().all(|&p| p as usize == c), "digit {c}: a prediction differs from {c}");
        assert_eq!(r.correct, want[c], "digit {c}");
        assert_eq!(r.accuracy(), want[c] as f64 / 10_000.0, "digit {c}");
        assert_eq!(format!("{:.2}", 100.0 * r.accuracy()), format!("{:.2}", SHARE_PERCENT[c]));
        // softmax of (1 on c, 0 elsewhere): loss ln(e + 9) − [label = c], summed over the set
        let loss = 10_000.0 * (1f64.exp() + 9.0).ln() - want[c] as f64;
        assert!(((r.loss_sum - loss) / loss).abs() < 1e-6, "digit {c}: loss sum {} vs {loss}", r.loss_sum);
    }

    // the f64 reference agrees exactly on the count and to 1e-12 on the loss
    let (spec, params) = constant_model(5);
    let mut be = ReferenceBackend::new(&spec, &OptimizerSpec::default());
    be.set_params(&params).unwrap();
    be.attach(Split::Test, test).unwrap();
    let r = be.evaluate(Split::Test).unwrap();
    assert_eq!(r.correct, 892);
    let loss = 10_000.0 * (1f64.exp() + 9.0).ln() - 892.0;
    assert!(((r.loss_sum - loss) / loss).abs() < 1e-12);
}

/// Doc 000 reports 94.45 % after 30 epochs; one epoch of the same set-up (η = 3, batch 20,
/// sigmoid, ½ squared error) is already past 90 % on the test set.
#[test]
fn one_epoch_of_seed000_mnist_reaches_90_percent() {
    let Some(dir) = common::mnist_dir_or_skip("one_epoch_of_seed000_mnist_reaches_90_percent") else { return };
    let cfg = ConfigArgs {
        preset: Some("seed000-mnist".into()),
        data: Some(dir),
        epochs: Some(1),
        backend: Some("cpu".into()),
        precision: Some("f32".into()),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    assert_eq!((cfg.model.layers.clone(), cfg.optimizer.lr), (vec![784, 30, 10], 3.0));
    let data = gpu_nn::core::run_data::load(&cfg).unwrap();
    assert_eq!((data.train.len(), data.test.as_ref().unwrap().len()), (60_000, 10_000));
    cfg.check_against_data(data.train.sample_len, data.train.num_classes, &data.train.source, data.train.len()).unwrap();
    let mut be = FastBackend::new(&cfg.model, &cfg.optimizer);
    let res = gpu_nn::core::train::run(&cfg, &data, &mut be, &mut gpu_nn::core::train::Silent).unwrap();
    assert_eq!(res.steps, 3000, "60,000 samples in batches of 20");
    let acc = res.test.expect("MNIST has a test set").accuracy();
    eprintln!("seed000-mnist, 1 epoch, cpu f32: test accuracy {:.2}%", 100.0 * acc);
    assert!(acc >= 0.90, "test accuracy {:.2}% after one epoch", 100.0 * acc);
    assert_eq!(res.metrics[0].test_acc, Some(acc));
}

/// The skip rule itself: a missing dataset is a skip locally and a failure in CI.
#[test]
fn missing_dataset_skips_locally_and_fails_in_ci() {
    let missing = std::path::PathBuf::from(common::MNIST_DIR).join("no-such-subdirectory");
    assert_eq!(common::dataset_dir_or_skip(missing.clone(), false, "skip-rule"), None);
    let in_ci = std::panic::catch_unwind(|| common::dataset_dir_or_skip(missing, true, "skip-rule"));
    assert!(in_ci.is_err(), "a missing dataset must fail when CI is set");
    let here = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(common::dataset_dir_or_skip(here.clone(), true, "skip-rule"), Some(here));
}
