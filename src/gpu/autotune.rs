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
use super::kernel_config::KernelConfig;
use super::kernels::Matmul;
use super::scheduler::time_matmul;
use crate::atomic_file::write_atomic;
use crate::nn::model::ModelSpec;
use crate::nn::optim::OptimizerSpec;
use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use web_time::Instant;

/// How to pick the kernels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelChoice {
    /// Time the candidates on first use and keep the winner in `cache` (None: time in this
    /// process and keep nothing).
    Tuned { cache: Option<PathBuf> },
    /// `KernelConfig::default_for` the adapter, untimed (tests: no timing noise in the choice).
    Default,
    /// One of `KernelConfig::NAMES`.
    Named(String),
}

/// The kernels a backend was built with, and how they were chosen (for `--verbose`, `bench`).
#[derive(Clone, Debug)]
pub struct Chosen {
    pub name: &'static str,
    pub config: KernelConfig,
    pub how: String,
}

/// The candidates' milliseconds for one training step's matrix products, fastest first, and
/// whether the candidate was timed to the end (else it was dropped once slower than the best).
type Timings = Vec<(&'static str, f64, bool)>;

/// Resolves `choice` on `gpu` for `spec` trained in batches of `batch`.
pub fn choose(gpu: &Gpu, spec: &ModelSpec, opt: &OptimizerSpec, batch: usize, choice: &KernelChoice) -> Result<Chosen> {
    let (default_name, default) = KernelConfig::default_for(&gpu.info, gpu.features, is_software(&gpu.info));
    match choice {
        KernelChoice::Default => Ok(Chosen { name: default_name, config: default, how: "the adapter's default".into() }),
        KernelChoice::Named(n) => {
            let (name, config) = named_for(gpu, n)?;
            Ok(Chosen { name, config, how: "chosen with --kernels".into() })
        }
        KernelChoice::Tuned { cache } => {
            if !any_vec4_layer(spec) {
                return Ok(Chosen { name: default_name, config: default, how: "no layer can use the vec4 kernels (widths not multiples of 4)".into() });
            }
            let key = cache_key(gpu, spec, batch);
            if let Some(path) = cache
                && let Some(name) = lookup(path, &key)
            {
                return Ok(Chosen { name, config: KernelConfig::named(name).unwrap(), how: format!("tuned earlier, kept in {}", path.display()) });
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
            Ok(Chosen { name, config: KernelConfig::named(name).unwrap(), how })
        }
    }
}

/// The configuration named `n` (one of `KernelConfig::NAMES`), refused when `gpu` cannot run it.
pub fn named_for(gpu: &Gpu, n: &str) -> Result<(&'static str, KernelConfig)> {
    let Some(name) = KernelConfig::NAMES.into_iter().find(|x| *x == n) else {
        bail!("unknown kernels '{n}'; expected auto or one of {}", KernelConfig::NAMES.join(", "));
    };
    let config = KernelConfig::named(name).unwrap();
    if let Some(why) = config.unsupported(&gpu.info, gpu.features, &gpu.limits) {
        bail!("--kernels {name}: {why}");
    }
    Ok((name, config))
}

fn any_vec4_layer(spec: &ModelSpec) -> bool {
    (0..spec.num_layers()).any(|i| {
        let (a, b) = spec.layer_dims(i);
        a % 4 == 0 && b % 4 == 0
    })
}

/// Adapter, driver and shape class: the widths and the batch rounded up to powers of two (a
/// kernel's ranking changes with the order of magnitude of a product, not with every size).
pub fn cache_key(gpu: &Gpu, spec: &ModelSpec, batch: usize) -> String {
    let i = &gpu.info;
    let widths: Vec<String> = spec.layers.iter().map(|w| w.next_power_of_two().to_string()).collect();
    format!(
        "{} ({:?}, {:04x}:{:04x}, driver {} {}) | widths {} | batch {}",
        i.name,
        i.backend,
        i.vendor,
        i.device,
        i.driver,
        i.driver_info,
        widths.join("-"),
        batch.next_power_of_two()
    )
}

/// Every supported candidate's time for the products of one training step, fastest first.
/// The adapter's default goes first and sets the bar; a candidate is dropped as soon as its
/// products so far take longer than the best complete step (it cannot win), so slow families
/// cost a product or two, not a whole step: on lavapipe that keeps tuning the wide network at
/// seconds instead of minutes. Dropped candidates are listed with the time at which they were
/// dropped, marked `>`.
fn time_candidates(gpu: &Gpu, spec: &ModelSpec, opt: &OptimizerSpec, batch: usize, default: &'static str) -> Result<Timings> {
    let mut names: Vec<&'static str> = vec![default];
    names.extend(KernelConfig::NAMES.into_iter().filter(|n| *n != default));
    let mut out: Timings = Vec::new();
    let mut best = f64::INFINITY;
    for name in names {
        let config = KernelConfig::named(name).unwrap();
        if config.unsupported(&gpu.info, gpu.features, &gpu.limits).is_some() {
            continue;
        }
        let dev = Device::new(gpu.clone(), spec, opt, batch, config).with_context(|| format!("tuning kernels: building {name}"))?;
        dev.write_static_dims();
        let rows = batch.min(dev.layout.rows_cap());
        let mut secs = 0.0;
        let mut complete = true;
        'products: for l in 1..spec.layers.len() {
            for kind in [Matmul::Forward, Matmul::BackwardData, Matmul::WeightGrad] {
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
fn lookup(path: &Path, key: &str) -> Option<&'static str> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let name = v.get(key)?.get("kernels")?.as_str()?;
    KernelConfig::NAMES.into_iter().find(|n| *n == name)
}

/// Records `name` for `key` unless another run recorded one first; returns the kept name.
/// The read-modify-write happens under an exclusive lock on `<cache>.lock`; an unreadable cache
/// is replaced.
fn record(path: &Path, key: &str, name: &'static str, timings: &Timings) -> Result<&'static str> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let lock_path = path.with_extension("lock");
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).with_context(|| format!("cannot open {}", lock_path.display()))?;
    lock.lock().with_context(|| format!("cannot lock {}", lock_path.display()))?;
    if let Some(kept) = lookup(path, key) {
        return Ok(kept);
    }
    let mut all: Map<String, Value> = std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    // a dropped candidate's figure is a lower bound: recorded as the string ">ms"
    let ms: Map<String, Value> = timings.iter().map(|(n, ms, all)| (n.to_string(), if *all { json!(ms) } else { json!(format!(">{ms:.3}")) })).collect();
    all.insert(key.to_string(), json!({"kernels": name, "ms_per_step_products": ms}));
    write_atomic(path, serde_json::to_string_pretty(&Value::Object(all))?.as_bytes())?;
    Ok(name)
}
