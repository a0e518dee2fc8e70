//! The GPU implementations the GPU tests run on: Mesa's lavapipe (Vulkan), SwiftShader (Vulkan,
//! the ICD Chromium ships) and llvmpipe's OpenGL (wgpu's GL backend). Each is chosen for a
//! process by its environment (`VK_ICD_FILENAMES`, `WGPU_BACKEND`), read when the process
//! creates its first instance, so a test file runs its tests again in a child process per
//! driver (`rerun_on_every_driver`), each named in the output.

use super::in_ci;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Set in a child process: the driver it runs on.
pub const DRIVER_VAR: &str = "GPU_NN_TEST_DRIVER";

/// The Khronos validation layer Chromium ships (Debian's `vulkan-validationlayers` 1.3.239
/// predates SPIR-V's WGSL source language and flags every shader for it).
pub const VALIDATION_LAYER: &str = "/usr/lib/chromium/libVkLayer_khronos_validation.so";

/// A folder holding a manifest of `VALIDATION_LAYER`, for `VK_LAYER_PATH`.
pub fn validation_layer_dir(dir: &Path) -> PathBuf {
    let manifest = serde_json::json!({
        "file_format_version": "1.2.0",
        "layer": {"name": "VK_LAYER_KHRONOS_validation", "type": "GLOBAL", "library_path": VALIDATION_LAYER, "api_version": "1.4.0", "implementation_version": "1", "description": "Khronos validation (Chromium's build)"}
    });
    std::fs::write(dir.join("VkLayer_khronos_validation.json"), manifest.to_string()).unwrap();
    dir.to_path_buf()
}

/// In a child of `rerun_on_every_driver` with validation on: wgpu's and the layer's warnings
/// and errors reach stderr (`wgpu ERROR: …`), where the parent counts them. The tests' helpers
/// that open an adapter call this first; elsewhere it does nothing.
pub fn watch_validation() {
    if current().is_some() && std::env::var_os("WGPU_VALIDATION").is_some() {
        gpu_nn::gpu::context::print_wgpu_messages();
    }
}

pub struct Driver {
    pub name: &'static str,
    /// The environment that selects it.
    pub env: Vec<(&'static str, String)>,
}

/// The first of `candidates` that exists.
fn first(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Mesa's lavapipe ICD file.
fn lavapipe_icd() -> Option<PathBuf> {
    let dir = Path::new("/usr/share/vulkan/icd.d");
    std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("lvp_icd")))
}

/// SwiftShader's ICD file, as Debian's `chromium` installs it.
fn swiftshader_icd() -> Option<PathBuf> {
    first(&["/usr/lib/chromium/vk_swiftshader_icd.json", "/usr/lib64/chromium/vk_swiftshader_icd.json", "/usr/lib/chromium-browser/vk_swiftshader_icd.json"])
}

/// Every driver the tests run on, or why one is missing.
pub fn drivers() -> Vec<Result<Driver, String>> {
    let vulkan = |name: &'static str, icd: Option<PathBuf>, how: &str| match icd {
        Some(p) => Ok(Driver { name, env: vec![("VK_ICD_FILENAMES", p.display().to_string()), ("WGPU_BACKEND", "vulkan".into())] }),
        None => Err(format!("{name}: no ICD file ({how})")),
    };
    // lavapipe again on one thread and on five: another scheduling of the same invocations,
    // which a race would show as other bytes (`determinism digest` in the reports)
    let lavapipe_on = |name: &'static str, threads: &str| {
        vulkan(name, lavapipe_icd(), "apt-get install mesa-vulkan-drivers libvulkan1").map(|mut d| {
            d.env.push(("LP_NUM_THREADS", threads.to_string()));
            d
        })
    };
    vec![
        vulkan("lavapipe", lavapipe_icd(), "apt-get install mesa-vulkan-drivers libvulkan1"),
        lavapipe_on("lavapipe-1-thread", "1"),
        lavapipe_on("lavapipe-5-threads", "5"),
        vulkan("swiftshader", swiftshader_icd(), "apt-get install chromium"),
        Ok(Driver { name: "gl", env: vec![("WGPU_BACKEND", "gl".into())] }),
    ]
}

/// The driver this process runs on, when it is a child of `rerun_on_every_driver`.
pub fn current() -> Option<String> {
    std::env::var(DRIVER_VAR).ok()
}

/// Runs this test binary's tests (all but `this_test`) in a child process per driver and
/// reports each: the driver, the adapter its tests saw (the lines a test printed starting with
/// `driver report:`), and the count of tests passed. Any failure fails this test; so does a
/// missing driver under CI (elsewhere it is a printed skip). In a child it does nothing.
pub fn rerun_on_every_driver(this_test: &str) {
    if current().is_some() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut failures = Vec::new();
    // the Vulkan drivers run with the validation layer on
    let layers = tempfile::tempdir().unwrap();
    let have_layer = Path::new(VALIDATION_LAYER).is_file();
    assert!(have_layer || !in_ci(), "{VALIDATION_LAYER} is missing in CI (apt-get install chromium)");
    let layer_dir = validation_layer_dir(layers.path());
    // the determinism digest each lavapipe run reported
    let mut digests: Vec<(&'static str, String)> = Vec::new();
    for d in drivers() {
        let d = match d {
            Ok(d) => d,
            Err(why) if in_ci() => panic!("a GPU driver the tests must run on is missing in CI: {why}"),
            Err(why) => {
                eprintln!("SKIPPED driver {why}");
                continue;
            }
        };
        let mut c = Command::new(&exe);
        c.args(["--skip", this_test, "--test-threads", "2", "--nocapture"]).env(DRIVER_VAR, d.name).env_remove("VK_ICD_FILENAMES");
        for (k, v) in &d.env {
            c.env(k, v);
        }
        let validated = have_layer && d.env.iter().any(|(k, _)| *k == "VK_ICD_FILENAMES");
        if validated {
            // the loader's own report of the layers it inserts shows that the layer ran
            c.env("WGPU_VALIDATION", "1").env("VK_LAYER_PATH", &layer_dir).env("VK_LOADER_DEBUG", "layer");
        }
        let o = c.output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        let result = text.lines().rfind(|l| l.starts_with("test result:")).unwrap_or("no test result").to_string();
        for l in text.lines().filter(|l| l.starts_with("driver report:")) {
            eprintln!("[{}] {l}", d.name);
            if let Some((_, digest)) = l.split_once("determinism digest ").filter(|_| d.name.starts_with("lavapipe")) {
                digests.push((d.name, digest.trim().to_string()));
            }
        }
        eprintln!("[{}] {result}", d.name);
        let errors = text.lines().filter(|l| l.starts_with("wgpu ERROR")).count();
        let inserted = text.contains("VK_LAYER_KHRONOS_validation") && text.contains(VALIDATION_LAYER);
        if validated {
            eprintln!("[{}] validation layer {}: {errors} errors", d.name, if inserted { "on" } else { "NOT INSERTED" });
        }
        if !o.status.success() || errors > 0 || (validated && !inserted) {
            failures.push(format!("--- driver {} ---\n{text}", d.name));
        }
    }
    assert!(failures.is_empty(), "the tests failed on a driver:\n{}", failures.join("\n"));
    assert!(digests.windows(2).all(|w| w[0].1 == w[1].1), "lavapipe gives other bytes on other thread counts: {digests:?}");
}
