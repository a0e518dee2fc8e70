//! A trained model's answer for pixel rows: the forward pass (CPU f32, the same arithmetic as
//! `FastBackend`: `math::Real::gemm` = matrixmultiply and `math.rs`'s activations) and class
//! probabilities; what `gpu-nn predict` and the web page's drawing canvas use.

use crate::nn::math::{self, Real};
use crate::nn::model::{Activation, ModelSpec, Params};

/// The outputs of the last layer for `rows` pixel rows `x` [rows, in] (values in [0, 1]), f32
/// like `FastBackend`, after the model's input normalisation.
pub fn forward(spec: &ModelSpec, params: &Params<f32>, x: &[f32], rows: usize) -> Vec<f32> {
    let (mean, std) = (spec.input_norm.mean as f32, spec.input_norm.std as f32);
    let mut a: Vec<f32> = x.iter().map(|&p| (p - mean) / std).collect();
    for (l, p) in params.layers.iter().enumerate() {
        let (n_in, n_out) = spec.layer_dims(l);
        let mut z = Vec::with_capacity(rows * n_out);
        for _ in 0..rows {
            z.extend_from_slice(&p.bias);
        }
        // Z += A [rows×in] · Wᵀ [in×out], exactly as CpuBackend::forward
        f32::gemm(rows, n_in, n_out, 1.0, &a, n_in, 1, &p.weight, 1, n_in, 1.0, &mut z, n_out);
        let mut next = vec![0.0f32; rows * n_out];
        let act = spec.activations[l];
        for r in 0..rows {
            let s = r * n_out..(r + 1) * n_out;
            math::activate_row(act, &z[s.clone()], &mut next[s]);
        }
        a = next;
    }
    a
}

/// Class probabilities from one row of outputs: a softmax output as it is; a single sigmoid
/// output o as (1 − o, o); other outputs normalised to sum 1 (a softmax of them if any is
/// negative). The predicted class is `math::predict` of the outputs, which is also the most
/// probable class here.
pub fn probabilities(spec: &ModelSpec, out: &[f32]) -> Vec<f64> {
    let o: Vec<f64> = out.iter().map(|&v| v as f64).collect();
    if o.len() == 1 {
        return vec![1.0 - o[0], o[0]];
    }
    if spec.output_activation() == Activation::Softmax {
        return o;
    }
    let sum: f64 = o.iter().sum();
    if o.iter().all(|&v| v >= 0.0) && sum > 0.0 {
        o.iter().map(|v| v / sum).collect()
    } else {
        let mut p = vec![0.0; o.len()];
        math::softmax_row(&o, &mut p);
        p
    }
}

/// Prediction of one input row: (class, probabilities).
pub fn classify(spec: &ModelSpec, params: &Params<f32>, x: &[f32]) -> (u8, Vec<f64>) {
    let out = forward(spec, params, x, 1);
    (math::predict(&out), probabilities(spec, &out))
}
