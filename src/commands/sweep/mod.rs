//! `gpu-nn sweep`: a grid of runs over any flags given several values (doc 003's batch ×
//! learning-rate tables, doc 000's comparisons, or widths × depths × optimisers × seeds),
//! on one machine or as the shards of a Slurm or Kubernetes job array.
//!
//! - `grid`: the axes lifted off the command line, the cells' order and names;
//! - `shard`: which cells a process runs (`--shard I/N`, `auto`);
//! - `cell_run`: trains a cell into `DIR/cells/NAME` (skips it when finished, resumes it from
//!   its checkpoint), sharing data, device and GPU backend between cells;
//! - `record`: `DIR/sweep.json` (the plan every shard checks) and each cell's `result.json`;
//! - `tables`: `sweep.csv`, `sweep.md` and the pictures, from the plan and the results.
//!
//! Each cell computes exactly what `gpu-nn train` computes with the same flags and one value
//! per axis (tests/sweep.rs compares them), whichever shard runs it and however often it was
//! interrupted.

pub mod cell_run;
pub mod grid;
pub mod record;
pub mod shard;
pub mod tables;

use crate::commands::args::{Cli, Command, SweepArgs};
use crate::commands::config_args::ConfigArgs;
use crate::core::Settings;
use crate::core::config::Config;
use crate::core::train::Controls;
use crate::report::console::Console;
use anyhow::{Context, Result, bail};
use cell_run::{CellRun, CellRunner};
use clap::Parser;
use grid::Grid;
use record::{CellResult, Plan, identity};
use shard::Shard;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a sweep (or a shard of one) did, and the cells finished so far.
pub struct Sweep {
    pub plan: Plan,
    /// In grid order; `None` where the cell has not finished (another shard's, or missing).
    pub cells: Vec<Option<CellResult>>,
    pub shard: Shard,
    /// This process's cells: trained now (`resumed` of them from a checkpoint), and skipped
    /// because they had finished before.
    pub ran: usize,
    pub resumed: usize,
    pub skipped: usize,
    /// Cells another process held (left to it).
    pub busy: usize,
    /// GPU devices opened and backends built (on the GPU each one uploads the data).
    pub devices_opened: usize,
    pub backends_built: usize,
    /// Whether every cell has finished (and so the report was written).
    pub complete: bool,
    /// Ctrl-C or SIGTERM stopped the sweep in this cell (its checkpoint holds the state).
    pub interrupted: Option<String>,
}

impl Sweep {
    /// The distinct engines that computed the cells.
    pub fn engine(&self) -> String {
        tables::engines(&self.cells)
    }
}

pub fn run(args: SweepArgs, env: &Settings) -> Result<ExitCode> {
    if let Some(dir) = &args.collect {
        let s = collect_command(dir, args.quiet)?;
        let missing: Vec<String> = (0..s.plan.grid.len()).filter(|&k| s.cells[k].is_none()).map(|k| s.plan.grid.cell_name(k)).collect();
        if !missing.is_empty() {
            bail!(
                "sweep --collect {}: {} of {} cells have not finished: {} (the report marks them missing; run their shards again, e.g. cell k belongs to shard k mod N)",
                dir.display(),
                missing.len(),
                s.plan.grid.len(),
                missing.join(", ")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Ctrl-C, or the SIGTERM a scheduler sends before it kills or requeues a task: stop after
    // the step in progress and checkpoint the cell; a second one quits at once
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    let handler = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(crate::commands::train::EXIT_INTERRUPTED as i32);
        }
        eprintln!("\ninterrupt: finishing the current step and writing the cell's checkpoint");
    });
    if let Err(e) = handler {
        eprintln!("note: cannot catch Ctrl-C ({e}); an interrupt loses the steps since the cell's last checkpoint");
    }
    let s = sweep_with(&args, env, Some(&interrupt))?;
    Ok(if s.interrupted.is_some() { ExitCode::from(crate::commands::train::EXIT_INTERRUPTED) } else { ExitCode::SUCCESS })
}

/// A cell's configuration flags: the sweep's own with the cell's value of every axis.
fn cell_flags(tokens: &[String], extra: &[String]) -> Result<ConfigArgs> {
    let argv = ["gpu-nn", "sweep"].iter().map(|s| s.to_string()).chain(tokens.iter().cloned()).chain(extra.iter().cloned());
    match Cli::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{}", e.render().to_string().lines().next().unwrap_or("").trim_start_matches("error: ")))?.command {
        Command::Sweep(a) => Ok(a.cfg),
        _ => unreachable!("the arguments name the sweep subcommand"),
    }
}

/// Axes whose values change the initial weights.
const INIT_AXES: [&str; 7] = ["seed", "init", "init-from", "layers", "hidden", "preset", "config"];

/// The grid and every cell's configuration, resolved (and so validated) before anything
/// trains.
pub fn plan(args: &SweepArgs) -> Result<(Plan, Vec<Config>)> {
    // the constant table dimensions (batch size, learning rate) as the first cell has them
    let first: Vec<String> = args.axes.iter().flat_map(|a| a.tokens(&a.values[0])).collect();
    let first = cell_flags(&args.tokens, &first)?.resolve()?;
    let grid = Grid::lay_out(&args.axes, &first.training.batch_size.to_string(), &format!("{}", first.optimizer.lr));
    grid.check(args.max_cells)?;
    let mut cfgs = Vec::with_capacity(grid.len());
    for k in 0..grid.len() {
        let cfg = cell_flags(&args.tokens, &grid.tokens(k))?.resolve().with_context(|| format!("sweep cell {}", grid.describe(k)))?;
        cfgs.push(cfg);
    }
    let ids: Vec<serde_json::Value> = cfgs.iter().map(identity).collect::<Result<_>>()?;
    let mut seen = std::collections::HashMap::new();
    for (k, id) in ids.iter().enumerate() {
        if let Some(j) = seen.insert(id.to_string(), k) {
            bail!("sweep cells {} and {} are the same configuration; drop one of the values", grid.describe(j), grid.describe(k));
        }
    }
    let varying: Vec<&str> = args.axes.iter().map(|a| a.flag.as_str()).collect();
    let same_init = !varying.iter().any(|f| INIT_AXES.contains(f));
    let title = describe(&cfgs[0], &varying);
    Ok((Plan::new(grid, title, &cfgs[0], same_init, ids), cfgs))
}

/// The whole `sweep --out` command with this process's environment (`environment::read`),
/// without the interrupt handler (tests).
pub fn sweep_command(args: &SweepArgs) -> Result<Sweep> {
    sweep_with(args, &crate::commands::environment::read()?, None)
}

fn sweep_with(args: &SweepArgs, env: &Settings, interrupt: Option<&AtomicBool>) -> Result<Sweep> {
    let console = if args.quiet { Console::quiet() } else { Console::text() };
    let out = args.out.as_deref().context("gpu-nn sweep needs --out DIR (or --collect DIR)")?;
    let shard = match &args.shard {
        Some(spec) => Shard::parse(spec, |k| std::env::var(k).ok())?,
        None => Shard::ALL,
    };
    if !(args.checkpoint_every > 0.0 && args.checkpoint_every.is_finite()) {
        bail!("--checkpoint-every {}: expected a number of seconds above 0", args.checkpoint_every);
    }
    let (plan, cfgs) = plan(args)?;

    if out.exists() && !out.is_dir() {
        bail!("--out {}: exists and is not a directory", out.display());
    }
    if out.join("config.json").exists() {
        bail!("--out {}: holds a run of gpu-nn train (config.json); a sweep needs a directory of its own", out.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("--out {}: cannot create the directory", out.display()))?;
    plan.settle(out, args.force)?;

    let g = &plan.grid;
    let mine: Vec<usize> = (0..g.len()).filter(|&k| shard.owns(k)).collect();
    let dims = g.axes.iter().map(|a| format!("{} {}", a.values.len(), a.name())).collect::<Vec<_>>().join(" × ");
    let part = if shard == Shard::ALL { String::new() } else { format!("; shard {shard}: {} of its {} cells", mine.len(), g.len()) };
    console.info(&format!("sweep {}: {dims}{part}", out.display()));

    let checkpoint_every = Some(std::time::Duration::from_secs_f64(args.checkpoint_every));
    let ctl = Controls { interrupt, checkpoint_every, save_gap: crate::core::train::SAVE_GAP, ..Default::default() };
    let mut runner = CellRunner::new(console, env);
    let (mut ran, mut resumed, mut skipped, mut busy, mut interrupted) = (0, 0, 0, 0, None);
    for (i, &k) in mine.iter().enumerate() {
        let head = format!("[{}/{}] {}", i + 1, mine.len(), g.describe(k));
        let name = g.cell_name(k);
        match runner.run(&cfgs[k], g, k, &plan.cell_dir(out, k), args.force, ctl)? {
            CellRun::Skipped(r) => {
                skipped += 1;
                console.info(&format!("{head}: finished earlier: {}", tables::progress_line(&cfgs[k], &r)));
            }
            CellRun::Ran { result, resumed_from } => {
                ran += 1;
                resumed += resumed_from.is_some() as usize;
                let from = resumed_from.map(|at| format!(" (resumed from {at})")).unwrap_or_default();
                console.info(&format!("{head}: {}{from}", tables::progress_line(&cfgs[k], &result)));
            }
            CellRun::Busy { holder } => {
                busy += 1;
                console.info(&format!("{head}: {holder} is training it; left to that process"));
            }
            CellRun::Interrupted { at } => {
                eprintln!(
                    "interrupted in cell {name} at {at}; its checkpoint is in {}; run the same command again to go on",
                    plan.cell_dir(out, k).display()
                );
                interrupted = Some(name);
                break;
            }
        }
    }
    let (devices_opened, backends_built) = (runner.engines.devices_opened, runner.engines.backends_built);
    drop(runner);

    let cells = read_cells(&plan, out)?;
    let complete = cells.iter().all(Option::is_some);
    if complete {
        tables::write_report(out, &plan, &cells)?;
        console.info(&format!("wrote {}", out.join("sweep.md").display()));
    } else if interrupted.is_none() {
        let left = cells.iter().filter(|c| c.is_none()).count();
        let held = if busy > 0 { format!(" ({busy} of them held by other processes)") } else { String::new() };
        console.info(&format!("shard {shard} done; {left} cell(s) still to finish{held}; then: gpu-nn sweep --collect {}", out.display()));
    }
    Ok(Sweep { plan, cells, shard, ran, resumed, skipped, busy, devices_opened, backends_built, complete, interrupted })
}

/// Every cell's result, where it has finished.
fn read_cells(plan: &Plan, out: &Path) -> Result<Vec<Option<CellResult>>> {
    (0..plan.grid.len()).map(|k| CellResult::read(&plan.cell_dir(out, k))).collect()
}

/// `gpu-nn sweep --collect DIR`: the report from the cells finished in DIR; the cells not
/// finished are marked missing (the caller names them).
pub fn collect_command(dir: &Path, quiet: bool) -> Result<Sweep> {
    let plan = Plan::read(dir)?;
    let cells = read_cells(&plan, dir)?;
    for (k, c) in cells.iter().enumerate() {
        if let Some(c) = c {
            if c.name != plan.grid.cell_name(k) || c.values != plan.grid.values(k) {
                bail!("{}: the result of cell {} sits in cells/{}", dir.display(), c.name, plan.grid.cell_name(k));
            }
        }
    }
    tables::write_report(dir, &plan, &cells)?;
    let complete = cells.iter().all(Option::is_some);
    if !quiet {
        println!("wrote {} ({} of {} cells)", dir.join("sweep.md").display(), cells.iter().flatten().count(), cells.len());
    }
    Ok(Sweep { plan, cells, shard: Shard::ALL, ran: 0, resumed: 0, skipped: 0, busy: 0, devices_opened: 0, backends_built: 0, complete, interrupted: None })
}

/// What all cells share (architecture, objective, optimiser, data), leaving out what varies.
fn describe(cfg: &Config, varying: &[&str]) -> String {
    let m = &cfg.model;
    let v = |f: &str| varying.contains(&f);
    let mut parts = Vec::new();
    if !v("layers") {
        parts.push(m.layers.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("-"));
    }
    if !v("activation") && !v("layers") {
        parts.push(m.activations.iter().map(|a| a.name()).collect::<Vec<_>>().join("/"));
    }
    let mut s = cfg.preset.as_ref().filter(|_| !v("preset")).map(|p| format!("{p}: ")).unwrap_or_default();
    s += &parts.join(" ");
    let mut rest = Vec::new();
    if !v("loss") {
        rest.push(m.loss.to_string());
    }
    if !v("optimizer") {
        rest.push(cfg.optimizer.kind.to_string());
    }
    if !v("dataset") {
        rest.push(cfg.data.name());
    }
    if !rest.is_empty() {
        if !parts.is_empty() {
            s += ", ";
        }
        s += &rest.join(", ");
    }
    s
}

