//! Where the data lives and how it gets there: the four IDX files of each supported dataset,
//! the directory they are looked up in, and the download from public mirrors with checksums
//! (only with the default cargo feature `download`: its TLS stack needs the target's C compiler).

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
#[cfg(feature = "cli")]
use std::path::Path;
use std::path::PathBuf;
// what only the download uses
#[cfg(feature = "download")]
use {crate::atomic_file::write_atomic, anyhow::Context, std::io::Read, std::time::Duration};
use md5::Digest;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    Mnist,
    FashionMnist,
    Kmnist,
    /// Samples given in the configuration itself (doc 000's two-sample example).
    Inline,
    /// The user's own files, as `data.files` names them (`own`: `.npz`, CSV, image folder).
    Files,
}

impl DatasetName {
    pub fn name(self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Kmnist => "kmnist",
            DatasetName::Inline => "inline",
            DatasetName::Files => "files",
        }
    }
    /// Public mirrors, tried in order; each serves the four `.gz` files under these names.
    pub fn mirrors(self) -> &'static [&'static str] {
        match self {
            DatasetName::Mnist => &[
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
            ],
            DatasetName::FashionMnist => &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
            DatasetName::Kmnist => &["http://codh.rois.ac.jp/kmnist/dataset/kmnist/"],
            DatasetName::Inline | DatasetName::Files => &[],
        }
    }
    /// SHA-256 of each file's decompressed IDX bytes, in the order of `FILES`: what a download
    /// is verified by, whatever its compression. Recorded for MNIST (from its files); for
    /// Fashion-MNIST and KMNIST not yet (their files were not at hand when this was written),
    /// so their downloads fall back to the published MD5 of the original archives.
    pub fn content_sha256(self) -> Option<[&'static str; 4]> {
        match self {
            DatasetName::Mnist => Some([
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            ]),
            _ => None,
        }
    }
    /// Published MD5 of each original `.gz` archive, in the order of `FILES`.
    pub fn md5s(self) -> [&'static str; 4] {
        match self {
            DatasetName::Mnist => [
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "d53e105ee54ea40749a09fcbcd1e9432",
                "9fb629c4189551a2d022fa330f9573f3",
                "ec29112dd5afa0611ce80d1b7f02629c",
            ],
            DatasetName::FashionMnist => [
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "25c81989df183df01b3e8a0aad5dffbe",
                "bef4ecab320f06d8554ea6380940ec79",
                "bb300cfdad3c16e7a12a480ee83cd310",
            ],
            DatasetName::Kmnist => [
                "bdb82020997e1d708af4cf47b453dcf7",
                "e144d726b3acfaa3e44228e80efcd344",
                "5c965bf0a639b31b8f53240b1b52f4d7",
                "7320c461ea6c1c855c0b718fb2a4b134",
            ],
            DatasetName::Inline | DatasetName::Files => ["", "", "", ""],
        }
    }
}

impl std::str::FromStr for DatasetName {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "mnist" => Ok(DatasetName::Mnist),
            "fashion-mnist" | "fashion_mnist" => Ok(DatasetName::FashionMnist),
            "kmnist" => Ok(DatasetName::Kmnist),
            "inline" => Ok(DatasetName::Inline),
            _ => bail!("unknown --dataset '{s}'; expected mnist, fashion-mnist or kmnist"),
        }
    }
}

/// Base names of the four files: training images, training labels, test images, test labels.
pub const FILES: [&str; 4] =
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

#[cfg(feature = "cli")]
/// The four located files.
#[derive(Clone, Debug)]
pub struct DataFiles {
    pub dir: PathBuf,
    pub train_images: PathBuf,
    pub train_labels: PathBuf,
    pub test_images: PathBuf,
    pub test_labels: PathBuf,
}

/// Where datasets are looked for and how missing ones are fetched, beyond a run's own `--data`:
/// what the command line reads from the environment once (`$GPU_NN_DATA`, `$GPU_NN_OFFLINE`,
/// `$GPU_NN_MIRROR`, `$GPU_NN_DOWNLOAD_TIMEOUT`) and hands down. The default looks in the
/// per-user cache and downloads from the public mirrors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSources {
    /// The data directory when a run names none (else the per-user cache).
    pub dir: Option<PathBuf>,
    /// Never download: a missing dataset is an error.
    pub offline: bool,
    /// One base URL to download from instead of the public mirrors (tests, private mirrors).
    pub mirror: Option<String>,
    /// How long a stalled transfer may wait.
    pub timeout: std::time::Duration,
}

impl Default for DataSources {
    fn default() -> Self {
        DataSources { dir: None, offline: false, mirror: None, timeout: std::time::Duration::from_secs(120) }
    }
}

#[cfg(feature = "cli")]
/// `--data DIR`, else `sources.dir`, else the per-user cache directory (`…/gpu-nn/<dataset>`).
pub fn data_dir(name: DatasetName, explicit: Option<&Path>, sources: &DataSources) -> PathBuf {
    if let Some(d) = explicit.or(sources.dir.as_deref()) {
        return d.to_path_buf();
    }
    dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("gpu-nn").join(name.name())
}

#[cfg(feature = "cli")]
/// A file of the set in `dir`: `NAME.gz` or the uncompressed `NAME` (also `NAME` with the
/// `-idx` written `.idx`, as some archives unpack).
fn find_file(dir: &Path, base: &str) -> Option<PathBuf> {
    let dotted = base.replacen("-idx", ".idx", 1);
    [format!("{base}.gz"), base.to_string(), format!("{dotted}.gz"), dotted]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

#[cfg(feature = "cli")]
fn find_all(dir: &Path) -> Option<DataFiles> {
    let f: Vec<PathBuf> = FILES.iter().map(|b| find_file(dir, b)).collect::<Option<_>>()?;
    Some(DataFiles {
        dir: dir.to_path_buf(),
        train_images: f[0].clone(),
        train_labels: f[1].clone(),
        test_images: f[2].clone(),
        test_labels: f[3].clone(),
    })
}

#[cfg(feature = "cli")]
/// Finds the dataset's files, downloading the missing ones unless `sources.offline` (with a
/// progress bar unless `quiet`) or the build has no `download` feature. The directory may hold
/// the files directly or in a subdirectory named after the dataset.
pub fn locate(name: DatasetName, explicit: Option<&Path>, sources: &DataSources, quiet: bool) -> Result<DataFiles> {
    let dir = data_dir(name, explicit, sources);
    if explicit.is_some() && dir.exists() && !dir.is_dir() {
        bail!("--data {}: is not a directory", dir.display());
    }
    if dir.is_dir() {
        if let Err(e) = std::fs::read_dir(&dir) {
            bail!("cannot read the data directory {}: {e}; expected a readable directory with the {} files", dir.display(), name.name());
        }
    }
    for d in [dir.clone(), dir.join(name.name())] {
        if let Some(files) = find_all(&d) {
            return Ok(files);
        }
    }
    let expected = FILES.map(|f| format!("{f}.gz")).join(", ");
    obtain(name, &dir, &expected, sources, quiet)
}

/// Without the `download` feature the missing files can only be put there by hand.
#[cfg(all(feature = "cli", not(feature = "download")))]
fn obtain(name: DatasetName, dir: &Path, expected: &str, _sources: &DataSources, _quiet: bool) -> Result<DataFiles> {
    bail!(
        "{} data not found in {} (expected the four files {expected}, gzip or uncompressed); \
         this build of gpu-nn cannot download (built without the cargo feature `download`): \
         put the files into that directory or point --data at a directory that has them",
        name.name(),
        dir.display()
    )
}

/// Downloads the missing files into `dir` unless `sources.offline`.
#[cfg(feature = "download")]
fn obtain(name: DatasetName, dir: &Path, expected: &str, sources: &DataSources, quiet: bool) -> Result<DataFiles> {
    if sources.offline {
        bail!(
            "{} data not found in {} (expected the four files {expected}, gzip or uncompressed); \
             downloads are off (GPU_NN_OFFLINE is set): point --data at a directory that has them",
            name.name(),
            dir.display()
        );
    }
    download(name, dir, sources, quiet).with_context(|| {
        format!(
            "{} data not found in {} (expected the four files {expected}, gzip or uncompressed) and the download failed; \
             fetch them by hand into that directory or point --data at a directory that has them",
            name.name(),
            dir.display()
        )
    })?;
    find_all(dir).with_context(|| format!("download finished but the files are not in {}", dir.display()))
}

/// Mirrors to use: `sources.mirror` or the public ones.
#[cfg(feature = "download")]
fn mirrors(name: DatasetName, sources: &DataSources) -> Vec<String> {
    match &sources.mirror {
        Some(m) => vec![if m.ends_with('/') { m.clone() } else { format!("{m}/") }],
        None => name.mirrors().iter().map(|s| s.to_string()).collect(),
    }
}

/// The size of file `i` (`FILES` order) of every supported dataset, uncompressed: each holds
/// 60,000 training and 10,000 test 28×28 images and their labels.
pub const IDX_SIZES: [u64; 4] = [47_040_016, 60_008, 7_840_016, 10_008];

/// The most bytes a download of file `i` may take: its uncompressed size (a gzip copy is
/// smaller), with room for a gzip container's framing.
pub fn download_limit(i: usize) -> u64 {
    IDX_SIZES[i] + IDX_SIZES[i] / 100 + 4096
}

/// The SHA-256 of a file's IDX bytes as stored or served: gunzipped as a stream (nothing kept)
/// when it starts with gzip's magic number, else of the bytes as they are; refused when they
/// are more than `limit` bytes.
pub fn content_sha256(bytes: &[u8], limit: u64) -> Result<[u8; 32]> {
    let mut h = sha2::Sha256::new();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut d = flate2::read::MultiGzDecoder::new(bytes);
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            let n = std::io::Read::read(&mut d, &mut buf).map_err(|e| anyhow::anyhow!("not a complete gzip stream ({e}); truncated?"))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > limit {
                bail!("decompresses to more than {limit} bytes, more than the file can hold");
            }
            h.update(&buf[..n]);
        }
    } else {
        if bytes.len() as u64 > limit {
            bail!("{} bytes, more than the file can hold ({limit})", bytes.len());
        }
        h.update(bytes);
    }
    Ok(h.finalize().into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks file `i` of `name` (as stored or served: gzip or raw) by the SHA-256 of its IDX
/// bytes where that is recorded, so a recompressed copy passes and a damaged one does not;
/// else by the published MD5 of the original archive.
pub fn verify_content(name: DatasetName, i: usize, bytes: &[u8]) -> Result<()> {
    match name.content_sha256() {
        Some(want) => {
            let got = hex(&content_sha256(bytes, IDX_SIZES[i])?);
            if got != want[i] {
                bail!("content SHA-256 {got} is not {}'s {} ({})", name.name(), FILES[i], want[i]);
            }
        }
        None => {
            let got = hex(&md5::Md5::digest(bytes));
            if got != name.md5s()[i] {
                bail!(
                    "MD5 {got} is not that of the published {}.gz of {} ({}); a recompressed or uncompressed copy of this dataset cannot be verified yet (no content hash recorded)",
                    FILES[i],
                    name.name(),
                    name.md5s()[i]
                );
            }
        }
    }
    Ok(())
}

/// Downloads every missing file of the set into `dir`, each verified (`verify_content`) before
/// it is written (atomically, as served: `.gz` or raw).
#[cfg(feature = "download")]
pub fn download(name: DatasetName, dir: &Path, sources: &DataSources, quiet: bool) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let wait = sources.timeout;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(wait.min(Duration::from_secs(15))))
        .timeout_recv_response(Some(wait))
        .timeout_recv_body(Some(wait))
        .build()
        .into();
    for (i, base) in FILES.iter().enumerate() {
        if find_file(dir, base).is_some() {
            continue;
        }
        let file = format!("{base}.gz");
        let mut errors = Vec::new();
        let mut done = false;
        for mirror in mirrors(name, sources) {
            let url = format!("{mirror}{file}");
            match fetch(&agent, &url, &file, download_limit(i), quiet).and_then(|bytes| verify_content(name, i, &bytes).map(|()| bytes).with_context(|| url.clone())) {
                Ok(bytes) => {
                    let stored = if bytes.starts_with(&[0x1f, 0x8b]) { file.clone() } else { base.to_string() };
                    write_atomic(&dir.join(stored), &bytes)?;
                    done = true;
                    break;
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if !done {
            bail!("could not download {file}: {}", errors.join("; "));
        }
    }
    Ok(())
}

/// `gpu-nn download`: the four files of `name` in `dir`, those present verified, the missing
/// ones downloaded; one line per file.
#[cfg(feature = "download")]
pub fn download_command(name: DatasetName, dir: &Path, sources: &DataSources, quiet: bool) -> Result<()> {
    for (i, base) in FILES.iter().enumerate() {
        if let Some(p) = find_file(dir, base) {
            let bytes = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
            verify_content(name, i, &bytes).with_context(|| format!("{} is damaged or another file; delete it and run gpu-nn download again", p.display()))?;
            if !quiet {
                println!("{}: present, verified", p.display());
            }
        }
    }
    download(name, dir, sources, quiet)?;
    let files = find_all(dir).with_context(|| format!("download finished but the files are not in {}", dir.display()))?;
    if !quiet {
        println!("{} is complete in {}", name.name(), files.dir.display());
    }
    Ok(())
}

#[cfg(feature = "download")]
/// The body at `url`, refused when it is (or announces) more than `limit` bytes: memory is never
/// taken on a server's word.
fn fetch(agent: &ureq::Agent, url: &str, label: &str, limit: u64, quiet: bool) -> Result<Vec<u8>> {
    let mut resp = agent.get(url).call().with_context(|| format!("{url}"))?;
    let total = resp.body().content_length();
    if let Some(n) = total.filter(|&n| n > limit) {
        bail!("{url}: the server announces {n} bytes; {label} is at most {limit}");
    }
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::no_length(),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:30} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
            .unwrap()
            .progress_chars("=> "),
    );
    if quiet {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_message(format!("downloading {label}"));
    // ureq's own limit one read beyond ours, so that ours speaks first
    let mut reader = resp.body_mut().with_config().limit(limit + (1 << 16) + 1).reader();
    let mut out = Vec::with_capacity(total.unwrap_or(0).min(limit) as usize);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).with_context(|| format!("{url}: connection broke off"))?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() as u64 > limit {
            bail!("{url}: the server sends more than {limit} bytes; {label} is at most that");
        }
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

