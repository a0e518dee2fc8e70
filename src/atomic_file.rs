//! Durable file writes: a model or checkpoint is either the old file or the new one, never a
//! torn mixture, whatever happens mid-write (crash, full disk, kill -9).
//!
//! The new bytes go to a temporary file beside the target, whose name no other writer can take:
//! a random suffix, created with `create_new` (the open fails on any existing file, and never
//! follows a symlink planted at that name). Writers that share a process id (threads, or pods
//! that are each PID 1 on a shared volume) therefore never write or rename each other's file.
//! A writer killed mid-write leaves its temporary behind; `remove_stale_temporaries` sweeps
//! those when a run next takes the directory.

use anyhow::{Context, Result, bail};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What marks a temporary file of `write_atomic`: `.NAME` + this + 16 hex digits.
pub const TEMPORARY_MARK: &str = ".gpu-nn-tmp-";

/// Writes `bytes` to a temporary file beside `path`, fsyncs it, renames it over `path` and
/// fsyncs the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().context("write_atomic: path has no file name")?.to_string_lossy();
    let (tmp, mut f) = create_temporary(dir, &name)?;
    let result = (|| -> Result<()> {
        f.write_all(bytes).with_context(|| format!("cannot write {} ({} bytes)", tmp.display(), bytes.len()))?;
        f.sync_all().with_context(|| format!("cannot flush {} to disk", tmp.display()))?;
        drop(f);
        std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A new file `.NAME<TEMPORARY_MARK><random>` in `dir`, created exclusively.
fn create_temporary(dir: &Path, name: &str) -> Result<(PathBuf, std::fs::File)> {
    for _ in 0..16 {
        let tmp = dir.join(format!(".{name}{TEMPORARY_MARK}{:016x}", random_suffix()));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", tmp.display())),
        }
    }
    bail!("cannot create a temporary file for {name} in {}: every name tried exists", dir.display())
}

/// 64 unpredictable bits: std's randomly keyed hasher (seeded from the operating system) over
/// the process, the time and a counter.
fn random_suffix() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

/// Removes from `dir` the temporary files `write_atomic` left there (writers killed mid-write)
/// that are at least `age` old; returns how many. With the directory's lock held, `age` zero
/// removes them all (no other writer is there); in a directory several processes write at once,
/// an age well above any write's duration leaves the writes in flight alone.
pub fn remove_stale_temporaries(dir: &Path, age: Duration) -> Result<usize> {
    let mut removed = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with('.') && name.contains(TEMPORARY_MARK)) {
            continue;
        }
        // lstat: a symlink planted under such a name is removed, not followed
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else { continue };
        let old = meta.modified().ok().and_then(|m| m.elapsed().ok()).is_some_and(|e| e >= age);
        if (meta.is_file() || meta.file_type().is_symlink()) && (age.is_zero() || old) && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gpu-nn-atomic-{tag}-{}-{:x}", std::process::id(), random_suffix()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Threads of one process share its id, so they are writers whose temporary names a pid
    /// would make equal: each write must land whole, none may fail.
    #[test]
    fn writers_of_one_process_racing_on_one_file_all_succeed() {
        let dir = temp_dir("race");
        let target = dir.join("sweep.json");
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let target = &target;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomic(target, &vec![t; 4096]).unwrap();
                    }
                });
            }
        });
        let bytes = std::fs::read(&target).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.iter().all(|&b| b == bytes[0]), "a torn file");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 1, "temporaries left behind: {left:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A symlink planted at the name the old scheme used (`.NAME.tmp.<pid>`) is never written
    /// through, and neither is a symlink under the new mark.
    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = temp_dir("symlink");
        let victim = dir.join("victim");
        std::fs::write(&victim, b"untouched").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(format!(".model.safetensors.tmp.{}", std::process::id()))).unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(format!(".model.safetensors{TEMPORARY_MARK}0000000000000000"))).unwrap();
        write_atomic(&dir.join("model.safetensors"), b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
        assert_eq!(std::fs::read(dir.join("model.safetensors")).unwrap(), b"new");
        // the planted one under our mark is swept like any stale temporary, not followed
        assert_eq!(remove_stale_temporaries(&dir, Duration::ZERO).unwrap(), 1);
        assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn stale_temporaries_are_swept_by_age() {
        let dir = temp_dir("sweep");
        let (stale, _) = create_temporary(&dir, "checkpoint.safetensors").unwrap();
        std::fs::write(dir.join("metrics.csv"), b"kept").unwrap();
        std::fs::write(dir.join(".hidden"), b"kept").unwrap();
        assert_eq!(remove_stale_temporaries(&dir, Duration::from_secs(3600)).unwrap(), 0, "a fresh one may be a write in flight");
        assert!(stale.exists());
        assert_eq!(remove_stale_temporaries(&dir, Duration::ZERO).unwrap(), 1);
        assert!(!stale.exists() && dir.join("metrics.csv").exists() && dir.join(".hidden").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
