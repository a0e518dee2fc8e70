//! One parity with one verdict: the web page's parity entry point (`PageSession::parity`, what
//! the page's button runs) and the command line's (`commands::parity::parity_of`, what
//! `gpu-nn parity` runs) on the same state give the same tensors, to the last bit, and the same
//! verdict. The state: seed001 with a cosine schedule (a learning rate that changes every step)
//! from its initial weights, its data read as the page reads it (IDX bytes) and as the CLI does
//! (files), on the same adapter with the same kernels. In CI a missing adapter or MNIST fails.

use gpu_nn::commands::parity::parity_of;
use gpu_nn::core::config::{Config, preset_json};
use gpu_nn::core::{Plan, Settings};
use gpu_nn::data::sources::FILES;
use gpu_nn::gpu::Gpu;
use gpu_nn::web::{PageEngine, PageSession};
use serde_json::json;
mod common;

#[test]
fn the_page_and_the_command_line_run_one_parity() {
    let Some(dir) = common::mnist_dir_or_skip("page and CLI parity") else { return };
    let gpu = match Gpu::new(None, true) {
        Ok(g) => g,
        Err(e) if common::in_ci() => panic!("page and CLI parity: no GPU adapter in CI: {e:#}"),
        Err(e) => return eprintln!("SKIPPED page and CLI parity: no GPU adapter ({e:#})"),
    };
    let files: [Vec<u8>; 4] = FILES.map(|f| {
        let gz = dir.join(format!("{f}.gz"));
        std::fs::read(if gz.is_file() { gz } else { dir.join(f) }).unwrap()
    });
    let overrides = json!({"optimizer": {"schedule": "cosine"}, "backend": {"kernels": "plain"}, "training": {"epochs": 2}});
    let steps = 4;

    let mut page = PageSession::create("seed001", PageEngine::WebGpu(gpu), Some(&files), &overrides.to_string()).unwrap();
    let from_page = pollster::block_on(page.parity(steps)).unwrap();

    let cfg = Config::from_layers(&[preset_json("seed001").unwrap(), overrides, json!({"data": {"dir": dir}})]).unwrap();
    let plan = Plan::load(cfg, &Default::default(), true).unwrap();
    let from_cli = parity_of(plan, &Settings::default(), steps, true).unwrap();

    let names = |r: &gpu_nn::core::parity::ParityReport| r.tensors.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&from_page), names(&from_cli));
    assert!(from_cli.tensors.len() >= 20, "every layer's activations, deltas, gradients, weights and Adam's two moments");
    for (p, c) in from_page.tensors.iter().zip(&from_cli.tensors) {
        assert_eq!((p.max_abs.to_bits(), p.max_rel.to_bits(), p.step), (c.max_abs.to_bits(), c.max_rel.to_bits(), c.step), "{}: page {p:?}, cli {c:?}", p.name);
    }
    assert_eq!((from_page.steps, from_page.resync, from_page.tolerance), (from_cli.steps, from_cli.resync, from_cli.tolerance));
    assert_eq!(from_page.passed(), from_cli.passed());
    assert!(from_cli.passed(), "worst {:e}", from_cli.worst());
    // the page's session goes on from where it stood: the parity left its weights alone
    let before = pollster::block_on(page.params()).unwrap();
    pollster::block_on(page.parity(1)).unwrap();
    assert_eq!(pollster::block_on(page.params()).unwrap(), before);
}
