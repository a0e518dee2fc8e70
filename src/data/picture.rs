//! Pictures of digits (PNG or JPEG of any size) in MNIST's own form, what `gpu-nn predict`
//! feeds a network.
//!
//! A picture is brought into MNIST's own form before it reaches the network (LeCun et al.:
//! "normalized to fit in a 20x20 pixel box while preserving their aspect ratio … centered in a
//! 28x28 image by computing the center of mass of the pixels"):
//!   1. grayscale in [0, 1], transparent pixels composited over white;
//!   2. inverted when the background is light (mean of the border pixels > 0.5), so ink is high;
//!   3. the background level (median of the border) mapped to 0 and the darkest ink to 1;
//!   4. cropped to the bounding box of the ink (values > `INK`);
//!   5. scaled (Lanczos3, anti-aliased) so that its longer side is 20 pixels;
//!   6. placed in a 28×28 field, shifted by whole pixels so that its centre of mass falls on
//!      (14, 14) in pixel indices — where MNIST's own digits have theirs (test-set mean
//!      (14.00, 13.99)), half a pixel off the geometric centre 13.5 — and kept whole inside it.
//!

use anyhow::{Context, Result, bail};
use image::imageops::FilterType;
use image::{DynamicImage, ImageBuffer, Luma};
use std::path::Path;

/// Side of the MNIST field and of the box the digit is scaled into.
pub const SIDE: usize = 28;
pub const BOX: usize = 20;
/// A pixel counts as ink for the bounding box above this value (after step 3).
pub const INK: f32 = 0.08;
/// Below this contrast between background and the darkest ink the picture is called blank.
const MIN_CONTRAST: f32 = 0.1;

/// A picture in MNIST's form, and what was done to get there.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// 28×28 values in [0, 1], row-major, ink high.
    pub pixels: Vec<f32>,
    /// The picture had a light background and was inverted.
    pub inverted: bool,
    /// Size of the picture as read.
    pub width: u32,
    pub height: u32,
    /// Bounding box of the ink in the picture: x, y, width, height.
    pub ink_box: (u32, u32, u32, u32),
}

/// Reads a PNG or JPEG (the format is recognised from the content, not the name).
pub fn load_image(path: &Path) -> Result<DynamicImage> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot open image {}", path.display()))?;
    decode_image(&bytes, &path.display().to_string())
}

/// The most pixels a picture may have: 4096×4096, more than a phone's photograph of a digit,
/// and what `preprocess` converts (16 bytes a pixel) in 256 MiB.
pub const MAX_PIXELS: u64 = 4096 * 4096;

/// Decodes a PNG or JPEG from its bytes; `name` names it in errors. A picture of more than
/// `MAX_PIXELS` (its header says how many, before anything is decoded), over 16,384 pixels a
/// side, or over 256 MiB decoded is refused: a digit needs far less; a hostile file asks for
/// more.
pub fn decode_image(bytes: &[u8], name: &str) -> Result<DynamicImage> {
    let open = || -> Result<image::ImageReader<std::io::Cursor<&[u8]>>> {
        let reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().with_context(|| format!("cannot read image {name}"))?;
        match reader.format() {
            Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => Ok(reader),
            Some(f) => bail!("{name}: {f:?} images are not supported; expected PNG or JPEG"),
            None => bail!("{name}: not a PNG or JPEG image"),
        }
    };
    let (w, h) = open()?.into_dimensions().with_context(|| format!("{name}: cannot read the image's header"))?;
    if w as u64 * h as u64 > MAX_PIXELS {
        bail!("{name}: {w}×{h} pixels; pictures of more than {MAX_PIXELS} pixels (4096×4096) are refused: a digit needs far fewer");
    }
    let mut reader = open()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(16_384);
    limits.max_image_height = Some(16_384);
    limits.max_alloc = Some(256 << 20);
    reader.limits(limits);
    reader.decode().with_context(|| format!("{name}: cannot decode the image"))
}

/// Centre of mass (x, y) of a w×h image in pixel-index coordinates; `None` when it is all zero.
pub fn centre_of_mass(v: &[f32], w: usize) -> Option<(f64, f64)> {
    let (mut s, mut sx, mut sy) = (0.0f64, 0.0f64, 0.0f64);
    for (i, &p) in v.iter().enumerate() {
        let p = p as f64;
        s += p;
        sx += p * (i % w) as f64;
        sy += p * (i / w) as f64;
    }
    (s > 0.0).then(|| (sx / s, sy / s))
}

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

/// Steps 1–6 above.
pub fn preprocess(img: &DynamicImage) -> Result<Prepared> {
    preprocess_with(img, FilterType::Lanczos3)
}

/// `preprocess` with a chosen resampling filter for step 5.
pub fn preprocess_with(img: &DynamicImage, filter: FilterType) -> Result<Prepared> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        bail!("the image is empty ({w}×{h} pixels)");
    }
    // 1. grayscale (Rec. 601 luma), alpha over white
    let rgba = img.to_rgba32f();
    let mut g: Vec<f32> = rgba
        .pixels()
        .map(|p| {
            let [r, gr, b, a] = p.0;
            let y = 0.299 * r + 0.587 * gr + 0.114 * b;
            (a * y + (1.0 - a)).clamp(0.0, 1.0)
        })
        .collect();
    // 2. light background → invert
    let border: Vec<usize> = (0..w * h).filter(|i| i % w == 0 || i % w == w - 1 || i / w == 0 || i / w == h - 1).collect();
    let mean = border.iter().map(|&i| g[i] as f64).sum::<f64>() / border.len() as f64;
    let inverted = mean > 0.5;
    if inverted {
        g.iter_mut().for_each(|v| *v = 1.0 - *v);
    }
    // 3. background → 0, strongest ink → 1
    let bg = median(border.iter().map(|&i| g[i]).collect());
    let peak = g.iter().copied().fold(0.0f32, f32::max);
    if peak - bg < MIN_CONTRAST {
        bail!("no digit found: the image is blank (ink and background differ by {:.3} of full scale)", peak - bg);
    }
    g.iter_mut().for_each(|v| *v = ((*v - bg) / (peak - bg)).clamp(0.0, 1.0));
    // 4. bounding box of the ink
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for (i, &v) in g.iter().enumerate() {
        if v > INK {
            let (x, y) = (i % w, i / w);
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    let (bw, bh) = (x1 + 1 - x0, y1 + 1 - y0);
    let crop: ImageBuffer<Luma<f32>, Vec<f32>> =
        ImageBuffer::from_fn(bw as u32, bh as u32, |x, y| Luma([g[(y0 + y as usize) * w + x0 + x as usize]]));
    // 5. longer side → 20 pixels, aspect ratio kept
    let s = BOX as f64 / bw.max(bh) as f64;
    let (nw, nh) = (((bw as f64 * s).round() as u32).clamp(1, BOX as u32), ((bh as f64 * s).round() as u32).clamp(1, BOX as u32));
    let small = image::imageops::resize(&crop, nw, nh, filter);
    let small: Vec<f32> = small.into_raw().into_iter().map(|v| v.clamp(0.0, 1.0)).collect();
    // 6. centre of mass → centre of the 28×28 field (kept whole inside it)
    let (cx, cy) = centre_of_mass(&small, nw as usize).context("no digit found: nothing left after scaling")?;
    let centre = SIDE as f64 / 2.0;
    let ox = ((centre - cx).round() as i64).clamp(0, (SIDE - nw as usize) as i64) as usize;
    let oy = ((centre - cy).round() as i64).clamp(0, (SIDE - nh as usize) as i64) as usize;
    let mut pixels = vec![0.0f32; SIDE * SIDE];
    for y in 0..nh as usize {
        for x in 0..nw as usize {
            pixels[(oy + y) * SIDE + ox + x] = small[y * nw as usize + x];
        }
    }
    Ok(Prepared { pixels, inverted, width: w as u32, height: h as u32, ink_box: (x0 as u32, y0 as u32, bw as u32, bh as u32) })
}

/// The 28×28 input as text, darker characters for more ink.
pub fn ascii_art(pixels: &[f32], w: usize) -> String {
    const RAMP: &[u8] = b" .:-=+*#%@";
    let mut s = String::new();
    for row in pixels.chunks(w) {
        for &v in row {
            let c = RAMP[((v.clamp(0.0, 1.0) * (RAMP.len() - 1) as f32).round()) as usize] as char;
            s.push(c);
            s.push(c);
        }
        s.push('\n');
    }
    s
}

