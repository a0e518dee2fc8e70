//! What gpu-nn's events hold, on Keras's two x axes: an epoch's metrics at step = the epoch
//! (metrics.csv's `epoch`), the running loss at step = the optimiser steps taken in the run;
//! the pictures at the last epoch; and which axis a tag is on, for cutting a file back to a
//! checkpoint.

use super::proto::{Image, Summary, SummaryValue, ValueKind};
use crate::core::metrics::EpochMetrics;

/// The first record of every event file.
pub const FILE_VERSION: &str = "brain.Event:2";

/// The mean loss of the epoch so far, at every progress update.
pub const RUNNING_LOSS: &str = "running/loss";

/// The per-epoch scalars.
pub const EPOCH_TAGS: [&str; 9] = ["loss/train", "accuracy/train", "loss/val", "accuracy/val", "loss/test", "accuracy/test", "lr", "samples_per_sec", "seconds"];

/// When a run reached `training.target_acc`: the seconds (the epochs' summed) and the
/// optimiser step, at step = that epoch.
pub const TARGET_SECONDS: &str = "target/reached_seconds";
pub const TARGET_STEP: &str = "target/reached_step";

/// The pictures, as image summaries.
pub const CURVES: &str = "curves";
pub const CONFUSION: &str = "confusion";

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

pub(super) fn scalar(tag: &str, value: f64) -> SummaryValue {
    SummaryValue { tag: tag.to_string(), metadata: None, value: Some(ValueKind::SimpleValue(value as f32)) }
}

/// The epoch's scalars: those measured (a run without a validation or test set has none of its
/// losses), in `EPOCH_TAGS` order.
pub(super) fn epoch_summary(m: &EpochMetrics) -> Summary {
    let values = [Some(m.train_loss), Some(m.train_acc), m.val_loss, m.val_acc, m.test_loss, m.test_acc, Some(m.lr), Some(m.samples_per_sec), Some(m.seconds)];
    Summary { value: EPOCH_TAGS.iter().zip(values).filter_map(|(tag, v)| v.map(|v| scalar(tag, v))).collect() }
}

/// A PNG as an image summary, its size and colour space read from its header; `None` when the
/// bytes are not a PNG.
pub(super) fn png(tag: &str, bytes: Vec<u8>) -> Option<SummaryValue> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    // the signature, then IHDR first: length, "IHDR", width, height, bit depth, colour type
    let header = bytes.get(..26).filter(|h| h.starts_with(SIGNATURE) && &h[12..16] == b"IHDR")?;
    let be = |at: usize| i32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    let (width, height) = (be(16), be(20));
    let colorspace = match header[25] {
        0 => 1, // grey
        4 => 2, // grey + alpha
        2 | 3 => 3, // RGB, palette
        6 => 4, // RGBA
        _ => return None,
    };
    let image = Image { height, width, colorspace, encoded_image_string: bytes };
    Some(SummaryValue { tag: tag.to_string(), metadata: None, value: Some(ValueKind::Image(image)) })
}

/// Which x axis a tag is on, for cutting a file back to where a checkpoint stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Axis {
    /// Step = the epoch.
    Epoch,
    /// Step = the optimiser steps of the run.
    Step,
    /// Written once when a sweep cell starts; kept.
    SessionStart,
    /// What a run writes when it ends (its pictures, its target, its end status), and anything else: a
    /// resumed run has not ended, so these go.
    End,
}

pub(super) fn axis(tag: &str) -> Axis {
    if EPOCH_TAGS.contains(&tag) {
        Axis::Epoch
    } else if tag == RUNNING_LOSS {
        Axis::Step
    } else if tag == super::hparams::SESSION_START_TAG {
        Axis::SessionStart
    } else {
        Axis::End
    }
}
