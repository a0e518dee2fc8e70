//! Data of the user's own, found by what `--data` points at: a NumPy archive (`.npz`, Keras's
//! keys), a CSV table, or a folder of labelled pictures (`ImageFolder`'s layout). Each becomes
//! the same `Dataset`s as an IDX set, with its class names.

use super::Dataset;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The layouts `--data` can point at besides a directory of IDX files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileFormat {
    /// `FILE.npz` with `x_train`, `y_train` (and optionally `x_test`, `y_test`).
    Npz,
    /// A CSV table: numeric features and an integer label column.
    Csv,
    /// `DIR/train/CLASS/*.png|jpg` (and optionally `DIR/test/CLASS/…`).
    ImageFolder,
}

impl FileFormat {
    /// What `path` holds, by its name and kind: `*.npz` → Npz, `*.csv` or any other existing
    /// file → Csv, a directory with a `train` folder → ImageFolder; `None` for anything else: a
    /// directory of IDX files, or one to download them into.
    pub fn detect(path: &Path) -> Option<FileFormat> {
        if path.is_dir() {
            return path.join("train").is_dir().then_some(FileFormat::ImageFolder);
        }
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("npz") => Some(FileFormat::Npz),
            Some("csv") => Some(FileFormat::Csv),
            _ if path.is_file() => Some(FileFormat::Csv),
            _ => None,
        }
    }
}

/// The label column of a CSV table: by its header name, or by its 0-based index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelColumn {
    Name(String),
    Index(usize),
}

impl std::str::FromStr for LabelColumn {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            bail!("--label-column '': expected a column name or a 0-based column index");
        }
        Ok(match s.parse::<usize>() {
            Ok(i) => LabelColumn::Index(i),
            Err(_) => LabelColumn::Name(s.to_string()),
        })
    }
}
impl std::fmt::Display for LabelColumn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabelColumn::Name(n) => write!(f, "{n}"),
            LabelColumn::Index(i) => write!(f, "{i}"),
        }
    }
}
crate::serde_via_string!(LabelColumn);

/// The size every picture of an image folder is brought to: `HxW`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageSize {
    pub height: usize,
    pub width: usize,
}

/// The most pixels `--image-size` may ask for per picture (4096 × 4096, as `picture::MAX_PIXELS`).
pub const MAX_IMAGE_PIXELS: usize = 4096 * 4096;

impl std::str::FromStr for ImageSize {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let parsed = s.trim().split_once(['x', 'X', '×']).and_then(|(h, w)| Some((h.trim().parse::<usize>().ok()?, w.trim().parse::<usize>().ok()?)));
        match parsed {
            Some((height, width)) if height > 0 && width > 0 && height.checked_mul(width).is_some_and(|p| p <= MAX_IMAGE_PIXELS) => {
                Ok(ImageSize { height, width })
            }
            _ => bail!("--image-size '{s}': expected HxW with H and W whole numbers ≥ 1 and H·W ≤ {MAX_IMAGE_PIXELS}, e.g. 28x28"),
        }
    }
}
impl std::fmt::Display for ImageSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.height, self.width)
    }
}
crate::serde_via_string!(ImageSize);

/// The default of `FileData::max_bytes`: 16 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 16 << 30;

fn default_max_bytes() -> u64 {
    DEFAULT_MAX_BYTES
}

/// Where a run's own data is and how to read it (`data.files` of a configuration).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileData {
    pub format: FileFormat,
    /// The `.npz`, the training CSV, or the image folder.
    pub path: PathBuf,
    /// A CSV of test samples (`--test-data`), in the training CSV's columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<PathBuf>,
    /// The CSV's label column (default: the last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_column: Option<LabelColumn>,
    /// The size pictures are brought to (default: the first picture's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<ImageSize>,
    /// The most bytes a data file may hold (a picture, the CSV, the archive or any array
    /// in it, uncompressed): larger ones are refused before they are read.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
}

impl FileData {
    /// `path` in the layout it holds (`FileFormat::detect`), with default settings.
    pub fn at(path: &Path) -> Option<FileData> {
        Some(FileData { format: FileFormat::detect(path)?, path: path.to_path_buf(), test: None, label_column: None, image_size: None, max_bytes: DEFAULT_MAX_BYTES })
    }
}

/// How the features are laid out, which decides how `--standardize` measures them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataKind {
    /// Pixels of pictures (IDX, image folders, an `.npz` of (n, h, w)): one mean and one standard
    /// deviation over every pixel.
    Pictures,
    /// Features of a table (CSV, an `.npz` of (n, d)): a mean and a standard deviation per feature.
    Table,
}

/// The sets read from a run's own data.
#[derive(Clone, Debug)]
pub struct OwnData {
    pub train: Dataset,
    pub test: Option<Dataset>,
    /// The name of each class, in label order (label `i` is class `classes[i]`).
    pub classes: Vec<String>,
    pub kind: DataKind,
}

/// Reads the training set (and the test set, where there is one) of `files`. The classes are
/// `classes` where given (a trained model's, for `eval`), else those of the training set.
pub fn load(files: &FileData, classes: Option<&[String]>) -> Result<OwnData> {
    if let (Some(test), FileFormat::Npz | FileFormat::ImageFolder) = (&files.test, files.format) {
        bail!(
            "{}: a separate test file ({}) is for CSV tables; an .npz holds its own x_test and y_test, an image folder its own test/ folder",
            files.path.display(),
            test.display()
        );
    }
    match files.format {
        FileFormat::Npz => super::npy::load_npz(files, classes),
        FileFormat::Csv => super::csv_table::load(files, classes),
        FileFormat::ImageFolder => super::image_folder::load(files, classes),
    }
}

/// Feature rows to classify (`predict`): a CSV (its columns as in training, a label column
/// ignored where the table has one) or a `.npy` of shape (n, d) or (n, h, w); `width` values
/// each. Returns the rows (row-major, `width` each) and their count.
pub fn read_rows(path: &Path, width: usize, label_column: Option<&LabelColumn>, max_bytes: u64) -> Result<(Vec<f64>, usize)> {
    if width == 0 {
        bail!("{}: rows of 0 values asked for; expected a network input width of at least 1", path.display());
    }
    // A .npy by its magic, whatever its name; anything else is read as a CSV table.
    let mut magic = [0u8; 6];
    let is_npy = std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok() && &magic == b"\x93NUMPY";
    if is_npy {
        super::npy::read_rows(path, width, max_bytes)
    } else {
        super::csv_table::read_rows(path, width, label_column, max_bytes)
    }
}

/// Asks Linux to back `v`'s allocation with huge pages (where it is large), as NumPy does for
/// its arrays: a vector of hundreds of megabytes read from a file then costs a few hundred
/// page faults, not hundreds of thousands (the most of a load's time). Call it before the
/// vector's memory is first written. (A CSV table, filled a block at a time, measured slower
/// with it: it does without.)
pub(super) fn advise_huge_pages<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let bytes = v.capacity() * std::mem::size_of::<T>();
        if bytes < 8 << 20 {
            return;
        }
        let start = v.as_ptr() as usize;
        let first = start.next_multiple_of(PAGE);
        let len = (start + bytes).saturating_sub(first) / PAGE * PAGE;
        // SAFETY: advice only, on whole pages inside the vector's own allocation; the contents
        // are unchanged, and a refusal (an error return) just leaves the pages as they were.
        unsafe {
            libc::madvise(first as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_dispatches_by_format_and_refuses_a_stray_test_file() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("t.csv");
        std::fs::write(&csv, "1,0\n2,1\n").unwrap();
        let d = load(&FileData::at(&csv).unwrap(), None).unwrap();
        assert_eq!((d.kind, d.classes.len(), d.train.len()), (DataKind::Table, 2, 2));
        let npz = dir.path().join("d.npz");
        let f = FileData { test: Some(csv.clone()), ..FileData::at(&npz).unwrap() };
        let e = load(&f, None).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: a separate test file ({})", npz.display(), csv.display())), "{e}");
    }

    /// Load times of large files named by `GPU_NN_BENCH_CSV` and `GPU_NN_BENCH_NPZ`:
    /// `cargo test --release --lib bench_own_data -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_own_data() {
        for var in ["GPU_NN_BENCH_CSV", "GPU_NN_BENCH_NPZ"] {
            let Some(path) = std::env::var_os(var) else { continue };
            let files = FileData::at(Path::new(&path)).unwrap();
            for _ in 0..3 {
                let t = std::time::Instant::now();
                let d = load(&files, None).unwrap();
                println!("{var}: {} samples × {} in {:.3} s", d.train.len(), d.train.sample_len, t.elapsed().as_secs_f64());
            }
        }
    }

    #[test]
    fn rows_by_content() {
        let dir = tempfile::tempdir().unwrap();
        // A .npy named .csv is still a .npy.
        let p = dir.path().join("rows.csv");
        std::fs::write(&p, super::super::npy::tests::npy("<f8", false, &[1, 2], &super::super::npy::tests::f8(&[0.5, 2.0]))).unwrap();
        assert_eq!(read_rows(&p, 2, None, DEFAULT_MAX_BYTES).unwrap(), (vec![0.5, 2.0], 1));
        std::fs::write(&p, "0.5,2\n").unwrap();
        assert_eq!(read_rows(&p, 2, None, DEFAULT_MAX_BYTES).unwrap(), (vec![0.5, 2.0], 1));
        assert!(read_rows(&p, 0, None, DEFAULT_MAX_BYTES).is_err());
    }
}
