//! The subcommands, one module each with a `run(args, settings)`, and what they share: the
//! command line (`args`, `config_args`), the environment read once (`environment`) and the run
//! directory (`run_dir`). `main.rs` parses and calls `run` here. Each subcommand is a thin
//! front-end over a `core::Session`.

pub mod adapters;
pub mod args;
pub mod bench;
pub mod config_args;
pub mod download;
pub mod environment;
pub mod eval;
pub mod export;
pub mod gradcheck;
pub mod inspect;
pub mod parity;
pub mod predict;
pub mod presets;
pub mod run_dir;
pub mod serve;
pub mod sweep;
pub mod trace;
pub mod train;

use crate::core::train::Outcome;
use args::Command;
use std::process::ExitCode;

/// Runs one subcommand; its exit status on success (a train run stopped by Ctrl-C exits 130).
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    let env = &environment::read()?;
    match command {
        Command::Train(a) => Ok(match train::run(a, env)? {
            Outcome::Interrupted => ExitCode::from(train::EXIT_INTERRUPTED),
            _ => ExitCode::SUCCESS,
        }),
        Command::Presets => done(presets::run()),
        Command::Adapters => done(adapters::run()),
        Command::Parity(a) => done(parity::run(a, env)),
        Command::Bench(a) => done(bench::run(a, env)),
        Command::Eval(a) => done(eval::run(a, env)),
        Command::Predict(a) => done(predict::run(a, env)),
        Command::Sweep(a) => sweep::run(a, env),
        Command::Gradcheck(a) => done(gradcheck::run(a, env)),
        Command::Inspect(a) => done(inspect::run(a, env)),
        Command::Trace(a) => done(trace::run(a, env)),
        Command::Export(a) => done(export::run(a)),
        Command::Download(a) => done(download::run(a, env)),
        Command::Serve(a) => done(serve::run(a, env)),
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
