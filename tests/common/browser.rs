//! What the browser tests share: the tools they need, `gpu-nn serve` started on a free port
//! and a child process killed when its guard is dropped (also when an assertion fails).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A child process (the server, a training run), killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The browser: `$CHROMIUM`, else Debian's.
pub fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// What a browser test needs besides the data, each with how to get it.
pub fn missing_tools() -> Vec<String> {
    let mut missing = Vec::new();
    if !Path::new(ROOT).join("web/pkg/gpu_nn_bg.wasm").is_file() {
        missing.push("web/pkg (run scripts/build-web.sh)".to_string());
    }
    if !Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success()) {
        missing.push("node".into());
    }
    if !Path::new(ROOT).join("web/test/node_modules/playwright-core").is_dir() {
        missing.push("web/test/node_modules (npm ci --prefix web/test)".into());
    }
    if !Path::new(&chromium()).is_file() {
        missing.push("chromium (apt-get install chromium)".into());
    }
    missing
}

/// Whether the browser tools are all there; false with a printed reason (a failure in CI).
pub fn tools_or_skip(test: &str) -> bool {
    let missing = missing_tools();
    if !missing.is_empty() {
        assert!(!super::in_ci(), "{test} lacks in CI: {}", missing.join(", "));
        eprintln!("SKIPPED {test}: missing {}", missing.join(", "));
    }
    missing.is_empty()
}

/// `gpu-nn serve --port 0` of the repository's page with `args` (data, runs), and the address
/// it prints once it listens.
pub fn serve(args: &[&str]) -> (Killed, String) {
    let web = format!("{ROOT}/web");
    let mut all = vec!["serve", "--port", "0", "--quiet", "--web", &web];
    all.extend_from_slice(args);
    let mut child = super::command(&all).stdout(Stdio::piped()).spawn().expect("gpu-nn serve starts");
    let stdout = child.stdout.take().unwrap();
    let server = Killed(child);
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let url = first.split_whitespace().nth(1).unwrap_or_else(|| panic!("no address in '{first}'")).to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{first}");
    (server, url)
}
