//! Data augmentation of pictures in training, per sample and step, on the fly: a random affine
//! map (shift, rotation, scaling) and an elastic deformation (Simard, Steinkraus & Platt 2003:
//! a field of uniform random displacements in [−1, 1] smoothed by a Gaussian of σ pixels and
//! scaled by α), sampled bilinearly with the background outside the picture. Every random
//! number comes from `philox` keyed by the run's seed and (step, batch row, pixel), so the GPU's
//! kernels (`shaders/augment.wgsl`) compute the same pictures within f32 rounding, in any
//! order, and a resumed run needs no state.
//!
//! For output pixel p = (x, y) of a w×h picture with centre c = ((w−1)/2, (h−1)/2), the sample's
//! shift t, angle θ and scale s (uniform in ±shift, ±rotate, 1 ± scale) and the smoothed field
//! e(p) = α·(G_σ ∗ U)(p):
//!   u = p − c − t
//!   q = c + R(−θ)·u / s + e(p)       (R(−θ) = [[cos θ, sin θ], [−sin θ, cos θ]])
//!   out(p) = bilinear(in, q)
//! The Gaussian is truncated at 3σ, normalised to sum 1, applied along rows then columns with
//! zeros outside the picture (scipy's gaussian_filter with mode 'constant').

use crate::nn::math::Real;
use crate::nn::philox::{self, Stream};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What to draw per sample (`--augment shift=2,rotate=10,scale=0.1,elastic=34:4`); zero: none.
/// In a configuration, the object of its fields or the flag's text (what the web page sends).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SpecForm")]
pub struct AugmentSpec {
    /// Largest shift in pixels, along each axis.
    #[serde(default)]
    pub shift: f64,
    /// Largest rotation in degrees, either way.
    #[serde(default)]
    pub rotate: f64,
    /// Largest relative change of size: the factor is uniform in [1 − scale, 1 + scale].
    #[serde(default)]
    pub scale: f64,
    /// Elastic deformation's α (pixels; 0: none) and σ (pixels).
    #[serde(default)]
    pub elastic_alpha: f64,
    #[serde(default)]
    pub elastic_sigma: f64,
}

/// The forms a configuration may give an `AugmentSpec` in.
#[derive(Deserialize)]
#[serde(untagged, deny_unknown_fields)]
enum SpecForm {
    Text(String),
    Fields {
        #[serde(default)]
        shift: f64,
        #[serde(default)]
        rotate: f64,
        #[serde(default)]
        scale: f64,
        #[serde(default)]
        elastic_alpha: f64,
        #[serde(default)]
        elastic_sigma: f64,
    },
}

impl TryFrom<SpecForm> for AugmentSpec {
    type Error = anyhow::Error;
    fn try_from(f: SpecForm) -> Result<AugmentSpec> {
        match f {
            SpecForm::Text(t) => t.parse(),
            SpecForm::Fields { shift, rotate, scale, elastic_alpha, elastic_sigma } => {
                let a = AugmentSpec { shift, rotate, scale, elastic_alpha, elastic_sigma };
                a.validate()?;
                Ok(a)
            }
        }
    }
}

impl AugmentSpec {
    pub fn is_on(&self) -> bool {
        self.shift > 0.0 || self.rotate > 0.0 || self.scale > 0.0 || self.elastic_alpha > 0.0
    }
}

impl FromStr for AugmentSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut a = AugmentSpec::default();
        let expected = "expected comma-separated shift=PIXELS, rotate=DEGREES, scale=FRACTION, elastic=ALPHA:SIGMA (e.g. shift=2,rotate=10,scale=0.1,elastic=34:4)";
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').with_context(|| format!("--augment '{s}': '{part}' has no value; {expected}"))?;
            let num = |v: &str| -> Result<f64> {
                match v.trim().parse::<f64>() {
                    Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
                    _ => bail!("--augment '{s}': {name} '{v}' is not a number ≥ 0"),
                }
            };
            match name.trim() {
                "shift" => a.shift = num(value)?,
                "rotate" => a.rotate = num(value)?,
                "scale" => a.scale = num(value)?,
                "elastic" => {
                    let (alpha, sigma) = value.split_once(':').with_context(|| format!("--augment '{s}': elastic needs ALPHA:SIGMA, got '{value}'"))?;
                    (a.elastic_alpha, a.elastic_sigma) = (num(alpha)?, num(sigma)?);
                }
                other => bail!("--augment '{s}': unknown part '{other}'; {expected}"),
            }
        }
        a.validate()?;
        Ok(a)
    }
}

impl AugmentSpec {
    /// Checks the ranges (a config.json's values as the flag's).
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("shift", self.shift), ("rotate", self.rotate), ("scale", self.scale), ("elastic α", self.elastic_alpha), ("elastic σ", self.elastic_sigma)] {
            if !(v.is_finite() && v >= 0.0) {
                bail!("--augment: {name} {v} must be a finite number ≥ 0");
            }
        }
        if self.scale >= 1.0 {
            bail!("--augment: scale {} must be below 1 (the factor is drawn in [1 − scale, 1 + scale])", self.scale);
        }
        if self.rotate > 180.0 {
            bail!("--augment: rotate {} must be at most 180 degrees", self.rotate);
        }
        if self.elastic_alpha > 0.0 && !(self.elastic_sigma >= 0.5 && self.elastic_sigma <= 16.0) {
            bail!("--augment: elastic σ {} must be in [0.5, 16] pixels", self.elastic_sigma);
        }
        Ok(())
    }
}

impl fmt::Display for AugmentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shift={},rotate={},scale={},elastic={}:{}", self.shift, self.rotate, self.scale, self.elastic_alpha, self.elastic_sigma)
    }
}

/// The spec made ready for pictures of h×w: the key, the Gaussian's taps.
#[derive(Clone, Debug, PartialEq)]
pub struct Augment {
    pub spec: AugmentSpec,
    pub height: usize,
    pub width: usize,
    key: [u32; 2],
    /// G_σ at −r..=r, normalised to sum 1 (empty without elastic deformation).
    taps: Vec<f64>,
}

/// The draws of one sample (slots of `philox::bits` under `Stream::Augment`).
const SLOT_AFFINE: u32 = 0;
const SLOT_FIELD_X: u32 = 1;
const SLOT_FIELD_Y: u32 = 2;

/// A number uniform in [−1, 1) from 32 random bits, exact in f32 (2·unit − 1 of 24 bits).
fn signed_unit<T: Real>(bits: u32) -> T {
    T::of(2.0 * philox::unit(bits) - 1.0)
}

impl Augment {
    /// For pictures of `height`×`width` in batches of `batch` rows, keyed by `seed`.
    pub fn new(spec: AugmentSpec, height: usize, width: usize, seed: u64, batch: usize) -> Result<Augment> {
        spec.validate()?;
        if (batch as u64) * (height * width) as u64 >= 1 << 32 {
            bail!("--augment: a batch of {batch} pictures of {height}×{width} exceeds the 2^32 pixels its random numbers can number; use a smaller batch");
        }
        let taps = if spec.elastic_alpha > 0.0 {
            let sigma = spec.elastic_sigma;
            let r = (3.0 * sigma).ceil() as i64;
            let g: Vec<f64> = (-r..=r).map(|k| (-((k * k) as f64) / (2.0 * sigma * sigma)).exp()).collect();
            let sum: f64 = g.iter().sum();
            g.iter().map(|v| v / sum).collect()
        } else {
            Vec::new()
        };
        Ok(Augment { spec, height, width, key: philox::key(seed), taps })
    }

    pub fn key(&self) -> [u32; 2] {
        self.key
    }
    /// The Gaussian's taps, −r..=r (empty without elastic deformation).
    pub fn taps(&self) -> &[f64] {
        &self.taps
    }
    pub fn elastic(&self) -> bool {
        !self.taps.is_empty()
    }

    /// The sample's shift (tx, ty), rotation θ (radians) and scale s, drawn for batch row `row`
    /// at step `step`: one Philox block, its four words.
    pub fn affine<T: Real>(&self, step: u64, row: usize) -> [T; 4] {
        let mut b = [0u32; 4];
        philox::fill_bits(self.key, Stream::Augment, step, SLOT_AFFINE, 4 * row as u32, &mut b);
        let s = &self.spec;
        [
            T::of(s.shift) * signed_unit::<T>(b[0]),
            T::of(s.shift) * signed_unit::<T>(b[1]),
            T::of(s.rotate.to_radians()) * signed_unit::<T>(b[2]),
            T::one() + T::of(s.scale) * signed_unit::<T>(b[3]),
        ]
    }

    /// The smoothed displacements α·(G ∗ U) of batch row `row` at step `step`, as (ex, ey) per
    /// pixel; `work` holds the raw and row-smoothed fields between the passes.
    pub fn displacements<T: Real>(&self, step: u64, row: usize, ex: &mut [T], ey: &mut [T], work: &mut Vec<T>) {
        let (h, w) = (self.height, self.width);
        let n = h * w;
        let mut bits = vec![0u32; n];
        work.resize(2 * n, T::zero());
        let taps: Vec<T> = self.taps.iter().map(|&g| T::of(g)).collect();
        let alpha = T::of(self.spec.elastic_alpha);
        for (slot, out) in [(SLOT_FIELD_X, ex), (SLOT_FIELD_Y, ey)] {
            philox::fill_bits(self.key, Stream::Augment, step, slot, (row * n) as u32, &mut bits);
            let (raw, along_rows) = work.split_at_mut(n);
            for (u, &b) in raw.iter_mut().zip(&bits) {
                *u = signed_unit(b);
            }
            // along each row, then along each column, taps in order −r..=r, zeros outside
            convolve(&taps, raw, along_rows, h, w, true);
            convolve(&taps, along_rows, out, h, w, false);
            out.iter_mut().for_each(|e| *e = alpha * *e);
        }
    }

    /// Batch row `row`'s picture `src` (h×w inputs) augmented for step `step` into `out`,
    /// with `background` outside the picture (the input of a 0 pixel).
    pub fn apply<T: Real>(&self, step: u64, row: usize, src: &[T], background: T, out: &mut [T], work: &mut Vec<T>) {
        let (h, w) = (self.height, self.width);
        let n = h * w;
        let [tx, ty, theta, s] = self.affine::<T>(step, row);
        let (mut ex, mut ey) = (vec![T::zero(); n], vec![T::zero(); n]);
        if self.elastic() {
            self.displacements(step, row, &mut ex, &mut ey, work);
        }
        let (cos, sin) = (theta.cos(), theta.sin());
        let half = T::of(0.5);
        let (cx, cy) = (T::of(w as f64 - 1.0) * half, T::of(h as f64 - 1.0) * half);
        let at = |x: i64, y: i64| if x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h { src[y as usize * w + x as usize] } else { background };
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let ux = T::of(x as f64) - cx - tx;
                let uy = T::of(y as f64) - cy - ty;
                let qx = cx + (cos * ux + sin * uy) / s + ex[i];
                let qy = cy + (cos * uy - sin * ux) / s + ey[i];
                out[i] = bilinear(qx, qy, &at);
            }
        }
    }
}

/// `out` = the h×w picture `x` convolved with `taps` (centred, zeros outside) along its rows
/// (`along_rows`) or its columns: each output summed over the taps in order from zero, as the
/// GPU does, written as scaled additions of whole row pieces so that it vectorises.
fn convolve<T: Real>(taps: &[T], x: &[T], out: &mut [T], h: usize, w: usize, along_rows: bool) {
    let r = taps.len() / 2;
    out.iter_mut().for_each(|o| *o = T::zero());
    for y in 0..h {
        let o = &mut out[y * w..(y + 1) * w];
        for (k, &g) in taps.iter().enumerate() {
            if along_rows {
                // o[i] += g·x[y, i + k − r] for the i where that column exists
                let (lo, hi) = (r.saturating_sub(k), (w + r).saturating_sub(k).min(w));
                if lo < hi {
                    let src = &x[y * w + lo + k - r..y * w + hi + k - r];
                    o[lo..hi].iter_mut().zip(src).for_each(|(o, &v)| *o = *o + g * v);
                }
            } else if (y + k) >= r && y + k - r < h {
                let src = &x[(y + k - r) * w..(y + k - r + 1) * w];
                o.iter_mut().zip(src).for_each(|(o, &v)| *o = *o + g * v);
            }
        }
    }
}

/// The picture `at` (pixel values by integer coordinates) at the point (qx, qy).
#[inline]
fn bilinear<T: Real>(qx: T, qy: T, at: &impl Fn(i64, i64) -> T) -> T {
    let (fx, fy) = (qx.floor(), qy.floor());
    let (dx, dy) = (qx - fx, qy - fy);
    // far outside, the background (and no overflow converting to an integer)
    let limit = T::of(1e6);
    if !(fx.abs() < limit && fy.abs() < limit) {
        return at(-1, -1);
    }
    let (x0, y0) = (fx.to_i64().unwrap_or(-1), fy.to_i64().unwrap_or(-1));
    let one = T::one();
    let top = (one - dx) * at(x0, y0) + dx * at(x0 + 1, y0);
    let bottom = (one - dx) * at(x0, y0 + 1) + dx * at(x0 + 1, y0 + 1);
    (one - dy) * top + dy * bottom
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_reads_from_its_flag_and_refuses_what_it_cannot_do() {
        let a: AugmentSpec = "shift=2, rotate=10,scale=0.1,elastic=34:4".parse().unwrap();
        assert_eq!(a, AugmentSpec { shift: 2.0, rotate: 10.0, scale: 0.1, elastic_alpha: 34.0, elastic_sigma: 4.0 });
        assert_eq!(a.to_string().parse::<AugmentSpec>().unwrap(), a);
        for (bad, says) in [("shift", "no value"), ("tilt=3", "unknown part 'tilt'"), ("scale=1.5", "below 1"), ("elastic=3", "ALPHA:SIGMA"), ("rotate=-5", "not a number ≥ 0"), ("elastic=30:0.1", "σ 0.1")] {
            let e = bad.parse::<AugmentSpec>().unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!(!AugmentSpec::default().is_on());
        // a configuration gives the fields or the flag's text
        let from_json = |v: serde_json::Value| serde_json::from_value::<AugmentSpec>(v);
        assert_eq!(from_json(serde_json::json!("shift=2,rotate=10,scale=0.1,elastic=34:4")).unwrap(), a);
        assert_eq!(from_json(serde_json::to_value(a).unwrap()).unwrap(), a);
        assert!(from_json(serde_json::json!({"shift": 1, "scale": 3})).unwrap_err().to_string().contains("below 1"));
        assert!(from_json(serde_json::json!("zoom=2")).unwrap_err().to_string().contains("unknown part 'zoom'"));
        assert!(from_json(serde_json::json!({"shift": 1, "zoom": 2})).is_err(), "an unknown field is refused");
    }

    /// With nothing drawn (all ranges 0) the picture comes back as it was, exactly: the map is
    /// the identity and bilinear sampling at integer points reads the pixel.
    #[test]
    fn the_identity_map_returns_the_picture() {
        let aug = Augment::new(AugmentSpec::default(), 5, 7, 1, 10).unwrap();
        let src: Vec<f64> = (0..35).map(|i| i as f64 * 0.37 - 3.0).collect();
        let mut out = vec![f64::NAN; 35];
        aug.apply(3, 2, &src, -9.0, &mut out, &mut Vec::new());
        assert_eq!(out, src);
    }

    /// A pure shift moves the picture (bilinear sampling of a linear picture is exact inside it).
    #[test]
    fn a_shift_moves_the_picture() {
        let aug = Augment::new(AugmentSpec { shift: 3.0, ..Default::default() }, 6, 6, 4, 64).unwrap();
        let src: Vec<f64> = (0..36).map(|i| 1.0 + i as f64).collect();
        // find a row whose drawn shift we can reason about; the map must follow its own draw
        for row in 0..64 {
            let [tx, ty, _, _] = aug.affine::<f64>(9, row);
            let mut out = vec![0.0; 36];
            aug.apply(9, row, &src, 0.0, &mut out, &mut Vec::new());
            for y in 0..6 {
                for x in 0..6 {
                    let (qx, qy) = (x as f64 - tx, y as f64 - ty);
                    let inside = |v: f64| (0.0..=5.0).contains(&v);
                    if inside(qx.floor()) && inside(qx.ceil()) && inside(qy.floor()) && inside(qy.ceil()) {
                        // bilinear in a linear picture (value 1 + 6y + x) is exact
                        let want = 1.0 + 6.0 * qy + qx;
                        assert!((out[y * 6 + x] - want).abs() < 1e-9, "row {row} ({x},{y}): {} vs {want}", out[y * 6 + x]);
                    }
                }
            }
        }
    }

    #[test]
    fn draws_stay_in_their_ranges_and_differ_per_row_and_step() {
        let spec = AugmentSpec { shift: 2.0, rotate: 15.0, scale: 0.2, ..Default::default() };
        let aug = Augment::new(spec, 28, 28, 7, 100).unwrap();
        let a: Vec<[f64; 4]> = (0..100).map(|r| aug.affine(1, r)).collect();
        for [tx, ty, th, s] in &a {
            assert!(tx.abs() <= 2.0 && ty.abs() <= 2.0 && th.abs() <= 15f64.to_radians() && (s - 1.0).abs() <= 0.2);
        }
        assert_ne!(a[0], a[1]);
        assert_ne!(a[0], aug.affine::<f64>(2, 0));
        let spread = a.iter().map(|v| v[2]).fold(0.0f64, |m, t| m.max(t.abs()));
        assert!(spread > 10f64.to_radians(), "100 draws reach near the range's end: {spread}");
    }

    /// The smoothed field: the Gaussian's taps sum to 1, the displacement is bounded by α, and
    /// smoothing makes neighbours alike (the raw field's neighbours are independent).
    #[test]
    fn the_elastic_field_is_smooth_and_scaled_by_alpha() {
        let spec = AugmentSpec { elastic_alpha: 8.0, elastic_sigma: 3.0, ..Default::default() };
        let aug = Augment::new(spec, 28, 28, 3, 10).unwrap();
        assert_eq!(aug.taps().len(), 19);
        assert!((aug.taps().iter().sum::<f64>() - 1.0).abs() < 1e-15);
        let (mut ex, mut ey) = (vec![0.0f64; 784], vec![0.0f64; 784]);
        aug.displacements(5, 4, &mut ex, &mut ey, &mut Vec::new());
        assert!(ex.iter().chain(&ey).all(|v| v.abs() <= 8.0));
        assert!(ex.iter().any(|v| v.abs() > 0.05), "not all zero");
        let step_diff = (1..784).filter(|i| i % 28 != 0).map(|i| (ex[i] - ex[i - 1]).abs()).sum::<f64>() / 756.0;
        let mean_abs = ex.iter().map(|v| v.abs()).sum::<f64>() / 784.0;
        assert!(step_diff < 0.5 * mean_abs, "neighbours differ by {step_diff} on average, values are {mean_abs}");
        assert_ne!(ex, ey);
    }
}
