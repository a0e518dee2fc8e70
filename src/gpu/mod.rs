//! The GPU backend: WGSL kernels (`shaders/`) driven through wgpu. Its parts, each importing
//! only those listed before it:
//! - `context`: adapters, device, error capture;
//! - `matmul`: the matrix products in their variants (scalar, vec4, subgroup, tiled), each with
//!   its WGSL and its dispatch grid, and which of them a backend builds (`KernelConfig`, by
//!   `KernelName`);
//! - `kernels`: the pipelines, the uniform structs they share with WGSL;
//! - `layout`: where every layer and tensor sits in the buffers, the dims slots (plain numbers);
//! - `device`: the model on the device: kernels, layout and the buffers sized by it;
//! - `dropout`: dropout's kernels and dims, built when a run has dropout;
//! - `augment`: data augmentation's kernels and work buffers, built when a run augments;
//! - `instrument`: benchmark counters (`Counters`) and the dispatch-timing harness;
//! - `residency`: the attached datasets, resident or streamed, and the index list;
//! - `scheduler`: micro-batches, their grouping into submissions, encoding and readback;
//! - `test_aids`: poisoning the work buffers, losing the device on purpose;
//! - `tuning`: which kernels a backend builds: forced, default, or timed once and kept;
//! - `backend`: `GpuBackend`, which owns the parts and implements `Backend` through them.

mod augment;
mod backend;
pub mod context;
mod device;
mod dropout;
mod instrument;
pub mod kernels;
mod layout;
pub mod matmul;
mod residency;
mod scheduler;
mod test_aids;
pub mod tuning;

pub use tuning::KernelChoice;
pub use backend::GpuBackend;
pub use context::{Gpu, list_adapters, select_adapter};
pub use instrument::{Counters, DispatchTiming, HostTiming};
pub use matmul::{KernelConfig, KernelName, Matmul};
