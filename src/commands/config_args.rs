//! The flags that select or override a configuration value, and how they become a
//! configuration layer over the defaults and a preset or config file.

use crate::core::config::Config;
use crate::gpu::KernelName;
use crate::gpu::tuning::KernelSelection;
use anyhow::{Result, bail};
use clap::Args;
use serde_json::{Value, json};
use std::path::PathBuf;

/// The network's shape: what `train` configures and what `eval`/`predict` need for a model
/// file from another tool (a gpu-nn file carries its own).
#[derive(Args, Debug, Default, Clone)]
pub struct NetworkFlags {
    /// Layer sizes, input first, e.g. 784,128,64,10.
    #[arg(long, value_delimiter = ',')]
    pub layers: Option<Vec<usize>>,
    /// One activation per weight layer: identity, sigmoid, tanh, relu, leaky_relu, softmax
    /// (default: relu, then the output the loss implies).
    #[arg(long, value_delimiter = ',')]
    pub activation: Option<Vec<String>>,
    /// half_sse, sse, cross_entropy or binary_cross_entropy.
    #[arg(long)]
    pub loss: Option<String>,
}

/// How to read data of one's own (`--data FILE.npz`, `FILE.csv` or an image folder).
#[derive(Args, Debug, Default, Clone)]
pub struct OwnDataFlags {
    /// A CSV of test samples, in the training CSV's columns.
    #[arg(long, value_name = "FILE.csv")]
    pub test_data: Option<PathBuf>,
    /// The CSV's label column: its header name or 0-based index (default: the last).
    #[arg(long, value_name = "NAME|INDEX")]
    pub label_column: Option<String>,
    /// Bring every picture of an image folder to this size (default: the first picture's).
    #[arg(long, value_name = "HxW")]
    pub image_size: Option<String>,
    /// Refuse data files (a CSV, an archive or an array in it, a picture) larger than this
    /// many bytes (default 16 GiB).
    #[arg(long, value_name = "BYTES")]
    pub max_file_bytes: Option<u64>,
}

impl OwnDataFlags {
    fn given(&self) -> Option<&'static str> {
        [(self.test_data.is_some(), "--test-data"), (self.label_column.is_some(), "--label-column"), (self.image_size.is_some(), "--image-size"), (self.max_file_bytes.is_some(), "--max-file-bytes")]
            .into_iter()
            .find_map(|(g, f)| g.then_some(f))
    }

    /// The flags into `set`, under `data.files`.
    fn set(&self, set: &mut impl FnMut(&[&str], Value)) -> Result<()> {
        if let Some(t) = &self.test_data {
            set(&["data", "files", "test"], json!(t));
        }
        if let Some(c) = &self.label_column {
            set(&["data", "files", "label_column"], parse::<crate::data::own::LabelColumn>(c)?);
        }
        if let Some(s) = &self.image_size {
            set(&["data", "files", "image_size"], parse::<crate::data::own::ImageSize>(s)?);
        }
        if let Some(b) = self.max_file_bytes {
            if b == 0 {
                bail!("--max-file-bytes 0: no file could be read; give a size in bytes");
            }
            set(&["data", "files", "max_bytes"], json!(b));
        }
        Ok(())
    }
}

/// Everything that selects or overrides a configuration value.
#[derive(Args, Debug, Default, Clone)]
pub struct ConfigArgs {
    /// Start from a shipped preset (see `gpu-nn presets`); flags override its values.
    #[arg(long)]
    pub preset: Option<String>,
    /// Repeat a run from its config.json; flags override its values.
    #[arg(long, conflicts_with = "preset")]
    pub config: Option<PathBuf>,

    /// Dataset: mnist, fashion-mnist or kmnist.
    #[arg(long)]
    pub dataset: Option<String>,
    /// The data: a directory with a named dataset's IDX files (default: $GPU_NN_DATA, else the
    /// per-user cache; downloaded if missing), or data of your own: FILE.npz (Keras's x_train,
    /// y_train, x_test, y_test), a CSV table (features and an integer label column), or a
    /// folder of pictures DIR/train/CLASS/*.png (and DIR/test/CLASS/…).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub own: OwnDataFlags,
    /// classify, or binary:D for digit D against all others.
    #[arg(long)]
    pub task: Option<String>,
    /// Hold out N training samples as a validation set (deterministic under the seed).
    #[arg(long)]
    pub val_split: Option<usize>,
    /// Centre the inputs: subtract the training pixels' mean and divide by their standard
    /// deviation (stored with the model, so eval and predict do the same).
    #[arg(long)]
    pub standardize: bool,

    #[command(flatten)]
    pub net: NetworkFlags,
    /// Hidden layer widths, e.g. 128,64: the input width is the data's features, the output
    /// width its classes (instead of --layers).
    #[arg(long, value_delimiter = ',', conflicts_with = "layers")]
    pub hidden: Option<Vec<usize>>,
    /// Batch reduction of gradients: mean or sum.
    #[arg(long)]
    pub reduction: Option<String>,
    /// Label smoothing ε in [0, 1) for cross_entropy: targets (1−ε)·one-hot + ε/classes; the
    /// reported loss (training and evaluation) is the smoothed one, as PyTorch's.
    #[arg(long, value_name = "EPS", allow_negative_numbers = true)]
    pub label_smoothing: Option<f64>,
    /// glorot_uniform, he_uniform, lecun_normal, normal:SIGMA, uniform:BOUND or explicit.
    #[arg(long)]
    pub init: Option<String>,
    /// Start from the weights of a model.safetensors.
    #[arg(long)]
    pub init_from: Option<PathBuf>,

    /// sgd, momentum, nesterov, adam or adamw (Adam with decoupled --weight-decay).
    #[arg(long)]
    pub optimizer: Option<String>,
    /// Learning rate; `gpu-nn sweep` takes a comma-separated list (other commands one value).
    #[arg(long, allow_negative_numbers = true, value_delimiter = ',')]
    pub lr: Option<Vec<f64>>,
    /// constant, step:EVERY:GAMMA, exponential:GAMMA, cosine or cosine:MIN_LR, linear or
    /// linear:MIN_LR (per step down to MIN_LR, default 0), or one_cycle, one_cycle:PCT,
    /// one_cycle:PCT:DIV or one_cycle:PCT:DIV:FINAL_DIV (PyTorch's OneCycleLR: from lr/DIV up to
    /// lr over PCT of the steps, then down to lr/(DIV·FINAL_DIV); defaults 0.3, 25, 1e4).
    #[arg(long)]
    pub schedule: Option<String>,
    /// Linear warm-up over the first STEPS optimiser steps: step s takes (s+1)/STEPS of the
    /// schedule's learning rate (0 = none).
    #[arg(long, value_name = "STEPS")]
    pub warmup: Option<u64>,
    #[arg(long, allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    #[arg(long, allow_negative_numbers = true)]
    pub beta1: Option<f64>,
    #[arg(long, allow_negative_numbers = true)]
    pub beta2: Option<f64>,
    #[arg(long, allow_negative_numbers = true)]
    pub epsilon: Option<f64>,
    /// L2 penalty added to the gradient; with adamw the decoupled decay w ← w·(1 − lr·λ).
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Max-norm constraint: after each update, scale every unit's incoming weights back to
    /// Euclidean norm C where longer (0: off).
    #[arg(long, value_name = "C", allow_negative_numbers = true)]
    pub max_norm: Option<f64>,
    /// Clip the gradients by their global norm before each update: g·min(1, C/(‖g‖ + 1e-6)).
    #[arg(long, value_name = "C", allow_negative_numbers = true)]
    pub clip_norm: Option<f64>,

    /// Samples per step, or 'full' for full-batch gradient descent; `gpu-nn sweep` takes a
    /// comma-separated list (other commands one value).
    #[arg(long, value_delimiter = ',')]
    pub batch_size: Option<Vec<String>>,
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Stop after this many optimiser steps.
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Stop when the validation loss (needs --val-split) has not improved for PATIENCE
    /// epochs; the best model is kept as best.safetensors.
    #[arg(long, value_name = "PATIENCE")]
    pub early_stop: Option<usize>,
    /// Dropout in training on the hidden layers' activations: one rate for all of them, or one
    /// per hidden layer (e.g. 0.5, or 0.5,0.3); kept units are scaled by 1/(1−p).
    #[arg(long, allow_negative_numbers = true, value_delimiter = ',', value_name = "P")]
    pub dropout: Option<Vec<f64>>,
    /// Dropout in training on the network's input (e.g. 0.2).
    #[arg(long, allow_negative_numbers = true, value_name = "P")]
    pub input_dropout: Option<f64>,
    /// Augment the training pictures per sample and step: comma-separated shift=PIXELS,
    /// rotate=DEGREES, scale=FRACTION, elastic=ALPHA:SIGMA (e.g. shift=2,rotate=10,elastic=34:4).
    #[arg(long, value_name = "SPEC")]
    pub augment: Option<String>,
    /// Stop once an epoch's accuracy reaches A, a fraction in (0, 1] (0.98 for 98 %): on the
    /// validation split with --val-split, else on the test set; the time and step it took are
    /// printed and kept in target.json.
    #[arg(long, value_name = "A", allow_negative_numbers = true)]
    pub target_acc: Option<String>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Keep the file order instead of reshuffling every epoch.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Measure train loss/accuracy with a full pass after each epoch (default: running average).
    #[arg(long)]
    pub eval_train: bool,

    /// cpu, gpu or auto (the GPU when an adapter exists).
    #[arg(long)]
    pub backend: Option<String>,
    /// CPU precision: f32 (fast) or f64 (reference).
    #[arg(long)]
    pub precision: Option<String>,
    /// GPU adapter: index or name substring (see `gpu-nn adapters`).
    #[arg(long)]
    pub adapter: Option<String>,
    /// GPU: stream the training set in chunks instead of keeping it on the device.
    #[arg(long)]
    pub stream: bool,
    /// CPU f32: threads for the matrix products (default: every core); the results are the
    /// same bytes whatever the number.
    #[arg(long)]
    pub threads: Option<usize>,
    /// GPU matmul kernels: auto (timed on first use per adapter and shape class, the winner kept
    /// in the user cache) or one of scalar, plain, plain-software, subgroup, tiled-32, tiled-64,
    /// tiled-128. `gpu-nn bench --kernels [NAME]` times every variant (or NAME).
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    pub kernels: Option<String>,
}

fn parse<T: std::str::FromStr<Err = anyhow::Error> + serde::Serialize>(s: &str) -> Result<Value> {
    Ok(serde_json::to_value(s.parse::<T>()?)?)
}

/// The single value of a flag that `gpu-nn sweep` alone accepts as a list.
fn one<'a, T>(flag: &str, values: &'a Option<Vec<T>>) -> Result<Option<&'a T>> {
    match values.as_deref() {
        None | Some([]) => Ok(None),
        Some([v]) => Ok(Some(v)),
        Some(vs) => bail!("--{flag} takes one value here, got {} (lists of values are for gpu-nn sweep)", vs.len()),
    }
}

impl ConfigArgs {
    /// The flags as a JSON layer over the preset or config file. `--lr` and `--batch-size`
    /// must hold one value here; `gpu-nn sweep` splits its lists into one `ConfigArgs` per cell.
    pub fn overrides(&self) -> Result<Value> {
        let mut v = json!({});
        let mut set = |path: &[&str], val: Value| {
            let mut cur = &mut v;
            for p in &path[..path.len() - 1] {
                cur = cur.as_object_mut().unwrap().entry(p.to_string()).or_insert(json!({}));
            }
            cur[path[path.len() - 1]] = val;
        };
        if let Some(d) = &self.dataset {
            set(&["data", "dataset"], parse::<crate::data::DatasetName>(d)?);
        }
        if let Some(d) = &self.data {
            match crate::data::FileFormat::detect(d) {
                Some(format) => {
                    if self.dataset.is_some() {
                        bail!("--data {}: a file or image folder of your own; --dataset names the IDX sets (mnist, fashion-mnist, kmnist): give one or the other", d.display());
                    }
                    set(&["data", "dataset"], json!(crate::data::DatasetName::Files));
                    set(&["data", "files", "format"], json!(format));
                    set(&["data", "files", "path"], json!(d));
                }
                None => set(&["data", "dir"], json!(d)),
            }
        }
        self.own.set(&mut set)?;
        if let Some(h) = &self.hidden {
            set(&["hidden"], json!(h));
        }
        if let Some(t) = &self.task {
            set(&["data", "task"], parse::<crate::data::Task>(t)?);
        }
        if let Some(n) = self.val_split {
            set(&["data", "val_split"], json!(n));
        }
        if self.standardize {
            set(&["data", "standardize"], json!(true));
        }
        if let Some(l) = &self.net.layers {
            set(&["model", "layers"], json!(l));
        }
        if let Some(a) = &self.net.activation {
            let acts: Vec<Value> = a.iter().map(|s| parse::<crate::nn::model::Activation>(s)).collect::<Result<_>>()?;
            set(&["model", "activations"], Value::Array(acts));
        }
        if let Some(l) = &self.net.loss {
            set(&["model", "loss"], parse::<crate::nn::model::Loss>(l)?);
        }
        if let Some(e) = self.label_smoothing {
            if !e.is_finite() {
                bail!("--label-smoothing must be a finite number in [0, 1), got {e}");
            }
            set(&["model", "label_smoothing"], json!(e));
        }
        if let Some(r) = &self.reduction {
            set(&["model", "reduction"], parse::<crate::nn::model::Reduction>(r)?);
        }
        if let Some(i) = &self.init {
            set(&["init"], parse::<crate::nn::init::Init>(i)?);
        }
        if let Some(p) = &self.init_from {
            set(&["init_from"], json!(p));
        }
        if let Some(o) = &self.optimizer {
            set(&["optimizer", "kind"], parse::<crate::nn::optim::OptimizerKind>(o)?);
        }
        let lr = one("lr", &self.lr)?.copied();
        for (name, val) in [
            ("lr", lr),
            ("momentum", self.momentum),
            ("beta1", self.beta1),
            ("beta2", self.beta2),
            ("epsilon", self.epsilon),
            ("weight_decay", self.weight_decay),
            ("max_norm", self.max_norm),
            ("clip_norm", self.clip_norm),
        ] {
            if let Some(x) = val {
                if !x.is_finite() {
                    bail!("--{} must be a finite number, got {x}", name.replace('_', "-"));
                }
                set(&["optimizer", name], json!(x));
            }
        }
        if let Some(s) = &self.schedule {
            set(&["optimizer", "schedule"], parse::<crate::nn::optim::Schedule>(s)?);
        }
        if let Some(w) = self.warmup {
            set(&["optimizer", "warmup_steps"], json!(w));
        }
        if let Some(b) = one("batch-size", &self.batch_size)? {
            set(&["training", "batch_size"], parse::<crate::core::config::BatchSize>(b)?);
        }
        if let Some(e) = self.epochs {
            set(&["training", "epochs"], json!(e));
        }
        if let Some(m) = self.max_steps {
            set(&["training", "max_steps"], json!(m));
        }
        if let Some(p) = self.early_stop {
            set(&["training", "early_stop"], json!(p));
        }
        if let Some(p) = &self.dropout {
            set(&["training", "dropout"], json!(p));
        }
        if let Some(p) = self.input_dropout {
            set(&["training", "input_dropout"], json!(p));
        }
        if let Some(a) = &self.augment {
            set(&["training", "augment"], serde_json::to_value(a.parse::<crate::nn::augment::AugmentSpec>()?)?);
        }
        if let Some(a) = &self.target_acc {
            match a.trim().parse::<f64>() {
                // the range is checked with the configuration, config.json's value alike
                Ok(x) if x.is_finite() => set(&["training", "target_acc"], json!(x)),
                _ => bail!("--target-acc '{a}': expected an accuracy as a fraction in (0, 1], e.g. 0.98 for 98 %"),
            }
        }
        if let Some(s) = self.seed {
            set(&["training", "seed"], json!(s));
        }
        if self.no_shuffle {
            set(&["training", "shuffle"], json!(false));
        }
        if self.eval_train {
            set(&["training", "eval_train"], json!(true));
        }
        if let Some(b) = &self.backend {
            match b.as_str() {
                "cpu" | "gpu" | "auto" => set(&["backend", "kind"], json!(b)),
                _ => bail!("unknown --backend '{b}'; expected cpu, gpu or auto"),
            }
        }
        if let Some(p) = &self.precision {
            match p.as_str() {
                "f32" | "f64" => set(&["backend", "precision"], json!(p)),
                _ => bail!("unknown --precision '{p}'; expected f32 or f64"),
            }
        }
        if let Some(a) = &self.adapter {
            set(&["backend", "adapter"], json!(a));
        }
        if self.stream {
            set(&["backend", "stream"], json!(true));
        }
        if let Some(t) = self.threads {
            set(&["backend", "threads"], json!(t));
        }
        match self.kernels.as_deref() {
            None => {}
            Some("") => bail!("--kernels needs a name: auto, {} (a bare --kernels is for gpu-nn bench, which then times every kernel)", KernelName::list()),
            Some(k) => match k.parse::<KernelSelection>() {
                Ok(sel) => set(&["backend", "kernels"], json!(sel)),
                Err(_) => bail!("unknown --kernels '{k}'; expected auto, {}", KernelName::list()),
            },
        }
        Ok(v)
    }

    /// The flags given that would change the training of a resumed run: everything but
    /// `--epochs`, `--max-steps`, `--target-acc`, `--data`, `--adapter` and `--threads`. Read from `overrides()`,
    /// so a new configuration flag is refused with `--resume` until it is added to the allowed list.
    pub fn flags_changing_the_maths(&self) -> Result<Vec<String>> {
        // where the data is may change (the same data moved), not what it is
        const ALLOWED: [&str; 10] = [
            "training.epochs",
            "training.max_steps",
            "training.target_acc",
            "data.dir",
            "data.files.path",
            "data.files.test",
            "data.files.max_bytes",
            "backend.adapter",
            "backend.threads",
            "data.files.format",
        ];
        let mut flags = Vec::new();
        if self.preset.is_some() {
            flags.push("--preset".to_string());
        }
        if self.config.is_some() {
            flags.push("--config".to_string());
        }
        fn leaves(v: &Value, path: String, out: &mut Vec<String>) {
            match v.as_object() {
                Some(o) => o.iter().for_each(|(k, v)| leaves(v, if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, out)),
                None => out.push(path),
            }
        }
        let mut paths = Vec::new();
        leaves(&self.overrides()?, String::new(), &mut paths);
        // --data FILE names the dataset `files` itself: the same data, moved
        let from_data = |p: &str| p == "data.dataset" && self.dataset.is_none();
        for p in paths.into_iter().filter(|p| !ALLOWED.contains(&p.as_str()) && !from_data(p)) {
            let flag = match p.as_str() {
                "model.activations" => "--activation".to_string(),
                "optimizer.kind" => "--optimizer".to_string(),
                "backend.kind" => "--backend".to_string(),
                "training.shuffle" => "--no-shuffle".to_string(),
                "optimizer.warmup_steps" => "--warmup".to_string(),
                other => format!("--{}", other.rsplit('.').next().unwrap_or(other).replace('_', "-")),
            };
            flags.push(flag);
        }
        Ok(flags)
    }

    /// Whether any flag other than data location and adapter selects a configuration.
    pub fn selects_model(&self) -> bool {
        self.preset.is_some() || self.config.is_some() || self.net.layers.is_some() || self.batch_size.is_some()
            || self.optimizer.is_some() || self.net.activation.is_some() || self.net.loss.is_some()
    }

    /// Defaults ← `base` layers ← flags; validated.
    pub fn resolve_over(&self, base: &[Value]) -> Result<Config> {
        let mut layers = base.to_vec();
        layers.push(self.overrides()?);
        self.finish(Config::from_layers(&layers)?)
    }

    /// `--layers` without `--activation`, when the activations of the layers below do not fit
    /// the new depth or the loss: the defaults (`ModelSpec::default_activations`) instead of an
    /// error. Where they fit (a preset's, same depth), they stay. Then validates.
    fn finish(&self, mut cfg: Config) -> Result<Config> {
        if self.net.layers.is_some() && self.net.activation.is_none() && (cfg.model.activations.len() + 1 != cfg.model.layers.len() || cfg.model.validate().is_err()) {
            cfg.model.activations = crate::nn::model::ModelSpec::default_activations(&cfg.model.layers, cfg.model.loss);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Defaults ← preset or config file ← flags; validated.
    pub fn resolve(&self) -> Result<Config> {
        let own_data = self.data.as_deref().is_some_and(|d| crate::data::FileFormat::detect(d).is_some());
        if let (Some(flag), false, None) = (self.own.given(), own_data, &self.config) {
            bail!("{flag} is for data of your own: give --data FILE.csv, FILE.npz or an image folder with it");
        }
        let mut layers = Vec::new();
        if let Some(p) = &self.preset {
            layers.push(crate::core::config::preset_json(p)?);
        }
        if let Some(c) = &self.config {
            layers.push(Config::load_file(c)?);
        }
        layers.push(self.overrides()?);
        self.finish(Config::from_layers(&layers)?)
    }
}
