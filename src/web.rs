//! The library in a web page (feature `web`, built for wasm32 by `scripts/build-web.sh`; the
//! page is `web/`): a `Session` trains a preset with the very kernels of the command line on
//! the visitor's WebGPU adapter, or on the CPU backend compiled to WebAssembly, through the
//! same training loop (`core::train::train_from_async`, whose awaits hand the browser its
//! turn), and checks the GPU against the f64 reference on the spot (`parity`).
//!
//! Values cross to JavaScript as plain objects (through JSON) and typed arrays; every error
//! reaches the page as one line.

use crate::nn::backend::{Backend, EvalResult, Split, StepStats};
use crate::core::checkpoint::{FileDtype, model_bytes};
use crate::core::config::{Config, PRESETS, preset_json};
use crate::core::inference::classify;
use crate::core::metrics::EpochMetrics;
use crate::core::run_data::{IdxBytes, RunData, from_bytes, measure};
use crate::core::run_state::RunState;
use crate::core::train::{Controls, Observer, step_counts, train_from_async};
use crate::cpu::{FastBackend, ReferenceBackend};
use crate::data::picture::{decode_image, preprocess};
use crate::data::sources::FILES;
use crate::gpu::autotune::KernelChoice;
use crate::gpu::{Gpu, GpuBackend};
use crate::report::confusion::Confusion;
use crate::workbench::compare::{TOLERANCE, TensorError, accumulate, tolerance_for};
use js_sys::{Float32Array, Float64Array, Function, Object, Promise, Reflect, Uint8Array, Uint32Array};
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// An error as the page shows it: one line, causes included.
fn js_err(e: anyhow::Error) -> JsError {
    JsError::new(&format!("{e:#}").replace('\n', " "))
}

/// A Rust value as a JavaScript object (through JSON).
fn to_js<T: Serialize>(v: &T) -> Result<JsValue, JsError> {
    let text = serde_json::to_string(v).map_err(|e| JsError::new(&e.to_string()))?;
    js_sys::JSON::parse(&text).map_err(|_| JsError::new("internal: JSON the page cannot read"))
}

fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(obj, &key.into(), &value.into());
}

/// The shipped presets: `{name, description, needs_data}` (data: the four MNIST IDX files).
#[wasm_bindgen]
pub fn presets() -> Result<JsValue, JsError> {
    #[derive(Serialize)]
    struct Entry {
        name: &'static str,
        description: String,
        needs_data: bool,
    }
    let mut list = Vec::new();
    for (name, _) in PRESETS {
        let cfg = Config::from_layers(&[preset_json(name).map_err(js_err)?]).map_err(js_err)?;
        list.push(Entry { name, description: cfg.description.clone(), needs_data: cfg.data.dataset != crate::data::DatasetName::Inline });
    }
    to_js(&list)
}

/// The WebGPU adapter the page would train on, `{name, backend, device_type, limits}`, or
/// `null` where the browser has none.
#[wasm_bindgen]
pub async fn webgpu_adapter() -> Result<JsValue, JsError> {
    let Ok(gpu) = Gpu::request(wgpu::Backends::BROWSER_WEBGPU).await else { return Ok(JsValue::NULL) };
    let l = &gpu.limits;
    to_js(&serde_json::json!({
        "name": gpu.info.name,
        "backend": format!("{:?}", gpu.info.backend),
        "device_type": format!("{:?}", gpu.info.device_type),
        "limits": {
            "max_buffer_size": l.max_buffer_size,
            "max_storage_buffer_binding_size": l.max_storage_buffer_binding_size,
            "max_compute_workgroup_storage_size": l.max_compute_workgroup_storage_size,
            "max_compute_invocations_per_workgroup": l.max_compute_invocations_per_workgroup,
            "max_compute_workgroups_per_dimension": l.max_compute_workgroups_per_dimension,
        }
    }))
}

/// A promise resolved by `setTimeout(0)`: the browser's turn to draw and handle input.
fn next_turn() -> Pin<Box<dyn Future<Output = ()>>> {
    let promise = Promise::new(&mut |resolve, _| {
        if let Ok(f) = Reflect::get(&js_sys::global(), &"setTimeout".into()).and_then(|f| f.dyn_into::<Function>().map_err(JsValue::from)) {
            let _ = f.call2(&JsValue::NULL, &resolve, &JsValue::from(0));
        }
    });
    Box::pin(async move {
        let _ = JsFuture::from(promise).await;
    })
}

/// Reports the loop's progress to a JavaScript callback `(done_samples, total_samples, loss)`.
struct PageObserver<'a> {
    progress: &'a Function,
}

impl Observer for PageObserver<'_> {
    fn progress(&mut self, _epoch: usize, done: usize, total: usize, st: &StepStats) {
        let loss = st.loss_sum / st.samples.max(1) as f64;
        let _ = self.progress.call3(&JsValue::NULL, &(done as f64).into(), &(total as f64).into(), &loss.into());
    }
}

/// A preset being trained in the page: its configuration, data, backend and where it stands.
#[wasm_bindgen]
pub struct Session {
    cfg: Config,
    data: RunData,
    backend: Box<dyn Backend>,
    /// Whether the backend is the WebGPU one.
    on_gpu: bool,
    state: RunState,
    /// The last evaluation on the test set.
    test: Option<EvalResult>,
}

/// The four IDX files from the page's object `{train_images, train_labels, test_images,
/// test_labels}` (Uint8Arrays).
fn idx_files(files: &JsValue) -> Result<Option<[Vec<u8>; 4]>, JsError> {
    let keys = ["train_images", "train_labels", "test_images", "test_labels"];
    let mut out: Vec<Vec<u8>> = Vec::new();
    for k in keys {
        let v = Reflect::get(files, &k.into()).unwrap_or(JsValue::UNDEFINED);
        if v.is_undefined() || v.is_null() {
            return Ok(None);
        }
        out.push(Uint8Array::new(&v).to_vec());
    }
    Ok(Some(out.try_into().expect("four files")))
}

#[wasm_bindgen]
impl Session {
    /// A session of `preset` with `overrides` (a JSON object layered over it, e.g.
    /// `{"training":{"epochs":1}}`) on `engine` ("webgpu" or "cpu"), its data from `files`.
    pub async fn create(preset: String, engine: String, files: JsValue, overrides: String) -> Result<Session, JsError> {
        let layer: serde_json::Value = serde_json::from_str(if overrides.trim().is_empty() { "{}" } else { &overrides })
            .map_err(|e| JsError::new(&format!("overrides: not a JSON object ({e})")))?;
        let mut cfg = Config::from_layers(&[preset_json(&preset).map_err(js_err)?, layer]).map_err(js_err)?;
        cfg.validate().map_err(js_err)?;
        let bytes = idx_files(&files)?;
        let data = match &bytes {
            Some(b) => {
                let named = IdxBytes { files: std::array::from_fn(|i| (b[i].as_slice(), FILES[i])) };
                from_bytes(&cfg, Some(&named))
            }
            None => from_bytes(&cfg, None),
        }
        .map_err(js_err)?;
        measure(&mut cfg, &data).map_err(js_err)?;
        let n_batch = cfg.training.batch_size.resolve(data.train.len());
        let (mut backend, on_gpu): (Box<dyn Backend>, bool) = match engine.as_str() {
            "webgpu" => {
                let gpu = Gpu::request(wgpu::Backends::BROWSER_WEBGPU).await.map_err(js_err)?;
                // the adapter's default kernels, or those the overrides name ({"backend":{"kernels":…}});
                // no tuning: timing every configuration would hold the page for seconds
                let kernels = match &cfg.backend.kernels {
                    Some(n) if n != "auto" => KernelChoice::Named(n.clone()),
                    _ => KernelChoice::Default,
                };
                let b = GpuBackend::with_gpu(gpu, &cfg.model, &cfg.optimizer, n_batch, false, &kernels).map_err(js_err)?;
                (Box::new(b), true)
            }
            "cpu" => (Box::new(FastBackend::with_threads(&cfg.model, &cfg.optimizer, 1)), false),
            other => return Err(JsError::new(&format!("unknown engine '{other}'; expected webgpu or cpu"))),
        };
        backend.set_params(&cfg.initial_params().map_err(js_err)?).map_err(js_err)?;
        crate::core::train::attach_all(&data, backend.as_mut()).map_err(js_err)?;
        Ok(Session { cfg, data, backend, on_gpu, state: RunState::default(), test: None })
    }

    /// What computes: "gpu: SwiftShader Device (…)" or "cpu f32 (wasm, 1 thread)".
    pub fn engine(&self) -> String {
        if self.on_gpu { self.backend.describe() } else { "cpu f32 (WebAssembly, 1 thread)".into() }
    }
    pub fn epochs(&self) -> usize {
        self.cfg.training.epochs
    }
    pub fn steps_per_epoch(&self) -> usize {
        step_counts(&self.cfg, self.data.train.len()).0
    }
    pub fn train_size(&self) -> usize {
        self.data.train.len()
    }
    pub fn test_size(&self) -> usize {
        self.data.test.as_ref().map_or(0, |t| t.len())
    }

    /// Trains the next epoch, calling `progress(done_samples, total_samples, running_loss)` as
    /// it goes; resolves to `{epoch, train_loss, train_acc, test_loss, test_acc, seconds}`.
    pub async fn train_epoch(&mut self, progress: Function) -> Result<JsValue, JsError> {
        if self.state.epoch >= self.cfg.training.epochs {
            return Err(JsError::new(&format!("all {} epochs are trained", self.cfg.training.epochs)));
        }
        // the loop stops at the first step of the next epoch: this epoch ends, with its
        // evaluation, exactly as in a run of all epochs (same schedule, same batch order)
        let steps_per_epoch = step_counts(&self.cfg, self.data.train.len()).0;
        let stop = ((self.state.epoch + 1) * steps_per_epoch) as u64;
        let pause = next_turn;
        let ctl = Controls { stop_after_steps: Some(stop), between_chunks: Some(&pause), ..Default::default() };
        let mut obs = PageObserver { progress: &progress };
        let r = train_from_async(&self.cfg, &self.data, self.backend.as_mut(), &mut obs, self.state.clone(), ctl).await.map_err(js_err)?;
        let m: EpochMetrics = r.metrics.last().cloned().ok_or_else(|| JsError::new("internal: the epoch left no metrics"))?;
        self.state = r.state;
        self.test = r.test;
        to_js(&serde_json::json!({
            "epoch": m.epoch, "train_loss": m.train_loss, "train_acc": m.train_acc,
            "test_loss": m.test_loss, "test_acc": m.test_acc, "seconds": m.seconds,
        }))
    }

    /// The confusion matrix of the last test evaluation: `{classes, counts}` (Uint32Array,
    /// row = true class, column = predicted), or null.
    pub fn confusion(&self) -> Result<JsValue, JsError> {
        let (Some(test), Some(eval)) = (&self.data.test, &self.test) else { return Ok(JsValue::NULL) };
        let c = Confusion::of_eval(&self.cfg, test, eval).map_err(js_err)?;
        let obj = Object::new();
        set(&obj, "classes", c.classes as f64);
        let counts: Vec<u32> = c.counts.iter().map(|&n| n as u32).collect();
        set(&obj, "counts", Uint32Array::from(counts.as_slice()));
        Ok(obj.into())
    }

    /// The parameters: `[{rows, cols, weight, bias}]` per layer (Float64Arrays, W row-major,
    /// rows = outputs).
    pub async fn params(&mut self) -> Result<JsValue, JsError> {
        let p = self.backend.params_async().await.map_err(js_err)?;
        let layers = js_sys::Array::new();
        for (l, layer) in p.layers.iter().enumerate() {
            let (n_in, n_out) = self.cfg.model.layer_dims(l);
            let obj = Object::new();
            set(&obj, "rows", n_out as f64);
            set(&obj, "cols", n_in as f64);
            set(&obj, "weight", Float64Array::from(layer.weight.as_slice()));
            set(&obj, "bias", Float64Array::from(layer.bias.as_slice()));
            layers.push(&obj);
        }
        Ok(layers.into())
    }

    /// A picture of a digit (PNG or JPEG bytes, e.g. the drawing canvas) brought into MNIST's
    /// form as `gpu-nn predict` does and classified: `{class, probabilities, pixels}`.
    pub async fn classify_png(&mut self, png: Vec<u8>) -> Result<JsValue, JsError> {
        let img = decode_image(&png, "the drawing").map_err(js_err)?;
        let prepared = preprocess(&img).map_err(js_err)?;
        let params = self.backend.params_async().await.map_err(js_err)?.map(|x| x as f32);
        let (class, probs) = classify(&self.cfg.model, &params, &prepared.pixels);
        let obj = Object::new();
        set(&obj, "class", class as f64);
        set(&obj, "probabilities", Float64Array::from(probs.as_slice()));
        set(&obj, "pixels", Float32Array::from(prepared.pixels.as_slice()));
        Ok(obj.into())
    }

    /// `steps` training steps of the run's batches on the f64 reference and on this session's
    /// engine, both from the session's current weights and optimiser state, compared tensor by
    /// tensor; the engine restarts every step from the reference's weights and state, so each
    /// step's error is the kernels' own. The trained state matters: from a fresh Adam state the
    /// first step is lr·sign(g), which turns a gradient at rounding-noise level into a full
    /// step of either sign. The session's own training is left as it was.
    /// `{passed, tolerance, engine, tensors: [{name, max_abs, max_rel}]}`.
    pub async fn parity(&mut self, steps: usize) -> Result<JsValue, JsError> {
        let cfg = &self.cfg;
        let n = self.data.train.len();
        let batch = cfg.training.batch_size.resolve(n).min(n);
        let saved_params = self.backend.params_async().await.map_err(js_err)?;
        let saved_state = self.backend.optimizer_state_async().await.map_err(js_err)?;
        let mut cpu = ReferenceBackend::new(&cfg.model, &cfg.optimizer);
        cpu.set_params(&saved_params).map_err(js_err)?;
        cpu.set_optimizer_state(&saved_state).map_err(js_err)?;
        cpu.attach(Split::Train, self.data.train.clone()).map_err(js_err)?;
        let mut worst: Vec<TensorError> = Vec::new();
        let order = crate::core::train::epoch_order(cfg, n, self.state.epoch);
        let steps_per_epoch = n.div_ceil(batch);
        for s in 0..steps.max(1) {
            let lo = (s % steps_per_epoch) * batch;
            let idx = &order[lo..(lo + batch).min(n)];
            let lr = cfg.optimizer.lr;
            self.backend.set_params(&cpu.params().map_err(js_err)?).map_err(js_err)?;
            self.backend.set_optimizer_state(&cpu.optimizer_state().map_err(js_err)?).map_err(js_err)?;
            let c = cpu.trace_step(idx, lr).map_err(js_err)?;
            let g = self.backend.trace_step_async(idx, lr).await.map_err(js_err)?;
            accumulate(&c, &g, s + 1, &mut worst).map_err(js_err)?;
        }
        // the session goes on from where it stood
        self.backend.set_params(&saved_params).map_err(js_err)?;
        self.backend.set_optimizer_state(&saved_state).map_err(js_err)?;
        let passed = worst.iter().all(|t| t.max_rel <= tolerance_for(&t.name, TOLERANCE));
        let tensors: Vec<serde_json::Value> = worst.iter().map(|t| serde_json::json!({"name": t.name, "max_abs": t.max_abs, "max_rel": t.max_rel})).collect();
        to_js(&serde_json::json!({"passed": passed, "tolerance": TOLERANCE, "engine": self.engine(), "tensors": tensors}))
    }

    /// The trained model as a `.safetensors` file that `gpu-nn eval --model` reads.
    pub async fn safetensors(&mut self) -> Result<Vec<u8>, JsError> {
        let p = self.backend.params_async().await.map_err(js_err)?;
        model_bytes(&p, &self.cfg.model, FileDtype::F32).map_err(js_err)
    }
}
