//! Data augmentation on the device (`shaders/augment.wgsl`, the mirror of `nn::augment`): its
//! three kernels, built only when a run augments, their dims, the work buffers of one
//! micro-batch (a copy of the gathered pictures, the raw and the row-smoothed displacement
//! fields) and the Gaussian's taps. The training set stays resident as bytes: the kernels work
//! on the gathered batch.

use super::device::{Device, storage};
use super::layout::max_binding;
use super::kernels::{AUGMENT, AugmentDims, Kernel, ParamBlocks, RANDOM, bind, kernel};
use super::scheduler::grid;
use crate::nn::augment::Augment;
use anyhow::{Result, bail};

pub(super) struct AugmentPass {
    elastic: bool,
    prepare: Kernel,
    rows: Kernel,
    warp: Kernel,
    /// One bind group per kernel (each kernel's own layout), over the same buffers.
    groups: [wgpu::BindGroup; 3],
    /// Held with the bind groups that read them.
    _buffers: Vec<wgpu::Buffer>,
}

impl AugmentPass {
    /// The pass for `aug` on `dev`, whose pictures are its inputs.
    pub(super) fn new(dev: &Device, aug: &Augment) -> Result<AugmentPass> {
        let n = aug.height * aug.width;
        if n != dev.spec.input_size() {
            bail!("--augment: pictures of {}×{} are {n} values, the model takes {}", aug.height, aug.width, dev.spec.input_size());
        }
        let rows = dev.layout.rows_cap();
        let gpu = &dev.gpu;
        // the displacement fields of a micro-batch, two floats a pixel, in one binding each
        let fields_bytes = 8 * rows * n;
        if aug.elastic() && fields_bytes > max_binding(&gpu.limits) {
            bail!(
                "--augment elastic: the displacement fields of {rows} pictures of {}×{} take {fields_bytes} bytes, more than adapter '{}' binds ({} bytes); use a smaller batch or no elastic deformation",
                aug.height, aug.width, gpu.info.name, max_binding(&gpu.limits)
            );
        }
        let src = storage(gpu, "augment source", 4 * rows * n);
        let fields = if aug.elastic() { 8 * rows * n } else { 16 };
        let field = storage(gpu, "augment field", fields);
        let smooth = storage(gpu, "augment smoothed field", fields);
        let taps_f32: Vec<f32> = aug.taps().iter().map(|&g| g as f32).collect();
        let taps = storage(gpu, "augment taps", 4 * taps_f32.len().max(1));
        gpu.queue.write_buffer(&taps, 0, bytemuck::cast_slice(&taps_f32));
        let s = &aug.spec;
        let key = aug.key();
        let d = AugmentDims {
            h: aug.height as u32,
            w: aug.width as u32,
            off: dev.layout.layer_off(0) as u32,
            radius: (aug.taps().len() / 2) as u32,
            shift: s.shift as f32,
            rotate: s.rotate.to_radians() as f32,
            scale: s.scale as f32,
            alpha: s.elastic_alpha as f32,
            background: dev.spec.input_norm.apply(0.0) as f32,
            elastic: aug.elastic() as u32,
            key0: key[0],
            key1: key[1],
        };
        let dims = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("augment dims"),
            size: 64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        gpu.queue.write_buffer(&dims, 0, bytemuck::bytes_of(&d));
        let source = format!("{RANDOM}\n{AUGMENT}");
        let size = std::mem::size_of::<AugmentDims>() as u64;
        // dims, step, then acts, src, field, smooth, taps (read)
        let storage_kinds = [false, false, false, false, true];
        let build = |entry| kernel(gpu, &source, entry, size, &storage_kinds, ParamBlocks::Uniform);
        let (prepare, rows_k, warp) = (build("augment_prepare")?, build("augment_rows")?, build("augment_warp")?);
        let buffers = [&dev.acts, &src, &field, &smooth, &taps];
        let groups = [&prepare, &rows_k, &warp].map(|k| bind(gpu, k, &dims, &dev.steps, &buffers));
        Ok(AugmentPass { elastic: aug.elastic(), prepare, rows: rows_k, warp, groups, _buffers: vec![src, field, smooth, taps, dims] })
    }

    /// Records the passes for a micro-batch of `rows` pictures whose step entry is at `eoff`;
    /// returns the dispatches recorded.
    pub(super) fn encode(&self, dev: &Device, pass: &mut wgpu::ComputePass, rows: usize, eoff: u32) -> u64 {
        let (gx, gy) = grid((rows * dev.spec.input_size()).div_ceil(256).max(1) as u32);
        let mut n = 0;
        for (k, bg) in [&self.prepare, &self.rows, &self.warp].into_iter().zip(&self.groups) {
            if std::ptr::eq(k, &self.rows) && !self.elastic {
                continue;
            }
            pass.set_pipeline(&k.pipeline);
            pass.set_bind_group(0, bg, &[0, eoff]);
            pass.dispatch_workgroups(gx, gy, 1);
            n += 1;
        }
        n
    }
}
