//! What a user looks at after a run: the pictures (curves.png/svg, confusion.png), the
//! confusion matrix file, `gpu-nn eval` on a saved model and `gpu-nn predict` on pictures and
//! IDX images. One real-MNIST run (one epoch of seed000-mnist on the CPU, about a second) is
//! shared by the tests that need a trained model.

mod common;
use common::gpu_nn;

use gpu_nn::nn::backend::{Backend, Split};
use gpu_nn::core::checkpoint::load_model;
use gpu_nn::cpu::FastBackend;
use gpu_nn::data::Dataset;
use gpu_nn::data::picture::{SIDE, centre_of_mass, preprocess};
use image::{DynamicImage, GenericImageView, GrayImage, ImageFormat, Luma, Rgba, RgbaImage};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};


fn ok(args: &[&str]) -> String {
    let o = gpu_nn(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "gpu-nn {args:?} failed ({:?}): {err}", o.status.code());
    String::from_utf8(o.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pictures_and_predict").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The shared run: seed000-mnist (784-30-10 sigmoid), one epoch on the CPU, into a fresh
/// directory. `None` (skipped) without the real MNIST files.
fn trained_run() -> Option<&'static (PathBuf, PathBuf)> {
    static RUN: OnceLock<Option<(PathBuf, PathBuf)>> = OnceLock::new();
    RUN.get_or_init(|| {
        let data = common::mnist_dir_or_skip("pictures_and_predict")?;
        let dir = scratch("run");
        ok(&["train", "--preset", "seed000-mnist", "--backend", "cpu", "--epochs", "1", "--data", s(&data), "--out", s(&dir), "--force", "--quiet"]);
        Some((data, dir))
    })
    .as_ref()
}

fn test_set(data: &Path) -> Dataset {
    Dataset::load(&data.join("t10k-images-idx3-ubyte.gz"), &data.join("t10k-labels-idx1-ubyte.gz"), 10).unwrap()
}

/// metrics.csv as (header, rows).
fn metrics(dir: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    let head: Vec<String> = lines.next().unwrap().split(',').map(str::to_string).collect();
    lines.map(|l| head.iter().cloned().zip(l.split(',').map(str::to_string)).collect()).collect()
}

/// confusion.csv as a K×K matrix, checking its header.
fn read_confusion(path: &Path) -> Vec<Vec<u64>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let k = head.len() - 1;
    assert_eq!(head[0], "true_class");
    // columns pred_NAME, rows NAME: the class names (MNIST's digits, "not 3" and "3" for binary:3)
    let names: Vec<&str> = head[1..].iter().map(|h| h.strip_prefix("pred_").unwrap()).collect();
    let rows: Vec<Vec<u64>> = lines
        .enumerate()
        .map(|(i, l)| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f[0], names[i], "row {i} of {}", path.display());
            f[1..].iter().map(|v| v.parse().unwrap()).collect()
        })
        .collect();
    assert_eq!(rows.len(), k, "{}: {k} columns but {} rows", path.display(), rows.len());
    rows
}

/// A PNG that decodes, of the given size, with real content: not one flat colour, several
/// distinct colours, mostly white background.
fn assert_picture(path: &Path, size: (u32, u32)) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(image::guess_format(&bytes).unwrap(), ImageFormat::Png, "{}", path.display());
    let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), size, "{}", path.display());
    let n = (size.0 * size.1) as usize;
    let white = img.pixels().filter(|p| p.0 == [255, 255, 255]).count();
    assert!(white > n / 3 && white < n, "{}: {white} of {n} pixels white", path.display());
    let mut colours: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 20, "{}: only {} colours", path.display(), colours.len());
}

fn assert_svg(path: &Path, needles: &[&str]) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.trim_start().starts_with("<svg"), "{}: not an SVG", path.display());
    assert!(text.trim_end().ends_with("</svg>"), "{}: SVG not closed", path.display());
    assert!(text.contains(r#"width="1200""#) && text.contains(r#"height="520""#), "{}: size", path.display());
    for n in needles {
        assert!(text.contains(n), "{}: lacks {n:?}", path.display());
    }
    // the SVG renders (it is also what curves.png is rasterised from)
    let png = gpu_nn::report::plots::svg_to_png(&text).unwrap();
    assert_eq!(image::load_from_memory(&png).unwrap().dimensions(), (1200, 520));
}

/// Epochs that end within `CURVES_EVERY` of the last drawing skip it, and the run's end draws
/// what they left out: curves.svg is the drawing of every row of metrics.csv, not of all but
/// the last (the hand-worked example's 3 epochs take milliseconds).
#[test]
fn curves_drawn_at_the_end_of_a_run_hold_every_epoch() {
    let dir = scratch("hand");
    ok(&["train", "--preset", "seed000-hand", "--out", s(&dir), "--force", "--quiet"]);
    let rows = gpu_nn::commands::serve::runs::read_metrics(&dir).unwrap();
    assert_eq!(rows.len(), 3);
    let cfg: gpu_nn::core::config::Config = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let draw = |rows: &[gpu_nn::core::metrics::EpochMetrics]| gpu_nn::report::plots::curves_svg(rows, &gpu_nn::report::plots::run_title(&cfg), !cfg.training.eval_train).unwrap();
    let svg = std::fs::read_to_string(dir.join("curves.svg")).unwrap();
    assert!(svg == draw(&rows), "curves.svg is not the drawing of metrics.csv's 3 rows");
    assert!(svg != draw(&rows[..2]), "the drawings of 2 and 3 epochs must differ for this test to mean anything");
}

#[test]
fn a_run_directory_holds_curves_and_the_confusion_matrix() {
    let Some((data, dir)) = trained_run() else { return };
    assert_picture(&dir.join("curves.png"), gpu_nn::report::plots::CURVES_SIZE);
    assert_svg(&dir.join("curves.svg"), &["epoch", "loss", "accuracy (%)", "train (running mean)", "test", "seed000-mnist", "784-30-10"]);
    assert_picture(&dir.join("confusion.png"), gpu_nn::report::confusion_picture::confusion_size(10));

    let m = read_confusion(&dir.join("confusion.csv"));
    assert_eq!(m.len(), 10);
    let head = (0..10).map(|j| format!(",pred_{j}")).collect::<String>();
    assert!(std::fs::read_to_string(dir.join("confusion.csv")).unwrap().starts_with(&format!("true_class{head}\n0,")));
    let test = test_set(data);
    let counts = test.class_counts();
    for (i, row) in m.iter().enumerate() {
        assert_eq!(row.iter().sum::<u64>(), counts[i] as u64, "row {i}: the samples of digit {i}");
    }
    let total: u64 = m.iter().flatten().sum();
    let trace: u64 = (0..10).map(|i| m[i][i]).sum();
    assert_eq!(total, 10_000);
    let rows = metrics(dir);
    let test_acc: f64 = rows.last().unwrap()["test_acc"].parse().unwrap();
    assert_eq!(trace as f64 / total as f64, test_acc, "trace/total of confusion.csv vs metrics.csv");
    assert!(test_acc > 0.9, "one epoch of seed000-mnist: {test_acc}");
}

#[test]
fn eval_reports_what_training_reported() {
    let Some((data, dir)) = trained_run() else { return };
    let model = dir.join("model.safetensors");
    let out = scratch("eval");
    let text = ok(&["eval", "--model", s(&model), "--data", s(data), "--out", s(&out)]);
    let rows = metrics(dir);
    let last = rows.last().unwrap();
    let (test_acc, test_loss): (f64, f64) = (last["test_acc"].parse().unwrap(), last["test_loss"].parse().unwrap());
    let line = text.lines().find(|l| l.starts_with("test loss")).unwrap_or_else(|| panic!("no 'test loss' line:\n{text}"));
    let want = format!("accuracy {:.2} % ({} of 10000)", 100.0 * test_acc, (test_acc * 10_000.0).round());
    assert!(line.contains(&want), "eval says {line:?}, training said {want:?}");
    assert!(text.contains("true\\pred"), "the confusion table is printed:\n{text}");
    // same matrix as the run's, written where --out says
    assert_eq!(std::fs::read(out.join("confusion.csv")).unwrap(), std::fs::read(dir.join("confusion.csv")).unwrap());
    assert_picture(&out.join("confusion.png"), gpu_nn::report::confusion_picture::confusion_size(10));

    // --json: exact numbers
    let j: serde_json::Value = serde_json::from_str(ok(&["eval", "--model", s(&model), "--data", s(data), "--out", s(&out), "--json"]).trim()).unwrap();
    assert_eq!(j["accuracy"].as_f64().unwrap(), test_acc);
    assert!((j["loss"].as_f64().unwrap() - test_loss).abs() <= 1e-12 * test_loss, "{} vs {test_loss}", j["loss"]);
    assert_eq!(j["samples"], 10_000);
    assert_eq!(j["confusion"].as_array().unwrap().len(), 10);

    // without --out the files land beside the model
    let lone = scratch("eval-beside");
    std::fs::copy(&model, lone.join("m.safetensors")).unwrap();
    ok(&["eval", "--model", s(&lone.join("m.safetensors")), "--data", s(data), "--quiet"]);
    assert!(lone.join("confusion.csv").is_file() && lone.join("confusion.png").is_file());
}

/// The model's own predictions on the test set, from the f32 backend's evaluation.
fn backend_predictions(model: &Path, test: &Dataset) -> Vec<u8> {
    let (params, spec) = load_model(model).unwrap();
    let mut b = FastBackend::new(&spec, &Default::default());
    b.set_params(&params).unwrap();
    b.attach(Split::Test, Arc::new(test.clone())).unwrap();
    b.evaluate(Split::Test).unwrap().predictions
}

/// The classes of the "prediction: X" lines, in order.
fn predictions_of(stdout: &str) -> Vec<u8> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("prediction: "))
        .map(|r| r.split_whitespace().next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn predict_on_idx_images_agrees_with_the_model() {
    let Some((data, dir)) = trained_run() else { return };
    let model = dir.join("model.safetensors");
    let test = test_set(data);
    let want = backend_predictions(&model, &test);
    let wrong = (0..test.len()).find(|&i| want[i] != test.labels[i]).expect("one epoch is not perfect");
    let idx = [0, 1, 2, 3, 4, 1234, 9999, wrong];
    let list = idx.map(|i| i.to_string()).join(",");
    let text = ok(&["predict", "--model", s(&model), "--data", s(data), "--idx-index", &list]);
    assert_eq!(predictions_of(&text), idx.iter().map(|&i| want[i]).collect::<Vec<_>>(), "{text}");
    for &i in &idx {
        assert!(text.contains(&format!("image {i} of ")), "{text}");
        assert!(text.contains(&format!("true label {}", test.labels[i])), "{text}");
    }
    assert!(text.contains("wrong"), "image {wrong} is misclassified:\n{text}");
    let ten = text.lines().skip_while(|l| !l.contains("class  probability")).skip(1).take(10).collect::<Vec<_>>();
    assert_eq!(ten.len(), 10);

    let o = gpu_nn(&["predict", "--model", s(&model), "--data", s(data), "--idx-index", "10000"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("error: --idx-index 10000"));
}

#[test]
fn predict_csv_holds_every_test_image() {
    let Some((data, dir)) = trained_run() else { return };
    let model = dir.join("model.safetensors");
    let csv = scratch("csv").join("predictions.csv");
    ok(&["predict", "--model", s(&model), "--data", s(data), "--csv", s(&csv)]);
    let test = test_set(data);
    let want = backend_predictions(&model, &test);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), "index,label,prediction,p0,p1,p2,p3,p4,p5,p6,p7,p8,p9");
    let mut n = 0;
    for (i, l) in lines.enumerate() {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f.len(), 13, "line {i}: {l}");
        assert_eq!(f[0].parse::<usize>().unwrap(), i);
        assert_eq!(f[1].parse::<u8>().unwrap(), test.labels[i], "label of image {i}");
        let pred: usize = f[2].parse().unwrap();
        assert_eq!(pred as u8, want[i], "prediction of image {i}");
        let p: Vec<f64> = f[3..].iter().map(|v| v.parse().unwrap()).collect();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-4, "image {i}: probabilities sum to {}", p.iter().sum::<f64>());
        assert!(p.iter().all(|&q| q <= p[pred]), "image {i}: the prediction is the most probable class");
        n += 1;
    }
    assert_eq!(n, 10_000);
}

// ---- pictures of digits ---------------------------------------------------------------------

/// A digit-like "0": an elliptical ring, dark ink (value `ink`) on a `paper` background.
fn ring(w: u32, h: u32, paper: u8, ink: u8) -> GrayImage {
    let (cx, cy, rx, ry) = (w as f64 * 0.55, h as f64 * 0.5, 22.0, 40.0);
    GrayImage::from_fn(w, h, |x, y| {
        let (dx, dy) = ((x as f64 + 0.5 - cx) / rx, (y as f64 + 0.5 - cy) / ry);
        let r = (dx * dx + dy * dy).sqrt();
        Luma([if (0.72..=1.0).contains(&r) { ink } else { paper }])
    })
}

/// A digit-like "7": a bar on top and a stroke down to the lower left, black on white.
fn seven(w: u32, h: u32) -> GrayImage {
    GrayImage::from_fn(w, h, |x, y| {
        let (x, y) = (x as f64, y as f64);
        let bar = (30.0..=38.0).contains(&y) && (70.0..=130.0).contains(&x);
        // line from (130, 34) to (85, 125), 8 px thick
        let t = ((x - 130.0) * -45.0 + (y - 34.0) * 91.0) / (45.0f64 * 45.0 + 91.0 * 91.0);
        let (px, py) = (130.0 - 45.0 * t, 34.0 + 91.0 * t);
        let stroke = (0.0..=1.0).contains(&t) && ((x - px).powi(2) + (y - py).powi(2)).sqrt() <= 4.0;
        Luma([if bar || stroke { 0 } else { 255 }])
    })
}

/// Rows and columns of the 28×28 field that hold ink (value > 0.05): (min x, max x, min y, max y).
fn ink_extent(p: &[f32]) -> (usize, usize, usize, usize) {
    let mut e = (SIDE, 0, SIDE, 0);
    for (i, &v) in p.iter().enumerate() {
        if v > 0.05 {
            let (x, y) = (i % SIDE, i / SIDE);
            e = (e.0.min(x), e.1.max(x), e.2.min(y), e.3.max(y));
        }
    }
    e
}

#[test]
fn pictures_are_brought_into_mnist_form() {
    // black on white, 200×150: inverted, 28×28, centred by mass, inside the central 20×20
    let img = DynamicImage::ImageLuma8(ring(200, 150, 255, 0));
    let p = preprocess(&img).unwrap();
    assert!(p.inverted, "a light background is inverted");
    assert_eq!((p.width, p.height), (200, 150));
    assert_eq!(p.pixels.len(), SIDE * SIDE);
    let max = p.pixels.iter().copied().fold(0.0f32, f32::max);
    assert!(max > 0.95 && p.pixels.iter().all(|&v| (0.0..=1.0).contains(&v)), "ink scaled to [0, 1], max {max}");
    assert!([0, SIDE - 1, SIDE * SIDE - SIDE, SIDE * SIDE - 1].iter().all(|&i| p.pixels[i] == 0.0), "background is 0");
    let (cx, cy) = centre_of_mass(&p.pixels, SIDE).unwrap();
    assert!((cx - 14.0).abs() <= 0.75 && (cy - 14.0).abs() <= 0.75, "centre of mass ({cx:.2}, {cy:.2})");
    // MNIST's digits have their centre of mass at (14.0, 14.0) in pixel indices, half a pixel
    // right of and below the field's geometric centre (13.5); a symmetric 20-pixel digit
    // therefore spans 4.5..24.5, whole pixels 4..=23 or 5..=24: the central 20×20 give or take
    // that half pixel
    let (x0, x1, y0, y1) = ink_extent(&p.pixels);
    assert!(x0 >= 4 && x1 <= 24 && y0 >= 4 && y1 <= 24, "ink in x {x0}..={x1}, y {y0}..={y1}: not inside the central 20×20");
    assert!(x1 - x0 < 20 && y1 - y0 < 20, "ink in x {x0}..={x1}, y {y0}..={y1}: more than 20 pixels");
    assert!(y1 - y0 + 1 >= 19, "the taller side is scaled to 20 pixels: {}", y1 - y0 + 1);
    assert!((11..=14).contains(&(x1 - x0 + 1)), "aspect ratio kept (44:80 → about 11:20): width {}", x1 - x0 + 1);

    // the same digit white on black: not inverted, the same input
    let q = preprocess(&DynamicImage::ImageLuma8(ring(200, 150, 0, 255))).unwrap();
    assert!(!q.inverted);
    let diff = p.pixels.iter().zip(&q.pixels).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "polarity changes nothing else: max difference {diff}");

    // grey paper and grey ink (a photo): the background still maps to 0, the ink to 1
    let g = preprocess(&DynamicImage::ImageLuma8(ring(200, 150, 200, 60))).unwrap();
    let diff = p.pixels.iter().zip(&g.pixels).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff < 1e-3, "contrast is normalised: max difference {diff}");

    // a 7: off-centre mass, still centred by mass and kept whole inside the field
    let s7 = preprocess(&DynamicImage::ImageLuma8(seven(200, 150))).unwrap();
    let (cx, cy) = centre_of_mass(&s7.pixels, SIDE).unwrap();
    assert!((cx - 14.0).abs() <= 0.75 && (cy - 14.0).abs() <= 0.75, "7: centre of mass ({cx:.2}, {cy:.2})");
    let (x0, x1, y0, y1) = ink_extent(&s7.pixels);
    assert!((19..=21).contains(&(y1 - y0 + 1)) && x1 - x0 < 20, "7: ink {x0}..={x1} × {y0}..={y1}");

    // black ink on a transparent background reads as black on white
    let rgba = RgbaImage::from_fn(200, 150, |x, y| if ring(200, 150, 255, 0).get_pixel(x, y).0[0] == 0 { Rgba([0, 0, 0, 255]) } else { Rgba([0, 0, 0, 0]) });
    let t = preprocess(&DynamicImage::ImageRgba8(rgba)).unwrap();
    assert!(t.inverted);
    let diff = p.pixels.iter().zip(&t.pixels).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "transparent background: max difference {diff}");

    // nothing drawn: a clear error, no guess
    let blank = preprocess(&DynamicImage::ImageLuma8(GrayImage::from_pixel(50, 40, Luma([250]))));
    assert!(format!("{:#}", blank.unwrap_err()).contains("blank"));
}

#[test]
fn predict_reads_png_and_jpeg_and_classifies_rerendered_mnist_digits_like_the_originals() {
    let Some((data, dir)) = trained_run() else { return };
    let model = dir.join("model.safetensors");
    let test = test_set(data);
    let want = backend_predictions(&model, &test);
    let (params, spec) = load_model(&model).unwrap();
    let p32 = params.map(|x| x as f32);
    let tmp = scratch("pictures");

    // ten test digits the model is sure about (p > 0.9), each upscaled ×7 with nearest
    // neighbours and inverted: black on white, 196×196
    let mut files = Vec::new();
    let mut expected = Vec::new();
    for i in 0..test.len() {
        if files.len() == 10 {
            break;
        }
        let x: Vec<f32> = (0..784).map(|j| test.pixel(i, j) as f32).collect();
        let (c, probs) = gpu_nn::commands::predict::classify(&spec, &p32, &x);
        assert_eq!(c, want[i], "the predict forward pass agrees with the backend on image {i}");
        if probs[c as usize] <= 0.9 {
            continue;
        }
        let img = GrayImage::from_fn(196, 196, |x, y| Luma([255 - (test.pixel(i, (y / 7 * 28 + x / 7) as usize) * 255.0).round() as u8]));
        let f = tmp.join(format!("test{i}.png"));
        img.save(&f).unwrap();
        files.push(f);
        expected.push(c);
    }
    let mut args = vec!["predict", "--model", s(&model)];
    args.extend(files.iter().map(|f| s(f)));
    let text = ok(&args);
    assert_eq!(predictions_of(&text), expected, "re-rendered digits vs the originals:\n{text}");
    assert!(text.contains("light background (inverted)"));

    // JPEG, detected from its content whatever its name, 200×150 black on white
    let jpg = tmp.join("ring.jpeg");
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85).encode_image(&DynamicImage::ImageLuma8(ring(200, 150, 255, 0))).unwrap();
    std::fs::write(&jpg, &bytes).unwrap();
    let png_as_named_jpg = tmp.join("seven.jpg");
    seven(200, 150).save_with_format(&png_as_named_jpg, ImageFormat::Png).unwrap();
    let text = ok(&["predict", "--model", s(&model), s(&jpg), s(&png_as_named_jpg), "--show"]);
    let preds = predictions_of(&text);
    assert_eq!(preds.len(), 2, "{text}");
    assert_eq!(preds[1], 7, "a clean 7 is a 7:\n{text}");
    assert!(text.contains("@@"), "--show prints the 28×28 input:\n{text}");
    // the JPEG's input is the PNG's up to compression noise and, as the ring's centre of mass
    // falls on a half pixel, a shift by one whole pixel
    let a = preprocess(&image::open(&jpg).unwrap()).unwrap();
    let b = preprocess(&DynamicImage::ImageLuma8(ring(200, 150, 255, 0))).unwrap();
    assert_eq!(a.ink_box, b.ink_box, "the same ink found");
    let shifted = |dx: i64, dy: i64| -> f32 {
        let at = |p: &[f32], x: i64, y: i64| if (0..28).contains(&x) && (0..28).contains(&y) { p[(y * 28 + x) as usize] } else { 0.0 };
        (0..28i64 * 28).map(|i| (at(&a.pixels, i % 28, i / 28) - at(&b.pixels, i % 28 + dx, i / 28 + dy)).abs()).sum::<f32>() / 784.0
    };
    let best = (-1..=1).flat_map(|dx| (-1..=1).map(move |dy| (dx, dy))).map(|(dx, dy)| shifted(dx, dy)).fold(f32::MAX, f32::min);
    assert!(best < 0.01, "JPEG vs PNG input: mean difference {best}");

    // a file that is not a picture: one error line
    let txt = tmp.join("notes.png");
    std::fs::write(&txt, "not an image").unwrap();
    let o = gpu_nn(&["predict", "--model", s(&model), s(&txt)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.starts_with("error: ") && err.contains("notes.png") && err.lines().count() == 1, "{err}");
}

#[test]
fn a_binary_task_gets_a_two_by_two_confusion_matrix() {
    let Some(data) = common::mnist_dir_or_skip("a_binary_task_gets_a_two_by_two_confusion_matrix") else { return };
    let dir = scratch("binary");
    ok(&["train", "--preset", "seed002-neuron-0", "--backend", "cpu", "--epochs", "3", "--data", s(&data), "--out", s(&dir), "--force", "--quiet"]);
    let m = read_confusion(&dir.join("confusion.csv"));
    assert_eq!(m.len(), 2);
    assert!(std::fs::read_to_string(dir.join("confusion.csv")).unwrap().starts_with("true_class,pred_not 0,pred_0\nnot 0,"));
    let test = test_set(&data);
    let zeros = test.labels.iter().filter(|&&l| l == 0).count() as u64;
    assert_eq!(m[1].iter().sum::<u64>(), zeros, "class 1 = the digit 0");
    assert_eq!(m[0].iter().sum::<u64>(), 10_000 - zeros, "class 0 = all other digits");
    let test_acc: f64 = metrics(&dir).last().unwrap()["test_acc"].parse().unwrap();
    assert_eq!((m[0][0] + m[1][1]) as f64 / 10_000.0, test_acc);
    assert_picture(&dir.join("confusion.png"), gpu_nn::report::confusion_picture::confusion_size(2));
    // eval finds the task in the run's config.json beside the model
    let j: serde_json::Value =
        serde_json::from_str(ok(&["eval", "--model", s(&dir.join("model.safetensors")), "--data", s(&data), "--json"]).trim()).unwrap();
    assert_eq!(j["accuracy"].as_f64().unwrap(), test_acc);
    assert_eq!(j["classes"], serde_json::json!(["not 0", "0"]));
    // predict on a test image prints two probabilities
    let text = ok(&["predict", "--model", s(&dir.join("model.safetensors")), "--data", s(&data), "--idx-index", "3"]);
    assert_eq!(predictions_of_names(&text).len(), 1, "{text}");
}

fn predictions_of_names(stdout: &str) -> Vec<String> {
    stdout.lines().filter_map(|l| l.strip_prefix("prediction: ")).map(|r| r.split(" (p").next().unwrap().to_string()).collect()
}
