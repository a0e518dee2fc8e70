//! The kernel workbench, in the manner of llm.c's `dev/cuda/`: for each GPU kernel its CPU
//! reference, its variants, the check that holds them together and its timing, in one place
//! that the tests (`tests/gpu_kernels.rs`), `gpu-nn bench --kernels` and `cargo bench --bench
//! kernels` all call. The check that holds them together is parity's comparison
//! (`core::parity::compare`).
//!
//! - `step`: one training step of a network on the f64 reference and on the GPU, its work
//!   buffers poisoned with NaN first, from random samples and weights. A step runs every
//!   kernel (gather, the three matmuls, the output layer, the optimiser) against its CPU
//!   reference (`cpu::CpuBackend<f64>`, equation by equation);
//! - `matmul`: the three products of a layer, the kernels with variants: the shapes training
//!   uses, a network that gives a product a shape, the variants (`KernelConfig`) an adapter
//!   runs, and the GPU timing with the CPU GEMM's beside it.

pub mod matmul;
pub mod step;
