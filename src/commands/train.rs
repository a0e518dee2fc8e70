//! `gpu-nn train`: resolve the configuration, load the data, pick the backend, train, and
//! write the run directory as it goes (`run_dir`); `gpu-nn train --resume DIR` continues a run
//! from its checkpoint. The first Ctrl-C stops after the step in progress and writes a
//! checkpoint; a second quits at once (files are written atomically, so the previous
//! checkpoint survives).

use crate::atomic_file::write_atomic;
use crate::commands::args::TrainArgs;
use crate::commands::config_args::ConfigArgs;
use crate::commands::run_dir::{execute, lock_run_dir, prepare_out_dir, run_dir_bytes};
use crate::commands::setup::{Engine, make_engine, prepare};
use crate::core::checkpoint::{CHECKPOINT_FILE, read_checkpoint};
use crate::core::config::{BackendKind, Config};
use crate::core::metrics::to_csv;
use crate::nn::optim::Schedule;
use crate::core::run_state::RunState;
use crate::core::train::{Controls, Outcome, RunResult, step_counts};
use crate::report::console::Console;
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Exit status of a run stopped by Ctrl-C after writing its checkpoint: 128 + SIGINT, what a
/// shell reports for a process that Ctrl-C ended, so scripts see that the run is not complete.
pub const EXIT_INTERRUPTED: u8 = 130;

/// The command: the first Ctrl-C asks the loop to stop after the step in progress (on the
/// GPU, the submission in progress) and write a checkpoint; a second one quits at once.
pub fn run(args: TrainArgs) -> Result<Outcome> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    let handler = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond interrupt: quitting without a checkpoint of the current step");
            std::process::exit(EXIT_INTERRUPTED as i32);
        }
        eprintln!("\ninterrupt: finishing the current step and writing a checkpoint (Ctrl-C again quits at once)");
    });
    if let Err(e) = handler {
        eprintln!("note: cannot catch Ctrl-C ({e}); an interrupt will end the run without a checkpoint");
    }
    let ctl = Controls { interrupt: Some(&interrupt), stop_after_steps: args.stop_after_steps, ..Default::default() };
    let console = Console::new(args.log_format, args.quiet).with_verbose(args.verbose);
    let result = match &args.resume {
        Some(dir) => resume_command(dir, &args.cfg, ctl, &console)?,
        None => train_with(&args.cfg.resolve()?, args.out.clone(), args.force, ctl, &console)?,
    };
    Ok(result.outcome)
}

/// Trains `cfg` as `gpu-nn train` does, text output (nothing but errors when `quiet`).
pub fn train_command(cfg: &Config, out: Option<PathBuf>, force: bool, quiet: bool) -> Result<RunResult> {
    let console = if quiet { Console::quiet() } else { Console::text() };
    train_with(cfg, out, force, Controls::default(), &console)
}

/// `train_command` with stop requests (Ctrl-C, `--stop-after-steps`) and a console.
pub fn train_with(cfg: &Config, out: Option<PathBuf>, force: bool, ctl: Controls, console: &Console) -> Result<RunResult> {
    // held until the run ends: no second run writes into the same directory meanwhile
    let _lock = match &out {
        Some(dir) => Some(prepare_out_dir(dir, force)?),
        None => None,
    };
    if let Some(dir) = &out {
        // a full disk is reported now rather than as a failed write after hours of training
        let need = run_dir_bytes(cfg);
        if let Ok(free) = fs4::available_space(dir) {
            if free < need {
                bail!(
                    "--out {}: only {} KiB free on its file system; this run writes up to {} KiB (model, checkpoint, pictures)",
                    dir.display(),
                    free >> 10,
                    need >> 10
                );
            }
        }
    }
    let mut cfg = cfg.clone();
    let data = prepare(&mut cfg, console)?;
    let cfg = &cfg;
    let (mut backend, engine) = make_engine(cfg, cfg.training.batch_size.resolve(data.train.len()), console)?;
    console.info(&format!(
        "training {} ({}; {}) on {} ({} train{}{} samples) with {}",
        cfg.model.layers.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("-"),
        cfg.model.activations.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "),
        cfg.model.loss,
        cfg.data.dataset.name(),
        data.train.len(),
        data.val.as_ref().map(|v| format!(", {} val", v.len())).unwrap_or_default(),
        data.test.as_ref().map(|t| format!(", {} test", t.len())).unwrap_or_default(),
        backend.describe()
    ));
    if let Some(dir) = &out {
        write_atomic(&dir.join("config.json"), serde_json::to_string_pretty(cfg)?.as_bytes())?;
    }
    let (params, checked) = cfg.initial_params_checked()?;
    if let (Some(path), Some(checked)) = (&cfg.init_from, checked) {
        if let Some(note) = checked.note(path) {
            console.note(&note);
        }
    }
    backend.set_params(&params)?;
    crate::core::train::attach_all(&data, backend.as_mut())?;
    execute(cfg, &data, backend.as_mut(), engine, out, console, RunState::default(), ctl, None)
}

/// Flags that may accompany `--resume`: they change neither the steps nor their maths.
const RESUME_FLAGS: &str = "--epochs, --max-steps, --data, --adapter, --threads and --quiet";

/// `gpu-nn train --resume DIR`: continues the run in DIR from its checkpoint, with the same
/// batches, learning rates and optimiser state it would have had without the interruption.
/// `flags` may only extend the run (`--epochs`, `--max-steps`) or say where the data and the
/// adapter are.
pub fn resume_command(dir: &Path, flags: &ConfigArgs, ctl: Controls, console: &Console) -> Result<RunResult> {
    let name = dir.display();
    let changing = flags.flags_changing_the_maths()?;
    if !changing.is_empty() {
        bail!(
            "--resume continues {name} exactly as it was configured; {} would change the training (with --resume only {RESUME_FLAGS} may be given; to change it, start a new run with --config {name}/config.json --out NEW_DIR)",
            changing.join(", ")
        );
    }
    let cfg_path = dir.join("config.json");
    if !cfg_path.is_file() {
        bail!("--resume {name}: no config.json there; is it a run directory written by gpu-nn train --out?");
    }
    let ck_path = dir.join(CHECKPOINT_FILE);
    if !ck_path.is_file() {
        bail!(
            "--resume {name}: no {CHECKPOINT_FILE}: the run ended before its first checkpoint; start it again with gpu-nn train --config {name}/config.json --out {name} --force"
        );
    }
    // held until the run ends, taken before the checkpoint is read: no other run writes here
    let _lock = lock_run_dir(dir)?;
    let mut cfg = flags.resolve_over(&[Config::load_file(&cfg_path)?])?;
    let (ck, checked) = read_checkpoint(&ck_path)?;
    if let Some(note) = checked.note(&ck_path) {
        console.note(&note);
    }
    // read through the defaults, so settings added to gpu-nn after the checkpoint compare equal
    let trained = Config::from_layers(std::slice::from_ref(&ck.meta.config))
        .map_err(|e| anyhow::anyhow!("{}: the configuration in the checkpoint is invalid: {e:#}", ck_path.display()))?
        .maths_only();
    if trained != cfg.maths_only() {
        let diff = crate::core::config::first_difference(&serde_json::to_value(&trained)?, &serde_json::to_value(cfg.maths_only())?)
            .unwrap_or_default();
        bail!(
            "--resume {name}: config.json differs from the configuration {CHECKPOINT_FILE} was trained with ({diff}, checkpoint vs config.json); restore it, or start a new run with --config {name}/config.json --out NEW_DIR"
        );
    }
    let state = ck.meta.state.clone();
    let needed = state.epoch + (state.step_in_epoch > 0) as usize;
    if cfg.training.epochs < needed {
        bail!("--epochs {}: the run in {name} is already at {}; give at least --epochs {needed}", cfg.training.epochs, state.describe());
    }
    if let Some(m) = cfg.training.max_steps.filter(|&m| m < state.step) {
        bail!("--max-steps {m}: the run in {name} has already taken {} steps", state.step);
    }
    if matches!(cfg.optimizer.schedule, Schedule::Cosine { .. }) && (flags.epochs.is_some() || flags.max_steps.is_some()) {
        console.note("note: the cosine schedule spans the whole run; a new length changes the learning rate of the remaining steps");
    }
    let done = state.stopped_early
        || (state.step_in_epoch == 0 && state.epoch >= cfg.training.epochs)
        || cfg.training.max_steps.is_some_and(|m| state.step >= m);
    if done {
        if state.stopped_early {
            console.info(&format!("nothing to resume: early stopping ended the run in {name} after epoch {}", state.epoch));
        } else {
            console.info(&format!("nothing to resume: the run in {name} is complete ({}); give a larger --epochs or --max-steps to extend it", state.describe()));
        }
        let outcome = if state.stopped_early { Outcome::StoppedEarly } else { Outcome::Finished };
        return Ok(RunResult { metrics: state.history.clone(), test: None, steps: state.step, outcome, state });
    }

    let data = prepare(&mut cfg, console)?;
    let n = data.train.len();
    let (steps_per_epoch, _) = step_counts(&cfg, n);
    if state.step != (state.epoch * steps_per_epoch + state.step_in_epoch) as u64 || state.step_in_epoch > steps_per_epoch {
        bail!(
            "--resume {name}: the checkpoint is at step {} ({}), which does not fit {steps_per_epoch} steps per epoch over the {n} training samples of {}; is --data the same data set?",
            state.step,
            state.describe(),
            data.train.source
        );
    }
    // `auto` resumes on the engine the run was computed on, if it is there (auto's own choice
    // may have changed since, e.g. it no longer takes a CPU-emulated adapter)
    if cfg.backend.kind == BackendKind::Auto {
        cfg.backend.kind = if ck.meta.engine == Engine::Gpu.name() { BackendKind::Gpu } else { BackendKind::Cpu };
    }
    let (mut backend, engine) = make_engine(&cfg, cfg.training.batch_size.resolve(n), console)?;
    if engine.name() != ck.meta.engine {
        bail!(
            "--resume {name}: the run was computed on {} but would now run on {} ({}); resuming on another engine would change the results",
            ck.meta.engine,
            engine.name(),
            backend.describe()
        );
    }
    backend.set_params(&ck.params)?;
    backend.set_optimizer_state(&ck.optim)?;
    crate::core::train::attach_all(&data, backend.as_mut())?;
    console.info(&format!("resuming {name} from {} ({} epochs in all) with {}", state.describe(), cfg.training.epochs, backend.describe()));
    // config.json says how long the run now is; metrics.csv holds exactly the checkpoint's rows
    write_atomic(&cfg_path, serde_json::to_string_pretty(&cfg)?.as_bytes())?;
    if !state.history.is_empty() {
        write_atomic(&dir.join("metrics.csv"), to_csv(&state.history).as_bytes())?;
    }
    let at = state.describe();
    execute(&cfg, &data, backend.as_mut(), engine, Some(dir.to_path_buf()), console, state, ctl, Some(at))
}

