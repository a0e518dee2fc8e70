//! Faults outside the data: no adapter, a kernel that does not compile, a model over the
//! device's limits, a full or read-only output disk. Each must end in one clear line, never a
//! panic. GPU tests fail in CI (CI set) when no adapter is found.

mod common;
use common::in_ci;
use std::path::Path;
use std::process::Command;

/// MNIST, found as the CLI finds it (`common::mnist_dir_or_skip`); where it cannot be found, the
/// shared path, which the tests below then find missing.
static MNIST_DIR: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    common::mnist_dir_or_skip("faults").unwrap_or_else(|| std::path::PathBuf::from(common::MNIST_DIR)).display().to_string()
});


fn gpu_or_skip(test: &str) -> Option<gpu_nn::gpu::Gpu> {
    match gpu_nn::gpu::Gpu::new(None, true) {
        Ok(g) => Some(g),
        Err(e) if in_ci() => panic!("{test}: no GPU adapter in CI: {e:#}"),
        Err(e) => {
            eprintln!("SKIPPED {test}: no GPU adapter ({e:#})");
            None
        }
    }
}

/// Runs the binary as every test does (`common::command`) with `env` on top; returns (status,
/// stdout, stderr).
fn gpu_nn(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = common::command(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into())
}

fn one_error_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "expected exactly one error line, got:\n{stderr}");
    assert!(!stderr.contains("panicked"), "panic:\n{stderr}");
    lines[0]
}

#[test]
fn no_adapter_says_how_to_get_one_and_that_the_cpu_works() {
    // DX12 does not exist on Linux: wgpu finds no adapter for it
    if !cfg!(target_os = "linux") {
        return;
    }
    let (code, _, err) = gpu_nn(&["train", "--preset", "seed000-hand", "--backend", "gpu", "--epochs", "1"], &[("WGPU_BACKEND", "dx12")]);
    assert_eq!(code, 2);
    let line = one_error_line(&err);
    assert!(line.contains("no GPU adapter found"), "{line}");
    assert!(line.contains("mesa-vulkan-drivers") && line.contains("--backend cpu"), "{line}");
    // `auto` falls back to the CPU with a note instead
    let (code, out, err) = gpu_nn(&["train", "--preset", "seed000-hand", "--epochs", "1"], &[("WGPU_BACKEND", "dx12")]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("training on the CPU") && out.contains("cpu f32"), "{err}\n{out}");
}

#[test]
fn a_kernel_that_does_not_compile_is_an_error_not_a_panic() {
    let Some(gpu) = gpu_or_skip("a_kernel_that_does_not_compile") else { return };
    let broken = "@compute @workgroup_size(1) fn broken() { let x: f32 = undefined_thing; }";
    let e = gpu_nn::gpu::kernels::kernel(&gpu, broken, "broken", 16, &[], gpu_nn::gpu::kernels::ParamBlocks::Uniform);
    let msg = format!("{:#}", e.err().expect("a broken shader must not compile"));
    assert!(msg.contains("compiling kernel 'broken'"), "{msg}");
    // and the device still works afterwards
    gpu.check("after the failed compile").unwrap();
}

#[test]
fn a_model_over_the_device_limits_names_the_limit_and_the_size() {
    let Some(gpu) = gpu_or_skip("a_model_over_the_device_limits") else { return };
    let max = gpu.limits.max_storage_buffer_binding_size as u64;
    // one weight matrix larger than a storage binding
    let wide = (max / 4 / 784 + 1) as usize;
    let (code, _, err) = gpu_nn(
        &["train", "--backend", "gpu", "--data", MNIST_DIR.as_str(), "--layers", &format!("784,{wide},10"), "--activation", "relu,softmax", "--epochs", "1"],
        &[],
    );
    if !Path::new(MNIST_DIR.as_str()).is_dir() {
        assert!(!in_ci(), "{} missing in CI", MNIST_DIR.as_str());
        return;
    }
    assert_eq!(code, 2, "{err}");
    let line = one_error_line(&err);
    assert!(line.contains("max_storage_buffer_binding_size") && line.contains("parameters"), "{line}");
}

/// Mounts a small tmpfs (root only); None with a printed reason where that is not possible.
fn tmpfs(size: &str, read_only: bool) -> Option<tempfile::TempDir> {
    let dir = tempfile::tempdir().unwrap();
    let opts = if read_only { format!("size={size},ro") } else { format!("size={size}") };
    let ok = Command::new("mount").args(["-t", "tmpfs", "-o", &opts, "tmpfs"]).arg(dir.path()).status().is_ok_and(|s| s.success());
    if !ok {
        assert!(!in_ci(), "cannot mount a tmpfs (needs root) and CI is set: the disk tests must run in CI");
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return None;
    }
    Some(dir)
}

fn unmount(dir: &tempfile::TempDir) {
    let _ = Command::new("umount").arg(dir.path()).status();
}

#[test]
fn a_full_or_read_only_disk_is_reported_before_training() {
    if !Path::new(MNIST_DIR.as_str()).is_dir() {
        assert!(!in_ci(), "{} missing in CI", MNIST_DIR.as_str());
        return;
    }
    if let Some(d) = tmpfs("256k", false) {
        let out = d.path().join("run");
        let (code, _, err) = gpu_nn(&["train", "--preset", "seed001", "--backend", "cpu", "--data", MNIST_DIR.as_str(), "--out", out.to_str().unwrap()], &[]);
        unmount(&d);
        assert_eq!(code, 2, "{err}");
        let line = one_error_line(&err);
        assert!(line.contains("free on its file system") && line.contains("KiB"), "{line}");
        assert!(!err.contains("epoch"), "no training may start: {err}");
    }
    if let Some(d) = tmpfs("1m", true) {
        let out = d.path().join("run");
        let (code, _, err) = gpu_nn(&["train", "--preset", "seed000-hand", "--backend", "cpu", "--out", out.to_str().unwrap()], &[]);
        unmount(&d);
        assert_eq!(code, 2, "{err}");
        let line = one_error_line(&err);
        assert!(line.contains("--out") && line.contains("cannot create the directory"), "{line}");
    }
}

/// A device lost mid-run (the testing aid destroys it after step 350, in epoch 2): the run stops
/// with one line naming the loss and the last good checkpoint, which still resumes.
#[test]
fn a_device_lost_mid_run_keeps_the_last_checkpoint() {
    assert!(cfg!(feature = "test-aids"), "the device-loss aid needs the test-aids feature: run the README's test command, cargo test --release --features test-aids");
    if gpu_or_skip("a_device_lost_mid_run").is_none() || !Path::new(MNIST_DIR.as_str()).is_dir() {
        assert!(!in_ci() || Path::new(MNIST_DIR.as_str()).is_dir(), "{} missing in CI", MNIST_DIR.as_str());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_s = out.to_str().unwrap();
    let args = ["train", "--preset", "seed000-mnist", "--backend", "gpu", "--data", MNIST_DIR.as_str(), "--batch-size", "200", "--epochs", "3", "--max-steps", "600", "--quiet", "--out", out_s];
    let (code, _, err) = gpu_nn(&args, &[("GPU_NN_TEST_LOSE_DEVICE_AT_STEP", "350")]);
    assert_eq!(code, 2, "{err}");
    let line = one_error_line(&err);
    assert!(line.contains("device lost") && line.contains("last good checkpoint (end of epoch 1)"), "{line}");
    let before = std::fs::read(out.join("checkpoint.safetensors")).unwrap();
    let (code, _, err) = gpu_nn(&["train", "--resume", out_s, "--quiet"], &[]);
    assert_eq!(code, 0, "resuming after the loss: {err}");
    assert_ne!(before, std::fs::read(out.join("checkpoint.safetensors")).unwrap(), "the resumed run wrote newer checkpoints");
    let rows = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(rows.lines().count(), 3, "header and epochs 1-2:\n{rows}");
}

#[test]
fn a_learning_rate_that_is_not_finite_is_refused_before_any_work() {
    for v in ["nan", "inf"] {
        let (code, out, err) = gpu_nn(&["train", "--backend", "cpu", "--data", "/nonexistent", "--lr", v], &[]);
        assert_eq!(code, 2, "{err}");
        let line = one_error_line(&err);
        assert!(line.contains("--lr must be a finite number"), "{line}");
        assert!(out.is_empty() && !err.contains("not found"), "refused before the data is looked at: {out}{err}");
    }
}

/// An unreadable data directory. Root reads everything, so the binary runs as `nobody`
/// (util-linux's setpriv); skipped with a reason where that is not possible.
#[test]
fn an_unreadable_data_directory_is_named() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o000)).unwrap();
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_gpu-nn"), "train", "--backend", "cpu", "--data"])
        .arg(&data)
        .env("GPU_NN_OFFLINE", "1")
        .output();
    let Ok(o) = o else {
        assert!(!in_ci(), "setpriv is not available and CI is set: this test must run in CI (util-linux)");
        eprintln!("SKIPPED an_unreadable_data_directory_is_named: setpriv is not available");
        return;
    };
    let err = String::from_utf8_lossy(&o.stderr);
    if err.contains("setpriv:") {
        assert!(!in_ci(), "cannot switch to an unprivileged user and CI is set: {}", err.trim());
        eprintln!("SKIPPED an_unreadable_data_directory_is_named: cannot switch to an unprivileged user ({})", err.trim());
        return;
    }
    assert_eq!(o.status.code(), Some(2), "{err}");
    let line = one_error_line(&err);
    assert!(line.contains("cannot read the data directory") && line.contains(data.to_str().unwrap()) && line.contains("Permission denied"), "{line}");
}
