//! The writer and reader together: what a run writes reads back; a torn tail is tolerated; a
//! resume cuts the file back to its checkpoint; `--force`'s removal takes only event files.

use super::proto::{Event, What};
use super::record::{frame, unframe};
use super::*;
use crate::core::metrics::EpochMetrics;
use crate::core::run_state::RunState;
use image::ImageEncoder;
use prost::Message;
use std::path::Path;

fn metrics(epoch: usize, with_test: bool) -> EpochMetrics {
    EpochMetrics {
        epoch,
        step: 10 * epoch as u64,
        lr: 0.5,
        train_loss: 1.0 / epoch as f64,
        train_acc: 0.5,
        val_loss: None,
        val_acc: None,
        test_loss: with_test.then_some(0.25),
        test_acc: with_test.then_some(0.75),
        seconds: 1.5,
        samples_per_sec: 1000.0,
    }
}

/// (tag, step, value) of every scalar in `dir`'s event file.
fn scalars(dir: &Path) -> Vec<(String, i64, f64)> {
    let path = find_event_file(dir).expect("an event file");
    read_scalars(&path, 1 << 20).unwrap().into_iter().map(|s| (s.tag, s.step, s.value)).collect()
}

fn steps_of(all: &[(String, i64, f64)], tag: &str) -> Vec<i64> {
    all.iter().filter(|s| s.0 == tag).map(|s| s.1).collect()
}

/// The tags of every summary in the file, in order ("" for the file version).
fn tags(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    unframe(&bytes)
        .records
        .iter()
        .flat_map(|r| match Event::decode(*r).unwrap().what {
            Some(What::Summary(s)) => s.value.into_iter().map(|v| v.tag).collect(),
            _ => vec![String::new()],
        })
        .collect()
}

#[test]
fn what_a_run_writes_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = EventWriter::create(dir.path()).unwrap();
    assert!(w.path().file_name().unwrap().to_str().unwrap().starts_with(FILE_PREFIX));
    w.running_loss(5, 0.75).unwrap();
    w.epoch(&metrics(1, false)).unwrap();
    w.running_loss(15, 0.5).unwrap();
    w.epoch(&metrics(2, true)).unwrap();
    let all = scalars(dir.path());
    assert_eq!(steps_of(&all, RUNNING_LOSS), [5, 15]);
    assert_eq!(steps_of(&all, "loss/train"), [1, 2]);
    // only what was measured: the test set's in epoch 2, no validation at all
    assert_eq!(steps_of(&all, "accuracy/test"), [2]);
    assert!(steps_of(&all, "loss/val").is_empty());
    let at = |tag: &str, step: i64| all.iter().find(|s| s.0 == tag && s.1 == step).unwrap().2;
    assert_eq!((at("loss/train", 2), at("lr", 1), at("samples_per_sec", 2)), (0.5, 0.5, 1000.0));
    assert_eq!(tags(w.path())[0], "", "the file version comes first");
}

#[test]
fn a_torn_or_corrupt_last_record_is_left_out_and_appending_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = EventWriter::create(dir.path()).unwrap();
    w.epoch(&metrics(1, true)).unwrap();
    let path = w.path().to_path_buf();
    drop(w);
    let whole = std::fs::read(&path).unwrap();
    let mut half = Vec::new();
    frame(&Event { wall_time: 0.0, step: 2, what: Some(What::FileVersion("x".into())) }.encode_to_vec(), &mut half);
    // half a record (a killed writer), then a whole one with a flipped bit
    let mut torn = whole.clone();
    torn.extend_from_slice(&half[..half.len() / 2]);
    std::fs::write(&path, &torn).unwrap();
    let n = scalars(dir.path()).len();
    assert_eq!(n, 7, "the epoch's seven scalars (no validation set), nothing of the torn record");
    let mut corrupt = whole.clone();
    half[14] ^= 4;
    corrupt.extend_from_slice(&half);
    std::fs::write(&path, &corrupt).unwrap();
    assert_eq!(scalars(dir.path()).len(), n);

    // appending first drops the torn tail, so what follows is readable
    std::fs::write(&path, &torn).unwrap();
    let mut w = EventWriter::append(dir.path()).unwrap();
    assert_eq!(w.path(), path);
    w.session_end(SessionStatus::Success).unwrap();
    assert_eq!(unframe(&std::fs::read(&path).unwrap()).valid_len, std::fs::read(&path).unwrap().len());
    assert_eq!(tags(&path).last().unwrap(), SESSION_END_TAG);
}

#[test]
fn a_resume_keeps_exactly_what_its_checkpoint_holds() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = EventWriter::create(dir.path()).unwrap();
    let start = SessionStart { group_name: "lr-0.1".into(), hparams: vec![("lr".into(), HParamValue::Number(0.1))] };
    w.session_start(&start).unwrap();
    for e in 1..=3 {
        w.running_loss(10 * e - 5, 1.0).unwrap();
        w.running_loss(10 * e, 1.0).unwrap();
        w.epoch(&metrics(e as usize, true)).unwrap();
    }
    let dir_path = dir.path().join("curves.png");
    std::fs::write(&dir_path, tiny_png()).unwrap();
    w.pictures(dir.path(), 3).unwrap();
    w.session_end(SessionStatus::Success).unwrap();
    let path = w.path().to_path_buf();
    drop(w);
    // half a record at the end, as a killed run leaves
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[1, 2, 3]);
    std::fs::write(&path, &bytes).unwrap();

    // the checkpoint: epoch 1 done, 5 steps into epoch 2
    let state = RunState { epoch: 1, step_in_epoch: 5, step: 15, history: vec![metrics(1, true)], ..Default::default() };
    let mut w = EventWriter::resume(dir.path(), &state).unwrap();
    assert_eq!(w.path(), path, "the same file goes on");
    assert!(w.session_started() && !w.session_ended());
    let all = scalars(dir.path());
    assert_eq!(steps_of(&all, "loss/train"), [1]);
    assert_eq!(steps_of(&all, RUNNING_LOSS), [5, 10, 15]);
    assert_eq!(tags(&path), ["", SESSION_START_TAG, RUNNING_LOSS, RUNNING_LOSS].into_iter().chain(EPOCH_TAGS.iter().copied().filter(|t| !t.ends_with("/val"))).chain([RUNNING_LOSS]).collect::<Vec<_>>());
    // the run goes on from there
    w.running_loss(20, 0.5).unwrap();
    w.epoch(&metrics(2, true)).unwrap();
    let all = scalars(dir.path());
    assert_eq!(steps_of(&all, "loss/train"), [1, 2]);
    assert_eq!(steps_of(&all, RUNNING_LOSS), [5, 10, 15, 20]);

    // a checkpoint whose last row is an epoch cut short (--max-steps): kept as metrics.csv
    // keeps it, then replaced when the continued epoch ends, never twice
    let cut = RunState { epoch: 2, step_in_epoch: 3, step: 23, history: vec![metrics(1, true), metrics(2, true), metrics(3, false)], ..Default::default() };
    let mut w = EventWriter::resume(dir.path(), &cut).unwrap();
    assert_eq!(steps_of(&scalars(dir.path()), "loss/train"), [1, 2, 3], "the missing row is written");
    let mut done = metrics(3, true);
    done.train_loss = 0.125;
    w.epoch(&done).unwrap();
    let all = scalars(dir.path());
    assert_eq!(steps_of(&all, "loss/train"), [1, 2, 3]);
    assert_eq!(all.iter().find(|s| s.0 == "loss/train" && s.1 == 3).unwrap().2, 0.125);
    assert_eq!(steps_of(&all, "accuracy/test"), [1, 2, 3]);
    // back to that checkpoint again: epoch 3 as the checkpoint has it, not as it ended
    drop(w);
    EventWriter::resume(dir.path(), &cut).unwrap();
    let all = scalars(dir.path());
    assert_eq!(steps_of(&all, "loss/train"), [1, 2, 3]);
    assert_eq!(all.iter().find(|s| s.0 == "loss/train" && s.1 == 3).unwrap().2, (1.0f64 / 3.0) as f32 as f64);
    assert!(steps_of(&all, "accuracy/test").len() == 2, "the cut-short row had no test set");

    // a run directory without an event file (an older gpu-nn's) gets one with its history
    let old = tempfile::tempdir().unwrap();
    EventWriter::resume(old.path(), &state).unwrap();
    assert_eq!(steps_of(&scalars(old.path()), "loss/train"), [1]);
}

/// A 1×1 grey PNG.
fn tiny_png() -> Vec<u8> {
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png).write_image(&[128], 1, 1, image::ExtendedColorType::L8).unwrap();
    png
}

#[test]
fn pictures_carry_their_size_and_anything_else_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = EventWriter::create(dir.path()).unwrap();
    std::fs::write(dir.path().join("curves.png"), tiny_png()).unwrap();
    assert!(w.picture(CURVES, 1, &dir.path().join("curves.png")).unwrap());
    assert!(!w.picture(CONFUSION, 1, &dir.path().join("confusion.png")).unwrap(), "no test set, no confusion matrix");
    std::fs::write(dir.path().join("bad.png"), b"not a png").unwrap();
    let err = w.picture(CURVES, 1, &dir.path().join("bad.png")).unwrap_err();
    assert!(format!("{err:#}").contains("bad.png"), "{err:#}");
    let bytes = std::fs::read(w.path()).unwrap();
    let records = unframe(&bytes).records;
    let Some(What::Summary(s)) = Event::decode(records[1]).unwrap().what else { panic!() };
    let Some(super::proto::ValueKind::Image(img)) = &s.value[0].value else { panic!() };
    assert_eq!((img.width, img.height, img.colorspace, &img.encoded_image_string), (1, 1, 1, &tiny_png()));
}

#[test]
fn the_reader_refuses_large_files_and_finds_only_regular_event_files() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(find_event_file(dir.path()), None);
    let w = EventWriter::create(dir.path()).unwrap();
    let len = std::fs::metadata(w.path()).unwrap().len();
    let err = read_scalars(w.path(), len - 1).unwrap_err();
    assert!(format!("{err:#}").contains(w.path().to_str().unwrap()), "{err:#}");
    assert!(read_scalars(w.path(), len).unwrap().is_empty());
    // a newer link, a directory and another file are not the run's event file
    std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
    std::fs::create_dir(dir.path().join(format!("{FILE_PREFIX}dir"))).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join(format!("{FILE_PREFIX}9999999999.link.1.0"))).unwrap();
    assert_eq!(find_event_file(dir.path()).as_deref(), Some(w.path()));
    assert_eq!(remove_event_files(dir.path()).unwrap(), 1 + cfg!(unix) as usize);
    assert!(dir.path().join("notes.txt").exists() && dir.path().join(format!("{FILE_PREFIX}dir")).is_dir());
    assert_eq!(find_event_file(dir.path()), None);
}
