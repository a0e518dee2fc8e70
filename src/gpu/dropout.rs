//! Dropout on the device (`shaders/dropout.wgsl`, the mirror of `nn::dropout`): its two
//! kernels, built only when a run has dropout, the dims of every layer with a rate (two slots
//! per layer: forward on A, backward on δ) and their bind groups. The masks are never stored:
//! each kernel draws them again from the step and the element, as the CPU does.

use super::device::Device;
use super::kernels::{DROPOUT, DropoutDims, Kernel, MatmulDims, ParamBlocks, RANDOM, bind, kernel};
use super::scheduler::grid;
use crate::nn::dropout::Dropout;
use crate::nn::model::Activation;
use anyhow::Result;

/// Which of the two kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Direction {
    /// A_l ← A_l ⊙ m_l, after layer l's product (after the gather for l = 0).
    Forward = 0,
    /// δ_l ← δ_l ⊙ f'(Z_l) ⊙ m_l, after the backward product that produced δ_l.
    Backward = 1,
}

pub(super) struct DropoutPass {
    rates: Dropout,
    forward: Kernel,
    backward: Kernel,
    /// Held with the bind groups that read it.
    _dims: wgpu::Buffer,
    forward_bg: wgpu::BindGroup,
    backward_bg: wgpu::BindGroup,
}

impl DropoutPass {
    /// The pass for `rates` on `dev` (None when it drops nothing). Also rewrites the static dims
    /// of the backward products: where the layer below has dropout, their epilogue applies no
    /// derivative (identity), as the backward dropout kernel applies it on f(Z).
    pub(super) fn new(dev: &Device, rates: &Dropout) -> Result<Option<DropoutPass>> {
        dev.write_static_dims();
        if !rates.is_on() {
            return Ok(None);
        }
        let s = &dev.spec;
        // the backward products whose lower layer has dropout: layers l ≥ 2 with rate(l − 1) > 0
        let dropped_below: Vec<usize> = (2..s.layers.len()).filter(|&l| rates.rate(l - 1) > 0.0).map(|l| dev.layout.bwd_slot(l)).collect();
        dev.layout.static_dims(s, &dev.opt, |slot, bytes| {
            if dropped_below.contains(&slot) {
                let mut d: MatmulDims = bytemuck::pod_read_unaligned(bytes);
                d.act = Activation::Identity.code();
                dev.write_dims(slot, &d);
            }
        });
        let size = std::mem::size_of::<DropoutDims>() as u64;
        let source = format!("{RANDOM}\n{DROPOUT}");
        // dims (dynamic), step (dynamic), acts, pre (read), dlt
        let storage = [false, true, false];
        let forward = kernel(&dev.gpu, &source, "dropout_forward", size, &storage, ParamBlocks::Uniform)?;
        let backward = kernel(&dev.gpu, &source, "dropout_backward", size, &storage, ParamBlocks::Uniform)?;
        let align = dev.layout.align();
        let dims = dev.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dropout dims"),
            // `bind` binds 48 bytes at each offset
            size: (2 * s.layers.len() * align + 64) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        for l in 0..s.layers.len() - 1 {
            let d = DropoutDims {
                n: s.layers[l] as u32,
                off: dev.layout.layer_off(l) as u32,
                layer: l as u32,
                threshold: rates.threshold(l),
                scale: rates.keep_scale::<f32>(l),
                // the input has no activation (and no backward pass)
                act: if l == 0 { Activation::Identity.code() } else { s.activations[l - 1].code() },
                key: rates.key(),
            };
            for dir in [Direction::Forward, Direction::Backward] {
                dev.gpu.queue.write_buffer(&dims, Self::offset(align, l, dir) as u64, bytemuck::bytes_of(&d));
            }
        }
        let buffers = [&dev.acts, &dev.pre, &dev.dlt];
        let forward_bg = bind(&dev.gpu, &forward, &dims, &dev.steps, &buffers);
        let backward_bg = bind(&dev.gpu, &backward, &dims, &dev.steps, &buffers);
        Ok(Some(DropoutPass { rates: rates.clone(), forward, backward, _dims: dims, forward_bg, backward_bg }))
    }

    fn offset(align: usize, l: usize, dir: Direction) -> usize {
        (2 * l + dir as usize) * align
    }

    /// Whether layer `l`'s activations (0 = the input) are dropped.
    pub(super) fn drops(&self, l: usize) -> bool {
        self.rates.rate(l) > 0.0
    }

    /// Records the kernel `dir` on layer `l` for a micro-batch of `rows` rows whose step entry
    /// is at `eoff`.
    pub(super) fn encode(&self, dev: &Device, pass: &mut wgpu::ComputePass, dir: Direction, l: usize, rows: usize, eoff: u32) {
        let (k, bg) = match dir {
            Direction::Forward => (&self.forward, &self.forward_bg),
            Direction::Backward => (&self.backward, &self.backward_bg),
        };
        pass.set_pipeline(&k.pipeline);
        pass.set_bind_group(0, bg, &[Self::offset(dev.layout.align(), l, dir) as u32, eoff]);
        let (gx, gy) = grid((rows * dev.spec.layers[l]).div_ceil(256).max(1) as u32);
        pass.dispatch_workgroups(gx, gy, 1);
    }
}
