//! The subcommands, one module each with a `run(args)`, and what they share: the command line
//! (`args`, `config_args`), the preparation of a run (`setup`) and the run directory
//! (`run_dir`). `main.rs` parses and calls `run` here.

pub mod adapters;
pub mod args;
pub mod bench;
pub mod config_args;
pub mod download;
pub mod eval;
pub mod export;
pub mod gradcheck;
pub mod parity;
pub mod predict;
pub mod presets;
pub mod run_dir;
pub mod serve;
pub mod setup;
pub mod sweep;
pub mod trace;
pub mod train;

use crate::core::train::Outcome;
use args::Command;
use std::process::ExitCode;

/// Runs one subcommand; its exit status on success (a train run stopped by Ctrl-C exits 130).
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    match command {
        Command::Train(a) => Ok(match train::run(a)? {
            Outcome::Interrupted => ExitCode::from(train::EXIT_INTERRUPTED),
            _ => ExitCode::SUCCESS,
        }),
        Command::Presets => done(presets::run()),
        Command::Adapters => done(adapters::run()),
        Command::Parity(a) => done(parity::run(a)),
        Command::Bench(a) => done(bench::run(a)),
        Command::Eval(a) => done(eval::run(a)),
        Command::Predict(a) => done(predict::run(a)),
        Command::Sweep(a) => sweep::run(a),
        Command::Gradcheck(a) => done(gradcheck::run(a)),
        Command::Trace(a) => done(trace::run(a)),
        Command::Export(a) => done(export::run(a)),
        Command::Download(a) => done(download::run(a)),
        Command::Serve(a) => done(serve::run(a)),
        Command::Completions { shell } => {
            // generated from the same clap definitions the parser uses, so they never drift;
            // into memory first (clap_complete panics on a write error), and a reader that
            // closes early (`| head`) is no error
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut <crate::commands::args::Cli as clap::CommandFactory>::command(), "gpu-nn", &mut script);
            match std::io::Write::write_all(&mut std::io::stdout(), &script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(anyhow::anyhow!("cannot write the completion script: {e}")),
                _ => Ok(ExitCode::SUCCESS),
            }
        }
    }
}
