//! The data sets of one run, as its configuration names them: train, validation, test.

use crate::core::config::Config;
use crate::nn::init::{Stream, permutation, rng};
use crate::data::idx::decode_idx;
use crate::data::{DataKind, Dataset, DatasetName, Pixels, Task};
use anyhow::{Result, bail};
use std::sync::Arc;

/// The sets of one run.
#[derive(Clone)]
pub struct RunData {
    pub train: Arc<Dataset>,
    pub val: Option<Arc<Dataset>>,
    pub test: Option<Arc<Dataset>>,
    /// The name of each class where the data names them (data of one's own), else empty.
    pub classes: Vec<String>,
    /// Pictures or a table: how `data.standardize` measures the features.
    pub kind: DataKind,
}

impl RunData {
    /// A run's sets built in memory: `train`, and `test` if there is one (no validation split),
    /// standardised as pictures.
    pub fn new(train: Dataset, test: Option<Dataset>) -> RunData {
        RunData { train: Arc::new(train), val: None, test: test.map(Arc::new), classes: Vec::new(), kind: DataKind::Pictures }
    }

    /// Every set with a table's per-feature standardisation applied.
    fn standardized(self, norm: &crate::data::FeatureNorm) -> RunData {
        let each = |d: &Arc<Dataset>| Arc::new(d.standardized(norm));
        RunData { train: each(&self.train), val: self.val.as_ref().map(each), test: self.test.as_ref().map(each), ..self }
    }
}

/// `--hidden`: the model's widths [features, hidden…, outputs] from the data, with the default
/// activations where the configured ones do not fit the new depth.
pub fn fit_shape(cfg: &mut Config, data: &RunData) -> Result<()> {
    let Some(hidden) = cfg.hidden.clone() else { return Ok(()) };
    let t = &data.train;
    let outputs = if cfg.model.loss == crate::nn::model::Loss::BinaryCrossEntropy { 1 } else { t.num_classes };
    let layers: Vec<usize> = std::iter::once(t.sample_len).chain(hidden).chain([outputs]).collect();
    if layers != cfg.model.layers {
        cfg.model.layers = layers;
        if cfg.model.activations.len() + 1 != cfg.model.layers.len() || cfg.model.validate().is_err() {
            cfg.model.activations = crate::nn::model::ModelSpec::default_activations(&cfg.model.layers, cfg.model.loss);
        }
    }
    Ok(())
}

/// What a run learns from its data before it starts, once (`core::Plan::new`): the class names
/// into `cfg.model.classes`; with `data.standardize` the training split's statistics, one mean
/// and std over every pixel of pictures (`model.input_norm`) or one per feature of a table
/// (`model.feature_norm`); the configuration checked against the data (`check`). Returns the
/// data as the backends take it: with the model's per-feature standardisation applied.
pub fn measure(cfg: &mut Config, data: RunData) -> Result<RunData> {
    // classes numbered 0..k−1 are what a model without names means: not stored, so the same
    // data read from IDX files or from an archive gives the same model bytes
    let numbered = data.classes.iter().enumerate().all(|(i, c)| *c == i.to_string());
    if !numbered {
        cfg.model.classes = data.classes.clone();
    }
    if cfg.data.standardize {
        match data.kind {
            DataKind::Pictures => cfg.model.input_norm = data.train.pixel_stats()?,
            DataKind::Table => cfg.model.feature_norm = Some(data.train.feature_stats()),
        }
    }
    check(cfg, &data)?;
    Ok(with_feature_norm(cfg, data))
}

/// `data` as the backends take it under `cfg`'s model: with its per-feature standardisation
/// (if any) applied to every set.
pub fn with_feature_norm(cfg: &Config, data: RunData) -> RunData {
    match &cfg.model.feature_norm {
        Some(norm) => data.standardized(norm),
        None => data,
    }
}

/// The model's input and output widths and the batch size against the training set.
pub fn check(cfg: &Config, data: &RunData) -> Result<()> {
    let t = &data.train;
    cfg.check_against_data(t.sample_len, t.num_classes, &t.source, t.len())
}

/// Loads the data a configuration names from its directory or the default sources
/// (downloading it if needed, without a progress bar).
#[cfg(feature = "cli")]
pub fn load(cfg: &Config) -> Result<RunData> {
    load_with(cfg, &crate::data::DataSources::default(), true)
}

/// Loads (downloading if needed, with a progress bar unless `quiet`) the train, validation
/// and test sets a configuration names.
#[cfg(feature = "cli")]
pub fn load_with(cfg: &Config, sources: &crate::data::DataSources, quiet: bool) -> Result<RunData> {
    let (train, test) = match cfg.data.dataset {
        DatasetName::Inline => (inline_dataset(cfg)?, None),
        DatasetName::Files => {
            let Some(files) = &cfg.data.files else { bail!("dataset 'files' needs data.files (--data FILE.npz, FILE.csv or an image folder)") };
            let own = crate::data::own::load(files, None)?;
            return split(cfg, own.train, own.test, own.classes, own.kind);
        }
        name => {
            let files = crate::data::sources::locate(name, cfg.data.dir.as_deref(), sources, quiet)?;
            let train = Dataset::load(&files.train_images, &files.train_labels, 10)?;
            let test = Dataset::load(&files.test_images, &files.test_labels, 10)?;
            (train, Some(test))
        }
    };
    split(cfg, train, test, Vec::new(), DataKind::Pictures)
}

/// The bytes of a dataset's four IDX files (gzip-compressed or not), e.g. as a web page
/// fetched them, with the names its messages use.
pub struct IdxBytes<'a> {
    /// train images, train labels, test images, test labels (`sources::FILES` order).
    pub files: [(&'a [u8], &'a str); 4],
}

/// `load_with` for data held in memory: `files` for a named dataset, nothing for `inline`.
pub fn from_bytes(cfg: &Config, files: Option<&IdxBytes>) -> Result<RunData> {
    let (train, test) = match (cfg.data.dataset, files) {
        (DatasetName::Inline, _) => (inline_dataset(cfg)?, None),
        (DatasetName::Files, _) => bail!("data of one's own files (data.files) is read from the files; give a named dataset's IDX files here"),
        (name, None) => bail!("dataset {} needs its four IDX files", name.name()),
        (_, Some(b)) => {
            let set = |i: usize, j: usize| -> Result<Dataset> {
                let (img, img_name) = b.files[i];
                let (lab, lab_name) = b.files[j];
                Dataset::from_idx(decode_idx(img, img_name)?, img_name, decode_idx(lab, lab_name)?, lab_name, 10)
            };
            (set(0, 1)?, Some(set(2, 3)?))
        }
    };
    split(cfg, train, test, Vec::new(), DataKind::Pictures)
}

/// The class names of a binary task `binary:D` on classes named `names`.
fn task_names(task: Task, names: Vec<String>) -> Vec<String> {
    match task {
        Task::Binary(d) if !names.is_empty() => {
            let name = names.get(d as usize).cloned().unwrap_or_else(|| d.to_string());
            vec![format!("not {name}"), name]
        }
        _ => names,
    }
}

/// The task applied and the validation split taken (deterministic under the seed).
fn split(cfg: &Config, train: Dataset, test: Option<Dataset>, classes: Vec<String>, kind: DataKind) -> Result<RunData> {
    let d = &cfg.data;
    if let Some(test) = &test {
        if test.sample_len != train.sample_len {
            bail!("{}: images have {} values, but the training images {} have {}", test.source, test.sample_len, train.source, train.sample_len);
        }
    }
    let train = train.with_task(d.task)?;
    let test = test.map(|t| t.with_task(d.task)).transpose()?;
    let (train, val) = if d.val_split > 0 {
        let order = permutation(train.len(), &mut rng(cfg.training.seed, Stream::Split));
        let (t, v) = train.split_validation(d.val_split, &order)?;
        (t, Some(v))
    } else {
        (train, None)
    };
    let classes = task_names(d.task, classes);
    Ok(RunData { train: Arc::new(train), val: val.map(Arc::new), test: test.map(Arc::new), classes, kind })
}

fn inline_dataset(cfg: &Config) -> Result<Dataset> {
    let Some(inline) = &cfg.data.inline else {
        bail!("dataset 'inline' needs the samples in data.inline (inputs and labels)");
    };
    let n = inline.inputs.len();
    if n == 0 || inline.labels.len() != n {
        bail!(
            "data.inline: {} input row(s) and {} label(s); expected the same non-zero count",
            n,
            inline.labels.len()
        );
    }
    let len = inline.inputs[0].len();
    if let Some((i, r)) = inline.inputs.iter().enumerate().find(|(_, r)| r.len() != len || r.is_empty()) {
        bail!("data.inline: input row {i} has {} values; expected {len} like row 0", r.len());
    }
    let classes = inline.num_classes;
    if let Some((i, l)) = inline.labels.iter().enumerate().find(|(_, l)| **l as usize >= classes) {
        bail!("data.inline: label {l} of sample {i} is outside the {classes} classes");
    }
    Ok(Dataset {
        source: "inline samples".into(),
        pixels: Pixels::F64(inline.inputs.concat()),
        sample_len: len,
        labels: inline.labels.clone(),
        num_classes: classes,
    })
}
