//! Train a preset from Rust, save the model, load it back and classify a picture.
//!
//!     cargo run --release --example train [MNIST_DIR]
//!
//! MNIST is read from MNIST_DIR, else from the per-user cache (downloaded there if missing).
//! The picture is the first test digit, written as a PNG and read back as `gpu-nn predict`
//! reads any picture.

use gpu_nn::core::checkpoint::{FileDtype, load_model, save_model};
use gpu_nn::core::config::{Config, preset_json};
use gpu_nn::core::inference::classify;
use gpu_nn::core::train::Silent;
use gpu_nn::core::{Engines, Plan, Session, Settings};
use gpu_nn::data::picture::{load_image, preprocess};

fn main() -> anyhow::Result<()> {
    let mut cfg = Config::from_layers(&[preset_json("seed001")?, serde_json::json!({"training": {"epochs": 1}})])?;
    cfg.data.dir = std::env::args().nth(1).map(Into::into);
    let plan = Plan::load(cfg, &Default::default(), false)?;
    let mut session = Session::start(plan, &mut Engines::new(Settings::default()))?;
    let run = session.train(&mut Silent, Default::default())?;
    println!("seed001, 1 epoch on {}: test accuracy {:.2} %", session.describe(), 100.0 * run.test.as_ref().unwrap().accuracy());

    let dir = std::env::temp_dir().join(format!("gpu-nn-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    save_model(&dir.join("model.safetensors"), &session.params()?, &session.config().model, FileDtype::F32)?;
    let (params, spec) = load_model(&dir.join("model.safetensors"))?;

    let test = session.plan().data().test.clone().unwrap();
    let digit: Vec<u8> = (0..784).map(|j| (test.pixel(0, j) * 255.0).round() as u8).collect();
    image::GrayImage::from_raw(28, 28, digit).unwrap().save(dir.join("digit.png"))?;
    let picture = preprocess(&load_image(&dir.join("digit.png"))?)?;
    let (class, probs) = classify(&spec, &params.map(|x| x as f32), &picture.pixels);
    println!("{}: a {} (p = {:.3}); its label is {}", dir.join("digit.png").display(), class, probs[class as usize], test.labels[0]);
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
