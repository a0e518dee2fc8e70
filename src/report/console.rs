//! How a command talks to the terminal: `--log-format text|json` and `--quiet`, held in one
//! `Console` that a command builds from its flags and hands down (lower layers that cannot see
//! it, the data loader and the GPU context, take its `quiet`).
//!
//! - text (default): a progress bar per epoch on stderr (samples/s, running loss, ETA) and one
//!   summary line per epoch on stdout;
//! - json: exactly one JSON object per epoch on stdout, with the fields of `metrics.csv`, and
//!   nothing else on stdout (notes go to stderr);
//! - `--quiet`: nothing at all except errors, whatever the format;
//! - `--verbose`: also how the run is computed (for the GPU: which kernels, and why).

use crate::core::metrics::EpochMetrics;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Progress bar and one human-readable line per epoch.
    #[default]
    Text,
    /// One JSON object per epoch on stdout (the metrics.csv fields), nothing else on stdout.
    Json,
}

/// Where a command's messages go: its `--log-format`, `--quiet` and `--verbose`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Console {
    pub format: LogFormat,
    pub quiet: bool,
    pub verbose: bool,
}

impl Console {
    pub fn new(format: LogFormat, quiet: bool) -> Console {
        Console { format, quiet, verbose: false }
    }

    /// The same, also printing how the run is computed when `verbose` (and not quiet).
    pub fn with_verbose(self, verbose: bool) -> Console {
        Console { verbose: verbose && !self.quiet, ..self }
    }

    /// Text output, nothing suppressed.
    pub fn text() -> Console {
        Console::default()
    }

    /// Text output that prints nothing but errors.
    pub fn quiet() -> Console {
        Console { format: LogFormat::Text, quiet: true, verbose: false }
    }

    /// An informational line: stdout for text, stderr for json (whose stdout carries only the
    /// epoch objects), nowhere when quiet.
    pub fn info(&self, line: &str) {
        if self.quiet {
            return;
        }
        match self.format {
            LogFormat::Text => println!("{line}"),
            LogFormat::Json => eprintln!("{line}"),
        }
    }

    /// A note about how the command runs (a fallback, a slow adapter): stderr, unless quiet.
    pub fn note(&self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    /// The line of a finished epoch: its summary (text) or its JSON object; nothing when quiet.
    pub fn epoch(&self, m: &EpochMetrics, epochs: usize) {
        if self.quiet {
            return;
        }
        match self.format {
            LogFormat::Text => println!("{}", m.summary(epochs)),
            LogFormat::Json => println!("{}", epoch_json(m)),
        }
    }
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
