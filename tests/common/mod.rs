//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod browser;
pub mod drivers;

use std::path::PathBuf;
use std::process::{Command, Output};

/// The gpu-nn binary with downloads off and no data directory, adapter or kernels from the
/// caller's environment, so a test sees only what it passes. Tuned kernel choices are kept in
/// one cache under the build directory, shared by every test of a build (so the runs of one
/// shape class all use the same kernels) and apart from the user's own.
pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gpu-nn"));
    c.args(args)
        .env("GPU_NN_OFFLINE", "1")
        .env("GPU_NN_CACHE_DIR", concat!(env!("CARGO_TARGET_TMPDIR"), "/kernel-cache"))
        .env_remove("GPU_NN_DATA")
        .env_remove("GPU_NN_ADAPTER")
        .env_remove("GPU_NN_KERNELS");
    c
}

/// `command` under a limit of `kib` KiB of virtual memory (`ulimit -v`), so that a size taken on
/// trust fails the test instead of swapping the machine.
pub fn command_limited(kib: u64, args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\"")).arg(env!("CARGO_BIN_EXE_gpu-nn")).args(args);
    c.env("GPU_NN_OFFLINE", "1")
        .env("GPU_NN_CACHE_DIR", concat!(env!("CARGO_TARGET_TMPDIR"), "/kernel-cache"))
        .env_remove("GPU_NN_DATA")
        .env_remove("GPU_NN_ADAPTER")
        .env_remove("GPU_NN_KERNELS");
    c
}

/// Runs the gpu-nn binary (see `command`).
pub fn gpu_nn(args: &[&str]) -> Output {
    command(args).output().expect("the gpu-nn binary runs")
}

/// The one `error:` line a failed run printed (panics unless there is exactly one).
pub fn error_line(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got:\n{err}");
    lines[0].to_string()
}

/// A path as the &str a command line takes.
pub fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// Where the real MNIST files live (the shared dataset directory beside the project).
pub const MNIST_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/datasets/mnist");

/// True when the environment says we run in CI (`CI` set to anything but "", "0" or "false").
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The real MNIST directory, found the way the CLI finds it: `../shared/datasets/mnist` where
/// it exists, else `$GPU_NN_DATA`, else the user cache, downloading into it (verified). `None`
/// (with the reason printed) when none works; in CI that is a failure, not a skip: a silently
/// skipped test proves nothing.
pub fn mnist_dir_or_skip(test: &str) -> Option<PathBuf> {
    drivers::watch_validation();
    let shared = PathBuf::from(MNIST_DIR);
    if shared.is_dir() {
        return Some(shared);
    }
    static FOUND: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let env = gpu_nn::commands::environment::read().map_err(|e| format!("{e:#}"))?;
        gpu_nn::data::sources::locate(gpu_nn::data::DatasetName::Mnist, None, &env.data, true).map(|f| f.dir).map_err(|e| format!("{e:#}"))
    });
    match found {
        Ok(dir) => Some(dir.clone()),
        Err(e) if in_ci() => panic!("{test}: MNIST is neither in {MNIST_DIR} nor obtainable ({e}); the test cannot be skipped in CI"),
        Err(e) => {
            eprintln!("SKIPPED {test}: no MNIST ({e})");
            None
        }
    }
}

/// `dir` if it exists; else a panic when `ci`, or `None` with the skip reason printed.
pub fn dataset_dir_or_skip(dir: PathBuf, ci: bool, test: &str) -> Option<PathBuf> {
    if dir.is_dir() {
        return Some(dir);
    }
    if ci {
        panic!("{test}: real MNIST directory {} is missing and CI is set; the test cannot be skipped in CI", dir.display());
    }
    eprintln!("SKIPPED {test}: real MNIST directory {} is missing (set it up, or run with CI=true to make this a failure)", dir.display());
    None
}

/// |a − b| ≤ tol for every element, with a message naming the first offending element.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length {} vs expected {}", got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: got {g:e}, expected {w:e} (|diff| = {:e} > {tol:e})",
            (g - w).abs()
        );
    }
}

/// A named tensor of a step trace.
pub fn tensor<'a>(trace: &'a gpu_nn::nn::backend::StepTrace, name: &str) -> &'a [f64] {
    trace
        .tensors
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
        .unwrap_or_else(|| panic!("trace has no tensor '{name}'"))
}

/// Doc 000's 2-2-2 example (SEEDS.md, notes_000_002.md), shared by the library and CLI tests.
pub mod hand {
    use gpu_nn::nn::model::Params;

    /// SEEDS.md, "Exact float64 weights after each epoch": w1..w12 after epochs 1, 2, 3.
    pub const EXACT: [[f64; 12]; 3] = [
        [
            0.09999287608226642, 0.19998891676306169, 0.09998921557833007, 0.0999985689813837,
            0.09930886197388886, 0.09917137885954593, 0.09930570520953383, 0.19916741399056967,
            0.09992876082266425, 0.09988916763061688, 0.09872792707492782, 0.09841131755925499,
        ],
        [
            0.09998587245440584, 0.19997799003212677, 0.09997859293400495, 0.09999735895378623,
            0.09862415224294406, 0.09835049214850768, 0.09861787933892739, 0.1983426150780483,
            0.09985872454405843, 0.09977990032126763, 0.0974679149077061, 0.09683713463400069,
        ],
        [
            0.09997898706535735, 0.19996721746366128, 0.09996812911816463, 0.09999636644016184,
            0.09794581468812233, 0.09753727739791612, 0.09793646565529952, 0.19752554009442153,
            0.09978987065357361, 0.0996721746366127, 0.09621985933466744, 0.09527733565042554,
        ],
    ];

    /// The batch-mean loss before each update and after the third (notes, test case 7: 8 digits).
    pub const LOSS_CURVE: [f64; 4] = [0.25339465, 0.25332996, 0.25326647, 0.25320416];

    /// The 12 weights of a 2-2-2 model in document order w1..w12.
    pub fn doc_order(p: &Params) -> Vec<f64> {
        let (l0, l1) = (&p.layers[0], &p.layers[1]);
        vec![
            l0.weight[0], l0.weight[2], l0.weight[1], l0.weight[3], // w1 w2 w3 w4
            l1.weight[0], l1.weight[2], l1.weight[1], l1.weight[3], // w5 w6 w7 w8
            l0.bias[0], l0.bias[1], l1.bias[0], l1.bias[1], // w9 w10 w11 w12
        ]
    }
}

/// Doc 001's Adam check (SEEDS.md, notes_001_003_004.md), shared by the CPU and GPU tests.
pub mod doc001 {
    /// Table 3, "by-Tensorflow" column: the untrained network's softmax output for the "5".
    pub const TF_PROBS: [f64; 10] = [
        8.207457512617111206e-02, 6.729900836944580078e-02, 1.620792597532272339e-01, 1.712321043014526367e-01,
        1.180373430252075195e-01, 4.260931909084320068e-02, 1.038775667548179626e-01, 1.132866963744163513e-01,
        7.921724021434783936e-02, 6.028690561652183533e-02,
    ];

    /// Figure 10b: the new B^(3) after one training iteration, as TensorFlow printed it.
    pub const FIG_10B: [f64; 10] = [
        -7.441366953780661694e-04, -7.441366672340630909e-04, -7.441367586539776981e-04, -7.441367621237625959e-04,
        -7.441367344337375183e-04, 7.441368125776830428e-04, -7.441367222837932732e-04, -7.441367306959597444e-04,
        -7.441366907543426733e-04, -7.441366490506412003e-04,
    ];

}

/// A directory with the first `n_train` / `n_test` real MNIST samples in MNIST's file names, or
/// None (skip reason printed; a failure in CI). Built once per size under the target directory:
/// in a temporary directory renamed into place, so a half-written one is never used.
pub fn mnist_first(test: &str, n_train: usize, n_test: usize) -> Option<PathBuf> {
    use gpu_nn::data::Dataset;
    use gpu_nn::data::idx::{IdxArray, IdxData, encode_idx};
    let src = mnist_dir_or_skip(test)?;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("mnist-first-{n_train}-{n_test}"));
    if dir.is_dir() {
        return Some(dir);
    }
    let tmp = dir.with_extension(format!("tmp{}-{:?}", std::process::id(), std::thread::current().id()).replace(['(', ')'], ""));
    std::fs::create_dir_all(&tmp).unwrap();
    for (part, n) in [("train", n_train), ("t10k", n_test)] {
        let ds = Dataset::load(&src.join(format!("{part}-images-idx3-ubyte.gz")), &src.join(format!("{part}-labels-idx1-ubyte.gz")), 10).unwrap();
        let ds = ds.subset(&(0..n as u32).collect::<Vec<_>>(), String::new());
        let gpu_nn::data::Pixels::U8(px) = ds.pixels else { panic!("MNIST pixels are bytes") };
        let images = IdxArray { dims: vec![n, 28, 28], data: IdxData::U8(px) };
        let labels = IdxArray { dims: vec![n], data: IdxData::U8(ds.labels) };
        std::fs::write(tmp.join(format!("{part}-images-idx3-ubyte")), encode_idx(&images)).unwrap();
        std::fs::write(tmp.join(format!("{part}-labels-idx1-ubyte")), encode_idx(&labels)).unwrap();
    }
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp); // another test was first
    }
    Some(dir)
}
