//! The WGSL kernels of `shaders/`, their uniform structs (mirrored byte for byte from the
//! WGSL) and their compute pipelines. Each kernel binds two uniforms with dynamic offsets: its
//! static dimensions and the per-step entry, so one bind group serves every dispatch.

use super::context::Gpu;
use super::kernel_config::KernelConfig;
use super::{matmul_tiled, matmul_vec4};
use anyhow::{Result, bail};
use bytemuck::{Pod, Zeroable};

pub const COMMON: &str = include_str!("../../shaders/common.wgsl");
pub const GATHER: &str = include_str!("../../shaders/gather.wgsl");
pub const MATMUL: &str = include_str!("../../shaders/matmul.wgsl");
pub const LOSS: &str = include_str!("../../shaders/loss.wgsl");
pub const OPTIMIZER: &str = include_str!("../../shaders/optimizer.wgsl");

/// `Step` in common.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct StepUniform {
    pub idx_offset: u32,
    pub rows: u32,
    pub stat_offset: u32,
    pub accumulate: u32,
    pub scale: f32,
    pub lr: f32,
    pub c1: f32,
    pub c2: f32,
    pub use_index: u32,
    pub train: u32,
    pub _pad: [u32; 2],
}

/// `GatherDims` in gather.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct GatherDims {
    pub len: u32,
    pub words: u32,
    pub is_bytes: u32,
    pub x_off: u32,
    /// The model's input normalisation, x = (p − mean) / std.
    pub mean: f32,
    pub std: f32,
    pub _pad: [u32; 2],
}

/// `MatmulDims` in common.wgsl (shared by matmul.wgsl and matmul_vec4.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct MatmulDims {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub a_off: u32,
    pub b_off: u32,
    pub c_off: u32,
    pub bias_off: u32,
    pub act: u32,
}

/// `LossDims` in loss.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct LossDims {
    pub n: u32,
    pub off: u32,
    pub act: u32,
    pub loss: u32,
}

/// `OptimDims` in optimizer.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct OptimDims {
    pub count: u32,
    pub kind: u32,
    pub momentum: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    pub weight_decay: f32,
    pub one_minus_beta1: f32,
    pub one_minus_beta2: f32,
    pub _pad: [u32; 2],
}

/// The three matrix products of a layer (in this order, `as usize`, in the backend's per-layer
/// vec4 choices).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Matmul {
    Forward,
    BackwardData,
    WeightGrad,
}

/// A compute pipeline and the layout of its bind group.
pub struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    pub name: &'static str,
}

/// How a kernel binds its two parameter blocks (dims and step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamBlocks {
    /// As uniform buffers: the usual choice.
    Uniform,
    /// As read-only storage buffers, for kernels that branch and loop on their parameters.
    /// lavapipe (Mesa 22) inlines uniform-buffer values that control branches or loops and,
    /// when that removes half the shader, recompiles it at every pipeline bind: for the output
    /// layer (loss and activation switches, loops over the outputs) that cost ~40 ms per
    /// training step. It never inlines storage-buffer values.
    Storage,
}

/// Builds a kernel whose bindings are: 0 = dims, 1 = step (both with dynamic offsets, as
/// `blocks` says), then one storage buffer per entry of `storage` (true = read-only).
pub fn kernel(gpu: &Gpu, source: &str, entry: &'static str, dims_size: u64, storage: &[bool], blocks: ParamBlocks) -> Result<Kernel> {
    let uniform = |binding: u32, size: u64| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: match blocks {
                ParamBlocks::Uniform => wgpu::BufferBindingType::Uniform,
                ParamBlocks::Storage => wgpu::BufferBindingType::Storage { read_only: true },
            },
            has_dynamic_offset: true,
            min_binding_size: wgpu::BufferSize::new(size),
        },
        count: None,
    };
    let mut entries = vec![uniform(0, dims_size), uniform(1, std::mem::size_of::<StepUniform>() as u64)];
    for (i, &read_only) in storage.iter().enumerate() {
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: 2 + i as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        });
    }
    gpu.scoped(&format!("compiling kernel '{entry}'"), || {
        let module = gpu.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(entry),
            source: wgpu::ShaderSource::Wgsl(format!("{COMMON}\n{source}").into()),
        });
        let layout = gpu.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(entry), entries: &entries });
        let pl = gpu.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(entry),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = gpu.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: Some(&pl),
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        Kernel { pipeline, layout, name: entry }
    })
}

/// A bind group for `k` in the layout `kernel` builds: `dims` and `steps` at dynamic offsets,
/// then `storage` in binding order.
pub fn bind(gpu: &Gpu, k: &Kernel, dims: &wgpu::Buffer, steps: &wgpu::Buffer, storage: &[&wgpu::Buffer]) -> wgpu::BindGroup {
    fn uniform(binding: u32, buf: &wgpu::Buffer, size: u64) -> wgpu::BindGroupEntry<'_> {
        wgpu::BindGroupEntry {
            binding,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: buf, offset: 0, size: wgpu::BufferSize::new(size) }),
        }
    }
    // the dims struct of every kernel is at most 48 bytes
    let mut entries = vec![uniform(0, dims, 48), uniform(1, steps, std::mem::size_of::<StepUniform>() as u64)];
    for (i, b) in storage.iter().enumerate() {
        entries.push(wgpu::BindGroupEntry { binding: 2 + i as u32, resource: b.as_entire_binding() });
    }
    gpu.device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(k.name), layout: &k.layout, entries: &entries })
}

/// A vec4 matmul kernel (register-blocked or tiled), the output tile (rows, columns) of one of its workgroups and whether
/// workgroup x runs over the tile rows (see `matmul_vec4::Generated`).
pub struct Vec4Kernel {
    pub kernel: Kernel,
    pub tile: (u32, u32),
    pub rows_in_x: bool,
}

/// Every kernel of a training step. The matmuls come twice: the scalar kernels work for every
/// shape; the vec4 kernels (if the config asks for them) serve the layers whose shapes allow.
pub struct Kernels {
    pub gather: Kernel,
    pub forward: Kernel,
    pub backward_data: Kernel,
    pub weight_grad: Kernel,
    pub forward4: Option<Vec4Kernel>,
    pub backward_data4: Option<Vec4Kernel>,
    pub weight_grad4: Option<Vec4Kernel>,
    pub output_layer: Kernel,
    pub update: Kernel,
    pub config: KernelConfig,
}

impl Kernels {
    pub fn new(gpu: &Gpu, config: KernelConfig) -> Result<Kernels> {
        if let Some(why) = config.unsupported(&gpu.info, gpu.features, &gpu.limits) {
            bail!("kernel configuration {} {why}", config.name().unwrap_or("(custom)"));
        }
        let mm = std::mem::size_of::<MatmulDims>() as u64;
        // matmul bindings: acts, pre, dlt, params (read), grads
        let mm_storage = [false, false, false, true, false];
        let vec4 = |g: matmul_vec4::Generated, entry: &'static str| -> Result<Option<Vec4Kernel>> {
            if !config.vec4 {
                return Ok(None);
            }
            let source = format!("{}\n{}", matmul_vec4::HEADER, g.source);
            Ok(Some(Vec4Kernel { kernel: kernel(gpu, &source, entry, mm, &mm_storage, ParamBlocks::Uniform)?, tile: g.tile, rows_in_x: g.rows_in_x }))
        };
        let [f, b, w] = match &config.tile {
            Some(t) => [matmul_tiled::forward(t), matmul_tiled::backward_data(t), matmul_tiled::weight_grad(t)],
            None => [matmul_vec4::forward(&config), matmul_vec4::backward_data(&config), matmul_vec4::weight_grad(&config)],
        };
        Ok(Kernels {
            forward4: vec4(f, "forward")?,
            backward_data4: vec4(b, "backward_data")?,
            weight_grad4: vec4(w, "weight_grad")?,
            config,
            // images, labels, index (read), acts, batch_labels
            gather: kernel(gpu, GATHER, "gather", std::mem::size_of::<GatherDims>() as u64, &[true, true, true, false, false], ParamBlocks::Uniform)?,
            forward: kernel(gpu, MATMUL, "forward", mm, &mm_storage, ParamBlocks::Uniform)?,
            backward_data: kernel(gpu, MATMUL, "backward_data", mm, &mm_storage, ParamBlocks::Uniform)?,
            weight_grad: kernel(gpu, MATMUL, "weight_grad", mm, &mm_storage, ParamBlocks::Uniform)?,
            // pre, acts, dlt, batch_labels (read), row_loss, row_pred
            output_layer: kernel(gpu, LOSS, "output_layer", std::mem::size_of::<LossDims>() as u64, &[false, false, false, true, false, false], ParamBlocks::Storage)?,
            // params, grads (read), state
            update: kernel(gpu, OPTIMIZER, "update", std::mem::size_of::<OptimDims>() as u64, &[false, true, false], ParamBlocks::Uniform)?,
        })
    }
}
