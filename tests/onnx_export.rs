//! `gpu-nn export --onnx`: the exported network, run in onnxruntime (Python; `.ci/run`
//! installs it) on the MNIST test set, gives gpu-nn's own predictions: every class the same,
//! every output within the CSV's 6 decimals and f32 rounding. Covers the input normalisation
//! (Sub, Div) and every activation. In CI a missing onnxruntime or dataset fails.

mod common;
use common::{gpu_nn, in_ci, mnist_dir_or_skip, s};
use std::process::Command;

fn onnxruntime_or_skip() -> bool {
    let ok = Command::new("python3").args(["-c", "import onnxruntime, numpy"]).status().is_ok_and(|st| st.success());
    if !ok {
        assert!(!in_ci(), "python3 with onnxruntime and numpy is missing in CI (.ci/run installs them)");
        eprintln!("SKIPPED onnx export: python3 -c 'import onnxruntime' fails (pip install onnxruntime numpy)");
    }
    ok
}

#[test]
fn onnxruntime_reproduces_gpu_nns_predictions() {
    let Some(data) = mnist_dir_or_skip("onnx export") else { return };
    if !onnxruntime_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let nets: [&[&str]; 2] = [
        &["--preset", "seed001", "--standardize"],
        &["--layers", "784,24,12,10", "--activation", "leaky_relu,tanh,sigmoid", "--loss", "half_sse", "--optimizer", "sgd", "--lr", "0.5"],
    ];
    for (k, net) in nets.iter().enumerate() {
        let run = tmp.path().join(format!("run{k}"));
        let mut args = vec!["train", "--backend", "cpu", "--max-steps", "200", "--epochs", "1", "--data", s(&data), "--out", s(&run), "-q"];
        args.extend_from_slice(net);
        let o = gpu_nn(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let (model, onnx, csv) = (run.join("model.safetensors"), run.join("model.onnx"), run.join("predictions.csv"));
        let o = gpu_nn(&["export", "--model", s(&model), "--onnx", s(&onnx)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = gpu_nn(&["predict", "--model", s(&model), "--csv", s(&csv), "--data", s(&data)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/onnx_check.py");
        let images = data.join("t10k-images-idx3-ubyte.gz");
        let o = Command::new("python3").args([script, s(&onnx), s(&images), s(&csv)]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(r["images"], 10000);
        assert_eq!(r["class_differs"], 0, "{net:?}: {r}");
        assert!(r["max_output_difference"].as_f64().unwrap() <= 1e-5, "{net:?}: {r}");
    }
}
