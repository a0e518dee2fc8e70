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
        if !o.status.success() {
            failures.push(format!("--- driver {} ---\n{text}", d.name));
        }
    }
    assert!(failures.is_empty(), "the tests failed on a driver:\n{}", failures.join("\n"));
    assert!(digests.windows(2).all(|w| w[0].1 == w[1].1), "lavapipe gives other bytes on other thread counts: {digests:?}");
}
