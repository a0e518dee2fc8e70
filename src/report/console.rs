//! How a run talks to the terminal: `--log-format text|json` and `--quiet`.
//!
//! - text (default): a progress bar per epoch on stderr (samples/s, running loss, ETA) and one
//!   summary line per epoch on stdout;
//! - json: exactly one JSON object per epoch on stdout, with the fields of `metrics.csv`, and
//!   nothing else on stdout (notes go to stderr);
//! - `--quiet`: nothing at all except errors, whatever the format.

use crate::core::metrics::EpochMetrics;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Progress bar and one human-readable line per epoch.
    #[default]
    Text,
    /// One JSON object per epoch on stdout (the metrics.csv fields), nothing else on stdout.
    Json,
}

static QUIET: AtomicBool = AtomicBool::new(false);

/// Process-wide `--quiet`, for the few places that print without a `quiet` argument
/// (the download progress bar).
pub fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::Relaxed);
}
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// The JSON line of one epoch: the metrics.csv columns as keys, `null` for what was not
/// measured (accuracies as fractions, like the CSV).
pub fn epoch_json(m: &EpochMetrics) -> String {
    // Field by field in the CSV's order (serde_json's maps would sort the keys).
    let num = |x: f64| serde_json::to_string(&x).unwrap_or_else(|_| "null".into());
    let opt = |x: Option<f64>| x.map(num).unwrap_or_else(|| "null".into());
    format!(
        "{{\"epoch\":{},\"train_loss\":{},\"train_acc\":{},\"val_loss\":{},\"val_acc\":{},\"test_loss\":{},\"test_acc\":{},\"seconds\":{},\"samples_per_sec\":{},\"step\":{},\"lr\":{}}}",
        m.epoch,
        num(m.train_loss),
        num(m.train_acc),
        opt(m.val_loss),
        opt(m.val_acc),
        opt(m.test_loss),
        opt(m.test_acc),
        num(m.seconds),
        num(m.samples_per_sec),
        m.step,
        num(m.lr)
    )
}

/// Where an informational line goes: stdout for text, stderr for json (whose stdout carries
/// only the epoch objects), nowhere when quiet.
pub fn info(format: LogFormat, quiet: bool, line: &str) {
    if quiet {
        return;
    }
    match format {
        LogFormat::Text => println!("{line}"),
        LogFormat::Json => eprintln!("{line}"),
    }
}
