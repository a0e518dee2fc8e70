//! The pictures of a run: loss and accuracy curves per epoch (`curves.png`, `curves.svg`), a
//! sweep row's test accuracy per learning rate, and what every picture is drawn with (the
//! confusion matrix's picture is `confusion_picture`).
//!
//! Every picture is drawn once, with plotters' SVG backend; the PNG is that SVG rasterised by
//! resvg, so both files show the same picture, with anti-aliased lines and properly spaced text
//! (plotters' own bitmap text drops each glyph's side bearing). Text is set in DejaVu Sans,
//! compiled into the binary (plotters measures it for the layout, resvg draws it), so a picture
//! looks the same on a machine without fonts (CI, containers). Files are rendered in memory and
//! written with `atomic_file::write_atomic`.

use crate::atomic_file::write_atomic;
use crate::core::config::Config;
use crate::core::metrics::EpochMetrics;
use anyhow::{Context, Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use resvg::{tiny_skia, usvg};
use std::path::Path;
use std::sync::{Arc, Once, OnceLock};

/// DejaVu Sans 2.37 (Bitstream Vera licence, `assets/fonts/LICENSE-DejaVu.txt`).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
pub(crate) const FAMILY: &str = "sans-serif";

/// Size of `curves.png` / `curves.svg` in pixels.
pub const CURVES_SIZE: (u32, u32) = (1200, 520);

// matplotlib's tab10 blue, orange, green: train, validation, test.
const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VAL: RGBColor = RGBColor(255, 127, 14);
const TEST: RGBColor = RGBColor(44, 160, 44);
pub(crate) const GREY: RGBColor = RGBColor(90, 90, 90);

/// The font's family name inside the file: what resvg looks up.
const FONT_NAME: &str = "DejaVu Sans";

/// Lets plotters measure text in the compiled-in font (for its layout).
pub(crate) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_err() {
            // Only possible if the file in assets/ is damaged; pictures then lack text.
            eprintln!("warning: the compiled-in font is invalid; pictures will have no text");
        }
    });
}

/// resvg's font database: the compiled-in font only, standing in for every generic family.
fn font_db() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_data(FONT.to_vec());
        db.set_sans_serif_family(FONT_NAME);
        db.set_serif_family(FONT_NAME);
        db.set_monospace_family(FONT_NAME);
        Arc::new(db)
    })
    .clone()
}

pub(crate) fn font(size: f64) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

pub(crate) fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// One line naming the run: preset, architecture, objective, optimiser, batch, data.
pub fn run_title(cfg: &Config) -> String {
    let m = &cfg.model;
    let layers = m.layers.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("-");
    let acts = m.activations.iter().map(|a| a.name()).collect::<Vec<_>>().join("/");
    let mut s = String::new();
    if let Some(p) = &cfg.preset {
        s += &format!("{p}: ");
    }
    s += &format!(
        "{layers} {acts}, {}, {} lr {}, batch {}, {}",
        m.loss,
        cfg.optimizer.kind,
        cfg.optimizer.lr,
        cfg.training.batch_size,
        cfg.data.name()
    );
    if cfg.data.task != crate::data::Task::Classify {
        s += &format!(" {}", cfg.data.task);
    }
    if !m.input_norm.is_identity() {
        s += &format!(", inputs (p − {:.4}) / {:.4}", m.input_norm.mean, m.input_norm.std);
    }
    s
}

/// A value range with a margin, never empty, from the finite values given.
fn padded_range(values: impl Iterator<Item = f64>, floor: Option<f64>, ceil: Option<f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (floor.unwrap_or(0.0), ceil.unwrap_or(1.0));
    }
    let pad = if hi > lo { 0.06 * (hi - lo) } else { (0.05 * hi.abs()).max(1e-3) };
    let mut r = (lo - pad, hi + pad);
    if let Some(f) = floor {
        r.0 = r.0.max(f);
    }
    if let Some(c) = ceil {
        r.1 = r.1.min(c);
    }
    if r.1 <= r.0 {
        r.1 = r.0 + 1e-3;
    }
    r
}

struct Series {
    name: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

/// The train / validation / test series of one quantity that the rows hold.
fn series(rows: &[EpochMetrics], pick: impl Fn(&EpochMetrics) -> [Option<f64>; 3], scale: f64, train_running: bool) -> Vec<Series> {
    let train = if train_running { "train (running mean)" } else { "train" };
    let names = [(train, TRAIN), ("validation", VAL), ("test", TEST)];
    names
        .iter()
        .enumerate()
        .map(|(k, &(name, color))| Series {
            name: name.to_string(),
            color,
            points: rows
                .iter()
                .filter_map(|r| pick(r)[k].filter(|v| v.is_finite()).map(|v| (r.epoch as f64, scale * v)))
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    y_desc: &str,
    all: &[Series],
    x_max: f64,
    y_range: (f64, f64),
    legend_at: SeriesLabelPosition,
) -> Result<()> {
    let x_range = (0.5, x_max + 0.5);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font(20.0))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(72)
        .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)
        .map_err(plot_err)?;
    let whole = |x: &f64| {
        if (x - x.round()).abs() < 1e-6 && x.round() >= 1.0 { format!("{}", x.round() as i64) } else { String::new() }
    };
    let n_labels = (x_max as usize).clamp(1, 10) + 1;
    // the same number of decimals on every y label, enough to tell neighbouring ticks apart
    let step = (y_range.1 - y_range.0) / 8.0;
    let decimals = (-step.log10()).ceil().clamp(0.0, 10.0) as usize;
    let y_fmt = move |y: &f64| format!("{y:.decimals$}");
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .x_labels(n_labels)
        .y_labels(8)
        .x_label_formatter(&whole)
        .y_label_formatter(&y_fmt)
        .label_style(font(14.0))
        .axis_desc_style(font(16.0))
        .light_line_style(RGBColor(244, 244, 244))
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()
        .map_err(plot_err)?;
    let n = all.iter().map(|s| s.points.len()).max().unwrap_or(0);
    // markers on every epoch while they stay apart; a lone epoch gets a large one
    let radius = match n {
        0 | 1 => 5,
        2..=25 => 3,
        26..=60 => 2,
        _ => 0,
    };
    for s in all {
        let color = s.color;
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))
            .map_err(plot_err)?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (20, 0)], color.stroke_width(2))
                    + Circle::new((10, 0), 3, color.filled())
            });
        if radius > 0 {
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, radius, color.filled()))).map_err(plot_err)?;
        }
    }
    if !all.is_empty() {
        chart
            .configure_series_labels()
            .position(legend_at)
            .label_font(font(14.0))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(plot_err)?;
    }
    Ok(())
}

fn draw_curves<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, rows: &[EpochMetrics], title: &str, train_running: bool) -> Result<()> {
    register_font();
    root.fill(&WHITE).map_err(plot_err)?;
    let root = root.titled(title, font(19.0)).map_err(plot_err)?;
    let (left, right) = root.split_horizontally(CURVES_SIZE.0 / 2);
    let x_max = rows.iter().map(|r| r.epoch).max().unwrap_or(1).max(1) as f64;

    let loss = series(rows, |r| [Some(r.train_loss), r.val_loss, r.test_loss], 1.0, train_running);
    let lr = padded_range(loss.iter().flat_map(|s| s.points.iter().map(|p| p.1)), Some(0.0), None);
    draw_panel(&left, "loss", "loss (mean per sample)", &loss, x_max, lr, SeriesLabelPosition::UpperRight)?;

    let acc = series(rows, |r| [Some(r.train_acc), r.val_acc, r.test_acc], 100.0, train_running);
    let ar = padded_range(acc.iter().flat_map(|s| s.points.iter().map(|p| p.1)), Some(0.0), Some(100.0));
    draw_panel(&right, "accuracy", "accuracy (%)", &acc, x_max, ar, SeriesLabelPosition::LowerRight)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// Draws a picture with plotters' SVG backend.
pub(crate) fn render_svg(size: (u32, u32), draw: impl FnOnce(DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>) -> Result<String> {
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, size).into_drawing_area();
        draw(root)?;
    }
    Ok(s)
}

/// Rasterises an SVG (on white) and returns PNG bytes.
pub fn svg_to_png(svg: &str) -> Result<Vec<u8>> {
    use image::ImageEncoder;
    let opt = usvg::Options { font_family: FONT_NAME.into(), fontdb: font_db(), ..Default::default() };
    let tree = usvg::Tree::from_str(svg, &opt).context("cannot read back the SVG just drawn")?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).context("picture has no pixels")?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    // opaque (white background), so the premultiplied RGBA is plain RGB
    let rgb: Vec<u8> = pixmap.data().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&rgb, size.width(), size.height(), image::ExtendedColorType::Rgb8)
        .context("cannot encode PNG")?;
    Ok(out)
}

/// `curves.svg` as text: loss (left) and accuracy (right) per epoch; `train_running` says the
/// train values are running means over each epoch's steps (not a pass after it).
pub fn curves_svg(rows: &[EpochMetrics], title: &str, train_running: bool) -> Result<String> {
    render_svg(CURVES_SIZE, |root| draw_curves(root, rows, title, train_running))
}

/// `curves.png` as bytes: the same picture as `curves_svg`.
pub fn curves_png(rows: &[EpochMetrics], title: &str, train_running: bool) -> Result<Vec<u8>> {
    svg_to_png(&curves_svg(rows, title, train_running)?)
}

/// Writes `curves.svg` and `curves.png` into `dir`.
pub fn write_curves(dir: &Path, rows: &[EpochMetrics], title: &str, train_running: bool) -> Result<()> {
    let svg = curves_svg(rows, title, train_running)?;
    write_atomic(&dir.join("curves.png"), &svg_to_png(&svg)?)?;
    write_atomic(&dir.join("curves.svg"), svg.as_bytes())?;
    Ok(())
}

/// matplotlib's tab10 colours, for the learning rates of a sweep row.
const TAB10: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Size of a sweep row's `curves-batch-B.png` / `.svg`.
pub const SWEEP_ROW_SIZE: (u32, u32) = (900, 560);

/// One grid row of a sweep (`gpu-nn sweep`): test accuracy (%) against epoch, one line per
/// learning rate. `lines` holds (legend label, test accuracy per epoch as fractions, epoch 1
/// first); a line without points (a diverged cell) still gets its legend entry.
pub fn sweep_row_svg(lines: &[(String, Vec<f64>)], title: &str) -> Result<String> {
    render_svg(SWEEP_ROW_SIZE, |root| {
        register_font();
        root.fill(&WHITE).map_err(plot_err)?;
        let root = root.titled(title, font(17.0)).map_err(plot_err)?;
        let all: Vec<Series> = lines
            .iter()
            .enumerate()
            .map(|(i, (name, acc))| Series {
                name: name.clone(),
                color: TAB10[i % TAB10.len()],
                points: acc.iter().enumerate().filter(|(_, a)| a.is_finite()).map(|(e, a)| ((e + 1) as f64, 100.0 * a)).collect(),
            })
            .collect();
        let x_max = lines.iter().map(|l| l.1.len()).max().unwrap_or(1).max(1) as f64;
        let yr = padded_range(all.iter().flat_map(|s| s.points.iter().map(|p| p.1)), Some(0.0), Some(100.0));
        draw_panel(&root, "test accuracy", "test accuracy (%)", &all, x_max, yr, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(plot_err)?;
        Ok(())
    })
}

/// Writes `{stem}.svg` and `{stem}.png` of `sweep_row_svg` into `dir`.
pub fn write_sweep_row(dir: &Path, stem: &str, lines: &[(String, Vec<f64>)], title: &str) -> Result<()> {
    let svg = sweep_row_svg(lines, title)?;
    write_atomic(&dir.join(format!("{stem}.png")), &svg_to_png(&svg)?)?;
    write_atomic(&dir.join(format!("{stem}.svg")), svg.as_bytes())?;
    Ok(())
}
