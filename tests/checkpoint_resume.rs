//! Checkpoints, resuming and fault handling, through the `gpu-nn` binary on a slice of the real
//! MNIST files (the first 1,920 training and 500 test images, written as IDX files once per
//! test process):
//! - a run stopped after an epoch, or in the middle of one through the Ctrl-C code path, and
//!   resumed, ends with exactly the weights and optimiser state of a run never interrupted
//!   (bit for bit on the CPU in f64 and f32, within 1e-5 relative on the GPU);
//! - a real SIGINT writes a checkpoint, exits 130 and resumes exactly;
//! - a SIGKILL leaves a checkpoint that loads and resumes exactly;
//! - Ctrl-C during a step stops the CPU after that step (the GPU after its chunk);
//! - a diverging run stops with one `error:` line naming the epoch and step, exit status 2,
//!   and leaves the last good checkpoint byte for byte as it was;
//! - early stopping stops on the validation loss and keeps the best model;
//! - a run with a warm-up and a one-cycle schedule (a rate that changes every step, laid out
//!   over the whole run) interrupted twice takes the same rates and ends bit for bit the same;
//! - `--resume` refuses flags that would change the training.
//! In CI (CI set) a missing dataset or GPU adapter fails instead of skipping.

mod common;
use common::{command, gpu_nn, in_ci};

use gpu_nn::nn::backend::{Backend, Split};
use gpu_nn::core::checkpoint::{Checkpoint, load_checkpoint, load_model};
use gpu_nn::commands::config_args::ConfigArgs;
use gpu_nn::cpu::ReferenceBackend;
use gpu_nn::data::Dataset;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const N_TRAIN: usize = 1920;
const N_TEST: usize = 500;

/// The first N_TRAIN / N_TEST real MNIST samples (`common::mnist_first`).
fn small_mnist(test: &str) -> Option<PathBuf> {
    common::mnist_first(test, N_TRAIN, N_TEST)
}


/// Whether `gpu-nn adapters` lists an adapter; false with a printed reason (a failure in CI).
/// Asked of the binary, which also sets up what headless Vulkan loaders expect.
fn gpu_or_skip(test: &str) -> bool {
    let o = gpu_nn(&["adapters"]);
    let out = String::from_utf8_lossy(&o.stdout);
    if o.status.success() && out.lines().any(|l| l.starts_with('[')) {
        return true;
    }
    let why = format!("{} {}", out.trim(), stderr(&o).trim()).replace('\n', " ");
    assert!(!in_ci(), "{test}: no GPU adapter in CI: {why}");
    eprintln!("SKIPPED {test}: no GPU adapter ({why})");
    false
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}



fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn expect_status(o: &Output, code: i32, what: &str) {
    assert_eq!(o.status.code(), Some(code), "{what}: exit status {:?}; stderr:\n{}", o.status.code(), stderr(o));
    assert!(!stderr(o).contains("panicked"), "{what} panicked: {}", stderr(o));
}

/// 784-16-10 relu/softmax with Adam (two optimiser slots and a step counter to restore),
/// 192 validation samples, batches of `batch`.
fn base_args(data: &Path, batch: usize) -> Vec<String> {
    "--layers 784,16,10 --activation relu,softmax --loss cross_entropy --optimizer adam --lr 0.005 --val-split 192 --seed 7 --quiet"
        .split(' ')
        .map(str::to_string)
        .chain(["--data".to_string(), s(data).to_string(), "--batch-size".into(), batch.to_string()])
        .collect()
}
/// Steps per epoch with batches of `batch` (54 for 32).
fn steps_per_epoch(batch: usize) -> u64 {
    (N_TRAIN as u64 - 192).div_ceil(batch as u64)
}

/// `gpu-nn train` with the base configuration (batches of 32), `engine` flags and `extra`.
fn train(data: &Path, engine: &[&str], extra: &[&str]) -> Output {
    train_batch(data, 32, engine, extra)
}

/// A flag of the base configuration that `engine` or `extra` gives again takes their value
/// (clap refuses a flag given twice).
fn train_batch(data: &Path, batch: usize, engine: &[&str], extra: &[&str]) -> Output {
    let mut args: Vec<String> = vec!["train".into()];
    let base = base_args(data, batch);
    let mut i = 0;
    while i < base.len() {
        let pair = base[i].starts_with("--") && base.get(i + 1).is_some_and(|v| !v.starts_with("--"));
        let n = if pair { 2 } else { 1 };
        if !engine.iter().chain(extra).any(|a| *a == base[i]) {
            args.extend(base[i..i + n].iter().cloned());
        }
        i += n;
    }
    args.extend(engine.iter().chain(extra).map(|a| a.to_string()));
    gpu_nn(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn resume(dir: &Path, extra: &[&str]) -> Output {
    let args: Vec<&str> = ["train", "--resume", s(dir), "--quiet"].iter().chain(extra).copied().collect();
    gpu_nn(&args)
}

fn ckpt(dir: &Path) -> Checkpoint {
    load_checkpoint(&dir.join("checkpoint.safetensors")).unwrap_or_else(|e| panic!("{}: {e:#}", dir.display()))
}

/// Every parameter and optimiser-state value, with the step counters.
fn state_values(c: &Checkpoint) -> (Vec<f64>, Vec<f64>, u64) {
    let opt: Vec<f64> = c.optim.slots.iter().flat_map(|l| l.iter().flatten().flatten().copied()).collect();
    (c.params.flat(), opt, c.optim.step)
}

fn assert_bit_identical(what: &str, got: &Checkpoint, want: &Checkpoint) {
    let (gp, go, gs) = state_values(got);
    let (wp, wo, ws) = state_values(want);
    assert_eq!(gs, ws, "{what}: optimiser step counter");
    assert_eq!(gp.len(), wp.len());
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    if let Some(i) = (0..gp.len()).find(|&i| gp[i].to_bits() != wp[i].to_bits()) {
        panic!("{what}: parameter {i} is {:e}, uninterrupted {:e}", gp[i], wp[i]);
    }
    assert!(bits(&go) == bits(&wo), "{what}: optimiser state differs");
    assert_eq!(got.meta.state.step, want.meta.state.step, "{what}: step");
}

/// max |got − want| / max |want| per tensor group, as `gpu-nn parity` measures it.
fn assert_close_rel(what: &str, got: &Checkpoint, want: &Checkpoint, tol: f64) {
    let (gp, go, gs) = state_values(got);
    let (wp, wo, ws) = state_values(want);
    assert_eq!(gs, ws, "{what}: optimiser step counter");
    for (name, g, w) in [("parameters", gp, wp), ("optimiser state", go, wo)] {
        let scale = w.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(f64::MIN_POSITIVE);
        let err = g.iter().zip(&w).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(err / scale <= tol, "{what}: {name} differ by {:e} relative (tolerance {tol:e})", err / scale);
    }
}

/// metrics.csv without the timing columns; `loose` compares train_loss to 1e-12 relative (a
/// resumed epoch sums its running loss in other groupings), everything else as text.
fn metrics_rows(dir: &Path) -> Vec<Vec<String>> {
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|r| {
            r.split(',')
                .zip(&header)
                .filter(|(_, h)| **h != "seconds" && **h != "samples_per_sec")
                .map(|(c, _)| c.to_string())
                .collect()
        })
        .collect()
}

fn assert_same_metrics(what: &str, got: &Path, want: &Path, loose: bool) {
    let (g, w) = (metrics_rows(got), metrics_rows(want));
    assert_eq!(g.len(), w.len(), "{what}: metrics.csv rows");
    for (gr, wr) in g.iter().zip(&w) {
        for (k, (a, b)) in gr.iter().zip(wr).enumerate() {
            if loose && k == 1 {
                let (a, b): (f64, f64) = (a.parse().unwrap(), b.parse().unwrap());
                assert!((a - b).abs() <= 1e-12 * b.abs(), "{what}: train_loss {a} vs {b}");
            } else {
                assert_eq!(a, b, "{what}: metrics.csv column {k} of epoch {}", wr[0]);
            }
        }
    }
}

/// An uninterrupted run of `epochs` epochs vs (`epochs_first` epochs, then resumed to
/// `epochs`) vs (stopped mid-epoch at `stops[0]` and `stops[1]` through the Ctrl-C code path,
/// resumed each time), all with batches of `batch`.
fn interrupted_runs_match(test: &str, engine: &[&str], exact: bool, batch: usize, epochs: usize, epochs_first: usize, stops: [u64; 2]) {
    let Some(data) = small_mnist(test) else { return };
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    let n = epochs.to_string();
    let spe = steps_per_epoch(batch);
    let train = |engine: &[&str], extra: &[&str]| train_batch(&data, batch, engine, extra);

    let o = train(engine, &["--epochs", &n, "--out", s(&a)]);
    expect_status(&o, 0, "uninterrupted run");
    let want = ckpt(&a);
    assert_eq!((want.meta.state.epoch, want.meta.state.step_in_epoch, want.meta.state.step), (epochs, 0, epochs as u64 * spe));

    // stopped after an epoch, then extended
    expect_status(&train(engine, &["--epochs", &epochs_first.to_string(), "--out", s(&b)]), 0, "shorter run");
    assert_eq!(ckpt(&b).meta.state.epoch, epochs_first);
    expect_status(&resume(&b, &["--epochs", &n]), 0, "resume after an epoch");

    // interrupted inside an epoch twice
    let o = train(engine, &["--epochs", &n, "--out", s(&c), "--stop-after-steps", &stops[0].to_string()]);
    expect_status(&o, 130, "run interrupted");
    assert!(stderr(&o).contains(&format!("resume with: gpu-nn train --resume {}", s(&c))), "{}", stderr(&o));
    for (i, &stop) in stops.iter().enumerate() {
        let st = ckpt(&c).meta.state;
        let (e, k) = ((stop / spe) as usize, (stop % spe) as usize);
        assert!(k > 0, "the test wants stops inside an epoch");
        assert_eq!((st.epoch, st.step_in_epoch, st.step, st.history.len()), (e, k, stop, e));
        if e == 0 {
            assert!(!c.join("metrics.csv").exists(), "no epoch completed, no metrics.csv yet");
        } else {
            assert_eq!(metrics_rows(&c).len(), e, "metrics.csv keeps the completed epochs");
        }
        let next = stops.get(i + 1).map(|s| s.to_string());
        let extra: Vec<&str> = next.iter().flat_map(|s| ["--stop-after-steps", s.as_str()]).collect();
        expect_status(&resume(&c, &extra), if next.is_some() { 130 } else { 0 }, "resume of the interrupted run");
    }

    for (what, dir) in [("resumed after an epoch", &b), ("interrupted mid-epoch twice", &c)] {
        let got = ckpt(dir);
        if exact {
            assert_bit_identical(what, &got, &want);
            assert_eq!(
                std::fs::read(dir.join("model.safetensors")).unwrap(),
                std::fs::read(a.join("model.safetensors")).unwrap(),
                "{what}: model.safetensors differs from the uninterrupted run's"
            );
        } else {
            assert_close_rel(what, &got, &want, 1e-5);
        }
        assert_eq!(got.meta.state.history.len(), epochs, "{what}");
    }
    if exact {
        assert_same_metrics("resumed after an epoch", &b, &a, false);
        assert_same_metrics("interrupted mid-epoch", &c, &a, true);
    }
    eprintln!("{test}: {:.1} s", t0.elapsed().as_secs_f64());
}

/// Stops at step 77 (epoch 2, step 23) and 150 (epoch 3, step 42) of 54-step epochs.
#[test]
fn cpu_f64_resume_is_bit_identical() {
    interrupted_runs_match("cpu_f64_resume_is_bit_identical", &["--backend", "cpu", "--precision", "f64"], true, 32, 4, 2, [77, 150]);
}

/// Also with centred inputs, and dropout: the resumed run measures the same statistics again,
/// and draws the same masks from the step it resumes at (dropout keeps no state of its own).
#[test]
fn cpu_f32_resume_is_bit_identical() {
    let engine = ["--backend", "cpu", "--precision", "f32", "--standardize", "--dropout", "0.3", "--input-dropout", "0.1"];
    interrupted_runs_match("cpu_f32_resume_is_bit_identical", &engine, true, 32, 4, 2, [77, 150]);
}

/// AdamW (two slots and the step counter in the decay's and bias corrections' arithmetic)
/// with every option of issue 24 at once: clipping, max-norm, label smoothing; resumed runs are
/// the same bytes as the uninterrupted one.
#[test]
fn cpu_f32_adamw_with_regularisers_resumes_bit_identically() {
    let engine = ["--backend", "cpu", "--precision", "f32", "--optimizer", "adamw", "--weight-decay", "0.05", "--clip-norm", "0.5", "--max-norm", "2", "--label-smoothing", "0.1"];
    interrupted_runs_match("cpu_f32_adamw_with_regularisers_resumes_bit_identically", &engine, true, 32, 3, 1, [77, 100]);
}

/// Warm-up over 70 steps, then one-cycle over the run's 162 steps (3 epochs of 54), on the CPU
/// in f64: interrupted at step 30 (inside the warm-up) and 100 (after it), resumed each time,
/// it takes the rates of the uninterrupted run (metrics.csv's `lr`) and ends with its bytes.
#[test]
fn warmup_and_one_cycle_resume_is_bit_identical() {
    let Some(data) = small_mnist("warmup_and_one_cycle_resume_is_bit_identical") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (a, c) = (tmp.path().join("a"), tmp.path().join("c"));
    let engine = ["--backend", "cpu", "--precision", "f64", "--warmup", "70", "--schedule", "one_cycle:0.4"];
    expect_status(&train(&data, &engine, &["--epochs", "3", "--out", s(&a)]), 0, "uninterrupted run");
    expect_status(&train(&data, &engine, &["--epochs", "3", "--out", s(&c), "--stop-after-steps", "30"]), 130, "run interrupted");
    assert_eq!(ckpt(&c).meta.state.step, 30);
    // the warm-up is part of the maths: a resume may not change it
    assert_one_error_line(&resume(&c, &["--warmup", "5"]), &["--warmup would change the training"]);
    expect_status(&resume(&c, &["--stop-after-steps", "100"]), 130, "first resume");
    assert_eq!(ckpt(&c).meta.state.step, 100);
    expect_status(&resume(&c, &[]), 0, "second resume");
    let want = ckpt(&a);
    assert_bit_identical("warm-up and one-cycle, interrupted twice", &ckpt(&c), &want);
    assert_eq!(std::fs::read(c.join("model.safetensors")).unwrap(), std::fs::read(a.join("model.safetensors")).unwrap(), "model.safetensors");
    assert_same_metrics("warm-up and one-cycle, interrupted twice", &c, &a, true);
    // the schedule took effect: the last step's rate is lr/(25·1e4) = 0.005/250000 = 2e-8
    let lrs: Vec<f64> = metrics_rows(&a).iter().map(|r| r.last().unwrap().parse().unwrap()).collect();
    assert_eq!(lrs.len(), 3);
    assert!((lrs[2] - 2e-8).abs() <= 1e-12 * 2e-8, "{lrs:?}");
    assert!(lrs[0] != lrs[1] && lrs[0] != 0.005, "{lrs:?}");
}

/// Two epochs of 14 batches of 128 (lavapipe takes some 40 ms a step whatever its size), with
/// dropout; stops at step 5 (epoch 1) and 19 (epoch 2, step 5).
#[test]
fn gpu_resume_matches_within_f32_tolerance() {
    if !gpu_or_skip("gpu_resume_matches_within_f32_tolerance") {
        return;
    }
    interrupted_runs_match("gpu_resume_matches_within_f32_tolerance", &["--backend", "gpu", "--dropout", "0.2"], false, 128, 2, 1, [5, 19]);
}

/// Starts a long run (batches of `batch`) and returns it once its first checkpoint exists.
/// Every epoch end writes one (`--save-every 0`: by default these few-millisecond epochs would
/// write a second apart, and the whole run takes about that).
fn start_and_wait_for_checkpoint(data: &Path, dir: &Path, batch: usize) -> std::process::Child {
    let mut args: Vec<String> = vec!["train".into()];
    args.extend(base_args(data, batch));
    args.extend(["--backend", "cpu", "--precision", "f32", "--epochs", "200", "--save-every", "0", "--out", s(dir)].map(String::from));
    let mut child = command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("checkpoint.safetensors").exists() {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the run ended ({st}) before writing a checkpoint");
        }
        assert!(Instant::now() < deadline, "no checkpoint after 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    // the caller's kill lands inside the epoch after that checkpoint (or its checkpoint write)
    child
}

/// Runs `epochs` epochs uninterrupted into `dir` (f32 CPU, as the killed runs).
fn reference_run(data: &Path, dir: &Path, epochs: usize, batch: usize) -> Checkpoint {
    let mut args: Vec<String> = vec!["train".into()];
    args.extend(base_args(data, batch));
    args.extend(["--backend", "cpu", "--precision", "f32", "--epochs", &epochs.to_string(), "--out", s(dir)].map(String::from));
    expect_status(&gpu_nn(&args.iter().map(String::as_str).collect::<Vec<_>>()), 0, "reference run");
    ckpt(dir)
}

#[test]
fn sigkill_leaves_a_checkpoint_that_resumes_exactly() {
    let Some(data) = small_mnist("sigkill_leaves_a_checkpoint_that_resumes_exactly") else { return };
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let k = tmp.path().join("killed");
    let mut child = start_and_wait_for_checkpoint(&data, &k, 32);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let c = ckpt(&k); // still loads: the write is temp file + fsync + rename
    let st = &c.meta.state;
    assert!(st.epoch >= 1 && st.epoch < 200 && st.step_in_epoch == 0, "epoch-end checkpoint expected, got {st:?}");
    assert_eq!(st.history.len(), st.epoch);
    let target = st.epoch + 1;
    let o = resume(&k, &["--epochs", &target.to_string()]);
    expect_status(&o, 0, "resume after SIGKILL");
    let want = reference_run(&data, &tmp.path().join("reference"), target, 32);
    assert_bit_identical("resumed after SIGKILL", &ckpt(&k), &want);
    eprintln!("sigkill test: killed after epoch {}, {:.1} s", st.epoch, t0.elapsed().as_secs_f64());
}

#[cfg(unix)]
#[test]
fn sigint_writes_a_checkpoint_and_resumes_exactly() {
    let Some(data) = small_mnist("sigint_writes_a_checkpoint_and_resumes_exactly") else { return };
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let k = tmp.path().join("interrupted");
    // batches of 8: 216 steps per epoch, so the interrupt usually lands inside an epoch (after
    // the step in progress: ctrl_c_finishes_the_current_step_on_the_cpu pins that down)
    let child = start_and_wait_for_checkpoint(&data, &k, 8);
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("the kill command runs");
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    expect_status(&o, 130, "run after SIGINT");
    let err = stderr(&o);
    assert!(err.contains("interrupted at") && err.contains(&format!("gpu-nn train --resume {}", s(&k))), "{err}");

    let st = ckpt(&k).meta.state;
    let target = st.epoch + 2;
    expect_status(&resume(&k, &["--epochs", &target.to_string()]), 0, "resume after SIGINT");
    let want = reference_run(&data, &tmp.path().join("reference"), target, 8);
    assert_bit_identical(&format!("interrupted at {}", st.describe()), &ckpt(&k), &want);
    eprintln!("sigint test: interrupted at {}, {:.1} s", st.describe(), t0.elapsed().as_secs_f64());
}

/// 784-10 linear regression on the squared error: epoch 1 at lr 0.01 is fine, epoch 2 runs at
/// lr 0.01·1e9 (exponential schedule) and overflows within a few steps.
fn diverging_args<'a>(data: &'a Path, dir: &'a Path, epochs: &'a str) -> Vec<&'a str> {
    vec![
        "train", "--data", s(data), "--layers", "784,10", "--activation", "identity", "--loss", "sse", "--optimizer", "sgd",
        "--lr", "0.01", "--schedule", "exponential:1e9", "--batch-size", "32", "--backend", "cpu", "--epochs", epochs,
        "--out", s(dir), "--quiet",
    ]
}

fn assert_one_error_line(o: &Output, needles: &[&str]) -> String {
    expect_status(o, 2, "diverging run");
    let err = stderr(o);
    let lines: Vec<&str> = err.trim_end().lines().collect();
    assert_eq!(lines.len(), 1, "expected one stderr line:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "error lacks {n:?}: {err}");
    }
    lines[0].to_string()
}

#[test]
fn divergence_stops_with_epoch_and_step_and_keeps_the_checkpoint() {
    let Some(data) = small_mnist("divergence_stops_with_epoch_and_step") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("div");
    expect_status(&gpu_nn(&diverging_args(&data, &d, "1")), 0, "first epoch");
    let files = ["checkpoint.safetensors", "model.safetensors", "metrics.csv"];
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(d.join(f)).unwrap()).collect();

    let o = resume(&d, &["--epochs", "3"]);
    let line = assert_one_error_line(&o, &["training diverged: loss is", "at epoch 2, step ", "(lr 10000000)", "the last good checkpoint (end of epoch 1) is in", s(&d)]);
    for (f, b) in files.iter().zip(&before) {
        assert!(std::fs::read(d.join(f)).unwrap() == *b, "{f} changed after the divergence ({line})");
    }
    assert_eq!(ckpt(&d).meta.state.epoch, 1);
    // the CPU names the one step whose loss is not finite: a run stopped just before it is fine
    let step: u64 = line.split("at epoch 2, step ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap_or_else(|_| panic!("not one step: {line}"));
    assert!((61..=120).contains(&step), "epoch 2 holds steps 61-120: {line}");
    let before_it = tmp.path().join("before");
    let limit = (step - 1).to_string();
    let mut args = diverging_args(&data, &before_it, "3");
    args.extend(["--max-steps", limit.as_str()]);
    expect_status(&gpu_nn(&args), 0, "the run up to the step before the divergence");

    // the same run from scratch says the same, and diverging in epoch 1 leaves no checkpoint
    let d2 = tmp.path().join("div2");
    assert_one_error_line(&gpu_nn(&diverging_args(&data, &d2, "3")), &[&format!("at epoch 2, step {step} "), "(end of epoch 1)"]);
    assert_bit_identical("checkpoint left by the diverged run", &ckpt(&d2), &ckpt(&d));
    let d3 = tmp.path().join("div3");
    let mut args = diverging_args(&data, &d3, "3");
    let lr = args.iter().position(|a| *a == "0.01").unwrap();
    args[lr] = "1e7";
    assert_one_error_line(&gpu_nn(&args), &["training diverged: loss is", "at epoch 1, step ", "no checkpoint had been written yet"]);
    assert!(!d3.join("checkpoint.safetensors").exists());
}

/// Epoch ends the loop defers (`--save-every` far longer than the run) are written when an
/// interrupt or a divergence stops the run: the files are those of an epoch-end save, and the
/// run resumes to the uninterrupted bytes.
#[test]
fn deferred_epoch_ends_are_written_by_an_interrupt_and_a_divergence() {
    let Some(data) = small_mnist("deferred_epoch_ends_are_written") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (two, four, c) = (tmp.path().join("two"), tmp.path().join("four"), tmp.path().join("c"));
    let spe = steps_per_epoch(32);
    expect_status(&train(&data, &[], &["--epochs", "2", "--out", s(&two), "--save-every", "0"]), 0, "two epochs");
    expect_status(&train(&data, &[], &["--epochs", "4", "--out", s(&four), "--save-every", "0"]), 0, "four epochs");
    let stop = (2 * spe + 3).to_string();
    let o = train(&data, &[], &["--epochs", "4", "--out", s(&c), "--save-every", "1000", "--stop-after-steps", &stop]);
    expect_status(&o, 130, "run interrupted in epoch 3 with both epoch ends deferred");
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap_or_else(|e| panic!("{}/{f}: {e}", d.display()));
    assert!(read(&c, "model.safetensors") == read(&two, "model.safetensors"), "model.safetensors is epoch 2's");
    assert_eq!(metrics_rows(&c), metrics_rows(&two), "metrics.csv holds epochs 1 and 2");
    let events = gpu_nn::report::tensorboard::find_event_file(&c).expect("an event file");
    let scalars = gpu_nn::report::tensorboard::read_scalars(&events, 1 << 26).unwrap();
    let epochs: Vec<i64> = scalars.iter().filter(|x| x.tag == "loss/train").map(|x| x.step).collect();
    assert_eq!(epochs, [1, 2], "the event file's epochs");
    let st = ckpt(&c).meta.state;
    assert_eq!((st.epoch, st.step_in_epoch, st.step), (2, 3, 2 * spe + 3), "the checkpoint is the interrupt's");
    expect_status(&resume(&c, &["--save-every", "1000"]), 0, "resume");
    assert_bit_identical("resumed after deferred epoch ends", &ckpt(&c), &ckpt(&four));
    assert_same_metrics("resumed after deferred epoch ends", &c, &four, false);

    // a divergence in epoch 2 writes epoch 1's deferred end, checkpoint included
    let (d, one) = (tmp.path().join("div"), tmp.path().join("one"));
    let mut args = diverging_args(&data, &d, "3");
    args.extend(["--save-every", "1000"]);
    assert_one_error_line(&gpu_nn(&args), &["at epoch 2, step ", "the last good checkpoint (end of epoch 1) is in"]);
    expect_status(&gpu_nn(&diverging_args(&data, &one, "1")), 0, "first epoch");
    assert_bit_identical("epoch 1's deferred checkpoint", &ckpt(&d), &ckpt(&one));
    assert!(read(&d, "model.safetensors") == read(&one, "model.safetensors"), "model.safetensors is epoch 1's");
    assert_eq!(metrics_rows(&d), metrics_rows(&one), "metrics.csv holds epoch 1");
}

#[test]
fn early_stopping_keeps_the_best_model() {
    let Some(data) = small_mnist("early_stopping_keeps_the_best_model") else { return };
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("es");
    // a wide net and a large Adam step overfit 1,728 samples within a few epochs
    let flags = "--layers 784,64,10 --activation relu,softmax --loss cross_entropy --optimizer adam --lr 0.01 --batch-size 32 --val-split 192 --seed 3 --backend cpu --precision f64";
    let mut args: Vec<&str> = vec!["train", "--data", s(&data), "--epochs", "60", "--early-stop", "2", "--quiet", "--out", s(&d)];
    args.extend(flags.split(' '));
    expect_status(&gpu_nn(&args), 0, "early-stopped run");

    let rows = metrics_rows(&d);
    let val: Vec<f64> = rows.iter().map(|r| r[3].parse().unwrap()).collect();
    let best = (0..val.len()).fold(0, |b, i| if val[i] < val[b] { i } else { b });
    assert!(rows.len() < 60, "early stopping never triggered: {val:?}");
    assert_eq!(rows.len(), best + 1 + 2, "stops 2 epochs after the best one: {val:?}");
    let st = ckpt(&d).meta.state;
    assert!(st.stopped_early);
    assert_eq!(st.best_val(), Some((val[best], best + 1)));

    // best.safetensors is the model of the best epoch: its validation loss is that epoch's
    let cfg = ConfigArgs { data: Some(data.clone()), ..Default::default() }
        .resolve_over(&[gpu_nn::core::config::Config::load_file(&d.join("config.json")).unwrap()])
        .unwrap();
    let run_data = gpu_nn::core::run_data::load(&cfg).unwrap();
    let (params, _) = load_model(&d.join("best.safetensors")).unwrap();
    let mut cpu = ReferenceBackend::new(&cfg.model, &cfg.optimizer);
    cpu.set_params(&params).unwrap();
    cpu.attach(Split::Val, run_data.val.clone().unwrap()).unwrap();
    assert_eq!(cpu.evaluate(Split::Val).unwrap().loss(), val[best], "best.safetensors is not the best epoch's model");
    assert_ne!(std::fs::read(d.join("best.safetensors")).unwrap(), std::fs::read(d.join("model.safetensors")).unwrap());

    // resuming a run that stopped early has nothing to do
    let o = resume(&d, &["--epochs", "80"]);
    expect_status(&o, 0, "resume after early stop");
    assert_eq!(metrics_rows(&d).len(), rows.len());

    // without a validation set there is nothing to watch
    let o = gpu_nn(&["train", "--data", s(&data), "--early-stop", "3", "--backend", "cpu"]);
    assert_one_error_line(&o, &["--early-stop 3", "--val-split"]);
    eprintln!("early stopping: best epoch {} of {}, {:.1} s", best + 1, rows.len(), t0.elapsed().as_secs_f64());
}

#[test]
fn resume_refuses_what_it_cannot_continue() {
    let Some(data) = small_mnist("resume_refuses_what_it_cannot_continue") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("run");
    expect_status(&train(&data, &["--backend", "cpu"], &["--epochs", "1", "--out", s(&d)]), 0, "one epoch");
    let ck = std::fs::read(d.join("checkpoint.safetensors")).unwrap();

    assert_one_error_line(&resume(&d, &["--lr", "0.1", "--batch-size", "8"]), &["--lr, --batch-size would change the training", "--epochs"]);
    assert_one_error_line(&resume(&d, &["--backend", "gpu"]), &["--backend would change"]);
    assert_one_error_line(&resume(&tmp.path().join("nothing"), &[]), &["no config.json"]);
    assert_one_error_line(&gpu_nn(&["train", "--resume", s(&d), "--out", s(&d)]), &["--out"]);
    // an edited config.json no longer matches the checkpoint
    let cfg_path = d.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, text.replace("\"seed\": 7", "\"seed\": 8")).unwrap();
    assert_one_error_line(&resume(&d, &["--epochs", "2"]), &["config.json differs from the configuration", "training.seed: 7 vs 8"]);
    std::fs::write(&cfg_path, text).unwrap();
    // a complete run has nothing to resume; a corrupt checkpoint is named
    let o = resume(&d, &[]);
    expect_status(&o, 0, "resuming a complete run");
    std::fs::write(d.join("checkpoint.safetensors"), &ck[..ck.len() / 2]).unwrap();
    assert_one_error_line(&resume(&d, &["--epochs", "2"]), &["checkpoint.safetensors"]);
}

/// The reference backend, with Ctrl-C "pressed" while its `press_during`-th step runs, and
/// optionally taking whole chunks per call as the GPU does.
struct CtrlCDuringStep<'a> {
    inner: ReferenceBackend,
    flag: &'a std::sync::atomic::AtomicBool,
    press_during: u64,
    steps: u64,
    whole_chunks: bool,
}

impl Backend for CtrlCDuringStep<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn set_params(&mut self, p: &gpu_nn::nn::model::Params) -> anyhow::Result<()> {
        self.inner.set_params(p)
    }
    fn params(&mut self) -> anyhow::Result<gpu_nn::nn::model::Params> {
        self.inner.params()
    }
    fn set_dropout(&mut self, d: &gpu_nn::nn::dropout::Dropout) -> anyhow::Result<()> {
        self.inner.set_dropout(d)
    }
    fn set_augment(&mut self, a: Option<&gpu_nn::nn::augment::Augment>) -> anyhow::Result<()> {
        self.inner.set_augment(a)
    }
    fn optimizer_state(&mut self) -> anyhow::Result<gpu_nn::nn::optim::OptimState> {
        self.inner.optimizer_state()
    }
    fn set_optimizer_state(&mut self, s: &gpu_nn::nn::optim::OptimState) -> anyhow::Result<()> {
        self.inner.set_optimizer_state(s)
    }
    fn attach(&mut self, split: Split, data: std::sync::Arc<Dataset>) -> anyhow::Result<()> {
        self.inner.attach(split, data)
    }
    fn train_steps(&mut self, idx: &[u32], batch: usize, lrs: &[f64]) -> anyhow::Result<gpu_nn::nn::backend::StepStats> {
        if (self.steps + 1..=self.steps + lrs.len() as u64).contains(&self.press_during) {
            self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        self.steps += lrs.len() as u64;
        self.inner.train_steps(idx, batch, lrs)
    }
    fn steps_per_call(&self) -> usize {
        if self.whole_chunks { usize::MAX } else { self.inner.steps_per_call() }
    }
    fn evaluate(&mut self, split: Split) -> anyhow::Result<gpu_nn::nn::backend::EvalResult> {
        self.inner.evaluate(split)
    }
    fn trace_step(&mut self, idx: &[u32], lr: f64) -> anyhow::Result<gpu_nn::nn::backend::StepTrace> {
        self.inner.trace_step(idx, lr)
    }
}

/// Ctrl-C during step 5 of a 200-step epoch: the CPU finishes step 5 and stops there (the
/// observer is asked to save exactly that state); a backend that takes whole chunks, as the
/// GPU does, finishes the chunk in flight, steps 1-64.
#[test]
fn ctrl_c_finishes_the_current_step_on_the_cpu() {
    use gpu_nn::core::run_state::RunState;
    use gpu_nn::core::train::{Controls, Observer, Outcome, SaveReason, train_from};
    struct Saves(Vec<(u64, SaveReason)>);
    impl Observer for Saves {
        fn save(&mut self, s: &RunState, why: SaveReason, _: &mut dyn Backend) -> anyhow::Result<()> {
            self.0.push((s.step, why));
            Ok(())
        }
    }
    let model = gpu_nn::nn::model::ModelSpec {
        layers: vec![3, 2],
        activations: vec![gpu_nn::nn::model::Activation::Sigmoid],
        loss: gpu_nn::nn::model::Loss::HalfSse,
        label_smoothing: 0.0,
        reduction: gpu_nn::nn::model::Reduction::Mean,
        input_norm: Default::default(),
        feature_norm: None,
        classes: Vec::new(),
    };
    let mut cfg = gpu_nn::core::config::Config { model, ..Default::default() };
    cfg.training.batch_size = gpu_nn::core::config::BatchSize::N(1);
    cfg.training.epochs = 1;
    let n = 200;
    let train = Dataset {
        source: "200 samples".into(),
        pixels: gpu_nn::data::Pixels::U8((0..3 * n).map(|i| (i * 37 % 256) as u8).collect()),
        sample_len: 3,
        labels: (0..n).map(|i| (i % 2) as u8).collect(),
        num_classes: 2,
    };
    let data = gpu_nn::core::run_data::RunData::new(train, None);
    for (whole_chunks, stops_at) in [(false, 5), (true, 64)] {
        let flag = std::sync::atomic::AtomicBool::new(false);
        let mut b = CtrlCDuringStep { inner: ReferenceBackend::new(&cfg.model, &cfg.optimizer), flag: &flag, press_during: 5, steps: 0, whole_chunks };
        b.set_params(&cfg.initial_params().unwrap()).unwrap();
        b.attach(Split::Train, data.train.clone()).unwrap();
        let mut saves = Saves(Vec::new());
        let ctl = Controls { interrupt: Some(&flag), ..Default::default() };
        let r = train_from(&cfg, &data, &mut b, &mut saves, RunState::default(), ctl).unwrap();
        assert_eq!(r.outcome, Outcome::Interrupted);
        assert_eq!((r.state.step, r.state.step_in_epoch, b.steps), (stops_at, stops_at as usize, stops_at), "whole chunks: {whole_chunks}");
        assert_eq!(saves.0, vec![(stops_at, SaveReason::Interrupted)]);
    }
}
