//! Initial weights and the seeded random streams. All randomness of a run comes from the seed,
//! on the host, so every backend starts from the same weights and sees the same batch order.

use crate::nn::model::{ModelSpec, Params};
use anyhow::{Result, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::fmt;
use std::str::FromStr;

/// Independent ChaCha8 streams of one seed; a stream is a pure function of (seed, purpose),
/// so resuming at epoch e reproduces exactly the order an uninterrupted run would have used.
pub enum Stream {
    Init,
    Split,
    /// The shuffle of one epoch (0-based).
    Shuffle(usize),
}

pub fn rng(seed: u64, stream: Stream) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(match stream {
        Stream::Init => 1,
        Stream::Split => 2,
        Stream::Shuffle(e) => 1000 + e as u64,
    });
    r
}

/// Fisher–Yates permutation of 0..n.
pub fn permutation(n: usize, rng: &mut impl Rng) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        v.swap(i, j);
    }
    v
}

/// How the weights are drawn; biases start at zero (explicit values excepted).
/// The largest bound or standard deviation an initialisation may draw with: weights beyond
/// that overflow f32 activations at once, and the sampler's range must stay finite.
pub const MAX_SCALE: f64 = 1e6;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// U(−l, l), l = √(6/(fan_in + fan_out)) (Keras' default, doc 001).
    GlorotUniform,
    /// U(−l, l), l = √(6/fan_in).
    HeUniform,
    /// N(0, σ²).
    Normal { sigma: f64 },
    /// N(0, 1/fan_in): the scaled normal of Nielsen's network2 (doc 000's set-up).
    LecunNormal,
    /// U(−bound, bound).
    Uniform { bound: f64 },
    /// Values given in the configuration (`initial_params`) or by `--init-from`.
    Explicit,
}

impl FromStr for Init {
    type Err = anyhow::Error;
    /// `glorot_uniform`, `he_uniform`, `lecun_normal`, `normal:SIGMA`, `uniform:BOUND`, `explicit`.
    fn from_str(s: &str) -> Result<Self> {
        let (name, arg) = match s.trim().split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s.trim(), None),
        };
        let num = |what: &str| -> Result<f64> {
            let a = arg.ok_or_else(|| anyhow::anyhow!("--init {name} needs its {what}, e.g. {name}:0.1"))?;
            let v: f64 = a.parse().map_err(|_| anyhow::anyhow!("--init {s}: {what} '{a}' is not a number"))?;
            if !(v.is_finite() && v > 0.0 && v <= MAX_SCALE) {
                bail!("--init {s}: {what} must be a number > 0 and at most {MAX_SCALE:e}");
            }
            Ok(v)
        };
        let init = match name {
            "glorot_uniform" | "xavier_uniform" if arg.is_none() => Init::GlorotUniform,
            "he_uniform" | "kaiming_uniform" if arg.is_none() => Init::HeUniform,
            "lecun_normal" if arg.is_none() => Init::LecunNormal,
            "explicit" if arg.is_none() => Init::Explicit,
            "normal" => Init::Normal { sigma: num("standard deviation")? },
            "uniform" => Init::Uniform { bound: num("bound")? },
            _ => bail!(
                "unknown --init '{s}'; expected glorot_uniform, he_uniform, lecun_normal, normal:SIGMA, uniform:BOUND or explicit"
            ),
        };
        Ok(init)
    }
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Init::GlorotUniform => write!(f, "glorot_uniform"),
            Init::HeUniform => write!(f, "he_uniform"),
            Init::LecunNormal => write!(f, "lecun_normal"),
            Init::Normal { sigma } => write!(f, "normal:{sigma}"),
            Init::Uniform { bound } => write!(f, "uniform:{bound}"),
            Init::Explicit => write!(f, "explicit"),
        }
    }
}
crate::serde_via_string!(Init);

/// Draws the initial parameters for `spec` from the seed's init stream, layer by layer,
/// weights row-major.
pub fn initialize(spec: &ModelSpec, init: Init, seed: u64) -> Result<Params> {
    if let Init::Uniform { bound: v } | Init::Normal { sigma: v } = init {
        if !(v.is_finite() && v > 0.0 && v <= MAX_SCALE) {
            bail!("--init {init}: the scale must be a number > 0 and at most {MAX_SCALE:e}");
        }
    }
    let mut params = Params::zeros(spec);
    let mut r = rng(seed, Stream::Init);
    for (i, layer) in params.layers.iter_mut().enumerate() {
        let (fan_in, fan_out) = spec.layer_dims(i);
        match init {
            Init::GlorotUniform => fill_uniform(&mut layer.weight, (6.0 / (fan_in + fan_out) as f64).sqrt(), &mut r),
            Init::HeUniform => fill_uniform(&mut layer.weight, (6.0 / fan_in as f64).sqrt(), &mut r),
            Init::Uniform { bound } => fill_uniform(&mut layer.weight, bound, &mut r),
            Init::Normal { sigma } => fill_normal(&mut layer.weight, sigma, &mut r),
            Init::LecunNormal => fill_normal(&mut layer.weight, 1.0 / (fan_in as f64).sqrt(), &mut r),
            Init::Explicit => bail!(
                "--init explicit needs the values: give initial_params in the configuration or --init-from FILE"
            ),
        }
    }
    Ok(params)
}

fn fill_uniform(w: &mut [f64], bound: f64, r: &mut ChaCha8Rng) {
    for x in w {
        *x = r.random_range(-bound..bound);
    }
}

fn fill_normal(w: &mut [f64], sigma: f64, r: &mut ChaCha8Rng) {
    let d = Normal::new(0.0, sigma).expect("sigma validated > 0");
    for x in w {
        *x = d.sample(r);
    }
}
