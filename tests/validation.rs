//! The Vulkan validation layers on (wgpu's `WGPU_VALIDATION`, the Khronos layer) for a training
//! run, parity, `bench` and `bench --kernels`, on each Vulkan driver (lavapipe, SwiftShader):
//! every message of the layers reaches stderr (`wgpu ERROR: …`), and none may be an error. The
//! layer is the build Chromium ships (Debian's `vulkan-validationlayers` 1.3.239 predates
//! SPIR-V's WGSL source language and reports every shader as invalid for it), loaded through a
//! manifest made here; the loader's own report (`VK_LOADER_DEBUG=layer`) shows that it ran.

mod common;
use common::drivers::{VALIDATION_LAYER as LAYER, drivers, validation_layer_dir};
use common::{command, in_ci, s};
use std::path::Path;

#[test]
fn no_validation_errors_on_any_vulkan_driver() {
    let Some(mnist) = common::mnist_dir_or_skip("validation") else { return };
    if !Path::new(LAYER).is_file() {
        assert!(!in_ci(), "{LAYER} is missing in CI (apt-get install chromium)");
        return eprintln!("SKIPPED validation: no validation layer at {LAYER}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let layers = validation_layer_dir(tmp.path());
    let data = s(&mnist);
    let runs: [(&str, Vec<&str>); 4] = [
        ("train", vec!["train", "--preset", "seed001", "--backend", "gpu", "--data", data, "--epochs", "1", "--max-steps", "40", "--quiet"]),
        ("parity", vec!["parity", "--preset", "seed001", "--data", data, "--steps", "3"]),
        ("bench", vec!["bench", "--preset", "seed001", "--data", data, "--steps", "8", "--repeats", "1"]),
        ("bench --kernels", vec!["bench", "--kernels", "--sizes", "64"]),
    ];
    for d in drivers() {
        let d = match d {
            Ok(d) if d.env.iter().any(|(k, _)| *k == "VK_ICD_FILENAMES") => d,
            Ok(_) => continue, // OpenGL has no Vulkan layers
            Err(why) if in_ci() => panic!("a Vulkan driver is missing in CI: {why}"),
            Err(why) => {
                eprintln!("SKIPPED driver {why}");
                continue;
            }
        };
        for (what, args) in &runs {
            let mut c = command(args);
            c.env("WGPU_VALIDATION", "1").env("VK_LAYER_PATH", &layers).env("VK_LOADER_DEBUG", "layer");
            for (k, v) in &d.env {
                c.env(k, v);
            }
            let o = c.output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "[{}] {what}: {err}", d.name);
            assert!(err.contains("VK_LAYER_KHRONOS_validation") && err.contains(LAYER), "[{}] {what}: the validation layer was not inserted:\n{err}", d.name);
            let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("wgpu ERROR")).collect();
            assert!(errors.is_empty(), "[{}] {what}: {} validation errors:\n{}", d.name, errors.len(), errors.join("\n"));
            eprintln!("[{}] {what}: validation on, no errors", d.name);
        }
    }
}
