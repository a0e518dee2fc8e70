//! `gpu-nn predict`: classify pictures of digits (PNG or JPEG of any size), single images of an
//! IDX set, or write the prediction of every image of a set to CSV.
//!
//! A picture is brought into MNIST's own form before it reaches the network (LeCun et al.:
//! "normalized to fit in a 20x20 pixel box while preserving their aspect ratio … centered in a
//! 28x28 image by computing the center of mass of the pixels"):
//!   1. grayscale in [0, 1], transparent pixels composited over white;
//!   2. inverted when the background is light (mean of the border pixels > 0.5), so ink is high;
//!   3. the background level (median of the border) mapped to 0 and the darkest ink to 1;
//!   4. cropped to the bounding box of the ink (values > `INK`);
//!   5. scaled (Lanczos3, anti-aliased) so that its longer side is 20 pixels;
//!   6. placed in a 28×28 field, shifted by whole pixels so that its centre of mass falls on
//!      (14, 14) in pixel indices — where MNIST's own digits have theirs (test-set mean
//!      (14.00, 13.99)), half a pixel off the geometric centre 13.5 — and kept whole inside it.
//!
//! The forward pass is the CPU f32 one (`math::Real::gemm` = matrixmultiply, `math.rs`'s
//! activations), the same arithmetic as `FastBackend`.

use crate::commands::args::PredictArgs;
use crate::commands::config_args::ConfigArgs;
use crate::core::config::Config;
use crate::data::{Dataset, Pixels};
use crate::atomic_file::write_atomic;
use crate::core::math::{self, Real};
use crate::core::model::{Activation, ModelSpec, Params};
use anyhow::{Context, Result, bail};
use image::imageops::FilterType;
use image::{DynamicImage, ImageBuffer, Luma};
use std::path::{Path, PathBuf};

/// Side of the MNIST field and of the box the digit is scaled into.
pub const SIDE: usize = 28;
pub const BOX: usize = 20;
/// A pixel counts as ink for the bounding box above this value (after step 3).
pub const INK: f32 = 0.08;
/// Below this contrast between background and the darkest ink the picture is called blank.
const MIN_CONTRAST: f32 = 0.1;

/// A picture in MNIST's form, and what was done to get there.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// 28×28 values in [0, 1], row-major, ink high.
    pub pixels: Vec<f32>,
    /// The picture had a light background and was inverted.
    pub inverted: bool,
    /// Size of the picture as read.
    pub width: u32,
    pub height: u32,
    /// Bounding box of the ink in the picture: x, y, width, height.
    pub ink_box: (u32, u32, u32, u32),
}

/// Reads a PNG or JPEG (the format is recognised from the content, not the name).
pub fn load_image(path: &Path) -> Result<DynamicImage> {
    let reader = image::ImageReader::open(path)
        .with_context(|| format!("cannot open image {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("cannot read image {}", path.display()))?;
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => {}
        Some(f) => bail!("{}: {f:?} images are not supported; expected PNG or JPEG", path.display()),
        None => bail!("{}: not a PNG or JPEG image", path.display()),
    }
    reader.decode().with_context(|| format!("{}: cannot decode the image", path.display()))
}

/// Centre of mass (x, y) of a w×h image in pixel-index coordinates; `None` when it is all zero.
pub fn centre_of_mass(v: &[f32], w: usize) -> Option<(f64, f64)> {
    let (mut s, mut sx, mut sy) = (0.0f64, 0.0f64, 0.0f64);
    for (i, &p) in v.iter().enumerate() {
        let p = p as f64;
        s += p;
        sx += p * (i % w) as f64;
        sy += p * (i / w) as f64;
    }
    (s > 0.0).then(|| (sx / s, sy / s))
}

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

/// Steps 1–6 above.
pub fn preprocess(img: &DynamicImage) -> Result<Prepared> {
    preprocess_with(img, FilterType::Lanczos3)
}

/// `preprocess` with a chosen resampling filter for step 5.
pub fn preprocess_with(img: &DynamicImage, filter: FilterType) -> Result<Prepared> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        bail!("the image is empty ({w}×{h} pixels)");
    }
    // 1. grayscale (Rec. 601 luma), alpha over white
    let rgba = img.to_rgba32f();
    let mut g: Vec<f32> = rgba
        .pixels()
        .map(|p| {
            let [r, gr, b, a] = p.0;
            let y = 0.299 * r + 0.587 * gr + 0.114 * b;
            (a * y + (1.0 - a)).clamp(0.0, 1.0)
        })
        .collect();
    // 2. light background → invert
    let border: Vec<usize> = (0..w * h).filter(|i| i % w == 0 || i % w == w - 1 || i / w == 0 || i / w == h - 1).collect();
    let mean = border.iter().map(|&i| g[i] as f64).sum::<f64>() / border.len() as f64;
    let inverted = mean > 0.5;
    if inverted {
        g.iter_mut().for_each(|v| *v = 1.0 - *v);
    }
    // 3. background → 0, strongest ink → 1
    let bg = median(border.iter().map(|&i| g[i]).collect());
    let peak = g.iter().copied().fold(0.0f32, f32::max);
    if peak - bg < MIN_CONTRAST {
        bail!("no digit found: the image is blank (ink and background differ by {:.3} of full scale)", peak - bg);
    }
    g.iter_mut().for_each(|v| *v = ((*v - bg) / (peak - bg)).clamp(0.0, 1.0));
    // 4. bounding box of the ink
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for (i, &v) in g.iter().enumerate() {
        if v > INK {
            let (x, y) = (i % w, i / w);
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    let (bw, bh) = (x1 + 1 - x0, y1 + 1 - y0);
    let crop: ImageBuffer<Luma<f32>, Vec<f32>> =
        ImageBuffer::from_fn(bw as u32, bh as u32, |x, y| Luma([g[(y0 + y as usize) * w + x0 + x as usize]]));
    // 5. longer side → 20 pixels, aspect ratio kept
    let s = BOX as f64 / bw.max(bh) as f64;
    let (nw, nh) = (((bw as f64 * s).round() as u32).clamp(1, BOX as u32), ((bh as f64 * s).round() as u32).clamp(1, BOX as u32));
    let small = image::imageops::resize(&crop, nw, nh, filter);
    let small: Vec<f32> = small.into_raw().into_iter().map(|v| v.clamp(0.0, 1.0)).collect();
    // 6. centre of mass → centre of the 28×28 field (kept whole inside it)
    let (cx, cy) = centre_of_mass(&small, nw as usize).context("no digit found: nothing left after scaling")?;
    let centre = SIDE as f64 / 2.0;
    let ox = ((centre - cx).round() as i64).clamp(0, (SIDE - nw as usize) as i64) as usize;
    let oy = ((centre - cy).round() as i64).clamp(0, (SIDE - nh as usize) as i64) as usize;
    let mut pixels = vec![0.0f32; SIDE * SIDE];
    for y in 0..nh as usize {
        for x in 0..nw as usize {
            pixels[(oy + y) * SIDE + ox + x] = small[y * nw as usize + x];
        }
    }
    Ok(Prepared { pixels, inverted, width: w as u32, height: h as u32, ink_box: (x0 as u32, y0 as u32, bw as u32, bh as u32) })
}

/// The outputs of the last layer for `rows` pixel rows `x` [rows, in] (values in [0, 1]), f32
/// like `FastBackend`, after the model's input normalisation.
pub fn forward(spec: &ModelSpec, params: &Params<f32>, x: &[f32], rows: usize) -> Vec<f32> {
    let (mean, std) = (spec.input_norm.mean as f32, spec.input_norm.std as f32);
    let mut a: Vec<f32> = x.iter().map(|&p| (p - mean) / std).collect();
    for (l, p) in params.layers.iter().enumerate() {
        let (n_in, n_out) = spec.layer_dims(l);
        let mut z = Vec::with_capacity(rows * n_out);
        for _ in 0..rows {
            z.extend_from_slice(&p.bias);
        }
        // Z += A [rows×in] · Wᵀ [in×out], exactly as CpuBackend::forward
        f32::gemm(rows, n_in, n_out, 1.0, &a, n_in, 1, &p.weight, 1, n_in, 1.0, &mut z, n_out);
        let mut next = vec![0.0f32; rows * n_out];
        let act = spec.activations[l];
        for r in 0..rows {
            let s = r * n_out..(r + 1) * n_out;
            math::activate_row(act, &z[s.clone()], &mut next[s]);
        }
        a = next;
    }
    a
}

/// Class probabilities from one row of outputs: a softmax output as it is; a single sigmoid
/// output o as (1 − o, o); other outputs normalised to sum 1 (a softmax of them if any is
/// negative). The predicted class is `math::predict` of the outputs, which is also the most
/// probable class here.
pub fn probabilities(spec: &ModelSpec, out: &[f32]) -> Vec<f64> {
    let o: Vec<f64> = out.iter().map(|&v| v as f64).collect();
    if o.len() == 1 {
        return vec![1.0 - o[0], o[0]];
    }
    if spec.output_activation() == Activation::Softmax {
        return o;
    }
    let sum: f64 = o.iter().sum();
    if o.iter().all(|&v| v >= 0.0) && sum > 0.0 {
        o.iter().map(|v| v / sum).collect()
    } else {
        let mut p = vec![0.0; o.len()];
        math::softmax_row(&o, &mut p);
        p
    }
}

/// Prediction of one input row: (class, probabilities).
pub fn classify(spec: &ModelSpec, params: &Params<f32>, x: &[f32]) -> (u8, Vec<f64>) {
    let out = forward(spec, params, x, 1);
    (math::predict(&out), probabilities(spec, &out))
}

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

/// The 28×28 input as text, darker characters for more ink.
pub fn ascii_art(pixels: &[f32], w: usize) -> String {
    const RAMP: &[u8] = b" .:-=+*#%@";
    let mut s = String::new();
    for row in pixels.chunks(w) {
        for &v in row {
            let c = RAMP[((v.clamp(0.0, 1.0) * (RAMP.len() - 1) as f32).round()) as usize] as char;
            s.push(c);
            s.push(c);
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

pub fn run(args: PredictArgs) -> Result<()> {
    predict_command(&PredictOptions {
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
pub fn predict_command(o: &PredictOptions) -> Result<()> {
    if o.images.is_empty() && o.idx_index.is_empty() && o.csv.is_none() {
        bail!("predict: nothing to classify; give image files (PNG or JPEG), --idx-index N or --csv OUT");
    }
    let (params, cfg): (Params, Config) = crate::commands::eval::open_model(&o.model, &o.flags)?;
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
    let ds = crate::commands::eval::load_split(&cfg, o.train_split, false)?;
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
