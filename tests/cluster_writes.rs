//! What a cluster does to a sweep's directory: shards in separate pid namespaces (each PID 1,
//! as the Kubernetes example runs them) writing the same report files at once, a cell another
//! process holds, a checkpoint resumed on a CPU with other instruction sets.

use std::path::Path;
use std::process::Command;
mod common;
use common::{command, gpu_nn, in_ci, s};

/// A finished two-cell sweep of doc 000's example (no data files needed).
fn small_sweep(out: &Path) {
    let o = gpu_nn(&["sweep", "--preset", "seed000-hand", "--backend", "cpu", "--lr", "0.1,0.2", "--quiet", "--out", s(out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Whether this machine can give a process a pid namespace of its own (root, util-linux).
fn can_unshare() -> bool {
    Command::new("unshare").args(["--pid", "--fork", "true"]).status().is_ok_and(|s| s.success())
}

/// Twelve rounds of four `sweep --collect` writers, each PID 1 in a namespace of its own, all
/// rewriting the same report files: every one succeeds and every file is whole.
#[test]
fn writers_that_are_each_pid_1_never_collide() {
    if !can_unshare() {
        assert!(!in_ci(), "CI must be able to run unshare --pid (root, util-linux)");
        return eprintln!("SKIPPED writers_that_are_each_pid_1: unshare --pid is not available here");
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    small_sweep(&out);
    let want = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    let bin = env!("CARGO_BIN_EXE_gpu-nn");
    for round in 0..12 {
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let mut c = Command::new("unshare");
                c.args(["--pid", "--fork", bin, "sweep", "--quiet", "--collect", s(&out)]).env("GPU_NN_OFFLINE", "1");
                c.output_async()
            })
            .collect();
        for w in writers {
            let o = w.wait_with_output().unwrap();
            assert!(o.status.success(), "round {round}: {}", String::from_utf8_lossy(&o.stderr));
        }
        assert_eq!(std::fs::read_to_string(out.join("sweep.csv")).unwrap(), want, "round {round}: sweep.csv");
    }
    let left: Vec<String> = std::fs::read_dir(&out).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.contains("tmp")).collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

/// `Command::spawn` with piped output, as a handle to wait on.
trait SpawnOutput {
    fn output_async(&mut self) -> std::process::Child;
}
impl SpawnOutput for Command {
    fn output_async(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
    }
}

/// A temporary file a killed writer left in a run directory goes with the next run there.
#[test]
fn a_killed_writers_temporary_is_removed_by_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    assert!(gpu_nn(&["train", "--preset", "seed000-hand", "--backend", "cpu", "--quiet", "--out", s(&run)]).status.success());
    let left = run.join(".checkpoint.safetensors.gpu-nn-tmp-00000000deadbeef");
    std::fs::write(&left, b"half a checkpoint").unwrap();
    assert!(gpu_nn(&["train", "--preset", "seed000-hand", "--backend", "cpu", "--quiet", "--force", "--out", s(&run)]).status.success());
    assert!(!left.exists());
}

/// A cell another process holds is left to it: the shard finishes the others, says so, and a
/// later run finishes the held one.
#[test]
fn a_cell_another_process_holds_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    let args = ["sweep", "--preset", "seed000-hand", "--backend", "cpu", "--lr", "0.1,0.2", "--out", s(&out)];
    // the sweep's layout first (its cells' directories), then hold the first cell
    let cell = out.join("cells").join("batch-2-lr-0.1");
    std::fs::create_dir_all(&cell).unwrap();
    let held = gpu_nn::commands::run_dir::lock_run_dir(&cell).unwrap();
    let o = gpu_nn(&args);
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{text}");
    assert!(text.contains("is training it; left to that process") && text.contains("held by other processes"), "{text}");
    assert!(!cell.join("result.json").exists() && out.join("cells/batch-2-lr-0.2/result.json").exists(), "{text}");
    drop(held);
    let o = gpu_nn(&args);
    assert!(o.status.success() && out.join("sweep.csv").exists(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A CPU run's checkpoint records the instruction sets its kernels were chosen by; resumed
/// where they differ, the run says so in one line (and goes on).
#[test]
fn a_resume_on_another_cpu_type_says_so() {
    let Some(dir) = common::mnist_dir_or_skip("resume on another CPU type") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = gpu_nn(&["train", "--preset", "seed001", "--backend", "cpu", "--data", s(&dir), "--epochs", "2", "--max-steps", "30", "--quiet", "--out", s(&run)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ck = run.join("checkpoint.safetensors");
    let here = gpu_nn::cpu::instruction_sets();
    let at = |bytes: &[u8]| bytes.windows(here.len()).position(|w| w == here.as_bytes());
    assert!(at(&std::fs::read(&ck).unwrap()).is_some(), "the checkpoint records {here}");
    // the same resume on this CPU is silent about it
    let o = command(&["train", "--resume", s(&run), "--max-steps", "40"]).output().unwrap();
    assert!(o.status.success() && !String::from_utf8_lossy(&o.stderr).contains("round differently"), "{}", String::from_utf8_lossy(&o.stderr));
    // another CPU: the same length of text in the header, other letters
    // another CPU: the same length of text in the header (its metadata is not checksummed),
    // other letters
    let mut bytes = std::fs::read(&ck).unwrap();
    let other = here.to_uppercase();
    let i = at(&bytes).unwrap();
    bytes[i..i + here.len()].copy_from_slice(other.as_bytes());
    std::fs::write(&ck, &bytes).unwrap();
    let o = command(&["train", "--resume", s(&run), "--max-steps", "50"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let notes: Vec<&str> = err.lines().filter(|l| l.contains("round differently")).collect();
    assert_eq!(notes.len(), 1, "{err}");
    assert!(notes[0].contains(&other) && notes[0].contains(&here), "{err}");
}

/// Without XDG_RUNTIME_DIR the binary gives the Vulkan loader a directory of this user's own
/// (mode 0700, `<tmp>/gpu-nn-runtime-<uid>`), not one folder every user shares; a symlink
/// planted at that name is not taken.
#[cfg(target_os = "linux")]
#[test]
fn the_runtime_directory_is_this_users_own() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    let tmp = tempfile::tempdir().unwrap();
    let run = |tmpdir: &Path| command(&["presets"]).env_remove("XDG_RUNTIME_DIR").env("TMPDIR", tmpdir).output().unwrap();
    assert!(run(tmp.path()).status.success());
    let made = std::fs::symlink_metadata(tmp.path().join(format!("gpu-nn-runtime-{uid}"))).unwrap();
    assert!(made.is_dir() && made.uid() == uid && made.permissions().mode() & 0o777 == 0o700, "mode {:o}", made.permissions().mode());
    assert!(!tmp.path().join("gpu-nn-runtime").exists(), "the shared folder of earlier builds");
    // someone else's planted link: left as it is, and the run goes on
    let other = tempfile::tempdir().unwrap();
    let elsewhere = other.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, other.path().join(format!("gpu-nn-runtime-{uid}"))).unwrap();
    assert!(run(other.path()).status.success());
    assert!(std::fs::symlink_metadata(other.path().join(format!("gpu-nn-runtime-{uid}"))).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}
