//! The web page in a real browser: `gpu-nn serve` serves `web/` (its WebAssembly built by
//! `scripts/build-web.sh`) and MNIST, and headless Chromium (WebGPU on its built-in SwiftShader
//! adapter), driven by `web/test/browser-check.mjs` as a user would drive it, trains
//! seed000-hand to SEEDS.md's weights, one epoch of seed001 (with dropout and label smoothing set in the page's fields) to at least 95 %, passes the
//! parity check, classifies a digit drawn on the canvas, and downloads a model that
//! `gpu-nn eval` scores as the page did; without WebGPU it says so and does all of it on the
//! CPU backend in WebAssembly. The driver saves a screenshot of the page.

mod common;
use common::hand::EXACT;
use common::{command, s};

use std::path::{Path, PathBuf};
use std::process::Command;

use common::browser::{ROOT, chromium, serve, tools_or_skip};

/// Serves the page and MNIST, runs the driver with `env`, and checks what every run must show:
/// SEEDS.md's weights, seed001's accuracy on `engine`, parity, the drawn digit, the download.
/// Returns the driver's report.
fn check_page(name: &str, env: &[(&str, &str)], engine_prefix: &str) -> Option<serde_json::Value> {
    let data = common::mnist_dir_or_skip(name)?;
    if !tools_or_skip(name) {
        return None;
    }
    let (server, url) = serve(&["--data", s(&data)]);

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
