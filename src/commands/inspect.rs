//! `gpu-nn inspect`: reads a run's data as `train` would and describes it (samples, features,
//! classes and their counts, the layout) with the time the reading took, so that data of one's
//! own can be checked before a run and its loading timed (`scripts/bench_load.py`).

use crate::commands::args::InspectArgs;
use crate::core::Settings;
use crate::core::run_data::load_with;
use crate::data::Dataset;
use anyhow::Result;
use serde_json::json;

pub fn run(args: InspectArgs, env: &Settings) -> Result<()> {
    let cfg = args.cfg.resolve()?;
    let started = web_time::Instant::now();
    let data = load_with(&cfg, &env.data, args.json)?;
    let seconds = started.elapsed().as_secs_f64();
    let names = if data.classes.is_empty() { crate::report::confusion::names_of(&cfg, data.train.num_classes) } else { data.classes.clone() };
    let describe = |d: &Dataset| json!({ "source": d.source, "samples": d.len(), "class_counts": d.class_counts() });
    if args.json {
        let v = json!({
            "data": cfg.data.name(),
            "kind": data.kind,
            "features": data.train.sample_len,
            "classes": names,
            "train": describe(&data.train),
            "val": data.val.as_deref().map(describe),
            "test": data.test.as_deref().map(describe),
            "load_seconds": seconds,
        });
        println!("{v}");
        return Ok(());
    }
    println!("{}: {} features per sample ({:?}), {} classes, read in {seconds:.3} s", cfg.data.name(), data.train.sample_len, data.kind, names.len());
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(1).max(5);
    for (part, d) in [("train", Some(&data.train)), ("val", data.val.as_ref()), ("test", data.test.as_ref())] {
        let Some(d) = d else { continue };
        println!("{part}: {} samples from {}", d.len(), d.source);
        for (name, count) in names.iter().zip(d.class_counts()) {
            println!("  {name:>width$}  {count}");
        }
    }
    Ok(())
}
