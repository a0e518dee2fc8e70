//! NumPy's `.npy` arrays, alone (`predict`'s rows) or in an `.npz` archive of Keras's layout
//! (`x_train`, `y_train`, optionally `x_test`, `y_test`; `np.savez` stores its members,
//! `np.savez_compressed` deflates them). The format: the magic `\x93NUMPY`, a version byte pair,
//! the header's length (2 bytes in version 1, 4 in versions 2 and 3), a Python dict literal
//! with `descr`, `fortran_order` and `shape`, then the elements.

use super::classes::Classes;
use super::own::{DataKind, FileData, OwnData};
use super::{Dataset, Pixels};
use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// An element type of the arrays read here (NumPy's `descr` without its byte order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scalar {
    Bool,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F16,
    F32,
    F64,
}

impl Scalar {
    fn size(self) -> usize {
        match self {
            Scalar::Bool | Scalar::I8 | Scalar::U8 => 1,
            Scalar::I16 | Scalar::U16 | Scalar::F16 => 2,
            Scalar::I32 | Scalar::U32 | Scalar::F32 => 4,
            Scalar::I64 | Scalar::U64 | Scalar::F64 => 8,
        }
    }

    /// NumPy's name, for messages.
    fn name(self) -> &'static str {
        match self {
            Scalar::Bool => "bool",
            Scalar::I8 => "int8",
            Scalar::U8 => "uint8",
            Scalar::I16 => "int16",
            Scalar::U16 => "uint16",
            Scalar::I32 => "int32",
            Scalar::U32 => "uint32",
            Scalar::I64 => "int64",
            Scalar::U64 => "uint64",
            Scalar::F16 => "float16",
            Scalar::F32 => "float32",
            Scalar::F64 => "float64",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

const NATIVE: Endian = if cfg!(target_endian = "big") { Endian::Big } else { Endian::Little };

/// What an array's header says.
#[derive(Clone, Debug, PartialEq)]
struct Header {
    scalar: Scalar,
    endian: Endian,
    fortran_order: bool,
    shape: Vec<usize>,
    /// Bytes before the first element (magic, version, length and the dict).
    len: usize,
}

impl Header {
    fn count(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
    }

    /// Bytes of the elements; `None` past `u64`.
    fn data_len(&self) -> Option<u64> {
        (self.count()? as u64).checked_mul(self.scalar.size() as u64)
    }

    fn describe(&self) -> String {
        format!("{} of {}", shape_text(&self.shape), self.scalar.name())
    }
}

/// A shape as Python writes it: "(3,)", "(60000, 28, 28)".
fn shape_text(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => format!("({})", shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// No header NumPy writes comes near this; a hostile one could claim 4 GiB.
const MAX_HEADER: usize = 1 << 20;

/// Reads the header of an array from the start of `r`; `name` names it in errors.
fn read_header(r: &mut impl Read, name: &str) -> Result<Header> {
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre).with_context(|| format!("{name}: too short for a .npy array (expected the magic \\x93NUMPY and a header)"))?;
    if &pre[..6] != b"\x93NUMPY" {
        bail!("{name}: does not start with \\x93NUMPY; expected a .npy array");
    }
    let (major, minor) = (pre[6], pre[7]);
    let (hlen, fixed) = match major {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).with_context(|| format!("{name}: the .npy header is cut short"))?;
            (u16::from_le_bytes(b) as usize, 10)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).with_context(|| format!("{name}: the .npy header is cut short"))?;
            (u32::from_le_bytes(b) as usize, 12)
        }
        _ => bail!("{name}: .npy format version {major}.{minor}; expected version 1, 2 or 3"),
    };
    if hlen > MAX_HEADER {
        bail!("{name}: the .npy header claims {hlen} bytes; expected at most {MAX_HEADER}");
    }
    let mut text = vec![0u8; hlen];
    r.read_exact(&mut text).with_context(|| format!("{name}: the .npy header is cut short (expected {hlen} bytes)"))?;
    let text = std::str::from_utf8(&text).map_err(|_| anyhow::anyhow!("{name}: the .npy header is not text"))?;
    parse_dict(text, name, fixed + hlen)
}

/// A value of the header's dict.
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// Parses the header's dict literal: `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }`.
fn parse_dict(text: &str, name: &str, len: usize) -> Result<Header> {
    let bad = |what: &str| anyhow::anyhow!("{name}: cannot read the .npy header {:?}: {what}", text.trim_end());
    let s = text.trim();
    let body = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')).ok_or_else(|| bad("expected a dict in braces"))?;
    let mut p = Cursor { s: body.as_bytes(), i: 0 };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.skip_ws();
        if p.done() {
            break;
        }
        let key = p.string().ok_or_else(|| bad("expected a quoted key"))?;
        p.skip_ws();
        if !p.eat(b':') {
            return Err(bad("expected ':' after a key"));
        }
        p.skip_ws();
        let value = match p.peek() {
            Some(b'\'' | b'"') => Value::Str(p.string().ok_or_else(|| bad("unterminated string"))?),
            Some(b'(') => Value::Tuple(p.tuple().ok_or_else(|| bad("expected a shape of whole numbers"))?),
            Some(b'[') => bail!("{name}: a structured dtype ({}); expected a plain numeric array", text.trim_end()),
            _ if p.word("True") => Value::Bool(true),
            _ if p.word("False") => Value::Bool(false),
            _ => return Err(bad(&format!("unexpected value for '{key}'"))),
        };
        match (key.as_str(), value) {
            ("descr", Value::Str(d)) => descr = Some(d),
            ("fortran_order", Value::Bool(b)) => fortran = Some(b),
            ("shape", Value::Tuple(t)) => shape = Some(t),
            ("descr" | "fortran_order" | "shape", _) => return Err(bad(&format!("'{key}' has the wrong kind of value"))),
            _ => {}
        }
        p.skip_ws();
        if !p.eat(b',') {
            p.skip_ws();
            if !p.done() {
                return Err(bad("expected ',' between entries"));
            }
        }
    }
    let (Some(descr), Some(fortran_order), Some(shape)) = (descr, fortran, shape) else {
        return Err(bad("expected the keys 'descr', 'fortran_order' and 'shape'"));
    };
    let (scalar, endian) = parse_descr(&descr).ok_or_else(|| anyhow::anyhow!("{name}: dtype '{descr}' is not supported; expected booleans, integers or floats (e.g. '<f8', '|u1')"))?;
    Ok(Header { scalar, endian, fortran_order, shape, len })
}

/// `'<f8'` → (F64, Little); `None` for what is not a plain number.
fn parse_descr(d: &str) -> Option<(Scalar, Endian)> {
    let (order, ty) = d.split_at_checked(1)?;
    let endian = match order {
        "<" | "|" => Endian::Little,
        ">" => Endian::Big,
        "=" => NATIVE,
        _ => return None,
    };
    let scalar = match ty {
        "b1" | "?" => Scalar::Bool,
        "i1" => Scalar::I8,
        "u1" => Scalar::U8,
        "i2" => Scalar::I16,
        "u2" => Scalar::U16,
        "i4" => Scalar::I32,
        "u4" => Scalar::U32,
        "i8" => Scalar::I64,
        "u8" => Scalar::U64,
        "f2" => Scalar::F16,
        "f4" => Scalar::F32,
        "f8" => Scalar::F64,
        _ => return None,
    };
    Some((scalar, endian))
}

/// A position in the header's text.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.i += hit as usize;
        hit
    }
    fn word(&mut self, w: &str) -> bool {
        let hit = self.s[self.i..].starts_with(w.as_bytes());
        if hit {
            self.i += w.len();
        }
        hit
    }
    fn string(&mut self) -> Option<String> {
        let q = self.peek().filter(|c| matches!(c, b'\'' | b'"'))?;
        let start = self.i + 1;
        let end = start + self.s[start..].iter().position(|&c| c == q)?;
        self.i = end + 1;
        Some(String::from_utf8_lossy(&self.s[start..end]).into_owned())
    }
    /// `(3, 4)`, `(5,)`, `()`; Python 2's `3L` too.
    fn tuple(&mut self) -> Option<Vec<usize>> {
        self.eat(b'(').then_some(())?;
        let mut dims = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(b')') {
                return Some(dims);
            }
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            dims.push(std::str::from_utf8(&self.s[start..self.i]).ok()?.parse().ok()?);
            self.eat(b'L');
            self.skip_ws();
            if !self.eat(b',') {
                self.skip_ws();
                return self.eat(b')').then_some(dims);
            }
        }
    }
}

/// Elements converted per block when they are not read straight into place.
const BLOCK: usize = 1 << 16;

/// Reads the `count` elements of `h` from `r` as f64 (exact for every type here). float64 in the
/// machine's byte order is read straight into the result, with no copy.
fn read_f64(r: &mut impl Read, h: &Header, count: usize, name: &str) -> Result<Vec<f64>> {
    let mut out = vec![0f64; count];
    super::own::advise_huge_pages(&out);
    if h.scalar == Scalar::F64 {
        read_data(r, bytemuck::cast_slice_mut(&mut out), h, name)?;
        if h.endian != NATIVE {
            out.par_iter_mut().for_each(|v| *v = f64::from_bits(v.to_bits().swap_bytes()));
        }
        return Ok(out);
    }
    let size = h.scalar.size();
    let mut buf = vec![0u8; BLOCK * size];
    for block in out.chunks_mut(BLOCK) {
        let bytes = &mut buf[..block.len() * size];
        read_data(r, bytes, h, name)?;
        convert(bytes, h.scalar, h.endian, block);
    }
    Ok(out)
}

/// Converts elements of `scalar` in `bytes` into `out`, one per element.
fn convert(bytes: &[u8], scalar: Scalar, endian: Endian, out: &mut [f64]) {
    macro_rules! each {
        ($t:ty, $n:expr, $to:expr) => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact($n)) {
                let b: [u8; $n] = b.try_into().expect("chunks_exact gives $n bytes");
                let v = match endian {
                    Endian::Little => <$t>::from_le_bytes(b),
                    Endian::Big => <$t>::from_be_bytes(b),
                };
                *o = $to(v);
            }
        };
    }
    match scalar {
        Scalar::Bool => each!(u8, 1, |v: u8| (v != 0) as u8 as f64),
        Scalar::I8 => each!(i8, 1, f64::from),
        Scalar::U8 => each!(u8, 1, f64::from),
        Scalar::I16 => each!(i16, 2, f64::from),
        Scalar::U16 => each!(u16, 2, f64::from),
        Scalar::I32 => each!(i32, 4, f64::from),
        Scalar::U32 => each!(u32, 4, f64::from),
        // Rounded where above 2^53, as NumPy's own astype(float) does.
        Scalar::I64 => each!(i64, 8, |v: i64| v as f64),
        Scalar::U64 => each!(u64, 8, |v: u64| v as f64),
        Scalar::F16 => each!(u16, 2, |v: u16| half::f16::from_bits(v).to_f64()),
        Scalar::F32 => each!(f32, 4, f64::from),
        Scalar::F64 => each!(f64, 8, |v: f64| v),
    }
}

/// Fills `buf` from `r`, an array's data; a short stream is a truncated array.
fn read_data(r: &mut impl Read, buf: &mut [u8], h: &Header, name: &str) -> Result<()> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => anyhow::anyhow!("{name}: the data ends before the {} its header announces (truncated)", h.describe()),
        _ => anyhow::anyhow!("{name}: cannot read the array's data: {e}"),
    })
}

/// Labels: any integer type, or floats with whole values.
fn read_labels(r: &mut impl Read, h: &Header, count: usize, name: &str) -> Result<Vec<i64>> {
    let mut raw = vec![0u8; count * h.scalar.size()];
    read_data(r, &mut raw, h, name)?;
    let size = h.scalar.size();
    let mut out = Vec::with_capacity(count);
    for (i, b) in raw.chunks_exact(size).enumerate() {
        let mut e = [0u8; 8];
        // Widened to 8 bytes in big-endian order, so one parse serves every width.
        match h.endian {
            Endian::Little => b.iter().rev().zip(e[8 - size..].iter_mut()).for_each(|(s, d)| *d = *s),
            Endian::Big => e[8 - size..].copy_from_slice(b),
        }
        let u = u64::from_be_bytes(e);
        let signed = |bits: u32| ((u << (64 - bits)) as i64) >> (64 - bits);
        let label = match h.scalar {
            Scalar::Bool => Some((u != 0) as i64),
            Scalar::U8 | Scalar::U16 | Scalar::U32 | Scalar::U64 => i64::try_from(u).ok(),
            Scalar::I8 | Scalar::I16 | Scalar::I32 | Scalar::I64 => Some(signed(8 * size as u32)),
            Scalar::F16 | Scalar::F32 | Scalar::F64 => {
                let v = match h.scalar {
                    Scalar::F16 => half::f16::from_bits(u as u16).to_f64(),
                    Scalar::F32 => f32::from_bits(u as u32) as f64,
                    _ => f64::from_bits(u),
                };
                let whole = v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15;
                if !whole {
                    bail!("{name}: label {v} at index {i} is not a whole number; expected integer class labels");
                }
                Some(v as i64)
            }
        };
        match label {
            Some(l) => out.push(l),
            None => bail!("{name}: label {u} at index {i} is beyond the 64-bit integers; expected class labels"),
        }
    }
    Ok(out)
}

/// Rearranges the elements of an array stored in Fortran (column-major) order into C order.
/// The first axis runs fastest there: element (i, rest) sits at i + n·f(rest), with f the
/// column-major index over the other axes.
fn to_c_order<T: Copy + Send + Sync>(v: &[T], shape: &[usize]) -> Vec<T> {
    let (n, rest_dims) = match shape.split_first() {
        Some((&n, rest)) if rest.iter().product::<usize>() > 1 => (n, rest),
        _ => return v.to_vec(),
    };
    let rest: usize = rest_dims.iter().product();
    // f_of[c]: the column-major index of the c-th (row-major) position over the other axes.
    let f_of: Vec<usize> = (0..rest)
        .map(|mut c| {
            let (mut f, mut stride) = (0, 1);
            let mut idx = vec![0; rest_dims.len()];
            for (k, &d) in rest_dims.iter().enumerate().rev() {
                idx[k] = c % d;
                c /= d;
            }
            for (k, &d) in rest_dims.iter().enumerate() {
                f += idx[k] * stride;
                stride *= d;
            }
            f
        })
        .collect();
    let mut out = v.to_vec();
    out.par_chunks_mut(rest).enumerate().for_each(|(i, row)| {
        for (c, o) in row.iter_mut().enumerate() {
            *o = v[i + n * f_of[c]];
        }
    });
    out
}

/// Features of a set: bytes stay bytes, anything else becomes f64.
fn read_features(r: &mut impl Read, h: &Header, name: &str) -> Result<Pixels> {
    let count = h.count().unwrap_or(usize::MAX);
    let pixels = if h.scalar == Scalar::U8 {
        let mut v = vec![0u8; count];
        super::own::advise_huge_pages(&v);
        read_data(r, &mut v, h, name)?;
        Pixels::U8(if h.fortran_order { to_c_order(&v, &h.shape) } else { v })
    } else {
        let v = read_f64(r, h, count, name)?;
        Pixels::F64(if h.fortran_order { to_c_order(&v, &h.shape) } else { v })
    };
    Ok(pixels)
}

/// The first value that is not finite: (sample, feature).
fn first_non_finite(v: &[f64], width: usize) -> Option<(usize, usize, f64)> {
    // By blocks: rayon's search checks for an earlier hit between items, which costs more
    // than the test itself.
    const STRIDE: usize = 1 << 14;
    let block = v.par_chunks(STRIDE).position_first(|c| c.iter().fold(false, |bad, x| bad | !x.is_finite()))?;
    let i = block * STRIDE + v[block * STRIDE..].iter().position(|x| !x.is_finite())?;
    Some((i / width, i % width, v[i]))
}

/// How the features of an array are laid out, from its shape: (samples, values per sample, kind).
fn feature_layout(shape: &[usize], name: &str) -> Result<(usize, usize, DataKind)> {
    let (kind, dims) = match shape {
        [n, d] => (DataKind::Table, (*n, *d)),
        [n, h, w] | [n, h, w, 1] => (DataKind::Pictures, (*n, h.saturating_mul(*w))),
        _ => bail!("{name}: shape {}; expected (samples, features), (samples, height, width) or (samples, height, width, 1)", shape_text(shape)),
    };
    if dims.0 == 0 || dims.1 == 0 {
        bail!("{name}: shape {} holds no samples or no values per sample; expected at least one of each", shape_text(shape));
    }
    Ok((dims.0, dims.1, kind))
}

/// The members of an archive that hold the arrays.
struct Archive {
    zip: zip::ZipArchive<BufReader<File>>,
    path: String,
    max_bytes: u64,
}

impl Archive {
    fn open(path: &Path, max_bytes: u64) -> Result<Archive> {
        let name = path.display().to_string();
        let file = File::open(path).with_context(|| format!("cannot open {name}"))?;
        let size = file.metadata().with_context(|| format!("cannot read {name}"))?.len();
        if size > max_bytes {
            bail!("{name}: {size} bytes, more than the limit of {max_bytes} bytes (--max-file-bytes)");
        }
        let zip = zip::ZipArchive::new(BufReader::with_capacity(1 << 20, file)).with_context(|| format!("{name}: not a readable .npz (zip) archive"))?;
        Ok(Archive { zip, path: name, max_bytes })
    }

    /// The arrays' names ("x_train"), sorted.
    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.zip.file_names().filter_map(|n| n.ok()).map(|n| n.strip_suffix(".npy").unwrap_or(&n).to_string()).collect();
        keys.sort();
        keys
    }

    fn has(&self, key: &str) -> bool {
        self.zip.index_for_name(&format!("{key}.npy")).is_some()
    }

    /// Opens member `key`, checks its sizes, and hands its header and stream to `read`.
    fn read<T>(&mut self, key: &str, read: impl FnOnce(&mut dyn Read, &Header, &str) -> Result<T>) -> Result<T> {
        let (path, max) = (self.path.clone(), self.max_bytes);
        let name = format!("{path}: {key}");
        let mut member = self.zip.by_name(&format!("{key}.npy")).with_context(|| format!("{path}: cannot open {key}.npy"))?;
        let size = member.size();
        // The declared size first, before anything is inflated; reading below never goes
        // past the header's own count, so a member that lies about its size cannot inflate
        // more than that either.
        if size > max {
            bail!("{name}: {size} bytes uncompressed, more than the limit of {max} bytes (--max-file-bytes)");
        }
        let h = read_header(&mut member, &name)?;
        let expected = h.data_len().filter(|&l| l <= max).ok_or_else(|| anyhow::anyhow!("{name}: shape {} holds more than the limit of {max} bytes (--max-file-bytes)", h.describe()))?;
        if size != h.len as u64 + expected {
            let have = size.saturating_sub(h.len as u64);
            let what = if have < expected { "truncated" } else { "extra bytes after the data" };
            bail!("{name}: the header says {} ({expected} bytes of data) but the member holds {have} bytes of data ({what})", h.describe());
        }
        let value = read(&mut member, &h, &name)?;
        // Reading to the end checks the member's CRC-32.
        let mut rest = Vec::new();
        (&mut member).take(1).read_to_end(&mut rest).with_context(|| format!("{name}: the member is damaged"))?;
        if !rest.is_empty() {
            bail!("{name}: the member holds more than its declared {size} bytes");
        }
        Ok(value)
    }

    /// A set's features: (values, values per sample, kind, samples).
    fn features(&mut self, key: &str) -> Result<(Pixels, usize, DataKind, usize)> {
        self.read(key, |r, h, name| {
            let (n, width, kind) = feature_layout(&h.shape, name)?;
            let pixels = read_features(&mut &mut *r, h, name)?;
            if let Pixels::F64(v) = &pixels
                && let Some((i, j, x)) = first_non_finite(v, width)
            {
                bail!("{name}: sample {i}, feature {j} is {x}; expected finite numbers");
            }
            Ok((pixels, width, kind, n))
        })
    }

    fn labels(&mut self, key: &str) -> Result<Vec<i64>> {
        self.read(key, |r, h, name| match h.shape[..] {
            [n] | [n, 1] => read_labels(&mut &mut *r, h, n, name),
            _ => bail!("{name}: shape {}; expected (samples,) or (samples, 1) of class labels", shape_text(&h.shape)),
        })
    }
}

/// Reads an `.npz` of Keras's layout: `x_train` of shape (n, d) (a table), (n, h, w) or
/// (n, h, w, 1) (pictures), `y_train` of n integer labels, and optionally `x_test` and `y_test`.
pub fn load_npz(files: &FileData, classes: Option<&[String]>) -> Result<OwnData> {
    let mut ar = Archive::open(&files.path, files.max_bytes)?;
    let path = ar.path.clone();
    let keys = ar.keys();
    let missing = |k: &str| anyhow::anyhow!("{path}: no array '{k}'; the archive holds: {}; expected x_train and y_train, optionally x_test and y_test", if keys.is_empty() { "nothing".to_string() } else { keys.join(", ") });
    for k in ["x_train", "y_train"] {
        if !ar.has(k) {
            return Err(missing(k));
        }
    }
    let has_test = match (ar.has("x_test"), ar.has("y_test")) {
        (true, true) => true,
        (false, false) => false,
        (true, false) => return Err(missing("y_test")),
        (false, true) => return Err(missing("x_test")),
    };
    let (pixels, width, kind, n) = ar.features("x_train")?;
    let y = ar.labels("y_train")?;
    if y.len() != n {
        bail!("{path}: y_train holds {} labels but x_train holds {n} samples; expected the same count", y.len());
    }
    let train_source = format!("{path} (x_train)");
    let cls = Classes::new(classes, &y, &train_source)?;
    let labels = cls.map(&y, &format!("{path} (y_train)"), |i| format!("sample {i}"))?;
    let train = Dataset { source: train_source, pixels, sample_len: width, labels, num_classes: cls.len() };
    let test = if has_test {
        let (pixels, w, _, n) = ar.features("x_test")?;
        if w != width {
            bail!("{path}: x_test has {w} values per sample but x_train has {width}; expected the same");
        }
        let y = ar.labels("y_test")?;
        if y.len() != n {
            bail!("{path}: y_test holds {} labels but x_test holds {n} samples; expected the same count", y.len());
        }
        let labels = cls.map(&y, &format!("{path} (y_test)"), |i| format!("sample {i}"))?;
        Some(Dataset { source: format!("{path} (x_test)"), pixels, sample_len: width, labels, num_classes: cls.len() })
    } else {
        None
    };
    Ok(OwnData { train, test, classes: cls.names().to_vec(), kind })
}

/// Rows to classify from a `.npy`: shape (n, width), (n, h, w) or (n, h, w, 1) with h·w = width,
/// or a single row (width,). Bytes are scaled by 1/255, as a network sees byte pixels.
pub fn read_rows(path: &Path, width: usize, max_bytes: u64) -> Result<(Vec<f64>, usize)> {
    let name = path.display().to_string();
    let file = File::open(path).with_context(|| format!("cannot open {name}"))?;
    let size = file.metadata().with_context(|| format!("cannot read {name}"))?.len();
    if size > max_bytes {
        bail!("{name}: {size} bytes, more than the limit of {max_bytes} bytes (--max-file-bytes)");
    }
    let mut r = BufReader::with_capacity(1 << 20, file);
    let h = read_header(&mut r, &name)?;
    let (n, w) = match h.shape[..] {
        [d] => (1, d),
        [n, d] => (n, d),
        [n, a, b] | [n, a, b, 1] => (n, a.saturating_mul(b)),
        _ => (0, 0),
    };
    if w != width || n == 0 {
        bail!("{name}: shape {}; expected rows of {width} values: (n, {width}), (n, h, w) with h·w = {width}, or ({width},)", shape_text(&h.shape));
    }
    let expected = h.data_len().unwrap_or(u64::MAX);
    if size != h.len as u64 + expected {
        bail!("{name}: the header says {} ({expected} bytes of data) but the file holds {} bytes of data", h.describe(), size.saturating_sub(h.len as u64));
    }
    let mut v = read_f64(&mut r, &h, n * w, &name)?;
    if h.fortran_order {
        v = to_c_order(&v, &h.shape);
    }
    if h.scalar == Scalar::U8 {
        v.par_iter_mut().for_each(|x| *x /= 255.0);
    }
    if let Some((i, j, x)) = first_non_finite(&v, w) {
        bail!("{name}: row {i}, value {j} is {x}; expected finite numbers");
    }
    Ok((v, n))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::own::DEFAULT_MAX_BYTES;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    /// A .npy file's bytes (version 1, header padded to 64 bytes as NumPy pads it).
    pub(crate) fn npy(descr: &str, fortran: bool, shape: &[usize], data: &[u8]) -> Vec<u8> {
        let py = if fortran { "True" } else { "False" };
        let mut dict = format!("{{'descr': '{descr}', 'fortran_order': {py}, 'shape': {}, }}", shape_text(shape));
        while (10 + dict.len() + 1) % 64 != 0 {
            dict.push(' ');
        }
        dict.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((dict.len() as u16).to_le_bytes());
        out.extend(dict.as_bytes());
        out.extend(data);
        out
    }

    pub(crate) fn f8(v: &[f64]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn i8le(v: &[i64]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// An archive of `members` (name without .npy, bytes), stored or deflated.
    pub(crate) fn npz(path: &Path, members: &[(&str, Vec<u8>)], method: zip::CompressionMethod) {
        let mut z = zip::ZipWriter::new(File::create(path).unwrap());
        for (name, bytes) in members {
            z.start_file(format!("{name}.npy"), SimpleFileOptions::default().compression_method(method)).unwrap();
            z.write_all(bytes).unwrap();
        }
        z.finish().unwrap();
    }

    fn files(path: &Path) -> FileData {
        FileData::at(path).unwrap()
    }

    fn err(path: &Path, members: &[(&str, Vec<u8>)]) -> String {
        npz(path, members, zip::CompressionMethod::Stored);
        load_npz(&files(path), None).unwrap_err().to_string()
    }

    #[test]
    fn bytes_stay_bytes_and_labels_index_sorted_classes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.npz");
        let x: Vec<u8> = (0..2 * 2 * 3).map(|i| i as u8 * 10).collect();
        for method in [zip::CompressionMethod::Stored, zip::CompressionMethod::Deflated] {
            npz(&p, &[("x_train", npy("|u1", false, &[2, 2, 3], &x)), ("y_train", npy("<i8", false, &[2], &i8le(&[7, -1]))), ("x_test", npy("|u1", false, &[1, 6], &x[..6])), ("y_test", npy("|u1", false, &[1, 1], &[7]))], method);
            let d = load_npz(&files(&p), None).unwrap();
            assert_eq!(d.kind, DataKind::Pictures);
            assert_eq!(d.classes, ["-1", "7"]);
            assert_eq!(d.train.pixels, Pixels::U8(x.clone()));
            assert_eq!((d.train.sample_len, d.train.num_classes, d.train.labels.clone()), (6, 2, vec![1, 0]));
            assert_eq!(d.train.source, format!("{} (x_train)", p.display()));
            let t = d.test.unwrap();
            assert_eq!((t.pixels, t.labels), (Pixels::U8(x[..6].to_vec()), vec![1]));
        }
    }

    #[test]
    fn floats_of_every_width_and_order_become_f64() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.npz");
        let y = npy("<f4", false, &[2], &[1.0f32, 0.0].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>());
        let vals = [0.1f32, -2.5, 3.0e-8, 7.0];
        for (descr, bytes) in [
            ("<f4", vals.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>()),
            (">f4", vals.iter().flat_map(|v| v.to_be_bytes()).collect()),
            (">f8", vals.iter().flat_map(|v| (*v as f64).to_be_bytes()).collect()),
            ("<f8", f8(&vals.map(f64::from))),
        ] {
            npz(&p, &[("x_train", npy(descr, false, &[2, 2], &bytes)), ("y_train", y.clone())], zip::CompressionMethod::Stored);
            let d = load_npz(&files(&p), None).unwrap();
            assert_eq!(d.kind, DataKind::Table, "{descr}");
            assert_eq!(d.train.pixels, Pixels::F64(vals.map(f64::from).to_vec()), "{descr}: f32 widened exactly");
            assert_eq!(d.train.labels, [1, 0]);
        }
        // Integers other than bytes are used as given.
        npz(&p, &[("x_train", npy(">i2", false, &[2, 1], &[0xff, 0xfe, 0x01, 0x00])), ("y_train", y)], zip::CompressionMethod::Stored);
        assert_eq!(load_npz(&files(&p), None).unwrap().train.pixels, Pixels::F64(vec![-2.0, 256.0]));
    }

    #[test]
    fn fortran_order_is_transposed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.npz");
        // C order of (2, 3): [[0, 1, 2], [3, 4, 5]]; Fortran order stores it by columns.
        let fortran = f8(&[0., 3., 1., 4., 2., 5.]);
        let y = npy("<i8", false, &[2], &i8le(&[0, 1]));
        npz(&p, &[("x_train", npy("<f8", true, &[2, 3], &fortran)), ("y_train", y.clone())], zip::CompressionMethod::Stored);
        assert_eq!(load_npz(&files(&p), None).unwrap().train.pixels, Pixels::F64(vec![0., 1., 2., 3., 4., 5.]));
        // (2, 2, 2) of bytes: element (i, r, c) = 100i + 10r + c sits at i + 2r + 4c.
        let mut f = [0u8; 8];
        for (i, r, c) in (0..8).map(|k| (k / 4, (k / 2) % 2, k % 2)) {
            f[i + 2 * r + 4 * c] = (100 * i + 10 * r + c) as u8;
        }
        npz(&p, &[("x_train", npy("|u1", true, &[2, 2, 2], &f)), ("y_train", y)], zip::CompressionMethod::Stored);
        assert_eq!(load_npz(&files(&p), None).unwrap().train.pixels, Pixels::U8(vec![0, 1, 10, 11, 100, 101, 110, 111]));
    }

    #[test]
    fn header_versions_and_parsing() {
        let h = parse_dict("{'descr': '>u2', 'fortran_order': False, 'shape': (3L, 4), }   \n", "a", 128).unwrap();
        assert_eq!((h.scalar, h.endian, h.fortran_order, h.shape), (Scalar::U16, Endian::Big, false, vec![3, 4]));
        assert_eq!(parse_dict("{\"shape\": (5,), \"fortran_order\": True, \"descr\": \"<f2\"}", "a", 0).unwrap().shape, [5]);
        let e = parse_dict("{'descr': '<U5', 'fortran_order': False, 'shape': (3,), }", "s.npy", 0).unwrap_err().to_string();
        assert_eq!(e, "s.npy: dtype '<U5' is not supported; expected booleans, integers or floats (e.g. '<f8', '|u1')");
        let e = parse_dict("{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (3,), }", "s.npy", 0).unwrap_err().to_string();
        assert!(e.contains("structured dtype"), "{e}");
        // Version 2: a 4-byte header length.
        let one = npy("<f8", false, &[1, 1], &f8(&[2.5]));
        let dict = &one[10..];
        let mut two = b"\x93NUMPY\x02\x00".to_vec();
        two.extend((dict.len() as u32 - 8).to_le_bytes());
        two.extend(dict);
        let h = read_header(&mut &two[..], "v2").unwrap();
        assert_eq!((h.len, h.shape), (two.len() - 8, vec![1, 1]));
        let e = read_header(&mut &b"\x93NUMPY\x04\x00"[..], "v4").unwrap_err().to_string();
        assert_eq!(e, "v4: .npy format version 4.0; expected version 1, 2 or 3");
    }

    #[test]
    fn every_integer_label_type_and_whole_floats() {
        let h = |d: &str, n: usize| parse_dict(&format!("{{'descr': '{d}', 'fortran_order': False, 'shape': ({n},), }}"), "y", 0).unwrap();
        assert_eq!(read_labels(&mut &[0xffu8, 3][..], &h("|i1", 2), 2, "y").unwrap(), [-1, 3]);
        assert_eq!(read_labels(&mut &[0xffu8, 3][..], &h("|u1", 2), 2, "y").unwrap(), [255, 3]);
        assert_eq!(read_labels(&mut &[0xff, 0xfe][..], &h(">i2", 1), 1, "y").unwrap(), [-2]);
        assert_eq!(read_labels(&mut &(-70000i32).to_le_bytes()[..], &h("<i4", 1), 1, "y").unwrap(), [-70000]);
        assert_eq!(read_labels(&mut &u32::MAX.to_be_bytes()[..], &h(">u4", 1), 1, "y").unwrap(), [u32::MAX as i64]);
        assert_eq!(read_labels(&mut &f8(&[-3.0])[..], &h("<f8", 1), 1, "y").unwrap(), [-3]);
        let e = read_labels(&mut &u64::MAX.to_le_bytes()[..], &h("<u8", 1), 1, "y").unwrap_err().to_string();
        assert!(e.contains(&u64::MAX.to_string()), "{e}");
        let e = read_labels(&mut &f8(&[1.0, 2.5])[..], &h("<f8", 2), 2, "d.npz: y_train").unwrap_err().to_string();
        assert_eq!(e, "d.npz: y_train: label 2.5 at index 1 is not a whole number; expected integer class labels");
    }

    #[test]
    fn missing_and_unpaired_keys_list_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.npz");
        let x = npy("<f8", false, &[1, 1], &f8(&[1.0]));
        let e = err(&p, &[("x_train", x.clone()), ("labels", x.clone())]);
        assert_eq!(e, format!("{}: no array 'y_train'; the archive holds: labels, x_train; expected x_train and y_train, optionally x_test and y_test", p.display()));
        let y = npy("<i8", false, &[1], &i8le(&[0]));
        let e = err(&p, &[("x_train", x.clone()), ("y_train", y.clone()), ("x_test", x)]);
        assert!(e.contains("no array 'y_test'") && e.contains("x_test, x_train, y_train"), "{e}");
    }

    #[test]
    fn length_width_and_shape_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.npz");
        let x = npy("<f8", false, &[2, 2], &f8(&[1., 2., 3., 4.]));
        let e = err(&p, &[("x_train", x.clone()), ("y_train", npy("<i8", false, &[3], &i8le(&[0, 1, 0])))]);
        assert_eq!(e, format!("{}: y_train holds 3 labels but x_train holds 2 samples; expected the same count", p.display()));
        let y = npy("<i8", false, &[2], &i8le(&[0, 1]));
        let x3 = npy("<f8", false, &[1, 3], &f8(&[1., 2., 3.]));
        let e = err(&p, &[("x_train", x.clone()), ("y_train", y.clone()), ("x_test", x3), ("y_test", npy("<i8", false, &[1], &i8le(&[0])))]);
        assert_eq!(e, format!("{}: x_test has 3 values per sample but x_train has 2; expected the same", p.display()));
        let e = err(&p, &[("x_train", npy("<f8", false, &[4], &f8(&[1., 2., 3., 4.]))), ("y_train", y.clone())]);
        assert!(e.contains("x_train: shape (4,); expected (samples, features)"), "{e}");
        let e = err(&p, &[("x_train", x), ("y_train", npy("<i8", false, &[1, 2], &i8le(&[0, 1])))]);
        assert!(e.contains("y_train: shape (1, 2); expected (samples,) or (samples, 1)"), "{e}");
    }

    #[test]
    fn non_finite_features_name_sample_and_feature() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("n.npz");
        let e = err(&p, &[("x_train", npy("<f8", false, &[2, 3], &f8(&[1., 2., 3., 4., f64::INFINITY, 6.]))), ("y_train", npy("<i8", false, &[2], &i8le(&[0, 1])))]);
        assert_eq!(e, format!("{}: x_train: sample 1, feature 1 is inf; expected finite numbers", p.display()));
        let e = err(&p, &[("x_train", npy("<f4", false, &[1, 2], &[0.0f32, f32::NAN].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>())), ("y_train", npy("<i8", false, &[1], &i8le(&[0])))]);
        assert!(e.ends_with("x_train: sample 0, feature 1 is NaN; expected finite numbers"), "{e}");
    }

    #[test]
    fn truncated_and_oversized_members() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.npz");
        let mut x = npy("<f8", false, &[2, 2], &f8(&[1., 2., 3., 4.]));
        x.truncate(x.len() - 3);
        let y = npy("<i8", false, &[2], &i8le(&[0, 1]));
        let e = err(&p, &[("x_train", x), ("y_train", y.clone())]);
        assert_eq!(e, format!("{}: x_train: the header says (2, 2) of float64 (32 bytes of data) but the member holds 29 bytes of data (truncated)", p.display()));

        // A member that inflates past the limit is refused by its declared size, unread.
        let zeros = npy("|u1", false, &[1000, 1000], &vec![0u8; 1_000_000]);
        npz(&p, &[("x_train", zeros), ("y_train", y)], zip::CompressionMethod::Deflated);
        assert!(std::fs::metadata(&p).unwrap().len() < 10_000);
        let mut f = files(&p);
        f.max_bytes = 100_000;
        let e = load_npz(&f, None).unwrap_err().to_string();
        assert_eq!(e, format!("{}: x_train: 1000128 bytes uncompressed, more than the limit of 100000 bytes (--max-file-bytes)", p.display()));
        f.max_bytes = 1000;
        let e = load_npz(&f, None).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: ", p.display())) && e.contains("bytes, more than the limit of 1000 bytes (--max-file-bytes)"), "{e}");
    }

    #[test]
    fn member_lying_about_its_size_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lie.npz");
        let y = npy("<i8", false, &[1], &i8le(&[0]));
        // Stored members: patch x_train's declared sizes (local and central) to 8 bytes fewer,
        // and its header's shape to match, so that the data runs on past the declared end.
        let x = npy("<f8", false, &[1, 2], &f8(&[1., 2.]));
        npz(&p, &[("x_train", x.clone()), ("y_train", y)], zip::CompressionMethod::Stored);
        let mut bytes = std::fs::read(&p).unwrap();
        let n = x.len() as u32;
        let find = |b: &[u8], pat: &[u8]| b.windows(pat.len()).position(|w| w == pat);
        for _ in 0..2 {
            let mut pat = n.to_le_bytes().to_vec();
            pat.extend(n.to_le_bytes());
            let at = find(&bytes, &pat).expect("sizes");
            bytes[at..at + 8].copy_from_slice(&[(n - 8).to_le_bytes(), (n - 8).to_le_bytes()].concat());
        }
        let at = find(&bytes, b"(1, 2)").unwrap();
        bytes[at..at + 6].copy_from_slice(b"(1, 1)");
        std::fs::write(&p, &bytes).unwrap();
        let r = load_npz(&files(&p), None);
        // Either the CRC or the size check refuses it; it never reads past the 8 bytes.
        assert!(r.is_err(), "{:?}", r.map(|d| d.train));
    }

    #[test]
    fn unknown_test_class_and_given_classes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.npz");
        let x = npy("<f8", false, &[3, 1], &f8(&[1., 2., 3.]));
        let y = npy("<i8", false, &[3], &i8le(&[2, 0, 1]));
        let e = err(&p, &[("x_train", x.clone()), ("y_train", y.clone()), ("x_test", x.clone()), ("y_test", npy("<i8", false, &[3], &i8le(&[0, 9, 1])))]);
        assert_eq!(e, format!("{} (y_test): class '9' (sample 1) is in the test set but not in the training set (classes: 0, 1, 2)", p.display()));
        npz(&p, &[("x_train", x), ("y_train", y)], zip::CompressionMethod::Stored);
        let given: Vec<String> = ["2", "1", "0", "5"].iter().map(|s| s.to_string()).collect();
        let d = load_npz(&files(&p), Some(&given)).unwrap();
        assert_eq!((d.train.labels, d.train.num_classes, d.classes), (vec![0, 2, 1], 4, given));
    }

    /// An .npz of MNIST's IDX arrays gives the very sets the IDX files do (needs the files in
    /// `../shared/datasets/mnist`: `cargo test --release --lib idx_and_npz_agree -- --ignored`).
    #[test]
    #[ignore]
    fn idx_and_npz_agree() {
        let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/mnist");
        let [xa, ya, xt, yt] = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"].map(|f| mnist.join(f));
        let (train, test) = (Dataset::load(&xa, &ya, 10).unwrap(), Dataset::load(&xt, &yt, 10).unwrap());
        let member = |d: &Dataset, labels: bool| match (&d.pixels, labels) {
            (_, true) => npy("|u1", false, &[d.len()], &d.labels),
            (Pixels::U8(v), false) => npy("|u1", false, &[d.len(), 28, 28], v),
            _ => unreachable!("MNIST is bytes"),
        };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mnist.npz");
        npz(&p, &[("x_train", member(&train, false)), ("y_train", member(&train, true)), ("x_test", member(&test, false)), ("y_test", member(&test, true))], zip::CompressionMethod::Stored);
        let d = load_npz(&files(&p), None).unwrap();
        assert_eq!((d.kind, d.classes.len()), (DataKind::Pictures, 10));
        for (a, b) in [(&d.train, &train), (&d.test.unwrap(), &test)] {
            assert_eq!((&a.pixels, &a.labels, a.sample_len, a.num_classes), (&b.pixels, &b.labels, b.sample_len, b.num_classes));
        }
    }

    #[test]
    fn rows_from_npy() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.npy");
        std::fs::write(&p, npy("|u1", false, &[2, 1, 2], &[0, 255, 51, 102])).unwrap();
        assert_eq!(read_rows(&p, 2, DEFAULT_MAX_BYTES).unwrap(), (vec![0.0, 1.0, 0.2, 0.4], 2));
        std::fs::write(&p, npy("<f4", false, &[3], &[1.5f32, 2.0, -1.0].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>())).unwrap();
        assert_eq!(read_rows(&p, 3, DEFAULT_MAX_BYTES).unwrap(), (vec![1.5, 2.0, -1.0], 1));
        let e = read_rows(&p, 4, DEFAULT_MAX_BYTES).unwrap_err().to_string();
        assert_eq!(e, format!("{}: shape (3,); expected rows of 4 values: (n, 4), (n, h, w) with h·w = 4, or (4,)", p.display()));
        let e = read_rows(&p, 3, 10).unwrap_err().to_string();
        assert!(e.contains("more than the limit of 10 bytes (--max-file-bytes)"), "{e}");
    }
}
