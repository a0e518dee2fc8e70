//! The web page in a real browser: `gpu-nn serve` serves `web/` (its WebAssembly built by
//! `scripts/build-web.sh`) and MNIST, and headless Chromium (WebGPU on its built-in SwiftShader
//! adapter), driven by `web/test/browser-check.mjs` as a user would drive it, trains
//! seed000-hand to SEEDS.md's weights, one epoch of seed001 to at least 95 %, passes the
//! parity check, classifies a digit drawn on the canvas, and downloads a model that
//! `gpu-nn eval` scores as the page did; without WebGPU it says so and does all of it on the
//! CPU backend in WebAssembly. The driver saves a screenshot of the page.

mod common;
use common::hand::EXACT;
use common::{command, s};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `gpu-nn serve`, stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the browser test needs besides the data, each with how to get it.
fn missing_tools() -> Vec<String> {
    let mut missing = Vec::new();
    if !Path::new(ROOT).join("web/pkg/gpu_nn_bg.wasm").is_file() {
        missing.push("web/pkg (run scripts/build-web.sh)".to_string());
    }
    if !Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success()) {
        missing.push("node".into());
    }
    if !Path::new(ROOT).join("web/test/node_modules/playwright-core").is_dir() {
        missing.push("web/test/node_modules (npm ci --prefix web/test)".into());
    }
    if !Path::new(&chromium()).is_file() {
        missing.push("chromium (apt-get install chromium)".into());
    }
    missing
}

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Serves the page and MNIST, runs the driver with `env`, and checks what every run must show:
/// SEEDS.md's weights, seed001's accuracy on `engine`, parity, the drawn digit, the download.
/// Returns the driver's report.
fn check_page(name: &str, env: &[(&str, &str)], engine_prefix: &str) -> Option<serde_json::Value> {
    let data = common::mnist_dir_or_skip(name)?;
    let missing = missing_tools();
    if !missing.is_empty() {
        assert!(!common::in_ci(), "the browser test lacks in CI: {}", missing.join(", "));
        eprintln!("SKIPPED {name}: missing {}", missing.join(", "));
        return None;
    }
    let web = format!("{ROOT}/web");
    let mut child = command(&["serve", "--port", "0", "--quiet", "--data", s(&data), "--web", &web]).stdout(Stdio::piped()).spawn().expect("gpu-nn serve starts");
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let url = first.split_whitespace().nth(1).unwrap_or_else(|| panic!("no address in '{first}'")).to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{first}");

    let out: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let o = Command::new("node")
        .args([&format!("{ROOT}/web/test/browser-check.mjs"), &url, s(&out)])
        .env("CHROMIUM", chromium())
        .envs(env.iter().copied())
        .output()
        .expect("node runs");
    drop(server);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "the browser check failed:\n{stderr}");
    let text = String::from_utf8_lossy(&o.stdout);
    let last = text.lines().last().unwrap_or("");
    let r: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("the driver's last line is not JSON ({e}): {last}\n{stderr}"));
    eprintln!("{r:#}");

    // seed000-hand after its 3 epochs: SEEDS.md's weights
    let got: Vec<f64> = r["hand_weights"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(got.len(), 12);
    for (i, (g, w)) in got.iter().zip(&EXACT[2]).enumerate() {
        assert!((g - w).abs() <= 1e-6, "w{} after epoch 3: {g} in the page vs SEEDS.md {w}", i + 1);
    }
    // seed001, one epoch on the engine asked for
    let acc = r["seed001"]["test_acc"].as_f64().unwrap();
    assert!(acc >= 0.95, "seed001 after one epoch in the page: {acc}");
    assert!(r["seed001"]["engine"].as_str().unwrap().starts_with(engine_prefix), "{}", r["seed001"]["engine"]);
    // the parity check passed, on every tensor
    assert_eq!(r["parity"]["passed"], true, "{}", r["parity"]);
    assert!(r["parity"]["tensors"].as_array().is_some_and(|t| t.len() >= 6), "{}", r["parity"]);
    // the drawn digit
    assert_eq!(r["drawn"]["class"], r["drawn"]["expected"], "the drawn digit: {}", r["drawn"]);
    // the downloaded model scores in the CLI as in the page (the same f32 weights; the CPU's
    // rounding may flip a sample whose two best classes tie to the last bit)
    let model = r["model"].as_str().unwrap();
    let o = command(&["eval", "--model", model, "--data", s(&data), "--backend", "cpu", "--json", "--out", s(&out)]).output().unwrap();
    assert!(o.status.success(), "eval: {}", String::from_utf8_lossy(&o.stderr));
    let ev: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let page = r["page_test_acc"].as_f64().unwrap();
    let cli = ev["accuracy"].as_f64().unwrap();
    assert!((cli - page).abs() <= 2e-4, "gpu-nn eval: {cli}, the page: {page}");
    assert!(Path::new(r["screenshot"].as_str().unwrap()).is_file());
    Some(r)
}

#[test]
fn the_page_trains_checks_classifies_and_downloads_on_webgpu_in_headless_chromium() {
    let Some(r) = check_page("web-page-webgpu", &[], "gpu:") else { return };
    // WebGPU was there (SwiftShader here), named, and it trained
    assert!(r["webgpu"]["name"].as_str().is_some_and(|n| !n.is_empty()), "no named WebGPU adapter in the page: {}", r["webgpu"]);
    assert_eq!(r["engine"], "webgpu");
}

#[test]
fn without_webgpu_the_page_says_so_and_trains_on_the_cpu_in_webassembly() {
    let Some(r) = check_page("web-page-cpu", &[("GPU_NN_BROWSER_WEBGPU", "off")], "cpu f32 (WebAssembly") else { return };
    assert!(r["webgpu"].is_null(), "{}", r["webgpu"]);
    let note = r["adapter_note"].as_str().unwrap();
    assert!(note.contains("WebGPU is not available") && note.contains("CPU"), "the page's note: {note}");
}
