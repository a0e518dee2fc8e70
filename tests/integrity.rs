//! Model and checkpoint files carry the SHA-256 of their tensors: one flipped bit on disk is
//! refused by every command that reads the file, before any training on it; a file without a
//! checksum (another tool's) is read with a note; identical contents give identical bytes.

mod common;

use common::{error_line, gpu_nn, s};
use gpu_nn::core::checkpoint::{CHECKSUM_KEY, Checked, load_model, model_bytes, read_model};
use gpu_nn::core::checkpoint::FileDtype;
use safetensors::SafeTensors;
use std::path::Path;

/// A finished seed000-hand run (f64 CPU, no data files needed) in `dir/run`.
fn hand_run(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("run");
    let o = gpu_nn(&["train", "--preset", "seed000-hand", "--backend", "cpu", "--precision", "f64", "--out", s(&out), "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// Flips one bit of the last tensor byte (tensor data ends the file).
fn flip_last_bit(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    let last = b.len() - 1;
    b[last] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

#[test]
fn every_file_carries_a_checksum_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let out = hand_run(dir.path());
    for f in ["model.safetensors", "checkpoint.safetensors"] {
        let bytes = std::fs::read(out.join(f)).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        assert!(meta.metadata().as_ref().unwrap().contains_key(CHECKSUM_KEY), "{f} has no {CHECKSUM_KEY}");
        assert_eq!(read_model(&out.join(f)).unwrap().2, Checked::Verified, "{f}");
    }
}

#[test]
fn a_flipped_bit_is_refused_by_eval_init_from_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let out = hand_run(dir.path());
    let model = out.join("model.safetensors");
    flip_last_bit(&model);
    let err = load_model(&model).unwrap_err().to_string();
    assert!(err.contains("do not match the checksum") && err.contains(s(&model)), "{err}");
    let o = gpu_nn(&["eval", "--model", s(&model), "--data", "/nonexistent"]);
    assert_eq!(o.status.code(), Some(2));
    let line = error_line(&o);
    assert!(line.contains(s(&model)) && line.contains("checksum"), "{line}");
    let o = gpu_nn(&["train", "--preset", "seed000-hand", "--backend", "cpu", "--precision", "f64", "--init-from", s(&model), "--init", "explicit"]);
    assert_eq!(o.status.code(), Some(2), "training started from a damaged file");
    assert!(error_line(&o).contains("checksum"));

    let ck = out.join("checkpoint.safetensors");
    flip_last_bit(&ck);
    let damaged = std::fs::read(&ck).unwrap();
    let o = gpu_nn(&["train", "--resume", s(&out), "--epochs", "5", "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "a damaged checkpoint was resumed");
    let line = error_line(&o);
    assert!(line.contains(s(&ck)) && line.contains("checksum"), "{line}");
    assert_eq!(std::fs::read(&ck).unwrap(), damaged, "the refused resume rewrote the checkpoint");
}

#[test]
fn a_file_without_a_checksum_is_read_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let out = hand_run(dir.path());
    let (params, spec) = load_model(&out.join("model.safetensors")).unwrap();
    // the same tensors and architecture, written as another tool would: no checksum
    let ours = model_bytes(&params, &spec, FileDtype::F64).unwrap();
    let st = SafeTensors::deserialize(&ours).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView)> = st.tensors().into_iter().collect();
    let mut meta = std::collections::HashMap::new();
    meta.insert("architecture".to_string(), serde_json::to_string(&spec).unwrap());
    let other = dir.path().join("other.safetensors");
    std::fs::write(&other, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
    let (p2, _, checked) = read_model(&other).unwrap();
    assert_eq!(checked, Checked::NoChecksum);
    assert_eq!(p2, params);
    let o = gpu_nn(&["train", "--preset", "seed000-hand", "--backend", "cpu", "--precision", "f64", "--init-from", s(&other), "--init", "explicit", "--epochs", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("carries no checksum") && err.contains(s(&other)), "no note about the unverified file:\n{err}");
}

#[test]
fn identical_contents_give_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let a = hand_run(&dir.path().join("a"));
    let b = hand_run(&dir.path().join("b"));
    // separate processes (different HashMap orders) write the same model bytes
    assert_eq!(std::fs::read(a.join("model.safetensors")).unwrap(), std::fs::read(b.join("model.safetensors")).unwrap());
}
