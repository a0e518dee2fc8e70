//! The classes of data of the user's own: the distinct labels of the training set, sorted, each
//! named by its text ("0", "7", "-1", "cat"); a sample's label is its class's index. A trained
//! model's classes (for `eval`) replace the training set's where given.

use anyhow::{Result, bail};
use std::fmt::Display;

/// Labels are bytes (`Dataset::labels`): at most this many classes.
pub const MAX_CLASSES: usize = 256;

/// A label as a file holds it: an integer (NumPy arrays, CSV tables) or a folder's name.
pub trait ClassKey: Ord + Clone + Display {
    /// The label a class name stands for; `None` where no label of this kind can be named so.
    fn from_name(name: &str) -> Option<Self>;
}

impl ClassKey for i64 {
    fn from_name(name: &str) -> Option<i64> {
        name.trim().parse().ok()
    }
}

impl ClassKey for String {
    fn from_name(name: &str) -> Option<String> {
        Some(name.to_string())
    }
}

/// Where the classes came from, which decides how a label outside them is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassOrigin {
    /// The training set's labels: only a test label can fall outside them.
    TrainingSet,
    /// A trained model's classes (`eval`).
    Model,
}

/// The classes of a set and the map from labels to class indices.
#[derive(Clone, Debug)]
pub struct Classes<K> {
    /// (label, class index), sorted by label, for binary search.
    lookup: Vec<(K, u8)>,
    names: Vec<String>,
    origin: ClassOrigin,
}

impl<K: ClassKey> Classes<K> {
    /// The model's classes where `given`, else the distinct `train_labels` (sorted). `source`
    /// names the training set in errors.
    pub fn new(given: Option<&[String]>, train_labels: &[K], source: &str) -> Result<Classes<K>> {
        match given {
            Some(names) => Self::given(names, source),
            None => Self::of_training(train_labels, source),
        }
    }

    /// The distinct labels of a training set, sorted, named by their text.
    pub fn of_training(labels: &[K], source: &str) -> Result<Classes<K>> {
        let mut keys: Vec<&K> = labels.iter().collect();
        keys.sort_unstable();
        keys.dedup();
        if keys.len() > MAX_CLASSES {
            bail!("{source}: {} distinct labels; at most {MAX_CLASSES} classes are supported (labels are bytes)", keys.len());
        }
        let lookup: Vec<(K, u8)> = keys.into_iter().enumerate().map(|(i, k)| (k.clone(), i as u8)).collect();
        let names = lookup.iter().map(|(k, _)| k.to_string()).collect();
        Ok(Classes { lookup, names, origin: ClassOrigin::TrainingSet })
    }

    /// A trained model's classes, in its order. A name that stands for no label of this kind
    /// (a folder's name against integer labels) matches no sample.
    pub fn given(names: &[String], source: &str) -> Result<Classes<K>> {
        if names.is_empty() || names.len() > MAX_CLASSES {
            bail!("{source}: the model has {} classes; expected 1 to {MAX_CLASSES}", names.len());
        }
        let mut lookup: Vec<(K, u8)> = names.iter().enumerate().filter_map(|(i, n)| Some((K::from_name(n)?, i as u8))).collect();
        // A stable sort keeps the first of two names for one label ("7" and "07").
        lookup.sort_by(|a, b| a.0.cmp(&b.0));
        lookup.dedup_by(|later, first| later.0 == first.0);
        Ok(Classes { lookup, names: names.to_vec(), origin: ClassOrigin::Model })
    }

    /// The class names, in index order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The class index of `label`, if it is one of the classes.
    pub fn index(&self, label: &K) -> Option<u8> {
        self.lookup.binary_search_by(|(k, _)| k.cmp(label)).ok().map(|i| self.lookup[i].1)
    }

    /// The class index of every label. `source` names the set and `at(i)` the place of label `i`
    /// ("row 12", "sample 11") in the error for a label outside the classes.
    pub fn map(&self, labels: &[K], source: &str, at: impl Fn(usize) -> String) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(labels.len());
        for (i, label) in labels.iter().enumerate() {
            match self.index(label) {
                Some(c) => out.push(c),
                None => bail!("{}", self.unknown(label, source, &at(i))),
            }
        }
        Ok(out)
    }

    /// The error line for `label`, found at `at` in `source`, outside the classes.
    pub fn unknown(&self, label: &K, source: &str, at: &str) -> String {
        let list = self.listing();
        match self.origin {
            ClassOrigin::TrainingSet => format!("{source}: class '{label}' ({at}) is in the test set but not in the training set (classes: {list})"),
            ClassOrigin::Model => format!("{source}: class '{label}' ({at}) is not one of the model's classes ({list})"),
        }
    }

    /// The class names for a message, the first 32 where there are more.
    fn listing(&self) -> String {
        const SHOWN: usize = 32;
        let mut s = self.names.iter().take(SHOWN).map(String::as_str).collect::<Vec<_>>().join(", ");
        if self.names.len() > SHOWN {
            s.push_str(&format!(", … ({} in all)", self.names.len()));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_sort_numerically_and_name_themselves() {
        let c = Classes::<i64>::of_training(&[7, -1, 10, 7, 2], "t.csv").unwrap();
        assert_eq!(c.names(), ["-1", "2", "7", "10"]);
        assert_eq!(c.map(&[10, -1, 2, 7], "t.csv", |i| format!("row {i}")).unwrap(), [3, 0, 1, 2]);
    }

    #[test]
    fn mnist_labels_are_their_own_indices() {
        let labels: Vec<i64> = (0..10).rev().collect();
        let c = Classes::of_training(&labels, "m").unwrap();
        assert_eq!(c.map(&labels, "m", |i| i.to_string()).unwrap(), (0..10u8).rev().collect::<Vec<_>>());
    }

    #[test]
    fn names_sort_as_strings() {
        let labels: Vec<String> = ["dog", "cat", "bird", "cat"].iter().map(|s| s.to_string()).collect();
        let c = Classes::of_training(&labels, "dir").unwrap();
        assert_eq!(c.names(), ["bird", "cat", "dog"]);
        assert_eq!(c.index(&"dog".to_string()), Some(2));
    }

    #[test]
    fn unknown_test_label_names_file_class_row_and_classes() {
        let c = Classes::<i64>::of_training(&[0, 1, 2], "train.csv").unwrap();
        let e = c.map(&[1, 9], "test.csv", |i| format!("row {}", i + 2)).unwrap_err().to_string();
        assert_eq!(e, "test.csv: class '9' (row 3) is in the test set but not in the training set (classes: 0, 1, 2)");
    }

    #[test]
    fn too_many_classes() {
        let labels: Vec<i64> = (0..257).collect();
        let e = Classes::of_training(&labels, "big.csv").unwrap_err().to_string();
        assert!(e.contains("big.csv") && e.contains("257") && e.contains("256"), "{e}");
        assert_eq!(Classes::of_training(&labels[..256], "ok").unwrap().len(), 256);
    }

    #[test]
    fn given_classes_map_in_the_models_order() {
        let given: Vec<String> = ["5", "3", "x"].iter().map(|s| s.to_string()).collect();
        let c = Classes::<i64>::new(Some(&given), &[0, 1], "t").unwrap();
        assert_eq!(c.names(), ["5", "3", "x"]);
        assert_eq!(c.map(&[3, 5], "t", |i| i.to_string()).unwrap(), [1, 0]);
        let e = c.map(&[4], "e.csv", |_| "row 2".into()).unwrap_err().to_string();
        assert_eq!(e, "e.csv: class '4' (row 2) is not one of the model's classes (5, 3, x)");
    }
}
