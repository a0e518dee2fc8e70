use clap::Parser;
use gpu_nn::commands::args::{Cli, Command, TrainArgs};
use gpu_nn::core::train::{Controls, Outcome};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Exit status of a run stopped by Ctrl-C after writing its checkpoint: 128 + SIGINT, what a
/// shell reports for a process that Ctrl-C ended, so scripts see that the run is not complete.
const EXIT_INTERRUPTED: u8 = 130;

/// `gpu-nn train`: the first Ctrl-C asks the loop to stop after the step in progress (on the
/// GPU, the submission in progress) and write a checkpoint; a second one quits at once (files are written atomically, so the
/// previous checkpoint survives).
fn train(args: TrainArgs) -> anyhow::Result<Outcome> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    let handler = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond interrupt: quitting without a checkpoint of the current step");
            std::process::exit(EXIT_INTERRUPTED as i32);
        }
        eprintln!("\ninterrupt: finishing the current step and writing a checkpoint (Ctrl-C again quits at once)");
    });
    if let Err(e) = handler {
        eprintln!("note: cannot catch Ctrl-C ({e}); an interrupt will end the run without a checkpoint");
    }
    let ctl = Controls { interrupt: Some(&interrupt), stop_after_steps: args.stop_after_steps };
    let result = match &args.resume {
        Some(dir) => gpu_nn::commands::train::resume_command(dir, &args.cfg, args.quiet, ctl, args.log_format)?,
        None => {
            let cfg = args.cfg.resolve()?;
            gpu_nn::commands::train::train_with(&cfg, args.out.clone(), args.force, args.quiet, ctl, args.log_format)?
        }
    };
    Ok(result.outcome)
}

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
    let cli = match Cli::try_parse() {
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
    let result = match cli.command {
        Command::Train(args) => match train(args) {
            Ok(Outcome::Interrupted) => return ExitCode::from(EXIT_INTERRUPTED),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        },
        Command::Eval(args) => gpu_nn::commands::eval::eval_command(&gpu_nn::commands::eval::EvalOptions {
            flags: args.data.config_args(args.backend.clone(), args.adapter.clone()),
            model: args.model,
            out: args.out,
            json: args.json,
            quiet: args.quiet,
        })
        .map(|_| ()),
        Command::Predict(args) => gpu_nn::commands::predict::predict_command(&gpu_nn::commands::predict::PredictOptions {
            flags: args.data.config_args(None, None),
            model: args.model,
            images: args.images,
            idx_index: args.idx_index,
            csv: args.csv,
            train_split: args.train_set,
            show: args.show,
        }),
        Command::Sweep(args) => gpu_nn::commands::sweep::sweep_command(&gpu_nn::commands::sweep::SweepOptions {
            flags: args.cfg,
            out: args.out,
            keep_runs: args.keep_runs,
            force: args.force,
            quiet: args.quiet,
        })
        .map(|_| ()),
        Command::Gradcheck(args) => (|| {
            let mut cfg = args.cfg.resolve()?;
            let data = gpu_nn::core::run_data::prepare(&mut cfg, false)?;
            cfg.check_against_data(data.train.sample_len, data.train.num_classes, &data.train.source, data.train.len())?;
            let o = gpu_nn::commands::gradcheck::GradcheckOptions { samples: args.samples, batch: args.batch, tolerance: args.tolerance, step: args.step };
            let r = gpu_nn::commands::gradcheck::check(&cfg, &data, &o)?;
            gpu_nn::commands::gradcheck::print(&cfg, &r, &o);
            if !(r.worst() <= args.tolerance) {
                anyhow::bail!("gradcheck failed: worst relative error {:.3e} exceeds the tolerance {:.1e}", r.worst(), args.tolerance);
            }
            println!("gradcheck passed: worst relative error {:.3e} <= tolerance {:.1e}", r.worst(), args.tolerance);
            Ok(())
        })(),
        Command::Adapters => {
            let inst = gpu_nn::gpu::context::instance();
            let all = gpu_nn::gpu::list_adapters(&inst);
            if all.is_empty() {
                println!("{}", gpu_nn::gpu::context::NO_ADAPTER_HELP);
            }
            for a in &all {
                println!("{}{}", a.summary(), if a.is_software() { "  [CPU emulation]" } else { "" });
            }
            Ok(())
        }
        Command::Parity(args) => (|| {
            let mut cfg = args.cfg.resolve()?;
            let data = gpu_nn::core::run_data::prepare(&mut cfg, false)?;
            cfg.check_against_data(data.train.sample_len, data.train.num_classes, &data.train.source, data.train.len())?;
            let r = gpu_nn::commands::parity::run(&cfg, &data, args.steps, cfg.backend.adapter.as_deref(), !args.free_run)?;
            gpu_nn::commands::parity::print(&r, args.tolerance);
            if !(r.worst() <= args.tolerance) {
                anyhow::bail!("parity failed: worst relative error {:.3e} exceeds the tolerance {:.1e}", r.worst(), args.tolerance);
            }
            Ok(())
        })(),
        Command::Bench(args) if args.scaling => (|| {
            let mut cfg = args.cfg.resolve_over(&[gpu_nn::core::config::preset_json("seed001")?])?;
            let data = gpu_nn::core::run_data::prepare(&mut cfg, false)?;
            let device = if args.cpu_only {
                "no GPU".to_string()
            } else {
                gpu_nn::gpu::Gpu::new(cfg.backend.adapter.as_deref(), true)?.describe()
            };
            let rows = gpu_nn::commands::bench::run_scaling(&data, args.steps, args.repeats, cfg.backend.adapter.as_deref(), !args.cpu_only)?;
            let dir = args.out.clone().unwrap_or_else(|| ".".into());
            gpu_nn::commands::bench::write_scaling(&dir, &rows, &device)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{:<6} {:>6} {:>6} {:>12} {:>12}", "sweep", "batch", "width", "cpu ms/step", "gpu ms/step");
                for r in &rows {
                    let g = r.gpu_ms_per_step.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
                    println!("{:<6} {:>6} {:>6} {:>12.3} {:>12}", r.sweep, r.batch, r.width, r.cpu_ms_per_step, g);
                }
                println!("wrote {}", dir.join("scaling.png").display());
            }
            Ok(())
        })(),
        Command::Bench(args) if args.kernels => (|| {
            let (device, rows) = gpu_nn::commands::bench::run_kernels(args.cfg.adapter.as_deref())?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({"device": device, "kernels": rows}))?);
            } else {
                gpu_nn::commands::bench::print_kernels(&device, &rows);
            }
            Ok(())
        })(),
        Command::Bench(args) => (|| {
            let cases: Vec<(String, Vec<serde_json::Value>)> = if args.cfg.selects_model() {
                vec![(args.cfg.preset.clone().unwrap_or_else(|| "configuration".into()), Vec::new())]
            } else {
                gpu_nn::commands::bench::default_cases()
            };
            let mut results = Vec::new();
            for (name, base) in cases {
                let mut cfg = if base.is_empty() { args.cfg.resolve()? } else { args.cfg.resolve_over(&base)? };
                let data = gpu_nn::core::run_data::prepare(&mut cfg, false)?;
                cfg.check_against_data(data.train.sample_len, data.train.num_classes, &data.train.source, data.train.len())?;
                if !args.json {
                    eprintln!("benchmarking {name} ...");
                }
                results.push(gpu_nn::commands::bench::run_case(&name, &cfg, &data, args.steps, args.repeats, cfg.backend.adapter.as_deref(), !args.cpu_only)?);
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                gpu_nn::commands::bench::print(&results);
            }
            Ok(())
        })(),
        Command::Presets => {
            for (name, text) in gpu_nn::core::config::PRESETS {
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
