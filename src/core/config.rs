//! The fully resolved configuration of a run. Defaults, a preset, a saved `config.json` and
//! command-line flags are JSON layers merged in that order, so `config.json` written by a run
//! repeats it exactly and a flag always overrides a preset.

use crate::data::{DatasetName, FileData, Task};
use crate::gpu::tuning::KernelSelection;
use crate::nn::init::Init;
use crate::nn::model::{Activation, Loss, ModelSpec, Params, Reduction};
use crate::nn::optim::OptimizerSpec;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Preset this configuration started from, if any.
    pub preset: Option<String>,
    pub description: String,
    pub data: DataConfig,
    pub model: ModelSpec,
    /// The hidden layers' widths, the input and output widths taken from the data when it is
    /// loaded (`--hidden`): `model.layers` becomes [features, hidden…, outputs].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<Vec<usize>>,
    pub init: Init,
    /// Explicit initial values for `init = explicit`: per layer, `weight` as rows `[out][in]`.
    pub initial_params: Option<Vec<LayerValues>>,
    /// Start from the weights in this safetensors file instead of `init`.
    pub init_from: Option<PathBuf>,
    pub optimizer: OptimizerSpec,
    pub training: TrainingConfig,
    pub backend: BackendConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub dataset: DatasetName,
    /// Directory holding the IDX files; unset: the session's `DataSources` (the command line's
    /// `$GPU_NN_DATA`), else the per-user cache.
    pub dir: Option<PathBuf>,
    pub task: Task,
    /// Samples taken from the training set as a validation set (0 = none).
    pub val_split: usize,
    /// The samples of `dataset = inline`.
    pub inline: Option<InlineData>,
    /// Centre the inputs: set `model.input_norm` to the mean and standard deviation of the
    /// training split's pixels, measured when the data is loaded.
    #[serde(default)]
    pub standardize: bool,
    /// The user's own data (`dataset = files`): a `.npz`, a CSV table or an image folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FileData>,
}

impl DataConfig {
    /// The data's name for titles and messages: the dataset's, or the file's of one's own.
    pub fn name(&self) -> String {
        match &self.files {
            Some(f) => f.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| f.path.display().to_string()),
            None => self.dataset.name().to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InlineData {
    pub inputs: Vec<Vec<f64>>,
    pub labels: Vec<u8>,
    pub num_classes: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerValues {
    pub weight: Vec<Vec<f64>>,
    pub bias: Vec<f64>,
}

/// Samples per optimiser step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchSize {
    /// The whole training set in one step (full-batch gradient descent).
    Full,
    N(usize),
}

impl BatchSize {
    pub fn resolve(self, n_train: usize) -> usize {
        match self {
            BatchSize::Full => n_train,
            BatchSize::N(n) => n,
        }
    }
}

impl std::str::FromStr for BatchSize {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "full" => Ok(BatchSize::Full),
            t => match t.parse::<usize>() {
                Ok(0) => bail!("--batch-size 0: a batch needs at least 1 sample (or 'full' for the whole training set)"),
                Ok(n) => Ok(BatchSize::N(n)),
                Err(_) => bail!("--batch-size '{s}': expected a whole number ≥ 1 or 'full'"),
            },
        }
    }
}
impl std::fmt::Display for BatchSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchSize::Full => write!(f, "full"),
            BatchSize::N(n) => write!(f, "{n}"),
        }
    }
}
impl Serialize for BatchSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            BatchSize::Full => s.serialize_str("full"),
            BatchSize::N(n) => s.serialize_u64(*n as u64),
        }
    }
}
impl<'de> Deserialize<'de> for BatchSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n.to_string().parse().map_err(serde::de::Error::custom),
            Value::String(s) => s.parse().map_err(serde::de::Error::custom),
            v => Err(serde::de::Error::custom(format!("batch_size: expected a number or \"full\", got {v}"))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    pub epochs: usize,
    pub batch_size: BatchSize,
    /// Reshuffle the training set every epoch (off: the file order, as doc 000's hand example).
    pub shuffle: bool,
    pub seed: u64,
    /// Report train loss/accuracy from a full pass after each epoch instead of the running
    /// average over the epoch's steps.
    pub eval_train: bool,
    /// Stop after this many optimiser steps (doc 004 counts iterations, not epochs).
    pub max_steps: Option<u64>,
    /// Early stopping: stop when the validation loss has not improved for this many epochs
    /// (needs `val_split`); the best model is kept as `best.safetensors`.
    pub early_stop: Option<usize>,
    /// Dropout on the hidden layers' activations in training (`nn::dropout`): one rate for
    /// every hidden layer or one per hidden layer; empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropout: Vec<f64>,
    /// Dropout on the network's input (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub input_dropout: f64,
    /// Augmentation of the training pictures (`nn::augment`): shift, rotation, scaling and
    /// elastic deformation drawn per sample and step; unset: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augment: Option<crate::nn::augment::AugmentSpec>,
    /// Stop once an epoch's accuracy reaches this fraction in (0, 1]: on the validation split
    /// when there is one (`data.val_split` > 0), else on the test set (`--target-acc`). Left
    /// out of config.json when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_acc: Option<f64>,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl TrainingConfig {
    /// The split `target_acc` is measured on.
    pub fn target_split(&self, val_split: usize) -> crate::core::metrics::TargetSplit {
        if val_split > 0 { crate::core::metrics::TargetSplit::Val } else { crate::core::metrics::TargetSplit::Test }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// The GPU when an adapter exists, else the CPU.
    Auto,
    Cpu,
    Gpu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    F32,
    F64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    pub kind: BackendKind,
    /// CPU only: f64 is the reference, f32 the fast path. The GPU computes in f32.
    pub precision: Precision,
    /// GPU adapter: index or name substring (else the session's `Settings::adapter`, which the
    /// command line takes from `$GPU_NN_ADAPTER`; else high-performance).
    pub adapter: Option<String>,
    /// GPU: stream the training set in chunks instead of keeping it resident.
    pub stream: bool,
    /// CPU f32: cores the matrix products use (unset: all). Results do not depend on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// GPU: matmul kernels (unset: the session's `Settings::kernels`; "auto": tuned once per
    /// adapter and shape class on the command line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernels: Option<KernelSelection>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            preset: None,
            description: String::new(),
            data: DataConfig { dataset: DatasetName::Mnist, dir: None, task: Task::Classify, val_split: 0, inline: None, standardize: false, files: None },
            model: ModelSpec {
                layers: vec![784, 128, 64, 10],
                activations: vec![Activation::Relu, Activation::Relu, Activation::Softmax],
                loss: Loss::CrossEntropy,
                label_smoothing: 0.0,
                reduction: Reduction::Mean,
                input_norm: Default::default(),
                feature_norm: None,
                classes: Vec::new(),
            },
            hidden: None,
            init: Init::GlorotUniform,
            initial_params: None,
            init_from: None,
            optimizer: OptimizerSpec::default(),
            training: TrainingConfig {
                epochs: 10,
                batch_size: BatchSize::N(64),
                shuffle: true,
                seed: 1,
                eval_train: false,
                max_steps: None,
                early_stop: None,
                dropout: Vec::new(),
                input_dropout: 0.0,
                augment: None,
                target_acc: None,
            },
            backend: BackendConfig { kind: BackendKind::Auto, precision: Precision::F32, adapter: None, stream: false, threads: None, kernels: None },
        }
    }
}

/// The presets shipped in `assets/presets/`, compiled in so the binary works from anywhere.
pub const PRESETS: &[(&str, &str)] = &[
    ("seed000-hand", include_str!("../../assets/presets/seed000-hand.json")),
    ("seed000-mnist", include_str!("../../assets/presets/seed000-mnist.json")),
    ("seed001", include_str!("../../assets/presets/seed001.json")),
    ("seed002-neuron-0", include_str!("../../assets/presets/seed002-neuron-0.json")),
    ("seed002-neuron-5", include_str!("../../assets/presets/seed002-neuron-5.json")),
    ("seed002-hidden", include_str!("../../assets/presets/seed002-hidden.json")),
    ("seed002-softmax", include_str!("../../assets/presets/seed002-softmax.json")),
    ("seed003", include_str!("../../assets/presets/seed003.json")),
    ("seed004", include_str!("../../assets/presets/seed004.json")),
    ("mlp-99", include_str!("../../assets/presets/mlp-99.json")),
    ("mlp-fast-98", include_str!("../../assets/presets/mlp-fast-98.json")),
];

pub fn preset_json(name: &str) -> Result<Value> {
    let Some((_, text)) = PRESETS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
        bail!("unknown preset '{name}'; available presets: {}", names.join(", "));
    };
    let mut v: Value = serde_json::from_str(text).with_context(|| format!("preset {name} is not valid JSON"))?;
    v["preset"] = Value::String(name.to_string());
    Ok(v)
}

/// The first place where two JSON documents differ, as "path: a vs b" (None when equal).
pub fn first_difference(a: &Value, b: &Value) -> Option<String> {
    fn walk(a: &Value, b: &Value, path: &str) -> Option<String> {
        if let (Value::Object(x), Value::Object(y)) = (a, b) {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            return keys.into_iter().find_map(|k| {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                walk(x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), &p)
            });
        }
        if a == b {
            return None;
        }
        let short = |v: &Value| {
            let t = v.to_string();
            if t.chars().count() > 40 { format!("{}…", t.chars().take(40).collect::<String>()) } else { t }
        };
        Some(format!("{}: {} vs {}", if path.is_empty() { "(root)" } else { path }, short(a), short(b)))
    }
    walk(a, b, "")
}

/// Deep-merges `patch` into `base`: objects key by key, everything else replaced.
pub fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p.clone(),
    }
}

impl Config {
    /// Defaults, then each layer in turn.
    pub fn from_layers(layers: &[Value]) -> Result<Config> {
        let mut v = serde_json::to_value(Config::default())?;
        for l in layers {
            merge(&mut v, l);
        }
        serde_json::from_value(v).map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))
    }

    pub fn load_file(path: &Path) -> Result<Value> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read configuration {}", path.display()))?;
        Self::layer_from_str(&text, &path.display().to_string())
    }

    /// A configuration layer from JSON text (a config.json's); `name` names it in errors.
    pub fn layer_from_str(text: &str, name: &str) -> Result<Value> {
        let v: Value = serde_json::from_str(text).map_err(|e| anyhow::anyhow!("{name}: not valid JSON: {e}"))?;
        // Validate this layer on its own so an unknown key is reported against the file.
        Config::from_layers(std::slice::from_ref(&v)).map_err(|e| anyhow::anyhow!("{name}: {e:#}"))?;
        Ok(v)
    }

    /// The configuration with everything blanked that may differ between a run and its
    /// resumption without changing the training: the description and preset name, where the
    /// data lives, how long to train and when to stop (early, or at a target accuracy), the adapter and backend kind (a
    /// checkpoint records the engine that actually ran). A checkpoint stores it; a resume
    /// refuses a config.json whose `maths_only` differs.
    pub fn maths_only(&self) -> Config {
        let mut c = self.clone();
        c.preset = None;
        c.description.clear();
        c.data.dir = None;
        if let Some(f) = &mut c.data.files {
            // where the files are is not the maths; which column and size are
            f.path = PathBuf::new();
            f.test = None;
            f.max_bytes = crate::data::own::DEFAULT_MAX_BYTES;
        }
        c.training.epochs = 0;
        c.training.max_steps = None;
        c.training.early_stop = None;
        c.training.target_acc = None;
        c.backend = BackendConfig { kind: BackendKind::Auto, precision: Precision::F32, adapter: None, stream: false, threads: None, kernels: None };
        c
    }

    /// Checks everything that can be checked before any data is read.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.optimizer.validate()?;
        if self.training.epochs == 0 {
            bail!("--epochs 0: nothing to train; give at least 1");
        }
        if self.training.max_steps == Some(0) {
            bail!("--max-steps 0: nothing to train; give at least 1");
        }
        if let Some(p) = self.training.early_stop {
            if p == 0 {
                bail!("--early-stop 0: the patience must be at least 1 epoch");
            }
            if self.data.val_split == 0 {
                bail!("--early-stop {p} watches the validation loss, but there is no validation set; add --val-split N");
            }
        }
        if let Some(a) = self.training.target_acc {
            if !(a > 0.0 && a <= 1.0) {
                bail!("--target-acc {a}: expected an accuracy as a fraction in (0, 1], e.g. 0.98 for 98 %");
            }
        }
        if self.backend.threads == Some(0) {
            bail!("--threads 0: the CPU needs at least 1 thread (leave it out to use every core)");
        }
        if self.backend.kind == BackendKind::Gpu && self.backend.precision == Precision::F64 {
            bail!("--precision f64 is only available on the CPU backend (the GPU computes in f32); use --backend cpu");
        }
        if self.init == Init::Explicit && self.initial_params.is_none() && self.init_from.is_none() {
            bail!("--init explicit needs values: give initial_params in the configuration or --init-from FILE");
        }
        if self.data.dataset == DatasetName::Inline && self.data.inline.is_none() {
            bail!("dataset 'inline' needs its samples in data.inline");
        }
        if (self.data.dataset == DatasetName::Files) != self.data.files.is_some() {
            bail!("data.dataset 'files' and data.files go together: give both (--data FILE.npz, FILE.csv or an image folder) or neither");
        }
        if let Some(h) = self.hidden.as_ref().filter(|h| h.contains(&0)) {
            bail!("--hidden {}: a hidden layer of 0 units; every width must be at least 1", h.iter().map(|w| w.to_string()).collect::<Vec<_>>().join(","));
        }
        Ok(())
    }

    /// Checks the model against the data it is about to train on.
    pub fn check_against_data(&self, sample_len: usize, num_classes: usize, source: &str, n_train: usize) -> Result<()> {
        let m = &self.model;
        if m.input_size() != sample_len {
            bail!(
                "--layers starts with {} inputs but the samples of {source} have {sample_len} values; use --layers {sample_len},...",
                m.input_size()
            );
        }
        let out = m.output_size();
        let binary_ok = num_classes == 2 && out == 1;
        if out != num_classes && !binary_ok {
            bail!(
                "--layers ends with {out} outputs but the task has {num_classes} classes; use {num_classes} outputs{}",
                if num_classes == 2 { " (or 1 with a sigmoid output)" } else { "" }
            );
        }
        if m.loss == crate::nn::model::Loss::BinaryCrossEntropy && out != 1 && num_classes != out {
            bail!("--loss binary_cross_entropy needs one output per class or a single output");
        }
        if let BatchSize::N(b) = self.training.batch_size {
            if b > n_train {
                bail!("--batch-size {b} is larger than the training set ({n_train} samples); use at most {n_train} or 'full'");
            }
        }
        Ok(())
    }

    /// The initial parameters: explicit values, a file, or drawn from the seed.
    pub fn initial_params(&self) -> Result<Params> {
        Ok(self.initial_params_checked()?.0)
    }

    /// `initial_params`, with whether an `--init-from` file was verified against its checksum
    /// (`None` when the weights do not come from a file).
    pub fn initial_params_checked(&self) -> Result<(Params, Option<crate::core::checkpoint::Checked>)> {
        if let Some(path) = &self.init_from {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read --init-from {}", path.display()))?;
            let name = path.display().to_string();
            if !crate::core::checkpoint::has_architecture(&bytes) {
                // another tool's weights: the architecture is the configuration's
                let params = crate::core::foreign_weights::read_foreign(&bytes, &name, &self.model)?;
                return Ok((params, Some(crate::core::checkpoint::Checked::NoChecksum)));
            }
            let (params, spec, checked) = crate::core::checkpoint::model_from_bytes(&bytes, &name)?;
            if spec.layers != self.model.layers {
                bail!(
                    "--init-from {}: the file's layers {:?} differ from --layers {:?}",
                    path.display(),
                    spec.layers,
                    self.model.layers
                );
            }
            return Ok((params, Some(checked)));
        }
        if self.init == Init::Explicit {
            let vals = self.initial_params.as_ref().context("init explicit without initial_params")?;
            let params = Params {
                layers: vals
                    .iter()
                    .map(|l| crate::nn::model::LayerParams { weight: l.weight.concat(), bias: l.bias.clone() })
                    .collect(),
            };
            params.check_shapes(&self.model, "initial_params")?;
            for (i, l) in vals.iter().enumerate() {
                let (n_in, _) = self.model.layer_dims(i);
                if l.weight.iter().any(|r| r.len() != n_in) {
                    bail!("initial_params: layer {i} weight rows must have {n_in} values each");
                }
            }
            return Ok((params, None));
        }
        Ok((crate::nn::init::initialize(&self.model, self.init, self.training.seed)?, None))
    }
}
