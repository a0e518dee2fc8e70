//! What a session takes from outside its configuration: where data is found, which adapter and
//! kernels to use when the configuration names none, and how `auto` kernels are chosen. A
//! front-end fills it once (the command line from the `GPU_NN_*` environment variables,
//! `commands::environment`) and hands it down; nothing below reads the environment.

use crate::data::DataSources;
use crate::gpu::KernelChoice;
use crate::gpu::tuning::KernelSelection;

#[derive(Clone, Debug)]
pub struct Settings {
    /// Where datasets are looked for and fetched from.
    pub data: DataSources,
    /// The GPU adapter (index or name substring) when the configuration names none.
    pub adapter: Option<String>,
    /// The kernels when the configuration names none.
    pub kernels: Option<KernelSelection>,
    /// What `auto` kernels are: `Tuned` (timed on first use, kept in a cache file: the command
    /// line) or `Default` (the adapter's default, untimed: the default here, and a web page).
    pub auto_kernels: KernelChoice,
    /// Testing aid: lose the GPU device once a run has taken this many steps.
    pub lose_device_at_step: Option<u64>,
    /// Print no notes of lower layers (the GPU context's note on a CPU-emulated adapter, the
    /// data's download progress).
    pub quiet: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { data: DataSources::default(), adapter: None, kernels: None, auto_kernels: KernelChoice::Default, lose_device_at_step: None, quiet: true }
    }
}
