//! Downloads verified by content: a local HTTP server on 127.0.0.1 (`$GPU_NN_MIRROR`) serves
//! MNIST as published, recompressed, uncompressed, truncated, with the wrong content, or
//! stalls. The first three are accepted (the SHA-256 of the decompressed IDX bytes is MNIST's),
//! the others refused with one line naming the file and why, leaving no file behind; a stalled
//! server times out. `gpu-nn download` then checks what it has.

mod common;
use common::{command, command_limited, error_line, mnist_dir_or_skip, s};
use flate2::{Compression, read::GzDecoder, write::GzEncoder};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the server does for a path: serve these bytes, announce them but send only a part and
/// close, or send the headers and then nothing.
#[derive(Clone)]
enum Reply {
    Bytes(Vec<u8>),
    CutAfter(Vec<u8>, usize),
    Stall,
    /// Announce this many bytes, send a few, close.
    Announce(u64),
}

/// Serves `files` (by name) on a free port until the process ends; returns the base URL.
fn serve(files: HashMap<String, Reply>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let files = Arc::new(files);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let files = files.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut request = String::new();
                reader.read_line(&mut request).unwrap_or(0);
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 2 {
                    line.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
                let mut conn = conn;
                match files.get(&path) {
                    None => {
                        let _ = conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    }
                    Some(Reply::Bytes(b)) => {
                        let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", b.len());
                        let _ = conn.write_all(b);
                    }
                    Some(Reply::CutAfter(b, n)) => {
                        let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", b.len());
                        let _ = conn.write_all(&b[..*n]);
                    }
                    Some(Reply::Announce(n)) => {
                        let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n");
                        let _ = conn.write_all(&[0x1f, 0x8b, 8, 0]);
                    }
                    Some(Reply::Stall) => {
                        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n");
                        std::thread::sleep(Duration::from_secs(60));
                    }
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}/")
}

const FILES: [&str; 4] = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

fn published(mnist: &Path) -> Vec<Vec<u8>> {
    FILES.iter().map(|f| std::fs::read(mnist.join(format!("{f}.gz"))).unwrap()).collect()
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(b).read_to_end(&mut out).unwrap();
    out
}

fn gzip(b: &[u8], level: u32) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::new(level));
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// `gpu-nn download --dir DIR` from `mirror` (downloads on, a 2-second stall timeout).
fn download(mirror: &str, dir: &Path) -> std::process::Output {
    command(&["download", "--dir", s(dir), "--quiet"])
        .env_remove("GPU_NN_OFFLINE")
        .env("GPU_NN_MIRROR", mirror)
        .env("GPU_NN_DOWNLOAD_TIMEOUT", "2")
        .output()
        .unwrap()
}

#[test]
fn published_recompressed_and_damaged_mirrors() {
    let Some(mnist) = mnist_dir_or_skip("download") else { return };
    let orig = published(&mnist);
    let tmp = tempfile::tempdir().unwrap();
    let with = |first: Reply| -> String {
        let mut m: HashMap<String, Reply> = FILES.iter().zip(&orig).map(|(f, b)| (format!("{f}.gz"), Reply::Bytes(b.clone()))).collect();
        m.insert(format!("{}.gz", FILES[1]), first);
        serve(m)
    };
    let labels = &orig[1];

    // as published, recompressed (another level), and uncompressed under the .gz name
    for (case, reply) in [
        ("published", Reply::Bytes(labels.clone())),
        ("recompressed", Reply::Bytes(gzip(&gunzip(labels), 1))),
        ("uncompressed", Reply::Bytes(gunzip(labels))),
    ] {
        let dir = tmp.path().join(case);
        let o = download(&with(reply), &dir);
        assert!(o.status.success(), "{case}: {}", String::from_utf8_lossy(&o.stderr));
        let o = command(&["train", "--preset", "seed001", "--backend", "cpu", "--max-steps", "1", "--epochs", "1", "--data", s(&dir), "--quiet"]).output().unwrap();
        assert!(o.status.success(), "{case}: training on the downloaded files: {}", String::from_utf8_lossy(&o.stderr));
        // and a second download only checks what is there
        let o = command(&["download", "--dir", s(&dir)]).env("GPU_NN_MIRROR", "http://127.0.0.1:9/").output().unwrap();
        assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("present, verified"), "{case}");
    }

    // refused, with the file and the reason on one line, and nothing left behind
    let mut other_labels = gunzip(labels);
    other_labels[100] = (other_labels[100] + 1) % 10;
    for (case, reply, why) in [
        ("truncated file", Reply::Bytes(labels[..labels.len() / 2].to_vec()), "truncated"),
        ("cut connection", Reply::CutAfter(labels.clone(), labels.len() / 2), "train-labels-idx1-ubyte.gz"),
        ("wrong content", Reply::Bytes(gzip(&other_labels, 6)), "content SHA-256"),
    ] {
        let dir = tmp.path().join(case.replace(' ', "-"));
        let o = download(&with(reply), &dir);
        assert!(!o.status.success(), "{case}: accepted");
        let line = error_line(&o);
        assert!(line.contains("could not download train-labels-idx1-ubyte.gz") && line.contains(why), "{case}: {line}");
        assert!(!dir.join("train-labels-idx1-ubyte.gz").exists() && !dir.join("train-labels-idx1-ubyte").exists(), "{case}: a file was left");
    }

    // a server that stalls: the timeout ends it, with one line
    let dir = tmp.path().join("stall");
    let t = Instant::now();
    let o = download(&with(Reply::Stall), &dir);
    assert!(!o.status.success());
    assert!(t.elapsed() < Duration::from_secs(30), "the stall was not timed out ({:?})", t.elapsed());
    assert!(error_line(&o).contains("could not download train-labels-idx1-ubyte.gz"));

    // a damaged file already in the directory is named by `download`
    let dir = tmp.path().join("published");
    std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), gzip(&other_labels[..10008.min(other_labels.len())], 6)).unwrap();
    let o = command(&["download", "--dir", s(&dir)]).env("GPU_NN_MIRROR", "http://127.0.0.1:9/").output().unwrap();
    assert!(!o.status.success());
    let line = error_line(&o);
    assert!(line.contains("t10k-labels-idx1-ubyte.gz is damaged or another file"), "{line}");
}

/// A file whose gzip stream holds far more than the file can (a gzip bomb under the right name):
/// its checksum is taken as it is decompressed, and stops at the file's own size.
#[test]
fn a_gzip_bomb_is_refused_while_it_is_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let bomb = gzip(&vec![0u8; 256 << 20], 6);
    assert!(bomb.len() < 2 << 20);
    let m: HashMap<String, Reply> = FILES.iter().map(|f| (format!("{f}.gz"), Reply::Bytes(bomb.clone()))).collect();
    let dir = tmp.path().join("bomb");
    let o = command_limited(1 << 20, &["download", "--dir", s(&dir), "--quiet"]).env_remove("GPU_NN_OFFLINE").env("GPU_NN_MIRROR", serve(m)).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    let line = error_line(&o);
    assert!(line.contains("train-images-idx3-ubyte.gz") && line.contains("decompresses to more than 47040016 bytes"), "{line}");
    assert!(!dir.join("train-images-idx3-ubyte.gz").exists());
}

/// A server that announces 10^15 bytes (or more than the file can be) is refused on its word,
/// before any memory is taken for it: under a 1 GiB limit on virtual memory, one line.
#[test]
fn an_announced_length_past_the_file_is_refused_before_memory_is_taken() {
    let tmp = tempfile::tempdir().unwrap();
    for (case, n) in [("huge", 1_000_000_000_000_000u64), ("just over the file", 48_000_000)] {
        let m: HashMap<String, Reply> = FILES.iter().map(|f| (format!("{f}.gz"), Reply::Announce(n))).collect();
        let dir = tmp.path().join(case.replace(' ', "-"));
        let o = command_limited(1 << 20, &["download", "--dir", s(&dir), "--quiet"]).env_remove("GPU_NN_OFFLINE").env("GPU_NN_MIRROR", serve(m)).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{case}: {}", String::from_utf8_lossy(&o.stderr));
        let line = error_line(&o);
        assert!(line.contains(&format!("announces {n} bytes")) && line.contains("train-images-idx3-ubyte.gz is at most"), "{case}: {line}");
    }
}
