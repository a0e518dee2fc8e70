//! A labelled image set in memory: pixels (bytes or floats) and class labels.

use super::idx::{IdxArray, IdxData, read_idx};
use super::{FeatureNorm, InputNorm};
use anyhow::{Result, bail};
use std::path::Path;

/// Pixel storage. Bytes stay bytes (MNIST: 47 MB, not 188 MB of f32) and are scaled by 1/255
/// where they are used; float data is used as given.
#[derive(Clone, Debug, PartialEq)]
pub enum Pixels {
    U8(Vec<u8>),
    F64(Vec<f64>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Where it came from, for messages ("…/t10k-images-idx3-ubyte.gz").
    pub source: String,
    pub pixels: Pixels,
    /// Values per sample (784 for MNIST).
    pub sample_len: usize,
    /// Class of each sample; for a binary task 1 = the positive digit, 0 = all others.
    pub labels: Vec<u8>,
    /// Number of classes the labels range over (10, or 2 for a binary task).
    pub num_classes: usize,
}

/// What the labels mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Predict the class (10-way for MNIST).
    Classify,
    /// Digit D against all others (doc 002); the label becomes 1 for D, 0 otherwise.
    Binary(u8),
}

impl std::str::FromStr for Task {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "classify" | "multiclass" => Ok(Task::Classify),
            t => match t.strip_prefix("binary:").map(|d| d.parse::<u8>()) {
                Some(Ok(d)) if d <= 9 => Ok(Task::Binary(d)),
                _ => bail!("unknown --task '{s}'; expected classify or binary:D with D a digit 0-9"),
            },
        }
    }
}
impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Task::Classify => write!(f, "classify"),
            Task::Binary(d) => write!(f, "binary:{d}"),
        }
    }
}
crate::serde_via_string!(Task);

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixel `j` of sample `i`, scaled to [0, 1] for byte data.
    pub fn pixel(&self, i: usize, j: usize) -> f64 {
        match &self.pixels {
            Pixels::U8(v) => v[i * self.sample_len + j] as f64 / 255.0,
            Pixels::F64(v) => v[i * self.sample_len + j],
        }
    }

    /// Mean and (population) standard deviation of every pixel value, as `pixel` gives them.
    pub fn pixel_stats(&self) -> Result<InputNorm> {
        let n = (self.len() * self.sample_len) as f64;
        let values = || (0..self.len()).flat_map(move |i| (0..self.sample_len).map(move |j| self.pixel(i, j)));
        let mean = values().sum::<f64>() / n;
        let std = (values().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt();
        if std.is_nan() || std <= 0.0 {
            bail!("{}: every pixel of the training set is {mean}; there is no spread to standardise (drop --standardize)", self.source);
        }
        Ok(InputNorm { mean, std })
    }

    /// The mean and (population) standard deviation of each feature over the samples, as
    /// `pixel` gives them: a table's per-feature standardisation. A feature that never varies
    /// keeps std 1 (it is only centred), as scikit-learn's `StandardScaler` does.
    pub fn feature_stats(&self) -> FeatureNorm {
        let (n, d) = (self.len() as f64, self.sample_len);
        let mut mean = vec![0.0; d];
        for i in 0..self.len() {
            for (j, m) in mean.iter_mut().enumerate() {
                *m += self.pixel(i, j);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0; d];
        for i in 0..self.len() {
            for (j, v) in var.iter_mut().enumerate() {
                let e = self.pixel(i, j) - mean[j];
                *v += e * e;
            }
        }
        let std = var.iter().map(|v| (v / n).sqrt()).map(|s| if s > 0.0 && s.is_finite() { s } else { 1.0 }).collect();
        FeatureNorm { mean, std }
    }

    /// The set with `norm` applied to every feature: float values `(p_j − mean_j) / std_j`.
    pub fn standardized(&self, norm: &FeatureNorm) -> Dataset {
        let d = self.sample_len;
        let values = (0..self.len()).flat_map(|i| (0..d).map(move |j| norm.apply(j, self.pixel(i, j)))).collect();
        Dataset { source: self.source.clone(), pixels: Pixels::F64(values), sample_len: d, labels: self.labels.clone(), num_classes: self.num_classes }
    }

    /// A set built in memory: `values` holds `labels.len()` samples of `sample_len` values each,
    /// one after the other, used as given (no scaling); every label below `num_classes`.
    ///
    /// ```
    /// use gpu_nn::data::Dataset;
    /// let xor = Dataset::from_rows("xor", vec![0., 0., 0., 1., 1., 0., 1., 1.], 2, vec![0, 1, 1, 0], 2).unwrap();
    /// assert_eq!((xor.len(), xor.pixel(3, 1)), (4, 1.0));
    /// assert!(Dataset::from_rows("ragged", vec![0.; 7], 2, vec![0, 1, 1, 0], 2).is_err());
    /// ```
    pub fn from_rows(source: &str, values: Vec<f64>, sample_len: usize, labels: Vec<u8>, num_classes: usize) -> Result<Dataset> {
        if sample_len == 0 || labels.is_empty() || sample_len.checked_mul(labels.len()) != Some(values.len()) {
            bail!("{source}: {} values for {} labels of {sample_len} values each; expected {} × {sample_len}", values.len(), labels.len(), labels.len());
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            bail!("{source}: value {} of sample {} is {}; expected a finite number", i % sample_len, i / sample_len, values[i]);
        }
        if let Some((i, l)) = labels.iter().enumerate().find(|(_, l)| **l as usize >= num_classes) {
            bail!("{source}: label {l} of sample {i} is outside the {num_classes} classes");
        }
        Ok(Dataset { source: source.to_string(), pixels: Pixels::F64(values), sample_len, labels, num_classes })
    }

    /// Loads an image file and its label file, checking that they belong together.
    pub fn load(images: &Path, labels: &Path, num_classes: usize) -> Result<Dataset> {
        let img = read_idx(images)?;
        let lab = read_idx(labels)?;
        Self::from_idx(img, &images.display().to_string(), lab, &labels.display().to_string(), num_classes)
    }

    pub fn from_idx(img: IdxArray, img_name: &str, lab: IdxArray, lab_name: &str, num_classes: usize) -> Result<Dataset> {
        if img.dims.len() < 2 {
            bail!(
                "{img_name}: image file has dimensions {:?}; expected [count, ...] with at least 2 dimensions (e.g. [60000, 28, 28])",
                img.dims
            );
        }
        if lab.dims.len() != 1 {
            bail!("{lab_name}: label file has dimensions {:?}; expected a single dimension [count]", lab.dims);
        }
        let n = img.dims[0];
        if n == 0 {
            bail!("{img_name}: holds 0 images; expected at least 1");
        }
        if lab.dims[0] != n {
            bail!("{lab_name}: holds {} labels but {img_name} holds {n} images; expected the same count", lab.dims[0]);
        }
        let sample_len: usize = img.dims[1..].iter().product();
        if sample_len == 0 {
            bail!("{img_name}: images of shape {:?} have no pixels", &img.dims[1..]);
        }
        let labels = match lab.data {
            IdxData::U8(v) => v,
            IdxData::F32(_) => bail!("{lab_name}: labels are float32; expected unsigned bytes (type 0x08)"),
        };
        if let Some((i, &l)) = labels.iter().enumerate().find(|(_, l)| **l as usize >= num_classes) {
            bail!("{lab_name}: label {l} at index {i} is outside the {num_classes} classes 0..={}", num_classes - 1);
        }
        let pixels = match img.data {
            IdxData::U8(v) => Pixels::U8(v),
            IdxData::F32(v) => {
                if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                    bail!("{img_name}: value {x} at element {i} is not finite; expected finite pixel values");
                }
                Pixels::F64(v.into_iter().map(f64::from).collect())
            }
        };
        Ok(Dataset { source: img_name.to_string(), pixels, sample_len, labels, num_classes })
    }

    /// The samples at `idx`, in that order.
    pub fn subset(&self, idx: &[u32], source: String) -> Dataset {
        let l = self.sample_len;
        // a copy of each sample's slice (a flat_map over their values took 90 ms of MNIST's
        // 40k/20k split, a fifth of a one-epoch run's start)
        fn rows<V: Copy>(v: &[V], idx: &[u32], l: usize) -> Vec<V> {
            let mut out = Vec::with_capacity(idx.len() * l);
            for &i in idx {
                out.extend_from_slice(&v[i as usize * l..(i as usize + 1) * l]);
            }
            out
        }
        let pixels = match &self.pixels {
            Pixels::U8(v) => Pixels::U8(rows(v, idx, l)),
            Pixels::F64(v) => Pixels::F64(rows(v, idx, l)),
        };
        Dataset {
            source,
            pixels,
            sample_len: l,
            labels: idx.iter().map(|&i| self.labels[i as usize]).collect(),
            num_classes: self.num_classes,
        }
    }

    /// Splits off `n_val` samples as a validation set: the first `n_val` of `order`, a
    /// permutation of the samples (drawn from the seed by the caller); returns (train, val),
    /// each keeping the original relative order.
    pub fn split_validation(&self, n_val: usize, order: &[u32]) -> Result<(Dataset, Dataset)> {
        if n_val == 0 || n_val >= self.len() {
            bail!(
                "--val-split {n_val}: must be between 1 and {} (the training set of {} holds {} samples)",
                self.len().saturating_sub(1),
                self.source,
                self.len()
            );
        }
        debug_assert_eq!(order.len(), self.len(), "split_validation: the order must be a permutation of the samples");
        let perm = order;
        let mut val: Vec<u32> = perm[..n_val].to_vec();
        let mut train: Vec<u32> = perm[n_val..].to_vec();
        val.sort_unstable();
        train.sort_unstable();
        Ok((
            self.subset(&train, format!("{} (training part)", self.source)),
            self.subset(&val, format!("{} (validation part)", self.source)),
        ))
    }

    /// Relabels for a task: `binary:D` maps label D to 1 and every other label to 0.
    pub fn with_task(mut self, task: Task) -> Result<Dataset> {
        if let Task::Binary(d) = task {
            if d as usize >= self.num_classes {
                bail!("--task binary:{d}: {} has only classes 0..={}", self.source, self.num_classes - 1);
            }
            for l in &mut self.labels {
                *l = (*l == d) as u8;
            }
            self.num_classes = 2;
        }
        Ok(self)
    }

    /// How many samples carry each label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.num_classes];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }
}
