//! The GPU backend: WGSL kernels (`shaders/`) driven through wgpu. Its parts, each importing
//! only those listed before it:
//! - `context`: adapters, device, error capture;
//! - `matmul_vec4`, `matmul_tiled`: the vec4 matmul kernels, register-blocked (for lavapipe)
//!   and tiled in workgroup memory (for hardware GPUs), generated per configuration;
//! - `kernel_config`: which of them a backend builds (`KernelConfig`, by name);
//! - `kernels`: the pipelines, the uniform structs they share with WGSL, `Matmul`;
//! - `layout`: where every layer and tensor sits in the buffers, the dims slots (plain numbers);
//! - `device`: the model on the device: kernels, layout and the buffers sized by it;
//! - `instrument`: benchmark counters (`Counters`) and the dispatch-timing harness;
//! - `residency`: the attached datasets, resident or streamed, and the index list;
//! - `scheduler`: micro-batches, their grouping into submissions, encoding and readback;
//! - `test_aids`: poisoning the work buffers, losing the device on purpose;
//! - `autotune`: which kernels a backend builds: forced, default, or timed once and kept;
//! - `backend`: `GpuBackend`, which owns the parts and implements `Backend` through them.

pub mod autotune;
mod backend;
pub mod context;
mod device;
mod instrument;
pub mod kernel_config;
pub mod kernels;
mod layout;
pub mod matmul_tiled;
pub mod matmul_vec4;
mod residency;
mod scheduler;
mod test_aids;

pub use autotune::KernelChoice;
pub use backend::GpuBackend;
pub use context::{Gpu, list_adapters, select_adapter};
pub use instrument::{Counters, DispatchTiming, HostTiming};
pub use kernels::Matmul;
pub use kernel_config::KernelConfig;
