//! The examples run as a user runs them: `examples/train.rs` trains seed001 for an epoch on
//! MNIST, saves the model, reads it back and classifies the first test digit (a 7) from a PNG;
//! `examples/in_memory.rs` learns the unit disc from points made in the program. `cargo test`
//! builds the examples beside the tests; this runs those binaries.

use std::path::PathBuf;
use std::process::Command;
mod common;

/// The built example `name` (target/<profile>/examples/<name>, beside this test's deps folder).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(|deps| deps.parent()).unwrap().join("examples").join(name);
    assert!(path.is_file(), "{} is not built (cargo test builds the examples; cargo build --release --examples)", path.display());
    path
}

/// The number after `key` in `text` ("test accuracy 97.12 %" → 97.12).
fn number_after(text: &str, key: &str) -> f64 {
    let rest = &text[text.find(key).unwrap_or_else(|| panic!("no '{key}' in:\n{text}")) + key.len()..];
    rest.split_whitespace().next().unwrap().trim_end_matches(',').parse().unwrap()
}

#[test]
fn the_train_example_trains_saves_reloads_and_classifies() {
    let Some(dir) = common::mnist_dir_or_skip("train example") else { return };
    let o = Command::new(example("train")).arg(&dir).env_remove("GPU_NN_ADAPTER").output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(number_after(&out, "test accuracy") >= 90.0, "{out}");
    assert!(out.contains(": a 7 (p = ") && out.contains("its label is 7"), "{out}");
}

#[test]
fn the_in_memory_example_learns_the_unit_disc() {
    let o = Command::new(example("in_memory")).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("30 epochs on cpu"), "{out}");
    assert!(number_after(&out, "test accuracy") >= 95.0, "{out}");
    assert!(out.contains("(0.1, 0.2): inside") && out.contains("(1.2, -1.1): outside"), "{out}");
}
