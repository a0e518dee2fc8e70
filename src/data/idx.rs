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

/// Reads an IDX file (gzip-compressed or not).
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let name = path.display().to_string();
    let raw = std::fs::read(path).with_context(|| format!("cannot read {name}"))?;
    decode_idx(&raw, &name)
}

/// Decodes IDX bytes, gunzipping them first when they start with gzip's magic number. A gzip
/// stream is decoded straight into the array, its size bounded by its own header (and by
/// `MAX_DECOMPRESSED`): a gzip bomb costs no memory, and nothing is copied twice.
pub fn decode_idx(raw: &[u8], name: &str) -> Result<IdxArray> {
    if raw.is_empty() {
        bail!("{name}: the file is empty; expected an IDX file (optionally gzip-compressed)");
    }
    if raw.starts_with(&[0x1f, 0x8b]) {
        return read_stream(&mut MultiGzDecoder::new(raw), name, None);
    }
    parse_idx(raw, name)
}

/// Parses uncompressed IDX bytes.
pub fn parse_idx(bytes: &[u8], name: &str) -> Result<IdxArray> {
    read_stream(&mut &bytes[..], name, Some(bytes.len()))
}

/// Reads up to `buf.len()` bytes, fewer only where the stream ends.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// An IDX array from a stream: the header checked, then exactly the elements it declares, then
/// nothing more. `known_len`: the whole input's length, where it is known (uncompressed bytes),
/// checked against the header before anything is allocated; else (a gzip decoder, whose read
/// errors mean corrupt or truncated data) the elements are read as they come, memory growing
/// with what arrives and bounded by `MAX_DECOMPRESSED`.
fn read_stream(r: &mut impl Read, name: &str, known_len: Option<usize>) -> Result<IdxArray> {
    let mut read = |buf: &mut [u8]| -> Result<usize> { read_full(r, buf).map_err(|e| anyhow::anyhow!("{name}: corrupt or truncated gzip data ({e})")) };
    let mut magic = [0u8; 4];
    let got = read(&mut magic)?;
    if got < 4 {
        bail!("{name}: {got} byte(s) is too short for an IDX header; expected at least 4");
    }
    if magic[0] != 0 || magic[1] != 0 {
        bail!(
            "{name}: bad magic number {:02x} {:02x} {:02x} {:02x}; an IDX file starts with 00 00 <type> <dims> \
             (is this really an IDX file, or a compressed file of another kind?)",
            magic[0], magic[1], magic[2], magic[3]
        );
    }
    let ty = magic[2];
    if ty != TYPE_U8 && ty != TYPE_F32 {
        bail!(
            "{name}: element type 0x{ty:02X} ({}) is not supported; expected 0x08 (unsigned byte) or 0x0D (float32)",
            type_name(ty)
        );
    }
    let ndims = magic[3] as usize;
    if ndims == 0 {
        bail!("{name}: the header declares 0 dimensions; expected at least 1");
    }
    let header = 4 + 4 * ndims;
    let mut dim_bytes = vec![0u8; 4 * ndims];
    let got = read(&mut dim_bytes)?;
    if got < dim_bytes.len() {
        bail!("{name}: truncated header: {ndims} dimensions need {header} header bytes, the file has {}", 4 + got);
    }
    let dims: Vec<usize> = dim_bytes.chunks_exact(4).map(|c| u32::from_be_bytes(c.try_into().unwrap()) as usize).collect();
    let elem = if ty == TYPE_U8 { 1 } else { 4 };
    let overflow = || anyhow::anyhow!("{name}: dimensions {dims:?} overflow");
    let count = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(overflow)?;
    let payload = count.checked_mul(elem).ok_or_else(overflow)?;
    let expected = payload.checked_add(header).ok_or_else(overflow)?;
    let wrong_length = |has: u64| {
        let what = if has < expected as u64 { "truncated" } else { "has trailing bytes" };
        anyhow::anyhow!("{name}: {what}: dimensions {dims:?} of {} need {expected} bytes, the file has {has}", type_name(ty))
    };
    match known_len {
        Some(len) if len != expected => return Err(wrong_length(len as u64)),
        None if payload as u64 > MAX_DECOMPRESSED => {
            bail!("{name}: its header declares {payload} bytes of elements (dimensions {dims:?}); refusing to inflate more than {MAX_DECOMPRESSED}")
        }
        _ => {}
    }
    // the elements as they arrive, in chunks: memory grows with the data, not with the header
    let mut chunk = vec![0u8; payload.clamp(4, 1 << 16)];
    let mut have = 0;
    let mut bytes: Vec<u8> = Vec::new();
    let mut floats: Vec<f32> = Vec::new();
    // room for every element at once (a header beyond MAX_DECOMPRESSED is refused above): the
    // data is read into its final place, never copied again
    let room = payload;
    if ty == TYPE_U8 {
        bytes.try_reserve_exact(room).map_err(|_| anyhow::anyhow!("{name}: no memory for the {room} bytes its header declares"))?;
    } else {
        floats.try_reserve_exact(room / 4).map_err(|_| anyhow::anyhow!("{name}: no memory for the {} floats its header declares", room / 4))?;
    }
    while have < payload {
        let want = (payload - have).min(chunk.len());
        let got = read(&mut chunk[..want])?;
        if ty == TYPE_U8 {
            bytes.extend_from_slice(&chunk[..got]);
        } else {
            floats.extend(chunk[..got - got % 4].chunks_exact(4).map(|c| f32::from_be_bytes(c.try_into().unwrap())));
        }
        have += got;
        if got < want {
            return Err(wrong_length((header + have) as u64));
        }
    }
    // nothing may follow the elements; what does is counted, not kept
    let mut extra = 0u64;
    loop {
        let got = read(&mut chunk)?;
        if got == 0 {
            break;
        }
        extra += got as u64;
        if extra > MAX_DECOMPRESSED {
            bail!("{name}: has trailing bytes: dimensions {dims:?} of {} need {expected} bytes, and more than {MAX_DECOMPRESSED} follow", type_name(ty));
        }
    }
    if extra > 0 {
        return Err(wrong_length(expected as u64 + extra));
    }
    let data = if ty == TYPE_U8 { IdxData::U8(bytes) } else { IdxData::F32(floats) };
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
