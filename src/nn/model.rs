//! The one model description every backend trains: layer sizes, per-layer activations, the
//! loss with its exact scaling and the batch reduction. Backends read this; none defines its own.
//!
//! Layout convention (PyTorch's): layer `i` maps `in = layers[i]` to `out = layers[i+1]` with a
//! weight matrix `W` of shape `[out, in]` (row-major) and a bias `b` of shape `[out]`. A batch
//! `X` is `[batch, in]`, so the forward pass is `Z = X·Wᵀ + b`, `A = f(Z)`.

use crate::data::{FeatureNorm, InputNorm};
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Elementwise (or, for softmax, row-wise) activation of one layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Identity,
    Sigmoid,
    Tanh,
    Relu,
    /// `x` for `x ≥ 0`, `LEAKY_SLOPE·x` otherwise.
    LeakyRelu,
    /// Row-wise softmax; only on the output layer, only with `cross_entropy`.
    Softmax,
}

/// Negative-side slope of `leaky_relu` (PyTorch's default).
pub const LEAKY_SLOPE: f64 = 0.01;

impl Activation {
    pub const ALL: [Activation; 6] = [
        Activation::Identity,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Relu,
        Activation::LeakyRelu,
        Activation::Softmax,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::LeakyRelu => "leaky_relu",
            Activation::Softmax => "softmax",
        }
    }
    /// Numeric code shared with the WGSL kernels (`shaders/common.wgsl`).
    pub fn code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Sigmoid => 1,
            Activation::Tanh => 2,
            Activation::Relu => 3,
            Activation::LeakyRelu => 4,
            Activation::Softmax => 5,
        }
    }
}

/// Per-sample loss; the exact scaling matters because learning rates are not transferable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// `Σ_k ½(t_k − o_k)²` (doc 000).
    HalfSse,
    /// `Σ_k (t_k − o_k)²` (docs 003, 004; gradient `2(o − t)`).
    Sse,
    /// `−Σ_k t_k ln o_k` with a softmax output (doc 001, doc 002 task 3).
    CrossEntropy,
    /// `−Σ_k [t_k ln o_k + (1 − t_k) ln(1 − o_k)]` with a sigmoid output (doc 002).
    BinaryCrossEntropy,
}

impl Loss {
    pub const ALL: [Loss; 4] = [Loss::HalfSse, Loss::Sse, Loss::CrossEntropy, Loss::BinaryCrossEntropy];
    pub fn name(self) -> &'static str {
        match self {
            Loss::HalfSse => "half_sse",
            Loss::Sse => "sse",
            Loss::CrossEntropy => "cross_entropy",
            Loss::BinaryCrossEntropy => "binary_cross_entropy",
        }
    }
    pub fn code(self) -> u32 {
        match self {
            Loss::HalfSse => 0,
            Loss::Sse => 1,
            Loss::CrossEntropy => 2,
            Loss::BinaryCrossEntropy => 3,
        }
    }
}

/// How per-sample gradients of a batch are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduction {
    /// `(1/B) Σ_b ∇L_b` (every document that states it).
    Mean,
    /// `Σ_b ∇L_b`.
    Sum,
}

impl Reduction {
    /// Factor applied to the summed per-sample gradients of a batch of `batch` samples.
    pub fn scale(self, batch: usize) -> f64 {
        match self {
            Reduction::Mean => 1.0 / batch as f64,
            Reduction::Sum => 1.0,
        }
    }
}

macro_rules! name_parsing {
    ($t:ty, $what:literal) => {
        impl FromStr for $t {
            type Err = anyhow::Error;
            fn from_str(s: &str) -> Result<Self> {
                let s = s.trim();
                for v in <$t>::ALL {
                    if v.name() == s || v.name().replace('_', "-") == s {
                        return Ok(v);
                    }
                }
                let names: Vec<&str> = <$t>::ALL.iter().map(|v| v.name()).collect();
                bail!("unknown {} '{}'; expected one of: {}", $what, s, names.join(", "))
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}
name_parsing!(Activation, "activation");
name_parsing!(Loss, "loss");

impl Reduction {
    pub const ALL: [Reduction; 2] = [Reduction::Mean, Reduction::Sum];
    pub fn name(self) -> &'static str {
        match self {
            Reduction::Mean => "mean",
            Reduction::Sum => "sum",
        }
    }
}
name_parsing!(Reduction, "reduction");

/// The architecture and objective. Shared by every backend and stored in model files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Layer widths, input first: `[784, 128, 64, 10]`.
    pub layers: Vec<usize>,
    /// One activation per weight layer (`layers.len() − 1` of them).
    pub activations: Vec<Activation>,
    pub loss: Loss,
    /// Label smoothing ε of the cross-entropy (`math::target`): 0 (none) to below 1. Omitted
    /// from files while 0, so older model files and configurations read and compare unchanged.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub label_smoothing: f64,
    pub reduction: Reduction,
    /// Omitted from files while it is the identity, so older model files read unchanged.
    #[serde(default, skip_serializing_if = "InputNorm::is_identity")]
    pub input_norm: InputNorm,
    /// A table's per-feature standardisation (tabular data with `data.standardize`), applied
    /// to the samples before they become inputs; omitted from files while there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_norm: Option<FeatureNorm>,
    /// The name of each class, in output order, where the data names them (data of one's own);
    /// empty for the named datasets, whose names the reports know.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
}

impl ModelSpec {
    /// A classifier of these widths and activations: cross-entropy, mean over the batch, no
    /// label smoothing, no input normalisation, unnamed classes.
    pub fn classifier(layers: &[usize], activations: &[Activation]) -> ModelSpec {
        ModelSpec {
            layers: layers.to_vec(),
            activations: activations.to_vec(),
            loss: Loss::CrossEntropy,
            label_smoothing: 0.0,
            reduction: Reduction::Mean,
            input_norm: Default::default(),
            feature_norm: None,
            classes: Vec::new(),
        }
    }

    /// The activations a network of `layers` gets when none are given: ReLU for every hidden
    /// layer, and for the output the one its loss implies (softmax for cross-entropy, sigmoid
    /// for binary cross-entropy, identity for the squared errors).
    pub fn default_activations(layers: &[usize], loss: Loss) -> Vec<Activation> {
        let out = match loss {
            Loss::CrossEntropy => Activation::Softmax,
            Loss::BinaryCrossEntropy => Activation::Sigmoid,
            Loss::HalfSse | Loss::Sse => Activation::Identity,
        };
        let hidden = layers.len().saturating_sub(2);
        std::iter::repeat_n(Activation::Relu, hidden).chain([out]).collect()
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len().saturating_sub(1)
    }
    pub fn input_size(&self) -> usize {
        self.layers[0]
    }
    pub fn output_size(&self) -> usize {
        *self.layers.last().unwrap()
    }
    pub fn output_activation(&self) -> Activation {
        *self.activations.last().unwrap()
    }
    /// `(in, out)` of weight layer `i`.
    pub fn layer_dims(&self, i: usize) -> (usize, usize) {
        (self.layers[i], self.layers[i + 1])
    }
    /// The parameters, counted with checked arithmetic and refused above `MAX_PARAMS`: what
    /// `validate` asks of every model before anything is sized by it.
    pub fn checked_num_params(&self) -> Result<usize> {
        let mut total = 0usize;
        for i in 0..self.num_layers() {
            let (n_in, n_out) = (self.layers[i], self.layers[i + 1]);
            let layer = n_in.checked_mul(n_out).and_then(|w| w.checked_add(n_out)).and_then(|l| total.checked_add(l));
            match layer {
                Some(t) if t <= MAX_PARAMS => total = t,
                _ => bail!(
                    "--layers {}: layer {} ({n_in}→{n_out}) brings the model past {MAX_PARAMS} parameters, the most gpu-nn holds (8 GiB in f32)",
                    self.layers.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
                    i + 1
                ),
            }
        }
        Ok(total)
    }

    /// Parameters of the model (`validate` has checked that they can be counted).
    pub fn num_params(&self) -> usize {
        (0..self.num_layers()).map(|i| {
            let (i_, o) = self.layer_dims(i);
            o * i_ + o
        }).sum()
    }
    /// Multiply-adds of one sample's forward pass (backward costs twice that).
    pub fn forward_macs(&self) -> usize {
        (0..self.num_layers()).map(|i| self.layers[i] * self.layers[i + 1]).sum()
    }

    /// Rejects architectures whose maths is undefined or not implemented, with the reason.
    pub fn validate(&self) -> Result<()> {
        if self.layers.len() < 2 {
            bail!(
                "--layers needs at least an input and an output size (e.g. 784,10); got {:?}",
                self.layers
            );
        }
        if let Some(i) = self.layers.iter().position(|&n| n == 0) {
            bail!("--layers: size {} (position {}) is 0; every layer needs at least one unit", self.layers[i], i);
        }
        self.checked_num_params()?;
        if self.activations.len() != self.num_layers() {
            bail!(
                "--activation lists {} name(s) but --layers {} defines {} weight layer(s); give one activation per weight layer",
                self.activations.len(),
                self.layers.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
                self.num_layers()
            );
        }
        for (i, a) in self.activations[..self.num_layers() - 1].iter().enumerate() {
            if *a == Activation::Softmax {
                bail!("--activation: softmax is only supported on the output layer, found on layer {}", i + 1);
            }
        }
        let out = self.output_activation();
        match self.loss {
            Loss::CrossEntropy if out != Activation::Softmax => bail!(
                "--loss cross_entropy needs a softmax output layer, but the output activation is {out}; use --activation ...,softmax"
            ),
            Loss::BinaryCrossEntropy if out != Activation::Sigmoid => bail!(
                "--loss binary_cross_entropy needs a sigmoid output layer, but the output activation is {out}; use --activation ...,sigmoid"
            ),
            Loss::HalfSse | Loss::Sse if out == Activation::Softmax => bail!(
                "a softmax output layer is only supported with --loss cross_entropy (got --loss {})",
                self.loss
            ),
            _ => {}
        }
        let eps = self.label_smoothing;
        if !(eps.is_finite() && (0.0..1.0).contains(&eps)) {
            bail!("--label-smoothing must be a number in [0, 1), got {eps}");
        }
        if eps > 0.0 && self.loss != Loss::CrossEntropy {
            bail!("--label-smoothing {eps} needs --loss cross_entropy (a softmax output); got --loss {}", self.loss);
        }
        let InputNorm { mean, std } = self.input_norm;
        if !(mean.is_finite() && std.is_finite() && std > 0.0) {
            bail!("model.input_norm: mean {mean} and std {std}; expected finite numbers with std > 0");
        }
        if let Some(f) = &self.feature_norm {
            if f.mean.len() != self.input_size() || f.std.len() != self.input_size() {
                bail!("model.feature_norm: {} means and {} standard deviations for {} inputs; expected one of each per input", f.mean.len(), f.std.len(), self.input_size());
            }
            if let Some(j) = (0..f.mean.len()).find(|&j| !(f.mean[j].is_finite() && f.std[j].is_finite() && f.std[j] > 0.0)) {
                bail!("model.feature_norm: feature {j} has mean {} and std {}; expected finite numbers with std > 0", f.mean[j], f.std[j]);
            }
        }
        let classes = if self.output_size() == 1 { 2 } else { self.output_size() };
        if !self.classes.is_empty() && self.classes.len() != classes {
            bail!("model.classes: {} class names for a model of {} classes; expected one name per class", self.classes.len(), classes);
        }
        if self.loss == Loss::CrossEntropy && self.output_size() < 2 {
            bail!("--loss cross_entropy with softmax needs at least 2 outputs; got {}", self.output_size());
        }
        Ok(())
    }
}

/// serde's `skip_serializing_if` for fields that are off at 0.
pub(crate) fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// The most parameters a model may have (2³¹): 8 GiB in f32, 16 GiB in the f64 reference,
/// before gradients and optimiser state.
pub const MAX_PARAMS: usize = 1 << 31;

/// Parameters of one weight layer, in the layout above.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerParams<T> {
    /// `[out, in]`, row-major.
    pub weight: Vec<T>,
    /// `[out]`.
    pub bias: Vec<T>,
}

/// All parameters of a model. The host keeps them in f64; backends convert on the way in/out.
#[derive(Clone, Debug, PartialEq)]
pub struct Params<T = f64> {
    pub layers: Vec<LayerParams<T>>,
}

impl<T: Copy> Params<T> {
    pub fn map<U>(&self, f: impl Fn(T) -> U + Copy) -> Params<U> {
        Params {
            layers: self
                .layers
                .iter()
                .map(|l| LayerParams {
                    weight: l.weight.iter().map(|&x| f(x)).collect(),
                    bias: l.bias.iter().map(|&x| f(x)).collect(),
                })
                .collect(),
        }
    }
    /// Every value, layer by layer, weight then bias (the order of `tensor_names`).
    pub fn flat(&self) -> Vec<T> {
        let mut v = Vec::new();
        for l in &self.layers {
            v.extend_from_slice(&l.weight);
            v.extend_from_slice(&l.bias);
        }
        v
    }
}

impl Params<f64> {
    /// All-zero parameters shaped for `spec`.
    pub fn zeros(spec: &ModelSpec) -> Self {
        Params {
            layers: (0..spec.num_layers())
                .map(|i| {
                    let (n_in, n_out) = spec.layer_dims(i);
                    LayerParams { weight: vec![0.0; n_in * n_out], bias: vec![0.0; n_out] }
                })
                .collect(),
        }
    }
    /// Checks the shapes against `spec`; `what` names the source in the error.
    pub fn check_shapes(&self, spec: &ModelSpec, what: &str) -> Result<()> {
        if self.layers.len() != spec.num_layers() {
            bail!("{what}: has {} weight layer(s), the model needs {}", self.layers.len(), spec.num_layers());
        }
        for (i, l) in self.layers.iter().enumerate() {
            let (n_in, n_out) = spec.layer_dims(i);
            if l.weight.len() != n_in * n_out || l.bias.len() != n_out {
                bail!(
                    "{what}: layer {i} has {} weights and {} biases, the model needs [{n_out}, {n_in}] = {} weights and {n_out} biases",
                    l.weight.len(),
                    l.bias.len(),
                    n_in * n_out
                );
            }
        }
        Ok(())
    }
}

/// Names of the tensors of layer `i`, as stored in `model.safetensors`.
pub fn tensor_names(i: usize) -> (String, String) {
    (format!("layers.{i}.weight"), format!("layers.{i}.bias"))
}
