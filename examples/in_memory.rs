//! A dataset made in the program, no files: points of the plane labelled by whether they lie
//! inside the unit circle, learnt by a 2-16-16-2 network on the CPU, evaluated on points it
//! never saw, then asked about two points of its own.
//!
//!     cargo run --release --example in_memory

use gpu_nn::core::config::Config;
use gpu_nn::core::run_data::RunData;
use gpu_nn::core::train::Silent;
use gpu_nn::core::{Engines, Plan, Session, Settings};
use gpu_nn::data::Dataset;
use gpu_nn::nn::backend::Split;

/// `n` points of [-1.5, 1.5]², a seeded linear congruential stream, and their labels.
fn points(n: usize, seed: u64) -> (Vec<f64>, Vec<u8>) {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        3.0 * ((state >> 11) as f64 / (1u64 << 53) as f64) - 1.5
    };
    let xy: Vec<f64> = (0..2 * n).map(|_| next()).collect();
    let labels = xy.chunks(2).map(|p| (p[0] * p[0] + p[1] * p[1] < 1.0) as u8).collect();
    (xy, labels)
}

fn main() -> anyhow::Result<()> {
    let (x, y) = points(4000, 1);
    let (tx, ty) = points(1000, 2);
    let data = RunData::new(Dataset::from_rows("train points", x, 2, y, 2)?, Some(Dataset::from_rows("test points", tx, 2, ty, 2)?));
    let cfg = Config::from_layers(&[serde_json::json!({
        "description": "inside or outside the unit circle",
        "model": {"layers": [2, 16, 16, 2], "activations": ["tanh", "tanh", "softmax"], "loss": "cross_entropy"},
        "optimizer": {"kind": "adam", "lr": 0.01},
        "training": {"epochs": 30, "batch_size": 32, "seed": 7},
        "backend": {"kind": "cpu"}
    })])?;
    let mut session = Session::start(Plan::new(cfg, data)?, &mut Engines::new(Settings::default()))?;
    let run = session.train(&mut Silent, Default::default())?;
    let last = run.metrics.last().unwrap();
    println!("{} epochs on {}: train loss {:.4}, test accuracy {:.2} %", last.epoch, session.describe(), last.train_loss, 100.0 * last.test_acc.unwrap());
    assert_eq!(session.evaluate(Split::Test)?.accuracy(), last.test_acc.unwrap());
    for p in [[0.1f32, 0.2], [1.2, -1.1]] {
        let (class, probs) = session.classify(&p)?;
        println!("({}, {}): {} (p = {:.3})", p[0], p[1], if class == 1 { "inside" } else { "outside" }, probs[class as usize]);
    }
    Ok(())
}
