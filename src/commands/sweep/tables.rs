//! A sweep's report, from its plan and the finished cells: `sweep.csv` (one row per cell),
//! `sweep.md` (tables of final and best test accuracy and of seconds: rows = the row axes'
//! combinations, columns = the column axis, doc 003's layout for batch × lr) and one picture
//! per table row (test accuracy per epoch, one line per column value). A cell not finished yet
//! is left out of the CSV and marked "missing" in the tables.

use crate::atomic_file::write_atomic;
use crate::commands::sweep::grid::{Axis, Grid, label};
use crate::commands::sweep::record::{CellOutcome, CellResult, Plan};
use crate::core::config::Config;
use anyhow::Result;
use std::path::Path;

/// The CSV header of a batch × lr sweep; another axis adds its column after `lr`.
pub const CSV_HEADER: &str = "batch_size,lr,final_test_acc,best_test_acc,best_epoch,final_train_loss,seconds";

fn is_batch_or_lr(a: &Axis) -> bool {
    a.flag == "batch-size" || a.flag == "lr"
}

pub fn csv_header(grid: &Grid) -> String {
    let extra: Vec<String> = grid.axes.iter().filter(|a| !is_batch_or_lr(a)).map(Axis::column).collect();
    let mut h = "batch_size,lr".to_string();
    for c in extra {
        h += &format!(",{c}");
    }
    h + ",final_test_acc,best_test_acc,best_epoch,final_train_loss,seconds"
}

/// A CSV field: quoted when it holds a comma or a quote (`784,32,10`).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// One row per finished cell, in grid order; accuracies as fractions (like metrics.csv),
/// printed to full precision; empty fields where a cell diverged or there is no test set.
pub fn to_csv(plan: &Plan, cells: &[Option<CellResult>]) -> Result<String> {
    let opt = |x: Option<f64>| x.map(|v| format!("{v}")).unwrap_or_default();
    let mut out = csv_header(&plan.grid) + "\n";
    for (k, c) in cells.iter().enumerate() {
        let Some(c) = c else { continue };
        let cfg: Config = serde_json::from_value(plan.cells[k].clone())?;
        let mut row = vec![cfg.training.batch_size.to_string(), format!("{}", cfg.optimizer.lr)];
        for (a, v) in plan.grid.axes.iter().zip(plan.grid.values(k)) {
            if !is_batch_or_lr(a) {
                row.push(field(&v));
            }
        }
        let best = c.best_test_acc();
        row.extend([
            opt(c.final_test_acc()),
            opt(best.map(|b| b.0)),
            best.map(|b| b.1.to_string()).unwrap_or_default(),
            opt(c.final_train_loss()),
            format!("{:.3}", c.seconds),
        ]);
        out += &(row.join(",") + "\n");
    }
    Ok(out)
}

fn pct(x: Option<f64>) -> String {
    x.map(|a| format!("{:.2}", 100.0 * a)).unwrap_or_else(|| "–".into())
}

/// "batch size(s)", "learning rate(s)", "value(s) of --seed".
fn noun(a: &Axis) -> String {
    match a.flag.as_str() {
        "batch-size" => "batch size(s)".into(),
        "lr" => "learning rate(s)".into(),
        f => format!("value(s) of --{f}"),
    }
}

/// The line a cell prints when it ends: its accuracies and time, or why it diverged.
pub fn progress_line(c: &CellResult) -> String {
    match &c.outcome {
        CellOutcome::Diverged(e) => format!("{e} ({:.2} s)", c.seconds),
        CellOutcome::Trained(_) => {
            let (best, epoch) = c.best_test_acc().map(|(a, e)| (Some(a), e)).unwrap_or((None, 0));
            format!(
                "test accuracy {} % final, {} % best (epoch {epoch}), train loss {:.5}, {:.2} s",
                pct(c.final_test_acc()),
                pct(best),
                c.final_train_loss().unwrap_or(f64::NAN),
                c.seconds
            )
        }
    }
}

/// The distinct engines that computed the cells, in order of first use.
pub fn engines(cells: &[Option<CellResult>]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for c in cells.iter().flatten() {
        if !seen.contains(&c.engine.as_str()) {
            seen.push(&c.engine);
        }
    }
    if seen.is_empty() { "nothing yet".into() } else { seen.join("; ") }
}

/// Markdown: what was swept, then three tables (final test accuracy, best test accuracy and
/// its epoch, seconds), rows = row axes, columns = the column axis.
pub fn to_markdown(plan: &Plan, cells: &[Option<CellResult>]) -> String {
    let g = &plan.grid;
    let col = g.column();
    let varies = |flag: &str| g.axes.iter().any(|a| a.flag == flag && a.values.len() > 1);
    let mut md = format!("# Sweep: {}\n\n", plan.title);
    let dims = g.axes.iter().map(|a| format!("{} {}", a.values.len(), noun(a))).collect::<Vec<_>>().join(" × ");
    let epochs = if varies("epochs") { "the epochs of its column or row".to_string() } else { format!("{} epoch(s)", plan.epochs) };
    let max = plan.max_steps.filter(|_| !varies("max-steps")).map(|m| format!(" (at most {m} steps)")).unwrap_or_default();
    let init = if plan.same_init {
        format!("seed {}, every cell from the same initial weights", plan.seed)
    } else if varies("seed") {
        "each cell's initial weights from its own seed and settings".to_string()
    } else {
        format!("seed {}, each cell's initial weights from its own settings", plan.seed)
    };
    md += &format!("{dims}; {epochs} per cell{max}, {init}; computed on {}.\n", engines(cells));
    let missing: Vec<String> = (0..g.len()).filter(|&k| cells[k].is_none()).map(|k| g.cell_name(k)).collect();
    if !missing.is_empty() {
        md += &format!("\n**{} of {} cells missing** (not finished yet): {}.\n", missing.len(), g.len(), missing.join(", "));
    }
    let corner = format!("{} \\ {}", g.row_axes().iter().map(Axis::name).collect::<Vec<_>>().join(", "), col.name());
    let table = |title: &str, value: &dyn Fn(&CellResult) -> String| {
        let mut t = format!("\n## {title}\n\n| {corner} |");
        for v in &col.values {
            t += &format!(" {} |", label(&col.flag, v));
        }
        t += "\n|---|";
        t += &"---:|".repeat(col.values.len());
        t.push('\n');
        for r in 0..g.rows() {
            t += &format!("| {} |", g.row_label(r));
            for c in 0..col.values.len() {
                let v = match &cells[r * col.values.len() + c] {
                    None => "missing".to_string(),
                    Some(cell) => match cell.outcome {
                        CellOutcome::Diverged(_) => "diverged".to_string(),
                        CellOutcome::Trained(_) => value(cell),
                    },
                };
                t += &format!(" {v} |");
            }
            t.push('\n');
        }
        t
    };
    md += &table("Final test accuracy (%)", &|c| pct(c.final_test_acc()));
    md += &table("Best test accuracy (%) and its epoch", &|c| match c.best_test_acc() {
        Some((a, e)) => format!("{} ({e})", pct(Some(a))),
        None => "–".into(),
    });
    md += &table("Seconds per cell", &|c| format!("{:.2}", c.seconds));
    md += "\nPictures: ";
    md += &(0..g.rows()).map(|r| format!("`{}.png`", g.row_picture_stem(r))).collect::<Vec<_>>().join(", ");
    let per = if col.flag == "lr" { "learning rate".to_string() } else { format!("value of --{}", col.flag) };
    md += &format!(" (test accuracy per epoch, one line per {per}).\n");
    md
}

/// Writes sweep.csv, sweep.md and the pictures into `out`.
pub fn write_report(out: &Path, plan: &Plan, cells: &[Option<CellResult>]) -> Result<()> {
    write_atomic(&out.join("sweep.csv"), to_csv(plan, cells)?.as_bytes())?;
    write_atomic(&out.join("sweep.md"), to_markdown(plan, cells).as_bytes())?;
    let g = &plan.grid;
    let col = g.column();
    for r in 0..g.rows() {
        let lines: Vec<(String, Vec<f64>)> = (0..col.values.len())
            .filter_map(|c| {
                let cell = cells[r * col.values.len() + c].as_ref()?;
                let note = if matches!(cell.outcome, CellOutcome::Diverged(_)) { " (diverged)" } else { "" };
                Some((format!("{} {}{note}", col.name(), label(&col.flag, &col.values[c])), cell.test_curve()))
            })
            .collect();
        let title = format!("{}, {}", plan.title, g.row_describe(r));
        crate::report::plots::write_sweep_row(out, &g.row_picture_stem(r), &lines, &title)?;
    }
    Ok(())
}
