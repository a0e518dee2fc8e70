//! `gpu-nn predict`: classify pictures of digits (PNG or JPEG of any size), single images of an
//! IDX set, or write the prediction of every image of a set to CSV.
//!
//! A picture is first brought into MNIST's own form (`data::picture`).
//!
//! The forward pass is `core::inference`'s: the CPU f32 one, the same arithmetic as
//! `FastBackend`.

use crate::atomic_file::write_atomic;
use crate::commands::args::PredictArgs;
use crate::commands::config_args::ConfigArgs;
use crate::core::Settings;
use crate::core::config::Config;
pub use crate::core::inference::{classify, forward, probabilities};
use crate::nn::math;
use crate::nn::model::{Activation, ModelSpec, Params};
use crate::data::picture::{SIDE, ascii_art, load_image, preprocess};
use crate::data::{Dataset, Pixels};
use crate::report::console::Console;
use anyhow::{Context, Result, bail};
use std::path::PathBuf;


/// The images of `ds` at `idx` as f32 rows in [0, 1].
fn rows_of(ds: &Dataset, idx: std::ops::Range<usize>) -> Vec<f32> {
    let l = ds.sample_len;
    match &ds.pixels {
        Pixels::U8(v) => v[idx.start * l..idx.end * l].iter().map(|&p| p as f32 / 255.0).collect(),
        Pixels::F64(v) => v[idx.start * l..idx.end * l].iter().map(|&p| p as f32).collect(),
    }
}

/// Predictions of every image of `ds`: (class, probabilities) per image, in order.
pub fn predict_all(spec: &ModelSpec, params: &Params<f32>, ds: &Dataset) -> Vec<(u8, Vec<f64>)> {
    let mut res = Vec::with_capacity(ds.len());
    let chunk = 1024;
    for lo in (0..ds.len()).step_by(chunk) {
        let hi = (lo + chunk).min(ds.len());
        let out = forward(spec, params, &rows_of(ds, lo..hi), hi - lo);
        let n = spec.output_size();
        for r in out.chunks(n) {
            res.push((math::predict(r), probabilities(spec, r)));
        }
    }
    res
}

/// The prediction file: `index,label,prediction,p0,…,p{K−1}`, one row per image.
pub fn predictions_csv(ds: &Dataset, preds: &[(u8, Vec<f64>)]) -> String {
    let k = preds.first().map(|p| p.1.len()).unwrap_or(ds.num_classes);
    let mut s = String::from("index,label,prediction");
    for j in 0..k {
        s += &format!(",p{j}");
    }
    s.push('\n');
    for (i, (p, probs)) in preds.iter().enumerate() {
        s += &format!("{i},{},{p}", ds.labels[i]);
        for q in probs {
            s += &format!(",{q:.6}");
        }
        s.push('\n');
    }
    s
}

fn print_probabilities(spec: &ModelSpec, probs: &[f64], names: &[String], best: u8) {
    match (spec.output_size(), spec.output_activation()) {
        (1, _) | (_, Activation::Softmax) => println!("  class  probability"),
        (_, act) => println!("  class  probability (the {act} outputs normalised to sum 1)"),
    }
    for (k, p) in probs.iter().enumerate() {
        let bar = "#".repeat((p * 40.0).round() as usize);
        let mark = if k == best as usize { " <" } else { "" };
        println!("  {:>5}  {p:.6}  {bar}{mark}", names.get(k).cloned().unwrap_or_else(|| k.to_string()));
    }
}

pub struct PredictOptions {
    pub model: PathBuf,
    pub images: Vec<PathBuf>,
    pub idx_index: Vec<usize>,
    pub csv: Option<PathBuf>,
    /// Use the training set instead of the test set for --idx-index and --csv.
    pub train_split: bool,
    pub flags: ConfigArgs,
    pub show: bool,
}

pub fn run(args: PredictArgs, env: &Settings) -> Result<()> {
    predict_command(env, &PredictOptions {
        flags: args.data.config_args(None, None),
        model: args.model,
        images: args.images,
        idx_index: args.idx_index,
        csv: args.csv,
        train_split: args.train_set,
        show: args.show,
    })
}

/// The whole `predict` command.
pub fn predict_command(env: &Settings, o: &PredictOptions) -> Result<()> {
    if o.images.is_empty() && o.idx_index.is_empty() && o.csv.is_none() {
        bail!("predict: nothing to classify; give image files (PNG or JPEG), --idx-index N or --csv OUT");
    }
    let (params, cfg): (Params, Config) = crate::commands::eval::open_model(&o.model, &o.flags, &Console::text())?;
    let spec = cfg.model.clone();
    let p32 = params.map(|x| x as f32);
    let k = if spec.output_size() == 1 { 2 } else { spec.output_size() };
    let names = crate::report::confusion::class_names(cfg.data.dataset, cfg.data.task, k);

    if !o.images.is_empty() && spec.input_size() != SIDE * SIDE {
        bail!(
            "{}: the model takes {} inputs; classifying a picture needs a model of 28×28 = 784 inputs",
            o.model.display(),
            spec.input_size()
        );
    }
    for path in &o.images {
        let img = load_image(path)?;
        let prep = preprocess(&img).with_context(|| path.display().to_string())?;
        let (best, probs) = classify(&spec, &p32, &prep.pixels);
        println!(
            "{}: {}×{} pixels{}, ink in {}×{} at ({}, {})",
            path.display(),
            prep.width,
            prep.height,
            if prep.inverted { ", light background (inverted)" } else { ", dark background" },
            prep.ink_box.2,
            prep.ink_box.3,
            prep.ink_box.0,
            prep.ink_box.1
        );
        if o.show {
            print!("{}", ascii_art(&prep.pixels, SIDE));
        }
        print_probabilities(&spec, &probs, &names, best);
        println!("prediction: {} (p = {:.4})", names[best as usize], probs[best as usize]);
    }

    if o.idx_index.is_empty() && o.csv.is_none() {
        return Ok(());
    }
    let ds = crate::commands::eval::load_split(&cfg, o.train_split, &env.data, false)?;
    for &i in &o.idx_index {
        if i >= ds.len() {
            bail!("--idx-index {i}: {} holds {} images (0..={})", ds.source, ds.len(), ds.len() - 1);
        }
        let x = rows_of(&ds, i..i + 1);
        let (best, probs) = classify(&spec, &p32, &x);
        let label = ds.labels[i];
        println!("image {i} of {}: true label {}", ds.source, names[label as usize]);
        if o.show {
            print!("{}", ascii_art(&x, (ds.sample_len as f64).sqrt() as usize));
        }
        print_probabilities(&spec, &probs, &names, best);
        println!(
            "prediction: {} (p = {:.4}), {}",
            names[best as usize],
            probs[best as usize],
            if best == label { "correct" } else { "wrong" }
        );
    }
    if let Some(out) = &o.csv {
        let preds = predict_all(&spec, &p32, &ds);
        write_atomic(out, predictions_csv(&ds, &preds).as_bytes())?;
        let correct = preds.iter().zip(&ds.labels).filter(|((p, _), l)| p == *l).count();
        println!(
            "wrote {} ({} predictions on {}, accuracy {:.2} %)",
            out.display(),
            preds.len(),
            ds.source,
            100.0 * correct as f64 / ds.len().max(1) as f64
        );
    }
    Ok(())
}
