//! The page's session handed to JavaScript (feature `web`, built for wasm32 by
//! `scripts/build-web.sh`; the page is `web/`): `Session` wraps `PageSession`, which trains a
//! preset with the very kernels of the command line on the visitor's WebGPU adapter, or on the
//! CPU backend compiled to WebAssembly, through the same core session; the training loop's
//! awaits hand the browser its turn.
//!
//! Values cross to JavaScript as plain objects (through JSON) and typed arrays; every error
//! reaches the page as one line.

use super::session::{PageEngine, PageSession};
use crate::core::config::{Config, PRESETS, preset_json};
use crate::gpu::Gpu;
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

/// A preset being trained in the page (`PageSession`).
#[wasm_bindgen]
pub struct Session {
    inner: PageSession,
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
        let engine = match engine.as_str() {
            "webgpu" => PageEngine::WebGpu(Gpu::request(wgpu::Backends::BROWSER_WEBGPU).await.map_err(js_err)?),
            "cpu" => PageEngine::Cpu,
            other => return Err(JsError::new(&format!("unknown engine '{other}'; expected webgpu or cpu"))),
        };
        let files = idx_files(&files)?;
        let inner = PageSession::create(&preset, engine, files.as_ref(), &overrides).map_err(js_err)?;
        Ok(Session { inner })
    }

    /// What computes: "gpu: SwiftShader Device (…)" or "cpu f32 (WebAssembly, 1 thread)".
    pub fn engine(&self) -> String {
        self.inner.engine()
    }
    pub fn epochs(&self) -> usize {
        self.inner.epochs()
    }
    /// The session's resolved configuration as JSON (what `gpu-nn train` writes as config.json).
    pub fn config(&self) -> Result<String, JsError> {
        serde_json::to_string(self.inner.config()).map_err(|e| JsError::new(&e.to_string()))
    }
    pub fn steps_per_epoch(&self) -> usize {
        self.inner.steps_per_epoch()
    }
    pub fn train_size(&self) -> usize {
        self.inner.train_size()
    }
    pub fn test_size(&self) -> usize {
        self.inner.test_size()
    }

    /// Trains the next epoch, calling `progress(done_samples, total_samples, running_loss)` as
    /// it goes; resolves to `{epoch, train_loss, train_acc, test_loss, test_acc, seconds}`.
    pub async fn train_epoch(&mut self, progress: Function) -> Result<JsValue, JsError> {
        let mut report = |done: usize, total: usize, loss: f64| {
            let _ = progress.call3(&JsValue::NULL, &(done as f64).into(), &(total as f64).into(), &loss.into());
        };
        let pause = next_turn;
        let m = self.inner.train_epoch(&mut report, Some(&pause)).await.map_err(js_err)?;
        to_js(&serde_json::json!({
            "epoch": m.epoch, "train_loss": m.train_loss, "train_acc": m.train_acc,
            "test_loss": m.test_loss, "test_acc": m.test_acc, "seconds": m.seconds,
        }))
    }

    /// The confusion matrix of the last test evaluation: `{classes, counts}` (Uint32Array,
    /// row = true class, column = predicted), or null.
    pub fn confusion(&self) -> Result<JsValue, JsError> {
        let Some(c) = self.inner.confusion().map_err(js_err)? else { return Ok(JsValue::NULL) };
        let obj = Object::new();
        set(&obj, "classes", c.classes as f64);
        let counts: Vec<u32> = c.counts.iter().map(|&n| n as u32).collect();
        set(&obj, "counts", Uint32Array::from(counts.as_slice()));
        Ok(obj.into())
    }

    /// The parameters: `[{rows, cols, weight, bias}]` per layer (Float64Arrays, W row-major,
    /// rows = outputs).
    pub async fn params(&mut self) -> Result<JsValue, JsError> {
        let p = self.inner.params().await.map_err(js_err)?;
        let layers = js_sys::Array::new();
        for (l, layer) in p.layers.iter().enumerate() {
            let (n_in, n_out) = self.inner.config().model.layer_dims(l);
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
        let (class, probs, pixels) = self.inner.classify_png(&png).await.map_err(js_err)?;
        let obj = Object::new();
        set(&obj, "class", class as f64);
        set(&obj, "probabilities", Float64Array::from(probs.as_slice()));
        set(&obj, "pixels", Float32Array::from(pixels.as_slice()));
        Ok(obj.into())
    }

    /// `steps` training steps from where the session stands on the f64 reference and on this
    /// session's engine, each from the same weights, compared tensor by tensor: the check and
    /// verdict of `gpu-nn parity` (`core::parity`). The session's own training is left as it
    /// was. `{passed, tolerance, worst, engine, tensors: [{name, max_abs, max_rel, step}]}`.
    pub async fn parity(&mut self, steps: usize) -> Result<JsValue, JsError> {
        let r = self.inner.parity(steps).await.map_err(js_err)?;
        let tensors: Vec<serde_json::Value> =
            r.tensors.iter().map(|t| serde_json::json!({"name": t.name, "max_abs": t.max_abs, "max_rel": t.max_rel, "step": t.step})).collect();
        to_js(&serde_json::json!({"passed": r.passed(), "tolerance": r.tolerance, "worst": r.worst(), "engine": self.inner.engine(), "tensors": tensors}))
    }

    /// The trained model as a `.safetensors` file that `gpu-nn eval --model` reads.
    pub async fn safetensors(&mut self) -> Result<Vec<u8>, JsError> {
        self.inner.safetensors().await.map_err(js_err)
    }
}
