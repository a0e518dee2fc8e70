//! Folders of labelled pictures in torchvision's `ImageFolder` layout: `DIR/train/CLASS/*.png`
//! (or `.jpg`, `.jpeg`), optionally `DIR/test/CLASS/…`. Class names are the training folder's
//! subfolders, sorted; samples come class by class, files sorted by name. Every picture becomes
//! grayscale bytes of one size, decoded on rayon's pool in that order.

use super::classes::Classes;
use super::own::{DataKind, FileData, ImageSize, MAX_IMAGE_PIXELS, OwnData};
use super::{Dataset, Pixels};
use anyhow::{Context, Result, bail};
use image::imageops::FilterType;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The extensions of the pictures read (any case); other files are left alone.
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Hidden entries (".DS_Store", ".ipynb_checkpoints") are no data.
fn hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// The subfolders of `dir` that are classes: (name, path), sorted by name.
fn class_folders(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            bail!("{}: the folder's name is not UTF-8; class names must be text", path.display());
        };
        if !hidden(&name) {
            out.push((name, path));
        }
    }
    out.sort();
    if out.is_empty() {
        bail!("{}: no class folders; expected {}/CLASS/*.png (or .jpg), one folder per class", dir.display(), dir.display());
    }
    Ok(out)
}

/// The pictures of a class folder, sorted by name.
fn pictures(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ext = Path::new(&*name).extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        let picture = ext.is_some_and(|e| EXTENSIONS.contains(&e.as_str()));
        if picture && !hidden(&name) && entry.path().is_file() {
            out.push(entry.path());
        }
    }
    out.sort();
    if out.is_empty() {
        bail!("{}: no pictures (.png, .jpg, .jpeg); expected at least one per class folder", dir.display());
    }
    Ok(out)
}

/// The size pictures are brought to.
#[derive(Clone, Copy, Debug)]
enum Fit<'a> {
    /// `--image-size`: every picture resized to it.
    Resize(ImageSize),
    /// The first picture's size, which every other must have.
    Same { size: ImageSize, first: &'a Path },
}

impl Fit<'_> {
    fn size(&self) -> ImageSize {
        match *self {
            Fit::Resize(s) | Fit::Same { size: s, .. } => s,
        }
    }
}

/// A picture's bytes, refused unread when larger than `max_bytes`.
fn read_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let name = path.display();
    let size = std::fs::metadata(path).with_context(|| format!("cannot read {name}"))?.len();
    if size > max_bytes {
        bail!("{name}: {size} bytes, more than the limit of {max_bytes} bytes (--max-file-bytes)");
    }
    std::fs::read(path).with_context(|| format!("cannot read {name}"))
}

fn reader<'a>(bytes: &'a [u8], name: &str) -> Result<image::ImageReader<std::io::Cursor<&'a [u8]>>> {
    let r = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().with_context(|| format!("cannot read {name}"))?;
    match r.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => Ok(r),
        _ => bail!("{name}: not a PNG or JPEG picture"),
    }
}

/// A picture's size from its header, refused when it has more than `MAX_IMAGE_PIXELS`.
fn dimensions(bytes: &[u8], name: &str) -> Result<ImageSize> {
    let (w, h) = reader(bytes, name)?.into_dimensions().map_err(|e| anyhow::anyhow!("{name}: cannot read the picture: {e}"))?;
    let pixels = w as u64 * h as u64;
    if pixels > MAX_IMAGE_PIXELS as u64 || pixels == 0 {
        bail!("{name}: {h}x{w} pixels; expected 1 to {MAX_IMAGE_PIXELS} (4096x4096) pixels a picture");
    }
    Ok(ImageSize { height: h as usize, width: w as usize })
}

/// Decodes the picture at `path` into `out`: grayscale bytes, row-major, of `fit`'s size.
fn decode_into(path: &Path, fit: Fit, max_bytes: u64, out: &mut [u8]) -> Result<()> {
    let name = path.display().to_string();
    let bytes = read_file(path, max_bytes)?;
    let size = dimensions(&bytes, &name)?;
    if let Fit::Same { size: want, first } = fit
        && size != want
    {
        bail!("{name} is {size} pixels (HxW) but the first picture, {}, is {want}; bring them to one size with --image-size HxW", first.display());
    }
    let mut r = reader(&bytes, &name)?;
    let mut limits = image::Limits::default();
    // The header was checked above; this bounds what a lying one could make the decoder take.
    limits.max_alloc = Some(MAX_IMAGE_PIXELS as u64 * 8);
    r.limits(limits);
    let img = r.decode().map_err(|e| anyhow::anyhow!("{name}: cannot decode the picture: {e}"))?;
    let mut luma = img.to_luma8();
    let want = fit.size();
    if (luma.height() as usize, luma.width() as usize) != (want.height, want.width) {
        luma = image::imageops::resize(&luma, want.width as u32, want.height as u32, FilterType::Triangle);
    }
    out.copy_from_slice(luma.as_raw());
    Ok(())
}

/// A set's pictures and their classes (class indices, in sample order).
fn read_set(samples: &[(PathBuf, u8)], fit: Fit, max_bytes: u64) -> Result<Vec<u8>> {
    let size = fit.size();
    let len = size.height * size.width;
    let mut pixels = vec![0u8; samples.len() * len];
    // The first failure in sample order, whatever order the pool finished in.
    let failure = pixels
        .par_chunks_mut(len)
        .zip(samples.par_iter())
        .enumerate()
        .filter_map(|(i, (out, (path, _)))| decode_into(path, fit, max_bytes, out).err().map(|e| (i, e)))
        .min_by_key(|(i, _)| *i);
    match failure {
        Some((_, e)) => Err(e),
        None => Ok(pixels),
    }
}

/// The samples under `dir` (a `train` or `test` folder), class by class, and the classes: the
/// training folder's own (`classes` = `None`) or those given.
fn samples(dir: &Path, classes: &Classes<String>) -> Result<Vec<(PathBuf, u8)>> {
    let folders = class_folders(dir)?;
    let names: Vec<String> = folders.iter().map(|(n, _)| n.clone()).collect();
    let index = classes.map(&names, &dir.display().to_string(), |i| format!("folder {}", folders[i].1.display()))?;
    let mut out = Vec::new();
    for ((_, path), c) in folders.iter().zip(index) {
        out.extend(pictures(path)?.into_iter().map(|p| (p, c)));
    }
    Ok(out)
}

/// The size the pictures of `files` are brought to: `--image-size`, else the first training
/// picture's (as `load` finds it).
pub fn picture_size(files: &FileData) -> Result<ImageSize> {
    if let Some(size) = files.image_size {
        return Ok(size);
    }
    let train_dir = files.path.join("train");
    let first = class_folders(&train_dir)
        .and_then(|f| pictures(&f[0].1))
        .with_context(|| format!("the size of the training pictures (give --image-size HxW if {} has moved)", files.path.display()))?;
    dimensions(&read_file(&first[0], files.max_bytes)?, &first[0].display().to_string())
}

/// One picture as the training pictures were read: grey bytes, row-major, brought to `size`.
pub fn picture(path: &Path, size: ImageSize, max_bytes: u64) -> Result<Vec<u8>> {
    let mut out = vec![0u8; size.height * size.width];
    decode_into(path, Fit::Resize(size), max_bytes, &mut out)?;
    Ok(out)
}

/// Reads `files.path`/train (and `files.path`/test where it exists).
pub fn load(files: &FileData, classes: Option<&[String]>) -> Result<OwnData> {
    let root = &files.path;
    let train_dir = root.join("train");
    if !train_dir.is_dir() {
        bail!("{}: no 'train' folder; expected {}/train/CLASS/*.png (or .jpg), one folder per class", root.display(), root.display());
    }
    let names: Vec<String> = class_folders(&train_dir)?.into_iter().map(|(n, _)| n).collect();
    let cls = Classes::new(classes, &names, &train_dir.display().to_string())?;
    // Against the training folders' own classes, a test folder outside them is an error.
    let train_cls = Classes::of_training(&names, &train_dir.display().to_string())?;
    let train = samples(&train_dir, &cls)?;
    let first = &train[0].0;
    let fit = match files.image_size {
        Some(size) => Fit::Resize(size),
        None => Fit::Same { size: dimensions(&read_file(first, files.max_bytes)?, &first.display().to_string())?, first },
    };
    let pixels = read_set(&train, fit, files.max_bytes)?;
    let size = fit.size();
    let sample_len = size.height * size.width;
    let set = |dir: &Path, samples: &[(PathBuf, u8)], pixels| Dataset {
        source: dir.display().to_string(),
        pixels: Pixels::U8(pixels),
        sample_len,
        labels: samples.iter().map(|(_, c)| *c).collect(),
        num_classes: cls.len(),
    };
    let train_set = set(&train_dir, &train, pixels);
    let test_dir = root.join("test");
    let test = if test_dir.is_dir() {
        let folders: Vec<String> = class_folders(&test_dir)?.into_iter().map(|(n, _)| n).collect();
        if classes.is_none() {
            train_cls.map(&folders, &test_dir.display().to_string(), |i| format!("folder {}", test_dir.join(&folders[i]).display()))?;
        }
        let test = samples(&test_dir, &cls)?;
        let pixels = read_set(&test, fit, files.max_bytes)?;
        Some(set(&test_dir, &test, pixels))
    } else {
        None
    };
    Ok(OwnData { train: train_set, test, classes: cls.names().to_vec(), kind: DataKind::Pictures })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::own::DEFAULT_MAX_BYTES;
    use image::{GrayImage, Luma, Rgb, RgbImage};

    /// A gray picture of `h`×`w` whose pixel (y, x) is `base + 10y + x`.
    fn gray(path: &Path, h: u32, w: u32, base: u8) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        GrayImage::from_fn(w, h, |x, y| Luma([base + (10 * y + x) as u8])).save(path).unwrap();
    }

    fn files(root: &Path) -> FileData {
        FileData::at(root).unwrap()
    }

    fn err(f: &FileData) -> String {
        load(f, None).unwrap_err().to_string()
    }

    #[test]
    fn classes_files_and_pixels_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        gray(&r.join("train/dog/b.png"), 2, 3, 100);
        gray(&r.join("train/dog/A.PNG"), 2, 3, 50);
        // RGB with equal channels: its luma is that value.
        std::fs::create_dir_all(r.join("train/cat")).unwrap();
        RgbImage::from_fn(3, 2, |x, y| Rgb([(7 * y + x) as u8; 3])).save(r.join("train/cat/z.png")).unwrap();
        std::fs::write(r.join("train/cat/notes.txt"), "not a picture").unwrap();
        std::fs::write(r.join("train/cat/.hidden.png"), "not a picture either").unwrap();
        std::fs::create_dir_all(r.join("train/.cache")).unwrap();
        gray(&r.join("test/dog/x.png"), 2, 3, 0);
        let d = load(&files(r), None).unwrap();
        assert_eq!(d.kind, DataKind::Pictures);
        assert_eq!(d.classes, ["cat", "dog"]);
        assert_eq!((d.train.sample_len, d.train.num_classes, d.train.labels.clone()), (6, 2, vec![0, 1, 1]));
        let want: Vec<u8> = [0u8, 1, 2, 7, 8, 9, 50, 51, 52, 60, 61, 62, 100, 101, 102, 110, 111, 112].to_vec();
        assert_eq!(d.train.pixels, Pixels::U8(want));
        assert_eq!(d.train.source, r.join("train").display().to_string());
        let t = d.test.unwrap();
        assert_eq!((t.labels, t.pixels), (vec![1], Pixels::U8(vec![0, 1, 2, 10, 11, 12])));
    }

    #[test]
    fn jpeg_and_resizing() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("train/a")).unwrap();
        GrayImage::from_pixel(8, 4, Luma([200])).save(r.join("train/a/1.jpeg")).unwrap();
        GrayImage::from_pixel(2, 2, Luma([90])).save(r.join("train/a/2.png")).unwrap();
        let mut f = files(r);
        f.image_size = Some("2x3".parse().unwrap());
        let d = load(&f, None).unwrap();
        assert_eq!(d.train.sample_len, 6);
        let Pixels::U8(p) = &d.train.pixels else { panic!("bytes expected") };
        // A flat picture stays flat whatever the filter; JPEG may be off by a level.
        assert!(p[..6].iter().all(|&v| v.abs_diff(200) <= 1), "{p:?}");
        assert_eq!(p[6..], [90; 6]);
        // Without --image-size the sizes must agree.
        let e = err(&files(r));
        assert_eq!(e, format!("{} is 2x2 pixels (HxW) but the first picture, {}, is 4x8; bring them to one size with --image-size HxW", r.join("train/a/2.png").display(), r.join("train/a/1.jpeg").display()));
    }

    #[test]
    fn layout_errors() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let bare = FileData { format: crate::data::FileFormat::ImageFolder, path: r.to_path_buf(), test: None, label_column: None, image_size: None, max_bytes: DEFAULT_MAX_BYTES };
        assert_eq!(err(&bare), format!("{}: no 'train' folder; expected {}/train/CLASS/*.png (or .jpg), one folder per class", r.display(), r.display()));
        std::fs::create_dir_all(r.join("train")).unwrap();
        assert_eq!(err(&files(r)), format!("{}: no class folders; expected {}/CLASS/*.png (or .jpg), one folder per class", r.join("train").display(), r.join("train").display()));
        std::fs::create_dir_all(r.join("train/empty")).unwrap();
        std::fs::write(r.join("train/empty/readme.md"), "").unwrap();
        assert_eq!(err(&files(r)), format!("{}: no pictures (.png, .jpg, .jpeg); expected at least one per class folder", r.join("train/empty").display()));
        gray(&r.join("train/empty/1.png"), 1, 1, 0);
        gray(&r.join("test/other/1.png"), 1, 1, 0);
        assert_eq!(err(&files(r)), format!("{}: class 'other' (folder {}) is in the test set but not in the training set (classes: empty)", r.join("test").display(), r.join("test/other").display()));
    }

    #[test]
    fn bad_pictures() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        gray(&r.join("train/a/1.png"), 2, 2, 0);
        let bad = r.join("train/a/2.png");
        let mut png = std::fs::read(r.join("train/a/1.png")).unwrap();
        png.truncate(png.len() - 20);
        std::fs::write(&bad, &png).unwrap();
        let e = err(&files(r));
        assert!(e.starts_with(&format!("{}: cannot decode the picture: ", bad.display())), "{e}");
        std::fs::write(&bad, "plain text").unwrap();
        assert_eq!(err(&files(r)), format!("{}: not a PNG or JPEG picture", bad.display()));
        std::fs::remove_file(&bad).unwrap();

        // A header claiming 5000×5000 pixels is refused before anything is decoded.
        let mut png = std::fs::read(r.join("train/a/1.png")).unwrap();
        png[16..24].copy_from_slice(&[0, 0, 0x13, 0x88, 0, 0, 0x13, 0x88]);
        let mut crc = flate2::Crc::new();
        crc.update(&png[12..29]);
        png[29..33].copy_from_slice(&crc.sum().to_be_bytes());
        std::fs::write(&bad, &png).unwrap();
        assert_eq!(err(&files(r)), format!("{}: 5000x5000 pixels; expected 1 to {MAX_IMAGE_PIXELS} (4096x4096) pixels a picture", bad.display()));

        let mut f = files(r);
        f.max_bytes = 20;
        let e = load(&f, None).unwrap_err().to_string();
        let first = r.join("train/a/1.png");
        assert_eq!(e, format!("{}: {} bytes, more than the limit of 20 bytes (--max-file-bytes)", first.display(), std::fs::metadata(&first).unwrap().len()));
    }

    #[test]
    fn given_classes() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        gray(&r.join("train/b/1.png"), 1, 1, 5);
        gray(&r.join("test/a/1.png"), 1, 1, 6);
        let given: Vec<String> = ["b", "a", "c"].iter().map(|s| s.to_string()).collect();
        let d = load(&files(r), Some(&given)).unwrap();
        assert_eq!((d.train.labels, d.train.num_classes, d.classes), (vec![0], 3, given.clone()));
        assert_eq!(d.test.unwrap().labels, [1]);
        let given: Vec<String> = vec!["a".into()];
        let e = load(&files(r), Some(&given)).unwrap_err().to_string();
        assert_eq!(e, format!("{}: class 'b' (folder {}) is not one of the model's classes (a)", r.join("train").display(), r.join("train/b").display()));
    }
}
