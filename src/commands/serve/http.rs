//! The HTTP side of `gpu-nn serve`, on a well-kept stack (axum over hyper and tokio, tower-http's
//! file service): GET and HEAD of the site's files, streamed from disk; the `Host` header held
//! to the address the server listens on (a page on another name — DNS rebinding — is refused);
//! `nosniff` and `no-cache` on every answer; with `--runs`, the dashboard's read-only JSON
//! (`api/runs`, `api/run`, `api/sweep`, `api/picture`: `runs`); 404 for anything else, 405 for
//! other methods.
//! Limits: request headers of at most `Limits::header_bytes` (431 beyond), a connection that
//! sends no complete request head within `Limits::idle` is closed (slow and silent clients
//! alike), none lives longer than `Limits::lifetime`, and at most `Limits::connections` are
//! served at once (the others wait in the kernel's queue).

use super::runs;
use super::site::Site;
use anyhow::{Context, Result};
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use tower_http::set_header::SetResponseHeaderLayer;

/// How much a client may ask of the server.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once.
    pub connections: usize,
    /// How long a connection may take to send a complete request head, or sit idle between
    /// requests.
    pub idle: Duration,
    /// How long a connection may live at all (a client that reads its answer slowly).
    pub lifetime: Duration,
    /// Bytes of one request's head (start line and headers).
    pub header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { connections: 256, idle: Duration::from_secs(10), lifetime: Duration::from_secs(120), header_bytes: 16 << 10 }
    }
}

/// The folder `serve --runs` shows: its real path, and the name it was given.
#[derive(Clone, Debug)]
pub struct RunsRoot {
    pub dir: std::path::PathBuf,
    pub shown: String,
}

struct App {
    site: Site,
    runs: Option<RunsRoot>,
    /// The `Host` values the server answers to: its address and `localhost`, with the port.
    hosts: Vec<String>,
}

/// Serves `site` on `listener` (bound to 127.0.0.1) until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, site: Site, runs: Option<RunsRoot>, limits: Limits) -> Result<()> {
    let port = listener.local_addr()?.port();
    let mut hosts = vec![format!("127.0.0.1:{port}"), format!("localhost:{port}")];
    if port == 80 {
        hosts.extend(["127.0.0.1".to_string(), "localhost".to_string()]);
    }
    let app = Arc::new(App { site, runs, hosts });
    let router = Router::new()
        .fallback(answer)
        .with_state(app)
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-cache")));
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.connections));
    loop {
        let slot = slots.clone().acquire_owned().await.context("the connection limit")?;
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // out of file handles, say: wait for connections to end instead of spinning
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(limits.idle).max_buf_size(limits.header_bytes.max(8192)).max_header_size(limits.header_bytes);
            let connection = http.serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(limits.lifetime, connection).await;
            drop(slot);
        });
    }
}

fn plain(status: StatusCode, text: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{text}\n")).into_response()
}

async fn answer(State(app): State<Arc<App>>, request: Request) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_ascii_lowercase);
    match host {
        None => return plain(StatusCode::BAD_REQUEST, "a Host header is required"),
        Some(h) if !app.hosts.contains(&h) => {
            return plain(StatusCode::MISDIRECTED_REQUEST, &format!("this server answers to {} only", app.hosts[0]));
        }
        _ => {}
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if let Some(api) = request.uri().path().strip_prefix("/api/") {
        return match &app.runs {
            Some(root) => dashboard(root.clone(), api.to_string(), request).await,
            None => plain(StatusCode::NOT_FOUND, "not here (the dashboard needs gpu-nn serve --runs DIR)"),
        };
    }
    let Some(file) = app.site.resolve(request.uri().path()) else {
        return plain(StatusCode::NOT_FOUND, "not here");
    };
    // a GET carries no body: whatever one sent is not read
    let (parts, _) = request.into_parts();
    match ServeFile::new(file).oneshot(Request::from_parts(parts, Body::empty())).await {
        Ok(r) => r.map(Body::new),
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot read the file: {e}")),
    }
}

/// The dashboard's answers: JSON, or a picture a run or sweep lists. Reading the run
/// directories is blocking file work, done off the connection threads.
async fn dashboard(root: RunsRoot, api: String, request: Request) -> Response {
    let query: std::collections::HashMap<String, String> = match Query::try_from_uri(request.uri()) {
        Ok(Query(q)) => q,
        Err(_) => return plain(StatusCode::BAD_REQUEST, "a query gpu-nn cannot read"),
    };
    let id = query.get("id").cloned().unwrap_or_default();
    let name = query.get("name").cloned().unwrap_or_default();
    let dir = root.dir.clone();
    let answer = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<Answer>> {
        Ok(match api.as_str() {
            "runs" => Some(Answer::Json(runs::list(&dir, &root.shown)?)),
            "run" => runs::run(&dir, &id)?.map(Answer::Json),
            "sweep" => runs::sweep(&dir, &id)?.map(Answer::Json),
            "picture" => runs::picture(&dir, &id, &name)?.map(Answer::File),
            _ => None,
        })
    })
    .await;
    match answer {
        Ok(Ok(Some(Answer::Json(v)))) => ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response(),
        Ok(Ok(Some(Answer::File(file)))) => {
            let (parts, _) = request.into_parts();
            match ServeFile::new(file).oneshot(Request::from_parts(parts, Body::empty())).await {
                Ok(r) => r.map(Body::new),
                Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot read the file: {e}")),
            }
        }
        Ok(Ok(None)) => plain(StatusCode::NOT_FOUND, "not here"),
        Ok(Err(e)) => plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}")),
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("the dashboard's reader failed: {e}")),
    }
}

enum Answer {
    Json(serde_json::Value),
    File(std::path::PathBuf),
}
