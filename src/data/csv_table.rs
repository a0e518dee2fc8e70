//! CSV tables of the user's own: numeric feature columns and an integer label column, with or
//! without a header line. The file is read in blocks, split at record boundaries into pieces
//! that are parsed on rayon's pool and joined in file order, so the result (and the first
//! error) is the same whatever the number of threads, and memory holds the data and a few
//! blocks, never the file's text.

use super::classes::Classes;
use super::own::{DataKind, FileData, LabelColumn, OwnData};
use super::{Dataset, Pixels};
use anyhow::{Context, Result, bail};
use csv::ByteRecord;
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Bytes read per block; each is split into pieces for the pool.
const BLOCK: usize = 64 << 20;
/// The smallest piece worth a task of its own.
const MIN_PIECE: usize = 1 << 20;
/// Longest cell text quoted in a message.
const SHOWN: usize = 40;

/// What becomes of the label column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Labels {
    /// Parsed as integers (training and test sets).
    Read,
    /// Left out (rows to classify).
    Drop,
}

/// The columns of a table, from its first line.
#[derive(Clone, Debug, PartialEq)]
struct Layout {
    columns: usize,
    /// The label column's index.
    label: Option<usize>,
    /// The header's names, where the first line is one.
    header: Option<Vec<String>>,
}

impl Layout {
    fn features(&self) -> usize {
        self.columns - self.label.is_some() as usize
    }

    /// " ('name')" for column `c` (0-based) where there is a header.
    fn name_of(&self, c: usize) -> String {
        match self.header.as_ref().and_then(|h| h.get(c)) {
            Some(n) => format!(" ('{n}')"),
            None => String::new(),
        }
    }
}

/// A table's rows.
#[derive(Debug, Default)]
struct Table {
    /// Features, row-major.
    values: Vec<f64>,
    labels: Vec<i64>,
    /// The line (1-based, as an editor counts) each row starts on.
    lines: Vec<u64>,
}

/// A file's text trimmed of a UTF-8 byte-order mark, as Excel writes it.
fn open(path: &Path, max_bytes: u64) -> Result<(File, u64)> {
    let name = path.display();
    let mut file = File::open(path).with_context(|| format!("cannot open {name}"))?;
    let size = file.metadata().with_context(|| format!("cannot read {name}"))?.len();
    if size > max_bytes {
        bail!("{name}: {size} bytes, more than the limit of {max_bytes} bytes (--max-file-bytes)");
    }
    let mut bom = [0u8; 3];
    let n = file.read(&mut bom).with_context(|| format!("cannot read {name}"))?;
    let start = if n == 3 && bom == [0xEF, 0xBB, 0xBF] { 3 } else { 0 };
    file.seek(SeekFrom::Start(start)).with_context(|| format!("cannot read {name}"))?;
    Ok((file, size))
}

fn reader_builder() -> csv::ReaderBuilder {
    let mut b = csv::ReaderBuilder::new();
    // Ragged rows are reported here, with their row and counts.
    b.has_headers(false).flexible(true);
    b
}

/// The first record of the file, trimmed, as text.
fn first_record(path: &Path, max_bytes: u64) -> Result<Vec<String>> {
    let (file, _) = open(path, max_bytes)?;
    let mut rdr = reader_builder().from_reader(BufReader::new(file));
    let mut rec = ByteRecord::new();
    if !rdr.read_byte_record(&mut rec).with_context(|| format!("cannot read {}", path.display()))? {
        bail!("{}: the file is empty; expected a CSV table", path.display());
    }
    Ok(rec.iter().map(|c| String::from_utf8_lossy(c.trim_ascii()).into_owned()).collect())
}

fn is_number(cell: &[u8]) -> bool {
    fast_float2::parse::<f64, _>(cell.trim_ascii()).is_ok()
}

/// The first line is a header when any of its cells holds something other than a number.
fn looks_like_header(cells: &[String]) -> bool {
    cells.iter().any(|c| !c.is_empty() && !is_number(c.as_bytes()))
}

/// The label column's index among `cells` (the first line; `header` whether it is a header):
/// `label` by name or index, else the last.
fn label_index(cells: &[String], header: bool, label: Option<&LabelColumn>, name: &str) -> Result<usize> {
    match label {
        None => Ok(cells.len() - 1),
        Some(LabelColumn::Index(i)) if *i < cells.len() => Ok(*i),
        Some(LabelColumn::Index(i)) => bail!("--label-column {i}: {name} has {} columns (0-based indices 0 to {})", cells.len(), cells.len() - 1),
        Some(LabelColumn::Name(n)) => match cells.iter().position(|c| c == n) {
            Some(i) => Ok(i),
            None if header => bail!("--label-column '{n}': {name} has no such column; its columns are: {}", cells.join(", ")),
            None => bail!("--label-column '{n}': {name} has no header line (its first line is all numbers); name the label column by its 0-based index"),
        },
    }
}

/// The layout of a training table: features and a label column.
fn train_layout(path: &Path, label: Option<&LabelColumn>, max_bytes: u64) -> Result<Layout> {
    let name = path.display().to_string();
    let cells = first_record(path, max_bytes)?;
    if cells.len() < 2 {
        bail!("{name}: the first line has {} column; expected feature columns and a label column", cells.len());
    }
    let by_name = matches!(label, Some(LabelColumn::Name(n)) if cells.contains(n));
    let header = by_name || looks_like_header(&cells);
    let label = label_index(&cells, header, label, &name)?;
    Ok(Layout { columns: cells.len(), label: Some(label), header: header.then_some(cells) })
}

/// Reads the rows of a table laid out as `layout`, from `path`. While the pool parses one
/// block, one thread reads the next into the buffer the block before last used (no fresh
/// pages to fault in) and appends the last block's rows to the table.
fn read_table(path: &Path, layout: &Layout, labels: Labels, max_bytes: u64) -> Result<Table> {
    let name = path.display().to_string();
    let (mut file, size) = open(path, max_bytes)?;
    let pieces_per_block = rayon::current_num_threads() * 4;
    let mut table = Table::default();
    // Newlines before the rows not yet in the table, for line numbers.
    let mut newlines = 0u64;
    let mut first = true;
    let mut block = read_block(&mut file, Vec::new(), &[], &name)?;
    let rows = estimate(size, &block.0);
    // Only a hint: the vectors grow past it where it falls short.
    let _ = (table.values.try_reserve(rows.saturating_mul(layout.features())), table.labels.try_reserve(rows), table.lines.try_reserve(rows));
    let (mut spare, mut pending) = (Vec::new(), Vec::new());
    loop {
        let (bytes, eof) = block;
        let (cuts, rest) = split(&bytes, eof, pieces_per_block);
        let pieces: Vec<&[u8]> = cuts.windows(2).map(|w| &bytes[w[0]..w[1]]).collect();
        let skip_header = first && layout.header.is_some();
        let previous = std::mem::take(&mut pending);
        let (parsed, (appended, next)) = rayon::join(
            || pieces.par_iter().enumerate().map(|(i, p)| parse_piece(p, skip_header && i == 0, layout, labels)).collect::<Vec<_>>(),
            || {
                let appended = append(&mut table, &mut newlines, previous, &name, layout);
                let next = if eof || appended.is_err() { Ok((Vec::new(), true)) } else { read_block(&mut file, std::mem::take(&mut spare), &bytes[rest..], &name) };
                (appended, next)
            },
        );
        appended?;
        pending = parsed;
        first &= pieces.is_empty();
        if eof {
            break;
        }
        spare = bytes;
        block = next?;
    }
    append(&mut table, &mut newlines, pending, &name, layout)?;
    if table.lines.is_empty() {
        bail!("{name}: no rows{}; expected at least one", if layout.header.is_some() { " after the header" } else { "" });
    }
    Ok(table)
}

/// Appends parsed pieces to the table, in file order; the first piece that failed gives the error.
fn append(table: &mut Table, newlines: &mut u64, pieces: Vec<Result<Piece, Located>>, name: &str, layout: &Layout) -> Result<()> {
    for result in pieces {
        match result {
            Ok(p) => {
                table.values.extend_from_slice(&p.values);
                table.labels.extend_from_slice(&p.labels);
                let base = *newlines;
                table.lines.extend(p.lines.iter().map(|l| base + l + 1));
                *newlines += p.newlines;
            }
            Err(e) => bail!("{}", e.message(name, *newlines, layout)),
        }
    }
    Ok(())
}

/// Rows the file holds, from the first block's density, so that the result is allocated once
/// (a little high: the rest of a file is rarely denser than its start).
fn estimate(size: u64, first: &[u8]) -> usize {
    let lines = first.iter().filter(|&&b| b == b'\n').count().max(1);
    let per_line = first.len().max(1) as f64 / lines as f64;
    // A row takes at least two bytes ("1\n").
    ((size as f64 / per_line * 1.02) as usize + 1).min(size as usize / 2 + 1)
}

/// `carry` followed by the next `BLOCK` bytes of `file`, in `buf` (emptied first, its memory
/// reused); whether the file ended.
fn read_block(file: &mut File, mut buf: Vec<u8>, carry: &[u8], name: &str) -> Result<(Vec<u8>, bool)> {
    buf.clear();
    buf.reserve(carry.len() + BLOCK);
    buf.extend_from_slice(carry);
    // Filled without zeroing first: a small file costs a small block.
    file.take(BLOCK as u64).read_to_end(&mut buf).with_context(|| format!("cannot read {name}"))?;
    let eof = buf.len() - carry.len() < BLOCK;
    Ok((buf, eof))
}

/// Cuts `bytes` (starting on a record boundary) into about `n` pieces of whole records:
/// (the cut positions from 0 to the end of the last whole record, where the rest begins).
/// At the end of the file the rest is empty.
fn split(bytes: &[u8], eof: bool, n: usize) -> (Vec<usize>, usize) {
    let end = bytes.len();
    // Without a quote character no field can hold a line break, so every '\n' ends a record.
    let fast = memchr::memchr(b'"', bytes).is_none();
    let ends: Option<Vec<usize>> = (!fast).then(|| record_ends(bytes));
    // The end of the last whole record at or after `at`, or `None`.
    let boundary_after = |at: usize| -> Option<usize> {
        match &ends {
            None => memchr::memchr(b'\n', &bytes[at.min(end)..]).map(|i| at + i + 1),
            Some(ends) => ends.get(ends.partition_point(|&e| e < at)).copied(),
        }
    };
    let last = if eof {
        end
    } else {
        match &ends {
            None => memchr::memrchr(b'\n', bytes).map_or(0, |i| i + 1),
            Some(ends) => ends.last().copied().unwrap_or(0),
        }
    };
    let step = (last / n.max(1)).max(MIN_PIECE);
    let mut cuts = vec![0];
    let mut at = step;
    while at < last {
        match boundary_after(at) {
            Some(b) if b < last => {
                cuts.push(b);
                at = b + step;
            }
            _ => break,
        }
    }
    if last > 0 {
        cuts.push(last);
    }
    (cuts, last)
}

/// The ends of the whole records in `bytes` (starting on a record boundary), exactly as the
/// csv crate parses them: quoted fields may hold line breaks.
fn record_ends(bytes: &[u8]) -> Vec<usize> {
    let mut rdr = csv_core::Reader::new();
    let (mut out, mut ends) = (vec![0u8; 1 << 16], vec![0usize; 1 << 12]);
    let (mut at, mut found) = (0, Vec::new());
    loop {
        let (result, nin, _, _) = rdr.read_record(&bytes[at..], &mut out, &mut ends);
        at += nin;
        match result {
            csv_core::ReadRecordResult::Record => found.push(at),
            csv_core::ReadRecordResult::OutputFull | csv_core::ReadRecordResult::OutputEndsFull => {}
            csv_core::ReadRecordResult::InputEmpty | csv_core::ReadRecordResult::End => return found,
        }
    }
}

/// One piece's rows; lines count from the piece's start (0 = its first line).
#[derive(Default)]
struct Piece {
    values: Vec<f64>,
    labels: Vec<i64>,
    lines: Vec<u64>,
    newlines: u64,
}

/// What is wrong with a row.
#[derive(Debug)]
enum Problem {
    NotNumber { column: usize, text: String },
    NotInteger { column: usize, text: String },
    Ragged { fields: usize },
    Unreadable(String),
}

/// A problem and the line (counted from its piece's start) of its row.
#[derive(Debug)]
struct Located {
    line: u64,
    problem: Problem,
}

impl Located {
    /// The message, the piece's first line being `base` + 1 of the file.
    fn message(&self, name: &str, base: u64, layout: &Layout) -> String {
        let row = base + self.line + 1;
        match &self.problem {
            Problem::NotNumber { column, text } => {
                format!("{name}: row {row}, column {}{}: '{text}' is not a number; expected a finite number", column + 1, layout.name_of(*column))
            }
            Problem::NotInteger { column, text } => {
                format!("{name}: row {row}, column {}{}: label '{text}' is not an integer; expected a whole-number class label", column + 1, layout.name_of(*column))
            }
            Problem::Ragged { fields } => {
                format!("{name}: row {row} has {fields} fields; expected {}, as the first line has", layout.columns)
            }
            Problem::Unreadable(e) => format!("{name}: row {row}: {e}"),
        }
    }
}

/// A cell's text for a message.
fn shown(cell: &[u8]) -> String {
    let s = String::from_utf8_lossy(cell);
    match s.char_indices().nth(SHOWN) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.into_owned(),
    }
}

/// An integer label: "3", "-1", "+2", or a float with a whole value ("3.0").
fn parse_label(cell: &[u8]) -> Option<i64> {
    let cell = cell.trim_ascii();
    if let Some(v) = std::str::from_utf8(cell).ok().and_then(|s| s.parse::<i64>().ok()) {
        return Some(v);
    }
    let v = fast_float2::parse::<f64, _>(cell).ok()?;
    (v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15).then_some(v as i64)
}

/// Parses the records of one piece of the file.
fn parse_piece(bytes: &[u8], skip_first: bool, layout: &Layout, labels: Labels) -> Result<Piece, Located> {
    let count_nl = |b: &[u8]| b.iter().filter(|&&c| c == b'\n').count() as u64;
    let mut piece = Piece::default();
    let mut rdr = reader_builder().from_reader(bytes);
    let mut rec = ByteRecord::new();
    // Newlines in bytes[..counted].
    let (mut counted, mut nl) = (0usize, 0u64);
    let mut skip = skip_first;
    loop {
        let more = rdr.read_byte_record(&mut rec);
        // A record starts where the last ended, past the line breaks the reader skips.
        let mut start = rec.position().map_or(counted, |p| p.byte() as usize).max(counted);
        while start < bytes.len() && matches!(bytes[start], b'\n' | b'\r') {
            start += 1;
        }
        nl += count_nl(&bytes[counted..start]);
        counted = start;
        let line = nl;
        match more {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(Located { line, problem: Problem::Unreadable(e.to_string()) }),
        }
        if skip {
            skip = false;
            continue;
        }
        if rec.len() != layout.columns {
            return Err(Located { line, problem: Problem::Ragged { fields: rec.len() } });
        }
        for (column, cell) in rec.iter().enumerate() {
            if Some(column) == layout.label {
                if labels == Labels::Read {
                    match parse_label(cell) {
                        Some(l) => piece.labels.push(l),
                        None => return Err(Located { line, problem: Problem::NotInteger { column, text: shown(cell) } }),
                    }
                }
                continue;
            }
            match fast_float2::parse::<f64, _>(cell.trim_ascii()) {
                Ok(v) if v.is_finite() => piece.values.push(v),
                _ => return Err(Located { line, problem: Problem::NotNumber { column, text: shown(cell) } }),
            }
        }
        piece.lines.push(line);
    }
    piece.newlines = nl + count_nl(&bytes[counted..]);
    Ok(piece)
}

/// Reads a training CSV (`files.path`) and its test CSV (`files.test`), which must have the
/// same columns (and header, where the training CSV has one).
pub fn load(files: &FileData, classes: Option<&[String]>) -> Result<OwnData> {
    let name = files.path.display().to_string();
    let layout = train_layout(&files.path, files.label_column.as_ref(), files.max_bytes)?;
    let train = read_table(&files.path, &layout, Labels::Read, files.max_bytes)?;
    let cls = Classes::new(classes, &train.labels, &name)?;
    let labels = cls.map(&train.labels, &name, |i| format!("row {}", train.lines[i]))?;
    let width = layout.features();
    let train_set = Dataset { source: name.clone(), pixels: Pixels::F64(train.values), sample_len: width, labels, num_classes: cls.len() };
    let test = match &files.test {
        None => None,
        Some(path) => {
            let test_name = path.display().to_string();
            let cells = first_record(path, files.max_bytes)?;
            if cells.len() != layout.columns {
                bail!("{test_name}: {} columns; expected {}, as in the training table {name}", cells.len(), layout.columns);
            }
            let header = (layout.header.as_ref() == Some(&cells) || looks_like_header(&cells)).then_some(cells);
            if header != layout.header {
                let show = |h: &Option<Vec<String>>| h.as_ref().map_or("no header".to_string(), |h| format!("header '{}'", h.join(",")));
                bail!("{test_name} has {} but the training table {name} has {}; expected the same columns", show(&header), show(&layout.header));
            }
            let t = read_table(path, &layout, Labels::Read, files.max_bytes)?;
            let labels = cls.map(&t.labels, &test_name, |i| format!("row {}", t.lines[i]))?;
            Some(Dataset { source: test_name, pixels: Pixels::F64(t.values), sample_len: width, labels, num_classes: cls.len() })
        }
    };
    Ok(OwnData { train: train_set, test, classes: cls.names().to_vec(), kind: DataKind::Table })
}

/// Rows of `width` features to classify: a table of `width` columns, or of `width` + 1 with a
/// label column (`label`, else the last) that is left out.
pub fn read_rows(path: &Path, width: usize, label: Option<&LabelColumn>, max_bytes: u64) -> Result<(Vec<f64>, usize)> {
    let name = path.display().to_string();
    let cells = first_record(path, max_bytes)?;
    let layout = if cells.len() == width {
        Layout { columns: width, label: None, header: looks_like_header(&cells).then_some(cells) }
    } else if cells.len() == width + 1 {
        // As in training: a header names its label column ("0,1,…,783,label" too).
        let header = matches!(label, Some(LabelColumn::Name(n)) if cells.contains(n)) || looks_like_header(&cells);
        let i = label_index(&cells, header, label, &name)?;
        Layout { columns: width + 1, label: Some(i), header: header.then_some(cells) }
    } else {
        bail!("{name}: {} columns; expected {width} features (or {} with a label column)", cells.len(), width + 1);
    };
    let t = read_table(path, &layout, Labels::Drop, max_bytes)?;
    let n = t.lines.len();
    Ok((t.values, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::own::DEFAULT_MAX_BYTES;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn files(path: &Path) -> FileData {
        FileData::at(path).unwrap()
    }

    fn load_err(f: &FileData) -> String {
        load(f, None).unwrap_err().to_string()
    }

    #[test]
    fn header_label_last_and_classes() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "t.csv", "a,b,label\n1.5,2,7\r\n-3,4e2,-1\n\n5,6,7\n");
        let d = load(&files(&p), None).unwrap();
        assert_eq!(d.kind, DataKind::Table);
        assert_eq!(d.classes, ["-1", "7"]);
        assert_eq!(d.train.pixels, Pixels::F64(vec![1.5, 2.0, -3.0, 400.0, 5.0, 6.0]));
        assert_eq!((d.train.labels, d.train.sample_len, d.train.num_classes), (vec![1, 0, 1], 2, 2));
        assert!(d.test.is_none());
    }

    #[test]
    fn no_header_label_by_index_quotes_and_bom() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "t.csv", "\u{feff}3, 0.25 ,\"1\"\n2.0,1,\"2\"\n");
        let mut f = files(&p);
        f.label_column = Some(LabelColumn::Index(0));
        let d = load(&f, None).unwrap();
        assert_eq!(d.classes, ["2", "3"]);
        assert_eq!((d.train.pixels, d.train.labels), (Pixels::F64(vec![0.25, 1.0, 1.0, 2.0]), vec![1, 0]));
    }

    #[test]
    fn label_by_name_and_its_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "t.csv", "y,x1,x2\n0,1,2\n1,3,4\n");
        let mut f = files(&p);
        f.label_column = Some(LabelColumn::Name("y".into()));
        assert_eq!(load(&f, None).unwrap().train.pixels, Pixels::F64(vec![1., 2., 3., 4.]));
        f.label_column = Some(LabelColumn::Name("z".into()));
        assert_eq!(load_err(&f), format!("--label-column 'z': {} has no such column; its columns are: y, x1, x2", p.display()));
        f.label_column = Some(LabelColumn::Index(3));
        assert_eq!(load_err(&f), format!("--label-column 3: {} has 3 columns (0-based indices 0 to 2)", p.display()));
        let q = write(dir.path(), "n.csv", "0,1,2\n");
        let mut f = files(&q);
        f.label_column = Some(LabelColumn::Name("y".into()));
        assert!(load_err(&f).contains("has no header line"), "{}", load_err(&f));
    }

    #[test]
    fn bad_cells_name_row_column_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "b.csv", "a,b,label\n1,2,0\n1,abc,1\n");
        assert_eq!(load_err(&files(&p)), format!("{}: row 3, column 2 ('b'): 'abc' is not a number; expected a finite number", p.display()));
        for (cell, shown) in [("", ""), ("nan", "nan"), ("-inf", "-inf"), ("1e999", "1e999")] {
            let p = write(dir.path(), "b.csv", &format!("1,2,0\n{cell},2,0\n"));
            assert_eq!(load_err(&files(&p)), format!("{}: row 2, column 1: '{shown}' is not a number; expected a finite number", p.display()));
        }
        let p = write(dir.path(), "b.csv", "a,b,label\n1,2,0\n1,2,2.5\n");
        assert_eq!(load_err(&files(&p)), format!("{}: row 3, column 3 ('label'): label '2.5' is not an integer; expected a whole-number class label", p.display()));
        let p = write(dir.path(), "b.csv", "1,2,3.0\n1,2,x\n");
        assert!(load_err(&files(&p)).contains("row 2, column 3: label 'x' is not an integer"), "{}", load_err(&files(&p)));
        let p = write(dir.path(), "b.csv", "a,b,label\r\n1,2,0\r\n1,2\r\n");
        assert_eq!(load_err(&files(&p)), format!("{}: row 3 has 2 fields; expected 3, as the first line has", p.display()));
    }

    #[test]
    fn test_table_must_match() {
        let dir = tempfile::tempdir().unwrap();
        let train = write(dir.path(), "train.csv", "a,b,label\n1,2,0\n3,4,1\n5,6,2\n");
        let mut f = files(&train);
        f.test = Some(write(dir.path(), "test.csv", "a,b,label\n1,1,2\n1,1,0\n"));
        let d = load(&f, None).unwrap();
        let t = d.test.unwrap();
        assert_eq!((t.labels, t.num_classes, t.source), (vec![2, 0], 3, f.test.as_ref().unwrap().display().to_string()));
        let test = write(dir.path(), "test.csv", "a,b,label\n1,1,2\n1,1,9\n");
        assert_eq!(load_err(&f), format!("{}: class '9' (row 3) is in the test set but not in the training set (classes: 0, 1, 2)", test.display()));
        write(dir.path(), "test.csv", "a,c,label\n1,1,2\n");
        assert_eq!(load_err(&f), format!("{} has header 'a,c,label' but the training table {} has header 'a,b,label'; expected the same columns", test.display(), train.display()));
        write(dir.path(), "test.csv", "1,1,2\n");
        assert!(load_err(&f).contains("has no header but the training table"), "{}", load_err(&f));
        write(dir.path(), "test.csv", "1,2\n");
        assert!(load_err(&f).contains("2 columns; expected 3"), "{}", load_err(&f));
    }

    #[test]
    fn limits_and_empty_tables() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "e.csv", "");
        assert_eq!(load_err(&files(&p)), format!("{}: the file is empty; expected a CSV table", p.display()));
        let p = write(dir.path(), "h.csv", "a,b\n");
        assert_eq!(load_err(&files(&p)), format!("{}: no rows after the header; expected at least one", p.display()));
        let p = write(dir.path(), "one.csv", "1\n2\n");
        assert!(load_err(&files(&p)).contains("1 column; expected feature columns and a label column"));
        let p = write(dir.path(), "big.csv", "1,2\n3,4\n");
        let mut f = files(&p);
        f.max_bytes = 7;
        assert_eq!(load_err(&f), format!("{}: 8 bytes, more than the limit of 7 bytes (--max-file-bytes)", p.display()));
    }

    #[test]
    fn given_classes_map_labels() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "g.csv", "1,5\n2,3\n");
        let given: Vec<String> = ["3", "5"].iter().map(|s| s.to_string()).collect();
        let d = load(&files(&p), Some(&given)).unwrap();
        assert_eq!((d.train.labels, d.classes), (vec![1, 0], given.clone()));
        let p = write(dir.path(), "g.csv", "1,5\n2,4\n");
        assert_eq!(load(&files(&p), Some(&given)).unwrap_err().to_string(), format!("{}: class '4' (row 2) is not one of the model's classes (3, 5)", p.display()));
    }

    /// Many pieces, quoted line breaks and CRLF give the rows and line numbers of one piece.
    #[test]
    fn splitting_is_exact() {
        let mut text = String::from("x,\"a\nb\",label\r\n");
        let mut want = Vec::new();
        for i in 0..1000 {
            text.push_str(&format!("{i},{}.5,{}\r\n", i % 7, i % 3));
            want.extend([i as f64, (i % 7) as f64 + 0.5]);
        }
        let bytes = text.as_bytes();
        let layout = Layout { columns: 3, label: Some(2), header: Some(vec![]) };
        let whole = parse_piece(bytes, true, &layout, Labels::Read).unwrap();
        assert_eq!(whole.values, want);
        assert_eq!(whole.lines[..2], [2, 3]);
        for quoted in [true, false] {
            let b = if quoted { bytes.to_vec() } else { bytes[bytes.iter().position(|&c| c == b'\r').unwrap() + 2..].to_vec() };
            for n in [2, 7, 64] {
                // Pieces as small as a few records, by cutting with a tiny step.
                let ends = if quoted { record_ends(&b) } else { (0..b.len()).filter(|&i| b[i] == b'\n').map(|i| i + 1).collect() };
                let mut cuts = vec![0];
                cuts.extend(ends.iter().copied().step_by(n).skip(1));
                cuts.push(b.len());
                cuts.dedup();
                let mut values = Vec::new();
                let mut lines = Vec::new();
                let mut base = 0;
                for (k, w) in cuts.windows(2).enumerate() {
                    let p = parse_piece(&b[w[0]..w[1]], quoted && k == 0, &layout, Labels::Read).unwrap();
                    values.extend(p.values);
                    lines.extend(p.lines.iter().map(|l| base + l + 1));
                    base += p.newlines;
                }
                assert_eq!(values, want, "{n} {quoted}");
                let first = if quoted { 3 } else { 1 };
                assert_eq!(lines, (first..first + 1000).collect::<Vec<u64>>(), "{n} {quoted}");
            }
        }
        // split() cuts at record boundaries only, and a quote forces the exact scan.
        // With CRLF a record ends at its '\r'; the '\n' opens the next piece, a blank line there.
        let (cuts, rest) = split(bytes, false, 4);
        assert_eq!(rest, bytes.len() - 1);
        assert!(cuts.iter().all(|&c| c == 0 || bytes[c - 1] == b'\r'));
        let (cuts, rest) = split(b"1,\"2\n3\",4\n5,6", false, 4);
        assert_eq!((cuts, rest), (vec![0, 10], 10));
        let (cuts, rest) = split(b"1,2\n3,4\n5,6", false, 4);
        assert_eq!((cuts, rest), (vec![0, 8], 8));
        assert_eq!(split(b"1,2\n3,4\n5,6", true, 4), (vec![0, 11], 11));
    }

    /// Row numbers stay exact across pieces (files of several MiB), on both ways of cutting.
    #[test]
    fn errors_deep_in_a_file_name_their_row() {
        let dir = tempfile::tempdir().unwrap();
        for header in ["\"a,b\",c,label\r\n", ""] {
            let mut text = String::from(header);
            for i in 0..300_000 {
                text.push_str(if i == 250_000 { "1.5,x,0\r\n" } else { "1.5,2,0\r\n" });
            }
            let p = write(dir.path(), "deep.csv", &text);
            let row = 250_001 + !header.is_empty() as usize;
            let name = if header.is_empty() { "" } else { " ('c')" };
            assert_eq!(load_err(&files(&p)), format!("{}: row {row}, column 2{name}: 'x' is not a number; expected a finite number", p.display()));
        }
    }

    #[test]
    fn rows_to_classify() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "r.csv", "a,b,label\n1,2,?\n3,4,\n");
        assert_eq!(read_rows(&p, 2, None, DEFAULT_MAX_BYTES).unwrap(), (vec![1., 2., 3., 4.], 2));
        // pandas' header for a NumPy array's columns and a label.
        let p = write(dir.path(), "r.csv", "0,1,label\n1,2,7\n3,4,\n");
        assert_eq!(read_rows(&p, 2, None, DEFAULT_MAX_BYTES).unwrap(), (vec![1., 2., 3., 4.], 2));
        let p = write(dir.path(), "r.csv", "9,1,2\n9,3,4\n");
        assert_eq!(read_rows(&p, 2, Some(&LabelColumn::Index(0)), DEFAULT_MAX_BYTES).unwrap(), (vec![1., 2., 3., 4.], 2));
        assert_eq!(read_rows(&p, 3, None, DEFAULT_MAX_BYTES).unwrap(), (vec![9., 1., 2., 9., 3., 4.], 2));
        let e = read_rows(&p, 5, None, DEFAULT_MAX_BYTES).unwrap_err().to_string();
        assert_eq!(e, format!("{}: 3 columns; expected 5 features (or 6 with a label column)", p.display()));
    }
}
