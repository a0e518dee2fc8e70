//! Per-epoch metrics and their CSV form (`metrics.csv`).

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
