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

/// Names of the classes of a run's model: those its data named (`model.classes`), else those
/// of its dataset and task.
pub fn names_of(cfg: &Config, classes: usize) -> Vec<String> {
    if cfg.model.classes.len() == classes {
        return cfg.model.classes.clone();
    }
    class_names(cfg.data.dataset, cfg.data.task, classes)
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
        let names = names_of(cfg, data.num_classes);
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

    /// `confusion.csv`: a header `true_class,pred_NAME,…`, then one row per true class with its
    /// name first (MNIST's names are its digits: `pred_0`, row `0`); quoted where a name needs it.
    pub fn to_csv(&self) -> String {
        let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
        let head = std::iter::once("true_class".to_string()).chain(self.names.iter().map(|n| format!("pred_{n}")));
        // writing into memory cannot fail
        w.write_record(head).expect("in memory");
        for i in 0..self.classes {
            let row = std::iter::once(self.names[i].clone()).chain((0..self.classes).map(|j| self.get(i, j).to_string()));
            w.write_record(row).expect("in memory");
        }
        String::from_utf8(w.into_inner().expect("in memory")).expect("names are text")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_names_the_classes_and_quotes_where_needed() {
        let c = Confusion::new(&[0, 1, 1, 2], &[0, 1, 2, 2], 3, vec!["0".into(), "a, b".into(), "say \"c\"".into()]).unwrap();
        assert_eq!(c.to_csv(), "true_class,pred_0,\"pred_a, b\",\"pred_say \"\"c\"\"\"\n0,1,0,0\n\"a, b\",0,1,1\n\"say \"\"c\"\"\",0,0,1\n");
    }
}
