//! `gpu-nn serve`: the web page (`web/`, its WebAssembly built by `scripts/build-web.sh`) and
//! MNIST's IDX files (`/data/<file>`) over HTTP on 127.0.0.1, so a browser trains with the
//! same kernels as the command line; with `--runs DIR`, a dashboard of the runs and sweeps
//! under DIR (`runs`), read live and never written. What is served is fixed when it starts
//! (`site`: the page's own files and the four data files, each under one exact path); how is
//! `http`'s (a maintained HTTP stack with limits on what a client may ask).

pub mod http;
pub mod runs;
pub mod site;

use crate::commands::args::ServeArgs;
use crate::core::Settings;
use crate::data::DatasetName;
use crate::data::sources::{FILES, locate};
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Where the page is when `--web` is not given: the crate's own `web/`.
pub const WEB_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/web");

pub fn run(args: ServeArgs, env: &Settings) -> Result<()> {
    let web = args.web.clone().unwrap_or_else(|| PathBuf::from(WEB_DIR));
    if !web.join("index.html").is_file() {
        bail!("--web {}: no index.html there; give the directory of the page (the repository's web/)", web.display());
    }
    if !web.join("pkg").join("gpu_nn_bg.wasm").is_file() {
        bail!("{}: the page's WebAssembly is not built; run scripts/build-web.sh first", web.join("pkg").display());
    }
    if !(args.idle_timeout > 0.0 && args.idle_timeout.is_finite()) {
        bail!("--idle-timeout {}: expected a number of seconds above 0", args.idle_timeout);
    }
    if args.max_connections == 0 {
        bail!("--max-connections 0: the server needs at least 1");
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
    let site = site::Site::build(&web, &data)?;
    let runs = match &args.runs {
        Some(dir) => {
            let real = dir.canonicalize().with_context(|| format!("--runs {}: cannot open the directory", dir.display()))?;
            if !real.is_dir() {
                bail!("--runs {}: not a directory; give the folder your runs and sweeps are in", dir.display());
            }
            Some(http::RunsRoot { dir: real, shown: dir.display().to_string() })
        }
        None => None,
    };
    let limits = http::Limits { connections: args.max_connections, idle: Duration::from_secs_f64(args.idle_timeout), ..Default::default() };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await.with_context(|| format!("--port {}: cannot listen on 127.0.0.1", args.port))?;
        let addr = listener.local_addr()?;
        let watching = runs.as_ref().map(|r| format!(", the runs in {}", r.shown)).unwrap_or_default();
        println!("serving http://{addr}/ (the page from {}, MNIST from {}{watching}); Ctrl-C stops", web.display(), files.dir.display());
        let _ = std::io::stdout().flush();
        http::serve(listener, site, runs, limits).await
    })
}
