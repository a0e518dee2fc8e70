//! Trains the cells of a sweep, each into its own run directory (`DIR/cells/NAME`, as
//! `gpu-nn train --out` writes it), a session per cell, sharing what the cells can share
//! (through one `core::Engines`):
//! - the data: loaded (and decoded) once per data configuration, handed to every backend as
//!   the same `Arc`s;
//! - on the GPU, one device (`Gpu` clones share wgpu's device and queue), opened once; and one
//!   backend (kernels compiled, buffers allocated, data uploaded) for consecutive cells that
//!   differ only in what reaches the kernels per step: the learning rate, the schedule, the
//!   batch size within one micro-batch size (`GpuBackend::rows_cap_for`). A cell only replaces
//!   the parameters, which zeroes the optimiser state and its step counter;
//! - on the CPU, nothing but the data: each cell gets a fresh backend (they are cheap).
//!
//! A cell whose `result.json` exists is finished and skipped; one with a checkpoint resumes
//! from it, so a killed and requeued shard loses at most the steps since its last checkpoint
//! and computes the same bytes as an uninterrupted one.
//!
//! Each cell's TensorBoard event file starts with its values (an HParams session start) and
//! ends with how it ended (success, or failure when it diverged), so that TensorBoard's HParams
//! table compares the cells.

use crate::atomic_file::write_atomic;
use crate::commands::run_dir::{RUN_FILES, RunDirBusy, diverged, execute, lock_run_dir, rewrite_metrics};
use crate::commands::sweep::grid::Grid;
use crate::commands::sweep::record::{CellOutcome, CellResult, RESULT_FILE, identity};
use crate::core::checkpoint::{CHECKPOINT_FILE, read_checkpoint};
use crate::core::config::Config;
use crate::core::run_data::{self, RunData};
use crate::core::session::checkpoint_difference;
use crate::core::train::{Controls, Outcome};
use crate::core::{Engines, Plan, Session, Settings};
use crate::report::console::Console;
use crate::report::tensorboard::{EventWriter, SessionStatus, remove_event_files};
use anyhow::{Result, bail};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// How a cell's turn ended.
pub enum CellRun {
    /// It had finished before (its `result.json`).
    Skipped(CellResult),
    /// It ran to its end now; `resumed_from` says where its checkpoint stood, if it had one.
    Ran { result: CellResult, resumed_from: Option<String> },
    /// Ctrl-C or SIGTERM stopped it between two steps; its checkpoint holds the state.
    Interrupted { at: String },
    /// Another process holds it (a requeued task whose first run still lives, another shard):
    /// left to that process.
    Busy { holder: String },
}

/// The engines and data the cells share.
pub struct CellRunner {
    console: Console,
    env: Settings,
    data: HashMap<String, RunData>,
    pub engines: Engines,
}

impl CellRunner {
    pub fn new(console: Console, env: &Settings) -> CellRunner {
        let env = Settings { quiet: console.quiet, ..env.clone() };
        CellRunner { console, engines: Engines::new(env.clone()), env, data: HashMap::new() }
    }

    /// The plan of `cfg`, its data loaded on first use of its data configuration.
    fn plan(&mut self, cfg: &Config) -> Result<Plan> {
        let key = serde_json::to_string(&cfg.data)?;
        if !self.data.contains_key(&key) {
            let data = run_data::load_with(cfg, &self.env.data, self.console.quiet)?;
            self.data.insert(key.clone(), data);
        }
        Plan::new(cfg.clone(), self.data[&key].clone())
    }

    /// Runs cell `k` of `grid`, of configuration `cfg`, in `dir`: skipped when finished, resumed
    /// from its checkpoint, or trained from the start. With `force` an earlier result there is
    /// discarded. Another configuration's run there is refused (or, with `force`, replaced).
    pub fn run(&mut self, cfg: &Config, grid: &Grid, k: usize, dir: &Path, force: bool, ctl: Controls) -> Result<CellRun> {
        let (name, values) = (grid.cell_name(k), grid.values(k));
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: cannot create the cell's directory: {e}", dir.display()))?;
        // held while the cell runs; a cell another process holds (a requeued task whose first
        // run still lives) is left to it
        let _lock = match lock_run_dir(dir) {
            Ok(lock) => lock,
            Err(e) => match e.downcast::<RunDirBusy>() {
                Ok(busy) => return Ok(CellRun::Busy { holder: busy.holder }),
                Err(e) => return Err(e),
            },
        };
        let cfg_path = dir.join("config.json");
        let stale = if cfg_path.is_file() {
            let there = identity(&Config::from_layers(&[Config::load_file(&cfg_path)?])?)?;
            let now = identity(cfg)?;
            if there != now && !force {
                let diff = crate::core::config::first_difference(&there, &now).unwrap_or_default();
                bail!("{}: holds a run of another configuration ({diff}, there vs this sweep); use another --out, or --force to recompute it", dir.display());
            }
            there != now
        } else {
            false
        };
        if force || stale {
            for f in RUN_FILES.iter().copied().chain([RESULT_FILE]) {
                match std::fs::remove_file(dir.join(f)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => bail!("{}: cannot remove the earlier {f}: {e}", dir.display()),
                    _ => {}
                }
            }
            remove_event_files(dir)?;
        } else if let Some(done) = CellResult::read(dir)? {
            return Ok(CellRun::Skipped(done));
        }

        let plan = self.plan(cfg)?;
        let start = Instant::now();
        let quiet = self.console.quiet;

        // where to start: the checkpoint, if it is this configuration's on this engine
        let ck_path = dir.join(CHECKPOINT_FILE);
        let ck = if ck_path.is_file() { Some(read_checkpoint(&ck_path)?.0) } else { None };
        let engine = self.engines.engine_for(&plan)?;
        for n in self.engines.take_notes() {
            self.console.note(&n);
        }
        let resumable = match &ck {
            Some(ck) => {
                let fits = checkpoint_difference(ck, plan.config())?.is_none() && ck.meta.engine == engine.name();
                if !fits && !quiet {
                    eprintln!("note: {}: its checkpoint was computed on {} (or another configuration); training the cell again on {}", dir.display(), ck.meta.engine, engine.name());
                }
                fits
            }
            None => false,
        };
        let mut session = match &ck {
            Some(ck) if resumable => Session::resume(plan, ck, &mut self.engines)?,
            _ => Session::start(plan, &mut self.engines)?,
        };
        let describe = session.describe();
        let resumed_from = resumable.then(|| session.state().describe());
        if resumed_from.is_none() {
            write_atomic(&cfg_path, serde_json::to_string_pretty(session.config())?.as_bytes())?;
            // what an attempt that never reached a checkpoint (or one on another engine) wrote
            remove_event_files(dir)?;
        } else {
            // metrics.csv holds exactly the checkpoint's rows, as after gpu-nn train --resume
            rewrite_metrics(dir, session.state())?;
        }
        let outcome = if session.is_complete() {
            // killed after its last checkpoint but before its result: the checkpoint has it all
            let done = CellOutcome::Trained(session.state().history.clone());
            session.finish(&mut self.engines);
            done
        } else {
            let at = session.state().describe();
            let r = execute(&mut session, Some(dir.to_path_buf()), &Console::quiet(), ctl, resumed_from.clone(), Some(&grid.session_start(k)));
            session.finish(&mut self.engines);
            match r {
                Ok(r) if r.outcome == Outcome::Interrupted => return Ok(CellRun::Interrupted { at: r.state.describe() }),
                Ok(r) => CellOutcome::Trained(r.metrics),
                Err(e) if diverged(&e).is_some() => CellOutcome::Diverged(format!("{e}")),
                Err(e) => return Err(e.context(format!("sweep cell {name} (resumed from {at})"))),
            }
        };
        let status = match &outcome {
            CellOutcome::Trained(_) => SessionStatus::Success,
            CellOutcome::Diverged(_) => SessionStatus::Failure,
        };
        // before result.json: a cell killed in between writes it on its next turn, not twice
        let mut events = EventWriter::append(dir)?;
        if !events.session_started() {
            events.session_start(&grid.session_start(k))?; // a cell an older gpu-nn trained
        }
        if !events.session_ended() {
            events.session_end(status)?;
        }
        let seconds = match &outcome {
            CellOutcome::Trained(m) => m.iter().map(|m| m.seconds).sum(),
            CellOutcome::Diverged(_) => start.elapsed().as_secs_f64(),
        };
        let result = CellResult::new(name, values, outcome, describe, seconds);
        result.write(dir)?;
        Ok(CellRun::Ran { result, resumed_from })
    }
}
