//! The page's session (`PageSession`): a preset with the page's overrides, trained epoch by
//! epoch on the visitor's WebGPU adapter or on the CPU backend compiled to WebAssembly, through
//! a `core::Session` like every other front-end: the same plan, the same training loop, the
//! same parity with the same verdict as `gpu-nn parity`.

use crate::core::checkpoint::{FileDtype, model_bytes};
use crate::core::config::{BackendKind, Config, Precision, preset_json};
use crate::core::metrics::EpochMetrics;
use crate::core::parity::{DEFAULT_TOLERANCE, ParityReport};
use crate::core::run_data::{IdxBytes, from_bytes};
use crate::core::train::{Controls, Observer};
use crate::core::{Engines, Plan, Session, Settings};
use crate::data::picture::{decode_image, preprocess};
use crate::data::sources::FILES;
use crate::gpu::{Gpu, KernelChoice};
use crate::nn::backend::{EvalResult, StepStats};
use crate::nn::model::Params;
use crate::report::confusion::Confusion;
use anyhow::{Result, bail};
use std::future::Future;
use std::pin::Pin;

/// What the page trains on.
pub enum PageEngine {
    /// A GPU device the page opened (its WebGPU adapter): the adapter's default kernels (or
    /// those the overrides name); no tuning, which would hold the page for seconds.
    WebGpu(Gpu),
    /// The CPU f32 backend on one thread (WebAssembly has no threads here).
    Cpu,
}

/// A preset being trained in the page.
pub struct PageSession {
    session: Session,
    on_gpu: bool,
    /// The last evaluation on the test set.
    test: Option<EvalResult>,
}

/// The loop's progress to a callback `(done_samples, total_samples, running_loss)`.
struct Progress<'a> {
    report: &'a mut dyn FnMut(usize, usize, f64),
}

impl Observer for Progress<'_> {
    fn progress(&mut self, _epoch: usize, done: usize, total: usize, st: &StepStats) {
        (self.report)(done, total, st.loss_sum / st.samples.max(1) as f64);
    }
}

/// An await that hands the browser its turn (to draw the progress bar) between two chunks.
pub type Pause<'a> = &'a dyn Fn() -> Pin<Box<dyn Future<Output = ()>>>;

impl PageSession {
    /// A session of `preset` with `overrides` (a JSON object layered over it, e.g.
    /// `{"training":{"epochs":1}}`) on `engine`, its data from `files` (the four IDX files of
    /// the dataset, gzip or raw, in `sources::FILES` order; none for an inline preset).
    pub fn create(preset: &str, engine: PageEngine, files: Option<&[Vec<u8>; 4]>, overrides: &str) -> Result<PageSession> {
        let layer: serde_json::Value = serde_json::from_str(if overrides.trim().is_empty() { "{}" } else { overrides })
            .map_err(|e| anyhow::anyhow!("overrides: not a JSON object ({e})"))?;
        let mut cfg = Config::from_layers(&[preset_json(preset)?, layer])?;
        let on_gpu = matches!(engine, PageEngine::WebGpu(_));
        if on_gpu {
            cfg.backend.kind = BackendKind::Gpu;
        } else {
            cfg.backend.kind = BackendKind::Cpu;
            cfg.backend.precision = Precision::F32;
            cfg.backend.threads = Some(1);
        }
        let named = files.map(|b| IdxBytes { files: std::array::from_fn(|i| (b[i].as_slice(), FILES[i])) });
        let data = from_bytes(&cfg, named.as_ref())?;
        let plan = Plan::new(cfg, data)?;
        let settings = Settings { auto_kernels: KernelChoice::Default, ..Default::default() };
        let mut engines = match engine {
            PageEngine::WebGpu(gpu) => Engines::with_gpu(settings, gpu),
            PageEngine::Cpu => Engines::new(settings),
        };
        let session = Session::start(plan, &mut engines)?;
        Ok(PageSession { session, on_gpu, test: None })
    }

    /// What computes: "gpu: SwiftShader Device (…)" or "cpu f32 (WebAssembly, 1 thread)".
    pub fn engine(&self) -> String {
        if self.on_gpu { self.session.describe() } else { "cpu f32 (WebAssembly, 1 thread)".into() }
    }
    pub fn config(&self) -> &Config {
        self.session.config()
    }
    pub fn epochs(&self) -> usize {
        self.config().training.epochs
    }
    pub fn steps_per_epoch(&self) -> usize {
        self.session.plan().steps_per_epoch()
    }
    pub fn train_size(&self) -> usize {
        self.session.plan().data().train.len()
    }
    pub fn test_size(&self) -> usize {
        self.session.plan().data().test.as_ref().map_or(0, |t| t.len())
    }

    /// Trains the next epoch, reporting `progress(done_samples, total_samples, running_loss)`
    /// after each chunk and awaiting `pause` there; its metrics.
    pub async fn train_epoch(&mut self, progress: &mut dyn FnMut(usize, usize, f64), pause: Option<Pause<'_>>) -> Result<EpochMetrics> {
        let epochs = self.epochs();
        if self.session.state().epoch >= epochs {
            bail!("all {epochs} epochs are trained");
        }
        // the loop stops at the first step of the next epoch: this epoch ends, with its
        // evaluation, exactly as in a run of all epochs (same schedule, same batch order)
        let stop = ((self.session.state().epoch + 1) * self.steps_per_epoch()) as u64;
        let ctl = Controls { stop_after_steps: Some(stop), between_chunks: pause, ..Default::default() };
        let r = self.session.train_async(&mut Progress { report: progress }, ctl).await?;
        self.test = r.test;
        r.metrics.last().cloned().ok_or_else(|| anyhow::anyhow!("internal: the epoch left no metrics"))
    }

    /// The confusion matrix of the last test evaluation, if there is one.
    pub fn confusion(&self) -> Result<Option<Confusion>> {
        let (Some(test), Some(eval)) = (&self.session.plan().data().test, &self.test) else { return Ok(None) };
        Confusion::of_eval(self.config(), test, eval).map(Some)
    }

    pub async fn params(&mut self) -> Result<Params> {
        self.session.params_async().await
    }

    /// A picture of a digit (PNG or JPEG bytes, e.g. the drawing canvas) brought into MNIST's
    /// form as `gpu-nn predict` does and classified: the class, every class's probability, and
    /// the 28×28 pixels the network saw.
    pub async fn classify_png(&mut self, png: &[u8]) -> Result<(u8, Vec<f64>, Vec<f32>)> {
        let img = decode_image(png, "the drawing")?;
        let prepared = preprocess(&img)?;
        let (class, probs) = self.session.classify_async(&prepared.pixels).await?;
        Ok((class, probs, prepared.pixels))
    }

    /// `steps` training steps from where the session stands on the f64 reference and on its
    /// engine, each step from the same weights: `Session::parity`, the very check and verdict
    /// of `gpu-nn parity` (its default tolerance). The session's own training is left as it was.
    pub async fn parity(&mut self, steps: usize) -> Result<ParityReport> {
        self.session.parity_async(steps.max(1), true, DEFAULT_TOLERANCE).await
    }

    /// The trained model as a `.safetensors` file that `gpu-nn eval --model` reads.
    pub async fn safetensors(&mut self) -> Result<Vec<u8>> {
        let p = self.session.params_async().await?;
        model_bytes(&p, &self.config().model, FileDtype::F32)
    }
}
