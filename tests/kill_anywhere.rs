//! Kill anywhere: a CPU run SIGKILLed at many moments (loading data, training, writing its
//! checkpoint and pictures), resumed after each kill (or restarted when it had no checkpoint
//! yet), ends with the model of the uninterrupted run, byte for byte, the same metrics but for
//! the timing columns, and one TensorBoard event file holding every epoch once. Each kill waits
//! on an event of the run, drawn from a seeded stream: its start, an epoch's row in
//! metrics.csv, or a temporary file of an atomic write appearing (the kill then lands inside
//! that write), never on a timer.

mod common;

use common::{command, mnist_dir_or_skip};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// When to kill a run.
#[derive(Clone, Copy, Debug)]
enum Moment {
    /// As soon as it is started: while it loads the data.
    AtStart,
    /// Once metrics.csv holds `k` more epochs' rows than when the run started: just after an
    /// epoch's files, inside the next epoch's training.
    AfterEpochs(usize),
    /// Once metrics.csv holds `k` more rows than when the run started and then a temporary file
    /// of an atomic write appears: inside that write (a checkpoint, the model, a picture).
    InAWrite(usize),
}

/// Epochs whose rows metrics.csv in `dir` holds.
fn rows(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("metrics.csv")).map(|m| m.lines().count().saturating_sub(1)).unwrap_or(0)
}

/// Whether an atomic write is under way in `dir` (its temporary file exists).
fn writing(dir: &Path) -> bool {
    std::fs::read_dir(dir).map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().contains(".gpu-nn-tmp-"))).unwrap_or(false)
}

/// Waits for `moment` in `dir` and kills `child` there; false when the run ended first.
fn kill_at(child: &mut Child, dir: &Path, moment: Moment) -> bool {
    let deadline = Instant::now() + Duration::from_secs(300);
    let before = rows(dir);
    let mut epochs_reached = false;
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(Instant::now() < deadline, "the run reached no {moment:?} in 300 s");
        let now = match moment {
            Moment::AtStart => true,
            Moment::AfterEpochs(k) => rows(dir) >= before + k,
            Moment::InAWrite(k) => {
                epochs_reached = epochs_reached || rows(dir) >= before + k;
                epochs_reached && writing(dir)
            }
        };
        if now {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return true;
        }
        std::thread::yield_now();
    }
}

/// A small network over all of MNIST: many epochs of a few dozen steps, each end written
/// (`--save-every 0`: the default would write these short epochs' ends a second apart), so
/// checkpoints (and with them atomic writes) come often.
fn args<'a>(data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train", "--backend", "cpu", "--data", data, "--layers", "784,8,10", "--activation", "sigmoid,softmax",
        "--batch-size", "2000", "--epochs", "8", "--seed", "11", "--out", out, "--quiet", "--save-every", "0",
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
    let o = command(&args(data, reference.to_str().unwrap())).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let out = tmp.path().join("killed");
    let out_s = out.to_str().unwrap();
    let mut seed = 0x9e37_79b9_u64;
    let (mut kills, mut with_checkpoint, mut runs) = (0, 0, 0);
    let mut moments = Vec::new();
    loop {
        runs += 1;
        assert!(runs < 200, "the run never finished");
        let resume = out.join("checkpoint.safetensors").exists();
        let mut c = if resume {
            command(&["train", "--resume", out_s, "--quiet", "--save-every", "0"])
        } else {
            let mut a = args(data, out_s);
            a.push("--force");
            command(&a)
        };
        let mut child = c.spawn().unwrap();
        if kills < 24 {
            // a moment anywhere in the run: its start, an epoch, or inside a write
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let r = (seed >> 33) as usize;
            let moment = match r % 3 {
                0 => Moment::AtStart,
                1 => Moment::AfterEpochs(1 + r / 3 % 2),
                _ => Moment::InAWrite(r / 3 % 2),
            };
            moments.push(moment);
            if kill_at(&mut child, &out, moment) {
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
    // one TensorBoard event file, cut back at every resume: each epoch once, as metrics.csv has it
    let events = gpu_nn::report::tensorboard::find_event_file(&out).expect("an event file");
    let scalars = gpu_nn::report::tensorboard::read_scalars(&events, 1 << 26).unwrap();
    let of = |tag: &str| scalars.iter().filter(|x| x.tag == tag).map(|x| (x.step, x.value)).collect::<Vec<_>>();
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let want: Vec<(i64, f64)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[0].parse().unwrap(), c[1].parse::<f64>().unwrap() as f32 as f64)
        })
        .collect();
    assert_eq!(of("loss/train"), want, "the event file's loss/train after {kills} kills");
    let running: Vec<i64> = of("running/loss").iter().map(|x| x.0).collect();
    assert!(running.windows(2).all(|w| w[0] < w[1]), "running/loss steps after {kills} kills: {running:?}");
    eprintln!("kill anywhere: {kills} SIGKILLs ({with_checkpoint} after a checkpoint), {runs} processes; moments {moments:?}");
}
