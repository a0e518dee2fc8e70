//! Dropout (Srivastava et al. 2014), inverted: in training each unit of a layer's input is kept
//! with probability 1 − p and then scaled by 1/(1 − p), so evaluation uses the weights as they
//! are. Whether unit j of batch row r is kept at optimiser step t is a pure function of the
//! run's seed and (t, layer, r·width + j) through `philox`, so every backend drops the same
//! units (`shaders/dropout.wgsl` draws them on the GPU) and a resumed run needs no extra state.
//!
//! With the mask m (1/(1−p) where kept, 0 where dropped) on the activations A_l of a hidden
//! layer, the step is
//!   forward   Ã_l = A_l ⊙ m_l, which the next layer reads
//!   backward  δ_l = (δ_{l+1}·W_{l+1}) ⊙ f'(Z_l) ⊙ m_l,   ∂W_{l+1} = s·δ_{l+1}ᵀ·Ã_l
//! where f'(Z_l) is evaluated on A_l = f(Z_l), not on Ã_l.

use crate::nn::math::Real;
use crate::nn::model::ModelSpec;
use crate::nn::philox::{self, Stream};
use anyhow::{Result, bail};

/// Dropout rates of a model: `rates[l]` for the input of weight layer l (0 = the network's
/// input, l ≥ 1 = hidden layer l's activations), each in [0, 1).
#[derive(Clone, Debug, PartialEq)]
pub struct Dropout {
    rates: Vec<f64>,
    key: [u32; 2],
}

impl Dropout {
    /// No dropout anywhere.
    pub fn none() -> Dropout {
        Dropout { rates: Vec::new(), key: [0; 2] }
    }

    /// `input` on the network's input and `hidden` on the hidden layers (empty: none; one rate:
    /// every hidden layer; else one per hidden layer), masks keyed by `seed`. `batch` rows of
    /// the widest layer must number fewer than 2³² elements (the generator's element counter).
    pub fn new(spec: &ModelSpec, input: f64, hidden: &[f64], seed: u64, batch: usize) -> Result<Dropout> {
        let n_hidden = spec.layers.len().saturating_sub(2);
        let list = || hidden.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",");
        let hidden: Vec<f64> = match hidden.len() {
            0 => vec![0.0; n_hidden],
            1 => vec![hidden[0]; n_hidden],
            n if n == n_hidden => hidden.to_vec(),
            n => bail!("--dropout {}: {n} rates for {n_hidden} hidden layer(s); give one rate for all of them or one per hidden layer", list()),
        };
        for (what, p) in std::iter::once(("--input-dropout", input)).chain(hidden.iter().map(|&p| ("--dropout", p))) {
            if !(0.0..1.0).contains(&p) {
                bail!("{what} {p}: a dropout rate is a probability in [0, 1) (0 = off)");
            }
        }
        let rates: Vec<f64> = std::iter::once(input).chain(hidden).collect();
        if rates.iter().all(|&p| p == 0.0) {
            return Ok(Dropout::none());
        }
        for (l, &p) in rates.iter().enumerate() {
            if p > 0.0 && (batch as u64) * (spec.layers[l] as u64) >= 1 << 32 {
                bail!("dropout on layer {l}: a batch of {batch} rows of {} units exceeds the 2^32 elements its masks can number; use a smaller batch", spec.layers[l]);
            }
        }
        Ok(Dropout { rates, key: philox::key(seed) })
    }

    pub fn is_on(&self) -> bool {
        !self.rates.is_empty()
    }

    /// The rate on the input of weight layer `l` (0 = the network's input).
    pub fn rate(&self, l: usize) -> f64 {
        self.rates.get(l).copied().unwrap_or(0.0)
    }

    /// The generator's key (the seed's halves), for the GPU's kernel.
    pub fn key(&self) -> [u32; 2] {
        self.key
    }

    /// A unit is dropped when its 32 random bits are below this: ⌊p·2³²⌋, so that the CPU and
    /// the GPU compare integers and agree exactly.
    pub fn threshold(&self, l: usize) -> u32 {
        (self.rate(l) * 4_294_967_296.0) as u32
    }

    /// What a kept unit is multiplied by, 1/(1 − p), rounded once from f64.
    pub fn keep_scale<T: Real>(&self, l: usize) -> T {
        T::of(1.0 / (1.0 - self.rate(l)))
    }

    /// The mask of layer `l` at optimiser step `step` (1-based) for the elements `first..` of
    /// the batch (element = row·width + unit): 1/(1 − p) where kept, 0 where dropped.
    pub fn mask<T: Real>(&self, step: u64, l: usize, first: usize, out: &mut [T]) {
        let mut bits = vec![0u32; out.len()];
        philox::fill_bits(self.key, Stream::Dropout, step, l as u32, first as u32, &mut bits);
        let (threshold, scale) = (self.threshold(l), self.keep_scale::<T>(l));
        for (m, &b) in out.iter_mut().zip(&bits) {
            *m = if b < threshold { T::zero() } else { scale };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(layers: &[usize]) -> ModelSpec {
        use crate::nn::model::Activation;
        let mut activations = vec![Activation::Relu; layers.len() - 1];
        *activations.last_mut().unwrap() = Activation::Softmax;
        ModelSpec::classifier(layers, &activations)
    }

    #[test]
    fn rates_are_given_for_all_hidden_layers_or_one_each_and_checked() {
        let s = spec(&[784, 100, 50, 10]);
        let d = Dropout::new(&s, 0.2, &[0.5], 1, 64).unwrap();
        assert_eq!((d.rate(0), d.rate(1), d.rate(2), d.rate(3)), (0.2, 0.5, 0.5, 0.0));
        let d = Dropout::new(&s, 0.0, &[0.1, 0.3], 1, 64).unwrap();
        assert_eq!((d.rate(0), d.rate(1), d.rate(2)), (0.0, 0.1, 0.3));
        assert!(!Dropout::new(&s, 0.0, &[], 1, 64).unwrap().is_on());
        assert!(!Dropout::new(&s, 0.0, &[0.0], 1, 64).unwrap().is_on());
        let e = Dropout::new(&s, 0.0, &[0.1, 0.2, 0.3], 1, 64).unwrap_err().to_string();
        assert!(e.contains("3 rates for 2 hidden layer(s)"), "{e}");
        assert!(Dropout::new(&s, 1.0, &[], 1, 64).unwrap_err().to_string().contains("--input-dropout 1"));
        assert!(Dropout::new(&s, 0.0, &[-0.1], 1, 64).unwrap_err().to_string().contains("--dropout -0.1"));
        assert!(Dropout::new(&s, 0.0, &[0.5], 1, 50_000_000).unwrap_err().to_string().contains("2^32"));
    }

    #[test]
    fn a_mask_drops_about_p_of_the_units_and_scales_the_rest_by_the_inverse_keep_rate() {
        let d = Dropout::new(&spec(&[10, 1000, 10]), 0.0, &[0.3], 5, 100).unwrap();
        let mut m = vec![0.0f64; 100_000];
        d.mask(1, 1, 0, &mut m);
        let kept = m.iter().filter(|&&x| x != 0.0).count() as f64 / m.len() as f64;
        // 3 standard errors of a binomial proportion at n = 1e5, p = 0.7: 0.0043
        assert!((kept - 0.7).abs() < 0.0045, "kept {kept}");
        assert!(m.iter().all(|&x| x == 0.0 || x == 1.0 / 0.7));
        assert_eq!(d.keep_scale::<f32>(1), (1.0f64 / 0.7) as f32);
    }

    #[test]
    fn masks_differ_between_steps_and_layers_and_a_window_is_the_same_as_the_whole() {
        let d = Dropout::new(&spec(&[64, 64, 64, 10]), 0.5, &[0.5], 3, 16).unwrap();
        let draw = |step, l, first, n| {
            let mut m = vec![0.0f32; n];
            d.mask(step, l, first, &mut m);
            m
        };
        let whole = draw(4, 1, 0, 1024);
        assert_eq!(&whole[101..300], &draw(4, 1, 101, 199)[..]);
        assert_ne!(whole, draw(5, 1, 0, 1024));
        assert_ne!(whole, draw(4, 2, 0, 1024));
        assert_ne!(whole, draw(4, 0, 0, 1024));
    }
}
