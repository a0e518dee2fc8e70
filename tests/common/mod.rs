//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// Where the real MNIST files live (the shared dataset directory beside the project).
pub const MNIST_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/datasets/mnist");

/// True when the environment says we run in CI (`CI` set to anything but "", "0" or "false").
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The real MNIST directory, or `None` (with the reason printed) when it is absent.
/// In CI a missing dataset is a failure, not a skip: a silently skipped test proves nothing.
pub fn mnist_dir_or_skip(test: &str) -> Option<PathBuf> {
    dataset_dir_or_skip(PathBuf::from(MNIST_DIR), in_ci(), test)
}

/// `dir` if it exists; else a panic when `ci`, or `None` with the skip reason printed.
pub fn dataset_dir_or_skip(dir: PathBuf, ci: bool, test: &str) -> Option<PathBuf> {
    if dir.is_dir() {
        return Some(dir);
    }
    if ci {
        panic!("{test}: real MNIST directory {} is missing and CI is set; the test cannot be skipped in CI", dir.display());
    }
    eprintln!("SKIPPED {test}: real MNIST directory {} is missing (set it up, or run with CI=true to make this a failure)", dir.display());
    None
}

/// |a − b| ≤ tol for every element, with a message naming the first offending element.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length {} vs expected {}", got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: got {g:e}, expected {w:e} (|diff| = {:e} > {tol:e})",
            (g - w).abs()
        );
    }
}

/// A named tensor of a step trace.
pub fn tensor<'a>(trace: &'a gpu_nn::backend::StepTrace, name: &str) -> &'a [f64] {
    trace
        .tensors
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
        .unwrap_or_else(|| panic!("trace has no tensor '{name}'"))
}
