//! The GPU backend: WGSL kernels (`shaders/`) driven through wgpu.
//! - `context`: adapters, device, error capture;
//! - `kernels`: the pipelines and the uniform structs they share with WGSL;
//! - `matmul_vec4`: the vec4 matmul kernels generated per adapter (`KernelConfig`);
//! - `trainer`: the `Backend` implementation and its host-side scheduler.

pub mod context;
mod device;
mod instrument;
pub mod kernels;
mod layout;
pub mod matmul_vec4;
mod residency;
mod scheduler;
pub mod trainer;

pub use context::{Gpu, list_adapters, select_adapter};
pub use instrument::{Counters, HostTiming};
pub use kernels::Matmul;
pub use matmul_vec4::KernelConfig;
pub use trainer::GpuBackend;
