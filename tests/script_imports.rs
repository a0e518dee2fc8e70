//! The Python scripts import from each other only names that exist: a static check
//! (`tests/python/script_imports.py`) that runs in CI, where the scripts themselves do not (the
//! device check's PyTorch benchmark once imported two functions that had moved, and failed only
//! on the GPU machine).

mod common;

use common::in_ci;
use std::path::Path;
use std::process::{Command, Output};

const CHECK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/script_imports.py");

/// The check's run on `folder`, or None (with a printed reason; a failure in CI) without python3.
fn check(test: &str, folder: &Path) -> Option<Output> {
    match Command::new("python3").arg(CHECK).arg(folder).output() {
        Ok(o) => Some(o),
        Err(e) => {
            assert!(!in_ci(), "{test}: python3 cannot run in CI: {e}");
            eprintln!("SKIPPED {test}: python3 cannot run: {e}");
            None
        }
    }
}

#[test]
fn every_script_imports_from_its_siblings_only_what_they_define() {
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let Some(o) = check("every_script_imports_from_its_siblings_only_what_they_define", &scripts) else { return };
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "broken imports between the scripts:\n{stdout}{stderr}");
    // the check saw the scripts and the imports between them (compare_cpu.py's from its peers)
    assert!(stderr.contains(" 0 broken") && !stderr.contains(" 0 names imported"), "{stderr}");
}

#[test]
fn a_name_missing_from_a_sibling_is_reported_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("peers.py"), "import numpy as np\nNETWORKS = {}\n\ndef load_train(data):\n    return data\n").unwrap();
    std::fs::write(dir.path().join("bench.py"), "import sys\nfrom peers import NETWORKS, load_train, np, torch_rate\n").unwrap();
    let Some(o) = check("a_name_missing_from_a_sibling_is_reported_with_its_file_and_line", dir.path()) else { return };
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one broken name, one line: {stdout}");
    assert!(lines[0].ends_with("bench.py:2: imports torch_rate from peers, which does not define it"), "{stdout}");
}
