//! `--target-acc`: doc 000's network on real MNIST (the CPU, 0.3 s an epoch) stops after the
//! first epoch whose validation accuracy reaches the target, ends like a finished run (model,
//! pictures), and records the step and the seconds it took in target.json, in its last line
//! and in the event file; a run that misses the target says so. The target is taken from a
//! reference run's own accuracies, so nothing here depends on how well the network learns.
//! In CI (CI set) missing MNIST fails instead of skipping.

mod common;
use common::{gpu_nn, s};

use gpu_nn::report::tensorboard::{TARGET_SECONDS, TARGET_STEP, find_event_file, read_scalars};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--preset", "seed000-mnist", "--data", s(data), "--backend", "cpu", "--val-split", "5000", "--out", s(out)];
    args.extend_from_slice(extra);
    let o = gpu_nn(&args);
    assert!(o.status.success(), "gpu-nn {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

/// metrics.csv's rows as (epoch, step, val_acc, seconds).
fn metrics(dir: &Path) -> Vec<(usize, u64, f64, f64)> {
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[col("epoch")].parse().unwrap(), f[col("step")].parse().unwrap(), f[col("val_acc")].parse().unwrap(), f[col("seconds")].parse().unwrap())
        })
        .collect()
}

#[test]
fn a_run_stops_at_the_epoch_that_reaches_the_target_and_records_when() {
    let Some(data) = common::mnist_dir_or_skip("a_run_stops_at_the_epoch_that_reaches_the_target") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (reference, run, missed) = (tmp.path().join("reference"), tmp.path().join("run"), tmp.path().join("missed"));
    train(&data, &reference, &["--epochs", "3", "--quiet"]);
    let m = metrics(&reference);
    assert_eq!(m.len(), 3);
    assert!(m[1].2 > m[0].2, "the test needs epoch 2 more accurate than epoch 1: {m:?}");
    // between epoch 1's validation accuracy and epoch 2's: the run must stop after epoch 2
    let target = (m[0].2 + m[1].2) / 2.0;
    let o = train(&data, &run, &["--epochs", "3", "--target-acc", &target.to_string()]);
    let got = metrics(&run);
    assert_eq!(got.len(), 2, "stopped after epoch 2: {got:?}");
    assert_eq!((got[1].1, got[1].2), (m[1].1, m[1].2), "the same training as the reference");
    for f in ["model.safetensors", "curves.png", "confusion.png", "checkpoint.safetensors"] {
        assert!(run.join(f).is_file(), "a run that reached its target ends like a finished run: no {f}");
    }
    let seconds: f64 = got.iter().map(|r| r.3).sum();

    let t: Value = serde_json::from_str(&std::fs::read_to_string(run.join("target.json")).unwrap()).unwrap();
    assert_eq!(t["target_acc"], target);
    assert_eq!(t["split"], "val");
    let r = &t["reached"];
    assert_eq!((r["epoch"].as_u64(), r["step"].as_u64(), r["accuracy"].as_f64()), (Some(2), Some(m[1].1), Some(m[1].2)), "{t}");
    // metrics.csv rounds its seconds to 1e-4
    assert!((r["seconds"].as_f64().unwrap() - seconds).abs() < 1e-3, "{t} vs metrics.csv's {seconds}");

    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = stdout.lines().find(|l| l.starts_with("target reached:")).unwrap_or_else(|| panic!("no target line:\n{stdout}"));
    assert!(line.contains(&format!("after epoch 2, step {},", m[1].1)) && line.contains("validation accuracy"), "{line}");

    let events = read_scalars(&find_event_file(&run).unwrap(), 1 << 30).unwrap();
    let scalar = |tag: &str| events.iter().find(|e| e.tag == tag).unwrap_or_else(|| panic!("no {tag} in the event file"));
    assert_eq!((scalar(TARGET_STEP).step, scalar(TARGET_STEP).value), (2, m[1].1 as f32 as f64));
    assert!((scalar(TARGET_SECONDS).value - seconds).abs() < 1e-3);

    // a target above every epoch's accuracy: the run trains to its end and says it missed
    let best = m[..2].iter().map(|r| r.2).fold(0.0, f64::max);
    let above = (best + 1.0) / 2.0;
    let o = train(&data, &missed, &["--epochs", "2", "--target-acc", &above.to_string()]);
    assert_eq!(metrics(&missed).len(), 2);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("target not reached: the validation accuracy never reached")), "{stdout}");
    let t: Value = serde_json::from_str(&std::fs::read_to_string(missed.join("target.json")).unwrap()).unwrap();
    assert!(t["reached"].is_null(), "{t}");
    assert!(!read_scalars(&find_event_file(&missed).unwrap(), 1 << 30).unwrap().iter().any(|e| e.tag == TARGET_STEP));

    // resuming the run that reached its target: nothing to do with the same target, and
    // another target (allowed with --resume) trains on to it
    let o = gpu_nn(&["train", "--resume", s(&run), "--epochs", "3"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("nothing to resume"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = gpu_nn(&["train", "--resume", s(&run), "--epochs", "3", "--target-acc", &above.to_string(), "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(metrics(&run).len(), 3, "the resumed run trained its third epoch");
}
