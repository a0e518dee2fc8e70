use clap::Parser;
use gpu_nn::cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => args
            .cfg
            .resolve()
            .and_then(|cfg| gpu_nn::run::train_command(&cfg, args.out.clone(), args.force, args.quiet))
            .map(|_| ()),
        Command::Presets => {
            for (name, text) in gpu_nn::config::PRESETS {
                let desc = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|v| v["description"].as_str().map(str::to_string))
                    .unwrap_or_default();
                println!("{name:18} {desc}");
            }
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, outermost first.
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(2)
        }
    }
}
