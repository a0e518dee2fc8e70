//! The runs dashboard in a real browser: `gpu-nn serve --runs DIR` over a folder holding a
//! finished sweep and a run that is training, and headless Chromium, driven by
//! `web/test/dashboard-check.mjs`, lists the run, follows its curve live from one epoch to the
//! next (with the running loss of the epoch in progress), and shows the sweep's heat-map with
//! exactly the numbers of its sweep.csv. The driver saves a screenshot of the dashboard; the
//! test prints how long after metrics.csv gained an epoch the page drew it.

mod common;
use common::{command, s};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::browser::{Killed, ROOT, chromium, serve, tools_or_skip};

fn unix_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1000.0
}

/// Watches `metrics.csv` until `stop`: (epochs it holds, when that was first seen, unix ms).
fn watch_metrics(file: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<(usize, f64)>> {
    std::thread::spawn(move || {
        let mut seen: Vec<(usize, f64)> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            // written whole (a temporary file renamed), so a read sees every row or none of the new one
            if let Ok(text) = std::fs::read_to_string(&file) {
                let rows = text.lines().count().saturating_sub(1);
                if seen.last().is_none_or(|&(n, _)| n != rows) {
                    seen.push((rows, unix_ms()));
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        seen
    })
}

/// A value of a sweep's axis as the CSV and the API write it: the same text, or the same number.
fn same_value(a: &str, b: &str) -> bool {
    a == b || matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(x), Ok(y)) if x == y)
}

#[test]
fn the_dashboard_follows_a_training_run_live_and_shows_a_sweep_as_its_csv_says() {
    let name = "dashboard";
    let Some(data) = common::mnist_dir_or_skip(name) else { return };
    if !tools_or_skip(name) {
        return;
    }
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&base);
    let runs = base.join("runs");
    let out = base.join("out");
    std::fs::create_dir_all(&runs).unwrap();
    std::fs::create_dir_all(&out).unwrap();

    // a finished sweep: 2 batch sizes × 3 learning rates, 2 epochs each (seconds on the CPU)
    let sweep_dir = runs.join("sweep");
    let o = command(&["sweep", "--preset", "seed000-mnist", "--backend", "cpu", "--epochs", "2", "--lr", "0.1,1,3", "--batch-size", "10,20", "--data", s(&data), "--out", s(&sweep_dir), "--quiet"])
        .output()
        .unwrap();
    assert!(o.status.success(), "the sweep failed: {}", String::from_utf8_lossy(&o.stderr));

    // the run the page watches: 784-30-10 on the f64 reference on one thread, 2–3 s an epoch
    let run_dir = runs.join("live");
    let training = Killed(
        command(&["train", "--preset", "seed000-mnist", "--backend", "cpu", "--precision", "f64", "--threads", "1", "--epochs", "12", "--data", s(&data), "--out", s(&run_dir), "--quiet"])
            .stdout(Stdio::null())
            .spawn()
            .expect("gpu-nn train starts"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_metrics(run_dir.join("metrics.csv"), stop.clone());

    let (server, url) = serve(&["--data", s(&data), "--runs", s(&runs)]);

    let o = Command::new("node").args([&format!("{ROOT}/web/test/dashboard-check.mjs"), &url, "live", "sweep", s(&out)]).env("CHROMIUM", chromium()).output().expect("node runs");
    stop.store(true, Ordering::Relaxed);
    let written = watcher.join().unwrap();
    drop(server);
    drop(training);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "the dashboard check failed:\n{stderr}");
    let text = String::from_utf8_lossy(&o.stdout);
    let last = text.lines().last().unwrap_or("");
    let r: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("the driver's last line is not JSON ({e}): {last}\n{stderr}"));
    eprintln!("{stderr}");

    // the curve grew from one epoch to the next while the run trained
    let shown: Vec<(u64, f64, String)> = r["epochs_shown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["epochs"].as_u64().unwrap(), e["at"].as_f64().unwrap(), e["status"].as_str().unwrap_or("").to_string()))
        .collect();
    let grew = shown.windows(2).any(|w| w[0].0 >= 1 && w[1].0 == w[0].0 + 1 && w[0].2 == "training" && w[1].2 == "training");
    assert!(grew, "the overlay never drew epoch n and then n + 1 while the run trained: {:?}", r["epochs_shown"]);
    // and the running loss of the epoch in progress appeared
    assert!(r["running_max"].as_u64().is_some_and(|n| n > 0), "no running-loss point was drawn: {}", r["timeline"]);

    // the heat-map holds sweep.csv's numbers exactly, each cell found by its axis values
    let mut reader = csv::Reader::from_path(sweep_dir.join("sweep.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    let col = |n: &str| header.iter().position(|h| h == n).unwrap_or_else(|| panic!("sweep.csv has no {n}: {header:?}"));
    let (final_col, best_col) = (col("final_test_acc"), col("best_test_acc"));
    let axes = final_col; // the axis columns come first
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    for key in ["cells", "cells_best"] {
        let cells = r[key].as_array().unwrap();
        assert_eq!(cells.len(), rows.len(), "{key}: the heat-map has {} cells, sweep.csv {} rows", cells.len(), rows.len());
        for row in &rows {
            let values: Vec<&str> = row.iter().take(axes).collect();
            let found: Vec<&serde_json::Value> = cells
                .iter()
                .filter(|c| {
                    let v = c["values"].as_array().unwrap();
                    v.len() == values.len() && v.iter().zip(&values).all(|(a, b)| same_value(a.as_str().unwrap(), b))
                })
                .collect();
            assert_eq!(found.len(), 1, "{key}: cells with values {values:?}: {found:?}");
            let c = found[0];
            assert_eq!(c["status"], "finished", "{c}");
            for (attr, column) in [("final_test_acc", final_col), ("best_test_acc", best_col)] {
                let page: f64 = c[attr].as_str().unwrap().parse().unwrap_or_else(|e| panic!("{key} {values:?}: {attr} {} ({e})", c[attr]));
                let csv: f64 = row[column].parse().unwrap();
                assert_eq!(page.to_bits(), csv.to_bits(), "{key} {values:?}: {attr} is {page} in the page, {csv} in sweep.csv");
            }
        }
    }

    // the screenshot
    let shot = PathBuf::from(r["screenshot"].as_str().unwrap());
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
    assert!(png.len() > 10_000 && png.starts_with(b"\x89PNG"), "{}: {} bytes", shot.display(), png.len());

    // the lag: when metrics.csv first held n epochs (this test's watch) to when the page drew n
    let first_epochs = r["first_epochs"].as_u64().unwrap();
    let mut lags = Vec::new();
    for (n, at, _) in shown.iter().filter(|(n, _, _)| *n > first_epochs) {
        if let Some(&(_, w)) = written.iter().find(|(rows, _)| *rows as u64 >= *n) {
            lags.push((*n, (at - w) / 1000.0));
        }
    }
    let page_lags: Vec<String> = r["lag_ms"].as_array().unwrap().iter().map(|v| format!("{:.2}", v.as_f64().unwrap() / 1000.0)).collect();
    eprintln!(
        "dashboard lag: epoch written to metrics.csv -> drawn in the page: {} s (against the answer's `updated`: {} s)",
        lags.iter().map(|(n, l)| format!("epoch {n} {l:.2}")).collect::<Vec<_>>().join(", "),
        page_lags.join(", ")
    );
    assert!(!lags.is_empty(), "no epoch drawn while watched: {:?}, metrics.csv {written:?}", r["epochs_shown"]);
    // polled about every second: an epoch shows within a few seconds, even on a busy machine
    for (n, l) in &lags {
        assert!(*l < 10.0, "epoch {n} appeared {l:.2} s after metrics.csv held it");
    }
}
