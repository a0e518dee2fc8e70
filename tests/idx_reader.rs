//! The IDX reader on files written by the test: every element type and rank it supports, raw and
//! gzip, and every way a file can be broken. Each broken file must give an error (not a panic)
//! that names the file and says what was found and what was expected.

use flate2::Compression;
use flate2::write::GzEncoder;
use gpu_nn::data::idx::{IdxArray, IdxData, encode_idx, parse_idx, read_idx};
use gpu_nn::data::{Dataset, Pixels};
use std::io::Write;
use std::path::{Path, PathBuf};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `read_idx` must return an error, not panic; returns the full message (with causes).
fn read_err(path: &Path) -> String {
    let r = std::panic::catch_unwind(|| read_idx(path));
    match r {
        Err(_) => panic!("read_idx panicked on {}", path.display()),
        Ok(Ok(a)) => panic!("read_idx accepted {}: dims {:?}", path.display(), a.dims),
        Ok(Err(e)) => format!("{e:#}"),
    }
}

/// The error names the file and contains every fragment (what was found / expected).
fn assert_error(path: &Path, fragments: &[&str]) {
    let msg = read_err(path);
    assert!(msg.contains(&path.display().to_string()), "error does not name the file {}: {msg}", path.display());
    for f in fragments {
        assert!(msg.contains(f), "error for {} lacks {f:?}: {msg}", path.display());
    }
}

fn u8_array(dims: &[usize]) -> IdxArray {
    let n: usize = dims.iter().product();
    IdxArray { dims: dims.to_vec(), data: IdxData::U8((0..n).map(|i| (i * 37 % 256) as u8).collect()) }
}

fn f32_array(dims: &[usize]) -> IdxArray {
    let n: usize = dims.iter().product();
    IdxArray { dims: dims.to_vec(), data: IdxData::F32((0..n).map(|i| (i as f32 - 7.0) * 0.37e3 + 1.0 / (i as f32 + 3.0)).collect()) }
}

/// The format spelled out byte by byte (big-endian dims, big-endian elements), independent of
/// `encode_idx`.
#[test]
fn hand_written_bytes_parse() {
    let u8_bytes = [0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 255];
    let a = parse_idx(&u8_bytes, "u8 2x3").unwrap();
    assert_eq!(a, IdxArray { dims: vec![2, 3], data: IdxData::U8(vec![1, 2, 3, 4, 5, 255]) });
    assert_eq!(encode_idx(&a), u8_bytes);

    // 1.0 = 3F800000, −2.5 = C0200000; a dimension above 255 exercises the big-endian count
    let mut f32_bytes = vec![0, 0, 0x0D, 1, 0, 0, 0x01, 0x02];
    for _ in 0..129 {
        f32_bytes.extend_from_slice(&[0x3F, 0x80, 0, 0, 0xC0, 0x20, 0, 0]);
    }
    let a = parse_idx(&f32_bytes, "f32 258").unwrap();
    assert_eq!(a.dims, vec![258]);
    let IdxData::F32(v) = &a.data else { panic!("expected float32 data") };
    assert!(v.chunks(2).all(|c| c == [1.0, -2.5]));
    assert_eq!(encode_idx(&a), f32_bytes);
}

/// u8 and f32, ranks 1 to 4, raw and gzip (and gzip detected by content, not by name).
#[test]
fn round_trip_every_type_and_rank() {
    let dir = tempfile::tempdir().unwrap();
    let shapes: [&[usize]; 4] = [&[7], &[3, 4], &[2, 3, 4], &[2, 1, 3, 2]];
    for dims in shapes {
        for arr in [u8_array(dims), f32_array(dims)] {
            let bytes = encode_idx(&arr);
            let elem = if matches!(arr.data, IdxData::U8(_)) { 1 } else { 4 };
            assert_eq!(bytes.len(), 4 + 4 * dims.len() + elem * arr.len());
            assert_eq!(parse_idx(&bytes, "mem").unwrap(), arr);
            let tag = format!("{}d-{}", dims.len(), elem);
            let raw = write(dir.path(), &format!("{tag}.idx"), &bytes);
            let gz = write(dir.path(), &format!("{tag}.idx.gz"), &gzip(&bytes));
            let gz_unnamed = write(dir.path(), &format!("{tag}.gzipped-but-not-named-so"), &gzip(&bytes));
            let raw_named_gz = write(dir.path(), &format!("{tag}.raw-but-named.gz"), &bytes);
            for p in [raw, gz, gz_unnamed, raw_named_gz] {
                assert_eq!(read_idx(&p).unwrap(), arr, "{}", p.display());
            }
        }
    }
}

/// Several gzip members back to back (what `cat a.gz b.gz` gives) decode as one stream.
#[test]
fn multi_member_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let arr = u8_array(&[4, 5]);
    let bytes = encode_idx(&arr);
    let (a, b) = bytes.split_at(11);
    let p = write(dir.path(), "two-members.gz", &[gzip(a), gzip(b)].concat());
    assert_eq!(read_idx(&p).unwrap(), arr);
}

#[test]
fn missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert_error(&dir.path().join("does-not-exist.idx"), &["cannot read"]);
}

#[test]
fn malformed_headers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_error(&write(d, "empty", &[]), &["empty", "expected an IDX file"]);
    assert_error(&write(d, "short", &[0, 0, 8]), &["3 byte", "expected at least 4"]);
    assert_error(&write(d, "magic", &[0x12, 0x34, 8, 1, 0, 0, 0, 1, 9]), &["bad magic", "12 34 08 01", "00 00 <type> <dims>"]);
    assert_error(&write(d, "short-type", &[0, 0, 0x0B, 1, 0, 0, 0, 1, 0, 7]), &["0x0B", "short", "not supported", "0x08", "0x0D"]);
    assert_error(&write(d, "zero-dims", &[0, 0, 8, 0, 1, 2, 3]), &["0 dimensions", "at least 1"]);
    // 3 dimensions need 4 + 12 = 16 header bytes; the file stops after 10
    assert_error(&write(d, "cut-header", &[0, 0, 8, 3, 0, 0, 0, 2, 0, 0]), &["truncated header", "16", "has 10"]);
    // dimensions whose product does not fit in memory sizes, and a huge declared size in a tiny
    // file: errors, without attempting the allocation
    let mut huge = vec![0, 0, 0x0D, 3];
    huge.extend_from_slice(&[0xFF; 12]);
    assert_error(&write(d, "overflow", &huge), &["overflow"]);
    assert_error(&write(d, "huge", &[0, 0, 0x0D, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]), &["truncated", "has 12"]);
}

#[test]
fn malformed_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = encode_idx(&u8_array(&[2, 3])); // 12 header + 6 payload = 18 bytes
    assert_eq!(good.len(), 18);
    assert_error(&write(d, "cut-payload", &good[..17]), &["truncated", "[2, 3]", "need 18 bytes", "has 17"]);
    let mut long = good.clone();
    long.push(0);
    assert_error(&write(d, "trailing", &long), &["trailing bytes", "need 18 bytes", "has 19"]);
    // float32 payload cut mid-element: [2] floats need 8 + 8 = 16 bytes
    let f = encode_idx(&f32_array(&[2]));
    assert_error(&write(d, "cut-float", &f[..14]), &["truncated", "float32", "need 16 bytes", "has 14"]);
    // the same defects inside a gzip file are reported against the .gz file
    assert_error(&write(d, "cut-payload.gz", &gzip(&good[..17])), &["truncated", "need 18 bytes", "has 17"]);
}

#[test]
fn malformed_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = gzip(&encode_idx(&u8_array(&[50, 40])));
    // a valid 10-byte gzip header, then bytes that are not a deflate stream
    let mut corrupt = good[..10].to_vec();
    corrupt.extend_from_slice(b"\xff\xff this is not deflate data \xff\xfe\xfd");
    assert_error(&write(d, "corrupt.gz", &corrupt), &["corrupt or truncated gzip"]);
    // cut in the middle of the deflate stream
    assert_error(&write(d, "half.gz", &good[..good.len() / 2]), &["corrupt or truncated gzip"]);
    // complete deflate stream, CRC-32 and length trailer missing
    assert_error(&write(d, "no-trailer.gz", &good[..good.len() - 8]), &["corrupt or truncated gzip"]);
    // a damaged trailer: the CRC no longer matches the data
    let mut bad_crc = good.clone();
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0xff;
    assert_error(&write(d, "bad-crc.gz", &bad_crc), &["corrupt or truncated gzip"]);
}

// ---- Dataset::load: image and label files that do not belong together ----------------------

fn dataset_err(images: &Path, labels: &Path) -> String {
    match std::panic::catch_unwind(|| Dataset::load(images, labels, 10)) {
        Err(_) => panic!("Dataset::load panicked"),
        Ok(Ok(_)) => panic!("Dataset::load accepted {} + {}", images.display(), labels.display()),
        Ok(Err(e)) => format!("{e:#}"),
    }
}

#[test]
fn dataset_load_checks_the_pair() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let images = write(d, "images.gz", &gzip(&encode_idx(&u8_array(&[3, 2, 2]))));
    let lab = |name: &str, v: Vec<u8>| write(d, name, &encode_idx(&IdxArray { dims: vec![v.len()], data: IdxData::U8(v) }));

    let four = lab("four-labels", vec![1, 2, 3, 4]);
    let m = dataset_err(&images, &four);
    assert!(m.contains(&four.display().to_string()) && m.contains("4 labels") && m.contains("3 images"), "{m}");

    let ten = lab("label-ten", vec![1, 10, 2]);
    let m = dataset_err(&images, &ten);
    assert!(m.contains(&ten.display().to_string()) && m.contains("label 10 at index 1") && m.contains("0..=9"), "{m}");

    let floats = write(d, "float-labels", &encode_idx(&IdxArray { dims: vec![3], data: IdxData::F32(vec![1.0, 2.0, 3.0]) }));
    let m = dataset_err(&images, &floats);
    assert!(m.contains(&floats.display().to_string()) && m.contains("float32") && m.contains("0x08"), "{m}");

    let matrix = write(d, "label-matrix", &encode_idx(&u8_array(&[3, 1])));
    let m = dataset_err(&images, &matrix);
    assert!(m.contains(&matrix.display().to_string()) && m.contains("single dimension"), "{m}");

    let ok_labels = lab("labels", vec![3, 7, 9]);
    let flat = write(d, "flat-images", &encode_idx(&u8_array(&[12])));
    let m = dataset_err(&flat, &ok_labels);
    assert!(m.contains(&flat.display().to_string()) && m.contains("at least 2 dimensions"), "{m}");

    let nan = write(d, "nan-images", &encode_idx(&IdxArray { dims: vec![3, 1], data: IdxData::F32(vec![0.5, f32::NAN, 0.25]) }));
    let m = dataset_err(&nan, &ok_labels);
    assert!(m.contains(&nan.display().to_string()) && m.contains("not finite"), "{m}");

    // a broken file inside the pair is reported by its own name
    let broken = write(d, "broken-images", &[0, 0, 8]);
    let m = dataset_err(&broken, &ok_labels);
    assert!(m.contains(&broken.display().to_string()), "{m}");
}

#[test]
fn dataset_load_reads_a_good_pair() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let px = vec![0, 255, 51, 102, 7, 8, 9, 10];
    let images = write(d, "img.gz", &gzip(&encode_idx(&IdxArray { dims: vec![2, 2, 2], data: IdxData::U8(px.clone()) })));
    let labels = write(d, "lab", &encode_idx(&IdxArray { dims: vec![2], data: IdxData::U8(vec![3, 7]) }));
    let ds = Dataset::load(&images, &labels, 10).unwrap();
    assert_eq!((ds.len(), ds.sample_len, ds.num_classes), (2, 4, 10));
    assert_eq!(ds.labels, vec![3, 7]);
    assert_eq!(ds.pixels, Pixels::U8(px));
    assert_eq!((ds.pixel(0, 1), ds.pixel(0, 2), ds.pixel(1, 0)), (1.0, 0.2, 7.0 / 255.0), "bytes scale by 1/255");
    assert!(ds.source.contains("img.gz"));
}
