//! Which matmul kernels a GPU backend builds: the scalar ones only, or a vec4 family with its
//! register blocks (`matmul_vec4`: plain or 8-lane subgroup) or its workgroup-memory tile
//! (`matmul_tiled`). Named configurations are what `--kernels`, the autotuner and the kernel
//! workbench choose between.

use super::matmul_tiled::Tile;

/// A register block; the unit of `rows` and `cols` is given per kernel in [`KernelConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub rows: u32,
    pub cols: u32,
}

/// Which matmul kernels the GPU backend builds, and their register blocks or tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelConfig {
    /// Use the vec4 kernels for the layers whose shapes allow them (else scalar everywhere).
    pub vec4: bool,
    /// Build the vec4 kernels around 8-lane subgroups (needs `Features::SUBGROUP` and a
    /// subgroup size of exactly 8; one workgroup = one subgroup).
    pub subgroup8: bool,
    /// Plain: rows × columns of Z per thread. Subgroup: rows per lane × blocks of 8 columns.
    pub forward: Block,
    /// Plain: rows × vec4 columns of δ per thread. Subgroup: rows per lane × vec4 columns of
    /// the subgroup's tile (even).
    pub backward_data: Block,
    /// Plain: vec4 rows (outputs) × vec4 columns (inputs) of ∂W per thread. Subgroup: vec4 rows
    /// of the subgroup's tile × vec4 columns per lane.
    pub weight_grad: Block,
    /// Threads per workgroup (x, y) of the plain kernels.
    pub workgroup: (u32, u32),
    /// The vec4 kernels stage operand tiles in workgroup memory (`matmul_tiled`); the blocks
    /// and workgroup above are then unused.
    pub tile: Option<Tile>,
}

impl KernelConfig {
    /// The scalar kernels only (the reference path; also what tests compare against).
    pub fn scalar() -> Self {
        KernelConfig { vec4: false, ..Self::plain() }
    }

    /// Plain vec4 kernels with 4×4 blocks and 8×8 threads, no workgroup memory.
    pub fn plain() -> Self {
        KernelConfig {
            vec4: true,
            subgroup8: false,
            forward: Block { rows: 4, cols: 4 },
            backward_data: Block { rows: 4, cols: 1 },
            weight_grad: Block { rows: 1, cols: 1 },
            workgroup: (8, 8),
            tile: None,
        }
    }

    /// Plain vec4 kernels with the largest blocks that still paid on lavapipe (loads there
    /// are expensive, so more FMAs per loaded vec4 win despite register spills).
    pub fn plain_software() -> Self {
        KernelConfig {
            forward: Block { rows: 8, cols: 8 },
            backward_data: Block { rows: 4, cols: 2 },
            weight_grad: Block { rows: 4, cols: 2 },
            ..Self::plain()
        }
    }

    /// The 8-lane subgroup kernels, blocks measured best on lavapipe (AVX2, 8 lanes).
    pub fn subgroup() -> Self {
        KernelConfig {
            subgroup8: true,
            forward: Block { rows: 4, cols: 2 },
            backward_data: Block { rows: 4, cols: 4 },
            weight_grad: Block { rows: 4, cols: 1 },
            workgroup: (8, 1),
            ..Self::plain()
        }
    }

    /// Workgroup-memory tiles, the hardware-GPU family.
    pub fn tiled(tile: Tile) -> Self {
        KernelConfig { tile: Some(tile), ..Self::plain() }
    }

    /// The choice for an adapter before any timing (the autotuner's fallback, and what it
    /// starts from): software rasterisers (lavapipe) get the subgroup kernels when their
    /// subgroups are exactly 8 lanes, else plain kernels with large blocks; hardware GPUs get
    /// 64×64 workgroup-memory tiles.
    pub fn default_for(info: &wgpu::AdapterInfo, features: wgpu::Features, software: bool) -> (&'static str, Self) {
        let sub8 = features.contains(wgpu::Features::SUBGROUP) && info.subgroup_min_size == 8 && info.subgroup_max_size == 8;
        match (software, sub8) {
            (true, true) => ("subgroup", Self::subgroup()),
            (true, false) => ("plain-software", Self::plain_software()),
            (false, _) => ("tiled-64", Self::tiled(Tile::T64)),
        }
    }

    /// The names `named` takes (`--kernels`, `GPU_NN_KERNELS`, the autotuner's candidates).
    pub const NAMES: [&'static str; 7] = ["scalar", "plain", "plain-software", "subgroup", "tiled-32", "tiled-64", "tiled-128"];

    /// A configuration by name, one of `NAMES`.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "scalar" => Some(Self::scalar()),
            "plain" => Some(Self::plain()),
            "plain-software" => Some(Self::plain_software()),
            "subgroup" => Some(Self::subgroup()),
            "tiled-32" => Some(Self::tiled(Tile::T32)),
            "tiled-64" => Some(Self::tiled(Tile::T64)),
            "tiled-128" => Some(Self::tiled(Tile::T128)),
            _ => None,
        }
    }

    /// The name of this configuration, if it is one of `NAMES`.
    pub fn name(&self) -> Option<&'static str> {
        Self::NAMES.into_iter().find(|n| Self::named(n).as_ref() == Some(self))
    }

    /// Why this configuration cannot run on a device with these properties, if it cannot:
    /// the subgroup kernels need 8-lane subgroups, a tile needs its threads and workgroup
    /// memory within the limits.
    pub fn unsupported(&self, info: &wgpu::AdapterInfo, features: wgpu::Features, limits: &wgpu::Limits) -> Option<String> {
        if self.subgroup8 && !(features.contains(wgpu::Features::SUBGROUP) && info.subgroup_min_size == 8 && info.subgroup_max_size == 8) {
            return Some(format!("needs 8-lane subgroups, which adapter '{}' lacks", info.name));
        }
        let t = self.tile?;
        let (x, y) = t.threads();
        if x * y > limits.max_compute_invocations_per_workgroup || x > limits.max_compute_workgroup_size_x || y > limits.max_compute_workgroup_size_y {
            return Some(format!("needs {x}×{y} threads per workgroup; adapter '{}' allows {}", info.name, limits.max_compute_invocations_per_workgroup));
        }
        if t.workgroup_bytes() > limits.max_compute_workgroup_storage_size {
            return Some(format!(
                "needs {} bytes of workgroup memory; adapter '{}' has {}",
                t.workgroup_bytes(),
                info.name,
                limits.max_compute_workgroup_storage_size
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        for n in KernelConfig::NAMES {
            assert_eq!(KernelConfig::named(n).unwrap().name(), Some(n));
        }
        assert!(KernelConfig::named("tiled-7").is_none());
    }

    #[test]
    fn a_tile_over_the_limits_is_refused() {
        let info = wgpu::AdapterInfo {
            name: "test".into(),
            vendor: 0,
            device: 0,
            device_type: wgpu::DeviceType::DiscreteGpu,
            device_pci_bus_id: String::new(),
            driver: String::new(),
            driver_info: String::new(),
            backend: wgpu::Backend::Vulkan,
            subgroup_min_size: 32,
            subgroup_max_size: 32,
            transient_saves_memory: None,
            limit_bucket: None,
        };
        let lim = wgpu::Limits::default();
        let t128 = KernelConfig::named("tiled-128").unwrap();
        assert_eq!(t128.unsupported(&info, wgpu::Features::empty(), &lim), None);
        let small = wgpu::Limits { max_compute_workgroup_storage_size: 4096, ..lim.clone() };
        assert!(t128.unsupported(&info, wgpu::Features::empty(), &small).unwrap().contains("workgroup memory"));
        let few = wgpu::Limits { max_compute_invocations_per_workgroup: 64, ..lim };
        assert!(t128.unsupported(&info, wgpu::Features::empty(), &few).unwrap().contains("threads"));
        assert!(KernelConfig::subgroup().unsupported(&info, wgpu::Features::SUBGROUP, &few).unwrap().contains("subgroups"));
    }
}
