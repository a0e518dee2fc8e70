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

/// The prediction file: `index,label,prediction,p0,…,p{K−1}`, one row per image; with `names`
/// (data of one's own) the label and prediction are class names and the columns `p_NAME`.
pub fn predictions_csv(ds: &Dataset, preds: &[(u8, Vec<f64>)], names: Option<&[String]>) -> String {
    let k = preds.first().map(|p| p.1.len()).unwrap_or(ds.num_classes);
    let name = |c: u8| names.and_then(|n| n.get(c as usize)).cloned().unwrap_or_else(|| c.to_string());
    let mut s = String::from("index,label,prediction");
    for j in 0..k {
        match names {
            Some(_) => s += &format!(",p_{}", name(j as u8)),
            None => s += &format!(",p{j}"),
        }
    }
    s.push('\n');
    for (i, (p, probs)) in preds.iter().enumerate() {
        s += &format!("{i},{},{}", name(ds.labels[i]), name(*p));
        for q in probs {
            s += &format!(",{q:.6}");
        }
        s.push('\n');
    }
    s
}

/// Pictures for a model trained on an image folder: each read as the training pictures were
/// (grey, brought to their size), then classified.
fn predict_pictures(spec: &ModelSpec, params: &Params<f32>, names: &[String], files: &crate::data::FileData, images: &[PathBuf], show: bool) -> Result<()> {
    let size = crate::data::image_folder::picture_size(files)?;
    if size.height * size.width != spec.input_size() {
        bail!("the model takes {} inputs, but its training pictures are {size} = {} pixels; give the size it was trained at with --image-size HxW", spec.input_size(), size.height * size.width);
    }
    for path in images {
        let bytes = crate::data::image_folder::picture(path, size, files.max_bytes)?;
        let x: Vec<f32> = bytes.iter().map(|&p| p as f32 / 255.0).collect();
        let (best, probs) = classify(spec, params, &x);
        println!("{}: brought to {size} pixels", path.display());
        if show {
            print!("{}", ascii_art(&x, size.width));
        }
        print_probabilities(spec, &probs, names, best);
        println!("prediction: {} (p = {:.4})", names[best as usize], probs[best as usize]);
    }
    Ok(())
}

/// `--rows FILE`: one prediction per row of a CSV or `.npy`, as CSV (`index,prediction,p_CLASS…`)
/// into `out`, else to standard output.
fn predict_rows(cfg: &Config, params: &Params<f32>, names: &[String], rows: &std::path::Path, out: Option<&std::path::Path>) -> Result<()> {
    let spec = &cfg.model;
    let files = cfg.data.files.as_ref();
    let (values, n) = crate::data::own::read_rows(
        rows,
        spec.input_size(),
        files.and_then(|f| f.label_column.as_ref()),
        files.map_or(crate::data::own::DEFAULT_MAX_BYTES, |f| f.max_bytes),
    )?;
    let ds = Dataset { source: rows.display().to_string(), pixels: Pixels::F64(values), sample_len: spec.input_size(), labels: vec![0; n], num_classes: names.len() };
    let ds = match &spec.feature_norm {
        Some(norm) => ds.standardized(norm),
        None => ds,
    };
    let preds = predict_all(spec, params, &ds);
    let mut s = String::from("index,prediction");
    for name in names {
        s += &format!(",p_{name}");
    }
    s.push('\n');
    for (i, (p, probs)) in preds.iter().enumerate() {
        s += &format!("{i},{}", names[*p as usize]);
        for q in probs {
            s += &format!(",{q:.6}");
        }
        s.push('\n');
    }
    match out {
        Some(path) => {
            write_atomic(path, s.as_bytes())?;
            println!("wrote {} ({n} predictions of the rows of {})", path.display(), rows.display());
        }
        None => print!("{s}"),
    }
    Ok(())
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
    /// Rows of features to classify (a CSV or `.npy`), one prediction per row.
    pub rows: Option<PathBuf>,
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
        rows: args.rows,
        train_split: args.train_set,
        show: args.show,
    })
}

/// The whole `predict` command.
pub fn predict_command(env: &Settings, o: &PredictOptions) -> Result<()> {
    if o.images.is_empty() && o.idx_index.is_empty() && o.csv.is_none() && o.rows.is_none() {
        bail!("predict: nothing to classify; give image files (PNG or JPEG), --rows FILE (CSV or .npy), --idx-index N or --csv OUT");
    }
    let (params, cfg): (Params, Config) = crate::commands::eval::open_model(&o.model, &o.flags, &Console::text())?;
    let spec = cfg.model.clone();
    let p32 = params.map(|x| x as f32);
    let k = if spec.output_size() == 1 { 2 } else { spec.output_size() };
    let names = crate::report::confusion::names_of(&cfg, k);

    let folder = cfg.data.files.as_ref().filter(|f| f.format == crate::data::FileFormat::ImageFolder);
    if let (Some(files), false) = (folder, o.images.is_empty()) {
        return predict_pictures(&spec, &p32, &names, files, &o.images, o.show);
    }
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

    if let Some(rows) = &o.rows {
        return predict_rows(&cfg, &p32, &names, rows, o.csv.as_deref());
    }
    if o.idx_index.is_empty() && o.csv.is_none() {
        return Ok(());
    }
    let ds = crate::commands::eval::load_split(&cfg, o.train_split, &env.data, false)?;
    let ds = match &spec.feature_norm {
        Some(norm) => std::sync::Arc::new(ds.standardized(norm)),
        None => ds,
    };
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
        let own_names = (!cfg.model.classes.is_empty()).then_some(names.as_slice());
        write_atomic(out, predictions_csv(&ds, &preds, own_names).as_bytes())?;
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
