//! A sweep's report, from its plan and the finished cells: `sweep.csv` (one row per cell),
//! `sweep.md` (tables of final and best test accuracy and of seconds: rows = the row axes'
//! combinations, columns = the column axis, doc 003's layout for batch × lr) and one picture
//! per table row (test accuracy per epoch, one line per column value). A cell not finished yet
//! is left out of the CSV and marked "missing" in the tables. A sweep with `--target-acc` adds
//! when each cell reached it (step and seconds; blank where it did not).

use crate::atomic_file::write_atomic;
use crate::commands::sweep::grid::{Axis, Grid, label};
use crate::commands::sweep::record::{CellOutcome, CellResult, Plan};
use crate::core::config::Config;
use crate::core::metrics::{TargetReached, TargetSplit, target_reached};
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

/// A cell's target accuracy and the split it is measured on, from its configuration.
fn cell_target(cell: &serde_json::Value) -> Result<Option<(f64, TargetSplit)>> {
    let cfg: Config = serde_json::from_value(cell.clone())?;
    Ok(cfg.training.target_acc.map(|a| (a, cfg.training.target_split(cfg.data.val_split))))
}

/// Whether any cell of the sweep has a target accuracy: its report then says when each reached it.
fn has_target(plan: &Plan) -> Result<bool> {
    Ok(plan.cells.iter().map(cell_target).collect::<Result<Vec<_>>>()?.iter().any(Option::is_some))
}

/// Where cell `c` (of configuration `cell`) reached its target accuracy, if it has one and did.
pub fn reached(cell: &serde_json::Value, c: &CellResult) -> Result<Option<TargetReached>> {
    Ok(match (cell_target(cell)?, &c.outcome) {
        (Some((a, split)), CellOutcome::Trained(m)) => target_reached(m, a, split),
        _ => None,
    })
}

/// One row per finished cell, in grid order; accuracies as fractions (like metrics.csv),
/// printed to full precision; empty fields where a cell diverged or there is no test set.
/// With a target accuracy, `target_step` and `target_seconds` end each row (blank when the
/// cell did not reach it).
pub fn to_csv(plan: &Plan, cells: &[Option<CellResult>]) -> Result<String> {
    let opt = |x: Option<f64>| x.map(|v| format!("{v}")).unwrap_or_default();
    let with_target = has_target(plan)?;
    let mut out = csv_header(&plan.grid) + if with_target { ",target_step,target_seconds\n" } else { "\n" };
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
        if with_target {
            let t = reached(&plan.cells[k], c)?;
            row.extend([t.map(|t| t.step.to_string()).unwrap_or_default(), t.map(|t| format!("{:.3}", t.seconds)).unwrap_or_default()]);
        }
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

/// The line a cell of configuration `cell` prints when it ends: its accuracies and time (and
/// when it reached its target accuracy, if it has one), or why it diverged.
pub fn progress_line(cell: &Config, c: &CellResult) -> String {
    match &c.outcome {
        CellOutcome::Diverged(e) => format!("{e} ({:.2} s)", c.seconds),
        CellOutcome::Trained(m) => {
            let (best, epoch) = c.best_test_acc().map(|(a, e)| (Some(a), e)).unwrap_or((None, 0));
            let target = match cell.training.target_acc {
                Some(a) => match target_reached(m, a, cell.training.target_split(cell.data.val_split)) {
                    Some(t) => format!(", target {} % reached at step {} after {:.2} s", pct(Some(a)), t.step, t.seconds),
                    None => format!(", target {} % not reached", pct(Some(a))),
                },
                None => String::new(),
            };
            format!(
                "test accuracy {} % final, {} % best (epoch {epoch}), train loss {:.5}, {:.2} s{target}",
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
/// its epoch, seconds; a fourth, seconds and step to the target, with `--target-acc`), rows =
/// row axes, columns = the column axis.
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
    let table = |title: &str, value: &dyn Fn(usize, &CellResult) -> String| {
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
                let k = r * col.values.len() + c;
                let v = match &cells[k] {
                    None => "missing".to_string(),
                    Some(cell) => match cell.outcome {
                        CellOutcome::Diverged(_) => "diverged".to_string(),
                        CellOutcome::Trained(_) => value(k, cell),
                    },
                };
                t += &format!(" {v} |");
            }
            t.push('\n');
        }
        t
    };
    md += &table("Final test accuracy (%)", &|_, c| pct(c.final_test_acc()));
    md += &table("Best test accuracy (%) and its epoch", &|_, c| match c.best_test_acc() {
        Some((a, e)) => format!("{} ({e})", pct(Some(a))),
        None => "–".into(),
    });
    md += &table("Seconds per cell", &|_, c| format!("{:.2}", c.seconds));
    if has_target(plan).unwrap_or(false) {
        md += &table("Seconds and step to the target accuracy", &|k, c| match reached(&plan.cells[k], c) {
            Ok(Some(t)) => format!("{:.2} (step {})", t.seconds, t.step),
            _ => "not reached".into(),
        });
    }
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
