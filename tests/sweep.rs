//! `gpu-nn sweep`: a 2×2 batch-size × learning-rate grid on real MNIST (doc 003's network, cut
//! to a few hundred steps) writes a CSV whose every cell is exactly what `gpu-nn train` gives
//! for that cell, a markdown table of the grid's shape and one picture per row, and a rerun
//! skips every finished cell; any flag is an axis (seeds × layer sizes); shards, collected,
//! give the unsharded sweep; a shard killed mid-cell resumes to the same bytes; `train` refuses
//! lists; on the GPU a 1×2 grid runs on one device with one upload of the data; with
//! `--target-acc` each cell reports the step and seconds it took to reach the target.

mod common;
use common::gpu_nn;

use gpu_nn::commands::args::SweepArgs;
use gpu_nn::commands::config_args::ConfigArgs;
use gpu_nn::commands::sweep::record::{CellOutcome, CellResult};
use gpu_nn::commands::sweep::sweep_command;
use gpu_nn::commands::sweep::tables::CSV_HEADER;
use std::path::Path;


fn ok(args: &[&str]) -> String {
    let o = gpu_nn(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "gpu-nn {args:?} failed: {err}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Rows of a CSV file after its header, split at commas.
fn csv_rows(path: &Path, header: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(header), "{}", path.display());
    lines.map(|l| l.split(',').map(str::to_string).collect()).collect()
}

/// The small real-MNIST configuration every test here uses: doc 003's 784-32-16-10 sigmoid
/// network and SSE loss, one epoch cut to 200 steps, on the CPU.
fn small(data: &Path, steps: &str) -> Vec<String> {
    ["--preset", "seed003", "--data", data.to_str().unwrap(), "--epochs", "1", "--max-steps", steps, "--backend", "cpu"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn a_2x2_sweep_matches_train_cell_by_cell_and_writes_table_and_pictures() {
    let Some(data) = common::mnist_dir_or_skip("a_2x2_sweep_matches_train") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    let mut args = vec!["sweep".to_string()];
    args.extend(small(&data, "200"));
    args.extend(["--lr", "0.9,4", "--batch-size", "15,40", "--out", out.to_str().unwrap()].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdout = ok(&args);

    // one progress line per finished cell
    let progress: Vec<&str> = stdout.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(progress.len(), 4, "{stdout}");
    assert!(progress[3].starts_with("[4/4] batch 40, lr 4:"), "{stdout}");

    // sweep.csv: the cells row-major (rows = batch sizes, columns = learning rates)
    let rows = csv_rows(&out.join("sweep.csv"), CSV_HEADER);
    let cells: Vec<(&str, &str)> = rows.iter().map(|r| (r[0].as_str(), r[1].as_str())).collect();
    assert_eq!(cells, [("15", "0.9"), ("15", "4"), ("40", "0.9"), ("40", "4")]);
    for r in &rows {
        assert_eq!(r.len(), 7);
        let (fin, best): (f64, f64) = (r[2].parse().unwrap(), r[3].parse().unwrap());
        assert!(fin > 0.1 && fin <= best, "{r:?}");
        assert_eq!(r[4], "1", "one epoch: the best is epoch 1");
    }

    // every cell is exactly the run `gpu-nn train` makes with the same flags
    for r in &rows {
        let run = tmp.path().join(format!("train-{}-{}", r[0], r[1]));
        let mut targs = vec!["train".to_string(), "--quiet".into()];
        targs.extend(small(&data, "200"));
        targs.extend(["--batch-size", &r[0], "--lr", &r[1], "--out", run.to_str().unwrap()].map(String::from));
        ok(&targs.iter().map(String::as_str).collect::<Vec<_>>());
        let m = csv_rows(&run.join("metrics.csv"), gpu_nn::core::metrics::CSV_HEADER);
        let last = m.last().unwrap();
        // metrics.csv: epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,...
        assert_eq!(last[6].parse::<f64>().unwrap(), r[2].parse::<f64>().unwrap(), "final test accuracy of cell {r:?}");
        assert_eq!(last[1].parse::<f64>().unwrap(), r[5].parse::<f64>().unwrap(), "final train loss of cell {r:?}");
    }

    // sweep.md: three tables of 2 rows × (label + 2 learning rates)
    let md = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    let headers: Vec<usize> = md.lines().enumerate().filter(|(_, l)| l.starts_with("| batch \\ lr |")).map(|(i, _)| i).collect();
    assert_eq!(headers.len(), 3, "{md}");
    let lines: Vec<&str> = md.lines().collect();
    for &h in &headers {
        assert_eq!(lines[h], "| batch \\ lr | 0.9 | 4 |");
        assert_eq!(lines[h + 1], "|---|---:|---:|");
        for (k, b) in ["15", "40"].iter().enumerate() {
            let row = lines[h + 2 + k];
            assert!(row.starts_with(&format!("| {b} |")), "{row}");
            assert_eq!(row.matches('|').count(), 4, "{row}");
        }
        assert!(lines.get(h + 4).is_none_or(|l| !l.starts_with('|')), "a table has exactly two rows:\n{md}");
    }
    // the final-accuracy table holds the CSV's numbers
    let pct = |s: &str| format!("{:.2}", 100.0 * s.parse::<f64>().unwrap());
    assert_eq!(lines[headers[0] + 3], format!("| 40 | {} | {} |", pct(&rows[2][2]), pct(&rows[3][2])));

    // one picture per grid row, PNG and SVG
    for b in ["15", "40"] {
        let png = out.join(format!("curves-batch-{b}.png"));
        let img = image::open(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert_eq!((img.width(), img.height()), gpu_nn::report::plots::SWEEP_ROW_SIZE);
        let svg = std::fs::read_to_string(out.join(format!("curves-batch-{b}.svg"))).unwrap();
        assert!(svg.contains("lr 0.9") && svg.contains("lr 4"), "legend names every learning rate");
    }
    // each cell is a run directory, as train --out writes it, with its result
    for (b, lr) in [("15", "0.9"), ("40", "4")] {
        let dir = out.join("cells").join(format!("batch-{b}-lr-{lr}"));
        for f in ["config.json", "metrics.csv", "model.safetensors", "checkpoint.safetensors", "curves.png", "result.json"] {
            assert!(dir.join(f).is_file(), "{} lacks {f}", dir.display());
        }
    }

    // the same sweep again: every cell finished, so nothing trains and the report is the same
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    let again = ok(&args);
    assert_eq!(again.lines().filter(|l| l.contains(": finished earlier")).count(), 4, "{again}");
    assert_eq!(std::fs::read_to_string(out.join("sweep.csv")).unwrap(), csv);
    // another grid into the same directory is refused, naming the difference
    let mut other = args.clone();
    let lr = other.iter().position(|a| *a == "0.9,4").unwrap();
    other[lr] = "0.9,5";
    let o = gpu_nn(&other);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("holds another sweep") && err.contains("--force"), "{err}");
}

/// `--target-acc` over two learning rates of doc 000's network, 2 epochs: each cell's
/// `target_step` and `target_seconds` are those of the first epoch of its own metrics.csv at
/// or above the target (blank where none is), and a cell that reached it stopped there.
#[test]
fn a_sweep_reports_when_each_cell_reached_the_target() {
    let Some(data) = common::mnist_dir_or_skip("a_sweep_reports_when_each_cell_reached_the_target") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    let target = 0.5;
    let stdout = ok(&["sweep", "--preset", "seed000-mnist", "--data", data.to_str().unwrap(), "--backend", "cpu", "--epochs", "2", "--lr", "3,0.001", "--target-acc", "0.5", "--out", out.to_str().unwrap()]);
    let rows = csv_rows(&out.join("sweep.csv"), &format!("{CSV_HEADER},target_step,target_seconds"));
    assert_eq!(rows.len(), 2);
    let mut reached = Vec::new();
    for r in &rows {
        let m = csv_rows(&out.join("cells").join(format!("batch-20-lr-{}", r[1])).join("metrics.csv"), gpu_nn::core::metrics::CSV_HEADER);
        // metrics.csv: epoch,…,test_acc (6),seconds (7),…,step (9)
        let first = m.iter().position(|e| e[6].parse::<f64>().unwrap() >= target);
        match first {
            Some(i) => {
                assert_eq!(m.len(), i + 1, "cell lr {} reached the target at epoch {} and stopped there", r[1], i + 1);
                assert_eq!(r[7], m[i][9], "target_step of cell lr {}", r[1]);
                let seconds: f64 = m[..=i].iter().map(|e| e[7].parse::<f64>().unwrap()).sum();
                assert!((r[8].parse::<f64>().unwrap() - seconds).abs() < 2e-3, "target_seconds of cell lr {}: {r:?}", r[1]);
            }
            None => assert_eq!((r[7].as_str(), r[8].as_str(), m.len()), ("", "", 2), "cell lr {} never reached the target", r[1]),
        }
        reached.push(first.is_some());
    }
    assert_eq!(reached, [true, false], "lr 3 learns past 50 % in 2 epochs, lr 0.001 does not: {rows:?}");
    assert!(stdout.lines().any(|l| l.contains("lr 3:") && l.contains("target 50.00 % reached at step")), "{stdout}");
    assert!(stdout.lines().any(|l| l.contains("lr 0.001:") && l.contains("target 50.00 % not reached")), "{stdout}");
    let md = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    let table = md.split("## Seconds and step to the target accuracy").nth(1).unwrap_or_else(|| panic!("no target table:\n{md}"));
    assert!(table.contains("(step ") && table.contains("not reached"), "{md}");
}

/// Any flag is an axis: seeds × layer sizes, with `--quiet`. The table names the axes that
/// vary (rows = seeds, columns = layers), the CSV has a column per axis, and a cell is what
/// `train` computes with the cell's flags.
#[test]
fn seeds_by_layer_sizes_is_a_grid_named_by_its_axes() {
    let Some(data) = common::mnist_dir_or_skip("seeds_by_layer_sizes") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    let mut args = vec!["sweep".to_string(), "--quiet".into()];
    args.extend(small(&data, "50"));
    args.extend(["--seed", "1,2", "--layers", "784,16,10/784,24,10", "--activation", "sigmoid,sigmoid", "--out", out.to_str().unwrap()].map(String::from));
    let stdout = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(stdout, "", "--quiet prints nothing");
    let header = "batch_size,lr,seed,layers,final_test_acc,best_test_acc,best_epoch,final_train_loss,seconds";
    let text = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], header);
    assert_eq!(lines.len(), 5);
    assert!(lines[2].starts_with("20,0.9,1,\"784,24,10\","), "{}", lines[2]);
    assert!(lines[3].starts_with("20,0.9,2,\"784,16,10\","), "{}", lines[3]);
    let md = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    assert!(md.contains("| seed \\ layers | 784,16,10 | 784,24,10 |"), "{md}");
    assert!(md.contains("2 value(s) of --seed × 2 value(s) of --layers"), "{md}");
    assert!(!md.contains("same initial weights"), "seeds and layers change the initial weights:\n{md}");
    for seed in ["1", "2"] {
        assert!(out.join(format!("curves-seed-{seed}.png")).is_file());
    }
    // cell (seed 2, 784-24-10) against train with those flags
    let run = tmp.path().join("train");
    let mut targs = vec!["train".to_string(), "--quiet".into()];
    targs.extend(small(&data, "50"));
    targs.extend(["--seed", "2", "--layers", "784,24,10", "--activation", "sigmoid,sigmoid", "--out", run.to_str().unwrap()].map(String::from));
    ok(&targs.iter().map(String::as_str).collect::<Vec<_>>());
    let cell = out.join("cells/seed-2-layers-784-24-10");
    assert_eq!(std::fs::read(cell.join("model.safetensors")).unwrap(), std::fs::read(run.join("model.safetensors")).unwrap(), "the cell's model is train's, byte for byte");
}

/// `train` (and every command but sweep) takes one learning rate and one batch size.
#[test]
fn train_refuses_lists_with_one_error_line() {
    for (flag, list) in [("--lr", "0.5,1"), ("--batch-size", "10,20")] {
        let o = gpu_nn(&["train", "--preset", "seed000-hand", flag, list]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: ") && err.contains(&format!("{flag} takes one value")) && err.contains("gpu-nn sweep"), "{err}");
    }
    // a bad value inside a sweep's list is refused before anything trains
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    let o = gpu_nn(&["sweep", "--preset", "seed000-hand", "--lr", "0.5,0", "--out", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.starts_with("error: ") && err.contains("--lr"), "{err}");
    assert!(!out.join("sweep.csv").exists());
}

/// A 1×2 grid on the GPU: one device, one backend (so one upload of the data), and the second
/// cell, trained on the reused backend, exactly what a fresh `train` computes.
#[test]
fn a_1x2_gpu_sweep_runs_on_one_device_with_one_upload() {
    let Some(data) = common::mnist_dir_or_skip("a_1x2_gpu_sweep") else { return };
    if let Err(e) = gpu_nn::gpu::context::Gpu::new(None, true) {
        assert!(!common::in_ci(), "a_1x2_gpu_sweep: no GPU adapter in CI: {e:#}");
        eprintln!("SKIPPED a_1x2_gpu_sweep: no GPU adapter ({e:#})");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    let args = SweepArgs::from_tokens(&["--preset", "seed003", "--data", data.to_str().unwrap(), "--epochs", "1", "--max-steps", "100", "--backend", "gpu", "--lr", "0.9,4", "--batch-size", "40", "--quiet", "--out", out.to_str().unwrap()]).unwrap();
    let s = sweep_command(&args).unwrap();
    assert_eq!((s.devices_opened, s.backends_built), (1, 1), "one device, one backend and upload for the row");
    assert!(s.engine().starts_with("gpu:"), "{}", s.engine());
    assert_eq!(s.cells.len(), 2);
    let cell = s.cells[1].as_ref().unwrap();
    let CellOutcome::Trained(m) = &cell.outcome else { panic!("cell diverged: {:?}", cell.outcome) };
    // the same cell from scratch: a new device, a new backend
    let one = ConfigArgs {
        preset: Some("seed003".into()),
        data: Some(data),
        epochs: Some(1),
        max_steps: Some(100),
        backend: Some("gpu".into()),
        lr: Some(vec![4.0]),
        batch_size: Some(vec!["40".into()]),
        ..Default::default()
    };
    let r = gpu_nn::commands::train::train_command(&one.resolve().unwrap(), None, false, true).unwrap();
    let fresh = r.metrics.last().unwrap();
    let reused = m.last().unwrap();
    assert_eq!((reused.train_loss, reused.test_acc, reused.test_loss), (fresh.train_loss, fresh.test_acc, fresh.test_loss));
}

/// `sweep.csv` without its timing column.
fn without_seconds(csv: &str) -> Vec<String> {
    csv.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
}

/// `sweep.md` up to its table of seconds.
fn accuracy_tables(md: &str) -> String {
    md.split("## Seconds per cell").next().unwrap().to_string()
}

/// Three shards of an 8-cell grid, in one directory, then `--collect`: the same report as
/// the unsharded sweep (but the timings). Collecting before the last shard has run names the
/// missing cells and fails.
#[test]
fn three_shards_collected_equal_the_unsharded_sweep() {
    let Some(data) = common::mnist_dir_or_skip("three_shards_collected") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let grid: Vec<String> = small(&data, "40").into_iter().chain(["--batch-size", "15,40", "--lr", "0.5,3", "--seed", "1,2", "--quiet"].map(String::from)).collect();
    let with = |extra: &[&str]| -> Vec<String> {
        let mut a = vec!["sweep".to_string()];
        a.extend(grid.iter().cloned());
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |a: Vec<String>| gpu_nn(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let whole = tmp.path().join("whole");
    let o = run(with(&["--out", whole.to_str().unwrap()]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let sharded = tmp.path().join("sharded");
    for i in 0..2 {
        let o = run(with(&["--out", sharded.to_str().unwrap(), "--shard", &format!("{i}/3")]));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert!(!sharded.join("sweep.csv").exists(), "no report while cells are missing");
    // shard 2 of 3 owns cells 2 and 5 (k mod 3 = 2): the collection names them
    let o = gpu_nn(&["sweep", "--collect", sharded.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("2 of 8 cells have not finished: batch-15-seed-2-lr-0.5, batch-40-seed-1-lr-3"), "{err}");
    assert!(std::fs::read_to_string(sharded.join("sweep.md")).unwrap().contains("**2 of 8 cells missing**"));

    let o = run(with(&["--out", sharded.to_str().unwrap(), "--shard", "2/3"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = gpu_nn(&["sweep", "--collect", sharded.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    assert_eq!(without_seconds(&read(&sharded, "sweep.csv")), without_seconds(&read(&whole, "sweep.csv")));
    assert_eq!(read(&whole, "sweep.csv").lines().count(), 9);
    assert_eq!(accuracy_tables(&read(&sharded, "sweep.md")), accuracy_tables(&read(&whole, "sweep.md")));
    for k in ["batch-15-seed-2-lr-0.5", "batch-40-seed-1-lr-3"] {
        let model = |d: &Path| std::fs::read(d.join("cells").join(k).join("model.safetensors")).unwrap();
        assert_eq!(model(&sharded), model(&whole), "cell {k}: the same weights, byte for byte");
    }
}

/// A shard killed (SIGKILL) in the middle of a cell, after a checkpoint inside the epoch, and
/// run again: it resumes from the checkpoint and ends with the same weights and metrics as a
/// shard never interrupted.
#[test]
fn a_shard_killed_mid_cell_resumes_to_the_same_bytes() {
    let Some(data) = common::mnist_dir_or_skip("a_shard_killed_mid_cell") else { return };
    let tmp = tempfile::tempdir().unwrap();
    // two cells of two epochs (60000 steps each, about a second an epoch here); shard 0 of 2
    // runs the first, checkpointing every 50 ms: the watcher below has the whole cell, not a
    // sliver of it, to see a checkpoint inside an epoch (at batch 10 an epoch took 0.2 s, and a
    // fast machine finished the cell between two checkpoints)
    let args = |out: &Path| -> Vec<String> {
        ["sweep", "--preset", "seed003", "--data", data.to_str().unwrap(), "--backend", "cpu", "--epochs", "2", "--batch-size", "1", "--lr", "0.5,0.9"]
            .iter()
            .map(|s| s.to_string())
            .chain(["--shard", "0/2", "--checkpoint-every", "0.05", "--out", out.to_str().unwrap()].map(String::from))
            .collect()
    };
    let cell = "cells/batch-1-lr-0.5";
    let killed = tmp.path().join("killed");
    let a = args(&killed);
    let mut child = common::command(&a.iter().map(String::as_str).collect::<Vec<_>>()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let ck = killed.join(cell).join("checkpoint.safetensors");
    let start = std::time::Instant::now();
    let at = loop {
        if let Ok((c, _)) = gpu_nn::core::checkpoint::read_checkpoint(&ck) {
            if c.meta.state.step_in_epoch > 0 {
                break c.meta.state.clone();
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "the shard ended before a checkpoint inside an epoch was seen");
        assert!(start.elapsed().as_secs() < 120, "no checkpoint inside an epoch after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    child.kill().unwrap(); // SIGKILL: no chance to write anything more
    child.wait().unwrap();
    assert!(!killed.join(cell).join("result.json").exists(), "killed before the cell finished");

    let resumed = ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(resumed.contains("(resumed from epoch"), "the rerun resumes the cell from its checkpoint (killed at step {}):\n{resumed}", at.step);

    let clean = tmp.path().join("clean");
    ok(&args(&clean).iter().map(String::as_str).collect::<Vec<_>>());
    let bytes = |d: &Path, f: &str| std::fs::read(d.join(cell).join(f)).unwrap();
    assert_eq!(bytes(&killed, "model.safetensors"), bytes(&clean, "model.safetensors"), "the same weights, byte for byte");
    let result = |d: &Path| CellResult::read(&d.join(cell)).unwrap().unwrap();
    let (CellOutcome::Trained(a), CellOutcome::Trained(b)) = (result(&killed).outcome, result(&clean).outcome) else { panic!("a cell diverged") };
    assert_eq!(a.len(), 2);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.epoch, x.step, x.train_loss, x.train_acc, x.test_loss, x.test_acc), (y.epoch, y.step, y.train_loss, y.train_acc, y.test_loss, y.test_acc));
    }
}
