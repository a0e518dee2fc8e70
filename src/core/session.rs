//! A run in progress (`Session`): its plan, the backend `Engines` built for it, and where the
//! run stands (`RunState`). Every front-end drives one: `gpu-nn train` and each sweep cell
//! (start or resume, then train with an observer that writes the run directory), `parity`,
//! `trace`, `bench`, `eval`, the web page, and Rust programs.
//!
//! ```no_run
//! use gpu_nn::core::{Engines, Plan, Session, Settings};
//! use gpu_nn::core::config::{Config, preset_json};
//! use gpu_nn::core::train::Silent;
//!
//! # fn main() -> anyhow::Result<()> {
//! let cfg = Config::from_layers(&[preset_json("seed001")?])?;
//! let plan = Plan::load(cfg, &Default::default(), true)?;
//! let mut engines = Engines::new(Settings::default());
//! let mut session = Session::start(plan, &mut engines)?;
//! let result = session.train(&mut Silent, Default::default())?;
//! println!("test accuracy {:.2} %", 100.0 * result.test.unwrap().accuracy());
//! # Ok(())
//! # }
//! ```

use crate::core::checkpoint::Checkpoint;
use crate::core::config::{BackendKind, Config};
use crate::core::engine::{Computer, Engine, Engines};
use crate::core::inference;
use crate::core::plan::Plan;
use crate::core::run_state::RunState;
use crate::core::train::{Controls, Observer, RunResult, train_async};
use crate::gpu::GpuBackend;
use crate::nn::backend::{Backend, EvalResult, Split, StepTrace};
use crate::nn::math;
use crate::nn::model::Params;
use crate::nn::optim::OptimState;
use anyhow::{Result, bail};

/// Why a checkpoint cannot continue a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum ResumeRefused {
    /// The checkpoint was trained under another configuration: the first difference, as
    /// "path: checkpoint's vs the plan's".
    Config(String),
    /// The checkpoint's position does not fit the plan's steps per epoch (other data).
    Steps { step: u64, at: String, steps_per_epoch: usize, samples: usize, source: String },
    /// The run was computed on another engine.
    Engine { was: String, now: Engine, backend: String },
}

impl std::fmt::Display for ResumeRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResumeRefused::Config(diff) => write!(f, "the checkpoint was trained under another configuration ({diff}, checkpoint vs now)"),
            ResumeRefused::Steps { step, at, steps_per_epoch, samples, source } => write!(
                f,
                "the checkpoint is at step {step} ({at}), which does not fit {steps_per_epoch} steps per epoch over the {samples} training samples of {source}; is --data the same data set?"
            ),
            ResumeRefused::Engine { was, now, backend } => {
                write!(f, "the run was computed on {was} but would now run on {now} ({backend}); resuming on another engine would change the results")
            }
        }
    }
}
impl std::error::Error for ResumeRefused {}

/// The first difference between the configuration a checkpoint was trained under and `cfg`,
/// in what may not change across a resume (`Config::maths_only`); None when they agree.
pub fn checkpoint_difference(ck: &Checkpoint, cfg: &Config) -> Result<Option<String>> {
    // read through the defaults, so settings added to gpu-nn after the checkpoint compare equal
    let trained = Config::from_layers(std::slice::from_ref(&ck.meta.config))
        .map_err(|e| anyhow::anyhow!("the configuration in the checkpoint is invalid: {e:#}"))?
        .maths_only();
    if trained == cfg.maths_only() {
        return Ok(None);
    }
    let diff = crate::core::config::first_difference(&serde_json::to_value(&trained)?, &serde_json::to_value(cfg.maths_only())?);
    Ok(Some(diff.unwrap_or_default()))
}

/// One traced training step (`Session::trace`).
pub struct TracedStep {
    /// The step, 1-based over the run.
    pub step: u64,
    /// Its epoch (0-based) and its place in it (0-based).
    pub epoch: usize,
    pub in_epoch: usize,
    pub lr: f64,
    /// The samples of its batch.
    pub samples: Vec<u32>,
    /// Every tensor the step computed (`Backend::trace_step`).
    pub trace: StepTrace,
}

/// A run in progress (see the module's comment).
pub struct Session {
    plan: Plan,
    computer: Computer,
    engine: Engine,
    state: RunState,
    /// Which splits (train, val, test: `split_index`) the backend holds.
    attached: [bool; 3],
    notes: Vec<String>,
}

fn split_index(s: Split) -> usize {
    match s {
        Split::Train => 0,
        Split::Val => 1,
        Split::Test => 2,
    }
}

impl Session {
    /// `plan` from its initial weights (the initialisation, the explicit values or the
    /// `--init-from` file its configuration names), at the start of the run, on the engine its
    /// configuration asks for.
    pub fn start(plan: Plan, engines: &mut Engines) -> Result<Session> {
        let (params, checked) = plan.config().initial_params_checked()?;
        let mut s = Session::open(plan, engines)?;
        if let (Some(path), Some(checked)) = (&s.plan.config().init_from, checked) {
            s.notes.extend(checked.note(path));
        }
        s.computer.backend().set_params(&params)?;
        Ok(s)
    }

    /// `plan` with the parameters `params` (a trained model to evaluate), at the start of the
    /// run.
    pub fn with_params(plan: Plan, params: &Params, engines: &mut Engines) -> Result<Session> {
        let mut s = Session::open(plan, engines)?;
        s.computer.backend().set_params(params)?;
        Ok(s)
    }

    /// `plan` continued from `ck`: the same batches, learning rates and optimiser state the run
    /// would have had without the interruption. Refused (`ResumeRefused`) when the checkpoint
    /// was trained under another configuration, at a position the plan's data does not have,
    /// or on another engine; `auto` resumes on the engine the run was computed on.
    pub fn resume(plan: Plan, ck: &Checkpoint, engines: &mut Engines) -> Result<Session> {
        if let Some(diff) = checkpoint_difference(ck, plan.config())? {
            return Err(ResumeRefused::Config(diff).into());
        }
        let st = &ck.meta.state;
        let spe = plan.steps_per_epoch();
        if st.step != (st.epoch * spe + st.step_in_epoch) as u64 || st.step_in_epoch > spe {
            let t = &plan.data().train;
            return Err(ResumeRefused::Steps { step: st.step, at: st.describe(), steps_per_epoch: spe, samples: t.len(), source: t.source.clone() }.into());
        }
        // `auto` resumes on the engine the run was computed on, if it is there (auto's own
        // choice may have changed since, e.g. it no longer takes a CPU-emulated adapter)
        let plan = if plan.config().backend.kind == BackendKind::Auto && engines.engine_for(&plan)?.name() != ck.meta.engine {
            let kind = if ck.meta.engine == Engine::Gpu.name() { BackendKind::Gpu } else { BackendKind::Cpu };
            plan.with_backend(|b| b.kind = kind)
        } else {
            plan
        };
        let mut s = Session::open(plan, engines)?;
        if s.engine.name() != ck.meta.engine {
            return Err(ResumeRefused::Engine { was: ck.meta.engine.clone(), now: s.engine, backend: s.describe() }.into());
        }
        if let Some(was) = ck.meta.cpu.as_ref().filter(|_| s.engine != Engine::Gpu) {
            let now = crate::cpu::instruction_sets();
            if *was != now {
                s.notes.push(format!(
                    "note: the run was computed on a CPU with {was}; this one has {now}, whose GEMM kernels round differently: the steps from here on will not be the bytes an uninterrupted run on the first CPU gives"
                ));
            }
        }
        let b = s.computer.backend();
        b.set_params(&ck.params)?;
        b.set_optimizer_state(&ck.optim)?;
        s.state = st.clone();
        Ok(s)
    }

    fn open(plan: Plan, engines: &mut Engines) -> Result<Session> {
        let mut built = engines.build(&plan)?;
        built.computer.backend().set_dropout(plan.dropout())?;
        built.computer.backend().set_augment(plan.augment())?;
        let attached = [built.attached; 3];
        Ok(Session { plan, computer: built.computer, engine: built.engine, state: RunState::default(), attached, notes: engines.take_notes() })
    }

    /// Hands the backend back to `engines`, for the next plan that can reuse it (a sweep's next
    /// cell on the GPU).
    pub fn finish(self, engines: &mut Engines) {
        engines.keep(self.computer, &self.plan);
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }
    pub fn config(&self) -> &Config {
        self.plan.config()
    }
    /// What computes the run.
    pub fn engine(&self) -> Engine {
        self.engine
    }
    /// One line saying what computes the run (`Backend::describe`).
    pub fn describe(&self) -> String {
        self.computer.describe()
    }
    /// Where the run stands.
    pub fn state(&self) -> &RunState {
        &self.state
    }
    /// Whether the run has nothing left to train: every epoch (or `max_steps`) done, stopped
    /// early, or its target accuracy reached.
    pub fn is_complete(&self) -> bool {
        let (s, t) = (&self.state, &self.config().training);
        let reached = t.target_acc.is_some_and(|a| crate::core::metrics::target_reached(&s.history, a, t.target_split(self.config().data.val_split)).is_some());
        s.stopped_early || reached || (s.step_in_epoch == 0 && s.epoch >= t.epochs) || s.step >= self.plan.total_steps()
    }
    /// The notes building the session left for the user (an unverified `--init-from` file, a
    /// CPU-emulated adapter skipped, a GPU that could not be used), each once.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }
    /// The GPU's kernels and how they were chosen, one line; None on the CPU.
    pub fn kernel_note(&mut self) -> Option<String> {
        self.computer.gpu().map(|g| g.kernel_note())
    }
    /// The backend, for what the session does not wrap.
    pub fn backend(&mut self) -> &mut dyn Backend {
        self.computer.backend()
    }
    /// The GPU backend, when the run is on the GPU.
    pub fn gpu(&mut self) -> Option<&mut GpuBackend> {
        self.computer.gpu()
    }

    /// Makes `split` of the plan's data available to the backend (once).
    pub fn attach(&mut self, split: Split) -> Result<()> {
        let i = split_index(split);
        if self.attached[i] {
            return Ok(());
        }
        let d = self.plan.data();
        let set = match split {
            Split::Train => Some(d.train.clone()),
            Split::Val => d.val.clone(),
            Split::Test => d.test.clone(),
        };
        let Some(set) = set else { bail!("the run's data has no {} set", split.name()) };
        self.computer.backend().attach(split, set)?;
        self.attached[i] = true;
        Ok(())
    }

    fn attach_all(&mut self) -> Result<()> {
        let d = self.plan.data();
        let splits: Vec<Split> = [Some(Split::Train), d.val.as_ref().map(|_| Split::Val), d.test.as_ref().map(|_| Split::Test)].into_iter().flatten().collect();
        for s in splits {
            self.attach(s)?;
        }
        Ok(())
    }

    /// Trains from where the run stands to its end, an early stop, or a stop `ctl` asks for;
    /// `obs` sees the progress, each epoch's metrics, and each moment to save the run.
    pub fn train(&mut self, obs: &mut dyn Observer, ctl: Controls) -> Result<RunResult> {
        // natively every future the loop awaits is ready when polled
        pollster::block_on(self.train_async(obs, ctl))
    }

    /// `train`, awaiting the backend: what a web page runs without blocking its main thread.
    pub async fn train_async(&mut self, obs: &mut dyn Observer, ctl: Controls<'_>) -> Result<RunResult> {
        self.attach_all()?;
        let r = train_async(&self.plan, self.computer.backend(), obs, self.state.clone(), ctl).await?;
        self.state = r.state.clone();
        Ok(r)
    }

    /// Loss, accuracy and every prediction of the model on `split`.
    pub fn evaluate(&mut self, split: Split) -> Result<EvalResult> {
        pollster::block_on(self.evaluate_async(split))
    }
    pub async fn evaluate_async(&mut self, split: Split) -> Result<EvalResult> {
        self.attach(split)?;
        self.computer.backend().evaluate_async(split).await
    }

    /// The current parameters.
    pub fn params(&mut self) -> Result<Params> {
        pollster::block_on(self.params_async())
    }
    pub async fn params_async(&mut self) -> Result<Params> {
        self.computer.backend().params_async().await
    }
    /// The current optimiser state.
    pub async fn optimizer_state_async(&mut self) -> Result<OptimState> {
        self.computer.backend().optimizer_state_async().await
    }

    /// The class of one input row (`pixels` in [0, 1], the model's inputs wide) and the
    /// probability of every class, from the current parameters (`core::inference`).
    pub async fn classify_async(&mut self, pixels: &[f32]) -> Result<(u8, Vec<f64>)> {
        let n = self.config().model.input_size();
        if pixels.len() != n {
            bail!("an input of {} values; the model takes {n}", pixels.len());
        }
        let params = self.params_async().await?.map(|x| x as f32);
        Ok(inference::classify(&self.config().model, &params, pixels))
    }
    pub fn classify(&mut self, pixels: &[f32]) -> Result<(u8, Vec<f64>)> {
        pollster::block_on(self.classify_async(pixels))
    }

    /// Runs the training steps from where the run stands up to step `step` (1-based over the
    /// run) untraced, then step `step` with every tensor it computes recorded, as training
    /// takes it: its batch and learning rate. The session then stands after that step.
    pub fn trace(&mut self, step: u64) -> Result<TracedStep> {
        if step <= self.state.step {
            bail!("step {step}: the run already stands at step {}; steps count from 1", self.state.step);
        }
        if step > self.plan.total_steps() {
            bail!("step {step}: the run has {} steps", self.plan.total_steps());
        }
        self.attach(Split::Train)?;
        let plan = &self.plan;
        let b = self.computer.backend();
        let mut order: Option<(usize, Vec<u32>)> = None;
        let mut samples_of = |s: u64| -> (usize, usize, Vec<u32>) {
            let (epoch, in_epoch) = plan.position(s);
            if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
                order = Some((epoch, plan.epoch_order(epoch)));
            }
            let o = &order.as_ref().expect("set above").1;
            (epoch, in_epoch, plan.step_samples(o, in_epoch).to_vec())
        };
        for s in self.state.step..step - 1 {
            let (epoch, _, idx) = samples_of(s);
            b.train_steps(&idx, plan.batch(), &[plan.lr(epoch, s)])?;
        }
        let (epoch, in_epoch, samples) = samples_of(step - 1);
        let lr = plan.lr(epoch, step - 1);
        let trace = b.trace_step(&samples, lr)?;
        let (e, i) = plan.position(step);
        self.state = RunState { epoch: e, step, step_in_epoch: i, ..Default::default() };
        Ok(TracedStep { step, epoch, in_epoch, lr, samples, trace })
    }

    /// The per-sample losses of a traced step (the loss of each sample of its batch).
    pub fn sample_losses(&self, t: &TracedStep) -> Vec<f64> {
        let spec = &self.config().model;
        let (last, out) = (spec.num_layers(), spec.output_size());
        let (z, a) = (t.trace.get(&format!("layer{last}.z")), t.trace.get(&format!("layer{last}.a")));
        t.samples
            .iter()
            .enumerate()
            .map(|(r, &i)| math::sample_loss(spec.loss, spec.label_smoothing, &z[r * out..(r + 1) * out], &a[r * out..(r + 1) * out], self.plan.data().train.labels[i as usize]))
            .collect()
    }

    /// For `core::parity`: the plan, the backend and where the run stands, together.
    pub(crate) fn parts(&mut self) -> (&Plan, &mut Computer, &RunState) {
        (&self.plan, &mut self.computer, &self.state)
    }
}
