//! Model files: safetensors with `layers.{i}.weight` [out, in] and `layers.{i}.bias` [out]
//! (what PyTorch's `nn.Linear` stores), the architecture as JSON in the metadata.

use crate::fsutil::write_atomic;
use crate::model::{LayerParams, ModelSpec, Params, tensor_names};
use anyhow::{Context, Result, bail};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// Element type a model file is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileDtype {
    F32,
    F64,
}

/// Serialises parameters and architecture to safetensors bytes.
pub fn model_bytes(params: &Params, spec: &ModelSpec, dtype: FileDtype) -> Result<Vec<u8>> {
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, l) in params.layers.iter().enumerate() {
        let (n_in, n_out) = spec.layer_dims(i);
        let (wn, bn) = tensor_names(i);
        buffers.push((wn, vec![n_out, n_in], encode(&l.weight, dtype)));
        buffers.push((bn, vec![n_out], encode(&l.bias, dtype)));
    }
    let st_dtype = match dtype {
        FileDtype::F32 => Dtype::F32,
        FileDtype::F64 => Dtype::F64,
    };
    let views: Vec<(String, TensorView)> = buffers
        .iter()
        .map(|(n, s, b)| Ok((n.clone(), TensorView::new(st_dtype, s.clone(), b)?)))
        .collect::<Result<_>>()?;
    // One metadata key only: safetensors takes a HashMap, whose order would make identical
    // runs write different bytes.
    let mut meta = HashMap::new();
    meta.insert("architecture".to_string(), serde_json::to_string(spec)?);
    Ok(safetensors::serialize(views, Some(meta))?)
}

fn encode(v: &[f64], dtype: FileDtype) -> Vec<u8> {
    match dtype {
        FileDtype::F32 => v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect(),
        FileDtype::F64 => v.iter().flat_map(|&x| x.to_le_bytes()).collect(),
    }
}

/// Writes a model file atomically.
pub fn save_model(path: &Path, params: &Params, spec: &ModelSpec, dtype: FileDtype) -> Result<()> {
    write_atomic(path, &model_bytes(params, spec, dtype)?)
}

/// Reads a model file written by gpu-nn (or any safetensors file with the same tensor names and
/// the architecture in its metadata).
pub fn load_model(path: &Path) -> Result<(Params, ModelSpec)> {
    let name = path.display();
    let bytes = std::fs::read(path).with_context(|| format!("cannot read model file {name}"))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| anyhow::anyhow!("{name}: not a safetensors file ({e})"))?;
    let arch = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("architecture"))
        .with_context(|| format!("{name}: no 'architecture' entry in the safetensors metadata; was it written by gpu-nn?"))?;
    let spec: ModelSpec = serde_json::from_str(arch).map_err(|e| anyhow::anyhow!("{name}: architecture metadata is invalid: {e}"))?;
    spec.validate().with_context(|| format!("{name}: architecture"))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| anyhow::anyhow!("{name}: not a safetensors file ({e})"))?;
    let mut layers = Vec::new();
    for i in 0..spec.num_layers() {
        let (n_in, n_out) = spec.layer_dims(i);
        let (wn, bn) = tensor_names(i);
        let weight = read_tensor(&st, &wn, &[n_out, n_in], &name.to_string())?;
        let bias = read_tensor(&st, &bn, &[n_out], &name.to_string())?;
        layers.push(LayerParams { weight, bias });
    }
    Ok((Params { layers }, spec))
}

fn read_tensor(st: &SafeTensors, tensor: &str, shape: &[usize], file: &str) -> Result<Vec<f64>> {
    let t = st.tensor(tensor).map_err(|_| anyhow::anyhow!("{file}: tensor '{tensor}' is missing"))?;
    if t.shape() != shape {
        bail!("{file}: tensor '{tensor}' has shape {:?}; expected {shape:?}", t.shape());
    }
    let v: Vec<f64> = match t.dtype() {
        Dtype::F32 => t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        Dtype::F64 => t.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
        d => bail!("{file}: tensor '{tensor}' has dtype {d:?}; expected F32 or F64"),
    };
    if let Some(x) = v.iter().find(|x| !x.is_finite()) {
        bail!("{file}: tensor '{tensor}' holds the non-finite value {x}");
    }
    Ok(v)
}
