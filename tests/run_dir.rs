//! A run directory belongs to one run at a time: `--force` removes the earlier run's own files
//! (and nothing else), and a directory being written is locked against a second run, a
//! `--resume` or a sweep cell, until its writer ends, however it ends.

mod common;

use common::{command, error_line, gpu_nn, s};
use gpu_nn::commands::run_dir::{LOCK_FILE, RUN_FILES, lock_run_dir};
use std::path::Path;
use std::time::{Duration, Instant};

/// seed000-hand on the f64 CPU: a run of a few milliseconds without data files.
fn hand(out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["train", "--preset", "seed000-hand", "--backend", "cpu", "--precision", "f64", "--out", s(out), "--quiet"];
    args.extend_from_slice(extra);
    gpu_nn(&args)
}

#[test]
fn force_removes_the_earlier_runs_files_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    assert!(hand(&out, &[]).status.success());
    // files the earlier run's files could be mistaken for, and one that is not the run's
    std::fs::write(out.join("confusion.png"), b"from an earlier run with a test set").unwrap();
    std::fs::write(out.join("best.safetensors"), b"from an earlier run with early stopping").unwrap();
    std::fs::write(out.join("notes.txt"), b"mine").unwrap();
    let o = hand(&out, &["--force", "--epochs", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!out.join("confusion.png").exists(), "the earlier run's confusion.png survived --force");
    assert!(!out.join("best.safetensors").exists(), "the earlier run's best.safetensors survived --force");
    assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"mine", "--force removed a file that is not the run's");
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 2, "metrics.csv holds the new one-epoch run only:\n{metrics}");
    for f in RUN_FILES {
        assert!(!f.contains('/') && !f.starts_with('.'), "{f}");
    }
}

#[test]
fn a_locked_run_directory_refuses_a_second_run_and_a_resume() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    assert!(hand(&out, &[]).status.success());
    let before = std::fs::read(out.join("model.safetensors")).unwrap();
    {
        let _held = lock_run_dir(&out).unwrap();
        let pid = std::process::id().to_string();
        for o in [hand(&out, &["--force"]), gpu_nn(&["train", "--resume", s(&out), "--epochs", "5", "--quiet"])] {
            assert_eq!(o.status.code(), Some(2), "a run into a locked directory must fail");
            let line = error_line(&o);
            assert!(line.contains(&pid) && line.contains("is writing to this run directory"), "{line}");
        }
        assert_eq!(std::fs::read(out.join("model.safetensors")).unwrap(), before, "the refused run touched the model");
        // a sweep into it (a run directory is no sweep's) and a sweep whose cell is locked
        let sweep = |to: &Path| gpu_nn(&["sweep", "--preset", "seed000-hand", "--backend", "cpu", "--precision", "f64", "--lr", "0.1,0.2", "--out", s(to), "--quiet", "--force"]);
        let o = sweep(&out);
        assert_eq!(o.status.code(), Some(2), "a sweep into a run directory must fail");
        assert!(error_line(&o).contains("holds a run of gpu-nn train"), "{}", error_line(&o));
        let cells = dir.path().join("sweep");
        let cell = cells.join("cells").join("batch-2-lr-0.1");
        std::fs::create_dir_all(&cell).unwrap();
        let _cell_held = lock_run_dir(&cell).unwrap();
        // the cell another process holds is left to it (issue 22: it used to fail the shard)
        let o = gpu_nn(&["sweep", "--preset", "seed000-hand", "--backend", "cpu", "--precision", "f64", "--lr", "0.1,0.2", "--out", s(&cells), "--force"]);
        let text = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        let held = text.lines().find(|l| l.contains("batch 2, lr 0.1")).unwrap_or_default();
        assert!(held.contains(&pid) && held.contains("left to that process"), "{text}");
        assert!(!cell.join("result.json").exists() && cells.join("cells/batch-2-lr-0.2/result.json").exists(), "{text}");
    }
    // released: the same run goes through
    let o = gpu_nn(&["train", "--resume", s(&out), "--epochs", "5", "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_killed_runs_lock_does_not_block_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // a run long enough to be killed while it holds the lock
    let mut child = command(&["train", "--preset", "seed000-hand", "--backend", "cpu", "--precision", "f64", "--epochs", "100000000", "--out", s(&out), "--quiet"])
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let start = Instant::now();
    while std::fs::read_to_string(out.join(LOCK_FILE)).unwrap_or_default() != pid {
        assert!(start.elapsed() < Duration::from_secs(60), "the run never took its lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(lock_run_dir(&out).is_err(), "the running process must hold the lock");
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    let o = hand(&out, &["--force", "--epochs", "1"]);
    assert!(o.status.success(), "a dead run's lock blocked the next: {}", String::from_utf8_lossy(&o.stderr));
}
