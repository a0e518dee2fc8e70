//! The `gpu-nn` binary: parses the command line and runs the subcommand (`commands::run`);
//! every error is printed here, once, on one line.

use gpu_nn::commands::args::parse_cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Vulkan loaders probe Wayland and print an error when XDG_RUNTIME_DIR is unset (headless
    // machines, CI); an empty private directory keeps that noise out of our output.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join("gpu-nn-runtime");
        if std::fs::create_dir_all(&dir).is_ok() {
            // SAFETY: single-threaded here, before anything reads the environment.
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        }
    }
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
