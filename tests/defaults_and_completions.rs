//! Defaults a newcomer does not have to spell out: `--layers` alone gets ReLU hidden layers and
//! the output its loss implies (printed in the first line, stored in config.json), a preset's
//! own activations stay where they fit; `--backend auto` does not pick a CPU-emulated adapter;
//! shell completions come from the parser's own definitions.

use gpu_nn::nn::model::{Activation, Loss, ModelSpec};
mod common;
use common::{command, gpu_nn, mnist_dir_or_skip, s};
use serde_json::Value;

#[test]
fn default_activations_follow_the_loss() {
    use Activation::*;
    let l = [784, 64, 32, 10];
    assert_eq!(ModelSpec::default_activations(&l, Loss::CrossEntropy), [Relu, Relu, Softmax]);
    assert_eq!(ModelSpec::default_activations(&l, Loss::BinaryCrossEntropy), [Relu, Relu, Sigmoid]);
    assert_eq!(ModelSpec::default_activations(&l, Loss::Sse), [Relu, Relu, Identity]);
    assert_eq!(ModelSpec::default_activations(&[4, 1], Loss::HalfSse), [Identity]);
}

/// Trains one step with `args` and returns (stdout, config.json).
fn one_step(dir: &std::path::Path, out: &std::path::Path, args: &[&str]) -> (String, Value) {
    let mut all = vec!["train", "--max-steps", "1", "--epochs", "1", "--backend", "cpu", "--data", s(dir), "--out", s(out)];
    all.extend_from_slice(args);
    let o = gpu_nn(&all);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    let cfg: Value = serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    (String::from_utf8_lossy(&o.stdout).into_owned(), cfg)
}

#[test]
fn layers_alone_get_default_activations_printed_and_stored() {
    let Some(dir) = mnist_dir_or_skip("default activations") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (out, cfg) = one_step(&dir, &tmp.path().join("a"), &["--layers", "784,256,10"]);
    assert!(out.lines().next().unwrap().starts_with("training 784-256-10 (relu, softmax; cross_entropy)"), "{out}");
    assert_eq!(cfg["model"]["activations"], serde_json::json!(["relu", "softmax"]));
    let (out, cfg) = one_step(&dir, &tmp.path().join("b"), &["--layers", "784,32,16,10", "--loss", "sse"]);
    assert!(out.contains("(relu, relu, identity; sse)"), "{out}");
    assert_eq!(cfg["model"]["activations"], serde_json::json!(["relu", "relu", "identity"]));
    // a preset's activations stay where they fit its depth: doc 000's sigmoids
    let (out, cfg) = one_step(&dir, &tmp.path().join("c"), &["--preset", "seed000-mnist", "--layers", "784,100,10"]);
    assert!(out.contains("(sigmoid, sigmoid;"), "{out}");
    assert_eq!(cfg["model"]["activations"], serde_json::json!(["sigmoid", "sigmoid"]));
    // explicit activations are still checked against the layers
    let o = gpu_nn(&["train", "--layers", "784,256,10", "--activation", "relu", "--data", s(&dir)]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--activation lists 1 name(s)"));
}

/// With only CPU-emulated adapters (lavapipe in CI), `auto` trains on the CPU and says how to
/// force the GPU; with a hardware adapter it takes the GPU.
#[test]
fn auto_does_not_pick_an_emulated_adapter() {
    let Some(dir) = mnist_dir_or_skip("auto backend") else { return };
    let adapters = gpu_nn::gpu::list_adapters(&gpu_nn::gpu::context::instance());
    let emulated_only = !adapters.is_empty() && adapters.iter().all(|a| a.is_software());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("r");
    let o = gpu_nn(&["train", "--preset", "seed001", "--max-steps", "1", "--epochs", "1", "--data", s(&dir), "--out", s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let first = stdout.lines().next().unwrap();
    if emulated_only {
        assert!(first.contains("with cpu"), "{first}");
        assert!(stderr.contains("CPU-emulated") && stderr.contains("--backend gpu"), "{stderr}");
    } else if !adapters.is_empty() {
        assert!(first.contains("with gpu"), "{first}");
    }
    // and --backend gpu still takes the emulated adapter
    if emulated_only {
        let o = gpu_nn(&["train", "--preset", "seed001", "--backend", "gpu", "--max-steps", "1", "--epochs", "1", "--data", s(&dir), "--out", s(&tmp.path().join("g"))]);
        assert!(String::from_utf8_lossy(&o.stdout).lines().next().unwrap().contains("with gpu"));
    }
}

#[test]
fn completions_for_each_shell() {
    for (shell, mark) in [("bash", "complete -F _gpu__nn"), ("zsh", "#compdef gpu-nn"), ("fish", "complete -c gpu-nn")] {
        let o = command(&["completions", shell]).output().unwrap();
        assert!(o.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains(mark), "{shell}: no '{mark}'");
        assert!(text.contains("kernels") && text.contains("sweep"), "{shell}: subcommands and flags missing");
    }
    let o = command(&["completions", "tcsh"]).output().unwrap();
    assert!(!o.status.success());
}
