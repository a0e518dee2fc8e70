//! The command line: the subcommands and their flags (those that configure a run are
//! `config_args::ConfigArgs`).

use crate::commands::config_args::{ConfigArgs, NetworkFlags, OwnDataFlags};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "gpu-nn", version, about = "Train multi-layer perceptrons on MNIST on the GPU (WGSL via wgpu), checked against a CPU reference")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model (on MNIST by default, downloading it if needed).
    Train(TrainArgs),
    /// List the presets that reproduce the source documents' experiments.
    Presets,
    /// List every GPU adapter wgpu finds, with the limits that matter.
    Adapters,
    /// Run a configuration on the CPU reference and the GPU from identical weights and compare
    /// every tensor after each step; exits non-zero when a tolerance is exceeded.
    Parity(ParityArgs),
    /// Training throughput of the CPU and the GPU side by side (default set: seed001,
    /// seed000-mnist and a wide 784-1024-1024-10 network; or the configuration given).
    Bench(BenchArgs),
    /// Evaluate a saved model on the test set: loss, accuracy, confusion matrix (printed and
    /// written as confusion.csv / confusion.png).
    Eval(EvalArgs),
    /// Classify pictures (of digits, or for a model trained on an image folder, of its classes),
    /// rows of features (--rows FILE.csv|FILE.npy), images of the test set (--idx-index N), or
    /// write the prediction of every test sample to CSV (--csv OUT).
    Predict(PredictArgs),
    /// Train every cell of a grid: any flag given a list (--batch-size 5,20 --lr 0.5,3 --seed
    /// 1,2 --layers 784,32,10/784,64,10 ...), sharing the data and the GPU device; each cell a
    /// run directory under --out, then sweep.md, sweep.csv and one picture per table row. Shards
    /// (--shard I/N, auto) run as Slurm or Kubernetes job arrays; --collect gathers them.
    Sweep(SweepArgs),
    /// Compare backpropagated gradients with finite differences of the batch loss on sampled
    /// parameters of every layer; exits non-zero above the tolerance.
    Gradcheck(GradcheckArgs),
    /// Read a run's data as train would (a named dataset, a .npz, a CSV table or an image
    /// folder) and describe it: features, classes and their counts per split, the time taken.
    Inspect(InspectArgs),
    /// Fetch a dataset ahead of time (with a progress bar), each file verified by the SHA-256 of
    /// its decompressed content (a recompressed mirror is fine); files already there are checked.
    Download(DownloadArgs),
    /// Write a trained model for other tools: `--onnx OUT.onnx` (input `pixels` [N, in] scaled
    /// to [0, 1], output `outputs` [N, out]; onnxruntime, ONNX-compatible runtimes).
    Export(ExportArgs),
    /// Print one training step in the documents' terms: each layer's z and a, the loss, each
    /// δ, each gradient and each updated weight (W rows = destination units), on any backend.
    Trace(TraceArgs),
    /// Serve the web page (web/, built by scripts/build-web.sh) and the MNIST files on
    /// 127.0.0.1: train in the browser on WebGPU with the same kernels, draw digits, check parity.
    Serve(ServeArgs),
    /// Print a shell completion script: `gpu-nn completions bash > ~/.local/share/bash-completion/completions/gpu-nn`
    /// (zsh: into a directory of $fpath as _gpu-nn; fish: ~/.config/fish/completions/gpu-nn.fish).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// Where a saved model's data is and what runs it (`eval`, `predict`). Unset values come from
/// the run's config.json beside the model, else the defaults (mnist, classify).
#[derive(Args, Debug, Default, Clone)]
pub struct ModelDataArgs {
    /// Dataset: mnist, fashion-mnist or kmnist.
    #[arg(long)]
    pub dataset: Option<String>,
    /// The data: a directory with the IDX files (default: the run's, else $GPU_NN_DATA, else
    /// the per-user cache), or data of your own (FILE.npz, FILE.csv, an image folder; default:
    /// the run's).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub own: OwnDataFlags,
    /// classify, or binary:D for a model trained on digit D against all others.
    #[arg(long)]
    pub task: Option<String>,
    /// For a model file from another tool (no gpu-nn metadata): its shape.
    #[command(flatten)]
    pub net: NetworkFlags,
}

impl ModelDataArgs {
    pub fn config_args(&self, backend: Option<String>, adapter: Option<String>) -> ConfigArgs {
        ConfigArgs {
            dataset: self.dataset.clone(),
            data: self.data.clone(),
            own: self.own.clone(),
            task: self.task.clone(),
            net: self.net.clone(),
            backend,
            adapter,
            ..Default::default()
        }
    }
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    pub cfg: ConfigArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The model.safetensors to evaluate (its architecture is read from the file).
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: ModelDataArgs,
    /// cpu (default), gpu or auto.
    #[arg(long)]
    pub backend: Option<String>,
    /// GPU adapter: index or name substring.
    #[arg(long)]
    pub adapter: Option<String>,
    /// Write confusion.csv and confusion.png here (default: beside the model).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object (loss, accuracy, confusion matrix) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print only errors.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// The model.safetensors to use.
    #[arg(long)]
    pub model: PathBuf,
    /// Pictures to classify (PNG or JPEG, any size): digits, dark on light or light on dark,
    /// brought to MNIST's form; for a model trained on an image folder, grey and brought to its
    /// pictures' size as they were.
    pub images: Vec<PathBuf>,
    /// Classify image N of the test set (repeatable, or N,M,...) and show its true label.
    #[arg(long, value_delimiter = ',')]
    pub idx_index: Vec<usize>,
    /// Write the prediction of every test image here: index,label,prediction,p0..p9.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Classify every row of this CSV or .npy of features (the model's inputs wide; a CSV's
    /// label column, if it has one, is left out): one prediction per row, as CSV to --csv OUT
    /// or standard output.
    #[arg(long, value_name = "FILE")]
    pub rows: Option<PathBuf>,
    /// Use the training set instead of the test set for --idx-index and --csv.
    #[arg(long)]
    pub train_set: bool,
    #[command(flatten)]
    pub data: ModelDataArgs,
    /// Also print the 28×28 input the network sees, as text.
    #[arg(long)]
    pub show: bool,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// TCP port on 127.0.0.1 (0: any free one; the address is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Directory with the MNIST IDX files (default: $GPU_NN_DATA, else the per-user cache;
    /// downloaded if missing).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The page's directory (default: the repository's web/).
    #[arg(long)]
    pub web: Option<PathBuf>,
    /// A folder of run directories and sweeps (e.g. runs/) to watch in the page's dashboard,
    /// live, as they train; only read, never written.
    #[arg(long, value_name = "DIR")]
    pub runs: Option<PathBuf>,
    /// Seconds a connection may take to send a request, or sit idle between two, before it is
    /// closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub idle_timeout: f64,
    /// Connections served at once; more wait their turn.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_connections: usize,
    /// Print only errors (and the address).
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct DownloadArgs {
    /// mnist, fashion-mnist or kmnist.
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Where to put the files (default: $GPU_NN_DATA, else the per-user cache, where the other
    /// commands look).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print only errors.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The model.safetensors to export.
    #[arg(long)]
    pub model: PathBuf,
    /// Write the network as an ONNX model (opset 13) here.
    #[arg(long, value_name = "OUT.onnx")]
    pub onnx: PathBuf,
    #[command(flatten)]
    pub data: ModelDataArgs,
}

#[derive(Args, Debug)]
pub struct TraceArgs {
    #[command(flatten)]
    pub cfg: ConfigArgs,
    /// Which training step to print (1-based; the steps before it run untraced).
    #[arg(long, default_value_t = 1)]
    pub step: u64,
    /// Samples of the batch printed per tensor (the gradients and weights cover the whole batch).
    #[arg(long, default_value_t = 4)]
    pub show: usize,
    /// One JSON document: the batch, the per-sample losses and every tensor in full.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct GradcheckArgs {
    #[command(flatten)]
    pub cfg: ConfigArgs,
    /// Parameters sampled per tensor (the weights and the biases of every layer).
    #[arg(long, default_value_t = 10)]
    pub samples: usize,
    /// Samples in the batch whose loss is differentiated (default: the batch size, at most 32).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Largest relative error |backprop − numeric| / max(|backprop|, |numeric|) accepted.
    #[arg(long, default_value_t = 1e-5)]
    pub tolerance: f64,
    /// Finite-difference step h.
    #[arg(long, default_value_t = 1e-3)]
    pub step: f64,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("sweep_dir").required(true).args(["out", "collect"])))]
pub struct SweepArgs {
    /// Any flag here takes a comma-separated list of values (--layers and --activation: a
    /// '/'-separated one); the grid is their product.
    #[command(flatten)]
    pub cfg: ConfigArgs,
    /// The sweep's directory: one run directory per cell under DIR/cells/, then sweep.md,
    /// sweep.csv and curves-*.png/.svg once every cell is done. A rerun skips finished cells
    /// and resumes an interrupted one from its checkpoint.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run only shard I of N (0 ≤ I < N): the cells k with k mod N = I, in grid order. `auto`
    /// takes I and N from a Slurm job array; `auto/N` also from a Kubernetes Indexed Job.
    #[arg(long, value_name = "I/N|auto|auto/N", requires = "out")]
    pub shard: Option<String>,
    /// Write sweep.md, sweep.csv and the pictures of the sweep in DIR from its finished cells
    /// (after the shards have run); names the cells still missing.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "shard"])]
    pub collect: Option<PathBuf>,
    /// Write a checkpoint inside an epoch after this many seconds, so a killed cell resumes
    /// close to where it stopped (epoch ends always write one).
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    pub checkpoint_every: f64,
    /// Recompute this shard's cells even where they finished, and replace another sweep's plan.
    #[arg(long)]
    pub force: bool,
    /// The most cells the grid may have (a stray value in a list can make a grid of millions);
    /// raise it to run a larger grid on purpose.
    #[arg(long, value_name = "N", default_value_t = crate::commands::sweep::grid::MAX_CELLS)]
    pub max_cells: usize,
    /// Print only errors (no line per finished cell).
    #[arg(long, short)]
    pub quiet: bool,
    /// The configuration flags as given, lists taken off (`sweep::grid::lift_axes`); each cell
    /// parses them again with its own values.
    #[arg(skip)]
    pub tokens: Vec<String>,
    /// The flags given several values.
    #[arg(skip)]
    pub axes: Vec<crate::commands::sweep::grid::Axis>,
}

impl SweepArgs {
    /// A sweep's arguments as typed after `gpu-nn sweep`.
    pub fn from_tokens<S: AsRef<str>>(tokens: &[S]) -> anyhow::Result<SweepArgs> {
        let argv = ["gpu-nn", "sweep"].into_iter().map(String::from).chain(tokens.iter().map(|t| t.as_ref().to_string()));
        match parse_cli(argv.map(std::ffi::OsString::from))?.command {
            Command::Sweep(a) => Ok(a),
            _ => unreachable!("the arguments name the sweep subcommand"),
        }
    }
}

/// Parses a command line. A sweep's lists are lifted off first (`sweep::grid::lift_axes`):
/// clap then sees single values, and the sweep keeps the lists and the rest of its arguments.
pub fn parse_cli(argv: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Cli, clap::Error> {
    let argv: Vec<std::ffi::OsString> = argv.into_iter().collect();
    if argv.get(1).is_none_or(|a| a != "sweep") {
        return Cli::try_parse_from(argv);
    }
    let bad = |m: String| clap::Error::raw(clap::error::ErrorKind::InvalidValue, m);
    let tokens: Vec<String> = argv[2..]
        .iter()
        .map(|t| t.clone().into_string().map_err(|t| bad(format!("gpu-nn sweep: argument {} is not valid UTF-8", t.to_string_lossy()))))
        .collect::<Result<_, _>>()?;
    let (rest, axes) = crate::commands::sweep::grid::lift_axes(&tokens).map_err(|e| bad(format!("{e:#}")))?;
    let mut cli = Cli::try_parse_from(argv[..2].iter().cloned().chain(rest.iter().map(Into::into)))?;
    if let Command::Sweep(a) = &mut cli.command {
        a.tokens = rest;
        a.axes = axes;
    }
    Ok(cli)
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub cfg: ConfigArgs,
    /// Training steps per timed repeat.
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Timed repeats (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Only the CPU (no adapter needed).
    #[arg(long)]
    pub cpu_only: bool,
    /// With --kernels: the sizes S of the S×S×S products timed after the training shapes
    /// (default 1024).
    #[arg(long, value_delimiter = ',', value_name = "S,...")]
    pub sizes: Option<Vec<usize>>,
    /// Time per step of seed001's network against batch size and against width; writes
    /// scaling.csv, scaling.svg and scaling.png into --out (default: the current directory).
    #[arg(long)]
    pub scaling: bool,
    /// Where --scaling writes its table and plot.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ParityArgs {
    #[command(flatten)]
    pub cfg: ConfigArgs,
    /// Training steps to compare.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Largest relative error (max|gpu−cpu| / max|cpu| per tensor) accepted.
    #[arg(long, default_value_t = 1e-4)]
    pub tolerance: f64,
    /// Let both backends run on from their own results instead of restarting every step from
    /// the CPU's weights (shows how rounding differences grow).
    #[arg(long)]
    pub free_run: bool,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub cfg: ConfigArgs,
    /// Write config.json, metrics.csv, model.safetensors and checkpoint.safetensors here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Overwrite an existing run directory.
    #[arg(long)]
    pub force: bool,
    /// Continue the run in DIR from its checkpoint (after Ctrl-C, a crash, or to extend it
    /// with --epochs); only --epochs, --max-steps, --data, --adapter, --threads and --quiet may be
    /// given.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "force"])]
    pub resume: Option<PathBuf>,
    /// Print only errors.
    #[arg(long, short)]
    pub quiet: bool,
    /// Also say how the run is computed (on the GPU: which matmul kernels, and how they were
    /// chosen).
    #[arg(long, short)]
    pub verbose: bool,
    /// Testing aid: behave as if Ctrl-C came right after optimiser step N of the run.
    #[arg(long, hide = true, value_name = "N")]
    pub stop_after_steps: Option<u64>,
    /// Least seconds between two writes of the run directory at epoch ends: a run of short
    /// epochs writes its files every so often, not every epoch (each write fsyncs them). The
    /// last epoch, an improved validation loss and Ctrl-C always write; a killed run loses at
    /// most about this much training. 0: every epoch.
    #[arg(long, value_name = "SECONDS", default_value_t = crate::core::train::SAVE_GAP.as_secs_f64())]
    pub save_every: f64,
    /// text: progress bar and a summary line per epoch; json: one JSON object per epoch on
    /// stdout (the metrics.csv fields) and nothing else there.
    #[arg(long, value_enum, default_value_t = crate::report::console::LogFormat::Text)]
    pub log_format: crate::report::console::LogFormat,
}
