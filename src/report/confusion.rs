//! Confusion matrices: K×K counts, rows = true class, columns = predicted class, for any number
//! of classes (10 for MNIST, 2 for a binary `digit D vs all` task).

use crate::nn::backend::EvalResult;
use crate::core::config::Config;
use crate::data::{Dataset, DatasetName, Task};
use anyhow::{Result, bail};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confusion {
    pub classes: usize,
    /// Row-major `[true][predicted]`.
    pub counts: Vec<u64>,
    /// Display name of each class ("0".."9", "not 3"/"3", "Trouser", ...).
    pub names: Vec<String>,
}

/// Names of the classes of a dataset and task.
pub fn class_names(dataset: DatasetName, task: Task, classes: usize) -> Vec<String> {
    if let Task::Binary(d) = task {
        if classes == 2 {
            let digit = class_names(dataset, Task::Classify, 10).get(d as usize).cloned().unwrap_or_else(|| d.to_string());
            return vec![format!("not {digit}"), digit];
        }
    }
    let named: &[&str] = match dataset {
        DatasetName::FashionMnist => &["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"],
        DatasetName::Kmnist => &["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
        _ => &[],
    };
    (0..classes).map(|i| named.get(i).map(|s| s.to_string()).unwrap_or_else(|| i.to_string())).collect()
}

impl Confusion {
    /// Counts `(labels[i], predictions[i])` pairs over `classes` classes.
    pub fn new(labels: &[u8], predictions: &[u8], classes: usize, names: Vec<String>) -> Result<Confusion> {
        if labels.len() != predictions.len() {
            bail!("confusion matrix: {} labels but {} predictions", labels.len(), predictions.len());
        }
        if names.len() != classes {
            bail!("confusion matrix: {} class names for {classes} classes", names.len());
        }
        let mut counts = vec![0u64; classes * classes];
        for (&t, &p) in labels.iter().zip(predictions) {
            let (t, p) = (t as usize, p as usize);
            if t >= classes || p >= classes {
                bail!("confusion matrix: class {} is outside the {classes} classes", t.max(p));
            }
            counts[t * classes + p] += 1;
        }
        Ok(Confusion { classes, counts, names })
    }

    /// The matrix of an evaluation of `data` (whose labels it compares against).
    pub fn of_eval(cfg: &Config, data: &Dataset, eval: &EvalResult) -> Result<Confusion> {
        let names = class_names(cfg.data.dataset, cfg.data.task, data.num_classes);
        Confusion::new(&data.labels, &eval.predictions, data.num_classes, names)
    }

    pub fn get(&self, true_class: usize, predicted: usize) -> u64 {
        self.counts[true_class * self.classes + predicted]
    }
    /// Samples whose true class is `i`.
    pub fn row_total(&self, i: usize) -> u64 {
        (0..self.classes).map(|j| self.get(i, j)).sum()
    }
    /// Samples predicted as `j`.
    pub fn column_total(&self, j: usize) -> u64 {
        (0..self.classes).map(|i| self.get(i, j)).sum()
    }
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
    /// Correctly classified samples (the diagonal).
    pub fn trace(&self) -> u64 {
        (0..self.classes).map(|i| self.get(i, i)).sum()
    }
    pub fn accuracy(&self) -> f64 {
        self.trace() as f64 / self.total().max(1) as f64
    }

    /// `confusion.csv`: a header `true_class,pred_0,…`, then one row per true class with its
    /// class index first.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("true_class");
        for j in 0..self.classes {
            s += &format!(",pred_{j}");
        }
        s.push('\n');
        for i in 0..self.classes {
            s += &i.to_string();
            for j in 0..self.classes {
                s += &format!(",{}", self.get(i, j));
            }
            s.push('\n');
        }
        s
    }

    /// The matrix as an aligned text table (rows true, columns predicted) with per-class recall.
    pub fn to_table(&self) -> String {
        let w = self.names.iter().map(|n| n.len()).chain(self.counts.iter().map(|c| c.to_string().len())).max().unwrap_or(1).max(4);
        let first = self.names.iter().map(|n| n.len()).max().unwrap_or(1).max("true\\pred".len());
        let mut s = format!("{:>first$}", "true\\pred");
        for n in &self.names {
            s += &format!(" {n:>w$}");
        }
        s += "   recall\n";
        for i in 0..self.classes {
            s += &format!("{:>first$}", self.names[i]);
            for j in 0..self.classes {
                s += &format!(" {:>w$}", self.get(i, j));
            }
            s += &format!("  {:6.2} %\n", 100.0 * self.get(i, i) as f64 / self.row_total(i).max(1) as f64);
        }
        s
    }
}
