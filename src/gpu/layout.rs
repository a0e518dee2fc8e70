//! The buffer layout of one model on the device, as plain numbers (no wgpu objects): the rows of
//! a micro-batch, where each layer and each tensor sits, the numbering of the dims slots and the
//! static dims they hold, and the conversions between the aligned flat buffers and `Params` /
//! `OptimState`.
//!
//! Buffers: `acts`, `pre`, `dlt` hold A_l, Z_l and δ_l of every layer (layer l at `layer_off[l]`,
//! rows × n_l); `params`, `grads` and `state` hold every tensor at `param_off`, in the order of
//! `Params::flat()`, so the optimiser updates the whole model in one dispatch. Every offset is a
//! multiple of 4 floats, so the vec4 kernels can view the buffers as `array<vec4<f32>>`; the
//! gaps this leaves in params/grads/state are zero and stay zero under every update rule.

use super::kernels::{LossDims, MatmulDims, OptimDims};
use crate::nn::model::{LayerParams, ModelSpec, Params};
use crate::nn::optim::{OptimState, OptimizerSpec};
use anyhow::{Result, bail};

/// Step-uniform entries per submission.
pub const MAX_ENTRIES: usize = 1024;
/// Upper bound on the rows of one micro-batch (also the evaluation chunk).
const MAX_ROWS: usize = 8192;
/// Dims entries: per layer forward, backward_data, weight_grad; loss; optimiser; gather slots.
const GATHER_SLOTS: usize = 5;

/// The most bytes one storage binding may cover on a device with these limits, rounded down to
/// 16: buffers are allocated in multiples of 16 bytes (`device::storage`), so any size checked
/// against this stays within the limit after that rounding.
pub fn max_binding(limits: &wgpu::Limits) -> usize {
    ((limits.max_storage_buffer_binding_size as u64).min(limits.max_buffer_size) as usize) & !15
}

/// Floats of one activation buffer for `rows` rows: every layer's block padded to 4 floats.
fn activation_floats(spec: &ModelSpec, rows: usize) -> usize {
    spec.layers.iter().map(|&n| (rows * n).next_multiple_of(4)).sum()
}

/// Where everything of one model sits in the backend's buffers (in floats unless named bytes).
#[derive(Debug)]
pub struct Layout {
    rows_cap: usize,
    /// Start of layer l's block (rows_cap × n_l) in acts, pre and dlt.
    layer_off: Vec<usize>,
    /// Floats in each of acts, pre and dlt.
    acts_len: usize,
    /// (n_in, n_out) of each weight layer.
    shapes: Vec<(usize, usize)>,
    /// (weight offset, bias offset) of each layer in params/grads/state.
    param_off: Vec<(usize, usize)>,
    /// Floats in params and grads, and per slot of the optimiser state: the tensors at
    /// `param_off` and the zero gaps that align them.
    param_len: usize,
    /// Slots of optimiser state, each `param_len` floats.
    state_slots: usize,
    /// Bytes from one dims slot (or step entry) to the next: the dynamic-offset alignment.
    align: usize,
}

impl Layout {
    /// Rows of one micro-batch for `batch` on a device with these limits: the batch (at least
    /// the evaluation chunk of 1024 rows) if it fits the binding limit; 0 if one sample does not.
    pub fn rows_cap_for(spec: &ModelSpec, batch: usize, limits: &wgpu::Limits) -> usize {
        let max_bind = max_binding(limits);
        let widths: usize = spec.layers.iter().sum();
        let mut rows = batch.max(1024).min(MAX_ROWS).min(max_bind / (4 * widths));
        // the padding of each layer's block to 4 floats counts too (at most 3 floats a layer)
        while rows > 0 && 4 * activation_floats(spec, rows) > max_bind {
            rows -= 1;
        }
        rows
    }

    /// The layout for micro-batches of `batch` rows (capped by `rows_cap_for`); fails if one
    /// sample's activations, the parameters or the optimiser state exceed one binding.
    pub fn new(spec: &ModelSpec, opt: &OptimizerSpec, batch: usize, limits: &wgpu::Limits) -> Result<Layout> {
        let max_bind = max_binding(limits);
        let widths: usize = spec.layers.iter().sum();
        // rows of one micro-batch: the batch (or the evaluation chunk) if it fits the binding limit
        if Self::rows_cap_for(spec, 1, limits) == 0 {
            bail!(
                "the model's layer widths sum to {widths} values per sample, {} bytes, more than the adapter's max_storage_buffer_binding_size of {max_bind} bytes",
                4 * widths
            );
        }
        let rows_cap = Self::rows_cap_for(spec, batch, limits);
        // every tensor starts at a multiple of 4 floats (the vec4 kernels index in vec4s)
        let align4 = |x: usize| x.next_multiple_of(4);
        let mut layer_off = Vec::new();
        let mut acc = 0;
        for &n in &spec.layers {
            layer_off.push(acc);
            acc += align4(rows_cap * n);
        }
        let mut param_off = Vec::new();
        let mut p = 0;
        for i in 0..spec.num_layers() {
            let (n_in, n_out) = spec.layer_dims(i);
            let b = align4(p + n_in * n_out);
            param_off.push((p, b));
            p = align4(b + n_out);
        }
        let param_len = p;
        let n_params = spec.num_params();
        let state_len = param_len * opt.kind.state_slots();
        if 4 * param_len > max_bind || 4 * state_len > max_bind {
            bail!(
                "the model has {n_params} parameters ({} bytes{}); the adapter's max_storage_buffer_binding_size is {max_bind} bytes",
                4 * param_len,
                if state_len > param_len { format!(", {} bytes of Adam state", 4 * state_len) } else { String::new() }
            );
        }
        // dims and step entries are bound with dynamic offsets, as uniform or storage buffers
        // (ParamBlocks in kernels.rs)
        let align = limits.min_uniform_buffer_offset_alignment.max(limits.min_storage_buffer_offset_alignment).max(64) as usize;
        Ok(Layout {
            rows_cap,
            layer_off,
            acts_len: acc,
            shapes: (0..spec.num_layers()).map(|i| spec.layer_dims(i)).collect(),
            param_off,
            param_len,
            state_slots: opt.kind.state_slots(),
            align,
        })
    }

    pub fn rows_cap(&self) -> usize {
        self.rows_cap
    }

    /// What the matmul kernels, built without runtime bounds checks on Vulkan
    /// (`kernels::matmul_checks`), rely on, checked before any is dispatched: every layer's
    /// block of `rows_cap` rows lies inside the activation buffers and starts on a vec4, every
    /// weight and bias tensor inside the parameter buffers, apart and on a vec4. With these and a
    /// micro-batch of 1 to `rows_cap` rows (`scheduler::step_entry`), every index the kernels
    /// form (their loads clamped or masked to the product's rows and columns, their stores
    /// masked) is inside its binding.
    pub fn check_matmul_extents(&self) -> Result<()> {
        let widths: Vec<usize> = std::iter::once(self.shapes[0].0).chain(self.shapes.iter().map(|s| s.1)).collect();
        for (l, &n) in widths.iter().enumerate() {
            let (off, end) = (self.layer_off[l], self.rows_cap.checked_mul(n).and_then(|x| x.checked_add(self.layer_off[l])));
            if off % 4 != 0 || end.is_none_or(|e| e > self.acts_len) {
                bail!("internal: layer {l}'s activations ({} rows of {n} at {off}) do not fit the activation buffers of {} floats", self.rows_cap, self.acts_len);
            }
        }
        let mut end = 0;
        for (i, (&(w, b), &(n_in, n_out))) in self.param_off.iter().zip(&self.shapes).enumerate() {
            if w % 4 != 0 || b % 4 != 0 || w < end || w + n_in * n_out > b || b + n_out > self.param_len {
                bail!("internal: layer {i}'s tensors (weight at {w}, bias at {b}) overlap or leave the parameter buffers of {} floats", self.param_len);
            }
            end = b + n_out;
        }
        Ok(())
    }
    /// Start of layer `l` (0 = the input) in acts, pre and dlt.
    pub fn layer_off(&self, l: usize) -> usize {
        self.layer_off[l]
    }
    pub fn acts_len(&self) -> usize {
        self.acts_len
    }
    /// (weight offset, bias offset) of weight layer `i` in params, grads and each state slot.
    pub fn param_off(&self, i: usize) -> (usize, usize) {
        self.param_off[i]
    }
    pub fn param_len(&self) -> usize {
        self.param_len
    }
    pub fn state_len(&self) -> usize {
        self.param_len * self.state_slots
    }
    pub fn align(&self) -> usize {
        self.align
    }

    // dims slot numbering
    pub fn fwd_slot(&self, l: usize) -> usize {
        l - 1
    }
    pub fn bwd_slot(&self, l: usize) -> usize {
        self.shapes.len() + l - 1
    }
    pub fn wg_slot(&self, l: usize) -> usize {
        2 * self.shapes.len() + l - 1
    }
    pub fn loss_slot(&self) -> usize {
        3 * self.shapes.len()
    }
    pub fn opt_slot(&self) -> usize {
        3 * self.shapes.len() + 1
    }
    pub fn gather_slot(&self, i: usize) -> usize {
        3 * self.shapes.len() + 2 + i
    }
    /// Slots in the dims buffer.
    pub fn dims_slots(&self) -> usize {
        3 * self.shapes.len() + 2 + GATHER_SLOTS
    }

    /// Hands `write` the dims of every matmul, the output layer and the optimiser: (slot, bytes
    /// of the kernel's dims struct). Gather dims depend on the dataset and are written on attach.
    pub fn static_dims(&self, s: &ModelSpec, o: &OptimizerSpec, mut write: impl FnMut(usize, &[u8])) {
        for l in 1..s.layers.len() {
            let (n_in, n_out) = s.layer_dims(l - 1);
            let (w, b) = self.param_off[l - 1];
            let act = s.activations[l - 1].code();
            write(self.fwd_slot(l), bytemuck::bytes_of(&MatmulDims {
                m: 0, n: n_out as u32, k: n_in as u32,
                a_off: self.layer_off[l - 1] as u32, b_off: w as u32, c_off: self.layer_off[l] as u32,
                bias_off: b as u32, act,
            }));
            if l > 1 {
                write(self.bwd_slot(l), bytemuck::bytes_of(&MatmulDims {
                    m: 0, n: n_in as u32, k: n_out as u32,
                    a_off: self.layer_off[l] as u32, b_off: w as u32, c_off: self.layer_off[l - 1] as u32,
                    bias_off: 0, act: s.activations[l - 2].code(),
                }));
            }
            write(self.wg_slot(l), bytemuck::bytes_of(&MatmulDims {
                m: n_out as u32, n: n_in as u32, k: 0,
                a_off: self.layer_off[l] as u32, b_off: self.layer_off[l - 1] as u32, c_off: w as u32,
                bias_off: b as u32, act: 0,
            }));
        }
        let last = s.layers.len() - 1;
        write(self.loss_slot(), bytemuck::bytes_of(&LossDims {
            n: s.output_size() as u32, off: self.layer_off[last] as u32,
            act: s.output_activation().code(), loss: s.loss.code(),
            smoothing: s.label_smoothing as f32, _pad: [0; 3],
        }));
        write(self.opt_slot(), bytemuck::bytes_of(&OptimDims {
            count: self.param_len as u32,
            kind: o.kind.code(),
            momentum: o.momentum as f32,
            beta1: o.beta1 as f32,
            beta2: o.beta2 as f32,
            epsilon: o.epsilon as f32,
            weight_decay: o.weight_decay as f32,
            one_minus_beta1: (1.0 - o.beta1) as f32,
            one_minus_beta2: (1.0 - o.beta2) as f32,
            clip_norm: o.clip_norm.unwrap_or(0.0) as f32,
            max_norm: o.max_norm as f32,
        }));
    }

    /// The table `max_norm` in optimizer.wgsl reads: per weight layer (weight offset, inputs,
    /// first row, rows), the rows (units) numbered across layers; and the rows in all.
    pub fn weight_rows(&self) -> (Vec<u32>, usize) {
        let mut table = Vec::new();
        let mut first = 0;
        for (&(w, _), &(n_in, n_out)) in self.param_off.iter().zip(&self.shapes) {
            table.extend([w as u32, n_in as u32, first as u32, n_out as u32]);
            first += n_out;
        }
        (table, first)
    }

    /// `params` as the params buffer holds them: each tensor at its aligned offset, zeros in
    /// the gaps (`param_len` values).
    pub fn flatten_params(&self, params: &Params) -> Vec<f64> {
        let mut flat = vec![0.0; self.param_len];
        for (l, &(w, b)) in params.layers.iter().zip(&self.param_off) {
            flat[w..w + l.weight.len()].copy_from_slice(&l.weight);
            flat[b..b + l.bias.len()].copy_from_slice(&l.bias);
        }
        flat
    }

    /// Weight and bias of layer `i` out of `v`, a copy of params or grads.
    pub fn tensors(&self, v: &[f32], i: usize) -> [Vec<f64>; 2] {
        let (n_in, n_out) = self.shapes[i];
        let (w, b) = self.param_off[i];
        [v[w..w + n_in * n_out].iter().map(|&x| x as f64).collect(), v[b..b + n_out].iter().map(|&x| x as f64).collect()]
    }

    /// The parameters in `v`, a copy of the params buffer.
    pub fn params_of(&self, v: &[f32]) -> Params {
        Params {
            layers: (0..self.shapes.len())
                .map(|i| {
                    let [weight, bias] = self.tensors(v, i);
                    LayerParams { weight, bias }
                })
                .collect(),
        }
    }

    /// `st` as the state buffer holds it: slot s of every tensor at `s * param_len` plus the
    /// tensor's offset, zeros in the gaps (`state_len` values).
    pub fn flatten_state(&self, st: &OptimState) -> Vec<f64> {
        let slots = self.state_slots;
        let mut flat = vec![0.0; self.param_len * slots];
        for (i, [w, b]) in st.slots.iter().enumerate() {
            let (wo, bo) = self.param_off[i];
            let n = self.param_len;
            for s in 0..slots {
                flat[s * n + wo..s * n + wo + w[s].len()].copy_from_slice(&w[s]);
                flat[s * n + bo..s * n + bo + b[s].len()].copy_from_slice(&b[s]);
            }
        }
        flat
    }

    /// The optimiser state in `v`, a copy of the state buffer, after `step` updates.
    pub fn state_of(&self, v: &[f32], step: u64) -> OptimState {
        let slots = self.state_slots;
        let mut st = OptimState { step, slots: Vec::new() };
        for i in 0..self.shapes.len() {
            let (n_in, n_out) = self.shapes[i];
            let (w, b) = self.param_off[i];
            let take = |off: usize, len: usize| -> Vec<Vec<f64>> {
                (0..slots).map(|s| v[s * self.param_len + off..s * self.param_len + off + len].iter().map(|&x| x as f64).collect()).collect()
            };
            st.slots.push([take(w, n_in * n_out), take(b, n_out)]);
        }
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::model::{Activation, Loss, Reduction};
    use crate::nn::optim::OptimizerKind;
    use crate::data::InputNorm;

    fn spec(layers: &[usize]) -> ModelSpec {
        let mut activations = vec![Activation::Relu; layers.len() - 2];
        activations.push(Activation::Softmax);
        ModelSpec { layers: layers.to_vec(), activations, loss: Loss::CrossEntropy, label_smoothing: 0.0, reduction: Reduction::Mean, input_norm: InputNorm::IDENTITY, feature_norm: None, classes: Vec::new() }
    }

    fn adam() -> OptimizerSpec {
        OptimizerSpec { kind: OptimizerKind::Adam, ..Default::default() }
    }

    /// The extents the unchecked matmul kernels rely on hold for every layout gpu-nn makes, and
    /// a layout that breaks them is refused.
    #[test]
    fn matmul_extents_hold_and_a_broken_layout_is_refused() {
        let lim = wgpu::Limits::default();
        for layers in [vec![784, 128, 64, 10], vec![1, 1], vec![3, 7, 5, 2], vec![784, 1024, 1024, 10], vec![30, 17, 5]] {
            for batch in [1, 3, 64, 100, 2000] {
                let l = Layout::new(&spec(&layers), &adam(), batch, &lim).unwrap();
                l.check_matmul_extents().unwrap_or_else(|e| panic!("{layers:?} batch {batch}: {e}"));
            }
        }
        let good = Layout::new(&spec(&[36, 20, 10]), &adam(), 40, &lim).unwrap();
        let mut short = Layout { acts_len: good.acts_len - 1, layer_off: good.layer_off.clone(), param_off: good.param_off.clone(), shapes: good.shapes.clone(), ..good };
        assert!(short.check_matmul_extents().unwrap_err().to_string().contains("activations"));
        short.acts_len += 1;
        short.layer_off[1] += 2;
        assert!(short.check_matmul_extents().is_err(), "a block off a vec4");
        short.layer_off[1] -= 2;
        short.param_off[1].0 -= 4;
        assert!(short.check_matmul_extents().unwrap_err().to_string().contains("overlap"));
    }

    #[test]
    fn offsets_are_aligned_and_disjoint() {
        let s = spec(&[7, 5, 3]);
        let l = Layout::new(&s, &adam(), 3, &wgpu::Limits::default()).unwrap();
        assert_eq!(l.rows_cap(), 1024, "at least the evaluation chunk");
        let mut end = 0;
        for (i, &n) in s.layers.iter().enumerate() {
            assert!(l.layer_off(i).is_multiple_of(4));
            assert!(l.layer_off(i) >= end);
            end = l.layer_off(i) + l.rows_cap() * n;
        }
        assert!(end <= l.acts_len());
        let mut end = 0;
        for i in 0..s.num_layers() {
            let (n_in, n_out) = s.layer_dims(i);
            let (w, b) = l.param_off(i);
            assert!(w.is_multiple_of(4) && b.is_multiple_of(4) && w >= end && b >= w + n_in * n_out, "layer {i}: {w}, {b}");
            end = b + n_out;
        }
        assert!(end <= l.param_len() && l.param_len().is_multiple_of(4));
        assert_eq!(l.state_len(), 2 * l.param_len());
        assert!(l.align().is_multiple_of(64));
    }

    #[test]
    fn rows_cap_follows_the_batch_and_the_binding_limit() {
        let s = spec(&[784, 128, 10]);
        let lim = wgpu::Limits::default();
        assert_eq!(Layout::rows_cap_for(&s, 4000, &lim), 4000);
        assert_eq!(Layout::rows_cap_for(&s, 60000, &lim), MAX_ROWS);
        let small = wgpu::Limits { max_storage_buffer_binding_size: 4 * 922 * 100, ..lim.clone() };
        assert_eq!(Layout::rows_cap_for(&s, 4000, &small), 100);
        let tiny = wgpu::Limits { max_storage_buffer_binding_size: 100, ..lim };
        assert!(Layout::new(&s, &adam(), 1, &tiny).is_err(), "one sample does not fit");
    }

    /// Widths that are not multiples of 4 pad every layer's block: the padded activation
    /// buffer, not just rows × widths, has to fit the binding, for limits of any size.
    #[test]
    fn padded_activation_buffers_fit_the_binding_limit() {
        let s = spec(&[5, 7, 3]);
        let lim = wgpu::Limits::default();
        for bind in (4 * 15 * 40..4 * 15 * 48).step_by(4) {
            let small = wgpu::Limits { max_storage_buffer_binding_size: bind, ..lim.clone() };
            let l = Layout::new(&s, &adam(), 4000, &small).unwrap();
            let rows = l.rows_cap();
            assert!(4 * activation_floats(&s, rows) <= max_binding(&small), "limit {bind}: {rows} rows overflow");
            assert!(4 * activation_floats(&s, rows + 1) > max_binding(&small), "limit {bind}: {rows} rows is not the most that fit");
        }
    }

    #[test]
    fn dims_slots_are_distinct_and_every_static_one_is_written_once() {
        let s = spec(&[6, 5, 4, 3]);
        let l = Layout::new(&s, &adam(), 8, &wgpu::Limits::default()).unwrap();
        let mut written = Vec::new();
        l.static_dims(&s, &adam(), |slot, bytes| written.push((slot, bytes.to_vec())));
        let slots: Vec<usize> = written.iter().map(|w| w.0).collect();
        // forward and weight_grad of every layer, backward_data of all but the first
        assert_eq!(slots, [0, 6, 1, 4, 7, 2, 5, 8, 9, 10]);
        assert!((0..5).all(|i| l.gather_slot(i) > l.opt_slot()) && l.gather_slot(4) < l.dims_slots());
        let fwd: MatmulDims = bytemuck::pod_read_unaligned(&written[0].1);
        assert_eq!((fwd.n, fwd.k, fwd.a_off, fwd.c_off, fwd.b_off, fwd.bias_off), (5, 6, 0, l.layer_off(1) as u32, 0, l.param_off(0).1 as u32));
        let opt: OptimDims = bytemuck::pod_read_unaligned(&written[9].1);
        assert_eq!((opt.count, opt.kind), (l.param_len() as u32, OptimizerKind::Adam.code()));
    }

    /// The max-norm kernel's table: every layer's weight offset, inputs, first row and rows,
    /// the rows numbered across layers; the clipping and max-norm values reach the dims.
    #[test]
    fn weight_rows_and_regulariser_dims() {
        let s = spec(&[6, 5, 4, 3]);
        let o = OptimizerSpec { kind: OptimizerKind::AdamW, max_norm: 2.5, clip_norm: Some(0.75), ..Default::default() };
        let l = Layout::new(&s, &o, 8, &wgpu::Limits::default()).unwrap();
        let (w0, w1, w2) = (l.param_off(0).0 as u32, l.param_off(1).0 as u32, l.param_off(2).0 as u32);
        assert_eq!(l.weight_rows(), (vec![w0, 6, 0, 5, w1, 5, 5, 4, w2, 4, 9, 3], 12));
        let mut opt = None;
        l.static_dims(&s, &o, |slot, bytes| if slot == l.opt_slot() { opt = Some(bytemuck::pod_read_unaligned::<OptimDims>(bytes)) });
        let opt = opt.unwrap();
        assert_eq!((opt.kind, opt.max_norm, opt.clip_norm), (4, 2.5, 0.75));
    }

    #[test]
    fn params_and_state_round_trip_with_zero_gaps() {
        let s = spec(&[3, 5, 2]);
        let l = Layout::new(&s, &adam(), 4, &wgpu::Limits::default()).unwrap();
        let mut x = 0.0;
        let mut next = || {
            x += 1.0;
            x
        };
        let mut p = Params::zeros(&s);
        for layer in &mut p.layers {
            layer.weight.iter_mut().chain(layer.bias.iter_mut()).for_each(|v| *v = next());
        }
        let flat = l.flatten_params(&p);
        assert_eq!(flat.len(), l.param_len());
        assert_eq!(flat.iter().filter(|&&v| v != 0.0).count(), s.num_params(), "gaps are zero");
        let f32s: Vec<f32> = flat.iter().map(|&v| v as f32).collect();
        assert_eq!(l.params_of(&f32s), p);
        let st = OptimState { step: 7, slots: p.layers.iter().map(|t| [vec![t.weight.clone(), t.weight.clone()], vec![t.bias.clone(), t.bias.clone()]]).collect() };
        let flat = l.flatten_state(&st);
        assert_eq!(flat.len(), l.state_len());
        let f32s: Vec<f32> = flat.iter().map(|&v| v as f32).collect();
        assert_eq!(l.state_of(&f32s, 7), st);
    }
}
