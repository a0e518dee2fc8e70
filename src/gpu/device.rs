//! The model on the device, shared by the other parts of the backend: the wgpu device, the
//! compiled kernels, the model and optimiser with their `Layout`, and the buffers sized by it
//! once, at construction: parameters, gradients and optimiser state, the per-layer work buffers
//! (activations, pre-activations, deltas), the batch's labels, the dims and step-entry uniforms,
//! and the bind groups of the matmul and update kernels over them. Also the plain transfers:
//! writing dims and f32 data, reading buffers back.

use super::context::Gpu;
use super::augment::AugmentPass;
use super::dropout::DropoutPass;
use super::kernels::{CLIP_FLOATS, Kernels, bind};
use super::layout::{Layout, MAX_ENTRIES};
use super::matmul::{KernelConfig, Matmul};
use crate::nn::model::ModelSpec;
use crate::nn::optim::OptimizerSpec;
use anyhow::{Context, Result};

pub(super) struct Device {
    pub(super) gpu: Gpu,
    pub(super) k: Kernels,
    pub(super) spec: ModelSpec,
    pub(super) opt: OptimizerSpec,
    pub(super) layout: Layout,
    /// Per weight layer: whether forward, backward_data, weight_grad (indexed by `Matmul as
    /// usize`) use the vec4 kernels.
    vec4: Vec<[bool; 3]>,
    pub(super) params: wgpu::Buffer,
    pub(super) grads: wgpu::Buffer,
    pub(super) state: wgpu::Buffer,
    pub(super) acts: wgpu::Buffer,
    pub(super) pre: wgpu::Buffer,
    pub(super) dlt: wgpu::Buffer,
    pub(super) batch_labels: wgpu::Buffer,
    pub(super) dims: wgpu::Buffer,
    pub(super) steps: wgpu::Buffer,
    /// Gradient clipping's scale, norm and partial sums (`kernels::CLIP_FLOATS`).
    pub(super) clip: wgpu::Buffer,
    pub(super) matmul_bg: wgpu::BindGroup,
    /// The update and the kernels around it (clipping, max-norm): one layout, one bind group.
    pub(super) update_bg: wgpu::BindGroup,
    /// Dropout's kernels, where the run has dropout (`GpuBackend::set_dropout`).
    pub(super) dropout: Option<DropoutPass>,
    /// Augmentation's kernels, where the run augments its pictures (`GpuBackend::set_augment`).
    pub(super) augment: Option<AugmentPass>,
}

/// A storage buffer of at least `bytes` (a multiple of 16, never empty) that copies both ways.
pub(super) fn storage(gpu: &Gpu, label: &str, bytes: usize) -> wgpu::Buffer {
    gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (bytes.max(16) as u64).next_multiple_of(16),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}

impl Device {
    /// Compiles the kernels of `config`, lays the model out for micro-batches of `batch` rows and
    /// allocates its buffers (dims not yet written: `write_static_dims`).
    pub(super) fn new(gpu: Gpu, spec: &ModelSpec, opt: &OptimizerSpec, batch: usize, config: KernelConfig) -> Result<Device> {
        let k = Kernels::new(&gpu, config)?;
        let layout = Layout::new(spec, opt, batch, &gpu.limits)?;
        layout.check_matmul_extents()?;
        // per layer, the vec4 kernels where their shape conditions hold (matmul_vec4.wgsl)
        let vec4 = (0..spec.num_layers())
            .map(|i| {
                let (n_in, n_out) = spec.layer_dims(i);
                [config.runs_vec4(n_in, n_out); 3]
            })
            .collect();
        let params = storage(&gpu, "params", 4 * layout.param_len());
        let grads = storage(&gpu, "grads", 4 * layout.param_len());
        let state = storage(&gpu, "optimizer state", 4 * layout.state_len());
        let acts = storage(&gpu, "activations", 4 * layout.acts_len());
        let pre = storage(&gpu, "pre-activations", 4 * layout.acts_len());
        let dlt = storage(&gpu, "deltas", 4 * layout.acts_len());
        let batch_labels = storage(&gpu, "batch labels", 4 * layout.rows_cap());
        let align = layout.align();
        let dims = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dims"),
            size: (layout.dims_slots() * align) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let steps = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("steps"),
            size: (MAX_ENTRIES * align) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let matmul_bg = bind(&gpu, &k.scalar[Matmul::Forward as usize].kernel, &dims, &steps, &[&acts, &pre, &dlt, &params, &grads]);
        let clip = storage(&gpu, "gradient clipping", 4 * CLIP_FLOATS);
        // `Layout::weight_rows`' table, for the max-norm constraint (static; the bind group keeps it)
        let (table, _) = layout.weight_rows();
        let weight_rows = storage(&gpu, "weight rows", 4 * table.len());
        gpu.queue.write_buffer(&weight_rows, 0, bytemuck::cast_slice(&table));
        let update_bg = bind(&gpu, &k.update, &dims, &steps, &[&params, &grads, &state, &clip, &weight_rows]);
        Ok(Device {
            gpu,
            k,
            spec: spec.clone(),
            opt: opt.clone(),
            layout,
            vec4,
            params,
            grads,
            state,
            acts,
            pre,
            dlt,
            batch_labels,
            dims,
            steps,
            clip,
            matmul_bg,
            update_bg,
            dropout: None,
            augment: None,
        })
    }

    /// Whether weight layer `i` (0-based) runs `kind` with a vec4 kernel.
    pub(super) fn uses_vec4(&self, i: usize, kind: Matmul) -> bool {
        self.vec4[i][kind as usize]
    }

    /// Writes `v` into dims slot `slot`.
    pub(super) fn write_dims<T: bytemuck::Pod>(&self, slot: usize, v: &T) {
        self.gpu.queue.write_buffer(&self.dims, (slot * self.layout.align()) as u64, bytemuck::bytes_of(v));
    }

    /// Writes the dims of every matmul, the output layer and the optimiser.
    pub(super) fn write_static_dims(&self) {
        let align = self.layout.align();
        self.layout.static_dims(&self.spec, &self.opt, |slot, bytes| self.gpu.queue.write_buffer(&self.dims, (slot * align) as u64, bytes));
    }

    pub(super) async fn read_f32(&self, buf: &wgpu::Buffer, offset: usize, len: usize) -> Result<Vec<f32>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let rb = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: 4 * len as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buf, 4 * offset as u64, &rb, 0, 4 * len as u64);
        self.gpu.queue.submit([enc.finish()]);
        let bytes = map_read(&self.gpu, &rb, 4 * len as u64).await?;
        self.gpu.check("reading back")?;
        Ok(bytemuck::cast_slice(&bytes).to_vec())
    }

    pub(super) fn write_f32(&self, buf: &wgpu::Buffer, offset: usize, v: &[f64]) {
        let f: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        self.gpu.queue.write_buffer(buf, 4 * offset as u64, bytemuck::cast_slice(&f));
    }
}

/// Maps a MAP_READ buffer after the queue's work and returns its first `len` bytes.
async fn map_read(gpu: &Gpu, buf: &wgpu::Buffer, len: u64) -> Result<Vec<u8>> {
    Ok(map_read_timed(gpu, buf, len).await?.0)
}

/// `map_read`, also returning how long the copy out of mapped memory took.
///
/// Natively the device is polled until the queue's work is done, so the mapping is ready when
/// it is awaited (and `wait` returns at once). In a web page `poll` does nothing and the
/// browser resolves the mapping later: the future yields to it instead of blocking.
pub(super) async fn map_read_timed(gpu: &Gpu, buf: &wgpu::Buffer, len: u64) -> Result<(Vec<u8>, std::time::Duration)> {
    let slice = buf.slice(0..len);
    let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    // on failure, the device's own account (device lost, out of memory, validation) comes first
    let polled = gpu.device.poll(wgpu::PollType::wait_indefinitely());
    let mapped = rx.receive().await.context("GPU readback callback never ran");
    if polled.is_err() || !matches!(mapped, Ok(Ok(()))) {
        gpu.check("waiting for results")?;
    }
    polled.map_err(|e| anyhow::anyhow!("GPU error while waiting for results: {e}"))?;
    mapped?.map_err(|e| anyhow::anyhow!("GPU error: cannot map the readback buffer: {e}"))?;
    let t = web_time::Instant::now();
    let out = slice.get_mapped_range().map_err(|e| anyhow::anyhow!("GPU readback: {e}"))?.to_vec();
    buf.unmap();
    Ok((out, t.elapsed()))
}

/// Runs a readback future to its end where blocking is allowed (natively: the device was
/// polled, so it is ready at once). A web page's main thread must not block: there the
/// `_async` methods are awaited instead, and this says so.
pub(super) fn wait<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        pollster::block_on(f)
    }
    #[cfg(target_arch = "wasm32")]
    {
        drop(f);
        anyhow::bail!("in a web page the GPU backend's results are awaited (the Backend methods ending in _async)")
    }
}
