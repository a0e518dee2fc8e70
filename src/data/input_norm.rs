//! Input normalisation x = (p − mean) / std, applied to pixels after their scaling to [0, 1]:
//! part of a model (stored in its file), measured from a dataset's pixels.

use serde::{Deserialize, Serialize};

/// How a stored pixel `p` (a byte / 255, or a float as stored) becomes an input:
/// `x = (p − mean) / std`. The identity (mean 0, std 1) feeds pixels as they are. Centring
/// (`data.standardize`: the training split's own mean and std, MNIST ≈ 0.13 and 0.31) conditions
/// gradient descent far better; it is part of the model because a model trained on centred
/// inputs must be fed centred inputs by `eval` and `predict` too.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputNorm {
    pub mean: f64,
    pub std: f64,
}

impl InputNorm {
    pub const IDENTITY: InputNorm = InputNorm { mean: 0.0, std: 1.0 };
    pub fn is_identity(&self) -> bool {
        *self == Self::IDENTITY
    }
    /// The input for pixel value `p`, in f64 (the reference's arithmetic; backends in f32 do
    /// the same two operations in f32).
    pub fn apply(&self, p: f64) -> f64 {
        (p - self.mean) / self.std
    }
}

impl Default for InputNorm {
    fn default() -> Self {
        Self::IDENTITY
    }
}

/// Per-feature standardisation of a table's columns, x_j = (p_j − mean_j) / std_j, measured on
/// the training split (`data.standardize` on tabular data). Part of a model like `InputNorm`,
/// but applied to the samples before any backend sees them (`Dataset::standardized`,
/// `core::inference::forward`), so the backends' kernels stay those of one mean and one std.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureNorm {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl FeatureNorm {
    /// Feature `j`'s input for value `p`.
    pub fn apply(&self, j: usize, p: f64) -> f64 {
        (p - self.mean[j]) / self.std[j]
    }
}
