//! The GPU backend: WGSL kernels (`shaders/`) driven through wgpu.
//! - `context`: adapters, device, error capture;
//! - `kernels`: the pipelines and the uniform structs they share with WGSL;
//! - `trainer`: the `Backend` implementation and its host-side scheduler.

pub mod context;
pub mod kernels;
pub mod trainer;

pub use context::{Gpu, list_adapters, select_adapter};
pub use trainer::GpuBackend;
