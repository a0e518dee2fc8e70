//! A run directory's event file, appended to as the run trains: each record written whole with
//! one `write` and no buffer in between, so that a reader (TensorBoard, the live dashboard)
//! sees it at once and a killed run leaves at most one torn record at the end. A resumed run
//! continues the same file, cut back to what its checkpoint holds (an atomic rewrite), so no
//! step appears twice.

use super::event::{Axis, CURVES, FILE_VERSION, RUNNING_LOSS, axis, epoch_summary, now, png, scalar};
use super::hparams::{SESSION_END_TAG, SESSION_START_TAG, SessionStart, SessionStatus, session_end, session_start};
use super::proto::{Event, Summary, SummaryValue, What};
use super::reader::{find_event_file, read_limited};
use super::record::{frame, unframe};
use super::FILE_PREFIX;
use crate::atomic_file::write_atomic;
use crate::core::metrics::EpochMetrics;
use crate::core::run_state::RunState;
use anyhow::{Context, Result, bail};
use prost::Message;
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The largest event file a run continues (far above what a run writes: tens of bytes per
/// chunk of steps, a few hundred per epoch, its pictures once).
const MAX_CONTINUED_BYTES: u64 = 1 << 30;

/// An event file open for appending.
pub struct EventWriter {
    path: PathBuf,
    file: File,
    /// Epochs whose scalars the file holds: one written again is first cut out of it.
    epochs: BTreeSet<i64>,
    session_started: bool,
    session_ended: bool,
}

impl EventWriter {
    /// A new event file in `dir`, holding its file version.
    pub fn create(dir: &Path) -> Result<EventWriter> {
        for _ in 0..16 {
            let path = free_name(dir)?;
            match OpenOptions::new().append(true).create_new(true).open(&path) {
                Ok(file) => {
                    let mut w = EventWriter { path, file, epochs: BTreeSet::new(), session_started: false, session_ended: false };
                    w.write(0, What::FileVersion(FILE_VERSION.to_string()))?;
                    return Ok(w);
                }
                // another writer took the name since it was found free
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("{}: cannot create the event file", path.display())),
            }
        }
        bail!("{}: cannot create an event file: every name tried exists", dir.display())
    }

    /// Continues the event file of `dir` (the newest) from `state`, a checkpoint: keeps its
    /// file version, its HParams session start, the scalars of the epochs `state` completed and
    /// the running loss up to `state.step`; drops the rest (what the run wrote after that
    /// checkpoint, the end of an earlier run continued now, a torn last record) in one atomic
    /// rewrite; then writes the rows of `state`'s metrics the file lacks (an epoch cut short
    /// by `--max-steps`, as the checkpoint has it), so that the file holds metrics.csv's rows.
    /// With no event file there (a run of an older gpu-nn) it starts one.
    pub fn resume(dir: &Path, state: &RunState) -> Result<EventWriter> {
        let mut w = match find_event_file(dir) {
            Some(path) => {
                let completed = state.epoch as i64;
                let step = i64::try_from(state.step).unwrap_or(i64::MAX);
                EventWriter::rewrite(path, |tag, s| match axis(tag) {
                    Axis::Epoch => s <= completed,
                    Axis::Step => s <= step,
                    Axis::SessionStart => true,
                    Axis::End => false,
                })?
            }
            None => EventWriter::create(dir)?,
        };
        for m in &state.history {
            if !w.epochs.contains(&(m.epoch as i64)) {
                w.epoch(m)?;
            }
        }
        Ok(w)
    }

    /// The event file of `dir` (the newest) to append to, a torn last record dropped; or a new
    /// one when there is none.
    pub fn append(dir: &Path) -> Result<EventWriter> {
        match find_event_file(dir) {
            Some(path) => EventWriter::rewrite(path, |_, _| true),
            None => EventWriter::create(dir),
        }
    }

    /// Keeps the whole records of `path` and, of their summary values, those `keep(tag, step)`
    /// accepts; rewrites the file atomically when that changes it; opens it for appending.
    fn rewrite(path: PathBuf, keep: impl Fn(&str, i64) -> bool) -> Result<EventWriter> {
        let bytes = read_limited(&path, MAX_CONTINUED_BYTES)?;
        let framed = unframe(&bytes);
        let mut kept = Vec::with_capacity(framed.valid_len);
        let (mut epochs, mut session_started, mut session_ended) = (BTreeSet::new(), false, false);
        for record in framed.records {
            let Ok(mut event) = Event::decode(record) else { continue };
            let step = event.step;
            if let Some(What::Summary(s)) = &mut event.what {
                let before = s.value.len();
                s.value.retain(|v| keep(&v.tag, step));
                if s.value.is_empty() {
                    continue;
                }
                for v in &s.value {
                    match v.tag.as_str() {
                        SESSION_START_TAG => session_started = true,
                        SESSION_END_TAG => session_ended = true,
                        tag if axis(tag) == Axis::Epoch => {
                            epochs.insert(step);
                        }
                        _ => {}
                    }
                }
                if s.value.len() < before {
                    frame(&event.encode_to_vec(), &mut kept);
                    continue;
                }
            }
            frame(record, &mut kept);
        }
        if kept != bytes {
            write_atomic(&path, &kept)?;
        }
        let file = OpenOptions::new().append(true).open(&path).with_context(|| format!("{}: cannot open the event file to append to it", path.display()))?;
        Ok(EventWriter { path, file, epochs, session_started, session_ended })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file holds an HParams session start (a sweep cell's).
    pub fn session_started(&self) -> bool {
        self.session_started
    }

    /// Whether the file holds an HParams session end.
    pub fn session_ended(&self) -> bool {
        self.session_ended
    }

    /// Appends one event.
    fn write(&mut self, step: i64, what: What) -> Result<()> {
        let mut bytes = Vec::new();
        frame(&Event { wall_time: now(), step, what: Some(what) }.encode_to_vec(), &mut bytes);
        // one write of the whole record: nothing is held back in a buffer
        self.file.write_all(&bytes).with_context(|| format!("{}: cannot append to the event file", self.path.display()))
    }

    fn summary(&mut self, step: i64, values: Vec<SummaryValue>) -> Result<()> {
        self.write(step, What::Summary(Summary { value: values }))
    }

    /// The scalars of an epoch, at step = its number (1-based, as metrics.csv's `epoch`). An
    /// epoch the file already holds (one cut short by `--max-steps`, now continued) is cut out
    /// of it first: every epoch appears once.
    pub fn epoch(&mut self, m: &EpochMetrics) -> Result<()> {
        let step = m.epoch as i64;
        if self.epochs.contains(&step) {
            *self = EventWriter::rewrite(self.path.clone(), |tag, s| !(s == step && axis(tag) == Axis::Epoch))?;
        }
        self.write(step, What::Summary(epoch_summary(m)))?;
        self.epochs.insert(step);
        Ok(())
    }

    /// The mean training loss of the epoch so far (`running/loss`), at `step` optimiser steps
    /// into the run.
    pub fn running_loss(&mut self, step: u64, loss: f64) -> Result<()> {
        self.summary(i64::try_from(step).unwrap_or(i64::MAX), vec![scalar(RUNNING_LOSS, loss)])
    }

    /// The PNG `file` as image `tag` (`CURVES`, `CONFUSION`) at `step`; false, writing nothing,
    /// when there is no such file.
    pub fn picture(&mut self, tag: &str, step: i64, file: &Path) -> Result<bool> {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("{}: cannot read the picture for the event file", file.display())),
        };
        let Some(image) = png(tag, bytes) else { bail!("{}: not a PNG picture gpu-nn can put in the event file", file.display()) };
        self.summary(step, vec![image])?;
        Ok(true)
    }

    /// The pictures of a finished run in `dir` (curves.png, and confusion.png where there is a
    /// test set), at step = its last epoch.
    pub fn pictures(&mut self, dir: &Path, last_epoch: usize) -> Result<()> {
        for (tag, file) in [(CURVES, "curves.png"), (super::event::CONFUSION, "confusion.png")] {
            self.picture(tag, last_epoch as i64, &dir.join(file))?;
        }
        Ok(())
    }

    /// When the run reached its target accuracy: `TARGET_SECONDS` and `TARGET_STEP` at step =
    /// the epoch that reached it (written when the run ends, so a resume cuts them out).
    pub fn target(&mut self, t: &crate::core::metrics::TargetReached) -> Result<()> {
        self.summary(t.epoch as i64, vec![scalar(super::event::TARGET_SECONDS, t.seconds), scalar(super::event::TARGET_STEP, t.step as f64)])
    }

    /// A sweep cell's HParams session start: its axis values.
    pub fn session_start(&mut self, s: &SessionStart) -> Result<()> {
        self.summary(0, vec![session_start(s)])?;
        self.session_started = true;
        Ok(())
    }

    /// A sweep cell's HParams session end: how it ended.
    pub fn session_end(&mut self, status: SessionStatus) -> Result<()> {
        self.summary(0, vec![session_end(status)])?;
        self.session_ended = true;
        Ok(())
    }
}

/// A name for a new event file in `dir` that no file has: `events.out.tfevents.<secs>.<host>.<pid>.<n>`,
/// TensorFlow's pattern, `n` counting up from 0 past names taken.
pub(super) fn free_name(dir: &Path) -> Result<PathBuf> {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let stem = format!("{FILE_PREFIX}{secs}.{}.{}", host_name(), std::process::id());
    for n in 0..1000 {
        let path = dir.join(format!("{stem}.{n}"));
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(path);
        }
    }
    bail!("{}: cannot name an event file: {stem}.0 to .999 all exist", dir.display())
}

/// This machine's name as TensorBoard shows it in file names (from the kernel, else the
/// environment), with only letters, digits, `-` and `_`.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
}

/// Removes the event files (`events.out.tfevents.*`, and nothing else) directly in `dir`, as
/// `--force` removes an earlier run's files; returns how many.
pub fn remove_event_files(dir: &Path) -> Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot list the directory", dir.display())),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let is_events = entry.file_name().to_str().is_some_and(|n| n.starts_with(FILE_PREFIX));
        if !is_events || entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("{}: cannot remove the earlier event file", entry.path().display())),
        }
    }
    Ok(removed)
}
