//! TensorBoard event files in run directories, read by TensorBoard itself
//! (`tests/python/tensorboard_check.py`, which checks every scalar against metrics.csv, the
//! pictures against the PNGs, a sweep's HParams against its grid and results):
//! - a run cut short by `--max-steps`, extended, set back to an earlier checkpoint with a torn
//!   record at the end of its event file (what a run killed after its last checkpoint leaves),
//!   interrupted mid-epoch and resumed again, keeps one event file with every epoch once;
//! - a 2×2 sweep (a numeric and a text axis, two cells that diverge, one cell interrupted and
//!   resumed) gives TensorBoard's HParams table its experiment and every cell's values and end;
//! - `--force` removes the earlier run's event file and nothing else.
//!
//! The Rust side reads the files back too (`read_scalars`), so without Python's tensorboard
//! (outside CI) the test still checks the files' scalars.

mod common;
use common::{gpu_nn, in_ci, s};

use gpu_nn::report::tensorboard::{FILE_PREFIX, find_event_file, read_scalars};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const N_TRAIN: usize = 1000;
const N_TEST: usize = 300;

/// The first N_TRAIN / N_TEST real MNIST samples (`common::mnist_first`).
fn small_mnist(test: &str) -> Option<PathBuf> {
    common::mnist_first(test, N_TRAIN, N_TEST)
}

/// Whether python3 can import tensorboard; false with a printed reason (a failure in CI).
fn tensorboard_or_skip(test: &str) -> bool {
    let ok = Command::new("python3").args(["-c", "import tensorboard"]).status().is_ok_and(|st| st.success());
    if !ok {
        assert!(!in_ci(), "{test}: python3 with tensorboard is missing in CI (.ci/run installs it)");
        eprintln!("SKIPPED {test}'s TensorBoard check: python3 -c 'import tensorboard' fails (pip install tensorboard)");
    }
    ok
}

/// Runs tests/python/tensorboard_check.py (`run` or `sweep`) on `dirs`; fails with its output.
fn tensorboard_check(test: &str, mode: &str, dirs: &[&Path]) {
    if !tensorboard_or_skip(test) {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/tensorboard_check.py");
    let o = Command::new("python3").arg(script).arg(mode).args(dirs).output().unwrap();
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{test}: tensorboard_check.py {mode} failed:\n{out}");
    eprint!("{out}");
}

fn expect_status(o: &Output, code: i32, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{what}: exit status {:?}; stderr:\n{err}", o.status.code());
    assert!(!err.contains("panicked"), "{what} panicked: {err}");
}

/// The event files directly in `dir`.
fn event_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with(FILE_PREFIX)).collect();
    names.sort();
    names
}

/// The steps of `tag` in `dir`'s event file, in file order.
fn steps(dir: &Path, tag: &str) -> Vec<i64> {
    let path = find_event_file(dir).unwrap_or_else(|| panic!("{}: no event file", dir.display()));
    read_scalars(&path, 1 << 26).unwrap().into_iter().filter(|x| x.tag == tag).map(|x| x.step).collect()
}

/// 784-16-10 relu/softmax with Adam, 200 validation samples, batches of 8: 100 steps an epoch,
/// two progress updates (64 steps a chunk) in each.
fn train_args(data: &Path) -> Vec<String> {
    "--layers 784,16,10 --activation relu,softmax --loss cross_entropy --optimizer adam --lr 0.005 --val-split 200 --seed 7 --batch-size 8 --epochs 3 --backend cpu --quiet"
        .split(' ')
        .map(str::to_string)
        .chain(["--data".into(), s(data).into()])
        .collect()
}

fn run(args: &[String], extra: &[&str]) -> Output {
    let all: Vec<&str> = args.iter().map(String::as_str).chain(extra.iter().copied()).collect();
    gpu_nn(&all)
}

#[test]
fn a_run_stopped_and_resumed_keeps_one_event_file_with_every_epoch_once() {
    let test = "a_run_stopped_and_resumed_keeps_one_event_file";
    let Some(data) = small_mnist(test) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut train = vec!["train".to_string()];
    train.extend(train_args(&data));
    let resume = |extra: &[&str]| run(&["train".into(), "--resume".into(), s(&dir).into(), "--quiet".into()], extra);

    // cut short inside epoch 2, then extended into epoch 3
    expect_status(&run(&train, &["--max-steps", "150", "--out", s(&dir)]), 0, "run to step 150");
    let first = event_files(&dir);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(steps(&dir, "loss/train"), [1, 2], "epoch 2's row as metrics.csv has it, cut short");
    assert_eq!(steps(&dir, "running/loss"), [64, 100, 150]);
    let at_150 = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    expect_status(&resume(&["--max-steps", "250"]), 0, "resume to step 250");
    assert_eq!(steps(&dir, "loss/train"), [1, 2, 3], "epoch 2 written again once it ended, not twice");
    assert_eq!(steps(&dir, "running/loss"), [64, 100, 150, 164, 200, 250]);

    // back to the checkpoint at step 150, with half a record at the end of the event file: what a
    // run killed after that checkpoint and in the middle of a write leaves
    std::fs::write(dir.join("checkpoint.safetensors"), at_150).unwrap();
    let events = dir.join(&first[0]);
    let mut bytes = std::fs::read(&events).unwrap();
    let whole = bytes.len();
    bytes.extend_from_within(..30);
    std::fs::write(&events, bytes).unwrap();
    // interrupted mid-epoch 3 (the Ctrl-C path), then to the end
    expect_status(&resume(&["--max-steps", "300", "--stop-after-steps", "230"]), 130, "resume interrupted at step 230");
    assert!(std::fs::metadata(&events).unwrap().len() < whole as u64, "cut back to the checkpoint at step 150");
    assert_eq!(steps(&dir, "running/loss"), [64, 100, 150, 164, 200, 230]);
    expect_status(&resume(&["--max-steps", "300"]), 0, "resume to the end");

    assert_eq!(event_files(&dir), first, "the same event file all along");
    assert_eq!(steps(&dir, "loss/train"), [1, 2, 3]);
    assert_eq!(steps(&dir, "accuracy/val"), [1, 2, 3]);
    assert_eq!(steps(&dir, "running/loss"), [64, 100, 150, 164, 200, 230, 264, 300]);
    tensorboard_check(test, "run", &[&dir]);
}

#[test]
fn a_sweep_gives_the_hparams_table_its_experiment_and_every_cell() {
    use gpu_nn::commands::args::SweepArgs;
    use gpu_nn::commands::sweep::cell_run::{CellRun, CellRunner};
    use gpu_nn::core::train::Controls;
    use gpu_nn::report::console::Console;
    let test = "a_sweep_gives_the_hparams_table";
    let Some(data) = small_mnist(test) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    // batch 20: 40 steps an epoch; full: one. lr 1e30 diverges
    let mut tokens: Vec<String> = train_args(&data).into_iter().filter(|t| t != "--quiet").collect();
    for flag in ["--batch-size", "--lr"] {
        let at = tokens.iter().position(|t| t == flag).unwrap();
        tokens.drain(at..at + 2);
    }
    tokens.extend(["--batch-size", "20,full", "--lr", "0.1,1e30", "--quiet", "--out", s(&out)].map(String::from));

    // the first cell interrupted inside epoch 2 (as Ctrl-C would), left with its checkpoint
    let args = SweepArgs::from_tokens(&tokens).unwrap();
    let (plan, cfgs) = gpu_nn::commands::sweep::plan(&args).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    plan.settle(&out, false).unwrap();
    let env = gpu_nn::commands::environment::read().unwrap();
    let mut runner = CellRunner::new(Console::quiet(), &env);
    let ctl = Controls { stop_after_steps: Some(50), ..Default::default() };
    let cell = plan.cell_dir(&out, 0);
    assert!(matches!(runner.run(&cfgs[0], &plan.grid, 0, &cell, false, ctl).unwrap(), CellRun::Interrupted { .. }));
    drop(runner);
    assert_eq!(steps(&cell, "running/loss"), [40, 50]);

    // the sweep resumes it and runs the others
    let mut sweep = vec!["sweep".to_string()];
    sweep.extend(tokens);
    let o = run(&sweep, &[]);
    expect_status(&o, 0, "sweep");
    assert_eq!(plan.grid.len(), 4);
    assert_eq!(event_files(&out).len(), 1, "the experiment, beside sweep.json");
    assert_eq!(steps(&cell, "running/loss"), [40, 50, 80, 120]);
    assert_eq!(steps(&cell, "loss/train"), [1, 2, 3]);
    for k in 0..4 {
        assert_eq!(event_files(&plan.cell_dir(&out, k)).len(), 1, "cell {k}");
    }
    tensorboard_check(test, "sweep", &[&out]);
}

#[test]
fn force_removes_the_earlier_runs_event_file_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let hand = |extra: &[&str]| {
        let mut args = vec!["train", "--preset", "seed000-hand", "--backend", "cpu", "--precision", "f64", "--quiet", "--out", s(&dir)];
        args.extend_from_slice(extra);
        gpu_nn(&args)
    };
    expect_status(&hand(&[]), 0, "first run");
    let first = event_files(&dir);
    assert_eq!(first.len(), 1);
    std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    std::fs::write(dir.join(format!("{}-not-quite", FILE_PREFIX.trim_end_matches('.'))), b"mine").unwrap();
    // the name of a later event file, so that without the removal the reader would pick it
    let later = dir.join(format!("{FILE_PREFIX}9999999999.elsewhere.1.0"));
    std::fs::copy(dir.join(&first[0]), &later).unwrap();
    expect_status(&hand(&["--force"]), 0, "run with --force");
    let now = event_files(&dir);
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(!later.exists());
    assert_eq!(std::fs::read(dir.join("notes.txt")).unwrap(), b"mine");
    assert!(dir.join("events.out.tfevents-not-quite").exists());
    assert_eq!(steps(&dir, "loss/train"), [1, 2, 3]);
    tensorboard_check("force_removes_the_earlier_runs_event_file", "run", &[&dir]);
}
