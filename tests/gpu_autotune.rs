//! Choosing the GPU's matmul kernels: tuned on first use and kept per (adapter, driver, shape
//! class), a kept choice never re-timed (so runs stay byte-identical), an unreadable cache
//! replaced, `--kernels NAME` forcing a choice and `--verbose` saying it, training that agrees
//! within f32 rounding whatever the kernels, and the workgroup-count limit checked when the
//! backend is built. In CI a missing adapter fails.

use gpu_nn::nn::backend::{Backend, Split};
use gpu_nn::core::config::{Config, preset_json};
use gpu_nn::gpu::tuning::{KernelChoice, cache_key, choose};
use gpu_nn::gpu::{Gpu, GpuBackend, KernelConfig};
mod common;
use common::{command, error_line, gpu_nn, in_ci, s};
use serde_json::{Value, json};

fn gpu_or_skip(test: &str) -> Option<Gpu> {
    common::drivers::watch_validation();
    match Gpu::new(None, true) {
        Ok(g) => Some(g),
        Err(e) if in_ci() => panic!("{test}: no GPU adapter in CI: {e:#}"),
        Err(e) => {
            eprintln!("SKIPPED {test}: no GPU adapter ({e:#})");
            None
        }
    }
}

fn seed001() -> Config {
    Config::from_layers(&[preset_json("seed001").unwrap()]).unwrap()
}

#[test]
fn a_tuned_choice_is_kept_reused_and_never_retimed() {
    let Some(gpu) = gpu_or_skip("autotune cache") else { return };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("sub").join("kernels.json");
    let cfg = seed001();
    let tuned = KernelChoice::Tuned { cache: Some(cache.clone()) };
    let first = choose(&gpu, &cfg.model, &cfg.optimizer, 64, &tuned).unwrap();
    assert!(first.how.starts_with("tuned now"), "{}", first.how);
    assert!(first.config.unsupported(&gpu.info, gpu.features, &gpu.limits).is_none());
    let key = cache_key(&gpu, &cfg.model, 64);
    let kept: Value = serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    assert_eq!(kept[&key]["kernels"], json!(first.name));
    // every supported candidate was timed
    let timed = kept[&key]["ms_per_step_products"].as_object().unwrap();
    for n in KernelConfig::NAMES {
        let supported = KernelConfig::named(n).unwrap().for_adapter(&gpu.info, gpu.features).unsupported(&gpu.info, gpu.features, &gpu.limits).is_none();
        assert_eq!(timed.contains_key(n), supported, "{n}");
    }

    // the same shape class (widths and batch within the same powers of two) reuses it
    let mut near = cfg.clone();
    near.model.layers = vec![784, 120, 60, 10];
    let again = choose(&gpu, &near.model, &near.optimizer, 50, &tuned).unwrap();
    assert_eq!(again.name, first.name);
    assert!(again.how.starts_with("tuned earlier"), "{}", again.how);

    // what the file keeps wins, even when timing would say otherwise: edit it to scalar
    let mut edited = kept.clone();
    edited[&key]["kernels"] = json!("scalar");
    std::fs::write(&cache, serde_json::to_string(&edited).unwrap()).unwrap();
    assert_eq!(choose(&gpu, &cfg.model, &cfg.optimizer, 64, &tuned).unwrap().name, "scalar");

    // an unreadable cache is tuned over and replaced by a valid one
    std::fs::write(&cache, "{ not json").unwrap();
    let fresh = choose(&gpu, &cfg.model, &cfg.optimizer, 64, &tuned).unwrap();
    assert!(fresh.how.starts_with("tuned now"), "{}", fresh.how);
    let replaced: Value = serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    assert_eq!(replaced[&key]["kernels"], json!(fresh.name));
}

#[test]
fn named_and_default_choices_and_their_errors() {
    let Some(gpu) = gpu_or_skip("named kernels") else { return };
    let cfg = seed001();
    let c = choose(&gpu, &cfg.model, &cfg.optimizer, 64, &KernelChoice::Named("tiled-64".parse().unwrap())).unwrap();
    assert_eq!((c.name.as_str(), c.config), ("tiled-64", KernelConfig::named("tiled-64").unwrap()));
    // an unknown name is refused where it is parsed: no choice can hold one
    let e = "tiled-7".parse::<gpu_nn::gpu::KernelName>().unwrap_err();
    assert!(format!("{e}").contains("unknown kernels 'tiled-7'"), "{e}");
    let d = choose(&gpu, &cfg.model, &cfg.optimizer, 64, &KernelChoice::Default).unwrap();
    assert!(d.how.contains("default"));
    // no layer with both widths multiples of 4: nothing to tune, nothing timed or kept
    let mut odd = cfg.clone();
    odd.model.layers = vec![784, 30, 10];
    odd.model.activations.truncate(2);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kernels.json");
    let n = choose(&gpu, &odd.model, &odd.optimizer, 20, &KernelChoice::Tuned { cache: Some(cache.clone()) }).unwrap();
    assert!(n.how.contains("no layer"), "{}", n.how);
    assert!(!cache.exists());
}

/// Twenty Adam steps of seed001 on MNIST with each kernel configuration end within f32
/// rounding of the scalar kernels' weights (the families differ only in the sign of zeros and
/// the order of the subgroup kernels' bias sums).
#[test]
fn training_agrees_whatever_the_kernels() {
    let Some(dir) = common::mnist_dir_or_skip("kernels agree") else { return };
    let Some(gpu) = gpu_or_skip("kernels agree") else { return };
    let mut cfg = seed001();
    cfg.data.dir = Some(dir);
    let data = gpu_nn::core::run_data::load(&cfg).unwrap();
    let order: Vec<u32> = (0..20 * 64).map(|i| (i * 7919 % 60000) as u32).collect();
    let params = cfg.initial_params().unwrap();
    let mut weights: Vec<(&str, Vec<f32>)> = Vec::new();
    for (name, config) in gpu_nn::workbench::matmul::variants(&gpu) {
        let mut b = GpuBackend::with_config(gpu.clone(), &cfg.model, &cfg.optimizer, 64, false, config).unwrap();
        b.set_params(&params).unwrap();
        b.attach(Split::Train, data.train.clone()).unwrap();
        b.train_steps(&order, 64, &[1e-3; 20]).unwrap();
        let p = b.params().unwrap();
        weights.push((name, p.layers.iter().flat_map(|l| l.weight.iter().chain(&l.bias).map(|&x| x as f32)).collect()));
    }
    assert!(weights.len() >= 5, "expected the scalar, plain and tiled kernels at least");
    let (_, want) = &weights[0];
    let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
    for (name, got) in &weights[1..] {
        let worst = got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(worst / scale <= 1e-4, "{name}: weights differ from the scalar kernels' by {worst} (scale {scale})");
    }
}

#[test]
fn verbose_says_which_kernels_and_why() {
    if gpu_or_skip("verbose kernels").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let o = gpu_nn(&["train", "--preset", "seed000-hand", "--backend", "gpu", "--kernels", "tiled-32", "--verbose", "--out", s(&tmp.path().join("r"))]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("kernels: tiled-32 (chosen with --kernels)"), "{err}");
    let o = gpu_nn(&["train", "--preset", "seed000-hand", "--backend", "gpu", "--out", s(&tmp.path().join("q"))]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("kernels:"), "only --verbose says it");
}

#[test]
fn bad_kernel_names_get_one_clear_line() {
    let o = gpu_nn(&["train", "--preset", "seed001", "--kernels", "fastest"]);
    assert!(!o.status.success());
    let line = error_line(&o);
    assert!(line.contains("unknown --kernels 'fastest'") && line.contains("tiled-64"), "{line}");
    let o = command(&["train", "--preset", "seed001", "--kernels"]).output().unwrap();
    assert!(error_line(&o).contains("--kernels needs a name"));
}

/// A device that allows fewer workgroups per dimension than a layer needs is refused when the
/// backend is built, with the layer and the limit named (the limit is lowered in our copy of
/// the device's limits; the check reads that).
#[test]
fn workgroup_counts_are_checked_against_the_limit_at_build_time() {
    let Some(mut gpu) = gpu_or_skip("workgroup limit") else { return };
    gpu.limits.max_compute_workgroups_per_dimension = 100;
    let mut cfg = seed001();
    cfg.model.layers = vec![784, 8000, 10];
    cfg.model.activations.truncate(2);
    let e = GpuBackend::with_config(gpu.clone(), &cfg.model, &cfg.optimizer, 64, false, KernelConfig::scalar()).err().expect("refused");
    let msg = format!("{e:#}");
    assert!(msg.contains("layer 1 (784→8000)") && msg.contains("allows 100"), "{msg}");
    cfg.model.layers = vec![784, 800, 10];
    assert!(GpuBackend::with_config(gpu, &cfg.model, &cfg.optimizer, 64, false, KernelConfig::scalar()).is_ok());
}

/// Every test above again on each GPU implementation the machine has (lavapipe, SwiftShader,
/// llvmpipe's OpenGL), each in a process of its own.
#[test]
fn on_every_driver() {
    common::drivers::rerun_on_every_driver("on_every_driver");
}
