//! What `gpu-nn serve --runs DIR` tells the page's dashboard: the run directories and sweeps
//! under DIR, found afresh on every request (`Found::scan`) and only ever read. A request names
//! a run or sweep by its id (its path under DIR, `/`-separated), which must be one the scan
//! found, letter for letter: no part of a request is joined onto a folder, the same rule as
//! `site`'s. Symlinks are never followed, every file is read up to a size limit, and the scan
//! stops at `MAX_DEPTH` folders down and `MAX_FOLDERS` folders in all.

use crate::commands::sweep::record::{CellOutcome, CellResult, PLAN_FILE, Plan};
use crate::core::metrics::EpochMetrics;
use crate::report::tensorboard;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Folders below DIR the scan looks into (a sweep's cells are two down from it).
pub const MAX_DEPTH: usize = 6;
/// Folders the scan visits at most.
pub const MAX_FOLDERS: usize = 20_000;
/// Largest config.json, sweep.json, result.json or confusion.csv read.
const MAX_SMALL_FILE: u64 = 4 << 20;
/// Largest metrics.csv or sweep.csv read.
const MAX_TABLE_FILE: u64 = 16 << 20;
/// Largest events file read for the running loss.
const MAX_EVENTS_FILE: u64 = 256 << 20;
/// The pictures of a run the dashboard shows, where they exist.
const RUN_PICTURES: [&str; 2] = ["curves.png", "confusion.png"];

/// The run directories (a `config.json`) and sweeps (a `sweep.json`) under the root, by id.
#[derive(Debug, Default)]
pub struct Found {
    pub runs: BTreeMap<String, PathBuf>,
    pub sweeps: BTreeMap<String, PathBuf>,
    /// The scan stopped at `MAX_FOLDERS`.
    pub truncated: bool,
}

/// A file that is there as a regular file (a symlink is not).
fn regular(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

impl Found {
    /// Walks `root` (breadth first, so the shallow runs are found before any limit bites).
    pub fn scan(root: &Path) -> Found {
        let mut found = Found::default();
        let mut queue = std::collections::VecDeque::from([(root.to_path_buf(), String::new(), 0usize)]);
        let mut visited = 0;
        while let Some((dir, id, depth)) = queue.pop_front() {
            visited += 1;
            if visited > MAX_FOLDERS {
                found.truncated = true;
                break;
            }
            let shown = if id.is_empty() { ".".to_string() } else { id.clone() };
            if regular(&dir.join("config.json")) {
                found.runs.insert(shown.clone(), dir.clone());
            }
            if regular(&dir.join(PLAN_FILE)) {
                found.sweeps.insert(shown, dir.clone());
            }
            if depth == MAX_DEPTH {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            let mut subs: Vec<(String, PathBuf)> = entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| Some((e.file_name().to_str()?.to_string(), e.path())))
                .filter(|(name, _)| !name.starts_with('.') && !name.contains('/'))
                .collect();
            subs.sort();
            for (name, path) in subs {
                let sub = if id.is_empty() { name } else { format!("{id}/{name}") };
                queue.push_back((path, sub, depth + 1));
            }
        }
        found
    }

    /// The sweep a run id belongs to: the run is `SWEEP/cells/NAME`.
    fn sweep_of(&self, id: &str) -> Option<String> {
        let parent = id.strip_suffix(id.rsplit('/').next()?)?.strip_suffix('/')?;
        let sweep = parent.strip_suffix(crate::commands::sweep::record::CELLS_DIR)?;
        let sweep = match sweep.strip_suffix('/') {
            Some(s) => s.to_string(),
            None if sweep.is_empty() => ".".to_string(),
            None => return None,
        };
        self.sweeps.contains_key(&sweep).then_some(sweep)
    }
}

/// `path` read whole, refused above `max` bytes; `None` when it is not there (or not a
/// regular file).
fn read_limited(path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    if !regular(path) {
        return Ok(None);
    }
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot open", path.display())),
    };
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes).with_context(|| format!("{}: cannot read", path.display()))?;
    if bytes.len() as u64 > max {
        bail!("{}: larger than the {} MiB the dashboard reads", path.display(), max >> 20);
    }
    Ok(Some(bytes))
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match read_limited(path, MAX_SMALL_FILE)? {
        Some(b) => Ok(Some(serde_json::from_slice(&b).with_context(|| format!("{}: not JSON", path.display()))?)),
        None => Ok(None),
    }
}

/// metrics.csv's rows (by column name, so older column orders read too); none when absent.
pub fn read_metrics(dir: &Path) -> Result<Vec<EpochMetrics>> {
    let path = dir.join("metrics.csv");
    let Some(bytes) = read_limited(&path, MAX_TABLE_FILE)? else { return Ok(Vec::new()) };
    let mut rows = Vec::new();
    for r in csv::Reader::from_reader(bytes.as_slice()).deserialize() {
        rows.push(r.with_context(|| format!("{}: not a metrics table gpu-nn wrote", path.display()))?);
    }
    Ok(rows)
}

/// Seconds since 1970 of the newest of `files` in `dir` (0 when none is there).
fn updated(dir: &Path, files: &[&str]) -> f64 {
    files
        .iter()
        .filter_map(|f| std::fs::symlink_metadata(dir.join(f)).ok())
        .filter_map(|m| m.modified().ok())
        .filter_map(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .fold(0.0, f64::max)
}

/// The lock files some process holds now, as (device, inode): Linux lists every lock in
/// `/proc/locks`. Asking there takes no lock, so a run starting that very moment never finds its
/// directory busy because the dashboard looked.
#[derive(Default)]
pub struct HeldLocks(#[cfg_attr(not(target_os = "linux"), allow(dead_code))] BTreeSet<(u64, u64)>);

impl HeldLocks {
    pub fn now() -> HeldLocks {
        let mut held = BTreeSet::new();
        // "1: FLOCK  ADVISORY  WRITE 4242 08:01:123456 0 EOF" (major and minor in hex)
        for line in std::fs::read_to_string("/proc/locks").unwrap_or_default().lines() {
            let Some(place) = line.split_whitespace().nth(5) else { continue };
            let mut parts = place.split(':');
            let (Some(major), Some(minor), Some(inode)) = (parts.next(), parts.next(), parts.next()) else { continue };
            let (Ok(major), Ok(minor), Ok(inode)) = (u64::from_str_radix(major, 16), u64::from_str_radix(minor, 16), inode.parse::<u64>()) else { continue };
            held.insert((major << 32 | minor, inode));
        }
        HeldLocks(held)
    }

    /// Whether a process holds `dir`'s run lock: a run is training there.
    #[cfg(target_os = "linux")]
    fn training(&self, dir: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(m) = std::fs::symlink_metadata(dir.join(crate::commands::run_dir::LOCK_FILE)) else { return false };
        let dev = m.dev();
        let (major, minor) = (libc::major(dev) as u64, libc::minor(dev) as u64);
        self.0.contains(&(major << 32 | minor, m.ino()))
    }

    /// Elsewhere there is no way to ask without taking the lock, which a run starting at that
    /// moment would find busy: runs show as stopped or finished there.
    #[cfg(not(target_os = "linux"))]
    fn training(&self, _dir: &Path) -> bool {
        false
    }
}

/// What every answer about one run says.
#[derive(Clone)]
struct RunInfo {
    config: Option<Value>,
    metrics: Vec<EpochMetrics>,
    epochs: Option<u64>,
    status: &'static str,
    updated: f64,
    title: String,
    cell: Option<CellResult>,
}

fn run_info(dir: &Path, locks: &HeldLocks) -> Result<RunInfo> {
    let config = read_json(&dir.join("config.json"))?;
    let metrics = read_metrics(dir)?;
    let cell = CellResult::read(dir).ok().flatten();
    let epochs = config.as_ref().and_then(|c| c["training"]["epochs"].as_u64());
    let status = if locks.training(dir) {
        "training"
    } else if let Some(c) = &cell {
        if matches!(c.outcome, CellOutcome::Diverged(_)) { "diverged" } else { "finished" }
    } else if epochs.is_some_and(|e| metrics.len() as u64 >= e) {
        "finished"
    } else {
        "stopped"
    };
    let title = config
        .as_ref()
        .and_then(|c| serde_json::from_value::<crate::core::config::Config>(c.clone()).ok())
        .map(|c| crate::report::plots::run_title(&c))
        .unwrap_or_default();
    let events = tensorboard::find_event_file(dir);
    let mut updated = updated(dir, &["config.json", "metrics.csv", "result.json"]);
    if let Some(e) = events.as_ref().and_then(|e| e.file_name()).and_then(|n| n.to_str()) {
        updated = updated.max(self::updated(dir, &[e]));
    }
    Ok(RunInfo { config, metrics, epochs, status, updated, title, cell })
}

fn best_test_acc(rows: &[EpochMetrics]) -> Option<(f64, usize)> {
    let mut best: Option<(f64, usize)> = None;
    for m in rows {
        if let Some(a) = m.test_acc.filter(|&a| best.is_none_or(|(b, _)| a > b)) {
            best = Some((a, m.epoch));
        }
    }
    best
}

fn summary(id: &str, found: &Found, info: &RunInfo) -> Value {
    json!({
        "id": id,
        "name": id.rsplit('/').next().unwrap_or(id),
        "sweep": found.sweep_of(id),
        "status": info.status,
        "epochs": info.epochs,
        "epochs_done": info.metrics.len(),
        "title": info.title,
        "last": info.metrics.last(),
        "best_test_acc": best_test_acc(&info.metrics).map(|b| b.0),
        "updated": info.updated,
    })
}

/// `GET api/runs`: every run and sweep under the root.
pub fn list(root: &Path, shown: &str) -> Result<Value> {
    let found = Found::scan(root);
    let locks = HeldLocks::now();
    let mut runs = Vec::new();
    let mut known = BTreeMap::new();
    for (id, dir) in &found.runs {
        // one unreadable run does not hide the others: it is listed with why
        match run_info(dir, &locks) {
            Ok(info) => {
                runs.push(summary(id, &found, &info));
                known.insert(id.clone(), info);
            }
            Err(e) => runs.push(json!({"id": id, "name": id.rsplit('/').next().unwrap_or(id), "sweep": found.sweep_of(id), "status": "unreadable", "error": format!("{e:#}")})),
        }
    }
    let mut sweeps = Vec::new();
    for (id, dir) in &found.sweeps {
        let summary = Plan::read(dir).and_then(|plan| Ok(sweep_summary(id, dir, &plan, &sweep_cells(id, dir, &plan, &locks, &known)?)));
        match summary {
            Ok(s) => sweeps.push(s),
            Err(e) => sweeps.push(json!({"id": id, "name": id.rsplit('/').next().unwrap_or(id), "error": format!("{e:#}")})),
        }
    }
    Ok(json!({"root": shown, "runs": runs, "sweeps": sweeps, "truncated": found.truncated}))
}

/// confusion.csv as labels and counts (rows true, columns predicted).
fn read_confusion(dir: &Path) -> Result<Option<Value>> {
    let path = dir.join("confusion.csv");
    let Some(bytes) = read_limited(&path, MAX_SMALL_FILE)? else { return Ok(None) };
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let labels: Vec<String> = reader.headers()?.iter().skip(1).map(|h| h.strip_prefix("pred_").unwrap_or(h).to_string()).collect();
    let mut matrix = Vec::new();
    for row in reader.records() {
        let row = row.with_context(|| format!("{}: not a confusion table", path.display()))?;
        let counts: Vec<u64> = row.iter().skip(1).map(str::parse).collect::<Result<_, _>>().with_context(|| format!("{}: a count that is not a whole number", path.display()))?;
        if counts.len() != labels.len() {
            bail!("{}: a row of {} counts under {} columns", path.display(), counts.len(), labels.len());
        }
        matrix.push(counts);
    }
    Ok(Some(json!({"labels": labels, "matrix": matrix})))
}

/// The running mean loss of the epoch in progress, from the run's events file: the points after
/// the last epoch metrics.csv holds, placed in (fractional) epochs by the steps an epoch took.
fn running(dir: &Path, rows: &[EpochMetrics]) -> Result<Vec<Value>> {
    let Some(file) = tensorboard::find_event_file(dir) else { return Ok(Vec::new()) };
    let scalars = tensorboard::read_scalars(&file, MAX_EVENTS_FILE)?;
    let (done_epoch, done_step) = rows.last().map(|m| (m.epoch, m.step)).unwrap_or((0, 0));
    let steps_per_epoch = rows.last().filter(|m| m.epoch > 0 && m.step > 0).map(|m| m.step as f64 / m.epoch as f64);
    Ok(scalars
        .iter()
        .filter(|s| s.tag == tensorboard::RUNNING_LOSS && s.step > done_step as i64)
        .map(|s| {
            let epoch = steps_per_epoch.map(|spe| done_epoch as f64 + (s.step as u64 - done_step) as f64 / spe);
            json!({"step": s.step, "loss": s.value, "epoch": epoch})
        })
        .collect())
}

/// `GET api/run?id=ID`.
pub fn run(root: &Path, id: &str) -> Result<Option<Value>> {
    let found = Found::scan(root);
    let Some(dir) = found.runs.get(id) else { return Ok(None) };
    let info = run_info(dir, &HeldLocks::now())?;
    let mut v = summary(id, &found, &info);
    let running = if info.status == "training" { running(dir, &info.metrics)? } else { Vec::new() };
    v["config"] = info.config.clone().unwrap_or(Value::Null);
    v["metrics"] = serde_json::to_value(&info.metrics)?;
    v["running"] = Value::Array(running);
    v["confusion"] = read_confusion(dir)?.unwrap_or(Value::Null);
    v["pictures"] = json!(run_pictures(dir));
    if let Some(CellOutcome::Diverged(e)) = info.cell.as_ref().map(|c| &c.outcome) {
        v["error"] = json!(e);
    }
    Ok(Some(v))
}

fn run_pictures(dir: &Path) -> Vec<String> {
    RUN_PICTURES.iter().filter(|p| regular(&dir.join(p))).map(|p| p.to_string()).collect()
}

/// A sweep's pictures: one per table row (`tables`), where written.
fn sweep_pictures(dir: &Path, plan: &Plan) -> Vec<String> {
    (0..plan.grid.rows()).map(|r| format!("{}.png", plan.grid.row_picture_stem(r))).filter(|p| regular(&dir.join(p))).collect()
}

/// A sweep's cells: each as its result, or its run directory so far, or pending. `known`: the
/// runs already read in this answer, by id (the list reads every cell as a run too).
fn sweep_cells(id: &str, dir: &Path, plan: &Plan, locks: &HeldLocks, known: &BTreeMap<String, RunInfo>) -> Result<Vec<Value>> {
    let mut cells = Vec::new();
    for k in 0..plan.grid.len() {
        let name = plan.grid.cell_name(k);
        let cell_dir = plan.cell_dir(dir, k);
        let run_id = if id == "." { format!("{}/{name}", crate::commands::sweep::record::CELLS_DIR) } else { format!("{id}/{}/{name}", crate::commands::sweep::record::CELLS_DIR) };
        let has_dir = std::fs::symlink_metadata(&cell_dir).is_ok_and(|m| m.is_dir());
        let mut v = json!({"name": name, "run": has_dir.then_some(&run_id), "values": plan.grid.values(k), "status": "pending",
            "final_test_acc": null, "best_test_acc": null, "best_epoch": null, "seconds": null, "curve": [], "error": null});
        if !has_dir {
            cells.push(v);
            continue;
        }
        let info = match known.get(&run_id) {
            Some(info) => info.clone(),
            None => run_info(&cell_dir, locks)?,
        };
        v["status"] = json!(info.status);
        match &info.cell {
            Some(c) => {
                let best = c.best_test_acc();
                v["final_test_acc"] = json!(c.final_test_acc());
                v["best_test_acc"] = json!(best.map(|b| b.0));
                v["best_epoch"] = json!(best.map(|b| b.1));
                v["seconds"] = json!(c.seconds);
                v["curve"] = json!(c.test_curve().iter().map(|a| a.is_finite().then_some(*a)).collect::<Vec<_>>());
                if let CellOutcome::Diverged(e) = &c.outcome {
                    v["error"] = json!(e);
                }
            }
            None => {
                // in progress (or stopped): what its metrics say so far
                let best = best_test_acc(&info.metrics);
                v["final_test_acc"] = json!(info.metrics.last().and_then(|m| m.test_acc));
                v["best_test_acc"] = json!(best.map(|b| b.0));
                v["best_epoch"] = json!(best.map(|b| b.1));
                v["seconds"] = json!(info.metrics.iter().map(|m| m.seconds).sum::<f64>());
                v["curve"] = json!(info.metrics.iter().map(|m| m.test_acc).collect::<Vec<_>>());
            }
        }
        cells.push(v);
    }
    Ok(cells)
}

/// A sweep in the list: how many of its cells have finished or are training.
fn sweep_summary(id: &str, dir: &Path, plan: &Plan, cells: &[Value]) -> Value {
    let count = |s: &str| cells.iter().filter(|c| c["status"] == s).count();
    let finished = count("finished") + count("diverged");
    let mut files = vec![PLAN_FILE.to_string(), "sweep.csv".to_string()];
    files.extend((0..plan.grid.len()).map(|k| format!("{}/{}/{}", crate::commands::sweep::record::CELLS_DIR, plan.grid.cell_name(k), "metrics.csv")));
    let names: Vec<&str> = files.iter().map(String::as_str).collect();
    json!({
        "id": id,
        "name": id.rsplit('/').next().unwrap_or(id),
        "title": plan.title,
        "cells": plan.grid.len(),
        "finished": finished,
        "training": count("training"),
        "complete": finished == plan.grid.len(),
        "updated": updated(dir, &names),
    })
}

/// `GET api/sweep?id=ID`.
pub fn sweep(root: &Path, id: &str) -> Result<Option<Value>> {
    let found = Found::scan(root);
    let Some(dir) = found.sweeps.get(id) else { return Ok(None) };
    let locks = HeldLocks::now();
    let plan = Plan::read(dir)?;
    let g = &plan.grid;
    let cells = sweep_cells(id, dir, &plan, &locks, &BTreeMap::new())?;
    let columns = g.column().values.len();
    let rows: Vec<Value> = (0..g.rows()).map(|r| json!({"label": g.row_describe(r), "cells": (r * columns..(r + 1) * columns).collect::<Vec<_>>()})).collect();
    let axes: Vec<Value> = g.axes.iter().map(|a| json!({"flag": a.flag, "name": a.name(), "values": a.values})).collect();
    let csv = read_limited(&dir.join("sweep.csv"), MAX_TABLE_FILE)?.map(|b| String::from_utf8_lossy(&b).into_owned());
    let mut v = sweep_summary(id, dir, &plan, &cells);
    v["epochs"] = json!(plan.epochs);
    v["axes"] = json!(axes);
    v["columns"] = json!({"name": g.column().name(), "values": g.column().values});
    v["rows"] = json!(rows);
    v["cells"] = json!(cells);
    v["csv"] = json!(csv);
    v["pictures"] = json!(sweep_pictures(dir, &plan));
    Ok(Some(v))
}

/// `GET api/picture?id=ID&name=NAME`: the file, when NAME is one of the pictures the run or
/// sweep `id` lists.
pub fn picture(root: &Path, id: &str, name: &str) -> Result<Option<PathBuf>> {
    let found = Found::scan(root);
    if let Some(dir) = found.runs.get(id).filter(|dir| run_pictures(dir).iter().any(|p| p == name)) {
        return Ok(Some(dir.join(name)));
    }
    if let Some(dir) = found.sweeps.get(id) {
        let plan = Plan::read(dir)?;
        if sweep_pictures(dir, &plan).iter().any(|p| p == name) {
            return Ok(Some(dir.join(name)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_sweeps_are_found_by_their_files_and_cells_know_their_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["a", "s/cells/lr-0.1", "s/cells/lr-0.5", "deep/1/2/3/4/5/6/7", ".hidden/r", "notrun"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in ["a/config.json", "s/cells/lr-0.1/config.json", "s/cells/lr-0.5/config.json", "deep/1/2/3/4/5/config.json", "deep/1/2/3/4/5/6/7/config.json", ".hidden/r/config.json"] {
            std::fs::write(root.join(f), "{}").unwrap();
        }
        std::fs::write(root.join("s").join(PLAN_FILE), "{}").unwrap();
        let found = Found::scan(root);
        let runs: Vec<&str> = found.runs.keys().map(String::as_str).collect();
        // six folders down and no further; nothing hidden
        assert_eq!(runs, ["a", "deep/1/2/3/4/5", "s/cells/lr-0.1", "s/cells/lr-0.5"]);
        assert_eq!(found.sweeps.keys().collect::<Vec<_>>(), ["s"]);
        assert_eq!(found.sweep_of("s/cells/lr-0.1").as_deref(), Some("s"));
        assert_eq!(found.sweep_of("a"), None);
        assert_eq!(found.sweep_of("deep/1/2/3/4/5"), None);
        // the root itself a sweep: its cells belong to "."
        let inner = Found::scan(&root.join("s"));
        assert_eq!(inner.sweeps.keys().collect::<Vec<_>>(), ["."]);
        assert_eq!(inner.sweep_of("cells/lr-0.5").as_deref(), Some("."));
    }
}
