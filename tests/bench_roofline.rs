//! `gpu-nn bench --cpu-only --json` gives each network its roofline: the step's own products
//! (a forward product and a weight gradient per layer, an input gradient below the top layer),
//! each timed alone, whose multiply-adds are exactly the step's training FLOPs, beside the
//! step's own time.

mod common;
use common::{gpu_nn, s};

#[test]
fn the_roofline_times_exactly_the_steps_products() {
    let Some(data) = common::mnist_dir_or_skip("the_roofline_times_exactly_the_steps_products") else { return };
    let o = gpu_nn(&["bench", "--cpu-only", "--json", "--preset", "seed001", "--steps", "5", "--repeats", "3", "--threads", "2", "--data", s(&data)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cases: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let case = &cases[0];
    let r = &case["roofline"];
    let products = r["products"].as_array().unwrap();
    // 784-128-64-10: three forward products, three weight gradients, two input gradients
    assert_eq!(products.len(), 8, "{r:#}");
    let batch = case["batch"].as_u64().unwrap();
    let macs: u64 = products.iter().map(|p| p["macs"].as_u64().unwrap()).sum();
    let layers = [784u64, 128, 64, 10];
    let per_layer: Vec<u64> = layers.windows(2).map(|w| w[0] * w[1]).collect();
    assert_eq!(macs, batch * (2 * per_layer.iter().sum::<u64>() + per_layer[1..].iter().sum::<u64>()));
    for p in products {
        assert_eq!(p["macs"].as_u64().unwrap(), p["m"].as_u64().unwrap() * p["k"].as_u64().unwrap() * p["n"].as_u64().unwrap(), "{p}");
        assert!(p["ms"].as_f64().unwrap() > 0.0, "{p}");
    }
    let (products_ms, step_ms) = (r["products_ms"].as_f64().unwrap(), r["step_ms"].as_f64().unwrap());
    let sum: f64 = products.iter().map(|p| p["ms"].as_f64().unwrap()).sum();
    assert!((products_ms - sum).abs() <= 1e-9 * sum, "{r:#}");
    assert!((r["products_share"].as_f64().unwrap() - products_ms / step_ms).abs() < 1e-12, "{r:#}");
    let cpu = case["rows"].as_array().unwrap().iter().rfind(|row| row["dispatches_per_step"].is_null()).unwrap();
    assert_eq!(step_ms, cpu["ms_per_step"].as_f64().unwrap(), "the roofline's step is the all-threads CPU row's");
}
