//! Adapters and the device: listing, selection (`--adapter`, `$GPU_NN_ADAPTER`, else the
//! high-performance one), device creation with the adapter's own limits, and error capture so a
//! wgpu error becomes a Rust error, never a panic from wgpu's default handler.

use anyhow::{Context, Result, bail};
use std::sync::{Arc, Mutex};

/// Prints wgpu's warnings and errors (and, with validation on, the validation layers'), one line
/// each on stderr (`wgpu ERROR: …`), so a validation error is seen rather than dropped: the
/// command line's `WGPU_VALIDATION` and the tests' driver matrix install it. Only the first
/// logger of a process is taken; later calls do nothing.
pub fn print_wgpu_messages() {
    struct Lines;
    impl log::Log for Lines {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.target().starts_with("wgpu") && m.level() <= log::Level::Warn
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata()) {
                eprintln!("wgpu {}: {}", r.level(), r.args().to_string().replace(['\n', '\t'], " "));
            }
        }
        fn flush(&self) {}
    }
    if log::set_logger(&Lines).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
}

pub struct AdapterEntry {
    pub index: usize,
    pub adapter: wgpu::Adapter,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
}

impl AdapterEntry {
    pub fn is_software(&self) -> bool {
        is_software(&self.info)
    }
    pub fn summary(&self) -> String {
        format!(
            "[{}] {} ({:?}, {:?}, driver: {} {})  max storage binding {} MiB, workgroup memory {} KiB, max workgroup invocations {}",
            self.index,
            self.info.name,
            self.info.backend,
            self.info.device_type,
            self.info.driver,
            self.info.driver_info,
            self.limits.max_storage_buffer_binding_size >> 20,
            self.limits.max_compute_workgroup_storage_size >> 10,
            self.limits.max_compute_invocations_per_workgroup,
        )
    }
}

/// lavapipe/llvmpipe, WARP, SwiftShader: adapters that run on the CPU.
pub fn is_software(info: &wgpu::AdapterInfo) -> bool {
    let name = info.name.to_lowercase();
    info.device_type == wgpu::DeviceType::Cpu
        || ["llvmpipe", "lavapipe", "swiftshader", "warp", "microsoft basic render"].iter().any(|s| name.contains(s))
}

/// Instances for the backends to search: `WGPU_BACKEND` when set; otherwise Vulkan, Metal and
/// DX12 first, and OpenGL only when none of those has an adapter (initialising EGL where it is
/// not needed prints noise and costs time).
pub fn instance() -> wgpu::Instance {
    let make = |backends: Option<wgpu::Backends>| {
        let mut d = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if let Some(b) = backends {
            d.backends = b;
        }
        // the validation layers' messages reach wgpu (and `log`) through debug utils only
        if d.flags.contains(wgpu::InstanceFlags::VALIDATION) {
            d.flags |= wgpu::InstanceFlags::DEBUG;
        }
        wgpu::Instance::new(d)
    };
    if wgpu::Backends::from_env().is_some() {
        return make(None);
    }
    let make = |backends| make(Some(backends));
    let primary = make(wgpu::Backends::PRIMARY);
    if pollster::block_on(primary.enumerate_adapters(wgpu::Backends::PRIMARY)).is_empty() {
        return make(wgpu::Backends::SECONDARY);
    }
    primary
}

/// Every adapter wgpu finds, in a stable order (the indices `--adapter` takes).
pub fn list_adapters(instance: &wgpu::Instance) -> Vec<AdapterEntry> {
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .into_iter()
        .enumerate()
        .map(|(index, adapter)| {
            let info = adapter.get_info();
            let limits = adapter.limits();
            AdapterEntry { index, adapter, info, limits }
        })
        .collect()
}

pub const NO_ADAPTER_HELP: &str = "no GPU adapter found: install a Vulkan driver for your GPU, or the \
software adapter lavapipe (Debian/Ubuntu: apt-get install mesa-vulkan-drivers libvulkan1); \
--backend cpu trains without one";

/// Picks an adapter: `choice` (index or name substring; the command line passes `--adapter`,
/// else `$GPU_NN_ADAPTER`), else the high-performance adapter, preferring hardware over CPU
/// emulation.
pub fn select_adapter(instance: &wgpu::Instance, choice: Option<&str>) -> Result<AdapterEntry> {
    let mut all = list_adapters(instance);
    if all.is_empty() {
        bail!("{NO_ADAPTER_HELP}");
    }
    if let Some(want) = choice {
        let pos = match want.parse::<usize>() {
            Ok(i) => all.iter().position(|a| a.index == i),
            Err(_) => all.iter().position(|a| a.info.name.to_lowercase().contains(&want.to_lowercase())),
        };
        let Some(pos) = pos else {
            let names: Vec<String> = all.iter().map(|a| format!("[{}] {}", a.index, a.info.name)).collect();
            bail!("--adapter '{want}' matches no adapter; available: {}", names.join(", "));
        };
        return Ok(all.swap_remove(pos));
    }
    let rank = |a: &AdapterEntry| match a.info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu | wgpu::DeviceType::Other => 2,
        wgpu::DeviceType::Cpu => 3,
    };
    let best = (0..all.len())
        .min_by_key(|&i| (all[i].is_software() as u8, rank(&all[i]), all[i].index))
        .unwrap();
    Ok(all.swap_remove(best))
}

/// A device with the adapter's limits, and the errors wgpu reported outside error scopes.
///
/// Cloning is cheap and shares the device: wgpu's `Device` and `Queue` are reference-counted
/// handles, and the error list is shared too (`gpu-nn sweep` runs every cell on one device).
#[derive(Clone)]
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    /// Features the device was created with.
    pub features: wgpu::Features,
    pub timestamps: bool,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Gpu {
    pub fn new(choice: Option<&str>, quiet: bool) -> Result<Gpu> {
        let inst = instance();
        let entry = select_adapter(&inst, choice)?;
        if entry.is_software() && !quiet {
            eprintln!(
                "note: using the CPU-emulated adapter '{}' ({:?}); it proves the kernels right but is no faster than --backend cpu",
                entry.info.name, entry.info.backend
            );
        }
        pollster::block_on(Self::open(&entry.adapter))
    }

    /// The first adapter of `backends` that `request_adapter` gives (high performance
    /// preferred), opened: what a web page uses (`Backends::BROWSER_WEBGPU`), where adapters
    /// cannot be listed.
    pub async fn request(backends: wgpu::Backends) -> Result<Gpu> {
        let mut d = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        d.backends = backends;
        let instance = wgpu::Instance::new(d);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() })
            .await
            .map_err(|e| anyhow::anyhow!("no WebGPU adapter: {e}"))?;
        Self::open(&adapter).await
    }

    /// A device on `adapter` with all its limits, timestamp queries and subgroups where it has
    /// them, and wgpu's errors captured.
    pub async fn open(adapter: &wgpu::Adapter) -> Result<Gpu> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let mut features = if timestamps { wgpu::Features::TIMESTAMP_QUERY } else { wgpu::Features::empty() };
        // subgroups let the lavapipe matmul kernels share loads between lanes (matmul/subgroup.rs)
        features |= adapter.features() & wgpu::Features::SUBGROUP;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("gpu-nn"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .with_context(|| format!("cannot open a device on adapter '{}'", info.name))?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap().push(format!("{e}"));
        }));
        let lost = errors.clone();
        device.set_device_lost_callback(move |reason, msg| {
            lost.lock().unwrap().push(format!("device lost ({reason:?}): {msg}"));
        });
        Ok(Gpu { device, queue, info, limits, features, timestamps, errors })
    }

    /// Fails with the first error wgpu reported since the last check.
    pub fn check(&self, during: &str) -> Result<()> {
        let mut e = self.errors.lock().unwrap();
        if !e.is_empty() {
            let msg = e.join("; ");
            e.clear();
            bail!("GPU error during {during}: {msg}");
        }
        Ok(())
    }

    /// Runs `f` inside validation and out-of-memory error scopes and reports what they caught.
    /// In a web page the scopes' answers come later than `f` returns: there the errors reach
    /// `check` through the uncaptured-error handler instead.
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        if cfg!(target_arch = "wasm32") {
            return Ok(f());
        }
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(val.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v.or(o) {
            bail!("GPU error while {what}: {e}");
        }
        Ok(out)
    }

    pub fn describe(&self) -> String {
        // browsers may withhold the adapter's name (WebGPU's privacy rules)
        let name = if self.info.name.is_empty() { format!("unnamed {:?} adapter", self.info.device_type) } else { self.info.name.clone() };
        format!("gpu: {name} ({:?})", self.info.backend)
    }
}
