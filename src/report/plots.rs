//! The pictures of a run: loss and accuracy curves per epoch (`curves.png`, `curves.svg`) and
//! the confusion matrix on the test set (`confusion.png`).
//!
//! Every picture is drawn once, with plotters' SVG backend; the PNG is that SVG rasterised by
//! resvg, so both files show the same picture, with anti-aliased lines and properly spaced text
//! (plotters' own bitmap text drops each glyph's side bearing). Text is set in DejaVu Sans,
//! compiled into the binary (plotters measures it for the layout, resvg draws it), so a picture
//! looks the same on a machine without fonts (CI, containers). Files are rendered in memory and
//! written with `fsutil::write_atomic`.

use crate::report::confusion::Confusion;
use crate::core::config::Config;
use crate::atomic_file::write_atomic;
use crate::core::metrics::EpochMetrics;
use anyhow::{Context, Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use resvg::{tiny_skia, usvg};
use std::path::Path;
use std::sync::{Arc, Once, OnceLock};

/// DejaVu Sans 2.37 (Bitstream Vera licence, `assets/fonts/LICENSE-DejaVu.txt`).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Size of `curves.png` / `curves.svg` in pixels.
pub const CURVES_SIZE: (u32, u32) = (1200, 520);

// matplotlib's tab10 blue, orange, green: train, validation, test.
const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VAL: RGBColor = RGBColor(255, 127, 14);
const TEST: RGBColor = RGBColor(44, 160, 44);
const GREY: RGBColor = RGBColor(90, 90, 90);

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
        cfg.data.dataset.name()
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

/// Shade of a row-normalised fraction, on a log scale so that the few errors of a good
/// classifier (0.5–5 % of a class) show beside a diagonal of 95 %:
/// 0 → 0, 0.5 % → 0.13, 1 % → 0.21, 5 % → 0.45, 10 % → 0.58, 100 % → 1.
fn shade_level(f: f64) -> f64 {
    (1.0 + 200.0 * f.clamp(0.0, 1.0)).ln() / 201f64.ln()
}

/// matplotlib's "Blues" colour map (light to dark) at a level in [0, 1].
fn shade(level: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 9] = [
        (247.0, 251.0, 255.0),
        (222.0, 235.0, 247.0),
        (198.0, 219.0, 239.0),
        (158.0, 202.0, 225.0),
        (107.0, 174.0, 214.0),
        (66.0, 146.0, 198.0),
        (33.0, 113.0, 181.0),
        (8.0, 81.0, 156.0),
        (8.0, 48.0, 107.0),
    ];
    let x = level.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let t = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * t).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Pixel size of `confusion.png` for `k` classes.
pub fn confusion_size(k: usize) -> (u32, u32) {
    let cell = confusion_cell(k);
    let grid = (cell * k as i32) as u32;
    (grid + 110 + 120, grid + 84 + 96)
}

fn confusion_cell(k: usize) -> i32 {
    (600 / k.max(1) as i32).clamp(40, 150)
}

/// `text` as one line of at most `max` characters, or two split after the last " | " or ", "
/// that keeps the first within `max` (the second cut short with "…" if it is still too long).
fn wrap_title(text: &str, max: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= max {
        return vec![text.to_string()];
    }
    let head: String = chars[..max].iter().collect();
    let cut = [" | ", ", "].iter().filter_map(|sep| head.rfind(sep).map(|i| (i, sep.len()))).max_by_key(|&(i, _)| i);
    let (first, rest) = match cut {
        Some((i, n)) => (text[..i + n].trim_end().to_string(), text[i + n..].to_string()),
        None => (head.clone(), chars[max..].iter().collect()),
    };
    let rest: Vec<char> = rest.chars().collect();
    let second = if rest.len() <= max { rest.iter().collect() } else { rest[..max - 1].iter().collect::<String>() + "…" };
    vec![first, second]
}

fn draw_confusion<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, c: &Confusion, title: &str) -> Result<()> {
    register_font();
    root.fill(&WHITE).map_err(plot_err)?;
    let k = c.classes;
    let cell = confusion_cell(k);
    let (w, _) = root.dim_in_pixel();
    let (x0, y0) = (110, 84);
    let grid = cell * k as i32;
    let center = |p: Pos| p;
    let mid = Pos::new(HPos::Center, VPos::Center);

    let head = format!(
        "confusion on the test set: accuracy {:.2} % ({} of {})",
        100.0 * c.accuracy(),
        c.trace(),
        c.total()
    );
    root.draw(&Text::new(head, (w as i32 / 2, 18), font(18.0).pos(Pos::new(HPos::Center, VPos::Top)))).map_err(plot_err)?;
    // the run's description in one line, or two where one would run off the picture (eval
    // puts the model's path in front of it)
    let lines = wrap_title(title, (w as f64 / 6.8) as usize);
    let (size, top) = if lines.len() == 1 { (13.0, 46) } else { (12.0, 38) };
    for (i, line) in lines.into_iter().enumerate() {
        root.draw(&Text::new(line, (w as i32 / 2, top + 15 * i as i32), font(size).color(&GREY).pos(Pos::new(HPos::Center, VPos::Top))))
            .map_err(plot_err)?;
    }

    let max_count = c.counts.iter().copied().max().unwrap_or(0).max(1);
    let digits = max_count.to_string().len() as f64;
    let count_size = (cell as f64 * 0.36).min(cell as f64 * 1.5 / digits.max(1.0)).clamp(9.0, 26.0);
    for i in 0..k {
        let row = c.row_total(i).max(1) as f64;
        for j in 0..k {
            let n = c.get(i, j);
            let level = shade_level(n as f64 / row);
            let (x, y) = (x0 + j as i32 * cell, y0 + i as i32 * cell);
            root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], shade(level).filled())).map_err(plot_err)?;
            let color = if level > 0.6 { WHITE } else { BLACK };
            let style = (FAMILY, count_size).into_font().color(&color).pos(center(mid));
            root.draw(&Text::new(n.to_string(), (x + cell / 2, y + cell / 2), style)).map_err(plot_err)?;
        }
    }
    // thin grid lines and a frame
    let line = RGBColor(200, 200, 200);
    for t in 0..=k as i32 {
        let p = t * cell;
        root.draw(&PathElement::new(vec![(x0 + p, y0), (x0 + p, y0 + grid)], line)).map_err(plot_err)?;
        root.draw(&PathElement::new(vec![(x0, y0 + p), (x0 + grid, y0 + p)], line)).map_err(plot_err)?;
    }
    root.draw(&Rectangle::new([(x0, y0), (x0 + grid, y0 + grid)], BLACK.stroke_width(1))).map_err(plot_err)?;

    // class names on both axes, per-row totals and recall on the right
    let label_size = (cell as f64 * 0.32).clamp(11.0, 16.0);
    for (t, name) in c.names.iter().enumerate() {
        let m = t as i32 * cell + cell / 2;
        let style = font(label_size).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new(name.clone(), (x0 + m, y0 + grid + 8), style)).map_err(plot_err)?;
        let style = font(label_size).pos(Pos::new(HPos::Right, VPos::Center));
        root.draw(&Text::new(name.clone(), (x0 - 10, y0 + m), style)).map_err(plot_err)?;
        let recall = 100.0 * c.get(t, t) as f64 / c.row_total(t).max(1) as f64;
        let style = font(12.0).color(&GREY).pos(Pos::new(HPos::Left, VPos::Center));
        root.draw(&Text::new(format!("{:.1} % of {}", recall, c.row_total(t)), (x0 + grid + 10, y0 + m), style))
            .map_err(plot_err)?;
    }
    let style = font(12.0).color(&GREY).pos(Pos::new(HPos::Left, VPos::Bottom));
    root.draw(&Text::new("recall", (x0 + grid + 10, y0 - 6), style)).map_err(plot_err)?;
    let axis = font(16.0);
    root.draw(&Text::new("predicted class", (x0 + grid / 2, y0 + grid + 36), axis.pos(Pos::new(HPos::Center, VPos::Top))))
        .map_err(plot_err)?;
    let rotated = axis.transform(FontTransform::Rotate270).pos(mid);
    root.draw(&Text::new("true class", (28, y0 + grid / 2), rotated)).map_err(plot_err)?;
    root.draw(&Text::new(
        "shade: share of the true class's samples (row-normalised, log scale); right: recall of each class",
        (w as i32 / 2, y0 + grid + 66),
        font(12.0).color(&GREY).pos(Pos::new(HPos::Center, VPos::Top)),
    ))
    .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// `confusion.png` as bytes.
pub fn confusion_png(c: &Confusion, title: &str) -> Result<Vec<u8>> {
    svg_to_png(&render_svg(confusion_size(c.classes), |root| draw_confusion(root, c, title))?)
}

/// Writes `confusion.csv` and `confusion.png` into `dir`.
pub fn write_confusion(dir: &Path, c: &Confusion, title: &str) -> Result<()> {
    write_atomic(&dir.join("confusion.csv"), c.to_csv().as_bytes())?;
    write_atomic(&dir.join("confusion.png"), &confusion_png(c, title)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::wrap_title;

    #[test]
    fn long_titles_wrap_at_a_separator() {
        assert_eq!(wrap_title("short, title", 20), vec!["short, title"]);
        let t = "runs/a/model.safetensors | seed002: 784-64-10 sigmoid/softmax, sgd lr 0.7";
        assert_eq!(wrap_title(t, 50), vec!["runs/a/model.safetensors |", "seed002: 784-64-10 sigmoid/softmax, sgd lr 0.7"]);
        assert_eq!(wrap_title("alpha, beta, gamma, delta", 14), vec!["alpha, beta,", "gamma, delta"]);
        // no separator: a hard cut; a second line still too long ends in "…"
        assert_eq!(wrap_title("abcdefghij", 4), vec!["abcd", "efg…"]);
    }
}
