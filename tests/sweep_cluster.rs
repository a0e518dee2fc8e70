//! The cluster examples run doc 003's 4 × 4 grid (one epoch of MNIST per cell) and give the
//! sweep one machine gives: `examples/slurm/sweep.sbatch` as a 4-task job array on a real
//! one-node Slurm cluster (`examples/slurm/local-cluster.sh`: slurmctld and slurmd started
//! here, stopped by pid at the end, also when the test fails), and the command of
//! `examples/kubernetes/sweep-job.yaml` as its 4 indexed pods would run it.

mod common;
use common::{command, gpu_nn, s};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The local cluster, stopped when dropped (also while a failed assertion unwinds).
struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let script = format!("{ROOT}/examples/slurm/local-cluster.sh");
        let o = Command::new("bash").args([script.as_str(), "start", s(dir)]).output().expect("bash runs");
        let cluster = Cluster { dir: dir.to_path_buf() };
        assert!(o.status.success(), "the local Slurm cluster did not start:\n{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        cluster
    }
    fn conf(&self) -> PathBuf {
        self.dir.join("slurm.conf")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let script = format!("{ROOT}/examples/slurm/local-cluster.sh");
        let _ = Command::new("bash").args([script.as_str(), "stop", s(&self.dir)]).status();
    }
}

/// The grid of both examples, with the data and the CPU backend.
fn grid(data: &Path) -> Vec<String> {
    ["--preset", "seed003", "--epochs", "1", "--batch-size", "5,15,20,40", "--lr", "0.05,0.5,0.9,4", "--data", s(data), "--backend", "cpu"].map(String::from).to_vec()
}

/// `sweep.csv` without its timing column.
fn without_seconds(dir: &Path) -> Vec<String> {
    let csv = std::fs::read_to_string(dir.join("sweep.csv")).unwrap();
    csv.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
}

/// The accuracy tables of `sweep.md` (from the first table to the table of seconds).
fn accuracy_tables(dir: &Path) -> String {
    let md = std::fs::read_to_string(dir.join("sweep.md")).unwrap();
    let from = md.find("## Final test accuracy").expect("a table of final accuracies");
    md[from..].split("## Seconds per cell").next().unwrap().to_string()
}

fn ok(args: &[String]) {
    let o = gpu_nn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "gpu-nn {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn doc_003s_grid_as_a_slurm_array_and_as_kubernetes_indexed_pods_equals_the_local_sweep() {
    let Some(data) = common::mnist_dir_or_skip("doc_003s_grid_on_a_cluster") else { return };
    let have_slurm = Command::new("slurmctld").arg("-V").output().is_ok_and(|o| o.status.success());
    if !have_slurm {
        assert!(!common::in_ci(), "slurmctld is missing in CI (.ci/run installs slurm-wlm)");
        eprintln!("SKIPPED doc_003s_grid_on_a_cluster: slurmctld is missing (apt-get install slurm-wlm)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();

    // the reference: the whole grid on this machine
    let local = tmp.path().join("local");
    let mut args = vec!["sweep".to_string(), "--quiet".into()];
    args.extend(grid(&data));
    args.extend(["--out".into(), s(&local).into()]);
    let t = Instant::now();
    ok(&args);
    let local_seconds = t.elapsed().as_secs_f64();
    assert_eq!(without_seconds(&local).len(), 17, "16 cells and the header");

    // Slurm: the example script as a 4-task array, submitted and awaited with sbatch --wait
    let cluster = Cluster::start(&tmp.path().join("slurm"));
    let out = tmp.path().join("slurm-out");
    let binary = env!("CARGO_BIN_EXE_gpu-nn");
    let t = Instant::now();
    let o = Command::new("sbatch")
        .args(["--wait", "--chdir", s(tmp.path()), &format!("{ROOT}/examples/slurm/sweep.sbatch")])
        .env("SLURM_CONF", cluster.conf())
        .env("GPU_NN", binary)
        .env("SWEEP_OUT", &out)
        .env("SWEEP_FLAGS", format!("--data {} --backend cpu", s(&data)))
        .env("GPU_NN_OFFLINE", "1")
        .env("GPU_NN_CACHE_DIR", concat!(env!("CARGO_TARGET_TMPDIR"), "/kernel-cache"))
        .output()
        .expect("sbatch runs");
    let slurm_seconds = t.elapsed().as_secs_f64();
    // the tasks' logs (gpu-nn-sweep-JOB_TASK.out in --chdir)
    let logs: String = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".out"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(o.status.success(), "the array failed: {}{}\ntask logs:\n{logs}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    for i in 0..4 {
        assert!(logs.contains(&format!("shard {i}/4: 4 of its 16 cells")), "task {i} ran its shard:\n{logs}");
    }
    drop(cluster);
    let o = gpu_nn(&["sweep", "--collect", s(&out)]);
    assert!(o.status.success(), "collect: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(without_seconds(&out), without_seconds(&local));
    assert_eq!(accuracy_tables(&out), accuracy_tables(&local));

    // Kubernetes: the Job's command, once per completion index, the paths mapped to here
    let yaml = std::fs::read_to_string(format!("{ROOT}/examples/kubernetes/sweep-job.yaml")).unwrap();
    assert!(yaml.contains("completionMode: Indexed") && yaml.contains("completions: 4"), "an Indexed Job of 4 completions");
    let line = yaml.lines().map(str::trim).find(|l| l.starts_with("args:")).expect("the container's args");
    let pod_args: Vec<String> = serde_json::from_str(line.trim_start_matches("args:").trim()).expect("args as a one-line list");
    let k8s = tmp.path().join("k8s-out");
    let pod_args: Vec<String> = pod_args
        .into_iter()
        .map(|a| match a.as_str() {
            "/data/mnist" => s(&data).to_string(),
            "/sweeps/doc003" => s(&k8s).to_string(),
            _ => a,
        })
        .collect();
    let t = Instant::now();
    for index in 0..4 {
        let o = command(&pod_args.iter().map(String::as_str).collect::<Vec<_>>()).env("JOB_COMPLETION_INDEX", index.to_string()).output().unwrap();
        assert!(o.status.success(), "pod {index}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let k8s_seconds = t.elapsed().as_secs_f64();
    assert_eq!(without_seconds(&k8s), without_seconds(&local), "the last pod wrote the report");
    assert_eq!(accuracy_tables(&k8s), accuracy_tables(&local));
    eprintln!("doc 003's 4 × 4 grid: {local_seconds:.1} s on this machine, {slurm_seconds:.1} s as a Slurm array (sbatch --wait), {k8s_seconds:.1} s as 4 indexed pods in turn");
}
