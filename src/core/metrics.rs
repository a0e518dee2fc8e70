//! Per-epoch metrics and their CSV form (`metrics.csv`), and when a run reached its target
//! accuracy (`TargetReached`, read from the metrics so a resumed run finds it the same).

use serde::{Deserialize, Serialize};

/// One row of `metrics.csv`. Accuracies are fractions in [0, 1]; `None` = not measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    /// Optimiser steps taken so far in the run.
    pub step: u64,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: Option<f64>,
    pub val_acc: Option<f64>,
    pub test_loss: Option<f64>,
    pub test_acc: Option<f64>,
    /// Wall time of the epoch: training plus evaluation.
    pub seconds: f64,
    /// Training samples per second (training time only).
    pub samples_per_sec: f64,
}

pub const CSV_HEADER: &str = "epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,seconds,samples_per_sec,step,lr";

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

impl EpochMetrics {
    pub fn csv_row(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{:.4},{:.1},{},{}",
            self.epoch,
            self.train_loss,
            self.train_acc,
            opt(self.val_loss),
            opt(self.val_acc),
            opt(self.test_loss),
            opt(self.test_acc),
            self.seconds,
            self.samples_per_sec,
            self.step,
            self.lr
        )
    }

    /// The one-line summary printed after each epoch.
    pub fn summary(&self, epochs: usize) -> String {
        let mut s = format!(
            "epoch {:>3}/{epochs}  train loss {:.5} acc {:6.2}%",
            self.epoch,
            self.train_loss,
            100.0 * self.train_acc
        );
        if let (Some(l), Some(a)) = (self.val_loss, self.val_acc) {
            s += &format!("  val loss {l:.5} acc {:6.2}%", 100.0 * a);
        }
        if let (Some(l), Some(a)) = (self.test_loss, self.test_acc) {
            s += &format!("  test loss {l:.5} acc {:6.2}%", 100.0 * a);
        }
        s += &format!("  {:.2} s  {:.0} samples/s", self.seconds, self.samples_per_sec);
        s
    }
}

pub fn to_csv(rows: &[EpochMetrics]) -> String {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for r in rows {
        s += &r.csv_row();
        s.push('\n');
    }
    s
}

/// The split `training.target_acc` is measured on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetSplit {
    Val,
    Test,
}

impl TargetSplit {
    pub fn name(self) -> &'static str {
        match self {
            TargetSplit::Val => "validation",
            TargetSplit::Test => "test",
        }
    }
    /// The epoch's accuracy on this split, if measured.
    pub fn accuracy(self, m: &EpochMetrics) -> Option<f64> {
        match self {
            TargetSplit::Val => m.val_acc,
            TargetSplit::Test => m.test_acc,
        }
    }
}

/// The first epoch whose accuracy reached the target.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetReached {
    pub target: f64,
    pub split: TargetSplit,
    /// 1-based, as metrics.csv's `epoch`.
    pub epoch: usize,
    /// Optimiser steps taken in the run when it was measured.
    pub step: u64,
    /// The epochs' `seconds` summed up to it (training and evaluation, the clock metrics.csv
    /// uses; a resumed run's earlier epochs included).
    pub seconds: f64,
    pub accuracy: f64,
}

/// Where `history` first reaches `target` on `split`, if it does.
pub fn target_reached(history: &[EpochMetrics], target: f64, split: TargetSplit) -> Option<TargetReached> {
    let mut seconds = 0.0;
    for m in history {
        seconds += m.seconds;
        if let Some(a) = split.accuracy(m).filter(|&a| a >= target) {
            return Some(TargetReached { target, split, epoch: m.epoch, step: m.step, seconds, accuracy: a });
        }
    }
    None
}

/// The line `train` prints at the end of a run with a target: when it was reached, or plainly
/// that it was not and the best accuracy instead.
pub fn target_line(history: &[EpochMetrics], target: f64, split: TargetSplit) -> String {
    match target_reached(history, target, split) {
        Some(t) => format!(
            "target reached: {} accuracy {:.2} % ≥ {:.2} % after epoch {}, step {}, {:.2} s",
            split.name(),
            100.0 * t.accuracy,
            100.0 * target,
            t.epoch,
            t.step,
            t.seconds
        ),
        None => {
            let best = history.iter().filter_map(|m| split.accuracy(m).map(|a| (a, m.epoch))).fold(None, |b: Option<(f64, usize)>, (a, e)| {
                if b.is_none_or(|(x, _)| a > x) { Some((a, e)) } else { b }
            });
            let best = best.map(|(a, e)| format!("; the best was {:.2} % after epoch {e}", 100.0 * a)).unwrap_or_default();
            format!("target not reached: the {} accuracy never reached {:.2} % in {} epoch(s){best}", split.name(), 100.0 * target, history.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: usize, val_acc: Option<f64>, test_acc: Option<f64>) -> EpochMetrics {
        EpochMetrics {
            epoch,
            step: 100 * epoch as u64,
            lr: 0.1,
            train_loss: 0.5,
            train_acc: 0.9,
            val_loss: val_acc.map(|_| 0.3),
            val_acc,
            test_loss: test_acc.map(|_| 0.3),
            test_acc,
            seconds: 1.5,
            samples_per_sec: 1.0,
        }
    }

    #[test]
    fn the_target_is_the_first_epoch_at_or_above_it_on_its_split() {
        let h = [row(1, Some(0.95), Some(0.99)), row(2, Some(0.98), Some(0.97)), row(3, Some(0.99), Some(0.99))];
        let t = target_reached(&h, 0.98, TargetSplit::Val).unwrap();
        assert_eq!((t.epoch, t.step, t.seconds, t.accuracy), (2, 200, 3.0, 0.98));
        let t = target_reached(&h, 0.99, TargetSplit::Test).unwrap();
        assert_eq!((t.epoch, t.step, t.seconds), (1, 100, 1.5));
        assert_eq!(target_reached(&h, 0.995, TargetSplit::Val), None);
        assert!(target_line(&h, 0.995, TargetSplit::Val).starts_with("target not reached: the validation accuracy never reached 99.50 % in 3 epoch(s); the best was 99.00 % after epoch 3"));
        assert_eq!(target_line(&h, 0.98, TargetSplit::Val), "target reached: validation accuracy 98.00 % ≥ 98.00 % after epoch 2, step 200, 3.00 s");
        // a run without the split never reaches it
        assert_eq!(target_reached(&[row(1, None, Some(1.0))], 0.5, TargetSplit::Val), None);
    }
}
