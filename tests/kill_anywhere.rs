//! Kill anywhere: a CPU run SIGKILLed at many moments (loading data, training, writing its
//! checkpoint and pictures), resumed after each kill (or restarted when it had no checkpoint
//! yet), ends with the model of the uninterrupted run, byte for byte, and the same metrics but
//! for the timing columns.

mod common;

use common::{command, mnist_dir_or_skip};
use std::path::Path;
use std::time::Instant;

/// A small network over all of MNIST: many epochs of a few dozen steps, so checkpoints (and
/// with them atomic writes) come often.
fn args<'a>(data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train", "--backend", "cpu", "--data", data, "--layers", "784,8,10", "--activation", "sigmoid,softmax",
        "--batch-size", "2000", "--epochs", "8", "--seed", "11", "--out", out, "--quiet",
    ]
}

/// metrics.csv without the columns that time the run.
fn metrics_without_timing(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let keep: Vec<usize> = (0..header.len()).filter(|&i| header[i] != "seconds" && header[i] != "samples_per_sec").collect();
    text.lines().map(|l| keep.iter().map(|&i| l.split(',').nth(i).unwrap_or("")).collect::<Vec<_>>().join(",")).collect()
}

#[test]
fn a_run_killed_at_random_moments_and_resumed_ends_like_an_uninterrupted_one() {
    let Some(mnist) = mnist_dir_or_skip("kill_anywhere") else { return };
    let data = mnist.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("reference");
    let start = Instant::now();
    let o = command(&args(data, reference.to_str().unwrap())).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let whole = start.elapsed();

    let out = tmp.path().join("killed");
    let out_s = out.to_str().unwrap();
    let mut seed = 0x9e37_79b9_u64;
    let (mut kills, mut with_checkpoint, mut runs) = (0, 0, 0);
    loop {
        runs += 1;
        assert!(runs < 200, "the run never finished");
        let resume = out.join("checkpoint.safetensors").exists();
        let mut c = if resume {
            command(&["train", "--resume", out_s, "--quiet"])
        } else {
            let mut a = args(data, out_s);
            a.push("--force");
            command(&a)
        };
        let mut child = c.spawn().unwrap();
        if kills < 24 {
            // a moment anywhere in a whole run's time
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let at = whole.mul_f64((seed >> 11) as f64 / (1u64 << 53) as f64);
            std::thread::sleep(at);
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                with_checkpoint += resume as usize;
                continue;
            }
        }
        let status = child.wait().unwrap();
        if status.success() {
            let done = std::fs::read_to_string(out.join("metrics.csv")).map(|m| m.lines().count() == 9).unwrap_or(false);
            if done && kills >= 20 {
                break;
            }
            if done {
                // finished before enough kills: start over from scratch
                std::fs::remove_dir_all(&out).unwrap();
            }
            continue;
        }
        panic!("run {runs} failed: {status}");
    }
    assert!(kills >= 20 && with_checkpoint >= 5, "{kills} kills, {with_checkpoint} of them after a checkpoint");
    assert!(
        std::fs::read(out.join("model.safetensors")).unwrap() == std::fs::read(reference.join("model.safetensors")).unwrap(),
        "model.safetensors differs from the uninterrupted run's after {kills} kills"
    );
    assert_eq!(metrics_without_timing(&out), metrics_without_timing(&reference), "metrics.csv differs after {kills} kills");
    eprintln!("kill anywhere: {kills} SIGKILLs ({with_checkpoint} after a checkpoint), {runs} processes, {:.1} s per whole run", whole.as_secs_f64());
}
