//! `gpu-nn train`: resolve the configuration, plan the run on its data, start a session on the
//! engine it asks for, train, and write the run directory as it goes (`run_dir`);
//! `gpu-nn train --resume DIR` continues a run from its checkpoint (`Session::resume`). The first Ctrl-C stops after the step in progress and writes a
//! checkpoint; a second quits at once (files are written atomically, so the previous
//! checkpoint survives).

use crate::atomic_file::write_atomic;
use crate::commands::args::TrainArgs;
use crate::commands::config_args::ConfigArgs;
use crate::commands::run_dir::{execute, lock_run_dir, open_session, prepare_out_dir, rewrite_metrics, run_dir_bytes};
use crate::core::checkpoint::{CHECKPOINT_FILE, read_checkpoint};
use crate::core::config::Config;
use crate::core::session::checkpoint_difference;
use crate::core::train::{Controls, Outcome, RunResult};
use crate::core::{Plan, Session, Settings};
use crate::core::metrics::target_reached;
use crate::report::console::Console;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Exit status of a run stopped by Ctrl-C after writing its checkpoint: 128 + SIGINT, what a
/// shell reports for a process that Ctrl-C ended, so scripts see that the run is not complete.
pub const EXIT_INTERRUPTED: u8 = 130;

/// The command: the first Ctrl-C asks the loop to stop after the step in progress (on the
/// GPU, the submission in progress) and write a checkpoint; a second one quits at once.
pub fn run(args: TrainArgs, env: &Settings) -> Result<Outcome> {
    let Ok(save_gap) = std::time::Duration::try_from_secs_f64(args.save_every) else {
        bail!("--save-every {}: expected a number of seconds, 0 or more", args.save_every);
    };
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
    let ctl = Controls { interrupt: Some(&interrupt), stop_after_steps: args.stop_after_steps, save_gap, ..Default::default() };
    let console = Console::new(args.log_format, args.quiet).with_verbose(args.verbose);
    let result = match &args.resume {
        Some(dir) => resume_command(dir, &args.cfg, env, ctl, &console)?,
        None => train_with(&args.cfg.resolve()?, args.out.clone(), args.force, env, ctl, &console)?,
    };
    Ok(result.outcome)
}

/// Trains `cfg` as `gpu-nn train` does, with this process's environment (`environment::read`),
/// text output (nothing but errors when `quiet`).
pub fn train_command(cfg: &Config, out: Option<PathBuf>, force: bool, quiet: bool) -> Result<RunResult> {
    let console = if quiet { Console::quiet() } else { Console::text() };
    train_with(cfg, out, force, &crate::commands::environment::read()?, Controls::default(), &console)
}

/// `train_command` with the settings `env`, stop requests (Ctrl-C, `--stop-after-steps`) and a
/// console.
pub fn train_with(cfg: &Config, out: Option<PathBuf>, force: bool, env: &Settings, ctl: Controls, console: &Console) -> Result<RunResult> {
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
    let plan = Plan::load(cfg.clone(), &env.data, console.quiet)?;
    let mut session = open_session(env, console, |engines| Session::start(plan, engines))?;
    let (cfg, data) = (session.config(), &session.plan().data());
    console.info(&format!(
        "training {} ({}; {}) on {} ({} train{}{} samples) with {}",
        cfg.model.layers.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("-"),
        cfg.model.activations.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "),
        cfg.model.loss,
        cfg.data.name(),
        data.train.len(),
        data.val.as_ref().map(|v| format!(", {} val", v.len())).unwrap_or_default(),
        data.test.as_ref().map(|t| format!(", {} test", t.len())).unwrap_or_default(),
        session.describe()
    ));
    if let Some(dir) = &out {
        write_atomic(&dir.join("config.json"), serde_json::to_string_pretty(session.config())?.as_bytes())?;
    }
    execute(&mut session, out, console, ctl, None, None)
}

/// Flags that may accompany `--resume`: they change neither the steps nor their maths.
const RESUME_FLAGS: &str = "--epochs, --max-steps, --target-acc, --data, --adapter, --threads and --quiet";

/// `gpu-nn train --resume DIR`: continues the run in DIR from its checkpoint, with the same
/// batches, learning rates and optimiser state it would have had without the interruption.
/// `flags` may only extend the run (`--epochs`, `--max-steps`) or say where the data and the
/// adapter are.
pub fn resume_command(dir: &Path, flags: &ConfigArgs, env: &Settings, ctl: Controls, console: &Console) -> Result<RunResult> {
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
    let cfg = flags.resolve_over(&[Config::load_file(&cfg_path)?])?;
    let (ck, checked) = read_checkpoint(&ck_path)?;
    if let Some(note) = checked.note(&ck_path) {
        console.note(&note);
    }
    if let Some(diff) = checkpoint_difference(&ck, &cfg).with_context(|| ck_path.display().to_string())? {
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
    if cfg.optimizer.schedule.spans_the_run() && (flags.epochs.is_some() || flags.max_steps.is_some()) {
        console.note(&format!("note: the {} schedule spans the whole run; a new length changes the learning rate of the remaining steps", cfg.optimizer.schedule.name()));
    }
    let target = cfg.training.target_acc.and_then(|a| target_reached(&state.history, a, cfg.training.target_split(cfg.data.val_split)));
    if let Some(t) = target {
        console.info(&format!(
            "nothing to resume: the run in {name} reached --target-acc {} at epoch {} ({} accuracy {:.2} %); give a higher --target-acc to go on",
            t.target,
            t.epoch,
            t.split.name(),
            100.0 * t.accuracy
        ));
        return Ok(RunResult { metrics: state.history.clone(), test: None, steps: state.step, outcome: Outcome::ReachedTarget, state });
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

    let plan = Plan::load(cfg, &env.data, console.quiet)?;
    let mut session = open_session(env, console, |engines| Session::resume(plan, &ck, engines)).with_context(|| format!("--resume {name}"))?;
    console.info(&format!("resuming {name} from {} ({} epochs in all) with {}", state.describe(), session.config().training.epochs, session.describe()));
    // config.json says how long the run now is; metrics.csv holds exactly the checkpoint's rows
    write_atomic(&cfg_path, serde_json::to_string_pretty(session.config())?.as_bytes())?;
    rewrite_metrics(dir, &state)?;
    execute(&mut session, Some(dir.to_path_buf()), console, ctl, Some(state.describe()), None)
}

