//! Doc 000's hand-worked 2-2-2 sigmoid network (preset `seed000-hand`), checked against the
//! exact float64 values of SEEDS.md and seeds/notes/notes_000_002.md (not the document's own
//! Table 1/2, which contain arithmetic slips).
//!
//! Weight naming (notes, "connection map"): W1 = [[w1, w3], [w2, w4]], b1 = [w9, w10],
//! W2 = [[w5, w7], [w6, w8]], b2 = [w11, w12]; rows are the destination unit, which is exactly
//! the [out, in] layout of `layers.{i}.weight`.

mod common;

use common::hand::{EXACT, LOSS_CURVE, doc_order};
use common::{assert_close, tensor};
use gpu_nn::nn::backend::{Backend, Split};
use gpu_nn::commands::config_args::ConfigArgs;
use gpu_nn::core::config::Config;
use gpu_nn::cpu::{FastBackend, ReferenceBackend};
use gpu_nn::core::metrics::EpochMetrics;
use gpu_nn::nn::model::LayerParams;
use gpu_nn::core::train::{Observer, Silent};
use std::sync::Arc;

/// Initial weights w1..w12 of the document: all 0.1 except w2 = w8 = 0.2.
const W0: [f64; 12] = [0.1, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.1, 0.1, 0.1, 0.1];

/// Per-sample ½-squared-error losses at the initial weights (notes; the document's 0.2527… for
/// sample 1 is wrong).
const LOSS_1: f64 = 0.2599665478550821;
const LOSS_2: f64 = 0.24682275692936534;

const F64_TOL: f64 = 1e-12;
/// f32 drifts by about 6e-9 on this network (notes); SEEDS.md asks for 1e-6.
const F32_TOL: f64 = 1e-6;

/// The preset exactly as a user selects it on the command line: `--preset seed000-hand
/// --backend cpu --precision f64`.
fn hand_config(precision: &str) -> Config {
    ConfigArgs {
        preset: Some("seed000-hand".into()),
        backend: Some("cpu".into()),
        precision: Some(precision.into()),
        ..Default::default()
    }
    .resolve()
    .expect("preset seed000-hand resolves")
}

/// A backend holding the preset's initial weights with the two samples attached as Train.
fn prepared<B: Backend>(mut b: B, cfg: &Config) -> (B, Arc<gpu_nn::data::Dataset>) {
    let data = gpu_nn::core::run_data::load(cfg).expect("inline data loads");
    b.set_params(&cfg.initial_params().unwrap()).unwrap();
    b.attach(Split::Train, data.train.clone()).unwrap();
    (b, data.train)
}

#[test]
fn preset_describes_the_document_setup() {
    let cfg = hand_config("f64");
    assert_eq!(cfg.model.layers, vec![2, 2, 2]);
    assert_eq!(cfg.optimizer.lr, 0.1);
    assert_eq!(cfg.training.epochs, 3);
    assert!(!cfg.training.shuffle, "the document keeps the file order");
    let data = gpu_nn::core::run_data::load(&cfg).unwrap();
    let x: Vec<f64> = (0..2).flat_map(|i| (0..2).map(move |j| (i, j))).map(|(i, j)| data.train.pixel(i, j)).collect();
    assert_eq!(x, vec![0.1, 0.1, 0.1, 0.2], "X1 = (0.1, 0.1), X2 = (0.1, 0.2)");
    assert_eq!(data.train.labels, vec![0, 1], "Y1 = (1, 0), Y2 = (0, 1)");
    assert_eq!(doc_order(&cfg.initial_params().unwrap()), W0.to_vec());
}

/// Forward pass at the initial weights, both samples in one batch (notes 000.3).
fn check_forward(trace: &gpu_nn::nn::backend::StepTrace, tol: f64) {
    // rows = samples, columns = units
    assert_close("net_h", tensor(trace, "layer1.z"), &[0.12, 0.13, 0.13, 0.14], tol);
    assert_close(
        "out_h",
        tensor(trace, "layer1.a"),
        &[0.5299640517645717, 0.5324543063873187, 0.5324543063873187, 0.5349429451582145],
        tol,
    );
    assert_close(
        "net_o",
        tensor(trace, "layer2.z"),
        &[0.20624183581518907, 0.25948726645392095, 0.20673972515455333, 0.2602340196703748],
        tol,
    );
    assert_close(
        "out_o",
        tensor(trace, "layer2.a"),
        &[0.5513784696896066, 0.5645102463659317, 0.5515016245695407, 0.5646938181510764],
        tol,
    );
}

#[test]
fn forward_pass_matches_notes() {
    let cfg = hand_config("f64");
    let (mut b, _) = prepared(ReferenceBackend::new(&cfg.model, &cfg.optimizer), &cfg);
    check_forward(&b.trace_step(&[0, 1], 0.1).unwrap(), F64_TOL);
    let cfg = hand_config("f32");
    let (mut b, _) = prepared(FastBackend::new(&cfg.model, &cfg.optimizer), &cfg);
    check_forward(&b.trace_step(&[0, 1], 0.1).unwrap(), F32_TOL);
}

/// Per-sample losses through `evaluate`: each sample attached alone as a split of its own.
#[test]
fn per_sample_losses_match_notes() {
    let cfg = hand_config("f64");
    let (mut b, train) = prepared(ReferenceBackend::new(&cfg.model, &cfg.optimizer), &cfg);
    b.attach(Split::Val, Arc::new(train.subset(&[0], "sample 1".into()))).unwrap();
    b.attach(Split::Test, Arc::new(train.subset(&[1], "sample 2".into()))).unwrap();
    let l1 = b.evaluate(Split::Val).unwrap();
    let l2 = b.evaluate(Split::Test).unwrap();
    assert_eq!((l1.samples, l2.samples), (1, 1));
    assert_close("E_total sample 1", &[l1.loss_sum], &[LOSS_1], F64_TOL);
    assert_close("E_total sample 2", &[l2.loss_sum], &[LOSS_2], F64_TOL);
    let both = b.evaluate(Split::Train).unwrap();
    assert_close("batch mean loss", &[both.loss()], &[0.2533946523922237], F64_TOL);
}

/// Gradients of one sample (batch of 1, so the mean reduction is the identity), notes 000.3:
/// returned as (layers.0.weight, layers.0.bias, layers.1.weight, layers.1.bias) in [out, in].
fn grads_of(indices: &[u32]) -> [Vec<f64>; 4] {
    let cfg = hand_config("f64");
    let (mut b, _) = prepared(ReferenceBackend::new(&cfg.model, &cfg.optimizer), &cfg);
    let t = b.trace_step(indices, 0.1).unwrap();
    ["layers.0.weight.grad", "layers.0.bias.grad", "layers.1.weight.grad", "layers.1.bias.grad"]
        .map(|n| tensor(&t, n).to_vec())
}

#[test]
fn per_sample_and_batch_gradients_match_notes() {
    // sample 1: ∂E/∂w1 = ∂E/∂w3 (i1 = i2 = 0.1), ∂E/∂w2 = ∂E/∂w4
    let g = grads_of(&[0]);
    let (h1, h2) = (6.926827594435028e-05, 0.00041470910520664405);
    assert_close("sample 1 dW1 [[w1,w3],[w2,w4]]", &g[0], &[h1, h1, h2, h2], F64_TOL);
    assert_close("sample 1 db1 [w9,w10]", &g[1], &[0.0006926827594435028, 0.00414709105206644], F64_TOL);
    assert_close(
        "sample 1 dW2 [[w5,w7],[w6,w8]]",
        &g[2],
        &[-0.05881071242497924, -0.05908705880733426, 0.07354751632357291, 0.07389310965562348],
        F64_TOL,
    );
    assert_close("sample 1 db2 [w11,w12]", &g[3], &[-0.110971135172589, 0.13877831162073848], F64_TOL);

    let g = grads_of(&[1]);
    assert_close(
        "sample 2 dW1",
        &g[0],
        &[7.321007872717319e-05, 0.00014642015745434638, -0.0001930443664403856, -0.0003860887328807712],
        F64_TOL,
    );
    assert_close("sample 2 db1", &g[1], &[0.0007321007872717319, -0.0019304436644038557], F64_TOL);
    assert_close(
        "sample 2 dW2",
        &g[2],
        &[0.07263347294720225, 0.0729729546166579, -0.05697509351449143, -0.05724138946701667],
        F64_TOL,
    );
    assert_close("sample 2 db2", &g[3], &[0.13641259367403274, -0.10700466280583808], F64_TOL);

    // the batch of both: the mean of the two (notes, "exact mean grad" column)
    let g = grads_of(&[0, 1]);
    assert_close(
        "batch dW1",
        &g[0],
        &[7.123917733576173e-05, 0.00010784421669934833, 0.00011083236938312923, 1.4310186162936429e-05],
        F64_TOL,
    );
    assert_close("batch db1", &g[1], &[0.0007123917733576174, 0.0011083236938312922], F64_TOL);
    assert_close(
        "batch dW2",
        &g[2],
        &[0.006911380261111506, 0.006942947904661819, 0.00828621140454074, 0.008325860094303406],
        F64_TOL,
    );
    assert_close("batch db2", &g[3], &[0.012720729250721874, 0.0158868244074502], F64_TOL);
}

/// Three epochs of one full-batch step each, driving `train_steps` with an explicit sample
/// order: the gradient is a batch mean, so file order and reversed order must agree.
fn three_epochs<B: Backend>(make: impl Fn(&Config) -> B, precision: &str, tol: f64) {
    let cfg = hand_config(precision);
    for order in [[0u32, 1], [1, 0]] {
        let (mut b, _) = prepared(make(&cfg), &cfg);
        for (epoch, want) in EXACT.iter().enumerate() {
            let stats = b.train_steps(&order, 2, &[0.1]).unwrap();
            assert_eq!(stats.samples, 2);
            // the step's running loss is measured on its forward pass, before the update
            assert_close(
                &format!("{precision} order {order:?} epoch {} running loss", epoch + 1),
                &[stats.loss_sum / 2.0],
                &[LOSS_CURVE[epoch]],
                tol.max(5e-9), // the curve is printed to 8 decimals
            );
            if epoch == 0 {
                assert_close(&format!("{precision} epoch 1 loss sum"), &[stats.loss_sum], &[LOSS_1 + LOSS_2], tol);
            }
            let got = doc_order(&b.params().unwrap());
            assert_close(&format!("{precision} order {order:?} weights after epoch {}", epoch + 1), &got, want, tol);
        }
        let after = b.evaluate(Split::Train).unwrap();
        assert_close(&format!("{precision} loss after epoch 3"), &[after.loss()], &[LOSS_CURVE[3]], tol.max(5e-9));
    }
}

#[test]
fn reference_f64_three_epochs_both_orders() {
    three_epochs(|c| ReferenceBackend::new(&c.model, &c.optimizer), "f64", F64_TOL);
}

#[test]
fn fast_f32_three_epochs_both_orders() {
    three_epochs(|c| FastBackend::new(&c.model, &c.optimizer), "f32", F32_TOL);
}

/// Captures the weights and metrics the training loop reports after every epoch.
#[derive(Default)]
struct Recorder {
    weights: Vec<Vec<f64>>,
    metrics: Vec<EpochMetrics>,
}
impl Observer for Recorder {
    fn epoch_end(&mut self, m: &EpochMetrics, backend: &mut dyn Backend) -> anyhow::Result<()> {
        self.weights.push(doc_order(&backend.params()?));
        self.metrics.push(m.clone());
        Ok(())
    }
}

/// The same through `train::run` (what `gpu-nn train` uses): batching, order, epoch count.
#[test]
fn training_loop_reproduces_every_epoch() {
    let cfg = hand_config("f64");
    let data = gpu_nn::core::run_data::load(&cfg).unwrap();
    let mut b = ReferenceBackend::new(&cfg.model, &cfg.optimizer);
    let mut rec = Recorder::default();
    let res = gpu_nn::core::train::run(&cfg, &data, &mut b, &mut rec).unwrap();
    assert_eq!(res.steps, 3, "one full-batch step per epoch");
    assert_eq!(rec.weights.len(), 3);
    for (e, (got, want)) in rec.weights.iter().zip(&EXACT).enumerate() {
        assert_close(&format!("train::run weights after epoch {}", e + 1), got, want, F64_TOL);
    }
    for (e, m) in rec.metrics.iter().enumerate() {
        assert_eq!(m.epoch, e + 1);
        assert_close(&format!("epoch {} train loss", e + 1), &[m.train_loss], &[LOSS_CURVE[e]], 5e-9);
        assert_eq!(m.test_acc, None, "inline data has no test set");
    }
    // and the f32 path through the same loop
    let cfg = hand_config("f32");
    let mut b = FastBackend::new(&cfg.model, &cfg.optimizer);
    gpu_nn::core::train::run(&cfg, &data, &mut b, &mut Silent).unwrap();
    assert_close("f32 train::run epoch 3", &doc_order(&b.params().unwrap()), &EXACT[2], F32_TOL);
}

/// `Config::from_layers` with the raw preset JSON is the same configuration as the CLI route.
#[test]
fn from_layers_matches_cli_resolution() {
    let patch = serde_json::json!({ "backend": { "kind": "cpu", "precision": "f64" } });
    let cfg = Config::from_layers(&[gpu_nn::core::config::preset_json("seed000-hand").unwrap(), patch]).unwrap();
    assert_eq!(cfg, hand_config("f64"));
    let p = cfg.initial_params().unwrap();
    assert_eq!(
        p.layers[0],
        LayerParams { weight: vec![0.1, 0.1, 0.2, 0.1], bias: vec![0.1, 0.1] },
        "layers.0.weight = [[w1, w3], [w2, w4]]"
    );
}
