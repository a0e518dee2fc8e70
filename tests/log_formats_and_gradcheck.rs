//! The terminal side of the binary: `--log-format json` prints exactly one JSON object per
//! epoch and nothing else on stdout, `--quiet` prints nothing at all; and `gpu-nn gradcheck`
//! passes on correct gradients and fails (exit status 2, one error line) above its tolerance.

mod common;
use common::gpu_nn;

use std::path::{Path, PathBuf};


fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("log_formats_and_gradcheck").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const HAND: [&str; 7] = ["train", "--preset", "seed000-hand", "--backend", "cpu", "--precision", "f64"];

#[test]
fn json_log_is_one_object_per_epoch_with_the_metrics_csv_fields() {
    let dir = scratch("json").join("run");
    let mut args = HAND.to_vec();
    args.extend(["--log-format", "json", "--out", s(&dir)]);
    let o = gpu_nn(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "three epochs, three lines, nothing else:\n{stdout}");

    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut csv_lines = csv.lines();
    let header: Vec<&str> = csv_lines.next().unwrap().split(',').collect();
    for (line, row) in lines.iter().zip(csv_lines) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let obj = v.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        let mut want = header.clone();
        keys.sort_unstable();
        want.sort_unstable();
        assert_eq!(keys, want, "the JSON keys are the metrics.csv columns");
        for (name, cell) in header.iter().zip(row.split(',')) {
            let j = &obj[*name];
            if cell.is_empty() {
                assert!(j.is_null(), "{name}: not measured, so null; got {j}");
                continue;
            }
            let (a, b): (f64, f64) = (j.as_f64().unwrap(), cell.parse().unwrap());
            // seconds and samples/s are rounded in the CSV
            let tol = if matches!(*name, "seconds" | "samples_per_sec") { 0.051 } else { 0.0 };
            assert!((a - b).abs() <= tol, "{name}: JSON {a} vs CSV {b}");
        }
    }
    // the informational lines went to stderr
    assert!(String::from_utf8_lossy(&o.stderr).contains("training 2-2-2"));
    // a run without a test set has curves but no confusion matrix
    assert!(dir.join("curves.png").is_file() && dir.join("curves.svg").is_file());
    assert!(!dir.join("confusion.csv").exists());
}

#[test]
fn text_log_prints_a_summary_per_epoch_and_quiet_prints_nothing() {
    let dir = scratch("text");
    let a = dir.join("a");
    let mut args = HAND.to_vec();
    args.extend(["--out", s(&a)]);
    let o = gpu_nn(&args);
    assert!(o.status.success());
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert_eq!(stdout.lines().filter(|l| l.starts_with("epoch ")).count(), 3, "{stdout}");
    assert!(stdout.contains("train loss 0.25339") && stdout.lines().next().unwrap().starts_with("training 2-2-2"), "{stdout}");

    for format in ["text", "json"] {
        let mut args = HAND.to_vec();
        let out = dir.join(format!("q-{format}"));
        args.extend(["--quiet", "--log-format", format, "--out", s(&out)]);
        let o = gpu_nn(&args);
        assert!(o.status.success());
        assert!(o.stdout.is_empty(), "--quiet ({format}): stdout {:?}", String::from_utf8_lossy(&o.stdout));
        assert!(o.stderr.is_empty(), "--quiet ({format}): stderr {:?}", String::from_utf8_lossy(&o.stderr));
        assert!(out.join("metrics.csv").is_file() && out.join("curves.png").is_file(), "--quiet still writes the run");
    }
    let o = gpu_nn(&["train", "--preset", "seed000-hand", "--log-format", "xml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("error: "));
}

#[test]
fn gradcheck_passes_on_the_hand_example() {
    let o = gpu_nn(&["gradcheck", "--preset", "seed000-hand"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("layer 0 (2->2 sigmoid): worst relative error") && out.contains("layer 1 (2->2 sigmoid)"), "{out}");
    assert!(out.contains("4 weights") && out.contains("2 biases"), "every parameter of the 2-2-2 net is checked:\n{out}");
    assert!(out.contains("gradcheck passed"), "{out}");
}

#[test]
fn gradcheck_fails_above_an_absurd_tolerance() {
    let o = gpu_nn(&["gradcheck", "--preset", "seed000-hand", "--tolerance", "1e-30"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: gradcheck failed: worst relative error") && err.contains("1.0e-30"), "{err}");
}

#[test]
fn gradcheck_passes_on_a_small_relu_softmax_network_on_mnist() {
    let Some(data) = common::mnist_dir_or_skip("gradcheck_passes_on_a_small_relu_softmax_network_on_mnist") else { return };
    let o = gpu_nn(&[
        "gradcheck", "--preset", "seed001", "--layers", "784,24,16,10", "--activation", "relu,relu,softmax",
        "--batch", "8", "--samples", "6", "--data", s(&data),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("784-24-16-10 relu/relu/softmax, cross_entropy (mean), batch of 8"), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("layer ")).count(), 3, "{out}");
    assert!(out.contains("6 weights"), "{out}");
}

/// With augmented pictures and dropout on the input and both hidden layers (tanh and sigmoid,
/// whose derivative is taken on the unmasked activations), backpropagation through the first
/// step's pictures and masks matches finite differences of the loss under the same pictures
/// (`Augment::apply`) and masks; were the backend to see other pictures or drop other units,
/// the gradients would differ by orders of magnitude.
#[test]
fn gradcheck_passes_with_dropout_masks_and_augmented_pictures_held_fixed() {
    let Some(data) = common::mnist_dir_or_skip("gradcheck_passes_with_dropout_masks_held_fixed") else { return };
    let o = gpu_nn(&[
        "gradcheck", "--preset", "seed001", "--layers", "784,24,16,10", "--activation", "tanh,sigmoid,softmax",
        "--dropout", "0.5,0.4", "--input-dropout", "0.2", "--augment", "shift=2,rotate=10,elastic=20:3", "--batch", "8", "--samples", "6", "--data", s(&data),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("dropout masks of the first step held fixed"), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("layer ")).count(), 3, "{out}");
}

/// `gpu-nn gradcheck` with label smoothing checks the smoothed loss's gradient (and says so);
/// `--clip-norm` does not bend the gradients it checks (clipping belongs to the update), even
/// with a C far below their norm.
#[test]
fn gradcheck_passes_with_label_smoothing_and_clipping() {
    let Some(data) = common::mnist_dir_or_skip("gradcheck_passes_with_label_smoothing_and_clipping") else { return };
    let o = gpu_nn(&[
        "gradcheck", "--preset", "seed001", "--layers", "784,24,10", "--activation", "tanh,softmax",
        "--label-smoothing", "0.2", "--clip-norm", "1e-4", "--batch", "8", "--samples", "6", "--data", s(&data),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("784-24-10 tanh/softmax, cross_entropy with label smoothing 0.2 (mean), batch of 8"), "{out}");
    assert!(out.contains("gradcheck passed"), "{out}");
}
