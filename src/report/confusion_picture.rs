//! The confusion matrix as a picture (`confusion.png`): rows the true class, columns the
//! predicted one, each cell shaded by its share of the row and labelled with its count.

use crate::atomic_file::write_atomic;
use crate::report::confusion::Confusion;
use crate::report::plots::{FAMILY, GREY, font, plot_err, register_font, render_svg, svg_to_png};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

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
