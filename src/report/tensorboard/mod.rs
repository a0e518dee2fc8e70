//! TensorBoard event files (`events.out.tfevents.*`) in every run directory, so that
//! `tensorboard --logdir` shows a run's curves, pictures and a sweep's HParams table: TFRecord
//! framing and the protobuf messages written by hand on `prost`'s derive and `crc32c`, because
//! no maintained crate writes TensorBoard events with the HParams plugin's summaries.
//!
//! - `record`: the TFRecord framing (length, masked CRC-32C, data, masked CRC-32C);
//! - `proto`: the messages, with their `.proto` field numbers;
//! - `event`: what a run's events hold, on two x axes (Keras's convention): each epoch's
//!   metrics at step = the epoch, the running loss at step = the optimiser steps of the run;
//! - `hparams`: a sweep's experiment and each cell's session start and end;
//! - `writer`: a run's file, appended to as it trains and continued by a resumed run;
//! - `reader`: the scalars back (the live dashboard), and which file of a directory is the run's.

mod event;
mod hparams;
mod proto;
mod reader;
mod record;
mod writer;

pub use event::{CONFUSION, CURVES, EPOCH_TAGS, FILE_VERSION, RUNNING_LOSS, TARGET_SECONDS, TARGET_STEP};
pub use hparams::{EXPERIMENT_TAG, HParamAxis, HParamValue, METRICS, SESSION_END_TAG, SESSION_START_TAG, SessionStart, SessionStatus, write_experiment};
pub use reader::{Scalar, find_event_file, read_scalars};
pub use writer::{EventWriter, remove_event_files};

/// How every event file's name starts (TensorFlow's pattern, which TensorBoard looks for).
pub const FILE_PREFIX: &str = "events.out.tfevents.";

#[cfg(test)]
mod tests;
