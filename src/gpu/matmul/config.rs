//! Which matmul kernels a GPU backend builds (`KernelConfig`: the scalar kernels alone, or a
//! vec4 family with its blocks or tile), and the named configurations (`KernelName`) that
//! `--kernels`, the tuner and the kernel workbench choose between.

use super::product::{Generated, Matmul};
use super::subgroup;
use super::tiled::Tile;
use super::vec4;
use anyhow::bail;

/// A named kernel configuration: what `--kernels NAME` and `$GPU_NN_KERNELS` take, what the
/// tuner times and keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KernelName {
    Scalar,
    Plain,
    PlainSoftware,
    Subgroup,
    Tiled32,
    Tiled64,
    Tiled128,
}

impl KernelName {
    /// Every name, in the order the tuner and the workbench try them.
    pub const ALL: [KernelName; 7] =
        [KernelName::Scalar, KernelName::Plain, KernelName::PlainSoftware, KernelName::Subgroup, KernelName::Tiled32, KernelName::Tiled64, KernelName::Tiled128];

    pub fn as_str(self) -> &'static str {
        match self {
            KernelName::Scalar => "scalar",
            KernelName::Plain => "plain",
            KernelName::PlainSoftware => "plain-software",
            KernelName::Subgroup => "subgroup",
            KernelName::Tiled32 => "tiled-32",
            KernelName::Tiled64 => "tiled-64",
            KernelName::Tiled128 => "tiled-128",
        }
    }

    /// The configuration this name stands for.
    pub fn config(self) -> KernelConfig {
        match self {
            KernelName::Scalar => KernelConfig::Scalar,
            KernelName::Plain => KernelConfig::Plain(vec4::Blocks::PLAIN),
            KernelName::PlainSoftware => KernelConfig::Plain(vec4::Blocks::SOFTWARE),
            KernelName::Subgroup => KernelConfig::Subgroup(subgroup::Blocks::LAVAPIPE),
            KernelName::Tiled32 => KernelConfig::Tiled(Tile::T32),
            KernelName::Tiled64 => KernelConfig::Tiled(Tile::T64),
            KernelName::Tiled128 => KernelConfig::Tiled(Tile::T128),
        }
    }

    /// "scalar, plain, …, tiled-128", for messages.
    pub fn list() -> String {
        KernelName::ALL.map(KernelName::as_str).join(", ")
    }
}

impl std::fmt::Display for KernelName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for KernelName {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match KernelName::ALL.into_iter().find(|n| n.as_str() == s) {
            Some(n) => Ok(n),
            None => bail!("unknown kernels '{s}'; expected auto or one of {}", KernelName::list()),
        }
    }
}
crate::serde_via_string!(KernelName);

impl PartialEq<&str> for KernelName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Which matmul kernels a GPU backend builds, with their blocks or tile. The scalar kernels are
/// always built too: they serve the layers whose widths the vec4 families cannot take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelConfig {
    /// The scalar kernels only (`scalar`): the reference path, any shape.
    Scalar,
    /// Register-blocked vec4 kernels (`vec4`).
    Plain(vec4::Blocks),
    /// Register-blocked vec4 kernels sharing loads across a subgroup of a fixed width
    /// (`subgroup`; a named configuration holds lavapipe's 8 lanes until `for_adapter`).
    Subgroup(subgroup::Blocks),
    /// Operand tiles staged in workgroup memory (`tiled`), the hardware-GPU family.
    Tiled(Tile),
}

impl KernelConfig {
    /// The names `named` takes, in `KernelName::ALL`'s order.
    pub const NAMES: [&'static str; 7] = ["scalar", "plain", "plain-software", "subgroup", "tiled-32", "tiled-64", "tiled-128"];

    /// The scalar kernels only (what tests compare the others against).
    pub fn scalar() -> Self {
        KernelConfig::Scalar
    }

    /// The configuration named `name` (one of `NAMES`).
    pub fn named(name: &str) -> Option<Self> {
        name.parse::<KernelName>().ok().map(KernelName::config)
    }

    /// The name of this configuration, if it is a named one (the subgroup kernels at any
    /// width with that width's blocks are `subgroup`).
    pub fn name(&self) -> Option<KernelName> {
        match self {
            KernelConfig::Subgroup(b) if subgroup::Blocks::for_lanes(b.lanes) == Some(*b) => Some(KernelName::Subgroup),
            _ => KernelName::ALL.into_iter().find(|n| n.config() == *self),
        }
    }

    /// This configuration as it runs on an adapter: the subgroup kernels written for its
    /// subgroup width (a named configuration holds lavapipe's 8), everything else as it is.
    pub fn for_adapter(self, info: &wgpu::AdapterInfo, features: wgpu::Features) -> Self {
        match (self, fixed_subgroup_width(info, features).and_then(subgroup::Blocks::for_lanes)) {
            (KernelConfig::Subgroup(b), Some(w)) if b.lanes != w.lanes => KernelConfig::Subgroup(w),
            _ => self,
        }
    }

    /// The choice for an adapter before any timing (the tuner's fallback, and what it starts
    /// from): software rasterisers (lavapipe) get the subgroup kernels when their subgroups are
    /// exactly 8 lanes, else plain kernels with large blocks; hardware GPUs get 64×64
    /// workgroup-memory tiles.
    pub fn default_for(info: &wgpu::AdapterInfo, features: wgpu::Features, software: bool) -> (KernelName, Self) {
        let name = match (software, fixed_subgroup_width(info, features)) {
            (true, Some(8)) => KernelName::Subgroup,
            (true, _) => KernelName::PlainSoftware,
            (false, _) => KernelName::Tiled64,
        };
        (name, name.config())
    }

    /// Why this configuration cannot run on a device with these properties, if it cannot: the
    /// subgroup kernels need subgroups of the one width they are written for, a tile needs
    /// its threads and workgroup memory within the limits.
    pub fn unsupported(&self, info: &wgpu::AdapterInfo, features: wgpu::Features, limits: &wgpu::Limits) -> Option<String> {
        match self {
            KernelConfig::Scalar | KernelConfig::Plain(_) => None,
            KernelConfig::Subgroup(b) => match fixed_subgroup_width(info, features) {
                Some(w) if w == b.lanes => None,
                Some(w) if subgroup::Blocks::for_lanes(w).is_none() => {
                    Some(format!("needs a subgroup width that is a multiple of 4; adapter '{}' has {w} lanes", info.name))
                }
                Some(w) => Some(format!("written for {}-lane subgroups; adapter '{}' has {w} (KernelConfig::for_adapter adapts it)", b.lanes, info.name)),
                None if !features.contains(wgpu::Features::SUBGROUP) => Some(format!("needs subgroups, which adapter '{}' lacks", info.name)),
                None => Some(format!(
                    "needs one subgroup width; adapter '{}' reports {}..{} lanes",
                    info.name, info.subgroup_min_size, info.subgroup_max_size
                )),
            },
            KernelConfig::Tiled(t) => {
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
    }

    /// Whether this configuration has vec4 kernels (every one but `scalar`).
    pub fn vec4(&self) -> bool {
        *self != KernelConfig::Scalar
    }

    /// Whether a layer of these widths runs its products with this configuration's vec4
    /// kernels (the shape conditions of `shaders/matmul_vec4.wgsl`: both widths multiples of
    /// 4), else with the scalar ones.
    pub fn runs_vec4(&self, n_in: usize, n_out: usize) -> bool {
        self.vec4() && n_in % 4 == 0 && n_out % 4 == 0
    }

    /// The vec4 kernel of `kind` (None for the scalar configuration), after `VEC4_HEADER`.
    pub fn generate(&self, kind: Matmul) -> Option<Generated> {
        match self {
            KernelConfig::Scalar => None,
            KernelConfig::Plain(b) => Some(vec4::generate(kind, b)),
            KernelConfig::Subgroup(b) => Some(subgroup::generate(kind, b)),
            KernelConfig::Tiled(t) => Some(super::tiled::generate(kind, t)),
        }
    }
}

/// The adapter's subgroup width when it has subgroups of one width only.
fn fixed_subgroup_width(info: &wgpu::AdapterInfo, features: wgpu::Features) -> Option<u32> {
    (features.contains(wgpu::Features::SUBGROUP) && info.subgroup_min_size == info.subgroup_max_size && info.subgroup_min_size > 0).then_some(info.subgroup_min_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        for n in KernelName::ALL {
            assert_eq!(n.config().name(), Some(n));
            assert_eq!(n.to_string().parse::<KernelName>().unwrap(), n);
            assert_eq!(serde_json::to_value(n).unwrap(), serde_json::json!(n.as_str()));
        }
        assert_eq!(KernelConfig::NAMES.to_vec(), KernelName::ALL.map(KernelName::as_str).to_vec());
        assert!(KernelConfig::named("tiled-7").is_none());
        let e = "tiled-7".parse::<KernelName>().unwrap_err().to_string();
        assert!(e.contains("unknown kernels 'tiled-7'") && e.contains("tiled-128"), "{e}");
    }

    #[test]
    fn only_layers_with_widths_of_multiples_of_4_run_vec4() {
        let plain = KernelName::Plain.config();
        assert!(plain.runs_vec4(784, 128));
        assert!(!plain.runs_vec4(784, 30) && !plain.runs_vec4(30, 10) && !plain.runs_vec4(10, 784 + 2));
        assert!(!KernelConfig::Scalar.runs_vec4(784, 128));
        assert!(KernelConfig::Scalar.generate(Matmul::Forward).is_none());
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
        // 32 lanes: the named subgroup configuration is lavapipe's 8-lane one until adapted
        let sub = KernelName::Subgroup.config();
        assert!(sub.unsupported(&info, wgpu::Features::SUBGROUP, &lim).unwrap().contains("written for 8-lane subgroups"));
        let adapted = sub.for_adapter(&info, wgpu::Features::SUBGROUP);
        assert_eq!(adapted.unsupported(&info, wgpu::Features::SUBGROUP, &lim), None);
        assert_eq!(adapted.name(), Some(KernelName::Subgroup));
        assert!(sub.unsupported(&info, wgpu::Features::empty(), &lim).unwrap().contains("needs subgroups"));
        let ranged = wgpu::AdapterInfo { subgroup_min_size: 4, subgroup_max_size: 128, ..info.clone() };
        assert!(sub.for_adapter(&ranged, wgpu::Features::SUBGROUP).unsupported(&ranged, wgpu::Features::SUBGROUP, &lim).unwrap().contains("4..128"));
        let (name, _) = KernelConfig::default_for(&info, wgpu::Features::SUBGROUP, false);
        assert_eq!(name, KernelName::Tiled64);
    }
}
