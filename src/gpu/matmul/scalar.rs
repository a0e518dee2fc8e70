//! The scalar kernels (`shaders/matmul.wgsl`): every product for any shape, each thread a 4×4
//! block of the output from scalar loads, in workgroups of 8×8 threads. The reference path
//! among the GPU kernels, and what every layer whose widths are not multiples of 4 runs.

use super::product::{Generated, Grid, Matmul};

/// The three entry points and their bindings.
pub const SOURCE: &str = include_str!("../../../shaders/matmul.wgsl");

/// The scalar kernel of `kind`: `SOURCE` (the entry is `kind.entry()`) and its grid: 8×8
/// threads of 4×4 outputs; weight_grad writes the bias gradient as one more output column.
pub fn generate(kind: Matmul) -> Generated {
    Generated { source: SOURCE.to_string(), grid: Grid { tile: (32, 32), rows_in_x: false, bias_column: kind == Matmul::WeightGrad } }
}
