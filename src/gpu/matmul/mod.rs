//! The matrix products of training on the GPU, in one place: forward Z = A·Wᵀ + b, backward_data
//! δ_{l−1} = (δ_l·W) ⊙ f'(Z_{l−1}) and weight_grad ∂W = s·δᵀ·A, ∂b = s·Σ δ (`product`), each
//! in four variants that own their WGSL and their dispatch grid:
//!
//! | variant    | file          | how                                        | for                      |
//! |------------|---------------|--------------------------------------------|--------------------------|
//! | scalar     | `scalar.rs`   | 4×4 blocks from scalar loads, any shape    | the reference, odd widths |
//! | plain      | `vec4.rs`     | register blocks from vec4 loads            | portable; lavapipe w/o 8-lane subgroups |
//! | subgroup   | `subgroup.rs` | vec4 loads shared across a subgroup        | lavapipe                 |
//! | tiled      | `tiled.rs`    | operand tiles in workgroup memory          | hardware GPUs            |
//!
//! `config` names the configurations (`KernelName`) and says which one a backend builds
//! (`KernelConfig`); `gpu::tuning` chooses between them per adapter. Each variant's CPU
//! reference is the f64 backend; `workbench::matmul` times them, `tests/gpu_kernels.rs` holds
//! every one to that reference.
//!
//! Read in this order: `product` → `scalar` → `vec4` → `subgroup` → `tiled` → `config`. Each
//! file imports only those before it.

pub mod config;
pub mod product;
pub mod scalar;
pub mod subgroup;
pub mod tiled;
pub mod vec4;

pub use config::{KernelConfig, KernelName};
pub use product::{Generated, Grid, Matmul};
