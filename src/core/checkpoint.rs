//! Model files: safetensors with `layers.{i}.weight` \[out, in\] and `layers.{i}.bias` \[out\]
//! (what PyTorch's `nn.Linear` stores), the architecture as JSON in the metadata.
//!
//! Checkpoints (`checkpoint.safetensors` in a run directory): the same parameter tensors plus
//! the optimiser state `optim.layers.{i}.{weight|bias}.slot{k}`, all in F64 so that a CPU run
//! resumes bit for bit (f32 values are exact in f64 too), and one metadata key,
//! `gpu_nn_checkpoint`, holding a JSON document (`CheckpointMeta`): the architecture, the
//! optimiser and its step counter, which engine computed the run, the configuration's settings
//! that determine the training, and the loop's `RunState` (epoch, step within it, running
//! sums, metrics).
//!
//! Both carry a second metadata key, `gpu_nn_sha256`: the SHA-256 of their tensors (names,
//! dtypes, shapes and bytes, in name order). A file whose tensors no longer match it (a flipped
//! bit on disk) is refused; a file without it (written by another tool) is read, and the
//! reader says it could not be verified (`Checked`). The header's keys are written in sorted
//! order, so identical contents give identical bytes.

use crate::atomic_file::write_atomic;
use crate::nn::model::{LayerParams, ModelSpec, Params, tensor_names};
use crate::nn::optim::{OptimState, OptimizerKind};
use crate::core::run_state::RunState;
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// File names inside a run directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const BEST_FILE: &str = "best.safetensors";
/// The one metadata key of a checkpoint.
pub const CHECKPOINT_KEY: &str = "gpu_nn_checkpoint";
/// The metadata key of the tensors' checksum.
pub const CHECKSUM_KEY: &str = "gpu_nn_sha256";
/// Bumped when the layout changes incompatibly.
pub const CHECKPOINT_FORMAT: u32 = 1;

/// Whether a file's tensors were checked against its checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checked {
    /// They match `gpu_nn_sha256`.
    Verified,
    /// The file has no checksum (another tool wrote it): read as it is.
    NoChecksum,
}

impl Checked {
    /// The note a command prints for a file it read without a checksum.
    pub fn note(self, path: &Path) -> Option<String> {
        (self == Checked::NoChecksum).then(|| {
            format!("note: {} carries no checksum (written by another tool or an older gpu-nn); its tensors could not be verified", path.display())
        })
    }
}

/// SHA-256 of tensors given as (name, dtype, shape, bytes), in name order.
fn digest<'a>(tensors: impl Iterator<Item = (&'a str, Dtype, &'a [usize], &'a [u8])>) -> String {
    let mut all: Vec<_> = tensors.collect();
    all.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    for (name, dtype, shape, bytes) in all {
        h.update(name.as_bytes());
        h.update(format!("\0{dtype:?}{shape:?}\0").as_bytes());
        h.update(bytes);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// safetensors bytes of `buffers` (name, shape, bytes, all of `dtype`) with `meta` and the
/// checksum in the metadata, the header's keys in sorted order.
fn serialize(buffers: &[(String, Vec<usize>, Vec<u8>)], dtype: Dtype, mut meta: HashMap<String, String>) -> Result<Vec<u8>> {
    let sum = digest(buffers.iter().map(|(n, s, b)| (n.as_str(), dtype, s.as_slice(), b.as_slice())));
    meta.insert(CHECKSUM_KEY.to_string(), sum);
    let views: Vec<(String, TensorView)> = buffers
        .iter()
        .map(|(n, s, b)| Ok((n.clone(), TensorView::new(dtype, s.clone(), b)?)))
        .collect::<Result<_>>()?;
    let mut bytes = safetensors::serialize(views, Some(meta))?;
    // safetensors writes its metadata HashMap in iteration order, which differs between
    // processes: rewrite the header with sorted keys (the same text reordered, so no longer)
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n])?;
    let text = serde_json::to_string(&header)?;
    if text.len() > n {
        bail!("internal: the sorted safetensors header is longer than the original");
    }
    bytes[8..8 + text.len()].copy_from_slice(text.as_bytes());
    bytes[8 + text.len()..8 + n].fill(b' ');
    Ok(bytes)
}

/// Checks `st` against the checksum in `meta`, if it has one.
fn verify(st: &SafeTensors, meta: &HashMap<String, String>, file: &str) -> Result<Checked> {
    let Some(want) = meta.get(CHECKSUM_KEY) else { return Ok(Checked::NoChecksum) };
    let names = st.names();
    let views: Vec<(&str, TensorView)> = names.iter().map(|n| (&n[..], st.tensor(n).unwrap())).collect();
    let got = digest(views.iter().map(|(n, t)| (*n, t.dtype(), t.shape(), t.data())));
    if &got != want {
        bail!(
            "{file}: its tensors do not match the checksum stored with them (sha256 {}… instead of {}…): the file is damaged; use another copy",
            &got[..12],
            &want[..want.len().min(12)]
        );
    }
    Ok(Checked::Verified)
}

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
    let mut meta = HashMap::new();
    meta.insert("architecture".to_string(), serde_json::to_string(spec)?);
    serialize(&buffers, st_dtype, meta)
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
/// the architecture in its metadata). A checkpoint is a model file too.
pub fn load_model(path: &Path) -> Result<(Params, ModelSpec)> {
    read_model(path).map(|(p, s, _)| (p, s))
}

/// `load_model`, also saying whether the tensors were verified against a checksum.
pub fn read_model(path: &Path) -> Result<(Params, ModelSpec, Checked)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read model file {}", path.display()))?;
    model_from_bytes(&bytes, &path.display().to_string())
}

/// Whether a safetensors file carries gpu-nn's architecture (a model or a checkpoint); false
/// for other tools' files and for what is no safetensors file (the reader then says why).
pub fn has_architecture(bytes: &[u8]) -> bool {
    SafeTensors::read_metadata(bytes).is_ok_and(|(_, m)| m.metadata().as_ref().is_some_and(|m| m.contains_key("architecture") || m.contains_key(CHECKPOINT_KEY)))
}

/// `read_model` on a file's bytes; `name` names it in errors.
pub fn model_from_bytes(bytes: &[u8], name: &str) -> Result<(Params, ModelSpec, Checked)> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| anyhow::anyhow!("{name}: not a safetensors file ({e})"))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let spec: ModelSpec = if let Some(arch) = meta.get("architecture") {
        serde_json::from_str(arch).map_err(|e| anyhow::anyhow!("{name}: architecture metadata is invalid: {e}"))?
    } else if let Some(ck) = meta.get(CHECKPOINT_KEY) {
        let ck: CheckpointMeta = serde_json::from_str(ck).map_err(|e| anyhow::anyhow!("{name}: checkpoint metadata is invalid: {e}"))?;
        ck.architecture
    } else {
        bail!("{name}: no 'architecture' entry in the safetensors metadata (a file from another tool is read by --init-from, which takes the architecture from --layers or the preset)");
    };
    spec.validate().with_context(|| format!("{name}: architecture"))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| anyhow::anyhow!("{name}: not a safetensors file ({e})"))?;
    let checked = verify(&st, &meta, name)?;
    Ok((read_params(&st, &spec, &name.to_string())?, spec, checked))
}

fn read_params(st: &SafeTensors, spec: &ModelSpec, file: &str) -> Result<Params> {
    let mut layers = Vec::new();
    for i in 0..spec.num_layers() {
        let (n_in, n_out) = spec.layer_dims(i);
        let (wn, bn) = tensor_names(i);
        let weight = read_tensor(st, &wn, &[n_out, n_in], file)?;
        let bias = read_tensor(st, &bn, &[n_out], file)?;
        layers.push(LayerParams { weight, bias });
    }
    Ok(Params { layers })
}

/// The metadata of a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointMeta {
    pub format: u32,
    pub architecture: ModelSpec,
    pub optimizer: OptimizerKind,
    /// Optimiser updates taken (Adam's t before the next step).
    pub optim_step: u64,
    /// What computed the run (`core::Engine::name`): resuming on another would
    /// change results.
    pub engine: String,
    /// On the CPU, the instruction sets its GEMM kernels were chosen by
    /// (`cpu::instruction_sets`): a resume on a CPU with others rounds differently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// The run's configuration as `Config::maths_only` (what a resume must not change).
    pub config: serde_json::Value,
    /// Where the training loop stands: epoch, step within it, running sums, metrics so far.
    pub state: RunState,
}

/// Everything needed to continue a run exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    pub params: Params,
    pub optim: OptimState,
}

/// Name of optimiser slot `k` of layer `i`'s weight (`tensor` 0) or bias (1).
pub fn slot_name(i: usize, tensor: usize, k: usize) -> String {
    format!("optim.layers.{i}.{}.slot{k}", if tensor == 0 { "weight" } else { "bias" })
}

/// Serialises a checkpoint; deterministic (one metadata key, tensors sorted by safetensors).
pub fn checkpoint_bytes(ck: &Checkpoint) -> Result<Vec<u8>> {
    let spec = &ck.meta.architecture;
    ck.params.check_shapes(spec, "checkpoint parameters")?;
    let slots = ck.meta.optimizer.state_slots();
    if ck.optim.slots.len() != spec.num_layers() {
        bail!("checkpoint: optimiser state has {} layers, the model {}", ck.optim.slots.len(), spec.num_layers());
    }
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, (l, st)) in ck.params.layers.iter().zip(&ck.optim.slots).enumerate() {
        let (n_in, n_out) = spec.layer_dims(i);
        let (wn, bn) = tensor_names(i);
        buffers.push((wn, vec![n_out, n_in], encode(&l.weight, FileDtype::F64)));
        buffers.push((bn, vec![n_out], encode(&l.bias, FileDtype::F64)));
        for (t, shape) in [(0, vec![n_out, n_in]), (1, vec![n_out])] {
            if st[t].len() != slots || st[t].iter().any(|v| v.len() != shape.iter().product::<usize>()) {
                bail!("checkpoint: optimiser state of layer {i} does not match {} with {slots} slot(s)", ck.meta.optimizer);
            }
            for (k, v) in st[t].iter().enumerate() {
                buffers.push((slot_name(i, t, k), shape.clone(), encode(v, FileDtype::F64)));
            }
        }
    }
    let mut meta = HashMap::new();
    meta.insert(CHECKPOINT_KEY.to_string(), serde_json::to_string(&ck.meta)?);
    serialize(&buffers, Dtype::F64, meta)
}

/// Writes a checkpoint atomically: a crash or a failed write leaves the previous one.
pub fn save_checkpoint(path: &Path, ck: &Checkpoint) -> Result<()> {
    write_atomic(path, &checkpoint_bytes(ck)?)
}

/// Reads and checks a checkpoint: format, every tensor's presence, shape, dtype and finiteness.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint> {
    read_checkpoint(path).map(|(c, _)| c)
}

/// `load_checkpoint`, also saying whether the tensors were verified against a checksum.
pub fn read_checkpoint(path: &Path) -> Result<(Checkpoint, Checked)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    checkpoint_from_bytes(&bytes, &path.display().to_string())
}

/// `read_checkpoint` on a file's bytes; `name` names it in errors.
pub fn checkpoint_from_bytes(bytes: &[u8], name: &str) -> Result<(Checkpoint, Checked)> {
    let name = name.to_string();
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| anyhow::anyhow!("{name}: not a safetensors file ({e})"))?;
    let text = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CHECKPOINT_KEY))
        .with_context(|| format!("{name}: no '{CHECKPOINT_KEY}' entry in the metadata; not a gpu-nn checkpoint"))?;
    let meta: CheckpointMeta = serde_json::from_str(text).map_err(|e| anyhow::anyhow!("{name}: checkpoint metadata is invalid: {e}"))?;
    if meta.format != CHECKPOINT_FORMAT {
        bail!("{name}: checkpoint format {} is not supported (this gpu-nn reads format {CHECKPOINT_FORMAT})", meta.format);
    }
    let spec = &meta.architecture;
    spec.validate().with_context(|| format!("{name}: architecture"))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| anyhow::anyhow!("{name}: not a safetensors file ({e})"))?;
    let checked = verify(&st, header.metadata().as_ref().unwrap_or(&HashMap::new()), &name)?;
    let params = read_params(&st, spec, &name)?;
    let slots = meta.optimizer.state_slots();
    let mut optim = OptimState { step: meta.optim_step, slots: Vec::new() };
    for i in 0..spec.num_layers() {
        let (n_in, n_out) = spec.layer_dims(i);
        let read = |t: usize, shape: &[usize]| -> Result<Vec<Vec<f64>>> {
            (0..slots).map(|k| read_tensor(&st, &slot_name(i, t, k), shape, &name)).collect()
        };
        optim.slots.push([read(0, &[n_out, n_in])?, read(1, &[n_out])?]);
    }
    Ok((Checkpoint { meta, params, optim }, checked))
}

/// Tensor `tensor` of `st` as f64, checked to have `shape` and finite values; F16, BF16, F32
/// and F64 are read (other tools write the half types).
pub(crate) fn read_tensor(st: &SafeTensors, tensor: &str, shape: &[usize], file: &str) -> Result<Vec<f64>> {
    let t = st.tensor(tensor).map_err(|_| anyhow::anyhow!("{file}: tensor '{tensor}' is missing"))?;
    if t.shape() != shape {
        bail!("{file}: tensor '{tensor}' has shape {:?}; expected {shape:?}", t.shape());
    }
    let v: Vec<f64> = match t.dtype() {
        Dtype::F32 => t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        Dtype::F64 => t.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
        Dtype::F16 => t.data().chunks_exact(2).map(|c| half::f16::from_le_bytes(c.try_into().unwrap()).to_f64()).collect(),
        Dtype::BF16 => t.data().chunks_exact(2).map(|c| half::bf16::from_le_bytes(c.try_into().unwrap()).to_f64()).collect(),
        d => bail!("{file}: tensor '{tensor}' has dtype {d:?}; expected F16, BF16, F32 or F64"),
    };
    if let Some(x) = v.iter().find(|x| !x.is_finite()) {
        bail!("{file}: tensor '{tensor}' holds the non-finite value {x}");
    }
    Ok(v)
}
