//! `gpu-nn sweep`: a batch-size × learning-rate grid (doc 003's tables, doc 000's sweeps).
//! Rows are batch sizes, columns learning rates; every other setting comes from the preset and
//! flags, and every cell trains from the same seed (same initial weights, same batch order for
//! the same batch size). Writes `sweep.csv`, `sweep.md` and one `curves-batch-B.png`/`.svg` per
//! row (test accuracy per epoch, one line per learning rate); with `--keep-runs` also a run
//! directory per cell, as `gpu-nn train --out` writes it.
//!
//! What the cells share:
//! - the data: loaded (and decoded) once, handed to every backend as the same `Arc`s;
//! - on the GPU, one device (`Gpu` clones share wgpu's device and queue): the adapter is
//!   selected and the device opened once per sweep. And one backend (kernels compiled, buffers
//!   allocated, training and test sets uploaded once) for every cell whose batch size gives the
//!   same micro-batch size (`GpuBackend::rows_cap_for`; every batch up to 1024 on usual
//!   adapters). A cell only replaces the parameters, which also zeroes the optimiser state and
//!   its step counter (`Backend::set_params`); the learning rate reaches the kernels per step,
//!   so nothing else in the backend depends on it. A batch size with another micro-batch size
//!   gets a new backend on the same device, which uploads the data again.
//! - on the CPU, nothing but the data: each cell gets a fresh backend (they are cheap).
//!
//! Each cell therefore computes exactly what `gpu-nn train` computes for the same flags with
//! one `--lr` and one `--batch-size` (tests/sweep.rs compares them).

use crate::atomic_file::write_atomic;
use crate::commands::args::SweepArgs;
use crate::commands::config_args::ConfigArgs;
use crate::commands::run_dir::{diverged, execute, lock_run_dir, prepare_out_dir};
use crate::commands::setup::{Engine, cpu_backend, gpu_or_cpu, kernel_choice, prepare};
use crate::core::backend::Backend;
use crate::core::config::Config;
use crate::core::metrics::EpochMetrics;
use crate::core::run_data::{self, RunData};
use crate::core::run_state::RunState;
use crate::core::train::{Controls, RunResult, Silent};
use crate::gpu::{Gpu, GpuBackend};
use crate::report::console::Console;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct SweepOptions {
    /// The flags; `lr` and `batch_size` may hold lists (the grid's columns and rows).
    pub flags: ConfigArgs,
    pub out: PathBuf,
    /// Keep a run directory per cell under `out/runs/`.
    pub keep_runs: bool,
    /// Overwrite an earlier sweep (and its run directories) in `out`.
    pub force: bool,
    pub quiet: bool,
}

/// How one cell ended.
#[derive(Clone, Debug)]
pub enum CellOutcome {
    /// Every epoch's metrics.
    Trained(Vec<EpochMetrics>),
    /// The loss or the weights stopped being finite (doc 003's largest learning rates); the
    /// error message. The sweep goes on with the next cell.
    Diverged(String),
}

#[derive(Clone, Debug)]
pub struct Cell {
    /// The batch size as configured ("20" or "full").
    pub batch: String,
    pub lr: f64,
    pub outcome: CellOutcome,
    /// Wall time of the cell: setting the weights, training, evaluating (and writing its run
    /// directory with `--keep-runs`).
    pub seconds: f64,
}

impl Cell {
    fn metrics(&self) -> &[EpochMetrics] {
        match &self.outcome {
            CellOutcome::Trained(m) => m,
            CellOutcome::Diverged(_) => &[],
        }
    }
    /// Test accuracy (fraction) after the last epoch.
    pub fn final_test_acc(&self) -> Option<f64> {
        self.metrics().last().and_then(|m| m.test_acc)
    }
    /// The best test accuracy and the (1-based) epoch that first reached it.
    pub fn best_test_acc(&self) -> Option<(f64, usize)> {
        let mut best: Option<(f64, usize)> = None;
        for m in self.metrics() {
            if let Some(a) = m.test_acc {
                if best.is_none_or(|(b, _)| a > b) {
                    best = Some((a, m.epoch));
                }
            }
        }
        best
    }
    pub fn final_train_loss(&self) -> Option<f64> {
        self.metrics().last().map(|m| m.train_loss)
    }
    /// Test accuracy of every epoch (NaN where there is none).
    pub fn test_curve(&self) -> Vec<f64> {
        self.metrics().iter().map(|m| m.test_acc.unwrap_or(f64::NAN)).collect()
    }
}

pub struct Sweep {
    /// Row labels (batch sizes) and column labels (learning rates), in the order given.
    pub batches: Vec<String>,
    pub lrs: Vec<f64>,
    /// Row-major: cell (r, c) is `cells[r * lrs.len() + c]`.
    pub cells: Vec<Cell>,
    /// What computed the cells (`Backend::describe`).
    pub engine: String,
    /// GPU devices opened (1 on the GPU, 0 on the CPU).
    pub devices_opened: usize,
    /// Backends built; on the GPU each one uploads the data once.
    pub backends_built: usize,
}

impl Sweep {
    pub fn cell(&self, row: usize, col: usize) -> &Cell {
        &self.cells[row * self.lrs.len() + col]
    }
}

/// What trains the cells: the CPU (a fresh backend per cell) or one device and the backend
/// kept while the micro-batch size stays the same.
enum Runner {
    Cpu,
    Gpu { gpu: Gpu, current: Option<(usize, GpuBackend)> },
}

/// The engine `setup::make_engine` would pick, with the device opened once for the sweep.
fn runner(cfg: &Config, console: &Console) -> Result<Runner> {
    let open = || Gpu::new(cfg.backend.adapter.as_deref(), console.quiet);
    Ok(match gpu_or_cpu(cfg, console, open)? {
        Some(gpu) => Runner::Gpu { gpu, current: None },
        None => Runner::Cpu,
    })
}

/// "0.05" → "0.05", "4" → "4": the learning rate as given, for labels and directory names.
fn lr_label(lr: f64) -> String {
    format!("{lr}")
}

/// Directory of a cell's run under `out` (with `--keep-runs`).
pub fn run_dir(out: &Path, batch: &str, lr: f64) -> PathBuf {
    out.join("runs").join(format!("batch-{batch}-lr-{}", lr_label(lr)))
}

/// Base name of a row's picture: `curves-batch-20`.
pub fn row_picture_stem(batch: &str) -> String {
    format!("curves-batch-{batch}")
}

pub fn run(args: SweepArgs) -> Result<()> {
    sweep_command(&SweepOptions { flags: args.cfg, out: args.out, keep_runs: args.keep_runs, force: args.force, quiet: args.quiet }).map(|_| ())
}

/// The whole `sweep` command.
pub fn sweep_command(o: &SweepOptions) -> Result<Sweep> {
    let console = if o.quiet { Console::quiet() } else { Console::text() };
    let f = &o.flags;
    // the grid, each cell's configuration resolved (and validated) before anything trains
    let mut single = f.clone();
    single.lr = None;
    single.batch_size = None;
    let mut base = single.resolve()?;
    let lrs: Vec<f64> = match f.lr.as_deref() {
        Some(l) if !l.is_empty() => l.to_vec(),
        _ => vec![base.optimizer.lr],
    };
    let batch_args: Vec<String> = match f.batch_size.as_deref() {
        Some(b) if !b.is_empty() => b.to_vec(),
        _ => vec![base.training.batch_size.to_string()],
    };
    let mut cfgs = Vec::new();
    let mut batches = Vec::new();
    for b in &batch_args {
        for &lr in &lrs {
            let mut one = f.clone();
            one.lr = Some(vec![lr]);
            one.batch_size = Some(vec![b.clone()]);
            cfgs.push(one.resolve()?);
        }
        batches.push(cfgs.last().unwrap().training.batch_size.to_string());
    }
    for (i, b) in batches.iter().enumerate() {
        if batches[..i].contains(b) {
            bail!("--batch-size lists {b} twice");
        }
    }
    for (i, lr) in lrs.iter().enumerate() {
        if lrs[..i].contains(lr) {
            bail!("--lr lists {lr} twice");
        }
    }

    // the output directory, checked before any training
    let out = &o.out;
    if out.exists() && !out.is_dir() {
        bail!("--out {}: exists and is not a directory", out.display());
    }
    if !o.force && (out.join("sweep.csv").exists() || out.join("runs").exists()) {
        bail!("--out {}: already holds a sweep; pass --force to overwrite it", out.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("--out {}: cannot create the directory", out.display()))?;
    // held until the sweep ends: a second sweep does not write the same tables meanwhile
    let _lock = lock_run_dir(out)?;

    // the data, once for every cell (only the batch size and learning rate differ)
    let data = prepare(&mut base, &console)?;
    for cfg in &mut cfgs {
        cfg.model.input_norm = base.model.input_norm;
        run_data::check(cfg, &data)?;
    }
    let mut runner = runner(&base, &console)?;
    let devices_opened = matches!(runner, Runner::Gpu { .. }) as usize;
    let engine = match &runner {
        Runner::Cpu => cpu_backend(&base).0.describe(),
        Runner::Gpu { gpu, .. } => gpu.describe(),
    };
    console.info(&format!(
        "sweep: {} batch size(s) × {} learning rate(s), {} epoch(s) each, on {engine}",
        batches.len(),
        lrs.len(),
        base.training.epochs
    ));

    let mut cells = Vec::new();
    let mut backends_built = 0;
    for (i, cfg) in cfgs.iter().enumerate() {
        let (batch, lr) = (batches[i / lrs.len()].clone(), lrs[i % lrs.len()]);
        let dir = o.keep_runs.then(|| run_dir(out, &batch, lr));
        let start = Instant::now();
        let result = match &mut runner {
            Runner::Cpu => {
                let (mut b, engine) = cpu_backend(cfg);
                backends_built += 1;
                b.set_params(&cfg.initial_params()?)?;
                crate::core::train::attach_all(&data, b.as_mut())?;
                train_cell(cfg, &data, b.as_mut(), engine, dir, o.force)
            }
            Runner::Gpu { gpu, current } => {
                let n_batch = cfg.training.batch_size.resolve(data.train.len());
                let rows = GpuBackend::rows_cap_for(gpu, &cfg.model, n_batch);
                if current.as_ref().is_none_or(|(r, _)| *r != rows) {
                    *current = None; // free the previous backend's buffers first
                    let mut b = GpuBackend::with_gpu(gpu.clone(), &cfg.model, &cfg.optimizer, n_batch, cfg.backend.stream, &kernel_choice(cfg))?;
                    crate::core::train::attach_all(&data, &mut b)?;
                    backends_built += 1;
                    *current = Some((rows, b));
                }
                let b = &mut current.as_mut().unwrap().1;
                // new weights, zeroed optimiser state and step counter: a fresh run
                b.set_params(&cfg.initial_params()?)?;
                train_cell(cfg, &data, b, Engine::Gpu, dir, o.force)
            }
        };
        let seconds = start.elapsed().as_secs_f64();
        let outcome = match result {
            Ok(r) => CellOutcome::Trained(r.metrics),
            // `Diverged`, or the run directory's `RunStopped` around one
            Err(e) if diverged(&e).is_some() => CellOutcome::Diverged(format!("{e}")),
            Err(e) => return Err(e.context(format!("sweep cell batch {batch}, lr {}", lr_label(lr)))),
        };
        let cell = Cell { batch, lr, outcome, seconds };
        console.info(&format!("[{}/{}] {}", i + 1, cfgs.len(), progress_line(&cell)));
        cells.push(cell);
    }
    let sweep = Sweep { batches, lrs, cells, engine, devices_opened, backends_built };

    write_atomic(&out.join("sweep.csv"), to_csv(&sweep).as_bytes())?;
    write_atomic(&out.join("sweep.md"), to_markdown(&sweep, &base).as_bytes())?;
    for (r, batch) in sweep.batches.iter().enumerate() {
        let lines: Vec<(String, Vec<f64>)> = (0..sweep.lrs.len())
            .map(|c| {
                let cell = sweep.cell(r, c);
                let note = if matches!(cell.outcome, CellOutcome::Diverged(_)) { " (diverged)" } else { "" };
                (format!("lr {}{note}", lr_label(cell.lr)), cell.test_curve())
            })
            .collect();
        let title = format!("{}, batch {batch}", describe(&base));
        crate::report::plots::write_sweep_row(out, &row_picture_stem(batch), &lines, &title)?;
    }
    console.info(&format!("wrote {}", out.display()));
    Ok(sweep)
}

/// Trains one cell from the backend's current (initial) state: silently, or with `dir` as
/// `gpu-nn train --out dir` would (config.json, metrics.csv, model, checkpoint, pictures).
fn train_cell(cfg: &Config, data: &RunData, backend: &mut dyn Backend, engine: Engine, dir: Option<PathBuf>, force: bool) -> Result<RunResult> {
    match dir {
        None => crate::core::train::train_epochs(cfg, data, backend, &mut Silent, 0),
        Some(dir) => {
            let _lock = prepare_out_dir(&dir, force)?;
            write_atomic(&dir.join("config.json"), serde_json::to_string_pretty(cfg)?.as_bytes())?;
            execute(cfg, data, backend, engine, Some(dir), &Console::quiet(), RunState::default(), Controls::default(), None)
        }
    }
}

fn pct(x: Option<f64>) -> String {
    x.map(|a| format!("{:.2}", 100.0 * a)).unwrap_or_else(|| "–".into())
}

fn progress_line(c: &Cell) -> String {
    let head = format!("batch {}, lr {}", c.batch, lr_label(c.lr));
    match &c.outcome {
        CellOutcome::Diverged(e) => format!("{head}: {e} ({:.2} s)", c.seconds),
        CellOutcome::Trained(_) => {
            let (best, epoch) = c.best_test_acc().map(|(a, e)| (Some(a), e)).unwrap_or((None, 0));
            format!(
                "{head}: test accuracy {} % final, {} % best (epoch {epoch}), train loss {:.5}, {:.2} s",
                pct(c.final_test_acc()),
                pct(best),
                c.final_train_loss().unwrap_or(f64::NAN),
                c.seconds
            )
        }
    }
}

/// The architecture, objective, optimiser and data of the sweep (what all cells share).
fn describe(cfg: &Config) -> String {
    let m = &cfg.model;
    let layers = m.layers.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("-");
    let acts = m.activations.iter().map(|a| a.name()).collect::<Vec<_>>().join("/");
    let mut s = cfg.preset.as_ref().map(|p| format!("{p}: ")).unwrap_or_default();
    s += &format!("{layers} {acts}, {}, {}, {}", m.loss, cfg.optimizer.kind, cfg.data.dataset.name());
    s
}

pub const CSV_HEADER: &str = "batch_size,lr,final_test_acc,best_test_acc,best_epoch,final_train_loss,seconds";

/// One row per cell, row-major; accuracies as fractions (like metrics.csv), printed to full
/// precision; empty fields where a cell diverged or there is no test set.
pub fn to_csv(s: &Sweep) -> String {
    let opt = |x: Option<f64>| x.map(|v| format!("{v}")).unwrap_or_default();
    let mut out = format!("{CSV_HEADER}\n");
    for c in &s.cells {
        let best = c.best_test_acc();
        out += &format!(
            "{},{},{},{},{},{},{:.3}\n",
            c.batch,
            lr_label(c.lr),
            opt(c.final_test_acc()),
            opt(best.map(|b| b.0)),
            best.map(|b| b.1.to_string()).unwrap_or_default(),
            opt(c.final_train_loss()),
            c.seconds
        );
    }
    out
}

/// Markdown: what was swept, then three tables with rows = batch sizes and columns = learning
/// rates (doc 003's layout): final test accuracy, best test accuracy (epoch), seconds.
pub fn to_markdown(s: &Sweep, base: &Config) -> String {
    let mut md = format!("# Sweep: {}\n\n", describe(base));
    md += &format!(
        "{} batch size(s) × {} learning rate(s); {} epoch(s) per cell{}, seed {}, every cell from the same initial weights; computed on {}.\n",
        s.batches.len(),
        s.lrs.len(),
        base.training.epochs,
        base.training.max_steps.map(|m| format!(" (at most {m} steps)")).unwrap_or_default(),
        base.training.seed,
        s.engine
    );
    let table = |title: &str, value: &dyn Fn(&Cell) -> String| {
        let mut t = format!("\n## {title}\n\n| batch \\ lr |");
        for lr in &s.lrs {
            t += &format!(" {} |", lr_label(*lr));
        }
        t += "\n|---|";
        t += &"---:|".repeat(s.lrs.len());
        t.push('\n');
        for (r, b) in s.batches.iter().enumerate() {
            t += &format!("| {b} |");
            for c in 0..s.lrs.len() {
                let cell = s.cell(r, c);
                let v = match cell.outcome {
                    CellOutcome::Diverged(_) => "diverged".to_string(),
                    CellOutcome::Trained(_) => value(cell),
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
    md += &s.batches.iter().map(|b| format!("`{}.png`", row_picture_stem(b))).collect::<Vec<_>>().join(", ");
    md += " (test accuracy per epoch, one line per learning rate).\n";
    md
}
