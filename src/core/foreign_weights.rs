//! Weights from other tools: a safetensors file without gpu-nn's metadata, whose architecture
//! comes from the configuration. Two naming schemes are recognised:
//! - gpu-nn's documented names, `layers.{i}.weight` \[out, in\] and `layers.{i}.bias` \[out\];
//! - any state dict of linear layers, e.g. PyTorch's `nn.Sequential` (`0.weight`, `2.weight`,
//!   …) or named `Linear` modules (`fc1.weight`, `fc2.weight`): every 2-D tensor named
//!   `P.weight` is a layer, `P.bias` its bias (zero where absent), and the layers are taken in
//!   the natural order of P (numbers compared as numbers: 2 before 10).
//!
//! Each layer's shape is checked against the configuration's, with one line naming both.

use crate::core::checkpoint::read_tensor;
use crate::nn::model::{LayerParams, ModelSpec, Params, tensor_names};
use anyhow::{Result, bail};
use safetensors::SafeTensors;

/// The parameters of `spec` from a safetensors file without gpu-nn's metadata.
pub fn read_foreign(bytes: &[u8], file: &str, spec: &ModelSpec) -> Result<Params> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| anyhow::anyhow!("{file}: not a safetensors file ({e})"))?;
    let prefixes = if st.names().iter().any(|n| *n == "layers.0.weight") { documented(spec) } else { linear_prefixes(&st) };
    let shapes: Vec<Vec<usize>> = prefixes.iter().map(|p| st.tensor(&format!("{p}.weight")).map(|t| t.shape().to_vec()).unwrap_or_default()).collect();
    let fits = shapes.len() == spec.num_layers() && (0..spec.num_layers()).all(|i| {
        let (n_in, n_out) = spec.layer_dims(i);
        shapes[i] == [n_out, n_in]
    });
    if !fits {
        let found: Vec<String> = prefixes.iter().zip(&shapes).map(|(p, s)| match s.as_slice() {
            [o, i] => format!("{i}→{o} ({p}.weight)"),
            _ => format!("none ({p}.weight is missing)"),
        }).collect();
        let want: Vec<String> = (0..spec.num_layers()).map(|i| format!("{}→{}", spec.layers[i], spec.layers[i + 1])).collect();
        bail!(
            "{file}: its linear layers are {}; the configuration's layers {:?} expect {} (give --layers to match the file)",
            if found.is_empty() { "none (no 2-D tensor named *.weight)".to_string() } else { found.join(", ") },
            spec.layers,
            want.join(", ")
        );
    }
    let mut layers = Vec::new();
    for (i, p) in prefixes.iter().enumerate() {
        let (n_in, n_out) = spec.layer_dims(i);
        let weight = read_tensor(&st, &format!("{p}.weight"), &[n_out, n_in], file)?;
        let bias_name = format!("{p}.bias");
        let bias = if st.names().iter().any(|n| **n == bias_name) { read_tensor(&st, &bias_name, &[n_out], file)? } else { vec![0.0; n_out] };
        layers.push(LayerParams { weight, bias });
    }
    Ok(Params { layers })
}

/// `layers.0`, `layers.1`, … for every layer of `spec` (present or not: the check names what is missing).
fn documented(spec: &ModelSpec) -> Vec<String> {
    (0..spec.num_layers()).map(|i| tensor_names(i).0.trim_end_matches(".weight").to_string()).collect()
}

/// The prefixes P of the 2-D tensors named `P.weight`, in natural order.
fn linear_prefixes(st: &SafeTensors) -> Vec<String> {
    let mut p: Vec<String> = st
        .tensors()
        .into_iter()
        .filter(|(n, t)| n.ends_with(".weight") && t.shape().len() == 2)
        .map(|(n, _)| n.trim_end_matches(".weight").to_string())
        .collect();
    p.sort_by_key(|s| natural_key(s));
    p
}

/// A sort key that compares runs of digits as numbers: `net.2` before `net.10`.
fn natural_key(s: &str) -> Vec<(u64, String)> {
    let mut key = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            key.push((rest[..digits].parse().unwrap_or(u64::MAX), String::new()));
            rest = &rest[digits..];
        } else {
            let text = rest.len() - rest.trim_start_matches(|c: char| !c.is_ascii_digit()).len();
            key.push((0, rest[..text].to_string()));
            rest = &rest[text..];
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::natural_key;

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        let mut v = vec!["net.10", "net.2", "net.0", "fc2", "fc10", "fc1"];
        v.sort_by_key(|s| natural_key(s));
        assert_eq!(v, ["fc1", "fc2", "fc10", "net.0", "net.2", "net.10"]);
    }
}
