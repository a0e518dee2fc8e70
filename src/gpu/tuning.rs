//! Which matmul kernels a backend uses: forced by name, the adapter's untimed default, or tuned:
//! on the first run of a shape class on an adapter, every configuration the adapter supports
//! is timed on the run's own products (a few milliseconds each on a GPU), and the fastest is
//! kept in a cache file per (adapter, driver, shape class), so the next run starts at once and
//! a new GPU gets its best kernels without a code change.
//!
//! A kept choice is never re-timed: the first process to record a key wins (the file is
//! updated under a lock), so every run of one shape class on one machine uses the same kernels
//! and its results stay byte-identical from run to run. The kernels only change results
//! within f32 rounding (`tests/gpu_kernels.rs` holds every configuration to the f64 reference).

use super::context::{Gpu, is_software};
use super::device::Device;
use super::matmul::{KernelConfig, KernelName, Matmul};
use super::scheduler::time_matmul;
use crate::atomic_file::write_atomic;
use crate::nn::model::ModelSpec;
use crate::nn::optim::OptimizerSpec;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use web_time::Instant;

/// The kernels a configuration asks for (`--kernels`, `backend.kernels`): `auto`, or a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelSelection {
    /// Whatever the front-end makes of `auto`: tuned and kept (the command line), or the
    /// adapter's default (a web page, which cannot spend seconds timing).
    Auto,
    Named(KernelName),
}

impl std::fmt::Display for KernelSelection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelSelection::Auto => f.write_str("auto"),
            KernelSelection::Named(n) => write!(f, "{n}"),
        }
    }
}

impl std::str::FromStr for KernelSelection {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(KernelSelection::Auto),
            n => n.parse().map(KernelSelection::Named),
        }
    }
}
crate::serde_via_string!(KernelSelection);

/// How to pick the kernels, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelChoice {
    /// Time the candidates on first use and keep the winner in `cache` (None: time in this
    /// process and keep nothing).
    Tuned { cache: Option<PathBuf> },
    /// `KernelConfig::default_for` the adapter, untimed (tests: no timing noise in the choice).
    Default,
    /// A named configuration, refused where the adapter cannot run it.
    Named(KernelName),
}

/// The kernels a backend was built with, and how they were chosen (for `--verbose`, `bench`).
#[derive(Clone, Debug)]
pub struct Chosen {
    pub name: KernelName,
    pub config: KernelConfig,
    pub how: String,
}

/// The candidates' milliseconds for one training step's matrix products, fastest first, and
/// whether the candidate was timed to the end (else it was dropped once slower than the best).
type Timings = Vec<(KernelName, f64, bool)>;

/// Resolves `choice` on `gpu` for `spec` trained in batches of `batch`.
pub fn choose(gpu: &Gpu, spec: &ModelSpec, opt: &OptimizerSpec, batch: usize, choice: &KernelChoice) -> Result<Chosen> {
    let (default_name, default) = KernelConfig::default_for(&gpu.info, gpu.features, is_software(&gpu.info));
    match choice {
        KernelChoice::Default => Ok(Chosen { name: default_name, config: default, how: "the adapter's default".into() }),
        KernelChoice::Named(name) => Ok(Chosen { name: *name, config: named_for(gpu, *name)?, how: "chosen with --kernels".into() }),
        KernelChoice::Tuned { cache } => {
            if !any_vec4_layer(spec) {
                return Ok(Chosen { name: default_name, config: default, how: "no layer can use the vec4 kernels (widths not multiples of 4)".into() });
            }
            let key = TuningKey::new(&gpu.info, spec, batch);
            if let Some(path) = cache
                && let Some(name) = lookup(path, &key.to_string())
            {
                return Ok(Chosen { name, config: name.config().for_adapter(&gpu.info, gpu.features), how: format!("tuned earlier, kept in {}", path.display()) });
            }
            let t0 = Instant::now();
            let timings = time_candidates(gpu, spec, opt, batch, default_name)?;
            let secs = t0.elapsed().as_secs_f64();
            let table: Vec<String> = timings.iter().map(|(n, ms, all)| format!("{n} {}{ms:.3}", if *all { "" } else { ">" })).collect();
            let mut name = timings[0].0;
            let mut how = format!("tuned now in {secs:.1} s (ms per step's products: {})", table.join(", "));
            if let Some(path) = cache {
                match record(path, &key, name, &timings) {
                    Ok(kept) => {
                        if kept != name {
                            how = format!("{how}; another run kept {kept} first");
                        }
                        name = kept;
                        how = format!("{how}; kept in {}", path.display());
                    }
                    // a cache that cannot be written costs a re-tune next time, never the run
                    Err(e) => how = format!("{how}; not kept: {e:#}"),
                }
            }
            Ok(Chosen { name, config: name.config().for_adapter(&gpu.info, gpu.features), how })
        }
    }
}

/// The configuration `name` as it runs on `gpu` (`KernelConfig::for_adapter`), refused when
/// `gpu` cannot run it.
pub fn named_for(gpu: &Gpu, name: KernelName) -> Result<KernelConfig> {
    let config = name.config().for_adapter(&gpu.info, gpu.features);
    if let Some(why) = config.unsupported(&gpu.info, gpu.features, &gpu.limits) {
        bail!("--kernels {name}: {why}");
    }
    Ok(config)
}

fn any_vec4_layer(spec: &ModelSpec) -> bool {
    (0..spec.num_layers()).any(|i| {
        let (a, b) = spec.layer_dims(i);
        a % 4 == 0 && b % 4 == 0
    })
}

/// What a tuned choice is kept for: the adapter and its driver, and the shape class (the
/// widths and the batch rounded up to powers of two: a kernel's ranking changes with the order
/// of magnitude of a product, not with every size). Its `Display` is the cache file's key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TuningKey {
    pub adapter: String,
    /// wgpu's name of the graphics API ("Vulkan", "Metal", "Gl", …).
    pub api: String,
    pub vendor: u32,
    pub device: u32,
    pub driver: String,
    pub driver_info: String,
    /// Every layer width, rounded up to a power of two.
    pub widths: Vec<usize>,
    /// The batch, rounded up to a power of two.
    pub batch: usize,
}

impl TuningKey {
    pub fn new(info: &wgpu::AdapterInfo, spec: &ModelSpec, batch: usize) -> TuningKey {
        TuningKey {
            adapter: info.name.clone(),
            api: format!("{:?}", info.backend),
            vendor: info.vendor,
            device: info.device,
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            widths: spec.layers.iter().map(|w| w.next_power_of_two()).collect(),
            batch: batch.next_power_of_two(),
        }
    }
}

impl std::fmt::Display for TuningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let widths: Vec<String> = self.widths.iter().map(|w| w.to_string()).collect();
        write!(
            f,
            "{} ({}, {:04x}:{:04x}, driver {} {}) | widths {} | batch {}",
            self.adapter,
            self.api,
            self.vendor,
            self.device,
            self.driver,
            self.driver_info,
            widths.join("-"),
            self.batch
        )
    }
}

/// The cache file's key of `spec` trained in batches of `batch` on `gpu` (`TuningKey`'s text).
pub fn cache_key(gpu: &Gpu, spec: &ModelSpec, batch: usize) -> String {
    TuningKey::new(&gpu.info, spec, batch).to_string()
}

/// Every supported candidate's time for the products of one training step, fastest first.
/// The adapter's default goes first and sets the bar; a candidate is dropped as soon as its
/// products so far take longer than the best complete step (it cannot win), so slow families
/// cost a product or two, not a whole step: on lavapipe that keeps tuning the wide network at
/// seconds instead of minutes. Dropped candidates are listed with the time at which they were
/// dropped, marked `>`.
fn time_candidates(gpu: &Gpu, spec: &ModelSpec, opt: &OptimizerSpec, batch: usize, default: KernelName) -> Result<Timings> {
    let mut names = vec![default];
    names.extend(KernelName::ALL.into_iter().filter(|n| *n != default));
    let mut out: Timings = Vec::new();
    let mut best = f64::INFINITY;
    for name in names {
        let config = name.config().for_adapter(&gpu.info, gpu.features);
        if config.unsupported(&gpu.info, gpu.features, &gpu.limits).is_some() {
            continue;
        }
        let dev = Device::new(gpu.clone(), spec, opt, batch, config).with_context(|| format!("tuning kernels: building {name}"))?;
        dev.write_static_dims();
        let rows = batch.min(dev.layout.rows_cap());
        let mut secs = 0.0;
        let mut complete = true;
        'products: for l in 1..spec.layers.len() {
            for kind in Matmul::ALL {
                if kind == Matmul::BackwardData && l < 2 {
                    continue;
                }
                // one dispatch tells the cost and is enough above a millisecond; below,
                // about 2 ms of repeats. The device's clock where it has one.
                let once = time_matmul(&dev, kind, l, rows, 1)?;
                let t = if once.host >= 1e-3 { once } else { time_matmul(&dev, kind, l, rows, ((2e-3 / once.host.max(1e-7)) as usize).clamp(3, 200))? };
                secs += t.device.unwrap_or(t.host);
                if secs > best {
                    complete = false;
                    break 'products;
                }
            }
        }
        if complete {
            best = best.min(secs);
        }
        out.push((name, secs * 1e3, complete));
    }
    out.sort_by(|a, b| b.2.cmp(&a.2).then(a.1.total_cmp(&b.1)));
    Ok(out)
}

/// The kept choice for `key`, if the cache has a valid one.
fn lookup(path: &Path, key: &str) -> Option<KernelName> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get(key)?.get("kernels")?.as_str()?.parse().ok()
}

/// Records `name` for `key` unless another run recorded one first; returns the kept name.
/// The read-modify-write happens under an exclusive lock on `<cache>.lock`; an unreadable cache
/// is replaced.
fn record(path: &Path, key: &TuningKey, name: KernelName, timings: &Timings) -> Result<KernelName> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let lock_path = path.with_extension("lock");
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).with_context(|| format!("cannot open {}", lock_path.display()))?;
    lock.lock().with_context(|| format!("cannot lock {}", lock_path.display()))?;
    let text = key.to_string();
    if let Some(kept) = lookup(path, &text) {
        return Ok(kept);
    }
    let mut all: Map<String, Value> = std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    // a dropped candidate's figure is a lower bound: recorded as the string ">ms"
    let ms: Map<String, Value> = timings.iter().map(|(n, ms, all)| (n.to_string(), if *all { json!(ms) } else { json!(format!(">{ms:.3}")) })).collect();
    all.insert(text, json!({"kernels": name, "ms_per_step_products": ms, "key": key}));
    write_atomic(path, serde_json::to_string_pretty(&Value::Object(all))?.as_bytes())?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::model::{Activation, Loss, Reduction};

    #[test]
    fn a_selection_is_auto_or_a_name_and_round_trips() {
        assert_eq!("auto".parse::<KernelSelection>().unwrap(), KernelSelection::Auto);
        assert_eq!("tiled-32".parse::<KernelSelection>().unwrap(), KernelSelection::Named(KernelName::Tiled32));
        for s in ["auto", "scalar", "plain-software", "tiled-128"] {
            let sel: KernelSelection = s.parse().unwrap();
            assert_eq!(sel.to_string(), s);
            assert_eq!(serde_json::to_value(sel).unwrap(), json!(s));
        }
        assert!("fastest".parse::<KernelSelection>().unwrap_err().to_string().contains("unknown kernels 'fastest'"));
        assert!(serde_json::from_value::<KernelSelection>(json!("")).is_err());
    }

    fn info() -> wgpu::AdapterInfo {
        wgpu::AdapterInfo {
            name: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
            vendor: 0x10005,
            device: 0,
            device_type: wgpu::DeviceType::Cpu,
            device_pci_bus_id: String::new(),
            driver: "llvmpipe".into(),
            driver_info: "Mesa 22.3.6 (LLVM 15.0.6)".into(),
            backend: wgpu::Backend::Vulkan,
            subgroup_min_size: 8,
            subgroup_max_size: 8,
            transient_saves_memory: None,
            limit_bucket: None,
        }
    }

    fn spec(layers: &[usize]) -> ModelSpec {
        let activations = vec![Activation::Relu; layers.len() - 1];
        ModelSpec { layers: layers.to_vec(), activations, loss: Loss::HalfSse, label_smoothing: 0.0, reduction: Reduction::Mean, input_norm: Default::default(), feature_norm: None, classes: Vec::new() }
    }

    #[test]
    fn a_key_is_the_shape_class_and_its_text_is_the_cache_files_key() {
        let k = TuningKey::new(&info(), &spec(&[784, 128, 64, 10]), 64);
        assert_eq!(k.widths, vec![1024, 128, 64, 16]);
        assert_eq!(k.batch, 64);
        // the text earlier versions wrote, so their caches stay valid
        assert_eq!(
            k.to_string(),
            "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, 10005:0000, driver llvmpipe Mesa 22.3.6 (LLVM 15.0.6)) | widths 1024-128-64-16 | batch 64"
        );
        // one class: widths and batch within the same powers of two
        assert_eq!(TuningKey::new(&info(), &spec(&[784, 120, 60, 10]), 50), k);
        assert_ne!(TuningKey::new(&info(), &spec(&[784, 129, 64, 10]), 64), k);
        assert_ne!(TuningKey::new(&info(), &spec(&[784, 128, 64, 10]), 65), k);
        let mut other = info();
        other.driver_info = "Mesa 24.0".into();
        assert_ne!(TuningKey::new(&other, &spec(&[784, 128, 64, 10]), 64), k);
    }

    #[test]
    fn a_key_round_trips_through_json() {
        let k = TuningKey::new(&info(), &spec(&[784, 30, 10]), 20);
        let v = serde_json::to_value(&k).unwrap();
        assert_eq!(v["widths"], json!([1024, 32, 16]));
        assert_eq!(serde_json::from_value::<TuningKey>(v).unwrap(), k);
    }

    #[test]
    fn the_kept_choice_is_read_by_the_keys_text_and_a_bad_name_is_no_choice() {
        let dir = std::env::temp_dir().join(format!("gpu-nn-tuning-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kernels.json");
        let k = TuningKey::new(&info(), &spec(&[784, 128, 10]), 64);
        assert_eq!(record(&path, &k, KernelName::Plain, &vec![(KernelName::Plain, 1.0, true)]).unwrap(), KernelName::Plain);
        // a second record keeps the first
        assert_eq!(record(&path, &k, KernelName::Tiled64, &vec![]).unwrap(), KernelName::Plain);
        assert_eq!(lookup(&path, &k.to_string()), Some(KernelName::Plain));
        let kept: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(serde_json::from_value::<TuningKey>(kept[k.to_string()]["key"].clone()).unwrap(), k);
        std::fs::write(&path, json!({ k.to_string(): {"kernels": "fastest"} }).to_string()).unwrap();
        assert_eq!(lookup(&path, &k.to_string()), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
