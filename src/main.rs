//! The `gpu-nn` binary: parses the command line and runs the subcommand (`commands::run`);
//! every error is printed here, once, on one line.

use gpu_nn::commands::args::parse_cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Vulkan loaders probe Wayland and print an error when XDG_RUNTIME_DIR is unset (headless
    // machines, CI); an empty directory of this user's own keeps that noise out of our output.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        if let Some(dir) = private_runtime_dir() {
            // SAFETY: single-threaded here, before anything reads the environment.
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        }
    }
    wgpu_messages();
    let cli = match parse_cli(std::env::args_os()) {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's own errors, on one line like ours: the message, then where to look
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            eprintln!("error: {first} (see gpu-nn --help)");
            return ExitCode::from(2);
        }
    };
    match gpu_nn::commands::run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            // One line: the error and its causes, outermost first.
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(2)
        }
    }
}

/// `<tmp>/gpu-nn-runtime-<uid>`, made with mode 0700, and used only if it is a real directory
/// (not a symlink) that this user owns and nobody else may enter: another user cannot plant or
/// share it.
#[cfg(target_os = "linux")]
fn private_runtime_dir() -> Option<std::path::PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let dir = std::env::temp_dir().join(format!("gpu-nn-runtime-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(_) => return None,
    }
    let m = std::fs::symlink_metadata(&dir).ok()?;
    (m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0).then_some(dir)
}

/// Elsewhere the loaders do not probe Wayland.
#[cfg(not(target_os = "linux"))]
fn private_runtime_dir() -> Option<std::path::PathBuf> {
    None
}

/// With `WGPU_VALIDATION` set to anything but 0 (wgpu's own switch for the validation layers),
/// the warnings and errors of wgpu and of the layers reach stderr.
fn wgpu_messages() {
    if std::env::var("WGPU_VALIDATION").is_ok_and(|v| !v.is_empty() && v != "0") {
        gpu_nn::gpu::context::print_wgpu_messages();
    }
}
