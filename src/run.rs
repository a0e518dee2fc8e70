//! `gpu-nn train`: resolve the configuration, load the data, pick the backend, train, and write
//! the run directory (config.json, metrics.csv, model.safetensors) as it goes.

use crate::backend::{Backend, StepStats};
use crate::checkpoint::{FileDtype, save_model};
use crate::config::{BackendKind, Config, Precision};
use crate::cpu::{FastBackend, ReferenceBackend};
use crate::fsutil::write_atomic;
use crate::gpu::GpuBackend;
use crate::metrics::{EpochMetrics, to_csv};
use crate::report::LogFormat;
use crate::train::{Observer, RunResult};
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

/// Builds the backend a configuration asks for; `batch` is the resolved batch size. `auto`
/// takes the GPU when an adapter exists (and f32 was asked for), else the CPU.
pub fn make_backend(cfg: &Config, batch: usize, quiet: bool) -> Result<Box<dyn Backend>> {
    let cpu = |p: Precision| -> Box<dyn Backend> {
        match p {
            Precision::F64 => Box::new(ReferenceBackend::new(&cfg.model, &cfg.optimizer)),
            Precision::F32 => Box::new(FastBackend::new(&cfg.model, &cfg.optimizer)),
        }
    };
    let gpu = || -> Result<Box<dyn Backend>> {
        let b = GpuBackend::new(&cfg.model, &cfg.optimizer, batch, cfg.backend.adapter.as_deref(), cfg.backend.stream, quiet)?;
        Ok(Box::new(b))
    };
    match cfg.backend.kind {
        BackendKind::Cpu => Ok(cpu(cfg.backend.precision)),
        BackendKind::Gpu => gpu(),
        BackendKind::Auto if cfg.backend.precision == Precision::F64 => Ok(cpu(Precision::F64)),
        BackendKind::Auto => match gpu() {
            Ok(b) => Ok(b),
            Err(e) => {
                if !quiet {
                    eprintln!("note: no usable GPU ({}); training on the CPU", format!("{e:#}").replace('\n', " "));
                }
                Ok(cpu(cfg.backend.precision))
            }
        },
    }
}

/// Precision the model file is written in: what the backend computed in.
pub fn file_dtype(cfg: &Config) -> FileDtype {
    match cfg.backend.precision {
        Precision::F64 if cfg.backend.kind != BackendKind::Gpu => FileDtype::F64,
        _ => FileDtype::F32,
    }
}

/// Prepares `--out DIR`: refuses to overwrite an earlier run without `force`, checks it is
/// writable before any training starts.
pub fn prepare_out_dir(dir: &Path, force: bool) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("--out {}: exists and is not a directory", dir.display());
    }
    if !force && dir.join("config.json").exists() {
        bail!("--out {}: already holds a run (config.json); pass --force to overwrite it", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("--out {}: cannot create the directory", dir.display()))?;
    let probe = dir.join(".gpu-nn-write-test");
    std::fs::write(&probe, b"ok").with_context(|| format!("--out {}: the directory is not writable", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Progress bar per epoch, summary line per epoch, files rewritten after every epoch.
pub struct RunObserver {
    pub cfg: Config,
    pub out: Option<PathBuf>,
    pub quiet: bool,
    pub rows: Vec<EpochMetrics>,
    /// Text summaries or one JSON object per epoch (`--log-format`).
    pub log_format: LogFormat,
    bar: Option<ProgressBar>,
}

impl RunObserver {
    pub fn new(cfg: &Config, out: Option<PathBuf>, quiet: bool) -> Self {
        RunObserver { cfg: cfg.clone(), out, quiet, rows: Vec::new(), log_format: LogFormat::Text, bar: None }
    }
}

impl Observer for RunObserver {
    fn progress(&mut self, epoch: usize, done: usize, total: usize, st: &StepStats) {
        if self.quiet {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let b = ProgressBar::new(total as u64);
            b.set_style(
                ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}")
                    .unwrap()
                    .progress_chars("=> "),
            );
            b.set_prefix(format!("{}/{}", epoch + 1, self.cfg.training.epochs));
            b
        });
        bar.set_position(done as u64);
        bar.set_message(format!("loss {:.4}", st.loss_sum / st.samples.max(1) as f64));
    }

    fn epoch_end(&mut self, m: &EpochMetrics, backend: &mut dyn Backend) -> Result<()> {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        if !self.quiet {
            match self.log_format {
                LogFormat::Text => println!("{}", m.summary(self.cfg.training.epochs)),
                LogFormat::Json => println!("{}", crate::report::epoch_json(m)),
            }
        }
        self.rows.push(m.clone());
        if let Some(dir) = &self.out {
            write_atomic(&dir.join("metrics.csv"), to_csv(&self.rows).as_bytes())?;
            save_model(&dir.join("model.safetensors"), &backend.params()?, &self.cfg.model, file_dtype(&self.cfg))?;
            // pictures: curves.png / curves.svg, redrawn with every epoch
            crate::plots::write_curves(dir, &self.rows, &crate::plots::run_title(&self.cfg), !self.cfg.training.eval_train)?;
        }
        Ok(())
    }
}

/// The whole `train` command, with text output.
pub fn train_command(cfg: &Config, out: Option<PathBuf>, force: bool, quiet: bool) -> Result<RunResult> {
    train_command_with(cfg, out, force, quiet, LogFormat::Text)
}

/// The whole `train` command; `log_format` chooses text summaries or JSON lines on stdout.
pub fn train_command_with(cfg: &Config, out: Option<PathBuf>, force: bool, quiet: bool, log_format: LogFormat) -> Result<RunResult> {
    crate::report::set_quiet(quiet);
    if let Some(dir) = &out {
        prepare_out_dir(dir, force)?;
    }
    let data = crate::data::load(cfg)?;
    cfg.check_against_data(data.train.sample_len, data.train.num_classes, &data.train.source, data.train.len())?;
    let mut backend = make_backend(cfg, cfg.training.batch_size.resolve(data.train.len()), quiet)?;
    if !quiet {
        crate::report::info(log_format, quiet, &format!(
            "training {} on {} ({} train{}{} samples) with {}",
            cfg.model.layers.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("-"),
            cfg.data.dataset.name(),
            data.train.len(),
            data.val.as_ref().map(|v| format!(", {} val", v.len())).unwrap_or_default(),
            data.test.as_ref().map(|t| format!(", {} test", t.len())).unwrap_or_default(),
            backend.describe()
        ));
    }
    if let Some(dir) = &out {
        write_atomic(&dir.join("config.json"), serde_json::to_string_pretty(cfg)?.as_bytes())?;
    }
    let mut obs = RunObserver::new(cfg, out.clone(), quiet);
    obs.log_format = log_format;
    let result = crate::train::run(cfg, &data, backend.as_mut(), &mut obs)?;
    if let Some(dir) = &out {
        // pictures: the confusion matrix of the last test evaluation
        if let (Some(test), Some(eval)) = (&data.test, &result.test) {
            let c = crate::confusion::Confusion::of_eval(cfg, test, eval)?;
            crate::plots::write_confusion(dir, &c, &crate::plots::run_title(cfg))?;
        }
        crate::report::info(log_format, quiet, &format!("wrote {}", dir.display()));
    }
    Ok(result)
}
