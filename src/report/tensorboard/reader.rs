//! Reading an event file back: the scalars of a run as it trains (the live dashboard), and
//! which file of a directory is the run's.

use super::FILE_PREFIX;
use super::proto::{Event, ValueKind, What};
use super::record::unframe;
use anyhow::{Context, Result, bail};
use prost::Message;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One scalar of an event file: `value` at `step` of `tag`, written at `wall_time` (seconds
/// since the Unix epoch).
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    pub tag: String,
    pub step: i64,
    pub wall_time: f64,
    pub value: f64,
}

/// Every scalar (`simple_value`) of the event file `path`, in file order, up to its first torn
/// or corrupt record (a run still writing, or one killed mid-write). A file over `max_bytes`
/// is refused unread.
pub fn read_scalars(path: &Path, max_bytes: u64) -> Result<Vec<Scalar>> {
    let bytes = read_limited(path, max_bytes)?;
    let mut scalars = Vec::new();
    for record in unframe(&bytes).records {
        // a record that is not an Event is someone else's; the rest of the file may still be ours
        let Ok(event) = Event::decode(record) else { continue };
        let Some(What::Summary(summary)) = event.what else { continue };
        for v in summary.value {
            if let Some(ValueKind::SimpleValue(x)) = v.value {
                scalars.push(Scalar { tag: v.tag, step: event.step, wall_time: event.wall_time, value: f64::from(x) });
            }
        }
    }
    Ok(scalars)
}

/// The newest (last modified; then last by name) `events.out.tfevents.*` regular file directly
/// in `dir`; symbolic links are never followed, so a link cannot lead the reader out of `dir`.
pub fn find_event_file(dir: &Path) -> Option<PathBuf> {
    let mut newest: Option<(std::time::SystemTime, String)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| n.starts_with(FILE_PREFIX)) else { continue };
        // DirEntry's file type and metadata describe the entry itself, not a link's target
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.file_type().is_file() {
            continue;
        }
        let key = (meta.modified().unwrap_or(std::time::UNIX_EPOCH), name.to_string());
        if newest.as_ref().is_none_or(|n| key > *n) {
            newest = Some(key);
        }
    }
    newest.map(|(_, name)| dir.join(name))
}

/// The bytes of `path`, refused when more than `max_bytes` (checked before reading, and again
/// while reading a file that grows meanwhile).
pub(super) fn read_limited(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("{}: cannot open the event file", path.display()))?;
    let len = file.metadata().with_context(|| format!("{}: cannot read the event file's size", path.display()))?.len();
    if len > max_bytes {
        bail!("{}: the event file holds {len} bytes, more than the {max_bytes} allowed", path.display());
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes).with_context(|| format!("{}: cannot read the event file", path.display()))?;
    if bytes.len() as u64 > max_bytes {
        bail!("{}: the event file grew past the {max_bytes} bytes allowed while it was read", path.display());
    }
    Ok(bytes)
}
