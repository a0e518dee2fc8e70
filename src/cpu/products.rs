//! The matrix products of a CPU training step, described as data: each layer's forward
//! product, weight gradient and (below the top layer's input) backward product, with the
//! strides through which the backend reads its row-major buffers (so transposes cost nothing).
//! The backend computes every product through `Product::run`, and `gpu-nn bench`'s roofline
//! times the same list alone (`step_products`), so "the step" and "its products" are the same
//! shapes by construction. A layer's weights are held as the equations write them, W [out×in],
//! or as their transpose (`WeightLayout`), which only changes the strides.

use crate::nn::math::Real;
use crate::nn::model::ModelSpec;

/// What a product computes in the step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Z_l = A_{l−1}·W_lᵀ (+ the bias already in Z).
    Forward,
    /// ∂W_l = s·δ_lᵀ·A_{l−1}.
    WeightGradient,
    /// δ_{l−1} = δ_l·W_l (before the derivative factor).
    InputGradient,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Forward => "forward",
            Role::WeightGradient => "weight gradient",
            Role::InputGradient => "input gradient",
        }
    }
}

/// How the backend holds a layer's weights (and their gradients and optimiser state, element
/// for element).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// W [out×in], as the equations, the model files and the GPU write it.
    OutByIn,
    /// Wᵀ [in×out]: the forward product reads B = Wᵀ's rows as they are, where W [out×in]
    /// has to be transposed into the GEMM's panels every step (a tenth of seed000-mnist's
    /// step). Only for a layer no input gradient reads (the first), and only where the GEMM's
    /// sums do not depend on the operands' strides (`Real::transposes_first_layer`), so the
    /// bytes are the same either way.
    InByOut,
}

impl WeightLayout {
    /// Each layer's layout in a backend computing in T: the first layer's weights transposed
    /// where `T::transposes_first_layer`, every other layer's as the equations write them.
    pub fn of_layers<T: Real>(layers: usize) -> Vec<WeightLayout> {
        (0..layers).map(|l| if l == 0 && T::transposes_first_layer() { WeightLayout::InByOut } else { WeightLayout::OutByIn }).collect()
    }

    /// A weight tensor given as W [out×in], held in this layout.
    pub fn hold<T: Copy>(self, w: &[T], n_in: usize, n_out: usize) -> Vec<T> {
        match self {
            WeightLayout::OutByIn => w.to_vec(),
            // Wᵀ's element (i, o) is W's (o, i)
            WeightLayout::InByOut => (0..w.len()).map(|j| w[(j % n_out) * n_in + j / n_out]).collect(),
        }
    }

    /// A weight tensor held in this layout, as W [out×in].
    pub fn out_by_in<T: Copy>(self, held: &[T], n_in: usize, n_out: usize) -> Vec<T> {
        self.in_out_by_in_order(held, n_in, n_out).collect()
    }

    /// The values of a weight tensor held in this layout in W [out×in]'s order, without a copy.
    pub fn in_out_by_in_order<T: Copy>(self, held: &[T], n_in: usize, n_out: usize) -> impl Iterator<Item = T> + '_ {
        (0..held.len()).map(move |j| match self {
            WeightLayout::OutByIn => held[j],
            WeightLayout::InByOut => held[(j % n_in) * n_out + j / n_in],
        })
    }
}

/// `C[m×n] = alpha·A[m×k]·B[k×n] + beta·C` with A and B read through (row, column) strides and
/// C row-major with row stride `rsc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Product {
    pub role: Role,
    /// The layer (1-based, as the equations number them).
    pub layer: usize,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a: (usize, usize),
    pub b: (usize, usize),
    pub rsc: usize,
}

impl Product {
    /// Z [rows×out] += A_{l−1} [rows×in] · Wᵀ [in×out]: W [out×in] read through strides, or
    /// Wᵀ's own rows.
    pub fn forward(layer: usize, rows: usize, n_in: usize, n_out: usize, layout: WeightLayout) -> Product {
        let b = match layout {
            WeightLayout::OutByIn => (1, n_in),
            WeightLayout::InByOut => (n_out, 1),
        };
        Product { role: Role::Forward, layer, m: rows, k: n_in, n: n_out, a: (n_in, 1), b, rsc: n_out }
    }

    /// ∂W [out×in] = s · δᵀ [out×rows] · A_{l−1} [rows×in] (δ is rows×out), or in the
    /// transposed layout ∂Wᵀ [in×out] = s · A_{l−1}ᵀ [in×rows] · δ [rows×out]: each element
    /// the same chain of products over the rows (a·b = b·a), so the same bits.
    pub fn weight_gradient(layer: usize, rows: usize, n_in: usize, n_out: usize, layout: WeightLayout) -> Product {
        match layout {
            WeightLayout::OutByIn => Product { role: Role::WeightGradient, layer, m: n_out, k: rows, n: n_in, a: (1, n_out), b: (n_in, 1), rsc: n_in },
            WeightLayout::InByOut => Product { role: Role::WeightGradient, layer, m: n_in, k: rows, n: n_out, a: (1, n_in), b: (n_out, 1), rsc: n_out },
        }
    }

    /// δ_{l−1} [rows×in] = δ_l [rows×out] · W [out×in] (never a transposed layer: only the
    /// first layer is held so, and no gradient flows into the inputs).
    pub fn input_gradient(layer: usize, rows: usize, n_in: usize, n_out: usize) -> Product {
        Product { role: Role::InputGradient, layer, m: rows, k: n_out, n: n_in, a: (n_out, 1), b: (n_in, 1), rsc: n_in }
    }

    /// Multiply-adds.
    pub fn macs(&self) -> usize {
        self.m * self.k * self.n
    }

    /// Elements A, B and C span through their strides.
    pub fn extents(&self) -> [usize; 3] {
        let span = |rows: usize, cols: usize, (rs, cs): (usize, usize)| (rows - 1) * rs + (cols - 1) * cs + 1;
        [span(self.m, self.k, self.a), span(self.k, self.n, self.b), span(self.m, self.n, (self.rsc, 1))]
    }

    /// Computes it on up to `threads` cores (the result does not depend on `threads`).
    pub fn run<T: Real>(&self, threads: usize, alpha: T, a: &[T], b: &[T], beta: T, c: &mut [T]) {
        T::gemm_threads(threads, self.m, self.k, self.n, alpha, a, self.a.0, self.a.1, b, self.b.0, self.b.1, beta, c, self.rsc);
    }

    /// "layer 2 weight gradient 64×128·128×784".
    pub fn describe(&self) -> String {
        format!("layer {} {} {}×{}·{}×{}", self.layer, self.role.name(), self.m, self.k, self.k, self.n)
    }
}

/// Every product of one training step on `rows` samples, with each layer's weights held in
/// `layouts[l − 1]`, in the order the backend runs them.
pub fn step_products(spec: &ModelSpec, rows: usize, layouts: &[WeightLayout]) -> Vec<Product> {
    let layers = spec.num_layers();
    let mut out: Vec<Product> = (1..=layers).map(|l| dims(spec, l)).map(|(l, i, o)| Product::forward(l, rows, i, o, layouts[l - 1])).collect();
    for l in (1..=layers).rev() {
        let (_, i, o) = dims(spec, l);
        out.push(Product::weight_gradient(l, rows, i, o, layouts[l - 1]));
        if l > 1 {
            out.push(Product::input_gradient(l, rows, i, o));
        }
    }
    out
}

fn dims(spec: &ModelSpec, l: usize) -> (usize, usize, usize) {
    let (i, o) = spec.layer_dims(l - 1);
    (l, i, o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::math::gemm_reference;

    /// Each kind of product against the textbook loop on the transposes it stands for, on
    /// shapes that are not multiples of any block, its output poisoned first.
    #[test]
    fn each_product_is_the_product_its_strides_say() {
        let (rows, n_in, n_out) = (7, 13, 5);
        let fill = |n: usize, s: f64| (0..n).map(|i| (i as f64 * s).sin() * 2.0).collect::<Vec<f64>>();
        let x = fill(rows * n_in, 0.7); // rows×in
        let w = fill(n_out * n_in, 1.3); // out×in
        let d = fill(rows * n_out, 0.4); // rows×out
        let t = |m: &[f64], r: usize, c: usize| (0..c * r).map(|i| m[(i % r) * c + i / r]).collect::<Vec<f64>>();
        let wt = WeightLayout::InByOut.hold(&w, n_in, n_out); // in×out
        assert_eq!(WeightLayout::InByOut.out_by_in(&wt, n_in, n_out), w);
        assert_eq!(WeightLayout::InByOut.in_out_by_in_order(&wt, n_in, n_out).collect::<Vec<f64>>(), w);
        assert_eq!(WeightLayout::OutByIn.in_out_by_in_order(&w, n_in, n_out).collect::<Vec<f64>>(), w);
        use WeightLayout::*;
        for (p, a, b, want) in [
            (Product::forward(1, rows, n_in, n_out, OutByIn), &x, &w, (rows, n_in, n_out, x.clone(), t(&w, n_out, n_in))),
            (Product::forward(1, rows, n_in, n_out, InByOut), &x, &wt, (rows, n_in, n_out, x.clone(), t(&w, n_out, n_in))),
            (Product::weight_gradient(1, rows, n_in, n_out, OutByIn), &d, &x, (n_out, rows, n_in, t(&d, rows, n_out), x.clone())),
            (Product::weight_gradient(1, rows, n_in, n_out, InByOut), &x, &d, (n_in, rows, n_out, t(&x, rows, n_in), d.clone())),
            (Product::input_gradient(2, rows, n_in, n_out), &d, &w, (rows, n_out, n_in, d.clone(), w.clone())),
        ] {
            let (m, k, n, ra, rb) = want;
            let mut expected = vec![0.0; m * n];
            gemm_reference(m, k, n, 1.0, &ra, k, 1, &rb, n, 1, 0.0, &mut expected, n);
            let mut got = vec![f64::NAN; p.extents()[2]];
            p.run(1, 1.0, a, b, 0.0, &mut got);
            for (g, e) in got.iter().zip(&expected) {
                assert!((g - e).abs() <= 1e-12 * e.abs().max(1.0), "{}: {g} vs {e}", p.describe());
            }
            assert_eq!(p.extents()[..2], [a.len(), b.len()], "{}", p.describe());
        }
    }

    #[test]
    fn a_step_has_a_forward_and_a_weight_gradient_per_layer_and_an_input_gradient_below_the_top() {
        use crate::nn::model::{Loss, Reduction};
        let layers = vec![784, 128, 64, 10];
        let activations = ModelSpec::default_activations(&layers, Loss::CrossEntropy);
        let spec = ModelSpec { layers, activations, loss: Loss::CrossEntropy, label_smoothing: 0.0, reduction: Reduction::Mean, input_norm: Default::default(), feature_norm: None, classes: Vec::new() };
        use Role::*;
        for first in [WeightLayout::OutByIn, WeightLayout::InByOut] {
            let p = step_products(&spec, 64, &[first, WeightLayout::OutByIn, WeightLayout::OutByIn]);
            let roles: Vec<(usize, Role)> = p.iter().map(|p| (p.layer, p.role)).collect();
            assert_eq!(roles, [(1, Forward), (2, Forward), (3, Forward), (3, WeightGradient), (3, InputGradient), (2, WeightGradient), (2, InputGradient), (1, WeightGradient)]);
            let macs: usize = p.iter().map(Product::macs).sum();
            assert_eq!(macs, 64 * (2 * (784 * 128 + 128 * 64 + 64 * 10) + 128 * 64 + 64 * 10));
        }
    }
}
