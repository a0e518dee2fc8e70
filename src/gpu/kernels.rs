//! The WGSL kernels of `shaders/`, their uniform structs (mirrored byte for byte from the
//! WGSL) and their compute pipelines. Each kernel binds two uniforms with dynamic offsets: its
//! static dimensions and the per-step entry, so one bind group serves every dispatch.

use super::context::Gpu;
use super::matmul::vec4::VEC4_HEADER;
use super::matmul::{Grid, KernelConfig, Matmul, scalar};
use anyhow::{Result, bail};
use bytemuck::{Pod, Zeroable};

pub const COMMON: &str = include_str!("../../shaders/common.wgsl");
pub const GATHER: &str = include_str!("../../shaders/gather.wgsl");
pub const LOSS: &str = include_str!("../../shaders/loss.wgsl");
pub const OPTIMIZER: &str = include_str!("../../shaders/optimizer.wgsl");
pub const RANDOM: &str = include_str!("../../shaders/random.wgsl");
pub const DROPOUT: &str = include_str!("../../shaders/dropout.wgsl");
pub const AUGMENT: &str = include_str!("../../shaders/augment.wgsl");

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
    pub row_base: u32,
    pub t: u32,
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
    /// Label smoothing ε (`ModelSpec::label_smoothing`).
    pub smoothing: f32,
    pub _pad: [u32; 3],
}

/// `DropoutDims` in dropout.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct DropoutDims {
    pub n: u32,
    pub off: u32,
    pub layer: u32,
    pub threshold: u32,
    pub scale: f32,
    pub act: u32,
    pub key: [u32; 2],
}

/// `AugmentDims` in augment.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct AugmentDims {
    pub h: u32,
    pub w: u32,
    pub off: u32,
    pub radius: u32,
    pub shift: f32,
    pub rotate: f32,
    pub scale: f32,
    pub alpha: f32,
    pub background: f32,
    pub elastic: u32,
    pub key0: u32,
    pub key1: u32,
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
    /// Global-norm clipping threshold C (0 = off): the update reads the scale `clip_finish` wrote.
    pub clip_norm: f32,
    /// Max-norm constraint c (0 = off): `max_norm` runs after the update.
    pub max_norm: f32,
}

/// The storage bindings of optimizer.wgsl's kernels (true = read-only): params, grads (the
/// update writes the clipped gradients back), state, clip, weight rows.
const OPT_STORAGE: [bool; 5] = [false, false, false, false, true];

/// Workgroups of `clip_partials` for `count` parameters (a multiple of 4): one per 256 vec4s,
/// at most `CLIP_PARTS_MAX`; `clip_parts` in optimizer.wgsl computes the same.
pub fn clip_parts(count: usize) -> usize {
    (count / 4).div_ceil(256).clamp(1, CLIP_PARTS_MAX)
}
/// Mirrors `CLIP_PARTS_MAX` in optimizer.wgsl.
pub const CLIP_PARTS_MAX: usize = 1024;
/// Floats of the clip buffer: the scale, the norm, two spare, then the partial sums.
pub const CLIP_FLOATS: usize = 4 + CLIP_PARTS_MAX;

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

/// The runtime bounds checks naga puts into the matmul kernels on `backend`. On Vulkan none:
/// the host proves every index in range (`Layout::check_matmul_extents`, and micro-batches of 1
/// to `rows_cap` rows), and without them the products ran 15–20 % faster on lavapipe and 8 %
/// on SwiftShader (docs/BENCHMARKS.md). On the GL backend the two measured within noise, so
/// the checks stay; elsewhere (Metal, DX12, WebGPU) nothing was measured, so they stay too.
pub fn matmul_checks(backend: wgpu::Backend) -> wgpu::ShaderRuntimeChecks {
    if backend == wgpu::Backend::Vulkan { wgpu::ShaderRuntimeChecks::unchecked() } else { wgpu::ShaderRuntimeChecks::checked() }
}

/// Builds a kernel whose bindings are: 0 = dims, 1 = step (both with dynamic offsets, as
/// `blocks` says), then one storage buffer per entry of `storage` (true = read-only), with
/// naga's runtime bounds checks as `checks` says.
pub fn kernel(gpu: &Gpu, source: &str, entry: &'static str, dims_size: u64, storage: &[bool], blocks: ParamBlocks) -> Result<Kernel> {
    kernel_with_checks(gpu, source, entry, dims_size, storage, blocks, wgpu::ShaderRuntimeChecks::checked())
}

fn kernel_with_checks(gpu: &Gpu, source: &str, entry: &'static str, dims_size: u64, storage: &[bool], blocks: ParamBlocks, checks: wgpu::ShaderRuntimeChecks) -> Result<Kernel> {
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
        let desc = wgpu::ShaderModuleDescriptor { label: Some(entry), source: wgpu::ShaderSource::Wgsl(format!("{COMMON}\n{source}").into()) };
        // SAFETY: the caller's `checks` are off only for the matmul kernels, whose every index
        // the host proves in range (`matmul_checks`)
        let module = unsafe { gpu.device.create_shader_module_trusted(desc, checks) };
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

/// A matmul kernel and how its workgroups cover its product's output.
pub struct MatmulKernel {
    pub kernel: Kernel,
    pub grid: Grid,
}

/// Every kernel of a training step. The matmuls come twice: the scalar kernels work for every
/// shape; the configuration's vec4 kernels (unless it is `scalar`) serve the layers whose
/// shapes allow them (`KernelConfig::runs_vec4`). Both indexed by `Matmul as usize`.
pub struct Kernels {
    pub gather: Kernel,
    pub scalar: [MatmulKernel; 3],
    pub vec4: Option<[MatmulKernel; 3]>,
    pub output_layer: Kernel,
    pub update: Kernel,
    /// Gradient clipping by global norm: per-block partial sums of g², then their sum and the scale.
    pub clip_partials: Kernel,
    pub clip_finish: Kernel,
    /// The max-norm constraint on every weight row.
    pub max_norm: Kernel,
    pub config: KernelConfig,
}

impl Kernels {
    pub fn new(gpu: &Gpu, config: KernelConfig) -> Result<Kernels> {
        if let Some(why) = config.unsupported(&gpu.info, gpu.features, &gpu.limits) {
            bail!("kernel configuration {} {why}", config.name().map_or("(custom)", |n| n.as_str()));
        }
        let mm = std::mem::size_of::<MatmulDims>() as u64;
        let opt = std::mem::size_of::<OptimDims>() as u64;
        // matmul bindings: acts, pre, dlt, params (read), grads
        let mm_storage = [false, false, false, true, false];
        // the three products of one variant, from their generated sources
        let matmuls = |generate: &dyn Fn(Matmul) -> Option<(String, Grid)>| -> Result<Option<[MatmulKernel; 3]>> {
            let mut out = Vec::new();
            for kind in Matmul::ALL {
                let Some((source, grid)) = generate(kind) else { return Ok(None) };
                let checks = matmul_checks(gpu.info.backend);
                out.push(MatmulKernel { kernel: kernel_with_checks(gpu, &source, kind.entry(), mm, &mm_storage, ParamBlocks::Uniform, checks)?, grid });
            }
            Ok(out.try_into().ok())
        };
        let scalar = matmuls(&|kind| {
            let g = scalar::generate(kind);
            Some((g.source, g.grid))
        })?
        .expect("the scalar kernels exist for every product");
        let vec4 = matmuls(&|kind| config.generate(kind).map(|g| (format!("{VEC4_HEADER}\n{}", g.source), g.grid)))?;
        Ok(Kernels {
            scalar,
            vec4,
            config,
            // images, labels, index (read), acts, batch_labels
            gather: kernel(gpu, GATHER, "gather", std::mem::size_of::<GatherDims>() as u64, &[true, true, true, false, false], ParamBlocks::Uniform)?,
            // pre, acts, dlt, batch_labels (read), row_loss, row_pred
            output_layer: kernel(gpu, LOSS, "output_layer", std::mem::size_of::<LossDims>() as u64, &[false, false, false, true, false, false], ParamBlocks::Storage)?,
            // params, grads, state, clip (scale, norm, partial sums), weight rows (read): one
            // layout for the four entry points of optimizer.wgsl, so one bind group serves them
            update: kernel(gpu, OPTIMIZER, "update", opt, &OPT_STORAGE, ParamBlocks::Uniform)?,
            clip_partials: kernel(gpu, OPTIMIZER, "clip_partials", opt, &OPT_STORAGE, ParamBlocks::Uniform)?,
            clip_finish: kernel(gpu, OPTIMIZER, "clip_finish", opt, &OPT_STORAGE, ParamBlocks::Uniform)?,
            max_norm: kernel(gpu, OPTIMIZER, "max_norm", opt, &OPT_STORAGE, ParamBlocks::Uniform)?,
        })
    }
}
