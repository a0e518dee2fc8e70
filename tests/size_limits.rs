//! Every size is checked before it is used: layer products and step counts with checked
//! arithmetic, initialisation scales, sweep grids, a picture's pixels, a download's announced
//! length and a gzip stream's contents, each refused past a stated limit with one clear line
//! (exit 2). Each runs under a limit on virtual memory, so that a size taken on trust fails
//! here instead of swapping the machine.

mod common;
use common::{command_limited, s};
use std::io::Write;
use std::process::Output;

/// Virtual memory for a run that should need little: the binary, its threads, small data.
const SMALL: u64 = 1 << 20; // KiB: 1 GiB

/// Runs `args` under `SMALL`; the one error line of a run that must fail with status 2.
fn refused(args: &[&str]) -> String {
    let o: Output = command_limited(SMALL, args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(!err.contains("panicked") && !err.contains("memory allocation"), "{args:?}: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{args:?}: {err}");
    lines[0].to_string()
}

#[test]
fn layer_products_past_the_limit_are_refused() {
    for layers in ["784,4611686018427387904,10", "784,1000000000000,10", "100000,100000,10"] {
        let line = refused(&["train", "--backend", "cpu", "--dataset", "mnist", "--layers", layers]);
        assert!(line.contains(&format!("--layers {layers}")) && line.contains("2147483648 parameters"), "{line}");
    }
}

#[test]
fn initialisation_scales_past_the_limit_are_refused() {
    for init in ["uniform:1e308", "normal:1e300", "uniform:inf", "normal:0"] {
        let line = refused(&["train", "--preset", "seed000-hand", "--backend", "cpu", "--init", init]);
        assert!(line.contains(&format!("--init {init}")) && line.contains("at most 1e6"), "{line}");
    }
}

#[test]
fn an_epoch_count_past_the_step_counters_is_refused_not_wrapped() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    // 2^63 epochs of two steps: 2^64 steps, which wrapped to none in an old build (it exited 0
    // having trained nothing)
    let line = refused(&["train", "--preset", "seed000-hand", "--backend", "cpu", "--batch-size", "1", "--epochs", "9223372036854775808", "--out", s(&out)]);
    assert!(line.contains("--epochs 9223372036854775808") && line.contains("epochs of 2 steps are more than the 9223372036854775807 steps"), "{line}");
    assert!(!out.join("model.safetensors").exists(), "nothing was trained");
}

#[test]
fn sweep_grids_past_the_limit_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    // 1000³ cells
    let thousand = |scale: f64| (1..=1000).map(|i| format!("{}", i as f64 * scale)).collect::<Vec<_>>().join(",");
    let seeds = (1..=1000).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let (lrs, moms) = (thousand(1e-4), thousand(1e-4));
    let line = refused(&["sweep", "--preset", "seed000-hand", "--backend", "cpu", "--lr", &lrs, "--seed", &seeds, "--momentum", &moms, "--out", s(&out)]);
    assert!(line.contains("1000000000 cells, more than --max-cells 10000"), "{line}");
    // 8 axes of 256 values: 2^64 cells, more than can be counted
    let axis = |scale: f64| (1..=256).map(|i| format!("{}", i as f64 * scale)).collect::<Vec<_>>().join(",");
    let seeds = (1..=256).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let batches = (1..=256).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let flags = ["--lr", "--momentum", "--beta1", "--beta2", "--epsilon", "--weight-decay"];
    let values: Vec<String> = (0..flags.len()).map(|k| axis(1e-3 / (k + 1) as f64)).collect();
    let mut args = vec!["sweep", "--preset", "seed000-hand", "--backend", "cpu", "--out", s(&out), "--seed", &seeds, "--batch-size", &batches];
    for (f, v) in flags.iter().zip(&values) {
        args.extend([*f, v.as_str()]);
    }
    let line = refused(&args);
    assert!(line.contains("more cells than can be counted"), "{line}");
    assert!(!out.join("sweep.json").exists());
}

/// A 16384×16384 PNG (a few hundred KB of zeros) is refused from its header: never decoded,
/// never converted.
#[test]
fn a_picture_past_the_pixel_limit_is_refused_before_it_is_decoded() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.png");
    image::GrayImage::new(16384, 16384).save(&big).unwrap();
    assert!(std::fs::metadata(&big).unwrap().len() < 4 << 20);
    let spec = gpu_nn::nn::model::ModelSpec {
        layers: vec![784, 10],
        activations: vec![gpu_nn::nn::model::Activation::Softmax],
        loss: gpu_nn::nn::model::Loss::CrossEntropy,
        label_smoothing: 0.0,
        reduction: gpu_nn::nn::model::Reduction::Mean,
        input_norm: Default::default(),
        feature_norm: None,
        classes: Vec::new(),
    };
    let model = tmp.path().join("model.safetensors");
    gpu_nn::core::checkpoint::save_model(&model, &gpu_nn::nn::model::Params::zeros(&spec), &spec, gpu_nn::core::checkpoint::FileDtype::F32).unwrap();
    let line = refused(&["predict", "--model", s(&model), s(&big)]);
    assert!(line.contains("big.png") && line.contains("16384×16384 pixels") && line.contains("4096×4096"), "{line}");
}

/// An IDX file whose gzip stream holds 1 GiB: decoded into its place once (the old reader held
/// it twice, and aborted under this limit), then refused as no image set.
#[test]
fn a_large_gzip_stream_is_decoded_once_and_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let n: u32 = 1 << 30;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&[0, 0, 0x08, 1]).unwrap();
    gz.write_all(&n.to_be_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        gz.write_all(&zeros).unwrap();
    }
    std::fs::write(data.join("train-images-idx3-ubyte.gz"), gz.finish().unwrap()).unwrap();
    for f in ["train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        std::fs::write(data.join(f), [0, 0, 8, 1, 0, 0, 0, 1, 0]).unwrap();
    }
    let o = command_limited(1_700_000, &["train", "--preset", "seed001", "--backend", "cpu", "--data", s(&data)]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("train-images-idx3-ubyte.gz") && err.contains("at least 2 dimensions"), "{err}");
    // a header that declares more than the stream holds costs nothing: truncated
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&[0, 0, 0x08, 3, 0, 0, 0xEA, 0x60, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2, 3]).unwrap();
    std::fs::write(data.join("train-images-idx3-ubyte.gz"), gz.finish().unwrap()).unwrap();
    let line = refused(&["train", "--preset", "seed001", "--backend", "cpu", "--data", s(&data)]);
    assert!(line.contains("truncated") && line.contains("need 47040016 bytes"), "{line}");
}
