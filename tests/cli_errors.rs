//! The `gpu-nn` binary as a user meets it: every impossible request ends with exit status 2 and
//! exactly one `error:` line that names the problem (never a panic, never a usage dump), and a
//! successful run writes a run directory that reloads to doc 000's exact weights and repeats
//! itself bit for bit from its own config.json.

mod common;

use common::hand::{EXACT, LOSS_CURVE, doc_order};
use flate2::Compression;
use flate2::write::GzEncoder;
use gpu_nn::core::checkpoint::load_model;
use gpu_nn::core::config::Config;
use gpu_nn::data::idx::{IdxArray, IdxData, encode_idx};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The binary as every test runs it (`common::command`), no mirror inherited either.
fn gpu_nn(args: &[&str]) -> Output {
    common::command(args).env_remove("GPU_NN_MIRROR").output().expect("the gpu-nn binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit status 2, one stderr line starting with "error:" that contains every needle, no panic.
fn assert_user_error(args: &[&str], needles: &[&str]) {
    let o = gpu_nn(args);
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "gpu-nn {args:?} panicked: {err}");
    assert_eq!(o.status.code(), Some(2), "gpu-nn {args:?}: exit status {:?}, stderr: {err}", o.status.code());
    let lines: Vec<&str> = err.trim_end_matches('\n').split('\n').collect();
    assert_eq!(lines.len(), 1, "gpu-nn {args:?}: expected one stderr line, got {}:\n{err}", lines.len());
    assert!(lines[0].starts_with("error:"), "gpu-nn {args:?}: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "gpu-nn {args:?}: error lacks {n:?}: {err}");
    }
}

/// A small dataset in MNIST's own file format and names (28×28 bytes, labels 0–9): enough to
/// get past data loading without the real files.
fn synthetic_mnist(dir: &Path, n_train: usize, n_test: usize) {
    let files = [
        ("train-images-idx3-ubyte.gz", vec![n_train, 28, 28]),
        ("train-labels-idx1-ubyte.gz", vec![n_train]),
        ("t10k-images-idx3-ubyte.gz", vec![n_test, 28, 28]),
        ("t10k-labels-idx1-ubyte.gz", vec![n_test]),
    ];
    for (name, dims) in files {
        let n: usize = dims.iter().product();
        let data = if dims.len() == 1 { (0..n).map(|i| (i % 10) as u8).collect() } else { (0..n).map(|i| (i * 7 % 256) as u8).collect() };
        std::fs::write(dir.join(name), gzip(&encode_idx(&IdxArray { dims, data: IdxData::U8(data) }))).unwrap();
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn malformed_idx_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    synthetic_mnist(dir, 100, 10);
    // a valid gzip header followed by garbage
    let bad = dir.join("t10k-labels-idx1-ubyte.gz");
    let mut bytes = std::fs::read(&bad).unwrap()[..10].to_vec();
    bytes.extend_from_slice(b"\xde\xad\xbe\xef not deflate");
    std::fs::write(&bad, bytes).unwrap();
    assert_user_error(&["train", "--data", s(dir), "--backend", "cpu", "--epochs", "1"], &[s(&bad), "gzip"]);

    // a well-formed gzip holding an IDX file cut short
    synthetic_mnist(dir, 100, 10);
    let bad = dir.join("train-images-idx3-ubyte.gz");
    let idx = encode_idx(&IdxArray { dims: vec![100, 28, 28], data: IdxData::U8(vec![1; 100 * 784]) });
    std::fs::write(&bad, gzip(&idx[..idx.len() - 5])).unwrap();
    assert_user_error(&["train", "--data", s(dir), "--backend", "cpu", "--epochs", "1"], &[s(&bad), "truncated"]);
}

#[test]
fn missing_data_directory_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-mnist-here");
    assert_user_error(&["train", "--data", s(&missing), "--backend", "cpu"], &[s(&missing), "GPU_NN_OFFLINE", "t10k-images-idx3-ubyte.gz"]);
    assert!(!missing.exists(), "an offline run must not create the data directory");
}

/// Configurations that cannot work, each refused before any training with the flag it concerns.
#[test]
fn impossible_configurations() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    synthetic_mnist(data, 100, 10);
    let base = ["train", "--data", s(data), "--backend", "cpu"];
    let cases: &[(&[&str], &[&str])] = &[
        (&["--layers", "784,0,10"], &["--layers", "is 0"]),
        (&["--layers", "784,30,10", "--activation", "sigmoid"], &["--activation lists 1", "2 weight layer"]),
        (&["--lr", "0"], &["--lr", "> 0", "got 0"]),
        (&["--lr=-1"], &["--lr", "> 0", "got -1"]),
        (&["--epochs", "0"], &["--epochs 0"]),
        (&["--batch-size", "0"], &["--batch-size 0"]),
        (&["--loss", "binary_cross_entropy"], &["binary_cross_entropy", "sigmoid output", "softmax"]),
        (&["--preset", "no-such-preset"], &["unknown preset 'no-such-preset'", "seed000-hand"]),
        (&["--layers", "100,10", "--activation", "softmax"], &["--layers starts with 100 inputs", "784"]),
        (&["--layers", "784,7", "--activation", "softmax"], &["7 outputs", "10 classes"]),
        (&["--batch-size", "101"], &["--batch-size 101", "100 samples"]),
        (&["--target-acc", "98%"], &["--target-acc '98%'", "fraction in (0, 1]"]),
        (&["--target-acc", "98"], &["--target-acc 98", "fraction in (0, 1]", "0.98"]),
        (&["--target-acc", "0"], &["--target-acc 0", "fraction in (0, 1]"]),
        (&["--target-acc", "-0.5"], &["--target-acc -0.5", "fraction in (0, 1]"]),
        (&["--schedule", "one_cycle:1.2"], &["one_cycle:1.2", "PCT", "(0, 1)"]),
        (&["--schedule", "one_cycle:0.3:0"], &["one_cycle:0.3:0", "DIV", "> 0"]),
        (&["--schedule", "linear:-1"], &["linear:-1", "≥ 0"]),
        (&["--schedule", "onecycle"], &["unknown schedule 'onecycle'", "one_cycle[:PCT[:DIV[:FINAL_DIV]]]"]),
        (&["--dropout", "1"], &["--dropout 1", "[0, 1)"]),
        (&["--dropout", "0.5,0.5", "--layers", "784,30,10"], &["--dropout 0.5,0.5", "2 rates for 1 hidden layer"]),
        (&["--input-dropout", "-0.2"], &["--input-dropout -0.2", "[0, 1)"]),
        (&["--augment", "shift=2,zoom=3"], &["--augment 'shift=2,zoom=3'", "unknown part 'zoom'", "elastic=ALPHA:SIGMA"]),
        (&["--augment", "scale=2"], &["--augment", "scale 2", "below 1"]),
        (&["--augment", "elastic=34"], &["--augment 'elastic=34'", "ALPHA:SIGMA"]),
    ];
    for (extra, needles) in cases {
        let args: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
        assert_user_error(&args, needles);
    }
    assert_user_error(&["train", "--data", s(data), "--backend", "gpu", "--precision", "f64"], &["--precision f64", "--backend cpu"]);
}

/// `--lr -1` (value as a separate word, as people type it) is taken by clap for an unknown
/// short flag `-1`: a multi-line usage message that does not say what is wrong with the rate.
/// The same holds for every numeric flag given a negative value this way.
#[test]
fn negative_numbers_as_separate_words() {
    assert_user_error(&["train", "--backend", "cpu", "--lr", "-1"], &["--lr", "got -1"]);
    assert_user_error(&["train", "--backend", "cpu", "--momentum", "-0.5"], &["--momentum", "-0.5"]);
    assert_user_error(&["train", "--backend", "cpu", "--weight-decay", "-1"], &["--weight-decay", "-1"]);
}

const HEADER: &str = "epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,seconds,samples_per_sec";

/// The hand example end to end through the binary, its run directory, and its repetition.
#[test]
fn run_directory_reloads_and_repeats_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("run");
    let hand = ["train", "--preset", "seed000-hand", "--backend", "cpu", "--precision", "f64", "--epochs", "3", "--out", s(&d)];
    let o = gpu_nn(&hand);
    assert!(o.status.success(), "first run failed: {}", stderr(&o));
    for f in ["config.json", "metrics.csv", "model.safetensors"] {
        assert!(d.join(f).is_file(), "{f} missing from the run directory");
    }

    let csv = std::fs::read_to_string(d.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert!(lines.clone().count() == 3, "one row per epoch:\n{csv}");
    assert!(header.join(",").starts_with(HEADER), "header: {}", header.join(","));
    for (e, row) in lines.enumerate() {
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells.len(), header.len(), "row {row}");
        let col = |name: &str| cells[header.iter().position(|h| *h == name).unwrap()];
        assert_eq!(col("epoch"), (e + 1).to_string());
        let loss: f64 = col("train_loss").parse().unwrap();
        assert!((loss - LOSS_CURVE[e]).abs() <= 5e-9, "epoch {} train_loss {loss}", e + 1);
        assert_eq!(col("test_acc"), "", "the inline data has no test set");
    }

    let (params, spec) = load_model(&d.join("model.safetensors")).unwrap();
    assert_eq!(spec.layers, vec![2, 2, 2]);
    let got = doc_order(&params);
    for (i, (g, w)) in got.iter().zip(&EXACT[2]).enumerate() {
        assert!((g - w).abs() <= 1e-12, "w{} after epoch 3: {g} vs SEEDS.md {w}", i + 1);
    }

    // a second run from the written config repeats the first bit for bit
    let d2 = tmp.path().join("again");
    let o = gpu_nn(&["train", "--config", s(&d.join("config.json")), "--out", s(&d2)]);
    assert!(o.status.success(), "rerun from config.json failed: {}", stderr(&o));
    let (params2, spec2) = load_model(&d2.join("model.safetensors")).unwrap();
    assert_eq!(spec2, spec);
    assert_eq!(bits(&params2), bits(&params), "the rerun's weights differ");
    let cfg = |p: PathBuf| -> Config { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    assert_eq!(cfg(d2.join("config.json")), cfg(d.join("config.json")), "config.json must describe the same run");

    // an existing run is not overwritten without --force, and is left intact
    let model_before = std::fs::read(d.join("model.safetensors")).unwrap();
    assert_user_error(&hand, &[s(&d), "--force"]);
    assert_eq!(std::fs::read(d.join("model.safetensors")).unwrap(), model_before);
    let o = gpu_nn(&[&hand[..], &["--force"]].concat());
    assert!(o.status.success(), "--force run failed: {}", stderr(&o));
    let (params3, _) = load_model(&d.join("model.safetensors")).unwrap();
    assert_eq!(bits(&params3), bits(&params), "same run, same weights");
}

fn bits(p: &gpu_nn::nn::model::Params) -> Vec<u64> {
    p.flat().iter().map(|x| x.to_bits()).collect()
}

/// Two identical runs should write identical model files (checksums of reproduced runs), but
/// the safetensors header's metadata map comes out in a different key order from run to run.
#[test]
fn identical_runs_write_identical_model_files() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for k in 0..10 { // two metadata keys: a false pass has odds 2^-9
        let d = tmp.path().join(format!("run{k}"));
        let o = gpu_nn(&["train", "--preset", "seed000-hand", "--backend", "cpu", "--precision", "f64", "--out", s(&d), "--quiet"]);
        assert!(o.status.success(), "{}", stderr(&o));
        files.push(std::fs::read(d.join("model.safetensors")).unwrap());
    }
    assert!(files.windows(2).all(|w| w[0] == w[1]), "model.safetensors differs between identical runs");
}

#[test]
fn out_path_that_is_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("a-file");
    std::fs::write(&f, b"x").unwrap();
    assert_user_error(&["train", "--preset", "seed000-hand", "--backend", "cpu", "--out", s(&f)], &[s(&f), "not a directory"]);
}
