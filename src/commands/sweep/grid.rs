//! A sweep's grid: the flags given several values (the axes), lifted off the command line
//! before clap sees it; their product (the cells) in a fixed order; and the names a cell, a
//! table row and a picture go by.
//!
//! A value holding commas is a list of alternatives (`--lr 0.1,0.5`, `--seed 1,2,3`,
//! `--optimizer sgd,adam`); for `--layers`, `--hidden`, `--activation` and `--dropout`, whose single
//! value is itself a comma list, alternatives are separated by `/` (`--layers 784,32,10/784,64,10`,
//! `--dropout 0/0.5`). A flag given
//! twice lists both values. A switch varies as `--standardize=false,true`.

use anyhow::{Result, bail};
use clap::{Args, ArgAction};
use serde::{Deserialize, Serialize};

use crate::commands::config_args::ConfigArgs;
use crate::report::tensorboard::{HParamAxis, HParamValue, SessionStart};

/// The most cells a sweep runs unless `--max-cells` allows more.
pub const MAX_CELLS: usize = 10_000;

/// One flag and its alternatives as typed: `--lr 0.1,0.5` → `Axis { flag: "lr", values: ["0.1", "0.5"] }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Axis {
    /// The long flag, without `--`.
    pub flag: String,
    pub values: Vec<String>,
    /// A switch (`--standardize`): its values are `true` and `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub switch: bool,
}

/// Flags whose one value is a comma list: their alternatives are separated by `/`.
const LIST_VALUED: [&str; 4] = ["layers", "hidden", "activation", "dropout"];

impl Axis {
    /// What tables, CSV columns and file names call it: `batch` for `--batch-size` (doc 003's
    /// tables), the flag otherwise.
    pub fn name(&self) -> &str {
        if self.flag == "batch-size" { "batch" } else { &self.flag }
    }

    /// Its CSV column: `batch_size`, `lr`, `weight_decay`, …
    pub fn column(&self) -> String {
        self.flag.replace('-', "_")
    }

    /// The flags that give a cell its value `v` of this axis.
    pub fn tokens(&self, v: &str) -> Vec<String> {
        match (self.switch, v) {
            (true, "true") => vec![format!("--{}", self.flag)],
            (true, _) => vec![],
            (false, _) => vec![format!("--{}={v}", self.flag)],
        }
    }
}

/// The learning rate and batch size as the tables print them (`0.50` → `0.5`, ` full`); other
/// values as typed.
pub fn label(flag: &str, value: &str) -> String {
    match flag {
        "lr" => value.trim().parse::<f64>().map(|x| format!("{x}")).unwrap_or_else(|_| value.to_string()),
        "batch-size" => value.trim().parse::<crate::core::config::BatchSize>().map(|b| b.to_string()).unwrap_or_else(|_| value.to_string()),
        _ => value.to_string(),
    }
}

/// A value made safe for a file name: `784,32,10` → `784-32-10`, `step:10:0.5` → `step-10-0.5`.
pub fn file_safe(value: &str) -> String {
    value.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-') { c } else { '-' }).collect()
}

/// Takes the axes off a sweep's arguments (everything after `sweep`): every configuration flag
/// given more than one value. Returns the arguments left, which clap then parses as usual, and
/// the axes in the order of their first appearance.
pub fn lift_axes(tokens: &[String]) -> Result<(Vec<String>, Vec<Axis>)> {
    let cmd = ConfigArgs::augment_args(clap::Command::new("sweep"));
    // per flag: its alternatives and the positions of the tokens that gave them
    let mut found: Vec<(Axis, Vec<usize>)> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let tok = &tokens[i];
        if tok == "--" {
            break;
        }
        let Some(body) = tok.strip_prefix("--") else {
            i += 1;
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some(arg) = cmd.get_arguments().find(|a| a.get_long() == Some(name)) else {
            i += 1; // a sweep flag (its value, if any, is never a configuration flag)
            continue;
        };
        let switch = matches!(arg.get_action(), ArgAction::SetTrue);
        let optional_value = arg.get_num_args().is_some_and(|r| r.min_values() == 0) && !switch;
        let mut used = vec![i];
        let value = match inline {
            Some(v) => Some(v),
            None if switch => None,
            None => match tokens.get(i + 1) {
                Some(next) if !(optional_value && next.starts_with("--")) => {
                    used.push(i + 1);
                    Some(next.clone())
                }
                _ => None,
            },
        };
        i = used[used.len() - 1] + 1;
        let Some(value) = value else { continue };
        let sep = if LIST_VALUED.contains(&name) { '/' } else { ',' };
        if switch && !value.contains(sep) {
            continue; // `--stream=true`: clap's to judge
        }
        let values: Vec<String> = value.split(sep).map(|v| v.trim().to_string()).collect();
        if values.iter().any(|v| v.is_empty()) {
            bail!("--{name} {value}: an empty value in the list (values are separated by '{sep}')");
        }
        if switch {
            if let Some(bad) = values.iter().find(|v| !matches!(v.as_str(), "true" | "false")) {
                bail!("--{name}={value}: a switch in a sweep takes true and false, got '{bad}'");
            }
        }
        match found.iter_mut().find(|(a, _)| a.flag == name) {
            Some((a, at)) => {
                a.values.extend(values);
                at.extend(used);
            }
            None => found.push((Axis { flag: name.to_string(), values, switch }, used)),
        }
    }
    let mut lifted = vec![false; tokens.len()];
    let mut axes = Vec::new();
    for (axis, at) in found {
        if axis.values.len() > 1 {
            at.iter().for_each(|&k| lifted[k] = true);
            axes.push(axis);
        }
    }
    let rest = tokens.iter().zip(&lifted).filter(|(_, l)| !**l).map(|(t, _)| t.clone()).collect();
    Ok((rest, axes))
}

/// The grid: its axes in table order, the row axes first and the column axis last. Cell `k`
/// is the mixed-radix number `k` over the axes, the last axis counting fastest (row-major
/// tables).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub axes: Vec<Axis>,
}

impl Grid {
    /// Lays out the lifted axes: the columns are the learning rates when they vary (or when
    /// nothing but the batch size does), else the last axis given; the rows are the other
    /// axes, the batch size first, or the batch size alone when nothing else varies. So a
    /// batch × lr sweep has doc 003's tables whatever the order of its flags; `base_batch` and
    /// `base_lr` fill in a table dimension that does not vary.
    pub fn lay_out(lifted: &[Axis], base_batch: &str, base_lr: &str) -> Grid {
        let find = |flag: &str| lifted.iter().find(|a| a.flag == flag).cloned();
        let constant = |flag: &str, v: &str| Axis { flag: flag.into(), values: vec![v.into()], switch: false };
        let column = if find("lr").is_some() || lifted.iter().all(|a| a.flag == "batch-size") {
            find("lr").unwrap_or_else(|| constant("lr", base_lr))
        } else {
            lifted.last().unwrap().clone()
        };
        let mut rows: Vec<Axis> = find("batch-size").filter(|_| column.flag != "batch-size").into_iter().collect();
        rows.extend(lifted.iter().filter(|a| a.flag != "batch-size" && a.flag != column.flag).cloned());
        if rows.is_empty() {
            rows.push(constant("batch-size", base_batch));
        }
        rows.push(column);
        Grid { axes: rows }
    }

    /// The cells: the product of the axes' lengths (`check` has bounded it).
    pub fn len(&self) -> usize {
        self.axes.iter().map(|a| a.values.len()).product()
    }

    /// The cells, counted with checked arithmetic; None past `usize`.
    fn checked_len(&self) -> Option<usize> {
        self.axes.iter().try_fold(1usize, |n, a| n.checked_mul(a.values.len()))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The column axis.
    pub fn column(&self) -> &Axis {
        self.axes.last().unwrap()
    }

    /// The row axes.
    pub fn row_axes(&self) -> &[Axis] {
        &self.axes[..self.axes.len() - 1]
    }

    /// Number of table rows (combinations of the row axes).
    pub fn rows(&self) -> usize {
        self.row_axes().iter().map(|a| a.values.len()).product()
    }

    /// Index of each axis' value in cell `k`.
    pub fn coordinates(&self, mut k: usize) -> Vec<usize> {
        let mut at = vec![0; self.axes.len()];
        for (i, a) in self.axes.iter().enumerate().rev() {
            at[i] = k % a.values.len();
            k /= a.values.len();
        }
        at
    }

    /// The typed values of cell `k`, one per axis.
    pub fn values(&self, k: usize) -> Vec<String> {
        self.coordinates(k).iter().zip(&self.axes).map(|(&i, a)| a.values[i].clone()).collect()
    }

    /// The flags that make cell `k` (only those of axes with several values: a constant table
    /// dimension comes from the other flags already).
    pub fn tokens(&self, k: usize) -> Vec<String> {
        self.coordinates(k).iter().zip(&self.axes).filter(|(_, a)| a.values.len() > 1).flat_map(|(&i, a)| a.tokens(&a.values[i])).collect()
    }

    /// "batch 20, lr 0.9, seed 1": cell `k` in progress lines.
    pub fn describe(&self, k: usize) -> String {
        self.values(k).iter().zip(&self.axes).map(|(v, a)| format!("{} {}", a.name(), label(&a.flag, v))).collect::<Vec<_>>().join(", ")
    }

    /// The directory name of cell `k` under `DIR/cells/`: `batch-20-lr-0.9`, `batch-20-seed-1`.
    pub fn cell_name(&self, k: usize) -> String {
        self.values(k).iter().zip(&self.axes).map(|(v, a)| format!("{}-{}", a.name(), file_safe(&label(&a.flag, v)))).collect::<Vec<_>>().join("-")
    }

    /// The axes as TensorBoard's HParams experiment lists them: by `Axis::name`, numbers where
    /// every value of the axis is one.
    pub fn hparam_axes(&self) -> Vec<HParamAxis> {
        self.axes.iter().map(|a| HParamAxis { name: a.name().to_string(), values: HParamValue::typed(&a.values) }).collect()
    }

    /// Cell `k` as TensorBoard's HParams table shows it: its directory name and its value of
    /// every axis, typed as `hparam_axes` types the axis.
    pub fn session_start(&self, k: usize) -> SessionStart {
        let hparams = self.coordinates(k).iter().zip(self.hparam_axes()).map(|(&i, a)| (a.name, a.values[i].clone())).collect();
        SessionStart { group_name: self.cell_name(k), hparams }
    }

    /// Table row `r`'s label (`20`, or `20, 1` with two row axes) and picture name
    /// (`curves-batch-20`, `curves-batch-20-seed-1`).
    pub fn row_label(&self, r: usize) -> String {
        self.row_values(r).iter().zip(self.row_axes()).map(|(v, a)| label(&a.flag, v)).collect::<Vec<_>>().join(", ")
    }

    /// "batch 20, seed 1": table row `r` in titles.
    pub fn row_describe(&self, r: usize) -> String {
        self.row_values(r).iter().zip(self.row_axes()).map(|(v, a)| format!("{} {}", a.name(), label(&a.flag, v))).collect::<Vec<_>>().join(", ")
    }

    pub fn row_picture_stem(&self, r: usize) -> String {
        let parts: Vec<String> = self.row_values(r).iter().zip(self.row_axes()).map(|(v, a)| format!("{}-{}", a.name(), file_safe(&label(&a.flag, v)))).collect();
        format!("curves-{}", parts.join("-"))
    }

    fn row_values(&self, r: usize) -> Vec<String> {
        let mut v = self.values(r * self.column().values.len());
        v.pop();
        v
    }

    /// Checks that no axis lists a value twice (as the tables print it) and that no two cells
    /// share a directory name.
    /// Checks the grid before anything is sized by it: at most `max_cells` cells, no value
    /// twice, no two cells sharing a directory.
    pub fn check(&self, max_cells: usize) -> Result<()> {
        let shape = self.axes.iter().map(|a| format!("{} {}", a.values.len(), a.name())).collect::<Vec<_>>().join(" × ");
        match self.checked_len() {
            Some(n) if n <= max_cells => {}
            Some(n) => bail!("the grid ({shape}) has {n} cells, more than --max-cells {max_cells}; give fewer values, or a larger --max-cells to run it"),
            None => bail!("the grid ({shape}) has more cells than can be counted; give fewer values"),
        }
        for a in &self.axes {
            for (i, v) in a.values.iter().enumerate() {
                if a.values[..i].iter().any(|w| label(&a.flag, w) == label(&a.flag, v)) {
                    bail!("--{} lists {} twice", a.flag, label(&a.flag, v));
                }
            }
        }
        let mut names: Vec<String> = (0..self.len()).map(|k| self.cell_name(k)).collect();
        names.sort();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            bail!("two cells of the grid would share the directory cells/{}; give values that differ in letters or digits", w[0]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn lists_become_axes_and_single_values_stay() {
        let (rest, axes) = lift_axes(&toks("--preset seed003 --lr 0.1,0.5 --out a,b --layers 784,32,10/784,64,10 --seed 7 --seed=8 --standardize=false,true --epochs 1")).unwrap();
        assert_eq!(rest, toks("--preset seed003 --out a,b --epochs 1"));
        let got: Vec<(&str, Vec<&str>, bool)> = axes.iter().map(|a| (a.flag.as_str(), a.values.iter().map(String::as_str).collect(), a.switch)).collect();
        assert_eq!(
            got,
            [
                ("lr", vec!["0.1", "0.5"], false),
                ("layers", vec!["784,32,10", "784,64,10"], false),
                ("seed", vec!["7", "8"], false),
                ("standardize", vec!["false", "true"], true)
            ]
        );
        let (rest, axes) = lift_axes(&toks("--layers 784,32,10 --kernels --lr 0.5")).unwrap();
        assert_eq!((rest, axes.len()), (toks("--layers 784,32,10 --kernels --lr 0.5"), 0));
        assert!(lift_axes(&toks("--lr 0.1,")).unwrap_err().to_string().contains("empty value"));
        assert!(lift_axes(&toks("--stream=yes,no")).unwrap_err().to_string().contains("true and false"));
    }

    #[test]
    fn batch_by_lr_keeps_doc_003s_layout_and_other_axes_name_themselves() {
        let ax = |f: &str, v: &[&str]| Axis { flag: f.into(), values: v.iter().map(|s| s.to_string()).collect(), switch: false };
        // lr given first: still rows = batch sizes, columns = learning rates
        let g = Grid::lay_out(&[ax("lr", &["0.9", "4"]), ax("batch-size", &["15", "40"])], "20", "0.9");
        assert_eq!(g.axes.iter().map(|a| a.flag.as_str()).collect::<Vec<_>>(), ["batch-size", "lr"]);
        assert_eq!((0..4).map(|k| g.cell_name(k)).collect::<Vec<_>>(), ["batch-15-lr-0.9", "batch-15-lr-4", "batch-40-lr-0.9", "batch-40-lr-4"]);
        assert_eq!((g.row_label(1), g.row_picture_stem(1)), ("40".to_string(), "curves-batch-40".to_string()));
        // nothing varies: a 1 × 1 table of the configuration's batch size and learning rate
        let g = Grid::lay_out(&[], "full", "0.5");
        assert_eq!((g.len(), g.cell_name(0)), (1, "batch-full-lr-0.5".to_string()));
        assert!(g.tokens(0).is_empty());
        // seeds × layers: columns = the last axis given, rows = the other
        let g = Grid::lay_out(&[ax("seed", &["1", "2", "3"]), ax("layers", &["784,32,10", "784,64,10"])], "20", "0.9");
        assert_eq!(g.axes.iter().map(|a| a.flag.as_str()).collect::<Vec<_>>(), ["seed", "layers"]);
        assert_eq!(g.len(), 6);
        assert_eq!(g.cell_name(3), "seed-2-layers-784-64-10");
        assert_eq!(g.tokens(3), ["--seed=2", "--layers=784,64,10"]);
        assert_eq!(g.describe(3), "seed 2, layers 784,64,10");
        assert_eq!(g.row_picture_stem(2), "curves-seed-3");
        // a repeated value is refused as the tables would print it
        let g = Grid::lay_out(&[ax("lr", &["0.5", "0.50"])], "20", "0.9");
        assert!(g.check(MAX_CELLS).unwrap_err().to_string().contains("--lr lists 0.5 twice"));
    }
}
