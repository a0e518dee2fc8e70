//! The data sets of one run, as its configuration names them: train, validation, test.

use crate::core::config::Config;
use crate::nn::init::{Stream, permutation, rng};
use crate::data::idx::decode_idx;
use crate::data::{Dataset, DatasetName, Pixels};
use anyhow::{Result, bail};
use std::sync::Arc;

/// The sets of one run.
#[derive(Clone)]
pub struct RunData {
    pub train: Arc<Dataset>,
    pub val: Option<Arc<Dataset>>,
    pub test: Option<Arc<Dataset>>,
}

impl RunData {
    /// A run's sets built in memory: `train`, and `test` if there is one (no validation split).
    pub fn new(train: Dataset, test: Option<Dataset>) -> RunData {
        RunData { train: Arc::new(train), val: None, test: test.map(Arc::new) }
    }
}

/// With `data.standardize` sets `cfg.model.input_norm` to the training split's pixel
/// statistics; then checks the configuration against the data (`check`). `core::Plan::new`
/// does this once per run.
pub fn measure(cfg: &mut Config, data: &RunData) -> Result<()> {
    if cfg.data.standardize {
        cfg.model.input_norm = data.train.pixel_stats()?;
    }
    check(cfg, data)
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
        name => {
            let files = crate::data::sources::locate(name, cfg.data.dir.as_deref(), sources, quiet)?;
            let train = Dataset::load(&files.train_images, &files.train_labels, 10)?;
            let test = Dataset::load(&files.test_images, &files.test_labels, 10)?;
            (train, Some(test))
        }
    };
    split(cfg, train, test)
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
    split(cfg, train, test)
}

/// The task applied and the validation split taken (deterministic under the seed).
fn split(cfg: &Config, train: Dataset, test: Option<Dataset>) -> Result<RunData> {
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
    Ok(RunData { train: Arc::new(train), val: val.map(Arc::new), test: test.map(Arc::new) })
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
