//! The IDX file format of MNIST and its siblings: a 4-byte magic (0, 0, element type, number of
//! dimensions), one big-endian u32 per dimension, then the elements, big-endian, row-major.
//! Files may be gzip-compressed. Every way a file can be wrong gets an error naming the file,
//! what was found and what was expected.

use anyhow::{Context, Result, bail};
use flate2::read::MultiGzDecoder;
use std::io::Read;
use std::path::Path;

pub const TYPE_U8: u8 = 0x08;
pub const TYPE_F32: u8 = 0x0D;

/// Refuse to inflate beyond this: no IDX file of this kind is near it, a gzip bomb is.
const MAX_DECOMPRESSED: u64 = 4 << 30;

#[derive(Clone, Debug, PartialEq)]
pub enum IdxData {
    U8(Vec<u8>),
    F32(Vec<f32>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: IdxData,
}

impl IdxArray {
    pub fn len(&self) -> usize {
        match &self.data {
            IdxData::U8(v) => v.len(),
            IdxData::F32(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn type_name(t: u8) -> &'static str {
    match t {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "short",
        0x0C => "int",
        0x0D => "float32",
        0x0E => "float64",
        _ => "unknown",
    }
}

/// Reads an IDX file, gzip-compressed (detected by its magic bytes) or raw.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let name = path.display().to_string();
    let raw = std::fs::read(path).with_context(|| format!("cannot read {name}"))?;
    decode_idx(&raw, &name)
}

/// Decodes the bytes of an IDX file, gzip-compressed or raw; `name` is used in error messages.
/// This is what the fuzz target (`fuzz/fuzz_targets/idx.rs`) exercises.
pub fn decode_idx(raw: &[u8], name: &str) -> Result<IdxArray> {
    if raw.is_empty() {
        bail!("{name}: the file is empty; expected an IDX file (optionally gzip-compressed)");
    }
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        MultiGzDecoder::new(raw)
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut out)
            .map_err(|e| anyhow::anyhow!("{name}: corrupt or truncated gzip data ({e})"))?;
        if out.len() as u64 > MAX_DECOMPRESSED {
            bail!("{name}: decompresses to more than {MAX_DECOMPRESSED} bytes; refusing");
        }
        return parse_idx(&out, name);
    }
    parse_idx(raw, name)
}

/// Parses the bytes of an (uncompressed) IDX file; `name` is used in error messages.
pub fn parse_idx(bytes: &[u8], name: &str) -> Result<IdxArray> {
    if bytes.len() < 4 {
        bail!("{name}: {} byte(s) is too short for an IDX header; expected at least 4", bytes.len());
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        bail!(
            "{name}: bad magic number {:02x} {:02x} {:02x} {:02x}; an IDX file starts with 00 00 <type> <dims> \
             (is this really an IDX file, or a compressed file of another kind?)",
            bytes[0], bytes[1], bytes[2], bytes[3]
        );
    }
    let ty = bytes[2];
    if ty != TYPE_U8 && ty != TYPE_F32 {
        bail!(
            "{name}: element type 0x{ty:02X} ({}) is not supported; expected 0x08 (unsigned byte) or 0x0D (float32)",
            type_name(ty)
        );
    }
    let ndims = bytes[3] as usize;
    if ndims == 0 {
        bail!("{name}: the header declares 0 dimensions; expected at least 1");
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        bail!(
            "{name}: truncated header: {ndims} dimensions need {header} header bytes, the file has {}",
            bytes.len()
        );
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    let elem = if ty == TYPE_U8 { 1 } else { 4 };
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .with_context(|| format!("{name}: dimensions {dims:?} overflow"))?;
    let expected = count
        .checked_mul(elem)
        .and_then(|n| n.checked_add(header))
        .with_context(|| format!("{name}: dimensions {dims:?} overflow"))?;
    if bytes.len() != expected {
        let what = if bytes.len() < expected { "truncated" } else { "has trailing bytes" };
        bail!(
            "{name}: {what}: dimensions {dims:?} of {} need {expected} bytes, the file has {}",
            type_name(ty),
            bytes.len()
        );
    }
    let payload = &bytes[header..];
    let data = if ty == TYPE_U8 {
        IdxData::U8(payload.to_vec())
    } else {
        IdxData::F32(payload.chunks_exact(4).map(|c| f32::from_be_bytes(c.try_into().unwrap())).collect())
    };
    Ok(IdxArray { dims, data })
}

/// Encodes an array as IDX bytes (used by tests and by tools that export data).
pub fn encode_idx(arr: &IdxArray) -> Vec<u8> {
    let ty = match arr.data {
        IdxData::U8(_) => TYPE_U8,
        IdxData::F32(_) => TYPE_F32,
    };
    let mut out = vec![0, 0, ty, arr.dims.len() as u8];
    for &d in &arr.dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    match &arr.data {
        IdxData::U8(v) => out.extend_from_slice(v),
        IdxData::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
    }
    out
}
