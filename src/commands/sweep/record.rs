//! What a sweep leaves on disk besides the cells' run directories: `DIR/sweep.json`, the grid
//! and every cell's configuration, written by the first shard to start and checked by every
//! other (so shards of different sweeps never mix in one directory), with TensorBoard's HParams
//! experiment (an event file in DIR) written beside it; and `result.json` in each cell's
//! directory, written atomically when the cell ends: a cell is finished exactly when it is
//! there.

use crate::atomic_file::write_atomic;
use crate::commands::sweep::grid::Grid;
use crate::core::config::Config;
use crate::core::metrics::EpochMetrics;
use crate::report::tensorboard;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

pub const PLAN_FILE: &str = "sweep.json";
pub const RESULT_FILE: &str = "result.json";
pub const CELLS_DIR: &str = "cells";
const FORMAT: u32 = 1;

/// The sweep: its grid, what its tables say of it, and each cell's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    pub grid: Grid,
    /// What every cell shares (architecture, objective, optimiser, data), for titles.
    pub title: String,
    pub epochs: usize,
    pub max_steps: Option<u64>,
    pub seed: u64,
    /// Every cell starts from the same initial weights (no axis changes them).
    pub same_init: bool,
    /// `identity` of each cell's configuration, in grid order.
    pub cells: Vec<Value>,
}

/// A cell's configuration as far as it bears on the results: everything but where the data
/// is, which adapter and how many threads (shards on different machines differ there).
pub fn identity(cfg: &Config) -> Result<Value> {
    let mut c = cfg.clone();
    c.preset = None;
    c.description.clear();
    c.data.dir = None;
    if let Some(f) = &mut c.data.files {
        f.path = Default::default();
        f.test = None;
        f.max_bytes = crate::data::own::DEFAULT_MAX_BYTES;
    }
    // measured from the data the rest names
    if c.data.standardize {
        c.model.input_norm = crate::data::input_norm::InputNorm::IDENTITY;
        c.model.feature_norm = None;
    }
    c.model.classes.clear();
    if c.hidden.is_some() {
        c.model.layers.clear();
    }
    c.backend.adapter = None;
    c.backend.threads = None;
    Ok(serde_json::to_value(c)?)
}

impl Plan {
    pub fn new(grid: Grid, title: String, base: &Config, same_init: bool, cells: Vec<Value>) -> Plan {
        Plan { format: FORMAT, grid, title, epochs: base.training.epochs, max_steps: base.training.max_steps, seed: base.training.seed, same_init, cells }
    }

    pub fn cell_dir(&self, out: &Path, k: usize) -> PathBuf {
        out.join(CELLS_DIR).join(self.grid.cell_name(k))
    }

    /// Reads `DIR/sweep.json`.
    pub fn read(out: &Path) -> Result<Plan> {
        let path = out.join(PLAN_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read the sweep's plan; is {} a sweep's --out directory?", path.display(), out.display()))?;
        let plan: Plan = serde_json::from_str(&text).with_context(|| format!("{}: not a sweep plan gpu-nn can read", path.display()))?;
        if plan.format != FORMAT {
            bail!("{}: sweep plan format {}, this gpu-nn reads format {FORMAT}", path.display(), plan.format);
        }
        if plan.cells.len() != plan.grid.len() {
            bail!("{}: {} cell configurations for a grid of {} cells", path.display(), plan.cells.len(), plan.grid.len());
        }
        Ok(plan)
    }

    /// Writes the plan into `out`, or checks that the one there is the same sweep. With
    /// `force` another sweep's plan is replaced (its cells are recomputed as they come).
    pub fn settle(&self, out: &Path, force: bool) -> Result<()> {
        // temporaries of writers killed mid-write; the shards of this sweep may be writing
        // here right now, so only those old enough to be nobody's write in flight
        crate::atomic_file::remove_stale_temporaries(out, STALE_TEMPORARY)?;
        let path = out.join(PLAN_FILE);
        if path.exists() && !force {
            let there = Plan::read(out)?;
            if there != *self {
                let why = if there.grid != self.grid {
                    format!("its grid is {}, this one {}", shape(&there.grid), shape(&self.grid))
                } else {
                    let k = (0..self.cells.len()).find(|&k| there.cells[k] != self.cells[k]).unwrap_or(0);
                    let diff = crate::core::config::first_difference(&there.cells[k], &self.cells[k]).unwrap_or_default();
                    format!("cell {} differs: {diff} (there vs now)", self.grid.cell_name(k))
                };
                bail!("--out {}: holds another sweep ({why}); use another directory, or --force to replace it", out.display());
            }
            return Ok(());
        }
        if !path.exists() && !force && out.join("sweep.csv").exists() {
            bail!("--out {}: holds a sweep of an earlier gpu-nn (no {PLAN_FILE}); pass --force to overwrite it", out.display());
        }
        write_atomic(&path, serde_json::to_string_pretty(self)?.as_bytes())?;
        // TensorBoard's HParams experiment, beside the plan and written once with it, atomically
        if force {
            tensorboard::remove_event_files(out)?;
        }
        tensorboard::write_experiment(out, &self.grid.hparam_axes())?;
        Ok(())
    }
}

/// How old a temporary file in a sweep's directory, which every shard writes into, must be to
/// be nobody's write in flight.
pub const STALE_TEMPORARY: std::time::Duration = std::time::Duration::from_secs(3600);

/// "4 batch × 4 lr".
fn shape(g: &Grid) -> String {
    g.axes.iter().map(|a| format!("{} {}", a.values.len(), a.name())).collect::<Vec<_>>().join(" × ")
}

/// How one cell ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellOutcome {
    /// Every epoch's metrics.
    Trained(Vec<EpochMetrics>),
    /// The loss or the weights stopped being finite (doc 003's largest learning rates); the
    /// error message. The sweep goes on with the next cell.
    Diverged(String),
}

/// A finished cell: `result.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    pub format: u32,
    /// The directory name under `cells/`.
    pub name: String,
    /// Its value of every grid axis, as typed.
    pub values: Vec<String>,
    pub outcome: CellOutcome,
    /// What computed it (`Backend::describe`).
    pub engine: String,
    /// Training and evaluation time summed over its epochs (a resumed cell's included); for a
    /// diverged cell the time of the attempt that diverged.
    pub seconds: f64,
}

impl CellResult {
    pub fn new(name: String, values: Vec<String>, outcome: CellOutcome, engine: String, seconds: f64) -> CellResult {
        CellResult { format: FORMAT, name, values, outcome, engine, seconds }
    }

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

    /// `dir/result.json`, if the cell finished.
    pub fn read(dir: &Path) -> Result<Option<CellResult>> {
        let path = dir.join(RESULT_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("{}: cannot read the cell's result", path.display())),
        };
        let r: CellResult = serde_json::from_str(&text).with_context(|| format!("{}: not a sweep cell's result gpu-nn can read; remove it to recompute the cell", path.display()))?;
        Ok(Some(r))
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        write_atomic(&dir.join(RESULT_FILE), serde_json::to_string_pretty(self)?.as_bytes())
    }
}
