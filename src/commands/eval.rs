//! `gpu-nn eval`: a saved model on the test set — loss, accuracy and the confusion matrix,
//! written as `confusion.csv` / `confusion.png`. Also the shared "open a model with the
//! configuration it was trained under" step that `predict` uses.

use crate::commands::args::EvalArgs;
use crate::commands::config_args::ConfigArgs;
use crate::commands::run_dir::open_session;
use crate::core::{Plan, Session, Settings};
use crate::data::DataSources;
use crate::nn::backend::{EvalResult, Split};
use crate::core::checkpoint::{Checked, has_architecture, model_from_bytes};
use crate::core::foreign_weights::read_foreign;
use crate::core::config::Config;
use crate::nn::model::Params;
use crate::data::{Dataset, DatasetName};
use crate::report::confusion::Confusion;
use crate::report::console::Console;
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A model file and the configuration to use it under: the run's `config.json` beside the
/// model when there is one (dataset, task, data directory, precision), then the architecture
/// from the file's metadata, then the flags.
pub fn open_model(model: &Path, flags: &ConfigArgs, console: &Console) -> Result<(Params, Config)> {
    let bytes = std::fs::read(model).with_context(|| format!("cannot read model file {}", model.display()))?;
    let name = model.display().to_string();
    let mut layers = Vec::new();
    if let Some(beside) = model.parent().map(|d| d.join("config.json")).filter(|p| p.is_file()) {
        layers.push(Config::load_file(&beside)?);
    }
    let (params, spec, checked) = if has_architecture(&bytes) {
        model_from_bytes(&bytes, &name)?
    } else {
        // another tool's weights: the architecture from --layers/--activation/--loss (or a
        // config.json beside the file), checked against the tensors' shapes
        let spec = flags.resolve_over(&layers)?.model;
        (read_foreign(&bytes, &name, &spec)?, spec, Checked::NoChecksum)
    };
    if let Some(note) = checked.note(model) {
        console.note(&note);
    }
    layers.push(json!({ "model": serde_json::to_value(&spec)? }));
    let mut over = flags.overrides()?;
    // a model is evaluated on the CPU unless --backend says otherwise; the GPU computes in f32
    match flags.backend.as_deref() {
        None => over["backend"]["kind"] = json!("cpu"),
        Some("gpu") | Some("auto") => over["backend"]["precision"] = json!("f32"),
        _ => {}
    }
    layers.push(over);
    let mut cfg = Config::from_layers(&layers)?;
    // the inputs are prepared as the file says, whatever a config.json beside it holds
    cfg.model.input_norm = spec.input_norm;
    // the weights come from the file, not from the run's initialisation
    cfg.init_from = None;
    Ok((params, cfg))
}

/// The test set (or with `train` the training set) of the configuration's data: a named
/// dataset's two IDX files, or the user's own files with the model's classes.
pub fn load_split(cfg: &Config, train: bool, sources: &DataSources, quiet: bool) -> Result<Arc<Dataset>> {
    if cfg.data.dataset == DatasetName::Inline {
        bail!("this model's run trained on inline samples, which have no test set; pass --dataset mnist (or fashion-mnist, kmnist) and --data DIR");
    }
    let ds = if let Some(files) = &cfg.data.files {
        // the model's classes decide the labels, whatever classes these files hold
        let model_classes = (!cfg.model.classes.is_empty() && cfg.data.task == crate::data::Task::Classify).then_some(cfg.model.classes.as_slice());
        let own = crate::data::own::load(files, model_classes)?;
        match (train, own.test) {
            (true, _) => own.train,
            (false, Some(test)) => test,
            (false, None) => bail!(
                "{}: has no test set (an .npz's x_test/y_test, --test-data FILE.csv, or a test/ folder of pictures); give one, or --train-set for the training set",
                files.path.display()
            ),
        }
    } else {
        let files = crate::data::sources::locate(cfg.data.dataset, cfg.data.dir.as_deref(), sources, quiet)?;
        if train {
            Dataset::load(&files.train_images, &files.train_labels, 10)?
        } else {
            Dataset::load(&files.test_images, &files.test_labels, 10)?
        }
    };
    let ds = ds.with_task(cfg.data.task)?;
    let m = &cfg.model;
    if m.input_size() != ds.sample_len {
        bail!("the model takes {} inputs but the images of {} have {} values", m.input_size(), ds.source, ds.sample_len);
    }
    let out = m.output_size();
    if out != ds.num_classes && !(ds.num_classes == 2 && out == 1) {
        let hint = if out <= 2 { "; it was trained on a binary task: pass --task binary:D (D its digit)" } else { "" };
        bail!("the model has {out} output(s) but the task ({} {}) has {} classes{hint}", cfg.data.name(), cfg.data.task, ds.num_classes);
    }
    Ok(Arc::new(ds))
}

pub struct EvalOptions {
    pub model: PathBuf,
    pub flags: ConfigArgs,
    pub out: Option<PathBuf>,
    pub json: bool,
    pub quiet: bool,
}

pub fn run(args: EvalArgs, env: &Settings) -> Result<()> {
    eval_command(env, &EvalOptions {
        flags: args.data.config_args(args.backend.clone(), args.adapter.clone()),
        model: args.model,
        out: args.out,
        json: args.json,
        quiet: args.quiet,
    })
    .map(|_| ())
}

/// The whole `eval` command.
pub fn eval_command(env: &Settings, o: &EvalOptions) -> Result<(EvalResult, Confusion)> {
    let console = Console::new(Default::default(), o.quiet || o.json);
    let (params, cfg) = open_model(&o.model, &o.flags, &console)?;
    let test = load_split(&cfg, false, &env.data, o.quiet)?;
    let plan = Plan::evaluation(cfg.clone(), test.clone())?;
    let mut session = open_session(env, &console, |engines| Session::with_params(plan, &params, engines))?;
    let r = session.evaluate(Split::Test)?;
    let c = Confusion::of_eval(&cfg, &test, &r)?;
    let dir = match &o.out {
        Some(d) => d.clone(),
        None => o.model.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("--out {}: cannot create the directory", dir.display()))?;
    let title = format!("{} | {}", o.model.display(), crate::report::plots::run_title(&cfg));
    crate::report::confusion_picture::write_confusion(&dir, &c, &title)?;
    if o.json {
        let rows: Vec<Vec<u64>> = (0..c.classes).map(|i| (0..c.classes).map(|j| c.get(i, j)).collect()).collect();
        let v = json!({
            "model": o.model,
            "test_set": test.source,
            "backend": session.describe(),
            "samples": r.samples,
            "loss": r.loss(),
            "accuracy": r.accuracy(),
            "correct": r.correct,
            "classes": c.names,
            "confusion": rows,
            "confusion_csv": dir.join("confusion.csv"),
            "confusion_png": dir.join("confusion.png"),
        });
        println!("{v}");
    } else if !o.quiet {
        let m = &cfg.model;
        println!(
            "model {}: {} {}, {}",
            o.model.display(),
            m.layers.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("-"),
            m.activations.iter().map(|a| a.name()).collect::<Vec<_>>().join("/"),
            m.loss
        );
        println!("test set {}: {} samples, on {}", test.source, test.len(), session.describe());
        println!("test loss {:.6}  accuracy {:.2} % ({} of {})", r.loss(), 100.0 * r.accuracy(), r.correct, r.samples);
        println!("confusion matrix (rows: true class, columns: predicted class):");
        print!("{}", c.to_table());
        println!("wrote {} and {}", dir.join("confusion.csv").display(), dir.join("confusion.png").display());
    }
    Ok((r, c))
}
