//! What every matmul kernel shares: which product of a layer it computes (`Matmul`), how its
//! workgroups cover the product's output (`Grid`), and a kernel's generated WGSL (`Generated`).

/// The three matrix products of a layer (in this order, `as usize`, wherever a backend keeps
/// one thing per product).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Matmul {
    Forward,
    BackwardData,
    WeightGrad,
}

impl Matmul {
    pub const ALL: [Matmul; 3] = [Matmul::Forward, Matmul::BackwardData, Matmul::WeightGrad];

    /// The WGSL entry point computing this product (the same in every variant).
    pub fn entry(self) -> &'static str {
        match self {
            Matmul::Forward => "forward",
            Matmul::BackwardData => "backward_data",
            Matmul::WeightGrad => "weight_grad",
        }
    }
}

/// How a kernel's workgroups cover the output of its product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    /// Output elements (rows, columns) one workgroup writes.
    pub tile: (u32, u32),
    /// Workgroup x runs over the tile rows (else over the tile columns, y over the rows).
    pub rows_in_x: bool,
    /// The output has one more column than the product: the bias gradient (scalar weight_grad).
    pub bias_column: bool,
}

impl Grid {
    /// The workgroup counts (x, y) that cover an output of `rows` × `cols`.
    pub fn workgroups(&self, rows: usize, cols: usize) -> (u32, u32) {
        let cols = cols + self.bias_column as usize;
        let groups = |n: usize, per: u32| n.div_ceil(per as usize).max(1) as u32;
        let (gx, gy) = (groups(cols, self.tile.1), groups(rows, self.tile.0));
        if self.rows_in_x { (gy, gx) } else { (gx, gy) }
    }
}

/// A kernel's WGSL (after its shader header) and its grid.
pub struct Generated {
    pub source: String,
    pub grid: Grid,
}

/// The components of a vec4, in order, for generated code.
pub(super) const XYZW: [&str; 4] = ["x", "y", "z", "w"];

/// Appends formatted lines to a string (generated code stays one statement per line).
macro_rules! emit {
    ($out:expr, $($arg:tt)*) => { writeln!($out, $($arg)*).unwrap() };
}
pub(super) use emit;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_covers_its_output_and_nothing_more() {
        let g = Grid { tile: (32, 16), rows_in_x: false, bias_column: false };
        assert_eq!(g.workgroups(64, 48), (3, 2));
        assert_eq!(g.workgroups(65, 49), (4, 3));
        assert_eq!(g.workgroups(0, 0), (1, 1));
        let x = Grid { rows_in_x: true, ..g };
        assert_eq!(x.workgroups(65, 49), (3, 4));
        let b = Grid { tile: (32, 32), rows_in_x: false, bias_column: true };
        assert_eq!(b.workgroups(10, 32), (2, 1));
        assert_eq!(b.workgroups(10, 31), (1, 1));
    }
}
