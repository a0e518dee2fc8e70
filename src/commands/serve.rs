//! `gpu-nn serve`: the web page (`web/`, its WebAssembly built by `scripts/build-web.sh`) and
//! MNIST's IDX files (`/data/<file>`) over HTTP on 127.0.0.1, so a browser trains with the
//! same kernels as the command line. A small static server: GET and HEAD of files only, one
//! thread per connection, nothing outside the page's directory and the four data files.

use crate::commands::args::ServeArgs;
use crate::core::Settings;
use crate::data::sources::{FILES, locate};
use crate::data::DatasetName;
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the page is when `--web` is not given: the crate's own `web/`.
pub const WEB_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/web");

/// What the server hands out.
struct Site {
    web: PathBuf,
    /// The data files by the names the page asks for (`FILES`, and each with `.gz`).
    data: Vec<(String, PathBuf)>,
}

pub fn run(args: ServeArgs, env: &Settings) -> Result<()> {
    let web = args.web.clone().unwrap_or_else(|| PathBuf::from(WEB_DIR));
    if !web.join("index.html").is_file() {
        bail!("--web {}: no index.html there; give the directory of the page (the repository's web/)", web.display());
    }
    if !web.join("pkg").join("gpu_nn_bg.wasm").is_file() {
        bail!("{}: the page's WebAssembly is not built; run scripts/build-web.sh first", web.join("pkg").display());
    }
    // the data, found (or downloaded) as training would find it
    let files = locate(DatasetName::Mnist, args.data.as_deref(), &env.data, args.quiet)?;
    let paths = [&files.train_images, &files.train_labels, &files.test_images, &files.test_labels];
    let mut data = Vec::new();
    for (name, path) in FILES.iter().zip(paths) {
        // the file as it is on disk under both names: the page decodes gzip or raw alike
        data.push((name.to_string(), path.clone()));
        data.push((format!("{name}.gz"), path.clone()));
    }
    let listener = TcpListener::bind(("127.0.0.1", args.port)).with_context(|| format!("--port {}: cannot listen on 127.0.0.1", args.port))?;
    let addr = listener.local_addr()?;
    println!("serving http://{addr}/ (the page from {}, MNIST from {}); Ctrl-C stops", web.display(), files.dir.display());
    let _ = std::io::stdout().flush();
    let site = Arc::new(Site { web, data });
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let site = site.clone();
        std::thread::spawn(move || {
            let _ = answer(&site, stream);
        });
    }
    Ok(())
}

/// Content type by extension; `application/wasm` lets the browser compile while it downloads.
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" => "application/json",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// The file a request path names, if the site has it.
fn resolve(site: &Site, path: &str) -> Option<PathBuf> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    if let Some(name) = path.strip_prefix("/data/") {
        return site.data.iter().find(|(n, _)| n == name).map(|(_, p)| p.clone());
    }
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    // only plain names below the page's directory
    if rel.split('/').any(|part| part.is_empty() || part == ".." || part.starts_with('.')) {
        return None;
    }
    let file = site.web.join(rel);
    file.is_file().then_some(file)
}

fn answer(site: &Site, mut stream: TcpStream) -> Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // the rest of the request head
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let reply = |stream: &mut TcpStream, status: &str, kind: &str, body: &[u8], with_body: bool| -> Result<()> {
        write!(stream, "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n", body.len())?;
        if with_body {
            stream.write_all(body)?;
        }
        Ok(stream.flush()?)
    };
    if method != "GET" && method != "HEAD" {
        return reply(&mut stream, "405 Method Not Allowed", "text/plain", b"only GET and HEAD\n", true);
    }
    match resolve(site, path).and_then(|p| std::fs::read(&p).ok().map(|b| (p, b))) {
        Some((p, bytes)) => reply(&mut stream, "200 OK", content_type(&p), &bytes, method == "GET"),
        None => reply(&mut stream, "404 Not Found", "text/plain", format!("{path}: not here\n").as_bytes(), method == "GET"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_page_and_the_data_files_and_nothing_else() {
        let web = PathBuf::from(WEB_DIR);
        let site = Site { web: web.clone(), data: vec![("train-labels-idx1-ubyte".into(), PathBuf::from("/somewhere/labels.gz"))] };
        assert_eq!(resolve(&site, "/"), Some(web.join("index.html")));
        assert_eq!(resolve(&site, "/app.js?v=2"), Some(web.join("app.js")));
        assert_eq!(resolve(&site, "/data/train-labels-idx1-ubyte"), Some(PathBuf::from("/somewhere/labels.gz")));
        for refused in ["/data/passwd", "/../Cargo.toml", "/test/../../Cargo.toml", "/.gitignore", "//etc/passwd", "/no-such-file.js"] {
            assert_eq!(resolve(&site, refused), None, "{refused}");
        }
    }
}
